/**
 * The swtpm transport: TPM commands over swtpm's data channel (TCP or UNIX socket), with locality
 * and cancel through its control channel.
 *
 * - One persistent data connection (tcti-swtpm opens one per command, which costs ~70 µs over TCP;
 *   swtpm-measured.md §4), TCP_NODELAY on.
 * - Each command goes out in one write: swtpm processes what one read() returns, so a split command
 *   is executed truncated (qemu-swtpm.md §3, measured).
 * - The response is framed by its header size field, parsed in place from the socket's read buffer
 *   (Node's `onread`, no per-read allocation); a size below 10 or above `maxResponseSize` is a
 *   {@link TpmFormatError} and the connection is dropped before any body byte is copied.
 * - A peer that drops mid-command fails that command with {@link TpmTransportError}; the next
 *   command reconnects. An aborted command drops the connection too (its late response would
 *   otherwise be read as the next command's).
 * - Locality: CMD_SET_LOCALITY on the control channel, sent only when the locality changes (and
 *   once after each data reconnect, since swtpm may have been restarted).
 *
 * Node-specific (node:net).
 *
 * @packageDocumentation
 */
import type * as net from "node:net";
import { systemClock, type Clock } from "../../core/clock.js";
import { TpmArgumentError, TpmFormatError, TpmStateError, TpmTransportError, abortErrorFrom } from "../../errors/index.js";
import type { OpenContext, SendOptions, Transport, TransportPresence } from "../../core/transport.js";
import { SwtpmControl, type SwtpmControlOptions } from "./control.js";
import { connectSocket, deriveControlEndpoint, describeEndpoint, normalizeEndpoint, type SwtpmEndpoint } from "../../node/swtpm-socket.js";

/** Options of {@link swtpm}. */
export interface SwtpmTransportOptions {
  /**
   * The control channel: an endpoint, an existing {@link SwtpmControl}, or `false` for none (then
   * only locality 0 is available and cancel is a no-op). Default: derived as tcti-swtpm does
   * (TCP port + 1, UNIX path + ".ctrl").
   */
  control?: SwtpmEndpoint | SwtpmControl | false;
  /** Bound of a data-channel connect, ms. Default 5 000. */
  connectTimeoutMs?: number;
  /** Largest response accepted, bytes. Default 4096 (swtpm's TPM 2 buffer size). */
  maxResponseSize?: number;
  /** Largest command sent, bytes. Default 4096. */
  maxCommandSize?: number;
  /** Options for the control client this transport creates (ignored for a given SwtpmControl). */
  controlOptions?: SwtpmControlOptions;
  /** Clock for connects outside `send` (open); `send` uses the chip's clock. Default: system clock. */
  clock?: Clock;
}

/** The swtpm transport: a {@link Transport} plus access to its control client. */
export interface SwtpmTransport extends Transport {
  readonly kind: "swtpm";
  /** The control-channel client, or undefined when `control: false`. */
  readonly control: SwtpmControl | undefined;
  /** The data-channel endpoint. */
  readonly endpoint: SwtpmEndpoint;
  /** Number of data connections made so far (reconnects show up here). */
  readonly connections: number;
  /** Connects the data channel (bounded by connectTimeoutMs and `ctx.signal`). */
  open(ctx: OpenContext): Promise<void>;
  /**
   * CMD_CANCEL_TPM_CMD when a command is in flight, or was just aborted in flight (the chip aborts
   * first, then cancels); otherwise nothing. Never rejects.
   */
  cancel(): void | Promise<void>;
  /** Closes the data connection (and the control client if this transport created it). Idempotent. */
  close(): Promise<void>;
  /** "present" while the data connection is up, else "absent". */
  presence(): TransportPresence;
}

interface Pending {
  resolve: (r: Uint8Array) => void;
  reject: (e: unknown) => void;
  signal: AbortSignal;
}

const READ_BUFFER_SIZE = 64 * 1024;

