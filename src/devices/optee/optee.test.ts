import { describe, expect, it } from "vitest";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { FakeClock } from "../../core/clock.js";
import { TeeError } from "../../errors/index.js";
import { OPTEE_RPC_CMD, TA_FLAG, TEE_MEM, TEE_ORIGIN, TEE_PARAM_TYPE, TEE_RESULT } from "../../bus/tee/constants.js";
import type { TeeParam } from "../../bus/tee/client.js";
import type { TeeSupplicantDaemon, TeeSupplicantPort } from "../../bus/tee/rpc.js";
import { OpTee, OPTEE_DEVICE_CHANNEL, type OpTeeTraceEvent } from "./optee.js";
import { Supplicant } from "./supplicant.js";
import { FakeSupplicant, UUID_A, UUID_B, fakeTa, rejection, settle, thrown } from "./test-helpers.js";

const { API, COMMS, TEE, TRUSTED_APP } = TEE_ORIGIN;

function expectCode(e: TeeError, code: number, origin: number): void {
  expect({ code: e.teeCode.toString(16), origin: e.origin }).toEqual({ code: code.toString(16), origin });
}

describe("OpTee: contexts and status", () => {
  it("opens contexts; status follows the supplicant's attach and detach; a second attach is BUSY", async () => {
    let port: TeeSupplicantPort | undefined;
    const daemon: TeeSupplicantDaemon = { bind: (p) => (port = p) };
    const tee = new OpTee({ tas: [fakeTa()], supplicant: daemon, clock: new FakeClock() });
    expect(port).toBe(tee);
    expect(tee.status()).toEqual({ present: true, supplicant: "stopped" });
    expect(new OpTee({ tas: [] }).status()).toEqual({ present: true, supplicant: "absent" });
    const seen: string[] = [];
    const off = tee.onStatus((s) => seen.push(s.supplicant));
    const supp = new FakeSupplicant(tee).start();
    expectCode(thrown(() => tee.attach(new FakeSupplicant(tee))), TEE_RESULT.BUSY, COMMS);
    supp.stop();
    off();
    supp.start();
    expect(seen).toEqual(["running", "stopped"]);
    expect(tee.status().supplicant).toBe("running");
    const ctx = await tee.openContext({ client: "kernel" });
    expect(ctx.client).toBe("kernel");
    expect((await tee.openContext()).client).toBe("user");
  });
});

