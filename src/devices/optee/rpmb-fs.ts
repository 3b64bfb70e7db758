/**
 * OP-TEE's RPMB secure-storage back end (optee_os core/tee/tee_rpmb_fs.c) over any
 * {@link RpmbTarget}: the frames, the key check, the write counter, the retries and the "RPMB
 * dead" state follow tee_rpmb_fs.c; the file system on the blocks is tpmkit's own.
 *
 * OP-TEE behaviour modelled (tee_rpmb_fs.c):
 * - tee_rpmb_init: the write counter is read under a fresh nonce and the device's MAC
 *   (tee_rpmb_verify_key_sync_counter). KEY_NOT_PROGRAMMED maps to ITEM_NOT_FOUND; then with
 *   CFG_RPMB_WRITE_KEY the key is programmed when plat_rpmb_key_is_ready() says so (else
 *   BAD_STATE), without it the result is STORAGE_NOT_AVAILABLE. A MAC mismatch is SECURITY
 *   ("Verify key failed! Make sure key here matches device key").
 * - tee_rpmb_resp_unpack_verify: a result other than OK is GENERIC; a wrong response type or
 *   address is GENERIC; a write counter other than previous + 1, a different nonce, or a MAC
 *   mismatch is SECURITY.
 * - write_req: a write that fails (RPC failure or any verify failure) is retried with the same
 *   counter; after RPMB_MAX_RETRIES (10) attempts `rpmb_dead` is set and every later operation
 *   fails with COMMUNICATION until reboot (here: until a new back end is created), so the calling
 *   TA panics rather than guess whether the write committed.
 * - Frames go to the supplicant as OPTEE_RPC_CMD_RPMB (legacy routing, CFG_RPMB_FS_DEV_ID 0), or
 *   to the kernel when it routes RPMB itself (OPTEE_RPC_CMD_RPMB_FRAMES).
 * - The header magic 0x52504D42 ("RPMB") and FS_VERSION 2: a different version is ACCESS_DENIED
 *   ("Wrong software is in use"); no magic formats the partition.
 *
 * The layout on the blocks is tpmkit's, not OP-TEE's on-disk format: block 0 holds the header
 * (little-endian: magic, version 2, FAT start block, FAT block count, FS block count); blocks
 * 1..64 hold the table, two 128-byte entries per 256-byte block (flags with bit 0 active, start
 * block, data size, the owning TA's name and the object id); the rest holds object data, each
 * object in one contiguous run. A write puts the data in free blocks first and then rewrites the
 * one table block that names it, so a failed write leaves the old object. The data is not
 * encrypted (OP-TEE encrypts each file under its own FEK with AES-CBC-ESSIV): integrity and
 * rollback protection come from the RPMB MAC and write counter alone.
 *
 * @packageDocumentation
 */
import { TeeError } from "../../errors/index.js";
import { systemClock } from "../../core/clock.js";
import { TEE_ORIGIN, TEE_RESULT, TEE_STORAGE, teeResultName } from "../../bus/tee/constants.js";
import {
  RPMB_DATA_SIZE,
  RPMB_FRAME_OFFSET,
  RPMB_FRAME_SIZE,
  RPMB_KEY_SIZE,
  RPMB_NONCE_SIZE,
  RPMB_REQUEST,
  RPMB_RESPONSE,
  RPMB_RESULT,
  RPMB_SIZE_MULT_BYTES,
  decodeRpmbFrame,
  encodeRpmbFrame,
  rpmbMac,
  splitRpmbFrames,
  type RpmbFrame,
  type RpmbTarget,
} from "../../bus/tee/rpmb.js";
import type { SecureStorageBackend, SecureStorageContext } from "./secure-storage.js";
import { RpmbDevice } from "./rpmb-device.js";
import { constantTimeEqual } from "../../wire/bytes.js";

