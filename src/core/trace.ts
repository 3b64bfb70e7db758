/**
 * Named `node:diagnostics_channel` channels, reached without a static `node:` import so the core
 * stays usable outside Node. Publishing is skipped when nobody subscribed.
 *
 * Channels: `tpmkit:chip:command` ({@link ChipCommandEvent}), `tpmkit:chip:readiness`.
 *
 * @packageDocumentation
 */

/** The subset of a diagnostics channel tpmkit uses. */
export interface TraceChannel {
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
}

type DcModule = { channel(name: string): TraceChannel };

const noop: TraceChannel = { hasSubscribers: false, publish() {} };

let dc: DcModule | null | undefined;
function loadDc(): DcModule | null {
  if (dc !== undefined) return dc;
  try {
    const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const mod = p?.getBuiltinModule?.("node:diagnostics_channel") as DcModule | undefined;
    dc = mod && typeof mod.channel === "function" ? mod : null;
  } catch {
    dc = null;
  }
  return dc;
}

/** The named channel, or a no-op channel where diagnostics_channel is not available. Never throws. */
export function traceChannel(name: string): TraceChannel {
  const mod = loadDc();
  if (!mod) return noop;
  try {
    return mod.channel(name);
  } catch {
    return noop;
  }
}
