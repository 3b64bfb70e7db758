/**
 * Runs one CLI verb (the `Verb` contract of src/cli/verb.ts) on an open Tpm and collects what it
 * prints, the way the CLI framework does: node:util parseArgs in strict mode with the verb's
 * options plus `--json`, then the verb's `parse`, then its `run`.
 */
import { PassThrough } from "node:stream";
import { parseArgs } from "node:util";
import type { Tpm } from "../../src/client/tpm.js";
import type { CliTarget } from "../../src/cli/target.js";
import type { Verb } from "../../src/cli/verb.js";

/** What a verb printed. */
export interface VerbOutput {
  out: string;
  err: string;
}

function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (d: Buffer) => chunks.push(d));
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

/** Parses `argv` as the framework would (strict parseArgs, the verb's options plus `--json`) and returns the verb's plan. */
export function planOf<P>(verb: Verb<P>, argv: readonly string[]): { plan: P; json: boolean } {
  const { values, positionals } = parseArgs({ args: [...argv], options: { ...verb.options, json: { type: "boolean" } }, allowPositionals: true, strict: true });
  return { plan: verb.parse({ values, positionals }), json: values.json === true };
}

/** Runs `verb` with `argv` on `tpm` and returns its stdout and stderr. */
export async function runVerb<P>(verb: Verb<P>, argv: readonly string[], tpm: Tpm): Promise<VerbOutput> {
  const { plan, json } = planOf(verb, argv);
  const out = collector();
  const err = collector();
  const target = { tpm, description: "test TPM" } as unknown as CliTarget;
  await verb.run(plan, { tpm, target, call: {}, json, out: out.stream, err: err.stream });
  // PassThrough delivers written chunks on the next tick
  await new Promise((r) => setImmediate(r));
  return { out: out.text(), err: err.text() };
}
