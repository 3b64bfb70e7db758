/**
 * Runs fuzz targets (test/fuzz/targets.ts) as vitest tests; the fuzz test files split the targets
 * so vitest spreads them over its workers. Cases per target: TPMKIT_FUZZ_CASES (CI sets 100000);
 * without it, a plain local `npm test` runs DEFAULT_CASES each. A soak: TPMKIT_FUZZ_SECONDS=N runs
 * each target for N seconds; TPMKIT_FUZZ_SEED=N changes the seed. Prints one JSON line per
 * target: {"case":"fuzz","target":...,"cases":N,"ms":N}.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "./mutate.js";
import type { FuzzTarget } from "./targets.js";

/** Cases per target when TPMKIT_FUZZ_CASES is not set (a local `npm test`; CI runs 100,000). */
export const DEFAULT_CASES = 20_000;

/** Declares one test per target. */
export function fuzzTests(title: string, targets: readonly FuzzTarget[]): void {
  const seconds = Number(process.env.TPMKIT_FUZZ_SECONDS ?? 0);
  const cases = process.env.TPMKIT_FUZZ_CASES === undefined ? DEFAULT_CASES : Number(process.env.TPMKIT_FUZZ_CASES);
  const seed = Number(process.env.TPMKIT_FUZZ_SEED ?? 0x7b3c);
  describe(`fuzz targets (issue 9), ${title}: only typed errors or well-formed results, no hang, usable after`, () => {
    for (const target of targets) {
      const timeout = seconds > 0 ? seconds * 1000 + 60_000 : Math.max(60_000, cases * 2);
      it(target.name, { timeout }, async () => {
        const t0 = performance.now();
        // Errors are the common case here; capturing deep stacks for each dominates the time.
        // A failure names its input, and replaying that input alone (TPMKIT_FUZZ_STACK=1) gives the full stack.
        const limit = Error.stackTraceLimit;
        if (!process.env.TPMKIT_FUZZ_STACK) Error.stackTraceLimit = 0;
        let n: number;
        try {
          n = await target.run(new Rng(seed ^ (target.name.length * 0x9e3779b1)), cases, seconds > 0 ? Date.now() + seconds * 1000 : undefined);
        } finally {
          Error.stackTraceLimit = limit;
        }
        const ms = Math.round(performance.now() - t0);
        process.stdout.write(`${JSON.stringify({ case: "fuzz", target: target.name, cases: n, ms })}\n`);
        expect(n).toBeGreaterThanOrEqual(seconds > 0 ? 1 : cases);
      });
    }
  });
}
