/**
 * A bridge from any {@link Chip} to a {@link TpmBackend}, so a device model (TIS, CRB, the fTPM TA)
 * can sit in front of a real swtpm, a Linux device or another emulated stack as well as in front of
 * SoftTpm.
 *
 * @packageDocumentation
 */
import type { Chip } from "./chip.js";
import type { TpmBackend } from "./transport.js";

/** Options of {@link chipBackend}. */
export interface ChipBackendOptions {
  /** Open the chip when the device model starts the backend. Default true. */
  open?: boolean;
}

/**
 * Wraps a chip as a backend: `execute` sends through the chip (no retries: the device model's
 * driver does those), `start` opens it, `cancel` asks the chip's transport to cancel.
 *
 * @example
 * ```ts
 * const device = new TisDevice({ backend: chipBackend(new Chip(swtpm({ host: "127.0.0.1", port: 2321 }))) });
 * ```
 */
export function chipBackend(chip: Chip, options: ChipBackendOptions = {}): TpmBackend {
  return {
    async start() {
      if (options.open ?? true) await chip.open();
    },
    execute(command, locality, signal) {
      return chip.transmit(command, { locality, signal, retry: false });
    },
    cancel() {
      const r = chip.transport.cancel?.();
      if (r) r.catch(() => {});
    },
  };
}
