/**
 * Numbers of the GlobalPlatform TEE Client API and of OP-TEE's normal-world ABI, shared by the TEE
 * model (`devices/optee`), its clients (`transports/ftpm-tee`) and the hypervisor mediator.
 *
 * Sources: GlobalPlatform TEE Client API Specification v1.0 (GPD_SPE_007) §4.4 (return codes,
 * return origins, login methods, parameter types); GlobalPlatform TEE Internal Core API v1.3.1
 * §3.2 and §5 (TEE_STORAGE_PRIVATE*), optee_os lib/libutee/include/tee_api_defines.h and
 * tee_api_defines_extensions.h (TEE_STORAGE_PRIVATE_REE / _RPMB, TEE_ERROR_STORAGE_NOT_AVAILABLE);
 * optee_os lib/libutee/include/user_ta_header.h (TA_FLAG_*); Linux include/uapi/linux/tee.h
 * (TEE_IOCTL_LOGIN_REE_KERNEL); optee_os core/include/optee_msg.h and optee_smc.h (message
 * commands, SMC function IDs and return values), optee_rpc_cmd.h (RPC commands).
 *
 * @packageDocumentation
 */

/** TEEC_Result / TEE_Result values (GP TEE Client API §4.4.2; optee_os tee_api_defines.h). */
export const TEE_RESULT = /* @__PURE__ */ Object.freeze({
  SUCCESS: 0x00000000,
  GENERIC: 0xffff0000,
  ACCESS_DENIED: 0xffff0001,
  CANCEL: 0xffff0002,
  ACCESS_CONFLICT: 0xffff0003,
  EXCESS_DATA: 0xffff0004,
  BAD_FORMAT: 0xffff0005,
  BAD_PARAMETERS: 0xffff0006,
  BAD_STATE: 0xffff0007,
  ITEM_NOT_FOUND: 0xffff0008,
  NOT_IMPLEMENTED: 0xffff0009,
  NOT_SUPPORTED: 0xffff000a,
  NO_DATA: 0xffff000b,
  OUT_OF_MEMORY: 0xffff000c,
  BUSY: 0xffff000d,
  COMMUNICATION: 0xffff000e,
  SECURITY: 0xffff000f,
  SHORT_BUFFER: 0xffff0010,
  EXTERNAL_CANCEL: 0xffff0011,
  TIMEOUT: 0xffff3001,
  OVERFLOW: 0xffff300f,
  TARGET_DEAD: 0xffff3024,
  STORAGE_NO_SPACE: 0xffff3041,
  MAC_INVALID: 0xffff3071,
  SIGNATURE_INVALID: 0xffff3072,
  TIME_NOT_SET: 0xffff5000,
  TIME_NEEDS_RESET: 0xffff5001,
  CORRUPT_OBJECT: 0xf0100001,
  CORRUPT_OBJECT_2: 0xf0100002,
  STORAGE_NOT_AVAILABLE: 0xf0100003,
  STORAGE_NOT_AVAILABLE_2: 0xf0100004,
  UNSUPPORTED_VERSION: 0xf0100005,
  CIPHERTEXT_INVALID: 0xf0100006,
});

/** Where a result came from (TEEC_ORIGIN_*, GP TEE Client API §4.4.3). */
export const TEE_ORIGIN = /* @__PURE__ */ Object.freeze({
  /** libteec's (or the client model's) own argument checks. */
  API: 1,
  /** The transport: a failed ioctl, the kernel's, the hypervisor's or U-Boot's RPC/translation failures. */
  COMMS: 2,
  /** The TEE core (TA not found, TARGET_DEAD, ...). */
  TEE: 3,
  /** A code the trusted application returned. */
  TRUSTED_APP: 4,
});

/** The name of a result code ("TARGET_DEAD"), or its hex when unknown. */
export function teeResultName(code: number): string {
  const c = code >>> 0;
  for (const [k, v] of Object.entries(TEE_RESULT)) if (v === c) return k;
  return `0x${c.toString(16).padStart(8, "0")}`;
}

/** The name of an origin ("TEE"), or its number when unknown. */
export function teeOriginName(origin: number): string {
  for (const [k, v] of Object.entries(TEE_ORIGIN)) if (v === origin) return k;
  return String(origin);
}

