/**
 * The two-phase ECC commands of SoftTpm (TPM 2.0 Part 3 §19.2 TPM2_Commit, §19.3
 * TPM2_EC_Ephemeral, §14.8 TPM2_ZGen_2Phase, §14.7 TPM2_ECC_Parameters) and ECDAA signing in
 * TPM2_Sign (Part 1 §C.4.4). Every response code below was measured on swtpm 0.7.1 with the same
 * command bytes; the outputs are checked with @noble/curves, independently of SoftTpm's code.
 */
import { describe, expect, it } from "vitest";
import { p256, p384 } from "@noble/curves/nist.js";
import { sha256, sha384 } from "@noble/hashes/sha2.js";
import { TpmReader } from "../wire/buffer.js";
import { TPM_ALG, TPM_CC, TPM_ECC_CURVE, TPMA_OBJECT } from "../wire/constants.js";
import { type Scheme, type TpmtPublic, marshalPublic, readPublic } from "../wire/structures.js";
import type { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, SHUTDOWN_STATE, STARTUP_CLEAR, authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At, unhex } from "./test-helpers.js";

const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const A = TPMA_OBJECT;
const BASE = A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH;
const E = new Uint8Array(0);
const NULL_SCHEME: Scheme = { scheme: TPM_ALG.NULL, hashAlg: 0 };
const ECDAA: Scheme = { scheme: TPM_ALG.ECDAA, hashAlg: TPM_ALG.SHA256, count: 0 };
const N256 = p256.Point.CURVE().n;

function ecc(attrs: number, scheme: Scheme, curveId: number = TPM_ECC_CURVE.NIST_P256): Uint8Array {
  return marshalPublic({ type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: E, symmetric: { algorithm: TPM_ALG.NULL, keyBits: 0, mode: TPM_ALG.NULL }, scheme, curveId, kdf: NULL_SCHEME, unique: { x: E, y: E } });
}
const rsaSign = marshalPublic({ type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: BASE | A.SIGN_ENCRYPT, authPolicy: E, symmetric: { algorithm: TPM_ALG.NULL, keyBits: 0, mode: TPM_ALG.NULL }, scheme: NULL_SCHEME, keyBits: 1024, exponent: 0, unique: E });

const createParams = (template: Uint8Array) => [...t2b([...t2b([]), ...t2b([])]), ...t2b(template), ...u16(0), ...u32(0)];

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}

interface Key {
  handle: number;
  pub: TpmtPublic;
  name: Uint8Array;
  q: { x: Uint8Array; y: Uint8Array };
}

/** CreatePrimary under the owner hierarchy: handle, public area, Name and point. */
function primary(t: SoftTpm, template: Uint8Array): Key {
  const r = ok(t.executeSync(authCmd(TPM_CC.CreatePrimary, [OWNER], [[]], createParams(template)), 0));
  const area = new TpmReader(r, 18).tpm2b().slice();
  const pub = readPublic(new TpmReader(area));
  const name = Uint8Array.from([0, 0x0b, ...sha256(area)]);
  return { handle: u32At(r, 10), pub, name, q: pub.type === TPM_ALG.ECC ? pub.unique : { x: E, y: E } };
}

/** FlushContext (three object slots, as libtpms: tests with four keys flush one). */
const flush = (t: SoftTpm, h: number) => ok(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(h)), 0));

/** A TPM2B_ECC_POINT. */
const point = (x: Uint8Array | number[], y: Uint8Array | number[]) => t2b([...t2b(x), ...t2b(y)]);
const EMPTY_POINT = point([], []);

/** Reads a TPM2B_ECC_POINT. */
function readPoint(rd: TpmReader): { x: Uint8Array; y: Uint8Array } {
  const size = rd.u16();
  const start = rd.offset;
  const x = rd.tpm2b().slice();
  const y = rd.tpm2b().slice();
  expect(rd.offset - start).toBe(size);
  return { x, y };
}

const big = (b: Uint8Array): bigint => (b.length === 0 ? 0n : BigInt("0x" + hex(b)));
const P = (q: { x: Uint8Array; y: Uint8Array }) => p256.Point.fromAffine({ x: big(q.x), y: big(q.y) });
const pointHex = (pt: InstanceType<typeof p256.Point>) => {
  const a = pt.toAffine();
  return a.x.toString(16).padStart(64, "0") + a.y.toString(16).padStart(64, "0");
};
const qHex = (q: { x: Uint8Array; y: Uint8Array }) => hex(q.x) + hex(q.y);
const G = p256.Point.BASE;
const GX = unhex(G.toAffine().x.toString(16).padStart(64, "0"));
const GY = unhex(G.toAffine().y.toString(16).padStart(64, "0"));

