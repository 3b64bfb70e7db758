/**
 * A model of the Arm FF-A framework (the SPMC) as a normal-world caller sees it: an
 * {@link FfaConduit} answering FFA_VERSION, FFA_ID_GET, FFA_FEATURES, the RX/TX buffer ABIs,
 * partition discovery (PARTITION_INFO_GET and, from v1.2, PARTITION_INFO_GET_REGS) and direct
 * messages v1 and v2 routed by endpoint ID to hosted {@link FfaPartition}s, which can be added and
 * removed at any time (hot-plug).
 *
 * Sources: Arm DEN0077A (FF-A v1.2) §13 (FFA_ERROR, FFA_SUCCESS, FFA_INTERRUPT, FFA_VERSION,
 * FFA_FEATURES, FFA_ID_GET, FFA_SPM_ID_GET, FFA_RUN, FFA_YIELD), §7.2 (FFA_RXTX_MAP, FFA_RXTX_UNMAP,
 * FFA_RX_RELEASE), §14.9 and §14.10 (FFA_PARTITION_INFO_GET, FFA_PARTITION_INFO_GET_REGS), §15
 * (direct messaging); Linux drivers/firmware/arm_ffa/driver.c (the caller: ffa_version_check(),
 * __ffa_partition_info_get(), __ffa_partition_info_get_regs(), ffa_msg_send_direct_req2());
 * U-Boot drivers/firmware/arm-ffa/ffa-emul-uclass.c (the error cases of PARTITION_INFO_GET and
 * RX_RELEASE); Hafnium src/api.c (FFA_YIELD to the caller, BUSY for a partition already running).
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../../core/clock.js";
import { traceChannel, type TraceChannel } from "../../core/trace.js";
import { TpmArgumentError } from "../../errors/index.js";
import {
  FFA_ERROR_CODE,
  FFA_FN,
  FFA_PARTITION_DESCRIPTOR_SIZE_V1_0,
  FFA_PARTITION_DESCRIPTOR_SIZE_V1_1,
  FFA_PARTITION_INFO_GET_COUNT_ONLY,
  FFA_PARTITION_PROP,
  FFA_NS_ENDPOINT_ID,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  FFA_VERSION_NOT_SUPPORTED,
  NIL_UUID,
  uuidBytes,
  uuidToRegs,
} from "../../bus/ffa/abi.js";
import { FFA_REG_COUNT, w32, type FfaConduit, type FfaRegs } from "../../bus/ffa/conduit.js";
import type { MaybePromise } from "../../core/transport.js";
import { FFA_RXTX_PAGE_SIZE, type FfaRxTxHost } from "../../bus/ffa/memory.js";
import type { FfaDirectMessage, FfaPartition, FfaPartitionReply } from "../../bus/ffa/partition.js";

/** Name of the diagnostics channel {@link FfaBus} traces every call and answer on. */
export const FFA_BUS_CHANNEL = "tpmkit:device:ffa";

/** The SPMC's endpoint ID this model answers FFA_SPM_ID_GET with (the common TF-A/Hafnium choice). */
export const FFA_BUS_SPMC_ID = 0x8000;

/** Largest RX/TX buffer, in 4 KiB pages, FFA_RXTX_MAP accepts (FFA_FEATURES reports it too). */
export const FFA_BUS_MAX_RXTX_PAGES = 64;

/** FFA_YIELD's timeout the bus reports while a partition's work is still running: 10 ms in ns (mu's backend waits yield in 10 ms steps). */
const YIELD_TIMEOUT_NS = 10_000_000n;

/** Options of {@link FfaBus}. */
export interface FfaBusOptions {
  /** Clock for traces and the partitions' time-based faults. Default the system clock. */
  clock?: Clock;
  /** The framework's FF-A version (FFA_VERSION's answer), e.g. `ffaVersion(1, 1)`. Default 1.2 (0x10002). */
  version?: number;
  /** The default caller's endpoint ID (FFA_ID_GET's answer to {@link FfaBus.call}). Default 0, a physical NS endpoint. */
  callerId?: number;
  /** Diagnostics channel (`false`: none). Default {@link FFA_BUS_CHANNEL}. */
  channel?: string | false;
}

/** What {@link FfaBus} publishes on its channel: each call and each answer, with the caller's ID and the clock time. */
export type FfaBusEvent =
  | { type: "call"; bus: FfaBus; caller: number; regs: bigint[]; time: number }
  | { type: "answer"; bus: FfaBus; caller: number; regs: bigint[]; time: number }
  | { type: "partition"; bus: FfaBus; id: number; detail: "added" | "removed"; time: number };

