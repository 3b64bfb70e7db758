/**
 * The CRB device model: `new CrbDevice({ backend })`, an {@link Mmio} with QEMU's CRB register
 * semantics, trace events and fault hooks. Spec: PTP, "CRB Interface"; QEMU `hw/tpm/tpm_crb.c` (qemu-swtpm.md §2).
 *
 * @packageDocumentation
 */
export {
  CrbDevice,
  CRB_DEVICE_CHANNEL,
  CRB_QEMU_INTF_ID,
  CRB_QEMU_INTF_ID2,
  type CrbDeviceOptions,
  type CrbDeviceFaults,
  type CrbDeviceState,
  type CrbDevicePhase,
  type CrbDeviceEvent,
  type CrbDoorbellStatus,
} from "./device.js";
