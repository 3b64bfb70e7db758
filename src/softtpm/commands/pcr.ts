/**
 * Integrity collection (TPM 2.0 Part 3 §22): TPM2_PCR_Read, TPM2_PCR_Extend, TPM2_PCR_Event,
 * TPM2_PCR_Reset, TPM2_PCR_Allocate, TPM2_PCR_SetAuthPolicy and TPM2_PCR_SetAuthValue over the
 * banks of {@link HASH_IMPLS} (the PCRs the active allocation has), with the per-locality rules of
 * `PCR_EXTEND_BY_LOCALITY` / `PCR_RESET_BY_LOCALITY`. The extend helpers are shared with
 * TPM2_EventSequenceComplete (Part 3 §17).
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_RC, TPM_RH } from "../../wire/constants.js";
import { PCR_AUTH_GROUP, PCR_POLICY_GROUP, checkHierarchyEnabled, hierarchyState, trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { SOFTTPM_MAX_BUFFER } from "../engine/limits.js";
import { type In, type Out, P, Rc } from "../engine/marshal.js";
import { AUTH_MAX, PCR_ALL } from "../state.js";
import {
  HASH_IMPLS,
  PCR_COUNT,
  PCR_EXTEND_BY_LOCALITY,
  PCR_NO_INCREMENT,
  PCR_RESET_BY_LOCALITY,
  PCR_SAVE,
  PCR_SELECT_SIZE,
  hashImpl,
  hashIndex,
} from "../tables.js";

/** Every PCR of every bank: the allocation of a new TPM. */
const FULL_ALLOCATION: readonly number[] = HASH_IMPLS.map(() => PCR_ALL);

/**
 * The active PCR allocation, one mask per bank of {@link HASH_IMPLS} (bit i: PCR i). An
 * allocation TPM2_PCR_Allocate accepted becomes active at the next TPM Reset (Part 3 §22.5): the
 * first time this is asked after resetCount changed (a TPM Reset is the only thing that changes
 * it, TPM2_Clear aside, which re-stamps the pending allocation).
 */
export function pcrAllocation(t: Engine): readonly number[] {
  const ps = t.ps;
  const pending = ps.pcrAllocationPending;
  if (pending && pending.resetCount !== ps.resetCount) {
    if (pending.banks.every((m) => m === PCR_ALL)) delete ps.pcrAllocation;
    else ps.pcrAllocation = pending.banks.slice();
    delete ps.pcrAllocationPending;
    t.markDirty();
  }
  return ps.pcrAllocation ?? FULL_ALLOCATION;
}

/** The allocated PCRs of bank `bankIndex` (bit i: PCR i); the others are neither read nor extended. */
export function allocatedPcrs(t: Engine, bankIndex: number): number {
  return pcrAllocation(t)[bankIndex] ?? 0;
}

/** Most digests one TPM2_PCR_Read returns (a TPML_DIGEST holds at most 8). */
const PCR_READ_MAX_DIGESTS = 8;

/**
 * TPM2_PCR_Read, Part 3 §22.4: at most 8 digests; the selection out says which were read (a PCR
 * not allocated in its bank is left out, swtpm 0.7.1, measured).
 */
