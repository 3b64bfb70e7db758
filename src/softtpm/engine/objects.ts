/**
 * Objects of the SoftTpm engine (TPM 2.0 Part 1 §23 "Object", §27 "Object Creation", §22–§24
 * "Protected Storage"): the loaded-object record, the object slots shared with sequence
 * objects, template checks (Part 3 §12.1 and Part 1 §27.2), creation of primary objects from a
 * hierarchy seed and of ordinary objects from random bits (RSA, ECC on NIST P-256 / P-384,
 * keyed-hash, symmetric), the private blob (integrity HMAC ‖
 * AES-CFB-encrypted TPM2B_SENSITIVE), persistent objects, names and qualified names.
 *
 * @packageDocumentation
 */
import { sha512 } from "@noble/hashes/sha2.js";
import { TpmReader, TpmWriter } from "../../wire/buffer.js";
import { concatBytes, constantTimeEqual, u32be } from "../../wire/bytes.js";
import { TPM_ALG, TPM_HT, TPM_RC, TPM_RH, TPMA_OBJECT } from "../../wire/constants.js";
import {
  type TpmtPublic,
  type TpmtSensitive,
  marshalPublic,
  readPublic,
  readSensitive,
  writeSensitive,
} from "../../wire/structures.js";
import type { PersistentObjectState } from "../state.js";
import { type HashImpl, hashImpl } from "../tables.js";
import { type ByteSource, KdfStream, type RsaKey, aesCfb, fromBig, generateRsa, kdfa, kdfe, rsaFromPrime, toBig } from "./crypto.js";
import { mgf1, rsaBytes, rsaPrivate, rsaPublic } from "./sign.js";
import type { Engine } from "./engine.js";
import { CURVES, eccMultiply, eccPublic, eccScalar, toPoint, validScalar } from "./ecc.js";
import { MAX_SEQUENCES } from "./limits.js";
import { EMPTY, H, P, Rc } from "./marshal.js";

/** A loaded object (Part 1 §23): its public and sensitive areas and what the TPM derives from them. */
export interface TpmObject {
  /** Transient handle while loaded; for a persistent object its persistent handle. */
  handle: number;
  pub: TpmtPublic;
  /** TPMT_PUBLIC as marshalled (what the Name hashes and ReadPublic returns). */
  publicArea: Uint8Array;
  /** nameAlg ‖ H(publicArea). */
  name: Uint8Array;
  sensitive: TpmtSensitive;
  /** TPM_RH_OWNER, _ENDORSEMENT, _PLATFORM or _NULL. */
  hierarchy: number;
  /** H(parent's qualified name ‖ name) (Part 1 §16.6); a hierarchy's qualified name is its handle. */
  qualifiedName: Uint8Array;
  /** The parent's Name (empty for primary and external objects). */
  parentName: Uint8Array;
  /** The persistent handle this object lives at, if it was made persistent. */
  persistentHandle?: number;
  /** RSA numbers, computed once. */
  rsa?: RsaKey;
  /** Loaded by TPM2_LoadExternal without a sensitive area: no authorization is possible. */
  publicOnly?: boolean;
  /** Loaded by TPM2_LoadExternal (libtpms' temporary object: it cannot be made persistent). */
  external?: boolean;
}

/** Supported RSA sizes (TPM_RC_KEY_SIZE otherwise); libtpms 0.9 implements the same three. */
export const RSA_KEY_SIZES: readonly number[] = [1024, 2048, 3072];
/** sizeof(TPMU_HA): the largest TPM2B_DIGEST (SHA-512, Part 2 §10.3.2). */
const MAX_DIGEST_SIZE = 64;
/** Supported AES key sizes. */
export const AES_KEY_SIZES: readonly number[] = [128, 192, 256];

/** Object slots used: loaded objects and sequence objects share MAX_LOADED_OBJECTS (TPM_PT_HR_TRANSIENT_MIN). */
export function objectSlotsUsed(t: Engine): number {
  return t.sequences.size + t.objects.size;
}

/**
 * How many object slots the persistent handles among a command's `handles` take while it runs
 * (pass the command's own handles: the dispatcher's handle array is reused between commands):
 * libtpms copies each persistent object it uses into a free object slot for the duration of the
 * command (HandleProcess → ObjectLoadEvict), lowest free slot first (swtpm 0.7.1, measured: Load
 * under a persistent parent with no transient object loaded answers 0x80000001, and with two
 * loaded TPM_RC_OBJECT_MEMORY).
 */
export function persistentCopies(...handles: number[]): number {
  let n = 0;
  for (const h of handles) if (h >>> 24 === TPM_HT.PERSISTENT) n++;
  return n;
}

/**
 * The lowest free transient handle, or TPM_RC_OBJECT_MEMORY when every slot is taken.
 * `copies` slots are held by the command's persistent objects (see {@link persistentCopies}):
 * they take the lowest free slots first, so the new object gets the next one, and they count
 * against MAX_LOADED_OBJECTS. The copies are not kept: after the command the slots are free
 * again and nothing else the caller sees changes.
 */
export function allocTransient(t: Engine, copies = 0): number {
  if (objectSlotsUsed(t) + copies >= MAX_SEQUENCES) throw new Rc(TPM_RC.OBJECT_MEMORY);
  let h = 0x80000000;
  for (let skip = copies; ; h++) {
    if (t.sequences.has(h) || t.objects.has(h)) continue;
    if (skip === 0) return h;
    skip--;
  }
}

