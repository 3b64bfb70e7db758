import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { FfaBus } from "./bus.js";
import { TpmServicePartition } from "./partition.js";
import { CrbDevice } from "../crb/index.js";
import { SoftTpm } from "../../softtpm/index.js";
import { FakeClock } from "../../core/clock.js";
import { getRandomCommand } from "../../testing/fake-backend.js";
import { FFA_FN, FFA_ERROR_CODE as E, TPM_SERVICE_FN as F, TPM_SERVICE_STATUS as S, TPM_SERVICE_UUID, uuidToWords, uuidToRegs, FFA_VERSION_1_0, FFA_VERSION_1_1, FFA_VERSION_1_2 } from "../../bus/ffa/abi.js";
import { s32, w32 } from "../../bus/ffa/conduit.js";
import { CRB_REG as R } from "../../bus/crb-registers.js";

const B = (n: number) => BigInt(n);
const ID = 0x8002;

async function setup(opts: { variant?: "mu" | "ts" | "stmm"; localitiesOpen?: boolean; idleBypass?: boolean; version?: number } = {}) {
  const clock = new FakeClock();
  const backend = new SoftTpm();
  const device = new CrbDevice({ backend, localities: 5, trigger: "doorbell", channel: false });
  const partition = new TpmServicePartition({ device, variant: opts.variant, localitiesOpen: opts.localitiesOpen, idleBypass: opts.idleBypass });
  const bus = new FfaBus({ clock, version: opts.version, channel: false });
  bus.addPartition(partition);
  await device.ready;
  /** DEN0138 call over DIRECT_REQ_64 (v1) or REQ2; returns the frame. */
  const svc = async (fn: number, a5 = 0, a6 = 0, v: 1 | 2 = 1, sender = 0, conduit: { call: (r: bigint[]) => Promise<bigint[]> | bigint[] } = bus) => {
    await device.ready;
    const [u2, u3] = uuidToRegs(TPM_SERVICE_UUID);
    const x1 = B(((sender << 16) | ID) >>> 0);
    const regs = v === 1 ? [B(FFA_FN.MSG_SEND_DIRECT_REQ_64), x1, 0n, 0n, B(fn), B(a5), B(a6)] : [B(FFA_FN.MSG_SEND_DIRECT_REQ2), x1, u2, u3, B(fn), B(a5), B(a6)];
    return conduit.call(regs);
  };
  const status = async (fn: number, a5 = 0, a6 = 0) => w32((await svc(fn, a5, a6))[4]);
  const start = (q: number, loc: number) => status(F.START, q, loc);
  const page = (loc: number, reg: number) => loc * 0x1000 + reg;
  return { clock, backend, device, partition, bus, svc, status, start, page };
}

