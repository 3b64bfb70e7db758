import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { FakeClock } from "../../core/clock.js";
import { TeeError } from "../../errors/index.js";
import { TEE_ORIGIN, TEE_RESULT, TEE_STORAGE } from "../../bus/tee/constants.js";
import type { TeeRpcRequest } from "../../bus/tee/rpc.js";
import {
  RPMB_FRAME_OFFSET,
  RPMB_REQUEST,
  RPMB_RESULT,
  decodeRpmbFrame,
  encodeRpmbFrame,
  rpmbMac,
  splitRpmbFrames,
  type RpmbTarget,
} from "../../bus/tee/rpmb.js";
import type { SecureStorageContext } from "./secure-storage.js";
import { RpmbDevice } from "./rpmb-device.js";
import { deriveRpmbKey } from "./rpmb-key.js";
import { createRpmbFs } from "./rpmb-fs.js";

const cid = Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i);
const huk = Uint8Array.from({ length: 16 }, (_, i) => 0xf0 - i);
const key = deriveRpmbKey(huk, cid);
const wrongKey = deriveRpmbKey(huk.map((b) => b ^ 1), cid);
const TA = "bc50d971-d4c9-42c4-82cb-343fb7f37896";
const id = (n: number) => Uint8Array.of(0x54, 0x50, 0x4d, n); // 0x54504D00 + n, as the fTPM TA names its NV blocks
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** A context whose RPMB frames go to the supplicant (legacy routing). */
function legacy(target: RpmbTarget) {
  const seen: TeeRpcRequest[] = [];
  const state = { up: true };
  const ctx: SecureStorageContext = {
    clock: new FakeClock(),
    kernelRpmb: undefined,
    async rpc(req) {
      seen.push(req);
      if (!state.up) return { result: TEE_RESULT.COMMUNICATION };
      if (req.cmd !== 1) return { result: TEE_RESULT.NOT_SUPPORTED };
      return { result: TEE_RESULT.SUCCESS, data: target.transfer(req.frames, req.responseFrames) };
    },
  };
  return { ctx, seen, state };
}

/** A context with in-kernel routing: no supplicant needed. */
function kernel(target: RpmbTarget): SecureStorageContext {
  return {
    clock: new FakeClock(),
    kernelRpmb: target,
    rpc: () => Promise.reject(new Error("no RPC expected with in-kernel routing")),
  };
}

async function teeCode(p: Promise<unknown>): Promise<number> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TeeError);
  expect((e as TeeError).origin).toBe(TEE_ORIGIN.TEE);
  return (e as TeeError).teeCode;
}

function programmed(sizeMult = 1): RpmbDevice {
  const d = new RpmbDevice({ cid, sizeMult });
  expect(d.programKey(key)).toBe(RPMB_RESULT.OK);
  return d;
}