describe("OpTee: TA store lookup", () => {
  it("an early TA opens without a supplicant and sends no RPC", async () => {
    const ta = fakeTa({ early: true });
    const tee = new OpTee({ tas: [ta] });
    const s = await (await tee.openContext({ client: "kernel" })).openSession(UUID_A);
    const p: TeeParam = { type: TEE_PARAM_TYPE.VALUE_INOUT, a: 1, b: 2 };
    await s.invoke(0, { params: [p] });
    expect([p.a, p.b]).toEqual([2, 4]);
    expect(ta.counters).toMatchObject({ instantiated: 1, created: 1, opened: 1 });
  });

  it("a REE TA without a supplicant, kernel client: OUT_OF_MEMORY 0xffff000c origin TEE at once (ITEM_NOT_FOUND with the 2019 option)", async () => {
    const tee = new OpTee({ tas: [fakeTa({ early: false })] });
    const ctx = await tee.openContext({ client: "kernel" });
    expectCode(await rejection(ctx.openSession(UUID_A)), 0xffff000c, TEE);
    const old = new OpTee({ tas: [fakeTa({ early: false })], supplicantAbsentLoadResult: "item-not-found" });
    expectCode(await rejection((await old.openContext({ client: "kernel" })).openSession(UUID_A)), 0xffff0008, TEE);
  });

  it("a REE TA through the supplicant: SHM_ALLOC first, then LOAD_TA; a missing TA is ITEM_NOT_FOUND origin TEE", async () => {
    const ta = fakeTa({ early: false });
    const tee = new OpTee({ tas: [ta] });
    const supp = new FakeSupplicant(tee).start();
    const ctx = await tee.openContext({ client: "kernel" });
    const s = await ctx.openSession(UUID_A);
    expect(s.uuid).toBe(UUID_A);
    expect(supp.cmds().slice(0, 2)).toEqual([OPTEE_RPC_CMD.SHM_ALLOC, OPTEE_RPC_CMD.LOAD_TA]);
    await settle();
    expect(supp.cmds()).toContain(OPTEE_RPC_CMD.SHM_FREE);
    expectCode(await rejection(ctx.openSession(UUID_B)), TEE_RESULT.ITEM_NOT_FOUND, TEE);
  });

  it("with the Supplicant model: bound at construction, REE TA loaded once started, status running then stopped", async () => {
    const supplicant = new Supplicant({});
    const tee = new OpTee({ tas: [fakeTa({ early: false })], supplicant });
    expect(tee.status().supplicant).toBe("stopped");
    await supplicant.start();
    expect(tee.status().supplicant).toBe("running");
    const s = await (await tee.openContext({ client: "kernel" })).openSession(UUID_A);
    await s.close();
    await supplicant.stop();
    expect(tee.status().supplicant).toBe("stopped");
    expectCode(await rejection((await tee.openContext({ client: "kernel" })).openSession(UUID_A)), TEE_RESULT.OUT_OF_MEMORY, TEE);
  });

  it("the REE store's own errors stop the lookup with their code (origin TEE); STORAGE_NOT_AVAILABLE reads as not found", async () => {
    const tee = new OpTee({ tas: [fakeTa({ early: false })] });
    const supp = new FakeSupplicant(tee).start();
    const ctx = await tee.openContext({ client: "kernel" });
    supp.loadResult = TEE_RESULT.GENERIC;
    expectCode(await rejection(ctx.openSession(UUID_A)), TEE_RESULT.GENERIC, TEE);
    supp.loadResult = TEE_RESULT.STORAGE_NOT_AVAILABLE;
    expectCode(await rejection(ctx.openSession(UUID_A)), TEE_RESULT.ITEM_NOT_FOUND, TEE);
  });

  it("a user client waits for the supplicant and proceeds when it attaches", async () => {
    const tee = new OpTee({ tas: [fakeTa({ early: false })], clock: new FakeClock() });
    const ctx = await tee.openContext({ client: "user" });
    let done = false;
    const open = ctx.openSession(UUID_A).then((s) => ((done = true), s));
    await settle();
    expect(done).toBe(false);
    new FakeSupplicant(tee).start();
    expect((await open).uuid).toBe(UUID_A);
  });

  it("a user client's wait ends on abort with COMMUNICATION origin COMMS (supp.c: interrupted wait)", async () => {
    const tee = new OpTee({ tas: [fakeTa({ early: false })], clock: new FakeClock() });
    const ctx = await tee.openContext({ client: "user" });
    const ac = new AbortController();
    const open = rejection(ctx.openSession(UUID_A, { signal: ac.signal }));
    await settle();
    ac.abort();
    expectCode(await open, TEE_RESULT.COMMUNICATION, COMMS);
  });

  it("a user client's wait is bounded by supplicantWaitMs: then the load fails as without a supplicant", async () => {
    const clock = new FakeClock();
    const tee = new OpTee({ tas: [fakeTa({ early: false })], clock, supplicantWaitMs: 5000 });
    const open = rejection((await tee.openContext({ client: "user" })).openSession(UUID_A));
    await clock.advance(4999);
    await clock.advance(1);
    expectCode(await open, TEE_RESULT.OUT_OF_MEMORY, TEE);
  });

  it("detach completes the in-flight request with COMMUNICATION (the load reads as OUT_OF_MEMORY)", async () => {
    const tee = new OpTee({ tas: [fakeTa({ early: false })] });
    const supp = new FakeSupplicant(tee).start();
    supp.hang = true;
    const open = rejection((await tee.openContext({ client: "kernel" })).openSession(UUID_A));
    await settle();
    supp.stop();
    expectCode(await open, TEE_RESULT.OUT_OF_MEMORY, TEE);
  });
});

