import { COMMAND_ATTRIBUTES } from "./tables.js";
import { describe, it, expect } from "vitest";
import { FakeClock } from "../core/clock.js";
import { TpmAbortError, TpmArgumentError, TpmStateError } from "../errors/index.js";
import { SoftTpm } from "./softtpm.js";
import {
  SHUTDOWN_CLEAR,
  SHUTDOWN_STATE,
  STARTUP_CLEAR,
  STARTUP_STATE,
  authArea,
  authCmd,
  cmd,
  hex,
  pcrExtend,
  pcrRead,
  pcrReadDigests,
  pwSession,
  rcOf,
  startedTpm,
  t2b,
  u16,
  u32,
  u32At,
  unhex,
} from "./test-helpers.js";

const SHA1 = 0x0004;
const SHA256 = 0x000b;
const SHA384 = 0x000c;
const SHA512 = 0x000d;
const RH_NULL = 0x40000007;
const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const ENDORSEMENT = 0x4000000b;
const PLATFORM = 0x4000000c;
const zeros = (n: number, v = 0) => new Array<number>(n).fill(v);
const getRandom = (n: number) => cmd(0x8001, 0x17b, u16(n));
const getCap = (cap: number, prop: number, count: number) => cmd(0x8001, 0x17a, [...u32(cap), ...u32(prop), ...u32(count)]);
const pcrReset = (pcr: number) => authCmd(0x13d, [pcr], [[]]);
const readClock = cmd(0x8001, 0x181);
const counterOf = (r: Uint8Array) => u32At(r, 10);

describe("SoftTpm framing: malformed commands get the error a real TPM gives", () => {
  const t = startedTpm();
  const cases: [string, Uint8Array, number][] = [
    ["fewer than 10 bytes", unhex("800100"), 0x09a],
    ["an empty buffer", new Uint8Array(0), 0x09a],
    ["a tag that is no TPM_ST value", unhex("12340000000c0000017b0008"), 0x084],
    ["a TPM_ST that is not a command tag", unhex("80000000000c0000017b0008"), 0x01e],
    ["a size field larger than the bytes", unhex("80010000000e0000017b0008"), 0x142],
    ["a size field smaller than the bytes", unhex("80010000000a0000017b0008"), 0x142],
    ["a size field below 10", unhex("8001000000080000017b0008"), 0x142],
    ["an unknown command code", unhex("80010000000c0000ffff0008"), 0x143],
    ["a vendor-bit command code", unhex("80010000000c2000017b0008"), 0x143],
    ["a missing parameter", unhex("80010000000b0000017b00"), 0x1da],
    ["trailing bytes after the parameters", unhex("80010000000e0000017b00080000"), 0x095],
    ["a handle area cut short", unhex("80020000000c000001820000"), 0x19a],
    ["sessions tag without an authorization area", unhex("80020000000c0000017b0008"), 0x09a],
  ];
  for (const [name, bytes, rc] of cases) {
    it(`answers ${name} with rc 0x${rc.toString(16)} in a 10-byte response`, () => {
      const r = t.executeSync(bytes, 0);
      expect(hex(r)).toBe(`80010000000a${rc.toString(16).padStart(8, "0")}`);
    });
  }

  it("refuses a command larger than MAX_COMMAND_SIZE with TPM_RC_COMMAND_SIZE", () => {
    const big = new Uint8Array(4097);
    big.set(unhex("800100001001 0000017b"));
    expect(rcOf(t.executeSync(big, 0))).toBe(0x142);
  });

  it("throws only for programming errors: a non-Uint8Array or a locality outside 0–4", () => {
    expect(() => t.executeSync([1, 2] as unknown as Uint8Array, 0)).toThrow(TpmArgumentError);
    expect(() => t.executeSync(getRandom(1), 5)).toThrow(TpmArgumentError);
    expect(() => t.executeSync(getRandom(1), -1)).toThrow(TpmArgumentError);
  });

  it("rejects bad option values at construction", () => {
    expect(() => new SoftTpm({ manufacturer: "TOOLONG" })).toThrow(TpmArgumentError);
    expect(() => new SoftTpm({ manufacturer: "" })).toThrow(TpmArgumentError);
    expect(() => new SoftTpm({ vendorString: "é" })).toThrow(TpmArgumentError);
    expect(() => new SoftTpm({ firmwareVersion: [1, -1] })).toThrow(TpmArgumentError);
  });
});