describe("createRpmbFs: objects on RPMB", () => {
  it("stores, overwrites, reads and removes objects through the supplicant (OPTEE_RPC_CMD_RPMB, dev 0)", async () => {
    const dev = programmed();
    const { ctx, seen } = legacy(dev);
    const fs = createRpmbFs({ key });
    expect(fs.storageId).toBe(TEE_STORAGE.PRIVATE_RPMB);
    await fs.write(TA, id(0), bytes(512, 1), ctx);
    await fs.write(TA, id(1), bytes(700, 2), ctx);
    await fs.write("other-ta", id(0), bytes(3, 3), ctx);
    expect(await fs.read(TA, id(0), ctx)).toEqual(bytes(512, 1));
    expect(await fs.read(TA, id(1), ctx)).toEqual(bytes(700, 2));
    expect(await fs.read("other-ta", id(0), ctx)).toEqual(bytes(3, 3));
    await fs.write(TA, id(0), bytes(100, 9), ctx);
    expect(await fs.read(TA, id(0), ctx)).toEqual(bytes(100, 9));
    await fs.write(TA, id(2), new Uint8Array(0), ctx);
    expect(await fs.read(TA, id(2), ctx)).toEqual(new Uint8Array(0));
    await fs.remove(TA, id(1), ctx);
    expect(await teeCode(fs.read(TA, id(1), ctx))).toBe(TEE_RESULT.ITEM_NOT_FOUND);
    expect(await teeCode(fs.remove(TA, id(1), ctx))).toBe(TEE_RESULT.ITEM_NOT_FOUND);
    expect(await teeCode(fs.read(TA, id(7), ctx))).toBe(TEE_RESULT.ITEM_NOT_FOUND);
    expect(seen.length).toBeGreaterThan(0);
    for (const r of seen) {
      expect(r.cmd).toBe(1);
      if (r.cmd === 1) {
        expect(r.devId).toBe(0);
        expect(r.frames.length % 512).toBe(0);
      }
    }
    expect(fs.writeCounter).toBe(dev.state.writeCounter);
    // The data is on the device in clear (no encryption in this model), protected by the MAC.
    const all = Buffer.from(dev.state.blocks);
    expect(all.indexOf(Buffer.from(bytes(100, 9)))).toBeGreaterThan(0);
  });

  it("uses the in-kernel routing without a supplicant", async () => {
    const dev = programmed();
    const fs = createRpmbFs({ key });
    await fs.write(TA, id(0), bytes(300, 5), kernel(dev));
    expect(await fs.read(TA, id(0), kernel(dev))).toEqual(bytes(300, 5));
  });

  it("keeps objects across a TEE restart (a new back end, same device, same key)", async () => {
    const dev = programmed();
    const first = createRpmbFs({ key });
    for (let i = 0; i < 4; i++) await first.write(TA, id(i), bytes(512, i), kernel(dev));
    const counter = dev.state.writeCounter;
    // Power cycle of the eMMC too: the device is rebuilt from its persistent content.
    const rebooted = new RpmbDevice({ cid, sizeMult: 1, state: dev.snapshot() });
    const second = createRpmbFs({ key });
    for (let i = 0; i < 4; i++) expect(await second.read(TA, id(i), kernel(rebooted))).toEqual(bytes(512, i));
    expect(second.writeCounter).toBe(counter);
    expect((await second.list(kernel(rebooted))).map((o) => o.size)).toEqual([512, 512, 512, 512]);
  });

  it("serializes concurrent operations", async () => {
    const dev = programmed();
    const fs = createRpmbFs({ key });
    const { ctx } = legacy(dev);
    await Promise.all([0, 1, 2, 3, 4].map((i) => fs.write(TA, id(i), bytes(260, i), ctx)));
    const got = await Promise.all([0, 1, 2, 3, 4].map((i) => fs.read(TA, id(i), ctx)));
    got.forEach((g, i) => expect(g).toEqual(bytes(260, i)));
  });

  it("checks names and sizes: BAD_PARAMETERS, STORAGE_NO_SPACE", async () => {
    const dev = programmed();
    const fs = createRpmbFs({ key });
    expect(await teeCode(fs.write(TA, new Uint8Array(65), bytes(1, 1), kernel(dev)))).toBe(TEE_RESULT.BAD_PARAMETERS);
    expect(await teeCode(fs.write("x".repeat(41), id(0), bytes(1, 1), kernel(dev)))).toBe(TEE_RESULT.BAD_PARAMETERS);
    expect(await teeCode(fs.write(TA, id(0), new Uint8Array(128 * 1024), kernel(dev)))).toBe(TEE_RESULT.STORAGE_NO_SPACE);
    expect(() => createRpmbFs({ key: new Uint8Array(16) })).toThrow(TeeError);
  });

  it("refuses a file system of another version with ACCESS_DENIED ('Wrong software is in use')", async () => {
    const dev = programmed();
    await createRpmbFs({ key }).write(TA, id(0), bytes(10, 1), kernel(dev));
    // Rewrite the header block with version 3, authenticated with the key (as other software would).
    const header = dev.state.blocks.slice(0, 256);
    expect(new DataView(header.buffer).getUint32(0, true)).toBe(0x52504d42);
    expect(new DataView(header.buffer).getUint32(4, true)).toBe(2);
    new DataView(header.buffer).setUint32(4, 3, true);
    const f = encodeRpmbFrame({ type: RPMB_REQUEST.WRITE, blockCount: 1, address: 0, writeCounter: dev.state.writeCounter, data: header });
    f.set(rpmbMac(key, f), RPMB_FRAME_OFFSET.KEY_MAC);
    expect(decodeRpmbFrame(dev.transfer(f, 1)).result).toBe(RPMB_RESULT.OK);
    expect(await teeCode(createRpmbFs({ key }).read(TA, id(0), kernel(dev)))).toBe(TEE_RESULT.ACCESS_DENIED);
  });
});

