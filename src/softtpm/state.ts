/**
 * The SoftTpm state blob: a versioned, checksummed, bounds-checked encoding of everything a TPM
 * keeps across power cycles (hierarchy auth values, NV indices, clock and reset counters, the
 * orderly-shutdown flag and, after Shutdown(STATE), the saved PCR state).
 *
 * Layout (all integers big-endian):
 * ```
 * magic "TKSS" | u16 version (2) | u16 reserved (0) | u32 bodyLength | body | SHA-256(header ‖ body)
 * ```
 * Version 2 appends the hierarchy primary seeds and the persistent objects to the version-1 body.
 * A version-1 blob still decodes: its seeds are derived from its proofSeed (KDFa with the labels
 * "SPS", "EPS", "PPS"), so the migration needs no randomness and gives the same seeds each time.
 * Version 3 appends the owner, endorsement and lockout authPolicy (TPM2_SetPrimaryPolicy) and the
 * PCR policy group's (TPM2_PCR_SetAuthPolicy), the
 * dictionary-attack parameters (TPM2_DictionaryAttackParameters) and the PCR allocation, active
 * and pending (TPM2_PCR_Allocate); a version-1 or -2 blob decodes with their defaults (empty
 * policies, swtpm's DA parameters, every PCR of every bank allocated).
 * The decoder refuses, with {@link TpmStateFileError}, any blob whose magic, version, length,
 * checksum, field sizes or field values are wrong: a bad state file is never replaced by a fresh
 * TPM (the lesson of CVE-2021-3623, CVE-2022-23645 and libtpms #614/#616).
 *
 * @packageDocumentation
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmFormatError, TpmStateFileError } from "../errors/index.js";
import { TpmReader, TpmWriter } from "../wire/buffer.js";
import { TPM_HT, TPM_NT, TPMA_NV } from "../wire/constants.js";
import { HASH_IMPLS, PCR_COUNT, hashImpl } from "./tables.js";
import { hmac } from "@noble/hashes/hmac.js";
import { LOCKOUT_INTERVAL_S, LOCKOUT_RECOVERY_S, MAX_AUTH_FAIL } from "./engine/limits.js";

/** Magic bytes at the start of a state blob: "TKSS". */
export const STATE_MAGIC = 0x544b5353;
/** The format version this code writes and reads. */
export const STATE_VERSION = 3;
/** The older format versions the decoder migrates. */
export const STATE_VERSIONS_MIGRATED: readonly number[] = [1, 2];
/** Bytes of each hierarchy primary seed (TPM 2.0 Part 1 §14.3.2: at least twice the security strength; 64 = SHA-512). */
export const PRIMARY_SEED_SIZE = 64;
/** Persistent objects SoftTpm holds (TPM_PT_HR_PERSISTENT_MIN; libtpms MIN_EVICT_OBJECTS is 7). */
export const PERSISTENT_OBJECTS_MAX = 7;
/** Largest marshalled public or sensitive area of a persistent object. */
export const OBJECT_AREA_MAX = 1024;
/** Largest NV index data size SoftTpm allows (bytes). */
export const NV_DATA_MAX = 2048;
/** Largest number of NV indices SoftTpm holds (TPM_PT_NV_INDEX_MAX is per index; this is the count). */
export const NV_INDICES_MAX = 64;
/** Largest auth value or policy digest (bytes): the largest digest, SHA-512. */
export const AUTH_MAX = 64;

const HEADER = 12;
const TRAILER = 32;

/** One NV index (TPMS_NV_PUBLIC plus its auth value and data). TPM 2.0 Part 2 §13.5. */
export interface NvIndexState {
  handle: number;
  nameAlg: number;
  /** TPMA_NV, including the WRITTEN / WRITELOCKED / READLOCKED state bits. */
  attributes: number;
  authValue: Uint8Array;
  authPolicy: Uint8Array;
  dataSize: number;
  /** Exactly `dataSize` bytes. */
  data: Uint8Array;
}

