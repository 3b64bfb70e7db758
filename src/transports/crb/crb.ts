/**
 * The CRB (Command Response Buffer) driver: the Linux kernel's `tpm_crb.c` algorithm over an
 * {@link Mmio} register window, with a pluggable start method (Linux drivers/char/tpm/tpm_crb.c;
 * TCG PC Client PTP, "CRB Interface").
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../../core/clock.js";
import {
  ProbeDeferredError,
  TpmArgumentError,
  TpmNotFoundError,
  TpmTimeoutError,
  TpmTransportError,
  throwIfAborted,
} from "../../errors/index.js";
import type { OpenContext, SendOptions, Transport, TransportPresence } from "../../core/transport.js";
import { assertLocality } from "../../core/assert.js";
import type { Mmio } from "../../bus/mmio.js";
import { quietly, runSteps, type Steps } from "../../bus/access.js";
import { KERNEL_POLL_MS, poll, pollSteps, type PollResult } from "../../bus/poll.js";
import {
  CRB_CONTROL_AREA_SIZE,
  CRB_CTRL_REQ,
  CRB_CTRL_STS,
  CRB_DEFAULT_TIMEOUTS,
  CRB_INTF_TYPE_CRB,
  CRB_INVOKE,
  CRB_LOC_CTRL,
  CRB_LOC_STATE,
  CRB_LOCALITY_STRIDE,
  CRB_PAGE_SIZE,
  CRB_REG,
  decodeInterfaceId,
  type CrbInterfaceId,
  type CrbTimeouts,
} from "../../bus/crb-registers.js";
import type { CrbStartContext, CrbStartEvent, CrbStartMethod, CrbStartQualifier } from "./start-method.js";

/** Options of {@link crb}. */
export interface CrbOptions {
  /** The CRB register window: offset 0 is locality 0's LOC_STATE, locality L's page is at L × 0x1000. */
  mmio: Mmio;
  /** How a command is started: {@link mmioStart}, {@link smcStart}, or an FF-A start method. */
  start: CrbStartMethod;
  /**
   * Default locality, 0–4: open reads the buffer addresses at it, and a `Chip` built without its
   * own `locality` option sends every command (and Startup) at it ({@link Transport.defaultLocality}).
   * A per-command `locality` still wins. Default: the chip's locality (0).
   */
  locality?: number;
  /** Register-wait bounds in ms; see {@link CrbTimeouts}. */
  timeouts?: Partial<CrbTimeouts>;
  /** Clock for every wait; when given it is used even though the chip passes its own. Default: the chip's clock (from `open`/`send`). */
  clock?: Clock;
  /**
   * Physical address of `mmio` offset 0, the kernel's mapped ACPI region start. The driver reads
   * CMD_PA / RSP_PA (physical addresses) and reaches the buffers at `address − base`. Default 0
   * (addresses are offsets, which is what `CrbDevice` reports by default); for a device at
   * QEMU's 0xFED40000 (TPM_CRB_ADDR_BASE, QEMU include/hw/acpi/tpm.h) pass `base: 0xFED40000`.
   */
  base?: number | bigint;
  /**
   * Size of the mapped region in bytes (buffers must lie inside it; sizes running past it are
   * clamped, as the kernel does with FW_BUG). Default 0x1000 per locality page the interface offers.
   */
  regionSize?: number;
  /**
   * How the data buffer is copied: `"burst"` (one `writeFifo`/`readFifo` block per copy, default)
   * or `"dword"` (32-bit accesses, as `memcpy_toio` on a bus without bursts).
   */
  bufferAccess?: "burst" | "dword";
}

/** One locality's command/response buffers as read from the control area. */
export interface CrbBuffers {
  /** CMD_PA (physical). */
  commandAddress: bigint;
  /** RSP_PA (physical). */
  responseAddress: bigint;
  /** Offset of the command buffer in the Mmio. */
  commandOffset: number;
  /** Offset of the response buffer in the Mmio. */
  responseOffset: number;
  /** CMD_SIZE after clamping. */
  commandSize: number;
  /** RSP_SIZE after clamping. */
  responseSize: number;
}

