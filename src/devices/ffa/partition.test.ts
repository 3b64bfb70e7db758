import { describe, it, expect } from "vitest";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { FfaBus, FFA_BUS_CHANNEL, type FfaBusEvent } from "./bus.js";
import { TpmServicePartition } from "./partition.js";
import { CrbDevice } from "../crb/index.js";
import { FakeClock } from "../../core/clock.js";
import { getRandomCommand } from "../../testing/fake-backend.js";
import type { TpmBackend } from "../../core/transport.js";
import { FFA_FN, FFA_ERROR_CODE as E, TPM_SERVICE_FN as F, TPM_SERVICE_STATUS as S, TPM_SERVICE_UUID, uuidToRegs, NIL_UUID } from "../../bus/ffa/abi.js";
import { s32, w32 } from "../../bus/ffa/conduit.js";
import { CRB_REG as R } from "../../bus/crb-registers.js";
import { TpmArgumentError } from "../../errors/index.js";

const B = (n: number) => BigInt(n);
const ID = 0x8002;
const RSP = new Uint8Array([0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0]);

/** A backend whose commands complete when the test says so. */
class ManualBackend implements TpmBackend {
  pending: { resolve: (r: Uint8Array) => void; reject: (e: unknown) => void }[] = [];
  execute(): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }
}

function rig(backend: TpmBackend, opts: { id?: number; interfaceVersion?: { major: number; minor: number }; variant?: "mu" | "ts" | "stmm" } = {}) {
  const clock = new FakeClock();
  const device = new CrbDevice({ backend, localities: 5, trigger: "doorbell", channel: false });
  const partition = new TpmServicePartition({ device, ...opts });
  const bus = new FfaBus({ clock, channel: false });
  bus.addPartition(partition);
  const id = opts.id ?? ID;
  const req = (fn: number, a5 = 0, a6 = 0) => bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), B(id), 0n, 0n, B(fn), B(a5), B(a6)]);
  const page = (loc: number, reg: number) => loc * 0x1000 + reg;
  /** Locality 0 granted, READY, command loaded and CTRL_START latched. */
  const loaded = async () => {
    device.write32(page(0, R.LOC_CTRL), 1);
    expect(w32((await req(F.START, 1, 0))[4])).toBe(S.OK);
    device.write32(page(0, R.CTRL_REQ), 1);
    expect(w32((await req(F.START, 0, 0))[4])).toBe(S.OK);
    device.writeFifo(page(0, R.DATA_BUFFER), getRandomCommand(8));
    device.write32(page(0, R.CTRL_START), 1);
  };
  return { clock, device, partition, bus, req, page, loaded };
}

describe("TpmServicePartition: a command still running", () => {
  it("yields (FFA_YIELD, 10 ms in ns) and answers OK on the FFA_RUN after it completed; BUSY meanwhile", async () => {
    const backend = new ManualBackend();
    const { bus, req, loaded, partition, device, page } = rig(backend);
    await loaded();
    const y = await req(F.START, 0, 0);
    expect([y[0], y[1], y[2], y[3]]).toEqual([B(FFA_FN.YIELD), B((ID << 16) >>> 0), 10_000_000n, 0n]);
    expect(s32((await req(F.GET_INTERFACE_VERSION))[2])).toBe(E.BUSY);
    expect((await bus.call([B(FFA_FN.RUN), y[1]!]))[0]).toBe(B(FFA_FN.YIELD));
    backend.pending[0]!.resolve(RSP);
    const done = await bus.call([B(FFA_FN.RUN), y[1]!]);
    expect([done[0], done[4]]).toEqual([B(FFA_FN.MSG_SEND_DIRECT_RESP_64), B(S.OK)]);
    expect(partition.state.commandState).toBe("complete");
    expect(device.read32(page(0, R.CTRL_START))).toBe(0);
    expect(s32((await bus.call([B(FFA_FN.RUN), B((0x8009 << 16) >>> 0)]))[2])).toBe(E.INVALID_PARAMETERS); // no such partition
  });
  it("a backend failure answers DENIED and leaves the state READY", async () => {
    const backend = new ManualBackend();
    const { bus, req, loaded, partition } = rig(backend);
    await loaded();
    const y = await req(F.START, 0, 0);
    backend.pending[0]!.reject(new Error("backend died"));
    const done = await bus.call([B(FFA_FN.RUN), y[1]!]);
    expect(w32(done[4])).toBe(S.DENIED);
    expect(partition.state.commandState).toBe("ready");
  });
  it("removing the partition drops its request; FFA_RUN then answers INVALID_PARAMETERS", async () => {
    const backend = new ManualBackend();
    const { bus, req, loaded, partition } = rig(backend);
    await loaded();
    const y = await req(F.START, 0, 0);
    bus.removePartition(ID);
    expect(s32((await bus.call([B(FFA_FN.RUN), y[1]!]))[2])).toBe(E.INVALID_PARAMETERS);
    bus.addPartition(partition);
    expect(w32((await req(F.GET_INTERFACE_VERSION))[4])).toBe(S.OK_RESULTS_RETURNED);
  });
  it("a device that is not running answers DENIED to START", async () => {
    const { req, device, partition } = rig({ execute: async () => RSP });
    await partition.ready;
    device.killBackend(new Error("gone"));
    expect(w32((await req(F.START, 1, 0))[4])).toBe(S.DENIED);
    await partition.reset();
    expect(partition.state.phase).toBe("running");
    device.write32(R.LOC_CTRL, 1);
    expect(w32((await req(F.START, 1, 0))[4])).toBe(S.OK);
  });
});

