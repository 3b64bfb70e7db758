/**
 * Boundary checks with titled errors, in one place: every public entry point checks its arguments
 * with these, so the same mistake gets the same {@link TpmArgumentError} wherever it is made. Each
 * message starts with the caller's title (`"tis"`, `"crb"`, `"chip"`, `"tpm.getRandom"`, ...) and
 * says what was wrong with the value and of what type it was (`got string "8"`).
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import { TPM_RH } from "../wire/constants.js";
import { HASH_ALGS, HIERARCHIES, type HashAlgName, type PcrSelect } from "../wire/types.js";

/** Localities a TPM has: 0–4 (PTP §5.5.2, TPM_LOC_ZERO..TPM_LOC_FOUR). */
export const LOCALITY_COUNT = 5;

/**
 * Highest PCR index the typed API accepts: 31, the most a 4-byte pcrSelect addresses. PC Client
 * TPMs implement 24 (TCG PC Client Platform TPM Profile, PCR 0–23); the TPM refuses an index it
 * does not implement (TPM 2.0 Part 2 §7.4, PCR_FIRST..PCR_LAST = IMPLEMENTATION_PCR − 1).
 */
export const PCR_INDEX_MAX = 31;

/**
 * Describes a value for an error message, with its type, without running arbitrary code:
 * `string "8"`, `8`, `8n`, `boolean true`, `null`, `undefined`, `Uint8Array(3)`, `array(2)`,
 * `function`, `object`.
 */
export function describeValue(v: unknown): string {
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === "number" || v === undefined || v === null) return String(v);
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength})`;
  return typeof v;
}

/** `0x…` of a u32, for handle messages. */
const hex32 = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, "0")}`;

/**
 * Checks that `locality` is an integer in 0–4 and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: locality must be an integer in 0–4, got <value>"`.
 */
export function assertLocality(locality: unknown, title: string, name = "locality"): number {
  if (typeof locality !== "number" || !Number.isInteger(locality) || locality < 0 || locality >= LOCALITY_COUNT) {
    throw new TpmArgumentError(`${title}: ${name} must be an integer in 0–4, got ${describeValue(locality)}`);
  }
  return locality;
}

/**
 * Checks that `value` is an integer in `[min, max]` and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be an integer in <min>–<max>, got <value>"`.
 */
export function assertInteger(value: unknown, title: string, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new TpmArgumentError(`${title}: ${name} must be an integer in ${min}–${max}, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * Checks that `value` is a finite number ≥ 0 (a duration in milliseconds) and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be a finite number ≥ 0 (ms), got <value>"`.
 */
export function assertDuration(value: unknown, title: string, name: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new TpmArgumentError(`${title}: ${name} must be a finite number ≥ 0 (ms), got ${describeValue(value)}`);
  }
  return value;
}

/**
 * Checks that `value` is a `Uint8Array` (optionally of a length in `[min, max]`) and returns it.
 * Strings, arrays and Buffers-as-strings are refused, not coerced.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be a Uint8Array…, got <value>"`.
 */
export function assertBytes(value: unknown, title: string, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TpmArgumentError(`${title}: ${name} must be a Uint8Array, got ${describeValue(value)}`);
  if (value.length < min || value.length > max) {
    throw new TpmArgumentError(`${title}: ${name} must be ${min === max ? `${min}` : `${min}–${max}`} bytes, got ${value.length}`);
  }
  return value;
}

/**
 * Checks a password or other authorization value: bytes, or a string the caller means as UTF-8
 * (the documented encoding of every `auth` option), or `undefined` for none.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be a Uint8Array or a string (UTF-8), got <value>"`.
 */
export function assertAuth(value: unknown, title: string, name: string): Uint8Array | string | undefined {
  if (value === undefined || typeof value === "string" || value instanceof Uint8Array) return value;
  throw new TpmArgumentError(`${title}: ${name} must be a Uint8Array or a string (UTF-8), got ${describeValue(value)}`);
}

/**
 * Checks that `value` is a boolean and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be a boolean, got <value>"`.
 */
export function assertBoolean(value: unknown, title: string, name: string): boolean {
  if (typeof value !== "boolean") throw new TpmArgumentError(`${title}: ${name} must be a boolean, got ${describeValue(value)}`);
  return value;
}

/**
 * Checks that `value` is one of `choices` (compared with `===`) and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be one of "a", "b", got <value>"`.
 */
export function assertOneOf<T extends string>(value: unknown, title: string, name: string, choices: readonly T[]): T {
  if (!choices.includes(value as T)) throw new TpmArgumentError(`${title}: ${name} must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")}, got ${describeValue(value)}`);
  return value as T;
}

/**
 * Checks that `value` is an options object (not null, not an array) or `undefined`, and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be an object, got <value>"`.
 */
export function assertOptions<T extends object>(value: T | undefined, title: string, name = "options"): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new TpmArgumentError(`${title}: ${name} must be an object, got ${describeValue(value)}`);
  return value;
}