interface CallerState {
  /** The version the caller asked for with FFA_VERSION (the framework's until it asks). */
  version: number;
  rxtx?: { tx: bigint; rx: bigint; pages: number; buf: Uint8Array; heldByCaller: boolean };
}

interface Pending {
  caller: number;
  msg: FfaDirectMessage;
  /** Set while the partition's promise is running (an FFA_YIELD was answered meanwhile). */
  running: { done: boolean; reply: FfaPartitionReply | undefined; error: unknown } | undefined;
  /** Set when the partition interrupted or yielded: what FFA_RUN calls. */
  resume: (() => unknown) | undefined;
}

const ERR = FFA_ERROR_CODE;

/**
 * The FF-A framework model. `call()` never throws for any frame: it answers FFA_ERROR for what it
 * refuses (a non-array or non-bigint frame is INVALID_PARAMETERS, an unknown function
 * NOT_SUPPORTED). Callers are endpoint IDs: {@link FfaBus.call} is endpoint `callerId` (default 0);
 * {@link FfaBus.conduit} gives a conduit for another one (an EL3 logical partition 0xFFxx, a VM).
 *
 * Behaviour, per ABI:
 * - FFA_VERSION: w1 the caller's version; answers the framework's version itself in w0 when the
 *   majors match and bit 31 is clear, else 0xFFFFFFFF (not wrapped in FFA_ERROR/SUCCESS).
 * - FFA_ID_GET: SUCCESS, w2 = caller ID. FFA_SPM_ID_GET (v1.1+): w2 = 0x8000.
 * - FFA_FEATURES: SUCCESS for each ABI the bus answers (RXTX_MAP: w2[31:16] = 64 pages, [1:0] = 0,
 *   4 KiB granule); NOT_SUPPORTED otherwise, and for the notification feature IDs 1–3.
 * - FFA_RXTX_MAP (32/64): x1 TX, x2 RX as opaque ids, w3 page count 1–64; DENIED when already
 *   mapped. RXTX_UNMAP: INVALID_PARAMETERS when nothing is mapped. RX_RELEASE: DENIED unless the
 *   caller holds the RX buffer (after a PARTITION_INFO_GET).
 * - PARTITION_INFO_GET: w1..w4 the UUID (nil: every discoverable partition), w5 bit 0 count-only
 *   (v1.1+ callers). Descriptors of 8 bytes (v1.0 caller) or 24 (v1.1+: with the UUID) go into the
 *   caller's RX buffer, which the caller then holds until RX_RELEASE. Errors as U-Boot's emulator:
 *   unknown UUID → INVALID_PARAMETERS, RX not released → BUSY, no RX mapped → DENIED, RX too
 *   small → NO_MEMORY.
 * - PARTITION_INFO_GET_REGS (v1.2): x1/x2 the UUID, x3[15:0] start index, [31:16] tag (must be
 *   0); SUCCESS_64 with x2 = last index | current index << 16 | tag << 32 | 24 << 48 and up to
 *   five descriptors in x3..x17 (three registers each: id | exec-ctx << 16 | properties << 32,
 *   UUID bytes 0–7, 8–15 as LE u64s).
 * - DIRECT_REQ (32/64) and REQ2 (v1.2): sender must be the caller, w2 (v1 flags) must be 0, the
 *   receiver must be discoverable and take that kind of message (DENIED otherwise), REQ2's x2/x3
 *   UUID nil or one of the partition's. A partition already serving a request → BUSY. The answer
 *   is RESP of the same width (RESP2 for REQ2) with w1 = receiver << 16 | sender.
 * - FFA_INTERRUPT / FFA_YIELD: when a partition is preempted, yields, or has not finished, the
 *   caller gets that frame with w1 = partition ID << 16 | vCPU 0 and resumes with FFA_RUN
 *   (w1 the same), which answers the partition's next reply.
 *
 * @example
 * ```ts
 * const bus = new FfaBus();
 * const tpm = new TpmServicePartition({ device: new CrbDevice({ backend: new SoftTpm(), localities: 5, trigger: "doorbell" }) });
 * bus.addPartition(tpm);
 * const [x0] = await bus.call([BigInt(FFA_FN.VERSION), BigInt(FFA_VERSION_1_2)]); // 0x10002n
 * ```
 */
