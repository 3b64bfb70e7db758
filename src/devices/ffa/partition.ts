/**
 * A model of a TPM service secure partition (Arm DEN0138, "TPM Service Command Response Buffer
 * Interface Over FF-A") in front of a CRB device model: the partition receives FF-A direct
 * requests (v1 or v2, both with the function ID in x4 and arguments in x5..x7) and drives the CRB
 * registers the normal world wrote, as Microsoft's mu TpmServiceLib, Arm Trusted Services' tpm_crb
 * provider or Arm StMM's TpmCrbOverFfa do.
 *
 * Sources: DEN0138 v1.0 §3 (GET_INTERFACE_VERSION, GET_FEATURE_INFO, START, the notification
 * ABIs, status codes); microsoft/mu_feature_ffa TpmServiceLib (TpmServiceLib.c:
 * HandleStartCommand(), the locality and command state machines, ManageLocality); Arm Trusted
 * Services components/service/tpm/provider (tpm_crb_provider.c); Arm StMM TpmCrbOverFfa; Linux
 * drivers/char/tpm/tpm_crb_ffa.c (the client).
 *
 * @packageDocumentation
 */
import { systemClock } from "../../core/clock.js";
import type { MaybePromise } from "../../core/transport.js";
import { TpmArgumentError } from "../../errors/index.js";
import {
  FFA_ERROR_CODE,
  FFA_PARTITION_PROP,
  TPM_SERVICE_FN,
  TPM_SERVICE_PARTITION_ID,
  TPM_SERVICE_START_QUALIFIER,
  TPM_SERVICE_STATUS,
  TPM_SERVICE_UUID,
} from "../../bus/ffa/abi.js";
import { ffaFrame, w32 } from "../../bus/ffa/conduit.js";
import type { FfaDirectMessage, FfaPartition, FfaPartitionHost, FfaPartitionReply } from "../../bus/ffa/partition.js";
import { CRB_CTRL_REQ, CRB_CTRL_STS, CRB_INVOKE, CRB_LOC_CTRL, CRB_PAGE_SIZE, CRB_REG, CRB_CONTROL_AREA_SIZE } from "../../bus/crb-registers.js";
import type { DevicePhase, DeviceModel, DeviceState } from "../lifecycle.js";

const S = TPM_SERVICE_STATUS;
const FN = TPM_SERVICE_FN;

/** GET_FEATURE_INFO's feature ID for notifications (DEN0138 §3.2.2). */
export const TPM_SERVICE_FEATURE_NOTIFICATIONS = 0xfea70000;

/**
 * The CRB device a {@link TpmServicePartition} drives: `CrbDevice` built with
 * `{ localities: 5, trigger: "doorbell" }` fits (declared structurally: a device model never
 * imports another device family).
 */
export interface TpmServiceCrbDevice extends DeviceModel<DeviceState & { readonly fatal?: boolean }> {
  /** Number of locality pages (5 for DEN0138). */
  readonly localities: number;
  /** Must be `"doorbell"`: register writes wait for the START call. */
  readonly trigger: "register" | "doorbell";
  /** CMD_SIZE / RSP_SIZE. */
  readonly bufferSize: number;
  /** Physical address of the register block. */
  readonly address: number;
  /** Reads a 32-bit register (a latched write reads back until the doorbell). */
  read32(offset: number): number;
  /** Writes a 32-bit register (control registers are latched until the doorbell). */
  write32(offset: number, value: number): void;
  /** Writes bytes into the data buffer. */
  writeFifo(offset: number, data: Uint8Array): void;
  /** Reads bytes of the data buffer. */
  readFifo(offset: number, length: number): Uint8Array;
  /** Applies the latched writes of one page (see `CrbDevice.doorbell`). */
  doorbell(qualifier: "command" | "locality", locality: number): "ok" | "denied" | "invalid";
}

/** The DEN0138 implementation whose documented behaviour the partition reproduces. */
export type TpmServiceVariant = "mu" | "ts" | "stmm";

