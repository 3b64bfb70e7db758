/**
 * The CRB-over-Arm-FF-A start method: ACPI TPM2 start method 15, the TPM service of Arm DEN0138
 * ("TPM Service Command Response Buffer Interface Over FF-A") reached by FF-A direct messages
 * (DEN0077A v1.2), as Linux's drivers/char/tpm/tpm_crb_ffa.c does it over
 * drivers/firmware/arm_ffa/driver.c.
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../../core/clock.js";
import { FfaError, ProbeDeferredError, TpmArgumentError, TpmNotFoundError, TpmTimeoutError, TpmTransportError, throwIfAborted } from "../../errors/index.js";
import { CRB_CTRL_REQ, CRB_INVOKE, CRB_LOC_CTRL, CRB_REG } from "../../bus/crb-registers.js";
import { withSignal } from "../../bus/access.js";
import {
  FFA_ERROR_CODE,
  FFA_ERROR_ERRNO,
  FFA_FN,
  FFA_PARTITION_DESCRIPTOR_SIZE_V1_0,
  FFA_PARTITION_PROP,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  FFA_VERSION_NOT_SUPPORTED,
  TPM_SERVICE_FN,
  TPM_SERVICE_STATUS,
  TPM_SERVICE_STATUS_ERRNO,
  TPM_SERVICE_UUID,
  uuidToRegs,
  uuidToWords,
} from "../../bus/ffa/abi.js";
import { FFA_REG_COUNT, ffaFrame, s32, w32, type FfaConduit } from "../../bus/ffa/conduit.js";
import type { MaybePromise } from "../../core/transport.js";
import { hasRxBuffer } from "../../bus/ffa/memory.js";
import { CRB_START_QUALIFIER, type CrbProbeContext, type CrbStartContext, type CrbStartEvent, type CrbStartMethod, type CrbStartQualifier } from "./start-method.js";

/** Options of {@link ffaStart}. */
export interface FfaStartOptions {
  /** The FF-A conduit (an `FfaBus`, or a bridge to a real SMC). Required. */
  bus: FfaConduit;
  /** The TPM service UUID to look for. Default 17b862a4-1806-4faf-86b3-089a58353861 (DEN0138 §3.1). */
  uuid?: string;
  /**
   * The partition to use when several answer to the UUID (the ACPI TPM2 start-method parameters'
   * partition ID). Default: the first descriptor. With a conduit that lends no RX buffer and has no
   * FFA_PARTITION_INFO_GET_REGS, the endpoint to talk to (default 0x8002 then).
   */
  partitionId?: number;
  /**
   * How long FFA_ERROR BUSY answers are retried, counted from the first BUSY (Linux
   * tpm_crb_ffa.c, module parameter `busy_timeout_ms`). Default 2000.
   */
  busyTimeoutMs?: number;
  /**
   * Most FFA_RUN resumptions after FFA_INTERRUPT / FFA_YIELD for one message (Linux loops without
   * a bound, ffa_msg_send_wait_for_completion()). Past it the message fails with `FfaError`
   * status -5 (INTERRUPTED) and is resumed to its end before the next command (the same bound).
   * Default 1000.
   */
  maxResumes?: number;
  /**
   * Bound on one conduit call that answers asynchronously (a partition that never answers), ms.
   * Default 120000 (a START may run the whole TPM command synchronously, as mu's does).
   */
  callTimeoutMs?: number;
  /** Clock for BUSY/YIELD sleeps and bounds; default the context's clock (the chip's). */
  clock?: Clock;
  /**
   * Send cmdReady/goIdle (through START) around each command. Default true, as Linux since
   * v6.18-rc2 (commit dbfdaeb381a4); false reproduces older kernels, which skipped them for FF-A
   * (and is what a Trusted Services partition, which answers INV_CRB_CTRL_DATA to a START(command)
   * without CTRL_START, accepts).
   */
  hasIdle?: boolean;
}

/** What the probe found ({@link FfaStartMethod.partition}). */
export interface FfaPartitionInfo {
  /** The partition's endpoint ID. */
  readonly id: number;
  /** Its properties word (FFA_PARTITION_PROP bits). */
  readonly properties: number;
  /** The caller's own endpoint ID (FFA_ID_GET). */
  readonly callerId: number;
  /** The negotiated FF-A version, encoded (min(framework, 1.2)). */
  readonly ffaVersion: number;
  /** The TPM service's interface version (GET_INTERFACE_VERSION). */
  readonly interfaceVersion: { readonly major: number; readonly minor: number };
  /** Direct request v1 (64- or 32-bit) or v2 (FFA_MSG_SEND_DIRECT_REQ2). */
  readonly messaging: "v1-64" | "v1-32" | "v2";
  /** How the partition was found. */
  readonly discovery: "regs" | "rx-buffer" | "count-only";
}

/** Counters of an {@link ffaStart} method (for benchmarks and tests). */
export interface FfaStartStats {
  /** Every conduit call made (discovery, messages, retries, FFA_RUN). */
  calls: number;
  /** DEN0138 messages sent (each direct request, not counting its retries and resumptions). */
  messages: number;
  /** Calls repeated after FFA_ERROR BUSY. */
  busyRetries: number;
  /** FFA_RUN calls after FFA_INTERRUPT / FFA_YIELD. */
  resumes: number;
}

