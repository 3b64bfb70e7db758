/**
 * One OP-TEE partition: the TA instances, sessions, client contexts, supplicant port and secure
 * storage of the host (no virtualization) or of one guest (optee_os with CFG_NS_VIRTUALIZATION
 * keeps a partition per guest: core/arch/arm/kernel/virtualization.c).
 *
 * Sources: optee_os core/kernel/tee_ta_manager.c (tee_ta_open_session,
 * tee_ta_init_session_with_context: SINGLE_INSTANCE, MULTI_SESSION → BUSY, panicked contexts,
 * tee_ta_close_session with INSTANCE_KEEP_ALIVE), core/kernel/tee_ta_manager.c and
 * core/arch/arm/kernel/user_ta.c (a panic → TARGET_DEAD, origin TEE), core/kernel/ree_fs_ta.c and
 * core/pta/system.c / ldelf (the TA store lookup: early TA, secure-storage TA, REE through
 * OPTEE_RPC_CMD_LOAD_TA), lib/libutee/tee_api_objects.c (the storage panic rules),
 * lib/libutee/user_ta_entry.c (TA_DestroyEntryPoint when the last session closes).
 *
 * @packageDocumentation
 */
import { TeeError, TpmkitError } from "../../errors/index.js";
import { OPTEE_RPC_CMD, TA_FLAG, TEE_LOGIN, TEE_MEM, TEE_ORIGIN, TEE_RESULT, TEE_STORAGE, teeResultName } from "../../bus/tee/constants.js";
import type { Clock } from "../../core/clock.js";
import type { TraceChannel } from "../../core/trace.js";
import type { TeeClientKind, TeeContext, TeeDevice, TeeDeviceStatus, TeeInvokeOptions, TeeOpenSessionOptions, TeeOperation, TeeSession, TeeSharedMemory } from "../../bus/tee/client.js";
import type { TeeRpcReply, TeeRpcRequest, TeeRpcServer, TeeSupplicantPort } from "../../bus/tee/rpc.js";
import type { RpmbTarget } from "../../bus/tee/rpmb.js";
import { TaPanicError, type TaDefinition, type TaEnvironment, type TaSession, type TaStorage, type TrustedApplication } from "../../bus/tee/ta.js";
import type { SecureStorageBackend, SecureStorageContext } from "./secure-storage.js";
import { SuppQueue, type CallContext } from "./optee-supp.js";
import { marshalOperation } from "./optee-params.js";

/** What the {@link OpTee} shares with its partitions. */
export interface PartitionConfig {
  kind: string;
  vmId: number;
  tas: readonly TaDefinition[];
  clock: Clock;
  threads: number;
  threadWaitMs: number;
  supplicantWaitMs: number;
  supplicantAbsentLoadResult: "out-of-memory" | "item-not-found";
  backends: ReadonlyMap<number, SecureStorageBackend>;
  privateStorageId: number;
  rpmb: RpmbTarget | undefined;
  kernelRpmb: RpmbTarget | undefined;
  channel: TraceChannel | undefined;
  supplicantConfigured: boolean;
  /** The OpTee, for events. */
  owner: object;
}

/** An event of the `tpmkit:device:optee` channel. */
export type OpTeeEvent =
  | { type: "open"; uuid: string; session?: number; result: number; origin: number }
  | { type: "invoke"; uuid: string; session: number; command: number; result: number; origin: number }
  | { type: "close"; uuid: string; session: number }
  | { type: "panic"; uuid: string; cause: unknown }
  | { type: "rpc"; cmd: number; result: number }
  | { type: "status"; status: TeeDeviceStatus }
  | { type: "log"; uuid: string; message: string }
  | { type: "partition"; detail: "created" | "destroyed" };

const VALID_LOGINS = new Set<number>(Object.values(TEE_LOGIN));
const READ_OK = new Set<number>([TEE_RESULT.SUCCESS, TEE_RESULT.ITEM_NOT_FOUND, TEE_RESULT.ACCESS_CONFLICT, TEE_RESULT.OUT_OF_MEMORY, TEE_RESULT.CORRUPT_OBJECT, TEE_RESULT.STORAGE_NOT_AVAILABLE]);
const WRITE_OK = new Set<number>([TEE_RESULT.SUCCESS, TEE_RESULT.STORAGE_NO_SPACE, TEE_RESULT.OVERFLOW, TEE_RESULT.CORRUPT_OBJECT, TEE_RESULT.STORAGE_NOT_AVAILABLE]);
const REMOVE_OK = new Set<number>([TEE_RESULT.SUCCESS, TEE_RESULT.ITEM_NOT_FOUND, TEE_RESULT.STORAGE_NOT_AVAILABLE]);

