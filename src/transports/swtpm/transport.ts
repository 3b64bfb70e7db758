/**
 * The swtpm transport: TPM commands over swtpm's data channel (TCP or UNIX socket), with locality
 * and cancel through its control channel.
 *
 * - One persistent data connection (tpm2-tss src/tss2-tcti/tcti-swtpm.c opens one per command,
 *   which costs about 70 µs per command over TCP with swtpm 0.7.1, measured), TCP_NODELAY on.
 * - Each command goes out in one write: swtpm processes what one read() returns, so a split command
 *   is executed truncated (swtpm src/swtpm/mainloop.c; swtpm 0.7.1, measured).
 * - The response is framed by its header size field, read through the shared socket reader; a size
 *   below 10 or above `maxResponseSize` is a {@link TpmFormatError} and the connection is dropped
 *   before any body byte is read.
 * - A peer that drops mid-command fails that command with {@link TpmTransportError}; the next
 *   command reconnects. An aborted command drops the connection too (its late response would
 *   otherwise be read as the next command's), and so do bytes that arrive when no command is in
 *   flight.
 * - Locality: CMD_SET_LOCALITY on the control channel, sent only when the locality changes (and
 *   once after each data reconnect, since swtpm may have been restarted).
 *
 * Node-specific (node:net).
 *
 * @packageDocumentation
 */
import type * as net from "node:net";
import { systemClock, type Clock } from "../../core/clock.js";
import { TpmArgumentError, TpmFormatError, TpmStateError, TpmTransportError, TpmkitError, abortErrorFrom } from "../../errors/index.js";
import type { OpenContext, SendOptions, Transport, TransportPresence } from "../../core/transport.js";
import { concatBytes, readU32be } from "../../wire/bytes.js";
import { connectSocket } from "../../node/connect.js";
import { SocketReader } from "../../node/socket-reader.js";
import { deriveControlEndpoint, describeEndpoint, normalizeEndpoint, type SwtpmEndpoint } from "../../node/swtpm-socket.js";
import { SwtpmControl, type SwtpmControlOptions } from "./control.js";

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