describe("FfaBus core ABIs (DEN0077A §13)", () => {
  it("FFA_VERSION answers its version in w0, or 0xFFFFFFFF", async () => {
    const { bus } = await setup();
    expect((await bus.call([B(FFA_FN.VERSION), B(FFA_VERSION_1_2)]))[0]).toBe(B(FFA_VERSION_1_2));
    expect((await bus.call([B(FFA_FN.VERSION), B(FFA_VERSION_1_0)]))[0]).toBe(B(FFA_VERSION_1_2));
    expect((await bus.call([B(FFA_FN.VERSION), 0x20000n]))[0]).toBe(0xffffffffn);
    expect((await bus.call([B(FFA_FN.VERSION), 0x80010002n]))[0]).toBe(0xffffffffn);
    const old = new FfaBus({ version: FFA_VERSION_1_1, channel: false });
    expect((await old.call([B(FFA_FN.VERSION), B(FFA_VERSION_1_2)]))[0]).toBe(B(FFA_VERSION_1_1));
    expect(s32((await old.call([B(FFA_FN.PARTITION_INFO_GET_REGS)]))[2])).toBe(E.NOT_SUPPORTED);
  });
  it("ID_GET, SPM_ID_GET, FEATURES", async () => {
    const { bus } = await setup();
    const id = await bus.call([B(FFA_FN.ID_GET)]);
    expect([id[0], id[2]]).toEqual([B(FFA_FN.SUCCESS_32), 0n]);
    expect((await bus.call([B(FFA_FN.SPM_ID_GET)]))[2]).toBe(0x8000n);
    const map = await bus.call([B(FFA_FN.FEATURES), B(FFA_FN.RXTX_MAP_64)]);
    expect(map[0]).toBe(B(FFA_FN.SUCCESS_32));
    expect(Number(map[2]) >>> 16).toBe(64);
    expect((await bus.call([B(FFA_FN.FEATURES), B(FFA_FN.MSG_SEND_DIRECT_REQ2)]))[0]).toBe(B(FFA_FN.SUCCESS_32));
    for (const f of [1, 2, 3, 0x84000099]) expect(s32((await bus.call([B(FFA_FN.FEATURES), B(f)]))[2])).toBe(E.NOT_SUPPORTED);
    expect(s32((await bus.call([0x84000001n]))[2])).toBe(E.NOT_SUPPORTED);
  });
  it("RXTX_MAP / UNMAP / RX_RELEASE ownership", async () => {
    const { bus } = await setup();
    expect(s32((await bus.call([B(FFA_FN.RX_RELEASE)]))[2])).toBe(E.DENIED);
    expect(s32((await bus.call([B(FFA_FN.RXTX_MAP_64), 1n, 2n, 0n]))[2])).toBe(E.INVALID_PARAMETERS);
    expect((await bus.call([B(FFA_FN.RXTX_MAP_64), 0x1000n, 0x2000n, 1n]))[0]).toBe(B(FFA_FN.SUCCESS_32));
    expect(bus.rxBuffer()!.length).toBe(4096);
    expect(s32((await bus.call([B(FFA_FN.RXTX_MAP_64), 0x1000n, 0x2000n, 1n]))[2])).toBe(E.DENIED);
    expect(s32((await bus.call([B(FFA_FN.RX_RELEASE)]))[2])).toBe(E.DENIED); // not held
    expect((await bus.call([B(FFA_FN.RXTX_UNMAP)]))[0]).toBe(B(FFA_FN.SUCCESS_32));
    expect(bus.rxBuffer()).toBeUndefined();
    expect(s32((await bus.call([B(FFA_FN.RXTX_UNMAP)]))[2])).toBe(E.INVALID_PARAMETERS);
  });
});

