/**
 * The TEE scenarios end to end: `Tpm` → `ftpmTee` → `OpTee` → the fTPM TA (a SoftTpm) → secure
 * storage (REE FS through `Supplicant`, or RPMB FS over `RpmbDevice`). Each scenario pins the code
 * and origin a client sees, as Linux tpm_ftpm_tee would log them.
 *
 * Sources for the expected codes: optee_os core/kernel/tee_ta_manager.c (TA lookup, panics as
 * TARGET_DEAD), core/tee/tee_rpmb_fs.c (key check, write retries, rpmb_dead), optee_ftpm
 * fTPM.c and the NV glue (a storage error other than "missing" in create panics the TA with
 * TEE_ERROR_BAD_STATE), GlobalPlatform TEE Internal Core API §5.7 (which storage results a TA
 * survives), Linux drivers/tee/optee/supp.c (kernel clients never wait for tee-supplicant).
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { afterEach, describe, expect, it } from "vitest";
import {
  FakeClock,
  MemoryFileStore,
  OpTee,
  RpmbDevice,
  Supplicant,
  TEE_ORIGIN,
  TEE_RESULT,
  TaPanicError,
  TeeError,
  Tpm,
  TpmAbortError,
  TpmTimeoutError,
  TpmUnavailableError,
  deriveRpmbKey,
  ftpmTa,
  ftpmTee,
  type OpTeeTraceEvent,
  type RpmbTarget,
} from "../src/index.js";

const HUK = Uint8Array.from({ length: 16 }, (_, i) => 0x11 * (i + 1));
const CID = Uint8Array.from({ length: 16 }, (_, i) => 0xc0 + i);
const NV = 0x01500020;
const bytes = (...b: number[]) => Uint8Array.from(b);

/** The TeeError a promise rejects with (fails the test for anything else). */
async function teeRejection(p: Promise<unknown>): Promise<TeeError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(TeeError);
  return e as TeeError;
}

function expectCode(e: TeeError, code: number, origin: number): void {
  expect({ code: e.teeCode.toString(16), origin: e.origin }).toEqual({ code: code.toString(16), origin });
}

/** An RPMB device behind a switch, so a test can put an older copy of the partition under a running TEE. */
class SwitchedRpmb implements RpmbTarget {
  constructor(public device: RpmbDevice) {}
  get cid(): Uint8Array {
    return this.device.cid;
  }
  transfer(frames: Uint8Array, responseFrames: number): Uint8Array {
    return this.device.transfer(frames, responseFrames);
  }
}

interface RigOptions {
  early?: boolean;
  storage?: "ree" | "rpmb";
  store?: MemoryFileStore;
  rpmb?: RpmbTarget;
  rpmbWriteKey?: boolean;
  supplicantAbsentLoadResult?: "out-of-memory" | "item-not-found";
  clock?: FakeClock;
}

/** What the TEE logged and which panics it saw, per rig (its own diagnostics channel). */
const subscriptions: (() => void)[] = [];
afterEach(() => {
  for (const u of subscriptions.splice(0)) u();
});
let rigs = 0;

function rig(o: RigOptions = {}) {
  const channel = `tpmkit:test:tee-seeds:${rigs++}`;
  const events: OpTeeTraceEvent[] = [];
  const onEvent = (m: unknown) => events.push(m as OpTeeTraceEvent);
  subscribe(channel, onEvent);
  subscriptions.push(() => unsubscribe(channel, onEvent));
  /** The TA's log lines (its storage errors, with the TEE code name), joined. */
  const logs = () => events.flatMap((e) => (e.type === "log" ? [e.message] : [])).join("\n");
  /** The TEE_Panic codes of the TA's panics, in order (hex). */
  const panics = () => events.flatMap((e) => (e.type === "panic" ? [e.cause instanceof TaPanicError ? e.cause.panicCode.toString(16) : `not a TEE_Panic: ${String(e.cause)}`] : []));
  const store = o.store ?? new MemoryFileStore();
  const supplicant = new Supplicant({ storage: store, ...(o.clock ? { clock: o.clock } : {}) });
  const storage = o.storage ?? "ree";
  const tee = new OpTee({
    tas: [ftpmTa({ early: o.early ?? true, storage, seed: "tee-seeds" })],
    supplicant,
    huk: HUK,
    channel,
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.supplicantAbsentLoadResult ? { supplicantAbsentLoadResult: o.supplicantAbsentLoadResult } : {}),
    ...(storage === "rpmb" ? { rpmb: o.rpmb!, rpmbFs: true, reeFs: false, rpmbWriteKey: o.rpmbWriteKey ?? false } : {}),
  });
  return { store, supplicant, tee, logs, panics };
}

