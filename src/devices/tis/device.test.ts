import { describe, it, expect } from "vitest";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { TisDevice, TIS_DEVICE_CHANNEL, type TisDeviceEvent } from "./device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";
import { TpmArgumentError } from "../../errors/index.js";
import type { TpmBackend } from "../../core/transport.js";

const L = (loc: number, reg: number) => loc * 0x1000 + reg;
const ACCESS = 0x00, INT_ENABLE = 0x08, INT_VECTOR = 0x0c, INT_STATUS = 0x10, INTF_CAP = 0x14, STS = 0x18, FIFO = 0x24, IFACE_ID = 0x30, DID_VID = 0xf00, RID = 0xf04;
const GET_RANDOM_16 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);
const settle = () => new Promise<void>((r) => setImmediate(r));

async function make(opts: Partial<ConstructorParameters<typeof TisDevice>[0]> = {}) {
  const backend = (opts.backend as FakeTpmBackend | undefined) ?? new FakeTpmBackend();
  const device = new TisDevice({ ...opts, backend });
  await device.start();
  return { device, backend: backend as FakeTpmBackend };
}

function take(d: TisDevice, loc: number) {
  d.write8(L(loc, ACCESS), 0x02);
}

/** Writes a whole command at `loc` (locality already active) and hits GO. */
function submit(d: TisDevice, loc: number, cmd = GET_RANDOM_16) {
  d.write8(L(loc, STS), 0x40);
  d.writeFifo(L(loc, FIFO), cmd);
  d.write8(L(loc, STS), 0x20);
}

describe("TisDevice reset values and identity (QEMU hw/tpm/tpm_tis_common.c)", () => {
  it("reads QEMU's identity: DID_VID 0x00011014, RID 1, INTF_CAPABILITY 0x30000697, INTERFACE_ID 0x2100", async () => {
    const { device } = await make();
    expect(device.read32(DID_VID)).toBe(0x0001_1014);
    expect(device.read16(DID_VID + 2)).toBe(0x0001);
    expect(device.read8(RID)).toBe(0x01);
    expect(device.read32(INTF_CAP)).toBe(0x3000_0697);
    expect(device.read32(IFACE_ID)).toBe(0x0000_2100);
  });

  it("takes DID, VID and RID from options", async () => {
    const { device } = await make({ did: 0x1a, vid: 0x15d1, rid: 0x10 });
    expect(device.read32(L(2, DID_VID))).toBe(0x001a_15d1);
    expect(device.read8(RID)).toBe(0x10);
  });

  it("starts with ACCESS = regValidSts (+ establishment bit), INT_ENABLE 0x08, INT_STATUS 0, no active locality", async () => {
    const { device } = await make();
    for (let l = 0; l < 5; l++) {
      expect(device.read8(L(l, ACCESS))).toBe(0x81);
      expect(device.read32(L(l, INT_ENABLE))).toBe(0x08);
      expect(device.read32(L(l, INT_STATUS))).toBe(0);
    }
    expect(device.state.activeLocality).toBeNull();
    expect(device.state.localities.every((x) => x.state === "idle")).toBe(true);
  });

  it("INT_VECTOR reads the configured irq and ignores writes", async () => {
    const { device } = await make({ irq: 7 });
    take(device, 0);
    device.write8(INT_VECTOR, 3);
    expect(device.read8(INT_VECTOR)).toBe(7);
  });

  it("reads undecoded registers and offsets outside the window as all ones", async () => {
    const { device } = await make();
    expect(device.read32(0x40)).toBe(0xffff_ffff);
    expect(device.read8(0x5000)).toBe(0xff);
    expect(device.read16(-4)).toBe(0xffff);
  });

  it("reports TPM 1.2 values for a 1.2 backend (INTF 0x20000697, INTERFACE_ID all ones, family 0)", async () => {
    const { device } = await make({ version: "1.2" });
    expect(device.read32(INTF_CAP)).toBe(0x2000_0697);
    expect(device.read32(IFACE_ID)).toBe(0xffff_ffff);
    take(device, 0);
    expect(device.read32(STS) & 0x0c00_0000).toBe(0);
  });

  it("writing intfSelLock to INTERFACE_ID sets it in every locality", async () => {
    const { device } = await make();
    device.write32(L(1, IFACE_ID), 0x0008_0000);
    for (let l = 0; l < 5; l++) expect(device.read32(L(l, IFACE_ID))).toBe(0x0008_2100);
  });
});

