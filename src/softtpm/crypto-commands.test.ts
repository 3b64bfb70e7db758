import { describe, expect, it } from "vitest";
import { constants, createCipheriv, createHash, createPublicKey, generateKeyPairSync, privateDecrypt, publicEncrypt, verify as nodeVerify } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { p256, p384 } from "@noble/curves/nist.js";
import { TpmReader } from "../wire/buffer.js";
import { TPM_ALG, TPM_ECC_CURVE, TPMA_OBJECT } from "../wire/constants.js";
import { type Scheme, type SymDef, type TpmtPublic, marshalPublic, readPublic, readSignature } from "../wire/structures.js";
import { execFileSync } from "node:child_process";
import { aesMode } from "./commands/symmetric.js";
import { authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

/**
 * The TPM the tests run against: SoftTpm, or with TPMKIT_SWTPM_PORT set a running swtpm (each
 * command through tpm2-tools' tpm2_send; its transient objects flushed first), so every code
 * here can be checked against swtpm 0.7.1:
 * `TPMKIT_SWTPM_PORT=2321 npx vitest run src/softtpm/crypto-commands.test.ts`.
 */
interface SoftTpm {
  executeSync(cmd: Uint8Array, locality: number): Uint8Array;
}
const SWTPM = process.env["TPMKIT_SWTPM_PORT"];

function fresh(): SoftTpm {
  if (!SWTPM) return startedTpm();
  const t: SoftTpm = { executeSync: (c) => new Uint8Array(execFileSync("tpm2_send", ["-T", `swtpm:port=${SWTPM}`], { input: c })) };
  const r = t.executeSync(cmd(0x8001, 0x17a, [...u32(1), ...u32(0x80000000), ...u32(20)]), 0);
  for (let i = 0, n = u32At(r, 15); i < n; i++) t.executeSync(cmd(0x8001, 0x165, u32(u32At(r, 19 + 4 * i))), 0);
  return t;
}

const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const CC = {
  CreatePrimary: 0x131, Create: 0x153, Load: 0x157, LoadExternal: 0x167, ReadPublic: 0x173, FlushContext: 0x165, Hash: 0x17d,
  Sign: 0x15d, VerifySignature: 0x177, RSA_Encrypt: 0x174, RSA_Decrypt: 0x159, EncryptDecrypt: 0x164, EncryptDecrypt2: 0x193, HMAC: 0x155, ECDH_KeyGen: 0x163, ECDH_ZGen: 0x154,
};
const A = TPMA_OBJECT;
const BASE = A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH;
const E = new Uint8Array(0);
const NULL_SCHEME: Scheme = { scheme: TPM_ALG.NULL, hashAlg: 0 };
const NULL_SYM: SymDef = { algorithm: TPM_ALG.NULL, keyBits: 0, mode: TPM_ALG.NULL };

function rsa(attrs: number, scheme = NULL_SCHEME, bits = 2048, sym = NULL_SYM): Uint8Array {
  return marshalPublic({ type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: E, symmetric: sym, scheme, keyBits: bits, exponent: 0, unique: E });
}
function ecc(attrs: number, curveId: number, scheme = NULL_SCHEME, sym = NULL_SYM, kdf = NULL_SCHEME): Uint8Array {
  return marshalPublic({ type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: E, symmetric: sym, scheme, curveId, kdf, unique: { x: E, y: E } });
}
const AES128CFB: SymDef = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
const rsaStorage = () => rsa(BASE | A.RESTRICTED | A.DECRYPT, NULL_SCHEME, 2048, AES128CFB);
const eccStorage = (curve: number = TPM_ECC_CURVE.NIST_P256) => ecc(BASE | A.RESTRICTED | A.DECRYPT, curve, NULL_SCHEME, AES128CFB);
const symKey = (mode: number, attrs = BASE | A.DECRYPT | A.SIGN_ENCRYPT) =>
  marshalPublic({ type: TPM_ALG.SYMCIPHER, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: E, symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode }, unique: E });
const hmacKey = (hashAlg: number | undefined, attrs = BASE | A.SIGN_ENCRYPT) =>
  marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: E, scheme: hashAlg === undefined ? NULL_SCHEME : { scheme: TPM_ALG.HMAC, hashAlg }, unique: E });

const createParams = (template: Uint8Array, data: number[] = []) => [...t2b([...t2b([]), ...t2b(data)]), ...t2b(template), ...u16(0), ...u32(0)];

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}

/** CreatePrimary: handle and public area. */
function primary(t: SoftTpm, template: Uint8Array, hierarchy = OWNER): { handle: number; pub: TpmtPublic; area: Uint8Array } {
  const r = ok(t.executeSync(authCmd(CC.CreatePrimary, [hierarchy], [[]], createParams(template)), 0));
  const area = new TpmReader(r, 18).tpm2b().slice();
  return { handle: u32At(r, 10), pub: readPublic(new TpmReader(area)), area };
}