describe("TpmServicePartition: options and other ABIs", () => {
  it("interfaceVersion, id, GET_CRB_INFO (StMM 1.1 only), 32-bit responses", async () => {
    const { req, bus } = rig({ execute: async () => RSP }, { id: 0x8005, interfaceVersion: { major: 1, minor: 1 }, variant: "stmm" });
    expect((await req(F.GET_INTERFACE_VERSION))[5]).toBe(0x10001n);
    const info = await req(F.GET_CRB_INFO);
    expect([w32(info[4]), info[5], info[6]]).toEqual([S.OK_RESULTS_RETURNED, B(R.CTRL_REQ), 0n]);
    const mu = rig({ execute: async () => RSP });
    expect(w32((await mu.req(F.GET_CRB_INFO))[4])).toBe(S.NOFUNC);
    const r32 = await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_32), B(0x8005), 0n, 0n, B(F.GET_INTERFACE_VERSION)]);
    expect(r32[0]).toBe(B(FFA_FN.MSG_SEND_DIRECT_RESP_32));
    expect(r32[1]).toBe(B((0x8005 << 16) >>> 0));
  });
  it("rejects a register-mode device, a bad id and a bad variant", () => {
    const backend = { execute: async () => RSP };
    expect(() => new TpmServicePartition({ device: new CrbDevice({ backend, localities: 5, channel: false }) })).toThrow(TpmArgumentError);
    const device = new CrbDevice({ backend, localities: 5, trigger: "doorbell", channel: false });
    expect(() => new TpmServicePartition({ device, id: 0x10000 })).toThrow(TpmArgumentError);
    expect(() => new TpmServicePartition({ device, variant: "x" as "mu" })).toThrow(TpmArgumentError);
    expect(new TpmServicePartition({ device }).id).toBe(0x8002);
  });
  it("REQ2 with the nil UUID is accepted; REQ2 is refused by a partition without the req2-recv bit", async () => {
    const { bus } = rig({ execute: async () => RSP });
    const r = await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ2), B(ID), 0n, 0n, B(F.GET_INTERFACE_VERSION)]);
    expect(r[0]).toBe(B(FFA_FN.MSG_SEND_DIRECT_RESP2));
    const device = new CrbDevice({ backend: { execute: async () => RSP }, localities: 5, trigger: "doorbell", channel: false });
    bus.addPartition(new TpmServicePartition({ device, id: 0x8003, properties: 0x101 }));
    const [u2, u3] = uuidToRegs(TPM_SERVICE_UUID);
    expect(s32((await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ2), B(0x8003), u2, u3, B(F.GET_INTERFACE_VERSION)]))[2])).toBe(E.DENIED);
    expect(uuidToRegs(NIL_UUID)).toEqual([0n, 0n]);
  });
});

