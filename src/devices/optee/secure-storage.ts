/**
 * The contract between the OP-TEE core model and its secure-storage back ends (REE FS through
 * tee-supplicant, RPMB FS through RPMB frames), as optee_os core/tee/tee_svc_storage.c reaches
 * `struct tee_file_operations` (tee_ree_fs.c, tee_rpmb_fs.c).
 *
 * @packageDocumentation
 */
import type { Clock } from "../../core/clock.js";
import type { TeeRpcReply, TeeRpcRequest } from "../../bus/tee/rpc.js";
import type { RpmbTarget } from "../../bus/tee/rpmb.js";

/**
 * How a back end reaches the normal world during the call it serves: RPCs go to the calling
 * partition's supplicant with the calling client's semantics (a kernel client's request fails at
 * once with COMMUNICATION when no supplicant is attached; a user client's waits, bounded by its
 * signal). `rpc` resolves with the reply; its `result` may be a failure (COMMUNICATION when the
 * supplicant is absent or went away).
 */
export interface SecureStorageContext {
  rpc(request: TeeRpcRequest): Promise<TeeRpcReply>;
  clock: Clock;
  /**
   * The RPMB device when frames travel through the kernel (in-kernel routing, OPTEE_RPC_CMD_RPMB_FRAMES
   * served by the kernel), else undefined: frames go to the supplicant as OPTEE_RPC_CMD_RPMB.
   */
  kernelRpmb: RpmbTarget | undefined;
}

/**
 * One secure-storage back end. Objects are named by the owning TA's UUID and the object id.
 * Failures reject with `TeeError` whose `teeCode` is the TEE_RESULT the back end produced
 * (ITEM_NOT_FOUND, CORRUPT_OBJECT, STORAGE_NOT_AVAILABLE, SECURITY, COMMUNICATION, OUT_OF_MEMORY,
 * ACCESS_DENIED, STORAGE_NO_SPACE ...); the core applies the GP panic rules on top.
 */
export interface SecureStorageBackend {
  /** TEE_STORAGE.PRIVATE_REE or TEE_STORAGE.PRIVATE_RPMB. */
  readonly storageId: number;
  read(ta: string, objectId: Uint8Array, ctx: SecureStorageContext): Promise<Uint8Array>;
  write(ta: string, objectId: Uint8Array, data: Uint8Array, ctx: SecureStorageContext): Promise<void>;
  remove(ta: string, objectId: Uint8Array, ctx: SecureStorageContext): Promise<void>;
}
