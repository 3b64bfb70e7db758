/**
 * Bounded, abortable TCP / UNIX-socket connect for the socket transports.
 *
 * @packageDocumentation
 */
import { createConnection, type Socket } from "node:net";
import type { Clock } from "../core/clock.js";
import { TpmTimeoutError, TpmTransportError, abortErrorFrom } from "../errors/index.js";
import { errnoOf } from "./socket-reader.js";

/** Where to connect: TCP host and port, or a UNIX socket path. */
export type SocketAddress = { host: string; port: number } | { path: string };

/** Human form of an address: `"127.0.0.1:2321"` or the path. */
export function formatAddress(a: SocketAddress): string {
  return "path" in a ? a.path : `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}

/**
 * Opens a stream socket, bounded by `timeoutMs` on `clock` and by `signal`.
 *
 * @param address - TCP host/port or UNIX path
 * @param options - `clock` and `timeoutMs` bound the wait; `signal` aborts it; `label` names the
 *   peer in errors
 * @returns the connected socket, with TCP_NODELAY set
 * @throws TpmTransportError with the errno (`ECONNREFUSED`, `ENOENT`, ...) when the connect fails
 * @throws TpmTimeoutError when it does not complete in time
 * @throws TpmAbortError when `signal` aborts
 */
export function connectSocket(
  address: SocketAddress,
  options: { clock: Clock; timeoutMs: number; signal?: AbortSignal | undefined; label: string },
): Promise<Socket> {
  const { clock, timeoutMs, signal, label } = options;
  if (signal?.aborted) return Promise.reject(abortErrorFrom(signal));
  return new Promise<Socket>((resolve, reject) => {
    const socket = "path" in address ? createConnection({ path: address.path }) : createConnection({ host: address.host, port: address.port });
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
        // Keep an error listener until the owner attaches its own: an unhandled 'error' event
        // would crash the process.
        socket.on("error", () => {});
        resolve(socket);
      }
    };
    const onConnect = () => {
      if ("port" in address) socket.setNoDelay(true);
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
