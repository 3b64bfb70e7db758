/**
 * One contract test, run over every device model: each follows the lifecycle of
 * `src/devices/lifecycle.ts` (start, ready, killBackend, reset, stop, phase events on its channel).
 */
import { describe, it, expect } from "vitest";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { TisDevice, TIS_DEVICE_CHANNEL } from "./tis/index.js";
import { CrbDevice, CRB_DEVICE_CHANNEL } from "./crb/index.js";
import type { DeviceModel, DevicePhaseEvent, DeviceState } from "./lifecycle.js";
import { FakeTpmBackend, getRandomCommand } from "../testing/fake-backend.js";
import { FakeClock } from "../core/clock.js";
import { TpmStateError } from "../errors/index.js";
import type { TpmBackend } from "../core/transport.js";

/** What the contract test needs to know about a model besides the contract. */
interface ModelUnderTest {
  name: string;
  channel: string;
  make(backend: TpmBackend, clock: FakeClock, channel?: string | false): DeviceModel & { read32(offset: number): number };
  /** A register that reads 0x81 on a live device (TIS ACCESS_0, CRB LOC_STATE_0) and 0 on a dead one. */
  alive: number;
  /** Takes locality 0 and starts GetRandom(8). */
  submit(device: DeviceModel): void;
  /** Is a command executing? */
  executing(device: DeviceModel): boolean;
}

const MODELS: ModelUnderTest[] = [
  {
    name: "TisDevice",
    channel: TIS_DEVICE_CHANNEL,
    make: (backend, clock, channel) => new TisDevice({ backend, clock, ...(channel === undefined ? {} : { channel }) }),
    alive: 0x000,
    submit(device) {
      const d = device as TisDevice;
      d.write8(0x000, 0x02); // ACCESS.requestUse
      d.write8(0x018, 0x40); // STS.commandReady
      d.writeFifo(0x024, getRandomCommand(8));
      d.write8(0x018, 0x20); // STS.tpmGo
    },
    executing: (device) => (device as TisDevice).state.executing,
  },
  {
    name: "CrbDevice",
    channel: CRB_DEVICE_CHANNEL,
    make: (backend, clock, channel) => new CrbDevice({ backend, clock, ...(channel === undefined ? {} : { channel }) }),
    alive: 0x00,
    submit(device) {
      const d = device as CrbDevice;
      d.write32(0x08, 1); // LOC_CTRL.requestAccess
      d.writeFifo(0x80, getRandomCommand(8));
      d.write32(0x4c, 1); // CTRL_START
    },
    executing: (device) => (device as CrbDevice).state.started,
  },
];

const settle = () => new Promise<void>((r) => setImmediate(r));

/** Collects what is published on `channel` while `fn` runs. */
async function published(channel: string, fn: () => Promise<void>): Promise<Array<{ type: string; device: unknown; time: number }>> {
  const seen: Array<{ type: string; device: unknown; time: number }> = [];
  const listener = (m: unknown) => void seen.push(m as { type: string; device: unknown; time: number });
  subscribe(channel, listener);
  try {
    await fn();
  } finally {
    unsubscribe(channel, listener);
  }
  return seen;
}