describe("SoftTpm Startup and Shutdown (TPM 2.0 Part 3 §9.3–9.4)", () => {
  it("answers TPM_RC_INITIALIZE to every command before Startup, but checks the command code first", () => {
    const t = new SoftTpm({ seed: "s" });
    expect(t.powerState).toBe("needs-startup");
    expect(rcOf(t.executeSync(getRandom(8), 0))).toBe(0x100);
    expect(rcOf(t.executeSync(SHUTDOWN_CLEAR, 0))).toBe(0x100);
    expect(rcOf(t.executeSync(unhex("80010000000c0000ffff0008"), 0))).toBe(0x143);
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(t.powerState).toBe("running");
    expect(rcOf(t.executeSync(getRandom(8), 0))).toBe(0);
  });

  it("refuses a second Startup with TPM_RC_INITIALIZE and a bad startupType with TPM_RC_VALUE + P1", () => {
    const t = new SoftTpm({ seed: "s" });
    expect(rcOf(t.executeSync(cmd(0x8001, 0x144, u16(5)), 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x144, [0]), 0))).toBe(0x1da);
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0x100);
  });

  it("refuses Startup(STATE) without a saved state with TPM_RC_VALUE + P1", async () => {
    const t = new SoftTpm({ seed: "s" });
    expect(rcOf(t.executeSync(STARTUP_STATE, 0))).toBe(0x1c4);
    t.executeSync(STARTUP_CLEAR, 0);
    t.executeSync(SHUTDOWN_CLEAR, 0);
    await t.powerOff();
    await t.start();
    expect(rcOf(t.executeSync(STARTUP_STATE, 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
  });

  it("keeps running after Shutdown until the power goes, and rejects a bad shutdownType", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(cmd(0x8001, 0x145, u16(2)), 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(SHUTDOWN_STATE, 0))).toBe(0);
    expect(rcOf(t.executeSync(getRandom(8), 0))).toBe(0);
  });

  it("TPM Resume keeps PCRs 0–15 and re-initialises 16–23; counters as swtpm counts them", async () => {
    const t = startedTpm();
    expect(counterOf(t.executeSync(pcrRead([[SHA256, 1]]), 0))).toBe(20);
    for (const p of [0, 16, 23]) t.executeSync(pcrExtend(p, [[SHA256, zeros(32)]]), 0);
    const before = pcrReadDigests(t.executeSync(pcrRead([[SHA256, 0x810001]]), 0));
    expect(counterOf(t.executeSync(pcrRead([[SHA256, 1]]), 0))).toBe(21);
    t.executeSync(SHUTDOWN_STATE, 0);
    await t.powerOff();
    expect(t.powerState).toBe("off");
    expect(() => t.executeSync(getRandom(1), 0)).toThrow(TpmStateError);
    await t.start();
    expect(rcOf(t.executeSync(STARTUP_STATE, 0))).toBe(0);
    const r = t.executeSync(pcrRead([[SHA256, 0x810001]]), 0);
    expect(counterOf(r)).toBe(25); // 21 + PCRs 17–20 re-initialised (swtpm: 0x15 → 0x19)
    const after = pcrReadDigests(r);
    expect(hex(after[0]!)).toBe(hex(before[0]!));
    expect(hex(after[1]!)).toBe("00".repeat(32));
    expect(hex(after[2]!)).toBe("00".repeat(32));
    const clock = t.executeSync(readClock, 0);
    expect(u32At(clock, 26)).toBe(1); // resetCount
    expect(u32At(clock, 30)).toBe(1); // restartCount
  });

  it("TPM Restart (Shutdown(STATE) + Startup(CLEAR)) resets every PCR and bumps restartCount", async () => {
    const t = startedTpm();
    t.executeSync(pcrExtend(0, [[SHA256, zeros(32)]]), 0);
    t.executeSync(SHUTDOWN_STATE, 0);
    await t.powerOff();
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    const r = t.executeSync(pcrRead([[SHA256, 1]]), 0);
    expect(counterOf(r)).toBe(41); // 21 saved + 20
    expect(hex(pcrReadDigests(r)[0]!)).toBe("00".repeat(32));
    const clock = t.executeSync(readClock, 0);
    expect([u32At(clock, 26), u32At(clock, 30), clock[34]]).toEqual([1, 1, 1]);
  });

  it("TPM Reset after a power loss bumps resetCount, zeroes restartCount and marks the clock unsafe", async () => {
    const t = startedTpm();
    await t.powerOff();
    await t.start();
    expect(rcOf(t.executeSync(STARTUP_STATE, 0))).toBe(0x1c4);
    t.executeSync(STARTUP_CLEAR, 0);
    const clock = t.executeSync(readClock, 0);
    expect([u32At(clock, 26), u32At(clock, 30), clock[34]]).toEqual([2, 0, 0]);
  });

  it("a state change after Shutdown(STATE) voids the saved state", async () => {
    const t = startedTpm();
    t.executeSync(SHUTDOWN_STATE, 0);
    t.executeSync(pcrExtend(0, [[SHA256, zeros(32)]]), 0);
    await t.powerOff();
    await t.start();
    expect(rcOf(t.executeSync(STARTUP_STATE, 0))).toBe(0x1c4);
  });

  it("execute() wraps executeSync and honours an aborted signal", async () => {
    const t = startedTpm();
    const r = await t.execute(getRandom(4), 0);
    expect(r.length).toBe(16);
    const ac = new AbortController();
    ac.abort();
    await expect(t.execute(getRandom(4), 0, ac.signal)).rejects.toBeInstanceOf(TpmAbortError);
    expect(() => t.cancel()).not.toThrow();
  });
});