/** The hash of `alg` (which the caller knows is implemented). */
export function hashOf(alg: number): HashImpl {
  const a = hashImpl(alg);
  if (!a) throw new Rc(TPM_RC.HASH);
  return a;
}

/** Does `p` describe a storage key (a parent): restricted, decrypt, not sign (Part 1 §25.1)? */
export function isStorageKey(p: TpmtPublic): boolean {
  const a = p.objectAttributes;
  return (a & TPMA_OBJECT.RESTRICTED) !== 0 && (a & TPMA_OBJECT.DECRYPT) !== 0 && (a & TPMA_OBJECT.SIGN_ENCRYPT) === 0 && (p.type === TPM_ALG.RSA || p.type === TPM_ALG.ECC || p.type === TPM_ALG.SYMCIPHER);
}

/** The object at `h` (transient, or persistent read from the state), or undefined. */
export function findObject(t: Engine, h: number): TpmObject | undefined {
  if (h >>> 24 === TPM_HT.TRANSIENT) return t.objects.get(h);
  if (h >>> 24 !== TPM_HT.PERSISTENT) return undefined;
  const cached = t.persistentCache.get(h);
  if (cached) return cached;
  const rec = t.ps.persistent.find((o) => o.handle === h);
  if (!rec) return undefined;
  const o = objectFromPersistent(rec);
  t.persistentCache.set(h, o);
  return o;
}

/** Builds the object of a persistent record. */
function objectFromPersistent(rec: PersistentObjectState): TpmObject {
  const pub = readPublic(new TpmReader(rec.publicArea));
  const sensitive = readSensitive(new TpmReader(rec.sensitiveArea));
  const name = nameOf(pub, rec.publicArea);
  const qn = rec.qualifiedName ?? qualifiedName(pub.nameAlg, u32be(rec.hierarchy), name);
  return { handle: rec.handle, pub, publicArea: rec.publicArea, name, sensitive, hierarchy: rec.hierarchy, qualifiedName: qn, parentName: rec.parentName ?? new Uint8Array(0), persistentHandle: rec.handle };
}

/** The persistent record of a loaded object. */
export function persistentRecord(o: TpmObject, handle: number): PersistentObjectState {
  const w = new TpmWriter(128);
  writeSensitive(w, o.sensitive);
  const rec: PersistentObjectState = { handle, hierarchy: o.hierarchy, publicArea: o.publicArea, sensitiveArea: w.finish(), qualifiedName: o.qualifiedName };
  if (o.parentName.length > 0) rec.parentName = o.parentName;
  return rec;
}

/** nameAlg ‖ H_nameAlg(TPMT_PUBLIC) (Part 1 §16). */
export function nameOf(pub: TpmtPublic, publicArea: Uint8Array): Uint8Array {
  const a = hashOf(pub.nameAlg);
  return concatBytes(Uint8Array.of(pub.nameAlg >>> 8, pub.nameAlg & 0xff), a.hash(publicArea));
}

/** QN = nameAlg ‖ H_nameAlg(QN(parent) ‖ Name) (Part 1 §16.6). */
export function qualifiedName(nameAlg: number, parentQn: Uint8Array, name: Uint8Array): Uint8Array {
  const a = hashOf(nameAlg);
  return concatBytes(Uint8Array.of(nameAlg >>> 8, nameAlg & 0xff), a.hash(concatBytes(parentQn, name)));
}

/** Flushes every loaded object (and cached persistent object) whose hierarchy `drop` selects (TPM2_Clear, a disabled hierarchy). */
export function flushHierarchyObjects(t: Engine, drop: (hierarchy: number) => boolean): void {
  for (const [h, o] of t.objects) if (drop(o.hierarchy)) t.objects.delete(h);
  t.persistentCache.clear();
}

/** What a template becomes once it passed {@link checkTemplate}. */
export interface CheckedTemplate {
  pub: TpmtPublic;
  nameAlg: HashImpl;
}

/**
 * The template checks of TPM2_Create / CreatePrimary (Part 3 §12.1: attribute consistency
 * TPM_RC_ATTRIBUTES, key sizes TPM_RC_KEY_SIZE, schemes TPM_RC_SCHEME, symmetric definitions
 * TPM_RC_SYMMETRIC) with `param` the number of inPublic, in libtpms' order: the attribute checks
 * (including whether the sensitive data `data` is the caller's or the TPM's) before the scheme
 * and symmetric checks (swtpm 0.7.1, measured). `creating` false (TPM2_Load) skips the checks of
 * the caller's sensitive data.
 */
