/**
 * The one bounded, abortable stream-socket connect (TCP or UNIX socket) under every socket client
 * (the swtpm data and control channels, the mssim command and platform ports). It settles on exactly
 * one of: the connected socket, a {@link TpmTransportError} carrying the socket's errno
 * (`ECONNREFUSED`, `ENOENT`, `EHOSTUNREACH`, ...), a {@link TpmTimeoutError} when the bound passes,
 * or the caller's abort error.
 *
 * Node-specific (node:net).
 *
 * @packageDocumentation
 */
import { createConnection, type NetConnectOpts, type Socket } from "node:net";
import type { Clock } from "../core/clock.js";
import { TpmTimeoutError, TpmTransportError, abortErrorFrom } from "../errors/index.js";

/** Where to connect: TCP `host` (default `"127.0.0.1"`) and `port`, or a UNIX socket path. */
export type SocketAddress = { host?: string | undefined; port: number } | { path: string };

/** Host used when a TCP address names none: loopback, where swtpm and tpmkit's servers bind by default (swtpm(8), `--server bindaddr=`). */
export const DEFAULT_HOST = "127.0.0.1";

/** Human form of an address: `"127.0.0.1:2321"`, `"[::1]:2321"` or the path. */
export function formatAddress(a: SocketAddress): string {
  if ("path" in a) return a.path;
  const host = a.host ?? DEFAULT_HOST;
  return `${host.includes(":") ? `[${host}]` : host}:${a.port}`;
}

/** Maps a Node socket error to its errno string (`"ECONNRESET"`, ...), if it has one. */
export function errnoOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "string" ? c : undefined;
}

/** Options of {@link connectSocket}. */
export interface ConnectOptions {
  /** Clock the bound runs on. */
  clock: Clock;
  /** Bound of the connect, ms (`Infinity`: only `signal` bounds it). */
  timeoutMs: number;
  /** Aborts the connect (rejects with the signal's tpmkit error or a TpmAbortError). */
  signal?: AbortSignal | undefined;
  /** Names the peer in errors, e.g. `"swtpm data channel"`, `"mssim platform port"`. */
  label: string;
  /** Extra options for `net.createConnection` (e.g. `onread`). The address fields win. */
  socketOptions?: Partial<NetConnectOpts> | undefined;
}

/**
 * Opens a stream socket, bounded by `timeoutMs` on `clock` and by `signal`. Sets TCP_NODELAY on
 * TCP sockets (a TPM command goes out in one write and waits for its answer: Nagle would only add
 * latency).
 *
 * @param address - TCP host/port or UNIX path
 * @param options - clock, bound, signal, label
 * @returns the connected socket; it keeps a no-op `error` listener so an error before the owner
 *   attaches its own cannot crash the process
 * @throws TpmTransportError with the errno (`ECONNREFUSED`, `ENOENT`, ...) when the connect fails
 * @throws TpmTimeoutError when it does not complete within `timeoutMs`
 * @throws TpmAbortError (or the signal's tpmkit reason) when `signal` aborts
 *
 * @example
 * ```ts
 * const s = await connectSocket({ port: 2321 }, { clock: systemClock, timeoutMs: 2000, label: "mssim command port" });
 * ```
 */
export function connectSocket(address: SocketAddress, options: ConnectOptions): Promise<Socket> {
  const { clock, timeoutMs, signal, label } = options;
  if (signal?.aborted) return Promise.reject(abortErrorFrom(signal));
  return new Promise<Socket>((resolve, reject) => {
    const where = "path" in address ? { path: address.path } : { host: address.host ?? DEFAULT_HOST, port: address.port };
    const socket = createConnection({ ...(options.socketOptions ?? {}), ...where } as NetConnectOpts);
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      timer.clear();
      signal?.removeEventListener("abort", onAbort);
      socket.off("connect", onConnect);
      socket.off("error", onError);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        socket.on("error", () => {});
        resolve(socket);
      }
    };
    const onConnect = () => {
      if (!("path" in address)) socket.setNoDelay(true);
      finish();
    };
    const onError = (e: Error) => {
      const errno = errnoOf(e) ?? "EIO";
      finish(new TpmTransportError(`${label}: cannot connect to ${formatAddress(address)} (${errno})`, { cause: e, errno }));
    };
    const onAbort = () => finish(abortErrorFrom(signal!));
    const timer = Number.isFinite(timeoutMs)
      ? clock.setTimer(timeoutMs, () => finish(new TpmTimeoutError(`${label}: connect to ${formatAddress(address)}`, timeoutMs)))
      : { clear: () => undefined };
    socket.once("connect", onConnect);
    socket.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
