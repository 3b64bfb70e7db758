/**
 * Session commands (TPM 2.0 Part 3 §11): TPM2_StartAuthSession, for unsalted HMAC, policy and
 * trial sessions (bound or unbound), with parameter encryption by AES-CFB or XOR (Part 1 §21).
 * Salted sessions with an RSA tpmKey (OAEP) or an ECC tpmKey (one-pass ECDH and KDFe). How a session
 * authorizes a command is the engine's authorization step; the policy assertions are the policy
 * chapter's commands (Part 3 §23).
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_HR, TPM_HT, TPM_RC, TPM_RH, TPM_SE, TPMA_NV, TPMA_OBJECT } from "../../wire/constants.js";
import { type PolicyState, bindAuthValue, kdfa, kdfe, recordBindEntity, resetPolicy, trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { MAX_ENCRYPTED_SECRET, MAX_SESSIONS, SESSION_HANDLE_RANGE } from "../engine/limits.js";
import { EMPTY, H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { hashImpl } from "../tables.js";
import { concatBytes } from "../../wire/bytes.js";
import { type TpmObject, findObject } from "../engine/objects.js";
import { mgf1, rsaBytes, rsaPrivate } from "../engine/sign.js";
import { CURVES, eccMultiply } from "../engine/ecc.js";
import { fromBig, toBig } from "../engine/crypto.js";

/** Shortest nonceCaller TPM2_StartAuthSession takes (Part 3 §11.1: 16 bytes). */
const MIN_NONCE = 16;
/** Largest TPM2B_NONCE: the largest digest (SHA-512). */
const MAX_NONCE = 64;

/**
 * The salt of a salted session (Part 1 §19.6.13, §C.6.1 / Part 1 Annex B.10.3): RSA decryption of
 * encryptedSalt and EME-OAEP decoding (RFC 8017 §7.1.2) with the key's nameAlg and the label
 * "SECRET\0". Any failure is TPM_RC_VALUE + P2 (reference code, StartAuthSession.c).
 */
function decryptSalt(key: TpmObject, encrypted: Uint8Array): Uint8Array {
  const bad = new Rc(P(TPM_RC.VALUE, 2));
  const a = hashImpl(key.pub.nameAlg);
  const k = rsaBytes(key);
  if (!a || encrypted.length !== k) throw bad;
  let em: Uint8Array;
  try {
    em = rsaPrivate(key, encrypted);
  } catch {
    throw bad; // not below the modulus
  }
  const hLen = a.size;
  if (k < 2 * hLen + 2 || em[0] !== 0) throw bad;
  const maskedSeed = em.subarray(1, 1 + hLen);
  const maskedDb = em.subarray(1 + hLen);
  const seedMask = mgf1(a, maskedDb, hLen);
  const seed = maskedSeed.map((b, i) => b ^ seedMask[i]!);
  const dbMask = mgf1(a, seed, maskedDb.length);
  const db = maskedDb.map((b, i) => b ^ dbMask[i]!);
  const lHash = a.hash(SECRET_LABEL);
  let diff = 0;
  for (let i = 0; i < hLen; i++) diff |= db[i]! ^ lHash[i]!;
  let i = hLen;
  while (i < db.length && db[i] === 0) i++;
  if (diff !== 0 || i >= db.length || db[i] !== 1) throw bad;
  const saltValue = db.slice(i + 1);
  if (saltValue.length > MAX_NONCE) throw bad; // at most a digest (TPMU_HA)
  return saltValue;
}

/**
 * The salt of a session salted with an ECC key (Part 1 §19.6.13, Annex C.6.2; reference code,
 * CryptSecretDecrypt): encryptedSalt holds the caller's ephemeral public point Qe as a
 * TPMS_ECC_POINT (Part 2 §11.2.5.2); Z is the x coordinate of d·Qe (d the tpmKey's private
 * scalar), and the salt is KDFe(nameAlg, Z, "SECRET", Qe.x, tpmKey.x) of the nameAlg's digest
 * size. A point that does not unmarshal or is not on the curve is TPM_RC_VALUE + P2, as every
 * failure of the secret decryption is in the reference code's StartAuthSession.c.
 */