export class FfaBus implements FfaConduit, FfaRxTxHost {
  /** The framework's FF-A version (FFA_VERSION's answer). */
  readonly version: number;
  /** The endpoint ID {@link FfaBus.call} calls as. */
  readonly callerId: number;
  readonly #clock: Clock;
  readonly #channel: TraceChannel | undefined;
  readonly #partitions = new Map<number, FfaPartition>();
  readonly #callers = new Map<number, CallerState>();
  /** Requests a partition is serving, keyed by partition ID. */
  readonly #pending = new Map<number, Pending>();
  /** Each partition's UUIDs as REQ2 x2/x3 pairs (DEN0077A §15.4), keyed by partition. */
  readonly #uuidRegs = new WeakMap<FfaPartition, { uuids: readonly string[]; pairs: (readonly [bigint, bigint, string])[] }>();
  #calls = 0;

  /**
   * @param options - {@link FfaBusOptions}.
   * @throws TpmArgumentError for a version with bit 31 set or major 0, or a caller ID outside 0–0xFFFF.
   */
  constructor(options: FfaBusOptions = {}) {
    const version = options.version ?? FFA_VERSION_1_2;
    if (!Number.isInteger(version) || version < 0x10000 || version > 0x7fffffff) throw new TpmArgumentError(`FfaBus version must be an FF-A version (major ≥ 1, bit 31 clear), got ${String(version)}`);
    const callerId = options.callerId ?? FFA_NS_ENDPOINT_ID;
    checkId(callerId, "callerId");
    this.version = version;
    this.callerId = callerId;
    this.#clock = options.clock ?? systemClock;
    const ch = options.channel ?? FFA_BUS_CHANNEL;
    this.#channel = ch === false ? undefined : traceChannel(ch);
  }

  /** The bus's clock (the partitions' faults run on it). */
  get clock(): Clock {
    return this.#clock;
  }

  /** Number of calls answered so far (every endpoint), for benchmarks counting FF-A calls per command. */
  get calls(): number {
    return this.#calls;
  }

