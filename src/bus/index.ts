/**
 * What drivers talk to: the {@link Mmio} register window, interrupt lines, the TIS register map,
 * and composable MMIO wrappers (trace, count, fault injection).
 *
 * @packageDocumentation
 */
export type { Mmio } from "./mmio.js";
export type { InterruptLine, InterruptEvent } from "./interrupt.js";
export { type MmioAccess, type MmioOp, formatAccess, mapMaybe, isRead, widthOf } from "./access.js";
export { diagnosticsChannel, type DiagnosticsChannel } from "./diagnostics.js";
export { traceMmio, MMIO_TRACE_CHANNEL, type TracedMmio, type TraceMmioOptions, type MmioTraceMessage } from "./trace.js";
export { countMmio, type CountedMmio, type MmioCounts } from "./count.js";
export { faultyMmio, type FaultyMmio, type FaultyMmioOptions, type MmioFault, type MmioFaultEffect, type MmioFaultSelector } from "./faults.js";
export {
  TIS_REG,
  TIS_ACCESS,
  TIS_STS,
  TIS_INT,
  TIS_LOCALITY_STRIDE,
  TIS_LOCALITY_COUNT,
  TIS_BASE_ADDRESS,
  tisLocalityOffset,
} from "./tis-registers.js";
