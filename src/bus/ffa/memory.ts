/**
 * The RX/TX buffer handoff between an FF-A caller and the framework, as this model makes it.
 *
 * In hardware a caller passes the physical addresses of its TX and RX buffers to FFA_RXTX_MAP
 * (x1 = TX, x2 = RX, x3 = page count) and later reads the partition-information descriptors the
 * framework wrote into its RX buffer (DEN0077A v1.2 §7.2 "FFA_RXTX_MAP", §14.9
 * "FFA_PARTITION_INFO_GET"; Linux drivers/firmware/arm_ffa/driver.c, ffa_rxtx_map() and
 * __ffa_partition_info_get()). A model has no physical memory, so:
 *
 * - FFA_RXTX_MAP's x1/x2 are opaque buffer ids (any values; the framework only remembers them),
 *   x3 the page count (4 KiB pages);
 * - the framework owns the bytes of each caller's RX buffer and lends them out through
 *   {@link FfaRxTxHost.rxBuffer}, keyed by the caller's endpoint ID (what FFA_ID_GET answered).
 *
 * A conduit that does not implement {@link FfaRxTxHost} (a real SMC bridge) can still be probed
 * with FFA_PARTITION_INFO_GET_REGS (FF-A v1.2, registers only).
 *
 * @packageDocumentation
 */
import type { FfaConduit } from "./conduit.js";

/** Size of one RX/TX buffer page (FFA_RXTX_MAP x3 counts these). DEN0077A §7.2. */
export const FFA_RXTX_PAGE_SIZE = 4096;

/** A framework whose callers' RX buffers a driver can read (see the module comment). */
export interface FfaRxTxHost {
  /**
   * The current bytes of the RX buffer mapped by endpoint `ownerId` (the caller's FFA_ID_GET
   * answer), or `undefined` when that endpoint mapped none. After a successful
   * FFA_PARTITION_INFO_GET the descriptors start at offset 0; the caller then owns the buffer
   * until it calls FFA_RX_RELEASE.
   *
   * @param ownerId - The endpoint ID that mapped the buffer.
   * @returns the RX buffer bytes (a view; copy what you keep), or undefined.
   * @example
   * ```ts
   * const rx = bus.rxBuffer(0); // after RXTX_MAP and PARTITION_INFO_GET from endpoint 0
   * ```
   */
  rxBuffer(ownerId: number): Uint8Array | undefined;
}

/**
 * Whether `conduit` also lends its callers' RX buffers ({@link FfaRxTxHost}).
 *
 * @param conduit - Any FF-A conduit.
 * @returns true when it has an `rxBuffer` method.
 * @example
 * ```ts
 * if (hasRxBuffer(bus)) console.log(bus.rxBuffer(0)?.length);
 * ```
 */
export function hasRxBuffer(conduit: FfaConduit): conduit is FfaConduit & FfaRxTxHost {
  return typeof (conduit as Partial<FfaRxTxHost>).rxBuffer === "function";
}