  /** The hosted partitions' IDs, in the order they were added. */
  get partitionIds(): number[] {
    return [...this.#partitions.keys()];
  }

  /**
   * Hosts a partition (at any time: hot-plug). The partition is told the bus clock (`attach`).
   *
   * @param partition - The partition.
   * @throws TpmArgumentError when its ID is not a 16-bit value, is a caller's, or is taken.
   * @example
   * ```ts
   * bus.addPartition(new TpmServicePartition({ device }));
   * ```
   */
  addPartition(partition: FfaPartition): void {
    checkId(partition?.id, "partition id");
    if (partition.id === this.callerId) throw new TpmArgumentError(`FfaBus: partition id 0x${partition.id.toString(16)} is the caller's endpoint ID`);
    if (this.#partitions.has(partition.id)) throw new TpmArgumentError(`FfaBus: a partition with id 0x${partition.id.toString(16)} is already added`);
    this.#partitions.set(partition.id, partition);
    partition.attach?.({ now: () => this.#clock.now() });
    this.#publish({ type: "partition", bus: this, id: partition.id, detail: "added", time: this.#clock.now() });
  }

  /**
   * Removes a partition (hot-unplug). A request it was serving is dropped: a later FFA_RUN for it
   * answers INVALID_PARAMETERS.
   *
   * @param id - The partition's endpoint ID.
   * @returns True when it was hosted.
   * @example
   * ```ts
   * bus.removePartition(0x8002);
   * ```
   */
  removePartition(id: number): boolean {
    const had = this.#partitions.delete(id);
    this.#pending.delete(id);
    if (had) this.#publish({ type: "partition", bus: this, id, detail: "removed", time: this.#clock.now() });
    return had;
  }

  /**
   * The RX buffer endpoint `ownerId` mapped with FFA_RXTX_MAP (PARTITION_INFO_GET writes its
   * descriptors there, from offset 0), as a live view.
   *
   * @param ownerId - The endpoint that mapped it. Default {@link FfaBus.callerId}.
   * @returns The buffer, or undefined when that endpoint mapped none.
   * @example
   * ```ts
   * const rx = bus.rxBuffer();
   * const firstId = rx![0]! | (rx![1]! << 8);
   * ```
   */
  rxBuffer(ownerId: number = this.callerId): Uint8Array | undefined {
    return this.#callers.get(ownerId)?.rxtx?.buf;
  }

  /**
   * A conduit that calls as endpoint `callerId` (e.g. 0xFF00, an EL3 logical partition, which mu's
   * MANAGE_LOCALITY requires). Each caller has its own version and RX/TX buffers.
   *
   * @param callerId - The caller's endpoint ID, 0–0xFFFF.
   * @returns The conduit.
   * @throws TpmArgumentError for an ID outside 0–0xFFFF.
   * @example
   * ```ts
   * const el3 = bus.conduit(0xff00);
   * ```
   */
  conduit(callerId: number): FfaConduit {
    checkId(callerId, "callerId");
    return { call: (regs) => this.#call(callerId, regs) };
  }

  /**
   * One FF-A call from {@link FfaBus.callerId}: `regs[0]` the function ID. Never rejects; a
   * malformed frame is answered with FFA_ERROR. The answer is a plain array when it is known at
   * once (every framework ABI, and a direct message or FFA_RUN whose partition answers
   * synchronously, as an SMC returns), a Promise only while partition work is asynchronous;
   * `await` handles both.
   *
   * @param regs - x0..x17 (missing registers read 0).
   * @returns The 18 result registers, or a Promise of them.
   * @example
   * ```ts
   * const r = await bus.call([BigInt(FFA_FN.ID_GET)]); // r[0] = FFA_SUCCESS, r[2] = 0n
   * ```
   */
  call(regs: FfaRegs): MaybePromise<bigint[]> {
    return this.#call(this.callerId, regs);
  }

  // ------------------------------------------------------------------ dispatch

  /** Synchronous when the dispatch is (framework ABIs; a partition answering at once). */
  #call(caller: number, regs: FfaRegs): MaybePromise<bigint[]> {
    this.#calls++;
    let out: MaybePromise<bigint[]>;
    try {
      const frame = frameOf(regs);
      if (frame === undefined) {
        out = errorFrame(ERR.INVALID_PARAMETERS);
      } else {
        if (this.#channel?.hasSubscribers) this.#channel.publish({ type: "call", bus: this, caller, regs: frame, time: this.#clock.now() } satisfies FfaBusEvent);
        out = this.#dispatch(caller, frame);
      }
    } catch {
      out = errorFrame(ERR.ABORTED); // a partition misbehaved; the caller still gets a frame
    }
    if (out instanceof Promise) {
      return out.then(
        (o) => this.#answer(caller, o),
        () => this.#answer(caller, errorFrame(ERR.ABORTED)),
      );
    }
    return this.#answer(caller, out);
  }

  #answer(caller: number, out: bigint[]): bigint[] {
    // the bus's own frames are clean 18-register frames already; shorter ones are padded
    const answer = out.length === FFA_REG_COUNT ? out : (frameOf(out) ?? errorFrame(ERR.ABORTED));
    if (this.#channel?.hasSubscribers) this.#channel.publish({ type: "answer", bus: this, caller, regs: answer, time: this.#clock.now() } satisfies FfaBusEvent);
    return answer;
  }

  #state(caller: number): CallerState {
    let s = this.#callers.get(caller);
    if (!s) this.#callers.set(caller, (s = { version: this.version }));
    return s;
  }

  #dispatch(caller: number, x: bigint[]): MaybePromise<bigint[]> {
    const fn = x[0]! <= 0xffffffffn ? Number(x[0]!) : -1; // upper half must be zero (x is a clean frame)
    const v12 = this.version >= FFA_VERSION_1_2;
    switch (fn) {
      case FFA_FN.VERSION:
        return this.#versionCall(caller, w32(x[1]));
      case FFA_FN.ID_GET:
        return success([0n, 0n, BigInt(caller)]);
      case FFA_FN.SPM_ID_GET:
        return this.version >= FFA_VERSION_1_1 ? success([0n, 0n, BigInt(FFA_BUS_SPMC_ID)]) : errorFrame(ERR.NOT_SUPPORTED);
      case FFA_FN.FEATURES:
        return this.#features(w32(x[1]));
      case FFA_FN.RXTX_MAP_32:
      case FFA_FN.RXTX_MAP_64:
        return this.#rxtxMap(caller, fn === FFA_FN.RXTX_MAP_64, x);
      case FFA_FN.RXTX_UNMAP:
        return this.#rxtxUnmap(caller, w32(x[1]));
      case FFA_FN.RX_RELEASE:
        return this.#rxRelease(caller);
      case FFA_FN.PARTITION_INFO_GET:
        return this.#partitionInfoGet(caller, x);
      case FFA_FN.PARTITION_INFO_GET_REGS:
        return v12 ? this.#partitionInfoGetRegs(x) : errorFrame(ERR.NOT_SUPPORTED);
      case FFA_FN.MSG_SEND_DIRECT_REQ_32:
        return this.#direct(caller, x, 1, false);
      case FFA_FN.MSG_SEND_DIRECT_REQ_64:
        return this.#direct(caller, x, 1, true);
      case FFA_FN.MSG_SEND_DIRECT_REQ2:
        return v12 ? this.#direct(caller, x, 2, true) : errorFrame(ERR.NOT_SUPPORTED);
      case FFA_FN.RUN:
        return this.#run(caller, w32(x[1]));
      default:
        return errorFrame(ERR.NOT_SUPPORTED);
    }
  }

  /** FFA_VERSION (DEN0077A §13.2): the framework's version, or NOT_SUPPORTED (0xFFFFFFFF) in w0. */
  #versionCall(caller: number, requested: number): bigint[] {
    if (requested & 0x80000000 || requested >>> 16 !== this.version >>> 16) return [BigInt(FFA_VERSION_NOT_SUPPORTED)];
    // the caller runs at min(its version, ours) (Linux ffa_version_check())
    this.#state(caller).version = Math.min(requested, this.version);
    return [BigInt(this.version)];
  }

  /** FFA_FEATURES (DEN0077A §13.3). */
  #features(id: number): bigint[] {
    const v11 = this.version >= FFA_VERSION_1_1;
    const v12 = this.version >= FFA_VERSION_1_2;
    if (id === FFA_FN.RXTX_MAP_32 || id === FFA_FN.RXTX_MAP_64) return success([0n, 0n, BigInt((FFA_BUS_MAX_RXTX_PAGES << 16) >>> 0)]);
    const base: number[] = [
      FFA_FN.ERROR, FFA_FN.SUCCESS_32, FFA_FN.SUCCESS_64, FFA_FN.INTERRUPT, FFA_FN.VERSION, FFA_FN.FEATURES, FFA_FN.RX_RELEASE,
      FFA_FN.RXTX_UNMAP, FFA_FN.PARTITION_INFO_GET, FFA_FN.ID_GET, FFA_FN.RUN,
      FFA_FN.MSG_SEND_DIRECT_REQ_32, FFA_FN.MSG_SEND_DIRECT_REQ_64, FFA_FN.MSG_SEND_DIRECT_RESP_32, FFA_FN.MSG_SEND_DIRECT_RESP_64,
    ];
    if (v11) base.push(FFA_FN.SPM_ID_GET);
    if (v12) base.push(FFA_FN.PARTITION_INFO_GET_REGS, FFA_FN.MSG_SEND_DIRECT_REQ2, FFA_FN.MSG_SEND_DIRECT_RESP2);
    // feature IDs 1 (NPI), 2 (SRI), 3 (MEI): no notifications or managed exits here
    return base.includes(id) ? success([]) : errorFrame(ERR.NOT_SUPPORTED);
  }

  /** FFA_RXTX_MAP (DEN0077A §7.2.2). */
  #rxtxMap(caller: number, wide: boolean, x: bigint[]): bigint[] {
    const s = this.#state(caller);
    const tx = wide ? x[1]! : BigInt(w32(x[1]));
    const rx = wide ? x[2]! : BigInt(w32(x[2]));
    const w3 = w32(x[3]);
    const pages = w3 & 0x3f;
    if (w3 >>> 6 !== 0 || pages === 0 || pages > FFA_BUS_MAX_RXTX_PAGES || tx === rx) return errorFrame(ERR.INVALID_PARAMETERS);
    if (s.rxtx) return errorFrame(ERR.DENIED);
    s.rxtx = { tx, rx, pages, buf: new Uint8Array(pages * FFA_RXTX_PAGE_SIZE), heldByCaller: false };
    return success([]);
  }

