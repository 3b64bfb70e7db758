import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { createHmac } from "node:crypto";
import { TpmArgumentError } from "../../errors/index.js";
import {
  RPMB_FRAME_OFFSET,
  RPMB_FRAME_SIZE,
  RPMB_REQUEST,
  RPMB_RESPONSE,
  RPMB_RESULT,
  decodeRpmbFrame,
  encodeRpmbFrame,
  joinRpmbFrames,
  rpmbMac,
  splitRpmbFrames,
} from "../../bus/tee/rpmb.js";
import { RpmbDevice } from "./rpmb-device.js";

const cid = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
const otherKey = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
const nonce = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

function hmacRef(k: Uint8Array, frames: Uint8Array): Uint8Array {
  const h = createHmac("sha256", k);
  for (let i = 0; i < frames.length; i += 512) h.update(frames.subarray(i + 228, i + 512));
  return new Uint8Array(h.digest());
}

function writeFrame(k: Uint8Array, counter: number, address: number, fill: number): Uint8Array {
  const f = encodeRpmbFrame({ type: RPMB_REQUEST.WRITE, blockCount: 1, address, writeCounter: counter, data: new Uint8Array(256).fill(fill) });
  f.set(rpmbMac(k, f), RPMB_FRAME_OFFSET.KEY_MAC);
  return f;
}

function last(resp: Uint8Array) {
  return decodeRpmbFrame(resp.subarray(resp.length - 512));
}

describe("RPMB frame codec (JESD84-B51 §6.6.22.2)", () => {
  it("pins the numbers", () => {
    expect(RPMB_FRAME_SIZE).toBe(512);
    expect(RPMB_FRAME_OFFSET).toEqual({
      STUFF: 0, KEY_MAC: 196, DATA: 228, NONCE: 484, WRITE_COUNTER: 500, ADDRESS: 504, BLOCK_COUNT: 506, RESULT: 508, TYPE: 510,
    });
    expect(RPMB_REQUEST).toEqual({ KEY_PROGRAM: 1, READ_COUNTER: 2, WRITE: 3, READ: 4, RESULT_READ: 5 });
    expect(RPMB_RESPONSE).toEqual({ KEY_PROGRAM: 0x100, READ_COUNTER: 0x200, WRITE: 0x300, READ: 0x400 });
    expect(RPMB_RESULT).toEqual({
      OK: 0, GENERAL_FAILURE: 1, AUTH_FAILURE: 2, COUNTER_FAILURE: 3, ADDRESS_FAILURE: 4, WRITE_FAILURE: 5, READ_FAILURE: 6,
      KEY_NOT_PROGRAMMED: 7, COUNTER_EXPIRED: 0x80,
    });
  });

  it("puts every field at its offset, big-endian, and decodes it back", () => {
    const data = Uint8Array.from({ length: 256 }, (_, i) => i);
    const f = encodeRpmbFrame({ keyMac: key, data, nonce, writeCounter: 0x01020304, address: 0x0506, blockCount: 0x0708, result: 0x0980, type: 0x0300 });
    expect(f.length).toBe(512);
    expect(f.subarray(0, 196).every((b) => b === 0)).toBe(true);
    expect(f.subarray(196, 228)).toEqual(key);
    expect(f.subarray(228, 484)).toEqual(data);
    expect(f.subarray(484, 500)).toEqual(nonce);
    expect([...f.subarray(500, 512)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80, 3, 0]);
    expect(decodeRpmbFrame(f)).toEqual({ keyMac: key, data, nonce, writeCounter: 0x01020304, address: 0x0506, blockCount: 0x0708, result: 0x0980, type: 0x0300 });
  });

  it("checks every length and range with TpmArgumentError", () => {
    expect(() => decodeRpmbFrame(new Uint8Array(511))).toThrow(TpmArgumentError);
    expect(() => encodeRpmbFrame({ keyMac: new Uint8Array(31) })).toThrow(/keyMac must be 32 bytes/);
    expect(() => encodeRpmbFrame({ data: new Uint8Array(257) })).toThrow(/data must be 256 bytes/);
    expect(() => encodeRpmbFrame({ nonce: new Uint8Array(15) })).toThrow(/nonce must be 16 bytes/);
    expect(() => encodeRpmbFrame({ address: 0x10000 })).toThrow(TpmArgumentError);
    expect(() => encodeRpmbFrame({ writeCounter: -1 })).toThrow(TpmArgumentError);
    expect(() => encodeRpmbFrame({ type: 1.5 })).toThrow(TpmArgumentError);
    expect(() => splitRpmbFrames(new Uint8Array(0))).toThrow(TpmArgumentError);
    expect(() => splitRpmbFrames(new Uint8Array(1000))).toThrow(TpmArgumentError);
    expect(() => joinRpmbFrames([new Uint8Array(12)])).toThrow(TpmArgumentError);
    expect(() => rpmbMac(new Uint8Array(16), new Uint8Array(512))).toThrow(/key must be 32 bytes/);
  });

  it("MACs bytes 228..511 of each frame in order (checked against node:crypto)", () => {
    const a = encodeRpmbFrame({ data: new Uint8Array(256).fill(1), nonce, address: 3, type: 0x400 });
    const b = encodeRpmbFrame({ data: new Uint8Array(256).fill(2), nonce, address: 3, type: 0x400 });
    b.fill(0xee, 0, 196); // stuff is outside the MAC
    const both = joinRpmbFrames([a, b]);
    expect(rpmbMac(key, both)).toEqual(hmacRef(key, both));
    expect(rpmbMac(key, [a, b])).toEqual(hmacRef(key, both));
    const c = b.slice();
    c[0] = 1;
    c[195] = 9;
    expect(rpmbMac(key, [a, c])).toEqual(rpmbMac(key, [a, b]));
    c[511] ^= 1;
    expect(rpmbMac(key, [a, c])).not.toEqual(rpmbMac(key, [a, b]));
  });
});