describe("TisDevice backend start-up and failure mode (scenario 4)", () => {
  it("reads 0 while the backend is starting and comes up once start() resolves", async () => {
    let release!: () => void;
    const backend: TpmBackend = { start: () => new Promise<void>((r) => (release = r)), execute: async () => new Uint8Array(10) };
    const device = new TisDevice({ backend });
    expect(device.read8(ACCESS)).toBe(0);
    expect(device.tpmVersion).toBe("unspecified");
    release();
    await device.start();
    expect(device.read8(ACCESS)).toBe(0x81);
    expect(device.tpmVersion).toBe("2.0");
  });

  it("when start() rejects, every register reads 0, writes are ignored and the version is unspecified", async () => {
    const { device } = await make({ backend: new FakeTpmBackend({ failStart: new Error("swtpm: cannot open state") }) });
    expect(device.state.power).toBe("failed");
    expect(device.tpmVersion).toBe("unspecified");
    for (const off of [ACCESS, INT_ENABLE, INT_VECTOR, INT_STATUS, INTF_CAP, STS, FIFO, IFACE_ID, DID_VID, RID, 0x40]) {
      expect(device.read32(off)).toBe(0);
    }
    take(device, 0);
    expect(device.state.activeLocality).toBeNull();
    expect([...device.readFifo(FIFO, 4)]).toEqual([0, 0, 0, 0]);
  });

  it("killBackend() mid-command puts the device in failure mode and the command never completes", async () => {
    const clock = new FakeClock();
    const { device } = await make({ backend: new FakeTpmBackend({ clock, executionMs: 10 }), clock });
    take(device, 0);
    submit(device, 0);
    device.killBackend("emulator exited");
    await clock.advance(20);
    expect(device.read32(STS)).toBe(0);
    expect(device.state.executing).toBe(false);
    expect(device.state.power).toBe("failed");
  });

  it("keeps state.power as a deprecated alias of state.phase", async () => {
    const { device } = await make();
    expect([device.state.phase, device.state.power]).toEqual(["running", "on"]);
    await device.stop();
    expect([device.state.phase, device.state.power]).toEqual(["stopped", "off"]);
  });

  it("reset() brings a device back to reset values and restarts the backend", async () => {
    const { device, backend } = await make();
    take(device, 0);
    submit(device, 0);
    await settle();
    await device.reset();
    expect(backend.starts).toBe(2);
    expect(device.state.activeLocality).toBeNull();
    expect(device.state.localities[0]!.state).toBe("idle");
  });
});