describe("SoftTpm random numbers (Part 3 §16)", () => {
  it("caps GetRandom at 64 bytes (the largest digest) as swtpm does", () => {
    const t = startedTpm();
    const r = t.executeSync(getRandom(200), 0);
    expect(r.length).toBe(10 + 2 + 64);
    expect((r[10]! << 8) | r[11]!).toBe(64);
  });

  it("is reproducible with a seed and differs between seeds", () => {
    const a = startedTpm({ seed: "one" }).executeSync(getRandom(32), 0);
    const b = startedTpm({ seed: "one" }).executeSync(getRandom(32), 0);
    const c = startedTpm({ seed: "two" }).executeSync(getRandom(32), 0);
    expect(hex(a)).toBe(hex(b));
    expect(hex(a)).not.toBe(hex(c));
  });

  it("StirRandom changes the stream and refuses more than 128 bytes", () => {
    const a = startedTpm({ seed: "one" });
    const b = startedTpm({ seed: "one" });
    expect(rcOf(b.executeSync(cmd(0x8001, 0x146, t2b([1, 2, 3])), 0))).toBe(0);
    expect(hex(a.executeSync(getRandom(16), 0))).not.toBe(hex(b.executeSync(getRandom(16), 0)));
    expect(rcOf(b.executeSync(cmd(0x8001, 0x146, t2b(zeros(129))), 0))).toBe(0x1d5);
  });

  it("GetRandom(0) returns an empty buffer", () => {
    expect(hex(startedTpm().executeSync(getRandom(0), 0))).toBe("80010000000c000000000000");
  });
});

describe("SoftTpm self test (Part 3 §10)", () => {
  const t = startedTpm();
  it("SelfTest succeeds and rejects fullTest > 1", () => {
    expect(rcOf(t.executeSync(cmd(0x8001, 0x143, [1]), 0))).toBe(0);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x143, [2]), 0))).toBe(0x1c4);
  });
  it("IncrementalSelfTest returns an empty to-do list", () => {
    expect(hex(t.executeSync(cmd(0x8001, 0x142, [...u32(1), ...u16(SHA256)]), 0))).toBe("80010000000e0000000000000000");
  });
  it("GetTestResult returns no data and TPM_RC_SUCCESS", () => {
    expect(hex(t.executeSync(cmd(0x8001, 0x17c), 0))).toBe("80010000001000000000000000000000");
  });
});

describe("SoftTpm PCRs (Part 3 §22)", () => {
  it("known answer: sha256 PCR 0 after extending 31 zero bytes then 0x01 (as swtpm gives)", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(pcrExtend(0, [[SHA256, [...zeros(31), 1]]]), 0))).toBe(0);
    const d = pcrReadDigests(t.executeSync(pcrRead([[SHA256, 1]]), 0));
    expect(hex(d[0]!)).toBe("90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365");
  });

  it("known answer: sha1 PCR 0 after extending 19 zero bytes then 0x01 (measured on swtpm 0.7.1)", () => {
    const t = startedTpm();
    t.executeSync(pcrExtend(0, [[SHA1, [...zeros(19), 1]]]), 0);
    const r = t.executeSync(pcrRead([[SHA1, 1]]), 0);
    expect(hex(r)).toBe("8001000000320000000000000015000000010004030100000000000100141e3fdf7fbec4c6991f3d54e91a0eb8f661acaff0");
  });

  it("starts PCRs 17–22 at all 0xFF and the others at 0, in every bank", () => {
    const t = startedTpm();
    for (const [alg, size] of [[SHA1, 20], [SHA256, 32], [SHA384, 48], [SHA512, 64]] as const) {
      for (let p = 0; p < 24; p += 8) {
        const d = pcrReadDigests(t.executeSync(pcrRead([[alg, 0xff << p]]), 0));
        d.forEach((v, i) => expect(hex(v)).toBe((p + i >= 17 && p + i <= 22 ? "ff" : "00").repeat(size)));
      }
    }
  });

  it("returns at most 8 digests and says in pcrSelectionOut which ones (swtpm bytes)", () => {
    const t = startedTpm();
    const r = t.executeSync(pcrRead([[SHA1, 0x0f], [SHA256, 0xff]]), 0);
    expect(hex(r.subarray(0, 34))).toBe("800100000102000000000000001400000002000403" + "0f0000" + "000b03" + "0f0000" + "00000008");
    expect(pcrReadDigests(r)).toHaveLength(8);
  });

  it("echoes an empty selection and counts one update per extended bank", () => {
    const t = startedTpm();
    expect(hex(t.executeSync(cmd(0x8001, 0x17e, u32(0)), 0))).toBe("80010000001600000000000000140000000000000000");
    t.executeSync(pcrExtend(1, [[SHA256, zeros(32, 7)], [SHA384, zeros(48, 9)]]), 0);
    expect(counterOf(t.executeSync(pcrRead([[SHA256, 1]]), 0))).toBe(22);
    t.executeSync(pcrExtend(16, [[SHA256, zeros(32)]]), 0);
    expect(counterOf(t.executeSync(pcrRead([[SHA256, 1]]), 0))).toBe(22); // 16 is in PCR_NO_INCREMENT
  });

  it("rejects bad selections: unknown hash, sizeofSelect ≠ 3, more than 4 selections", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(pcrRead([[0x27, 1]]), 0))).toBe(0x1c3);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x17e, [...u32(1), ...u16(SHA256), 4, 1, 0, 0, 0]), 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(pcrRead([[SHA256, 1], [SHA256, 1], [SHA256, 1], [SHA256, 1], [SHA256, 1]]), 0))).toBe(0x1d5);
  });

  it("PCR_Extend error paths give swtpm's response codes", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(pcrExtend(24, [[SHA256, zeros(32)]]), 0))).toBe(0x184);
    expect(rcOf(t.executeSync(pcrExtend(OWNER, [[SHA256, zeros(32)]]), 0))).toBe(0x184);
    expect(rcOf(t.executeSync(pcrExtend(RH_NULL, [[SHA256, zeros(32)]]), 0))).toBe(0);
    expect(rcOf(t.executeSync(pcrExtend(0, [[0x27, zeros(32)]]), 0))).toBe(0x1c3);
    expect(rcOf(t.executeSync(pcrExtend(0, [[SHA256, zeros(31)]]), 0))).toBe(0x1da);
    expect(rcOf(t.executeSync(pcrExtend(0, Array.from({ length: 5 }, () => [SHA256, zeros(32)] as [number, number[]])), 0))).toBe(0x1d5);
    expect(rcOf(t.executeSync(pcrExtend(0, [[SHA256, zeros(32)]], [1]), 0))).toBe(0x9a2);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x182, [...u32(0), ...u32(0)]), 0))).toBe(0x125);
  });

  it("PCR_Event hashes the data with every bank, extends them and returns the digests", () => {
    const t = startedTpm();
    const r = t.executeSync(authCmd(0x13c, [2], [[]], t2b([0x61, 0x62, 0x63])), 0);
    expect(rcOf(r)).toBe(0);
    expect(hex(r.subarray(14, 14 + 4 + 2 + 20 + 2 + 32))).toBe("00000004" + "0004" + "a9993e364706816aba3e25717850c26c9cd0d89d" + "000b" + "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const d = pcrReadDigests(t.executeSync(pcrRead([[SHA256, 4]]), 0));
    expect(hex(d[0]!)).not.toBe("00".repeat(32));
  });

  it("PCR_Reset of PCR 20 at locality 2 zeroes it in every bank and counts once", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(pcrReset(20), 2))).toBe(0);
    const r = t.executeSync(pcrRead([[SHA1, 1 << 20], [SHA512, 1 << 20]]), 0);
    expect(counterOf(r)).toBe(21);
    expect(pcrReadDigests(r).map(hex)).toEqual(["00".repeat(20), "00".repeat(64)]);
  });
});