describe("RpmbDevice", () => {
  it("validates its options", () => {
    expect(() => new RpmbDevice({ cid: new Uint8Array(15) })).toThrow(TpmArgumentError);
    expect(() => new RpmbDevice({ cid, sizeMult: 0 })).toThrow(TpmArgumentError);
    expect(() => new RpmbDevice({ cid, sizeMult: 129 })).toThrow(TpmArgumentError);
    expect(new RpmbDevice({ cid }).blockCount).toBe(1024); // default sizeMult 2 = 256 KiB
    expect(new RpmbDevice({ cid, sizeMult: 1 }).state.blocks.length).toBe(128 * 1024);
    const d = new RpmbDevice({ cid });
    expect(() => d.transfer(new Uint8Array(100), 1)).toThrow(TpmArgumentError);
    expect(() => d.transfer(new Uint8Array(512), -1)).toThrow(TpmArgumentError);
    expect(() => d.programKey(new Uint8Array(16))).toThrow(TpmArgumentError);
  });

  it("answers KEY_NOT_PROGRAMMED to every authenticated request before a key exists", () => {
    const d = new RpmbDevice({ cid });
    const rc = last(d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.READ_COUNTER, nonce }), 1));
    expect(rc).toMatchObject({ type: RPMB_RESPONSE.READ_COUNTER, result: RPMB_RESULT.KEY_NOT_PROGRAMMED });
    const rd = last(d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.READ, nonce, address: 0 }), 1));
    expect(rd).toMatchObject({ type: RPMB_RESPONSE.READ, result: RPMB_RESULT.KEY_NOT_PROGRAMMED });
    const wr = last(d.transfer(writeFrame(key, 0, 0, 1), 1));
    expect(wr).toMatchObject({ type: RPMB_RESPONSE.WRITE, result: RPMB_RESULT.KEY_NOT_PROGRAMMED });
    expect(d.state.blocks.every((b) => b === 0)).toBe(true);
  });

  it("programs the key once; a second programming is a GENERAL failure (frame and convenience)", () => {
    const d = new RpmbDevice({ cid });
    const r1 = last(d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.KEY_PROGRAM, keyMac: key }), 1));
    expect(r1).toMatchObject({ type: RPMB_RESPONSE.KEY_PROGRAM, result: RPMB_RESULT.OK });
    expect(d.state.keyProgrammed).toBe(true);
    expect(d.programKey(otherKey)).toBe(RPMB_RESULT.GENERAL_FAILURE);
    const r3 = last(d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.KEY_PROGRAM, keyMac: otherKey }), 1));
    expect(r3.result).toBe(RPMB_RESULT.GENERAL_FAILURE);
    // The original key still authenticates.
    const rc = last(d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.READ_COUNTER, nonce }), 1));
    expect(rc.keyMac).toEqual(rpmbMac(key, encodeRpmbFrame({ ...rc, keyMac: undefined })));
    // RESULT_READ on its own returns the register: the last key programming's failure.
    expect(last(d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.RESULT_READ }), 1))).toMatchObject({
      type: RPMB_RESPONSE.KEY_PROGRAM,
      result: RPMB_RESULT.GENERAL_FAILURE,
    });
  });

  it("reads the counter with the nonce echoed under the device MAC", () => {
    const d = new RpmbDevice({ cid });
    d.programKey(key);
    const resp = d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.READ_COUNTER, nonce }), 1);
    const f = last(resp);
    expect(f).toMatchObject({ type: 0x0200, result: 0, writeCounter: 0, nonce });
    expect(f.keyMac).toEqual(hmacRef(key, resp));
  });

  it("writes with the counter: OK increments it, the result read carries counter, address and MAC", () => {
    const d = new RpmbDevice({ cid });
    d.programKey(key);
    const resp = d.transfer(writeFrame(key, 0, 5, 0x5a), 1);
    const f = last(resp);
    expect(f).toMatchObject({ type: RPMB_RESPONSE.WRITE, result: RPMB_RESULT.OK, writeCounter: 1, address: 5 });
    expect(f.keyMac).toEqual(hmacRef(key, resp));
    expect(d.state.writeCounter).toBe(1);
    expect(d.state.blocks.subarray(5 * 256, 6 * 256).every((b) => b === 0x5a)).toBe(true);
    expect(last(d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.RESULT_READ }), 1))).toMatchObject({ type: 0x300, result: 0, writeCounter: 1 });
  });

  it("answers AUTH, COUNTER (a replayed write), ADDRESS and WRITE failures without writing", () => {
    const d = new RpmbDevice({ cid, sizeMult: 1 });
    d.programKey(key);
    const captured = writeFrame(key, 0, 1, 0x11);
    expect(last(d.transfer(captured, 1)).result).toBe(RPMB_RESULT.OK);
    const before = d.state.blocks.slice();
    expect(last(d.transfer(writeFrame(otherKey, 1, 1, 0x22), 1)).result).toBe(RPMB_RESULT.AUTH_FAILURE);
    expect(last(d.transfer(captured, 1)).result).toBe(RPMB_RESULT.COUNTER_FAILURE); // replay
    expect(last(d.transfer(writeFrame(key, 7, 1, 0x22), 1)).result).toBe(RPMB_RESULT.COUNTER_FAILURE);
    expect(last(d.transfer(writeFrame(key, 1, 512, 0x22), 1)).result).toBe(RPMB_RESULT.ADDRESS_FAILURE);
    d.faults.failWrites = 2;
    expect(last(d.transfer(writeFrame(key, 1, 1, 0x22), 1)).result).toBe(RPMB_RESULT.WRITE_FAILURE);
    expect(last(d.transfer(writeFrame(key, 1, 1, 0x22), 1)).result).toBe(RPMB_RESULT.WRITE_FAILURE);
    expect(d.faults.failWrites).toBe(0);
    expect(d.state.writeCounter).toBe(1);
    expect(Buffer.compare(d.state.blocks, before)).toBe(0);
    expect(last(d.transfer(writeFrame(key, 1, 1, 0x22), 1)).result).toBe(RPMB_RESULT.OK);
    expect(d.state.writeCounter).toBe(2);
  });

  it("writes several blocks in one request when the block counts agree, else GENERAL", () => {
    const d = new RpmbDevice({ cid, maxWriteBlocks: 2 });
    d.programKey(key);
    const mk = (count: number) => [0, 1].map((i) => encodeRpmbFrame({ type: 3, blockCount: count, address: 10, writeCounter: 0, data: new Uint8Array(256).fill(i + 1) }));
    const bad = mk(1);
    bad[1]!.set(rpmbMac(key, bad), 196);
    expect(last(d.transfer(joinRpmbFrames(bad), 1)).result).toBe(RPMB_RESULT.GENERAL_FAILURE);
    const good = mk(2);
    good[1]!.set(rpmbMac(key, good), 196);
    expect(last(d.transfer(joinRpmbFrames(good), 1)).result).toBe(RPMB_RESULT.OK);
    expect(d.state.blocks[10 * 256]).toBe(1);
    expect(d.state.blocks[11 * 256]).toBe(2);
  });

  it("reads n blocks with the nonce, the address and one MAC over all frames; ADDRESS and READ failures", () => {
    const d = new RpmbDevice({ cid, sizeMult: 1 });
    d.programKey(key);
    d.transfer(writeFrame(key, 0, 3, 0x33), 1);
    d.transfer(writeFrame(key, 1, 4, 0x44), 1);
    const resp = d.transfer(encodeRpmbFrame({ type: RPMB_REQUEST.READ, nonce, address: 3 }), 2);
    expect(resp.length).toBe(1024);
    const [a, b] = splitRpmbFrames(resp).map((f) => decodeRpmbFrame(f));
    expect(a).toMatchObject({ type: 0x400, address: 3, result: 0, nonce });
    expect(a!.data.every((x) => x === 0x33)).toBe(true);
    expect(b!.data.every((x) => x === 0x44)).toBe(true);
    expect(b!.keyMac).toEqual(hmacRef(key, resp));
    expect(last(d.transfer(encodeRpmbFrame({ type: 4, nonce, address: 511 }), 2)).result).toBe(RPMB_RESULT.ADDRESS_FAILURE);
    d.faults.failReads = 1;
    expect(last(d.transfer(encodeRpmbFrame({ type: 4, nonce, address: 3 }), 1)).result).toBe(RPMB_RESULT.READ_FAILURE);
    expect(last(d.transfer(encodeRpmbFrame({ type: 4, nonce, address: 3 }), 1)).result).toBe(RPMB_RESULT.OK);
  });

  it("answers an unknown request type with GENERAL failure in the result register", () => {
    const d = new RpmbDevice({ cid });
    expect(last(d.transfer(encodeRpmbFrame({ type: 0x0042 }), 1)).result).toBe(RPMB_RESULT.GENERAL_FAILURE);
    expect(d.transfer(encodeRpmbFrame({ type: 0x0042 }), 0).length).toBe(0);
  });

  it("sets COUNTER_EXPIRED once the counter is at its maximum and refuses writes", () => {
    const blocks = new Uint8Array(2 * 128 * 1024);
    const d = new RpmbDevice({ cid, state: { key, writeCounter: 0xffffffff, blocks } });
    const rc = last(d.transfer(encodeRpmbFrame({ type: 2, nonce }), 1));
    expect(rc.result).toBe(RPMB_RESULT.COUNTER_EXPIRED | RPMB_RESULT.OK);
    expect(rc.writeCounter).toBe(0xffffffff);
    const wr = last(d.transfer(writeFrame(key, 0xffffffff, 0, 1), 1));
    expect(wr.result).toBe(RPMB_RESULT.COUNTER_EXPIRED | RPMB_RESULT.WRITE_FAILURE);
    expect(d.state.writeCounter).toBe(0xffffffff);
  });

  it("keeps key, counter and blocks across a power cycle (snapshot → new device)", () => {
    const d = new RpmbDevice({ cid, sizeMult: 1 });
    d.programKey(key);
    d.transfer(writeFrame(key, 0, 9, 0x99), 1);
    const again = new RpmbDevice({ cid, sizeMult: 1, state: d.snapshot() });
    expect(again.state.keyProgrammed).toBe(true);
    expect(again.state.writeCounter).toBe(1);
    expect(again.programKey(key)).toBe(RPMB_RESULT.GENERAL_FAILURE);
    expect(last(again.transfer(writeFrame(key, 0, 9, 0x11), 1)).result).toBe(RPMB_RESULT.COUNTER_FAILURE);
    expect(again.state.blocks[9 * 256]).toBe(0x99);
    expect(() => new RpmbDevice({ cid, sizeMult: 2, state: d.snapshot() })).toThrow(TpmArgumentError);
  });

  it("fast-check: random frames and frame sequences always get a result, never a throw", () => {
    const frameArb = fc
      .tuple(fc.uint8Array({ minLength: 512, maxLength: 512 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 3 }))
      .map(([bytes, type, blockCount]) => {
        const f = bytes.slice();
        if (type > 0) {
          f[510] = 0;
          f[511] = type; // mostly valid request types, 6 and 7 invalid
          f[506] = 0;
          f[507] = blockCount;
          f[504] &= 0x03; // addresses near the partition
        }
        return f;
      });
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.tuple(fc.array(frameArb, { minLength: 1, maxLength: 3 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 8 }),
        (programmed, seq) => {
          const d = new RpmbDevice({ cid, sizeMult: 1 });
          if (programmed) d.programKey(key);
          for (const [frames, n] of seq) {
            const before = d.state.writeCounter;
            const resp = d.transfer(joinRpmbFrames(frames), n);
            expect(resp.length).toBe(n * 512);
            if (n > 0) {
              const r = last(resp).result;
              expect(r & 0x7f).toBeLessThanOrEqual(RPMB_RESULT.KEY_NOT_PROGRAMMED);
            }
            // Random bytes never carry a valid MAC, so nothing is ever written.
            expect(d.state.writeCounter).toBe(before);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