/** What Shutdown(STATE) saves for the next Startup(STATE). TPM 2.0 Part 3 §9.4. */
export interface SavedState {
  pcrUpdateCounter: number;
  platformAuth: Uint8Array;
  /** One entry per bank SoftTpm implements, in TPM_ALG_ID order (sha1, sha256, sha384, sha512): 24 digests back to back. */
  pcrs: Uint8Array[];
  /**
   * The Startup before this Shutdown(STATE) came from locality 3 (a resume must then come from
   * locality 3 too, and one from 3 needs it; TPM 2.0 Part 3 §9.3, as libtpms). Encoded in the
   * hasSaved byte (2 instead of 1), so version-1 blobs written before it decode unchanged.
   */
  startupLocality3?: boolean;
}

/**
 * An object made persistent by TPM2_EvictControl (TPM 2.0 Part 3 §28.5): its handle, hierarchy,
 * its TPMT_PUBLIC and TPMT_SENSITIVE as marshalled, its qualified name and its parent's Name.
 */
export interface PersistentObjectState {
  handle: number;
  hierarchy: number;
  publicArea: Uint8Array;
  sensitiveArea: Uint8Array;
  /** Empty: H(hierarchy handle ‖ Name), as for a primary object. */
  qualifiedName?: Uint8Array;
  /** Empty for a primary object. */
  parentName?: Uint8Array;
}

/** A hierarchy's authPolicy (TPM2_SetPrimaryPolicy, Part 3 §24.3): its hash and a digest of that size. */
export interface HierarchyPolicyState {
  alg: number;
  policy: Uint8Array;
}

/**
 * The dictionary-attack parameters (TPM2_DictionaryAttackParameters, Part 3 §25.3; Part 1
 * §19.8.6): maxTries (TPM_PT_MAX_AUTH_FAIL), recoveryTime and lockoutRecovery in seconds
 * (TPM_PT_LOCKOUT_INTERVAL, TPM_PT_LOCKOUT_RECOVERY).
 */
export interface DaParameters {
  maxTries: number;
  recoveryTime: number;
  lockoutRecovery: number;
}

/** The dictionary-attack parameters of a new TPM: the values swtpm 0.7.1 reports (measured; the limits module's MAX_AUTH_FAIL and lockout intervals). */
export const DA_DEFAULTS: Readonly<DaParameters> = { maxTries: MAX_AUTH_FAIL, recoveryTime: LOCKOUT_INTERVAL_S, lockoutRecovery: LOCKOUT_RECOVERY_S };

/** Every PCR of a bank (bit i: PCR i): the allocation of a new TPM, in each bank. */
export const PCR_ALL = (1 << PCR_COUNT) - 1;

/**
 * A PCR allocation TPM2_PCR_Allocate accepted (Part 3 §22.5): applied at the next TPM Reset, that
 * is the first Startup after which resetCount differs from the one recorded here.
 */
export interface PendingPcrAllocation {
  /** resetCount when it was accepted (TPM2_Clear, which zeroes resetCount, zeroes it too). */
  resetCount: number;
  /** One mask per bank of HASH_IMPLS (bit i: PCR i). */
  banks: number[];
}

/** Orderly state recorded by the last shutdown: none (power lost), CLEAR or STATE. */
export type OrderlyState = "none" | "clear" | "state";