describe("OpTee: instances and flags", () => {
  it("SINGLE_INSTANCE without MULTI_SESSION: a second open while a session is open is BUSY origin TEE", async () => {
    const ta = fakeTa({ flags: TA_FLAG.SINGLE_INSTANCE });
    const tee = new OpTee({ tas: [ta] });
    const ctx = await tee.openContext({ client: "kernel" });
    const s = await ctx.openSession(UUID_A);
    expectCode(await rejection(ctx.openSession(UUID_A)), TEE_RESULT.BUSY, TEE);
    await s.close();
    expect(ta.counters.destroyed).toBe(1);
    await ctx.openSession(UUID_A);
    expect(ta.counters.created).toBe(2);
  });

  it("SINGLE_INSTANCE | MULTI_SESSION shares one instance; INSTANCE_KEEP_ALIVE keeps it after the last close", async () => {
    const ta = fakeTa({ flags: TA_FLAG.SINGLE_INSTANCE | TA_FLAG.MULTI_SESSION | TA_FLAG.INSTANCE_KEEP_ALIVE });
    const tee = new OpTee({ tas: [ta] });
    const ctx = await tee.openContext({ client: "kernel" });
    const [a, b] = [await ctx.openSession(UUID_A), await ctx.openSession(UUID_A)];
    expect(a.id).not.toBe(b.id);
    expect(ta.counters).toMatchObject({ instantiated: 1, created: 1, opened: 2 });
    await a.close();
    await b.close();
    expect(ta.counters).toMatchObject({ closed: 2, destroyed: 0 });
    expect(tee.instanceOf(UUID_A)).toEqual({ dead: false, sessions: 0 });
    await ctx.openSession(UUID_A);
    expect(ta.counters).toMatchObject({ instantiated: 1, created: 1 });
  });

  it("without SINGLE_INSTANCE every session gets its own instance, destroyed at its close", async () => {
    const ta = fakeTa({ flags: 0 });
    const tee = new OpTee({ tas: [ta] });
    const ctx = await tee.openContext({ client: "kernel" });
    const a = await ctx.openSession(UUID_A);
    const b = await ctx.openSession(UUID_A);
    expect(ta.counters.instantiated).toBe(2);
    await a.close();
    await b.close();
    expect(ta.counters.destroyed).toBe(2);
    expect(ctx.sessionCount).toBe(0);
  });

  it("create failing: its code origin TEE; openSession failing: origin TRUSTED_APP (destroy runs)", async () => {
    const c1 = fakeTa({ impl: () => ({ create: () => TEE_RESULT.OUT_OF_MEMORY }) });
    const tee1 = new OpTee({ tas: [c1] });
    expectCode(await rejection((await tee1.openContext({ client: "kernel" })).openSession(UUID_A)), TEE_RESULT.OUT_OF_MEMORY, TEE);
    const o = fakeTa({ flags: TA_FLAG.SINGLE_INSTANCE, impl: () => ({ openSession: () => TEE_RESULT.ACCESS_DENIED }) });
    const tee2 = new OpTee({ tas: [o] });
    const ctx = await tee2.openContext({ client: "kernel" });
    expectCode(await rejection(ctx.openSession(UUID_A)), TEE_RESULT.ACCESS_DENIED, TRUSTED_APP);
    expect(o.counters.destroyed).toBe(1);
    expectCode(await rejection(ctx.openSession(UUID_A)), TEE_RESULT.ACCESS_DENIED, TRUSTED_APP);
  });

  it("invoke failing: origin TRUSTED_APP with the needed size written back (SHORT_BUFFER)", async () => {
    const tee = new OpTee({ tas: [fakeTa()] });
    const s = await (await tee.openContext({ client: "kernel" })).openSession(UUID_A);
    const out: TeeParam = { type: TEE_PARAM_TYPE.MEMREF_TEMP_OUTPUT, buffer: new Uint8Array(2), size: 2 };
    const err = await rejection(s.invoke(1, { params: [{ type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, buffer: new Uint8Array([1, 2, 3, 4]) }, out] }));
    expectCode(err, TEE_RESULT.SHORT_BUFFER, TRUSTED_APP);
    expect(out.size).toBe(4);
    const big: TeeParam = { type: TEE_PARAM_TYPE.MEMREF_TEMP_OUTPUT, buffer: new Uint8Array(8), size: 8 };
    await s.invoke(1, { params: [{ type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, buffer: new Uint8Array([1, 2, 3, 4]) }, big] });
    expect([...big.buffer!]).toEqual([1, 2, 3, 4, 0, 0, 0, 0]);
    expect(big.size).toBe(4);
    expectCode(await rejection(s.invoke(99)), TEE_RESULT.BAD_PARAMETERS, TRUSTED_APP);
  });
});

