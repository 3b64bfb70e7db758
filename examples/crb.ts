// Tpm over the CRB driver, over a register-level CrbDevice model, with two start methods:
// - mmioStart(): ACPI TPM2 start method 7 (COMMAND_BUFFER): write CTRL_START = 1;
// - smcStart(): ACPI start method 11 (Arm SMC): write CTRL_START = 1, then call the firmware.
//   Here `call` stands in for the SMC; a nonzero return fails the command with EIO, as in
//   the kernel's tpm_crb (Linux drivers/char/tpm/tpm_crb.c, tpm_crb_smc_start()).
//
// Run: see examples/README.md.
import { pathToFileURL } from "node:url";
import { CrbDevice, SoftTpm, Tpm, TpmTransportError, crb, mmioStart, smcStart, toHex } from "../src/index.js";

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  // 1. The plain CRB start method.
  {
    const device = new CrbDevice({ backend: new SoftTpm({ seed: "crb example" }) });
    const transport = crb({ mmio: device, start: mmioStart() });
    const tpm = await Tpm.open(transport);
    try {
      const info = transport.info!;
      log(`mmio start: buffer ${info.commandSize} bytes at 0x${info.commandOffset.toString(16)}, idle support ${info.hasIdle}, localities ${info.localities.join(",")}`);
      log(`mmio start: getRandom(8) = ${toHex(await tpm.getRandom(8))}`);
      log(`mmio start: commands the device ran: ${device.state.commands}`);
    } finally {
      await tpm.close();
    }
  }

  // 2. The Arm SMC start method: firmware is a function that returns a0.
  {
    const device = new CrbDevice({ backend: new SoftTpm({ seed: "crb example" }) });
    let smcCalls = 0;
    let firmwareResult = 0;
    const start = smcStart({
      functionId: 0xc400_0021, // illustrative: the real id comes from the ACPI TPM2 table
      call: ({ functionId }) => {
        smcCalls++;
        if (functionId !== 0xc400_0021) return 1;
        return firmwareResult; // 0 = success
      },
    });
    const transport = crb({ mmio: device, start });
    const tpm = await Tpm.open(transport);
    try {
      log(`smc start: idle support ${transport.info!.hasIdle}`);
      log(`smc start: getRandom(8) = ${toHex(await tpm.getRandom(8))}`);
      log(`smc start: SMC calls so far: ${smcCalls}`);

      firmwareResult = 5; // the firmware now reports an error
      try {
        await tpm.getRandom(8);
        log("smc start: command succeeded (unexpected)");
      } catch (e) {
        if (!(e instanceof TpmTransportError)) throw e;
        log(`smc start: failing firmware -> ${e.name} errno ${e.errno}: ${e.shortMessage}`);
      }
      firmwareResult = 0;
      log(`smc start: after the firmware recovered, getRandom(4) = ${toHex(await tpm.getRandom(4))}`);
    } finally {
      await tpm.close();
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
