/**
 * From a TCTI string (or the environment, or nothing) to a {@link Transport}: a registry of
 * named factories, the environment variables tpm2-tools reads, and discovery in the order of
 * tpm2-tss's TCTI loader when nothing is configured.
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../core/clock.js";
import { TpmArgumentError, TpmNotFoundError, TpmTimeoutError, TpmkitError, abortErrorFrom, throwIfAborted } from "../errors/index.js";
import type { Transport } from "../core/transport.js";
import { formatTcti, parseTcti, type TctiRegistry, type TctiSpec } from "./tcti-parse.js";
import { tctiRegistry } from "./registry.js";

/**
 * What discovery tries, in tpm2-tss 4.x tctildr's order (`libtss2-tcti-default.so` has no
 * tpmkit equivalent and is left out): tabrmd, device:/dev/tpmrm0, device:/dev/tpm0,
 * device:/dev/tcm0, swtpm (localhost:2321), mssim (localhost:2321). A name missing from the
 * registry is reported as not available and skipped.
 */
export const DEFAULT_DISCOVERY: readonly string[] = /* @__PURE__ */ Object.freeze([
  "tabrmd",
  "device:/dev/tpmrm0",
  "device:/dev/tpm0",
  "device:/dev/tcm0",
  "swtpm:host=127.0.0.1,port=2321",
  "mssim:host=127.0.0.1,port=2321",
]);

/** Environment variables read, in order, when no TCTI string is passed (tpm2-tools' first, then the generic one). */
export const TCTI_ENV_VARS: readonly string[] = /* @__PURE__ */ Object.freeze(["TPM2TOOLS_TCTI", "TCTI"]);

/** Options of {@link openTransport}. */
export interface OpenTransportOptions {
  /** Name → factory (default {@link tctiRegistry}: every transport and board tpmkit has). */
  registry?: TctiRegistry;
  /** Environment to read TCTI strings from (default `process.env` where there is one). */
  env?: Readonly<Record<string, string | undefined>>;
  /** TCTI strings tried, in order, when nothing is configured (default {@link DEFAULT_DISCOVERY}). */
  discovery?: readonly string[];
  /** Bound on each discovery probe, ms (default 250). */
  probeTimeoutMs?: number;
  /** Clock for the probe bounds and for `open()` (default the system clock). */
  clock?: Clock;
  /** Aborts discovery. */
  signal?: AbortSignal;
}

/** One discovery attempt and how it ended. */
export interface TctiAttempt {
  /** The TCTI string tried. */
  tcti: string;
  /** `"skipped"` (not in the registry) or `"failed"`. */
  outcome: "skipped" | "failed";
  /** Why. */
  reason: string;
  /** The error, when it failed. */
  error?: unknown;
}

/** Discovery found no TPM. `attempts` lists what was tried and why each failed. */
export class TctiDiscoveryError extends TpmNotFoundError {
  static override readonly errorName: string = "TctiDiscoveryError";
  readonly attempts: readonly TctiAttempt[];
  constructor(attempts: readonly TctiAttempt[]) {
    super("no TPM found: nothing configured (TPM2TOOLS_TCTI, TCTI) and discovery found nothing", {
      details: attempts.map((a) => `${a.tcti}: ${a.outcome === "skipped" ? "skipped, " : ""}${a.reason}`).join("\n"),
    });
    this.attempts = attempts;
  }
}

function defaultEnv(): Readonly<Record<string, string | undefined>> {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env ?? {};
}

/**
 * The TCTI string that applies: the argument, else the first non-empty of `TPM2TOOLS_TCTI` and
 * `TCTI` in `env`, else `undefined` (discover).
 *
 * @param tcti - an explicit TCTI string, if any
 * @param env - the environment
 * @returns the string and where it came from, or undefined
 */
export function configuredTcti(
  tcti: string | undefined,
  env: Readonly<Record<string, string | undefined>> = defaultEnv(),
): { tcti: string; source: string } | undefined {
  if (tcti !== undefined) return { tcti, source: "argument" };
  for (const k of TCTI_ENV_VARS) {
    const v = env[k];
    if (v !== undefined && v.trim() !== "") return { tcti: v, source: k };
  }
  return undefined;
}

/**
 * Builds the transport a parsed spec names.
 *
 * @throws TpmArgumentError when the name is not in the registry
 */
function build(spec: TctiSpec, registry: TctiRegistry): Transport {
  const factory = Object.prototype.hasOwnProperty.call(registry, spec.name) ? registry[spec.name] : undefined;
  if (!factory) {
    const known = Object.keys(registry).sort().join(", ");
    throw new TpmArgumentError(`unknown TCTI "${spec.name}" (in "${spec.text}"); registered: ${known || "none"}`);
  }
  return factory(spec.config, spec);
}

