/**
 * `linux-device`: /dev/tpmrm0 and /dev/tpm0 with an injectable file layer.
 * @packageDocumentation
 */
export {
  linuxDevice,
  deviceError,
  DEFAULT_DEVICE_PATHS,
  TPM_DEVICE_BUFSIZE,
  type LinuxDeviceOptions,
  type LinuxDeviceTransport,
} from "./linux-device.js";
export { nodeDeviceFs, type DeviceFile, type DeviceFileKind, type DeviceFs } from "./fs.js";
