/**
 * An eMMC RPMB partition model: the device end of the JEDEC authenticated-access protocol.
 *
 * Source: JEDEC JESD84-B51 §6.6.22 (authentication key programming (§6.6.22.4.1), reading the
 * write counter (§6.6.22.4.2), authenticated data write (§6.6.22.4.3) and read (§6.6.22.4.4), the
 * result register read with request type 0x0005, result codes and the counter-expired bit);
 * optee_client tee-supplicant/src/rpmb.c (how the host pairs a write with a result read).
 *
 * Every request answers with a result code in the response frame; only a caller error (a buffer
 * that is not a multiple of 512 bytes, a bad response-frame count) throws, as `TpmArgumentError`.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../../errors/index.js";
import {
  RPMB_CID_SIZE,
  RPMB_DATA_SIZE,
  RPMB_FRAME_OFFSET,
  RPMB_FRAME_SIZE,
  RPMB_KEY_SIZE,
  RPMB_REQUEST,
  RPMB_RESPONSE,
  RPMB_RESULT,
  RPMB_SIZE_MULT_BYTES,
  decodeRpmbFrame,
  encodeRpmbFrame,
  joinRpmbFrames,
  rpmbMac,
  splitRpmbFrames,
  type RpmbTarget,
} from "../../bus/tee/rpmb.js";
import { constantTimeEqual } from "../../wire/bytes.js";

/** Faults a test arms on a {@link RpmbDevice}; counters decrement as they fire. */
export interface RpmbDeviceFaults {
  /** The next `failWrites` authenticated writes fail with WRITE_FAILURE (nothing written, counter kept). */
  failWrites?: number;
  /** The next `failReads` authenticated reads fail with READ_FAILURE. */
  failReads?: number;
}

/** The persistent content of an RPMB partition (what survives a power cycle). */
export interface RpmbDeviceState {
  /** The programmed key, or undefined while unprogrammed. */
  key: Uint8Array | undefined;
  /** The write counter (uint32). */
  writeCounter: number;
  /** The partition, `sizeMult × 128 KiB` bytes. */
  blocks: Uint8Array;
}

/** Options of {@link RpmbDevice}. */
export interface RpmbDeviceOptions {
  /** The eMMC CID, 16 bytes. */
  cid: Uint8Array;
  /** EXT_CSD RPMB_SIZE_MULT: the partition is `sizeMult × 128 KiB` (1..128, default 2). */
  sizeMult?: number;
  /**
   * The largest block count of one authenticated write (the reliable-write sector count × 2,
   * JESD84-B51 §6.6.22.4.3); default 2.
   */
  maxWriteBlocks?: number;
  /** Faults to arm at once (the object stays reachable as {@link RpmbDevice.faults}). */
  faults?: RpmbDeviceFaults;
  /** Content to start from: a {@link RpmbDevice.snapshot} of an earlier device (a power cycle). */
  state?: RpmbDeviceState;
}

const MAX_COUNTER = 0xffffffff;

/**
 * An eMMC RPMB partition: the key is programmed once, every authenticated write carries the next
 * write counter and a MAC, reads and counter reads echo the caller's nonce under the device's MAC.
 * Implements {@link RpmbTarget}, so OP-TEE's RPMB FS reaches it through tee-supplicant or the
 * in-kernel routing. Reuse the same object (or restore a {@link RpmbDevice.snapshot}) across a
 * TEE restart: the partition keeps its key, counter and blocks.
 */
export class RpmbDevice implements RpmbTarget {
  /** The eMMC CID (a copy of the option). */
  readonly cid: Uint8Array;
  /** EXT_CSD RPMB_SIZE_MULT. */
  readonly sizeMult: number;
  /** Number of 256-byte half sectors (addresses 0..blockCount-1). */
  readonly blockCount: number;
  /** Largest block count of one write. */
  readonly maxWriteBlocks: number;
  /** Armed faults; tests set `faults.failWrites = n`. */
  readonly faults: RpmbDeviceFaults;
  #key: Uint8Array | undefined;
  #counter: number;
  readonly #blocks: Uint8Array;
  /** The result register: what a RESULT_READ returns (type of the last write/key program, result). */
  #lastType = 0;
  #lastResult: number = RPMB_RESULT.OK;
  /** Number of request buffers answered. */
  transfers = 0;

