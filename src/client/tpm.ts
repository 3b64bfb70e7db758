/**
 * The typed TPM 2.0 client: {@link Tpm}. Commands are built from descriptors ({@link CommandSpec})
 * and run through a {@link Chip} over any transport.
 *
 * @packageDocumentation
 */
import {
  assertArray,
  assertAuth,
  assertBoolean,
  assertBytes,
  assertCallOptions,
  assertHandle,
  assertHashAlg,
  assertHierarchy,
  assertInteger,
  assertOneOf,
  assertOptions,
  assertPcrDigests,
  assertPcrIndex,
  assertPcrSelection,
  assertSignal,
  assertU64,
  describeValue,
} from "../core/assert.js";
import { Chip, type ChipOptions, type TransmitOptions } from "../core/chip.js";
import { TpmArgumentError, TpmFormatError, abortErrorFrom } from "../errors/index.js";
import type { Transport } from "../core/transport.js";
import { authBytes, buildCommand, hasSessionAuth, parseResponse, type CommandAuth, type CommandSpec } from "../wire/command.js";
import { AuthSession, runWithSessions, startSession, type SessionAuthorization, type StartAuthSessionOptions } from "./session.js";
import * as C from "../wire/commands.js";
import { TPM_ALG, TPM_CAP, TPM_CC, TPM_HT, TPM_PT, TPM_RC, TPM_RH, TPM_ST, TPM_SU, TPMA_NV } from "../wire/constants.js";
import { TpmReader, TpmWriter } from "../wire/buffer.js";
import {
  marshalPublic,
  objectName,
  readContext,
  readCreationData,
  readPublic,
  readPublic2b,
  readSignature,
  readTicket,
  writeContext,
  writePublic2b,
  writeScheme,
  writeSensitive2b,
  writeSensitiveCreate,
  writeSignature,
  writeTicket,
  type CreationData,
  type Scheme,
  type SensitiveCreate,
  type Ticket,
  type TpmsContext,
  type TpmtPublic,
  type TpmtSensitive,
  type TpmtSignature,
} from "../wire/structures.js";
import { hashById } from "./templates.js";
import { unmarshalAttest, type TpmsAttest } from "../wire/attest.js";
import { TpmResponseError } from "../wire/rc.js";
import { HASH_ALGS, HIERARCHIES, digestSize, hashName, writePcrSelection, type HashAlgName, type Hierarchy, type PcrSelect, type PcrSelection } from "../wire/types.js";

/**
 * Options every typed call accepts: cancellation, locality, a timeout override, and sessions
 * that only encrypt parameters or audit (Part 1 §18.6: they follow the authorizations).
 */
export interface CallOptions extends TransmitOptions {
  /** Extra sessions for parameter encryption or audit (not authorization); see {@link AuthSession}. */
  sessions?: readonly AuthSession[];
}

/**
 * How a handle is authorized: a password (TPM_RS_PW; a string is UTF-8), a session
 * ({@link AuthSession}, the entity's authValue empty), or a session with the entity's authValue
 * (`{ session, password }`: the HMAC key of an HMAC session, and of a policy session after
 * PolicyAuthValue; the value sent after PolicyPassword). Part 1 §19.6–§19.8.
 */
export type Authorization = Uint8Array | string | AuthSession | SessionAuthorization;

/** Options with the authorization of the authorized handle. */
export interface AuthCallOptions extends CallOptions {
  /** The authorizing entity's password (empty by default; a string is taken as UTF-8) or a session. */
  auth?: Authorization;
}

/** Options of {@link Tpm.open}. */
export interface TpmOpenOptions extends ChipOptions {
  /**
   * Send TPM2_Startup after the probe: `"clear"` (default, or `true`), `"state"`, or `false` to
   * leave the TPM as it is. TPM_RC_INITIALIZE (already started) counts as success.
   */
  startup?: boolean | "clear" | "state";
  /** Aborts the probe and start-up. */
  signal?: AbortSignal;
}

/** PCR values per bank: `{ sha256: { 0: Uint8Array, 1: ... } }`. */
export type PcrValues = Partial<Record<HashAlgName, Record<number, Uint8Array>>>;

/** Digests per bank for an extend: `{ sha256: Uint8Array }`. */
export type PcrDigests = Partial<Record<HashAlgName, Uint8Array>>;

/** What {@link Tpm.getInfo} reports (from TPM_PT fixed properties). */
export interface TpmInfo {
  family: string;
  level: number;
  revision: number;
  year: number;
  dayOfYear: number;
  manufacturer: string;
  manufacturerId: number;
  vendorString: string;
  firmwareVersion: [number, number];
  maxCommandSize: number | undefined;
  maxResponseSize: number | undefined;
  pcrCount: number | undefined;
}

/** Options of {@link Tpm.nvDefineSpace}. */
export interface NvDefineOptions extends AuthCallOptions {
  /** NV index handle, 0x01000000–0x01FFFFFF. */
  index: number;
  /** Data size in bytes (8 for counters and bit fields; the digest size for extend indices). */
  size: number;
  /** TPMA_NV bits. Default: OWNERWRITE | OWNERREAD | AUTHWRITE | AUTHREAD. */
  attributes?: number;
  /** Name algorithm. Default sha256. */
  nameAlg?: HashAlgName;
  /** The index's own password; a string is taken as UTF-8. */
  authValue?: Uint8Array | string;
  authPolicy?: Uint8Array;
  /** Hierarchy that authorizes the definition. Default owner. */
  hierarchy?: Hierarchy;
}

/** Options of NV data commands: who authorizes (the index itself by default, or a hierarchy). */
export interface NvAuthOptions extends AuthCallOptions {
  authHandle?: "index" | Hierarchy;
}

const DEFAULT_NV_ATTRIBUTES = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD;

/**
 * A TPM 2.0, through any transport.
 *
 * Every method checks its arguments before anything is sent and rejects (never throws
 * synchronously) with a {@link TpmArgumentError} titled with the method
 * (`tpm.getRandom: count must be an integer in 0–65535, got string "8"`). Data arguments are
 * bytes: a `Uint8Array` (a Node `Buffer` is one); strings are refused, not encoded, so
 * `tpm.hash("hello")` is an error rather than a hash of something else (encode text yourself:
 * `new TextEncoder().encode("hello")`). Passwords (`auth`, `authValue`, `newAuth`) are the one
 * exception: a string there is taken as UTF-8. Every `auth` may also be a session
 * ({@link Tpm.startAuthSession}): `auth: session` or `auth: { session, password }`.
 *
 * @example
 * ```ts
 * import { Tpm, SoftTpm, memory } from "tpmkit";
 * await using tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
 * const bytes = await tpm.getRandom(16);
 * await tpm.pcrExtend(16, { sha256: new Uint8Array(32) });
 * const { sha256 } = await tpm.pcrRead({ sha256: [16] });
 * ```
 */
export class Tpm {
  /** The chip that serializes and supervises this TPM's commands. */
  readonly chip: Chip;

  /** Wraps an open chip. Most callers want {@link Tpm.open}. */
  constructor(chip: Chip) {
    if (typeof (chip as Partial<Chip> | null)?.transmit !== "function") throw new TpmArgumentError(`new Tpm: chip must be a Chip (use Tpm.open for a transport), got ${describeValue(chip)}`);
    this.chip = chip;
  }

  /**
   * Probes the transport and (by default) sends TPM2_Startup(CLEAR).
   *
   * @param transport - any Transport (or an existing Chip)
   * @returns the open TPM
   * @throws TpmArgumentError for a transport that is not one or bad options, TpmNotFoundError when
   *   there is no TPM, ProbeDeferredError when a dependency is missing, TpmResponseError when
   *   Startup fails
   */
  static async open(transport: Transport | Chip, options: TpmOpenOptions = {}): Promise<Tpm> {
    const title = "Tpm.open";
    if (!(transport instanceof Chip) && (typeof transport !== "object" || transport === null || typeof (transport as Partial<Transport>).send !== "function")) {
      throw new TpmArgumentError(`${title}: transport must be a Transport (with send()) or a Chip, got ${describeValue(transport)}`);
    }
    assertOptions(options, title);
    assertSignal(options.signal, title, "options.signal");
    const su = options.startup ?? "clear";
    if (su !== true && su !== false && su !== "clear" && su !== "state") {
      throw new TpmArgumentError(`${title}: options.startup must be true, false, "clear" or "state", got ${describeValue(su)}`);
    }
    const chip = transport instanceof Chip ? transport : new Chip(transport, options);
    await chip.open({ signal: options.signal });
    const tpm = new Tpm(chip);
    if (su !== false) {
      try {
        await tpm.startup(su === "state" ? "state" : "clear", { signal: options.signal });
      } catch (e) {
        if (!(e instanceof TpmResponseError && e.base === TPM_RC.INITIALIZE)) {
          if (!(transport instanceof Chip)) await chip.close().catch(() => {});
          throw e;
        }
      }
    }
    return tpm;
  }

  /** Sends raw command bytes and returns the raw response, whatever its response code. */
  transmit(command: Uint8Array, options?: TransmitOptions): Promise<Uint8Array> {
    try {
      assertBytes(command, "tpm.transmit", "command");
      assertCallOptions(options, "tpm.transmit");
    } catch (e) {
      return Promise.reject(e);
    }
    return this.chip.transmit(command, options);
  }

