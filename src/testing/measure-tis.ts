/**
 * Bus-transaction measurement for the TIS path: how many register accesses and FIFO bursts one
 * command costs through {@link tis} and the {@link TisDevice} model, against the lower bound for
 * the burst size. Bus transactions are what cost time on LPC and SPI TPMs (each is a bus cycle
 * or an SPI frame with wait states), so this is the figure to keep small.
 *
 * @packageDocumentation
 */
import { tis } from "../transports/tis/tis.js";
import { TisDevice } from "../devices/tis/device.js";
import { FakeTpmBackend } from "./fake-backend.js";
import { FakeClock } from "../core/clock.js";
import { traceMmio } from "../bus/trace.js";
import { TpmArgumentError } from "../errors/index.js";
import { TPM_RC, TPM_ST } from "../wire/constants.js";

/** One measured configuration. */
export interface TisMeasurement {
  /** "dynamic" (QEMU: room left / bytes left) or a static burst count. */
  readonly burst: "dynamic" | number;
  /** Command length in bytes. */
  readonly commandSize: number;
  /** Response length in bytes. */
  readonly responseSize: number;
  /** Register reads + register writes + FIFO bursts for the whole command. */
  readonly transactions: number;
  /** Register reads (8/16/32-bit). */
  readonly registerReads: number;
  /** Register writes. */
  readonly registerWrites: number;
  /** FIFO bursts (reads and writes). */
  readonly fifoBursts: number;
  /** Status reads spent waiting for the backend between GO and dataAvail (0 in IRQ mode). */
  readonly waitPolls: number;
  /**
   * Lower bound for this burst size: the FIFO bursts the data needs (command, then response with
   * its 10-byte header read first) plus six accesses no TIS command can avoid (locality request,
   * grant read, GO, one status read showing dataAvail, commandReady, relinquish).
   */
  readonly minimum: number;
}

/** Options of {@link measureTisTransactions}. */
export interface MeasureTisOptions {
  /** Command sizes to measure. Default 12, 1024 and 4096. */
  commandSizes?: readonly number[];
  /** Burst settings. Default a static 64 and QEMU's dynamic burst. */
  bursts?: readonly ("dynamic" | number)[];
  /** Response size the fake backend returns. Default 10. */
  responseSize?: number;
  /** Use the device's interrupt line instead of polling. Default false. */
  interrupts?: boolean;
  /** Backend execution time in ms on a fake clock (polls grow with it). Default 0. */
  executionMs?: number;
}

/**
 * Measures bus transactions per command through the TIS driver and device model on a fake clock.
 * PTP §6.5.2 (FIFO transfers governed by burstCount).
 *
 * @param options - Sizes, bursts, response size, interrupt mode and backend latency.
 * @returns One row per burst setting and command size.
 * @throws {TpmArgumentError} When a size is outside 10..4096 or a burst outside 1..4096.
 * @example
 * ```ts
 * for (const m of await measureTisTransactions()) console.log(m.burst, m.commandSize, m.transactions, m.minimum);
 * ```
 */
export async function measureTisTransactions(options: MeasureTisOptions = {}): Promise<TisMeasurement[]> {
  const sizes = options.commandSizes ?? [12, 1024, 4096];
  const bursts = options.bursts ?? [64, "dynamic"];
  const responseSize = options.responseSize ?? 10;
  if (!Number.isInteger(responseSize) || responseSize < 10 || responseSize > 4096) throw new TpmArgumentError(`responseSize ${responseSize} is not in 10..4096`);
  const rows: TisMeasurement[] = [];
  for (const burst of bursts) {
    if (burst !== "dynamic" && (!Number.isInteger(burst) || burst < 1 || burst > 4096)) throw new TpmArgumentError(`burst ${burst} is not in 1..4096`);
    for (const size of sizes) {
      if (!Number.isInteger(size) || size < 10 || size > 4096) throw new TpmArgumentError(`command size ${size} is not in 10..4096`);
      const clock = new FakeClock({ auto: true });
      const response = new Uint8Array(responseSize);
      const v = new DataView(response.buffer);
      v.setUint16(0, TPM_ST.NO_SESSIONS);
      v.setUint32(2, responseSize);
      v.setUint32(6, TPM_RC.SUCCESS);
      const backend = new FakeTpmBackend({ clock, executionMs: options.executionMs ?? 0 });
      const device = new TisDevice({ backend, clock, ...(burst === "dynamic" ? {} : { burstCount: burst }) });
      const traced = traceMmio(device, { channel: false });
      const t = tis({ mmio: traced, ...(options.interrupts ? { interrupts: device } : {}) });
      await t.open({ clock, locality: 0 });
      backend.options.handler = () => response;
      const cmd = new Uint8Array(size);
      new DataView(cmd.buffer).setUint16(0, TPM_ST.NO_SESSIONS);
      new DataView(cmd.buffer).setUint32(2, size);
      new DataView(cmd.buffer).setUint32(6, 0x0000_0144); // a command code the fake answers generically
      traced.clear();
      await t.send(cmd, { signal: new AbortController().signal, locality: 0, timeoutMs: 120_000, clock });
      const log = traced.log;
      const go = log.findIndex((a) => a.op === "write8" && (a.offset & 0xfff) === 0x18 && a.value === 0x20);
      const ready = log.findIndex((a, i) => i > go && a.op === "read32" && (a.offset & 0xfff) === 0x18 && ((a.value ?? 0) & 0x90) === 0x90);
      const waitPolls = log.slice(go + 1, ready).filter((a) => a.op === "read32" && (a.offset & 0xfff) === 0x18).length;
      const b = (n: number, first: number) => (burst === "dynamic" ? (n > first ? 2 : 1) : Math.ceil(Math.min(n, first) / burst) + Math.ceil(Math.max(0, n - first) / burst));
      rows.push({
        burst,
        commandSize: size,
        responseSize,
        transactions: log.length,
        registerReads: log.filter((a) => a.op.startsWith("read") && a.op !== "readFifo").length,
        registerWrites: log.filter((a) => a.op.startsWith("write") && a.op !== "writeFifo").length,
        fifoBursts: log.filter((a) => a.op === "readFifo" || a.op === "writeFifo").length,
        waitPolls,
        minimum: (burst === "dynamic" ? 1 : Math.ceil(size / burst)) + b(responseSize, 10) + 6,
      });
    }
  }
  return rows;
}
