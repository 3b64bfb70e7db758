/**
 * The Linux arm64 boot of a TPM behind Arm FF-A (CRB over FF-A, ACPI TPM2 start method 15),
 * reproduced on a {@link Platform}: the FF-A core (`ffa_init`), the TPM service driver
 * (`tpm_crb_ffa`), the CRB ACPI driver (`tpm_crb`) and IMA's `init_ima`, with the initcall link
 * order and the fixes of the boot race as knobs.
 *
 * The race (Linux drivers/firmware/arm_ffa/driver.c, drivers/char/tpm/tpm_crb.c and
 * tpm_crb_ffa.c, security/integrity/ima/ima_init.c): the three device initcalls run at
 * device_initcall level in link order; when `crb_acpi_driver_init` runs before the FF-A device is
 * bound to `ffa-crb`, `crb_acpi_add()` gets -ENOENT from `tpm_crb_ffa_init()` and returns
 * -EPROBE_DEFER; deferred probes are retried only by `deferred_probe_initcall`, which links after
 * security/ at late_initcall level, so `init_ima` finds no chip first and activates TPM-bypass.
 *
 * @packageDocumentation
 */
import type { Clock } from "../core/clock.js";
import { systemClock } from "../core/clock.js";
import type { TpmBackend } from "../core/transport.js";
import { Tpm } from "../client/tpm.js";
import { ProbeDeferredError, TpmArgumentError, TpmNotFoundError, TpmStateError, TpmTimeoutError } from "../errors/index.js";
import { FFA_ERROR_CODE, FFA_FN, FFA_PARTITION_DESCRIPTOR_SIZE_V1_0, FFA_VERSION_1_1, FFA_VERSION_1_2, NIL_UUID, TPM_SERVICE_UUID, uuidToWords } from "../bus/ffa/abi.js";
import { ffaFrame, s32, w32, type FfaConduit } from "../bus/ffa/conduit.js";
import { hasRxBuffer } from "../bus/ffa/memory.js";
import { FfaBus } from "../devices/ffa/bus.js";
import { TpmServicePartition, type TpmServicePartitionFaults, type TpmServiceVariant } from "../devices/ffa/partition.js";
import { CrbDevice } from "../devices/crb/index.js";
import { SoftTpm } from "../softtpm/index.js";
import { crb } from "../transports/crb/crb.js";
import { ffaStart, type FfaStartMethod } from "../transports/crb/start-ffa.js";
import { IMA_BOOT_AGGREGATE_LATE_NAME, IMA_BOOT_AGGREGATE_NAME, initIma, type ImaResult } from "./ima.js";
import { Platform, type BootReport, type PlatformContext, type PlatformDevice } from "./platform.js";
import type { InitcallLevel, TimelineEntry } from "./timeline.js";

/**
 * One of the three device initcalls whose link order decides the race.
 *
 * @example
 * ```ts
 * const order: LinuxFfaInitcall[] = ["ffa_init", "tpm_crb_ffa_init", "crb_acpi_driver_init"]; // no bypass
 * ```
 */
export type LinuxFfaInitcall = "ffa_init" | "tpm_crb_ffa_init" | "crb_acpi_driver_init";

/**
 * A fix of the race: none, the 2025 patches, the 2026 IMA rework, or IMA waiting for the chip.
 *
 * @example
 * ```ts
 * const fix: LinuxFfaBootFix = "late-sync";
 * ```
 */
export type LinuxFfaBootFix = "none" | "rootfs" | "late-sync" | "wait";

/**
 * The fixes, for argument checks and loops.
 *
 * @example
 * ```ts
 * for (const fix of LINUX_FFA_BOOT_FIXES) console.log(fix, (await linuxFfaBoot({ fix })).ima.bypass);
 * ```
 */
export const LINUX_FFA_BOOT_FIXES: readonly LinuxFfaBootFix[] = Object.freeze(["none", "rootfs", "late-sync", "wait"]);

