import { describe, it, expect } from "vitest";
import { FakeClock } from "../core/clock.js";
import { SoftTpm } from "./softtpm.js";
import { STARTUP_CLEAR, authCmd, cmd, hex, nvPublic, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

const OWNER = 0x40000001;
const PLATFORM = 0x4000000c;
const ENDORSEMENT = 0x4000000b;
// TPMA_NV bits (TPM 2.0 Part 2 §13.4)
const PPWRITE = 0x1, OWNERWRITE = 0x2, AUTHWRITE = 0x4, WRITEALL = 0x1000, WRITEDEFINE = 0x2000, WRITE_STCLEAR = 0x4000;
const PPREAD = 0x10000, OWNERREAD = 0x20000, AUTHREAD = 0x40000, NO_DA = 0x02000000, CLEAR_STCLEAR = 0x08000000;
const PLATFORMCREATE = 0x40000000, READ_STCLEAR = 0x80000000;
const COUNTER = 0x10, BITS = 0x20, EXTEND = 0x40;
const AUTH_RW = AUTHREAD | AUTHWRITE;

const define = (idx: number, attrs: number, size: number, auth: number[] = [], h = OWNER, hauth: number[] = [], nameAlg = 0x000b) =>
  authCmd(0x12a, [h], [hauth], [...t2b(auth), ...nvPublic(idx, attrs >>> 0, size, nameAlg)]);
const undefine = (idx: number, h = OWNER) => authCmd(0x122, [h, idx], [[]]);
const write = (idx: number, data: number[], off = 0, h = OWNER, a: number[] = []) => authCmd(0x137, [h, idx], [a], [...t2b(data), ...u16(off)]);
const read = (idx: number, size: number, off = 0, h = OWNER, a: number[] = []) => authCmd(0x14e, [h, idx], [a], [...u16(size), ...u16(off)]);
const readPublic = (idx: number) => cmd(0x8001, 0x169, u32(idx));
const increment = (idx: number, h = idx, a: number[] = []) => authCmd(0x134, [h, idx], [a]);
const extend = (idx: number, data: number[], h = idx, a: number[] = []) => authCmd(0x136, [h, idx], [a], t2b(data));
const setBits = (idx: number, hi: number, lo: number, h = idx, a: number[] = []) => authCmd(0x135, [h, idx], [a], [...u32(hi), ...u32(lo)]);
const writeLock = (idx: number, h = idx, a: number[] = []) => authCmd(0x138, [h, idx], [a]);
const readLock = (idx: number, h = idx, a: number[] = []) => authCmd(0x14f, [h, idx], [a]);
/** The data of a successful NV_Read response (sessions tag: paramSize, then TPM2B). */
const dataOf = (r: Uint8Array) => hex(r.subarray(16, 16 + ((r[14]! << 8) | r[15]!)));

const I = 0x01500000;
const HELLO = [104, 101, 108, 108, 111];

describe("NV ordinary index lifecycle (Part 3 §31)", () => {
  it("define, read public (swtpm bytes), write, read, undefine", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(define(I, OWNERWRITE | OWNERREAD, 16, [0x70, 0x77]), 0))).toBe(0);
    expect(rcOf(t.executeSync(define(I, OWNERWRITE | OWNERREAD, 16), 0))).toBe(0x14c);
    expect(hex(t.executeSync(readPublic(I), 0))).toBe(
      "80010000003e00000000000e01500000000b00020002000000100022000b4bc087528ff106de2ae9777715f673e27250e5dc13cedea3bc1a541745971eaf",
    );
    expect(rcOf(t.executeSync(read(I, 4), 0))).toBe(0x14a);
    expect(hex(t.executeSync(write(I, HELLO), 0))).toBe("80020000001300000000000000000000010000");
    expect(hex(t.executeSync(read(I, 5), 0))).toBe("80020000001a0000000000000007000568656c6c6f0000010000");
    expect(dataOf(t.executeSync(read(I, 0), 0))).toBe("");
    expect(u32At(t.executeSync(readPublic(I), 0), 18)).toBe(0x20020002); // WRITTEN now set
    expect(rcOf(t.executeSync(undefine(I), 0))).toBe(0);
    expect(rcOf(t.executeSync(undefine(I), 0))).toBe(0x28b);
    expect(rcOf(t.executeSync(readPublic(I), 0))).toBe(0x18b);
  });

  it("range and offset errors: TPM_RC_NV_RANGE, TPM_RC_VALUE + P2, TPM2B too long", () => {
    const t = startedTpm();
    t.executeSync(define(I, OWNERWRITE | OWNERREAD, 16), 0);
    t.executeSync(write(I, HELLO), 0);
    expect(rcOf(t.executeSync(read(I, 20), 0))).toBe(0x146);
    expect(rcOf(t.executeSync(read(I, 4, 14), 0))).toBe(0x146);
    expect(rcOf(t.executeSync(write(I, [0, 0, 0, 0], 14), 0))).toBe(0x146);
    expect(rcOf(t.executeSync(write(I, new Array(17).fill(0)), 0))).toBe(0x146);
    expect(rcOf(t.executeSync(write(I, [], 17), 0))).toBe(0x2c4);
    expect(rcOf(t.executeSync(write(I, new Array(1025).fill(0)), 0))).toBe(0x1d5);
  });

  it("handle errors: undefined index TPM_RC_HANDLE + H2, wrong handle type TPM_RC_VALUE + H2", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(write(0x01500009, [1]), 0))).toBe(0x28b);
    expect(rcOf(t.executeSync(read(0x01500009, 1), 0))).toBe(0x28b);
    expect(rcOf(t.executeSync(write(OWNER, [1]), 0))).toBe(0x284);
    expect(rcOf(t.executeSync(write(I, [1], 0, ENDORSEMENT), 0))).toBe(0x184);
  });

  it("authorization: owner needs OWNERWRITE/OWNERREAD, index auth needs AUTHWRITE/AUTHREAD and the password", () => {
    const t = startedTpm();
    t.executeSync(define(I, OWNERWRITE | OWNERREAD, 16, [0x70, 0x77]), 0);
    t.executeSync(write(I, HELLO), 0);
    expect(rcOf(t.executeSync(read(I, 4, 0, I, [0x70, 0x77]), 0))).toBe(0x12f);
    expect(rcOf(t.executeSync(write(I, [1], 0, OWNER, [1]), 0))).toBe(0x9a2);
    const J = 0x01500001;
    t.executeSync(define(J, AUTH_RW | NO_DA, 8, [0x61]), 0);
    expect(rcOf(t.executeSync(write(J, [1], 0, J, [0x61]), 0))).toBe(0);
    expect(rcOf(t.executeSync(write(J, [1], 0, J, [0x62]), 0))).toBe(0x9a2); // NO_DA: BAD_AUTH
    expect(rcOf(t.executeSync(write(J, [1], 0, OWNER), 0))).toBe(0x149);
    expect(rcOf(t.executeSync(read(J, 1, 0, OWNER), 0))).toBe(0x149);
    expect(dataOf(t.executeSync(read(J, 1, 0, J, [0x61, 0, 0]), 0))).toBe("01"); // trailing zeros ignored
    expect(rcOf(t.executeSync(cmd(0x8001, 0x137, [...u32(J), ...u32(J), ...t2b([1]), ...u16(0)]), 0))).toBe(0x125);
  });

  it("WRITEALL requires a full write", () => {
    const t = startedTpm();
    t.executeSync(define(I, AUTH_RW | WRITEALL, 8), 0);
    expect(rcOf(t.executeSync(write(I, [1, 2, 3, 4], 0, I), 0))).toBe(0x146);
    expect(rcOf(t.executeSync(write(I, [1, 2, 3, 4, 5, 6, 7, 8], 0, I), 0))).toBe(0);
  });
});

