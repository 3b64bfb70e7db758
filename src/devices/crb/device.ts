/**
 * A register-level model of a TPM 2.0 CRB (Command Response Buffer) interface, with QEMU's register
 * semantics and reset values (QEMU `hw/tpm/tpm_crb.c`; TCG PC Client PTP, "CRB Interface").
 * It implements {@link Mmio}: every access is answered synchronously; a started command runs on the
 * {@link TpmBackend} asynchronously and completes (CTRL_START clears) when `execute` settles. Its
 * lifecycle (start, reset, killBackend, stop, phase events) is the {@link DeviceModel} contract
 * every device model follows.
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../../core/clock.js";
import { TpmArgumentError } from "../../errors/index.js";
import type { TpmBackend } from "../../core/transport.js";
import type { Mmio } from "../../bus/mmio.js";
import { TPM_RC } from "../../wire/constants.js";
import { errorResponse, readU32be } from "../../wire/bytes.js";
import { DeviceLifecycle, type DeviceEvent, type DeviceModel, type DevicePhase, type DeviceState } from "../lifecycle.js";
import { CRB_QEMU_BUFFER_SIZE, CRB_QEMU_INTF_ID, CRB_QEMU_INTF_ID2 } from "./qemu.js";
import {
  CRB_CONTROL_AREA_SIZE,
  CRB_CTRL_REQ,
  CRB_CTRL_STS,
  CRB_INVOKE,
  CRB_LOC_CTRL,
  CRB_LOC_STATE,
  CRB_LOC_STS,
  CRB_PAGE_SIZE,
  CRB_REG,
} from "../../bus/crb-registers.js";

/** Name of the diagnostics channel the model publishes {@link CrbDeviceEvent}s on. */
export const CRB_DEVICE_CHANNEL = "tpmkit:device:crb";

/** Options of {@link CrbDevice}. */
export interface CrbDeviceOptions {
  /**
   * Runs the commands. Its `start()` is called by the constructor (and by {@link CrbDevice.reset}).
   * The signal passed to `execute` fires on CTRL_CANCEL or reset; it is reused across commands
   * until it fires, so a backend must remove the listeners it adds.
   */
  backend: TpmBackend;
  /**
   * CMD_SIZE / RSP_SIZE, the largest command and response: 10–3968. Default 3968 (0xF80), QEMU's
   * `min(backend buffer size, 0x1000 − 0x80)`. The data RAM itself is always 0xF80 bytes.
   */
  bufferSize?: number;
  /** 1 (QEMU: locality 0 only, the default) or 5 (PTP: five pages, CapLocality set). */
  localities?: 1 | 5;
  /** Used for trace timestamps. Default the system clock. */
  clock?: Clock;
  /**
   * Physical address of the register block, used in CMD_PA / RSP_PA. Default 0, so that the
   * buffer addresses are offsets and `crb({ mmio: device })` works with its default `base` of 0.
   * Pass {@link CRB_QEMU_ADDRESS} (0xFED40000) for QEMU's exact reset values (and the same `base`
   * to the driver).
   */
  address?: number;
  /** The backend's "TPM established" flag (LOC_STATE b0 reads its inverse, as in QEMU). Default false. */
  established?: boolean;
  /** A name for traces. Default "crb". */
  name?: string;
  /**
   * When register writes take effect. `"register"` (default, QEMU): at once. `"doorbell"`: writes
   * to LOC_CTRL, CTRL_REQ, CTRL_CANCEL and CTRL_START are latched (and read back) until
   * {@link CrbDevice.doorbell} is called, as a TPM behind an Arm FF-A START call behaves (Arm
   * DEN0138, "TPM Service Command Response Buffer Interface Over FF-A", START; Linux
   * drivers/char/tpm/tpm_crb_ffa.c, tpm_crb_ffa_start()). A driver whose start method never rings
   * times out.
   */
  trigger?: "register" | "doorbell";
  /** Diagnostics channel for {@link CrbDeviceEvent}s (`false`: none). Default {@link CRB_DEVICE_CHANNEL}. */
  channel?: string | false;
}

/** What {@link CrbDevice.doorbell} reports (a TPM service partition maps it to DEN0138 OK / DENIED / INVARG). */
export type CrbDoorbellStatus = "ok" | "denied" | "invalid";

/**
 * Fault hooks: set fields on {@link CrbDevice.faults} at any time. Each reproduces a platform
 * failure a CRB driver has to survive: a TPM that never completes or never grants (the bounded
 * waits of Linux drivers/char/tpm/tpm_crb.c, crb_go_idle()/crb_cmd_ready()/crb_request_locality()),
 * and firmware that reports wrong buffer sizes or addresses (the FW_BUG checks of
 * tpm_crb.c, crb_map_io()).
 */
