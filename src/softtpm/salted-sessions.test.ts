/**
 * Salted TPM2_StartAuthSession (TPM 2.0 Part 1 §19.6.13, Annex C.6; Part 3 §11.1) as a TSS does
 * it (tpm2-tss ESYS, iesys_compute_encrypted_salt): the salt is a digest of the tpmKey's nameAlg,
 * sent RSA-OAEP-encrypted (label "SECRET\0", the nameAlg as OAEP and MGF1 hash) or as the public
 * point of an ephemeral ECDH key with salt = KDFe(nameAlg, Z, "SECRET", Qe.x, tpmKey.x). The
 * client side here is node:crypto only (OAEP, ECDH, SHA, HMAC): the session key it derives must
 * authorize a PCR_Extend and verify SoftTpm's response HMAC.
 */
import { describe, expect, it } from "vitest";
import { constants, createCipheriv, createDecipheriv, createECDH, createHash, createHmac, createPublicKey, publicEncrypt } from "node:crypto";
import { TPM_CC } from "../wire/constants.js";
import type { SoftTpm } from "./softtpm.js";
import { cmd, hex, pcrRead, pcrReadDigests, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

const SHA256 = 0x000b;
const SHA384 = 0x000c;
const hashName = (alg: number): string => (alg === SHA256 ? "sha256" : "sha384");
const hashSize = (alg: number): number => (alg === SHA256 ? 32 : 48);
const join = (...p: ArrayLike<number>[]): Buffer => Buffer.from(p.flatMap((x) => Array.from(x)));
const be16At = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;

/** fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | decrypt: tpm2 createprimary's default. */
const STORAGE = 0x00030072;

/** TPMT_PUBLIC of a storage key: AES-128-CFB, NULL scheme, RSA-2048 or an ECC curve, empty unique. */
function storageTemplate(kind: "rsa" | "ecc", nameAlg: number, curve = 0x0003): number[] {
  const head = [...u16(kind === "rsa" ? 0x0001 : 0x0023), ...u16(nameAlg), ...u32(STORAGE), ...u16(0), ...u16(0x0006), ...u16(128), ...u16(0x0043), ...u16(0x0010)];
  return kind === "rsa" ? [...head, ...u16(2048), ...u32(0), ...u16(0)] : [...head, ...u16(curve), ...u16(0x0010), ...u16(0), ...u16(0)];
}

const PW = [...u32(0x40000009), ...u16(0), 1, ...u16(0)];

/**
 * CreatePrimary under the owner, then ContextSave, FlushContext and ContextLoad, as tpm2-tools
 * does across invocations: the key that salts is one restored from its context blob.
 */
function primary(t: SoftTpm, template: number[]): { handle: number; pub: Uint8Array } {
  const cp = t.executeSync(cmd(0x8002, TPM_CC.CreatePrimary, [...u32(0x40000001), ...u32(PW.length), ...PW, ...t2b([...u16(0), ...u16(0)]), ...t2b(template), ...u16(0), ...u32(0)]), 0);
  expect(rcOf(cp)).toBe(0);
  const created = u32At(cp, 10);
  const pub = cp.slice(20, 20 + be16At(cp, 18));
  const saved = t.executeSync(cmd(0x8001, TPM_CC.ContextSave, u32(created)), 0);
  expect(rcOf(saved)).toBe(0);
  expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(created)), 0))).toBe(0);
  const loaded = t.executeSync(cmd(0x8001, TPM_CC.ContextLoad, saved.subarray(10)), 0);
  expect(rcOf(loaded)).toBe(0);
  return { handle: u32At(loaded, 10), pub };
}

/** The ECC public point of a TPMT_PUBLIC of type ECC (the two TPM2Bs that end it). */
function eccUnique(pub: Uint8Array): { x: Buffer; y: Buffer } {
  const policyLen = be16At(pub, 8);
  let at = 10 + policyLen + 6 + 2 + 2 + 2; // symmetric, scheme, curveID, kdf
  const x = Buffer.from(pub.subarray(at + 2, at + 2 + be16At(pub, at)));
  at += 2 + x.length;
  const y = Buffer.from(pub.subarray(at + 2, at + 2 + be16At(pub, at)));
  return { x, y };
}

