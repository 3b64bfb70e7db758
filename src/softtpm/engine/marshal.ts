/**
 * Marshalling for the SoftTpm engine: a bounds-checked reader over the command bytes, a response
 * writer over one preallocated buffer, the {@link Rc} that ends a command with a response code,
 * and the format-1 response-code builders (TPM 2.0 Part 2 §6.6).
 *
 * @packageDocumentation
 */
import { TPM_RC } from "../../wire/constants.js";
import { u32be } from "../../wire/bytes.js";
import type { NvIndexState } from "../state.js";
import { SOFTTPM_MAX_COMMAND_SIZE } from "./limits.js";

/** Thrown inside command handlers to end a command with a response code. */
export class Rc {
  constructor(readonly rc: number) {}
}

// Format-1 response codes name a handle (bits 8–10), parameter (TPM_RC_P + number in bits 8–11)
// or session (TPM_RC_S + number in bits 8–10). TPM 2.0 Part 2 §6.6.3.
/** `rc` about handle `n` (1-based). */
export const H = (rc: number, n: number): number => rc | TPM_RC.H | (n << 8);
/** `rc` about parameter `n` (1-based). */
export const P = (rc: number, n: number): number => rc | TPM_RC.P | (n << 8);
/** `rc` about session `n` (1-based). */
export const S = (rc: number, n: number): number => rc | TPM_RC.S | (n << 8);

/** An empty byte string (shared, never written to). */
export const EMPTY = /* @__PURE__ */ new Uint8Array(0);

/** A reusable, bounds-checked reader over the command bytes (no DataView, no allocation). */
export class In {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Number of the parameter being read, for TPM_RC_INSUFFICIENT + P + n. */
  param = 0;

  need(n: number): void {
    if (this.end - this.pos < n) throw new Rc(P(TPM_RC.INSUFFICIENT, this.param));
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const b = this.buf;
    const v = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** A TPM2B whose size may be at most `max` (else TPM_RC_SIZE + P + n). */
  tpm2b(max: number): Uint8Array {
    const n = this.u16();
    if (n > max) throw new Rc(P(TPM_RC.SIZE, this.param));
    return this.bytes(n);
  }
  /** Ends parameter parsing: trailing bytes give TPM_RC_SIZE. */
  done(): void {
    if (this.pos !== this.end) throw new Rc(TPM_RC.SIZE);
  }
}

/** A reusable response writer over one preallocated buffer. */
export class Out {
  readonly buf = new Uint8Array(SOFTTPM_MAX_COMMAND_SIZE);
  pos = 0;
  room(n: number): void {
    if (this.pos + n > this.buf.length) throw new Rc(TPM_RC.FAILURE);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.buf[this.pos++] = v >>> 8;
    this.buf[this.pos++] = v;
  }
  u32(v: number): void {
    this.room(4);
    const b = this.buf;
    b[this.pos++] = v >>> 24;
    b[this.pos++] = v >>> 16;
    b[this.pos++] = v >>> 8;
    b[this.pos++] = v;
  }
  u64(v: number | bigint): void {
    const b = BigInt(v);
    this.u32(Number(b >> 32n) >>> 0);
    this.u32(Number(b & 0xffffffffn) >>> 0);
  }
  bytes(d: Uint8Array): void {
    this.room(d.length);
    this.buf.set(d, this.pos);
    this.pos += d.length;
  }
  tpm2b(d: Uint8Array): void {
    this.u16(d.length);
    this.bytes(d);
  }
  /** Reserves `n` bytes and returns their offset. */
  skip(n: number): number {
    this.room(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  putU32(at: number, v: number): void {
    const b = this.buf;
    b[at] = v >>> 24;
    b[at + 1] = v >>> 16;
    b[at + 2] = v >>> 8;
    b[at + 3] = v;
  }
}

/** TPMS_NV_PUBLIC of an index (TPM 2.0 Part 2 §13.5): what its Name hashes and NV_ReadPublic returns. */
export function nvPublicBytes(nv: NvIndexState): Uint8Array {
  const out = new Uint8Array(4 + 2 + 4 + 2 + nv.authPolicy.length + 2);
  let p = 0;
  out.set(u32be(nv.handle), p);
  p += 4;
  out[p++] = nv.nameAlg >>> 8;
  out[p++] = nv.nameAlg & 0xff;
  out.set(u32be(nv.attributes), p);
  p += 4;
  out[p++] = nv.authPolicy.length >>> 8;
  out[p++] = nv.authPolicy.length & 0xff;
  out.set(nv.authPolicy, p);
  p += nv.authPolicy.length;
  out[p++] = nv.dataSize >>> 8;
  out[p++] = nv.dataSize & 0xff;
  return out;
}
