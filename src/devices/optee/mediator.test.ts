import { describe, expect, it } from "vitest";
import { OPTEE_MSG_CMD, OPTEE_SMC, OPTEE_SMC_RETURN, TEE_ORIGIN, TEE_PARAM_TYPE, TEE_RESULT } from "../../bus/tee/constants.js";
import { FakeClock } from "../../core/clock.js";
import type { TaParam, TaSession } from "../../bus/tee/ta.js";
import { OpTee } from "./optee.js";
import { OPTEE_MSG_ATTR, TEE_MEDIATOR_LIMITS, TEE_MEDIATOR_PAGE_SIZE, TeeMediator, type TeeMediatorTarget } from "./mediator.js";
import { Supplicant } from "./supplicant.js";
import { fakeTa, rejection, settle, UUID_A } from "./test-helpers.js";

const A = OPTEE_MSG_ATTR;
const R = OPTEE_SMC_RETURN;

type Impl = NonNullable<NonNullable<Parameters<typeof fakeTa>[0]>["impl"]>;

function rig(opts: { threads?: number; maxGuests?: number; limits?: { pagesPerBuffer?: number; buffersPerGuest?: number; pagesPerGuest?: number }; impl?: Impl } = {}) {
  const clock = new FakeClock();
  const ta = fakeTa(opts.impl ? { impl: opts.impl } : {});
  const tee = new OpTee({ tas: [ta], virtualization: true, clock, threads: opts.threads ?? 2, maxGuests: opts.maxGuests ?? 64 });
  const smcs: number[][] = [];
  const spy: TeeMediatorTarget = {
    smc: (regs) => {
      smcs.push([...regs]);
      return tee.smc(regs);
    },
    partition: (id) => tee.partition(id),
  };
  const mediator = new TeeMediator(spy, { clock, ...(opts.limits ? { limits: opts.limits } : {}) });
  return { clock, ta, tee, mediator, smcs };
}

describe("TeeMediator probe", () => {
  it("refuses an OP-TEE built without virtualization (VM_DESTROYED is UNKNOWN_FUNCTION)", () => {
    const tee = new OpTee({ tas: [] });
    let err: unknown;
    try {
      new TeeMediator(tee);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "TEE_ERROR", teeCode: TEE_RESULT.NOT_SUPPORTED, origin: TEE_ORIGIN.COMMS });
    expect(String((err as Error).message)).toMatch(/without virtualization/);
  });

  it("refuses a TEE whose UID is not OP-TEE's, and one without DYNAMIC_SHM", () => {
    const tee = new OpTee({ tas: [], virtualization: true });
    const wrongUid: TeeMediatorTarget = { smc: (r) => (r[0] === OPTEE_SMC.CALLS_UID ? [1, 2, 3, 4] : tee.smc(r)), partition: (i) => tee.partition(i) };
    expect(() => new TeeMediator(wrongUid)).toThrow(/not OP-TEE/);
    const noDyn: TeeMediatorTarget = { smc: (r) => (r[0] === OPTEE_SMC.EXCHANGE_CAPABILITIES ? [0, 0, 0, 0] : tee.smc(r)), partition: (i) => tee.partition(i) };
    expect(() => new TeeMediator(noDyn)).toThrow(/DYNAMIC_SHM/);
  });

  it("reads the thread count with GET_THREAD_COUNT", () => {
    const { mediator } = rig({ threads: 3 });
    expect(mediator.threads).toBe(3);
  });
});

