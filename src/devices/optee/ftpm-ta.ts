/**
 * The firmware TPM trusted application (OP-TEE/optee_ftpm, formerly ms-tpm-20-ref
 * Samples/ARM32-FirmwareTPM) over any TPM engine: its TA entry points, the SUBMIT_COMMAND and
 * EMULATE_PPI parameter checks, and its NV kept on the TA's secure storage as 512-byte
 * persistent objects.
 *
 * Sources: optee_ftpm fTPM.c (TA_CreateEntryPoint, TA_OpenSessionEntryPoint,
 * fTPM_Submit_Command, fTPM_Emulate_PPI, TA_InvokeCommandEntryPoint, TA_DestroyEntryPoint),
 * include/fTPM.h (command ids), user_ta_header_defines.h (UUID, flags), platform/NVMem.c
 * (NV_BLOCK_SIZE 0x200, s_StorageObjectID 0x54504D00, _plat__NvInitFromStorage,
 * _plat__NvWriteBack, _plat__MarkDirtyBlocks), platform/NvAdmin.c (the chip flags with
 * TpmStatePresent); GlobalPlatform TEE Internal Core API v1.3.1 §4.3.6 (TEE_PARAM_TYPE_* as a TA
 * sees them) and §5.7 (persistent objects).
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../../errors/index.js";
import type { Storage } from "../../core/storage.js";
import { TA_FLAG, TEE_PARAM_TYPE, TEE_RESULT, TEE_STORAGE, teeParamTypes } from "../../bus/tee/constants.js";
import { TaPanicError, type TaDefinition, type TaEnvironment, type TaParam, type TaSession, type TrustedApplication } from "../../bus/tee/ta.js";

import { FTPM_MAX_BUFFER, FTPM_TA_CMD, FTPM_TA_UUID } from "../../bus/tee/constants.js";
export { FTPM_MAX_BUFFER, FTPM_TA_CMD, FTPM_TA_UUID };

/** NV_BLOCK_SIZE of optee_ftpm platform/NVMem.c: one persistent object per 512 bytes of NV. */
export const FTPM_NV_BLOCK_SIZE = 512;

/** s_StorageObjectID of optee_ftpm platform/NVMem.c: object `i` is named by the u32 0x54504D00 + i. */
export const FTPM_NV_OBJECT_BASE = 0x54504d00;

/**
 * The id bytes of NV object `index`. optee_ftpm passes `&objID, sizeof(objID)` of a UINT32 to
 * TEE_OpenPersistentObject (platform/NVMem.c, _plat__NvInitFromStorage), so the id is the u32's
 * four bytes in memory order: little-endian on Arm (object 0 is `00 4d 50 54`).
 *
 * @param index - block index (0 = the admin object of this model)
 * @returns the 4-byte object id
 */
export function ftpmNvObjectId(index: number): Uint8Array {
  const id = new Uint8Array(4);
  new DataView(id.buffer).setUint32(0, (FTPM_NV_OBJECT_BASE + index) >>> 0, true);
  return id;
}

/** What the fTPM TA needs from the TPM inside it. */
export interface FtpmEngine {
  /**
   * _TPM_Init with NV load: reads the state through the {@link Storage} the TA gave the engine
   * factory (`load()` answers undefined on first boot: the engine manufactures, new seeds).
   */
  start(): Promise<void>;
  /** Runs one TPM command and answers its response (the TA's ExecuteCommand). */
  execute(command: Uint8Array, locality: number): Promise<Uint8Array>;
  /** Resolves when every state change so far went through `save` (the TA's NV commit). */
  flush?(): Promise<void>;
}

/** Options of {@link createFtpmTa}. */
export interface FtpmTaOptions {
  /** Early TA (linked into the TEE image) or REE-loaded (`<uuid>.ta` through tee-supplicant). */
  early: boolean;
  /**
   * CFG_FTPM_TA_TEE_STORAGE_ID: "ree" → TEE_STORAGE_PRIVATE_REE, "rpmb" →
   * TEE_STORAGE_PRIVATE_RPMB; absent → TEE_STORAGE_PRIVATE (the platform's default).
   */
  storage?: "ree" | "rpmb";
  /** Builds the TPM over the TA's NV (called once per instance, at create). */
  engine: (storage: Storage) => FtpmEngine;
  /** CFG_FTPM_EMULATE_PPI (default false: EMULATE_PPI answers NOT_SUPPORTED). */
  emulatePpi?: boolean;
  /** TA name for traces. Default "fTPM". */
  name?: string;
}

