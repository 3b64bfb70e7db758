/**
 * `tpmkit serve --rm` (the resource manager, src/server/rm.ts) to real tpm2-tools 5.4 (needs
 * tpm2-tools: listed in test/support/peers.ts). Every tool invocation is a new client, as with
 * /dev/tpmrm0: its objects and sessions are flushed when it leaves, so keys travel between tools as
 * context files (-c), and the TPM itself holds no transient object or session in between.
 */
import { describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { openCliTarget } from "../../src/cli/target.js";
import { serveCli } from "../../src/cli/serve.js";
import { serve } from "../../src/cli/verbs/serve.js";

const run = promisify(execFile);

/** The handles the TPM itself lists from `first` (GetCapability TPM_CAP_HANDLES, straight to the chip). */
async function tpmHandles(transmit: (c: Uint8Array) => Promise<Uint8Array>, first: number): Promise<number[]> {
  const c = Uint8Array.from([0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7a, 0, 0, 0, 1, first >>> 24, (first >>> 16) & 0xff, (first >>> 8) & 0xff, first & 0xff, 0, 0, 0, 64]);
  const r = await transmit(c);
  const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
  expect(dv.getUint32(6)).toBe(0);
  return Array.from({ length: dv.getUint32(15) }, (_, i) => dv.getUint32(19 + 4 * i));
}

async function withServer(protocol: "swtpm" | "mssim", body: (tcti: string, dir: string, tpm: (c: Uint8Array) => Promise<Uint8Array>) => Promise<void>): Promise<void> {
  const target = await openCliTarget("memory");
  const out = new PassThrough();
  const lines: string[] = [];
  out.on("data", (d: Buffer) => lines.push(d.toString()));
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const serving = serveCli(serve.parse({ values: { protocol, port: "0", rm: true }, positionals: [] }), target, out, stopped);
  let tcti: string | undefined;
  for (let i = 0; i < 200 && !tcti; i++) {
    tcti = /TCTI ((?:swtpm|mssim):host=[^\s]+)/.exec(lines.join(""))?.[1];
    if (!tcti) await new Promise((r) => setTimeout(r, 20));
  }
  expect(tcti).toBeDefined();
  expect(lines.join("")).toContain("through the resource manager");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-rm-"));
  try {
    await body(tcti!, dir, (c) => target.tpm.chip.transmit(c));
  } finally {
    stop();
    await serving;
    await target.finish();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const tool = (name: string, args: string[], tcti: string, cwd: string) => run(name, ["-T", tcti, ...args], { cwd, timeout: 20_000, env: { ...process.env, TSS2_LOG: "all+none" } });

async function keyChain(tcti: string, dir: string, tpm: (c: Uint8Array) => Promise<Uint8Array>): Promise<void> {
  if (tcti.startsWith("mssim")) await tool("tpm2_startup", ["-c"], tcti, dir);
  await tool("tpm2_createprimary", ["-C", "o", "-G", "aes128cfb", "-c", "primary.ctx"], tcti, dir);
  // the tool left: its primary is gone from the TPM (and from every other client's view)
  expect((await tool("tpm2_getcap", ["handles-transient"], tcti, dir)).stdout.trim()).toBe("");
  fs.writeFileSync(path.join(dir, "secret.txt"), "rm-secret");
  await tool("tpm2_create", ["-C", "primary.ctx", "-i", "secret.txt", "-u", "key.pub", "-r", "key.priv"], tcti, dir);
  await tool("tpm2_load", ["-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv", "-c", "key.ctx"], tcti, dir);
  expect((await tool("tpm2_unseal", ["-c", "key.ctx"], tcti, dir)).stdout).toBe("rm-secret");
  await tool("tpm2_getcap", ["handles-transient"], tcti, dir);
  // mssim: the last tool's connection is closed; swtpm: the next client's opening probe ended the space
  await new Promise((r) => setTimeout(r, 100));
  expect(await tpmHandles(tpm, 0x80000000)).toEqual([]);
  expect(await tpmHandles(tpm, 0x02000000)).toEqual([]);
  expect(await tpmHandles(tpm, 0x03000000)).toEqual([]);
}

describe("tpmkit serve --rm with tpm2-tools", () => {
  it("swtpm protocol: createprimary, create, load, unseal in separate invocations through context files; nothing left in the TPM", async () => {
    await withServer("swtpm", keyChain);
  });

  it("mssim protocol: the same, one space per connection", async () => {
    await withServer("mssim", keyChain);
  });
});
