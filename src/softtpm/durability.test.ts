/**
 * Issue 9, finding 4: SoftTpm answers an NV-changing command only after the state holding the
 * change is saved (group commit); a failed save answers TPM_RC_NV_UNAVAILABLE (0x923) and rolls
 * the change back; commands that change nothing answer at once.
 */
import { describe, expect, it } from "vitest";
import { MemoryStorage, type Storage } from "../core/storage.js";
import { TpmStateFileError } from "../errors/index.js";
import { SoftTpm } from "./softtpm.js";
import { decodeState } from "./state.js";
import { STARTUP_CLEAR, authCmd, cmd, hex, nvPublic, rcOf, t2b, u16 } from "./test-helpers.js";

const OWNER = 0x40000001;
const NVI = 0x01500000;
const define = authCmd(0x12a, [OWNER], [[]], [...t2b([]), ...nvPublic(NVI, 0x20002, 4)]);
const write = (v: number) => authCmd(0x137, [OWNER, NVI], [[]], [...t2b([v, v, v, v]), ...u16(0)]);
const read = authCmd(0x14e, [OWNER, NVI], [[]], [...u16(4), ...u16(0)]);
const getRandom = cmd(0x8001, 0x17b, u16(8));
const NV_UNAVAILABLE = 0x923;

/** A storage whose saves complete only when the test says so. */
class GatedStorage implements Storage {
  data: Uint8Array | undefined;
  pending: { blob: Uint8Array; done: (ok: boolean) => void }[] = [];
  async load() {
    return this.data?.slice();
  }
  save(state: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        blob: state.slice(),
        done: (ok) => {
          if (ok) {
            this.data = state.slice();
            resolve();
          } else reject(new Error("disk full"));
        },
      });
    });
  }
  /** Completes the oldest pending save. */
  async complete(ok = true) {
    for (let i = 0; i < 50 && this.pending.length === 0; i++) await Promise.resolve();
    const p = this.pending.shift();
    if (!p) throw new Error("no save pending");
    p.done(ok);
    for (let i = 0; i < 20; i++) await Promise.resolve();
    return p.blob;
  }
}

/** Settled state of a promise after the microtask queue drains a little. */
async function settled<T>(p: Promise<T>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  for (let i = 0; i < 20; i++) await Promise.resolve();
  return done;
}

/** A SoftTpm over `storage`, started, with the NV index defined (every save completed). */
async function provisioned(storage: GatedStorage): Promise<SoftTpm> {
  const t = new SoftTpm({ storage, seed: "d" });
  await t.start();
  await storage.complete(); // the new TPM's first state
  const s = t.execute(STARTUP_CLEAR, 0);
  await storage.complete();
  expect(rcOf(await s)).toBe(0);
  const d = t.execute(define, 0);
  await storage.complete();
  expect(rcOf(await d)).toBe(0);
  return t;
}

