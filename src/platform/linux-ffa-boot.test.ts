import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FakeClock } from "../core/clock.js";
import { Tpm } from "../client/tpm.js";
import { memory } from "../transports/memory/index.js";
import { SoftTpm } from "../softtpm/index.js";
import { TpmArgumentError } from "../errors/index.js";
import { FfaBus, TpmServicePartition } from "../devices/ffa/index.js";
import { CrbDevice } from "../devices/crb/index.js";
import { crb } from "../transports/crb/crb.js";
import { ffaStart } from "../transports/crb/start-ffa.js";
import { IMA_BYPASS_LOG, imaBootAggregate } from "./ima.js";
import { DEFERRED_PROBE_INITCALL } from "./platform.js";
import { timelineSvg } from "./svg.js";
import type { TimelineEntry } from "./timeline.js";
import { LINUX_FFA_BOOT_FIXES, LINUX_FFA_LINK_ORDER, LINUX_FFA_NAMES as N, linuxFfaBoot, type LinuxFfaInitcall } from "./linux-ffa-boot.js";

const ORDERS: LinuxFfaInitcall[][] = [
  ["ffa_init", "tpm_crb_ffa_init", "crb_acpi_driver_init"],
  ["ffa_init", "crb_acpi_driver_init", "tpm_crb_ffa_init"],
  ["tpm_crb_ffa_init", "ffa_init", "crb_acpi_driver_init"],
  ["tpm_crb_ffa_init", "crb_acpi_driver_init", "ffa_init"],
  ["crb_acpi_driver_init", "ffa_init", "tpm_crb_ffa_init"],
  ["crb_acpi_driver_init", "tpm_crb_ffa_init", "ffa_init"],
];

function indexOf(timeline: readonly TimelineEntry[], pred: (e: TimelineEntry) => boolean, what: string): number {
  const i = timeline.findIndex(pred);
  if (i < 0) throw new Error(`no ${what} on the timeline`);
  return i;
}

async function closeChips(p: { platform: { chips: readonly Tpm[] } }): Promise<void> {
  for (const c of p.platform.chips) await c.close();
}

describe("linuxFfaBoot: the link order × fix matrix", () => {
  const cases = ORDERS.flatMap((order) => LINUX_FFA_BOOT_FIXES.map((fix) => [order.join(" → "), fix, order] as const));
  it.each(cases)("%s, fix %s", async (_name, fix, order) => {
    const clock = new FakeClock({ auto: true });
    const boot = await linuxFfaBoot({ linkOrder: order, fix, clock });
    // with "none": bypass exactly when crb_acpi runs before ffa_init or tpm_crb_ffa_init
    const expectBypass = fix === "none" && order[2] !== "crb_acpi_driver_init";
    expect(boot.ima.bypass).toBe(expectBypass);
    expect(boot.ima.log.includes(IMA_BYPASS_LOG)).toBe(expectBypass);
    if (expectBypass) expect(boot.ima.aggregate).toEqual(new Uint8Array(32));
    else expect(boot.ima.aggregate.some((b) => b !== 0)).toBe(true);
    expect(boot.ima.entryName).toBe(fix === "late-sync" ? "boot_aggregate_late" : "boot_aggregate");
    // in every case the chip is there at the end of the boot (the flush binds it at the latest)
    expect(boot.report.chips).toEqual(["tpm0"]);
    expect(boot.report.deferred).toEqual([]);
    expect(boot.report.errors).toEqual([]);
    expect(boot.platform.device(N.acpiDevice)?.driver).toBe(N.crbDriver);
    expect(boot.platform.device("arm-ffa-1")?.driver).toBe(N.tpmCrbFfaDriver);
    await closeChips(boot);
  });
});