export function checkTemplate(pub: TpmtPublic, data: Uint8Array, param: number, parent: TpmtPublic | undefined, creating: boolean): CheckedTemplate {
  const nameAlg = hashImpl(pub.nameAlg);
  if (!nameAlg) throw new Rc(P(TPM_RC.HASH, param));
  checkUnmarshalled(pub, param);
  const a = pub.objectAttributes;
  if (a & TPMA_OBJECT.RESERVED_MASK) throw new Rc(P(TPM_RC.RESERVED_BITS, param));
  const fixedTpm = (a & TPMA_OBJECT.FIXEDTPM) !== 0;
  const fixedParent = (a & TPMA_OBJECT.FIXEDPARENT) !== 0;
  const restricted = (a & TPMA_OBJECT.RESTRICTED) !== 0;
  const sign = (a & TPMA_OBJECT.SIGN_ENCRYPT) !== 0;
  const decrypt = (a & TPMA_OBJECT.DECRYPT) !== 0;
  const origin = (a & TPMA_OBJECT.SENSITIVEDATAORIGIN) !== 0;
  // Part 1 §27.2: fixedTPM needs fixedParent; a child of a non-fixedTPM parent cannot be fixedTPM;
  // under a fixedTPM parent (or none: a primary object) fixedParent and fixedTPM are equal (the
  // reference code's PublicAttributesValidation; swtpm 0.7.1, measured: a fixedParent-only
  // sealed object under a fixedTPM primary is TPM_RC_ATTRIBUTES + P2)
  if (fixedTpm && !fixedParent) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
  if (parent && fixedTpm && !(parent.objectAttributes & TPMA_OBJECT.FIXEDTPM)) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
  if ((!parent || parent.objectAttributes & TPMA_OBJECT.FIXEDTPM) && fixedParent !== fixedTpm) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
  if (restricted && sign === decrypt) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
  // a restricted fixedTPM key must be the TPM's own: sensitive data from the caller is
  // TPM_RC_ATTRIBUTES (swtpm 0.7.1, measured with keyed-hash and AES keys: without fixedTPM it
  // is taken)
  if (creating && restricted && fixedTpm && !origin) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
  if (pub.authPolicy.length !== 0 && pub.authPolicy.length !== nameAlg.size) throw new Rc(P(TPM_RC.SIZE, param));
  switch (pub.type) {
    case TPM_ALG.RSA: {
      // asymmetric keys are generated, not given: sensitiveDataOrigin SET and no data, else
      // TPM_RC_ATTRIBUTES + P2 (swtpm 0.7.1, measured: data with sensitiveDataOrigin SET too)
      if (creating && (!origin || data.length !== 0)) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
      if (!sign && !decrypt) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
      // TPMI_RSA_KEY_BITS is checked as it is unmarshalled (see checkUnmarshalled); an exponent
      // other than the default is TPM_RC_RANGE without a parameter number (swtpm 0.7.1, measured)
      if (pub.exponent !== 0 && pub.exponent !== 65537) throw new Rc(TPM_RC.RANGE);
      checkAsymmetric(pub.symmetric, pub.scheme.scheme, restricted, sign, decrypt, param, [TPM_ALG.RSASSA, TPM_ALG.RSAPSS], [TPM_ALG.RSAES, TPM_ALG.OAEP]);
      break;
    }
    case TPM_ALG.ECC: {
      if (creating && (!origin || data.length !== 0)) throw new Rc(P(TPM_RC.ATTRIBUTES, param)); // generated, not given (as RSA)
      if (!sign && !decrypt) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
      // (TPMI_ECC_CURVE is checked as it is unmarshalled: see checkUnmarshalled)
      // the NIST curves have no KDF of their own: a KDF in the template is refused (Part 2 §12.2.3.6)
      if (pub.kdf.scheme !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.KDF, param));
      // ECDAA signs through the commit state (Part 1 §C.4.4, TPM2_Commit)
      checkAsymmetric(pub.symmetric, pub.scheme.scheme, restricted, sign, decrypt, param, [TPM_ALG.ECDSA, TPM_ALG.ECDAA], [TPM_ALG.ECDH]);
      break;
    }
    case TPM_ALG.KEYEDHASH: {
      const s = pub.scheme.scheme;
      const sealed = !sign && !decrypt;
      // the attribute checks come before the scheme checks (swtpm 0.7.1, measured: sealed data
      // with sign SET and no data, or with an HMAC scheme and no data, is TPM_RC_ATTRIBUTES)
      if (creating) {
        // sealed data comes from the caller (Part 1 §27.2.3); a key's sensitive data either
        // from the caller (sensitiveDataOrigin CLEAR, data given) or from the TPM (SET, none):
        // sealed data with neither is TPM_RC_ATTRIBUTES too (swtpm 0.7.1, measured)
        if (sealed && origin) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
        if (origin === (data.length !== 0)) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
      }
      if (sealed) {
        if (restricted) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
        if (s !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.SCHEME, param));
      } else if (sign && decrypt) {
        // both uses: no scheme (tpm2 create -G keyedhash's template; swtpm 0.7.1, measured)
        if (s !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.SCHEME, param));
      } else {
        // a keyed-hash signing key names its HMAC hash, a decryption key its XOR KDF (swtpm
        // 0.7.1, measured: NULL is TPM_RC_SCHEME for either)
        if (sign && s !== TPM_ALG.HMAC) throw new Rc(P(TPM_RC.SCHEME, param));
        if (decrypt && s !== TPM_ALG.XOR) throw new Rc(P(TPM_RC.SCHEME, param));
      }
      break;
    }
    case TPM_ALG.SYMCIPHER: {
      const sym = pub.symmetric;
      if (sym.algorithm !== TPM_ALG.AES) throw new Rc(P(TPM_RC.SYMMETRIC, param));
      // (TPMI_AES_KEY_BITS is checked as it is unmarshalled: see checkUnmarshalled)
      // any block mode TPM2_EncryptDecrypt2 implements, or NULL (the caller picks one per
      // command); a restricted (storage) symmetric key too: swtpm 0.7.1 takes NULL, CBC, ECB,
      // CTR, OFB and CFB there (measured, tpm2 createprimary -G aes128<mode>), and its children
      // are protected with CFB whatever the mode (Part 1 §23.4)
      if (!SYM_MODES.includes(sym.mode)) throw new Rc(P(TPM_RC.SYMMETRIC, param));
      if (!sign && !decrypt) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
      if (creating && origin === (data.length !== 0)) throw new Rc(P(TPM_RC.ATTRIBUTES, param));
      // a key of the wrong length: TPM_RC_KEY_SIZE without a parameter number (swtpm 0.7.1, measured: 0x087)
      if (data.length !== 0 && data.length !== sym.keyBits / 8) throw new Rc(TPM_RC.KEY_SIZE);
      break;
    }
  }
  return { pub, nameAlg };
}

