// tpmkit CRB-over-FF-A benchmark (GitHub issue 10, point 7). Prints one JSON object per line.
//
//   npm run build && node --expose-gc bench/ffa.mjs
//
// Environment:
//   BENCH_N        commands per timed run (default 5000)
//   BENCH_ROUNDS   interleaved rounds; times are medians over rounds (default 7)
//
// Part 1, FF-A calls per command (deterministic: a FakeClock with auto-advance). Lines
// "bench":"ffa-calls", one per command size and partition variant: the conduit calls the FfaBus
// counted (`bus.calls`) and the DEN0138 messages ffaStart sent (`stats.messages`) for the second
// command through crb({ mmio: CrbDevice(5 localities, doorbell), start: ffaStart({ bus }) }). The
// kernel's sequence (Linux ≥ 6.18, tpm_crb.c + tpm_crb_ffa.c) is 5 START messages per command:
// 1 requestLocality (START(locality)), 2 cmdReady (START(command) with CTRL_REQ), 3 the command
// (START(command) with CTRL_START), 6 goIdle, 7 relinquish; each message is one
// FFA_MSG_SEND_DIRECT_REQ(2) call when the partition neither is busy nor is preempted. Steps 4–5
// (CRB buffer copies, status reads) are memory accesses, not FF-A calls. The pre-6.18 sequence
// (hasIdle: false; what Trusted Services takes) has 3 (steps 1, 3, 7).
//
// Part 2, time per 1 KiB command (TPM2_Hash of 1006 bytes: a 1024-byte command, as
// bench/registers.mjs), wall clock, system clock: memory(SoftTpm), crb(mmioStart) over
// CrbDevice(SoftTpm) and crb(ffaStart) over FfaBus + TpmServicePartition(mu) + CrbDevice(5
// localities, doorbell) + SoftTpm, each through transport.send ("layer":"transport") and through
// the Chip (tpm.transmit, "layer":"chip"). The last line has the ratios (target: FF-A ≤ 2× memory).
import { loadavg } from "node:os";
import { CrbDevice, FakeClock, FfaBus, SoftTpm, Tpm, TpmServicePartition, crb, ffaStart, memory, mmioStart, systemClock } from "../dist/index.js";

const N = Number(process.env.BENCH_N ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error("BENCH_N and BENCH_ROUNDS must be positive integers");
  process.exit(2);
}

/** TPM2_GetRandom(16): 12 bytes (TPM 2.0 Part 3 §16.1). */
const GETRANDOM16 = Uint8Array.from([0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x10]);

/** TPM2_Hash(data, TPM_ALG_SHA256, TPM_RH_NULL) with the command `size` bytes long (Part 3 §15.4). */
function hashCommand(size) {
  const n = size - 18;
  const c = new Uint8Array(size);
  const v = new DataView(c.buffer);
  v.setUint16(0, 0x8001);
  v.setUint32(2, size);
  v.setUint32(6, 0x17d);
  v.setUint16(10, n);
  for (let i = 0; i < n; i++) c[12 + i] = i & 0xff;
  v.setUint16(12 + n, 0x000b);
  v.setUint32(14 + n, 0x40000007);
  return c;
}
const rcOf = (r) => ((r[6] << 24) | (r[7] << 16) | (r[8] << 8) | r[9]) >>> 0;
const hex32 = (x) => "0x" + x.toString(16).padStart(8, "0");
const CMD_1K = hashCommand(1024);

/** The kernel's START messages per command (steps 1, 2, 3, 6, 7), and without cmdReady/goIdle. */
const KERNEL_STARTS = 5;
const KERNEL_STARTS_PRE_6_18 = 3;

/** A started SoftTpm (TPM2_Startup(CLEAR) through the memory transport). */
async function startedSoftTpm() {
  const soft = new SoftTpm();
  const tpm = await Tpm.open(memory({ backend: soft }));
  await tpm.close();
  return soft;
}

/** The FF-A stack over `soft`. */
function ffaStack(soft, { variant = "mu", clock } = {}) {
  const device = new CrbDevice({ backend: soft, localities: 5, trigger: "doorbell", ...(clock ? { clock } : {}) });
  const partition = new TpmServicePartition({ device, variant });
  const bus = new FfaBus(clock ? { clock } : {});
  bus.addPartition(partition);
  const start = ffaStart({ bus, ...(variant === "ts" ? { hasIdle: false } : {}) });
  return { transport: crb({ mmio: device, start, ...(clock ? { clock } : {}) }), bus, start, partition };
}

// ---------------------------------------------------------------------------------------------
// Part 1: FF-A calls per command

