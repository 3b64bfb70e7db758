/** Runs the tpmkit CLI in-process for tests, capturing stdout, stderr and the exit code. */
import { PassThrough } from "node:stream";
import { main, type MainOptions } from "../../src/cli/main.js";

/** What one CLI run gave. */
export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs `tpmkit ...argv` with `options` (default: no environment and no discovery, so a test never
 * reaches this machine's TPM devices or sockets).
 */
export async function runCli(argv: readonly string[], options: MainOptions = { env: {}, discovery: [] }): Promise<CliRun> {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on("data", (d: Buffer) => o.push(d));
  err.on("data", (d: Buffer) => e.push(d));
  const code = await main(argv, out, err, options);
  return { code, out: Buffer.concat(o).toString(), err: Buffer.concat(e).toString() };
}
