import { describe, it, expect } from "vitest";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { tis, TIS_DRIVER_CHANNEL, type TisDriverEvent, type TisOptions } from "./tis.js";
import { TisDevice, type TisDeviceOptions } from "../../devices/tis/device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";
import { countMmio } from "../../bus/count.js";
import { faultyMmio, type MmioFault } from "../../bus/faults.js";
import type { InterruptLine } from "../../bus/interrupt.js";
import { TpmArgumentError, TpmNotFoundError, TpmTimeoutError, TpmTransportError } from "../../errors/index.js";

const GET_RANDOM_16 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);
const STS0 = 0x18;

function stack(o: { device?: Partial<TisDeviceOptions>; driver?: Partial<TisOptions>; faults?: MmioFault[]; backend?: FakeTpmBackend } = {}) {
  const clock = new FakeClock({ auto: true });
  const backend = o.backend ?? new FakeTpmBackend({ clock });
  backend.options.clock ??= clock;
  const device = new TisDevice({ backend, clock, ...o.device });
  const bus = faultyMmio(device, { clock, faults: o.faults ?? [] });
  const counted = countMmio(bus);
  const transport = tis({ mmio: counted, ...o.driver });
  const send = (cmd = GET_RANDOM_16, locality = 0, timeoutMs = 2000, signal = new AbortController().signal) =>
    transport.send(cmd, { signal, locality, timeoutMs, clock });
  return { clock, backend, device, bus, counted, transport, send, open: () => transport.open({ clock, locality: 0 }) };
}

async function timed<T>(clock: FakeClock, p: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = clock.now();
  try {
    const value = await p;
    return { ms: clock.now() - t0, value };
  } catch (error) {
    return { ms: clock.now() - t0, error };
  }
}

