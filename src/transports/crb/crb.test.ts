import { describe, it, expect } from "vitest";
import { FakeClock, systemClock } from "../../core/clock.js";
import { ProbeDeferredError, TpmArgumentError, TpmNotFoundError, TpmTimeoutError, TpmTransportError, TpmkitError } from "../../errors/index.js";
import type { Mmio } from "../../bus/mmio.js";
import { CrbDevice, CRB_QEMU_ADDRESS } from "../../devices/crb/index.js";
import { crb, mmioStart, smcStart, CRB_REG, type CrbStartMethod } from "./index.js";
import { RecordingMmio } from "../../testing/crb.js";
import { FakeTpmBackend, fakeTpmResponse as answer, getRandomCommand, paddedCommand } from "../../testing/fake-backend.js";
import { errorResponse as response } from "../../wire/bytes.js";
import { TPM_RC } from "../../wire/constants.js";

const R = CRB_REG;

function setup(opts: { device?: Partial<ConstructorParameters<typeof CrbDevice>[0]>; start?: CrbStartMethod; transport?: Partial<Parameters<typeof crb>[0]> } = {}) {
  const clock = new FakeClock({ auto: true });
  const backend = (opts.device?.backend as FakeTpmBackend | undefined) ?? new FakeTpmBackend({ start: false, random: "repeat" });
  const dev = new CrbDevice({ ...opts.device, backend, clock });
  const mmio = new RecordingMmio(dev);
  const t = crb({ mmio, start: opts.start ?? mmioStart(), ...opts.transport });
  const send = (cmd: Uint8Array, o: { signal?: AbortSignal; locality?: number; timeoutMs?: number } = {}) =>
    t.send(cmd, { signal: o.signal ?? new AbortController().signal, locality: o.locality ?? 0, timeoutMs: o.timeoutMs ?? 2000, clock });
  const open = () => t.open({ clock, locality: 0 });
  return { clock, backend, dev, mmio, t, send, open };
}

async function rejection(p: Promise<unknown>): Promise<TpmkitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TpmkitError);
    return e as TpmkitError;
  }
  throw new Error("expected a rejection");
}

