// A TPM device node that exists before (and after) the TPM behind it works: the fTPM in an
// OP-TEE-like TEE keeps its NV in REE FS, which the TA reaches through tee-supplicant.
// 1. initrd: tee-supplicant runs, the fTPM driver binds, the TPM works;
// 2. switch root: the initrd's supplicant is stopped, the rootfs one has not started yet. The
//    session is still open (/dev/tpm0 is there) but the TPM is not usable: the chip says so without
//    sending a command, and a command fails at once with TpmUnavailableError (sent, it would make
//    the TA fail on its storage and die);
// 3. a consumer waits for usable with a bound (chip.waitReady({ timeoutMs })) while the rootfs
//    supplicant starts: the wait ends and the TPM works again;
// 4. shutdown with the supplicant stopped first: closing the driver's session is bounded (a kernel
//    client never waits for the supplicant).
// Everything runs on a FakeClock: no real waiting, the same output every run.
//
// Run: see examples/README.md.
import { pathToFileURL } from "node:url";
import { FakeClock, MemoryFileStore, OpTee, Supplicant, TpmUnavailableError, Tpm, ftpmTa, ftpmTee, toHex } from "../src/index.js";

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`not as described: ${what}`);
}

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  const clock = new FakeClock({ auto: true });
  const supplicant = new Supplicant({ storage: new MemoryFileStore(), clock }); // /var/lib/tee
  const tee = new OpTee({ tas: [ftpmTa({ early: true, storage: "ree", seed: "seed-001" })], supplicant, clock, channel: false });

  // 1. initrd
  await supplicant.start();
  const transport = ftpmTee({ tee }); // the kernel driver: client "kernel"
  const tpm = await Tpm.open(transport, { clock, signal: AbortSignal.timeout(5000) });
  const first = await tpm.getRandom(8);
  log(`initrd: supplicant ${supplicant.state}, readiness ${tpm.chip.readiness}, getRandom(8) = ${toHex(first)}`);
  check(tpm.chip.readiness === "ready" && first.length === 8, "the TPM works in the initrd");

  // 2. switch root
  await supplicant.stop();
  const why = tpm.chip.readinessError instanceof Error ? tpm.chip.readinessError.message : String(tpm.chip.readinessError);
  log(`switch root: supplicant ${supplicant.state}, session open ${transport.state().open}, readiness ${tpm.chip.readiness} (${why})`);
  check(transport.state().open && tpm.chip.readiness === "unusable", "present (session open) but unusable");
  const t0 = clock.now();
  try {
    await tpm.getRandom(8);
    check(false, "a command fails while the supplicant is stopped");
  } catch (e) {
    if (!(e instanceof TpmUnavailableError)) throw e;
    log(`getRandom(8) while stopped: ${e.name} (${e.code}) after ${clock.now() - t0} ms`);
  }
  check(clock.now() === t0, "the command failed at once, without waiting");

  // 3. the rootfs starts its supplicant 1.5 s later; a consumer waits up to 10 s for a usable TPM
  clock.setTimer(1500, () => void supplicant.start());
  const t1 = clock.now();
  await tpm.chip.waitReady({ timeoutMs: 10_000 });
  const again = await tpm.getRandom(8);
  log(`waitReady({ timeoutMs: 10000 }): ready after ${clock.now() - t1} ms, supplicant ${supplicant.state}, getRandom(8) = ${toHex(again)}`);
  check(tpm.chip.readiness === "ready" && clock.now() - t1 === 1500 && again.length === 8, "usable again once the supplicant runs");

  // 4. shutdown: the supplicant is stopped first, then the TPM is closed
  await supplicant.stop();
  const t2 = clock.now();
  const realStart = performance.now();
  await tpm.close();
  const realMs = performance.now() - realStart;
  log(`shutdown with the supplicant stopped: close took ${clock.now() - t2} ms, readiness ${tpm.chip.readiness}`);
  check(tpm.chip.readiness === "closed" && clock.now() - t2 < 1000 && realMs < 1000, "shutdown is bounded");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
