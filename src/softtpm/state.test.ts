import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { mkdtemp, readFile, rm, writeFile, symlink, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmStateFileError } from "../errors/index.js";
import { FileStorage } from "../node/file-storage.js";
import { SoftTpm } from "./softtpm.js";
import { type NvIndexState, type PersistentState, STATE_VERSION, decodeState, encodeState } from "./state.js";
import { MemoryStorage, type Storage } from "../core/storage.js";
import { SHUTDOWN_CLEAR, SHUTDOWN_STATE, STARTUP_CLEAR, STARTUP_STATE, authCmd, cmd, hex, nvPublic, pcrExtend, pcrRead, pcrReadDigests, rcOf, t2b, u16, u32, unhex } from "./test-helpers.js";

const bytes = (max: number) => fc.uint8Array({ maxLength: max });
const nvArb: fc.Arbitrary<NvIndexState> = fc
  .record({
    low: fc.integer({ min: 0, max: 0xffffff }),
    kind: fc.constantFrom(0, 1, 2, 4),
    alg: fc.constantFrom([0x0004, 20], [0x000b, 32], [0x000c, 48], [0x000d, 64]),
    attrs: fc.integer({ min: 0, max: 0xffffffff }),
    size: fc.integer({ min: 0, max: 64 }),
    auth: bytes(20),
    policy: fc.boolean(),
    fill: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ low, kind, alg, attrs, size, auth, policy, fill }) => {
    const dataSize = kind === 1 || kind === 2 ? 8 : kind === 4 ? alg[1] : size;
    return {
      handle: 0x01000000 + low,
      nameAlg: alg[0],
      attributes: ((attrs & ~0xf0) | (kind << 4)) >>> 0,
      authValue: auth,
      authPolicy: policy ? new Uint8Array(alg[1]).fill(7) : new Uint8Array(0),
      dataSize,
      data: new Uint8Array(dataSize).fill(fill),
    };
  });
const stateArb: fc.Arbitrary<PersistentState> = fc
  .record({
    disableClear: fc.boolean(),
    clockSafe: fc.boolean(),
    orderly: fc.constantFrom("none", "clear", "state" as const),
    clock: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    resetCount: fc.integer({ min: 0, max: 0xffffffff }),
    restartCount: fc.integer({ min: 0, max: 0xffffffff }),
    maxCounter: fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
    failedTries: fc.integer({ min: 0, max: 100 }),
    proofSeed: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    ownerAuth: bytes(64),
    endorsementAuth: bytes(64),
    lockoutAuth: bytes(64),
    nv: fc.uniqueArray(nvArb, { maxLength: 5, selector: (n) => n.handle }),
    counter: fc.integer({ min: 0, max: 0xffffffff }),
    platformAuth: bytes(64),
    pcrFill: fc.integer({ min: 0, max: 255 }),
    persistent: fc.boolean(),
  })
  .map((r) => ({
    disableClear: r.disableClear,
    clockSafe: r.clockSafe,
    orderly: r.orderly as PersistentState["orderly"],
    clock: r.clock,
    resetCount: r.resetCount,
    restartCount: r.restartCount,
    maxCounter: r.maxCounter,
    failedTries: r.failedTries,
    proofSeed: r.proofSeed,
    ownerAuth: r.ownerAuth,
    endorsementAuth: r.endorsementAuth,
    lockoutAuth: r.lockoutAuth,
    nv: r.nv,
    saved:
      r.orderly === "state"
        ? { pcrUpdateCounter: r.counter, platformAuth: r.platformAuth, pcrs: [20, 32, 48, 64].map((s) => new Uint8Array(s * 24).fill(r.pcrFill)) }
        : undefined,
    storageSeed: new Uint8Array(64).fill(1),
    endorsementSeed: new Uint8Array(64).fill(2),
    platformSeed: new Uint8Array(64).fill(3),
    persistent: r.persistent ? [{ handle: 0x81000001, hierarchy: 0x40000001, publicArea: Uint8Array.of(0, 8, 0, 11), sensitiveArea: Uint8Array.of(0, 8, 0, 0) }] : [],
  }));

