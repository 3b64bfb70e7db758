// Tpm over the TIS (PTP FIFO) driver, over a register-level TisDevice model, over SoftTpm.
// PCR 17 is a DRTM PCR: TPM2_PCR_Extend of it is refused at locality 0 (TPM_RC_LOCALITY) and
// allowed at locality 3 — the rule swtpm 0.7.1 enforces too (measured against swtpm 0.7.1).
// The TIS driver requests the command's locality on its own register page (locality × 0x1000).
//
// Run: see examples/README.md.
import { pathToFileURL } from "node:url";
import { SoftTpm, TisDevice, Tpm, TpmResponseError, tis, toHex } from "../src/index.js";

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  const device = new TisDevice({ backend: new SoftTpm({ seed: "tis example" }) });
  const transport = tis({ mmio: device });
  const tpm = await Tpm.open(transport); // probe (ACCESS, DID_VID, GetCapability) + Startup(CLEAR)
  try {
    const info = transport.info!;
    const hex4 = (v: number) => "0x" + v.toString(16).padStart(4, "0");
    log(`TIS device: did ${hex4(info.did)} vid ${hex4(info.vid)} rid ${info.rid}, TPM ${info.family}`);

    const before = (await tpm.pcrRead({ sha256: [17] })).sha256![17]!;
    log(`PCR 17 after Startup: ${toHex(before).slice(0, 16)}…`);

    const digest = new Uint8Array(32).fill(0x17);
    try {
      await tpm.pcrExtend(17, { sha256: digest }); // the chip's default locality: 0
      log("PCR 17 at locality 0: extended (unexpected)");
    } catch (e) {
      if (!(e instanceof TpmResponseError)) throw e;
      log(`PCR 17 at locality 0: refused, ${e.rcName}`);
    }

    await tpm.pcrExtend(17, { sha256: digest }, { locality: 3 });
    const after = (await tpm.pcrRead({ sha256: [17] })).sha256![17]!;
    log(`PCR 17 at locality 3: extended, now ${toHex(after).slice(0, 16)}…`);
    log(`active locality between commands: ${device.state.activeLocality ?? "none"}`);
  } finally {
    await tpm.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