describe("TisDevice locality arbitration", () => {
  it("requestUse with no active locality grants at once: ACCESS reads 0xA1", async () => {
    const { device } = await make();
    take(device, 2);
    expect(device.state.activeLocality).toBe(2);
    expect(device.read8(L(2, ACCESS))).toBe(0xa1);
    expect(device.read8(L(0, ACCESS))).toBe(0x81);
  });

  it("a request while another locality is active stays pending and others see pendingRequest", async () => {
    const { device } = await make();
    take(device, 0);
    take(device, 1);
    expect(device.state.activeLocality).toBe(0);
    expect(device.read8(L(1, ACCESS))).toBe(0x83);
    expect(device.read8(L(0, ACCESS))).toBe(0xa5);
    expect(device.read8(L(1, ACCESS)) & 0x04).toBe(0);
  });

  it("relinquish hands the TPM to the highest pending locality, scanning 4 down to 0", async () => {
    const { device } = await make();
    take(device, 0);
    take(device, 1);
    take(device, 3);
    device.write8(L(0, ACCESS), 0x20);
    expect(device.state.activeLocality).toBe(3);
    device.write8(L(3, ACCESS), 0x20);
    expect(device.state.activeLocality).toBe(1);
    device.write8(L(1, ACCESS), 0x20);
    expect(device.state.activeLocality).toBeNull();
  });

  it("activeLocality written by a non-owner withdraws its pending request", async () => {
    const { device } = await make();
    take(device, 0);
    take(device, 2);
    device.write8(L(2, ACCESS), 0x20);
    expect(device.read8(L(2, ACCESS)) & 0x02).toBe(0);
    device.write8(L(0, ACCESS), 0x20);
    expect(device.state.activeLocality).toBeNull();
  });

  it("Seize from a higher locality takes over and marks the old owner beenSeized until cleared", async () => {
    const { device } = await make();
    take(device, 0);
    device.write8(L(2, ACCESS), 0x08);
    expect(device.state.activeLocality).toBe(2);
    expect(device.read8(L(0, ACCESS)) & 0x30).toBe(0x10);
    expect(device.read8(L(2, ACCESS)) & 0x08).toBe(0); // Seize is never shown
    device.write8(L(0, ACCESS), 0x10);
    expect(device.read8(L(0, ACCESS)) & 0x10).toBe(0);
  });

  it("Seize from a lower locality is refused", async () => {
    const { device } = await make();
    take(device, 2);
    device.write8(L(1, ACCESS), 0x08);
    expect(device.state.activeLocality).toBe(2);
    expect(device.read8(L(2, ACCESS)) & 0x10).toBe(0);
  });

  it("ignores every write from locality 4", async () => {
    const { device } = await make();
    take(device, 4);
    expect(device.state.activeLocality).toBeNull();
    expect(device.read8(L(4, ACCESS))).toBe(0x81);
  });

  it("a relinquish during execution is queued and carried out when the command completes", async () => {
    const clock = new FakeClock();
    const { device, backend } = await make({ backend: new FakeTpmBackend({ clock, executionMs: 5 }), clock });
    take(device, 0);
    submit(device, 0);
    take(device, 1);
    device.write8(L(0, ACCESS), 0x20);
    expect(device.state.activeLocality).toBe(0);
    expect(device.state.nextLocality).toBe(1);
    expect(backend.cancels).toBe(1);
    await clock.advance(5);
    expect(device.state.activeLocality).toBe(1);
    expect(device.state.localities[0]!.state).toBe("completion");
  });

  it("STS and FIFO of a locality that is not active read all ones and ignore writes", async () => {
    const { device } = await make();
    take(device, 0);
    expect(device.read8(L(1, STS))).toBe(0xff);
    expect(device.read32(L(1, STS))).toBe(0xffff_ffff);
    expect(device.read8(L(1, FIFO))).toBe(0xff);
    device.write8(L(1, STS), 0x40);
    expect(device.state.localities[1]!.state).toBe("idle");
  });
});

