/**
 * The swtpm control-channel protocol (swtpm include/swtpm/tpm_ioctl.h, man swtpm_ioctls(3)): command
 * numbers, capability bits, flags, and the TPM 1.2-style result codes the channel answers with.
 * Shared by the client (`SwtpmControl`) and the server (`serveSwtpm`). Every integer on the
 * socket is big-endian. No Node built-ins here.
 *
 * Sources: swtpm include/swtpm/tpm_ioctl.h, src/swtpm/ctrlchannel.c and swtpm_ioctls(3); the reply
 * layouts and result codes were checked against swtpm 0.7.1 (measured).
 *
 * @packageDocumentation
 */
import { TpmkitError, type TpmkitErrorOptions } from "../errors/index.js";
import { TPM_RC } from "../wire/constants.js";

/** Control-channel command codes (u32, big-endian). swtpm_ioctls(3); CMD_LOCK_STORAGE is swtpm ≥ 0.8. */
export const SWTPM_CMD = {
  GET_CAPABILITY: 0x01,
  INIT: 0x02,
  SHUTDOWN: 0x03,
  GET_TPMESTABLISHED: 0x04,
  SET_LOCALITY: 0x05,
  HASH_START: 0x06,
  HASH_DATA: 0x07,
  HASH_END: 0x08,
  CANCEL_TPM_CMD: 0x09,
  STORE_VOLATILE: 0x0a,
  RESET_TPMESTABLISHED: 0x0b,
  GET_STATEBLOB: 0x0c,
  SET_STATEBLOB: 0x0d,
  STOP: 0x0e,
  GET_CONFIG: 0x0f,
  SET_DATAFD: 0x10,
  SET_BUFFERSIZE: 0x11,
  GET_INFO: 0x12,
  LOCK_STORAGE: 0x13,
} as const;

/** Capability bits returned by CMD_GET_CAPABILITY (PTM_CAP_*). swtpm_ioctls(3). */
export const PTM_CAP = {
  INIT: 1 << 0,
  SHUTDOWN: 1 << 1,
  GET_TPMESTABLISHED: 1 << 2,
  SET_LOCALITY: 1 << 3,
  HASHING: 1 << 4,
  CANCEL_TPM_CMD: 1 << 5,
  STORE_VOLATILE: 1 << 6,
  RESET_TPMESTABLISHED: 1 << 7,
  GET_STATEBLOB: 1 << 8,
  SET_STATEBLOB: 1 << 9,
  STOP: 1 << 10,
  GET_CONFIG: 1 << 11,
  SET_DATAFD: 1 << 12,
  SET_BUFFERSIZE: 1 << 13,
  GET_INFO: 1 << 14,
  SEND_COMMAND_HEADER: 1 << 15,
  LOCK_STORAGE: 1 << 16,
} as const;

/** CMD_INIT flag: delete the volatile state file after reading it (PTM_INIT_FLAG_DELETE_VOLATILE). */
export const PTM_INIT_FLAG_DELETE_VOLATILE = 1;

/** CMD_GET_STATEBLOB request flag: hand the blob out decrypted (PTM_STATE_FLAG_DECRYPTED). */
export const PTM_STATE_FLAG_DECRYPTED = 1;
/** State-blob flag: the blob is encrypted (PTM_STATE_FLAG_ENCRYPTED). */
export const PTM_STATE_FLAG_ENCRYPTED = 2;

/** State-blob types (PTM_BLOB_TYPE_*). */
export const PTM_BLOB_TYPE = {
  PERMANENT: 1,
  VOLATILE: 2,
  SAVESTATE: 3,
} as const;

/** CMD_GET_INFO flags (SWTPM_INFO_*); 0.7 knows the first two. */
export const SWTPM_INFO = {
  TPMSPECIFICATION: 1,
  TPMATTRIBUTES: 2,
} as const;

/** CMD_GET_CONFIG flags (PTM_CONFIG_FLAG_*). */
export const PTM_CONFIG_FLAG = {
  FILE_KEY: 1,
  MIGRATION_KEY: 2,
} as const;

/**
 * TPM 1.2 result codes the control channel uses (TPM 1.2 Part 2 §16, as swtpm returns them; the
 * channel uses 1.2 numbering even for a TPM 2).
 */
export const SWTPM_RESULT = {
  SUCCESS: 0x00,
  AUTHFAIL: 0x01,
  BADINDEX: 0x02,
  BAD_PARAMETER: 0x03,
  AUDITFAILURE: 0x04,
  CLEAR_DISABLED: 0x05,
  DEACTIVATED: 0x06,
  DISABLED: 0x07,
  DISABLED_CMD: 0x08,
  FAIL: 0x09,
  BAD_ORDINAL: 0x0a,
  RESOURCES: 0x15,
  SIZE: 0x17,
  IOERROR: 0x1f,
  BAD_LOCALITY: 0x3d,
  INVALID_POSTINIT: 0x26,
} as const;

