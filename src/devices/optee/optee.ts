/**
 * `OpTee`: a model of the OP-TEE OS as its normal-world clients see it. Trusted applications are
 * found in OP-TEE's order, run as instances with their flags, die on a panic and are respawned;
 * RPCs go to tee-supplicant through the kernel's queue; TAs keep persistent objects in REE FS or
 * RPMB FS; with virtualization each guest has a partition of its own.
 *
 * Sources: optee_os core/kernel/tee_ta_manager.c, core/kernel/ree_fs_ta.c, core/tee/tee_ree_fs.c,
 * core/tee/tee_rpmb_fs.c, core/arch/arm/kernel/virtualization.c, core/arch/arm/tee/entry_fast.c
 * (fast calls), core/include/optee_smc.h; Linux drivers/tee/optee/supp.c and call.c.
 *
 * @packageDocumentation
 */
import { TeeError } from "../../errors/index.js";
import { HUK_LENGTH, OPTEE_HYP_CLIENT_ID, OPTEE_SMC, OPTEE_SMC_RETURN, OPTEE_SMC_SEC_CAP, TEE_ORIGIN, TEE_RESULT, TEE_STORAGE } from "../../bus/tee/constants.js";
import { systemClock, type Clock } from "../../core/clock.js";
import { traceChannel, type TraceChannel } from "../../core/trace.js";
import type { TeeClientKind, TeeContext, TeeDevice, TeeDeviceStatus } from "../../bus/tee/client.js";
import type { TeeRpcServer, TeeSupplicantDaemon, TeeSupplicantPort } from "../../bus/tee/rpc.js";
import type { RpmbTarget } from "../../bus/tee/rpmb.js";
import type { TaDefinition } from "../../bus/tee/ta.js";
import type { SecureStorageBackend } from "./secure-storage.js";
import { Partition, type OpTeeEvent, type PartitionConfig } from "./optee-partition.js";
import { createReeFsBackend } from "./ree-fs-backend.js";
import { createRpmbFs } from "./rpmb-fs.js";
import { deriveRpmbKey } from "./rpmb-key.js";

export type { OpTeeEvent } from "./optee-partition.js";

/** Name of the diagnostics channel {@link OpTee} publishes {@link OpTeeTraceEvent}s on. */
export const OPTEE_DEVICE_CHANNEL = "tpmkit:device:optee";

/**
 * What {@link OpTee} publishes on {@link OPTEE_DEVICE_CHANNEL}: opens, invokes and closes with
 * their result and origin, panics, RPCs to the supplicant with their result, status changes, TA
 * log lines, partitions created and destroyed; each with the OpTee, the partition's VM id and the
 * clock time.
 */
export type OpTeeTraceEvent = OpTeeEvent & { device: OpTee; vmId: number; time: number };

/**
 * The fixed test HUK used when none is given: 16 zero bytes, what optee_os's weak
 * `tee_otp_get_hw_unique_key` stub (core/kernel/otp_stubs.c) returns on a platform without a
 * hardware unique key. Never a secret.
 */
export const OPTEE_TEST_HUK: Uint8Array = /* @__PURE__ */ new Uint8Array(HUK_LENGTH);

/** OP-TEE's CFG_NUM_THREADS default (optee_os mk/config.mk: `CFG_NUM_THREADS ?= 2`). */
export const OPTEE_DEFAULT_THREADS = 2;

/**
 * The OP-TEE UID that OPTEE_SMC_CALLS_UID returns (optee_os optee_smc.h, OPTEE_MSG_UID_0..3:
 * 384fb3e0-e7f8-11e3-af63-0002a5d5c51b).
 */
export const OPTEE_MSG_UID: readonly number[] = /* @__PURE__ */ Object.freeze([0x384fb3e0, 0xe7f811e3, 0xaf630002, 0xa5d5c51b]);

