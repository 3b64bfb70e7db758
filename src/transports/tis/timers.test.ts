import { describe, it, expect } from "vitest";
import { tis } from "./tis.js";
import { TisDevice } from "../../devices/tis/device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock, systemClock } from "../../core/clock.js";
import type { Mmio } from "../../bus/mmio.js";
import { countingClock } from "../../../test/support/counting-clock.js";

// A device that answers synchronously must cost no timer per command (polls start with microtask
// yields; the cleanup accesses need no bound when they complete at once), while a bridge whose
// cleanup access hangs is still bounded by TIMEOUT_A.

const GET_RANDOM_16 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);
const ACCESS = 0x00;
const STS = 0x18;


/** Passes everything through to `inner`, except that writes matching `hang` return a promise that never settles. */
function hangingWrites(inner: Mmio, hang: (offset: number, value: number) => boolean): Mmio {
  const never = () => new Promise<void>(() => {});
  return {
    read8: (o) => inner.read8(o),
    read16: (o) => inner.read16(o),
    read32: (o) => inner.read32(o),
    write8: (o, v) => (hang(o, v) ? never() : inner.write8(o, v)),
    write16: (o, v) => inner.write16(o, v),
    write32: (o, v) => inner.write32(o, v),
    readFifo: (o, n) => inner.readFifo(o, n),
    writeFifo: (o, d) => inner.writeFifo(o, d),
  };
}

describe("tis driver: timers", () => {
  it("a synchronous device model costs no timer per command on the system clock", async () => {
    const clock = countingClock(systemClock);
    const device = new TisDevice({ backend: new FakeTpmBackend() });
    const t = tis({ mmio: device, clock });
    await t.open({ clock, locality: 0 });
    const before = clock.timers;
    for (let i = 0; i < 20; i++) {
      const r = await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
      expect(r.length).toBe(28);
    }
    expect(clock.timers).toBe(before);
    expect(device.state.activeLocality).toBeNull(); // relinquished synchronously after each command
  });

  it("a cleanup access that never completes is bounded by TIMEOUT_A and the response is still delivered", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new TisDevice({ backend: new FakeTpmBackend(), clock });
    let armed = false;
    const mmio = hangingWrites(device, (o, v) => armed && o === ACCESS && v === 0x20); // the relinquish write
    const t = tis({ mmio, clock });
    await t.open({ clock, locality: 0 });
    armed = true;
    const t0 = clock.now();
    const r = await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
    expect(r.length).toBe(28);
    expect(clock.now() - t0).toBe(750); // TIMEOUT_A of the TPM 2.0 timeouts
  });

  it("a cleanup commandReady write that throws synchronously is dropped and skips the relinquish, as an awaited one did", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new TisDevice({ backend: new FakeTpmBackend(), clock });
    let armed = false;
    const mmio: Mmio = {
      ...hangingWrites(device, () => false),
      write8: (o, v) => {
        if (armed && o === STS && v === 0x40) throw new Error("bus fault");
        return device.write8(o, v);
      },
    };
    const t = tis({ mmio, clock });
    await t.open({ clock, locality: 0 });
    // the first commandReady (before the data phase) must work: arm after the command is in
    const spy = device.writeFifo.bind(device);
    device.writeFifo = (o: number, d: Uint8Array) => {
      spy(o, d);
      armed = true;
    };
    const r = await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
    expect(r.length).toBe(28);
    expect(clock.now()).toBe(0); // no bound was waited for
    expect(device.state.activeLocality).toBe(0); // relinquish skipped after the failed write
  });
});
