/**
 * OP-TEE device side: the TEE model ({@link OpTee}) with its partitions, and the REE FS
 * secure-storage back end.
 *
 * @packageDocumentation
 */
export {
  OpTee,
  OPTEE_DEVICE_CHANNEL,
  OPTEE_TEST_HUK,
  OPTEE_DEFAULT_THREADS,
  OPTEE_MSG_UID,
  type OpTeeOptions,
  type OpTeePartition,
  type OpTeeEvent,
  type OpTeeTraceEvent,
} from "./optee.js";
export { createReeFsBackend, reeFsFileName, REE_FS_OBJECT_ID_MAX, type ReeFsBackendOptions } from "./ree-fs-backend.js";
export type { SecureStorageBackend, SecureStorageContext } from "./secure-storage.js";
export { Supplicant, SUPPLICANT_TRACE_CHANNEL, type SupplicantOptions, type SupplicantFaults, type SupplicantState, type SupplicantEvent, type SupplicantStateEvent, type SupplicantRequestEvent } from "./supplicant.js";
export { RpmbDevice, type RpmbDeviceOptions, type RpmbDeviceFaults, type RpmbDeviceState } from "./rpmb-device.js";
export { deriveRpmbKey, hukSubkeyDerive, HUK_SUBKEY, RPMB_TEST_KEY, RPMB_CID_PRV_OFFSET, RPMB_CID_CRC_OFFSET } from "./rpmb-key.js";
export { createRpmbFs, rpmbTestKeyRetrieve, type RpmbFs, type RpmbFsOptions } from "./rpmb-fs.js";
export { createFtpmTa, ftpmNvObjectId, FTPM_NV_BLOCK_SIZE, FTPM_NV_OBJECT_BASE, FTPM_CC_EMULATE_PPI, FTPM_PPI_CMD, FTPM_PPI_VERSION, type FtpmEngine, type FtpmTaOptions } from "./ftpm-ta.js";
export { TeeMediator, TeeGuest, TEE_MEDIATOR_CHANNEL, TEE_MEDIATOR_LIMITS, TEE_MEDIATOR_PAGE_SIZE, OPTEE_MSG_ATTR, type TeeMediatorOptions, type TeeGuestOptions, type TeeMediatorTarget, type TeeMediatorEvent, type TeeMediatorMessage, type TeeMediatorMessageParam, type TeeMediatorCallResult } from "./mediator.js";