describe("TisDevice command state machine", () => {
  it("commandReady moves IDLE to READY and STS reads 0x04100040 (family 2.0, burst 4096)", async () => {
    const { device } = await make();
    take(device, 0);
    device.write8(STS, 0x40);
    expect(device.state.localities[0]!.state).toBe("ready");
    expect(device.read32(STS)).toBe(0x0410_0040);
  });

  it("the first FIFO byte enters RECEPTION with Expect|stsValid; Expect drops when the header size is reached", async () => {
    const { device } = await make();
    take(device, 0);
    device.write8(STS, 0x40);
    device.write8(FIFO, GET_RANDOM_16[0]!);
    expect(device.state.localities[0]!.state).toBe("reception");
    expect(device.read8(STS)).toBe(0x88);
    device.writeFifo(FIFO, GET_RANDOM_16.subarray(1, 11));
    expect(device.read8(STS)).toBe(0x88);
    device.write8(FIFO, GET_RANDOM_16[11]!);
    expect(device.read8(STS)).toBe(0x80);
  });

  it("burst count while writing is the room left, capped at 0xFF for a byte read", async () => {
    const { device } = await make({ bufferSize: 1024 });
    take(device, 0);
    device.write8(STS, 0x40);
    device.writeFifo(FIFO, GET_RANDOM_16.subarray(0, 4));
    expect((device.read32(STS) >>> 8) & 0xffff).toBe(1020);
    expect(device.read8(STS + 1)).toBe(0xff);
    expect(device.read16(STS + 1)).toBe(1020);
  });

  it("a static burst count option caps the burst and sets burstCountStatic", async () => {
    const { device } = await make({ burstCount: 64 });
    take(device, 0);
    device.write8(STS, 0x40);
    expect((device.read32(STS) >>> 8) & 0xffff).toBe(64);
    expect(device.read32(INTF_CAP) & 0x100).toBe(0x100);
  });

  it("GO is ignored while Expect is set", async () => {
    const { device, backend } = await make();
    take(device, 0);
    device.write8(STS, 0x40);
    device.writeFifo(FIFO, GET_RANDOM_16.subarray(0, 8));
    device.write8(STS, 0x20);
    await settle();
    expect(device.state.localities[0]!.state).toBe("reception");
    expect(backend.commands).toHaveLength(0);
  });

  it("GO hands exactly the bytes written to the backend and the response arrives asynchronously", async () => {
    const { device, backend } = await make();
    take(device, 3);
    submit(device, 3);
    expect(device.state.localities[3]!.state).toBe("execution");
    expect(device.read8(L(3, STS)) & 0x10).toBe(0);
    await settle();
    expect(backend.commands[0]!.locality).toBe(3);
    expect([...backend.commands[0]!.command]).toEqual([...GET_RANDOM_16]);
    expect(device.state.localities[3]!.state).toBe("completion");
    expect(device.read32(L(3, STS))).toBe(0x0400_1c90); // 28 bytes to read, stsValid|dataAvail
  });

  it("FIFO reads return the response, burst counts the bytes left, and stsValid alone remains after the last byte", async () => {
    const { device } = await make();
    take(device, 0);
    submit(device, 0);
    await settle();
    const head = device.readFifo(FIFO, 10);
    expect([...head.subarray(0, 6)]).toEqual([0x80, 0x01, 0, 0, 0, 28]);
    expect((device.read32(STS) >>> 8) & 0xffff).toBe(18);
    device.readFifo(FIFO, 18);
    expect(device.read8(STS)).toBe(0x80);
    expect(device.read8(FIFO)).toBe(0xff);
  });

  it("responseRetry rewinds the response to its first byte", async () => {
    const { device } = await make();
    take(device, 0);
    submit(device, 0);
    await settle();
    const first = device.readFifo(FIFO, 28);
    device.write8(STS, 0x02);
    expect(device.read8(STS)).toBe(0x90);
    expect([...device.readFifo(FIFO, 28)]).toEqual([...first]);
  });

  it("commandReady in COMPLETION goes to READY and clears dataAvail", async () => {
    const { device } = await make();
    take(device, 0);
    submit(device, 0);
    await settle();
    device.write8(STS, 0x40);
    expect(device.state.localities[0]!.state).toBe("ready");
    expect(device.read8(STS)).toBe(0x40);
  });

  it("commandReady in RECEPTION aborts the command back to READY with the offset reset", async () => {
    const { device } = await make();
    take(device, 0);
    device.write8(STS, 0x40);
    device.writeFifo(FIFO, GET_RANDOM_16.subarray(0, 7));
    device.write8(STS, 0x40);
    expect(device.state.localities[0]!.state).toBe("ready");
    expect(device.state.rwOffset).toBe(0);
  });

  it("commandReady in EXECUTION asks the backend to cancel and lands in READY when it completes", async () => {
    const clock = new FakeClock();
    const { device, backend } = await make({ backend: new FakeTpmBackend({ clock, executionMs: 5 }), clock });
    take(device, 0);
    submit(device, 0);
    device.write8(STS, 0x40);
    expect(backend.cancels).toBe(1);
    await clock.advance(5);
    expect(device.state.localities[0]!.state).toBe("ready");
    expect(device.read8(STS)).toBe(0x40);
  });

  it("commandCancel (STS b24) in EXECUTION calls the backend's cancel", async () => {
    const clock = new FakeClock();
    const { device, backend } = await make({ backend: new FakeTpmBackend({ clock, executionMs: 5 }), clock });
    take(device, 0);
    submit(device, 0);
    device.write32(STS, 0x0100_0000);
    expect(backend.cancels).toBe(1);
    await clock.advance(5);
    expect(device.state.localities[0]!.state).toBe("completion");
  });

  it("drops FIFO bytes in IDLE, EXECUTION and COMPLETION", async () => {
    const clock = new FakeClock();
    const { device } = await make({ backend: new FakeTpmBackend({ clock, executionMs: 5 }), clock });
    take(device, 0);
    device.write8(FIFO, 0x80);
    expect(device.state.localities[0]!.state).toBe("idle");
    submit(device, 0);
    device.write8(FIFO, 0x99);
    expect(device.state.rwOffset).toBe(12);
    await clock.advance(5);
    device.write8(FIFO, 0x99);
    expect(device.read8(FIFO)).toBe(0x80);
  });

  it("a command longer than the buffer loses Expect at the end of the buffer", async () => {
    const { device } = await make({ bufferSize: 16 });
    take(device, 0);
    device.write8(STS, 0x40);
    const big = new Uint8Array(20);
    big.set([0x80, 0x01, 0, 0, 0, 20]);
    device.writeFifo(FIFO, big);
    expect(device.state.rwOffset).toBe(16);
    expect(device.read8(STS)).toBe(0x80);
  });

  it("a backend whose execute rejects yields a 10-byte TPM_RC_FAILURE response", async () => {
    const { device } = await make({ backend: { execute: async () => Promise.reject(new Error("socket closed")) } as unknown as FakeTpmBackend });
    take(device, 0);
    submit(device, 0);
    await settle();
    expect([...device.readFifo(FIFO, 10)]).toEqual([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01]);
  });

  it("sets selfTestDone in every locality after a successful TPM 1.2 ContinueSelfTest", async () => {
    const { device } = await make();
    take(device, 0);
    submit(device, 0, Uint8Array.from([0x00, 0xc1, 0, 0, 0, 10, 0, 0, 0, 0x53]));
    await settle();
    expect(device.state.localities.every((l) => (l.sts & 0x04) !== 0)).toBe(true);
  });

  it("resetEstablishment works from locality 3 only", async () => {
    const { device } = await make({ established: true });
    expect(device.read8(ACCESS) & 0x01).toBe(0);
    take(device, 0);
    device.write32(STS, 0x0200_0000);
    expect(device.state.established).toBe(true);
    device.write8(ACCESS, 0x20);
    take(device, 3);
    device.write32(L(3, STS), 0x0200_0000);
    expect(device.state.established).toBe(false);
    expect(device.read8(ACCESS) & 0x01).toBe(1);
  });
});