/** Everything a SoftTpm persists. */
export interface PersistentState {
  disableClear: boolean;
  /**
   * lockoutAuth is blocked after a failure (libtpms keeps this in NV: it survives a power cycle,
   * and the recovery time restarts at power-on; measured against swtpm 0.7.1). Flag bit 2.
   */
  lockoutAuthDisabled?: boolean;
  /**
   * A DA-protected authorization was attempted since the last Startup or Shutdown (libtpms'
   * "DA used" orderly state): if power is lost now, the next Startup counts one DA failure.
   * Flag bit 3.
   */
  daUsed?: boolean;
  clockSafe: boolean;
  orderly: OrderlyState;
  /** Milliseconds the TPM has been powered in its life (TPMS_CLOCK_INFO.clock). */
  clock: number;
  resetCount: number;
  restartCount: number;
  /** Largest value any NV counter ever held (new counters start here, TPM 2.0 Part 3 §31.8). */
  maxCounter: bigint;
  /** Dictionary-attack failure count (TPM_PT_LOCKOUT_COUNTER), TPM 2.0 Part 1 §19.8.6. */
  failedTries: number;
  /** Secret behind the hierarchy proofs (tickets); replaced by TPM2_Clear. 32 bytes. */
  proofSeed: Uint8Array;
  ownerAuth: Uint8Array;
  endorsementAuth: Uint8Array;
  lockoutAuth: Uint8Array;
  nv: NvIndexState[];
  saved: SavedState | undefined;
  /** Storage (owner) hierarchy primary seed, SPS: replaced by TPM2_Clear (Part 1 §14.3.4). */
  storageSeed: Uint8Array;
  /** Endorsement primary seed, EPS (Part 1 §14.3.3). */
  endorsementSeed: Uint8Array;
  /** Platform primary seed, PPS (Part 1 §14.3.5). */
  platformSeed: Uint8Array;
  /** Persistent objects, sorted by handle. */
  persistent: PersistentObjectState[];
  /** ownerPolicy (absent: the Empty Buffer, TPM_ALG_NULL). Version 3. */
  ownerPolicy?: HierarchyPolicyState;
  /** endorsementPolicy (absent: the Empty Buffer). Version 3. */
  endorsementPolicy?: HierarchyPolicyState;
  /** lockoutPolicy (absent: the Empty Buffer). Version 3. */
  lockoutPolicy?: HierarchyPolicyState;
  /** The authPolicy of the PCR policy group (TPM2_PCR_SetAuthPolicy; absent: the Empty Buffer). Version 3. */
  pcrPolicy?: HierarchyPolicyState;
  /** The dictionary-attack parameters (absent: the defaults, as swtpm 0.7.1 reports them: 3 tries, 1000 s recovery, 1000 s lockout recovery; see `daParameters`). Version 3. */
  daParameters?: DaParameters;
  /** The active PCR allocation, one mask per bank of HASH_IMPLS (absent: every PCR of every bank). Version 3. */
  pcrAllocation?: number[];
  /** An allocation waiting for the next TPM Reset. Version 3. */
  pcrAllocationPending?: PendingPcrAllocation;
}

/** The dictionary-attack parameters of a state (its own, else the defaults). */
export function daParameters(s: PersistentState): Readonly<DaParameters> {
  return s.daParameters ?? DA_DEFAULTS;
}

function policyProblem(p: HierarchyPolicyState): string | undefined {
  const a = hashImpl(p.alg);
  if (!a) return `policy hash 0x${p.alg.toString(16)} is not implemented`;
  if (p.policy.length !== a.size) return `policy digest is ${p.policy.length} bytes, ${a.name} needs ${a.size}`;
  return undefined;
}

function allocationProblem(banks: number[]): string | undefined {
  if (banks.length !== HASH_IMPLS.length) return `PCR allocation has ${banks.length} banks, expected ${HASH_IMPLS.length}`;
  if (banks.some((m) => !Number.isInteger(m) || m < 0 || m > PCR_ALL)) return "PCR allocation mask out of range";
  if (banks.every((m) => m === 0)) return "PCR allocation has no PCR";
  return undefined;
}

/** The TPM_NT type of an NV index: TPMA_NV bits 7:4 (TPM 2.0 Part 2 §13.4). */
export function nvType(attributes: number): number {
  return (attributes & TPMA_NV.TPM2_NT_MASK) >>> TPMA_NV.TPM2_NT_SHIFT;
}