describe("NV counter, bits and extend indices", () => {
  it("a counter starts at the highest count seen, increments, and refuses NV_Write/NV_Extend", () => {
    const t = startedTpm();
    const C = 0x01500001;
    expect(rcOf(t.executeSync(define(C, AUTH_RW | COUNTER, 8, [0x63]), 0))).toBe(0);
    expect(rcOf(t.executeSync(read(C, 8, 0, C, [0x63]), 0))).toBe(0x14a);
    expect(rcOf(t.executeSync(increment(C, C, [0x63]), 0))).toBe(0);
    expect(hex(t.executeSync(read(C, 8, 0, C, [0x63]), 0))).toBe("80020000001d000000000000000a000800000000000000010000010000");
    expect(hex(t.executeSync(readPublic(C), 0))).toBe(
      "80010000003e00000000000e01500001000b20040014000000080022000bd797fef827d96c5b170b45e0f9a9e52d3619a0520672671aee48971ea0a7f6b0",
    );
    expect(rcOf(t.executeSync(write(C, new Array(8).fill(0), 0, C, [0x63]), 0))).toBe(0x082);
    expect(rcOf(t.executeSync(extend(C, [1], C, [0x63]), 0))).toBe(0x282);
    expect(rcOf(t.executeSync(increment(C, OWNER), 0))).toBe(0x149);
    expect(rcOf(t.executeSync(define(0x01500002, AUTH_RW | COUNTER, 4), 0))).toBe(0x2d5);
    // a second counter starts at the largest value a deleted counter had: while C (at 1) exists,
    // that is still 0; after C is undefined, 1 (measured against swtpm 0.7.1)
    const D = 0x01500003;
    t.executeSync(define(D, AUTH_RW | COUNTER, 8), 0);
    t.executeSync(increment(D), 0);
    expect(dataOf(t.executeSync(read(D, 8, 0, D), 0))).toBe("0000000000000001");
    expect(rcOf(t.executeSync(undefine(C), 0))).toBe(0);
    const E = 0x01500004;
    t.executeSync(define(E, AUTH_RW | COUNTER, 8), 0);
    t.executeSync(increment(E), 0);
    expect(dataOf(t.executeSync(read(E, 8, 0, E), 0))).toBe("0000000000000002");
  });

  it("an extend index hashes old value ‖ data with its nameAlg (swtpm value)", () => {
    const t = startedTpm();
    const E = 0x01500003;
    expect(rcOf(t.executeSync(define(E, AUTH_RW | EXTEND, 20), 0))).toBe(0x2d5);
    expect(rcOf(t.executeSync(define(E, AUTH_RW | EXTEND, 32), 0))).toBe(0);
    expect(rcOf(t.executeSync(extend(E, [0x61, 0x62, 0x63]), 0))).toBe(0);
    expect(dataOf(t.executeSync(read(E, 32, 0, E), 0))).toBe("365aa7d8f7f9402c4b9434502b4cc89ddb09fe50d7cd95b493b834c62d5a5370");
    expect(rcOf(t.executeSync(increment(E), 0))).toBe(0x282);
  });

  it("a bits index ORs bits in", () => {
    const t = startedTpm();
    const B = 0x01500005;
    expect(rcOf(t.executeSync(define(B, AUTH_RW | BITS, 4), 0))).toBe(0x2d5);
    t.executeSync(define(B, AUTH_RW | BITS, 8), 0);
    expect(rcOf(t.executeSync(setBits(B, 0, 5), 0))).toBe(0);
    expect(rcOf(t.executeSync(setBits(B, 1, 0x100), 0))).toBe(0);
    expect(dataOf(t.executeSync(read(B, 8, 0, B), 0))).toBe("0000000100000105");
    expect(rcOf(t.executeSync(setBits(I, 0, 1, OWNER), 0))).toBe(0x28b);
  });
});

