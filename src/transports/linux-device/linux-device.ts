/**
 * The Linux character-device transport: `/dev/tpmrm0` (the kernel's resource manager, many
 * openers) or `/dev/tpm0` (raw, one opener). Write the command, read the response; one command
 * outstanding per open file. Linux drivers/char/tpm/tpm-dev-common.c (tpm_common_read(),
 * tpm_common_write()), tpm-dev.c and tpmrm-dev.c; tpm2-tss src/tss2-tcti/tcti-device.c.
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../../core/clock.js";
import {
  TpmArgumentError,
  TpmFormatError,
  TpmNotFoundError,
  TpmStateError,
  TpmTimeoutError,
  TpmTransportError,
  TpmkitError as TpmkitErrorBase,
  abortErrorFrom,
  throwIfAborted,
  type TpmkitError,
} from "../../errors/index.js";
import type { OpenContext, SendOptions, Transport } from "../../core/transport.js";
import { HEADER_SIZE, readHeader } from "../../wire/buffer.js";
import { nodeDeviceFs, type DeviceFile, type DeviceFs } from "./fs.js";

/** The kernel's TPM buffer size (TPM_BUFSIZE): the largest command or response, bytes. */
export const TPM_DEVICE_BUFSIZE = 4096;

/** Paths tried when none is given, in tpm2-tss tcti-device's order. */
export const DEFAULT_DEVICE_PATHS: readonly string[] = ["/dev/tpmrm0", "/dev/tpm0"];

/** Options of {@link linuxDevice}. */
export interface LinuxDeviceOptions {
  /** Device path. Default: `/dev/tpmrm0`, then `/dev/tpm0`. */
  path?: string | undefined;
  /** File access (default `node:fs/promises`); inject {@link FakeTpmDevice} in tests. */
  fs?: DeviceFs | undefined;
  /** Clock for polling and deadlines outside `send` (default the system clock). */
  clock?: Clock | undefined;
  /** First interval between reads while the response is not there, ms (default 1, the kernel's poll). */
  pollIntervalMs?: number | undefined;
  /** Longest interval between reads, ms (the interval doubles up to this; default 20). */
  maxPollIntervalMs?: number | undefined;
}

/** The transport {@link linuxDevice} returns. */
export interface LinuxDeviceTransport extends Transport {
  readonly kind: "device";
  /** The path in use (known after `open()` when the default search picked it). */
  readonly path: string | undefined;
}

function errnoOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "string" ? c : undefined;
}

const HINTS: Record<string, string> = {
  EACCES: "Permission denied: run as root or add the user to the group that owns the device (usually tss).",
  EPERM: "Operation not permitted: run as root or add the user to the group that owns the device (usually tss).",
  EBUSY: "The device is busy: /dev/tpm0 allows one opener (a resource manager such as tpm2-abrmd may hold it; use /dev/tpmrm0), or a response is still unread.",
  E2BIG: "The command is larger than the kernel's 4096-byte buffer.",
  EINVAL: "The kernel rejected the command as malformed (shorter than its header or than 6 bytes).",
};

/** Maps an errno from open(2)/read(2)/write(2) on a TPM device to a tpmkit error. */
export function deviceError(op: string, path: string, e: unknown): TpmkitError {
  const errno = errnoOf(e) ?? "EIO";
  if (errno === "ENOENT" || errno === "ENODEV" || errno === "ENXIO") {
    return new TpmNotFoundError(`${path}: no TPM device (${errno})`, { cause: e });
  }
  return new TpmTransportError(`${path}: ${op} failed (${errno})`, { cause: e, errno, details: HINTS[errno] });
}

/**
 * fstat(2)s a just-opened file and refuses anything but a character device, before any write:
 * `-T device:/etc/passwd` (as root) must not write a TPM command into a regular file. The file
 * is closed on refusal.
 */
async function checkCharacterDevice(f: DeviceFile, path: string): Promise<void> {
  let kind: string;
  try {
    if (typeof (f as Partial<DeviceFile>).stat !== "function") throw new TypeError("the DeviceFs gives no stat()");
    kind = (await f.stat()).kind;
  } catch (e) {
    await f.close().catch(() => undefined);
    throw new TpmTransportError(`${path}: cannot tell whether it is a character device (fstat failed); nothing was written`, {
      cause: e,
      errno: errnoOf(e) ?? "EIO",
    });
  }
  if (kind !== "character") {
    await f.close().catch(() => undefined);
    const what = kind === "file" ? "a regular file" : kind === "directory" ? "a directory" : kind === "other" ? "not a device" : `a ${kind}`;
    throw new TpmNotFoundError(`${path} is ${what}, not a TPM character device; nothing was written to it`, {
      details: "A TPM is a character device such as /dev/tpmrm0 or /dev/tpm0.",
    });
  }
}

