/**
 * The contract of an eMMC RPMB partition as software reaches it: a sequence of 512-byte JEDEC
 * data frames written, then response frames read (the Linux MMC_IOC_MULTI_CMD ioctl that
 * tee-supplicant issues on `/dev/mmcblk<id>rpmb`, or the kernel's in-kernel RPMB routing), and
 * the codec of those frames.
 *
 * Source: JEDEC JESD84-B51 §6.6.22 (replay protected memory block: frame format, request and
 * response types, result codes, the MAC over bytes 228..511 of each frame); optee_client
 * tee-supplicant/src/rpmb.c (the request kinds, `struct rpmb_data_frame`); Linux
 * include/uapi/linux/mmc/ioctl.h (MMC_IOC_MULTI_CMD); optee_os core/tee/tee_rpmb_fs.c
 * (RPMB_MSG_TYPE_*, RPMB_RESULT_*, tee_rpmb_mac_calc).
 *
 * @packageDocumentation
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmArgumentError } from "../../errors/index.js";

/** Size of one RPMB data frame, bytes (JESD84-B51 §6.6.22.2). */
export const RPMB_FRAME_SIZE = 512;

/** Something that answers RPMB frames: a `RpmbDevice`, or a proxy that injects faults. */
export interface RpmbTarget {
  /** The eMMC CID, 16 bytes. */
  readonly cid: Uint8Array;
  /**
   * Writes the request frames (n × 512 bytes, one request) and returns `responseFrames` response
   * frames (a write or key programming then reads the result register, as the host does).
   */
  transfer(frames: Uint8Array, responseFrames: number): Uint8Array;
}

/** Bytes of the data field of a frame: one RPMB "half sector" (JESD84-B51 §6.6.22.2). */
export const RPMB_DATA_SIZE = 256;
/** Bytes of the key / MAC field (HMAC-SHA256). */
export const RPMB_KEY_SIZE = 32;
/** Bytes of the nonce field. */
export const RPMB_NONCE_SIZE = 16;
/** Bytes of the eMMC CID (JESD84-B51 §7.2). */
export const RPMB_CID_SIZE = 16;
/** One unit of the EXT_CSD RPMB_SIZE_MULT field: 128 KiB (JESD84-B51 §7.4.79). */
export const RPMB_SIZE_MULT_BYTES = 128 * 1024;

/**
 * Byte offsets of the fields in a 512-byte frame, all big-endian (JESD84-B51 §6.6.22.2, table
 * "Data frame files for RPMB"; optee_client tee-supplicant/src/rpmb.c `struct rpmb_data_frame`).
 */
export const RPMB_FRAME_OFFSET = /* @__PURE__ */ Object.freeze({
  /** 196 bytes of stuff. */
  STUFF: 0,
  /** Key (KEY_PROGRAM request) or MAC, 32 bytes. */
  KEY_MAC: 196,
  /** Data, 256 bytes; the MAC covers from here to the end of the frame. */
  DATA: 228,
  /** Nonce, 16 bytes. */
  NONCE: 484,
  /** Write counter, 4 bytes. */
  WRITE_COUNTER: 500,
  /** Address (in 256-byte half sectors), 2 bytes. */
  ADDRESS: 504,
  /** Block count, 2 bytes. */
  BLOCK_COUNT: 506,
  /** Result, 2 bytes. */
  RESULT: 508,
  /** Request / response message type, 2 bytes. */
  TYPE: 510,
});

/** Request message types (JESD84-B51 §6.6.22.2; optee_os tee_rpmb_fs.c RPMB_MSG_TYPE_REQ_*). */
export const RPMB_REQUEST = /* @__PURE__ */ Object.freeze({
  KEY_PROGRAM: 0x0001,
  READ_COUNTER: 0x0002,
  WRITE: 0x0003,
  READ: 0x0004,
  RESULT_READ: 0x0005,
});

