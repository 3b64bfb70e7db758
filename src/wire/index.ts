/**
 * `tpmkit/wire`: the TPM 2.0 wire format on its own (constants, reader/writer, RC decoding).
 * @packageDocumentation
 */
export * from "./constants.js";
export * from "./buffer.js";
export * from "./bytes.js";
