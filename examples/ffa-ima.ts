// The Linux arm64 boot of a TPM behind Arm FF-A (CRB over FF-A, ACPI TPM2 start method 15) and
// its IMA race, reproduced with linuxFfaBoot():
// - fix "none" with the kernel's link order (crb_acpi_driver_init, tpm_crb_ffa_init, ffa_init):
//   the CRB probe is deferred, init_ima runs before the deferred-probe flush and finds no chip:
//   "ima: No TPM chip found, activating TPM-bypass!";
// - each fix ("rootfs": the 2025 patches; "late-sync": IMA at late_initcall_sync, the 2026
//   rework; "wait": IMA waits for the chip, bounded): IMA measures the boot aggregate.
// Every boot runs on a FakeClock: no real waiting, the same output every run.
//
// Run: see examples/README.md.
import { pathToFileURL } from "node:url";
import { FakeClock, LINUX_FFA_BOOT_FIXES, linuxFfaBoot, timelineTable, toHex } from "../src/index.js";

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  for (const fix of LINUX_FFA_BOOT_FIXES) {
    const { ima, timeline, platform } = await linuxFfaBoot({ fix, clock: new FakeClock({ auto: true }) });
    try {
      const outcome = ima.bypass ? `TPM-bypass (${ima.log.join("; ")})` : `${ima.entryName} ${ima.bank} ${toHex(ima.aggregate).slice(0, 16)}…`;
      log(`fix ${fix}: ${outcome}`);
      if (fix === "none") {
        // the race, entry by entry: deferral, IMA's decision, then the flush that binds the TPM too late
        const keep = new Set(["probe-deferred", "bind", "deferred-flush", "chip-register", "ima"]);
        for (const row of timelineTable(timeline.filter((e) => keep.has(e.kind)), { timeDecimals: 0 }).trimEnd().split("\n")) log(`  ${row}`);
      }
    } finally {
      for (const chip of platform.chips) await chip.close();
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
