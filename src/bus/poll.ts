/**
 * The polling engine every register driver uses (TIS, CRB, and the FF-A and TEE drivers after
 * them): re-read a register until a condition holds, bounded by a timeout on an injected
 * {@link Clock}, abortable by a signal, synchronous when the device model answers synchronously.
 *
 * The schedule between reads:
 *
 * 1. **No wait at all** when the first read already shows the wanted state and was synchronous:
 *    the result is a plain value, no microtask, no clock read (the common case on a device model).
 * 2. **Microtask polls**: reads after 1, 2, 4, ... 32 microtask yields ({@link MICROTASK_POLLS}
 *    reads). A device model whose backend answers within microtasks costs microtasks, no timer.
 * 3. **Event-loop turns**, on the system clock only: reads one `setImmediate` apart, for at most
 *    {@link TURN_POLLS} reads and {@link TURN_MS} ms. A backend behind a socket answers in tens of
 *    µs, and a Node.js timer cannot wait less than 1 ms. An injected clock (a `FakeClock`) sees
 *    only timed sleeps, so it never jumps to an unrelated timer while the engine spins.
 * 4. **Timed sleeps** on the clock, from {@link FIRST_SLEEP_MS} doubling up to the interval the
 *    Linux kernel uses for that wait ({@link KERNEL_POLL_MS}), the last one cut to end exactly at
 *    the deadline, where one last read decides.
 *
 * The kernel sleeps its fixed interval from the first miss (Linux drivers/char/tpm/tpm_tis_core.c,
 * wait_for_tpm_stat(); drivers/char/tpm/tpm_crb.c, crb_wait_for_reg_32()); tpmkit reaches the same
 * interval from below, because a software TPM answers in microseconds where a chip takes
 * milliseconds. A caller with its own event to wait for (an interrupt) passes `idle` instead of
 * the back-off.
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../core/clock.js";
import type { MaybePromise } from "../core/transport.js";
import { throwIfAborted } from "../errors/index.js";
import { runSteps, withSignal, type Steps } from "./access.js";

/**
 * The kernel's polling interval for each kind of wait, in ms (the upper bound of its sleep range),
 * used as the longest sleep between two reads.
 */
export const KERNEL_POLL_MS = /* @__PURE__ */ Object.freeze({
  /** TIS status bits and burstCount: usleep_range(100, 500) µs. Linux tpm_tis_core.c, wait_for_tpm_stat() and get_burstcount(). */
  tisStatus: 0.5,
  /** TIS locality grant and ACCESS.tpmRegValidSts at startup: msleep(TPM_TIMEOUT), 5 ms. Linux tpm_tis_core.c, request_locality() and wait_startup(). */
  tisAccess: 5,
  /** Command completion, any interface: msleep(TPM_TIMEOUT_POLL), 1 ms. Linux drivers/char/tpm/tpm-interface.c, tpm_try_transmit(). */
  response: 1,
  /** CRB register waits (cmdReady, goIdle, locality): usleep_range(50, 100) µs. Linux tpm_crb.c, crb_wait_for_reg_32(). */
  crbRegister: 0.1,
});

/** Reads done after 1, 2, 4, ... microtask yields before any other kind of wait. */
export const MICROTASK_POLLS = 6;
/** On the system clock: most reads one event-loop turn apart, after the microtask polls. */
export const TURN_POLLS = 256;
/** On the system clock: the event-loop turns stop once this many ms passed since the first read. */
export const TURN_MS = 1;
/** First timed sleep between reads, ms; it doubles up to the wait's interval. */
export const FIRST_SLEEP_MS = 0.05;

/** One polled wait. */
export interface PollOptions<T> {
  /** Reads the register (or several): a plain value or a Promise of it. */
  read: () => MaybePromise<T>;
  /** True when `value` shows the wanted state. */
  done: (value: T) => boolean;
  /** Bound, ms, counted from the first read; one last read happens at the deadline. */
  timeoutMs: number;
  /** Longest sleep between reads once backed off: the kernel's interval for this wait ({@link KERNEL_POLL_MS}). */
  intervalMs: number;
  /** The clock every wait and the deadline use. */
  clock: Clock;
  /** Aborts the wait (checked before each read; races sleeps and asynchronous reads). */
  signal?: AbortSignal | undefined;
  /**
   * Replaces the whole back-off: called after each read that did not show the wanted state, with
   * the ms left before the deadline, and read again when it settles (an interrupt-driven wait).
   */
  idle?: ((leftMs: number) => Promise<void>) | undefined;
}