/** The {@link CrbStartMethod} {@link ffaStart} returns, with what its probe found. */
export interface FfaStartMethod extends CrbStartMethod {
  readonly name: "ffa";
  /** The TPM service partition, once a probe succeeded. */
  readonly partition: FfaPartitionInfo | undefined;
  /** Call counters since creation (reset them by assigning 0). */
  readonly stats: FfaStartStats;
}

/** FFA_RXTX_MAP's x1/x2: opaque buffer ids in this model (the framework lends the RX bytes through `FfaRxTxHost`). */
const TX_BUFFER_ID = 0x7e000n;
const RX_BUFFER_ID = 0x7f000n;
/** Linux's BUSY retry sleep, usleep_range(50, 100) µs (tpm_crb_ffa.c, __tpm_crb_ffa_send_receive()). */
const BUSY_SLEEP_MS = [0.05, 0.1] as const;
/** Linux sleeps 1 ms before resuming a yielded partition (arm_ffa driver.c, ffa_msg_send_wait_for_completion()). */
const YIELD_SLEEP_MS = 1;
/** Microtasks an asynchronous conduit answer is awaited before a `callTimeoutMs` timer is armed (bounded: then the timer bounds it). */
const ANSWER_GRACE_TICKS = 32;
/** The PARTITION_INFO_GET_REGS loop's bound on calls (a framework that never reaches the last index). */
const MAX_REGS_CALLS = 64;

/**
 * The CRB over FF-A start method (ACPI TPM2 start method 15), doing what Linux's tpm_crb_ffa
 * does (drivers/char/tpm/tpm_crb_ffa.c, ≥ v6.18; drivers/firmware/arm_ffa/driver.c).
 *
 * **Probe** (run by `crb` at open): FFA_VERSION (1.2; major must be 1), FFA_ID_GET, then
 * discovery of the partition by the service UUID: FFA_PARTITION_INFO_GET_REGS when
 * FFA_FEATURES says the framework has it (Linux ffa_partition_probe()), else — when the conduit
 * lends RX buffers ({@link FfaRxTxHost}) — FFA_FEATURES(RXTX_MAP), FFA_RXTX_MAP (once),
 * FFA_PARTITION_INFO_GET and FFA_RX_RELEASE, else a count-only FFA_PARTITION_INFO_GET and
 * `partitionId`. No partition (count 0, INVALID_PARAMETERS) is the kernel's -ENOENT →
 * -EPROBE_DEFER: `ProbeDeferredError`. The message kind follows tpm_crb_ffa_probe(): direct
 * request v2 only when the partition has DIRECT_REQ2_RECV (bit 9) and AArch64 (bit 8) and
 * FFA_FEATURES(DIRECT_REQ2) succeeds; 32-bit v1 messages when it lacks AArch64. Last,
 * GET_INTERFACE_VERSION: a major other than 1 fails the probe ("Incompatible ABI version").
 *
 * **Per command**: START (0x0F000201) with x5 = qualifier (0 command, also for cmdReady, goIdle
 * and cancel; 1 locality) and x6 = locality, after the driver's register write; `start` writes
 * CTRL_START = 1 first. Five START calls per command with idle support (request locality,
 * cmdReady, start, goIdle, relinquish: the kernel's steps 1, 2, 3, 6, 7); three with
 * `hasIdle: false` (kernels before v6.18: steps 1, 3, 7).
 *
 * **Answers**: FFA_ERROR BUSY is retried after 50–100 µs sleeps for up to `busyTimeoutMs` from
 * the first BUSY, then `FfaError` status -4; while that BUSY streak lasts (no other answer seen),
 * the clean-up calls that follow fail at once rather than each waiting again. FFA_INTERRUPT and
 * FFA_YIELD (after 1 ms) are resumed with FFA_RUN, x1 = their w1, at most `maxResumes` times.
 * Other FFA_ERROR codes → `FfaError` with the (negative) code; a TPM service status other than
 * OK / OK_RESULTS_RETURNED → `FfaError` with the status as is (0x8E0000xx).
 *
 * **A message given up on** (past `maxResumes`, an abort, a timeout while the partition was
 * preempted or yielding) is remembered: DEN0077A §13 (FFA_RUN) leaves the partition's execution
 * context waiting for the caller's FFA_RUN, a new direct request meanwhile is answered BUSY
 * (Hafnium), and FF-A v1.2 has no ABI for the normal world to cancel a direct request. The rest
 * of that command's messages (its clean-up) fail at once with `FfaError` -5; the next command
 * first resumes the abandoned message with FFA_RUN to its end (bounded by `maxResumes` again;
 * FFA_ERROR DENIED / INVALID_PARAMETERS: nothing left to run), drops its answer, writes again the
 * register the driver wrote for the current message (the resumed one may have consumed it), then
 * sends its own. So once the fault clears, the next command works.
 *
 * **Fast path**: when the conduit answers synchronously with a final answer (an `FfaBus` whose
 * partition answers at once), a message runs without a timer or a Promise inside; the abort
 * check runs before every call all the same.
 *
 * Differences from Linux, on purpose: the resumption loop and asynchronous calls are bounded;
 * with FFA_PARTITION_INFO_GET the count-only call before the full one is skipped (no buffer to
 * size); messages are not serialised by a mutex (the chip serialises commands).
 *
 * @param options - {@link FfaStartOptions}; `bus` is required.
 * @returns an {@link FfaStartMethod} for `crb({ mmio, start })`.
 * @throws TpmArgumentError at once for malformed options. From `probe`: `ProbeDeferredError`
 *   (no partition with the UUID), `TpmNotFoundError` (interface major ≠ 1, a partition that takes
 *   no direct requests), `FfaError` (a failed FF-A call, an FF-A major other than 1).
 *   From `start`/`notify`: `FfaError` (status as above), `TpmTimeoutError` (a call that never
 *   answers), `TpmTransportError` errno EINVAL (an answer of the wrong kind), the signal's error.
 * @example
 * ```ts
 * const bus = new FfaBus();
 * const device = new CrbDevice({ backend: new SoftTpm(), localities: 5 });
 * bus.addPartition(new TpmServicePartition({ device }));
 * const tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }));
 * ```
 */
