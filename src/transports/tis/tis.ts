/**
 * The TIS (PTP FIFO) driver: the Linux kernel's `tpm_tis_core` algorithm (Linux
 * drivers/char/tpm/tpm_tis_core.c, with the chip core's drivers/char/tpm/tpm-interface.c) over any
 * {@link Mmio} window — a {@link TisDevice} model, a fault-injecting wrapper, or a user's bridge to
 * real hardware.
 *
 * @packageDocumentation
 */
import type { Mmio } from "../../bus/mmio.js";
import type { InterruptLine } from "../../bus/interrupt.js";
import type { MaybePromise, OpenContext, SendOptions, Transport, TransportPresence } from "../../core/transport.js";
import type { Clock } from "../../core/clock.js";
import { systemClock } from "../../core/clock.js";
import { assertLocality } from "../../core/assert.js";
import { TIMEOUTS_PROBE, TIMEOUTS_TPM2, type InterfaceTimeouts } from "../../core/durations.js";
import { traceChannel } from "../../core/trace.js";
import {
  TpmAbortError,
  TpmArgumentError,
  TpmNotFoundError,
  TpmTimeoutError,
  TpmTransportError,
  abortErrorFrom,
  throwIfAborted,
} from "../../errors/index.js";
import { quietly, runSteps, withSignal } from "../../bus/access.js";
import { KERNEL_POLL_MS, poll, type PollResult } from "../../bus/poll.js";
import { TIS_ACCESS, TIS_INT, TIS_REG, TIS_STS, tisLocalityOffset } from "../../bus/tis-registers.js";
import { TPM_CAP, TPM_CC, TPM_PT, TPM_ST } from "../../wire/constants.js";

/** The four TIS timeouts in ms (the kernel's TIMEOUT_A..D): the core's {@link InterfaceTimeouts}. TCG PC Client PTP §5.5.1.4; Linux drivers/char/tpm/tpm.h. */
export type TisTimeouts = InterfaceTimeouts;

/** Timeouts before the TPM family is known: the larger of the TIS and TPM 2.0 values. Linux tpm_tis_core.c, tpm_tis_core_init(). */
export const TIS_PROBE_TIMEOUTS: Readonly<TisTimeouts> = TIMEOUTS_PROBE;
/** Fixed TPM 2.0 timeouts the kernel uses after probe (TPM2_TIMEOUT_A..D). Linux drivers/char/tpm/tpm.h; B is 4000 ms since "tpm: tis: Double the timeout B to 4s" (2f661f71fda1). */
export const TIS_TPM2_TIMEOUTS: Readonly<TisTimeouts> = TIMEOUTS_TPM2;
/** Retries of the data phase on EIO and of response reads (TPM_RETRY). Linux tpm_tis_core.c, tpm_tis_send_main() and tpm_tis_recv(). */
export const TIS_RETRY = 50;
/** Duration bound of the TPM2 GetCapability probe (kernel duration table: GetCapability 750 ms). */
export const TIS_PROBE_DURATION_MS = 750;
/** Diagnostics channel the driver publishes notable events ({@link TisDriverEvent}) on. */
export const TIS_DRIVER_CHANNEL = "tpmkit:driver:tis";

/** Kernel polling intervals (upper bounds of its sleep ranges), ms: see {@link KERNEL_POLL_MS}. */
const POLL_STATUS_MS = KERNEL_POLL_MS.tisStatus;
const POLL_LOCALITY_MS = KERNEL_POLL_MS.tisAccess;
const POLL_RESPONSE_MS = KERNEL_POLL_MS.response;
/** In IRQ mode, how often the status is re-read anyway (a lost interrupt costs this, not a hang). */
const IRQ_SAFETY_POLL_MS = 20;
/** Storm guard: more than this many unhandled interrupts, each within STORM_WINDOW_MS of the last, turn IRQs off. */
const STORM_LIMIT = 1000;
const STORM_WINDOW_MS = 100;
/** Gap between data-phase retries (the kernel's 100–500 µs). */
const RETRY_GAP_MS = 0.1;


/** What the driver learned at open. */
export interface TisInfo {
  /** Device id (DID_VID bits 31:16). */
  readonly did: number;
  /** Vendor id (DID_VID bits 15:0). */
  readonly vid: number;
  /** Revision id. */
  readonly rid: number;
  /** TPM family found by the GetCapability probe. */
  readonly family: "2.0";
  /** TPM_INTF_CAPABILITY of the default locality. */
  readonly interfaceCapability: number;
  /** TPM_INTERFACE_ID of the default locality. */
  readonly interfaceId: number;
  /** INTF_CAPABILITY.burstCountStatic. */
  readonly burstCountStatic: boolean;
  /** True when the driver runs in interrupt mode (interrupts offered, enabled and seen working). */
  readonly interrupts: boolean;
}

