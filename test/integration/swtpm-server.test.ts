/**
 * Real tpm2-tools (tcti-swtpm from tpm2-tss) against tpmkit's swtpm-protocol server.
 * - backed by a small fake TPM: tpm2_getrandom, tpm2_startup;
 * - backed by a real swtpm through tpmkit's own swtpm transport (tpm2-tools → serveSwtpm →
 *   swtpm() → swtpm): tpm2_pcrread, tpm2_pcrextend, tpm2_getcap properties-fixed, tpm2_nvdefine /
 *   nvwrite / nvread, over TCP and a UNIX socket.
 * Needs tpm2-tools and swtpm on PATH (CI installs them with apt); without them these tests fail.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../src/core/clock.js";
import { serveSwtpm, type SwtpmServer } from "../../src/server/swtpm.js";
import type { CommandSink } from "../../src/server/common.js";
import { swtpm, type SwtpmTransport } from "../../src/transports/swtpm/transport.js";
import { freePortPair } from "./ports.js";

function requireTool(tool: string, args: string[]): void {
  const r = spawnSync(tool, args, { encoding: "utf8" });
  if (r.error || r.status !== 0) throw new Error(`${tool} is not installed or not on PATH: these integration tests need it (apt-get install swtpm swtpm-tools tpm2-tools)`);
}

function tool(args: string[], tcti: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(args[0]!, [...args.slice(1), "-T", tcti], { timeout: 10_000, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function tctiFor(s: SwtpmServer): string {
  return "path" in s.address ? `swtpm:path=${s.address.path}` : `swtpm:host=127.0.0.1,port=${s.address.port}`;
}

/** A fake TPM that knows GetRandom (bytes 1..n), Startup and a GetCapability(TPM_PROPERTIES) reply. */
function fakeTpm(log: string[]): CommandSink {
  return {
    async transmit(c) {
      const cc = ((c[6]! << 24) | (c[7]! << 16) | (c[8]! << 8) | c[9]!) >>> 0;
      log.push(`${cc.toString(16)}:${Buffer.from(c.subarray(10)).toString("hex")}`);
      if (cc === 0x17b) {
        const n = Math.min((c[10]! << 8) | c[11]!, 64);
        const r = Buffer.alloc(12 + n);
        r.writeUInt16BE(0x8001, 0);
        r.writeUInt32BE(12 + n, 2);
        r.writeUInt16BE(n, 10);
        for (let i = 0; i < n; i++) r[12 + i] = i + 1;
        return new Uint8Array(r);
      }
      if (cc === 0x144) return Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0);
      if (cc === 0x17a) {
        // moreData 0, TPM_CAP_TPM_PROPERTIES, 2 properties: FAMILY_INDICATOR "2.0", MAX_DIGEST 64
        const body = Buffer.alloc(1 + 4 + 4 + 16);
        body.writeUInt32BE(6, 1);
        body.writeUInt32BE(2, 5);
        body.writeUInt32BE(0x100, 9);
        body.writeUInt32BE(0x322e3000, 13);
        body.writeUInt32BE(0x120, 17);
        body.writeUInt32BE(64, 21);
        const r = Buffer.alloc(10 + body.length);
        r.writeUInt16BE(0x8001, 0);
        r.writeUInt32BE(r.length, 2);
        body.copy(r, 10);
        return new Uint8Array(r);
      }
      return Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 0x01, 0x43); // TPM_RC_COMMAND_CODE
    },
  };
}

beforeAll(() => {
  requireTool("tpm2_getrandom", ["--version"]);
  requireTool("swtpm", ["--version"]);
});

describe("tpm2-tools against serveSwtpm backed by a fake TPM", () => {
  const log: string[] = [];
  let server: SwtpmServer;
  beforeAll(async () => {
    server = await serveSwtpm({ chip: fakeTpm(log), port: 0 });
  });
  afterAll(() => server?.close());

  it("tpm2_getrandom -T swtpm:host=127.0.0.1,port=P 8 --hex prints the backend's bytes", async () => {
    const r = await tool(["tpm2_getrandom", "8", "--hex"], tctiFor(server));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("0102030405060708");
    expect(log.some((l) => l.startsWith("17b:0008"))).toBe(true);
  });

  it("tpm2_startup -c sends TPM2_Startup(TPM_SU_CLEAR)", async () => {
    const r = await tool(["tpm2_startup", "-c"], tctiFor(server));
    expect(r.code).toBe(0);
    expect(log).toContain("144:0000");
  });
});

