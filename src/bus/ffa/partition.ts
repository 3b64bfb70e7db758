/**
 * The contract between an FF-A framework model (the SPMC, `FfaBus`) and the partitions it hosts
 * (`TpmServicePartition`, or any test double): what a partition tells the framework about itself
 * (PARTITION_INFO_GET: ID, UUIDs, properties, execution contexts) and how it answers a direct
 * message (a response, an FFA_ERROR, or "not done": preempted by an interrupt or yielding).
 *
 * Sources: DEN0077A (FF-A v1.2) §14.9 "FFA_PARTITION_INFO_GET" (the descriptor fields), §15.2–15.4
 * "FFA_MSG_SEND_DIRECT_REQ/RESP", "FFA_MSG_SEND_DIRECT_REQ2/RESP2", §13 "FFA_INTERRUPT",
 * "FFA_YIELD", "FFA_RUN" (a partition that is preempted or yields is resumed by the caller's RUN).
 *
 * @packageDocumentation
 */
import type { MaybePromise } from "../../core/transport.js";

/** A direct request as the framework hands it to the receiving partition. */
export interface FfaDirectMessage {
  /** Sender endpoint ID (w1[31:16]). */
  readonly sender: number;
  /** Receiver endpoint ID (w1[15:0]): the partition's own ID. */
  readonly receiver: number;
  /** 1: FFA_MSG_SEND_DIRECT_REQ (payload x3..x7); 2: FFA_MSG_SEND_DIRECT_REQ2 (UUID in x2/x3, payload x4..x17). */
  readonly version: 1 | 2;
  /** The request used the SMC64 function ID (always true for REQ2, which is SMC64 only). */
  readonly wide: boolean;
  /** REQ2 only: the service UUID from x2/x3 (nil UUID when the caller named none). */
  readonly uuid?: string;
  /** The request's 18 registers exactly as sent (x0..x17). */
  readonly regs: readonly bigint[];
}

/**
 * A partition's answer to a direct message (or to the FFA_RUN that resumed it).
 *
 * - `response`: the framework returns DIRECT_RESP (or RESP2) with the payload registers taken from
 *   `regs` (x3..x7 for v1, x4..x17 for v2; the other entries are ignored).
 * - `error`: the framework returns FFA_ERROR with `code` (DEN0077A error codes, negative).
 * - `interrupt`: preempted; the caller gets FFA_INTERRUPT and must FFA_RUN to continue, which calls `resume`.
 * - `yield`: the partition yields (FFA_YIELD, with an optional timeout in ns); FFA_RUN calls `resume`.
 */
export type FfaPartitionReply =
  | { readonly type: "response"; readonly regs: readonly bigint[] }
  | { readonly type: "error"; readonly code: number }
  | { readonly type: "interrupt"; readonly resume: () => MaybePromise<FfaPartitionReply> }
  | { readonly type: "yield"; readonly timeoutNs?: bigint; readonly resume: () => MaybePromise<FfaPartitionReply> };

/** What the framework needs to host a partition. */
export interface FfaPartition {
  /** The endpoint ID (bit 15 set for a secure partition). */
  readonly id: number;
  /** The service UUIDs it offers (the first is reported when listed under the nil UUID). */
  readonly uuids: readonly string[];
  /** Partition properties (DEN0077A table "Partition properties"; see `FFA_PARTITION_PROP`). */
  readonly properties: number;
  /** Number of execution contexts (vCPUs). */
  readonly executionContexts: number;
  /** False while the partition must not be found by PARTITION_INFO_GET (nor reached by messages). */
  readonly discoverable: boolean;
  /**
   * Handles one direct request. Must not throw for any register content (a throw is answered as
   * FFA_ERROR ABORTED by the framework).
   */
  message(msg: FfaDirectMessage): MaybePromise<FfaPartitionReply>;
  /** Called by the framework when the partition is added: the framework's clock, for time-based faults. */
  attach?(host: FfaPartitionHost): void;
}

/** What the framework tells a partition when it is added. */
export interface FfaPartitionHost {
  /** The framework's clock (ms). */
  readonly now: () => number;
}