function eccSalt(key: TpmObject, encrypted: Uint8Array): Uint8Array {
  const bad = new Rc(P(TPM_RC.VALUE, 2));
  const a = hashImpl(key.pub.nameAlg);
  const c = key.pub.type === TPM_ALG.ECC ? CURVES.get(key.pub.curveId) : undefined;
  if (!a || !c || key.pub.type !== TPM_ALG.ECC) throw bad;
  // TPMS_ECC_POINT: x and y, each a TPM2B_ECC_PARAMETER no longer than the curve's coordinates
  let at = 0;
  const coordinate = (): Uint8Array => {
    if (encrypted.length - at < 2) throw bad;
    const n = (encrypted[at]! << 8) | encrypted[at + 1]!;
    if (n > c.size || encrypted.length - at - 2 < n) throw bad;
    const v = encrypted.slice(at + 2, at + 2 + n);
    at += 2 + n;
    return v;
  };
  const qe = { x: coordinate(), y: coordinate() };
  const d = key.sensitive.sensitive;
  if (d.length === 0 || d.length > c.size) throw bad;
  const z = eccMultiply(c, fromBig(toBig(d), c.size), qe);
  if (!z) throw bad; // not on the curve (reference code: TPM_RC_ECC_POINT, reported as VALUE + P2)
  return kdfe(a, z.x, "SECRET", qe.x, key.pub.unique.x, a.size * 8);
}

/** The OAEP label of a session salt: "SECRET" with its terminating zero (Part 1 §C.6.1). */
const SECRET_LABEL = /* @__PURE__ */ new TextEncoder().encode("SECRET\0");

/**
 * TPMT_SYM_DEF (Part 2 §11.1.6) as parameter 4: TPM_ALG_NULL, AES with 128, 192 or 256 bits and a
 * mode, or XOR with a hash; anything else is TPM_RC_SYMMETRIC, a bad key size or hash TPM_RC_VALUE
 * / TPM_RC_HASH (+ P4).
 */
function readSymDef(inp: In): { alg: number; keyBits: number; mode: number } | undefined {
  const alg = inp.u16();
  if (alg === TPM_ALG.NULL) return undefined;
  if (alg === TPM_ALG.XOR) {
    const h = inp.u16();
    if (!hashImpl(h)) throw new Rc(P(TPM_RC.HASH, 4));
    return { alg, keyBits: 0, mode: h };
  }
  if (alg !== TPM_ALG.AES) throw new Rc(P(TPM_RC.SYMMETRIC, 4));
  const keyBits = inp.u16();
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) throw new Rc(P(TPM_RC.VALUE, 4));
  const mode = inp.u16();
  // TPMI_ALG_SYM_MODE: CTR, OFB, CBC, CFB, ECB (Part 2 §9.31)
  if (mode < 0x0040 || mode > 0x0044) throw new Rc(P(TPM_RC.MODE, 4));
  return { alg, keyBits, mode };
}

