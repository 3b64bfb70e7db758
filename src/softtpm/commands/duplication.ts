/**
 * Duplication commands (TPM 2.0 Part 3 §13; Part 1 §23.3 "Protected Storage Hierarchy",
 * duplication): TPM2_Duplicate, TPM2_Rewrap and TPM2_Import.
 *
 * A duplicate is TPM2B_SENSITIVE under up to two wrappers (Part 1 §23.3.2):
 *
 * - the inner wrapper, symmetric: AES-CFB (IV 0) with a key the caller gives (encryptionKeyIn) or
 *   the TPM draws (returned as encryptionKeyOut) over TPM2B_DIGEST(H_nameAlg(TPM2B_SENSITIVE ‖
 *   Name)) ‖ TPM2B_SENSITIVE; symmetricAlg TPM_ALG_NULL means none;
 * - the outer wrapper, for the new parent: a seed of the new parent's nameAlg digest size, shared
 *   with it as outSymSeed (RSA-OAEP with label "DUPLICATE", or ECC with KDFe; Part 1 Annex B.10.3,
 *   C.6.1), from which KDFa gives the AES-CFB key ("STORAGE", Name) and the HMAC key
 *   ("INTEGRITY"), exactly as a parent's seedValue protects its children (Part 1 §23.4); a new
 *   parent TPM_RH_NULL means none.
 *
 * The wrapping itself is the engine's protected-storage code (outerWrap, innerWrap,
 * secretEncrypt, the functions TPM2_Create and TPM2_Load use too). Duplicate is in the DUP role (Part 1 §19.7.2):
 * only a policy session with PolicyCommandCode(TPM2_Duplicate) or PolicyDuplicationSelect can
 * authorize it.
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TPMA_OBJECT } from "../../wire/constants.js";
import type { TpmtPublic, TpmtSensitive } from "../../wire/structures.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { MAX_ENCRYPTED_SECRET } from "../engine/limits.js";
import { EMPTY, H, type In, type Out, P, Rc, S } from "../engine/marshal.js";
import {
  type TpmObject,
  AES_KEY_SIZES,
  checkBinding,
  checkTemplate,
  findObject,
  innerUnwrap,
  innerWrap,
  isStorageKey,
  makeObject,
  outerUnwrap,
  outerWrap,
  readSensitive2b,
  secretDecrypt,
  secretEncrypt,
  sensitive2b,
  wrapSensitive,
} from "../engine/objects.js";
import { trimZeros } from "../engine/auth.js";
import { hashImpl } from "../tables.js";
import { MAX_PRIVATE, readPublicParam } from "./object.js";

/** Largest TPM2B_DATA (sizeof(TPMT_HA), Part 2 §10.4.3). */
const MAX_DATA = 66;
/** Largest TPM2B_NAME taken: sizeof(TPMU_NAME) in the reference code's C, 68 (swtpm 0.7.1, measured with MakeCredential). */
const MAX_NAME = 68;
/** The label of the seed of an outer wrapper ("DUPLICATE" with its NUL, Part 1 §23.3.2.3). */
const DUPLICATE = /* @__PURE__ */ new TextEncoder().encode("DUPLICATE\0");

/** A TPMT_SYM_DEF_OBJECT+ as read: undefined for TPM_ALG_NULL. */
interface SymDef {
  keyBits: number;
}

/**
 * Reads TPMT_SYM_DEF_OBJECT+ as parameter `n` (Part 2 §11.1.7): TPM_ALG_NULL, or AES (the one
 * block cipher SoftTpm implements; another algorithm is TPM_RC_SYMMETRIC) with keyBits 128, 192
 * or 256 (TPM_RC_VALUE otherwise) and a TPMI_ALG_SYM_MODE+ (TPM_RC_MODE otherwise). The
 * wrappers always use CFB (Part 1 §23.3.2), whatever mode is named.
 */
function readSymDef(inp: In, n: number): SymDef | undefined {
  inp.param = n;
  const alg = inp.u16();
  if (alg === TPM_ALG.NULL) return undefined;
  if (alg !== TPM_ALG.AES) throw new Rc(P(TPM_RC.SYMMETRIC, n));
  const keyBits = inp.u16();
  if (!AES_KEY_SIZES.includes(keyBits)) throw new Rc(P(TPM_RC.VALUE, n));
  const mode = inp.u16();
  if (mode !== TPM_ALG.CFB && mode !== TPM_ALG.CBC && mode !== TPM_ALG.ECB && mode !== TPM_ALG.CTR && mode !== TPM_ALG.OFB && mode !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.MODE, n));
  return { keyBits };
}

/** Is `o` a storage key that can be a new parent: asymmetric, restricted, decrypt (ObjectIsStorage in the reference code)? */
function isAsymmetricStorage(o: TpmObject): boolean {
  return isStorageKey(o.pub) && (o.pub.type === TPM_ALG.RSA || o.pub.type === TPM_ALG.ECC);
}

