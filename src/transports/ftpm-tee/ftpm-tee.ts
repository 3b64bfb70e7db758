/**
 * The fTPM-over-TEE transport: what Linux drivers/char/tpm/tpm_ftpm_tee.c does, over any
 * `TeeDevice` (the host's OP-TEE model or one guest's view through a mediator).
 *
 * Probe (ftpm_tee_probe): open a client context (no TEE yet → -EPROBE_DEFER), open a session to
 * the fTPM TA with login PUBLIC and no parameters (a failure is logged as
 * "tee_client_open_session failed, err=%x" and the probe returns -EINVAL, with no retry), then
 * allocate one 8 KiB shared-memory block. Send (ftpm_tee_tpm_op_send): the command is copied to
 * offset 0 of the zeroed block and SUBMIT_COMMAND is invoked with a MEMREF_INPUT (offset 0, the
 * command's length) and a MEMREF_INOUT (offset 4096, 4096 bytes); the response length is read
 * from the response header at offset 4096 and must lie in 10..4096. Where the kernel hands a
 * nonzero TEE result back raw (as a positive int), this transport rejects with a `TeeError`
 * carrying that code and its origin. Remove
 * (ftpm_tee_remove): free the shared memory, close the session, close the context.
 *
 * Present vs usable: the TA keeps the TPM's NV in secure storage, which with REE FS or legacy
 * RPMB routing is reached through tee-supplicant. While the supplicant is not running the
 * transport reports `unusable` (the session is open, `/dev/tpm0` exists, but a command would
 * fail with COMMUNICATION inside the TA and kill it). After the TA died (TARGET_DEAD) the session
 * is dead for good: the transport stays `unusable` until it is opened again, which is what
 * re-binding the kernel driver does (the tee-supplicant systemd unit's
 * `ExecStop=modprobe -r tpm_ftpm_tee` exists so that the driver is unbound before the
 * supplicant goes; optee_client, tee-supplicant@.service).
 *
 * @packageDocumentation
 */
import { ProbeDeferredError, TeeError, TpmArgumentError, TpmFormatError, TpmStateError, TpmTimeoutError, TpmTransportError, TpmUnavailableError, TpmkitError, abortErrorFrom } from "../../errors/index.js";
import { systemClock, type Clock, type TimerHandle } from "../../core/clock.js";
import type { OpenContext, SendOptions, Transport, TransportPresence } from "../../core/transport.js";
import { TEE_LOGIN, TEE_MEM, TEE_ORIGIN, TEE_PARAM_TYPE, TEE_RESULT, teeOriginName, teeResultName } from "../../bus/tee/constants.js";
import type { TeeClientKind, TeeContext, TeeDevice, TeeDeviceStatus, TeeOperation, TeeSession, TeeSharedMemory } from "../../bus/tee/client.js";

import { FTPM_MAX_BUFFER, FTPM_TA_CMD, FTPM_TA_UUID } from "../../bus/tee/constants.js";
const FTPM_MAX_BUFFER_SIZE = FTPM_MAX_BUFFER;
/** The one shared-memory block the driver allocates: command at 0, response at 4096. */
export const FTPM_SHM_SIZE = 2 * FTPM_MAX_BUFFER_SIZE;
/** Default {@link FtpmTeeOptions.closeTimeoutMs}: 1000 ms. */
export const FTPM_TEE_CLOSE_TIMEOUT_MS = 1000;
/** Default {@link FtpmTeeOptions.openTimeoutMs}: 30000 ms. */
export const FTPM_TEE_OPEN_TIMEOUT_MS = 30_000;

const RSP_OFFSET = FTPM_MAX_BUFFER_SIZE;
const HEADER_SIZE = 10;

