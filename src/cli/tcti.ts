/**
 * TCTI strings other than memory/softtpm, for the CLI. Filled in as transports land.
 * @packageDocumentation
 */
import { Tpm } from "../tpm.js";
import { UsageError } from "./args.js";

/** Opens a TPM for a TCTI string. */
export async function openTcti(tcti: string, options: { locality?: number } = {}): Promise<{ tpm: Tpm; description: string }> {
  void options;
  void Tpm;
  throw new UsageError(`unknown TCTI "${tcti}" (this build knows memory and softtpm[:state=FILE])`);
}