/**
 * The checks of a public area libtpms makes while it unmarshals one, before any attribute or
 * scheme check: TPMI_AES_KEY_BITS of the symmetric definition and TPMI_RSA_KEY_BITS
 * (TPM_RC_VALUE), TPMI_ECC_CURVE (TPM_RC_CURVE), in field order, on parameter `param` (TPM 2.0
 * Part 2 §9.28, §11.2.4, §11.2.5.5; swtpm 0.7.1, measured: AES keyBits 0, 64, 100 or 512 in a
 * symmetric or storage key, RSA 0, 512, 1000 or 4096 bits are TPM_RC_VALUE, an unknown curve
 * TPM_RC_CURVE, also in templates whose attributes are wrong). AES-192 is taken although libtpms
 * 0.9 leaves it out (a deliberate difference, pinned by the TestParms tests).
 */
export function checkUnmarshalled(pub: TpmtPublic, param: number): void {
  if (pub.type === TPM_ALG.KEYEDHASH) return;
  if (pub.symmetric.algorithm === TPM_ALG.AES && !AES_KEY_SIZES.includes(pub.symmetric.keyBits)) throw new Rc(P(TPM_RC.VALUE, param));
  if (pub.type === TPM_ALG.RSA && !RSA_KEY_SIZES.includes(pub.keyBits)) throw new Rc(P(TPM_RC.VALUE, param));
  if (pub.type === TPM_ALG.ECC && !CURVES.has(pub.curveId)) throw new Rc(P(TPM_RC.CURVE, param));
}

function checkAsymmetric(sym: { algorithm: number; keyBits: number; mode: number }, scheme: number, restricted: boolean, sign: boolean, decrypt: boolean, param: number, signSchemes: number[], decryptSchemes: number[]): void {
  if (restricted && decrypt) {
    // a storage key: no scheme, AES-CFB for its children (Part 1 §27.2.2); the scheme is checked
    // first (swtpm 0.7.1, measured: ECDSA with symmetric NULL is TPM_RC_SCHEME; the key size
    // was checked as it was unmarshalled)
    if (scheme !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.SCHEME, param));
    if (sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB) throw new Rc(P(TPM_RC.SYMMETRIC, param));
    return;
  }
  if (sym.algorithm !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.SYMMETRIC, param));
  if (scheme === TPM_ALG.NULL) {
    if (restricted) throw new Rc(P(TPM_RC.SCHEME, param));
    return;
  }
  if (sign && decrypt) throw new Rc(P(TPM_RC.SCHEME, param)); // both uses: the scheme must be NULL
  if (sign && !signSchemes.includes(scheme)) throw new Rc(P(TPM_RC.SCHEME, param));
  if (decrypt && !decryptSchemes.includes(scheme)) throw new Rc(P(TPM_RC.SCHEME, param));
}

/** Block modes of unrestricted symmetric keys (TPMI_ALG_SYM_MODE+, Part 2 §9.29): CFB, CBC, ECB, CTR, OFB or NULL. */
export const SYM_MODES: readonly number[] = [TPM_ALG.CFB, TPM_ALG.CBC, TPM_ALG.ECB, TPM_ALG.CTR, TPM_ALG.OFB, TPM_ALG.NULL];

/** Where the key material of a new object comes from: one byte stream per purpose label. */
export type Material = (label: string) => ByteSource;

/** Material from the TPM's random source (TPM2_Create, Part 1 §27.3). */
export function randomMaterial(t: Engine): Material {
  return () => (n) => {
    const b = new Uint8Array(n);
    t.random.fill(b, 0, n);
    return b;
  };
}

/**
 * Material of a primary object (Part 1 §27.3 / §14.3.2: derived from the hierarchy's primary
 * seed, so the same template gives the same key while the seed stays): for each purpose a
 * KDFa stream keyed by the seed, with label the purpose ("RSA", "ECC", "SEED",
 * "KEYEDHASH", "SYMCIPHER") and context H_nameAlg(template) and the sensitive data.
 */
export function primaryMaterial(seed: Uint8Array, nameAlg: HashImpl, template: Uint8Array, data: Uint8Array): Material {
  const ctx = nameAlg.hash(template);
  return (label) => {
    const s = new KdfStream(nameAlg, seed, label, ctx, data);
    return (n) => s.next(n);
  };
}

/**
 * Creates an object's sensitive area and fills the public area's unique field (Part 1 §27.3):
 * RSA from two primes, keyed-hash and symmetric keys from `material` unless the caller gave
 * them, seedValue for storage keys and as the obfuscation value of keyed-hash and symmetric
 * objects (unique = H_nameAlg(seedValue ‖ key)).
 */
