/**
 * The shared conformance suite over linuxDevice(), against the fake Linux TPM character devices
 * (FakeTpmDevice, behaving as drivers/char/tpm/tpm-dev-common.c does towards userspace) with a
 * SoftTpm behind them: Tpm → Chip → linuxDevice() → FakeTpmDevice → SoftTpm.
 */
import { describeConformance } from "../../../test/conformance.js";
import { FakeTpmDevice } from "../../testing/fake-device.js";
import { SoftTpm } from "../../softtpm/index.js";
import { linuxDevice } from "./linux-device.js";

for (const path of ["/dev/tpmrm0", "/dev/tpm0"]) {
  describeConformance(
    `linuxDevice(${path}) over FakeTpmDevice(SoftTpm)`,
    async () => {
      const backend = new SoftTpm();
      await backend.start();
      return { transport: linuxDevice({ fs: new FakeTpmDevice({ backend }), path }) };
    },
    // The character devices carry no locality: the kernel sends every userspace command at the
    // locality the driver holds (locality 0 for TIS and CRB), so only locality 0 is offered.
    { localities: false, fresh: true },
  );
}