describe("NV locks", () => {
  it("WRITE_STCLEAR: NV_WriteLock blocks writes until the next Startup(CLEAR)", async () => {
    const t = startedTpm();
    const W = 0x01500007;
    t.executeSync(define(W, AUTH_RW | WRITE_STCLEAR, 8), 0);
    t.executeSync(write(W, [1, 1, 1, 1, 1, 1, 1, 1], 0, W), 0);
    expect(rcOf(t.executeSync(writeLock(W), 0))).toBe(0);
    expect(rcOf(t.executeSync(write(W, [2], 0, W), 0))).toBe(0x148);
    expect(rcOf(t.executeSync(write(W, [2]), 0))).toBe(0x148); // lock is checked before the owner attribute
    expect(rcOf(t.executeSync(writeLock(W), 0))).toBe(0);
    expect(u32At(t.executeSync(readPublic(W), 0), 18)).toBe(0x20044804);
    await t.powerOff();
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    expect(rcOf(t.executeSync(write(W, [2], 0, W), 0))).toBe(0);
  });

  it("WRITEDEFINE: the lock of a written index survives Startup(CLEAR)", async () => {
    const t = startedTpm();
    const W = 0x01500008;
    t.executeSync(define(W, AUTH_RW | WRITEDEFINE, 8), 0);
    t.executeSync(write(W, [1], 0, W), 0);
    t.executeSync(writeLock(W), 0);
    await t.powerOff();
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    expect(rcOf(t.executeSync(write(W, [2], 0, W), 0))).toBe(0x148);
  });

  it("READ_STCLEAR: NV_ReadLock blocks reads until Startup(CLEAR); lock commands need the attribute", async () => {
    const t = startedTpm();
    const R = 0x01500009;
    t.executeSync(define(R, AUTH_RW | READ_STCLEAR, 8), 0);
    t.executeSync(write(R, [2], 0, R), 0);
    expect(rcOf(t.executeSync(readLock(R), 0))).toBe(0);
    expect(rcOf(t.executeSync(read(R, 1, 0, R), 0))).toBe(0x148);
    const E = 0x0150000a;
    t.executeSync(define(E, AUTH_RW, 8), 0);
    expect(rcOf(t.executeSync(readLock(E), 0))).toBe(0x282);
    expect(rcOf(t.executeSync(writeLock(E), 0))).toBe(0x282);
    await t.powerOff();
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    expect(dataOf(t.executeSync(read(R, 1, 0, R), 0))).toBe("02");
  });

  it("CLEAR_STCLEAR: Startup(CLEAR) makes the index unwritten again", async () => {
    const t = startedTpm();
    const X = 0x0150000b;
    t.executeSync(define(X, AUTH_RW | CLEAR_STCLEAR, 8), 0);
    t.executeSync(write(X, [2], 0, X), 0);
    await t.powerOff();
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    expect(rcOf(t.executeSync(read(X, 1, 0, X), 0))).toBe(0x14a);
  });
});

