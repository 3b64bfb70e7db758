/**
 * The fTPM-over-TEE transport: `ftpmTee({ tee, client })`, Linux drivers/char/tpm/tpm_ftpm_tee.c
 * over the GlobalPlatform TEE client model of `bus/tee`.
 *
 * @packageDocumentation
 */
export {
  ftpmTee,
  FTPM_SHM_SIZE,
  FTPM_TEE_CLOSE_TIMEOUT_MS,
  FTPM_TEE_OPEN_TIMEOUT_MS,
  type FtpmTeeOptions,
  type FtpmTeeTransport,
  type FtpmTeeState,
} from "./ftpm-tee.js";