export interface CrbDeviceFaults {
  /** CTRL_START is accepted but never clears, and CTRL_CANCEL is ignored. */
  startNeverClears: boolean;
  /** CTRL_STS.tpmSts (fatal error) reads 1 whatever the state. */
  tpmSts: boolean;
  /** cmdReady / goIdle requests stay pending in CTRL_REQ forever (idle/ready never completes). */
  ctrlReqStuck: boolean;
  /** LOC_CTRL requestAccess is ignored: the locality is never granted. */
  localityDenied: boolean;
  /** CMD_SIZE reads this instead of the real size (firmware that lies about sizes). */
  cmdSize: number | undefined;
  /** RSP_SIZE reads this instead of the real size. */
  rspSize: number | undefined;
  /** CMD_PA (64-bit) reads this instead of the real address. */
  cmdAddress: number | bigint | undefined;
  /** RSP_PA (64-bit) reads this instead of the real address. */
  rspAddress: number | bigint | undefined;
}

/**
 * Where the model is in its life.
 *
 * @deprecated Use {@link DevicePhase}, the phase every device model shares (it adds "stopped").
 */
export type CrbDevicePhase = DevicePhase;

/** A snapshot of the model's state, for tests and tools. */
export interface CrbDeviceState extends DeviceState {
  /** See {@link DevicePhase}. */
  phase: DevicePhase;
  /** The assigned locality, or -1. */
  locality: number;
  /** Localities with a pending requestAccess (five-locality mode only). */
  pending: number[];
  /** CTRL_STS.tpmIdle. */
  idle: boolean;
  /** CTRL_START.b0: a command is executing. */
  started: boolean;
  /** Locality the executing (or last) command was started from. */
  startedLocality: number;
  /** CTRL_STS.tpmSts set by a backend error (sticky until reset); the fault hook is not included. */
  fatal: boolean;
  /** CANCEL was written while the current command ran. */
  cancelRequested: boolean;
  /** Commands handed to the backend since construction. */
  commands: number;
  /** The last error the backend gave (start, execute, or the `killBackend` cause). */
  lastError: unknown;
}

/** The CRB-specific events (besides the lifecycle's `phase` event): the body of a {@link CrbDeviceEvent}. */
export type CrbEvent =
  /** A register or block read: `value` is the value read, or the length of a block. */
  | { type: "read"; offset: number; width: 8 | 16 | 32 | "block"; value: number }
  /** A register or block write: `value` is the value written, or the length of a block. */
  | { type: "write"; offset: number; width: 8 | 16 | 32 | "block"; value: number }
  /** CTRL_START accepted: `value` is the command length handed to the backend. */
  | { type: "start"; locality: number; value?: number; detail?: string }
  /** CTRL_START cleared: `value` is the response length. */
  | { type: "complete"; locality: number; value: number; detail?: string }
  | { type: "cancel"; locality: number }
  /** A locality granted, or relinquished (`locality` -1). */
  | { type: "locality"; locality: number; detail: "granted" | "relinquished" }
  /** The backend failed a command: CTRL_STS.tpmSts is set. */
  | { type: "fatal"; detail: string }
  /** A write the model refused. */
  | { type: "ignored"; offset: number; value: number; detail: string }
  | { type: "doorbell"; locality: number; detail: string };

/**
 * What the model publishes on {@link CRB_DEVICE_CHANNEL}, a discriminated union on `type`: the CRB
 * events (read, write, start, complete, cancel, locality, fatal, ignored, doorbell) and the
 * lifecycle's `{ type: "phase", from, to, cause? }`, each with the `device` and the clock `time`.
 */
export type CrbDeviceEvent = DeviceEvent<CrbDevice, CrbEvent>;

const MAX_BLOCK = 0x10000;