function pcrRead(t: Engine, inp: In, out: Out): void {
  const count = inp.u32();
  if (count > HASH_IMPLS.length) throw new Rc(P(TPM_RC.SIZE, 1));
  const sels = t.scratch; // per selection: alg hi, alg lo, 3 select bytes, bank index
  for (let i = 0; i < count; i++) {
    const alg = inp.u16();
    // the hash is checked as soon as it is read, before sizeofSelect (libtpms unmarshal order:
    // a frame cut after an unknown hash is TPM_RC_HASH, not TPM_RC_INSUFFICIENT)
    const a = hashImpl(alg);
    if (!a) throw new Rc(P(TPM_RC.HASH, 1));
    const sz = inp.u8();
    if (sz !== PCR_SELECT_SIZE) throw new Rc(P(TPM_RC.VALUE, 1));
    const sel = inp.bytes(sz);
    sels[i * 6] = alg >>> 8;
    sels[i * 6 + 1] = alg & 0xff;
    sels[i * 6 + 2] = sel[0]!;
    sels[i * 6 + 3] = sel[1]!;
    sels[i * 6 + 4] = sel[2]!;
    sels[i * 6 + 5] = hashIndex(alg);
  }
  inp.done();
  out.u32(t.pcrUpdateCounter);
  out.u32(count);
  const selAt = out.pos;
  for (let i = 0; i < count; i++) {
    out.u16((sels[i * 6]! << 8) | sels[i * 6 + 1]!);
    out.u8(PCR_SELECT_SIZE);
    out.skip(PCR_SELECT_SIZE);
  }
  const countAt = out.skip(4);
  let digests = 0;
  for (let i = 0; i < count; i++) {
    const a = HASH_IMPLS[sels[i * 6 + 5]!]!;
    const bank = t.pcrs[sels[i * 6 + 5]!]!;
    let mask = (sels[i * 6 + 2]! | (sels[i * 6 + 3]! << 8) | (sels[i * 6 + 4]! << 16)) & allocatedPcrs(t, sels[i * 6 + 5]!);
    let taken = 0;
    for (let p = 0; p < PCR_COUNT && mask; p++) {
      if (!((mask >>> p) & 1)) continue;
      if (digests >= PCR_READ_MAX_DIGESTS) break;
      out.u16(a.size);
      out.bytes(bank.subarray(p * a.size, (p + 1) * a.size));
      taken |= 1 << p;
      digests++;
      mask &= ~(1 << p);
    }
    const at = selAt + i * 6 + 3;
    out.buf[at] = taken & 0xff;
    out.buf[at + 1] = (taken >>> 8) & 0xff;
    out.buf[at + 2] = (taken >>> 16) & 0xff;
  }
  out.putU32(countAt, digests);
}

/**
 * Extends `pcr` of bank `bankIndex` with `digest` (PCR := H(PCR ‖ digest), Part 3 §22.2); a PCR
 * not allocated in that bank is left alone (reference code, PCRExtend).
 */
export function extendBank(t: Engine, bankIndex: number, pcr: number, digest: Uint8Array): void {
  if (!((allocatedPcrs(t, bankIndex) >>> pcr) & 1)) return;
  const a = HASH_IMPLS[bankIndex]!;
  const bank = t.pcrs[bankIndex]!;
  const buf = t.scratch;
  buf.set(bank.subarray(pcr * a.size, (pcr + 1) * a.size), 0);
  buf.set(digest, a.size);
  bank.set(a.hash(buf.subarray(0, 2 * a.size)), pcr * a.size);
  if (!((PCR_NO_INCREMENT >>> pcr) & 1)) t.pcrUpdateCounter = (t.pcrUpdateCounter + 1) >>> 0;
}

/**
 * An extend command passed its locality check for `pcr`: if Shutdown(STATE) saves that PCR, a
 * preceding Shutdown no longer counts, even when nothing is extended (zero digests). PCR 16 and
 * 23 leave it alone. As libtpms (swtpm 0.7.1, measured).
 */
export function extendTargets(t: Engine, pcr: number): void {
  if ((PCR_SAVE >>> pcr) & 1 && t.shutdownIssued) t.invalidateOrderly();
}

/** TPM_RC_LOCALITY unless `locality` may extend `pcr` (TPM_RH_NULL passes). */
export function checkExtendLocality(pcr: number, locality: number): void {
  if (pcr < PCR_COUNT && !((PCR_EXTEND_BY_LOCALITY[locality]! >>> pcr) & 1)) throw new Rc(TPM_RC.LOCALITY);
}

/** TPM2_PCR_Extend, Part 3 §22.2. */
function pcrExtend(t: Engine, h: number[], inp: In, locality: number): void {
  const pcr = h[0]!;
  const count = inp.u32();
  if (count > HASH_IMPLS.length) throw new Rc(P(TPM_RC.SIZE, 1));
  // validate every digest before extending any (bank index and offset in the command)
  const at = t.digestAt;
  for (let i = 0; i < count; i++) {
    const alg = inp.u16();
    const b = hashIndex(alg);
    if (b < 0) throw new Rc(P(TPM_RC.HASH, 1));
    at[i * 2] = b;
    at[i * 2 + 1] = inp.pos;
    inp.need(HASH_IMPLS[b]!.size);
    inp.pos += HASH_IMPLS[b]!.size;
  }
  inp.done();
  if (pcr === TPM_RH.NULL) return;
  checkExtendLocality(pcr, locality);
  extendTargets(t, pcr);
  for (let i = 0; i < count; i++) {
    const b = at[i * 2]!;
    extendBank(t, b, pcr, inp.buf.subarray(at[i * 2 + 1]!, at[i * 2 + 1]! + HASH_IMPLS[b]!.size));
  }
}

