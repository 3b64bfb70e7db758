/**
 * A swtpm-protocol socket server: exposes any {@link CommandSink} (a `Chip`, a wrapped
 * `TpmBackend`) the way `swtpm socket --tpm2` does, so tpm2-tools (`-T swtpm:...`), QEMU-style
 * clients and other TSS stacks can drive a tpmkit stack.
 *
 * - Data channel: raw TPM commands framed by their header size field; also swtpm's mssim-compatible
 *   TPM_SEND_COMMAND prefix (u32 8, u8 locality, u32 size), answered as u32 size + response +
 *   u32 0 (swtpm feature "tpm-send-command-header", `swtpm socket --print-capabilities`; swtpm
 *   0.7.1, measured). One data connection at a time; later ones wait, as with swtpm.
 * - Control channel (swtpm_ioctls(3)): GET_CAPABILITY, INIT, SHUTDOWN, GET_TPMESTABLISHED,
 *   SET_LOCALITY, HASH_START/DATA/END, CANCEL_TPM_CMD, STORE_VOLATILE (hook), RESET_TPMESTABLISHED,
 *   GET/SET_STATEBLOB (hooks), STOP, GET_CONFIG, SET_DATAFD (refused as swtpm does with `--server`),
 *   SET_BUFFERSIZE, GET_INFO. Result codes and reply lengths follow swtpm 0.7.1 as measured.
 * - Robustness: a size field below 10 or above the buffer size gets a TPM_RC_COMMAND_SIZE
 *   response and the connection is closed before any body is read; a command
 *   (data) or control message that does not complete within its bound closes the connection; a
 *   client that disconnects mid-command aborts that command; nothing a client sends can crash the
 *   server or hang it. A refused connection is destroyed (so the next client gets its turn); a
 *   client that leaves its output unread is not read further (`maxUnsentBytes`); with
 *   `idleTimeoutMs`, a silent connection gives up the TPM when another client waits. A prefixed
 *   frame's locality applies to that frame only; above 4 it is answered TPM_RC_LOCALITY (as the
 *   TPM behind swtpm 0.7.1 answers, measured). CMD_SHUTDOWN lets the command in flight finish,
 *   runs the `shutdown` hook, then resolves `closed` with reason "shutdown".
 *
 * Node-specific (node:net).
 *
 * @packageDocumentation
 */
import type * as net from "node:net";
import { systemClock, type Clock } from "../core/clock.js";
import { TpmArgumentError, TpmTimeoutError, TpmTransportError } from "../errors/index.js";
import { TPM_RC, TPM_ST } from "../wire/constants.js";
import { concatBytes, errorResponse, readU32be as be32, readU32be, u32be, writeU32be as put32 } from "../wire/bytes.js";
import { MSSIM_CMD } from "../node/mssim-protocol.js";
import { SocketReader } from "../node/socket-reader.js";
import {
  PTM_CAP,
  PTM_INIT_FLAG_DELETE_VOLATILE,
  PTM_STATE_FLAG_DECRYPTED,
  PTM_STATE_FLAG_ENCRYPTED,
  SWTPM_CMD,
  SWTPM_HASH_DATA_MAX,
  SWTPM_RESULT,
  SWTPM_STATEBLOB_MAX,
} from "../node/swtpm-protocol.js";
import type { ResourceManager, RmSpace } from "./rm.js";
import { listenSerial, portPairCandidate, type BoundAddress, type CommandSink, type ListenTarget, type SerialListener } from "./common.js";

export type { BoundAddress, CommandSink, ListenTarget } from "./common.js";

/**
 * Hooks the server calls for control commands that change the TPM's power state or state storage.
 * All optional; a missing hook means "nothing to do" for INIT/STOP/SHUTDOWN, and "not supported"
 * (capability bit off, TPM_BAD_ORDINAL) for STORE_VOLATILE and the state blobs. A hook that throws
 * makes the command answer TPM_FAIL.
 */
export interface SwtpmPowerHooks {
  /** CMD_INIT: (re)start the TPM; `deleteVolatile` = PTM_INIT_FLAG_DELETE_VOLATILE. */
  init?(deleteVolatile: boolean): void | Promise<void>;
  /** CMD_SHUTDOWN: the TPM is going away (the server closes after replying). */
  shutdown?(): void | Promise<void>;
  /** CMD_STOP: stop the TPM (the server stays up). */
  stop?(): void | Promise<void>;
  /** CMD_CANCEL_TPM_CMD, besides aborting the command's signal. */
  cancel?(): void;
  /** CMD_STORE_VOLATILE. */
  storeVolatile?(): void | Promise<void>;
  /** CMD_GET_STATEBLOB: the blob of `type` (1 permanent, 2 volatile, 3 savestate). */
  getStateBlob?(type: number, decrypted: boolean): Uint8Array | Promise<Uint8Array>;
  /** CMD_SET_STATEBLOB: store the blob of `type` (only called while stopped). */
  setStateBlob?(type: number, blob: Uint8Array, encrypted: boolean): void | Promise<void>;
  /** CMD_HASH_START: a DRTM hash sequence begins (_TPM_Hash_Start, TPM 2.0 Part 3 §32). Sets the established flag. */
  hashStart?(): void | Promise<void>;
  /** CMD_HASH_DATA: bytes of the DRTM hash sequence (_TPM_Hash_Data), at most 4096 per call. */
  hashData?(data: Uint8Array): void | Promise<void>;
  /** CMD_HASH_END: the DRTM hash sequence ends (_TPM_Hash_End, extends PCR 17). */
  hashEnd?(): void | Promise<void>;
}