/** KDFe (Part 1 §11.4.10.3): H(counter ‖ Z ‖ label ‖ partyU ‖ partyV), counter from 1. */
function kdfe(alg: number, z: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bytes: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 1; out.length * hashSize(alg) < bytes; i++) out.push(createHash(hashName(alg)).update(join(u32(i), z, Buffer.from(label + "\0"), u, v)).digest());
  return Buffer.concat(out).subarray(0, bytes);
}

/** KDFa (Part 1 §11.4.10.2) with HMAC. */
function kdfa(alg: number, key: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 1; out.length * hashSize(alg) < bits / 8; i++) out.push(createHmac(hashName(alg), key).update(join(u32(i), Buffer.from(label + "\0"), u, v, u32(bits))).digest());
  return Buffer.concat(out).subarray(0, bits / 8);
}

/** StartAuthSession(tpmKey, bind NULL, encryptedSalt, HMAC, symmetric NULL, SHA-256). */
function start(t: SoftTpm, key: number, nonceCaller: Uint8Array, encryptedSalt: Uint8Array): Uint8Array {
  return t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(key), ...u32(0x40000007), ...t2b(Array.from(nonceCaller)), ...t2b(Array.from(encryptedSalt)), 0x00, ...u16(0x0010), ...u16(SHA256)]), 0);
}

/**
 * Uses a started HMAC session (sessionKey from the client's salt) to authorize PCR_Extend(16) and
 * checks the response HMAC; returns the command's response code.
 */
function useSession(t: SoftTpm, st: Uint8Array, salt: Uint8Array, nonceCaller: Uint8Array): number {
  const handle = u32At(st, 10);
  const nonceTPM = st.slice(16, 16 + be16At(st, 14));
  const sessionKey = kdfa(SHA256, salt, "ATH", nonceTPM, nonceCaller, 256);
  const nonce2 = nonceCaller.map((b) => (b + 1) & 0xff);
  const params = [...u32(1), ...u16(SHA256), ...new Array(32).fill(7)];
  const cpHash = createHash("sha256").update(join(u32(TPM_CC.PCR_Extend), u32(16), params)).digest();
  const mac = createHmac("sha256", sessionKey).update(join(cpHash, nonce2, nonceTPM, [1])).digest();
  const session = [...u32(handle), ...t2b(Array.from(nonce2)), 1, ...t2b(Array.from(mac))];
  const r = t.executeSync(cmd(0x8002, TPM_CC.PCR_Extend, [...u32(16), ...u32(session.length), ...session, ...params]), 0);
  if (rcOf(r) === 0) {
    // response: parameterSize (0), then the session: nonceTPM, attributes, hmac
    const p = 14;
    const nonce = r.slice(p + 2, p + 2 + be16At(r, p));
    const q = p + 2 + nonce.length;
    const rMac = r.subarray(q + 3, q + 3 + be16At(r, q + 1));
    const rpHash = createHash("sha256").update(join(u32(0), u32(TPM_CC.PCR_Extend))).digest();
    expect(hex(rMac)).toBe(createHmac("sha256", sessionKey).update(join(rpHash, nonce, nonce2, [1])).digest("hex"));
  }
  t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(handle)), 0);
  return rcOf(r);
}

describe("salted sessions with a context-loaded RSA tpmKey (OAEP, label SECRET\\0, the key's nameAlg)", () => {
  for (const nameAlg of [SHA256, SHA384]) {
    it(`nameAlg ${hashName(nameAlg)}: the OAEP salt of ${hashSize(nameAlg)} bytes keys the session`, () => {
      const t = startedTpm();
      const { handle, pub } = primary(t, storageTemplate("rsa", nameAlg));
      const n = Buffer.from(pub.subarray(pub.length - 256));
      const publicKey = createPublicKey({ key: { kty: "RSA", n: n.toString("base64url"), e: "AQAB" }, format: "jwk" });
      const salt = Buffer.alloc(hashSize(nameAlg), 0x5a);
      const encrypted = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hashName(nameAlg), oaepLabel: Buffer.from("SECRET\0") }, salt);
      const nonceCaller = new Uint8Array(16).fill(0x42);
      const st = start(t, handle, nonceCaller, encrypted);
      expect(rcOf(st)).toBe(0);
      expect(useSession(t, st, salt, nonceCaller)).toBe(0);
    });
  }
});