describe("createRpmbFs: OP-TEE's key handling (tee_rpmb_init)", () => {
  it("unprogrammed key, default build: STORAGE_NOT_AVAILABLE and the device stays blank", async () => {
    const dev = new RpmbDevice({ cid });
    const fs = createRpmbFs({ key });
    expect(await teeCode(fs.read(TA, id(0), kernel(dev)))).toBe(TEE_RESULT.STORAGE_NOT_AVAILABLE);
    expect(await teeCode(fs.write(TA, id(0), bytes(1, 1), kernel(dev)))).toBe(TEE_RESULT.STORAGE_NOT_AVAILABLE);
    expect(dev.state.keyProgrammed).toBe(false);
  });

  it("unprogrammed key, CFG_RPMB_WRITE_KEY: programmed when the platform is ready, else BAD_STATE", async () => {
    const dev = new RpmbDevice({ cid });
    expect(await teeCode(createRpmbFs({ key, writeKey: true, plat: { keyIsReady: false } }).read(TA, id(0), kernel(dev)))).toBe(TEE_RESULT.BAD_STATE);
    expect(dev.state.keyProgrammed).toBe(false);
    const fs = createRpmbFs({ key, writeKey: true, plat: { keyIsReady: true } });
    const { ctx, seen } = legacy(dev);
    await fs.write(TA, id(0), bytes(20, 4), ctx);
    expect(dev.state.keyProgrammed).toBe(true);
    const keyFrame = seen.find((r) => r.cmd === 1 && decodeRpmbFrame(r.frames.subarray(0, 512)).type === RPMB_REQUEST.KEY_PROGRAM);
    expect(keyFrame && keyFrame.cmd === 1 && decodeRpmbFrame(keyFrame.frames).keyMac).toEqual(key); // the key crosses in clear
    // A production build with the same key now reads it.
    expect(await createRpmbFs({ key }).read(TA, id(0), kernel(dev))).toEqual(bytes(20, 4));
  });

  it("wrong key: SECURITY (the MAC of the counter read does not verify) and nothing written", async () => {
    const dev = programmed();
    await createRpmbFs({ key }).write(TA, id(0), bytes(10, 1), kernel(dev));
    const counter = dev.state.writeCounter;
    const fs = createRpmbFs({ key: wrongKey, writeKey: true });
    expect(await teeCode(fs.read(TA, id(0), kernel(dev)))).toBe(TEE_RESULT.SECURITY);
    expect(await teeCode(fs.write(TA, id(0), bytes(10, 2), kernel(dev)))).toBe(TEE_RESULT.SECURITY);
    expect(dev.state.writeCounter).toBe(counter);
  });

  it("a replayed response (old nonce) is SECURITY on the counter read and on a data read", async () => {
    const dev = programmed();
    const record = new Map<number, Uint8Array>();
    let replay = false;
    const mitm: RpmbTarget = {
      cid,
      transfer(frames, n) {
        const type = decodeRpmbFrame(frames.subarray(0, 512)).type;
        const resp = dev.transfer(frames, n);
        if (type === RPMB_REQUEST.READ_COUNTER || type === RPMB_REQUEST.READ) {
          const old = record.get(type);
          if (replay && old && old.length === resp.length) return old;
          record.set(type, resp);
        }
        return resp;
      },
    };
    const fs = createRpmbFs({ key });
    await fs.write(TA, id(0), bytes(10, 1), kernel(mitm)); // init + format + write
    await fs.read(TA, id(0), kernel(mitm)); // record a data read
    replay = true;
    expect(await teeCode(fs.read(TA, id(0), kernel(mitm)))).toBe(TEE_RESULT.SECURITY);
    expect(await teeCode(createRpmbFs({ key }).read(TA, id(0), kernel(mitm)))).toBe(TEE_RESULT.SECURITY);
    replay = false;
    expect(await fs.read(TA, id(0), kernel(mitm))).toEqual(bytes(10, 1));
  });

  it("counter replay: a captured write frame replayed by the normal world gets COUNTER failure and changes nothing", async () => {
    const dev = programmed();
    const captured: Uint8Array[] = [];
    const spy: RpmbTarget = {
      cid,
      transfer(frames, n) {
        if (decodeRpmbFrame(frames.subarray(0, 512)).type === RPMB_REQUEST.WRITE) captured.push(frames.slice());
        return dev.transfer(frames, n);
      },
    };
    const fs = createRpmbFs({ key });
    await fs.write(TA, id(0), bytes(256, 1), kernel(spy));
    const oldData = captured[captured.length - 2]!; // the data block write of version 1
    await fs.write(TA, id(0), bytes(256, 2), kernel(spy));
    const before = Buffer.from(dev.state.blocks);
    const counter = dev.state.writeCounter;
    for (const f of captured) expect(decodeRpmbFrame(dev.transfer(f, 1)).result).toBe(RPMB_RESULT.COUNTER_FAILURE);
    expect(decodeRpmbFrame(dev.transfer(oldData, 1)).result).toBe(RPMB_RESULT.COUNTER_FAILURE);
    expect(dev.state.writeCounter).toBe(counter);
    expect(Buffer.compare(Buffer.from(dev.state.blocks), before)).toBe(0);
    expect(await fs.read(TA, id(0), kernel(dev))).toEqual(bytes(256, 2));
  });

  it("a device rolled back under the TEE: writes are retried, then RPMB is dead (COMMUNICATION)", async () => {
    const dev = programmed();
    const fs = createRpmbFs({ key });
    await fs.write(TA, id(0), bytes(10, 1), kernel(dev));
    const old = new RpmbDevice({ cid, sizeMult: 1, state: dev.snapshot() });
    await fs.write(TA, id(1), bytes(10, 2), kernel(dev));
    // The normal world swaps in the older copy: its counter is behind what the TEE holds.
    expect(await teeCode(fs.write(TA, id(2), bytes(10, 3), kernel(old)))).toBe(TEE_RESULT.COMMUNICATION);
    expect(fs.dead).toBe(true);
  });
});

