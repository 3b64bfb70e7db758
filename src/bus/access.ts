/**
 * Shared vocabulary of the MMIO wrappers (tracer, counter, fault injector): the name and shape of
 * one register access, and a helper that keeps synchronous accesses synchronous.
 *
 * @packageDocumentation
 */
import type { MaybePromise } from "../core/transport.js";

/** The eight operations of {@link Mmio}. */
export type MmioOp = "read8" | "read16" | "read32" | "write8" | "write16" | "write32" | "readFifo" | "writeFifo";

/** One register access as the wrappers see it. */
export interface MmioAccess {
  /** Which operation. */
  readonly op: MmioOp;
  /** Offset in the window. */
  readonly offset: number;
  /** Value written (writes) or read (reads, once known). */
  value?: number;
  /** Bytes written (writeFifo) or read (readFifo, once known). */
  data?: Uint8Array;
  /** Requested length (readFifo). */
  readonly length?: number;
}

/**
 * Whether an operation reads.
 *
 * @param op - The operation.
 * @returns True for read8/16/32 and readFifo.
 */
export function isRead(op: MmioOp): boolean {
  return op.startsWith("read");
}

/**
 * Access width of an operation. PTP §6.5.2 (registers are 1, 2 or 4 bytes wide).
 *
 * @param op - The operation.
 * @returns 1, 2 or 4 bytes (FIFO operations: 1, the width of one FIFO access).
 */
export function widthOf(op: MmioOp): 1 | 2 | 4 {
  return op.endsWith("16") ? 2 : op.endsWith("32") ? 4 : 1;
}

/**
 * Applies `f` to a value that may be a promise, staying synchronous when it is not, so wrapping a
 * synchronous device model keeps it synchronous.
 *
 * @param v - A value or a promise of it.
 * @param f - The mapping.
 * @returns `f(v)`, or a promise of it when `v` is a promise.
 * @throws Whatever `f` throws (synchronously for a plain value).
 */
export function mapMaybe<T, U>(v: MaybePromise<T>, f: (x: T) => U): MaybePromise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/**
 * Formats an access for logs and golden traces.
 *
 * @param a - The access.
 * @returns e.g. `r8 0x0018 = 0x80`, `w8 0x0000 0x02` or `wfifo 0x0024 [12]`.
 * @example
 * ```ts
 * traced.log.map(formatAccess).join("\n");
 * ```
 */
export function formatAccess(a: MmioAccess): string {
  const off = "0x" + a.offset.toString(16).padStart(4, "0");
  const hex = (v: number | undefined, w: number) => (v === undefined ? "?" : "0x" + (v >>> 0).toString(16).padStart(w * 2, "0"));
  switch (a.op) {
    case "read8":
    case "read16":
    case "read32":
      return `r${widthOf(a.op) * 8} ${off} = ${hex(a.value, widthOf(a.op))}`;
    case "write8":
    case "write16":
    case "write32":
      return `w${widthOf(a.op) * 8} ${off} ${hex(a.value, widthOf(a.op))}`;
    case "readFifo":
      return `rfifo ${off} [${a.length ?? a.data?.length ?? 0}]`;
    case "writeFifo":
      return `wfifo ${off} [${a.data?.length ?? 0}]`;
  }
}
