/**
 * swtpm endpoints, shared by the swtpm data-channel transport, the control-channel client and the
 * server: TCP or UNIX socket, their checks, and the control endpoint tcti-swtpm derives. The
 * connect itself is `connectSocket`, the same for every socket client.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import { DEFAULT_HOST, formatAddress } from "./connect.js";

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
export const SWTPM_DEFAULT_HOST = DEFAULT_HOST;

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

/** Human-readable address for messages: "127.0.0.1:2321" or the path (the same as {@link formatAddress}). */
export const describeEndpoint: (e: SwtpmEndpoint) => string = formatAddress;