const ephemeralCmd = (curve: number) => cmd(0x8001, TPM_CC.EC_Ephemeral, u16(curve));
function ephemeral(t: SoftTpm): { q: { x: Uint8Array; y: Uint8Array }; counter: number } {
  const rd = new TpmReader(ok(t.executeSync(ephemeralCmd(TPM_ECC_CURVE.NIST_P256), 0)), 10);
  const q = readPoint(rd);
  return { q, counter: rd.u16() };
}

const commitCmd = (key: number, p1: number[] = EMPTY_POINT, s2: number[] = [], y2: number[] = []) => authCmd(TPM_CC.Commit, [key], [[]], [...p1, ...t2b(s2), ...t2b(y2)]);
function commit(t: SoftTpm, key: number, p1?: number[], s2?: number[], y2?: number[]) {
  const rd = new TpmReader(ok(t.executeSync(commitCmd(key, p1, s2, y2), 0)), 14);
  return { K: readPoint(rd), L: readPoint(rd), E: readPoint(rd), counter: rd.u16() };
}

const TICKET = [...u16(0x8024), ...u32(RH_NULL), ...u16(0)];
const ecdaaScheme = (count: number, hash: number = TPM_ALG.SHA256) => [...u16(TPM_ALG.ECDAA), ...u16(hash), ...u16(count)];
const signCmd = (key: number, digest: Uint8Array, scheme: number[]) => authCmd(TPM_CC.Sign, [key], [[]], [...t2b(digest), ...scheme, ...TICKET]);

const zgenCmd = (key: number, qsB: number[], qeB: number[], scheme: number, counter: number) => authCmd(TPM_CC.ZGen_2Phase, [key], [[]], [...qsB, ...qeB, ...u16(scheme), ...u16(counter)]);

describe("TPM2_EC_Ephemeral (Part 3 §19.3)", () => {
  it("returns Q on the curve and the commit counter, 0 on a new TPM then 1 (tpm2-tools ecc.sh)", () => {
    const t = startedTpm();
    const a = ephemeral(t);
    const b = ephemeral(t);
    expect([a.counter, b.counter]).toEqual([0, 1]);
    expect([a.q.x.length, a.q.y.length]).toEqual([32, 32]);
    expect(() => P(a.q).assertValidity()).not.toThrow();
    expect(qHex(a.q)).not.toBe(qHex(b.q));
  });

  it("a curve SoftTpm lacks is TPM_RC_CURVE + P1, a cut parameter TPM_RC_INSUFFICIENT + P1, a password session TPM_RC_HANDLE + S1", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(ephemeralCmd(0), 0))).toBe(0x1e6);
    expect(rcOf(t.executeSync(ephemeralCmd(0x99), 0))).toBe(0x1e6);
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.EC_Ephemeral, [0]), 0))).toBe(0x1da);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.EC_Ephemeral, [], [[]], u16(3)), 0))).toBe(0x98b);
    // a refused command commits nothing
    expect(ephemeral(t).counter).toBe(0);
  });
});