describe("OpTee: panics", () => {
  for (const how of ["env.panic", "a thrown exception"] as const) {
    it(`${how} → TARGET_DEAD origin TEE for the call and the session; the next open respawns`, async () => {
      const ta = fakeTa({
        flags: TA_FLAG.SINGLE_INSTANCE,
        impl: (c) => ({
          invoke: (_s, cmd) => {
            if (cmd === 7) {
              if (how === "env.panic") c.env!.panic(0xdead);
              throw new RangeError("bug in the TA");
            }
            return 0;
          },
        }),
      });
      const tee = new OpTee({ tas: [ta] });
      const ctx = await tee.openContext({ client: "kernel" });
      const s = await ctx.openSession(UUID_A);
      expectCode(await rejection(s.invoke(7)), TEE_RESULT.TARGET_DEAD, TEE);
      expectCode(await rejection(s.invoke(0)), TEE_RESULT.TARGET_DEAD, TEE);
      expect(tee.instanceOf(UUID_A)).toBeUndefined();
      await s.close();
      expect(ta.counters.destroyed).toBe(0);
      const s2 = await ctx.openSession(UUID_A);
      await s2.invoke(0);
      expect(ta.counters).toMatchObject({ instantiated: 2, created: 2 });
    });
  }

  it("a panic caught by the TA still kills it (TEE_Panic never returns)", async () => {
    const ta = fakeTa({
      impl: (c) => ({
        invoke: () => {
          try {
            c.env!.panic(1);
          } catch {
            return 0;
          }
          return 0;
        },
      }),
    });
    const s = await (await new OpTee({ tas: [ta] }).openContext({ client: "kernel" })).openSession(UUID_A);
    expectCode(await rejection(s.invoke(0)), TEE_RESULT.TARGET_DEAD, TEE);
  });

  it("INSTANCE_KEEP_CRASHED: later opens get TARGET_DEAD origin TEE too", async () => {
    const ta = fakeTa({ flags: TA_FLAG.SINGLE_INSTANCE | TA_FLAG.INSTANCE_KEEP_CRASHED, impl: () => ({ invoke: () => { throw new Error("x"); } }) });
    const tee = new OpTee({ tas: [ta] });
    const ctx = await tee.openContext({ client: "kernel" });
    const s = await ctx.openSession(UUID_A);
    expectCode(await rejection(s.invoke(0)), TEE_RESULT.TARGET_DEAD, TEE);
    await s.close();
    expectCode(await rejection(ctx.openSession(UUID_A)), TEE_RESULT.TARGET_DEAD, TEE);
    expect(ta.counters.instantiated).toBe(1);
  });

  it("a panic in create fails the open with TARGET_DEAD origin TEE", async () => {
    const ta = fakeTa({ impl: () => ({ create: (env) => env.panic(TEE_RESULT.BAD_STATE) }) });
    expectCode(await rejection((await new OpTee({ tas: [ta] }).openContext({ client: "kernel" })).openSession(UUID_A)), TEE_RESULT.TARGET_DEAD, TEE);
  });
});

