/**
 * Turns a `-T` string into an open {@link Tpm} for the CLI, and knows how to leave it: a SoftTpm
 * with a state file is shut down with Shutdown(STATE) and started with Startup(STATE) next time, so
 * PCRs and NV carry over between `tpmkit` runs as they do on a TPM that stays powered.
 *
 * @packageDocumentation
 */
import { Tpm } from "../client/tpm.js";
import { TpmResponseError } from "../wire/rc.js";
import { TPM_RC } from "../wire/constants.js";
import { SoftTpm } from "../softtpm/index.js";
import { FileStorage } from "../node/file-storage.js";
import { memory } from "../transports/memory/index.js";
import { parseTcti } from "../platform/tcti-parse.js";
import { openTcti } from "./tcti.js";

/** An open TPM plus what to do when the CLI is done with it. */
export interface CliTarget {
  tpm: Tpm;
  /** One line saying what the TPM is. */
  description: string;
  /** The locality commands go out at. */
  locality: number | undefined;
  /** The SoftTpm behind `memory`/`softtpm` targets (for `serve`). */
  softTpm?: SoftTpm;
  /** Orderly end: save state where there is state. */
  finish(): Promise<void>;
  /** End after an error: close without further commands. */
  abandon(): Promise<void>;
}

/** Opens the TPM a TCTI string names. */
export async function openCliTarget(tcti: string, options: { locality?: number } = {}): Promise<CliTarget> {
  const spec = parseTcti(tcti);
  if (spec.name === "memory" || spec.name === "softtpm") {
    const state = spec.config.state === undefined ? undefined : String(spec.config.state);
    const soft = new SoftTpm(state ? { storage: new FileStorage(state) } : {});
    const chipOpts = { locality: options.locality };
    let tpm: Tpm;
    if (state) {
      tpm = await Tpm.open(memory({ backend: soft }), { ...chipOpts, startup: false });
      try {
        await tpm.startup("state");
      } catch (e) {
        if (!(e instanceof TpmResponseError)) throw e;
        await tpm.startup("clear").catch((e2) => {
          if (!(e2 instanceof TpmResponseError && e2.base === TPM_RC.INITIALIZE)) throw e2;
        });
      }
    } else {
      tpm = await Tpm.open(memory({ backend: soft }), chipOpts);
    }
    return {
      tpm,
      softTpm: soft,
      locality: options.locality,
      description: state ? `SoftTpm with state file ${state} (Tpm → Chip → memory transport)` : "SoftTpm, embedded (Tpm → Chip → memory transport → SoftTpm)",
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
  const opened = await openTcti(tcti, { locality: options.locality });
  return {
    tpm: opened.tpm,
    locality: options.locality,
    description: opened.description,
    finish: () => opened.tpm.close(),
    abandon: () => opened.tpm.close(),
  };
}
