/**
 * SoftTpm: a TPM 2.0 in pure TypeScript, the embedded default backend of tpmkit. It implements
 * the commands a boot chain, a measuring OS and an NV-using tool need (start-up, self test,
 * random, capabilities, PCRs, hashing and sequences, clock, hierarchy auth, Clear and NV indices)
 * with the response codes swtpm 0.7.1 / libtpms 0.9 give for the same bytes.
 *
 * Dictionary-attack protection follows TPM 2.0 Part 1 §19.8.6 with swtpm's parameters: three
 * failures on DA-protected NV indices lock them out (TPM_RC_LOCKOUT), one failure is forgiven
 * every 1000 s of TPM clock; a wrong lockoutAuth makes the lockout hierarchy unusable for
 * 1000 s (this timer is volatile: a power cycle ends it).
 *
 * Sessions: password (TPM_RS_PW) and unsalted HMAC sessions (bound or unbound, symmetric
 * TPM_ALG_NULL) from TPM2_StartAuthSession, enough for tpm2-tools and ESYS.
 *
 * Not implemented (answered as a TPM without them would): keys and objects, policy and trial
 * sessions, salted sessions, parameter encryption, audit, TPM2_DictionaryAttackLockReset.
 *
 * @packageDocumentation
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { type Clock, systemClock } from "../core/clock.js";
import { TpmArgumentError, TpmStateError, TpmStateFileError, throwIfAborted } from "../errors/index.js";
import type { TpmBackend } from "../core/transport.js";
import { type RandomSource, SeededRandom, SystemRandom } from "./random.js";
import {
  AUTH_MAX,
  NT_BITS,
  NT_COUNTER,
  NT_EXTEND,
  NT_ORDINARY,
  NV_DATA_MAX,
  NV_INDICES_MAX,
  type NvIndexState,
  type PersistentState,
  decodeState,
  encodeState,
  nvIndexProblem,
} from "./state.js";
import type { Storage } from "../core/storage.js";
import {
  CC,
  COMMAND_ATTRIBUTES,
  HASH_ALGS,
  type HashAlg,
  PCR_COUNT,
  PCR_EXTEND_BY_LOCALITY,
  PCR_INIT_ONES,
  PCR_NO_INCREMENT,
  PCR_PROPERTIES,
  PCR_RESET_BY_LOCALITY,
  PCR_SAVE,
  PCR_SELECT_SIZE,
  hashAlg,
} from "./tables.js";

/** Largest command and response (TPM_PT_MAX_COMMAND_SIZE / MAX_RESPONSE_SIZE). */
export const SOFTTPM_MAX_COMMAND_SIZE = 4096;
/** Largest TPM2B_MAX_BUFFER / TPM2B_MAX_NV_BUFFER (TPM_PT_INPUT_BUFFER / NV_BUFFER_MAX). */
export const SOFTTPM_MAX_BUFFER = 1024;
/** Largest number of random bytes one TPM2_GetRandom returns: the largest digest (SHA-512). */
export const SOFTTPM_MAX_RANDOM = 64;

// Response codes (TPM 2.0 Part 2 §6.6). Format-1 codes get a handle (H, bits 8–10), parameter
// (P = 0x40 + number in bits 8–11) or session (S = 0x800 + number in bits 8–10) number.
const RC_SUCCESS = 0x000;
const RC_BAD_TAG = 0x01e;
const RC_INITIALIZE = 0x100;
const RC_FAILURE = 0x101;
const RC_DISABLED = 0x120;
const RC_AUTH_MISSING = 0x125;
const RC_AUTH_CONTEXT = 0x145;
const RC_AUTH_UNAVAILABLE = 0x12f;
const RC_COMMAND_SIZE = 0x142;
const RC_COMMAND_CODE = 0x143;
const RC_NV_RANGE = 0x146;
const RC_NV_LOCKED = 0x148;
const RC_NV_AUTHORIZATION = 0x149;
const RC_NV_UNINITIALIZED = 0x14a;
const RC_NV_SPACE = 0x14b;
const RC_NV_DEFINED = 0x14c;
const RC_ATTRIBUTES = 0x082;
const RC_HASH = 0x083;
const RC_VALUE = 0x084;
const RC_MODE = 0x089;
const RC_HANDLE = 0x08b;
const RC_AUTH_FAIL = 0x08e;
const RC_NONCE = 0x08f;
const RC_SIZE = 0x095;
const RC_INSUFFICIENT = 0x09a;
const RC_RESERVED_BITS = 0x0a1;
const RC_BAD_AUTH = 0x0a2;
const RC_OBJECT_MEMORY = 0x902;
const RC_LOCALITY = 0x907;
const RC_REFERENCE_S0 = 0x918;
const RC_SYMMETRIC = 0x096;
const RC_KEY = 0x09c;
const RC_SESSION_MEMORY = 0x903;
const RC_REFERENCE_H0 = 0x910;
const RC_LOCKOUT = 0x921;
const RC_RETRY = 0x922;

const H = (rc: number, n: number) => rc | (n << 8);
const P = (rc: number, n: number) => rc | 0x040 | (n << 8);
const S = (rc: number, n: number) => rc | 0x800 | (n << 8);

const ST_NO_SESSIONS = 0x8001;
const ST_SESSIONS = 0x8002;
const ST_HASHCHECK = 0x8024;

const RH_OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const RS_PW = 0x40000009;
const RH_LOCKOUT = 0x4000000a;
const RH_ENDORSEMENT = 0x4000000b;
const RH_PLATFORM = 0x4000000c;
const RH_PLATFORM_NV = 0x4000000d;
const PERMANENT_HANDLES = [RH_OWNER, RH_NULL, RS_PW, RH_LOCKOUT, RH_ENDORSEMENT, RH_PLATFORM, RH_PLATFORM_NV];
const TRANSIENT_FIRST = 0x80000000;
const MAX_SEQUENCES = 3;
const MAX_SESSIONS = 3;
/** Session handles 0x02000000/0x03000000 + 0..63 are well formed (libtpms MAX_ACTIVE_SESSIONS). */
const SESSION_HANDLE_RANGE = 64;
// Dictionary-attack parameters (TPM_PT_MAX_AUTH_FAIL, LOCKOUT_INTERVAL, LOCKOUT_RECOVERY), as swtpm
const MAX_AUTH_FAIL = 3;
const LOCKOUT_INTERVAL_S = 1000;
const LOCKOUT_RECOVERY_S = 1000;

// TPMA_NV bits (TPM 2.0 Part 2 §13.4).
const NV_PPWRITE = 0x1;
const NV_OWNERWRITE = 0x2;
const NV_AUTHWRITE = 0x4;
const NV_POLICYWRITE = 0x8;
const NV_RESERVED = 0x01f00300;
const NV_POLICY_DELETE = 0x400;
const NV_WRITELOCKED = 0x800;
const NV_WRITEALL = 0x1000;
const NV_WRITEDEFINE = 0x2000;
const NV_WRITE_STCLEAR = 0x4000;
const NV_PPREAD = 0x10000;
const NV_OWNERREAD = 0x20000;
const NV_AUTHREAD = 0x40000;
const NV_POLICYREAD = 0x80000;
const NV_NO_DA = 0x02000000;
const NV_CLEAR_STCLEAR = 0x08000000;
const NV_READLOCKED = 0x10000000;
const NV_WRITTEN = 0x20000000;
const NV_PLATFORMCREATE = 0x40000000;
const NV_READ_STCLEAR = 0x80000000;

/** Thrown inside command handlers to end a command with a response code. */
class Rc {
  constructor(readonly rc: number) {}
}

/** A reusable, bounds-checked reader over the command bytes (no DataView, no allocation). */
class In {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Number of the parameter being read, for TPM_RC_INSUFFICIENT + P + n. */
  param = 0;