/** TPM 1.2 non-fatal (warning) bit in a result code (TPM_NON_FATAL). */
export const SWTPM_RESULT_NON_FATAL = 0x800;

/** Largest HASH_DATA payload per message (sizeof ptm_hdata.data). */
export const SWTPM_HASH_DATA_MAX = 4096;
/** Largest state blob CMD_SET_STATEBLOB accepts (swtpm: 512 KiB). */
export const SWTPM_STATEBLOB_MAX = 512 * 1024;

const RESULT_NAMES: ReadonlyMap<number, string> = /* @__PURE__ */ new Map(/* @__PURE__ */ Object.entries(SWTPM_RESULT).map(([k, v]) => [v, `TPM_${k}`]));
const TPM2_RC_NAMES: ReadonlyMap<number, string> = /* @__PURE__ */ new Map(
  /* @__PURE__ */ Object.entries(TPM_RC)
    .filter(([k, v]) => /^[A-Z][A-Z0-9_]+$/.test(k) && !["VER1", "WARN", "MAX_FM0", "NOT_USED", "N_MASK"].includes(k) && ((v >= 0x100 && v <= 0x17f) || (v > 0x900 && v <= 0x97f)))
    .map(([k, v]) => [v as number, `TPM_RC_${k}`]),
);

/**
 * Name of a control-channel result code: the TPM 1.2 name ("TPM_BAD_ORDINAL"), else the TPM 2 name
 * libtpms may pass through ("TPM_RC_FAILURE"), else "TPM_NON_FATAL+0x..." or "UNKNOWN(0x...)".
 *
 * @param code - the u32 result.
 * @returns a readable name.
 */
export function swtpmResultName(code: number): string {
  const c = code >>> 0;
  const n = RESULT_NAMES.get(c) ?? TPM2_RC_NAMES.get(c);
  if (n) return n;
  if ((c & ~0x7ff) === SWTPM_RESULT_NON_FATAL) return `TPM_NON_FATAL+0x${(c & 0x7ff).toString(16)}`;
  return `UNKNOWN(0x${c.toString(16)})`;
}

/** Name of a control command code, e.g. "CMD_SET_LOCALITY". */
export function swtpmCommandName(cmd: number): string {
  for (const [k, v] of Object.entries(SWTPM_CMD)) if (v === cmd) return `CMD_${k}`;
  return `CMD_0x${(cmd >>> 0).toString(16)}`;
}

/**
 * A swtpm control command answered with a non-zero result code. `result` is the code, `resultName`
 * its name, `command` the control command that failed.
 *
 * @example
 * ```ts
 * try { await ctrl.setLocality(5); } catch (e) {
 *   if (e instanceof SwtpmControlError && e.result === SWTPM_RESULT.BAD_LOCALITY) ...
 * }
 * ```
 */
export class SwtpmControlError extends TpmkitError {
  static override readonly errorName: string = "SwtpmControlError";
  /** The u32 result code. */
  readonly result: number;
  /** Its name, e.g. "TPM_BAD_LOCALITY". */
  readonly resultName: string;
  /** The control command, e.g. "CMD_SET_LOCALITY". */
  readonly command: string;
  constructor(command: number, result: number, options?: TpmkitErrorOptions) {
    const name = swtpmResultName(result);
    super("SWTPM_CONTROL", `swtpm ${swtpmCommandName(command)} failed: ${name} (0x${(result >>> 0).toString(16)})`, options);
    this.result = result >>> 0;
    this.resultName = name;
    this.command = swtpmCommandName(command);
  }
}

/** Decoded CMD_GET_CAPABILITY reply. */
export interface SwtpmCapabilities {
  /** The raw capability bits. */
  readonly bits: number;
  /** True if the bit for `cap` is set, e.g. `caps.has(PTM_CAP.SET_LOCALITY)`. */
  has(cap: number): boolean;
  /** Names of the set bits, e.g. ["INIT", "SHUTDOWN", ...]. */
  readonly names: readonly string[];
}

/**
 * Decodes capability bits into {@link SwtpmCapabilities}.
 *
 * @param bits - the u32 capability word.
 * @returns the decoded capabilities.
 */
export function decodeCapabilities(bits: number): SwtpmCapabilities {
  const b = bits >>> 0;
  const names = Object.entries(PTM_CAP)
    .filter(([, v]) => (b & v) !== 0)
    .map(([k]) => k);
  return { bits: b, has: (cap: number) => (b & cap) === cap, names };
}
