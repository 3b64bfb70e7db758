/**
 * RPC from the secure world to the normal world, and the supplicant's end of it: the requests
 * OP-TEE sends while it serves a call (load a TA, a file-system operation, RPMB frames, shared
 * memory for the payload), as Linux drivers/tee/optee/rpc.c and supp.c hand them to
 * tee-supplicant through `/dev/teepriv0`.
 *
 * Sources: optee_os core/include/optee_rpc_cmd.h (OPTEE_RPC_CMD_LOAD_TA, _RPMB, _FS with
 * OPTEE_RPC_FS_* sub-operations, _SHM_ALLOC/_SHM_FREE with OPTEE_RPC_SHM_TYPE_APPL/_KERNEL);
 * optee_client tee-supplicant/src/tee_supplicant.c (process_one_request, load_ta, the FS and RPMB
 * handlers); Linux drivers/tee/optee/supp.c (optee_supp_thrd_req: supp_nowait, and every queued
 * and in-flight request completed with COMMUNICATION when the supplicant goes away).
 *
 * @packageDocumentation
 */
import type { TaDefinition } from "./ta.js";
import type { RpmbTarget } from "./rpmb.js";

/** REE FS sub-operations the model serves (whole-file forms of OPTEE_RPC_FS_OPEN ... _READDIR). */
export type TeeFsOp = "read" | "write" | "remove" | "rename" | "list";

/** One RPC request (a `struct optee_msg_arg` with cmd OPTEE_RPC_CMD_*, decoded). */
export type TeeRpcRequest =
  /** OPTEE_RPC_CMD_LOAD_TA: find `<uuid>.ta` in the TA directory. */
  | { cmd: 0; uuid: string }
  /** OPTEE_RPC_CMD_RPMB (legacy routing): request frames in, `responseFrames` response frames out. */
  | { cmd: 1; devId: number; frames: Uint8Array; responseFrames: number }
  /** OPTEE_RPC_CMD_FS on the REE FS root (`/var/lib/tee`): `name` relative to it. */
  | { cmd: 2; op: TeeFsOp; name: string; newName?: string; data?: Uint8Array }
  /** OPTEE_RPC_CMD_SHM_ALLOC of type APPL (served by the supplicant) for an RPC payload. */
  | { cmd: 6; size: number }
  /** OPTEE_RPC_CMD_SHM_FREE of type APPL. */
  | { cmd: 7; id: number };

/** The answer to a {@link TeeRpcRequest}. `result` is a TEE_RESULT. */
export interface TeeRpcReply {
  result: number;
  /** LOAD_TA: the TA found. */
  ta?: TaDefinition;
  /** FS read: the file's bytes. RPMB: the response frames. */
  data?: Uint8Array;
  /** FS list: the names. */
  names?: string[];
  /** SHM_ALLOC: the id of the allocation. */
  id?: number;
}

/** Whoever serves RPCs in the normal world: tee-supplicant (or U-Boot acting as its own). */
export interface TeeRpcServer {
  /** Serves one request. Must settle; a stopped server answers COMMUNICATION. */
  handle(request: TeeRpcRequest, signal?: AbortSignal): Promise<TeeRpcReply>;
}

/**
 * The TEE's side of `/dev/teepriv0`: what a supplicant attaches to. Only one server may be attached
 * at a time (a second open of teepriv gets EBUSY).
 */
export interface TeeSupplicantPort {
  /** Attaches a server; returns the detach function. Throws `TeeError` BUSY when one is attached already. */
  attach(server: TeeRpcServer): () => void;
  /** The REE-loaded TAs of this TEE: what `<ta-path>/<uuid>.ta` holds (a TA given to `OpTee` with early: false). */
  readonly reeTas: readonly TaDefinition[];
  /** The platform's RPMB device the supplicant reaches (`/dev/mmcblk<id>rpmb`), if any. */
  readonly rpmb: RpmbTarget | undefined;
}

/** A supplicant the TEE binds to its port at construction (`OpTee({ supplicant })`); it attaches when started. */
export interface TeeSupplicantDaemon {
  /** Gives the daemon the port it attaches to on `start()`. */
  bind(port: TeeSupplicantPort): void;
}