describe.each(MODELS)("$name follows the device-model lifecycle", (m) => {
  it("starts: 'starting' until the backend's start() resolves, then 'running'; ready resolves and start() says 'running'", async () => {
    let release!: () => void;
    const backend = new FakeTpmBackend({ start: () => new Promise<void>((r) => (release = r)) });
    const device = m.make(backend, new FakeClock());
    expect(device.state.phase).toBe("starting");
    expect(device.read32(m.alive)).toBe(0);
    release();
    await expect(device.ready).resolves.toBeUndefined();
    await expect(device.start()).resolves.toBe("running");
    expect(device.state.phase).toBe("running");
    expect(device.read32(m.alive) & 0xff).toBe(0x81);
  });

  it("is running at once in front of a backend without start()", () => {
    const device = m.make(new FakeTpmBackend({ start: false }), new FakeClock());
    expect(device.state.phase).toBe("running");
    expect(device.read32(m.alive) & 0xff).toBe(0x81);
  });

  it("fails when the backend's start() rejects: ready rejects with that error, start() resolves 'failed', registers read 0", async () => {
    const error = new Error("swtpm: cannot open state");
    const device = m.make(new FakeTpmBackend({ failStart: error }), new FakeClock());
    await expect(device.ready).rejects.toBe(error);
    await expect(device.start()).resolves.toBe("failed");
    expect(device.state.phase).toBe("failed");
    expect(device.state.lastError).toBe(error);
    expect(device.read32(m.alive)).toBe(0);
  });

  it("killBackend(): fails with the cause, the command in flight never completes, registers read 0", async () => {
    const backend = new FakeTpmBackend({ mode: "hang" });
    const device = m.make(backend, new FakeClock());
    await device.start();
    m.submit(device);
    await settle();
    expect(m.executing(device)).toBe(true);
    expect(backend.inFlight).toBe(1);
    device.killBackend("emulator exited");
    await settle();
    expect(backend.inFlight).toBe(0); // the execute signal fired
    expect(device.state.phase).toBe("failed");
    expect(device.state.lastError).toBe("emulator exited");
    expect(device.read32(m.alive)).toBe(0);
    await expect(device.start()).resolves.toBe("failed"); // dead until reset
  });

  it("killBackend() during start: ready rejects with a TpmStateError carrying the cause; the late start does not revive it", async () => {
    let release!: () => void;
    const device = m.make(new FakeTpmBackend({ start: () => new Promise<void>((r) => (release = r)) }), new FakeClock());
    const ready = device.ready;
    device.killBackend("exit 1");
    const e = await ready.then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(TpmStateError);
    expect((e as Error).cause).toBe("exit 1");
    release();
    await settle();
    expect(device.state.phase).toBe("failed");
  });

  it("reset(): forgets the command in flight, starts the backend again and resolves 'running'; never rejects", async () => {
    const backend = new FakeTpmBackend({ mode: "hang" });
    const device = m.make(backend, new FakeClock());
    await device.start();
    m.submit(device);
    await settle();
    await expect(device.reset()).resolves.toBe("running");
    expect(backend.starts).toBe(2);
    expect(m.executing(device)).toBe(false);
    expect(device.read32(m.alive) & 0xff).toBe(0x81);
    // killed, then reset: back; and a reset whose start fails resolves "failed" instead of rejecting
    device.killBackend();
    await expect(device.reset()).resolves.toBe("running");
    backend.options.failStart = new Error("no NV");
    await expect(device.reset()).resolves.toBe("failed");
    await expect(device.ready).rejects.toThrow("no NV");
    backend.options.failStart = undefined;
    await expect(device.reset()).resolves.toBe("running");
  });

  it("a ready taken before a reset follows the new start's outcome", async () => {
    let release!: () => void;
    const backend = new FakeTpmBackend({ start: () => new Promise<void>((r) => (release = r)) });
    const device = m.make(backend, new FakeClock());
    const early = device.ready;
    const reset = device.reset();
    release();
    await expect(reset).resolves.toBe("running");
    await expect(early).resolves.toBeUndefined();
  });

  it("stop() and await using power it off (registers read 0); start() powers it up again", async () => {
    const backend = new FakeTpmBackend();
    const device = m.make(backend, new FakeClock());
    await device.start();
    await device.stop();
    expect(device.state.phase).toBe("stopped");
    expect(device.read32(m.alive)).toBe(0);
    await expect(device.start()).resolves.toBe("running");
    expect(backend.starts).toBe(2);
    {
      await using d = device;
      expect(d.state.phase).toBe("running");
    }
    expect(device.state.phase).toBe("stopped");
  });

  it("publishes { type: 'phase', from, to, cause? } with the device and the clock time on its channel", async () => {
    const clock = new FakeClock();
    await clock.advance(42);
    let device!: DeviceModel<DeviceState>;
    const events = await published(m.channel, async () => {
      device = m.make(new FakeTpmBackend(), clock);
      await device.start();
      device.killBackend("gone");
      await device.reset();
      await device.stop();
    });
    expect(device.channel).toBe(m.channel);
    const mine = events.filter((e) => e.device === device);
    for (const e of mine) {
      expect(typeof e.type).toBe("string");
      expect(e.time).toBe(42);
    }
    const phases = mine.filter((e): e is DevicePhaseEvent & { device: unknown; time: number } => e.type === "phase").map(({ from, to, cause }) => (cause === undefined ? { from, to } : { from, to, cause }));
    expect(phases).toEqual([
      { from: "starting", to: "running" },
      { from: "running", to: "failed", cause: "gone" },
      { from: "failed", to: "starting" },
      { from: "starting", to: "running" },
      { from: "running", to: "stopped" },
    ]);
  });

  it("publishes nothing with channel: false, and on the channel it is given", async () => {
    let silent!: DeviceModel;
    const none = await published(m.channel, async () => {
      silent = m.make(new FakeTpmBackend(), new FakeClock(), false);
      await silent.start();
    });
    expect(silent.channel).toBeUndefined();
    expect(none.filter((e) => e.device === silent)).toEqual([]);
    const own = await published("tpmkit:device:test", async () => {
      await m.make(new FakeTpmBackend(), new FakeClock(), "tpmkit:device:test").start();
    });
    expect(own.map((e) => e.type)).toContain("phase");
  });
});