/** Options of {@link tis}. */
export interface TisOptions {
  /** The register window (offsets from locality 0's page). */
  mmio: Mmio;
  /**
   * Default locality, 0–4: open probes at it, and a `Chip` built without its own `locality`
   * option sends every command (and Startup) at it ({@link Transport.defaultLocality}). A
   * per-command `locality` still wins. Default: the chip's locality (0).
   */
  locality?: number;
  /**
   * Overrides of TIMEOUT_A..D (ms), applied both before and after the family is known. These bound
   * register waits only; how long a command may run is the chip's per-command duration.
   */
  timeouts?: Partial<TisTimeouts>;
  /** Clock for every wait; when given it is used even though the chip passes its own. Default `SendOptions.clock` / `OpenContext.clock`, then the system clock. */
  clock?: Clock;
  /**
   * Interrupt line of the device (e.g. the `TisDevice` itself). When given and INTF_CAPABILITY
   * offers interrupts, the driver enables them and waits for them instead of polling; if none
   * arrives during the probe command it falls back to polling, like the kernel's IRQ test, and
   * more than 1000 unhandled interrupts each within 100 ms of the last (a storm) turn them off too.
   */
  interrupts?: InterruptLine | false;
  /** Data-phase and response-read retries (TPM_RETRY). Default 50. */
  retries?: number;
  /** Largest command and response in bytes; the chip adopts it as its own limit. Default 4096 (TPM_BUFSIZE, QEMU's buffer). */
  maxCommandSize?: number;
}

/** A TIS transport: a {@link Transport} plus what the probe found. */
export interface TisTransport extends Transport {
  readonly kind: "tis";
  /** DID/VID/RID, family and interface capabilities; undefined until `open()` succeeded. */
  readonly info: TisInfo | undefined;
  /** Localities commands may use: 0–4. */
  readonly localities: readonly number[];
  /** Interrupts received so far (IRQ mode). */
  readonly interruptCount: number;
  /** Probe (see {@link tis}). */
  open(ctx: OpenContext): Promise<void>;
  /** Writes commandReady at the locality of the command in flight (the kernel's tpm_tis cancel). */
  cancel(): Promise<void>;
  /** Stops listening for interrupts; later sends fail. Idempotent. */
  close(): Promise<void>;
  /** "present" after a successful probe, else "absent". */
  presence(): TransportPresence;
}

/** Driver events published on {@link TIS_DRIVER_CHANNEL}. */
export type TisDriverEvent =
  | { type: "invalid-status"; locality: number; value: number }
  | { type: "irq-fallback"; reason: string }
  | { type: "data-retry"; locality: number; attempt: number; reason: string }
  | { type: "response-retry"; locality: number; attempt: number; reason: string };

interface Status {
  /** Status byte (0 when the read was bogus). */
  sts: number;
  /** burstCount (0 when the read was bogus). */
  burst: number;
}

interface Op {
  clock: Clock;
  signal: AbortSignal | undefined;
}

/** A retryable data-transfer error (the kernel's -EIO). */
class Eio extends Error {}

const mx = (l: number, reg: number) => tisLocalityOffset(l, reg);

