/**
 * `TeeMediator`: the hypervisor's OP-TEE mediator. It sits between the guests and an {@link OpTee}
 * built with virtualization, announces guests to OP-TEE (VM_CREATED / VM_DESTROYED), tags every
 * guest call with the guest's VM id, limits each guest's concurrent standard calls to OP-TEE's
 * thread count, forwards only the allowed message commands, and translates and pins the guest's
 * shared buffers page by page through a per-guest address map, with Xen's limits.
 *
 * Sources: Xen xen/arch/arm/tee/optee.c (optee_probe, optee_domain_init, allocate_std_call,
 * handle_std_call, translate_params / translate_noncontig, allocate_optee_shm_buf,
 * optee_relinquish_resources); optee_os core/include/optee_smc.h and optee_msg.h (function ids,
 * return codes, OPTEE_MSG_ATTR_*), core/arch/arm/kernel/virtualization.c (partitions per guest,
 * HYP_CLNT_ID 0).
 *
 * @packageDocumentation
 */
import { TeeError } from "../../errors/index.js";
import { OPTEE_HYP_CLIENT_ID, OPTEE_MSG_CMD, OPTEE_SMC, OPTEE_SMC_RETURN, OPTEE_SMC_SEC_CAP, TEE_ORIGIN, TEE_PARAM_TYPE, TEE_RESULT, teeResultName } from "../../bus/tee/constants.js";
import { systemClock, type Clock } from "../../core/clock.js";
import { MemoryFileStore, type FileStore } from "../../core/storage.js";
import { traceChannel, type TraceChannel } from "../../core/trace.js";
import type { TeeClientKind, TeeContext, TeeDevice, TeeDeviceStatus, TeeInvokeOptions, TeeOpenSessionOptions, TeeOperation, TeeSession, TeeSharedMemory } from "../../bus/tee/client.js";
import type { OpTeePartition } from "./optee.js";
import { OPTEE_MSG_UID } from "./optee.js";
import { Supplicant } from "./supplicant.js";

/** Name of the diagnostics channel {@link TeeMediator} publishes {@link TeeMediatorEvent}s on. */
export const TEE_MEDIATOR_CHANNEL = "tpmkit:device:tee-mediator";

/** Page size of OP-TEE's non-contiguous page lists (optee_msg.h, OPTEE_MSG_NONCONTIG_PAGE_SIZE). */
export const TEE_MEDIATOR_PAGE_SIZE = 4096;

/**
 * Xen's limits on what one guest may share with OP-TEE (xen/arch/arm/tee/optee.c): pages in one
 * buffer (MAX_SHM_BUFFER_PG, 512 KiB plus one page for an unaligned start), buffers at once
 * (MAX_SHM_BUFFER_COUNT) and pages at once (MAX_TOTAL_SMH_BUF_PG). Beyond any of them the call
 * fails with OUT_OF_MEMORY, origin COMMS (translate_params maps -ENOMEM so).
 */
export const TEE_MEDIATOR_LIMITS: Readonly<{ pagesPerBuffer: number; buffersPerGuest: number; pagesPerGuest: number }> = /* @__PURE__ */ Object.freeze({
  pagesPerBuffer: 129,
  buffersPerGuest: 16,
  pagesPerGuest: 16384,
});

/**
 * Parameter attributes of `struct optee_msg_param` (optee_msg.h, OPTEE_MSG_ATTR_*): the type in
 * bits 0..7, META bit 8, NONCONTIG bit 9 (the buffer pointer is the address of a page list).
 */
export const OPTEE_MSG_ATTR = /* @__PURE__ */ Object.freeze({
  TYPE_NONE: 0x0,
  TYPE_VALUE_INPUT: 0x1,
  TYPE_VALUE_OUTPUT: 0x2,
  TYPE_VALUE_INOUT: 0x3,
  TYPE_RMEM_INPUT: 0x5,
  TYPE_RMEM_OUTPUT: 0x6,
  TYPE_RMEM_INOUT: 0x7,
  TYPE_TMEM_INPUT: 0x9,
  TYPE_TMEM_OUTPUT: 0xa,
  TYPE_TMEM_INOUT: 0xb,
  META: 1 << 8,
  NONCONTIG: 1 << 9,
});

/** A parameter of a {@link TeeMediatorMessage} (`struct optee_msg_param` as the guest wrote it). */
export interface TeeMediatorMessageParam {
  /** {@link OPTEE_MSG_ATTR} type, optionally with NONCONTIG / META. */
  attr: number;
  /** Temp memref: guest address (IPA) of the buffer's first byte; 0 is the NULL pointer. */
  bufPtr?: number;
  /** Temp memref size in bytes. */
  size?: number;
  /** Registered memref / REGISTER_SHM / UNREGISTER_SHM: the shared-memory cookie. */
  shmRef?: number;
}

/** A guest's `struct optee_msg_arg`, for {@link TeeMediator.guestCall}. */
export interface TeeMediatorMessage {
  /** OPTEE_MSG_CMD_*; anything but 0..5 is refused with EBADCMD. */
  cmd: number;
  /** Session id (INVOKE, CLOSE, CANCEL). */
  session?: number;
  /** The parameters (at most 4 are checked, like a one-page argument). */
  params?: TeeMediatorMessageParam[];
}