describe("SoftTpm PCR locality table (swtpm 0.7.1 / libtpms 0.9, measured), all 24 PCRs × 5 localities", () => {
  const table: Record<number, [number[], number[]]> = {};
  for (let p = 0; p < 16; p++) table[p] = [[0, 1, 2, 3, 4], []];
  table[16] = [[0, 1, 2, 3, 4], [0, 1, 2, 3]];
  table[17] = [[2, 3, 4], []];
  table[18] = [[2, 3, 4], []];
  table[19] = [[2, 3], []];
  table[20] = [[1, 2, 3], [2]];
  table[21] = [[2], [2]];
  table[22] = [[2], [2]];
  table[23] = [[0, 1, 2, 3, 4], [0, 1, 2, 3]];
  const t = startedTpm();
  for (let p = 0; p < 24; p++) {
    it(`PCR ${p}: extend at ${table[p]![0].join(",")}, reset at ${table[p]![1].join(",") || "none"}`, () => {
      for (let l = 0; l <= 4; l++) {
        expect(rcOf(t.executeSync(pcrExtend(p, [[SHA256, zeros(32, 1)]]), l)), `extend L${l}`).toBe(table[p]![0].includes(l) ? 0 : 0x907);
        expect(rcOf(t.executeSync(pcrReset(p), l)), `reset L${l}`).toBe(table[p]![1].includes(l) ? 0 : 0x907);
      }
    });
  }
});

describe("SoftTpm password sessions (Part 1 §18.6, Part 2 §10.13)", () => {
  const t = startedTpm();
  const ext = (area: number[]) => cmd(0x8002, 0x182, [...u32(0), ...area, ...u32(0)]);
  it("answers with a session area: empty nonce, continueSession, empty hmac", () => {
    expect(hex(t.executeSync(ext(authArea(pwSession([], 0))), 0))).toBe("80020000001300000000000000000000010000");
  });
  it("gives swtpm's codes for bad sessions", () => {
    const s = (h: number, nonce: number[] = [], attrs = 1) => [...u32(h), ...t2b(nonce), attrs, ...u16(0)];
    expect(rcOf(t.executeSync(ext(authArea(s(0x02000000))), 0))).toBe(0x918);
    expect(rcOf(t.executeSync(ext(authArea(s(0x03000000))), 0))).toBe(0x918);
    expect(rcOf(t.executeSync(ext(authArea(s(OWNER))), 0))).toBe(0x984);
    expect(rcOf(t.executeSync(ext(authArea(s(0x40000009, [1]))), 0))).toBe(0x98f);
    expect(rcOf(t.executeSync(ext(authArea(s(0x40000009, [], 0x21))), 0))).toBe(0x982);
    expect(rcOf(t.executeSync(ext(authArea(pwSession(), pwSession())), 0))).toBe(0xa8b);
    expect(rcOf(t.executeSync(ext([...u32(0)]), 0))).toBe(0x095);
    expect(rcOf(t.executeSync(ext([...u32(200), ...pwSession()]), 0))).toBe(0x095);
    expect(rcOf(t.executeSync(cmd(0x8002, 0x17b, [...authArea(pwSession()), ...u16(4)]), 0))).toBe(0x98b);
  });
});

