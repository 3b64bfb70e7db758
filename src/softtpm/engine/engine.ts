/**
 * The SoftTpm engine's state: everything a TPM keeps (the persistent state of the saved-state blob and the
 * volatile PCRs, sessions, sequences and timers), the power state, the clock, the
 * dictionary-attack bookkeeping, and the buffers a command reuses. Command handlers
 * (one module per TPM 2.0 Part 3 chapter) read and change it; the dispatcher runs them.
 *
 * @packageDocumentation
 */
import type { Clock } from "../../core/clock.js";
import type { Storage } from "../../core/storage.js";
import type { RandomSource } from "../random.js";
import { type NvIndexState, type PersistentState, daParameters, deriveSeed, decodeState, encodeState } from "../state.js";
import { HASH_IMPLS, type HashImpl, PCR_COUNT } from "../tables.js";
import { MAX_SESSION_NUM } from "./limits.js";
import { EMPTY, In, Out } from "./marshal.js";
import type { TpmObject } from "./objects.js";
import type { PolicyState } from "./auth.js";
import { Commits } from "./persistence.js";

/**
 * What `SoftTpm.powerState` reports (exported as `SoftTpmPowerState`): "off" before power-on,
 * "needs-startup" until TPM2_Startup, then "running".
 */
export type PowerState = "off" | "needs-startup" | "running";

/** A loaded HMAC session (TPM 2.0 Part 1 §19.6), unsalted, no parameter encryption. */
export interface HmacSession {
  handle: number;
  authHash: HashImpl;
  /** The TPM's nonce of the last response (nonceOlder for the next command). */
  nonceTPM: Uint8Array;
  /** KDFa(authHash, bind authValue, "ATH", nonceTPM, nonceCaller); empty when neither bound nor salted. */
  sessionKey: Uint8Array;
  /** The entity the session is bound to, if any. */
  bind: number | undefined;
  /**
   * Bound to a DA-protected entity (an NV index without TPMA_NV_NO_DA): then every HMAC failure
   * with this session counts as a DA failure and a DA lockout refuses it, whatever it authorizes
   * (libtpms isDaBound; swtpm 0.7.1, measured).
   */
  daBound: boolean;
  /** A policy or trial session's state (Part 1 §19.7); undefined for an HMAC session. */
  policy?: PolicyState;
  /** Parameter encryption (Part 1 §21): AES-CFB with keyBits, or XOR with the hash `mode`; undefined: TPM_ALG_NULL. */
  symmetric?: { alg: number; keyBits: number; mode: number };
}

/** A hash or event sequence object (TPM 2.0 Part 3 §17). */
export interface Sequence {
  handle: number;
  /** undefined: an event sequence (TPM_ALG_NULL), hashing into every bank. */
  alg: HashImpl | undefined;
  hashers: { update(d: Uint8Array): unknown; digest(): Uint8Array }[];
  authValue: Uint8Array;
  /**
   * The first block of data decides whether SequenceComplete may give a ticket (Part 3 §17.4–17.5,
   * as libtpms: a first block under 4 bytes or starting with TPM_GENERATED_VALUE gets a NULL
   * ticket). undefined until the first SequenceUpdate / SequenceComplete.
   */
  ticketSafe?: boolean;
}

/** What the engine is built from (the validated `SoftTpmOptions`). */
export interface EngineConfig {
  storage: Storage | undefined;
  random: RandomSource;
  clock: Clock;
  /** TPM_PT_MANUFACTURER. */
  manufacturer: number;
  /** TPM_PT_VENDOR_STRING_1..4. */
  vendor: readonly number[];
  /** TPM_PT_FIRMWARE_VERSION_1 and _2. */
  firmware: readonly [number, number];
  /** Emulate libtpms' DA RETRY after Startup and Shutdown. */
  daRetry: boolean;
}

/** The state of one SoftTpm. Fields are the engine's own: only command handlers touch them. */
export class Engine {
  readonly random: RandomSource;
  readonly clock: Clock;
  readonly manufacturer: number;
  readonly vendor: readonly number[];
  readonly firmware: readonly [number, number];
  readonly daRetry: boolean;
  readonly persistence: Commits;

  power: PowerState = "off";
  /** The persistent state (set at power-on). */
  ps!: PersistentState;
  /** One pending DA RETRY (see daRetry). */
  daPending = false;

  // volatile state
  pcrs: Uint8Array[] = HASH_IMPLS.map((a) => new Uint8Array(a.size * PCR_COUNT));
  pcrUpdateCounter = 0;
  platformAuth: Uint8Array = EMPTY;
  sequences = new Map<number, Sequence>();
  hmacSessions = new Map<number, HmacSession>();
  /** Loaded objects by transient handle (they share the object slots with `sequences`). */
  objects = new Map<number, TpmObject>();
  /** Persistent objects read from `ps.persistent`, by persistent handle (dropped when that list changes). */
  persistentCache = new Map<number, TpmObject>();
  /** Saved sessions: handle to the context sequence number of their one valid context (Part 1 §30.5). */
  savedSessions = new Map<number, bigint>();
  /** The TPM_RH_NULL primary seed, drawn on first use; a TPM Reset forgets it. */
  nullSeed: Uint8Array | undefined;
  /** The secret context blobs are protected with, drawn on first use; lasts until power-off. */
  contextSecret: Uint8Array | undefined;
  /** The session context counter (TPMS_CONTEXT.sequence of the last saved session, Part 1 §30.5). */
  contextCounter = 0n;
  /** The object context counter (TPMS_CONTEXT.sequence of the last saved object). */
  objectContextCounter = 0n;
  powerOnAt = 0;
  clockAtPowerOn = 0;
  shutdownIssued = false;
  /** TPM clock (ms) until which lockoutAuth is unusable after a failure (volatile). */
  lockoutUntil = 0;
  /** TPM clock (ms) from which the next failedTries decrement is counted. */
  daAnchor = 0;
  /** The last successful TPM2_Startup came from locality 3. */
  startupLocality3 = false;
  /** The last successful TPM2_Startup followed an orderly shutdown (TPMA_STARTUP_CLEAR.orderly). */
  startupOrderly = true;

