/**
 * The shared conformance suite over the mssim protocol end to end, with a real TPM behind it:
 *
 *   Tpm ─ mssim transport ─ TCP ─ serveMssim ─ Chip ─ mssim transport (TPM_SEND_COMMAND framing,
 *   no platform signals) ─ TCP ─ swtpm 0.7.1 data port
 *
 * swtpm accepts the mssim TPM_SEND_COMMAND header on its data port (facts swtpm-measured.md §3),
 * so the same client code drives both hops. swtpm must be installed (.ci/run installs it).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Chip } from "../../src/core/chip.js";
import { serveMssim } from "../../src/server/mssim.js";
import { mssim } from "../../src/transports/mssim/index.js";
import { describeConformance } from "../conformance.js";
import { freePort } from "./ports.js";

const run = promisify(execFile);


async function startSwtpm(): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "tpmkit-mssim-conf-"));
  const port = await freePort();
  await run(
    "swtpm",
    [
      "socket", "--tpm2", "--tpmstate", `dir=${dir}`,
      "--server", `type=tcp,port=${port},bindaddr=127.0.0.1`,
      "--flags", "not-need-init",
      "--pid", `file=${dir}/swtpm.pid`, "--daemon",
    ],
    { timeout: 10000 },
  );
  const pid = Number((await readFile(join(dir, "swtpm.pid"), "utf8")).trim());
  return {
    port,
    async stop() {
      try {
        process.kill(pid);
      } catch {
        // already gone
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
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