describe("SoftTpm GetCapability (Part 3 §30.2)", () => {
  const t = startedTpm();
  it("lists the implemented commands with their TPMA_CC, pages with moreData", () => {
    const r = t.executeSync(getCap(2, 0, 200), 0);
    expect(r[10]).toBe(0);
    expect(u32At(r, 15)).toBe(COMMAND_ATTRIBUTES.length);
    expect(u32At(r, 19)).toBe(0x0440011f); // NV_UndefineSpaceSpecial: nv, 2 handles, the lowest command code
    expect(COMMAND_ATTRIBUTES).toContain(0x04400120); // EvictControl: nv, 2 handles
    const page = t.executeSync(getCap(2, 0x17b, 2), 0);
    expect(hex(page)).toBe("80010000001b0000000001000000020000000200" + "00017b" + "0000017c");
  });
  it("reports fixed properties: family 2.0, manufacturer TKIT, sizes 4096, 24 PCRs", () => {
    const r = t.executeSync(getCap(6, 0x100, 100), 0);
    expect(r[10]).toBe(0);
    const props = new Map<number, number>();
    const n = u32At(r, 15);
    for (let i = 0; i < n; i++) props.set(u32At(r, 19 + i * 8), u32At(r, 23 + i * 8));
    expect(n).toBe(46);
    expect(props.get(0x100)).toBe(0x322e3000);
    expect(props.get(0x105)).toBe(0x544b4954);
    expect(props.get(0x11e)).toBe(4096);
    expect(props.get(0x11f)).toBe(4096);
    expect(props.get(0x112)).toBe(24);
    expect(props.get(0x113)).toBe(3);
    expect(props.get(0x12c)).toBe(1024);
    expect(props.get(0x129)).toBe(COMMAND_ATTRIBUTES.length);
  });
  it("pages properties as swtpm: moreData set when the group has more, even for count 0", () => {
    expect(hex(t.executeSync(getCap(6, 0x105, 0), 0))).toBe("80010000001300000000010000000600000000");
    expect(t.executeSync(getCap(6, 0x105, 2), 0)[10]).toBe(1);
    const custom = new SoftTpm({ manufacturer: "ACME", vendorString: "abcdefgh" });
    custom.executeSync(STARTUP_CLEAR, 0);
    expect(hex(custom.executeSync(getCap(6, 0x105, 3), 0))).toBe("80010000002b00000000010000000600000003" + "00000105" + "41434d45" + "00000106" + "61626364" + "00000107" + "65666768");
  });
  it("reports PCR banks, PCR properties (swtpm bytes) and handles", () => {
    expect(hex(t.executeSync(getCap(5, 0, 1), 0))).toBe("80010000002b00000000000000000500000004000403ffffff000b03ffffff000c03ffffff000d03ffffff");
    expect(hex(t.executeSync(getCap(7, 0, 100), 0))).toBe(
      "80010000008b0000000000000000070000000f0000000003ffff000000000103ffff8100000002030000810000000303ffff9100000004030000810000000503ffffff00000006030000f10000000703ffff9f00000008030000810000000903ffff870000000a0300007e00000011030000e1000000120300007e00000013030000700000001403000070",
    );
    expect(hex(t.executeSync(getCap(1, 0x40000000, 100), 0))).toBe("80010000002f000000000000000001000000074000000140000007400000094000000a4000000b4000000c4000000d");
    const pcrs = t.executeSync(getCap(1, 0, 100), 0);
    expect(u32At(pcrs, 15)).toBe(24);
  });
  it("lists the implemented algorithms and rejects an unknown capability with TPM_RC_VALUE + P1", () => {
    // TPML_ALG_PROPERTY: every algorithm SoftTpm implements with the TPMA_ALGORITHM swtpm 0.7.1
    // reports for it (measured with tpm2_getcap algorithms), in TPM_ALG_ID order
    const algs = t.executeSync(getCap(0, 0, 100), 0);
    expect(rcOf(algs)).toBe(0);
    expect(algs[10]).toBe(0); // moreData: NO
    const n = u32At(algs, 15);
    const listed = new Map(Array.from({ length: n }, (_, i) => [(algs[19 + 6 * i]! << 8) | algs[20 + 6 * i]!, u32At(algs, 21 + 6 * i)] as const));
    expect(algs.length).toBe(19 + 6 * n);
    expect([...listed.keys()]).toEqual([...listed.keys()].sort((a, b) => a - b));
    for (const [alg, attrs] of [[0x0001, 0x009], [0x0004, 0x004], [0x000b, 0x004], [0x000c, 0x004], [0x000d, 0x004], [0x0006, 0x002], [0x0008, 0x30c], [0x0014, 0x101], [0x0017, 0x201], [0x0018, 0x101], [0x001a, 0x101], [0x0023, 0x009], [0x0043, 0x202]] as const) {
      expect(listed.get(alg), `alg 0x${alg.toString(16)}`).toBe(attrs); // RSA, SHA-1/256/384/512, AES, KEYEDHASH, RSASSA, OAEP, ECDSA, ECDAA, ECC, CFB
    }
    expect(listed.has(0x0003)).toBe(false); // TDES: not implemented, not listed
    expect(hex(t.executeSync(getCap(0, 0x000b, 2), 0))).toBe("80010000001f" + "00000000" + "01" + "00000000" + "00000002" + "000b00000004" + "000c00000004"); // from SHA-256 on, 2 of them, moreData YES
    expect(rcOf(t.executeSync(getCap(0x55, 0, 1), 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(getCap(1, 0x05000000, 1), 0))).toBe(0x2cb);
  });
});

describe("SoftTpm hashing and sequences (Part 3 §15.4, §17)", () => {
  it("Hash gives the digest and a NULL ticket for TPM_RH_NULL (swtpm bytes)", () => {
    const t = startedTpm();
    const r = t.executeSync(cmd(0x8001, 0x17d, [...t2b([0x61, 0x62, 0x63]), ...u16(SHA256), ...u32(RH_NULL)]), 0);
    expect(hex(r)).toBe("800100000034000000000020ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad8024400000070000");
  });
  it("Hash with a hierarchy returns a 64-byte ticket; bad alg or hierarchy are refused", () => {
    const t = startedTpm();
    const r = t.executeSync(cmd(0x8001, 0x17d, [...t2b([0x61, 0x62, 0x63]), ...u16(SHA256), ...u32(OWNER)]), 0);
    expect(r.length).toBe(0x74);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x17d, [...t2b([1]), ...u16(0x10), ...u32(RH_NULL)]), 0))).toBe(0x2c3);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x17d, [...t2b([1]), ...u16(SHA256), ...u32(LOCKOUT)]), 0))).toBe(0x3c4);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x17d, [...t2b(zeros(1025)), ...u16(SHA256), ...u32(RH_NULL)]), 0))).toBe(0x1d5);
  });
  it("a hash sequence gives the same digest as Hash and is flushed after completion", () => {
    const t = startedTpm();
    const start = t.executeSync(cmd(0x8001, 0x186, [...t2b([]), ...u16(SHA256)]), 0);
    expect(hex(start)).toBe("80010000000e0000000080000000");
    expect(rcOf(t.executeSync(authCmd(0x15c, [0x80000000], [[]], t2b([0x61])), 0))).toBe(0);
    const done = t.executeSync(authCmd(0x13e, [0x80000000], [[]], [...t2b([0x62, 0x63]), ...u32(RH_NULL)]), 0);
    expect(hex(done)).toContain("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(rcOf(t.executeSync(authCmd(0x15c, [0x80000000], [[]], t2b([0x61])), 0))).toBe(0x910);
  });
  it("an event sequence checks its auth, refuses SequenceComplete and extends every bank", () => {
    const t = startedTpm();
    t.executeSync(cmd(0x8001, 0x186, [...t2b([5]), ...u16(0x10)]), 0);
    expect(rcOf(t.executeSync(authCmd(0x15c, [0x80000000], [[6]], t2b([0x61])), 0))).toBe(0x9a2);
    expect(rcOf(t.executeSync(authCmd(0x13e, [0x80000000], [[5]], [...t2b([]), ...u32(RH_NULL)]), 0))).toBe(0x189);
    const r = t.executeSync(authCmd(0x185, [3, 0x80000000], [[], [5]], t2b([0x61, 0x62, 0x63])), 0);
    expect(rcOf(r)).toBe(0);
    expect(hex(r)).toContain("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(hex(pcrReadDigests(t.executeSync(pcrRead([[SHA256, 8]]), 0))[0]!)).not.toBe("00".repeat(32));
  });
  it("allows three sequences at once, then TPM_RC_OBJECT_MEMORY", () => {
    const t = startedTpm();
    for (let i = 0; i < 3; i++) expect(rcOf(t.executeSync(cmd(0x8001, 0x186, [...t2b([]), ...u16(SHA1)]), 0))).toBe(0);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x186, [...t2b([]), ...u16(SHA1)]), 0))).toBe(0x902);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x186, [...t2b([]), ...u16(0x27)]), 0))).toBe(0x2c3);
  });
});