/** Create + Load under `parent`. */
function child(t: SoftTpm, parent: number, template: Uint8Array, data: number[] = []): { handle: number; pub: TpmtPublic; priv: Uint8Array; area: Uint8Array } {
  const r = ok(t.executeSync(authCmd(CC.Create, [parent], [[]], createParams(template, data)), 0));
  const rd = new TpmReader(r, 14);
  const priv = rd.tpm2b().slice();
  const area = rd.tpm2b().slice();
  const l = ok(t.executeSync(authCmd(CC.Load, [parent], [[]], [...t2b(priv), ...t2b(area)]), 0));
  return { handle: u32At(l, 10), pub: readPublic(new TpmReader(area)), priv, area };
}

const flush = (t: SoftTpm, h: number) => ok(t.executeSync(cmd(0x8001, CC.FlushContext, u32(h)), 0));

/** The parameter area of a response with sessions (after parameterSize). */
const params = (r: Uint8Array) => new TpmReader(r, 14);

const signCmd = (key: number, digest: Uint8Array, scheme: number[] = u16(TPM_ALG.NULL), ticket: number[] = [...u16(0x8024), ...u32(RH_NULL), ...u16(0)]) =>
  authCmd(CC.Sign, [key], [[]], [...t2b(digest), ...scheme, ...ticket]);

function sign(t: SoftTpm, key: number, digest: Uint8Array, scheme?: number[], ticket?: number[]) {
  const r = ok(t.executeSync(signCmd(key, digest, scheme, ticket), 0));
  const rd = params(r);
  const start = rd.offset;
  const sig = readSignature(rd);
  return { sig, bytes: r.slice(start, rd.offset) };
}

const verifyCmd = (key: number, digest: Uint8Array, sigBytes: Uint8Array) => cmd(0x8001, CC.VerifySignature, [...u32(key), ...t2b(digest), ...sigBytes]);

function eccUnique(pub: TpmtPublic): { x: Uint8Array; y: Uint8Array } {
  if (pub.type !== TPM_ALG.ECC) throw new Error(`not an ECC key: type ${pub.type}`);
  return pub.unique;
}

const spki = (pub: TpmtPublic) => {
  if (pub.type === TPM_ALG.RSA) return createPublicKey({ key: { kty: "RSA", n: Buffer.from(pub.unique).toString("base64url"), e: "AQAB" }, format: "jwk" });
  if (pub.type !== TPM_ALG.ECC) throw new Error("not asymmetric");
  const crv = pub.curveId === TPM_ECC_CURVE.NIST_P256 ? "P-256" : "P-384";
  return createPublicKey({ key: { kty: "EC", crv, x: Buffer.from(pub.unique.x).toString("base64url"), y: Buffer.from(pub.unique.y).toString("base64url") }, format: "jwk" });
};

