/**
 * REE FS secure storage: a TA's persistent objects kept as files in tee-supplicant's file store
 * (`/var/lib/tee`), reached through OPTEE_RPC_CMD_FS requests, as optee_os core/tee/tee_ree_fs.c
 * does. Every file carries an HMAC-SHA256 under a per-TA key derived from the hardware unique
 * key, so the normal world cannot change an object without the TEE noticing (CORRUPT_OBJECT).
 *
 * Key derivation, modelled on optee_os core/tee/tee_fs_key_manager.c:
 * - SSK (secure storage key) = HMAC-SHA256(HUK, chip id ‖ "ONLY_FOR_tee_fs_ssk")
 *   (`tee_fs_init_key_manager`, with the chip id of `tee_otp_get_die_id`, 32 bytes);
 * - TSK (TA storage key) = HMAC-SHA256(SSK, TA UUID as 16 bytes) (`tee_fs_fek_crypt`'s TSK);
 * - each file's MAC = HMAC-SHA256(TSK, file name ‖ header ‖ data).
 *
 * @packageDocumentation
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { TeeError } from "../../errors/index.js";
import { HUK_LENGTH, OPTEE_RPC_CMD, TEE_ORIGIN, TEE_RESULT, TEE_STORAGE } from "../../bus/tee/constants.js";
import type { TeeRpcReply, TeeRpcRequest } from "../../bus/tee/rpc.js";
import type { SecureStorageBackend, SecureStorageContext } from "./secure-storage.js";

/** Longest object id GP allows (TEE_OBJECT_ID_MAX_LEN, GP TEE Internal Core API §5.7). */
export const REE_FS_OBJECT_ID_MAX = 64;

/** Options of {@link createReeFsBackend}. */
export interface ReeFsBackendOptions {
  /** The hardware unique key, {@link HUK_LENGTH} (16) bytes. */
  huk: Uint8Array;
  /**
   * The chip id mixed into the SSK (`tee_otp_get_die_id`), 32 bytes. Default 32 zero bytes, what
   * optee_os's weak stub in core/kernel/otp_stubs.c returns on a platform without a driver.
   */
  chipId?: Uint8Array;
}

const MAGIC = [0x54, 0x4b, 0x52, 0x46]; // "TKRF"
const VERSION = 1;
const HEADER = 12; // magic 4, version 1, reserved 3, data length u32 BE
const MAC = 32;
const SSK_CONST = new TextEncoder().encode("ONLY_FOR_tee_fs_ssk");

/**
 * The REE FS back end ({@link TEE_STORAGE}.PRIVATE_REE).
 *
 * Naming: the object `objectId` of the TA `uuid` is the file `<uuid>.<object id in lower-case hex>`
 * at the root of the supplicant's store (OP-TEE itself keeps `dirf.db` and hex-numbered files; the
 * flat per-object name keeps each object one atomic file).
 *
 * File format: "TKRF", version 1, 3 reserved bytes, the data length (u32, big-endian), the data,
 * then HMAC-SHA256(TSK, name ‖ header ‖ data). A file that is too short, has a wrong header, a
 * wrong length or a MAC mismatch reads as CORRUPT_OBJECT (origin TEE).
 *
 * Not encrypted: the normal world can read the objects' bytes (OP-TEE encrypts them with a
 * per-file FEK; this model only protects integrity). GP rollback protection level 0: the normal
 * world can delete a file or put back an older copy of it, and the TEE accepts the old object.
 *
 * Each FS request first needs a payload buffer: an APPL SHM_ALLOC through the supplicant
 * (`thread_rpc_alloc_payload`); when it fails (no supplicant) the operation fails with
 * OUT_OF_MEMORY, as OP-TEE's does. A failed FS request itself gives its result (COMMUNICATION when
 * the supplicant went away), and the core applies the GP panic rules on top.
 *
 * @param options - the HUK (16 bytes) and optionally the chip id.
 * @returns the back end.
 * @throws TeeError BAD_PARAMETERS (origin API) for a HUK that is not 16 bytes or a chip id that is not 32.
 * @example
 * ```ts
 * const ree = createReeFsBackend({ huk: new Uint8Array(16) });
 * ```
 */