/** Options of {@link OpTee}. */
export interface OpTeeOptions {
  /**
   * The trusted applications this TEE knows. `early: true` TAs are linked into the TEE image and
   * found first; `early: false` TAs are the `<uuid>.ta` files of the supplicant's TA directory,
   * loaded through it (LOAD_TA).
   */
  tas: TaDefinition[];
  /**
   * tee-supplicant. Its `bind(port)` is called in the constructor with the host partition's port
   * (not with virtualization: there each guest's supplicant binds to its partition's port); the
   * daemon attaches when it is started.
   */
  supplicant?: TeeSupplicantDaemon;
  /** The platform's RPMB device (an eMMC's RPMB partition). */
  rpmb?: RpmbTarget;
  /**
   * The hardware unique key, {@link HUK_LENGTH} (16) bytes. Default {@link OPTEE_TEST_HUK} (16 zero
   * bytes, optee_os's stub). The REE FS keys and the RPMB key are derived from it.
   */
  huk?: Uint8Array;
  /** Time for waits and traces. Default the system clock. */
  clock?: Clock;
  /** CFG_REE_FS: the REE FS back end is built in. Default true. */
  reeFs?: boolean;
  /**
   * CFG_RPMB_FS: the RPMB FS back end is built in. Default false. TEE_STORAGE.PRIVATE means REE
   * FS when `reeFs`, else RPMB FS.
   */
  rpmbFs?: boolean;
  /**
   * How RPMB frames reach the device: `"supplicant"` (legacy OPTEE_RPC_CMD_RPMB through
   * tee-supplicant, the default) or `"kernel"` (in-kernel routing: no supplicant needed).
   */
  rpmbRouting?: "supplicant" | "kernel";
  /** CFG_RPMB_WRITE_KEY: program an unprogrammed RPMB key (test builds only). Default false. */
  rpmbWriteKey?: boolean;
  /**
   * Secure-storage back ends to use instead of (or besides) the built-in ones, by `storageId`
   * (a back end given here replaces the built-in one with the same id).
   */
  storageBackends?: SecureStorageBackend[];
  /**
   * What opening a REE TA returns when the supplicant is absent (its first RPC, an APPL shared
   * memory allocation, fails): `"out-of-memory"` (0xFFFF000C, today's OP-TEE: "ldelf failed with
   * res: 0xffff000c", the default) or `"item-not-found"` (0xFFFF0008, the 2019 OP-TEE of the
   * fTPM driver's review).
   */
  supplicantAbsentLoadResult?: "out-of-memory" | "item-not-found";
  /**
   * CFG_NUM_THREADS: concurrent calls per partition. Default {@link OPTEE_DEFAULT_THREADS} (2).
   * A call beyond it waits for a free thread, as the Linux driver does on ETHREAD_LIMIT, bounded
   * by its signal and `threadWaitMs`.
   */
  threads?: number;
  /** Longest wait for a free TEE thread before the call fails with BUSY (origin COMMS). Default 30 000 ms. */
  threadWaitMs?: number;
  /**
   * Longest wait of a user client's RPC for a supplicant to attach before it answers
   * COMMUNICATION (the kernel waits until the process is killed; tpmkit bounds it). Default
   * 60 000 ms. A kernel client never waits.
   */
  supplicantWaitMs?: number;
  /**
   * CFG_NS_VIRTUALIZATION: partitions are created by the hypervisor (VM_CREATED through
   * {@link OpTee.smc}) and reached with {@link OpTee.partition}. Default false.
   */
  virtualization?: boolean;
  /**
   * How many guest partitions may exist at once. Default 64. OP-TEE's CFG_VIRT_GUEST_COUNT defaults
   * to 2 (the TA RAM is split between that many guests); tpmkit's default is 64 so a mediator can
   * host 64 guests.
   */
  maxGuests?: number;
  /** Diagnostics channel name (`false`: none). Default {@link OPTEE_DEVICE_CHANNEL}. */
  channel?: string | false;
}

/** A partition's two faces: the TEE its clients see and the port its supplicant attaches to. */
export interface OpTeePartition {
  /** The partition as a TEE device (its clients' view). */
  device: TeeDevice;
  /** The partition's supplicant port (its `/dev/teepriv0`). */
  port: TeeSupplicantPort;
}

