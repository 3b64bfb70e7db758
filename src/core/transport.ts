/**
 * The contract between the {@link Chip} and whatever carries bytes to a TPM: the `tpm_class_ops`
 * of the Linux kernel, in TypeScript. A transport knows no TPM commands: bytes in, bytes out.
 * The chip above it owns queueing, timeouts, retries, readiness and response checks.
 *
 * @packageDocumentation
 */
import type { Clock } from "./clock.js";

/** Per-command context the chip hands to {@link Transport.send}. */
export interface SendOptions {
  /**
   * Aborted by the chip when the command's duration runs out or the caller aborts. A transport
   * must settle promptly once it fires (reject with anything; the chip maps the reason) and must
   * remove the listeners it added when `send` settles: the chip reuses one signal across commands
   * until it fires.
   */
  signal: AbortSignal;
  /** Locality to send at, 0–4. */
  locality: number;
  /** The command's duration bound in ms (what the chip enforces; for polling intervals). */
  timeoutMs: number;
  /** The chip's clock: every wait inside the transport must use it. */
  clock: Clock;
}

/** Context for {@link Transport.open}. */
export interface OpenContext {
  signal?: AbortSignal;
  clock: Clock;
  /** Default locality of the chip: its `locality` option, else the transport's `defaultLocality`, else 0. */
  locality: number;
}

/**
 * What a transport can tell about the TPM behind it without sending a command: `present` (there
 * and able to serve commands), `absent`, `deferred` (a dependency is missing; probe again later),
 * or `unusable`: there (the device node exists, the session is open) but unable to serve commands
 * now, e.g. an fTPM whose TEE lost the supplicant its storage needs. An `unusable` transport may
 * become `present` again by itself (the supplicant restarts) or only after it is opened again
 * (the session behind it died); it says which through the reason it reports.
 */
export type TransportPresence = "present" | "absent" | "deferred" | "unusable";

/**
 * Bytes in, bytes out. Only `kind` and `send` are required; the rest are capabilities.
 *
 * Rules for implementers:
 * - `send` is never called concurrently: the chip serializes.
 * - `send` returns exactly one whole response, with its header size field equal to its length
 *   (the chip checks this again and throws `TpmFormatError` if not).
 * - Every length read from a peer is checked against the bytes present before use.
 * - Errors are `TpmkitError`s: `TpmTransportError` for I/O, `TpmNotFoundError` for "no TPM",
 *   `ProbeDeferredError` for "dependency not there yet", `TpmTimeoutError` for bounded waits.
 */
export interface Transport {
  /** Short name for traces and errors: "memory", "tis", "crb", "swtpm", ... */
  readonly kind: string;
  /** Probe: connect, check the device is there. Called once by `Chip.open()`. */
  open?(ctx: OpenContext): Promise<void>;
  /** Sends one command and returns its response. */
  send(command: Uint8Array, options: SendOptions): Promise<Uint8Array>;
  /** Asks the TPM to abort the command in flight (TIS commandReady, CRB CANCEL, swtpm CANCEL_TPM_CMD). */
  cancel?(): void | Promise<void>;
  /** Releases sockets, files, localities. Idempotent. */
  close?(): Promise<void>;
  /**
   * The locality the transport was configured for (`tis({ locality: 3 })`). A `Chip` built
   * without a `locality` option sends every command, and Startup, at this one. Absent means 0.
   */
  readonly defaultLocality?: number;
  /** Localities the transport can send at. Absent means only locality 0. */
  readonly localities?: readonly number[];
  /** Largest command the transport accepts (bytes); the chip rejects larger ones up front. */
  readonly maxCommandSize?: number;
  /** Present / absent / deferred / unusable, without sending a command. */
  presence?(): TransportPresence;
  /**
   * Subscribes to presence changes; returns the unsubscribe function. `fn` gets the new presence
   * and, for anything but `present`, the reason (a `TpmkitError` when the transport has one). The
   * chip subscribes before it opens the transport and, once open, moves between `ready` and
   * `unusable` on what it hears, without sending a command. A transport never calls `fn` after
   * the unsubscribe function ran.
   */
  onPresence?(fn: (presence: TransportPresence, reason?: unknown) => void): () => void;
}

/**
 * What sits under a device model (TIS, CRB, fTPM TA) and runs commands: {@link SoftTpm}, a bridge
 * to any `Chip`, or a user's fake.
 */
export interface TpmBackend {
  /** Powers the backend up. Rejecting means "backend failed to start" (devices then read 0). */
  start?(): Promise<void>;
  /** Runs one command at a locality and returns the response. */
  execute(command: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Asks the backend to cancel the command in flight. */
  cancel?(): void;
}

/** A value or a promise of it: device models answer synchronously, bridges may not. */
export type MaybePromise<T> = T | Promise<T>;