/** Parameter types (TEEC_NONE ... TEEC_MEMREF_PARTIAL_INOUT, GP TEE Client API §4.5.4). */
export const TEE_PARAM_TYPE = /* @__PURE__ */ Object.freeze({
  NONE: 0x0,
  VALUE_INPUT: 0x1,
  VALUE_OUTPUT: 0x2,
  VALUE_INOUT: 0x3,
  MEMREF_TEMP_INPUT: 0x5,
  MEMREF_TEMP_OUTPUT: 0x6,
  MEMREF_TEMP_INOUT: 0x7,
  MEMREF_WHOLE: 0xc,
  MEMREF_PARTIAL_INPUT: 0xd,
  MEMREF_PARTIAL_OUTPUT: 0xe,
  MEMREF_PARTIAL_INOUT: 0xf,
});

/** TEEC_PARAM_TYPES(t0, t1, t2, t3): `t0 | t1 << 4 | t2 << 8 | t3 << 12`. */
export function teeParamTypes(t0: number, t1 = 0, t2 = 0, t3 = 0): number {
  return (t0 & 0xf) | ((t1 & 0xf) << 4) | ((t2 & 0xf) << 8) | ((t3 & 0xf) << 12);
}

/** The type of parameter `index` (0–3) in a packed `paramTypes` word. */
export function teeParamTypeGet(paramTypes: number, index: number): number {
  return (paramTypes >>> (index * 4)) & 0xf;
}

/** Login methods (TEEC_LOGIN_*, GP TEE Client API §4.5.5) and the kernel-only REE_KERNEL (Linux uapi tee.h). */
export const TEE_LOGIN = /* @__PURE__ */ Object.freeze({
  PUBLIC: 0x0,
  USER: 0x1,
  GROUP: 0x2,
  APPLICATION: 0x4,
  USER_APPLICATION: 0x5,
  GROUP_APPLICATION: 0x6,
  /** TEE_IOCTL_LOGIN_REE_KERNEL: a client inside the kernel (or U-Boot). */
  REE_KERNEL: 0x80000000,
});

/** Shared-memory flags (TEEC_MEM_INPUT / TEEC_MEM_OUTPUT, GP TEE Client API §4.5.6). */
export const TEE_MEM = /* @__PURE__ */ Object.freeze({ INPUT: 0x1, OUTPUT: 0x2 });

/** Storage identifiers for persistent objects (GP TEE Internal Core API §5.2; optee_os tee_api_defines_extensions.h). */
export const TEE_STORAGE = /* @__PURE__ */ Object.freeze({
  /** The platform's default private storage: REE FS when built in, else RPMB FS. */
  PRIVATE: 0x00000001,
  PRIVATE_REE: 0x80000000,
  PRIVATE_RPMB: 0x80000100,
});

/** TA property flags (optee_os lib/libutee/include/user_ta_header.h, TA_FLAG_*). */
export const TA_FLAG = /* @__PURE__ */ Object.freeze({
  SINGLE_INSTANCE: 1 << 2,
  MULTI_SESSION: 1 << 3,
  INSTANCE_KEEP_ALIVE: 1 << 4,
  DEVICE_ENUM: 1 << 9,
  DEVICE_ENUM_SUPP: 1 << 10,
  DEVICE_ENUM_TEE_STORAGE_PRIVATE: 1 << 12,
  INSTANCE_KEEP_CRASHED: 1 << 13,
});

/** Message commands of `struct optee_msg_arg` (optee_os core/include/optee_msg.h, OPTEE_MSG_CMD_*). */
export const OPTEE_MSG_CMD = /* @__PURE__ */ Object.freeze({
  OPEN_SESSION: 0,
  INVOKE_COMMAND: 1,
  CLOSE_SESSION: 2,
  CANCEL: 3,
  REGISTER_SHM: 4,
  UNREGISTER_SHM: 5,
});