/**
 * The OP-TEE model. Without virtualization it is itself the host partition's {@link TeeDevice}
 * and {@link TeeSupplicantPort}. With virtualization it answers the hypervisor's fast calls
 * ({@link OpTee.smc}) and each guest's partition is reached with {@link OpTee.partition};
 * {@link OpTee.openContext} then rejects with ITEM_NOT_FOUND (origin API): OP-TEE built with
 * virtualization does not serve a normal world without a hypervisor, so no `/dev/tee0` appears.
 *
 * Behaviour, with the codes and origins clients see:
 * - TA lookup: early TA → secure-storage TA (none) → REE through the supplicant. Without a
 *   supplicant the first RPC (an APPL shm allocation) fails: a kernel client's at once, a user
 *   client's after waiting (bounded by its signal and `supplicantWaitMs`); the open then fails with
 *   OUT_OF_MEMORY (or ITEM_NOT_FOUND, see {@link OpTeeOptions.supplicantAbsentLoadResult}), origin
 *   TEE. A running supplicant without the TA: ITEM_NOT_FOUND, origin TEE.
 * - Instances: SINGLE_INSTANCE shares one; without MULTI_SESSION a second open while a session is
 *   open gets BUSY, origin TEE; INSTANCE_KEEP_ALIVE keeps it after the last close; otherwise the
 *   destroy entry point runs at the last close. create failing: its code, origin TEE; the
 *   open-session or invoke entry point failing: its code, origin TRUSTED_APP (outputs written back).
 * - Panic (TEE_Panic or any exception out of an entry point): TARGET_DEAD, origin TEE, for that
 *   call and every later one on the session; the instance is released and the next open respawns
 *   it, unless INSTANCE_KEEP_CRASHED (then later opens get TARGET_DEAD too).
 * - Cancellation (`requestCancellation()` or the call's signal): the call settles at once with
 *   CANCEL, origin COMMS (COMMUNICATION, origin COMMS, when it was waiting for the supplicant, as
 *   an interrupted wait in Linux supp.c answers). The TA model has no cancellation flag to poll,
 *   so OP-TEE's own CANCEL (origin TEE, from a TA that honours TEE_GetCancellationFlag) does not
 *   occur; the abandoned call finishes inside the TEE and its result is dropped.
 * - Secure storage: the GP panic rules apply on top of the back ends (a read failing outside
 *   SUCCESS/ITEM_NOT_FOUND/ACCESS_CONFLICT/OUT_OF_MEMORY/CORRUPT_OBJECT/STORAGE_NOT_AVAILABLE, or a
 *   write outside SUCCESS/STORAGE_NO_SPACE/OVERFLOW/CORRUPT_OBJECT/STORAGE_NOT_AVAILABLE, panics
 *   the TA).
 *
 * @example
 * ```ts
 * const tee = new OpTee({ tas: [myTa], supplicant });
 * const ctx = await tee.openContext({ client: "kernel" });
 * const session = await ctx.openSession(myTa.uuid);
 * ```
 */
export class OpTee implements TeeDevice, TeeSupplicantPort {
  /** "optee". */
  readonly kind = "optee";
  /** True when built with virtualization. */
  readonly virtualization: boolean;
  /** CFG_NUM_THREADS. */
  readonly threads: number;
  /** The most guest partitions at once. */
  readonly maxGuests: number;
  readonly #host: Partition | undefined;
  readonly #guests = new Map<number, Partition>();
  readonly #base: Omit<PartitionConfig, "kind" | "vmId" | "supplicantConfigured">;
  readonly #rpmb: RpmbTarget | undefined;
  readonly #tas: readonly TaDefinition[];