/** Response message types (JESD84-B51 §6.6.22.2; optee_os tee_rpmb_fs.c RPMB_MSG_TYPE_RESP_*). */
export const RPMB_RESPONSE = /* @__PURE__ */ Object.freeze({
  KEY_PROGRAM: 0x0100,
  READ_COUNTER: 0x0200,
  WRITE: 0x0300,
  READ: 0x0400,
});

/**
 * Operation results (JESD84-B51 §6.6.22.2 "Operation result"; optee_os tee_rpmb_fs.c
 * RPMB_RESULT_*). `COUNTER_EXPIRED` is a bit OR-ed onto any of the others once the write
 * counter has reached its maximum.
 */
export const RPMB_RESULT = /* @__PURE__ */ Object.freeze({
  OK: 0x00,
  GENERAL_FAILURE: 0x01,
  AUTH_FAILURE: 0x02,
  COUNTER_FAILURE: 0x03,
  ADDRESS_FAILURE: 0x04,
  WRITE_FAILURE: 0x05,
  READ_FAILURE: 0x06,
  KEY_NOT_PROGRAMMED: 0x07,
  COUNTER_EXPIRED: 0x80,
});

/** The decoded fields of one frame. `keyMac`, `data` and `nonce` are copies. */
export interface RpmbFrame {
  /** The key (KEY_PROGRAM request) or the MAC, 32 bytes. */
  keyMac: Uint8Array;
  /** 256 bytes. */
  data: Uint8Array;
  /** 16 bytes. */
  nonce: Uint8Array;
  /** uint32. */
  writeCounter: number;
  /** uint16, the half-sector address. */
  address: number;
  /** uint16. */
  blockCount: number;
  /** uint16, an {@link RPMB_RESULT} (with the COUNTER_EXPIRED bit). */
  result: number;
  /** uint16, an {@link RPMB_REQUEST} or {@link RPMB_RESPONSE} type. */
  type: number;
}

function bytesField(name: string, value: Uint8Array | undefined, size: number): Uint8Array | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof Uint8Array)) throw new TpmArgumentError(`RPMB frame: ${name} must be a Uint8Array`);
  if (value.length !== size) throw new TpmArgumentError(`RPMB frame: ${name} must be ${size} bytes, got ${value.length}`);
  return value;
}