  /**
   * Runs a command descriptor: builds it, transmits it, parses the response.
   * @throws TpmResponseError for a non-success response code
   */
  run<R>(spec: CommandSpec<R>, options?: CallOptions): Promise<R> {
    return this.#call("tpm.run", options, () => {
      if (typeof spec !== "object" || spec === null || typeof spec.cc !== "number" || typeof spec.response !== "function") {
        throw new TpmArgumentError(`tpm.run: spec must be a CommandSpec ({ cc, response }), got ${describeValue(spec)}`);
      }
      return spec;
    });
  }

  /**
   * The one path of every typed call: checks the options (titled), lets `make` check the
   * arguments and build the command, and reports any of that as a rejection, so nothing is sent
   * for a bad call.
   */
  #call<R>(title: string, options: CallOptions | undefined, make: () => CommandSpec<R>): Promise<R> {
    let spec: CommandSpec<R>;
    try {
      assertCallOptions(options, title);
      extraSessions(options, title);
      spec = make();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#exec(spec, options, title);
  }

  /** Runs a spec whose arguments were checked already (the inner steps of a multi-command call). */
  #send<R>(spec: CommandSpec<R>, options: CallOptions | undefined, title = "tpm.run"): Promise<R> {
    return this.#exec(spec, options, title);
  }

  /**
   * Sends a spec: with sessions (an authorization by a session, or `options.sessions`) through
   * the session machinery of {@link AuthSession} (Names, HMACs, parameter encryption, response
   * HMACs checked), else as password authorizations.
   */
  #exec<R>(spec: CommandSpec<R>, options: CallOptions | undefined, title: string): Promise<R> {
    let cmd: Uint8Array;
    try {
      const extra = extraSessions(options, title);
      if (extra.length > 0 || hasSessionAuth(spec)) return runWithSessions(this, spec, extra, transmitOnly(options), title);
      cmd = buildCommand(spec);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.chip.transmit(cmd, transmitOnly(options)).then((rsp) => parseResponse(spec, rsp));
  }

  /** TPM2_Startup. Part 3 §9.3. */
  startup(type: "clear" | "state" = "clear", options?: CallOptions): Promise<void> {
    return this.#call("tpm.startup", options, () => C.startupCmd(assertOneOf(type, "tpm.startup", "type", ["clear", "state"]) === "state" ? TPM_SU.STATE : TPM_SU.CLEAR));
  }
  /** TPM2_Shutdown. Part 3 §9.4. */
  shutdown(type: "clear" | "state" = "clear", options?: CallOptions): Promise<void> {
    return this.#call("tpm.shutdown", options, () => C.shutdownCmd(assertOneOf(type, "tpm.shutdown", "type", ["clear", "state"]) === "state" ? TPM_SU.STATE : TPM_SU.CLEAR));
  }
  /** TPM2_SelfTest. Part 3 §10.2. */
  selfTest(full = false, options?: CallOptions): Promise<void> {
    return this.#call("tpm.selfTest", options, () => C.selfTestCmd(assertBoolean(full, "tpm.selfTest", "full")));
  }
  /** TPM2_IncrementalSelfTest; returns the algorithms still to be tested. Part 3 §10.3. */
  incrementalSelfTest(algs: readonly number[], options?: CallOptions): Promise<number[]> {
    const title = "tpm.incrementalSelfTest";
    return this.#call(title, options, () => C.incrementalSelfTestCmd(assertArray(algs, title, "algs", (a, n) => assertInteger(a, title, n, 0, 0xffff))));
  }
  /** TPM2_GetTestResult. Part 3 §10.4. */
  getTestResult(options?: CallOptions): Promise<{ outData: Uint8Array; testResult: number }> {
    return this.#call("tpm.getTestResult", options, () => C.getTestResultCmd());
  }

  /**
   * `count` random bytes from the TPM (TPM2_GetRandom, Part 3 §16.1), asking again while the TPM
   * returns fewer than asked (it returns at most its largest digest size per call).
   */
  getRandom(count: number, options?: CallOptions): Promise<Uint8Array> {
    return this.#call("tpm.getRandom", options, () => C.getRandomCmd(assertInteger(count, "tpm.getRandom", "count", 0, 0xffff))).then((first) =>
      first.length >= count ? (first.length === count ? first : first.subarray(0, count)) : this.#moreRandom(first, count, options),
    );
  }

  async #moreRandom(first: Uint8Array, count: number, options?: CallOptions): Promise<Uint8Array> {
    const out = new Uint8Array(count);
    out.set(first);
    let have = first.length;
    while (have < count) {
      const part = await this.#send(C.getRandomCmd(count - have), options);
      if (part.length === 0) throw new TpmFormatError("GetRandom returned no bytes");
      const n = Math.min(part.length, count - have);
      out.set(part.subarray(0, n), have);
      have += n;
    }
    return out;
  }
  /** TPM2_StirRandom. Part 3 §16.2. */
  stirRandom(data: Uint8Array, options?: CallOptions): Promise<void> {
    return this.#call("tpm.stirRandom", options, () => C.stirRandomCmd(assertBytes(data, "tpm.stirRandom", "data")));
  }

  /** TPM2_GetCapability, one call. Part 3 §30.2. */
  getCapability(capability: number, property: number, count: number, options?: CallOptions): Promise<{ moreData: boolean; data: C.CapabilityData }> {
    const title = "tpm.getCapability";
    return this.#call(title, options, () =>
      C.getCapabilityCmd(assertInteger(capability, title, "capability", 0, 0xffffffff), assertInteger(property, title, "property", 0, 0xffffffff), assertInteger(count, title, "count", 0, 0xffffffff)),
    );
  }

  /** Every TPM_PT property from `first` up to the end of its group (fixed 0x100.., variable 0x200..). */
  async getProperties(group: "fixed" | "variable" = "fixed", options?: CallOptions): Promise<Map<number, number>> {
    const title = "tpm.getProperties";
    const start = assertOneOf(group, title, "group", ["fixed", "variable"]) === "fixed" ? TPM_PT.FIXED : TPM_PT.VAR;
    assertCallOptions(options, title);
    const out = new Map<number, number>();
    let next = start;
    for (let guard = 0; guard < 64; guard++) {
      const { moreData, data } = await this.#send(C.getCapabilityCmd(TPM_CAP.TPM_PROPERTIES, next, 256), options);
      if (data.capability !== TPM_CAP.TPM_PROPERTIES) throw new TpmFormatError("GetCapability answered another capability");
      let last = next - 1;
      for (const p of data.properties) {
        if (p.property < start || p.property >= start + 0x100) return out;
        out.set(p.property, p.value);
        last = p.property;
      }
      if (!moreData || data.properties.length === 0) return out;
      next = last + 1;
    }
    return out;
  }

  /** One TPM_PT property, or undefined when the TPM does not report it. */
  async getProperty(property: number, options?: CallOptions): Promise<number | undefined> {
    const { data } = await this.#call("tpm.getProperty", options, () => C.getCapabilityCmd(TPM_CAP.TPM_PROPERTIES, assertInteger(property, "tpm.getProperty", "property", 0, 0xffffffff), 1));
    if (data.capability !== TPM_CAP.TPM_PROPERTIES) return undefined;
    const p = data.properties[0];
    return p && p.property === property ? p.value : undefined;
  }

  /** The algorithms the TPM implements, with their TPMA_ALGORITHM bits. */
  async getAlgorithms(options?: CallOptions): Promise<{ alg: number; attributes: number }[]> {
    assertCallOptions(options, "tpm.getAlgorithms");
    return this.#collect(TPM_CAP.ALGS, 0, (d) => (d.capability === TPM_CAP.ALGS ? d.algorithms : []), (x) => x.alg, options);
  }
  /** The commands the TPM implements (TPMA_CC; the low 16 bits are the command index). */
  async getCommands(options?: CallOptions): Promise<{ commandIndex: number; attributes: number }[]> {
    assertCallOptions(options, "tpm.getCommands");
    return this.#collect(TPM_CAP.COMMANDS, 0, (d) => (d.capability === TPM_CAP.COMMANDS ? d.commands : []), (x) => x.commandIndex, options);
  }
  /**
   * Handles of one type in use, from TPM_CAP_HANDLES (Part 3 §30.2): `type` is a TPM_HT (Part 2
   * §7.2), e.g. `TPM_HT.PERSISTENT`; default `TPM_HT.NV_INDEX`. A type the TPM does not list is
   * its TPM_RC_HANDLE (swtpm 0.7.1 answers so for 0x90 and above).
   */
  async getHandles(type: number = TPM_HT.NV_INDEX, options?: CallOptions): Promise<number[]> {
    const title = "tpm.getHandles";
    const ht = assertInteger(type, title, "type", 0, 0xff);
    assertCallOptions(options, title);
    const base = (ht << 24) >>> 0; // TPM_HT_TRANSIENT << 24 is negative as an int32
    const all = await this.#collect(TPM_CAP.HANDLES, base, (d) => (d.capability === TPM_CAP.HANDLES ? d.handles : []), (x) => x, options);
    return all.filter((h) => h >>> 24 === ht);
  }
  /** The PCR banks allocated and their PCRs (TPM_CAP_PCRS). */
  async getPcrBanks(options?: CallOptions): Promise<PcrSelect[]> {
    const { data } = await this.#call("tpm.getPcrBanks", options, () => C.getCapabilityCmd(TPM_CAP.PCRS, 0, 1));
    return data.capability === TPM_CAP.PCRS ? data.pcrs : [];
  }

  async #collect<T>(cap: number, first: number, pick: (d: C.CapabilityData) => T[], key: (x: T) => number, options?: CallOptions): Promise<T[]> {
    const out: T[] = [];
    let next = first;
    for (let guard = 0; guard < 256; guard++) {
      const { moreData, data } = await this.#send(C.getCapabilityCmd(cap, next, 256), options);
      const items = pick(data);
      out.push(...items);
      if (!moreData || items.length === 0) break;
      next = (key(items[items.length - 1]!) + 1) >>> 0;
    }
    return out;
  }

  /** Manufacturer, version and sizes from the fixed properties. */
  async getInfo(options?: CallOptions): Promise<TpmInfo> {
    assertCallOptions(options, "tpm.getInfo");
    const p = await this.getProperties("fixed", options);
    const g = (pt: number) => p.get(pt) ?? 0;
    const vendor = [TPM_PT.VENDOR_STRING_1, TPM_PT.VENDOR_STRING_2, TPM_PT.VENDOR_STRING_3, TPM_PT.VENDOR_STRING_4].map((pt) => u32Ascii(g(pt))).join("");
    return {
      family: u32Ascii(g(TPM_PT.FAMILY_INDICATOR)),
      level: g(TPM_PT.LEVEL),
      revision: g(TPM_PT.REVISION) / 100,
      year: g(TPM_PT.YEAR),
      dayOfYear: g(TPM_PT.DAY_OF_YEAR),
      manufacturer: u32Ascii(g(TPM_PT.MANUFACTURER)),
      manufacturerId: g(TPM_PT.MANUFACTURER),
      vendorString: vendor,
      firmwareVersion: [g(TPM_PT.FIRMWARE_VERSION_1), g(TPM_PT.FIRMWARE_VERSION_2)],
      maxCommandSize: p.get(TPM_PT.MAX_COMMAND_SIZE),
      maxResponseSize: p.get(TPM_PT.MAX_RESPONSE_SIZE),
      pcrCount: p.get(TPM_PT.PCR_COUNT),
    };
  }

  /**
   * Reads PCRs (TPM2_PCR_Read, Part 3 §22.4), asking again for what the TPM left out (it returns
   * at most 8 digests per call). The selection names at least one PCR (an empty selection, a
   * bank given as a number, or an array instead of banks is a TpmArgumentError); repeats are read
   * once.
   *
   * @example
   * ```ts
   * const { sha256 } = await tpm.pcrRead({ sha256: [0, 1, 2] });
   * ```
   */
  async pcrRead(selection: PcrSelection, options?: CallOptions): Promise<PcrValues> {
    const title = "tpm.pcrRead";
    let want = assertPcrSelection(selection, title);
    assertCallOptions(options, title);
    const out: PcrValues = {};
    let left = 0;
    for (const s of want) {
      out[hashName(s.hash) as HashAlgName] ??= {};
      left += s.pcrs.length;
    }
    for (let guard = 0; want.length > 0; guard++) {
      if (guard > 64) throw new TpmFormatError("PCR_Read made no progress");
      const r = await this.#send(C.pcrReadCmd(want), options);
      let i = 0;
      for (const s of r.selection) {
        const bank = out[hashName(s.hash) as HashAlgName];
        for (const p of s.pcrs) {
          const d = r.digests[i++];
          if (!d) throw new TpmFormatError("PCR_Read returned fewer digests than selected PCRs");
          if (bank) bank[p] = d;
        }
      }
      if (i !== r.digests.length) throw new TpmFormatError("PCR_Read returned more digests than selected PCRs");
      if (i === 0) break; // the TPM does not have what is left (unallocated bank or PCR)
      left -= i;
      if (left <= 0) break;
      // Ask again for what the TPM left out (at most 8 digests per response).
      want = want.map((s) => {
        const bank = out[hashName(s.hash) as HashAlgName];
        return { hash: s.hash, pcrs: s.pcrs.filter((p) => bank?.[p] === undefined) };
      }).filter((s) => s.pcrs.length > 0);
    }
    return out;
  }

  /**
   * TPM2_PCR_Extend (Part 3 §22.2): extends each bank given. `digests` gives at least one bank,
   * each digest of its hash's size (`{}` is a TpmArgumentError, not a no-op). `pcr` is 0–31, or
   * TPM_RH_NULL, which the TPM accepts and extends nothing.
   */
  pcrExtend(pcr: number, digests: PcrDigests, options?: AuthCallOptions): Promise<void> {
    const title = "tpm.pcrExtend";
    return this.#call(title, options, () => {
      const index = assertPcrIndex(pcr, title, "pcr", true);
      const list = assertPcrDigests(digests, title);
      return C.pcrExtendCmd(index, list, authArg(options?.auth, title, "options.auth"));
    });
  }
  /**
   * TPM2_PCR_Event (Part 3 §22.3): the TPM hashes `data` (bytes) with every bank's hash and
   * extends `pcr` (nothing for TPM_RH_NULL); returns the digests.
   */
  async pcrEvent(pcr: number, data: Uint8Array, options?: AuthCallOptions): Promise<PcrDigests> {
    const title = "tpm.pcrEvent";
    const r = await this.#call(title, options, () => C.pcrEventCmd(assertPcrIndex(pcr, title, "pcr", true), assertBytes(data, title, "data"), authArg(options?.auth, title, "options.auth")));
    return byBank(r);
  }
  /** TPM2_PCR_Reset. Part 3 §22.8. */
  pcrReset(pcr: number, options?: AuthCallOptions): Promise<void> {
    const title = "tpm.pcrReset";
    return this.#call(title, options, () => C.pcrResetCmd(assertPcrIndex(pcr, title), authArg(options?.auth, title, "options.auth")));
  }

  /** TPM2_Hash (Part 3 §15.4) of `data` (bytes), up to the TPM's input buffer (1024 bytes typically). */
  hash(data: Uint8Array, alg: HashAlgName = "sha256", hierarchy: Hierarchy = "null", options?: CallOptions): Promise<C.HashResult> {
    const title = "tpm.hash";
    return this.#call(title, options, () => C.hashCmd(assertBytes(data, title, "data"), HASH_ALGS[assertHashAlg(alg, title)].id, assertHierarchy(hierarchy, title)));
  }
  /** TPM2_HashSequenceStart; returns the sequence handle. `"null"` starts an event sequence. Part 3 §17.3. */
  hashSequenceStart(alg: HashAlgName | "null" = "sha256", auth?: Uint8Array | string, options?: CallOptions): Promise<number> {
    const title = "tpm.hashSequenceStart";
    return this.#call(title, options, () => C.hashSequenceStartCmd(sequenceAlg(alg, title), assertAuth(auth, title, "auth")));
  }
  /** TPM2_SequenceUpdate. Part 3 §17.4. */
  sequenceUpdate(handle: number, data: Uint8Array, options?: AuthCallOptions): Promise<void> {
    const title = "tpm.sequenceUpdate";
    return this.#call(title, options, () => C.sequenceUpdateCmd(sequenceHandle(handle, title), assertBytes(data, title, "data"), authArg(options?.auth, title, "options.auth")));
  }
  /** TPM2_SequenceComplete. Part 3 §17.5. */
  sequenceComplete(handle: number, data: Uint8Array = new Uint8Array(0), hierarchy: Hierarchy = "null", options?: AuthCallOptions): Promise<C.HashResult> {
    const title = "tpm.sequenceComplete";
    return this.#call(title, options, () =>
      C.sequenceCompleteCmd(sequenceHandle(handle, title), assertBytes(data, title, "data"), assertHierarchy(hierarchy, title), authArg(options?.auth, title, "options.auth")),
    );
  }
  /** TPM2_EventSequenceComplete: finishes an event sequence and extends `pcr`. Part 3 §17.6. */
  async eventSequenceComplete(pcr: number, handle: number, data: Uint8Array = new Uint8Array(0), options?: AuthCallOptions & { sequenceAuth?: Authorization }): Promise<PcrDigests> {
    const title = "tpm.eventSequenceComplete";
    const r = await this.#call(title, options, () =>
      C.eventSequenceCompleteCmd(
        assertPcrIndex(pcr, title, "pcr", true),
        sequenceHandle(handle, title),
        assertBytes(data, title, "data"),
        authArg(options?.auth, title, "options.auth"),
        authArg(options?.sequenceAuth, title, "options.sequenceAuth"),
      ),
    );
    return byBank(r);
  }
  /**
   * Hashes `data` (bytes) of any length on the TPM: TPM2_Hash when it fits one buffer, else a
   * hash sequence in 1024-byte steps. When a step fails (a TPM error, a timeout, an abort) the
   * sequence is flushed (TPM2_FlushContext) before the error is passed on, so failures do not
   * use up the TPM's sequence slots. HashSequenceStart itself is sent without the caller's
   * signal, so the handle of a sequence the TPM created is never lost to an abort (a start that
   * times out is the one case where the handle never arrives and cannot be flushed).
   */
  async digest(data: Uint8Array, alg: HashAlgName = "sha256", options?: CallOptions): Promise<Uint8Array> {
    const title = "tpm.digest";
    assertBytes(data, title, "data");
    const id = HASH_ALGS[assertHashAlg(alg, title)].id;
    assertCallOptions(options, title);
    const step = 1024;
    if (data.length <= step) return (await this.#send(C.hashCmd(data, id, TPM_RH.NULL), options)).digest;
    const signal = options?.signal;
    if (signal?.aborted) throw abortErrorFrom(signal);
    const unsignalled: CallOptions = { ...options };
    delete unsignalled.signal;
    const h = await this.#send(C.hashSequenceStartCmd(id, undefined), unsignalled);
    try {
      if (signal?.aborted) throw abortErrorFrom(signal);
      let off = 0;
      while (data.length - off > step) {
        await this.#send(C.sequenceUpdateCmd(h, data.subarray(off, off + step)), options);
        off += step;
      }
      return (await this.#send(C.sequenceCompleteCmd(h, data.subarray(off), TPM_RH.NULL), options)).digest;
    } catch (e) {
      // Best effort: the sequence may be gone already (SequenceComplete ran before an abort
      // landed: TPM_RC_HANDLE) or the chip may be unusable; the caller gets the first error.
      await this.#send(C.flushContextCmd(h), unsignalled).catch(() => {});
      throw e;
    }
  }

  /** TPM2_FlushContext (Part 3 §28.4): removes a transient object, sequence or session from the TPM. */
  flushContext(handle: number, options?: CallOptions): Promise<void> {
    return this.#call("tpm.flushContext", options, () => C.flushContextCmd(assertHandle(handle, "tpm.flushContext", "handle")));
  }

  /** TPM2_ReadClock. Part 3 §29.1. */
  readClock(options?: CallOptions): Promise<C.TimeInfo> {
    return this.#call("tpm.readClock", options, () => C.readClockCmd());
  }

  /** TPM2_Clear (Part 3 §24.6), authorized by lockout (default) or platform. */
  clear(options: AuthCallOptions & { hierarchy?: "lockout" | "platform" } = {}): Promise<void> {
    const title = "tpm.clear";
    return this.#call(title, options, () => C.clearCmd(assertHierarchy(options.hierarchy ?? "lockout", title, "options.hierarchy", ["lockout", "platform"]), authArg(options.auth, title, "options.auth")));
  }
  /** TPM2_ClearControl (Part 3 §24.7): `disable` true blocks TPM2_Clear. */
  clearControl(disable: boolean, options: AuthCallOptions & { hierarchy?: "lockout" | "platform" } = {}): Promise<void> {
    const title = "tpm.clearControl";
    return this.#call(title, options, () =>
      C.clearControlCmd(assertHierarchy(options.hierarchy ?? "lockout", title, "options.hierarchy", ["lockout", "platform"]), assertBoolean(disable, title, "disable"), authArg(options.auth, title, "options.auth")),
    );
  }
  /** TPM2_HierarchyChangeAuth (Part 3 §24.8); a string `newAuth` is UTF-8. */
  hierarchyChangeAuth(hierarchy: Hierarchy, newAuth: Uint8Array | string, options?: AuthCallOptions): Promise<void> {
    const title = "tpm.hierarchyChangeAuth";
    return this.#call(title, options, () => {
      const h = assertHierarchy(hierarchy, title);
      if (newAuth === undefined) throw new TpmArgumentError(`${title}: newAuth must be a Uint8Array or a string (UTF-8), got undefined`);
      const na = assertAuth(newAuth, title, "newAuth")!;
      // the response HMAC is keyed with the new authValue (Part 3 §24.8: the TPM changes it first)
      return C.hierarchyChangeAuthCmd(h, na, withResponseAuth(authArg(options?.auth, title, "options.auth"), na));
    });
  }

  /** TPM2_NV_DefineSpace. Part 3 §31.3. */
  nvDefineSpace(o: NvDefineOptions): Promise<void> {
    const title = "tpm.nvDefineSpace";
    return this.#call(title, o, () => {
      if (o === undefined) throw new TpmArgumentError(`${title}: options must be an object, got undefined`);
      const pub: C.NvPublic = {
        nvIndex: nvIndex(o.index, title, "index"),
        nameAlg: HASH_ALGS[assertHashAlg(o.nameAlg ?? "sha256", title, "nameAlg")].id,
        attributes: assertInteger(o.attributes ?? DEFAULT_NV_ATTRIBUTES, title, "attributes", 0, 0xffffffff),
        authPolicy: assertBytes(o.authPolicy ?? new Uint8Array(0), title, "authPolicy"),
        dataSize: assertInteger(o.size, title, "size", 0, 0xffff),
      };
      return C.nvDefineSpaceCmd(assertHierarchy(o.hierarchy ?? "owner", title), assertAuth(o.authValue, title, "authValue"), pub, authArg(o.auth, title, "auth"));
    });
  }
  /** TPM2_NV_UndefineSpace. Part 3 §31.4. */
  nvUndefineSpace(index: number, options: AuthCallOptions & { hierarchy?: Hierarchy } = {}): Promise<void> {
    const title = "tpm.nvUndefineSpace";
    return this.#call(title, options, () =>
      C.nvUndefineSpaceCmd(assertHierarchy(options.hierarchy ?? "owner", title, "options.hierarchy"), nvIndex(index, title), authArg(options.auth, title, "options.auth")),
    );
  }
  /** TPM2_NV_ReadPublic. Part 3 §31.6. */
  nvReadPublic(index: number, options?: CallOptions): Promise<{ nvPublic: C.NvPublic; name: Uint8Array }> {
    return this.#call("tpm.nvReadPublic", options, () => C.nvReadPublicCmd(nvIndex(index, "tpm.nvReadPublic")));
  }
  /** TPM2_NV_Write (Part 3 §31.7) of `data` (bytes) at `offset`, split into 1024-byte writes. */
  async nvWrite(index: number, data: Uint8Array, options: NvAuthOptions & { offset?: number } = {}): Promise<void> {
    const title = "tpm.nvWrite";
    const { ah, auth } = nvAuth(index, options, title);
    assertBytes(data, title, "data");
    const offset = assertInteger(options.offset ?? 0, title, "options.offset", 0, 0xffff);
    if (offset + data.length > 0x10000) throw new TpmArgumentError(`${title}: options.offset + data.length must be at most 65536, got ${offset + data.length}`);
    const step = 1024;
    let off = 0;
    do {
      const chunk = data.subarray(off, off + step);
      await this.#send(C.nvWriteCmd(ah, index, chunk, offset + off, auth), options);
      off += chunk.length;
    } while (off < data.length);
  }
  /** TPM2_NV_Read (Part 3 §31.13); reads the whole index when `size` is not given. */
  async nvRead(index: number, options: NvAuthOptions & { size?: number; offset?: number } = {}): Promise<Uint8Array> {
    const title = "tpm.nvRead";
    const { ah, auth } = nvAuth(index, options, title);
    const offset = assertInteger(options.offset ?? 0, title, "options.offset", 0, 0xffff);
    if (options.size !== undefined) assertInteger(options.size, title, "options.size", 0, 0xffff);
    const size = options.size ?? (await this.#send(C.nvReadPublicCmd(index), options)).nvPublic.dataSize - offset;
    if (size < 0) throw new TpmArgumentError(`${title}: options.offset ${offset} is past the end of the index`);
    const out = new Uint8Array(size);
    const step = 1024;
    for (let off = 0; off < size; ) {
      const n = Math.min(step, size - off);
      const part = await this.#send(C.nvReadCmd(ah, index, n, offset + off, auth), options);
      if (part.length !== n) throw new TpmFormatError(`NV_Read returned ${part.length} bytes, asked ${n}`);
      out.set(part, off);
      off += n;
    }
    return out;
  }
  /** TPM2_NV_Increment (counter indices). Part 3 §31.8. */
  nvIncrement(index: number, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvIncrement";
    return this.#call(title, options, () => {
      const { ah, auth } = nvAuth(index, options, title);
      return C.nvIncrementCmd(ah, index, auth);
    });
  }
  /** TPM2_NV_Extend (extend indices) with `data` (bytes). Part 3 §31.9. */
  nvExtend(index: number, data: Uint8Array, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvExtend";
    return this.#call(title, options, () => {
      const { ah, auth } = nvAuth(index, options, title);
      return C.nvExtendCmd(ah, index, assertBytes(data, title, "data"), auth);
    });
  }
  /** TPM2_NV_SetBits (bit-field indices); `bits` is a bigint (UINT64). Part 3 §31.10. */
  nvSetBits(index: number, bits: bigint, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvSetBits";
    return this.#call(title, options, () => {
      const { ah, auth } = nvAuth(index, options, title);
      return C.nvSetBitsCmd(ah, index, assertU64(bits, title, "bits"), auth);
    });
  }
  /** TPM2_NV_ReadLock. Part 3 §31.14. */
  nvReadLock(index: number, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvReadLock";
    return this.#call(title, options, () => {
      const { ah, auth } = nvAuth(index, options, title);
      return C.nvReadLockCmd(ah, index, auth);
    });
  }
  /** TPM2_NV_WriteLock. Part 3 §31.11. */
  nvWriteLock(index: number, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvWriteLock";
    return this.#call(title, options, () => {
      const { ah, auth } = nvAuth(index, options, title);
      return C.nvWriteLockCmd(ah, index, auth);
    });
  }
  /** Reads a counter index as a bigint. */
  async nvReadCounter(index: number, options: NvAuthOptions = {}): Promise<bigint> {
    nvAuth(index, options, "tpm.nvReadCounter");
    const b = await this.nvRead(index, { ...options, size: 8, offset: 0 });
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
  }

  // ------------------------------------------------------------------ objects (Part 3 §12, §24, §28)

  /**
   * TPM2_CreatePrimary (Part 3 §24.1): a primary object from `template` in `hierarchy` (owner by
   * default; `options.auth` is the hierarchy's password). Checks the response against the request:
   * the handle is transient, the public area is the template's (all but `unique`), the Name is
   * nameAlg ‖ H(public) and creationHash is H_nameAlg(creationData).
   */
  createPrimary(template: TpmtPublic, options: CreateOptions & { hierarchy?: Hierarchy } = {}): Promise<CreatePrimaryResult> {
    const title = "tpm.createPrimary";
    let tpl: TpmtPublic;
    return this.#call(title, options, () => {
      assertOptions(options, title);
      tpl = checkTemplate(template, title);
      const h = assertHierarchy(options.hierarchy ?? "owner", title, "options.hierarchy");
      const inParams = creationParams(options, title);
      return {
        cc: TPM_CC.CreatePrimary,
        handles: [h],
        auths: [authArg(options.auth, title, "options.auth")],
        params: (w) => writeCreateParams(w, inParams, tpl),
        responseHandles: 1,
        response: (r, [handle]) => {
          expectTransient(title, handle!);
          const pub = readPublic2b(r);
          const c = readCreationOut(r, title, pub);
          const name = r.tpm2b("name", NAME_MAX).slice();
          expectShape(title, tpl, pub);
          expectName(title, pub, name);
          return { handle: handle!, public: pub, name, ...c };
        },
      };
    });
  }

  /**
   * TPM2_Create (Part 3 §12.1): an ordinary object under the loaded parent `parent` (its password
   * in `options.auth`); returns the private blob to {@link Tpm.load} later and the public area,
   * checked against the template (all but `unique`), with creationHash = H_nameAlg(creationData).
   */
  create(parent: number, template: TpmtPublic, options: CreateOptions = {}): Promise<CreateResult> {
    const title = "tpm.create";
    let tpl: TpmtPublic;
    return this.#call(title, options, () => {
      assertOptions(options, title);
      const ph = assertHandle(parent, title, "parent");
      tpl = checkTemplate(template, title);
      const inParams = creationParams(options, title);
      return {
        cc: TPM_CC.Create,
        handles: [ph],
        auths: [authArg(options.auth, title, "options.auth")],
        params: (w) => writeCreateParams(w, inParams, tpl),
        response: (r) => {
          const priv = readPrivate(r, title);
          const pub = readPublic2b(r);
          const c = readCreationOut(r, title, pub);
          expectShape(title, tpl, pub);
          return { private: priv, public: pub, ...c };
        },
      };
    });
  }

  /**
   * TPM2_Load (Part 3 §12.2): loads a private/public pair from {@link Tpm.create} under `parent`
   * (its password in `options.auth`). The handle must be transient and the Name the TPM returns
   * must be nameAlg ‖ H(`pub`).
   */
  load(parent: number, priv: Uint8Array, pub: TpmtPublic, options: AuthCallOptions = {}): Promise<LoadedObject> {
    const title = "tpm.load";
    return this.#call(title, options, () => {
      const ph = assertHandle(parent, title, "parent");
      const p = assertBytes(priv, title, "priv", 1, 0xffff);
      const pb = checkTemplate(pub, title, "pub");
      return {
        cc: TPM_CC.Load,
        handles: [ph],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(p);
          writePublic2b(w, pb);
        },
        responseHandles: 1,
        response: (r, [handle]) => {
          expectTransient(title, handle!);
          const name = r.tpm2b("name", NAME_MAX).slice();
          expectName(title, pb, name);
          return { handle: handle!, name };
        },
      };
    });
  }

  /**
   * TPM2_CreateLoaded (Part 3 §12.9): creates an ordinary object under `parent` (or a primary when
   * `parent` is a hierarchy handle) and loads it at once. Checks: transient handle, public area as
   * the template (all but `unique`), Name = nameAlg ‖ H(public).
   */
  createLoaded(parent: number | Hierarchy, template: TpmtPublic, options: CreateOptions = {}): Promise<CreateLoadedResult> {
    const title = "tpm.createLoaded";
    let tpl: TpmtPublic;
    return this.#call(title, options, () => {
      assertOptions(options, title);
      const ph = typeof parent === "string" ? assertHierarchy(parent, title, "parent") : assertHandle(parent, title, "parent");
      tpl = checkTemplate(template, title);
      const inParams = creationParams(options, title);
      if (inParams.pcrs.length || inParams.outsideInfo.length) throw new TpmArgumentError(`${title}: options.creationPcrs and options.outsideInfo are not parameters of TPM2_CreateLoaded`);
      return {
        cc: TPM_CC.CreateLoaded,
        handles: [ph],
        auths: [authArg(options.auth, title, "options.auth")],
        params: (w) => {
          writeSensitiveCreate(w, inParams.sensitive);
          w.tpm2b(marshalPublic(tpl)); // TPM2B_TEMPLATE, Part 2 §12.2.6
        },
        responseHandles: 1,
        response: (r, [handle]) => {
          expectTransient(title, handle!);
          const priv = readPrivate(r, title);
          const pub = readPublic2b(r);
          const name = r.tpm2b("name", NAME_MAX).slice();
          expectShape(title, tpl, pub);
          expectName(title, pub, name);
          return { handle: handle!, private: priv, public: pub, name };
        },
      };
    });
  }

  /**
   * TPM2_LoadExternal (Part 3 §12.3): loads a public key (and, with `options.sensitive`, its
   * private part) into `options.hierarchy` (null by default, the only one allowed with a
   * sensitive part). No authorization. Checks the transient handle and Name = nameAlg ‖ H(pub).
   */
  loadExternal(pub: TpmtPublic, options: CallOptions & { hierarchy?: Hierarchy; sensitive?: TpmtSensitive } = {}): Promise<LoadedObject> {
    const title = "tpm.loadExternal";
    return this.#call(title, options, () => {
      assertOptions(options, title);
      const pb = checkTemplate(pub, title, "pub");
      const h = assertHierarchy(options.hierarchy ?? "null", title, "options.hierarchy");
      const s = options.sensitive;
      if (s !== undefined && (typeof s !== "object" || s === null)) throw new TpmArgumentError(`${title}: options.sensitive must be a TPMT_SENSITIVE, got ${describeValue(s)}`);
      return {
        cc: TPM_CC.LoadExternal,
        params: (w) => {
          if (s) writeSensitive2b(w, s);
          else w.u16(0);
          writePublic2b(w, pb);
          w.u32(h);
        },
        responseHandles: 1,
        response: (r, [handle]) => {
          expectTransient(title, handle!);
          const name = r.tpm2b("name", NAME_MAX).slice();
          expectName(title, pb, name);
          return { handle: handle!, name };
        },
      };
    });
  }

  /** TPM2_ReadPublic (Part 3 §12.4): the public area, Name (checked = nameAlg ‖ H(public)) and qualified name of a loaded object. */
  readPublic(handle: number, options?: CallOptions): Promise<{ public: TpmtPublic; name: Uint8Array; qualifiedName: Uint8Array }> {
    const title = "tpm.readPublic";
    return this.#call(title, options, () => {
      const h = assertHandle(handle, title, "handle");
      return {
        cc: TPM_CC.ReadPublic,
        handles: [h],
        response: (r) => {
          const pub = readPublic2b(r);
          const name = r.tpm2b("name", NAME_MAX).slice();
          const qualifiedName = r.tpm2b("qualifiedName", NAME_MAX).slice();
          expectName(title, pub, name);
          return { public: pub, name, qualifiedName };
        },
      };
    });
  }

  /** TPM2_ContextSave (Part 3 §28.2): the saved context of a loaded object, sequence or session. */
  contextSave(handle: number, options?: CallOptions): Promise<TpmsContext> {
    const title = "tpm.contextSave";
    return this.#call(title, options, () => ({
      cc: TPM_CC.ContextSave,
      handles: [assertHandle(handle, title, "handle")],
      response: (r) => {
        const c = readContext(r);
        if (c.contextBlob.length === 0) throw new TpmFormatError(`${title}: the TPM returned an empty context blob`);
        return c;
      },
    }));
  }

  /**
   * TPM2_ContextLoad (Part 3 §28.3): loads a saved context; returns its new handle (a transient
   * handle for an object, the same session handle for a session, both checked).
   */
  contextLoad(context: TpmsContext, options?: CallOptions): Promise<number> {
    const title = "tpm.contextLoad";
    return this.#call(title, options, () => {
      if (typeof context !== "object" || context === null || typeof context.sequence !== "bigint" || !(context.contextBlob instanceof Uint8Array)) {
        throw new TpmArgumentError(`${title}: context must be a TPMS_CONTEXT from tpm.contextSave, got ${describeValue(context)}`);
      }
      assertHandle(context.savedHandle, title, "context.savedHandle");
      assertHandle(context.hierarchy, title, "context.hierarchy");
      return {
        cc: TPM_CC.ContextLoad,
        params: (w) => writeContext(w, context),
        responseHandles: 1,
        response: (_r, [handle]) => {
          const ht = context.savedHandle >>> 24;
          if (ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION) {
            if (handle !== context.savedHandle) throw new TpmFormatError(`${title}: a session came back as ${hx32(handle!)}, saved as ${hx32(context.savedHandle)}`);
          } else expectTransient(title, handle!);
          return handle!;
        },
      };
    });
  }

  /**
   * TPM2_EvictControl (Part 3 §28.5): makes the transient `object` persistent at `persistent`
   * (0x81xxxxxx), or, when `object` is that persistent handle, evicts it. Authorized by the owner
   * (default) or platform hierarchy: `options.auth`.
   */
  evictControl(object: number, persistent: number, options: AuthCallOptions & { hierarchy?: "owner" | "platform" } = {}): Promise<void> {
    const title = "tpm.evictControl";
    return this.#call(title, options, () => ({
      cc: TPM_CC.EvictControl,
      handles: [assertHierarchy(options.hierarchy ?? "owner", title, "options.hierarchy", ["owner", "platform"]), assertHandle(object, title, "object")],
      auths: [authArg(options.auth, title, "options.auth")],
      params: (w) => w.u32(assertHandle(persistent, title, "persistent", TPM_HT.PERSISTENT, "a persistent handle")),
      response: () => undefined,
    }));
  }

  /**
   * TPM2_ObjectChangeAuth (Part 3 §12.6): a new private blob for `object` (loaded under `parent`)
   * with `newAuth`; `options.auth` is the object's current password (ADMIN role). Load the blob
   * to use the new password.
   */
  objectChangeAuth(object: number, parent: number, newAuth: Uint8Array | string, options: AuthCallOptions = {}): Promise<Uint8Array> {
    const title = "tpm.objectChangeAuth";
    return this.#call(title, options, () => {
      if (newAuth === undefined) throw new TpmArgumentError(`${title}: newAuth must be a Uint8Array or a string (UTF-8), got undefined`);
      const na = authBytes(assertAuth(newAuth, title, "newAuth"));
      return {
        cc: TPM_CC.ObjectChangeAuth,
        handles: [assertHandle(object, title, "object"), assertHandle(parent, title, "parent")],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => w.tpm2b(na),
        response: (r) => readPrivate(r, title),
      };
    });
  }

  /** TPM2_Unseal (Part 3 §12.7): the data of a loaded sealed data object; `options.auth` is its password. */
  unseal(handle: number, options: AuthCallOptions = {}): Promise<Uint8Array> {
    const title = "tpm.unseal";
    return this.#call(title, options, () => ({
      cc: TPM_CC.Unseal,
      handles: [assertHandle(handle, title, "handle")],
      auths: [authArg(options?.auth, title, "options.auth")],
      response: (r) => r.tpm2b("outData", 128).slice(),
    }));
  }

  // ------------------------------------------------------------------ crypto (Part 3 §14, §15, §20)

  /**
   * TPM2_Sign (Part 3 §20.2): signs `digest` with the loaded key `key` (its password in
   * `options.auth`). `options.scheme` overrides a key whose scheme is TPM_ALG_NULL; the signature
   * must come back with the scheme and hash asked for (or, without one, a non-NULL scheme).
   * `options.validation` is the TPMT_TK_HASHCHECK a restricted key needs (a NULL ticket by default).
   */
  sign(key: number, digest: Uint8Array, options: AuthCallOptions & SchemeOption & { validation?: Ticket } = {}): Promise<TpmtSignature> {
    const title = "tpm.sign";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const d = assertBytes(digest, title, "digest", 1, 64);
      const scheme = sigScheme(options, title);
      const v = options?.validation ?? { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) };
      return {
        cc: TPM_CC.Sign,
        handles: [k],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(d);
          writeScheme(w, scheme);
          writeTicket(w, v);
        },
        response: (r) => expectSignature(title, readSignature(r), scheme),
      };
    });
  }

  /** TPM2_VerifySignature (Part 3 §20.1): checks `signature` over `digest` with the loaded key; returns the TPMT_TK_VERIFIED ticket. */
  verifySignature(key: number, digest: Uint8Array, signature: TpmtSignature, options?: CallOptions): Promise<Ticket> {
    const title = "tpm.verifySignature";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const d = assertBytes(digest, title, "digest", 1, 64);
      if (typeof signature !== "object" || signature === null || typeof signature.sigAlg !== "number") throw new TpmArgumentError(`${title}: signature must be a TPMT_SIGNATURE, got ${describeValue(signature)}`);
      return {
        cc: TPM_CC.VerifySignature,
        handles: [k],
        params: (w) => {
          w.tpm2b(d);
          writeSignature(w, signature);
        },
        response: (r) => readTicket(r, TPM_ST.VERIFIED),
      };
    });
  }

  /**
   * TPM2_RSA_Encrypt (Part 3 §14.2) of `message` with the loaded RSA key's public part; no
   * authorization. `options.scheme` "oaep" (with `options.hashAlg`) or "rsaes", or the key's own;
   * `options.label` for OAEP.
   */
  rsaEncrypt(key: number, message: Uint8Array, options: CallOptions & RsaSchemeOption = {}): Promise<Uint8Array> {
    const title = "tpm.rsaEncrypt";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const m = assertBytes(message, title, "message", 0, 512);
      const { scheme, label } = rsaScheme(options, title);
      return {
        cc: TPM_CC.RSA_Encrypt,
        handles: [k],
        params: (w) => {
          w.tpm2b(m);
          writeScheme(w, scheme);
          w.tpm2b(label);
        },
        response: (r) => {
          const out = r.tpm2b("outData", 512).slice();
          if (out.length === 0) throw new TpmFormatError(`${title}: the TPM returned an empty ciphertext`);
          return out;
        },
      };
    });
  }

  /** TPM2_RSA_Decrypt (Part 3 §14.3) of `ciphertext` with the loaded RSA key (its password in `options.auth`). */
  rsaDecrypt(key: number, ciphertext: Uint8Array, options: AuthCallOptions & RsaSchemeOption = {}): Promise<Uint8Array> {
    const title = "tpm.rsaDecrypt";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const c = assertBytes(ciphertext, title, "ciphertext", 1, 512);
      const { scheme, label } = rsaScheme(options, title);
      return {
        cc: TPM_CC.RSA_Decrypt,
        handles: [k],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(c);
          writeScheme(w, scheme);
          w.tpm2b(label);
        },
        response: (r) => r.tpm2b("message", 512).slice(),
      };
    });
  }

  /**
   * TPM2_EncryptDecrypt2 (Part 3 §15.3) of `data` with the loaded symmetric key. `options.mode`
   * (cfb, cbc, ctr, ofb, ecb; the key's own by default), `options.iv` (16 zero bytes by default),
   * `options.decrypt`. The output must be as long as the input.
   */
  encryptDecrypt2(key: number, data: Uint8Array, options: AuthCallOptions & { decrypt?: boolean; mode?: "cfb" | "cbc" | "ctr" | "ofb" | "ecb"; iv?: Uint8Array } = {}): Promise<{ outData: Uint8Array; ivOut: Uint8Array }> {
    const title = "tpm.encryptDecrypt2";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const d = assertBytes(data, title, "data", 0, 1024);
      const decrypt = assertBoolean(options?.decrypt ?? false, title, "options.decrypt");
      const mode = options?.mode === undefined ? TPM_ALG.NULL : MODES[assertOneOf(options.mode, title, "options.mode", ["cfb", "cbc", "ctr", "ofb", "ecb"])];
      const iv = assertBytes(options?.iv ?? new Uint8Array(16), title, "options.iv", 0, 16);
      return {
        cc: TPM_CC.EncryptDecrypt2,
        handles: [k],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(d).u8(decrypt ? 1 : 0).u16(mode).tpm2b(iv);
        },
        response: (r) => {
          const outData = r.tpm2b("outData", 1024).slice();
          const ivOut = r.tpm2b("ivOut", 16).slice();
          if (outData.length !== d.length) throw new TpmFormatError(`${title}: ${outData.length} bytes out for ${d.length} in`);
          return { outData, ivOut };
        },
      };
    });
  }

  /** TPM2_HMAC (Part 3 §15.5) of `data` with the loaded keyed-hash key; the digest must be `hashAlg`'s size. */
  hmac(key: number, data: Uint8Array, options: AuthCallOptions & { hashAlg?: HashAlgName } = {}): Promise<Uint8Array> {
    const title = "tpm.hmac";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const d = assertBytes(data, title, "data", 0, 1024);
      const alg = HASH_ALGS[assertHashAlg(options?.hashAlg ?? "sha256", title, "options.hashAlg")].id;
      return {
        cc: TPM_CC.HMAC,
        handles: [k],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(d).u16(alg);
        },
        response: (r) => {
          const out = r.tpm2b("outHMAC", 64).slice();
          if (out.length !== digestSize(alg)) throw new TpmFormatError(`${title}: HMAC of ${out.length} bytes, asked ${hashName(alg)}`);
          return out;
        },
      };
    });
  }

  /** TPM2_ECDH_KeyGen (Part 3 §14.4): an ephemeral key pair on the loaded ECC key's curve; returns Z = d·Q and the ephemeral public point. */
  ecdhKeyGen(key: number, options?: CallOptions): Promise<{ zPoint: EccPoint; pubPoint: EccPoint }> {
    const title = "tpm.ecdhKeyGen";
    return this.#call(title, options, () => ({
      cc: TPM_CC.ECDH_KeyGen,
      handles: [assertHandle(key, title, "key")],
      response: (r) => ({ zPoint: readEccPoint(r, "zPoint"), pubPoint: readEccPoint(r, "pubPoint") }),
    }));
  }

  /** TPM2_ECDH_ZGen (Part 3 §14.5): Z = d·`inPoint` with the loaded ECC key (its password in `options.auth`). */
  ecdhZGen(key: number, inPoint: EccPoint, options: AuthCallOptions = {}): Promise<EccPoint> {
    const title = "tpm.ecdhZGen";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      if (typeof inPoint !== "object" || inPoint === null) throw new TpmArgumentError(`${title}: inPoint must be { x, y }, got ${describeValue(inPoint)}`);
      const x = assertBytes(inPoint.x, title, "inPoint.x", 1, 66);
      const y = assertBytes(inPoint.y, title, "inPoint.y", 1, 66);
      return {
        cc: TPM_CC.ECDH_ZGen,
        handles: [k],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => writeEccPoint(w, { x, y }),
        response: (r) => readEccPoint(r, "outPoint"),
      };
    });
  }

  // ------------------------------------------------------------------ attestation (Part 3 §12.5, §12.6, §18)

  /**
   * TPM2_Quote (Part 3 §18.4): signs the digest of the PCRs in `pcrs` with the loaded signing key
   * (its password in `options.auth`), `qualifyingData` (the verifier's nonce) included. Checks
   * magic, type, extraData, the PCR selection and the signature scheme against the request;
   * {@link verifyQuote} then checks the digest and the signature on the verifier's side.
   */
  quote(key: number, qualifyingData: Uint8Array, pcrs: PcrSelection, options: AuthCallOptions & SchemeOption = {}): Promise<AttestResult> {
    const title = "tpm.quote";
    let sel: PcrSelect[];
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const q = assertBytes(qualifyingData, title, "qualifyingData", 0, 64);
      sel = assertPcrSelection(pcrs, title, "pcrs");
      const scheme = sigScheme(options, title);
      return {
        cc: TPM_CC.Quote,
        handles: [k],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(q);
          writeScheme(w, scheme);
          writePcrSelection(w, sel);
        },
        response: (r) => {
          const res = readAttestResult(r, title, TPM_ST.ATTEST_QUOTE, q, scheme);
          const got = res.attest.type === TPM_ST.ATTEST_QUOTE ? res.attest.attested.pcrSelect : [];
          const norm = (s: PcrSelect[]) => s.filter((x) => x.pcrs.length).map((x) => `${x.hash}:${[...x.pcrs].sort((a, b) => a - b).join(",")}`).join(";");
          if (norm(got) !== norm(sel)) throw new TpmFormatError(`${title}: the quote selects ${norm(got)}, asked ${norm(sel)}`);
          return res;
        },
      };
    });
  }

  /**
   * TPM2_Certify (Part 3 §18.2): `signKey` signs that `object` is loaded in this TPM.
   * `options.objectAuth` authorizes the object (ADMIN role), `options.auth` the signing key.
   * Checks magic, type TPM_ST_ATTEST_CERTIFY, extraData and the signature scheme.
   */
  certify(object: number, signKey: number, qualifyingData: Uint8Array, options: AuthCallOptions & SchemeOption & { objectAuth?: Authorization } = {}): Promise<AttestResult> {
    const title = "tpm.certify";
    return this.#call(title, options, () => {
      const o = assertHandle(object, title, "object");
      const k = assertHandle(signKey, title, "signKey");
      const q = assertBytes(qualifyingData, title, "qualifyingData", 0, 64);
      const scheme = sigScheme(options, title);
      return {
        cc: TPM_CC.Certify,
        handles: [o, k],
        auths: [authArg(options?.objectAuth, title, "options.objectAuth"), authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(q);
          writeScheme(w, scheme);
        },
        response: (r) => readAttestResult(r, title, TPM_ST.ATTEST_CERTIFY, q, scheme),
      };
    });
  }

  /**
   * TPM2_CertifyCreation (Part 3 §18.3): `signKey` signs that `object` was created by this TPM
   * with `creationHash` (the ticket from create/createPrimary proves it). Checks magic, type,
   * extraData, that the attested creationHash is the one given, and the scheme.
   */
  certifyCreation(signKey: number, object: number, creationHash: Uint8Array, creationTicket: Ticket, qualifyingData: Uint8Array, options: AuthCallOptions & SchemeOption = {}): Promise<AttestResult> {
    const title = "tpm.certifyCreation";
    return this.#call(title, options, () => {
      const k = assertHandle(signKey, title, "signKey");
      const o = assertHandle(object, title, "object");
      const ch = assertBytes(creationHash, title, "creationHash", 1, 64);
      if (typeof creationTicket !== "object" || creationTicket === null || !(creationTicket.digest instanceof Uint8Array)) throw new TpmArgumentError(`${title}: creationTicket must be a TPMT_TK_CREATION, got ${describeValue(creationTicket)}`);
      const q = assertBytes(qualifyingData, title, "qualifyingData", 0, 64);
      const scheme = sigScheme(options, title);
      return {
        cc: TPM_CC.CertifyCreation,
        handles: [k, o],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(q).tpm2b(ch);
          writeScheme(w, scheme);
          writeTicket(w, creationTicket);
        },
        response: (r) => {
          const res = readAttestResult(r, title, TPM_ST.ATTEST_CREATION, q, scheme);
          const a = res.attest;
          if (a.type !== TPM_ST.ATTEST_CREATION || !bytesEqual(a.attested.creationHash, ch)) throw new TpmFormatError(`${title}: the attested creationHash is not the one given`);
          return res;
        },
      };
    });
  }

  /**
   * TPM2_NV_Certify (Part 3 §18.6): `signKey` signs `size` bytes at `offset` of NV index `index`,
   * read with `options.nvAuthHandle`'s authorization (the index by default, `options.nvAuth`).
   * Checks magic, type, extraData, offset and the contents' size.
   */
  nvCertify(signKey: number, index: number, qualifyingData: Uint8Array, options: AuthCallOptions & SchemeOption & { nvAuth?: Authorization; nvAuthHandle?: "index" | Hierarchy; size: number; offset?: number }): Promise<AttestResult> {
    const title = "tpm.nvCertify";
    return this.#call(title, options, () => {
      if (typeof options !== "object" || options === null) throw new TpmArgumentError(`${title}: options must be an object with size, got ${describeValue(options)}`);
      const k = assertHandle(signKey, title, "signKey");
      const i = nvIndex(index, title);
      const q = assertBytes(qualifyingData, title, "qualifyingData", 0, 64);
      const size = assertInteger(options.size, title, "options.size", 0, 0xffff);
      const offset = assertInteger(options.offset ?? 0, title, "options.offset", 0, 0xffff);
      const { ah, auth } = nvAuth(i, { auth: options.nvAuth, authHandle: options.nvAuthHandle }, title);
      const scheme = sigScheme(options, title);
      return {
        cc: TPM_CC.NV_Certify,
        handles: [k, ah, i],
        auths: [authArg(options.auth, title, "options.auth"), auth],
        params: (w) => {
          w.tpm2b(q);
          writeScheme(w, scheme);
          w.u16(size).u16(offset);
        },
        response: (r) => {
          const res = readAttestResult(r, title, TPM_ST.ATTEST_NV, q, scheme);
          const a = res.attest;
          if (a.type !== TPM_ST.ATTEST_NV || a.attested.offset !== offset || a.attested.nvContents.length !== size) throw new TpmFormatError(`${title}: the attested NV range is not offset ${offset}, ${size} bytes`);
          return res;
        },
      };
    });
  }

  /**
   * TPM2_GetTime (Part 3 §18.7): `signKey` signs the TPM's time and clock. `options.privacyAuth`
   * is the endorsement hierarchy's password, `options.auth` the key's. Checks magic, type,
   * extraData and the scheme.
   */
  getTime(signKey: number, qualifyingData: Uint8Array, options: AuthCallOptions & SchemeOption & { privacyAuth?: Authorization } = {}): Promise<AttestResult> {
    const title = "tpm.getTime";
    return this.#call(title, options, () => {
      const k = assertHandle(signKey, title, "signKey");
      const q = assertBytes(qualifyingData, title, "qualifyingData", 0, 64);
      const scheme = sigScheme(options, title);
      return {
        cc: TPM_CC.GetTime,
        handles: [TPM_RH.ENDORSEMENT, k],
        auths: [authArg(options?.privacyAuth, title, "options.privacyAuth"), authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(q);
          writeScheme(w, scheme);
        },
        response: (r) => readAttestResult(r, title, TPM_ST.ATTEST_TIME, q, scheme),
      };
    });
  }

  /**
   * TPM2_MakeCredential (Part 3 §12.6): wraps `credential` for the object named `objectName`,
   * protected by the loaded public key `key` (an EK, typically); no authorization. Returns the
   * TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET contents for {@link Tpm.activateCredential}.
   */
  makeCredential(key: number, credential: Uint8Array, objectName: Uint8Array, options?: CallOptions): Promise<{ credentialBlob: Uint8Array; secret: Uint8Array }> {
    const title = "tpm.makeCredential";
    return this.#call(title, options, () => {
      const k = assertHandle(key, title, "key");
      const c = assertBytes(credential, title, "credential", 1, 64);
      const n = assertBytes(objectName, title, "objectName", 1, NAME_MAX);
      return {
        cc: TPM_CC.MakeCredential,
        handles: [k],
        params: (w) => {
          w.tpm2b(c).tpm2b(n);
        },
        response: (r) => {
          const credentialBlob = r.tpm2b("credentialBlob", 2 + 64 + 2 + 64).slice();
          const secret = r.tpm2b("secret", 512).slice();
          if (credentialBlob.length === 0 || secret.length === 0) throw new TpmFormatError(`${title}: the TPM returned an empty credential blob or secret`);
          return { credentialBlob, secret };
        },
      };
    });
  }

  /**
   * TPM2_ActivateCredential (Part 3 §12.5): recovers the credential of {@link Tpm.makeCredential}
   * when `activate` (the object it names; `options.auth`, ADMIN role) and `key` (the protecting
   * key; `options.keyAuth`) are loaded here.
   */
  activateCredential(activate: number, key: number, credentialBlob: Uint8Array, secret: Uint8Array, options: AuthCallOptions & { keyAuth?: Authorization } = {}): Promise<Uint8Array> {
    const title = "tpm.activateCredential";
    return this.#call(title, options, () => {
      const a = assertHandle(activate, title, "activate");
      const k = assertHandle(key, title, "key");
      const cb = assertBytes(credentialBlob, title, "credentialBlob", 1, 0xffff);
      const s = assertBytes(secret, title, "secret", 1, 0xffff);
      return {
        cc: TPM_CC.ActivateCredential,
        handles: [a, k],
        auths: [authArg(options?.auth, title, "options.auth"), authArg(options?.keyAuth, title, "options.keyAuth")],
        params: (w) => {
          w.tpm2b(cb).tpm2b(s);
        },
        response: (r) => r.tpm2b("certInfo", 64).slice(),
      };
    });
  }

  // ------------------------------------------------------------------ sessions and policy (Part 3 §11.1, §23)

  /**
   * TPM2_StartAuthSession (Part 3 §11.1): an HMAC, policy or trial session, bound
   * (`options.bind`: an entity's handle and authValue enter the session key) and / or salted
   * (`options.salt`: a loaded RSA or ECC decryption key; the client reads its public area and
   * encrypts the salt itself), with AES-128-CFB parameter encryption unless `options.symmetric`
   * is null. Use the session as a call's `auth` (or `{ session, password }`), in
   * `options.sessions` for encryption or audit only, or with the policy commands; see
   * {@link AuthSession} for how it computes and checks HMACs (Part 1 §19.6).
   *
   * @example
   * ```ts
   * await using s = await tpm.startAuthSession({ salt: srk, attributes: { encrypt: true } });
   * const bytes = await tpm.unseal(sealed, { auth: { session: s, password: "pw" } });
   * ```
   */
  startAuthSession(options: StartAuthSessionOptions = {}): Promise<AuthSession> {
    const title = "tpm.startAuthSession";
    try {
      assertOptions(options, title);
      assertCallOptions(options, title);
      extraSessions(options, title);
    } catch (e) {
      return Promise.reject(e);
    }
    return startSession(this, options, title);
  }

  /** A policy or trial session of this Tpm, not closed (the policy commands' policySession). */
  #policySession(session: unknown, title: string): number {
    if (!(session instanceof AuthSession)) throw new TpmArgumentError(`${title}: session must be an AuthSession from tpm.startAuthSession, got ${describeValue(session)}`);
    if (session.type === "hmac") throw new TpmArgumentError(`${title}: session must be a policy or trial session, got an HMAC session`);
    if (session.host !== this) throw new TpmArgumentError(`${title}: session belongs to another Tpm`);
    if (session.closed) throw new TpmArgumentError(`${title}: session 0x${session.handle.toString(16)} is closed`);
    return session.handle;
  }

  /**
   * TPM2_PolicyPCR (Part 3 §23.7): the PCRs of `pcrs` must have the values whose digest is
   * `options.pcrDigest` (the TPM's current values when absent, as a trial session takes them).
   */
  policyPCR(session: AuthSession, pcrs: PcrSelection, options: CallOptions & { pcrDigest?: Uint8Array } = {}): Promise<void> {
    const title = "tpm.policyPCR";
    return this.#call(title, options, () => {
      const h = this.#policySession(session, title);
      const sel = assertPcrSelection(pcrs, title, "pcrs");
      const d = assertBytes(options?.pcrDigest ?? new Uint8Array(0), title, "options.pcrDigest", 0, 64);
      return { cc: TPM_CC.PolicyPCR, handles: [h], params: (w) => { w.tpm2b(d); writePcrSelection(w, sel); }, response: () => undefined };
    });
  }

  /**
   * TPM2_PolicyPassword (Part 3 §23.18): the command the session authorizes then carries the
   * entity's authValue in clear (`auth: { session, password }`), and its response has no HMAC.
   */
  async policyPassword(session: AuthSession, options?: CallOptions): Promise<void> {
    const title = "tpm.policyPassword";
    await this.#call(title, options, () => ({ cc: TPM_CC.PolicyPassword, handles: [this.#policySession(session, title)], response: () => undefined }));
    session.passwordNeeded = true;
    session.authValueNeeded = false;
  }

  /**
   * TPM2_PolicyAuthValue (Part 3 §23.17): the entity's authValue keys the HMAC of the command the
   * session authorizes (`auth: { session, password }`).
   */
  async policyAuthValue(session: AuthSession, options?: CallOptions): Promise<void> {
    const title = "tpm.policyAuthValue";
    await this.#call(title, options, () => ({ cc: TPM_CC.PolicyAuthValue, handles: [this.#policySession(session, title)], response: () => undefined }));
    session.authValueNeeded = true;
    session.passwordNeeded = false;
  }

  /** TPM2_PolicyCommandCode (Part 3 §23.11): the session authorizes only command `code` (a TPM_CC). */
  policyCommandCode(session: AuthSession, code: number, options?: CallOptions): Promise<void> {
    const title = "tpm.policyCommandCode";
    return this.#call(title, options, () => {
      const h = this.#policySession(session, title);
      const c = assertInteger(code, title, "code", 0, 0xffffffff);
      return { cc: TPM_CC.PolicyCommandCode, handles: [h], params: (w) => w.u32(c), response: () => undefined };
    });
  }

  /**
   * TPM2_PolicySecret (Part 3 §23.4): `authHandle` (a hierarchy, object or NV index) authorizes
   * the assertion with `options.auth` (a password or an HMAC session). `options.includeNonce`
   * (default true) binds it to the session's nonceTPM; `expiration` (seconds, negative for a
   * ticket), `cpHashA` and `policyRef` as the Part says. Returns the timeout and the ticket.
   */
  policySecret(authHandle: number | Hierarchy, session: AuthSession, options: AuthCallOptions & PolicyAssertionOptions = {}): Promise<{ timeout: Uint8Array; ticket: Ticket }> {
    const title = "tpm.policySecret";
    return this.#call(title, options, () => {
      const ah = typeof authHandle === "string" ? assertHierarchy(authHandle, title, "authHandle") : assertHandle(authHandle, title, "authHandle");
      const h = this.#policySession(session, title);
      const a = assertionArgs(options, title);
      return {
        cc: TPM_CC.PolicySecret,
        handles: [ah, h],
        auths: [authArg(options?.auth, title, "options.auth")],
        params: (w) => {
          w.tpm2b(a.includeNonce ? session.nonceTPM : new Uint8Array(0)).tpm2b(a.cpHashA).tpm2b(a.policyRef).u32(a.expiration >>> 0);
        },
        response: (r) => ({ timeout: r.tpm2b("timeout", 8).slice(), ticket: readTicket(r) }),
      };
    });
  }

  /**
   * TPM2_PolicySigned (Part 3 §23.3): `signature` by the loaded key `authObject` over
   * aHash = H(nonceTPM ‖ expiration ‖ cpHashA ‖ policyRef) ({@link AuthSession.policySignedDigest}
   * computes it with the same options). Returns the timeout and the ticket.
   */
  policySigned(authObject: number, session: AuthSession, signature: TpmtSignature, options: CallOptions & PolicyAssertionOptions = {}): Promise<{ timeout: Uint8Array; ticket: Ticket }> {
    const title = "tpm.policySigned";
    return this.#call(title, options, () => {
      const k = assertHandle(authObject, title, "authObject");
      const h = this.#policySession(session, title);
      if (typeof signature !== "object" || signature === null || typeof signature.sigAlg !== "number") throw new TpmArgumentError(`${title}: signature must be a TPMT_SIGNATURE, got ${describeValue(signature)}`);
      const a = assertionArgs(options, title);
      return {
        cc: TPM_CC.PolicySigned,
        handles: [k, h],
        params: (w) => {
          w.tpm2b(a.includeNonce ? session.nonceTPM : new Uint8Array(0)).tpm2b(a.cpHashA).tpm2b(a.policyRef).u32(a.expiration >>> 0);
          writeSignature(w, signature);
        },
        response: (r) => ({ timeout: r.tpm2b("timeout", 8).slice(), ticket: readTicket(r) }),
      };
    });
  }

  /** TPM2_PolicyOR (Part 3 §23.6): the session's digest must be one of `digests` (2 to 8); it becomes H(0 ‖ CC ‖ digests). */
  policyOR(session: AuthSession, digests: readonly Uint8Array[], options?: CallOptions): Promise<void> {
    const title = "tpm.policyOR";
    return this.#call(title, options, () => {
      const h = this.#policySession(session, title);
      const list = assertArray(digests, title, "digests", (d, n) => assertBytes(d, title, n, 1, 64));
      if (list.length < 2 || list.length > 8) throw new TpmArgumentError(`${title}: digests must hold 2 to 8 digests, got ${list.length}`);
      return {
        cc: TPM_CC.PolicyOR,
        handles: [h],
        params: (w) => {
          w.u32(list.length);
          for (const d of list) w.tpm2b(d);
        },
        response: () => undefined,
      };
    });
  }

  /**
   * TPM2_PolicyNV (Part 3 §23.9): the contents of NV index `index` at `options.offset` compared
   * with `operandB` by `options.operation` (a TPM_EO, EQ by default), read with the authorization
   * of `options.authHandle` (the index by default) and `options.auth`.
   */
  policyNV(session: AuthSession, index: number, operandB: Uint8Array, options: NvAuthOptions & { offset?: number; operation?: number } = {}): Promise<void> {
    const title = "tpm.policyNV";
    return this.#call(title, options, () => {
      const h = this.#policySession(session, title);
      const { ah, auth } = nvAuth(index, options, title);
      const b = assertBytes(operandB, title, "operandB", 0, 64);
      const offset = assertInteger(options?.offset ?? 0, title, "options.offset", 0, 0xffff);
      const op = assertInteger(options?.operation ?? 0, title, "options.operation", 0, 0xffff);
      return {
        cc: TPM_CC.PolicyNV,
        handles: [ah, index, h],
        auths: [auth],
        params: (w) => {
          w.tpm2b(b).u16(offset).u16(op);
        },
        response: () => undefined,
      };
    });
  }

  /**
   * TPM2_PolicyAuthorize (Part 3 §23.16): the session's digest `approvedPolicy` was approved by
   * the key named `keySignName`: `checkTicket` is the TPMT_TK_VERIFIED of its signature over
   * H(approvedPolicy ‖ policyRef) ({@link Tpm.verifySignature}).
   */
  policyAuthorize(session: AuthSession, approvedPolicy: Uint8Array, keySignName: Uint8Array, checkTicket: Ticket, options: CallOptions & { policyRef?: Uint8Array } = {}): Promise<void> {
    const title = "tpm.policyAuthorize";
    return this.#call(title, options, () => {
      const h = this.#policySession(session, title);
      const ap = assertBytes(approvedPolicy, title, "approvedPolicy", 0, 64);
      const kn = assertBytes(keySignName, title, "keySignName", 0, NAME_MAX);
      const ref = assertBytes(options?.policyRef ?? new Uint8Array(0), title, "options.policyRef", 0, 64);
      if (typeof checkTicket !== "object" || checkTicket === null || !(checkTicket.digest instanceof Uint8Array)) throw new TpmArgumentError(`${title}: checkTicket must be a TPMT_TK_VERIFIED, got ${describeValue(checkTicket)}`);
      return {
        cc: TPM_CC.PolicyAuthorize,
        handles: [h],
        params: (w) => {
          w.tpm2b(ap).tpm2b(ref).tpm2b(kn);
          writeTicket(w, checkTicket);
        },
        response: () => undefined,
      };
    });
  }

  /** TPM2_PolicyGetDigest (Part 3 §23.19): the session's current policy digest. */
  policyGetDigest(session: AuthSession, options?: CallOptions): Promise<Uint8Array> {
    const title = "tpm.policyGetDigest";
    return this.#call(title, options, () => ({ cc: TPM_CC.PolicyGetDigest, handles: [this.#policySession(session, title)], response: (r) => r.tpm2b("policyDigest", 64).slice() }));
  }

  /** TPM2_PolicyRestart (Part 3 §11.2): the session's policy starts over (zero digest, nothing asserted). */
  async policyRestart(session: AuthSession, options?: CallOptions): Promise<void> {
    const title = "tpm.policyRestart";
    await this.#call(title, options, () => ({ cc: TPM_CC.PolicyRestart, handles: [this.#policySession(session, title)], response: () => undefined }));
    session.resetPolicy();
  }

  /** Closes the chip and its transport. */
  close(): Promise<void> {
    return this.chip.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The per-call options without `sessions` (what the chip's transmit takes). */
function transmitOnly(options: CallOptions | undefined): TransmitOptions | undefined {
  if (options?.sessions === undefined) return options;
  const o: CallOptions = { ...options };
  delete o.sessions;
  return o;
}

/** `options.sessions`, checked: AuthSession objects (at most 3 sessions per command, Part 1 §18.6). */
function extraSessions(options: CallOptions | undefined, title: string): readonly AuthSession[] {
  const s = options?.sessions;
  if (s === undefined) return [];
  if (!Array.isArray(s) || s.length > 3 || !s.every((x) => x instanceof AuthSession)) throw new TpmArgumentError(`${title}: options.sessions must be an array of at most 3 AuthSession, got ${describeValue(s)}`);
  return s;
}

/**
 * An authorization argument as a {@link CommandAuth}: a password (bytes or UTF-8 string), an
 * {@link AuthSession}, or `{ session, password }`.
 */
function authArg(value: unknown, title: string, name: string): CommandAuth {
  if (value instanceof AuthSession) return { session: value };
  if (typeof value === "object" && value !== null && !(value instanceof Uint8Array)) {
    const v = value as Partial<SessionAuthorization>;
    if (!(v.session instanceof AuthSession)) throw new TpmArgumentError(`${title}: ${name} must be a password (Uint8Array or string), an AuthSession or { session, password }, got ${describeValue(value)}`);
    return { session: v.session, password: assertAuth(v.password, title, `${name}.password`) };
  }
  return { password: assertAuth(value, title, name) };
}

/** A session authorization whose response HMAC is keyed with `newAuth` (the ChangeAuth commands). */
function withResponseAuth(a: CommandAuth, newAuth: Uint8Array | string): CommandAuth {
  return "session" in a ? { ...a, responseAuth: newAuth } : a;
}

/** Options of TPM2_PolicySecret and TPM2_PolicySigned (Part 3 §23.3, §23.4). */
export interface PolicyAssertionOptions {
  /** Include the session's nonceTPM (default true): the assertion is then good for this session only. */
  includeNonce?: boolean;
  /** cpHashA: the command the assertion is limited to (empty by default). */
  cpHashA?: Uint8Array;
  /** policyRef (empty by default). */
  policyRef?: Uint8Array;
  /** expiration in seconds (INT32; 0 by default: none; negative: a ticket is returned). */
  expiration?: number;
}

function assertionArgs(o: PolicyAssertionOptions | undefined, title: string): { includeNonce: boolean; cpHashA: Uint8Array; policyRef: Uint8Array; expiration: number } {
  return {
    includeNonce: assertBoolean(o?.includeNonce ?? true, title, "options.includeNonce"),
    cpHashA: assertBytes(o?.cpHashA ?? new Uint8Array(0), title, "options.cpHashA", 0, 64),
    policyRef: assertBytes(o?.policyRef ?? new Uint8Array(0), title, "options.policyRef", 0, 64),
    expiration: assertInteger(o?.expiration ?? 0, title, "options.expiration", -0x80000000, 0x7fffffff),
  };
}

/** An NV index handle (TPM_HT_NV_INDEX, 0x01000000–0x01FFFFFF; Part 2 §7.2). */
function nvIndex(index: unknown, title: string, name = "index"): number {
  return assertHandle(index, title, name, TPM_HT.NV_INDEX, "an NV index handle");
}

/** A sequence handle (a transient object, TPM_HT_TRANSIENT; Part 3 §17.3). */
function sequenceHandle(handle: unknown, title: string): number {
  return assertHandle(handle, title, "handle", TPM_HT.TRANSIENT, "a transient handle");
}

/** The hash of a sequence: a hash name, or `"null"` for an event sequence (TPM_ALG_NULL, Part 3 §17.3). */
function sequenceAlg(alg: unknown, title: string): number {
  if (alg === "null") return TPM_ALG.NULL;
  if (typeof alg === "string" && Object.hasOwn(HASH_ALGS, alg)) return HASH_ALGS[alg as HashAlgName].id;
  throw new TpmArgumentError(`${title}: alg must be "null" or one of ${Object.keys(HASH_ALGS).join(", ")}, got ${describeValue(alg)}`);
}

/** Checks an NV call's index, options and authorization; returns the authorizing handle and password. */
function nvAuth(index: unknown, o: NvAuthOptions, title: string): { ah: number; auth: CommandAuth } {
  const i = nvIndex(index, title);
  assertCallOptions(o, title);
  const auth = authArg(o.auth, title, "options.auth");
  const a = o.authHandle;
  if (a === undefined || a === "index") return { ah: i, auth };
  const named = typeof a === "string" && Object.hasOwn(HIERARCHIES, a);
  if (!named && !(typeof a === "number" && Number.isInteger(a) && a >= 0 && a <= 0xffffffff)) {
    throw new TpmArgumentError(`${title}: options.authHandle must be "index" or one of ${Object.keys(HIERARCHIES).join(", ")} or a handle, got ${describeValue(a)}`);
  }
  return { ah: assertHierarchy(a, title, "options.authHandle"), auth };
}

function byBank(list: C.TaggedDigest[]): PcrDigests {
  const out: PcrDigests = {};
  for (const d of list) {
    const n = hashName(d.hash);
    if (n) out[n] = d.digest;
  }
  return out;
}

function u32Ascii(v: number): string {
  let s = "";
  for (const b of [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]) if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
  return s;
}

// ------------------------------------------------------------------ objects, crypto, attestation: types and checks

/** Options of the creating calls ({@link Tpm.createPrimary}, {@link Tpm.create}, {@link Tpm.createLoaded}). */
export interface CreateOptions extends AuthCallOptions {
  /** The new object's password (TPMS_SENSITIVE_CREATE userAuth); a string is taken as UTF-8. */
  userAuth?: Uint8Array | string;
  /** The sensitive data: what a sealed data object seals, or an HMAC key's bits (at most 128 bytes). */
  data?: Uint8Array;
  /** outsideInfo, copied into the creation data (at most 64 bytes). */
  outsideInfo?: Uint8Array;
  /** PCRs whose digest goes into the creation data. */
  creationPcrs?: PcrSelection;
}

/** The creation data and ticket of a created object (Part 3 §12.1, §24.1). */
export interface CreationResult {
  /** The object's public area as the TPM returned it. */
  public: TpmtPublic;
  creationData: CreationData;
  /** H_nameAlg(creationData), checked. */
  creationHash: Uint8Array;
  /** TPMT_TK_CREATION, for {@link Tpm.certifyCreation}. */
  creationTicket: Ticket;
}

/** What {@link Tpm.createPrimary} returns. */
export interface CreatePrimaryResult extends CreationResult {
  /** The transient handle. */
  handle: number;
  /** nameAlg ‖ H(public), checked. */
  name: Uint8Array;
}

/** What {@link Tpm.create} returns. */
export interface CreateResult extends CreationResult {
  /** The TPM2B_PRIVATE contents, for {@link Tpm.load}. */
  private: Uint8Array;
}

/** A loaded object: its transient handle and checked Name. */
export interface LoadedObject {
  handle: number;
  name: Uint8Array;
}

/** What {@link Tpm.createLoaded} returns. */
export interface CreateLoadedResult extends LoadedObject {
  private: Uint8Array;
  public: TpmtPublic;
}

/** A TPMS_ECC_POINT (Part 2 §11.2.5.2). */
export interface EccPoint {
  x: Uint8Array;
  y: Uint8Array;
}

/** A signing scheme option: `scheme` with `hashAlg` (sha256 by default), or the key's own scheme when absent. */
export interface SchemeOption {
  scheme?: "rsassa" | "rsapss" | "ecdsa" | "hmac";
  hashAlg?: HashAlgName;
}

/** An RSA encryption scheme option: OAEP (with `hashAlg`, sha256 by default) or RSAES, or the key's own; `label` for OAEP. */
export interface RsaSchemeOption {
  scheme?: "oaep" | "rsaes";
  hashAlg?: HashAlgName;
  label?: Uint8Array;
}

/** A signed attestation: the TPMS_ATTEST bytes as signed, the parsed structure and the signature. */
export interface AttestResult {
  /** The content of TPM2B_ATTEST: what the signature covers (as H(quoted)). */
  quoted: Uint8Array;
  attest: TpmsAttest;
  signature: TpmtSignature;
}

/** Longest TPM2B_NAME: a hash algorithm and a SHA-512 digest. */
const NAME_MAX = 2 + 64;

const SIG_SCHEMES = { rsassa: TPM_ALG.RSASSA, rsapss: TPM_ALG.RSAPSS, ecdsa: TPM_ALG.ECDSA, hmac: TPM_ALG.HMAC } as const;
const MODES = { cfb: TPM_ALG.CFB, cbc: TPM_ALG.CBC, ctr: TPM_ALG.CTR, ofb: TPM_ALG.OFB, ecb: TPM_ALG.ECB } as const;

function hx32(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, "0")}`;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A template or public area the caller passed: it must marshal (Part 2 §12.2.4). */
function checkTemplate(t: unknown, title: string, name = "template"): TpmtPublic {
  if (typeof t !== "object" || t === null || typeof (t as TpmtPublic).type !== "number") throw new TpmArgumentError(`${title}: ${name} must be a TPMT_PUBLIC (see rsaStorageTemplate and friends), got ${describeValue(t)}`);
  try {
    readPublic(new TpmReader(marshalPublic(t as TpmtPublic)));
  } catch (e) {
    throw new TpmArgumentError(`${title}: ${name} is not a valid TPMT_PUBLIC: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return t as TpmtPublic;
}

