/**
 * Client sides of TPM sessions written apart from any TPM model, with node:crypto and
 * @noble/hashes only: parameter encryption with AES-CFB and an RSA-salted HMAC session. The same
 * code drives SoftTpm (src/softtpm/policy.test.ts) and a real swtpm
 * (test/integration/policy-swtpm.test.ts), so both are held to one independent client.
 */
import { expect } from "vitest";
import { constants, createCipheriv, createDecipheriv, createPublicKey, publicEncrypt } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

/**
 * The client side of parameter encryption (Part 1 §21.3 AES-CFB; the HMACs of Part 1 §19.6),
 * written apart from SoftTpm: an unbound, unsalted HMAC session with AES-128-CFB writes an NV
 * index with its data encrypted (decrypt) and reads it back encrypted (encrypt), checking every
 * response HMAC; then a password NV_Read shows what was stored.
 */
export async function cfbRoundTrip(exec: (b: Uint8Array) => Uint8Array | Promise<Uint8Array>, index: number, auth: Uint8Array, data: Uint8Array): Promise<{ stored: Uint8Array; readBack: Uint8Array; onWire: Uint8Array }> {
  const be16 = (v: number) => [(v >>> 8) & 0xff, v & 0xff];
  const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  const tb = (b: ArrayLike<number>) => [...be16(b.length), ...Array.from(b)];
  const mk = (tag: number, cc: number, body: number[]) => Uint8Array.from([...be16(tag), ...be32(10 + body.length), ...be32(cc), ...body]);
  const join = (...p: ArrayLike<number>[]) => Uint8Array.from(p.flatMap((x) => Array.from(x)));
  const rc = (r: Uint8Array) => ((r[6]! << 24) | (r[7]! << 16) | (r[8]! << 8) | r[9]!) >>> 0;
  const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
  /** KDFa (Part 1 §11.4.10.2) with SHA-256. */
  const kdf = (key: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number) => {
    const out: number[] = [];
    for (let i = 1; out.length < bits / 8; i++) out.push(...hmac(sha256, key, join(be32(i), new TextEncoder().encode(label + "\0"), u, v, be32(bits))));
    return Uint8Array.from(out.slice(0, bits / 8));
  };
  /** AES-128-CFB with key ‖ IV from a 256-bit KDFa output. */
  const cfb = (k: Uint8Array, b: Uint8Array, enc: boolean) => {
    const c = (enc ? createCipheriv : createDecipheriv)("aes-128-cfb", k.subarray(0, 16), k.subarray(16, 32));
    return new Uint8Array(Buffer.concat([c.update(b), c.final()]));
  };
  /** NV_ReadPublic: the index's Name (TPMA_NV_WRITTEN changes it after the first write). */
  const nameNow = async () => {
    const rp = await exec(mk(0x8001, 0x169, be32(index)));
    expect(rc(rp)).toBe(0);
    const pl = (rp[10]! << 8) | rp[11]!;
    return rp.slice(14 + pl, 14 + pl + ((rp[12 + pl]! << 8) | rp[13 + pl]!));
  };
  let nonceCaller = new Uint8Array(16).fill(0x31);
  const st = await exec(mk(0x8001, 0x176, [...be32(0x40000007), ...be32(0x40000007), ...tb(nonceCaller), ...be16(0), 0, ...be16(0x0006), ...be16(128), ...be16(0x0043), ...be16(0x000b)]));
  expect(rc(st)).toBe(0);
  const handle = ((st[10]! << 24) | (st[11]! << 16) | (st[12]! << 8) | st[13]!) >>> 0;
  let nonceTPM = st.slice(16, 16 + ((st[14]! << 8) | st[15]!));
  /** One command with the session as its one authorization; `params` sees the nonces it will be sent with. */
  const call = async (cc: number, attrs: number, params: (nc: Uint8Array, nt: Uint8Array) => number[]): Promise<Uint8Array> => {
    const name = await nameNow();
    nonceCaller = nonceCaller.map((b) => (b + 1) & 0xff);
    const body = params(nonceCaller, nonceTPM);
    const mac = hmac(sha256, auth, join(sha256(join(be32(cc), name, name, body)), nonceCaller, nonceTPM, [attrs]));
    const session = [...be32(handle), ...tb(nonceCaller), attrs, ...tb(mac)];
    const r = await exec(mk(0x8002, cc, [...be32(index), ...be32(index), ...be32(session.length), ...session, ...body]));
    expect(rc(r)).toBe(0);
    const ps = ((r[10]! << 24) | (r[11]! << 16) | (r[12]! << 8) | r[13]!) >>> 0;
    const rParams = r.slice(14, 14 + ps);
    let p = 14 + ps;
    const nonce = r.slice(p + 2, p + 2 + ((r[p]! << 8) | r[p + 1]!));
    p += 2 + nonce.length;
    expect(r[p]).toBe(attrs);
    const rMac = r.subarray(p + 3, p + 3 + ((r[p + 1]! << 8) | r[p + 2]!));
    expect(hexOf(rMac)).toBe(hexOf(hmac(sha256, auth, join(sha256(join(be32(0), be32(cc), rParams)), nonce, nonceCaller, [attrs]))));
    nonceTPM = nonce;
    return rParams;
  };
  // NV_Write with decrypt: the data under KDFa(sessionKey ‖ authValue, "CFB", nonceCaller, nonceTPM)
  await call(0x137, 0x21, (nc, nt) => [...tb(cfb(kdf(auth, "CFB", nc, nt, 256), data, true)), ...be16(0)]);
  // NV_Read with encrypt: the data under KDFa(sessionKey ‖ authValue, "CFB", new nonceTPM, nonceCaller)
  const rParams = await call(0x14e, 0x41, () => [...be16(data.length), ...be16(0)]);
  const onWire = rParams.slice(2, 2 + ((rParams[0]! << 8) | rParams[1]!));
  const readBack = cfb(kdf(auth, "CFB", nonceTPM, nonceCaller, 256), onWire, false);
  const pw = [...be32(0x40000009), ...be16(0), 1, ...tb(auth)];
  const plain = await exec(mk(0x8002, 0x14e, [...be32(index), ...be32(index), ...be32(pw.length), ...pw, ...be16(data.length), ...be16(0)]));
  expect(rc(plain)).toBe(0);
  return { stored: plain.slice(16, 16 + data.length), readBack, onWire };
}

