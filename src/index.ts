/**
 * tpmkit: TPM 2.0 for Node and TypeScript. One {@link Tpm} interface over pluggable transports —
 * the embedded {@link SoftTpm}, register-level TIS and CRB device models, swtpm sockets — with
 * device models that reproduce real platform failures for tests.
 *
 * @example
 * ```ts
 * import { Tpm, SoftTpm, memory } from "tpmkit";
 * await using tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
 * console.log(await tpm.getRandom(16));
 * ```
 *
 * @packageDocumentation
 */

// The typed client
export {
  Tpm,
  type TpmOpenOptions,
  type CallOptions,
  type AuthCallOptions,
  type PcrValues,
  type PcrDigests,
  type TpmInfo,
  type NvDefineOptions,
  type NvAuthOptions,
} from "./client/tpm.js";

// Core: chip, transports contract, clock, errors
export { Chip, checkResponse, CHIP_WAIT_READY_MS, CHIP_COMMAND_CHANNEL, CHIP_READINESS_CHANNEL, type ChipOptions, type TransmitOptions, type Readiness, type ChipCommandEvent, type ChipReadinessEvent } from "./core/chip.js";
export type { Transport, TpmBackend, SendOptions, OpenContext, TransportPresence, MaybePromise } from "./core/transport.js";
export { systemClock, FakeClock, type Clock, type TimerHandle } from "./core/clock.js";
export {
  TpmkitError,
  TpmFormatError,
  TpmArgumentError,
  TpmTimeoutError,
  TpmTransportError,
  TpmNotFoundError,
  ProbeDeferredError,
  TpmStateError,
  TpmUnavailableError,
  TpmStateFileError,
  TpmAbortError,
  TeeError,
  FfaError,
  type TpmkitErrorOptions,
} from "./errors/index.js";
export { chipBackend, type ChipBackendOptions } from "./core/bridge.js";
export { commandDuration, COMMAND_DURATIONS_MS, DEFAULT_DURATION_MS, TIMEOUTS_TPM2, TIMEOUTS_PROBE, type InterfaceTimeouts } from "./core/durations.js";

// Wire format
export { TpmResponseError, decodeRc, formatRc, commandName, RC_LAYER, type DecodedRc } from "./wire/rc.js";
export { TPM_ST, TPM_SU, TPM_CC, TPM_ALG, TPM_CAP, TPM_PT, TPM_HT, TPM_NT, TPMA_NV, TPM_RH, TPM_RS, TPM_RC } from "./wire/constants.js";
export { TpmReader, TpmWriter, toHex, fromHex, readHeader, HEADER_SIZE, type TpmHeader } from "./wire/buffer.js";
export { buildCommand, parseResponse, type CommandSpec, type PasswordAuth } from "./wire/command.js";
export { HASH_ALGS, HIERARCHIES, hashId, hashName, type HashAlgName, type Hierarchy, type PcrSelection, type PcrSelect } from "./wire/types.js";
export type { CapabilityData, NvPublic, TimeInfo, HashResult, HashCheckTicket, TaggedDigest } from "./wire/commands.js";

// The embedded TPM
export { SoftTpm, type SoftTpmOptions, type SoftTpmPowerState, type Storage, MemoryStorage, FileStorage, SeededRandom, SystemRandom, type RandomSource } from "./softtpm/index.js";
export { MemoryFileStore, type FileStore } from "./core/storage.js";