/** The parameter area TPM2_CreatePrimary and TPM2_Create share: inSensitive, inPublic, outsideInfo, creationPCR (Part 3 §12.1.2, §24.1.2). */
function writeCreateParams(w: TpmWriter, inParams: ReturnType<typeof creationParams>, tpl: TpmtPublic): void {
  writeSensitiveCreate(w, inParams.sensitive);
  writePublic2b(w, tpl);
  w.tpm2b(inParams.outsideInfo);
  writePcrSelection(w, inParams.pcrs);
}

function creationParams(o: CreateOptions, title: string): { sensitive: SensitiveCreate; outsideInfo: Uint8Array; pcrs: PcrSelect[] } {
  const userAuth = authBytes(assertAuth(o.userAuth, title, "options.userAuth"));
  if (userAuth.length > 64) throw new TpmArgumentError(`${title}: options.userAuth must be at most 64 bytes, got ${userAuth.length}`);
  const data = o.data === undefined ? new Uint8Array(0) : assertBytes(o.data, title, "options.data", 0, 128);
  const outsideInfo = o.outsideInfo === undefined ? new Uint8Array(0) : assertBytes(o.outsideInfo, title, "options.outsideInfo", 0, 64);
  const pcrs = o.creationPcrs === undefined ? [] : assertPcrSelection(o.creationPcrs, title, "options.creationPcrs");
  return { sensitive: { userAuth, data }, outsideInfo, pcrs };
}