describe("crb open (kernel crb_acpi_add / crb_map_io)", () => {
  it("reads the interface id and the buffer layout into info", async () => {
    const { t, open } = setup();
    expect(t.info).toBeUndefined();
    await open();
    expect(t.kind).toBe("crb");
    expect(t.info).toMatchObject({
      startMethod: "mmio",
      hasIdle: true,
      localities: [0],
      commandOffset: 0x80,
      responseOffset: 0x80,
      commandSize: 0xf80,
      responseSize: 0xf80,
      commandAddress: 0x80n,
      warnings: [],
    });
    expect(t.info!.interfaceId).toMatchObject({ type: 1, version: 1, capLocality: false, capCrb: true, capFifo: false, capDataXferSize: 3, interfaceSelector: 1, vid: 0x1014, did: 0 });
    expect(t.maxCommandSize).toBe(0xf80);
    expect(t.localities).toEqual([0]);
  });

  it("turns QEMU's physical addresses into offsets with `base`", async () => {
    const { t, open, send } = setup({ device: { address: CRB_QEMU_ADDRESS }, transport: { base: CRB_QEMU_ADDRESS } });
    await open();
    expect(t.info!.commandAddress).toBe(0xfed40080n);
    expect(t.info!.commandOffset).toBe(0x80);
    expect(await send(getRandomCommand(4))).toEqual(answer(getRandomCommand(4)));
  });

  it("fails with EINVAL and a hint when the buffer lies outside the region (base not set)", async () => {
    const { open } = setup({ device: { address: CRB_QEMU_ADDRESS } });
    const e = await rejection(open());
    expect(e).toBeInstanceOf(TpmTransportError);
    expect((e as TpmTransportError).errno).toBe("EINVAL");
    expect(e.message).toMatch(/outside the region/);
    expect(e.details).toMatch(/base/);
  });

  it("gives TpmNotFoundError within timeout A when the backend failed to start (registers read 0)", async () => {
    const backend = new FakeTpmBackend({ random: "repeat", start: () => Promise.reject(new Error("state corrupt")) });
    const { open, clock } = setup({ device: { backend } });
    const e = await rejection(open());
    expect(e).toBeInstanceOf(TpmNotFoundError);
    expect(e.message).toMatch(/read 0/);
    expect(clock.now()).toBeGreaterThanOrEqual(750);
    expect(clock.now()).toBeLessThanOrEqual(752);
  });

  it("waits for a backend that is still starting", async () => {
    const clock0 = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ random: "repeat", start: () => clock0.sleep(100) });
    const dev = new CrbDevice({ backend });
    const t = crb({ mmio: dev, start: mmioStart(), clock: clock0 });
    await t.open({ clock: clock0, locality: 0 });
    expect(clock0.now()).toBeGreaterThanOrEqual(100);
    expect(t.info!.commandSize).toBe(0xf80);
  });

  it("rejects a FIFO (TIS) interface with TpmNotFoundError", async () => {
    const { mmio, open } = setup();
    mmio.override = (o, v) => (o === R.INTF_ID ? v & ~0xf : undefined);
    const e = await rejection(open());
    expect(e).toBeInstanceOf(TpmNotFoundError);
    expect(e.message).toMatch(/not CRB/);
  });

  it("rejects a region that reads all ones", async () => {
    const ones: Mmio = { read8: () => 0xff, read16: () => 0xffff, read32: () => 0xffffffff, write8() {}, write16() {}, write32() {}, readFifo: (_o, n) => new Uint8Array(n).fill(0xff), writeFifo() {} };
    const clock = new FakeClock({ auto: true });
    const e = await rejection(crb({ mmio: ones, start: mmioStart() }).open({ clock, locality: 0 }));
    expect(e).toBeInstanceOf(TpmNotFoundError);
    expect(e.message).toMatch(/all ones/);
  });

  it("propagates ProbeDeferredError from the start method's probe without touching registers", async () => {
    const deferred: CrbStartMethod = {
      name: "ffa",
      hasIdle: true,
      probe: async () => {
        throw new ProbeDeferredError("FF-A partition 0x8003");
      },
      start: async () => {},
    };
    const { open, mmio } = setup({ start: deferred });
    await expect(open()).rejects.toBeInstanceOf(ProbeDeferredError);
    expect(mmio.log).toHaveLength(0);
  });

  it("reports presence: absent before open, present after, deferred after a deferred probe", async () => {
    const { t, open } = setup();
    expect(t.presence!()).toBe("absent");
    await open();
    expect(t.presence!()).toBe("present");
    let ready = false;
    const late: CrbStartMethod = {
      ...mmioStart(),
      probe: async () => {
        if (!ready) throw new ProbeDeferredError("FF-A partition");
      },
    };
    const d = setup({ start: late });
    await expect(d.open()).rejects.toBeInstanceOf(ProbeDeferredError);
    expect(d.t.presence!()).toBe("deferred");
    ready = true;
    await d.open();
    expect(d.t.presence!()).toBe("present");
  });

  it("refuses a default locality the interface does not offer", async () => {
    const { open } = setup({ transport: { locality: 2 } });
    await expect(open()).rejects.toBeInstanceOf(TpmArgumentError);
  });
});