  need(n: number): void {
    if (this.end - this.pos < n) throw new Rc(P(RC_INSUFFICIENT, this.param));
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const b = this.buf;
    const v = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** A TPM2B whose size may be at most `max` (else TPM_RC_SIZE + P + n). */
  tpm2b(max: number): Uint8Array {
    const n = this.u16();
    if (n > max) throw new Rc(P(RC_SIZE, this.param));
    return this.bytes(n);
  }
  /** Ends parameter parsing: trailing bytes give TPM_RC_SIZE. */
  done(): void {
    if (this.pos !== this.end) throw new Rc(RC_SIZE);
  }
}

/** A reusable response writer over one preallocated buffer. */
class Out {
  readonly buf = new Uint8Array(SOFTTPM_MAX_COMMAND_SIZE);
  pos = 0;
  room(n: number): void {
    if (this.pos + n > this.buf.length) throw new Rc(RC_FAILURE);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.buf[this.pos++] = v >>> 8;
    this.buf[this.pos++] = v;
  }
  u32(v: number): void {
    this.room(4);
    const b = this.buf;
    b[this.pos++] = v >>> 24;
    b[this.pos++] = v >>> 16;
    b[this.pos++] = v >>> 8;
    b[this.pos++] = v;
  }
  u64(v: number | bigint): void {
    const b = BigInt(v);
    this.u32(Number(b >> 32n) >>> 0);
    this.u32(Number(b & 0xffffffffn) >>> 0);
  }
  bytes(d: Uint8Array): void {
    this.room(d.length);
    this.buf.set(d, this.pos);
    this.pos += d.length;
  }
  tpm2b(d: Uint8Array): void {
    this.u16(d.length);
    this.bytes(d);
  }
  /** Reserves `n` bytes and returns their offset. */
  skip(n: number): number {
    this.room(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  putU32(at: number, v: number): void {
    const b = this.buf;
    b[at] = v >>> 24;
    b[at + 1] = v >>> 16;
    b[at + 2] = v >>> 8;
    b[at + 3] = v;
  }
}

/** Handle kinds a command's handle area may hold (TPMI_* types of TPM 2.0 Part 2). */
type HandleKind =
  | "pcr" // TPMI_DH_PCR
  | "pcr+null" // TPMI_DH_PCR+
  | "provision" // TPMI_RH_PROVISION: owner, platform
  | "clear" // TPMI_RH_CLEAR: lockout, platform
  | "hierarchyAuth" // TPMI_RH_HIERARCHY_AUTH
  | "nvAuth" // TPMI_RH_NV_AUTH: owner, platform, NV index
  | "nvIndex" // TPMI_RH_NV_INDEX (must exist)
  | "sequence" // TPMI_DH_OBJECT holding a sequence
  | "tpmKey" // TPMI_DH_OBJECT+ (SoftTpm loads no keys: only TPM_RH_NULL)
  | "entity"; // TPMI_DH_ENTITY+

interface CommandSpec {
  handles: readonly HandleKind[];
  /** How many of the first handles need an authorization session. */
  auth: number;
  /** Response carries a handle. */
  rHandle?: boolean;
  /**
   * The command undoes a preceding Shutdown (TPM2_Clear). Which commands do was measured against
   * swtpm 0.7.1: Clear, a platformAuth change and a change to a PCR that Shutdown(STATE) saves do
   * (the last two are handled where they happen); NV commands, ClearControl and the other
   * hierarchies' HierarchyChangeAuth do not.
   */
  changes?: boolean;
  /** Sessions are not allowed at all (TPM_RC_AUTH_CONTEXT), as for Startup and FlushContext. */
  noSessions?: boolean;
  /** The first command parameter is a TPM2B (a session may ask to decrypt it). */
  decrypt?: boolean;
  /** The first response parameter is a TPM2B (a session may ask to encrypt it). */
  encrypt?: boolean;
  run: (t: SoftTpm, h: number[], inp: In, out: Out, locality: number) => void;
}

/** A loaded HMAC session (Part 1 §19.6), unsalted, no parameter encryption. */
interface HmacSession {
  handle: number;
  authHash: HashAlg;
  /** The TPM's nonce of the last response (nonceOlder for the next command). */
  nonceTPM: Uint8Array;
  /** KDFa(authHash, bind authValue, "ATH", nonceTPM, nonceCaller); empty when neither bound nor salted. */
  sessionKey: Uint8Array;
  /** The entity the session is bound to, if any. */
  bind: number | undefined;
  /**
   * Bound to a DA-protected entity (an NV index without TPMA_NV_NO_DA): then every HMAC failure
   * with this session counts as a DA failure and a DA lockout refuses it, whatever it authorizes
   * (libtpms isDaBound; measured against swtpm 0.7.1).
   */
  daBound: boolean;
}

interface Sequence {
  handle: number;
  /** undefined: an event sequence (TPM_ALG_NULL), hashing into every bank. */
  alg: HashAlg | undefined;
  hashers: { update(d: Uint8Array): unknown; digest(): Uint8Array }[];
  authValue: Uint8Array;
  /**
   * The first block of data decides whether SequenceComplete may give a ticket (Part 3 §17.4–17.5,
   * as libtpms: a first block under 4 bytes or starting with TPM_GENERATED_VALUE gets a NULL
   * ticket). undefined until the first SequenceUpdate / SequenceComplete.
   */
  ticketSafe?: boolean;
}

/** Options of {@link SoftTpm}. */
export interface SoftTpmOptions {
  /** Where NV state lives between power cycles. Absent: state lives only as long as the object. */
  storage?: Storage;
  /** Seed for a deterministic random source (tests). Absent: `crypto.getRandomValues`. */
  seed?: Uint8Array | string;
  /** A random source of your own (overrides `seed`). */
  random?: RandomSource;
  /** TPM_PT_MANUFACTURER: 1–4 ASCII characters. Default "TKIT". */
  manufacturer?: string;
  /** TPM_PT_VENDOR_STRING_1..4: up to 16 ASCII characters. Default "tpmkit SoftTPM". */
  vendorString?: string;
  /** TPM_PT_FIRMWARE_VERSION_1 and _2. Default [0x00000001, 0]. */
  firmwareVersion?: readonly [number, number];
  /** The clock behind TPM2_ReadClock. Default: the system clock. */
  clock?: Clock;
  /**
   * Fault hook, called before every command: return a response code to answer the command with
   * that code instead of running it (e.g. TPM_RC_RETRY 0x922, TPM_RC_TESTING 0x90A), a whole
   * response to return as is, or undefined to run the command normally. For tests of retry and
   * error paths in the layers above (facts/reliability.md B2).
   */
  onCommand?: (command: Uint8Array, locality: number) => number | Uint8Array | undefined;
  /**
   * Emulate libtpms' "DA state pending on NV": after every TPM2_Startup and every TPM2_Shutdown,
   * the first command that authorizes a DA-protected NV index answers TPM_RC_RETRY (0x922) once,
   * as swtpm 0.7.1 does (measured). Off by default; TSS stacks and the kernel retry it.
   */
  daRetryAfterStartup?: boolean;
}

/** What {@link SoftTpm.startupState} reports. */
export type SoftTpmPowerState = "off" | "needs-startup" | "running";

/**
 * A TPM 2.0 in TypeScript: a {@link TpmBackend} for device models (TIS, CRB, fTPM) and for the
 * memory transport.
 *
 * Commands run synchronously in {@link SoftTpm.executeSync}; {@link SoftTpm.execute} wraps it.
 * Malformed frames never throw: they get the 10-byte error response a real TPM gives (tag
 * 0x8001, size 10, the response code), TPM 2.0 Part 1 §18.
 *
 * NV state is kept in memory. After every NV-changing command and at Shutdown it is written to
 * the {@link Storage} in the background (write-behind, coalesced: many commands in a row cause
 * one save); {@link SoftTpm.flush} resolves when everything is durable. No command waits for I/O.
 *
 * @example
 * ```ts
 * const tpm = new SoftTpm({ seed: "test" });
 * const rsp = tpm.executeSync(Uint8Array.of(0x80,1, 0,0,0,12, 0,0,1,0x44, 0,0), 0); // Startup(CLEAR)
 * // rsp = 80 01 00 00 00 0a 00 00 00 00
 * ```
 */
export class SoftTpm implements TpmBackend {
  readonly #storage: Storage | undefined;
  readonly #random: RandomSource;
  readonly #clock: Clock;
  readonly #manufacturer: number;
  readonly #vendor: number[];
  readonly #firmware: readonly [number, number];
  readonly #onCommand: SoftTpmOptions["onCommand"];
  readonly #daRetry: boolean;
  #daPending = false;

  #power: SoftTpmPowerState = "off";
  #ps!: PersistentState;
  // volatile state
  #pcrs: Uint8Array[] = HASH_ALGS.map((a) => new Uint8Array(a.size * PCR_COUNT));
  #pcrUpdateCounter = 0;
  #platformAuth: Uint8Array = new Uint8Array(0);
  #sequences = new Map<number, Sequence>();
  #powerOnAt = 0;
  #clockAtPowerOn = 0;
  #shutdownIssued = false;
  /** TPM clock (ms) until which lockoutAuth is unusable after a failure (volatile). */
  #lockoutUntil = 0;
  /** TPM clock (ms) from which the next failedTries decrement is counted. */
  #daAnchor = 0;

  // write-behind
  #saving: Promise<void> | undefined;
  #dirty = false;
  #saveError: unknown;

  // reusable per-command buffers
  readonly #in = new In();
  readonly #out = new Out();
  readonly #handles: number[] = [0, 0, 0];
  readonly #sessionAttrs: number[] = [];
  readonly #sessionAuths: Uint8Array[] = [];
  readonly #sessionNonces: Uint8Array[] = [];
  readonly #sessionObjs: (HmacSession | undefined)[] = [];
  /** Session i authorized with an empty HMAC under an empty key (its response HMAC is empty too). */
  readonly #emptyHmac: boolean[] = [false, false, false];
  #hmacSessions = new Map<number, HmacSession>();
  #rHandle = 0;
  readonly #scratch = new Uint8Array(128);
  /** The last successful TPM2_Startup came from locality 3. */
  #startupLocality3 = false;
  /** The last successful TPM2_Startup followed an orderly shutdown (TPMA_STARTUP_CLEAR.orderly). */
  #startupOrderly = true;
  readonly #digestAt = new Int32Array(2 * HASH_ALGS.length);

  /**
   * Creates a powered-off TPM (TPM 2.0 Part 1 §12.2). Without `storage` the TPM is powered on
   * at once with a fresh state; with `storage`, call {@link SoftTpm.start} first.
   *
   * @param options - storage, seed, identity strings, clock
   * @throws TpmArgumentError if an option is malformed
   */
  constructor(options: SoftTpmOptions = {}) {
    if (options === null || typeof options !== "object") throw new TpmArgumentError("SoftTpm: options must be an object");
    this.#storage = options.storage;
    if (options.random) this.#random = options.random;
    else if (options.seed !== undefined) this.#random = new SeededRandom(options.seed);
    else this.#random = new SystemRandom();
    this.#clock = options.clock ?? systemClock;
    this.#manufacturer = packAscii(options.manufacturer ?? "TKIT", 4, "manufacturer")[0]!;
    this.#vendor = packAscii(options.vendorString ?? "tpmkit SoftTPM", 16, "vendorString");
    const fw = options.firmwareVersion ?? [0x00000001, 0];
    if (!Array.isArray(fw) || fw.length !== 2 || !fw.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) {
      throw new TpmArgumentError("SoftTpm: firmwareVersion must be two u32 values");
    }
    this.#firmware = [fw[0]!, fw[1]!];
    if (options.onCommand !== undefined && typeof options.onCommand !== "function") throw new TpmArgumentError("SoftTpm: onCommand must be a function");
    this.#onCommand = options.onCommand;
    this.#daRetry = options.daRetryAfterStartup === true;
    if (!this.#storage) this.#powerOn(this.#manufacture());
  }

  /** Power state: "off" before {@link SoftTpm.start}, "needs-startup" until TPM2_Startup, then "running". */
  get powerState(): SoftTpmPowerState {
    return this.#power;
  }

  /**
   * Powers the TPM on (_TPM_Init, TPM 2.0 Part 1 §12.2): loads the state from storage (a new TPM
   * if the storage is empty). Idempotent while powered.
   *
   * @returns when the TPM is ready for TPM2_Startup
   * @throws TpmStateFileError if the stored state is corrupt, truncated, of another version or
   *   unreadable: the TPM stays off, it is never replaced by a fresh one
   */
  async start(): Promise<void> {
    if (this.#power !== "off") return;
    let ps: PersistentState;
    if (this.#storage) {
      const blob = await this.#storage.load();
      ps = blob === undefined ? this.#manufacture() : decodeState(blob);
      if (this.#power !== "off") return;
    } else {
      ps = this.#ps ?? this.#manufacture();
    }
    this.#powerOn(ps);
    if (this.#storage && this.#ps === ps) {
      // a new TPM: write its first state so a restart finds the same proof seed
      this.#markDirty();
    }
  }

  /** Same as {@link SoftTpm.start}: power on after {@link SoftTpm.powerOff}. */
  powerOn(): Promise<void> {
    return this.start();
  }

  /**
   * Cuts power: waits for pending saves (NV writes completed before the cut are durable, as on a
   * real TPM), then drops all volatile state (PCRs, sequences, platform auth). Without a prior
   * TPM2_Shutdown the next Startup sees an unorderly shutdown (TPM Reset, clock not safe).
   *
   * @returns when the TPM is off
   * @throws TpmStateFileError if a pending save failed
   */
  async powerOff(): Promise<void> {
    if (this.#power === "off") return;
    this.#ps.clock = this.#clockNow();
    this.#power = "off";
    this.#sequences.clear();
    this.#hmacSessions.clear();
    await this.flush();
  }

  /**
   * Resolves when every state change so far is saved to storage.
   *
   * @returns when durable
   * @throws TpmStateFileError (or the storage's error) if a save failed; the next change retries
   */
  async flush(): Promise<void> {
    while (this.#saving || this.#dirty) {
      if (!this.#saving) this.#startSave();
      await this.#saving;
    }
    if (this.#saveError !== undefined) {
      const e = this.#saveError;
      this.#saveError = undefined;
      throw e instanceof TpmStateFileError ? e : new TpmStateFileError("saving the SoftTpm state failed", { cause: e });
    }
  }

  /** Commands run synchronously, so there is never one to cancel. */
  cancel(): void {}

  /**
   * Runs one command (the {@link TpmBackend} entry point).
   *
   * @param command - the command bytes (TPM 2.0 Part 1 §18)
   * @param locality - 0–4
   * @param signal - checked once before the command runs
   * @returns the response bytes
   * @throws TpmAbortError if `signal` is already aborted
   * @throws TpmStateError if the TPM is powered off
   */
  async execute(command: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal);
    return this.executeSync(command, locality);
  }

  /**
   * Runs one command synchronously. Never throws on bad bytes: a malformed command gets a
   * 10-byte error response, as from a real TPM.
   *
   * @param command - the command bytes
   * @param locality - 0–4 (the locality the command arrived at)
   * @returns a fresh response buffer
   * @throws TpmStateError if the TPM is powered off (call {@link SoftTpm.start})
   * @throws TpmArgumentError if `command` is not a Uint8Array or `locality` is not 0–4
   */
  executeSync(command: Uint8Array, locality: number): Uint8Array {
    if (!(command instanceof Uint8Array)) throw new TpmArgumentError("SoftTpm.executeSync: command must be a Uint8Array");
    if (!Number.isInteger(locality) || locality < 0 || locality > 4) throw new TpmArgumentError(`SoftTpm.executeSync: locality ${locality} is not 0–4`);
    if (this.#power === "off") throw new TpmStateError("SoftTpm is powered off: call start() first");
    if (this.#onCommand) {
      const f = this.#onCommand(command, locality);
      if (typeof f === "number") return errorResponse(f >>> 0);
      if (f instanceof Uint8Array) return f;
    }
    let rc: number;
    try {
      return this.#run(command, locality);
    } catch (e) {
      if (e instanceof Rc) rc = e.rc;
      else rc = RC_FAILURE; // an internal bug must not escape as an exception to the bus
    }
    return errorResponse(rc);
  }

  // ----------------------------------------------------------------------------------------
  // Dispatch

  #run(cmd: Uint8Array, locality: number): Uint8Array {
    if (cmd.length < 10) return errorResponse(RC_INSUFFICIENT);
    const tag = (cmd[0]! << 8) | cmd[1]!;
    if (tag !== ST_NO_SESSIONS && tag !== ST_SESSIONS) return errorResponse(isStructureTag(tag) ? RC_BAD_TAG : RC_VALUE);
    const size = ((cmd[2]! << 24) | (cmd[3]! << 16) | (cmd[4]! << 8) | cmd[5]!) >>> 0;
    if (size !== cmd.length || size > SOFTTPM_MAX_COMMAND_SIZE) return errorResponse(RC_COMMAND_SIZE);
    const code = ((cmd[6]! << 24) | (cmd[7]! << 16) | (cmd[8]! << 8) | cmd[9]!) >>> 0;
    const spec = code <= 0xffff ? SoftTpm.#commands.get(code) : undefined;
    if (!spec) return errorResponse(RC_COMMAND_CODE);
    if (this.#power === "needs-startup" && code !== CC.Startup) return errorResponse(RC_INITIALIZE);
    if (this.#power === "running" && code === CC.Startup) return errorResponse(RC_INITIALIZE);

    const inp = this.#in;
    inp.buf = cmd;
    inp.pos = 10;
    inp.end = cmd.length;
    inp.param = 0;

    // handle area
    const nh = spec.handles.length;
    const handles = this.#handles;
    for (let i = 0; i < nh; i++) {
      if (inp.end - inp.pos < 4) throw new Rc(H(RC_INSUFFICIENT, i + 1));
      handles[i] = inp.u32();
      this.#checkHandleType(spec.handles[i]!, handles[i]!, i + 1); // unmarshal: type, as read
    }
    for (let i = 0; i < nh; i++) this.#checkHandleLoaded(spec.handles[i]!, handles[i]!, i + 1);

    // authorization area (TPM 2.0 Part 1 §18.6)
    let nSessions = 0;
    if (tag === ST_SESSIONS) {
      nSessions = this.#parseSessions(inp, spec);
      if (nSessions < spec.auth) throw new Rc(RC_AUTH_MISSING);
    } else if (spec.auth > 0) {
      throw new Rc(RC_AUTH_MISSING);
    }
    const paramAt = inp.pos;
    for (let i = 0; i < spec.auth; i++) this.#authorize(code, handles, nh, i, cmd, paramAt);
    // a session beyond the authorizations is refused only after those were checked (libtpms
    // order: a lockout on session 1 comes first; measured against swtpm 0.7.1)
    if (nSessions > spec.auth) throw new Rc(S(RC_HANDLE, spec.auth + 1));

    // parameters and response
    const out = this.#out;
    out.pos = 10 + (spec.rHandle ? 4 : 0) + (nSessions > 0 ? 4 : 0);
    const paramStart = out.pos;
    inp.param = 1;
    spec.run(this, handles, inp, out, locality);
    if (spec.changes && this.#shutdownIssued) this.#invalidateOrderly();
    const paramSize = out.pos - paramStart;
    for (let i = 0; i < nSessions; i++) {
      const sess = this.#sessionObjs[i];
      if (!sess) {
        out.u16(0); // nonceTPM: empty for a password session
        out.u8(1); // sessionAttributes: continueSession (a password session is never closed)
        out.u16(0); // hmac: empty
        continue;
      }
      // HMAC session response (Part 1 §19.6.16): new nonceTPM, then
      // HMAC(sessionKey ‖ authValue, rpHash ‖ nonceTPM ‖ nonceCaller ‖ sessionAttributes)
      const a = sess.authHash;
      const rp = a.create();
      rp.update(Uint8Array.of(0, 0, 0, 0, (code >>> 24) & 0xff, (code >>> 16) & 0xff, (code >>> 8) & 0xff, code & 0xff));
      rp.update(out.buf.subarray(paramStart, paramStart + paramSize));
      const rpHash = rp.digest();
      const nonce = new Uint8Array(sess.nonceTPM.length);
      this.#random.fill(nonce, 0, nonce.length);
      sess.nonceTPM = nonce;
      const attrs = this.#sessionAttrs[i]!;
      const key = this.#sessionHmacKey(sess, code, i < spec.auth ? handles[i]! : undefined, true);
      out.tpm2b(nonce);
      out.u8(attrs);
      out.tpm2b(this.#emptyHmac[i] && key.length === 0 ? EMPTY : a.mac(key, rpHash, nonce, this.#sessionNonces[i]!, Uint8Array.of(attrs)));
      if (!(attrs & 1)) this.#hmacSessions.delete(sess.handle);
    }
    const len = out.pos;
    const b = out.buf;
    b[0] = 0x80;
    b[1] = nSessions > 0 ? 0x02 : 0x01;
    out.putU32(2, len);
    out.putU32(6, RC_SUCCESS);
    let at = 10;
    if (spec.rHandle) {
      out.putU32(at, this.#rHandle);
      at += 4;
    }
    if (nSessions > 0) out.putU32(at, paramSize);
    return b.slice(0, len);
  }

  #parseSessions(inp: In, spec: CommandSpec): number {
    const forbidden = spec.noSessions === true;
    if (inp.end - inp.pos < 4) throw new Rc(RC_INSUFFICIENT);
    const authSize = inp.u32();
    if (authSize < 9 || authSize > inp.end - inp.pos) throw new Rc(RC_SIZE);
    if (forbidden) throw new Rc(RC_AUTH_CONTEXT); // after the area size check, as libtpms
    const areaEnd = inp.pos + authSize;
    const saveEnd = inp.end;
    inp.end = areaEnd;
    let n = 0;
    while (inp.pos < areaEnd) {
      n++;
      if (n > 3) throw new Rc(S(RC_SIZE, n)); // more than MAX_SESSION_NUM, as libtpms answers
      // unmarshal, each field checked as it is read (libtpms order)
      const insufficient = S(RC_INSUFFICIENT, n);
      if (inp.end - inp.pos < 4) throw new Rc(insufficient);
      const handle = inp.u32();
      const ht = handle >>> 24;
      const slot = handle & 0xffffff;
      if (handle !== RS_PW && !((ht === 0x02 || ht === 0x03) && slot < SESSION_HANDLE_RANGE)) throw new Rc(S(RC_VALUE, n));
      if (inp.end - inp.pos < 2) throw new Rc(insufficient);
      const nonceSize = inp.u16();
      if (nonceSize > AUTH_MAX) throw new Rc(S(RC_SIZE, n));
      if (nonceSize > inp.end - inp.pos) throw new Rc(insufficient);
      const nonce = inp.buf.subarray(inp.pos, inp.pos + nonceSize);
      inp.pos += nonceSize;
      if (inp.end - inp.pos < 1) throw new Rc(insufficient);
      const attrs = inp.u8();
      if (attrs & 0x18) throw new Rc(S(RC_RESERVED_BITS, n));
      if (inp.end - inp.pos < 2) throw new Rc(insufficient);
      const hmacSize = inp.u16();
      if (hmacSize > AUTH_MAX) throw new Rc(S(RC_SIZE, n));
      if (hmacSize > inp.end - inp.pos) throw new Rc(insufficient);
      const auth = inp.buf.subarray(inp.pos, inp.pos + hmacSize);
      inp.pos += hmacSize;
      let sess: HmacSession | undefined;
      if (handle === RS_PW) {
        if (nonceSize !== 0) throw new Rc(S(RC_NONCE, n));
      } else {
        // libtpms finds the session by its slot; a policy-session handle naming a loaded HMAC
        // session is TPM_RC_HANDLE, before the nonce size check (measured against swtpm 0.7.1)
        sess = this.#hmacSessions.get(((0x02 << 24) | slot) >>> 0);
        if (!sess) throw new Rc(RC_REFERENCE_S0 + n - 1);
        if (ht === 0x03) throw new Rc(S(RC_HANDLE, n));
        // no size check on nonceCaller here: libtpms takes any TPM2B_NONCE (0–64 bytes) in a
        // session, and a wrong one just makes the HMAC fail (measured against swtpm 0.7.1)
        for (let j = 0; j < n - 1; j++) if (this.#sessionObjs[j] === sess) throw new Rc(S(RC_HANDLE, n)); // used twice
      }
      if (!sess) {
        // a password session: continueSession only
        if (attrs & ~1) throw new Rc(S(RC_ATTRIBUTES, n));
      } else if (attrs & 0x60) {
        // decrypt / encrypt: TPM_RC_ATTRIBUTES when the command has no TPM2B parameter there,
        // else TPM_RC_SYMMETRIC (SoftTpm's sessions have no symmetric algorithm); the audit bits
        // (audit, auditExclusive, auditReset) are accepted, as libtpms does (swtpm 0.7.1, measured)
        if ((attrs & 0x20 && !spec.decrypt) || (attrs & 0x40 && !spec.encrypt)) throw new Rc(S(RC_ATTRIBUTES, n));
        throw new Rc(S(RC_SYMMETRIC, n));
      }
      this.#sessionAttrs[n - 1] = attrs;
      this.#sessionAuths[n - 1] = auth;
      this.#sessionNonces[n - 1] = nonce;
      this.#sessionObjs[n - 1] = sess;
      this.#emptyHmac[n - 1] = false;
    }
    inp.end = saveEnd;
    return n;
  }

  /**
   * The Name of a handle for cpHash (Part 1 §16): the handle itself, nameAlg ‖ H(public) for NV,
   * empty for a sequence object.
   */
  #nameOf(h: number): Uint8Array {
    // a sequence object's nameAlg is TPM_ALG_NULL: its Name is empty (ESYS and libtpms agree)
    if (h >>> 24 === 0x80) return EMPTY;
    if (h >>> 24 === 0x01) {
      const nv = this.#nv(h);
      if (nv) {
        const a = hashAlg(nv.nameAlg)!;
        return concat(Uint8Array.of(nv.nameAlg >>> 8, nv.nameAlg & 0xff), a.hash(nvPublicBytes(nv)));
      }
    }
    return u32be(h);
  }

  /**
   * The entity's authValue for authorization of handle `h` by command `code` (Part 1 §19.8),
   * with the DA class of a failure. Throws TPM_RC_AUTH_UNAVAILABLE / TPM_RC_LOCKOUT.
   */
  #entityAuth(code: number, h: number): { value: Uint8Array; daProtected: boolean; isLockout: boolean } {
    if (h < PCR_COUNT || h === RH_NULL) return { value: EMPTY, daProtected: false, isLockout: false };
    if (h === RH_OWNER) return { value: this.#ps.ownerAuth, daProtected: false, isLockout: false };
    if (h === RH_ENDORSEMENT) return { value: this.#ps.endorsementAuth, daProtected: false, isLockout: false };
    if (h === RH_PLATFORM) return { value: this.#platformAuth, daProtected: false, isLockout: false };
    if (h === RH_LOCKOUT) {
      if (this.#ps.lockoutAuthDisabled) {
        if (this.#lockoutUntil > this.#clockNow()) throw new Rc(RC_LOCKOUT);
        this.#ps.lockoutAuthDisabled = false; // lockoutRecovery has passed
        this.#markDirty();
      }
      return { value: this.#ps.lockoutAuth, daProtected: false, isLockout: true };
    }
    if (h >>> 24 === 0x01) {
      const nv = this.#nv(h);
      if (!nv) return { value: EMPTY, daProtected: false, isLockout: false };
      const daProtected = (nv.attributes & NV_NO_DA) === 0;
      // a DA lockout first, then the pending RETRY (which stays pending), then availability: the
      // libtpms order (measured against swtpm 0.7.1)
      if (daProtected && code !== 0 && this.#inLockout()) throw new Rc(RC_LOCKOUT);
      if (daProtected && code !== 0 && this.#daPending) {
        this.#daPending = false;
        this.#markDaUsed();
        throw new Rc(RC_RETRY);
      }
      const isRead = code === CC.NV_Read || code === CC.NV_ReadLock;
      if (!(nv.attributes & (isRead ? NV_AUTHREAD : NV_AUTHWRITE))) throw new Rc(RC_AUTH_UNAVAILABLE);
      return { value: nv.authValue, daProtected, isLockout: false };
    }
    const seq = this.#sequences.get(h);
    return { value: seq ? seq.authValue : EMPTY, daProtected: false, isLockout: false };
  }

  /** sessionKey ‖ authValue (authValue left out when the session is bound to this entity). */
  #sessionHmacKey(sess: HmacSession, code: number, h: number | undefined, forResponse: boolean): Uint8Array {
    if (h === undefined || sess.bind === h) return sess.sessionKey;
    let value: Uint8Array;
    try {
      value = this.#entityAuth(code, h).value;
    } catch (e) {
      if (!forResponse) throw e;
      value = EMPTY;
    }
    return concat(sess.sessionKey, trimZeros(value));
  }

  /**
   * Authorizes handle `handles[i]` with session i + 1: a password (Part 1 §19.8.4) or an HMAC
   * session (Part 1 §19.6: HMAC(sessionKey ‖ authValue, cpHash ‖ nonceCaller ‖ nonceTPM ‖ attrs)).
   */
  #authorize(code: number, handles: number[], nh: number, i: number, cmd: Uint8Array, paramAt: number): void {
    const h = handles[i]!;
    const n = i + 1;
    const ent = this.#entityAuth(code, h);
    const sess = this.#sessionObjs[i];
    const da = ent.daProtected || sess?.daBound === true;
    if (da && this.#inLockout()) throw new Rc(RC_LOCKOUT);
    if (da && this.#daPending) {
      // the pending DA RETRY (see daRetryAfterStartup) also hits a DA-bound session
      this.#daPending = false;
      this.#markDaUsed();
      throw new Rc(RC_RETRY);
    }
    let ok: boolean;
    if (!sess) {
      ok = authEqual(this.#sessionAuths[i]!, ent.value);
    } else {
      const a = sess.authHash;
      const cp = a.create();
      cp.update(u32be(code));
      for (let j = 0; j < nh; j++) cp.update(this.#nameOf(handles[j]!));
      cp.update(cmd.subarray(paramAt));
      const cpHash = cp.digest();
      const key = this.#sessionHmacKey(sess, code, h, false);
      // libtpms accepts an empty HMAC when the HMAC key (sessionKey ‖ authValue) is empty, and
      // then answers with an empty HMAC too (measured against swtpm 0.7.1)
      this.#emptyHmac[i] = key.length === 0 && this.#sessionAuths[i]!.length === 0;
      if (this.#emptyHmac[i]) {
        ok = true;
      } else {
        const expected = a.mac(key, cpHash, this.#sessionNonces[i]!, sess.nonceTPM, Uint8Array.of(this.#sessionAttrs[i]!));
        ok = bytesEqual(expected, this.#sessionAuths[i]!);
      }
    }
    if (ok) return;
    if (ent.isLockout) {
      this.#lockoutUntil = this.#clockNow() + LOCKOUT_RECOVERY_S * 1000;
      this.#ps.lockoutAuthDisabled = true;
      this.#markDirty();
    } else if (da) {
      if (this.#ps.failedTries === 0) this.#daAnchor = this.#clockNow();
      this.#ps.failedTries++;
      this.#markDirty();
    }
    throw new Rc(S(da || ent.isLockout ? RC_AUTH_FAIL : RC_BAD_AUTH, n));
  }

  /** Handle unmarshal (TPMI_* type checks): TPM_RC_VALUE + H + n. */
  #checkHandleType(kind: HandleKind, h: number, n: number): void {
    const ht = h >>> 24;
    let ok: boolean;
    switch (kind) {
      case "pcr":
        ok = h < PCR_COUNT;
        break;
      case "pcr+null":
        ok = h < PCR_COUNT || h === RH_NULL;
        break;
      case "provision":
        ok = h === RH_OWNER || h === RH_PLATFORM;
        break;
      case "clear":
        ok = h === RH_LOCKOUT || h === RH_PLATFORM;
        break;
      case "hierarchyAuth":
        ok = h === RH_LOCKOUT || h === RH_OWNER || h === RH_ENDORSEMENT || h === RH_PLATFORM;
        break;
      case "nvAuth":
        ok = h === RH_OWNER || h === RH_PLATFORM || ht === 0x01;
        break;
      case "nvIndex":
        ok = ht === 0x01;
        break;
      case "sequence":
        // TPMI_DH_OBJECT: transient or persistent (libtpms: a persistent handle passes the type
        // check and is then "not loaded", TPM_RC_HANDLE; measured against swtpm 0.7.1)
        ok = (ht === 0x80 && (h & 0xffffff) < MAX_SEQUENCES) || ht === 0x81;
        break;
      case "tpmKey":
        ok = h === RH_NULL || (ht === 0x80 && (h & 0xffffff) < MAX_SEQUENCES) || ht === 0x81;
        break;
      case "entity":
        ok =
          h === RH_NULL || h < PCR_COUNT || h === RH_OWNER || h === RH_ENDORSEMENT || h === RH_PLATFORM || h === RH_LOCKOUT || ht === 0x01 || (ht === 0x80 && (h & 0xffffff) < MAX_SEQUENCES);
        break;
    }
    if (!ok) throw new Rc(H(RC_VALUE, n));
  }

  /** Entity existence, after the whole handle area is read: TPM_RC_HANDLE / TPM_RC_REFERENCE_Hn. */
  #checkHandleLoaded(kind: HandleKind, h: number, n: number): void {
    const ht = h >>> 24;
    if (ht === 0x01 && kind !== "pcr" && !this.#nv(h)) throw new Rc(H(RC_HANDLE, n));
    if (ht === 0x80 && !this.#sequences.has(h)) throw new Rc(RC_REFERENCE_H0 + n - 1); // object not loaded
    // no persistent objects: libtpms first needs a free object slot to load one into (else
    // TPM_RC_OBJECT_MEMORY), then finds none (TPM_RC_HANDLE); measured against swtpm 0.7.1
    if (ht === 0x81) throw new Rc(this.#sequences.size >= MAX_SEQUENCES ? RC_OBJECT_MEMORY : H(RC_HANDLE, n));
  }

  /** Applies lockout-interval recovery and tells whether DA-protected entities are locked out. */
  #inLockout(): boolean {
    const ps = this.#ps;
    if (ps.failedTries > 0) {
      const now = this.#clockNow();
      const steps = Math.floor((now - this.#daAnchor) / (LOCKOUT_INTERVAL_S * 1000));
      if (steps > 0) {
        ps.failedTries = Math.max(0, ps.failedTries - steps);
        this.#daAnchor += steps * LOCKOUT_INTERVAL_S * 1000;
        this.#markDirty();
      }
    }
    return ps.failedTries >= MAX_AUTH_FAIL;
  }

  // ----------------------------------------------------------------------------------------
  // Power, state, persistence

  #manufacture(): PersistentState {
    const proofSeed = new Uint8Array(32);
    this.#random.fill(proofSeed, 0, 32);
    return {
      disableClear: false,
      clockSafe: true,
      orderly: "clear",
      clock: 0,
      resetCount: 0,
      restartCount: 0,
      maxCounter: 0n,
      failedTries: 0,
      proofSeed,
      ownerAuth: EMPTY,
      endorsementAuth: EMPTY,
      lockoutAuth: EMPTY,
      nv: [],
      saved: undefined,
    };
  }

  #powerOn(ps: PersistentState): void {
    this.#ps = ps;
    this.#power = "needs-startup";
    this.#powerOnAt = this.#clock.now();
    this.#clockAtPowerOn = ps.clock;
    this.#sequences.clear();
    this.#hmacSessions.clear();
    this.#shutdownIssued = false;
    this.#platformAuth = EMPTY;
    // a blocked lockoutAuth stays blocked across power cycles; its recovery time starts again
    this.#lockoutUntil = ps.lockoutAuthDisabled ? ps.clock + LOCKOUT_RECOVERY_S * 1000 : 0;
    this.#daAnchor = ps.clock;
  }

  #clockNow(): number {
    return this.#clockAtPowerOn + Math.max(0, Math.floor(this.#clock.now() - this.#powerOnAt));
  }

  #markDirty(): void {
    if (!this.#storage) return;
    this.#dirty = true;
    if (!this.#saving) this.#startSave();
  }

  #startSave(): void {
    const storage = this.#storage;
    if (!storage) {
      this.#dirty = false;
      return;
    }
    const run = async () => {
      // Coalesce: every change made before this microtask ends is in this save.
      await Promise.resolve();
      while (this.#dirty) {
        this.#dirty = false;
        this.#ps.clock = this.#power === "off" ? this.#ps.clock : this.#clockNow();
        const blob = encodeState(this.#ps);
        try {
          await storage.save(blob);
        } catch (e) {
          this.#saveError = e;
        }
      }
    };
    this.#saving = run().finally(() => {
      this.#saving = undefined;
      // a change that landed after the loop's last check must not wait for the next command
      if (this.#dirty) this.#startSave();
    });
  }

  /**
   * libtpms records "DA used" in its orderly state when it answers the DA RETRY: a preceding
   * Shutdown no longer counts (the next Startup is a TPM Reset, Clock not safe), and if power is
   * lost before the next Shutdown, that Startup counts one DA failure (measured against swtpm 0.7.1).
   */
  #markDaUsed(): void {
    this.#invalidateOrderly();
    if (!this.#ps.daUsed) {
      this.#ps.daUsed = true;
      this.#markDirty();
    }
  }

  #invalidateOrderly(): void {
    this.#shutdownIssued = false;
    if (this.#ps.orderly !== "none" || this.#ps.saved) {
      this.#ps.orderly = "none";
      this.#ps.saved = undefined;
      this.#markDirty();
    }
  }

  #nv(h: number): NvIndexState | undefined {
    for (const nv of this.#ps.nv) if (nv.handle === h) return nv;
    return undefined;
  }

  // ----------------------------------------------------------------------------------------
  // Commands (TPM 2.0 Part 3). Each handler parses all parameters, calls inp.done(), then acts.

  /**
   * TPM2_Startup, Part 3 §9.3. As libtpms (measured against swtpm 0.7.1): only localities 0 and 3
   * may start the TPM (PC Client rule); Startup(CLEAR) at locality 3 sets PCR 0 to 0…03 in every
   * bank; a resume must come from locality 3 exactly when the Startup before the Shutdown(STATE) did.
   */
  #startup(inp: In, locality: number): void {
    const su = inp.u16();
    if (su !== 0 && su !== 1) throw new Rc(P(RC_VALUE, 1)); // TPM_SU unmarshal, before the size check
    inp.done();
    if (locality !== 0 && locality !== 3) throw new Rc(RC_LOCALITY);
    const ps = this.#ps;
    const prev = ps.orderly;
    if (su === 1 && (prev !== "state" || !ps.saved)) {
      // libtpms quirk (measured against swtpm 0.7.1): a refused Startup(STATE) also forgets the
      // "DA used" mark, so the Startup(CLEAR) after it counts no DA failure
      if (ps.daUsed) {
        ps.daUsed = false;
        this.#markDirty();
      }
      throw new Rc(P(RC_VALUE, 1));
    }
    if (su === 1 && (ps.saved!.startupLocality3 === true) !== (locality === 3)) throw new Rc(RC_LOCALITY);
    const saved = prev === "state" ? ps.saved : undefined;
    let counter: number;
    if (prev === "state" && saved) {
      // TPM Restart (Startup(CLEAR)) or TPM Resume (Startup(STATE)) after Shutdown(STATE)
      ps.restartCount = (ps.restartCount + 1) >>> 0;
      counter = saved.pcrUpdateCounter;
    } else {
      // TPM Reset
      ps.resetCount = (ps.resetCount + 1) >>> 0;
      ps.restartCount = 0;
      counter = 0;
      if (prev === "none") ps.clockSafe = false;
    }
    const keep = su === 1 ? PCR_SAVE : 0;
    for (let b = 0; b < HASH_ALGS.length; b++) {
      const size = HASH_ALGS[b]!.size;
      const bank = this.#pcrs[b]!;
      for (let i = 0; i < PCR_COUNT; i++) {
        if ((keep >>> i) & 1) bank.set(saved!.pcrs[b]!.subarray(i * size, (i + 1) * size), i * size);
        else bank.fill((PCR_INIT_ONES >>> i) & 1 ? 0xff : 0, i * size, (i + 1) * size);
      }
      if (!(keep & 1) && locality === 3) bank[size - 1] = 3; // PCR 0 after a locality-3 Startup
    }
    this.#startupLocality3 = locality === 3;
    this.#startupOrderly = prev !== "none";
    if (prev === "none" && ps.daUsed && ps.failedTries < MAX_AUTH_FAIL) {
      if (ps.failedTries === 0) this.#daAnchor = this.#clockNow();
      ps.failedTries++;
    }
    ps.daUsed = false;
    for (let i = 0; i < PCR_COUNT; i++) if (!((keep >>> i) & 1) && !((PCR_NO_INCREMENT >>> i) & 1)) counter++;
    this.#pcrUpdateCounter = counter >>> 0;
    this.#platformAuth = su === 1 && saved ? saved.platformAuth : EMPTY;
    if (su === 0) {
      for (const nv of ps.nv) {
        let a = nv.attributes & ~NV_READLOCKED;
        // a write lock lasts past Startup(CLEAR) only on a written WRITEDEFINE index (so an
        // unwritten WRITEDEFINE index is unlocked too; measured against swtpm 0.7.1)
        if (!(a & NV_WRITEDEFINE && a & NV_WRITTEN)) a &= ~NV_WRITELOCKED;
        if (a & NV_CLEAR_STCLEAR) a &= ~NV_WRITTEN;
        nv.attributes = a >>> 0;
      }
    }
    ps.orderly = "none";
    ps.saved = undefined;
    this.#power = "running";
    this.#shutdownIssued = false;
    this.#daPending = this.#daRetry;
    this.#markDirty();
  }

  /** TPM2_Shutdown, Part 3 §9.4. */
  #shutdown(inp: In): void {
    const su = inp.u16();
    if (su !== 0 && su !== 1) throw new Rc(P(RC_VALUE, 1)); // TPM_SU unmarshal, before the size check
    inp.done();
    const ps = this.#ps;
    if (su === 1) {
      ps.orderly = "state";
      ps.saved = { pcrUpdateCounter: this.#pcrUpdateCounter, platformAuth: this.#platformAuth.slice(), pcrs: this.#pcrs.map((p) => p.slice()) };
      if (this.#startupLocality3) ps.saved.startupLocality3 = true;
    } else {
      ps.orderly = "clear";
      ps.saved = undefined;
    }
    this.#shutdownIssued = true;
    ps.daUsed = false;
    // libtpms answers TPM_RC_RETRY to the first DA-protected authorization after a Shutdown too,
    // not only after Startup (measured against swtpm 0.7.1)
    this.#daPending = this.#daRetry;
    this.#markDirty();
  }

  /** TPM2_GetRandom, Part 3 §16.1: at most {@link SOFTTPM_MAX_RANDOM} bytes per call. */
  #getRandom(inp: In, out: Out): void {
    let n = inp.u16();
    inp.done();
    if (n > SOFTTPM_MAX_RANDOM) n = SOFTTPM_MAX_RANDOM;
    out.u16(n);
    out.room(n);
    this.#random.fill(out.buf, out.pos, n);
    out.pos += n;
  }

  /** TPM2_StirRandom, Part 3 §16.2. */
  #stirRandom(inp: In): void {
    const d = inp.tpm2b(128); // TPM2B_SENSITIVE_DATA: MAX_SYM_DATA = 128, as swtpm
    inp.done();
    this.#random.stir(d);
  }

  /** TPM2_PCR_Read, Part 3 §22.4: at most 8 digests; the selection out says which were read. */
  #pcrRead(inp: In, out: Out): void {
    const count = inp.u32();
    if (count > HASH_ALGS.length) throw new Rc(P(RC_SIZE, 1));
    const sels = this.#scratch; // per selection: alg hi, alg lo, 3 select bytes, bank index
    for (let i = 0; i < count; i++) {
      const alg = inp.u16();
      // the hash is checked as soon as it is read, before sizeofSelect (libtpms unmarshal order:
      // a frame cut after an unknown hash is TPM_RC_HASH, not TPM_RC_INSUFFICIENT)
      const a = hashAlg(alg);
      if (!a) throw new Rc(P(RC_HASH, 1));
      const sz = inp.u8();
      if (sz !== PCR_SELECT_SIZE) throw new Rc(P(RC_VALUE, 1));
      const sel = inp.bytes(sz);
      sels[i * 6] = alg >>> 8;
      sels[i * 6 + 1] = alg & 0xff;
      sels[i * 6 + 2] = sel[0]!;
      sels[i * 6 + 3] = sel[1]!;
      sels[i * 6 + 4] = sel[2]!;
      sels[i * 6 + 5] = bankIndex(alg);
    }
    inp.done();
    out.u32(this.#pcrUpdateCounter);
    out.u32(count);
    const selAt = out.pos;
    for (let i = 0; i < count; i++) {
      out.u16((sels[i * 6]! << 8) | sels[i * 6 + 1]!);
      out.u8(PCR_SELECT_SIZE);
      out.skip(PCR_SELECT_SIZE);
    }
    const countAt = out.skip(4);
    let digests = 0;
    for (let i = 0; i < count; i++) {
      const a = HASH_ALGS[sels[i * 6 + 5]!]!;
      const bank = this.#pcrs[sels[i * 6 + 5]!]!;
      let mask = sels[i * 6 + 2]! | (sels[i * 6 + 3]! << 8) | (sels[i * 6 + 4]! << 16);
      let taken = 0;
      for (let p = 0; p < PCR_COUNT && mask; p++) {
        if (!((mask >>> p) & 1)) continue;
        if (digests >= 8) break;
        out.u16(a.size);
        out.bytes(bank.subarray(p * a.size, (p + 1) * a.size));
        taken |= 1 << p;
        digests++;
        mask &= ~(1 << p);
      }
      const at = selAt + i * 6 + 3;
      out.buf[at] = taken & 0xff;
      out.buf[at + 1] = (taken >>> 8) & 0xff;
      out.buf[at + 2] = (taken >>> 16) & 0xff;
    }
    out.putU32(countAt, digests);
  }

  #extendBank(bankIndex: number, pcr: number, digest: Uint8Array): void {
    const a = HASH_ALGS[bankIndex]!;
    const bank = this.#pcrs[bankIndex]!;
    const buf = this.#scratch;
    buf.set(bank.subarray(pcr * a.size, (pcr + 1) * a.size), 0);
    buf.set(digest, a.size);
    bank.set(a.hash(buf.subarray(0, 2 * a.size)), pcr * a.size);
    if (!((PCR_NO_INCREMENT >>> pcr) & 1)) this.#pcrUpdateCounter = (this.#pcrUpdateCounter + 1) >>> 0;
  }

  /**
   * An extend command passed its locality check for `pcr`: if Shutdown(STATE) saves that PCR, a
   * preceding Shutdown no longer counts, even when nothing is extended (zero digests). PCR 16 and
   * 23 leave it alone. As libtpms, measured against swtpm 0.7.1.
   */
  #extendTargets(pcr: number): void {
    if ((PCR_SAVE >>> pcr) & 1 && this.#shutdownIssued) this.#invalidateOrderly();
  }

  #checkExtendLocality(pcr: number, locality: number): void {
    if (pcr < PCR_COUNT && !((PCR_EXTEND_BY_LOCALITY[locality]! >>> pcr) & 1)) throw new Rc(RC_LOCALITY);
  }

  /** TPM2_PCR_Extend, Part 3 §22.2. */
  #pcrExtend(h: number[], inp: In, _out: Out, locality: number): void {
    const pcr = h[0]!;
    const count = inp.u32();
    if (count > HASH_ALGS.length) throw new Rc(P(RC_SIZE, 1));
    // validate every digest before extending any (bank index and offset in the command)
    const at = this.#digestAt;
    for (let i = 0; i < count; i++) {
      const alg = inp.u16();
      const b = bankIndex(alg);
      if (b < 0) throw new Rc(P(RC_HASH, 1));
      at[i * 2] = b;
      at[i * 2 + 1] = inp.pos;
      inp.need(HASH_ALGS[b]!.size);
      inp.pos += HASH_ALGS[b]!.size;
    }
    inp.done();
    if (pcr === RH_NULL) return;
    this.#checkExtendLocality(pcr, locality);
    this.#extendTargets(pcr);
    for (let i = 0; i < count; i++) {
      const b = at[i * 2]!;
      this.#extendBank(b, pcr, inp.buf.subarray(at[i * 2 + 1]!, at[i * 2 + 1]! + HASH_ALGS[b]!.size));
    }
  }

  /** TPM2_PCR_Event, Part 3 §22.3: hash the event with every bank, extend, return the digests. */
  #pcrEvent(h: number[], inp: In, out: Out, locality: number): void {
    const pcr = h[0]!;
    const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
    inp.done();
    if (pcr !== RH_NULL) {
      this.#checkExtendLocality(pcr, locality);
      this.#extendTargets(pcr);
    }
    out.u32(HASH_ALGS.length);
    HASH_ALGS.forEach((a, b) => {
      const d = a.hash(data);
      out.u16(a.alg);
      out.bytes(d);
      if (pcr !== RH_NULL) this.#extendBank(b, pcr, d);
    });
  }

  /** TPM2_PCR_Reset, Part 3 §22.8: allowed per locality as swtpm allows (facts §5). */
  #pcrReset(h: number[], inp: In, _out: Out, locality: number): void {
    const pcr = h[0]!;
    inp.done();
    if (!((PCR_RESET_BY_LOCALITY[locality]! >>> pcr) & 1)) throw new Rc(RC_LOCALITY);
    HASH_ALGS.forEach((a, b) => this.#pcrs[b]!.fill(0, pcr * a.size, (pcr + 1) * a.size));
    // one increment per reset, not per bank (as libtpms counts it)
    if (!((PCR_NO_INCREMENT >>> pcr) & 1)) this.#pcrUpdateCounter = (this.#pcrUpdateCounter + 1) >>> 0;
  }

  #ticket(out: Out, hierarchy: number, digest: Uint8Array): void {
    out.u16(ST_HASHCHECK);
    out.u32(hierarchy);
    if (hierarchy === RH_NULL) {
      out.u16(0);
      return;
    }
    // TPMT_TK_HASHCHECK: HMAC(proof(hierarchy), TPM_ST_HASHCHECK ‖ digest), Part 2 §10.7.6,
    // with the context hash (SHA-512, as swtpm) so tickets have the size a real TPM gives
    const proof = sha512(concat(this.#ps.proofSeed, u32be(hierarchy)));
    out.tpm2b(hmac(sha512, proof, concat(Uint8Array.of(0x80, 0x24), digest)));
  }

  #hierarchyParam(inp: In, n: number): number {
    inp.param = n;
    const hier = inp.u32();
    if (hier !== RH_OWNER && hier !== RH_ENDORSEMENT && hier !== RH_PLATFORM && hier !== RH_NULL) throw new Rc(P(RC_VALUE, n));
    return hier;
  }

  /** TPM2_Hash, Part 3 §15.4. */
  #hash(inp: In, out: Out): void {
    const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
    inp.param = 2;
    const a = hashAlg(inp.u16());
    if (!a) throw new Rc(P(RC_HASH, 2));
    const hier = this.#hierarchyParam(inp, 3);
    inp.done();
    const d = a.hash(data);
    out.tpm2b(d);
    this.#ticket(out, startsWithGenerated(data) ? RH_NULL : hier, d);
  }

  /** TPM2_HashSequenceStart, Part 3 §17.3. */
  #hashSequenceStart(inp: In): void {
    const auth = inp.tpm2b(AUTH_MAX);
    inp.param = 2;
    const algId = inp.u16();
    const a = algId === 0x0010 ? undefined : hashAlg(algId);
    if (algId !== 0x0010 && !a) throw new Rc(P(RC_HASH, 2));
    inp.done();
    if (this.#sequences.size >= MAX_SEQUENCES) throw new Rc(RC_OBJECT_MEMORY);
    let handle = TRANSIENT_FIRST;
    while (this.#sequences.has(handle)) handle++;
    this.#sequences.set(handle, {
      handle,
      alg: a,
      hashers: a ? [a.create()] : HASH_ALGS.map((x) => x.create()),
      authValue: trimZeros(auth).slice(),
    });
    this.#rHandle = handle;
  }

  /** TPM2_SequenceUpdate, Part 3 §17.4. */
  #sequenceUpdate(h: number[], inp: In): void {
    const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
    inp.done();
    const seq = this.#sequences.get(h[0]!)!;
    seq.ticketSafe ??= ticketIsSafe(data);
    for (const x of seq.hashers) x.update(data);
  }

  /** TPM2_SequenceComplete, Part 3 §17.5. */
  #sequenceComplete(h: number[], inp: In, out: Out): void {
    const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
    const hier = this.#hierarchyParam(inp, 2);
    inp.done();
    const seq = this.#sequences.get(h[0]!)!;
    if (!seq.alg) throw new Rc(H(RC_MODE, 1));
    const x = seq.hashers[0]!;
    x.update(data);
    const d = x.digest();
    this.#sequences.delete(seq.handle);
    out.tpm2b(d);
    this.#ticket(out, (seq.ticketSafe ?? ticketIsSafe(data)) ? hier : RH_NULL, d);
  }

  /** TPM2_EventSequenceComplete, Part 3 §17.6. */
  #eventSequenceComplete(h: number[], inp: In, out: Out, locality: number): void {
    const pcr = h[0]!;
    const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
    inp.done();
    const seq = this.#sequences.get(h[1]!)!;
    if (seq.alg) throw new Rc(H(RC_MODE, 2));
    if (pcr !== RH_NULL) {
      this.#checkExtendLocality(pcr, locality);
      this.#extendTargets(pcr);
    }
    this.#sequences.delete(seq.handle);
    out.u32(HASH_ALGS.length);
    HASH_ALGS.forEach((a, b) => {
      const x = seq.hashers[b]!;
      x.update(data);
      const d = x.digest();
      out.u16(a.alg);
      out.bytes(d);
      if (pcr !== RH_NULL) this.#extendBank(b, pcr, d);
    });
  }

  /**
   * TPM2_StartAuthSession, Part 3 §11.1: unsalted HMAC sessions (bound or unbound) with
   * symmetric TPM_ALG_NULL. Salted sessions need a loaded key (SoftTpm has none); policy and
   * trial sessions and parameter encryption are not implemented.
   */
  #startAuthSession(h: number[], inp: In, out: Out): void {
    const tpmKey = h[0]!;
    const bind = h[1]!;
    const nonceCaller = inp.tpm2b(64);
    inp.param = 2;
    // TPM2B_ENCRYPTED_SECRET: at most sizeof(TPMU_ENCRYPTED_SECRET), 384 bytes in libtpms 0.9
    // (RSA 3072; measured against swtpm 0.7.1: 385 is TPM_RC_SIZE + P2)
    const salt = inp.tpm2b(384);
    inp.param = 3;
    const type = inp.u8();
    if (type !== 0x00 && type !== 0x01 && type !== 0x03) throw new Rc(P(RC_VALUE, 3)); // TPMI_SE: HMAC, POLICY, TRIAL
    inp.param = 4;
    const sym = inp.u16();
    if (sym !== 0x0010) throw new Rc(P(RC_SYMMETRIC, 4)); // no symmetric algorithm is implemented
    inp.param = 5;
    const authHash = hashAlg(inp.u16());
    if (!authHash) throw new Rc(P(RC_HASH, 5));
    inp.done();
    // nonceCaller first, then tpmKey and the salt (libtpms order, measured against swtpm 0.7.1)
    if (nonceCaller.length < 16 || nonceCaller.length > authHash.size) throw new Rc(P(RC_SIZE, 1));
    if (tpmKey !== RH_NULL) throw new Rc(H(RC_KEY, 1)); // a loaded object here is a sequence, not a key
    if (salt.length !== 0) throw new Rc(P(RC_VALUE, 2)); // no tpmKey: a salt cannot be decrypted
    if (this.#hmacSessions.size >= MAX_SESSIONS) throw new Rc(RC_SESSION_MEMORY);
    // Policy and trial sessions are not implemented: refused where libtpms would start one, so
    // every check libtpms makes first gives the same answer (measured against swtpm 0.7.1).
    if (type !== 0x00) throw new Rc(P(RC_VALUE, 3));
    // nonceTPM has the size of nonceCaller, as in libtpms (swtpm 0.7.1: 16-byte nonceCaller with
    // SHA-256 gives a 16-byte nonceTPM); every later nonceTPM keeps that size.
    const nonceTPM = new Uint8Array(nonceCaller.length);
    this.#random.fill(nonceTPM, 0, nonceTPM.length);
    let sessionKey: Uint8Array = EMPTY;
    if (tpmKey !== RH_NULL || bind !== RH_NULL) {
      const bindAuth = bind === RH_NULL ? EMPTY : trimZeros(this.#entityAuthForBind(bind));
      sessionKey = kdfa(authHash, bindAuth, "ATH", nonceTPM, nonceCaller, authHash.size * 8);
    }
    let handle = 0x02000000;
    while (this.#hmacSessions.has(handle)) handle++;
    const bindNv = bind >>> 24 === 0x01 ? this.#nv(bind) : undefined;
    const daBound = bindNv !== undefined && (bindNv.attributes & NV_NO_DA) === 0;
    this.#hmacSessions.set(handle, { handle, authHash, nonceTPM, sessionKey, bind: bind === RH_NULL ? undefined : bind, daBound });
    this.#rHandle = handle;
    out.tpm2b(nonceTPM);
  }

  #entityAuthForBind(h: number): Uint8Array {
    try {
      return this.#entityAuth(0, h).value;
    } catch {
      return EMPTY;
    }
  }

  /** TPM2_FlushContext, Part 3 §28.4: HMAC sessions and sequence objects. */
  #flushContext(inp: In): void {
    const h = inp.u32();
    const ht = h >>> 24;
    const slot = h & 0xffffff;
    const ok = ((ht === 0x02 || ht === 0x03) && slot < SESSION_HANDLE_RANGE) || (ht === 0x80 && slot < MAX_SEQUENCES);
    if (!ok) throw new Rc(P(RC_VALUE, 1)); // TPMI_DH_CONTEXT, with libtpms' handle ranges
    inp.done();
    if (ht === 0x02 || ht === 0x03) {
      // libtpms finds a session by its slot alone: an HMAC session can be flushed through the
      // policy-session handle of the same slot (measured against swtpm 0.7.1)
      if (!this.#hmacSessions.delete(((0x02 << 24) | slot) >>> 0)) throw new Rc(P(RC_HANDLE, 1));
    } else if (ht === 0x80) {
      if (!this.#sequences.delete(h)) throw new Rc(P(RC_HANDLE, 1));
    } else {
      throw new Rc(P(RC_VALUE, 1));
    }
  }

  /** TPM2_ReadClock, Part 3 §29.1: TPMS_TIME_INFO. */
  #readClock(inp: In, out: Out): void {
    inp.done();
    const now = this.#clock.now();
    const clock = this.#clockNow();
    if (!this.#ps.clockSafe && clock - this.#clockAtPowerOn >= 4096) this.#ps.clockSafe = true;
    out.u64(Math.max(0, Math.floor(now - this.#powerOnAt)));
    out.u64(clock);
    out.u32(this.#ps.resetCount);
    out.u32(this.#ps.restartCount);
    out.u8(this.#ps.clockSafe ? 1 : 0);
  }

  /** TPM2_SelfTest, Part 3 §10.2. */
  #selfTest(inp: In): void {
    const full = inp.u8();
    if (full > 1) throw new Rc(P(RC_VALUE, 1));
    inp.done();
  }

  /** TPM2_IncrementalSelfTest, Part 3 §10.3: everything is tested, the to-do list is empty. */
  #incrementalSelfTest(inp: In, out: Out): void {
    const count = inp.u32();
    if (count > 64) throw new Rc(P(RC_SIZE, 1));
    const at = inp.pos;
    inp.bytes(2 * count);
    inp.done();
    // the action refuses algorithms that are not implemented (libtpms: after the size checks)
    for (let i = 0; i < count; i++) if (bankIndex((inp.buf[at + 2 * i]! << 8) | inp.buf[at + 2 * i + 1]!) < 0) throw new Rc(P(RC_VALUE, 1));
    out.u32(0);
  }

  /** TPM2_GetTestResult, Part 3 §10.4. */
  #getTestResult(inp: In, out: Out): void {
    inp.done();
    out.u16(0);
    out.u32(RC_SUCCESS);
  }

  /** TPM2_Clear, Part 3 §24.6. */
  #clear(_h: number[], inp: In): void {
    inp.done();
    const ps = this.#ps;
    if (ps.disableClear) throw new Rc(RC_DISABLED);
    ps.ownerAuth = EMPTY;
    ps.endorsementAuth = EMPTY;
    ps.lockoutAuth = EMPTY;
    for (const nv of ps.nv) if (!(nv.attributes & NV_PLATFORMCREATE)) this.#noteCounterGone(nv);
    ps.nv = ps.nv.filter((nv) => (nv.attributes & NV_PLATFORMCREATE) !== 0);
    const seed = new Uint8Array(32);
    this.#random.fill(seed, 0, 32);
    ps.proofSeed = seed;
    // Clear also resets the dictionary-attack state (swtpm: LOCKOUT_COUNTER 0, lockoutAuth usable)
    ps.failedTries = 0;
    this.#lockoutUntil = 0;
    ps.lockoutAuthDisabled = false;
    // Clear resets the PCR auth values and policies and bumps pcrUpdateCounter (libtpms does too)
    this.#pcrUpdateCounter = (this.#pcrUpdateCounter + 1) >>> 0;
    // ... and restarts Clock at 0 with resetCount and restartCount 0 and Clock safe (Part 3 §24.6,
    // measured against swtpm 0.7.1); `time` (since power-on) goes on
    this.#clockAtPowerOn = -Math.max(0, Math.floor(this.#clock.now() - this.#powerOnAt));
    this.#daAnchor = 0;
    ps.resetCount = 0;
    ps.restartCount = 0;
    ps.clockSafe = true;
    this.#markDirty();
  }

  /** TPM2_ClearControl, Part 3 §24.7. */
  #clearControl(h: number[], inp: In): void {
    const disable = inp.u8();
    if (disable > 1) throw new Rc(P(RC_VALUE, 1));
    inp.done();
    if (h[0] === RH_LOCKOUT && disable === 0) throw new Rc(RC_AUTH_FAIL);
    this.#ps.disableClear = disable === 1;
    this.#markDirty();
  }

  /** TPM2_HierarchyChangeAuth, Part 3 §24.8. */
  #hierarchyChangeAuth(h: number[], inp: In): void {
    const auth = trimZeros(inp.tpm2b(AUTH_MAX)); // TPM2B_AUTH
    inp.done();
    const v = auth.slice();
    switch (h[0]) {
      case RH_OWNER:
        this.#ps.ownerAuth = v;
        break;
      case RH_ENDORSEMENT:
        this.#ps.endorsementAuth = v;
        break;
      case RH_LOCKOUT:
        this.#ps.lockoutAuth = v;
        break;
      default:
        this.#platformAuth = v;
        // platformAuth is part of the state Shutdown(STATE) saves: changing it undoes that
        // Shutdown (the other hierarchies' auth values and NV changes do not; measured against
        // swtpm 0.7.1)
        if (this.#shutdownIssued) this.#invalidateOrderly();
        return; // platform auth is volatile
    }
    this.#markDirty();
  }

  /** TPM2_NV_DefineSpace, Part 3 §31.3. */
  #nvDefineSpace(h: number[], inp: In): void {
    const auth = inp.tpm2b(AUTH_MAX); // TPM2B_AUTH
    inp.param = 2;
    // TPM2B_NV_PUBLIC, unmarshalled as libtpms does: each field checked as it is read, the size
    // field compared with what the structure used afterwards
    const pubSize = inp.u16();
    if (pubSize === 0) throw new Rc(P(RC_SIZE, 2));
    const pubStart = inp.pos;
    const handle = inp.u32();
    if (handle >>> 24 !== 0x01) throw new Rc(P(RC_VALUE, 2));
    const nameAlg = inp.u16();
    const alg = hashAlg(nameAlg);
    if (!alg) throw new Rc(P(RC_HASH, 2));
    const attributes = inp.u32();
    if (attributes & NV_RESERVED) throw new Rc(P(RC_RESERVED_BITS, 2));
    const authPolicy = inp.tpm2b(AUTH_MAX);
    const dataSize = inp.u16();
    // libtpms bounds dataSize while unmarshalling TPMS_NV_PUBLIC: before the trailing-bytes check
    // and the auth size check (measured against swtpm 0.7.1)
    if (dataSize > NV_DATA_MAX) throw new Rc(P(RC_SIZE, 2));
    if (inp.pos - pubStart !== pubSize) throw new Rc(P(RC_SIZE, 2));
    inp.done();
    // the policy size first, then the auth size (libtpms order, measured against swtpm 0.7.1)
    if (authPolicy.length !== 0 && authPolicy.length !== alg.size) throw new Rc(P(RC_SIZE, 2));
    if (trimZeros(auth).length > alg.size) throw new Rc(P(RC_SIZE, 1));
    const nt = (attributes >>> 4) & 0xf;
    if (nt !== NT_ORDINARY && nt !== NT_COUNTER && nt !== NT_BITS && nt !== NT_EXTEND) throw new Rc(P(RC_ATTRIBUTES, 2));
    if ((nt === NT_COUNTER || nt === NT_BITS) && dataSize !== 8) throw new Rc(P(RC_SIZE, 2));
    if (nt === NT_EXTEND && dataSize !== alg.size) throw new Rc(P(RC_SIZE, 2));
    if (!(attributes & (NV_PPREAD | NV_OWNERREAD | NV_AUTHREAD | NV_POLICYREAD))) throw new Rc(P(RC_ATTRIBUTES, 2));
    if (!(attributes & (NV_PPWRITE | NV_OWNERWRITE | NV_AUTHWRITE | NV_POLICYWRITE))) throw new Rc(P(RC_ATTRIBUTES, 2));
    if (attributes & (NV_WRITELOCKED | NV_READLOCKED | NV_WRITTEN)) throw new Rc(P(RC_ATTRIBUTES, 2));
    if (nt === NT_COUNTER && attributes & NV_CLEAR_STCLEAR) throw new Rc(P(RC_ATTRIBUTES, 2));
    if (attributes & NV_CLEAR_STCLEAR && attributes & NV_WRITEDEFINE) throw new Rc(P(RC_ATTRIBUTES, 2));
    const platform = h[0] === RH_PLATFORM;
    if (((attributes & NV_PLATFORMCREATE) !== 0) !== platform) throw new Rc(H(RC_ATTRIBUTES, 1));
    if (attributes & NV_POLICY_DELETE && !platform) throw new Rc(P(RC_ATTRIBUTES, 2)); // platform-only
    // a WRITEALL index must fit one NV_Write (MAX_NV_BUFFER_SIZE), checked after the attributes
    // (measured against swtpm 0.7.1)
    if (attributes & NV_WRITEALL && dataSize > SOFTTPM_MAX_BUFFER) throw new Rc(P(RC_SIZE, 2));
    if (this.#nv(handle)) throw new Rc(RC_NV_DEFINED);
    if (this.#ps.nv.length >= NV_INDICES_MAX) throw new Rc(RC_NV_SPACE);
    const entry: NvIndexState = {
      handle,
      nameAlg,
      attributes: attributes >>> 0,
      authValue: trimZeros(auth).slice(),
      authPolicy: authPolicy.slice(),
      dataSize,
      // unwritten bytes of an ordinary index read as 0xFF (erased NV), as on swtpm; the other
      // types start from zero when first written
      data: new Uint8Array(dataSize).fill(nt === NT_ORDINARY ? 0xff : 0),
    };
    if (nvIndexProblem(entry)) throw new Rc(P(RC_VALUE, 2));
    this.#ps.nv.push(entry);
    this.#ps.nv.sort((x, y) => x.handle - y.handle);
    this.#markDirty();
  }

  /** TPM2_NV_UndefineSpace, Part 3 §31.4. */
  #nvUndefineSpace(h: number[], inp: In): void {
    inp.done();
    const nv = this.#nv(h[1]!)!;
    if (nv.attributes & NV_POLICY_DELETE) throw new Rc(H(RC_ATTRIBUTES, 2)); // needs NV_UndefineSpaceSpecial
    if (nv.attributes & NV_PLATFORMCREATE && h[0] !== RH_PLATFORM) throw new Rc(RC_NV_AUTHORIZATION);
    this.#noteCounterGone(nv);
    this.#ps.nv = this.#ps.nv.filter((x) => x !== nv);
    this.#markDirty();
  }

  /** NvWriteAccessChecks, Part 3 §31.2.3 (lock first, then the authorization attribute). */
  #writeAccess(authHandle: number, nv: NvIndexState): void {
    if (nv.attributes & NV_WRITELOCKED) throw new Rc(RC_NV_LOCKED);
    if (authHandle >>> 24 === 0x01 && authHandle !== nv.handle) throw new Rc(RC_NV_AUTHORIZATION); // another index's auth
    if (authHandle === RH_OWNER && !(nv.attributes & NV_OWNERWRITE)) throw new Rc(RC_NV_AUTHORIZATION);
    if (authHandle === RH_PLATFORM && !(nv.attributes & NV_PPWRITE)) throw new Rc(RC_NV_AUTHORIZATION);
  }

  /** NvReadAccessChecks, Part 3 §31.2.2. */
  #readAccess(authHandle: number, nv: NvIndexState): void {
    if (nv.attributes & NV_READLOCKED) throw new Rc(RC_NV_LOCKED);
    if (authHandle >>> 24 === 0x01 && authHandle !== nv.handle) throw new Rc(RC_NV_AUTHORIZATION); // another index's auth
    if (authHandle === RH_OWNER && !(nv.attributes & NV_OWNERREAD)) throw new Rc(RC_NV_AUTHORIZATION);
    if (authHandle === RH_PLATFORM && !(nv.attributes & NV_PPREAD)) throw new Rc(RC_NV_AUTHORIZATION);
  }

  #written(nv: NvIndexState): void {
    nv.attributes = (nv.attributes | NV_WRITTEN) >>> 0;
    this.#markDirty();
  }

  /** TPM2_NV_Write, Part 3 §31.7. */
  #nvWrite(h: number[], inp: In): void {
    const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
    inp.param = 2;
    const offset = inp.u16();
    inp.done();
    const nv = this.#nv(h[1]!)!;
    this.#writeAccess(h[0]!, nv);
    const nt = (nv.attributes >>> 4) & 0xf;
    if (nt !== NT_ORDINARY) throw new Rc(RC_ATTRIBUTES);
    if (offset > nv.dataSize) throw new Rc(P(RC_VALUE, 2));
    if (data.length > nv.dataSize - offset) throw new Rc(RC_NV_RANGE);
    if (nv.attributes & NV_WRITEALL && data.length !== nv.dataSize) throw new Rc(RC_NV_RANGE);
    nv.data.set(data, offset);
    this.#written(nv);
  }

  /**
   * A counter index is being deleted: the highest count seen so far moves up to its value, so a
   * new counter starts above it (Part 3 §31.8). As libtpms, this happens on deletion only, not on
   * every increment (measured against swtpm 0.7.1: a counter defined while another one stands at
   * 3 starts at 1).
   */
  #noteCounterGone(nv: NvIndexState): void {
    if (((nv.attributes >>> 4) & 0xf) !== NT_COUNTER || !(nv.attributes & NV_WRITTEN)) return;
    const v = readU64(nv.data);
    if (v > this.#ps.maxCounter) this.#ps.maxCounter = v;
  }

  /** TPM2_NV_Increment, Part 3 §31.8. */
  #nvIncrement(h: number[], inp: In): void {
    inp.done();
    const nv = this.#nv(h[1]!)!;
    this.#writeAccess(h[0]!, nv);
    if (((nv.attributes >>> 4) & 0xf) !== NT_COUNTER) throw new Rc(H(RC_ATTRIBUTES, 2));
    let v = nv.attributes & NV_WRITTEN ? readU64(nv.data) : this.#ps.maxCounter;
    v = (v + 1n) & 0xffffffffffffffffn;
    writeU64(nv.data, v);
    this.#written(nv);
  }

  /** TPM2_NV_Extend, Part 3 §31.9. */
  #nvExtend(h: number[], inp: In): void {
    const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
    inp.done();
    const nv = this.#nv(h[1]!)!;
    this.#writeAccess(h[0]!, nv);
    if (((nv.attributes >>> 4) & 0xf) !== NT_EXTEND) throw new Rc(H(RC_ATTRIBUTES, 2));
    const a = hashAlg(nv.nameAlg)!;
    nv.data.set(a.hash(concat(nv.data, data)));
    this.#written(nv);
  }

  /** TPM2_NV_SetBits, Part 3 §31.10. */
  #nvSetBits(h: number[], inp: In): void {
    const hi = inp.u32();
    const lo = inp.u32();
    inp.done();
    const nv = this.#nv(h[1]!)!;
    this.#writeAccess(h[0]!, nv);
    if (((nv.attributes >>> 4) & 0xf) !== NT_BITS) throw new Rc(H(RC_ATTRIBUTES, 2));
    const old = nv.attributes & NV_WRITTEN ? readU64(nv.data) : 0n;
    writeU64(nv.data, old | (BigInt(hi) << 32n) | BigInt(lo));
    this.#written(nv);
  }

  /** TPM2_NV_WriteLock, Part 3 §31.11. */
  #nvWriteLock(h: number[], inp: In): void {
    inp.done();
    const nv = this.#nv(h[1]!)!;
    if (nv.attributes & NV_WRITELOCKED) return; // already locked: success
    this.#writeAccess(h[0]!, nv);
    if (!(nv.attributes & (NV_WRITEDEFINE | NV_WRITE_STCLEAR))) throw new Rc(H(RC_ATTRIBUTES, 2));
    nv.attributes = (nv.attributes | NV_WRITELOCKED) >>> 0;
    this.#markDirty();
  }