describe("SoftTpm clock (Part 3 §29.1)", () => {
  it("ReadClock reports time since power-on and the clock on the injected Clock", async () => {
    const clock = new FakeClock({ start: 1000 });
    const t = startedTpm({ clock });
    await clock.advance(5000);
    const r = t.executeSync(readClock, 0);
    expect(r.length).toBe(0x23);
    expect(u32At(r, 14)).toBe(5000); // time (low word)
    expect(u32At(r, 22)).toBe(5000); // clock (low word)
    expect(r[34]).toBe(1); // safe
  });
});

describe("SoftTpm hierarchy auth and Clear (Part 3 §24)", () => {
  const define = (idx: number, hauth: number[] = [], h = OWNER) =>
    authCmd(0x12a, [h], [hauth], [...t2b([]), ...t2b([...u32(idx), ...u16(SHA256), ...u32(h === PLATFORM ? 0x40010001 | 0x40004 : 0x20002), ...u16(0), ...u16(8)])]);

  it("HierarchyChangeAuth sets owner auth; wrong owner password is TPM_RC_BAD_AUTH (owner is DA-exempt)", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(authCmd(0x129, [OWNER], [[]], t2b([1, 2])), 0))).toBe(0);
    expect(rcOf(t.executeSync(define(0x01500000), 0))).toBe(0x9a2);
    expect(rcOf(t.executeSync(define(0x01500000, [1, 2]), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(0x129, [OWNER], [[1, 2]], t2b(zeros(65, 1))), 0))).toBe(0x1d5);
    expect(rcOf(t.executeSync(authCmd(0x129, [0x40000007], [[]], t2b([1])), 0))).toBe(0x184);
    const perm = t.executeSync(getCap(6, 0x200, 1), 0);
    expect(u32At(perm, 23)).toBe(0x401);
  });

  it("a wrong lockout password locks the lockout hierarchy (TPM_RC_AUTH_FAIL, then TPM_RC_LOCKOUT)", async () => {
    const clock = new FakeClock();
    const t = startedTpm({ clock });
    expect(rcOf(t.executeSync(authCmd(0x129, [LOCKOUT], [[]], t2b([9])), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(0x126, [LOCKOUT], [[]]), 0))).toBe(0x98e);
    expect(rcOf(t.executeSync(authCmd(0x126, [LOCKOUT], [[9]]), 0))).toBe(0x921);
    await clock.advance(1000 * 1000);
    expect(rcOf(t.executeSync(authCmd(0x126, [LOCKOUT], [[9]]), 0))).toBe(0);
  });

  it("Clear empties owner/endorsement/lockout auth and removes owner-created NV, keeps platform NV", () => {
    const t = startedTpm();
    t.executeSync(authCmd(0x129, [OWNER], [[]], t2b([1])), 0);
    t.executeSync(authCmd(0x129, [ENDORSEMENT], [[]], t2b([2])), 0);
    t.executeSync(authCmd(0x129, [LOCKOUT], [[]], t2b([3])), 0);
    expect(rcOf(t.executeSync(define(0x01500000, [1]), 0))).toBe(0);
    expect(rcOf(t.executeSync(define(0x01400000, [], PLATFORM), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(0x126, [OWNER], [[1]]), 0))).toBe(0x184);
    expect(rcOf(t.executeSync(authCmd(0x126, [LOCKOUT], [[3]]), 0))).toBe(0);
    expect(u32At(t.executeSync(getCap(6, 0x200, 1), 0), 23)).toBe(0x400);
    expect(hex(t.executeSync(getCap(1, 0x01000000, 10), 0))).toBe("8001000000170000000000000000010000000101400000");
    expect(rcOf(t.executeSync(define(0x01500000), 0))).toBe(0);
  });

  it("ClearControl disables Clear; only the platform may enable it again", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(authCmd(0x127, [LOCKOUT], [[]], [1]), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(0x126, [LOCKOUT], [[]]), 0))).toBe(0x120);
    expect(rcOf(t.executeSync(authCmd(0x127, [LOCKOUT], [[]], [0]), 0))).toBe(0x08e);
    expect(rcOf(t.executeSync(authCmd(0x127, [LOCKOUT], [[]], [2]), 0))).toBe(0x1c4);
    expect(u32At(t.executeSync(getCap(6, 0x200, 1), 0), 23)).toBe(0x500);
    expect(rcOf(t.executeSync(authCmd(0x127, [PLATFORM], [[]], [0]), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(0x126, [PLATFORM], [[]]), 0))).toBe(0);
  });

  it("platform auth is volatile: a TPM Reset empties it", async () => {
    const t = startedTpm();
    t.executeSync(authCmd(0x129, [PLATFORM], [[]], t2b([7])), 0);
    expect(rcOf(t.executeSync(authCmd(0x127, [PLATFORM], [[]], [0]), 0))).toBe(0x9a2);
    expect(rcOf(t.executeSync(authCmd(0x127, [PLATFORM], [[7]], [0]), 0))).toBe(0);
    await t.powerOff();
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    expect(rcOf(t.executeSync(authCmd(0x127, [PLATFORM], [[]], [0]), 0))).toBe(0);
  });
});

