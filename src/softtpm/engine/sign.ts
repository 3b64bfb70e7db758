/**
 * The one signing primitive of the SoftTpm engine, used by every command that signs (TPM2_Sign,
 * TPM2_Quote, TPM2_Certify, ...): scheme selection (Part 3 §20.2, the key's scheme or the
 * caller's), RSASSA-PKCS1-v1_5 and RSASSA-PSS (Part 1 §C.5, RFC 8017 §8), ECDSA (Part 1 §C.4),
 * ECDAA (Part 1 §C.4.4, with a commitment of TPM2_Commit) and HMAC for keyed-hash keys (Part 1
 * §11.4.3), each returning a marshalled TPMT_SIGNATURE (Part 2 §11.3.4); the matching
 * verification; the tickets signing needs (TPMT_TK_HASHCHECK, TPMT_TK_VERIFIED, Part 2 §10.7); and
 * raw RSA on node:crypto key objects.
 *
 * @packageDocumentation
 */
import { type KeyObject, constants, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { TpmWriter } from "../../wire/buffer.js";
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_ALG, TPM_RC, TPM_RH, TPM_ST, TPMA_OBJECT } from "../../wire/constants.js";
import { type TpmtSignature, writeSignature } from "../../wire/structures.js";
import { type HashImpl, hashImpl } from "../tables.js";
import { type RsaKey, fromBig, modPow, rsaFromPrime, toBig } from "./crypto.js";
import { CURVES, commitEnd, committedR, ecdaaSign, ecdsaSign, ecdsaVerify, eccScalar } from "./ecc.js";
import type { Engine } from "./engine.js";
import { P, Rc } from "./marshal.js";
import type { TpmObject } from "./objects.js";
import { constantTimeEqual } from "../../wire/bytes.js";

/** A signing scheme as a command gives it (TPMT_SIG_SCHEME, Part 2 §11.2.1.5). */
export interface SigScheme {
  scheme: number;
  hashAlg: number;
  /** ECDAA's commit count (TPMS_SCHEME_ECDAA.count, Part 2 §11.2.1.3). */
  count?: number;
}

/**
 * An ECDAA signature whose count names no usable commitment (never committed, already used, or
 * too old): TPM_RC_VALUE, with no parameter number (libtpms CryptGenerateR failing in the ECDAA
 * sign; swtpm 0.7.1, measured).
 */
const ECDAA_NO_COMMIT = TPM_RC.VALUE;

/** The signature schemes SoftTpm signs with. */
const SIGN_SCHEMES: ReadonlySet<number> = new Set<number>([TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.HMAC]);

/**
 * The scheme a signature by `key` uses (Part 3 §20.2 and §18, "scheme selection"): the key's
 * own scheme when the caller gives TPM_ALG_NULL (or nothing), the caller's when the key has none;
 * when both are given they must agree in scheme and hash. No scheme at all, or a disagreement,
 * is TPM_RC_SCHEME on parameter `param` (the inScheme parameter; 2 in Sign, Quote, Certify), as
 * is a scheme the key's type cannot sign with.
 */
export function selectSignScheme(key: TpmObject, scheme: SigScheme | undefined, param = 2): SigScheme {
  const given = scheme && scheme.scheme !== TPM_ALG.NULL ? scheme : undefined;
  const own = key.pub.type === TPM_ALG.SYMCIPHER ? undefined : key.pub.scheme.scheme !== TPM_ALG.NULL ? key.pub.scheme : undefined;
  if (!own) {
    // a scheme the key's type cannot sign with (ECDSA for an RSA key, SM2, EC-Schnorr) is
    // refused here too (swtpm 0.7.1, measured: TPM_RC_SCHEME + P2); an ECC key without a scheme
    // may sign with ECDAA (swtpm 0.7.1, measured)
    if (!given || !schemeFits(key, given.scheme, true)) throw new Rc(P(TPM_RC.SCHEME, param));
    return given.scheme === TPM_ALG.ECDAA ? { scheme: given.scheme, hashAlg: given.hashAlg, count: given.count ?? 0 } : { scheme: given.scheme, hashAlg: given.hashAlg };
  }
  // ECDAA is a split scheme: the caller must give it, with the commit count (libtpms
  // CryptSelectSignScheme / CryptIsSplitSign; swtpm 0.7.1, measured: TPM_RC_SCHEME + P2)
  if (!given && own.scheme === TPM_ALG.ECDAA) throw new Rc(P(TPM_RC.SCHEME, param));
  if (given && (given.scheme !== own.scheme || given.hashAlg !== own.hashAlg)) throw new Rc(P(TPM_RC.SCHEME, param));
  if (own.scheme === TPM_ALG.ECDAA) return { scheme: own.scheme, hashAlg: own.hashAlg, count: given!.count ?? 0 };
  return { scheme: own.scheme, hashAlg: own.hashAlg };
}