export function generateObject(c: CheckedTemplate, userAuth: Uint8Array, data: Uint8Array, material: Material): { pub: TpmtPublic; sensitive: TpmtSensitive; rsa?: RsaKey } {
  const pub = structuredClone(c.pub);
  const size = c.nameAlg.size;
  const sensitive: TpmtSensitive = { sensitiveType: pub.type, authValue: userAuth.slice(), seedValue: new Uint8Array(0), sensitive: new Uint8Array(0) };
  let rsa: RsaKey | undefined;
  switch (pub.type) {
    case TPM_ALG.RSA: {
      const e = BigInt(pub.exponent === 0 ? 65537 : pub.exponent);
      rsa = generateRsa(pub.keyBits, e, material("RSA"));
      pub.unique = fromBig(rsa.n, pub.keyBits / 8);
      sensitive.sensitive = fromBig(rsa.p, pub.keyBits / 16);
      if (isStorageKey(pub)) sensitive.seedValue = material("SEED")(size);
      break;
    }
    case TPM_ALG.KEYEDHASH: {
      const keyLen = pub.scheme.scheme === TPM_ALG.HMAC || pub.scheme.scheme === TPM_ALG.XOR ? hashOf(pub.scheme.hashAlg).size : size;
      sensitive.sensitive = data.length > 0 ? data.slice() : material("KEYEDHASH")(keyLen);
      sensitive.seedValue = material("SEED")(size);
      pub.unique = c.nameAlg.hash(concatBytes(sensitive.seedValue, sensitive.sensitive));
      break;
    }
    case TPM_ALG.SYMCIPHER: {
      sensitive.sensitive = data.length > 0 ? data.slice() : material("SYMCIPHER")(pub.symmetric.keyBits / 8);
      sensitive.seedValue = material("SEED")(size);
      pub.unique = c.nameAlg.hash(concatBytes(sensitive.seedValue, sensitive.sensitive));
      break;
    }
    case TPM_ALG.ECC: {
      // Part 1 §27.3: the private scalar from the material stream (a KDFa stream for a primary
      // key, so the same template gives the same key), the public point d·G as unique
      const curve = CURVES.get(pub.curveId)!;
      sensitive.sensitive = eccScalar(curve, material("ECC"));
      pub.unique = eccPublic(curve, sensitive.sensitive);
      if (isStorageKey(pub)) sensitive.seedValue = material("SEED")(size);
      break;
    }
  }
  return rsa ? { pub, sensitive, rsa } : { pub, sensitive };
}

/**
 * Do the public and sensitive areas belong together (Part 3 §12.2 Load, §12.3 LoadExternal:
 * TPM_RC_BINDING otherwise)? Returns the RSA numbers of an RSA key.
 */
export function checkBinding(pub: TpmtPublic, s: TpmtSensitive, param: number): RsaKey | undefined {
  if (s.sensitiveType !== pub.type) throw new Rc(P(TPM_RC.TYPE, param));
  const a = hashOf(pub.nameAlg);
  if (s.authValue.length > a.size) throw new Rc(P(TPM_RC.SIZE, param));
  switch (pub.type) {
    case TPM_ALG.RSA: {
      const e = BigInt(pub.exponent === 0 ? 65537 : pub.exponent);
      const k = rsaFromPrime(toBig(pub.unique), e, toBig(s.sensitive));
      if (!k || pub.unique.length * 8 !== pub.keyBits) throw new Rc(P(TPM_RC.BINDING, param));
      return k;
    }
    case TPM_ALG.ECC: {
      // the scalar must be in [1, n − 1] and d·G must be the public point (Part 3 §12.3)
      const curve = CURVES.get(pub.curveId);
      if (!curve) throw new Rc(P(TPM_RC.CURVE, param));
      // a mismatch is TPM_RC_BINDING without a parameter number (swtpm 0.7.1, measured with LoadExternal)
      if (!validScalar(curve, s.sensitive)) throw new Rc(TPM_RC.BINDING);
      const q = eccPublic(curve, fromBig(toBig(s.sensitive), curve.size));
      if (!sameBig(q.x, pub.unique.x) || !sameBig(q.y, pub.unique.y)) throw new Rc(TPM_RC.BINDING);
      return undefined;
    }
    case TPM_ALG.KEYEDHASH:
    case TPM_ALG.SYMCIPHER: {
      const u = a.hash(concatBytes(s.seedValue, s.sensitive));
      if (u.length !== pub.unique.length || u.some((x, i) => x !== pub.unique[i])) throw new Rc(P(TPM_RC.BINDING, param));
      return undefined;
    }
    default:
      throw new Rc(P(TPM_RC.TYPE, param));
  }
}

/**
 * The checks of a public area TPM2_LoadExternal loads (Part 3 §12.3): an ECC key names a curve
 * this TPM implements (TPM_RC_CURVE) and a point on it (TPM_RC_ECC_POINT).
 */
export function checkExternalPublic(pub: TpmtPublic, param: number): void {
  if (pub.type !== TPM_ALG.ECC) return;
  const curve = CURVES.get(pub.curveId);
  if (!curve) throw new Rc(P(TPM_RC.CURVE, param));
  if (!toPoint(curve, pub.unique)) throw new Rc(P(TPM_RC.ECC_POINT, param));
}

/** Do two big-endian numbers have the same value (leading zeros aside)? */
function sameBig(a: Uint8Array, b: Uint8Array): boolean {
  return toBig(a) === toBig(b);
}

/** A loaded object record for `pub` / `sensitive` under `parentQn`. */
export function makeObject(handle: number, pub: TpmtPublic, sensitive: TpmtSensitive, hierarchy: number, parentQn: Uint8Array, parentName: Uint8Array, rsa?: RsaKey): TpmObject {
  const publicArea = marshalPublic(pub);
  const name = nameOf(pub, publicArea);
  const o: TpmObject = { handle, pub, publicArea, name, sensitive, hierarchy, qualifiedName: qualifiedName(pub.nameAlg, parentQn, name), parentName };
  if (rsa) o.rsa = rsa;
  return o;
}

/** The qualified name a child of `parent` hangs under: the parent's QN, or a hierarchy handle. */
export function parentQnOf(t: Engine, parent: number): Uint8Array {
  const o = findObject(t, parent);
  return o ? o.qualifiedName : u32be(parent);
}