/** Options of {@link serveSwtpm}. */
export interface SwtpmServeOptions {
  /**
   * Control-channel address, or `false` for none. Default: data port + 1 (TCP; with port 0 a pair
   * of free adjacent ports is picked so tcti-swtpm's port + 1 rule holds) or path + ".ctrl".
   */
  control?: ListenTarget | false;
  /** Power and state hooks. */
  power?: SwtpmPowerHooks;
  /** Refuse TPM commands until CMD_INIT (swtpm without `--flags not-need-init`). Default false. */
  needInit?: boolean;
  /** Refuse locality 4 in SET_LOCALITY (`--locality reject-locality-4`). Default false. */
  rejectLocality4?: boolean;
  /** TPM I/O buffer size (largest command and response). Default 4096. */
  bufferSize?: number;
  /** Smallest buffer size SET_BUFFERSIZE allows. Default 2808 (swtpm 0.7.1 + libtpms, measured). */
  minBufferSize?: number;
  /** Largest buffer size SET_BUFFERSIZE allows. Default 4096 (swtpm 0.7.1, measured). */
  maxBufferSize?: number;
  /**
   * A data command must arrive whole within this many ms of its first byte (the partial-frame
   * bound, against slowloris clients). Default 5000; always finite.
   */
  commandReadTimeoutMs?: number;
  /**
   * How long one data connection may hold the TPM while other clients wait: a connection that
   * sends no byte of a new command (or does not take its output) for this many ms is dropped once
   * another connection is queued. Default `Infinity` (off), as with swtpm, which serves one client
   * for as long as it stays connected.
   */
  idleTimeoutMs?: number;
  /**
   * Backpressure: while a connection's unsent output exceeds this many bytes, the server stops
   * reading its commands until the output drains. Default 65536.
   */
  maxUnsentBytes?: number;
  /** A control message must arrive whole within this many ms (swtpm: 500). Default 500. */
  controlReadTimeoutMs?: number;
  /** Accept swtpm's mssim-compatible TPM_SEND_COMMAND prefix on the data channel. Default true. */
  sendCommandHeader?: boolean;
  /** JSON objects CMD_GET_INFO reports. */
  info?: { specification?: Record<string, unknown>; attributes?: Record<string, unknown> };
  /** Clock for the read bounds. Default: the system clock. */
  clock?: Clock;
  /**
   * Serve through this resource manager instead of the bare chip (`tpmkit serve --rm`). tcti-swtpm
   * (tpm2-tss src/tss2-tcti/tcti-swtpm.c) opens a data connection per command, and its
   * initialisation opens one and closes it without a byte; so a space here spans from one such
   * empty connection to the next (one client process, e.g. one tpm2-tools invocation), not one
   * connection. Clients that need isolation while running at the same time: use the mssim server,
   * where every connection gets its own space.
   */
  resourceManager?: ResourceManager;
}

/** The target of {@link serveSwtpm}: a command sink plus where to listen. */
export type SwtpmServeTarget = { chip: CommandSink; host?: string; port: number } | { chip: CommandSink; path: string };

/** Observable server state. */
export interface SwtpmServerState {
  /** TPM running (INIT done or not needed, no STOP since). */
  running: boolean;
  /**
   * Default locality for TPM commands (set by the control channel's SET_LOCALITY). A frame with
   * the TPM_SEND_COMMAND prefix runs at its own locality and does not change this.
   */
  locality: number;
  /** TPM-established flag. */
  established: boolean;
  /** Buffer size in use. */
  bufferSize: number;
  /** TPM commands executed. */
  commands: number;
}

/** Counters of what the server refused or bounded (for tests and monitoring). */
export interface SwtpmServerStats {
  /** Largest unsent output one data connection had (bytes; bounded by `maxUnsentBytes` + one response). */
  peakUnsentBytes: number;
  /** Data connections dropped for a size field out of range. */
  refusedFrames: number;
  /** Data connections dropped because a frame did not complete within `commandReadTimeoutMs`. */
  frameTimeouts: number;
  /** Data connections dropped by `idleTimeoutMs` while another client waited. */
  idleDrops: number;
  /** Frames refused for a locality above 4 (answered TPM_RC_LOCALITY). */
  badLocalities: number;
}

/** Why a swtpm server closed: {@link SwtpmServer.close} ("close") or a client's CMD_SHUTDOWN ("shutdown"). */
export interface SwtpmClosed {
  reason: "close" | "shutdown";
  /** For "shutdown": the result code answered (0, or TPM_FAIL when the shutdown hook threw). */
  result?: number;
}