/** SMC function IDs (optee_os core/include/optee_smc.h): bit 31 fast call, SMC32, owner 50 (trusted OS). */
export const OPTEE_SMC = /* @__PURE__ */ Object.freeze({
  RETURN_FROM_RPC: 0x32000003,
  CALL_WITH_ARG: 0x32000004,
  GET_SHM_CONFIG: 0xb2000007,
  EXCHANGE_CAPABILITIES: 0xb2000009,
  VM_CREATED: 0xb200000d,
  VM_DESTROYED: 0xb200000e,
  GET_THREAD_COUNT: 0xb200000f,
  CALLS_UID: 0xb200ff01,
});

/** SMC return values in a0 (optee_smc.h, OPTEE_SMC_RETURN_*). */
export const OPTEE_SMC_RETURN = /* @__PURE__ */ Object.freeze({
  OK: 0,
  ETHREAD_LIMIT: 1,
  EBUSY: 2,
  ERESUME: 3,
  EBADADDR: 4,
  EBADCMD: 5,
  ENOMEM: 6,
  ENOTAVAIL: 7,
  UNKNOWN_FUNCTION: 0xffffffff,
});

/** Secure-world capability bits of EXCHANGE_CAPABILITIES (optee_smc.h, OPTEE_SMC_SEC_CAP_*). */
export const OPTEE_SMC_SEC_CAP = /* @__PURE__ */ Object.freeze({
  DYNAMIC_SHM: 1 << 2,
  VIRTUALIZATION: 1 << 3,
  RPMB_PROBE: 1 << 7,
});

/** The hypervisor's client id (optee_os, HYP_CLNT_ID). */
export const OPTEE_HYP_CLIENT_ID = 0;

/** RPC commands from the secure world to the normal world (optee_os core/include/optee_rpc_cmd.h, OPTEE_RPC_CMD_*). */
export const OPTEE_RPC_CMD = /* @__PURE__ */ Object.freeze({
  LOAD_TA: 0,
  RPMB: 1,
  FS: 2,
  GET_TIME: 3,
  NOTIFICATION: 4,
  SUSPEND: 5,
  SHM_ALLOC: 6,
  SHM_FREE: 7,
  GPROF: 9,
  SOCKET: 10,
  FTRACE: 11,
  PLUGIN: 12,
  I2C: 21,
  RPMB_PROBE_RESET: 22,
  RPMB_PROBE_NEXT: 23,
  RPMB_FRAMES: 24,
});

/** Which side serves an RPC command (optee_client tee-supplicant, Linux drivers/tee/optee/rpc.c). */
export function rpcServedByKernel(cmd: number): boolean {
  return cmd === OPTEE_RPC_CMD.GET_TIME || cmd === OPTEE_RPC_CMD.NOTIFICATION || cmd === OPTEE_RPC_CMD.SUSPEND || cmd === OPTEE_RPC_CMD.I2C;
}

/** The fTPM TA's UUID (optee_ftpm user_ta_header_defines.h TA_UUID; Linux tpm_ftpm_tee.h ftpm_ta_uuid). */
export const FTPM_TA_UUID = "bc50d971-d4c9-42c4-82cb-343fb7f37896";

/** Command ids of the fTPM TA (optee_ftpm include/fTPM.h; Linux tpm_ftpm_tee.h FTPM_OPTEE_TA_SUBMIT_COMMAND). */
export const FTPM_TA_CMD = /* @__PURE__ */ Object.freeze({
  /** TA_FTPM_SUBMIT_COMMAND: [MEMREF_INPUT command, MEMREF_INOUT response, NONE, NONE]. */
  SUBMIT_COMMAND: 0,
  /** TA_FTPM_EMULATE_PPI: same layout; NOT_SUPPORTED unless built with CFG_FTPM_EMULATE_PPI. */
  EMULATE_PPI: 1,
});

/** MAX_COMMAND_SIZE and MAX_RESPONSE_SIZE of the fTPM TA and its drivers: 4096 bytes each (optee_ftpm fTPM.h, tpm_ftpm_tee.h). */
export const FTPM_MAX_BUFFER = 4096;

/** The OP-TEE device pseudo-TA the TEE bus queries for devices (optee_os core/pta/device.c). */
export const PTA_DEVICE_UUID = "7011a688-ddde-4053-a5a9-7b3c4ddf13b8";

/** OP-TEE's HW_UNIQUE_KEY_LENGTH: the HUK is 16 bytes (optee_os core/include/kernel/tee_common_otp.h). */
export const HUK_LENGTH = 16;