  // reusable per-command buffers
  readonly in = new In();
  readonly out = new Out();
  readonly handles: number[] = [0, 0, 0];
  readonly sessionAttrs: number[] = [];
  readonly sessionAuths: Uint8Array[] = [];
  readonly sessionNonces: Uint8Array[] = [];
  readonly sessionObjs: (HmacSession | undefined)[] = [];
  /** Session i authorized with an empty HMAC under an empty key (its response HMAC is empty too). */
  readonly emptyHmac: boolean[] = new Array<boolean>(MAX_SESSION_NUM).fill(false);
  /** The handle a command returns in the response handle area. */
  rHandle = 0;
  readonly scratch = new Uint8Array(128);
  readonly digestAt = new Int32Array(2 * HASH_IMPLS.length);

  constructor(config: EngineConfig) {
    this.random = config.random;
    this.clock = config.clock;
    this.manufacturer = config.manufacturer;
    this.vendor = config.vendor;
    this.firmware = config.firmware;
    this.daRetry = config.daRetry;
    this.persistence = new Commits(
      config.storage,
      () => {
        this.ps.clock = this.power === "off" ? this.ps.clock : this.clockNow();
        return encodeState(this.ps);
      },
      (blob) => {
        this.ps = decodeState(blob);
      },
    );
  }

  /** A new TPM's persistent state: fresh proof seed, empty auth values, no NV indices. */
  manufacture(): PersistentState {
    const proofSeed = new Uint8Array(32);
    this.random.fill(proofSeed, 0, 32);
    // the primary seeds come from proofSeed (KDFa with their own labels), so manufacturing
    // draws no more random bytes than before and a seeded TPM's later outputs stay the same
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
      storageSeed: deriveSeed(proofSeed, "SPS"),
      endorsementSeed: deriveSeed(proofSeed, "EPS"),
      platformSeed: deriveSeed(proofSeed, "PPS"),
      persistent: [],
    };
  }

  /** _TPM_Init (TPM 2.0 Part 1 §12.2): volatile state starts over, TPM2_Startup is next. */
  powerOn(ps: PersistentState): void {
    this.ps = ps;
    if (this.persistence.enabled) this.persistence.setBaseline(encodeState(ps));
    this.power = "needs-startup";
    this.powerOnAt = this.clock.now();
    this.clockAtPowerOn = ps.clock;
    this.sequences.clear();
    this.hmacSessions.clear();
    this.objects.clear();
    this.persistentCache.clear();
    this.savedSessions.clear();
    this.nullSeed = undefined;
    this.contextSecret = undefined;
    this.shutdownIssued = false;
    this.platformAuth = EMPTY;
    // a blocked lockoutAuth stays blocked across power cycles; its recovery time starts again
    this.lockoutUntil = ps.lockoutAuthDisabled ? ps.clock + daParameters(ps).lockoutRecovery * 1000 : 0;
    this.daAnchor = ps.clock;
  }

  /** TPMS_CLOCK_INFO.clock now: milliseconds the TPM has been powered in its life. */
  clockNow(): number {
    return this.clockAtPowerOn + Math.max(0, Math.floor(this.clock.now() - this.powerOnAt));
  }

  /** The persistent state changed: save it (group commit; execute() answers once it is stored). */
  markDirty(): void {
    this.persistence.markDirty();
  }

  /**
   * libtpms records "DA used" in its orderly state when it answers the DA RETRY: a preceding
   * Shutdown no longer counts (the next Startup is a TPM Reset, Clock not safe), and if power is
   * lost before the next Shutdown, that Startup counts one DA failure (swtpm 0.7.1, measured).
   */
  markDaUsed(): void {
    this.invalidateOrderly();
    if (!this.ps.daUsed) {
      this.ps.daUsed = true;
      this.markDirty();
    }
  }

  /** A preceding TPM2_Shutdown no longer counts: the next Startup is a TPM Reset. */
  invalidateOrderly(): void {
    this.shutdownIssued = false;
    if (this.ps.orderly !== "none" || this.ps.saved) {
      this.ps.orderly = "none";
      this.ps.saved = undefined;
      this.markDirty();
    }
  }

  /** The NV index with handle `h`, if defined. */
  nv(h: number): NvIndexState | undefined {
    for (const nv of this.ps.nv) if (nv.handle === h) return nv;
    return undefined;
  }

  /**
   * Applies lockout-interval recovery and tells whether DA-protected entities are locked out
   * (TPM 2.0 Part 1 §19.8.6).
   */
  inLockout(): boolean {
    const ps = this.ps;
    const da = daParameters(ps); // TPM2_DictionaryAttackParameters (Part 3 §25.3)
    // recoveryTime 0: no failure is counted, none is forgiven (reference code, DA.c)
    if (ps.failedTries > 0 && da.recoveryTime > 0) {
      const now = this.clockNow();
      const steps = Math.floor((now - this.daAnchor) / (da.recoveryTime * 1000));
      if (steps > 0) {
        ps.failedTries = Math.max(0, ps.failedTries - steps);
        this.daAnchor += steps * da.recoveryTime * 1000;
        this.markDirty();
      }
    }
    return ps.failedTries >= da.maxTries;
  }
}
