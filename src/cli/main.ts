/**
 * The `tpmkit` command: `tpmkit demo` (the main job), and verbs in tpm2-tools style (getrandom,
 * pcrread, pcrextend, getcap, serve; the table is src/cli/verbs/index.ts).
 *
 * Every run goes the same way: parse the whole command line strictly and let the verb check its
 * arguments (usage errors: exit 2, nothing done); pick the TPM (`-T`, `TPM2TOOLS_TCTI`, `TCTI`,
 * discovery) and open it; run the verb; end the TPM in order on every path (Shutdown(STATE) and a
 * saved state file where there is one), even after a TPM error (exit 1).
 *
 * @packageDocumentation
 */
import { readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { parseArgs as nodeParseArgs } from "node:util";
import { TpmkitError } from "../errors/index.js";
import { CHIP_COMMAND_CHANNEL, type Chip, type ChipCommandEvent } from "../core/chip.js";
import { commandName, formatRc } from "../wire/rc.js";
import { DEFAULT_DISCOVERY, TctiDiscoveryError } from "../platform/discovery.js";
import { GLOBAL_HELP, GLOBAL_OPTIONS, parseVerbLine, splitVerb, UsageError } from "./args.js";
import { chooseTpm, openCliTarget, type CliTarget } from "./target.js";
import { VERBS, verbNamed } from "./verbs/index.js";
import type { VerbContext } from "./verb.js";

/**
 * The version in tpmkit's package.json, read at run time: the nearest package.json named
 * "tpmkit" above this module (src/cli/ in the repository, dist/cli/ in the package).
 */
export function tpmkitVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "tpmkit" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // no package.json here: look further up
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return "unknown";
}

function globalHelp(version: string): string {
  const width = Math.max(...VERBS.map((v) => v.name.length)) + 2;
  return `tpmkit ${version}: a TPM 2.0 toolkit

usage: tpmkit <verb> [options] [-T TCTI]
       tpmkit <verb> --help        the verb's own options and examples

verbs:
${VERBS.map((v) => `  ${v.name.padEnd(width)}${v.summary}`).join("\n")}

${GLOBAL_HELP}
Exit status: 0 success, 1 TPM or transport error, 2 usage error (nothing was sent to the TPM).
`;
}

/** Options of {@link main}, for tests and embedders: the environment and discovery to use instead of this machine's. */
export interface MainOptions {
  /** The environment TPM2TOOLS_TCTI and TCTI are read from (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** What discovery tries when nothing is configured (default `DEFAULT_DISCOVERY`, tpm2-tss order). */
  discovery?: readonly string[];
  /** Bound on each discovery probe, ms (default the library's, 250). */
  probeTimeoutMs?: number;
}

/** One line for an error: its short message and code. */
function errorLine(e: unknown): string {
  if (e instanceof TctiDiscoveryError) {
    const tried = e.attempts.filter((a) => a.outcome === "failed").map((a) => a.tcti);
    return `no TPM found: no -T, TPM2TOOLS_TCTI and TCTI are unset, and discovery found nothing (tried ${tried.join(", ") || "nothing"}); for tpmkit's embedded SoftTpm use -T softtpm (-T softtpm:state=FILE keeps its state) [${e.code}]`;
  }
  if (e instanceof TpmkitError) return `${e.shortMessage.split("\n")[0]} [${e.code}]`;
  return (e as Error)?.message ?? String(e);
}

/** One line per command on the chip's trace channel. */
function traceLine(ev: ChipCommandEvent): string {
  const what = ev.rc !== undefined ? formatRc(ev.rc) : `no response: ${errorLine(ev.error)}`;
  return `tpmkit: trace: ${commandName(ev.commandCode)} locality ${ev.locality} -> ${what}, ${ev.durationMs.toFixed(1)} ms${ev.retries ? `, ${ev.retries} retries` : ""}\n`;
}

/**
 * Runs the CLI; returns the exit code: 0, 1 for TPM and transport errors, 2 for usage errors.
 * Errors are one line on stderr.
 *
 * @param argv - the command line without node and the script
 * @param out - standard output
 * @param err - standard error
 * @param options - environment and discovery overrides
 */