export function ffaStart(options: FfaStartOptions): FfaStartMethod {
  if (!options || typeof options !== "object") throw new TpmArgumentError("ffaStart needs options { bus }");
  if (options.hasIdle !== undefined && typeof options.hasIdle !== "boolean") throw new TpmArgumentError("ffaStart: hasIdle must be a boolean");
  if (!options.bus || typeof options.bus.call !== "function") throw new TpmArgumentError("ffaStart: `bus` must be an FfaConduit (an object with call(regs))");
  const uuid = options.uuid ?? TPM_SERVICE_UUID;
  uuidToRegs(uuid); // throws TpmArgumentError when malformed
  const pid = options.partitionId;
  if (pid !== undefined && (!Number.isInteger(pid) || pid < 0 || pid > 0xffff)) throw new TpmArgumentError(`ffaStart: partitionId must be a 16-bit endpoint ID, got ${String(pid)}`);
  const num = (name: string, v: number | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) throw new TpmArgumentError(`ffaStart: ${name} must be a finite number ≥ ${min}, got ${String(v)}`);
    return v;
  };
  return new FfaStart(options.bus, uuid, pid, num("busyTimeoutMs", options.busyTimeoutMs, 2000, 0), Math.floor(num("maxResumes", options.maxResumes, 1000, 0)), num("callTimeoutMs", options.callTimeoutMs, 120_000, 0), options.clock, options.hasIdle ?? true);
}

interface Link {
  callerId: number;
  partitionId: number;
  messaging: "v1-64" | "v1-32" | "v2";
  /** Precomputed per link: the request's x0..x3 (function ID, sender << 16 | receiver, v2 UUID or 0) and the expected answer's w0. */
  x0: bigint;
  x1: bigint;
  x2: bigint;
  x3: bigint;
  resp: number;
}

/** What the driver wrote before each notification (Linux tpm_crb.c), written again after a recovery's FFA_RUN let an abandoned message consume it. */
const REARM: Readonly<Record<CrbStartEvent, readonly [number, number]>> = {
  requestLocality: [CRB_REG.LOC_CTRL, CRB_LOC_CTRL.REQUEST_ACCESS],
  relinquishLocality: [CRB_REG.LOC_CTRL, CRB_LOC_CTRL.RELINQUISH],
  cmdReady: [CRB_REG.CTRL_REQ, CRB_CTRL_REQ.CMD_READY],
  goIdle: [CRB_REG.CTRL_REQ, CRB_CTRL_REQ.GO_IDLE],
  cancel: [CRB_REG.CTRL_CANCEL, CRB_INVOKE],
};

const MAX_U64 = (1n << 64n) - 1n;
const BIG_SMALL = [0n, 1n, 2n, 3n, 4n] as const;
const FN_RUN = BigInt(FFA_FN.RUN);
const RESOLVED: Promise<void> = Promise.resolve();

/** An answer as an 18-register frame: used as is when it already is one (the common case), else padded and masked. */
function frameOfAnswer(out: unknown): bigint[] {
  if (!Array.isArray(out)) throw new TpmTransportError("ffa: the conduit answered no register frame", { errno: "EINVAL" });
  if (out.length === FFA_REG_COUNT) {
    let clean = true;
    for (let i = 0; i < FFA_REG_COUNT; i++) {
      const r: unknown = out[i];
      if (typeof r !== "bigint" || r < 0n || r > MAX_U64) {
        clean = false;
        break;
      }
    }
    if (clean) return out as bigint[];
  }
  return ffaFrame(out as bigint[]);
}

/** Whether w0 is a final answer: not FFA_INTERRUPT / FFA_YIELD, and not FFA_ERROR BUSY. */
function isFinal(r: bigint[]): boolean {
  const f = w32(r[0]);
  if (f === FFA_FN.INTERRUPT || f === FFA_FN.YIELD) return false;
  return !(f === FFA_FN.ERROR && s32(r[2]) === FFA_ERROR_CODE.BUSY);
}

/** FFA_ERROR's code as an `FfaError`. */
function ffaErrorOf(what: string, code: number): FfaError {
  const name = Object.entries(FFA_ERROR_CODE).find(([, v]) => v === code)?.[0] ?? "unknown";
  return new FfaError(`ffa: ${what} failed: FFA_ERROR ${code} (${name}, ${FFA_ERROR_ERRNO[code] ?? "EINVAL"})`, code);
}

/** A TPM service status as an `FfaError` (Linux tpm_crb_ffa.c, tpm_crb_ffa_to_linux_errno()). */
function statusErrorOf(what: string, status: number): FfaError {
  const name = Object.entries(TPM_SERVICE_STATUS).find(([, v]) => v === status)?.[0] ?? "unknown";
  return new FfaError(`ffa: ${what}: TPM service status 0x${status.toString(16)} (${name}, ${TPM_SERVICE_STATUS_ERRNO[status] ?? "EINVAL"})`, status);
}

