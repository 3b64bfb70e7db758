/**
 * Per-command duration bounds and the spec's interface timeouts, as the Linux kernel uses them
 * (tpm2-cmd.c duration map since Sept 2025; TIS/CRB timeouts A–D from PTP §5.5.1.4 / §6.5.2.3 and
 * TIS 1.3). Values in milliseconds.
 *
 * @packageDocumentation
 */
import { TPM_CC } from "../wire/constants.js";

/** The duration for commands not in the table (the kernel's "any other"). */
export const DEFAULT_DURATION_MS = 120_000;

/** Command code → duration (ms), from the kernel's TPM2 duration map. */
export const COMMAND_DURATIONS_MS: ReadonlyMap<number, number> = new Map<number, number>([
  [TPM_CC.Startup, 750],
  [TPM_CC.SelfTest, 3000],
  [TPM_CC.GetRandom, 2000],
  [TPM_CC.HashSequenceStart, 750],
  [TPM_CC.SequenceUpdate, 750],
  [TPM_CC.SequenceComplete, 750],
  [TPM_CC.EventSequenceComplete, 750],
  [TPM_CC.VerifySignature, 30_000],
  [TPM_CC.PCR_Extend, 750],
  [TPM_CC.HierarchyControl, 2000],
  [TPM_CC.HierarchyChangeAuth, 2000],
  [TPM_CC.GetCapability, 750],
  [TPM_CC.NV_Read, 2000],
  [TPM_CC.CreatePrimary, 30_000],
  [TPM_CC.Create, 30_000],
  [TPM_CC.CreateLoaded, 30_000],
]);

/** The duration bound of a command code. */
export function commandDuration(cc: number): number {
  return COMMAND_DURATIONS_MS.get(cc) ?? DEFAULT_DURATION_MS;
}

/** Interface timeouts in ms: the spec's TIMEOUT_A..D (TCG PC Client PTP §5.5.1.4). */
export interface InterfaceTimeouts {
  /** Locality grant, tpmRegValidSts at probe, burstCount. */
  a: number;
  /** commandReady. */
  b: number;
  /** stsValid / dataAvail during data transfer; CRB register waits (cmdReady, goIdle, locality). */
  c: number;
  /** Short waits (unused by TPM 2.0 paths). */
  d: number;
}

/**
 * The one set of interface timeouts every register-level driver uses: TPM 2.0's fixed values after
 * probe (Linux drivers/char/tpm/tpm.h, TPM2_TIMEOUT_A..D; B is 4000 ms since the kernel's
 * "tpm: tis: Double the timeout B to 4s").
 */
export const TIMEOUTS_TPM2: Readonly<InterfaceTimeouts> = /* @__PURE__ */ Object.freeze({ a: 750, b: 4000, c: 200, d: 30 });
/**
 * Timeouts before the TPM family is known: the larger of the TIS 1.2 and TPM 2.0 values (Linux
 * drivers/char/tpm/tpm_tis_core.c, tpm_tis_core_init()).
 */
export const TIMEOUTS_PROBE: Readonly<InterfaceTimeouts> = /* @__PURE__ */ Object.freeze({ a: 750, b: 4000, c: 750, d: 750 });

/**
 * The kernel's retry schedule for TPM_RC_RETRY / TPM_RC_TESTING: sleep 20 ms, doubling, and give
 * up when the next delay would exceed 2000 ms (20+40+…+1280 = 2540 ms in all).
 */
export const RETRY_FIRST_DELAY_MS = 20;
/** Largest single retry delay. */
export const RETRY_MAX_DELAY_MS = 2000;