/**
 * Checks the invariants of one NV index (shared by the state decoder and NV_DefineSpace).
 *
 * @param nv - the index
 * @returns undefined when valid, else what is wrong
 */
export function nvIndexProblem(nv: NvIndexState): string | undefined {
  if (nv.handle >>> 24 !== TPM_HT.NV_INDEX) return `handle 0x${nv.handle.toString(16)} is not an NV index handle`;
  const alg = hashImpl(nv.nameAlg);
  if (!alg) return `nameAlg 0x${nv.nameAlg.toString(16)} is not implemented`;
  const nt = nvType(nv.attributes);
  if (nt !== TPM_NT.ORDINARY && nt !== TPM_NT.COUNTER && nt !== TPM_NT.BITS && nt !== TPM_NT.EXTEND && nt !== TPM_NT.PIN_FAIL && nt !== TPM_NT.PIN_PASS) return `index type ${nt} is not implemented`;
  if (nv.dataSize > NV_DATA_MAX) return `dataSize ${nv.dataSize} exceeds ${NV_DATA_MAX}`;
  if ((nt === TPM_NT.COUNTER || nt === TPM_NT.BITS || nt === TPM_NT.PIN_FAIL || nt === TPM_NT.PIN_PASS) && nv.dataSize !== 8) return `a counter, bits or PIN index must be 8 bytes, not ${nv.dataSize}`;
  if (nt === TPM_NT.EXTEND && nv.dataSize !== alg.size) return `an extend index must be ${alg.size} bytes for its nameAlg, not ${nv.dataSize}`;
  if (nv.data.length !== nv.dataSize) return `data is ${nv.data.length} bytes, dataSize says ${nv.dataSize}`;
  if (nv.authValue.length > alg.size) return `authValue longer than the nameAlg digest`;
  if (nv.authPolicy.length !== 0 && nv.authPolicy.length !== alg.size) return `authPolicy must be empty or a ${alg.name} digest`;
  return undefined;
}

/**
 * Encodes a state into a blob.
 *
 * @param s - the state
 * @returns the blob: header, body, SHA-256 checksum
 * @throws TpmStateFileError if the state breaks an invariant (a programming error)
 */