/** A running swtpm-protocol server. */
export interface SwtpmServer {
  /** Data-channel address (the real port when 0 was asked for). */
  readonly address: BoundAddress;
  /** Control-channel address, if any. */
  readonly controlAddress: BoundAddress | undefined;
  /** Current state. */
  readonly state: Readonly<SwtpmServerState>;
  /** Counters of refused frames, dropped connections and buffered output. */
  readonly stats: Readonly<SwtpmServerStats>;
  /**
   * Resolves when the server has closed, with why: {@link SwtpmServer.close} or a client's
   * CMD_SHUTDOWN (after the command in flight finished and the `shutdown` hook ran).
   */
  readonly closed: Promise<SwtpmClosed>;
  /** Stops listening, ends all connections, aborts a command in flight. Idempotent. */
  close(): Promise<void>;
}

const FIXED_BODY: Partial<Record<number, number>> = {
  [SWTPM_CMD.GET_CAPABILITY]: 0,
  [SWTPM_CMD.INIT]: 4,
  [SWTPM_CMD.SHUTDOWN]: 0,
  [SWTPM_CMD.GET_TPMESTABLISHED]: 0,
  [SWTPM_CMD.SET_LOCALITY]: 1,
  [SWTPM_CMD.HASH_START]: 0,
  [SWTPM_CMD.HASH_END]: 0,
  [SWTPM_CMD.CANCEL_TPM_CMD]: 0,
  [SWTPM_CMD.STORE_VOLATILE]: 0,
  [SWTPM_CMD.RESET_TPMESTABLISHED]: 1,
  [SWTPM_CMD.GET_STATEBLOB]: 12,
  [SWTPM_CMD.STOP]: 0,
  [SWTPM_CMD.GET_CONFIG]: 0,
  [SWTPM_CMD.SET_DATAFD]: 0,
  [SWTPM_CMD.SET_BUFFERSIZE]: 4,
  [SWTPM_CMD.GET_INFO]: 16,
};
/** Commands swtpm answers TPM_BAD_PARAMETER when the body is not exactly this long. */
const STRICT_BODY = new Set<number>([SWTPM_CMD.INIT, SWTPM_CMD.STOP, SWTPM_CMD.SHUTDOWN, SWTPM_CMD.SET_BUFFERSIZE, SWTPM_CMD.GET_STATEBLOB, SWTPM_CMD.GET_INFO]);
const NEEDS_RUNNING = new Set<number>([
  SWTPM_CMD.GET_TPMESTABLISHED,
  SWTPM_CMD.RESET_TPMESTABLISHED,
  SWTPM_CMD.HASH_START,
  SWTPM_CMD.HASH_DATA,
  SWTPM_CMD.HASH_END,
  SWTPM_CMD.CANCEL_TPM_CMD,
  SWTPM_CMD.STORE_VOLATILE,
]);
const INFO_CHUNK = 3072;

/**
 * A TPM 2.0 error response: tag TPM_ST_NO_SESSIONS, size 10, `rc` (TPM 2.0 Part 1 §18, the
 * response header). The wire format's `errorResponse`, kept under this name for existing callers.
 */
export const tpmErrorResponse: (rc: number) => Uint8Array = errorResponse;

const EMPTY = /* @__PURE__ */ new Uint8Array(0);

/** `address:port` of a client, for error messages. */
function peerName(sock: net.Socket): string {
  return `${sock.remoteAddress ?? "local"}${sock.remotePort === undefined ? "" : `:${sock.remotePort}`}`;
}

