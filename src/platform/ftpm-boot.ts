/**
 * A Linux arm64 boot with a firmware TPM in OP-TEE, reproduced on a {@link Platform}: the OP-TEE
 * driver, the fTPM driver (tpm_ftpm_tee) built in or loaded as a module, tee-supplicant started by
 * systemd (in the initrd or the root file system), the switch to the root file system, and the
 * shutdown order. Two scenarios:
 *
 * - `"000"` built in vs module. Built in, `ftpm_mod_init` (drivers/char/tpm/tpm_ftpm_tee.c) links
 *   before `optee_core_init` (drivers/Makefile: char/ before tee/), so the first probe finds no TEE
 *   (tee_client_open_context -ENOENT → -EPROBE_DEFER); the deferred-probe flush retries it after
 *   OP-TEE probed, still before user space, with an in-kernel client (supp_nowait): the REE-loaded
 *   TA cannot be loaded (0xffff000c, origin TEE: ldelf's first RPC, an APPL shm allocation, fails),
 *   an early TA on REE FS panics reading its NV (0xffff3024 TARGET_DEAD). The probe logs
 *   "tee_client_open_session failed, err=…" and returns -EINVAL, with no retry: no /dev/tpm0, and
 *   systemd's dev-tpm0.device job times out (90 s). As a module loaded after tee-supplicant started,
 *   the session opens, /dev/tpm0 appears and consumers find it.
 * - `"001"` present before usable. The initrd runs tee-supplicant and loads the module: the TPM
 *   works; the switch to the root file system stops the initrd's supplicant: /dev/tpm0 stays, the
 *   chip reads `unusable` and a command fails at once with `TpmUnavailableError`; the root's
 *   tee-supplicant starts: usable again. Then the shutdown: with the supplicant stopped first
 *   (`stop-first`), the driver's remove never waits (a kernel client) and TPM2_Shutdown fails at
 *   once instead of killing the TA; with optee_client's `ExecStop=modprobe -r tpm_ftpm_tee`
 *   before the supplicant is killed (`execstop`), TPM2_Shutdown reaches the TPM.
 *
 * Everything runs on the given clock; with a `FakeClock({ auto: true })` the timeline is the same
 * on every run.
 *
 * @packageDocumentation
 */
import type { Clock } from "../core/clock.js";
import { systemClock } from "../core/clock.js";
import { Tpm } from "../client/tpm.js";
import { ProbeDeferredError, TeeError, TpmArgumentError, TpmStateError, TpmTimeoutError } from "../errors/index.js";
import { TEE_RESULT, teeOriginName, teeResultName } from "../bus/tee/constants.js";
import { OpTee } from "../devices/optee/optee.js";
import { Supplicant } from "../devices/optee/supplicant.js";
import { MemoryFileStore } from "../core/storage.js";
import { ftpmTee } from "../transports/ftpm-tee/ftpm-tee.js";
import { ftpmTa } from "./ftpm.js";
import { Platform, type BootReport, type PlatformContext, type PlatformDevice } from "./platform.js";
import type { TimelineEntry } from "./timeline.js";

/**
 * The seed scenarios: `"000"` built in vs module, `"001"` present before usable.
 *
 * @example
 * ```ts
 * const s: FtpmBootScenario = "001";
 * ```
 */
export type FtpmBootScenario = "000" | "001";

/**
 * The variant of a scenario: for `"000"` `builtin` (default) or `module`; for `"001"` the
 * shutdown order, `stop-first` (default: the supplicant stopped before the driver) or `execstop`
 * (the fix: `modprobe -r tpm_ftpm_tee` first).
 *
 * @example
 * ```ts
 * await ftpmSupplicantBoot({ scenario: "000", variant: "module" });
 * ```
 */
export type FtpmBootVariant = "builtin" | "module" | "stop-first" | "execstop";

/**
 * The variants each scenario takes, the first one its default.
 *
 * @example
 * ```ts
 * FTPM_BOOT_VARIANTS["001"]; // ["stop-first", "execstop"]
 * ```
 */
export const FTPM_BOOT_VARIANTS: Readonly<Record<FtpmBootScenario, readonly FtpmBootVariant[]>> = Object.freeze({
  "000": Object.freeze(["builtin", "module"] as const),
  "001": Object.freeze(["stop-first", "execstop"] as const),
});

