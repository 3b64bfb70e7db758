/**
 * An interrupt line from a device to a driver: the TIS device model raises it, the TIS driver
 * subscribes to it (the kernel's IRQ mode). Keeping it an interface keeps the driver free of any
 * device class (drivers talk only to an MMIO region and, here, an interrupt line).
 *
 * @packageDocumentation
 */

/** One raised interrupt. PTP §6.5.2.7 (TPM_INT_STATUS_x). */
export interface InterruptEvent {
  /** Locality whose INT_STATUS got the cause bits. */
  readonly locality: number;
  /** The cause bits OR'ed into INT_STATUS (e.g. dataAvail 0x01 | stsValid 0x02). */
  readonly causes: number;
}

/**
 * Something that raises interrupts: `TisDevice` implements it; so can a bridge to a real IRQ.
 *
 * @example
 * ```ts
 * const off = device.onInterrupt((e) => console.log(e.locality, e.causes));
 * off(); // unsubscribe
 * ```
 */
export interface InterruptLine {
  /**
   * Subscribes to interrupts. The listener runs synchronously when the device raises the line.
   *
   * @param listener - Called once per raised interrupt.
   * @returns A function that unsubscribes.
   */
  onInterrupt(listener: (event: InterruptEvent) => void): () => void;
}