// Transports
export { MEMORY_YIELD_SLICE_MS, memory, type MemoryTransport, type MemoryTransportOptions } from "./transports/memory/index.js";
export { tis, TIS_DRIVER_CHANNEL, TIS_PROBE_TIMEOUTS, TIS_TPM2_TIMEOUTS, type TisOptions, type TisTransport, type TisInfo, type TisTimeouts, type TisDriverEvent } from "./transports/tis/index.js";
export {
  crb,
  mmioStart,
  smcStart,
  ffaStart,
  type FfaStartOptions,
  type FfaStartMethod,
  type FfaPartitionInfo,
  type FfaStartStats,
  type CrbOptions,
  type CrbTransport,
  type CrbInfo,
  type CrbBuffers,
  type CrbInterfaceId,
  type CrbTimeouts,
  type CrbStartMethod,
  type CrbStartContext,
  type CrbProbeContext,
  type CrbStartQualifier,
  type CrbStartEvent,
  type MmioStartOptions,
  type SmcStartOptions,
  type SmcRequest,
} from "./transports/crb/index.js";
// The FF-A conduit contract `ffaStart` calls
export type { FfaConduit, FfaRegs } from "./bus/ffa/conduit.js";
export type { FfaRxTxHost } from "./bus/ffa/memory.js";
export {
  swtpm,
  SwtpmControl,
  SwtpmControlError,
  type SwtpmTransport,
  type SwtpmTransportOptions,
  type SwtpmControlOptions,
  type SwtpmControlCallOptions,
  type SwtpmCapabilities,
  type SwtpmConfig,
  type SwtpmStateBlob,
  type SwtpmBufferSize,
  type SwtpmEndpoint,
  type SwtpmTcpEndpoint,
  type SwtpmUnixEndpoint,
} from "./transports/swtpm/index.js";

// Device models and the register bus
export { TisDevice, TIS_DEVICE_CHANNEL, type TisDeviceOptions, type TisDeviceFaults, type TisDeviceState, type TisDeviceEvent, type TisEvent, type TisLocalitySnapshot, type TisLocalityState, type TisPower } from "./devices/tis/index.js";
export { CrbDevice, CRB_DEVICE_CHANNEL, CRB_QEMU_ADDRESS, type CrbDeviceOptions, type CrbDeviceFaults, type CrbDeviceState, type CrbDeviceEvent, type CrbEvent, type CrbDoorbellStatus } from "./devices/crb/index.js";
export type { FfaPartition, FfaPartitionReply, FfaDirectMessage, FfaPartitionHost } from "./bus/ffa/partition.js";
export { FfaBus, FFA_BUS_CHANNEL, FFA_BUS_SPMC_ID, FFA_BUS_MAX_RXTX_PAGES, TpmServicePartition, TPM_SERVICE_FEATURE_NOTIFICATIONS, type FfaBusOptions, type FfaBusEvent, type TpmServicePartitionOptions, type TpmServicePartitionFaults, type TpmServicePartitionState, type TpmServiceCommandState, type TpmServiceVariant, type TpmServiceCrbDevice } from "./devices/ffa/index.js";
export type { DeviceModel, DevicePhase, DevicePhaseEvent, DeviceState, DeviceEvent, DeviceEventSource } from "./devices/lifecycle.js";
export {
  traceMmio,
  countMmio,
  faultyMmio,
  formatAccess,
  MMIO_TRACE_CHANNEL,
  type MmioTraceMessage,
  type TraceMmioOptions,
  type Mmio,
  type InterruptLine,
  type InterruptEvent,
  type TracedMmio,
  type CountedMmio,
  type MmioCounts,
  type FaultyMmio,
  type FaultyMmioOptions,
  type MmioFault,
  type MmioFaultEffect,
  type MmioFaultSelector,
  type MmioAccess,
  type MmioOp,
} from "./bus/index.js";

// Test doubles and measurement helpers (also at `tpmkit/testing`)
export {
  FakeTpmBackend,
  FakeTpmDevice,
  type FakeTpmBackendOptions,
  type FakeTpmBackendMode,
  type FakeTpmAnswers,
  type FakeTpmRandom,
  type FakeTpmCall,
  type FakeTpmDeviceOptions,
  type FakeDeviceFaults,
} from "./testing/index.js";

