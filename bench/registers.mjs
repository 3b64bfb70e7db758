// tpmkit register-level benchmark (GitHub issue 4, point 8). Prints one JSON object per line.
//
//   npm run build && node --expose-gc bench/registers.mjs
//
// Environment:
//   BENCH_N        commands per timed run (default 5000)
//   BENCH_ROUNDS   interleaved rounds; times are medians over rounds (default 7)
//
// Part 1, bus transactions per command (deterministic: a FakeClock with auto-advance, so the
// driver's polls are the ones a backend that answers at once needs). Lines "bench":"tis-bus"
// and "crb-bus", one per command size and burst setting, through SoftTpm:
//   transactions   register reads + register writes + FIFO/buffer bursts for the whole command
//   minimum        the floor for that burst size (see bench/README.md)
//   over_minimum   transactions − minimum
// Commands: 12 bytes (GetRandom(16)), 1024 bytes (TPM2_Hash of 1006 bytes, the largest Hash
// SoftTpm takes: TPM_PT_INPUT_BUFFER = 1024), 4096 bytes (a Hash that size; the TPM answers with
// a 10-byte error, which is still a full 4 KiB transfer over the bus). CRB's buffer is QEMU's
// 3968 bytes (0xF80), so its largest row is 3968, not 4096.
//
// Part 2, time per command for a 1 KiB command (the Hash above), wall clock, system clock:
//   memory(SoftTpm), tis({ mmio: TisDevice(SoftTpm) }), crb({ mmio: CrbDevice(SoftTpm) })
// each through transport.send directly ("layer":"transport") and through the Chip
// (tpm.transmit, "layer":"chip"). The last line has the ratios to memory (targets: TIS ≤ 3×,
// CRB ≤ 1.5×): the ratio of each round (paths run back to back), then the median over rounds.
import { loadavg } from "node:os";
import { CrbDevice, FakeClock, SoftTpm, TisDevice, Tpm, countMmio, crb, memory, mmioStart, systemClock, tis } from "../dist/index.js";