function expectTransient(title: string, handle: number): void {
  if (handle >>> 24 !== TPM_HT.TRANSIENT) throw new TpmFormatError(`${title}: the TPM returned handle ${hx32(handle)}, not a transient handle (0x80xxxxxx)`);
}

/** The Name the TPM returned must be nameAlg ‖ H_nameAlg(TPMT_PUBLIC) (Part 1 §16). */
function expectName(title: string, pub: TpmtPublic, name: Uint8Array): void {
  const want = objectName(pub, (alg, d) => hashById(alg, d) ?? new Uint8Array(0));
  if (!bytesEqual(want, name)) throw new TpmFormatError(`${title}: the TPM returned a Name that is not nameAlg ‖ H(public)`);
}

/** The returned public area must be the template but for `unique` (Part 3 §12.1, §24.1). */
function expectShape(title: string, tpl: TpmtPublic, pub: TpmtPublic): void {
  const strip = (p: TpmtPublic): Uint8Array => marshalPublic(p.type === TPM_ALG.ECC ? { ...p, unique: { x: new Uint8Array(0), y: new Uint8Array(0) } } : ({ ...p, unique: new Uint8Array(0) } as TpmtPublic));
  if (!bytesEqual(strip(tpl), strip(pub))) throw new TpmFormatError(`${title}: the public area the TPM returned differs from the template (type, nameAlg, attributes, policy or parameters)`);
}

