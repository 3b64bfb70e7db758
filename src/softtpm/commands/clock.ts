/**
 * Clocks and timers (TPM 2.0 Part 3 §29): TPM2_ReadClock. Clock counts the milliseconds the TPM
 * has been powered in its life (kept across power cycles); time counts them since power-on.
 *
 * @packageDocumentation
 */
import { TPM_CC } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { CLOCK_UPDATE_MS } from "../engine/limits.js";
import type { In, Out } from "../engine/marshal.js";

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

/** Part 3 §29 in the dispatch table. */
export const clockCommands: CommandEntries = [[TPM_CC.ReadClock, { handles: [], auth: 0, run: (t, _h, i, o) => readClock(t, i, o) }]];