/**
 * The kernel's link order of the three device initcalls: drivers/Makefile links char/ before
 * firmware/, and drivers/char/tpm/Makefile links tpm_crb.o before tpm_crb_ffa.o, so
 * `crb_acpi_driver_init` (module_acpi_driver), then the `ffa-crb` driver's registration
 * (module_ffa_driver), then `ffa_init` (module_init). This is the order of the reported bypass.
 *
 * @example
 * ```ts
 * await linuxFfaBoot({ linkOrder: [...LINUX_FFA_LINK_ORDER].reverse() }); // ffa_init first: no bypass
 * ```
 */
export const LINUX_FFA_LINK_ORDER: readonly LinuxFfaInitcall[] = Object.freeze(["crb_acpi_driver_init", "tpm_crb_ffa_init", "ffa_init"]);

/**
 * Names used on the timeline: buses, drivers and devices as the kernel names them.
 *
 * @example
 * ```ts
 * platform.device(LINUX_FFA_NAMES.acpiDevice)?.driver; // "tpm_crb" once bound
 * ```
 */
export const LINUX_FFA_NAMES = Object.freeze({
  /** The FF-A bus (drivers/firmware/arm_ffa/bus.c). */
  ffaBus: "arm_ffa",
  /** The ACPI bus the TPM2 device sits on. */
  acpiBus: "acpi",
  /** The TPM service driver (tpm_crb_ffa.c, `tpm_crb_ffa_driver.name`). */
  tpmCrbFfaDriver: "ffa-crb",
  /** The CRB ACPI driver (tpm_crb.c, `crb_acpi_driver.name`). */
  crbDriver: "tpm_crb",
  /** The ACPI TPM2 device (HID MSFT0101, the first instance). */
  acpiDevice: "MSFT0101:00",
  /** The IMA initcall. */
  ima: "init_ima",
});

/**
 * Default bound of IMA's wait for a chip under `fix: "wait"`, ms on the boot clock.
 *
 * @example
 * ```ts
 * await linuxFfaBoot({ fix: "wait", imaWaitMs: DEFAULT_IMA_WAIT_MS / 2 });
 * ```
 */
export const DEFAULT_IMA_WAIT_MS = 2_000;

/**
 * Options of {@link linuxFfaBoot}.
 *
 * @example
 * ```ts
 * const options: LinuxFfaBootOptions = { fix: "rootfs", variant: "stmm", clock: new FakeClock({ auto: true }) };
 * ```
 */
export interface LinuxFfaBootOptions {
  /** The order of the three device initcalls, any permutation. Default {@link LINUX_FFA_LINK_ORDER}. */
  linkOrder?: readonly LinuxFfaInitcall[];
  /**
   * - `"none"` (default): the race as reported.
   * - `"rootfs"`: the 2025 patches: `ffa_init` at rootfs_initcall (0e0546eabcd6) and, the driver
   *   being built in, `ffa-crb` registered synchronously by `tpm_crb_ffa_init()` from
   *   `crb_acpi_add()` (746d9e9f62a6); the `tpm_crb_ffa_init` initcall does not exist then, so its
   *   place in `linkOrder` does not matter.
   * - `"late-sync"`: the 2026 rework: `init_ima` at late_initcall_sync, after the deferred-probe
   *   flush, with the entry "boot_aggregate_late" (CONFIG_IMA_INIT_LATE_SYNC).
   * - `"wait"`: `init_ima` waits for the chip, bounded by `imaWaitMs`, as an async initcall, so the
   *   initcalls after it (the flush) still run.
   */
  fix?: LinuxFfaBootFix;
  /** The TPM under the CRB device. Default a fresh `SoftTpm`; an already started one (firmware measured into PCRs) works. */
  backend?: TpmBackend;
  /** The clock of the platform, the FF-A bus, the chip and every wait. Default the system clock. */
  clock?: Clock;
  /** Bound of IMA's wait under `fix: "wait"`, ms. Default {@link DEFAULT_IMA_WAIT_MS}. */
  imaWaitMs?: number;
  /** The TPM service partition's behaviour (mu, Arm Trusted Services, Arm StMM). Default "mu". */
  variant?: TpmServiceVariant;
  /**
   * Send cmdReady/goIdle through START (Linux ≥ v6.18, dbfdaeb381a4). Default true, except for
   * `variant: "ts"`, which answers INV_CRB_CTRL_DATA to them: false there (an older kernel's sequence).
   */
  hasIdle?: boolean;
  /** Faults set on the partition before the boot (e.g. `{ absent: true }`: the FF-A core finds no partition). */
  faults?: Partial<TpmServicePartitionFaults>;
  /** Aborts the boot. */
  signal?: AbortSignal;
}

