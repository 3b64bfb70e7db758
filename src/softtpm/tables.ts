/**
 * Fixed tables of {@link SoftTpm}: the command codes it implements with their TPMA_CC attributes,
 * the PCR attribute table (which locality may extend or reset which PCR), and the hash banks.
 * Values are from TPM 2.0 Part 2 and were cross-checked against swtpm 0.7.1 / libtpms 0.9.2
 * (`TPM2_GetCapability(TPM_CAP_COMMANDS)` and `(TPM_CAP_PCR_PROPERTIES)`, see
 * /work/shared/facts/swtpm-measured.md §5).
 *
 * @packageDocumentation
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";

/** Command codes SoftTpm implements. TPM 2.0 Part 2 §6.5.2 (TPM_CC). */
export const CC = {
  NV_UndefineSpace: 0x122,
  Clear: 0x126,
  ClearControl: 0x127,
  HierarchyChangeAuth: 0x129,
  NV_DefineSpace: 0x12a,
  NV_Increment: 0x134,
  NV_SetBits: 0x135,
  NV_Extend: 0x136,
  NV_Write: 0x137,
  NV_WriteLock: 0x138,
  PCR_Event: 0x13c,
  PCR_Reset: 0x13d,
  SequenceComplete: 0x13e,
  IncrementalSelfTest: 0x142,
  SelfTest: 0x143,
  Startup: 0x144,
  Shutdown: 0x145,
  StirRandom: 0x146,
  NV_Read: 0x14e,
  NV_ReadLock: 0x14f,
  SequenceUpdate: 0x15c,
  FlushContext: 0x165,
  NV_ReadPublic: 0x169,
  StartAuthSession: 0x176,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  GetTestResult: 0x17c,
  Hash: 0x17d,
  PCR_Read: 0x17e,
  ReadClock: 0x181,
  PCR_Extend: 0x182,
  EventSequenceComplete: 0x185,
  HashSequenceStart: 0x186,
} as const;

/**
 * TPMA_CC of every implemented command (TPM 2.0 Part 2 §9.2: commandIndex 15:0, nv 22,
 * extensive 23, flushed 24, cHandles 27:25, rHandle 28, V 29), as swtpm 0.7.1 reports them.
 * Sorted by command code, as TPM2_GetCapability(TPM_CAP_COMMANDS) lists them.
 */
export const COMMAND_ATTRIBUTES: readonly number[] = [
  0x04400122, 0x02c00126, 0x02400127, 0x02400129, 0x0240012a, 0x04400134, 0x04400135, 0x04400136,
  0x04400137, 0x04400138, 0x0240013c, 0x0240013d, 0x0300013e, 0x00400142, 0x00400143, 0x00400144,
  0x00400145, 0x00400146, 0x0400014e, 0x0440014f, 0x0200015c, 0x00000165, 0x02000169, 0x14000176,
  0x0000017a, 0x0000017b, 0x0000017c, 0x0000017d, 0x0000017e, 0x00000181, 0x02400182, 0x05400185,
  0x10000186,
];

/** One PCR bank: algorithm id, digest size and the hash function. */
export interface HashAlg {
  readonly alg: number;
  readonly size: number;
  readonly name: string;
  readonly hash: (data: Uint8Array) => Uint8Array;
  /** An incremental hasher (for sequences). */
  readonly create: () => { update(d: Uint8Array): unknown; digest(): Uint8Array };
  /** HMAC with this hash over the concatenation of `parts` (RFC 2104). */
  readonly mac: (key: Uint8Array, ...parts: Uint8Array[]) => Uint8Array;
}

function macOf(h: typeof sha256 | typeof sha1): (key: Uint8Array, ...parts: Uint8Array[]) => Uint8Array {
  return (key, ...parts) => {
    const m = hmac.create(h, key);
    for (const p of parts) m.update(p);
    return m.digest();
  };
}

