/**
 * TCTI strings other than memory/softtpm for the CLI: every transport in the full registry.
 * @packageDocumentation
 */
import { Tpm } from "../client/tpm.js";
import { openTransport } from "../platform/registry.js";

const DESCRIPTIONS: Record<string, string> = {
  tis: "SoftTpm behind the TIS register model (Tpm → Chip → tis driver → TisDevice → SoftTpm)",
  crb: "SoftTpm behind the CRB register model (Tpm → Chip → crb driver, MMIO start → CrbDevice → SoftTpm)",
};

/** Opens a TPM for a TCTI string. */
export async function openTcti(tcti: string, options: { locality?: number } = {}): Promise<{ tpm: Tpm; description: string }> {
  const transport = await openTransport(tcti);
  const tpm = await Tpm.open(transport, { locality: options.locality });
  return { tpm, description: DESCRIPTIONS[transport.kind] ?? `${transport.kind} transport (${tcti})` };
}