/**
 * What {@link linuxFfaBoot} resolves to.
 *
 * @example
 * ```ts
 * const { ima, platform, report } = await linuxFfaBoot();
 * console.log(ima.bypass, report.chips, platform.dmesg);
 * ```
 */
export interface LinuxFfaBoot {
  /** The booted platform: `defaultChip()` is the TPM once `tpm_crb` bound (close it when done). */
  readonly platform: Platform;
  /** What `init_ima` decided and measured. */
  readonly ima: ImaResult;
  /** The boot timeline (the platform's). */
  readonly timeline: readonly TimelineEntry[];
  /** The platform's boot report. */
  readonly report: BootReport;
  /** The FF-A framework model the boot ran on. */
  readonly bus: FfaBus;
  /** The TPM service partition on it. */
  readonly partition: TpmServicePartition;
}

const VARIANTS: readonly TpmServiceVariant[] = ["mu", "ts", "stmm"];
const INITCALLS: readonly LinuxFfaInitcall[] = ["ffa_init", "tpm_crb_ffa_init", "crb_acpi_driver_init"];
/** ACPI TPM2 "Start Method" 15: Command Response Buffer over FF-A (TCG ACPI Specification; tpm_crb.c ACPI_TPM2_CRB_WITH_ARM_FFA). */
const ACPI_TPM2_START_METHOD_FFA = 15;
/** PARTITION_INFO_GET_REGS: bound on calls (a framework that never reaches the last index). */
const MAX_REGS_CALLS = 64;

function checkOptions(options: LinuxFfaBootOptions): Required<Pick<LinuxFfaBootOptions, "linkOrder" | "fix" | "imaWaitMs" | "variant">> {
  if (options === null || typeof options !== "object") throw new TpmArgumentError("linuxFfaBoot: options must be an object");
  const linkOrder = options.linkOrder ?? LINUX_FFA_LINK_ORDER;
  if (!Array.isArray(linkOrder) || linkOrder.length !== 3 || !INITCALLS.every((n) => linkOrder.includes(n))) {
    throw new TpmArgumentError(`linuxFfaBoot: linkOrder must be a permutation of ${INITCALLS.join(", ")}, got ${JSON.stringify(linkOrder)}`);
  }
  const fix = options.fix ?? "none";
  if (!LINUX_FFA_BOOT_FIXES.includes(fix)) throw new TpmArgumentError(`linuxFfaBoot: fix must be one of ${LINUX_FFA_BOOT_FIXES.join(", ")}, got ${JSON.stringify(fix)}`);
  const imaWaitMs = options.imaWaitMs ?? DEFAULT_IMA_WAIT_MS;
  if (typeof imaWaitMs !== "number" || !Number.isFinite(imaWaitMs) || imaWaitMs < 0) throw new TpmArgumentError(`linuxFfaBoot: imaWaitMs must be a finite number ≥ 0, got ${String(imaWaitMs)}`);
  const variant = options.variant ?? "mu";
  if (!VARIANTS.includes(variant)) throw new TpmArgumentError(`linuxFfaBoot: variant must be one of ${VARIANTS.join(", ")}, got ${JSON.stringify(variant)}`);
  if (options.hasIdle !== undefined && typeof options.hasIdle !== "boolean") throw new TpmArgumentError("linuxFfaBoot: hasIdle must be a boolean");
  return { linkOrder, fix, imaWaitMs, variant };
}

/** A partition as the FF-A core found it (one `ffa_device`). */
interface FoundPartition {
  readonly id: number;
  readonly properties: number;
  readonly uuid: string;
}

function hex(b: number): string {
  return b.toString(16).padStart(2, "0");
}

