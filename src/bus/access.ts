/**
 * Shared vocabulary of the MMIO wrappers (tracer, counter, fault injector) and drivers: the name
 * and shape of one register access, and the one sync/async bridge. An {@link Mmio} answers with a
 * plain value (a device model) or a Promise (a bridge to hardware); code written with
 * {@link mapMaybe} (one access) or as a {@link Steps} sequence run by {@link runSteps} (many
 * accesses, loops, try/finally) stays synchronous for the first and awaits only for the second.
 *
 * @packageDocumentation
 */
import type { MaybePromise } from "../core/transport.js";
import { abortErrorFrom } from "../errors/index.js";

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
 * Access width of an operation. TCG PC Client PTP §6.5.2 (registers are 1, 2 or 4 bytes wide).
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
 * A step sequence: a generator that `yield`s what an access returned (a plain value or a Promise)
 * and gets back the value, or has the Promise's rejection thrown into it. Written with `yield*`,
 * sequences compose (a poll inside a command inside a retry loop) and keep `try/finally`.
 */
export type Steps<T> = Generator<unknown, T, unknown>;

/**
 * Runs a step sequence: synchronously while its steps yield plain values, so the whole run is
 * synchronous when every access is (the result is then a plain value, and a throw is a plain
 * throw); from the first yielded Promise on, asynchronously, awaiting only Promises. This is the
 * multi-step form of {@link mapMaybe}.
 *
 * @param steps - The sequence (a started generator).
 * @returns Its return value, or a promise of it once a step was asynchronous.
 * @throws Whatever the sequence throws, synchronously while it has not awaited anything.
 * @example
 * ```ts
 * function* readPair(m: Mmio): Steps<number> {
 *   const lo = (yield m.read32(0x30)) as number;
 *   const hi = (yield m.read32(0x34)) as number;
 *   return hi * 2 ** 32 + lo;
 * }
 * const id = runSteps(readPair(device)); // a number: the device model answered synchronously
 * ```
 */
export function runSteps<T>(steps: Steps<T>): MaybePromise<T> {
  let r = steps.next();
  while (!r.done) {
    const v = r.value;
    if (v instanceof Promise) return runAsync(steps, v);
    r = steps.next(v);
  }
  return r.value;
}

async function runAsync<T>(steps: Steps<T>, pending: Promise<unknown>): Promise<T> {
  for (;;) {
    let ok = true;
    let x: unknown;
    try {
      x = await pending;
    } catch (e) {
      ok = false;
      x = e;
    }
    let r = ok ? steps.next(x) : steps.throw(x);
    while (!r.done && !(r.value instanceof Promise)) r = steps.next(r.value);
    if (r.done) return r.value;
    pending = r.value as Promise<unknown>;
  }
}

/**
 * Runs `steps`, dropping any error: best-effort cleanup (relinquish a locality, go idle) that must
 * never replace the error that made it necessary.
 *
 * @param steps - The cleanup sequence.
 * @returns A sequence that completes normally whatever `steps` threw.
 * @throws Never.
 * @example
 * ```ts
 * try {
 *   yield* sendSteps();
 * } finally {
 *   yield* quietly(relinquishSteps()); // a failed relinquish never hides the send's error
 * }
 * ```
 */
export function* quietly(steps: Steps<void>): Steps<void> {
  try {
    yield* steps;
  } catch {
    /* best effort */
  }
}

/**
 * Races an access result against an abort signal: a plain value, or no signal, passes through
 * untouched; a pending Promise rejects with the signal's abort error as soon as it fires (the
 * access itself is abandoned, and its late outcome is dropped).
 *
 * @param v - What an access returned.
 * @param signal - Aborts the wait.
 * @returns `v`, or a promise that settles with `v` or the abort error, whichever is first.
 * @throws Never synchronously; the returned promise rejects with the abort error.
 * @example
 * ```ts
 * const sts = await withSignal(mmio.read32(0x18), signal); // a hung SPI bridge cannot outlive the signal
 * ```
 */
export function withSignal<T>(v: MaybePromise<T>, signal: AbortSignal | undefined): MaybePromise<T> {
  if (!(v instanceof Promise) || !signal) return v;
  if (signal.aborted) {
    v.catch(() => undefined);
    return Promise.reject(abortErrorFrom(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortErrorFrom(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    v.then(
      (x) => {
        signal.removeEventListener("abort", onAbort);
        resolve(x);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
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