class SwtpmServerImpl implements SwtpmServer {
  address!: BoundAddress;
  controlAddress: BoundAddress | undefined;
  readonly state: SwtpmServerState;
  readonly stats: SwtpmServerStats = { peakUnsentBytes: 0, refusedFrames: 0, frameTimeouts: 0, idleDrops: 0, badLocalities: 0 };
  readonly closed: Promise<SwtpmClosed>;
  #resolveClosed!: (c: SwtpmClosed) => void;
  #chip: CommandSink;
  #opt: Required<Pick<SwtpmServeOptions, "commandReadTimeoutMs" | "controlReadTimeoutMs" | "sendCommandHeader" | "rejectLocality4">> & {
    min: number;
    max: number;
    idle: number;
    maxUnsent: number;
  };
  #power: SwtpmPowerHooks;
  #info: { specification: Record<string, unknown>; attributes: Record<string, unknown> };
  #clock: Clock;
  #data: SerialListener | undefined;
  #ctrl: SerialListener | undefined;
  #inflight: AbortController | undefined;
  /** Settles when the TPM command in flight (if any) has finished. */
  #inflightDone: Promise<void> = Promise.resolve();
  #isClosed = false;
  #rm: ResourceManager | undefined;
  /** The resource-manager space of the current client (see `resourceManager`). */
  #space: RmSpace | undefined;

  constructor(chip: CommandSink, options: SwtpmServeOptions) {
    if (!chip || typeof chip.transmit !== "function") throw new TpmArgumentError("serveSwtpm: chip must have a transmit(command, options) method");
    this.#chip = chip;
    this.#rm = options.resourceManager;
    this.#clock = options.clock ?? systemClock;
    this.#power = options.power ?? {};
    const min = options.minBufferSize ?? 2808;
    const max = options.maxBufferSize ?? 4096;
    const size = options.bufferSize ?? 4096;
    for (const [k, v] of [["minBufferSize", min], ["maxBufferSize", max], ["bufferSize", size]] as const) {
      if (!Number.isInteger(v) || v < 10 || v > 0x100000) throw new TpmArgumentError(`${k} must be an integer 10–1048576, got ${String(v)}`);
    }
    if (min > max || size < min || size > max) throw new TpmArgumentError(`buffer sizes must satisfy min ≤ size ≤ max (${min}, ${size}, ${max})`);
    const idle = options.idleTimeoutMs ?? Infinity;
    if (!(idle > 0)) throw new TpmArgumentError(`idleTimeoutMs must be a positive number or Infinity, got ${String(idle)}`);
    const commandReadTimeoutMs = options.commandReadTimeoutMs ?? 5000;
    if (!(commandReadTimeoutMs > 0 && Number.isFinite(commandReadTimeoutMs))) {
      throw new TpmArgumentError(`commandReadTimeoutMs must be a positive finite number, got ${String(commandReadTimeoutMs)}`);
    }
    const maxUnsent = options.maxUnsentBytes ?? 64 * 1024;
    if (!Number.isInteger(maxUnsent) || maxUnsent < 0) throw new TpmArgumentError(`maxUnsentBytes must be a non-negative integer, got ${String(maxUnsent)}`);
    this.#opt = {
      idle,
      maxUnsent,
      commandReadTimeoutMs,
      controlReadTimeoutMs: options.controlReadTimeoutMs ?? 500,
      sendCommandHeader: options.sendCommandHeader ?? true,
      rejectLocality4: options.rejectLocality4 ?? false,
      min,
      max,
    };
    this.#info = {
      specification: options.info?.specification ?? { family: "2.0", level: 0, revision: 164 },
      attributes: options.info?.attributes ?? { manufacturer: "id:00000000", version: "id:00000000", model: "tpmkit" },
    };
    this.state = { running: !options.needInit, locality: 0, established: false, bufferSize: size, commands: 0 };
    this.closed = new Promise<SwtpmClosed>((r) => (this.#resolveClosed = r));
  }

  async start(target: ListenTarget, control: ListenTarget | false | undefined): Promise<void> {
    if (control !== undefined || "path" in target || target.port !== 0) {
      this.#data = await listenSerial(target, (s) => this.#serveData(s));
      this.address = this.#data.address;
      if (control === false) return;
      const c: ListenTarget =
        control ?? ("path" in target ? { path: `${target.path}.ctrl` } : { host: target.host ?? "127.0.0.1", port: (this.address as { port: number }).port + 1 });
      try {
        this.#ctrl = await listenSerial(c, (s) => this.#serveControl(s));
      } catch (e) {
        await this.#data.close();
        throw e;
      }
      this.controlAddress = this.#ctrl.address;
      return;
    }
    // Port 0 with the derived control port: find two adjacent free ports.
    let last: unknown;
    for (let attempt = 0; attempt < 50; attempt++) {
      let d: Awaited<ReturnType<typeof listenSerial>>;
      try {
        d = await listenSerial({ ...target, port: portPairCandidate(attempt) }, (s) => this.#serveData(s));
      } catch (e) {
        last = e;
        continue;
      }
      const port = (d.address as { port: number }).port;
      if (port === 0xffff) {
        await d.close();
        continue;
      }
      try {
        this.#ctrl = await listenSerial({ host: target.host ?? "127.0.0.1", port: port + 1 }, (s) => this.#serveControl(s));
        this.#data = d;
        this.address = d.address;
        this.controlAddress = this.#ctrl.address;
        return;
      } catch (e) {
        last = e;
        await d.close();
      }
    }
    throw new TpmTransportError("serveSwtpm: could not find two adjacent free ports for data and control", { errno: "EADDRINUSE", cause: last });
  }

  async close(): Promise<void> {
    await this.#close({ reason: "close" });
  }

  async #close(why: SwtpmClosed): Promise<void> {
    if (this.#isClosed) {
      await this.closed;
      return;
    }
    this.#isClosed = true;
    this.#inflight?.abort(new TpmTransportError("swtpm server closed", { errno: "ESHUTDOWN" }));
    await Promise.all([this.#data?.close(), this.#ctrl?.close()]);
    await this.#space?.close();
    this.#space = undefined;
    this.#resolveClosed(why);
  }

  /**
   * Waits for the next byte of a frame. With an idle bound, a connection that stays silent that
   * long is dropped if another client is waiting for the TPM (otherwise it keeps its turn).
   */
  async #awaitActivity(wait: (timeoutMs: number) => Promise<void>): Promise<void> {
    for (;;) {
      try {
        return await wait(this.#opt.idle);
      } catch (e) {
        if (!(e instanceof TpmTimeoutError)) throw e;
        if ((this.#data?.waiting ?? 0) > 0) {
          this.stats.idleDrops++;
          throw e;
        }
      }
    }
  }

  /** Backpressure: returns once `sock`'s unsent output is at most `maxUnsentBytes` (or rejects when it closes). */
  async #drain(sock: net.Socket): Promise<void> {
    const n = sock.writableLength;
    if (n > this.stats.peakUnsentBytes) this.stats.peakUnsentBytes = n;
    if (n <= this.#opt.maxUnsent || sock.destroyed) return;
    await this.#awaitActivity(
      (timeoutMs) =>
        new Promise<void>((resolve, reject) => {
          const timer = Number.isFinite(timeoutMs)
            ? this.#clock.setTimer(timeoutMs, () => {
                done();
                reject(new TpmTimeoutError(`swtpm server data client ${peerName(sock)}: output not taken`, timeoutMs));
              })
            : undefined;
          const onDrain = () => {
            done();
            resolve();
          };
          const onClose = () => {
            done();
            reject(new TpmTransportError("client disconnected", { errno: "ECONNRESET" }));
          };
          const done = () => {
            timer?.clear();
            sock.off("drain", onDrain);
            sock.off("close", onClose);
          };
          sock.on("drain", onDrain);
          sock.on("close", onClose);
          if (sock.destroyed || sock.writableLength <= this.#opt.maxUnsent) onDrain();
        }),
    );
  }

  // ---------------------------------------------------------------- data channel

  #serveData(sock: net.Socket): void {
    // Buffer at most a few whole frames before pausing the socket (backpressure against a flooding client).
    const reader = new SocketReader(sock, `swtpm server data client ${peerName(sock)}`, 4 * (this.#opt.max + 9));
    let frames = 0;
    sock.on("close", () => {
      this.#inflight?.abort(new TpmTransportError("client disconnected", { errno: "ECONNRESET" }));
      // A connection closed without a byte (tcti-swtpm's probe on initialisation) starts a new client.
      if (this.#rm && frames === 0 && reader.buffered === 0) {
        const s = this.#space;
        this.#space = undefined;
        void s?.close();
      }
    });
    const send = (b: Uint8Array) => {
      if (sock.writable) sock.write(b);
    };
    void (async () => {
      try {
        while (!this.#isClosed) {
          // Idle: no bound unless idleTimeoutMs is set (and then only while another client waits).
          await this.#awaitActivity((timeoutMs) => reader.wait(1, { clock: this.#clock, timeoutMs, what: "next command" }));
          // A command must arrive whole within commandReadTimeoutMs of its first byte.
          const deadline = this.#clock.now() + this.#opt.commandReadTimeoutMs;
          const read = (n: number, what: string) =>
            reader.read(n, { clock: this.#clock, timeoutMs: Math.max(0, deadline - this.#clock.now()), what }).catch((e: unknown) => {
              if (e instanceof TpmTimeoutError) this.stats.frameTimeouts++;
              throw e;
            });
          frames++;
          const f = await this.#frame(read);
          if (f.kind === "bad") {
            // Refused before any body byte is read; the framing is lost, so the connection is
            // destroyed (after the error response is handed to the kernel): 'close' fires whatever
            // the peer does, and the next client gets its turn.
            this.stats.refusedFrames++;
            sock.end(f.mssim ? mssimWrap(tpmErrorResponse(f.rc)) : tpmErrorResponse(f.rc));
            reader.destroy(new TpmTransportError("swtpm server: command size out of range", { errno: "EMSGSIZE" }));
            return;
          }
          // A prefixed frame's locality applies to that frame only; the control channel's
          // SET_LOCALITY sets the default for the others. Above 4 is refused before the TPM.
          let resp: Uint8Array;
          if (f.locality !== undefined && f.locality > 4) {
            this.stats.badLocalities++;
            resp = tpmErrorResponse(TPM_RC.LOCALITY);
          } else {
            resp = await this.#execute(f.command, f.locality ?? this.state.locality);
          }
          send(f.mssim ? mssimWrap(resp) : resp);
          // Backpressure: read no further command while the client leaves its output unread.
          await this.#drain(sock);
        }
      } catch {
        // A client that left, stalled past its bound or broke the framing: end its connection only.
        sock.destroy();
      }
    })();
  }

  /**
   * Reads one data-channel frame: a raw TPM command framed by its header size field, or swtpm's
   * mssim-compatible TPM_SEND_COMMAND prefix (u32 8, u8 locality, u32 size) when the first bytes
   * are not a TPM 2 tag (swtpm src/swtpm/mainloop.c and swtpm_io.c; swtpm 0.7.1, measured). A size outside
   * 10–bufferSize is refused before the body is read.
   */
  async #frame(
    read: (n: number, what: string) => Promise<Uint8Array>,
  ): Promise<{ kind: "bad"; rc: number; mssim: boolean } | { kind: "cmd"; command: Uint8Array; mssim: boolean; locality?: number }> {
    const max = this.state.bufferSize;
    const first = await read(4, "command header");
    const tag = (first[0]! << 8) | first[1]!;
    if (this.#opt.sendCommandHeader && tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS && readU32be(first, 0) === MSSIM_CMD.TPM_SEND_COMMAND) {
      const prefix = await read(5, "TPM_SEND_COMMAND prefix");
      const locality = prefix[0]!;
      const size = readU32be(prefix, 1);
      if (size < 10 || size > max) return { kind: "bad", rc: TPM_RC.COMMAND_SIZE, mssim: true };
      return { kind: "cmd", command: await read(size, "command"), mssim: true, locality };
    }
    const header = concatBytes(first, await read(6, "command header"));
    const size = readU32be(header, 2);
    if (size < 10 || size > max) return { kind: "bad", rc: TPM_RC.COMMAND_SIZE, mssim: false };
    return { kind: "cmd", command: concatBytes(header, await read(size - 10, "command")), mssim: false };
  }

  async #execute(command: Uint8Array, locality: number): Promise<Uint8Array> {
    if (!this.state.running) return tpmErrorResponse(TPM_RC.FAILURE);
    const ac = new AbortController();
    this.#inflight = ac;
    let finished!: () => void;
    this.#inflightDone = new Promise<void>((r) => (finished = r));
    let cancelled = false;
    const onAbort = () => (cancelled = ac.signal.reason === CANCEL_REASON);
    ac.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const sink = this.#rm ? (this.#space ??= this.#rm.openSpace()) : this.#chip;
      const resp: unknown = await sink.transmit(command, { locality, signal: ac.signal });
      this.state.commands++;
      if (!(resp instanceof Uint8Array) || resp.length < 10 || resp.length > this.state.bufferSize) return tpmErrorResponse(TPM_RC.FAILURE);
      const size = ((resp[2]! << 24) | (resp[3]! << 16) | (resp[4]! << 8) | resp[5]!) >>> 0;
      if (size !== resp.length) return tpmErrorResponse(TPM_RC.FAILURE);
      return resp;
    } catch {
      return tpmErrorResponse(cancelled ? TPM_RC.CANCELED : TPM_RC.FAILURE);
    } finally {
      if (this.#inflight === ac) this.#inflight = undefined;
      finished();
    }
  }

  // ---------------------------------------------------------------- control channel

  #serveControl(sock: net.Socket): void {
    const reader = new SocketReader(sock, `swtpm server control client ${peerName(sock)}`);
    void (async () => {
      try {
        while (!this.#isClosed) {
          // swtpm drops a control message that is not whole within 500 ms of its first byte
          // (swtpm src/swtpm/ctrlchannel.c; swtpm 0.7.1, measured).
          await reader.wait(1);
          const deadline = this.#clock.now() + this.#opt.controlReadTimeoutMs;
          const read = (n: number, what: string) => reader.read(n, { clock: this.#clock, timeoutMs: Math.max(0, deadline - this.#clock.now()), what });
          const head = await read(4, "control command");
          const cmd = readU32be(head, 0);
          const need = await this.#controlLength(cmd, read);
          if (need === "bad") {
            // A length the protocol cannot carry: answer and drop the connection (framing is lost).
            sock.end(u32be(SWTPM_RESULT.BAD_PARAMETER));
            reader.destroy(new TpmTransportError("swtpm server: control message length out of range", { errno: "EMSGSIZE" }));
            return;
          }
          let body = await read(need.length, "control message");
          // Variable-length commands take exactly their length; fixed ones take the whole arrival,
          // as swtpm processes one read() per message.
          if (!need.exact && reader.buffered > 0) body = concatBytes(body, await read(reader.buffered, "control message"));
          const reply = await this.#control(cmd, concatBytes(need.prefix, body));
          if (sock.writable) sock.write(reply.bytes);
          if (reply.terminate) {
            sock.end();
            void this.#close({ reason: "shutdown", result: readU32be(reply.bytes, 0) });
            return;
          }
        }
      } catch {
        sock.destroy();
      }
    })();
  }

  /**
   * The body of the control command `cmd` still to read: `prefix` (length fields already read),
   * `length` more bytes, `exact` for variable-length commands; "bad" for a length the protocol cannot carry.
   */
  async #controlLength(
    cmd: number,
    read: (n: number, what: string) => Promise<Uint8Array>,
  ): Promise<{ prefix: Uint8Array; length: number; exact: boolean } | "bad"> {
    if (cmd === SWTPM_CMD.HASH_DATA) {
      const prefix = await read(4, "HASH_DATA length");
      const n = readU32be(prefix, 0);
      return n > SWTPM_HASH_DATA_MAX ? "bad" : { prefix, length: n, exact: true };
    }
    if (cmd === SWTPM_CMD.SET_STATEBLOB) {
      const prefix = await read(12, "SET_STATEBLOB header");
      const n = readU32be(prefix, 8);
      return n > SWTPM_STATEBLOB_MAX ? "bad" : { prefix, length: n, exact: true };
    }
    return { prefix: EMPTY, length: FIXED_BODY[cmd] ?? 0, exact: false };
  }

  async #control(cmd: number, body: Uint8Array): Promise<{ bytes: Uint8Array; terminate?: boolean }> {
    const res = (code: number) => ({ bytes: u32be(code) });
    const fixed = FIXED_BODY[cmd];
    if (fixed !== undefined && STRICT_BODY.has(cmd) && body.length !== fixed) {
      return cmd === SWTPM_CMD.GET_STATEBLOB ? { bytes: u32s(SWTPM_RESULT.BAD_PARAMETER, 0, 0, 0) } : res(SWTPM_RESULT.BAD_PARAMETER);
    }
    if (NEEDS_RUNNING.has(cmd) && !this.state.running) return res(SWTPM_RESULT.BAD_ORDINAL);
    const p = this.#power;
    const hook = async (fn: (() => unknown) | undefined): Promise<number> => {
      if (!fn) return SWTPM_RESULT.SUCCESS;
      try {
        await fn();
        return SWTPM_RESULT.SUCCESS;
      } catch {
        return SWTPM_RESULT.FAIL;
      }
    };
    switch (cmd) {
      case SWTPM_CMD.GET_CAPABILITY:
        return { bytes: u32s(0, this.#capabilities()) };
      case SWTPM_CMD.INIT: {
        const flags = be32(body, 0);
        this.#inflight?.abort(new TpmTransportError("TPM re-initialised", { errno: "ECANCELED" }));
        this.state.running = false;
        const r = await hook(p.init && (() => p.init!((flags & PTM_INIT_FLAG_DELETE_VOLATILE) !== 0)));
        if (r === 0) this.state.running = true;
        return res(r);
      }
      case SWTPM_CMD.SHUTDOWN: {
        // Orderly: no new TPM command starts, the one in flight finishes (its response is sent),
        // then the shutdown hook saves the state, then the server closes with reason "shutdown".
        this.state.running = false;
        await this.#inflightDone;
        const r = await hook(p.shutdown && (() => p.shutdown!()));
        return { bytes: u32be(r), terminate: true };
      }
      case SWTPM_CMD.STOP: {
        this.state.running = false;
        this.#inflight?.abort(new TpmTransportError("TPM stopped", { errno: "ECANCELED" }));
        return res(await hook(p.stop && (() => p.stop!())));
      }
      case SWTPM_CMD.GET_TPMESTABLISHED:
        return { bytes: Uint8Array.of(0, 0, 0, 0, this.state.established ? 1 : 0, 0, 0, 0) };
      case SWTPM_CMD.SET_LOCALITY: {
        const loc = body[0]!;
        if (loc > 4 || (loc === 4 && this.#opt.rejectLocality4)) return res(SWTPM_RESULT.BAD_LOCALITY);
        this.state.locality = loc;
        return res(0);
      }
      case SWTPM_CMD.RESET_TPMESTABLISHED: {
        const loc = body[0]!;
        // Measured on swtpm 0.7.1: refused below locality 3 and above 4.
        if (loc < 3 || loc > 4) return res(SWTPM_RESULT.BAD_LOCALITY);
        this.state.locality = loc;
        this.state.established = false;
        return res(0);
      }
      case SWTPM_CMD.HASH_START: {
        const r = await hook(p.hashStart && (() => p.hashStart!()));
        if (r === 0) this.state.established = true;
        return res(r);
      }
      case SWTPM_CMD.HASH_DATA:
        return res(await hook(p.hashData && (() => p.hashData!(body.slice(4)))));
      case SWTPM_CMD.HASH_END:
        return res(await hook(p.hashEnd && (() => p.hashEnd!())));
      case SWTPM_CMD.CANCEL_TPM_CMD:
        this.#inflight?.abort(CANCEL_REASON);
        try {
          // best effort, as swtpm answers success whether or not a command could be interrupted
          void Promise.resolve(this.#chip.cancel?.()).catch(() => undefined);
          p.cancel?.();
        } catch {
          /* best effort */
        }
        return res(0);
      case SWTPM_CMD.STORE_VOLATILE:
        if (!p.storeVolatile) return res(SWTPM_RESULT.BAD_ORDINAL);
        return res(await hook(() => p.storeVolatile!()));
      case SWTPM_CMD.GET_STATEBLOB: {
        if (!p.getStateBlob) return { bytes: u32s(SWTPM_RESULT.BAD_ORDINAL, 0, 0, 0) };
        const flags = be32(body, 0);
        const type = be32(body, 4);
        const offset = be32(body, 8);
        let blob: Uint8Array;
        try {
          blob = await p.getStateBlob(type, (flags & PTM_STATE_FLAG_DECRYPTED) !== 0);
          if (!(blob instanceof Uint8Array)) throw new TypeError("not bytes");
        } catch {
          return { bytes: u32s(SWTPM_RESULT.FAIL, 0, 0, 0) };
        }
        const part = offset >= blob.length ? new Uint8Array(0) : blob.subarray(offset);
        const out = new Uint8Array(16 + part.length);
        put32(out, 0, 0);
        put32(out, 4, 0);
        put32(out, 8, blob.length);
        put32(out, 12, part.length);
        out.set(part, 16);
        return { bytes: out };
      }
      case SWTPM_CMD.SET_STATEBLOB: {
        if (!p.setStateBlob) return res(SWTPM_RESULT.BAD_ORDINAL);
        if (this.state.running) return res(SWTPM_RESULT.BAD_ORDINAL);
        const flags = be32(body, 0);
        const type = be32(body, 4);
        const blob = body.slice(12);
        return res(await hook(() => p.setStateBlob!(type, blob, (flags & PTM_STATE_FLAG_ENCRYPTED) !== 0)));
      }
      case SWTPM_CMD.GET_CONFIG:
        return { bytes: u32s(0, 0) };
      case SWTPM_CMD.SET_DATAFD:
        // swtpm answers TPM_IOERROR when it already has a data channel (always, with --server).
        return res(SWTPM_RESULT.IOERROR);
      case SWTPM_CMD.SET_BUFFERSIZE: {
        const want = be32(body, 0);
        if (want !== 0) {
          if (this.state.running) return res(SWTPM_RESULT.BAD_ORDINAL);
          this.state.bufferSize = Math.min(this.#opt.max, Math.max(this.#opt.min, want));
        }
        return { bytes: u32s(0, this.state.bufferSize, this.#opt.min, this.#opt.max) };
      }
      case SWTPM_CMD.GET_INFO: {
        const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
        const flags = view.getBigUint64(0);
        const offset = be32(body, 8);
        const obj: Record<string, unknown> = {};
        if (flags & 1n) obj.TPMSpecification = this.#info.specification;
        if (flags & 2n) obj.TPMAttributes = this.#info.attributes;
        const text = new TextEncoder().encode(JSON.stringify(obj) + "\0");
        if (offset >= text.length) return res(SWTPM_RESULT.BAD_PARAMETER);
        const part = text.subarray(offset, offset + INFO_CHUNK);
        const out = new Uint8Array(12 + part.length);
        put32(out, 4, text.length);
        put32(out, 8, part.length);
        out.set(part, 12);
        return { bytes: out };
      }
      default:
        return res(SWTPM_RESULT.BAD_ORDINAL);
    }
  }

  #capabilities(): number {
    const p = this.#power;
    let c =
      PTM_CAP.INIT |
      PTM_CAP.SHUTDOWN |
      PTM_CAP.GET_TPMESTABLISHED |
      PTM_CAP.SET_LOCALITY |
      PTM_CAP.HASHING |
      PTM_CAP.CANCEL_TPM_CMD |
      PTM_CAP.RESET_TPMESTABLISHED |
      PTM_CAP.STOP |
      PTM_CAP.GET_CONFIG |
      PTM_CAP.SET_BUFFERSIZE |
      PTM_CAP.GET_INFO;
    if (p.storeVolatile) c |= PTM_CAP.STORE_VOLATILE;
    if (p.getStateBlob) c |= PTM_CAP.GET_STATEBLOB;
    if (p.setStateBlob) c |= PTM_CAP.SET_STATEBLOB;
    if (this.#opt.sendCommandHeader) c |= PTM_CAP.SEND_COMMAND_HEADER;
    return c >>> 0;
  }
}

const CANCEL_REASON = /* @__PURE__ */ new TpmTransportError("cancelled by CMD_CANCEL_TPM_CMD", { errno: "ECANCELED" });

function u32s(...v: number[]): Uint8Array {
  return concatBytes(...v.map(u32be));
}
/** swtpm's answer to a TPM_SEND_COMMAND-prefixed command: u32 size, the response, u32 0. */
function mssimWrap(resp: Uint8Array): Uint8Array {
  return concatBytes(u32be(resp.length), resp, u32be(0));
}

/**
 * Serves a command sink over the swtpm protocols (data + control channel), on TCP or a UNIX
 * socket, so tpm2-tools (`-T swtpm:host=...,port=...` / `-T swtpm:path=...`), QEMU-style clients and
 * other TSS stacks can use it. swtpm(8), swtpm_ioctls(3), swtpm include/swtpm/tpm_ioctl.h.
 *
 * @param target - `{ chip, host?, port }` (port 0 = pick free adjacent ports) or `{ chip, path }`.
 * @param options - control address, power hooks, buffer sizes, bounds.
 * @returns the running server with its bound addresses.
 * @throws TpmArgumentError on bad options; TpmTransportError when an address cannot be bound.
 * @example
 * ```ts
 * const backend = new SoftTpm();
 * const server = await serveSwtpm({ chip: { transmit: (c, o) => backend.execute(c, o?.locality ?? 0) }, port: 0 });
 * // tpm2_getrandom -T swtpm:host=127.0.0.1,port=${server.address.port} 8 --hex
 * await server.close();
 * ```
 */
export async function serveSwtpm(target: SwtpmServeTarget, options: SwtpmServeOptions = {}): Promise<SwtpmServer> {
  if (!target || typeof target !== "object") throw new TpmArgumentError("serveSwtpm: expected { chip, host?, port } or { chip, path }");
  const server = new SwtpmServerImpl(target.chip, options);
  const listen: ListenTarget = "path" in target ? { path: target.path } : { host: target.host ?? "127.0.0.1", port: target.port };
  await server.start(listen, options.control);
  return server;
}
