/**
 * What drivers talk to: the {@link Mmio} register window, interrupt lines, the TIS register map,
 * composable MMIO wrappers (trace, count, fault injection), the sync/async bridge and the polling
 * engine. Diagnostics channels come from the core's `traceChannel`, the one way to get one.
 *
 * @packageDocumentation
 */
export type { Mmio } from "./mmio.js";
export type { InterruptLine, InterruptEvent } from "./interrupt.js";
export { type MmioAccess, type MmioOp, type Steps, formatAccess, mapMaybe, runSteps, quietly, withSignal, isRead, widthOf } from "./access.js";
export { poll, pollSteps, KERNEL_POLL_MS, MICROTASK_POLLS, TURN_POLLS, TURN_MS, FIRST_SLEEP_MS, type PollOptions, type PollResult } from "./poll.js";
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