describe("TPM2_ZGen_2Phase (Part 3 §14.8), ECDH", () => {
  it("Z1 = [dsA]QsB, Z2 = [deA]QeB with the ephemeral scalar of EC_Ephemeral's counter, used once", () => {
    const t = startedTpm();
    const key = primary(t, ecc(BASE | A.DECRYPT, { scheme: TPM_ALG.ECDH, hashAlg: TPM_ALG.SHA256 }));
    const e1 = ephemeral(t);
    const e2 = ephemeral(t);
    // QeB = G: Z2 is the ephemeral public key Q itself; QsB = G: Z1 is the static public key
    const g = point(GX, GY);
    const r = ok(t.executeSync(zgenCmd(key.handle, g, g, TPM_ALG.ECDH, e1.counter), 0));
    const rd = new TpmReader(r, 14);
    const z1 = readPoint(rd);
    const z2 = readPoint(rd);
    expect(qHex(z1)).toBe(qHex(key.q));
    expect(qHex(z2)).toBe(qHex(e1.q));
    // with another party's points: Z2 = [deA]QeB checked through Q: [k]Q = [deA]([k]G)
    const k = 0x1234567n;
    const qeB = G.multiply(k).toAffine();
    const other = point(unhex(qeB.x.toString(16).padStart(64, "0")), unhex(qeB.y.toString(16).padStart(64, "0")));
    const rd2 = new TpmReader(ok(t.executeSync(zgenCmd(key.handle, other, other, TPM_ALG.ECDH, e2.counter), 0)), 14);
    const z1b = readPoint(rd2);
    const z2b = readPoint(rd2);
    expect(qHex(z1b)).toBe(pointHex(P(key.q).multiply(k)));
    expect(qHex(z2b)).toBe(pointHex(P(e2.q).multiply(k)));
    // each commitment serves once: TPM_RC_VALUE + P4 after, and for a count never committed
    expect(rcOf(t.executeSync(zgenCmd(key.handle, g, g, TPM_ALG.ECDH, e1.counter), 0))).toBe(0x4c4);
    expect(rcOf(t.executeSync(zgenCmd(key.handle, g, g, TPM_ALG.ECDH, 77), 0))).toBe(0x4c4);
  });

  it("response codes as swtpm 0.7.1 gives them", () => {
    const t = startedTpm();
    const e = ephemeral(t);
    const q = point(e.q.x, e.q.y);
    const bad = point(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
    const rc = (key: number, qs: number[], qe: number[], scheme: number, c = e.counter) => rcOf(t.executeSync(zgenCmd(key, qs, qe, scheme, c), 0));
    const rsa = primary(t, rsaSign);
    expect(rc(rsa.handle, q, q, TPM_ALG.ECDH)).toBe(0x19c); // TPM_RC_KEY + H1
    expect(rc(rsa.handle, q, q, 0x99)).toBe(0x3d2); // unmarshalling comes before the key checks
    flush(t, rsa.handle);
    const ecdh = primary(t, ecc(BASE | A.DECRYPT, { scheme: TPM_ALG.ECDH, hashAlg: TPM_ALG.SHA256 }));
    const both = primary(t, ecc(BASE | A.DECRYPT | A.SIGN_ENCRYPT, NULL_SCHEME));
    const daa = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    expect(rc(daa.handle, q, q, TPM_ALG.ECDH)).toBe(0x182); // not a decryption key: TPM_RC_ATTRIBUTES + H1
    expect(rc(ecdh.handle, q, q, TPM_ALG.ECMQV)).toBe(0x3d2); // not the key's scheme: TPM_RC_SCHEME + P3
    expect(rc(ecdh.handle, q, q, TPM_ALG.NULL)).toBe(0x3d2); // NULL is no key-exchange scheme
    expect(rc(ecdh.handle, q, q, TPM_ALG.ECDSA)).toBe(0x3d2);
    expect(rc(both.handle, q, q, TPM_ALG.NULL)).toBe(0x3d2);
    expect(rc(ecdh.handle, bad, q, TPM_ALG.ECDH)).toBe(0x1e7); // TPM_RC_ECC_POINT + P1
    expect(rc(ecdh.handle, q, bad, TPM_ALG.ECDH)).toBe(0x2e7); // TPM_RC_ECC_POINT + P2
    expect(rc(ecdh.handle, EMPTY_POINT, q, TPM_ALG.ECDH, 999)).toBe(0x1e7); // points before the counter
    expect(rc(ecdh.handle, u16(0), q, TPM_ALG.ECDH)).toBe(0x1d5); // an empty TPM2B_ECC_POINT: TPM_RC_SIZE + P1
    expect(rc(ecdh.handle, q, q, TPM_ALG.ECDH, 77)).toBe(0x4c4); // TPM_RC_VALUE + P4
    // SoftTpm has no ECMQV / SM2 arithmetic: TPM_RC_SCHEME + P3, the commitment kept
    expect(rc(both.handle, q, q, TPM_ALG.ECMQV)).toBe(0x3d2);
    expect(rc(both.handle, q, q, TPM_ALG.SM2)).toBe(0x3d2);
    expect(rc(both.handle, q, q, TPM_ALG.ECDH)).toBe(0);
    // no authorization session: TPM_RC_AUTH_MISSING
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.ZGen_2Phase, [...u32(ecdh.handle), ...q, ...q, ...u16(TPM_ALG.ECDH), ...u16(e.counter)]), 0))).toBe(0x125);
  });
});

