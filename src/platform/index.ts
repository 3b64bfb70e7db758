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
export { BOARDS, boardFor, type Board, type BoardDefinition } from "./boards.js";