describe("OpTee: parameters and shared memory", () => {
  async function session() {
    const tee = new OpTee({ tas: [fakeTa()] });
    const ctx = await tee.openContext({ client: "user" });
    return { ctx, s: await ctx.openSession(UUID_A) };
  }

  it("libteec's checks: BAD_PARAMETERS origin API", async () => {
    const { ctx, s } = await session();
    const none = { type: TEE_PARAM_TYPE.NONE };
    expectCode(await rejection(s.invoke(0, { params: [none, none, none, none, none] })), TEE_RESULT.BAD_PARAMETERS, API);
    expectCode(await rejection(s.invoke(0, { params: [{ type: 4 }] })), TEE_RESULT.BAD_PARAMETERS, API);
    expectCode(await rejection(s.invoke(0, { params: [{ type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, size: 4 }] })), TEE_RESULT.BAD_PARAMETERS, API);
    expectCode(await rejection(s.invoke(0, { params: [{ type: TEE_PARAM_TYPE.VALUE_INPUT, a: 2 ** 32 }] })), TEE_RESULT.BAD_PARAMETERS, API);
    const inOnly = ctx.allocateSharedMemory(16, TEE_MEM.INPUT);
    expectCode(await rejection(s.invoke(0, { params: [{ type: TEE_PARAM_TYPE.MEMREF_PARTIAL_OUTPUT, shm: inOnly, offset: 0, size: 4 }] })), TEE_RESULT.BAD_PARAMETERS, API);
    for (const flags of [0, 4, TEE_MEM.INPUT | 8]) expectCode(thrown(() => ctx.allocateSharedMemory(8, flags)), TEE_RESULT.BAD_PARAMETERS, API);
    expectCode(thrown(() => ctx.registerSharedMemory(new Uint8Array(4), 0)), TEE_RESULT.BAD_PARAMETERS, API);
  });

  it("a null temp memref of size 0 is allowed; shared memory of size 0 is 8 bytes", async () => {
    const { ctx, s } = await session();
    await s.invoke(0, { params: [{ type: TEE_PARAM_TYPE.VALUE_INOUT, a: 0, b: 0 }, { type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, size: 0 }] });
    const shm = ctx.allocateSharedMemory(0);
    expect(shm.size).toBe(8);
    expect(shm.buffer.length).toBe(8);
    expect(ctx.sharedMemoryCount).toBe(1);
    ctx.releaseSharedMemory(shm);
    expect(ctx.sharedMemoryCount).toBe(0);
  });

  it("the kernel's checks: a memref outside its shm, or a released shm, is BAD_PARAMETERS origin COMMS", async () => {
    const { ctx, s } = await session();
    const shm = ctx.allocateSharedMemory(16);
    expectCode(await rejection(s.invoke(1, { params: [{ type: TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT, shm, offset: 12, size: 8 }] })), TEE_RESULT.BAD_PARAMETERS, COMMS);
    ctx.releaseSharedMemory(shm);
    expectCode(await rejection(s.invoke(1, { params: [{ type: TEE_PARAM_TYPE.MEMREF_WHOLE, shm }] })), TEE_RESULT.BAD_PARAMETERS, COMMS);
  });

  it("partial memrefs are views of the shared memory; output sizes are written back", async () => {
    const { ctx, s } = await session();
    const shm = ctx.allocateSharedMemory(8192);
    shm.buffer.set([9, 8, 7], 0);
    const out: TeeParam = { type: TEE_PARAM_TYPE.MEMREF_PARTIAL_INOUT, shm, offset: 4096, size: 4096 };
    await s.invoke(1, { params: [{ type: TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT, shm, offset: 0, size: 3 }, out] });
    expect([...shm.buffer.subarray(4096, 4099)]).toEqual([9, 8, 7]);
    expect(out.size).toBe(3);
    const reg = ctx.registerSharedMemory(new Uint8Array(4), TEE_MEM.INPUT);
    expect(reg.registered).toBe(true);
  });
});

