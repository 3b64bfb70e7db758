/**
 * Operation parameters from a client's {@link TeeOperation} to the TA's {@link TaParam}s and back,
 * with the checks libteec (optee_client libteec/src/tee_client_api.c, teec_pre_process_operation
 * and teec_post_process_operation) and the kernel (Linux drivers/tee/tee_core.c,
 * params_from_user: a memref outside its shared memory is EINVAL) make.
 *
 * @packageDocumentation
 */
import { TeeError } from "../../errors/index.js";
import { TEE_MEM, TEE_ORIGIN, TEE_PARAM_TYPE, TEE_RESULT } from "../../bus/tee/constants.js";
import type { TeeOperation, TeeParam, TeeSharedMemory } from "../../bus/tee/client.js";
import type { TaParam } from "../../bus/tee/ta.js";

/** The TA-side types (GP TEE Internal Core API §4.3.4: TEE_PARAM_TYPE_MEMREF_INPUT 5 ... INOUT 7). */
const TA_MEMREF_IN = 5;
const TA_MEMREF_OUT = 6;
const TA_MEMREF_INOUT = 7;

/** A marshalled operation: the TA's view and how to copy results back into the client's params. */
export interface MarshalledOperation {
  paramTypes: number;
  params: TaParam[];
  writeBack(): void;
}

function bad(message: string, origin: number = TEE_ORIGIN.API): never {
  throw new TeeError(message, TEE_RESULT.BAD_PARAMETERS, origin);
}

function u32(v: unknown, what: string): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(`${what} must be a u32, got ${String(v)}`);
  return v;
}

function sizeOf(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) bad(`${what} must be a non-negative integer, got ${String(v)}`);
  return v;
}

/**
 * Checks and converts `operation` for a call. `ownsShm` tells whether a shared-memory object is a
 * live one of the calling context (the kernel's tee_shm_get_from_id: EINVAL → BAD_PARAMETERS,
 * origin COMMS, otherwise).
 *
 * @throws TeeError BAD_PARAMETERS, origin API (libteec's checks) or COMMS (the kernel's).
 */