describe("tis driver: probe", () => {
  it("opens over the device model and reports DID, VID, RID, family and interface values", async () => {
    const s = stack();
    await s.open();
    expect(s.transport.info).toEqual({
      did: 0x0001,
      vid: 0x1014,
      rid: 0x01,
      family: "2.0",
      interfaceCapability: 0x3000_0697,
      interfaceId: 0x2100,
      burstCountStatic: false,
      interrupts: false,
    });
    expect(s.transport.presence()).toBe("present");
    expect(s.transport.localities).toEqual([0, 1, 2, 3, 4]);
    expect(s.transport.kind).toBe("tis");
  });

  it("detects TPM 2.0 with GetCapability(TPM_PROPERTIES, TOTAL_COMMANDS, 1) like the kernel's tpm2_probe", async () => {
    const s = stack();
    await s.open();
    const probe = s.backend.commands[0]!.command;
    expect(Buffer.from(probe).toString("hex")).toBe("8001" + "00000016" + "0000017a" + "00000006" + "00000129" + "00000001");
  });

  it("accepts a TPM that answers the probe with an error code, as long as the tag is 0x8001", async () => {
    const s = stack({ backend: new FakeTpmBackend({ handler: () => Uint8Array.from([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x00]) }) });
    await s.open();
    expect(s.transport.info?.family).toBe("2.0");
  });

  it("rejects a TPM 1.2 (probe reply tag 0x00C4) with TpmNotFoundError", async () => {
    const s = stack({ backend: new FakeTpmBackend({ handler: () => Uint8Array.from([0x00, 0xc4, 0, 0, 0, 10, 0, 0, 0, 0x0a]) }) });
    await expect(s.open()).rejects.toBeInstanceOf(TpmNotFoundError);
    expect(s.transport.presence()).toBe("absent");
  });

  it("backend failed to start: open fails with TpmNotFoundError after exactly TIMEOUT_A (750 ms)", async () => {
    const s = stack({ backend: new FakeTpmBackend({ failStart: new Error("swtpm exited") }) });
    await s.device.start();
    const r = await timed(s.clock, s.open());
    expect(r.error).toBeInstanceOf(TpmNotFoundError);
    expect((r.error as Error).message).toMatch(/tpmRegValidSts/);
    expect(r.ms).toBe(750);
  });

  it("registers that read all 0xFF: TpmNotFoundError after TIMEOUT_A, because the locality is never granted", async () => {
    const s = stack({ faults: [{ kind: "stuck", value: 0xffff_ffff }] });
    const r = await timed(s.clock, s.open());
    expect(r.error).toBeInstanceOf(TpmNotFoundError);
    expect((r.error as Error).message).toMatch(/locality 0 not granted/);
    expect(r.ms).toBe(750);
  });

  it("registers that read all 0: TpmNotFoundError after TIMEOUT_A", async () => {
    const s = stack({ faults: [{ kind: "stuck", value: 0 }] });
    const r = await timed(s.clock, s.open());
    expect(r.error).toBeInstanceOf(TpmNotFoundError);
    expect(r.ms).toBe(750);
  });

  it("waits for a backend that is still starting, within TIMEOUT_A", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ clock });
    backend.start = async () => clock.sleep(100);
    const device = new TisDevice({ backend, clock });
    const t = tis({ mmio: device });
    await t.open({ clock, locality: 0 });
    expect(clock.now()).toBeGreaterThanOrEqual(100);
    expect(clock.now()).toBeLessThan(110);
  });

  it("an abort signal stops the probe with an AbortError", async () => {
    const s = stack({ faults: [{ kind: "stuck", value: 0 }] });
    const ac = new AbortController();
    const p = s.transport.open({ clock: s.clock, locality: 0, signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("tis driver: commands", () => {
  it("sends GetRandom(16) and returns the whole response; the locality is released afterwards", async () => {
    const s = stack();
    await s.open();
    const rsp = await s.send();
    expect(rsp.length).toBe(28);
    expect([...rsp.subarray(0, 10)]).toEqual([0x80, 0x01, 0, 0, 0, 28, 0, 0, 0, 0]);
    expect(s.device.state.activeLocality).toBeNull();
    expect(s.device.state.localities[0]!.state).toBe("ready");
  });

  it("runs a polling command against an instant backend without advancing the clock", async () => {
    const s = stack();
    await s.open();
    const t0 = s.clock.now();
    await s.send();
    expect(s.clock.now()).toBe(t0);
  });

  it("polls until a slow backend finishes and backs off to the kernel's 1 ms interval", async () => {
    const s = stack();
    await s.open();
    s.backend.options.executionMs = 50;
    s.counted.reset();
    const r = await timed(s.clock, s.send());
    expect(r.value?.length).toBe(28);
    expect(r.ms).toBeGreaterThanOrEqual(50);
    expect(r.ms).toBeLessThanOrEqual(51);
    // 50 ms at ≤1 ms per poll after the quick start: well under 80 reads, far more than the ~10 of an instant reply
    expect(s.counted.counts.reads).toBeGreaterThan(40);
    expect(s.counted.counts.reads).toBeLessThan(80);
  });

  it("sends at the locality given per command, 0 to 3", async () => {
    const s = stack();
    await s.open();
    for (const loc of [1, 2, 3, 0]) await s.send(GET_RANDOM_16, loc);
    expect(s.backend.commands.slice(1).map((c) => c.locality)).toEqual([1, 2, 3, 0]);
  });

  it("uses the driver's own locality option over the chip's", async () => {
    const s = stack({ driver: { locality: 3 } });
    await s.transport.open({ clock: s.clock, locality: 0 });
    expect(s.backend.commands[0]!.locality).toBe(3);
  });

  it("uses the chip's default locality from open when the driver has none", async () => {
    const s = stack();
    await s.transport.open({ clock: s.clock, locality: 2 });
    expect(s.backend.commands[0]!.locality).toBe(2);
  });

  it("locality 4: QEMU ignores its writes, so the request times out after TIMEOUT_A", async () => {
    const s = stack();
    await s.open();
    const r = await timed(s.clock, s.send(GET_RANDOM_16, 4));
    expect(r.error).toBeInstanceOf(TpmTimeoutError);
    expect((r.error as Error).message).toMatch(/locality 4 request timed out after 750 ms/);
    expect(r.ms).toBe(750);
  });

  it("rejects locality 5 and up, short and oversize commands before any bus access", async () => {
    const s = stack();
    await s.open();
    s.counted.reset();
    await expect(s.send(GET_RANDOM_16, 5)).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(s.send(GET_RANDOM_16, 5)).rejects.toThrow("tis: locality must be an integer in 0–4, got 5");
    await expect(s.send(GET_RANDOM_16, -1)).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(s.send(new Uint8Array(9))).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(s.send(new Uint8Array(4097))).rejects.toBeInstanceOf(TpmArgumentError);
    expect(s.counted.transactions).toBe(0);
  });

  it("another locality holding the TPM makes the request wait, then time out", async () => {
    const s = stack();
    await s.open();
    s.device.write8(0x2000, 0x02); // locality 2 takes the TPM behind the driver's back
    const r = await timed(s.clock, s.send(GET_RANDOM_16, 0));
    expect(r.error).toBeInstanceOf(TpmTimeoutError);
    // the driver withdrew its pending request
    expect(s.device.read8(0x0000) & 0x02).toBe(0);
  });

  it("handles 4 KiB commands in one QEMU burst and 64-byte bursts with a static burst count", async () => {
    for (const burst of [undefined, 64]) {
      const s = stack({ device: burst ? { burstCount: burst } : {} });
      await s.open();
      const big = new Uint8Array(4096);
      big.set([0x80, 0x01, 0, 0, 0x10, 0x00, 0, 0, 0x01, 0x44]);
      s.counted.reset();
      const rsp = await s.send(big);
      expect(rsp.length).toBe(10);
      expect(s.backend.commands.at(-1)!.command.length).toBe(4096);
      expect(s.counted.counts.fifoWrites).toBe(burst ? 64 : 1);
    }
  });

  it("closes: later sends fail with TpmTransportError", async () => {
    const s = stack();
    await s.open();
    await s.transport.close();
    await s.transport.close();
    await expect(s.send()).rejects.toBeInstanceOf(TpmTransportError);
  });
});

describe("tis driver: failures mid-command", () => {
  it("backend dies mid-command: TpmTimeoutError after the command's duration, commandReady written", async () => {
    const s = stack();
    await s.open();
    s.backend.options.executionMs = 100;
    const p = timed(s.clock, s.send(GET_RANDOM_16, 0, 300));
    await s.clock.advance(0);
    setImmediate(() => s.device.killBackend("exit"));
    const r = await p;
    expect(r.error).toBeInstanceOf(TpmTimeoutError);
    expect(r.ms).toBe(300);
  });

  it("backend hangs: TpmTimeoutError, the driver cancels (the backend sees cancel) and relinquishes", async () => {
    const s = stack();
    await s.open();
    s.backend.options.hang = true;
    const r = await timed(s.clock, s.send(GET_RANDOM_16, 0, 2000));
    expect(r.error).toBeInstanceOf(TpmTimeoutError);
    expect(r.ms).toBe(2000);
    expect(s.backend.cancels).toBe(1);
    expect(s.device.state.activeLocality).toBeNull();
  });

  it("an abort mid-command rejects promptly with AbortError and the next command works", async () => {
    const s = stack();
    await s.open();
    s.backend.options.executionMs = 100;
    const ac = new AbortController();
    s.clock.setTimer(10, () => ac.abort());
    const r = await timed(s.clock, s.send(GET_RANDOM_16, 0, 2000, ac.signal));
    expect((r.error as Error).name).toBe("AbortError");
    expect(r.ms).toBe(10);
    s.backend.options.executionMs = 0;
    await s.clock.advance(200);
    const rsp = await s.send();
    expect(rsp.length).toBe(28);
  });

  it("a response size field outside 10..4096 is retried with responseRetry, then fails with EIO", async () => {
    const s = stack({ driver: { retries: 3 } });
    await s.open();
    s.device.faults.mutateResponse = (r) => {
      const x = r.slice();
      x[2] = 0x7f; // size field 0x7f00001c
      return x;
    };
    const events: TisDriverEvent[] = [];
    const fn = (m: unknown) => events.push(m as TisDriverEvent);
    subscribe(TIS_DRIVER_CHANNEL, fn);
    try {
      const r = await timed(s.clock, s.send());
      expect(r.error).toBeInstanceOf(TpmTransportError);
      expect((r.error as TpmTransportError).errno).toBe("EIO");
    } finally {
      unsubscribe(TIS_DRIVER_CHANNEL, fn);
    }
    expect(events.filter((e) => e.type === "response-retry")).toHaveLength(3);
  });

  it("after a failed response read the next command gets its own reply, no stale bytes", async () => {
    const s = stack({ driver: { retries: 2 } });
    await s.open();
    s.device.faults.mutateResponse = (r) => {
      const x = r.slice();
      x[5] = 3; // size field 3: below a header
      return x;
    };
    await expect(s.send()).rejects.toMatchObject({ errno: "EIO" });
    s.device.faults = {};
    const rsp = await s.send(Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 4]));
    expect([...rsp]).toEqual([0x80, 0x01, 0, 0, 0, 16, 0, 0, 0, 0, 0, 4, 16, 17, 18, 19]);
  });

  it("a command cancelled behind the driver's back (STS reads exactly commandReady) fails with ECANCELED", async () => {
    const s = stack();
    await s.open();
    s.backend.options.executionMs = 10;
    s.clock.setTimer(5, () => s.device.write8(0x18, 0x40));
    const r = await timed(s.clock, s.send());
    expect(r.error).toBeInstanceOf(TpmTransportError);
    expect((r.error as TpmTransportError).errno).toBe("ECANCELED");
  });

  it("a glitch on dataAvail after the response (extra data) is cured by one responseRetry", async () => {
    const s = stack();
    await s.open();
    let fifoReads = 0;
    let fired = false;
    // flip dataAvail on in the STS read that follows the body burst: "more data than the size says"
    s.bus.inject({
      kind: "flip",
      bit: 4,
      ops: "any",
      match: (a) => {
        if (a.op === "readFifo") fifoReads++;
        if (a.op !== "read32" || a.offset !== STS0 || fifoReads !== 2 || fired) return false;
        return (fired = true);
      },
    });
    const events: TisDriverEvent[] = [];
    const fn = (m: unknown) => events.push(m as TisDriverEvent);
    subscribe(TIS_DRIVER_CHANNEL, fn);
    try {
      const rsp = await s.send();
      expect(rsp.length).toBe(28);
      expect([...rsp.subarray(12)]).toEqual(Array.from({ length: 16 }, (_, i) => i));
    } finally {
      unsubscribe(TIS_DRIVER_CHANNEL, fn);
    }
    expect(s.bus.hits).toBe(1);
    expect(events.filter((e) => e.type === "response-retry")).toHaveLength(1);
  });

  it("an Expect glitch during the write is retried after commandReady (the kernel's EIO retry)", async () => {
    const s = stack();
    await s.open();
    const events: TisDriverEvent[] = [];
    const fn = (m: unknown) => events.push(m as TisDriverEvent);
    subscribe(TIS_DRIVER_CHANNEL, fn);
    try {
      s.bus.inject({ kind: "flip", offset: STS0, bit: 3, skip: 1, times: 1 }); // the read after the burst
      const rsp = await s.send();
      expect(rsp.length).toBe(28);
    } finally {
      unsubscribe(TIS_DRIVER_CHANNEL, fn);
    }
    expect(events.map((e) => e.type)).toContain("data-retry");
    expect(s.backend.commands).toHaveLength(2);
  });

  it("a status read with READ_ZERO bits counts as 0 and is reported once", async () => {
    const s = stack();
    await s.open();
    const events: TisDriverEvent[] = [];
    const fn = (m: unknown) => events.push(m as TisDriverEvent);
    subscribe(TIS_DRIVER_CHANNEL, fn);
    try {
      s.bus.inject({ kind: "stuck", offset: STS0, value: 0xffff_ffff, times: 3 });
      expect((await s.send()).length).toBe(28);
    } finally {
      unsubscribe(TIS_DRIVER_CHANNEL, fn);
    }
    expect(events.filter((e) => e.type === "invalid-status")).toHaveLength(1);
  });

  it("a device that vanishes mid-command gives a typed error within the bound", async () => {
    const s = stack();
    await s.open();
    s.bus.inject({ kind: "vanish", skip: 4, ops: "any" });
    const r = await timed(s.clock, s.send(GET_RANDOM_16, 0, 750));
    expect(r.error).toBeInstanceOf(TpmTimeoutError);
    expect(r.ms).toBeLessThanOrEqual(750 + 750);
  });

  it("works over a slow asynchronous bus (every access delayed on the clock)", async () => {
    const s = stack({ faults: [{ kind: "delay", ms: 0.01, ops: "any" }] });
    await s.open();
    expect((await s.send()).length).toBe(28);
  });

  it("cancel() writes commandReady at the locality of the command in flight", async () => {
    const s = stack();
    await s.open();
    s.backend.options.executionMs = 100;
    const p = timed(s.clock, s.send(GET_RANDOM_16, 1, 2000));
    s.clock.setTimer(5, () => void s.transport.cancel());
    const r = await p;
    expect(s.backend.cancels).toBe(1);
    // the cancelled command completes normally in this backend, so a response still arrives
    expect(r.value?.length ?? 0).toBeGreaterThanOrEqual(0);
    expect(r.error === undefined || r.error instanceof TpmTransportError).toBe(true);
  });
});

describe("tis driver: interrupts", () => {
  it("uses the device's interrupt line when offered: no polling while the backend works", async () => {
    const s = stack({ driver: {} });
    const t = tis({ mmio: s.counted, interrupts: s.device });
    await t.open({ clock: s.clock, locality: 0 });
    expect(t.info?.interrupts).toBe(true);
    s.backend.options.executionMs = 50;
    s.counted.reset();
    const rsp = await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: s.clock });
    expect(rsp.length).toBe(28);
    expect(t.interruptCount).toBeGreaterThan(0);
    // polling the same command takes > 40 reads; interrupt mode needs a handful
    expect(s.counted.counts.reads).toBeLessThan(15);
  });

  it("enables interrupts per locality on first use", async () => {
    const s = stack();
    const t = tis({ mmio: s.counted, interrupts: s.device });
    await t.open({ clock: s.clock, locality: 0 });
    await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 2, timeoutMs: 2000, clock: s.clock });
    expect(s.device.state.localities[2]!.intEnable >>> 0).toBe((0x8000_0087 | 0x08) >>> 0);
  });

  it("falls back to polling when no interrupt arrives during the probe", async () => {
    const s = stack();
    const dead: InterruptLine = { onInterrupt: () => () => {} };
    const t = tis({ mmio: s.counted, interrupts: dead });
    await t.open({ clock: s.clock, locality: 0 });
    expect(t.info?.interrupts).toBe(false);
    expect((await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: s.clock })).length).toBe(28);
  });
});

