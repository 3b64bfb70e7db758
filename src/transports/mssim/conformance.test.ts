/**
 * The shared conformance suite over the mssim transport against tpmkit's own mssim-protocol server
 * (no simulator needed): Tpm → Chip → mssim() → loopback TCP (command port and platform port + 1)
 * → serveMssim → SoftTpm. mssim() sends SIGNAL_POWER_ON and SIGNAL_NV_ON at open, as tcti-mssim
 * does; the server's power hooks hand them to the SoftTpm.
 */
import { describeConformance } from "../../../test/conformance.js";
import { SoftTpm } from "../../softtpm/index.js";
import { serveMssim } from "../../server/mssim.js";
import { mssim } from "./mssim.js";

describeConformance(
  "mssim() over serveMssim(SoftTpm), loopback TCP",
  async () => {
    const backend = new SoftTpm();
    const server = await serveMssim(
      { chip: { transmit: (c, o) => backend.execute(c, o?.locality ?? 0, o?.signal), cancel: () => backend.cancel() } },
      { hooks: { powerOn: () => backend.powerOn(), powerOff: () => backend.powerOff() } },
    );
    const transport = mssim({ port: server.port });
    return {
      transport,
      async cleanup() {
        await transport.close?.();
        await server.close();
      },
    };
  },
  { localities: true, fresh: true },
);
