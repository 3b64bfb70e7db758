/**
 * A register-accurate model of a TIS (PTP FIFO) TPM interface, after QEMU's
 * `hw/tpm/tpm_tis_common.c` (TCG PC Client PTP §6.5.2, FIFO interface): five localities with
 * their own register pages, the per-locality state machine (IDLE, READY, RECEPTION, EXECUTION,
 * COMPLETION), locality arbitration
 * (requestUse, pendingRequest, relinquish, Seize, beenSeized), interrupts, QEMU's dynamic burst
 * count, responseRetry, commandCancel, resetEstablishment, and the failure mode of a backend that
 * did not start (every register reads 0, every write is ignored, the TPM version is unspecified).
 *
 * The model answers every register access synchronously; commands run on the {@link TpmBackend}
 * asynchronously, so a driver really polls (or waits for the interrupt). Its lifecycle (start,
 * reset, killBackend, stop, phase events) is the {@link DeviceModel} contract every device model
 * follows.
 *
 * @packageDocumentation
 */
import type { Mmio } from "../../bus/mmio.js";
import type { InterruptEvent, InterruptLine } from "../../bus/interrupt.js";
import type { TpmBackend } from "../../core/transport.js";
import type { Clock } from "../../core/clock.js";
import { systemClock } from "../../core/clock.js";
import { TpmArgumentError } from "../../errors/index.js";
import { TIS_ACCESS, TIS_INT, TIS_LOCALITY_COUNT, TIS_REG, TIS_STS } from "../../bus/tis-registers.js";
import { TPM_RC } from "../../wire/constants.js";
import { errorResponse, readU32be } from "../../wire/bytes.js";
import { DeviceLifecycle, type DeviceEvent, type DeviceModel, type DevicePhase, type DeviceState } from "../lifecycle.js";

/** Largest command/response buffer QEMU's TIS has (TPM_TIS_BUFFER_MAX, QEMU hw/tpm/tpm_tis.h). */
export const TIS_BUFFER_MAX = 4096;
/** DID QEMU reports (high half of DID_VID; QEMU hw/tpm/tpm_tis_common.c, tpm_tis_mmio_read()). */
export const QEMU_TIS_DID = 0x0001;
/** VID QEMU reports: 0x1014 (PCI_VENDOR_ID_IBM; QEMU hw/tpm/tpm_tis_common.c). */
export const QEMU_TIS_VID = 0x1014;
/** RID QEMU reports (QEMU hw/tpm/tpm_tis_common.c). */
export const QEMU_TIS_RID = 0x01;
/** INTF_CAPABILITY for a TPM 2.0 backend: interface 1.3 for TPM 2.0, 64-byte transfers, dynamic burst, low-level IRQ, causes 0x87. */
export const QEMU_INTF_CAPABILITY_2_0 = 0x3000_0697;
/** INTF_CAPABILITY for a TPM 1.2 backend. */
export const QEMU_INTF_CAPABILITY_1_2 = 0x2000_0697;
/** INTERFACE_ID for TPM 2.0: FIFO type 0, version 0, 5 localities (b8), TIS supported (b13). */
export const QEMU_INTERFACE_ID_2_0 = 0x0000_2100;
/** INTERFACE_ID for TPM 1.2 (type 0xF = "TIS 1.3"). */
export const QEMU_INTERFACE_ID_1_2 = 0xffff_ffff;
/** INTERFACE_ID intfSelLock (b19): once written, set in every locality. */
export const TIS_INTERFACE_ID_SEL_LOCK = 0x0008_0000;
/** Diagnostics channel the device publishes its {@link TisDeviceEvent}s on. */
export const TIS_DEVICE_CHANNEL = "tpmkit:device:tis";

/** TPM 1.2 ContinueSelfTest ordinal; QEMU sets STS.selfTestDone when it succeeds. */
const TPM_ORD_CONTINUE_SELF_TEST = 0x53;
const NO_DATA_BYTE = 0xff;
/** INT_ENABLE reset value: typePolarity = low level (b3), everything disabled (QEMU hw/tpm/tpm_tis_common.c, tpm_tis_reset()). */
const INT_ENABLE_RESET = 0x08;
const WINDOW_SIZE = TIS_LOCALITY_COUNT * 0x1000;

/** QEMU's per-locality states (TPMTISState). */
export type TisLocalityState = "idle" | "ready" | "reception" | "execution" | "completion";

/**
 * Power state of the backend behind the device.
 *
 * @deprecated Use {@link DevicePhase} (`state.phase`): "on" is "running", "off" is "stopped".
 */
export type TisPower = "starting" | "on" | "failed" | "off";

