/**
 * The lifecycle every device model follows: the TIS and CRB models today, FF-A partitions and TEE
 * trusted applications next. A device model sits in front of a {@link TpmBackend} (the emulator
 * behind the interface) and goes through the phases of {@link DevicePhase}; the model's register
 * window (or call interface) behaves as that phase says, and each phase change is published as a
 * {@link DevicePhaseEvent} on the model's diagnostics channel, next to its own events.
 *
 * The contract, in short:
 *
 * - The constructor powers the model up: it calls `backend.start()` when the backend has one.
 *   A backend without `start()` (or whose `start()` returns no promise) is running at once.
 * - `ready` resolves when the model is running and rejects with the backend's start error.
 * - `start()` waits for the outcome and never rejects: it resolves with the phase. On a stopped
 *   model it powers up again first.
 * - `reset()` is a machine reset: the command in flight is forgotten, registers go back to their
 *   reset values and the backend is started again. It never rejects either.
 * - `killBackend(cause)` is the emulator dying: the model fails for good (until `reset()`).
 * - `stop()` (and `await using`) powers the model off; `start()` or `reset()` powers it up again.
 * - While the model is not running it answers as the hardware it models does when its backend is
 *   gone: QEMU's TIS reads 0 for every register and ignores writes (QEMU commit "tpm_tis: Return 0
 *   for every register in case of failure mode", pull "tpm 2017/11/15").
 *
 * Node.js documentation, "Diagnostics Channel", for the channels.
 *
 * @packageDocumentation
 */
import type { Clock } from "../core/clock.js";
import type { TpmBackend } from "../core/transport.js";
import { traceChannel, type TraceChannel } from "../core/trace.js";
import { TpmStateError } from "../errors/index.js";

/**
 * Where a device model is in its life.
 *
 * - `"starting"`: the backend's `start()` has not settled; the model reads as absent.
 * - `"running"`: the backend started; the model answers as the hardware does.
 * - `"failed"`: the backend failed to start or died ({@link DeviceModel.killBackend}); the model
 *   reads as absent until {@link DeviceModel.reset}.
 * - `"stopped"`: powered off by {@link DeviceModel.stop}; reads as absent until started again.
 */
export type DevicePhase = "starting" | "running" | "failed" | "stopped";

/** The event every device model publishes when its phase changes. */
export interface DevicePhaseEvent {
  type: "phase";
  from: DevicePhase;
  to: DevicePhase;
  /** Why (the backend's start error, the cause given to `killBackend`); absent otherwise. */
  cause?: unknown;
}

/** Fields every event a device model publishes carries, besides its `type`. */
export interface DeviceEventSource<D> {
  /** The model that published the event (several models may share one channel). */
  device: D;
  /** The model's clock time of the event, in ms. */
  time: number;
}

/**
 * The events of a device model: its own discriminated union `E` (each member with a `type`) plus
 * {@link DevicePhaseEvent}, each with the {@link DeviceEventSource} fields.
 */
export type DeviceEvent<D, E extends { type: string }> = (E | DevicePhaseEvent) & DeviceEventSource<D>;

/** The part of a device model's state snapshot every model has. */
export interface DeviceState {
  /** See {@link DevicePhase}. */
  readonly phase: DevicePhase;
  /** The backend's last error (a failed start, a failed command, a `killBackend` cause). */
  readonly lastError?: unknown;
}

/**
 * What "a device model" means to the rest of tpmkit: implemented by `TisDevice` and `CrbDevice`,
 * and by the FF-A partition and TEE trusted application models to come.
 */
export interface DeviceModel<S extends DeviceState = DeviceState> {
  /** Short name of the interface modelled: "tis", "crb", ... */
  readonly kind: string;
  /** The diagnostics channel the model publishes its events on, or `undefined` when it publishes none. */
  readonly channel: string | undefined;
  /** A snapshot of the model's state (a copy: changing it changes nothing). */
  readonly state: S;
  /**
   * Resolves once the backend started (the phase is "running"); rejects with the backend's start
   * error when it failed to start, or with a {@link TpmStateError} when the model was killed or
   * stopped before it ran. A new promise after every `reset()` (and a `start()` of a stopped
   * model); one taken earlier follows the newer start's outcome.
   */
  readonly ready: Promise<void>;
  /**
   * Waits for the start in progress to settle, after powering the model up if it was stopped.
   * Never rejects.
   *
   * @returns The phase after the start settled: "running", or "failed" (see `state.lastError`).
   */
  start(): Promise<DevicePhase>;
  /**
   * Machine reset: forgets the command in flight, restores the reset values and starts the
   * backend again. Never rejects.
   *
   * @returns The phase after the backend's start settled.
   */
  reset(): Promise<DevicePhase>;
  /**
   * The backend dies (the emulator process exits): the model fails (reads as absent), a command
   * in flight never completes, until `reset()`.
   *
   * @param cause - Why, for `state.lastError` and the phase event.
   */
  killBackend(cause?: unknown): void;
  /** Powers the model off: the command in flight is forgotten and the model reads as absent. */
  stop(): Promise<void>;
  /** Same as {@link DeviceModel.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@link DeviceLifecycle}. */
export interface DeviceLifecycleOptions<D> {
  /** The model the events name as their `device`. */
  device: D;
  /** Short name for errors: "tis", "crb", ... */
  kind: string;
  /** The backend whose `start()` the lifecycle calls. */
  backend: TpmBackend;
  /** Clock for event times. */
  clock: Clock;
  /** Diagnostics channel name, or `false` for none. */
  channel: string | false;
  /** Runs on every phase change, before the event is published (the model applies its reset values). */
  onPhase?: (to: DevicePhase, from: DevicePhase) => void;
}

const noop = () => {};

/**
 * The shared machinery behind {@link DeviceModel}: the phase state machine, the start attempts
 * with their `ready` promises, and event publishing. A device model holds one and delegates to it;
 * what "forget the command in flight" and "reset values" mean stays in the model.
 *
 * @typeParam D - The model class (for the events' `device` field).
 * @typeParam E - The model's own events.
 */
export class DeviceLifecycle<D, E extends { type: string }> {
  /** The diagnostics channel name, or undefined. */
  readonly channelName: string | undefined;
  readonly #device: D;
  readonly #kind: string;
  readonly #backend: TpmBackend;
  readonly #clock: Clock;
  readonly #channel: TraceChannel | undefined;
  readonly #onPhase: ((to: DevicePhase, from: DevicePhase) => void) | undefined;
  #phase: DevicePhase = "starting";
  #lastError: unknown;
  /** Start attempt counter: a start that settles after a newer attempt (or a kill) is ignored. */
  #attempt = 0;
  #ready: Promise<void> = Promise.resolve();
  #settle: { resolve: () => void; reject: (e: unknown) => void } | undefined;