/**
 * The client side of a salted HMAC session (Part 1 §19.6.13, Annex C.6.1), written apart from
 * SoftTpm: CreatePrimary of an RSA-2048 storage key, the salt OAEP-encrypted to it (SHA-256,
 * label "SECRET\0"), sessionKey = KDFa(SHA-256, salt, "ATH", nonceTPM, nonceCaller, 256); then a
 * PCR_Extend authorized with that sessionKey, its response HMAC checked. Returns the codes of a
 * tampered salt and of the session's use.
 */
export async function saltedSession(exec: (b: Uint8Array) => Uint8Array | Promise<Uint8Array>): Promise<{ badSalt: number; extend: number }> {
  const be16 = (v: number) => [(v >>> 8) & 0xff, v & 0xff];
  const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  const tb = (b: ArrayLike<number>) => [...be16(b.length), ...Array.from(b)];
  const mk = (tag: number, cc: number, body: number[]) => Uint8Array.from([...be16(tag), ...be32(10 + body.length), ...be32(cc), ...body]);
  const join = (...p: ArrayLike<number>[]) => Uint8Array.from(p.flatMap((x) => Array.from(x)));
  const rc = (r: Uint8Array) => ((r[6]! << 24) | (r[7]! << 16) | (r[8]! << 8) | r[9]!) >>> 0;
  const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
  // RSA-2048 storage key: fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | restricted | decrypt, AES-128-CFB, NULL scheme
  const template = [...be16(0x0001), ...be16(0x000b), ...be32(0x00030472), ...be16(0), ...be16(0x0006), ...be16(128), ...be16(0x0043), ...be16(0x0010), ...be16(2048), ...be32(0), ...be16(0)];
  const pw = [...be32(0x40000009), ...be16(0), 1, ...be16(0)];
  const cp = await exec(mk(0x8002, 0x131, [...be32(0x40000001), ...be32(pw.length), ...pw, ...tb([...be16(0), ...be16(0)]), ...tb(template), ...be16(0), ...be32(0)]));
  expect(rc(cp)).toBe(0);
  const key = ((cp[10]! << 24) | (cp[11]! << 16) | (cp[12]! << 8) | cp[13]!) >>> 0;
  // outPublic after parameterSize: TPM2B_PUBLIC; the modulus is its last TPM2B
  const pubLen = (cp[18]! << 8) | cp[19]!;
  const pub = cp.subarray(20, 20 + pubLen);
  const n = pub.subarray(pub.length - 256);
  const publicKey = createPublicKey({ key: { kty: "RSA", n: Buffer.from(n).toString("base64url"), e: "AQAB" }, format: "jwk" });
  const salt = new Uint8Array(32).fill(0x5a);
  const encrypted = new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Buffer.from("SECRET\0") }, salt));
  let nonceCaller = new Uint8Array(16).fill(0x42);
  const start = (enc: Uint8Array) => exec(mk(0x8001, 0x176, [...be32(key), ...be32(0x40000007), ...tb(nonceCaller), ...tb(enc), 0, ...be16(0x0010), ...be16(0x000b)]));
  const tampered = encrypted.slice();
  tampered[100]! ^= 1;
  const badSalt = rc(await start(tampered));
  const st = await start(encrypted);
  expect(rc(st)).toBe(0);
  const handle = ((st[10]! << 24) | (st[11]! << 16) | (st[12]! << 8) | st[13]!) >>> 0;
  const nonceTPM = st.slice(16, 16 + ((st[14]! << 8) | st[15]!));
  const sessionKey = (() => {
    const out: number[] = [];
    for (let i = 1; out.length < 32; i++) out.push(...hmac(sha256, salt, join(be32(i), new TextEncoder().encode("ATH\0"), nonceTPM, nonceCaller, be32(256))));
    return Uint8Array.from(out.slice(0, 32));
  })();
  // PCR_Extend(16): PCR 16's authValue is empty, so the HMAC key is the sessionKey
  nonceCaller = nonceCaller.map((b) => (b + 1) & 0xff);
  const params = [...be32(1), ...be16(0x000b), ...new Array(32).fill(3)];
  const mac = hmac(sha256, sessionKey, join(sha256(join(be32(0x182), be32(16), params)), nonceCaller, nonceTPM, [1]));
  const session = [...be32(handle), ...tb(nonceCaller), 1, ...tb(mac)];
  const r = await exec(mk(0x8002, 0x182, [...be32(16), ...be32(session.length), ...session, ...params]));
  if (rc(r) === 0) {
    const p = 14 + 0;
    const nonce = r.slice(p + 2, p + 2 + ((r[p]! << 8) | r[p + 1]!));
    const q = p + 2 + nonce.length;
    const rMac = r.subarray(q + 3, q + 3 + ((r[q + 1]! << 8) | r[q + 2]!));
    expect(hexOf(rMac)).toBe(hexOf(hmac(sha256, sessionKey, join(sha256(join(be32(0), be32(0x182))), nonce, nonceCaller, [1]))));
  }
  await exec(mk(0x8001, 0x165, be32(handle)));
  await exec(mk(0x8001, 0x165, be32(key)));
  return { badSalt, extend: rc(r) };
}