/** What a wait ended with: whether the condition held, and the last value read. */
export interface PollResult<T> {
  readonly ok: boolean;
  readonly value: T;
}

/**
 * The polling engine as a step sequence, for drivers written as {@link Steps} (`yield*` it).
 *
 * @param o - What to read, when it is done, the bound, the interval and the clock.
 * @returns `{ ok: true, value }` once `done(value)`, `{ ok: false, value }` with the last value
 *   when the deadline passed.
 * @throws The signal's abort error when it fires; whatever `read` or `done` throw.
 * @example
 * ```ts
 * function* cmdReady(mmio: Mmio, clock: Clock): Steps<void> {
 *   yield mmio.write32(CRB_REG.CTRL_REQ, CRB_CTRL_REQ.CMD_READY);
 *   const r = yield* pollSteps({ read: () => mmio.read32(CRB_REG.CTRL_REQ), done: (v) => (v & 1) === 0, timeoutMs: 200, intervalMs: KERNEL_POLL_MS.crbRegister, clock });
 *   if (!r.ok) throw new TpmTimeoutError("cmdReady", 200);
 * }
 * ```
 */
export function* pollSteps<T>(o: PollOptions<T>): Steps<PollResult<T>> {
  const { clock, signal, timeoutMs } = o;
  throwIfAborted(signal);
  let r = o.read();
  // the common case, a register that already shows the wanted state, needs not even the clock
  if (!(r instanceof Promise)) {
    if (o.done(r)) return { ok: true, value: r };
  }
  // the deadline counts from the first read (taken before an asynchronous one is awaited)
  const start = clock.now();
  const deadline = start + timeoutMs;
  const turns = o.idle === undefined && clock === systemClock;
  let delay = FIRST_SLEEP_MS;
  for (let i = 0; ; i++) {
    if (i > 0) {
      throwIfAborted(signal);
      r = o.read();
    }
    const value = (r instanceof Promise ? yield withSignal(r, signal) : r) as T;
    if (i > 0 || r instanceof Promise) {
      if (o.done(value)) return { ok: true, value };
    }
    const now = clock.now();
    const left = deadline - now;
    if (left <= 0) return { ok: false, value };
    if (o.idle) yield o.idle(left);
    else if (i < MICROTASK_POLLS) yield microtasks(1 << i);
    else if (turns && i < MICROTASK_POLLS + TURN_POLLS && now - start < TURN_MS) yield nextTurn();
    else {
      yield clock.sleep(Math.min(delay, left), signal);
      delay = Math.min(delay * 2, o.intervalMs);
    }
  }
}

/**
 * The polling engine for drivers written with `async`/`await`, or for one-off waits: runs
 * {@link pollSteps}.
 *
 * @param o - What to read, when it is done, the bound, the interval and the clock.
 * @returns The {@link PollResult}: a plain value when the first read was synchronous and done,
 *   else a promise of it.
 * @throws The signal's abort error when it fires (a rejection once asynchronous); whatever
 *   `read` or `done` throw.
 * @example
 * ```ts
 * const r = await poll({
 *   read: () => mmio.read8(TIS_REG.ACCESS),
 *   done: (a) => (a & TIS_ACCESS.VALID) !== 0,
 *   timeoutMs: 750,
 *   intervalMs: KERNEL_POLL_MS.tisAccess,
 *   clock,
 * });
 * if (!r.ok) throw new TpmNotFoundError("no TPM");
 * ```
 */
export function poll<T>(o: PollOptions<T>): MaybePromise<PollResult<T>> {
  return runSteps(pollSteps(o));
}

/** Resolves after `n` microtask turns (no time passes on any clock). */
async function microtasks(n: number): Promise<void> {
  for (let k = 0; k < n; k++) await undefined;
}

/**
 * One event-loop turn (not a timed wait: no time passes on any clock). Lets I/O-driven backends
 * (a socket to swtpm) complete between polls without paying a timer's 1 ms minimum.
 */
const nextTurn: () => Promise<void> =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === "function"
    ? () => new Promise<void>((r) => (globalThis as unknown as { setImmediate: (f: () => void) => void }).setImmediate(r))
    : () => new Promise<void>((r) => setTimeout(r, 0));
