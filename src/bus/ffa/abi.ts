/**
 * Arm FF-A (Firmware Framework for Arm A-profile, DEN0077A v1.2) and the TPM service over FF-A
 * (DEN0138 "TPM Service Command Response Buffer Interface Over FF-A"): the function IDs, error
 * codes, version encoding and the TPM service's function IDs and statuses, shared by the driver side
 * (`ffaStart`) and the device side (`FfaBus`, `TpmServicePartition`).
 *
 * Sources: DEN0077A (FF-A v1.2) §13 "Function identifiers", table "Error status codes"; DEN0138 v1.0
 * §3 (function IDs, status codes); Linux include/linux/arm_ffa.h and drivers/firmware/arm_ffa/driver.c
 * (ffa_to_linux_errno()); Linux drivers/char/tpm/tpm_crb_ffa.c (CRB_FFA_* constants,
 * tpm_crb_ffa_to_linux_errno()).
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../../errors/index.js";

/** FF-A function IDs (x0 of a call). SMC32 IDs are 0x840000NN, SMC64 IDs 0xC40000NN. DEN0077A §13. */
export const FFA_FN = /* @__PURE__ */ Object.freeze({
  ERROR: 0x84000060,
  SUCCESS_32: 0x84000061,
  SUCCESS_64: 0xc4000061,
  INTERRUPT: 0x84000062,
  VERSION: 0x84000063,
  FEATURES: 0x84000064,
  RX_RELEASE: 0x84000065,
  RXTX_MAP_32: 0x84000066,
  RXTX_MAP_64: 0xc4000066,
  RXTX_UNMAP: 0x84000067,
  PARTITION_INFO_GET: 0x84000068,
  ID_GET: 0x84000069,
  MSG_WAIT: 0x8400006b,
  YIELD: 0x8400006c,
  RUN: 0x8400006d,
  MSG_SEND_DIRECT_REQ_32: 0x8400006f,
  MSG_SEND_DIRECT_REQ_64: 0xc400006f,
  MSG_SEND_DIRECT_RESP_32: 0x84000070,
  MSG_SEND_DIRECT_RESP_64: 0xc4000070,
  SPM_ID_GET: 0x84000085,
  PARTITION_INFO_GET_REGS: 0xc400008b,
  MSG_SEND_DIRECT_REQ2: 0xc400008d,
  MSG_SEND_DIRECT_RESP2: 0xc400008e,
});

/** FF-A error codes (w2 of FFA_ERROR, signed 32-bit). DEN0077A, table "Error status codes". */
export const FFA_ERROR_CODE = /* @__PURE__ */ Object.freeze({
  NOT_SUPPORTED: -1,
  INVALID_PARAMETERS: -2,
  NO_MEMORY: -3,
  BUSY: -4,
  INTERRUPTED: -5,
  DENIED: -6,
  RETRY: -7,
  ABORTED: -8,
  NO_DATA: -9,
  NOT_READY: -10,
});

/** The errno Linux maps each FF-A error code to (drivers/firmware/arm_ffa/driver.c, ffa_to_linux_errno()); unknown → EINVAL. */
export const FFA_ERROR_ERRNO: Readonly<Record<number, string>> = /* @__PURE__ */ Object.freeze({
  [-1]: "EOPNOTSUPP",
  [-2]: "EINVAL",
  [-3]: "ENOMEM",
  [-4]: "EBUSY",
  [-5]: "EINTR",
  [-6]: "EACCES",
  [-7]: "EAGAIN",
  [-8]: "ECANCELED",
  [-9]: "ENODATA",
  [-10]: "EAGAIN",
});

/** FFA_VERSION's answer when the version is not supported (w0, not wrapped in FFA_ERROR). DEN0077A §13.2. */
export const FFA_VERSION_NOT_SUPPORTED = 0xffffffff;

/** An FF-A version as FFA_VERSION encodes it: bit 31 zero, major in bits 30:16, minor in 15:0. */
export function ffaVersion(major: number, minor: number): number {
  return ((major & 0x7fff) << 16) | (minor & 0xffff);
}

/** FF-A 1.0, 1.1 and 1.2 as FFA_VERSION encodes them (0x10000, 0x10001, 0x10002). */
export const FFA_VERSION_1_0 = 0x10000;
export const FFA_VERSION_1_1 = 0x10001;
export const FFA_VERSION_1_2 = 0x10002;

/** Bits of a partition's properties (PARTITION_INFO_GET descriptor). DEN0077A, table "Partition properties". */
export const FFA_PARTITION_PROP = /* @__PURE__ */ Object.freeze({
  DIRECT_REQ_RECV: 1 << 0,
  DIRECT_REQ_SEND: 1 << 1,
  INDIRECT_MSG: 1 << 2,
  NOTIFICATION_RECV: 1 << 3,
  /** Bits 5:4, the endpoint ID type (0 PE endpoint, 1 SEPID independent, 2 SEPID dependent, 3 auxiliary). */
  ID_TYPE_SHIFT: 4,
  VM_CREATED: 1 << 6,
  VM_DESTROYED: 1 << 7,
  /** The partition runs AArch64 (else callers use 32-bit direct messages). */
  AARCH64: 1 << 8,
  DIRECT_REQ2_RECV: 1 << 9,
  DIRECT_REQ2_SEND: 1 << 10,
});