describe("salted sessions with an ECC tpmKey (ECDH, KDFe(Z, SECRET, Qe.x, tpmKey.x))", () => {
  const cases = [
    { name: "P-256 / SHA-256", curve: 0x0003, nodeCurve: "prime256v1", nameAlg: SHA256 },
    { name: "P-384 / SHA-384", curve: 0x0004, nodeCurve: "secp384r1", nameAlg: SHA384 },
  ];
  for (const c of cases) {
    it(`${c.name}: the ephemeral point's salt keys the session`, () => {
      const t = startedTpm();
      const { handle, pub } = primary(t, storageTemplate("ecc", c.nameAlg, c.curve));
      const q = eccUnique(pub);
      const ecdh = createECDH(c.nodeCurve);
      ecdh.generateKeys();
      const z = ecdh.computeSecret(Buffer.concat([Buffer.of(4), q.x, q.y]));
      const qe = ecdh.getPublicKey();
      const size = (qe.length - 1) / 2;
      const qeX = qe.subarray(1, 1 + size);
      const qeY = qe.subarray(1 + size);
      const salt = kdfe(c.nameAlg, z, "SECRET", qeX, q.x, hashSize(c.nameAlg));
      const nonceCaller = new Uint8Array(16).fill(0x24);
      const st = start(t, handle, nonceCaller, Uint8Array.from([...t2b(Array.from(qeX)), ...t2b(Array.from(qeY))]));
      expect(rcOf(st)).toBe(0);
      expect(useSession(t, st, salt, nonceCaller)).toBe(0);
    });
  }

  it("a point off the curve, a truncated point or an empty salt is TPM_RC_VALUE + P2", () => {
    const t = startedTpm();
    const { handle, pub } = primary(t, storageTemplate("ecc", SHA256));
    const q = eccUnique(pub);
    const nonce = new Uint8Array(16).fill(1);
    const offCurve = Buffer.from(q.y);
    offCurve[31]! ^= 1;
    expect(rcOf(start(t, handle, nonce, Uint8Array.from([...t2b(Array.from(q.x)), ...t2b(Array.from(offCurve))])))).toBe(0x2c4);
    expect(rcOf(start(t, handle, nonce, Uint8Array.from([...t2b(Array.from(q.x)), 0x00])))).toBe(0x2c4);
    expect(rcOf(start(t, handle, nonce, new Uint8Array(0)))).toBe(0x2c4);
  });

  it("checks in the reference order: key type, empty salt, then decrypt (swtpm 0.7.1, measured)", () => {
    const t = startedTpm();
    const create = (template: number[]): number => {
      const cp = t.executeSync(cmd(0x8002, TPM_CC.CreatePrimary, [...u32(0x40000001), ...u32(PW.length), ...PW, ...t2b([...u16(0), ...u16(0)]), ...t2b(template), ...u16(0), ...u32(0)]), 0);
      expect(rcOf(cp)).toBe(0);
      return u32At(cp, 10);
    };
    // a signing keyed-hash key (HMAC-SHA256): not asymmetric, TPM_RC_KEY + H1 before anything else
    const hmacKey = create([...u16(0x0008), ...u16(SHA256), ...u32(0x00040072), ...u16(0), ...u16(0x0005), ...u16(SHA256), ...u16(0)]);
    expect(rcOf(start(t, hmacKey, new Uint8Array(16).fill(1), new Uint8Array(0)))).toBe(0x19c);
    // a signing ECC key (ECDSA-SHA256, P-256): an empty salt is TPM_RC_VALUE + P2, else no decrypt is TPM_RC_ATTRIBUTES + H1
    const signer = create([...u16(0x0023), ...u16(SHA256), ...u32(0x00040072), ...u16(0), ...u16(0x0010), ...u16(0x0018), ...u16(SHA256), ...u16(0x0003), ...u16(0x0010), ...u16(0), ...u16(0)]);
    expect(rcOf(start(t, signer, new Uint8Array(16).fill(1), new Uint8Array(0)))).toBe(0x2c4);
    expect(rcOf(start(t, signer, new Uint8Array(16).fill(1), Uint8Array.of(0, 1, 1, 0, 1, 1)))).toBe(0x182);
  });

  it("a keyed-hash tpmKey cannot salt: TPM_RC_KEY + H1", () => {
    const t = startedTpm();
    // keyed-hash with decrypt (fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | decrypt), XOR-SHA256 with KDF1_SP800_108
    const template = [...u16(0x0008), ...u16(SHA256), ...u32(0x00020072), ...u16(0), ...u16(0x000a), ...u16(SHA256), ...u16(0x0022), ...u16(0)];
    const cp = t.executeSync(cmd(0x8002, TPM_CC.CreatePrimary, [...u32(0x40000001), ...u32(PW.length), ...PW, ...t2b([...u16(0), ...u16(0)]), ...t2b(template), ...u16(0), ...u32(0)]), 0);
    expect(rcOf(cp)).toBe(0);
    expect(rcOf(start(t, u32At(cp, 10), new Uint8Array(16).fill(1), new Uint8Array(32).fill(9)))).toBe(0x19c);
  });
});

