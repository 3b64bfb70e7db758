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
import { TpmArgumentError, TpmStateFileError } from "../errors/index.js";
import type { TctiConfig } from "./tcti-parse.js";
import type { RpmbTarget } from "../bus/tee/rpmb.js";
import type { TeeClientKind } from "../bus/tee/client.js";
import { OpTee } from "../devices/optee/optee.js";
import { Supplicant } from "../devices/optee/supplicant.js";
import { RpmbDevice, type RpmbDeviceState } from "../devices/optee/rpmb-device.js";
import { deriveRpmbKey } from "../devices/optee/rpmb-key.js";
import { ReeFs } from "../node/ree-fs.js";
import { ftpmTee, type FtpmTeeTransport } from "../transports/ftpm-tee/ftpm-tee.js";
import { ftpmTa } from "./ftpm.js";

/** A built board: the transport a chip opens, what it is, and the SoftTpm at its bottom. */
export interface Board {
  /** The driver end of the stack: what `Tpm.open` / `new Chip` takes. */
  readonly transport: Transport;
  /** One line saying what the stack is, for CLIs and logs. */
  readonly description: string;
  /**
   * The SoftTpm the stack runs on (to flush its state, or to serve it). Absent where the SoftTpm
   * lives inside a trusted application and is created by the TEE (`ftpm`).
   */
  readonly softTpm?: SoftTpm;
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
 * - `ftpm[:ta=early|ree,storage=ree|rpmb,state=DIR,client=kernel|user]`: the firmware TPM in an
 *   OP-TEE-like TEE: SoftTpm inside the fTPM trusted application → `OpTee` (+ a started
 *   tee-supplicant) → the `ftpmTee` driver, as Linux's tpm_ftpm_tee reaches it (see {@link ftpmBoard}).
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
  ftpm: { name: "ftpm", build: (config) => ftpmBoard(config) },
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

/** The keys the `ftpm` board takes (`ftpm:ta=ree,storage=rpmb,state=DIR,client=user`). */
export const FTPM_BOARD_KEYS: readonly string[] = Object.freeze(["ta", "storage", "state", "client"]);

/** The eMMC CID of the `ftpm` board's RPMB partition (a fixed, made-up Micron-like CID). */
const FTPM_BOARD_CID = /* @__PURE__ */ Uint8Array.from([0x13, 0x01, 0x4e, 0x52, 0x31, 0x4a, 0x35, 0x36, 0x41, 0x10, 0x12, 0x34, 0x56, 0x78, 0x9a, 0x00]);
/** The file (under `state=DIR`) that keeps the RPMB partition between runs: magic, key, counter, blocks. */
const RPMB_IMAGE_FILE = "rpmb.img";
const RPMB_IMAGE_MAGIC = "TPKRPMB1";

/** A built `ftpm` board: the {@link Board} plus the TEE pieces, for tests and tools. */
export interface FtpmBoard extends Board {
  /** The ftpmTee transport (opening it starts the supplicant first; closing it stops the supplicant last). */
  readonly transport: FtpmTeeTransport;
  /** The TEE. */
  readonly tee: OpTee;
  /** tee-supplicant, bound to {@link FtpmBoard.tee}; started by the transport's `open`. */
  readonly supplicant: Supplicant;
  /** Whether the fTPM TA is an early TA (`ta=early`) or loaded by the supplicant (`ta=ree`). */
  readonly early: boolean;
  /** The TA's secure storage: REE FS through the supplicant, or RPMB FS (legacy routing, through the supplicant). */
  readonly storage: "ree" | "rpmb";
  /** The directory of `state=DIR`, if any (REE FS under `DIR/tee`, the RPMB partition in `DIR/rpmb.img`). */
  readonly stateDir?: string;
}

function pick<T extends string>(config: TctiConfig, key: string, allowed: readonly T[], dflt: T): T {
  const v = config[key] === undefined ? dflt : String(config[key]);
  if (!(allowed as readonly string[]).includes(v)) throw new TpmArgumentError(`ftpm: ${key} must be one of ${allowed.join(", ")}, got "${v}"`);
  return v as T;
}

function encodeRpmbImage(s: RpmbDeviceState): Uint8Array {
  const out = new Uint8Array(8 + 1 + 32 + 4 + s.blocks.length);
  out.set(new TextEncoder().encode(RPMB_IMAGE_MAGIC), 0);
  if (s.key) {
    out[8] = 1;
    out.set(s.key, 9);
  }
  new DataView(out.buffer).setUint32(41, s.writeCounter >>> 0, true);
  out.set(s.blocks, 45);
  return out;
}

function decodeRpmbImage(b: Uint8Array, blocks: number, file: string): RpmbDeviceState {
  const magic = new TextDecoder().decode(b.subarray(0, 8));
  if (b.length !== 45 + blocks || magic !== RPMB_IMAGE_MAGIC || b[8]! > 1) {
    throw new TpmStateFileError(`ftpm: ${file} is not an RPMB image of this board (${b.length} bytes, expected ${45 + blocks} starting "${RPMB_IMAGE_MAGIC}")`);
  }
  return { key: b[8] === 1 ? b.slice(9, 41) : undefined, writeCounter: new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(41, true), blocks: b.slice(45) };
}

/**
 * Builds the `ftpm` board: a firmware TPM in an OP-TEE-like TEE, reached the way Linux's
 * tpm_ftpm_tee reaches it (drivers/char/tpm/tpm_ftpm_tee.c): SoftTpm inside the fTPM trusted
 * application (optee_ftpm, UUID bc50d971-d4c9-42c4-82cb-343fb7f37896) → {@link OpTee} with
 * tee-supplicant ({@link Supplicant}) → {@link ftpmTee}.
 *
 * - `ta=early` (default): the TA is linked into the TEE image (CFG_EARLY_TA); `ta=ree`: it is the
 *   supplicant's `<uuid>.ta` (LOAD_TA).
 * - `storage=ree` (default): the TA's NV on REE FS through the supplicant; `storage=rpmb`: on RPMB
 *   FS over an eMMC RPMB partition whose key was programmed from the HUK and the CID at the
 *   factory (optee_os core/tee/tee_rpmb_fs.c key derivation), frames through the supplicant.
 * - `state=DIR`: the supplicant's REE FS is `ReeFs(DIR/tee)` and the RPMB partition is kept in
 *   `DIR/rpmb.img` (loaded at open, written at close), so the fTPM's NV (and with it its seeds,
 *   NV indices and persistent objects) carries over between runs; without it everything is in
 *   memory. As on a board that reboots, each open is a new boot: the TA runs Startup(CLEAR)
 *   unless the TPM was shut down with Shutdown(STATE).
 * - `client=kernel` (default, the in-kernel driver: never waits for the supplicant) or `user`.
 *
 * The transport's `open` starts the supplicant and then opens the session (as a module loaded
 * after tee-supplicant: the working order); its `close` closes the session and then stops the
 * supplicant (the `ExecStop=modprobe -r tpm_ftpm_tee` order of optee_client's
 * tee-supplicant@.service).
 *
 * @param config - `ta`, `storage`, `state`, `client`
 * @returns the board
 * @throws TpmArgumentError for an unknown key or value
 *
 * @example
 * ```ts
 * const board = ftpmBoard({ ta: "ree", storage: "rpmb" });
 * await using tpm = await Tpm.open(board.transport);
 * await tpm.getRandom(8);
 * ```
 */
export function ftpmBoard(config: TctiConfig = {}): FtpmBoard {
  for (const k of Object.keys(config)) {
    if (!FTPM_BOARD_KEYS.includes(k)) throw new TpmArgumentError(`ftpm does not take "${k}" (it takes ${FTPM_BOARD_KEYS.join(", ")})`);
  }
  const early = pick(config, "ta", ["early", "ree"] as const, "early") === "early";
  const storage = pick(config, "storage", ["ree", "rpmb"] as const, "ree");
  const client = pick<TeeClientKind>(config, "client", ["kernel", "user"], "kernel");
  const stateDir = config.state === undefined ? undefined : String(config.state).replace(/\/+$/, "") || "/";
  const reeFs = new ReeFs(stateDir === undefined ? undefined : `${stateDir}/tee`);
  const image = stateDir === undefined ? undefined : new ReeFs(stateDir);
  const supplicant = new Supplicant({ storage: reeFs });

  // The RPMB partition: a factory-programmed device, replaced at open by the saved one, if any.
  let rpmbDevice: RpmbDevice | undefined;
  let rpmb: RpmbTarget | undefined;
  if (storage === "rpmb") {
    rpmbDevice = new RpmbDevice({ cid: FTPM_BOARD_CID });
    rpmbDevice.programKey(deriveRpmbKey(new Uint8Array(16), FTPM_BOARD_CID)); // the HUK is OpTee's default (16 zero bytes)
    rpmb = {
      cid: FTPM_BOARD_CID,
      transfer: (frames, responseFrames) => rpmbDevice!.transfer(frames, responseFrames),
    };
  }
  const tee = new OpTee({
    tas: [ftpmTa({ early, storage })],
    supplicant,
    channel: false,
    ...(rpmb ? { rpmb, rpmbFs: true, reeFs: false } : {}),
  });
  const inner = ftpmTee({ tee, client });
  let loaded = false;
  const transport: FtpmTeeTransport = {
    kind: inner.kind,
    tee: inner.tee,
    client: inner.client,
    maxCommandSize: inner.maxCommandSize,
    async open(ctx) {
      if (image && rpmbDevice && !loaded) {
        const saved = await image.read(RPMB_IMAGE_FILE);
        if (saved) rpmbDevice = new RpmbDevice({ cid: FTPM_BOARD_CID, state: decodeRpmbImage(saved, rpmbDevice.blockCount * 256, `${stateDir}/${RPMB_IMAGE_FILE}`) });
        loaded = true;
      }
      await supplicant.start();
      await inner.open(ctx);
    },
    async close() {
      try {
        await inner.close();
      } finally {
        await supplicant.stop();
        if (image && rpmbDevice && loaded) await image.write(RPMB_IMAGE_FILE, encodeRpmbImage(rpmbDevice.snapshot()));
      }
    },
    send: (command, options) => inner.send(command, options),
    presence: () => inner.presence(),
    onPresence: (fn) => inner.onPresence(fn),
    state: () => inner.state(),
  };
  const where = stateDir === undefined ? "in memory" : `in ${stateDir}`;
  return {
    transport,
    tee,
    supplicant,
    early,
    storage,
    ...(stateDir === undefined ? {} : { stateDir }),
    description: `SoftTpm in the fTPM TA (${early ? "early TA" : "REE-loaded TA"}, NV on ${storage === "ree" ? "REE FS" : "RPMB"} ${where}) (Tpm → Chip → ftpmTee, ${client} client → OpTee + tee-supplicant → fTPM TA → SoftTpm)`,
  };
}

/** The board a TCTI name builds, or undefined when the name is a host transport (or unknown). */
export function boardFor(name: string): BoardDefinition | undefined {
  return Object.prototype.hasOwnProperty.call(BOARDS, name) ? BOARDS[name] : undefined;
}
