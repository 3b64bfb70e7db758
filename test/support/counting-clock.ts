import type { Clock } from "../../src/core/clock.js";

/** A clock that counts the timers and sleeps asked of it (for "no timer per command" tests). */
export function countingClock(inner: Clock): Clock & { timers: number } {
  const c = {
    timers: 0,
    now: () => inner.now(),
    sleep: (ms: number, signal?: AbortSignal) => {
      c.timers++;
      return inner.sleep(ms, signal);
    },
    setTimer: (ms: number, fn: () => void) => {
      c.timers++;
      return inner.setTimer(ms, fn);
    },
  };
  return c;
}
