/**
 * Turns a `-T` string into an open {@link Tpm} for the CLI, and knows how to leave it: a board whose
 * SoftTpm keeps a state file is shut down with Shutdown(STATE) and started with Startup(STATE) next
 * time, so PCRs and NV carry over between `tpmkit` runs as they do on a TPM that stays powered.
 * What a TCTI string builds comes from the one registry in src/platform (boards and host transports).
 *
 * @packageDocumentation
 */
import { Tpm } from "../client/tpm.js";
import { TpmResponseError } from "../wire/rc.js";
import { TPM_RC } from "../wire/constants.js";
import type { SoftTpm } from "../softtpm/index.js";
import { parseTcti } from "../platform/tcti-parse.js";
import { boardFor } from "../platform/boards.js";
import { openTransport } from "../platform/discovery.js";

/** An open TPM plus what to do when the CLI is done with it. */
export interface CliTarget {
  tpm: Tpm;
  /** One line saying what the TPM is. */
  description: string;
  /** The locality commands go out at. */
  locality: number | undefined;
  /** The SoftTpm at the bottom of a board (`memory`, `softtpm`, `tis`, `crb`), for `serve`. */
  softTpm?: SoftTpm;
  /** Orderly end: save state where there is state. */
  finish(): Promise<void>;
  /** End after an error: close without further commands. */
  abandon(): Promise<void>;
}

/** Opens the TPM a TCTI string names. */
export async function openCliTarget(tcti: string, options: { locality?: number } = {}): Promise<CliTarget> {
  const spec = parseTcti(tcti);
  const board = boardFor(spec.name)?.build(spec.config);
  if (!board) {
    const transport = await openTransport(tcti);
    const tpm = await Tpm.open(transport, { locality: options.locality });
    const close = () => tpm.close();
    return { tpm, locality: options.locality, description: `${transport.kind} transport (${tcti})`, finish: close, abandon: close };
  }
  const { softTpm: soft, stateFile: state } = board;
  const chipOpts = { locality: options.locality };
  let tpm: Tpm;
  if (state) {
    tpm = await Tpm.open(board.transport, { ...chipOpts, startup: false });
    try {
      await tpm.startup("state");
    } catch (e) {
      if (!(e instanceof TpmResponseError)) throw e;
      await tpm.startup("clear").catch((e2) => {
        if (!(e2 instanceof TpmResponseError && e2.base === TPM_RC.INITIALIZE)) throw e2;
      });
    }
  } else {
    tpm = await Tpm.open(board.transport, chipOpts);
  }
  return {
    tpm,
    softTpm: soft,
    locality: options.locality,
    description: board.description,
    async finish() {
      if (state) {
        // Orderly shutdown so the next run resumes; a TPM a client left un-started (serve) just flushes.
        await tpm.shutdown("state").catch((e) => {
          if (!(e instanceof TpmResponseError)) throw e;
        });
        await soft.flush();
      }
      await tpm.close();
    },
    async abandon() {
      await tpm.close();
      if (state) await soft.flush().catch(() => {});
    },
  };
}
