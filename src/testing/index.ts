/**
 * `tpmkit/testing`: test doubles and measurement helpers for code that talks to a TPM — a scripted
 * TPM backend, a fake `/dev/tpm*` device, and bus-transaction measurement over the TIS and CRB
 * device models.
 *
 * @packageDocumentation
 */
export {
  FakeTpmBackend,
  fakeTpmResponse,
  getRandomCommand,
  paddedCommand,
  type FakeTpmBackendOptions,
  type FakeTpmBackendMode,
  type FakeTpmAnswers,
  type FakeTpmRandom,
  type FakeTpmCall,
} from "./fake-backend.js";
export { FakeTpmDevice, TPMRM_UNKNOWN_COMMAND_RC, errnoError, type FakeDeviceFaults, type FakeTpmDeviceOptions } from "./fake-device.js";
export { measureTisTransactions, type TisMeasurement, type MeasureTisOptions } from "./measure-tis.js";
export { measureCrb, type CrbMeasurement, type MeasureCrbOptions } from "./measure-crb.js";