describe("tis driver: broken interrupts", () => {
  it("broken IRQ routing on the device (interrupts latch but never arrive): polling after the probe", async () => {
    const s = stack();
    s.device.faults.loseInterrupts = true;
    const t = tis({ mmio: s.counted, interrupts: s.device });
    const events: TisDriverEvent[] = [];
    const fn = (m: unknown) => events.push(m as TisDriverEvent);
    subscribe(TIS_DRIVER_CHANNEL, fn);
    try {
      await t.open({ clock: s.clock, locality: 0 });
    } finally {
      unsubscribe(TIS_DRIVER_CHANNEL, fn);
    }
    expect(t.info?.interrupts).toBe(false);
    expect(events).toContainEqual({ type: "irq-fallback", reason: "no interrupt during the probe command" });
    expect((await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: s.clock })).length).toBe(28);
  });

  it("an interrupt storm (over 1000 unhandled interrupts, each within 100 ms) turns interrupts off", async () => {
    const s = stack();
    const { line, fire } = strayInterrupts(s.device);
    const t = tis({ mmio: s.counted, interrupts: line });
    await t.open({ clock: s.clock, locality: 0 });
    expect(t.info?.interrupts).toBe(true);
    for (let i = 0; i < 995; i++) fire();
    expect(t.info?.interrupts).toBe(true);
    for (let i = 0; i < 10; i++) fire();
    expect(t.info?.interrupts).toBe(false);
    s.backend.options.executionMs = 5;
    expect((await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: s.clock })).length).toBe(28);
  });

  it("unhandled interrupts spread out in time are not a storm", async () => {
    const s = stack();
    const { line, fire } = strayInterrupts(s.device);
    const t = tis({ mmio: s.counted, interrupts: line });
    await t.open({ clock: s.clock, locality: 0 });
    for (let i = 0; i < 1100; i++) {
      fire();
      if (i % 500 === 499) await s.clock.advance(101);
    }
    expect(t.info?.interrupts).toBe(true);
  });
});