  /** TPM2_NV_Read, Part 3 §31.13. */
  #nvRead(h: number[], inp: In, out: Out): void {
    const size = inp.u16();
    inp.param = 2;
    const offset = inp.u16();
    inp.done();
    const nv = this.#nv(h[1]!)!;
    this.#readAccess(h[0]!, nv);
    if (!(nv.attributes & NV_WRITTEN)) throw new Rc(RC_NV_UNINITIALIZED);
    if (size > SOFTTPM_MAX_BUFFER) throw new Rc(P(RC_VALUE, 1));
    if (offset > nv.dataSize) throw new Rc(P(RC_VALUE, 2));
    if (size + offset > nv.dataSize) throw new Rc(RC_NV_RANGE);
    out.tpm2b(nv.data.subarray(offset, offset + size));
  }

  /** TPM2_NV_ReadLock, Part 3 §31.14. */
  #nvReadLock(h: number[], inp: In): void {
    inp.done();
    const nv = this.#nv(h[1]!)!;
    if (nv.attributes & NV_READLOCKED) return; // already locked: success
    this.#readAccess(h[0]!, nv);
    if (!(nv.attributes & NV_READ_STCLEAR)) throw new Rc(H(RC_ATTRIBUTES, 2));
    nv.attributes = (nv.attributes | NV_READLOCKED) >>> 0;
  }

  /** TPM2_NV_ReadPublic, Part 3 §31.6: TPM2B_NV_PUBLIC and the index Name. */
  #nvReadPublic(h: number[], inp: In, out: Out): void {
    inp.done();
    const nv = this.#nv(h[0]!)!;
    const pub = nvPublicBytes(nv);
    out.tpm2b(pub);
    const a = hashAlg(nv.nameAlg)!;
    out.u16(2 + a.size);
    out.u16(a.alg);
    out.bytes(a.hash(pub));
  }

  /** TPM2_GetCapability, Part 3 §30.2. */
  #getCapability(inp: In, out: Out): void {
    const cap = inp.u32();
    if (cap > 0xa && cap !== 0x100) throw new Rc(P(RC_VALUE, 1)); // TPM_CAP unmarshal
    inp.param = 2;
    const property = inp.u32();
    inp.param = 3;
    const count = inp.u32();
    inp.done();
    // TPM_CAP_VENDOR_PROPERTY is a valid TPM_CAP, refused only after the size check (as libtpms,
    // measured against swtpm 0.7.1: trailing bytes give TPM_RC_SIZE, none TPM_RC_VALUE + P1)
    if (cap === 0x100) throw new Rc(P(RC_VALUE, 1));
    const moreAt = out.skip(1);
    out.u32(cap);
    let more = false;
    switch (cap) {
      case 0x0: {
        // TPM_CAP_ALGS: TPML_ALG_PROPERTY; hash algorithms (TPMA_ALGORITHM.hash = bit 2)
        const list = HASH_ALGS.filter((a) => a.alg >= (property & 0xffff)); // property is read as a TPM_ALG_ID
        more = this.#emit(out, list, count, 169, (a) => {
          out.u16(a.alg);
          out.u32(0x4);
        });
        break;
      }
      case 0x1: {
        // TPM_CAP_HANDLES
        const ht = property >>> 24;
        let handles: number[];
        if (ht === 0x00) handles = Array.from({ length: PCR_COUNT }, (_, i) => i);
        else if (ht === 0x01) handles = this.#ps.nv.map((x) => x.handle);
        else if (ht === 0x40) handles = PERMANENT_HANDLES;
        else if (ht === 0x80) handles = [...this.#sequences.keys()].sort((x, y) => x - y);
        else if (ht === 0x02) handles = [...this.#hmacSessions.keys()].sort((x, y) => x - y);
        else if (ht === 0x03 || ht === 0x81) handles = [];
        else throw new Rc(P(RC_HANDLE, 2));
        more = this.#emit(out, handles.filter((x) => x >= property), count, 254, (x) => out.u32(x));
        break;
      }
      case 0x2: {
        // TPM_CAP_COMMANDS: TPML_CCA
        const list = COMMAND_ATTRIBUTES.filter((a) => (a & 0xffff) >= property);
        more = this.#emit(out, list, count, 254, (a) => out.u32(a));
        break;
      }
      case 0x5: {
        // TPM_CAP_PCRS: TPML_PCR_SELECTION, every bank fully allocated; property must be 0 and a
        // count of 0 returns nothing with moreData set (as libtpms)
        if (property !== 0) throw new Rc(P(RC_VALUE, 2));
        if (count === 0) {
          out.u32(0);
          more = true;
          break;
        }
        out.u32(HASH_ALGS.length);
        for (const a of HASH_ALGS) {
          out.u16(a.alg);
          out.u8(PCR_SELECT_SIZE);
          out.u8(0xff);
          out.u8(0xff);
          out.u8(0xff);
        }
        break;
      }
      case 0x6: {
        // TPM_CAP_TPM_PROPERTIES: the group (fixed 0x1xx or variable 0x2xx) holding `property`
        const group = property < 0x200 ? this.#fixedProperties() : property < 0x300 ? this.#variableProperties() : [];
        const list = group.filter(([t]) => t >= property);
        more = this.#emit(out, list, count, 127, ([t, v]) => {
          out.u32(t);
          out.u32(v);
        });
        break;
      }
      case 0x7: {
        // TPM_CAP_PCR_PROPERTIES: TPML_TAGGED_PCR_PROPERTY
        const list = PCR_PROPERTIES.filter(([t]) => t >= property);
        more = this.#emit(out, list, count, 127, ([t, bits]) => {
          out.u32(t);
          out.u8(PCR_SELECT_SIZE);
          out.u8(bits & 0xff);
          out.u8((bits >>> 8) & 0xff);
          out.u8((bits >>> 16) & 0xff);
        });
        break;
      }
      case 0x9: {
        // TPM_CAP_AUTH_POLICIES: TPML_TAGGED_POLICY; no hierarchy has a policy (TPM_ALG_NULL)
        if (property >>> 24 !== 0x40) throw new Rc(P(RC_VALUE, 2));
        const list = [RH_OWNER, RH_LOCKOUT, RH_ENDORSEMENT, RH_PLATFORM].filter((x) => x >= property);
        more = this.#emit(out, list, count, 169, (x) => {
          out.u32(x);
          out.u16(0x0010);
        });
        break;
      }
      case 0xa: // TPM_CAP_ACT: no authenticated countdown timers
        if (property < 0x40000110 || property > 0x4000011f) throw new Rc(P(RC_VALUE, 2));
        out.u32(0);
        break;
      case 0x3: // PP_COMMANDS
      case 0x4: // AUDIT_COMMANDS
      case 0x8: // ECC_CURVES
        out.u32(0);
        break;
      default:
        throw new Rc(P(RC_VALUE, 1));
    }
    out.buf[moreAt] = more ? 1 : 0;
  }

  static readonly #commands = new Map<number, CommandSpec>([
    [CC.Startup, { handles: [], auth: 0, noSessions: true, run: (t, _h, i, _o, l) => t.#startup(i, l) }],
    [CC.Shutdown, { handles: [], auth: 0, run: (t, _h, i) => t.#shutdown(i) }],
    [CC.SelfTest, { handles: [], auth: 0, run: (t, _h, i) => t.#selfTest(i) }],
    [CC.IncrementalSelfTest, { handles: [], auth: 0, run: (t, _h, i, o) => t.#incrementalSelfTest(i, o) }],
    [CC.GetTestResult, { handles: [], auth: 0, run: (t, _h, i, o) => t.#getTestResult(i, o) }],
    [CC.GetRandom, { handles: [], auth: 0, run: (t, _h, i, o) => t.#getRandom(i, o) }],
    [CC.StirRandom, { handles: [], auth: 0, run: (t, _h, i) => t.#stirRandom(i) }],
    [CC.GetCapability, { handles: [], auth: 0, run: (t, _h, i, o) => t.#getCapability(i, o) }],
    [CC.PCR_Read, { handles: [], auth: 0, run: (t, _h, i, o) => t.#pcrRead(i, o) }],
    [CC.PCR_Extend, { handles: ["pcr+null"], auth: 1, run: (t, h, i, o, l) => t.#pcrExtend(h, i, o, l) }],
    [CC.PCR_Event, { decrypt: true, handles: ["pcr+null"], auth: 1, run: (t, h, i, o, l) => t.#pcrEvent(h, i, o, l) }],
    [CC.PCR_Reset, { handles: ["pcr"], auth: 1, run: (t, h, i, o, l) => t.#pcrReset(h, i, o, l) }],
    [CC.Hash, { handles: [], auth: 0, run: (t, _h, i, o) => t.#hash(i, o) }],
    [CC.StartAuthSession, { handles: ["tpmKey", "entity"], auth: 0, rHandle: true, run: (t, h, i, o) => t.#startAuthSession(h, i, o) }],
    [CC.FlushContext, { handles: [], auth: 0, noSessions: true, run: (t, _h, i) => t.#flushContext(i) }],
    [CC.HashSequenceStart, { handles: [], auth: 0, rHandle: true, run: (t, _h, i) => t.#hashSequenceStart(i) }],
    [CC.SequenceUpdate, { decrypt: true, handles: ["sequence"], auth: 1, run: (t, h, i) => t.#sequenceUpdate(h, i) }],
    [CC.SequenceComplete, { decrypt: true, encrypt: true, handles: ["sequence"], auth: 1, run: (t, h, i, o) => t.#sequenceComplete(h, i, o) }],
    [CC.EventSequenceComplete, { decrypt: true, handles: ["pcr+null", "sequence"], auth: 2, run: (t, h, i, o, l) => t.#eventSequenceComplete(h, i, o, l) }],
    [CC.ReadClock, { handles: [], auth: 0, run: (t, _h, i, o) => t.#readClock(i, o) }],
    [CC.Clear, { handles: ["clear"], auth: 1, changes: true, run: (t, h, i) => t.#clear(h, i) }],
    [CC.ClearControl, { handles: ["clear"], auth: 1, run: (t, h, i) => t.#clearControl(h, i) }],
    [CC.HierarchyChangeAuth, { decrypt: true, handles: ["hierarchyAuth"], auth: 1, run: (t, h, i) => t.#hierarchyChangeAuth(h, i) }],
    [CC.NV_DefineSpace, { decrypt: true, handles: ["provision"], auth: 1, run: (t, h, i) => t.#nvDefineSpace(h, i) }],
    [CC.NV_UndefineSpace, { handles: ["provision", "nvIndex"], auth: 1, run: (t, h, i) => t.#nvUndefineSpace(h, i) }],
    [CC.NV_Write, { decrypt: true, handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => t.#nvWrite(h, i) }],
    [CC.NV_Read, { encrypt: true, handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i, o) => t.#nvRead(h, i, o) }],
    [CC.NV_ReadPublic, { handles: ["nvIndex"], auth: 0, run: (t, h, i, o) => t.#nvReadPublic(h, i, o) }],
    [CC.NV_Increment, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => t.#nvIncrement(h, i) }],
    [CC.NV_Extend, { decrypt: true, handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => t.#nvExtend(h, i) }],
    [CC.NV_SetBits, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => t.#nvSetBits(h, i) }],
    [CC.NV_ReadLock, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => t.#nvReadLock(h, i) }],
    [CC.NV_WriteLock, { handles: ["nvAuth", "nvIndex"], auth: 1, run: (t, h, i) => t.#nvWriteLock(h, i) }],
  ]);

  #emit<T>(out: Out, list: readonly T[], count: number, max: number, write: (x: T) => void): boolean {
    const n = Math.min(list.length, count, max);
    out.u32(n);
    for (let i = 0; i < n; i++) write(list[i]!);
    return list.length > n;
  }

  #fixedProperties(): [number, number][] {
    const ascii2_0 = 0x322e3000;
    return [
      [0x100, ascii2_0], // FAMILY_INDICATOR "2.0"
      [0x101, 0], // LEVEL
      [0x102, 164], // REVISION 1.64
      [0x103, 75], // DAY_OF_YEAR
      [0x104, 2021], // YEAR
      [0x105, this.#manufacturer],
      [0x106, this.#vendor[0]!],
      [0x107, this.#vendor[1]!],
      [0x108, this.#vendor[2]!],
      [0x109, this.#vendor[3]!],
      [0x10a, 1], // VENDOR_TPM_TYPE
      [0x10b, this.#firmware[0]],
      [0x10c, this.#firmware[1]],
      [0x10d, SOFTTPM_MAX_BUFFER], // INPUT_BUFFER
      [0x10e, MAX_SEQUENCES], // HR_TRANSIENT_MIN
      [0x10f, 0], // HR_PERSISTENT_MIN
      [0x110, MAX_SESSIONS], // HR_LOADED_MIN (HMAC sessions)
      [0x111, MAX_SESSIONS], // ACTIVE_SESSIONS_MAX
      [0x112, PCR_COUNT],
      [0x113, PCR_SELECT_SIZE],
      [0x114, 0xffff], // CONTEXT_GAP_MAX
      [0x116, 0], // NV_COUNTERS_MAX (no limit of its own)
      [0x117, NV_DATA_MAX], // NV_INDEX_MAX
      [0x118, 0x6], // MEMORY: sharedNV | objectCopiedToRam
      [0x119, 0x1000], // CLOCK_UPDATE
      [0x11a, 0x000d], // CONTEXT_HASH sha512
      [0x11b, 0x0006], // CONTEXT_SYM aes
      [0x11c, 0x100], // CONTEXT_SYM_SIZE
      [0x11d, 0xff], // ORDERLY_COUNT
      [0x11e, SOFTTPM_MAX_COMMAND_SIZE],
      [0x11f, SOFTTPM_MAX_COMMAND_SIZE],
      [0x120, 64], // MAX_DIGEST
      [0x121, 0], // MAX_OBJECT_CONTEXT (no context save)
      [0x122, 0], // MAX_SESSION_CONTEXT
      [0x123, 1], // PS_FAMILY_INDICATOR: PC client
      [0x124, 0], // PS_LEVEL
      [0x125, 0], // PS_REVISION
      [0x126, 0], // PS_DAY_OF_YEAR
      [0x127, 0], // PS_YEAR
      [0x128, 0x80], // SPLIT_MAX
      [0x129, COMMAND_ATTRIBUTES.length], // TOTAL_COMMANDS
      [0x12a, COMMAND_ATTRIBUTES.length], // LIBRARY_COMMANDS
      [0x12b, 0], // VENDOR_COMMANDS
      [0x12c, SOFTTPM_MAX_BUFFER], // NV_BUFFER_MAX
      [0x12d, 0], // MODES
      [0x12e, SOFTTPM_MAX_BUFFER], // MAX_CAP_BUFFER
    ];
  }

  #variableProperties(): [number, number][] {
    const ps = this.#ps;
    const permanent =
      (ps.ownerAuth.length ? 1 : 0) | (ps.endorsementAuth.length ? 2 : 0) | (ps.lockoutAuth.length ? 4 : 0) | (ps.disableClear ? 0x100 : 0) | (this.#inLockout() ? 0x200 : 0) | 0x400;
    const counters = ps.nv.filter((x) => ((x.attributes >>> 4) & 0xf) === NT_COUNTER).length;
    return [
      [0x200, permanent], // PERMANENT (tpmGeneratedEPS always set)
      // STARTUP_CLEAR: ph/sh/eh/phEnableNV, and orderly when the last Startup followed an
      // orderly Shutdown (it stays so until the next Startup; measured against swtpm 0.7.1)
      [0x201, (this.#startupOrderly ? 0x80000000 : 0) | 0xf],
      [0x202, ps.nv.length], // HR_NV_INDEX
      [0x203, this.#hmacSessions.size], // HR_LOADED
      [0x204, MAX_SESSIONS - this.#hmacSessions.size], // HR_LOADED_AVAIL
      [0x205, this.#hmacSessions.size], // HR_ACTIVE
      [0x206, MAX_SESSIONS - this.#hmacSessions.size], // HR_ACTIVE_AVAIL
      [0x207, MAX_SEQUENCES - this.#sequences.size], // HR_TRANSIENT_AVAIL
      [0x208, 0], // HR_PERSISTENT
      [0x209, 0], // HR_PERSISTENT_AVAIL
      [0x20a, counters], // NV_COUNTERS
      [0x20b, NV_INDICES_MAX - ps.nv.length], // NV_COUNTERS_AVAIL
      [0x20c, 0], // ALGORITHM_SET
      [0x20d, 0], // LOADED_CURVES
      [0x20e, ps.failedTries], // LOCKOUT_COUNTER
      [0x20f, MAX_AUTH_FAIL],
      [0x210, LOCKOUT_INTERVAL_S],
      [0x211, LOCKOUT_RECOVERY_S],
      [0x212, 0], // NV_WRITE_RECOVERY
      [0x213, 0], // AUDIT_COUNTER_0
      [0x214, 0], // AUDIT_COUNTER_1
    ];
  }
}

const EMPTY = new Uint8Array(0);


/** The 10-byte error response (tag TPM_ST_NO_SESSIONS, size 10, rc). TPM 2.0 Part 1 §18.10. */
function errorResponse(rc: number): Uint8Array {
  return Uint8Array.of(0x80, 0x01, 0, 0, 0, 10, (rc >>> 24) & 0xff, (rc >>> 16) & 0xff, (rc >>> 8) & 0xff, rc & 0xff);
}

/** Is `tag` a TPM_ST value at all (then a non-command tag is TPM_RC_BAD_TAG, else TPM_RC_VALUE)? */
function isStructureTag(tag: number): boolean {
  // the TPM_ST values libtpms 0.9 unmarshals (measured against swtpm 0.7.1 over every tag
  // 0x8000–0x802f): the reserved 0x8003, 0x8004, 0x801b and FU_MANIFEST (0x8029) are not among
  // them, so they give TPM_RC_VALUE like any other unknown value
  return tag === 0x00c4 || tag === 0x8000 || (tag >= 0x8014 && tag <= 0x801a) || (tag >= 0x8021 && tag <= 0x8025);
}

/** Index of the bank for `alg` in {@link HASH_ALGS}, or -1. */
function bankIndex(alg: number): number {
  switch (alg) {
    case 0x0004:
      return 0;
    case 0x000b:
      return 1;
    case 0x000c:
      return 2;
    case 0x000d:
      return 3;
    default:
      return -1;
  }
}

/** Constant-time equality of two byte strings. */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** KDFa, SP 800-108 counter mode with HMAC (TPM 2.0 Part 1 §11.4.10.2). */
function kdfa(a: HashAlg, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  const labelBytes = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 1, off = 0; off < out.length; i++, off += a.size) {
    const block = a.mac(key, u32be(i), labelBytes, contextU, contextV, u32be(bits));
    out.set(block.subarray(0, Math.min(a.size, out.length - off)), off);
  }
  return out;
}

function trimZeros(b: Uint8Array): Uint8Array {
  let n = b.length;
  while (n > 0 && b[n - 1] === 0) n--;
  return b.subarray(0, n);
}

/** Constant-time comparison of a password with an auth value, trailing zeros ignored (Part 1 §19.8.4). */
function authEqual(given: Uint8Array, expected: Uint8Array): boolean {
  const a = trimZeros(given);
  const b = trimZeros(expected);
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * Whether data hashed by a sequence may be given a ticket (libtpms TicketIsSafe, measured against
 * swtpm 0.7.1): at least 4 bytes, and not starting with TPM_GENERATED_VALUE.
 */
function ticketIsSafe(d: Uint8Array): boolean {
  return d.length >= 4 && !startsWithGenerated(d);
}

function startsWithGenerated(d: Uint8Array): boolean {
  // TPM_GENERATED_VALUE 0xff544347: such data gets no ticket (Part 3 §15.4)
  return d.length >= 4 && d[0] === 0xff && d[1] === 0x54 && d[2] === 0x43 && d[3] === 0x47;
}

function nvPublicBytes(nv: NvIndexState): Uint8Array {
  const out = new Uint8Array(4 + 2 + 4 + 2 + nv.authPolicy.length + 2);
  let p = 0;
  out.set(u32be(nv.handle), p);
  p += 4;
  out[p++] = nv.nameAlg >>> 8;
  out[p++] = nv.nameAlg & 0xff;
  out.set(u32be(nv.attributes), p);
  p += 4;
  out[p++] = nv.authPolicy.length >>> 8;
  out[p++] = nv.authPolicy.length & 0xff;
  out.set(nv.authPolicy, p);
  p += nv.authPolicy.length;
  out[p++] = nv.dataSize >>> 8;
  out[p++] = nv.dataSize & 0xff;
  return out;
}

function u32be(v: number): Uint8Array {
  return Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function readU64(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

function writeU64(b: Uint8Array, v: bigint): void {
  for (let i = 7; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function packAscii(s: string, max: number, what: string): number[] {
  if (typeof s !== "string" || s.length === 0 || s.length > max || /[^\x20-\x7e]/.test(s)) {
    throw new TpmArgumentError(`SoftTpm: ${what} must be 1–${max} printable ASCII characters`);
  }
  const words: number[] = [];
  for (let w = 0; w < max / 4; w++) {
    let v = 0;
    for (let i = 0; i < 4; i++) v = (v << 8) | (s.charCodeAt(w * 4 + i) || 0);
    words.push(v >>> 0);
  }
  return words;
}
