/**
 * The shared conformance suite over tpmkit's swtpm transport, with a real swtpm behind it:
 *
 * 1. Tpm ─ swtpm() ─ TCP ─ swtpm 0.7 (data + control channel)
 * 2. Tpm ─ swtpm() ─ UNIX ─ serveSwtpm ─ Chip ─ swtpm() ─ TCP ─ swtpm 0.7   (both ends are tpmkit's)
 *
 * Each test gets a fresh swtpm (state in a temp dir), stopped by PID afterwards. swtpm must be
 * installed (.ci/run installs it); without it these tests fail.
 */
import * as path from "node:path";
import { Chip } from "../../src/core/chip.js";
import { serveSwtpm } from "../../src/server/swtpm.js";
import { swtpm } from "../../src/transports/swtpm/index.js";
import { describeConformance } from "../conformance.js";
import { startSwtpm as startPeer, type SwtpmPeer } from "./swtpm-peer.js";


/** A fresh swtpm for one test: TCP data + control, `--flags not-need-init` (the suite sends Startup). */
function startSwtpm(): Promise<SwtpmPeer> {
  return startPeer({ flags: "not-need-init", prefix: "tpmkit-swtpm-conf-" });
}

describeConformance(
  "swtpm (transport straight to a real swtpm over TCP)",
  async () => {
    const sw = await startSwtpm();
    const transport = swtpm({ port: sw.port });
    return {
      transport,
      async cleanup() {
        await transport.close();
        await sw.stop();
      },
    };
  },
  { localities: true, fresh: true },
);

describeConformance(
  "swtpm (serveSwtpm on a UNIX socket bridging a Chip over a real swtpm)",
  async () => {
    const sw = await startSwtpm();
    const chip = new Chip(swtpm({ port: sw.port }));
    await chip.open();
    const server = await serveSwtpm({ chip, path: path.join(sw.dir, "tpmkit.sock") });
    const transport = swtpm({ path: path.join(sw.dir, "tpmkit.sock") });
    return {
      transport,
      async cleanup() {
        await transport.close();
        await server.close();
        await chip.close();
        await sw.stop();
      },
    };
  },
  { localities: true, fresh: true },
);
