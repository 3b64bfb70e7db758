/**
 * tee-supplicant: the normal-world daemon that serves OP-TEE's RPC requests. It attaches to the
 * TEE's supplicant port (opening `/dev/teepriv0`), loads REE TAs from its TA directory, keeps the
 * REE FS files, forwards legacy RPMB frames to the eMMC and allocates RPC payload buffers.
 *
 * Sources (optee_client tee-supplicant/src):
 * - tee_supplicant.c `process_one_request`: LOAD_TA, FS, RPMB, SHM_ALLOC, SHM_FREE served, any
 *   other id answered TEEC_ERROR_NOT_SUPPORTED ("Cmd [0x..] not supported"); `load_ta`: no
 *   `<uuid>.ta` → TEEC_ERROR_ITEM_NOT_FOUND ("TA not found"); `process_alloc`: allocation failure →
 *   TEEC_ERROR_OUT_OF_MEMORY; `process_free`: an unknown id → TEEC_ERROR_BAD_PARAMETERS.
 * - tee_supp_fs.c `errno_to_teec`: ENOSPC → TEEC_ERROR_STORAGE_NO_SPACE, ENOENT →
 *   TEEC_ERROR_ITEM_NOT_FOUND, any other errno → TEEC_ERROR_GENERIC; `ree_fs_new_remove`
 *   (unlinkat ENOENT → ITEM_NOT_FOUND); `ree_fs_new_rename` (ENOENT → ITEM_NOT_FOUND);
 *   `tee_supp_fs_process`: an unknown sub-operation → TEEC_ERROR_BAD_PARAMETERS.
 * - rpmb.c `rpmb_process_request_unlocked`: `/dev/mmcblk<id>rpmb` that cannot be opened
 *   (`mmc_rpmb_fd` < 0) → TEEC_ERROR_BAD_PARAMETERS; `--rpmb-cid` naming no present device
 *   (`remap_rpmb_dev_id` false) → TEEC_ERROR_ITEM_NOT_FOUND; `rpmb_data_req`: request frames of
 *   mixed types or the wrong number of request/response frames → TEEC_ERROR_BAD_PARAMETERS, an
 *   unsupported message type or a failed MMC_IOC_MULTI_CMD ioctl → TEEC_ERROR_GENERIC.
 * - Linux drivers/tee/optee/supp.c: one supplicant per device (a second open of teepriv → EBUSY);
 *   when it goes away every queued and in-flight request completes with COMMUNICATION.
 *
 * @packageDocumentation
 */
import type { Clock } from "../../core/clock.js";
import { systemClock } from "../../core/clock.js";
import { MemoryFileStore, type FileStore } from "../../core/storage.js";
import { traceChannel, type TraceChannel } from "../../core/trace.js";
import { TEE_RESULT } from "../../bus/tee/constants.js";
import type { TaDefinition } from "../../bus/tee/ta.js";
import { RPMB_FRAME_SIZE, type RpmbTarget } from "../../bus/tee/rpmb.js";
import type { TeeRpcReply, TeeRpcRequest, TeeRpcServer, TeeSupplicantDaemon, TeeSupplicantPort } from "../../bus/tee/rpc.js";
import { TpmArgumentError, TpmStateError, TpmkitError } from "../../errors/index.js";

/** The diagnostics channel a {@link Supplicant} publishes its {@link SupplicantEvent}s on. */
export const SUPPLICANT_TRACE_CHANNEL = "tpmkit:device:tee-supplicant";

/**
 * Where a supplicant is: `"running"` (attached to its port, serving), `"stopped"` (never started,
 * or stopped in order), `"crashed"` (died: {@link Supplicant.crash}).
 */
export type SupplicantState = "stopped" | "running" | "crashed";

/** Faults a test injects into a {@link Supplicant}. The object may be changed between requests. */
export interface SupplicantFaults {
  /** Every request is answered this many ms later (on the supplicant's clock). */
  delayMs?: number;
  /** The next request with this `cmd` is answered `result` without being served (one shot). */
  failNext?: { cmd: number; result: number };
}

/** Options of {@link Supplicant}. */
export interface SupplicantOptions {
  /** The REE FS root (`/var/lib/tee`); default a new `MemoryFileStore`. */
  storage?: FileStore;
  /** TAs in its TA directory besides the REE TAs of the TEE it serves (`TeeSupplicantPort.reeTas`). */
  tas?: readonly TaDefinition[];
  /** The RPMB device it reaches; default the port's. */
  rpmb?: RpmbTarget;
  /**
   * `--rpmb-cid`: serve RPMB only if the device's CID equals this (16 bytes); otherwise RPMB
   * requests get ITEM_NOT_FOUND (rpmb.c `remap_rpmb_dev_id`).
   */
  rpmbCid?: Uint8Array;
  /** Clock for {@link SupplicantFaults.delayMs} and event times; default the system clock. */
  clock?: Clock;
  /** Injected faults (kept by reference: tests may change it later). */
  faults?: SupplicantFaults;
  /** Name for traces; default "tee-supplicant". */
  name?: string;
}