/** A new parent (TPMI_DH_OBJECT+): TPM_RH_NULL, or an asymmetric storage key (TPM_RC_TYPE + H + n otherwise). */
function newParentOf(t: Engine, h: number, n: number): TpmObject | undefined {
  if (h === TPM_RH.NULL) return undefined;
  const o = findObject(t, h);
  if (!o) throw new Rc(H(TPM_RC.HANDLE, n));
  if (!isAsymmetricStorage(o)) throw new Rc(H(TPM_RC.TYPE, n));
  return o;
}

/** Random bytes from the TPM's source. */
function randomBytes(t: Engine, n: number): Uint8Array {
  const b = new Uint8Array(n);
  t.random.fill(b, 0, n);
  return b;
}

/**
 * TPM2_Duplicate, Part 3 §13.1. Checks in the reference code's order (Duplicate.c): the object
 * has fixedParent TPM_RC_ATTRIBUTES + H1; the new parent is not a storage key TPM_RC_TYPE + H2;
 * encryptedDuplication without an inner wrapper TPM_RC_SYMMETRIC + P2, or with TPM_RH_NULL as new
 * parent TPM_RC_HIERARCHY + H2; an encryptionKeyIn with NULL symmetricAlg, or not of the key
 * size, TPM_RC_SIZE + P1.
 */
function duplicate(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const keyIn = inp.tpm2b(MAX_DATA).slice();
  const sym = readSymDef(inp, 2);
  inp.done(); // the DUP role (a policy session naming Duplicate, Part 1 §19.7.2) was checked at authorization
  const o = findObject(t, h[0]!)!;
  const a = o.pub.objectAttributes;
  if (a & TPMA_OBJECT.FIXEDPARENT) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  const parent = newParentOf(t, h[1]!, 2);
  if (a & TPMA_OBJECT.ENCRYPTEDDUPLICATION) {
    if (!sym) throw new Rc(P(TPM_RC.SYMMETRIC, 2));
    if (!parent) throw new Rc(H(TPM_RC.HIERARCHY, 2));
  }
  let key: Uint8Array = EMPTY;
  let keyOut: Uint8Array = EMPTY;
  if (!sym) {
    if (keyIn.length !== 0) throw new Rc(P(TPM_RC.SIZE, 1));
  } else {
    if (keyIn.length !== 0 && keyIn.length !== sym.keyBits / 8) throw new Rc(P(TPM_RC.SIZE, 1));
    // encryptionKeyOut is the TPM's key, or the Empty Buffer when the caller gave one (Part 3 §13.1)
    key = keyIn.length !== 0 ? keyIn : (keyOut = randomBytes(t, sym.keyBits / 8));
  }
  let blob = sensitive2b(o.sensitive);
  if (sym) blob = innerWrap(hashImpl(o.pub.nameAlg)!, key, o.name, blob);
  let secret: Uint8Array = EMPTY;
  if (parent) {
    const shared = secretEncrypt(t, parent, DUPLICATE);
    secret = shared.secret;
    blob = outerWrap(parent, shared.seed, o.name, blob);
  }
  if (blob.length > MAX_PRIVATE) throw new Rc(TPM_RC.SIZE);
  out.tpm2b(keyOut);
  out.tpm2b(blob);
  out.tpm2b(secret);
}

/**
 * TPM2_Rewrap, Part 3 §13.2: the outer wrapper of oldParent taken off, that of newParent put on
 * (the inner wrapper stays). Checks of the reference code (Rewrap.c): a seed exactly when
 * oldParent is not TPM_RH_NULL (TPM_RC_HANDLE + H1 otherwise); oldParent and newParent storage
 * keys (TPM_RC_TYPE + H1 / H2); a seed that does not decrypt TPM_RC_VALUE + P3; the outer
 * wrapper's integrity TPM_RC_INTEGRITY + P1.
 */
function rewrap(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const inDuplicate = inp.tpm2b(MAX_PRIVATE).slice();
  inp.param = 2;
  const name = inp.tpm2b(MAX_NAME).slice();
  inp.param = 3;
  const inSymSeed = inp.tpm2b(MAX_ENCRYPTED_SECRET).slice();
  inp.done();
  const oldH = h[0]!;
  if ((inSymSeed.length === 0) !== (oldH === TPM_RH.NULL)) throw new Rc(H(TPM_RC.HANDLE, 1));
  let blob: Uint8Array = inDuplicate;
  if (oldH !== TPM_RH.NULL) {
    const old = findObject(t, oldH);
    if (!old) throw new Rc(H(TPM_RC.HANDLE, 1));
    if (!isAsymmetricStorage(old)) throw new Rc(H(TPM_RC.TYPE, 1));
    let seed: Uint8Array;
    try {
      seed = secretDecrypt(old, DUPLICATE, inSymSeed, 3);
    } catch (e) {
      if (e instanceof Rc) throw new Rc(P(TPM_RC.VALUE, 3)); // every seed failure (Rewrap.c)
      throw e;
    }
    blob = outerUnwrap(old, seed, name, inDuplicate, 1);
  }
  const parent = newParentOf(t, h[1]!, 2);
  let secret: Uint8Array = EMPTY;
  if (parent) {
    const shared = secretEncrypt(t, parent, DUPLICATE);
    secret = shared.secret;
    if (blob.length + 2 + hashImpl(parent.pub.nameAlg)!.size > MAX_PRIVATE) throw new Rc(P(TPM_RC.VALUE, 1));
    blob = outerWrap(parent, shared.seed, name, blob);
  }
  out.tpm2b(blob);
  out.tpm2b(secret);
}

