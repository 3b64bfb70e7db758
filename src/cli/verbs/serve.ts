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
  summary: "expose the TPM on a socket: --protocol swtpm|mssim [--port P] [--host H | --path SOCK]",
  help: `usage: tpmkit serve [--protocol swtpm|mssim] [--port P] [--host H | --path SOCK] [-T TCTI] [--json]

Serves the TPM on the swtpm protocol (data socket + control socket on port+1, as swtpm socket
--tpm2 --server/--ctrl) or the mssim protocol (command socket + platform socket on port+1, as
the TCG simulator), so tpm2-tools and other TSS stacks can drive it. Stops on SIGINT/SIGTERM,
with the state saved (Shutdown(STATE)) when the TPM keeps a state file.

  --protocol P   swtpm (default) or mssim
  --port P       TCP port, 0-65535 (default 2321; 0: any free port)
  --host H       TCP address to listen on (default 127.0.0.1)
  --path SOCK    a Unix socket instead of TCP (swtpm protocol only)
  --json         print the addresses as one JSON object

examples:
  tpmkit serve -T softtpm:state=tpm.state --protocol swtpm --port 2321
  tpm2_getrandom -T swtpm:host=127.0.0.1,port=2321 8 --hex
`,
  options: {
    protocol: { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    path: { type: "string" },
  },
  parse(args) {
    if (args.positionals.length) throw new UsageError(`serve takes no arguments, got "${args.positionals.join(" ")}" (try tpmkit serve --help)`);
    const v = args.values as Record<string, string | undefined>;
    const protocol = v.protocol ?? "swtpm";
    if (protocol !== "swtpm" && protocol !== "mssim") throw new UsageError(`--protocol must be swtpm or mssim, got "${protocol}"`);
    const port = v.port === undefined ? 2321 : parseIntInRange(v.port, "--port", 0, 65535);
    if (v.path !== undefined && (v.host !== undefined || v.port !== undefined)) throw new UsageError("--path cannot be combined with --host or --port");
    if (v.path !== undefined && protocol === "mssim") throw new UsageError("the mssim protocol serves TCP only (--host/--port)");
    return { protocol, port, host: v.host ?? "127.0.0.1", ...(v.path === undefined ? {} : { path: v.path }) };
  },
  async run(plan, { target, out, json }) {
    await serveCli(plan, target, out, undefined, json);
  },
};
export default serve;