/** Options of {@link ftpmTee}. */
export interface FtpmTeeOptions {
  /** The TEE to open the fTPM in: an `OpTee`, or a guest of a `TeeMediator`. */
  tee: TeeDevice;
  /**
   * `"kernel"` (default): an in-kernel client like tpm_ftpm_tee (supp_nowait: a request that
   * needs tee-supplicant fails at once with COMMUNICATION when none runs). `"user"`: a libteec
   * client; such a request waits for the supplicant, bounded by the open's signal (and
   * `openTimeoutMs`) at open and by the chip's per-command signal for commands.
   */
  client?: TeeClientKind;
  /**
   * Login method for the session (TEE_LOGIN.*). Default PUBLIC, as Linux tpm_ftpm_tee; U-Boot's
   * tpm2_ftpm_tee (and a 2023 Linux proposal) use REE_KERNEL.
   */
  login?: number;
  /** Clock for the open and close bounds. Default: the chip's clock (from `open`), else the system clock. */
  clock?: Clock;
  /**
   * Whether the TA needs tee-supplicant to serve commands. Default true: the fTPM's NV lives in
   * secure storage reached through the supplicant with REE FS or legacy RPMB routing. False for
   * RPMB with in-kernel routing, or an early TA whose storage makes no supplicant RPCs. While it
   * is true and the supplicant is not running, the transport reports `unusable`.
   */
  needsSupplicant?: boolean;
  /**
   * Bound on `open` (context and session), ms. A user client waits there for the supplicant
   * (to load an REE TA or to read NV in the TA's create entry point); the open's signal bounds it
   * too. Default {@link FTPM_TEE_OPEN_TIMEOUT_MS}.
   */
  openTimeoutMs?: number;
  /**
   * Bound on `close`, ms: a kernel client never waits for the supplicant to close (the TEE
   * answers at once), a user client may, so `close` stops waiting after this long, abandons the
   * session and context, and resolves (reported by {@link FtpmTeeTransport.state}). Default
   * {@link FTPM_TEE_CLOSE_TIMEOUT_MS}.
   */
  closeTimeoutMs?: number;
}

/** What {@link FtpmTeeTransport.state} reports. */
export interface FtpmTeeState {
  /** A session is open (between a successful `open` and `close`). */
  open: boolean;
  /** The session died (TARGET_DEAD): unusable until the transport is opened again. */
  sessionDead: boolean;
  /** The last `close` gave up waiting after `closeTimeoutMs`. */
  closeTimedOut: boolean;
  /** What {@link FtpmTeeTransport.presence} says. */
  presence: TransportPresence;
  /** Why the transport is not `present`, if it is not. */
  reason: unknown;
}

/** The transport returned by {@link ftpmTee}. */
export interface FtpmTeeTransport extends Transport {
  readonly kind: "ftpm-tee";
  /** The TEE it opens the fTPM in. */
  readonly tee: TeeDevice;
  /** The client kind its context was opened as. */
  readonly client: TeeClientKind;
  readonly maxCommandSize: number;
  /**
   * Probes (ftpm_tee_probe). On an open transport, a re-bind: the old shared memory, session and
   * context are released first (ftpm_tee_remove), then a new session is opened.
   */
  open(ctx: OpenContext): Promise<void>;
  /** Releases the shared memory, closes the session and the context (ftpm_tee_remove), bounded by `closeTimeoutMs`. Idempotent. */
  close(): Promise<void>;
  presence(): TransportPresence;
  onPresence(fn: (presence: TransportPresence, reason?: unknown) => void): () => void;
  /** Session and presence state, for tests and diagnostics. */
  state(): FtpmTeeState;
}

/**
 * A transport to the firmware TPM trusted application in a TEE, with the Linux tpm_ftpm_tee
 * driver's semantics (see the module comment): `ProbeDeferredError` while the TEE is not there,
 * `TeeError` with the TEE's code and origin when the session cannot be opened (e.g. 0xffff000c
 * when an REE-loaded TA cannot be loaded without tee-supplicant, 0xffff3024 TARGET_DEAD when the
 * TA dies on its storage), one 8 KiB shared buffer, and presence `unusable` while the supplicant
 * the TA's storage needs is not running or after the TA died.
 *
 * @param options - the TEE, the client kind and login
 * @returns a Transport for `Tpm.open` / `new Chip`
 * @example
 * ```ts
 * const tpm = await Tpm.open(ftpmTee({ tee }), { signal: AbortSignal.timeout(5000) });
 * tpm.chip.readiness; // "ready", or "unusable" while tee-supplicant is stopped
 * ```
 */
export function ftpmTee(options: FtpmTeeOptions): FtpmTeeTransport {
  return new FtpmTee(checkOptions(options));
}

interface Checked {
  tee: TeeDevice;
  client: TeeClientKind;
  login: number;
  clock: Clock | undefined;
  needsSupplicant: boolean;
  openTimeoutMs: number;
  closeTimeoutMs: number;
}

