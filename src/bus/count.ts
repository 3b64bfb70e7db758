/**
 * An MMIO counter: a wrapper `Mmio => Mmio` that counts register reads, register writes, FIFO
 * bursts and FIFO bytes. Used to measure bus transactions per command (the figure that matters
 * on slow buses such as SPI and LPC).
 *
 * @packageDocumentation
 */
import type { Mmio } from "./mmio.js";
import { mapMaybe, type MmioOp } from "./access.js";

/** Counts kept by {@link countMmio}. */
export interface MmioCounts {
  /** read8/16/32 calls. */
  reads: number;
  /** write8/16/32 calls. */
  writes: number;
  /** readFifo calls (one burst each). */
  fifoReads: number;
  /** writeFifo calls (one burst each). */
  fifoWrites: number;
  /** Bytes moved by readFifo. */
  bytesRead: number;
  /** Bytes moved by writeFifo. */
  bytesWritten: number;
}

/** An {@link Mmio} that counts what goes through it. */
export interface CountedMmio extends Mmio {
  /** Live counts (a snapshot: `{ ...counted.counts }`). */
  readonly counts: Readonly<MmioCounts>;
  /** Bus transactions so far: register accesses plus FIFO bursts. */
  readonly transactions: number;
  /** Calls per operation (read8, write32, readFifo, ...), for a finer breakdown than {@link counts}. */
  readonly byOp: Readonly<Record<MmioOp, number>>;
  /** Sets every count back to 0. */
  reset(): void;
}

/**
 * Wraps `mmio` with counters. Synchronous accesses stay synchronous; an access is counted when it
 * is issued, whether or not it succeeds.
 *
 * TCG PC Client PTP §6.5.2 (one FIFO burst = one bus transaction of up to burstCount bytes).
 *
 * @param mmio - The register window to measure.
 * @returns A {@link CountedMmio} forwarding to `mmio`.
 * @throws Never itself; errors of `mmio` pass through.
 * @example
 * ```ts
 * const counted = countMmio(device);
 * await chip.transmit(cmd);
 * console.log(counted.transactions, counted.counts.bytesWritten);
 * ```
 */
export function countMmio(mmio: Mmio): CountedMmio {
  const c: MmioCounts = { reads: 0, writes: 0, fifoReads: 0, fifoWrites: 0, bytesRead: 0, bytesWritten: 0 };
  const zero = (): Record<MmioOp, number> => ({ read8: 0, read16: 0, read32: 0, write8: 0, write16: 0, write32: 0, readFifo: 0, writeFifo: 0 });
  const by = zero();
  return {
    counts: c,
    byOp: by,
    get transactions() {
      return c.reads + c.writes + c.fifoReads + c.fifoWrites;
    },
    reset() {
      c.reads = c.writes = c.fifoReads = c.fifoWrites = c.bytesRead = c.bytesWritten = 0;
      Object.assign(by, zero());
    },
    read8: (o) => (c.reads++, by.read8++, mmio.read8(o)),
    read16: (o) => (c.reads++, by.read16++, mmio.read16(o)),
    read32: (o) => (c.reads++, by.read32++, mmio.read32(o)),
    write8: (o, v) => (c.writes++, by.write8++, mmio.write8(o, v)),
    write16: (o, v) => (c.writes++, by.write16++, mmio.write16(o, v)),
    write32: (o, v) => (c.writes++, by.write32++, mmio.write32(o, v)),
    readFifo: (o, n) => {
      c.fifoReads++;
      by.readFifo++;
      return mapMaybe(mmio.readFifo(o, n), (d) => ((c.bytesRead += d.length), d));
    },
    writeFifo: (o, d) => {
      c.fifoWrites++;
      by.writeFifo++;
      c.bytesWritten += d.length;
      return mmio.writeFifo(o, d);
    },
  };
}
