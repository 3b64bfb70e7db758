/**
 * The CRB device model: `new CrbDevice({ backend })`, an `Mmio` with QEMU's CRB register
 * semantics, trace events and fault hooks, following the device-model lifecycle
 * ({@link DeviceModel}); and QEMU's CRB reset values. Spec: TCG PC Client PTP, "CRB Interface";
 * QEMU `hw/tpm/tpm_crb.c`.
 *
 * @packageDocumentation
 */
export {
  CrbDevice,
  CRB_DEVICE_CHANNEL,
  type CrbDeviceOptions,
  type CrbDeviceFaults,
  type CrbDeviceState,
  type CrbDevicePhase,
  type CrbDeviceEvent,
  type CrbEvent,
  type CrbDoorbellStatus,
} from "./device.js";
export { CRB_QEMU_ADDRESS, CRB_QEMU_BUFFER_SIZE, CRB_QEMU_INTF_ID, CRB_QEMU_INTF_ID2 } from "./qemu.js";
export type { DeviceModel, DevicePhase, DevicePhaseEvent, DeviceState, DeviceEvent, DeviceEventSource } from "../lifecycle.js";