/** TA-side parameter types (GP TEE Internal Core API §4.3.6; numerically equal to TEEC_MEMREF_TEMP_*). */
const MEMREF_INPUT = TEE_PARAM_TYPE.MEMREF_TEMP_INPUT;
const MEMREF_INOUT = TEE_PARAM_TYPE.MEMREF_TEMP_INOUT;
const SUBMIT_PARAM_TYPES = teeParamTypes(MEMREF_INPUT, MEMREF_INOUT, TEE_PARAM_TYPE.NONE, TEE_PARAM_TYPE.NONE);

// Admin object (object 0) layout of this model, 512 bytes, little-endian:
//   0..3   "fTPM" magic      4..7   layout version (1)
//   8..11  state blob length 12..15 chip flags, as optee_ftpm Admin.h TPM_CHIP_STATE: bit 0
//                                   Remanufacture (unused), bit 1 TpmStatePresent
//   16..27 PPI state (Admin.h FTPM_PPI_STATE): PendingPseudoOp, PseudoOpFromLastBoot, ReturnResponse
//   28..   zero
// Objects 1..n hold the engine's state blob in 512-byte slices (the last one zero-padded).
// optee_ftpm keeps its admin area after NV_MEMORY_SIZE in the same block array; the blob here
// has no fixed size, so its length lives in a block of its own, written after the data blocks.
const ADMIN_MAGIC = 0x4d505466; // "fTPM" read as a little-endian u32
const ADMIN_VERSION = 1;
const FLAG_STATE_PRESENT = 1 << 1;

const STARTUP_CLEAR = Uint8Array.of(0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0);
const STARTUP_STATE = Uint8Array.of(0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 1);

/** TPM_CC_EmulatePPI: the vendor command SUBMIT_COMMAND hands to the PPI emulation (optee_ftpm platform/AdminPPI.c). */
export const FTPM_CC_EMULATE_PPI = 0x200001ff;

/** PPI function indices of the emulated PPI (optee_ftpm platform/include/Admin.h, FTPM_PPI_CMD_*; TCG PC Client PPI 1.2). */
export const FTPM_PPI_CMD = /* @__PURE__ */ Object.freeze({
  QUERY: 0,
  VERSION: 1,
  SUBMIT_OP_REQ: 2,
  GET_PENDING_OP: 3,
  GET_PLATFORM_ACTION: 4,
  RETURN_OP_RESP: 5,
  SUBMIT_USER_LANG: 6,
  SUBMIT_OP_REQ2: 7,
  GET_USER_CONF: 8,
});

/** FTPM_PPI_VERSION: the ASCII string "1.2" as a little-endian u32 (optee_ftpm Admin.h). */
export const FTPM_PPI_VERSION = 0x00322e31;

/**
 * Builds the fTPM trusted application over a TPM engine.
 *
 * Behaviour (optee_ftpm fTPM.c):
 * - OpenSession: every parameter must be NONE, else BAD_PARAMETERS; a second session while one
 *   is open gets ACCESS_CONFLICT (the TEE core normally answers BUSY before the TA sees it).
 * - SUBMIT_COMMAND (0): param types exactly [MEMREF_INPUT, MEMREF_INOUT, NONE, NONE] as the TA
 *   sees them (the TEE core maps the client's TEMP/WHOLE/PARTIAL memrefs to these); both buffer
 *   sizes 1..4096 else BAD_PARAMETERS; the command length in header bytes 2–5 must not exceed
 *   the command buffer (BAD_PARAMETERS); a response longer than the response buffer gives
 *   SHORT_BUFFER with the part that fits written; the response size is not written back.
 * - EMULATE_PPI (1): NOT_SUPPORTED unless `emulatePpi`; then the same checks and optee_ftpm's
 *   emulated PPI 1.2 (platform/AdminPPI.c: QUERY, VERSION, GET_PENDING_OP, SUBMIT_OP_REQ2 with
 *   the pending operation kept in NV, GET_USER_CONF ...), whose result size is written back.
 *   With `emulatePpi`, SUBMIT_COMMAND also answers the vendor command TPM_CC_EmulatePPI
 *   (0x200001FF) itself.
 * - other command ids: BAD_PARAMETERS.
 * - Create: reads every NV object; a missing one means first boot (the engine manufactures);
 *   any other storage error panics (TEE_Panic(BAD_STATE)), which the client sees as
 *   TARGET_DEAD. Then _TPM_Init, Startup(STATE) if TpmStatePresent is set, otherwise or on
 *   failure Startup(CLEAR), and the flag is set and persisted.
 * - NV commit: only the 512-byte objects whose bytes changed since the last write are written
 *   (optee_ftpm NVMem.c, _plat__MarkDirtyBlocks and _plat__NvWriteBack). A failed write panics
 *   the TA. Divergence, on purpose: optee_ftpm's _plat__NvWriteBack marks NV uninitialised and
 *   returns, and _plat__NvCommit reports success anyway, so the command's success response goes
 *   out for a change that was never stored; this model never answers a change it did not store.
 * - Destroy: flushes NV.
 *
 * @param options - early or REE-loaded, storage id, engine factory, PPI emulation
 * @returns the TA definition to give the TEE
 * @throws TpmArgumentError if an option is malformed
 */
