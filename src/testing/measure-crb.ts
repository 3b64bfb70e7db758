/**
 * Measures what the CRB register path costs: register accesses per command, and wall time per
 * command through `crb()` + `CrbDevice` relative to calling the backend directly.
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../core/clock.js";
import { TpmArgumentError } from "../errors/index.js";
import type { TpmBackend } from "../core/transport.js";
import { countMmio } from "../bus/count.js";
import { CrbDevice } from "../devices/crb/device.js";
import { TPM_RC, TPM_ST } from "../wire/constants.js";
import { crb } from "../transports/crb/crb.js";
import { mmioStart } from "../transports/crb/start-mmio.js";
import type { CrbStartMethod } from "../transports/crb/start-method.js";

/** Options of {@link measureCrb}. */
export interface MeasureCrbOptions {
  /** Backend to run commands on. Default: one that answers with a response as long as the command. */
  backend?: TpmBackend;
  /** Size of the command (and of the default backend's response). Default 1024. */
  commandBytes?: number;
  /** Commands to time on each path. Default 2000. */
  iterations?: number;
  /** Start method. Default `mmioStart()`. */
  start?: CrbStartMethod;
  /** Clock for the driver's polling. Default the system clock. */
  clock?: Clock;
  /** Buffer copy mode. Default "burst". */
  bufferAccess?: "burst" | "dword";
}

/** What {@link measureCrb} found. */
export interface CrbMeasurement {
  commandBytes: number;
  iterations: number;
  /** Register/buffer accesses per command (a block copy counts as one). */
  accessesPerCommand: number;
  /** Accesses per command by kind: read32, write32, readFifo, ... */
  accessesByKind: Record<string, number>;
  /** Mean wall time per command through crb() + CrbDevice, µs. */
  crbMicros: number;
  /** Mean wall time per command calling backend.execute directly, µs. */
  directMicros: number;
  /** crbMicros / directMicros. */
  ratio: number;
}

/** A command of `size` bytes with a valid header (TPM 2.0 Part 1 §18.8); code 0x20000000 (vendor). */
function command(size: number): Uint8Array {
  const c = new Uint8Array(size);
  const dv = new DataView(c.buffer);
  dv.setUint16(0, TPM_ST.NO_SESSIONS);
  dv.setUint32(2, size);
  dv.setUint32(6, 0x2000_0000);
  for (let i = 10; i < size; i++) c[i] = i & 0xff;
  return c;
}

/** A backend answering every command with a success response as long as the command. */
function mirrorBackend(): TpmBackend {
  return {
    async execute(cmd) {
      const r = new Uint8Array(cmd.length);
      r.set(cmd);
      const dv = new DataView(r.buffer);
      dv.setUint16(0, TPM_ST.NO_SESSIONS);
      dv.setUint32(2, r.length);
      dv.setUint32(6, TPM_RC.SUCCESS);
      return r;
    },
  };
}

/**
 * Runs `iterations` commands of `commandBytes` through `crb()` over a `CrbDevice`, counting
 * register accesses, then the same commands straight into the backend, and compares wall time.
 * Spec context: the per-command sequence is the kernel's (Linux drivers/char/tpm/tpm_crb.c,
 * crb_send() and crb_recv(), inside tpm-interface.c, tpm_try_transmit()).
 *
 * @param options - {@link MeasureCrbOptions}.
 * @returns the {@link CrbMeasurement}.
 * @throws TpmArgumentError when `commandBytes` is not 10..3968 or `iterations` is not positive.
 * @example
 * ```ts
 * const m = await measureCrb({ commandBytes: 1024, iterations: 5000 });
 * console.log(`${m.accessesPerCommand} accesses, ${m.ratio.toFixed(1)}× direct`);
 * ```
 */
export async function measureCrb(options: MeasureCrbOptions = {}): Promise<CrbMeasurement> {
  const size = options.commandBytes ?? 1024;
  const iterations = options.iterations ?? 2000;
  if (!Number.isInteger(size) || size < 10 || size > 0xf80) throw new TpmArgumentError(`commandBytes must be 10..3968, got ${size}`);
  if (!Number.isInteger(iterations) || iterations < 1) throw new TpmArgumentError(`iterations must be a positive integer, got ${iterations}`);
  const backend = options.backend ?? mirrorBackend();
  const clock = options.clock ?? systemClock;
  const mmio = countMmio(new CrbDevice({ backend, clock }));
  const t = crb({ mmio, start: options.start ?? mmioStart(), clock, bufferAccess: options.bufferAccess ?? "burst" });
  await t.open({ clock, locality: 0 });
  const cmd = command(size);
  const signal = new AbortController().signal;
  const send = () => t.send(cmd, { signal, locality: 0, timeoutMs: 120_000, clock });
  for (let i = 0; i < Math.min(100, iterations); i++) await send(); // warm up
  mmio.reset();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await send();
  const crbMicros = ((performance.now() - t0) * 1000) / iterations;
  const byKind: Record<string, number> = {};
  let total = 0;
  for (const [k, v] of Object.entries(mmio.byOp)) {
    if (v === 0) continue;
    byKind[k] = v / iterations;
    total += v;
  }
  for (let i = 0; i < Math.min(100, iterations); i++) await backend.execute(cmd, 0);
  const t1 = performance.now();
  for (let i = 0; i < iterations; i++) await backend.execute(cmd, 0);
  const directMicros = ((performance.now() - t1) * 1000) / iterations;
  await t.close();
  return { commandBytes: size, iterations, accessesPerCommand: total / iterations, accessesByKind: byKind, crbMicros, directMicros, ratio: crbMicros / Math.max(directMicros, 1e-9) };
}
