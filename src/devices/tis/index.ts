/**
 * `TisDevice`: a register-accurate TIS model after QEMU's tpm_tis, following the device-model
 * lifecycle ({@link DeviceModel}).
 *
 * @packageDocumentation
 */
export {
  TisDevice,
  TIS_BUFFER_MAX,
  TIS_DEVICE_CHANNEL,
  TIS_INTERFACE_ID_SEL_LOCK,
  QEMU_TIS_DID,
  QEMU_TIS_VID,
  QEMU_TIS_RID,
  QEMU_INTF_CAPABILITY_2_0,
  QEMU_INTF_CAPABILITY_1_2,
  QEMU_INTERFACE_ID_2_0,
  QEMU_INTERFACE_ID_1_2,
  type TisDeviceOptions,
  type TisDeviceFaults,
  type TisDeviceState,
  type TisDeviceEvent,
  type TisEvent,
  type TisLocalitySnapshot,
  type TisLocalityState,
  type TisPower,
} from "./device.js";
export type { DeviceModel, DevicePhase, DevicePhaseEvent, DeviceState, DeviceEvent, DeviceEventSource } from "../lifecycle.js";
