/**
 * The TIS / PTP FIFO register map, shared by the TIS driver (`tis()`) and the TIS device model
 * (`TisDevice`). Values from the TCG PC Client Platform TPM Profile (PTP)
 * §6.5.2 (FIFO interface registers); Linux drivers/char/tpm/tpm_tis_core.h; QEMU hw/tpm/tpm_tis.h.
 * Registers are little-endian; each locality has its own 4 KiB page (locality L at L × 0x1000).
 *
 * @packageDocumentation
 */

/** Size of one locality's register page. PTP §6.5.2: locality L at base + L × 0x1000. */
export const TIS_LOCALITY_STRIDE = 0x1000;
/** Number of localities a TIS window has (0–4); the window is 0x5000 bytes. */
export const TIS_LOCALITY_COUNT = 5;
/** Physical base of the TIS window on x86 (0xFED4_0000). TCG PC Client PTP §6.5.2; Linux tpm_tis.c (TIS_MEM_BASE). */
export const TIS_BASE_ADDRESS = 0xfed4_0000;

/** Register offsets inside one locality page. PTP §6.5.2, Table "Allocation of Register Space". */
export const TIS_REG = {
  /** TPM_ACCESS_x, 8-bit. */
  ACCESS: 0x000,
  /** TPM_INT_ENABLE_x, 32-bit. */
  INT_ENABLE: 0x008,
  /** TPM_INT_VECTOR_x, 8-bit (read-only in QEMU). */
  INT_VECTOR: 0x00c,
  /** TPM_INT_STATUS_x, 32-bit, write 1 to clear. */
  INT_STATUS: 0x010,
  /** TPM_INTF_CAPABILITY_x, 32-bit. */
  INTF_CAPABILITY: 0x014,
  /** TPM_STS_x: status byte at 0x18, burstCount at 0x19–0x1A, STS3 at 0x1B. */
  STS: 0x018,
  /** TPM_DATA_FIFO_x, 1–4 bytes at the same address. */
  DATA_FIFO: 0x024,
  /** TPM_INTERFACE_ID_x, 32-bit. */
  INTERFACE_ID: 0x030,
  /** TPM_XDATA_FIFO_x, 0x80–0xBF. */
  XDATA_FIFO: 0x080,
  /** Last byte of the XDATA FIFO window. */
  XDATA_FIFO_END: 0x0bf,
  /** TPM_DID_VID_x, 32-bit: VID low 16 bits, DID high 16 bits. */
  DID_VID: 0xf00,
  /** TPM_RID_x, 8-bit. */
  RID: 0xf04,
} as const;

/** TPM_ACCESS_x bits. PTP §6.5.2.3. */
export const TIS_ACCESS = {
  /** tpmEstablishment (b0): 1 = no dynamic OS launch has happened since the flag was reset. */
  ESTABLISHMENT: 0x01,
  /** requestUse (b1): write to request the locality; reads 1 while the request is pending. */
  REQUEST_USE: 0x02,
  /** pendingRequest (b2): another locality wants the TPM. */
  PENDING_REQUEST: 0x04,
  /** Seize (b3), write only. */
  SEIZE: 0x08,
  /** beenSeized (b4), write 1 to clear. */
  BEEN_SEIZED: 0x10,
  /** activeLocality (b5): read = this locality is active; write 1 = relinquish. */
  ACTIVE_LOCALITY: 0x20,
  /** tpmRegValidSts (b7): the other bits are valid. */
  VALID: 0x80,
} as const;

/** TPM_STS_x bits. PTP §6.5.2.5. Bits above 7 are in the 32-bit view of the register. */
export const TIS_STS = {
  /** responseRetry (b1), write: resend the response from its first byte. */
  RESPONSE_RETRY: 0x02,
  /** selfTestDone (b2). */
  SELFTEST_DONE: 0x04,
  /** Expect (b3): the TPM expects more command bytes. */
  EXPECT: 0x08,
  /** dataAvail (b4): response bytes can be read. */
  DATA_AVAIL: 0x10,
  /** tpmGo (b5), write: execute the command. */
  GO: 0x20,
  /** commandReady (b6): read = ready for a command; write = abort / go ready. */
  COMMAND_READY: 0x40,
  /** stsValid (b7): Expect and dataAvail are valid. */
  VALID: 0x80,
  /** commandCancel (b24), TPM 2.0 only, write. */
  COMMAND_CANCEL: 0x0100_0000,
  /** resetEstablishmentBit (b25), TPM 2.0 only, write, locality 3 (and 4) only. */
  RESET_ESTABLISHMENT: 0x0200_0000,
  /** tpmFamily field (b26–27): 00 = TPM 1.2, 01 = TPM 2.0. */
  FAMILY_MASK: 0x0c00_0000,
  /** tpmFamily value for TPM 2.0. */
  FAMILY_2_0: 0x0400_0000,
  /** tpmFamily value for TPM 1.2. */
  FAMILY_1_2: 0x0000_0000,
  /**
   * Bits that make an 8-bit status read bogus (the kernel's TPM_STS_READ_ZERO): GO, responseRetry
   * and bit 0 always read 0, so a read with any of them set is usually a 0xFF read of a locality
   * that is not held. Linux drivers/char/tpm/tpm_tis_core.h (TPM_STS_READ_ZERO), tpm_tis_status().
   */
  READ_ZERO: 0x23,
} as const;

/** TPM_INT_ENABLE_x / TPM_INT_STATUS_x / TPM_INTF_CAPABILITY_x bits. PTP §6.5.2.6–§6.5.2.8. */
export const TIS_INT = {
  /** dataAvailIntEnable / dataAvailIntOccured (b0). */
  DATA_AVAIL: 0x01,
  /** stsValidInt (b1). */
  STS_VALID: 0x02,
  /** localityChangeInt (b2). */
  LOCALITY_CHANGE: 0x04,
  /**
   * Capability: high-level interrupts supported (b3). In INT_ENABLE, b3–b4 are the typePolarity
   * field instead (01 = low level: QEMU's INT_ENABLE reset value 0x08).
   */
  LEVEL_HIGH: 0x08,
  /** Capability: low-level interrupts supported (b4). */
  LEVEL_LOW: 0x10,
  /** Rising edge (capability b5). */
  EDGE_RISING: 0x20,
  /** Falling edge (capability b6). */
  EDGE_FALLING: 0x40,
  /** commandReadyInt (b7). */
  COMMAND_READY: 0x80,
  /** burstCountStatic in INTF_CAPABILITY (b8). */
  BURST_COUNT_STATIC: 0x100,
  /** globalIntEnable in INT_ENABLE (b31). */
  GLOBAL_ENABLE: 0x8000_0000,
  /** The four interrupt causes QEMU implements (dataAvail, stsValid, localityChange, commandReady). */
  SUPPORTED: 0x87,
  /** INT_ENABLE typePolarity field (b3–b4). */
  POLARITY_MASK: 0x18,
} as const;

/**
 * Offset of `register` in locality `locality`'s page of the TIS window. PTP §6.5.2.
 *
 * @param locality - 0–4.
 * @param register - A {@link TIS_REG} offset.
 * @returns `locality × 0x1000 + register`.
 * @throws Never.
 */
export function tisLocalityOffset(locality: number, register: number): number {
  return locality * TIS_LOCALITY_STRIDE + register;
}
