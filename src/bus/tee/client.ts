/**
 * The GlobalPlatform TEE client model a driver talks to, transport-agnostic: a {@link TeeDevice}
 * (what `/dev/tee0` is to libteec, or `tee_client_open_context()` to an in-kernel client) gives
 * {@link TeeContext}s; a context opens {@link TeeSession}s to trusted applications by UUID and
 * login, invokes commands with up to four parameters, and owns shared memory.
 *
 * Results other than success reject with `TeeError` (`teeCode`, `origin`) exactly as libteec
 * and the Linux kernel report them: origin API for the client's own argument checks, COMMS for
 * transport and RPC failures, TEE for the core, TRUSTED_APP for codes the TA returned.
 *
 * Sources: GlobalPlatform TEE Client API Specification v1.0 §4.5 (TEEC_InitializeContext,
 * TEEC_OpenSession, TEEC_InvokeCommand, TEEC_RequestCancellation, TEEC_RegisterSharedMemory,
 * TEEC_AllocateSharedMemory, TEEC_ReleaseSharedMemory); Linux drivers/tee/tee_core.c
 * (tee_client_open_context, tee_client_open_session, tee_client_invoke_func) and
 * drivers/tee/optee/supp.c (supp_nowait for in-kernel contexts).
 *
 * @packageDocumentation
 */

/**
 * Which kind of client opened a context. `"kernel"`: an in-kernel client (`tee_client_open_context`,
 * supp_nowait): a request that needs tee-supplicant fails at once with COMMUNICATION when none is
 * attached. `"user"`: a user-space client (libteec): such a request waits for the supplicant,
 * bounded only by the caller's AbortSignal.
 */
export type TeeClientKind = "kernel" | "user";

/** Shared memory registered or allocated in a {@link TeeContext} (TEEC_SharedMemory). */
export interface TeeSharedMemory {
  /** Identifier within its context. */
  readonly id: number;
  /** The bytes both worlds see. For registered memory, the caller's own buffer. */
  readonly buffer: Uint8Array;
  /** Size in bytes (a size of 0 was allocated as 8 bytes, as libteec does). */
  readonly size: number;
  /** TEE_MEM.INPUT | TEE_MEM.OUTPUT. */
  readonly flags: number;
  /** true for TEEC_RegisterSharedMemory, false for TEEC_AllocateSharedMemory. */
  readonly registered: boolean;
}

/**
 * One operation parameter (TEEC_Parameter with its type from TEEC_PARAM_TYPES). Which fields are
 * read depends on `type` (TEE_PARAM_TYPE): values use `a` and `b`; temporary memrefs `buffer` and
 * `size`; MEMREF_WHOLE `shm` (and writes `size` back); partial memrefs `shm`, `offset`, `size`.
 * Output fields are written back in place when the call returns, on success and on SHORT_BUFFER
 * (where `size` then holds the size the TA needs), as GP §4.5.9 says.
 */
export interface TeeParam {
  /** TEE_PARAM_TYPE.* */
  type: number;
  /** Value a (u32). */
  a?: number;
  /** Value b (u32). */
  b?: number;
  /** Temporary memref: the caller's buffer. */
  buffer?: Uint8Array;
  /** Registered/allocated memory for MEMREF_WHOLE / MEMREF_PARTIAL_*. */
  shm?: TeeSharedMemory;
  /** Offset in `shm` for partial memrefs. */
  offset?: number;
  /** Memref size in bytes; updated on return for output memrefs. */
  size?: number;
}

/** TEEC_Operation: up to four parameters, updated in place on return. */
export interface TeeOperation {
  params: TeeParam[];
}

/** Options of {@link TeeContext.openSession}. */
export interface TeeOpenSessionOptions {
  /** TEE_LOGIN.*; default PUBLIC. */
  login?: number;
  /** Parameters passed to the TA's open-session entry point. */
  operation?: TeeOperation;
  /** Bounds the wait (a user client waiting for the supplicant); aborting requests cancellation. */
  signal?: AbortSignal;
}

/** Options of {@link TeeSession.invoke}. */
export interface TeeInvokeOptions {
  /** Bounds the wait; aborting requests cancellation (TEEC_RequestCancellation) and rejects. */
  signal?: AbortSignal;
}

/** An open session to a trusted application (TEEC_Session). */
export interface TeeSession {
  /** Session id as the TEE numbered it. */
  readonly id: number;
  /** The TA's UUID. */
  readonly uuid: string;
  /**
   * TEEC_InvokeCommand. Resolves on TEE_SUCCESS; rejects with `TeeError` otherwise (after a TA
   * panic: TARGET_DEAD, origin TEE, for this call and every later one on the session).
   */
  invoke(command: number, operation?: TeeOperation, options?: TeeInvokeOptions): Promise<void>;
  /** TEEC_RequestCancellation for the call in flight, if any (best effort, as in GP). */
  requestCancellation(): void;
  /** TEEC_CloseSession. Never rejects; bounded (a kernel client never waits for the supplicant). */
  close(): Promise<void>;
}

/** A client context (TEEC_Context). */
export interface TeeContext {
  /** The kind of client this context belongs to. */
  readonly client: TeeClientKind;
  /** TEEC_OpenSession: rejects with `TeeError` (e.g. ITEM_NOT_FOUND/TEE when the TA is nowhere). */
  openSession(uuid: string, options?: TeeOpenSessionOptions): Promise<TeeSession>;
  /** TEEC_AllocateSharedMemory; throws `TeeError` (BAD_PARAMETERS/API for bad flags). */
  allocateSharedMemory(size: number, flags?: number): TeeSharedMemory;
  /** TEEC_RegisterSharedMemory of the caller's buffer; throws `TeeError` (BAD_PARAMETERS/API for bad flags). */
  registerSharedMemory(buffer: Uint8Array, flags: number): TeeSharedMemory;
  /** TEEC_ReleaseSharedMemory. */
  releaseSharedMemory(shm: TeeSharedMemory): void;
  /** Shared memory objects not yet released (a leak check, as U-Boot's sandbox TEE counts them). */
  readonly sharedMemoryCount: number;
  /** Sessions not yet closed. */
  readonly sessionCount: number;
  /** TEEC_FinalizeContext: closes what is still open. Bounded. */
  close(): Promise<void>;
}

/** What a TEE device tells about itself without a call (the state a systemd unit would watch). */
export interface TeeDeviceStatus {
  /** The driver probed: `/dev/tee0` exists. False after the TEE was stopped or the guest destroyed. */
  present: boolean;
  /** tee-supplicant: attached and serving, stopped, or never configured. */
  supplicant: "running" | "stopped" | "absent";
}

/**
 * A TEE as its clients see it: the host's OP-TEE, or one guest's view through a mediator.
 * Implemented by `OpTee` and by the guests of `TeeMediator`.
 */
export interface TeeDevice {
  /** Short name for traces and errors: "optee", "optee-guest-2", ... */
  readonly kind: string;
  /**
   * Opens a client context (TEEC_InitializeContext / tee_client_open_context). Rejects with
   * `TeeError` ITEM_NOT_FOUND when the TEE is not there (libteec finds no `/dev/teeN`).
   */
  openContext(options?: { client?: TeeClientKind; signal?: AbortSignal }): Promise<TeeContext>;
  /** Present and supplicant state, without a call. */
  status(): TeeDeviceStatus;
  /** Calls `fn` on every status change; returns the unsubscribe function. */
  onStatus(fn: (status: TeeDeviceStatus) => void): () => void;
}