describe("TPM2_Commit (Part 3 §19.2)", () => {
  it("without points: E = [r]G, K and L empty (size 4), the counter after the ephemeral ones (tpm2-tools ecc.sh: 2)", () => {
    const t = startedTpm();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    ephemeral(t);
    ephemeral(t);
    const r = ok(t.executeSync(commitCmd(key.handle), 0));
    // K and L come back as TPM2B_ECC_POINT of size 4 with empty coordinates, as swtpm's do
    expect(hex(r.subarray(14, 22))).toBe("0004000000000004");
    const c = commit(t, key.handle);
    expect(c.counter).toBe(3);
    expect([c.K.x.length, c.K.y.length, c.L.x.length, c.E.x.length]).toEqual([0, 0, 0, 32]);
    expect(() => P(c.E).assertValidity()).not.toThrow();
  });

  it("with P1 and P2 = (H(s2) mod p, y2): K = [d]P2, L = [r]P2, E = [r]P1, and an ECDAA signature of that commitment verifies ([s]G = E' + [T]Q, E' = [r]G)", () => {
    const t = startedTpm();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    // P2 from s2: find an s2 whose hash is an x coordinate on the curve
    const curve = p256.Point.CURVE();
    let s2 = new Uint8Array(0);
    let y2 = 0n;
    for (let i = 0; ; i++) {
      s2 = new TextEncoder().encode(`basename-${i}`);
      const x = big(sha256(s2)) % curve.p;
      const rhs = (((x * x) % curve.p) * x + curve.a * x + curve.b) % curve.p;
      let y: bigint;
      try {
        y = p256.Point.Fp.sqrt(rhs);
      } catch {
        continue; // not a square: no point with this x
      }
      if ((y * y) % curve.p === rhs) {
        y2 = y;
        break;
      }
    }
    const p2 = p256.Point.fromAffine({ x: big(sha256(s2)) % curve.p, y: y2 });
    const j = 0xabcdefn;
    const p1pt = G.multiply(j);
    const p1 = point(unhex(p1pt.toAffine().x.toString(16).padStart(64, "0")), unhex(p1pt.toAffine().y.toString(16).padStart(64, "0")));
    const y2b = unhex(y2.toString(16).padStart(64, "0"));
    const c = commit(t, key.handle, p1, Array.from(s2), Array.from(y2b));
    // K = [d]P2 and L = [r]P2 are checked below through a signature with this commitment
    expect(() => P(c.K).assertValidity()).not.toThrow();
    expect(() => P(c.L).assertValidity()).not.toThrow();
    // a second commit with P1 = G gives E = [r']G; sign with it and check [s]G = E + [T]Q
    const c2 = commit(t, key.handle, point(GX, GY));
    expect(c2.counter).toBe(c.counter + 1);
    const digest = sha256(new TextEncoder().encode("message"));
    const sr = ok(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(c2.counter)), 0));
    const rd = new TpmReader(sr, 14);
    expect([rd.u16(), rd.u16()]).toEqual([TPM_ALG.ECDAA, TPM_ALG.SHA256]);
    const nonce = rd.tpm2b().slice();
    const s = rd.tpm2b().slice();
    expect(s.length).toBe(32);
    expect(nonce[0]).not.toBe(0); // no leading zeros
    const T = big(sha256(Uint8Array.from([...nonce, ...digest]))) % N256;
    expect(pointHex(G.multiply(big(s)))).toBe(pointHex(P(c2.E).add(P(key.q).multiply(T))));
    // a signature with the first commitment (s = r + T·d) ties K, L and E to d and r:
    // [s]P2 = L + [T]K, and with P1 = [j]G, [s]P1 = E + [T·j]Q
    const sr2 = ok(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(c.counter)), 0));
    const rd2 = new TpmReader(sr2, 18);
    const nonce2 = rd2.tpm2b().slice();
    const s2v = big(rd2.tpm2b().slice());
    const T2 = big(sha256(Uint8Array.from([...nonce2, ...digest]))) % N256;
    expect(pointHex(p2.multiply(s2v))).toBe(pointHex(P(c.L).add(P(c.K).multiply(T2))));
    expect(pointHex(p1pt.multiply(s2v))).toBe(pointHex(P(c.E).add(P(key.q).multiply((T2 * j) % N256))));
  });

  it("response codes as swtpm 0.7.1 gives them", () => {
    const t = startedTpm();
    const rc = (c: Uint8Array) => rcOf(t.executeSync(c, 0));
    const y = new Array<number>(32).fill(1);
    const rsa = primary(t, rsaSign);
    expect(rc(commitCmd(rsa.handle))).toBe(0x19c); // TPM_RC_KEY + H1
    expect(rc(commitCmd(rsa.handle, EMPTY_POINT, [1]))).toBe(0x19c); // the key before the s2/y2 pairing
    flush(t, rsa.handle);
    const daa = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    const ecdsa = primary(t, ecc(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    const none = primary(t, ecc(BASE | A.SIGN_ENCRYPT | A.DECRYPT, NULL_SCHEME));
    expect(rc(commitCmd(ecdsa.handle))).toBe(0x192); // not an anonymous scheme: TPM_RC_SCHEME + H1
    expect(rc(commitCmd(none.handle))).toBe(0x192);
    expect(rc(commitCmd(daa.handle, u16(0)))).toBe(0x1d5); // P1 of size 0: TPM_RC_SIZE + P1
    expect(rc(commitCmd(daa.handle, [...u16(6), ...u16(0), ...u16(0), ...u16(0)]))).toBe(0x1d5); // size disagrees with the point
    expect(rc(commitCmd(daa.handle, EMPTY_POINT, [1, 2, 3]))).toBe(0x3d5); // s2 without y2: TPM_RC_SIZE + P3
    expect(rc(commitCmd(daa.handle, EMPTY_POINT, [], y))).toBe(0x3d5);
    expect(rc(commitCmd(daa.handle, EMPTY_POINT, [1, 2, 3], y))).toBe(0x2e7); // P2 off the curve: TPM_RC_ECC_POINT + P2
    expect(rc(commitCmd(daa.handle, point(new Array<number>(32).fill(1), new Array<number>(32).fill(2))))).toBe(0x1e7); // TPM_RC_ECC_POINT + P1
    expect(rc(commitCmd(daa.handle, point(new Array<number>(32).fill(1), [])))).toBe(0x1e7);
    expect(rc(commitCmd(daa.handle, point(new Array<number>(33).fill(1), new Array<number>(32).fill(2))))).toBe(0x1e7);
    expect(rc(commitCmd(daa.handle, EMPTY_POINT, new Array<number>(129).fill(1)))).toBe(0x2d5); // s2 over 128 bytes: TPM_RC_SIZE + P2
    expect(rc(commitCmd(daa.handle, EMPTY_POINT, [], new Array<number>(67).fill(1)))).toBe(0x3d5);
    expect(rc(authCmd(TPM_CC.Commit, [daa.handle], [[]], [...EMPTY_POINT, ...u16(0), ...u16(0), 0]))).toBe(0x95); // trailing byte: TPM_RC_SIZE
    // none of these committed anything
    expect(commit(t, daa.handle).counter).toBe(0);
  });
});