function readPrivate(r: TpmReader, title: string): Uint8Array {
  const p = r.tpm2b("TPM2B_PRIVATE", 4096).slice();
  if (p.length === 0) throw new TpmFormatError(`${title}: the TPM returned an empty private area`);
  return p;
}

/** TPM2B_CREATION_DATA, creationHash (checked = H_nameAlg(creationData)) and TPMT_TK_CREATION. */
function readCreationOut(r: TpmReader, title: string, pub: TpmtPublic): { creationData: CreationData; creationHash: Uint8Array; creationTicket: Ticket } {
  const raw = r.tpm2b("TPM2B_CREATION_DATA", 0xffff);
  const inner = new TpmReader(raw);
  const creationData = readCreationData(inner);
  inner.expectEnd("TPMS_CREATION_DATA");
  const creationHash = r.tpm2b("creationHash", 64).slice();
  const creationTicket = readTicket(r, TPM_ST.CREATION);
  const want = hashById(pub.nameAlg, raw);
  if (want && !bytesEqual(want, creationHash)) throw new TpmFormatError(`${title}: creationHash is not H_nameAlg(creationData)`);
  return { creationData, creationHash, creationTicket };
}

function sigScheme(o: SchemeOption | undefined, title: string): Scheme {
  if (o?.scheme === undefined) {
    if (o?.hashAlg !== undefined) throw new TpmArgumentError(`${title}: options.hashAlg needs options.scheme`);
    return { scheme: TPM_ALG.NULL, hashAlg: 0 };
  }
  const s = SIG_SCHEMES[assertOneOf(o.scheme, title, "options.scheme", ["rsassa", "rsapss", "ecdsa", "hmac"])];
  return { scheme: s, hashAlg: HASH_ALGS[assertHashAlg(o.hashAlg ?? "sha256", title, "options.hashAlg")].id };
}

