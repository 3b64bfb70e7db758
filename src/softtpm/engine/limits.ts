/**
 * The sizes and counts SoftTpm implements: what TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES)
 * reports for them and what the command handlers enforce.
 *
 * @packageDocumentation
 */

/** Largest command and response (TPM_PT_MAX_COMMAND_SIZE / MAX_RESPONSE_SIZE). */
export const SOFTTPM_MAX_COMMAND_SIZE = 4096;
/** Largest TPM2B_MAX_BUFFER / TPM2B_MAX_NV_BUFFER (TPM_PT_INPUT_BUFFER / NV_BUFFER_MAX). */
export const SOFTTPM_MAX_BUFFER = 1024;
/** Largest number of random bytes one TPM2_GetRandom returns: the largest digest (SHA-512). */
export const SOFTTPM_MAX_RANDOM = 64;

/** Sequence objects loaded at once (TPM_PT_HR_TRANSIENT_MIN): the object slots. */
export const MAX_SEQUENCES = 3;
/** HMAC sessions loaded at once (TPM_PT_HR_LOADED_MIN, TPM_PT_ACTIVE_SESSIONS_MAX). */
export const MAX_SESSIONS = 3;
/** Sessions in one command's authorization area (MAX_SESSION_NUM, TPM 2.0 Part 1 §18.6). */
export const MAX_SESSION_NUM = 3;
/** Session handles 0x02000000/0x03000000 + 0..63 are well formed (libtpms MAX_ACTIVE_SESSIONS). */
export const SESSION_HANDLE_RANGE = 64;

// Dictionary-attack parameters (TPM_PT_MAX_AUTH_FAIL, LOCKOUT_INTERVAL, LOCKOUT_RECOVERY): the
// values swtpm 0.7.1 reports (measured)
/** Failures before DA-protected entities are locked out (TPM_PT_MAX_AUTH_FAIL). */
export const MAX_AUTH_FAIL = 3;
/** Seconds of TPM clock after which one failure is forgiven (TPM_PT_LOCKOUT_INTERVAL). */
export const LOCKOUT_INTERVAL_S = 1000;
/** Seconds lockoutAuth stays unusable after a failure (TPM_PT_LOCKOUT_RECOVERY). */
export const LOCKOUT_RECOVERY_S = 1000;

/** Largest TPM2B_SENSITIVE_DATA (MAX_SYM_DATA), as swtpm 0.7.1. */
export const MAX_SYM_DATA = 128;
/**
 * Largest TPM2B_ENCRYPTED_SECRET: sizeof(TPMU_ENCRYPTED_SECRET), 384 bytes in libtpms 0.9 (RSA
 * 3072; swtpm 0.7.1, measured: 385 is TPM_RC_SIZE + P2).
 */
export const MAX_ENCRYPTED_SECRET = 384;

/** Milliseconds of TPM clock after power-on before Clock is safe again (TPM_PT_CLOCK_UPDATE). */
export const CLOCK_UPDATE_MS = 0x1000;
