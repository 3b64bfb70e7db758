/**
 * Which TPM the CLI talks to, and how it leaves it.
 *
 * Choosing ({@link chooseTpm}) follows tpm2-tools: `-T`, else `TPM2TOOLS_TCTI`, else `TCTI` (blank
 * counts as unset), else discovery in tpm2-tss's order; it uses the library's own code for each
 * step (`configuredTcti`, `openTransport`, `DEFAULT_DISCOVERY`, the boards of src/platform), and
 * it only builds objects: nothing is opened, so a bad TCTI string is a usage error found before
 * any TPM is touched.
 *
 * Opening ({@link openCliTarget}) starts the TPM; leaving it ({@link CliTarget.finish}) saves the
 * state: a board whose SoftTpm keeps a state file is shut down with Shutdown(STATE) and resumed
 * with Startup(STATE) next time, so PCRs and NV carry over between `tpmkit` runs as on a TPM that
 * stays powered. A resume the TPM refuses is an error, never silently a Startup(CLEAR).
 *
 * @packageDocumentation
 */
import { existsSync } from "node:fs";
import { Tpm } from "../client/tpm.js";
import { Chip } from "../core/chip.js";
import type { Transport } from "../core/transport.js";
import { TpmArgumentError, TpmStateError } from "../errors/index.js";
import { TpmResponseError } from "../wire/rc.js";
import { TPM_RC } from "../wire/constants.js";
import type { SoftTpm } from "../softtpm/index.js";
import { parseTcti, type TctiSpec } from "../platform/tcti-parse.js";
import { boardFor, type Board } from "../platform/boards.js";
import { configuredTcti, openTransport, DEFAULT_DISCOVERY } from "../platform/discovery.js";
import { UsageError } from "./args.js";

/** An open TPM plus what to do when the CLI is done with it. */
export interface CliTarget {
  tpm: Tpm;
  /** One line saying what the TPM is. */
  description: string;
  /** The locality `-l` asked for the verb's commands (Startup and Shutdown always go at the chip's default, 0). */
  locality: number | undefined;
  /** The SoftTpm at the bottom of a board (`memory`, `softtpm`, `tis`, `crb`), for `serve`. */
  softTpm?: SoftTpm;
  /** Whether the TPM is emulated in this process (a board: memory, softtpm, tis, crb, crb-ffa). */
  emulated: boolean;
  /** Orderly end: Shutdown(STATE) and a flushed state file where there is state, then close. */
  finish(): Promise<void>;
  /** End when the TPM itself is unusable: close without further commands. */
  abandon(): Promise<void>;
}

/** Where the TCTI string came from: `-T`, an environment variable, the verb's default, or nowhere (discover). */
export type TctiSource = "-T" | "TPM2TOOLS_TCTI" | "TCTI" | "default" | "discovery";

/** The TPM a command line picked, built but not opened (see {@link chooseTpm}). */
export interface TpmChoice {
  /** Where the choice came from. */
  readonly source: TctiSource;
  /** The TCTI string, unless discovering. */
  readonly tcti?: string;
  /** The emulated stack, when the string names a board. */
  readonly board?: Board;
  /** The host transport, when the string names one. */
  readonly transport?: Transport;
}

/** Options of {@link chooseTpm}. */
export interface ChooseTpmOptions {
  /** The environment (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** What to use when `-T` is not given, instead of the environment and discovery (demo: `"memory"`). */
  fallback?: string;
}

/** Prefixes a message with where the TCTI string came from, once. */
function from(source: TctiSource, message: string): string {
  return message.startsWith(`${source}:`) ? message : `${source}: ${message}`;
}

/**
 * Picks the TPM as tpm2-tools 5.4 does (lib/tpm2_options.c: the `-T` option, else the
 * `TPM2TOOLS_TCTI` environment variable, else the TCTI loader's default; tpm2-tss' tctildr adds
 * `TCTI`): `-T`, else the first non-blank of `TPM2TOOLS_TCTI` and `TCTI` (the library's
 * `configuredTcti`), else discovery (`source: "discovery"`, opened by {@link openCliTarget}).
 * Builds what the string names (no I/O).
 *
 * @param flag - `-T` as given
 * @param options - environment, fallback
 * @returns the choice
 * @throws UsageError naming the source (`-T: ...`, `TPM2TOOLS_TCTI: unknown TCTI "tabrmd" ...`)
 *   for a malformed string, an unknown TCTI name or a bad configuration value
 */
export async function chooseTpm(flag: string | undefined, options: ChooseTpmOptions = {}): Promise<TpmChoice> {
  let source: TctiSource;
  let tcti: string;
  if (flag !== undefined) {
    source = "-T";
    tcti = flag;
  } else if (options.fallback !== undefined) {
    source = "default";
    tcti = options.fallback;
  } else {
    const configured = configuredTcti(undefined, options.env ?? process.env);
    if (!configured) return { source: "discovery" };
    source = configured.source as TctiSource;
    tcti = configured.tcti;
  }
  try {
    const spec: TctiSpec = parseTcti(tcti);
    const board = boardFor(spec.name)?.build(spec.config);
    if (board) return { source, tcti, board };
    // A host transport: the library's openTransport parses and builds it (no I/O for a given string).
    return { source, tcti, transport: await openTransport(tcti, { env: {} }) };
  } catch (e) {
    if (e instanceof TpmArgumentError) throw new UsageError(from(source, e.shortMessage));
    throw e;
  }
}