/** What a guest sees after {@link TeeMediator.guestCall}: a0 of the SMC and the message's ret / ret_origin. */
export interface TeeMediatorCallResult {
  /** OPTEE_SMC_RETURN_*: OK, ETHREAD_LIMIT, EBADCMD, ENOTAVAIL. */
  a0: number;
  /** `optee_msg_arg.ret` (TEE_RESULT), meaningful when a0 is OK. */
  ret: number;
  /** `optee_msg_arg.ret_origin` (TEE_ORIGIN). */
  retOrigin: number;
  /**
   * True when the message passed every mediator check and translation (it would reach OP-TEE).
   * The raw hook stops there for OPEN/INVOKE/CLOSE/CANCEL: message-shaped calls have no TEE
   * session object behind them; REGISTER_SHM/UNREGISTER_SHM complete (pins kept / released).
   */
  forwarded: boolean;
  /** Pages this call held pinned while it ran (temp memrefs). */
  pinnedDuringCall: number;
}

/** Options of {@link TeeMediator}. */
export interface TeeMediatorOptions {
  /** Time for waits and traces. Default the system clock. */
  clock?: Clock;
  /**
   * Longest wait of a guest call for a free call slot (the guest's driver waits after
   * ETHREAD_LIMIT) before it fails with BUSY, origin COMMS. Default 30 000 ms.
   */
  threadWaitMs?: number;
  /** Xen's sharing limits; default {@link TEE_MEDIATOR_LIMITS}. Lower them to test the limits. */
  limits?: Partial<{ pagesPerBuffer: number; buffersPerGuest: number; pagesPerGuest: number }>;
  /** Diagnostics channel name (`false`: none). Default {@link TEE_MEDIATOR_CHANNEL}. */
  channel?: string | false;
}

/** Options of {@link TeeMediator.createGuest}. */
export interface TeeGuestOptions {
  /** Xen domain id: the VM id is `domid + 1` (dom0 is 1). Default: the lowest free id from 2. */
  domid?: number;
  /**
   * The guest's tee-supplicant. Default: a new {@link Supplicant} over `storage`, bound to the
   * guest's partition and started. A given one is bound and started too (unless
   * `startSupplicant: false`); `false`: none (as a guest booted without one).
   */
  supplicant?: Supplicant | false;
  /** Start the supplicant at creation. Default true. */
  startSupplicant?: boolean;
  /** The REE FS root of the default supplicant. Default a new in-memory store. */
  storage?: FileStore;
  /** Concurrent standard calls of this guest, at most the TEE's thread count (the default). */
  threads?: number;
}

/** The TEE a mediator drives: an {@link OpTee} built with `virtualization: true`. */
export interface TeeMediatorTarget {
  /** A fast SMC: a0..a7 in, a0..a3 out. */
  smc(regs: readonly number[]): number[];
  /** The partition of a created guest. */
  partition(vmId: number): OpTeePartition | undefined;
}

/** An event on {@link TEE_MEDIATOR_CHANNEL}. */
export type TeeMediatorEvent = {
  mediator: TeeMediator;
  vmId: number;
  time: number;
} & (
  | { type: "guest"; detail: "created" | "destroyed" }
  | { type: "call"; cmd: number; a0: number; ret: number; origin: number }
  | { type: "pin"; pages: number; pinned: number }
  | { type: "unpin"; pages: number; pinned: number }
);

const ALLOWED = new Set<number>([OPTEE_MSG_CMD.OPEN_SESSION, OPTEE_MSG_CMD.INVOKE_COMMAND, OPTEE_MSG_CMD.CLOSE_SESSION, OPTEE_MSG_CMD.CANCEL, OPTEE_MSG_CMD.REGISTER_SHM, OPTEE_MSG_CMD.UNREGISTER_SHM]);
/** Xen's DOMID_FIRST_RESERVED: domain ids from here on are not guests. */
const DOMID_FIRST_RESERVED = 0x7ff0;
/** Guest RAM in the model's address map starts here (IPA page number; 0x40000000 like QEMU virt). */
const GUEST_RAM_BASE_PAGE = 0x40000;

function teeErr(code: number, origin: number, message: string): TeeError {
  return new TeeError(`${message} (${teeResultName(code)}, origin ${origin})`, code, origin);
}

/** A shared buffer the mediator accounts: its guest pages, translated and pinned. */
interface Pinned {
  /** Host PA pages (pinned). */
  pages: number[];
  /** Registered (kept until UNREGISTER) or temporary (for one call). */
  registered: boolean;
}

/**
 * One guest's state in the mediator (Xen's `struct optee_domain`): its address map, calls, buffers.
 * @internal
 */
class GuestState {
  readonly vmId: number;
  readonly threads: number;
  readonly p2m = new Map<number, number>();
  readonly pins = new Map<number, number>();
  readonly buffers = new Map<number | object, Pinned>();
  pinnedPages = 0;
  sharedPages = 0;
  calls = 0;
  waiters: ((ok: boolean) => void)[] = [];
  nextIpaPage = GUEST_RAM_BASE_PAGE;
  nextCookie = 1;
  destroyed = false;
  constructor(vmId: number, threads: number) {
    this.vmId = vmId;
    this.threads = threads;
  }
}

