/**
 * The error classes of tpmkit. Every error tpmkit throws extends {@link TpmkitError} and carries a
 * stable `code` string (match on it, not on the message), a `shortMessage`, optional `details`
 * and the `cause` that led to it.
 *
 * @packageDocumentation
 */

/**
 * The key under which every tpmkit error carries the names of its class chain (see
 * {@link TpmkitError}'s `instanceof`). `Symbol.for`, so every copy of tpmkit in a process shares it.
 */
export const ERROR_BRAND: unique symbol = Symbol.for("tpmkit.error");

/** A class's own `errorName` (see {@link TpmkitError.errorName}), else its constructor name. */
function errorNameOf(c: Function): string {
  return Object.prototype.hasOwnProperty.call(c, "errorName") ? String((c as { errorName?: unknown }).errorName) : c.name;
}

/** Options every tpmkit error accepts. */
export interface TpmkitErrorOptions {
  /** The error (or value) that caused this one. */
  cause?: unknown;
  /** Longer explanation, appended to the message on its own line. */
  details?: string;
}

/**
 * Base class of every error tpmkit throws.
 *
 * @example
 * ```ts
 * import { Tpm, SoftTpm, TpmkitError, memory } from "tpmkit";
 * await using tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
 * try {
 *   console.log(await tpm.getRandom(8, { timeoutMs: 2000 }));
 * } catch (e) {
 *   // match on the stable code, not on the message
 *   if (e instanceof TpmkitError && e.code === "TPM_TIMEOUT") console.log("the TPM did not answer in time");
 *   else throw e;
 * }
 * ```
 */
export class TpmkitError extends Error {
  /**
   * `instanceof` that holds across copies of tpmkit in one process (the ESM and the CJS build of a
   * dual package, or two versions side by side), as undici does for its errors: every tpmkit error
   * carries, under a `Symbol.for` key, the names of its class chain, and each class checks that list
   * when the ordinary prototype check fails.
   */
  static override [Symbol.hasInstance](instance: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, instance)) return true;
    if (typeof instance !== "object" || instance === null) return false;
    const chain = (instance as { [ERROR_BRAND]?: unknown })[ERROR_BRAND];
    return Array.isArray(chain) && chain.includes(errorNameOf(this));
  }

  /**
   * The class's name as a string literal, so `error.name` and the cross-copy `instanceof` survive
   * a minifier that renames classes. Every tpmkit error class declares its own; a user's subclass
   * that does not falls back to its (possibly minified) constructor name.
   */
  static readonly errorName: string = "TpmkitError";

  /** Stable machine-readable code, e.g. `"TPM_RESPONSE"`. */
  readonly code: string;
  /** The message without details. */
  readonly shortMessage: string;
  /** Longer explanation, if any. */
  readonly details: string | undefined;

  constructor(code: string, shortMessage: string, options: TpmkitErrorOptions = {}) {
    super(options.details ? `${shortMessage}\n${options.details}` : shortMessage, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = errorNameOf(new.target);
    const chain: string[] = [];
    for (let c: unknown = new.target; typeof c === "function" && c !== Error; c = Object.getPrototypeOf(c)) chain.push(errorNameOf(c as Function));
    Object.defineProperty(this, ERROR_BRAND, { value: Object.freeze(chain), enumerable: false });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = options.details;
  }

  /**
   * Walks the `cause` chain and returns the first error for which `predicate` is true (or the
   * deepest cause when no predicate is given).
   */
  walk(predicate?: (e: unknown) => boolean): unknown {
    let cur: unknown = this;
    let last: unknown = this;
    const seen = new Set<unknown>();
    while (cur !== undefined && cur !== null && !seen.has(cur)) {
      seen.add(cur);
      if (predicate?.(cur)) return cur;
      last = cur;
      cur = (cur as { cause?: unknown }).cause;
    }
    return predicate ? undefined : last;
  }
}

/** Bytes that do not parse: a truncated buffer, a size field that lies, a bad tag. */
export class TpmFormatError extends TpmkitError {
  static override readonly errorName: string = "TpmFormatError";
  constructor(message: string, options?: TpmkitErrorOptions) {
    super("TPM_FORMAT", message, options);
  }
}

/** A caller passed an argument that is out of range or of the wrong shape. */
export class TpmArgumentError extends TpmkitError {
  static override readonly errorName: string = "TpmArgumentError";
  constructor(message: string, options?: TpmkitErrorOptions) {
    super("TPM_ARGUMENT", message, options);
  }
}

