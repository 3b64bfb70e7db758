/**
 * `tpmkit/wire`: the TPM 2.0 wire format on its own: the Part 2 constants, the bounds-checked
 * reader and writer, and the byte helpers. (Response-code decoding and the command descriptors are
 * exported from the package root.)
 * @packageDocumentation
 */
export * from "./constants.js";
export * from "./buffer.js";
export * from "./bytes.js";
export * from "./structures.js";
export * from "./attest.js";
