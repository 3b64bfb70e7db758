/**
 * Shared pieces of the CLI's output and argument checks: the one PCR index check (0–23) every verb
 * uses, the PCR selection syntax of tpm2-tools (`sha256:0,1`, `sha1:0+sha256:16`, `sha256:all`,
 * `sha256`), number formatting as tpm2-tools 5.4 prints it (C `printf` `0x%X`), and the names
 * tpm2-tools 5.4 gives algorithms, commands and ECC curves, so `tpmkit pcrread` and `tpmkit getcap`
 * print the YAML `tpm2_pcrread` and `tpm2_getcap` print.
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC } from "../wire/constants.js";
import { HASH_ALGS, type HashAlgName } from "../wire/types.js";
import { UsageError } from "./args.js";

/** The highest PCR index the CLI accepts: a PC Client TPM has PCRs 0–23 (TCG PC Client Platform TPM Profile, PCR count 24). */
export const PCR_INDEX_MAX = 23;

/**
 * Parses one PCR index as typed on the command line: decimal digits, 0–23. Every verb that takes
 * a PCR index (pcrread, pcrextend, ...) uses this one check, so they agree on the range and the message.
 *
 * @param text - the index as typed, e.g. "16"
 * @returns the index
 * @throws UsageError (exit 2) when `text` is not an integer 0–23
 * @example
 * ```ts
 * parsePcrIndex("16"); // 16
 * parsePcrIndex("24"); // throws UsageError: PCR index must be an integer 0–23, got "24"
 * ```
 */
export function parsePcrIndex(text: string): number {
  const n = /^[0-9]{1,3}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > PCR_INDEX_MAX) throw new UsageError(`PCR index must be an integer 0–${PCR_INDEX_MAX}, got "${text}"`);
  return n;
}

/** The hash algorithm names a PCR bank can be named by (tpm2-tools' hash names, lib/tpm2_alg_util.c). */
export const PCR_BANK_NAMES: readonly HashAlgName[] = Object.keys(HASH_ALGS) as HashAlgName[];

/** Is `name` a PCR bank (hash algorithm) name? */
export function isBankName(name: string): name is HashAlgName {
  return Object.prototype.hasOwnProperty.call(HASH_ALGS, name);
}

/** One bank of a parsed PCR selection: the bank and its PCRs, ascending, without duplicates. */
export interface BankSelection {
  /** The bank (hash algorithm). */
  readonly alg: HashAlgName;
  /** The PCRs asked for, ascending, each once. */
  readonly pcrs: readonly number[];
}

/**
 * A PCR selection as `tpm2_pcrread` takes it: nothing (every allocated bank, every PCR), one bank
 * name (`sha256`: every PCR of that bank), or a list (`sha1:0,1+sha256:all`).
 */
export type PcrSelectionSpec = { readonly kind: "default" } | { readonly kind: "bank"; readonly alg: HashAlgName } | { readonly kind: "list"; readonly banks: readonly BankSelection[] };

/**
 * Parses a PCR selection in tpm2-tools' syntax (tpm2-tools 5.4 lib/pcr.c `pcr_parse_selections`):
 * `BANK:PCRS[+BANK:PCRS...]` with PCRS a comma list of indexes 0–23, `all` or `none`; or a bank
 * name alone. Unlike tpm2-tools, a bank named twice (`sha256:0+sha256:1`) is merged into one entry
 * and a PCR named twice is kept once, so the output never repeats a key (tpm2_pcrread 5.4 prints
 * the bank twice, which YAML parsers reject as a duplicate key).
 *
 * @param arg - the selection, or undefined for the default (every allocated bank and PCR)
 * @throws UsageError (exit 2) for an unknown bank, a bad PCR list or an index outside 0–23
 */
export function parsePcrSelection(arg: string | undefined): PcrSelectionSpec {
  if (arg === undefined) return { kind: "default" };
  if (isBankName(arg)) return { kind: "bank", alg: arg };
  const banks = new Map<HashAlgName, Set<number>>();
  for (const part of arg.split("+")) {
    const colon = part.indexOf(":");
    const name = colon < 0 ? part : part.slice(0, colon);
    if (colon < 0 || !isBankName(name)) {
      throw new UsageError(`bad PCR selection "${part}" (want BANK:PCRS such as sha256:0,1, sha1:0+sha256:16 or sha256:all, with BANK one of ${PCR_BANK_NAMES.join(", ")})`);
    }
    const list = part.slice(colon + 1);
    const set = banks.get(name) ?? new Set<number>();
    banks.set(name, set);
    if (list === "all") for (let i = 0; i <= PCR_INDEX_MAX; i++) set.add(i);
    else if (list !== "none") {
      if (list === "") throw new UsageError(`bad PCR selection "${part}": no PCR list after "${name}:"`);
      for (const item of list.split(",")) set.add(parsePcrIndex(item));
    }
  }
  return { kind: "list", banks: [...banks].map(([alg, set]) => ({ alg, pcrs: [...set].sort((a, b) => a - b) })) };
}