describe("GetRandom with a salted session that encrypts its response (Part 3 §16.1: randomBytes is a TPM2B)", () => {
  /**
   * On a fresh SoftTpm with the test seed: an ECC-salted HMAC session with AES-128-CFB, then
   * GetRandom(16), with that session and its attributes `attrs` or (`attrs` 0) without sessions;
   * returns randomBytes, decrypted by the client when the session asked to encrypt them, after
   * checking the response HMAC.
   */
  function saltedGetRandom(attrs: number): string {
    const t = startedTpm();
    const { handle: key, pub } = primary(t, storageTemplate("ecc", SHA256));
    const q = eccUnique(pub);
    const ecdh = createECDH("prime256v1");
    ecdh.generateKeys();
    const z = ecdh.computeSecret(Buffer.concat([Buffer.of(4), q.x, q.y]));
    const qe = ecdh.getPublicKey();
    const salt = kdfe(SHA256, z, "SECRET", qe.subarray(1, 33), q.x, 32);
    const nonceCaller = new Uint8Array(16).fill(0x11);
    const body = [...u32(key), ...u32(0x40000007), ...t2b(Array.from(nonceCaller)), ...t2b([...t2b(Array.from(qe.subarray(1, 33))), ...t2b(Array.from(qe.subarray(33)))]), 0x00, ...u16(0x0006), ...u16(128), ...u16(0x0043), ...u16(SHA256)];
    const st = t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, body), 0);
    expect(rcOf(st)).toBe(0);
    const handle = u32At(st, 10);
    const nonceTPM = st.slice(16, 16 + be16At(st, 14));
    const sessionKey = kdfa(SHA256, salt, "ATH", nonceTPM, nonceCaller, 256);
    const nonce2 = new Uint8Array(16).fill(0x12);
    const params = u16(16);
    const cpHash = createHash("sha256").update(join(u32(TPM_CC.GetRandom), params)).digest();
    const mac = createHmac("sha256", sessionKey).update(join(cpHash, nonce2, nonceTPM, [attrs])).digest();
    const session = [...u32(handle), ...t2b(Array.from(nonce2)), attrs, ...t2b(Array.from(mac))];
    if (attrs === 0) {
      const plain = t.executeSync(cmd(0x8001, TPM_CC.GetRandom, params), 0);
      expect(rcOf(plain)).toBe(0);
      return hex(plain.subarray(12));
    }
    const r = t.executeSync(cmd(0x8002, TPM_CC.GetRandom, [...u32(session.length), ...session, ...params]), 0);
    expect(rcOf(r)).toBe(0);
    const paramSize = u32At(r, 10);
    expect(be16At(r, 14)).toBe(16);
    const bytes = r.subarray(16, 14 + paramSize);
    const newNonce = r.slice(14 + paramSize + 2, 14 + paramSize + 2 + be16At(r, 14 + paramSize));
    // the response HMAC is over the parameters as sent: it verifies with the client's sessionKey
    const rpHash = createHash("sha256").update(join(u32(0), u32(TPM_CC.GetRandom), r.subarray(14, 14 + paramSize))).digest();
    const rMacAt = 14 + paramSize + 2 + newNonce.length + 1;
    expect(hex(r.subarray(rMacAt + 2, rMacAt + 2 + be16At(r, rMacAt)))).toBe(createHmac("sha256", sessionKey).update(join(rpHash, newNonce, nonce2, [attrs])).digest("hex"));
    if (!(attrs & 0x40)) return hex(bytes);
    // AES-CFB key and IV from KDFa(sessionKey, "CFB", nonceNewer = nonceTPM', nonceOlder = nonceCaller), Part 1 §21.3
    const kiv = kdfa(SHA256, sessionKey, "CFB", newNonce, nonce2, 256);
    const decipher = createDecipheriv("aes-128-cfb", kiv.subarray(0, 16), kiv.subarray(16, 32));
    return Buffer.concat([decipher.update(bytes), decipher.final()]).toString("hex");
  }

  it("the client decrypts the same randomBytes that a command without sessions gets from the same seed", () => {
    const plain = saltedGetRandom(0);
    expect(plain).toHaveLength(32);
    expect(saltedGetRandom(0x41)).toBe(plain);
  });
});