describe("crb control-area sanity checks (kernel crb_map_io, FW_BUG)", () => {
  it("rejects a zero command buffer address", async () => {
    const { dev, open } = setup();
    dev.faults.cmdAddress = 0;
    const e = await rejection(open());
    expect((e as TpmTransportError).errno).toBe("EINVAL");
    expect(e.message).toMatch(/command buffer address is 0/);
  });

  it("rejects a zero response buffer address", async () => {
    const { dev, open } = setup();
    dev.faults.rspAddress = 0n;
    await expect(open()).rejects.toThrow(/response buffer address is 0/);
  });

  it("rejects equal addresses with different sizes", async () => {
    const { dev, open } = setup();
    dev.faults.rspSize = 0x800;
    const e = await rejection(open());
    expect((e as TpmTransportError).errno).toBe("EINVAL");
    expect(e.message).toMatch(/sizes differ/);
  });

  it("accepts different addresses with different sizes", async () => {
    const { dev, t, open } = setup();
    dev.faults.rspAddress = 0x800;
    dev.faults.rspSize = 0x400;
    await open();
    expect(t.info).toMatchObject({ responseOffset: 0x800, responseSize: 0x400, commandSize: 0xf80 });
  });

  it("clamps sizes that run past the region, with a FW_BUG warning", async () => {
    const { dev, t, open } = setup();
    dev.faults.cmdSize = 0x10000;
    dev.faults.rspSize = 0x10000;
    await open();
    expect(t.info!.commandSize).toBe(0xf80);
    expect(t.info!.warnings.join("\n")).toMatch(/FW_BUG: command buffer size 65536/);
  });

  it("rejects a buffer above 4 GiB outside the region", async () => {
    const { dev, open } = setup();
    dev.faults.cmdAddress = 0x1_0000_0080n;
    await expect(open()).rejects.toThrow(/outside the region/);
  });

  it("rejects a buffer over the control area", async () => {
    const { dev, open } = setup();
    dev.faults.cmdAddress = 0x40;
    await expect(open()).rejects.toThrow(/overlaps the control area/);
  });

  it("rejects a buffer smaller than a TPM header", async () => {
    const { dev, open } = setup();
    dev.faults.cmdSize = 8;
    dev.faults.rspSize = 8;
    await expect(open()).rejects.toThrow(/smaller than a TPM header/);
  });

  it("rejects malformed options up front", () => {
    const dev = new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) });
    expect(() => crb({ mmio: dev } as never)).toThrow(TpmArgumentError);
    expect(() => crb({ start: mmioStart() } as never)).toThrow(TpmArgumentError);
    expect(() => crb({ mmio: dev, start: mmioStart(), base: -1 })).toThrow(TpmArgumentError);
    expect(() => crb({ mmio: dev, start: mmioStart(), timeouts: { c: Number.NaN } })).toThrow(TpmArgumentError);
    expect(() => crb({ mmio: dev, start: mmioStart(), locality: 7 })).toThrow(TpmArgumentError);
    expect(() => crb({ mmio: dev, start: mmioStart(), locality: 7 })).toThrow("crb: locality must be an integer in 0–4, got 7");
  });
});