/** Options of {@link openCliTarget}. */
export interface OpenCliTargetOptions {
  /** The `-l` locality, recorded for the verb (the chip, Startup and Shutdown stay at locality 0). */
  locality?: number;
  /** `--startup-clear`: when a saved state cannot be resumed, start with Startup(CLEAR) instead of failing. */
  startupClear?: boolean;
  /** Discovery list when the choice is to discover (default `DEFAULT_DISCOVERY`, tpm2-tss order). */
  discovery?: readonly string[];
  /** Bound on each discovery probe, ms. */
  probeTimeoutMs?: number;
  /** Called with the chip before its first command (to trace it). */
  onChip?: (chip: Chip) => void;
  /** Where to say what happened at start-up (a resume refused and `--startup-clear` used). */
  err?: NodeJS.WritableStream;
}

/**
 * Opens and starts the TPM a {@link TpmChoice} (or a TCTI string) names.
 *
 * A board with a state file is resumed with Startup(STATE) when the file exists (a new file is a
 * new TPM: Startup(CLEAR)). When the TPM refuses the resume (TPM 2.0 Part 3 §9.3: TPM_RC_VALUE when
 * the last run did not end with Shutdown(STATE)), this fails with a TpmStateError that names
 * `--startup-clear`, unless `startupClear` is set; the TPM is then left unstarted and its state
 * file as it was. Other TPMs get Startup(CLEAR), TPM_RC_INITIALIZE (already started, as a
 * platform's firmware leaves a hardware TPM) counting as success.
 *
 * @param choice - from {@link chooseTpm}, or a TCTI string
 * @param options - locality, start-up policy, discovery, tracing
 * @returns the open target; end it with `finish()`
 * @throws TctiDiscoveryError when discovery finds nothing; TpmStateError when a resume is refused;
 *   transport and TPM errors from opening and starting
 */
export async function openCliTarget(choice: TpmChoice | string, options: OpenCliTargetOptions = {}): Promise<CliTarget> {
  const c = typeof choice === "string" ? await chooseTpm(choice) : choice;
  const board = c.board;
  const transport = board?.transport ?? c.transport ?? (await openTransport(undefined, { env: {}, discovery: options.discovery ?? DEFAULT_DISCOVERY, probeTimeoutMs: options.probeTimeoutMs }));
  const description = board ? board.description : `${transport.kind} transport (${c.tcti ?? "discovered"})`;
  const chip = new Chip(transport);
  options.onChip?.(chip);
  const state = board?.stateFile;
  const soft = board?.softTpm;
  let tpm: Tpm;
  if (state) {
    const resume = existsSync(state);
    tpm = await Tpm.open(chip, { startup: false });
    try {
      if (resume) {
        try {
          await tpm.startup("state");
        } catch (e) {
          if (!(e instanceof TpmResponseError) || e.base === TPM_RC.INITIALIZE) throw e;
          if (!options.startupClear) {
            throw new TpmStateError(
              `the TPM in ${state} refused Startup(STATE) (${e.rcName}): its last run did not end with Shutdown(STATE), so PCRs cannot be resumed; nothing was changed. Run again with --startup-clear to start it with Startup(CLEAR) (PCRs reset, NV kept)`,
              { cause: e },
            );
          }
          options.err?.write(`tpmkit: Startup(STATE) refused (${e.rcName}); started with Startup(CLEAR) as --startup-clear asks\n`);
          await tpm.startup("clear");
        }
      } else {
        await tpm.startup("clear");
      }
    } catch (e) {
      await chip.close().catch(() => {});
      // no save of this run may outlive it (a refused resume can mark the state dirty)
      await soft!.flush().catch(() => {});
      throw e;
    }
  } else {
    try {
      tpm = await Tpm.open(chip);
    } catch (e) {
      await chip.close().catch(() => {});
      throw e;
    }
  }
  return {
    tpm,
    ...(soft ? { softTpm: soft } : {}),
    emulated: board !== undefined,
    locality: options.locality,
    description,
    async finish() {
      if (state) {
        // Orderly shutdown so the next run resumes; a TPM a client left un-started (serve) answers
        // TPM_RC_INITIALIZE and just flushes.
        await tpm.shutdown("state").catch((e) => {
          if (!(e instanceof TpmResponseError)) throw e;
        });
        await soft!.flush();
      }
      await tpm.close();
    },
    async abandon() {
      await tpm.close();
      if (state) await soft!.flush().catch(() => {});
    },
  };
}