// Servers
export { serveSwtpm, type SwtpmServer, type SwtpmServeOptions, type SwtpmServeTarget, type SwtpmServerState, type SwtpmPowerHooks, type SwtpmServerStats, type SwtpmClosed } from "./server/swtpm.js";
export type { CommandSink, ListenTarget, BoundAddress } from "./server/common.js";
export { serveMssim, type MssimServer, type ServeMssimOptions, type ServeMssimTarget, type MssimPlatformHooks } from "./server/mssim.js";
export { ResourceManager, TPM_RC_RESMGR_LAYER, RM_DEFAULT_MAX_OBJECTS, RM_DEFAULT_MAX_SESSIONS, type RmSpace, type ResourceManagerOptions } from "./server/rm.js";

// Host transports and TCTI strings
export { mssim, MssimPlatform, MssimSwtpmDetectedError, type MssimOptions, type MssimTransport, type MssimPlatformOptions, type MssimCommandResponseSizes, type SocketAddress } from "./transports/mssim/index.js";
export { linuxDevice, type LinuxDeviceOptions, type LinuxDeviceTransport, type DeviceFs, type DeviceFile, type DeviceFileKind } from "./transports/linux-device/index.js";
export { parseTcti, formatTcti, defineTcti, TctiDiscoveryError, DEFAULT_DISCOVERY, type TctiAttempt, type TctiSpec, type TctiConfig, type TctiRegistry, type TctiFactory, type OpenTransportOptions } from "./platform/index.js";
export { openTransport, tctiRegistry, BOARDS, boardFor, crbFfaBoard, CRB_FFA_VARIANTS, type Board, type BoardDefinition } from "./platform/index.js";

// The platform probe model: initcall levels, buses, drivers, devices, deferred probe, chips, timeline
export {
  Platform,
  INITCALL_LEVELS,
  DEFERRED_PROBE_INITCALL,
  DEFAULT_CHIP_WAIT_MS,
  DEFAULT_BOOT_TIMEOUT_MS,
  type InitcallLevel,
  type TimelineKind,
  type TimelineEntry,
  type PlatformOptions,
  type PlatformContext,
  type InitcallFn,
  type InitcallOptions,
  type BusMatch,
  type BusRef,
  type PlatformBus,
  type DriverSpec,
  type PlatformDriver,
  type DeviceSpec,
  type PlatformDeviceState,
  type PlatformDevice,
  type WaitForChipOptions,
  type BootOptions,
  type BootReport,
} from "./platform/index.js";

// The IMA boot model and the timeline as a picture and a table
export {
  imaBootAggregate,
  initIma,
  chooseImaBank,
  allocatedBanks,
  imaNgFields,
  imaTemplateDigest,
  IMA_BOOT_AGGREGATE_NAME,
  IMA_BOOT_AGGREGATE_LATE_NAME,
  IMA_MEASURE_PCR,
  IMA_BYPASS_LOG,
  IMA_NO_SUITABLE_BANK_LOG,
  IMA_PCR_READ_ERROR_LOG,
  type ImaBank,
  type ImaChip,
  type ImaBootAggregate,
  type ImaBootAggregateOptions,
  type InitImaOptions,
  type ImaResult,
  timelineSvg,
  xmlEscape,
  type TimelineSvgOptions,
  timelineTable,
  cellText,
  type TimelineTableOptions,
} from "./platform/index.js";

// The Linux arm64 FF-A TPM boot (the CRB-over-FF-A / IMA boot race), reproduced
export {
  linuxFfaBoot,
  LINUX_FFA_LINK_ORDER,
  LINUX_FFA_BOOT_FIXES,
  LINUX_FFA_NAMES,
  DEFAULT_IMA_WAIT_MS,
  type LinuxFfaInitcall,
  type LinuxFfaBootFix,
  type LinuxFfaBootOptions,
  type LinuxFfaBoot,
} from "./platform/index.js";

