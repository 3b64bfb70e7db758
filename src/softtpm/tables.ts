/**
 * Fixed tables of {@link SoftTpm}: the TPMA_CC attributes of the commands it implements, the PCR
 * attribute table (which locality may extend or reset which PCR), and the hash algorithms it
 * implements (each one also a PCR bank). Values are from TPM 2.0 Part 2 and were cross-checked
 * against swtpm 0.7.1 / libtpms 0.9.2, measured: `TPM2_GetCapability(TPM_CAP_COMMANDS)` and
 * `(TPM_CAP_PCR_PROPERTIES)`, and TPM2_PCR_Extend / TPM2_PCR_Reset of every PCR at every locality
 * (set through the swtpm control channel, CMD_SET_LOCALITY; swtpm(8)).
 *
 * The wire vocabulary itself (TPM_CC, TPM_ALG, TPM_PT, ...) is not repeated here: it comes from
 * the wire format (`tpmkit/wire`).
 *
 * @packageDocumentation
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { TPM_ALG, TPM_PT } from "../wire/constants.js";
import { HASH_ALGS } from "../wire/types.js";

/**
 * TPMA_CC of every implemented command (TPM 2.0 Part 2 §8.9: commandIndex 15:0, nv 22,
 * extensive 23, flushed 24, cHandles 27:25, rHandle 28, V 29), as swtpm 0.7.1 reports them.
 * Sorted by command code (at load), as TPM2_GetCapability(TPM_CAP_COMMANDS) lists them.
 */
export const COMMAND_ATTRIBUTES: readonly number[] = /* @__PURE__ */ [
  0x04400120, 0x02c00121, 0x04400122, 0x02c00126, 0x02400127, 0x02400128, 0x02400129, 0x0240012a, 0x0240012e, 0x02000130, 0x12000131, 0x04400134,
  0x04400135, 0x04400136, 0x04400137, 0x04400138, 0x0240013b, 0x0240013c, 0x0240013d, 0x0300013e, 0x00400142,
  0x00400143, 0x00400144, 0x00400145, 0x00400146, 0x04000147, 0x04000148, 0x06000149, 0x0400014a, 0x0400014c, 0x0400014e, 0x0440014f, 0x04000150,
  0x04000151, 0x02000153, 0x02000154, 0x02000155, 0x12000157, 0x02000158, 0x02000159, 0x1200015b, 0x0200015c, 0x0200015d, 0x0200015e, 0x04000160, 0x10000161, 0x02000162, 0x02000163, 0x02000164, 0x00000165,
  0x10000167, 0x02000168, 0x02000169, 0x0200016a, 0x0200016b, 0x0200016c, 0x0200016e, 0x0200016f, 0x02000170, 0x02000171, 0x02000173, 0x02000174, 0x14000176, 0x02000177,
  0x0000017a, 0x0000017b, 0x0000017c, 0x0000017d, 0x0000017e, 0x0200017f, 0x02000180, 0x00000181,
  0x02400182, 0x06000184, 0x05400185, 0x10000186, 0x02000189, 0x0000018a, 0x0200018c, 0x0200018f, 0x02000190, 0x12000191, 0x02000193,
  // policy assertions (PolicyAuthorizeNV, PolicyCounterTimer, PolicyDuplicationSelect, PolicyTicket, PolicyPhysicalPresence):
  0x0200016d, 0x02000172, 0x02000188, 0x06000192, 0x02000187,
  // hierarchy, NV and PCR administration (ChangePPS, ChangeEPS, NV_UndefineSpaceSpecial, PCR_Allocate):
  0x0440011f, 0x02400132, // NV_UndefineSpaceSpecial, NV_GlobalWriteLock
  0x02c00124, 0x02c00125, 0x0240012b, 0x0240012c, 0x02400139, 0x0240013a, 0x02000183, // ChangeEPS, ChangePPS, PCR_Allocate, PCR_SetAuthPolicy, DictionaryAttackLockReset, DictionaryAttackParameters, PCR_SetAuthValue
  // duplication (Duplicate, Import, Rewrap):
  0x0400014b, 0x04000152, 0x02000156,
  // audit (SetCommandCodeAuditStatus, GetCommandAuditDigest, GetSessionAuditDigest):
  0x02400140, 0x04400133, 0x0600014d,
  // ECC (EC_Ephemeral, Commit):
  0x00000178, 0x0200018b, 0x0200018d, 0x0000018e, // ECC_Parameters, Commit, ZGen_2Phase, EC_Ephemeral
].sort((a, b) => (a & 0xffff) - (b & 0xffff));

/**
 * A hash algorithm SoftTpm implements (and its PCR bank): the TPM_ALG_ID and digest size from
 * {@link HASH_ALGS}, with the hash function behind them.
 */
export interface HashImpl {
  readonly alg: number;
  readonly size: number;
  readonly name: string;
  readonly hash: (data: Uint8Array) => Uint8Array;
  /** An incremental hasher (for sequences). */
  readonly create: () => { update(d: Uint8Array): unknown; digest(): Uint8Array };
  /** HMAC with this hash over the concatenation of `parts` (RFC 2104). */
  readonly mac: (key: Uint8Array, ...parts: Uint8Array[]) => Uint8Array;
}

type NobleHash = typeof sha256 | typeof sha1;

function impl(name: "sha1" | "sha256" | "sha384" | "sha512", h: NobleHash): HashImpl {
  const { id, size } = HASH_ALGS[name];
  return {
    alg: id,
    size,
    name,
    hash: (d) => h(d),
    create: () => h.create(),
    mac: (key, ...parts) => {
      const m = hmac.create(h, key);
      for (const p of parts) m.update(p);
      return m.digest();
    },
  };
}

