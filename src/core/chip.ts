/**
 * The chip core: what the Linux kernel's tpm-chip.c / tpm-interface.c do, over any
 * {@link Transport}. One command in flight (a FIFO queue; a reply never reaches the wrong caller),
 * per-command duration bounds, retry of TPM_RC_RETRY / TPM_RC_TESTING with the kernel's doubling
 * back-off, AbortSignal cancellation, a readiness state, and tracing.
 *
 * @packageDocumentation
 */
import { systemClock, type Clock, type TimerHandle } from "./clock.js";
import { commandDuration, RETRY_FIRST_DELAY_MS, RETRY_MAX_DELAY_MS } from "./durations.js";
import {
  TpmAbortError,
  TpmArgumentError,
  TpmFormatError,
  TpmkitError,
  TpmNotFoundError,
  ProbeDeferredError,
  TpmStateError,
  TpmTimeoutError,
  TpmTransportError,
  TpmUnavailableError,
  abortErrorFrom,
} from "../errors/index.js";
import { traceChannel } from "./trace.js";
import { assertDuration, assertLocality } from "./assert.js";
import type { Transport, TransportPresence } from "./transport.js";
import { TPM_CC, TPM_RC } from "../wire/constants.js";

/**
 * Where a chip is in its life: `idle` (constructed, `open()` not called yet), `probing` (open in
 * progress), `ready`, `unusable` (opened and present, but the transport says it cannot serve
 * commands now, e.g. an fTPM whose TEE lost its supplicant; the chip moves back to `ready` when
 * the transport says so, without sending a command), `absent` (no TPM found), `deferred` (a
 * dependency is missing; open again later), `failed` (the transport broke, or did not settle
 * after a cancel), `closed`.
 */
export type Readiness = "idle" | "absent" | "deferred" | "probing" | "ready" | "unusable" | "failed" | "closed";

/** Options of a {@link Chip}. */
export interface ChipOptions {
  /** Time source for timeouts and retry sleeps. Default: the system clock. */
  clock?: Clock;
  /**
   * Default locality, 0–4, for commands (and Startup) sent without one. Default: the transport's
   * `defaultLocality` (what `tis({ locality: 3 })` was configured with), else 0.
   */
  locality?: number;
  /** Duration bound per command code (ms); default: the kernel's table. */
  duration?: (commandCode: number) => number;
  /** Retry policy. `false` turns retries off. */
  retry?: false | { yielded?: boolean; firstDelayMs?: number; maxDelayMs?: number };
  /** Largest command accepted, bytes. Default: the transport's, else 4096 (kernel TPM_BUFSIZE). */
  maxCommandSize?: number;
  /**
   * How long to wait for a transport to settle after it was told to abort before the chip
   * declares itself failed (so the next command can never read a stale reply). Default 2000 ms.
   */
  cancelGraceMs?: number;
}

/** Per-call options of {@link Chip.transmit}. */
export interface TransmitOptions {
  /** Cancels the call: it rejects promptly with an AbortError and the transport is told to cancel. */
  signal?: AbortSignal;
  /** Locality for this command (0–4); default: the chip's. */
  locality?: number;
  /** Overrides the command's duration bound (ms). */
  timeoutMs?: number;
  /** Set false to return TPM_RC_RETRY/TESTING responses instead of retrying. */
  retry?: boolean;
}

/** Published on {@link CHIP_READINESS_CHANNEL} (`tpmkit:chip:readiness`) when a chip's readiness changes. */
export interface ChipReadinessEvent {
  chip: Chip;
  readiness: Readiness;
  /** Why, for `absent`, `deferred`, `unusable` and `failed`. */
  error?: unknown;
}

/** Published on {@link CHIP_COMMAND_CHANNEL} (`tpmkit:chip:command`) when a command ends. */
export interface ChipCommandEvent {
  chip: Chip;
  commandCode: number;
  locality: number;
  /** Response code, when a response arrived. */
  rc?: number;
  /** Error, when none did. */
  error?: unknown;
  /** Number of retries made. */
  retries: number;
  /** Duration on the chip's clock, ms. */
  durationMs: number;
}