describe("createRpmbFs: write retries and the dead state (write_req, RPMB_MAX_RETRIES)", () => {
  it("9 failed attempts then success: the write lands on the 10th", async () => {
    const dev = programmed();
    const fs = createRpmbFs({ key });
    await fs.write(TA, id(0), bytes(10, 1), kernel(dev));
    const transfers = dev.transfers;
    dev.faults.failWrites = 9;
    await fs.write(TA, id(0), bytes(10, 2), kernel(dev));
    expect(fs.dead).toBe(false);
    expect(dev.transfers - transfers).toBeGreaterThanOrEqual(11); // 10 data attempts + the table write (+ counter re-sync)
    expect(await fs.read(TA, id(0), kernel(dev))).toEqual(bytes(10, 2));
  });

  it("10 failed writes: COMMUNICATION, every later operation COMMUNICATION, until a new back end (reboot)", async () => {
    const dev = programmed();
    const { ctx } = legacy(dev);
    const fs = createRpmbFs({ key });
    await fs.write(TA, id(0), bytes(10, 1), ctx);
    dev.faults.failWrites = 10;
    expect(await teeCode(fs.write(TA, id(0), bytes(10, 2), ctx))).toBe(TEE_RESULT.COMMUNICATION);
    expect(fs.dead).toBe(true);
    expect(dev.faults.failWrites).toBe(0);
    // The device is healthy again, but this boot of the TEE has given up on it.
    const transfers = dev.transfers;
    expect(await teeCode(fs.read(TA, id(0), ctx))).toBe(TEE_RESULT.COMMUNICATION);
    expect(await teeCode(fs.write(TA, id(1), bytes(1, 1), ctx))).toBe(TEE_RESULT.COMMUNICATION);
    expect(await teeCode(fs.remove(TA, id(0), ctx))).toBe(TEE_RESULT.COMMUNICATION);
    expect(dev.transfers).toBe(transfers);
    // Reboot: the old object is intact (the new data went to free blocks, the table was never rewritten).
    const rebooted = createRpmbFs({ key });
    expect(await rebooted.read(TA, id(0), ctx)).toEqual(bytes(10, 1));
    await rebooted.write(TA, id(0), bytes(10, 3), ctx);
    expect(await rebooted.read(TA, id(0), ctx)).toEqual(bytes(10, 3));
  });

  it("retries is configurable", async () => {
    const dev = programmed();
    const fs = createRpmbFs({ key, retries: 3 });
    await fs.write(TA, id(0), bytes(10, 1), kernel(dev));
    dev.faults.failWrites = 3;
    expect(await teeCode(fs.write(TA, id(0), bytes(10, 2), kernel(dev)))).toBe(TEE_RESULT.COMMUNICATION);
    expect(fs.dead).toBe(true);
  });

  it("the supplicant gone: reads and the key check fail COMMUNICATION without killing RPMB; back → works", async () => {
    const dev = programmed();
    const { ctx, state } = legacy(dev);
    const fresh = createRpmbFs({ key });
    state.up = false;
    expect(await teeCode(fresh.read(TA, id(0), ctx))).toBe(TEE_RESULT.COMMUNICATION);
    expect(fresh.dead).toBe(false);
    state.up = true;
    await fresh.write(TA, id(0), bytes(10, 1), ctx);
    state.up = false;
    expect(await teeCode(fresh.read(TA, id(0), ctx))).toBe(TEE_RESULT.COMMUNICATION);
    expect(fresh.dead).toBe(false);
    state.up = true;
    expect(await fresh.read(TA, id(0), ctx)).toEqual(bytes(10, 1));
  });

  it("a supplicant answering the wrong number of frames is COMMUNICATION", async () => {
    const dev = programmed();
    const ctx: SecureStorageContext = {
      clock: new FakeClock(),
      kernelRpmb: undefined,
      rpc: async (req) => (req.cmd === 1 ? { result: 0, data: dev.transfer(req.frames, req.responseFrames).subarray(0, 100) } : { result: 0 }),
    };
    expect(await teeCode(createRpmbFs({ key }).read(TA, id(0), ctx))).toBe(TEE_RESULT.COMMUNICATION);
  });
});