/**
 * TPM2_Import, Part 3 §13.3: a duplicate (or an object created outside any TPM) becomes a child
 * of parentHandle, returned as a private blob for TPM2_Load. Checks in the reference code's
 * order (Import.c): objectPublic with fixedTPM or fixedParent TPM_RC_ATTRIBUTES + P2; a parent
 * that is not a storage key TPM_RC_TYPE + H1; encryptionKey not of symmetricAlg's key size (or
 * given with TPM_ALG_NULL) TPM_RC_SIZE + P1; encryptedDuplication without an inner wrapper
 * TPM_RC_ATTRIBUTES + P1, without an outer one TPM_RC_ATTRIBUTES + P4; a symmetric parent with
 * a seed TPM_RC_TYPE + H1; a seed that does not decrypt (the codes of secretDecrypt, on P4);
 * the wrappers' integrity TPM_RC_INTEGRITY + P3 and a sensitive area that does not unmarshal
 * TPM_RC_SIZE / TPM_RC_INSUFFICIENT + P3. Under a fixedTPM parent the object is checked as Load
 * would (public area on P2, binding of public and sensitive areas).
 */
function importCmd(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const encKey = inp.tpm2b(MAX_DATA).slice();
  const { pub } = readPublicParam(inp, 2);
  inp.param = 3;
  const dup = inp.tpm2b(MAX_PRIVATE).slice();
  inp.param = 4;
  const inSymSeed = inp.tpm2b(MAX_ENCRYPTED_SECRET).slice();
  const sym = readSymDef(inp, 5);
  inp.done();
  const a = pub.objectAttributes;
  if (a & (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT)) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  const parent = findObject(t, h[0]!)!;
  if (!isStorageKey(parent.pub)) throw new Rc(H(TPM_RC.TYPE, 1));
  if (sym) {
    if (encKey.length !== sym.keyBits / 8) throw new Rc(P(TPM_RC.SIZE, 1));
  } else {
    if (encKey.length !== 0) throw new Rc(P(TPM_RC.SIZE, 1));
    if (a & TPMA_OBJECT.ENCRYPTEDDUPLICATION) throw new Rc(P(TPM_RC.ATTRIBUTES, 1));
  }
  let seed: Uint8Array = EMPTY;
  if (inSymSeed.length !== 0) {
    if (parent.pub.type === TPM_ALG.SYMCIPHER) throw new Rc(H(TPM_RC.TYPE, 1));
    seed = secretDecrypt(parent, DUPLICATE, inSymSeed, 4);
  } else if (a & TPMA_OBJECT.ENCRYPTEDDUPLICATION) {
    throw new Rc(P(TPM_RC.ATTRIBUTES, 4));
  }
  const nameAlg = hashImpl(pub.nameAlg);
  if (!nameAlg) throw new Rc(P(TPM_RC.HASH, 2));
  const probe: TpmObject = makeObject(0, pub, { sensitiveType: pub.type, authValue: EMPTY, seedValue: EMPTY, sensitive: EMPTY }, parent.hierarchy, parent.qualifiedName, parent.name);
  const name = probe.name;
  let blob: Uint8Array = dup;
  if (seed.length !== 0) blob = outerUnwrap(parent, seed, name, blob, 3);
  if (sym) blob = innerUnwrap(nameAlg, encKey, name, blob, 3);
  const sensitive = readSensitive2b(blob, 3);
  sensitive.authValue = trimZeros(sensitive.authValue).slice();
  if (parent.pub.objectAttributes & TPMA_OBJECT.FIXEDTPM) validateImported(pub, sensitive, parent.pub);
  out.tpm2b(wrapSensitive(parent, name, sensitive));
}

/**
 * The checks TPM2_Load would make, done at import under a fixedTPM parent (Part 3 §13.3: "the
 * TPM shall validate the object as if it were being loaded"): the public area (P2) and the binding
 * of the public and sensitive areas.
 */
function validateImported(pub: TpmtPublic, sensitive: TpmtSensitive, parent: TpmtPublic): void {
  checkTemplate(pub, EMPTY, 2, parent, false);
  checkBinding(pub, sensitive, 2);
}

/** Part 3 §13 in the dispatch table. */
export const duplicationCommands: CommandEntries = [
  [TPM_CC.Duplicate, { decrypt: true, encrypt: true, handles: ["object", "tpmKey"], auth: 1, run: (t, h, i, o) => duplicate(t, h, i, o) }],
  [TPM_CC.Rewrap, { decrypt: true, encrypt: true, handles: ["tpmKey", "tpmKey"], auth: 1, run: (t, h, i, o) => rewrap(t, h, i, o) }],
  [TPM_CC.Import, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => importCmd(t, h, i, o) }],
];

