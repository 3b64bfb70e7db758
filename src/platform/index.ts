/**
 * `tcti`: TCTI strings (`mssim:host=..,port=..`, `device:/dev/tpmrm0`, ...), a registry of
 * transport factories, and discovery in tpm2-tss's order.
 * @packageDocumentation
 */
export { parseTcti, parseKeyValues, formatTcti, type TctiConfig, type TctiSpec } from "./tcti-parse.js";
export {
  openTransport,
  configuredTcti,
  defineTcti,
  defaultTctiRegistry,
  mssimTcti,
  deviceTcti,
  DEFAULT_DISCOVERY,
  TCTI_ENV_VARS,
  TctiDiscoveryError,
  type OpenTransportOptions,
  type TctiAttempt,
  type TctiFactory,
  type TctiRegistry,
} from "./discovery.js";