/**
 * How long systemd waits for `dev-tpm0.device` (DefaultDeviceTimeoutSec, 90 s), ms.
 *
 * @example
 * ```ts
 * await ftpmSupplicantBoot({ deviceTimeoutMs: FTPM_DEVICE_TIMEOUT_MS });
 * ```
 */
export const FTPM_DEVICE_TIMEOUT_MS = 90_000;

/**
 * The fixes printed with each scenario (optee_client tee-supplicant@.service; optee_os issues
 * 5766, 7339 and 6094; canonical/snapd#15296).
 *
 * @example
 * ```ts
 * for (const line of FTPM_BOOT_FIXES["000"]) console.log(line);
 * ```
 */
export const FTPM_BOOT_FIXES: Readonly<Record<FtpmBootScenario, readonly string[]>> = Object.freeze({
  "000": Object.freeze([
    "fix: build tpm_ftpm_tee as a module (CONFIG_TCG_FTPM_TEE=m) and load it after tee-supplicant has started (a udev rule or the unit's ExecStartPost)",
    "fix: or, if the TPM is needed in the initrd, run tee-supplicant in the initrd too, before the module is loaded",
  ]),
  "001": Object.freeze([
    "fix: tee-supplicant@.service: ExecStop=modprobe -r tpm_ftpm_tee before the supplicant is killed (unbind the driver first)",
    "fix: consumers check readiness (present vs usable) and wait for usable with a bound instead of trusting that /dev/tpm0 exists",
  ]),
});

/** Options of {@link ftpmSupplicantBoot}. */
export interface FtpmBootOptions {
  /** Which seed scenario (default `"000"`). */
  scenario?: FtpmBootScenario;
  /** Its variant (default the scenario's first in {@link FTPM_BOOT_VARIANTS}). */
  variant?: FtpmBootVariant;
  /** The fTPM TA: early (default, linked into OP-TEE) or REE-loaded (`<uuid>.ta` via the supplicant). */
  ta?: "early" | "ree";
  /** systemd's wait for dev-tpm0.device, ms (default {@link FTPM_DEVICE_TIMEOUT_MS}). */
  deviceTimeoutMs?: number;
  /** The clock (default the system clock; a `FakeClock({ auto: true })` makes it instant). */
  clock?: Clock;
  /** Aborts the boot. */
  signal?: AbortSignal;
}

/** What {@link ftpmSupplicantBoot} returns. */
export interface FtpmBoot {
  /** The platform (its default chip is /dev/tpm0 when the fTPM probed). */
  readonly platform: Platform;
  /** Everything that happened, boot and user space (the platform's timeline). */
  readonly timeline: readonly TimelineEntry[];
  /** The kernel part's report. */
  readonly report: BootReport;
  /** The TEE. */
  readonly tee: OpTee;
  /** tee-supplicant. */
  readonly supplicant: Supplicant;
  /** The TEE error of the failed fTPM probe, if it failed. */
  readonly probeError: TeeError | undefined;
  /** Whether /dev/tpm0 was there when its consumer looked. */
  readonly tpmFound: boolean;
  /** The fix lines for this scenario. */
  readonly fixes: readonly string[];
  /** The scenario and variant that ran. */
  readonly scenario: FtpmBootScenario;
  /** The variant that ran. */
  readonly variant: FtpmBootVariant;
}

const hex8 = (code: number): string => (code >>> 0).toString(16).padStart(8, "0");

/** Names on the timeline, as the kernel and systemd name them. */
const N = {
  tpmDevice: "ftpm",
  tpmDriver: "ftpm-tee",
  teeDevice: "optee",
  teeDriver: "optee",
  supplicant: "tee-supplicant",
  systemd: "systemd",
} as const;

/**
 * Runs a seed scenario of the fTPM-and-supplicant boot (see the module comment) and resolves
 * with its timeline.
 *
 * @param options - scenario, variant, TA kind, device timeout, clock, signal
 * @returns the platform, the timeline, the probe error, whether the TPM was found, the fixes
 * @throws TpmArgumentError for an unknown scenario or variant, or a bad timeout
 * @example
 * ```ts
 * const { timeline, probeError } = await ftpmSupplicantBoot({ scenario: "000", ta: "ree", clock: new FakeClock({ auto: true }) });
 * console.log(timelineTable(timeline), probeError?.teeCode.toString(16)); // ffff000c
 * ```
 */