/**
 * The hypervisor's OP-TEE mediator (Xen's `optee.c` as a model).
 *
 * - Probe (constructor): CALLS_UID must be OP-TEE's; VM_DESTROYED answering UNKNOWN_FUNCTION
 *   means OP-TEE was built without virtualization (TeeError NOT_SUPPORTED, origin COMMS);
 *   GET_THREAD_COUNT gives the per-guest call limit; EXCHANGE_CAPABILITIES must offer DYNAMIC_SHM
 *   (the mediator drops static shared memory).
 * - VM ids: 0 is the hypervisor (never a guest), dom0/the host is 1, guests from 2, or Xen's
 *   `domid + 1`. VM_CREATED / VM_DESTROYED carry the id in a1 and 0 in a7.
 * - Every guest call goes through the mediator: tagged with the VM id; at most the TEE's thread
 *   count of standard calls at once per guest (the next gets ETHREAD_LIMIT: the raw hook reports
 *   it, a {@link TeeGuest} client waits for a slot as Linux's driver does, bounded); only OPEN,
 *   INVOKE, CLOSE, CANCEL, REGISTER_SHM, UNREGISTER_SHM pass (else EBADCMD); temp memrefs must be
 *   NONCONTIG (a contiguous one with a non-NULL pointer gets BAD_PARAMETERS, origin COMMS); each
 *   4 KiB page is translated through the guest's address map and pinned, for the call (temp) or
 *   until UNREGISTER (registered), within {@link TEE_MEDIATOR_LIMITS} (else OUT_OF_MEMORY, origin
 *   COMMS); an unmapped page gets BAD_PARAMETERS, origin COMMS.
 * - A call for a VM id never created gets ENOTAVAIL.
 *
 * @example
 * ```ts
 * const tee = new OpTee({ tas: [ftpmTa()], virtualization: true });
 * const mediator = new TeeMediator(tee);
 * const guest = await mediator.createGuest();
 * const tpm = await Tpm.open(ftpmTee({ tee: guest }));
 * ```
 */
export class TeeMediator {
  /** OP-TEE's thread count (GET_THREAD_COUNT): the per-guest limit of concurrent standard calls. */
  readonly threads: number;
  /** The sharing limits in force. */
  readonly limits: Readonly<{ pagesPerBuffer: number; buffersPerGuest: number; pagesPerGuest: number }>;
  readonly #tee: TeeMediatorTarget;
  readonly #clock: Clock;
  readonly #threadWaitMs: number;
  readonly #channel: TraceChannel | undefined;
  readonly #guests = new Map<number, { state: GuestState; guest: TeeGuest }>();
  /** Host physical pages: a bump allocator with a free list. */
  #nextPa = 0x80000;
  #freePa: number[] = [];