function checkOptions(options: FtpmTeeOptions): Checked {
  const title = "ftpmTee";
  if (typeof options !== "object" || options === null) throw new TpmArgumentError(`${title}: options must be an object with a tee`);
  const tee = options.tee as Partial<TeeDevice> | undefined;
  if (typeof tee !== "object" || tee === null || typeof tee.openContext !== "function" || typeof tee.status !== "function" || typeof tee.onStatus !== "function") {
    throw new TpmArgumentError(`${title}: options.tee must be a TeeDevice (openContext, status, onStatus)`);
  }
  const client = options.client ?? "kernel";
  if (client !== "kernel" && client !== "user") throw new TpmArgumentError(`${title}: options.client must be "kernel" or "user", got ${String(client)}`);
  const login = options.login ?? TEE_LOGIN.PUBLIC;
  if (!Number.isInteger(login) || login < 0 || login > 0xffffffff) throw new TpmArgumentError(`${title}: options.login must be a u32 login method (TEE_LOGIN), got ${String(login)}`);
  const needsSupplicant = options.needsSupplicant ?? true;
  if (typeof needsSupplicant !== "boolean") throw new TpmArgumentError(`${title}: options.needsSupplicant must be a boolean`);
  const ms = (v: unknown, name: string, dflt: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) throw new TpmArgumentError(`${title}: options.${name} must be a finite number of ms >= 0, got ${String(v)}`);
    return v;
  };
  const clock = options.clock;
  if (clock !== undefined && (typeof clock !== "object" || clock === null || typeof clock.setTimer !== "function" || typeof clock.now !== "function")) {
    throw new TpmArgumentError(`${title}: options.clock must be a Clock`);
  }
  return {
    tee: tee as TeeDevice,
    client,
    login: login >>> 0,
    clock,
    needsSupplicant,
    openTimeoutMs: ms(options.openTimeoutMs, "openTimeoutMs", FTPM_TEE_OPEN_TIMEOUT_MS),
    closeTimeoutMs: ms(options.closeTimeoutMs, "closeTimeoutMs", FTPM_TEE_CLOSE_TIMEOUT_MS),
  };
}

interface Bound {
  context: TeeContext;
  session: TeeSession;
  shm: TeeSharedMemory;
  unsubStatus: () => void;
}

class FtpmTee implements FtpmTeeTransport {
  readonly kind = "ftpm-tee" as const;
  readonly maxCommandSize = FTPM_MAX_BUFFER_SIZE;
  readonly tee: TeeDevice;
  readonly client: TeeClientKind;
  readonly #o: Checked;
  #clock: Clock;
  #bound: Bound | undefined;
  #dead: TeeError | undefined;
  #deferred = false;
  #closeTimedOut = false;
  #subs = new Set<(p: TransportPresence, reason?: unknown) => void>();
  #last: { presence: TransportPresence; reason: unknown } = { presence: "absent", reason: undefined };

  constructor(o: Checked) {
    this.#o = o;
    this.tee = o.tee;
    this.client = o.client;
    this.#clock = o.clock ?? systemClock;
  }

  presence(): TransportPresence {
    return this.#compute().presence;
  }

  onPresence(fn: (presence: TransportPresence, reason?: unknown) => void): () => void {
    this.#subs.add(fn);
    return () => {
      this.#subs.delete(fn);
    };
  }