describe("ECC objects (NIST P-256, P-384)", () => {
  it("a primary ECC key is derived from the seed: the same template gives the same point, on the curve, coordinates of the curve size", () => {
    const t = fresh();
    const a = primary(t, eccStorage());
    const b = primary(t, eccStorage());
    const qa = eccUnique(a.pub);
    const qb = eccUnique(b.pub);
    expect(qa.x.length).toBe(32);
    expect(hex(qb.x) + hex(qb.y)).toBe(hex(qa.x) + hex(qa.y));
    flush(t, b.handle);
    expect(() => p256.Point.fromBytes(Uint8Array.from([4, ...qa.x, ...qa.y])).assertValidity()).not.toThrow();
    const c = primary(t, eccStorage(TPM_ECC_CURVE.NIST_P384));
    const qc = eccUnique(c.pub);
    expect(qc.y.length).toBe(48);
    expect(() => p384.Point.fromBytes(Uint8Array.from([4, ...qc.x, ...qc.y])).assertValidity()).not.toThrow();
    flush(t, c.handle);
    // another seed (the null hierarchy) gives another key
    const n = primary(t, eccStorage(), RH_NULL);
    expect(hex(eccUnique(n.pub).x)).not.toBe(hex(qa.x));
  });

  it("refuses an unknown curve (TPM_RC_CURVE + P2), a KDF (TPM_RC_KDF + P2) and a non-ECDSA signing scheme (TPM_RC_SCHEME + P2)", () => {
    const t = fresh();
    const rc = (tpl: Uint8Array) => rcOf(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], createParams(tpl)), 0));
    expect(rc(ecc(BASE | A.SIGN_ENCRYPT, 0x0099))).toBe(0x2e6);
    expect(rc(ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, NULL_SCHEME, NULL_SYM, { scheme: TPM_ALG.KDF1_SP800_56A, hashAlg: TPM_ALG.SHA256 }))).toBe(0x2cc);
    // an RSA scheme in an ECC template: TPMI_ALG_ECC_SCHEME refuses it (swtpm 0.7.1 too)
    expect(rc(ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }))).toBe(0x2d2);
    expect(rc(ecc(BASE | A.RESTRICTED | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256))).toBe(0x2d2); // restricted signing needs a scheme
  });

  it("ordinary ECC keys under an ECC parent: Create, Load, ReadPublic; a tampered point is TPM_RC_BINDING", () => {
    const t = fresh();
    const parent = primary(t, eccStorage());
    const k1 = child(t, parent.handle, ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    const k2 = child(t, parent.handle, ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    expect(hex(eccUnique(k1.pub).x)).not.toBe(hex(eccUnique(k2.pub).x)); // random, not derived
    const rp = ok(t.executeSync(cmd(0x8001, CC.ReadPublic, u32(k1.handle)), 0));
    expect(hex(new TpmReader(rp, 10).tpm2b())).toBe(hex(k1.area));
    flush(t, k2.handle);
    // LoadExternal of the public part; a point off the curve is TPM_RC_ECC_POINT + P2
    const ext = (area: Uint8Array) => t.executeSync(cmd(0x8001, CC.LoadExternal, [...u16(0), ...t2b(area), ...u32(OWNER)]), 0);
    const e1 = u32At(ok(ext(k1.area)), 10);
    const bad = k1.area.slice();
    bad[bad.length - 1]! ^= 1;
    flush(t, e1);
    expect(rcOf(ext(bad))).toBe(0x2e7);
    // Load of the private blob with the other key's public area: the integrity check fails first
    expect(rcOf(t.executeSync(authCmd(CC.Load, [parent.handle], [[]], [...t2b(k1.priv), ...t2b(k2.area)]), 0))).toBe(0x1df);
  });
});

