import { afterEach, describe, expect, it, vi } from "vitest";
import { systemClock } from "./clock.js";
import { Chip } from "./chip.js";
import { memory } from "../transports/memory/index.js";
import { FakeTpmBackend } from "../testing/fake-backend.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("systemClock: delays past setTimeout's 2^31 - 1 ms", () => {
  it("a timer of 2^32 ms does not fire early (Node would clamp one setTimeout to 1 ms)", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    systemClock.setTimer(2 ** 32, fired);
    vi.advanceTimersByTime(2 ** 31);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2 ** 32 - 2 ** 31 - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("a sleep of 2^32 ms resolves only then, and a cleared long timer never fires", async () => {
    vi.useFakeTimers();
    let slept = false;
    void systemClock.sleep(2 ** 32).then(() => (slept = true));
    const fired = vi.fn();
    systemClock.setTimer(2 ** 33, fired).clear();
    await vi.advanceTimersByTimeAsync(2 ** 32 - 1);
    expect(slept).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(slept).toBe(true);
    await vi.advanceTimersByTimeAsync(2 ** 33);
    expect(fired).not.toHaveBeenCalled();
  });

  it("no setTimeout ever gets more than 2^31 - 1 ms, and a command with timeoutMs 2^32 is not timed out at once", async () => {
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, "setTimeout").mockImplementation(((fn: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      return real(fn, Math.min(ms ?? 0, 10));
    }) as typeof setTimeout);
    try {
      // answers after 30 ms: a watchdog clamped to 1 ms would time the command out
      const backend = new FakeTpmBackend({ before: () => new Promise<void>((r) => real(r, 30)) });
      const chip = new Chip(memory({ backend }));
      await chip.open();
      const rsp = await chip.transmit(Uint8Array.from([0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8]), { timeoutMs: 2 ** 32 });
      expect(rsp.length).toBeGreaterThanOrEqual(10);
      await chip.close();
    } finally {
      spy.mockRestore();
    }
    expect(Math.max(...delays)).toBeLessThanOrEqual(2 ** 31 - 1);
  });
});
