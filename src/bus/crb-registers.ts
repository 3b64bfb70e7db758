/**
 * CRB (Command Response Buffer) register layout and bits, shared by the `crb` driver and the
 * `CrbDevice` model. Offsets are relative to the start of one locality's 4 KiB register page
 * (locality L's page starts at L × {@link CRB_LOCALITY_STRIDE}). Registers are little-endian.
 *
 * Sources: TCG PC Client Platform TPM Profile (PTP), "CRB Interface" register tables; Linux
 * drivers/char/tpm/tpm_crb.c (struct crb_regs_head, struct crb_regs_tail). QEMU's reset values
 * (buffer size, address, INTF_ID) describe one device, not the interface: they live with the
 * device model (`CRB_QEMU_*`, exported with `CrbDevice`).
 *
 * @packageDocumentation
 */
import { TIMEOUTS_TPM2 } from "../core/durations.js";

/** Register offsets inside one locality's CRB page. PTP, table "CRB Interface Registers". */
export const CRB_REG = {
  /** TPM_LOC_STATE_x: established b0, locAssigned b1, activeLocality b4:2, tpmRegValidSts b7. */
  LOC_STATE: 0x00,
  /** TPM_LOC_CTRL_x (write): requestAccess 1, relinquish 2, seize 4, resetEstablishment 8. */
  LOC_CTRL: 0x08,
  /** TPM_LOC_STS_x: granted b0, beenSeized b1. */
  LOC_STS: 0x0c,
  /** TPM_CRB_INTF_ID_x, low 32 bits: type, version, capabilities, selector, RID. */
  INTF_ID: 0x30,
  /** TPM_CRB_INTF_ID_x, high 32 bits: VID b15:0, DID b31:16. */
  INTF_ID2: 0x34,
  /** TPM_CRB_CTRL_EXT_x. */
  CTRL_EXT: 0x38,
  /** TPM_CRB_CTRL_REQ_x: cmdReady b0, goIdle b1; the TPM clears the bit when done. */
  CTRL_REQ: 0x40,
  /** TPM_CRB_CTRL_STS_x: tpmSts b0 (fatal error), tpmIdle b1. */
  CTRL_STS: 0x44,
  /** TPM_CRB_CTRL_CANCEL_x: b0. */
  CTRL_CANCEL: 0x48,
  /** TPM_CRB_CTRL_START_x: b0; the TPM clears it when the response is ready. */
  CTRL_START: 0x4c,
  /** TPM_CRB_INT_ENABLE_x. */
  INT_ENABLE: 0x50,
  /** TPM_CRB_INT_STS_x. */
  INT_STS: 0x54,
  /** TPM_CRB_CTRL_CMD_SIZE_x. */
  CMD_SIZE: 0x58,
  /** TPM_CRB_CTRL_CMD_LADDR_x. */
  CMD_PA_LOW: 0x5c,
  /** TPM_CRB_CTRL_CMD_HADDR_x. */
  CMD_PA_HIGH: 0x60,
  /** TPM_CRB_CTRL_RSP_SIZE_x. */
  RSP_SIZE: 0x64,
  /** TPM_CRB_CTRL_RSP_ADDR_x, 64-bit: low half here, high half at +4. */
  RSP_PA: 0x68,
  /** TPM_CRB_DATA_BUFFER_x: where the buffer conventionally starts. */
  DATA_BUFFER: 0x80,
} as const;

/** Distance between locality pages (PTP, "CRB Interface Registers": one 4 KiB page per locality). */
export const CRB_LOCALITY_STRIDE = 0x1000;
/** Size of one locality page. */
export const CRB_PAGE_SIZE = 0x1000;
/** Size of the control area at the start of each page (registers 0x00–0x7F). */
export const CRB_CONTROL_AREA_SIZE = 0x80;

/** TPM_LOC_STATE_x bits. PTP, CRB "TPM_LOC_STATE_x". */
export const CRB_LOC_STATE = {
  ESTABLISHED: 1 << 0,
  LOC_ASSIGNED: 1 << 1,
  ACTIVE_LOCALITY_SHIFT: 2,
  ACTIVE_LOCALITY_MASK: 0x7 << 2,
  REG_VALID: 1 << 7,
} as const;

/** TPM_LOC_CTRL_x values. PTP, CRB "TPM_LOC_CTRL_x". */
export const CRB_LOC_CTRL = {
  REQUEST_ACCESS: 1 << 0,
  RELINQUISH: 1 << 1,
  SEIZE: 1 << 2,
  RESET_ESTABLISHMENT: 1 << 3,
} as const;

