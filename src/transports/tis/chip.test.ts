import { describe, it, expect } from "vitest";
import { Chip } from "../../core/chip.js";
import { Tpm } from "../../client/tpm.js";
import { tis } from "./tis.js";
import { TisDevice } from "../../devices/tis/device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";
import { TpmNotFoundError, TpmTimeoutError } from "../../errors/index.js";
import { expectPcr17Extends } from "../../../test/support/pcr17.js";
import { SoftTpm } from "../../softtpm/index.js";
import { TpmResponseError } from "../../wire/rc.js";
import { TPM_RC } from "../../wire/constants.js";

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

  it("tis({ locality: 3 }) sends every command at locality 3: PCR 17 (locality 2–4 only) extends", async () => {
    const clock = new FakeClock({ auto: true });
    const transport = tis({ mmio: new TisDevice({ backend: new SoftTpm(), clock }), locality: 3 });
    expect(transport.defaultLocality).toBe(3);
    const tpm = await Tpm.open(transport, { clock });
    await expectPcr17Extends(tpm);
    await tpm.close();
  });

  it("tis() without a locality option sends at the chip's 0, where a PCR 17 extend is refused with TPM_RC_LOCALITY", async () => {
    const clock = new FakeClock({ auto: true });
    const transport = tis({ mmio: new TisDevice({ backend: new SoftTpm(), clock }) });
    expect(transport.defaultLocality).toBeUndefined();
    const tpm = await Tpm.open(transport, { clock });
    const e = await tpm.pcrExtend(17, { sha256: new Uint8Array(32) }).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(TpmResponseError);
    expect((e as TpmResponseError).base).toBe(TPM_RC.LOCALITY);
    await tpm.close();
  });

  it("a chip's own locality option wins over tis({ locality })", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ clock });
    const chip = new Chip(tis({ mmio: new TisDevice({ backend, clock }), locality: 3 }), { clock, locality: 1 });
    await chip.open();
    await chip.transmit(getRandom(4));
    // the probe runs at the driver's own locality (see tis.test.ts), the command at the chip's
    expect(backend.commands.map((c) => c.locality)).toEqual([3, 1]);
  });
});