export function createReeFsBackend(options: ReeFsBackendOptions): SecureStorageBackend {
  const huk = options.huk;
  if (!(huk instanceof Uint8Array) || huk.length !== HUK_LENGTH) throw new TeeError(`REE FS: the HUK must be ${HUK_LENGTH} bytes`, TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API);
  const chipId = options.chipId ?? new Uint8Array(32);
  if (!(chipId instanceof Uint8Array) || chipId.length !== 32) throw new TeeError("REE FS: the chip id must be 32 bytes", TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API);
  const ssk = hmac(sha256, huk, concat(chipId, SSK_CONST));
  const tsks = new Map<string, Uint8Array>();
  const tsk = (uuid: string) => {
    let k = tsks.get(uuid);
    if (!k) tsks.set(uuid, (k = hmac(sha256, ssk, uuidBytes(uuid))));
    return k;
  };

  return {
    storageId: TEE_STORAGE.PRIVATE_REE,
    async read(ta, objectId, ctx) {
      const name = fileName(ta, objectId);
      const reply = await fsCall(ctx, { cmd: OPTEE_RPC_CMD.FS, op: "read", name }, 4096);
      if (reply.result === TEE_RESULT.ITEM_NOT_FOUND || (reply.result === TEE_RESULT.SUCCESS && reply.data === undefined)) fail(TEE_RESULT.ITEM_NOT_FOUND, `no object ${name}`);
      if (reply.result !== TEE_RESULT.SUCCESS) fail(reply.result, `FS read of ${name} failed`);
      return open(tsk(ta), name, reply.data!);
    },
    async write(ta, objectId, data, ctx) {
      const name = fileName(ta, objectId);
      const file = seal(tsk(ta), name, data);
      const reply = await fsCall(ctx, { cmd: OPTEE_RPC_CMD.FS, op: "write", name, data: file }, file.length);
      if (reply.result !== TEE_RESULT.SUCCESS) fail(reply.result, `FS write of ${name} failed`);
    },
    async remove(ta, objectId, ctx) {
      const name = fileName(ta, objectId);
      const probe = await fsCall(ctx, { cmd: OPTEE_RPC_CMD.FS, op: "list", name: "" }, 4096);
      if (probe.result !== TEE_RESULT.SUCCESS) fail(probe.result, "FS list failed");
      if (!(probe.names ?? []).includes(name)) fail(TEE_RESULT.ITEM_NOT_FOUND, `no object ${name}`);
      const reply = await fsCall(ctx, { cmd: OPTEE_RPC_CMD.FS, op: "remove", name }, name.length);
      if (reply.result !== TEE_RESULT.SUCCESS) fail(reply.result, `FS remove of ${name} failed`);
    },
  };
}

/** The file name of an object (see {@link createReeFsBackend}). */
export function reeFsFileName(uuid: string, objectId: Uint8Array): string {
  return fileName(uuid, objectId);
}

function fileName(uuid: string, objectId: Uint8Array): string {
  if (!(objectId instanceof Uint8Array) || objectId.length > REE_FS_OBJECT_ID_MAX) fail(TEE_RESULT.BAD_PARAMETERS, `object id must be at most ${REE_FS_OBJECT_ID_MAX} bytes`);
  let hex = "";
  for (const b of objectId) hex += b.toString(16).padStart(2, "0");
  return `${uuid.toLowerCase()}.${hex}`;
}

/** One FS RPC with its APPL payload allocation first and its free after (thread_rpc_alloc_payload / _free_payload). */
async function fsCall(ctx: SecureStorageContext, request: TeeRpcRequest, size: number): Promise<TeeRpcReply> {
  const alloc = await ctx.rpc({ cmd: OPTEE_RPC_CMD.SHM_ALLOC, size: Math.max(1, size) });
  if (alloc.result !== TEE_RESULT.SUCCESS) fail(TEE_RESULT.OUT_OF_MEMORY, "RPC payload allocation failed (no supplicant?)");
  try {
    return await ctx.rpc(request);
  } finally {
    if (alloc.id !== undefined) await ctx.rpc({ cmd: OPTEE_RPC_CMD.SHM_FREE, id: alloc.id }).catch(() => undefined);
  }
}

function seal(key: Uint8Array, name: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + data.length + MAC);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  new DataView(out.buffer).setUint32(8, data.length, false);
  out.set(data, HEADER);
  out.set(mac(key, name, out.subarray(0, HEADER + data.length)), HEADER + data.length);
  return out;
}

function open(key: Uint8Array, name: string, file: Uint8Array): Uint8Array {
  if (file.length < HEADER + MAC) fail(TEE_RESULT.CORRUPT_OBJECT, `${name}: ${file.length} bytes, shorter than header and MAC`);
  for (let i = 0; i < 4; i++) if (file[i] !== MAGIC[i]) fail(TEE_RESULT.CORRUPT_OBJECT, `${name}: bad magic`);
  if (file[4] !== VERSION) fail(TEE_RESULT.CORRUPT_OBJECT, `${name}: unknown version ${file[4]}`);
  const len = new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(8, false);
  if (len !== file.length - HEADER - MAC) fail(TEE_RESULT.CORRUPT_OBJECT, `${name}: length field ${len} does not match the file`);
  const want = mac(key, name, file.subarray(0, HEADER + len));
  const got = file.subarray(HEADER + len);
  let diff = 0;
  for (let i = 0; i < MAC; i++) diff |= want[i]! ^ got[i]!;
  if (diff !== 0) fail(TEE_RESULT.CORRUPT_OBJECT, `${name}: MAC mismatch`);
  return file.slice(HEADER, HEADER + len);
}

function mac(key: Uint8Array, name: string, body: Uint8Array): Uint8Array {
  return hmac(sha256, key, concat(new TextEncoder().encode(name), body));
}

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  const out = new Uint8Array(16);
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return new TextEncoder().encode(uuid);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function fail(code: number, message: string): never {
  throw new TeeError(`REE FS: ${message}`, code, TEE_ORIGIN.TEE);
}
