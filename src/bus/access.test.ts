import { describe, it, expect } from "vitest";
import { mapMaybe, quietly, runSteps, withSignal, type Steps } from "./access.js";

describe("the sync/async bridge", () => {
  it("mapMaybe stays synchronous for a plain value and maps a promise", async () => {
    expect(mapMaybe(2, (x) => x * 3)).toBe(6);
    const p = mapMaybe(Promise.resolve(2), (x) => x * 3);
    expect(p).toBeInstanceOf(Promise);
    expect(await p).toBe(6);
  });

  function* sum(values: (number | Promise<number>)[]): Steps<number> {
    let total = 0;
    for (const v of values) total += (yield v) as number;
    return total;
  }

  it("runSteps runs a sequence of plain values synchronously and awaits only from the first promise on", async () => {
    expect(runSteps(sum([1, 2, 3]))).toBe(6);
    const r = runSteps(sum([1, Promise.resolve(2), 3]));
    expect(r).toBeInstanceOf(Promise);
    expect(await r).toBe(6);
  });

  it("runSteps throws synchronously while synchronous, and throws a rejection into the sequence", async () => {
    function* failing(): Steps<number> {
      yield 1;
      throw new Error("sync fault");
    }
    expect(() => runSteps(failing())).toThrow("sync fault");
    function* catching(): Steps<string> {
      try {
        yield Promise.reject(new Error("bus fault"));
        return "not reached";
      } catch (e) {
        return `caught ${(e as Error).message}`;
      }
    }
    expect(await runSteps(catching())).toBe("caught bus fault");
  });

  it("quietly drops an error, synchronous or asynchronous, and ends the sequence there", async () => {
    const done: string[] = [];
    function* cleanup(fail: () => unknown): Steps<void> {
      yield fail();
      done.push("second");
    }
    expect(
      runSteps(
        quietly(
          cleanup(() => {
            throw new Error("x");
          }),
        ),
      ),
    ).toBeUndefined();
    await runSteps(quietly(cleanup(() => Promise.reject(new Error("y")))));
    expect(done).toEqual([]);
  });

  it("withSignal passes plain values through and rejects a pending access when the signal fires", async () => {
    const ac = new AbortController();
    expect(withSignal(4, ac.signal)).toBe(4);
    const p = withSignal(new Promise<number>(() => {}), ac.signal);
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    await expect(withSignal(Promise.resolve(9), new AbortController().signal)).resolves.toBe(9);
  });
});