  /** FFA_RXTX_UNMAP (DEN0077A §7.2.3): w1[31:16] the endpoint ID (0 or the caller). */
  #rxtxUnmap(caller: number, w1: number): bigint[] {
    const id = w1 >>> 16;
    const s = this.#callers.get(caller);
    if ((id !== 0 && id !== caller) || (w1 & 0xffff) !== 0 || !s?.rxtx) return errorFrame(ERR.INVALID_PARAMETERS);
    delete s.rxtx;
    return success([]);
  }

  /** FFA_RX_RELEASE (DEN0077A §7.2.4): ownership of the RX buffer goes back to the framework. */
  #rxRelease(caller: number): bigint[] {
    const rxtx = this.#callers.get(caller)?.rxtx;
    if (!rxtx?.heldByCaller) return errorFrame(ERR.DENIED);
    rxtx.heldByCaller = false;
    return success([]);
  }

  /** Discoverable partitions matching a UUID (nil: all), as [partition, uuid reported] pairs. */
  #find(uuid: string): [FfaPartition, string][] {
    const out: [FfaPartition, string][] = [];
    for (const p of this.#partitions.values()) {
      if (!p.discoverable) continue;
      if (uuid === NIL_UUID) out.push([p, p.uuids[0] ?? NIL_UUID]);
      else if (p.uuids.some((u) => u.toLowerCase() === uuid)) out.push([p, uuid]);
    }
    return out;
  }

  /** FFA_PARTITION_INFO_GET (DEN0077A §14.9; error cases as U-Boot's sandbox emulator). */
  #partitionInfoGet(caller: number, x: bigint[]): bigint[] {
    const s = this.#state(caller);
    const v11 = s.version >= FFA_VERSION_1_1;
    const flags = w32(x[5]);
    if (v11 && (flags & ~FFA_PARTITION_INFO_GET_COUNT_ONLY) !== 0) return errorFrame(ERR.INVALID_PARAMETERS);
    const uuid = wordsToUuid([w32(x[1]), w32(x[2]), w32(x[3]), w32(x[4])]);
    const found = this.#find(uuid);
    if (found.length === 0 && uuid !== NIL_UUID) return errorFrame(ERR.INVALID_PARAMETERS);
    const size = v11 ? FFA_PARTITION_DESCRIPTOR_SIZE_V1_1 : FFA_PARTITION_DESCRIPTOR_SIZE_V1_0;
    if (v11 && flags & FFA_PARTITION_INFO_GET_COUNT_ONLY) return success([0n, 0n, BigInt(found.length)]);
    const rxtx = s.rxtx;
    if (!rxtx) return errorFrame(ERR.DENIED);
    if (rxtx.heldByCaller) return errorFrame(ERR.BUSY);
    if (found.length * size > rxtx.buf.length) return errorFrame(ERR.NO_MEMORY);
    rxtx.buf.fill(0);
    const dv = new DataView(rxtx.buf.buffer, rxtx.buf.byteOffset, rxtx.buf.byteLength);
    found.forEach(([p, u], i) => {
      const o = i * size;
      dv.setUint16(o, p.id, true);
      dv.setUint16(o + 2, p.executionContexts & 0xffff, true);
      dv.setUint32(o + 4, p.properties >>> 0, true);
      if (v11) rxtx.buf.set(uuidBytes(u), o + 8);
    });
    rxtx.heldByCaller = true;
    return success([0n, 0n, BigInt(found.length), v11 ? BigInt(size) : 0n]);
  }

  /** FFA_PARTITION_INFO_GET_REGS (DEN0077A v1.2 §14.10; Linux __ffa_partition_info_get_regs()). */
  #partitionInfoGetRegs(x: bigint[]): bigint[] {
    const uuid = regsToUuid(x[1]!, x[2]!);
    const start = Number(x[3]! & 0xffffn);
    const tag = Number((x[3]! >> 16n) & 0xffffn);
    if (x[3]! >> 32n !== 0n || tag !== 0) return errorFrame(ERR.INVALID_PARAMETERS);
    const found = this.#find(uuid);
    if (found.length === 0 || start >= found.length) return errorFrame(ERR.INVALID_PARAMETERS);
    const last = found.length - 1;
    const cur = Math.min(last, start + 4); // five descriptors, three registers each, in x3..x17
    const out: bigint[] = [BigInt(FFA_FN.SUCCESS_64), 0n];
    out.push(BigInt(last) | (BigInt(cur) << 16n) | (BigInt(tag) << 32n) | (BigInt(FFA_PARTITION_DESCRIPTOR_SIZE_V1_1) << 48n));
    for (let i = start; i <= cur; i++) {
      const [p, u] = found[i]!;
      const b = uuidBytes(u);
      out.push(BigInt(p.id & 0xffff) | (BigInt(p.executionContexts & 0xffff) << 16n) | (BigInt(p.properties >>> 0) << 32n));
      out.push(leU64(b, 0), leU64(b, 8));
    }
    return out;
  }

  /** Direct request v1 (DEN0077A §15.2) or v2 (§15.4), routed by w1[15:0]. */
  #direct(caller: number, x: bigint[], version: 1 | 2, wide: boolean): MaybePromise<bigint[]> {
    const w1 = w32(x[1]);
    const sender = w1 >>> 16;
    const receiver = w1 & 0xffff;
    if (sender !== caller) return errorFrame(ERR.INVALID_PARAMETERS);
    if (version === 1 && w32(x[2]) !== 0) return errorFrame(ERR.INVALID_PARAMETERS); // framework messages / flags: none here
    const p = this.#partitions.get(receiver);
    if (!p || !p.discoverable) return errorFrame(ERR.INVALID_PARAMETERS);
    let uuid: string | undefined;
    if (version === 2) {
      uuid = this.#uuidOfRegs(p, x[2]!, x[3]!);
      if (uuid === undefined) return errorFrame(ERR.INVALID_PARAMETERS);
      if (!(p.properties & FFA_PARTITION_PROP.DIRECT_REQ2_RECV)) return errorFrame(ERR.DENIED);
    } else {
      if (!(p.properties & FFA_PARTITION_PROP.DIRECT_REQ_RECV)) return errorFrame(ERR.DENIED);
      if (wide && !(p.properties & FFA_PARTITION_PROP.AARCH64)) return errorFrame(ERR.INVALID_PARAMETERS);
    }
    if (this.#pending.has(receiver)) return errorFrame(ERR.BUSY); // already serving a request (Hafnium: FFA_BUSY)
    const msg: FfaDirectMessage = uuid === undefined ? { sender, receiver, version, wide, regs: x } : { sender, receiver, version, wide, uuid, regs: x };
    const pending: Pending = { caller, msg, running: undefined, resume: undefined }; // fixed shape: fields are cleared, never deleted
    this.#pending.set(receiver, pending);
    return this.#drive(p, pending, () => p.message(msg));
  }

  /** FFA_RUN (DEN0077A §13.9): resumes a preempted or yielding partition; w1 = id << 16 | vCPU. */
  #run(caller: number, w1: number): MaybePromise<bigint[]> {
    const id = w1 >>> 16;
    const p = this.#partitions.get(id);
    const pending = this.#pending.get(id);
    if (!p || (w1 & 0xffff) >= Math.max(1, p.executionContexts)) return errorFrame(ERR.INVALID_PARAMETERS);
    if (!pending || pending.caller !== caller) return errorFrame(ERR.DENIED); // nothing of this caller's to run
    if (pending.running) return pending.running.done ? this.#reply(p, pending) : this.#settle(p, pending);
    const resume = pending.resume;
    if (!resume) return errorFrame(ERR.DENIED);
    pending.resume = undefined;
    return this.#drive(p, pending, resume as () => unknown);
  }

  /**
   * Runs partition work; answers its reply, synchronously when the partition answered at once,
   * else after the microtasks drain, or FFA_YIELD while it has not settled by then.
   */
  #drive(p: FfaPartition, pending: Pending, work: () => unknown): MaybePromise<bigint[]> {
    const running: NonNullable<Pending["running"]> = { done: false, reply: undefined, error: undefined };
    pending.running = running;
    let promise: Promise<unknown>;
    try {
      const r = work();
      if (!(r instanceof Promise)) {
        running.done = true;
        running.reply = r as FfaPartitionReply;
        return this.#reply(p, pending);
      }
      promise = r;
    } catch (e) {
      promise = Promise.reject(e);
    }
    promise.then(
      (r) => ((running.done = true), (running.reply = r as FfaPartitionReply)),
      (e: unknown) => ((running.done = true), (running.error = e)),
    );
    return this.#settle(p, pending);
  }

  async #settle(p: FfaPartition, pending: Pending): Promise<bigint[]> {
    const running = pending.running!;
    for (let i = 0; i < 64 && !running.done; i++) await Promise.resolve(); // longer than a partition's own wait (16)
    if (!running.done) return yieldFrame(p.id, YIELD_TIMEOUT_NS); // still working: the caller must FFA_RUN
    return this.#reply(p, pending);
  }

  /** The frame for a settled partition reply (`pending.running.done`). */
  #reply(p: FfaPartition, pending: Pending): bigint[] {
    const running = pending.running!;
    pending.running = undefined;
    if (this.#pending.get(p.id) !== pending) return errorFrame(ERR.ABORTED); // removed meanwhile
    const reply = running.error === undefined ? running.reply : undefined;
    if (!reply || typeof reply !== "object") return this.#finish(p, errorFrame(ERR.ABORTED));
    switch (reply.type) {
      case "response":
        return this.#finish(p, responseFrame(pending.msg, reply.regs));
      case "error":
        return this.#finish(p, errorFrame(Number.isInteger(reply.code) && reply.code < 0 ? reply.code : ERR.ABORTED));
      case "interrupt":
        pending.resume = reply.resume;
        return [BigInt(FFA_FN.INTERRUPT), BigInt(((p.id & 0xffff) << 16) >>> 0)];
      case "yield":
        pending.resume = reply.resume;
        return yieldFrame(p.id, typeof reply.timeoutNs === "bigint" ? reply.timeoutNs : 0n);
      default:
        return this.#finish(p, errorFrame(ERR.ABORTED));
    }
  }

  #finish(p: FfaPartition, frame: bigint[]): bigint[] {
    this.#pending.delete(p.id);
    return frame;
  }

  /**
   * REQ2's x2/x3 as the partition UUID it names (nil UUID allowed), or undefined when it names
   * none of the partition's: compared as register pairs, computed once per partition.
   */
  #uuidOfRegs(p: FfaPartition, lo: bigint, hi: bigint): string | undefined {
    if (lo === 0n && hi === 0n) return NIL_UUID;
    let regs = this.#uuidRegs.get(p);
    if (regs === undefined || regs.uuids !== p.uuids) {
      regs = { uuids: p.uuids, pairs: p.uuids.map((u) => { const [a, b] = uuidToRegs(u); return [a, b, u.toLowerCase()] as const; }) };
      this.#uuidRegs.set(p, regs);
    }
    for (const [a, b, u] of regs.pairs) if (a === lo && b === hi) return u;
    return undefined;
  }

  #publish(ev: FfaBusEvent): void {
    if (this.#channel?.hasSubscribers) this.#channel.publish(ev);
  }
}

