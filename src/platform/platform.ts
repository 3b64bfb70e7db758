/**
 * The boot-time device model of the Linux kernel, small enough to reason about and to test: the
 * initcall levels of init/main.c, the buses, drivers and devices of drivers/base/bus.c with their
 * matching and binding, the deferred-probe machinery of drivers/base/dd.c, and the TPM chip list
 * (tpm_default_chip in drivers/char/tpm/tpm-chip.c). Every step is recorded on a
 * {@link TimelineEntry} timeline, so a boot race (a TPM that probes after IMA looked for it) can be
 * reproduced, printed and compared in tests. Nothing here knows FF-A or IMA: those models register
 * their initcalls, buses and drivers on a {@link Platform}.
 *
 * @packageDocumentation
 */
import type { Clock, TimerHandle } from "../core/clock.js";
import { systemClock } from "../core/clock.js";
import type { Tpm } from "../client/tpm.js";
import { ProbeDeferredError, TpmArgumentError, TpmStateError, TpmTimeoutError, abortErrorFrom } from "../errors/index.js";
import type { TpmAbortError } from "../errors/index.js";
import { INITCALL_LEVELS, type InitcallLevel, type TimelineEntry, type TimelineKind } from "./timeline.js";

/** The name of the deferred-probe flush initcall, run last at the `late` level (drivers/base/dd.c). */
export const DEFERRED_PROBE_INITCALL = "deferred_probe_initcall";

/** Default bound of {@link Platform.waitForChip}, in ms. */
export const DEFAULT_CHIP_WAIT_MS = 5_000;

/** Default bound of a whole {@link Platform.boot}, background initcalls included, in ms. */
export const DEFAULT_BOOT_TIMEOUT_MS = 60_000;

/**
 * What an initcall, a probe or a remove gets besides its device: the platform, the boot's abort
 * signal (aborted when the boot times out or its caller aborts) and a logger.
 *
 * @example
 * ```ts
 * platform.initcall("late", "init_ima", async ({ platform, signal, log }) => {
 *   if (!platform.defaultChip()) log("ima: No TPM chip found, activating TPM-bypass!");
 * });
 * ```
 */
export interface PlatformContext<C = Tpm> {
  /** The platform running the boot. */
  readonly platform: Platform<C>;
  /** Aborted when the boot is abandoned (timeout or caller abort): long work should stop. */
  readonly signal: AbortSignal;
  /** Adds a "log" entry named after the initcall or driver that logs. */
  log(line: string): void;
}

/** The body of an initcall; may be async. Its error is logged and the boot goes on. */
export type InitcallFn<C = Tpm> = (ctx: PlatformContext<C>) => void | Promise<void>;

/**
 * Options of {@link Platform.initcall}.
 *
 * @example
 * ```ts
 * platform.initcall("late", "init_ima", imaWaitsForChip, { async: true });
 * ```
 */
export interface InitcallOptions {
  /**
   * Run without holding up the boot (as an async_schedule()d function or a work item would): the
   * next initcalls start at once and {@link Platform.boot} waits for it, bounded, before returning
   * (kernel_init's async_synchronize_full, init/main.c).
   */
  readonly async?: boolean;
}

/** A bus's match function: may `driver` drive `device`? (struct bus_type.match). */
export type BusMatch<C = Tpm> = (device: PlatformDevice, driver: PlatformDriver<C>) => boolean;

/**
 * A registered bus (struct bus_type): its devices and drivers in registration order.
 *
 * @example
 * ```ts
 * const ffa = platform.addBus("arm_ffa", (dev, drv) => dev.data.uuid === drv.data.uuid);
 * ```
 */
export interface PlatformBus<C = Tpm> {
  /** The bus name ("platform", "arm_ffa"). */
  readonly name: string;
  /** Its match function; without one every driver matches every device (driver_match_device). */
  readonly match: BusMatch<C> | undefined;
  /** Its devices, in the order they were added. */
  readonly devices: readonly PlatformDevice[];
  /** Its drivers, in the order they were registered. */
  readonly drivers: readonly PlatformDriver<C>[];
}

/** A bus given by name (it must be registered) or as returned by {@link Platform.addBus}. */
export type BusRef<C = Tpm> = string | PlatformBus<C>;

/**
 * A driver to register (struct device_driver): name, bus, optional id match, probe and remove.
 *
 * @example
 * ```ts
 * await platform.addDriver({
 *   name: "tpm_crb_ffa",
 *   bus: "arm_ffa",
 *   match: (dev) => dev.data.uuid === TPM_SERVICE_UUID,
 *   probe: async (dev) => { if (!ready) throw new ProbeDeferredError("partition"); },
 * });
 * ```
 */