/** 16 UUID bytes (RFC 4122 order) as the 8-4-4-4-12 string. */
function uuidString(bytes: Uint8Array): string {
  const h = [...bytes].map(hex).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** x1/x2 of PARTITION_INFO_GET_REGS' descriptor (UUID bytes 0–7 and 8–15 as LE u64s) as a UUID string. */
function regsUuid(lo: bigint, hi: bigint): string {
  const b = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    b[i] = Number((lo >> BigInt(8 * i)) & 0xffn);
    b[8 + i] = Number((hi >> BigInt(8 * i)) & 0xffn);
  }
  return uuidString(b);
}

async function call(bus: FfaConduit, regs: bigint[]): Promise<bigint[]> {
  return ffaFrame(await bus.call(ffaFrame(regs)));
}

function isSuccess(x0: bigint | undefined): boolean {
  const f = w32(x0);
  return f === FFA_FN.SUCCESS_32 || f === FFA_FN.SUCCESS_64;
}

/**
 * The FF-A core's partition scan (Linux drivers/firmware/arm_ffa/driver.c: ffa_init() →
 * ffa_version_check(), ffa_setup_partitions() → ffa_partition_probe(&uuid_null)):
 * FFA_VERSION, then PARTITION_INFO_GET_REGS when FFA_FEATURES lists it (v1.2), else
 * FFA_RXTX_MAP, PARTITION_INFO_GET on the nil UUID, the RX buffer's descriptors, FFA_RX_RELEASE,
 * and FFA_RXTX_UNMAP (this model's core keeps no mapping, so a later client can map its own).
 */
async function scanPartitions(bus: FfaBus): Promise<FoundPartition[]> {
  const v = await call(bus, [BigInt(FFA_FN.VERSION), BigInt(FFA_VERSION_1_2)]);
  const v0 = w32(v[0]);
  if ((v0 & 0x80000000) !== 0 || v0 >>> 16 !== 1) throw new TpmNotFoundError(`arm_ffa: FF-A version 0x${v0.toString(16)} is not 1.x`);
  const version = Math.min(v0, FFA_VERSION_1_2);
  const feat = version >= FFA_VERSION_1_2 ? await call(bus, [BigInt(FFA_FN.FEATURES), BigInt(FFA_FN.PARTITION_INFO_GET_REGS)]) : undefined;
  const out: FoundPartition[] = [];
  if (feat && isSuccess(feat[0])) {
    let start = 0;
    for (let n = 0; n < MAX_REGS_CALLS; n++) {
      const r = await call(bus, [BigInt(FFA_FN.PARTITION_INFO_GET_REGS), 0n, 0n, BigInt(start)]);
      if (w32(r[0]) === FFA_FN.ERROR) {
        if (s32(r[2]) === FFA_ERROR_CODE.INVALID_PARAMETERS) return out; // no partition at all
        throw new TpmNotFoundError(`arm_ffa: PARTITION_INFO_GET_REGS failed: FFA_ERROR ${s32(r[2])}`);
      }
      const meta = r[2]!;
      const last = Number(meta & 0xffffn);
      const cur = Number((meta >> 16n) & 0xffffn);
      if (cur < start || cur > last || cur - start + 1 > 5) throw new TpmNotFoundError(`arm_ffa: PARTITION_INFO_GET_REGS indices out of range (start ${start}, current ${cur}, last ${last})`);
      for (let i = 0; i <= cur - start; i++) {
        const d = r[3 + 3 * i]!;
        out.push({ id: Number(d & 0xffffn), properties: Number((d >> 32n) & 0xffffffffn), uuid: regsUuid(r[4 + 3 * i]!, r[5 + 3 * i]!) });
      }
      if (cur >= last) return out;
      start = cur + 1;
    }
    throw new TpmNotFoundError(`arm_ffa: PARTITION_INFO_GET_REGS did not reach the last index in ${MAX_REGS_CALLS} calls`);
  }
  const id = await call(bus, [BigInt(FFA_FN.ID_GET)]);
  const callerId = Number(BigInt.asUintN(16, id[2]!));
  const map = await call(bus, [BigInt(FFA_FN.RXTX_MAP_64), 0x7c000n, 0x7d000n, 1n]);
  if (!isSuccess(map[0])) throw new TpmNotFoundError(`arm_ffa: FFA_RXTX_MAP failed: FFA_ERROR ${s32(map[2])}`);
  try {
    const [a, b, c, d] = uuidToWords(NIL_UUID);
    const r = await call(bus, [BigInt(FFA_FN.PARTITION_INFO_GET), BigInt(a), BigInt(b), BigInt(c), BigInt(d), 0n]);
    if (!isSuccess(r[0])) return out;
    try {
      const count = w32(r[2]);
      const size = version < FFA_VERSION_1_1 ? FFA_PARTITION_DESCRIPTOR_SIZE_V1_0 : w32(r[3]);
      const rx = hasRxBuffer(bus) ? bus.rxBuffer(callerId) : undefined;
      if (!rx || size < FFA_PARTITION_DESCRIPTOR_SIZE_V1_0 || count * size > rx.length) throw new TpmNotFoundError(`arm_ffa: ${count} descriptors of ${size} bytes do not fit the RX buffer`);
      const dv = new DataView(rx.buffer, rx.byteOffset, rx.byteLength);
      for (let i = 0; i < count; i++) {
        const o = i * size;
        // a v1.0 descriptor has no UUID: the device's UUID stays nil until a per-UUID query at bind (Linux ffa_setup_partitions())
        out.push({ id: dv.getUint16(o, true), properties: dv.getUint32(o + 4, true), uuid: size >= 24 ? uuidString(rx.slice(o + 8, o + 24)) : NIL_UUID });
      }
      return out;
    } finally {
      await call(bus, [BigInt(FFA_FN.RX_RELEASE)]);
    }
  } finally {
    await call(bus, [BigInt(FFA_FN.RXTX_UNMAP), 0n]);
  }
}