/** TPM2_StartAuthSession, Part 3 §11.1. */
function startAuthSession(t: Engine, h: number[], inp: In, out: Out): void {
  const tpmKey = h[0]!;
  const bind = h[1]!;
  const nonceCaller = inp.tpm2b(MAX_NONCE);
  inp.param = 2;
  const salt = inp.tpm2b(MAX_ENCRYPTED_SECRET);
  inp.param = 3;
  const type = inp.u8();
  if (type !== TPM_SE.HMAC && type !== TPM_SE.POLICY && type !== TPM_SE.TRIAL) throw new Rc(P(TPM_RC.VALUE, 3)); // TPMI_SE
  inp.param = 4;
  const symmetric = readSymDef(inp);
  inp.param = 5;
  const authHash = hashImpl(inp.u16());
  if (!authHash) throw new Rc(P(TPM_RC.HASH, 5));
  inp.done();
  // nonceCaller first, then tpmKey and the salt (libtpms order; swtpm 0.7.1, measured)
  if (nonceCaller.length < MIN_NONCE || nonceCaller.length > authHash.size) throw new Rc(P(TPM_RC.SIZE, 1));
  let key: TpmObject | undefined;
  if (tpmKey !== TPM_RH.NULL) {
    key = findObject(t, tpmKey);
    if (!key) throw new Rc(H(TPM_RC.KEY, 1)); // a sequence object is not a key
    // reference code, StartAuthSession.c, in its order (swtpm 0.7.1, measured: a keyed-hash key is
    // TPM_RC_KEY + H1 even without decrypt; a signing ECC key with an empty salt TPM_RC_VALUE + P2):
    // only an asymmetric key salts, RSA (OAEP) or ECC (ECDH), Part 1 §19.6.13; the salt is not
    // empty; a public-only key cannot decrypt, nor one without decrypt
    if (key.pub.type !== TPM_ALG.RSA && key.pub.type !== TPM_ALG.ECC) throw new Rc(H(TPM_RC.KEY, 1));
    if (salt.length === 0) throw new Rc(P(TPM_RC.VALUE, 2));
    if (key.publicOnly) throw new Rc(H(TPM_RC.HANDLE, 1));
    if (!(key.pub.objectAttributes & TPMA_OBJECT.DECRYPT)) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  } else if (salt.length !== 0) {
    throw new Rc(P(TPM_RC.VALUE, 2)); // no tpmKey: a salt cannot be decrypted
  }
  if (t.hmacSessions.size >= MAX_SESSIONS) throw new Rc(TPM_RC.SESSION_MEMORY);
  // loaded and saved sessions together hold at most SESSION_HANDLE_RANGE handles (libtpms MAX_ACTIVE_SESSIONS)
  if (t.hmacSessions.size + t.savedSessions.size >= SESSION_HANDLE_RANGE) throw new Rc(TPM_RC.SESSION_HANDLES);
  // nonceTPM has the size of nonceCaller, as in libtpms (swtpm 0.7.1: 16-byte nonceCaller with
  // SHA-256 gives a 16-byte nonceTPM); every later nonceTPM keeps that size.
  const nonceTPM = new Uint8Array(nonceCaller.length);
  t.random.fill(nonceTPM, 0, nonceTPM.length);
  // the salt, decrypted before anything changes (TPM_RC_VALUE + P2 when it does not decrypt)
  const saltValue = !key ? EMPTY : key.pub.type === TPM_ALG.ECC ? eccSalt(key, salt) : decryptSalt(key, salt);
  let sessionKey: Uint8Array = EMPTY;
  if (tpmKey !== TPM_RH.NULL || bind !== TPM_RH.NULL) {
    // sessionKey = KDFa(authHash, bind authValue ‖ salt, "ATH", nonceTPM, nonceCaller), Part 1 §19.6.8
    const bindAuth = bind === TPM_RH.NULL ? EMPTY : trimZeros(bindAuthValue(t, bind));
    sessionKey = kdfa(authHash, concatBytes(bindAuth, saltValue), "ATH", nonceTPM, nonceCaller, authHash.size * 8);
  }
  let handle: number = TPM_HR.HMAC_SESSION;
  while (t.hmacSessions.has(handle) || t.savedSessions.has(handle)) handle++;
  // only CFB for a block cipher (Part 3 §11.1; reference code, StartAuthSession.c)
  if (symmetric && symmetric.alg === TPM_ALG.AES && symmetric.mode !== TPM_ALG.CFB) throw new Rc(P(TPM_RC.MODE, 4));
  if (type !== TPM_SE.HMAC) {
    // a policy session is never bound: the bind entity only enters its sessionKey (Part 1 §19.6.10)
    const policy: PolicyState = { trial: type === TPM_SE.TRIAL, digest: EMPTY, startTime: 0, timeout: 0, pcrCounter: undefined, commandCode: undefined, authValueNeeded: false, passwordNeeded: false };
    resetPolicy(policy, authHash.size, t.clockNow());
    t.hmacSessions.set(handle, { handle, authHash, nonceTPM, sessionKey, bind: undefined, daBound: false, policy, ...(symmetric ? { symmetric } : {}) });
    recordBindEntity(t, handle, undefined);
    // slots are shared: a policy session's handle is TPM_HT_POLICY_SESSION with the same slot
    t.rHandle = (TPM_HR.POLICY_SESSION | (handle & TPM_HR.HANDLE_MASK)) >>> 0;
    out.tpm2b(nonceTPM);
    return;
  }
  const bindNv = bind >>> 24 === TPM_HT.NV_INDEX ? t.nv(bind) : undefined;
  const daBound = bindNv !== undefined && (bindNv.attributes & TPMA_NV.NO_DA) === 0;
  t.hmacSessions.set(handle, { handle, authHash, nonceTPM, sessionKey, bind: bind === TPM_RH.NULL ? undefined : bind, daBound, ...(symmetric ? { symmetric } : {}) });
  // the bind entity's Name and authValue now: the session stays bound while they are the same (Part 1 §19.6.11)
  recordBindEntity(t, handle, bind === TPM_RH.NULL ? undefined : bind);
  t.rHandle = handle;
  out.tpm2b(nonceTPM);
}

/** Part 3 §11 in the dispatch table. */
export const sessionCommands: CommandEntries = [
  [TPM_CC.StartAuthSession, { handles: ["tpmKey", "entity"], auth: 0, rHandle: true, run: (t, h, i, o) => startAuthSession(t, h, i, o) }],
];