const EMPTY = /* @__PURE__ */ new Uint8Array(0);

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
  readonly #label: string;
  #sock: net.Socket | undefined;
  #reader: SocketReader | undefined;
  #connecting: Promise<SocketReader> | undefined;
  #connections = 0;
  #closed = false;
  #locality: number | undefined;
  #inFlight = false;
  /** A command was aborted in flight and no command went out since (the chip aborts, then cancels). */
  #abortedInFlight = false;
  readonly #onAbort = () => {
    this.#abortedInFlight = true;
  };

  constructor(target: SwtpmEndpoint, options: SwtpmTransportOptions) {
    this.endpoint = normalizeEndpoint(target, "swtpm endpoint");
    this.#label = `swtpm data channel ${describeEndpoint(this.endpoint)}`;
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
    const size = readU32be(command, 2);
    if (size !== n) return Promise.reject(new TpmArgumentError(`command header size field ${size} does not match its length ${n}`));
    if (n > this.maxCommandSize) return Promise.reject(new TpmArgumentError(`command of ${n} bytes exceeds maxCommandSize ${this.maxCommandSize}`));
    const loc = options.locality ?? 0;
    if (!this.localities.includes(loc)) {
      return Promise.reject(new TpmArgumentError(`locality ${loc} is not available on this swtpm transport (${this.control ? "0–4" : "0 only without a control channel"})`));
    }
    const { signal } = options;
    if (signal.aborted) return Promise.reject(abortErrorFrom(signal));
    if (this.#inFlight) return Promise.reject(new TpmStateError("swtpm transport: send called while a command is in flight"));
    const reader = this.#live();
    // Fast path: connected, locality already in force.
    if (reader && (this.#locality === loc || (!this.control && loc === 0))) return this.#transmit(reader, command, signal);
    return this.#slowSend(command, loc, options);
  }

  async #slowSend(command: Uint8Array, loc: number, options: SendOptions): Promise<Uint8Array> {
    const reader = this.#live() ?? (await this.#connect(options.clock ?? this.#clock, options.signal));
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
    if (this.#reader !== reader || reader.closed) throw new TpmTransportError("swtpm data connection dropped before the command was sent", { errno: "ECONNRESET" });
    return this.#transmit(reader, command, options.signal);
  }

  /**
   * Writes the command in one write (swtpm processes what one read() returns, so a split command
   * runs truncated: swtpm src/swtpm/mainloop.c; swtpm 0.7.1, measured) and reads the response framed
   * by its header size field (TPM 2.0 Part 1 §18.10), checked before any body byte is read.
   */
  async #transmit(reader: SocketReader, command: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    if (this.#inFlight) throw new TpmStateError("swtpm transport: send called while a command is in flight");
    this.#inFlight = true;
    this.#abortedInFlight = false;
    signal.addEventListener("abort", this.#onAbort);
    try {
      reader.socket.write(command);
      const head = await reader.read(10, { signal, what: "response header" });
      const size = readU32be(head, 2);
      if (size < 10 || size > this.#maxResponse) {
        throw new TpmFormatError(`swtpm response header size field ${size} is outside 10–${this.#maxResponse}; data connection dropped`);
      }
      const body = size > 10 ? await reader.read(size - 10, { signal, what: "response" }) : EMPTY;
      const extra = reader.buffered;
      // Trailing bytes after a whole response: out of step. Deliver this response, drop the link.
      if (extra > 0) this.#drop(new TpmFormatError(`swtpm sent ${extra} bytes after a complete response; data connection dropped`), reader);
      return concatBytes(head, body);
    } catch (e) {
      // Whatever failed (a lying size, the peer leaving, an abort whose late response would be read
      // as the next command's), the stream is out of step: drop it, the next command reconnects.
      this.#drop(e instanceof TpmkitError ? e : new TpmTransportError("swtpm data channel failed", { errno: "EIO", cause: e }), reader);
      throw e;
    } finally {
      this.#inFlight = false;
      signal.removeEventListener("abort", this.#onAbort);
    }
  }

  cancel(): Promise<void> | void {
    const c = this.control;
    if (!c || (!this.#inFlight && !this.#abortedInFlight)) return;
    this.#abortedInFlight = false;
    return c.cancelTpmCmd({ timeoutMs: 1000 }).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#drop(new TpmStateError("swtpm transport closed"));
    if (this.#ownsControl) await this.control?.close();
  }

  /** The data connection if it is up and in step (no bytes nobody asked for), else undefined (after dropping it). */
  #live(): SocketReader | undefined {
    const r = this.#reader;
    if (!r) return undefined;
    if (!r.closed && r.buffered === 0) return r;
    this.#drop(new TpmFormatError(`swtpm sent ${r.buffered} bytes nobody asked for; data connection dropped`));
    return undefined;
  }

  #connect(clock: Clock, signal: AbortSignal | undefined): Promise<SocketReader> {
    const live = this.#live();
    if (live) return Promise.resolve(live);
    if (this.#closed) return Promise.reject(new TpmStateError("swtpm transport is closed"));
    if (!this.#connecting) {
      const p = connectSocket(this.endpoint, { clock, timeoutMs: this.#connectTimeoutMs, signal, label: "swtpm data channel" });
      this.#connecting = p.then(
        (s) => {
          this.#connecting = undefined;
          if (this.#closed) {
            s.destroy();
            throw new TpmStateError("swtpm transport is closed");
          }
          const reader = new SocketReader(s, this.#label);
          this.#sock = s;
          this.#reader = reader;
          this.#connections++;
          this.#locality = undefined; // swtpm may have been restarted: set the locality again
          s.on("close", () => {
            if (this.#sock === s) this.#drop(new TpmTransportError(`${this.#label}: connection closed by peer`, { errno: "ECONNRESET" }));
          });
          // Bytes while no command is in flight (a late or stray response) put the stream out of
          // step: drop the connection at once, so they can never be read as the next command's
          // response (the next command reconnects). Registered after the reader's own listener,
          // so the last chunk of a response still finds the command in flight.
          s.on("data", () => {
            if (this.#reader === reader && !this.#inFlight) {
              this.#drop(new TpmFormatError(`swtpm sent ${reader.buffered} bytes while no command was in flight; data connection dropped`), reader);
            }
          });
          return reader;
        },
        (e: unknown) => {
          this.#connecting = undefined;
          throw e;
        },
      );
    }
    return this.#connecting;
  }

  /** Drops the data connection (only if it is still `which`, when given); a read in flight fails with `err`. */
  #drop(err: TpmkitError, which?: SocketReader): void {
    const r = this.#reader;
    if (which && r !== which) {
      which.destroy(err);
      return;
    }
    this.#sock = undefined;
    this.#reader = undefined;
    this.#locality = undefined;
    r?.destroy(err);
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