function intField(name: string, value: number | undefined, max: number): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new TpmArgumentError(`RPMB frame: ${name} must be an integer 0..${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * Encodes one 512-byte frame (JESD84-B51 §6.6.22.2). Fields left out are zero; the stuff bytes
 * are zero. Throws `TpmArgumentError` for a field of the wrong size or range.
 */
export function encodeRpmbFrame(fields: Partial<RpmbFrame>): Uint8Array {
  const out = new Uint8Array(RPMB_FRAME_SIZE);
  const keyMac = bytesField("keyMac", fields.keyMac, RPMB_KEY_SIZE);
  const data = bytesField("data", fields.data, RPMB_DATA_SIZE);
  const nonce = bytesField("nonce", fields.nonce, RPMB_NONCE_SIZE);
  if (keyMac) out.set(keyMac, RPMB_FRAME_OFFSET.KEY_MAC);
  if (data) out.set(data, RPMB_FRAME_OFFSET.DATA);
  if (nonce) out.set(nonce, RPMB_FRAME_OFFSET.NONCE);
  const v = new DataView(out.buffer);
  v.setUint32(RPMB_FRAME_OFFSET.WRITE_COUNTER, intField("writeCounter", fields.writeCounter, 0xffffffff));
  v.setUint16(RPMB_FRAME_OFFSET.ADDRESS, intField("address", fields.address, 0xffff));
  v.setUint16(RPMB_FRAME_OFFSET.BLOCK_COUNT, intField("blockCount", fields.blockCount, 0xffff));
  v.setUint16(RPMB_FRAME_OFFSET.RESULT, intField("result", fields.result, 0xffff));
  v.setUint16(RPMB_FRAME_OFFSET.TYPE, intField("type", fields.type, 0xffff));
  return out;
}

/** Decodes one frame: `bytes` must be exactly 512 bytes (else `TpmArgumentError`). */
export function decodeRpmbFrame(bytes: Uint8Array): RpmbFrame {
  if (!(bytes instanceof Uint8Array) || bytes.length !== RPMB_FRAME_SIZE) {
    throw new TpmArgumentError(
      `RPMB frame must be ${RPMB_FRAME_SIZE} bytes, got ${bytes instanceof Uint8Array ? bytes.length : typeof bytes}`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const o = RPMB_FRAME_OFFSET;
  return {
    keyMac: bytes.slice(o.KEY_MAC, o.KEY_MAC + RPMB_KEY_SIZE),
    data: bytes.slice(o.DATA, o.DATA + RPMB_DATA_SIZE),
    nonce: bytes.slice(o.NONCE, o.NONCE + RPMB_NONCE_SIZE),
    writeCounter: v.getUint32(o.WRITE_COUNTER),
    address: v.getUint16(o.ADDRESS),
    blockCount: v.getUint16(o.BLOCK_COUNT),
    result: v.getUint16(o.RESULT),
    type: v.getUint16(o.TYPE),
  };
}

/**
 * Splits a buffer of n × 512 bytes into its frames (views, not copies). Throws
 * `TpmArgumentError` when the length is zero or not a multiple of 512.
 */
export function splitRpmbFrames(buffer: Uint8Array): Uint8Array[] {
  if (!(buffer instanceof Uint8Array) || buffer.length === 0 || buffer.length % RPMB_FRAME_SIZE !== 0) {
    throw new TpmArgumentError(
      `RPMB frames must be a non-empty multiple of ${RPMB_FRAME_SIZE} bytes, got ${buffer instanceof Uint8Array ? buffer.length : typeof buffer}`,
    );
  }
  const frames: Uint8Array[] = [];
  for (let i = 0; i < buffer.length; i += RPMB_FRAME_SIZE) frames.push(buffer.subarray(i, i + RPMB_FRAME_SIZE));
  return frames;
}

/** Concatenates frames into one buffer (what one MMC_IOC_MULTI_CMD data transfer carries). */
export function joinRpmbFrames(frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.length * RPMB_FRAME_SIZE);
  frames.forEach((f, i) => {
    if (f.length !== RPMB_FRAME_SIZE) throw new TpmArgumentError(`RPMB frame ${i} must be ${RPMB_FRAME_SIZE} bytes, got ${f.length}`);
    out.set(f, i * RPMB_FRAME_SIZE);
  });
  return out;
}

/**
 * The MAC of a request or response: HMAC-SHA256 under the 32-byte key over bytes 228..511
 * (data, nonce, write counter, address, block count, result, type) of each frame in order
 * (JESD84-B51 §6.6.22.2; optee_os tee_rpmb_fs.c tee_rpmb_mac_calc). The MAC travels in the last
 * frame. `frames` is one buffer of n × 512 bytes or a list of 512-byte frames.
 */
export function rpmbMac(key: Uint8Array, frames: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== RPMB_KEY_SIZE) {
    throw new TpmArgumentError(`RPMB key must be ${RPMB_KEY_SIZE} bytes`);
  }
  const list = frames instanceof Uint8Array ? splitRpmbFrames(frames) : frames;
  if (list.length === 0) throw new TpmArgumentError("RPMB MAC needs at least one frame");
  const h = hmac.create(sha256, key);
  for (const f of list) {
    if (f.length !== RPMB_FRAME_SIZE) throw new TpmArgumentError(`RPMB frame must be ${RPMB_FRAME_SIZE} bytes, got ${f.length}`);
    h.update(f.subarray(RPMB_FRAME_OFFSET.DATA));
  }
  return h.digest();
}
