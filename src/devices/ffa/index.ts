/**
 * FF-A device side: the framework model ({@link FfaBus}) and the DEN0138 TPM service partition
 * ({@link TpmServicePartition}) over a CRB device.
 *
 * @packageDocumentation
 */
export { FfaBus, FFA_BUS_CHANNEL, FFA_BUS_SPMC_ID, FFA_BUS_MAX_RXTX_PAGES, type FfaBusOptions, type FfaBusEvent } from "./bus.js";
export {
  TpmServicePartition,
  TPM_SERVICE_FEATURE_NOTIFICATIONS,
  type TpmServicePartitionOptions,
  type TpmServicePartitionFaults,
  type TpmServicePartitionState,
  type TpmServiceCommandState,
  type TpmServiceVariant,
  type TpmServiceCrbDevice,
} from "./partition.js";