/**
 * Is `scheme` one `key`'s type can sign with (RSASSA/RSAPSS for RSA, ECDSA for ECC, HMAC for
 * keyed-hash)? `signing`: ECDAA too for ECC (a signature scheme, never a verifiable one: Part 1
 * §C.4.4 leaves its verification to the caller).
 */
function schemeFits(key: TpmObject, scheme: number, signing = false): boolean {
  switch (key.pub.type) {
    case TPM_ALG.RSA:
      return scheme === TPM_ALG.RSASSA || scheme === TPM_ALG.RSAPSS;
    case TPM_ALG.ECC:
      return scheme === TPM_ALG.ECDSA || (signing && scheme === TPM_ALG.ECDAA);
    case TPM_ALG.KEYEDHASH:
      return scheme === TPM_ALG.HMAC;
    default:
      return false;
  }
}

/**
 * Signs `digest` with `key` and returns the marshalled TPMT_SIGNATURE. The scheme is chosen by
 * {@link selectSignScheme} (TPM_RC_SCHEME + P`param` when none fits); a scheme the key type
 * cannot sign with (RSASSA for an ECC key, SM2, EC-Schnorr) is TPM_RC_SCHEME. ECDAA (Part 1
 * §C.4.4) uses up the commitment its count names (TPM_RC_VALUE when there is none). The caller
 * has checked that `key` may sign (TPMA_OBJECT sign) and, for a restricted key, the ticket.
 */
export function signDigest(t: Engine, key: TpmObject, scheme: SigScheme | undefined, digest: Uint8Array, param = 2): Uint8Array {
  const s = selectSignScheme(key, scheme, param);
  const w = new TpmWriter(64 + 2 * digest.length);
  writeSignature(w, signWith(t, key, s, digest));
  return w.finish();
}

/** Signs with a selected scheme (see {@link signDigest}). */
export function signWith(t: Engine, key: TpmObject, s: SigScheme, digest: Uint8Array): TpmtSignature {
  if (!SIGN_SCHEMES.has(s.scheme) || !schemeFits(key, s.scheme, true)) throw new Rc(TPM_RC.SCHEME);
  const a = hashImpl(s.hashAlg);
  if (!a) throw new Rc(TPM_RC.HASH);
  switch (s.scheme) {
    case TPM_ALG.RSASSA:
      return { sigAlg: s.scheme, hash: s.hashAlg, sig: rsaPrivate(key, emsaPkcs1(a, digest, rsaBytes(key))) };
    case TPM_ALG.RSAPSS: {
      const k = rsaBytes(key);
      // salt as long as the digest, or as long as fits (Part 1 §C.5.2; RFC 8017 §9.1.1)
      const sLen = Math.min(a.size, k - a.size - 2);
      const salt = new Uint8Array(Math.max(sLen, 0));
      t.random.fill(salt, 0, salt.length);
      return { sigAlg: s.scheme, hash: s.hashAlg, sig: rsaPrivate(key, emsaPss(a, digest, salt, rsaBits(key) - 1)) };
    }
    case TPM_ALG.ECDSA: {
      if (key.pub.type !== TPM_ALG.ECC) throw new Rc(TPM_RC.SCHEME);
      const curve = CURVES.get(key.pub.curveId)!;
      const entropy = new Uint8Array(32);
      t.random.fill(entropy, 0, 32);
      const { r, s: sv } = ecdsaSign(curve, key.sensitive.sensitive, digest, entropy);
      return { sigAlg: s.scheme, hash: s.hashAlg, r, s: sv };
    }
    case TPM_ALG.ECDAA: {
      // Part 1 §C.4.4: the scalar r of commitment `count` (TPM2_Commit), used once
      if (key.pub.type !== TPM_ALG.ECC) throw new Rc(TPM_RC.SCHEME);
      const curve = CURVES.get(key.pub.curveId)!;
      const count = s.count ?? 0;
      const r = committedR(t, curve, key.name, count);
      if (!r) throw new Rc(ECDAA_NO_COMMIT);
      for (;;) {
        const sig = ecdaaSign(curve, key.sensitive.sensitive, r, a, digest, eccScalar(curve, (n) => randomBytes(t, n)));
        if (!sig) continue;
        commitEnd(t, count);
        return { sigAlg: s.scheme, hash: s.hashAlg, r: sig.r, s: sig.s };
      }
    }
    default:
      // HMAC: the digest of the keyed-hash key over the data (Part 3 §20.2 with a keyed-hash key)
      return { sigAlg: TPM_ALG.HMAC, hash: s.hashAlg, sig: a.mac(key.sensitive.sensitive, digest) };
  }
}