/** Options of {@link TpmServicePartition}. */
export interface TpmServicePartitionOptions {
  /** The CRB device (five localities, `trigger: "doorbell"`). */
  device: TpmServiceCrbDevice;
  /** Endpoint ID. Default 0x8002 (QEMU SBSA's MS secure partition). */
  id?: number;
  /** GET_INTERFACE_VERSION's answer. Default 1.0 (mu, TS; Arm StMM 2026 reports 1.1). */
  interfaceVersion?: { major: number; minor: number };
  /** Whose behaviour: "mu" (default, microsoft/mu_feature_ffa), "ts" (Arm Trusted Services), "stmm" (Arm StMM). */
  variant?: TpmServiceVariant;
  /** All five localities open at reset (as after firmware opened them). Default true; false: mu's closed-at-reset localities. */
  localitiesOpen?: boolean;
  /** Idle bypass (mu: INTF_ID.CapCRBIdleBypass, bit 9). Default: read from the device's INTF_ID. */
  idleBypass?: boolean;
  /** Partition properties. Default direct-req recv + req2 recv + AArch64 (0x301). */
  properties?: number;
}

/** Fault hooks on {@link TpmServicePartition.faults}; set them at any time. */
export interface TpmServicePartitionFaults {
  /** Answer FFA_ERROR BUSY until this many ms of bus-clock time have passed since it was set (0: off). */
  busyForMs: number;
  /** START answers DENIED. */
  denied: boolean;
  /** PARTITION_INFO_GET does not find the partition (and messages to it are refused). */
  absent: boolean;
  /** Preempt every Nth call reaching the partition (requests and FFA_RUN resumes) with FFA_INTERRUPT; 1 is a storm that never ends. 0: off. */
  interruptEvery: number;
  /** Every call yields (FFA_YIELD) forever: FFA_RUN never gets an answer. */
  neverAnswers: boolean;
  /** Answer every direct request with FFA_ERROR of this code (e.g. -7 RETRY, -8 ABORTED); undefined: off. */
  ffaError: number | undefined;
}

/** The mu command state machine's states (TpmServiceLib: TPM_STATE_IDLE/READY/COMPLETE). */
export type TpmServiceCommandState = "idle" | "ready" | "complete";

/** A snapshot of the partition's state. */
export interface TpmServicePartitionState extends DeviceState {
  /** The locality the partition considers active, or -1. */
  readonly activeLocality: number;
  /** mu's command state. */
  readonly commandState: TpmServiceCommandState;
  /** Open localities (mu MANAGE_LOCALITY). */
  readonly open: readonly boolean[];
  /** Direct requests received. */
  readonly requests: number;
}

type Regs = bigint[];

/**
 * The TPM service partition. Requests carry the DEN0138 function ID in x4 (v1: x3 must be 0 for
 * TS), arguments in x5..x7; the answer has the status in x4 and results in x5..
 *
 * - GET_INTERFACE_VERSION → OK_RESULTS_RETURNED, x5 = major << 16 | minor.
 * - GET_FEATURE_INFO → NOTSUP (mu, TS); StMM: NOTSUP for notifications, INVARG for other IDs.
 * - REGISTER/UNREGISTER/FINISH_NOTIFIED → NOTSUP (every implementation).
 * - GET_CRB_INFO (DEN0138 v1.1) → StMM with interface version ≥ 1.1: OK_RESULTS_RETURNED,
 *   x5 = control-area address (base + 0x40), x6 = 0 (4 KiB; code unverified); others as unknown.
 * - MANAGE_LOCALITY (mu only): from endpoints 0xFFxx (EL3 logical partitions) only, else DENIED;
 *   x5 0 open / 1 close, x6 locality.
 * - Unknown functions → NOFUNC (StMM: INVARG).
 * - START (x5[7:0] qualifier, x6[7:0] locality), mu: locality ≥ 5 INVARG; closed DENIED;
 *   locality SM (relinquish first: not active → DENIED; request: another active → DENIED; neither
 *   → DENIED); command SM with one global state (goIdle beats cmdReady beats start): IDLE only
 *   takes cmdReady; READY takes goIdle, cmdReady, start (→ COMPLETE); COMPLETE takes goIdle
 *   (→ IDLE, buffer zeroed), and cmdReady / start only with idle bypass. Backend failure → DENIED
 *   (state unchanged); a command longer than the buffer → NOMEM. After every START the active
 *   locality's control registers are cleaned (LOC_CTRL, CTRL_REQ, CANCEL, START read 0).
 * - TS: locality 4 NOTSUP; a request takes the locality from whoever holds it; relinquish of a
 *   locality not held is OK; CTRL_REQ is ignored (never applied, never cleared); START(command)
 *   with CTRL_START clear or a header length of 0 or > 4096 → INV_CRB_CTRL_DATA; v1 requests with
 *   x3 ≠ 0 → FFA_ERROR INVALID_PARAMETERS (TS drops them).
 * - StMM: locality 4 DENIED; a request for a lower locality than the active one DENIED (a higher
 *   one takes it); CTRL_REQ nonzero → cleared, OK, idle state unchanged; START(command) with
 *   CTRL_START clear → INV_CRB_CTRL_DATA. (StMM's beenSeized marks are not modelled: LOC_STS is
 *   the device's.)
 *
 * The command runs on the device's backend; the partition answers when it completed, or yields
 * (FFA_YIELD, 10 ms) while it runs, as mu's backend waits do.
 *
 * @example
 * ```ts
 * const device = new CrbDevice({ backend: new SoftTpm(), localities: 5, trigger: "doorbell" });
 * const partition = new TpmServicePartition({ device });
 * const bus = new FfaBus();
 * bus.addPartition(partition);
 * partition.faults.busyForMs = 50; // BUSY for the next 50 ms of bus time
 * ```
 */
