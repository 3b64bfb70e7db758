/**
 * Boundary checks with titled errors, in one place: every public entry point checks its arguments
 * with these, so the same mistake gets the same {@link TpmArgumentError} wherever it is made. Each
 * message starts with the caller's title (`"tis"`, `"crb"`, `"chip"`, ...) and says what was wrong.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";

/** Localities a TPM has: 0–4 (PTP §5.5.2, TPM_LOC_ZERO..TPM_LOC_FOUR). */
export const LOCALITY_COUNT = 5;

/** Describes a value for an error message without running arbitrary code. */
export function describeValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" || v === undefined || v === null) return String(v);
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  return typeof v;
}

/**
 * Checks that `locality` is an integer in 0–4 and returns it.
 *
 * @throws {@link TpmArgumentError} `"<title>: locality must be an integer in 0–4, got <value>"`.
 */
export function assertLocality(locality: unknown, title: string): number {
  if (typeof locality !== "number" || !Number.isInteger(locality) || locality < 0 || locality >= LOCALITY_COUNT) {
    throw new TpmArgumentError(`${title}: locality must be an integer in 0–4, got ${describeValue(locality)}`);
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