class FfaStart implements FfaStartMethod {
  readonly name = "ffa" as const;
  /** Linux ≥ v6.18 (dbfdaeb381a4) sends cmdReady/goIdle for start method 15. */
  readonly hasIdle: boolean;
  readonly stats: FfaStartStats = { calls: 0, messages: 0, busyRetries: 0, resumes: 0 };
  #partition: FfaPartitionInfo | undefined;
  #link: Link | undefined;
  #mapped = false;
  /** Clock time of the first BUSY of the current streak (no other answer since), else undefined. */
  #busySince: number | undefined;
  /** The TPM service UUID as REQ2's x2/x3, computed once. */
  readonly #uuidRegs: readonly [bigint, bigint];
  /**
   * w1 (endpoint << 16 | vCPU) of a message this method gave up on while the partition was
   * preempted or yielding (past `maxResumes`, an abort, a timeout): the partition's execution
   * context still holds it, and answers BUSY to any new request until FFA_RUN lets it finish.
   */
  #abandoned: bigint | undefined;
  /** Since the last locality request a message was abandoned or its recovery failed: the messages that follow fail fast (no new FFA_RUN loop). */
  #recoveryFailed = false;

  constructor(
    readonly bus: FfaConduit,
    readonly uuid: string,
    readonly partitionId: number | undefined,
    readonly busyTimeoutMs: number,
    readonly maxResumes: number,
    readonly callTimeoutMs: number,
    readonly clock: Clock | undefined,
    hasIdle: boolean,
  ) {
    this.hasIdle = hasIdle;
    this.#uuidRegs = uuidToRegs(uuid);
  }

  get partition(): FfaPartitionInfo | undefined {
    return this.#partition;
  }

  // ------------------------------------------------------------ probe

  async probe(ctx: CrbProbeContext): Promise<void> {
    const clock = this.clock ?? ctx?.clock ?? systemClock;
    const signal = ctx?.signal;
    throwIfAborted(signal);
    this.#busySince = undefined;
    this.#recoveryFailed = false;
    // FF-A core init (arm_ffa driver.c, ffa_version_check()): the answer is the version in w0
    const v = await this.#call([BigInt(FFA_FN.VERSION), BigInt(FFA_VERSION_1_2)], clock, signal);
    const v0 = w32(v[0]);
    if (v0 === FFA_FN.ERROR) throw ffaErrorOf("FFA_VERSION", s32(v[2]));
    if (v0 === FFA_VERSION_NOT_SUPPORTED || (v0 & 0x80000000) !== 0 || v0 >>> 16 !== 1) {
      throw new FfaError(`ffa: the framework's FF-A version 0x${v0.toString(16)} is not 1.x (FFA_VERSION)`, FFA_ERROR_CODE.NOT_SUPPORTED);
    }
    const ffaVersion = Math.min(v0, FFA_VERSION_1_2);
    // ffa_id_get()
    const id = await this.#success("FFA_ID_GET", [BigInt(FFA_FN.ID_GET)], clock, signal);
    const callerId = Number(BigInt.asUintN(16, id[2]!));
    // ffa_partition_probe(): the _REGS variant when FFA_FEATURES says it is there
    let found: { id: number; properties: number }[] | undefined;
    let discovery: FfaPartitionInfo["discovery"];
    if (ffaVersion >= FFA_VERSION_1_2 && (await this.#features(FFA_FN.PARTITION_INFO_GET_REGS, clock, signal))) {
      discovery = "regs";
      found = await this.#partitionsByRegs(clock, signal);
    } else if (hasRxBuffer(this.bus)) {
      discovery = "rx-buffer";
      found = await this.#partitionsByRx(callerId, ffaVersion, clock, signal);
    } else {
      discovery = "count-only";
      const n = await this.#partitionInfo(1, clock, signal);
      found = n === undefined || n.count === 0 ? [] : [{ id: this.partitionId ?? 0x8002, properties: FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.AARCH64 }];
    }
    const part = this.partitionId === undefined ? found[0] : found.find((p) => p.id === this.partitionId);
    if (!part) {
      // tpm_crb_ffa_init(): not probed (no device on the FF-A bus) → -ENOENT → -EPROBE_DEFER
      throw new ProbeDeferredError(`FF-A TPM service partition ${this.uuid}${this.partitionId === undefined ? "" : ` (endpoint 0x${this.partitionId.toString(16)})`}`);
    }
    // tpm_crb_ffa_probe(): needs direct-request receipt; 32-bit mode without AArch64; REQ2 per bit 9
    const P = FFA_PARTITION_PROP;
    if ((part.properties & (P.DIRECT_REQ_RECV | P.DIRECT_REQ2_RECV)) === 0) {
      throw new TpmNotFoundError(`ffa: partition 0x${part.id.toString(16)} takes no direct requests (properties 0x${part.properties.toString(16)})`);
    }
    const mode32 = (part.properties & P.AARCH64) === 0;
    let messaging: Link["messaging"] = mode32 ? "v1-32" : "v1-64";
    if ((part.properties & P.DIRECT_REQ2_RECV) !== 0 && !mode32 && ffaVersion >= FFA_VERSION_1_2 && (await this.#features(FFA_FN.MSG_SEND_DIRECT_REQ2, clock, signal))) {
      messaging = "v2";
    } else if ((part.properties & P.DIRECT_REQ_RECV) === 0) {
      throw new TpmNotFoundError(`ffa: partition 0x${part.id.toString(16)} takes only direct request v2, which this framework or mode cannot send`);
    }
    const link = makeLink(callerId, part.id, messaging, this.#uuidRegs);
    // tpm_crb_ffa_probe(): GET_INTERFACE_VERSION, major must be 1
    const r = await this.#message(link, TPM_SERVICE_FN.GET_INTERFACE_VERSION, 0n, 0n, "GET_INTERFACE_VERSION", clock, signal, undefined);
    const ver = w32(r[5]);
    const interfaceVersion = { major: (ver >>> 16) & 0x7fff, minor: ver & 0xffff };
    if (interfaceVersion.major !== 1) {
      throw new TpmNotFoundError(`ffa: Incompatible ABI version ${interfaceVersion.major}.${interfaceVersion.minor} of the TPM service (need 1.x)`, {
        details: "Linux tpm_crb_ffa_probe() fails the probe (-EINVAL); it is not deferred",
      });
    }
    this.#link = link;
    this.#partition = { id: part.id, properties: part.properties, callerId, ffaVersion, interfaceVersion, messaging, discovery };
  }

  /** FFA_FEATURES(fn): true on FFA_SUCCESS, false on FFA_ERROR NOT_SUPPORTED / any error. */
  async #features(fn: number, clock: Clock, signal: AbortSignal | undefined): Promise<boolean> {
    const r = await this.#call([BigInt(FFA_FN.FEATURES), BigInt(fn)], clock, signal);
    return isSuccess(r[0]);
  }

  /** A framework call that must answer FFA_SUCCESS (BUSY retried). */
  async #success(what: string, regs: bigint[], clock: Clock, signal: AbortSignal | undefined): Promise<bigint[]> {
    const r = await this.#exchange(what, regs, clock, signal);
    if (isSuccess(r[0])) return r;
    if (w32(r[0]) === FFA_FN.ERROR) throw ffaErrorOf(what, s32(r[2]));
    throw new TpmTransportError(`ffa: ${what} answered 0x${w32(r[0]).toString(16)}, not FFA_SUCCESS`, { errno: "EINVAL" });
  }

  /** FFA_PARTITION_INFO_GET for the UUID: count and descriptor size, or undefined for INVALID_PARAMETERS (unknown UUID). */
  async #partitionInfo(flags: number, clock: Clock, signal: AbortSignal | undefined): Promise<{ count: number; size: number } | undefined> {
    const [a, b, c, d] = uuidToWords(this.uuid);
    const r = await this.#exchange("FFA_PARTITION_INFO_GET", [BigInt(FFA_FN.PARTITION_INFO_GET), BigInt(a), BigInt(b), BigInt(c), BigInt(d), BigInt(flags)], clock, signal);
    if (w32(r[0]) === FFA_FN.ERROR) {
      const code = s32(r[2]);
      if (code === FFA_ERROR_CODE.INVALID_PARAMETERS) return undefined;
      throw ffaErrorOf("FFA_PARTITION_INFO_GET", code);
    }
    if (!isSuccess(r[0])) throw new TpmTransportError(`ffa: FFA_PARTITION_INFO_GET answered 0x${w32(r[0]).toString(16)}`, { errno: "EINVAL" });
    return { count: w32(r[2]), size: w32(r[3]) };
  }

