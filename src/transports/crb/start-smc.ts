/**
 * The Arm SMC CRB start method: ACPI TPM2 start method 11 (COMMAND_BUFFER_WITH_ARM_SMC),
 * CTRL_START = 1 then an SMC into firmware.
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmkitError, TpmTransportError } from "../../errors/index.js";
import { CRB_INVOKE, CRB_REG } from "../../bus/crb-registers.js";
import type { CrbStartMethod } from "./start-method.js";

/**
 * What an SMC stand-in is called with: x0 = function id, all other arguments 0 (Linux
 * drivers/char/tpm/tpm_crb.c, tpm_crb_smc_start()).
 */
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
   * command with `TpmTransportError` errno `EIO` (Linux tpm_crb.c, tpm_crb_smc_start(): a0 ≠ 0
   * gives -EIO).
   */
  call: (request: SmcRequest) => number | bigint | Promise<number | bigint>;
  /** SMC function id. Default 0. */
  functionId?: number;
  /** Use cmdReady/goIdle. Default false (the kernel's `has_idle` is false for method 11). */
  hasIdle?: boolean;
}

/**
 * The Arm SMC start method (ACPI TPM2 start method 11): write CTRL_START = 1, then call the
 * firmware through `call` and check its result. Linux drivers/char/tpm/tpm_crb.c, crb_send()
 * and tpm_crb_smc_start().
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