/**
 * Creates a Linux device transport (kind `"device"`). Nothing is opened until `open()` or the
 * first `send()`.
 *
 * - `open()` opens the device non-blocking and fstat(2)s it: anything but a character device
 *   (a regular file, a FIFO, ...) is closed unwritten and refused with {@link TpmNotFoundError}.
 *   Without a `path` it tries `/dev/tpmrm0`, then
 *   `/dev/tpm0`; when none opens it throws {@link TpmNotFoundError} (all missing) or the first
 *   other failure, with every attempt in `details`.
 * - `send()` writes the command in one write (the kernel queues it), then polls read(2) on the
 *   chip's clock (1 ms doubling to 20 ms) until the response arrives, the deadline passes
 *   ({@link TpmTimeoutError}) or the signal aborts. A response is checked: at least 10 bytes, and
 *   its header size equals the bytes read, else {@link TpmFormatError}.
 * - Errnos map to typed errors with `errno`: ENOENT → TpmNotFoundError; EBUSY, E2BIG, EINVAL,
 *   EACCES, EIO... → TpmTransportError.
 * - After a timeout or abort the kernel still owes a response: the next `send()` reads and
 *   discards it before writing (the kernel would answer EBUSY otherwise).
 * - Locality is always 0 (the kernel offers userspace no other); cancel is not available.
 *
 * @param options - path, injected file access, clock, poll intervals
 * @returns the transport
 *
 * @example
 * ```ts
 * const tpm = await Tpm.open(linuxDevice());               // /dev/tpmrm0, else /dev/tpm0
 * const raw = await Tpm.open(linuxDevice({ path: "/dev/tpm0" }));
 * ```
 */
