/**
 * The shared conformance suite over ftpmTee: the fTPM TA (a SoftTpm inside) in the OpTee model,
 * reached the way Linux tpm_ftpm_tee reaches it. Three builds: an early TA with REE FS, an
 * REE-loaded TA (tee-supplicant's LOAD_TA) with REE FS, and an early TA with RPMB FS over an eMMC
 * RPMB partition whose key was programmed from the HUK at the factory.
 */
import { describeConformance, type ConformanceTarget } from "./conformance.js";
import { MemoryFileStore, OpTee, RpmbDevice, Supplicant, deriveRpmbKey, ftpmTa, ftpmTee } from "../src/index.js";

const HUK = Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i);
const CID = Uint8Array.from({ length: 16 }, (_, i) => 0x90 + i);

async function stack(early: boolean, storage: "ree" | "rpmb"): Promise<ConformanceTarget> {
  const supplicant = new Supplicant({ storage: new MemoryFileStore() });
  let rpmb: RpmbDevice | undefined;
  if (storage === "rpmb") {
    rpmb = new RpmbDevice({ cid: CID });
    rpmb.programKey(deriveRpmbKey(HUK, CID)); // the factory step: the device holds the HUK-derived key
  }
  const tee = new OpTee({
    tas: [ftpmTa({ early, storage, seed: `conformance-${early}-${storage}` })],
    supplicant,
    huk: HUK,
    channel: false,
    ...(rpmb ? { rpmb, rpmbFs: true, reeFs: false } : {}),
  });
  await supplicant.start();
  return {
    transport: ftpmTee({ tee }),
    cleanup: async () => {
      await supplicant.stop();
      // the NV went where the build says: RPMB writes and no REE FS file, or REE FS files
      const files = (await supplicant.storage.list()).length;
      if (rpmb ? rpmb.state.writeCounter === 0 || files !== 0 : files === 0) {
        throw new Error(`fTPM NV not on ${storage}: ${files} REE FS files, RPMB counter ${rpmb?.state.writeCounter}`);
      }
    },
  };
}

describeConformance("ftpmTee, early fTPM TA, REE FS", () => stack(true, "ree"));
describeConformance("ftpmTee, REE-loaded fTPM TA, REE FS", () => stack(false, "ree"));
describeConformance("ftpmTee, early fTPM TA, RPMB FS (HUK-derived key)", () => stack(true, "rpmb"));