async function defineAndWrite(tpm: Tpm, data: Uint8Array): Promise<void> {
  await tpm.nvDefineSpace({ index: NV, size: data.length });
  await tpm.nvWrite(NV, data);
}

describe("seed 000: fTPM built in (kernel client at boot, no supplicant) vs loaded as a module after it", () => {
  it("REE-loaded TA, no supplicant: OUT_OF_MEMORY 0xffff000c, origin TEE (the failed APPL shm allocation); works once the supplicant runs", async () => {
    const r = rig({ early: false });
    const { tee, supplicant } = r;
    const t = ftpmTee({ tee });
    const e = await teeRejection(Tpm.open(t));
    expect(r.panics()).toEqual([]); // the TA was never loaded
    expectCode(e, 0xffff000c, TEE_ORIGIN.TEE);
    expect(e.message).toContain("tee_client_open_session failed, err=ffff000c");
    expect(t.state().open).toBe(false);
    await supplicant.start();
    const tpm = await Tpm.open(ftpmTee({ tee }));
    expect(await tpm.getRandom(8)).toHaveLength(8);
    await tpm.close();
  });

  it("REE-loaded TA, no supplicant, the 2019 OP-TEE option: ITEM_NOT_FOUND 0xffff0008, origin TEE", async () => {
    const r = rig({ early: false, supplicantAbsentLoadResult: "item-not-found" });
    const { tee } = r;
    expectCode(await teeRejection(Tpm.open(ftpmTee({ tee }))), 0xffff0008, TEE_ORIGIN.TEE);
  });

  it("early TA with REE FS, no supplicant: its create needs storage, the TA panics → TARGET_DEAD 0xffff3024, origin TEE; respawned once the supplicant runs", async () => {
    const r = rig({ early: true });
    const { tee, supplicant } = r;
    const e = await teeRejection(Tpm.open(ftpmTee({ tee })));
    expect(r.logs()).toContain("OUT_OF_MEMORY"); // the REE FS read's first RPC, the shm allocation, fails
    expect(r.panics()).toEqual(["ffff0007"]); // TEE_Panic(TEE_ERROR_BAD_STATE) in create
    expectCode(e, TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    expect(e.teeCode).toBe(0xffff3024);
    await supplicant.start();
    const tpm = await Tpm.open(ftpmTee({ tee }));
    await defineAndWrite(tpm, bytes(1, 2, 3, 4));
    expect([...(await tpm.nvRead(NV))]).toEqual([1, 2, 3, 4]);
    await tpm.close();
  });

  it("a user client waits for the supplicant (bounded by the open's signal) and works once it starts", async () => {
    const r = rig({ early: false });
    const { tee, supplicant } = r;
    const clock = new FakeClock();
    // bounded: the open's signal ends the wait with an AbortError, nothing left queued
    const ac = new AbortController();
    const first = Tpm.open(ftpmTee({ tee, client: "user", clock }), { signal: ac.signal }).catch((x: unknown) => x);
    await new Promise((r) => setImmediate(r));
    ac.abort();
    expect(await first).toBeInstanceOf(TpmAbortError);
    // bounded by openTimeoutMs on the injected clock too
    const timed = Tpm.open(ftpmTee({ tee, client: "user", clock, openTimeoutMs: 5000 })).catch((x: unknown) => x);
    await new Promise((r) => setImmediate(r));
    await clock.advance(5000);
    expect(await timed).toBeInstanceOf(TpmTimeoutError);
    // waits, then works when the supplicant starts
    let settled = false;
    const waiting = Tpm.open(ftpmTee({ tee, client: "user", clock })).finally(() => (settled = true));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    await supplicant.start();
    const tpm = await waiting;
    expect(await tpm.getRandom(8)).toHaveLength(8);
    await tpm.close();
  });
});

describe("RPMB secure storage (early fTPM TA, RPMB FS, legacy routing through the supplicant)", () => {
  it("unprogrammed key: STORAGE_NOT_AVAILABLE inside the TEE, the fTPM panics → TARGET_DEAD at open; the key stays unprogrammed", async () => {
    const rpmb = new RpmbDevice({ cid: CID });
    const r = rig({ storage: "rpmb", rpmb });
    const { tee, supplicant } = r;
    await supplicant.start();
    expectCode(await teeRejection(Tpm.open(ftpmTee({ tee }))), TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    expect(r.logs()).toContain("STORAGE_NOT_AVAILABLE");
    expect(r.panics()).toEqual(["ffff0007"]);
    expect(rpmb.state.keyProgrammed).toBe(false);
  });

  it("unprogrammed key with CFG_RPMB_WRITE_KEY: the TEE programs the HUK-derived key and the fTPM works", async () => {
    const rpmb = new RpmbDevice({ cid: CID });
    const r = rig({ storage: "rpmb", rpmb, rpmbWriteKey: true });
    const { tee, supplicant } = r;
    await supplicant.start();
    const tpm = await Tpm.open(ftpmTee({ tee }));
    expect(rpmb.state.keyProgrammed).toBe(true);
    // the programmed key is the derived one: a device programmed with it by hand refuses a second program
    expect(rpmb.programKey(deriveRpmbKey(HUK, CID))).not.toBe(0);
    await defineAndWrite(tpm, bytes(9, 8, 7));
    expect(rpmb.state.writeCounter).toBeGreaterThan(0);
    await tpm.close();
  });

  it("wrong key (the device programmed with another key): SECURITY in the key check, the fTPM panics → TARGET_DEAD", async () => {
    const rpmb = new RpmbDevice({ cid: CID });
    rpmb.programKey(deriveRpmbKey(new Uint8Array(16).fill(0xee), CID));
    const r = rig({ storage: "rpmb", rpmb, rpmbWriteKey: true });
    const { tee, supplicant } = r;
    await supplicant.start();
    expectCode(await teeRejection(Tpm.open(ftpmTee({ tee }))), TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    expect(r.panics()).toEqual(["ffff000f"]); // the read failed with SECURITY, outside what GP lets a TA survive
    expect(rpmb.state.writeCounter).toBe(0);
  });

  it("counter replay (an older copy of the partition put back): the next NV write fails inside the TEE, the TA panics → TARGET_DEAD; the old data is never overwritten", async () => {
    const device = new RpmbDevice({ cid: CID });
    device.programKey(deriveRpmbKey(HUK, CID));
    const rpmb = new SwitchedRpmb(device);
    const r = rig({ storage: "rpmb", rpmb });
    const { tee, supplicant } = r;
    await supplicant.start();
    const t = ftpmTee({ tee });
    const tpm = await Tpm.open(t);
    await defineAndWrite(tpm, bytes(1, 1, 1, 1));
    const old = device.snapshot();
    await tpm.nvWrite(NV, bytes(2, 2, 2, 2));
    expect(device.state.writeCounter).toBeGreaterThan(old.writeCounter);
    rpmb.device = new RpmbDevice({ cid: CID, state: old }); // the replay
    const e = await teeRejection(tpm.nvWrite(NV, bytes(3, 3, 3, 3)));
    // the device answers COUNTER_FAILURE (GENERIC in the TEE), 10 attempts, RPMB dead: COMMUNICATION, a panic
    expect(r.panics()).toEqual(["ffff000e"]);
    expectCode(e, TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    expect(rpmb.device.state.writeCounter).toBe(old.writeCounter);
    expect(t.state().sessionDead).toBe(true);
    expect(tpm.chip.readiness).toBe("unusable");
    await tpm.close();
  });

  it("10 failed writes: RPMB dead until reboot, the next NV-changing command kills the TA (TARGET_DEAD) and the transport reports unusable", async () => {
    const rpmb = new RpmbDevice({ cid: CID });
    rpmb.programKey(deriveRpmbKey(HUK, CID));
    const r = rig({ storage: "rpmb", rpmb });
    const { tee, supplicant } = r;
    await supplicant.start();
    const t = ftpmTee({ tee });
    const tpm = await Tpm.open(t);
    const counter = rpmb.state.writeCounter;
    expect(await tpm.getRandom(4)).toHaveLength(4); // no NV change: no write
    rpmb.faults.failWrites = 10;
    expectCode(await teeRejection(tpm.nvDefineSpace({ index: NV, size: 4 })), TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    expect(r.panics()).toEqual(["ffff000e"]); // COMMUNICATION: rpmb_dead
    expect(rpmb.faults.failWrites).toBe(0);
    expect(rpmb.state.writeCounter).toBe(counter);
    expect(t.presence()).toBe("unusable");
    expect(t.state().sessionDead).toBe(true);
    expect(tpm.chip.readiness).toBe("unusable");
    await expect(tpm.getRandom(4)).rejects.toBeInstanceOf(TpmUnavailableError);
    // RPMB stays dead until the TEE reboots: the respawned TA dies on its storage again
    expectCode(await teeRejection(tpm.chip.open()), TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    await tpm.close();
  });

  it("NV survives a TEE restart with the correct key (a new OpTee over the same RpmbDevice and HUK)", async () => {
    const rpmb = new RpmbDevice({ cid: CID });
    rpmb.programKey(deriveRpmbKey(HUK, CID));
    const a = rig({ storage: "rpmb", rpmb });
    await a.supplicant.start();
    const tpm = await Tpm.open(ftpmTee({ tee: a.tee }));
    await defineAndWrite(tpm, bytes(0xde, 0xad, 0xbe, 0xef));
    await tpm.close();
    await a.supplicant.stop();

    const b = rig({ storage: "rpmb", rpmb });
    await b.supplicant.start();
    const tpm2 = await Tpm.open(ftpmTee({ tee: b.tee }));
    expect(await tpm2.getHandles()).toContain(NV);
    expect([...(await tpm2.nvRead(NV))]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    await tpm2.close();
  });
});

describe("fault matrix T1–T4", () => {
  it("T1: supplicant killed mid-command: the command ends within its deadline with a typed TEE error; after a restart a reopen works", async () => {
    const clock = new FakeClock();
    const r = rig({ clock });
    const { tee, supplicant } = r;
    await supplicant.start();
    const t = ftpmTee({ tee });
    const tpm = await Tpm.open(t, { clock });
    await defineAndWrite(tpm, bytes(5, 5));
    supplicant.faults.delayMs = 1000; // the next storage RPC is in flight when the supplicant dies
    const inflight = tpm.nvWrite(NV, bytes(6, 6)).then(
      () => undefined,
      (x: unknown) => x,
    );
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    supplicant.crash();
    const e = (await inflight) as TeeError;
    expect(r.panics()).toEqual(["ffff000c"]);
    expect(e).toBeInstanceOf(TeeError);
    // The port answers the RPC in flight (the write's APPL shm allocation) with COMMUNICATION, which
    // the core reports as OUT_OF_MEMORY; a storage write may not fail that way (GP TEE Internal Core
    // API §5.7), so the TA panics and the client sees TARGET_DEAD, not a bare COMMUNICATION.
    expectCode(e, TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    expect(clock.now()).toBe(0); // settled without the clock moving: no wait on the dead supplicant
    expect(tpm.chip.readiness).toBe("unusable");
    supplicant.faults.delayMs = 0;
    await supplicant.restart();
    await tpm.chip.open();
    expect(tpm.chip.readiness).toBe("ready");
    expect([...(await tpm.nvRead(NV))]).toEqual([5, 5]);
    await tpm.close();
  });

  it("T2: the TA panics (a storage write answered GENERIC) → TARGET_DEAD, origin TEE through the chip; a reopen respawns it", async () => {
    const r = rig();
    const { tee, supplicant } = r;
    await supplicant.start();
    const t = ftpmTee({ tee });
    const tpm = await Tpm.open(t);
    supplicant.faults.failNext = { cmd: 2, result: TEE_RESULT.GENERIC };
    const e = await teeRejection(tpm.nvDefineSpace({ index: NV, size: 2 }));
    expect(r.panics()).toEqual(["ffff0000"]);
    expectCode(e, TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    expect(e.code).toBe("TEE_ERROR");
    expect(tee.instanceOf(ftpmTa().uuid)).toBeUndefined(); // released: no KEEP_CRASHED
    expect(t.state().sessionDead).toBe(true);
    await expect(tpm.getRandom(2)).rejects.toBeInstanceOf(TpmUnavailableError);
    await tpm.chip.open(); // the re-bind
    expect(tee.instanceOf(ftpmTa().uuid)).toEqual({ dead: false, sessions: 1 });
    expect(await tpm.getRandom(4)).toHaveLength(4);
    await tpm.close();
  });

  it("T3: a REE FS object with a flipped byte: the fTPM's create reads it as corrupt and panics → TARGET_DEAD; its content is never served", async () => {
    const store = new MemoryFileStore();
    const a = rig({ store });
    await a.supplicant.start();
    const tpm = await Tpm.open(ftpmTee({ tee: a.tee }));
    await defineAndWrite(tpm, bytes(7, 7, 7));
    await tpm.close();
    await a.supplicant.stop();
    const names = [...store.files.keys()].filter((n) => !n.endsWith(".tmp"));
    expect(names.length).toBeGreaterThan(1);
    for (const name of names) {
      const s2 = new MemoryFileStore();
      for (const [k, v] of store.files) s2.files.set(k, v.slice());
      const f = s2.files.get(name)!;
      f[f.length >> 1] ^= 0x01;
      const b = rig({ store: s2 });
      await b.supplicant.start();
      const e = await teeRejection(Tpm.open(ftpmTee({ tee: b.tee })));
      expect(b.logs()).toContain("CORRUPT_OBJECT");
      expect(b.panics()).toEqual(["ffff0007"]);
      expectCode(e, TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
    }
  });

  it("T4: REE FS rolled back to an older copy is accepted: GP rollback protection level 0 for REE FS, the documented undetectable case (RPMB would be needed)", async () => {
    const store = new MemoryFileStore();
    const a = rig({ store });
    await a.supplicant.start();
    const tpm = await Tpm.open(ftpmTee({ tee: a.tee }));
    await defineAndWrite(tpm, bytes(1, 0, 0, 0));
    const older = new Map([...store.files].map(([k, v]) => [k, v.slice()] as const));
    await tpm.nvWrite(NV, bytes(2, 0, 0, 0));
    await tpm.close();
    await a.supplicant.stop();
    store.files.clear();
    for (const [k, v] of older) store.files.set(k, v);
    const b = rig({ store });
    await b.supplicant.start();
    const tpm2 = await Tpm.open(ftpmTee({ tee: b.tee }));
    expect([...(await tpm2.nvRead(NV))]).toEqual([1, 0, 0, 0]); // the old value, served as valid
    await tpm2.close();
  });
});