export interface DriverSpec<C = Tpm> {
  /** Unique driver name on its bus. */
  readonly name: string;
  /** The bus it drives devices on. */
  readonly bus: BusRef<C>;
  /** Its id table: may it drive `device`? Checked after the bus's match. Default: yes. */
  readonly match?: (device: PlatformDevice) => boolean;
  /**
   * Binds to `device`: return to bind, throw {@link ProbeDeferredError} to defer (-EPROBE_DEFER),
   * throw anything else to fail this device.
   */
  readonly probe: (device: PlatformDevice, ctx: PlatformContext<C>) => void | Promise<void>;
  /** Unbinds from `device` (unbind, removeDevice). */
  readonly remove?: (device: PlatformDevice, ctx: PlatformContext<C>) => void | Promise<void>;
}

/** A registered driver: its spec with the bus resolved to its name. */
export interface PlatformDriver<C = Tpm> extends DriverSpec<C> {
  /** The name of its bus. */
  readonly bus: string;
}

/**
 * A device to add (struct device): name, bus and any data the drivers match on.
 *
 * @example
 * ```ts
 * await platform.addDevice({ name: "arm-ffa-1", bus: "arm_ffa", uuid, partitionId: 0x8002 });
 * ```
 */
export interface DeviceSpec {
  /** Unique device name on its bus. */
  readonly name: string;
  /** The bus it sits on. */
  readonly bus: string | { readonly name: string };
  /** Any data drivers match and probe on. */
  readonly [key: string]: unknown;
}

/** Where a device stands: no driver, bound, waiting on the deferred list, or its probe failed. */
export type PlatformDeviceState = "unbound" | "bound" | "deferred" | "failed";

/**
 * An added device: its name, bus, the spec it was added with (`data`) and its binding.
 *
 * @example
 * ```ts
 * const dev = await platform.addDevice({ name: "MSFT0101:00", bus: "platform" });
 * if (dev.state === "deferred") console.log(dev.error);
 * ```
 */
export interface PlatformDevice<T extends DeviceSpec = DeviceSpec> {
  /** The device name. */
  readonly name: string;
  /** The name of its bus. */
  readonly bus: string;
  /** The spec it was added with, extra fields included. */
  readonly data: T;
  /** The name of the driver bound to it, if any. */
  readonly driver: string | undefined;
  /** Where it stands. */
  readonly state: PlatformDeviceState;
  /** The error of its last deferred or failed probe. */
  readonly error: unknown;
}

/**
 * Options of {@link Platform.waitForChip}.
 *
 * @example
 * ```ts
 * const chip = await platform.waitForChip({ timeoutMs: 2000, signal, name: "ima" });
 * ```
 */
export interface WaitForChipOptions {
  /** The bound, ms on the platform clock (default {@link DEFAULT_CHIP_WAIT_MS}). */
  readonly timeoutMs?: number;
  /** Aborts the wait. */
  readonly signal?: AbortSignal;
  /** The name on the "wait" timeline entries (default "waitForChip"). */
  readonly name?: string;
}

/**
 * Options of {@link Platform.boot}.
 *
 * @example
 * ```ts
 * const report = await platform.boot({ timeoutMs: 10_000, signal });
 * ```
 */
export interface BootOptions {
  /** Bound on the whole boot, background initcalls included (default {@link DEFAULT_BOOT_TIMEOUT_MS}). */
  readonly timeoutMs?: number;
  /** Aborts the boot (the initcalls see it on their context's signal). */
  readonly signal?: AbortSignal;
}

/**
 * Options of the {@link Platform} constructor.
 *
 * @example
 * ```ts
 * const platform = new Platform({ clock: new FakeClock() });
 * ```
 */
export interface PlatformOptions {
  /** The platform clock (default the system clock). Timeline times and every wait use it. */
  readonly clock?: Clock;
}

/**
 * What {@link Platform.boot} returns.
 *
 * @example
 * ```ts
 * const { deferred, chips } = await platform.boot();
 * if (chips.length === 0) console.log("no TPM; still deferred:", deferred);
 * ```
 */