/**
 * Creates a TIS transport (kind "tis") over an MMIO window, following the Linux kernel's
 * tpm_tis_core algorithm:
 *
 * - **open** (probe): read DID_VID, wait for ACCESS.tpmRegValidSts (TIMEOUT_A), read INT_ENABLE
 *   and INTF_CAPABILITY, take the locality (TIMEOUT_A), enable interrupts when offered, detect
 *   TPM 2.0 with GetCapability(TPM_PROPERTIES, TOTAL_COMMANDS, 1) (reply tag 0x8001; RCs ignored),
 *   read RID. Registers that read all 0 or all 0xFF give {@link TpmNotFoundError} after TIMEOUT_A.
 * - **send**: request the locality, commandReady (TIMEOUT_B), burst-count driven FIFO writes with
 *   the Expect checks (EIO retried up to 50 times after commandReady), GO, wait for
 *   dataAvail|stsValid for the command's duration (interrupt-driven, or polling that starts with
 *   microtask yields and backs off to the kernel's 1 ms), read header then body with the size
 *   checked, responseRetry on a bad read, then commandReady and relinquish.
 *
 * Deliberate differences from the kernel, each cheaper on the bus and equally strict: STS is read
 * as one 32-bit access that yields the status byte and burstCount together; the command is
 * written in whole bursts and Expect is checked after each (1 while bytes remain, 0 after the
 * last) instead of splitting off the last byte; the locality request skips the check-first read
 * because the driver relinquishes after every command; exhausted data retries fail with EIO
 * instead of writing GO anyway.
 *
 * TCG PC Client PTP §6.5.2 (FIFO interface), §5.5.1.4 (timeouts); Linux
 * drivers/char/tpm/tpm_tis_core.c (tpm_tis_send_main(), tpm_tis_recv(), request_locality(),
 * wait_for_tpm_stat()). Polling is the shared polling engine of the register bus.
 *
 * @param options - The MMIO window and driver options.
 * @returns A {@link TisTransport}.
 * @throws {TpmArgumentError} When options are malformed (synchronously).
 * @example
 * ```ts
 * const device = new TisDevice({ backend: new SoftTpm() });
 * const tpm = await Tpm.open(tis({ mmio: device, interrupts: device }));
 * const bytes = await tpm.getRandom(16);
 * ```
 */
export function tis(options: TisOptions): TisTransport {
  return new TisDriver(options);
}

class TisDriver implements TisTransport {
  readonly kind = "tis" as const;
  readonly localities: readonly number[] = Object.freeze([0, 1, 2, 3, 4]);
  readonly maxCommandSize: number;
  #info: TisInfo | undefined;
  readonly #mmio: Mmio;
  readonly #opts: TisOptions;
  readonly #retries: number;
  #timeouts: TisTimeouts;
  #defaultLocality: number | undefined;
  #presence: TransportPresence = "absent";
  #channel = traceChannel(TIS_DRIVER_CHANNEL);
  #irqMode = false;
  #irqMask = 0;
  #irqEnabled = new Set<number>();
  #irqSeq = 0;
  #irqWaiters = new Set<() => void>();
  #clock: Clock = systemClock;
  #unhandled = 0;
  #lastUnhandledAt = -Infinity;
  #unsubscribe: (() => void) | undefined;
  #inflight: number | null = null;
  #invalidStatusLogged = false;
  #closed = false;

  constructor(options: TisOptions) {
    if (!options || typeof options.mmio?.read8 !== "function") throw new TpmArgumentError("tis: options.mmio (an Mmio) is required");
    if (options.locality !== undefined) assertLocality(options.locality, "tis");
    const retries = options.retries ?? TIS_RETRY;
    if (!Number.isInteger(retries) || retries < 1 || retries > 1000) throw new TpmArgumentError(`tis: retries ${retries} is not an integer in 1..1000`);
    const max = options.maxCommandSize ?? 4096;
    if (!Number.isInteger(max) || max < 10 || max > 0x10000) throw new TpmArgumentError(`tis: maxCommandSize ${max} is not an integer in 10..65536`);
    for (const [k, v] of Object.entries(options.timeouts ?? {})) {
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new TpmArgumentError(`tis: timeout ${k} = ${v} is not a finite number ≥ 0`);
    }
    this.#opts = options;
    this.#mmio = options.mmio;
    this.#retries = retries;
    this.maxCommandSize = max;
    this.#timeouts = { ...TIS_PROBE_TIMEOUTS, ...options.timeouts };
    this.#defaultLocality = options.locality;
  }

  get info(): TisInfo | undefined {
    return this.#info;
  }

  /** The `locality` option (see {@link TisOptions.locality}); undefined when none was given. */
  get defaultLocality(): number | undefined {
    return this.#opts.locality;
  }

  get interruptCount(): number {
    return this.#irqSeq;
  }

  presence(): TransportPresence {
    return this.#presence;
  }

  // ------------------------------------------------------------------ open (probe)

