/**
 * The part of Linux IMA (Integrity Measurement Architecture) that touches the TPM at boot: the
 * TPM-bypass decision and the boot_aggregate entry, the first entry of the measurement list.
 *
 * Sources (Linux, security/integrity/ima/): ima_init.c `ima_init()` and
 * `ima_add_boot_aggregate()`; ima_crypto.c `ima_calc_boot_aggregate()`,
 * `ima_calc_boot_aggregate_tfm()` and `ima_calc_field_array_hash_tfm()`; ima_template_lib.c
 * `ima_eventdigest_ng_init()`, `ima_eventdigest_init_common()`, `ima_eventname_ng_init()` and
 * `ima_write_template_field_data()`; ima_queue.c `ima_add_template_entry()` and
 * `ima_pcr_extend()`. The bank list is the kernel's `allocated_banks`: the TPM_CAP_PCRS banks
 * with at least one PCR selected, in the order the TPM lists them (drivers/char/tpm/tpm2-cmd.c,
 * `tpm2_get_pcr_allocation()`).
 *
 * @packageDocumentation
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { TpmArgumentError, throwIfAborted } from "../errors/index.js";
import { TpmResponseError } from "../wire/rc.js";
import { HASH_ALGS, hashName, type HashAlgName, type PcrSelect } from "../wire/types.js";
import type { PcrDigests, Tpm } from "../client/tpm.js";

/** A PCR bank IMA can compute the boot aggregate with (the kernel's HASH_ALGO_* of a TPM bank). */
export type ImaBank = "sha1" | "sha256" | "sha384" | "sha512";

/** The IMA banks, for argument checks. */
const IMA_BANKS: readonly ImaBank[] = ["sha1", "sha256", "sha384", "sha512"];

/** The name of IMA's first measurement-list entry (ima_init.c, `boot_aggregate_name`). */
export const IMA_BOOT_AGGREGATE_NAME = "boot_aggregate";

/** The entry name the 2026 IMA_INIT_LATE_SYNC rework uses when IMA initialises at late_initcall_sync. */
export const IMA_BOOT_AGGREGATE_LATE_NAME = "boot_aggregate_late";

/** The PCR IMA extends its measurements into: CONFIG_IMA_MEASURE_PCR_IDX, default 10. */
export const IMA_MEASURE_PCR = 10;

/** The line `ima_init()` logs when `tpm_default_chip()` finds no chip (pr_fmt "ima: "). */
export const IMA_BYPASS_LOG = "ima: No TPM chip found, activating TPM-bypass!";

/** The line `ima_calc_boot_aggregate()` logs when no bank fits (the aggregate stays zero). */
export const IMA_NO_SUITABLE_BANK_LOG = "ima: No suitable TPM algorithm for boot aggregate";

/** The line `ima_pcrread()` logs when a PCR read fails. */
export const IMA_PCR_READ_ERROR_LOG = "ima: Error Communicating to TPM chip";

/** What IMA needs of a chip: the three typed calls of {@link Tpm} it uses. */
export type ImaChip = Pick<Tpm, "pcrRead" | "pcrExtend" | "getPcrBanks">;

/** Options of {@link imaBootAggregate}. */
export interface ImaBootAggregateOptions {
  /**
   * IMA's hash algorithm (`ima_hash=` / CONFIG_IMA_DEFAULT_HASH), the first bank preference.
   * Default `"sha256"` (what distributions configure; the Kconfig default is SHA-1).
   */
  imaHash?: ImaBank;
  /** Aborts the TPM calls. */
  signal?: AbortSignal;
  /** Bound for each TPM call, ms (the client's default when absent). */
  timeoutMs?: number;
}

/** The boot aggregate as `ima_calc_boot_aggregate()` leaves it. */
export interface ImaBootAggregate {
  /** The bank read and hashed with; `imaHash` when no bank fits. */
  readonly bank: ImaBank;
  /** The digest: H(PCR0‖…‖PCR7), plus ‖PCR8‖PCR9 for non-SHA-1 banks; all zero when no bank fits. */
  readonly aggregate: Uint8Array;
  /** The PCRs hashed (0–7, or 0–9); empty when no bank fits. */
  readonly pcrs: readonly number[];
  /** Kernel log lines produced on the way ("ima: No suitable TPM algorithm ...", read errors). */
  readonly log: readonly string[];
}