/**
 * Verifies `sig` over `digest` with `key` (Part 3 §20.1): a signature scheme the key cannot
 * have made is TPM_RC_SCHEME, a signature that does not verify TPM_RC_SIGNATURE (both without
 * a parameter number; the command adds it).
 */
export function verifyDigest(key: TpmObject, digest: Uint8Array, sig: TpmtSignature): void {
  if (!schemeFits(key, sig.sigAlg)) throw new Rc(TPM_RC.SCHEME);
  const a = hashImpl(sig.hash);
  if (!a) throw new Rc(TPM_RC.SCHEME);
  let ok: boolean;
  switch (sig.sigAlg) {
    case TPM_ALG.RSASSA:
    case TPM_ALG.RSAPSS: {
      const k = rsaBytes(key);
      const sv = sig.sig!;
      if (sv.length !== k || toBig(sv) >= rsaNumbers(key).n) {
        ok = false;
        break;
      }
      const em = fromBig(modPow(toBig(sv), rsaNumbers(key).e, rsaNumbers(key).n), k);
      ok = sig.sigAlg === TPM_ALG.RSASSA ? equal(em, emsaPkcs1(a, digest, k)) : pssVerify(a, digest, em, rsaBits(key) - 1);
      break;
    }
    case TPM_ALG.ECDSA: {
      if (key.pub.type !== TPM_ALG.ECC) throw new Rc(TPM_RC.SCHEME);
      const curve = CURVES.get(key.pub.curveId)!;
      ok = ecdsaVerify(curve, key.pub.unique, digest, sig.r!, sig.s!);
      break;
    }
    default:
      // an HMAC "signature" is checked by recomputing it, which needs the key's sensitive part
      ok = !key.publicOnly && equal(a.mac(key.sensitive.sensitive, digest), sig.sig!);
  }
  if (!ok) throw new Rc(TPM_RC.SIGNATURE);
}

/** `n` bytes of the TPM's random source. */
function randomBytes(t: Engine, n: number): Uint8Array {
  const b = new Uint8Array(n);
  t.random.fill(b, 0, n);
  return b;
}

/** Constant-time equality of two byte strings (the wire layer's `constantTimeEqual`). */
export const equal: (a: Uint8Array, b: Uint8Array) => boolean = constantTimeEqual;

/** proof(hierarchy): the secret value tickets of a hierarchy are keyed with (SHA-512 of the proof seed and the hierarchy). */
export function hierarchyProof(t: Engine, hierarchy: number): Uint8Array {
  return sha512(concatBytes(t.ps.proofSeed, u32be(hierarchy)));
}

/** A ticket's HMAC under proof(hierarchy): SHA-512, the context hash of this TPM, as swtpm 0.7.1 sizes tickets. */
function ticketMac(t: Engine, hierarchy: number, ...parts: Uint8Array[]): Uint8Array {
  return hmac(sha512, hierarchyProof(t, hierarchy), concatBytes(...parts));
}

const st = (tag: number): Uint8Array => Uint8Array.of(tag >>> 8, tag & 0xff);

/**
 * The digest of a TPMT_TK_HASHCHECK for `digest` (Part 2 §10.7.6): HMAC(proof(hierarchy),
 * TPM_ST_HASHCHECK ‖ digest), the ticket TPM2_Hash and TPM2_SequenceComplete give.
 */