/** The diagnostics channel a chip publishes every finished command on ({@link ChipCommandEvent}). */
export const CHIP_COMMAND_CHANNEL = "tpmkit:chip:command";
/**
 * Default bound of {@link Chip.waitReady}: 120 000 ms, the longest command duration of the
 * kernel's table (Linux drivers/char/tpm/tpm2-cmd.c), so waiting for a TPM to become usable is
 * bounded on the same scale as waiting for a command.
 */
export const CHIP_WAIT_READY_MS = 120_000;

/** The diagnostics channel a chip publishes readiness changes on ({@link ChipReadinessEvent}). */
export const CHIP_READINESS_CHANNEL = "tpmkit:chip:readiness";

const commandChannel = /* @__PURE__ */ traceChannel(CHIP_COMMAND_CHANNEL);
const readinessChannel = /* @__PURE__ */ traceChannel(CHIP_READINESS_CHANNEL);

interface Job {
  command: Uint8Array;
  commandCode: number;
  locality: number;
  timeoutMs: number;
  retry: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  resolve: (r: Uint8Array) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  deadline: number;
  /** When the first attempt started (chip clock). */
  start: number;
  retries: number;
  /** The next retry delay. */
  delay: number;
}

/**
 * Serializes and supervises commands to one TPM.
 *
 * @example
 * ```ts
 * const chip = new Chip(memory({ backend: new SoftTpm() }));
 * await chip.open();
 * const rsp = await chip.transmit(getRandomCommandBytes, { signal: AbortSignal.timeout(1000) });
 * ```
 */
export class Chip {
  /** The transport under this chip. */
  readonly transport: Transport;
  /** The clock every wait uses. */
  readonly clock: Clock;
  /** Default locality. */
  readonly locality: number;
  #readiness: Readiness = "idle";
  #readinessError: unknown;
  #listeners = new Set<(r: Readiness) => void>();
  #queue: Job[] = [];
  #head = 0;
  #busy = false;
  #current: Job | undefined;
  #ac = new AbortController();
  #watchdog: TimerHandle | undefined;
  #watchdogAt = Infinity;
  #duration: (cc: number) => number;
  #retry: { yielded: boolean; first: number; max: number } | false;
  #maxCommandSize: number;
  #cancelGraceMs: number;
  #opening: Promise<void> | undefined;
  #presenceUnsub: (() => void) | undefined;
  /** The transport's last presence report and its reason. */
  #reported: { presence: TransportPresence; reason: unknown } | undefined;

  constructor(transport: Transport, options: ChipOptions = {}) {
    this.transport = transport;
    this.clock = options.clock ?? systemClock;
    this.locality = assertLocality(options.locality ?? transport.defaultLocality ?? 0, "chip");
    this.#duration = options.duration ?? commandDuration;
    this.#retry =
      options.retry === false
        ? false
        : { yielded: options.retry?.yielded ?? false, first: options.retry?.firstDelayMs ?? RETRY_FIRST_DELAY_MS, max: options.retry?.maxDelayMs ?? RETRY_MAX_DELAY_MS };
    this.#maxCommandSize = options.maxCommandSize ?? transport.maxCommandSize ?? 4096;
    this.#cancelGraceMs = options.cancelGraceMs ?? 2000;
  }

  /** The current readiness state. */
  get readiness(): Readiness {
    return this.#readiness;
  }

  /** The error behind `absent`, `deferred`, `unusable` or `failed`. */
  get readinessError(): unknown {
    return this.#readinessError;
  }

