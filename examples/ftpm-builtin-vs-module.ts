// A firmware TPM in an OP-TEE-like TEE, with the Linux fTPM driver (tpm_ftpm_tee) built into the
// kernel versus loaded as a module after tee-supplicant has started:
// - built in, the driver probes before user space, so no tee-supplicant runs yet, and it is an
//   in-kernel client, which never waits for the supplicant:
//   - an fTPM TA loaded from the file system (a <uuid>.ta the supplicant serves) cannot be loaded:
//     0xffff000c (TEE_ERROR_OUT_OF_MEMORY, origin TEE, today's OP-TEE: "ldelf failed with res:
//     0xffff000c"), or 0xffff0008 (TEE_ERROR_ITEM_NOT_FOUND) with the 2019 OP-TEE behaviour;
//   - an early TA (linked into the TEE image) loads, but its NV on REE FS is reached through the
//     supplicant: the TA panics in its create entry point and the open fails with 0xffff3024
//     (TEE_ERROR_TARGET_DEAD, origin TEE);
// - as a module loaded after tee-supplicant started: the session opens and the TPM works.
// Everything runs on a FakeClock: no real waiting, the same output every run.
//
// Run: see examples/README.md.
import { pathToFileURL } from "node:url";
import {
  FakeClock,
  OpTee,
  Supplicant,
  TEE_ORIGIN,
  TEE_RESULT,
  TeeError,
  Tpm,
  ftpmTa,
  ftpmTee,
  teeOriginName,
  teeResultName,
  toHex,
  type OpTeeOptions,
} from "../src/index.js";

const hex = (code: number) => `0x${(code >>> 0).toString(16).padStart(8, "0")}`;

/** Opens the fTPM the way the built-in driver does: a kernel client, before the supplicant starts. */
async function builtIn(early: boolean, extra: Partial<OpTeeOptions> = {}): Promise<TeeError> {
  const clock = new FakeClock({ auto: true });
  const supplicant = new Supplicant({ clock }); // exists, but user space has not started it yet
  const tee = new OpTee({ tas: [ftpmTa({ early, storage: "ree", seed: "seed-000" })], supplicant, clock, channel: false, ...extra });
  try {
    const tpm = await Tpm.open(ftpmTee({ tee, client: "kernel" }), { clock, signal: AbortSignal.timeout(5000) });
    await tpm.close();
  } catch (e) {
    if (e instanceof TeeError) return e;
    throw e;
  }
  throw new Error("the built-in driver opened the fTPM without a supplicant (not what OP-TEE does)");
}

function expectCode(what: string, e: TeeError, code: number, origin: number): void {
  if (e.teeCode !== code || e.origin !== origin) {
    throw new Error(`${what}: expected ${hex(code)} origin ${teeOriginName(origin)}, got ${hex(e.teeCode)} origin ${teeOriginName(e.origin)}`);
  }
}

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  const reeTa = await builtIn(false);
  expectCode("REE TA, built in", reeTa, TEE_RESULT.OUT_OF_MEMORY, TEE_ORIGIN.TEE);
  log(`built in, REE-loaded TA: TeeError ${hex(reeTa.teeCode)} ${teeResultName(reeTa.teeCode)}, origin ${teeOriginName(reeTa.origin)}`);

  const reeTa2019 = await builtIn(false, { supplicantAbsentLoadResult: "item-not-found" });
  expectCode("REE TA, built in, 2019 OP-TEE", reeTa2019, TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.TEE);
  log(`built in, REE-loaded TA (2019 OP-TEE): TeeError ${hex(reeTa2019.teeCode)} ${teeResultName(reeTa2019.teeCode)}, origin ${teeOriginName(reeTa2019.origin)}`);

  const earlyTa = await builtIn(true);
  expectCode("early TA, built in", earlyTa, TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
  log(`built in, early TA on REE FS: TeeError ${hex(earlyTa.teeCode)} ${teeResultName(earlyTa.teeCode)}, origin ${teeOriginName(earlyTa.origin)}`);

  // The fix: load the driver as a module once tee-supplicant runs (or order the units so).
  for (const early of [false, true]) {
    const clock = new FakeClock({ auto: true });
    const supplicant = new Supplicant({ clock });
    const tee = new OpTee({ tas: [ftpmTa({ early, storage: "ree", seed: "seed-000" })], supplicant, clock, channel: false });
    await supplicant.start(); // user space is up
    const tpm = await Tpm.open(ftpmTee({ tee, client: "kernel" }), { clock, signal: AbortSignal.timeout(5000) });
    try {
      const random = await tpm.getRandom(8);
      if (random.length !== 8) throw new Error(`getRandom(8) gave ${random.length} bytes`);
      log(`module after the supplicant, ${early ? "early" : "REE-loaded"} TA: getRandom(8) = ${toHex(random)}, readiness ${tpm.chip.readiness}`);
      if (tpm.chip.readiness !== "ready") throw new Error(`readiness ${tpm.chip.readiness}, expected ready`);
    } finally {
      await tpm.close();
      await supplicant.stop();
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