export async function main(argv: readonly string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr, options: MainOptions = {}): Promise<number> {
  const usage = (message: string) => {
    err.write(`tpmkit: ${message}\n`);
    return 2;
  };
  const { verb: name, rest } = splitVerb(argv);
  if (name === undefined || name === "help") {
    // `tpmkit`, `tpmkit --help`, `tpmkit -V`, `tpmkit help [verb]`
    let values: Record<string, unknown>;
    let positionals: string[];
    try {
      ({ values, positionals } = nodeParseArgs({ args: [...rest], options: GLOBAL_OPTIONS, strict: true, allowPositionals: name === "help" }));
    } catch (e) {
      return usage(`${(e as Error).message.split(".")[0]} (try tpmkit --help)`);
    }
    if (values.version) {
      out.write(`${tpmkitVersion()}\n`);
      return 0;
    }
    if (name === "help" && positionals.length) {
      const v = verbNamed(positionals[0]!);
      if (!v) return usage(`unknown verb "${positionals[0]}" (try tpmkit --help)`);
      out.write(v.help + "\n" + GLOBAL_HELP);
      return 0;
    }
    if (values.help || name === "help") {
      out.write(globalHelp(tpmkitVersion()));
      return 0;
    }
    err.write(globalHelp(tpmkitVersion()));
    return 2;
  }
  const verb = verbNamed(name);
  if (!verb) return usage(`unknown verb "${name}" (try tpmkit --help)`);

  // 1. The whole command line, checked before anything is opened.
  let line: ReturnType<typeof parseVerbLine>;
  let plan: unknown;
  let choice: Awaited<ReturnType<typeof chooseTpm>> | undefined;
  try {
    line = parseVerbLine(verb.name, rest, verb.options);
    if (line.help) {
      out.write(verb.help + "\n" + GLOBAL_HELP);
      return 0;
    }
    if (line.version) {
      out.write(`${tpmkitVersion()}\n`);
      return 0;
    }
    plan = verb.parse(line.args);
    if (verb.needsTpm !== false) choice = await chooseTpm(line.tcti, { env: options.env ?? process.env, ...(verb.defaultTcti === undefined ? {} : { fallback: verb.defaultTcti }) });
  } catch (e) {
    if (e instanceof UsageError) return usage(e.message);
    err.write(`tpmkit: ${errorLine(e)}\n`);
    return 1;
  }

  // 2. --verbose: every command of this run's chip, as it ends.
  let chip: Chip | undefined;
  const onCommand = (message: unknown) => {
    const ev = message as ChipCommandEvent;
    if (chip !== undefined && ev.chip === chip) err.write(traceLine(ev));
  };
  if (line.verbose) subscribe(CHIP_COMMAND_CHANNEL, onCommand);
  let target: CliTarget | undefined;
  try {
    if (choice) {
      target = await openCliTarget(choice, {
        ...(line.locality === undefined ? {} : { locality: line.locality }),
        startupClear: line.startupClear,
        discovery: options.discovery ?? DEFAULT_DISCOVERY,
        ...(options.probeTimeoutMs === undefined ? {} : { probeTimeoutMs: options.probeTimeoutMs }),
        onChip: (c) => (chip = c),
        err,
      });
      if (target.emulated && !verb.describesTarget) err.write(`tpmkit: emulated TPM (not a hardware TPM): ${target.description}\n`);
    }
    const ctx: VerbContext = {
      get tpm() {
        if (!target) throw new Error(`${verb.name} declares needsTpm: false but used the TPM`);
        return target.tpm;
      },
      get target() {
        if (!target) throw new Error(`${verb.name} declares needsTpm: false but used the TPM`);
        return target;
      },
      call: line.locality === undefined ? {} : { locality: line.locality },
      json: line.json,
      out,
      err,
    };
    let failure: unknown;
    try {
      await verb.run(plan, ctx);
    } catch (e) {
      failure = e;
    }
    // 3. The TPM ends in order whatever the verb did; abandoned only when that fails too.
    if (target) {
      try {
        await target.finish();
      } catch (e) {
        await target.abandon().catch(() => {});
        if (failure === undefined) failure = e;
        else err.write(`tpmkit: the TPM could not be shut down in order: ${errorLine(e)}\n`);
      }
    }
    if (failure !== undefined) throw failure;
    return 0;
  } catch (e) {
    if (e instanceof TctiDiscoveryError && line.verbose) for (const a of e.attempts) err.write(`tpmkit: discovery: ${a.tcti}: ${a.outcome}: ${a.reason}\n`);
    if (e instanceof UsageError) return usage(e.message);
    err.write(`tpmkit: ${errorLine(e)}\n`);
    return 1;
  } finally {
    if (line.verbose) unsubscribe(CHIP_COMMAND_CHANNEL, onCommand);
  }
}

/**
 * Whether this module is the program node runs: `process.argv[1]` resolves to this file, also
 * when it was reached through a symlink (npm's bin link, `node_modules/.bin/tpmkit`).
 */
function isMainModule(): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  // `tpmkit getcap commands | head` closes stdout early: that is not an error.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`tpmkit: ${(e as Error)?.message ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
