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
 * This file is the public face; the work happens in `engine/` (marshalling, dispatch,
 * authorization, state and persistence) and `commands/` (one file per TPM 2.0 Part 3 chapter).
 *
 * @packageDocumentation
 */
import { type Clock, systemClock } from "../core/clock.js";
import type { Storage } from "../core/storage.js";
import type { TpmBackend } from "../core/transport.js";
import { TpmArgumentError, TpmStateError, throwIfAborted } from "../errors/index.js";
import { errorResponse } from "../wire/bytes.js";
import { TPM_RC } from "../wire/constants.js";
import { COMMANDS } from "./commands/index.js";
import { execute } from "./engine/dispatch.js";
import { Engine, type PowerState } from "./engine/engine.js";
import { type RandomSource, SeededRandom, SystemRandom } from "./random.js";
import { type PersistentState, decodeState } from "./state.js";

export { SOFTTPM_MAX_BUFFER, SOFTTPM_MAX_COMMAND_SIZE, SOFTTPM_MAX_RANDOM } from "./engine/limits.js";

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
   * error paths in the layers above (the warnings a TSS resubmits, TPM 2.0 Part 2 §6.6; Linux
   * drivers/char/tpm/tpm-interface.c, tpm_transmit()).
   */
  onCommand?: (command: Uint8Array, locality: number) => number | Uint8Array | undefined;
  /**
   * Emulate libtpms' "DA state pending on NV": after every TPM2_Startup and every TPM2_Shutdown,
   * the first command that authorizes a DA-protected NV index answers TPM_RC_RETRY (0x922) once,
   * as swtpm 0.7.1 does (measured). Off by default; TSS stacks and the kernel retry it.
   */
  daRetryAfterStartup?: boolean;
}

// What SoftTpm.powerState reports: the engine's power state, documented there.
export type { PowerState as SoftTpmPowerState };

