// tpmkit TEE mediator throughput (GitHub issue 11, point 9). Prints one JSON object per line.
//
//   npm run build && node bench/tee-mediator.mjs
//
// Environment:
//   BENCH_N        commands per guest per timed run (default 200)
//   BENCH_GUESTS   guests in the parallel run (default 64)
//   BENCH_ROUNDS   interleaved rounds; figures are medians over rounds (default 5)
//
// Each guest: TeeMediator guest → ftpmTee (kernel client) → its OP-TEE partition → its fTPM TA
// (SoftTpm) with its own tee-supplicant over in-memory REE FS. The timed command is TPM2_GetRandom(16)
// through tpm.transmit (no NV write). Lines: "run":"single" (1 guest, N commands), "run":"parallel"
// (BENCH_GUESTS guests, N commands each, all at once), and the summary with
// ratio = parallel per-command throughput / single per-command throughput (target >= 0.8: the
// mediator's per-guest state adds no super-linear cost; 2 cores are shared with the event loop,
// so parallel guests cannot go faster than one).
import { loadavg } from "node:os";
import { OpTee, TeeMediator, Tpm, ftpmTa, ftpmTee } from "../dist/index.js";

const N = Number(process.env.BENCH_N ?? 200);
const GUESTS = Number(process.env.BENCH_GUESTS ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
for (const [k, v] of Object.entries({ N, GUESTS, ROUNDS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/tee-mediator: ${k} must be a positive integer`);
}

const cmd = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]); // TPM2_GetRandom(16)

async function open(count) {
  const tee = new OpTee({ tas: [ftpmTa({ early: true })], virtualization: true, maxGuests: Math.max(64, count) });
  const mediator = new TeeMediator(tee);
  const guests = [];
  for (let i = 0; i < count; i++) guests.push(await mediator.createGuest());
  const tpms = await Promise.all(guests.map((g) => Tpm.open(ftpmTee({ tee: g }))));
  for (const t of tpms) for (let i = 0; i < 5; i++) await t.transmit(cmd); // warm up
  return { mediator, guests, tpms };
}

async function run(tpms) {
  const t0 = process.hrtime.bigint();
  await Promise.all(
    tpms.map(async (t) => {
      for (let i = 0; i < N; i++) {
        const r = await t.transmit(cmd);
        if (r[9] !== 0) throw new Error("GetRandom failed");
      }
    }),
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (tpms.length * N) / s;
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const single = await open(1);
const parallel = await open(GUESTS);
const s1 = [];
const sp = [];
for (let r = 0; r < ROUNDS; r++) {
  s1.push(await run(single.tpms));
  sp.push(await run(parallel.tpms));
}
const one = median(s1);
const many = median(sp);
console.log(JSON.stringify({ bench: "tee-mediator", run: "single", guests: 1, commandsPerGuest: N, commandsPerSecond: Math.round(one) }));
console.log(JSON.stringify({ bench: "tee-mediator", run: "parallel", guests: GUESTS, commandsPerGuest: N, commandsPerSecond: Math.round(many) }));
console.log(JSON.stringify({ bench: "tee-mediator", summary: true, ratio: Number((many / one).toFixed(3)), target: 0.8, pass: many / one >= 0.8, rounds: ROUNDS, load: loadavg()[0] }));
for (const t of [...single.tpms, ...parallel.tpms]) await t.close();
for (const m of [single, parallel]) for (const g of m.guests) await m.mediator.destroyGuest(g);