/** Recomputes the SHA-256 trailer so a test can make a blob whose inner fields lie. */
function reseal(blob: Uint8Array): Uint8Array {
  const out = blob.slice();
  out.set(sha256(out.subarray(0, out.length - 32)), out.length - 32);
  return out;
}

function sampleState(): PersistentState {
  return fc.sample(stateArb.filter((s) => s.nv.length >= 2 && s.saved !== undefined), { numRuns: 1, seed: 42 })[0]!;
}

describe("state codec", () => {
  it("round-trips any valid state", () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const blob = encodeState(s);
        const back = decodeState(blob);
        expect(back).toEqual(s);
        expect(hex(encodeState(back))).toBe(hex(blob));
      }),
      { numRuns: 60 },
    );
  });

  it("refuses the blob truncated at every offset", () => {
    const blob = encodeState(sampleState());
    for (let n = 0; n < blob.length; n++) expect(() => decodeState(blob.subarray(0, n)), `length ${n}`).toThrow(TpmStateFileError);
  });

  it("refuses the blob with any single byte flipped", () => {
    const blob = encodeState(sampleState());
    for (let i = 0; i < blob.length; i++) {
      const bad = blob.slice();
      bad[i]! ^= 0x01 << (i % 8);
      expect(() => decodeState(bad), `byte ${i}`).toThrow(TpmStateFileError);
    }
  });

  it("refuses appended bytes, another version, another magic", () => {
    const blob = encodeState(sampleState());
    expect(() => decodeState(Uint8Array.from([...blob, 0]))).toThrow(/length mismatch/);
    const v2 = blob.slice();
    v2[5] = STATE_VERSION + 1;
    expect(() => decodeState(reseal(v2))).toThrow(new RegExp(`version ${STATE_VERSION + 1} is not supported`));
    const magic = blob.slice();
    magic[0] = 0x58;
    expect(() => decodeState(reseal(magic))).toThrow(/not a SoftTpm state blob/);
  });

  it("refuses correctly checksummed blobs whose inner lengths or values lie", () => {
    const s = sampleState();
    const blob = encodeState({ ...s, ownerAuth: new Uint8Array(0), endorsementAuth: new Uint8Array(0), lockoutAuth: new Uint8Array(0) });
    // body: flags(1) orderly(1) clock(8) reset(4) restart(4) maxCounter(8) failedTries(4) proofSeed(32) 3×u16 auth(0) nvCount(2)
    const nvCountAt = 12 + 1 + 1 + 8 + 4 + 4 + 8 + 4 + 32 + 6;
    const liar = blob.slice();
    liar[nvCountAt + 1] = 200; // more indices than stored
    expect(() => decodeState(reseal(liar))).toThrow(TpmStateFileError);
    const huge = blob.slice();
    huge[12 + 1 + 1 + 8 + 4 + 4 + 8 + 4 + 32] = 0xff; // ownerAuth size 0xff00
    expect(() => decodeState(reseal(huge))).toThrow(/exceeds the maximum 64/);
    const firstNv = nvCountAt + 2;
    const badHandle = blob.slice();
    badHandle[firstNv] = 0x81;
    expect(() => decodeState(reseal(badHandle))).toThrow(/not an NV index handle/);
    const orderly = blob.slice();
    orderly[13] = 7;
    expect(() => decodeState(reseal(orderly))).toThrow(/orderly state 7 out of range/);
    const bodyLen = blob.slice();
    bodyLen[11]! += 1;
    expect(() => decodeState(bodyLen)).toThrow(/length mismatch/);
  });

  it("never throws anything but TpmStateFileError on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          decodeState(b);
        } catch (e) {
          expect(e).toBeInstanceOf(TpmStateFileError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * A version-2 blob written by the version-2 encoder (git HEAD before format 3): NV index
 * 0x01500000 "deadbeef", owner auth 010203, lockout auth 09, failedTries 2, a persistent object.
 */
const V2_BLOB = unhex(
    "544b535300020000000001390701000000000001e24000000007000000020000000000000005000000025a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" +
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a00030102030000000109000101500000000b0002000200016100000004deadbeef00010101010101010101010101" +
    "010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010202020202020202" +
    "020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020203030303" +
    "030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303" +
    "01810000014000000100040008000b0004000800000000000093eec42ffeb0dca816ba3ddad85ec76e6e63addb97092852f5e9dd6ef7c45312",
);

describe("state format 3: hierarchy policies, DA parameters, PCR allocation", () => {
  const v3 = (s: PersistentState): PersistentState => ({
    ...s,
    ownerPolicy: { alg: 0x000b, policy: new Uint8Array(32).fill(0x11) },
    endorsementPolicy: { alg: 0x0004, policy: new Uint8Array(20).fill(0x22) },
    lockoutPolicy: { alg: 0x000d, policy: new Uint8Array(64).fill(0x33) },
    pcrPolicy: { alg: 0x000c, policy: new Uint8Array(48).fill(0x44) },
    daParameters: { maxTries: 5, recoveryTime: 0, lockoutRecovery: 0xffffffff },
    pcrAllocation: [0xffffff, 0x00ffff, 0, 0xffffff],
    pcrAllocationPending: { resetCount: 9, banks: [0, 0xffffff, 0xffffff, 1] },
  });

  it("round-trips the version-3 fields; defaults are left out when decoded", () => {
    const s = v3(sampleState());
    const blob = encodeState(s);
    expect(blob[5]).toBe(3);
    expect(decodeState(blob)).toEqual(s);
    const plain = sampleState();
    const d = decodeState(encodeState({ ...plain, daParameters: { maxTries: 3, recoveryTime: 1000, lockoutRecovery: 1000 }, pcrAllocation: [0xffffff, 0xffffff, 0xffffff, 0xffffff] }));
    expect(d).toEqual(plain);
    expect("daParameters" in d || "pcrAllocation" in d || "ownerPolicy" in d).toBe(false);
  });

  it("migrates a version-2 blob: every field kept, the new ones at their defaults, written back as version 3", () => {
    const s = decodeState(V2_BLOB);
    expect(V2_BLOB[5]).toBe(2);
    expect(s).toMatchObject({ disableClear: true, lockoutAuthDisabled: true, orderly: "clear", clock: 123456, resetCount: 7, restartCount: 2, maxCounter: 5n, failedTries: 2 });
    expect(hex(s.ownerAuth)).toBe("010203");
    expect(hex(s.lockoutAuth)).toBe("09");
    expect(s.nv.map((n) => [n.handle, hex(n.data)])).toEqual([[0x01500000, "deadbeef"]]);
    expect(s.persistent.map((o) => o.handle)).toEqual([0x81000001]);
    expect(hex(s.platformSeed)).toBe("03".repeat(64));
    for (const k of ["ownerPolicy", "endorsementPolicy", "lockoutPolicy", "pcrPolicy", "daParameters", "pcrAllocation", "pcrAllocationPending"]) expect(k in s, k).toBe(false);
    const again = encodeState(s);
    expect(again[5]).toBe(STATE_VERSION);
    expect(decodeState(again)).toEqual(s);
    // the version-2 body is the version-3 body without the fields format 3 appends
    expect(hex(again.subarray(12, V2_BLOB.length - 32))).toBe(hex(V2_BLOB.subarray(12, V2_BLOB.length - 32)));
  });

  it("a SoftTpm starts from the version-2 blob with swtpm's DA parameters and every PCR allocated", async () => {
    const t = new SoftTpm({ storage: new MemoryStorage(V2_BLOB.slice()) });
    await t.start();
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    const r = t.executeSync(cmd(0x8001, 0x17a, [...u32(6), ...u32(0x20f), ...u32(3)]), 0);
    // moreData YES, TPM_CAP_TPM_PROPERTIES, MAX_AUTH_FAIL 3, LOCKOUT_INTERVAL 1000, LOCKOUT_RECOVERY 1000
    expect(hex(r.subarray(10))).toBe("010000000600000003" + "0000020f00000003" + "00000210000003e8" + "00000211000003e8");
    const pcrs = t.executeSync(cmd(0x8001, 0x17a, [...u32(5), ...u32(0), ...u32(8)]), 0);
    expect(hex(pcrs.subarray(10))).toBe("000000000500000004" + "000403ffffff000b03ffffff000c03ffffff000d03ffffff");
    // the NV index is there (TPM2_NV_ReadPublic: handle, SHA-256, attributes 0x00020002)
    const r2 = t.executeSync(cmd(0x8001, 0x169, u32(NVI)), 0);
    expect(rcOf(r2)).toBe(0);
    expect(hex(r2.subarray(12, 22))).toBe("01500000000b00020002");
  });

  it("refuses version-3 fields that lie: a policy of the wrong size or hash, an allocation without PCRs, a bad pending flag", () => {
    const base = sampleState();
    const tail = (s: PersistentState): Uint8Array => encodeState(s);
    expect(() => encodeState({ ...base, ownerPolicy: { alg: 0x000b, policy: new Uint8Array(20) } })).toThrow(TpmStateFileError);
    expect(() => encodeState({ ...base, pcrAllocation: [0, 0, 0, 0] })).toThrow(TpmStateFileError);
    const blob = tail(base);
    const end = blob.length - 32;
    // layout of the tail: 4 × (u16 alg, u16 size), 3 × u32 DA, 4 × u32 allocation, u8 hasPending
    const policyAlgAt = end - (4 * 4 + 12 + 16 + 1);
    const badAlg = blob.slice();
    badAlg[policyAlgAt + 1] = 0x0b; // TPM_ALG_SHA256 with an empty digest
    expect(() => decodeState(reseal(badAlg))).toThrow(/ownerPolicy: policy digest is 0 bytes/);
    const noPcr = blob.slice();
    noPcr.fill(0, end - 17, end - 1);
    expect(() => decodeState(reseal(noPcr))).toThrow(/PCR allocation has no PCR/);
    const pending = blob.slice();
    pending[end - 1] = 2;
    expect(() => decodeState(reseal(pending))).toThrow(/hasPendingAllocation is 2/);
    const bigMask = blob.slice();
    bigMask[end - 17] = 0x01; // bit 24 of the first mask
    expect(() => decodeState(reseal(bigMask))).toThrow(/mask out of range/);
  });
});

const OWNER = 0x40000001;
const NVI = 0x01500000;
function provision(t: SoftTpm): void {
  t.executeSync(STARTUP_CLEAR, 0);
  expect(rcOf(t.executeSync(authCmd(0x12a, [OWNER], [[]], [...t2b([]), ...nvPublic(NVI, 0x20002, 4)]), 0))).toBe(0);
  expect(rcOf(t.executeSync(authCmd(0x137, [OWNER, NVI], [[]], [...t2b([1, 2, 3, 4]), ...u16(0)]), 0))).toBe(0);
  expect(rcOf(t.executeSync(authCmd(0x129, [OWNER], [[]], t2b([9])), 0))).toBe(0);
}
const readNv = authCmd(0x14e, [OWNER, NVI], [[9]], [...u16(4), ...u16(0)]);

async function restartKeepsNv(storage: Storage) {
  const a = new SoftTpm({ storage, seed: "a" });
  expect(a.powerState).toBe("off");
  await a.start();
  provision(a);
  a.executeSync(pcrExtend(0, [[0x000b, new Array(32).fill(1)]]), 0);
  a.executeSync(SHUTDOWN_STATE, 0);
  await a.powerOff();
  const b = new SoftTpm({ storage, seed: "b" });
  await b.start();
  expect(rcOf(b.executeSync(STARTUP_STATE, 0))).toBe(0);
  expect(hex(b.executeSync(readNv, 0))).toBe("80020000001900000000000000060004010203040000010000");
  expect(hex(pcrReadDigests(b.executeSync(pcrRead([[0x000b, 1]]), 0))[0]!)).not.toBe("00".repeat(32));
  await b.flush();
}

describe("restart through storage", () => {
  it("MemoryStorage: NV, owner auth and the Shutdown(STATE) PCRs survive a new SoftTpm", async () => {
    const storage = new MemoryStorage();
    await restartKeepsNv(storage);
    expect(storage.saves).toBeGreaterThan(0);
  });

  it("coalesces saves (write-behind) and flush() waits for them", async () => {
    const storage = new MemoryStorage();
    const t = new SoftTpm({ storage, seed: "c" });
    await t.start();
    await t.flush();
    const before = storage.saves;
    provision(t);
    for (let i = 0; i < 20; i++) t.executeSync(authCmd(0x137, [OWNER, NVI], [[9]], [...t2b([i]), ...u16(0)]), 0);
    expect(storage.saves).toBe(before); // nothing written synchronously
    await t.flush();
    expect(storage.saves).toBe(before + 1);
    expect(decodeState(storage.data!).nv[0]!.data[0]).toBe(19);
  });

  it("reports a failing storage from flush() with TpmStateFileError", async () => {
    const failing: Storage = { load: async () => undefined, save: async () => Promise.reject(new Error("disk full")) };
    const t = new SoftTpm({ storage: failing });
    await t.start();
    await expect(t.flush()).rejects.toBeInstanceOf(TpmStateFileError);
  });

  it("refuses to start from a corrupt state and stays off, never replacing it with a fresh TPM", async () => {
    const storage = new MemoryStorage();
    const a = new SoftTpm({ storage });
    await a.start();
    provision(a);
    await a.powerOff();
    const good = storage.data!.slice();
    storage.data![40]! ^= 0xff;
    const corrupt = storage.data!.slice();
    const b = new SoftTpm({ storage });
    await expect(b.start()).rejects.toBeInstanceOf(TpmStateFileError);
    expect(b.powerState).toBe("off");
    expect(hex(storage.data!)).toBe(hex(corrupt));
    storage.data = good;
    await b.start();
    expect(b.powerState).toBe("needs-startup");
  });

  it("FileStorage: restart keeps NV; the write is atomic (no temp files left); symlinks are refused", async () => {
    const dir = await mkdtemp(join(tmpdir(), "softtpm-"));
    try {
      const path = join(dir, "tpm.state");
      const storage = new FileStorage(path);
      expect(await storage.load()).toBeUndefined();
      await restartKeepsNv(storage);
      const names = await readdir(dir);
      expect(names).toEqual(["tpm.state"]);
      const blob = new Uint8Array(await readFile(path));
      expect(() => decodeState(blob)).not.toThrow();
      await writeFile(path, blob.subarray(0, blob.length - 1));
      await expect(new SoftTpm({ storage }).start()).rejects.toBeInstanceOf(TpmStateFileError);
      const link = join(dir, "link.state");
      await symlink(path, link);
      await expect(new FileStorage(link).load()).rejects.toBeInstanceOf(TpmStateFileError);
      await expect(new FileStorage(join(dir, "missing-dir", "x")).save(blob)).rejects.toBeInstanceOf(TpmStateFileError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a TPM without storage keeps its NV across powerOff/start in memory", async () => {
    const t = new SoftTpm({ seed: "m" });
    provision(t);
    t.executeSync(SHUTDOWN_CLEAR, 0);
    await t.powerOff();
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    expect(rcOf(t.executeSync(readNv, 0))).toBe(0);
  });
});
