/**
 * The shared conformance suite over the mssim protocol end to end, with a real TPM behind it:
 *
 *   Tpm ─ mssim transport ─ TCP ─ serveMssim ─ Chip ─ mssim transport (TPM_SEND_COMMAND framing,
 *   no platform signals) ─ TCP ─ swtpm 0.7.1 data port
 *
 * swtpm accepts the mssim TPM_SEND_COMMAND header on its data port (swtpm feature
 * "tpm-send-command-header"; swtpm 0.7.1, measured), so the same client code drives both hops.
 * swtpm must be installed (.ci/run installs it).
 */
import { Chip } from "../../src/core/chip.js";
import { serveMssim } from "../../src/server/mssim.js";
import { mssim } from "../../src/transports/mssim/index.js";
import { describeConformance } from "../conformance.js";
import { startSwtpm as startPeer, type SwtpmPeer } from "./swtpm-peer.js";


/** A fresh swtpm for one test (`--flags not-need-init`; only its data port is used here). */
function startSwtpm(): Promise<SwtpmPeer> {
  return startPeer({ flags: "not-need-init", prefix: "tpmkit-mssim-conf-" });
}

describeConformance(
  "mssim (serveMssim bridging a Chip over a real swtpm)",
  async () => {
    const sw = await startSwtpm();
    const chip = new Chip(mssim({ port: sw.port, powerOn: false }));
    await chip.open();
    const server = await serveMssim({ chip });
    const transport = mssim({ port: server.port });
    return {
      transport,
      async cleanup() {
        await server.close();
        await chip.close();
        await sw.stop();
      },
    };
  },
  { localities: true, fresh: true },
);
