/**
 * The `tpmkit` command line: the global options, the one strict parse of a verb's command line
 * (node:util `parseArgs`, strict: an option the verb does not declare is a usage error), and the one
 * validation of each concept verbs share (PCR index, locality, bounded integers).
 *
 * @packageDocumentation
 */
import { parseArgs as nodeParseArgs } from "node:util";
import type { VerbArgs, VerbOptions } from "./verb.js";

/** A usage error: printed as one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * The options every verb takes (added to the verb's own by {@link parseVerbLine}). Names follow
 * tpm2-tools 5.4 where it has one (`-T/--tcti`, `-h/--help`; tpm2-tools' common options,
 * man/common/options.md), except `-V`, which tpmkit has always used for the version.
 */
export const GLOBAL_OPTIONS = {
  tcti: { type: "string", short: "T" },
  locality: { type: "string", short: "l" },
  json: { type: "boolean" },
  verbose: { type: "boolean" },
  "startup-clear": { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const satisfies VerbOptions;

/** The global options' help, one block for every verb's `--help`. */
export const GLOBAL_HELP = `global options:
  -T, --tcti STRING   the TPM: memory | softtpm[:state=FILE] | tis | crb (emulated, embedded) |
                      device[:PATH] | swtpm:host=H,port=P | swtpm:path=SOCK | mssim:host=H,port=P
                      (default: $TPM2TOOLS_TCTI, then $TCTI, then discovery in tpm2-tss order:
                      /dev/tpmrm0, /dev/tpm0, /dev/tcm0, swtpm and mssim on 127.0.0.1:2321)
  -l, --locality N    send the verb's commands at locality N (0-4); Startup/Shutdown stay at 0
      --json          print one JSON document (byte strings as lower-case hex)
      --verbose       print every TPM command (code, locality, response code, time) to stderr
      --startup-clear with softtpm:state=FILE (or tis/crb:state=FILE): start with Startup(CLEAR)
                      when the saved state cannot be resumed (PCRs reset, NV kept)
  -h, --help          this text
  -V, --version       the version
`;

/** Options of a verb's command line once parsed: the global ones, typed, and the verb's own. */
export interface ParsedVerbLine {
  /** `-T` as given, or undefined. */
  readonly tcti: string | undefined;
  /** `-l` as given and checked (0–4), or undefined. */
  readonly locality: number | undefined;
  readonly json: boolean;
  readonly verbose: boolean;
  readonly startupClear: boolean;
  readonly help: boolean;
  readonly version: boolean;
  /** The verb's options and positionals, for its `parse`. */
  readonly args: VerbArgs;
}

/** Global options that take a value (to find the verb among the words before it). */
const GLOBAL_VALUE_OPTIONS = new Set(["-T", "--tcti", "-l", "--locality"]);

/**
 * Finds the verb: the first word that is not an option or a global option's value.
 *
 * @param argv - the command line without node and the script
 * @returns the verb and the command line without it
 */
export function splitVerb(argv: readonly string[]): { verb: string | undefined; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return { verb: argv[i + 1], rest: [...argv.slice(0, i + 1), ...argv.slice(i + 2)] };
    if (a.startsWith("-") && a !== "-") {
      if (GLOBAL_VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    return { verb: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { verb: undefined, rest: [...argv] };
}

/** The option a node:util parseArgs error names (its message quotes it). */
function optionOf(e: Error): string {
  return /'([^']+)'/.exec(e.message)?.[1] ?? "";
}

/**
 * Parses a verb's command line, strictly, against the global options plus the verb's own.
 *
 * @param verb - the verb's name (for messages)
 * @param argv - the command line without the verb
 * @param options - the verb's own options
 * @returns the global options, typed, and the verb's options and positionals
 * @throws UsageError for an unknown option, a missing value, a value given to a flag, or a bad `-l`
 */
export function parseVerbLine(verb: string, argv: readonly string[], options: VerbOptions): ParsedVerbLine {
  for (const name of Object.keys(options)) {
    if (Object.prototype.hasOwnProperty.call(GLOBAL_OPTIONS, name)) throw new Error(`verb ${verb} redefines the global option --${name}`);
  }
  let parsed: ReturnType<typeof nodeParseArgs>;
  try {
    parsed = nodeParseArgs({ args: [...argv], options: { ...GLOBAL_OPTIONS, ...options }, strict: true, allowPositionals: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const hint = ` (try tpmkit ${verb} --help)`;
    switch (err.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown option ${optionOf(err)} for ${verb}${hint}`);
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
        // "Option '-T, --tcti <value>' argument missing" or "Option '--json' does not take an argument"
        const what = optionOf(err).replace(/ <value>$/, "");
        throw new UsageError(/argument missing/.test(err.message) ? `option ${what} needs a value${hint}` : `option ${what} takes no value${hint}`);
      }
      default:
        throw new UsageError(`${err.message}${hint}`);
    }
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const own: Record<string, string | boolean | (string | boolean)[] | undefined> = {};
  for (const name of Object.keys(options)) own[name] = (parsed.values as VerbArgs["values"])[name];
  const localityText = v.locality as string | undefined;
  return {
    tcti: v.tcti as string | undefined,
    locality: localityText === undefined ? undefined : parseLocality(localityText),
    json: v.json === true,
    verbose: v.verbose === true,
    startupClear: v["startup-clear"] === true,
    help: v.help === true,
    version: v.version === true,
    args: { values: own, positionals: parsed.positionals },
  };
}

/**
 * A whole decimal number in `[min, max]`.
 *
 * @param text - the argument
 * @param what - what it is, for the message (`"--port"`, `"count"`)
 * @throws UsageError otherwise
 */
export function parseIntInRange(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) throw new UsageError(`${what} must be a whole number ${min}-${max}, got "${text}"`);
  return Number(text);
}

/** Localities a TPM has (TPM 2.0 Part 1 §34, "Locality"): 0–4. */
export function parseLocality(text: string): number {
  return parseIntInRange(text, "--locality", 0, 4);
}