// The firmware TPM in an OP-TEE-like TEE: the GP client model and OP-TEE's numbers (bus/tee), the
// TEE, its supplicant and secure storage (devices/optee), the fTPM TA and the ftpmTee transport
export {
  TEE_RESULT,
  TEE_ORIGIN,
  TEE_PARAM_TYPE,
  TEE_LOGIN,
  TEE_MEM,
  TEE_STORAGE,
  TA_FLAG,
  OPTEE_MSG_CMD,
  OPTEE_SMC,
  OPTEE_SMC_RETURN,
  OPTEE_SMC_SEC_CAP,
  OPTEE_HYP_CLIENT_ID,
  OPTEE_RPC_CMD,
  PTA_DEVICE_UUID,
  HUK_LENGTH,
  FTPM_TA_UUID,
  FTPM_TA_CMD,
  FTPM_MAX_BUFFER,
  teeResultName,
  teeOriginName,
  teeParamTypes,
  teeParamTypeGet,
  rpcServedByKernel,
  TaPanicError,
  RPMB_FRAME_SIZE,
  RPMB_DATA_SIZE,
  RPMB_KEY_SIZE,
  RPMB_NONCE_SIZE,
  RPMB_CID_SIZE,
  RPMB_SIZE_MULT_BYTES,
  RPMB_FRAME_OFFSET,
  RPMB_REQUEST,
  RPMB_RESPONSE,
  RPMB_RESULT,
  encodeRpmbFrame,
  decodeRpmbFrame,
  splitRpmbFrames,
  joinRpmbFrames,
  rpmbMac,
  type RpmbFrame,
  type RpmbTarget,
  type TeeClientKind,
  type TeeSharedMemory,
  type TeeParam,
  type TeeOperation,
  type TeeOpenSessionOptions,
  type TeeInvokeOptions,
  type TeeSession,
  type TeeContext,
  type TeeDeviceStatus,
  type TeeDevice,
  type TaDefinition,
  type TaParam,
  type TaSession,
  type TrustedApplication,
  type TaStorage,
  type TaEnvironment,
  type TeeFsOp,
  type TeeRpcRequest,
  type TeeRpcReply,
  type TeeRpcServer,
  type TeeSupplicantPort,
  type TeeSupplicantDaemon,
} from "./bus/tee/index.js";
export {
  OpTee,
  OPTEE_DEVICE_CHANNEL,
  OPTEE_TEST_HUK,
  OPTEE_DEFAULT_THREADS,
  OPTEE_MSG_UID,
  createReeFsBackend,
  reeFsFileName,
  REE_FS_OBJECT_ID_MAX,
  Supplicant,
  SUPPLICANT_TRACE_CHANNEL,
  RpmbDevice,
  deriveRpmbKey,
  hukSubkeyDerive,
  HUK_SUBKEY,
  RPMB_TEST_KEY,
  RPMB_CID_PRV_OFFSET,
  RPMB_CID_CRC_OFFSET,
  createRpmbFs,
  rpmbTestKeyRetrieve,
  createFtpmTa,
  ftpmNvObjectId,
  FTPM_NV_BLOCK_SIZE,
  FTPM_NV_OBJECT_BASE,
  FTPM_CC_EMULATE_PPI,
  FTPM_PPI_CMD,
  FTPM_PPI_VERSION,
  type OpTeeOptions,
  type OpTeePartition,
  type OpTeeEvent,
  type OpTeeTraceEvent,
  type ReeFsBackendOptions,
  type SecureStorageBackend,
  type SecureStorageContext,
  type SupplicantOptions,
  type SupplicantFaults,
  type SupplicantState,
  type SupplicantEvent,
  type SupplicantStateEvent,
  type SupplicantRequestEvent,
  type RpmbDeviceOptions,
  type RpmbDeviceFaults,
  type RpmbDeviceState,
  type RpmbFs,
  type RpmbFsOptions,
  type FtpmEngine,
  type FtpmTaOptions,
} from "./devices/optee/index.js";
export { TeeMediator, TeeGuest, TEE_MEDIATOR_CHANNEL, TEE_MEDIATOR_LIMITS, TEE_MEDIATOR_PAGE_SIZE, OPTEE_MSG_ATTR, type TeeMediatorOptions, type TeeGuestOptions, type TeeMediatorTarget, type TeeMediatorEvent, type TeeMediatorMessage, type TeeMediatorMessageParam, type TeeMediatorCallResult } from "./devices/optee/index.js";
export { ReeFs, REE_FS_FILE_MAX, REE_FS_NAME_MAX } from "./node/ree-fs.js";
export { ftpmTa, type FtpmTaConfig } from "./platform/ftpm.js";
export { ftpmTee, FTPM_SHM_SIZE, FTPM_TEE_CLOSE_TIMEOUT_MS, FTPM_TEE_OPEN_TIMEOUT_MS, type FtpmTeeOptions, type FtpmTeeTransport, type FtpmTeeState } from "./transports/ftpm-tee/index.js";