for (const variant of ["mu", "stmm", "ts"]) {
  for (const [name, cmd] of [["getrandom-12", GETRANDOM16], ["hash-1024", CMD_1K]]) {
    const clock = new FakeClock({ auto: true });
    const soft = await startedSoftTpm();
    const s = ffaStack(soft, { variant, clock });
    const probeCalls = s.bus.calls;
    await s.transport.open({ clock, locality: 0 });
    const openCalls = s.bus.calls - probeCalls;
    const signal = new AbortController().signal;
    await s.transport.send(cmd, { signal, locality: 0, timeoutMs: 120_000, clock }); // first command: not counted
    const c0 = s.bus.calls;
    const m0 = s.start.stats.messages;
    const r = await s.transport.send(cmd, { signal, locality: 0, timeoutMs: 120_000, clock });
    const calls = s.bus.calls - c0;
    const messages = s.start.stats.messages - m0;
    await s.transport.close?.();
    const kernel = variant === "ts" ? KERNEL_STARTS_PRE_6_18 : KERNEL_STARTS;
    console.log(
      JSON.stringify({
        bench: "ffa-calls",
        variant,
        sequence: variant === "ts" ? "pre-6.18 (hasIdle: false)" : "6.18+",
        command: name,
        command_bytes: cmd.length,
        response_bytes: r.length,
        rc: hex32(rcOf(r)),
        probe_calls: openCalls,
        ffa_calls_per_cmd: calls,
        den0138_messages_per_cmd: messages,
        kernel_start_calls: kernel,
        over_kernel: calls - kernel,
      }),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: time per 1 KiB command

async function stack(kind) {
  const soft = await startedSoftTpm();
  let transport;
  let ffa;
  if (kind === "memory") transport = memory({ backend: soft, start: false });
  else if (kind === "crb-mmio") transport = crb({ mmio: new CrbDevice({ backend: soft }), start: mmioStart() });
  else transport = (ffa = ffaStack(soft)).transport;
  const tpm = await Tpm.open(transport, { startup: false });
  return { transport, tpm, ffa };
}

async function time(fn, n) {
  for (let i = 0; i < Math.min(1000, n); i++) await fn();
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / n / 1000;
}

const KINDS = ["memory", "crb-mmio", "crb-ffa"];
const stacks = {};
for (const k of KINDS) stacks[k] = await stack(k);
for (const [k, s] of Object.entries(stacks)) {
  const r = await s.tpm.transmit(CMD_1K);
  if (rcOf(r) !== 0 || r.length !== 52) throw new Error(`${k}: 1 KiB Hash answered rc ${hex32(rcOf(r))}, ${r.length} bytes`);
}
const signal = new AbortController().signal;
const sendOpts = { signal, locality: 0, timeoutMs: 120_000, clock: systemClock };
const samples = {};
const callsPerCmd = [];
const names = [];
for (const k of KINDS) names.push([k, "transport"], [k, "chip"]);
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < names.length; i++) {
    const [k, layer] = names[(i + r) % names.length];
    const s = stacks[k];
    const c0 = s.ffa?.bus.calls;
    const us = layer === "transport" ? await time(() => s.transport.send(CMD_1K, sendOpts), N) : await time(() => s.tpm.transmit(CMD_1K), N);
    if (s.ffa && layer === "transport") callsPerCmd.push((s.ffa.bus.calls - c0) / (N + Math.min(1000, N)));
    (samples[`${k}|${layer}`] ??= []).push(us);
  }
}
for (const s of Object.values(stacks)) await s.tpm.close();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
for (const [key, us] of Object.entries(samples)) {
  const [transport, layer] = key.split("|");
  const med = median(us);
  const row = { bench: "ffa-time-1k", transport, layer, n: N, rounds: us.length, cmd_per_s: Math.round(1e6 / med), us_per_cmd: +med.toFixed(2), best_us_per_cmd: +Math.min(...us).toFixed(2), runs_us: us.map((x) => +x.toFixed(2)) };
  if (transport === "crb-ffa" && layer === "transport") row.ffa_calls_per_cmd = +median(callsPerCmd).toFixed(2);
  console.log(JSON.stringify(row));
}
const ratio = (a, b) => +median(samples[a].map((x, i) => x / samples[b][i])).toFixed(2);
const ratioBest = (a, b) => +(Math.min(...samples[a]) / Math.min(...samples[b])).toFixed(2);
const ratios = {
  bench: "ffa-ratios-1k",
  n: N,
  rounds: ROUNDS,
  loadavg_1m: +loadavg()[0].toFixed(2),
  ffa_vs_memory_transport: ratio("crb-ffa|transport", "memory|transport"),
  ffa_vs_memory_chip: ratio("crb-ffa|chip", "memory|chip"),
  ffa_vs_mmio_transport: ratio("crb-ffa|transport", "crb-mmio|transport"),
  ffa_vs_mmio_chip: ratio("crb-ffa|chip", "crb-mmio|chip"),
  mmio_vs_memory_chip: ratio("crb-mmio|chip", "memory|chip"),
  best: {
    ffa_vs_memory_transport: ratioBest("crb-ffa|transport", "memory|transport"),
    ffa_vs_memory_chip: ratioBest("crb-ffa|chip", "memory|chip"),
    ffa_vs_mmio_transport: ratioBest("crb-ffa|transport", "crb-mmio|transport"),
    ffa_vs_mmio_chip: ratioBest("crb-ffa|chip", "crb-mmio|chip"),
  },
};
ratios.targets_met = { ffa_le_2x_memory: ratios.ffa_vs_memory_transport <= 2 && ratios.ffa_vs_memory_chip <= 2 };
console.log(JSON.stringify(ratios));
