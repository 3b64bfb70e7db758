/**
 * `tis`: the TIS (PTP FIFO) transport over an MMIO window.
 *
 * @packageDocumentation
 */
export {
  tis,
  TIS_PROBE_TIMEOUTS,
  TIS_TPM2_TIMEOUTS,
  TIS_RETRY,
  TIS_PROBE_DURATION_MS,
  TIS_DRIVER_CHANNEL,
  type TisOptions,
  type TisTransport,
  type TisInfo,
  type TisTimeouts,
  type TisDriverEvent,
} from "./tis.js";