/** What {@link CrbTransport.info} reports after open. */
export interface CrbInfo extends CrbBuffers {
  /** Decoded INTF_ID. */
  interfaceId: CrbInterfaceId;
  /** The start method's name. */
  startMethod: string;
  /** Whether cmdReady/goIdle are used (the start method's `hasIdle`). */
  hasIdle: boolean;
  /** Localities commands can be sent at. */
  localities: readonly number[];
  /** The locality whose buffers are described here. */
  locality: number;
  /** Firmware-bug notes (e.g. sizes clamped to the region), as the kernel's FW_BUG messages. */
  warnings: string[];
}

/** The transport {@link crb} returns. */
export interface CrbTransport extends Transport {
  readonly kind: "crb";
  /** Interface id and buffer layout; undefined until `open` succeeded. */
  readonly info: CrbInfo | undefined;
  /** Probes the interface and reads the buffer layout (idempotent once it succeeded). */
  open(ctx: OpenContext): Promise<void>;
  /** Writes CTRL_CANCEL = 1 (and the start method's hook) for the command in flight, if any. */
  cancel(): Promise<void>;
  /** Stops further commands; `open` may be called again. */
  close(): Promise<void>;
}

const ALL_ONES = 0xffffffff;

interface Ctx extends CrbStartContext {
  readonly clock: Clock;
}

/**
 * Creates a CRB transport (Linux drivers/char/tpm/tpm_crb.c over an MMIO window; TCG PC Client
 * PTP, "CRB Interface").
 *
 * Per command, as the kernel's chip core plus `tpm_crb` do: request the locality (LOC_CTRL =
 * requestAccess, wait for LOC_STATE regValid|locAssigned), cmdReady (CTRL_REQ = 1, wait for the bit
 * to clear) when the start method has idle support, CTRL_CANCEL = 0, copy the command into the
 * buffer, start (CTRL_START = 1 plus the start method's hook), poll CTRL_START until it clears
 * (fast at first, then backing off to the kernel core's 1 ms, bounded by the command's duration
 * and the signal), check CTRL_STS.tpmSts, read the 8-byte head, check the size field, read the
 * rest, goIdle, and relinquish the locality. Register waits are bounded by timeout C (200 ms) and
 * back off to the kernel's 100 µs (crb_wait_for_reg_32()): microtask polls first, then clock sleeps.
 *
 * Differences from the kernel, on purpose: `open` first waits (timeout A) for tpmRegValidSts and
 * checks INTF_ID says CRB, so a dead device is `TpmNotFoundError` rather than a timeout; an
 * oversize command is refused before any register access; after an abandoned command (timeout or
 * abort) the next one waits for CTRL_START to clear (timeout C) and fails with EBUSY rather than
 * reuse a buffer the TPM may still write; with five localities the locality wait also checks
 * LOC_STATE.activeLocality, and each locality's buffer addresses are read and checked at its
 * first command (the kernel only ever uses locality 0); polling starts with microtask and (on the
 * system clock) event-loop-turn reads before any timer.
 *
 * @param options - {@link CrbOptions}: `mmio` and `start` are required.
 * @returns a {@link CrbTransport} (kind "crb") to hand to `Tpm.open` or `new Chip`.
 * @throws TpmArgumentError at once when the options are malformed. Later, from `open`:
 *   `TpmNotFoundError` (registers read 0 or all ones, regValid never set, INTF_ID not CRB),
 *   `ProbeDeferredError` (from the start method's probe), `TpmTransportError` errno EINVAL (zero,
 *   misplaced or too small buffers; equal addresses with unequal sizes), `TpmTimeoutError`
 *   (locality, cmdReady). From `send`: `TpmTransportError` errno E2BIG (oversize command), EIO
 *   (CTRL_STS.tpmSts, a response size field outside 10..RSP_SIZE, a failed SMC), EBUSY (the
 *   previous command still runs), ENODEV (closed); `TpmTimeoutError` (CTRL_START never cleared
 *   within the command's duration, or a register wait); the signal's reason when aborted;
 *   `TpmArgumentError` for a locality the interface does not offer.
 * @example
 * ```ts
 * const device = new CrbDevice({ backend: new SoftTpm() });
 * const transport = crb({ mmio: device, start: mmioStart() });
 * const tpm = await Tpm.open(transport);
 * console.log(transport.info?.commandSize); // 3968
 * await tpm.getRandom(16);
 * ```
 */
