/**
 * Issue 9, finding 4: acknowledged NV writes survive SIGKILL. A child process writes an NV
 * counter through SoftTpm + FileStorage over memory() and prints each acknowledged value; the
 * parent kills it with SIGKILL at random points (during start-up, between and inside saves),
 * restarts it, and checks that the state file always loads (no torn file) and holds a counter
 * at least as high as the last value acknowledged (no acknowledged write lost).
 *
 * The child is TypeScript; it is bundled once with esbuild (the bundler vitest itself runs on),
 * so the test does not depend on dist/ being built. TPMKIT_SOAK_KILLS raises the number of kills.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { bundleChild, killCount, rng } from "./support/kill-harness.js";
import { FileStorage, SoftTpm, Tpm, TpmAbortError, memory } from "../src/index.js";
import { decodeState } from "../src/softtpm/state.js";

const INDEX = 0x01500010;
const KILLS = killCount(30);
let dir = "";
let child = "";

let cleanup = (): void => {};
beforeAll(async () => {
  ({ dir: dir, child, cleanup } = await bundleChild("durability-child.ts", "tpmkit-durability-"));
});
afterAll(() => cleanup());


interface Run {
  start: bigint | undefined;
  acked: bigint | undefined;
  signal: NodeJS.Signals | null;
}

/** Runs the child over `state` and SIGKILLs it `delayMs` after its first acknowledged write (or after spawn if `early`). */
function runOnce(state: string, delayMs: number, early: boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, state], { stdio: ["ignore", "pipe", "pipe"] });
    const run: Run = { start: undefined, acked: undefined, signal: null };
    let buf = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      if (!timer) timer = setTimeout(() => p.kill("SIGKILL"), delayMs);
    };
    const guard = setTimeout(() => p.kill("SIGKILL"), 10_000); // bound: a child that never prints
    if (early) arm();
    p.stdout.setEncoding("utf8");
    p.stdout.on("data", (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const [k, v] = line.split(" ");
        if (k === "start") run.start = BigInt(v!);
        if (k === "ack") {
          run.acked = BigInt(v!);
          arm(); // a late kill lands while writes (and their saves) run
        }
      }
    });
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("close", (_code, signal) => {
      clearTimeout(timer);
      clearTimeout(guard);
      run.signal = signal;
      if (signal !== "SIGKILL") reject(new Error(`child ended without SIGKILL (code ${_code}): ${err}`));
      else resolve(run);
    });
  });
}

/** The counter in the state file, read the way a restarted SoftTpm reads it (throws if torn). */
async function storedCounter(state: string): Promise<bigint | undefined> {
  const blob = await new FileStorage(state).load();
  if (blob === undefined) return undefined;
  const nv = decodeState(blob).nv.find((n) => n.handle === INDEX);
  if (!nv) return undefined;
  return new DataView(nv.data.buffer, nv.data.byteOffset, 8).getBigUint64(0);
}

describe("kill -9 durability (SoftTpm over FileStorage)", () => {
  it(`SIGKILL at ${KILLS} random points: every state file loads and no acknowledged write is lost`, async () => {
    const state = join(dir, "tpm.state");
    const random = rng(Number(process.env.TPMKIT_SOAK_SEED ?? 0x9e3779b9));
    let lastAcked = -1n;
    let acks = 0n;
    let killsAfterAck = 0;
    for (let k = 0; k < KILLS; k++) {
      const early = random() < 0.15;
      const delay = Math.floor(random() * (early ? 120 : 40));
      const before = lastAcked;
      const r = await runOnce(state, delay, early);
      // the restarted TPM started from what it had acknowledged
      if (r.start !== undefined) expect(r.start).toBeGreaterThanOrEqual(before < 0n ? 0n : before);
      if (r.acked !== undefined) {
        acks += r.acked - (r.start ?? 0n);
        lastAcked = r.acked;
        killsAfterAck++;
      }
      const stored = await storedCounter(state); // throws on a torn file
      if (lastAcked >= 0n) expect(stored).toBeGreaterThanOrEqual(lastAcked);
      // the stored value is one that was written: at most one beyond what was acknowledged
      if (stored !== undefined && r.acked !== undefined) expect(stored).toBeLessThanOrEqual(r.acked + 1n);
      // no temporary file survives a restart: each start removes the dead child's
      if (k > 0 && r.start !== undefined) expect(readdirSync(dir).filter((n) => n.endsWith(".tmp")).length).toBeLessThanOrEqual(1);
    }
    expect(killsAfterAck).toBeGreaterThanOrEqual(KILLS / 2);
    expect(acks).toBeGreaterThan(0n);
    // a last clean open sees every acknowledged write
    const tpm = await Tpm.open(memory({ backend: new SoftTpm({ storage: new FileStorage(state) }) }));
    const d = await tpm.nvRead(INDEX, { authHandle: "owner" });
    expect(new DataView(d.buffer, d.byteOffset, 8).getBigUint64(0)).toBeGreaterThanOrEqual(lastAcked);
    await tpm.close();
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    console.log(`durability: ${KILLS} kills, ${killsAfterAck} after acknowledged writes, ${acks} writes acknowledged, 0 lost, 0 torn`);
  }, Math.max(20_000, KILLS * 500));
});

describe("a tight loop of awaited commands lets the event loop run (Tpm over memory(SoftTpm))", () => {
  const BOUND = 100_000; // commands; a 4 ms slice holds a few hundred on a fast machine

  it("setTimeout(0) fires during `for (;;) await tpm.getRandom(8)`", async () => {
    const tpm = await Tpm.open(memory({ backend: new SoftTpm({ seed: "loop" }) }));
    let fired = false;
    let n = 0;
    setTimeout(() => (fired = true), 0);
    while (!fired && n < BOUND) {
      await tpm.getRandom(8);
      n++;
    }
    expect(fired).toBe(true);
    expect(n).toBeLessThan(BOUND);
    await tpm.close();
  });

  it("AbortSignal.timeout(10) ends the loop with TpmAbortError", async () => {
    const tpm = await Tpm.open(memory({ backend: new SoftTpm({ seed: "loop" }) }));
    const signal = AbortSignal.timeout(10);
    let n = 0;
    const loop = async () => {
      for (; n < BOUND; n++) await tpm.getRandom(8, { signal });
    };
    await expect(loop()).rejects.toBeInstanceOf(TpmAbortError);
    expect(n).toBeLessThan(BOUND);
    await tpm.close();
  });
});
