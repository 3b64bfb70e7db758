/**
 * `tpmkit getcap` and `tpmkit pcrread` against a live tpm2_getcap / tpm2_pcrread (tpm2-tools 5.4)
 * on the same swtpm 0.7.1 (GitHub issue 8, point 4): tpmkit talks to the swtpm through its own swtpm
 * transport, tpm2-tools through tcti-swtpm, one after the other, and the two outputs must be the
 * same bytes and parse (YAML 1.2) into the same document. Before reading, PCR 16 is extended so the
 * PCR values are not all zeros or ones, and tpm2-tools makes a persistent key, two transient keys,
 * an NV index and a saved session, so the handles-* categories list something.
 *
 * Needs swtpm and tpm2-tools (CI installs both): a missing one is a failure, never a skip.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { Tpm } from "../../src/client/tpm.js";
import { swtpm } from "../../src/transports/swtpm/transport.js";
import { GETCAP_CATEGORIES, getcapVerb } from "../../src/cli/verbs/getcap.js";
import { pcrreadVerb } from "../../src/cli/verbs/pcrread.js";
import type { Verb } from "../../src/cli/verb.js";
import { runVerb } from "../support/run-verb.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm, type SwtpmPeer } from "./swtpm-peer.js";

/** Runs one tpm2 tool on the swtpm; resolves with its stdout when it exits 0. */
function tool(name: string, args: string[], port: number, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(name, ["-T", `swtpm:host=127.0.0.1,port=${port}`, ...args], { timeout: timeoutMs, encoding: "utf8", env: { ...process.env, TSS2_LOG: "all+none" } }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === "ENOENT") reject(new Error(`${name} is not installed: this test needs tpm2-tools (apt-get install tpm2-tools)`));
      else if (err) reject(new Error(`${name} ${args.join(" ")} failed: ${stderr}`));
      else resolve(stdout);
    });
  });
}

let peer: SwtpmPeer;

/** Runs a tpmkit verb on the swtpm through tpmkit's swtpm transport; the connection is closed after (swtpm serves one at a time). */
async function tpmkit<P>(verb: Verb<P>, argv: string[]): Promise<string> {
  const tpm = await Tpm.open(swtpm(peer.data), { signal: AbortSignal.timeout(10_000) });
  try {
    return (await runVerb(verb, argv, tpm)).out;
  } finally {
    await tpm.close();
  }
}

beforeAll(async () => {
  requireSwtpm();
  peer = await startSwtpm({ prefix: "tpmkit-cli-output-" });
  // give PCR 16 a value that is neither zeros nor ones, in every bank
  const tpm = await Tpm.open(swtpm(peer.data), { signal: AbortSignal.timeout(10_000) });
  try {
    await tpm.pcrExtend(16, { sha1: new Uint8Array(20).fill(0xa5), sha256: new Uint8Array(32).fill(0x5a), sha384: new Uint8Array(48).fill(0x3c), sha512: new Uint8Array(64).fill(0xc3) });
  } finally {
    await tpm.close();
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-cli-output-ctx-"));
  try {
    await tool("tpm2_createprimary", ["-c", path.join(dir, "p.ctx")], peer.port);
    await tool("tpm2_evictcontrol", ["-c", path.join(dir, "p.ctx"), "0x81000001"], peer.port);
    await tool("tpm2_createprimary", ["-c", path.join(dir, "p2.ctx")], peer.port);
    await tool("tpm2_nvdefine", ["0x1500016", "-s", "8"], peer.port);
    await tool("tpm2_startauthsession", ["-S", path.join(dir, "s.ctx")], peer.port);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

afterAll(async () => {
  await peer?.stop();
  killAllStartedSwtpm();
});

describe("tpmkit prints what tpm2-tools 5.4 prints, on the same swtpm", () => {
  for (const { name } of GETCAP_CATEGORIES) {
    it(`getcap ${name}`, async () => {
      const mine = await tpmkit(getcapVerb, [name]);
      const theirs = await tool("tpm2_getcap", [name], peer.port);
      expect(parseYaml(mine)).toEqual(parseYaml(theirs));
      expect(mine).toBe(theirs);
    });
  }

  it("the handles-* categories list what tpm2-tools made (so the comparisons above are not of empty lists)", async () => {
    expect(parseYaml(await tpmkit(getcapVerb, ["handles-persistent"]))).toEqual([0x81000001]);
    expect(parseYaml(await tpmkit(getcapVerb, ["handles-nv-index"]))).toEqual([0x1500016]);
    expect((parseYaml(await tpmkit(getcapVerb, ["handles-transient"])) as number[]).length).toBeGreaterThan(0);
    expect((parseYaml(await tpmkit(getcapVerb, ["handles-saved-session"])) as number[]).length).toBe(1);
  });

  it("getcap --list is tpm2_getcap -l", async () => {
    expect(await tpmkit(getcapVerb, ["--list"])).toBe(await tool("tpm2_getcap", ["-l"], peer.port));
  });

  for (const sel of [undefined, "sha256:0,1", "sha1:0+sha256:16", "sha256:all", "sha256:16,16", "sha256:3,1", "sha384", "sha512:16,0"]) {
    it(`pcrread ${sel ?? "(no argument)"}`, async () => {
      const args = sel === undefined ? [] : [sel];
      const mine = await tpmkit(pcrreadVerb, args);
      const theirs = await tool("tpm2_pcrread", args, peer.port);
      expect(parseYaml(mine, { schema: "failsafe" })).toEqual(parseYaml(theirs, { schema: "failsafe" }));
      expect(mine).toBe(theirs);
      if (sel?.includes("16")) expect(mine).not.toMatch(/^ {4}16: 0x(00)+$/m);
    });
  }
});
