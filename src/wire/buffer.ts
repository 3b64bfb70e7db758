/**
 * Big-endian reader and writer for the TPM 2.0 wire format (TPM 2.0 Part 1 §18, Part 2 §5).
 * The reader checks every length against the bytes actually present and throws
 * {@link TpmFormatError} (never a RangeError) when a field runs past the end.
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";

/**
 * Reads big-endian fields from a byte array, bounds-checked.
 *
 * @example
 * ```ts
 * import { TpmReader, fromHex } from "tpmkit";
 * // a TPM2_GetRandom(8) response as swtpm 0.7.1 sent it
 * const r = new TpmReader(fromHex("8001000000140000000000080d5dd37366b45f17"));
 * const tag = r.u16(), size = r.u32(), rc = r.u32(); // 0x8001, 20, 0
 * const randomBytes = r.tpm2b(); // 8 bytes
 * r.expectEnd();
 * ```
 */
export class TpmReader {
  readonly bytes: Uint8Array;
  /** Current read position. */
  offset: number;
  /** One past the last readable byte. */
  end: number;

  constructor(bytes: Uint8Array, offset = 0, end = bytes.length) {
    this.bytes = bytes;
    this.offset = offset;
    this.end = end;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.end - this.offset;
  }

  #need(n: number, what: string): void {
    if (n > this.end - this.offset) {
      throw new TpmFormatError(`truncated: ${what} needs ${n} bytes at offset ${this.offset}, ${this.end - this.offset} left`);
    }
  }

  u8(what = "u8"): number {
    this.#need(1, what);
    return this.bytes[this.offset++]!;
  }

  u16(what = "u16"): number {
    this.#need(2, what);
    const b = this.bytes;
    const o = this.offset;
    this.offset = o + 2;
    return (b[o]! << 8) | b[o + 1]!;
  }

  u32(what = "u32"): number {
    this.#need(4, what);
    const b = this.bytes;
    const o = this.offset;
    this.offset = o + 4;
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }

  u64(what = "u64"): bigint {
    this.#need(8, what);
    const hi = this.u32(what);
    const lo = this.u32(what);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** `n` raw bytes (a view, not a copy). */
  bytesN(n: number, what = "bytes"): Uint8Array {
    if (!Number.isInteger(n) || n < 0) throw new TpmFormatError(`${what}: bad length ${n}`);
    this.#need(n, what);
    const v = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  /** A TPM2B: u16 size then that many bytes. `max` rejects sizes the structure does not allow. */
  tpm2b(what = "TPM2B", max = 0xffff): Uint8Array {
    const n = this.u16(`${what}.size`);
    if (n > max) throw new TpmFormatError(`${what}: size ${n} exceeds the maximum ${max}`);
    return this.bytesN(n, what);
  }

  /** A u32 count then `count` items, with `count` bounded by `max`. */
  list<T>(item: (r: TpmReader) => T, what = "list", max = 0xffff): T[] {
    const n = this.u32(`${what}.count`);
    if (n > max) throw new TpmFormatError(`${what}: count ${n} exceeds the maximum ${max}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }

  /** Throws unless every byte was consumed. */
  expectEnd(what = "structure"): void {
    if (this.offset !== this.end) throw new TpmFormatError(`${what}: ${this.end - this.offset} trailing bytes`);
  }
}

/**
 * Writes big-endian fields into a growing buffer.
 *
 * @example
 * ```ts
 * import { TpmWriter, toHex } from "tpmkit";
 * // TPM2_GetRandom(16): tag TPM_ST_NO_SESSIONS, size 12, TPM_CC_GetRandom, bytesRequested
 * const w = new TpmWriter();
 * w.u16(0x8001).u32(12).u32(0x17b).u16(16);
 * const cmd = w.finish(); // toHex(cmd) === "80010000000c0000017b0010"
 * ```
 */
export class TpmWriter {
  #buf: Uint8Array;
  #len = 0;

  constructor(initial = 64) {
    this.#buf = new Uint8Array(Math.max(1, initial));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #grow(n: number): void {
    const need = this.#len + n;
    if (need <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < need) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.#buf.subarray(0, this.#len));
    this.#buf = nb;
  }

  u8(v: number): this {
    checkUint(v, 0xff, "u8");
    this.#grow(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  u16(v: number): this {
    checkUint(v, 0xffff, "u16");
    this.#grow(2);
    const b = this.#buf;
    const o = this.#len;
    b[o] = v >>> 8;
    b[o + 1] = v & 0xff;
    this.#len = o + 2;
    return this;
  }

  u32(v: number): this {
    checkUint(v, 0xffffffff, "u32");
    this.#grow(4);
    this.#put32(this.#len, v);
    this.#len += 4;
    return this;
  }

  #put32(o: number, v: number): void {
    const b = this.#buf;
    b[o] = v >>> 24;
    b[o + 1] = (v >>> 16) & 0xff;
    b[o + 2] = (v >>> 8) & 0xff;
    b[o + 3] = v & 0xff;
  }

  u64(v: bigint | number): this {
    const b = BigInt(v);
    if (b < 0n || b > 0xffffffffffffffffn) throw new TpmArgumentError(`u64 out of range: ${v}`);
    this.#grow(8);
    this.#put32(this.#len, Number(b >> 32n));
    this.#put32(this.#len + 4, Number(b & 0xffffffffn));
    this.#len += 8;
    return this;
  }

  /**
   * Raw bytes. Anything but a Uint8Array is refused (a string's `length` would otherwise write that
   * many zero bytes: a silently wrong command).
   *
   * @throws `TpmArgumentError` (exported from the package root) when `b` is not a Uint8Array.
   */
  bytes(b: Uint8Array): this {
    if (!(b instanceof Uint8Array)) throw new TpmArgumentError(`TpmWriter.bytes: expected a Uint8Array, got ${typeof b}`);
    this.#grow(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** A TPM2B: u16 size then the bytes. */
  tpm2b(b: Uint8Array): this {
    if (!(b instanceof Uint8Array)) throw new TpmArgumentError(`TpmWriter.tpm2b: expected a Uint8Array, got ${typeof b}`);
    if (b.length > 0xffff) throw new TpmArgumentError(`TPM2B too long: ${b.length} bytes`);
    return this.u16(b.length).bytes(b);
  }

  /** Overwrites a u32 at `offset` (for size fields written after the body). */
  patchU32(offset: number, v: number): this {
    if (offset < 0 || offset + 4 > this.#len) throw new TpmArgumentError(`patch offset ${offset} outside ${this.#len}`);
    this.#put32(offset, v >>> 0);
    return this;
  }

  /** Forgets what was written, keeping the buffer (for a writer reused across commands). */
  reset(): this {
    this.#len = 0;
    return this;
  }

  /** A copy of the bytes written. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new TpmArgumentError(`${what} out of range: ${v}`);
}

/** Lowercase hex of `b`. */
export function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, "0");
  return s;
}

/** Bytes from a hex string (whitespace and an optional 0x prefix allowed). */
export function fromHex(hex: string): Uint8Array {
  let h = hex.trim().replace(/\s+/g, "");
  if (h.startsWith("0x") || h.startsWith("0X")) h = h.slice(2);
  if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) throw new TpmArgumentError(`not a hex string: "${hex}"`);
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
  return out;
}

/** The TPM command/response header (10 bytes): tag, size, code. Part 1 §18.8. */
export interface TpmHeader {
  tag: number;
  size: number;
  code: number;
}

/** Size of the command/response header. */
export const HEADER_SIZE = 10;

/**
 * Reads and checks a header: at least 10 bytes, size field ≥ 10 and equal to `bytes.length`
 * (or ≤ it when `exact` is false).
 */
export function readHeader(bytes: Uint8Array, exact = true): TpmHeader {
  if (bytes.length < HEADER_SIZE) throw new TpmFormatError(`truncated: ${bytes.length} bytes, a TPM header needs 10`);
  const tag = (bytes[0]! << 8) | bytes[1]!;
  const size = ((bytes[2]! << 24) | (bytes[3]! << 16) | (bytes[4]! << 8) | bytes[5]!) >>> 0;
  const code = ((bytes[6]! << 24) | (bytes[7]! << 16) | (bytes[8]! << 8) | bytes[9]!) >>> 0;
  if (size < HEADER_SIZE) throw new TpmFormatError(`header size field ${size} is below 10`);
  if (exact ? size !== bytes.length : size > bytes.length) {
    throw new TpmFormatError(`header size field says ${size} bytes, ${bytes.length} present`);
  }
  return { tag, size, code };
}
