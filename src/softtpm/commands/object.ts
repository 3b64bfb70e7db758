/**
 * Object commands (TPM 2.0 Part 3 §12): TPM2_Create, Load, LoadExternal, ReadPublic,
 * ObjectChangeAuth, Unseal and CreateLoaded, for RSA, keyed-hash (HMAC keys and sealed data)
 * and symmetric-cipher objects; and the parts of TPM2_CreatePrimary (Part 3 §24.1) that creating
 * an object shares; ECC objects on NIST P-256 and P-384.
 *
 * @packageDocumentation
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { TpmFormatError } from "../../errors/index.js";
import { TpmReader, TpmWriter } from "../../wire/buffer.js";
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TPM_ST, TPMA_OBJECT } from "../../wire/constants.js";
import { type TpmtPublic, type TpmtSensitive, MAX_SYM_DATA, readPublic, readSensitive } from "../../wire/structures.js";
import { trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { EMPTY, H, type In, type Out, P, Rc } from "../engine/marshal.js";
import {
  type TpmObject,
  allocTransient,
  checkBinding,
  checkExternalPublic,
  checkTemplate,
  checkUnmarshalled,
  findObject,
  generateObject,
  hierarchySeed,
  makeObject,
  persistentCopies,
  primaryMaterial,
  randomMaterial,
  storageParent,
  ticketProof,
  unwrapSensitive,
  wrapSensitive,
} from "../engine/objects.js";
import { HASH_IMPLS, PCR_COUNT, hashImpl, hashIndex } from "../tables.js";
import { allocatedPcrs } from "./pcr.js";

/** Largest TPM2B_PRIVATE SoftTpm takes (an RSA-3072 sensitive area with its integrity HMAC fits). */
export const MAX_PRIVATE = 1024;
/** Largest TPM2B_DATA (sizeof(TPMT_HA), Part 2 §10.4.3). */
const MAX_DATA = 66;
/** Largest TPM2B_AUTH / userAuth. */
const MAX_AUTH = 64;

/** Reads TPM2B_PUBLIC (or TPM2B_TEMPLATE) as parameter `n`, mapping format errors to Part 2 unmarshal codes. */
export function readPublicParam(inp: In, n: number): { pub: TpmtPublic; bytes: Uint8Array } {
  inp.param = n;
  const size = inp.u16();
  if (size === 0) throw new Rc(P(TPM_RC.SIZE, n));
  const bytes = inp.bytes(size);
  if (bytes.length >= 2) {
    const type = (bytes[0]! << 8) | bytes[1]!;
    if (type !== TPM_ALG.RSA && type !== TPM_ALG.ECC && type !== TPM_ALG.KEYEDHASH && type !== TPM_ALG.SYMCIPHER) throw new Rc(P(TPM_RC.TYPE, n));
  }
  if (bytes.length >= 4) {
    const nameAlg = (bytes[2]! << 8) | bytes[3]!;
    if (!hashImpl(nameAlg) && nameAlg !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.HASH, n));
  }
  let pub: TpmtPublic;
  try {
    const r = new TpmReader(bytes);
    pub = readPublic(r);
    r.expectEnd();
  } catch (e) {
    if (!(e instanceof TpmFormatError)) throw e;
    const m = e.message;
    // TPMI_ALG_KDF: TPM_RC_KDF (swtpm 0.7.1, measured with an XOR scheme whose kdf is 0)
    const rc = /symmetric/.test(m) ? TPM_RC.SYMMETRIC : /kdf \S+ is not a KDF/.test(m) ? TPM_RC.KDF : /scheme|kdf/.test(m) ? TPM_RC.SCHEME : /truncated|trailing|exceeds|size/.test(m) ? TPM_RC.SIZE : TPM_RC.VALUE;
    throw new Rc(P(rc, n));
  }
  checkUnmarshalled(pub, n);
  return { pub, bytes: bytes.slice() };
}

/** Reads TPM2B_SENSITIVE_CREATE as parameter 1 (Part 2 §11.1.16). */
function readSensitiveCreateParam(inp: In): { userAuth: Uint8Array; data: Uint8Array } {
  inp.param = 1;
  const size = inp.u16();
  const b = inp.bytes(size);
  const r = new TpmReader(b);
  try {
    const userAuth = r.tpm2b("userAuth", MAX_AUTH).slice();
    const data = r.tpm2b("data", MAX_SYM_DATA).slice();
    r.expectEnd();
    return { userAuth: trimZeros(userAuth).slice(), data };
  } catch {
    throw new Rc(P(TPM_RC.SIZE, 1));
  }
}

/** A creationPCR selection (TPML_PCR_SELECTION) as read: its bytes and the digest of the selected PCRs. */
interface PcrSelectionParam {
  raw: Uint8Array;
  sel: { bank: number; bits: number }[];
}