/** Options of {@link initIma}. */
export interface InitImaOptions extends ImaBootAggregateOptions {
  /** The default chip as `tpm_default_chip()` returns it when init_ima runs; `undefined` = none (TPM-bypass). */
  chip: ImaChip | undefined;
  /** The entry name: `"boot_aggregate"` (default) or `"boot_aggregate_late"` (the 2026 late_initcall_sync rework). */
  entryName?: "boot_aggregate" | "boot_aggregate_late";
}

/** What init_ima decided and measured. */
export interface ImaResult {
  /** True when no chip was found: TPM-bypass, nothing is extended. */
  readonly bypass: boolean;
  /** The boot aggregate (all zero in bypass, of the size of `bank`). */
  readonly aggregate: Uint8Array;
  /** The bank of the aggregate (`imaHash` in bypass or when no bank fits). */
  readonly bank: ImaBank;
  /** Kernel log lines, in order. */
  readonly log: string[];
  /** The measurement-list entry's name. */
  readonly entryName: string;
  /** The ima-ng template digest per bank, as extended into {@link IMA_MEASURE_PCR}; `{}` in bypass. */
  readonly extended: PcrDigests;
}

const HASHERS: Partial<Record<HashAlgName, (data: Uint8Array) => Uint8Array>> = { sha1, sha256, sha384, sha512 };

function hashWith(bank: HashAlgName, data: Uint8Array): Uint8Array | undefined {
  return HASHERS[bank]?.(data);
}

function assertImaHash(value: unknown, title: string): ImaBank {
  if (value === undefined) return "sha256";
  if (typeof value !== "string" || !IMA_BANKS.includes(value as ImaBank)) {
    throw new TpmArgumentError(`${title}: imaHash must be one of ${IMA_BANKS.join(", ")}, got ${typeof value === "string" ? `"${value}"` : typeof value}`);
  }
  return value as ImaBank;
}

/**
 * The banks the kernel records for a chip: those TPM_CAP_PCRS lists with at least one PCR
 * selected, in the TPM's order (drivers/char/tpm/tpm2-cmd.c, `tpm2_get_pcr_allocation()`
 * skips a bank whose pcrSelect is all zero).
 *
 * @param banks - the TPM_CAP_PCRS answer, as {@link Tpm.getPcrBanks} returns it.
 * @returns the allocated banks' names, in order; algorithms without a name are left out.
 * @example
 * ```ts
 * allocatedBanks(await tpm.getPcrBanks()); // ["sha1", "sha256", "sha384", "sha512"]
 * ```
 */
export function allocatedBanks(banks: readonly PcrSelect[]): HashAlgName[] {
  const out: HashAlgName[] = [];
  for (const b of banks) {
    const name = hashName(b.hash);
    if (name && b.pcrs.length > 0) out.push(name);
  }
  return out;
}

/**
 * The bank `ima_calc_boot_aggregate()` picks (Linux security/integrity/ima/ima_crypto.c): walking
 * the allocated banks in order, the first whose hash is IMA's own hash wins at once; otherwise
 * a SHA-256 bank; otherwise the first SHA-1 bank; otherwise none ("No suitable TPM
 * algorithm for boot aggregate").
 *
 * @param banks - the allocated banks in the chip's order ({@link allocatedBanks}).
 * @param imaHash - IMA's hash algorithm (`ima_hash=`). Default `"sha256"`.
 * @returns the chosen bank, or `undefined` when none fits.
 * @throws TpmArgumentError when `imaHash` is not a bank IMA knows.
 * @example
 * ```ts
 * chooseImaBank(["sha1", "sha384"], "sha256"); // "sha1"
 * chooseImaBank(["sha256", "sha384"], "sha384"); // "sha384"
 * ```
 */
