/**
 * Shared plumbing for tpmkit's socket servers (swtpm and mssim protocols): the command-sink
 * interface and listening on TCP or a UNIX socket, serving one connection at a time (as swtpm and
 * the Microsoft simulator do). Framing reads go through the shared socket reader (`SocketReader`).
 *
 * Node-specific (node:net, node:fs).
 *
 * @packageDocumentation
 */
import * as fs from "node:fs";
import * as net from "node:net";
import { TpmArgumentError, TpmTransportError } from "../errors/index.js";
import type { MaybePromise } from "../core/transport.js";

/**
 * Where a server's TPM commands go: anything that runs them. A `Chip` is one as it is; wrap a
 * bare `TpmBackend` (a `SoftTpm`) as
 * `{ transmit: (c, o) => backend.execute(c, o?.locality ?? 0, o?.signal), cancel: () => backend.cancel() }`.
 */
export interface CommandSink {
  /** Runs one command and returns the whole response. */
  transmit(command: Uint8Array, options?: { locality?: number; signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * Asks the TPM to cancel the running command (optional). The mssim server calls it on
   * SIGNAL_CANCEL_ON, the swtpm server on CMD_CANCEL_TPM_CMD (besides aborting the command's signal).
   */
  cancel?(): MaybePromise<void>;
}

/** Where a server listens: TCP (`host` default 127.0.0.1, `port` 0 = pick a free one) or a UNIX socket path. */
export type ListenTarget = { host?: string; port: number } | { path: string };

/** The address a server is bound to. */
export type BoundAddress = { host: string; port: number } | { path: string };

/** A listening socket that serves one connection at a time; later ones wait in a queue. */
export interface SerialListener {
  /** The bound address. */
  readonly address: BoundAddress;
  /** Stops listening, ends the active and queued connections. Idempotent. */
  close(): Promise<void>;
  /** Number of connections waiting for their turn. */
  readonly waiting: number;
}

/**
 * Listens on `target` and hands connections to `serve` one at a time: a connection that arrives
 * while another is served is paused and queued (like swtpm, which stops polling its listening
 * socket while a client is connected), and served when the active one closes.
 *
 * @param target - TCP host/port (port 0 = any free port) or UNIX path (a stale socket file is replaced).
 * @param serve - called with each connection in turn; the next one starts after this socket closes.
 * @returns the listener with its bound address.
 * @throws TpmTransportError when the address cannot be bound (EADDRINUSE, EACCES, ...).
 */
export async function listenSerial(target: ListenTarget, serve: (socket: net.Socket) => void): Promise<SerialListener> {
  const server = net.createServer({ pauseOnConnect: true, noDelay: true } as net.ServerOpts);
  const queue: net.Socket[] = [];
  const all = new Set<net.Socket>();
  let active: net.Socket | undefined;
  let closed = false;

  const next = () => {
    if (closed || active) return;
    let s: net.Socket | undefined;
    while ((s = queue.shift()) && s.destroyed);
    if (!s) return;
    active = s;
    s.once("close", () => {
      if (active === s) active = undefined;
      next();
    });
    serve(s);
    s.resume();
  };

  server.on("connection", (s: net.Socket) => {
    all.add(s);
    s.once("close", () => {
      all.delete(s);
      const i = queue.indexOf(s);
      if (i >= 0) queue.splice(i, 1);
    });
    s.on("error", () => undefined); // reported through 'close'; a server never crashes on a client
    s.setNoDelay(true);
    queue.push(s);
    next();
  });

  if ("path" in target) {
    if (typeof target.path !== "string" || target.path.length === 0) throw new TpmArgumentError("listen path must be a non-empty string");
    // Replace a stale socket file (left by a process that died), never a live one.
    let isSocket = false;
    try {
      isSocket = fs.statSync(target.path).isSocket();
    } catch {
      /* not there */
    }
    if (isSocket) {
      const live = await new Promise<boolean>((resolve) => {
        const probe = net.connect({ path: target.path });
        probe.once("connect", () => {
          probe.destroy();
          resolve(true);
        });
        probe.once("error", () => resolve(false));
      });
      if (live) throw new TpmTransportError(`cannot listen on ${target.path}: another server is listening there`, { errno: "EADDRINUSE" });
      try {
        fs.unlinkSync(target.path);
      } catch {
        /* raced with someone else; listen reports it */
      }
    }
  } else if (!Number.isInteger(target.port) || target.port < 0 || target.port > 0xffff) {
    throw new TpmArgumentError(`listen port must be an integer 0–65535, got ${String(target.port)}`);
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) =>
      reject(new TpmTransportError(`cannot listen on ${"path" in target ? target.path : `${target.host ?? "127.0.0.1"}:${target.port}`}: ${e.code ?? e.message}`, { errno: e.code ?? "EIO", cause: e }));
    server.once("error", onError);
    const done = () => {
      server.off("error", onError);
      resolve();
    };
    if ("path" in target) server.listen(target.path, done);
    else server.listen(target.port, target.host ?? "127.0.0.1", done);
  });
  server.on("error", () => undefined);

  const a = server.address();
  const address: BoundAddress = typeof a === "string" || a === null ? { path: "path" in target ? target.path : String(a) } : { host: a.address, port: a.port };

  return {
    address,
    get waiting() {
      return queue.length;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of all) s.destroy();
        queue.length = 0;
      });
    },
  };
}

/**
 * The port to try for attempt `attempt` when a caller asked for "any free pair" (port 0 with a
 * derived port + 1): first random ports in 20000–31999, below Linux's default ephemeral range
 * (32768–60999), where no outgoing connection can hold port + 1 (tcti-swtpm opens a connection per
 * command and leaves thousands of TIME-WAIT sockets in the ephemeral range); then port 0.
 */
export function portPairCandidate(attempt: number): number {
  return attempt < 30 ? 20000 + Math.floor(Math.random() * 12000) : 0;
}
