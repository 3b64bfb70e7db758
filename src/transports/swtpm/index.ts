/**
 * The swtpm transport (data channel) and control-channel client. Node-specific.
 *
 * @packageDocumentation
 */
export { swtpm, type SwtpmTransport, type SwtpmTransportOptions } from "./transport.js";
export {
  SwtpmControl,
  type SwtpmControlOptions,
  type SwtpmControlCallOptions,
  type SwtpmBufferSize,
  type SwtpmConfig,
  type SwtpmStateBlob,
} from "./control.js";
export {
  SWTPM_CMD,
  PTM_CAP,
  PTM_BLOB_TYPE,
  PTM_INIT_FLAG_DELETE_VOLATILE,
  PTM_STATE_FLAG_DECRYPTED,
  PTM_STATE_FLAG_ENCRYPTED,
  PTM_CONFIG_FLAG,
  SWTPM_INFO,
  SWTPM_RESULT,
  SWTPM_RESULT_NON_FATAL,
  SwtpmControlError,
  swtpmResultName,
  swtpmCommandName,
  decodeCapabilities,
  type SwtpmCapabilities,
} from "../../node/swtpm-protocol.js";
export { deriveControlEndpoint, type SwtpmEndpoint, type SwtpmTcpEndpoint, type SwtpmUnixEndpoint } from "../../node/swtpm-socket.js";
