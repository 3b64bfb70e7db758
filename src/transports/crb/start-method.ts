/**
 * The CRB start-method contract: how the driver tells the TPM that a command is in the buffer
 * (and, for some methods, that a ready/idle/locality/cancel request was written). In the kernel
 * these are the ACPI TPM2 table's start methods 7 (COMMAND_BUFFER), 11 (COMMAND_BUFFER_WITH_ARM_SMC)
 * and 15 (CRB over FF-A); CRB over FF-A is a start method of CRB, not a separate driver (Linux
 * drivers/char/tpm/tpm_crb.c, crb_do_acpi_start() and crb_send(); drivers/char/tpm/tpm_crb_ffa.c).
 * Each method is a module of its own: `mmioStart`, `smcStart`, and an FF-A method next to them.
 *
 * @packageDocumentation
 */
import type { Clock } from "../../core/clock.js";
import type { Mmio } from "../../bus/mmio.js";

/**
 * What a start-method notification is about, as the Arm DEN0138 TPM service's START qualifier:
 * `"command"` (0) for a command start and for cmdReady, goIdle and cancel; `"locality"` (1) for a
 * locality request or relinquish (Linux tpm_crb_ffa.c, tpm_crb_ffa_start()).
 */
export type CrbStartQualifier = "command" | "locality";

/** The Arm DEN0138 START qualifier values (w5) for each {@link CrbStartQualifier} (Linux tpm_crb_ffa.h, CRB_FFA_START_TYPE_*). */
export const CRB_START_QUALIFIER: Readonly<Record<CrbStartQualifier, number>> = /* @__PURE__ */ Object.freeze({ command: 0, locality: 1 });

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
 * The pluggable start-method seam of the `crb` driver (Linux tpm_crb.c: crb_do_acpi_start(),
 * `has_idle`, the FF-A hooks). {@link mmioStart} and {@link smcStart} implement it; an FF-A start
 * method (CRB over Arm FF-A, a later addition) implements it too.
 *
 * Spec: TCG PC Client PTP, "CRB Interface"; ACPI TPM2 table start methods (TCG ACPI
 * Specification, "Start Method"); Arm DEN0138 (TPM service over FF-A), START.
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
