/**
 * Asymmetric primitives (TPM 2.0 Part 3 §14): TPM2_RSA_Encrypt (§14.2) and TPM2_RSA_Decrypt
 * (§14.3) with OAEP (and its label), RSAES-PKCS1-v1_5 and NULL (raw RSA), TPM2_ECDH_KeyGen
 * (§14.4), TPM2_ECDH_ZGen (§14.5), TPM2_ECC_Parameters (§14.7) and TPM2_ZGen_2Phase (§14.8,
 * ECDH) on the curves SoftTpm implements; and the ephemeral EC keys of Part 3 §19, TPM2_Commit
 * (§19.2) and TPM2_EC_Ephemeral (§19.3), whose commitments ECDAA signing and ZGen_2Phase use.
 *
 * @packageDocumentation
 */
import { concatBytes } from "../../wire/bytes.js";
import { TPM_ALG, TPM_CC, TPM_RC, TPMA_OBJECT } from "../../wire/constants.js";
import { type EccPublic, MAX_SYM_DATA } from "../../wire/structures.js";
import type { CommandEntries } from "../engine/dispatch.js";
import { CURVES, type Curve, type EccPoint, commitEnd, commitNext, commitR, committedR, curveDetail, eccMultiply, eccPublic, eccScalar, toPoint } from "../engine/ecc.js";
import { fromBig, toBig } from "../engine/crypto.js";
import type { Engine } from "../engine/engine.js";
import { EMPTY, H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { type TpmObject, findObject, hashOf } from "../engine/objects.js";
import { equal, mgf1, rsaBytes, rsaPrivate, rsaPublic } from "../engine/sign.js";
import { type HashImpl, hashImpl } from "../tables.js";
import { MAX_ECC } from "./signature.js";

/** Largest TPM2B_PUBLIC_KEY_RSA (Part 2 §11.2.4.5). */
const MAX_RSA = 512;
/** Largest TPM2B_DATA (sizeof(TPMT_HA), Part 2 §10.4.3). */
const MAX_DATA = 66;

/** A TPMT_RSA_DECRYPT (Part 2 §11.2.4.4): RSAES, OAEP with a hash, or NULL. */
interface RsaScheme {
  scheme: number;
  hashAlg: number;
}

/** Reads TPMT_RSA_DECRYPT as parameter `n`: another selector is TPM_RC_VALUE, an unknown hash TPM_RC_HASH. */
function readRsaScheme(inp: In, n: number): RsaScheme {
  inp.param = n;
  const scheme = inp.u16();
  if (scheme === TPM_ALG.NULL || scheme === TPM_ALG.RSAES) return { scheme, hashAlg: TPM_ALG.NULL };
  if (scheme !== TPM_ALG.OAEP) throw new Rc(P(TPM_RC.VALUE, n));
  const hashAlg = inp.u16();
  if (!hashImpl(hashAlg)) throw new Rc(P(TPM_RC.HASH, n));
  return { scheme, hashAlg };
}

/**
 * The RSA key of an RSA_Encrypt / RSA_Decrypt (Part 3 §14.2, §14.3): not RSA is TPM_RC_KEY,
 * no decrypt attribute (or, to decrypt, a restricted key) TPM_RC_ATTRIBUTES; a label must end
 * in a zero byte (TPM_RC_VALUE on `labelParam`); the scheme is the key's or the caller's and
 * both must agree (TPM_RC_SCHEME on parameter 2).
 */
function rsaKeyAndScheme(t: Engine, handle: number, inScheme: RsaScheme, label: Uint8Array, decrypting: boolean): { key: TpmObject; scheme: RsaScheme } {
  const key = findObject(t, handle)!;
  if (key.pub.type !== TPM_ALG.RSA) throw new Rc(H(TPM_RC.KEY, 1));
  const a = key.pub.objectAttributes;
  if (!(a & TPMA_OBJECT.DECRYPT) || (decrypting && a & TPMA_OBJECT.RESTRICTED)) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  if (label.length > 0 && label[label.length - 1] !== 0) throw new Rc(P(TPM_RC.VALUE, 3));
  const own = key.pub.scheme;
  let scheme: RsaScheme;
  if (own.scheme === TPM_ALG.NULL) scheme = inScheme;
  else if (inScheme.scheme === TPM_ALG.NULL) scheme = { scheme: own.scheme, hashAlg: own.scheme === TPM_ALG.OAEP ? own.hashAlg : TPM_ALG.NULL };
  else if (own.scheme === inScheme.scheme && (own.scheme !== TPM_ALG.OAEP || own.hashAlg === inScheme.hashAlg)) scheme = inScheme;
  else throw new Rc(P(TPM_RC.SCHEME, 2));
  return { key, scheme };
}

/** TPM2_RSA_Encrypt, Part 3 §14.2. */
function rsaEncrypt(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const message = inp.tpm2b(MAX_RSA).slice();
  const inScheme = readRsaScheme(inp, 2);
  inp.param = 3;
  const label = inp.tpm2b(MAX_DATA).slice();
  inp.done();
  const { key, scheme } = rsaKeyAndScheme(t, h[0]!, inScheme, label, false);
  const k = rsaBytes(key);
  let c: Uint8Array;
  switch (scheme.scheme) {
    case TPM_ALG.OAEP: {
      // EME-OAEP encoding (RFC 8017 §7.1.1 step 2) with a seed from the TPM's random source
      const a = hashImpl(scheme.hashAlg)!;
      if (message.length > k - 2 * a.size - 2) throw new Rc(TPM_RC.VALUE);
      const db = new Uint8Array(k - a.size - 1);
      db.set(a.hash(label), 0);
      db[db.length - message.length - 1] = 1;
      db.set(message, db.length - message.length);
      const seed = randomBytes(t, a.size);
      const dbMask = mgf1(a, seed, db.length);
      for (let i = 0; i < db.length; i++) db[i]! ^= dbMask[i]!;
      const seedMask = mgf1(a, db, a.size);
      for (let i = 0; i < a.size; i++) seed[i]! ^= seedMask[i]!;
      c = rsaPublic(key, concatBytes(Uint8Array.of(0), seed, db));
      break;
    }
    case TPM_ALG.RSAES: {
      // EME-PKCS1-v1_5 encoding (RFC 8017 §7.2.1 step 2): 00 02 PS (nonzero random) 00 M
      if (message.length > k - 11) throw new Rc(TPM_RC.VALUE);
      const ps = randomBytes(t, k - message.length - 3);
      for (let i = 0; i < ps.length; i++) while (ps[i] === 0) ps[i] = randomBytes(t, 1)[0]!;
      c = rsaPublic(key, concatBytes(Uint8Array.of(0, 2), ps, Uint8Array.of(0), message));
      break;
    }
    default: {
      // raw RSA: leading zeros may make the input longer than the modulus; a value not below
      // the modulus is TPM_RC_VALUE (Part 3 §14.2)
      let i = 0;
      while (i < message.length && message[i] === 0) i++;
      if (message.length - i > k) throw new Rc(TPM_RC.VALUE);
      const m = new Uint8Array(k);
      m.set(message.subarray(i), k - (message.length - i));
      if (!belowModulus(m, rsaModulus(key))) throw new Rc(TPM_RC.VALUE);
      c = rsaPublic(key, m);
    }
  }
  out.tpm2b(c);
}

/** The modulus of an RSA key (the caller checked the type). */
function rsaModulus(key: TpmObject): Uint8Array {
  return key.pub.type === TPM_ALG.RSA ? key.pub.unique : new Uint8Array(0);
}

/** m < n, both big-endian of the same length. */
function belowModulus(m: Uint8Array, n: Uint8Array): boolean {
  for (let i = 0; i < m.length; i++) if (m[i] !== n[i]) return m[i]! < n[i]!;
  return false;
}

/**
 * TPM2_RSA_Decrypt, Part 3 §14.3: a cipher text not of the modulus size is TPM_RC_SIZE, one not
 * below the modulus or with a bad encoding TPM_RC_VALUE (the codes of Part 3 §14.3; swtpm 0.7.1
 * gives TPM_RC_FAILURE for the last two and for an over-long OAEP or RSAES message, measured).
 */
function rsaDecrypt(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const cipher = inp.tpm2b(MAX_RSA).slice();
  const inScheme = readRsaScheme(inp, 2);
  inp.param = 3;
  const label = inp.tpm2b(MAX_DATA).slice();
  inp.done();
  const { key, scheme } = rsaKeyAndScheme(t, h[0]!, inScheme, label, true);
  const k = rsaBytes(key);
  if (cipher.length !== k) throw new Rc(TPM_RC.SIZE);
  if (!belowModulus(cipher, rsaModulus(key))) throw new Rc(TPM_RC.VALUE);
  const em = rsaPrivate(key, cipher);
  let m: Uint8Array | undefined;
  switch (scheme.scheme) {
    case TPM_ALG.OAEP:
      m = oaepDecode(hashImpl(scheme.hashAlg)!, em, label);
      break;
    case TPM_ALG.RSAES:
      m = pkcs1Decode(em);
      break;
    default:
      m = em;
  }
  if (!m) throw new Rc(TPM_RC.VALUE);
  out.tpm2b(m);
}

/** EME-OAEP decoding (RFC 8017 §7.1.2 step 3), or undefined when the encoding is wrong. */
function oaepDecode(a: HashImpl, em: Uint8Array, label: Uint8Array): Uint8Array | undefined {
  const k = em.length;
  if (k < 2 * a.size + 2) return undefined;
  const seed = em.slice(1, 1 + a.size);
  const db = em.slice(1 + a.size);
  const dbMask = mgf1(a, db, a.size);
  for (let i = 0; i < a.size; i++) seed[i]! ^= dbMask[i]!;
  const mask = mgf1(a, seed, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  let ok = em[0] === 0 && equal(db.subarray(0, a.size), a.hash(label));
  let i = a.size;
  while (i < db.length && db[i] === 0) i++;
  ok = ok && i < db.length && db[i] === 1;
  return ok ? db.slice(i + 1) : undefined;
}

/** EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3): 00 02 PS(≥ 8 nonzero) 00 M. */
function pkcs1Decode(em: Uint8Array): Uint8Array | undefined {
  if (em[0] !== 0 || em[1] !== 2) return undefined;
  let i = 2;
  while (i < em.length && em[i] !== 0) i++;
  if (i === em.length || i < 10) return undefined;
  return em.slice(i + 1);
}

/** Reads a TPM2B_ECC_POINT as parameter `n` (Part 2 §11.2.5.3): an empty or inconsistent size is TPM_RC_SIZE. */
function readEccPoint(inp: In, n: number): EccPoint {
  inp.param = n;
  const size = inp.u16();
  if (size === 0) throw new Rc(P(TPM_RC.SIZE, n));
  const start = inp.pos;
  const x = inp.tpm2b(MAX_ECC).slice();
  const y = inp.tpm2b(MAX_ECC).slice();
  if (inp.pos - start !== size) throw new Rc(P(TPM_RC.SIZE, n));
  return { x, y };
}

/** Writes a TPM2B_ECC_POINT. */
function writeEccPoint(out: Out, p: EccPoint): void {
  out.u16(4 + p.x.length + p.y.length);
  out.tpm2b(p.x);
  out.tpm2b(p.y);
}

/** `n` bytes from the TPM's random source. */
function randomBytes(t: Engine, n: number): Uint8Array {
  const b = new Uint8Array(n);
  t.random.fill(b, 0, n);
  return b;
}

/** An ECC key of ECDH_KeyGen / ECDH_ZGen: not ECC is TPM_RC_KEY (Part 3 §14.4, §14.5). */
function eccKey(t: Engine, handle: number): { key: TpmObject; pub: EccPublic; curve: Curve } {
  const key = findObject(t, handle)!;
  if (key.pub.type !== TPM_ALG.ECC) throw new Rc(H(TPM_RC.KEY, 1));
  return { key, pub: key.pub, curve: CURVES.get(key.pub.curveId)! };
}

/** TPM2_ECDH_KeyGen, Part 3 §14.4: an ephemeral d_e, zPoint = d_e·Q, pubPoint = d_e·G. */
function ecdhKeyGen(t: Engine, h: number[], inp: In, out: Out): void {
  inp.done();
  const { pub, curve } = eccKey(t, h[0]!);
  const de = eccScalar(curve, (n) => randomBytes(t, n));
  const z = eccMultiply(curve, de, pub.unique);
  if (!z) throw new Rc(TPM_RC.NO_RESULT);
  writeEccPoint(out, z);
  writeEccPoint(out, eccPublic(curve, de));
}

/**
 * TPM2_ECDH_ZGen, Part 3 §14.5: outPoint = d·inPoint for an unrestricted decryption key
 * (TPM_RC_ATTRIBUTES otherwise) whose scheme is ECDH or NULL (TPM_RC_SCHEME); a point not on
 * the curve is TPM_RC_ECC_POINT on inPoint.
 */
function ecdhZGen(t: Engine, h: number[], inp: In, out: Out): void {
  const inPoint = readEccPoint(inp, 1);
  inp.done();
  const { key, pub, curve } = eccKey(t, h[0]!);
  const a = pub.objectAttributes;
  if (a & TPMA_OBJECT.RESTRICTED || !(a & TPMA_OBJECT.DECRYPT)) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  const s = pub.scheme.scheme;
  if (s !== TPM_ALG.ECDH && s !== TPM_ALG.NULL) throw new Rc(H(TPM_RC.SCHEME, 1));
  const z = eccMultiply(curve, key.sensitive.sensitive, inPoint);
  if (!z) throw new Rc(P(TPM_RC.ECC_POINT, 1));
  writeEccPoint(out, z);
}

/** Reads a TPMI_ECC_CURVE as parameter `n`: a curve SoftTpm does not implement is TPM_RC_CURVE (Part 2 §11.2.5.5). */
function readCurve(inp: In, n: number): Curve {
  inp.param = n;
  const curve = CURVES.get(inp.u16());
  if (!curve) throw new Rc(P(TPM_RC.CURVE, n));
  return curve;
}

/** A point with both coordinates empty (what TPM2_Commit returns for a point it does not compute). */
const NO_POINT: EccPoint = { x: EMPTY, y: EMPTY };

/**
 * TPM2_ECC_Parameters, Part 3 §14.7: TPMS_ALGORITHM_DETAIL_ECC (Part 2 §11.2.5.3) of a curve,
 * byte for byte as swtpm 0.7.1 gives it (measured): curveID, keySize, kdf (KDF1_SP800_56A with
 * the curve's hash), sign (NULL), p, a, b, gX, gY, n, h. A curve SoftTpm does not implement is
 * TPM_RC_CURVE + P1 (swtpm, which has more curves, answers so for an unknown one).
 */
function eccParameters(_t: Engine, _h: number[], inp: In, out: Out): void {
  const curve = readCurve(inp, 1);
  inp.done();
  const d = curveDetail(curve);
  out.u16(curve.id);
  out.u16(d.keyBits);
  out.u16(TPM_ALG.KDF1_SP800_56A);
  out.u16(d.kdfHash);
  out.u16(TPM_ALG.NULL);
  for (const v of [d.p, d.a, d.b, d.gX, d.gY, d.n, d.h]) out.tpm2b(v);
}

/**
 * TPM2_EC_Ephemeral, Part 3 §19.3: Q = [r]G for the next commit count (r from the commit nonce
 * and the count, Part 1 §C.2.2), which it commits and returns as `counter`; TPM2_ZGen_2Phase
 * uses that count for the ephemeral private part.
 */
function ecEphemeral(t: Engine, _h: number[], inp: In, out: Out): void {
  const curve = readCurve(inp, 1);
  inp.done();
  const r = commitR(t, curve, EMPTY);
  writeEccPoint(out, eccPublic(curve, r));
  out.u16(commitNext(t));
}

/**
 * TPM2_Commit, Part 3 §19.2, the first phase of an ECDAA signature: for the key's next commit
 * count r, K = [d]P2 and L = [r]P2 when s2 and y2 give P2 = (H_nameAlg(s2) mod p, y2), and
 * E = [r]P1 (or [r]G when neither P1 nor P2 is given); points not computed are returned empty.
 * Codes as swtpm 0.7.1 gives them (measured): a key that is not ECC TPM_RC_KEY + H1, one whose
 * scheme is not ECDAA (the one anonymous scheme SoftTpm has) TPM_RC_SCHEME + H1, s2 without y2
 * (or the reverse) TPM_RC_SIZE + P3, a P2 not on the curve TPM_RC_ECC_POINT + P2, a P1 not on it
 * TPM_RC_ECC_POINT + P1. A P1 of size 0 is TPM_RC_SIZE + P1; an empty point is size 4.
 */
function commit(t: Engine, h: number[], inp: In, out: Out): void {
  const p1 = readEccPoint(inp, 1);
  inp.param = 2;
  const s2 = inp.tpm2b(MAX_SYM_DATA).slice();
  inp.param = 3;
  const y2 = inp.tpm2b(MAX_ECC).slice();
  inp.done();
  const key = findObject(t, h[0]!)!;
  if (key.pub.type !== TPM_ALG.ECC) throw new Rc(H(TPM_RC.KEY, 1));
  if (key.pub.scheme.scheme !== TPM_ALG.ECDAA) throw new Rc(H(TPM_RC.SCHEME, 1));
  if ((s2.length === 0) !== (y2.length === 0)) throw new Rc(P(TPM_RC.SIZE, 3));
  const curve = CURVES.get(key.pub.curveId)!;
  let p2: EccPoint | undefined;
  if (s2.length > 0) {
    const prime = curve.impl.Point.CURVE().p;
    p2 = { x: fromBig(toBig(hashOf(key.pub.nameAlg).hash(s2)) % prime, curve.size), y: y2 };
    if (!toPoint(curve, p2)) throw new Rc(P(TPM_RC.ECC_POINT, 2));
    if (key.publicOnly) throw new Rc(H(TPM_RC.KEY, 1));
  }
  const m = p1.x.length + p1.y.length > 0 ? p1 : undefined;
  if (m && !toPoint(curve, m)) throw new Rc(P(TPM_RC.ECC_POINT, 1));
  const r = commitR(t, curve, key.name);
  // the points are on the curve and the scalars in [1, n − 1]: no product is the point at infinity
  writeEccPoint(out, p2 ? eccMultiply(curve, key.sensitive.sensitive, p2)! : NO_POINT);
  writeEccPoint(out, p2 ? eccMultiply(curve, r, p2)! : NO_POINT);
  writeEccPoint(out, m ? eccMultiply(curve, r, m)! : p2 ? NO_POINT : eccPublic(curve, r));
  out.u16(commitNext(t));
}

/** TPMI_ECC_KEY_EXCHANGE (Part 2 §11.2.5.4): the two-phase schemes (NULL is not one). */
const KEY_EXCHANGE: ReadonlySet<number> = new Set<number>([TPM_ALG.ECDH, TPM_ALG.ECMQV, TPM_ALG.SM2]);

/**
 * TPM2_ZGen_2Phase, Part 3 §14.8, the second phase of a two-phase key exchange (Part 1 §C.6.2)
 * with the ephemeral key of a TPM2_EC_Ephemeral (its `counter`): for ECDH, Z1 = [dsA]QsB with
 * the static key keyA and Z2 = [deA]QeB with the ephemeral scalar, whose commitment is then used
 * up. Codes as swtpm 0.7.1 gives them (measured): keyA not ECC TPM_RC_KEY + H1, restricted or
 * not a decryption key TPM_RC_ATTRIBUTES + H1, a scheme other than the key's (or none)
 * TPM_RC_SCHEME + P3, a point not on the curve TPM_RC_ECC_POINT + P1 / P2, a counter that names
 * no commitment TPM_RC_VALUE + P4. SoftTpm implements the ECDH scheme only: ECMQV and SM2 are
 * TPM_RC_SCHEME + P3 (swtpm 0.7.1 accepts both names; its ECMQV put it into failure mode,
 * TPM_RC_FAILURE for every command after, measured).
 */
function zGen2Phase(t: Engine, h: number[], inp: In, out: Out): void {
  const qsB = readEccPoint(inp, 1);
  const qeB = readEccPoint(inp, 2);
  inp.param = 3;
  const inScheme = inp.u16();
  if (!KEY_EXCHANGE.has(inScheme)) throw new Rc(P(TPM_RC.SCHEME, 3));
  inp.param = 4;
  const counter = inp.u16();
  inp.done();
  const { key, pub, curve } = eccKey(t, h[0]!);
  const a = pub.objectAttributes;
  if (a & TPMA_OBJECT.RESTRICTED || !(a & TPMA_OBJECT.DECRYPT)) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  const own = pub.scheme.scheme;
  if (own !== TPM_ALG.NULL && own !== inScheme) throw new Rc(P(TPM_RC.SCHEME, 3));
  if (!toPoint(curve, qsB)) throw new Rc(P(TPM_RC.ECC_POINT, 1));
  if (!toPoint(curve, qeB)) throw new Rc(P(TPM_RC.ECC_POINT, 2));
  const r = committedR(t, curve, EMPTY, counter);
  if (!r) throw new Rc(P(TPM_RC.VALUE, 4));
  if (inScheme !== TPM_ALG.ECDH) throw new Rc(P(TPM_RC.SCHEME, 3));
  const z1 = eccMultiply(curve, key.sensitive.sensitive, qsB)!;
  const z2 = eccMultiply(curve, r, qeB)!;
  commitEnd(t, counter);
  writeEccPoint(out, z1);
  writeEccPoint(out, z2);
}

/** Part 3 §14 (and §19) in the dispatch table. */
export const asymmetricCommands: CommandEntries = [
  [TPM_CC.RSA_Encrypt, { decrypt: true, encrypt: true, handles: ["object"], auth: 0, run: (t, h, i, o) => rsaEncrypt(t, h, i, o) }],
  [TPM_CC.RSA_Decrypt, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => rsaDecrypt(t, h, i, o) }],
  [TPM_CC.ECDH_KeyGen, { encrypt: true, handles: ["object"], auth: 0, run: (t, h, i, o) => ecdhKeyGen(t, h, i, o) }],
  [TPM_CC.ECDH_ZGen, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => ecdhZGen(t, h, i, o) }],
  [TPM_CC.ECC_Parameters, { handles: [], auth: 0, run: (t, h, i, o) => eccParameters(t, h, i, o) }],
  [TPM_CC.ZGen_2Phase, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => zGen2Phase(t, h, i, o) }],
  [TPM_CC.Commit, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => commit(t, h, i, o) }],
  [TPM_CC.EC_Ephemeral, { encrypt: true, handles: [], auth: 0, run: (t, h, i, o) => ecEphemeral(t, h, i, o) }],
];