  /** RX-buffer discovery (Linux ffa_rxtx_map() at init, then __ffa_partition_info_get() and ffa_rx_release()). */
  async #partitionsByRx(callerId: number, ffaVersion: number, clock: Clock, signal: AbortSignal | undefined): Promise<{ id: number; properties: number }[]> {
    let pages = 1;
    if (!this.#mapped) {
      // FFA_FEATURES(RXTX_MAP): w2[1:0] minimum buffer size (0 = 4K, 1 = 64K, 2 = 16K)
      const f = await this.#call([BigInt(FFA_FN.FEATURES), BigInt(FFA_FN.RXTX_MAP_64)], clock, signal);
      if (isSuccess(f[0])) pages = [1, 16, 4, 1][w32(f[2]) & 3]!;
      await this.#success("FFA_RXTX_MAP", [BigInt(FFA_FN.RXTX_MAP_64), TX_BUFFER_ID, RX_BUFFER_ID, BigInt(pages)], clock, signal);
      this.#mapped = true;
    }
    const info = await this.#partitionInfo(0, clock, signal);
    if (info === undefined) return [];
    // a full answer lends us the RX buffer until FFA_RX_RELEASE (Linux __ffa_partition_info_get())
    try {
      if (info.count === 0) return [];
      const size = ffaVersion < FFA_VERSION_1_1 ? FFA_PARTITION_DESCRIPTOR_SIZE_V1_0 : info.size;
      if (size < FFA_PARTITION_DESCRIPTOR_SIZE_V1_0) throw new TpmTransportError(`ffa: FFA_PARTITION_INFO_GET descriptor size ${size} is below 8`, { errno: "EINVAL" });
      const rx = (this.bus as unknown as { rxBuffer(id: number): Uint8Array | undefined }).rxBuffer(callerId);
      if (!(rx instanceof Uint8Array)) throw new TpmTransportError(`ffa: no RX buffer for endpoint 0x${callerId.toString(16)} after FFA_PARTITION_INFO_GET`, { errno: "EINVAL" });
      if (info.count * size > rx.length) {
        throw new TpmTransportError(`ffa: ${info.count} descriptors of ${size} bytes do not fit the ${rx.length}-byte RX buffer`, { errno: "EINVAL" });
      }
      const dv = new DataView(rx.buffer, rx.byteOffset, rx.byteLength);
      const out: { id: number; properties: number }[] = [];
      for (let i = 0; i < info.count; i++) out.push({ id: dv.getUint16(i * size, true), properties: dv.getUint32(i * size + 4, true) });
      return out;
    } finally {
      await this.#success("FFA_RX_RELEASE", [BigInt(FFA_FN.RX_RELEASE)], clock, undefined).catch(() => undefined);
    }
  }

  /** Register discovery (Linux __ffa_partition_info_get_regs()): x2 = last index | current << 16 | tag << 32 | size << 48, 3 registers per descriptor from x3. */
  async #partitionsByRegs(clock: Clock, signal: AbortSignal | undefined): Promise<{ id: number; properties: number }[]> {
    const [x1, x2] = this.#uuidRegs;
    const out: { id: number; properties: number }[] = [];
    let start = 0;
    let tag = 0n;
    for (let n = 0; n < MAX_REGS_CALLS; n++) {
      const r = await this.#exchange("FFA_PARTITION_INFO_GET_REGS", [BigInt(FFA_FN.PARTITION_INFO_GET_REGS), x1, x2, BigInt(start) | (tag << 16n)], clock, signal);
      if (w32(r[0]) === FFA_FN.ERROR) {
        const code = s32(r[2]);
        if (code === FFA_ERROR_CODE.INVALID_PARAMETERS) return [];
        throw ffaErrorOf("FFA_PARTITION_INFO_GET_REGS", code);
      }
      if (!isSuccess(r[0])) throw new TpmTransportError(`ffa: FFA_PARTITION_INFO_GET_REGS answered 0x${w32(r[0]).toString(16)}`, { errno: "EINVAL" });
      const meta = r[2]!;
      const last = Number(meta & 0xffffn);
      const cur = Number((meta >> 16n) & 0xffffn);
      tag = (meta >> 32n) & 0xffffn;
      // at most 5 descriptors fit x3..x17; a current index outside start..last is malformed
      if (cur < start || cur > last || cur - start + 1 > 5) {
        throw new TpmTransportError(`ffa: FFA_PARTITION_INFO_GET_REGS indices out of range (start ${start}, current ${cur}, last ${last})`, { errno: "EINVAL" });
      }
      for (let i = 0; i <= cur - start; i++) {
        const d = r[3 + 3 * i]!;
        out.push({ id: Number(d & 0xffffn), properties: Number((d >> 32n) & 0xffffffffn) });
      }
      if (cur >= last) return out;
      start = cur + 1;
    }
    throw new TpmTransportError(`ffa: FFA_PARTITION_INFO_GET_REGS did not reach the last index in ${MAX_REGS_CALLS} calls`, { errno: "EINVAL" });
  }

  // ------------------------------------------------------------ START

  start(ctx: CrbStartContext): Promise<void> {
    try {
      const v = this.#startCommand(ctx);
      return v instanceof Promise ? v : RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  notify(qualifier: CrbStartQualifier, event: CrbStartEvent, ctx: CrbStartContext): Promise<void> {
    try {
      // a new command starts with the locality request: a BUSY streak or a failed recovery of an earlier one is over
      if (event === "requestLocality") {
        this.#busySince = undefined;
        this.#recoveryFailed = false;
      }
      const v = this.#start(qualifier, ctx, `START(${qualifier}) for ${event}`, REARM[event]);
      return v instanceof Promise ? v : RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Linux tpm_crb.c, crb_send(): CTRL_START = 1, then tpm_crb_ffa_start(COMMAND, locality). Synchronous while the window and the conduit are. */
  #startCommand(ctx: CrbStartContext): MaybePromise<void> {
    const clock = this.clock ?? ctx.clock ?? systemClock;
    // an abandoned message first (before CTRL_START is written, so it cannot consume this command's start)
    if (this.#abandoned !== undefined) return this.#recover(clock, ctx.signal).then(() => this.#startCommand(ctx));
    const w = ctx.mmio.write32(ctx.page + CRB_REG.CTRL_START, CRB_INVOKE);
    if (w instanceof Promise) return w.then(() => this.#start("command", ctx, "START(command)", undefined));
    return this.#start("command", ctx, "START(command)", undefined);
  }

  #start(qualifier: CrbStartQualifier, ctx: CrbStartContext, what: string, rearm: readonly [number, number] | undefined): MaybePromise<void> {
    const link = this.#link;
    if (!link) throw new TpmTransportError("ffa: START before a successful probe", { errno: "ENODEV" });
    if (!Number.isInteger(ctx.locality) || ctx.locality < 0 || ctx.locality > 4) throw new TpmArgumentError(`ffa: locality must be 0–4, got ${String(ctx.locality)}`);
    const clock = this.clock ?? ctx.clock ?? systemClock;
    const re = rearm && (() => ctx.mmio.write32(ctx.page + rearm[0], rearm[1]));
    const r = this.#message(link, TPM_SERVICE_FN.START, BIG_SMALL[CRB_START_QUALIFIER[qualifier]]!, BIG_SMALL[ctx.locality]!, what, clock, ctx.signal, re);
    return r instanceof Promise ? r.then(() => undefined) : undefined;
  }

  // ------------------------------------------------------------ messages and calls

  /**
   * One DEN0138 message (Linux tpm_crb_ffa.c, __tpm_crb_ffa_send_receive()): direct request v1
   * (x3 = 0, x4 = function, x5.. args) or v2 (x2/x3 = UUID, x4 = function, x5.. args), BUSY
   * retried, interrupts resumed; the answer's x4 status checked. Returns the response frame, at
   * once when the conduit answered at once. An abandoned earlier message is resumed to its end
   * first ({@link FfaStart.#recover}), then `rearm` writes again what the driver wrote for this one.
   */
  #message(link: Link, fn: number, a5: bigint, a6: bigint, what: string, clock: Clock, signal: AbortSignal | undefined, rearm: (() => unknown) | undefined): MaybePromise<bigint[]> {
    if (this.#abandoned !== undefined) {
      return this.#recover(clock, signal).then(async () => {
        if (rearm) await rearm();
        return this.#message(link, fn, a5, a6, what, clock, signal, undefined);
      });
    }
    // a fresh frame per message: a conduit may keep the array it was given (traces, test doubles)
    const regs: bigint[] = [link.x0, link.x1, link.x2, link.x3, BigInt(fn), a5, a6, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
    this.stats.messages++;
    const r = this.#exchange(what, regs, clock, signal);
    return r instanceof Promise ? r.then((x) => checkAnswer(link, what, x)) : checkAnswer(link, what, r);
  }

  /**
   * One call with Linux's BUSY retry (tpm_crb_ffa.c) and the FFA_RUN loop (arm_ffa driver.c,
   * ffa_msg_send_wait_for_completion()), both bounded. The first answer, when it is final and
   * synchronous, is returned synchronously (no timer, no Promise); anything else goes to
   * {@link FfaStart.#retrying}.
   */
  #exchange(what: string, regs: readonly bigint[], clock: Clock, signal: AbortSignal | undefined): MaybePromise<bigint[]> {
    const v = this.#call(regs, clock, signal);
    if (!(v instanceof Promise) && isFinal(v)) {
      this.#busySince = undefined;
      return v;
    }
    return this.#retrying(what, regs, clock, signal, v);
  }

  /**
   * The slow path of {@link FfaStart.#exchange}, from its first answer `first`: resolves to the
   * first answer that is neither BUSY nor INTERRUPT/YIELD, or throws `FfaError` -4 when BUSY
   * outlasts `busyTimeoutMs` from the first BUSY of the streak, or -5 past `maxResumes`. Leaving
   * while the partition is preempted (that bound, an abort, a timeout) records the message as
   * abandoned, to be resumed before the next one.
   */
  async #retrying(what: string, regs: readonly bigint[], clock: Clock, signal: AbortSignal | undefined, first: MaybePromise<bigint[]>): Promise<bigint[]> {
    for (let attempt = 0; ; attempt++) {
      let r = attempt === 0 ? await first : await this.#call(regs, clock, signal);
      let preempted: bigint | undefined;
      try {
        for (let n = 0; w32(r[0]) === FFA_FN.INTERRUPT || w32(r[0]) === FFA_FN.YIELD; n++) {
          preempted = r[1]!;
          if (n >= this.maxResumes) throw new FfaError(`ffa: ${what}: still preempted after ${this.maxResumes} FFA_RUN resumptions`, FFA_ERROR_CODE.INTERRUPTED);
          if (w32(r[0]) === FFA_FN.YIELD) await clock.sleep(YIELD_SLEEP_MS, signal);
          else throwIfAborted(signal);
          this.stats.resumes++;
          r = await this.#call([FN_RUN, preempted], clock, signal);
        }
        preempted = undefined;
      } finally {
        // DEN0077A §13 (FFA_RUN): the preempted context waits for the caller's FFA_RUN; no v1.2 ABI cancels a direct request
        // the same command's clean-up messages fail at once (the fault is still there); the next
        // command (its locality request) resumes the abandoned message first
        if (preempted !== undefined) {
          this.#abandoned = preempted;
          this.#recoveryFailed = true;
        }
      }
      if (!(w32(r[0]) === FFA_FN.ERROR && s32(r[2]) === FFA_ERROR_CODE.BUSY)) {
        this.#busySince = undefined;
        return r;
      }
      const now = clock.now();
      this.#busySince ??= now;
      const left = this.#busySince + this.busyTimeoutMs - now;
      if (left <= 0) {
        throw new FfaError(`ffa: ${what}: Busy retry timed out (FFA_ERROR BUSY for ${this.busyTimeoutMs} ms)`, FFA_ERROR_CODE.BUSY);
      }
      this.stats.busyRetries++;
      await clock.sleep(Math.min(BUSY_SLEEP_MS[attempt === 0 ? 0 : 1], left), signal);
    }
  }

  /**
   * Resumes an abandoned message to its end with FFA_RUN (DEN0077A §13 FFA_RUN; Linux
   * ffa_msg_send_wait_for_completion() does the same loop, unbounded) and drops its answer:
   * the partition's execution context is free again, so the next request is not answered BUSY.
   * Bounded by `maxResumes` (FFA_YIELD sleeps 1 ms first); FFA_ERROR DENIED / INVALID_PARAMETERS
   * (nothing of ours left to run: the partition finished or was removed) also ends it. Throws
   * `FfaError` -5 when the partition stays preempted (and, until the next locality request,
   * at once), -4 when the framework answers BUSY.
   */
  async #recover(clock: Clock, signal: AbortSignal | undefined): Promise<void> {
    const w1 = this.#abandoned!;
    const msg = `ffa: an earlier message to partition 0x${(w32(w1) >>> 16).toString(16)} is still preempted`;
    if (this.#recoveryFailed) throw new FfaError(`${msg} (not resumed again before the next command)`, FFA_ERROR_CODE.INTERRUPTED);
    for (let n = 0; n < Math.max(1, this.maxResumes); n++) {
      this.stats.resumes++;
      const r = await this.#call([FN_RUN, w1], clock, signal);
      const f = w32(r[0]);
      if (f === FFA_FN.YIELD) {
        await clock.sleep(YIELD_SLEEP_MS, signal);
        continue;
      }
      if (f === FFA_FN.INTERRUPT) continue;
      if (f === FFA_FN.ERROR && s32(r[2]) === FFA_ERROR_CODE.BUSY) throw new FfaError(`${msg}: FFA_RUN answered BUSY`, FFA_ERROR_CODE.BUSY);
      this.#abandoned = undefined; // its answer (or "nothing to run") is dropped
      return;
    }
    this.#recoveryFailed = true;
    throw new FfaError(`${msg} after ${Math.max(1, this.maxResumes)} FFA_RUN resumptions`, FFA_ERROR_CODE.INTERRUPTED);
  }

  /** One conduit call: an asynchronous answer bounded by `callTimeoutMs` and abortable; a synchronous one returned as is (no timer). */
  #call(regs: readonly bigint[], clock: Clock, signal: AbortSignal | undefined): MaybePromise<bigint[]> {
    throwIfAborted(signal);
    this.stats.calls++;
    const v = this.bus.call(regs.length === FFA_REG_COUNT ? regs : ffaFrame(regs));
    if (!(v instanceof Promise)) return frameOfAnswer(v);
    return this.#callAsync(v, regs, clock, signal);
  }

  /**
   * An asynchronous answer: first awaited for at most {@link ANSWER_GRACE_TICKS} microtasks
   * (a model whose partition work settles at once needs no timer), then raced against a
   * `callTimeoutMs` timer on the clock and the signal.
   */
  async #callAsync(v: Promise<bigint[]>, regs: readonly bigint[], clock: Clock, signal: AbortSignal | undefined): Promise<bigint[]> {
    const early: { done: boolean; ok?: boolean; value?: unknown } = { done: false };
    v.then(
      (x) => ((early.done = true), (early.ok = true), (early.value = x)),
      (e: unknown) => ((early.done = true), (early.ok = false), (early.value = e)),
    );
    for (let i = 0; i < ANSWER_GRACE_TICKS && !early.done; i++) await undefined;
    throwIfAborted(signal);
    if (early.done) {
      if (!early.ok) throw early.value;
      return frameOfAnswer(early.value);
    }
    let timer: { clear(): void } | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = clock.setTimer(this.callTimeoutMs, () => reject(new TpmTimeoutError(`ffa: call 0x${w32(regs[0]).toString(16)} (no answer)`, this.callTimeoutMs)));
    });
    try {
      return frameOfAnswer(await withSignal(Promise.race([v, bound]), signal));
    } finally {
      timer?.clear();
      v.catch(() => undefined);
      bound.catch(() => undefined);
    }
  }
}