export function createFtpmTa(options: FtpmTaOptions): TaDefinition {
  if (options === null || typeof options !== "object") throw new TpmArgumentError("createFtpmTa: options must be an object");
  if (typeof options.early !== "boolean") throw new TpmArgumentError("createFtpmTa: early must be a boolean");
  if (typeof options.engine !== "function") throw new TpmArgumentError("createFtpmTa: engine must be a function");
  if (options.storage !== undefined && options.storage !== "ree" && options.storage !== "rpmb") {
    throw new TpmArgumentError(`createFtpmTa: storage must be "ree" or "rpmb", not ${String(options.storage)}`);
  }
  const storageId = options.storage === "ree" ? TEE_STORAGE.PRIVATE_REE : options.storage === "rpmb" ? TEE_STORAGE.PRIVATE_RPMB : TEE_STORAGE.PRIVATE;
  const emulatePpi = options.emulatePpi === true;
  const engineFactory = options.engine;
  return {
    uuid: FTPM_TA_UUID,
    name: options.name ?? "fTPM",
    flags: TA_FLAG.SINGLE_INSTANCE | TA_FLAG.INSTANCE_KEEP_ALIVE | TA_FLAG.DEVICE_ENUM_TEE_STORAGE_PRIVATE,
    early: options.early,
    instantiate: () => new FtpmInstance(storageId, emulatePpi, engineFactory),
  };
}

function isPanic(e: unknown): boolean {
  return e instanceof TaPanicError;
}