function readPcrSelectionParam(inp: In, n: number): PcrSelectionParam {
  inp.param = n;
  const start = inp.pos;
  const count = inp.u32();
  if (count > HASH_IMPLS.length) throw new Rc(P(TPM_RC.SIZE, n));
  const sel: { bank: number; bits: number }[] = [];
  for (let i = 0; i < count; i++) {
    const alg = inp.u16();
    if (!hashImpl(alg)) throw new Rc(P(TPM_RC.HASH, n));
    const sz = inp.u8();
    if (sz !== 3) throw new Rc(P(TPM_RC.VALUE, n));
    const b = inp.bytes(sz);
    sel.push({ bank: hashIndex(alg), bits: b[0]! | (b[1]! << 8) | (b[2]! << 16) });
  }
  return { raw: inp.buf.slice(start, inp.pos), sel };
}

/** The inputs of Create, CreatePrimary: inSensitive, inPublic, outsideInfo, creationPCR. */
export interface CreateParams {
  userAuth: Uint8Array;
  data: Uint8Array;
  pub: TpmtPublic;
  template: Uint8Array;
  outsideInfo: Uint8Array;
  pcrs: PcrSelectionParam;
}

/** Reads the four parameters of TPM2_Create / TPM2_CreatePrimary (Part 3 §12.1, §24.1). */
export function readCreateParams(inp: In): CreateParams {
  const { userAuth, data } = readSensitiveCreateParam(inp);
  const { pub, bytes } = readPublicParam(inp, 2);
  inp.param = 3;
  const outsideInfo = inp.tpm2b(MAX_DATA).slice();
  const pcrs = readPcrSelectionParam(inp, 4);
  inp.done();
  return { userAuth, data, pub, template: bytes, outsideInfo, pcrs };
}

/**
 * Writes creationData, creationHash and creationTicket (Part 3 §12.1: creationHash =
 * H_nameAlg(TPMS_CREATION_DATA); the ticket is HMAC(proof(hierarchy), TPM_ST_CREATION ‖ Name ‖
 * creationHash), with SHA-512 as the hash tickets of this TPM; for TPM_RH_NULL proof is the
 * NULL hierarchy's, drawn anew at each TPM Reset).
 */
export function writeCreation(t: Engine, out: Out, o: TpmObject, parentNameAlg: number, parentName: Uint8Array, parentQn: Uint8Array, p: CreateParams, locality: number): void {
  const a = hashImpl(o.pub.nameAlg)!;
  const pcrData: Uint8Array[] = [];
  // only allocated PCRs: the others are left out of the digest and cleared from the creation
  // data's selection (reference code FilterPcr; swtpm 0.7.1, measured); each entry of the raw
  // selection is alg (2), sizeofSelect 3 (1), 3 select bytes, after the count (4)
  const rawSel = p.pcrs.raw.slice();
  p.pcrs.sel.forEach((s, j) => {
    const bits = s.bits & allocatedPcrs(t, s.bank);
    for (let k = 0; k < 3; k++) rawSel[4 + j * 6 + 3 + k] = (bits >>> (8 * k)) & 0xff;
    const size = HASH_IMPLS[s.bank]!.size;
    for (let i = 0; i < PCR_COUNT; i++) if ((bits >>> i) & 1) pcrData.push(t.pcrs[s.bank]!.subarray(i * size, (i + 1) * size));
  });
  const w = new TpmWriter(256);
  w.bytes(rawSel).tpm2b(a.hash(concatBytes(...pcrData))).u8(1 << locality).u16(parentNameAlg).tpm2b(parentName).tpm2b(parentQn).tpm2b(p.outsideInfo);
  const creationData = w.finish();
  const creationHash = a.hash(creationData);
  out.tpm2b(creationData);
  out.tpm2b(creationHash);
  out.u16(TPM_ST.CREATION);
  // the NULL hierarchy's tickets are real ones too, keyed with a proof that lasts until the next
  // TPM Reset (libtpms nullProof; swtpm 0.7.1, measured: 8021 40000007 0040 + 64 bytes)
  const proof = ticketProof(t, o.hierarchy);
  out.u32(o.hierarchy);
  out.tpm2b(hmac(sha512, proof, concatBytes(Uint8Array.of(TPM_ST.CREATION >>> 8, TPM_ST.CREATION & 0xff), o.name, creationHash)));
}

/** Creates a primary object of `hierarchy` from its seed (Part 3 §24.1; Part 1 §27.3). */
export function createPrimaryObject(t: Engine, hierarchy: number, p: CreateParams, handle: number): TpmObject {
  const c = checkTemplate(p.pub, p.data, 2, undefined, true);
  if (p.userAuth.length > c.nameAlg.size) throw new Rc(P(TPM_RC.SIZE, 1));
  const g = generateObject(c, p.userAuth, p.data, primaryMaterial(hierarchySeed(t, hierarchy), c.nameAlg, p.template, p.data));
  return makeObject(handle, g.pub, g.sensitive, hierarchy, u32be(hierarchy), EMPTY, g.rsa);
}