/** Options of {@link TisDevice}. */
export interface TisDeviceOptions {
  /** What runs the commands. */
  backend: TpmBackend;
  /** The backend's buffer size; the device uses min(bufferSize, 4096). Default 4096. */
  bufferSize?: number;
  /** Device id (DID_VID high half). Default QEMU's 0x0001. */
  did?: number;
  /** Vendor id (DID_VID low half). Default QEMU's 0x1014. */
  vid?: number;
  /** Revision id. Default QEMU's 0x01. */
  rid?: number;
  /** Clock for device-side fault delays. Default the system clock. */
  clock?: Clock;
  /** TPM family of the backend. Default "2.0". */
  version?: "2.0" | "1.2";
  /** Value of INT_VECTOR (read-only, like QEMU's `irq` property). Default 5. */
  irq?: number;
  /**
   * A static burst count instead of QEMU's dynamic one (an extension for measurements): the
   * reported burst is min(burstCount, QEMU's value) and INTF_CAPABILITY gets burstCountStatic.
   */
  burstCount?: number;
  /** The backend's "TPM established" flag at start. Default false (ACCESS b0 reads 1). */
  established?: boolean;
  /** Diagnostics channel for {@link TisDeviceEvent}s (`false`: none). Default {@link TIS_DEVICE_CHANNEL}. */
  channel?: string | false;
}

/** Device-side fault hooks: what a misbehaving emulator does. Set through {@link TisDevice.faults}. */
export interface TisDeviceFaults {
  /** Commands handed to the backend never complete (the emulator hung mid-command). */
  stallExecution?: boolean;
  /** A completed response becomes visible this many ms later (device clock). */
  completionDelayMs?: number;
  /** Rewrites each response before it lands in the buffer: short, extra or corrupted data. */
  mutateResponse?: (response: Uint8Array, command: Uint8Array) => Uint8Array;
  /**
   * Broken interrupt routing, as on the laptops Linux keeps a deny-list for (Linux
   * drivers/char/tpm/tpm_tis.c, tpm_tis_dmi_table;
   * https://lore.kernel.org/r/20230814164054.64280-1-jarkko@kernel.org): causes still latch in
   * INT_STATUS but the line never reaches `onInterrupt` listeners.
   */
  loseInterrupts?: boolean;
}

/** One locality's registers, as {@link TisDevice.state} shows them. */
export interface TisLocalitySnapshot {
  readonly state: TisLocalityState;
  /** Stored ACCESS bits (pendingRequest and establishment are computed on read and not included). */
  readonly access: number;
  /** Stored STS bits (without the burst count). */
  readonly sts: number;
  readonly intEnable: number;
  readonly intStatus: number;
  readonly interfaceId: number;
}

/** A snapshot of the whole device, for tests and debugging. */
export interface TisDeviceState extends DeviceState {
  /** See {@link DevicePhase}. */
  readonly phase: DevicePhase;
  /** @deprecated Use {@link TisDeviceState.phase}: "on" is "running", "off" is "stopped". */
  readonly power: TisPower;
  readonly version: "2.0" | "1.2" | "unspecified";
  readonly activeLocality: number | null;
  /** Locality that becomes active when the command in flight finishes (a queued switch). */
  readonly nextLocality: number | null;
  readonly rwOffset: number;
  readonly bufferSize: number;
  readonly established: boolean;
  /** True while the backend runs a command. */
  readonly executing: boolean;
  /** True while the interrupt line is raised. */
  readonly irqRaised: boolean;
  readonly localities: readonly TisLocalitySnapshot[];
}

/** The TIS-specific events (besides the lifecycle's `phase` event): the body of a {@link TisDeviceEvent}. */
export type TisEvent =
  | { type: "state"; locality: number; from: TisLocalityState; to: TisLocalityState }
  | { type: "locality"; from: number | null; to: number | null }
  | { type: "access"; locality: number; from: number; to: number }
  | { type: "irq"; locality: number; causes: number }
  | { type: "irq-lowered"; locality: number }
  | { type: "command"; locality: number; length: number }
  | { type: "response"; locality: number; length: number }
  | { type: "cancel"; locality: number }
  | { type: "ignored"; locality: number; offset: number; reason: string };

/**
 * Messages published on the device's diagnostics channel, a discriminated union on `type`: the
 * TIS events above and the lifecycle's `{ type: "phase", from, to, cause? }`, each with the
 * `device` that published it and the clock `time`.
 */
export type TisDeviceEvent = DeviceEvent<TisDevice, TisEvent>;

const POWER: Record<DevicePhase, TisPower> = { starting: "starting", running: "on", failed: "failed", stopped: "off" };

interface Loc {
  state: TisLocalityState;
  access: number;
  sts: number;
  inte: number;
  ints: number;
  ifaceId: number;
}

const mask = (size: number) => (size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1);
const validLoc = (l: number | null): l is number => l !== null && l >= 0 && l < TIS_LOCALITY_COUNT;
const inWindow = (offset: number) => Number.isInteger(offset) && offset >= 0 && offset < WINDOW_SIZE;
/** True when `reg` (offset & 0xffc) is DATA_FIFO or inside XDATA_FIFO: a byte access moves one FIFO byte. */
const isFifoReg = (reg: number) => reg === TIS_REG.DATA_FIFO || (reg >= TIS_REG.XDATA_FIFO && reg <= TIS_REG.XDATA_FIFO_END);