  /** @param options - The model, its backend, clock, channel and phase hook. */
  constructor(options: DeviceLifecycleOptions<D>) {
    this.#device = options.device;
    this.#kind = options.kind;
    this.#backend = options.backend;
    this.#clock = options.clock;
    this.channelName = options.channel === false ? undefined : options.channel;
    this.#channel = this.channelName === undefined ? undefined : traceChannel(this.channelName);
    this.#onPhase = options.onPhase;
  }

  /** The current phase. */
  get phase(): DevicePhase {
    return this.#phase;
  }

  /** True in phase "running". */
  get running(): boolean {
    return this.#phase === "running";
  }

  /** The backend's last error, as recorded by {@link DeviceLifecycle.recordError} or a failed start. */
  get lastError(): unknown {
    return this.#lastError;
  }

  /** See {@link DeviceModel.ready}. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** True when somebody listens on the channel (build an event only then). */
  get hasSubscribers(): boolean {
    return this.#channel?.hasSubscribers === true;
  }

  /**
   * Publishes an event with the model and the time added, when somebody listens.
   *
   * @param event - The model's event.
   */
  emit(event: E | DevicePhaseEvent): void {
    const ch = this.#channel;
    if (ch?.hasSubscribers) ch.publish({ ...event, device: this.#device, time: this.#clock.now() });
  }

  /** @param e - The backend's error, for `state.lastError`. */
  recordError(e: unknown): void {
    this.#lastError = e;
  }

  /**
   * Starts a new attempt: calls `backend.start()` and moves to "starting" (or straight to
   * "running" when there is nothing to wait for). The previous attempt's outcome is ignored.
   */
  powerUp(): void {
    const attempt = ++this.#attempt;
    // a `ready` taken before this attempt follows this attempt's outcome
    const previous = this.#settle;
    this.#settle = undefined;
    let started: unknown;
    try {
      started = this.#backend.start?.();
    } catch (e) {
      started = Promise.reject(e);
    }
    if (!isThenable(started)) {
      this.#ready = Promise.resolve();
      this.#setPhase("running");
      previous?.resolve();
      return;
    }
    this.#ready = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    this.#ready.catch(noop);
    if (previous) this.#ready.then(previous.resolve, previous.reject);
    this.#setPhase("starting");
    Promise.resolve(started).then(
      () => {
        if (attempt !== this.#attempt) return;
        this.#setPhase("running");
        this.#resolvePending();
      },
      (e: unknown) => {
        if (attempt !== this.#attempt) return;
        this.#lastError = e;
        this.#setPhase("failed", e);
        this.#rejectPending(e);
      },
    );
  }

  /**
   * Waits for the current attempt. Never rejects. (A stopped model powers up through its own
   * reset first: the lifecycle does not know its reset values.)
   *
   * @returns The phase once the attempt settled.
   */
  async settled(): Promise<DevicePhase> {
    await this.#ready.catch(noop);
    return this.#phase;
  }

  /**
   * The backend died: phase "failed" with `cause`; a pending start is abandoned.
   *
   * @param cause - Why.
   */
  fail(cause?: unknown): void {
    this.#attempt++;
    this.#lastError = cause;
    this.#setPhase("failed", cause);
    this.#rejectPending(new TpmStateError(`${this.#kind} device: the backend died before it started`, { cause }));
  }

  /** Powered off: phase "stopped"; a pending start is abandoned. */
  stop(): void {
    this.#attempt++;
    this.#setPhase("stopped");
    this.#rejectPending(new TpmStateError(`${this.#kind} device: stopped before the backend started`));
  }

  #resolvePending(): void {
    const s = this.#settle;
    this.#settle = undefined;
    s?.resolve();
  }

  #rejectPending(e: unknown): void {
    const s = this.#settle;
    this.#settle = undefined;
    s?.reject(e);
  }

  #setPhase(to: DevicePhase, cause?: unknown): void {
    const from = this.#phase;
    this.#phase = to;
    this.#onPhase?.(to, from);
    if (from !== to) this.emit(cause === undefined ? { type: "phase", from, to } : { type: "phase", from, to, cause });
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === "object" || typeof v === "function") && v !== null && typeof (v as { then?: unknown }).then === "function";
}
