import { describe, expect, it } from "vitest";
import { Tpm } from "../../client/tpm.js";
import { Chip } from "../../core/chip.js";
import { FakeClock } from "../../core/clock.js";
import { SoftTpm } from "../../softtpm/index.js";
import { CrbDevice } from "../../devices/crb/index.js";
import { FfaError, ProbeDeferredError, TpmAbortError, TpmNotFoundError, TpmTimeoutError } from "../../errors/index.js";
import { CRB_REG } from "../../bus/crb-registers.js";
import { FFA_ERROR_CODE, FFA_FN, FFA_PARTITION_PROP as P, TPM_SERVICE_FN, TPM_SERVICE_STATUS, TPM_SERVICE_UUID, uuidToRegs, uuidToWords } from "../../bus/ffa/abi.js";
import { ffaFrame, w32, type FfaConduit, type FfaRegs } from "../../bus/ffa/conduit.js";
import { crb } from "./crb.js";
import { ffaStart, type FfaStartOptions } from "./start-ffa.js";
import { describeConformance } from "../../../test/conformance.js";
import type { CrbStartContext } from "./start-method.js";

const SUCCESS = BigInt(FFA_FN.SUCCESS_32);
const ERROR = BigInt(FFA_FN.ERROR);
const err = (code: number): bigint[] => [ERROR, 0n, BigInt.asUintN(64, BigInt(code))];
const fn = (r: FfaRegs) => w32(r[0]);
const DIRECT: readonly number[] = [FFA_FN.MSG_SEND_DIRECT_REQ_32, FFA_FN.MSG_SEND_DIRECT_REQ_64, FFA_FN.MSG_SEND_DIRECT_REQ2];
const isDirect = (r: FfaRegs) => DIRECT.includes(fn(r));

/**
 * A scripted FF-A framework with one TPM service partition in front of a doorbell CrbDevice: just
 * enough of DEN0077A and DEN0138 for the driver side, independent of the device-side models.
 */
class ScriptedBus implements FfaConduit {
  readonly calls: bigint[][] = [];
  version = 0x10002;
  regsFeature = true;
  req2Feature = true;
  rxMode = false;
  partitions: { id: number; props: number }[] = [{ id: 0x8002, props: P.DIRECT_REQ_RECV | P.AARCH64 }];
  interfaceVersion = 0x10000;
  /** Answer this frame instead of processing a direct request (BUSY, statuses...). */
  onDirect?: (r: FfaRegs) => bigint[] | undefined;
  /** Preempt the next direct requests: this many FFA_INTERRUPT (or FFA_YIELD) answers first. */
  preempt = 0;
  preemptWith: "interrupt" | "yield" = "interrupt";
  #pending: FfaRegs | undefined;
  #rx = new Uint8Array(4096);
  rxOwned = false;
  mapped = false;

  constructor(readonly device?: CrbDevice) {}

  rxBufferFn(id: number): Uint8Array | undefined {
    return this.mapped && id === 0 ? this.#rx : undefined;
  }