  async open(ctx: OpenContext): Promise<void> {
    if (this.#closed) throw new TpmTransportError("tis: transport is closed", { errno: "ENODEV" });
    const op: Op = { clock: this.#opts.clock ?? ctx?.clock ?? systemClock, signal: ctx?.signal };
    this.#clock = op.clock;
    const loc = assertLocality(this.#defaultLocality ?? ctx?.locality ?? 0, "tis");
    this.#defaultLocality = loc;
    this.#timeouts = { ...TIS_PROBE_TIMEOUTS, ...this.#opts.timeouts };
    this.#stopIrq(); // a second open probes afresh
    try {
      await this.#probe(op, loc);
      this.#presence = "present";
    } catch (e) {
      this.#presence = "absent";
      this.#stopIrq();
      throw e;
    }
  }

  async #probe(op: Op, loc: number): Promise<void> {
    const t = this.#timeouts;
    const valid = await this.#poll(op, () => this.#io(op, this.#mmio.read8(mx(0, TIS_REG.ACCESS))), (a) => (a & TIS_ACCESS.VALID) !== 0, t.a, POLL_LOCALITY_MS, false);
    if (!valid.ok) {
      throw new TpmNotFoundError(`no TPM on the TIS window: ACCESS.tpmRegValidSts not set within ${t.a} ms`, {
        details: `ACCESS read 0x${valid.value.toString(16)}; registers that read 0 mean no device or a backend that failed to start`,
      });
    }
    // The kernel reads DID_VID before this wait (for vendor quirks); a register file that is not
    // valid yet has no meaningful id, so tpmkit reads it once ACCESS is valid.
    const didVid = await this.#io(op, this.#mmio.read32(mx(0, TIS_REG.DID_VID)));
    const intEnable = await this.#io(op, this.#mmio.read32(mx(loc, TIS_REG.INT_ENABLE)));
    const caps = await this.#io(op, this.#mmio.read32(mx(loc, TIS_REG.INTF_CAPABILITY)));
    try {
      await this.#requestLocality(op, loc);
    } catch (e) {
      if (e instanceof TpmTimeoutError) {
        throw new TpmNotFoundError(`no TPM on the TIS window: locality ${loc} not granted within ${t.a} ms`, {
          cause: e,
          details: "registers that read all 0xFF look valid but never grant a locality",
        });
      }
      throw e;
    }
    const line = this.#opts.interrupts || undefined;
    const irqCauses = caps & TIS_INT.SUPPORTED;
    try {
      if (line && irqCauses) {
        this.#irqMask = irqCauses;
        this.#unsubscribe = line.onInterrupt(() => this.#onIrq());
        this.#irqMode = true;
        await this.#enableIrq(op, loc, intEnable);
      }
    } finally {
      await this.#relinquish(op, loc);
    }
    const seqBefore = this.#irqSeq;
    let reply: Uint8Array;
    try {
      reply = await this.#transact(op, tpm2ProbeCommand(), loc, TIS_PROBE_DURATION_MS);
    } catch (e) {
      if (e instanceof TpmAbortError || (op.signal?.aborted ?? false)) throw e;
      throw new TpmNotFoundError("TIS device did not answer the TPM 2.0 probe (GetCapability)", { cause: e });
    }
    if (this.#irqMode && this.#irqSeq === seqBefore) {
      this.#stopIrq();
      this.#emit({ type: "irq-fallback", reason: "no interrupt during the probe command" });
    }
    const tag = (reply[0]! << 8) | reply[1]!;
    if (tag !== TPM_ST.NO_SESSIONS) {
      throw new TpmNotFoundError(`TIS device is not a TPM 2.0: probe reply tag 0x${tag.toString(16).padStart(4, "0")}`, {
        details: "a TPM 2.0 answers GetCapability with tag 0x8001 (TPM_ST_NO_SESSIONS); TPM 1.2 is not supported",
      });
    }
    this.#timeouts = { ...TIS_TPM2_TIMEOUTS, ...this.#opts.timeouts };
    const rid = await this.#io(op, this.#mmio.read8(mx(0, TIS_REG.RID)));
    const ifaceId = await this.#io(op, this.#mmio.read32(mx(loc, TIS_REG.INTERFACE_ID)));
    this.#info = Object.freeze({
      did: (didVid >>> 16) & 0xffff,
      vid: didVid & 0xffff,
      rid: rid & 0xff,
      family: "2.0" as const,
      interfaceCapability: caps >>> 0,
      interfaceId: ifaceId >>> 0,
      burstCountStatic: (caps & TIS_INT.BURST_COUNT_STATIC) !== 0,
      interrupts: this.#irqMode,
    });
  }

  // ------------------------------------------------------------------ send