export function marshalOperation(operation: TeeOperation | undefined, ownsShm: (shm: TeeSharedMemory) => boolean): MarshalledOperation {
  const list: TeeParam[] = operation === undefined ? [] : (operation?.params as TeeParam[]);
  if (!Array.isArray(list)) bad("operation.params must be an array");
  if (list.length > 4) bad(`an operation has at most 4 parameters, got ${list.length}`);
  const params: TaParam[] = [];
  const backs: (() => void)[] = [];
  let paramTypes = 0;
  for (let i = 0; i < 4; i++) {
    const p = list[i];
    const ta: TaParam = { a: 0, b: 0, buffer: undefined, size: 0 };
    params.push(ta);
    if (p === undefined || p === null) continue;
    if (typeof p !== "object") bad(`parameter ${i} must be an object`);
    const t = p.type;
    let taType = 0;
    switch (t) {
      case TEE_PARAM_TYPE.NONE:
        break;
      case TEE_PARAM_TYPE.VALUE_INPUT:
      case TEE_PARAM_TYPE.VALUE_OUTPUT:
      case TEE_PARAM_TYPE.VALUE_INOUT: {
        taType = t;
        if (t !== TEE_PARAM_TYPE.VALUE_OUTPUT) {
          ta.a = u32(p.a, `parameter ${i} value a`);
          ta.b = u32(p.b, `parameter ${i} value b`);
        }
        if (t !== TEE_PARAM_TYPE.VALUE_INPUT)
          backs.push(() => {
            p.a = ta.a >>> 0;
            p.b = ta.b >>> 0;
          });
        break;
      }
      case TEE_PARAM_TYPE.MEMREF_TEMP_INPUT:
      case TEE_PARAM_TYPE.MEMREF_TEMP_OUTPUT:
      case TEE_PARAM_TYPE.MEMREF_TEMP_INOUT: {
        taType = t;
        const buf = p.buffer;
        if (buf !== undefined && !(buf instanceof Uint8Array)) bad(`parameter ${i}: buffer must be a Uint8Array`);
        const size = p.size === undefined ? (buf?.length ?? 0) : sizeOf(p.size, `parameter ${i} size`);
        if (buf === undefined) {
          // A null temp memref is allowed only with size 0 (teec_pre_process_tmpref).
          if (size > 0) bad(`parameter ${i}: temporary memref of ${size} bytes has no buffer`);
        } else {
          if (size > buf.length) bad(`parameter ${i}: size ${size} exceeds the buffer (${buf.length} bytes)`);
          // libteec copies a temporary memref through a bounce buffer.
          ta.buffer = buf.slice(0, size);
        }
        ta.size = size;
        if (t !== TEE_PARAM_TYPE.MEMREF_TEMP_INPUT)
          backs.push(() => {
            const n = cleanSize(ta.size);
            if (buf && ta.buffer && n <= size) buf.set(ta.buffer.subarray(0, n), 0);
            p.size = n;
          });
        break;
      }
      case TEE_PARAM_TYPE.MEMREF_WHOLE: {
        const shm = checkShm(p.shm, i, ownsShm);
        const dir = shm.flags & (TEE_MEM.INPUT | TEE_MEM.OUTPUT);
        taType = dir === TEE_MEM.INPUT ? TA_MEMREF_IN : dir === TEE_MEM.OUTPUT ? TA_MEMREF_OUT : TA_MEMREF_INOUT;
        ta.buffer = view(shm.buffer, 0, shm.size);
        ta.size = shm.size;
        if (dir & TEE_MEM.OUTPUT) backs.push(() => (p.size = cleanSize(ta.size)));
        break;
      }
      case TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT:
      case TEE_PARAM_TYPE.MEMREF_PARTIAL_OUTPUT:
      case TEE_PARAM_TYPE.MEMREF_PARTIAL_INOUT: {
        const shm = checkShm(p.shm, i, ownsShm);
        const need = t === TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT ? TEE_MEM.INPUT : t === TEE_PARAM_TYPE.MEMREF_PARTIAL_OUTPUT ? TEE_MEM.OUTPUT : TEE_MEM.INPUT | TEE_MEM.OUTPUT;
        // teec_pre_process_partial: the shared memory must allow the direction.
        if ((shm.flags & need) !== need) bad(`parameter ${i}: shared memory flags 0x${shm.flags.toString(16)} do not allow this direction`);
        const offset = p.offset === undefined ? 0 : sizeOf(p.offset, `parameter ${i} offset`);
        const size = p.size === undefined ? shm.size - Math.min(offset, shm.size) : sizeOf(p.size, `parameter ${i} size`);
        if (offset + size > shm.size) bad(`parameter ${i}: offset ${offset} + size ${size} is outside the shared memory (${shm.size} bytes)`, TEE_ORIGIN.COMMS);
        taType = t - (TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT - TA_MEMREF_IN);
        ta.buffer = view(shm.buffer, offset, size);
        ta.size = size;
        if (t !== TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT) backs.push(() => (p.size = cleanSize(ta.size)));
        break;
      }
      default:
        bad(`parameter ${i}: unknown type ${String(t)}`);
    }
    paramTypes |= taType << (i * 4);
  }
  return {
    paramTypes,
    params,
    writeBack() {
      for (const b of backs) b();
    },
  };
}

/**
 * `buf.subarray(offset, offset + size)` without the species lookup of `subarray` (a plain
 * Uint8Array over the same memory; clamped to the buffer as subarray clamps).
 */
function view(buf: Uint8Array, offset: number, size: number): Uint8Array {
  const start = Math.min(offset, buf.length);
  return new Uint8Array(buf.buffer, buf.byteOffset + start, Math.max(0, Math.min(offset + size, buf.length) - start));
}

function cleanSize(v: unknown): number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

function checkShm(shm: TeeSharedMemory | undefined, i: number, ownsShm: (shm: TeeSharedMemory) => boolean): TeeSharedMemory {
  if (shm === undefined || shm === null || typeof shm !== "object") bad(`parameter ${i}: a registered memref needs shm`);
  if (!ownsShm(shm)) bad(`parameter ${i}: shared memory ${String(shm.id)} is not a live allocation of this context`, TEE_ORIGIN.COMMS);
  return shm;
}