export function encodeState(s: PersistentState): Uint8Array {
  const w = new TpmWriter(1024);
  w.u32(STATE_MAGIC).u16(STATE_VERSION).u16(0).u32(0);
  w.u8((s.disableClear ? 1 : 0) | (s.clockSafe ? 2 : 0) | (s.lockoutAuthDisabled ? 4 : 0) | (s.daUsed ? 8 : 0));
  w.u8(s.orderly === "none" ? 0 : s.orderly === "clear" ? 1 : 2);
  w.u64(Math.floor(s.clock));
  w.u32(s.resetCount >>> 0).u32(s.restartCount >>> 0);
  w.u64(s.maxCounter);
  w.u32(s.failedTries >>> 0);
  if (s.proofSeed.length !== 32) throw new TpmStateFileError("proofSeed must be 32 bytes");
  w.bytes(s.proofSeed);
  w.tpm2b(s.ownerAuth).tpm2b(s.endorsementAuth).tpm2b(s.lockoutAuth);
  if (s.nv.length > NV_INDICES_MAX) throw new TpmStateFileError(`state has ${s.nv.length} NV indices, at most ${NV_INDICES_MAX}`);
  w.u16(s.nv.length);
  for (const nv of s.nv) {
    const p = nvIndexProblem(nv);
    if (p) throw new TpmStateFileError(`cannot encode NV index 0x${nv.handle.toString(16)}: ${p}`);
    w.u32(nv.handle).u16(nv.nameAlg).u32(nv.attributes >>> 0).tpm2b(nv.authValue).tpm2b(nv.authPolicy).u16(nv.dataSize).bytes(nv.data);
  }
  if (s.saved) {
    w.u8(s.saved.startupLocality3 ? 2 : 1).u32(s.saved.pcrUpdateCounter >>> 0).tpm2b(s.saved.platformAuth).u8(HASH_IMPLS.length);
    HASH_IMPLS.forEach((a, i) => {
      const bank = s.saved!.pcrs[i];
      if (!bank || bank.length !== a.size * PCR_COUNT) throw new TpmStateFileError(`saved PCR bank ${a.name} has the wrong size`);
      w.u16(a.alg).bytes(bank);
    });
  } else {
    w.u8(0);
  }
  for (const [name, seed] of [["storageSeed", s.storageSeed], ["endorsementSeed", s.endorsementSeed], ["platformSeed", s.platformSeed]] as const) {
    if (seed.length !== PRIMARY_SEED_SIZE) throw new TpmStateFileError(`${name} must be ${PRIMARY_SEED_SIZE} bytes`);
    w.bytes(seed);
  }
  if (s.persistent.length > PERSISTENT_OBJECTS_MAX) throw new TpmStateFileError(`state has ${s.persistent.length} persistent objects, at most ${PERSISTENT_OBJECTS_MAX}`);
  w.u8(s.persistent.length);
  for (const o of s.persistent) {
    if (o.handle >>> 24 !== TPM_HT.PERSISTENT) throw new TpmStateFileError(`persistent object handle 0x${o.handle.toString(16)} is not persistent`);
    if (o.publicArea.length > OBJECT_AREA_MAX || o.sensitiveArea.length > OBJECT_AREA_MAX) throw new TpmStateFileError("persistent object area too large");
    w.u32(o.handle).u32(o.hierarchy >>> 0).tpm2b(o.publicArea).tpm2b(o.sensitiveArea);
    w.tpm2b(o.qualifiedName ?? new Uint8Array(0)).tpm2b(o.parentName ?? new Uint8Array(0));
  }
  // version 3: hierarchy policies, DA parameters, PCR allocation
  for (const [name, p] of [["ownerPolicy", s.ownerPolicy], ["endorsementPolicy", s.endorsementPolicy], ["lockoutPolicy", s.lockoutPolicy], ["pcrPolicy", s.pcrPolicy]] as const) {
    if (!p) {
      w.u16(0x0010).u16(0); // TPM_ALG_NULL, the Empty Buffer
      continue;
    }
    const problem = policyProblem(p);
    if (problem) throw new TpmStateFileError(`${name}: ${problem}`);
    w.u16(p.alg).tpm2b(p.policy);
  }
  const da = daParameters(s);
  w.u32(da.maxTries >>> 0).u32(da.recoveryTime >>> 0).u32(da.lockoutRecovery >>> 0);
  const active = s.pcrAllocation ?? HASH_IMPLS.map(() => PCR_ALL);
  const problem = allocationProblem(active);
  if (problem) throw new TpmStateFileError(problem);
  for (const m of active) w.u32(m);
  const pending = s.pcrAllocationPending;
  if (pending) {
    const pp = allocationProblem(pending.banks);
    if (pp) throw new TpmStateFileError(`pending ${pp}`);
    w.u8(1).u32(pending.resetCount >>> 0);
    for (const m of pending.banks) w.u32(m);
  } else {
    w.u8(0);
  }
  const bodyLength = w.length - HEADER;
  w.patchU32(8, bodyLength);
  const head = w.finish();
  const out = new Uint8Array(head.length + TRAILER);
  out.set(head, 0);
  out.set(sha256(head), head.length);
  return out;
}

/**
 * Decodes and validates a blob made by {@link encodeState}.
 *
 * @param blob - the bytes read from storage
 * @returns the state
 * @throws TpmStateFileError if the blob is truncated, of another format or version, fails its
 *   checksum, or holds a length or value that is out of range
 */