  /**
   * Probes the TEE as Xen's optee_probe does.
   *
   * @param tee - an `OpTee` built with `virtualization: true` (or anything answering its fast calls).
   * @param options - {@link TeeMediatorOptions}.
   * @throws TeeError NOT_SUPPORTED (origin COMMS) when the TEE is not OP-TEE, was built without
   * virtualization, lacks DYNAMIC_SHM or does not report its thread count; BAD_PARAMETERS (origin
   * API) for a bad option.
   */
  constructor(tee: TeeMediatorTarget, options: TeeMediatorOptions = {}) {
    if (!tee || typeof tee.smc !== "function" || typeof tee.partition !== "function") throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, "TeeMediator: tee must be an OpTee (smc, partition)");
    this.#tee = tee;
    const limits = { ...TEE_MEDIATOR_LIMITS, ...(options.limits ?? {}) };
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isInteger(v) || v < 1) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `TeeMediator: limits.${k} must be a positive integer, got ${String(v)}`);
    }
    this.limits = Object.freeze(limits);
    this.#clock = options.clock ?? systemClock;
    this.#threadWaitMs = options.threadWaitMs ?? 30_000;
    if (!(this.#threadWaitMs >= 0)) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, "TeeMediator: threadWaitMs must be non-negative");
    const ch = options.channel ?? TEE_MEDIATOR_CHANNEL;
    this.#channel = ch === false ? undefined : traceChannel(ch);

    const notSupported = (m: string): never => {
      throw teeErr(TEE_RESULT.NOT_SUPPORTED, TEE_ORIGIN.COMMS, `TeeMediator: ${m}`);
    };
    const R = OPTEE_SMC_RETURN;
    // optee_probe: the UID identifies OP-TEE.
    const uid = this.#smc([OPTEE_SMC.CALLS_UID]);
    if (OPTEE_MSG_UID.some((w, i) => (uid[i] ?? 0) >>> 0 !== w)) notSupported("the TEE's CALLS_UID is not OP-TEE's");
    // A VM_DESTROYED probe for the hypervisor's own id (never a guest): UNKNOWN_FUNCTION → no virtualization.
    const probe = this.#smc([OPTEE_SMC.VM_DESTROYED, OPTEE_HYP_CLIENT_ID]);
    if (probe[0] === R.UNKNOWN_FUNCTION) notSupported("OP-TEE was built without virtualization (CFG_NS_VIRTUALIZATION): VM_DESTROYED is an unknown function");
    const tc = this.#smc([OPTEE_SMC.GET_THREAD_COUNT]);
    if (tc[0] !== R.OK || !((tc[1] ?? 0) >= 1)) notSupported(`GET_THREAD_COUNT failed (a0 ${String(tc[0])})`);
    this.threads = tc[1]!;
    const caps = this.#smc([OPTEE_SMC.EXCHANGE_CAPABILITIES]);
    if (caps[0] !== R.OK || !((caps[1] ?? 0) & OPTEE_SMC_SEC_CAP.DYNAMIC_SHM)) notSupported("OP-TEE does not offer dynamic shared memory (DYNAMIC_SHM), which the mediator requires");
  }

  #smc(regs: number[]): number[] {
    const r = [...regs];
    while (r.length < 8) r.push(0);
    return this.#tee.smc(r).map((v) => v >>> 0);
  }

  #publish(ev: Record<string, unknown> & { type: string; vmId: number }): void {
    const ch = this.#channel;
    if (ch?.hasSubscribers) ch.publish({ ...ev, mediator: this, time: this.#clock.now() });
  }

  /** The live guests, in creation order. */
  get guests(): TeeGuest[] {
    return [...this.#guests.values()].map((g) => g.guest);
  }

  /** The live guest with this VM id, if any. */
  guest(vmId: number): TeeGuest | undefined {
    return this.#guests.get(vmId)?.guest;
  }

  /**
   * Creates a guest: picks its VM id, sends VM_CREATED (a1 = id, a7 = 0), and gives it a
   * supplicant bound to its partition (see {@link TeeGuestOptions}).
   *
   * @param options - {@link TeeGuestOptions}.
   * @returns the guest, a {@link TeeDevice}.
   * @throws TeeError BAD_PARAMETERS (origin API) for a bad domid or threads, or a VM id in use;
   * OUT_OF_MEMORY (origin COMMS) when VM_CREATED answers ENOTAVAIL (OP-TEE has no room for
   * another partition).
   */
  async createGuest(options: TeeGuestOptions = {}): Promise<TeeGuest> {
    const bad = (m: string): never => {
      throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `TeeMediator.createGuest: ${m}`);
    };
    let vmId: number;
    if (options.domid !== undefined) {
      const d = options.domid;
      if (!Number.isInteger(d) || d < 0 || d >= DOMID_FIRST_RESERVED) bad(`domid must be an integer 0..${DOMID_FIRST_RESERVED - 1}, got ${String(d)}`);
      vmId = d + 1; // Xen: OPTEE_CLIENT_ID(domain) = domain_id + 1
      if (this.#guests.has(vmId)) bad(`VM id ${vmId} (domid ${d}) is in use`);
    } else {
      vmId = 2;
      while (this.#guests.has(vmId)) vmId++;
    }
    const threads = options.threads ?? this.threads;
    if (!Number.isInteger(threads) || threads < 1 || threads > this.threads) bad(`threads must be an integer 1..${this.threads}, got ${String(threads)}`);
    const supplicantOpt = options.supplicant;
    if (supplicantOpt !== undefined && supplicantOpt !== false && !(supplicantOpt instanceof Supplicant)) bad("supplicant must be a Supplicant or false");

    const r = this.#smc([OPTEE_SMC.VM_CREATED, vmId, 0, 0, 0, 0, 0, OPTEE_HYP_CLIENT_ID]);
    if (r[0] !== OPTEE_SMC_RETURN.OK) {
      throw teeErr(TEE_RESULT.OUT_OF_MEMORY, TEE_ORIGIN.COMMS, `VM_CREATED for VM ${vmId} answered ${r[0] === OPTEE_SMC_RETURN.ENOTAVAIL ? "ENOTAVAIL: OP-TEE has no room for another partition" : `0x${r[0]!.toString(16)}`}`);
    }
    const part = this.#tee.partition(vmId);
    if (!part) {
      this.#smc([OPTEE_SMC.VM_DESTROYED, vmId, 0, 0, 0, 0, 0, OPTEE_HYP_CLIENT_ID]);
      throw teeErr(TEE_RESULT.GENERIC, TEE_ORIGIN.COMMS, `VM ${vmId} was created but OP-TEE has no partition for it`);
    }
    const state = new GuestState(vmId, threads);
    const supplicant = supplicantOpt === false ? undefined : (supplicantOpt ?? new Supplicant({ storage: options.storage ?? new MemoryFileStore(), clock: this.#clock, name: `tee-supplicant-vm${vmId}` }));
    const guest = new TeeGuest(this, state, part, supplicant);
    this.#guests.set(vmId, { state, guest });
    try {
      if (supplicant) {
        supplicant.bind(part.port);
        if (options.startSupplicant ?? true) await supplicant.start();
      }
    } catch (e) {
      await this.destroyGuest(guest);
      throw e;
    }
    this.#publish({ type: "guest", detail: "created", vmId });
    return guest;
  }

  /**
   * Destroys a guest as Xen's domain teardown does: fails its waiting calls, unpins and unmaps its
   * buffers, sends VM_DESTROYED (a1 = id, a7 = 0; OP-TEE frees the partition: its contexts and
   * sessions then reject with TeeError COMMUNICATION, origin COMMS), and stops its supplicant.
   * The VM id may be reused by a later guest. Destroying a destroyed guest does nothing.
   *
   * @param guest - a guest of this mediator.
   * @throws TeeError BAD_PARAMETERS (origin API) for a guest of another mediator.
   */
  async destroyGuest(guest: TeeGuest): Promise<void> {
    if (!(guest instanceof TeeGuest) || guest.mediator !== this) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, "TeeMediator.destroyGuest: not a guest of this mediator");
    const entry = this.#guests.get(guest.vmId);
    if (!entry || entry.guest !== guest) return;
    const s = entry.state;
    s.destroyed = true;
    // optee_relinquish_resources: calls, then shared buffers.
    for (const w of s.waiters.splice(0)) w(false);
    for (const b of [...s.buffers.values()]) this.#unpin(s, b);
    s.buffers.clear();
    for (const pa of s.p2m.values()) this.#freePa.push(pa);
    s.p2m.clear();
    this.#guests.delete(guest.vmId);
    this.#smc([OPTEE_SMC.VM_DESTROYED, guest.vmId, 0, 0, 0, 0, 0, OPTEE_HYP_CLIENT_ID]);
    guest.markDestroyed();
    if (guest.supplicant) await guest.supplicant.stop();
    this.#publish({ type: "guest", detail: "destroyed", vmId: guest.vmId });
  }

  /** Pages pinned now for guest `vmId` (0 for an unknown id). */
  pinnedPages(vmId: number): number {
    return this.#guests.get(vmId)?.state.pinnedPages ?? 0;
  }

  /**
   * A raw standard call from guest `vmId` (the test hook): a message-shaped `optee_msg_arg` goes
   * through every mediator check and translation (see {@link TeeMediatorCallResult.forwarded}).
   *
   * @param vmId - the calling guest's VM id.
   * @param msg - the message.
   * @returns a0 and the message's ret / ret_origin.
   */
  guestCall(vmId: number, msg: TeeMediatorMessage): TeeMediatorCallResult {
    const entry = this.#guests.get(vmId);
    const out = (a0: number, ret = 0, retOrigin = 0, forwarded = false, pinnedDuringCall = 0): TeeMediatorCallResult => {
      this.#publish({ type: "call", vmId, cmd: msg?.cmd, a0, ret, origin: retOrigin });
      return { a0, ret, retOrigin, forwarded, pinnedDuringCall };
    };
    // OP-TEE: a std call from a guest never created (or the hypervisor's id 0) → ENOTAVAIL.
    if (!entry || vmId === OPTEE_HYP_CLIENT_ID) return out(this.#smc([OPTEE_SMC.CALL_WITH_ARG, 0, 0, 0, 0, 0, 0, vmId])[0]!);
    const s = entry.state;
    if (s.calls >= s.threads) return out(OPTEE_SMC_RETURN.ETHREAD_LIMIT);
    s.calls++;
    try {
      if (!msg || typeof msg !== "object" || !ALLOWED.has(msg.cmd)) return out(OPTEE_SMC_RETURN.EBADCMD);
      const params = Array.isArray(msg.params) ? msg.params.slice(0, 4) : [];
      const A = OPTEE_MSG_ATTR;
      if (msg.cmd === OPTEE_MSG_CMD.REGISTER_SHM || msg.cmd === OPTEE_MSG_CMD.UNREGISTER_SHM) {
        const p = params[0];
        const cookie = p?.shmRef;
        if (!p || typeof cookie !== "number") return out(OPTEE_SMC_RETURN.OK, TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.COMMS);
        if (msg.cmd === OPTEE_MSG_CMD.UNREGISTER_SHM) {
          const b = s.buffers.get(cookie);
          if (!b) return out(OPTEE_SMC_RETURN.OK, TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.TEE);
          this.#unpin(s, b);
          s.buffers.delete(cookie);
          return out(OPTEE_SMC_RETURN.OK, 0, TEE_ORIGIN.TEE, true);
        }
        if (s.buffers.has(cookie)) return out(OPTEE_SMC_RETURN.OK, TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.COMMS);
        const pin = this.#translate(s, p.attr, p.bufPtr ?? 0, p.size ?? 0, true);
        if (pin instanceof TeeError) return out(OPTEE_SMC_RETURN.OK, pin.teeCode, pin.origin);
        s.buffers.set(cookie, pin);
        return out(OPTEE_SMC_RETURN.OK, 0, TEE_ORIGIN.TEE, true);
      }
      const temps: Pinned[] = [];
      try {
        for (const p of params) {
          const type = (p?.attr ?? 0) & 0xff;
          if (type >= A.TYPE_TMEM_INPUT && type <= A.TYPE_TMEM_INOUT) {
            const pin = this.#translate(s, p.attr, p.bufPtr ?? 0, p.size ?? 0, false);
            if (pin instanceof TeeError) return out(OPTEE_SMC_RETURN.OK, pin.teeCode, pin.origin);
            temps.push(pin);
          } else if (type >= A.TYPE_RMEM_INPUT && type <= A.TYPE_RMEM_INOUT) {
            if (typeof p.shmRef !== "number" || !s.buffers.has(p.shmRef)) return out(OPTEE_SMC_RETURN.OK, TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.COMMS);
          }
        }
        const pinned = temps.reduce((n, t) => n + t.pages.length, 0);
        return out(OPTEE_SMC_RETURN.OK, 0, TEE_ORIGIN.TEE, true, pinned);
      } finally {
        for (const t of temps) this.#unpin(s, t);
      }
    } finally {
      s.calls--;
      this.#wakeOne(s);
    }
  }

  /**
   * Maps `size` bytes of new guest RAM in guest `vmId`'s address map (the test hook's way to get
   * guest addresses for {@link TeeMediator.guestCall}); returns the IPA of the first byte.
   *
   * @throws TeeError BAD_PARAMETERS (origin API) for an unknown guest or a bad size.
   */
  mapGuestMemory(vmId: number, size: number): number {
    const s = this.#guests.get(vmId)?.state;
    if (!s) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `no guest with VM id ${vmId}`);
    if (!Number.isSafeInteger(size) || size < 1) throw teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API, `size must be a positive integer, got ${String(size)}`);
    return this.#map(s, size) * TEE_MEDIATOR_PAGE_SIZE;
  }

  /** The host PA page a guest IPA page maps to, if mapped. */
  translate(vmId: number, ipa: number): number | undefined {
    const pa = this.#guests.get(vmId)?.state.p2m.get(Math.floor(ipa / TEE_MEDIATOR_PAGE_SIZE));
    return pa === undefined ? undefined : pa * TEE_MEDIATOR_PAGE_SIZE + (ipa % TEE_MEDIATOR_PAGE_SIZE);
  }

  // ---- internal: address map, pins, call slots ----

  /** Maps fresh guest pages (first IPA page returned). */
  #map(s: GuestState, size: number): number {
    const n = Math.max(1, Math.ceil(size / TEE_MEDIATOR_PAGE_SIZE));
    const first = s.nextIpaPage;
    for (let i = 0; i < n; i++) s.p2m.set(first + i, this.#freePa.pop() ?? this.#nextPa++);
    s.nextIpaPage += n;
    return first;
  }

  #unmap(s: GuestState, firstPage: number, size: number): void {
    const n = Math.max(1, Math.ceil(size / TEE_MEDIATOR_PAGE_SIZE));
    for (let i = 0; i < n; i++) {
      const pa = s.p2m.get(firstPage + i);
      if (pa !== undefined) {
        s.p2m.delete(firstPage + i);
        this.#freePa.push(pa);
      }
    }
  }

  /**
   * Xen's translate_params for one memref: NONCONTIG required for a non-NULL temp buffer; each
   * page translated (unmapped → BAD_PARAMETERS/COMMS) and pinned within the limits
   * (OUT_OF_MEMORY/COMMS). Returns the pinned buffer or the error to put in `ret`.
   */
  #translate(s: GuestState, attr: number, bufPtr: number, size: number, registered: boolean): Pinned | TeeError {
    const bad = (m: string) => teeErr(TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.COMMS, `VM ${s.vmId}: ${m}`);
    const nomem = (m: string) => teeErr(TEE_RESULT.OUT_OF_MEMORY, TEE_ORIGIN.COMMS, `VM ${s.vmId}: ${m}`);
    if (!Number.isSafeInteger(bufPtr) || bufPtr < 0 || !Number.isSafeInteger(size) || size < 0) return bad("bad buffer address or size");
    if (!((attr ?? 0) & OPTEE_MSG_ATTR.NONCONTIG)) {
      // Only NULL contiguous temp memrefs are passed (Xen: static shm is dropped).
      return bufPtr === 0 && !registered ? { pages: [], registered } : bad("a contiguous memref with a non-NULL pointer (only NONCONTIG page lists are accepted)");
    }
    if (bufPtr === 0 || size === 0) return bufPtr === 0 && size === 0 && !registered ? { pages: [], registered } : bad("NONCONTIG memref without buffer");
    const offset = bufPtr % TEE_MEDIATOR_PAGE_SIZE;
    const count = Math.ceil((offset + size) / TEE_MEDIATOR_PAGE_SIZE);
    const L = this.limits;
    if (count > L.pagesPerBuffer) return nomem(`a buffer of ${count} pages (more than ${L.pagesPerBuffer})`);
    if (s.buffers.size >= L.buffersPerGuest) return nomem(`more than ${L.buffersPerGuest} shared buffers`);
    // allocate_optee_shm_buf: `new >= MAX_TOTAL_SMH_BUF_PG` is refused.
    if (s.sharedPages + count >= L.pagesPerGuest) return nomem(`${s.sharedPages + count} shared pages (limit ${L.pagesPerGuest})`);
    const first = Math.floor(bufPtr / TEE_MEDIATOR_PAGE_SIZE);
    const pages: number[] = [];
    for (let i = 0; i < count; i++) {
      const pa = s.p2m.get(first + i);
      if (pa === undefined) return bad(`guest page 0x${((first + i) * TEE_MEDIATOR_PAGE_SIZE).toString(16)} is not guest RAM`);
      pages.push(pa);
    }
    const pin: Pinned = { pages, registered };
    for (const pa of pages) s.pins.set(pa, (s.pins.get(pa) ?? 0) + 1);
    s.pinnedPages += count;
    s.sharedPages += count;
    if (!registered) s.buffers.set(pin, pin);
    this.#publish({ type: "pin", vmId: s.vmId, pages: count, pinned: s.pinnedPages });
    return pin;
  }

  #unpin(s: GuestState, b: Pinned): void {
    if (!b.registered) {
      if (!s.buffers.delete(b)) return;
    }
    for (const pa of b.pages) {
      const n = (s.pins.get(pa) ?? 0) - 1;
      if (n > 0) s.pins.set(pa, n);
      else s.pins.delete(pa);
    }
    s.pinnedPages -= b.pages.length;
    s.sharedPages -= b.pages.length;
    if (b.pages.length) this.#publish({ type: "unpin", vmId: s.vmId, pages: b.pages.length, pinned: s.pinnedPages });
    b.pages = [];
  }

  #wakeOne(s: GuestState): void {
    const w = s.waiters.shift();
    if (w) w(true);
  }

  /**
   * Runs one standard call of a guest client: a call slot (waiting after ETHREAD_LIMIT, bounded),
   * the command check, temp buffers mapped, translated and pinned for the call, then `fn`.
   * @internal
   */
  async std<T>(state: object, cmd: number, temps: readonly Uint8Array[], signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const s = state as GuestState;
    if (s.destroyed) throw goneError(s.vmId);
    if (!ALLOWED.has(cmd)) throw teeErr(TEE_RESULT.NOT_SUPPORTED, TEE_ORIGIN.COMMS, `VM ${s.vmId}: command ${cmd} refused (EBADCMD)`);
    while (s.calls >= s.threads) {
      // ETHREAD_LIMIT: the guest's driver waits for a call to complete (Linux
      // drivers/tee/optee/smc_abi.c, optee_cq_wait_for_completion), bounded here.
      const ok = await new Promise<boolean>((resolve) => {
        if (signal?.aborted) return resolve(false);
        const done = (v: boolean) => {
          const i = s.waiters.indexOf(done);
          if (i >= 0) s.waiters.splice(i, 1);
          signal?.removeEventListener("abort", ab);
          timer.clear();
          resolve(v);
        };
        const ab = () => done(false);
        const timer = this.#clock.setTimer(this.#threadWaitMs, () => done(false));
        s.waiters.push(done);
        signal?.addEventListener("abort", ab, { once: true });
      });
      if (s.destroyed) throw goneError(s.vmId);
      if (!ok) throw signal?.aborted ? teeErr(TEE_RESULT.CANCEL, TEE_ORIGIN.COMMS, `VM ${s.vmId}: cancelled while waiting for a call slot`) : teeErr(TEE_RESULT.BUSY, TEE_ORIGIN.COMMS, `VM ${s.vmId}: all ${s.threads} call slots stayed busy (ETHREAD_LIMIT)`);
    }
    s.calls++;
    const mapped: { first: number; size: number }[] = [];
    const pins: Pinned[] = [];
    try {
      for (const buf of temps) {
        const first = this.#map(s, buf.length);
        mapped.push({ first, size: buf.length });
        const pin = this.#translate(s, OPTEE_MSG_ATTR.TYPE_TMEM_INOUT | OPTEE_MSG_ATTR.NONCONTIG, first * TEE_MEDIATOR_PAGE_SIZE, Math.max(1, buf.length), false);
        if (pin instanceof TeeError) throw pin;
        pins.push(pin);
      }
      return await fn();
    } finally {
      for (const p of pins) this.#unpin(s, p);
      for (const m of mapped) this.#unmap(s, m.first, m.size);
      s.calls--;
      this.#wakeOne(s);
    }
  }

  /**
   * Registers a guest shared buffer (REGISTER_SHM): maps it, translates and pins its pages until
   * {@link TeeMediator.unregister}.
   * @internal
   */
  register(state: object, key: object, size: number): void {
    const s = state as GuestState;
    if (s.destroyed) throw goneError(s.vmId);
    const first = this.#map(s, size);
    const pin = this.#translate(s, OPTEE_MSG_ATTR.TYPE_TMEM_INOUT | OPTEE_MSG_ATTR.NONCONTIG, first * TEE_MEDIATOR_PAGE_SIZE, Math.max(1, size), true);
    if (pin instanceof TeeError) {
      this.#unmap(s, first, size);
      throw pin;
    }
    s.buffers.set(key, pin);
    (pin as Pinned & { first?: number; size?: number }).first = first;
    (pin as Pinned & { first?: number; size?: number }).size = size;
  }

  /** UNREGISTER_SHM: unpins and unmaps. @internal */
  unregister(state: object, key: object): void {
    const s = state as GuestState;
    const pin = s.buffers.get(key) as (Pinned & { first?: number; size?: number }) | undefined;
    if (!pin) return;
    this.#unpin(s, pin);
    s.buffers.delete(key);
    if (pin.first !== undefined) this.#unmap(s, pin.first, pin.size ?? 1);
  }
}