describe("PARTITION_INFO_GET (DEN0077A §14.9, U-Boot emulator errors)", () => {
  const pig = (uuid: [number, number, number, number], flags = 0) => [B(FFA_FN.PARTITION_INFO_GET), ...uuid.map(B), B(flags)];
  const tpmWords = uuidToWords(TPM_SERVICE_UUID);
  it("count-only, descriptors v1.1 (24 bytes) and v1.0 (8 bytes), nil = all, RX_RELEASE", async () => {
    const { bus } = await setup();
    const c = await bus.call(pig([0, 0, 0, 0], 1));
    expect([c[0], c[2]]).toEqual([B(FFA_FN.SUCCESS_32), 1n]);
    expect(s32((await bus.call(pig(tpmWords)))[2])).toBe(E.DENIED); // no RX mapped
    await bus.call([B(FFA_FN.RXTX_MAP_64), 0x1000n, 0x2000n, 1n]);
    const r = await bus.call(pig(tpmWords));
    expect([r[0], r[2], r[3]]).toEqual([B(FFA_FN.SUCCESS_32), 1n, 24n]);
    const rx = bus.rxBuffer()!;
    const dv = new DataView(rx.buffer, rx.byteOffset);
    expect([dv.getUint16(0, true), dv.getUint16(2, true), dv.getUint32(4, true)]).toEqual([ID, 1, 0x301]);
    expect(Buffer.from(rx.subarray(8, 24)).toString("hex")).toBe(TPM_SERVICE_UUID.replace(/-/g, ""));
    expect(s32((await bus.call(pig([0, 0, 0, 0])))[2])).toBe(E.BUSY); // not released
    expect((await bus.call([B(FFA_FN.RX_RELEASE)]))[0]).toBe(B(FFA_FN.SUCCESS_32));
    expect(s32((await bus.call(pig([1, 2, 3, 4])))[2])).toBe(E.INVALID_PARAMETERS);
    await bus.call([B(FFA_FN.VERSION), B(FFA_VERSION_1_0)]);
    const v10 = await bus.call(pig([0, 0, 0, 0]));
    expect([v10[2], v10[3]]).toEqual([1n, 0n]);
  });
  it("RX too small → NO_MEMORY", async () => {
    const { bus } = await setup();
    for (let i = 0; i < 200; i++) bus.addPartition({ id: 0x9000 + i, uuids: [TPM_SERVICE_UUID], properties: 1, executionContexts: 1, discoverable: true, message: () => ({ type: "error", code: -1 }) });
    await bus.call([B(FFA_FN.RXTX_MAP_64), 0x1000n, 0x2000n, 1n]);
    expect(s32((await bus.call(pig([0, 0, 0, 0])))[2])).toBe(E.NO_MEMORY);
  });
  it("absent fault and hot-plug", async () => {
    const { bus, partition } = await setup();
    partition.faults.absent = true;
    expect(s32((await bus.call(pig(tpmWords, 1)))[2])).toBe(E.INVALID_PARAMETERS);
    partition.faults.absent = false;
    expect((await bus.call(pig(tpmWords, 1)))[2]).toBe(1n);
    expect(bus.removePartition(ID)).toBe(true);
    expect(s32((await bus.call(pig(tpmWords, 1)))[2])).toBe(E.INVALID_PARAMETERS);
    bus.addPartition(partition);
    expect((await bus.call(pig(tpmWords, 1)))[2]).toBe(1n);
    expect(() => bus.addPartition(partition)).toThrow();
  });
  it("PARTITION_INFO_GET_REGS (v1.2) packs descriptors in registers", async () => {
    const { bus } = await setup();
    const [u1, u2] = uuidToRegs(TPM_SERVICE_UUID);
    const r = await bus.call([B(FFA_FN.PARTITION_INFO_GET_REGS), u1, u2, 0n]);
    expect(r[0]).toBe(B(FFA_FN.SUCCESS_64));
    expect(r[2]).toBe(0n | (0n << 16n) | (24n << 48n));
    expect(r[3]).toBe(B(ID) | (1n << 16n) | (0x301n << 32n));
    expect([r[4], r[5]]).toEqual([0xaf4f0618a462b817n, 0x613835589a08b386n]);
    expect(s32((await bus.call([B(FFA_FN.PARTITION_INFO_GET_REGS), u1, u2, 1n]))[2])).toBe(E.INVALID_PARAMETERS);
  });
});