/**
 * A TPM 2.0 in TypeScript: a {@link TpmBackend} for device models (TIS, CRB, fTPM) and for the
 * memory transport.
 *
 * Commands run synchronously in {@link SoftTpm.executeSync}; {@link SoftTpm.execute} wraps it.
 * Malformed frames never throw: they get the 10-byte error response a real TPM gives (tag
 * 0x8001, size 10, the response code), TPM 2.0 Part 1 §18.
 *
 * Durability. NV state is kept in memory and, with a {@link Storage}, saved as one blob after
 * every command that changed it. A response from {@link SoftTpm.execute} (and so from the
 * `memory()` transport) to a command that changed NV state (NV_DefineSpace, NV_Write,
 * NV_Increment, HierarchyChangeAuth, Clear, Shutdown, a DA failure count, ...) is returned only
 * after a blob containing that change has been saved: as on a TPM, a success response means the
 * change is committed, and a crash or SIGKILL at any point loses nothing that was answered.
 * Commands that change nothing answer at once. Saves are group commits: one save runs at a time,
 * and every change made while it runs is stored by the next one, so concurrent commands share
 * saves. If a save fails, every command whose change it held (and any change made on top of it
 * meanwhile) gets TPM_RC_NV_UNAVAILABLE (0x923, TPM 2.0 Part 2 §6.6.3: the command needed to write NV
 * and NV was not accessible) instead of its response, and the in-memory
 * state returns to the last blob stored, so no later command sees a change that was refused; the
 * next change tries to save again, and {@link SoftTpm.flush} reports the error once.
 *
 * {@link SoftTpm.executeSync} cannot wait: it answers before the save, which runs in the
 * background (device models that need a synchronous answer); call {@link SoftTpm.flush} for a
 * durability point. Without a storage nothing is saved and nothing waits.
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
  readonly #onCommand: SoftTpmOptions["onCommand"];
  readonly #tpm: Engine;

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
    let random: RandomSource;
    if (options.random) random = options.random;
    else if (options.seed !== undefined) random = new SeededRandom(options.seed);
    else random = new SystemRandom();
    const manufacturer = packAscii(options.manufacturer ?? "TKIT", 4, "manufacturer")[0]!;
    const vendor = packAscii(options.vendorString ?? "tpmkit SoftTPM", 16, "vendorString");
    const fw = options.firmwareVersion ?? [0x00000001, 0];
    if (!Array.isArray(fw) || fw.length !== 2 || !fw.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) {
      throw new TpmArgumentError("SoftTpm: firmwareVersion must be two u32 values");
    }
    if (options.onCommand !== undefined && typeof options.onCommand !== "function") throw new TpmArgumentError("SoftTpm: onCommand must be a function");
    this.#onCommand = options.onCommand;
    this.#tpm = new Engine({
      storage: this.#storage,
      random,
      clock: options.clock ?? systemClock,
      manufacturer,
      vendor,
      firmware: [fw[0]!, fw[1]!],
      daRetry: options.daRetryAfterStartup === true,
    });
    if (!this.#storage) this.#tpm.powerOn(this.#tpm.manufacture());
  }

  /** Power state: "off" before {@link SoftTpm.start}, "needs-startup" until TPM2_Startup, then "running". */
  get powerState(): PowerState {
    return this.#tpm.power;
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
    const t = this.#tpm;
    if (t.power !== "off") return;
    let ps: PersistentState;
    if (this.#storage) {
      const blob = await this.#storage.load();
      ps = blob === undefined ? t.manufacture() : decodeState(blob);
      if (t.power !== "off") return;
    } else {
      ps = t.ps ?? t.manufacture();
    }
    t.powerOn(ps);
    if (this.#storage && t.ps === ps) {
      // a new TPM: write its first state so a restart finds the same proof seed
      t.markDirty();
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
    const t = this.#tpm;
    if (t.power === "off") return;
    t.ps.clock = t.clockNow();
    t.power = "off";
    t.sequences.clear();
    t.hmacSessions.clear();
    await this.flush();
  }

  /**
   * Resolves when every state change so far is saved to storage (changes made through
   * {@link SoftTpm.executeSync} or by {@link SoftTpm.start} included).
   *
   * @returns when durable
   * @throws TpmStateFileError (or the storage's error) if a save failed; the next change retries
   */
  flush(): Promise<void> {
    return this.#tpm.persistence.flush();
  }

  /** Commands run synchronously, so there is never one to cancel. */
  cancel(): void {}

  /**
   * Runs one command (the {@link TpmBackend} entry point). If the command changed NV state and
   * there is a storage, the response comes only once that change is saved (see the class
   * description); a failed save answers TPM_RC_NV_UNAVAILABLE (0x923) and undoes the change.
   *
   * @param command - the command bytes (TPM 2.0 Part 1 §18)
   * @param locality - 0–4
   * @param signal - checked once before the command runs (a command that ran is never
   *   abandoned while its save is in flight: its outcome is what the TPM did)
   * @returns the response bytes
   * @throws TpmAbortError if `signal` is already aborted
   * @throws TpmStateError if the TPM is powered off
   */
  async execute(command: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal);
    const p = this.#tpm.persistence;
    const before = p.seq;
    const rsp = this.executeSync(command, locality);
    if (p.seq === before) return rsp;
    return (await p.commit(p.seq)) ? rsp : errorResponse(TPM_RC.NV_UNAVAILABLE);
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
    if (this.#tpm.power === "off") throw new TpmStateError("SoftTpm is powered off: call start() first");
    if (this.#onCommand) {
      const f = this.#onCommand(command, locality);
      if (typeof f === "number") return errorResponse(f >>> 0);
      if (f instanceof Uint8Array) return f;
    }
    return execute(this.#tpm, COMMANDS, command, locality);
  }
}

/** Packs up to `max` printable ASCII characters into big-endian u32 words, NUL-padded (TPM_PT_VENDOR_STRING_n). */
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