/** TPM_LOC_STS_x bits. PTP, CRB "TPM_LOC_STS_x". */
export const CRB_LOC_STS = { GRANTED: 1 << 0, BEEN_SEIZED: 1 << 1 } as const;

/** TPM_CRB_CTRL_REQ_x bits. PTP, CRB "TPM_CRB_CTRL_REQ_x". */
export const CRB_CTRL_REQ = { CMD_READY: 1 << 0, GO_IDLE: 1 << 1 } as const;

/** TPM_CRB_CTRL_STS_x bits. PTP, CRB "TPM_CRB_CTRL_STS_x". */
export const CRB_CTRL_STS = { TPM_STS: 1 << 0, TPM_IDLE: 1 << 1 } as const;

/** TPM_CRB_CTRL_START_x / CTRL_CANCEL_x bit. PTP, CRB "TPM_CRB_CTRL_START_x" and "TPM_CRB_CTRL_CANCEL_x". */
export const CRB_INVOKE = 1;

/** Decoded TPM_CRB_INTF_ID_x (64 bits as two 32-bit halves). PTP, "TPM_CRB_INTF_ID_x"; Linux drivers/char/tpm/tpm_crb.c, crb_map_io(). */
export interface CrbInterfaceId {
  /** [3:0] 0 = FIFO, 1 = CRB, 0xF = TIS 1.3. */
  type: number;
  /** [7:4] interface version. */
  version: number;
  /** [8] the interface offers five localities. */
  capLocality: boolean;
  /** [9] idle bypass (fast idle). */
  capIdleBypass: boolean;
  /** [12:11] data transfer size support (0 = legacy, 1 = 8, 2 = 32, 3 = 64 bytes). */
  capDataXferSize: number;
  /** [13] the FIFO interface is supported. */
  capFifo: boolean;
  /** [14] the CRB interface is supported. */
  capCrb: boolean;
  /** [18:17] interface selector (0 FIFO, 1 CRB). */
  interfaceSelector: number;
  /** [19] the selector is locked. */
  intfSelLock: boolean;
  /** [31:24] revision id. */
  rid: number;
  /** [47:32] vendor id. */
  vid: number;
  /** [63:48] device id. */
  did: number;
}

/** INTF_ID type value for an active CRB interface. */
export const CRB_INTF_TYPE_CRB = 1;

/**
 * Decodes INTF_ID (low and high 32-bit halves). PTP, "TPM_CRB_INTF_ID_x"
 *
 * @param low - the 32-bit value at INTF_ID (0x30).
 * @param high - the 32-bit value at INTF_ID + 4 (0x34).
 * @returns the decoded fields.
 */
export function decodeInterfaceId(low: number, high: number): CrbInterfaceId {
  return {
    type: low & 0xf,
    version: (low >>> 4) & 0xf,
    capLocality: ((low >>> 8) & 1) === 1,
    capIdleBypass: ((low >>> 9) & 1) === 1,
    capDataXferSize: (low >>> 11) & 0x3,
    capFifo: ((low >>> 13) & 1) === 1,
    capCrb: ((low >>> 14) & 1) === 1,
    interfaceSelector: (low >>> 17) & 0x3,
    intfSelLock: ((low >>> 19) & 1) === 1,
    rid: (low >>> 24) & 0xff,
    vid: high & 0xffff,
    did: (high >>> 16) & 0xffff,
  };
}

/**
 * CRB timeouts in ms. The kernel's CRB driver uses TPM2_TIMEOUT_C = 200 ms for every register wait
 * (cmdReady, goIdle, locality) and never asks the hardware (Linux drivers/char/tpm/tpm_crb.c,
 * crb_wait_for_reg_32() callers). `a` (750 ms, the TIS
 * startup bound) bounds the wait for `tpmRegValidSts` at open, a tpmkit addition.
 */
export interface CrbTimeouts {
  /** Wait for tpmRegValidSts at open. Default 750 (TIMEOUT_A). */
  a: number;
  /** cmdReady, goIdle, locality request/relinquish, a previous START to drain. Default 200 (TPM2 TIMEOUT_C). */
  c: number;
}

/** The default {@link CrbTimeouts}: TIMEOUT_A and TIMEOUT_C of the core's one set, {@link TIMEOUTS_TPM2} (750 ms, 200 ms). */
export const CRB_DEFAULT_TIMEOUTS: Readonly<CrbTimeouts> = /* @__PURE__ */ Object.freeze({ a: TIMEOUTS_TPM2.a, c: TIMEOUTS_TPM2.c });