/**
 * The TIS device model. Implements {@link Mmio} (the register window, offsets from the start of
 * locality 0's page) and {@link InterruptLine}.
 *
 * Start-up ({@link DeviceModel}): the constructor calls `backend.start()` when the backend has
 * one. Until it resolves the device reads as absent (all registers 0, writes ignored, version
 * "unspecified"), as a TIS in front of an emulator that has not answered yet; if it rejects, the
 * device stays in that failure mode until reset (QEMU's `had_startup_error`, QEMU
 * hw/tpm/tpm_tis_common.c; QEMU commits "tpm_tis: Return 0 for every register in case of failure
 * mode" and "tpm_tis: Return TPM_VERSION_UNSPEC in case of BE failure"). `await device.start()`
 * waits for the outcome and never rejects (it resolves with the phase); `await device.ready`
 * rejects with the backend's start error.
 *
 * Deliberate differences from QEMU: a backend whose `execute` rejects gets a 10-byte
 * TPM_RC_FAILURE response (QEMU's emulator backend writes a fatal-error response too; the exact
 * bytes differ); accesses outside the 0x5000 window read as undecoded registers (all ones).
 *
 * TCG PC Client PTP §6.5.2 (FIFO interface); QEMU hw/tpm/tpm_tis_common.c (behaviour).
 *
 * @example
 * ```ts
 * const device = new TisDevice({ backend: new SoftTpm() });
 * const tpm = await Tpm.open(tis({ mmio: device, interrupts: device }));
 * device.state.activeLocality; // null between commands: the driver relinquishes
 * ```
 */
export class TisDevice implements Mmio, InterruptLine, DeviceModel<TisDeviceState> {
  /** The interface modelled. */
  readonly kind = "tis";
  readonly #backend: TpmBackend;
  readonly #clock: Clock;
  readonly #bufferSize: number;
  readonly #did: number;
  readonly #vid: number;
  readonly #rid: number;
  readonly #irq: number;
  readonly #staticBurst: number | undefined;
  readonly #family: "2.0" | "1.2";
  readonly #life: DeviceLifecycle<TisDevice, TisEvent>;
  #buffer: Uint8Array;
  #locs: Loc[] = [];
  #active: number | null = null;
  #next: number | null = null;
  #aborting: number | null = null;
  #rwOffset = 0;
  #established: boolean;
  #irqRaised = false;
  #generation = 0;
  #executing: { locality: number; controller: AbortController; command: Uint8Array } | null = null;
  /** Signal source handed to `execute`; reused across commands until it aborts. */
  #controller = new AbortController();
  #listeners = new Set<(e: InterruptEvent) => void>();

  /** Device-side faults; assign a new object or mutate this one. */
  faults: TisDeviceFaults = {};

