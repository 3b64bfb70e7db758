/**
 * Issue 11 item 8: kill -9 during REE FS writes leaves every object old or new, never torn. A
 * child process (test/support/ree-fs-child.ts) writes numbered 512-byte objects, each carrying its
 * own SHA-256, round after round through ReeFs; the parent SIGKILLs it at random points (during
 * start-up, between and inside writes), then checks every file: whole, its checksum right, and
 * holding either the last acknowledged version of that object or the one being written at the
 * kill. Stale temporary files are removed by the next start.
 *
 * The child is bundled once with esbuild (as test/durability.test.ts does), so dist/ is not needed.
 * TPMKIT_SOAK_KILLS raises the number of kills; TPMKIT_SOAK_SEED replays a run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { bundleChild, killCount, rng } from "./support/kill-harness.js";
import { ReeFs } from "../src/node/ree-fs.js";

const OBJECTS = 8; // as the child
const KILLS = killCount(24);
let work = "";
let child = "";

let cleanup = (): void => {};
beforeAll(async () => {
  ({ dir: work, child, cleanup } = await bundleChild("ree-fs-child.ts", "tpmkit-reefs-kill-"));
});
afterAll(() => cleanup());


interface Run {
  start: number | undefined;
  acks: [round: number, index: number][];
}

/** Runs the child on `dir`, SIGKILLs it `delayMs` after its first ack (or after spawn if `early`). */
function runOnce(dir: string, delayMs: number, early: boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir], { stdio: ["ignore", "pipe", "pipe"] });
    const run: Run = { start: undefined, acks: [] };
    let buf = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer ??= setTimeout(() => p.kill("SIGKILL"), delayMs);
    };
    const guard = setTimeout(() => p.kill("SIGKILL"), 10_000); // bound: a child that never prints
    if (early) arm();
    p.stdout.setEncoding("utf8");
    p.stdout.on("data", (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const [k, a, b] = buf.slice(0, i).split(" ");
        buf = buf.slice(i + 1);
        if (k === "start") run.start = Number(a);
        if (k === "ack") {
          run.acks.push([Number(a), Number(b)]);
          arm();
        }
      }
    });
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(guard);
      if (signal !== "SIGKILL") reject(new Error(`child ended without SIGKILL (code ${code}): ${err}`));
      else resolve(run);
    });
  });
}

/** The object file's (index, round), or throws if it is torn (wrong size or checksum). */
function readObject(dir: string, i: number): { index: number; round: number } | undefined {
  let b: Buffer;
  try {
    b = readFileSync(join(dir, `obj${i}`));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  if (b.length !== 512) throw new Error(`obj${i} is ${b.length} bytes: torn`);
  const sum = createHash("sha256").update(b.subarray(0, 480)).digest();
  if (!sum.equals(b.subarray(480))) throw new Error(`obj${i} checksum mismatch: torn`);
  return { index: b.readUInt32BE(0), round: b.readUInt32BE(4) };
}

describe("kill -9 during ReeFs writes", () => {
  it(`SIGKILL at ${KILLS} random points: every object is whole, old or new, never torn`, async () => {
    const dir = join(work, "tee");
    const random = rng(Number(process.env.TPMKIT_SOAK_SEED ?? 0x7ee5f5));
    const acked: (number | undefined)[] = new Array(OBJECTS).fill(undefined);
    let killsAfterAck = 0;
    let writes = 0;
    let oldSeen = 0;
    for (let k = 0; k < KILLS; k++) {
      const early = random() < 0.15;
      const r = await runOnce(dir, Math.floor(random() * (early ? 150 : 25)), early);
      // the write in flight at the kill: the one after the last ack, or the first of this run
      let inFlight: [number, number] | undefined;
      if (r.acks.length > 0) {
        killsAfterAck++;
        writes += r.acks.length;
        for (const [round, i] of r.acks) acked[i] = round;
        const [round, i] = r.acks[r.acks.length - 1]!;
        inFlight = i + 1 < OBJECTS ? [round, i + 1] : [round + 1, 0];
      } else if (r.start !== undefined) {
        inFlight = [r.start, 0];
      }
      for (let i = 0; i < OBJECTS; i++) {
        const o = readObject(dir, i); // throws when torn
        const allowed = new Set<number | undefined>([acked[i]]);
        if (inFlight && inFlight[1] === i) allowed.add(inFlight[0]);
        expect(o?.index ?? i).toBe(i);
        expect(allowed.has(o?.round), `obj${i} holds round ${o?.round}; allowed ${[...allowed].join(",")}`).toBe(true);
        if (inFlight && inFlight[1] === i && o?.round === acked[i]) oldSeen++;
        if (o) acked[i] = o.round; // what is on disk is now the old version
      }
    }
    expect(killsAfterAck).toBeGreaterThanOrEqual(KILLS / 2);
    // a clean ReeFs on the directory removes the dead children's temporary files and lists only the objects
    const names = await new ReeFs(dir).list();
    expect(names.sort()).toEqual(Array.from({ length: OBJECTS }, (_, i) => `obj${i}`).filter((n) => readdirSync(dir).includes(n)).sort());
    expect(readdirSync(dir).filter((n) => n.endsWith(".rfs-tmp"))).toEqual([]);
    console.log(`ree-fs kill: ${KILLS} kills, ${killsAfterAck} after acknowledged writes, ${writes} writes acknowledged, ${oldSeen} kills left the old version of the object in flight, 0 torn`);
  }, 30_000);
});