/**
 * proof(hierarchy) of the tickets SoftTpm issues for objects (TPMT_TK_CREATION, Part 2 §10.7.3):
 * SHA-512 of the proof seed and the hierarchy handle; for TPM_RH_NULL of the NULL seed instead,
 * so a NULL-hierarchy ticket lasts until the next TPM Reset (libtpms nullProof; swtpm 0.7.1
 * issues 64-byte creation tickets in the NULL hierarchy, measured). PolicySecret's NULL tickets
 * are keyed the same way.
 */
export function ticketProof(t: Engine, hierarchy: number): Uint8Array {
  const seed = hierarchy === TPM_RH.NULL ? hierarchySeed(t, TPM_RH.NULL) : t.ps.proofSeed;
  return sha512(concatBytes(seed, u32be(hierarchy)));
}

/** The primary seed of a hierarchy (TPM_RH_NULL: a seed that lasts until the next TPM Reset). */
export function hierarchySeed(t: Engine, hierarchy: number): Uint8Array {
  switch (hierarchy) {
    case TPM_RH.OWNER:
      return t.ps.storageSeed;
    case TPM_RH.ENDORSEMENT:
      return t.ps.endorsementSeed;
    case TPM_RH.PLATFORM:
      return t.ps.platformSeed;
    default:
      if (!t.nullSeed) {
        t.nullSeed = new Uint8Array(64);
        t.random.fill(t.nullSeed, 0, 64);
      }
      return t.nullSeed;
  }
}

/**
 * The symmetric and HMAC keys of an outer wrapper (Part 1 §23.3.2 / §23.4), from a seed: the
 * parent's seedValue for a child in protected storage, or the seed sent along with a duplicate
 * (Part 1 §23.3.2.3): symKey = KDFa(a, seed, "STORAGE", Name, "", keyBits) and HMACkey =
 * KDFa(a, seed, "INTEGRITY", "", "", digest bits), `a` the parent's nameAlg.
 */
function wrapperKeys(a: HashImpl, seed: Uint8Array, keyBits: number, childName: Uint8Array): { symKey: Uint8Array; hmacKey: Uint8Array } {
  return { symKey: kdfa(a, seed, "STORAGE", childName, EMPTY, keyBits), hmacKey: kdfa(a, seed, "INTEGRITY", EMPTY, EMPTY, a.size * 8) };
}

/** The key size of the AES-CFB a storage parent protects its children with. */
function parentKeyBits(parent: TpmObject): number {
  return parent.pub.type === TPM_ALG.KEYEDHASH ? 128 : parent.pub.symmetric.keyBits;
}

/**
 * An outer wrapper (Part 1 §23.3.2, ProduceOuterWrap in the reference code) with the keys of
 * `seed` under `parent`: TPM2B_DIGEST(HMAC(HMACkey, enc ‖ Name)) ‖ enc, enc = AES-CFB(symKey,
 * IV 0, data).
 */
export function outerWrap(parent: TpmObject, seed: Uint8Array, childName: Uint8Array, data: Uint8Array): Uint8Array {
  const a = hashOf(parent.pub.nameAlg);
  const { symKey, hmacKey } = wrapperKeys(a, seed, parentKeyBits(parent), childName);
  const enc = aesCfb(symKey, data, true);
  const mac = a.mac(hmacKey, enc, childName);
  const out = new TpmWriter(2 + mac.length + enc.length);
  out.tpm2b(mac).bytes(enc);
  return out.finish();
}

/**
 * Checks and removes an outer wrapper (UnwrapOuter in the reference code): an empty blob is
 * TPM_RC_SIZE, a cut integrity TPM2B TPM_RC_INSUFFICIENT, a wrong HMAC TPM_RC_INTEGRITY, all on
 * `param` (swtpm 0.7.1, measured with TPM2_Load). Returns the decrypted data.
 */
export function outerUnwrap(parent: TpmObject, seed: Uint8Array, childName: Uint8Array, blob: Uint8Array, param: number): Uint8Array {
  const a = hashOf(parent.pub.nameAlg);
  const { symKey, hmacKey } = wrapperKeys(a, seed, parentKeyBits(parent), childName);
  if (blob.length === 0) throw new Rc(P(TPM_RC.SIZE, param));
  if (blob.length < 2) throw new Rc(P(TPM_RC.INSUFFICIENT, param));
  const n = (blob[0]! << 8) | blob[1]!;
  // TPM2B_DIGEST: a size above sizeof(TPMU_HA) (64) is TPM_RC_SIZE before the bytes are looked
  // for (TPM 2.0 Part 2 §10.4.2; swtpm 0.7.1, measured: integrity size 0x4716 in a 48-byte
  // private is TPM_RC_SIZE + P1), a size that runs past the blob TPM_RC_INSUFFICIENT
  if (n > MAX_DIGEST_SIZE) throw new Rc(P(TPM_RC.SIZE, param));
  if (blob.length < 2 + n) throw new Rc(P(TPM_RC.INSUFFICIENT, param));
  if (n !== a.size) throw new Rc(P(TPM_RC.INTEGRITY, param));
  const enc = blob.subarray(2 + n);
  if (!constantTimeEqual(a.mac(hmacKey, enc, childName), blob.subarray(2, 2 + n))) throw new Rc(P(TPM_RC.INTEGRITY, param));
  return aesCfb(symKey, enc, false);
}