/** A state change of a {@link Supplicant}. */
export interface SupplicantStateEvent {
  type: "state";
  from: SupplicantState;
  to: SupplicantState;
}

/** One request answered by a {@link Supplicant}. */
export interface SupplicantRequestEvent {
  type: "request";
  /** OPTEE_RPC_CMD_* of the request. */
  cmd: number;
  /** The TEE_RESULT answered. */
  result: number;
}

/** What a {@link Supplicant} publishes on {@link SUPPLICANT_TRACE_CHANNEL}. */
export type SupplicantEvent = (SupplicantStateEvent | SupplicantRequestEvent) & {
  /** The supplicant's name. */
  name: string;
  /** Its clock's time, ms. */
  time: number;
};

/** RPMB message types of a request frame (JEDEC JESD84-B51 §6.6.22, the `req_resp` field). */
const RPMB_REQ = { KEY_PROGRAM: 0x0001, WCOUNTER_READ: 0x0002, DATA_WRITE: 0x0003, DATA_READ: 0x0004 } as const;
/** Offset of the big-endian message type in a 512-byte RPMB frame (JESD84-B51 Table 18: bytes 510–511). */
const RPMB_MSG_TYPE_OFFSET = 510;
/** Most response frames one RPMB request may ask for (the 16-bit block count of a read). */
const RPMB_MAX_RESPONSE_FRAMES = 0xffff;
/** Largest APPL shared-memory allocation served (a 32-bit size, as `struct optee_msg_param_value`). */
const SHM_MAX_SIZE = 0xffffffff;

interface InFlight {
  abort: AbortController;
  done: Promise<unknown>;
}

/**
 * A tee-supplicant model. The TEE binds it to its port (`OpTee({ supplicant })` calls
 * {@link Supplicant.bind}); {@link Supplicant.start} attaches it, as the daemon opening
 * `/dev/teepriv0` does, and from then on it serves the TEE's RPC requests.
 *
 * - LOAD_TA (0): the port's REE TAs plus `tas`, by UUID; none → ITEM_NOT_FOUND.
 * - RPMB (1): legacy frames to the RPMB device (`rpmb` option, else the port's); none →
 *   BAD_PARAMETERS, as tee-supplicant answers when `/dev/mmcblk<id>rpmb` cannot be opened.
 * - FS (2): read / write / remove / rename / list on `storage`; a missing file →
 *   ITEM_NOT_FOUND; a store that throws → the errno mapping of tee_supp_fs.c (ENOSPC →
 *   STORAGE_NO_SPACE, ENOENT → ITEM_NOT_FOUND, a bad name → BAD_PARAMETERS, else GENERIC).
 * - SHM_ALLOC / SHM_FREE (6 / 7): ids for RPC payload buffers; freeing an unknown id →
 *   BAD_PARAMETERS.
 * - Anything else → NOT_SUPPORTED.
 *
 * `handle` never rejects. While not running it answers COMMUNICATION. {@link Supplicant.stop}
 * answers COMMUNICATION to requests still waiting (a {@link SupplicantFaults.delayMs}), lets those
 * already touching storage finish, then detaches; {@link Supplicant.crash} detaches at once and
 * whatever it had in flight is answered by the port (COMMUNICATION), never by it.
 *
 * @example
 * ```ts
 * const supplicant = new Supplicant({ storage: new MemoryFileStore() });
 * const tee = new OpTee({ tas: [ftpmTa({ early: false })], supplicant });
 * await supplicant.start();
 * ```
 */
export class Supplicant implements TeeRpcServer, TeeSupplicantDaemon {
  /** Name for traces. */
  readonly name: string;
  /** The REE FS root it serves. */
  readonly storage: FileStore;
  /** Injected faults (tests may change them at any time). */
  faults: SupplicantFaults;
  /** Requests served while running, by OPTEE_RPC_CMD_* (whatever the result). */
  readonly served = new Map<number, number>();
  /** Requests answered COMMUNICATION because it was not running (or was stopped while they waited). */
  refused = 0;