describe("SoftTpm under the Linux kernel's boot sequence (drivers/char/tpm/tpm2-cmd.c, tpm2_auto_startup())", () => {
  it("SelfTest → INITIALIZE, Startup(CLEAR), SelfTest, command table, PCR banks all succeed", () => {
    const t = new SoftTpm({ seed: "kernel" });
    expect(rcOf(t.executeSync(cmd(0x8001, 0x143, [0]), 0))).toBe(0x100);
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x143, [0]), 0))).toBe(0);
    const total = u32At(t.executeSync(getCap(6, 0x129, 1), 0), 23);
    const table = t.executeSync(getCap(2, 0x11f, total), 0);
    expect(u32At(table, 15)).toBe(total);
    expect(table[10]).toBe(0);
    const banks = t.executeSync(getCap(5, 0, 1), 0);
    expect(u32At(banks, 15)).toBe(4);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x17b, u16(128)), 0))).toBe(0); // MAX_RNG_DATA 128 → 64 returned
  });

  it("a refused change after Shutdown(STATE) leaves the saved state usable", async () => {
    const t = startedTpm();
    t.executeSync(SHUTDOWN_STATE, 0);
    expect(rcOf(t.executeSync(pcrExtend(17, [[SHA256, zeros(32)]]), 0))).toBe(0x907);
    await t.powerOff();
    await t.start();
    expect(rcOf(t.executeSync(STARTUP_STATE, 0))).toBe(0);
  });
});