function teeErr(code: number, origin: number, message: string, cause?: unknown): TeeError {
  return new TeeError(`${message} (${teeResultName(code)}, origin ${origin})`, code, origin, cause === undefined ? undefined : { cause });
}

/** A FIFO lock whose waits end on abort. */
class Lock {
  #held = false;
  #queue: (() => void)[] = [];
  readonly #releaseFn = (): void => this.#release();
  /** Takes the lock when it is free (no promise); undefined when it is held. */
  tryAcquire(): (() => void) | undefined {
    if (this.#held) return undefined;
    this.#held = true;
    return this.#releaseFn;
  }
  /** Waits for the lock; `call.signal` is read only when the lock is held (no signal is built for a free lock). */
  async acquire(call: { readonly signal: AbortSignal | undefined }, onAbort: () => Error): Promise<() => void> {
    const free = this.tryAcquire();
    if (free) return free;
    const signal = call.signal;
    await new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(onAbort());
      const go = () => {
        signal?.removeEventListener("abort", ab);
        resolve();
      };
      const ab = () => {
        const i = this.#queue.indexOf(go);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(onAbort());
      };
      this.#queue.push(go);
      signal?.addEventListener("abort", ab, { once: true });
    });
    return this.#releaseFn;
  }
  #release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#held = false;
  }
}

/**
 * One call's context. Its `signal` (the caller's signal or a cancellation, whichever comes first)
 * is built only when something reads it: a wait for a thread, the TA lock or the supplicant. A
 * call that runs straight through allocates no AbortController.
 */
class Call implements CallContext {
  readonly client: TeeClientKind;
  inRpc = false;
  #ac: AbortController | undefined;
  #aborted = false;
  /** runCall's rejection, run first on abort. */
  onAbort: (() => void) | undefined;

  constructor(client: TeeClientKind) {
    this.client = client;
  }

  get signal(): AbortSignal {
    if (!this.#ac) {
      this.#ac = new AbortController();
      if (this.#aborted) this.#ac.abort();
    }
    return this.#ac.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.onAbort?.();
    this.#ac?.abort();
  }
}

interface Instance {
  def: TaDefinition;
  ta: TrustedApplication;
  /** Sessions open or opening. */
  refs: number;
  sessions: Set<SessionImpl>;
  dead: boolean;
  released: boolean;
  lock: Lock;
  /** The call whose entry point runs now (storage RPCs take its client semantics). */
  current: CallContext | undefined;
  env: TaEnvironment;
}

/** @internal One partition of an OpTee. */
export class Partition implements TeeDevice, TeeSupplicantPort {
  readonly kind: string;
  readonly vmId: number;
  readonly cfg: PartitionConfig;
  readonly supp: SuppQueue;
  #destroyed = false;
  #listeners = new Set<(s: TeeDeviceStatus) => void>();
  #single = new Map<string, Instance | Promise<Instance>>();
  #contexts = new Set<ContextImpl>();
  #sessionSeq = 1;
  #busyThreads = 0;
  #threadWaiters: (() => void)[] = [];
  #destroyWaiters = new Set<() => void>();