/** PARTITION_INFO_GET w5 bit 0: return only the count (FF-A v1.1+). */
export const FFA_PARTITION_INFO_GET_COUNT_ONLY = 1;
/** Size of one partition-information descriptor: 8 bytes in FF-A v1.0 (no UUID), 24 bytes from v1.1. */
export const FFA_PARTITION_DESCRIPTOR_SIZE_V1_0 = 8;
export const FFA_PARTITION_DESCRIPTOR_SIZE_V1_1 = 24;

/** The normal-world physical endpoint ID (an OS without a hypervisor). DEN0077A §2.8. */
export const FFA_NS_ENDPOINT_ID = 0;
/** Bit 15 of an endpoint ID marks a secure partition. */
export const FFA_SECURE_ID_BIT = 0x8000;

/** The TPM service's UUID, 17b862a4-1806-4faf-86b3-089a58353861 (DEN0138 §3.1). */
export const TPM_SERVICE_UUID = "17b862a4-1806-4faf-86b3-089a58353861";

/** The TPM service partition's conventional endpoint ID (QEMU SBSA reference: the MS secure partition). */
export const TPM_SERVICE_PARTITION_ID = 0x8002;

/** DEN0138 function IDs (x4 of a TPM service request). DEN0138 §3.2; mu's MANAGE_LOCALITY is implementation-defined. */
export const TPM_SERVICE_FN = /* @__PURE__ */ Object.freeze({
  GET_INTERFACE_VERSION: 0x0f000001,
  GET_FEATURE_INFO: 0x0f000101,
  START: 0x0f000201,
  REGISTER_FOR_NOTIFICATION: 0x0f000301,
  UNREGISTER_FROM_NOTIFICATION: 0x0f000401,
  FINISH_NOTIFIED: 0x0f000501,
  /** DEN0138 v1.1. */
  GET_CRB_INFO: 0x0f000601,
  /** microsoft/mu_feature_ffa TpmServiceLib, implementation-defined; accepted only from EL3 logical partitions (IDs 0xFFxx). */
  MANAGE_LOCALITY: 0x1f000001,
});

/** DEN0138 status codes (x4 of a TPM service response). DEN0138 §3.3. */
export const TPM_SERVICE_STATUS = /* @__PURE__ */ Object.freeze({
  OK: 0x05000001,
  OK_RESULTS_RETURNED: 0x05000002,
  NOFUNC: 0x8e000001,
  NOTSUP: 0x8e000002,
  INVARG: 0x8e000005,
  INV_CRB_CTRL_DATA: 0x8e000006,
  ALREADY: 0x8e000009,
  DENIED: 0x8e00000a,
  NOMEM: 0x8e00000b,
});

/** The errno Linux maps each TPM service status to (drivers/char/tpm/tpm_crb_ffa.c, tpm_crb_ffa_to_linux_errno()); others → EINVAL. */
export const TPM_SERVICE_STATUS_ERRNO: Readonly<Record<number, string>> = /* @__PURE__ */ Object.freeze({
  [0x05000001]: "OK",
  [0x05000002]: "OK",
  [0x8e000001]: "ENOENT",
  [0x8e000002]: "EPERM",
  [0x8e000005]: "EINVAL",
  [0x8e000006]: "ENOEXEC",
  [0x8e000009]: "EEXIST",
  [0x8e00000a]: "EACCES",
  [0x8e00000b]: "ENOMEM",
});

/** START's x5 qualifier: run a command, or act on a locality request. DEN0138 §3.2.3. */
export const TPM_SERVICE_START_QUALIFIER = /* @__PURE__ */ Object.freeze({ COMMAND: 0, LOCALITY: 1 });

/** The DEN0138 interface version every known implementation reports (mu, Trusted Services): 1.0; Arm StMM (2026) reports 1.1. */
export const TPM_SERVICE_INTERFACE_VERSION_1_0 = /* @__PURE__ */ Object.freeze({ major: 1, minor: 0 });

/**
 * A UUID string as the four 32-bit words PARTITION_INFO_GET takes in w1..w4 (the 16 RFC 4122
 * bytes loaded as little-endian u32s): for the TPM service UUID, 0xa462b817, 0xaf4f0618,
 * 0x9a08b386, 0x61383558 (Linux drivers/firmware/arm_ffa/driver.c, ffa_partition_probe()).
 */
export function uuidToWords(uuid: string): [number, number, number, number] {
  const b = uuidBytes(uuid);
  const w = (i: number) => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  return [w(0), w(4), w(8), w(12)];
}

/**
 * A UUID string as the two 64-bit registers DIRECT_REQ2 takes in x2/x3 (the 16 RFC 4122 bytes
 * loaded as little-endian u64s): for the TPM service UUID, x2 = 0xaf4f0618a462b817,
 * x3 = 0x613835589a08b386 (Linux drivers/firmware/arm_ffa/driver.c, ffa_msg_send_direct_req2()).
 */
export function uuidToRegs(uuid: string): [bigint, bigint] {
  const [a, b, c, d] = uuidToWords(uuid);
  return [(BigInt(b) << 32n) | BigInt(a), (BigInt(d) << 32n) | BigInt(c)];
}

/** The 16 bytes of a UUID string in RFC 4122 order (the order of its hex digits). */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TpmArgumentError(`not a UUID (want 8-4-4-4-12 hex digits): ${JSON.stringify(uuid)}`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The nil UUID: PARTITION_INFO_GET with it lists every partition. */
export const NIL_UUID = "00000000-0000-0000-0000-000000000000";
