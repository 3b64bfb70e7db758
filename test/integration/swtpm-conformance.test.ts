/**
 * The shared conformance suite over tpmkit's swtpm transport, with a real swtpm behind it:
 *
 * 1. Tpm ─ swtpm() ─ TCP ─ swtpm 0.7 (data + control channel)
 * 2. Tpm ─ swtpm() ─ UNIX ─ serveSwtpm ─ Chip ─ swtpm() ─ TCP ─ swtpm 0.7   (both ends are tpmkit's)
 *
 * Each test gets a fresh swtpm (state in a temp dir), stopped by PID afterwards. swtpm must be
 * installed (.ci/run installs it); without it these tests fail.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { Chip } from "../../src/core/chip.js";
import { serveSwtpm } from "../../src/server/swtpm.js";
import { swtpm } from "../../src/transports/swtpm/index.js";
import { describeConformance } from "../conformance.js";
import { freePortPair } from "./ports.js";


async function startSwtpm(): Promise<{ port: number; dir: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-swtpm-conf-"));
  const port = await freePortPair();
  const child: ChildProcess = spawn(
    "swtpm",
    ["socket", "--tpm2", "--tpmstate", `dir=${dir}`, "--server", `type=tcp,port=${port},bindaddr=127.0.0.1`, "--ctrl", `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, "--flags", "not-need-init"],
    { stdio: "ignore" },
  );
  const spawnError = new Promise<never>((_r, reject) => child.once("error", (e) => reject(new Error(`cannot run swtpm (is it installed?): ${e.message}`))));
  const deadline = Date.now() + 5000;
  const ready = (async () => {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`swtpm exited with ${child.exitCode}`);
      const ok = await new Promise<boolean>((r) => {
        const s = net.connect({ port: port + 1, host: "127.0.0.1" });
        s.once("connect", () => {
          s.destroy();
          r(true);
        });
        s.once("error", () => r(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error("swtpm did not start listening within 5 s");
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  await Promise.race([ready, spawnError]);
  return {
    port,
    dir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
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