/** TPM2B_SENSITIVE as marshalled (the plaintext every wrapper starts from, Part 1 §23.3.2). */
export function sensitive2b(s: TpmtSensitive): Uint8Array {
  const inner = new TpmWriter(128);
  writeSensitive(inner, s);
  const w = new TpmWriter(256);
  w.tpm2b(inner.finish());
  return w.finish();
}

/**
 * Reads a TPM2B_SENSITIVE that must fill `plain` exactly; the format codes (TPM_RC_SIZE,
 * TPM_RC_INSUFFICIENT) go on `param`, or TPM_RC_SENSITIVE when `param` is 0 (TPM2_Load).
 */
export function readSensitive2b(plain: Uint8Array, param: number): TpmtSensitive {
  if (plain.length < 2) throw new Rc(param ? P(TPM_RC.INSUFFICIENT, param) : TPM_RC.SENSITIVE);
  const size = (plain[0]! << 8) | plain[1]!;
  if (size + 2 !== plain.length) throw new Rc(param ? P(TPM_RC.SIZE, param) : TPM_RC.SENSITIVE);
  try {
    const inner = new TpmReader(plain.subarray(2));
    const s = readSensitive(inner);
    inner.expectEnd();
    return s;
  } catch {
    throw new Rc(param ? P(TPM_RC.SIZE, param) : TPM_RC.SENSITIVE);
  }
}

/**
 * The private blob of a child (TPM2B_PRIVATE contents, Part 1 §23.3 and §23.4): the outer
 * wrapper of TPM2B_SENSITIVE with the parent's seedValue as the seed.
 */
export function wrapSensitive(parent: TpmObject, childName: Uint8Array, s: TpmtSensitive): Uint8Array {
  return outerWrap(parent, parent.sensitive.seedValue, childName, sensitive2b(s));
}

/**
 * Checks and opens a private blob: a wrong or short integrity value is TPM_RC_INTEGRITY on
 * `param` (Part 3 §12.2: "inPrivate integrity failed"), a sensitive area that does not unmarshal
 * after a good HMAC is TPM_RC_SENSITIVE.
 */
export function unwrapSensitive(parent: TpmObject, childName: Uint8Array, blob: Uint8Array, param: number): TpmtSensitive {
  // the integrity TPM2B is unmarshalled first: an empty blob is TPM_RC_SIZE, a cut one
  // TPM_RC_INSUFFICIENT (swtpm 0.7.1, measured)
  return readSensitive2b(outerUnwrap(parent, parent.sensitive.seedValue, childName, blob, param), 0); // TPM_RC_SENSITIVE names no parameter
}

/**
 * An inner wrapper (Part 1 §23.3.2.2, the duplication's symmetric encryption): AES-CFB(key,
 * IV 0, TPM2B_DIGEST(H_nameAlg(TPM2B_SENSITIVE ‖ Name)) ‖ TPM2B_SENSITIVE).
 */
export function innerWrap(nameAlg: HashImpl, key: Uint8Array, childName: Uint8Array, sens2b: Uint8Array): Uint8Array {
  const w = new TpmWriter(2 + nameAlg.size + sens2b.length);
  w.tpm2b(nameAlg.hash(concatBytes(sens2b, childName))).bytes(sens2b);
  return aesCfb(key, w.finish(), true);
}

/**
 * Removes an inner wrapper: the integrity digest is read as a TPM2B_DIGEST (TPM_RC_INSUFFICIENT /
 * TPM_RC_SIZE) and must be H_nameAlg(rest ‖ Name) (TPM_RC_INTEGRITY), on `param`.
 */
export function innerUnwrap(nameAlg: HashImpl, key: Uint8Array, childName: Uint8Array, data: Uint8Array, param: number): Uint8Array {
  const plain = aesCfb(key, data, false);
  if (plain.length < 2) throw new Rc(P(TPM_RC.INSUFFICIENT, param));
  const n = (plain[0]! << 8) | plain[1]!;
  if (n > 64) throw new Rc(P(TPM_RC.SIZE, param));
  if (plain.length < 2 + n) throw new Rc(P(TPM_RC.INSUFFICIENT, param));
  const rest = plain.subarray(2 + n);
  if (!constantTimeEqual(nameAlg.hash(concatBytes(rest, childName)), plain.subarray(2, 2 + n))) throw new Rc(P(TPM_RC.INTEGRITY, param));
  return rest;
}

/** The OAEP hash of an RSA key in secret sharing: its scheme's hash if OAEP, else its nameAlg (CryptSecretEncrypt in the reference code). */
function secretOaepHash(key: TpmObject): HashImpl {
  const s = key.pub.type === TPM_ALG.RSA ? key.pub.scheme : { scheme: TPM_ALG.NULL, hashAlg: 0 };
  const a = s.scheme === TPM_ALG.NULL ? hashImpl(key.pub.nameAlg) : s.scheme === TPM_ALG.OAEP ? hashImpl(s.hashAlg) : undefined;
  if (!a) throw new Rc(TPM_RC.SCHEME);
  return a;
}

/**
 * A fresh seed shared with an asymmetric key (CryptSecretEncrypt, Part 1 Annex B.10.3 and
 * C.6.1), and the TPM2B_ENCRYPTED_SECRET contents: for RSA, digest-size random bits of the key's
 * nameAlg, EME-OAEP with `label` (NUL included); for ECC, an ephemeral key's point, the seed
 * KDFe(nameAlg, Z, label, ephemeral x, key x). `label` is "DUPLICATE\0" for duplication (Part 1
 * §23.3.2.3) and "IDENTITY\0" for credentials.
 */