export function linuxDevice(options: LinuxDeviceOptions = {}): LinuxDeviceTransport {
  const fs = options.fs ?? nodeDeviceFs;
  const pollMin = options.pollIntervalMs ?? 1;
  const pollMax = options.maxPollIntervalMs ?? 20;
  if (options.path === "") throw new TpmArgumentError("device: path is empty");
  let clock: Clock = options.clock ?? systemClock;
  let path: string | undefined = options.path;
  let file: DeviceFile | undefined;
  let opening: Promise<DeviceFile> | undefined;
  let closed = false;
  let owed = false; // a command was written and its response not read (timeout/abort)
  let pendingIo: Promise<unknown> | undefined; // a file operation still running (maybe abandoned)

  async function openFile(signal?: AbortSignal): Promise<DeviceFile> {
    if (file) return file;
    if (opening) return opening;
    opening = (async () => {
      throwIfAborted(signal);
      const candidates = options.path !== undefined ? [options.path] : [...DEFAULT_DEVICE_PATHS];
      const failures: Array<{ path: string; error: TpmkitError }> = [];
      for (const p of candidates) {
        try {
          const f = await fs.open(p);
          if (closed) {
            await f.close().catch(() => undefined);
            throw new TpmStateError("device: transport closed while opening");
          }
          await checkCharacterDevice(f, p);
          file = f;
          path = p;
          return f;
        } catch (e) {
          if (e instanceof TpmStateError) throw e;
          failures.push({ path: p, error: e instanceof TpmkitErrorBase ? e : deviceError("open", p, e) });
        }
      }
      if (failures.length === 1) throw failures[0]!.error;
      const details = failures.map((f) => f.error.shortMessage).join("\n");
      const firstReal = failures.find((f) => !(f.error instanceof TpmNotFoundError));
      if (!firstReal) throw new TpmNotFoundError(`no TPM device: tried ${candidates.join(", ")}`, { details });
      throw new TpmTransportError(`no usable TPM device: ${firstReal.error.shortMessage}`, {
        cause: firstReal.error,
        errno: (firstReal.error as TpmTransportError).errno,
        details,
      });
    })();
    try {
      return await opening;
    } finally {
      opening = undefined;
    }
  }

  /** Waits `ms` on `c`, honouring the signal and the deadline. */
  async function pause(c: Clock, ms: number, signal: AbortSignal | undefined, deadline: number, what: string, timeoutMs: number): Promise<void> {
    const left = deadline - c.now();
    if (left <= 0) throw new TpmTimeoutError(`${path ?? "device"}: ${what}`, timeoutMs);
    await c.sleep(Math.min(ms, left), signal);
  }

  /** A wait bound: the caller's signal and an absolute deadline on a clock. */
  interface Bound {
    signal: AbortSignal | undefined;
    clock: Clock;
    deadline: number;
    timeoutMs: number;
  }

  /**
   * Runs one file operation, bounded by `b`. The operation itself cannot be interrupted (it runs
   * on the thread pool); when the bound fires first it is abandoned, and the next operation
   * waits for it to settle before touching the file.
   */
  async function io<T>(fn: () => Promise<T>, b: Bound, what: string): Promise<T> {
    while (pendingIo) await bounded(pendingIo, b, what);
    const p = fn();
    const tracked: Promise<unknown> = p.then(
      () => undefined,
      () => undefined,
    );
    pendingIo = tracked;
    void tracked.then(() => {
      if (pendingIo === tracked) pendingIo = undefined;
    });
    return bounded(p, b, what);
  }

  function bounded<T>(p: Promise<T>, b: Bound, what: string): Promise<T> {
    const { signal, clock: c } = b;
    if (signal?.aborted) return Promise.reject(abortErrorFrom(signal));
    return new Promise<T>((resolve, reject) => {
      const left = Math.max(0, b.deadline - c.now());
      const timer = Number.isFinite(left)
        ? c.setTimer(left, () => finish(() => reject(new TpmTimeoutError(`${path ?? "device"}: ${what}`, b.timeoutMs))))
        : undefined;
      const onAbort = () => finish(() => reject(abortErrorFrom(signal!)));
      let done = false;
      function finish(f: () => void) {
        if (done) return;
        done = true;
        timer?.clear();
        signal?.removeEventListener("abort", onAbort);
        f();
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      p.then(
        (v) => finish(() => resolve(v)),
        (e) => finish(() => reject(e)),
      );
    });
  }

  /** One read(2) into a fresh buffer, errors mapped. A response read (even by an abandoned read) settles what is owed. */
  function readOnce(f: DeviceFile, b: Bound): Promise<Uint8Array> {
    return io(
      async () => {
        const buf = new Uint8Array(TPM_DEVICE_BUFSIZE);
        let n: number;
        try {
          n = await f.read(buf);
        } catch (e) {
          owed = false; // the kernel hands a failed command's error to the next read
          throw deviceError("read", path ?? "device", e);
        }
        if (!Number.isInteger(n) || n < 0 || n > buf.length) {
          throw new TpmFormatError(`${path}: read returned an impossible length ${n}`);
        }
        if (n > 0) owed = false;
        return buf.subarray(0, n);
      },
      b,
      "reading the response",
    );
  }

  /** Polls read(2) until a response comes. */
  async function readResponse(f: DeviceFile, b: Bound): Promise<Uint8Array> {
    let interval = pollMin;
    for (;;) {
      const r = await readOnce(f, b);
      if (r.length > 0) return r;
      await pause(b.clock, interval, b.signal, b.deadline, "waiting for the response", b.timeoutMs);
      interval = Math.min(interval * 2, pollMax);
    }
  }

  const transport: LinuxDeviceTransport = {
    kind: "device",
    get path() {
      return path;
    },
    localities: [0],
    maxCommandSize: TPM_DEVICE_BUFSIZE,

    async open(ctx: OpenContext): Promise<void> {
      if (closed) throw new TpmStateError("device: transport is closed");
      clock = ctx.clock;
      await openFile(ctx.signal);
    },

    async send(command: Uint8Array, opts: SendOptions): Promise<Uint8Array> {
      if (closed) throw new TpmStateError(`${path ?? "device"}: transport is closed`);
      throwIfAborted(opts.signal);
      if (opts.locality !== 0) throw new TpmArgumentError(`${path ?? "device"}: the kernel offers userspace locality 0 only, not ${opts.locality}`);
      const c = opts.clock ?? clock;
      const b: Bound = { signal: opts.signal, clock: c, deadline: c.now() + opts.timeoutMs, timeoutMs: opts.timeoutMs };
      const f = await bounded(openFile(opts.signal), b, "opening the device");
      if (owed) await readOnce(f, b); // a late response of an abandoned command: discard it
      let written: number;
      for (let interval = pollMin; ; interval = Math.min(interval * 2, pollMax)) {
        try {
          written = await io(() => f.write(command), b, "writing the command");
          break;
        } catch (e) {
          if (e instanceof TpmkitErrorBase) throw e;
          if (owed && errnoOf(e) === "EBUSY") {
            // The previous command's response is still coming: drain it, then write again.
            if ((await readOnce(f, b)).length === 0) await pause(c, interval, opts.signal, b.deadline, "draining the previous response", opts.timeoutMs);
            continue;
          }
          throw deviceError("write", path!, e);
        }
      }
      if (written !== command.length) {
        throw new TpmTransportError(`${path}: short write, ${written} of ${command.length} bytes`, { errno: "EIO" });
      }
      owed = true; // until a read consumes the response (or the kernel reports its error)
      const response = await readResponse(f, b);
      if (response.length < HEADER_SIZE) throw new TpmFormatError(`${path}: response of ${response.length} bytes is shorter than a TPM header`);
      try {
        readHeader(response, true);
      } catch (e) {
        throw new TpmFormatError(`${path}: response header size disagrees with the ${response.length} bytes read`, { cause: e });
      }
      return response;
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const f = file ?? (await opening?.catch(() => undefined));
      file = undefined;
      await f?.close().catch(() => undefined);
    },
  };
  return transport;
}
