// tpmkit durability benchmark (issue 9, finding 4): prints one JSON object per line.
//   npm run build && node --expose-gc bench/durability.mjs
// Paths, all in the same run, interleaved over BENCH_ROUNDS rounds (median reported):
//   nv_write/durable      await tpm.nvWrite(8 bytes) over memory(SoftTpm + FileStorage): each
//                         response waits for temp write + fsync + rename + directory fsync
//   nv_write/volatile     the same over memory(SoftTpm) without storage (nothing saved)
//   getrandom/yielding    await tpm.getRandom(8) in a tight loop, memory() default (yields a
//                         macrotask after MEMORY_YIELD_SLICE_MS of commands)
//   getrandom/no-yield    the same with memory({ yieldSliceMs: Infinity }) (the loop before the
//                         fix: timers starve)
// Ratios: durable_cost = volatile ÷ durable writes/s; yield_cost = no-yield ÷ yielding cmd/s
// (medians), yield_cost_paired = the same ratio per round, median over rounds.
// BENCH_N: commands per timed run for the in-memory paths (default 50000); BENCH_N_DURABLE for
// the durable path (default 300; each is an fsync). TPMKIT_STATE_DIR: where the state file goes
// (default the OS temp dir; put it on the disk you care about).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStorage, MEMORY_YIELD_SLICE_MS, SoftTpm, Tpm, memory } from "../dist/index.js";

const N = Number(process.env.BENCH_N ?? 50_000);
const N_DURABLE = Number(process.env.BENCH_N_DURABLE ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const INDEX = 0x01500020;
const dir = mkdtempSync(join(process.env.TPMKIT_STATE_DIR ?? tmpdir(), "tpmkit-bench-dur-"));

async function time(fn, n) {
  for (let i = 0; i < Math.min(n, 200); i++) await fn(i); // warm-up
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn(i);
  return Number(process.hrtime.bigint() - t0);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function nvTpm(storage) {
  const tpm = await Tpm.open(memory({ backend: new SoftTpm(storage ? { storage } : {}) }));
  await tpm.nvDefineSpace({ index: INDEX, size: 8 });
  return tpm;
}
const buf = new Uint8Array(8);
const write = (tpm) => (i) => {
  new DataView(buf.buffer).setUint32(4, i);
  return tpm.nvWrite(INDEX, buf, { authHandle: "owner" });
};

try {
  const durable = await nvTpm(new FileStorage(join(dir, "tpm.state")));
  const volatile = await nvTpm(undefined);
  const yielding = await Tpm.open(memory({ backend: new SoftTpm() }));
  const starving = await Tpm.open(memory({ backend: new SoftTpm(), yieldSliceMs: Infinity }));
  const paths = [
    ["nv_write", "durable", N_DURABLE, write(durable)],
    ["nv_write", "volatile", N, write(volatile)],
    ["getrandom", "yielding", N, () => yielding.getRandom(8)],
    ["getrandom", "no-yield", N, () => starving.getRandom(8)],
  ];
  const runs = new Map(paths.map(([b, p]) => [`${b}/${p}`, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < paths.length; k++) {
      const [b, p, n, fn] = paths[(k + r) % paths.length];
      runs.get(`${b}/${p}`).push((await time(fn, n)) / n / 1000);
    }
  }
  const rate = {};
  for (const [b, p, n] of paths) {
    const us = runs.get(`${b}/${p}`);
    const m = median(us);
    rate[`${b}/${p}`] = 1e6 / m;
    console.log(JSON.stringify({ bench: b, path: p, n, rounds: ROUNDS, ops_per_s: Math.round(1e6 / m), us_per_op: +m.toFixed(3), runs_us: us.map((x) => +x.toFixed(3)) }));
  }
  console.log(
    JSON.stringify({
      bench: "durability-ratios",
      durable_cost: +(rate["nv_write/volatile"] / rate["nv_write/durable"]).toFixed(1),
      yield_cost: +(rate["getrandom/no-yield"] / rate["getrandom/yielding"]).toFixed(3),
      // the same ratio within each round (the two paths ran seconds apart under the same load), median over rounds
      yield_cost_paired: +median(runs.get("getrandom/yielding").map((y, i) => y / runs.get("getrandom/no-yield")[i])).toFixed(3),
      yield_slice_ms: MEMORY_YIELD_SLICE_MS,
      state_dir: dir,
    }),
  );
  for (const t of [durable, volatile, yielding, starving]) await t.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