function goneError(vmId: number): TeeError {
  return teeErr(TEE_RESULT.COMMUNICATION, TEE_ORIGIN.COMMS, `guest VM ${vmId} was destroyed`);
}

function tempBuffersOf(op: TeeOperation | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of op?.params ?? []) {
    const t = p?.type;
    if ((t === TEE_PARAM_TYPE.MEMREF_TEMP_INPUT || t === TEE_PARAM_TYPE.MEMREF_TEMP_OUTPUT || t === TEE_PARAM_TYPE.MEMREF_TEMP_INOUT) && p.buffer instanceof Uint8Array && p.buffer.length > 0) out.push(p.buffer);
  }
  return out;
}

/**
 * One guest's view of the TEE through a {@link TeeMediator}: a {@link TeeDevice} (so `ftpmTee({
 * tee: guest })` opens this guest's fTPM) whose every call goes through the mediator, reaching the
 * guest's own OP-TEE partition (its own TA instances, sessions, supplicant and storage).
 */
export class TeeGuest implements TeeDevice {
  /** "optee-guest-<vmId>". */
  readonly kind: string;
  /** The VM id OP-TEE knows this guest by (Xen: domid + 1). */
  readonly vmId: number;
  /** The guest's tee-supplicant, if it has one. */
  readonly supplicant: Supplicant | undefined;
  /** The mediator it belongs to. */
  readonly mediator: TeeMediator;
  readonly #state: GuestState;
  readonly #part: OpTeePartition;
  #destroyed = false;
  readonly #listeners = new Set<(s: TeeDeviceStatus) => void>();