/** The hash algorithms (and PCR banks) SoftTpm implements, in TPM_ALG_ID order. TPM 2.0 Part 2 §6.3. */
export const HASH_IMPLS: readonly HashImpl[] = [
  /* @__PURE__ */ impl("sha1", sha1),
  /* @__PURE__ */ impl("sha256", sha256),
  /* @__PURE__ */ impl("sha384", sha384),
  /* @__PURE__ */ impl("sha512", sha512),
];

/** Index of the algorithm `alg` in {@link HASH_IMPLS} (its PCR bank), or -1 if SoftTpm does not implement it. */
export function hashIndex(alg: number): number {
  switch (alg) {
    case TPM_ALG.SHA1:
      return 0;
    case TPM_ALG.SHA256:
      return 1;
    case TPM_ALG.SHA384:
      return 2;
    case TPM_ALG.SHA512:
      return 3;
    default:
      return -1;
  }
}

/** The hash algorithm with id `alg`, or undefined if SoftTpm does not implement it. */
export function hashImpl(alg: number): HashImpl | undefined {
  const i = hashIndex(alg);
  return i < 0 ? undefined : HASH_IMPLS[i];
}

/** Number of PCRs per bank (TPM_PT_PCR_COUNT). */
export const PCR_COUNT = 24;
/** Bytes in a pcrSelect bitmap (TPM_PT_PCR_SELECT_MIN). */
export const PCR_SELECT_SIZE = 3;

/**
 * PCR attribute bitmaps (bit n = PCR n), TPM 2.0 Part 2 §6.14 (TPM_PT_PCR), as libtpms 0.9
 * reports them through TPM_CAP_PCR_PROPERTIES.
 */
export const PCR_PROPERTIES: ReadonlyArray<readonly [tag: number, bits: number]> = [
  [TPM_PT.PCR_SAVE, 0x00ffff], // 0-15 survive Shutdown(STATE)/Startup(STATE)
  [TPM_PT.PCR_EXTEND_L0, 0x81ffff],
  [TPM_PT.PCR_RESET_L0, 0x810000],
  [TPM_PT.PCR_EXTEND_L1, 0x91ffff],
  [TPM_PT.PCR_RESET_L1, 0x810000],
  [TPM_PT.PCR_EXTEND_L2, 0xffffff],
  [TPM_PT.PCR_RESET_L2, 0xf10000],
  [TPM_PT.PCR_EXTEND_L3, 0x9fffff],
  [TPM_PT.PCR_RESET_L3, 0x810000],
  [TPM_PT.PCR_EXTEND_L4, 0x87ffff],
  [TPM_PT.PCR_RESET_L4, 0x7e0000], // reported; reset at locality 4 happens through _TPM_Hash_Start only
  [TPM_PT.PCR_NO_INCREMENT, 0xe10000], // 16, 21, 22, 23 do not bump pcrUpdateCounter
  [TPM_PT.PCR_DRTM_RESET, 0x7e0000],
  [TPM_PT.PCR_POLICY, 0x700000],
  [TPM_PT.PCR_AUTH, 0x700000],
];

/** PCRs whose value survives Shutdown(STATE) + Startup(STATE). */
export const PCR_SAVE = 0x00ffff;
/** PCRs whose change does not increment pcrUpdateCounter. */
export const PCR_NO_INCREMENT = 0xe10000;
/** PCRs that start at all 0xFF (the D-RTM PCRs 17–22); the others start at 0. */
export const PCR_INIT_ONES = 0x7e0000;

/**
 * Extend permission per locality 0–4 (bit n = PCR n), as swtpm 0.7.1 / libtpms 0.9 enforce it
 * (measured; TCG PC Client Platform TPM Profile, PCR attributes table).
 */
export const PCR_EXTEND_BY_LOCALITY: readonly number[] = [0x81ffff, 0x91ffff, 0xffffff, 0x9fffff, 0x87ffff];
/**
 * PCR_Reset permission per locality 0–4, as swtpm 0.7.1 / libtpms 0.9 enforce it (measured).
 * Locality 4 may reset nothing through TPM2_PCR_Reset.
 */
export const PCR_RESET_BY_LOCALITY: readonly number[] = [0x810000, 0x810000, 0xf10000, 0x810000, 0x000000];

/**
 * The algorithms SoftTpm implements and their TPMA_ALGORITHM (Part 2 §8.2), as swtpm 0.7.1
 * reports them (TPM2_GetCapability(TPM_CAP_ALGS), measured), in TPM_ALG_ID order: RSA, SHA-1,
 * HMAC, AES, MGF1, KEYEDHASH, XOR, SHA-256/384/512, RSASSA, RSAES, RSAPSS, OAEP, ECDSA, ECDH,
 * ECDAA, KDF1_SP800_56A, KDF1_SP800_108, ECC, SYMCIPHER, CTR, OFB, CBC, CFB, ECB.
 */
export const IMPLEMENTED_ALGS: readonly (readonly [number, number])[] = [
  [0x0001, 0x009], [0x0004, 0x004], [0x0005, 0x104], [0x0006, 0x002], [0x0007, 0x404], [0x0008, 0x30c], [0x000a, 0x006],
  [0x000b, 0x004], [0x000c, 0x004], [0x000d, 0x004], [0x0014, 0x101], [0x0015, 0x201], [0x0016, 0x101], [0x0017, 0x201],
  [0x0018, 0x101], [0x0019, 0x401], [0x001a, 0x101], [0x0020, 0x404], [0x0022, 0x404], [0x0023, 0x009], [0x0025, 0x008],
  [0x0040, 0x202], [0x0041, 0x202], [0x0042, 0x202], [0x0043, 0x202], [0x0044, 0x202],
];