/** Options of {@link createRpmbFs}. */
export interface RpmbFsOptions {
  /** The RPMB key the TEE derived (`deriveRpmbKey(huk, cid)`) or `RPMB_TEST_KEY`, 32 bytes. */
  key: Uint8Array;
  /** CFG_RPMB_WRITE_KEY: program an unprogrammed device (test and factory builds only). Default false. */
  writeKey?: boolean;
  /** The platform hooks: `keyIsReady` is plat_rpmb_key_is_ready() (default true). */
  plat?: { keyIsReady?: boolean };
  /** Write attempts before RPMB is declared dead (RPMB_MAX_RETRIES, 10). */
  retries?: number;
  /** CFG_RPMB_FS_DEV_ID, the `/dev/mmcblk<id>rpmb` the supplicant opens. Default 0. */
  devId?: number;
  /**
   * How much of the partition a new file system takes, in units of 128 KiB (1..128). Default 1,
   * the smallest RPMB_SIZE_MULT, which every eMMC has. Must not exceed the device's size (the
   * frame contract carries no device info): writes past its end fail with ADDRESS_FAILURE.
   */
  sizeMult?: number;
  /** Nonce source; default `crypto.getRandomValues`. */
  random?: (length: number) => Uint8Array;
}

/** The RPMB back end: a {@link SecureStorageBackend} with its state visible to tests and tools. */
export interface RpmbFs extends SecureStorageBackend {
  /** True once a write failed `retries` times: every operation fails with COMMUNICATION. */
  readonly dead: boolean;
  /** The write counter the TEE believes the device holds (after the last sync). */
  readonly writeCounter: number;
  /** The objects stored, as `{ ta, objectId, size }` (runs the init and loads the table). */
  list(ctx: SecureStorageContext): Promise<{ ta: string; objectId: Uint8Array; size: number }[]>;
}

/** tpmkit's layout constants (see the module comment). */
const FS_MAGIC = 0x52504d42; // optee_os tee_rpmb_fs.c RPMB_FS_MAGIC
const FS_VERSION = 2; // optee_os tee_rpmb_fs.c FS_VERSION
const FAT_START = 1;
const FAT_BLOCKS = 64;
const ENTRY_SIZE = 128;
const ENTRIES_PER_BLOCK = RPMB_DATA_SIZE / ENTRY_SIZE;
const ENTRY_COUNT = FAT_BLOCKS * ENTRIES_PER_BLOCK;
const FILE_IS_ACTIVE = 1;
const TA_NAME_MAX = 40;
/** TEE_OBJECT_ID_MAX_LEN (GP TEE Internal Core API §5.7.1). */
const OBJECT_ID_MAX = 64;
/** optee_os tee_rpmb_fs.c RPMB_MAX_RETRIES. */
const RPMB_MAX_RETRIES = 10;
/** tee_rpmb_fs.c get_op_result_bits: the result without the counter-expired bit. */
const RESULT_MASK = 0x3f;

interface Entry {
  slot: number;
  ta: string;
  objectId: Uint8Array;
  start: number;
  size: number;
}

function fail(code: number, message: string): TeeError {
  return new TeeError(`RPMB FS: ${message} (${teeResultName(code)})`, code, TEE_ORIGIN.TEE);
}


const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Creates OP-TEE's RPMB back end (storage id TEE_STORAGE.PRIVATE_RPMB). One back end is one
 * boot of the TEE: its key check, counter and "dead" state live until a new one is created; the
 * objects live on the device, so a new back end with the same key over the same device sees them.
 */
