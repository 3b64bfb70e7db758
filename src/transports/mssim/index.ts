/**
 * `mssim`: the Microsoft/IBM TPM 2.0 simulator TCP protocol (client side).
 * @packageDocumentation
 */
export { mssim, type MssimOptions, type MssimTransport } from "./mssim.js";
export { MssimPlatform, MssimSwtpmDetectedError, type MssimPlatformOptions, type MssimCommandResponseSizes } from "./platform.js";
export {
  MSSIM_CMD,
  MSSIM_DEFAULT_PORT,
  MSSIM_DEFAULT_MAX_SIZE,
  MSSIM_ENDPOINT,
  MSSIM_SEND_PREFIX_SIZE,
  MSSIM_SERVER_VERSION,
  mssimCommandName,
  encodeSendCommand,
  checkResponseSize,
} from "../../node/mssim-protocol.js";
export { connectSocket, formatAddress, type SocketAddress, type ConnectOptions } from "../../node/connect.js";
export { ByteQueue, SocketReader, type ReadOptions } from "../../node/socket-reader.js";
