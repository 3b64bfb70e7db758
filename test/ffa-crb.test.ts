import { describe, it, expect } from "vitest";
import { FfaBus } from "../src/devices/ffa/bus.js";
import { TpmServicePartition, type TpmServiceVariant } from "../src/devices/ffa/partition.js";
import { CrbDevice } from "../src/devices/crb/index.js";
import { SoftTpm } from "../src/softtpm/index.js";
import { FakeClock } from "../src/core/clock.js";
import { Tpm } from "../src/client/tpm.js";
import { crb } from "../src/transports/crb/crb.js";
import { ffaStart } from "../src/transports/crb/start-ffa.js";
import { FfaError, ProbeDeferredError } from "../src/errors/index.js";

async function rig(variant: TpmServiceVariant = "mu") {
  const clock = new FakeClock({ auto: true });
  const device = new CrbDevice({ backend: new SoftTpm(), localities: 5, trigger: "doorbell", channel: false });
  const partition = new TpmServicePartition({ device, variant });
  const bus = new FfaBus({ clock, channel: false });
  return { clock, device, partition, bus };
}

describe("crb(ffaStart) against FfaBus + TpmServicePartition", () => {
  it("mu: Tpm.open works and runs commands at localities 0–4", async () => {
    const { clock, device, partition, bus } = await rig();
    bus.addPartition(partition);
    for (const locality of [0, 1, 2, 3, 4]) {
      await using tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }), locality }), { clock });
      expect((await tpm.getRandom(8)).length).toBe(8);
    }
  });
  it("defers while the partition is not registered, works once it is hot-plugged", async () => {
    const { clock, device, partition, bus } = await rig();
    await expect(Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock })).rejects.toBeInstanceOf(ProbeDeferredError);
    bus.addPartition(partition);
    await using tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    expect((await tpm.getRandom(4)).length).toBe(4);
  });
  it("BUSY for less than the busy timeout is retried; DENIED fails with FfaError", async () => {
    const { clock, device, partition, bus } = await rig();
    bus.addPartition(partition);
    await using tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    partition.faults.busyForMs = 20;
    expect((await tpm.getRandom(4)).length).toBe(4);
    partition.faults.denied = true;
    await expect(tpm.getRandom(4)).rejects.toSatisfy((e) => e instanceof FfaError || (e as Error).cause instanceof FfaError);
  });
  it("interrupt every 2nd call is resumed with FFA_RUN", async () => {
    const { clock, device, partition, bus } = await rig();
    bus.addPartition(partition);
    partition.faults.interruptEvery = 2;
    await using tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    expect((await tpm.getRandom(4)).length).toBe(4);
  });
  it("stmm opens too (CTRL_REQ cleared with OK)", async () => {
    const { clock, device, partition, bus } = await rig("stmm");
    bus.addPartition(partition);
    await using tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    expect((await tpm.getRandom(4)).length).toBe(4);
  });
});

describe("Trusted Services variant against a Linux ≥ 6.18 client", () => {
  it("fails at cmdReady: TS ignores CTRL_REQ, so START(command) without CTRL_START is INV_CRB_CTRL_DATA", async () => {
    const { clock, device, partition, bus } = await rig("ts");
    bus.addPartition(partition);
    const err = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    const status = (err as { status?: number }).status ?? ((err as Error).cause as { status?: number } | undefined)?.status;
    expect(status).toBe(0x8e000006);
  });
});