describe("frames the back end sends", () => {
  it("are well-formed JEDEC requests: counter read with a nonce, single-block MAC'd writes, reads", async () => {
    const dev = programmed();
    const types: number[] = [];
    const spy: RpmbTarget = {
      cid,
      transfer(frames, n) {
        for (const f of splitRpmbFrames(frames)) types.push(decodeRpmbFrame(f).type);
        return dev.transfer(frames, n);
      },
    };
    await createRpmbFs({ key }).write(TA, id(0), bytes(600, 1), kernel(spy));
    expect(types[0]).toBe(RPMB_REQUEST.READ_COUNTER);
    expect(types).toContain(RPMB_REQUEST.READ);
    expect(types.filter((t) => t === RPMB_REQUEST.WRITE).length).toBe(64 + 1 + 3 + 1); // format + 3 data blocks + table
  });
});

describe("a hostile normal world", () => {
  it("fast-check: random response frames (any count) only ever give a TeeError, never another throw", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ minLength: 512, maxLength: 512 }), fc.integer({ min: 0, max: 8 })), {
          minLength: 1,
          maxLength: 20,
        }),
        fc.constantFrom("read", "write", "remove"),
        async (answers, op) => {
          let i = 0;
          const ctx: SecureStorageContext = {
            clock: new FakeClock(),
            kernelRpmb: undefined,
            rpc: async (req) => {
              const [frames, frame, type] = answers[i++ % answers.length]!;
              const data = new Uint8Array(frames * 512);
              for (let k = 0; k < frames; k++) data.set(frame, k * 512);
              if (frames > 0 && type > 0) data[data.length - 1] = type; // plausible response types 0x01..0x08
              return req.cmd === 1 ? { result: TEE_RESULT.SUCCESS, data } : { result: TEE_RESULT.NOT_SUPPORTED };
            },
          };
          const fs = createRpmbFs({ key, writeKey: true });
          const run =
            op === "read" ? fs.read(TA, id(0), ctx) : op === "write" ? fs.write(TA, id(0), bytes(10, 1), ctx) : fs.remove(TA, id(0), ctx);
          const e = await run.then(
            () => undefined,
            (err: unknown) => err,
          );
          // Nothing random carries the key's MAC: every operation fails, and with a typed TEE result.
          expect(e).toBeInstanceOf(TeeError);
        },
      ),
      { numRuns: 150 },
    );
  });
});