describe("SoftTpm durability (commit before answer)", () => {
  it("an NV_Write response waits for the save that holds it; a read-only command does not", async () => {
    const storage = new GatedStorage();
    const t = new SoftTpm({ storage, seed: "d" });
    await t.start();
    await storage.complete();
    const startup = t.execute(STARTUP_CLEAR, 0);
    expect(await settled(startup)).toBe(false);
    await storage.complete();
    expect(rcOf(await startup)).toBe(0);

    const d = t.execute(define, 0);
    expect(await settled(d)).toBe(false);
    // GetRandom changes nothing: answered while the save is in flight
    expect(rcOf(await t.execute(getRandom, 0))).toBe(0);
    const blob = await storage.complete();
    expect(rcOf(await d)).toBe(0);
    expect(decodeState(blob).nv.map((n) => n.handle)).toEqual([NVI]);

    const w = t.execute(write(7), 0);
    expect(await settled(w)).toBe(false);
    const saved = await storage.complete();
    expect(rcOf(await w)).toBe(0);
    expect(Array.from(decodeState(saved).nv[0]!.data)).toEqual([7, 7, 7, 7]);
    expect(storage.pending).toHaveLength(0);
  });

  it("group commit: writes arriving during a save share the next one, and each is answered only after it", async () => {
    const storage = new GatedStorage();
    const t = await provisioned(storage);
    const w1 = t.execute(write(1), 0);
    expect(await settled(w1)).toBe(false);
    expect(storage.pending).toHaveLength(1);
    const w2 = t.execute(write(2), 0);
    const w3 = t.execute(write(3), 0);
    expect(storage.pending).toHaveLength(1); // one save at a time
    const first = await storage.complete();
    expect(Array.from(decodeState(first).nv[0]!.data)).toEqual([1, 1, 1, 1]);
    expect(rcOf(await w1)).toBe(0);
    expect(await settled(w2)).toBe(false);
    expect(await settled(w3)).toBe(false);
    const second = await storage.complete();
    expect(Array.from(decodeState(second).nv[0]!.data)).toEqual([3, 3, 3, 3]);
    expect(rcOf(await w2)).toBe(0);
    expect(rcOf(await w3)).toBe(0);
    expect(storage.pending).toHaveLength(0);
  });

  it("a failed save answers TPM_RC_NV_UNAVAILABLE (0x923), rolls the change back, and the next write retries", async () => {
    const storage = new GatedStorage();
    const t = await provisioned(storage);
    const w1 = t.execute(write(1), 0);
    await storage.complete();
    expect(rcOf(await w1)).toBe(0);

    const w2 = t.execute(write(2), 0);
    await storage.complete(false);
    expect(hex(await w2)).toBe("80010000000a00000923");
    expect(rcOf(await w2)).toBe(NV_UNAVAILABLE);
    // memory went back to what storage holds: the refused write is not visible
    expect(hex((await t.execute(read, 0)).subarray(-9, -5))).toBe("01010101");
    await expect(t.flush()).rejects.toBeInstanceOf(TpmStateFileError);
    await expect(t.flush()).resolves.toBeUndefined(); // reported once

    const w3 = t.execute(write(3), 0);
    await storage.complete();
    expect(rcOf(await w3)).toBe(0);
    expect(Array.from(decodeState(storage.data!).nv[0]!.data)).toEqual([3, 3, 3, 3]);
  });

  it("a failed save also refuses the writes made on top of it while it ran", async () => {
    const storage = new GatedStorage();
    const t = await provisioned(storage);
    const a = t.execute(write(4), 0);
    expect(await settled(a)).toBe(false);
    const b = t.execute(write(5), 0); // joins the next save: built on a's change
    await storage.complete(false);
    expect(rcOf(await a)).toBe(NV_UNAVAILABLE);
    expect(rcOf(await b)).toBe(NV_UNAVAILABLE);
    expect(storage.pending).toHaveLength(0);
    // the index is back to never written: TPM_RC_NV_UNINITIALIZED (0x14a), Part 3 §31.13
    expect(rcOf(await t.execute(read, 0))).toBe(0x14a);
  });

  it("without storage nothing waits: execute answers as executeSync does", async () => {
    const t = new SoftTpm({ seed: "d" });
    expect(rcOf(await t.execute(STARTUP_CLEAR, 0))).toBe(0);
    const d = t.execute(define, 0);
    expect(await settled(d)).toBe(true);
    expect(rcOf(await d)).toBe(0);
    expect(rcOf(await t.execute(write(9), 0))).toBe(0);
  });

  it("MemoryStorage: every acknowledged write is in the stored blob when its response arrives", async () => {
    const storage = new MemoryStorage();
    const t = new SoftTpm({ storage, seed: "m" });
    await t.start();
    expect(rcOf(await t.execute(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(await t.execute(define, 0))).toBe(0);
    for (let v = 1; v <= 50; v++) {
      expect(rcOf(await t.execute(write(v), 0))).toBe(0);
      expect(decodeState(storage.data!).nv[0]!.data[0]).toBe(v);
    }
  });

  it("while NV cannot be written, a DA-protected authorization is refused before its value is checked (right and wrong look alike)", async () => {
    const storage = new GatedStorage();
    const t = await provisioned(storage);
    // an index with its own password [7, 7] (AUTHWRITE 0x4 | AUTHREAD 0x40000, DA-protected: no NO_DA)
    const DAI = 0x01500001;
    const d = t.execute(authCmd(0x12a, [OWNER], [[]], [...t2b([7, 7]), ...nvPublic(DAI, 0x40004, 4)]), 0);
    await storage.complete();
    expect(rcOf(await d)).toBe(0);
    const w = t.execute(authCmd(0x137, [DAI, DAI], [[7, 7]], [...t2b([1, 2, 3, 4]), ...u16(0)]), 0);
    await storage.complete();
    expect(rcOf(await w)).toBe(0);
    const readWith = (pw: number[]) => authCmd(0x14e, [DAI, DAI], [pw], [...u16(4), ...u16(0)]);
    expect(rcOf(await t.execute(readWith([7, 7]), 0))).toBe(0);

    const failing = t.execute(write(8), 0); // a save that fails: NV is now unavailable
    await storage.complete(false);
    expect(rcOf(await failing)).toBe(NV_UNAVAILABLE);
    expect(rcOf(await t.execute(readWith([9, 9]), 0))).toBe(NV_UNAVAILABLE);
    expect(rcOf(await t.execute(readWith([7, 7]), 0))).toBe(NV_UNAVAILABLE);
    // not DA-protected (owner authorization): served as before
    expect(rcOf(await t.execute(read, 0))).toBe(0x14a);

    const ok = t.execute(write(9), 0); // NV writable again
    await storage.complete();
    expect(rcOf(await ok)).toBe(0);
    expect(rcOf(await t.execute(readWith([7, 7]), 0))).toBe(0);
    const wrong = t.execute(readWith([9, 9]), 0); // counted: the failure is saved before the answer
    await storage.complete();
    expect(rcOf(await wrong) & 0xfbf).toBe(0x98e); // TPM_RC_AUTH_FAIL for session 1
  });
});