/** The ACPI TPM2 device's data (the TPM2 table's start method and its FF-A parameters). */
interface AcpiTpm2Device {
  readonly name: string;
  readonly bus: string;
  readonly hid: "MSFT0101";
  readonly startMethod: number;
  readonly partitionId: number;
}

/** An `ffa_device`'s data. */
interface FfaDeviceData {
  readonly name: string;
  readonly bus: string;
  readonly partitionId: number;
  readonly uuid: string;
  readonly properties: number;
}

/**
 * Sets up and runs the Linux arm64 boot of a TPM behind Arm FF-A, and resolves once it is done
 * (async initcalls included). The pieces, as platform initcalls, buses and drivers:
 *
 * - an FF-A framework ({@link FfaBus}) hosting a {@link TpmServicePartition} over a five-locality,
 *   doorbell-triggered `CrbDevice` over `backend`;
 * - subsys level: `acpi_init` adds the ACPI TPM2 device "MSFT0101:00" (start method 15, partition
 *   0x8002) on bus "acpi"; `ffa_bus_init` registers bus "arm_ffa" (drivers/firmware/arm_ffa/bus.c,
 *   its own initcall since 18c250bd7ed0);
 * - device level, in `linkOrder`: `ffa_init` (driver.c: FFA_VERSION, then PARTITION_INFO_GET(_REGS)
 *   on the nil UUID, one device "arm-ffa-N" per partition); `tpm_crb_ffa_init` (module_ffa_driver:
 *   registers driver "ffa-crb", which binds to the device with the TPM service UUID and runs
 *   tpm_crb_ffa_probe(): the partition's messaging and GET_INTERFACE_VERSION, major 1, through
 *   `ffaStart`'s probe); `crb_acpi_driver_init` (registers driver "tpm_crb" on "acpi", whose probe,
 *   crb_acpi_add(), calls tpm_crb_ffa_init(): -ENOENT while "ffa-crb" is not bound →
 *   {@link ProbeDeferredError}, -ENODEV when its probe failed; else opens the chip with
 *   `crb({ mmio, start: ffaStart })` and registers it);
 * - late level: `init_ima` looks for the default chip once ({@link initIma}), before the
 *   deferred-probe flush (security/ links before drivers/base/); none → TPM-bypass.
 *
 * With `fix: "none"`, IMA bypasses exactly when `crb_acpi_driver_init` runs before `ffa_init` or
 * `tpm_crb_ffa_init`; with any fix it never does.
 *
 * @param options - {@link LinuxFfaBootOptions}.
 * @returns the platform (its default chip is the TPM), IMA's result, the timeline, the boot report,
 *   the FF-A bus and the partition.
 * @throws {@link TpmArgumentError} for bad options (a `linkOrder` that is not a permutation of the
 *   three initcalls, an unknown `fix` or `variant`, a negative `imaWaitMs`).
 * @throws {@link TpmStateError} when `init_ima` failed (its error is the cause).
 * @throws `TpmTimeoutError` / an abort error from {@link Platform.boot}.
 * @example
 * ```ts
 * const { ima, timeline } = await linuxFfaBoot({ fix: "none" });
 * console.log(ima.bypass ? ima.log[0] : "measured", timelineTable(timeline));
 * ```
 */
