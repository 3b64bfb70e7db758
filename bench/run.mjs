// tpmkit benchmark: prints one JSON object per line.
//   npm run bench            (builds first; N via BENCH_N, default 100000)
// Measured paths, all over the same SoftTpm in the same run:
//   softtpm-direct   await softTpm.execute(bytes)          (the ceiling: no chip, no codec)
//   chip-raw         await chip.transmit(bytes)            (Chip → memory transport → SoftTpm)
//   tpm-typed        await tpm.getRandom(16) etc.          (Tpm codec → Chip → memory → SoftTpm)
// and two ratios: chip_overhead = direct ops/s ÷ chip-raw ops/s (what the Chip adds: queue,
// timeouts, checks; target ≤ 2) and typed_overhead = direct ÷ typed (the Chip plus the codec).
import { SoftTpm, Tpm, memory } from "../dist/index.js";

const N = Number(process.env.BENCH_N ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function time(fn, n) {
  for (let i = 0; i < Math.min(2000, n); i++) await fn(); // warm-up
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  const ns = Number(process.hrtime.bigint() - t0);
  return { ops_per_s: Math.round((n / ns) * 1e9), us_per_op: +(ns / n / 1000).toFixed(3) };
}

async function best(fn, n) {
  let top;
  for (let r = 0; r < ROUNDS; r++) {
    const x = await time(fn, n);
    if (!top || x.ops_per_s > top.ops_per_s) top = x;
  }
  return top;
}

const hex = (s) => Uint8Array.from(s.match(/../g).map((b) => parseInt(b, 16)));
const GETRANDOM16 = hex("80010000000c0000017b0010");
const PCRREAD = hex("80010000001400" + "00017e00000001000b03010000");
const PCREXTEND = hex("80020000004100000182" + "00000010" + "00000009" + "40000009000001" + "0000" + "00000001000b" + "00".repeat(31) + "01");

const soft = new SoftTpm();
const tpm = await Tpm.open(memory({ backend: soft }));
const chip = tpm.chip;
const digest = new Uint8Array(32).fill(7);

const rows = [];
for (const [name, bytes, typed] of [
  ["getrandom16", GETRANDOM16, () => tpm.getRandom(16)],
  ["pcr_extend_sha256", PCREXTEND, () => tpm.pcrExtend(16, { sha256: digest })],
  ["pcr_read_sha256_1", PCRREAD, () => tpm.pcrRead({ sha256: [0] })],
]) {
  const direct = await best(() => soft.execute(bytes, 0), N);
  const raw = await best(() => chip.transmit(bytes), N);
  const t = await best(typed, N);
  rows.push({ bench: name, path: "softtpm-direct", n: N, ...direct });
  rows.push({ bench: name, path: "chip-raw", n: N, ...raw });
  rows.push({ bench: name, path: "chip-raw-ratio", chip_overhead: +(direct.ops_per_s / raw.ops_per_s).toFixed(2) });
  rows.push({ bench: name, path: "tpm-typed", n: N, ...t, typed_overhead: +(direct.ops_per_s / t.ops_per_s).toFixed(2) });
}
await tpm.close();
for (const r of rows) console.log(JSON.stringify(r));