describe("NV_DefineSpace validation (swtpm codes)", () => {
  const t = startedTpm();
  it("rejects missing read/write attributes, bad handles, sizes and PLATFORMCREATE mismatches", () => {
    expect(rcOf(t.executeSync(define(0x0150000b, 0, 8), 0))).toBe(0x2c2);
    expect(rcOf(t.executeSync(define(0x0150000c, AUTH_RW, 8, [], PLATFORM), 0))).toBe(0x182);
    expect(rcOf(t.executeSync(define(0x0150000d, AUTH_RW | PLATFORMCREATE, 8), 0))).toBe(0x182);
    expect(rcOf(t.executeSync(define(0x02000000, AUTH_RW, 8), 0))).toBe(0x2c4);
    expect(rcOf(t.executeSync(define(0x0150000e, AUTH_RW, 3000), 0))).toBe(0x2d5);
    expect(rcOf(t.executeSync(define(0x0150000e, AUTH_RW, 8, [], OWNER, [], 0x27), 0))).toBe(0x2c3);
    expect(rcOf(t.executeSync(define(0x0150000e, AUTH_RW | 0x100, 8), 0))).toBe(0x2e1);
    expect(rcOf(t.executeSync(define(0x0150000e, AUTH_RW | 0x800, 8), 0))).toBe(0x2c2);
    expect(rcOf(t.executeSync(define(0x0150000e, AUTH_RW, 8, new Array(33).fill(1)), 0))).toBe(0x1d5);
    expect(rcOf(t.executeSync(authCmd(0x12a, [OWNER], [[]], [...t2b([]), ...u16(0)]), 0))).toBe(0x2d5);
    expect(rcOf(t.executeSync(authCmd(0x12a, [0x4000000a], [[]], [...t2b([]), ...nvPublic(0x0150000e, AUTH_RW, 8)]), 0))).toBe(0x184);
  });
  it("the platform defines PLATFORMCREATE indices, which the owner may not undefine", () => {
    const P = 0x01400000;
    expect(rcOf(t.executeSync(define(P, PLATFORMCREATE | PPREAD | PPWRITE, 8, [], PLATFORM), 0))).toBe(0);
    expect(rcOf(t.executeSync(undefine(P, OWNER), 0))).toBe(0x149);
    expect(rcOf(t.executeSync(write(P, [1], 0, PLATFORM), 0))).toBe(0);
    expect(rcOf(t.executeSync(undefine(P, PLATFORM), 0))).toBe(0);
  });
  it("holds at most 64 indices, then TPM_RC_NV_SPACE; lists them through GetCapability", () => {
    const u = startedTpm();
    for (let i = 0; i < 64; i++) expect(rcOf(u.executeSync(define(0x01000000 + i, AUTH_RW, 1), 0))).toBe(0);
    expect(rcOf(u.executeSync(define(0x01000040, AUTH_RW, 1), 0))).toBe(0x14b);
    const r = u.executeSync(cmd(0x8001, 0x17a, [...u32(1), ...u32(0x01000000), ...u32(10)]), 0);
    expect(r[10]).toBe(1); // moreData
    expect(u32At(r, 15)).toBe(10);
    expect(u32At(r, 19 + 9 * 4)).toBe(0x01000009);
  });
});

