/**
 * Boards: what a TCTI string builds when it names a whole emulated stack rather than a host
 * transport. A board wires a backend (SoftTpm), a device model (TisDevice, CrbDevice) and the
 * driver that talks to it (tis, crb), the way a platform's firmware and kernel wire a TPM; the
 * drivers and device models never know each other, only this composition root does.
 *
 * @packageDocumentation
 */
import type { Transport } from "../core/transport.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { FileStorage } from "../node/file-storage.js";
import { TisDevice } from "../devices/tis/device.js";
import { CrbDevice } from "../devices/crb/device.js";
import { memory } from "../transports/memory/index.js";
import { tis } from "../transports/tis/tis.js";
import { crb } from "../transports/crb/crb.js";
import { mmioStart } from "../transports/crb/start-mmio.js";
import { ffaStart } from "../transports/crb/start-ffa.js";
import { FfaBus } from "../devices/ffa/bus.js";
import { TpmServicePartition, type TpmServiceVariant } from "../devices/ffa/partition.js";
import { TpmArgumentError } from "../errors/index.js";
import type { TctiConfig } from "./tcti-parse.js";

/** A built board: the transport a chip opens, what it is, and the SoftTpm at its bottom. */
export interface Board {
  /** The driver end of the stack: what `Tpm.open` / `new Chip` takes. */
  readonly transport: Transport;
  /** One line saying what the stack is, for CLIs and logs. */
  readonly description: string;
  /** The SoftTpm the stack runs on (to flush its state, or to serve it). */
  readonly softTpm: SoftTpm;
  /** The state file, when the SoftTpm keeps its state in one (`softtpm:state=FILE`). */
  readonly stateFile?: string;
}

/** A named way to build a {@link Board} from a TCTI configuration. */
export interface BoardDefinition {
  /** The TCTI name that builds it. */
  readonly name: string;
  /** Builds a fresh board. */
  build(config: TctiConfig): Board;
}

function softTpmOf(config: TctiConfig): { softTpm: SoftTpm; stateFile?: string } {
  if (config.state === undefined) return { softTpm: new SoftTpm() };
  const stateFile = String(config.state);
  return { softTpm: new SoftTpm({ storage: new FileStorage(stateFile) }), stateFile };
}

/**
 * The boards tpmkit has, by TCTI name:
 * - `memory`: a fresh SoftTpm behind the memory transport;
 * - `softtpm[:state=FILE]`: the same, its state kept in FILE (FileStorage);
 * - `tis[:state=FILE]`: SoftTpm behind the TIS register model, driven by the tis driver;
 * - `crb[:state=FILE]`: SoftTpm behind the CRB register model, driven by the crb driver with the MMIO start method;
 * - `crb-ffa[:state=FILE,variant=mu|ts|stmm]`: CRB over Arm FF-A (ACPI TPM2 start method 15):
 *   SoftTpm → `CrbDevice({ localities: 5, trigger: "doorbell" })` → `TpmServicePartition` (Arm
 *   DEN0138, as the `variant` implements it; default `mu`) → `FfaBus` → the crb driver with
 *   `ffaStart`, as Linux's tpm_crb + tpm_crb_ffa drive it. `variant=ts` runs the pre-6.18 client
 *   sequence (`hasIdle: false`): Arm Trusted Services ignores CTRL_REQ, so a Linux ≥ 6.18 client's
 *   cmdReady through START fails there (see {@link crbFfaBoard}).
 */
export const BOARDS: Readonly<Record<string, BoardDefinition>> = {
  memory: {
    name: "memory",
    build: () => {
      const softTpm = new SoftTpm();
      return { transport: memory({ backend: softTpm }), softTpm, description: "SoftTpm, embedded (Tpm → Chip → memory transport → SoftTpm)" };
    },
  },
  softtpm: {
    name: "softtpm",
    build: (config) => {
      const { softTpm, stateFile } = softTpmOf(config);
      return {
        transport: memory({ backend: softTpm }),
        softTpm,
        ...(stateFile === undefined ? {} : { stateFile }),
        description: stateFile ? `SoftTpm with state file ${stateFile} (Tpm → Chip → memory transport)` : "SoftTpm, embedded (Tpm → Chip → memory transport → SoftTpm)",
      };
    },
  },
  tis: {
    name: "tis",
    build: (config) => {
      const { softTpm, stateFile } = softTpmOf(config);
      return {
        transport: tis({ mmio: new TisDevice({ backend: softTpm }) }),
        softTpm,
        ...(stateFile === undefined ? {} : { stateFile }),
        description: "SoftTpm behind the TIS register model (Tpm → Chip → tis driver → TisDevice → SoftTpm)",
      };
    },
  },
  crb: {
    name: "crb",
    build: (config) => {
      const { softTpm, stateFile } = softTpmOf(config);
      return {
        transport: crb({ mmio: new CrbDevice({ backend: softTpm }), start: mmioStart() }),
        softTpm,
        ...(stateFile === undefined ? {} : { stateFile }),
        description: "SoftTpm behind the CRB register model (Tpm → Chip → crb driver, MMIO start → CrbDevice → SoftTpm)",
      };
    },
  },
  "crb-ffa": { name: "crb-ffa", build: (config) => crbFfaBoard(config) },
};

