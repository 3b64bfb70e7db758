/**
 * `tpmkit boot ffa-ima`: reproduces the Linux arm64 CRB-over-FF-A / IMA boot race on the platform
 * model ({@link linuxFfaBoot}) and shows it: the boot timeline as a table, IMA's outcome
 * (TPM-bypass, or the boot_aggregate and its bank), optionally the timeline as an SVG. The race:
 * with the kernel's link order (drivers/char before drivers/firmware), tpm_crb's probe runs before
 * the FF-A bus found the TPM service partition, is deferred (-EPROBE_DEFER), and init_ima (late
 * initcall, before the deferred-probe flush) finds no chip: "ima: No TPM chip found, activating
 * TPM-bypass!" (security/integrity/ima/ima_init.c, ima_init()). `--fix` applies one of the fixes
 * (the 2025 patches, the 2026 late_initcall_sync rework, or a bounded wait for the chip).
 *
 * The boot runs on a virtual clock (a FakeClock that advances itself), so it is instant and its
 * timeline is the same on every run; no TPM outside this process is opened.
 *
 * @packageDocumentation
 */
import { writeFile } from "node:fs/promises";
import { FakeClock } from "../../core/clock.js";
import { toHex } from "../../wire/buffer.js";
import { linuxFfaBoot, LINUX_FFA_BOOT_FIXES, LINUX_FFA_LINK_ORDER, type LinuxFfaBootFix, type LinuxFfaInitcall } from "../../platform/linux-ffa-boot.js";
import { timelineTable } from "../../platform/table.js";
import { timelineSvg } from "../../platform/svg.js";
import type { TpmServiceVariant } from "../../devices/ffa/partition.js";
import { ftpmSupplicantBoot, FTPM_BOOT_VARIANTS, type FtpmBootScenario, type FtpmBootVariant } from "../../platform/ftpm-boot.js";
import { UsageError } from "../args.js";
import type { Verb } from "../verb.js";

/** The scenarios `tpmkit boot` reproduces. */
export const BOOT_SCENARIOS = ["ffa-ima", "ftpm-supplicant"] as const;

/** What `boot ftpm-supplicant` will do. */
export interface FtpmBootPlan {
  /** The scenario. */
  readonly scenario: "ftpm-supplicant";
  /** The seed: 000 built in vs module, 001 present before usable. */
  readonly seed: FtpmBootScenario;
  /** The variant (000: builtin|module; 001: stop-first|execstop). */
  readonly variant: FtpmBootVariant;
  /** The fTPM TA: early or REE-loaded. */
  readonly ta: "early" | "ree";
  /** Where to write the SVG, if anywhere. */
  readonly svg: string | undefined;
}

/** What `boot` will do: `ffa-ima` ({@link FfaBootPlan}) or `ftpm-supplicant` ({@link FtpmBootPlan}). */
export type BootPlan = FfaBootPlan | FtpmBootPlan;

/** What `boot ffa-ima` will do. */
export interface FfaBootPlan {
  /** The scenario. */
  readonly scenario: "ffa-ima";
  /** The order of the three device initcalls. */
  readonly linkOrder: readonly LinuxFfaInitcall[];
  /** The fix applied. */
  readonly fix: LinuxFfaBootFix;
  /** The TPM service partition's behaviour. */
  readonly variant: TpmServiceVariant;
  /** Where to write the SVG, if anywhere. */
  readonly svg: string | undefined;
}

const INITCALLS: readonly LinuxFfaInitcall[] = ["ffa_init", "tpm_crb_ffa_init", "crb_acpi_driver_init"];
const VARIANTS: readonly TpmServiceVariant[] = ["mu", "ts", "stmm"];

/**
 * Parses `--order`: three comma-separated initcall names, each once; the `_init` suffix may be left
 * out (`crb_acpi_driver,tpm_crb_ffa,ffa`).
 *
 * @param text - the option's value
 * @returns the link order
 * @throws UsageError unless it names each of the three initcalls exactly once
 * @example
 * ```ts
 * parseLinkOrder("ffa,tpm_crb_ffa,crb_acpi_driver"); // ["ffa_init", "tpm_crb_ffa_init", "crb_acpi_driver_init"]
 * ```
 */