describe("TisDevice interrupts", () => {
  it("raises nothing until INT_ENABLE has globalIntEnable and the cause", async () => {
    const { device } = await make();
    const seen: unknown[] = [];
    device.onInterrupt((e) => seen.push(e));
    take(device, 0);
    submit(device, 0);
    await settle();
    expect(seen).toEqual([]);
    expect(device.read32(INT_STATUS)).toBe(0);
  });

  it("raises commandReady, dataAvail|stsValid as QEMU does, and INT_STATUS is write-1-to-clear", async () => {
    const { device } = await make();
    const seen: { locality: number; causes: number }[] = [];
    const off = device.onInterrupt((e) => seen.push(e));
    take(device, 0);
    device.write32(INT_ENABLE, 0x8000_0087);
    expect(device.read32(INT_ENABLE)).toBe(0x8000_0087);
    submit(device, 0);
    await settle();
    expect(seen).toEqual([
      { locality: 0, causes: 0x80 },
      { locality: 0, causes: 0x03 },
    ]);
    expect(device.read32(INT_STATUS)).toBe(0x83);
    expect(device.state.irqRaised).toBe(true);
    device.write32(INT_STATUS, 0x03);
    expect(device.read32(INT_STATUS)).toBe(0x80);
    device.write32(INT_STATUS, 0x80);
    expect(device.state.irqRaised).toBe(false);
    off();
    device.write8(STS, 0x40);
    expect(seen).toHaveLength(2);
  });

  it("raises localityChange on the new owner and stsValid after the last response byte", async () => {
    const { device } = await make();
    take(device, 0);
    device.write32(INT_ENABLE, 0x8000_0006);
    device.write8(ACCESS, 0x20);
    const seen: number[] = [];
    device.onInterrupt((e) => seen.push(e.causes));
    take(device, 0);
    expect(seen).toEqual([0x04]);
    submit(device, 0);
    await settle();
    device.readFifo(FIFO, 28);
    expect(seen).toEqual([0x04, 0x03, 0x02]);
  });

  it("ignores INT_ENABLE and INT_STATUS writes from a locality that is not active", async () => {
    const { device } = await make();
    device.write32(L(1, INT_ENABLE), 0x8000_0087);
    expect(device.read32(L(1, INT_ENABLE))).toBe(0x08);
  });
});