// ---------------------------------------------------------------- bridged to a real swtpm


async function waitListening(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`swtpm exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ port, host: "127.0.0.1" });
      s.once("connect", () => {
        s.destroy();
        r(true);
      });
      s.once("error", () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error("swtpm did not start listening within 5 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const kind of ["tcp", "unix"] as const) {
  describe(`tpm2-tools → serveSwtpm (${kind}) → swtpm() transport → real swtpm`, () => {
    let dir: string;
    let child: ChildProcess | undefined;
    let transport: SwtpmTransport;
    let server: SwtpmServer;
    let tcti: string;
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-bridge-"));
      const port = await freePortPair();
      child = spawn(
        "swtpm",
        ["socket", "--tpm2", "--tpmstate", `dir=${dir}`, "--server", `type=tcp,port=${port},bindaddr=127.0.0.1`, "--ctrl", `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, "--flags", "not-need-init,startup-clear"],
        { stdio: "ignore" },
      );
      await waitListening(port, child);
      transport = swtpm({ port });
      const chip: CommandSink = {
        transmit: (c, o) => transport.send(c, { signal: o?.signal ?? AbortSignal.timeout(10_000), locality: o?.locality ?? 0, timeoutMs: 10_000, clock: systemClock }),
      };
      server = kind === "tcp" ? await serveSwtpm({ chip, port: 0 }) : await serveSwtpm({ chip, path: path.join(dir, "tpmkit.sock") });
      tcti = tctiFor(server);
    });
    afterAll(async () => {
      await server?.close();
      await transport?.close();
      if (child && child.exitCode === null) {
        const gone = new Promise((r) => child!.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it("tpm2_pcrread, tpm2_pcrextend: the sha256 PCR 0 known answer", async () => {
      const before = await tool(["tpm2_pcrread", "sha256:0"], tcti);
      expect(before.code).toBe(0);
      expect(before.stdout).toContain("0x" + "00".repeat(32));
      const ext = await tool(["tpm2_pcrextend", "0:sha256=" + "00".repeat(31) + "01"], tcti);
      expect(ext.code).toBe(0);
      const after = await tool(["tpm2_pcrread", "sha256:0"], tcti);
      expect(after.stdout).toContain("0x90F4B39548DF55AD6187A1D20D731ECEE78C545B94AFD16F42EF7592D99CD365");
    });

    it("tpm2_getcap properties-fixed reports the swtpm behind the bridge", async () => {
      const r = await tool(["tpm2_getcap", "properties-fixed"], tcti);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("TPM2_PT_FAMILY_INDICATOR");
      expect(r.stdout).toMatch(/TPM2_PT_MANUFACTURER:\s*\n\s*raw: 0x49424D00/);
    });

    it("tpm2_nvdefine, tpm2_nvwrite, tpm2_nvread round-trip through the bridge", async () => {
      const index = "0x1500016";
      expect((await tool(["tpm2_nvdefine", index, "-C", "o", "-s", "8", "-a", "ownerread|ownerwrite|authread|authwrite"], tcti)).code).toBe(0);
      const file = path.join(dir, "nv.bin");
      fs.writeFileSync(file, Buffer.from("tpmkit!!"));
      expect((await tool(["tpm2_nvwrite", index, "-C", "o", "-i", file], tcti)).code).toBe(0);
      const out = path.join(dir, "nv.out");
      expect((await tool(["tpm2_nvread", index, "-C", "o", "-s", "8", "-o", out], tcti)).code).toBe(0);
      expect(fs.readFileSync(out, "utf8")).toBe("tpmkit!!");
    });
  });
}