describe("TPM2_Sign (Part 3 §20.2) and TPM2_VerifySignature (§20.1)", () => {
  const digest = sha256(new TextEncoder().encode("hello"));

  it("ECDSA P-256: node:crypto verifies the signature; VerifySignature returns a TPMT_TK_VERIFIED; a wrong digest is TPM_RC_SIGNATURE + P2", () => {
    const t = fresh();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    const { sig, bytes } = sign(t, key.handle, digest);
    expect(sig.sigAlg).toBe(TPM_ALG.ECDSA);
    expect(sig.r!.length).toBe(32);
    expect(nodeVerify("sha256", new TextEncoder().encode("hello"), { key: spki(key.pub), dsaEncoding: "ieee-p1363" }, Uint8Array.from([...sig.r!, ...sig.s!]))).toBe(true);
    const v = ok(t.executeSync(verifyCmd(key.handle, digest, bytes), 0));
    expect(hex(v.subarray(10, 16))).toBe("8022" + "40000001"); // TPM_ST_VERIFIED, owner
    expect(new TpmReader(v, 16).tpm2b().length).toBe(64);
    const other = digest.slice();
    other[0]! ^= 1;
    expect(rcOf(t.executeSync(verifyCmd(key.handle, other, bytes), 0))).toBe(0x2db);
  });

  it("ECDSA P-384 with SHA-384", () => {
    const t = fresh();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P384, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 }));
    const d = createHash("sha384").update("x").digest();
    const { sig } = sign(t, key.handle, d);
    expect(nodeVerify("sha384", Buffer.from("x"), { key: spki(key.pub), dsaEncoding: "ieee-p1363" }, Uint8Array.from([...sig.r!, ...sig.s!]))).toBe(true);
  });

  it("RSASSA and RSAPSS (salt = digest length): node:crypto verifies both; VerifySignature agrees", () => {
    const t = fresh();
    const key = primary(t, rsa(BASE | A.SIGN_ENCRYPT));
    const msg = new TextEncoder().encode("hello");
    const a = sign(t, key.handle, digest, [...u16(TPM_ALG.RSASSA), ...u16(TPM_ALG.SHA256)]);
    expect(a.sig.sig!.length).toBe(256);
    expect(nodeVerify("sha256", msg, spki(key.pub), a.sig.sig!)).toBe(true);
    const b = sign(t, key.handle, digest, [...u16(TPM_ALG.RSAPSS), ...u16(TPM_ALG.SHA256)]);
    expect(nodeVerify("sha256", msg, { key: spki(key.pub), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, b.sig.sig!)).toBe(true);
    ok(t.executeSync(verifyCmd(key.handle, digest, a.bytes), 0));
    ok(t.executeSync(verifyCmd(key.handle, digest, b.bytes), 0));
    // a key of the null hierarchy: a NULL ticket
    const n = primary(t, rsa(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }), RH_NULL);
    const s = sign(t, n.handle, digest);
    expect(hex(ok(t.executeSync(verifyCmd(n.handle, digest, s.bytes), 0)).subarray(10))).toBe("8022" + "40000007" + "0000");
  });

  it("HMAC keys sign with HMAC", () => {
    const t = fresh();
    const parent = primary(t, rsaStorage());
    const k = child(t, parent.handle, marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: (BASE & ~A.SENSITIVEDATAORIGIN) | A.SIGN_ENCRYPT, authPolicy: E, scheme: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 }, unique: E }), [1, 2, 3]);
    const { sig, bytes } = sign(t, k.handle, digest);
    expect(sig.sigAlg).toBe(TPM_ALG.HMAC);
    expect(hex(sig.sig!)).toBe(hex(hmac(sha256, Uint8Array.of(1, 2, 3), digest)));
    ok(t.executeSync(verifyCmd(k.handle, digest, bytes), 0));
  });

  it("a restricted signing key signs only a digest with a hashcheck ticket from TPM2_Hash (TPM_RC_TICKET + P3 otherwise)", () => {
    const t = fresh();
    const key = primary(t, ecc(BASE | A.RESTRICTED | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    const data = new TextEncoder().encode("some data to sign");
    expect(rcOf(t.executeSync(signCmd(key.handle, sha256(data)), 0))).toBe(0x3e0);
    const h = ok(t.executeSync(cmd(0x8001, CC.Hash, [...t2b(data), ...u16(TPM_ALG.SHA256), ...u32(OWNER)]), 0));
    const rd = new TpmReader(h, 10);
    const d = rd.tpm2b().slice();
    const ticket = h.slice(rd.offset);
    const { sig } = sign(t, key.handle, d, undefined, [...ticket]);
    expect(nodeVerify("sha256", data, { key: spki(key.pub), dsaEncoding: "ieee-p1363" }, Uint8Array.from([...sig.r!, ...sig.s!]))).toBe(true);
    // the ticket of another digest
    const other = d.slice();
    other[0]! ^= 1;
    expect(rcOf(t.executeSync(signCmd(key.handle, other, undefined, [...ticket]), 0))).toBe(0x3e0);
    // data starting with TPM_GENERATED_VALUE gets a NULL ticket, which a restricted key refuses
    const gen = ok(t.executeSync(cmd(0x8001, CC.Hash, [...t2b([0xff, 0x54, 0x43, 0x47, 1]), ...u16(TPM_ALG.SHA256), ...u32(OWNER)]), 0));
    const gr = new TpmReader(gen, 10);
    const gd = gr.tpm2b().slice();
    expect(rcOf(t.executeSync(signCmd(key.handle, gd, undefined, [...gen.slice(gr.offset)]), 0))).toBe(0x3e0);
  });

  it("codes: not a signing key TPM_RC_KEY + H1; no scheme or a different one TPM_RC_SCHEME + P2; a digest not of the hash's size TPM_RC_SIZE + P1; a wrong ticket tag TPM_RC_TAG + P3", () => {
    const t = fresh();
    const storage = primary(t, rsaStorage());
    expect(rcOf(t.executeSync(signCmd(storage.handle, digest), 0))).toBe(0x19c);
    flush(t, storage.handle);
    const noScheme = primary(t, rsa(BASE | A.SIGN_ENCRYPT));
    expect(rcOf(t.executeSync(signCmd(noScheme.handle, digest), 0))).toBe(0x2d2);
    const withScheme = primary(t, rsa(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }));
    expect(rcOf(t.executeSync(signCmd(withScheme.handle, digest, [...u16(TPM_ALG.RSAPSS), ...u16(TPM_ALG.SHA256)]), 0))).toBe(0x2d2);
    expect(rcOf(t.executeSync(signCmd(withScheme.handle, digest.subarray(0, 20)), 0))).toBe(0x1d5);
    expect(rcOf(t.executeSync(signCmd(withScheme.handle, digest, u16(TPM_ALG.NULL), [...u16(0x8021), ...u32(RH_NULL), ...u16(0)]), 0))).toBe(0x3d7);
    // an RSA key asked for ECDSA: the scheme does not fit the key (TPM_RC_SCHEME + P2, swtpm 0.7.1 too)
    expect(rcOf(t.executeSync(signCmd(noScheme.handle, digest, [...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256)]), 0))).toBe(0x2d2);
    // VerifySignature with a key that does not sign: TPM_RC_ATTRIBUTES + H1
    const s = sign(t, withScheme.handle, digest);
    flush(t, noScheme.handle);
    const decryptKey = primary(t, rsa(BASE | A.DECRYPT));
    expect(rcOf(t.executeSync(verifyCmd(decryptKey.handle, digest, s.bytes), 0))).toBe(0x182);
  });
});