const MAX_U64 = (1n << 64n) - 1n;

/**
 * `regs` as an 18-register frame (as `ffaFrame`), or undefined when an entry is neither a bigint
 * nor undefined. An array that already is a clean frame is copied without BigInt arithmetic.
 */
function frameOf(regs: unknown): bigint[] | undefined {
  if (!Array.isArray(regs)) return undefined;
  const out = new Array<bigint>(FFA_REG_COUNT);
  const n = regs.length;
  for (let i = 0; i < FFA_REG_COUNT; i++) {
    const r: unknown = i < n ? regs[i] : undefined;
    if (r === undefined) out[i] = 0n;
    else if (typeof r !== "bigint") return undefined;
    else out[i] = r >= 0n && r <= MAX_U64 ? r : BigInt.asUintN(64, r);
  }
  for (let i = FFA_REG_COUNT; i < n; i++) if (regs[i] !== undefined && typeof regs[i] !== "bigint") return undefined;
  return out;
}

function checkId(id: unknown, what: string): asserts id is number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0xffff) throw new TpmArgumentError(`FfaBus: ${what} must be a 16-bit endpoint ID, got ${String(id)}`);
}

function success(rest: bigint[]): bigint[] {
  return [BigInt(FFA_FN.SUCCESS_32), ...rest.slice(1)];
}