export function hashcheckTicket(t: Engine, hierarchy: number, digest: Uint8Array): Uint8Array {
  return ticketMac(t, hierarchy, st(TPM_ST.HASHCHECK), digest);
}

/**
 * The digest of a TPMT_TK_VERIFIED (Part 2 §10.7.4): HMAC(proof(hierarchy), TPM_ST_VERIFIED ‖
 * digest ‖ keyName); an empty digest for TPM_RH_NULL.
 */
export function verifiedTicket(t: Engine, hierarchy: number, digest: Uint8Array, keyName: Uint8Array): Uint8Array {
  if (hierarchy === TPM_RH.NULL) return new Uint8Array(0);
  return ticketMac(t, hierarchy, st(TPM_ST.VERIFIED), digest, keyName);
}

/** Does `key` have the sign attribute and a type that signs (not a symmetric cipher)? Part 3 §20.2 IsSigningObject. */
export function isSigningKey(key: TpmObject): boolean {
  return (key.pub.objectAttributes & TPMA_OBJECT.SIGN_ENCRYPT) !== 0 && key.pub.type !== TPM_ALG.SYMCIPHER;
}

// ---- RSA ----

const privateKeys = new WeakMap<TpmObject, KeyObject>();
const publicKeys = new WeakMap<TpmObject, KeyObject>();

const b64u = (v: bigint): string => Buffer.from(fromBig(v, Math.ceil(v.toString(16).length / 2))).toString("base64url");

/**
 * The RSA numbers of an RSA key (public-only keys have n and e only). An object that came back
 * from a context blob (TPM2_ContextLoad, Part 3 §28.3) or from persistent storage carries only
 * its TPMT_SENSITIVE: the private exponent is rebuilt from the stored prime p and the modulus,
 * as the reference code's CryptRsaLoadPrivateExponent does when an object is used, and kept on
 * the object.
 */
export function rsaNumbers(key: TpmObject): RsaKey {
  if (key.rsa) return key.rsa;
  if (key.pub.type !== TPM_ALG.RSA) throw new Rc(TPM_RC.KEY);
  const n = toBig(key.pub.unique);
  const e = BigInt(key.pub.exponent === 0 ? 65537 : key.pub.exponent);
  if (key.sensitive.sensitiveType === TPM_ALG.RSA && key.sensitive.sensitive.length > 0) {
    const k = rsaFromPrime(n, e, toBig(key.sensitive.sensitive));
    if (!k) throw new Rc(TPM_RC.BINDING);
    key.rsa = k;
    return k;
  }
  return { n, e, d: 0n, p: 0n, q: 0n };
}

/** Modulus size in bytes. */
export function rsaBytes(key: TpmObject): number {
  return key.pub.type === TPM_ALG.RSA ? key.pub.unique.length : 0;
}

function rsaBits(key: TpmObject): number {
  return rsaNumbers(key).n.toString(2).length;
}

/** The node:crypto private key of an RSA object (built from its numbers once, as a JWK). */
function rsaPrivateKey(key: TpmObject): KeyObject {
  let k = privateKeys.get(key);
  if (!k) {
    const { n, e, d, p, q } = rsaNumbers(key);
    if (d === 0n) throw new Rc(TPM_RC.KEY);
    k = createPrivateKey({
      key: { kty: "RSA", n: b64u(n), e: b64u(e), d: b64u(d), p: b64u(p), q: b64u(q), dp: b64u(d % (p - 1n)), dq: b64u(d % (q - 1n)), qi: b64u(modInverse(q, p)) },
      format: "jwk",
    });
    privateKeys.set(key, k);
  }
  return k;
}