export function decodeState(blob: Uint8Array): PersistentState {
  if (!(blob instanceof Uint8Array)) throw new TpmStateFileError("state blob is not a Uint8Array");
  if (blob.length < HEADER + TRAILER) throw new TpmStateFileError(`state blob truncated: ${blob.length} bytes, at least ${HEADER + TRAILER} needed`);
  const magic = ((blob[0]! << 24) | (blob[1]! << 16) | (blob[2]! << 8) | blob[3]!) >>> 0;
  if (magic !== STATE_MAGIC) throw new TpmStateFileError(`not a SoftTpm state blob: magic 0x${magic.toString(16)}`);
  const version = (blob[4]! << 8) | blob[5]!;
  if (version !== STATE_VERSION && !STATE_VERSIONS_MIGRATED.includes(version)) throw new TpmStateFileError(`state blob format version ${version} is not supported (this SoftTpm reads version ${STATE_VERSION})`);
  const reserved = (blob[6]! << 8) | blob[7]!;
  if (reserved !== 0) throw new TpmStateFileError(`state blob reserved field is 0x${reserved.toString(16)}, must be 0`);
  const bodyLength = ((blob[8]! << 24) | (blob[9]! << 16) | (blob[10]! << 8) | blob[11]!) >>> 0;
  if (bodyLength !== blob.length - HEADER - TRAILER) {
    throw new TpmStateFileError(`state blob length mismatch: body length field says ${bodyLength}, ${blob.length - HEADER - TRAILER} body bytes present`);
  }
  const digest = sha256(blob.subarray(0, HEADER + bodyLength));
  const stored = blob.subarray(HEADER + bodyLength);
  let diff = 0;
  for (let i = 0; i < TRAILER; i++) diff |= digest[i]! ^ stored[i]!;
  if (diff !== 0) throw new TpmStateFileError("state blob checksum mismatch: the file is corrupt");
  try {
    return decodeBody(new TpmReader(blob, HEADER, HEADER + bodyLength), version);
  } catch (e) {
    if (e instanceof TpmStateFileError) throw e;
    if (e instanceof TpmFormatError) throw new TpmStateFileError(`state blob body is malformed: ${e.message}`, { cause: e });
    throw e;
  }
}

function bad(r: TpmReader, what: string): never {
  throw new TpmStateFileError(`state blob: ${what} (at body offset ${r.offset - HEADER})`);
}

/**
 * A primary seed derived from a proof seed: KDFa(SHA-256, proofSeed, label, "", "", 512) (TPM 2.0
 * Part 1 §11.4.10.2). Used for a new TPM, after TPM2_Clear (SPS) and for a version-1 blob.
 *
 * @param proofSeed - the 32-byte secret
 * @param label - "SPS", "EPS" or "PPS"
 * @returns 64 bytes
 */
export function deriveSeed(proofSeed: Uint8Array, label: string): Uint8Array {
  const out = new Uint8Array(PRIMARY_SEED_SIZE);
  const l = new TextEncoder().encode(label + "\0");
  for (let i = 1, off = 0; off < out.length; i++, off += 32) {
    const m = hmac.create(sha256, proofSeed);
    m.update(Uint8Array.of(0, 0, 0, i)).update(l).update(Uint8Array.of(0, 0, (PRIMARY_SEED_SIZE * 8) >>> 8, (PRIMARY_SEED_SIZE * 8) & 0xff));
    out.set(m.digest(), off);
  }
  return out;
}