describe("crb send", () => {
  it("round-trips GetRandom(16) through the device model", async () => {
    const { send, backend, dev } = setup();
    const rsp = await send(getRandomCommand(16));
    expect(rsp).toEqual(answer(getRandomCommand(16)));
    expect(backend.commands).toHaveLength(1);
    expect(dev.state).toMatchObject({ locality: -1, idle: true, started: false });
  });

  it("completes a command whose backend answers on a later event-loop turn, with the system clock", async () => {
    const backend = new FakeTpmBackend({ start: false, random: "repeat" });
    backend.options.handler = undefined;
    const slowTurn: FakeTpmBackend = Object.assign(backend, {
      execute: (cmd: Uint8Array) => new Promise<Uint8Array>((r) => setImmediate(() => setImmediate(() => r(answer(cmd))))),
    });
    const t = crb({ mmio: new CrbDevice({ backend: slowTurn }), start: mmioStart() });
    await t.open({ clock: systemClock, locality: 0 });
    const t0 = performance.now();
    const rsp = await t.send(getRandomCommand(8), { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: systemClock });
    expect(rsp).toEqual(answer(getRandomCommand(8)));
    expect(performance.now() - t0).toBeLessThan(500); // a sanity bound: nothing waits for the 2 s duration
  });

  it("opens lazily on the first send", async () => {
    const { send, t } = setup();
    await send(getRandomCommand(2));
    expect(t.info?.commandSize).toBe(0xf80);
  });

  it("sends the largest command that fits and rejects a larger one with E2BIG before touching the device", async () => {
    const { send, open, mmio, backend } = setup({ device: { bufferSize: 1024 } });
    await open();
    backend.options.handler = () => response(TPM_RC.SUCCESS);
    await send(paddedCommand(1024));
    expect(backend.commands[0]!.command.length).toBe(1024);
    mmio.log = [];
    const e = await rejection(send(paddedCommand(1025)));
    expect((e as TpmTransportError).errno).toBe("E2BIG");
    expect(mmio.log).toHaveLength(0);
  });

  it("fails with EIO when the backend errors (CTRL_STS.tpmSts), and stays failed", async () => {
    const { send, backend } = setup();
    backend.options.mode = "reject";
    const e = await rejection(send(getRandomCommand(4)));
    expect(e).toBeInstanceOf(TpmTransportError);
    expect((e as TpmTransportError).errno).toBe("EIO");
    expect(e.message).toMatch(/tpmSts/);
    backend.options.mode = "ok";
    await expect(send(getRandomCommand(4))).rejects.toMatchObject({ errno: "EIO" });
  });

  it("fails with EIO when the fatal bit is forced", async () => {
    const { send, dev } = setup();
    await send(getRandomCommand(1));
    dev.faults.tpmSts = true;
    await expect(send(getRandomCommand(1))).rejects.toMatchObject({ code: "TPM_TRANSPORT", errno: "EIO" });
  });

  it("rejects a response whose size field lies (too large or below 10) with EIO", async () => {
    const { send, backend } = setup({ device: { bufferSize: 64 } });
    backend.options.handler = () => {
      const r = response(0);
      r[5] = 200; // claims 200 bytes
      return r;
    };
    await expect(send(getRandomCommand(1))).rejects.toMatchObject({ errno: "EIO" });
    backend.options.handler = () => {
      const r = response(0);
      r[5] = 4;
      return r;
    };
    await expect(send(getRandomCommand(1))).rejects.toThrow(/outside 10\.\.64/);
  });

  it("times out (with CANCEL written) when START never clears, then refuses with EBUSY until it does", async () => {
    const { send, dev, mmio, clock } = setup();
    await send(getRandomCommand(1));
    dev.faults.startNeverClears = true;
    const t0 = clock.now();
    const e = await rejection(send(getRandomCommand(1), { timeoutMs: 500 }));
    expect(e).toBeInstanceOf(TpmTimeoutError);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(500);
    expect(clock.now() - t0).toBeLessThan(1000);
    expect(mmio.log.some((a) => a.op === "w32" && a.offset === R.CTRL_CANCEL && a.value === 1)).toBe(true);
    const e2 = await rejection(send(getRandomCommand(1)));
    expect((e2 as TpmTransportError).errno).toBe("EBUSY");
    dev.faults.startNeverClears = false;
    await dev.reset();
    expect(await send(getRandomCommand(3))).toEqual(answer(getRandomCommand(3)));
  });

  it("settles promptly with the abort reason when the signal fires while the backend hangs, and cancels it", async () => {
    const { send, backend, clock, dev } = setup();
    backend.options.mode = "hang";
    const ac = new AbortController();
    clock.setTimer(30, () => ac.abort(new TpmTimeoutError("chip watchdog", 30)));
    const e = await rejection(send(getRandomCommand(4), { signal: ac.signal }));
    expect(e).toBeInstanceOf(TpmTimeoutError);
    expect(clock.now()).toBeLessThan(31);
    expect(backend.cancels).toBe(1);
    // the device answered TPM_RC_CANCELED; the next command works
    backend.options.mode = "ok";
    expect(await send(getRandomCommand(2))).toEqual(answer(getRandomCommand(2)));
    expect(dev.state.locality).toBe(-1);
  });

  it("settles on abort even when the backend is dead for good", async () => {
    const { send, backend, clock } = setup();
    backend.options.mode = "dead";
    const ac = new AbortController();
    clock.setTimer(10, () => ac.abort());
    const e = await rejection(send(getRandomCommand(4), { signal: ac.signal }));
    expect(e.name).toBe("AbortError");
    // still running: the next command is refused after timeout C instead of reading a stale buffer
    const e2 = await rejection(send(getRandomCommand(4)));
    expect((e2 as TpmTransportError).errno).toBe("EBUSY");
  });

  it("throws at once for an already-aborted signal, touching nothing", async () => {
    const { send, mmio, open } = setup();
    await open();
    mmio.log = [];
    const ac = new AbortController();
    ac.abort();
    await expect(send(getRandomCommand(1), { signal: ac.signal })).rejects.toMatchObject({ name: "AbortError" });
    expect(mmio.log).toHaveLength(0);
  });

  it("times out cmdReady when the TPM never completes it (timeout C)", async () => {
    const { send, dev, clock, open } = setup();
    await open();
    dev.faults.ctrlReqStuck = true;
    const t0 = clock.now();
    const e = await rejection(send(getRandomCommand(1)));
    expect(e).toBeInstanceOf(TpmTimeoutError);
    expect(e.message).toMatch(/cmdReady/);
    expect(clock.now() - t0).toBeLessThan(2 * 200 + 5); // cmdReady C, goIdle write only waits C once
  });

  it("times out the locality request when the TPM denies it", async () => {
    const { send, dev, open } = setup();
    await open();
    dev.faults.localityDenied = true;
    await expect(send(getRandomCommand(1))).rejects.toThrow(/locality 0 request/);
  });

  it("sends at the locality asked for when the device offers five", async () => {
    const { send, backend, t, open } = setup({ device: { localities: 5 } });
    await open();
    expect(t.localities).toEqual([0, 1, 2, 3, 4]);
    await send(getRandomCommand(2), { locality: 3 });
    expect(backend.commands[0]!.locality).toBe(3);
  });

  it("rejects a locality the device does not offer before any I/O", async () => {
    const { send, mmio, open } = setup();
    await open();
    mmio.log = [];
    await expect(send(getRandomCommand(1), { locality: 2 })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(send(getRandomCommand(1), { locality: 5 })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(send(getRandomCommand(1), { locality: 5 })).rejects.toThrow("crb: locality must be an integer in 0–4, got 5");
    expect(mmio.log).toHaveLength(0);
  });

  it("copies the buffer with 32-bit accesses in dword mode", async () => {
    const { send, mmio } = setup({ transport: { bufferAccess: "dword" } });
    const rsp = await send(getRandomCommand(13));
    expect(rsp).toEqual(answer(getRandomCommand(13)));
    expect(mmio.log.some((a) => a.op === "wblk" || a.op === "rblk")).toBe(false);
  });

  it("refuses to send after close", async () => {
    const { send, t } = setup();
    await send(getRandomCommand(1));
    await t.close();
    await expect(send(getRandomCommand(1))).rejects.toMatchObject({ errno: "ENODEV" });
  });
});

describe("crb start methods", () => {
  it("smcStart writes START, calls the SMC with the function id, and skips cmdReady/goIdle", async () => {
    const calls: { functionId: number; locality: number }[] = [];
    const start = smcStart({ functionId: 0xc4000021, call: (r) => (calls.push({ functionId: r.functionId, locality: r.locality }), 0n) });
    const { send, mmio } = setup({ start });
    expect(await send(getRandomCommand(2))).toEqual(answer(getRandomCommand(2)));
    expect(calls).toEqual([{ functionId: 0xc4000021, locality: 0 }]);
    expect(mmio.log.some((a) => a.offset === R.CTRL_REQ)).toBe(false);
    expect(mmio.log.some((a) => a.op === "w32" && a.offset === R.CTRL_START && a.value === 1)).toBe(true);
  });

  it("smcStart turns a nonzero SMC result into EIO", async () => {
    const { send } = setup({ start: smcStart({ call: () => 1 }) });
    const e = await rejection(send(getRandomCommand(2)));
    expect((e as TpmTransportError).errno).toBe("EIO");
    expect(e.message).toMatch(/SMC start returned 1/);
  });

  it("smcStart turns a throwing SMC call into EIO with the cause", async () => {
    const boom = new Error("firmware trap");
    const { send } = setup({ start: smcStart({ call: () => Promise.reject(boom) }) });
    const e = await rejection(send(getRandomCommand(2)));
    expect((e as TpmTransportError).errno).toBe("EIO");
    expect(e.cause).toBe(boom);
  });

  it("does not hand a later command the response of one whose SMC failed after CTRL_START", async () => {
    let fail = true;
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ start: false, random: "repeat", clock });
    const dev = new CrbDevice({ backend, clock });
    const t = crb({ mmio: dev, start: smcStart({ call: () => (fail ? 5 : 0) }) });
    await t.open({ clock, locality: 0 });
    backend.options.mode = "slow";
    backend.options.slowMs = 50; // the TPM runs the first command although the SMC said no
    const first = getRandomCommand(3);
    await expect(t.send(first, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock })).rejects.toMatchObject({ errno: "EIO" });
    fail = false;
    backend.options.mode = "ok";
    const second = getRandomCommand(9);
    expect(await t.send(second, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock })).toEqual(answer(second));
  });

  it("smcStart needs a call function", () => {
    expect(() => smcStart({} as never)).toThrow(TpmArgumentError);
  });

  it("notifies a start method with the DEN0138 qualifiers in the kernel's order", async () => {
    const seen: string[] = [];
    const ffaLike: CrbStartMethod = {
      name: "ffa-like",
      hasIdle: true,
      async start(ctx) {
        await ctx.mmio.write32(ctx.page + R.CTRL_START, 1);
        seen.push(`start(command,${ctx.locality})`);
      },
      async notify(q, ev, ctx) {
        seen.push(`${ev}(${q},${ctx.locality})`);
      },
    };
    const { send, open } = setup({ start: ffaLike });
    await open();
    seen.length = 0;
    await send(getRandomCommand(1));
    expect(seen).toEqual(["requestLocality(locality,0)", "cmdReady(command,0)", "start(command,0)", "goIdle(command,0)", "relinquishLocality(locality,0)"]);
  });

  it("drives a doorbell device through a start method that rings on every request (CRB over FF-A shape)", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ start: false, random: "repeat" });
    const dev = new CrbDevice({ backend, trigger: "doorbell", localities: 5 });
    const rung: string[] = [];
    const ring = (q: "command" | "locality", l: number) => {
      const s = dev.doorbell(q, l);
      rung.push(`${q}:${l}:${s}`);
      if (s !== "ok") throw new TpmTransportError(`START(${q}, ${l}) answered ${s}`, { errno: "EACCES" });
    };
    const ffaLike: CrbStartMethod = {
      name: "ffa-like",
      hasIdle: true,
      async start(ctx) {
        await ctx.mmio.write32(ctx.page + R.CTRL_START, 1);
        ring("command", ctx.locality);
      },
      async notify(q, _ev, ctx) {
        ring(q, ctx.locality);
      },
    };
    const t = crb({ mmio: dev, start: ffaLike });
    await t.open({ clock, locality: 0 });
    rung.length = 0;
    const rsp = await t.send(getRandomCommand(5), { signal: new AbortController().signal, locality: 2, timeoutMs: 2000, clock });
    expect(rsp).toEqual(answer(getRandomCommand(5)));
    expect(backend.commands[0]!.locality).toBe(2);
    expect(rung).toEqual(["locality:2:ok", "command:2:ok", "command:2:ok", "command:2:ok", "locality:2:ok"]);
  });

  it("times out against a doorbell device when the start method never rings (pre-v6.18 FF-A shape)", async () => {
    const clock = new FakeClock({ auto: true });
    const dev = new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }), trigger: "doorbell" });
    const e = await rejection(crb({ mmio: dev, start: mmioStart() }).open({ clock, locality: 0 }));
    expect(e).toBeInstanceOf(TpmTimeoutError);
    expect(e.message).toMatch(/locality 0 request/);
  });

  it("a mmioStart without idle support never touches CTRL_REQ", async () => {
    const { send, mmio } = setup({ start: mmioStart({ hasIdle: false }) });
    await send(getRandomCommand(1));
    expect(mmio.log.some((a) => a.offset === R.CTRL_REQ)).toBe(false);
  });
});