// Attestation helpers that need no TPM: the TCG PC Client event log and offline policy digests
export { EV, eventTypeName, parseEventLog, replayEventLog, SPEC_ID_EVENT03_SIGNATURE, STARTUP_LOCALITY_SIGNATURE, type EventLog, type LogEvent, type EventDigest, type EventLogAlgorithm, type SpecIdEvent, type EventLogPcrValues, type EventLogReplay, type ReplayedPcr, type PcrMismatch } from "./wire/eventlog.js";
export { PolicyDigest, policy, policyOr, pcrDigest, policyAuthorizeAHash, TPM_EO, type PolicyHashAlg, type PolicyPcrValues } from "./client/policy.js";

// fTPM board (-T ftpm) and the fTPM / tee-supplicant boot scenarios
export { ftpmBoard, FTPM_BOARD_KEYS, type FtpmBoard } from "./platform/boards.js";
export { ftpmSupplicantBoot, FTPM_BOOT_VARIANTS, FTPM_BOOT_FIXES, FTPM_BOOT_CODES, FTPM_DEVICE_TIMEOUT_MS, type FtpmBootScenario, type FtpmBootVariant, type FtpmBootOptions, type FtpmBoot } from "./platform/ftpm-boot.js";

// Keys, crypto and attestation through the typed API (issue 12): templates, public keys for node:crypto / WebCrypto, the quote verifier
export { type CreateOptions, type CreationResult, type CreatePrimaryResult, type CreateResult, type LoadedObject, type CreateLoadedResult, type EccPoint, type SchemeOption, type RsaSchemeOption, type AttestResult } from "./client/tpm.js";
export { rsaStorageTemplate, eccStorageTemplate, rsaSigningTemplate, eccSigningTemplate, hmacKeyTemplate, sealedDataTemplate, ekRsa2048Template, ekEccP256Template, srkRsa2048Template, srkEccP256Template, publicKeyToCrypto, publicKeyJwk, AES_128_CFB, EK_POLICY_SHA256, type EccCurveName, type RsaKeyBits, type TemplateOptions, type SigningTemplateOptions, type CryptoPublicKey } from "./client/templates.js";
// Sessions in the typed API (issue 12): HMAC, policy and trial sessions, bound and salted, parameter encryption
export { AuthSession, TpmSessionError, type StartAuthSessionOptions, type SessionType, type SessionAttributes, type SessionAuthorization, type SessionHost } from "./client/session.js";
export { type Authorization, type PolicyAssertionOptions } from "./client/tpm.js";
export { type CommandAuth, type SessionAuth } from "./wire/command.js";
export { verifyQuote, QuoteVerificationError, type QuoteField, type ExpectedPcrs, type VerifyQuoteOptions } from "./client/verify.js";
export type { TpmtPublic, PublicBase, RsaPublic, EccPublic, KeyedHashPublic, SymCipherPublic, SymDef, Scheme, TpmtSensitive, TpmtSignature, Ticket, TpmsContext, CreationData } from "./wire/structures.js";
export { TPM_ST_ATTEST_NV_DIGEST, type TpmsAttest, type Attested, type ClockInfo, type QuoteInfo, type CertifyInfo, type CreationInfo, type NvCertifyInfo, type NvDigestCertifyInfo, type TimeAttestInfo, type CommandAuditInfo, type SessionAuditInfo } from "./wire/attest.js";