  constructor(options: RpmbDeviceOptions) {
    if (!(options?.cid instanceof Uint8Array) || options.cid.length !== RPMB_CID_SIZE) {
      throw new TpmArgumentError(`RpmbDevice: cid must be ${RPMB_CID_SIZE} bytes`);
    }
    const sizeMult = options.sizeMult ?? 2;
    if (!Number.isInteger(sizeMult) || sizeMult < 1 || sizeMult > 128) {
      throw new TpmArgumentError(`RpmbDevice: sizeMult must be an integer 1..128, got ${String(sizeMult)}`);
    }
    const maxWriteBlocks = options.maxWriteBlocks ?? 2;
    if (!Number.isInteger(maxWriteBlocks) || maxWriteBlocks < 1 || maxWriteBlocks > 0xffff) {
      throw new TpmArgumentError(`RpmbDevice: maxWriteBlocks must be an integer 1..65535`);
    }
    this.cid = options.cid.slice();
    this.sizeMult = sizeMult;
    this.blockCount = (sizeMult * RPMB_SIZE_MULT_BYTES) / RPMB_DATA_SIZE;
    this.maxWriteBlocks = maxWriteBlocks;
    this.faults = options.faults ?? {};
    const s = options.state;
    if (s) {
      if (!(s.blocks instanceof Uint8Array) || s.blocks.length !== this.blockCount * RPMB_DATA_SIZE) {
        throw new TpmArgumentError(`RpmbDevice: state.blocks must be ${this.blockCount * RPMB_DATA_SIZE} bytes for sizeMult ${sizeMult}`);
      }
      if (s.key !== undefined && (!(s.key instanceof Uint8Array) || s.key.length !== RPMB_KEY_SIZE)) {
        throw new TpmArgumentError(`RpmbDevice: state.key must be ${RPMB_KEY_SIZE} bytes`);
      }
      if (!Number.isInteger(s.writeCounter) || s.writeCounter < 0 || s.writeCounter > MAX_COUNTER) {
        throw new TpmArgumentError("RpmbDevice: state.writeCounter must be a uint32");
      }
      this.#key = s.key?.slice();
      this.#counter = s.writeCounter;
      this.#blocks = s.blocks.slice();
    } else {
      this.#key = undefined;
      this.#counter = 0;
      this.#blocks = new Uint8Array(this.blockCount * RPMB_DATA_SIZE);
    }
  }