/** The per-link request registers x0..x3 and the expected answer (Linux ffa_msg_send_direct_req2() / ffa_msg_send_direct_req()). */
function makeLink(callerId: number, partitionId: number, messaging: Link["messaging"], uuid: readonly [bigint, bigint]): Link {
  const x1 = BigInt((((callerId & 0xffff) << 16) | (partitionId & 0xffff)) >>> 0);
  if (messaging === "v2") return { callerId, partitionId, messaging, x0: BigInt(FFA_FN.MSG_SEND_DIRECT_REQ2), x1, x2: uuid[0], x3: uuid[1], resp: FFA_FN.MSG_SEND_DIRECT_RESP2 };
  const m32 = messaging === "v1-32";
  return {
    callerId,
    partitionId,
    messaging,
    x0: BigInt(m32 ? FFA_FN.MSG_SEND_DIRECT_REQ_32 : FFA_FN.MSG_SEND_DIRECT_REQ_64),
    x1,
    x2: 0n,
    x3: 0n,
    resp: m32 ? FFA_FN.MSG_SEND_DIRECT_RESP_32 : FFA_FN.MSG_SEND_DIRECT_RESP_64,
  };
}

/** A message's final answer checked: FFA_ERROR → `FfaError`; not the expected RESP → EINVAL (Linux); x4 a failure status → `FfaError`. */
function checkAnswer(link: Link, what: string, r: bigint[]): bigint[] {
  const r0 = w32(r[0]);
  if (r0 === FFA_FN.ERROR) throw ffaErrorOf(what, s32(r[2]));
  if (r0 !== link.resp) {
    // Linux ffa_msg_send_direct_req(2): any other answer is -EINVAL
    throw new TpmTransportError(`ffa: ${what} answered 0x${r0.toString(16)}, expected 0x${link.resp.toString(16)}`, { errno: "EINVAL" });
  }
  const status = w32(r[4]);
  if (status !== TPM_SERVICE_STATUS.OK && status !== TPM_SERVICE_STATUS.OK_RESULTS_RETURNED) throw statusErrorOf(what, status);
  return r;
}

function isSuccess(x0: bigint | undefined): boolean {
  const f = w32(x0);
  return f === FFA_FN.SUCCESS_32 || f === FFA_FN.SUCCESS_64;
}
