/**
 * CRB start methods: how the driver tells the TPM that a command is in the buffer (and, for some
 * methods, that a ready/idle/locality/cancel request was written). In the kernel these are the
 * ACPI TPM2 table's start methods 7 (COMMAND_BUFFER), 11 (ARM SMC) and 15 (CRB over FF-A); CRB over
 * FF-A is a start method of CRB, not a separate driver (kernel.md §2, §3; STYLE anchor "kernel").
 *
 * @packageDocumentation
 */
import type { Clock } from "../../core/clock.js";
import { TpmArgumentError, TpmkitError, TpmTransportError } from "../../errors/index.js";
import type { Mmio } from "../../bus/mmio.js";
import { CRB_INVOKE, CRB_REG } from "../../bus/crb-registers.js";

/**
 * What a start-method notification is about, as the DEN0138 TPM service's START qualifier:
 * `"command"` (0) for a command start and for cmdReady, goIdle and cancel; `"locality"` (1) for a
 * locality request or relinquish (kernel.md §3, "START: w5 is the qualifier").
 */
export type CrbStartQualifier = "command" | "locality";

/** The DEN0138 START qualifier values (w5) for each {@link CrbStartQualifier} (kernel.md §3). */
export const CRB_START_QUALIFIER: Readonly<Record<CrbStartQualifier, number>> = Object.freeze({ command: 0, locality: 1 });

/** The register write a {@link CrbStartMethod.notify} call follows. */
export type CrbStartEvent = "cmdReady" | "goIdle" | "cancel" | "requestLocality" | "relinquishLocality";

/** What a start method gets to act on: the register window and the locality in use. */
export interface CrbStartContext {
  /** The CRB register window. */
  readonly mmio: Mmio;
  /** Offset of the locality's register page inside `mmio` (locality × 0x1000). */
  readonly page: number;
  /** The locality the command or request is for, 0–4. */
  readonly locality: number;
  /** The clock every wait must use. */
  readonly clock: Clock;
  /** Aborts a wait inside the start method. */
  readonly signal?: AbortSignal | undefined;
}

/** What a start method's probe hook gets. */
export interface CrbProbeContext {
  readonly clock: Clock;
  readonly signal?: AbortSignal | undefined;
}

/**
 * The pluggable start-method seam of the `crb` driver (kernel `tpm_crb.c`: `crb_do_acpi_start`,
 * `has_idle`, the FF-A hooks). {@link mmioStart} and {@link smcStart} implement it here; an FF-A
 * start method (`ffaStart`) implements it in its own folder.
 *
 * Spec: PTP, "CRB Interface" (CRB), ACPI TPM2 table start methods (kernel.md §2), Arm DEN0138 START (kernel.md §3).
 */
export interface CrbStartMethod {
  /** Short name for traces and `info`: "mmio", "smc", "ffa", ... */
  readonly name: string;
  /**
   * Whether the driver uses cmdReady/goIdle (CTRL_REQ) around each command: the kernel's
   * `has_idle`, false for start methods 2, 8 and 11, true for 7 and (since v6.18) 15.
   */
  readonly hasIdle: boolean;
  /**
   * Optional probe hook, run first in `open()`. May throw `ProbeDeferredError` (the kernel's
   * -EPROBE_DEFER, e.g. the FF-A partition is not registered yet) or `TpmNotFoundError`.
   */
  probe?(ctx: CrbProbeContext): Promise<void>;
  /** Starts the command now in the buffer (mmio: write CTRL_START = 1). */
  start(ctx: CrbStartContext): Promise<void>;
  /**
   * Called after the driver wrote CTRL_REQ, LOC_CTRL or CTRL_CANCEL, with the DEN0138 qualifier
   * (FF-A sends START(qualifier, locality) here; MMIO needs nothing).
   */
  notify?(qualifier: CrbStartQualifier, event: CrbStartEvent, ctx: CrbStartContext): Promise<void>;
}

/** Options of {@link mmioStart}. */
export interface MmioStartOptions {
  /** Use cmdReady/goIdle around commands. Default true (ACPI start method 7 has idle). */
  hasIdle?: boolean;
}

/**
 * The plain CRB start method (ACPI TPM2 start method 7, COMMAND_BUFFER): write CTRL_START = 1.
 * Spec: PTP, CRB "TPM_CRB_CTRL_START_x"; kernel.md §2 "send", step 5.
 *
 * @param options - {@link MmioStartOptions}.
 * @returns a start method for `crb({ start })`.
 * @example
 * ```ts
 * const tpm = await Tpm.open(crb({ mmio: new CrbDevice({ backend }), start: mmioStart() }));
 * ```
 */
export function mmioStart(options: MmioStartOptions = {}): CrbStartMethod {
  return {
    name: "mmio",
    hasIdle: options.hasIdle ?? true,
    async start(ctx) {
      await ctx.mmio.write32(ctx.page + CRB_REG.CTRL_START, CRB_INVOKE);
    },
  };
}

/** What an SMC stand-in is called with: x0 = function id, all other arguments 0 (kernel.md §2). */
export interface SmcRequest {
  /** The SMC function id from the ACPI TPM2 start-method parameters (`smc_func_id`). */
  readonly functionId: number;
  /** Locality of the command (informational: the kernel passes no arguments). */
  readonly locality: number;
  readonly signal?: AbortSignal | undefined;
}

/** Options of {@link smcStart}. */
export interface SmcStartOptions {
  /**
   * Stands in for the Arm SMC into firmware. Returns a0: 0 is success, anything else fails the
   * command with `TpmTransportError` errno `EIO` (kernel.md §2, "a0 ≠ 0 gives -EIO").
   */
  call: (request: SmcRequest) => number | bigint | Promise<number | bigint>;
  /** SMC function id. Default 0. */
  functionId?: number;
  /** Use cmdReady/goIdle. Default false (the kernel's `has_idle` is false for method 11). */
  hasIdle?: boolean;
}

/**
 * The Arm SMC start method (ACPI TPM2 start method 11): write CTRL_START = 1, then call the
 * firmware through `call` and check its result. Spec: kernel.md §2 (start-method table, SMC).
 *
 * @param options - {@link SmcStartOptions}; `call` is required.
 * @returns a start method for `crb({ start })`.
 * @throws TpmArgumentError at once when `call` is not a function; later, from `start`,
 *   TpmTransportError (errno `EIO`) when `call` returns nonzero or throws.
 * @example
 * ```ts
 * const start = smcStart({ functionId: 0xc4000021, call: () => firmware.smc() });
 * const tpm = await Tpm.open(crb({ mmio: device, start }));
 * ```
 */
export function smcStart(options: SmcStartOptions): CrbStartMethod {
  if (typeof options?.call !== "function") {
    throw new TpmArgumentError("smcStart needs a `call` function");
  }
  const functionId = options.functionId ?? 0;
  return {
    name: "smc",
    hasIdle: options.hasIdle ?? false,
    async start(ctx) {
      await ctx.mmio.write32(ctx.page + CRB_REG.CTRL_START, CRB_INVOKE);
      let a0: number | bigint;
      try {
        a0 = await options.call({ functionId, locality: ctx.locality, signal: ctx.signal });
      } catch (e) {
        if (e instanceof TpmkitError) throw e;
        throw new TpmTransportError("crb: SMC start call failed", { errno: "EIO", cause: e });
      }
      if (typeof a0 === "bigint" ? a0 !== 0n : a0 !== 0) {
        throw new TpmTransportError(`crb: SMC start returned ${String(a0)} (expected 0)`, { errno: "EIO" });
      }
    },
  };
}