describe("OpTee: cancellation and threads", () => {
  function hangingTa() {
    let release: () => void = () => {};
    const ta = fakeTa({ flags: TA_FLAG.SINGLE_INSTANCE | TA_FLAG.MULTI_SESSION, impl: () => ({ invoke: (_s, cmd) => (cmd === 5 ? new Promise<number>((r) => (release = () => r(0))) : 0) }) });
    return { ta, release: () => release() };
  }

  it("requestCancellation and an aborted signal settle the call at once with CANCEL origin COMMS", async () => {
    const { ta, release } = hangingTa();
    const tee = new OpTee({ tas: [ta], threads: 4 });
    const s = await (await tee.openContext({ client: "kernel" })).openSession(UUID_A);
    const call = rejection(s.invoke(5));
    await settle();
    s.requestCancellation();
    expectCode(await call, TEE_RESULT.CANCEL, COMMS);
    const ac = new AbortController();
    const call2 = rejection(s.invoke(5, undefined, { signal: ac.signal }));
    await settle();
    ac.abort();
    expectCode(await call2, TEE_RESULT.CANCEL, COMMS);
    release();
  });

  it("calls beyond CFG_NUM_THREADS wait for a free thread (ETHREAD_LIMIT), bounded by threadWaitMs → BUSY origin COMMS", async () => {
    const clock = new FakeClock();
    const { ta, release } = hangingTa();
    const tee = new OpTee({ tas: [ta], threads: 1, threadWaitMs: 1000, clock });
    const ctx = await tee.openContext({ client: "kernel" });
    const s = await ctx.openSession(UUID_A);
    const first = s.invoke(5);
    await settle();
    let second = false;
    const waiting = s.invoke(0).then(() => (second = true));
    await settle();
    expect(second).toBe(false);
    release();
    await first;
    await waiting;
    expect(second).toBe(true);
    const stuck = s.invoke(5);
    await settle();
    const timedOut = rejection(s.invoke(0));
    await clock.advance(1000);
    expectCode(await timedOut, TEE_RESULT.BUSY, COMMS);
    release();
    await stuck;
  });
});

describe("OpTee: bounded closes and abandoned opens", () => {
  it("a kernel client's close with the supplicant gone takes no time (its RPCs fail at once)", async () => {
    const clock = new FakeClock();
    const ta = fakeTa({ impl: (c) => ({ closeSession: async () => void (await c.env!.storage.write(1, new Uint8Array([1]), new Uint8Array([2])).catch(() => undefined)) }) });
    const tee = new OpTee({ tas: [ta], clock });
    const s = await (await tee.openContext({ client: "kernel" })).openSession(UUID_A);
    await s.close();
    expect(clock.now()).toBe(0);
    expectCode(await rejection(s.invoke(0)), TEE_RESULT.ITEM_NOT_FOUND, TEE);
  });

  it("an open abandoned while create runs leaves no reference behind (the next open is not BUSY)", async () => {
    let finish: () => void = () => {};
    const ta = fakeTa({
      flags: TA_FLAG.SINGLE_INSTANCE,
      impl: (c) => ({
        create: () => {
          c.created++;
          return c.created === 1 ? new Promise<number>((r) => (finish = () => r(0))) : 0;
        },
      }),
    });
    const tee = new OpTee({ tas: [ta] });
    const ctx = await tee.openContext({ client: "kernel" });
    const ac = new AbortController();
    const open = rejection(ctx.openSession(UUID_A, { signal: ac.signal }));
    await settle();
    ac.abort();
    expectCode(await open, TEE_RESULT.CANCEL, COMMS);
    finish();
    await settle();
    const s = await ctx.openSession(UUID_A);
    await s.invoke(0);
    // The abandoned instance was released at once (its only reference dropped); a fresh one serves.
    expect(ta.counters).toMatchObject({ created: 2, destroyed: 1 });
  });
});