describe("direct messages v1 and v2", () => {
  it("GET_INTERFACE_VERSION over REQ_64, REQ_32 and REQ2 (UUID in x2/x3)", async () => {
    const { bus, svc } = await setup();
    const r1 = await svc(F.GET_INTERFACE_VERSION);
    expect(r1[0]).toBe(B(FFA_FN.MSG_SEND_DIRECT_RESP_64));
    expect(r1[1]).toBe(B((ID << 16) >>> 0));
    expect([r1[4], r1[5]]).toEqual([B(S.OK_RESULTS_RETURNED), 0x10000n]);
    const r2 = await svc(F.GET_INTERFACE_VERSION, 0, 0, 2);
    expect(r2[0]).toBe(B(FFA_FN.MSG_SEND_DIRECT_RESP2));
    expect([r2[2], r2[3], r2[4], r2[5]]).toEqual([0n, 0n, B(S.OK_RESULTS_RETURNED), 0x10000n]);
    const r32 = await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_32), B(ID), 0n, 0n, B(F.GET_INTERFACE_VERSION)]);
    expect(r32[0]).toBe(B(FFA_FN.MSG_SEND_DIRECT_RESP_32));
    // wrong UUID in x2/x3, wrong sender, flags in w2, unknown receiver
    expect(s32((await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ2), B(ID), 1n, 2n, B(F.GET_INTERFACE_VERSION)]))[2])).toBe(E.INVALID_PARAMETERS);
    expect(s32((await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), B((5 << 16) | ID), 0n]))[2])).toBe(E.INVALID_PARAMETERS);
    expect(s32((await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), B(ID), 1n]))[2])).toBe(E.INVALID_PARAMETERS);
    expect(s32((await bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), 0x8009n]))[2])).toBe(E.INVALID_PARAMETERS);
  });
  it("statuses: NOFUNC, NOTSUP (features, notifications), StMM INVARG", async () => {
    const { status } = await setup();
    expect(await status(0x0f00ff01)).toBe(S.NOFUNC);
    expect(await status(F.GET_FEATURE_INFO, 0xfea70000)).toBe(S.NOTSUP);
    for (const f of [F.REGISTER_FOR_NOTIFICATION, F.UNREGISTER_FROM_NOTIFICATION, F.FINISH_NOTIFIED]) expect(await status(f)).toBe(S.NOTSUP);
    const st = await setup({ variant: "stmm" });
    expect(await st.status(0x0f00ff01)).toBe(S.INVARG);
    expect(await st.status(F.GET_FEATURE_INFO, 0x1234)).toBe(S.INVARG);
  });
  it("a second request to a busy partition → BUSY; FFA_RUN resumes", async () => {
    const { bus, svc, partition } = await setup();
    partition.faults.interruptEvery = 1; // storm
    const r = await svc(F.GET_INTERFACE_VERSION);
    expect(r[0]).toBe(B(FFA_FN.INTERRUPT));
    expect(r[1]).toBe(B((ID << 16) >>> 0));
    expect(s32((await svc(F.GET_INTERFACE_VERSION))[2])).toBe(E.BUSY);
    expect((await bus.call([B(FFA_FN.RUN), r[1]!]))[0]).toBe(B(FFA_FN.INTERRUPT));
    partition.faults.interruptEvery = 0;
    const done = await bus.call([B(FFA_FN.RUN), r[1]!]);
    expect([done[0], done[4]]).toEqual([B(FFA_FN.MSG_SEND_DIRECT_RESP_64), B(S.OK_RESULTS_RETURNED)]);
    expect(s32((await bus.call([B(FFA_FN.RUN), r[1]!]))[2])).toBe(E.DENIED); // nothing to run
  });
  it("faults: busyForMs on the bus clock, ffaError, neverAnswers yields", async () => {
    const { bus, svc, partition, clock } = await setup();
    partition.faults.busyForMs = 50;
    expect(s32((await svc(F.GET_INTERFACE_VERSION))[2])).toBe(E.BUSY);
    await clock.advance(49);
    expect(s32((await svc(F.GET_INTERFACE_VERSION))[2])).toBe(E.BUSY);
    await clock.advance(1);
    expect((await svc(F.GET_INTERFACE_VERSION))[4]).toBe(B(S.OK_RESULTS_RETURNED));
    partition.faults.ffaError = E.RETRY;
    expect(s32((await svc(F.GET_INTERFACE_VERSION))[2])).toBe(E.RETRY);
    partition.faults.ffaError = undefined;
    partition.faults.neverAnswers = true;
    const y = await svc(F.GET_INTERFACE_VERSION);
    expect([y[0], y[1], y[2]]).toEqual([B(FFA_FN.YIELD), B((ID << 16) >>> 0), 10_000_000n]);
    for (let i = 0; i < 5; i++) expect((await bus.call([B(FFA_FN.RUN), y[1]!]))[0]).toBe(B(FFA_FN.YIELD));
  });
});

