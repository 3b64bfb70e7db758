/**
 * An mssim-protocol socket server: exposes any command sink (a `Chip`, a bridge to a
 * `TpmBackend`) the way the Microsoft/IBM TPM 2.0 simulator does, so tpm2-tools
 * (`-T mssim:host=..,port=..`), tpm2-tss and other TSS stacks can drive an emulated stack.
 * Protocol: TCG TPM 2.0 reference implementation (microsoft/ms-tpm-20-ref),
 * TPMCmd/Simulator/src/TcpServer.c and TPMCmdp.c.
 *
 * Robustness: a peer cut at any byte offset, a size prefix that lies, a trickling peer, unknown
 * or out-of-order codes each end that client's connection (or get a TPM error response) and never
 * the server; oversized frames are refused before their body is read.
 *
 * @packageDocumentation
 */
import { setMaxListeners } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { systemClock, type Clock } from "../core/clock.js";
import { TpmArgumentError, TpmTransportError } from "../errors/index.js";
import type { MaybePromise } from "../core/transport.js";
import { TPM_RC } from "../wire/constants.js";
import { readHeader } from "../wire/buffer.js";
import { concatBytes, errorResponse, readU32be, u32be } from "../wire/bytes.js";
import { portPairCandidate, type CommandSink } from "./common.js";
import type { ResourceManager, RmSpace } from "./rm.js";
import { MSSIM_CMD, MSSIM_DEFAULT_MAX_SIZE, MSSIM_ENDPOINT, MSSIM_SERVER_VERSION } from "../node/mssim-protocol.js";
import { SocketReader } from "../node/socket-reader.js";

/**
 * Where commands go: the servers' one {@link CommandSink} (its `cancel` is called on
 * SIGNAL_CANCEL_ON). Kept under this name for existing callers.
 */
export type MssimCommandSink = CommandSink;

/**
 * What the platform signals do beyond the server's own power/NV state. All optional; a hook
 * that throws makes the server acknowledge that signal with 1 instead of 0.
 */
export interface MssimPlatformHooks {
  /** SIGNAL_POWER_ON while off: TPM_Init (the client must send TPM2_Startup next). */
  powerOn?(): MaybePromise<void>;
  /** SIGNAL_POWER_OFF while on. */
  powerOff?(): MaybePromise<void>;
  /** SIGNAL_RESET (power-on with reset semantics). Default: powerOff (when on) then powerOn. */
  reset?(): MaybePromise<void>;
  /** SIGNAL_RESTART. */
  restart?(): MaybePromise<void>;
  /** SIGNAL_NV_ON. */
  nvOn?(): MaybePromise<void>;
  /** SIGNAL_NV_OFF. */
  nvOff?(): MaybePromise<void>;
  /** SIGNAL_CANCEL_ON (after the sink's `cancel`). */
  cancelOn?(): MaybePromise<void>;
  /** SIGNAL_CANCEL_OFF. */
  cancelOff?(): MaybePromise<void>;
  /** SIGNAL_PHYS_PRES_ON / _OFF. */
  physicalPresence?(on: boolean): MaybePromise<void>;
  /** SIGNAL_HASH_START / SIGNAL_HASH_DATA / SIGNAL_HASH_END on the command port (DRTM). */
  hashStart?(): MaybePromise<void>;
  hashData?(data: Uint8Array): MaybePromise<void>;
  hashEnd?(): MaybePromise<void>;
  /** TEST_FAILURE_MODE. */
  failureMode?(): MaybePromise<void>;
  /** STOP (21) from a client. The server keeps running unless this hook closes it. */
  stop?(): MaybePromise<void>;
}

/** What to serve and where. */
export interface ServeMssimTarget {
  /** The command sink (a `Chip`, or a `TpmBackend` wrapped as shown on {@link CommandSink}). */
  chip: CommandSink;
  /** Address to bind (default `"127.0.0.1"`; the reference simulator binds every interface). */
  host?: string;
  /** Command port; 0 picks a free port (default 0). */
  port?: number;
  /**
   * Platform port. Default: command port + 1, as every mssim client assumes (with `port: 0` the
   * server looks for a free pair). 0 picks any free port.
   */
  platformPort?: number;
}