/**
 * Checks that `value` is an `AbortSignal` or `undefined`, and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be an AbortSignal, got <value>"`.
 */
export function assertSignal(value: unknown, title: string, name = "signal"): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new TpmArgumentError(`${title}: ${name} must be an AbortSignal, got ${describeValue(value)}`);
}

/** The per-call options every typed call takes (the fields of the chip's `TransmitOptions`). */
export interface CallOptionFields {
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Locality 0–4. */
  locality?: number;
  /** Duration bound, ms: finite and ≥ 0. */
  timeoutMs?: number;
  /** Whether TPM_RC_RETRY and the like are retried. */
  retry?: boolean;
}

/**
 * Checks per-call options: an object or `undefined`; `signal` an AbortSignal, `locality` 0–4,
 * `timeoutMs` a finite number ≥ 0, `retry` a boolean, each when given. Returns the options.
 *
 * @throws {@link TpmArgumentError} `"<title>: options.timeoutMs must be a finite number ≥ 0 (ms), got -1"`, ...
 */
export function assertCallOptions<T extends CallOptionFields>(options: T | undefined, title: string): T | undefined {
  if (assertOptions(options, title) === undefined) return undefined;
  const o = options!;
  assertSignal(o.signal, title, "options.signal");
  if (o.locality !== undefined) assertLocality(o.locality, title, "options.locality");
  if (o.timeoutMs !== undefined) assertDuration(o.timeoutMs, title, "options.timeoutMs");
  if (o.retry !== undefined) assertBoolean(o.retry, title, "options.retry");
  return o;
}

/**
 * Checks that `value` is a TPM handle (an integer in 0–0xFFFFFFFF) and, when `type` is given, of
 * that handle type (its top byte, TPM 2.0 Part 2 §7.2 TPM_HT). Returns it.
 *
 * @param typeName - what `type` is called in the message ("an NV index handle")
 * @throws {@link TpmArgumentError} `"<title>: <name> must be an NV index handle (0x01000000–0x01ffffff), got …"`.
 */
export function assertHandle(value: unknown, title: string, name: string, type?: number, typeName?: string): number {
  if (type === undefined) return assertInteger(value, title, name, 0, 0xffffffff);
  const lo = (type << 24) >>> 0;
  const ok = typeof value === "number" && Number.isInteger(value) && value >= lo && value <= lo + 0xffffff;
  if (!ok) {
    const got = typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffffffff ? `${value} (${hex32(value)})` : describeValue(value);
    throw new TpmArgumentError(`${title}: ${name} must be ${typeName ?? "a handle of type 0x" + type.toString(16)} (${hex32(lo)}–${hex32(lo + 0xffffff)}), got ${got}`);
  }
  return value;
}

/** Hash algorithm names, for messages. */
const HASH_NAMES = /* @__PURE__ */ Object.keys(HASH_ALGS).join(", ");

/**
 * Checks that `value` names a hash algorithm of the typed API (`"sha256"`, ...) and returns the
 * name. Only own keys count (`"constructor"` is not a hash).
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be one of sha1, sha256, …, got <value>"`.
 */
export function assertHashAlg(value: unknown, title: string, name = "alg"): HashAlgName {
  if (typeof value === "string" && Object.hasOwn(HASH_ALGS, value)) return value as HashAlgName;
  throw new TpmArgumentError(`${title}: ${name} must be one of ${HASH_NAMES}, got ${describeValue(value)}`);
}

/**
 * Checks a hierarchy given by name (`"owner"`, ...) or by handle, and returns its handle. With
 * `allowed`, only those names (and their handles) are accepted.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be one of owner, platform, … or a handle, got <value>"`.
 */
export function assertHierarchy(value: unknown, title: string, name = "hierarchy", allowed?: readonly (keyof typeof HIERARCHIES)[]): number {
  const names = allowed ?? (Object.keys(HIERARCHIES) as (keyof typeof HIERARCHIES)[]);
  if (typeof value === "string" && names.includes(value as keyof typeof HIERARCHIES)) return HIERARCHIES[value as keyof typeof HIERARCHIES];
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) {
    if (!allowed || allowed.some((n) => HIERARCHIES[n] === value)) return value;
  }
  throw new TpmArgumentError(`${title}: ${name} must be one of ${names.join(", ")}${allowed ? "" : " or a handle"}, got ${describeValue(value)}`);
}

