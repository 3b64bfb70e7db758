/**
 * Byte helpers shared by every layer that builds or reads TPM frames: big-endian 32-bit reads and
 * writes, concatenation, and the 10-byte error response. Written once here; every codec, device
 * model, server and test double uses these.
 *
 * @packageDocumentation
 */
import { TpmFormatError } from "../errors/index.js";

/**
 * Reads the big-endian 32-bit unsigned integer at `offset` of `bytes`.
 *
 * @throws `TpmFormatError` (exported from the package root) when fewer than 4 bytes remain at `offset`.
 */
export function readU32be(bytes: Uint8Array, offset = 0, what = "u32"): number {
  if (!Number.isInteger(offset) || offset < 0 || offset + 4 > bytes.length) {
    throw new TpmFormatError(`${what}: needs 4 bytes at offset ${offset}, ${Math.max(0, bytes.length - offset)} present`);
  }
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

/** Reads the big-endian 16-bit unsigned integer at `offset` (bounds-checked like {@link readU32be}). */
export function readU16be(bytes: Uint8Array, offset = 0, what = "u16"): number {
  if (!Number.isInteger(offset) || offset < 0 || offset + 2 > bytes.length) {
    throw new TpmFormatError(`${what}: needs 2 bytes at offset ${offset}, ${Math.max(0, bytes.length - offset)} present`);
  }
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

/** Writes `value` as a big-endian 32-bit unsigned integer at `offset` of `bytes` (which must have room). */
export function writeU32be(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = (value >>> 24) & 0xff;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

/** `value` as 4 big-endian bytes. */
export function u32be(value: number): Uint8Array {
  return Uint8Array.of((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

/** The byte arrays one after another, in a new array. */
export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * The 10-byte TPM response that carries only a response code: tag TPM_ST_NO_SESSIONS (0x8001),
 * size 10, `rc`. What a TPM answers when a command fails before it runs (TPM 2.0 Part 1 §18.10,
 * "Response Header").
 */
export function errorResponse(rc: number): Uint8Array {
  return Uint8Array.of(0x80, 0x01, 0, 0, 0, 10, (rc >>> 24) & 0xff, (rc >>> 16) & 0xff, (rc >>> 8) & 0xff, rc & 0xff);
}

/** Do two byte arrays hold the same bytes? (Not constant-time: for tests and framing, not secrets.) */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Equality of two byte strings in time that depends only on their lengths, not on where they
 * differ: for MACs, HMACs, tickets and auth values (the kernel moved its HMAC check from memcmp to
 * crypto_memneq for this reason, drivers/char/tpm/tpm2-sessions.c).
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let d = a.length ^ b.length;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