  /** Calls `fn` on every readiness change; returns an unsubscribe function. */
  onReadiness(fn: (r: Readiness) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * A presence report from the transport. Once open, `present` means `ready` and anything else
   * (`unusable`, or `absent`/`deferred` reported after a successful probe) means `unusable`;
   * in other states the report is only remembered for the end of the probe.
   */
  #onPresence(presence: TransportPresence, reason: unknown): void {
    this.#reported = { presence, reason };
    if (this.#readiness !== "ready" && this.#readiness !== "unusable") return;
    if (presence === "present") this.#setReadiness("ready");
    else this.#setReadiness("unusable", this.#unusableReason(reason));
  }

  #unusableReason(reason: unknown): unknown {
    return reason ?? new TpmUnavailableError(`${this.transport.kind}: the TPM is present but cannot serve commands`);
  }

  #setReadiness(r: Readiness, error?: unknown): void {
    if (this.#readiness === r && this.#readinessError === error) return;
    this.#readiness = r;
    this.#readinessError = error;
    if (readinessChannel.hasSubscribers) readinessChannel.publish({ chip: this, readiness: r, error } satisfies ChipReadinessEvent);
    for (const fn of [...this.#listeners]) fn(r);
  }

  /**
   * Probes the transport. A `ProbeDeferredError` leaves the chip `deferred` (call `open` again
   * when the dependency is there); `TpmNotFoundError` leaves it `absent`; other errors `failed`.
   * A probe that succeeds leaves it `ready`, or `unusable` when the transport reports that it
   * cannot serve commands yet. On an `unusable` chip, `open` probes the transport again (for a
   * transport whose session died, that is the re-bind it needs).
   *
   * @throws whatever the transport's probe threw
   */
  open(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#readiness === "closed") return Promise.reject(new TpmStateError("chip is closed"));
    if (this.#readiness === "ready") return Promise.resolve();
    if (this.#opening) return this.#opening;
    this.#setReadiness("probing");
    this.#reported = undefined;
    if (!this.#presenceUnsub && this.transport.onPresence) {
      this.#presenceUnsub = this.transport.onPresence((presence, reason) => this.#onPresence(presence, reason));
    }
    const p = (async () => {
      try {
        await this.transport.open?.({ signal: options.signal, clock: this.clock, locality: this.locality });
        if (this.#readiness !== "probing") return; // closed while probing
        const presence = this.transport.presence?.() ?? this.#reported?.presence;
        if (presence === "unusable") this.#setReadiness("unusable", this.#unusableReason(this.#reported?.presence === "unusable" ? this.#reported.reason : undefined));
        else this.#setReadiness("ready");
      } catch (e) {
        const state: Readiness = e instanceof ProbeDeferredError ? "deferred" : e instanceof TpmNotFoundError ? "absent" : "failed";
        this.#setReadiness(state, e);
        throw e;
      } finally {
        this.#opening = undefined;
      }
    })();
    this.#opening = p;
    return p;
  }

  /**
   * Resolves when the chip is `ready`. Waits through `idle`, `probing`, `deferred` and `unusable`
   * (present but not usable: it resolves when the transport reports it usable again); rejects at
   * once on `failed` or `closed`, with `TpmTimeoutError` after `timeoutMs` (its cause the reason
   * the chip is not ready), and with an AbortError when `signal` aborts. `timeoutMs` defaults to
   * {@link CHIP_WAIT_READY_MS} (120 s): no wait is unbounded.
   *
   * @throws {@link TpmArgumentError} (as a rejection) for a `timeoutMs` that is not a finite number ≥ 0
   */
  waitReady(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    if (this.#readiness === "ready") return Promise.resolve();
    let ms: number;
    try {
      ms = assertDuration(options.timeoutMs ?? CHIP_WAIT_READY_MS, "chip.waitReady", "timeoutMs");
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const done = (err?: unknown) => {
        unsub();
        timer?.clear();
        options.signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve();
      };
      const check = (r: Readiness) => {
        if (r === "ready") done();
        else if (r === "failed") done(new TpmStateError("chip failed", { cause: this.#readinessError }));
        else if (r === "closed") done(new TpmStateError("chip is closed"));
      };
      const onAbort = () => done(abortErrorFrom(options.signal!));
      const unsub = this.onReadiness(check);
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      timer = this.clock.setTimer(ms, () => done(new TpmTimeoutError(`waiting for the chip to be ready (state ${this.#readiness})`, ms, { cause: this.#readinessError })));
      check(this.#readiness);
    });
  }

  /**
   * Sends one raw command and returns the raw response (whatever its response code). Retries
   * TPM_RC_RETRY and TPM_RC_TESTING (not for SelfTest) with the kernel's back-off.
   *
   * @throws {@link TpmArgumentError} for a malformed or oversize command,
   *   {@link TpmTimeoutError} when the duration runs out, an AbortError on abort,
   *   {@link TpmFormatError} for a response whose size field lies, {@link TpmUnavailableError}
   *   at once (nothing sent) while the chip is `unusable`, {@link TpmStateError} when the chip is
   *   not open or failed, or the transport's error.
   */
  transmit(command: Uint8Array, options: TransmitOptions = {}): Promise<Uint8Array> {
    if (this.#readiness !== "ready") {
      if (this.#readiness === "idle") this.#setReadiness("ready");
      else return Promise.reject(this.#notReadyError());
    }
    if (!(command instanceof Uint8Array)) return Promise.reject(new TpmArgumentError("command must be a Uint8Array"));
    if (command.length < 10) return Promise.reject(new TpmArgumentError(`command of ${command.length} bytes is shorter than a TPM header (EINVAL)`));
    const size = ((command[2]! << 24) | (command[3]! << 16) | (command[4]! << 8) | command[5]!) >>> 0;
    if (size !== command.length) return Promise.reject(new TpmArgumentError(`command header says ${size} bytes but ${command.length} were given (EINVAL)`));
    if (size > this.#maxCommandSize) return Promise.reject(new TpmArgumentError(`command of ${size} bytes exceeds the maximum of ${this.#maxCommandSize} (E2BIG)`));
    let locality = this.locality;
    if (options.locality !== undefined) {
      try {
        locality = assertLocality(options.locality, "chip");
      } catch (e) {
        return Promise.reject(e);
      }
      const allowed = this.transport.localities ?? [0];
      if (!allowed.includes(locality)) return Promise.reject(new TpmArgumentError(`locality ${locality} is not offered by the ${this.transport.kind} transport (offers ${allowed.join(", ")})`));
    }
    if (options.timeoutMs !== undefined) {
      try {
        assertDuration(options.timeoutMs, "chip", "timeoutMs");
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortErrorFrom(signal));
    const commandCode = ((command[6]! << 24) | (command[7]! << 16) | (command[8]! << 8) | command[9]!) >>> 0;
    return new Promise<Uint8Array>((resolve, reject) => {
      const job: Job = {
        command,
        commandCode,
        locality,
        timeoutMs: options.timeoutMs ?? this.#duration(commandCode),
        retry: options.retry ?? true,
        signal,
        onAbort: undefined,
        resolve,
        reject,
        settled: false,
        deadline: Infinity,
        start: 0,
        retries: 0,
        delay: 0,
      };
      if (signal) {
        job.onAbort = () => this.#abortJob(job, abortErrorFrom(signal));
        signal.addEventListener("abort", job.onAbort, { once: true });
      }
      this.#queue.push(job);
      if (!this.#busy) this.#pump();
    });
  }

  #notReadyError(): TpmStateError {
    if (this.#readiness === "unusable") return new TpmUnavailableError(`${this.transport.kind}: the TPM is present but not usable now (nothing was sent)`, { cause: this.#readinessError });
    return new TpmStateError(`chip is ${this.#readiness}`, { cause: this.#readinessError });
  }

  /** Commands waiting behind the one in flight. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  #finish(job: Job, value: Uint8Array | undefined, error?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    if (job.onAbort) job.signal!.removeEventListener("abort", job.onAbort);
    if (error !== undefined) job.reject(error);
    else job.resolve(value!);
  }

  #abortJob(job: Job, reason: TpmkitError): void {
    if (job.settled) return;
    this.#finish(job, undefined, reason);
    if (this.#current === job) {
      this.#ac.abort(reason);
      try {
        const r = this.transport.cancel?.();
        if (r) (r as Promise<void>).catch(() => {});
      } catch {
        /* cancel is best effort */
      }
      void this.#graceAfterAbort(job);
    }
  }

  /**
   * Runs queued jobs one at a time. Written as callbacks rather than an async loop: a command
   * through the memory transport costs about a microsecond, and every async frame on this path
   * adds a promise and a microtask hop.
   */
  #pump(): void {
    this.#busy = true;
    this.#next();
  }

  #next(): void {
    while (this.#head < this.#queue.length) {
      const job = this.#queue[this.#head++]!;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (job.settled) continue;
      if (this.#readiness !== "ready") {
        this.#finish(job, undefined, this.#notReadyError());
        continue;
      }
      job.delay = this.#retry ? this.#retry.first : 0;
      this.#attempt(job);
      job.start = job.deadline - job.timeoutMs;
      return;
    }
    this.#queue.length = 0;
    this.#head = 0;
    this.#busy = false;
  }

  // Bound once: a command's completion allocates no closures.
  #onSent = (rsp: Uint8Array): void => this.#onResponse(this.#sending!, rsp);
  #onSendFailed = (e: unknown): void => {
    const job = this.#sending!;
    this.#current = undefined;
    if (!job.settled) {
      const err = wrapTransportError(e, this.transport.kind);
      this.#finish(job, undefined, err);
      this.#trace(job, err);
    } // else: already rejected with the abort/timeout reason
    this.#next();
  };
  /** The job whose send is outstanding (stays set after an abort until the transport settles). */
  #sending: Job | undefined;

  #attempt(job: Job): void {
    this.#sending = job;
    this.#startSend(job).then(this.#onSent, this.#onSendFailed);
  }

  #onResponse(job: Job, rsp: Uint8Array): void {
    this.#current = undefined;
    if (job.settled) return this.#next();
    try {
      checkResponse(rsp, this.transport.kind);
    } catch (e) {
      this.#finish(job, undefined, e);
      this.#trace(job, e);
      return this.#next();
    }
    const rc = ((rsp[6]! << 24) | (rsp[7]! << 16) | (rsp[8]! << 8) | rsp[9]!) >>> 0;
    if (this.#retry && job.delay <= this.#retry.max && this.#shouldRetry(job, rc)) {
      this.clock.sleep(job.delay, job.signal).then(
        () => {
          if (job.settled) return this.#next();
          job.delay *= 2;
          job.retries++;
          this.#attempt(job);
        },
        (e) => {
          this.#finish(job, undefined, e);
          this.#next();
        },
      );
      return;
    }
    this.#finish(job, rsp);
    if (commandChannel.hasSubscribers) this.#trace(job, undefined, rc);
    this.#next();
  }

  #shouldRetry(job: Job, rc: number): boolean {
    if (!job.retry || !this.#retry) return false;
    if (rc === TPM_RC.RETRY) return true;
    if (rc === TPM_RC.TESTING) return job.commandCode !== TPM_CC.SelfTest;
    if (rc === TPM_RC.YIELDED) return this.#retry.yielded;
    return false;
  }

  #trace(job: Job, error?: unknown, rc?: number): void {
    if (!commandChannel.hasSubscribers) return;
    const ev: ChipCommandEvent = { chip: this, commandCode: job.commandCode, locality: job.locality, retries: job.retries, durationMs: this.clock.now() - job.start };
    if (rc !== undefined) ev.rc = rc;
    if (error !== undefined) ev.error = error;
    commandChannel.publish(ev);
  }

  /** Starts one send of `job` on the transport (no await: the caller awaits the promise). */
  #startSend(job: Job): Promise<Uint8Array> {
    if (this.#ac.signal.aborted) this.#ac = new AbortController();
    job.deadline = this.clock.now() + job.timeoutMs;
    this.#current = job;
    this.#armWatchdog(job.deadline);
    try {
      // Promise.resolve: a transport (or a backend behind the memory transport) that returns a
      // plain value instead of a Promise must not break the chip; a value that is not bytes is a
      // TpmFormatError from checkResponse. For a native Promise this is the same object.
      return Promise.resolve(this.transport.send(job.command, { signal: this.#ac.signal, locality: job.locality, timeoutMs: job.timeoutMs, clock: this.clock }));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #armWatchdog(deadline: number): void {
    if (this.#watchdog && this.#watchdogAt <= deadline) return;
    this.#watchdog?.clear();
    this.#watchdogAt = deadline;
    this.#watchdog = this.clock.setTimer(Math.max(0, deadline - this.clock.now()), () => this.#onWatchdog());
  }

  #onWatchdog(): void {
    this.#watchdog = undefined;
    this.#watchdogAt = Infinity;
    const job = this.#current;
    if (!job || job.settled) return;
    if (this.clock.now() >= job.deadline) {
      const err = new TpmTimeoutError(`${this.transport.kind}: command 0x${job.commandCode.toString(16)}`, job.timeoutMs);
      this.#abortJob(job, err);
    } else {
      this.#armWatchdog(job.deadline);
    }
  }

  /** After an abort, the transport gets `cancelGraceMs` to settle; if it does not, the chip fails. */
  async #graceAfterAbort(job: Job): Promise<void> {
    const grace = this.#cancelGraceMs;
    await this.clock.sleep(grace);
    if (this.#current === job && (this.#readiness === "ready" || this.#readiness === "unusable")) {
      this.#setReadiness("failed", new TpmTransportError(`${this.transport.kind} transport did not settle within ${grace} ms after cancel`));
      this.#current = undefined;
      // fail everything queued: the transport may still deliver a stale reply
      while (this.#head < this.#queue.length) this.#finish(this.#queue[this.#head++]!, undefined, new TpmStateError("chip failed", { cause: this.#readinessError }));
    }
  }

  /** Fails queued calls, closes the transport. Idempotent. */
  async close(): Promise<void> {
    if (this.#readiness === "closed") return;
    this.#setReadiness("closed");
    this.#presenceUnsub?.();
    this.#presenceUnsub = undefined;
    this.#watchdog?.clear();
    this.#watchdog = undefined;
    const err = new TpmStateError("chip is closed");
    while (this.#head < this.#queue.length) this.#finish(this.#queue[this.#head++]!, undefined, err);
    if (this.#current) this.#abortJob(this.#current, err);
    await this.transport.close?.();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}


/** Checks that a response is one whole TPM response: ≥ 10 bytes, a known tag, size field = length. */
export function checkResponse(rsp: unknown, kind: string): asserts rsp is Uint8Array {
  if (!(rsp instanceof Uint8Array)) throw new TpmFormatError(`${kind} transport returned ${typeof rsp}, not bytes`);
  if (rsp.length < 10) throw new TpmFormatError(`${kind}: response of ${rsp.length} bytes is shorter than a TPM header`);
  const size = ((rsp[2]! << 24) | (rsp[3]! << 16) | (rsp[4]! << 8) | rsp[5]!) >>> 0;
  if (size !== rsp.length) throw new TpmFormatError(`${kind}: response size field says ${size} bytes, ${rsp.length} arrived`);
  const tag = (rsp[0]! << 8) | rsp[1]!;
  if (tag !== 0x8001 && tag !== 0x8002 && tag !== 0x00c4) throw new TpmFormatError(`${kind}: response tag 0x${tag.toString(16)} is not a TPM response tag`);
}

function wrapTransportError(e: unknown, kind: string): unknown {
  if (e instanceof TpmkitError) return e;
  if (e instanceof Error && e.name === "AbortError") return new TpmAbortError(undefined, { cause: e });
  return new TpmTransportError(`${kind} transport failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