describe("VM ids", () => {
  it("guests from 2 (1 is the host, 0 the hypervisor), domid+1 as Xen, VM_CREATED a1 = id, a7 = 0", async () => {
    const { mediator, smcs, tee } = rig();
    const g2 = await mediator.createGuest({ supplicant: false });
    const g3 = await mediator.createGuest({ supplicant: false });
    const d7 = await mediator.createGuest({ supplicant: false, domid: 7 });
    const dom0 = await mediator.createGuest({ supplicant: false, domid: 0 });
    expect([g2.vmId, g3.vmId, d7.vmId, dom0.vmId]).toEqual([2, 3, 8, 1]);
    const created = smcs.filter((r) => r[0] === OPTEE_SMC.VM_CREATED);
    expect(created.map((r) => [r[1], r[7]])).toEqual([[2, 0], [3, 0], [8, 0], [1, 0]]);
    expect(tee.guestIds).toEqual([2, 3, 8, 1]);
    await expect(mediator.createGuest({ domid: 7 })).rejects.toMatchObject({ teeCode: TEE_RESULT.BAD_PARAMETERS, origin: TEE_ORIGIN.API });
    await expect(mediator.createGuest({ domid: -1 })).rejects.toMatchObject({ teeCode: TEE_RESULT.BAD_PARAMETERS });
  });

  it("OP-TEE: VM_CREATED with a7 != 0 and for guest 0 answers ENOTAVAIL", () => {
    const { tee } = rig();
    expect(tee.smc([OPTEE_SMC.VM_CREATED, 5, 0, 0, 0, 0, 0, 3])[0]).toBe(R.ENOTAVAIL);
    expect(tee.smc([OPTEE_SMC.VM_CREATED, 0, 0, 0, 0, 0, 0, 0])[0]).toBe(R.ENOTAVAIL);
    expect(tee.guestIds).toEqual([]);
  });

  it("VM_CREATED answering ENOTAVAIL (no room) is a typed error", async () => {
    const { mediator } = rig({ maxGuests: 2 });
    await mediator.createGuest({ supplicant: false });
    await mediator.createGuest({ supplicant: false });
    const e = await rejection(mediator.createGuest({ supplicant: false }));
    expect(e.teeCode).toBe(TEE_RESULT.OUT_OF_MEMORY);
    expect(e.origin).toBe(TEE_ORIGIN.COMMS);
    expect(e.message).toMatch(/ENOTAVAIL/);
  });

  it("a call from a VM never created, or from the hypervisor's id 0, gets ENOTAVAIL", async () => {
    const { mediator } = rig();
    expect(mediator.guestCall(9, { cmd: OPTEE_MSG_CMD.INVOKE_COMMAND }).a0).toBe(R.ENOTAVAIL);
    expect(mediator.guestCall(0, { cmd: OPTEE_MSG_CMD.INVOKE_COMMAND }).a0).toBe(R.ENOTAVAIL);
    const g = await mediator.createGuest({ supplicant: false });
    expect(g.callWithArg({ cmd: OPTEE_MSG_CMD.INVOKE_COMMAND }).a0).toBe(R.OK);
  });

  it("a default guest gets its own started supplicant", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest();
    expect(g.supplicant?.state).toBe("running");
    expect(g.status()).toEqual({ present: true, supplicant: "running" });
    const own = new Supplicant();
    const g2 = await mediator.createGuest({ supplicant: own, startSupplicant: false });
    expect(g2.supplicant).toBe(own);
    expect(own.state).toBe("stopped");
  });
});

describe("message checks", () => {
  it("forwards only OPEN..UNREGISTER_SHM: cmd 7 gets EBADCMD", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest({ supplicant: false });
    for (const cmd of [0, 1, 2, 3]) expect(g.callWithArg({ cmd })).toMatchObject({ a0: R.OK, forwarded: true });
    for (const cmd of [6, 7, 0x100]) expect(g.callWithArg({ cmd })).toMatchObject({ a0: R.EBADCMD, forwarded: false });
  });

  it("a contiguous temp memref with a non-NULL pointer: BAD_PARAMETERS origin COMMS; NULL passes", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest({ supplicant: false });
    const ipa = mediator.mapGuestMemory(g.vmId, 100);
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INPUT, bufPtr: ipa, size: 100 }] })).toMatchObject({ a0: R.OK, ret: TEE_RESULT.BAD_PARAMETERS, retOrigin: TEE_ORIGIN.COMMS, forwarded: false });
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INPUT, bufPtr: 0, size: 0 }] })).toMatchObject({ a0: R.OK, ret: 0, forwarded: true });
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INPUT | A.NONCONTIG, bufPtr: ipa, size: 100 }] })).toMatchObject({ ret: 0, forwarded: true, pinnedDuringCall: 1 });
  });

  it("an unmapped guest page: BAD_PARAMETERS origin COMMS", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest({ supplicant: false });
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INOUT | A.NONCONTIG, bufPtr: 0x1000, size: 10 }] })).toMatchObject({ ret: TEE_RESULT.BAD_PARAMETERS, retOrigin: TEE_ORIGIN.COMMS });
    expect(g.pinnedPages).toBe(0);
  });

  it("translates each page through the guest's own address map", async () => {
    const { mediator } = rig();
    const a = await mediator.createGuest({ supplicant: false });
    const b = await mediator.createGuest({ supplicant: false });
    const ia = mediator.mapGuestMemory(a.vmId, 2 * TEE_MEDIATOR_PAGE_SIZE);
    const ib = mediator.mapGuestMemory(b.vmId, TEE_MEDIATOR_PAGE_SIZE);
    expect(ia).toBe(ib); // same guest address ...
    expect(mediator.translate(a.vmId, ia + 5)).not.toBe(mediator.translate(b.vmId, ib + 5)); // ... different host pages
    expect(mediator.translate(a.vmId, ia + 4096)! - mediator.translate(a.vmId, ia)!).not.toBeNaN();
    expect(mediator.translate(b.vmId, ib + 4096)).toBeUndefined();
  });
});