export function createRpmbFs(options: RpmbFsOptions): RpmbFs {
  if (!(options?.key instanceof Uint8Array) || options.key.length !== RPMB_KEY_SIZE) {
    throw fail(TEE_RESULT.BAD_PARAMETERS, `the key must be ${RPMB_KEY_SIZE} bytes`);
  }
  const key = options.key.slice();
  const retries = options.retries ?? RPMB_MAX_RETRIES;
  if (!Number.isInteger(retries) || retries < 1) throw fail(TEE_RESULT.BAD_PARAMETERS, "retries must be a positive integer");
  const devId = options.devId ?? 0;
  const sizeMult = options.sizeMult ?? 1;
  if (!Number.isInteger(sizeMult) || sizeMult < 1 || sizeMult > 128) throw fail(TEE_RESULT.BAD_PARAMETERS, "sizeMult must be 1..128");
  const newFsBlocks = (sizeMult * RPMB_SIZE_MULT_BYTES) / RPMB_DATA_SIZE;
  const random =
    options.random ??
    ((n: number) => {
      const b = new Uint8Array(n);
      globalThis.crypto.getRandomValues(b);
      return b;
    });

  let dead = false;
  let keyVerified = false;
  let counterSynced = false;
  let counter = 0;
  let fsBlocks = 0;
  let table: (Entry | undefined)[] | undefined;
  let chain: Promise<unknown> = Promise.resolve();

  /** One RPMB request through the kernel or the supplicant (tee_rpmb_invoke). */
  async function invoke(ctx: SecureStorageContext, frames: Uint8Array, responseFrames: number): Promise<Uint8Array> {
    let data: Uint8Array | undefined;
    if (ctx.kernelRpmb) {
      try {
        data = ctx.kernelRpmb.transfer(frames, responseFrames);
      } catch (e) {
        throw fail(TEE_RESULT.COMMUNICATION, `the kernel's RPMB transfer failed: ${(e as Error)?.message ?? String(e)}`);
      }
    } else {
      let reply;
      try {
        reply = await ctx.rpc({ cmd: 1, devId, frames, responseFrames });
      } catch (e) {
        if (e instanceof TeeError) throw e;
        throw fail(TEE_RESULT.COMMUNICATION, `the RPMB RPC failed: ${(e as Error)?.message ?? String(e)}`);
      }
      if (reply.result !== TEE_RESULT.SUCCESS) throw fail(reply.result, "the supplicant's RPMB request failed");
      data = reply.data;
    }
    if (!(data instanceof Uint8Array) || data.length !== responseFrames * RPMB_FRAME_SIZE) {
      throw fail(TEE_RESULT.COMMUNICATION, `expected ${responseFrames} response frames, got ${data instanceof Uint8Array ? data.length : "none"} bytes`);
    }
    return data;
  }

  /** tee_rpmb_resp_unpack_verify. Returns the last frame. */
  function verify(
    resp: Uint8Array,
    expect: { type: number; nonce?: Uint8Array; address?: number; prevCounter?: number; mac: boolean },
  ): RpmbFrame {
    const frames = splitRpmbFrames(resp);
    const last = decodeRpmbFrame(frames[frames.length - 1]!);
    const result = last.result & RESULT_MASK;
    if (result === RPMB_RESULT.KEY_NOT_PROGRAMMED) throw fail(TEE_RESULT.ITEM_NOT_FOUND, "the RPMB key is not programmed");
    if (result !== RPMB_RESULT.OK) throw fail(TEE_RESULT.GENERIC, `the device answered result 0x${last.result.toString(16)}`);
    if (last.type !== expect.type) throw fail(TEE_RESULT.GENERIC, `unexpected response type 0x${last.type.toString(16)}`);
    if (expect.address !== undefined && last.address !== expect.address) throw fail(TEE_RESULT.GENERIC, "unexpected block index");
    if (expect.prevCounter !== undefined && last.writeCounter !== ((expect.prevCounter + 1) >>> 0)) {
      throw fail(TEE_RESULT.SECURITY, `write counter mismatch (${last.writeCounter} != ${expect.prevCounter + 1})`);
    }
    if (expect.nonce && !constantTimeEqual(expect.nonce, last.nonce)) throw fail(TEE_RESULT.SECURITY, "nonce mismatch");
    if (expect.mac && !constantTimeEqual(rpmbMac(key, frames), last.keyMac)) throw fail(TEE_RESULT.SECURITY, "MAC mismatch");
    return last;
  }

  async function readCounter(ctx: SecureStorageContext): Promise<void> {
    const nonce = random(RPMB_NONCE_SIZE);
    const resp = await invoke(ctx, encodeRpmbFrame({ type: RPMB_REQUEST.READ_COUNTER, nonce }), 1);
    const last = verify(resp, { type: RPMB_RESPONSE.READ_COUNTER, nonce, mac: true });
    counter = last.writeCounter;
    keyVerified = true;
    counterSynced = true;
  }

  /** tee_rpmb_write_and_verify_key (CFG_RPMB_WRITE_KEY) or its stub. */
  async function writeAndVerifyKey(ctx: SecureStorageContext): Promise<void> {
    if (!options.writeKey) throw fail(TEE_RESULT.STORAGE_NOT_AVAILABLE, "the RPMB key is not programmed and CFG_RPMB_WRITE_KEY is not set");
    if (options.plat?.keyIsReady === false) throw fail(TEE_RESULT.BAD_STATE, "the platform says the RPMB key is not ready");
    const resp = await invoke(ctx, encodeRpmbFrame({ type: RPMB_REQUEST.KEY_PROGRAM, keyMac: key }), 1);
    verify(resp, { type: RPMB_RESPONSE.KEY_PROGRAM, mac: false });
    await readCounter(ctx);
  }

  /** tee_rpmb_init. */
  async function init(ctx: SecureStorageContext): Promise<void> {
    if (dead) throw fail(TEE_RESULT.COMMUNICATION, "RPMB is dead after failed write retries (reboot to recover)");
    if (keyVerified && counterSynced) return;
    try {
      await readCounter(ctx);
    } catch (e) {
      if (e instanceof TeeError && e.teeCode === TEE_RESULT.ITEM_NOT_FOUND && !keyVerified) return writeAndVerifyKey(ctx);
      if (e instanceof TeeError && e.teeCode === TEE_RESULT.SECURITY) {
        throw fail(TEE_RESULT.SECURITY, "verify key failed: make sure the key here matches the device key");
      }
      throw e;
    }
  }

  /** tee_rpmb_read: `count` half sectors from `address` in one request. */
  async function readBlocks(ctx: SecureStorageContext, address: number, count: number): Promise<Uint8Array> {
    await init(ctx);
    const nonce = random(RPMB_NONCE_SIZE);
    const resp = await invoke(ctx, encodeRpmbFrame({ type: RPMB_REQUEST.READ, nonce, address }), count);
    verify(resp, { type: RPMB_RESPONSE.READ, nonce, address, mac: true });
    const out = new Uint8Array(count * RPMB_DATA_SIZE);
    splitRpmbFrames(resp).forEach((f, i) => out.set(f.subarray(RPMB_FRAME_OFFSET.DATA, RPMB_FRAME_OFFSET.DATA + RPMB_DATA_SIZE), i * RPMB_DATA_SIZE));
    return out;
  }

  /** tee_rpmb_write_blk / write_req: one half sector per request (rel_wr_blkcnt 1), with retries. */
  async function writeBlock(ctx: SecureStorageContext, address: number, data: Uint8Array): Promise<void> {
    await init(ctx);
    let wrCnt = counter;
    let attempts = 0;
    for (;;) {
      const frame = encodeRpmbFrame({ type: RPMB_REQUEST.WRITE, blockCount: 1, address, writeCounter: wrCnt, data });
      frame.set(rpmbMac(key, frame), RPMB_FRAME_OFFSET.KEY_MAC);
      try {
        const resp = await invoke(ctx, frame, 1);
        const prev = wrCnt;
        const last = decodeRpmbFrame(resp.subarray(resp.length - RPMB_FRAME_SIZE));
        if ((last.result & RESULT_MASK) === RPMB_RESULT.OK && last.type === RPMB_RESPONSE.WRITE && last.address === address) {
          wrCnt = last.writeCounter; // tee_rpmb_resp_unpack_verify takes the device's counter before checking it
        }
        verify(resp, { type: RPMB_RESPONSE.WRITE, address, prevCounter: prev, mac: true });
        counter = (counter + 1) >>> 0;
        return;
      } catch (e) {
        if (!(e instanceof TeeError)) throw e;
        attempts++;
        counterSynced = false; // force a counter sync next time (write_req)
        if (attempts >= retries) {
          dead = true;
          throw fail(TEE_RESULT.COMMUNICATION, `RPMB write failed ${attempts} times (${e.shortMessage}): RPMB is dead until reboot`);
        }
      }
    }
  }

  function parseEntry(slot: number, raw: Uint8Array): Entry | undefined {
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    if ((v.getUint32(0, true) & FILE_IS_ACTIVE) === 0) return undefined;
    const taLen = raw[12]!;
    const idLen = raw[13]!;
    if (taLen > TA_NAME_MAX || idLen > OBJECT_ID_MAX) throw fail(TEE_RESULT.CORRUPT_OBJECT, `table entry ${slot} is malformed`);
    return {
      slot,
      start: v.getUint32(4, true),
      size: v.getUint32(8, true),
      ta: decoder.decode(raw.subarray(16, 16 + taLen)),
      objectId: raw.slice(56, 56 + idLen),
    };
  }

  function encodeEntry(e: Entry | undefined): Uint8Array {
    const raw = new Uint8Array(ENTRY_SIZE);
    if (!e) return raw;
    const v = new DataView(raw.buffer);
    const ta = encoder.encode(e.ta);
    v.setUint32(0, FILE_IS_ACTIVE, true);
    v.setUint32(4, e.start, true);
    v.setUint32(8, e.size, true);
    raw[12] = ta.length;
    raw[13] = e.objectId.length;
    raw.set(ta, 16);
    raw.set(e.objectId, 56);
    return raw;
  }

  /** rpmb_fs_setup, then the table. */
  async function setup(ctx: SecureStorageContext): Promise<(Entry | undefined)[]> {
    await init(ctx);
    if (table) return table;
    const header = await readBlocks(ctx, 0, 1);
    const hv = new DataView(header.buffer);
    if (hv.getUint32(0, true) !== FS_MAGIC) {
      // No file system: a zeroed table first, the header last (a failure in between formats again).
      const zero = new Uint8Array(RPMB_DATA_SIZE);
      for (let b = 0; b < FAT_BLOCKS; b++) await writeBlock(ctx, FAT_START + b, zero);
      const h = new Uint8Array(RPMB_DATA_SIZE);
      const v = new DataView(h.buffer);
      v.setUint32(0, FS_MAGIC, true);
      v.setUint32(4, FS_VERSION, true);
      v.setUint32(8, FAT_START, true);
      v.setUint32(12, FAT_BLOCKS, true);
      v.setUint32(16, newFsBlocks, true);
      await writeBlock(ctx, 0, h);
      fsBlocks = newFsBlocks;
      table = new Array<Entry | undefined>(ENTRY_COUNT).fill(undefined);
      return table;
    }
    if (hv.getUint32(4, true) !== FS_VERSION) throw fail(TEE_RESULT.ACCESS_DENIED, "wrong software is in use (file system version)");
    const blocks = hv.getUint32(16, true);
    if (hv.getUint32(8, true) !== FAT_START || hv.getUint32(12, true) !== FAT_BLOCKS || blocks <= FAT_START + FAT_BLOCKS || blocks > 0x10000) {
      throw fail(TEE_RESULT.CORRUPT_OBJECT, "the file system header is malformed");
    }
    const fat = await readBlocks(ctx, FAT_START, FAT_BLOCKS);
    const t: (Entry | undefined)[] = [];
    for (let i = 0; i < ENTRY_COUNT; i++) t.push(parseEntry(i, fat.subarray(i * ENTRY_SIZE, (i + 1) * ENTRY_SIZE)));
    fsBlocks = blocks;
    table = t;
    return t;
  }

  function checkName(ta: string, objectId: Uint8Array): void {
    if (typeof ta !== "string" || encoder.encode(ta).length > TA_NAME_MAX) throw fail(TEE_RESULT.BAD_PARAMETERS, `the TA name must be at most ${TA_NAME_MAX} bytes`);
    if (!(objectId instanceof Uint8Array) || objectId.length > OBJECT_ID_MAX) {
      throw fail(TEE_RESULT.BAD_PARAMETERS, `the object id must be at most ${OBJECT_ID_MAX} bytes`);
    }
  }

  function find(t: (Entry | undefined)[], ta: string, objectId: Uint8Array): Entry | undefined {
    return t.find((e) => e !== undefined && e.ta === ta && constantTimeEqual(e.objectId, objectId));
  }

  const blocksOf = (size: number) => Math.ceil(size / RPMB_DATA_SIZE);

  function allocate(t: (Entry | undefined)[], count: number): number | undefined {
    if (count === 0) return 0;
    const used = t.filter((e): e is Entry => e !== undefined && e.size > 0).map((e) => [e.start, e.start + blocksOf(e.size)] as const);
    used.sort((a, b) => a[0] - b[0]);
    let at = FAT_START + FAT_BLOCKS;
    for (const [s, end] of used) {
      if (s - at >= count) return at;
      at = Math.max(at, end);
    }
    return fsBlocks - at >= count ? at : undefined;
  }

  async function writeSlot(ctx: SecureStorageContext, t: (Entry | undefined)[], slot: number, entry: Entry | undefined): Promise<void> {
    const blockIndex = Math.floor(slot / ENTRIES_PER_BLOCK);
    const block = new Uint8Array(RPMB_DATA_SIZE);
    for (let i = 0; i < ENTRIES_PER_BLOCK; i++) {
      const s = blockIndex * ENTRIES_PER_BLOCK + i;
      block.set(encodeEntry(s === slot ? entry : t[s]), i * ENTRY_SIZE);
    }
    await writeBlock(ctx, FAT_START + blockIndex, block);
    t[slot] = entry;
  }

  function serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = chain.then(op, op);
    chain = run.catch(() => undefined);
    return run;
  }

  return {
    storageId: TEE_STORAGE.PRIVATE_RPMB,
    get dead() {
      return dead;
    },
    get writeCounter() {
      return counter;
    },
    read(ta, objectId, ctx) {
      return serialize(async () => {
        checkName(ta, objectId);
        const t = await setup(ctx);
        const e = find(t, ta, objectId);
        if (!e) throw fail(TEE_RESULT.ITEM_NOT_FOUND, "no such object");
        if (e.size === 0) return new Uint8Array(0);
        const n = blocksOf(e.size);
        if (e.start < FAT_START + FAT_BLOCKS || e.start + n > fsBlocks) throw fail(TEE_RESULT.CORRUPT_OBJECT, "the object's blocks are outside the data area");
        return (await readBlocks(ctx, e.start, n)).slice(0, e.size);
      });
    },
    write(ta, objectId, data, ctx) {
      return serialize(async () => {
        checkName(ta, objectId);
        if (!(data instanceof Uint8Array)) throw fail(TEE_RESULT.BAD_PARAMETERS, "data must be a Uint8Array");
        const t = await setup(ctx);
        const old = find(t, ta, objectId);
        const slot = old?.slot ?? t.findIndex((e) => e === undefined);
        if (slot < 0) throw fail(TEE_RESULT.STORAGE_NO_SPACE, "the file table is full");
        const n = blocksOf(data.length);
        const start = allocate(t, n);
        if (start === undefined) throw fail(TEE_RESULT.STORAGE_NO_SPACE, `no ${n} free blocks`);
        for (let i = 0; i < n; i++) {
          const block = new Uint8Array(RPMB_DATA_SIZE);
          block.set(data.subarray(i * RPMB_DATA_SIZE, (i + 1) * RPMB_DATA_SIZE));
          await writeBlock(ctx, start + i, block);
        }
        await writeSlot(ctx, t, slot, { slot, ta, objectId: objectId.slice(), start, size: data.length });
      });
    },
    remove(ta, objectId, ctx) {
      return serialize(async () => {
        checkName(ta, objectId);
        const t = await setup(ctx);
        const e = find(t, ta, objectId);
        if (!e) throw fail(TEE_RESULT.ITEM_NOT_FOUND, "no such object");
        await writeSlot(ctx, t, e.slot, undefined);
      });
    },
    list(ctx) {
      return serialize(async () => {
        const t = await setup(ctx);
        return t.filter((e): e is Entry => e !== undefined).map((e) => ({ ta: e.ta, objectId: e.objectId.slice(), size: e.size }));
      });
    },
  };
}