  call(regs: FfaRegs): bigint[] {
    this.calls.push([...regs]);
    return ffaFrame(this.#answer(regs));
  }

  #answer(r: FfaRegs): bigint[] {
    const [u0, u1, u2, u3] = uuidToWords(TPM_SERVICE_UUID);
    const [x2, x3] = uuidToRegs(TPM_SERVICE_UUID);
    switch (fn(r)) {
      case FFA_FN.VERSION:
        return [BigInt(this.version)];
      case FFA_FN.ID_GET:
        return [SUCCESS, 0n, 0n];
      case FFA_FN.FEATURES: {
        const f = w32(r[1]);
        if (f === FFA_FN.PARTITION_INFO_GET_REGS) return this.regsFeature ? [SUCCESS] : err(-1);
        if (f === FFA_FN.MSG_SEND_DIRECT_REQ2) return this.req2Feature ? [SUCCESS] : err(-1);
        if (f === FFA_FN.RXTX_MAP_64) return this.rxMode ? [SUCCESS, 0n, 0n] : err(-1);
        return err(-1);
      }
      case FFA_FN.RXTX_MAP_64:
        if (!this.rxMode || this.mapped) return err(FFA_ERROR_CODE.DENIED);
        this.mapped = true;
        return [SUCCESS];
      case FFA_FN.RX_RELEASE:
        if (!this.rxOwned) return err(FFA_ERROR_CODE.DENIED);
        this.rxOwned = false;
        return [SUCCESS];
      case FFA_FN.PARTITION_INFO_GET: {
        if (w32(r[1]) !== u0 || w32(r[2]) !== u1 || w32(r[3]) !== u2 || w32(r[4]) !== u3 || this.partitions.length === 0) return err(FFA_ERROR_CODE.INVALID_PARAMETERS);
        // count only: no RX buffer involved
        if (w32(r[5]) & 1) return [SUCCESS, 0n, BigInt(this.partitions.length), 0n];
        if (!this.mapped) return err(FFA_ERROR_CODE.DENIED);
        if (this.rxOwned) return err(FFA_ERROR_CODE.BUSY);
        const dv = new DataView(this.#rx.buffer);
        this.partitions.forEach((p, i) => {
          dv.setUint16(i * 24, p.id, true);
          dv.setUint16(i * 24 + 2, 1, true);
          dv.setUint32(i * 24 + 4, p.props, true);
        });
        this.rxOwned = true;
        return [SUCCESS, 0n, BigInt(this.partitions.length), 24n];
      }
      case FFA_FN.PARTITION_INFO_GET_REGS: {
        if (!this.regsFeature) return err(-1);
        if (r[1] !== x2 || r[2] !== x3 || this.partitions.length === 0) return err(FFA_ERROR_CODE.INVALID_PARAMETERS);
        const n = BigInt(this.partitions.length - 1);
        const out = [BigInt(FFA_FN.SUCCESS_64), 0n, n | (n << 16n) | (24n << 48n)];
        for (const p of this.partitions) out.push(BigInt(p.id) | (1n << 16n) | (BigInt(p.props) << 32n), x2, x3);
        return out;
      }
      case FFA_FN.RUN:
        if (!this.#pending) return err(FFA_ERROR_CODE.INVALID_PARAMETERS);
        if (r[1] !== 0x80020000n) return err(FFA_ERROR_CODE.INVALID_PARAMETERS);
        return this.#direct(this.#pending);
    }
    if (isDirect(r)) {
      const o = this.onDirect?.(r);
      if (o) return o;
      return this.#direct(r);
    }
    return err(FFA_ERROR_CODE.NOT_SUPPORTED);
  }

  #direct(r: FfaRegs): bigint[] {
    if (this.preempt > 0) {
      this.preempt--;
      this.#pending = r;
      return [BigInt(this.preemptWith === "interrupt" ? FFA_FN.INTERRUPT : FFA_FN.YIELD), 0x80020000n];
    }
    this.#pending = undefined;
    const f = fn(r);
    const resp = f === FFA_FN.MSG_SEND_DIRECT_REQ2 ? FFA_FN.MSG_SEND_DIRECT_RESP2 : f === FFA_FN.MSG_SEND_DIRECT_REQ_32 ? FFA_FN.MSG_SEND_DIRECT_RESP_32 : FFA_FN.MSG_SEND_DIRECT_RESP_64;
    const ids = ((r[1]! & 0xffffn) << 16n) | ((r[1]! >> 16n) & 0xffffn);
    const head = [BigInt(resp), ids, 0n, 0n];
    switch (w32(r[4])) {
      case TPM_SERVICE_FN.GET_INTERFACE_VERSION:
        return [...head, BigInt(TPM_SERVICE_STATUS.OK_RESULTS_RETURNED), BigInt(this.interfaceVersion)];
      case TPM_SERVICE_FN.START: {
        const q = w32(r[5]);
        const l = w32(r[6]);
        const s = !this.device ? "ok" : q > 1 ? "invalid" : this.device.doorbell(q === 0 ? "command" : "locality", l);
        const st = s === "ok" ? TPM_SERVICE_STATUS.OK : s === "denied" ? TPM_SERVICE_STATUS.DENIED : TPM_SERVICE_STATUS.INVARG;
        return [...head, BigInt(st)];
      }
      default:
        return [...head, BigInt(TPM_SERVICE_STATUS.NOFUNC)];
    }
  }
}

/** A ScriptedBus that lends RX buffers (FfaRxTxHost). */
class RxBus extends ScriptedBus {
  rxBuffer(id: number): Uint8Array | undefined {
    return this.rxBufferFn(id);
  }
}

function stack(opts: Partial<FfaStartOptions> = {}, setup?: (bus: ScriptedBus) => void) {
  const device = new CrbDevice({ backend: new SoftTpm(), trigger: "doorbell", localities: 5 });
  const bus = new ScriptedBus(device);
  setup?.(bus);
  const clock = new FakeClock({ auto: true });
  const start = ffaStart({ bus, ...opts });
  const transport = crb({ mmio: device, start });
  return { device, bus, clock, start, transport };
}

const starts = (bus: ScriptedBus) => bus.calls.filter((r) => isDirect(r) && w32(r[4]) === TPM_SERVICE_FN.START);

describe("ffaStart over crb: open, commands, localities", () => {
  it("opens through Tpm.open and runs commands at localities 0–4 with five START calls each", async () => {
    const { bus, clock, start, transport } = stack();
    await using tpm = await Tpm.open(transport, { clock });
    expect(start.partition).toMatchObject({ id: 0x8002, callerId: 0, ffaVersion: 0x10002, messaging: "v1-64", discovery: "regs", interfaceVersion: { major: 1, minor: 0 } });
    // the probe, as Linux: VERSION, ID_GET, FEATURES(_REGS), PARTITION_INFO_GET_REGS, GET_INTERFACE_VERSION
    expect(bus.calls.slice(0, 5).map(fn)).toEqual([FFA_FN.VERSION, FFA_FN.ID_GET, FFA_FN.FEATURES, FFA_FN.PARTITION_INFO_GET_REGS, FFA_FN.MSG_SEND_DIRECT_REQ_64]);
    expect(w32(bus.calls[0]![1])).toBe(0x10002);
    expect(w32(bus.calls[5 - 1]![4])).toBe(TPM_SERVICE_FN.GET_INTERFACE_VERSION);
    for (let loc = 0; loc <= 4; loc++) {
      const before = bus.calls.length;
      expect(await tpm.getRandom(8, { locality: loc })).toHaveLength(8);
      const cmd = bus.calls.slice(before);
      // kernel steps 1, 2, 3, 6, 7: request locality, cmdReady, start, goIdle, relinquish
      expect(cmd.map((r) => [fn(r), w32(r[5]), w32(r[6])])).toEqual([
        [FFA_FN.MSG_SEND_DIRECT_REQ_64, 1, loc],
        [FFA_FN.MSG_SEND_DIRECT_REQ_64, 0, loc],
        [FFA_FN.MSG_SEND_DIRECT_REQ_64, 0, loc],
        [FFA_FN.MSG_SEND_DIRECT_REQ_64, 0, loc],
        [FFA_FN.MSG_SEND_DIRECT_REQ_64, 1, loc],
      ]);
      for (const r of cmd) {
        expect(r[1]).toBe(0x8002n); // sender 0 << 16 | receiver 0x8002
        expect(r[2]).toBe(0n);
        expect(r[3]).toBe(0n);
        expect(w32(r[4])).toBe(TPM_SERVICE_FN.START);
      }
    }
    expect(start.stats.busyRetries).toBe(0);
  });

  it("counts the FF-A calls: 5 at probe, 4 more for open's locality/ready/idle/relinquish, 5 per command", async () => {
    const { bus, clock, transport, start } = stack();
    const chip = new Chip(transport, { clock });
    await chip.open();
    expect(start.stats.calls).toBe(9);
    expect(bus.calls.slice(5).map((r) => [w32(r[5]), w32(r[6])])).toEqual([[1, 0], [0, 0], [0, 0], [1, 0]]);
    expect(start.stats.messages).toBe(5); // GET_INTERFACE_VERSION + four STARTs
    const tpm = await Tpm.open(chip, { clock }); // TPM2_Startup: one command
    expect(start.stats.calls).toBe(14);
    await tpm.getRandom(8);
    expect(start.stats.calls).toBe(19);
    expect(start.stats.messages).toBe(15);
    await tpm.close();
  });

  it("with hasIdle: false sends three STARTs per command, as kernels before v6.18", async () => {
    const { bus, clock, transport, start } = stack({ hasIdle: false });
    await using tpm = await Tpm.open(transport, { clock });
    expect(start.hasIdle).toBe(false);
    const before = bus.calls.length;
    await tpm.getRandom(8, { locality: 1 });
    expect(bus.calls.slice(before).map((r) => [w32(r[5]), w32(r[6])])).toEqual([[1, 1], [0, 1], [1, 1]]);
  });

  it("runs commands with DIRECT_REQ2 end to end", async () => {
    const { bus, clock, transport, start } = stack({}, (b) => (b.partitions = [{ id: 0x8002, props: P.DIRECT_REQ2_RECV | P.AARCH64 }]));
    await using tpm = await Tpm.open(transport, { clock });
    expect(start.partition?.messaging).toBe("v2");
    expect(await tpm.getRandom(16, { locality: 4 })).toHaveLength(16);
    const last = bus.calls.at(-1)!;
    expect([fn(last), last[2], last[3], w32(last[5]), w32(last[6])]).toEqual([FFA_FN.MSG_SEND_DIRECT_REQ2, 0xaf4f0618a462b817n, 0x613835589a08b386n, 1, 4]);
  });

  it("is exported from the package root and the crb folder", async () => {
    const root = await import("../../index.js");
    const folder = await import("./index.js");
    expect(root.ffaStart).toBe(ffaStart);
    expect(folder.ffaStart).toBe(ffaStart);
  });

  it("validates its options", () => {
    expect(() => ffaStart({} as FfaStartOptions)).toThrow(/FfaConduit/);
    expect(() => ffaStart({ bus: new ScriptedBus(), uuid: "nope" })).toThrow(/UUID/);
    expect(() => ffaStart({ bus: new ScriptedBus(), partitionId: 0x10000 })).toThrow(/partitionId/);
    expect(() => ffaStart({ bus: new ScriptedBus(), busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs/);
  });
});

describe("ffaStart probe: deferral and version", () => {
  it("defers Tpm.open with ProbeDeferredError while the partition is absent, then opens once it is there", async () => {
    const { bus, clock, transport } = stack({}, (b) => (b.partitions = []));
    await expect(Tpm.open(transport, { clock })).rejects.toBeInstanceOf(ProbeDeferredError);
    expect(transport.presence?.()).toBe("deferred");
    const chip = new Chip(transport, { clock });
    await expect(chip.open()).rejects.toBeInstanceOf(ProbeDeferredError);
    expect(chip.readiness).toBe("deferred");
    bus.partitions = [{ id: 0x8002, props: P.DIRECT_REQ_RECV | P.AARCH64 }];
    await chip.open();
    expect(chip.readiness).toBe("ready");
  });

  it("defers when no partition has the requested partitionId", async () => {
    const { clock, transport } = stack({ partitionId: 0x8005 });
    await expect(Tpm.open(transport, { clock })).rejects.toBeInstanceOf(ProbeDeferredError);
  });

  it("fails (not deferred) when the TPM service's interface major is not 1", async () => {
    const { clock, transport } = stack({}, (b) => (b.interfaceVersion = 0x20000));
    const e = await Tpm.open(transport, { clock }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TpmNotFoundError);
    expect(e).not.toBeInstanceOf(ProbeDeferredError);
    expect(String((e as Error).message)).toMatch(/Incompatible ABI version 2\.0/);
    expect(transport.presence?.()).toBe("absent");
  });

  it("accepts any minor of major 1", async () => {
    const { clock, transport, start } = stack({}, (b) => (b.interfaceVersion = 0x10001));
    await using tpm = await Tpm.open(transport, { clock });
    expect(start.partition?.interfaceVersion).toEqual({ major: 1, minor: 1 });
    expect(tpm).toBeDefined();
  });

  it("fails with FfaError NOT_SUPPORTED when the framework's FF-A major is not 1", async () => {
    for (const v of [0xffffffff, 0x20000]) {
      const { clock, transport } = stack({}, (b) => (b.version = v));
      const e = await Tpm.open(transport, { clock }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(FfaError);
      expect((e as FfaError).status).toBe(-1);
    }
  });

  it("refuses a partition that takes no direct requests", async () => {
    const { clock, transport } = stack({}, (b) => (b.partitions = [{ id: 0x8002, props: P.AARCH64 }]));
    await expect(Tpm.open(transport, { clock })).rejects.toBeInstanceOf(TpmNotFoundError);
  });

  it("discovers through RXTX_MAP + PARTITION_INFO_GET + RX_RELEASE when the framework has no _REGS", async () => {
    const device = new CrbDevice({ backend: new SoftTpm(), trigger: "doorbell", localities: 5 });
    const bus = new RxBus(device);
    bus.regsFeature = false;
    bus.rxMode = true;
    bus.partitions = [
      { id: 0x8001, props: P.DIRECT_REQ_RECV | P.AARCH64 },
      { id: 0x8002, props: P.DIRECT_REQ_RECV | P.AARCH64 },
    ];
    const clock = new FakeClock({ auto: true });
    const start = ffaStart({ bus, partitionId: 0x8002 });
    await using tpm = await Tpm.open(crb({ mmio: device, start }), { clock });
    expect(start.partition).toMatchObject({ id: 0x8002, discovery: "rx-buffer" });
    expect(bus.calls.slice(0, 8).map(fn)).toEqual([
      FFA_FN.VERSION,
      FFA_FN.ID_GET,
      FFA_FN.FEATURES,
      FFA_FN.FEATURES,
      FFA_FN.RXTX_MAP_64,
      FFA_FN.PARTITION_INFO_GET,
      FFA_FN.RX_RELEASE,
      FFA_FN.MSG_SEND_DIRECT_REQ_64,
    ]);
    const pig = bus.calls[5]!;
    expect([1, 2, 3, 4].map((i) => w32(pig[i]))).toEqual([0xa462b817, 0xaf4f0618, 0x9a08b386, 0x61383558]);
    expect(w32(pig[5])).toBe(0);
    expect(bus.rxOwned).toBe(false);
    expect(bus.calls[7]![1]).toBe(0x8002n);
    expect(await tpm.getRandom(4)).toHaveLength(4);
  });

  it("checks the descriptor count against the RX buffer and releases it anyway", async () => {
    class Liar extends RxBus {
      override call(regs: FfaRegs): bigint[] {
        const r = super.call(regs);
        if (fn(regs) === FFA_FN.PARTITION_INFO_GET && fn(r) === FFA_FN.SUCCESS_32) r[2] = 1000n; // 1000 × 24 > 4096
        return r;
      }
    }
    const bus = new Liar();
    bus.regsFeature = false;
    bus.rxMode = true;
    const start = ffaStart({ bus });
    await expect(start.probe!({ clock: new FakeClock({ auto: true }) })).rejects.toMatchObject({ errno: "EINVAL" });
    expect(fn(bus.calls.at(-1)!)).toBe(FFA_FN.RX_RELEASE);
    expect(bus.rxOwned).toBe(false);
  });

  it("maps the RX/TX buffers once across a deferred probe and its retry", async () => {
    const bus = new RxBus();
    bus.regsFeature = false;
    bus.rxMode = true;
    bus.partitions = [];
    const clock = new FakeClock({ auto: true });
    const start = ffaStart({ bus });
    await expect(start.probe!({ clock })).rejects.toBeInstanceOf(ProbeDeferredError);
    bus.partitions = [{ id: 0x8002, props: P.DIRECT_REQ_RECV | P.AARCH64 }];
    await start.probe!({ clock });
    expect(bus.calls.filter((r) => fn(r) === FFA_FN.RXTX_MAP_64)).toHaveLength(1);
  });

  it("falls back to a count-only PARTITION_INFO_GET and partitionId when the conduit lends no RX buffer", async () => {
    const bus = new ScriptedBus();
    bus.regsFeature = false;
    const clock = new FakeClock({ auto: true });
    const start = ffaStart({ bus });
    await start.probe!({ clock });
    expect(start.partition).toMatchObject({ id: 0x8002, discovery: "count-only" });
    const pig = bus.calls.find((r) => fn(r) === FFA_FN.PARTITION_INFO_GET)!;
    expect(w32(pig[5])).toBe(1);
  });
});

describe("ffaStart message kind: v1 or v2 as Linux chooses", () => {
  async function kind(props: number, req2Feature = true, version = 0x10002) {
    const bus = new ScriptedBus();
    bus.partitions = [{ id: 0x8002, props }];
    bus.req2Feature = req2Feature;
    bus.version = version;
    const clock = new FakeClock({ auto: true });
    const start = ffaStart({ bus });
    await start.probe!({ clock });
    return { bus, start, clock, last: bus.calls.at(-1)! };
  }

  it("uses DIRECT_REQ2 with the UUID in x2/x3 when bit 9, AArch64 and FFA_FEATURES(REQ2) all hold", async () => {
    const { start, last, bus, clock } = await kind(P.DIRECT_REQ_RECV | P.DIRECT_REQ2_RECV | P.AARCH64);
    expect(start.partition?.messaging).toBe("v2");
    expect(fn(last)).toBe(FFA_FN.MSG_SEND_DIRECT_REQ2);
    expect(last[2]).toBe(0xaf4f0618a462b817n);
    expect(last[3]).toBe(0x613835589a08b386n);
    expect(w32(last[4])).toBe(TPM_SERVICE_FN.GET_INTERFACE_VERSION);
    expect(bus.calls.some((r) => fn(r) === FFA_FN.FEATURES && w32(r[1]) === FFA_FN.MSG_SEND_DIRECT_REQ2)).toBe(true);
    await start.notify!("locality", "requestLocality", ctx(clock, 2));
    const s = bus.calls.at(-1)!;
    expect([fn(s), s[2], s[3], w32(s[4]), w32(s[5]), w32(s[6])]).toEqual([FFA_FN.MSG_SEND_DIRECT_REQ2, 0xaf4f0618a462b817n, 0x613835589a08b386n, TPM_SERVICE_FN.START, 1, 2]);
  });

  it("uses DIRECT_REQ2 for a REQ2-only partition", async () => {
    const { start } = await kind(P.DIRECT_REQ2_RECV | P.AARCH64);
    expect(start.partition?.messaging).toBe("v2");
  });

  it("uses 64-bit v1 when FFA_FEATURES(REQ2) fails or the framework is older than 1.2", async () => {
    expect((await kind(P.DIRECT_REQ_RECV | P.DIRECT_REQ2_RECV | P.AARCH64, false)).start.partition?.messaging).toBe("v1-64");
    const old = await kind(P.DIRECT_REQ_RECV | P.DIRECT_REQ2_RECV | P.AARCH64, true, 0x10001);
    expect(old.start.partition?.messaging).toBe("v1-64");
    expect(fn(old.last)).toBe(FFA_FN.MSG_SEND_DIRECT_REQ_64);
    expect([old.last[2], old.last[3]]).toEqual([0n, 0n]);
  });

  it("uses 32-bit v1 for a partition without AArch64 (no REQ2 then)", async () => {
    const { start, last } = await kind(P.DIRECT_REQ_RECV | P.DIRECT_REQ2_RECV);
    expect(start.partition?.messaging).toBe("v1-32");
    expect(fn(last)).toBe(FFA_FN.MSG_SEND_DIRECT_REQ_32);
  });

  it("refuses a REQ2-only partition it cannot reach with REQ2", async () => {
    await expect(kind(P.DIRECT_REQ2_RECV | P.AARCH64, false)).rejects.toBeInstanceOf(TpmNotFoundError);
  });
});

function ctx(clock: FakeClock, locality = 0, signal?: AbortSignal): CrbStartContext {
  const device = new CrbDevice({ backend: new SoftTpm(), localities: 5, trigger: "doorbell" });
  return { mmio: device, page: locality * 0x1000, locality, clock, signal };
}

async function probed(opts: Partial<FfaStartOptions> = {}) {
  const bus = new ScriptedBus();
  const clock = new FakeClock({ auto: true });
  const start = ffaStart({ bus, ...opts });
  await start.probe!({ clock });
  return { bus, clock, start };
}

describe("ffaStart statuses", () => {
  const statuses = Object.entries(TPM_SERVICE_STATUS).filter(([k]) => !k.startsWith("OK"));
  it.each(statuses)("TPM service status %s → FfaError with that status", async (_name, status) => {
    const { bus, clock, start } = await probed();
    bus.onDirect = () => [BigInt(FFA_FN.MSG_SEND_DIRECT_RESP_64), 0x80020000n, 0n, 0n, BigInt(status)];
    const e = await start.notify!("command", "cmdReady", ctx(clock)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FfaError);
    expect((e as FfaError).status).toBe(status);
    expect((e as FfaError).status).toBeGreaterThan(0x8e000000);
  });

  it("an unknown TPM service status → FfaError with it as is", async () => {
    const { bus, clock, start } = await probed();
    bus.onDirect = () => [BigInt(FFA_FN.MSG_SEND_DIRECT_RESP_64), 0x80020000n, 0n, 0n, 0x8e0000ffn];
    await expect(start.start(ctx(clock))).rejects.toMatchObject({ status: 0x8e0000ff });
  });

  const codes = Object.entries(FFA_ERROR_CODE).filter(([k]) => k !== "BUSY");
  it.each(codes)("FFA_ERROR %s → FfaError with the negative code", async (_name, code) => {
    const { bus, clock, start } = await probed();
    bus.onDirect = () => err(code);
    const e = await start.notify!("locality", "relinquishLocality", ctx(clock)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FfaError);
    expect((e as FfaError).status).toBe(code);
  });

  it("a response of the wrong kind is EINVAL", async () => {
    const { bus, clock, start } = await probed();
    bus.onDirect = () => [BigInt(FFA_FN.MSG_SEND_DIRECT_RESP_32), 0n, 0n, 0n, BigInt(TPM_SERVICE_STATUS.OK)];
    await expect(start.start(ctx(clock))).rejects.toMatchObject({ errno: "EINVAL" });
  });

  it("start writes CTRL_START = 1 before the START call", async () => {
    const { bus, clock, start } = await probed();
    const log: string[] = [];
    const mmio = { write32: (o: number, v: number) => void log.push(`w 0x${o.toString(16)}=${v}`), read32: () => 0 } as unknown as CrbStartContext["mmio"];
    bus.onDirect = (r) => void log.push(`START(${w32(r[5])}, ${w32(r[6])})`) as undefined;
    await start.start({ mmio, page: 0x3000, locality: 3, clock });
    expect(log).toEqual([`w 0x${(0x3000 + CRB_REG.CTRL_START).toString(16)}=1`, "START(0, 3)"]);
  });

  it("a DENIED START fails the command through Tpm with FfaError DENIED", async () => {
    const { bus, clock, transport } = stack();
    await using tpm = await Tpm.open(transport, { clock });
    bus.onDirect = (r) => (w32(r[5]) === 0 && w32(r[6]) === 0 ? [BigInt(FFA_FN.MSG_SEND_DIRECT_RESP_64), 0x80020000n, 0n, 0n, BigInt(TPM_SERVICE_STATUS.DENIED)] : undefined);
    await expect(tpm.getRandom(8)).rejects.toMatchObject({ name: "FfaError", status: TPM_SERVICE_STATUS.DENIED });
  });
});

describe("ffaStart BUSY retry", () => {
  it("rides out BUSY shorter than busyTimeoutMs", async () => {
    const { bus, clock, transport, start } = stack();
    await using tpm = await Tpm.open(transport, { clock });
    let until = -1;
    bus.onDirect = () => {
      if (until < 0) until = clock.now() + 30;
      return clock.now() < until ? err(FFA_ERROR_CODE.BUSY) : undefined;
    };
    expect(await tpm.getRandom(8)).toHaveLength(8);
    expect(start.stats.busyRetries).toBeGreaterThan(100);
    // sleeps of 50–100 µs: at most 30 / 0.05 + 1 retries
    expect(start.stats.busyRetries).toBeLessThanOrEqual(30 / 0.05 + 1);
  });

  it("gives up with FfaError -4 about busyTimeoutMs after the first BUSY, clean-up calls included, though the command may run longer", async () => {
    const busyTimeoutMs = 200;
    const { bus, clock, transport } = stack({ busyTimeoutMs });
    await using tpm = await Tpm.open(transport, { clock });
    let first = -1;
    let busyCalls = 0;
    bus.onDirect = (r) => {
      // the command START (qualifier 0, with CTRL_START latched) and everything after it is BUSY
      if (first < 0 && !(w32(r[5]) === 0 && (bus.device!.read32(CRB_REG.CTRL_START) & 1) === 1)) return undefined;
      if (first < 0) first = clock.now();
      busyCalls++;
      return err(FFA_ERROR_CODE.BUSY);
    };
    const e = await tpm.getRandom(8, { timeoutMs: 60_000, retry: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FfaError);
    expect((e as FfaError).status).toBe(-4);
    expect((e as FfaError).message).toMatch(/Busy retry timed out/);
    const elapsed = clock.now() - first;
    expect(elapsed).toBeGreaterThanOrEqual(busyTimeoutMs);
    expect(elapsed).toBeLessThan(busyTimeoutMs + 1);
    // goIdle and relinquish each made one call (the BUSY streak was over its bound already)
    const after = busyCalls;
    expect(after).toBeLessThan(busyTimeoutMs / 0.05 + 4);
  });

  it("uses the default busyTimeoutMs of 2000 ms", async () => {
    const { bus, clock, start } = await probed();
    bus.onDirect = () => err(FFA_ERROR_CODE.BUSY);
    const t0 = clock.now();
    await expect(start.notify!("locality", "requestLocality", ctx(clock))).rejects.toMatchObject({ status: -4 });
    expect(clock.now() - t0).toBeCloseTo(2000, 0);
  });

  it("gives a new command a fresh BUSY budget", async () => {
    const { bus, clock, start } = await probed({ busyTimeoutMs: 5 });
    bus.onDirect = () => err(FFA_ERROR_CODE.BUSY);
    await expect(start.notify!("locality", "requestLocality", ctx(clock))).rejects.toMatchObject({ status: -4 });
    const t = clock.now();
    await expect(start.notify!("locality", "relinquishLocality", ctx(clock))).rejects.toMatchObject({ status: -4 });
    expect(clock.now()).toBe(t); // same streak: at once
    await expect(start.notify!("locality", "requestLocality", ctx(clock))).rejects.toMatchObject({ status: -4 });
    expect(clock.now() - t).toBeGreaterThanOrEqual(5);
  });

  it("is abortable while retrying", async () => {
    const { bus, clock, start } = await probed();
    bus.onDirect = () => err(FFA_ERROR_CODE.BUSY);
    const ac = new AbortController();
    clock.setTimer(10, () => ac.abort());
    const e = await start.notify!("command", "cmdReady", ctx(clock, 0, ac.signal)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TpmAbortError);
    expect(clock.now()).toBeLessThan(11);
  });
});

describe("ffaStart FFA_INTERRUPT / FFA_YIELD", () => {
  it("resumes an interrupted request with FFA_RUN carrying the interrupt's w1", async () => {
    const { bus, clock, transport, start } = stack();
    await using tpm = await Tpm.open(transport, { clock });
    bus.preempt = 3;
    const before = bus.calls.length;
    expect(await tpm.getRandom(8)).toHaveLength(8);
    const runs = bus.calls.slice(before).filter((r) => fn(r) === FFA_FN.RUN);
    expect(runs).toHaveLength(3);
    for (const r of runs) expect(r[1]).toBe(0x80020000n);
    expect(start.stats.resumes).toBe(3);
  });

  it("resumes a yielded partition after 1 ms on the clock", async () => {
    const { bus, clock, start } = await probed();
    bus.preempt = 2;
    bus.preemptWith = "yield";
    const t0 = clock.now();
    await start.notify!("command", "goIdle", ctx(clock));
    expect(clock.now() - t0).toBe(2);
    expect(bus.calls.filter((r) => fn(r) === FFA_FN.RUN)).toHaveLength(2);
  });

  it("bounds an interrupt storm with FfaError INTERRUPTED", async () => {
    const { bus, clock, start } = await probed({ maxResumes: 50 });
    bus.preempt = Infinity;
    const e = await start.notify!("command", "cmdReady", ctx(clock)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FfaError);
    expect((e as FfaError).status).toBe(FFA_ERROR_CODE.INTERRUPTED);
    expect(bus.calls.filter((r) => fn(r) === FFA_FN.RUN)).toHaveLength(50);
  });
});

describe("ffaStart: a partition that never answers", () => {
  class Silent implements FfaConduit {
    inner = new ScriptedBus();
    hang = false;
    call(regs: FfaRegs): bigint[] | Promise<bigint[]> {
      if (this.hang && isDirect(regs)) return new Promise<bigint[]>(() => {});
      return this.inner.call(regs);
    }
  }

  it("times out after callTimeoutMs", async () => {
    const bus = new Silent();
    const clock = new FakeClock({ auto: true });
    const start = ffaStart({ bus, callTimeoutMs: 500 });
    await start.probe!({ clock });
    bus.hang = true;
    const t0 = clock.now();
    await expect(start.start(ctx(clock))).rejects.toBeInstanceOf(TpmTimeoutError);
    expect(clock.now() - t0).toBe(500);
  });

  it("is abortable", async () => {
    const bus = new Silent();
    const clock = new FakeClock({ auto: true });
    const start = ffaStart({ bus });
    await start.probe!({ clock });
    bus.hang = true;
    const ac = new AbortController();
    clock.setTimer(7, () => ac.abort());
    await expect(start.start(ctx(clock, 0, ac.signal))).rejects.toBeInstanceOf(TpmAbortError);
    expect(clock.now()).toBe(7);
  });
});

describeConformance(
  "crb(CrbDevice doorbell, 5 localities), ffaStart over a scripted FF-A conduit",
  async () => {
    const device = new CrbDevice({ backend: new SoftTpm(), trigger: "doorbell", localities: 5 });
    return { transport: crb({ mmio: device, start: ffaStart({ bus: new ScriptedBus(device) }) }) };
  },
  { localities: true },
);