describe("TisDevice tracing, arguments and faults", () => {
  it("publishes every state change on tpmkit:device:tis", async () => {
    const events: TisDeviceEvent[] = [];
    const fn = (m: unknown) => events.push(m as TisDeviceEvent);
    subscribe(TIS_DEVICE_CHANNEL, fn);
    try {
      const { device } = await make();
      take(device, 0);
      submit(device, 0);
      await settle();
    } finally {
      unsubscribe(TIS_DEVICE_CHANNEL, fn);
    }
    expect(events.filter((e) => e.type === "state").map((e) => (e.type === "state" ? e.to : ""))).toEqual(["ready", "reception", "execution", "completion"]);
    expect(events.some((e) => e.type === "locality" && e.to === 0)).toBe(true);
    expect(events.some((e) => e.type === "phase" && e.to === "running")).toBe(true);
  });

  it("rejects bad constructor options and bad FIFO lengths with TpmArgumentError", () => {
    const backend = new FakeTpmBackend();
    expect(() => new TisDevice({ backend, bufferSize: 4 })).toThrow(TpmArgumentError);
    expect(() => new TisDevice({ backend, did: 0x10000 })).toThrow(TpmArgumentError);
    expect(() => new TisDevice({} as never)).toThrow(TpmArgumentError);
    expect(() => new TisDevice({ backend }).readFifo(FIFO, -1)).toThrow(TpmArgumentError);
  });

  it("stallExecution keeps a command in EXECUTION forever", async () => {
    const { device } = await make();
    device.faults.stallExecution = true;
    take(device, 0);
    submit(device, 0);
    await settle();
    expect(device.state.localities[0]!.state).toBe("execution");
  });

  it("completionDelayMs and mutateResponse change when and what the driver reads", async () => {
    const clock = new FakeClock();
    const { device } = await make({ clock });
    device.faults = { completionDelayMs: 3, mutateResponse: (r) => r.subarray(0, 12) };
    take(device, 0);
    submit(device, 0);
    await settle();
    expect(device.state.localities[0]!.state).toBe("execution");
    await clock.advance(3);
    expect(device.state.localities[0]!.state).toBe("completion");
    // the header still says 28: the FIFO shows bytes past the short response from the old buffer
    expect((device.read32(STS) >>> 8) & 0xffff).toBe(28);
  });
});