describe("pins and Xen's limits", () => {
  it("temp pages are pinned for the call only; registered ones until UNREGISTER", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest({ supplicant: false });
    const ipa = mediator.mapGuestMemory(g.vmId, 3 * 4096);
    // 100 bytes starting 50 bytes before a page end span 2 pages.
    const r = g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INOUT | A.NONCONTIG, bufPtr: ipa + 4046, size: 100 }] });
    expect(r.pinnedDuringCall).toBe(2);
    expect(g.pinnedPages).toBe(0);
    expect(g.callWithArg({ cmd: OPTEE_MSG_CMD.REGISTER_SHM, params: [{ attr: A.TYPE_TMEM_INOUT | A.NONCONTIG, bufPtr: ipa, size: 3 * 4096, shmRef: 77 }] })).toMatchObject({ ret: 0, forwarded: true });
    expect(g.pinnedPages).toBe(3);
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_RMEM_INPUT, shmRef: 77 }] })).toMatchObject({ ret: 0 });
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_RMEM_INPUT, shmRef: 78 }] })).toMatchObject({ ret: TEE_RESULT.BAD_PARAMETERS, retOrigin: TEE_ORIGIN.COMMS });
    expect(g.pinnedPages).toBe(3);
    expect(g.callWithArg({ cmd: OPTEE_MSG_CMD.UNREGISTER_SHM, params: [{ attr: A.TYPE_RMEM_INPUT, shmRef: 77 }] })).toMatchObject({ ret: 0 });
    expect(g.pinnedPages).toBe(0);
  });

  it("129 pages per buffer: 130 gets OUT_OF_MEMORY origin COMMS", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest({ supplicant: false });
    const ipa = mediator.mapGuestMemory(g.vmId, 131 * 4096);
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INPUT | A.NONCONTIG, bufPtr: ipa, size: 129 * 4096 }] })).toMatchObject({ ret: 0, pinnedDuringCall: 129 });
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INPUT | A.NONCONTIG, bufPtr: ipa + 1, size: 129 * 4096 }] })).toMatchObject({ ret: TEE_RESULT.OUT_OF_MEMORY, retOrigin: TEE_ORIGIN.COMMS });
    expect(g.pinnedPages).toBe(0);
  });

  it("16 buffers per guest: the 17th gets OUT_OF_MEMORY origin COMMS; a temp param on top of 16 too", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest({ supplicant: false });
    const ipa = mediator.mapGuestMemory(g.vmId, 17 * 4096);
    const reg = (i: number) => g.callWithArg({ cmd: OPTEE_MSG_CMD.REGISTER_SHM, params: [{ attr: A.TYPE_TMEM_INOUT | A.NONCONTIG, bufPtr: ipa + i * 4096, size: 4096, shmRef: 100 + i }] });
    for (let i = 0; i < TEE_MEDIATOR_LIMITS.buffersPerGuest; i++) expect(reg(i).ret).toBe(0);
    expect(reg(16)).toMatchObject({ ret: TEE_RESULT.OUT_OF_MEMORY, retOrigin: TEE_ORIGIN.COMMS });
    expect(g.callWithArg({ cmd: 1, params: [{ attr: A.TYPE_TMEM_INPUT | A.NONCONTIG, bufPtr: ipa, size: 1 }] }).ret).toBe(TEE_RESULT.OUT_OF_MEMORY);
    expect(g.pinnedPages).toBe(16);
    expect(g.sharedBuffers).toBe(16);
  });

  it("pages per guest: reaching the total is refused (Xen: new >= MAX_TOTAL_SMH_BUF_PG)", async () => {
    const { mediator } = rig({ limits: { pagesPerGuest: 10 } });
    const g = await mediator.createGuest({ supplicant: false });
    const ipa = mediator.mapGuestMemory(g.vmId, 20 * 4096);
    expect(g.callWithArg({ cmd: 4, params: [{ attr: A.TYPE_TMEM_INOUT | A.NONCONTIG, bufPtr: ipa, size: 6 * 4096, shmRef: 1 }] }).ret).toBe(0);
    expect(g.callWithArg({ cmd: 4, params: [{ attr: A.TYPE_TMEM_INOUT | A.NONCONTIG, bufPtr: ipa + 6 * 4096, size: 4 * 4096, shmRef: 2 }] })).toMatchObject({ ret: TEE_RESULT.OUT_OF_MEMORY, retOrigin: TEE_ORIGIN.COMMS });
    expect(g.callWithArg({ cmd: 4, params: [{ attr: A.TYPE_TMEM_INOUT | A.NONCONTIG, bufPtr: ipa + 6 * 4096, size: 3 * 4096, shmRef: 2 }] }).ret).toBe(0);
    expect(g.pinnedPages).toBe(9);
  });

  it("client path: registered shm pinned until released, temp memrefs pinned during the call only", async () => {
    let seenPins = -1;
    let guestRef: { pinnedPages: number } | undefined;
    const { mediator } = rig({
      impl: () => ({
        invoke(_s: TaSession, _cmd: number, _t: number, params: TaParam[]) {
          seenPins = guestRef!.pinnedPages;
          params[1]!.buffer!.set(params[0]!.buffer!);
          params[1]!.size = params[0]!.buffer!.length;
          return 0;
        },
      }),
    });
    const g = await mediator.createGuest({ supplicant: false });
    guestRef = g;
    const ctx = await g.openContext({ client: "kernel" });
    const shm = ctx.allocateSharedMemory(8192);
    expect(g.pinnedPages).toBe(2);
    const s = await ctx.openSession(UUID_A);
    const out = new Uint8Array(5000);
    await s.invoke(1, { params: [{ type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, buffer: new Uint8Array(5000).fill(7), size: 5000 }, { type: TEE_PARAM_TYPE.MEMREF_TEMP_OUTPUT, buffer: out, size: 5000 }] });
    expect(seenPins).toBe(2 + 2 + 2);
    expect(out[4999]).toBe(7);
    expect(g.pinnedPages).toBe(2);
    ctx.releaseSharedMemory(shm);
    expect(g.pinnedPages).toBe(0);
    await ctx.close();
  });

  it("client path: a 17th registered buffer is refused with OUT_OF_MEMORY origin COMMS", async () => {
    const { mediator } = rig();
    const g = await mediator.createGuest({ supplicant: false });
    const ctx = await g.openContext();
    for (let i = 0; i < 16; i++) ctx.allocateSharedMemory(16);
    let err: unknown;
    try {
      ctx.allocateSharedMemory(16);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ teeCode: TEE_RESULT.OUT_OF_MEMORY, origin: TEE_ORIGIN.COMMS });
    expect(ctx.sharedMemoryCount).toBe(16);
  });
});

