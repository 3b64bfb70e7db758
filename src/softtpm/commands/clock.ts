/**
 * Clocks and timers (TPM 2.0 Part 3 §29): TPM2_ReadClock, TPM2_ClockSet, TPM2_ClockRateAdjust.
 * Clock counts the milliseconds the TPM has been powered in its life (kept across power cycles);
 * time counts them since power-on.
 *
 * @packageDocumentation
 */
import { TPM_CC, TPM_RC } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { CLOCK_UPDATE_MS } from "../engine/limits.js";
import { type In, type Out, P, Rc } from "../engine/marshal.js";
import { checkHierarchyEnabled } from "./hierarchy.js";

/** TPM2_ReadClock, Part 3 §29.1: TPMS_TIME_INFO (time, then TPMS_CLOCK_INFO). */
function readClock(t: Engine, inp: In, out: Out): void {
  inp.done();
  const now = t.clock.now();
  const clock = t.clockNow();
  if (!t.ps.clockSafe && clock - t.clockAtPowerOn >= CLOCK_UPDATE_MS) t.ps.clockSafe = true;
  out.u64(Math.max(0, Math.floor(now - t.powerOnAt)));
  out.u64(clock);
  out.u32(t.ps.resetCount);
  out.u32(t.ps.restartCount);
  out.u8(t.ps.clockSafe ? 1 : 0);
}

/**
 * Largest Clock TPM2_ClockSet accepts. Part 3 §29.2 allows up to 0xFFFF000000000000, but SoftTpm
 * keeps Clock as a JavaScript number and its state blob refuses more than 2^53 - 1 ms, so it
 * answers TPM_RC_VALUE above 2^52 - 1: a set Clock then has 2^52 ms (over 100 000 years) to run
 * before the blob could not hold it.
 */
const CLOCK_SET_MAX = 2 ** 52 - 1;

/**
 * TPM2_ClockSet, Part 3 §29.2: Clock jumps forward to newTime (ms). Setting it back, or beyond the
 * largest value, is TPM_RC_VALUE + P + 1 (swtpm 0.7.1, measured). The dictionary-attack timers
 * run on the same Clock here, so they move with it: a ClockSet neither heals nor extends a lockout.
 */
function clockSet(t: Engine, h: number[], inp: In): void {
  checkHierarchyEnabled(t, h[0]!, 1);
  const hi = inp.u32();
  const lo = inp.u32();
  inp.done();
  const now = t.clockNow();
  // hi of 2^20 or more makes newTime >= 2^52: refuse it before the sum could lose precision
  if (hi >= 0x100000) throw new Rc(P(TPM_RC.VALUE, 1));
  const newTime = hi * 0x100000000 + lo;
  if (newTime > CLOCK_SET_MAX || newTime < now) throw new Rc(P(TPM_RC.VALUE, 1));
  const delta = newTime - now;
  if (delta === 0) return;
  t.clockAtPowerOn += delta;
  t.daAnchor += delta;
  if (t.lockoutUntil > 0) t.lockoutUntil += delta;
  t.markDirty();
}

/**
 * TPM2_ClockRateAdjust, Part 3 §29.3: rateAdjust is a TPM_CLOCK_ADJUST (Part 2 §6.4: -3 ..= 3,
 * else TPM_RC_VALUE + P + 1; swtpm 0.7.1, measured). The size of an adjustment is the
 * implementation's choice: SoftTpm's Clock follows its injected clock exactly, so it accepts the
 * request and keeps the same rate.
 */
function clockRateAdjust(t: Engine, h: number[], inp: In): void {
  checkHierarchyEnabled(t, h[0]!, 1);
  const b = inp.u8();
  inp.done();
  const adjust = b > 127 ? b - 256 : b; // INT8
  if (adjust < -3 || adjust > 3) throw new Rc(P(TPM_RC.VALUE, 1));
}

/** Part 3 §29 in the dispatch table. */
export const clockCommands: CommandEntries = [
  [TPM_CC.ClockSet, { handles: ["provision"], auth: 1, run: (t, h, i) => clockSet(t, h, i) }],
  [TPM_CC.ClockRateAdjust, { handles: ["provision"], auth: 1, run: (t, h, i) => clockRateAdjust(t, h, i) }],
  [TPM_CC.ReadClock, { handles: [], auth: 0, run: (t, _h, i, o) => readClock(t, i, o) }],
];