describe("START, mu state machines (TpmServiceLib)", () => {
  it("locality SM: request, re-request, other → DENIED, relinquish, neither → DENIED, ≥5 INVARG", async () => {
    const { device, start, page, partition } = await setup();
    expect(await start(1, 5)).toBe(S.INVARG);
    expect(await start(1, 0)).toBe(S.DENIED); // neither bit
    device.write32(page(0, R.LOC_CTRL), 1);
    expect(await start(1, 0)).toBe(S.OK);
    expect(device.read32(page(0, R.LOC_STATE)) & 0x9e).toBe(0x82);
    expect(device.read32(page(0, R.LOC_CTRL))).toBe(0); // cleaned
    device.write32(page(1, R.LOC_CTRL), 1);
    expect(await start(1, 1)).toBe(S.DENIED);
    device.write32(page(1, R.LOC_CTRL), 2);
    expect(await start(1, 1)).toBe(S.DENIED); // not the active one
    device.write32(page(0, R.LOC_CTRL), 2);
    expect(await start(1, 0)).toBe(S.OK);
    expect(partition.state.activeLocality).toBe(-1);
    expect(await start(2, 0)).toBe(S.INVARG); // bad qualifier
    expect(await start(0, 0)).toBe(S.INVARG); // command from a locality that is not active
  });
  it("command SM: IDLE/READY/COMPLETE edges, no idle bypass", async () => {
    const { device, start, page, partition } = await setup();
    device.write32(page(0, R.LOC_CTRL), 1);
    await start(1, 0);
    device.write32(page(0, R.CTRL_START), 1);
    expect(await start(0, 0)).toBe(S.DENIED); // IDLE + start
    expect(device.read32(page(0, R.CTRL_START))).toBe(0); // the active block is cleaned after every START
    expect(await start(0, 0)).toBe(S.DENIED); // IDLE + nothing
    device.write32(page(0, R.CTRL_REQ), 2);
    expect(await start(0, 0)).toBe(S.DENIED); // IDLE + goIdle
    device.write32(page(0, R.CTRL_REQ), 1);
    expect(await start(0, 0)).toBe(S.OK);
    expect(partition.state.commandState).toBe("ready");
    expect(device.read32(page(0, R.CTRL_REQ))).toBe(0);
    expect(device.read32(page(0, R.CTRL_STS)) & 2).toBe(0);
    expect(await start(0, 0)).toBe(S.DENIED); // READY + nothing
    device.write32(page(0, R.CTRL_REQ), 1);
    expect(await start(0, 0)).toBe(S.OK); // READY + cmdReady stays
    device.writeFifo(page(0, R.DATA_BUFFER), getRandomCommand(8));
    device.write32(page(0, R.CTRL_START), 1);
    expect(await start(0, 0)).toBe(S.OK);
    expect(partition.state.commandState).toBe("complete");
    expect(device.read32(page(0, R.CTRL_START))).toBe(0);
    device.write32(page(0, R.CTRL_START), 1);
    expect(await start(0, 0)).toBe(S.DENIED); // COMPLETE + start without bypass
    device.write32(page(0, R.CTRL_REQ), 1);
    expect(await start(0, 0)).toBe(S.DENIED); // COMPLETE + cmdReady without bypass
    device.write32(page(0, R.CTRL_REQ), 2);
    expect(await start(0, 0)).toBe(S.OK);
    expect(partition.state.commandState).toBe("idle");
    expect(device.read32(page(0, R.CTRL_STS)) & 2).toBe(2);
    expect(device.readFifo(page(0, R.DATA_BUFFER), 4)).toEqual(new Uint8Array(4)); // zeroed
  });
  it("idle bypass: COMPLETE takes cmdReady and a rerun", async () => {
    const { device, start, page, partition } = await setup({ idleBypass: true });
    device.write32(page(0, R.LOC_CTRL), 1);
    await start(1, 0);
    device.write32(page(0, R.CTRL_REQ), 1);
    await start(0, 0);
    device.writeFifo(page(0, R.DATA_BUFFER), getRandomCommand(8));
    device.write32(page(0, R.CTRL_START), 1);
    expect(await start(0, 0)).toBe(S.OK);
    device.writeFifo(page(0, R.DATA_BUFFER), getRandomCommand(8));
    device.write32(page(0, R.CTRL_START), 1);
    expect(await start(0, 0)).toBe(S.OK); // rerun
    device.write32(page(0, R.CTRL_REQ), 1);
    expect(await start(0, 0)).toBe(S.OK);
    expect(partition.state.commandState).toBe("ready");
  });
  it("NOMEM for a command longer than the buffer; DENIED fault; closed localities and MANAGE_LOCALITY", async () => {
    const t = await setup();
    t.device.write32(t.page(0, R.LOC_CTRL), 1);
    await t.start(1, 0);
    t.device.write32(t.page(0, R.CTRL_REQ), 1);
    await t.start(0, 0);
    t.device.writeFifo(t.page(0, R.DATA_BUFFER), new Uint8Array([0x80, 1, 0, 0, 0x20, 0, 0, 0, 0, 0]));
    t.device.write32(t.page(0, R.CTRL_START), 1);
    expect(await t.start(0, 0)).toBe(S.NOMEM);
    t.partition.faults.denied = true;
    expect(await t.start(1, 0)).toBe(S.DENIED);

    const c = await setup({ localitiesOpen: false });
    c.device.write32(c.page(0, R.LOC_CTRL), 1);
    expect(await c.start(1, 0)).toBe(S.DENIED);
    expect(w32((await c.svc(F.MANAGE_LOCALITY, 0, 0))[4])).toBe(S.DENIED); // not from 0xFFxx
    const el3 = c.bus.conduit(0xff00);
    expect(w32((await c.svc(F.MANAGE_LOCALITY, 0, 0, 1, 0xff00, el3))[4])).toBe(S.OK);
    c.device.write32(c.page(0, R.LOC_CTRL), 1);
    expect(await c.start(1, 0)).toBe(S.OK);
    expect(w32((await c.svc(F.MANAGE_LOCALITY, 2, 0, 1, 0xff00, el3))[4])).toBe(S.INVARG);
  });
});