  readonly #tas: readonly TaDefinition[];
  readonly #rpmb: RpmbTarget | undefined;
  readonly #rpmbCid: Uint8Array | undefined;
  readonly #clock: Clock;
  readonly #channel: TraceChannel;
  #port: TeeSupplicantPort | undefined;
  #detach: (() => void) | undefined;
  #stopping: Promise<void> | undefined;
  #state: SupplicantState = "stopped";
  /** Bumped at every start, stop and crash: a request that began in another generation is not answered by this one. */
  #generation = 0;
  #inFlight = new Set<InFlight>();
  #listeners = new Set<(event: SupplicantStateEvent) => void>();
  #shm = new Map<number, number>();
  #nextShmId = 1;

  /** @param options - see {@link SupplicantOptions} */
  constructor(options: SupplicantOptions = {}) {
    if (options.rpmbCid !== undefined && (!(options.rpmbCid instanceof Uint8Array) || options.rpmbCid.length !== 16)) {
      throw new TpmArgumentError("Supplicant: rpmbCid must be 16 bytes");
    }
    if (options.tas !== undefined && !Array.isArray(options.tas)) throw new TpmArgumentError("Supplicant: tas must be an array of TaDefinition");
    this.name = options.name ?? "tee-supplicant";
    this.storage = options.storage ?? new MemoryFileStore();
    this.faults = options.faults ?? {};
    this.#tas = options.tas ?? [];
    this.#rpmb = options.rpmb;
    this.#rpmbCid = options.rpmbCid?.slice();
    this.#clock = options.clock ?? systemClock;
    this.#channel = traceChannel(SUPPLICANT_TRACE_CHANNEL);
  }

  /** Where it is: running, stopped or crashed. */
  get state(): SupplicantState {
    return this.#state;
  }

  /** The port it is bound to, if any. */
  get port(): TeeSupplicantPort | undefined {
    return this.#port;
  }

  /** APPL shared-memory allocations currently held (SHM_ALLOC not yet freed). */
  get shmAllocated(): number {
    return this.#shm.size;
  }

