/**
 * The CRB transport: `crb({ mmio, start })` with the start methods `mmioStart()` and
 * `smcStart({ call })`, the `CrbStartMethod` seam for FF-A, and the CRB register layout.
 * Spec: PTP, "CRB Interface"; Linux `tpm_crb.c` (kernel.md §2).
 *
 * @packageDocumentation
 */
export { crb, type CrbOptions, type CrbTransport, type CrbInfo, type CrbBuffers } from "./crb.js";
export {
  mmioStart,
  smcStart,
  CRB_START_QUALIFIER,
  type CrbStartMethod,
  type CrbStartContext,
  type CrbProbeContext,
  type CrbStartQualifier,
  type CrbStartEvent,
  type MmioStartOptions,
  type SmcStartOptions,
  type SmcRequest,
} from "./start.js";
export * from "../../bus/crb-registers.js";