/** A wait ran past its bound. `operation` says which wait, `timeoutMs` how long it was. */
export class TpmTimeoutError extends TpmkitError {
  static override readonly errorName: string = "TpmTimeoutError";
  readonly operation: string;
  readonly timeoutMs: number;
  constructor(operation: string, timeoutMs: number, options?: TpmkitErrorOptions) {
    super("TPM_TIMEOUT", `${operation} timed out after ${timeoutMs} ms`, options);
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The transport below the chip failed: a socket closed, a device returned an errno, a driver saw
 * a protocol violation. `errno` is set where the failure maps to one (e.g. `"EIO"`, `"E2BIG"`).
 */
export class TpmTransportError extends TpmkitError {
  static override readonly errorName: string = "TpmTransportError";
  readonly errno: string | undefined;
  constructor(message: string, options: TpmkitErrorOptions & { errno?: string } = {}) {
    super("TPM_TRANSPORT", message, options);
    this.errno = options.errno;
  }
}

/** No TPM is there: no device node, registers that read 0 or 0xFF, an invalid DID/VID. */
export class TpmNotFoundError extends TpmkitError {
  static override readonly errorName: string = "TpmNotFoundError";
  constructor(message: string, options?: TpmkitErrorOptions) {
    super("TPM_NOT_FOUND", message, options);
  }
}

/**
 * A dependency of the transport is not there yet (the kernel's EPROBE_DEFER): try again when it
 * appears. `dependency` names what is missing.
 */
export class ProbeDeferredError extends TpmkitError {
  static override readonly errorName: string = "ProbeDeferredError";
  readonly dependency: string;
  constructor(dependency: string, options?: TpmkitErrorOptions) {
    super("PROBE_DEFERRED", `probe deferred: ${dependency} is not available yet`, options);
    this.dependency = dependency;
  }
}

/** The chip is closed, failed, or not ready for commands. */
export class TpmStateError extends TpmkitError {
  static override readonly errorName: string = "TpmStateError";
  constructor(message: string, options?: TpmkitErrorOptions) {
    super("TPM_STATE", message, options);
  }
}

/**
 * The transport is there but cannot serve commands now (a TPM that is present but not usable,
 * e.g. an fTPM whose TEE lost its supplicant): `Chip.transmit` rejects with it at once instead of
 * sending. `Chip.waitReady` waits for the TPM to become usable again. Code `"TPM_UNAVAILABLE"`.
 */
export class TpmUnavailableError extends TpmStateError {
  static override readonly errorName: string = "TpmUnavailableError";
  override readonly code: string = "TPM_UNAVAILABLE";
  constructor(message: string, options?: TpmkitErrorOptions) {
    super(message, options);
  }
}

/** A saved TPM state (file or blob) is corrupt, truncated or of another format version. */
export class TpmStateFileError extends TpmkitError {
  static override readonly errorName: string = "TpmStateFileError";
  constructor(message: string, options?: TpmkitErrorOptions) {
    super("TPM_STATE_FILE", message, options);
  }
}

/**
 * A call was cancelled through its AbortSignal. `name` is `"AbortError"`, as for `fetch`, so code
 * that checks `err.name === "AbortError"` works unchanged.
 */
export class TpmAbortError extends TpmkitError {
  static override readonly errorName: string = "TpmAbortError";
  constructor(message = "the operation was aborted", options?: TpmkitErrorOptions) {
    super("ABORT_ERR", message, options);
    this.name = "AbortError";
  }
}

/** A GlobalPlatform TEE client API error: `teeCode` (e.g. 0xffff3024) and `origin`. */
export class TeeError extends TpmkitError {
  static override readonly errorName: string = "TeeError";
  readonly teeCode: number;
  readonly origin: number;
  constructor(message: string, teeCode: number, origin: number, options?: TpmkitErrorOptions) {
    super("TEE_ERROR", message, options);
    this.teeCode = teeCode >>> 0;
    this.origin = origin;
  }
}

/** An Arm FF-A error or a TPM service status (DEN0138). */
export class FfaError extends TpmkitError {
  static override readonly errorName: string = "FfaError";
  readonly status: number;
  constructor(message: string, status: number, options?: TpmkitErrorOptions) {
    super("FFA_ERROR", message, options);
    this.status = status;
  }
}

/** Throws a {@link TpmAbortError} if `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortErrorFrom(signal);
}

/** The error to reject with when `signal` aborted: its reason if that is already a tpmkit error. */
export function abortErrorFrom(signal: AbortSignal): TpmkitError {
  const r: unknown = signal.reason;
  if (r instanceof TpmkitError) return r;
  return new TpmAbortError(undefined, { cause: r });
}