/** TPM2_PCR_Event, Part 3 §22.3: hash the event with every bank, extend, return the digests. */
function pcrEvent(t: Engine, h: number[], inp: In, out: Out, locality: number): void {
  const pcr = h[0]!;
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
  inp.done();
  if (pcr !== TPM_RH.NULL) {
    checkExtendLocality(pcr, locality);
    extendTargets(t, pcr);
  }
  out.u32(HASH_IMPLS.length);
  HASH_IMPLS.forEach((a, b) => {
    const d = a.hash(data);
    out.u16(a.alg);
    out.bytes(d);
    if (pcr !== TPM_RH.NULL) extendBank(t, b, pcr, d);
  });
}

/**
 * TPM2_PCR_Reset, Part 3 §22.8: allowed per locality as swtpm 0.7.1 allows it (measured; see
 * {@link PCR_RESET_BY_LOCALITY}).
 */
function pcrReset(t: Engine, h: number[], inp: In, locality: number): void {
  const pcr = h[0]!;
  inp.done();
  if (!((PCR_RESET_BY_LOCALITY[locality]! >>> pcr) & 1)) throw new Rc(TPM_RC.LOCALITY);
  HASH_IMPLS.forEach((a, b) => t.pcrs[b]!.fill(0, pcr * a.size, (pcr + 1) * a.size));
  // one increment per reset, not per bank (as libtpms counts it)
  if (!((PCR_NO_INCREMENT >>> pcr) & 1)) t.pcrUpdateCounter = (t.pcrUpdateCounter + 1) >>> 0;
}

/**
 * Largest number of banks in a TPML_PCR_SELECTION: the banks SoftTpm implements (HASH_COUNT;
 * swtpm 0.7.1, measured: 5 is TPM_RC_SIZE + P1).
 */
const PCR_BANKS_MAX = HASH_IMPLS.length;

/**
 * TPM2_PCR_Allocate, Part 3 §22.5: the banks listed get the PCRs selected, the others keep the
 * active allocation (a bank listed twice: the last one counts); an allocation with no PCR at all
 * is TPM_RC_PCR. Accepted, it waits for the next TPM Reset (persistently; a later Allocate
 * replaces it, starting again from the active allocation) and the answer is allocationSuccess
 * YES, maxPCR 24, sizeNeeded (the digest bytes of the new allocation) and sizeAvailable (those of
 * every PCR of every bank). Codes and sizes as swtpm 0.7.1 gives them (measured).
 */
function pcrAllocate(t: Engine, h: number[], inp: In, out: Out): void {
  checkHierarchyEnabled(t, h[0]!, 1);
  const count = inp.u32();
  if (count > PCR_BANKS_MAX) throw new Rc(P(TPM_RC.SIZE, 1));
  const banks = pcrAllocation(t).slice();
  for (let i = 0; i < count; i++) {
    const b = hashIndex(inp.u16());
    if (b < 0) throw new Rc(P(TPM_RC.HASH, 1));
    if (inp.u8() !== PCR_SELECT_SIZE) throw new Rc(P(TPM_RC.VALUE, 1));
    const sel = inp.bytes(PCR_SELECT_SIZE);
    banks[b] = sel[0]! | (sel[1]! << 8) | (sel[2]! << 16);
  }
  inp.done();
  if (banks.every((m) => m === 0)) throw new Rc(TPM_RC.PCR);
  let sizeNeeded = 0;
  let sizeAvailable = 0;
  HASH_IMPLS.forEach((a, b) => {
    for (let p = 0; p < PCR_COUNT; p++) if ((banks[b]! >>> p) & 1) sizeNeeded += a.size;
    sizeAvailable += a.size * PCR_COUNT;
  });
  const ok = sizeNeeded <= sizeAvailable;
  if (ok) {
    t.ps.pcrAllocationPending = { resetCount: t.ps.resetCount, banks };
    t.markDirty();
  }
  out.u8(ok ? 1 : 0); // allocationSuccess
  out.u32(PCR_COUNT); // maxPCR
  out.u32(sizeNeeded);
  out.u32(sizeAvailable);
}

