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
import { buildCommand, parseResponse, type CommandSpec } from "../wire/command.js";
import * as C from "../wire/commands.js";
import { TPM_ALG, TPM_CAP, TPM_HT, TPM_PT, TPM_RC, TPM_RH, TPM_SU, TPMA_NV } from "../wire/constants.js";
import { TpmResponseError } from "../wire/rc.js";
import { HASH_ALGS, HIERARCHIES, hashName, type HashAlgName, type Hierarchy, type PcrSelect, type PcrSelection } from "../wire/types.js";

/** Options every typed call accepts: cancellation, locality and a timeout override. */
export type CallOptions = TransmitOptions;

/** Options with a password for the authorized handle. */
export interface AuthCallOptions extends CallOptions {
  /** Password for the authorizing entity (empty by default); a string is taken as UTF-8. */
  auth?: Uint8Array | string;
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
 * exception: a string there is taken as UTF-8.
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
    let cmd: Uint8Array;
    let spec: CommandSpec<R>;
    try {
      assertCallOptions(options, title);
      spec = make();
      cmd = buildCommand(spec);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.chip.transmit(cmd, options).then((rsp) => parseResponse(spec, rsp));
  }

  /** Runs a spec whose arguments were checked already (the inner steps of a multi-command call). */
  #send<R>(spec: CommandSpec<R>, options: CallOptions | undefined): Promise<R> {
    let cmd: Uint8Array;
    try {
      cmd = buildCommand(spec);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.chip.transmit(cmd, options).then((rsp) => parseResponse(spec, rsp));
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
      return C.pcrExtendCmd(index, list, { password: assertAuth(options?.auth, title, "options.auth") });
    });
  }
  /**
   * TPM2_PCR_Event (Part 3 §22.3): the TPM hashes `data` (bytes) with every bank's hash and
   * extends `pcr` (nothing for TPM_RH_NULL); returns the digests.
   */
  async pcrEvent(pcr: number, data: Uint8Array, options?: AuthCallOptions): Promise<PcrDigests> {
    const title = "tpm.pcrEvent";
    const r = await this.#call(title, options, () => C.pcrEventCmd(assertPcrIndex(pcr, title, "pcr", true), assertBytes(data, title, "data"), { password: assertAuth(options?.auth, title, "options.auth") }));
    return byBank(r);
  }
  /** TPM2_PCR_Reset. Part 3 §22.8. */
  pcrReset(pcr: number, options?: AuthCallOptions): Promise<void> {
    const title = "tpm.pcrReset";
    return this.#call(title, options, () => C.pcrResetCmd(assertPcrIndex(pcr, title), { password: assertAuth(options?.auth, title, "options.auth") }));
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
    return this.#call(title, options, () => C.sequenceUpdateCmd(sequenceHandle(handle, title), assertBytes(data, title, "data"), { password: assertAuth(options?.auth, title, "options.auth") }));
  }
  /** TPM2_SequenceComplete. Part 3 §17.5. */
  sequenceComplete(handle: number, data: Uint8Array = new Uint8Array(0), hierarchy: Hierarchy = "null", options?: AuthCallOptions): Promise<C.HashResult> {
    const title = "tpm.sequenceComplete";
    return this.#call(title, options, () =>
      C.sequenceCompleteCmd(sequenceHandle(handle, title), assertBytes(data, title, "data"), assertHierarchy(hierarchy, title), { password: assertAuth(options?.auth, title, "options.auth") }),
    );
  }
  /** TPM2_EventSequenceComplete: finishes an event sequence and extends `pcr`. Part 3 §17.6. */
  async eventSequenceComplete(pcr: number, handle: number, data: Uint8Array = new Uint8Array(0), options?: AuthCallOptions & { sequenceAuth?: Uint8Array | string }): Promise<PcrDigests> {
    const title = "tpm.eventSequenceComplete";
    const r = await this.#call(title, options, () =>
      C.eventSequenceCompleteCmd(
        assertPcrIndex(pcr, title, "pcr", true),
        sequenceHandle(handle, title),
        assertBytes(data, title, "data"),
        { password: assertAuth(options?.auth, title, "options.auth") },
        { password: assertAuth(options?.sequenceAuth, title, "options.sequenceAuth") },
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
    return this.#call(title, options, () => C.clearCmd(assertHierarchy(options.hierarchy ?? "lockout", title, "options.hierarchy", ["lockout", "platform"]), { password: assertAuth(options.auth, title, "options.auth") }));
  }
  /** TPM2_ClearControl (Part 3 §24.7): `disable` true blocks TPM2_Clear. */
  clearControl(disable: boolean, options: AuthCallOptions & { hierarchy?: "lockout" | "platform" } = {}): Promise<void> {
    const title = "tpm.clearControl";
    return this.#call(title, options, () =>
      C.clearControlCmd(assertHierarchy(options.hierarchy ?? "lockout", title, "options.hierarchy", ["lockout", "platform"]), assertBoolean(disable, title, "disable"), { password: assertAuth(options.auth, title, "options.auth") }),
    );
  }
  /** TPM2_HierarchyChangeAuth (Part 3 §24.8); a string `newAuth` is UTF-8. */
  hierarchyChangeAuth(hierarchy: Hierarchy, newAuth: Uint8Array | string, options?: AuthCallOptions): Promise<void> {
    const title = "tpm.hierarchyChangeAuth";
    return this.#call(title, options, () => {
      const h = assertHierarchy(hierarchy, title);
      if (newAuth === undefined) throw new TpmArgumentError(`${title}: newAuth must be a Uint8Array or a string (UTF-8), got undefined`);
      return C.hierarchyChangeAuthCmd(h, assertAuth(newAuth, title, "newAuth")!, { password: assertAuth(options?.auth, title, "options.auth") });
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
      return C.nvDefineSpaceCmd(assertHierarchy(o.hierarchy ?? "owner", title), assertAuth(o.authValue, title, "authValue"), pub, { password: assertAuth(o.auth, title, "auth") });
    });
  }
  /** TPM2_NV_UndefineSpace. Part 3 §31.4. */
  nvUndefineSpace(index: number, options: AuthCallOptions & { hierarchy?: Hierarchy } = {}): Promise<void> {
    const title = "tpm.nvUndefineSpace";
    return this.#call(title, options, () =>
      C.nvUndefineSpaceCmd(assertHierarchy(options.hierarchy ?? "owner", title, "options.hierarchy"), nvIndex(index, title), { password: assertAuth(options.auth, title, "options.auth") }),
    );
  }
  /** TPM2_NV_ReadPublic. Part 3 §31.6. */
  nvReadPublic(index: number, options?: CallOptions): Promise<{ nvPublic: C.NvPublic; name: Uint8Array }> {
    return this.#call("tpm.nvReadPublic", options, () => C.nvReadPublicCmd(nvIndex(index, "tpm.nvReadPublic")));
  }
  /** TPM2_NV_Write (Part 3 §31.7) of `data` (bytes) at `offset`, split into 1024-byte writes. */
  async nvWrite(index: number, data: Uint8Array, options: NvAuthOptions & { offset?: number } = {}): Promise<void> {
    const title = "tpm.nvWrite";
    const { ah, password } = nvAuth(index, options, title);
    assertBytes(data, title, "data");
    const offset = assertInteger(options.offset ?? 0, title, "options.offset", 0, 0xffff);
    if (offset + data.length > 0x10000) throw new TpmArgumentError(`${title}: options.offset + data.length must be at most 65536, got ${offset + data.length}`);
    const step = 1024;
    let off = 0;
    do {
      const chunk = data.subarray(off, off + step);
      await this.#send(C.nvWriteCmd(ah, index, chunk, offset + off, { password }), options);
      off += chunk.length;
    } while (off < data.length);
  }
  /** TPM2_NV_Read (Part 3 §31.13); reads the whole index when `size` is not given. */
  async nvRead(index: number, options: NvAuthOptions & { size?: number; offset?: number } = {}): Promise<Uint8Array> {
    const title = "tpm.nvRead";
    const { ah, password } = nvAuth(index, options, title);
    const offset = assertInteger(options.offset ?? 0, title, "options.offset", 0, 0xffff);
    if (options.size !== undefined) assertInteger(options.size, title, "options.size", 0, 0xffff);
    const size = options.size ?? (await this.#send(C.nvReadPublicCmd(index), options)).nvPublic.dataSize - offset;
    if (size < 0) throw new TpmArgumentError(`${title}: options.offset ${offset} is past the end of the index`);
    const out = new Uint8Array(size);
    const step = 1024;
    for (let off = 0; off < size; ) {
      const n = Math.min(step, size - off);
      const part = await this.#send(C.nvReadCmd(ah, index, n, offset + off, { password }), options);
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
      const { ah, password } = nvAuth(index, options, title);
      return C.nvIncrementCmd(ah, index, { password });
    });
  }
  /** TPM2_NV_Extend (extend indices) with `data` (bytes). Part 3 §31.9. */
  nvExtend(index: number, data: Uint8Array, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvExtend";
    return this.#call(title, options, () => {
      const { ah, password } = nvAuth(index, options, title);
      return C.nvExtendCmd(ah, index, assertBytes(data, title, "data"), { password });
    });
  }
  /** TPM2_NV_SetBits (bit-field indices); `bits` is a bigint (UINT64). Part 3 §31.10. */
  nvSetBits(index: number, bits: bigint, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvSetBits";
    return this.#call(title, options, () => {
      const { ah, password } = nvAuth(index, options, title);
      return C.nvSetBitsCmd(ah, index, assertU64(bits, title, "bits"), { password });
    });
  }
  /** TPM2_NV_ReadLock. Part 3 §31.14. */
  nvReadLock(index: number, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvReadLock";
    return this.#call(title, options, () => {
      const { ah, password } = nvAuth(index, options, title);
      return C.nvReadLockCmd(ah, index, { password });
    });
  }
  /** TPM2_NV_WriteLock. Part 3 §31.11. */
  nvWriteLock(index: number, options: NvAuthOptions = {}): Promise<void> {
    const title = "tpm.nvWriteLock";
    return this.#call(title, options, () => {
      const { ah, password } = nvAuth(index, options, title);
      return C.nvWriteLockCmd(ah, index, { password });
    });
  }
  /** Reads a counter index as a bigint. */
  async nvReadCounter(index: number, options: NvAuthOptions = {}): Promise<bigint> {
    nvAuth(index, options, "tpm.nvReadCounter");
    const b = await this.nvRead(index, { ...options, size: 8, offset: 0 });
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
  }

  /** Closes the chip and its transport. */
  close(): Promise<void> {
    return this.chip.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
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
function nvAuth(index: unknown, o: NvAuthOptions, title: string): { ah: number; password: Uint8Array | string | undefined } {
  const i = nvIndex(index, title);
  assertCallOptions(o, title);
  const password = assertAuth(o.auth, title, "options.auth");
  const a = o.authHandle;
  if (a === undefined || a === "index") return { ah: i, password };
  const named = typeof a === "string" && Object.hasOwn(HIERARCHIES, a);
  if (!named && !(typeof a === "number" && Number.isInteger(a) && a >= 0 && a <= 0xffffffff)) {
    throw new TpmArgumentError(`${title}: options.authHandle must be "index" or one of ${Object.keys(HIERARCHIES).join(", ")} or a handle, got ${describeValue(a)}`);
  }
  return { ah: assertHierarchy(a, title, "options.authHandle"), password };
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
