// The embedded default: SoftTpm behind the memory transport.
//   see examples/README.md for how to run it (vitest runs it in test/examples.test.ts)
import { SoftTpm, Tpm, TpmResponseError, memory } from "../src/index.js";

const tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
try {
  console.log("random:", Buffer.from(await tpm.getRandom(16)).toString("hex"));

  const digest = new Uint8Array(32).fill(0xab);
  await tpm.pcrExtend(16, { sha256: digest });
  const { sha256 } = await tpm.pcrRead({ sha256: [16] });
  console.log("sha256 PCR 16:", Buffer.from(sha256![16]!).toString("hex"));

  // PCR 17 belongs to the DRTM localities: extending it at locality 0 is refused.
  await tpm.pcrExtend(17, { sha256: digest }).catch((e) => {
    if (e instanceof TpmResponseError) console.log("PCR 17 at locality 0:", e.rcName);
    else throw e;
  });
} finally {
  await tpm.close();
}