  state(): FtpmTeeState {
    const c = this.#compute();
    return { open: this.#bound !== undefined, sessionDead: this.#dead !== undefined, closeTimedOut: this.#closeTimedOut, presence: c.presence, reason: c.reason };
  }

  #compute(): { presence: TransportPresence; reason: unknown } {
    if (!this.#bound) return { presence: this.#deferred ? "deferred" : "absent", reason: undefined };
    if (this.#dead) return { presence: "unusable", reason: this.#dead };
    let status: TeeDeviceStatus;
    try {
      status = this.tee.status();
    } catch (e) {
      return { presence: "unusable", reason: new TpmUnavailableError(`${this.kind}: the TEE's status cannot be read`, { cause: e }) };
    }
    if (!status.present) return { presence: "unusable", reason: new TpmUnavailableError(`${this.kind}: the TEE ${this.tee.kind} is gone (its session cannot serve commands)`) };
    if (this.#o.needsSupplicant && status.supplicant !== "running") {
      return {
        presence: "unusable",
        reason: new TpmUnavailableError(`${this.kind}: tee-supplicant is ${status.supplicant}; the fTPM's NV storage is reached through it, so the TPM cannot serve commands until it runs`),
      };
    }
    return { presence: "present", reason: undefined };
  }

  /** Reports the presence to subscribers when it changed (always with `force`). */
  #report(force = false): void {
    const c = this.#compute();
    if (!force && c.presence === this.#last.presence && (c.presence === "present" || c.reason === this.#last.reason || sameReason(c.reason, this.#last.reason))) return;
    this.#last = c;
    for (const fn of [...this.#subs]) {
      try {
        fn(c.presence, c.reason);
      } catch {
        /* a subscriber's error is its own */
      }
    }
  }

  async open(ctx: OpenContext): Promise<void> {
    if (ctx.clock && !this.#o.clock) this.#clock = ctx.clock;
    if (ctx.signal?.aborted) throw abortErrorFrom(ctx.signal);
    // Opening an open transport is a re-bind: ftpm_tee_remove, then ftpm_tee_probe.
    if (this.#bound) await this.#teardown();
    this.#dead = undefined;
    this.#closeTimedOut = false;
    let status: TeeDeviceStatus;
    try {
      status = this.tee.status();
    } catch (e) {
      throw new TpmTransportError(`${this.kind}: the TEE's status cannot be read`, { cause: e });
    }
    if (!status.present) {
      this.#deferred = true;
      this.#report();
      throw new ProbeDeferredError(`TEE device ${this.tee.kind}`);
    }
    // One bound for the whole probe: the caller's signal and openTimeoutMs on the clock.
    const ac = new AbortController();
    const outer = ctx.signal;
    const onOuter = () => ac.abort(outer!.reason);
    outer?.addEventListener("abort", onOuter, { once: true });
    const timer: TimerHandle = this.#clock.setTimer(this.#o.openTimeoutMs, () => ac.abort(new TpmTimeoutError(`${this.kind}: opening the fTPM session`, this.#o.openTimeoutMs)));
    const signal = ac.signal;
    let context: TeeContext | undefined;
    let session: TeeSession | undefined;
    try {
      try {
        context = await this.tee.openContext({ client: this.#o.client, signal });
      } catch (e) {
        if (signal.aborted) throw abortErrorFrom(signal);
        // tee_client_open_context() → -ENOENT (no TEE driver yet) → ftpm_tee_probe returns -EPROBE_DEFER
        if (e instanceof TeeError && e.teeCode === TEE_RESULT.ITEM_NOT_FOUND) {
          this.#deferred = true;
          this.#report();
          throw new ProbeDeferredError(`TEE device ${this.tee.kind}`, { cause: e });
        }
        throw wrap(e, `${this.kind}: tee_client_open_context failed`);
      }
      this.#deferred = false;
      try {
        // ftpm_tee_probe: PUBLIC login, no parameters
        session = await context.openSession(FTPM_TA_UUID, { login: this.#o.login, signal });
      } catch (e) {
        if (signal.aborted) throw abortErrorFrom(signal);
        if (e instanceof TeeError) {
          // "tee_client_open_session failed, err=%x" and -EINVAL; no retry
          throw new TeeError(`${this.kind}: tee_client_open_session failed, err=${hex(e.teeCode)} (${teeResultName(e.teeCode)}, origin ${teeOriginName(e.origin)})`, e.teeCode, e.origin, { cause: e });
        }
        throw wrap(e, `${this.kind}: tee_client_open_session failed`);
      }
      let shm: TeeSharedMemory;
      try {
        shm = context.allocateSharedMemory(FTPM_SHM_SIZE, TEE_MEM.INPUT | TEE_MEM.OUTPUT);
      } catch (e) {
        throw wrap(e, `${this.kind}: tee_shm_alloc_kernel_buf(${FTPM_SHM_SIZE}) failed`);
      }
      if (!(shm.buffer instanceof Uint8Array) || shm.buffer.length < FTPM_SHM_SIZE) {
        throw new TpmTransportError(`${this.kind}: the TEE gave ${shm.buffer?.length ?? 0} bytes of shared memory, ${FTPM_SHM_SIZE} were asked`);
      }
      const unsubStatus = this.tee.onStatus(() => this.#report());
      this.#bound = { context, session, shm, unsubStatus };
      this.#report(true);
    } catch (e) {
      if (!this.#bound) await this.#release(context, session, undefined);
      throw e;
    } finally {
      timer.clear();
      outer?.removeEventListener("abort", onOuter);
    }
  }

  async send(command: Uint8Array, options: SendOptions): Promise<Uint8Array> {
    const b = this.#bound;
    if (!b) throw new TpmStateError(`${this.kind}: not open (no fTPM session)`);
    // ftpm_tee_tpm_op_send: a command over MAX_COMMAND_SIZE is -EIO
    if (command.length > FTPM_MAX_BUFFER_SIZE) throw new TpmTransportError(`${this.kind}: command of ${command.length} bytes exceeds the fTPM's ${FTPM_MAX_BUFFER_SIZE}`, { errno: "EIO" });
    const buf = b.shm.buffer;
    buf.fill(0, 0, FTPM_SHM_SIZE);
    buf.set(command, 0);
    const op: TeeOperation = {
      params: [
        { type: TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT, shm: b.shm, offset: 0, size: command.length },
        { type: TEE_PARAM_TYPE.MEMREF_PARTIAL_INOUT, shm: b.shm, offset: RSP_OFFSET, size: FTPM_MAX_BUFFER_SIZE },
        { type: TEE_PARAM_TYPE.NONE },
        { type: TEE_PARAM_TYPE.NONE },
      ],
    };
    try {
      await b.session.invoke(FTPM_TA_CMD.SUBMIT_COMMAND, op, { signal: options.signal });
    } catch (e) {
      if (options.signal.aborted) throw abortErrorFrom(options.signal);
      if (e instanceof TeeError) {
        const err = new TeeError(`${this.kind}: SUBMIT_COMMAND failed, ${teeResultName(e.teeCode)} (${hex(e.teeCode)}, origin ${teeOriginName(e.origin)})`, e.teeCode, e.origin, { cause: e });
        if (e.teeCode === TEE_RESULT.TARGET_DEAD && this.#bound === b && !this.#dead) {
          this.#dead = new TeeError(
            `${this.kind}: the fTPM TA died (TARGET_DEAD); the session is dead until the transport is opened again (re-bind the driver: modprobe -r tpm_ftpm_tee before stopping tee-supplicant)`,
            e.teeCode,
            e.origin,
            { cause: e },
          );
          this.#report();
        }
        throw err;
      }
      throw wrap(e, `${this.kind}: SUBMIT_COMMAND failed`);
    }
    if (this.#bound !== b) throw new TpmStateError(`${this.kind}: closed while the command ran`);
    // The response length comes from its header (SUBMIT does not write the size back); 10..4096.
    const len = ((buf[RSP_OFFSET + 2]! << 24) | (buf[RSP_OFFSET + 3]! << 16) | (buf[RSP_OFFSET + 4]! << 8) | buf[RSP_OFFSET + 5]!) >>> 0;
    if (len < HEADER_SIZE || len > FTPM_MAX_BUFFER_SIZE) {
      throw new TpmFormatError(`${this.kind}: response header says ${len} bytes; it must be ${HEADER_SIZE}..${FTPM_MAX_BUFFER_SIZE} (EIO)`);
    }
    return buf.slice(RSP_OFFSET, RSP_OFFSET + len);
  }

  async close(): Promise<void> {
    if (!this.#bound) return;
    await this.#teardown();
    this.#deferred = false;
    this.#dead = undefined;
    this.#report();
  }

  /** ftpm_tee_remove: free the shared memory, close the session, close the context (bounded). */
  async #teardown(): Promise<void> {
    const b = this.#bound;
    if (!b) return;
    this.#bound = undefined;
    b.unsubStatus();
    await this.#release(b.context, b.session, b.shm);
  }

  async #release(context: TeeContext | undefined, session: TeeSession | undefined, shm: TeeSharedMemory | undefined): Promise<void> {
    if (shm && context) {
      try {
        context.releaseSharedMemory(shm);
      } catch {
        /* released with the context below */
      }
    }
    const steps = (async () => {
      if (session) await session.close().catch(() => {});
      if (context) await context.close().catch(() => {});
    })();
    let timer: TimerHandle | undefined;
    const timedOut = await Promise.race([
      steps.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = this.#clock.setTimer(this.#o.closeTimeoutMs, () => resolve(true));
      }),
    ]);
    timer?.clear();
    if (timedOut) this.#closeTimedOut = true;
  }
}

function hex(code: number): string {
  return (code >>> 0).toString(16);
}

function sameReason(a: unknown, b: unknown): boolean {
  return a instanceof Error && b instanceof Error && a.constructor === b.constructor && a.message === b.message;
}

/** Errors out of the TEE model become tpmkit errors; a `TeeError` keeps its code and origin. */
function wrap(e: unknown, what: string): TpmkitError {
  if (e instanceof TeeError) return new TeeError(`${what}: ${teeResultName(e.teeCode)} (${hex(e.teeCode)}, origin ${teeOriginName(e.origin)})`, e.teeCode, e.origin, { cause: e });
  if (e instanceof TpmkitError) return e;
  return new TeeError(`${what}: ${e instanceof Error ? e.message : String(e)}`, TEE_RESULT.GENERIC, TEE_ORIGIN.COMMS, { cause: e });
}