describe("OpTee: virtualization and partitions", () => {
  const R = { OK: 0, ENOTAVAIL: 7, UNKNOWN: 0xffffffff };
  const VM_CREATED = 0xb200000d;
  const VM_DESTROYED = 0xb200000e;

  it("fast calls: thread count, capabilities, VM_CREATED/VM_DESTROYED rules", () => {
    const tee = new OpTee({ tas: [], virtualization: true, maxGuests: 2, threads: 3 });
    expect(tee.smc([0xb200000f])).toEqual([R.OK, 3, 0, 0]);
    expect(tee.smc([0xb2000009])[1]! & 0x8).toBe(0x8);
    expect(tee.smc([VM_CREATED, 2, 0, 0, 0, 0, 0, 5])[0]).toBe(R.ENOTAVAIL);
    expect(tee.smc([VM_CREATED, 0])[0]).toBe(R.ENOTAVAIL);
    expect(tee.smc([VM_CREATED, 2])[0]).toBe(R.OK);
    expect(tee.smc([VM_CREATED, 3])[0]).toBe(R.OK);
    expect(tee.smc([VM_CREATED, 4])[0]).toBe(R.ENOTAVAIL);
    expect(tee.smc([0x32000004, 0, 0, 0, 0, 0, 0, 9])[0]).toBe(R.ENOTAVAIL);
    expect(tee.smc([VM_DESTROYED, 42])[0]).toBe(R.OK);
    expect(tee.smc([VM_DESTROYED, 2, 0, 0, 0, 0, 0, 1])[0]).toBe(R.ENOTAVAIL);
    expect(tee.smc([VM_DESTROYED, 2])[0]).toBe(R.OK);
    expect(tee.guestIds).toEqual([3]);
    const plain = new OpTee({ tas: [] });
    expect(plain.smc([VM_DESTROYED, 2])[0]).toBe(R.UNKNOWN);
    expect(plain.smc([0xb2000009])[1]! & 0x8).toBe(0);
  });

  it("a virtualized OpTee without a hypervisor has no /dev/tee0: openContext rejects ITEM_NOT_FOUND origin API", async () => {
    const tee = new OpTee({ tas: [], virtualization: true });
    expectCode(await rejection(tee.openContext()), TEE_RESULT.ITEM_NOT_FOUND, API);
    expect(tee.status().present).toBe(false);
  });

  it("partitions are independent: own instances, supplicant port and storage; destroy ends their handles", async () => {
    const ta = fakeTa({ flags: TA_FLAG.SINGLE_INSTANCE, early: false });
    const tee = new OpTee({ tas: [ta], virtualization: true });
    tee.smc([VM_CREATED, 2]);
    tee.smc([VM_CREATED, 3]);
    const g2 = tee.partition(2)!;
    const g3 = tee.partition(3)!;
    expect(tee.partition(4)).toBeUndefined();
    new FakeSupplicant(g2.port).start();
    const supp3 = new FakeSupplicant(g3.port).start();
    const c2 = await g2.device.openContext({ client: "kernel" });
    const c3 = await g3.device.openContext({ client: "kernel" });
    const s2 = await c2.openSession(UUID_A);
    const s3 = await c3.openSession(UUID_A); // not BUSY: one instance per guest
    expect(ta.counters.instantiated).toBe(2);
    const pending = rejection(c2.openSession(UUID_B));
    tee.smc([VM_DESTROYED, 2]);
    expectCode(await pending, TEE_RESULT.COMMUNICATION, COMMS);
    expectCode(await rejection(s2.invoke(0)), TEE_RESULT.COMMUNICATION, COMMS);
    expectCode(await rejection(g2.device.openContext()), TEE_RESULT.ITEM_NOT_FOUND, API);
    expect(g2.device.status()).toEqual({ present: false, supplicant: "stopped" });
    await s3.invoke(0, { params: [{ type: TEE_PARAM_TYPE.VALUE_INOUT, a: 1, b: 1 }] });
    expect(supp3.cmds()).toContain(OPTEE_RPC_CMD.LOAD_TA);
  });
});

describe("OpTee: trace channel", () => {
  it("publishes open, invoke, panic and rpc events on tpmkit:device:optee", async () => {
    const events: OpTeeTraceEvent[] = [];
    const fn = (m: unknown) => events.push(m as OpTeeTraceEvent);
    subscribe(OPTEE_DEVICE_CHANNEL, fn);
    try {
      const ta = fakeTa({ early: false, impl: () => ({ invoke: (_s, cmd) => { if (cmd === 3) throw new Error("boom"); return 0; } }) });
      const tee = new OpTee({ tas: [ta] });
      new FakeSupplicant(tee).start();
      const s = await (await tee.openContext({ client: "kernel" })).openSession(UUID_A);
      await s.invoke(0);
      await rejection(s.invoke(3));
      const mine = events.filter((e) => e.device === tee).map((e) => e.type);
      expect(mine).toEqual(expect.arrayContaining(["rpc", "open", "invoke", "panic"]));
      const inv = events.filter((e) => e.device === tee && e.type === "invoke");
      expect(inv.map((e) => (e as { result: number }).result)).toEqual([0, TEE_RESULT.TARGET_DEAD]);
    } finally {
      unsubscribe(OPTEE_DEVICE_CHANNEL, fn);
    }
  });
});