describe("linuxFfaBoot: the timeline", () => {
  it("default order, no fix: deferral, FF-A bind, IMA bypass, flush, CRB bind, chip — in that order", async () => {
    const boot = await linuxFfaBoot({ clock: new FakeClock({ auto: true }) });
    const t = boot.timeline;
    const deferral = indexOf(t, (e) => e.kind === "probe-deferred" && e.name === N.acpiDevice && e.driver === N.crbDriver, "deferral");
    const ffaBind = indexOf(t, (e) => e.kind === "bind" && e.name === "arm-ffa-1" && e.driver === N.tpmCrbFfaDriver, "FF-A bind");
    const ima = indexOf(t, (e) => e.kind === "ima", "IMA decision");
    const flush = indexOf(t, (e) => e.kind === "deferred-flush", "flush");
    const crbBind = indexOf(t, (e) => e.kind === "bind" && e.name === N.acpiDevice, "CRB bind");
    const chip = indexOf(t, (e) => e.kind === "chip-register", "chip registration");
    expect(deferral).toBeLessThan(ffaBind);
    expect(ffaBind).toBeLessThan(ima);
    expect(ima).toBeLessThan(flush);
    // tpm_chip_register() runs inside crb_acpi_add(), so the chip is registered just before the bind
    expect(flush).toBeLessThan(chip);
    expect(chip).toBeLessThan(crbBind);
    expect(t[ima]!.detail).toMatch(/bypass/i);
    expect(t[ima]!.level).toBe("late");
    expect(t[flush]!.detail).toBe(`retrying ${N.acpiDevice}`);
    expect(t[deferral]!.level).toBe("device");
    expect(boot.platform.dmesg).toContain(IMA_BYPASS_LOG);
    // the device initcalls ran in the kernel's link order
    const starts = t.filter((e) => e.kind === "initcall-start" && e.level === "device").map((e) => e.name);
    expect(starts).toEqual([...LINUX_FFA_LINK_ORDER]);
    await closeChips(boot);
  });

  it("rootfs: ffa_init at rootfs, ffa-crb registered and bound inside crb_acpi's probe, no deferral", async () => {
    const boot = await linuxFfaBoot({ fix: "rootfs", clock: new FakeClock({ auto: true }) });
    const t = boot.timeline;
    expect(t.find((e) => e.kind === "initcall-start" && e.name === "ffa_init")?.level).toBe("rootfs");
    expect(t.some((e) => e.kind === "initcall-start" && e.name === "tpm_crb_ffa_init")).toBe(false);
    expect(t.some((e) => e.kind === "probe-deferred")).toBe(false);
    const reg = indexOf(t, (e) => e.kind === "driver-register" && e.name === N.tpmCrbFfaDriver, "ffa-crb registration");
    expect(t[reg]!.level).toBe("device");
    const ffaBind = indexOf(t, (e) => e.kind === "bind" && e.driver === N.tpmCrbFfaDriver, "FF-A bind");
    const crbBind = indexOf(t, (e) => e.kind === "bind" && e.driver === N.crbDriver, "CRB bind");
    const ima = indexOf(t, (e) => e.kind === "ima", "IMA");
    expect(reg).toBeLessThan(ffaBind);
    expect(ffaBind).toBeLessThan(crbBind);
    expect(crbBind).toBeLessThan(ima);
    expect(boot.ima.bypass).toBe(false);
    await closeChips(boot);
  });

  it("late-sync: IMA after the flush, at late_sync, entry boot_aggregate_late", async () => {
    const boot = await linuxFfaBoot({ fix: "late-sync", clock: new FakeClock({ auto: true }) });
    const t = boot.timeline;
    const flush = indexOf(t, (e) => e.kind === "deferred-flush", "flush");
    const chip = indexOf(t, (e) => e.kind === "chip-register", "chip");
    const ima = indexOf(t, (e) => e.kind === "ima", "IMA");
    expect(flush).toBeLessThan(chip);
    expect(chip).toBeLessThan(ima);
    expect(t[ima]!.level).toBe("late_sync");
    expect(t[ima]!.detail).toMatch(/^boot_aggregate_late sha256 /);
    await closeChips(boot);
  });

  it("wait: init_ima starts before the flush, waits (bounded), the flush still runs and IMA measures after the chip", async () => {
    const boot = await linuxFfaBoot({ fix: "wait", imaWaitMs: 50, clock: new FakeClock({ auto: true }) });
    const t = boot.timeline;
    const start = indexOf(t, (e) => e.kind === "initcall-start" && e.name === N.ima, "init_ima start");
    const wait = indexOf(t, (e) => e.kind === "wait" && e.name === N.ima, "wait");
    const flush = indexOf(t, (e) => e.kind === "deferred-flush", "flush");
    const chip = indexOf(t, (e) => e.kind === "chip-register", "chip");
    const ima = indexOf(t, (e) => e.kind === "ima", "IMA");
    expect(t[start]!.detail).toBe("async");
    expect(start).toBeLessThan(wait);
    expect(wait).toBeLessThan(flush);
    expect(flush).toBeLessThan(chip);
    expect(chip).toBeLessThan(ima);
    expect(t.filter((e) => e.kind === "wait" && e.name === N.ima).map((e) => e.detail)).toEqual(["waiting for a TPM chip, up to 50 ms", expect.stringMatching(/^chip tpm0 after \d+ ms$/)]);
    expect(boot.ima.bypass).toBe(false);
    await closeChips(boot);
  });

  it("wait: a TPM that never comes (partition absent) times out after imaWaitMs of virtual time → bypass", async () => {
    const clock = new FakeClock({ auto: true });
    const boot = await linuxFfaBoot({ fix: "wait", imaWaitMs: 300, clock, faults: { absent: true } });
    expect(boot.ima.bypass).toBe(true);
    expect(boot.report.chips).toEqual([]);
    expect(boot.report.deferred).toEqual([N.acpiDevice]);
    const waits = boot.timeline.filter((e) => e.kind === "wait" && e.name === N.ima);
    expect(waits.map((e) => e.detail)).toEqual(["waiting for a TPM chip, up to 300 ms", "timed out after 300 ms"]);
    expect(boot.platform.dmesg).toContain("arm_ffa: no partitions found");
    expect(boot.platform.dmesg).toContain(IMA_BYPASS_LOG);
  });
});