export async function linuxFfaBoot(options: LinuxFfaBootOptions = {}): Promise<LinuxFfaBoot> {
  const { linkOrder, fix, imaWaitMs, variant } = checkOptions(options);
  const clock = options.clock ?? systemClock;
  const hasIdle = options.hasIdle ?? variant !== "ts";
  const backend = options.backend ?? new SoftTpm();

  // Secure world: the SPMC and the TPM service partition over a CRB device
  const bus = new FfaBus({ clock, channel: false });
  const device = new CrbDevice({ backend, localities: 5, trigger: "doorbell", clock, channel: false });
  const partition = new TpmServicePartition({ device, variant });
  if (options.faults !== undefined) {
    if (options.faults === null || typeof options.faults !== "object") throw new TpmArgumentError("linuxFfaBoot: faults must be an object");
    Object.assign(partition.faults, options.faults);
  }
  bus.addPartition(partition);

  const platform = new Platform({ clock });
  const N = LINUX_FFA_NAMES;
  const acpi = platform.addBus(N.acpiBus);

  // tpm_crb_ffa.c's static `tpm_crb_ffa`: NULL (not probed), ERR_PTR(-ENODEV) (probe failed), or the instance
  let ffaCrb: { start: FfaStartMethod } | "failed" | undefined;
  let ffaCrbRegistered = false;

  const registerFfaCrb = async (): Promise<void> => {
    if (ffaCrbRegistered) return;
    ffaCrbRegistered = true;
    await platform.addDriver({
      name: N.tpmCrbFfaDriver,
      bus: N.ffaBus,
      // tpm_crb_ffa_device_id: the TPM service UUID
      match: (dev) => dev.data.uuid === TPM_SERVICE_UUID,
      probe: async (dev, { signal }) => {
        // tpm_crb_ffa_probe(): one instance only
        if (ffaCrb !== undefined && ffaCrb !== "failed") throw new TpmStateError(`${N.tpmCrbFfaDriver}: already probed (-EEXIST)`);
        const start = ffaStart({ bus, partitionId: (dev.data as unknown as FfaDeviceData).partitionId, clock, hasIdle });
        try {
          await start.probe!({ clock, signal });
        } catch (err) {
          if (!(err instanceof ProbeDeferredError)) ffaCrb = "failed";
          throw err;
        }
        const v = start.partition!.interfaceVersion;
        platform.log(`${N.tpmCrbFfaDriver}: TPM service interface version ${v.major}.${v.minor}, ${start.partition!.messaging} messages`, N.tpmCrbFfaDriver);
        ffaCrb = { start };
      },
      remove: () => {
        ffaCrb = undefined;
      },
    });
  };

  const crbAcpiProbe = async (dev: PlatformDevice, ctx: PlatformContext): Promise<void> => {
    const data = dev.data as unknown as AcpiTpm2Device;
    if (data.startMethod !== ACPI_TPM2_START_METHOD_FFA) throw new TpmNotFoundError(`${N.crbDriver}: start method ${data.startMethod} is not modelled`);
    // crb_acpi_add() → tpm_crb_ffa_init(); with 746d9e9f62a6 (built in) it registers the FF-A driver itself first
    if (fix === "rootfs") await registerFfaCrb();
    if (ffaCrb === undefined) throw new ProbeDeferredError(`${N.tpmCrbFfaDriver} (tpm_crb_ffa_init: -ENOENT)`);
    if (ffaCrb === "failed") throw new TpmNotFoundError(`${N.tpmCrbFfaDriver}: its probe failed (tpm_crb_ffa_init: -ENODEV)`);
    const tpm = await Tpm.open(crb({ mmio: device, start: ffaCrb.start, clock }), { clock, signal: ctx.signal });
    platform.registerChip(tpm);
  };

  // subsys level: the ACPI namespace scan and the FF-A bus
  platform.initcall("subsys", "acpi_init", async () => {
    await platform.addDevice({ name: N.acpiDevice, bus: acpi, hid: "MSFT0101", startMethod: ACPI_TPM2_START_METHOD_FFA, partitionId: partition.id });
  });
  platform.initcall("subsys", "ffa_bus_init", () => {
    platform.addBus(N.ffaBus);
  });

  const ffaInit = async (ctx: PlatformContext): Promise<void> => {
    const found = await scanPartitions(bus);
    if (found.length === 0) ctx.log("arm_ffa: no partitions found");
    let n = 1;
    for (const p of found) {
      await platform.addDevice({ name: `arm-ffa-${n++}`, bus: N.ffaBus, partitionId: p.id, uuid: p.uuid, properties: p.properties });
    }
  };
  const bodies: Record<LinuxFfaInitcall, ((ctx: PlatformContext) => Promise<void>) | undefined> = {
    ffa_init: fix === "rootfs" ? undefined : ffaInit,
    // built in with 746d9e9f62a6, module_ffa_driver is compiled out: no initcall of its own
    tpm_crb_ffa_init: fix === "rootfs" ? undefined : registerFfaCrb,
    crb_acpi_driver_init: async () => {
      await platform.addDriver({ name: N.crbDriver, bus: acpi, match: (dev) => dev.data.hid === "MSFT0101", probe: crbAcpiProbe, remove: (dev) => void dev });
    },
  };
  if (fix === "rootfs") platform.initcall("rootfs", "ffa_init", ffaInit);
  for (const name of linkOrder) {
    const fn = bodies[name];
    if (fn) platform.initcall("device", name, fn);
  }

  // IMA
  let ima: ImaResult | undefined;
  let imaError: unknown;
  const entryName = fix === "late-sync" ? IMA_BOOT_AGGREGATE_LATE_NAME : IMA_BOOT_AGGREGATE_NAME;
  const imaLevel: InitcallLevel = fix === "late-sync" ? "late_sync" : "late";
  platform.initcall(
    imaLevel,
    N.ima,
    async (ctx) => {
      try {
        let chip = platform.defaultChip();
        if (fix === "wait" && !chip) {
          try {
            chip = await platform.waitForChip({ timeoutMs: imaWaitMs, signal: ctx.signal, name: N.ima });
          } catch (err) {
            if (!(err instanceof TpmTimeoutError)) throw err;
          }
        }
        ima = await initIma({ chip, entryName, signal: ctx.signal });
        for (const line of ima.log) ctx.log(line);
        platform.record("ima", N.ima, { detail: ima.bypass ? "No TPM chip found, activating TPM-bypass!" : `${ima.entryName} ${ima.bank} ${toHex(ima.aggregate).slice(0, 16)}…` });
      } catch (err) {
        imaError = err;
        throw err;
      }
    },
    fix === "wait" ? { async: true } : {},
  );

  const report = await platform.boot(options.signal ? { signal: options.signal } : {});
  if (!ima) throw new TpmStateError(`linuxFfaBoot: ${N.ima} did not complete`, { cause: imaError });
  return { platform, ima, timeline: platform.timeline, report, bus, partition };
}

function toHex(b: Uint8Array): string {
  return [...b].map(hex).join("");
}