describe("variants", () => {
  it("TS: locality 4 NOTSUP, CTRL_REQ ignored, INV_CRB_CTRL_DATA, x3 ≠ 0 dropped", async () => {
    const t = await setup({ variant: "ts" });
    expect(await t.start(1, 4)).toBe(S.NOTSUP);
    t.device.write32(t.page(0, R.LOC_CTRL), 1);
    expect(await t.start(1, 0)).toBe(S.OK);
    t.device.write32(t.page(0, R.CTRL_REQ), 1);
    expect(await t.start(0, 0)).toBe(S.INV_CRB_CTRL_DATA);
    expect(t.device.read32(t.page(0, R.CTRL_REQ))).toBe(1); // never cleared
    t.device.write32(t.page(0, R.CTRL_START), 1);
    expect(await t.start(0, 0)).toBe(S.INV_CRB_CTRL_DATA); // length 0
    t.device.writeFifo(t.page(0, R.DATA_BUFFER), getRandomCommand(8));
    t.device.write32(t.page(0, R.CTRL_START), 1);
    expect(await t.start(0, 0)).toBe(S.OK);
    t.device.write32(t.page(1, R.LOC_CTRL), 1);
    expect(await t.start(1, 1)).toBe(S.OK); // takes it over
    expect(t.partition.state.activeLocality).toBe(1);
    const r = await t.bus.call([B(FFA_FN.MSG_SEND_DIRECT_REQ_64), B(ID), 0n, 1n, B(F.GET_INTERFACE_VERSION)]);
    expect(s32(r[2])).toBe(E.INVALID_PARAMETERS);
  });
  it("StMM: locality 4 DENIED, lower locality DENIED, CTRL_REQ cleared OK", async () => {
    const t = await setup({ variant: "stmm" });
    expect(await t.start(1, 4)).toBe(S.DENIED);
    t.device.write32(t.page(2, R.LOC_CTRL), 1);
    expect(await t.start(1, 2)).toBe(S.OK);
    t.device.write32(t.page(1, R.LOC_CTRL), 1);
    expect(await t.start(1, 1)).toBe(S.DENIED);
    t.device.write32(t.page(3, R.LOC_CTRL), 1);
    expect(await t.start(1, 3)).toBe(S.OK);
    t.device.write32(t.page(3, R.CTRL_REQ), 1);
    expect(await t.start(0, 3)).toBe(S.OK);
    expect(t.device.read32(t.page(3, R.CTRL_REQ))).toBe(0);
    expect(t.device.read32(t.page(3, R.CTRL_STS)) & 2).toBe(2); // idle unchanged
    expect(await t.start(0, 3)).toBe(S.INV_CRB_CTRL_DATA);
  });
});