/** A number as C `printf("0x%X")` prints it: upper-case hex of the unsigned 32-bit value. */
export function hexUpper(n: number): string {
  return "0x" + (n >>> 0).toString(16).toUpperCase();
}

/** A number as C `printf("0x%x")` prints it: lower-case hex of the unsigned 32-bit value. */
export function hexLower(n: number): string {
  return "0x" + (n >>> 0).toString(16);
}

/** Bytes as lower-case hex, the form `--json` gives every byte string. */
export function bytesHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * A YAML double-quoted scalar holding `text`. Printable ASCII stays as it is (so the result is what
 * tpm2-tools prints between its quotes); `"`, `\` and other bytes are escaped so the line stays
 * valid YAML (YAML 1.2 §5.7 escape sequences), where tpm2-tools would print them raw.
 */
export function yamlQuoted(text: string): string {
  let s = '"';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (ch === '"' || ch === "\\") s += "\\" + ch;
    else if (c >= 0x20 && c < 0x7f) s += ch;
    else s += "\\x" + c.toString(16).padStart(2, "0");
  }
  return s + '"';
}

/** Writes `value` as one JSON document (two-space indent, one trailing newline). */
export function writeJson(out: NodeJS.WritableStream, value: unknown): void {
  out.write(JSON.stringify(value, null, 2) + "\n");
}

/**
 * The algorithm names tpm2-tools 5.4 prints, in its table's order (lib/tpm2_alg_util.c,
 * `tpm2_alg_util_for_each_alg`); values from TPM 2.0 Part 2 §6.3 (TPM_ALG_ID).
 */
const TOOLS_ALG_NAMES: readonly (readonly [string, number])[] = [
  ["rsa", TPM_ALG.RSA],
  ["ecc", TPM_ALG.ECC],
  ["tdes", TPM_ALG.TDES],
  ["aes", TPM_ALG.AES],
  ["camellia", TPM_ALG.CAMELLIA],
  ["sm4", TPM_ALG.SM4],
  ["sha1", TPM_ALG.SHA1],
  ["sha256", TPM_ALG.SHA256],
  ["sha384", TPM_ALG.SHA384],
  ["sha512", TPM_ALG.SHA512],
  ["sm3_256", TPM_ALG.SM3_256],
  ["sha3_256", TPM_ALG.SHA3_256],
  ["sha3_384", TPM_ALG.SHA3_384],
  ["sha3_512", TPM_ALG.SHA3_512],
  ["hmac", TPM_ALG.HMAC],
  ["xor", TPM_ALG.XOR],
  ["cmac", TPM_ALG.CMAC],
  ["mgf1", TPM_ALG.MGF1],
  ["rsassa", TPM_ALG.RSASSA],
  ["rsapss", TPM_ALG.RSAPSS],
  ["ecdsa", TPM_ALG.ECDSA],
  ["ecdaa", TPM_ALG.ECDAA],
  ["ecschnorr", TPM_ALG.ECSCHNORR],
  ["sm2", TPM_ALG.SM2],
  ["oaep", TPM_ALG.OAEP],
  ["rsaes", TPM_ALG.RSAES],
  ["ecdh", TPM_ALG.ECDH],
  ["kdf1_sp800_56a", TPM_ALG.KDF1_SP800_56A],
  ["kdf2", TPM_ALG.KDF2],
  ["kdf1_sp800_108", TPM_ALG.KDF1_SP800_108],
  ["ecmqv", TPM_ALG.ECMQV],
  ["ctr", TPM_ALG.CTR],
  ["ofb", TPM_ALG.OFB],
  ["cbc", TPM_ALG.CBC],
  ["cfb", TPM_ALG.CFB],
  ["ecb", TPM_ALG.ECB],
  ["symcipher", TPM_ALG.SYMCIPHER],
  ["keyedhash", TPM_ALG.KEYEDHASH],
  ["null", TPM_ALG.NULL],
];
const ALG_BY_ID = new Map<number, string>();
for (const [name, id] of TOOLS_ALG_NAMES) if (!ALG_BY_ID.has(id)) ALG_BY_ID.set(id, name);

/** The name tpm2-tools 5.4 gives a TPM_ALG_ID (`tpm2_alg_util_algtostr`), or undefined for one it does not know. */
export function toolsAlgName(id: number): string | undefined {
  return ALG_BY_ID.get(id);
}

/**
 * The command names tpm2-tools 5.4 knows (lib/tpm2_cc_util.c `_g_map`, printed with a `TPM2_CC_`
 * prefix); values from TPM 2.0 Part 2 §6.5.2 (TPM_CC). Later commands (CertifyX509,
 * ACT_SetTimeout) are not in its table, so it prints them as hex, and so does tpmkit.
 */
const TOOLS_CC: readonly (keyof typeof TPM_CC)[] = [
  "NV_UndefineSpaceSpecial", "EvictControl", "HierarchyControl", "NV_UndefineSpace", "ChangeEPS", "ChangePPS", "Clear", "ClearControl",
  "ClockSet", "HierarchyChangeAuth", "NV_DefineSpace", "PCR_Allocate", "PCR_SetAuthPolicy", "PP_Commands", "SetPrimaryPolicy",
  "FieldUpgradeStart", "ClockRateAdjust", "CreatePrimary", "NV_GlobalWriteLock", "GetCommandAuditDigest", "NV_Increment", "NV_SetBits",
  "NV_Extend", "NV_Write", "NV_WriteLock", "DictionaryAttackLockReset", "DictionaryAttackParameters", "NV_ChangeAuth", "PCR_Event",
  "PCR_Reset", "SequenceComplete", "SetAlgorithmSet", "SetCommandCodeAuditStatus", "FieldUpgradeData", "IncrementalSelfTest", "SelfTest",
  "Startup", "Shutdown", "StirRandom", "ActivateCredential", "Certify", "PolicyNV", "CertifyCreation", "Duplicate", "GetTime",
  "GetSessionAuditDigest", "NV_Read", "NV_ReadLock", "ObjectChangeAuth", "PolicySecret", "Rewrap", "Create", "ECDH_ZGen", "HMAC", "Import",
  "Load", "Quote", "RSA_Decrypt", "HMAC_Start", "SequenceUpdate", "Sign", "Unseal", "PolicySigned", "ContextLoad", "ContextSave",
  "ECDH_KeyGen", "EncryptDecrypt", "FlushContext", "LoadExternal", "MakeCredential", "NV_ReadPublic", "PolicyAuthorize", "PolicyAuthValue",
  "PolicyCommandCode", "PolicyCounterTimer", "PolicyCpHash", "PolicyLocality", "PolicyNameHash", "PolicyOR", "PolicyTicket", "ReadPublic",
  "RSA_Encrypt", "StartAuthSession", "VerifySignature", "ECC_Parameters", "FirmwareRead", "GetCapability", "GetRandom", "GetTestResult",
  "Hash", "PCR_Read", "PolicyPCR", "PolicyRestart", "ReadClock", "PCR_Extend", "PCR_SetAuthValue", "NV_Certify", "EventSequenceComplete",
  "HashSequenceStart", "PolicyPhysicalPresence", "PolicyDuplicationSelect", "PolicyGetDigest", "TestParms", "Commit", "PolicyPassword",
  "ZGen_2Phase", "EC_Ephemeral", "PolicyNvWritten", "PolicyTemplate", "CreateLoaded", "PolicyAuthorizeNV", "EncryptDecrypt2",
  "AC_GetCapability", "AC_Send", "Policy_AC_SendSelect", "Vendor_TCG_Test",
];
const CC_BY_CODE = new Map<number, string>(TOOLS_CC.map((k) => [TPM_CC[k], `TPM2_CC_${k}`]));

/** The name tpm2-tools 5.4 gives a command code (`tpm2_cc_util_to_str`, e.g. "TPM2_CC_GetRandom"), or undefined. */
export function toolsCommandName(cc: number): string | undefined {
  return CC_BY_CODE.get(cc >>> 0);
}

/** TPM_ECC_CURVE values. TPM 2.0 Part 2 §6.4 (TCG Algorithm Registry); names as tpm2-tools 5.4 prints them (tools/tpm2_getcap.c `dump_ecc_curves`). */
export const TPM_ECC_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0001, "TPM2_ECC_NIST_P192"],
  [0x0002, "TPM2_ECC_NIST_P224"],
  [0x0003, "TPM2_ECC_NIST_P256"],
  [0x0004, "TPM2_ECC_NIST_P384"],
  [0x0005, "TPM2_ECC_NIST_P521"],
  [0x0010, "TPM2_ECC_BN_P256"],
  [0x0011, "TPM2_ECC_BN_P638"],
  [0x0020, "TPM2_ECC_SM2_P256"],
]);