  /** @internal */
  constructor(mediator: TeeMediator, state: object, part: OpTeePartition, supplicant: Supplicant | undefined) {
    this.mediator = mediator;
    this.#state = state as GuestState; // the mediator's own bookkeeping, opaque to users
    this.#part = part;
    this.vmId = this.#state.vmId;
    this.kind = `optee-guest-${this.#state.vmId}`;
    this.supplicant = supplicant;
    part.device.onStatus((s) => {
      for (const fn of [...this.#listeners]) {
        try {
          fn(s);
        } catch {
          // a listener's error is its own
        }
      }
    });
  }

  /** True once {@link TeeMediator.destroyGuest} ran. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Pages of this guest pinned now (temp buffers of calls in flight and registered shared memory). */
  get pinnedPages(): number {
    return this.#state.pinnedPages;
  }

  /** Shared buffers this guest has with OP-TEE now (registered plus temp buffers of calls in flight). */
  get sharedBuffers(): number {
    return this.#state.buffers.size;
  }

  /** Standard calls of this guest in OP-TEE now. */
  get callsInFlight(): number {
    return this.#state.calls;
  }

  /** @internal */
  markDestroyed(): void {
    this.#destroyed = true;
  }

  /** The raw message hook for this guest: {@link TeeMediator.guestCall} with its VM id. */
  callWithArg(msg: TeeMediatorMessage): TeeMediatorCallResult {
    return this.mediator.guestCall(this.vmId, msg);
  }

  /**
   * Opens a client context in the guest.
   *
   * @throws TeeError ITEM_NOT_FOUND (origin API) once the guest is destroyed (no TEE device).
   */
  async openContext(options?: { client?: TeeClientKind; signal?: AbortSignal }): Promise<TeeContext> {
    if (this.#destroyed) throw teeErr(TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.API, `guest VM ${this.vmId} was destroyed: no TEE device`);
    const inner = await this.#part.device.openContext(options);
    return new GuestContext(this.mediator, this.#state, inner);
  }

  /** The partition's status (not present once destroyed). */
  status(): TeeDeviceStatus {
    return this.#destroyed ? { present: false, supplicant: this.supplicant ? "stopped" : "absent" } : this.#part.device.status();
  }

  /** Subscribes to status changes. */
  onStatus(fn: (status: TeeDeviceStatus) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
}

/** A context of a guest: each call a standard call through the mediator. */
class GuestContext implements TeeContext {
  readonly client: TeeClientKind;
  readonly #m: TeeMediator;
  readonly #s: GuestState;
  readonly #inner: TeeContext;
  readonly #sessions = new Set<GuestSession>();
  readonly #shm = new Set<TeeSharedMemory>();

  constructor(m: TeeMediator, s: GuestState, inner: TeeContext) {
    this.#m = m;
    this.#s = s;
    this.#inner = inner;
    this.client = inner.client;
  }

  #check(): void {
    if (this.#s.destroyed) throw goneError(this.#s.vmId);
  }

  get sharedMemoryCount(): number {
    return this.#inner.sharedMemoryCount;
  }
  get sessionCount(): number {
    return this.#inner.sessionCount;
  }

  async openSession(uuid: string, options: TeeOpenSessionOptions = {}): Promise<TeeSession> {
    this.#check();
    const inner = await this.#m.std(this.#s, OPTEE_MSG_CMD.OPEN_SESSION, tempBuffersOf(options?.operation), options?.signal, () => this.#inner.openSession(uuid, options));
    const s = new GuestSession(this.#m, this.#s, inner, this.client, () => this.#sessions.delete(s));
    this.#sessions.add(s);
    return s;
  }

  allocateSharedMemory(size: number, flags?: number): TeeSharedMemory {
    this.#check();
    const shm = this.#inner.allocateSharedMemory(size, flags);
    return this.#registered(shm);
  }

  registerSharedMemory(buffer: Uint8Array, flags: number): TeeSharedMemory {
    this.#check();
    const shm = this.#inner.registerSharedMemory(buffer, flags);
    return this.#registered(shm);
  }

  /** REGISTER_SHM through the mediator (Linux registers every dynamic shm with OP-TEE). */
  #registered(shm: TeeSharedMemory): TeeSharedMemory {
    try {
      this.#m.register(this.#s, shm, shm.size);
    } catch (e) {
      this.#inner.releaseSharedMemory(shm);
      throw e;
    }
    this.#shm.add(shm);
    return shm;
  }

  releaseSharedMemory(shm: TeeSharedMemory): void {
    if (this.#shm.delete(shm)) this.#m.unregister(this.#s, shm);
    this.#inner.releaseSharedMemory(shm);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#sessions].map((s) => s.close()));
    for (const shm of this.#shm) this.#m.unregister(this.#s, shm);
    this.#shm.clear();
    if (!this.#s.destroyed) await this.#inner.close();
  }
}

/** A session of a guest. */
class GuestSession implements TeeSession {
  readonly id: number;
  readonly uuid: string;
  readonly #m: TeeMediator;
  readonly #s: GuestState;
  readonly #inner: TeeSession;
  readonly #forget: () => void;
  #closing: Promise<void> | undefined;

  constructor(m: TeeMediator, s: GuestState, inner: TeeSession, _client: TeeClientKind, forget: () => void) {
    this.#m = m;
    this.#s = s;
    this.#inner = inner;
    this.id = inner.id;
    this.uuid = inner.uuid;
    this.#forget = forget;
  }

  async invoke(command: number, operation?: TeeOperation, options?: TeeInvokeOptions): Promise<void> {
    if (this.#s.destroyed) throw goneError(this.#s.vmId);
    await this.#m.std(this.#s, OPTEE_MSG_CMD.INVOKE_COMMAND, tempBuffersOf(operation), options?.signal, () => this.#inner.invoke(command, operation, options));
  }

  requestCancellation(): void {
    // OPTEE_MSG_CMD_CANCEL: forwarded without waiting for a slot (a cancel must not queue behind the call it cancels).
    if (!this.#s.destroyed) this.#inner.requestCancellation();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#forget();
      if (this.#s.destroyed) return;
      try {
        await this.#m.std(this.#s, OPTEE_MSG_CMD.CLOSE_SESSION, [], undefined, () => this.#inner.close());
      } catch {
        // TEEC_CloseSession never fails
      }
    })();
    return this.#closing;
  }
}
