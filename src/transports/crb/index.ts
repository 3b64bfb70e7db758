/**
 * The CRB transport: `crb({ mmio, start })` with the start methods `mmioStart()` and
 * `smcStart({ call })`, the `CrbStartMethod` seam for FF-A, and the CRB register layout.
 * Spec: TCG PC Client PTP, "CRB Interface"; Linux drivers/char/tpm/tpm_crb.c.
 *
 * @packageDocumentation
 */
export { crb, type CrbOptions, type CrbTransport, type CrbInfo, type CrbBuffers } from "./crb.js";
export { CRB_START_QUALIFIER, type CrbStartMethod, type CrbStartContext, type CrbProbeContext, type CrbStartQualifier, type CrbStartEvent } from "./start-method.js";
export { mmioStart, type MmioStartOptions } from "./start-mmio.js";
export { smcStart, type SmcStartOptions, type SmcRequest } from "./start-smc.js";
export { ffaStart, type FfaStartOptions, type FfaStartMethod, type FfaPartitionInfo, type FfaStartStats } from "./start-ffa.js";
export * from "../../bus/crb-registers.js";
