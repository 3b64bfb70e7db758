/**
 * The contract every `tpmkit` verb implements. The CLI framework (main.ts) parses the whole command
 * line with node:util `parseArgs` in strict mode against the global options plus the verb's own,
 * calls the verb's `parse` (all validation, before any TPM is opened), then opens the TPM, runs the
 * verb, and always ends the TPM in order (Shutdown(STATE) where there is state), on every path.
 *
 * @packageDocumentation
 */
import type { ParseArgsConfig } from "node:util";
import type { Tpm, CallOptions } from "../client/tpm.js";
import type { CliTarget } from "./target.js";

/** Options of one verb, in node:util parseArgs form (global options such as -T, -l, --json, --verbose, -h are added by the framework). */
export type VerbOptions = NonNullable<ParseArgsConfig["options"]>;

/** What parseArgs gave for a verb's command line: option values and positionals. */
export interface VerbArgs {
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  readonly positionals: readonly string[];
}

/** What a verb runs with, once its arguments are valid and the TPM is open. */
export interface VerbContext {
  /** The open, started TPM. */
  readonly tpm: Tpm;
  /** What the TPM is (description, SoftTpm behind a board, how to end it). */
  readonly target: CliTarget;
  /** Options for the verb's TPM commands: `{ locality }` from `-l/--locality` (only the verb's commands use it, never Startup). */
  readonly call: CallOptions;
  /** `--json`: print one JSON document (byte strings as lower-case hex) instead of the text/YAML form. */
  readonly json: boolean;
  /** Standard output. */
  readonly out: NodeJS.WritableStream;
  /** Standard error. */
  readonly err: NodeJS.WritableStream;
}

/**
 * One verb. `P` is the verb's parsed plan: `parse` turns the command line into it (or throws
 * `UsageError`), `run` carries it out.
 */
export interface Verb<P = unknown> {
  /** The verb as typed: "pcrread". */
  readonly name: string;
  /** One line for the global help. */
  readonly summary: string;
  /** The verb's own `--help` text (printed to stdout, exit 0): usage line, options, examples. */
  readonly help: string;
  /** The verb's own options (long name → parseArgs option). */
  readonly options: VerbOptions;
  /** Whether the verb opens a TPM at all (false for a verb that only prints). Default true. */
  readonly needsTpm?: boolean;
  /**
   * The TCTI string used when `-T` is not given, instead of `TPM2TOOLS_TCTI`/`TCTI` and discovery
   * (`demo` runs on the embedded SoftTpm: `"memory"`). Default: none, pick the TPM as tpm2-tools does.
   */
  readonly defaultTcti?: string;
  /**
   * Whether the verb's own output says what the TPM is (`demo`), so the framework does not add its
   * one-line "emulated TPM" notice on stderr. Default false.
   */
  readonly describesTarget?: boolean;
  /**
   * Validates the whole command line and returns the plan. Runs before the TPM is opened: every
   * usage error must be found here.
   *
   * @throws UsageError (exit 2) for anything wrong with the arguments.
   */
  parse(args: VerbArgs): P;
  /** Carries out the plan. Throws TpmkitErrors (exit 1) for TPM and transport errors. */
  run(plan: P, ctx: VerbContext): Promise<void>;
}
