/**
 * Node socket plumbing shared by the swtpm data-channel transport and the control-channel client:
 * endpoints (TCP or UNIX socket), the control endpoint tcti-swtpm derives, and a bounded,
 * abortable connect.
 *
 * Node-specific (node:net).
 *
 * @packageDocumentation
 */
import * as net from "node:net";
import type { Clock } from "../core/clock.js";
import { TpmArgumentError, TpmTransportError, abortErrorFrom } from "../errors/index.js";

/** A TCP endpoint. `host` defaults to 127.0.0.1 (swtpm's default bind address). */
export interface SwtpmTcpEndpoint {
  host?: string;
  port: number;
}

/** A UNIX-socket endpoint (`swtpm socket --server type=unixio,path=...`). */
export interface SwtpmUnixEndpoint {
  path: string;
}

/** Where a swtpm socket is: TCP host/port or a UNIX socket path. */
export type SwtpmEndpoint = SwtpmTcpEndpoint | SwtpmUnixEndpoint;

/** Default host: swtpm binds 127.0.0.1 unless told otherwise (swtpm(8), `--server bindaddr=`). */
export const SWTPM_DEFAULT_HOST = "127.0.0.1";

/**
 * Checks an endpoint and returns it in normalized form.
 *
 * @param endpoint - `{ host?, port }` or `{ path }`.
 * @param what - name used in error messages.
 * @returns the endpoint with `host` filled in for TCP.
 * @throws TpmArgumentError when the port is not an integer in 0–65535 or the path is empty.
 */
export function normalizeEndpoint(endpoint: SwtpmEndpoint, what = "endpoint"): SwtpmEndpoint {
  if (endpoint === null || typeof endpoint !== "object") throw new TpmArgumentError(`${what}: expected { host, port } or { path }`);
  if ("path" in endpoint && endpoint.path !== undefined) {
    if (typeof endpoint.path !== "string" || endpoint.path.length === 0) throw new TpmArgumentError(`${what}: path must be a non-empty string`);
    return { path: endpoint.path };
  }
  const { port } = endpoint as SwtpmTcpEndpoint;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new TpmArgumentError(`${what}: port must be an integer 0–65535, got ${String(port)}`);
  return { host: (endpoint as SwtpmTcpEndpoint).host ?? SWTPM_DEFAULT_HOST, port };
}

/**
 * The control-channel endpoint that tcti-swtpm derives from a data endpoint: TCP port + 1 on the same
 * host, or the UNIX path with ".ctrl" appended (tpm2-tss src/tss2-tcti/tcti-swtpm.c, 3.2.1).
 *
 * @param data - the data-channel endpoint.
 * @returns the derived control endpoint.
 * @throws TpmArgumentError when the data port is 65535 (no port + 1) or the endpoint is malformed.
 * @example
 * ```ts
 * deriveControlEndpoint({ port: 2321 });            // { host: "127.0.0.1", port: 2322 }
 * deriveControlEndpoint({ path: "/run/swtpm.sock" }); // { path: "/run/swtpm.sock.ctrl" }
 * ```
 */
export function deriveControlEndpoint(data: SwtpmEndpoint): SwtpmEndpoint {
  const d = normalizeEndpoint(data, "data endpoint");
  if ("path" in d) return { path: `${d.path}.ctrl` };
  if (d.port === 0xffff) throw new TpmArgumentError("data port 65535 has no port + 1 for the control channel");
  return { host: d.host!, port: d.port + 1 };
}

/** Human-readable address for messages: "127.0.0.1:2321" or the path. */
export function describeEndpoint(e: SwtpmEndpoint): string {
  return "path" in e ? e.path : `${e.host ?? SWTPM_DEFAULT_HOST}:${e.port}`;
}

/** Options for {@link connectSocket}. */
export interface ConnectOptions {
  clock: Clock;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Passed to net.connect (e.g. `onread` for zero-copy reads). */
  socketOptions?: Partial<net.NetConnectOpts>;
  /** Label for errors ("data channel", "control channel"). */
  what: string;
}

/**
 * Connects to an endpoint, bounded by `timeoutMs` on the injected clock and by `signal`.
 * Sets TCP_NODELAY on TCP sockets.
 *
 * @param endpoint - where to connect (normalized).
 * @param options - clock, bound, signal, label.
 * @returns the connected socket.
 * @throws TpmTransportError (errno from the socket, e.g. ECONNREFUSED, ENOENT, or ETIMEDOUT) or the abort reason.
 */
export function connectSocket(endpoint: SwtpmEndpoint, options: ConnectOptions): Promise<net.Socket> {
  const { clock, timeoutMs, signal, what } = options;
  return new Promise<net.Socket>((resolve, reject) => {
    if (signal?.aborted) return reject(abortErrorFrom(signal));
    const base = "path" in endpoint ? { path: endpoint.path } : { host: endpoint.host ?? SWTPM_DEFAULT_HOST, port: endpoint.port };
    const sock = net.connect({ ...(options.socketOptions ?? {}), ...base } as net.NetConnectOpts);
    let settled = false;
    const timer = clock.setTimer(timeoutMs, () =>
      fail(new TpmTransportError(`${what}: connect to ${describeEndpoint(endpoint)} timed out after ${timeoutMs} ms`, { errno: "ETIMEDOUT" })),
    );
    const onAbort = () => fail(abortErrorFrom(signal!));
    function cleanup() {
      settled = true;
      timer.clear();
      signal?.removeEventListener("abort", onAbort);
      sock.off("error", onError);
      sock.off("connect", onConnect);
    }
    function fail(err: unknown) {
      if (settled) return;
      cleanup();
      sock.destroy();
      reject(err);
    }
    function onError(err: NodeJS.ErrnoException) {
      fail(
        new TpmTransportError(`${what}: cannot connect to ${describeEndpoint(endpoint)}: ${err.code ?? err.message}`, {
          errno: err.code ?? "EIO",
          cause: err,
        }),
      );
    }
    function onConnect() {
      if (settled) return;
      cleanup();
      if (!("path" in endpoint)) sock.setNoDelay(true);
      resolve(sock);
    }
    sock.once("error", onError);
    sock.once("connect", onConnect);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
