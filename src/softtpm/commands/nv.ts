/**
 * Non-volatile storage (TPM 2.0 Part 3 §31): defining and deleting indices, and reading, writing,
 * counting, extending, setting bits in and locking them. Ordinary, counter, bits, extend, PIN
 * fail and PIN pass indices (TPM_NT, Part 2 §13.4); every check in libtpms order (swtpm 0.7.1,
 * measured).
 *
 * @packageDocumentation
 */
import { concatBytes } from "../../wire/bytes.js";
import { TPM_CC, TPM_HT, TPM_NT, TPM_RC, TPM_RH, TPMA_NV } from "../../wire/constants.js";
import { trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { SOFTTPM_MAX_BUFFER } from "../engine/limits.js";
import { H, type In, type Out, P, Rc, nvPublicBytes } from "../engine/marshal.js";
import { AUTH_MAX, NV_DATA_MAX, NV_INDICES_MAX, type NvIndexState, nvIndexProblem, nvType } from "../state.js";
import { hashImpl } from "../tables.js";

/** Reserved TPMA_NV bits: set in a new index's attributes, TPM_RC_RESERVED_BITS. */
const NV_RESERVED = TPMA_NV.RESERVED1_MASK | TPMA_NV.RESERVED2_MASK;
const NV_ANY_READ = TPMA_NV.PPREAD | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.POLICYREAD;
const NV_ANY_WRITE = TPMA_NV.PPWRITE | TPMA_NV.OWNERWRITE | TPMA_NV.AUTHWRITE | TPMA_NV.POLICYWRITE;
/** State bits the TPM sets, never the caller of NV_DefineSpace. */
const NV_STATE_BITS = TPMA_NV.WRITELOCKED | TPMA_NV.READLOCKED | TPMA_NV.WRITTEN;
/** Attributes a PIN index may not have (Part 3 §31.3.1; swtpm 0.7.1, measured: TPM_RC_ATTRIBUTES + P2). */
const NV_PIN_FORBIDDEN = TPMA_NV.AUTHWRITE | TPMA_NV.GLOBALLOCK | TPMA_NV.WRITEDEFINE;

/** A PIN fail or PIN pass index (TPM_NT_PIN_FAIL, TPM_NT_PIN_PASS, Part 2 §13.4). */
function isPin(nt: number): boolean {
  return nt === TPM_NT.PIN_FAIL || nt === TPM_NT.PIN_PASS;
}

function readU64(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

function writeU64(b: Uint8Array, v: bigint): void {
  for (let i = 7; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/** TPM2_NV_DefineSpace, Part 3 §31.3. */
function nvDefineSpace(t: Engine, h: number[], inp: In): void {
  const auth = inp.tpm2b(AUTH_MAX); // TPM2B_AUTH
  inp.param = 2;
  // TPM2B_NV_PUBLIC, unmarshalled as libtpms does: each field checked as it is read, the size
  // field compared with what the structure used afterwards
  const pubSize = inp.u16();
  if (pubSize === 0) throw new Rc(P(TPM_RC.SIZE, 2));
  const pubStart = inp.pos;
  const handle = inp.u32();
  if (handle >>> 24 !== TPM_HT.NV_INDEX) throw new Rc(P(TPM_RC.VALUE, 2));
  const nameAlg = inp.u16();
  const alg = hashImpl(nameAlg);
  if (!alg) throw new Rc(P(TPM_RC.HASH, 2));
  const attributes = inp.u32();
  if (attributes & NV_RESERVED) throw new Rc(P(TPM_RC.RESERVED_BITS, 2));
  const authPolicy = inp.tpm2b(AUTH_MAX);
  const dataSize = inp.u16();
  // libtpms bounds dataSize while unmarshalling TPMS_NV_PUBLIC: before the trailing-bytes check
  // and the auth size check (swtpm 0.7.1, measured)
  if (dataSize > NV_DATA_MAX) throw new Rc(P(TPM_RC.SIZE, 2));
  if (inp.pos - pubStart !== pubSize) throw new Rc(P(TPM_RC.SIZE, 2));
  inp.done();
  // the policy size first, then the auth size (libtpms order; swtpm 0.7.1, measured)
  if (authPolicy.length !== 0 && authPolicy.length !== alg.size) throw new Rc(P(TPM_RC.SIZE, 2));
  if (trimZeros(auth).length > alg.size) throw new Rc(P(TPM_RC.SIZE, 1));
  const nt = nvType(attributes);
  if (nt !== TPM_NT.ORDINARY && nt !== TPM_NT.COUNTER && nt !== TPM_NT.BITS && nt !== TPM_NT.EXTEND && !isPin(nt)) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  // a counter, bits or PIN index holds 8 bytes (a UINT64, or TPMS_NV_PIN_COUNTER_PARAMETERS):
  // the size is checked before any attribute (swtpm 0.7.1, measured)
  if ((nt === TPM_NT.COUNTER || nt === TPM_NT.BITS || isPin(nt)) && dataSize !== 8) throw new Rc(P(TPM_RC.SIZE, 2));
  if (nt === TPM_NT.EXTEND && dataSize !== alg.size) throw new Rc(P(TPM_RC.SIZE, 2));
  if (!(attributes & NV_ANY_READ)) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  if (!(attributes & NV_ANY_WRITE)) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  if (attributes & NV_STATE_BITS) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  if (nt === TPM_NT.COUNTER && attributes & TPMA_NV.CLEAR_STCLEAR) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  if (attributes & TPMA_NV.CLEAR_STCLEAR && attributes & TPMA_NV.WRITEDEFINE) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  // a PIN index is not written with its own authValue (AUTHWRITE) nor locked by WRITEDEFINE or
  // GLOBALLOCK (WRITE_STCLEAR is allowed); a PIN fail index is exempt from DA, its own counter
  // counts failures: Part 3 §31.3.1, swtpm 0.7.1, measured
  if (isPin(nt) && attributes & NV_PIN_FORBIDDEN) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  if (nt === TPM_NT.PIN_FAIL && !(attributes & TPMA_NV.NO_DA)) throw new Rc(P(TPM_RC.ATTRIBUTES, 2));
  const platform = h[0] === TPM_RH.PLATFORM;
  if (((attributes & TPMA_NV.PLATFORMCREATE) !== 0) !== platform) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  if (attributes & TPMA_NV.POLICY_DELETE && !platform) throw new Rc(P(TPM_RC.ATTRIBUTES, 2)); // platform-only
  // a WRITEALL index must fit one NV_Write (MAX_NV_BUFFER_SIZE), checked after the attributes
  // (swtpm 0.7.1, measured)
  if (attributes & TPMA_NV.WRITEALL && dataSize > SOFTTPM_MAX_BUFFER) throw new Rc(P(TPM_RC.SIZE, 2));
  if (t.nv(handle)) throw new Rc(TPM_RC.NV_DEFINED);
  if (t.ps.nv.length >= NV_INDICES_MAX) throw new Rc(TPM_RC.NV_SPACE);
  const entry: NvIndexState = {
    handle,
    nameAlg,
    attributes: attributes >>> 0,
    authValue: trimZeros(auth).slice(),
    authPolicy: authPolicy.slice(),
    dataSize,
    // unwritten bytes of an ordinary or PIN index read as 0xFF (erased NV), as on swtpm (a PIN
    // index written 4 bytes reads back ffffffff after them, measured); the other types start
    // from zero when first written
    data: new Uint8Array(dataSize).fill(nt === TPM_NT.ORDINARY || isPin(nt) ? 0xff : 0),
  };
  if (nvIndexProblem(entry)) throw new Rc(P(TPM_RC.VALUE, 2));
  t.ps.nv.push(entry);
  t.ps.nv.sort((x, y) => x.handle - y.handle);
  t.markDirty();
}

/** TPM2_NV_UndefineSpace, Part 3 §31.4. */
function nvUndefineSpace(t: Engine, h: number[], inp: In): void {
  inp.done();
  const nv = t.nv(h[1]!)!;
  if (nv.attributes & TPMA_NV.POLICY_DELETE) throw new Rc(H(TPM_RC.ATTRIBUTES, 2)); // needs NV_UndefineSpaceSpecial
  if (nv.attributes & TPMA_NV.PLATFORMCREATE && h[0] !== TPM_RH.PLATFORM) throw new Rc(TPM_RC.NV_AUTHORIZATION);
  noteCounterGone(t, nv);
  t.ps.nv = t.ps.nv.filter((x) => x !== nv);
  t.markDirty();
}

/**
 * TPM2_NV_UndefineSpaceSpecial, Part 3 §31.5: deletes an index with TPMA_NV_POLICY_DELETE. The
 * nvIndex is authorized in the ADMIN role, which only a policy session holding
 * TPM2_PolicyCommandCode(TPM_CC_NV_UndefineSpaceSpecial) can give (Part 1 §19.7.2; the engine's
 * authorization checks it), the platform with platformAuth or platformPolicy. Both
 * authorizations come first: an index without POLICY_DELETE is TPM_RC_ATTRIBUTES + H1 after them
 * (swtpm 0.7.1, measured). The response HMAC of the index's session is keyed without the deleted
 * index's authValue (swtpm 0.7.1, measured), as the engine does for an entity that no longer exists.
 */
function nvUndefineSpaceSpecial(t: Engine, h: number[], inp: In): void {
  inp.done();
  const nv = t.nv(h[0]!)!;
  if (!(nv.attributes & TPMA_NV.POLICY_DELETE)) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  noteCounterGone(t, nv);
  t.ps.nv = t.ps.nv.filter((x) => x !== nv);
  t.markDirty();
}

/**
 * TPM2_NV_GlobalWriteLock, Part 3 §31.12: every index with TPMA_NV_GLOBALLOCK becomes
 * TPMA_NV_WRITELOCKED (the ones defined later do not); the lock lasts until the next
 * Startup(CLEAR) clears it as that of NV_WriteLock (swtpm 0.7.1, measured: a WRITEDEFINE index
 * that is written stays locked). Authorized by the owner or the platform.
 */
function nvGlobalWriteLock(t: Engine, inp: In): void {
  inp.done();
  for (const nv of t.ps.nv) if (nv.attributes & TPMA_NV.GLOBALLOCK) nv.attributes = (nv.attributes | TPMA_NV.WRITELOCKED) >>> 0;
  t.markDirty();
}

/** NvWriteAccessChecks, Part 3 §31.2.3 (lock first, then the authorization attribute). */
function writeAccess(authHandle: number, nv: NvIndexState): void {
  if (nv.attributes & TPMA_NV.WRITELOCKED) throw new Rc(TPM_RC.NV_LOCKED);
  if (authHandle >>> 24 === TPM_HT.NV_INDEX && authHandle !== nv.handle) throw new Rc(TPM_RC.NV_AUTHORIZATION); // another index's auth
  if (authHandle === TPM_RH.OWNER && !(nv.attributes & TPMA_NV.OWNERWRITE)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
  if (authHandle === TPM_RH.PLATFORM && !(nv.attributes & TPMA_NV.PPWRITE)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
}

/** NvReadAccessChecks, Part 3 §31.2.2. */
export function readAccess(authHandle: number, nv: NvIndexState): void {
  if (nv.attributes & TPMA_NV.READLOCKED) throw new Rc(TPM_RC.NV_LOCKED);
  if (authHandle >>> 24 === TPM_HT.NV_INDEX && authHandle !== nv.handle) throw new Rc(TPM_RC.NV_AUTHORIZATION); // another index's auth
  if (authHandle === TPM_RH.OWNER && !(nv.attributes & TPMA_NV.OWNERREAD)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
  if (authHandle === TPM_RH.PLATFORM && !(nv.attributes & TPMA_NV.PPREAD)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
}

function written(t: Engine, nv: NvIndexState): void {
  nv.attributes = (nv.attributes | TPMA_NV.WRITTEN) >>> 0;
  t.markDirty();
}

/** TPM2_NV_Write, Part 3 §31.7. */
function nvWrite(t: Engine, h: number[], inp: In): void {
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
  inp.param = 2;
  const offset = inp.u16();
  inp.done();
  const nv = t.nv(h[1]!)!;
  writeAccess(h[0]!, nv);
  // NV_Write writes an ordinary or a PIN index (Part 3 §31.7.1; swtpm 0.7.1, measured)
  const nt = nvType(nv.attributes);
  if (nt !== TPM_NT.ORDINARY && !isPin(nt)) throw new Rc(TPM_RC.ATTRIBUTES);
  if (offset > nv.dataSize) throw new Rc(P(TPM_RC.VALUE, 2));
  if (data.length > nv.dataSize - offset) throw new Rc(TPM_RC.NV_RANGE);
  if (nv.attributes & TPMA_NV.WRITEALL && data.length !== nv.dataSize) throw new Rc(TPM_RC.NV_RANGE);
  nv.data.set(data, offset);
  written(t, nv);
}

/**
 * A counter index is being deleted (NV_UndefineSpace or TPM2_Clear): the highest count seen so
 * far moves up to its value, so a new counter starts above it (Part 3 §31.8). As libtpms, this
 * happens on deletion only, not on every increment (swtpm 0.7.1, measured: a counter defined
 * while another one stands at 3 starts at 1).
 */
export function noteCounterGone(t: Engine, nv: NvIndexState): void {
  if (nvType(nv.attributes) !== TPM_NT.COUNTER || !(nv.attributes & TPMA_NV.WRITTEN)) return;
  const v = readU64(nv.data);
  if (v > t.ps.maxCounter) t.ps.maxCounter = v;
}

/** TPM2_NV_Increment, Part 3 §31.8. */
function nvIncrement(t: Engine, h: number[], inp: In): void {
  inp.done();
  const nv = t.nv(h[1]!)!;
  writeAccess(h[0]!, nv);
  if (nvType(nv.attributes) !== TPM_NT.COUNTER) throw new Rc(H(TPM_RC.ATTRIBUTES, 2));
  let v = nv.attributes & TPMA_NV.WRITTEN ? readU64(nv.data) : t.ps.maxCounter;
  v = (v + 1n) & 0xffffffffffffffffn;
  writeU64(nv.data, v);
  written(t, nv);
}

/** TPM2_NV_Extend, Part 3 §31.9. */
function nvExtend(t: Engine, h: number[], inp: In): void {
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
  inp.done();
  const nv = t.nv(h[1]!)!;
  writeAccess(h[0]!, nv);
  if (nvType(nv.attributes) !== TPM_NT.EXTEND) throw new Rc(H(TPM_RC.ATTRIBUTES, 2));
  const a = hashImpl(nv.nameAlg)!;
  nv.data.set(a.hash(concatBytes(nv.data, data)));
  written(t, nv);
}

/** TPM2_NV_SetBits, Part 3 §31.10. */
function nvSetBits(t: Engine, h: number[], inp: In): void {
  const hi = inp.u32();
  const lo = inp.u32();
  inp.done();
  const nv = t.nv(h[1]!)!;
  writeAccess(h[0]!, nv);
  if (nvType(nv.attributes) !== TPM_NT.BITS) throw new Rc(H(TPM_RC.ATTRIBUTES, 2));
  const old = nv.attributes & TPMA_NV.WRITTEN ? readU64(nv.data) : 0n;
  writeU64(nv.data, old | (BigInt(hi) << 32n) | BigInt(lo));
  written(t, nv);
}

/** TPM2_NV_WriteLock, Part 3 §31.11. */
function nvWriteLock(t: Engine, h: number[], inp: In): void {
  inp.done();
  const nv = t.nv(h[1]!)!;
  if (nv.attributes & TPMA_NV.WRITELOCKED) return; // already locked: success
  writeAccess(h[0]!, nv);
  if (!(nv.attributes & (TPMA_NV.WRITEDEFINE | TPMA_NV.WRITE_STCLEAR))) throw new Rc(H(TPM_RC.ATTRIBUTES, 2));
  nv.attributes = (nv.attributes | TPMA_NV.WRITELOCKED) >>> 0;
  t.markDirty();
}

/** TPM2_NV_Read, Part 3 §31.13. */
function nvRead(t: Engine, h: number[], inp: In, out: Out): void {
  const size = inp.u16();
  inp.param = 2;
  const offset = inp.u16();
  inp.done();
  const nv = t.nv(h[1]!)!;
  readAccess(h[0]!, nv);
  if (!(nv.attributes & TPMA_NV.WRITTEN)) throw new Rc(TPM_RC.NV_UNINITIALIZED);
  if (size > SOFTTPM_MAX_BUFFER) throw new Rc(P(TPM_RC.VALUE, 1));
  if (offset > nv.dataSize) throw new Rc(P(TPM_RC.VALUE, 2));
  if (size + offset > nv.dataSize) throw new Rc(TPM_RC.NV_RANGE);
  out.tpm2b(nv.data.subarray(offset, offset + size));
}

/** TPM2_NV_ReadLock, Part 3 §31.14. */
function nvReadLock(t: Engine, h: number[], inp: In): void {
  inp.done();
  const nv = t.nv(h[1]!)!;
  if (nv.attributes & TPMA_NV.READLOCKED) return; // already locked: success
  readAccess(h[0]!, nv);
  if (!(nv.attributes & TPMA_NV.READ_STCLEAR)) throw new Rc(H(TPM_RC.ATTRIBUTES, 2));
  nv.attributes = (nv.attributes | TPMA_NV.READLOCKED) >>> 0;
}

/** TPM2_NV_ReadPublic, Part 3 §31.6: TPM2B_NV_PUBLIC and the index Name. */
function nvReadPublic(t: Engine, h: number[], inp: In, out: Out): void {
  inp.done();
  const nv = t.nv(h[0]!)!;
  const pub = nvPublicBytes(nv);
  out.tpm2b(pub);
  const a = hashImpl(nv.nameAlg)!;
  out.u16(2 + a.size);
  out.u16(a.alg);
  out.bytes(a.hash(pub));
}

/**
 * TPM2_NV_ChangeAuth, Part 3 §31.15: the index's authValue becomes newAuth (trailing zeros
 * dropped, Part 1 §19.8.4), at most the size of its nameAlg's digest (TPM_RC_SIZE + P1). The
 * nvIndex is authorized in the ADMIN role, which for an NV index only a policy session can give
 * (Part 1 §19.7.2; the engine's authorization checks it).
 */
function nvChangeAuth(t: Engine, h: number[], inp: In): void {
  const newAuth = inp.tpm2b(AUTH_MAX);
  inp.done();
  const nv = t.nv(h[0]!)!;
  const value = trimZeros(newAuth);
  if (value.length > hashImpl(nv.nameAlg)!.size) throw new Rc(P(TPM_RC.SIZE, 1));
  nv.authValue = value.slice();
  t.markDirty();
}

/** Part 3 §31 in the dispatch table. */
export const nvCommands: CommandEntries = [
  [TPM_CC.NV_DefineSpace, { decrypt: true, handles: ["provision"], auth: 1, run: (t, h, i) => nvDefineSpace(t, h, i) }],
  [TPM_CC.NV_UndefineSpace, { handles: ["provision", "nvIndex"], auth: 1, run: (t, h, i) => nvUndefineSpace(t, h, i) }],
  [TPM_CC.NV_UndefineSpaceSpecial, { handles: ["nvIndex", "platform"], auth: 2, run: (t, h, i) => nvUndefineSpaceSpecial(t, h, i) }],
  [TPM_CC.NV_GlobalWriteLock, { handles: ["provision"], auth: 1, run: (t, _h, i) => nvGlobalWriteLock(t, i) }],
  [TPM_CC.NV_Write, { decrypt: true, handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => nvWrite(t, h, i) }],
  [TPM_CC.NV_Read, { encrypt: true, handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i, o) => nvRead(t, h, i, o) }],
  [TPM_CC.NV_ChangeAuth, { decrypt: true, handles: ["nvIndex"], auth: 1, run: (t, h, i) => nvChangeAuth(t, h, i) }],
  [TPM_CC.NV_ReadPublic, { handles: ["nvIndex"], auth: 0, run: (t, h, i, o) => nvReadPublic(t, h, i, o) }],
  [TPM_CC.NV_Increment, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => nvIncrement(t, h, i) }],
  [TPM_CC.NV_Extend, { decrypt: true, handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => nvExtend(t, h, i) }],
  [TPM_CC.NV_SetBits, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => nvSetBits(t, h, i) }],
  [TPM_CC.NV_ReadLock, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => nvReadLock(t, h, i) }],
  [TPM_CC.NV_WriteLock, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => nvWriteLock(t, h, i) }],
];
