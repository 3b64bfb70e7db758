/**
 * `tpmkit serve`: exposes the TPM on a swtpm-protocol or mssim-protocol socket (src/cli/serve.ts
 * does the serving; this is the verb: options, help, checks before the TPM is opened).
 *
 * @packageDocumentation
 */
import { parseIntInRange, UsageError } from "../args.js";
import { serveCli, type ServePlan } from "../serve.js";
import type { Verb } from "../verb.js";

/** `tpmkit serve`. */
export const serve: Verb<ServePlan> = {
  name: "serve",
  summary: "expose the TPM on a socket: --protocol swtpm|mssim [--port P] [--host H | --path SOCK] [--rm]",
  help: `usage: tpmkit serve [--protocol swtpm|mssim] [--port P] [--host H | --path SOCK] [--rm [--rm-objects N] [--rm-sessions N]] [-T TCTI] [--json]

Serves the TPM on the swtpm protocol (data socket + control socket on port+1, as swtpm socket
--tpm2 --server/--ctrl) or the mssim protocol (command socket + platform socket on port+1, as
the TCG simulator), so tpm2-tools and other TSS stacks can drive it. Stops on SIGINT/SIGTERM,
with the state saved (Shutdown(STATE)) when the TPM keeps a state file.

  --protocol P   swtpm (default) or mssim
  --port P       TCP port, 0-65535 (default 2321; 0: any free port)
  --host H       TCP address to listen on (default 127.0.0.1)
  --path SOCK    a Unix socket instead of TCP (swtpm protocol only)
  --rm           a resource manager in front of the TPM, as /dev/tpmrm0 or tpm2-abrmd: each
                 client sees only its own transient objects (virtual handles 0x80FFxxxx) and
                 sessions, context-swapped around each command and flushed when it leaves;
                 what the manager refuses has RC layer 0x000B. A client is one connection
                 (mssim), or one tcti-swtpm client from its opening probe to the next (swtpm)
  --rm-objects N transient objects per client, 1-1024 (default 16)
  --rm-sessions N sessions per client, 1-1024 (default 16)
  --json         print the addresses as one JSON object

examples:
  tpmkit serve -T softtpm:state=tpm.state --protocol swtpm --port 2321
  tpm2_getrandom -T swtpm:host=127.0.0.1,port=2321 8 --hex
  tpmkit serve -T softtpm --rm --protocol mssim --port 2321
`,
  options: {
    protocol: { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    path: { type: "string" },
    rm: { type: "boolean" },
    "rm-objects": { type: "string" },
    "rm-sessions": { type: "string" },
  },
  parse(args) {
    if (args.positionals.length) throw new UsageError(`serve takes no arguments, got "${args.positionals.join(" ")}" (try tpmkit serve --help)`);
    const v = args.values as Record<string, string | undefined>;
    const rm = (args.values as Record<string, unknown>).rm === true;
    if (!rm && (v["rm-objects"] !== undefined || v["rm-sessions"] !== undefined)) throw new UsageError("--rm-objects and --rm-sessions need --rm");
    const rmLimits = rm
      ? {
          rm: {
            ...(v["rm-objects"] === undefined ? {} : { maxObjects: parseIntInRange(v["rm-objects"], "--rm-objects", 1, 1024) }),
            ...(v["rm-sessions"] === undefined ? {} : { maxSessions: parseIntInRange(v["rm-sessions"], "--rm-sessions", 1, 1024) }),
          },
        }
      : {};
    const protocol = v.protocol ?? "swtpm";
    if (protocol !== "swtpm" && protocol !== "mssim") throw new UsageError(`--protocol must be swtpm or mssim, got "${protocol}"`);
    const port = v.port === undefined ? 2321 : parseIntInRange(v.port, "--port", 0, 65535);
    if (v.path !== undefined && (v.host !== undefined || v.port !== undefined)) throw new UsageError("--path cannot be combined with --host or --port");
    if (v.path !== undefined && protocol === "mssim") throw new UsageError("the mssim protocol serves TCP only (--host/--port)");
    return { protocol, port, host: v.host ?? "127.0.0.1", ...(v.path === undefined ? {} : { path: v.path }), ...rmLimits };
  },
  async run(plan, { target, out, json }) {
    await serveCli(plan, target, out, undefined, json);
  },
};
export default serve;