export function parseLinkOrder(text: string): LinuxFfaInitcall[] {
  const names = text.split(",").map((s) => s.trim());
  const out: LinuxFfaInitcall[] = [];
  for (const n of names) {
    const full = (n.endsWith("_init") ? n : `${n}_init`) as LinuxFfaInitcall;
    if (!INITCALLS.includes(full)) throw new UsageError(`--order: "${n}" is not one of ${INITCALLS.join(", ")}`);
    if (out.includes(full)) throw new UsageError(`--order: "${full}" is given twice`);
    out.push(full);
  }
  if (out.length !== INITCALLS.length) throw new UsageError(`--order needs all three initcalls, comma-separated (${INITCALLS.join(",")}), got "${text}"`);
  return out;
}

/**
 * `tpmkit boot`: reproduces a boot race on the platform model and prints its timeline and the IMA
 * outcome (Linux security/integrity/ima/ima_init.c; drivers/char/tpm/tpm_crb.c, tpm_crb_ffa.c;
 * drivers/base/dd.c deferred probe). Needs no TPM. Exit 0 also on a bypass (the reproduction),
 * 2 for bad arguments.
 *
 * @example
 * ```sh
 * tpmkit boot ffa-ima                          # the bypass, with the kernel's link order
 * tpmkit boot ffa-ima --fix late-sync --svg boot.svg
 * tpmkit boot ffa-ima --json | jq .ima
 * ```
 */
