/**
 * `tpmkit/softtpm`: the embedded TPM 2.0 (SoftTpm), its random sources, state codec and the
 * storages: `MemoryStorage` (defined with the `Storage` contract in the core) and the Node-only
 * `FileStorage`, both re-exported here.
 *
 * @example
 * ```ts
 * import { SoftTpm, FileStorage } from "tpmkit/softtpm";
 * const tpm = new SoftTpm({ storage: new FileStorage("/var/lib/mytpm/state") });
 * await tpm.start();
 * ```
 *
 * @packageDocumentation
 */
export {
  SoftTpm,
  SOFTTPM_MAX_BUFFER,
  SOFTTPM_MAX_COMMAND_SIZE,
  SOFTTPM_MAX_RANDOM,
  type SoftTpmOptions,
  type SoftTpmPowerState,
} from "./softtpm.js";
export { type Storage, MemoryStorage } from "../core/storage.js";
export { FileStorage, STATE_FILE_MAX } from "../node/file-storage.js";
export { type RandomSource, SeededRandom, SystemRandom } from "./random.js";
export {
  decodeState,
  encodeState,
  STATE_MAGIC,
  STATE_VERSION,
  type NvIndexState,
  type OrderlyState,
  type PersistentState,
  type PersistentObjectState,
  type SavedState,
  type HierarchyPolicyState,
  type DaParameters,
  type PendingPcrAllocation,
} from "./state.js";
export {
  COMMAND_ATTRIBUTES as SOFTTPM_COMMAND_ATTRIBUTES,
  PCR_EXTEND_BY_LOCALITY,
  PCR_RESET_BY_LOCALITY,
} from "./tables.js";