export function chooseImaBank(banks: readonly HashAlgName[], imaHash?: ImaBank): ImaBank | undefined {
  const want = assertImaHash(imaHash, "chooseImaBank");
  let chosen: ImaBank | undefined;
  for (const b of banks) {
    if (b === want) return want;
    if (b === "sha256") chosen = "sha256";
    if (chosen === undefined && b === "sha1") chosen = "sha1";
  }
  return chosen;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function callOptions(options: ImaBootAggregateOptions | undefined): { signal?: AbortSignal; timeoutMs?: number } {
  const o: { signal?: AbortSignal; timeoutMs?: number } = {};
  if (options?.signal !== undefined) o.signal = options.signal;
  if (options?.timeoutMs !== undefined) o.timeoutMs = options.timeoutMs;
  return o;
}

/**
 * Computes the boot aggregate as Linux IMA does at init (security/integrity/ima/ima_crypto.c,
 * `ima_calc_boot_aggregate()` and `ima_calc_boot_aggregate_tfm()`): picks the bank
 * ({@link chooseImaBank}), reads PCR 0–7 of it one by one, and for a non-SHA-1 bank PCR 8–9 as
 * well, and hashes their concatenation with the bank's hash. Nothing is extended. A failed PCR
 * read logs "ima: Error Communicating to TPM chip" and, as in the kernel (the digest buffer is
 * reused), hashes the previous PCR's value again (zeros for PCR 0).
 *
 * @param tpm - the chip (a {@link Tpm}, or anything with its `getPcrBanks` and `pcrRead`).
 * @param options - {@link ImaBootAggregateOptions}.
 * @returns the bank, the digest, the PCRs hashed and the log lines.
 * @throws TpmArgumentError for a bad `imaHash`; an abort error when `signal` aborts; errors of
 *   `getPcrBanks` (the kernel read the banks at chip registration, so it has no such path).
 * @example
 * ```ts
 * const { bank, aggregate } = await imaBootAggregate(tpm);
 * ```
 */
export async function imaBootAggregate(tpm: Pick<Tpm, "pcrRead" | "getPcrBanks">, options?: ImaBootAggregateOptions): Promise<ImaBootAggregate> {
  const imaHash = assertImaHash(options?.imaHash, "imaBootAggregate");
  const banks = allocatedBanks(await tpm.getPcrBanks(callOptions(options)));
  return aggregateOver(tpm, banks, imaHash, options);
}

async function aggregateOver(tpm: Pick<Tpm, "pcrRead">, banks: readonly HashAlgName[], imaHash: ImaBank, options: ImaBootAggregateOptions | undefined): Promise<ImaBootAggregate> {
  const call = callOptions(options);
  const bank = chooseImaBank(banks, imaHash);
  const log: string[] = [];
  if (bank === undefined) {
    log.push(IMA_NO_SUITABLE_BANK_LOG);
    return { bank: imaHash, aggregate: new Uint8Array(HASH_ALGS[imaHash].size), pcrs: [], log };
  }
  const size = HASH_ALGS[bank].size;
  const pcrs = bank === "sha1" ? [0, 1, 2, 3, 4, 5, 6, 7] : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  let d: Uint8Array = new Uint8Array(size); // struct tpm_digest d, reused across reads
  const parts: Uint8Array[] = [];
  for (const i of pcrs) {
    throwIfAborted(options?.signal);
    try {
      const v = (await tpm.pcrRead({ [bank]: [i] }, call))[bank]?.[i];
      if (v?.length === size) d = v;
      else log.push(IMA_PCR_READ_ERROR_LOG);
    } catch {
      throwIfAborted(options?.signal);
      log.push(IMA_PCR_READ_ERROR_LOG);
    }
    parts.push(d.slice());
  }
  return { bank, aggregate: hashWith(bank, concat(parts))!, pcrs, log };
}

const ENCODER = /* @__PURE__ */ new TextEncoder();

function le32(n: number): Uint8Array {
  return new Uint8Array([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]);
}

/**
 * The ima-ng template data of an entry, field by field (Linux ima_template_lib.c): `d-ng` is the
 * algorithm name, ':', NUL, then the digest (`ima_eventdigest_init_common()`, DATA_FMT_DIGEST_WITH_ALGO);
 * `n-ng` is the name with spaces as '_' and a NUL added (`ima_write_template_field_data()`,
 * DATA_FMT_STRING).
 *
 * @param digestAlg - the algorithm of the event digest.
 * @param digest - the event digest (the boot aggregate).
 * @param name - the event name.
 * @returns the two fields' data.
 * @example
 * ```ts
 * const [d, n] = imaNgFields("sha256", aggregate, "boot_aggregate");
 * ```
 */
export function imaNgFields(digestAlg: ImaBank, digest: Uint8Array, name: string): [Uint8Array, Uint8Array] {
  const d = concat([ENCODER.encode(`${digestAlg}:`), new Uint8Array([0]), digest]);
  const n = concat([ENCODER.encode(name.replaceAll(" ", "_")), new Uint8Array([0])]);
  return [d, n];
}

/**
 * The ima-ng template digest of one bank (Linux ima_crypto.c, `ima_calc_field_array_hash_tfm()`):
 * the bank's hash over, for each field, its length as a little-endian u32 (arm64 and x86 are
 * little-endian; `ima_canonical_fmt` makes it little-endian everywhere) then its data. A bank
 * whose hash this model does not implement gets the SHA-1 digest zero-padded to its size, as the
 * kernel does for unmapped TPM algorithms (`ima_calc_field_array_hash()`).
 *
 * @param bank - the PCR bank the digest is for.
 * @param fields - the template fields ({@link imaNgFields}).
 * @returns the template digest, of the bank's size.
 * @example
 * ```ts
 * const t = imaTemplateDigest("sha256", imaNgFields("sha256", aggregate, "boot_aggregate"));
 * ```
 */
export function imaTemplateDigest(bank: HashAlgName, fields: readonly Uint8Array[]): Uint8Array {
  const data = concat(fields.flatMap((f) => [le32(f.length), f]));
  const direct = hashWith(bank, data);
  if (direct) return direct;
  const out = new Uint8Array(HASH_ALGS[bank].size);
  out.set(sha1(data));
  return out;
}

function errorResult(err: unknown): number {
  if (err instanceof TpmResponseError) return err.rc;
  return -5; // -EIO: what a transport failure comes back as from tpm_transmit()
}

/**
 * Runs Linux's `ima_init()` against the chip `tpm_default_chip()` returned (Linux
 * security/integrity/ima/ima_init.c): no chip → logs "ima: No TPM chip found, activating
 * TPM-bypass!", the aggregate stays all zero (of `imaHash`'s size, `ima_add_boot_aggregate()`
 * sets its length from `ima_hash_algo`) and nothing is extended; a chip → computes the boot
 * aggregate ({@link imaBootAggregate}) and stores the first measurement-list entry: its ima-ng
 * template digest ({@link imaTemplateDigest} over `d-ng` = the aggregate and `n-ng` = the entry
 * name), one per allocated bank, is extended into PCR 10 with one TPM2_PCR_Extend
 * (ima_queue.c, `ima_add_template_entry()` → `ima_pcr_extend()`). The aggregate itself is not
 * what PCR 10 receives. A failed extend logs "ima: Error Communicating to TPM chip, result: N"
 * and IMA carries on, as the kernel does.
 *
 * @param options - {@link InitImaOptions}; `chip` is required (may be `undefined`).
 * @returns the decision, the aggregate, its bank, the log lines, the entry name and what was extended.
 * @throws TpmArgumentError for bad options; an abort error when `signal` aborts; errors of
 *   `getPcrBanks`.
 * @example
 * ```ts
 * const ima = await initIma({ chip: platform.defaultChip() });
 * if (ima.bypass) console.log(ima.log.join("\n"));
 * ```
 */
export async function initIma(options: InitImaOptions): Promise<ImaResult> {
  if (options === null || typeof options !== "object" || !("chip" in options)) {
    throw new TpmArgumentError("initIma: options must be an object with `chip` (a Tpm, or undefined for none)");
  }
  const imaHash = assertImaHash(options.imaHash, "initIma");
  const entryName = options.entryName ?? IMA_BOOT_AGGREGATE_NAME;
  if (entryName !== IMA_BOOT_AGGREGATE_NAME && entryName !== IMA_BOOT_AGGREGATE_LATE_NAME) {
    throw new TpmArgumentError(`initIma: entryName must be "${IMA_BOOT_AGGREGATE_NAME}" or "${IMA_BOOT_AGGREGATE_LATE_NAME}", got ${String(entryName)}`);
  }
  const chip = options.chip;
  throwIfAborted(options.signal);
  if (!chip) {
    return { bypass: true, aggregate: new Uint8Array(HASH_ALGS[imaHash].size), bank: imaHash, log: [IMA_BYPASS_LOG], entryName, extended: {} };
  }
  const call = callOptions(options);
  const banks = allocatedBanks(await chip.getPcrBanks(call)); // the kernel's chip->allocated_banks
  const agg = await aggregateOver(chip, banks, imaHash, options);
  const log = [...agg.log];
  const fields = imaNgFields(agg.bank, agg.aggregate, entryName);
  const extended: PcrDigests = {};
  for (const b of banks) extended[b] = imaTemplateDigest(b, fields);
  if (Object.keys(extended).length > 0) {
    try {
      await chip.pcrExtend(IMA_MEASURE_PCR, extended, call);
    } catch (err) {
      throwIfAborted(options.signal);
      log.push(`${IMA_PCR_READ_ERROR_LOG}, result: ${errorResult(err)}`);
    }
  }
  return { bypass: false, aggregate: agg.aggregate, bank: agg.bank, log, entryName, extended };
}