describe("per-guest thread limit", () => {
  it("the raw hook answers ETHREAD_LIMIT while the guest's slots are busy; a client waits, bounded", async () => {
    const gates: (() => void)[] = [];
    const { mediator, clock } = rig({
      threads: 2,
      impl: () => ({
        invoke: () => new Promise<number>((r) => gates.push(() => r(0))),
      }),
    });
    const g = await mediator.createGuest({ supplicant: false });
    const other = await mediator.createGuest({ supplicant: false });
    const ctx = await g.openContext({ client: "kernel" });
    // MULTI_SESSION-less fake TA, not single instance: one session per instance.
    const s1 = await ctx.openSession(UUID_A);
    const s2 = await ctx.openSession(UUID_A);
    const s3 = await ctx.openSession(UUID_A);
    const p1 = s1.invoke(5);
    const p2 = s2.invoke(5);
    await settle();
    expect(g.callsInFlight).toBe(2);
    expect(g.callWithArg({ cmd: 1 }).a0).toBe(R.ETHREAD_LIMIT);
    expect(other.callWithArg({ cmd: 1 }).a0).toBe(R.OK); // another guest's slots are its own
    let third = false;
    const p3 = s3.invoke(5).then(() => (third = true));
    await settle();
    expect(third).toBe(false);
    gates.shift()!();
    await p1;
    await settle();
    expect(gates.length).toBe(2); // the waiting call got the slot and runs
    gates.shift()!();
    gates.shift()!();
    await Promise.all([p2, p3]);
    // A wait that never gets a slot ends with BUSY/COMMS after threadWaitMs.
    const q1 = s1.invoke(5);
    const q2 = s2.invoke(5);
    await settle();
    const q3 = rejection(s3.invoke(5));
    await settle();
    clock.advance(30_000);
    expect(await q3).toMatchObject({ teeCode: TEE_RESULT.BUSY, origin: TEE_ORIGIN.COMMS });
    gates.splice(0).forEach((f) => f());
    await Promise.all([q1, q2]);
  });
});

