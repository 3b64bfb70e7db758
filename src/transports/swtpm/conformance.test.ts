/**
 * The shared conformance suite over the swtpm transport against tpmkit's own swtpm-protocol server
 * (no real swtpm needed): Tpm → Chip → swtpm() → loopback TCP or a UNIX socket → serveSwtpm →
 * SoftTpm. The control channel (locality, cancel) runs too: serveSwtpm listens on port + 1, or on
 * path + ".ctrl", where swtpm() looks for it as tcti-swtpm does.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describeConformance, type ConformanceTarget } from "../../../test/conformance.js";
import { SoftTpm } from "../../softtpm/index.js";
import { serveSwtpm } from "../../server/swtpm.js";
import type { CommandSink } from "../../server/common.js";
import { swtpm } from "./transport.js";

/** A SoftTpm as the servers' command sink. */
function sinkOf(backend: SoftTpm): CommandSink {
  return { transmit: (c, o) => backend.execute(c, o?.locality ?? 0, o?.signal), cancel: () => backend.cancel() };
}

async function overTcp(): Promise<ConformanceTarget> {
  const backend = new SoftTpm();
  await backend.start();
  const server = await serveSwtpm({ chip: sinkOf(backend), port: 0 });
  const transport = swtpm({ port: (server.address as { port: number }).port });
  return {
    transport,
    async cleanup() {
      await transport.close();
      await server.close();
    },
  };
}

async function overUnix(): Promise<ConformanceTarget> {
  const backend = new SoftTpm();
  await backend.start();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-swtpm-conf-"));
  const sock = path.join(dir, "swtpm.sock");
  const server = await serveSwtpm({ chip: sinkOf(backend), path: sock });
  const transport = swtpm({ path: sock });
  return {
    transport,
    async cleanup() {
      await transport.close();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeConformance("swtpm() over serveSwtpm(SoftTpm), loopback TCP", overTcp, { localities: true, fresh: true });
describeConformance("swtpm() over serveSwtpm(SoftTpm), UNIX socket", overUnix, { localities: true, fresh: true });
