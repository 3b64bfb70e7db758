/**
 * The typed TPM 2.0 client: {@link Tpm}. Commands are built from descriptors (`src/wire/commands.ts`)
 * and run through a {@link Chip} over any transport.
 *
 * @packageDocumentation
 */
import { Chip, type ChipOptions, type TransmitOptions } from "../core/chip.js";
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import type { Transport } from "../core/transport.js";
import { buildCommand, parseResponse, type CommandSpec } from "../wire/command.js";
import * as C from "../wire/commands.js";
import { TPM_CAP, TPM_HT, TPM_PT, TPM_RC, TPM_SU, TPMA_NV } from "../wire/constants.js";
import { TpmResponseError } from "../wire/rc.js";
import { HASH_ALGS, hashId, hashName, hierarchyHandle, toPcrSelects, type HashAlgName, type Hierarchy, type PcrSelect, type PcrSelection } from "../wire/types.js";

/** Options every typed call accepts: cancellation, locality and a timeout override. */
export type CallOptions = TransmitOptions;

/** Options with a password for the authorized handle. */
export interface AuthCallOptions extends CallOptions {
  /** Password for the authorizing entity (empty by default). */
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
  /** The index's own password. */
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
    this.chip = chip;
  }

  /**
   * Probes the transport and (by default) sends TPM2_Startup(CLEAR).
   *
   * @param transport - any Transport (or an existing Chip)
   * @returns the open TPM
   * @throws TpmNotFoundError when there is no TPM, ProbeDeferredError when a dependency is missing,
   *   TpmResponseError when Startup fails
   */
  static async open(transport: Transport | Chip, options: TpmOpenOptions = {}): Promise<Tpm> {
    const chip = transport instanceof Chip ? transport : new Chip(transport, options);
    await chip.open({ signal: options.signal });
    const tpm = new Tpm(chip);
    const su = options.startup ?? "clear";
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
    return this.chip.transmit(command, options);
  }

  /**
   * Runs a command descriptor: builds it, transmits it, parses the response.
   * @throws TpmResponseError for a non-success response code
   */
  run<R>(spec: CommandSpec<R>, options?: CallOptions): Promise<R> {
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
    return this.run(C.startupCmd(type === "state" ? TPM_SU.STATE : TPM_SU.CLEAR), options);
  }
  /** TPM2_Shutdown. Part 3 §9.4. */
  shutdown(type: "clear" | "state" = "clear", options?: CallOptions): Promise<void> {
    return this.run(C.shutdownCmd(type === "state" ? TPM_SU.STATE : TPM_SU.CLEAR), options);
  }
  /** TPM2_SelfTest. Part 3 §10.2. */
  selfTest(full = false, options?: CallOptions): Promise<void> {
    return this.run(C.selfTestCmd(full), options);
  }
  /** TPM2_IncrementalSelfTest; returns the algorithms still to be tested. Part 3 §10.3. */
  incrementalSelfTest(algs: readonly number[], options?: CallOptions): Promise<number[]> {
    return this.run(C.incrementalSelfTestCmd(algs), options);
  }
  /** TPM2_GetTestResult. Part 3 §10.4. */
  getTestResult(options?: CallOptions): Promise<{ outData: Uint8Array; testResult: number }> {
    return this.run(C.getTestResultCmd(), options);
  }

  /**
   * `count` random bytes from the TPM (TPM2_GetRandom, Part 3 §16.1), asking again while the TPM
   * returns fewer than asked (it returns at most its largest digest size per call).
   */
  getRandom(count: number, options?: CallOptions): Promise<Uint8Array> {
    if (!Number.isInteger(count) || count < 0 || count > 0xffff) return Promise.reject(new TpmArgumentError(`getRandom: count must be 0–65535, got ${count}`));
    return this.run(C.getRandomCmd(count), options).then((first) => (first.length >= count ? (first.length === count ? first : first.subarray(0, count)) : this.#moreRandom(first, count, options)));
  }

  async #moreRandom(first: Uint8Array, count: number, options?: CallOptions): Promise<Uint8Array> {
    const out = new Uint8Array(count);
    out.set(first);
    let have = first.length;
    while (have < count) {
      const part = await this.run(C.getRandomCmd(count - have), options);
      if (part.length === 0) throw new TpmFormatError("GetRandom returned no bytes");
      const n = Math.min(part.length, count - have);
      out.set(part.subarray(0, n), have);
      have += n;
    }
    return out;
  }
  /** TPM2_StirRandom. Part 3 §16.2. */
  stirRandom(data: Uint8Array, options?: CallOptions): Promise<void> {
    return this.run(C.stirRandomCmd(data), options);
  }

  /** TPM2_GetCapability, one call. Part 3 §30.2. */
  getCapability(capability: number, property: number, count: number, options?: CallOptions): Promise<{ moreData: boolean; data: C.CapabilityData }> {
    return this.run(C.getCapabilityCmd(capability, property, count), options);
  }

  /** Every TPM_PT property from `first` up to the end of its group (fixed 0x100.., variable 0x200..). */
  async getProperties(group: "fixed" | "variable" = "fixed", options?: CallOptions): Promise<Map<number, number>> {
    const start = group === "fixed" ? TPM_PT.FIXED : TPM_PT.VAR;
    const out = new Map<number, number>();
    let next = start;
    for (let guard = 0; guard < 64; guard++) {
      const { moreData, data } = await this.getCapability(TPM_CAP.TPM_PROPERTIES, next, 256, options);
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
    const { data } = await this.getCapability(TPM_CAP.TPM_PROPERTIES, property, 1, options);
    if (data.capability !== TPM_CAP.TPM_PROPERTIES) return undefined;
    const p = data.properties[0];
    return p && p.property === property ? p.value : undefined;
  }

  /** The algorithms the TPM implements, with their TPMA_ALGORITHM bits. */
  async getAlgorithms(options?: CallOptions): Promise<{ alg: number; attributes: number }[]> {
    return this.#collect(TPM_CAP.ALGS, 0, (d) => (d.capability === TPM_CAP.ALGS ? d.algorithms : []), (x) => x.alg, options);
  }
  /** The commands the TPM implements (TPMA_CC; the low 16 bits are the command index). */
  async getCommands(options?: CallOptions): Promise<{ commandIndex: number; attributes: number }[]> {
    return this.#collect(TPM_CAP.COMMANDS, 0, (d) => (d.capability === TPM_CAP.COMMANDS ? d.commands : []), (x) => x.commandIndex, options);
  }
  /** Handles of one type in use (e.g. TPM_HT.NV_INDEX), from TPM_CAP_HANDLES. */
  async getHandles(type: number = TPM_HT.NV_INDEX, options?: CallOptions): Promise<number[]> {
    const base = (type & 0xff) << 24;
    const all = await this.#collect(TPM_CAP.HANDLES, base, (d) => (d.capability === TPM_CAP.HANDLES ? d.handles : []), (x) => x, options);
    return all.filter((h) => h >>> 24 === (type & 0xff));
  }
  /** The PCR banks allocated and their PCRs (TPM_CAP_PCRS). */
  async getPcrBanks(options?: CallOptions): Promise<PcrSelect[]> {
    const { data } = await this.getCapability(TPM_CAP.PCRS, 0, 1, options);
    return data.capability === TPM_CAP.PCRS ? data.pcrs : [];
  }

  async #collect<T>(cap: number, first: number, pick: (d: C.CapabilityData) => T[], key: (x: T) => number, options?: CallOptions): Promise<T[]> {
    const out: T[] = [];
    let next = first;
    for (let guard = 0; guard < 256; guard++) {
      const { moreData, data } = await this.getCapability(cap, next, 256, options);
      const items = pick(data);
      out.push(...items);
      if (!moreData || items.length === 0) break;
      next = (key(items[items.length - 1]!) + 1) >>> 0;
    }
    return out;
  }

  /** Manufacturer, version and sizes from the fixed properties. */
  async getInfo(options?: CallOptions): Promise<TpmInfo> {
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
   * at most 8 digests per call).
   *
   * @example
   * ```ts
   * const { sha256 } = await tpm.pcrRead({ sha256: [0, 1, 2] });
   * ```
   */
  async pcrRead(selection: PcrSelection, options?: CallOptions): Promise<PcrValues> {
    const out: PcrValues = {};
    let want = toPcrSelects(selection).filter((s) => s.pcrs.length > 0);
    let left = 0;
    for (const s of want) {
      out[hashName(s.hash) as HashAlgName] ??= {};
      left += s.pcrs.length;
    }
    for (let guard = 0; want.length > 0; guard++) {
      if (guard > 64) throw new TpmFormatError("PCR_Read made no progress");
      const r = await this.run(C.pcrReadCmd(want), options);
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

  /** TPM2_PCR_Extend (Part 3 §22.2): extends each bank given. */
  pcrExtend(pcr: number, digests: PcrDigests, options?: AuthCallOptions): Promise<void> {
    const list: C.TaggedDigest[] = [];
    for (const [name, d] of Object.entries(digests)) {
      if (!d) continue;
      const alg = HASH_ALGS[name as HashAlgName];
      if (!alg) throw new TpmArgumentError(`unknown hash algorithm "${name}"`);
      if (d.length !== alg.size) throw new TpmArgumentError(`${name} digest must be ${alg.size} bytes, got ${d.length}`);
      list.push({ hash: alg.id, digest: d });
    }
    return this.run(C.pcrExtendCmd(checkPcr(pcr), list, { password: options?.auth }), options);
  }
  /** TPM2_PCR_Event (Part 3 §22.3): the TPM hashes `data` into every bank; returns the digests. */
  async pcrEvent(pcr: number, data: Uint8Array, options?: AuthCallOptions): Promise<PcrDigests> {
    const r = await this.run(C.pcrEventCmd(checkPcr(pcr), data, { password: options?.auth }), options);
    return byBank(r);
  }
  /** TPM2_PCR_Reset. Part 3 §22.8. */
  pcrReset(pcr: number, options?: AuthCallOptions): Promise<void> {
    return this.run(C.pcrResetCmd(checkPcr(pcr), { password: options?.auth }), options);
  }

  /** TPM2_Hash (Part 3 §15.4), for data up to the TPM's input buffer (1024 bytes typically). */
  hash(data: Uint8Array, alg: HashAlgName = "sha256", hierarchy: Hierarchy = "null", options?: CallOptions): Promise<C.HashResult> {
    return this.run(C.hashCmd(data, hashId(alg), hierarchyHandle(hierarchy)), options);
  }
  /** TPM2_HashSequenceStart; returns the sequence handle. Part 3 §17.3. */
  hashSequenceStart(alg: HashAlgName | "null" = "sha256", auth?: Uint8Array | string, options?: CallOptions): Promise<number> {
    return this.run(C.hashSequenceStartCmd(alg === "null" ? 0x0010 : hashId(alg), auth), options);
  }
  /** TPM2_SequenceUpdate. Part 3 §17.4. */
  sequenceUpdate(handle: number, data: Uint8Array, options?: AuthCallOptions): Promise<void> {
    return this.run(C.sequenceUpdateCmd(handle, data, { password: options?.auth }), options);
  }
  /** TPM2_SequenceComplete. Part 3 §17.5. */
  sequenceComplete(handle: number, data: Uint8Array = new Uint8Array(0), hierarchy: Hierarchy = "null", options?: AuthCallOptions): Promise<C.HashResult> {
    return this.run(C.sequenceCompleteCmd(handle, data, hierarchyHandle(hierarchy), { password: options?.auth }), options);
  }
  /** TPM2_EventSequenceComplete: finishes an event sequence and extends `pcr`. Part 3 §17.6. */
  async eventSequenceComplete(pcr: number, handle: number, data: Uint8Array = new Uint8Array(0), options?: AuthCallOptions & { sequenceAuth?: Uint8Array | string }): Promise<PcrDigests> {
    const r = await this.run(C.eventSequenceCompleteCmd(pcr, handle, data, { password: options?.auth }, { password: options?.sequenceAuth }), options);
    return byBank(r);
  }
  /**
   * Hashes data of any length on the TPM: TPM2_Hash when it fits one buffer, else a hash
   * sequence in 1024-byte steps.
   */
  async digest(data: Uint8Array, alg: HashAlgName = "sha256", options?: CallOptions): Promise<Uint8Array> {
    const step = 1024;
    if (data.length <= step) return (await this.hash(data, alg, "null", options)).digest;
    const h = await this.hashSequenceStart(alg, undefined, options);
    let off = 0;
    while (data.length - off > step) {
      await this.sequenceUpdate(h, data.subarray(off, off + step), options);
      off += step;
    }
    return (await this.sequenceComplete(h, data.subarray(off), "null", options)).digest;
  }

  /** TPM2_ReadClock. Part 3 §29.1. */
  readClock(options?: CallOptions): Promise<C.TimeInfo> {
    return this.run(C.readClockCmd(), options);
  }

  /** TPM2_Clear (Part 3 §24.6), authorized by lockout (default) or platform. */
  clear(options: AuthCallOptions & { hierarchy?: "lockout" | "platform" } = {}): Promise<void> {
    return this.run(C.clearCmd(hierarchyHandle(options.hierarchy ?? "lockout"), { password: options.auth }), options);
  }
  /** TPM2_ClearControl (Part 3 §24.7): `disable` true blocks TPM2_Clear. */
  clearControl(disable: boolean, options: AuthCallOptions & { hierarchy?: "lockout" | "platform" } = {}): Promise<void> {
    return this.run(C.clearControlCmd(hierarchyHandle(options.hierarchy ?? "lockout"), disable, { password: options.auth }), options);
  }
  /** TPM2_HierarchyChangeAuth. Part 3 §24.8. */
  hierarchyChangeAuth(hierarchy: Hierarchy, newAuth: Uint8Array | string, options?: AuthCallOptions): Promise<void> {
    return this.run(C.hierarchyChangeAuthCmd(hierarchyHandle(hierarchy), newAuth, { password: options?.auth }), options);
  }

  /** TPM2_NV_DefineSpace. Part 3 §31.3. */
  nvDefineSpace(o: NvDefineOptions): Promise<void> {
    const pub: C.NvPublic = {
      nvIndex: o.index >>> 0,
      nameAlg: hashId(o.nameAlg ?? "sha256"),
      attributes: (o.attributes ?? DEFAULT_NV_ATTRIBUTES) >>> 0,
      authPolicy: o.authPolicy ?? new Uint8Array(0),
      dataSize: o.size,
    };
    if (!Number.isInteger(o.size) || o.size < 0 || o.size > 0xffff) throw new TpmArgumentError(`NV size must be 0–65535, got ${o.size}`);
    if (pub.nvIndex >>> 24 !== TPM_HT.NV_INDEX) throw new TpmArgumentError(`0x${pub.nvIndex.toString(16)} is not an NV index handle (0x01xxxxxx)`);
    return this.run(C.nvDefineSpaceCmd(hierarchyHandle(o.hierarchy ?? "owner"), o.authValue, pub, { password: o.auth }), o);
  }
  /** TPM2_NV_UndefineSpace. Part 3 §31.4. */
  nvUndefineSpace(index: number, options: AuthCallOptions & { hierarchy?: Hierarchy } = {}): Promise<void> {
    return this.run(C.nvUndefineSpaceCmd(hierarchyHandle(options.hierarchy ?? "owner"), index, { password: options.auth }), options);
  }
  /** TPM2_NV_ReadPublic. Part 3 §31.6. */
  nvReadPublic(index: number, options?: CallOptions): Promise<{ nvPublic: C.NvPublic; name: Uint8Array }> {
    return this.run(C.nvReadPublicCmd(index), options);
  }
  /** TPM2_NV_Write (Part 3 §31.7), split into 1024-byte writes. */
  async nvWrite(index: number, data: Uint8Array, options: NvAuthOptions & { offset?: number } = {}): Promise<void> {
    const ah = nvAuthHandle(index, options);
    const step = 1024;
    let off = 0;
    do {
      const chunk = data.subarray(off, off + step);
      await this.run(C.nvWriteCmd(ah, index, chunk, (options.offset ?? 0) + off, { password: options.auth }), options);
      off += chunk.length;
    } while (off < data.length);
  }
  /** TPM2_NV_Read (Part 3 §31.13); reads the whole index when `size` is not given. */
  async nvRead(index: number, options: NvAuthOptions & { size?: number; offset?: number } = {}): Promise<Uint8Array> {
    const ah = nvAuthHandle(index, options);
    const offset = options.offset ?? 0;
    const size = options.size ?? (await this.nvReadPublic(index, options)).nvPublic.dataSize - offset;
    const out = new Uint8Array(size);
    const step = 1024;
    for (let off = 0; off < size; ) {
      const n = Math.min(step, size - off);
      const part = await this.run(C.nvReadCmd(ah, index, n, offset + off, { password: options.auth }), options);
      if (part.length !== n) throw new TpmFormatError(`NV_Read returned ${part.length} bytes, asked ${n}`);
      out.set(part, off);
      off += n;
    }
    return out;
  }
  /** TPM2_NV_Increment (counter indices). Part 3 §31.8. */
  nvIncrement(index: number, options: NvAuthOptions = {}): Promise<void> {
    return this.run(C.nvIncrementCmd(nvAuthHandle(index, options), index, { password: options.auth }), options);
  }
  /** TPM2_NV_Extend (extend indices). Part 3 §31.9. */
  nvExtend(index: number, data: Uint8Array, options: NvAuthOptions = {}): Promise<void> {
    return this.run(C.nvExtendCmd(nvAuthHandle(index, options), index, data, { password: options.auth }), options);
  }
  /** TPM2_NV_SetBits (bit-field indices). Part 3 §31.10. */
  nvSetBits(index: number, bits: bigint, options: NvAuthOptions = {}): Promise<void> {
    return this.run(C.nvSetBitsCmd(nvAuthHandle(index, options), index, bits, { password: options.auth }), options);
  }
  /** TPM2_NV_ReadLock. Part 3 §31.14. */
  nvReadLock(index: number, options: NvAuthOptions = {}): Promise<void> {
    return this.run(C.nvReadLockCmd(nvAuthHandle(index, options), index, { password: options.auth }), options);
  }
  /** TPM2_NV_WriteLock. Part 3 §31.11. */
  nvWriteLock(index: number, options: NvAuthOptions = {}): Promise<void> {
    return this.run(C.nvWriteLockCmd(nvAuthHandle(index, options), index, { password: options.auth }), options);
  }
  /** Reads a counter index as a bigint. */
  async nvReadCounter(index: number, options: NvAuthOptions = {}): Promise<bigint> {
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

function checkPcr(pcr: number): number {
  if (!Number.isInteger(pcr) || pcr < 0 || pcr > 31) throw new TpmArgumentError(`PCR index must be 0–31, got ${pcr}`);
  return pcr;
}

function nvAuthHandle(index: number, o: NvAuthOptions): number {
  return o.authHandle === undefined || o.authHandle === "index" ? index >>> 0 : hierarchyHandle(o.authHandle);
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