/** The node:crypto public key of an RSA object. */
export function rsaPublicKey(key: TpmObject): KeyObject {
  let k = publicKeys.get(key);
  if (!k) {
    const { n, e } = rsaNumbers(key);
    k = createPublicKey({ key: { kty: "RSA", n: b64u(n), e: b64u(e) }, format: "jwk" });
    publicKeys.set(key, k);
  }
  return k;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

/** m^d mod n for an m of the modulus size (RSADP / RSASP1, RFC 8017 §5.1.2, §5.2.1), with CRT in OpenSSL. */
export function rsaPrivate(key: TpmObject, m: Uint8Array): Uint8Array {
  return new Uint8Array(privateDecrypt({ key: rsaPrivateKey(key), padding: constants.RSA_NO_PADDING }, m));
}

/** m^e mod n (RSAEP, RFC 8017 §5.1.1); m must be below n. */
export function rsaPublic(key: TpmObject, m: Uint8Array): Uint8Array {
  return new Uint8Array(publicEncrypt({ key: rsaPublicKey(key), padding: constants.RSA_NO_PADDING }, m));
}

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: ReadonlyMap<number, string> = new Map([
  [TPM_ALG.SHA1, "3021300906052b0e03021a05000414"],
  [TPM_ALG.SHA256, "3031300d060960864801650304020105000420"],
  [TPM_ALG.SHA384, "3041300d060960864801650304020205000430"],
  [TPM_ALG.SHA512, "3051300d060960864801650304020305000440"],
]);

const unhex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g)!, (x) => parseInt(x, 16));

/** EMSA-PKCS1-v1_5 (RFC 8017 §9.2) of a digest: 00 01 FF.. 00 DigestInfo; TPM_RC_SIZE when the digest does not fit its hash, TPM_RC_KEY when the key is too small. */
function emsaPkcs1(a: HashImpl, digest: Uint8Array, k: number): Uint8Array {
  const prefix = DIGEST_INFO.get(a.alg);
  if (!prefix || digest.length !== a.size) throw new Rc(TPM_RC.SIZE);
  const t = concatBytes(unhex(prefix), digest);
  if (k < t.length + 11) throw new Rc(TPM_RC.KEY);
  const em = new Uint8Array(k).fill(0xff);
  em[0] = 0;
  em[1] = 1;
  em[k - t.length - 1] = 0;
  em.set(t, k - t.length);
  return em;
}

/** MGF1 (RFC 8017 §B.2.1). */
export function mgf1(a: HashImpl, seed: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0, off = 0; off < len; i++, off += a.size) out.set(a.hash(concatBytes(seed, u32be(i))).subarray(0, Math.min(a.size, len - off)), off);
  return out;
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1) of a digest with `salt`, for emBits bits. */
function emsaPss(a: HashImpl, digest: Uint8Array, salt: Uint8Array, emBits: number): Uint8Array {
  if (digest.length !== a.size) throw new Rc(TPM_RC.SIZE);
  const emLen = Math.ceil(emBits / 8);
  if (emLen < a.size + salt.length + 2) throw new Rc(TPM_RC.KEY);
  const h = a.hash(concatBytes(new Uint8Array(8), digest, salt));
  const db = new Uint8Array(emLen - a.size - 1);
  db[db.length - salt.length - 1] = 1;
  db.set(salt, db.length - salt.length);
  const mask = mgf1(a, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >>> (8 * emLen - emBits);
  const em = concatBytes(db, h, Uint8Array.of(0xbc));
  // the message representative is as long as the modulus (one leading zero byte when emBits is a multiple of 8)
  return emLen === Math.ceil((emBits + 1) / 8) ? em : concatBytes(Uint8Array.of(0), em);
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with any salt length, as a TPM verifies. */
function pssVerify(a: HashImpl, digest: Uint8Array, emFull: Uint8Array, emBits: number): boolean {
  if (digest.length !== a.size) return false;
  const emLen = Math.ceil(emBits / 8);
  const em = emFull.subarray(emFull.length - emLen);
  if (emFull.length > emLen && emFull[0] !== 0) return false;
  if (emLen < a.size + 2 || em[emLen - 1] !== 0xbc) return false;
  const db = em.slice(0, emLen - a.size - 1);
  const h = em.subarray(emLen - a.size - 1, emLen - 1);
  const top = 0xff >>> (8 * emLen - emBits);
  if ((db[0]! & ~top & 0xff) !== 0) return false;
  const mask = mgf1(a, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= top;
  let i = 0;
  while (i < db.length && db[i] === 0) i++;
  if (i === db.length || db[i] !== 1) return false;
  const salt = db.subarray(i + 1);
  return equal(a.hash(concatBytes(new Uint8Array(8), digest, salt)), h);
}