/**
 * The CRB device model. Register semantics follow QEMU's `hw/tpm/tpm_crb.c` (tpm_crb_reset(),
 * tpm_crb_mmio_read(), tpm_crb_mmio_write()):
 *
 * - Reset: LOC_STATE.tpmRegValidSts = 1, CTRL_STS.tpmIdle = 1, INTF_ID = 0x00025811 (0x00025911
 *   with five localities: CapLocality), INTF_ID2 = 0x00001014, CMD_SIZE = RSP_SIZE = `bufferSize`,
 *   CMD_PA = RSP_PA = `address` + page + 0x80, everything else 0.
 * - LOC_CTRL requestAccess grants at once (or queues while another locality holds it, five-locality
 *   mode), relinquish releases (and grants the highest pending request); seize and
 *   resetEstablishment are ignored, as in QEMU.
 * - CTRL_REQ cmdReady clears tpmIdle, goIdle sets it; both complete at once (CTRL_REQ reads 0).
 * - CTRL_START = 1 is accepted only when START is clear and the page's locality is the assigned
 *   one; cmdReady is not required. The command length is the header size field capped to
 *   `bufferSize`. On completion START clears; a backend error sets CTRL_STS.tpmSts (sticky).
 * - CTRL_CANCEL = 1 while START is set cancels the backend (its `cancel()` and the execute signal);
 *   a command cancelled that way and rejected by the backend completes with TPM_RC_CANCELED.
 * - CTRL_CANCEL, CTRL_REQ, CTRL_EXT, INT_ENABLE, INT_STS are not stored and read 0 (QEMU).
 * - The data buffer (0x80–0xFFF of each page, one RAM shared by all pages) is plain memory; the
 *   `readFifo`/`writeFifo` block calls copy consecutive bytes (CRB has no FIFO).
 * - Offsets outside the pages read all ones and writes there are dropped (nothing decodes them).
 *
 * Doorbell mode (`trigger: "doorbell"`): LOC_CTRL, CTRL_REQ, CTRL_CANCEL and CTRL_START writes are
 * latched and read back until {@link CrbDevice.doorbell} applies them with the semantics above,
 * which is how a TPM behind a DEN0138 START call (CRB over FF-A) sees the control area.
 *
 * Lifecycle ({@link DeviceModel}): while `backend.start()` runs every register reads 0; if it
 * rejects (or {@link CrbDevice.killBackend} is called), the model stays that way (reads 0, writes
 * ignored) until {@link CrbDevice.reset}. QEMU's CRB calls exit(1) instead when the backend fails
 * at reset (QEMU commit "Exit() in the frontend reset function"); QEMU's TIS reads 0 for every
 * register in that case (QEMU commit "tpm_tis: Return 0 for every register in case of failure
 * mode"), and the model follows the TIS, since a dead VM is not something to test against.
 *
 * @example
 * ```ts
 * const device = new CrbDevice({ backend: new SoftTpm() });
 * const tpm = await Tpm.open(crb({ mmio: device, start: mmioStart() }));
 * device.faults.startNeverClears = true;   // the next command times out
 * ```
 */
export class CrbDevice implements Mmio, DeviceModel<CrbDeviceState> {
  /** The interface modelled. */
  readonly kind = "crb";
  /** The backend that runs commands. */
  readonly backend: TpmBackend;
  /** CMD_SIZE / RSP_SIZE. */
  readonly bufferSize: number;
  /** Number of locality pages: 1 or 5. */
  readonly localities: 1 | 5;
  /** Physical address of the register block (CMD_PA = address + page + 0x80). */
  readonly address: number;
  /** Name for traces. */
  readonly name: string;
  /** When register writes take effect: at once (`"register"`) or on {@link CrbDevice.doorbell}. */
  readonly trigger: "register" | "doorbell";
  /** Fault hooks; see {@link CrbDeviceFaults}. */
  readonly faults: CrbDeviceFaults = {
    startNeverClears: false,
    tpmSts: false,
    ctrlReqStuck: false,
    localityDenied: false,
    cmdSize: undefined,
    rspSize: undefined,
    cmdAddress: undefined,
    rspAddress: undefined,
  };

  #clock: Clock;
  readonly #life: DeviceLifecycle<CrbDevice, CrbEvent>;
  #ram = new Uint8Array(CRB_PAGE_SIZE - CRB_CONTROL_AREA_SIZE);
  #established: boolean;
  #assigned = -1;
  #pending = new Set<number>();
  #idle = true;
  #started = false;
  #startedLocality = -1;
  #fatal = false;
  #cancel = false;
  #reqPending = 0;
  /** Doorbell mode: register writes waiting for the doorbell, per page (empty in register mode). */
  #latch: { locCtrl: number; ctrlReq: number; cancel: number; start: number }[] = [];
  #gen = 0;
  /** Identity of the command in flight. */
  #exec: object | undefined;
  /** Signal handed to execute(); reused across commands until it fires (as the chip does). */
  #ac = new AbortController();
  #commands = 0;