/** Creates an ordinary object under `parent` from random bits (Part 3 §12.1). */
function createOrdinary(t: Engine, parent: TpmObject, p: CreateParams, handle: number): TpmObject {
  const c = checkTemplate(p.pub, p.data, 2, parent.pub, true);
  if (p.userAuth.length > c.nameAlg.size) throw new Rc(P(TPM_RC.SIZE, 1));
  const g = generateObject(c, p.userAuth, p.data, randomMaterial(t));
  return makeObject(handle, g.pub, g.sensitive, parent.hierarchy, parent.qualifiedName, parent.name, g.rsa);
}

/** TPM2_Create, Part 3 §12.1. */
function create(t: Engine, h: number[], inp: In, out: Out, locality: number): void {
  const p = readCreateParams(inp);
  const parent = storageParent(t, h[0]!, 1);
  // the object is built in a free object slot: TPM_RC_OBJECT_MEMORY when the three are taken
  // (a persistent parent's copy holds one of them), before the template checks (reference code,
  // Create.c; swtpm 0.7.1, measured)
  allocTransient(t, persistentCopies(h[0]!));
  const o = createOrdinary(t, parent, p, 0);
  out.tpm2b(wrapSensitive(parent, o.name, o.sensitive));
  out.tpm2b(o.publicArea);
  writeCreation(t, out, o, parent.pub.nameAlg, parent.name, parent.qualifiedName, p, locality);
}

/** TPM2_Load, Part 3 §12.2. */
function load(t: Engine, h: number[], inp: In, out: Out): void {
  const priv = inp.tpm2b(MAX_PRIVATE);
  const { pub, bytes } = readPublicParam(inp, 2);
  inp.done();
  const parent = storageParent(t, h[0]!, 1);
  checkTemplate(pub, EMPTY, 2, parent.pub, false);
  // a persistent parent is copied into the lowest free slot while the command runs: the object
  // gets the next one (swtpm 0.7.1, measured: 0x80000001 with no other object loaded)
  const handle = allocTransient(t, persistentCopies(h[0]!));
  const probe = makeObject(handle, pub, emptySensitive(pub), parent.hierarchy, parent.qualifiedName, parent.name);
  if (probe.publicArea.length !== bytes.length) throw new Rc(P(TPM_RC.SIZE, 2));
  const sensitive = unwrapSensitive(parent, probe.name, priv, 1);
  const rsa = checkBinding(pub, sensitive, 2);
  const o = makeObject(handle, pub, sensitive, parent.hierarchy, parent.qualifiedName, parent.name, rsa);
  t.objects.set(handle, o);
  t.rHandle = handle;
  out.tpm2b(o.name);
}

function emptySensitive(pub: TpmtPublic): TpmtSensitive {
  return { sensitiveType: pub.type, authValue: EMPTY, seedValue: EMPTY, sensitive: EMPTY };
}

/** TPM2_CreateLoaded, Part 3 §12.9: a primary object under a hierarchy, else an ordinary one, loaded. */
function createLoaded(t: Engine, h: number[], inp: In, out: Out): void {
  const { userAuth, data } = readSensitiveCreateParam(inp);
  const { pub, bytes } = readPublicParam(inp, 2);
  inp.done();
  const p: CreateParams = { userAuth, data, pub, template: bytes, outsideInfo: EMPTY, pcrs: { raw: EMPTY, sel: [] } };
  const ph = h[0]!;
  let o: TpmObject;
  let priv: Uint8Array = EMPTY;
  if (ph === TPM_RH.OWNER || ph === TPM_RH.ENDORSEMENT || ph === TPM_RH.PLATFORM || ph === TPM_RH.NULL) {
    const handle = allocTransient(t);
    o = createPrimaryObject(t, ph, p, handle);
  } else {
    const parent = storageParent(t, ph, 1);
    const handle = allocTransient(t, persistentCopies(h[0]!)); // as TPM2_Load: after a persistent parent's copy
    o = createOrdinary(t, parent, p, handle);
    priv = wrapSensitive(parent, o.name, o.sensitive);
  }
  t.objects.set(o.handle, o);
  t.rHandle = o.handle;
  out.tpm2b(priv);
  out.tpm2b(o.publicArea);
  out.tpm2b(o.name);
}