function decodeBody(r: TpmReader, version: number): PersistentState {
  const flags = r.u8("flags");
  if (flags & ~15) bad(r, `unknown flag bits 0x${flags.toString(16)}`);
  const o = r.u8("orderly");
  if (o > 2) bad(r, `orderly state ${o} out of range`);
  const clock = r.u64("clock");
  if (clock > BigInt(Number.MAX_SAFE_INTEGER)) bad(r, "clock out of range");
  const resetCount = r.u32("resetCount");
  const restartCount = r.u32("restartCount");
  const maxCounter = r.u64("maxCounter");
  const failedTries = r.u32("failedTries");
  if (failedTries > 0xffff) bad(r, `failedTries ${failedTries} out of range`);
  const proofSeed = r.bytesN(32, "proofSeed").slice();
  const ownerAuth = r.tpm2b("ownerAuth", AUTH_MAX).slice();
  const endorsementAuth = r.tpm2b("endorsementAuth", AUTH_MAX).slice();
  const lockoutAuth = r.tpm2b("lockoutAuth", AUTH_MAX).slice();
  const count = r.u16("nvCount");
  if (count > NV_INDICES_MAX) bad(r, `NV index count ${count} exceeds ${NV_INDICES_MAX}`);
  const nv: NvIndexState[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const handle = r.u32("nv.handle");
    const nameAlg = r.u16("nv.nameAlg");
    const attributes = r.u32("nv.attributes");
    const authValue = r.tpm2b("nv.authValue", AUTH_MAX).slice();
    const authPolicy = r.tpm2b("nv.authPolicy", AUTH_MAX).slice();
    const dataSize = r.u16("nv.dataSize");
    if (dataSize > NV_DATA_MAX) bad(r, `NV dataSize ${dataSize} exceeds ${NV_DATA_MAX}`);
    const data = r.bytesN(dataSize, "nv.data").slice();
    const entry: NvIndexState = { handle, nameAlg, attributes, authValue, authPolicy, dataSize, data };
    const p = nvIndexProblem(entry);
    if (p) bad(r, `NV index ${i}: ${p}`);
    if (seen.has(handle)) bad(r, `NV index 0x${handle.toString(16)} appears twice`);
    seen.add(handle);
    nv.push(entry);
  }
  const hasSaved = r.u8("hasSaved");
  let saved: SavedState | undefined;
  if (hasSaved === 1 || hasSaved === 2) {
    const pcrUpdateCounter = r.u32("pcrUpdateCounter");
    const platformAuth = r.tpm2b("platformAuth", AUTH_MAX).slice();
    const banks = r.u8("bankCount");
    if (banks !== HASH_IMPLS.length) bad(r, `saved state has ${banks} PCR banks, expected ${HASH_IMPLS.length}`);
    const pcrs: Uint8Array[] = [];
    for (const a of HASH_IMPLS) {
      const alg = r.u16("bank.alg");
      if (alg !== a.alg) bad(r, `saved PCR bank 0x${alg.toString(16)} where 0x${a.alg.toString(16)} was expected`);
      pcrs.push(r.bytesN(a.size * PCR_COUNT, "bank.pcrs").slice());
    }
    saved = hasSaved === 2 ? { pcrUpdateCounter, platformAuth, pcrs, startupLocality3: true } : { pcrUpdateCounter, platformAuth, pcrs };
  } else if (hasSaved !== 0) {
    bad(r, `hasSaved is ${hasSaved}, must be 0, 1 or 2`);
  }
  let storageSeed: Uint8Array;
  let endorsementSeed: Uint8Array;
  let platformSeed: Uint8Array;
  const persistent: PersistentObjectState[] = [];
  if (version === 1) {
    storageSeed = deriveSeed(proofSeed, "SPS");
    endorsementSeed = deriveSeed(proofSeed, "EPS");
    platformSeed = deriveSeed(proofSeed, "PPS");
  } else {
    storageSeed = r.bytesN(PRIMARY_SEED_SIZE, "storageSeed").slice();
    endorsementSeed = r.bytesN(PRIMARY_SEED_SIZE, "endorsementSeed").slice();
    platformSeed = r.bytesN(PRIMARY_SEED_SIZE, "platformSeed").slice();
    const n = r.u8("persistentCount");
    if (n > PERSISTENT_OBJECTS_MAX) bad(r, `persistent object count ${n} exceeds ${PERSISTENT_OBJECTS_MAX}`);
    let last = 0;
    for (let i = 0; i < n; i++) {
      const handle = r.u32("persistent.handle");
      if (handle >>> 24 !== 0x81) bad(r, `persistent object handle 0x${handle.toString(16)} is not persistent`);
      if (handle <= last) bad(r, `persistent object 0x${handle.toString(16)} out of order or repeated`);
      last = handle;
      const hierarchy = r.u32("persistent.hierarchy");
      if (hierarchy !== 0x40000001 && hierarchy !== 0x4000000b && hierarchy !== 0x4000000c) bad(r, `persistent object hierarchy 0x${hierarchy.toString(16)}`);
      const publicArea = r.tpm2b("persistent.public", OBJECT_AREA_MAX).slice();
      const sensitiveArea = r.tpm2b("persistent.sensitive", OBJECT_AREA_MAX).slice();
      const qualifiedName = r.tpm2b("persistent.qualifiedName", AUTH_MAX + 2).slice();
      const parentName = r.tpm2b("persistent.parentName", AUTH_MAX + 2).slice();
      persistent.push({ handle, hierarchy, publicArea, sensitiveArea, ...(qualifiedName.length ? { qualifiedName } : {}), ...(parentName.length ? { parentName } : {}) });
    }
  }
  const v3: Partial<PersistentState> = {};
  if (version >= 3) {
    for (const key of ["ownerPolicy", "endorsementPolicy", "lockoutPolicy", "pcrPolicy"] as const) {
      const alg = r.u16(key);
      const policy = r.tpm2b(key, AUTH_MAX).slice();
      if (alg === 0x0010 && policy.length === 0) continue; // TPM_ALG_NULL: the Empty Buffer
      const p = { alg, policy };
      const problem = policyProblem(p);
      if (problem) bad(r, `${key}: ${problem}`);
      v3[key] = p;
    }
    const da = { maxTries: r.u32("maxTries"), recoveryTime: r.u32("recoveryTime"), lockoutRecovery: r.u32("lockoutRecovery") };
    if (da.maxTries !== DA_DEFAULTS.maxTries || da.recoveryTime !== DA_DEFAULTS.recoveryTime || da.lockoutRecovery !== DA_DEFAULTS.lockoutRecovery) v3.daParameters = da;
    const active = HASH_IMPLS.map(() => r.u32("pcrAllocation"));
    const problem = allocationProblem(active);
    if (problem) bad(r, problem);
    if (active.some((m) => m !== PCR_ALL)) v3.pcrAllocation = active;
    const hasPending = r.u8("hasPendingAllocation");
    if (hasPending === 1) {
      const resetCount = r.u32("pendingResetCount");
      const banks = HASH_IMPLS.map(() => r.u32("pendingAllocation"));
      const pp = allocationProblem(banks);
      if (pp) bad(r, `pending ${pp}`);
      v3.pcrAllocationPending = { resetCount, banks };
    } else if (hasPending !== 0) {
      bad(r, `hasPendingAllocation is ${hasPending}, must be 0 or 1`);
    }
  }
  if (r.remaining !== 0) bad(r, `${r.remaining} trailing bytes`);
  const orderly: OrderlyState = o === 0 ? "none" : o === 1 ? "clear" : "state";
  if (orderly === "state" && !saved) bad(r, "orderly state STATE without saved PCR state");
  return {
    disableClear: (flags & 1) !== 0,
    ...((flags & 4) !== 0 ? { lockoutAuthDisabled: true } : {}),
    ...((flags & 8) !== 0 ? { daUsed: true } : {}),
    clockSafe: (flags & 2) !== 0,
    orderly,
    clock: Number(clock),
    resetCount,
    restartCount,
    maxCounter,
    failedTries,
    proofSeed,
    ownerAuth,
    endorsementAuth,
    lockoutAuth,
    nv,
    saved,
    storageSeed,
    endorsementSeed,
    platformSeed,
    persistent,
    ...v3,
  };
}