export const boot: Verb<BootPlan> = {
  name: "boot",
  summary: "reproduce a boot race on the platform model (ffa-ima: CRB over FF-A vs IMA; ftpm-supplicant: fTPM vs tee-supplicant) and show its timeline",
  help: `usage: tpmkit boot ffa-ima [--order A,B,C] [--fix none|rootfs|late-sync|wait] [--variant mu|ts|stmm] [--svg FILE] [--json]
       tpmkit boot ftpm-supplicant [--scenario 000|001] [--variant V] [--ta early|ree] [--svg FILE] [--json]

Boots the Linux arm64 model of a TPM behind Arm FF-A (FF-A bus, TPM service partition, tpm_crb_ffa,
tpm_crb, deferred probe, IMA) on a virtual clock, and prints the boot timeline and what IMA did:
TPM-bypass ("ima: No TPM chip found, activating TPM-bypass!") or the boot_aggregate and its bank.
A bypass is the reproduction, not an error: the exit status is 0 either way (2 for bad arguments).

  --order A,B,C   the link order of the three device initcalls, each once (the "_init" may be
                  left out): ffa_init, tpm_crb_ffa_init, crb_acpi_driver_init.
                  Default ${LINUX_FFA_LINK_ORDER.join(",")} (the kernel's: bypass)
  --fix F         none (default): the race as reported
                  rootfs: ffa_init at rootfs_initcall + tpm_crb_ffa registered from tpm_crb (2025)
                  late-sync: IMA at late_initcall_sync, after the deferred-probe flush (2026)
                  wait: IMA waits for the chip, bounded, without holding up later initcalls
  --variant V     the TPM service partition: mu (default), ts (Arm Trusted Services), stmm (Arm StMM)
  --svg FILE      also write the timeline as an SVG picture to FILE
  --json          print {"ima":{...},"timeline":[...]} instead of the table

ftpm-supplicant boots Linux with a firmware TPM in OP-TEE (tpm_ftpm_tee, the OP-TEE driver,
tee-supplicant under systemd) on a virtual clock and prints the timeline with the TEE codes:
  --scenario 000  built in vs module (default). --variant builtin (default): the in-kernel client
                  opens the fTPM before any supplicant: ffff000c (REE TA) or ffff3024 TARGET_DEAD
                  (early TA, NV on REE FS), -EINVAL, no retry, no /dev/tpm0.
                  --variant module: loaded after tee-supplicant: /dev/tpm0 appears.
  --scenario 001  present before usable: initrd supplicant, switch root stops it (TPM unusable,
                  commands fail at once), restarted (usable). --variant stop-first (default) or
                  execstop (the shutdown order fix: modprobe -r tpm_ftpm_tee first).
  --ta T          the fTPM TA: early (default) or ree (loaded by the supplicant)

examples:
  tpmkit boot ffa-ima
  tpmkit boot ftpm-supplicant --scenario 000 --ta ree
  tpmkit boot ftpm-supplicant --scenario 001 --variant execstop --svg ftpm.svg
  tpmkit boot ffa-ima --fix late-sync --svg boot.svg
  tpmkit boot ffa-ima --order ffa_init,tpm_crb_ffa_init,crb_acpi_driver_init
`,
  options: { order: { type: "string" }, fix: { type: "string" }, variant: { type: "string" }, svg: { type: "string" }, scenario: { type: "string" }, ta: { type: "string" } },
  needsTpm: false,
  describesTarget: true,
  parse(args) {
    const [scenario, ...extra] = args.positionals;
    if (scenario === undefined) throw new UsageError(`boot needs a scenario: ${BOOT_SCENARIOS.join(", ")} (try tpmkit boot --help)`);
    if (!(BOOT_SCENARIOS as readonly string[]).includes(scenario)) throw new UsageError(`unknown boot scenario "${scenario}" (known: ${BOOT_SCENARIOS.join(", ")})`);
    if (extra.length) throw new UsageError(`boot takes one scenario, got also "${extra.join(" ")}"`);
    const v = args.values;
    if (typeof v.svg === "string" && v.svg.trim() === "") throw new UsageError("--svg needs a file name");
    if (scenario === "ftpm-supplicant") {
      if (v.order !== undefined || v.fix !== undefined) throw new UsageError("--order and --fix are for ffa-ima, not ftpm-supplicant");
      const seed = (typeof v.scenario === "string" ? v.scenario : "000") as FtpmBootScenario;
      if (seed !== "000" && seed !== "001") throw new UsageError(`--scenario must be 000 or 001, got "${String(v.scenario)}"`);
      const variants = FTPM_BOOT_VARIANTS[seed];
      const variant = (typeof v.variant === "string" ? v.variant : variants[0]) as FtpmBootVariant;
      if (!variants.includes(variant)) throw new UsageError(`--variant for scenario ${seed} must be one of ${variants.join(", ")}, got "${String(v.variant)}"`);
      const ta = typeof v.ta === "string" ? v.ta : "early";
      if (ta !== "early" && ta !== "ree") throw new UsageError(`--ta must be early or ree, got "${ta}"`);
      return { scenario, seed, variant, ta, svg: typeof v.svg === "string" ? v.svg : undefined };
    }
    if (v.scenario !== undefined || v.ta !== undefined) throw new UsageError("--scenario and --ta are for ftpm-supplicant, not ffa-ima");
    const linkOrder = typeof v.order === "string" ? parseLinkOrder(v.order) : [...LINUX_FFA_LINK_ORDER];
    const fix = (typeof v.fix === "string" ? v.fix : "none") as LinuxFfaBootFix;
    if (!LINUX_FFA_BOOT_FIXES.includes(fix)) throw new UsageError(`--fix must be one of ${LINUX_FFA_BOOT_FIXES.join(", ")}, got "${String(v.fix)}"`);
    const variant = (typeof v.variant === "string" ? v.variant : "mu") as TpmServiceVariant;
    if (!VARIANTS.includes(variant)) throw new UsageError(`--variant must be one of ${VARIANTS.join(", ")}, got "${String(v.variant)}"`);
    if (typeof v.svg === "string" && v.svg.trim() === "") throw new UsageError("--svg needs a file name");
    return { scenario: "ffa-ima", linkOrder, fix, variant, svg: typeof v.svg === "string" ? v.svg : undefined };
  },
  async run(plan, { json, out }) {
    if (plan.scenario === "ftpm-supplicant") return runFtpm(plan, json, out);
    const { platform, ima, timeline } = await linuxFfaBoot({ linkOrder: plan.linkOrder, fix: plan.fix, variant: plan.variant, clock: new FakeClock({ auto: true }) });
    try {
      if (plan.svg !== undefined) {
        const title = `ffa-ima: order ${plan.linkOrder.join(", ")}; fix ${plan.fix}; ${ima.bypass ? "IMA TPM-bypass" : `boot_aggregate (${ima.bank})`}`;
        await writeFile(plan.svg, timelineSvg(timeline, { title, imaBypass: ima.bypass }));
      }
      const imaOut = { bypass: ima.bypass, bank: ima.bank, aggregate: toHex(ima.aggregate), log: ima.log };
      if (json) {
        out.write(JSON.stringify({ scenario: plan.scenario, linkOrder: plan.linkOrder, fix: plan.fix, variant: plan.variant, ima: imaOut, timeline }) + "\n");
        return;
      }
      out.write(`tpmkit boot ffa-ima: link order ${plan.linkOrder.join(", ")}; fix ${plan.fix}; partition ${plan.variant} (virtual clock, ms)\n\n`);
      out.write(timelineTable(timeline));
      out.write("\n");
      for (const line of ima.log) out.write(`${line}\n`);
      if (ima.bypass) out.write(`IMA: TPM-bypass: no TPM chip when init_ima ran; boot_aggregate ${imaOut.aggregate} (all zero, ${ima.bank})\n`);
      else out.write(`IMA: measured: boot_aggregate (${ima.bank}) ${imaOut.aggregate}\n`);
      if (plan.svg !== undefined) out.write(`timeline written to ${plan.svg}\n`);
    } finally {
      for (const chip of platform.chips) await (chip as { close?: () => Promise<void> }).close?.().catch(() => {});
    }
  },
};
async function runFtpm(plan: FtpmBootPlan, json: boolean, out: NodeJS.WritableStream): Promise<void> {
  const r = await ftpmSupplicantBoot({ scenario: plan.seed, variant: plan.variant, ta: plan.ta, clock: new FakeClock({ auto: true }) });
  try {
    const code = r.probeError ? `0x${(r.probeError.teeCode >>> 0).toString(16)}` : undefined;
    const outcome = r.tpmFound ? "/dev/tpm0 found" : `no /dev/tpm0${code ? ` (probe failed: ${code}, -EINVAL)` : ""}`;
    if (plan.svg !== undefined) {
      const title = `ftpm-supplicant ${plan.seed}: ${plan.variant}, ${plan.ta} TA; ${outcome}`;
      await writeFile(plan.svg, timelineSvg(r.timeline, { title }));
    }
    if (json) {
      const probeError = r.probeError ? { teeCode: r.probeError.teeCode, origin: r.probeError.origin, message: r.probeError.message } : null;
      out.write(JSON.stringify({ scenario: plan.scenario, seed: plan.seed, variant: plan.variant, ta: plan.ta, tpmFound: r.tpmFound, probeError, fixes: r.fixes, timeline: r.timeline }) + "\n");
      return;
    }
    out.write(`tpmkit boot ftpm-supplicant: scenario ${plan.seed}, variant ${plan.variant}, ${plan.ta} TA, NV on REE FS (virtual clock, ms)\n\n`);
    out.write(timelineTable(r.timeline));
    out.write("\n");
    out.write(`result: ${outcome}\n`);
    for (const line of r.fixes) out.write(`${line}\n`);
    if (plan.svg !== undefined) out.write(`timeline written to ${plan.svg}\n`);
  } finally {
    await r.supplicant.stop().catch(() => {});
    for (const chip of r.platform.chips) await chip.close().catch(() => {});
  }
}
export default boot;
