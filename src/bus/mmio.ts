/**
 * The register window a TIS or CRB driver talks to. Device models ({@link TisDevice},
 * {@link CrbDevice}) implement it directly; so can a user's bridge to real hardware (SPI, /dev/mem).
 * Offsets are relative to the start of the TIS window (locality L at L × 0x1000) or of the CRB
 * register block. Registers are little-endian (PTP §6.3.2).
 *
 * @packageDocumentation
 */
import type { MaybePromise } from "../core/transport.js";

/** Register access: 8/16/32-bit reads and writes plus one-burst FIFO transfers. */
export interface Mmio {
  read8(offset: number): MaybePromise<number>;
  read16(offset: number): MaybePromise<number>;
  read32(offset: number): MaybePromise<number>;
  write8(offset: number, value: number): MaybePromise<void>;
  write16(offset: number, value: number): MaybePromise<void>;
  write32(offset: number, value: number): MaybePromise<void>;
  /** Reads `length` bytes from one address (a FIFO) in one burst. */
  readFifo(offset: number, length: number): MaybePromise<Uint8Array>;
  /** Writes `data` to one address (a FIFO) in one burst. */
  writeFifo(offset: number, data: Uint8Array): MaybePromise<void>;
}