describe("linuxFfaBoot: firmware measurements in the aggregate", () => {
  async function firmwareMeasured(): Promise<{ soft: SoftTpm; expected: string }> {
    const soft = new SoftTpm({ seed: "firmware" });
    const fw = await Tpm.open(memory({ backend: soft }));
    for (let pcr = 0; pcr <= 7; pcr++) await fw.pcrExtend(pcr, { sha256: new Uint8Array(32).fill(pcr + 1) });
    // recompute: SHA-256 over PCR 0..9 of the sha256 bank (ima_calc_boot_aggregate for a non-SHA-1 bank)
    const values = await fw.pcrRead({ sha256: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    const h = createHash("sha256");
    for (let i = 0; i <= 9; i++) h.update(values.sha256![i]!);
    const expected = h.digest("hex");
    expect(toHex((await imaBootAggregate(fw)).aggregate)).toBe(expected);
    return { soft, expected };
  }

  it.each(["rootfs", "late-sync", "wait"] as const)("fix %s: the aggregate covers the PCRs firmware extended", async (fix) => {
    const { soft, expected } = await firmwareMeasured();
    const boot = await linuxFfaBoot({ fix, backend: soft, clock: new FakeClock({ auto: true }) });
    expect(boot.ima.bypass).toBe(false);
    expect(boot.ima.bank).toBe("sha256");
    expect(toHex(boot.ima.aggregate)).toBe(expected);
    // and differs from a fresh TPM's
    const fresh = await linuxFfaBoot({ fix, clock: new FakeClock({ auto: true }) });
    expect(toHex(fresh.ima.aggregate)).not.toBe(expected);
    await closeChips(boot);
    await closeChips(fresh);
  });

  it("fix none, bypass: the aggregate is zero even though firmware measured", async () => {
    const { soft } = await firmwareMeasured();
    const boot = await linuxFfaBoot({ backend: soft, clock: new FakeClock({ auto: true }) });
    expect(boot.ima.bypass).toBe(true);
    expect(boot.ima.aggregate).toEqual(new Uint8Array(32));
    await closeChips(boot);
  });
});

describe("linuxFfaBoot: variants, call counts and options", () => {
  it.each(["mu", "ts", "stmm"] as const)("variant %s boots and IMA measures (fix rootfs)", async (variant) => {
    const boot = await linuxFfaBoot({ fix: "rootfs", variant, clock: new FakeClock({ auto: true }) });
    expect(boot.partition.variant).toBe(variant);
    expect(boot.ima.bypass).toBe(false);
    await closeChips(boot);
  });

  it("FF-A calls: probe 6, open 4 (START), then 5 per command", async () => {
    const clock = new FakeClock({ auto: true });
    const bus = new FfaBus({ clock, channel: false });
    const device = new CrbDevice({ backend: new SoftTpm(), localities: 5, trigger: "doorbell", channel: false });
    bus.addPartition(new TpmServicePartition({ device }));
    const start = ffaStart({ bus });
    // VERSION, ID_GET, FEATURES(PARTITION_INFO_GET_REGS), PARTITION_INFO_GET_REGS, FEATURES(REQ2), GET_INTERFACE_VERSION
    await start.probe!({ clock });
    expect(bus.calls).toBe(6);
    const tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    // crb's open probes again (6), then request locality, cmdReady, goIdle, relinquish (4), then TPM2_Startup (5)
    expect(bus.calls - 6).toBe(6 + 4 + 5);
    const before = bus.calls;
    await tpm.getRandom(8);
    expect(bus.calls - before).toBe(5); // request locality, cmdReady, start, goIdle, relinquish
    await tpm.close();
  });

  it("rejects bad options with TpmArgumentError", async () => {
    await expect(linuxFfaBoot({ linkOrder: ["ffa_init", "ffa_init", "crb_acpi_driver_init"] })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(linuxFfaBoot({ linkOrder: ["ffa_init"] })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(linuxFfaBoot({ fix: "later" as never })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(linuxFfaBoot({ imaWaitMs: -1 })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(linuxFfaBoot({ variant: "edk2" as never })).rejects.toBeInstanceOf(TpmArgumentError);
  });

  it("the flush entry is the platform's deferred_probe_initcall", async () => {
    const boot = await linuxFfaBoot({ clock: new FakeClock({ auto: true }) });
    expect(boot.timeline.find((e) => e.kind === "deferred-flush")?.name).toBe(DEFERRED_PROBE_INITCALL);
    await closeChips(boot);
  });
});

function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

describe("the committed pictures of docs/platform.md", () => {
  // the same two runs as bench/ffa-ima-svg.mjs (run it to regenerate the files)
  const pictures = [
    { file: "ffa-ima-bypass.svg", fix: "none", title: "Linux arm64, TPM over FF-A: kernel link order, no fix → IMA TPM-bypass" },
    { file: "ffa-ima-fixed.svg", fix: "late-sync", title: "Linux arm64, TPM over FF-A: kernel link order, fix late-sync → boot_aggregate_late" },
  ] as const;
  it.each(pictures)("docs/$file is what timelineSvg renders now", async ({ file, fix, title }) => {
    const boot = await linuxFfaBoot({ fix, clock: new FakeClock({ auto: true }) });
    await closeChips(boot);
    const svg = timelineSvg(boot.timeline, { title, imaBypass: boot.ima.bypass });
    expect(svg, "stale picture: run `node bench/ffa-ima-svg.mjs`").toBe(readFileSync(new URL(`../../docs/${file}`, import.meta.url), "utf8"));
    expect(svg).toContain(fix === "none" ? 'class="ima bypass"' : 'class="ima aggregate"');
  });
});
