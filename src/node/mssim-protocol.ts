/**
 * The Microsoft/IBM TPM 2.0 simulator ("mssim") TCP protocol: command codes, the
 * TPM_SEND_COMMAND frame, and size limits. Pure (no Node APIs), shared by the client transport
 * and the server. Source: TCG TPM 2.0 reference implementation (microsoft/ms-tpm-20-ref),
 * TPMCmd/Simulator/include/TpmTcpProtocol.h and TPMCmd/Simulator/src/TcpServer.c.
 *
 * Every integer on the wire is big-endian. A request starts with a u32 command code; unless
 * noted the server answers with a u32 0 acknowledgement.
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import { HEADER_SIZE } from "../wire/buffer.js";
import { writeU32be } from "../wire/bytes.js";

/**
 * mssim command codes (u32, big-endian). Platform signals go to the platform port (command port
 * + 1); TPM_SEND_COMMAND and the hash signals to the command port. Simulator TpmTcpProtocol.h.
 */
export const MSSIM_CMD = {
  SIGNAL_POWER_ON: 1,
  SIGNAL_POWER_OFF: 2,
  SIGNAL_PHYS_PRES_ON: 3,
  SIGNAL_PHYS_PRES_OFF: 4,
  SIGNAL_HASH_START: 5,
  SIGNAL_HASH_DATA: 6,
  SIGNAL_HASH_END: 7,
  TPM_SEND_COMMAND: 8,
  SIGNAL_CANCEL_ON: 9,
  SIGNAL_CANCEL_OFF: 10,
  SIGNAL_NV_ON: 11,
  SIGNAL_NV_OFF: 12,
  SIGNAL_KEY_CACHE_ON: 13,
  SIGNAL_KEY_CACHE_OFF: 14,
  REMOTE_HANDSHAKE: 15,
  SET_ALTERNATIVE_RESULT: 16,
  SIGNAL_RESET: 17,
  SIGNAL_RESTART: 18,
  SESSION_END: 20,
  STOP: 21,
  GET_COMMAND_RESPONSE_SIZES: 25,
  TEST_FAILURE_MODE: 30,
} as const;

/** Name of an mssim command code, for messages (`"SIGNAL_NV_ON"`), or `"0x…"` when unknown. */
export function mssimCommandName(code: number): string {
  for (const [k, v] of Object.entries(MSSIM_CMD)) if (v === code) return k;
  return `0x${(code >>> 0).toString(16).padStart(8, "0")}`;
}

/** Default command port of the simulator (the platform port is this + 1). */
export const MSSIM_DEFAULT_PORT = 2321;

/** REMOTE_HANDSHAKE server version the reference simulator reports. */
export const MSSIM_SERVER_VERSION = 1;

/** REMOTE_HANDSHAKE endpoint flags. Simulator TpmTcpProtocol.h. */
export const MSSIM_ENDPOINT = {
  PLATFORM_AVAILABLE: 0x01,
  IN_RAW_MODE: 0x04,
  SUPPORTS_PP: 0x08,
} as const;

/**
 * Largest TPM command or response tpmkit carries over mssim by default: 4096 bytes, the
 * simulator's and the Linux kernel's buffer size (TPM_BUFSIZE; TPM2_PT_MAX_COMMAND_SIZE of
 * swtpm 0.7.1 is 0x1000).
 */
export const MSSIM_DEFAULT_MAX_SIZE = 4096;

/** Size of the TPM_SEND_COMMAND prefix: u32 command (8), u8 locality, u32 size. */
export const MSSIM_SEND_PREFIX_SIZE = 9;

/**
 * Builds one TPM_SEND_COMMAND frame: u32 8, u8 locality, u32 size, then the command, as one
 * buffer so it goes out in one write.
 *
 * @param command - a whole TPM command
 * @param locality - 0–4 (the simulator takes any u8; tpmkit allows the TPM's five)
 * @returns the frame
 * @throws TpmArgumentError when the locality is out of range or the command is shorter than a
 *   TPM header
 *
 * @example
 * ```ts
 * encodeSendCommand(fromHex("80010000000c0000017b0008"), 0);
 * // 00000008 00 0000000c 80010000000c0000017b0008
 * ```
 */
export function encodeSendCommand(command: Uint8Array, locality: number): Uint8Array {
  if (!Number.isInteger(locality) || locality < 0 || locality > 4) {
    throw new TpmArgumentError(`mssim: locality ${locality} is outside 0–4`);
  }
  if (command.length < HEADER_SIZE) {
    throw new TpmArgumentError(`mssim: a TPM command needs at least ${HEADER_SIZE} bytes, got ${command.length}`);
  }
  const out = new Uint8Array(MSSIM_SEND_PREFIX_SIZE + command.length);
  writeU32be(out, 0, MSSIM_CMD.TPM_SEND_COMMAND);
  out[4] = locality;
  writeU32be(out, 5, command.length);
  out.set(command, MSSIM_SEND_PREFIX_SIZE);
  return out;
}

/**
 * Checks a response size prefix from the command port before anything is allocated or read (a
 * lying prefix must never make the client allocate or wait for a body it will not accept).
 *
 * @param size - the u32 the peer sent
 * @param max - the largest response accepted
 * @throws TpmFormatError when the size is below a TPM header or above `max`
 */
export function checkResponseSize(size: number, max: number): void {
  if (size < HEADER_SIZE) throw new TpmFormatError(`mssim: response size prefix ${size} is below the ${HEADER_SIZE}-byte TPM header`);
  if (size > max) throw new TpmFormatError(`mssim: response size prefix ${size} exceeds the ${max}-byte limit`);
}
