/**
 * `diagnosticsChannel` for the bus, device models and drivers: the same browser-safe lookup as
 * the chip's {@link traceChannel} (one implementation, in `src/core/trace.ts`), under the names
 * the bus exports.
 *
 * @packageDocumentation
 */
import { traceChannel, type TraceChannel } from "../core/trace.js";

/** The part of a `node:diagnostics_channel` Channel tpmkit uses. */
export type DiagnosticsChannel = TraceChannel;

/**
 * The named diagnostics channel, or a silent stand-in where `node:diagnostics_channel` is
 * unavailable. Node.js documentation, "Diagnostics Channel".
 *
 * @example
 * ```ts
 * const ch = diagnosticsChannel("tpmkit:mmio");
 * if (ch.hasSubscribers) ch.publish({ op: "read8", offset: 0 });
 * ```
 */
export const diagnosticsChannel: (name: string) => DiagnosticsChannel = traceChannel;