  /** The partition as tests inspect it (live views: do not modify). */
  get state(): { readonly keyProgrammed: boolean; readonly writeCounter: number; readonly blocks: Uint8Array } {
    return { keyProgrammed: this.#key !== undefined, writeCounter: this.#counter, blocks: this.#blocks };
  }

  /** A copy of the persistent content, to build a new device from after a "power cycle". */
  snapshot(): RpmbDeviceState {
    return { key: this.#key?.slice(), writeCounter: this.#counter, blocks: this.#blocks.slice() };
  }

  /**
   * Programs the key, as the KEY_PROGRAM request does (a factory step): returns the
   * {@link RPMB_RESULT} (GENERAL_FAILURE when a key is programmed already).
   */
  programKey(key: Uint8Array): number {
    if (!(key instanceof Uint8Array) || key.length !== RPMB_KEY_SIZE) {
      throw new TpmArgumentError(`RpmbDevice.programKey: key must be ${RPMB_KEY_SIZE} bytes`);
    }
    const res = decodeRpmbFrame(this.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.KEY_PROGRAM, keyMac: key }), 1));
    return res.result;
  }

  /** Answers one request (n × 512 bytes) with `responseFrames` response frames (JESD84-B51 §6.6.22.4). */
  transfer(frames: Uint8Array, responseFrames: number): Uint8Array {
    const list = splitRpmbFrames(frames);
    if (!Number.isInteger(responseFrames) || responseFrames < 0 || responseFrames > 0xffff) {
      throw new TpmArgumentError(`RPMB transfer: responseFrames must be an integer 0..65535, got ${String(responseFrames)}`);
    }
    this.transfers++;
    const first = decodeRpmbFrame(list[0]!);
    switch (first.type) {
      case RPMB_REQUEST.KEY_PROGRAM:
        this.#keyProgram(list);
        return this.#resultFrames(responseFrames);
      case RPMB_REQUEST.WRITE:
        this.#write(list);
        return this.#resultFrames(responseFrames);
      case RPMB_REQUEST.RESULT_READ:
        return this.#resultFrames(responseFrames);
      case RPMB_REQUEST.READ_COUNTER:
        return this.#readCounter(list, responseFrames);
      case RPMB_REQUEST.READ:
        return this.#read(list, responseFrames);
      default:
        // An unknown request type: JESD84-B51 §6.6.22.4 answers GENERAL_FAILURE in the result register.
        this.#lastType = 0;
        this.#lastResult = RPMB_RESULT.GENERAL_FAILURE;
        return this.#resultFrames(responseFrames);
    }
  }

  #expired(result: number): number {
    return this.#counter === MAX_COUNTER ? result | RPMB_RESULT.COUNTER_EXPIRED : result;
  }

  #setResult(type: number, result: number): void {
    this.#lastType = type;
    this.#lastResult = this.#expired(result);
  }

  /** The result register as a response frame (RESULT_READ, JESD84-B51 §6.6.22.4.1 and .3). */
  #resultFrames(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const frame = encodeRpmbFrame({
      type: this.#lastType,
      result: this.#lastResult,
      writeCounter: this.#lastType === RPMB_RESPONSE.WRITE ? this.#counter : 0,
      address: this.#lastAddress,
    });
    if (this.#lastType === RPMB_RESPONSE.WRITE && this.#key && (this.#lastResult & 0x7f) === RPMB_RESULT.OK) {
      frame.set(rpmbMac(this.#key, frame), RPMB_FRAME_OFFSET.KEY_MAC);
    }
    // The result register is one frame; further frames read as zero.
    const out = new Uint8Array(n * RPMB_FRAME_SIZE);
    out.set(frame, (n - 1) * RPMB_FRAME_SIZE);
    return out;
  }

  #lastAddress = 0;

  #keyProgram(list: Uint8Array[]): void {
    const f = decodeRpmbFrame(list[0]!);
    this.#lastAddress = 0;
    // §6.6.22.4.1: one frame; a key already programmed is a general failure (it cannot be replaced).
    if (list.length !== 1 || this.#key !== undefined) {
      this.#setResult(RPMB_RESPONSE.KEY_PROGRAM, RPMB_RESULT.GENERAL_FAILURE);
      return;
    }
    this.#key = f.keyMac;
    this.#setResult(RPMB_RESPONSE.KEY_PROGRAM, RPMB_RESULT.OK);
  }

  #write(list: Uint8Array[]): void {
    const frames = list.map((b) => decodeRpmbFrame(b));
    const last = frames[frames.length - 1]!;
    const first = frames[0]!;
    this.#lastAddress = first.address;
    const type = RPMB_RESPONSE.WRITE;
    if (this.#key === undefined) return this.#setResult(type, RPMB_RESULT.KEY_NOT_PROGRAMMED);
    // Every frame of the request is a write, with one block count that matches the frame count.
    const consistent = frames.every(
      (f) => f.type === RPMB_REQUEST.WRITE && f.blockCount === frames.length && f.address === first.address && f.writeCounter === first.writeCounter,
    );
    if (!consistent || frames.length > this.maxWriteBlocks) return this.#setResult(type, RPMB_RESULT.GENERAL_FAILURE);
    // §6.6.22.4.3: the MAC first, then the counter (expired counter: write refused), then the address.
    if (!constantTimeEqual(rpmbMac(this.#key, list), last.keyMac)) return this.#setResult(type, RPMB_RESULT.AUTH_FAILURE);
    if (this.#counter === MAX_COUNTER) return this.#setResult(type, RPMB_RESULT.WRITE_FAILURE);
    if (first.writeCounter !== this.#counter) return this.#setResult(type, RPMB_RESULT.COUNTER_FAILURE);
    if (first.address + frames.length > this.blockCount) return this.#setResult(type, RPMB_RESULT.ADDRESS_FAILURE);
    if ((this.faults.failWrites ?? 0) > 0) {
      this.faults.failWrites = this.faults.failWrites! - 1;
      return this.#setResult(type, RPMB_RESULT.WRITE_FAILURE);
    }
    frames.forEach((f, i) => this.#blocks.set(f.data, (first.address + i) * RPMB_DATA_SIZE));
    this.#counter++;
    this.#setResult(type, RPMB_RESULT.OK);
  }

  #readCounter(list: Uint8Array[], n: number): Uint8Array {
    const req = decodeRpmbFrame(list[0]!);
    const out = new Uint8Array(n * RPMB_FRAME_SIZE);
    if (n === 0) return out;
    let result: number = RPMB_RESULT.OK;
    if (list.length !== 1) result = RPMB_RESULT.GENERAL_FAILURE;
    else if (this.#key === undefined) result = RPMB_RESULT.KEY_NOT_PROGRAMMED;
    const frame = encodeRpmbFrame({
      type: RPMB_RESPONSE.READ_COUNTER,
      nonce: req.nonce,
      writeCounter: result === RPMB_RESULT.OK ? this.#counter : 0,
      result: this.#expired(result),
    });
    if (this.#key && result === RPMB_RESULT.OK) frame.set(rpmbMac(this.#key, frame), RPMB_FRAME_OFFSET.KEY_MAC);
    out.set(frame, (n - 1) * RPMB_FRAME_SIZE);
    return out;
  }

  #read(list: Uint8Array[], n: number): Uint8Array {
    const req = decodeRpmbFrame(list[0]!);
    if (n === 0) return new Uint8Array(0);
    let result: number = RPMB_RESULT.OK;
    if (list.length !== 1) result = RPMB_RESULT.GENERAL_FAILURE;
    else if (this.#key === undefined) result = RPMB_RESULT.KEY_NOT_PROGRAMMED;
    else if (req.address + n > this.blockCount) result = RPMB_RESULT.ADDRESS_FAILURE;
    else if ((this.faults.failReads ?? 0) > 0) {
      this.faults.failReads = this.faults.failReads! - 1;
      result = RPMB_RESULT.READ_FAILURE;
    }
    const frames: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const ok = result === RPMB_RESULT.OK;
      const at = (req.address + i) * RPMB_DATA_SIZE;
      frames.push(
        encodeRpmbFrame({
          type: RPMB_RESPONSE.READ,
          nonce: req.nonce,
          address: req.address,
          blockCount: n,
          result: this.#expired(result),
          data: ok ? this.#blocks.slice(at, at + RPMB_DATA_SIZE) : undefined,
        }),
      );
    }
    if (this.#key && result === RPMB_RESULT.OK) frames[n - 1]!.set(rpmbMac(this.#key, frames), RPMB_FRAME_OFFSET.KEY_MAC);
    return joinRpmbFrames(frames);
  }
}

