/**
 * Browser-safe access to Node's `diagnostics_channel`. The core must not import `node:` modules
 * statically, so the module is fetched through `process.getBuiltinModule` when it exists (Node ≥
 * 20.16) and every publish is skipped when nobody subscribes (undici's pattern).
 *
 * @packageDocumentation
 */

/** The part of a `node:diagnostics_channel` Channel tpmkit uses. */
export interface DiagnosticsChannel {
  /** True when at least one subscriber listens: publish only then. */
  readonly hasSubscribers: boolean;
  /** Sends `message` to every subscriber, synchronously. */
  publish(message: unknown): void;
}

interface DiagnosticsModule {
  channel(name: string): DiagnosticsChannel;
}

let cached: DiagnosticsModule | null | undefined;

function diagnosticsModule(): DiagnosticsModule | null {
  if (cached !== undefined) return cached;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.("node:diagnostics_channel") as DiagnosticsModule | undefined;
  cached = mod && typeof mod.channel === "function" ? mod : null;
  return cached;
}

const silent: DiagnosticsChannel = { hasSubscribers: false, publish() {} };

/**
 * Returns the named diagnostics channel, or a silent stand-in where `node:diagnostics_channel` is
 * unavailable (browsers, other runtimes). Channel objects are cached by Node, so calling this
 * once per module is enough.
 *
 * Node.js documentation, "Diagnostics Channel".
 *
 * @param name - Channel name, e.g. `"tpmkit:mmio"`.
 * @returns A channel whose `hasSubscribers` tells whether publishing is worth building a message.
 * @throws Never.
 * @example
 * ```ts
 * const ch = diagnosticsChannel("tpmkit:mmio");
 * if (ch.hasSubscribers) ch.publish({ op: "read8", offset: 0 });
 * ```
 */
export function diagnosticsChannel(name: string): DiagnosticsChannel {
  const mod = diagnosticsModule();
  if (!mod) return silent;
  try {
    return mod.channel(name);
  } catch {
    return silent;
  }
}