describe("TPM2_RSA_Encrypt / TPM2_RSA_Decrypt (Part 3 §14.2, §14.3)", () => {
  const decryptCmd = (key: number, c: Uint8Array, scheme: number[], label: number[] = []) => authCmd(CC.RSA_Decrypt, [key], [[]], [...t2b(c), ...scheme, ...t2b(label)]);
  const encryptCmd = (key: number, m: Uint8Array, scheme: number[], label: number[] = []) => cmd(0x8001, CC.RSA_Encrypt, [...u32(key), ...t2b(m), ...scheme, ...t2b(label)]);
  const OAEP = [...u16(TPM_ALG.OAEP), ...u16(TPM_ALG.SHA256)];
  const label = [...new TextEncoder().encode("label"), 0];

  it("OAEP with a label, RSAES and raw (NULL) round trips, and interoperate with node:crypto", () => {
    const t = fresh();
    const key = primary(t, rsa(BASE | A.DECRYPT));
    const m = new TextEncoder().encode("secret");
    for (const scheme of [OAEP, u16(TPM_ALG.RSAES)]) {
      const c = new TpmReader(ok(t.executeSync(encryptCmd(key.handle, m, scheme, label), 0)), 10).tpm2b().slice();
      expect(c.length).toBe(256);
      expect(hex(new TpmReader(ok(t.executeSync(decryptCmd(key.handle, c, scheme, label), 0)), 14).tpm2b())).toBe(hex(m));
    }
    // node encrypts with OAEP-SHA256 and the label, the TPM decrypts
    const c = publicEncrypt({ key: spki(key.pub), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Uint8Array.from(label) }, m);
    expect(hex(new TpmReader(ok(t.executeSync(decryptCmd(key.handle, c, OAEP, label), 0)), 14).tpm2b())).toBe(hex(m));
    // the wrong label: TPM_RC_VALUE (Part 3 §14.3; swtpm 0.7.1 says TPM_RC_FAILURE, measured)
    expect(rcOf(t.executeSync(decryptCmd(key.handle, c, OAEP, [0x61, 0]), 0))).toBe(SWTPM ? 0x101 : 0x084);
    // raw: x^e mod n and back
    const raw = new Uint8Array(256);
    raw[255] = 7;
    const rc = new TpmReader(ok(t.executeSync(encryptCmd(key.handle, raw, u16(TPM_ALG.NULL)), 0)), 10).tpm2b().slice();
    expect(hex(new TpmReader(ok(t.executeSync(decryptCmd(key.handle, rc, u16(TPM_ALG.NULL)), 0)), 14).tpm2b())).toBe(hex(raw));
  });

  it("codes: a label without its terminating zero TPM_RC_VALUE + P3; a signing-only key TPM_RC_ATTRIBUTES + H1; an ECC key TPM_RC_KEY + H1; a scheme other than the key's TPM_RC_SCHEME + P2; a cipher text of the wrong size TPM_RC_SIZE; a message too long TPM_RC_VALUE", () => {
    const t = fresh();
    const key = primary(t, rsa(BASE | A.DECRYPT, { scheme: TPM_ALG.OAEP, hashAlg: TPM_ALG.SHA256 }));
    expect(rcOf(t.executeSync(encryptCmd(key.handle, Uint8Array.of(1), u16(TPM_ALG.NULL), [0x61]), 0))).toBe(0x3c4);
    expect(rcOf(t.executeSync(encryptCmd(key.handle, Uint8Array.of(1), u16(TPM_ALG.RSAES)), 0))).toBe(0x2d2);
    const raw = primary(t, rsa(BASE | A.DECRYPT));
    expect(rcOf(t.executeSync(encryptCmd(raw.handle, new Uint8Array(257).fill(1), u16(TPM_ALG.NULL)), 0))).toBe(0x084);
    // leading zeros do not count: 200 zero bytes encrypt (swtpm 0.7.1 too)
    ok(t.executeSync(encryptCmd(raw.handle, new Uint8Array(200), u16(TPM_ALG.NULL)), 0));
    flush(t, raw.handle);
    expect(rcOf(t.executeSync(decryptCmd(key.handle, new Uint8Array(10), u16(TPM_ALG.NULL)), 0))).toBe(0x095);
    const signer = primary(t, rsa(BASE | A.SIGN_ENCRYPT));
    expect(rcOf(t.executeSync(encryptCmd(signer.handle, Uint8Array.of(1), u16(TPM_ALG.RSAES)), 0))).toBe(0x182);
    flush(t, signer.handle);
    const e = primary(t, ecc(BASE | A.DECRYPT, TPM_ECC_CURVE.NIST_P256));
    expect(rcOf(t.executeSync(encryptCmd(e.handle, Uint8Array.of(1), u16(TPM_ALG.RSAES)), 0))).toBe(0x19c);
    flush(t, e.handle);
    const storage = primary(t, rsaStorage());
    expect(rcOf(t.executeSync(decryptCmd(storage.handle, new Uint8Array(256), u16(TPM_ALG.NULL)), 0))).toBe(0x182);
  });
});