describe("an authorizing session followed by a salted decrypt session (Part 1 §19.6.5: nonceTPMdecrypt)", () => {
  /** An ECC-salted HMAC session with AES-128-CFB: its handle, nonceTPM and client-side sessionKey. */
  function eccSession(t: SoftTpm, key: number, q: { x: Buffer; y: Buffer }, fill: number): { handle: number; nonceTPM: Uint8Array; sessionKey: Buffer } {
    const ecdh = createECDH("prime256v1");
    ecdh.generateKeys();
    const z = ecdh.computeSecret(Buffer.concat([Buffer.of(4), q.x, q.y]));
    const qe = ecdh.getPublicKey();
    const salt = kdfe(SHA256, z, "SECRET", qe.subarray(1, 33), q.x, 32);
    const nonceCaller = new Uint8Array(16).fill(fill);
    const body = [...u32(key), ...u32(0x40000007), ...t2b(Array.from(nonceCaller)), ...t2b([...t2b(Array.from(qe.subarray(1, 33))), ...t2b(Array.from(qe.subarray(33)))]), 0x00, ...u16(0x0006), ...u16(128), ...u16(0x0043), ...u16(SHA256)];
    const st = t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, body), 0);
    expect(rcOf(st)).toBe(0);
    const nonceTPM = st.slice(16, 16 + be16At(st, 14));
    return { handle: u32At(st, 10), nonceTPM, sessionKey: kdfa(SHA256, salt, "ATH", nonceTPM, nonceCaller, 256) };
  }

  it("PCR_Event: session 1's HMAC takes session 2's nonceTPM; the event data is decrypted (as tpm2-tools create -S does)", () => {
    const t = startedTpm();
    const { handle: key, pub } = primary(t, storageTemplate("ecc", SHA256));
    const q = eccUnique(pub);
    const s1 = eccSession(t, key, q, 0x31);
    const s2 = eccSession(t, key, q, 0x32);
    const event = Buffer.from("salted event data");
    const n1 = new Uint8Array(16).fill(0x41);
    const n2 = new Uint8Array(16).fill(0x42);
    // session 2 decrypts: AES-CFB with KDFa(sessionKey2, "CFB", nonceCaller2, nonceTPM2), Part 1 §21.3
    const kiv = kdfa(SHA256, s2.sessionKey, "CFB", n2, s2.nonceTPM, 256);
    const cipher = createCipheriv("aes-128-cfb", kiv.subarray(0, 16), kiv.subarray(16, 32));
    const encrypted = Buffer.concat([cipher.update(event), cipher.final()]);
    const params = t2b(Array.from(encrypted));
    const cpHash = createHash("sha256").update(join(u32(TPM_CC.PCR_Event), u32(16), params)).digest();
    // PCR 16's authValue is empty: session 1's key is its sessionKey; it adds nonceTPMdecrypt
    const mac1 = createHmac("sha256", s1.sessionKey).update(join(cpHash, n1, s1.nonceTPM, s2.nonceTPM, [0x01])).digest();
    const mac2 = createHmac("sha256", s2.sessionKey).update(join(cpHash, n2, s2.nonceTPM, [0x21])).digest();
    const area = [...u32(s1.handle), ...t2b(Array.from(n1)), 0x01, ...t2b(Array.from(mac1)), ...u32(s2.handle), ...t2b(Array.from(n2)), 0x21, ...t2b(Array.from(mac2))];
    const r = t.executeSync(cmd(0x8002, TPM_CC.PCR_Event, [...u32(16), ...u32(area.length), ...area, ...params]), 0);
    expect(rcOf(r)).toBe(0);
    // PCR 16 (SHA-256 bank) = SHA-256(0³² ‖ SHA-256(event)): the TPM saw the plaintext
    const expected = createHash("sha256").update(Buffer.concat([Buffer.alloc(32), createHash("sha256").update(event).digest()])).digest("hex");
    expect(hex(pcrReadDigests(t.executeSync(pcrRead([[SHA256, 1 << 16]]), 0))[0]!)).toBe(expected);
  });
});