describe("tis driver: options", () => {
  it("rejects malformed options with TpmArgumentError", () => {
    const s = stack();
    expect(() => tis({} as never)).toThrow(TpmArgumentError);
    expect(() => tis({ mmio: s.device, locality: 7 })).toThrow(TpmArgumentError);
    expect(() => tis({ mmio: s.device, locality: 7 })).toThrow("tis: locality must be an integer in 0–4, got 7");
    expect(() => tis({ mmio: s.device, retries: 0 })).toThrow(TpmArgumentError);
    expect(() => tis({ mmio: s.device, timeouts: { a: -1 } })).toThrow(TpmArgumentError);
  });

  it("exposes its locality option as the transport's defaultLocality, and publishes on tpmkit:driver:tis", () => {
    const s = stack();
    expect(tis({ mmio: s.device, locality: 2 }).defaultLocality).toBe(2);
    expect(tis({ mmio: s.device }).defaultLocality).toBeUndefined();
    expect(TIS_DRIVER_CHANNEL).toBe("tpmkit:driver:tis");
  });

  it("honours shorter timeouts (TIMEOUT_A = 100 ms for an absent device)", async () => {
    const s = stack({ faults: [{ kind: "stuck", value: 0 }], driver: { timeouts: { a: 100 } } });
    const r = await timed(s.clock, s.open());
    expect(r.error).toBeInstanceOf(TpmNotFoundError);
    expect(r.ms).toBe(100);
  });
});

/** The device's interrupt line, plus a way to raise unsolicited dataAvail interrupts on it. */
function strayInterrupts(device: InterruptLine): { line: InterruptLine; fire: () => void } {
  let cb: Parameters<InterruptLine["onInterrupt"]>[0] | undefined;
  const line: InterruptLine = {
    onInterrupt: (fn) => {
      cb = fn;
      return device.onInterrupt(fn);
    },
  };
  return { line, fire: () => cb?.({ locality: 0, causes: 0x01 }) };
}