describe("keys from outside (TPM2_LoadExternal, Part 3 §12.3) with the crypto commands", () => {
  const b64 = (s: string | undefined) => Uint8Array.from(Buffer.from(s ?? "", "base64url"));
  const sensitive = (type: number, secret: Uint8Array) => t2b([...u16(type), ...t2b([]), ...t2b([]), ...t2b(secret)]);

  it("an RSA public key from node:crypto: what the TPM encrypts with OAEP and a label, node decrypts", () => {
    const t = fresh();
    const kp = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = kp.publicKey.export({ format: "jwk" });
    const area = marshalPublic({ type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: A.USERWITHAUTH | A.DECRYPT, authPolicy: E, symmetric: NULL_SYM, scheme: { scheme: TPM_ALG.OAEP, hashAlg: TPM_ALG.SHA256 }, keyBits: 2048, exponent: 0, unique: b64(jwk.n) });
    const h = u32At(ok(t.executeSync(cmd(0x8001, CC.LoadExternal, [...u16(0), ...t2b(area), ...u32(OWNER)]), 0)), 10);
    const label = [...new TextEncoder().encode("label"), 0];
    const c = new TpmReader(ok(t.executeSync(cmd(0x8001, CC.RSA_Encrypt, [...u32(h), ...t2b([1, 2, 3]), ...u16(TPM_ALG.NULL), ...t2b(label)]), 0)), 10).tpm2b();
    expect(hex(privateDecrypt({ key: kp.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Uint8Array.from(label) }, c))).toBe("010203");
  });

  it("a P-256 key pair from node:crypto: the TPM signs with it (node verifies); a private scalar that does not match the point is TPM_RC_BINDING", () => {
    const t = fresh();
    const kp = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwk = kp.privateKey.export({ format: "jwk" });
    const area = ecc(A.USERWITHAUTH | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
    const pub = readPublic(new TpmReader(area));
    if (pub.type !== TPM_ALG.ECC) throw new Error("template");
    pub.unique = { x: b64(jwk.x), y: b64(jwk.y) };
    const load = (d: Uint8Array) => t.executeSync(cmd(0x8001, CC.LoadExternal, [...sensitive(TPM_ALG.ECC, d), ...t2b(marshalPublic(pub)), ...u32(RH_NULL)]), 0);
    const h = u32At(ok(load(b64(jwk.d))), 10);
    const digest = sha256(Uint8Array.of(42));
    const { sig } = sign(t, h, digest);
    expect(nodeVerify("sha256", Uint8Array.of(42), { key: kp.publicKey, dsaEncoding: "ieee-p1363" }, Uint8Array.from([...sig.r!, ...sig.s!]))).toBe(true);
    const wrong = b64(jwk.d);
    wrong[31]! ^= 1;
    expect(rcOf(load(wrong))).toBe(0x0a5); // TPM_RC_BINDING, no parameter number (swtpm 0.7.1 too)
  });
});

describe("TPM2_ECDH_KeyGen / TPM2_ECDH_ZGen (Part 3 §14.4, §14.5)", () => {
  const point = (rd: TpmReader) => {
    rd.u16();
    return { x: rd.tpm2b().slice(), y: rd.tpm2b().slice() };
  };
  const pointBytes = (p: { x: Uint8Array; y: Uint8Array }) => t2b([...t2b(p.x), ...t2b(p.y)]);

  it("KeyGen's zPoint is what ZGen computes from its pubPoint, and what noble computes from the ephemeral's side", () => {
    const t = fresh();
    const key = primary(t, ecc(BASE | A.DECRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.ECDH, hashAlg: TPM_ALG.SHA256 }));
    const rd = new TpmReader(ok(t.executeSync(cmd(0x8001, CC.ECDH_KeyGen, u32(key.handle)), 0)), 10);
    const z = point(rd);
    const q = point(rd);
    const zg = ok(t.executeSync(authCmd(CC.ECDH_ZGen, [key.handle], [[]], pointBytes(q)), 0));
    expect(hex(point(params(zg)).x)).toBe(hex(z.x));
    // our own ephemeral: Z = e·Q_tpm
    const e = p256.utils.randomSecretKey();
    const ep = p256.Point.fromBytes(p256.getPublicKey(e, false)).toAffine();
    const be = (v: bigint) => Uint8Array.from(Buffer.from(v.toString(16).padStart(64, "0"), "hex"));
    const out = point(params(ok(t.executeSync(authCmd(CC.ECDH_ZGen, [key.handle], [[]], pointBytes({ x: be(ep.x), y: be(ep.y) })), 0))));
    const q2 = eccUnique(key.pub);
    const shared = p256.getSharedSecret(e, Uint8Array.from([4, ...q2.x, ...q2.y]));
    expect(hex(out.x)).toBe(hex(shared.subarray(1, 33)));
  });

  it("codes: a point off the curve TPM_RC_ECC_POINT + P1; a signing key TPM_RC_ATTRIBUTES + H1; an RSA key TPM_RC_KEY + H1; an empty point TPM_RC_SIZE + P1", () => {
    const t = fresh();
    const key = primary(t, ecc(BASE | A.DECRYPT, TPM_ECC_CURVE.NIST_P256));
    const zgen = (h: number, p: number[]) => rcOf(t.executeSync(authCmd(CC.ECDH_ZGen, [h], [[]], p), 0));
    expect(zgen(key.handle, pointBytes({ x: new Uint8Array(32).fill(1), y: new Uint8Array(32).fill(2) }))).toBe(0x1e7);
    expect(zgen(key.handle, u16(0))).toBe(0x1d5);
    const signer = primary(t, ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256));
    expect(zgen(signer.handle, pointBytes({ x: new Uint8Array(32), y: new Uint8Array(32) }))).toBe(0x182);
    const r = primary(t, rsa(BASE | A.DECRYPT));
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ECDH_KeyGen, u32(r.handle)), 0))).toBe(0x19c);
  });
});

