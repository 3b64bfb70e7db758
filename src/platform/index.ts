/**
 * The composition root: TCTI strings (`mssim:host=..,port=..`, `device:/dev/tpmrm0`, ...), the one
 * registry of every transport and board, discovery in tpm2-tss's order, and the boards (device
 * model + backend + driver) that `tis`, `crb`, `memory` and `softtpm` build.
 * @packageDocumentation
 */
export { parseTcti, parseKeyValues, formatTcti, defineTcti, type TctiConfig, type TctiSpec, type TctiFactory, type TctiRegistry } from "./tcti-parse.js";
export {
  openTransport,
  configuredTcti,
  DEFAULT_DISCOVERY,
  TCTI_ENV_VARS,
  TctiDiscoveryError,
  type OpenTransportOptions,
  type TctiAttempt,
} from "./discovery.js";
export { tctiRegistry, defaultTctiRegistry, swtpmTcti, mssimTcti, deviceTcti } from "./registry.js";
export { BOARDS, boardFor, crbFfaBoard, CRB_FFA_VARIANTS, ftpmBoard, FTPM_BOARD_KEYS, type Board, type BoardDefinition, type FtpmBoard } from "./boards.js";
export { INITCALL_LEVELS, type InitcallLevel, type TimelineKind, type TimelineEntry } from "./timeline.js";
export {
  Platform,
  DEFERRED_PROBE_INITCALL,
  DEFAULT_CHIP_WAIT_MS,
  DEFAULT_BOOT_TIMEOUT_MS,
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
} from "./platform.js";
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
} from "./ima.js";
export { timelineSvg, xmlEscape, type TimelineSvgOptions } from "./svg.js";
export { timelineTable, cellText, type TimelineTableOptions } from "./table.js";
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
} from "./linux-ffa-boot.js";
export { ftpmSupplicantBoot, FTPM_BOOT_VARIANTS, FTPM_BOOT_FIXES, FTPM_BOOT_CODES, FTPM_DEVICE_TIMEOUT_MS, type FtpmBootScenario, type FtpmBootVariant, type FtpmBootOptions, type FtpmBoot } from "./ftpm-boot.js";