/** Server behaviour. */
export interface ServeMssimOptions {
  /** Platform signal hooks. */
  hooks?: MssimPlatformHooks;
  /** Start powered on (default false: the simulator starts off and clients send POWER_ON). */
  poweredOn?: boolean;
  /** Largest command accepted (default 4096); larger size prefixes close the connection unread. */
  maxCommandSize?: number;
  /** Bound on receiving the rest of a frame once its first byte came, ms (default 5000). */
  frameTimeoutMs?: number;
  /** Bound on one command's execution, ms; then it is aborted and answered TPM_RC_FAILURE (default 120000). */
  commandTimeoutMs?: number;
  /**
   * Backpressure: while a connection's unsent output exceeds this many bytes, the server reads no
   * further frame from it until the output drains (default 65536).
   */
  maxUnsentBytes?: number;
  /** Clock for those bounds (default the system clock). */
  clock?: Clock;
  /** Called with every client-side fault and sink failure (the server survives them). */
  onError?(error: unknown): void;
  /**
   * Serve through this resource manager (`tpmkit serve --rm`): every command connection gets its
   * own space (tcti-mssim keeps one connection per client), flushed when the connection ends, as
   * every open of /dev/tpmrm0 does.
   */
  resourceManager?: ResourceManager;
}

/** A running mssim server. */
export interface MssimServer {
  /** Bound address. */
  readonly host: string;
  /** Bound command port. */
  readonly port: number;
  /** Bound platform port. */
  readonly platformPort: number;
  /** Simulated power state. */
  readonly poweredOn: boolean;
  /** Simulated NV availability. */
  readonly nvOn: boolean;
  /** Open client connections (both ports). */
  readonly connections: number;
  /** Largest unsent output one connection had, in bytes (bounded by `maxUnsentBytes` + one response). */
  readonly peakUnsentBytes: number;
  /** Stops listening, closes every client and aborts running commands. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Closes the connection it is thrown in (a protocol violation by the client). */
class CloseConnection extends Error {}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const onError = (e: Error) => {
      server.off("listening", onListening);
      reject(e);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ host, port, exclusive: true });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/**
 * Serves `target.chip` over the mssim protocol: TPM_SEND_COMMAND (with locality), hash signals
 * and REMOTE_HANDSHAKE on the command port; power, NV, cancel, physical presence, reset,
 * GET_COMMAND_RESPONSE_SIZES on the platform port; SESSION_END and STOP on both. Like the
 * reference simulator, a command sent while powered off gets an empty response (size 0), and
 * signals other than power-on are ignored (still acknowledged) while off.
 *
 * Commands from all clients run one at a time, in arrival order. A command whose size prefix
 * disagrees with its header, or is shorter than a header, is answered TPM_RC_COMMAND_SIZE
 * without reaching the sink; a sink that throws is answered TPM_RC_FAILURE (and reported to
 * `onError`).
 *
 * @param target - the sink and the address/ports to bind
 * @param options - hooks, initial power state, limits, clock, error callback
 * @returns the running server, with the ports it bound
 * @throws TpmArgumentError when a port is out of range
 * @throws TpmTransportError when a port cannot be bound (errno `EADDRINUSE`, ...)
 *
 * @example
 * ```ts
 * const server = await serveMssim({ chip, port: 0 });
 * // tpm2_getrandom -T mssim:host=127.0.0.1,port=${server.port} 8 --hex
 * await server.close();
 * ```
 */