export interface BootReport {
  /** The levels that ran, in order. */
  readonly levels: readonly InitcallLevel[];
  /** Every bind that happened during the boot, in order. */
  readonly binds: readonly { readonly device: string; readonly driver: string; readonly time: number }[];
  /** Devices still on the deferred list at the end. */
  readonly deferred: readonly string[];
  /** Devices whose last probe failed (not deferred). */
  readonly failed: readonly { readonly device: string; readonly driver: string; readonly error: string }[];
  /** Initcalls that threw, with their error message. */
  readonly errors: readonly { readonly initcall: string; readonly level: InitcallLevel; readonly error: string }[];
  /** The registered chips' names, first (the default chip) first. */
  readonly chips: readonly string[];
  /** ms on the platform clock from the start of the boot to the end of the last background initcall. */
  readonly durationMs: number;
  /** The timeline (the same array as {@link Platform.timeline}). */
  readonly timeline: readonly TimelineEntry[];
}

interface Initcall<C> {
  readonly level: InitcallLevel;
  readonly name: string;
  readonly fn: InitcallFn<C>;
  readonly async: boolean;
}

interface DeviceRecord<C> {
  readonly name: string;
  readonly bus: BusRecord<C>;
  readonly data: DeviceSpec;
  driver: PlatformDriver<C> | undefined;
  state: PlatformDeviceState;
  error: unknown;
  removed: boolean;
  /** The driver of the last deferred or failed probe. */
  errorDriver: string | undefined;
  /** Set while its lock is held: the deferred-probe work skips it (the holder re-triggers). */
  busy: boolean;
  /** The per-device lock (the kernel's device_lock): probes and removes run one at a time. */
  lock: Promise<void>;
  readonly view: PlatformDevice;
}

interface BusRecord<C> {
  readonly name: string;
  readonly match: BusMatch<C> | undefined;
  readonly devices: DeviceRecord<C>[];
  readonly drivers: PlatformDriver<C>[];
  readonly view: PlatformBus<C>;
}

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * The kernel's boot-time device model: initcall levels, buses, drivers, devices, deferred probe,
 * and the TPM chip list, with a timeline of everything that happened.
 *
 * - Initcalls run level by level ({@link INITCALL_LEVELS}), in registration (link) order within a
 *   level (init/main.c do_initcalls / do_initcall_level). An initcall's error is logged and the
 *   boot goes on (do_one_initcall ignores the return value).
 * - Binding happens on registration either way: a driver registered tries every unbound device
 *   on its bus (drivers/base/dd.c driver_attach / __driver_attach), a device added tries every
 *   driver until one binds (device_initial_probe / __device_attach_driver).
 * - A probe that throws {@link ProbeDeferredError} puts the device on the deferred list
 *   (driver_deferred_probe_add). Deferred devices are retried only once deferred probing is
 *   enabled, by the deferred-probe flush run as the last `late` initcall (deferred_probe_initcall
 *   is a late_initcall that links after security/, so after init_ima), and after that on every
 *   successful bind (driver_bound → driver_deferred_probe_trigger). Any other probe error fails
 *   the device for that driver (logged), with no retry (a device another driver deferred stays on
 *   the deferred list, as in the kernel, and is retried with every driver).
 * - Chips: {@link Platform.registerChip}, {@link Platform.defaultChip} (the first one, as
 *   tpm_default_chip) and the bounded {@link Platform.waitForChip}.
 *
 * Generic over the chip type (default {@link Tpm}) so models can register what they build.
 *
 * @example
 * ```ts
 * const platform = new Platform();
 * platform.addBus("platform");
 * platform.initcall("device", "crb_acpi_driver_init", () =>
 *   platform.addDriver({ name: "crb", bus: "platform", probe: async (dev, { platform }) => {
 *     platform.registerChip(await Tpm.open(memory({ backend: new SoftTpm() })));
 *   } }));
 * platform.initcall("device", "acpi_scan", () => platform.addDevice({ name: "MSFT0101:00", bus: "platform" }));
 * const report = await platform.boot();
 * console.log(report.binds, platform.defaultChip() !== undefined);
 * ```
 */
export class Platform<C = Tpm> {
  /** The platform clock. */
  readonly clock: Clock;
  /** Everything that happened, in order. */
  readonly timeline: TimelineEntry[] = [];

  #initcalls: Initcall<C>[] = [];
  #buses = new Map<string, BusRecord<C>>();
  #chips: { name: string; chip: C }[] = [];
  #chipWaiters = new Set<() => void>();
  #pending: DeviceRecord<C>[] = [];
  #active: DeviceRecord<C>[] = [];
  #retrying: Promise<void> | undefined;
  #triggerCount = 0;
  #deferredEnabled = false;
  #bootStart: number | undefined;
  #level: InitcallLevel | undefined;
  #levelIndex = -1;
  #booted = false;
  #abort = new AbortController();
  #background = new Set<Promise<void>>();
  #binds: { device: string; driver: string; time: number }[] = [];
  #errors: { initcall: string; level: InitcallLevel; error: string }[] = [];

