/**
 * The memory transport: a {@link TpmBackend} in the same process, called directly. The fastest
 * path to a TPM, and the default under `tpmkit demo`.
 *
 * A backend that answers without I/O resolves each command in a microtask, so a loop of awaited
 * commands would never let the event loop turn: no timer, no `AbortSignal.timeout()`, no chip
 * watchdog, no I/O callback would run until it ends. The transport therefore watches for
 * starvation (a `setImmediate` armed at the start of each slice) and, when a slice of
 * `yieldSliceMs` has passed without the event loop turning, waits for one macrotask before the
 * next command.
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmkitError, TpmTransportError, abortErrorFrom } from "../../errors/index.js";
import type { SendOptions, TpmBackend, Transport } from "../../core/transport.js";

/** Options of {@link memory}. */
export interface MemoryTransportOptions {
  /** What runs the commands, e.g. `new SoftTpm()`. */
  backend: TpmBackend;
  /** Call `backend.start()` when the chip opens. Default true. */
  start?: boolean;
  /**
   * Longest run of commands, in milliseconds, without the event loop turning: after that the
   * next command first waits for a macrotask (`setImmediate`), so timers, aborts and I/O run
   * during any loop of commands. Default {@link MEMORY_YIELD_SLICE_MS}; `Infinity` never yields
   * (a loop of commands then starves the event loop).
   */
  yieldSliceMs?: number;
}

/** Default {@link MemoryTransportOptions.yieldSliceMs}: 4 ms. */
export const MEMORY_YIELD_SLICE_MS = 4;

const now: () => number = typeof performance !== "undefined" ? () => performance.now() : () => Date.now();
/** Runs `f` in the next macrotask (setImmediate in Node; setTimeout elsewhere). */
const nextMacrotask: (f: () => void) => void = typeof setImmediate === "function" ? (f) => setImmediate(f) : (f) => setTimeout(f, 0);

/**
 * Starvation watch shared by every memory transport of the process (they starve the same event
 * loop): `sliceStart` is when the current slice began, and `watching` stays true until a
 * macrotask armed at that moment has run.
 */
let sliceStart = 0;
let watching = false;
const loopTurned = (): void => {
  watching = false;
};

/** Whether the event loop has not turned for `slice` ms of commands (arms the watch if idle). */
function starved(slice: number): boolean {
  const t = now();
  if (!watching) {
    watching = true;
    sliceStart = t;
    nextMacrotask(loopTurned);
    return false;
  }
  return t - sliceStart >= slice;
}

/** The transport returned by {@link memory}. */
export interface MemoryTransport extends Transport {
  readonly kind: "memory";
  readonly backend: TpmBackend;
}

/**
 * A transport that hands each command to an in-process backend. All five localities are
 * offered; the backend enforces what each may do.
 *
 * A response means what the backend's `execute` means: with a `SoftTpm` over a storage (e.g.
 * `FileStorage`), the response to an NV-changing command arrives only after the new state is
 * saved, so nothing answered is lost in a crash. Every `yieldSliceMs` of uninterrupted commands
 * the transport waits for one macrotask, so timers and aborts fire during a loop of commands.
 *
 * @param options - the backend
 * @returns a Transport for `Tpm.open` / `new Chip`
 * @example
 * ```ts
 * const tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
 * ```
 */
export function memory(options: MemoryTransportOptions): MemoryTransport {
  const backend = options?.backend;
  if (!backend || typeof backend.execute !== "function") throw new TpmTransportError("memory({ backend }) needs a backend with execute()");
  const start = options.start ?? true;
  const slice = options.yieldSliceMs ?? MEMORY_YIELD_SLICE_MS;
  if (typeof slice !== "number" || Number.isNaN(slice) || slice < 0) throw new TpmArgumentError(`memory: yieldSliceMs must be a number ≥ 0 (got ${String(slice)})`);
  const run = async (command: Uint8Array, o: SendOptions): Promise<Uint8Array> => {
    await new Promise<void>((resolve) => nextMacrotask(resolve));
    if (o.signal.aborted) throw abortErrorFrom(o.signal);
    return backend.execute(command, o.locality, o.signal);
  };
  return {
    kind: "memory",
    backend,
    localities: [0, 1, 2, 3, 4],
    async open() {
      if (!start || !backend.start) return;
      try {
        await backend.start();
      } catch (e) {
        if (e instanceof TpmkitError) throw e;
        throw new TpmTransportError(`memory: the backend failed to start: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
    },
    send(command: Uint8Array, o: SendOptions): Promise<Uint8Array> {
      if (o.signal.aborted) return Promise.reject(abortErrorFrom(o.signal));
      if (slice !== Infinity && starved(slice)) return run(command, o);
      return backend.execute(command, o.locality, o.signal);
    },
    cancel() {
      backend.cancel?.();
    },
  };
}