class SwtpmTransportImpl implements SwtpmTransport {
  readonly kind = "swtpm" as const;
  readonly endpoint: SwtpmEndpoint;
  readonly control: SwtpmControl | undefined;
  readonly localities: readonly number[];
  readonly maxCommandSize: number;
  readonly #maxResponse: number;
  readonly #connectTimeoutMs: number;
  readonly #ownsControl: boolean;
  readonly #clock: Clock;
  readonly #readBuf = new Uint8Array(READ_BUFFER_SIZE);
  #sock: net.Socket | undefined;
  #connecting: Promise<net.Socket> | undefined;
  #connections = 0;
  #closed = false;
  #locality: number | undefined;
  // response assembly
  #pending: Pending | undefined;
  #hdr = new Uint8Array(10);
  #hdrFill = 0;
  #resp: Uint8Array | undefined;
  #respFill = 0;
  /** A command was aborted in flight and no command went out since (the chip aborts, then cancels). */
  #abortedInFlight = false;
  readonly #onAbort = () => {
    const p = this.#pending;
    if (!p) return;
    this.#abortedInFlight = true;
    this.#drop(abortErrorFrom(p.signal));
  };

  constructor(target: SwtpmEndpoint, options: SwtpmTransportOptions) {
    this.endpoint = normalizeEndpoint(target, "swtpm endpoint");
    this.#clock = options.clock ?? systemClock;
    this.#connectTimeoutMs = positiveInt(options.connectTimeoutMs ?? 5000, "connectTimeoutMs");
    this.#maxResponse = positiveInt(options.maxResponseSize ?? 4096, "maxResponseSize");
    this.maxCommandSize = positiveInt(options.maxCommandSize ?? 4096, "maxCommandSize");
    if (this.#maxResponse < 10 || this.maxCommandSize < 10) throw new TpmArgumentError("maxResponseSize and maxCommandSize must be at least 10");
    const c = options.control;
    if (c === false) {
      this.control = undefined;
      this.#ownsControl = false;
      this.localities = [0];
    } else if (c instanceof SwtpmControl) {
      this.control = c;
      this.#ownsControl = false;
      this.localities = [0, 1, 2, 3, 4];
    } else {
      this.control = new SwtpmControl(c ?? deriveControlEndpoint(this.endpoint), { clock: this.#clock, ...(options.controlOptions ?? {}) });
      this.#ownsControl = true;
      this.localities = [0, 1, 2, 3, 4];
    }
  }

  get connections(): number {
    return this.#connections;
  }

  presence(): TransportPresence {
    return this.#sock ? "present" : "absent";
  }

  async open(ctx: OpenContext): Promise<void> {
    await this.#connect(ctx.clock ?? this.#clock, ctx.signal);
  }

  send(command: Uint8Array, options: SendOptions): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new TpmStateError("swtpm transport is closed"));
    const n = command.length;
    if (n < 10) return Promise.reject(new TpmArgumentError(`command of ${n} bytes is shorter than a TPM header (10)`));
    const size = ((command[2]! << 24) | (command[3]! << 16) | (command[4]! << 8) | command[5]!) >>> 0;
    if (size !== n) return Promise.reject(new TpmArgumentError(`command header size field ${size} does not match its length ${n}`));
    if (n > this.maxCommandSize) return Promise.reject(new TpmArgumentError(`command of ${n} bytes exceeds maxCommandSize ${this.maxCommandSize}`));
    const loc = options.locality ?? 0;
    if (!this.localities.includes(loc)) {
      return Promise.reject(new TpmArgumentError(`locality ${loc} is not available on this swtpm transport (${this.control ? "0–4" : "0 only without a control channel"})`));
    }
    const { signal } = options;
    if (signal.aborted) return Promise.reject(abortErrorFrom(signal));
    const sock = this.#sock;
    // Fast path: connected, locality already in force.
    if (sock && (this.#locality === loc || (!this.control && loc === 0))) return this.#transmit(sock, command, signal);
    return this.#slowSend(command, loc, options);
  }

  async #slowSend(command: Uint8Array, loc: number, options: SendOptions): Promise<Uint8Array> {
    const sock = this.#sock ?? (await this.#connect(options.clock ?? this.#clock, options.signal));
    if (this.control && this.#locality !== loc) {
      try {
        await this.control.setLocality(loc, { signal: options.signal, timeoutMs: Math.max(1, options.timeoutMs) });
      } catch (e) {
        if (e instanceof TpmTransportError && (e.errno === "ECONNREFUSED" || e.errno === "ENOENT")) {
          throw new TpmTransportError(`swtpm control channel ${describeEndpoint(this.control.endpoint)} is not reachable, so locality ${loc} cannot be set`, {
            errno: e.errno,
            cause: e,
            details: "Start swtpm with --ctrl (tcti-swtpm expects it at port + 1 or <path>.ctrl), pass its address as { control }, or pass { control: false } to use locality 0 only.",
          });
        }
        throw e;
      }
      this.#locality = loc;
    }
    if (options.signal.aborted) throw abortErrorFrom(options.signal);
    if (this.#sock !== sock) throw new TpmTransportError("swtpm data connection dropped before the command was sent", { errno: "ECONNRESET" });
    return this.#transmit(sock, command, options.signal);
  }

  #transmit(sock: net.Socket, command: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    if (this.#pending) return Promise.reject(new TpmStateError("swtpm transport: send called while a command is in flight"));
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#pending = { resolve, reject, signal };
      this.#abortedInFlight = false;
      this.#hdrFill = 0;
      this.#resp = undefined;
      this.#respFill = 0;
      signal.addEventListener("abort", this.#onAbort);
      sock.write(command);
    });
  }

  cancel(): Promise<void> | void {
    const c = this.control;
    if (!c || (!this.#pending && !this.#abortedInFlight)) return;
    this.#abortedInFlight = false;
    return c.cancelTpmCmd({ timeoutMs: 1000 }).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#drop(new TpmStateError("swtpm transport closed"));
    if (this.#ownsControl) await this.control?.close();
  }

  /** Called by Node with bytes read into #readBuf. Returns nothing (keeps reading). */
  #onRead(nread: number, buf: Uint8Array): void {
    let off = 0;
    while (off < nread) {
      const p = this.#pending;
      if (!p) {
        this.#drop(new TpmFormatError(`swtpm sent ${nread - off} bytes nobody asked for; data connection dropped`));
        return;
      }
      let resp = this.#resp;
      if (resp === undefined) {
        let size: number;
        if (this.#hdrFill === 0 && nread - off >= 10) {
          size = ((buf[off + 2]! << 24) | (buf[off + 3]! << 16) | (buf[off + 4]! << 8) | buf[off + 5]!) >>> 0;
        } else {
          const take = Math.min(10 - this.#hdrFill, nread - off);
          this.#hdr.set(buf.subarray(off, off + take), this.#hdrFill);
          this.#hdrFill += take;
          off += take;
          if (this.#hdrFill < 10) return;
          const h = this.#hdr;
          size = ((h[2]! << 24) | (h[3]! << 16) | (h[4]! << 8) | h[5]!) >>> 0;
        }
        if (size < 10 || size > this.#maxResponse) {
          this.#drop(new TpmFormatError(`swtpm response header size field ${size} is outside 10–${this.#maxResponse}; data connection dropped`));
          return;
        }
        if (this.#hdrFill === 0 && nread - off >= size) {
          // Common case: the whole response in this read. One copy, no intermediate views.
          const whole = buf.slice(off, off + size);
          off += size;
          this.#pending = undefined;
          p.signal.removeEventListener("abort", this.#onAbort);
          p.resolve(whole);
          if (off < nread) {
            this.#drop(new TpmFormatError(`swtpm sent ${nread - off} bytes after a complete response; data connection dropped`));
          }
          return;
        }
        resp = this.#resp = new Uint8Array(size);
        if (this.#hdrFill === 10) {
          resp.set(this.#hdr);
          this.#respFill = 10;
          this.#hdrFill = 0;
        }
      }
      const take = Math.min(resp.length - this.#respFill, nread - off);
      resp.set(buf.subarray(off, off + take), this.#respFill);
      this.#respFill += take;
      off += take;
      if (this.#respFill === resp.length) {
        this.#pending = undefined;
        this.#resp = undefined;
        p.signal.removeEventListener("abort", this.#onAbort);
        if (off < nread) {
          // Trailing bytes after a whole response: out of step. Deliver this response, drop the link.
          p.resolve(resp);
          this.#drop(new TpmFormatError(`swtpm sent ${nread - off} bytes after a complete response; data connection dropped`));
          return;
        }
        p.resolve(resp);
        return;
      }
    }
  }

  #connect(clock: Clock, signal: AbortSignal | undefined): Promise<net.Socket> {
    if (this.#sock) return Promise.resolve(this.#sock);
    if (this.#closed) return Promise.reject(new TpmStateError("swtpm transport is closed"));
    if (!this.#connecting) {
      const p = connectSocket(this.endpoint, {
        clock,
        timeoutMs: this.#connectTimeoutMs,
        signal,
        what: "swtpm data channel",
        socketOptions: {
          onread: {
            buffer: this.#readBuf,
            // Node reads into #readBuf; read from our own plain Uint8Array so slice() always copies.
            callback: (nread: number) => {
              if (this.#sock === sock) this.#onRead(nread, this.#readBuf);
              return true;
            },
          },
        } as Partial<net.NetConnectOpts>,
      });
      let sock: net.Socket | undefined;
      this.#connecting = p.then(
        (s) => {
          this.#connecting = undefined;
          if (this.#closed) {
            s.destroy();
            throw new TpmStateError("swtpm transport is closed");
          }
          sock = s;
          this.#sock = s;
          this.#connections++;
          this.#locality = undefined; // swtpm may have been restarted: set the locality again
          s.on("error", (e: NodeJS.ErrnoException) => {
            if (this.#sock === s) this.#drop(new TpmTransportError(`swtpm data channel ${describeEndpoint(this.endpoint)}: ${e.code ?? e.message}`, { errno: e.code ?? "EIO", cause: e }));
          });
          s.on("close", () => {
            if (this.#sock === s) {
              const got = this.#resp ? this.#respFill : this.#hdrFill;
              this.#drop(new TpmTransportError(`swtpm closed the data connection${this.#pending ? ` with a command in flight (${got} response bytes received)` : ""}`, { errno: "ECONNRESET" }));
            }
          });
          return s;
        },
        (e: unknown) => {
          this.#connecting = undefined;
          throw e;
        },
      );
    }
    return this.#connecting;
  }

  /** Drops the data connection and fails the command in flight with `err`. */
  #drop(err: unknown): void {
    const s = this.#sock;
    this.#sock = undefined;
    this.#locality = undefined;
    s?.destroy();
    const p = this.#pending;
    this.#pending = undefined;
    this.#resp = undefined;
    this.#hdrFill = 0;
    this.#respFill = 0;
    if (p) {
      p.signal.removeEventListener("abort", this.#onAbort);
      p.reject(err);
    }
  }
}

/**
 * Creates a transport to a swtpm (`swtpm socket --tpm2 --server ... --ctrl ...`) over TCP or a UNIX
 * socket. The data channel carries raw TPM 2.0 commands framed by their header (TPM 2.0 Part 1
 * §18; swtpm(8)); the control channel (swtpm_ioctls(3)) sets the locality and cancels.
 *
 * @param target - data channel: `{ host?, port }` (host defaults to 127.0.0.1) or `{ path }`.
 * @param options - control channel, bounds, sizes.
 * @returns a {@link SwtpmTransport} (kind "swtpm").
 * @throws TpmArgumentError on a malformed endpoint or option.
 * @example
 * ```ts
 * const tpm = await Tpm.open(swtpm({ host: "127.0.0.1", port: 2321 }));   // control at 2322
 * const tpm2 = await Tpm.open(swtpm({ path: "/run/swtpm/sock" }));        // control at sock.ctrl
 * ```
 */
export function swtpm(target: SwtpmEndpoint, options: SwtpmTransportOptions = {}): SwtpmTransport {
  return new SwtpmTransportImpl(target, options);
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0) throw new TpmArgumentError(`${what} must be a positive integer, got ${String(v)}`);
  return v;
}