describe("TPM2_EncryptDecrypt2 (Part 3 §15.3) and TPM2_HMAC (§15.5)", () => {
  const ed2 = (key: number, data: Uint8Array, decrypt: boolean, mode: number, iv: Uint8Array) => authCmd(CC.EncryptDecrypt2, [key], [[]], [...t2b(data), decrypt ? 1 : 0, ...u16(mode), ...t2b(iv)]);
  const aesKey = Uint8Array.from({ length: 16 }, (_, i) => i);

  it("CFB, CBC, ECB, CTR and OFB agree with node:crypto, and ivOut continues the stream", () => {
    const t = fresh();
    const parent = primary(t, rsaStorage());
    const key = child(t, parent.handle, symKey(TPM_ALG.NULL, (BASE & ~A.SENSITIVEDATAORIGIN) | A.DECRYPT | A.SIGN_ENCRYPT), [...aesKey]);
    const iv = new Uint8Array(16).fill(9);
    const data = Uint8Array.from({ length: 64 }, (_, i) => i * 3);
    for (const [mode, name] of [[TPM_ALG.CFB, "aes-128-cfb"], [TPM_ALG.CBC, "aes-128-cbc"], [TPM_ALG.ECB, "aes-128-ecb"], [TPM_ALG.CTR, "aes-128-ctr"], [TPM_ALG.OFB, "aes-128-ofb"]] as const) {
      const ivIn = mode === TPM_ALG.ECB ? E : iv;
      const rd = params(ok(t.executeSync(ed2(key.handle, data, false, mode, ivIn), 0)));
      const c = rd.tpm2b().slice();
      const c0 = createCipheriv(name, aesKey, mode === TPM_ALG.ECB ? null : iv).setAutoPadding(false);
      expect(hex(c), name).toBe(hex(Buffer.concat([c0.update(data), c0.final()])));
      const back = params(ok(t.executeSync(ed2(key.handle, c, true, mode, ivIn), 0))).tpm2b();
      expect(hex(back), name).toBe(hex(data));
      // in two halves, the second from the first's ivOut
      const r1 = params(ok(t.executeSync(ed2(key.handle, data.subarray(0, 32), false, mode, ivIn), 0)));
      const h1 = r1.tpm2b().slice();
      const iv1 = r1.tpm2b().slice();
      const h2 = params(ok(t.executeSync(ed2(key.handle, data.subarray(32), false, mode, iv1), 0))).tpm2b();
      expect(hex(h1) + hex(h2), name).toBe(hex(c));
    }
    // CFB ending in a partial block: ivOut is that block's cipher text followed by the rest of its
    // key-stream block E(previous cipher block), both ways (swtpm 0.7.1, measured; fixes-diff.test.ts)
    const a = aesMode(aesKey, TPM_ALG.CFB, false, iv, data.subarray(0, 20));
    const ks = createCipheriv("aes-128-ecb", aesKey, null).setAutoPadding(false).update(a.out.subarray(0, 16));
    expect(hex(a.iv)).toBe(hex(a.out.subarray(16, 20)) + hex(ks.subarray(4)));
    expect(hex(aesMode(aesKey, TPM_ALG.CFB, true, iv, a.out).iv)).toBe(hex(a.iv));
  });

  it("codes: NULL mode on a NULL-mode key TPM_RC_MODE + P3; another mode than the key's TPM_RC_MODE + P3; a short IV TPM_RC_SIZE + P4; CBC over a partial block TPM_RC_SIZE + P1; not a symmetric key TPM_RC_KEY + H1; no decrypt attribute TPM_RC_ATTRIBUTES + H1", () => {
    const t = fresh();
    const nullMode = primary(t, symKey(TPM_ALG.NULL));
    const cfb = primary(t, symKey(TPM_ALG.CFB));
    const encOnly = primary(t, symKey(TPM_ALG.CFB, BASE | A.SIGN_ENCRYPT));
    const iv = new Uint8Array(16);
    const rc = (h: number, d: Uint8Array, dec: boolean, mode: number, ivIn: Uint8Array) => rcOf(t.executeSync(ed2(h, d, dec, mode, ivIn), 0));
    expect(rc(nullMode.handle, iv, false, TPM_ALG.NULL, iv)).toBe(0x3c9);
    expect(rc(cfb.handle, iv, false, TPM_ALG.CBC, iv)).toBe(0x3c9);
    expect(rc(cfb.handle, iv, false, TPM_ALG.CFB, iv.subarray(0, 8))).toBe(0x4d5);
    expect(rc(nullMode.handle, iv.subarray(0, 5), false, TPM_ALG.CBC, iv)).toBe(0x1d5);
    expect(rc(encOnly.handle, iv, true, TPM_ALG.CFB, iv)).toBe(0x182);
    expect(rc(cfb.handle, iv, false, 0x0006, iv)).toBe(0x3c9); // not a cipher mode: unmarshalling refuses it
    flush(t, encOnly.handle);
    const notSym = primary(t, hmacKey(TPM_ALG.SHA256));
    expect(rc(notSym.handle, iv, false, TPM_ALG.CFB, iv)).toBe(0x19c);
  });

  it("HMAC with the key's hash; codes TPM_RC_VALUE + P2, TPM_RC_TYPE + H1, TPM_RC_KEY + H1", () => {
    const t = fresh();
    const parent = primary(t, rsaStorage());
    const secret = [5, 6, 7, 8];
    const own = child(t, parent.handle, marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: (BASE & ~A.SENSITIVEDATAORIGIN) | A.SIGN_ENCRYPT, authPolicy: E, scheme: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 }, unique: E }), secret);
    const h = (k: number, alg: number) => t.executeSync(authCmd(CC.HMAC, [k], [[]], [...t2b([1, 2, 3]), ...u16(alg)]), 0);
    expect(hex(params(ok(h(own.handle, TPM_ALG.NULL))).tpm2b())).toBe(hex(hmac(sha256, Uint8Array.from(secret), Uint8Array.of(1, 2, 3))));
    expect(hex(params(ok(h(own.handle, TPM_ALG.SHA256))).tpm2b())).toBe(hex(hmac(sha256, Uint8Array.from(secret), Uint8Array.of(1, 2, 3))));
    expect(rcOf(h(own.handle, TPM_ALG.SHA384))).toBe(0x2c4);
    // a keyed-hash signing key needs the HMAC scheme (TPM_RC_SCHEME + P2 from Create, swtpm 0.7.1 too)
    expect(rcOf(t.executeSync(authCmd(CC.Create, [parent.handle], [[]], createParams(hmacKey(undefined))), 0))).toBe(0x2d2);
    expect(rcOf(h(parent.handle, TPM_ALG.SHA256))).toBe(0x18a);
    const sealed = child(t, parent.handle, marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.USERWITHAUTH, authPolicy: E, scheme: NULL_SCHEME, unique: E }), [1]);
    expect(rcOf(h(sealed.handle, TPM_ALG.SHA256))).toBe(0x19c);
  });
});

describe("throughput through SoftTpm.executeSync", () => {
  it("Sign/s with RSA-2048 (RSASSA) and ECC P-256 (ECDSA)", () => {
    const t = fresh();
    const r = primary(t, rsa(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }));
    const e = primary(t, ecc(BASE | A.SIGN_ENCRYPT, TPM_ECC_CURVE.NIST_P256, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    const d = sha256(Uint8Array.of(1));
    const rate = (h: number) => {
      const c = signCmd(h, d);
      ok(t.executeSync(c, 0));
      const n = SWTPM ? 5 : 100;
      let failed = 0;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) failed += rcOf(t.executeSync(c, 0)) === 0 ? 0 : 1;
      expect(failed).toBe(0);
      return (n * 1000) / (performance.now() - t0);
    };
    const rs = rate(r.handle);
    const es = rate(e.handle);
    console.log(`Sign/s through SoftTpm.executeSync: RSA-2048 ${rs.toFixed(0)}, ECC P-256 ${es.toFixed(0)}`);
    expect(rs).toBeGreaterThan(0);
    expect(es).toBeGreaterThan(0);
  });
});
