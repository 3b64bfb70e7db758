/**
 * Issue 9, finding 4 (event-loop starvation): a loop of awaited commands over memory() must let
 * timers and aborts run. The backend here answers in a microtask, as SoftTpm does.
 */
import { describe, expect, it } from "vitest";
import { systemClock } from "../../core/clock.js";
import type { TpmBackend } from "../../core/transport.js";
import { TpmAbortError, TpmArgumentError } from "../../errors/index.js";
import { MEMORY_YIELD_SLICE_MS, memory } from "./index.js";

const RSP = Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0);
const CMD = Uint8Array.of(0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8);
/** Counts commands; answers at once. */
function instant(): TpmBackend & { count: number } {
  const b = { count: 0, async execute() { b.count++; return RSP; } };
  return b;
}
const opts = () => ({ locality: 0, signal: new AbortController().signal, timeoutMs: 1000, clock: systemClock });
/** Upper bound on commands before a 0 ms timer fires: at 4 ms slices even a fast machine runs far fewer. */
const BOUND = 200_000;

describe("memory transport yields to the event loop", () => {
  it("a setTimeout(0) fires during a tight loop of awaited commands", async () => {
    const b = instant();
    const t = memory({ backend: b });
    let fired = false;
    setTimeout(() => (fired = true), 0);
    while (!fired && b.count < BOUND) await t.send(CMD, opts());
    expect(fired).toBe(true);
    expect(b.count).toBeLessThan(BOUND);
  });

  it("AbortSignal.timeout(10) aborts a tight loop", async () => {
    const b = instant();
    const t = memory({ backend: b });
    const signal = AbortSignal.timeout(10);
    let n = 0;
    await expect(
      (async () => {
        for (; n < BOUND; n++) await t.send(CMD, { locality: 0, signal, timeoutMs: 1000, clock: systemClock });
      })(),
    ).rejects.toBeInstanceOf(TpmAbortError);
    expect(n).toBeLessThan(BOUND);
  });

  it("yieldSliceMs: Infinity starves the loop (what happened before): the timer never fires", async () => {
    const b = instant();
    const t = memory({ backend: b, yieldSliceMs: Infinity });
    let fired = false;
    setTimeout(() => (fired = true), 0);
    for (let i = 0; i < 20_000; i++) await t.send(CMD, opts());
    expect(fired).toBe(false);
    await new Promise((r) => setTimeout(r, 1));
    expect(fired).toBe(true);
  });

  it("does not yield while the event loop is turning anyway, and refuses a bad slice", async () => {
    expect(MEMORY_YIELD_SLICE_MS).toBe(4);
    expect(() => memory({ backend: instant(), yieldSliceMs: -1 })).toThrow(TpmArgumentError);
    expect(() => memory({ backend: instant(), yieldSliceMs: Number.NaN })).toThrow(TpmArgumentError);
    // with slice 0 every command after the first in a slice waits a macrotask: a timer fires within 2 commands of a loop turn
    const b = instant();
    const t = memory({ backend: b, yieldSliceMs: 0 });
    let fired = false;
    setTimeout(() => (fired = true), 0);
    while (!fired && b.count < BOUND) await t.send(CMD, opts());
    expect(fired).toBe(true);
  });
});
