/**
 * Argument parsing for the `tpmkit` command: flags in tpm2-tools style, no dependencies.
 * @packageDocumentation
 */

/** A usage error: printed as one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed command line. */
export interface ParsedArgs {
  verb: string | undefined;
  positionals: string[];
  flags: Map<string, string | true>;
}

const VALUE_FLAGS = new Set(["tcti", "protocol", "port", "host", "path", "locality", "count", "output", "state"]);
const SHORT: Record<string, string> = { T: "tcti", h: "help", V: "version", l: "locality", o: "output" };

/** Splits argv into verb, positionals and flags (`--x y`, `--x=y`, `-T y`, boolean `--hex`). */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let value: string | undefined;
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (eq >= 0) value = a.slice(eq + 1);
    } else if (a.length > 1 && a.startsWith("-") && !/^-\d/.test(a)) {
      name = SHORT[a.slice(1)];
      if (!name) throw new UsageError(`unknown option ${a}`);
    }
    if (name === undefined) {
      positionals.push(a);
      continue;
    }
    if (VALUE_FLAGS.has(name) && value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} needs a value`);
    }
    flags.set(name, value ?? true);
  }
  return { verb: positionals.shift(), positionals, flags };
}