/** TPM2_LoadExternal, Part 3 §12.3. */
function loadExternal(t: Engine, inp: In, out: Out): void {
  inp.param = 1;
  const size = inp.u16();
  const sb = inp.bytes(size);
  let sensitive: TpmtSensitive | undefined;
  if (size > 0) {
    try {
      const r = new TpmReader(sb);
      sensitive = readSensitive(r);
      r.expectEnd();
    } catch {
      throw new Rc(P(TPM_RC.SIZE, 1));
    }
  }
  const { pub } = readPublicParam(inp, 2);
  inp.param = 3;
  const hierarchy = inp.u32();
  if (hierarchy !== TPM_RH.OWNER && hierarchy !== TPM_RH.ENDORSEMENT && hierarchy !== TPM_RH.PLATFORM && hierarchy !== TPM_RH.NULL) throw new Rc(P(TPM_RC.VALUE, 3));
  inp.done();
  if (!hashImpl(pub.nameAlg)) throw new Rc(P(TPM_RC.HASH, 2));
  checkExternalPublic(pub, 2);
  let rsa;
  if (sensitive) {
    // with a private part the object cannot claim to be the TPM's (Part 3 §12.3)
    if (pub.objectAttributes & (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT)) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
    if (hierarchy !== TPM_RH.NULL) throw new Rc(P(TPM_RC.HIERARCHY, 3));
    rsa = checkBinding(pub, sensitive, 2);
  }
  const handle = allocTransient(t);
  const o = makeObject(handle, pub, sensitive ?? emptySensitive(pub), hierarchy, u32be(hierarchy), EMPTY, rsa);
  // an external object has no parent: its qualified name is its name, in every hierarchy
  // (libtpms ObjectLoad without a parent; swtpm 0.7.1, measured with ReadPublic in the NULL and
  // owner hierarchies). Part 1 §16.6 would hang it under the hierarchy; swtpm wins.
  o.qualifiedName = o.name;
  o.external = true;
  if (!sensitive) o.publicOnly = true;
  t.objects.set(handle, o);
  t.rHandle = handle;
  out.tpm2b(o.name);
}

/** TPM2_ReadPublic, Part 3 §12.4. */
function readPublicCmd(t: Engine, h: number[], inp: In, out: Out): void {
  inp.done();
  if (t.sequences.has(h[0]!)) throw new Rc(TPM_RC.SEQUENCE);
  const o = findObject(t, h[0]!)!;
  out.tpm2b(o.publicArea);
  out.tpm2b(o.name);
  out.tpm2b(o.qualifiedName);
}

/** TPM2_ObjectChangeAuth, Part 3 §12.8: a new private blob with the new authValue; the loaded object is unchanged. */
function objectChangeAuth(t: Engine, h: number[], inp: In, out: Out): void {
  const newAuth = trimZeros(inp.tpm2b(MAX_AUTH)).slice();
  inp.done();
  const o = findObject(t, h[0]!)!;
  const parent = storageParent(t, h[1]!, 2);
  if (o.parentName.length === 0 || o.parentName.length !== parent.name.length || o.parentName.some((x, i) => x !== parent.name[i])) throw new Rc(H(TPM_RC.TYPE, 2));
  if (newAuth.length > hashImpl(o.pub.nameAlg)!.size) throw new Rc(P(TPM_RC.SIZE, 1));
  out.tpm2b(wrapSensitive(parent, o.name, { ...o.sensitive, authValue: newAuth }));
}

/** TPM2_Unseal, Part 3 §12.7: the data of a sealed-data object. */
function unseal(t: Engine, h: number[], inp: In, out: Out): void {
  inp.done();
  const o = findObject(t, h[0]!)!;
  if (o.pub.type !== TPM_ALG.KEYEDHASH) throw new Rc(H(TPM_RC.TYPE, 1));
  if (o.pub.objectAttributes & (TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.DECRYPT | TPMA_OBJECT.RESTRICTED)) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  out.tpm2b(o.sensitive.sensitive);
}

/** Part 3 §12 in the dispatch table. */
export const objectCommands: CommandEntries = [
  [TPM_CC.Create, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o, l) => create(t, h, i, o, l) }],
  [TPM_CC.Load, { decrypt: true, handles: ["object"], auth: 1, rHandle: true, run: (t, h, i, o) => load(t, h, i, o) }],
  [TPM_CC.LoadExternal, { decrypt: true, handles: [], auth: 0, rHandle: true, run: (t, _h, i, o) => loadExternal(t, i, o) }],
  [TPM_CC.ReadPublic, { encrypt: true, handles: ["anyObject"], auth: 0, run: (t, h, i, o) => readPublicCmd(t, h, i, o) }],
  [TPM_CC.ObjectChangeAuth, { decrypt: true, encrypt: true, handles: ["object", "object"], auth: 1, run: (t, h, i, o) => objectChangeAuth(t, h, i, o) }],
  [TPM_CC.Unseal, { encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => unseal(t, h, i, o) }],
  [TPM_CC.CreateLoaded, { decrypt: true, encrypt: true, handles: ["parent"], auth: 1, rHandle: true, run: (t, h, i, o) => createLoaded(t, h, i, o) }],
];