describe("FfaBus: PARTITION_INFO_GET_REGS paging, tracing", () => {
  it("pages five descriptors per call with the current index", async () => {
    const bus = new FfaBus({ channel: false });
    for (let i = 0; i < 7; i++) bus.addPartition({ id: 0x8001 + i, uuids: [TPM_SERVICE_UUID], properties: 0x301, executionContexts: 1, discoverable: true, message: () => ({ type: "error", code: -1 }) });
    const first = await bus.call([B(FFA_FN.PARTITION_INFO_GET_REGS), 0n, 0n, 0n]);
    expect(first[2]! & 0xffffn).toBe(6n); // last index
    expect((first[2]! >> 16n) & 0xffffn).toBe(4n); // current index
    expect(first[15]! & 0xffffn).toBe(0x8005n);
    const second = await bus.call([B(FFA_FN.PARTITION_INFO_GET_REGS), 0n, 0n, 5n]);
    expect((second[2]! >> 16n) & 0xffffn).toBe(6n);
    expect([second[3]! & 0xffffn, second[6]! & 0xffffn, second[9]]).toEqual([0x8006n, 0x8007n, 0n]);
  });
  it("traces every call and answer on tpmkit:device:ffa", async () => {
    const clock = new FakeClock({ start: 5 });
    const bus = new FfaBus({ clock });
    const seen: FfaBusEvent[] = [];
    const fn = (m: unknown) => {
      if ((m as FfaBusEvent).bus === bus) seen.push(m as FfaBusEvent);
    };
    subscribe(FFA_BUS_CHANNEL, fn);
    try {
      await bus.call([B(FFA_FN.ID_GET)]);
    } finally {
      unsubscribe(FFA_BUS_CHANNEL, fn);
    }
    expect(seen.map((e) => e.type)).toEqual(["call", "answer"]);
    expect(seen[1]).toMatchObject({ caller: 0, time: 5 });
    expect(bus.calls).toBe(1);
  });
  it("a partition that throws is answered FFA_ERROR ABORTED, not a rejection", async () => {
    const bus = new FfaBus({ channel: false });
    bus.addPartition({ id: 0x8001, uuids: [TPM_SERVICE_UUID], properties: 0x301, executionContexts: 1, discoverable: true, message: () => { throw new Error("boom"); } });
    const r = await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), 0x8001n]);
    expect([r[0], s32(r[2])]).toEqual([B(FFA_FN.ERROR), E.ABORTED]);
    // the partition is not left busy
    expect(s32((await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), 0x8001n]))[2])).toBe(E.ABORTED);
  });
});

describe("fast-check: the partition alone", () => {
  it("answers every random message with a reply and never throws", async () => {
    const fc = (await import("fast-check")).default;
    for (const variant of ["mu", "ts", "stmm"] as const) {
      const { partition, device } = rig({ execute: async () => RSP }, { variant });
      await partition.ready;
      const fns = Object.values(F).map(B);
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 2n, 3n, 4n, 5n, ...fns)), { minLength: 0, maxLength: 18 }),
          fc.integer({ min: 0, max: 0xffff }),
          fc.constantFrom(1 as const, 2 as const),
          fc.nat(0x4fff),
          fc.nat(),
          async (regs, sender, version, off, val) => {
            device.write32(off & ~3, val & 7);
            let reply = await partition.message({ sender, receiver: ID, version, wide: true, regs });
            for (let i = 0; i < 3 && (reply.type === "interrupt" || reply.type === "yield"); i++) reply = await reply.resume();
            expect(["response", "error", "interrupt", "yield"]).toContain(reply.type);
            if (reply.type === "response") expect(reply.regs[4]! >= 0n && reply.regs[4]! < 1n << 32n).toBe(true);
          },
        ),
        { numRuns: 300 },
      );
    }
  });
});

describe("register layouts and callers", () => {
  it("REQ2 takes the TPM UUID as x2 = 0xaf4f0618a462b817, x3 = 0x613835589a08b386 (LE u64s of the RFC bytes)", async () => {
    expect(uuidToRegs(TPM_SERVICE_UUID)).toEqual([0xaf4f0618a462b817n, 0x613835589a08b386n]);
    const { bus } = rig({ execute: async () => RSP });
    const ok = await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ2), B(ID), 0xaf4f0618a462b817n, 0x613835589a08b386n, B(F.GET_INTERFACE_VERSION)]);
    expect([ok[0], w32(ok[4])]).toEqual([B(FFA_FN.MSG_SEND_DIRECT_RESP2), S.OK_RESULTS_RETURNED]);
    // the words swapped (a GUID byte-order mix-up) are another UUID
    const bad = await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ2), B(ID), 0x613835589a08b386n, 0xaf4f0618a462b817n, B(F.GET_INTERFACE_VERSION)]);
    expect(s32(bad[2])).toBe(E.INVALID_PARAMETERS);
  });
  it("each caller has its own RX buffer; MANAGE_LOCALITY close makes START DENIED", async () => {
    const { bus, req, device, page } = rig({ execute: async () => RSP });
    const el3 = bus.conduit(0xff01);
    await el3.call([B(FFA_FN.RXTX_MAP_64), 1n, 2n, 2n]);
    expect(bus.rxBuffer(0xff01)!.length).toBe(8192);
    expect(bus.rxBuffer()).toBeUndefined();
    const id = await el3.call([B(FFA_FN.ID_GET)]);
    expect(id[2]).toBe(0xff01n);
    const close = await el3.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), B(((0xff01 << 16) | ID) >>> 0), 0n, 0n, B(F.MANAGE_LOCALITY), 1n, 3n]);
    expect(w32(close[4])).toBe(S.OK);
    device.write32(page(3, R.LOC_CTRL), 1);
    expect(w32((await req(F.START, 1, 3))[4])).toBe(S.DENIED);
  });
});