export async function ftpmSupplicantBoot(options: FtpmBootOptions = {}): Promise<FtpmBoot> {
  if (options === null || typeof options !== "object") throw new TpmArgumentError("ftpmSupplicantBoot: options must be an object");
  const scenario = options.scenario ?? "000";
  if (scenario !== "000" && scenario !== "001") throw new TpmArgumentError(`ftpmSupplicantBoot: scenario must be "000" or "001", got ${JSON.stringify(scenario)}`);
  const variant = options.variant ?? FTPM_BOOT_VARIANTS[scenario][0]!;
  if (!FTPM_BOOT_VARIANTS[scenario].includes(variant)) {
    throw new TpmArgumentError(`ftpmSupplicantBoot: scenario ${scenario} takes variant ${FTPM_BOOT_VARIANTS[scenario].join(" or ")}, got ${JSON.stringify(variant)}`);
  }
  const ta = options.ta ?? "early";
  if (ta !== "early" && ta !== "ree") throw new TpmArgumentError(`ftpmSupplicantBoot: ta must be "early" or "ree", got ${JSON.stringify(ta)}`);
  const deviceTimeoutMs = options.deviceTimeoutMs ?? FTPM_DEVICE_TIMEOUT_MS;
  if (typeof deviceTimeoutMs !== "number" || !(deviceTimeoutMs >= 0) || !Number.isFinite(deviceTimeoutMs)) {
    throw new TpmArgumentError(`ftpmSupplicantBoot: deviceTimeoutMs must be a finite number ≥ 0, got ${String(deviceTimeoutMs)}`);
  }
  const clock = options.clock ?? systemClock;
  const { signal } = options;

  const supplicant = new Supplicant({ storage: new MemoryFileStore(), clock });
  const tee = new OpTee({ tas: [ftpmTa({ early: ta === "early", storage: "ree", seed: `ftpm-boot-${scenario}` })], supplicant, clock, channel: false });
  const platform = new Platform({ clock });
  const say = (who: string, line: string): void => platform.log(line, who);

  let teeUp = false;
  let probeError: TeeError | undefined;
  let chip: Tpm | undefined;

  // tpm_ftpm_tee.c ftpm_tee_probe(): context, session (login PUBLIC, in-kernel: supp_nowait), shm, chip
  const ftpmProbe = async (dev: PlatformDevice, ctx: PlatformContext): Promise<void> => {
    if (!teeUp) throw new ProbeDeferredError("tee_client_open_context: -ENOENT (no TEE yet)");
    try {
      chip = await Tpm.open(ftpmTee({ tee, client: "kernel", clock }), { clock, signal: ctx.signal });
    } catch (err) {
      if (!(err instanceof TeeError)) throw err;
      probeError = err;
      ctx.log(`${N.tpmDriver} ${dev.name}: tee_client_open_session failed, err=${hex8(err.teeCode)} (${teeResultName(err.teeCode)}, origin ${teeOriginName(err.origin)})`);
      throw new TpmStateError(`-EINVAL: tee_client_open_session failed, err=${hex8(err.teeCode)}`, { cause: err });
    }
    platform.registerChip(chip, "tpm0");
  };
  const ftpmRemove = async (): Promise<void> => {
    const c = chip;
    chip = undefined;
    if (!c) return;
    // tpm_chip_unregister → tpm2_shutdown(TPM2_SU_CLEAR), then ftpm_tee_remove: shm, session, context
    const t0 = clock.now();
    try {
      await c.shutdown("clear");
      say(N.tpmDriver, "TPM2_Shutdown(CLEAR): done (NV written through tee-supplicant)");
    } catch (err) {
      say(N.tpmDriver, `TPM2_Shutdown(CLEAR) failed at once: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    }
    await c.close();
    say(N.tpmDriver, `ftpm_tee_remove: session and context closed after ${clock.now() - t0} ms`);
  };
  const registerFtpm = (): Promise<unknown> => platform.addDriver({ name: N.tpmDriver, bus: "platform", match: (d) => d.data.compatible === "microsoft,ftpm", probe: ftpmProbe, remove: ftpmRemove });

  platform.addBus("platform");
  platform.initcall("arch", "of_platform_default_populate_init", async () => {
    await platform.addDevice({ name: N.teeDevice, bus: "platform", compatible: "linaro,optee-tz" });
    await platform.addDevice({ name: N.tpmDevice, bus: "platform", compatible: "microsoft,ftpm" });
  });
  // drivers/Makefile links char/ (tpm) before tee/ (optee)
  if (scenario === "000" && variant === "builtin") platform.initcall("device", "ftpm_mod_init", async () => void (await registerFtpm()));
  platform.initcall("device", "optee_core_init", async () => {
    await platform.addDriver({
      name: N.teeDriver,
      bus: "platform",
      match: (d) => d.data.compatible === "linaro,optee-tz",
      probe: (_dev, ctx) => {
        teeUp = true;
        ctx.log("optee: OP-TEE found; /dev/tee0 and /dev/teepriv0 created (tee-supplicant not running yet)");
      },
    });
  });

  const report = await platform.boot(signal ? { signal } : {});

  // user space
  const waitTpm = async (who: string): Promise<boolean> => {
    try {
      await platform.waitForChip({ timeoutMs: deviceTimeoutMs, name: who, ...(signal ? { signal } : {}) });
      say(N.systemd, `${who}: found /dev/tpm0`);
      return true;
    } catch (err) {
      if (!(err instanceof TpmTimeoutError)) throw err;
      say(N.systemd, `Timed out waiting for device /dev/tpm0 (${who}, ${deviceTimeoutMs / 1000} s): tpm2.target not reached`);
      return false;
    }
  };
  const startSupplicant = async (where: string): Promise<void> => {
    await supplicant.start();
    say(N.supplicant, `${where}: tee-supplicant@teepriv0.service started (opened /dev/teepriv0, READY=1)`);
  };
  const tryCommand = async (who: string): Promise<void> => {
    const c = platform.defaultChip()!;
    const t0 = clock.now();
    try {
      const r = await c.getRandom(8);
      say(who, `TPM2_GetRandom(8): ${r.length} bytes; chip readiness ${c.chip.readiness}`);
    } catch (err) {
      say(who, `TPM2_GetRandom(8) failed after ${clock.now() - t0} ms: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    }
  };

  let tpmFound: boolean;
  if (scenario === "000") {
    say(N.systemd, "user space: switch to the root file system; systemd starts units");
    await startSupplicant("root");
    if (variant === "module") {
      say(N.systemd, "modprobe tpm_ftpm_tee (after tee-supplicant)");
      await registerFtpm();
    } else {
      say(N.systemd, "tpm_ftpm_tee is built in: its probe failed (-EINVAL), the kernel does not retry it");
    }
    tpmFound = await waitTpm("dev-tpm0.device");
    if (tpmFound) await tryCommand("ima");
  } else {
    say(N.systemd, "initrd: systemd starts units");
    await startSupplicant("initrd");
    say(N.systemd, "initrd: modprobe tpm_ftpm_tee (after tee-supplicant)");
    await registerFtpm();
    tpmFound = await waitTpm("initrd dev-tpm0.device");
    await tryCommand("initrd");
    say(N.systemd, "switch-root: initrd units stopped (tee-supplicant too); /dev/tpm0 stays");
    await supplicant.stop();
    const c = platform.defaultChip()!;
    say(N.systemd, `/dev/tpm0 present: ${platform.device(N.tpmDevice)?.state === "bound"}; chip readiness ${c.chip.readiness}`);
    await tryCommand("root");
    await startSupplicant("root");
    say(N.systemd, `chip readiness ${c.chip.readiness}`);
    await tryCommand("root");
    say(N.systemd, `shutdown (${variant === "execstop" ? "ExecStop=modprobe -r tpm_ftpm_tee, then the supplicant is killed" : "tee-supplicant stopped first, then the driver is removed"})`);
    if (variant === "execstop") {
      await platform.unbind(N.tpmDevice);
      await supplicant.stop();
      say(N.supplicant, "tee-supplicant stopped");
    } else {
      await supplicant.stop();
      say(N.supplicant, "tee-supplicant stopped");
      await platform.unbind(N.tpmDevice);
    }
    say(N.systemd, "reboot: reached");
  }
  return { platform, timeline: platform.timeline, report, tee, supplicant, probeError, tpmFound, fixes: FTPM_BOOT_FIXES[scenario], scenario, variant };
}

/** The TEE result codes the scenarios show (for readers of the timeline). */
export const FTPM_BOOT_CODES = Object.freeze({
  /** REE TA without tee-supplicant, in-kernel client. */
  reeTaNoSupplicant: TEE_RESULT.OUT_OF_MEMORY,
  /** Early TA whose NV on REE FS is unreachable: the TA panicked. */
  earlyTaNoSupplicant: TEE_RESULT.TARGET_DEAD,
});
