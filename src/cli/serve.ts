/**
 * `tpmkit serve`: not wired yet (the socket servers land with the host-transports work).
 * @packageDocumentation
 */
import type { ParsedArgs } from "./args.js";
import { UsageError } from "./args.js";
import type { CliTarget } from "./target.js";

/** Serves the target's TPM on a socket until SIGINT/SIGTERM. */
export async function serveCli(_args: ParsedArgs, _target: CliTarget, _out: NodeJS.WritableStream): Promise<void> {
  throw new UsageError("serve is not available in this build yet");
}