  async send(command: Uint8Array, options: SendOptions): Promise<Uint8Array> {
    if (!(command instanceof Uint8Array)) throw new TpmArgumentError("tis: command must be a Uint8Array");
    if (command.length < 10) throw new TpmArgumentError(`tis: command of ${command.length} bytes is shorter than a TPM header (10)`);
    if (command.length > this.maxCommandSize) throw new TpmArgumentError(`tis: command of ${command.length} bytes exceeds the ${this.maxCommandSize}-byte buffer`);
    const loc = assertLocality(options?.locality ?? this.#defaultLocality ?? 0, "tis");
    if (this.#closed) throw new TpmTransportError("tis: transport is closed", { errno: "ENODEV" });
    const op: Op = { clock: this.#opts.clock ?? options?.clock ?? systemClock, signal: options?.signal };
    this.#clock = op.clock;
    throwIfAborted(op.signal);
    const duration = options?.timeoutMs ?? 120_000;
    if (!Number.isFinite(duration) || duration < 0) throw new TpmArgumentError(`tis: timeoutMs ${duration} is not a finite number ≥ 0`);
    return this.#transact(op, command, loc, duration);
  }

  async cancel(): Promise<void> {
    const loc = this.#inflight;
    if (loc === null) return;
    await this.#mmio.write8(mx(loc, TIS_REG.STS), TIS_STS.COMMAND_READY);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopIrq();
    this.#presence = "absent";
  }

  /** One command at one locality: locality, data phase, GO, wait, receive, ready, relinquish. */
  async #transact(op: Op, command: Uint8Array, loc: number, durationMs: number): Promise<Uint8Array> {
    this.#inflight = loc;
    let held = false;
    let cleanupReady = false;
    try {
      held = true; // from the request on, cleanup relinquishes (or withdraws a pending request)
      await this.#requestLocality(op, loc);
      if (this.#irqMode && !this.#irqEnabled.has(loc)) {
        const cur = await this.#io(op, this.#mmio.read32(mx(loc, TIS_REG.INT_ENABLE)));
        await this.#enableIrq(op, loc, cur);
      }
      cleanupReady = true;
      await this.#sendData(op, command, loc);
      await this.#io(op, this.#mmio.write8(mx(loc, TIS_REG.STS), TIS_STS.GO));
      const st = await this.#waitResponse(op, loc, durationMs);
      const response = await this.#recv(op, loc, st);
      return response;
    } finally {
      this.#inflight = null;
      // commandReady ends the command (and cancels it on error); then the locality goes back.
      // Bounded: an MMIO bridge that hangs cannot hang the cleanup past TIMEOUT_A.
      const ready = cleanupReady ? () => this.#mmio.write8(mx(loc, TIS_REG.STS), TIS_STS.COMMAND_READY) : undefined;
      const release = held ? () => this.#mmio.write8(mx(loc, TIS_REG.ACCESS), TIS_ACCESS.ACTIVE_LOCALITY) : undefined;
      const pending = this.#cleanup(ready, release);
      if (pending) await this.#bounded(op, () => pending);
    }
  }

  async #requestLocality(op: Op, loc: number): Promise<void> {
    await this.#io(op, this.#mmio.write8(mx(loc, TIS_REG.ACCESS), TIS_ACCESS.REQUEST_USE));
    const held = (a: number) => (a & (TIS_ACCESS.VALID | TIS_ACCESS.ACTIVE_LOCALITY | TIS_ACCESS.REQUEST_USE)) === (TIS_ACCESS.VALID | TIS_ACCESS.ACTIVE_LOCALITY);
    const r = await this.#poll(op, () => this.#io(op, this.#mmio.read8(mx(loc, TIS_REG.ACCESS))), held, this.#timeouts.a, POLL_LOCALITY_MS, false);
    if (!r.ok) {
      await this.#relinquish(op, loc); // withdraw the pending request (a non-owner's relinquish)
      throw new TpmTimeoutError(`TIS locality ${loc} request`, this.#timeouts.a, {
        details: `ACCESS_${loc} read 0x${r.value.toString(16).padStart(2, "0")}; granted means (ACCESS & 0xA2) == 0xA0${loc === 4 ? "; locality 4 is reserved for hardware and QEMU ignores its writes" : ""}`,
      });
    }
  }

