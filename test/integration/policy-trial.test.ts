/**
 * Offline policy digests (src/client/policy.ts) against trial sessions of a real TPM: tpm2-tools
 * 5.4 (tpm2_startauthsession without --policy-session starts a trial session) on swtpm 0.7.1.
 * PCR 16 is extended first so the PolicyPCR digest covers a value that is not all zeros.
 *
 * Needs swtpm and tpm2-tools (CI installs both): a missing one is a failure, never a skip.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tpm } from "../../src/client/tpm.js";
import { policy, policyOr } from "../../src/client/policy.js";
import { TPM_CC } from "../../src/wire/constants.js";
import { swtpm } from "../../src/transports/swtpm/transport.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm, type SwtpmPeer } from "./swtpm-peer.js";

let peer: SwtpmPeer;
let dir: string;
let pcr16: Uint8Array;

/** Runs one tpm2 tool on the swtpm; resolves with its stdout when it exits 0. */
function tool(name: string, args: string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(name, ["-T", `swtpm:host=127.0.0.1,port=${peer.port}`, ...args], { timeout: timeoutMs, encoding: "utf8", env: { ...process.env, TSS2_LOG: "all+none" } }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === "ENOENT") reject(new Error(`${name} is not installed: this test needs tpm2-tools (apt-get install tpm2-tools)`));
      else if (err) reject(new Error(`${name} ${args.join(" ")} failed: ${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Runs `steps` (tool name and arguments, `S` for the session file) in one trial session; returns each `-L` output file's hex. */
async function trial(steps: [string, string[]][]): Promise<string[]> {
  const s = path.join(dir, `s-${Math.random().toString(36).slice(2)}.ctx`);
  await tool("tpm2_startauthsession", ["-S", s]);
  const out: string[] = [];
  try {
    for (const [i, [name, args]] of steps.entries()) {
      const file = path.join(dir, `${path.basename(s)}-${i}.pol`);
      await tool(name, ["-S", s, "-L", file, ...args]);
      out.push(fs.readFileSync(file).toString("hex"));
    }
  } finally {
    await tool("tpm2_flushcontext", [s]);
  }
  return out;
}

beforeAll(async () => {
  requireSwtpm();
  peer = await startSwtpm({ prefix: "tpmkit-policy-trial-" });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-policy-trial-files-"));
  const tpm = await Tpm.open(swtpm(peer.data), { signal: AbortSignal.timeout(10_000) });
  try {
    await tpm.pcrExtend(16, { sha256: new Uint8Array(32).fill(0x5a) });
    pcr16 = (await tpm.pcrRead({ sha256: [16] })).sha256![16]!;
  } finally {
    await tpm.close();
  }
}, 30_000);

afterAll(async () => {
  await peer?.stop();
  killAllStartedSwtpm();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("offline policy digests equal tpm2-tools trial sessions on swtpm", () => {
  it("PolicyPCR sha256:16, then PolicyCommandCode Unseal, then PolicyAuthValue", async () => {
    const [pcr, cc, av] = await trial([
      ["tpm2_policypcr", ["-l", "sha256:16"]],
      ["tpm2_policycommandcode", ["TPM2_CC_Unseal"]],
      ["tpm2_policyauthvalue", []],
    ]);
    const p = policy("sha256").pcr({ sha256: [16] }, { sha256: { 16: pcr16 } });
    expect(p.hex).toBe(pcr);
    expect(p.commandCode(TPM_CC.Unseal).hex).toBe(cc);
    expect(p.commandCode(TPM_CC.Unseal).authValue().hex).toBe(av);
  }, 30_000);

  it("PolicySecret with the owner hierarchy (Name = the handle) and PolicyOR of two branches", async () => {
    const [sec] = await trial([["tpm2_policysecret", ["-c", "o"]]]);
    const owner = new Uint8Array([0x40, 0, 0, 1]);
    expect(policy().secret(owner).hex).toBe(sec);
    const a = path.join(dir, "a.pol"), b = path.join(dir, "b.pol");
    fs.writeFileSync(a, policy().authValue().digest);
    fs.writeFileSync(b, policy().commandCode(TPM_CC.Unseal).digest);
    const [or] = await trial([["tpm2_policyor", ["-l", `sha256:${a},${b}`]]]);
    expect(policyOr("sha256", [policy().authValue(), policy().commandCode(TPM_CC.Unseal)]).hex).toBe(or);
  }, 30_000);
});
