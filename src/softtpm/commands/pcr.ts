/**
 * Integrity collection (TPM 2.0 Part 3 §22): TPM2_PCR_Read, TPM2_PCR_Extend, TPM2_PCR_Event and
 * TPM2_PCR_Reset over every bank of {@link HASH_IMPLS}, with the per-locality rules of
 * `PCR_EXTEND_BY_LOCALITY` / `PCR_RESET_BY_LOCALITY`. The extend helpers are shared with
 * TPM2_EventSequenceComplete (Part 3 §17).
 *
 * @packageDocumentation
 */
import { TPM_CC, TPM_RC, TPM_RH } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { SOFTTPM_MAX_BUFFER } from "../engine/limits.js";
import { type In, type Out, P, Rc } from "../engine/marshal.js";
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

/** Most digests one TPM2_PCR_Read returns (a TPML_DIGEST holds at most 8). */
const PCR_READ_MAX_DIGESTS = 8;

/** TPM2_PCR_Read, Part 3 §22.4: at most 8 digests; the selection out says which were read. */
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
    let mask = sels[i * 6 + 2]! | (sels[i * 6 + 3]! << 8) | (sels[i * 6 + 4]! << 16);
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

/** Extends `pcr` of bank `bankIndex` with `digest` (PCR := H(PCR ‖ digest), Part 3 §22.2). */
export function extendBank(t: Engine, bankIndex: number, pcr: number, digest: Uint8Array): void {
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

/** Part 3 §22 in the dispatch table. */
export const pcrCommands: CommandEntries = [
  [TPM_CC.PCR_Read, { handles: [], auth: 0, run: (t, _h, i, o) => pcrRead(t, i, o) }],
  [TPM_CC.PCR_Extend, { handles: ["pcr+null"], auth: 1, run: (t, h, i, _o, l) => pcrExtend(t, h, i, l) }],
  [TPM_CC.PCR_Event, { decrypt: true, handles: ["pcr+null"], auth: 1, run: (t, h, i, o, l) => pcrEvent(t, h, i, o, l) }],
  [TPM_CC.PCR_Reset, { handles: ["pcr"], auth: 1, run: (t, h, i, _o, l) => pcrReset(t, h, i, l) }],
];