export function crb(options: CrbOptions): CrbTransport {
  return new CrbDriver(options);
}

class CrbDriver implements CrbTransport {
  readonly kind = "crb" as const;
  readonly #mmio: Mmio;
  readonly #start: CrbStartMethod;
  readonly #timeouts: CrbTimeouts;
  readonly #base: bigint;
  readonly #access: "burst" | "dword";
  readonly #options: CrbOptions;
  #clock: Clock | undefined;
  #info: CrbInfo | undefined;
  #localities: readonly number[] = [0];
  #regionSize = CRB_PAGE_SIZE;
  #buffers = new Map<number, CrbBuffers>();
  #opening: Promise<void> | undefined;
  #opened = false;
  #presence: TransportPresence = "absent";
  #closed = false;
  /** A command was abandoned (timeout/abort): the next one first waits for CTRL_START to clear. */
  #dirty = false;
  /** The locality of the command in flight, for cancel(). */
  #inFlight: { locality: number; cancelled: boolean } | undefined;

  constructor(options: CrbOptions) {
    if (!options || typeof options !== "object") throw new TpmArgumentError("crb() needs options { mmio, start }");
    const m = options.mmio as Partial<Mmio> | undefined;
    if (!m || typeof m.read32 !== "function" || typeof m.write32 !== "function") throw new TpmArgumentError("crb(): `mmio` must implement Mmio");
    if (!options.start || typeof options.start.start !== "function") throw new TpmArgumentError("crb(): `start` must be a CrbStartMethod (mmioStart(), smcStart(...))");
    const t = { ...CRB_DEFAULT_TIMEOUTS, ...options.timeouts };
    for (const [k, v] of Object.entries(t)) {
      if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) throw new TpmArgumentError(`crb(): timeouts.${k} must be a finite number ≥ 0, got ${String(v)}`);
    }
    let base: bigint;
    if (options.base === undefined) base = 0n;
    else if (typeof options.base === "bigint") base = options.base;
    else if (Number.isSafeInteger(options.base) && options.base >= 0) base = BigInt(options.base);
    else throw new TpmArgumentError(`crb(): base must be a non-negative integer, got ${String(options.base)}`);
    if (base < 0n) throw new TpmArgumentError("crb(): base must not be negative");
    if (options.regionSize !== undefined && (!Number.isSafeInteger(options.regionSize) || options.regionSize < CRB_CONTROL_AREA_SIZE)) {
      throw new TpmArgumentError(`crb(): regionSize must be an integer ≥ 0x80, got ${String(options.regionSize)}`);
    }
    if (options.locality !== undefined) assertLocality(options.locality, "crb");
    if (options.bufferAccess !== undefined && options.bufferAccess !== "burst" && options.bufferAccess !== "dword") {
      throw new TpmArgumentError(`crb(): bufferAccess must be "burst" or "dword"`);
    }
    this.#options = options;
    this.#mmio = options.mmio;
    this.#start = options.start;
    this.#timeouts = t;
    this.#base = base;
    this.#access = options.bufferAccess ?? "burst";
    this.#clock = options.clock;
  }

  get info(): CrbInfo | undefined {
    return this.#info;
  }

  /** The `locality` option (see {@link CrbOptions.locality}); undefined when none was given. */
  get defaultLocality(): number | undefined {
    return this.#options.locality;
  }

  get localities(): readonly number[] {
    return this.#localities;
  }

  get maxCommandSize(): number | undefined {
    return this.#info?.commandSize;
  }

  /** "present" after a successful open, "deferred" after a ProbeDeferredError, else "absent". */
  presence(): TransportPresence {
    return this.#presence;
  }

  // ------------------------------------------------------------ open (kernel crb_acpi_add / crb_map_io)

  open(ctx: OpenContext): Promise<void> {
    if (this.#opened) return Promise.resolve();
    if (!this.#opening) {
      this.#opening = this.#open(ctx).then(
        () => {
          this.#presence = "present";
          this.#opening = undefined;
        },
        (e: unknown) => {
          this.#presence = e instanceof ProbeDeferredError ? "deferred" : "absent";
          this.#opening = undefined;
          throw e;
        },
      );
    }
    return this.#opening;
  }

  async #open(octx: OpenContext): Promise<void> {
    const clock = this.#options.clock ?? octx?.clock ?? systemClock;
    this.#clock = clock;
    const signal = octx?.signal;
    throwIfAborted(signal);
    this.#closed = false;
    // 1. start-method probe (FF-A: -ENOENT becomes -EPROBE_DEFER)
    await this.#start.probe?.({ clock, signal });
    // 2. registers valid? (tpmkit addition: the TIS driver's ACCESS.VALID wait, for backends that
    //    are still starting; a dead device reads 0 and is "not found")
    const valid = await poll({
      read: () => this.#mmio.read32(CRB_REG.LOC_STATE),
      done: (v) => v >>> 0 !== ALL_ONES && (v & CRB_LOC_STATE.REG_VALID) !== 0,
      timeoutMs: this.#timeouts.a,
      // as the TIS driver's ACCESS.tpmRegValidSts wait (Linux tpm_tis_core.c, wait_startup())
      intervalMs: KERNEL_POLL_MS.tisAccess,
      clock,
      signal,
    });
    const last = valid.value >>> 0;
    if (!valid.ok) {
      const what = last === 0 ? "CRB registers read 0 (no TPM, or its backend failed to start)" : last === ALL_ONES ? "CRB registers read all ones (nothing decodes the region)" : `LOC_STATE.tpmRegValidSts never set (LOC_STATE 0x${last.toString(16)})`;
      throw new TpmNotFoundError(`crb: ${what}`, { details: `waited ${this.#timeouts.a} ms (timeout A)` });
    }
    // 3. interface id (the kernel never parses it; we check it is a CRB)
    const lo = (await this.#mmio.read32(CRB_REG.INTF_ID)) >>> 0;
    const hi = (await this.#mmio.read32(CRB_REG.INTF_ID2)) >>> 0;
    if ((lo === 0 && hi === 0) || (lo === ALL_ONES && hi === ALL_ONES)) {
      throw new TpmNotFoundError(`crb: INTF_ID reads 0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")}: no CRB interface`);
    }
    const intf = decodeInterfaceId(lo, hi);
    if (intf.type !== CRB_INTF_TYPE_CRB) {
      throw new TpmNotFoundError(`crb: INTF_ID interface type is ${intf.type} (${intf.type === 0 ? "FIFO/TIS" : "unknown"}), not CRB (1)`, { details: "a FIFO interface is driven by tis(), not crb()" });
    }
    const localities = intf.capLocality ? [0, 1, 2, 3, 4] : [0];
    this.#localities = localities;
    this.#regionSize = this.#options.regionSize ?? localities.length * CRB_PAGE_SIZE;
    const locality = this.#options.locality ?? octx?.locality ?? 0;
    if (!localities.includes(locality)) {
      throw new TpmArgumentError(`crb: locality ${locality} is not offered (INTF_ID.CapLocality=${intf.capLocality ? 1 : 0}; offers ${localities.join(", ")})`);
    }
    // 4. kernel probe: take the locality, cmdReady (PTT wake-up), read the buffers, goIdle, release
    const ctx = this.#ctx(locality, clock, signal);
    this.#buffers.clear();
    const warnings: string[] = [];
    await runSteps(this.#requestLocality(ctx));
    let bufs: CrbBuffers;
    try {
      if (this.#start.hasIdle) await runSteps(this.#cmdReady(ctx));
      bufs = await this.#readBuffers(locality, warnings);
      if (this.#start.hasIdle) await runSteps(this.#goIdle(ctx));
    } finally {
      await runSteps(quietly(this.#relinquishLocality(ctx, !signal?.aborted)));
    }
    this.#buffers.set(locality, bufs);
    this.#info = {
      interfaceId: intf,
      startMethod: this.#start.name,
      hasIdle: this.#start.hasIdle,
      localities,
      locality,
      warnings,
      ...bufs,
    };
    this.#opened = true;
  }

  /** Reads and checks one locality's CMD/RSP addresses and sizes (kernel crb_map_io). */
  async #readBuffers(locality: number, warnings: string[]): Promise<CrbBuffers> {
    const page = locality * CRB_LOCALITY_STRIDE;
    const m = this.#mmio;
    const cmdHigh = (await m.read32(page + CRB_REG.CMD_PA_HIGH)) >>> 0;
    const cmdLow = (await m.read32(page + CRB_REG.CMD_PA_LOW)) >>> 0;
    const cmdSizeRaw = (await m.read32(page + CRB_REG.CMD_SIZE)) >>> 0;
    const rspLow = (await m.read32(page + CRB_REG.RSP_PA)) >>> 0;
    const rspHigh = (await m.read32(page + CRB_REG.RSP_PA + 4)) >>> 0;
    const rspSizeRaw = (await m.read32(page + CRB_REG.RSP_SIZE)) >>> 0;
    const cmdPa = (BigInt(cmdHigh) << 32n) | BigInt(cmdLow);
    const rspPa = (BigInt(rspHigh) << 32n) | BigInt(rspLow);
    const cmd = this.#place("command", cmdPa, cmdSizeRaw, warnings);
    const rsp = this.#place("response", rspPa, rspSizeRaw, warnings);
    if (cmdPa === rspPa && cmdSizeRaw !== rspSizeRaw) {
      throw new TpmTransportError(`crb: firmware bug: command and response buffers share address 0x${cmdPa.toString(16)} but their sizes differ (${cmdSizeRaw} vs ${rspSizeRaw})`, { errno: "EINVAL" });
    }
    return { commandAddress: cmdPa, responseAddress: rspPa, commandOffset: cmd.offset, responseOffset: rsp.offset, commandSize: cmd.size, responseSize: rsp.size };
  }

  #place(what: string, pa: bigint, size: number, warnings: string[]): { offset: number; size: number } {
    if (pa === 0n) throw new TpmTransportError(`crb: firmware bug: the ${what} buffer address is 0`, { errno: "EINVAL" });
    const rel = pa - this.#base;
    if (rel < 0n || rel >= BigInt(this.#regionSize)) {
      throw new TpmTransportError(`crb: the ${what} buffer at 0x${pa.toString(16)} lies outside the region 0x${this.#base.toString(16)}+0x${this.#regionSize.toString(16)}`, {
        errno: "EINVAL",
        details: "set crb({ base }) to the physical address of the register block",
      });
    }
    const offset = Number(rel);
    const inPage = offset % CRB_PAGE_SIZE;
    if (inPage < CRB_CONTROL_AREA_SIZE) {
      throw new TpmTransportError(`crb: firmware bug: the ${what} buffer at offset 0x${offset.toString(16)} overlaps the control area`, { errno: "EINVAL" });
    }
    // the buffer may run to the region end or to the next page's control area, whichever is first
    const nextCtrl = offset - inPage + CRB_PAGE_SIZE;
    const limit = Math.min(this.#regionSize, nextCtrl < this.#regionSize ? nextCtrl : this.#regionSize) - offset;
    let s = size;
    if (s > limit) {
      warnings.push(`FW_BUG: ${what} buffer size ${size} runs past its area; clamped to ${limit}`);
      s = limit;
    }
    if (s < 10) throw new TpmTransportError(`crb: the ${what} buffer is ${s} bytes, smaller than a TPM header (10)`, { errno: "EINVAL" });
    return { offset, size: s };
  }

  // ------------------------------------------------------------ send
  //
  // The per-command path is written as step sequences run by `runSteps` (src/bus/access.ts): each
  // register access is `yield`ed, and `runSteps` hands a plain value straight back (device models
  // answer synchronously: no promise, no microtask) and awaits only a Promise (a bridge). Between
  // polls of a register whose wait is not yet over, `pollSteps` (src/bus/poll.ts) yields microtasks
  // first, so a backend running the command gets to finish. Open stays plain async (once per
  // transport).

  send(command: Uint8Array, options: SendOptions): Promise<Uint8Array> {
    try {
      const signal = options.signal;
      throwIfAborted(signal);
      if (this.#closed) throw new TpmTransportError("crb: transport is closed", { errno: "ENODEV" });
      if (!this.#opened) {
        return this.open({ clock: options.clock, signal, locality: options.locality ?? 0 }).then(() => this.send(command, options));
      }
      const r = runSteps(this.#sendSteps(command, options));
      return r instanceof Promise ? r : Promise.resolve(r);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  *#sendSteps(command: Uint8Array, options: SendOptions): Steps<Uint8Array> {
    const signal = options.signal;
    const clock = this.#options.clock ?? options.clock ?? this.#clock ?? systemClock;
    const locality = assertLocality(options.locality ?? this.#info!.locality, "crb");
    if (!this.#localities.includes(locality)) {
      throw new TpmArgumentError(`crb: locality ${locality} is not offered (offers ${this.#localities.join(", ")})`);
    }
    if (!(command instanceof Uint8Array) || command.length < 10) throw new TpmArgumentError(`crb: a command needs at least 10 bytes, got ${command?.length}`);
    const max = this.#info!.commandSize;
    if (command.length > max) {
      throw new TpmTransportError(`crb: command of ${command.length} bytes exceeds the ${max}-byte command buffer`, { errno: "E2BIG" });
    }
    const ctx = this.#ctx(locality, clock, signal);
    const flight = { locality, cancelled: false };
    this.#inFlight = flight;
    let tidy = true; // wait for goIdle / relinquish to complete (false once the signal fired)
    let started = false;
    try {
      try {
        yield* this.#requestLocality(ctx);
        if (this.#start.hasIdle) yield* this.#cmdReady(ctx);
        let bufs = this.#buffers.get(locality);
        if (!bufs) {
          bufs = (yield this.#readBuffers(locality, this.#info!.warnings)) as CrbBuffers;
          this.#buffers.set(locality, bufs);
        }
        // kernel crb_send: CTRL_CANCEL = 0, then the size check
        yield this.#mmio.write32(ctx.page + CRB_REG.CTRL_CANCEL, 0);
        if (command.length > bufs.commandSize) {
          throw new TpmTransportError(`crb: command of ${command.length} bytes exceeds locality ${locality}'s ${bufs.commandSize}-byte buffer`, { errno: "E2BIG" });
        }
        if (this.#dirty) yield* this.#drain(ctx);
        yield* this.#writeBuffer(bufs.commandOffset, command);
        started = true;
        yield this.#start.start(ctx);
        yield* this.#waitComplete(ctx, options.timeoutMs, flight);
        return yield* this.#recv(ctx, bufs);
      } catch (e) {
        if (signal?.aborted) tidy = false;
        // the TPM may still be running the command (e.g. a start method failed after CTRL_START):
        // the next command must see CTRL_START clear before it touches the buffer
        if (started) this.#dirty = true;
        throw e;
      } finally {
        if (this.#start.hasIdle) yield* quietly(this.#goIdle(ctx, tidy));
        yield* quietly(this.#relinquishLocality(ctx, tidy));
      }
    } finally {
      if (this.#inFlight === flight) this.#inFlight = undefined;
    }
  }

  /** Polls CTRL_START until it clears; on timeout or abort, cancels and throws. */
  *#waitComplete(ctx: Ctx, timeoutMs: number, flight: { cancelled: boolean }): Steps<void> {
    const bound = Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 120_000;
    let done: boolean;
    try {
      // completion: the kernel core polls its status every 1 ms (tpm_try_transmit())
      done = (yield* this.#wait(ctx.page + CRB_REG.CTRL_START, (v) => (v & CRB_INVOKE) === 0, bound, KERNEL_POLL_MS.response, ctx, ctx.signal)).ok;
    } catch (e) {
      // aborted: cancel (the chip also calls cancel(); only one CANCEL write is made)
      this.#dirty = true;
      yield this.#cancelFlight(ctx.locality, flight).catch(() => {});
      throw e;
    }
    if (!done) {
      this.#dirty = true;
      yield this.#cancelFlight(ctx.locality, flight).catch(() => {});
      throw new TpmTimeoutError("crb: waiting for CTRL_START to clear", bound);
    }
  }

  /** Before reusing the buffer after an abandoned command: wait (timeout C) for START to clear. */
  *#drain(ctx: Ctx): Steps<void> {
    const { ok } = yield* this.#wait(ctx.page + CRB_REG.CTRL_START, (v) => (v & CRB_INVOKE) === 0, this.#timeouts.c, KERNEL_POLL_MS.response, ctx, ctx.signal);
    if (!ok) throw new TpmTransportError("crb: the previous command is still running (CTRL_START stays set after cancel)", { errno: "EBUSY" });
    this.#dirty = false;
  }

  /** kernel crb_recv. */
  *#recv(ctx: Ctx, bufs: CrbBuffers): Steps<Uint8Array> {
    const sts = ((yield this.#mmio.read32(ctx.page + CRB_REG.CTRL_STS)) as number) >>> 0;
    if (sts & CRB_CTRL_STS.TPM_STS) {
      throw new TpmTransportError("crb: the TPM reports a fatal error (CTRL_STS.tpmSts)", { errno: "EIO" });
    }
    const head = yield* this.#readBuffer(bufs.responseOffset, 8);
    const size = ((head[2]! << 24) | (head[3]! << 16) | (head[4]! << 8) | head[5]!) >>> 0;
    if (size < 10 || size > bufs.responseSize) {
      throw new TpmTransportError(`crb: response size field ${size} is outside 10..${bufs.responseSize}`, { errno: "EIO" });
    }
    const rest = yield* this.#readBuffer(bufs.responseOffset + 8, size - 8);
    const out = new Uint8Array(size);
    out.set(head, 0);
    out.set(rest, 8);
    return out;
  }

  // ------------------------------------------------------------ cancel / close

  async cancel(): Promise<void> {
    const f = this.#inFlight;
    if (!f) return;
    await this.#cancelFlight(f.locality, f);
  }

  async #cancelFlight(locality: number, flight: { cancelled: boolean }): Promise<void> {
    if (flight.cancelled) return;
    flight.cancelled = true;
    const ctx = this.#ctx(locality, this.#clock ?? systemClock, undefined);
    await this.#mmio.write32(ctx.page + CRB_REG.CTRL_CANCEL, CRB_INVOKE);
    await this.#notify("command", "cancel", ctx);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#opened = false;
    this.#presence = "absent";
    this.#buffers.clear();
  }

  // ------------------------------------------------------------ ready / idle / locality (tpm_crb.c: crb_cmd_ready(), crb_go_idle(), crb_request_locality(), crb_relinquish_locality())

  *#cmdReady(ctx: Ctx): Steps<void> {
    yield this.#mmio.write32(ctx.page + CRB_REG.CTRL_REQ, CRB_CTRL_REQ.CMD_READY);
    if (this.#start.notify) yield this.#start.notify("command", "cmdReady", ctx);
    const { ok } = yield* this.#wait(ctx.page + CRB_REG.CTRL_REQ, (v) => (v & CRB_CTRL_REQ.CMD_READY) === 0, this.#timeouts.c, KERNEL_POLL_MS.crbRegister, ctx, ctx.signal);
    if (!ok) throw new TpmTimeoutError("crb: cmdReady", this.#timeouts.c);
  }

  *#goIdle(ctx: Ctx, wait = true): Steps<void> {
    yield this.#mmio.write32(ctx.page + CRB_REG.CTRL_REQ, CRB_CTRL_REQ.GO_IDLE);
    if (this.#start.notify) yield this.#start.notify("command", "goIdle", { ...ctx, signal: undefined });
    if (!wait) return;
    const { ok } = yield* this.#wait(ctx.page + CRB_REG.CTRL_REQ, (v) => (v & CRB_CTRL_REQ.GO_IDLE) === 0, this.#timeouts.c, KERNEL_POLL_MS.crbRegister, ctx, undefined);
    if (!ok) throw new TpmTimeoutError("crb: goIdle", this.#timeouts.c);
  }

  *#requestLocality(ctx: Ctx): Steps<void> {
    yield this.#mmio.write32(ctx.page + CRB_REG.LOC_CTRL, CRB_LOC_CTRL.REQUEST_ACCESS);
    if (this.#start.notify) yield this.#start.notify("locality", "requestLocality", ctx);
    const want = CRB_LOC_STATE.REG_VALID | CRB_LOC_STATE.LOC_ASSIGNED;
    const r = yield* this.#wait(
      ctx.page + CRB_REG.LOC_STATE,
      (v) => {
        const x = v >>> 0;
        // kernel: (LOC_STATE & 0x82) == 0x82; with several localities the active one must be ours
        return x !== ALL_ONES && (x & want) === want && (this.#localities.length === 1 || ((x & CRB_LOC_STATE.ACTIVE_LOCALITY_MASK) >>> CRB_LOC_STATE.ACTIVE_LOCALITY_SHIFT) === ctx.locality);
      },
      this.#timeouts.c,
      KERNEL_POLL_MS.crbRegister,
      ctx,
      ctx.signal,
    );
    if (!r.ok) {
      throw new TpmTimeoutError(`crb: locality ${ctx.locality} request (LOC_STATE 0x${(r.value >>> 0).toString(16)})`, this.#timeouts.c);
    }
  }

  *#relinquishLocality(ctx: Ctx, wait = true): Steps<void> {
    yield this.#mmio.write32(ctx.page + CRB_REG.LOC_CTRL, CRB_LOC_CTRL.RELINQUISH);
    if (this.#start.notify) yield this.#start.notify("locality", "relinquishLocality", { ...ctx, signal: undefined });
    if (!wait) return;
    const { ok } = yield* this.#wait(
      ctx.page + CRB_REG.LOC_STATE,
      (v) => {
        const x = v >>> 0;
        if ((x & CRB_LOC_STATE.LOC_ASSIGNED) === 0) return (x & CRB_LOC_STATE.REG_VALID) !== 0;
        // another locality was granted from the pending queue: ours is released
        return this.#localities.length > 1 && ((x & CRB_LOC_STATE.ACTIVE_LOCALITY_MASK) >>> CRB_LOC_STATE.ACTIVE_LOCALITY_SHIFT) !== ctx.locality;
      },
      this.#timeouts.c,
      KERNEL_POLL_MS.crbRegister,
      ctx,
      undefined,
    );
    if (!ok) throw new TpmTimeoutError(`crb: locality ${ctx.locality} relinquish`, this.#timeouts.c);
  }

  async #notify(q: CrbStartQualifier, ev: CrbStartEvent, ctx: Ctx): Promise<void> {
    if (this.#start.notify) await this.#start.notify(q, ev, ctx);
  }

  // ------------------------------------------------------------ helpers

  #ctx(locality: number, clock: Clock, signal: AbortSignal | undefined): Ctx {
    return { mmio: this.#mmio, page: locality * CRB_LOCALITY_STRIDE, locality, clock, signal };
  }

  /** Polls the 32-bit register at `offset` with the shared polling engine (`pollSteps`). */
  #wait(offset: number, done: (v: number) => boolean, timeoutMs: number, intervalMs: number, ctx: Ctx, signal: AbortSignal | undefined): Steps<PollResult<number>> {
    return pollSteps({ read: () => this.#mmio.read32(offset), done, timeoutMs, intervalMs, clock: ctx.clock, signal });
  }

  *#writeBuffer(offset: number, data: Uint8Array): Steps<void> {
    const m = this.#mmio;
    if (this.#access === "burst" && typeof m.writeFifo === "function") {
      yield m.writeFifo(offset, data);
      return;
    }
    let i = 0;
    if (offset % 4 === 0) {
      for (; i + 4 <= data.length; i += 4) {
        yield m.write32(offset + i, (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) >>> 0);
      }
    }
    for (; i < data.length; i++) yield m.write8(offset + i, data[i]!);
  }

  *#readBuffer(offset: number, length: number): Steps<Uint8Array> {
    const m = this.#mmio;
    if (this.#access === "burst" && typeof m.readFifo === "function") {
      const got = yield m.readFifo(offset, length);
      if (!(got instanceof Uint8Array) || got.length !== length) {
        throw new TpmTransportError(`crb: buffer read returned ${got instanceof Uint8Array ? got.length : typeof got} bytes, expected ${length}`, { errno: "EIO" });
      }
      return got;
    }
    const out = new Uint8Array(length);
    let i = 0;
    if (offset % 4 === 0) {
      for (; i + 4 <= length; i += 4) {
        const v = ((yield m.read32(offset + i)) as number) >>> 0;
        out[i] = v & 0xff;
        out[i + 1] = (v >>> 8) & 0xff;
        out[i + 2] = (v >>> 16) & 0xff;
        out[i + 3] = v >>> 24;
      }
    }
    for (; i < length; i++) out[i] = ((yield m.read8(offset + i)) as number) & 0xff;
    return out;
  }
}
