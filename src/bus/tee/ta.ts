/**
 * The contract between the TEE core and a trusted application: what OP-TEE's TA entry points
 * (`TA_CreateEntryPoint`, `TA_OpenSessionEntryPoint`, `TA_InvokeCommandEntryPoint`,
 * `TA_CloseSessionEntryPoint`, `TA_DestroyEntryPoint`) and the part of the GP internal API a TA
 * uses (persistent objects, `TEE_Panic`) become in TypeScript.
 *
 * Sources: GlobalPlatform TEE Internal Core API v1.3.1 §4.3 (TA interface), §5.7–5.9
 * (persistent objects: TEE_OpenPersistentObject, TEE_CreatePersistentObject,
 * TEE_WriteObjectData and the results after which they panic), §2.3.3 (TEE_Panic); optee_os
 * lib/libutee/tee_api_objects.c (the panic-unless lists).
 *
 * @packageDocumentation
 */
import { TpmkitError } from "../../errors/index.js";
import type { MaybePromise } from "../../core/transport.js";
import type { Clock } from "../../core/clock.js";

/**
 * A trusted application as the TEE stores it: identity, flags and a way to start an instance.
 * `early: true` means linked into the TEE image (an early TA, found first); `false` means a
 * signed `<uuid>.ta` file tee-supplicant loads from the REE file system (LOAD_TA).
 */
export interface TaDefinition {
  /** The TA's UUID, lower case. */
  readonly uuid: string;
  /** A short name for traces ("fTPM"). */
  readonly name: string;
  /** TA_FLAG.* */
  readonly flags: number;
  /** Early TA (in the TEE image) or REE-loaded. */
  readonly early: boolean;
  /** Starts a fresh instance (a respawn after a panic calls this again). */
  instantiate(): TrustedApplication;
}

/**
 * A parameter as the TA sees it (TEE_Param). Values: `a`, `b` (the TA may write them for output
 * types). Memrefs: `buffer` is the shared bytes (a view, length = the size the client gave); the
 * TA sets `size` for outputs (a size larger than `buffer.length` with result SHORT_BUFFER tells
 * the client how much is needed).
 */
export interface TaParam {
  a: number;
  b: number;
  buffer: Uint8Array | undefined;
  size: number;
}

/** The session a TA entry point is called for. */
export interface TaSession {
  /** Session id. */
  readonly id: number;
  /** TEE_LOGIN.* the client used. */
  readonly login: number;
  /** Per-session slot the TA may use (`sess_ctx`). */
  context: unknown;
}

/** An instance of a trusted application. Results are TEE_RESULT codes; 0 is success. */
export interface TrustedApplication {
  /** TA_CreateEntryPoint: once per instance, before the first session. A non-zero result fails the open (origin TEE). */
  create?(env: TaEnvironment): MaybePromise<number | void>;
  /** TA_DestroyEntryPoint: when the instance is released. */
  destroy?(): MaybePromise<void>;
  /** TA_OpenSessionEntryPoint. A non-zero result fails the open with origin TRUSTED_APP. */
  openSession?(session: TaSession, paramTypes: number, params: TaParam[]): MaybePromise<number | void>;
  /** TA_InvokeCommandEntryPoint. A non-zero result rejects the call with origin TRUSTED_APP. */
  invoke(session: TaSession, command: number, paramTypes: number, params: TaParam[]): MaybePromise<number>;
  /** TA_CloseSessionEntryPoint. */
  closeSession?(session: TaSession): MaybePromise<void>;
}

/**
 * Persistent objects of one TA, as the GP internal API offers them, reduced to whole-object
 * operations (what the fTPM TA needs). Failures reject with `TeeError` carrying the TEE_RESULT;
 * results outside what the GP API allows for that call panic the TA instead, as libutee does
 * (TEE_OpenPersistentObject: SUCCESS, ITEM_NOT_FOUND, ACCESS_CONFLICT, OUT_OF_MEMORY,
 * CORRUPT_OBJECT, STORAGE_NOT_AVAILABLE; TEE_WriteObjectData: SUCCESS, STORAGE_NO_SPACE, OVERFLOW,
 * CORRUPT_OBJECT, STORAGE_NOT_AVAILABLE).
 */
export interface TaStorage {
  /** Opens and reads a whole object. ITEM_NOT_FOUND when it does not exist. */
  read(storageId: number, objectId: Uint8Array): Promise<Uint8Array>;
  /** Creates or overwrites an object atomically (TEE_CreatePersistentObject with OVERWRITE, or open + write). */
  write(storageId: number, objectId: Uint8Array, data: Uint8Array): Promise<void>;
  /** Deletes an object (TEE_CloseAndDeletePersistentObject1); ITEM_NOT_FOUND when absent. */
  remove(storageId: number, objectId: Uint8Array): Promise<void>;
}

/** What a TA instance gets from the core. */
export interface TaEnvironment {
  /** The TA's UUID. */
  readonly uuid: string;
  /** Secure storage of this TA (and of this guest, under a mediator). */
  readonly storage: TaStorage;
  /** The TEE's clock. */
  readonly clock: Clock;
  /** TEE_GenerateRandom. */
  random(size: number): Uint8Array;
  /** TEE_Panic: the instance dies; the call and the session end with TARGET_DEAD (origin TEE). */
  panic(code: number): never;
  /** Trace output (the TA's DMSG/EMSG). */
  log(message: string): void;
}

/**
 * Thrown by {@link TaEnvironment.panic} through the TA's stack. The core catches it and never
 * lets it reach a client: the client sees `TeeError` TARGET_DEAD (origin TEE).
 */
export class TaPanicError extends TpmkitError {
  static override readonly errorName: string = "TaPanicError";
  /** The TEE_Panic code. */
  readonly panicCode: number;
  constructor(uuid: string, panicCode: number) {
    super("TA_PANIC", `TA ${uuid} panicked (0x${(panicCode >>> 0).toString(16)})`);
    this.panicCode = panicCode >>> 0;
  }
}