const N = Number(process.env.BENCH_N ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error("BENCH_N and BENCH_ROUNDS must be positive integers");
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Commands (TPM 2.0 Part 3 §16.1 GetRandom, §15.4 Hash)

/** TPM2_GetRandom(16): 12 bytes. */
const GETRANDOM16 = Uint8Array.from([0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x10]);

/** TPM2_Hash(data, TPM_ALG_SHA256, TPM_RH_NULL) with the command `size` bytes long (data = size − 18). */
function hashCommand(size) {
  const n = size - 18;
  const c = new Uint8Array(size);
  const v = new DataView(c.buffer);
  v.setUint16(0, 0x8001); // TPM_ST_NO_SESSIONS
  v.setUint32(2, size);
  v.setUint32(6, 0x17d); // TPM_CC_Hash
  v.setUint16(10, n); // TPM2B_MAX_BUFFER.size
  for (let i = 0; i < n; i++) c[12 + i] = i & 0xff;
  v.setUint16(12 + n, 0x000b); // TPM_ALG_SHA256
  v.setUint32(14 + n, 0x40000007); // TPM_RH_NULL
  return c;
}
const commandOf = (size) => (size === 12 ? GETRANDOM16 : hashCommand(size));
const rcOf = (r) => ((r[6] << 24) | (r[7] << 16) | (r[8] << 8) | r[9]) >>> 0;
const hex32 = (x) => "0x" + x.toString(16).padStart(8, "0");

/** A started SoftTpm (TPM2_Startup(CLEAR) through the memory transport). */
async function startedSoftTpm() {
  const soft = new SoftTpm();
  const tpm = await Tpm.open(memory({ backend: soft }));
  return { soft, tpm };
}

// ---------------------------------------------------------------------------------------------
// Part 1: bus transactions

/** Floor of a TIS command (PTP §6.5.2): FIFO bursts for the data + 6 unavoidable accesses. */
function tisMinimum(burst, commandSize, responseSize) {
  const chunks = (n) => (burst === "dynamic" ? (n > 0 ? 1 : 0) : Math.ceil(n / burst));
  // Command in as few bursts as the burst count allows; response header (10 bytes) first, then
  // the rest (its length is only known from the header). The 6: locality request, grant read,
  // GO, one status read showing dataAvail, commandReady, relinquish.
  return chunks(commandSize) + chunks(Math.min(10, responseSize)) + chunks(Math.max(0, responseSize - 10)) + 6;
}

/**
 * Floors of a CRB command. `data_path` = command copy, START write, one START read, response
 * header copy, response rest copy (5). `kernel_sequence` adds what tpm_crb does around every
 * command (Linux drivers/char/tpm/tpm_crb.c and tpm-chip.c): locality request (write + read), cmdReady (write + read),
 * CTRL_CANCEL = 0, CTRL_STS error check, goIdle (write + read), relinquish (write + read): 15.
 */
const CRB_DATA_PATH = 5;
const CRB_KERNEL_SEQUENCE = 15;

async function tisBus(burst, size) {
  const clock = new FakeClock({ auto: true });
  const { soft, tpm } = await startedSoftTpm();
  const device = new TisDevice({ backend: soft, clock, ...(burst === "dynamic" ? {} : { burstCount: burst }) });
  const counted = countMmio(device);
  const t = tis({ mmio: counted, clock });
  await t.open({ clock, locality: 0 });
  const cmd = commandOf(size);
  const signal = new AbortController().signal;
  await t.send(cmd, { signal, locality: 0, timeoutMs: 120_000, clock }); // first command: same path, not counted
  counted.reset();
  const r = await t.send(cmd, { signal, locality: 0, timeoutMs: 120_000, clock });
  const c = { ...counted.counts };
  await t.close?.();
  await tpm.close();
  const minimum = tisMinimum(burst, size, r.length);
  return {
    bench: "tis-bus",
    burst,
    command_bytes: size,
    response_bytes: r.length,
    rc: hex32(rcOf(r)),
    transactions: counted.transactions,
    register_reads: c.reads,
    register_writes: c.writes,
    fifo_bursts: c.fifoReads + c.fifoWrites,
    minimum,
    over_minimum: counted.transactions - minimum,
  };
}

async function crbBus(size) {
  const clock = new FakeClock({ auto: true });
  const { soft, tpm } = await startedSoftTpm();
  const device = new CrbDevice({ backend: soft, clock });
  const counted = countMmio(device);
  const t = crb({ mmio: counted, start: mmioStart(), clock });
  await t.open({ clock, locality: 0 });
  const cmd = commandOf(size);
  const signal = new AbortController().signal;
  await t.send(cmd, { signal, locality: 0, timeoutMs: 120_000, clock });
  counted.reset();
  const r = await t.send(cmd, { signal, locality: 0, timeoutMs: 120_000, clock });
  const c = { ...counted.counts };
  await t.close?.();
  await tpm.close();
  return {
    bench: "crb-bus",
    command_bytes: size,
    response_bytes: r.length,
    rc: hex32(rcOf(r)),
    transactions: counted.transactions,
    register_reads: c.reads,
    register_writes: c.writes,
    buffer_copies: c.fifoReads + c.fifoWrites,
    minimum_data_path: CRB_DATA_PATH,
    minimum_kernel_sequence: CRB_KERNEL_SEQUENCE,
    over_kernel_sequence: counted.transactions - CRB_KERNEL_SEQUENCE,
  };
}

for (const burst of [64, "dynamic"]) {
  for (const size of [12, 1024, 4096]) console.log(JSON.stringify(await tisBus(burst, size)));
}
for (const size of [12, 1024, 3968]) console.log(JSON.stringify(await crbBus(size)));

// ---------------------------------------------------------------------------------------------
// Part 2: time per 1 KiB command

const CMD_1K = hashCommand(1024);

/** Builds the three stacks over one fresh SoftTpm each, with bus counters on the register paths. */
async function stack(kind) {
  const { soft, tpm: starter } = await startedSoftTpm();
  await starter.close();
  let transport;
  let counted;
  if (kind === "memory") transport = memory({ backend: soft, start: false });
  else if (kind === "tis") transport = tis({ mmio: (counted = countMmio(new TisDevice({ backend: soft }))) });
  else transport = crb({ mmio: (counted = countMmio(new CrbDevice({ backend: soft }))), start: mmioStart() });
  const tpm = await Tpm.open(transport, { startup: false });
  return { transport, tpm, counted };
}

async function time(fn, n) {
  for (let i = 0; i < Math.min(1000, n); i++) await fn();
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / n / 1000;
}

const stacks = {};
for (const k of ["memory", "tis", "crb"]) stacks[k] = await stack(k);
// Check the command really runs (TPM_RC_SUCCESS, a SHA-256 digest back) on every path.
for (const [k, s] of Object.entries(stacks)) {
  const r = await s.tpm.transmit(CMD_1K);
  if (rcOf(r) !== 0 || r.length !== 52) throw new Error(`${k}: 1 KiB Hash answered rc ${hex32(rcOf(r))}, ${r.length} bytes`);
}
const signal = new AbortController().signal;
const sendOpts = { signal, locality: 0, timeoutMs: 120_000, clock: systemClock };
const samples = {}; // "kind|layer" -> [us]
const busPerCmd = {}; // kind -> transactions per command in the timed transport runs
const names = [];
for (const k of ["memory", "tis", "crb"]) names.push([k, "transport"], [k, "chip"]);
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < names.length; i++) {
    const [k, layer] = names[(i + r) % names.length]; // rotate the order each round
    const s = stacks[k];
    s.counted?.reset();
    const us = layer === "transport" ? await time(() => s.transport.send(CMD_1K, sendOpts), N) : await time(() => s.tpm.transmit(CMD_1K), N);
    if (s.counted && layer === "transport") (busPerCmd[k] ??= []).push(s.counted.transactions / (N + Math.min(1000, N)));
    (samples[`${k}|${layer}`] ??= []).push(us);
  }
}
for (const s of Object.values(stacks)) await s.tpm.close();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const med = {};
for (const [key, us] of Object.entries(samples)) {
  const [transport, layer] = key.split("|");
  med[key] = median(us);
  const row = { bench: "register-time-1k", transport, layer, n: N, rounds: us.length, cmd_per_s: Math.round(1e6 / med[key]), us_per_cmd: +med[key].toFixed(2), best_us_per_cmd: +Math.min(...us).toFixed(2), runs_us: us.map((x) => +x.toFixed(2)) };
  if (busPerCmd[transport] && layer === "transport") row.bus_transactions_per_cmd = +median(busPerCmd[transport]).toFixed(2);
  console.log(JSON.stringify(row));
}
// Ratios per round (both paths measured a few ms apart, under the same load), then the median.
const ratio = (a, b) => +median(samples[a].map((x, i) => x / samples[b][i])).toFixed(2);
const ratioBest = (a, b) => +(Math.min(...samples[a]) / Math.min(...samples[b])).toFixed(2);
const ratios = {
  bench: "register-ratios-1k",
  n: N,
  rounds: ROUNDS,
  loadavg_1m: +loadavg()[0].toFixed(2),
  tis_vs_memory_transport: ratio("tis|transport", "memory|transport"),
  crb_vs_memory_transport: ratio("crb|transport", "memory|transport"),
  tis_vs_memory_chip: ratio("tis|chip", "memory|chip"),
  crb_vs_memory_chip: ratio("crb|chip", "memory|chip"),
  best: {
    tis_vs_memory_transport: ratioBest("tis|transport", "memory|transport"),
    crb_vs_memory_transport: ratioBest("crb|transport", "memory|transport"),
    tis_vs_memory_chip: ratioBest("tis|chip", "memory|chip"),
    crb_vs_memory_chip: ratioBest("crb|chip", "memory|chip"),
  },
};
ratios.targets_met = {
  tis_le_3: ratios.tis_vs_memory_transport <= 3 && ratios.tis_vs_memory_chip <= 3,
  crb_le_1_5: ratios.crb_vs_memory_transport <= 1.5 && ratios.crb_vs_memory_chip <= 1.5,
};
console.log(JSON.stringify(ratios));