/** A view of `t` whose first `open()` is a no-op (discovery already opened it). */
function alreadyOpened(t: Transport): Transport {
  let skipped = false;
  return new Proxy(t, {
    get(target, prop) {
      if (prop === "open" && !skipped && target.open) {
        return async () => {
          skipped = true;
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function probe(t: Transport, clock: Clock, timeoutMs: number, outer: AbortSignal | undefined): Promise<void> {
  if (!t.open) return;
  const ac = new AbortController();
  const onOuter = () => ac.abort(outer!.reason);
  outer?.addEventListener("abort", onOuter, { once: true });
  let timer: { clear(): void } | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = clock.setTimer(timeoutMs, () => {
        const e = new TpmTimeoutError("probe", timeoutMs);
        ac.abort(e);
        reject(e); // a transport that ignores the signal is still bounded
      });
      ac.signal.addEventListener("abort", () => reject(abortErrorFrom(ac.signal)), { once: true });
      t.open!({ clock, locality: 0, signal: ac.signal }).then(resolve, reject);
    });
  } finally {
    timer?.clear();
    outer?.removeEventListener("abort", onOuter);
  }
}

function reasonOf(e: unknown): string {
  if (e instanceof TpmkitError) return e.shortMessage;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Returns a transport for a TCTI string, the environment, or whatever discovery finds.
 *
 * 1. `tcti` given: parse it and build it from the registry (not opened: the chip opens it).
 * 2. Else `TPM2TOOLS_TCTI`, then `TCTI`, from `env`: the same.
 * 3. Else discovery: each string of `discovery` (tpm2-tss tctildr's order) whose name is
 *    registered is built and opened, bounded by `probeTimeoutMs`; the first that opens is
 *    returned (already opened: its next `open()` is a no-op). When none does, a
 *    {@link TctiDiscoveryError} (a TpmNotFoundError) lists every attempt and why it failed —
 *    well under a second when nothing is there, since each probe is bounded.
 *
 * Spec: TCG TSS 2.0 TCTI specification; tpm2-tss tctildr; tpm2-tools TPM2TOOLS_TCTI.
 *
 * @param tcti - a TCTI string such as `"mssim:host=127.0.0.1,port=2321"`, or undefined
 * @param options - registry, env, discovery list, probe bound, clock, signal
 * @returns the transport
 * @throws TpmArgumentError for a malformed string or an unregistered name
 * @throws TctiDiscoveryError when discovery finds nothing
 * @throws TpmAbortError when `signal` aborts discovery
 *
 * @example
 * ```ts
 * const tpm = await Tpm.open(await openTransport("device:/dev/tpmrm0"));
 * const any = await openTransport(); // TPM2TOOLS_TCTI / TCTI, else discovery in tpm2-tss's order
 * ```
 */
export async function openTransport(tcti?: string, options: OpenTransportOptions = {}): Promise<Transport> {
  const registry = options.registry ?? tctiRegistry;
  const configured = configuredTcti(tcti, options.env ?? defaultEnv());
  if (configured) {
    let spec: TctiSpec;
    try {
      spec = parseTcti(configured.tcti);
    } catch (e) {
      if (configured.source === "argument") throw e;
      throw new TpmArgumentError(`${configured.source}: ${reasonOf(e)}`, { cause: e });
    }
    return build(spec, registry);
  }
  const clock = options.clock ?? systemClock;
  const probeTimeoutMs = options.probeTimeoutMs ?? 250;
  const attempts: TctiAttempt[] = [];
  for (const text of options.discovery ?? DEFAULT_DISCOVERY) {
    throwIfAborted(options.signal);
    const spec = parseTcti(text);
    if (!Object.prototype.hasOwnProperty.call(registry, spec.name)) {
      attempts.push({ tcti: text, outcome: "skipped", reason: `no "${spec.name}" transport in the registry` });
      continue;
    }
    let t: Transport | undefined;
    try {
      t = build(spec, registry);
      await probe(t, clock, probeTimeoutMs, options.signal);
      return alreadyOpened(t);
    } catch (e) {
      if (options.signal?.aborted) {
        await t?.close?.().catch(() => undefined);
        throw abortErrorFrom(options.signal);
      }
      attempts.push({ tcti: formatTcti(spec), outcome: "failed", reason: reasonOf(e), error: e });
      await t?.close?.().catch(() => undefined);
    }
  }
  throw new TctiDiscoveryError(attempts);
}