  /**
   * @param options - {@link OpTeeOptions}.
   * @throws TeeError BAD_PARAMETERS (origin API) for a bad option (a HUK that is not 16 bytes,
   * TAs that are not TaDefinitions or share a UUID, threads or maxGuests not a positive integer).
   */
  constructor(options: OpTeeOptions) {
    const bad = (m: string): never => {
      throw new TeeError(`OpTee: ${m}`, TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API);
    };
    const tas = options?.tas;
    if (!Array.isArray(tas)) bad("tas must be an array of TaDefinition");
    const seen = new Set<string>();
    for (const t of tas) {
      if (!t || typeof t.uuid !== "string" || typeof t.instantiate !== "function") bad("every TA needs a uuid and instantiate()");
      if (seen.has(t.uuid)) bad(`two TAs share the UUID ${t.uuid}`);
      seen.add(t.uuid);
    }
    const huk = options.huk ?? OPTEE_TEST_HUK;
    if (!(huk instanceof Uint8Array) || huk.length !== HUK_LENGTH) bad(`the HUK must be ${HUK_LENGTH} bytes`);
    const threads = options.threads ?? OPTEE_DEFAULT_THREADS;
    if (!Number.isInteger(threads) || threads < 1) bad(`threads must be a positive integer, got ${String(threads)}`);
    const maxGuests = options.maxGuests ?? 64;
    if (!Number.isInteger(maxGuests) || maxGuests < 1) bad(`maxGuests must be a positive integer, got ${String(maxGuests)}`);
    const threadWaitMs = options.threadWaitMs ?? 30_000;
    const supplicantWaitMs = options.supplicantWaitMs ?? 60_000;
    if (!(threadWaitMs >= 0) || !(supplicantWaitMs >= 0)) bad("threadWaitMs and supplicantWaitMs must be non-negative");
    const routing = options.rpmbRouting ?? "supplicant";
    if (routing !== "supplicant" && routing !== "kernel") bad(`rpmbRouting must be "supplicant" or "kernel", got ${String(routing)}`);
    const reeFs = options.reeFs ?? true;
    const rpmbFs = options.rpmbFs ?? false;

    const backends = new Map<number, SecureStorageBackend>();
    if (reeFs) backends.set(TEE_STORAGE.PRIVATE_REE, createReeFsBackend({ huk }));
    if (rpmbFs) {
      const rpmb = options.rpmb;
      backends.set(TEE_STORAGE.PRIVATE_RPMB, rpmb ? createRpmbFs({ key: deriveRpmbKey(huk, rpmb.cid), writeKey: options.rpmbWriteKey ?? false }) : noRpmb());
    }
    for (const b of options.storageBackends ?? []) {
      if (!b || typeof b.storageId !== "number") bad("every storage back end needs a storageId");
      backends.set(b.storageId, b);
    }

    this.virtualization = options.virtualization ?? false;
    this.threads = threads;
    this.maxGuests = maxGuests;
    this.#rpmb = options.rpmb;
    this.#tas = Object.freeze([...tas]);
    const ch = options.channel ?? OPTEE_DEVICE_CHANNEL;
    const channel: TraceChannel | undefined = ch === false ? undefined : traceChannel(ch);
    this.#base = {
      tas: this.#tas,
      clock: options.clock ?? systemClock,
      threads,
      threadWaitMs,
      supplicantWaitMs,
      supplicantAbsentLoadResult: options.supplicantAbsentLoadResult ?? "out-of-memory",
      backends,
      privateStorageId: reeFs ? TEE_STORAGE.PRIVATE_REE : TEE_STORAGE.PRIVATE_RPMB,
      rpmb: options.rpmb,
      kernelRpmb: routing === "kernel" ? options.rpmb : undefined,
      channel,
      owner: this,
    };
    if (!this.virtualization) {
      this.#host = new Partition({ ...this.#base, kind: "optee", vmId: 1, supplicantConfigured: options.supplicant !== undefined });
      options.supplicant?.bind(this);
    }
  }

  // ---- TeeDevice (the host partition) ----

  /**
   * Opens a client context on the host partition.
   *
   * @param options - `client` ("user" default, or "kernel") and a signal.
   * @returns the context.
   * @throws TeeError ITEM_NOT_FOUND (origin API) with virtualization (no host partition without a hypervisor).
   */
  async openContext(options?: { client?: TeeClientKind; signal?: AbortSignal }): Promise<TeeContext> {
    if (!this.#host) throw new TeeError("OpTee built with virtualization serves no normal world without a hypervisor: no /dev/tee0", TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.API);
    return this.#host.openContext(options);
  }

  /** The host partition's status; with virtualization: not present, supplicant absent. */
  status(): TeeDeviceStatus {
    return this.#host ? this.#host.status() : { present: false, supplicant: "absent" };
  }

  /** Subscribes to the host partition's status changes. */
  onStatus(fn: (status: TeeDeviceStatus) => void): () => void {
    return this.#host ? this.#host.onStatus(fn) : () => {};
  }

  // ---- TeeSupplicantPort (the host partition) ----

  /**
   * Attaches a supplicant to the host partition (opening `/dev/teepriv0`).
   *
   * @throws TeeError BUSY (origin COMMS) when one is attached; ITEM_NOT_FOUND (origin API) with virtualization.
   */
  attach(server: TeeRpcServer): () => void {
    if (!this.#host) throw new TeeError("OpTee built with virtualization: attach to a partition's port", TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.API);
    return this.#host.attach(server);
  }

  /** The REE-loaded TAs (`early: false`): what the supplicant's TA directory holds. */
  get reeTas(): readonly TaDefinition[] {
    return this.#tas.filter((t) => !t.early);
  }

  /** The platform's RPMB device, if any. */
  get rpmb(): RpmbTarget | undefined {
    return this.#rpmb;
  }

  // ---- virtualization ----

  /**
   * A fast SMC from the normal world or the hypervisor, `regs` = a0..a7; returns a0..a3.
   * Answers as optee_os core/arch/arm/tee/entry_fast.c does: CALLS_UID, GET_THREAD_COUNT,
   * EXCHANGE_CAPABILITIES (DYNAMIC_SHM, plus VIRTUALIZATION when built with it), GET_SHM_CONFIG
   * (ENOTAVAIL: no static shared memory), VM_CREATED / VM_DESTROYED (guest id in a1; a7 must be
   * the hypervisor's id 0, else ENOTAVAIL; VM_CREATED rejects guest id 0, an existing id and a
   * guest beyond `maxGuests` with ENOTAVAIL; VM_DESTROYED of an unknown id answers OK; without
   * virtualization both are UNKNOWN_FUNCTION). CALL_WITH_ARG from a guest never created
   * (a7) answers ENOTAVAIL; std calls of created partitions go through {@link OpTee.partition}.
   * Anything else: UNKNOWN_FUNCTION.
   *
   * @param regs - a0 (function id) .. a7.
   * @returns a0..a3.
   */
  smc(regs: readonly number[]): number[] {
    const a = (i: number) => (regs[i] ?? 0) >>> 0;
    const fid = a(0);
    const R = OPTEE_SMC_RETURN;
    switch (fid) {
      case OPTEE_SMC.CALLS_UID:
        return [...OPTEE_MSG_UID];
      case OPTEE_SMC.GET_THREAD_COUNT:
        return [R.OK, this.threads, 0, 0];
      case OPTEE_SMC.EXCHANGE_CAPABILITIES:
        return [R.OK, OPTEE_SMC_SEC_CAP.DYNAMIC_SHM | (this.virtualization ? OPTEE_SMC_SEC_CAP.VIRTUALIZATION : 0), 0, 0];
      case OPTEE_SMC.GET_SHM_CONFIG:
        return [R.ENOTAVAIL, 0, 0, 0];
      case OPTEE_SMC.VM_CREATED: {
        if (!this.virtualization) return [R.UNKNOWN_FUNCTION, 0, 0, 0];
        if (a(7) !== OPTEE_HYP_CLIENT_ID) return [R.ENOTAVAIL, 0, 0, 0];
        const id = a(1);
        if (id === OPTEE_HYP_CLIENT_ID || this.#guests.has(id) || this.#guests.size >= this.maxGuests) return [R.ENOTAVAIL, 0, 0, 0];
        const p = new Partition({ ...this.#base, kind: `optee-guest-${id}`, vmId: id, supplicantConfigured: false });
        this.#guests.set(id, p);
        p.publish({ type: "partition", detail: "created" });
        return [R.OK, 0, 0, 0];
      }
      case OPTEE_SMC.VM_DESTROYED: {
        if (!this.virtualization) return [R.UNKNOWN_FUNCTION, 0, 0, 0];
        if (a(7) !== OPTEE_HYP_CLIENT_ID) return [R.ENOTAVAIL, 0, 0, 0];
        const p = this.#guests.get(a(1));
        if (p) {
          this.#guests.delete(a(1));
          p.destroy();
        }
        return [R.OK, 0, 0, 0];
      }
      case OPTEE_SMC.CALL_WITH_ARG:
        if (this.virtualization && !this.#guests.has(a(7))) return [R.ENOTAVAIL, 0, 0, 0];
        return [R.EBADCMD, 0, 0, 0];
      default:
        return [R.UNKNOWN_FUNCTION, 0, 0, 0];
    }
  }

  /**
   * The partition of guest `vmId` (with virtualization), or the host partition for vmId 1 without
   * it. Each partition has its own TA instances, sessions, supplicant port and storage RPCs;
   * destroying it (VM_DESTROYED) releases them all, and its contexts and sessions then reject with
   * TeeError COMMUNICATION (origin COMMS); opening a context on it rejects with ITEM_NOT_FOUND.
   *
   * @param vmId - the guest id given to VM_CREATED.
   * @returns the device and port, or undefined for an unknown id.
   */
  partition(vmId: number): OpTeePartition | undefined {
    const p = this.#host ? (vmId === 1 ? this.#host : undefined) : this.#guests.get(vmId);
    return p ? { device: p, port: p } : undefined;
  }

  /** The ids of the guest partitions that exist, in creation order. */
  get guestIds(): number[] {
    return [...this.#guests.keys()];
  }

  /**
   * The live single instance of a TA in a partition (default the host), for tests: whether it is
   * dead (kept crashed) and how many sessions it has.
   */
  instanceOf(uuid: string, vmId = 1): { dead: boolean; sessions: number } | undefined {
    const p = this.#host ? (vmId === 1 ? this.#host : undefined) : this.#guests.get(vmId);
    return p?.instance(uuid);
  }
}

/** RPMB FS built in but no RPMB device: every operation answers STORAGE_NOT_AVAILABLE. */
function noRpmb(): SecureStorageBackend {
  const fail = async (): Promise<never> => {
    throw new TeeError("RPMB FS: no RPMB device", TEE_RESULT.STORAGE_NOT_AVAILABLE, TEE_ORIGIN.TEE);
  };
  return { storageId: TEE_STORAGE.PRIVATE_RPMB, read: fail, write: fail, remove: fail };
}
