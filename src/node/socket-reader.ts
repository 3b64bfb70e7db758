/**
 * Buffered, bounded reads over a Node stream socket: the one socket reader under every socket
 * client and server (the swtpm data and control channels, the mssim command and platform ports,
 * and both servers). A peer may deliver a frame in any number of chunks (or cut it anywhere), so
 * every read here asks for an exact byte count and settles on exactly one of: the bytes, the peer
 * closing (a {@link TpmTransportError} with an errno), the deadline (a {@link TpmTimeoutError}) or
 * the caller's AbortSignal. Reads are serialized by the callers (one frame at a time).
 *
 * @packageDocumentation
 */
import type { Socket } from "node:net";
import { ByteQueue } from "./byte-queue.js";
import type { Clock, TimerHandle } from "../core/clock.js";
import { TpmTimeoutError, TpmTransportError, abortErrorFrom, type TpmkitError } from "../errors/index.js";
import { errnoOf } from "./connect.js";

export { ByteQueue, errnoOf };

/** Options of one {@link SocketReader.read}. */
export interface ReadOptions {
  /** Aborts the read (rejects with the signal's tpmkit error or a TpmAbortError). */
  signal?: AbortSignal | undefined;
  /** Deadline in ms on `clock`; absent or `Infinity` means no deadline (the signal must bound it). */
  timeoutMs?: number | undefined;
  /** Clock for the deadline. Required when `timeoutMs` is finite. */
  clock?: Clock | undefined;
  /** What is being read, for error messages ("response size", ...). */
  what?: string | undefined;
}

interface Waiter {
  n: number;
  /** false for {@link SocketReader.wait}: resolve once `n` bytes are buffered, take none. */
  consume: boolean;
  resolve(b: Uint8Array): void;
  reject(e: unknown): void;
}

const NONE = /* @__PURE__ */ new Uint8Array(0);

/**
 * Reads exact byte counts from a socket. Buffers what arrives, pauses the socket when more than
 * `highWater` bytes are waiting (so a flooding peer cannot grow memory without bound), and fails
 * every pending and future read once the socket closes.
 */
export class SocketReader {
  readonly #socket: Socket;
  readonly #queue = new ByteQueue();
  readonly #highWater: number;
  #waiter: Waiter | undefined;
  #closedError: TpmkitError | undefined;
  #paused = false;
  #peer: string;

  /**
   * @param socket - a connected socket (its `data`, `error` and `close` events are consumed)
   * @param peer - a name for error messages, e.g. `"mssim 127.0.0.1:2321"`
   * @param highWater - pause reading above this many buffered bytes (default 64 KiB)
   */
  constructor(socket: Socket, peer: string, highWater = 64 * 1024) {
    this.#socket = socket;
    this.#peer = peer;
    this.#highWater = highWater;
    socket.on("data", (d: Buffer) => {
      this.#queue.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      if (this.#queue.length > this.#highWater && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
      this.#pump();
    });
    socket.on("error", (e: Error) => {
      const errno = errnoOf(e);
      this.#fail(new TpmTransportError(`${this.#peer}: socket error${errno ? ` (${errno})` : ""}`, { cause: e, errno: errno ?? "EIO" }));
    });
    socket.on("close", () => {
      this.#fail(new TpmTransportError(`${this.#peer}: connection closed by peer`, { errno: "ECONNRESET" }));
    });
    socket.on("end", () => {
      // Half-close from the peer: no more bytes will come. Reads of what is buffered still work.
      this.#fail(new TpmTransportError(`${this.#peer}: connection closed by peer`, { errno: "ECONNRESET" }));
    });
  }

  /** The socket this reader consumes (for writes). */
  get socket(): Socket {
    return this.#socket;
  }

  /** Bytes already received and not yet read (stale bytes, when a frame is complete). */
  get buffered(): number {
    return this.#queue.length;
  }

  /** True once the peer closed or the socket failed. */
  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  /** Drops buffered bytes. */
  discard(): void {
    this.#queue.clear();
    this.#resumeIfLow();
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @param n - byte count (0 resolves at once)
   * @param options - signal, deadline, clock, label
   * @returns the bytes
   * @throws TpmTransportError when the peer closes first (errno `ECONNRESET` or the socket's)
   * @throws TpmTimeoutError when the deadline passes first
   * @throws TpmAbortError (or the signal's tpmkit reason) when aborted
   */
  read(n: number, options: ReadOptions = {}): Promise<Uint8Array> {
    return this.#await(n, true, options);
  }

  /**
   * Waits until at least `n` bytes are buffered, without taking any: a server waits for the first
   * byte of a frame with no deadline, then bounds the rest of the frame from that moment.
   *
   * @param n - byte count (at least 1 to wait for anything)
   * @param options - signal, deadline, clock, label
   * @throws as {@link SocketReader.read}
   */
  async wait(n: number, options: ReadOptions = {}): Promise<void> {
    await this.#await(n, false, options);
  }

  /**
   * Drops what is buffered, fails every pending and future read with `error` (unless the reader
   * already failed) and destroys the socket. What an owner calls to drop a connection with a reason
   * of its own.
   */
  destroy(error: TpmkitError): void {
    this.#queue.clear();
    this.#fail(error);
    this.#socket.destroy();
  }

  #await(n: number, consume: boolean, options: ReadOptions): Promise<Uint8Array> {
    if (this.#waiter) return Promise.reject(new TpmTransportError(`internal: concurrent read on ${this.#peer}`));
    if (this.#queue.length >= n) {
      if (!consume) return Promise.resolve(NONE);
      const b = this.#queue.take(n);
      this.#resumeIfLow();
      return Promise.resolve(b);
    }
    if (this.#closedError) return Promise.reject(this.#closedError);
    const { signal, timeoutMs, clock } = options;
    if (signal?.aborted) return Promise.reject(abortErrorFrom(signal));
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const cleanup = () => {
        timer?.clear();
        signal?.removeEventListener("abort", onAbort);
        this.#waiter = undefined;
      };
      const onAbort = () => {
        cleanup();
        reject(abortErrorFrom(signal!));
      };
      this.#waiter = {
        n,
        consume,
        resolve: (b) => {
          cleanup();
          resolve(b);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        const c = clock;
        if (!c) {
          cleanup();
          reject(new TpmTransportError("internal: a read deadline needs a clock"));
          return;
        }
        timer = c.setTimer(timeoutMs, () => {
          cleanup();
          reject(new TpmTimeoutError(`${this.#peer}: reading ${options.what ?? `${n} bytes`}`, timeoutMs));
        });
      }
      // This read needs more than is buffered: the socket must flow, whatever the high-water mark.
      if (this.#paused) {
        this.#paused = false;
        this.#socket.resume();
      }
    });
  }

  #pump(): void {
    const w = this.#waiter;
    if (w && this.#queue.length >= w.n) {
      if (!w.consume) return w.resolve(NONE);
      const b = this.#queue.take(w.n);
      this.#resumeIfLow();
      w.resolve(b);
    }
  }

  #resumeIfLow(): void {
    if (this.#paused && this.#queue.length <= this.#highWater / 2) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  #fail(e: TpmkitError): void {
    if (!this.#closedError) this.#closedError = e;
    const w = this.#waiter;
    if (w && this.#queue.length < w.n) w.reject(this.#closedError);
  }
}