/** The banks SoftTpm implements, in TPM_ALG_ID order. TPM 2.0 Part 2 §6.3. */
export const HASH_ALGS: readonly HashAlg[] = [
  { alg: 0x0004, size: 20, name: "sha1", hash: (d) => sha1(d), create: () => sha1.create(), mac: macOf(sha1) },
  { alg: 0x000b, size: 32, name: "sha256", hash: (d) => sha256(d), create: () => sha256.create(), mac: macOf(sha256) },
  { alg: 0x000c, size: 48, name: "sha384", hash: (d) => sha384(d), create: () => sha384.create(), mac: macOf(sha384) },
  { alg: 0x000d, size: 64, name: "sha512", hash: (d) => sha512(d), create: () => sha512.create(), mac: macOf(sha512) },
];

/** The hash algorithm with id `alg`, or undefined if SoftTpm does not implement it. */
export function hashAlg(alg: number): HashAlg | undefined {
  switch (alg) {
    case 0x0004:
      return HASH_ALGS[0];
    case 0x000b:
      return HASH_ALGS[1];
    case 0x000c:
      return HASH_ALGS[2];
    case 0x000d:
      return HASH_ALGS[3];
    default:
      return undefined;
  }
}

/** Number of PCRs per bank (TPM_PT_PCR_COUNT). */
export const PCR_COUNT = 24;
/** Bytes in a pcrSelect bitmap (TPM_PT_PCR_SELECT_MIN). */
export const PCR_SELECT_SIZE = 3;

/**
 * PCR attribute bitmaps (bit n = PCR n), TPM 2.0 Part 2 §6.14 (TPM_PT_PCR), as libtpms 0.9
 * reports them through TPM_CAP_PCR_PROPERTIES. Index = TPM_PT_PCR value.
 */
export const PCR_PROPERTIES: ReadonlyArray<readonly [tag: number, bits: number]> = [
  [0x00, 0x00ffff], // SAVE: 0-15 survive Shutdown(STATE)/Startup(STATE)
  [0x01, 0x81ffff], // EXTEND_L0
  [0x02, 0x810000], // RESET_L0
  [0x03, 0x91ffff], // EXTEND_L1
  [0x04, 0x810000], // RESET_L1
  [0x05, 0xffffff], // EXTEND_L2
  [0x06, 0xf10000], // RESET_L2
  [0x07, 0x9fffff], // EXTEND_L3
  [0x08, 0x810000], // RESET_L3
  [0x09, 0x87ffff], // EXTEND_L4
  [0x0a, 0x7e0000], // RESET_L4 (reported; reset at locality 4 happens through _TPM_Hash_Start only)
  [0x11, 0xe10000], // NO_INCREMENT: 16, 21, 22, 23 do not bump pcrUpdateCounter
  [0x12, 0x7e0000], // DRTM_RESET
  [0x13, 0x700000], // POLICY
  [0x14, 0x700000], // AUTH
];

/** PCRs whose value survives Shutdown(STATE) + Startup(STATE). */
export const PCR_SAVE = 0x00ffff;
/** PCRs whose change does not increment pcrUpdateCounter. */
export const PCR_NO_INCREMENT = 0xe10000;
/** PCRs that start at all 0xFF (the D-RTM PCRs 17–22); the others start at 0. */
export const PCR_INIT_ONES = 0x7e0000;

/** Extend permission per locality 0–4 (bit n = PCR n); measured on swtpm 0.7.1, facts §5. */
export const PCR_EXTEND_BY_LOCALITY: readonly number[] = [0x81ffff, 0x91ffff, 0xffffff, 0x9fffff, 0x87ffff];
/**
 * PCR_Reset permission per locality 0–4; measured on swtpm 0.7.1, facts §5. Locality 4 may
 * reset nothing through TPM2_PCR_Reset.
 */
export const PCR_RESET_BY_LOCALITY: readonly number[] = [0x810000, 0x810000, 0xf10000, 0x810000, 0x000000];