describe("ECDAA signing in TPM2_Sign (Part 1 §C.4.4)", () => {
  it("uses up the commitment its count names; the count of the scheme chooses it (tpm2-tools sign.sh)", () => {
    const t = startedTpm();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    const c0 = commit(t, key.handle);
    const c1 = commit(t, key.handle);
    expect([c0.counter, c1.counter]).toEqual([0, 1]);
    const digest = sha256(new TextEncoder().encode("abc"));
    const check = (count: number, e: { x: Uint8Array; y: Uint8Array }) => {
      const rd = new TpmReader(ok(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(count)), 0)), 18);
      const n = rd.tpm2b().slice();
      const s = big(rd.tpm2b().slice());
      const T = big(sha256(Uint8Array.from([...n, ...digest]))) % N256;
      expect(pointHex(G.multiply(s))).toBe(pointHex(P(e).add(P(key.q).multiply(T))));
    };
    check(1, c1.E);
    check(0, c0.E);
    // used: TPM_RC_VALUE (no parameter number)
    expect(rcOf(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(0)), 0))).toBe(0x84);
    expect(rcOf(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(1)), 0))).toBe(0x84);
    // never committed, and one 128 counts ahead (same array bit, other upper bits)
    const c2 = commit(t, key.handle);
    expect(rcOf(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(50)), 0))).toBe(0x84);
    expect(rcOf(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(c2.counter + 128)), 0))).toBe(0x84);
    check(c2.counter, c2.E);
  });

  it("a commitment older than the 128-bit commit array is refused once its bit is reused", () => {
    const t = startedTpm();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    const digest = new Uint8Array(32).fill(7);
    const first = commit(t, key.handle);
    for (let i = 1; i < 128; i++) ephemeral(t);
    const again = commit(t, key.handle); // count 128: the same array bit as count 0
    expect(again.counter).toBe(128);
    expect(rcOf(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(first.counter)), 0))).toBe(0x84);
    expect(rcOf(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(128)), 0))).toBe(0);
  });

  it("scheme selection and codes as swtpm 0.7.1 gives them", () => {
    const t = startedTpm();
    const daa = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    const ecdsa = primary(t, ecc(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    const none = primary(t, ecc(BASE | A.SIGN_ENCRYPT | A.DECRYPT, NULL_SCHEME));
    const digest = new Uint8Array(32).fill(0x11);
    const rc = (key: number, d: Uint8Array, scheme: number[]) => rcOf(t.executeSync(signCmd(key, d, scheme), 0));
    const c = commit(t, daa.handle).counter;
    // ECDAA is a split scheme: the key's own scheme is not enough, the caller gives the count
    expect(rc(daa.handle, digest, u16(TPM_ALG.NULL))).toBe(0x2d2);
    expect(rc(daa.handle, digest, ecdaaScheme(c, TPM_ALG.SHA384))).toBe(0x2d2); // other hash
    expect(rc(daa.handle, digest, [...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256)])).toBe(0x2d2);
    expect(rc(ecdsa.handle, digest, ecdaaScheme(c))).toBe(0x2d2);
    expect(rc(daa.handle, new Uint8Array(20), ecdaaScheme(c))).toBe(0x1d5); // digest not of the hash's size
    // a key without a scheme may sign with ECDAA (any commitment's count, bound to this key's name)
    const r = ok(t.executeSync(signCmd(none.handle, new Uint8Array(20).fill(1), ecdaaScheme(c, TPM_ALG.SHA1)), 0));
    expect(hex(r.subarray(14, 18))).toBe("001a0004");
    expect(rc(daa.handle, digest, ecdaaScheme(c))).toBe(0x84); // that used it up
  });

  it("TPM2_VerifySignature does not verify ECDAA: TPM_RC_SCHEME + P2", () => {
    const t = startedTpm();
    const daa = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    const ecdsa = primary(t, ecc(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }));
    const digest = new Uint8Array(32).fill(0x11);
    const c = commit(t, daa.handle).counter;
    const r = ok(t.executeSync(signCmd(daa.handle, digest, ecdaaScheme(c)), 0));
    const sig = r.subarray(14, r.length - 5);
    for (const k of [daa, ecdsa]) expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.VerifySignature, [...u32(k.handle), ...t2b(digest), ...sig]), 0))).toBe(0x2d2);
  });

  it("commitments last across TPM Restart and end at TPM Reset, where the counter starts at 0 again (swtpm 0.7.1, measured)", async () => {
    const t = startedTpm();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    const digest = new Uint8Array(32).fill(3);
    const a = commit(t, key.handle);
    const b = commit(t, key.handle);
    ok(t.executeSync(SHUTDOWN_STATE, 0));
    await t.powerOff();
    await t.powerOn();
    ok(t.executeSync(STARTUP_CLEAR, 0)); // TPM Restart
    const k2 = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA)); // the same primary key again
    expect(hex(k2.name)).toBe(hex(key.name));
    ok(t.executeSync(signCmd(k2.handle, digest, ecdaaScheme(a.counter)), 0));
    ok(t.executeSync(SHUTDOWN_CLEAR, 0));
    await t.powerOff();
    await t.powerOn();
    ok(t.executeSync(STARTUP_CLEAR, 0)); // TPM Reset
    const k3 = primary(t, ecc(BASE | A.SIGN_ENCRYPT, ECDAA));
    expect(rcOf(t.executeSync(signCmd(k3.handle, digest, ecdaaScheme(b.counter)), 0))).toBe(0x84);
    expect(commit(t, k3.handle).counter).toBe(0);
  });

  it("P-384: EC_Ephemeral, Commit and an ECDAA signature over SHA-384, checked with @noble/curves", () => {
    const t = startedTpm();
    const key = primary(t, ecc(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.ECDAA, hashAlg: TPM_ALG.SHA384, count: 0 }, TPM_ECC_CURVE.NIST_P384));
    const rd = new TpmReader(ok(t.executeSync(ephemeralCmd(TPM_ECC_CURVE.NIST_P384), 0)), 10);
    const q = readPoint(rd);
    expect([q.x.length, rd.u16()]).toEqual([48, 0]);
    const P4 = (v: { x: Uint8Array; y: Uint8Array }) => p384.Point.fromAffine({ x: big(v.x), y: big(v.y) });
    expect(() => P4(q).assertValidity()).not.toThrow();
    const c = commit(t, key.handle);
    expect(c.counter).toBe(1);
    const digest = sha384(new TextEncoder().encode("p384"));
    const rs = new TpmReader(ok(t.executeSync(signCmd(key.handle, digest, ecdaaScheme(c.counter, TPM_ALG.SHA384)), 0)), 18);
    const n = rs.tpm2b().slice();
    const s = rs.tpm2b().slice();
    expect(s.length).toBe(48);
    const T = big(sha384(Uint8Array.from([...n, ...digest]))) % p384.Point.CURVE().n;
    const a = p384.Point.BASE.multiply(big(s)).toAffine();
    const b = P4(c.E).add(P4(key.q).multiply(T)).toAffine();
    expect([a.x, a.y]).toEqual([b.x, b.y]);
  });

  it("Create accepts ECDAA for a signing key, restricted or not, and refuses it for a decryption key (TPM_RC_SCHEME + P2)", () => {
    const t = startedTpm();
    const parent = primary(t, marshalPublic({ type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: BASE | A.RESTRICTED | A.DECRYPT, authPolicy: E, symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, scheme: NULL_SCHEME, curveId: TPM_ECC_CURVE.NIST_P256, kdf: NULL_SCHEME, unique: { x: E, y: E } }));
    const create = (attrs: number, scheme: Scheme) => rcOf(t.executeSync(authCmd(TPM_CC.Create, [parent.handle], [[]], createParams(ecc(attrs, scheme))), 0));
    expect(create(BASE | A.SIGN_ENCRYPT, ECDAA)).toBe(0);
    expect(create(BASE | A.SIGN_ENCRYPT | A.RESTRICTED, ECDAA)).toBe(0);
    expect(create(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.ECDAA, hashAlg: TPM_ALG.SHA384, count: 5 })).toBe(0);
    expect(create(BASE | A.SIGN_ENCRYPT | A.DECRYPT, ECDAA)).toBe(0x2d2);
    expect(create(BASE | A.DECRYPT, ECDAA)).toBe(0x2d2);
  });
});