function errorFrame(code: number): bigint[] {
  return [BigInt(FFA_FN.ERROR), 0n, BigInt.asUintN(32, BigInt(code))];
}

function yieldFrame(id: number, timeoutNs: bigint): bigint[] {
  const t = BigInt.asUintN(64, timeoutNs);
  return [BigInt(FFA_FN.YIELD), BigInt(((id & 0xffff) << 16) >>> 0), t & 0xffffffffn, t >> 32n];
}

/** DIRECT_RESP_32, DIRECT_RESP_64 and RESP2 function IDs. */
const RESP_FN = [BigInt(FFA_FN.MSG_SEND_DIRECT_RESP_32), BigInt(FFA_FN.MSG_SEND_DIRECT_RESP_64), BigInt(FFA_FN.MSG_SEND_DIRECT_RESP2)] as const;

/** DIRECT_RESP (same width as the request) or RESP2, w1 = receiver << 16 | sender, payload from the partition. */
function responseFrame(msg: FfaDirectMessage, regs: readonly bigint[]): bigint[] {
  const out: bigint[] = [RESP_FN[msg.version === 2 ? 2 : msg.wide ? 1 : 0]!, BigInt(((msg.receiver << 16) | msg.sender) >>> 0), 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
  const from = msg.version === 2 ? 4 : 3;
  const to = msg.version === 2 ? 17 : 7;
  const n = Math.min(to + 1, regs.length);
  for (let i = from; i < n; i++) {
    const r = regs[i];
    if (typeof r !== "bigint" || r === 0n) continue; // most payload registers are 0: already in `out`
    const v = r > 0n && r <= MAX_U64 ? r : BigInt.asUintN(64, r);
    out[i] = msg.wide || v <= 0xffffffffn ? v : v & 0xffffffffn;
  }
  return out;
}

function hex(n: number | bigint, digits: number): string {
  return n.toString(16).padStart(digits, "0");
}

function bytesToUuid(b: Uint8Array): string {
  const h = [...b].map((x) => hex(x, 2)).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** PARTITION_INFO_GET's w1..w4 (the UUID bytes as LE u32s) back to a UUID string. */
function wordsToUuid(words: number[]): string {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return bytesToUuid(b);
}

/** REQ2's x2/x3 (the UUID bytes as LE u64s; Linux ffa_msg_send_direct_req2()) back to a UUID string. */
function regsToUuid(lo: bigint, hi: bigint): string {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt.asUintN(64, lo), true);
  dv.setBigUint64(8, BigInt.asUintN(64, hi), true);
  return bytesToUuid(b);
}

function leU64(b: Uint8Array, o: number): bigint {
  return new DataView(b.buffer, b.byteOffset + o, 8).getBigUint64(0, true);
}
