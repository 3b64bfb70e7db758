// A TIS device whose backend failed to start (the emulator behind it never came up): QEMU's TIS
// then answers every register read with 0 and ignores every write (QEMU hw/tpm/tpm_tis_common.c,
// tpm_tis_mmio_read() and tpm_tis_mmio_write() after a backend start-up failure). The driver's
// probe waits TIMEOUT_A (750 ms) for ACCESS.tpmRegValidSts and gives up with TpmNotFoundError, as
// the kernel's probe gives -ENODEV (Linux drivers/char/tpm/tpm_tis_core.c, tpm_tis_core_init()
// and wait_startup()).
//
// The wait runs on a FakeClock with auto-advance: virtual time jumps from timer to timer, so the
// 750 ms probe finishes at once and the example prints the virtual time it took.
//
// Run: see examples/README.md.
import { pathToFileURL } from "node:url";
import { FakeClock, TisDevice, Tpm, TpmNotFoundError, tis, type TpmBackend } from "../src/index.js";

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  const backend: TpmBackend = {
    start: () => Promise.reject(new Error("swtpm: could not open the state directory")),
    execute: () => Promise.reject(new Error("never called: the backend is not running")),
  };
  const device = new TisDevice({ backend });
  const phase = await device.start(); // never rejects: resolves with the phase, "failed" here
  log(`device power: ${phase}, TPM version seen by firmware: ${device.tpmVersion}`);
  log(`ACCESS (0x000) reads 0x${device.read8(0x000).toString(16)}, DID_VID (0xF00) reads 0x${device.read32(0xf00).toString(16)}`);

  const clock = new FakeClock({ auto: true });
  const t0 = clock.now();
  try {
    await Tpm.open(tis({ mmio: device }), { clock });
    log("Tpm.open succeeded (unexpected)");
  } catch (e) {
    if (!(e instanceof TpmNotFoundError)) throw e;
    log(`Tpm.open failed: ${e.name} (${e.code}): ${e.shortMessage}`);
    log(`virtual time spent probing: ${clock.now() - t0} ms`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
