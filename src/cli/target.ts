/**
 * Turns a `-T` string into an open {@link Tpm} for the CLI, and knows how to leave it: a SoftTpm
 * with a state file is shut down with Shutdown(STATE) and started with Startup(STATE) next time, so
 * PCRs and NV carry over between `tpmkit` runs as they do on a TPM that stays powered.
 *
 * @packageDocumentation
 */
import { Tpm } from "../tpm.js";
import { TpmResponseError } from "../tpm/rc.js";
import { TPM_RC } from "../tpm/constants.js";
import { SoftTpm } from "../softtpm/index.js";
import { FileStorage } from "../softtpm/file-storage.js";
import { memory } from "../transports/memory/index.js";
import { UsageError } from "./args.js";
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
  const [name, conf = ""] = splitOnce(tcti, ":");
  if (name === "memory" || name === "softtpm") {
    const state = parseConf(conf).get("state");
    if (name === "memory" && conf) throw new UsageError(`"memory" takes no options (use softtpm:state=FILE)`);
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

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** Parses tpm2-tss style `key=value,key=value`. */
export function parseConf(conf: string): Map<string, string> {
  const m = new Map<string, string>();
  if (!conf) return m;
  for (const part of conf.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError(`bad TCTI option "${part}" (want key=value)`);
    m.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return m;
}
