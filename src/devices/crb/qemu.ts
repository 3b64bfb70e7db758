/**
 * QEMU's CRB reset values (QEMU hw/tpm/tpm_crb.c, tpm_crb_reset(); include/hw/acpi/tpm.h): what
 * the `CrbDevice` model reports by default. They describe QEMU's device, not the CRB interface, so
 * they live with the device model; the register layout both the driver and the model use is the
 * shared CRB register map (`CRB_REG`, ...; TCG PC Client PTP, "CRB Interface").
 *
 * @packageDocumentation
 */

/** QEMU's buffer size: 0x1000 − 0x80 = 3968 bytes, the rest of the page after the control area (QEMU hw/tpm/tpm_crb.c). */
export const CRB_QEMU_BUFFER_SIZE = 0xf80;
/** QEMU's (and x86's) physical address of the CRB register block, TPM_CRB_ADDR_BASE (QEMU include/hw/acpi/tpm.h). */
export const CRB_QEMU_ADDRESS = 0xfed40000;
/**
 * QEMU's INTF_ID: CRB active (type 1), version 1, locality 0 only, no idle bypass, 64-byte
 * transfers, CRB selected, RID 0 (QEMU hw/tpm/tpm_crb.c, tpm_crb_reset()).
 */
export const CRB_QEMU_INTF_ID = 0x0002_5811;
/** QEMU's INTF_ID2: VID 0x1014 (IBM), DID 0 (QEMU hw/tpm/tpm_crb.c, tpm_crb_reset()). */
export const CRB_QEMU_INTF_ID2 = 0x0000_1014;