describe("TPM2_ECC_Parameters (Part 3 §14.7)", () => {
  // TPMS_ALGORITHM_DETAIL_ECC as swtpm 0.7.1 returns it (tpm2 geteccparameters, measured)
  const P256 =
    "00030100" + "0020000b" + "0010" +
    "0020ffffffff00000001000000000000000000000000ffffffffffffffffffffffff" +
    "0020ffffffff00000001000000000000000000000000fffffffffffffffffffffffc" +
    "00205ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b" +
    "00206b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" +
    "00204fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5" +
    "0020ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551" +
    "000101";

  it("P-256: the bytes swtpm gives; P-384: the curve's numbers from @noble/curves, KDF1_SP800_56A with SHA-384", () => {
    const t = startedTpm();
    const r = ok(t.executeSync(cmd(0x8001, TPM_CC.ECC_Parameters, u16(TPM_ECC_CURVE.NIST_P256)), 0));
    expect(hex(r.subarray(10))).toBe(P256);
    const r4 = ok(t.executeSync(cmd(0x8001, TPM_CC.ECC_Parameters, u16(TPM_ECC_CURVE.NIST_P384)), 0));
    const c = p384.Point.CURVE();
    const h48 = (v: bigint) => "0030" + v.toString(16).padStart(96, "0");
    expect(hex(r4.subarray(10))).toBe("00040180" + "0020000c" + "0010" + h48(c.p) + h48(c.a) + h48(c.b) + h48(c.Gx) + h48(c.Gy) + h48(c.n) + "000101");
  });

  it("an unknown curve is TPM_RC_CURVE + P1; a password session TPM_RC_HANDLE + S1", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.ECC_Parameters, u16(0)), 0))).toBe(0x1e6);
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.ECC_Parameters, u16(0x99)), 0))).toBe(0x1e6);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.ECC_Parameters, [], [[]], u16(3)), 0))).toBe(0x98b);
  });
});
