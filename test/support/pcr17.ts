/** Shared check for "a transport's locality option means what it says": extend PCR 17 (locality 2–4 only on a PC Client TPM). */
import { createHash } from "node:crypto";
import { expect } from "vitest";
import type { Tpm } from "../../src/client/tpm.js";

/** Extends PCR 17 through `tpm` and checks the new value is SHA-256(old ‖ digest). */
export async function expectPcr17Extends(tpm: Tpm): Promise<void> {
  const digest = new Uint8Array(32).fill(7);
  const before = (await tpm.pcrRead({ sha256: [17] })).sha256![17]!;
  await tpm.pcrExtend(17, { sha256: digest });
  const after = (await tpm.pcrRead({ sha256: [17] })).sha256![17]!;
  expect(Buffer.from(after).toString("hex")).toBe(createHash("sha256").update(before).update(digest).digest("hex"));
}