function teeCodeOf(e: unknown): number | undefined {
  const c = (e as { teeCode?: unknown } | null)?.teeCode;
  return typeof c === "number" ? c >>> 0 : undefined;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One instance of the fTPM TA (the TA's globals live here: a respawn starts afresh). */
class FtpmInstance implements TrustedApplication {
  #env: TaEnvironment | undefined;
  #engine: FtpmEngine | undefined;
  #sessionActive = false;
  #flags = 0;
  /** FTPM_PPI_STATE: PendingPseudoOp, PseudoOpFromLastBoot, ReturnResponse. */
  readonly #ppi = [0, 0, 0];
  #blobLength = 0;
  #blob: Uint8Array | undefined;
  /** What each object holds as last read or written (index 0 = admin). */
  readonly #written: (Uint8Array | undefined)[] = [];
  /** A write that failed: the instance must die (rethrown as a panic by the entry point). */
  #fatal: unknown;

  constructor(
    readonly storageId: number,
    readonly emulatePpi: boolean,
    readonly engineFactory: (storage: Storage) => FtpmEngine,
  ) {}

  async create(env: TaEnvironment): Promise<number> {
    this.#env = env;
    const needsManufacture = await this.#readAll(env);
    const storage: Storage = {
      load: async () => (needsManufacture ? undefined : this.#blob?.slice()),
      save: (state) => this.#save(state),
    };
    const engine = this.engineFactory(storage);
    this.#engine = engine;
    try {
      await engine.start();
    } catch (e) {
      if (isPanic(e)) throw e;
      env.log(`fTPM: _TPM_Init failed: ${(e as Error)?.message ?? String(e)}`);
      env.panic(TEE_RESULT.BAD_STATE);
    }
    this.#checkFatal();
    let started = false;
    if (this.#flags & FLAG_STATE_PRESENT) started = rcOf(await engine.execute(STARTUP_STATE.slice(), 0)) === 0;
    this.#checkFatal();
    if (!started) {
      await engine.execute(STARTUP_CLEAR.slice(), 0);
      this.#checkFatal();
    }
    this.#flags |= FLAG_STATE_PRESENT;
    await engine.flush?.();
    this.#checkFatal();
    await this.#writeAdmin();
    return TEE_RESULT.SUCCESS;
  }

  async destroy(): Promise<void> {
    try {
      await this.#engine?.flush?.();
    } catch {
      // the write failure was recorded by save; an instance being released has no caller to tell
    }
  }

  openSession(_session: TaSession, paramTypes: number): number {
    if ((paramTypes & 0xffff) !== 0) return TEE_RESULT.BAD_PARAMETERS;
    if (this.#sessionActive) return TEE_RESULT.ACCESS_CONFLICT;
    this.#sessionActive = true;
    return TEE_RESULT.SUCCESS;
  }

  closeSession(): void {
    this.#sessionActive = false;
  }

  async invoke(_session: TaSession, command: number, paramTypes: number, params: TaParam[]): Promise<number> {
    switch (command) {
      case FTPM_TA_CMD.SUBMIT_COMMAND:
        return this.#submit(paramTypes, params);
      case FTPM_TA_CMD.EMULATE_PPI: {
        if (!this.emulatePpi) return TEE_RESULT.NOT_SUPPORTED;
        return this.#emulatePpi(paramTypes, params);
      }
      default:
        return TEE_RESULT.BAD_PARAMETERS;
    }
  }

  async #submit(paramTypes: number, params: TaParam[]): Promise<number> {
    const bad = checkBuffers(paramTypes, params);
    if (bad !== 0) return bad;
    const cmdBuf = params[0]!.buffer!;
    const rspParam = params[1]!;
    const rspBuf = rspParam.buffer!;
    // fTPM_Submit_Command copies the buffer, then reads the command length from header bytes 2–5
    // (bytes past a buffer shorter than 6 read as 0). One copy of exactly the command: the same
    // bytes as a copy of the whole buffer cut to the length, with one allocation and no view.
    const cmdLen = (((cmdBuf[2] ?? 0) << 24) | ((cmdBuf[3] ?? 0) << 16) | ((cmdBuf[4] ?? 0) << 8) | (cmdBuf[5] ?? 0)) >>> 0;
    if (cmdLen > cmdBuf.length) return TEE_RESULT.BAD_PARAMETERS;
    const engine = this.#engine;
    if (!engine) return this.#env!.panic(TEE_RESULT.BAD_STATE);
    // fTPM_Submit_Command offers the command to the PPI emulation first (_admin__PPICommand)
    const command = cmdBuf.slice(0, cmdLen);
    const rsp = (this.emulatePpi ? await this.#ppiCommand(command) : undefined) ?? (await engine.execute(command, 0));
    this.#checkFatal();
    if (rsp.length > rspBuf.length) {
      rspBuf.set(rsp.subarray(0, rspBuf.length));
      return TEE_RESULT.SHORT_BUFFER;
    }
    rspBuf.set(rsp);
    return TEE_RESULT.SUCCESS;
  }

  /**
   * fTPM_Emulate_PPI and _admin__PPIRequest (optee_ftpm fTPM.c, platform/AdminPPI.c): the buffer
   * holds FunctionIndex [+ Op] as big-endian u32s; the answer is the function's results as
   * little-endian u32s (host order on Arm) and its size is written back. A request shorter than
   * 4 bytes (or with 1–3 bytes after the index) is dropped: SUCCESS, size = the buffer's. A
   * missing Op reads as 0 (optee_ftpm leaves it uninitialised).
   */
  async #emulatePpi(paramTypes: number, params: TaParam[]): Promise<number> {
    const bad = checkBuffers(paramTypes, params);
    if (bad !== 0) return bad;
    const cmd = params[0]!.buffer!;
    const rspParam = params[1]!;
    const rspBuf = rspParam.buffer!;
    const rest = cmd.length - 4;
    if (cmd.length < 4 || (rest > 0 && rest < 4)) {
      rspParam.size = rspBuf.length;
      return TEE_RESULT.SUCCESS;
    }
    const dv = new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
    const results = await this.#ppiExecute(dv.getUint32(0, false), rest >= 4 ? dv.getUint32(4, false) : 0);
    const out = new Uint8Array(results.length * 4);
    results.forEach((v, i) => new DataView(out.buffer).setUint32(i * 4, v >>> 0, true));
    if (out.length > rspBuf.length) {
      rspBuf.set(out.subarray(0, rspBuf.length));
      return TEE_RESULT.SHORT_BUFFER;
    }
    rspBuf.set(out);
    rspParam.size = out.length;
    return TEE_RESULT.SUCCESS;
  }

  /**
   * _admin__PPICommand: TPM_CC_EmulatePPI sent through SUBMIT_COMMAND. Returns undefined for any
   * other command (it goes to the TPM). Header fields big-endian, results little-endian.
   */
  async #ppiCommand(cmd: Uint8Array): Promise<Uint8Array | undefined> {
    if (cmd.length < 10) return undefined;
    const dv = new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
    if (dv.getUint32(6, false) !== FTPM_CC_EMULATE_PPI) return undefined;
    const answer = (rc: number, results: number[] = []): Uint8Array => {
      const r = new Uint8Array(10 + 4 * results.length);
      const w = new DataView(r.buffer);
      w.setUint16(0, 0x8001, false);
      w.setUint32(2, r.length, false);
      w.setUint32(6, rc, false);
      results.forEach((v, i) => w.setUint32(10 + 4 * i, v >>> 0, true));
      return r;
    };
    let remaining = cmd.length - 10;
    if (dv.getUint16(0, false) !== 0x8001) return answer(0x01e); // TPM_RC_BAD_TAG
    if (dv.getUint32(2, false) < remaining || remaining < 4) return answer(0x195); // TPM_RC_COMMAND_SIZE
    const fn = dv.getUint32(10, false);
    remaining -= 4;
    let op = 0;
    if (fn === FTPM_PPI_CMD.SUBMIT_OP_REQ2 || fn === FTPM_PPI_CMD.GET_USER_CONF) {
      if (remaining < 4) return answer(0x195);
      op = dv.getUint32(14, false);
    }
    if (fn > FTPM_PPI_CMD.GET_USER_CONF) return answer(0x101); // TPM_RC_FAILURE
    return answer(0, await this.#ppiExecute(fn, op));
  }

  /** ExecutePPICommand (optee_ftpm platform/AdminPPI.c): the results of one PPI function; [] for an unknown one. */
  async #ppiExecute(fn: number, op: number): Promise<number[]> {
    const C = FTPM_PPI_CMD;
    switch (fn) {
      case C.QUERY:
        return [0x1ab]; // the functions supported, per PPI 1.2
      case C.VERSION:
        return [FTPM_PPI_VERSION];
      case C.SUBMIT_OP_REQ:
      case C.GET_PLATFORM_ACTION:
        return [2]; // reboot / general failure
      case C.GET_PENDING_OP:
        return [0, this.#ppi[0]!];
      case C.RETURN_OP_RESP:
        return [0, this.#ppi[1]!, this.#ppi[2]!];
      case C.SUBMIT_USER_LANG:
        return [3]; // not implemented
      case C.SUBMIT_OP_REQ2:
        // ops 0–16 and 19–22 are accepted and kept pending (saved to NV); 17, 18 and the rest: not implemented
        if (op <= 22 && op !== 17 && op !== 18) {
          this.#ppi[0] = op;
          await this.#writeAdmin();
          return [0];
        }
        return [1];
      case C.GET_USER_CONF:
        if (op === 5 || op === 14 || op === 21 || op === 22) return [3]; // a clear: allowed, physical presence required
        if (op <= 11) return [4]; // allowed, physical presence not required
        return [0]; // not implemented
      default:
        return [];
    }
  }

  /** Panics if a write failed since the last check. */
  #checkFatal(): void {
    if (this.#fatal === undefined) return;
    const e = this.#fatal;
    if (isPanic(e)) throw e;
    this.#env!.log(`fTPM: NV write back failed: ${(e as Error)?.message ?? String(e)}`);
    this.#env!.panic(TEE_RESULT.BAD_STATE);
  }

  /** _plat__NvInitFromStorage: reads the admin object and every data block. Returns true when the engine must manufacture. */
  async #readAll(env: TaEnvironment): Promise<boolean> {
    const admin = await this.#readObject(env, 0);
    if (admin === undefined) return true;
    const dv = new DataView(admin.buffer, admin.byteOffset, admin.byteLength);
    if (admin.length !== FTPM_NV_BLOCK_SIZE || dv.getUint32(0, true) !== ADMIN_MAGIC || dv.getUint32(4, true) !== ADMIN_VERSION) {
      // like the chip-revision mismatch of _plat__NvInitFromStorage: wipe and re-manufacture
      env.log("fTPM: NV admin object unrecognised: re-manufacturing");
      return true;
    }
    this.#written[0] = admin;
    const length = dv.getUint32(8, true);
    const flags = dv.getUint32(12, true);
    const count = Math.ceil(length / FTPM_NV_BLOCK_SIZE);
    const blob = new Uint8Array(count * FTPM_NV_BLOCK_SIZE);
    for (let i = 0; i < count; i++) {
      const block = await this.#readObject(env, i + 1);
      if (block === undefined) return true; // a missing object: TPM_Manufacture, as optee_ftpm
      if (block.length !== FTPM_NV_BLOCK_SIZE) {
        // "Give up on failed or incomplete reads" (_plat__NvInitFromStorage) → create panics
        env.log(`fTPM: NV object ${i + 1} has ${block.length} bytes, not ${FTPM_NV_BLOCK_SIZE}`);
        env.panic(TEE_RESULT.BAD_STATE);
      }
      blob.set(block, i * FTPM_NV_BLOCK_SIZE);
      this.#written[i + 1] = block;
    }
    this.#flags = flags;
    for (let i = 0; i < 3; i++) this.#ppi[i] = dv.getUint32(16 + 4 * i, true);
    this.#blobLength = length;
    this.#blob = blob.subarray(0, length);
    return false;
  }

  async #readObject(env: TaEnvironment, index: number): Promise<Uint8Array | undefined> {
    try {
      return await env.storage.read(this.storageId, ftpmNvObjectId(index));
    } catch (e) {
      if (isPanic(e)) throw e;
      if (teeCodeOf(e) === TEE_RESULT.ITEM_NOT_FOUND) return undefined;
      env.log(`fTPM: opening NV object ${index} failed: ${(e as Error)?.message ?? String(e)}`);
      return env.panic(TEE_RESULT.BAD_STATE);
    }
  }

  /** The engine's save: writes the data blocks that changed, then the admin object if it changed. */
  async #save(state: Uint8Array): Promise<void> {
    if (this.#fatal !== undefined) throw this.#fatal;
    try {
      const count = Math.ceil(state.length / FTPM_NV_BLOCK_SIZE);
      for (let i = 0; i < count; i++) {
        const block = new Uint8Array(FTPM_NV_BLOCK_SIZE);
        block.set(state.subarray(i * FTPM_NV_BLOCK_SIZE, Math.min(state.length, (i + 1) * FTPM_NV_BLOCK_SIZE)));
        if (sameBytes(this.#written[i + 1], block)) continue;
        await this.#env!.storage.write(this.storageId, ftpmNvObjectId(i + 1), block);
        this.#written[i + 1] = block;
      }
      this.#blobLength = state.length;
      await this.#writeAdmin();
    } catch (e) {
      this.#fatal = e;
      throw e;
    }
  }

  async #writeAdmin(): Promise<void> {
    const admin = new Uint8Array(FTPM_NV_BLOCK_SIZE);
    const dv = new DataView(admin.buffer);
    dv.setUint32(0, ADMIN_MAGIC, true);
    dv.setUint32(4, ADMIN_VERSION, true);
    dv.setUint32(8, this.#blobLength, true);
    dv.setUint32(12, this.#flags, true);
    for (let i = 0; i < 3; i++) dv.setUint32(16 + 4 * i, this.#ppi[i]!, true);
    if (sameBytes(this.#written[0], admin)) return;
    try {
      await this.#env!.storage.write(this.storageId, ftpmNvObjectId(0), admin);
    } catch (e) {
      this.#fatal = e;
      this.#checkFatal();
    }
    this.#written[0] = admin;
  }
}

/** The parameter checks shared by SUBMIT_COMMAND and EMULATE_PPI (fTPM.c). Returns 0 when fine. */
function checkBuffers(paramTypes: number, params: TaParam[]): number {
  if ((paramTypes & 0xffff) !== SUBMIT_PARAM_TYPES) return TEE_RESULT.BAD_PARAMETERS;
  const cmd = params[0]?.buffer;
  const rsp = params[1]?.buffer;
  if (!cmd || !rsp) return TEE_RESULT.BAD_PARAMETERS;
  if (cmd.length === 0 || rsp.length === 0 || cmd.length > FTPM_MAX_BUFFER || rsp.length > FTPM_MAX_BUFFER) return TEE_RESULT.BAD_PARAMETERS;
  return 0;
}

/** The response code of a TPM response (bytes 6–9), or TPM_RC_FAILURE (0x101) when it is too short (fTPM.c, fTPMResponseCode). */
function rcOf(rsp: Uint8Array): number {
  if (rsp.length < 10) return 0x101;
  return new DataView(rsp.buffer, rsp.byteOffset, rsp.byteLength).getUint32(6, false);
}