describe("Dictionary-attack lockout on DA-protected indices", () => {
  it("three wrong passwords lock DA-protected indices; one failure is forgiven per 1000 s", async () => {
    const clock = new FakeClock();
    const t = new SoftTpm({ seed: "da", clock });
    t.executeSync(STARTUP_CLEAR, 0);
    const C = 0x01500001;
    t.executeSync(define(C, AUTH_RW | COUNTER, 8, [0x63]), 0);
    for (let i = 0; i < 3; i++) expect(rcOf(t.executeSync(increment(C, C, [0x78]), 0))).toBe(0x98e);
    expect(rcOf(t.executeSync(increment(C, C, [0x63]), 0))).toBe(0x921);
    const props = t.executeSync(cmd(0x8001, 0x17a, [...u32(6), ...u32(0x20e), ...u32(1)]), 0);
    expect(u32At(props, 23)).toBe(3);
    await clock.advance(1000 * 1000);
    expect(rcOf(t.executeSync(increment(C, C, [0x63]), 0))).toBe(0);
  });
});

describe("swtpm quirks and DA reset by Clear", () => {
  it("daRetryAfterStartup: the first DA-protected NV authorization after Startup answers TPM_RC_RETRY once", () => {
    const t = new SoftTpm({ seed: "q", daRetryAfterStartup: true });
    t.executeSync(STARTUP_CLEAR, 0);
    t.executeSync(define(I, AUTH_RW, 8), 0);
    expect(rcOf(t.executeSync(write(I, [1], 0, I), 0))).toBe(0x922);
    expect(rcOf(t.executeSync(write(I, [1], 0, I), 0))).toBe(0);
    expect(rcOf(t.executeSync(write(I, [1], 0, I), 0))).toBe(0);
  });

  it("TPM2_Clear resets the DA failure count", () => {
    const t = startedTpm();
    const C = 0x01500001;
    t.executeSync(define(C, AUTH_RW | COUNTER | PLATFORMCREATE | PPREAD | PPWRITE, 8, [0x63], PLATFORM), 0);
    for (let i = 0; i < 3; i++) t.executeSync(increment(C, C, [0x78]), 0);
    expect(rcOf(t.executeSync(increment(C, C, [0x63]), 0))).toBe(0x921);
    expect(rcOf(t.executeSync(authCmd(0x126, [PLATFORM], [[]]), 0))).toBe(0);
    expect(rcOf(t.executeSync(increment(C, C, [0x63]), 0))).toBe(0);
  });
});

describe("NV details measured on swtpm 0.7.1", () => {
  it("unwritten bytes of an ordinary index read as 0xFF after a partial write", () => {
    const t = startedTpm();
    t.executeSync(define(I, OWNERWRITE | OWNERREAD, 8), 0);
    t.executeSync(write(I, [7, 7], 0), 0);
    expect(dataOf(t.executeSync(read(I, 8), 0))).toBe("0707ffffffffffff");
  });
  it("refuses CLEAR_STCLEAR with WRITEDEFINE, and POLICY_DELETE unless the platform defines", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(define(I, OWNERWRITE | OWNERREAD | CLEAR_STCLEAR | WRITEDEFINE, 8), 0))).toBe(0x2c2);
    expect(rcOf(t.executeSync(define(I, OWNERWRITE | OWNERREAD | 0x400, 8), 0))).toBe(0x2c2);
    expect(rcOf(t.executeSync(define(0x01400000, PPWRITE | PPREAD | PLATFORMCREATE | 0x400, 8, [], PLATFORM), 0))).toBe(0);
    expect(rcOf(t.executeSync(undefine(0x01400000, PLATFORM), 0))).toBe(0x282);
  });
  it("checks access (NV_AUTHORIZATION) before the index type, and refuses another index's auth", () => {
    const t = startedTpm();
    const C = 0x01500001;
    t.executeSync(define(C, AUTH_RW | COUNTER, 8), 0);
    t.executeSync(define(I, AUTH_RW, 8), 0);
    expect(rcOf(t.executeSync(setBits(C, 0, 1, OWNER), 0))).toBe(0x149);
    expect(rcOf(t.executeSync(increment(C, I), 0))).toBe(0x149);
  });
});
