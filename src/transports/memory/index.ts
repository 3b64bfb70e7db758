/**
 * The memory transport: a {@link TpmBackend} in the same process, called directly. The fastest
 * path to a TPM, and the default under `tpmkit demo`.
 *
 * @packageDocumentation
 */
import { TpmkitError, TpmTransportError, abortErrorFrom } from "../../errors/index.js";
import type { SendOptions, TpmBackend, Transport } from "../../core/transport.js";

/** Options of {@link memory}. */
export interface MemoryTransportOptions {
  /** What runs the commands, e.g. `new SoftTpm()`. */
  backend: TpmBackend;
  /** Call `backend.start()` when the chip opens. Default true. */
  start?: boolean;
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
      return backend.execute(command, o.locality, o.signal);
    },
    cancel() {
      backend.cancel?.();
    },
  };
}