  constructor(cfg: PartitionConfig) {
    this.cfg = cfg;
    this.kind = cfg.kind;
    this.vmId = cfg.vmId;
    this.supp = new SuppQueue(cfg.clock, cfg.supplicantWaitMs, () => this.#emitStatus());
  }

  // ---- TeeSupplicantPort ----
  attach(server: TeeRpcServer): () => void {
    return this.supp.attach(server);
  }
  get reeTas(): readonly TaDefinition[] {
    return this.cfg.tas.filter((t) => !t.early);
  }
  get rpmb(): RpmbTarget | undefined {
    return this.cfg.rpmb;
  }

  // ---- TeeDevice ----
  status(): TeeDeviceStatus {
    return {
      present: !this.#destroyed,
      supplicant: this.supp.attached ? "running" : this.supp.everAttached || this.cfg.supplicantConfigured ? "stopped" : "absent",
    };
  }
  onStatus(fn: (status: TeeDeviceStatus) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
  #emitStatus(): void {
    const s = this.status();
    this.publish({ type: "status", status: s });
    for (const fn of [...this.#listeners]) {
      try {
        fn(s);
      } catch {
        // a listener's error is its own
      }
    }
  }

  async openContext(options: { client?: TeeClientKind; signal?: AbortSignal } = {}): Promise<TeeContext> {
    const client = options?.client ?? "user";
    if (client !== "kernel" && client !== "user") throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `client must be "kernel" or "user", got ${String(client)}`);
    if (this.#destroyed) throw teeErr(TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.API, `${this.kind} is gone: no TEE device`);
    const ctx = new ContextImpl(this, client);
    this.#contexts.add(ctx);
    return ctx;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Error for anything on a destroyed partition. */
  goneError(): TeeError {
    return teeErr(TEE_RESULT.COMMUNICATION, TEE_ORIGIN.COMMS, `${this.kind} was destroyed`);
  }

  /** Frees everything: instances (no destroy entry points: the partition's memory is freed), sessions, port. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const ctx of this.#contexts) ctx.kill();
    this.#contexts.clear();
    this.#single.clear();
    const w = [...this.#destroyWaiters];
    this.#destroyWaiters.clear();
    for (const f of w) f();
    const tw = this.#threadWaiters.splice(0);
    for (const f of tw) f();
    this.supp.close();
    this.publish({ type: "partition", detail: "destroyed" });
    this.#emitStatus();
  }

  forgetContext(ctx: ContextImpl): void {
    this.#contexts.delete(ctx);
  }

  /** Whether the trace channel has subscribers (callers skip building events nobody reads). */
  get tracing(): boolean {
    return this.cfg.channel?.hasSubscribers === true;
  }

  publish(ev: OpTeeEvent): void {
    const ch = this.cfg.channel;
    if (ch?.hasSubscribers) ch.publish({ ...ev, device: this.cfg.owner, vmId: this.vmId, time: this.cfg.clock.now() });
  }

  async rpc(req: TeeRpcRequest, call: CallContext): Promise<TeeRpcReply> {
    const r = await this.supp.request(req, call);
    if (this.tracing) this.publish({ type: "rpc", cmd: req.cmd, result: r.result });
    return r;
  }

  nextSessionId(): number {
    return this.#sessionSeq++;
  }

  /**
   * Runs `fn` on one of the partition's CFG_NUM_THREADS threads. When all are busy OP-TEE answers
   * OPTEE_SMC_RETURN_ETHREAD_LIMIT and the Linux driver waits for a thread to be freed
   * (drivers/tee/optee/call.c, optee_cq_wait_for_completion); here that wait is bounded by the
   * caller's signal and `threadWaitMs`, after which the call fails with BUSY (origin COMMS).
   */
  async onThread<T>(call: CallContext, fn: () => Promise<T>): Promise<T> {
    while (this.#busyThreads >= this.cfg.threads) {
      const ok = await new Promise<boolean>((resolve) => {
        let timer: { clear(): void } | undefined;
        const done = (v: boolean) => {
          const i = this.#threadWaiters.indexOf(go);
          if (i >= 0) this.#threadWaiters.splice(i, 1);
          call.signal?.removeEventListener("abort", ab);
          timer?.clear();
          resolve(v);
        };
        const go = () => done(true);
        const ab = () => done(false);
        if (call.signal?.aborted) return resolve(false);
        this.#threadWaiters.push(go);
        call.signal?.addEventListener("abort", ab, { once: true });
        timer = this.cfg.clock.setTimer(this.cfg.threadWaitMs, () => done(false));
      });
      if (this.#destroyed) throw this.goneError();
      if (!ok) throw teeErr(TEE_RESULT.BUSY, TEE_ORIGIN.COMMS, `all ${this.cfg.threads} TEE threads stayed busy (ETHREAD_LIMIT)`);
    }
    this.#busyThreads++;
    try {
      return await fn();
    } finally {
      this.#busyThreads--;
      const next = this.#threadWaiters.shift();
      if (next) next();
    }
  }

  /** Number of threads in use (for tests). */
  get busyThreads(): number {
    return this.#busyThreads;
  }

  /** Rejects when the partition is destroyed; the returned function stops watching. */
  watchDestroy(reject: (e: Error) => void): () => void {
    const f = () => reject(this.goneError());
    this.#destroyWaiters.add(f);
    return () => this.#destroyWaiters.delete(f);
  }

  // ---- TA store ----

  /**
   * Finds a TA as OP-TEE's TA store does (early TA → secure-storage TA → REE via the supplicant),
   * stopping at the first result that is neither ITEM_NOT_FOUND nor STORAGE_NOT_AVAILABLE.
   */
  async findTa(uuid: string, call: CallContext): Promise<TaDefinition> {
    const early = this.cfg.tas.find((t) => t.early && t.uuid === uuid);
    if (early) return early;
    // Secure-storage TA database (core/kernel/secstor_ta.c): none installed in this model.
    let res: number = TEE_RESULT.ITEM_NOT_FOUND;
    // REE: the first RPC is an APPL payload allocation through the supplicant
    // (thread_rpc_alloc_payload); without one it fails and reads as OUT_OF_MEMORY
    // ("ldelf failed with res: 0xffff000c"); 2019's OP-TEE returned ITEM_NOT_FOUND instead.
    const alloc = await this.rpc({ cmd: OPTEE_RPC_CMD.SHM_ALLOC, size: 4096 }, call);
    if (alloc.result !== TEE_RESULT.SUCCESS) {
      res = this.cfg.supplicantAbsentLoadResult === "item-not-found" ? TEE_RESULT.ITEM_NOT_FOUND : TEE_RESULT.OUT_OF_MEMORY;
      throw teeErr(res, TEE_ORIGIN.TEE, `TA ${uuid}: RPC payload allocation failed with ${teeResultName(alloc.result)} (no supplicant)`);
    }
    try {
      const load = await this.rpc({ cmd: OPTEE_RPC_CMD.LOAD_TA, uuid }, call);
      if (load.result === TEE_RESULT.SUCCESS && load.ta && load.ta.uuid === uuid) return load.ta;
      res = load.result === TEE_RESULT.SUCCESS ? TEE_RESULT.ITEM_NOT_FOUND : load.result;
      if (res === TEE_RESULT.STORAGE_NOT_AVAILABLE) res = TEE_RESULT.ITEM_NOT_FOUND;
      throw teeErr(res, TEE_ORIGIN.TEE, `TA ${uuid} not found`);
    } finally {
      if (alloc.id !== undefined) void this.rpc({ cmd: OPTEE_RPC_CMD.SHM_FREE, id: alloc.id }, { client: "kernel", signal: undefined, inRpc: false });
    }
  }

  // ---- instances ----

  /** The instance a new session of `uuid` attaches to, with one reference taken for it. */
  async instanceFor(uuid: string, call: CallContext): Promise<Instance> {
    for (;;) {
      const found = this.#single.get(uuid);
      if (found === undefined) break;
      const inst = await found;
      if (this.#destroyed) throw this.goneError();
      if (this.#single.get(uuid) !== inst) continue;
      if (inst.dead) throw teeErr(TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE, `TA ${uuid} crashed and is kept crashed (INSTANCE_KEEP_CRASHED)`);
      if (!(inst.def.flags & TA_FLAG.MULTI_SESSION) && inst.refs > 0) throw teeErr(TEE_RESULT.BUSY, TEE_ORIGIN.TEE, `TA ${uuid} is single-instance without MULTI_SESSION and has a session`);
      inst.refs++;
      return inst;
    }
    const def = await this.findTa(uuid, call);
    const single = (def.flags & TA_FLAG.SINGLE_INSTANCE) !== 0;
    if (!single) return this.#create(def, call);
    if (this.#single.has(uuid)) return this.instanceFor(uuid, call);
    const p = this.#create(def, call);
    this.#single.set(uuid, p);
    try {
      const inst = await p;
      if (this.#single.get(uuid) === p) this.#single.set(uuid, inst);
      return inst;
    } catch (e) {
      if (this.#single.get(uuid) === p) this.#single.delete(uuid);
      throw e;
    }
  }

  async #create(def: TaDefinition, call: CallContext): Promise<Instance> {
    let ta: TrustedApplication;
    try {
      ta = def.instantiate();
    } catch (e) {
      throw teeErr(TEE_RESULT.GENERIC, TEE_ORIGIN.TEE, `TA ${def.uuid} could not be instantiated`, e);
    }
    const inst: Instance = { def, ta, refs: 1, sessions: new Set(), dead: false, released: false, lock: new Lock(), current: undefined, env: undefined as unknown as TaEnvironment };
    inst.env = this.#env(inst);
    if (ta.create) {
      const r = await this.enter(inst, call, () => ta.create!(inst.env));
      if (r !== TEE_RESULT.SUCCESS) {
        inst.released = true;
        throw teeErr(r, TEE_ORIGIN.TEE, `TA ${def.uuid} create entry point failed`);
      }
    }
    return inst;
  }

  /**
   * Runs one TA entry point with the instance's lock held (a TA instance is single-threaded: OP-TEE
   * waits for a busy single-instance TA, tee_ta_try_set_busy). A panic (env.panic, or any exception
   * out of the TA) kills the instance: TARGET_DEAD, origin TEE.
   */
  async enter(inst: Instance, call: CallContext, fn: () => unknown): Promise<number> {
    const release = inst.lock.tryAcquire() ?? (await inst.lock.acquire(call, () => teeErr(TEE_RESULT.CANCEL, TEE_ORIGIN.COMMS, "cancelled while the TA was busy")));
    try {
      if (inst.dead) throw teeErr(TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE, `TA ${inst.def.uuid} is dead`);
      if (this.#destroyed) throw this.goneError();
      inst.current = call;
      let r: unknown;
      try {
        r = await fn();
      } catch (e) {
        this.panic(inst, e);
      } finally {
        inst.current = undefined;
      }
      if (inst.dead) throw teeErr(TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE, `TA ${inst.def.uuid} panicked`);
      return typeof r === "number" ? r >>> 0 : TEE_RESULT.SUCCESS;
    } finally {
      release();
    }
  }

  /** A TA panicked: the instance dies, its sessions answer TARGET_DEAD. Throws TARGET_DEAD. */
  panic(inst: Instance, cause: unknown): never {
    if (!inst.dead) {
      inst.dead = true;
      this.publish({ type: "panic", uuid: inst.def.uuid, cause });
      if (!(inst.def.flags & TA_FLAG.INSTANCE_KEEP_CRASHED) && this.#single.get(inst.def.uuid) === inst) this.#single.delete(inst.def.uuid);
    }
    throw teeErr(TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE, `TA ${inst.def.uuid} panicked`, cause);
  }

  /** Drops one reference; releases the instance at the last one unless kept alive. */
  async unref(inst: Instance, call: CallContext): Promise<void> {
    inst.refs--;
    if (inst.refs > 0 || inst.dead || inst.released) return;
    const single = (inst.def.flags & TA_FLAG.SINGLE_INSTANCE) !== 0;
    if (single && inst.def.flags & TA_FLAG.INSTANCE_KEEP_ALIVE) return;
    inst.released = true;
    if (this.#single.get(inst.def.uuid) === inst) this.#single.delete(inst.def.uuid);
    if (inst.ta.destroy) {
      try {
        await this.enter(inst, call, () => inst.ta.destroy!());
      } catch {
        // a panic in destroy only ends the instance
      }
    }
  }

  /** The live single instance of `uuid`, if any (for tests and the mediator). */
  instance(uuid: string): { dead: boolean; sessions: number } | undefined {
    const i = this.#single.get(uuid);
    if (!i || i instanceof Promise) return undefined;
    return { dead: i.dead, sessions: i.sessions.size };
  }

  #env(inst: Instance): TaEnvironment {
    const uuid = inst.def.uuid;
    const storage: TaStorage = {
      read: (id, obj) => this.#storage(inst, "read", id, obj, undefined, READ_OK) as Promise<Uint8Array>,
      write: (id, obj, data) => this.#storage(inst, "write", id, obj, data, WRITE_OK) as Promise<void>,
      remove: (id, obj) => this.#storage(inst, "remove", id, obj, undefined, REMOVE_OK) as Promise<void>,
    };
    return {
      uuid,
      storage,
      clock: this.cfg.clock,
      random: (size: number) => {
        if (!Number.isSafeInteger(size) || size < 0) this.#panicNow(inst, new TaPanicError(uuid, TEE_RESULT.BAD_PARAMETERS));
        const out = new Uint8Array(size);
        for (let o = 0; o < size; o += 65536) globalThis.crypto.getRandomValues(out.subarray(o, Math.min(size, o + 65536)));
        return out;
      },
      panic: (code: number) => this.#panicNow(inst, new TaPanicError(uuid, code)),
      log: (message: string) => this.publish({ type: "log", uuid, message: String(message) }),
    };
  }

  #panicNow(inst: Instance, err: TaPanicError): never {
    // TEE_Panic never returns: mark the instance dead now, so a TA catching the error still dies.
    if (!inst.dead) {
      inst.dead = true;
      this.publish({ type: "panic", uuid: inst.def.uuid, cause: err });
      if (!(inst.def.flags & TA_FLAG.INSTANCE_KEEP_CRASHED) && this.#single.get(inst.def.uuid) === inst) this.#single.delete(inst.def.uuid);
    }
    throw err;
  }

  async #storage(inst: Instance, op: "read" | "write" | "remove", storageId: number, objectId: Uint8Array, data: Uint8Array | undefined, allowed: Set<number>): Promise<unknown> {
    const call = inst.current ?? { client: "kernel" as const, signal: undefined, inRpc: false };
    const id = storageId === TEE_STORAGE.PRIVATE ? this.cfg.privateStorageId : storageId;
    const backend = this.cfg.backends.get(id);
    let code: number;
    let cause: unknown;
    if (!(objectId instanceof Uint8Array) || (op === "write" && !(data instanceof Uint8Array))) {
      code = TEE_RESULT.BAD_PARAMETERS;
    } else if (!backend) {
      // tee_svc_storage.c: no file operations for the storage id → ITEM_NOT_FOUND.
      code = TEE_RESULT.ITEM_NOT_FOUND;
    } else {
      const ctx: SecureStorageContext = { rpc: (req) => this.rpc(req, call), clock: this.cfg.clock, kernelRpmb: this.cfg.kernelRpmb };
      try {
        if (op === "read") return await backend.read(inst.def.uuid, objectId, ctx);
        if (op === "write") return await backend.write(inst.def.uuid, objectId, data!, ctx);
        return await backend.remove(inst.def.uuid, objectId, ctx);
      } catch (e) {
        cause = e;
        code = e instanceof TeeError ? e.teeCode : TEE_RESULT.GENERIC;
      }
    }
    if (!allowed.has(code)) this.#panicNow(inst, new TaPanicError(inst.def.uuid, code));
    throw teeErr(code, TEE_ORIGIN.TEE, `secure storage ${op} failed`, cause);
  }
}

/** A client context of a partition. */
export class ContextImpl implements TeeContext {
  readonly client: TeeClientKind;
  readonly #p: Partition;
  #shm = new Set<TeeSharedMemory>();
  #shmSeq = 1;
  readonly sessions = new Set<SessionImpl>();
  #closed = false;
  #killed = false;

  constructor(p: Partition, client: TeeClientKind) {
    this.#p = p;
    this.client = client;
  }

  get sharedMemoryCount(): number {
    return this.#shm.size;
  }
  get sessionCount(): number {
    return this.sessions.size;
  }

  #check(): void {
    if (this.#killed) throw this.#p.goneError();
    if (this.#closed) throw teeErr(TEE_RESULT.BAD_STATE, TEE_ORIGIN.API, "the context is finalized");
  }

  owns = (shm: TeeSharedMemory): boolean => this.#shm.has(shm);

  allocateSharedMemory(size: number, flags: number = TEE_MEM.INPUT | TEE_MEM.OUTPUT): TeeSharedMemory {
    this.#check();
    checkFlags(flags);
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `shared memory size must be a non-negative integer, got ${String(size)}`);
    const n = size === 0 ? 8 : size;
    let buffer: Uint8Array;
    try {
      buffer = new Uint8Array(n);
    } catch (e) {
      throw teeErr(TEE_RESULT.OUT_OF_MEMORY, TEE_ORIGIN.API, `cannot allocate ${n} bytes of shared memory`, e);
    }
    const shm: TeeSharedMemory = Object.freeze({ id: this.#shmSeq++, buffer, size: n, flags, registered: false });
    this.#shm.add(shm);
    return shm;
  }

  registerSharedMemory(buffer: Uint8Array, flags: number): TeeSharedMemory {
    this.#check();
    checkFlags(flags);
    if (!(buffer instanceof Uint8Array)) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, "registered shared memory needs a Uint8Array buffer");
    const b = buffer.length === 0 ? new Uint8Array(8) : buffer;
    const shm: TeeSharedMemory = Object.freeze({ id: this.#shmSeq++, buffer: b, size: b.length, flags, registered: true });
    this.#shm.add(shm);
    return shm;
  }

  releaseSharedMemory(shm: TeeSharedMemory): void {
    this.#shm.delete(shm);
  }

  async openSession(uuid: string, options: TeeOpenSessionOptions = {}): Promise<TeeSession> {
    this.#check();
    if (typeof uuid !== "string" || !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(uuid)) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `not a UUID: ${String(uuid)}`);
    const id = uuid.toLowerCase();
    const login = options?.login ?? TEE_LOGIN.PUBLIC;
    if (!VALID_LOGINS.has(login)) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `unknown login method ${String(login)}`);
    const m = marshalOperation(options?.operation, this.owns);
    const p = this.#p;
    let session: SessionImpl | undefined;
    const res = await runCall(p, this.client, options?.signal, undefined, async (call) => {
      const inst = await p.instanceFor(id, call);
      if (call.signal?.aborted || p.destroyed) {
        // The client gave up while the instance was being created: drop its reference.
        await p.unref(inst, call);
        throw teeErr(TEE_RESULT.CANCEL, TEE_ORIGIN.COMMS, "the open was cancelled");
      }
      const sid = p.nextSessionId();
      const taSession: TaSession = { id: sid, login, context: undefined };
      const s = new SessionImpl(p, this, inst, taSession);
      let r: number;
      try {
        r = inst.ta.openSession ? await p.enter(inst, call, () => inst.ta.openSession!(taSession, m.paramTypes, m.params)) : TEE_RESULT.SUCCESS;
      } catch (e) {
        if (!inst.dead) await p.unref(inst, call);
        throw e;
      }
      m.writeBack();
      if (r !== TEE_RESULT.SUCCESS) {
        await p.unref(inst, call);
        throw teeErr(r, TEE_ORIGIN.TRUSTED_APP, `TA ${id} refused the session`);
      }
      inst.sessions.add(s);
      session = s;
      // The client gave up after the TA accepted: close the session it will never see.
      if (call.signal?.aborted) void s.close();
      return r;
    }).catch((e: unknown) => {
      const err = e as TeeError;
      p.publish({ type: "open", uuid: id, result: err?.teeCode ?? TEE_RESULT.GENERIC, origin: err?.origin ?? TEE_ORIGIN.COMMS });
      throw e;
    });
    void res;
    if (this.#killed || this.#closed) {
      void session!.close();
      throw this.#killed ? p.goneError() : teeErr(TEE_RESULT.BAD_STATE, TEE_ORIGIN.API, "the context was finalized during the open");
    }
    this.sessions.add(session!);
    p.publish({ type: "open", uuid: id, session: session!.id, result: 0, origin: TEE_ORIGIN.TRUSTED_APP });
    return session!;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.sessions].map((s) => s.close()));
    this.#shm.clear();
    this.#p.forgetContext(this);
  }

  /** The partition is gone. */
  kill(): void {
    this.#killed = true;
    for (const s of this.sessions) s.kill();
    this.sessions.clear();
    this.#shm.clear();
  }
  get killed(): boolean {
    return this.#killed;
  }
}

function checkFlags(flags: number): void {
  // TEEC_RegisterSharedMemory / TEEC_AllocateSharedMemory: flags non-zero, only IN | OUT.
  if (typeof flags !== "number" || flags === 0 || (flags & ~(TEE_MEM.INPUT | TEE_MEM.OUTPUT)) !== 0) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `shared memory flags must be INPUT, OUTPUT or both, got ${String(flags)}`);
}

/**
 * Runs one call: on a thread, settling promptly when the caller's signal aborts or the session's
 * cancellation is requested (CANCEL, origin COMMS; COMMUNICATION, origin COMMS when the call was
 * waiting for the supplicant, as an interrupted wait in Linux supp.c answers) or when the partition
 * is destroyed. `call` is the call's context (its abort() is the session's cancellation); absent,
 * a new one for `client`.
 */
async function runCall<T>(p: Partition, client: TeeClientKind, signal: AbortSignal | undefined, call: Call | undefined, fn: (call: CallContext) => Promise<T>): Promise<T> {
  if (p.destroyed) throw p.goneError();
  const c = call ?? new Call(client);
  const onAbort = () => c.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) c.abort();
  let unwatch: (() => void) | undefined;
  try {
    return await new Promise<T>((resolve, reject) => {
      unwatch = p.watchDestroy(reject);
      const abortErr = () => (p.destroyed ? p.goneError() : c.inRpc ? teeErr(TEE_RESULT.COMMUNICATION, TEE_ORIGIN.COMMS, "the wait for tee-supplicant was interrupted") : teeErr(TEE_RESULT.CANCEL, TEE_ORIGIN.COMMS, "the call was cancelled"));
      if (c.aborted) return reject(abortErr());
      c.onAbort = () => reject(abortErr());
      p.onThread(c, () => fn(c)).then(resolve, (e: unknown) => {
        if (c.aborted && !(e instanceof TeeError && e.origin !== TEE_ORIGIN.COMMS)) return reject(abortErr());
        reject(e instanceof TpmkitError ? e : teeErr(TEE_RESULT.GENERIC, TEE_ORIGIN.TEE, "the call failed", e));
      });
    });
  } finally {
    c.onAbort = undefined;
    unwatch?.();
    signal?.removeEventListener("abort", onAbort);
  }
}

/** An open session. */
export class SessionImpl implements TeeSession {
  readonly id: number;
  readonly uuid: string;
  readonly #p: Partition;
  readonly #ctx: ContextImpl;
  readonly #inst: Instance;
  readonly #ta: TaSession;
  #closed = false;
  #killed = false;
  /** The call in flight (the latest one), for requestCancellation. */
  #cancel: Call | undefined;
  #closing: Promise<void> | undefined;

  constructor(p: Partition, ctx: ContextImpl, inst: Instance, ta: TaSession) {
    this.#p = p;
    this.#ctx = ctx;
    this.#inst = inst;
    this.#ta = ta;
    this.id = ta.id;
    this.uuid = inst.def.uuid;
  }

  async invoke(command: number, operation?: TeeOperation, options?: TeeInvokeOptions): Promise<void> {
    const p = this.#p;
    if (this.#killed) throw p.goneError();
    // An unknown (closed) session: tee_ta_get_session fails → ITEM_NOT_FOUND from the core.
    if (this.#closed) throw teeErr(TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.TEE, `session ${this.id} is closed`);
    if (typeof command !== "number" || !Number.isInteger(command) || command < 0 || command > 0xffffffff) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `command must be a u32, got ${String(command)}`);
    const m = marshalOperation(operation, this.#ctx.owns);
    const inst = this.#inst;
    if (inst.dead) {
      if (p.tracing) p.publish({ type: "invoke", uuid: this.uuid, session: this.id, command, result: TEE_RESULT.TARGET_DEAD, origin: TEE_ORIGIN.TEE });
      throw teeErr(TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE, `TA ${this.uuid} is dead`);
    }
    const cancel = new Call(this.#ctx.client);
    this.#cancel = cancel;
    try {
      await runCall(p, this.#ctx.client, options?.signal, cancel, async (call) => {
        const r = await p.enter(inst, call, () => inst.ta.invoke(this.#ta, command >>> 0, m.paramTypes, m.params));
        m.writeBack();
        if (r !== TEE_RESULT.SUCCESS) throw teeErr(r, TEE_ORIGIN.TRUSTED_APP, `TA ${this.uuid} command ${command}`);
      });
      if (p.tracing) p.publish({ type: "invoke", uuid: this.uuid, session: this.id, command, result: 0, origin: TEE_ORIGIN.TRUSTED_APP });
    } catch (e) {
      const err = e as TeeError;
      if (p.tracing) p.publish({ type: "invoke", uuid: this.uuid, session: this.id, command, result: err?.teeCode ?? TEE_RESULT.GENERIC, origin: err?.origin ?? TEE_ORIGIN.COMMS });
      throw e;
    } finally {
      if (this.#cancel === cancel) this.#cancel = undefined;
    }
  }

  requestCancellation(): void {
    this.#cancel?.abort();
  }

  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    if (this.#closed || this.#killed) return;
    this.#closed = true;
    this.#ctx.sessions.delete(this);
    const p = this.#p;
    const inst = this.#inst;
    inst.sessions.delete(this);
    p.publish({ type: "close", uuid: this.uuid, session: this.id });
    if (inst.dead) return;
    try {
      await runCall(p, this.#ctx.client, undefined, undefined, async (call) => {
        if (inst.ta.closeSession) {
          try {
            await p.enter(inst, call, () => inst.ta.closeSession!(this.#ta));
          } catch {
            // a panic in close ends the instance; the close itself succeeds (TEEC_CloseSession is void)
          }
        }
        await p.unref(inst, call);
      });
    } catch {
      // never rejects
    }
  }

  kill(): void {
    this.#killed = true;
    this.#cancel?.abort();
  }
}