describe("SoftTpm fault hook (onCommand)", () => {
  it("answers with an injected response code or response, else runs the command", () => {
    let n = 0;
    const t = startedTpm({
      onCommand: (c) => {
        if (c[9] !== 0x7b) return undefined;
        n++;
        return n === 1 ? 0x922 : n === 2 ? Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 9, 0x0a) : undefined;
      },
    });
    expect(hex(t.executeSync(getRandom(4), 0))).toBe("80010000000a00000922");
    expect(hex(t.executeSync(getRandom(4), 0))).toBe("80010000000a0000090a");
    expect(rcOf(t.executeSync(getRandom(4), 0))).toBe(0);
    expect(() => new SoftTpm({ onCommand: 5 as unknown as () => undefined })).toThrow(TpmArgumentError);
  });
});

describe("SoftTpm check order matches libtpms (found by a differential fuzz against swtpm 0.7.1)", () => {
  it("validates a handle's type as it reads it, before the next handle is read", () => {
    expect(rcOf(startedTpm().executeSync(unhex("80010000000e0000013500000000"), 0))).toBe(0x184);
  });
  it("checks parameter values during unmarshal, before trailing bytes", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(cmd(0x8001, 0x143, [0x40, 0, 0x80, 0]), 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x17a, [...u32(0x00400000), 0x40]), 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x165, [...u32(0), 0]), 0))).toBe(0x1c4);
  });
  it("answers sessions on Startup and FlushContext with TPM_RC_AUTH_CONTEXT, after the area size check", () => {
    const t = new SoftTpm({ seed: "s" });
    expect(rcOf(t.executeSync(cmd(0x8002, 0x144, [...authArea(pwSession()), ...u16(0)]), 0))).toBe(0x145);
    t.executeSync(STARTUP_CLEAR, 0);
    expect(rcOf(t.executeSync(cmd(0x8002, 0x165, [...authArea(pwSession()), ...u32(0x02000000)]), 0))).toBe(0x145);
    expect(rcOf(t.executeSync(cmd(0x8002, 0x165, [...u32(0), ...u32(0x02000000)]), 0))).toBe(0x095);
  });
});

describe("SoftTpm unmarshal details (differential fuzz against swtpm 0.7.1)", () => {
  const ext = (area: number[]) => cmd(0x8002, 0x182, [...u32(16), ...u32(area.length), ...area, ...u32(0)]);
  const sess = (h: number, nonce: number[] = [], attrs = 1, hmac: number[] = []) => [...u32(h), ...t2b(nonce), attrs, ...t2b(hmac)];
  it("numbers session errors by session and checks each field as it is read", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(ext([...sess(0x40000009), ...sess(0xc0000000)]), 0))).toBe(0xa84);
    expect(rcOf(t.executeSync(ext([...sess(0x40000009), ...u32(0x40000009)]), 0))).toBe(0xa9a);
    expect(rcOf(t.executeSync(ext([...sess(0x40000009), ...sess(0x02000000)]), 0))).toBe(0x919);
    expect(rcOf(t.executeSync(ext([...sess(0x40000009), ...sess(0x40000009, [], 0x08)]), 0))).toBe(0xaa1);
    expect(rcOf(t.executeSync(ext(sess(0x40000009, [], 1, new Array(70).fill(1))), 0))).toBe(0x995);
    expect(rcOf(t.executeSync(ext(sess(0x40000009, new Array(70).fill(1))), 0))).toBe(0x995);
    const pw = sess(0x40000009);
    expect(rcOf(t.executeSync(ext([...pw, ...pw, ...pw, ...pw]), 0))).toBe(0xc95);
    expect(rcOf(t.executeSync(ext(sess(0x02000040)), 0))).toBe(0x984);
  });
  it("NV_Read checks the offset (TPM_RC_VALUE + P2) before the range", () => {
    const t = startedTpm();
    t.executeSync(authCmd(0x12a, [OWNER], [[]], [...t2b([]), ...t2b([...u32(0x01500000), ...u16(SHA256), ...u32(0x20002), ...u16(0), ...u16(8)])]), 0);
    t.executeSync(authCmd(0x137, [OWNER, 0x01500000], [[]], [...t2b([1]), ...u16(0)]), 0);
    expect(rcOf(t.executeSync(authCmd(0x14e, [OWNER, 0x01500000], [[]], [...u16(1), ...u16(9)]), 0))).toBe(0x2c4);
  });
  it("IncrementalSelfTest refuses algorithms it does not implement", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(cmd(0x8001, 0x142, [...u32(1), ...u16(0x4000)]), 0))).toBe(0x1c4);
    expect(rcOf(t.executeSync(cmd(0x8001, 0x142, [...u32(1), ...u16(0x0003)]), 0))).toBe(0x1c4); // TDES: swtpm has it, SoftTpm does not
    expect(rcOf(t.executeSync(cmd(0x8001, 0x142, [...u32(65), ...new Array(130).fill(0)]), 0))).toBe(0x1d5);
    // every algorithm TPM_CAP_ALGS lists is accepted (tpm2_incrementalselftest sends them all)
    const listed = [0x0001, 0x0006, 0x0008, 0x000b, 0x0014, 0x0017, 0x0018, 0x001a, 0x0023, 0x0025, 0x0043];
    expect(rcOf(t.executeSync(cmd(0x8001, 0x142, [...u32(listed.length), ...listed.flatMap(u16)]), 0))).toBe(0);
  });
});