/**
 * TPM2_PCR_SetAuthPolicy, Part 3 §22.6: the authPolicy of the PCR policy group (PCRs 20–22, one
 * group as libtpms), kept in the persistent state; TPM_ALG_NULL with an empty digest empties it.
 * A digest of another size than hashAlg's is TPM_RC_SIZE + P1, a PCR outside the group (or past
 * 23) TPM_RC_VALUE + P3 (swtpm 0.7.1, measured).
 */
function pcrSetAuthPolicy(t: Engine, h: number[], inp: In): void {
  checkHierarchyEnabled(t, h[0]!, 1);
  const policy = inp.tpm2b(AUTH_MAX); // TPM2B_DIGEST
  inp.param = 2;
  const alg = inp.u16(); // TPMI_ALG_HASH+
  if (alg !== TPM_ALG.NULL && !hashImpl(alg)) throw new Rc(P(TPM_RC.HASH, 2));
  inp.param = 3;
  const pcr = inp.u32(); // TPMI_DH_PCR
  if (pcr >= PCR_COUNT) throw new Rc(P(TPM_RC.VALUE, 3));
  inp.done();
  if (policy.length !== (alg === TPM_ALG.NULL ? 0 : hashImpl(alg)!.size)) throw new Rc(P(TPM_RC.SIZE, 1));
  if (!((PCR_POLICY_GROUP >>> pcr) & 1)) throw new Rc(P(TPM_RC.VALUE, 3));
  if (alg === TPM_ALG.NULL) delete t.ps.pcrPolicy;
  else t.ps.pcrPolicy = { alg, policy: policy.slice() };
  t.markDirty();
}

/**
 * TPM2_PCR_SetAuthValue, Part 3 §22.7: the authValue of the PCR authorization group (PCRs 20–22),
 * trailing zeros removed, until the next Startup(CLEAR) or TPM2_Clear. Authorized with the current
 * one; a PCR outside the group is TPM_RC_VALUE, with no parameter number (swtpm 0.7.1, measured).
 */
function pcrSetAuthValue(t: Engine, h: number[], inp: In): void {
  const auth = inp.tpm2b(AUTH_MAX); // TPM2B_DIGEST
  inp.done();
  if (!((PCR_AUTH_GROUP >>> h[0]!) & 1)) throw new Rc(TPM_RC.VALUE);
  hierarchyState(t).pcrAuth = trimZeros(auth).slice();
}

/** Part 3 §22 in the dispatch table. */
export const pcrCommands: CommandEntries = [
  [TPM_CC.PCR_Read, { handles: [], auth: 0, run: (t, _h, i, o) => pcrRead(t, i, o) }],
  [TPM_CC.PCR_Extend, { handles: ["pcr+null"], auth: 1, run: (t, h, i, _o, l) => pcrExtend(t, h, i, l) }],
  [TPM_CC.PCR_Event, { decrypt: true, handles: ["pcr+null"], auth: 1, run: (t, h, i, o, l) => pcrEvent(t, h, i, o, l) }],
  [TPM_CC.PCR_Reset, { handles: ["pcr"], auth: 1, run: (t, h, i, _o, l) => pcrReset(t, h, i, l) }],
  [TPM_CC.PCR_Allocate, { handles: ["platform"], auth: 1, run: (t, h, i, o) => pcrAllocate(t, h, i, o) }],
  [TPM_CC.PCR_SetAuthPolicy, { decrypt: true, handles: ["platform"], auth: 1, run: (t, h, i) => pcrSetAuthPolicy(t, h, i) }],
  [TPM_CC.PCR_SetAuthValue, { decrypt: true, handles: ["pcr"], auth: 1, run: (t, h, i) => pcrSetAuthValue(t, h, i) }],
];
