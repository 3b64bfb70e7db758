import { describe, it, expect } from "vitest";
import { Chip } from "../../core/chip.js";
import { Tpm } from "../../client/tpm.js";
import { tis } from "./tis.js";
import { TisDevice } from "../../devices/tis/device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";
import { TpmNotFoundError, TpmTimeoutError } from "../../errors/index.js";

const getRandom = (n: number) => Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, n]);

describe("tis under the Chip", () => {
  it("serializes concurrent callers and hands each its own reply", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ clock, executionMs: 3 });
    const device = new TisDevice({ backend, clock });
    const chip = new Chip(tis({ mmio: device }), { clock });
    await chip.open();
    const sizes = [1, 2, 3, 4, 5, 6, 7, 8];
    const replies = await Promise.all(sizes.map((n, i) => chip.transmit(getRandom(n), { locality: i % 4 })));
    expect(replies.map((r) => r.length - 12)).toEqual(sizes);
    expect(backend.commands.slice(1).map((c) => c.locality)).toEqual(sizes.map((_, i) => i % 4));
  });

  it("marks the chip absent when the backend behind the TIS failed to start (scenario 4)", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new TisDevice({ backend: new FakeTpmBackend({ failStart: new Error("emulator failed") }), clock });
    await device.start();
    const chip = new Chip(tis({ mmio: device }), { clock });
    await expect(chip.open()).rejects.toBeInstanceOf(TpmNotFoundError);
    expect(chip.readiness).toBe("absent");
    expect(clock.now()).toBe(750);
  });

  it("turns a hung backend into a TpmTimeoutError at the command's duration", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ clock });
    const device = new TisDevice({ backend, clock });
    const chip = new Chip(tis({ mmio: device }), { clock });
    await chip.open();
    backend.options.hang = true;
    const t0 = clock.now();
    await expect(chip.transmit(getRandom(8), { timeoutMs: 500 })).rejects.toBeInstanceOf(TpmTimeoutError);
    expect(clock.now() - t0).toBeLessThanOrEqual(500 + 750);
  });

  it("Tpm.open(tis(...)) runs Startup and getRandom through the register path", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new TisDevice({ backend: new FakeTpmBackend(), clock });
    const tpm = await Tpm.open(tis({ mmio: device, interrupts: device }), { clock });
    const r = await tpm.getRandom(16);
    expect(r).toHaveLength(16);
    await tpm.close();
  });
});