  /**
   * @param options - Backend, buffer size, identity, clock and model options.
   * @throws {TpmArgumentError} When bufferSize, did, vid, rid or burstCount are out of range.
   */
  constructor(options: TisDeviceOptions) {
    const o = options;
    const int = (v: number | undefined, def: number, max: number, what: string, min = 0) => {
      const x = v ?? def;
      if (!Number.isInteger(x) || x < min || x > max) throw new TpmArgumentError(`TisDevice: ${what} ${x} is not an integer in ${min}..${max}`);
      return x;
    };
    if (!o || typeof o.backend?.execute !== "function") throw new TpmArgumentError("TisDevice: options.backend with execute() is required");
    this.#backend = o.backend;
    this.#clock = o.clock ?? systemClock;
    this.#bufferSize = Math.min(int(o.bufferSize, TIS_BUFFER_MAX, 0x10000, "bufferSize", 10), TIS_BUFFER_MAX);
    this.#did = int(o.did, QEMU_TIS_DID, 0xffff, "did");
    this.#vid = int(o.vid, QEMU_TIS_VID, 0xffff, "vid");
    this.#rid = int(o.rid, QEMU_TIS_RID, 0xff, "rid");
    this.#irq = int(o.irq, 5, 0xff, "irq");
    this.#staticBurst = o.burstCount === undefined ? undefined : int(o.burstCount, 0, 0xffff, "burstCount", 1);
    this.#family = o.version ?? "2.0";
    this.#established = o.established ?? false;
    this.#life = new DeviceLifecycle<TisDevice, TisEvent>({
      device: this,
      kind: "tis",
      backend: this.#backend,
      clock: this.#clock,
      channel: o.channel ?? TIS_DEVICE_CHANNEL,
      onPhase: (to) => {
        if (to === "running") this.#applyFamily();
      },
    });
    this.#buffer = new Uint8Array(this.#bufferSize);
    this.#resetRegisters();
    this.#life.powerUp();
  }

  // ------------------------------------------------------------------ lifecycle

  /** The diagnostics channel the device publishes on ({@link TIS_DEVICE_CHANNEL} unless configured), or undefined. */
  get channel(): string | undefined {
    return this.#life.channelName;
  }

  /**
   * Resolves once the backend started; rejects with its start error (see {@link DeviceModel.ready}).
   */
  get ready(): Promise<void> {
    return this.#life.ready;
  }

  /**
   * Waits until the backend's `start()` settled, powering the device up first when it was
   * stopped (as {@link TisDevice.reset} does). Never rejects: a failed start puts the device in
   * failure mode (see {@link TisDevice.state}).
   *
   * @returns The phase once the start settled: "running" or "failed".
   */
  start(): Promise<DevicePhase> {
    return this.#life.phase === "stopped" ? this.reset() : this.#life.settled();
  }

  /**
   * Resets the device as at machine reset (QEMU `tpm_tis_reset`): registers back to reset values,
   * a command in flight forgotten, and the backend started again.
   *
   * @returns The phase once the backend's start settled (never rejects).
   */
  reset(): Promise<DevicePhase> {
    this.#abortExecution();
    this.#resetRegisters();
    this.#life.powerUp();
    return this.#life.settled();
  }

  /**
   * The backend dies (the emulator process exits): from now on the device is in failure mode,
   * every register reads 0 and writes are ignored, and a command in flight never completes.
   *
   * @param cause - Why, for the trace and `state.lastError`.
   */
  killBackend(cause?: unknown): void {
    this.#abortExecution();
    this.#life.fail(cause);
  }

  /**
   * Powers the device off: a command in flight is forgotten and every register reads 0 until
   * {@link TisDevice.start} or {@link TisDevice.reset}.
   *
   * @returns A resolved promise.
   */
  stop(): Promise<void> {
    this.#abortExecution();
    this.#life.stop();
    return Promise.resolve();
  }

  /** {@link TisDevice.stop}, for `await using`. @returns A resolved promise. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** The TPM version the device reports to firmware: "unspecified" unless the backend is on. */
  get tpmVersion(): "2.0" | "1.2" | "unspecified" {
    return this.#life.running ? this.#family : "unspecified";
  }

  /** A snapshot of all device state (copies; mutating it changes nothing). */
  get state(): TisDeviceState {
    const phase = this.#life.phase;
    return {
      phase,
      power: POWER[phase],
      lastError: this.#life.lastError,
      version: this.tpmVersion,
      activeLocality: this.#active,
      nextLocality: this.#next,
      rwOffset: this.#rwOffset,
      bufferSize: this.#bufferSize,
      established: this.#established,
      executing: this.#executing !== null,
      irqRaised: this.#irqRaised,
      localities: this.#locs.map((l) => ({ state: l.state, access: l.access, sts: l.sts, intEnable: l.inte, intStatus: l.ints, interfaceId: l.ifaceId })),
    };
  }

  /**
   * Subscribes to the interrupt line. The listener runs synchronously whenever the device raises
   * an enabled cause (INT_ENABLE.globalIntEnable and the cause bit set), with the locality and
   * the causes OR'ed into its INT_STATUS. Listener exceptions are swallowed.
   *
   * @param listener - Called per raised interrupt.
   * @returns Unsubscribe function.
   */
  onInterrupt(listener: (event: InterruptEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** The family bits and interface id are known once the backend answers (QEMU tpm_tis_reset). */
  #applyFamily(): void {
    for (const l of this.#locs) {
      l.sts = (l.sts & ~TIS_STS.FAMILY_MASK) | (this.#family === "2.0" ? TIS_STS.FAMILY_2_0 : TIS_STS.FAMILY_1_2);
      l.ifaceId = this.#family === "2.0" ? QEMU_INTERFACE_ID_2_0 : QEMU_INTERFACE_ID_1_2;
    }
  }

  #resetRegisters(): void {
    this.#active = this.#next = this.#aborting = null;
    this.#rwOffset = 0;
    this.#irqRaised = false;
    this.#locs = Array.from({ length: TIS_LOCALITY_COUNT }, () => ({
      state: "idle" as TisLocalityState,
      access: TIS_ACCESS.VALID,
      sts: 0,
      inte: INT_ENABLE_RESET,
      ints: 0,
      ifaceId: 0,
    }));
    if (this.#life.running) this.#applyFamily();
  }

  #abortExecution(): void {
    this.#generation++;
    if (this.#executing) {
      this.#executing.controller.abort();
      this.#executing = null;
    }
  }

  #emit(e: TisEvent): void {
    this.#life.emit(e);
  }

  #setState(locality: number, to: TisLocalityState): void {
    const l = this.#locs[locality]!;
    if (l.state === to) return;
    const from = l.state;
    l.state = to;
    this.#emit({ type: "state", locality, from, to });
  }

  /** QEMU tpm_tis_sts_set: keep selfTestDone and the family bits, replace the rest. */
  #stsSet(locality: number, flags: number): void {
    const l = this.#locs[locality]!;
    l.sts = ((l.sts & (TIS_STS.SELFTEST_DONE | TIS_STS.FAMILY_MASK)) | flags) >>> 0;
  }

  #raiseIrq(locality: number | null, causes: number): void {
    if (!validLoc(locality)) return;
    const l = this.#locs[locality]!;
    if (!(l.inte & TIS_INT.GLOBAL_ENABLE) || !(l.inte & causes)) return;
    l.ints |= causes;
    this.#irqRaised = true;
    this.#emit({ type: "irq", locality, causes });
    if (this.faults.loseInterrupts) return;
    for (const fn of [...this.#listeners]) {
      try {
        fn({ locality, causes });
      } catch {
        /* a listener's bug must not break the device */
      }
    }
  }

  #headerSize(): number {
    return readU32be(this.#buffer, 2);
  }

  // ------------------------------------------------------------------ locality arbitration

  #newActiveLocality(to: number | null): void {
    const from = this.#active;
    const change = from !== to;
    if (change && validLoc(from)) {
      const isSeize = validLoc(to) && (this.#locs[to]!.access & TIS_ACCESS.SEIZE) !== 0;
      const old = this.#locs[from]!;
      old.access &= isSeize ? ~TIS_ACCESS.ACTIVE_LOCALITY : ~(TIS_ACCESS.ACTIVE_LOCALITY | TIS_ACCESS.REQUEST_USE);
      if (isSeize) old.access |= TIS_ACCESS.BEEN_SEIZED;
    }
    this.#active = to;
    if (validLoc(to)) {
      const n = this.#locs[to]!;
      n.access = (n.access | TIS_ACCESS.ACTIVE_LOCALITY) & ~(TIS_ACCESS.REQUEST_USE | TIS_ACCESS.SEIZE);
    }
    if (change) {
      this.#emit({ type: "locality", from, to });
      this.#raiseIrq(to, TIS_INT.LOCALITY_CHANGE);
    }
  }

  /** QEMU tpm_tis_prep_abort: cancel a running command first, switch when it completed. */
  #prepAbort(aborting: number | null, next: number | null): void {
    this.#aborting = aborting;
    this.#next = next;
    if (this.#executing) {
      this.#emit({ type: "cancel", locality: this.#executing.locality });
      this.#backend.cancel?.();
      return;
    }
    this.#abort();
  }

  /** QEMU tpm_tis_abort. */
  #abort(): void {
    this.#rwOffset = 0;
    if (this.#aborting !== null && this.#aborting === this.#next) {
      this.#setState(this.#aborting, "ready");
      this.#stsSet(this.#aborting, TIS_STS.COMMAND_READY);
      this.#raiseIrq(this.#aborting, TIS_INT.COMMAND_READY);
    }
    this.#newActiveLocality(this.#next);
    this.#next = null;
    this.#aborting = null;
  }

  // ------------------------------------------------------------------ command execution

  #send(locality: number): void {
    this.#setState(locality, "execution");
    const command = this.#buffer.slice(0, this.#rwOffset);
    // One controller serves command after command until something aborts it (reset, kill), as
    // the chip and CrbDevice do: a fresh AbortController per command was a measurable cost.
    if (this.#controller.signal.aborted) this.#controller = new AbortController();
    const controller = this.#controller;
    this.#executing = { locality, controller, command };
    const gen = this.#generation;
    this.#emit({ type: "command", locality, length: command.length });
    let result: Promise<Uint8Array>;
    try {
      result = Promise.resolve(this.#backend.execute(command, locality, controller.signal));
    } catch (e) {
      result = Promise.reject(e);
    }
    void result
      .then(
        (r) => (r instanceof Uint8Array ? r : errorResponse(TPM_RC.FAILURE)),
        (e: unknown) => {
          if (gen === this.#generation) this.#life.recordError(e);
          return errorResponse(TPM_RC.FAILURE);
        },
      )
      .then(async (response) => {
        if (gen !== this.#generation) return;
        if (this.faults.stallExecution) return; // the emulator hung: the command never completes
        const delay = this.faults.completionDelayMs ?? 0;
        if (delay > 0) {
          await this.#clock.sleep(delay, controller.signal).catch(() => undefined);
          if (gen !== this.#generation) return;
        }
        const mutate = this.faults.mutateResponse;
        if (mutate) {
          try {
            response = mutate(response, command);
          } catch {
            response = errorResponse(TPM_RC.FAILURE);
          }
        }
        this.#requestCompleted(locality, command, response);
      });
  }

  /** QEMU tpm_tis_request_completed. */
  #requestCompleted(locality: number, command: Uint8Array, response: Uint8Array): void {
    this.#executing = null;
    if (!this.#life.running) return;
    const n = Math.min(response.length, this.#bufferSize);
    this.#buffer.set(response.subarray(0, n));
    if (command.length >= 10 && readU32be(command, 6) === TPM_ORD_CONTINUE_SELF_TEST && n >= 10 && readU32be(response, 6) === 0) {
      for (const l of this.#locs) l.sts |= TIS_STS.SELFTEST_DONE;
    }
    this.#emit({ type: "response", locality, length: n });
    this.#stsSet(locality, TIS_STS.VALID | TIS_STS.DATA_AVAIL);
    this.#setState(locality, "completion");
    this.#rwOffset = 0;
    if (validLoc(this.#next)) this.#abort();
    this.#raiseIrq(locality, TIS_INT.DATA_AVAIL | TIS_INT.STS_VALID);
  }

  // ------------------------------------------------------------------ register access

  /** One 1–4 byte register read: QEMU tpm_tis_mmio_read. */
  #read(offset: number, size: number): number {
    if (!this.#life.running) return 0;
    if (!inWindow(offset)) return mask(size);
    const locality = offset >>> 12;
    const reg = offset & 0xffc;
    let shift = (offset & 3) * 8;
    const l = this.#locs[locality]!;
    let val = 0xffff_ffff;
    switch (reg) {
      case TIS_REG.ACCESS:
        val = l.access & ~TIS_ACCESS.SEIZE;
        if (this.#locs.some((o, i) => i !== locality && (o.access & TIS_ACCESS.REQUEST_USE))) val |= TIS_ACCESS.PENDING_REQUEST;
        if (!this.#established) val |= TIS_ACCESS.ESTABLISHMENT;
        break;
      case TIS_REG.INT_ENABLE:
        val = l.inte;
        break;
      case TIS_REG.INT_VECTOR:
        val = this.#irq;
        break;
      case TIS_REG.INT_STATUS:
        val = l.ints;
        break;
      case TIS_REG.INTF_CAPABILITY:
        val = (this.#family === "2.0" ? QEMU_INTF_CAPABILITY_2_0 : QEMU_INTF_CAPABILITY_1_2) | (this.#staticBurst ? TIS_INT.BURST_COUNT_STATIC : 0);
        break;
      case TIS_REG.STS:
        if (this.#active === locality) val = ((this.#burstCount(l, size) << 8) | l.sts) >>> 0;
        break;
      case TIS_REG.DATA_FIFO:
        if (this.#active === locality) {
          const n = Math.min(size, 4 - (offset & 3));
          val = 0;
          for (let i = 0; i < n; i++) val |= this.#fifoReadByte(locality) << (8 * i);
          shift = 0;
        }
        break;
      case TIS_REG.INTERFACE_ID:
        val = l.ifaceId;
        break;
      case TIS_REG.DID_VID:
        val = ((this.#did << 16) | this.#vid) >>> 0;
        break;
      case TIS_REG.RID:
        val = this.#rid;
        break;
      default:
        if (reg >= TIS_REG.XDATA_FIFO && reg <= TIS_REG.XDATA_FIFO_END && this.#active === locality) {
          const n = Math.min(size, 4 - (offset & 3));
          val = 0;
          for (let i = 0; i < n; i++) val |= this.#fifoReadByte(locality) << (8 * i);
          shift = 0;
        }
    }
    return ((val >>> shift) & mask(size)) >>> 0;
  }

  #burstCount(l: Loc, size: number): number {
    let burst: number;
    if (l.sts & TIS_STS.DATA_AVAIL) {
      burst = Math.max(0, Math.min(this.#headerSize(), this.#bufferSize) - this.#rwOffset);
    } else {
      burst = this.#bufferSize - this.#rwOffset;
      // a byte read must not show 0x00 when 0x100 bytes are free
      if (size === 1 && burst > 0xff) burst = 0xff;
    }
    if (this.#staticBurst !== undefined) burst = Math.min(burst, this.#staticBurst);
    return burst & 0xffff;
  }

  /** QEMU tpm_tis_data_read, or the no-data byte outside COMPLETION. */
  #fifoReadByte(locality: number): number {
    const l = this.#locs[locality]!;
    if (l.state !== "completion" || !(l.sts & TIS_STS.DATA_AVAIL)) return NO_DATA_BYTE;
    const len = Math.min(this.#headerSize(), this.#bufferSize);
    const b = this.#rwOffset < this.#bufferSize ? this.#buffer[this.#rwOffset]! : NO_DATA_BYTE;
    this.#rwOffset++;
    if (this.#rwOffset >= len) {
      this.#stsSet(locality, TIS_STS.VALID);
      this.#raiseIrq(locality, TIS_INT.STS_VALID);
    }
    return b;
  }

  /** One 1–4 byte register write: QEMU tpm_tis_mmio_write. */
  #write(offset: number, value: number, size: number): void {
    if (!inWindow(offset)) return;
    const locality = offset >>> 12;
    const reg = offset & 0xffc;
    const shift = (offset & 3) * 8;
    if (locality === 4) {
      this.#emit({ type: "ignored", locality, offset, reason: "locality 4 writes are ignored" });
      return;
    }
    if (!this.#life.running) return;
    let val = (value & mask(size)) >>> 0;
    const keep = ~((mask(size) << shift) >>> 0) >>> 0;
    val = (val << shift) >>> 0;
    const l = this.#locs[locality]!;
    const isActive = this.#active === locality;
    switch (reg) {
      case TIS_REG.ACCESS:
        this.#writeAccess(locality, val);
        break;
      case TIS_REG.INT_ENABLE:
        if (!isActive) break;
        l.inte = ((l.inte & keep) | (val & (TIS_INT.GLOBAL_ENABLE | TIS_INT.POLARITY_MASK | TIS_INT.SUPPORTED))) >>> 0;
        break;
      case TIS_REG.INT_VECTOR:
        break; // hard-wired
      case TIS_REG.INT_STATUS:
        if (!isActive) break;
        l.ints &= ~(val & TIS_INT.SUPPORTED);
        if (l.ints === 0 && this.#irqRaised && this.#locs.every((x) => x.ints === 0)) {
          this.#irqRaised = false;
          this.#emit({ type: "irq-lowered", locality });
        }
        break;
      case TIS_REG.STS:
        if (!isActive) break;
        this.#writeSts(locality, val);
        break;
      case TIS_REG.DATA_FIFO:
        if (isActive) this.#fifoWrite(locality, val >>> shift, Math.min(size, 4 - (offset & 3)));
        break;
      case TIS_REG.INTERFACE_ID:
        if (val & TIS_INTERFACE_ID_SEL_LOCK) for (const x of this.#locs) x.ifaceId = (x.ifaceId | TIS_INTERFACE_ID_SEL_LOCK) >>> 0;
        break;
      default:
        if (reg >= TIS_REG.XDATA_FIFO && reg <= TIS_REG.XDATA_FIFO_END && isActive) {
          this.#fifoWrite(locality, val >>> shift, Math.min(size, 4 - (offset & 3)));
        }
    }
  }

  #writeAccess(locality: number, val: number): void {
    if (!this.#life.hasSubscribers) {
      this.#writeAccessInner(locality, val); // nobody listens: no snapshot to diff
      return;
    }
    const before = this.#locs.map((x) => x.access);
    this.#writeAccessInner(locality, val);
    this.#locs.forEach((x, i) => {
      if (x.access !== before[i]) this.#emit({ type: "access", locality: i, from: before[i]!, to: x.access });
    });
  }

  #writeAccessInner(locality: number, val: number): void {
    const l = this.#locs[locality]!;
    if (val & TIS_ACCESS.SEIZE) val &= ~(TIS_ACCESS.REQUEST_USE | TIS_ACCESS.ACTIVE_LOCALITY);
    let newActive = this.#active;
    let setActive = true;
    if (val & TIS_ACCESS.ACTIVE_LOCALITY) {
      if (this.#active === locality) {
        // relinquish: the highest locality with a pending request goes next
        let next: number | null = null;
        for (let c = TIS_LOCALITY_COUNT - 1; c >= 0; c--) {
          if (this.#locs[c]!.access & TIS_ACCESS.REQUEST_USE) {
            next = c;
            break;
          }
        }
        if (next !== null) {
          setActive = false;
          this.#prepAbort(locality, next);
        } else {
          newActive = null;
        }
      } else {
        l.access &= ~TIS_ACCESS.REQUEST_USE; // not the owner: withdraw a pending request
      }
    }
    if (val & TIS_ACCESS.BEEN_SEIZED) l.access &= ~TIS_ACCESS.BEEN_SEIZED;
    if (val & TIS_ACCESS.SEIZE) {
      const act = this.#active;
      const allowed = !validLoc(act) || locality > act;
      const alreadyPending = (l.access & TIS_ACCESS.SEIZE) !== 0;
      const higherSeize = this.#locs.some((x, i) => i > locality && (x.access & TIS_ACCESS.SEIZE));
      if (allowed && !alreadyPending && !higherSeize) {
        for (let i = 0; i < locality; i++) this.#locs[i]!.access &= ~TIS_ACCESS.SEIZE;
        l.access |= TIS_ACCESS.SEIZE;
        setActive = false;
        this.#prepAbort(this.#active, locality);
      }
    }
    if (val & TIS_ACCESS.REQUEST_USE && this.#active !== locality) {
      if (validLoc(this.#active)) l.access |= TIS_ACCESS.REQUEST_USE;
      else newActive = locality;
    }
    if (setActive) this.#newActiveLocality(newActive);
  }

  #writeSts(locality: number, val: number): void {
    const l = this.#locs[locality]!;
    if (this.#family === "2.0") {
      if (val & TIS_STS.COMMAND_CANCEL && l.state === "execution") {
        this.#emit({ type: "cancel", locality });
        this.#backend.cancel?.();
      }
      if (val & TIS_STS.RESET_ESTABLISHMENT && (locality === 3 || locality === 4)) this.#established = false;
    }
    val &= TIS_STS.COMMAND_READY | TIS_STS.GO | TIS_STS.RESPONSE_RETRY;
    if (val === TIS_STS.COMMAND_READY) {
      switch (l.state) {
        case "ready":
          this.#rwOffset = 0;
          break;
        case "idle":
          this.#stsSet(locality, TIS_STS.COMMAND_READY);
          this.#setState(locality, "ready");
          this.#raiseIrq(locality, TIS_INT.COMMAND_READY);
          break;
        case "execution":
        case "reception":
          this.#prepAbort(locality, locality);
          break;
        case "completion":
          this.#rwOffset = 0;
          this.#setState(locality, "ready");
          if (!(l.sts & TIS_STS.COMMAND_READY)) {
            this.#stsSet(locality, TIS_STS.COMMAND_READY);
            this.#raiseIrq(locality, TIS_INT.COMMAND_READY);
          }
          l.sts &= ~TIS_STS.DATA_AVAIL;
          break;
      }
    } else if (val === TIS_STS.GO) {
      if (l.state === "reception" && !(l.sts & TIS_STS.EXPECT)) this.#send(locality);
    } else if (val === TIS_STS.RESPONSE_RETRY) {
      if (l.state === "completion") {
        this.#rwOffset = 0;
        this.#stsSet(locality, TIS_STS.VALID | TIS_STS.DATA_AVAIL);
      }
    }
  }

  #fifoWrite(locality: number, val: number, size: number): void {
    const l = this.#locs[locality]!;
    if (l.state === "idle" || l.state === "execution" || l.state === "completion") return; // dropped
    if (l.state === "ready") {
      this.#setState(locality, "reception");
      this.#stsSet(locality, TIS_STS.EXPECT | TIS_STS.VALID);
    }
    while (l.sts & TIS_STS.EXPECT && size > 0) {
      if (this.#rwOffset < this.#bufferSize) {
        this.#buffer[this.#rwOffset++] = val & 0xff;
        val >>>= 8;
        size--;
      } else {
        this.#stsSet(locality, TIS_STS.VALID); // overflow: Expect drops
      }
    }
    if (this.#rwOffset > 5 && l.sts & TIS_STS.EXPECT) {
      const needIrq = !(l.sts & TIS_STS.VALID);
      this.#stsSet(locality, this.#headerSize() > this.#rwOffset ? TIS_STS.EXPECT | TIS_STS.VALID : TIS_STS.VALID);
      if (needIrq) this.#raiseIrq(locality, TIS_INT.STS_VALID);
    }
  }

  // ------------------------------------------------------------------ Mmio

  /** 8-bit register read (PTP §6.5.2). @param offset - Offset in the window. @returns The byte. */
  read8(offset: number): number {
    return this.#read(offset, 1);
  }
  /** 16-bit register read. @param offset - Offset in the window. @returns The value. */
  read16(offset: number): number {
    return this.#read(offset, 2);
  }
  /** 32-bit register read. @param offset - Offset in the window. @returns The value. */
  read32(offset: number): number {
    return this.#read(offset, 4);
  }
  /** 8-bit register write. @param offset - Offset in the window. @param value - The byte. */
  write8(offset: number, value: number): void {
    this.#write(offset, value, 1);
  }
  /** 16-bit register write. @param offset - Offset in the window. @param value - The value. */
  write16(offset: number, value: number): void {
    this.#write(offset, value, 2);
  }
  /** 32-bit register write. @param offset - Offset in the window. @param value - The value. */
  write32(offset: number, value: number): void {
    this.#write(offset, value, 4);
  }

  /**
   * One burst of `length` byte reads at `offset` (normally DATA_FIFO). The result and the device
   * state afterwards are exactly those of `length` calls to {@link TisDevice.read8}; response
   * bytes that change no register are block-copied (PTP §6.5.2 FIFO; QEMU tpm_tis_data_read).
   *
   * @param offset - Offset in the window.
   * @param length - Bytes to read, 0–65536.
   * @returns The bytes (0xFF where the FIFO has no data, 0 in failure mode).
   * @throws {TpmArgumentError} When `length` is not an integer in 0–65536.
   */
  readFifo(offset: number, length: number): Uint8Array {
    if (!Number.isInteger(length) || length < 0 || length > 0x10000) throw new TpmArgumentError(`readFifo: length ${length} is not an integer in 0..65536`);
    const out = new Uint8Array(length);
    const loc = this.#fifoLocality(offset);
    for (let i = 0; i < length; ) {
      // Block copy of the bytes a byte-by-byte read would return unchanged: while the response
      // is being read and the byte read is not its last (the last one sets stsValid, drops
      // dataAvail and may raise an interrupt, so it goes through the register path).
      if (loc >= 0 && this.#life.running && this.#active === loc) {
        const l = this.#locs[loc]!;
        if (l.state === "completion" && l.sts & TIS_STS.DATA_AVAIL) {
          const m = Math.min(Math.min(this.#headerSize(), this.#bufferSize) - 1 - this.#rwOffset, length - i - 1);
          if (m > 0) {
            out.set(this.#buffer.subarray(this.#rwOffset, this.#rwOffset + m), i);
            this.#rwOffset += m;
            i += m;
          }
        }
      }
      out[i++] = this.#read(offset, 1);
    }
    return out;
  }

  /**
   * One burst of byte writes at `offset` (normally DATA_FIFO). The device state afterwards
   * (registers, interrupts, trace events) is exactly that of one {@link TisDevice.write8} per
   * byte; command bytes that change no register are block-copied (PTP §6.5.2 FIFO; QEMU
   * tpm_tis_mmio_write).
   *
   * @param offset - Offset in the window.
   * @param data - Bytes to write.
   * @throws {TpmArgumentError} When `data` is not a Uint8Array.
   */
  writeFifo(offset: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new TpmArgumentError("writeFifo: data must be a Uint8Array");
    const loc = this.#fifoLocality(offset);
    const n = data.length;
    for (let i = 0; i < n; ) {
      // Block copy of the bytes whose byte-by-byte write would only store them: the command is
      // in reception, its header (size field) is in, Expect and Valid are set and stay set
      // (more bytes are due after each of them). Every other byte, including the burst's last,
      // goes through the register path, so state changes, Expect/Valid and interrupts happen
      // exactly as before. The conditions are re-checked after each byte (an interrupt listener
      // runs synchronously and may touch registers).
      if (loc >= 0 && this.#life.running && this.#active === loc) {
        const l = this.#locs[loc]!;
        const ev = TIS_STS.EXPECT | TIS_STS.VALID;
        if (l.state === "reception" && this.#rwOffset > 5 && (l.sts & ev) === ev) {
          // bytes that keep rwOffset ≤ headerSize − 1 and inside the buffer, and not the last one
          const m = Math.min(Math.min(this.#headerSize() - 1, this.#bufferSize) - this.#rwOffset, n - i - 1);
          if (m > 0) {
            this.#buffer.set(data.subarray(i, i + m), this.#rwOffset);
            this.#rwOffset += m;
            i += m;
          }
        } else if (l.state === "idle" || l.state === "execution" || l.state === "completion") {
          return; // every byte is dropped, with no side effect (QEMU tpm_tis_mmio_write)
        }
      }
      this.#write(offset, data[i++]!, 1);
    }
  }

  /** The locality whose FIFO a byte access at `offset` reaches (DATA_FIFO/XDATA_FIFO, not locality 4), else −1. */
  #fifoLocality(offset: number): number {
    if (!inWindow(offset) || !isFifoReg(offset & 0xffc)) return -1;
    const loc = offset >>> 12;
    return loc === 4 ? -1 : loc;
  }
}
