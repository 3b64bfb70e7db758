/**
 * The TEE bus: GlobalPlatform client model, trusted-application contract, RPC to the supplicant,
 * RPMB frames and OP-TEE's numbers.
 *
 * @packageDocumentation
 */
export * from "./constants.js";
export type * from "./client.js";
export * from "./ta.js";
export type * from "./rpc.js";
export * from "./rpmb.js";