  async #relinquish(op: Op, loc: number): Promise<void> {
    const pending = this.#cleanup(() => this.#mmio.write8(mx(loc, TIS_REG.ACCESS), TIS_ACCESS.ACTIVE_LOCALITY), undefined);
    if (pending) await this.#bounded(op, () => pending);
  }

  async #enableIrq(op: Op, loc: number, intEnable: number): Promise<void> {
    const ints = await this.#io(op, this.#mmio.read32(mx(loc, TIS_REG.INT_STATUS)));
    if (ints) await this.#io(op, this.#mmio.write32(mx(loc, TIS_REG.INT_STATUS), ints));
    const value = ((intEnable & TIS_INT.POLARITY_MASK) | this.#irqMask | TIS_INT.GLOBAL_ENABLE) >>> 0;
    await this.#io(op, this.#mmio.write32(mx(loc, TIS_REG.INT_ENABLE), value));
    this.#irqEnabled.add(loc);
  }

  /** The data phase with the kernel's EIO retry (tpm_tis_send_main). */
  async #sendData(op: Op, command: Uint8Array, loc: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#sendDataOnce(op, command, loc);
        return;
      } catch (e) {
        if (!(e instanceof Eio)) throw e;
        this.#emit({ type: "data-retry", locality: loc, attempt, reason: e.message });
        await this.#io(op, this.#mmio.write8(mx(loc, TIS_REG.STS), TIS_STS.COMMAND_READY));
        if (attempt >= this.#retries) {
          throw new TpmTransportError(`TIS command write failed ${attempt} times`, { errno: "EIO", details: e.message });
        }
        await op.clock.sleep(RETRY_GAP_MS, op.signal);
      }
    }
  }

  async #sendDataOnce(op: Op, command: Uint8Array, loc: number): Promise<void> {
    const t = this.#timeouts;
    let st = await this.#status(op, loc);
    if (!(st.sts & TIS_STS.COMMAND_READY)) {
      await this.#io(op, this.#mmio.write8(mx(loc, TIS_REG.STS), TIS_STS.COMMAND_READY));
      const r = await this.#poll(op, () => this.#status(op, loc), (s) => (s.sts & TIS_STS.COMMAND_READY) !== 0, t.b, POLL_STATUS_MS, false);
      if (!r.ok) throw new TpmTimeoutError(`TIS commandReady at locality ${loc}`, t.b, { details: `STS read 0x${r.value.sts.toString(16)}` });
      st = r.value;
    }
    const len = command.length;
    let count = 0;
    while (count < len) {
      if (st.burst === 0) {
        const r = await this.#poll(op, () => this.#status(op, loc), (s) => s.burst !== 0, t.a, POLL_STATUS_MS, false);
        if (!r.ok) throw new TpmTimeoutError(`TIS burstCount while writing (${count} of ${len} bytes)`, t.a);
        st = r.value;
      }
      const n = Math.min(st.burst, len - count);
      await this.#io(op, this.#mmio.writeFifo(mx(loc, TIS_REG.DATA_FIFO), command.subarray(count, count + n)));
      count += n;
      const r = await this.#poll(op, () => this.#status(op, loc), (s) => (s.sts & TIS_STS.VALID) !== 0, t.c, POLL_STATUS_MS, false);
      if (!r.ok) throw new TpmTimeoutError(`TIS stsValid after writing ${count} of ${len} bytes`, t.c);
      st = r.value;
      const expect = (st.sts & TIS_STS.EXPECT) !== 0;
      if (expect !== count < len) {
        throw new Eio(`TPM_STS.Expect is ${expect ? 1 : 0} after ${count} of ${len} bytes (STS 0x${st.sts.toString(16)})`);
      }
    }
  }

  /** Waits for dataAvail|stsValid within the command's duration (the core's req_complete poll). */
  async #waitResponse(op: Op, loc: number, durationMs: number): Promise<Status> {
    const ready = TIS_STS.DATA_AVAIL | TIS_STS.VALID;
    const r = await this.#poll(
      op,
      () => this.#status(op, loc),
      (s) => (s.sts & ready) === ready || s.sts === TIS_STS.COMMAND_READY,
      durationMs,
      POLL_RESPONSE_MS,
      this.#irqMode,
    );
    if (!r.ok) {
      throw new TpmTimeoutError(`TIS command at locality ${loc}`, durationMs, {
        details: `no dataAvail within the command's duration (last STS 0x${r.value.sts.toString(16)}); the command was cancelled with commandReady`,
      });
    }
    if ((r.value.sts & ready) !== ready) {
      throw new TpmTransportError("TIS command was cancelled: STS shows commandReady without a response", { errno: "ECANCELED" });
    }
    return r.value;
  }

  /** Response read with responseRetry (tpm_tis_recv). */
  async #recv(op: Op, loc: number, first: Status): Promise<Uint8Array> {
    let st: Status | undefined = first;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#recvOnce(op, loc, st);
      } catch (e) {
        if (!(e instanceof Eio)) throw e;
        this.#emit({ type: "response-retry", locality: loc, attempt, reason: e.message });
        if (attempt >= this.#retries) {
          throw new TpmTransportError(`TIS response read failed ${attempt} times`, { errno: "EIO", details: e.message });
        }
        await this.#io(op, this.#mmio.write8(mx(loc, TIS_REG.STS), TIS_STS.RESPONSE_RETRY));
        st = undefined;
      }
    }
  }

  async #recvOnce(op: Op, loc: number, first: Status | undefined): Promise<Uint8Array> {
    const max = this.maxCommandSize;
    const head = new Uint8Array(10);
    const header = await this.#recvData(op, loc, head, 0, 10, first);
    if (header.size < 10) throw new Eio(`response header short: ${header.size} of 10 bytes`);
    const expected = ((head[2]! << 24) | (head[3]! << 16) | (head[4]! << 8) | head[5]!) >>> 0;
    if (expected < 10 || expected > max) throw new Eio(`response size field ${expected} is outside 10..${max}`);
    // the response buffer is allocated only once its size field has been checked
    const buf = new Uint8Array(expected);
    buf.set(head);
    const body = await this.#recvData(op, loc, buf, 10, expected, undefined);
    if (body.size < expected) {
      throw new TpmTimeoutError(`TIS response data at locality ${loc}`, this.#timeouts.c, {
        details: `short read: ${body.size} of ${expected} bytes before dataAvail dropped`,
      });
    }
    const t = this.#timeouts;
    const r = await this.#poll(op, () => this.#status(op, loc), (s) => (s.sts & TIS_STS.VALID) !== 0, t.c, POLL_STATUS_MS, false);
    if (!r.ok) throw new Eio("stsValid not set after the response");
    if (r.value.sts & TIS_STS.DATA_AVAIL) throw new Eio(`dataAvail still set after ${expected} bytes: more data than the size field says`);
    return buf;
  }

  /** Reads up to `want` total bytes in burst-sized chunks; returns how many it got (short on timeout). */
  async #recvData(op: Op, loc: number, buf: Uint8Array, have: number, want: number, first: Status | undefined): Promise<{ size: number }> {
    const ready = TIS_STS.DATA_AVAIL | TIS_STS.VALID;
    const t = this.#timeouts;
    let size = have;
    let st = first;
    while (size < want) {
      if (!st || (st.sts & ready) !== ready || st.burst === 0) {
        const r = await this.#poll(op, () => this.#status(op, loc), (s) => (s.sts & ready) === ready && s.burst !== 0, t.c, POLL_STATUS_MS, false);
        if (!r.ok) return { size };
        st = r.value;
      }
      const n = Math.min(st.burst, want - size);
      const data = await this.#io(op, this.#mmio.readFifo(mx(loc, TIS_REG.DATA_FIFO), n));
      if (!(data instanceof Uint8Array) || data.length !== n) {
        throw new Eio(`FIFO read returned ${data instanceof Uint8Array ? data.length : typeof data} bytes, asked ${n}`);
      }
      buf.set(data, size);
      size += n;
      st = undefined;
    }
    return { size };
  }

  // ------------------------------------------------------------------ helpers

  /** STS as one 32-bit read: status byte and burstCount. A bogus read (READ_ZERO bits) counts as 0. */
  async #status(op: Op, loc: number): Promise<Status> {
    const v = (await this.#io(op, this.#mmio.read32(mx(loc, TIS_REG.STS)))) >>> 0;
    const sts = v & 0xff;
    if (sts & TIS_STS.READ_ZERO) {
      if (!this.#invalidStatusLogged) {
        this.#invalidStatusLogged = true;
        this.#emit({ type: "invalid-status", locality: loc, value: v });
      }
      return { sts: 0, burst: 0 };
    }
    return { sts, burst: (v >>> 8) & 0xffff };
  }

  /** Awaits an MMIO result; an asynchronous one races the abort signal. */
  #io<T>(op: Op, v: MaybePromise<T>): MaybePromise<T> {
    return withSignal(v, op.signal);
  }

  /**
   * Runs up to two best-effort cleanup accesses in order; an error ends the sequence and is
   * dropped. Synchronous accesses (a device model) finish here and need no timer: the result is
   * undefined. Once an access returns a Promise (a bridge), the rest runs after it and the
   * returned promise (which never rejects) is for the caller to bound with {@link #bounded}.
   */
  #cleanup(first: (() => MaybePromise<void>) | undefined, second: (() => MaybePromise<void>) | undefined): Promise<void> | undefined {
    const r = runSteps(
      quietly(
        (function* () {
          if (first) yield first();
          if (second) yield second();
        })(),
      ),
    );
    return r instanceof Promise ? r : undefined;
  }

  /** Runs best-effort cleanup accesses, bounded by TIMEOUT_A on the clock; errors are dropped. */
  async #bounded(op: Op, fn: () => Promise<void>): Promise<void> {
    let timer: { clear(): void } | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = op.clock.setTimer(this.#timeouts.a, resolve);
    });
    try {
      await Promise.race([fn().catch(() => undefined), limit]);
    } finally {
      timer?.clear();
    }
  }

  /**
   * Re-reads until `done`, at most `timeoutMs` (one last read at the deadline), with the shared
   * polling engine (`pollSteps`): microtask polls, then clock sleeps backing off to
   * `intervalMs`, the kernel's interval for that wait. In IRQ mode it sleeps until an interrupt
   * (or a slow safety poll) instead, and acknowledges the interrupt as the kernel's ISR does.
   */
  #poll<T>(op: Op, read: () => MaybePromise<T>, done: (v: T) => boolean, timeoutMs: number, intervalMs: number, irq: boolean): MaybePromise<PollResult<T>> {
    if (!irq) return poll({ read, done, timeoutMs, intervalMs, clock: op.clock, signal: op.signal });
    let seq = this.#irqSeq;
    return poll({
      read: () => {
        seq = this.#irqSeq;
        return read();
      },
      done,
      timeoutMs,
      intervalMs,
      clock: op.clock,
      signal: op.signal,
      idle: async (left) => {
        await this.#waitIrq(op, seq, Math.min(left, IRQ_SAFETY_POLL_MS));
        if (this.#irqSeq !== seq) await this.#ackIrq(op);
      },
    });
  }

  #onIrq(): void {
    if (!this.#irqMode) return;
    if (this.#inflight === null) {
      // nobody waits for this one: the kernel's storm guard counts unhandled interrupts
      const now = this.#clock.now();
      this.#unhandled = now - this.#lastUnhandledAt <= STORM_WINDOW_MS ? this.#unhandled + 1 : 1;
      this.#lastUnhandledAt = now;
      if (this.#unhandled > STORM_LIMIT) {
        this.#stopIrq();
        this.#info = this.#info && Object.freeze({ ...this.#info, interrupts: false });
        this.#emit({ type: "irq-fallback", reason: "interrupt storm detected" });
        return;
      }
    }
    this.#irqSeq++;
    const waiters = [...this.#irqWaiters];
    this.#irqWaiters.clear();
    for (const w of waiters) w();
  }

  async #waitIrq(op: Op, seq: number, ms: number): Promise<void> {
    if (this.#irqSeq !== seq) return;
    throwIfAborted(op.signal);
    await new Promise<void>((resolve, reject) => {
      const signal = op.signal;
      const finish = () => {
        timer.clear();
        this.#irqWaiters.delete(finish);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        timer.clear();
        this.#irqWaiters.delete(finish);
        reject(abortErrorFrom(signal!));
      };
      const timer = op.clock.setTimer(ms, finish);
      this.#irqWaiters.add(finish);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The ISR's job: read INT_STATUS of the locality in flight and write it back to clear it. */
  async #ackIrq(op: Op): Promise<void> {
    const loc = this.#inflight;
    if (loc === null) return;
    const ints = await this.#io(op, this.#mmio.read32(mx(loc, TIS_REG.INT_STATUS)));
    if (ints) await this.#io(op, this.#mmio.write32(mx(loc, TIS_REG.INT_STATUS), ints));
  }

  #stopIrq(): void {
    this.#irqMode = false;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#irqEnabled.clear();
  }

  #emit(e: TisDriverEvent): void {
    if (this.#channel.hasSubscribers) this.#channel.publish(e);
  }
}

/** TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_TOTAL_COMMANDS, 1): the kernel's tpm2_probe. */
function tpm2ProbeCommand(): Uint8Array {
  const c = new Uint8Array(22);
  const v = new DataView(c.buffer);
  v.setUint16(0, TPM_ST.NO_SESSIONS);
  v.setUint32(2, 22);
  v.setUint32(6, TPM_CC.GetCapability);
  v.setUint32(10, TPM_CAP.TPM_PROPERTIES);
  v.setUint32(14, TPM_PT.TOTAL_COMMANDS);
  v.setUint32(18, 1);
  return c;
}