/**
 * The "retrieve the RPMB key" flow of an insecure test build: an OP-TEE built with
 * CFG_RPMB_WRITE_KEY=y sends its key in clear in the KEY_PROGRAM frame whenever the device it
 * reaches says "not programmed", so the normal world gets the key by putting a blank RPMB in
 * front of it (the caveat optee_os documents for CFG_RPMB_WRITE_KEY: test and factory use only).
 * This runs that flow: a back end built from `options` meets a blank device and the key it
 * programs is captured. Only a write-key build gives it up; otherwise this rejects with the
 * `TeeError` OP-TEE answers (STORAGE_NOT_AVAILABLE, or BAD_STATE when the platform holds the key
 * back). The key equals `deriveRpmbKey(huk, cid)` for the HUK and CID the build used.
 */
export async function rpmbTestKeyRetrieve(options: RpmbFsOptions & { cid: Uint8Array }): Promise<Uint8Array> {
  const blank = new RpmbDevice({ cid: options.cid, sizeMult: 1 });
  let captured: Uint8Array | undefined;
  const spy: RpmbTarget = {
    cid: blank.cid,
    transfer(frames, responseFrames) {
      for (const f of splitRpmbFrames(frames)) {
        const d = decodeRpmbFrame(f);
        if (d.type === RPMB_REQUEST.KEY_PROGRAM) captured = d.keyMac;
      }
      return blank.transfer(frames, responseFrames);
    },
  };
  const fs = createRpmbFs({ ...options, sizeMult: 1 });
  const ctx: SecureStorageContext = {
    kernelRpmb: spy,
    clock: systemClock,
    rpc: () => Promise.resolve({ result: TEE_RESULT.COMMUNICATION }),
  };
  try {
    await fs.list(ctx);
  } catch (e) {
    if (!captured) throw e;
  }
  if (!captured) throw fail(TEE_RESULT.STORAGE_NOT_AVAILABLE, "the TEE never sent its key");
  return captured;
}