describe("destroy", () => {
  it("VM_DESTROYED (a1 = id, a7 = 0); handles reject with a typed error; pins freed; supplicant stopped; id reusable", async () => {
    const { mediator, smcs, tee } = rig();
    const g = await mediator.createGuest();
    const ctx = await g.openContext({ client: "kernel" });
    ctx.allocateSharedMemory(3 * 4096);
    const s = await ctx.openSession(UUID_A);
    expect(g.pinnedPages).toBe(3);
    await mediator.destroyGuest(g);
    expect(smcs.filter((r) => r[0] === OPTEE_SMC.VM_DESTROYED && r[1] === 2).map((r) => r[7])).toEqual([0]);
    expect(g.destroyed).toBe(true);
    expect(g.pinnedPages).toBe(0);
    expect(g.supplicant?.state).toBe("stopped");
    expect(g.status().present).toBe(false);
    expect(tee.guestIds).toEqual([]);
    expect(await rejection(s.invoke(0, { params: [{ type: TEE_PARAM_TYPE.VALUE_INOUT, a: 1, b: 1 }] }))).toMatchObject({ teeCode: TEE_RESULT.COMMUNICATION, origin: TEE_ORIGIN.COMMS });
    expect(await rejection(ctx.openSession(UUID_A))).toMatchObject({ teeCode: TEE_RESULT.COMMUNICATION, origin: TEE_ORIGIN.COMMS });
    expect(await rejection(g.openContext())).toMatchObject({ teeCode: TEE_RESULT.ITEM_NOT_FOUND, origin: TEE_ORIGIN.API });
    await s.close(); // never rejects
    expect(g.callWithArg({ cmd: 1 }).a0).toBe(R.ENOTAVAIL);
    const again = await mediator.createGuest({ supplicant: false });
    expect(again.vmId).toBe(2);
    expect(again.pinnedPages).toBe(0);
    const c2 = await again.openContext();
    const s2 = await c2.openSession(UUID_A);
    const op = { params: [{ type: TEE_PARAM_TYPE.VALUE_INOUT, a: 1, b: 1 }] };
    await s2.invoke(0, op);
    expect(op.params[0]).toMatchObject({ a: 2, b: 3 });
  });

  it("a call in flight at destroy rejects with COMMUNICATION and leaves no pins", async () => {
    const { mediator } = rig({ impl: () => ({ invoke: () => new Promise<number>(() => {}) }) });
    const g = await mediator.createGuest({ supplicant: false });
    const ctx = await g.openContext({ client: "kernel" });
    const s = await ctx.openSession(UUID_A);
    const p = rejection(s.invoke(1, { params: [{ type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, buffer: new Uint8Array(10), size: 10 }] }));
    await settle();
    expect(g.pinnedPages).toBe(1);
    await mediator.destroyGuest(g);
    expect(await p).toMatchObject({ teeCode: TEE_RESULT.COMMUNICATION, origin: TEE_ORIGIN.COMMS });
    expect(g.pinnedPages).toBe(0);
  });
});
