/**
 * The plain CRB start method: ACPI TPM2 start method 7 (COMMAND_BUFFER), CTRL_START = 1.
 *
 * @packageDocumentation
 */
import { CRB_INVOKE, CRB_REG } from "../../bus/crb-registers.js";
import type { CrbStartMethod } from "./start-method.js";

/** Options of {@link mmioStart}. */
export interface MmioStartOptions {
  /** Use cmdReady/goIdle around commands. Default true (ACPI start method 7 has idle). */
  hasIdle?: boolean;
}

/**
 * The plain CRB start method (ACPI TPM2 start method 7, COMMAND_BUFFER): write CTRL_START = 1.
 * Spec: TCG PC Client PTP, CRB "TPM_CRB_CTRL_START_x"; Linux drivers/char/tpm/tpm_crb.c,
 * crb_send() (start methods 6 and 7).
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
