/**
 * Runs every fuzz target (test/fuzz/targets.ts). CI: 100,000 cases per target. A soak:
 * TPMKIT_FUZZ_SECONDS=N runs each target for N seconds, TPMKIT_FUZZ_CASES=N for N cases;
 * TPMKIT_FUZZ_SEED=N changes the seed. Prints one JSON line per target:
 * {"case":"fuzz","target":...,"cases":N,"ms":N}.
 *
 * The servers and the swtpm client run over in-process sockets: node:net is wrapped so each
 * net.Server created is recorded (its 'connection' event is then driven with a FakeSocket), and a
 * connection to a registered /fuzz/ path gets a FakeSocket.
 */
import { describe, expect, it, vi } from "vitest";

vi.mock("node:net", async (importOriginal) => {
  const net = await importOriginal<typeof import("node:net")>();
  const { netHooks } = await import("./fuzz/net-hooks.js");
  const createServer = ((...a: Parameters<typeof net.createServer>) => {
    const s = net.createServer(...a);
    netHooks.servers.push(s);
    return s;
  }) as typeof net.createServer;
  const createConnection = ((o: { path?: string }, ...rest: unknown[]) => {
    const f = typeof o === "object" && o?.path ? netHooks.connect.get(o.path) : undefined;
    if (f) return f();
    return (net.createConnection as (...a: unknown[]) => unknown)(o, ...rest);
  }) as typeof net.createConnection;
  return { ...net, default: { ...net, createServer, createConnection }, createServer, createConnection, connect: createConnection };
});

const { TARGETS } = await import("./fuzz/targets.js");
const { Rng } = await import("./fuzz/mutate.js");

const seconds = Number(process.env.TPMKIT_FUZZ_SECONDS ?? 0);
const envCases = process.env.TPMKIT_FUZZ_CASES === undefined ? undefined : Number(process.env.TPMKIT_FUZZ_CASES);
const seed = Number(process.env.TPMKIT_FUZZ_SEED ?? 0x7b3c);


describe("fuzz targets (issue 9): only typed errors or well-formed results, no hang, usable after", () => {
  for (const target of TARGETS) {
    const cases = envCases ?? target.ciCases ?? 100_000;
    const timeout = seconds > 0 ? seconds * 1000 + 60_000 : Math.max(60_000, cases * 5);
    it(target.name, { timeout }, async () => {
      const t0 = performance.now();
      // Errors are the common case here; capturing deep stacks for each dominates the time.
      // A failure names its input, and replaying that input alone (TPMKIT_FUZZ_STACK=1) gives the full stack.
      const limit = Error.stackTraceLimit;
      if (!process.env.TPMKIT_FUZZ_STACK) Error.stackTraceLimit = 2;
      const n = await target.run(new Rng(seed ^ target.name.length * 0x9e3779b1), cases, seconds > 0 ? Date.now() + seconds * 1000 : undefined);
      Error.stackTraceLimit = limit;
      const ms = Math.round(performance.now() - t0);
      process.stdout.write(`${JSON.stringify({ case: "fuzz", target: target.name, cases: n, ms })}\n`);
      expect(n).toBeGreaterThanOrEqual(seconds > 0 ? 1 : cases);
    });
  }
});
