/**
 * An MMIO tracer: a wrapper `Mmio => Mmio` that records every access (operation, offset, value
 * or bytes) and publishes it on a `node:diagnostics_channel` channel (default `"tpmkit:bus:mmio"`)
 * when someone subscribes. Undici-style observability, written for register-level transports.
 *
 * @packageDocumentation
 */
import type { Mmio } from "./mmio.js";
import type { MaybePromise } from "../core/transport.js";
import { traceChannel } from "../core/trace.js";
import { type MmioAccess, type MmioOp, mapMaybe } from "./access.js";

/** Default channel name of {@link traceMmio}. */
export const MMIO_TRACE_CHANNEL = "tpmkit:bus:mmio";

/** Options of {@link traceMmio}. */
export interface TraceMmioOptions {
  /** diagnostics_channel name to publish on (`false`: do not publish). Default {@link MMIO_TRACE_CHANNEL} (`"tpmkit:bus:mmio"`). */
  channel?: string | false;
  /** Keep accesses in {@link TracedMmio.log}. Default true. */
  record?: boolean;
  /** Most entries kept; older ones are dropped first. Default 100 000. */
  limit?: number;
  /** Label copied into every published message (which window this is). */
  label?: string;
}

/** The message published on the channel for each access. */
export interface MmioTraceMessage extends MmioAccess {
  /** {@link TraceMmioOptions.label}. */
  readonly label: string | undefined;
  /** Sequence number of the access in this tracer. */
  readonly seq: number;
}

/** An {@link Mmio} that records what goes through it. */
export interface TracedMmio extends Mmio {
  /** Recorded accesses, oldest first (reads carry the value read). */
  readonly log: readonly MmioAccess[];
  /** Forgets the recorded accesses. */
  clear(): void;
}

/**
 * Wraps `mmio` so every access is recorded and published. Synchronous accesses stay synchronous.
 * FIFO data is copied into the log, so later buffer reuse does not change it.
 *
 * TCG PC Client PTP §6.5.2 (the accesses traced are those of the FIFO interface); Node.js "Diagnostics Channel".
 *
 * @param mmio - The register window to observe.
 * @param options - Channel name, recording and size limit.
 * @returns A {@link TracedMmio} forwarding to `mmio`.
 * @throws Never itself; errors of `mmio` pass through unchanged (and are not recorded).
 * @example
 * ```ts
 * const traced = traceMmio(device);
 * const tpm = await Tpm.open(tis({ mmio: traced }));
 * await tpm.getRandom(16);
 * console.log(traced.log.map(formatAccess).join("\n"));
 * ```
 */
export function traceMmio(mmio: Mmio, options: TraceMmioOptions = {}): TracedMmio {
  const ch = options.channel === false ? undefined : traceChannel(options.channel ?? MMIO_TRACE_CHANNEL);
  const record = options.record ?? true;
  const limit = Math.max(1, options.limit ?? 100_000);
  const label = options.label;
  let log: MmioAccess[] = [];
  let seq = 0;

  function note(a: MmioAccess): void {
    const n = seq++;
    if (record) {
      log.push(a);
      if (log.length > limit) log.splice(0, log.length - limit);
    }
    if (ch?.hasSubscribers) ch.publish({ ...a, label, seq: n } satisfies MmioTraceMessage);
  }

  const read = (op: MmioOp, offset: number, v: MaybePromise<number>) =>
    mapMaybe(v, (value) => {
      note({ op, offset, value });
      return value;
    });
  const write = (op: MmioOp, offset: number, value: number, v: MaybePromise<void>) =>
    mapMaybe(v, () => note({ op, offset, value }));

  return {
    get log() {
      return log;
    },
    clear() {
      log = [];
    },
    read8: (o) => read("read8", o, mmio.read8(o)),
    read16: (o) => read("read16", o, mmio.read16(o)),
    read32: (o) => read("read32", o, mmio.read32(o)),
    write8: (o, v) => write("write8", o, v, mmio.write8(o, v)),
    write16: (o, v) => write("write16", o, v, mmio.write16(o, v)),
    write32: (o, v) => write("write32", o, v, mmio.write32(o, v)),
    readFifo: (o, length) =>
      mapMaybe(mmio.readFifo(o, length), (data) => {
        note({ op: "readFifo", offset: o, length, data: data.slice() });
        return data;
      }),
    writeFifo: (o, data) => {
      const copy = data.slice();
      return mapMaybe(mmio.writeFifo(o, data), () => note({ op: "writeFifo", offset: o, data: copy }));
    },
  };
}