/** The TPM service partition variants the `crb-ffa` board takes (`variant=`). */
export const CRB_FFA_VARIANTS: readonly TpmServiceVariant[] = ["mu", "ts", "stmm"];

/**
 * Builds the `crb-ffa` board: CRB over Arm FF-A (ACPI TPM2 start method 15, Arm DEN0138 over
 * FF-A DEN0077A v1.2), the stack a Linux arm64 machine with a TPM service secure partition has:
 * SoftTpm → CrbDevice (five localities, doorbell-triggered) → TpmServicePartition → FfaBus →
 * crb driver with {@link ffaStart}.
 *
 * Variants (`variant=`): `mu` (Microsoft mu_feature_ffa TpmServiceLib, default) and `stmm` (Arm
 * StMM TpmCrbOverFfa) take the Linux ≥ 6.18 sequence (cmdReady/goIdle through START, commit
 * dbfdaeb381a4). `ts` (Arm Trusted Services tpm_crb_provider.c) ignores CTRL_REQ and answers
 * INV_CRB_CTRL_DATA to a START(command) without CTRL_START, so it cannot serve a ≥ 6.18 client:
 * this board drives it with the pre-6.18 sequence (`ffaStart({ hasIdle: false })`). Trusted
 * Services also has no locality 4 (START at locality 4 answers NOTSUP); StMM refuses locality 4
 * (DENIED).
 *
 * @param config - `state` (a FileStorage file for the SoftTpm) and `variant` (`mu`, `ts`, `stmm`)
 * @returns the board
 * @throws TpmArgumentError for an unknown variant
 *
 * @example
 * ```ts
 * const board = crbFfaBoard({ variant: "stmm" });
 * await using tpm = await Tpm.open(board.transport);
 * await tpm.getRandom(8);
 * ```
 */
export function crbFfaBoard(config: TctiConfig): Board {
  const variant = config.variant === undefined ? "mu" : String(config.variant);
  if (!(CRB_FFA_VARIANTS as readonly string[]).includes(variant)) {
    throw new TpmArgumentError(`crb-ffa: variant must be one of ${CRB_FFA_VARIANTS.join(", ")}, got "${variant}"`);
  }
  const { softTpm, stateFile } = softTpmOf(config);
  const device = new CrbDevice({ backend: softTpm, localities: 5, trigger: "doorbell" });
  const partition = new TpmServicePartition({ device, variant: variant as TpmServiceVariant });
  const bus = new FfaBus();
  bus.addPartition(partition);
  // Trusted Services ignores CTRL_REQ: only the pre-6.18 sequence (no cmdReady/goIdle) works there
  const start = ffaStart({ bus, ...(variant === "ts" ? { hasIdle: false } : {}) });
  const who = { mu: "mu", ts: "Trusted Services, pre-6.18 client sequence", stmm: "Arm StMM" }[variant as TpmServiceVariant];
  return {
    transport: crb({ mmio: device, start }),
    softTpm,
    ...(stateFile === undefined ? {} : { stateFile }),
    description: `SoftTpm behind CRB over Arm FF-A (Tpm → Chip → crb driver, FF-A start → FfaBus → TPM service partition (${who}) → CrbDevice → SoftTpm)`,
  };
}

/** The board a TCTI name builds, or undefined when the name is a host transport (or unknown). */
export function boardFor(name: string): BoardDefinition | undefined {
  return Object.prototype.hasOwnProperty.call(BOARDS, name) ? BOARDS[name] : undefined;
}