describe("end to end: a raw call sequence gets a TPM response from SoftTpm", () => {
  it("request locality 0, cmdReady, GetRandom, START, read the response", async () => {
    const { device, start, page } = await setup();
    const startup = new Uint8Array([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0]);
    device.write32(page(0, R.LOC_CTRL), 1);
    expect(await start(1, 0)).toBe(S.OK);
    device.write32(page(0, R.CTRL_REQ), 1);
    expect(await start(0, 0)).toBe(S.OK);
    const responses: Uint8Array[] = [];
    for (const cmd of [startup, getRandomCommand(16)]) {
      device.writeFifo(page(0, R.DATA_BUFFER), cmd);
      device.write32(page(0, R.CTRL_START), 1);
      expect(await start(0, 0)).toBe(S.OK);
      expect(device.read32(page(0, R.CTRL_START))).toBe(0); // mu: the command ran before START returned
      expect(device.read32(page(0, R.CTRL_STS)) & 1).toBe(0);
      const hdr = device.readFifo(page(0, R.DATA_BUFFER), 10);
      const len = ((hdr[2]! << 24) | (hdr[3]! << 16) | (hdr[4]! << 8) | hdr[5]!) >>> 0;
      responses.push(device.readFifo(page(0, R.DATA_BUFFER), len));
      device.write32(page(0, R.CTRL_REQ), 2); // goIdle (COMPLETE → IDLE zeroes the buffer)
      expect(await start(0, 0)).toBe(S.OK);
      expect(device.readFifo(page(0, R.DATA_BUFFER), 10)).toEqual(new Uint8Array(10));
      device.write32(page(0, R.CTRL_REQ), 1);
      expect(await start(0, 0)).toBe(S.OK);
    }
    const rsp = responses[1]!;
    expect(rsp.length).toBe(10 + 2 + 16);
    expect(rsp[0]).toBe(0x80);
    expect(((rsp[6]! << 24) | (rsp[7]! << 16) | (rsp[8]! << 8) | rsp[9]!) >>> 0).toBe(0); // TPM_RC_SUCCESS
    expect((rsp[10]! << 8) | rsp[11]!).toBe(16);
    device.write32(page(0, R.LOC_CTRL), 2);
    expect(await start(1, 0)).toBe(S.OK);
    expect(device.read32(page(0, R.LOC_STATE)) & 0x82).toBe(0x80); // valid, not assigned
  });
});

describe("fast-check: random frames never throw and always get a well-formed answer", () => {
  const ok = new Set<bigint>([FFA_FN.SUCCESS_32, FFA_FN.SUCCESS_64, FFA_FN.ERROR, FFA_FN.MSG_SEND_DIRECT_RESP_32, FFA_FN.MSG_SEND_DIRECT_RESP_64, FFA_FN.MSG_SEND_DIRECT_RESP2, FFA_FN.INTERRUPT, FFA_FN.YIELD, FFA_VERSION_1_2, 0xffffffff].map(B));
  const fnIds = Object.values(FFA_FN).map(B);
  const reg = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 2n, 4n, B(ID), B((ID << 16) >>> 0), B(F.START), B(F.GET_INTERFACE_VERSION), B(F.MANAGE_LOCALITY)));
  it("bus and partition", async () => {
    const t = await setup();
    t.partition.faults.interruptEvery = 3;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...fnIds, 0n, 0xffffffffffffffffn), fc.array(reg, { maxLength: 20 }), async (x0, rest) => {
        if (rest.length > 3 && rest[0]! % 7n === 0n) t.device.write32(Number(rest[1]! % 0x5000n) & ~3, Number(rest[2]! & 0xffffffffn));
        const out = await t.bus.call([x0, ...rest]);
        expect(out).toHaveLength(18);
        expect(ok.has(out[0]!)).toBe(true);
        for (const r of out) expect(r >= 0n && r < 1n << 64n).toBe(true);
      }),
      { numRuns: 400 },
    );
    // malformed frames
    for (const bad of [undefined, null, "x", [1, 2], [1.5], {}] as unknown[]) {
      const out = await t.bus.call(bad as bigint[]);
      expect(out[0]).toBe(B(FFA_FN.ERROR));
    }
  });
});
