import { describe, it, expect } from "vitest";
import { FakeClock, systemClock } from "../core/clock.js";
import { countingClock } from "../../test/support/counting-clock.js";
import { FIRST_SLEEP_MS, KERNEL_POLL_MS, MICROTASK_POLLS, poll, pollSteps } from "./poll.js";
import { runSteps } from "./access.js";

describe("poll: the shared polling engine", () => {
  it("returns a plain value, without reading the clock, when the first synchronous read is done", () => {
    let clockReads = 0;
    const clock = { ...new FakeClock(), now: () => (clockReads++, 0), sleep: () => Promise.reject(new Error("no sleep")), setTimer: () => ({ clear() {} }) };
    const r = poll({ read: () => 5, done: (v) => v === 5, timeoutMs: 100, intervalMs: 1, clock });
    expect(r).toEqual({ ok: true, value: 5 });
    expect(clockReads).toBe(0);
  });

  it("polls after microtask yields first: a value that appears within microtasks costs no timer", async () => {
    const clock = countingClock(systemClock);
    let ready = false;
    void Promise.resolve().then(() => Promise.resolve()).then(() => (ready = true));
    let reads = 0;
    const r = await poll({ read: () => (reads++, ready), done: (v) => v, timeoutMs: 100, intervalMs: 1, clock });
    expect(r.ok).toBe(true);
    expect(clock.timers).toBe(0);
    expect(reads).toBeGreaterThan(1);
    expect(reads).toBeLessThanOrEqual(MICROTASK_POLLS + 1);
  });

  it("then sleeps on the clock from 50 µs doubling up to the wait's kernel interval, and ends at the deadline", async () => {
    const clock = new FakeClock({ auto: true });
    const at: number[] = [];
    const r = await poll({ read: () => (at.push(clock.now()), 0), done: (v) => v === 1, timeoutMs: 20, intervalMs: KERNEL_POLL_MS.response, clock });
    expect(r).toEqual({ ok: false, value: 0 });
    // MICROTASK_POLLS + 1 reads at time 0, then sleeps of 0.05, 0.1, 0.2, 0.4, 0.8, 1, 1, ...
    expect(at.slice(0, MICROTASK_POLLS + 1).every((t) => t === 0)).toBe(true);
    const gaps = at.slice(MICROTASK_POLLS).map((t, i, a) => (i === 0 ? 0 : +(t - a[i - 1]!).toFixed(6))).slice(1);
    expect(gaps.slice(0, 7)).toEqual([FIRST_SLEEP_MS, 0.1, 0.2, 0.4, 0.8, 1, 1]);
    expect(Math.max(...gaps)).toBe(1);
    expect(at.at(-1)).toBe(20); // one last read exactly at the deadline
  });

  it("caps the back-off at each kernel interval: 0.1 ms for CRB registers, 5 ms for TIS locality waits", async () => {
    for (const [intervalMs, timeoutMs] of [
      [KERNEL_POLL_MS.crbRegister, 5],
      [KERNEL_POLL_MS.tisAccess, 60],
    ] as const) {
      const clock = new FakeClock({ auto: true });
      const at: number[] = [];
      await poll({ read: () => (at.push(clock.now()), 0), done: () => false, timeoutMs, intervalMs, clock });
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      expect(Math.max(...gaps)).toBeCloseTo(intervalMs, 9);
      expect(at.at(-1)).toBe(timeoutMs);
    }
  });

  it("counts the deadline from the first read and bounds a slow asynchronous bridge by it", async () => {
    const clock = new FakeClock({ auto: true, start: 10 });
    const r = await poll({ read: () => clock.sleep(3).then(() => 0), done: () => false, timeoutMs: 30, intervalMs: 1, clock });
    expect(r.ok).toBe(false);
    expect(clock.now()).toBeGreaterThanOrEqual(40);
    expect(clock.now()).toBeLessThan(44);
  });

  it("rejects with the abort error when the signal fires during a sleep or a pending read", async () => {
    const clock = new FakeClock({ auto: true });
    const ac = new AbortController();
    clock.setTimer(7, () => ac.abort());
    await expect(poll({ read: () => 0, done: () => false, timeoutMs: 1000, intervalMs: 1, clock, signal: ac.signal })).rejects.toMatchObject({ name: "AbortError" });
    expect(clock.now()).toBe(7);
    const ac2 = new AbortController();
    const never = new Promise<number>(() => {});
    const p = poll({ read: () => never, done: () => false, timeoutMs: 1000, intervalMs: 1, clock, signal: ac2.signal });
    ac2.abort();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
  });

  it("uses the caller's idle wait instead of the back-off (an interrupt-driven wait)", async () => {
    const clock = new FakeClock({ auto: true });
    let value = 0;
    const idles: number[] = [];
    const r = await poll({
      read: () => value,
      done: (v) => v === 3,
      timeoutMs: 100,
      intervalMs: 1,
      clock,
      idle: async (left) => {
        idles.push(left);
        await clock.sleep(10);
        value++;
      },
    });
    expect(r).toEqual({ ok: true, value: 3 });
    expect(idles).toEqual([100, 90, 80]);
  });

  it("composes as a step sequence: a synchronous device keeps a multi-step run synchronous", () => {
    const clock = new FakeClock();
    let reg = 0;
    function* steps() {
      reg = 1;
      const a = yield* pollSteps({ read: () => reg, done: (v) => v === 1, timeoutMs: 10, intervalMs: 1, clock });
      return a.ok ? "done" : "timeout";
    }
    expect(runSteps(steps())).toBe("done");
  });
});