function rsaScheme(o: RsaSchemeOption | undefined, title: string): { scheme: Scheme; label: Uint8Array } {
  const label = o?.label === undefined ? new Uint8Array(0) : assertBytes(o.label, title, "options.label", 0, 64);
  if (o?.scheme === undefined) return { scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 }, label };
  const s = assertOneOf(o.scheme, title, "options.scheme", ["oaep", "rsaes"]);
  if (s === "rsaes") return { scheme: { scheme: TPM_ALG.RSAES, hashAlg: 0 }, label };
  return { scheme: { scheme: TPM_ALG.OAEP, hashAlg: HASH_ALGS[assertHashAlg(o.hashAlg ?? "sha256", title, "options.hashAlg")].id }, label };
}

/** The signature must be of the scheme and hash asked for, or any non-NULL one when none was asked (Part 3 §20.2). */
function expectSignature(title: string, sig: TpmtSignature, asked: Scheme): TpmtSignature {
  if (sig.sigAlg === TPM_ALG.NULL) throw new TpmFormatError(`${title}: the TPM returned a NULL signature`);
  if (asked.scheme !== TPM_ALG.NULL && (sig.sigAlg !== asked.scheme || sig.hash !== asked.hashAlg)) {
    throw new TpmFormatError(`${title}: signature scheme 0x${sig.sigAlg.toString(16)}/hash 0x${sig.hash.toString(16)}, asked 0x${asked.scheme.toString(16)}/0x${asked.hashAlg.toString(16)}`);
  }
  return sig;
}