  /**
   * @param options - {@link CrbDeviceOptions}; `backend` is required.
   * @throws TpmArgumentError when `bufferSize`, `localities` or `address` is out of range.
   */
  constructor(options: CrbDeviceOptions) {
    if (!options || typeof options.backend?.execute !== "function") throw new TpmArgumentError("CrbDevice needs a backend with execute()");
    const size = options.bufferSize ?? CRB_QEMU_BUFFER_SIZE;
    if (!Number.isInteger(size) || size < 10 || size > CRB_QEMU_BUFFER_SIZE) {
      throw new TpmArgumentError(`CrbDevice bufferSize must be an integer in 10..${CRB_QEMU_BUFFER_SIZE}, got ${size}`);
    }
    const locs = options.localities ?? 1;
    if (locs !== 1 && locs !== 5) throw new TpmArgumentError(`CrbDevice localities must be 1 or 5, got ${String(locs)}`);
    const address = options.address ?? 0;
    if (!Number.isSafeInteger(address) || address < 0) throw new TpmArgumentError(`CrbDevice address must be a non-negative safe integer, got ${address}`);
    this.backend = options.backend;
    this.bufferSize = size;
    this.localities = locs;
    this.address = address;
    this.name = options.name ?? "crb";
    const trigger = options.trigger ?? "register";
    if (trigger !== "register" && trigger !== "doorbell") throw new TpmArgumentError(`CrbDevice trigger must be "register" or "doorbell", got ${String(trigger)}`);
    this.trigger = trigger;
    this.#clock = options.clock ?? systemClock;
    this.#established = options.established ?? false;
    this.#life = new DeviceLifecycle<CrbDevice, CrbEvent>({ device: this, kind: "crb", backend: this.backend, clock: this.#clock, channel: options.channel ?? CRB_DEVICE_CHANNEL });
    this.#resetState();
    this.#life.powerUp();
  }

  /** The diagnostics channel the model publishes on ({@link CRB_DEVICE_CHANNEL} unless configured), or undefined. */
  get channel(): string | undefined {
    return this.#life.channelName;
  }

  /** Resolves once the backend started (rejects with its error if it failed to start); see {@link DeviceModel.ready}. */
  get ready(): Promise<void> {
    return this.#life.ready;
  }

  /**
   * Waits until the backend's `start()` settled, powering the model up first when it was
   * stopped (as {@link CrbDevice.reset} does). Never rejects.
   *
   * @returns The phase once the start settled: "running" or "failed".
   */
  start(): Promise<DevicePhase> {
    return this.#life.phase === "stopped" ? this.reset() : this.#life.settled();
  }

  /** A snapshot of the model's state. */
  get state(): CrbDeviceState {
    return {
      phase: this.#life.phase,
      locality: this.#assigned,
      pending: [...this.#pending].sort(),
      idle: this.#idle,
      started: this.#started,
      startedLocality: this.#startedLocality,
      fatal: this.#fatal,
      cancelRequested: this.#cancel,
      commands: this.#commands,
      lastError: this.#life.lastError,
    };
  }

  /**
   * Platform reset: abandons the command in flight, restores the reset values and starts the
   * backend again (QEMU `tpm_crb_reset`). Fault hooks are left as they are.
   *
   * @returns The phase once the backend's start settled (never rejects; `ready` does).
   */
  reset(): Promise<DevicePhase> {
    this.#resetState();
    this.#life.powerUp();
    return this.#life.settled();
  }

  /**
   * The backend dies (the emulator process exits): the command in flight never completes, every
   * register reads 0 and writes are ignored until {@link CrbDevice.reset}.
   *
   * @param cause - Why, for the trace and `state.lastError`.
   */
  killBackend(cause?: unknown): void {
    this.#abandonCommand();
    this.#life.fail(cause);
  }

  /**
   * Powers the model off: the command in flight is forgotten and every register reads 0 until
   * {@link CrbDevice.start} or {@link CrbDevice.reset}.
   *
   * @returns A resolved promise.
   */
  stop(): Promise<void> {
    this.#abandonCommand();
    this.#life.stop();
    return Promise.resolve();
  }

  /** {@link CrbDevice.stop}, for `await using`. @returns A resolved promise. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** Forgets the command in flight: its completion is ignored, its execute signal fires. */
  #abandonCommand(): void {
    this.#gen++;
    if (this.#exec) this.#ac.abort();
    this.#exec = undefined;
  }

  /** The reset values (QEMU tpm_crb_reset). */
  #resetState(): void {
    this.#abandonCommand();
    this.#assigned = -1;
    this.#pending.clear();
    this.#idle = true;
    this.#started = false;
    this.#startedLocality = -1;
    this.#fatal = false;
    this.#cancel = false;
    this.#reqPending = 0;
    this.#latch = this.trigger === "doorbell" ? Array.from({ length: this.localities }, () => ({ locCtrl: 0, ctrlReq: 0, cancel: 0, start: 0 })) : [];
    this.#ram.fill(0);
  }