export function secretEncrypt(t: Engine, key: TpmObject, label: Uint8Array): { seed: Uint8Array; secret: Uint8Array } {
  const na = hashOf(key.pub.nameAlg);
  const rand = (n: number): Uint8Array => {
    const b = new Uint8Array(n);
    t.random.fill(b, 0, n);
    return b;
  };
  if (key.pub.type === TPM_ALG.RSA) {
    const a = secretOaepHash(key);
    const seed = rand(na.size);
    const k = rsaBytes(key);
    if (seed.length > k - 2 * a.size - 2) throw new Rc(TPM_RC.VALUE);
    // EME-OAEP encoding (RFC 8017 §7.1.1)
    const db = new Uint8Array(k - a.size - 1);
    db.set(a.hash(label), 0);
    db[db.length - seed.length - 1] = 1;
    db.set(seed, db.length - seed.length);
    const os = rand(a.size);
    const dbMask = mgf1(a, os, db.length);
    for (let i = 0; i < db.length; i++) db[i]! ^= dbMask[i]!;
    const osMask = mgf1(a, db, a.size);
    for (let i = 0; i < os.length; i++) os[i]! ^= osMask[i]!;
    return { seed, secret: rsaPublic(key, concatBytes(Uint8Array.of(0), os, db)) };
  }
  if (key.pub.type !== TPM_ALG.ECC) throw new Rc(TPM_RC.TYPE);
  const c = CURVES.get(key.pub.curveId);
  if (!c) throw new Rc(TPM_RC.CURVE);
  const d = eccScalar(c, rand);
  const qe = eccPublic(c, d);
  const z = eccMultiply(c, d, key.pub.unique);
  if (!z) throw new Rc(TPM_RC.KEY);
  const secret = new TpmWriter(4 + qe.x.length + qe.y.length).tpm2b(qe.x).tpm2b(qe.y).finish();
  return { seed: kdfe(na, z.x, label, qe.x, key.pub.unique.x, na.size * 8), secret };
}

/**
 * The seed in a TPM2B_ENCRYPTED_SECRET for `key` (CryptSecretDecrypt in the reference code). An
 * RSA secret not of the modulus size is TPM_RC_SIZE, one that does not decode TPM_RC_FAILURE
 * (swtpm 0.7.1 on OpenSSL, measured with ActivateCredential); an ECC point that does not
 * unmarshal TPM_RC_INSUFFICIENT / TPM_RC_SIZE, one off the curve TPM_RC_ECC_POINT. Format-one
 * codes go on `param`.
 */
export function secretDecrypt(key: TpmObject, label: Uint8Array, secret: Uint8Array, param: number): Uint8Array {
  const na = hashOf(key.pub.nameAlg);
  try {
    if (key.pub.type === TPM_ALG.RSA) {
      const a = secretOaepHash(key);
      const k = rsaBytes(key);
      if (secret.length !== k) throw new Rc(TPM_RC.SIZE);
      if (toBig(secret) >= toBig(key.pub.unique)) throw new Rc(TPM_RC.FAILURE);
      // EME-OAEP decoding (RFC 8017 §7.1.2)
      const em = rsaPrivate(key, secret);
      const seed = em.slice(1, 1 + a.size);
      const db = em.slice(1 + a.size);
      const sm = mgf1(a, db, a.size);
      for (let i = 0; i < seed.length; i++) seed[i]! ^= sm[i]!;
      const dm = mgf1(a, seed, db.length);
      for (let i = 0; i < db.length; i++) db[i]! ^= dm[i]!;
      let i = a.size;
      while (i < db.length && db[i] === 0) i++;
      if (em[0] !== 0 || !constantTimeEqual(db.subarray(0, a.size), a.hash(label)) || i >= db.length || db[i] !== 1) throw new Rc(TPM_RC.FAILURE);
      const m = db.slice(i + 1);
      if (m.length > a.size) throw new Rc(TPM_RC.VALUE);
      return m;
    }
    if (key.pub.type !== TPM_ALG.ECC) throw new Rc(TPM_RC.TYPE);
    const c = CURVES.get(key.pub.curveId);
    if (!c) throw new Rc(TPM_RC.CURVE);
    let at = 0;
    const coord = (): Uint8Array => {
      if (secret.length - at < 2) throw new Rc(TPM_RC.INSUFFICIENT);
      const n = (secret[at]! << 8) | secret[at + 1]!;
      if (n > 66) throw new Rc(TPM_RC.SIZE);
      if (secret.length - at - 2 < n) throw new Rc(TPM_RC.INSUFFICIENT);
      const v = secret.slice(at + 2, at + 2 + n);
      at += 2 + n;
      return v;
    };
    const qe = { x: coord(), y: coord() };
    const z = eccMultiply(c, fromBig(toBig(key.sensitive.sensitive), c.size), qe);
    if (!z) throw new Rc(TPM_RC.ECC_POINT);
    return kdfe(na, z.x, label, qe.x, key.pub.unique.x, na.size * 8);
  } catch (e) {
    if (e instanceof Rc && e.rc < 0x100 && (e.rc & 0x80) !== 0) throw new Rc(P(e.rc, param));
    throw e;
  }
}

/** An object handle that must name a storage parent: TPM_RC_TYPE + H(n) otherwise (Part 3 §12.1). */
export function storageParent(t: Engine, h: number, n: number): TpmObject {
  const o = findObject(t, h);
  if (!o) throw new Rc(H(TPM_RC.HANDLE, n));
  if (!isStorageKey(o.pub)) throw new Rc(H(TPM_RC.TYPE, n));
  return o;
}