/** TPM2B_ATTEST and TPMT_SIGNATURE of an attestation command, checked: magic, type, extraData, scheme (Part 3 §18). */
function readAttestResult(r: TpmReader, title: string, type: number, extraData: Uint8Array, scheme: Scheme): AttestResult {
  const quoted = r.tpm2b("TPM2B_ATTEST", 0xffff).slice();
  const signature = expectSignature(title, readSignature(r), scheme);
  const attest = unmarshalAttest(quoted); // refuses a magic other than TPM_GENERATED_VALUE
  if (attest.type !== type) throw new TpmFormatError(`${title}: attest.type 0x${attest.type.toString(16)}, expected 0x${type.toString(16)}`);
  if (!bytesEqual(attest.extraData, extraData)) throw new TpmFormatError(`${title}: attest.extraData is not the qualifyingData sent`);
  return { quoted, attest, signature };
}

function readEccPoint(r: TpmReader, what: string): EccPoint {
  const size = r.u16(`${what}.size`);
  const inner = new TpmReader(r.bytesN(size, what));
  const x = inner.tpm2b(`${what}.x`, 66).slice();
  const y = inner.tpm2b(`${what}.y`, 66).slice();
  inner.expectEnd(what);
  return { x, y };
}

function writeEccPoint(w: TpmWriter, p: EccPoint): void {
  const inner = new TpmWriter(140);
  inner.tpm2b(p.x).tpm2b(p.y);
  w.tpm2b(inner.finish());
}