  /**
   * Gives it the port it attaches to on {@link Supplicant.start} (the TEE calls this).
   *
   * @throws TpmStateError if it is running on another port
   */
  bind(port: TeeSupplicantPort): void {
    if (this.#state === "running" && this.#port !== port) throw new TpmStateError(`${this.name}: bind() to another port while running`);
    this.#port = port;
  }

  /**
   * Attaches to the port and serves. Resolves at once if already running.
   *
   * @throws TpmStateError if it was never bound to a port
   * @throws TeeError BUSY (from the port) when another supplicant is attached
   */
  async start(): Promise<void> {
    if (this.#stopping) await this.#stopping; // a stop still finishing its in-flight requests
    if (this.#state === "running") return;
    const port = this.#port;
    if (!port) throw new TpmStateError(`${this.name}: start() before bind(): no TEE to attach to`);
    // Running before attach: the port may hand over queued requests inside attach().
    const from = this.#state;
    this.#state = "running";
    this.#generation++;
    this.#shm.clear();
    try {
      // The port throws TeeError BUSY when another server is attached (a second open of teepriv: EBUSY).
      this.#detach = port.attach(this);
    } catch (e) {
      this.#state = from;
      throw e;
    }
    this.#state = from;
    this.#setState("running");
  }

  /**
   * Stops in order: requests still waiting are answered COMMUNICATION, those touching storage
   * finish, then it detaches (the port answers what it still queues with COMMUNICATION).
   */
  async stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (this.#state !== "running") {
      if (this.#state === "crashed") this.#setState("stopped");
      return;
    }
    this.#generation++;
    this.#setState("stopped");
    const pending = [...this.#inFlight];
    for (const f of pending) f.abort.abort();
    this.#stopping = (async () => {
      try {
        await Promise.allSettled(pending.map((f) => f.done));
      } finally {
        this.#detachNow();
        this.#shm.clear();
        this.#stopping = undefined;
      }
    })();
    return this.#stopping;
  }

  /** {@link Supplicant.stop} then {@link Supplicant.start} (from any state). */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /**
   * Dies abruptly (SIGKILL): detaches at once; whatever it had in flight is never answered by it
   * (the port answers COMMUNICATION). No-op unless running.
   */
  crash(): void {
    if (this.#state !== "running") return;
    this.#generation++;
    this.#detachNow();
    this.#shm.clear();
    for (const f of this.#inFlight) f.abort.abort();
    this.#setState("crashed");
  }

  /**
   * Calls `listener` at every state change.
   *
   * @returns a function that removes the listener
   */
  onState(listener: (event: SupplicantStateEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Serves one RPC request; never rejects. See the class description for the answers. */
  async handle(request: TeeRpcRequest, signal?: AbortSignal): Promise<TeeRpcReply> {
    if (this.#state !== "running" || signal?.aborted) {
      this.refused++;
      return { result: TEE_RESULT.COMMUNICATION };
    }
    const generation = this.#generation;
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    let resolveDone!: (v: unknown) => void;
    const entry: InFlight = { abort, done: new Promise((r) => (resolveDone = r)) };
    this.#inFlight.add(entry);
    try {
      const delay = this.faults.delayMs;
      if (delay !== undefined && delay > 0) {
        try {
          await this.#clock.sleep(delay, abort.signal);
        } catch {
          this.refused++;
          return { result: TEE_RESULT.COMMUNICATION };
        }
      }
      if (generation !== this.#generation || this.#state !== "running") {
        this.refused++;
        return { result: TEE_RESULT.COMMUNICATION };
      }
      const cmd = typeof request === "object" && request !== null ? (request as { cmd: unknown }).cmd : undefined;
      const key = typeof cmd === "number" ? cmd : -1;
      this.served.set(key, (this.served.get(key) ?? 0) + 1);
      const fail = this.faults.failNext;
      let reply: TeeRpcReply;
      if (fail && fail.cmd === cmd) {
        this.faults.failNext = undefined;
        reply = { result: fail.result >>> 0 };
      } else {
        reply = await this.#serve(request);
      }
      // A crash while the storage operation ran: the port has answered already; ours goes nowhere.
      if (generation !== this.#generation && (this.#state as SupplicantState) === "crashed") return { result: TEE_RESULT.COMMUNICATION };
      this.#publish({ type: "request", cmd: key, result: reply.result });
      return reply;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#inFlight.delete(entry);
      resolveDone(undefined);
    }
  }

  async #serve(request: TeeRpcRequest): Promise<TeeRpcReply> {
    switch (request?.cmd) {
      case 0:
        return this.#loadTa(request.uuid);
      case 1:
        return this.#rpmbRequest(request.frames, request.responseFrames);
      case 2:
        return this.#fs(request);
      case 6: {
        const size = request.size;
        if (!Number.isSafeInteger(size) || size < 0 || size > SHM_MAX_SIZE) return { result: TEE_RESULT.BAD_PARAMETERS };
        const id = this.#nextShmId++;
        this.#shm.set(id, size);
        return { result: TEE_RESULT.SUCCESS, id };
      }
      case 7:
        // tee_supplicant.c process_free: pop_tshm() finding nothing → BAD_PARAMETERS.
        if (!this.#shm.delete(request.id)) return { result: TEE_RESULT.BAD_PARAMETERS };
        return { result: TEE_RESULT.SUCCESS };
      default:
        return { result: TEE_RESULT.NOT_SUPPORTED };
    }
  }

  #loadTa(uuid: unknown): TeeRpcReply {
    if (typeof uuid !== "string") return { result: TEE_RESULT.BAD_PARAMETERS };
    const want = uuid.toLowerCase();
    const ta = [...(this.#port?.reeTas ?? []), ...this.#tas].find((t) => t.uuid.toLowerCase() === want);
    return ta ? { result: TEE_RESULT.SUCCESS, ta } : { result: TEE_RESULT.ITEM_NOT_FOUND };
  }

  #rpmbRequest(frames: unknown, responseFrames: unknown): TeeRpcReply {
    const bad = { result: TEE_RESULT.BAD_PARAMETERS };
    if (!(frames instanceof Uint8Array) || frames.length === 0 || frames.length % RPMB_FRAME_SIZE !== 0) return bad;
    if (typeof responseFrames !== "number" || !Number.isSafeInteger(responseFrames) || responseFrames < 1 || responseFrames > RPMB_MAX_RESPONSE_FRAMES) return bad;
    const target = this.#rpmb ?? this.#port?.rpmb;
    if (this.#rpmbCid) {
      if (!target || !equalBytes(target.cid, this.#rpmbCid)) return { result: TEE_RESULT.ITEM_NOT_FOUND };
    }
    if (!target) return bad;
    const n = frames.length / RPMB_FRAME_SIZE;
    const typeOf = (i: number) => (frames[i * RPMB_FRAME_SIZE + RPMB_MSG_TYPE_OFFSET]! << 8) | frames[i * RPMB_FRAME_SIZE + RPMB_MSG_TYPE_OFFSET + 1]!;
    const type = typeOf(0);
    for (let i = 1; i < n; i++) if (typeOf(i) !== type) return bad;
    switch (type) {
      case RPMB_REQ.KEY_PROGRAM:
      case RPMB_REQ.DATA_WRITE:
        if (responseFrames !== 1) return bad;
        break;
      case RPMB_REQ.WCOUNTER_READ:
        if (responseFrames !== 1 || n !== 1) return bad;
        break;
      case RPMB_REQ.DATA_READ:
        if (n !== 1) return bad;
        break;
      default:
        return { result: TEE_RESULT.GENERIC };
    }
    let out: Uint8Array;
    try {
      out = target.transfer(frames.slice(), responseFrames);
    } catch {
      return { result: TEE_RESULT.GENERIC }; // the MMC_IOC_MULTI_CMD ioctl failed
    }
    if (!(out instanceof Uint8Array) || out.length !== responseFrames * RPMB_FRAME_SIZE) return { result: TEE_RESULT.GENERIC };
    return { result: TEE_RESULT.SUCCESS, data: out.slice() };
  }

  async #fs(request: Extract<TeeRpcRequest, { cmd: 2 }>): Promise<TeeRpcReply> {
    const bad = { result: TEE_RESULT.BAD_PARAMETERS };
    const { op, name } = request;
    if (op !== "list" && (typeof name !== "string" || name === "")) return bad;
    try {
      switch (op) {
        case "read": {
          const data = await this.storage.read(name);
          return data === undefined ? { result: TEE_RESULT.ITEM_NOT_FOUND } : { result: TEE_RESULT.SUCCESS, data };
        }
        case "write":
          if (!(request.data instanceof Uint8Array)) return bad;
          await this.storage.write(name, request.data);
          return { result: TEE_RESULT.SUCCESS };
        case "remove":
          // unlinkat() of a missing file: ENOENT → ITEM_NOT_FOUND (ree_fs_new_remove).
          if ((await this.storage.read(name)) === undefined) return { result: TEE_RESULT.ITEM_NOT_FOUND };
          await this.storage.remove(name);
          return { result: TEE_RESULT.SUCCESS };
        case "rename": {
          const to = request.newName;
          if (typeof to !== "string" || to === "") return bad;
          // renameat2() of a missing source: ENOENT → ITEM_NOT_FOUND (ree_fs_new_rename).
          if ((await this.storage.read(name)) === undefined) return { result: TEE_RESULT.ITEM_NOT_FOUND };
          await this.storage.rename(name, to);
          return { result: TEE_RESULT.SUCCESS };
        }
        case "list":
          return { result: TEE_RESULT.SUCCESS, names: await this.storage.list() };
        default:
          return bad;
      }
    } catch (e) {
      // ree_fs_new_rename returns SUCCESS for errnos other than EEXIST/ENOENT; the model reports
      // them as the other handlers do (errno_to_teec) rather than hide a failed rename.
      return { result: storeErrorResult(e) };
    }
  }

  #detachNow(): void {
    const d = this.#detach;
    this.#detach = undefined;
    d?.();
  }

  #setState(to: SupplicantState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    const event: SupplicantStateEvent = { type: "state", from, to };
    for (const l of [...this.#listeners]) {
      try {
        l(event);
      } catch {
        // a listener's error is its own
      }
    }
    this.#publish(event);
  }

  #publish(event: SupplicantStateEvent | SupplicantRequestEvent): void {
    if (this.#channel.hasSubscribers) this.#channel.publish({ ...event, name: this.name, time: this.#clock.now() } satisfies SupplicantEvent);
  }
}

/**
 * The TEE_RESULT tee-supplicant answers for a failed file operation: tee_supp_fs.c
 * `errno_to_teec` (ENOSPC → STORAGE_NO_SPACE, ENOENT → ITEM_NOT_FOUND, else GENERIC), the errno
 * read from the error or its causes; a name the store refuses (`TpmArgumentError`) is what
 * `tee_fs_get_relative_filename` failing gives, BAD_PARAMETERS.
 */
function storeErrorResult(e: unknown): number {
  for (let c: unknown = e, depth = 0; c !== undefined && c !== null && depth < 8; depth++) {
    if (c instanceof TpmArgumentError) return TEE_RESULT.BAD_PARAMETERS;
    const code = (c as { code?: unknown }).code;
    if (code === "ENOSPC") return TEE_RESULT.STORAGE_NO_SPACE;
    if (code === "ENOENT") return TEE_RESULT.ITEM_NOT_FOUND;
    c = c instanceof Error || c instanceof TpmkitError ? (c as Error).cause : undefined;
  }
  return TEE_RESULT.GENERIC;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