export class TpmServicePartition implements FfaPartition, DeviceModel<TpmServicePartitionState> {
  /** The interface modelled. */
  readonly kind = "ffa-tpm-service";
  /** The endpoint ID. */
  readonly id: number;
  /** The TPM service UUID. */
  readonly uuids: readonly string[] = [TPM_SERVICE_UUID];
  /** Partition properties. */
  readonly properties: number;
  /** One execution context. */
  readonly executionContexts = 1;
  /** The variant reproduced. */
  readonly variant: TpmServiceVariant;
  /** The CRB device driven. */
  readonly device: TpmServiceCrbDevice;
  /** GET_INTERFACE_VERSION's answer. */
  readonly interfaceVersion: { readonly major: number; readonly minor: number };
  /** Fault hooks; see {@link TpmServicePartitionFaults}. */
  readonly faults: TpmServicePartitionFaults;

  #now: () => number = () => systemClock.now();
  #ownClock = false;
  #busyFor = 0;
  #busySince = 0;
  #openAtReset: boolean;
  #open: boolean[] = [];
  #active = -1;
  #cmd: TpmServiceCommandState = "idle";
  #idleBypass: boolean | undefined;
  #requests = 0;
  #calls = 0;

  /**
   * @param options - {@link TpmServicePartitionOptions}.
   * @throws TpmArgumentError when the device is not a doorbell-triggered CRB device, or an option is out of range.
   */
  constructor(options: TpmServicePartitionOptions) {
    const d = options?.device;
    if (!d || typeof d.doorbell !== "function" || typeof d.read32 !== "function") throw new TpmArgumentError("TpmServicePartition needs a CRB device with doorbell() (CrbDevice)");
    if (d.trigger !== "doorbell") throw new TpmArgumentError('TpmServicePartition needs a CrbDevice built with trigger: "doorbell" (writes wait for START)');
    const id = options.id ?? TPM_SERVICE_PARTITION_ID;
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new TpmArgumentError(`TpmServicePartition id must be a 16-bit endpoint ID, got ${String(id)}`);
    const variant = options.variant ?? "mu";
    if (variant !== "mu" && variant !== "ts" && variant !== "stmm") throw new TpmArgumentError(`TpmServicePartition variant must be "mu", "ts" or "stmm", got ${String(variant)}`);
    const iv = options.interfaceVersion ?? { major: 1, minor: 0 };
    if (![iv.major, iv.minor].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff)) throw new TpmArgumentError("TpmServicePartition interfaceVersion major/minor must be 0..65535");
    this.device = d;
    this.id = id;
    this.variant = variant;
    this.interfaceVersion = Object.freeze({ major: iv.major, minor: iv.minor });
    this.properties = options.properties ?? (FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.DIRECT_REQ2_RECV | FFA_PARTITION_PROP.AARCH64);
    this.#openAtReset = options.localitiesOpen ?? true;
    this.#idleBypass = options.idleBypass;
    const self = this;
    this.faults = {
      get busyForMs() {
        return self.#busyFor;
      },
      set busyForMs(ms: number) {
        self.#busyFor = Number.isFinite(ms) && ms > 0 ? ms : 0;
        self.#busySince = self.#now();
      },
      denied: false,
      absent: false,
      interruptEvery: 0,
      neverAnswers: false,
      ffaError: undefined,
    };
    this.#resetState();
  }

  /** False while `faults.absent` is set. */
  get discoverable(): boolean {
    return !this.faults.absent;
  }

  /** @param host - The bus: its clock runs `busyForMs` from now on. */
  attach(host: FfaPartitionHost): void {
    if (this.#ownClock) return;
    this.#ownClock = true;
    const busyElapsed = this.#now() - this.#busySince;
    this.#now = host.now;
    this.#busySince = this.#now() - Math.max(0, busyElapsed);
  }

  // ------------------------------------------------------------ lifecycle (delegated to the device)

  /** The device's channel (the partition's own traffic is traced by the bus). */
  get channel(): string | undefined {
    return this.device.channel;
  }

  /** A snapshot. */
  get state(): TpmServicePartitionState {
    const ds = this.device.state;
    return { phase: ds.phase, lastError: ds.lastError, activeLocality: this.#active, commandState: this.#cmd, open: [...this.#open], requests: this.#requests };
  }

  /** The device's `ready`. */
  get ready(): Promise<void> {
    return this.device.ready;
  }

  /** Starts the device. @returns its phase. */
  start(): Promise<DevicePhase> {
    return this.device.start();
  }

  /** Partition and device reset: localities back to their reset state, command state IDLE. @returns the device's phase. */
  reset(): Promise<DevicePhase> {
    this.#resetState();
    return this.device.reset();
  }

  /** @param cause - Why the backend died. */
  killBackend(cause?: unknown): void {
    this.device.killBackend(cause);
  }

  /** Stops the device. @returns a resolved promise. */
  stop(): Promise<void> {
    return this.device.stop();
  }

  /** {@link TpmServicePartition.stop}. @returns a resolved promise. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #resetState(): void {
    this.#open = Array.from({ length: 5 }, () => this.#openAtReset);
    this.#active = -1;
    this.#cmd = "idle";
  }

  // ------------------------------------------------------------ messages

  /**
   * Handles one direct request (called by the bus). Never throws.
   *
   * @param msg - The request.
   * @returns The reply (a response, an FFA_ERROR, an interrupt or a yield).
   */
  message(msg: FfaDirectMessage): MaybePromise<FfaPartitionReply> {
    this.#requests++;
    if (this.faults.ffaError !== undefined) return { type: "error", code: this.faults.ffaError };
    if (this.#busyFor > 0 && this.#now() - this.#busySince < this.#busyFor) return { type: "error", code: FFA_ERROR_CODE.BUSY };
    let frame: FfaDirectMessage;
    try {
      frame = isFrame(msg.regs) ? msg : { ...msg, regs: ffaFrame(Array.isArray(msg.regs) ? msg.regs : []) };
    } catch {
      return { type: "error", code: FFA_ERROR_CODE.INVALID_PARAMETERS }; // not a register frame
    }
    try {
      return this.#step(() => this.#handle(frame));
    } catch {
      return { type: "error", code: FFA_ERROR_CODE.ABORTED }; // the model must not throw into the framework
    }
  }

  /** One call reaching the partition: maybe preempted, maybe yielding forever, else `work`. */
  #step(work: () => MaybePromise<FfaPartitionReply>): MaybePromise<FfaPartitionReply> {
    this.#calls++;
    const n = this.faults.interruptEvery;
    if (Number.isInteger(n) && n > 0 && this.#calls % n === 0) return { type: "interrupt", resume: () => this.#step(work) };
    if (this.faults.neverAnswers) return { type: "yield", timeoutNs: 10_000_000n, resume: () => this.#step(work) };
    return work();
  }

  #handle(msg: FfaDirectMessage): MaybePromise<FfaPartitionReply> {
    const x = msg.regs;
    if (this.variant === "ts" && msg.version === 1 && x[3] !== 0n) return { type: "error", code: FFA_ERROR_CODE.INVALID_PARAMETERS };
    const fn = w32(x[4]);
    switch (fn) {
      case FN.GET_INTERFACE_VERSION:
        return answer(S.OK_RESULTS_RETURNED, ((this.interfaceVersion.major << 16) | this.interfaceVersion.minor) >>> 0);
      case FN.GET_FEATURE_INFO:
        if (this.variant === "stmm" && w32(x[5]) !== TPM_SERVICE_FEATURE_NOTIFICATIONS) return answer(S.INVARG);
        return answer(S.NOTSUP);
      case FN.REGISTER_FOR_NOTIFICATION:
      case FN.UNREGISTER_FROM_NOTIFICATION:
      case FN.FINISH_NOTIFIED:
        return answer(S.NOTSUP);
      case FN.START:
        return this.#after(this.#start(Number(x[5]! & 0xffn), Number(x[6]! & 0xffn))); // mu: every START ends by cleaning the active block
      case FN.GET_CRB_INFO:
        if (this.variant === "stmm" && (this.interfaceVersion.major > 1 || this.interfaceVersion.minor >= 1)) {
          return answer(S.OK_RESULTS_RETURNED, this.device.address + CRB_REG.CTRL_REQ, 0);
        }
        break;
      case FN.MANAGE_LOCALITY:
        if (this.variant === "mu") return answer(this.#manageLocality(msg.sender, w32(x[5]), w32(x[6])));
        break;
    }
    return answer(this.variant === "stmm" ? S.INVARG : S.NOFUNC);
  }

  /** mu ManageLocality: only EL3 logical partitions (0xFFxx) may open or close a locality. */
  #manageLocality(sender: number, op: number, loc: number): number {
    if (sender >>> 8 !== 0xff) return S.DENIED;
    if (loc > 4 || (op !== 0 && op !== 1)) return S.INVARG;
    this.#open[loc] = op === 0;
    return S.OK;
  }

  #page(loc: number, reg: number): number {
    return loc * CRB_PAGE_SIZE + reg;
  }

  #running(): boolean {
    return this.device.state.phase === "running";
  }

  /** START (DEN0138 §3.2.3). */
  #start(qualifier: number, loc: number): MaybePromise<FfaPartitionReply> {
    if (loc > 4) return answer(S.INVARG);
    if (this.variant === "ts" && loc === 4) return answer(S.NOTSUP);
    if (this.variant === "stmm" && loc === 4) return answer(S.DENIED);
    if (loc >= this.device.localities || !this.#open[loc]) return answer(S.DENIED);
    if (this.faults.denied || !this.#running()) return answer(S.DENIED);
    if (qualifier === TPM_SERVICE_START_QUALIFIER.LOCALITY) return answer(this.#locality(loc));
    if (qualifier !== TPM_SERVICE_START_QUALIFIER.COMMAND) return answer(S.INVARG);
    if (this.variant === "mu") {
      if (loc !== this.#active) return answer(S.INVARG);
      return this.#commandMu(loc);
    }
    if (loc !== this.#active) return answer(this.variant === "stmm" ? S.DENIED : S.INVARG);
    return this.#commandOther(loc);
  }

  #after(r: MaybePromise<FfaPartitionReply>): MaybePromise<FfaPartitionReply> {
    return r instanceof Promise ? r.then((v) => this.#clean(v)) : this.#clean(r);
  }

  /** mu: after every START the active locality's control registers are cleaned (TS keeps CTRL_REQ). */
  #clean(r: FfaPartitionReply): FfaPartitionReply {
    const loc = this.#active;
    if (loc >= 0 && loc < this.device.localities && this.#running()) {
      const keepReq = this.variant === "ts";
      this.device.write32(this.#page(loc, CRB_REG.LOC_CTRL), 0);
      if (!keepReq) this.device.write32(this.#page(loc, CRB_REG.CTRL_REQ), 0);
      this.device.write32(this.#page(loc, CRB_REG.CTRL_CANCEL), 0);
      this.device.write32(this.#page(loc, CRB_REG.CTRL_START), 0); // the latch only: a running command's START still reads 1
    }
    return r;
  }

  /** The locality state machine (qualifier 1). */
  #locality(loc: number): number {
    const ctrl = this.device.read32(this.#page(loc, CRB_REG.LOC_CTRL));
    const bell = (v: number): "ok" | "denied" | "invalid" => {
      this.device.write32(this.#page(loc, CRB_REG.LOC_CTRL), v);
      return this.device.doorbell("locality", loc);
    };
    if (ctrl & CRB_LOC_CTRL.RELINQUISH) {
      if (loc !== this.#active) {
        this.device.write32(this.#page(loc, CRB_REG.LOC_CTRL), 0);
        return this.variant === "ts" ? S.OK : S.DENIED;
      }
      if (bell(CRB_LOC_CTRL.RELINQUISH) !== "ok") return S.DENIED;
      this.#active = -1;
      return S.OK;
    }
    if (ctrl & CRB_LOC_CTRL.REQUEST_ACCESS) {
      const cur = this.#active;
      if (cur !== -1 && cur !== loc) {
        const takes = this.variant === "ts" || (this.variant === "stmm" && loc > cur);
        if (!takes) return S.DENIED;
        // TS / StMM: the new locality takes over (the device is told the old one relinquished)
        this.device.write32(this.#page(cur, CRB_REG.LOC_CTRL), CRB_LOC_CTRL.RELINQUISH);
        if (this.device.doorbell("locality", cur) !== "ok") return S.DENIED;
        this.#active = -1;
      }
      if (bell(CRB_LOC_CTRL.REQUEST_ACCESS) !== "ok") return S.DENIED;
      this.#active = loc;
      return S.OK;
    }
    return S.DENIED; // neither bit (seize included)
  }

  #bypass(loc: number): boolean {
    return this.#idleBypass ?? ((this.device.read32(this.#page(loc, CRB_REG.INTF_ID)) >>> 9) & 1) === 1;
  }

  #zeroBuffer(loc: number): void {
    this.device.writeFifo(this.#page(loc, CRB_REG.DATA_BUFFER), ZERO_BUFFER); // the device copies it
  }

  /** Applies exactly one control action through the doorbell (other latches cleared first). */
  #ring(loc: number, req: number, start: number): "ok" | "denied" | "invalid" {
    this.device.write32(this.#page(loc, CRB_REG.CTRL_REQ), req);
    this.device.write32(this.#page(loc, CRB_REG.CTRL_CANCEL), 0);
    this.device.write32(this.#page(loc, CRB_REG.CTRL_START), start);
    return this.device.doorbell("command", loc);
  }

  /** mu's command state machine (goIdle beats cmdReady beats start). */
  #commandMu(loc: number): MaybePromise<FfaPartitionReply> {
    const req = this.device.read32(this.#page(loc, CRB_REG.CTRL_REQ));
    const start = this.device.read32(this.#page(loc, CRB_REG.CTRL_START)) & CRB_INVOKE;
    const bypass = this.#bypass(loc);
    if (req & CRB_CTRL_REQ.GO_IDLE) {
      if (this.#cmd === "idle") return answer(S.DENIED);
      if (this.#cmd === "complete") this.#zeroBuffer(loc);
      this.#ring(loc, CRB_CTRL_REQ.GO_IDLE, 0);
      this.#cmd = "idle";
      return answer(S.OK);
    }
    if (req & CRB_CTRL_REQ.CMD_READY) {
      if (this.#cmd === "complete") {
        if (!bypass) return answer(S.DENIED);
        this.#zeroBuffer(loc);
      }
      this.#ring(loc, CRB_CTRL_REQ.CMD_READY, 0);
      this.#cmd = "ready";
      return answer(S.OK);
    }
    if (start) {
      if (this.#cmd === "idle" || (this.#cmd === "complete" && !bypass)) return answer(S.DENIED);
      return this.#run(loc, (ok) => {
        if (ok) this.#cmd = "complete";
      });
    }
    return answer(S.DENIED);
  }

  /** TS and StMM: no command state machine. */
  #commandOther(loc: number): MaybePromise<FfaPartitionReply> {
    const req = this.device.read32(this.#page(loc, CRB_REG.CTRL_REQ));
    if (this.variant === "stmm" && req !== 0) {
      this.device.write32(this.#page(loc, CRB_REG.CTRL_REQ), 0); // cleared, idle state unchanged
      return answer(S.OK);
    }
    if (!(this.device.read32(this.#page(loc, CRB_REG.CTRL_START)) & CRB_INVOKE)) return answer(S.INV_CRB_CTRL_DATA);
    if (this.variant === "ts") {
      const len = readBe32(this.device.readFifo(this.#page(loc, CRB_REG.DATA_BUFFER) + 2, 4));
      if (len === 0 || len > 4096) return answer(S.INV_CRB_CTRL_DATA);
    }
    return this.#run(loc, () => {}, req);
  }

  /** Runs the command in the buffer through the device; DENIED on a backend failure, NOMEM when it does not fit. */
  #run(loc: number, done: (ok: boolean) => void, keepReq = 0): MaybePromise<FfaPartitionReply> {
    const len = readBe32(this.device.readFifo(this.#page(loc, CRB_REG.DATA_BUFFER) + 2, 4));
    if (len > this.device.bufferSize) return answer(S.NOMEM);
    const before = this.device.state;
    const bell = this.#ring(loc, 0, CRB_INVOKE);
    if (keepReq) this.device.write32(this.#page(loc, CRB_REG.CTRL_REQ), keepReq); // TS never clears CTRL_REQ
    if (bell !== "ok") return answer(S.DENIED);
    const finish = (): FfaPartitionReply => {
      const after = this.device.state;
      const failed = after.lastError !== before.lastError || (after.fatal === true && before.fatal !== true) || (this.device.read32(this.#page(loc, CRB_REG.CTRL_STS)) & CRB_CTRL_STS.TPM_STS) !== 0;
      done(!failed);
      return answer(failed ? S.DENIED : S.OK);
    };
    const started = () => (this.device.read32(this.#page(loc, CRB_REG.CTRL_START)) & CRB_INVOKE) !== 0;
    if (!started()) return finish();
    const wait = async (): Promise<FfaPartitionReply> => {
      for (let i = 0; i < 16 && started(); i++) await Promise.resolve();
      if (!started()) return finish();
      return { type: "yield", timeoutNs: 10_000_000n, resume: wait }; // mu: backend waits yield in 10 ms steps
    };
    return wait();
  }
}

/** Zeros for a locality's data buffer (mu zeroes it on goIdle from COMPLETE); never written to. */
const ZERO_BUFFER = new Uint8Array(CRB_PAGE_SIZE - CRB_CONTROL_AREA_SIZE);

const MAX_U64 = (1n << 64n) - 1n;

/** Whether `regs` already is an 18-register frame of 64-bit values (what the bus hands over): no copy needed. */
function isFrame(regs: unknown): regs is readonly bigint[] {
  if (!Array.isArray(regs) || regs.length !== 18) return false;
  for (let i = 0; i < 18; i++) {
    const r: unknown = regs[i];
    if (typeof r !== "bigint" || r < 0n || r > MAX_U64) return false;
  }
  return true;
}

/** The answers without results, built once (a reply's registers are only read by the framework). */
const PLAIN_ANSWERS = new Map<number, FfaPartitionReply>();

function answer(status: number, ...results: number[]): FfaPartitionReply {
  if (results.length === 0) {
    const cached = PLAIN_ANSWERS.get(status);
    if (cached) return cached;
  }
  const regs: Regs = [0n, 0n, 0n, 0n, BigInt(status >>> 0), 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
  for (let i = 0; i < results.length; i++) regs[5 + i] = BigInt(Math.max(0, Math.trunc(results[i]!)));
  const reply: FfaPartitionReply = Object.freeze({ type: "response", regs: Object.freeze(regs) });
  if (results.length === 0) PLAIN_ANSWERS.set(status, reply);
  return reply;
}

function readBe32(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}
