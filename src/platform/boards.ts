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
 * - `crb[:state=FILE]`: SoftTpm behind the CRB register model, driven by the crb driver with the MMIO start method.
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
};

/** The board a TCTI name builds, or undefined when the name is a host transport (or unknown). */
export function boardFor(name: string): BoardDefinition | undefined {
  return Object.prototype.hasOwnProperty.call(BOARDS, name) ? BOARDS[name] : undefined;
}