  /**
   * @param options - the clock (default the system clock).
   */
  constructor(options: PlatformOptions = {}) {
    this.clock = options.clock ?? systemClock;
  }

  /** The level running now; undefined before the boot and after its last level. */
  get level(): InitcallLevel | undefined {
    return this.#level;
  }

  /** True once deferred probing is enabled (the flush at the end of `late` ran). */
  get deferredProbeEnabled(): boolean {
    return this.#deferredEnabled;
  }

  /** The names of the devices on the deferred list (waiting for a retry), in order. */
  get deferred(): readonly string[] {
    return [...this.#pending, ...this.#active].filter((d) => d.state === "deferred").map((d) => d.name);
  }

  /** The "log" entries' lines, in order (the model's dmesg). */
  get dmesg(): readonly string[] {
    return this.timeline.filter((e) => e.kind === "log").map((e) => e.detail ?? "");
  }

  /** ms on the platform clock since `boot()` started (0 before it). */
  now(): number {
    return this.#bootStart === undefined ? 0 : this.clock.now() - this.#bootStart;
  }

  /**
   * Registers an initcall at `level`, after those already registered there (link order).
   *
   * @param level - its initcall level.
   * @param name - its name, as in the kernel ("ffa_init", "init_ima").
   * @param fn - its body; may be async; an error is logged and the boot goes on.
   * @param options - `async: true` runs it without holding up the boot.
   * @throws {@link TpmArgumentError} for an unknown level.
   * @throws {@link TpmStateError} when that level has already run.
   * @example
   * ```ts
   * platform.initcall("rootfs", "ffa_init", () => addPartitionDevices(platform));
   * ```
   */
  initcall(level: InitcallLevel, name: string, fn: InitcallFn<C>, options: InitcallOptions = {}): void {
    const index = INITCALL_LEVELS.indexOf(level);
    if (index < 0) throw new TpmArgumentError(`unknown initcall level ${String(level)}`);
    if (index < this.#levelIndex || (this.#booted && this.#level === undefined)) {
      throw new TpmStateError(`initcall ${name}: level ${level} has already run`);
    }
    this.#initcalls.push({ level, name, fn, async: options.async === true });
  }

  /**
   * Registers a bus (bus_register).
   *
   * @param name - the bus name.
   * @param match - its match function; without one every driver matches every device.
   * @returns the bus.
   * @throws {@link TpmArgumentError} when a bus of that name is already registered.
   * @example
   * ```ts
   * platform.addBus("platform");
   * ```
   */
  addBus(name: string, match?: BusMatch<C>): PlatformBus<C> {
    if (this.#buses.has(name)) throw new TpmArgumentError(`bus ${name} is already registered`);
    const devices: DeviceRecord<C>[] = [];
    const drivers: PlatformDriver<C>[] = [];
    const view: PlatformBus<C> = {
      name,
      match,
      get devices() {
        return devices.map((d) => d.view);
      },
      get drivers() {
        return [...drivers];
      },
    };
    this.#buses.set(name, { name, match, devices, drivers, view });
    return view;
  }

  /** The bus called `name`, if registered. */
  bus(name: string): PlatformBus<C> | undefined {
    return this.#buses.get(name)?.view;
  }

  /**
   * Registers a driver and binds it to every unbound matching device on its bus, in the order
   * they were added (driver_register → bus_add_driver → driver_attach).
   *
   * @param spec - name, bus, optional match, probe and remove.
   * @returns the registered driver, once its probes have run.
   * @throws {@link TpmArgumentError} when its bus is not registered (the kernel's -EINVAL: "bus
   *   was not initialized") or a driver of that name is already on it.
   * @example
   * ```ts
   * await platform.addDriver({ name: "crb", bus: "platform", probe: openAndRegisterChip });
   * ```
   */
  async addDriver(spec: DriverSpec<C>): Promise<PlatformDriver<C>> {
    const bus = this.#busOf(spec.bus, `driver ${spec.name}`);
    if (bus.drivers.some((d) => d.name === spec.name)) throw new TpmArgumentError(`driver ${spec.name} is already registered on ${bus.name}`);
    const driver: PlatformDriver<C> = { ...spec, bus: bus.name };
    bus.drivers.push(driver);
    this.#record("driver-register", driver.name, { detail: `bus ${bus.name}` });
    for (const device of [...bus.devices]) {
      await this.#withLock(device, async () => {
        if (device.removed || device.driver || !this.#matches(bus, device, driver)) return;
        await this.#probe(device, driver);
      });
    }
    return driver;
  }

  /**
   * Adds a device and tries every driver on its bus, in registration order, until one binds
   * (device_add → bus_probe_device → __device_attach).
   *
   * @param spec - name, bus and any data the drivers match on.
   * @returns the device, once its probes have run (see its `state`).
   * @throws {@link TpmArgumentError} when its bus is not registered or a device of that name is on it.
   * @example
   * ```ts
   * const dev = await platform.addDevice({ name: "arm-ffa-1", bus: "arm_ffa", partitionId: 0x8002 });
   * ```
   */
  async addDevice<T extends DeviceSpec>(spec: T): Promise<PlatformDevice<T>> {
    const bus = this.#busOf(spec.bus, `device ${spec.name}`);
    if (bus.devices.some((d) => d.name === spec.name)) throw new TpmArgumentError(`device ${spec.name} is already on ${bus.name}`);
    const record = {
      name: spec.name,
      bus,
      data: spec,
      driver: undefined,
      state: "unbound",
      error: undefined,
      errorDriver: undefined,
      busy: false,
      removed: false,
      lock: Promise.resolve(),
    } as Omit<DeviceRecord<C>, "view"> as DeviceRecord<C>;
    (record as { view: PlatformDevice }).view = {
      name: spec.name,
      bus: bus.name,
      data: spec,
      get driver() {
        return record.driver?.name;
      },
      get state() {
        return record.state;
      },
      get error() {
        return record.error;
      },
    };
    bus.devices.push(record);
    this.#record("device-add", record.name, { detail: `bus ${bus.name}` });
    await this.#withLock(record, () => this.#attach(record));
    return record.view as PlatformDevice<T>;
  }

  /** The device called `name` on any bus, if present. */
  device(name: string): PlatformDevice | undefined {
    return this.#find(name)?.view;
  }

  /**
   * Unbinds a device from its driver, calling the driver's `remove` (device_release_driver). The
   * device stays, unbound; nothing re-probes it until a driver is registered or it is re-added.
   *
   * @param device - the device or its name.
   * @throws {@link TpmArgumentError} for an unknown device.
   * @example
   * ```ts
   * await platform.unbind("arm-ffa-1");
   * ```
   */
  async unbind(device: string | PlatformDevice): Promise<void> {
    const record = this.#find(typeof device === "string" ? device : device.name);
    if (!record) throw new TpmArgumentError(`no device ${typeof device === "string" ? device : device.name}`);
    await this.#withLock(record, () => this.#release(record));
  }

  /**
   * Removes a device: unbinds it, takes it off its bus and off the deferred list (device_del).
   *
   * @param device - the device or its name.
   * @throws {@link TpmArgumentError} for an unknown device.
   * @example
   * ```ts
   * await platform.removeDevice("arm-ffa-1");
   * ```
   */
  async removeDevice(device: string | PlatformDevice): Promise<void> {
    const record = this.#find(typeof device === "string" ? device : device.name);
    if (!record) throw new TpmArgumentError(`no device ${typeof device === "string" ? device : device.name}`);
    await this.#withLock(record, async () => {
      await this.#release(record);
      record.removed = true;
      const list = record.bus.devices;
      list.splice(list.indexOf(record), 1);
      this.#pending = this.#pending.filter((d) => d !== record);
      this.#active = this.#active.filter((d) => d !== record);
      if (record.state === "deferred") record.state = "unbound";
      this.#record("device-remove", record.name, { detail: `bus ${record.bus.name}` });
    });
  }

  /**
   * Registers a TPM chip (tpm_chip_register) and wakes every {@link Platform.waitForChip}.
   *
   * @param chip - the chip.
   * @param name - its name (default "tpm" + its index, as /dev/tpm0).
   * @returns its name.
   * @example
   * ```ts
   * platform.registerChip(await Tpm.open(transport));
   * ```
   */
  registerChip(chip: C, name = `tpm${this.#chips.length}`): string {
    this.#chips.push({ name, chip });
    this.#record("chip-register", name);
    const waiters = [...this.#chipWaiters];
    this.#chipWaiters.clear();
    for (const wake of waiters) wake();
    return name;
  }

  /**
   * The first registered chip, as tpm_default_chip (drivers/char/tpm/tpm-chip.c), or undefined.
   *
   * @example
   * ```ts
   * const chip = platform.defaultChip();
   * ```
   */
  defaultChip(): C | undefined {
    return this.#chips[0]?.chip;
  }

  /** Every registered chip, in registration order. */
  get chips(): readonly C[] {
    return this.#chips.map((c) => c.chip);
  }

  /**
   * Resolves with the default chip as soon as there is one: at once if a chip is registered,
   * else at the next {@link Platform.registerChip}. Records "wait" entries at its start and end.
   *
   * @param options - `timeoutMs` (default {@link DEFAULT_CHIP_WAIT_MS}), `signal`, `name`.
   * @returns the default chip.
   * @throws {@link TpmTimeoutError} after `timeoutMs` on the platform clock without a chip.
   * @throws {@link TpmAbortError} (or the signal's tpmkit reason) when `signal` aborts first.
   * @example
   * ```ts
   * const chip = await platform.waitForChip({ timeoutMs: 2000 });
   * ```
   */
  waitForChip(options: WaitForChipOptions = {}): Promise<C> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CHIP_WAIT_MS;
    const name = options.name ?? "waitForChip";
    const { signal } = options;
    const first = this.#chips[0];
    if (first) return Promise.resolve(first.chip);
    if (signal?.aborted) return Promise.reject(abortErrorFrom(signal));
    if (!(timeoutMs >= 0)) return Promise.reject(new TpmArgumentError(`waitForChip: timeoutMs must be ≥ 0, got ${timeoutMs}`));
    const started = this.clock.now();
    this.#record("wait", name, { detail: `waiting for a TPM chip, up to ${timeoutMs} ms` });
    return new Promise<C>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const finish = (detail: string) => {
        timer?.clear();
        this.#chipWaiters.delete(wake);
        signal?.removeEventListener("abort", onAbort);
        this.#record("wait", name, { detail: `${detail} after ${this.clock.now() - started} ms` });
      };
      const wake = () => {
        const chip = this.#chips[0]!;
        finish(`chip ${chip.name}`);
        resolve(chip.chip);
      };
      const onAbort = () => {
        finish("aborted");
        reject(abortErrorFrom(signal!));
      };
      this.#chipWaiters.add(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
      timer = this.clock.setTimer(timeoutMs, () => {
        finish("timed out");
        reject(new TpmTimeoutError("waiting for a TPM chip", timeoutMs));
      });
    });
  }

  /**
   * Adds a "log" entry (a printk line).
   *
   * @param line - the line, e.g. "ima: No TPM chip found, activating TPM-bypass!".
   * @param name - who logs (default "kernel").
   * @example
   * ```ts
   * platform.log("ima: No TPM chip found, activating TPM-bypass!", "init_ima");
   * ```
   */
  log(line: string, name = "kernel"): void {
    this.#record("log", name, { detail: line });
  }

  /**
   * Adds an entry of any kind to the timeline, stamped with the platform time and level (for
   * models built on the platform, e.g. the IMA decision).
   *
   * @param kind - what happened.
   * @param name - the initcall, driver, device or chip it is about.
   * @param extra - `detail` and `driver`.
   * @returns the entry.
   * @example
   * ```ts
   * platform.record("ima", "init_ima", { detail: "bypass" });
   * ```
   */
  record(kind: TimelineKind, name: string, extra: { detail?: string; driver?: string } = {}): TimelineEntry {
    return this.#record(kind, name, extra);
  }

  /**
   * Runs the boot: every level in order, its initcalls in link order, the deferred-probe flush as
   * the last `late` initcall, then waits (bounded) for the async initcalls still running
   * (init/main.c kernel_init: do_initcalls, then async_synchronize_full).
   *
   * @param options - `timeoutMs` bound (default {@link DEFAULT_BOOT_TIMEOUT_MS}) and `signal`.
   * @returns the report.
   * @throws {@link TpmStateError} when the platform has already booted.
   * @throws {@link TpmTimeoutError} when the boot, background initcalls included, runs past
   *   `timeoutMs` (the initcalls' signal is aborted; the timeline stays readable).
   * @throws {@link TpmAbortError} when `signal` aborts.
   * @example
   * ```ts
   * const report = await platform.boot({ timeoutMs: 10_000 });
   * ```
   */
  async boot(options: BootOptions = {}): Promise<BootReport> {
    if (this.#booted) throw new TpmStateError("the platform has already booted");
    this.#booted = true;
    const timeoutMs = options.timeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
    const { signal } = options;
    if (signal?.aborted) throw abortErrorFrom(signal);
    this.#bootStart = this.clock.now();
    let failure: unknown;
    let bail!: (err: unknown) => void;
    const bailed = new Promise<never>((_, reject) => {
      bail = (err) => {
        if (failure === undefined) failure = err;
        this.#abort.abort(err);
        reject(err);
      };
    });
    bailed.catch(() => undefined);
    const timer = this.clock.setTimer(timeoutMs, () => bail(new TpmTimeoutError("platform boot", timeoutMs)));
    const onAbort = () => bail(abortErrorFrom(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
    const levels: InitcallLevel[] = [];
    let end = 0;
    try {
      await Promise.race([this.#runLevels(levels, () => failure !== undefined), bailed]);
      while (this.#background.size > 0) await Promise.race([Promise.all([...this.#background]), bailed]);
      end = this.now();
    } finally {
      timer.clear();
      signal?.removeEventListener("abort", onAbort);
      this.#level = undefined;
    }
    return {
      levels,
      binds: [...this.#binds],
      deferred: this.deferred,
      failed: this.#allDevices()
        .filter((d) => d.state === "failed")
        .map((d) => ({ device: d.name, driver: d.errorDriver ?? "", error: message(d.error) })),
      errors: [...this.#errors],
      chips: this.#chips.map((c) => c.name),
      durationMs: end,
      timeline: this.timeline,
    };
  }

  async #runLevels(levels: InitcallLevel[], stopped: () => boolean): Promise<void> {
    for (let li = 0; li < INITCALL_LEVELS.length; li++) {
      const level = INITCALL_LEVELS[li]!;
      this.#levelIndex = li;
      this.#level = level;
      levels.push(level);
      // By index: an initcall may register more at its own level (they run after it, in order).
      for (let i = 0; i < this.#initcalls.length; i++) {
        if (stopped()) return;
        const call = this.#initcalls[i]!;
        if (call.level === level) await this.#runInitcall(call);
      }
      if (level === "late") {
        if (stopped()) return;
        await this.#runInitcall({ level, name: DEFERRED_PROBE_INITCALL, fn: () => this.#flush(), async: false });
      }
    }
    this.#level = undefined;
    this.#levelIndex = INITCALL_LEVELS.length;
  }

  async #runInitcall(call: Initcall<C>): Promise<void> {
    this.#record("initcall-start", call.name, call.async ? { detail: "async" } : {});
    const started = this.clock.now();
    const ctx = this.#context(call.name);
    const run = (async () => {
      try {
        await call.fn(ctx);
        this.#record("initcall-end", call.name, { detail: `${this.clock.now() - started} ms` });
      } catch (err) {
        // do_one_initcall ignores the return value: the boot goes on.
        this.#errors.push({ initcall: call.name, level: call.level, error: message(err) });
        this.#record("initcall-end", call.name, { detail: `error: ${message(err)}` });
        this.#record("log", call.name, { detail: `initcall ${call.name} returned error: ${message(err)}` });
      }
    })();
    if (!call.async) return run;
    const tracked = run.finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }

  /**
   * deferred_probe_initcall (drivers/base/dd.c): enable deferred probing, trigger, flush_work. The
   * kernel then triggers and flushes a second time for fw_devlink's optional suppliers; this model
   * has no fw_devlink, so one pass (which goes on while binds keep triggering) is the same.
   */
  async #flush(): Promise<void> {
    this.#deferredEnabled = true;
    this.#record("deferred-enable", DEFERRED_PROBE_INITCALL);
    const names = this.deferred;
    this.#record("deferred-flush", DEFERRED_PROBE_INITCALL, { detail: names.length ? `retrying ${names.join(", ")}` : "nothing deferred" });
    await this.#trigger();
  }

  /**
   * driver_deferred_probe_trigger + deferred_probe_work_func: when enabled, move the pending list
   * to the active list and retry each device with every driver; a retry loop already running
   * picks the moved devices up.
   */
  async #trigger(): Promise<void> {
    if (!this.#deferredEnabled) return;
    this.#triggerCount++;
    for (const d of this.#pending) if (!this.#active.includes(d)) this.#active.push(d);
    this.#pending = [];
    if (this.#retrying) return;
    const loop = (async () => {
      await Promise.resolve(); // so that `#retrying` is set before the loop can end
      try {
        for (let d = this.#active.shift(); d; d = this.#active.shift()) {
          const device = d;
          // Being probed right now: that probe re-triggers if it defers (see #probe).
          if (device.busy) continue;
          await this.#withLock(device, async () => {
            if (device.removed || device.driver) return;
            await this.#attach(device, true);
          });
        }
      } finally {
        this.#retrying = undefined;
      }
    })();
    this.#retrying = loop;
    await loop;
  }

  /** __device_attach: every matching driver in order until one binds. Caller holds the lock. */
  async #attach(device: DeviceRecord<C>, retry = false): Promise<void> {
    for (const driver of [...device.bus.drivers]) {
      if (device.removed || device.driver) return;
      if (!this.#matches(device.bus, device, driver)) continue;
      await this.#probe(device, driver, retry);
    }
  }

  #matches(bus: BusRecord<C>, device: DeviceRecord<C>, driver: PlatformDriver<C>): boolean {
    try {
      return (bus.match?.(device.view, driver) ?? true) && (driver.match?.(device.view) ?? true);
    } catch (err) {
      this.#record("log", driver.name, { detail: `match of ${device.name} threw: ${message(err)}` });
      return false;
    }
  }

  /** really_probe + driver_probe_device: one probe of `device` by `driver`. Caller holds the lock. */
  async #probe(device: DeviceRecord<C>, driver: PlatformDriver<C>, retry = false): Promise<void> {
    this.#record("probe", device.name, { driver: driver.name, ...(retry ? { detail: "deferred retry" } : {}) });
    try {
      await driver.probe(device.view, this.#context(driver.name));
    } catch (err) {
      if (err instanceof ProbeDeferredError) {
        device.state = "deferred";
        device.error = err;
        device.errorDriver = driver.name;
        if (!this.#pending.includes(device)) this.#pending.push(device);
        this.#record("probe-deferred", device.name, { driver: driver.name, detail: message(err) });
      } else {
        // A failure does not take the device off the deferred list (only driver_bound and
        // device_del do): if another driver deferred it, it is still retried.
        device.state = this.#pending.includes(device) || this.#active.includes(device) ? "deferred" : "failed";
        device.error = err;
        device.errorDriver = driver.name;
        this.#record("probe-failed", device.name, { driver: driver.name, detail: message(err) });
        this.#record("log", device.name, { detail: `${device.name}: probe with driver ${driver.name} failed: ${message(err)}` });
      }
      return;
    }
    // driver_bound: off the deferred list, then trigger the deferred probes.
    device.driver = driver;
    device.state = "bound";
    device.error = undefined;
    device.errorDriver = undefined;
    this.#pending = this.#pending.filter((d) => d !== device);
    this.#active = this.#active.filter((d) => d !== device);
    const entry = this.#record("bind", device.name, { driver: driver.name });
    this.#binds.push({ device: device.name, driver: driver.name, time: entry.time });
    await this.#trigger();
  }

  /** device_release_driver. Caller holds the lock. */
  async #release(device: DeviceRecord<C>): Promise<void> {
    const driver = device.driver;
    if (!driver) return;
    try {
      await driver.remove?.(device.view, this.#context(driver.name));
    } catch (err) {
      this.#record("log", device.name, { detail: `${device.name}: remove by ${driver.name} failed: ${message(err)}` });
    }
    device.driver = undefined;
    device.state = "unbound";
    this.#record("unbind", device.name, { driver: driver.name });
  }

  async #withLock(device: DeviceRecord<C>, fn: () => Promise<void>): Promise<void> {
    const previous = device.lock;
    let release!: () => void;
    device.lock = new Promise<void>((r) => (release = r));
    await previous;
    device.busy = true;
    const triggers = this.#triggerCount;
    try {
      await fn();
    } finally {
      device.busy = false;
      release();
    }
    // driver_probe_device (drivers/base/dd.c): deferred while a trigger happened → trigger again,
    // else the device would wait for the next bind. Done once the device lock is released, as the
    // deferred-probe work skipped the device while it was held.
    if (triggers !== this.#triggerCount && this.#pending.includes(device)) await this.#trigger();
  }

  #context(name: string): PlatformContext<C> {
    return { platform: this, signal: this.#abort.signal, log: (line) => this.log(line, name) };
  }

  #busOf(ref: string | { readonly name: string }, who: string): BusRecord<C> {
    const name = typeof ref === "string" ? ref : ref.name;
    const bus = this.#buses.get(name);
    if (!bus || (typeof ref !== "string" && (bus.view as object) !== ref)) {
      throw new TpmArgumentError(`${who}: bus ${name} is not registered`);
    }
    return bus;
  }

  #allDevices(): DeviceRecord<C>[] {
    return [...this.#buses.values()].flatMap((b) => b.devices);
  }

  #find(name: string): DeviceRecord<C> | undefined {
    return this.#allDevices().find((d) => d.name === name);
  }

  #record(kind: TimelineKind, name: string, extra: { detail?: string; driver?: string } = {}): TimelineEntry {
    const entry: TimelineEntry = {
      time: this.now(),
      kind,
      level: this.#level,
      name,
      ...(extra.detail !== undefined ? { detail: extra.detail } : {}),
      ...(extra.driver !== undefined ? { driver: extra.driver } : {}),
    };
    this.timeline.push(entry);
    return entry;
  }
}