  #emit(ev: CrbEvent): void {
    this.#life.emit(ev);
  }

  // ---------------------------------------------------------------- Mmio

  /**
   * Reads a byte of a register (little-endian, PTP "CRB Interface") or of the data buffer.
   * @param offset - byte offset in the window (locality L's page at L × 0x1000).
   * @returns the byte; 0 while the backend is not running; 0xFF outside the pages.
   * @throws TpmArgumentError for a negative or non-integer offset.
   */
  read8(offset: number): number {
    return this.#read(offset, 1) & 0xff;
  }

  /**
   * Reads 16 bits, little-endian (a register is read shifted, as QEMU does for sub-word reads).
   * @param offset - byte offset in the window.
   * @returns the value.
   * @throws TpmArgumentError for a negative or non-integer offset.
   */
  read16(offset: number): number {
    return this.#read(offset, 2) & 0xffff;
  }

  /**
   * Reads 32 bits, little-endian.
   * @param offset - byte offset in the window.
   * @returns the value (unsigned).
   * @throws TpmArgumentError for a negative or non-integer offset.
   */
  read32(offset: number): number {
    return this.#read(offset, 4) >>> 0;
  }

  /**
   * Writes a byte. A register write is decoded by its exact address and value (QEMU).
   * @param offset - byte offset in the window.
   * @param value - the byte.
   * @throws TpmArgumentError for a negative or non-integer offset.
   */
  write8(offset: number, value: number): void {
    this.#write(offset, 1, value & 0xff);
  }

  /**
   * Writes 16 bits, little-endian.
   * @param offset - byte offset in the window.
   * @param value - the value.
   * @throws TpmArgumentError for a negative or non-integer offset.
   */
  write16(offset: number, value: number): void {
    this.#write(offset, 2, value & 0xffff);
  }

  /**
   * Writes 32 bits, little-endian.
   * @param offset - byte offset in the window.
   * @param value - the value.
   * @throws TpmArgumentError for a negative or non-integer offset.
   */
  write32(offset: number, value: number): void {
    this.#write(offset, 4, value >>> 0);
  }

  /**
   * Reads `length` consecutive bytes starting at `offset` (a block copy: CRB has no FIFO, its
   * data buffer is memory). Bytes outside the data buffer read as their registers would.
   *
   * @param offset - first byte.
   * @param length - number of bytes, 0–65536.
   * @returns the bytes.
   * @throws TpmArgumentError for a negative or non-integer offset or a length above 64 KiB.
   */
  readFifo(offset: number, length: number): Uint8Array {
    checkOffset(offset);
    if (!Number.isInteger(length) || length < 0 || length > MAX_BLOCK) throw new TpmArgumentError(`CrbDevice.readFifo length must be 0..${MAX_BLOCK}, got ${length}`);
    const live = this.#life.running;
    const d0 = this.#dataIndex(offset);
    if (live && d0 >= 0 && d0 + length <= this.#ram.length) {
      // fast path: the whole block lies in one page's data buffer
      this.#emit({ type: "read", offset, width: "block", value: length });
      return this.#ram.slice(d0, d0 + length);
    }
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const o = offset + i;
      const d = this.#dataIndex(o);
      out[i] = !live ? 0 : d >= 0 ? this.#ram[d]! : (this.#regByte(o) & 0xff);
    }
    this.#emit({ type: "read", offset, width: "block", value: length });
    return out;
  }

  /**
   * Writes `data` to consecutive bytes starting at `offset` (a block copy into the data buffer;
   * bytes that fall on registers or outside the pages are dropped).
   *
   * @param offset - first byte.
   * @param data - the bytes, at most 65536.
   * @throws TpmArgumentError for a negative or non-integer offset or more than 64 KiB.
   */
  writeFifo(offset: number, data: Uint8Array): void {
    checkOffset(offset);
    if (!(data instanceof Uint8Array) || data.length > MAX_BLOCK) throw new TpmArgumentError(`CrbDevice.writeFifo takes a Uint8Array of at most ${MAX_BLOCK} bytes`);
    this.#emit({ type: "write", offset, width: "block", value: data.length });
    if (!this.#life.running) return;
    const d0 = this.#dataIndex(offset);
    if (d0 >= 0 && d0 + data.length <= this.#ram.length) {
      this.#ram.set(data, d0);
      return;
    }
    for (let i = 0; i < data.length; i++) {
      const d = this.#dataIndex(offset + i);
      if (d >= 0) this.#ram[d] = data[i]!;
      // bytes that fall on registers or outside the pages are dropped (no register takes a burst)
    }
  }

  // ---------------------------------------------------------------- internals

  /** Index into the data RAM for an offset, or -1 if it is a register or outside the pages. */
  #dataIndex(offset: number): number {
    const page = Math.floor(offset / CRB_PAGE_SIZE);
    if (page >= this.localities) return -1;
    const r = offset - page * CRB_PAGE_SIZE;
    return r >= CRB_CONTROL_AREA_SIZE ? r - CRB_CONTROL_AREA_SIZE : -1;
  }

  #read(offset: number, width: 1 | 2 | 4): number {
    checkOffset(offset);
    let v = 0;
    const page = Math.floor(offset / CRB_PAGE_SIZE);
    const r = offset - page * CRB_PAGE_SIZE;
    if (this.#life.running) {
      if (width === 4 && (r & 3) === 0 && r < CRB_CONTROL_AREA_SIZE && page < this.localities) {
        v = this.#reg32(page, r); // an aligned register read: the four bytes of one register
      } else {
        for (let i = width - 1; i >= 0; i--) {
          const o = offset + i;
          const d = this.#dataIndex(o);
          v = v * 256 + (d >= 0 ? this.#ram[d]! : this.#regByte(o) & 0xff);
        }
      }
    }
    v >>>= 0;
    if (this.#life.hasSubscribers) this.#emit({ type: "read", offset, width: (width * 8) as 8 | 16 | 32, value: v });
    return v;
  }

  /** The byte at `offset` of the register area (QEMU: the 32-bit register shifted). */
  #regByte(offset: number): number {
    const page = Math.floor(offset / CRB_PAGE_SIZE);
    if (page >= this.localities) return 0xff;
    const r = offset - page * CRB_PAGE_SIZE;
    const reg = this.#reg32(page, r & ~3);
    return (reg >>> ((r & 3) * 8)) & 0xff;
  }

  #reg32(page: number, r: number): number {
    switch (r) {
      case CRB_REG.LOC_STATE: {
        let v = CRB_LOC_STATE.REG_VALID | (this.#established ? 0 : CRB_LOC_STATE.ESTABLISHED);
        if (this.#assigned >= 0) v |= CRB_LOC_STATE.LOC_ASSIGNED | (this.#assigned << CRB_LOC_STATE.ACTIVE_LOCALITY_SHIFT);
        return v;
      }
      case CRB_REG.LOC_STS:
        return this.#assigned === page ? CRB_LOC_STS.GRANTED : 0;
      case CRB_REG.INTF_ID:
        return this.localities === 5 ? CRB_QEMU_INTF_ID | 0x100 : CRB_QEMU_INTF_ID;
      case CRB_REG.INTF_ID2:
        return CRB_QEMU_INTF_ID2;
      case CRB_REG.CTRL_REQ:
        return this.#reqPending | (this.#latch[page]?.ctrlReq ?? 0);
      case CRB_REG.LOC_CTRL:
        return this.#latch[page]?.locCtrl ?? 0;
      case CRB_REG.CTRL_CANCEL:
        return this.#latch[page]?.cancel ?? 0;
      case CRB_REG.CTRL_STS:
        return (this.#fatal || this.faults.tpmSts ? CRB_CTRL_STS.TPM_STS : 0) | (this.#idle ? CRB_CTRL_STS.TPM_IDLE : 0);
      case CRB_REG.CTRL_START:
        return this.#started ? CRB_INVOKE : (this.#latch[page]?.start ?? 0);
      case CRB_REG.CMD_SIZE:
        return (this.faults.cmdSize ?? this.bufferSize) >>> 0;
      case CRB_REG.CMD_PA_LOW:
        return lo32(this.faults.cmdAddress ?? this.#bufferAddress(page));
      case CRB_REG.CMD_PA_HIGH:
        return hi32(this.faults.cmdAddress ?? this.#bufferAddress(page));
      case CRB_REG.RSP_SIZE:
        return (this.faults.rspSize ?? this.bufferSize) >>> 0;
      case CRB_REG.RSP_PA:
        return lo32(this.faults.rspAddress ?? this.#bufferAddress(page));
      case CRB_REG.RSP_PA + 4:
        return hi32(this.faults.rspAddress ?? this.#bufferAddress(page));
      default:
        return 0; // CTRL_EXT, INT_*: not stored (QEMU); LOC_CTRL, CTRL_CANCEL too, in register mode
    }
  }

  #bufferAddress(page: number): number {
    return this.address + page * CRB_PAGE_SIZE + CRB_REG.DATA_BUFFER;
  }

  #write(offset: number, width: 1 | 2 | 4, value: number): void {
    checkOffset(offset);
    if (this.#life.hasSubscribers) this.#emit({ type: "write", offset, width: (width * 8) as 8 | 16 | 32, value });
    if (!this.#life.running) return;
    const page = Math.floor(offset / CRB_PAGE_SIZE);
    if (page >= this.localities) return;
    const r = offset - page * CRB_PAGE_SIZE;
    if (r >= CRB_CONTROL_AREA_SIZE) {
      for (let i = 0; i < width; i++) {
        const d = this.#dataIndex(offset + i);
        if (d >= 0) this.#ram[d] = (value >>> (8 * i)) & 0xff;
      }
      return;
    }
    if (this.trigger === "doorbell") {
      // latched until the start method rings the doorbell (DEN0138 START)
      const l = this.#latch[page]!;
      if (r === CRB_REG.LOC_CTRL) l.locCtrl = value;
      else if (r === CRB_REG.CTRL_REQ) l.ctrlReq = value;
      else if (r === CRB_REG.CTRL_CANCEL) l.cancel = value;
      else if (r === CRB_REG.CTRL_START) l.start = value;
      return;
    }
    // QEMU decodes a register write by its exact address and whole value.
    switch (r) {
      case CRB_REG.LOC_CTRL:
        this.#applyLocCtrl(page, value);
        return;
      case CRB_REG.CTRL_REQ:
        this.#applyCtrlReq(value);
        return;
      case CRB_REG.CTRL_CANCEL:
        if (value === CRB_INVOKE) this.#applyCancel();
        return;
      case CRB_REG.CTRL_START:
        if (value === CRB_INVOKE) this.#applyStart(page);
        return;
      default:
        return; // other registers are read-only or not stored (QEMU)
    }
  }

  /**
   * Rings the doorbell of a `trigger: "doorbell"` model: applies what the driver latched in the
   * locality's page, as a TPM behind a DEN0138 START call does (Arm DEN0138, START with qualifier
   * "command" or "locality"; Linux drivers/char/tpm/tpm_crb_ffa.c).
   * `"locality"` applies LOC_CTRL (relinquish first, else requestAccess); `"command"` applies
   * CTRL_REQ (goIdle beats cmdReady), then CTRL_CANCEL, then CTRL_START. The latches are cleared.
   * In `"register"` mode (QEMU) writes act at once and this only reports `"denied"`.
   *
   * @param qualifier - `"command"` (DEN0138 qualifier 0) or `"locality"` (1).
   * @param locality - the locality whose page to apply, 0–4.
   * @returns `"ok"`; `"invalid"` for a locality outside the pages or a bad qualifier; `"denied"`
   *   when nothing was latched or a request was refused (START without the locality or while
   *   started, relinquish of a locality not held, the model not running).
   */
  doorbell(qualifier: "command" | "locality", locality: number): CrbDoorbellStatus {
    if (!Number.isInteger(locality) || locality < 0 || locality >= this.localities) return "invalid";
    if (qualifier !== "command" && qualifier !== "locality") return "invalid";
    let status: CrbDoorbellStatus = "denied";
    if (this.trigger === "doorbell" && this.#life.running) {
      const l = this.#latch[locality]!;
      if (qualifier === "locality") {
        const v = l.locCtrl;
        l.locCtrl = 0;
        if (v & CRB_LOC_CTRL.RELINQUISH) status = this.#applyLocCtrl(locality, CRB_LOC_CTRL.RELINQUISH);
        else if (v & CRB_LOC_CTRL.REQUEST_ACCESS) status = this.#applyLocCtrl(locality, CRB_LOC_CTRL.REQUEST_ACCESS);
      } else {
        const { ctrlReq, cancel, start } = l;
        l.ctrlReq = 0;
        l.cancel = 0;
        l.start = 0;
        let any = false;
        let refused = false;
        if (ctrlReq & CRB_CTRL_REQ.GO_IDLE) (any = true), this.#applyCtrlReq(CRB_CTRL_REQ.GO_IDLE);
        else if (ctrlReq & CRB_CTRL_REQ.CMD_READY) (any = true), this.#applyCtrlReq(CRB_CTRL_REQ.CMD_READY);
        if (cancel & CRB_INVOKE) (any = true), this.#applyCancel();
        if (start & CRB_INVOKE) {
          any = true;
          refused = this.#applyStart(locality) !== "ok";
        }
        status = any && !refused ? "ok" : "denied";
      }
    }
    this.#emit({ type: "doorbell", locality, detail: `${qualifier}: ${status}` });
    return status;
  }

  #applyCtrlReq(value: number): void {
    if (value === CRB_CTRL_REQ.CMD_READY) {
      if (this.faults.ctrlReqStuck) this.#reqPending |= CRB_CTRL_REQ.CMD_READY;
      else this.#idle = false;
    } else if (value === CRB_CTRL_REQ.GO_IDLE) {
      if (this.faults.ctrlReqStuck) this.#reqPending |= CRB_CTRL_REQ.GO_IDLE;
      else this.#idle = true;
    }
  }

  #applyCancel(): void {
    if (!this.#started || this.faults.startNeverClears) return;
    this.#cancel = true;
    this.#emit({ type: "cancel", locality: this.#startedLocality });
    try {
      this.backend.cancel?.();
    } catch {
      /* a backend's cancel is advisory */
    }
    if (this.#exec) this.#ac.abort();
  }

  #applyStart(page: number): CrbDoorbellStatus {
    if (this.#started || this.#assigned !== page) {
      this.#emit({ type: "ignored", offset: page * CRB_PAGE_SIZE + CRB_REG.CTRL_START, value: CRB_INVOKE, detail: this.#started ? "START while started" : "START without the locality" });
      return "denied";
    }
    this.#start(page);
    return "ok";
  }

  #applyLocCtrl(page: number, value: number): CrbDoorbellStatus {
    if (value === CRB_LOC_CTRL.REQUEST_ACCESS) {
      if (this.faults.localityDenied) return "denied";
      if (this.#assigned === -1 || this.#assigned === page) {
        this.#grant(page);
      } else {
        this.#pending.add(page);
      }
      return "ok";
    }
    if (value === CRB_LOC_CTRL.RELINQUISH) {
      if (this.localities === 1 || this.#assigned === page) {
        // QEMU (one page): relinquish clears locAssigned whoever writes it.
        this.#assigned = -1;
        this.#emit({ type: "locality", locality: -1, detail: "relinquished" });
        if (this.#pending.size > 0) this.#grant(Math.max(...this.#pending));
        return "ok";
      }
      this.#pending.delete(page);
      return "denied";
    }
    // seize (4) and resetEstablishment (8) are not implemented, as in QEMU
    return "denied";
  }

  #grant(page: number): void {
    this.#pending.delete(page);
    this.#assigned = page;
    this.#emit({ type: "locality", locality: page, detail: "granted" });
  }

  #start(page: number): void {
    this.#started = true;
    this.#startedLocality = page;
    this.#cancel = false;
    if (this.faults.startNeverClears) {
      this.#emit({ type: "start", locality: page, detail: "fault: START never clears" });
      return;
    }
    const size = readU32be(this.#ram, 2);
    const len = Math.min(size, this.bufferSize);
    const command = this.#ram.slice(0, len);
    const gen = this.#gen;
    if (this.#ac.signal.aborted) this.#ac = new AbortController();
    const ac = {};
    this.#exec = ac;
    this.#commands++;
    this.#emit({ type: "start", locality: page, value: len });
    let p: Promise<Uint8Array>;
    try {
      p = Promise.resolve(this.backend.execute(command, page, this.#ac.signal));
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (rsp) => this.#complete(gen, ac, rsp),
      (e: unknown) => this.#failed(gen, ac, e),
    );
  }

  #complete(gen: number, ac: object, rsp: unknown): void {
    if (gen !== this.#gen || this.#exec !== ac) return;
    if (!(rsp instanceof Uint8Array) || rsp.length > this.bufferSize) {
      this.#failed(gen, ac, new TpmArgumentError(`backend response of ${rsp instanceof Uint8Array ? rsp.length : typeof rsp} bytes does not fit the ${this.bufferSize}-byte buffer`));
      return;
    }
    this.#ram.set(rsp, 0);
    this.#finish("complete", rsp.length);
  }

  #failed(gen: number, ac: object, e: unknown): void {
    if (gen !== this.#gen || this.#exec !== ac) return;
    if (this.#cancel) {
      // cancelled and the backend gave up: answer TPM_RC_CANCELED as a TPM would (TPM 2.0 Part 2 §6.6)
      this.#ram.set(errorResponse(TPM_RC.CANCELED), 0);
      this.#finish("complete", 10, "cancelled");
      return;
    }
    this.#life.recordError(e);
    this.#fatal = true;
    this.#emit({ type: "fatal", detail: e instanceof Error ? e.message : String(e) });
    this.#finish("complete", 0, "backend error");
  }

  #finish(type: "complete", length: number, detail?: string): void {
    this.#exec = undefined;
    this.#started = false;
    this.#emit(detail === undefined ? { type, value: length, locality: this.#startedLocality } : { type, value: length, locality: this.#startedLocality, detail });
  }
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new TpmArgumentError(`CrbDevice offset must be a non-negative integer, got ${offset}`);
}

function big(v: number | bigint): bigint {
  return typeof v === "bigint" ? v : BigInt(Number.isSafeInteger(v) ? v : 0);
}

function lo32(v: number | bigint): number {
  return Number(BigInt.asUintN(32, big(v)));
}

function hi32(v: number | bigint): number {
  return Number(BigInt.asUintN(32, big(v) >> 32n));
}