export async function serveMssim(target: ServeMssimTarget, options: ServeMssimOptions = {}): Promise<MssimServer> {
  const host = target.host ?? "127.0.0.1";
  const wantPort = target.port ?? 0;
  for (const [name, p] of [["port", wantPort], ["platformPort", target.platformPort ?? 0]] as const) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new TpmArgumentError(`serveMssim: ${name} ${p} is not a TCP port (0–65535)`);
  }
  const sink = target.chip;
  const hooks = options.hooks ?? {};
  const clock = options.clock ?? systemClock;
  const maxCommand = options.maxCommandSize ?? MSSIM_DEFAULT_MAX_SIZE;
  const frameTimeoutMs = options.frameTimeoutMs ?? 5000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 120_000;
  const maxUnsent = options.maxUnsentBytes ?? 64 * 1024;
  if (!Number.isInteger(maxUnsent) || maxUnsent < 0) throw new TpmArgumentError(`serveMssim: maxUnsentBytes must be a non-negative integer, got ${String(maxUnsent)}`);
  let peakUnsent = 0;
  const report = (e: unknown) => {
    try {
      options.onError?.(e);
    } catch {
      // a throwing error callback must not take the server down
    }
  };

  let poweredOn = options.poweredOn ?? false;
  let nvOn = false;
  let closed = false;
  const sizes = { largestCommandSize: 0, largestCommand: 0, largestResponseSize: 0, largestResponse: 0 };
  const sockets = new Set<Socket>();
  const shutdown = new AbortController();
  // Every connection waits on this one signal (one abort listener each, removed when its wait
  // ends), so the count grows with the clients, not with a leak: no MaxListenersExceededWarning.
  setMaxListeners(0, shutdown.signal);
  let execChain: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after every earlier command (across clients) finished. */
  function serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = execChain.then(fn, fn);
    execChain = run.catch(() => undefined);
    return run;
  }

  async function runHook(fn: (() => MaybePromise<void>) | undefined): Promise<number> {
    if (!fn) return 0;
    try {
      await fn();
      return 0;
    } catch (e) {
      report(e);
      return 1;
    }
  }

  async function execute(command: Uint8Array, locality: number, connSignal: AbortSignal, space?: RmSpace): Promise<Uint8Array> {
    if (!poweredOn) return new Uint8Array(0);
    let header;
    try {
      header = readHeader(command, true);
    } catch {
      return errorResponse(TPM_RC.COMMAND_SIZE);
    }
    if (command.length > sizes.largestCommandSize) {
      sizes.largestCommandSize = command.length;
      sizes.largestCommand = header.code;
    }
    if (locality > 4) return errorResponse(TPM_RC.LOCALITY);
    return serialized(async () => {
      const ac = new AbortController();
      const onAbort = () => ac.abort(connSignal.aborted ? connSignal.reason : shutdown.signal.reason);
      connSignal.addEventListener("abort", onAbort, { once: true });
      shutdown.signal.addEventListener("abort", onAbort, { once: true });
      const timer = Number.isFinite(commandTimeoutMs)
        ? clock.setTimer(commandTimeoutMs, () => ac.abort(new TpmTransportError(`mssim server: command timed out after ${commandTimeoutMs} ms`)))
        : undefined;
      try {
        if (ac.signal.aborted || connSignal.aborted) throw new TpmTransportError("mssim server: client went away");
        const response = await (space ?? sink).transmit(command, { locality, signal: ac.signal });
        readHeader(response, true);
        if (response.length > sizes.largestResponseSize) {
          sizes.largestResponseSize = response.length;
          sizes.largestResponse = readU32be(response, 6);
        }
        return response;
      } catch (e) {
        // A client that went away is not a fault worth reporting; anything else is.
        if (!connSignal.aborted) report(e);
        return errorResponse(TPM_RC.FAILURE);
      } finally {
        timer?.clear();
        connSignal.removeEventListener("abort", onAbort);
        shutdown.signal.removeEventListener("abort", onAbort);
      }
    });
  }

  async function serveConnection(socket: Socket, port: "command" | "platform"): Promise<void> {
    sockets.add(socket);
    const space = port === "command" ? options.resourceManager?.openSpace() : undefined;
    const gone = new AbortController();
    socket.on("close", () => gone.abort(new TpmTransportError("mssim server: client went away")));
    const reader = new SocketReader(socket, `mssim ${port} client ${socket.remoteAddress ?? ""}:${socket.remotePort ?? ""}`);
    const write = (b: Uint8Array) => {
      if (socket.writable) socket.write(b);
    };
    const ack = (v = 0) => write(u32be(v));
    /** Backpressure: returns once the unsent output is at most maxUnsent; rejects when the connection goes. */
    const drained = async () => {
      const n = socket.writableLength;
      if (n > peakUnsent) peakUnsent = n;
      if (n <= maxUnsent || socket.destroyed) return;
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          done();
          resolve();
        };
        const onGone = () => {
          done();
          reject(new TpmTransportError("mssim server: client went away", { errno: "ECONNRESET" }));
        };
        const done = () => {
          socket.off("drain", onDrain);
          socket.off("close", onGone);
          shutdown.signal.removeEventListener("abort", onGone);
        };
        socket.on("drain", onDrain);
        socket.on("close", onGone);
        shutdown.signal.addEventListener("abort", onGone, { once: true });
        if (socket.destroyed || shutdown.signal.aborted) onGone();
        else if (socket.writableLength <= maxUnsent) onDrain();
      });
    };
    try {
      for (;;) {
        await drained();
        // No bound while idle; a frame must arrive whole within frameTimeoutMs of its first byte.
        await reader.wait(1, { signal: shutdown.signal });
        const deadline = clock.now() + frameTimeoutMs;
        const code = readU32be(await reader.read(4, { signal: shutdown.signal, clock, timeoutMs: frameTimeoutMs, what: "command code" }), 0, "command code");
        const more = (n: number, what: string) =>
          reader.read(n, { signal: shutdown.signal, clock, timeoutMs: Math.max(0, deadline - clock.now()), what });
        if (code === MSSIM_CMD.SESSION_END) throw new CloseConnection();
        if (code === MSSIM_CMD.STOP) {
          await runHook(hooks.stop);
          throw new CloseConnection();
        }
        if (port === "command") {
          switch (code) {
            case MSSIM_CMD.TPM_SEND_COMMAND: {
              const head = await more(5, "TPM_SEND_COMMAND header");
              const locality = head[0]!;
              const size = readU32be(head, 1, "command size");
              if (size > maxCommand) throw new CloseConnection(`command size prefix ${size} exceeds ${maxCommand}`);
              const command = await more(size, "command");
              const response = await execute(command, locality, gone.signal, space);
              write(concatBytes(u32be(response.length), response, u32be(0)));
              break;
            }
            case MSSIM_CMD.SIGNAL_HASH_START:
              ack(poweredOn ? await runHook(hooks.hashStart) : 0);
              break;
            case MSSIM_CMD.SIGNAL_HASH_DATA: {
              const n = readU32be(await more(4, "hash data length"), 0, "hash data length");
              if (n > maxCommand) throw new CloseConnection(`hash data length ${n} exceeds ${maxCommand}`);
              const data = await more(n, "hash data");
              ack(poweredOn ? await runHook(hooks.hashData && (() => hooks.hashData!(data))) : 0);
              break;
            }
            case MSSIM_CMD.SIGNAL_HASH_END:
              ack(poweredOn ? await runHook(hooks.hashEnd) : 0);
              break;
            case MSSIM_CMD.REMOTE_HANDSHAKE: {
              const version = readU32be(await more(4, "client version"), 0, "client version");
              if (version === 0) throw new CloseConnection("REMOTE_HANDSHAKE with client version 0");
              write(concatBytes(u32be(MSSIM_SERVER_VERSION), u32be(MSSIM_ENDPOINT.IN_RAW_MODE | MSSIM_ENDPOINT.PLATFORM_AVAILABLE | MSSIM_ENDPOINT.SUPPORTS_PP), u32be(0)));
              break;
            }
            case MSSIM_CMD.SET_ALTERNATIVE_RESULT:
              await more(4, "alternative result");
              ack();
              break;
            default:
              // The reference simulator just closes the command connection on an unknown code.
              throw new CloseConnection(`unknown command-port code ${code}`);
          }
        } else {
          switch (code) {
            case MSSIM_CMD.SIGNAL_POWER_ON: {
              let rc = 0;
              if (!poweredOn) {
                rc = await runHook(hooks.powerOn);
                if (rc === 0) poweredOn = true;
              }
              ack(rc);
              break;
            }
            case MSSIM_CMD.SIGNAL_POWER_OFF: {
              let rc = 0;
              if (poweredOn) {
                rc = await runHook(hooks.powerOff);
                poweredOn = false;
              }
              ack(rc);
              break;
            }
            case MSSIM_CMD.SIGNAL_RESET: {
              const rc = hooks.reset
                ? await runHook(hooks.reset)
                : (poweredOn ? await runHook(hooks.powerOff) : 0) || (await runHook(hooks.powerOn));
              if (rc === 0) poweredOn = true;
              ack(rc);
              break;
            }
            case MSSIM_CMD.SIGNAL_RESTART:
              ack(poweredOn ? await runHook(hooks.restart) : 0);
              break;
            case MSSIM_CMD.SIGNAL_NV_ON:
            case MSSIM_CMD.SIGNAL_NV_OFF: {
              const on = code === MSSIM_CMD.SIGNAL_NV_ON;
              let rc = 0;
              if (poweredOn) {
                rc = await runHook(on ? hooks.nvOn : hooks.nvOff);
                if (rc === 0) nvOn = on;
              }
              ack(rc);
              break;
            }
            case MSSIM_CMD.SIGNAL_CANCEL_ON: {
              let rc = 0;
              if (poweredOn) {
                rc = await runHook(sink.cancel && (() => sink.cancel!()));
                rc ||= await runHook(hooks.cancelOn);
              }
              ack(rc);
              break;
            }
            case MSSIM_CMD.SIGNAL_CANCEL_OFF:
              ack(poweredOn ? await runHook(hooks.cancelOff) : 0);
              break;
            case MSSIM_CMD.SIGNAL_PHYS_PRES_ON:
            case MSSIM_CMD.SIGNAL_PHYS_PRES_OFF: {
              const on = code === MSSIM_CMD.SIGNAL_PHYS_PRES_ON;
              ack(poweredOn ? await runHook(hooks.physicalPresence && (() => hooks.physicalPresence!(on))) : 0);
              break;
            }
            case MSSIM_CMD.SIGNAL_KEY_CACHE_ON:
            case MSSIM_CMD.SIGNAL_KEY_CACHE_OFF:
              ack();
              break;
            case MSSIM_CMD.TEST_FAILURE_MODE:
              ack(await runHook(hooks.failureMode));
              break;
            case MSSIM_CMD.GET_COMMAND_RESPONSE_SIZES:
              write(
                concatBytes(
                  u32be(16),
                  u32be(sizes.largestCommandSize),
                  u32be(sizes.largestCommand),
                  u32be(sizes.largestResponseSize),
                  u32be(sizes.largestResponse),
                  u32be(0),
                ),
              );
              break;
            default:
              // Reference simulator: an unknown platform code gets u32 1, then the connection closes.
              ack(1);
              throw new CloseConnection(`unknown platform-port code ${code}`);
          }
        }
      }
    } catch (e) {
      if (e instanceof CloseConnection) {
        if (e.message) report(new TpmTransportError(`mssim server: ${port} client dropped: ${e.message}`, { errno: "EPROTO" }));
      } else if (!closed && !(e instanceof TpmTransportError && e.errno === "ECONNRESET")) {
        report(e);
      }
    } finally {
      sockets.delete(socket);
      if (!socket.destroyed) socket.end(() => socket.destroy());
      gone.abort(new TpmTransportError("mssim server: connection ended"));
      await space?.close();
    }
  }

  const commandServer = createServer({ noDelay: true }, (s) => void serveConnection(s, "command"));
  const platformServer = createServer({ noDelay: true }, (s) => void serveConnection(s, "platform"));

  let port = 0;
  let platformPort = 0;
  const pairWanted = target.platformPort === undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      port = await listen(commandServer, host, pairWanted && wantPort === 0 ? portPairCandidate(attempt) : wantPort);
    } catch (e) {
      const errno = (e as { code?: string }).code;
      if (pairWanted && wantPort === 0 && errno === "EADDRINUSE" && attempt < 50) continue;
      throw new TpmTransportError(`serveMssim: cannot bind ${host}:${wantPort} (${errno ?? "error"})`, { cause: e, errno });
    }
    const pp = pairWanted ? port + 1 : target.platformPort!;
    try {
      if (pp > 65535) throw Object.assign(new Error("port + 1 is above 65535"), { code: "EADDRINUSE" });
      platformPort = await listen(platformServer, host, pp);
      break;
    } catch (e) {
      const errno = (e as { code?: string }).code;
      await closeServer(commandServer);
      if (pairWanted && wantPort === 0 && errno === "EADDRINUSE" && attempt < 50) continue;
      throw new TpmTransportError(`serveMssim: cannot bind platform port ${host}:${pp} (${errno ?? "error"})`, { cause: e, errno });
    }
  }

  // Only now: bind failures above are the caller's errors, not runtime faults.
  for (const srv of [commandServer, platformServer]) srv.on("error", report);

  const server: MssimServer = {
    host,
    port,
    platformPort,
    get poweredOn() {
      return poweredOn;
    },
    get nvOn() {
      return nvOn;
    },
    get connections() {
      return sockets.size;
    },
    get peakUnsentBytes() {
      return peakUnsent;
    },
    async close() {
      if (closed) return;
      closed = true;
      shutdown.abort(new TpmTransportError("mssim server closed"));
      for (const s of sockets) s.destroy();
      await Promise.all([closeServer(commandServer), closeServer(platformServer)]);
    },
    [Symbol.asyncDispose]() {
      return server.close();
    },
  };
  return server;
}