/**
 * Checks a PCR index: an integer in 0–{@link PCR_INDEX_MAX}, or with `orNull` also TPM_RH_NULL
 * (0x40000007: the `TPMI_DH_PCR+` handle of PCR_Extend, PCR_Event and EventSequenceComplete,
 * TPM 2.0 Part 3 §22.2, §22.3, §17.6, which extends nothing). Returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: pcr must be an integer in 0–31, got <value>"`.
 */
export function assertPcrIndex(value: unknown, title: string, name = "pcr", orNull = false): number {
  if (orNull && value === TPM_RH.NULL) return value;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > PCR_INDEX_MAX) {
    throw new TpmArgumentError(`${title}: ${name} must be an integer in 0–${PCR_INDEX_MAX}${orNull ? " or TPM_RH_NULL (0x40000007)" : ""}, got ${describeValue(value)}`);
  }
  return value;
}

/** An object that is a plain record (not null, not an array, not bytes). */
function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Checks a PCR selection per bank (`{ sha256: [0, 1] }`): an object whose keys are hash names and
 * whose values are arrays of PCR indices; banks given as `undefined` are skipped; at least one
 * PCR in all. Returns the banks with their indices sorted and without repeats.
 *
 * @throws {@link TpmArgumentError} for anything else, the empty selection included.
 */
export function assertPcrSelection(value: unknown, title: string, name = "selection"): PcrSelect[] {
  const shape = "({ sha256: [0, 1] })";
  if (!isRecord(value)) throw new TpmArgumentError(`${title}: ${name} must be an object of PCR lists per bank ${shape}, got ${describeValue(value)}`);
  const out: PcrSelect[] = [];
  for (const [bank, pcrs] of Object.entries(value)) {
    if (pcrs === undefined) continue;
    const alg = assertBank(bank, title, name);
    if (!Array.isArray(pcrs)) throw new TpmArgumentError(`${title}: ${name}.${bank} must be an array of PCR indices, got ${describeValue(pcrs)}`);
    const set = new Set<number>();
    pcrs.forEach((p, i) => set.add(assertPcrIndex(p, title, `${name}.${bank}[${i}]`)));
    if (set.size > 0) out.push({ hash: HASH_ALGS[alg].id, pcrs: [...set].sort((a, b) => a - b) });
  }
  if (out.length === 0) throw new TpmArgumentError(`${title}: ${name} must select at least one PCR ${shape}, got an empty object`);
  return out;
}

/**
 * Checks digests per bank (`{ sha256: Uint8Array(32) }`): an object whose keys are hash names and
 * whose values are digests of that hash's size; banks given as `undefined` are skipped; at least
 * one bank. Returns `{ hash, digest }` per bank, in the order given.
 *
 * @throws {@link TpmArgumentError} for anything else, the empty map included.
 */
export function assertPcrDigests(value: unknown, title: string, name = "digests"): { hash: number; digest: Uint8Array }[] {
  const shape = "({ sha256: Uint8Array(32) })";
  if (!isRecord(value)) throw new TpmArgumentError(`${title}: ${name} must be an object of digests per bank ${shape}, got ${describeValue(value)}`);
  const out: { hash: number; digest: Uint8Array }[] = [];
  for (const [bank, d] of Object.entries(value)) {
    if (d === undefined) continue;
    const alg = HASH_ALGS[assertBank(bank, title, name)];
    out.push({ hash: alg.id, digest: assertBytes(d, title, `${name}.${bank}`, alg.size, alg.size) });
  }
  if (out.length === 0) throw new TpmArgumentError(`${title}: ${name} must give at least one bank ${shape}, got an empty object`);
  return out;
}

function assertBank(bank: string, title: string, name: string): HashAlgName {
  if (Object.hasOwn(HASH_ALGS, bank)) return bank as HashAlgName;
  throw new TpmArgumentError(`${title}: ${name} has an unknown bank, expected one of ${HASH_NAMES}, got ${describeValue(bank)}`);
}

/**
 * Checks that `value` is a bigint in 0–2^64−1 (a UINT64) and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be a bigint in 0–2^64−1, got <value>"`.
 */
export function assertU64(value: unknown, title: string, name: string): bigint {
  if (typeof value !== "bigint" || value < 0n || value > 0xffffffffffffffffn) throw new TpmArgumentError(`${title}: ${name} must be a bigint in 0–2^64−1, got ${describeValue(value)}`);
  return value;
}

/**
 * Checks that `value` is an array and checks each element with `each` (named `<name>[i]`).
 * Returns the checked elements.
 *
 * @throws {@link TpmArgumentError} `"<title>: <name> must be an array, got <value>"`, or `each`'s error.
 */
export function assertArray<T>(value: unknown, title: string, name: string, each: (x: unknown, name: string) => T): T[] {
  if (!Array.isArray(value)) throw new TpmArgumentError(`${title}: ${name} must be an array, got ${describeValue(value)}`);
  return value.map((x, i) => each(x, `${name}[${i}]`));
}
