/**
 * Real tpm2-tools 5.4 against tpmkit's swtpm-protocol server backed by SoftTpm (GitHub issue 3,
 * point 6):
 *
 *   tpm2_* ─ tcti-swtpm ─ TCP ─ serveSwtpm (data + control) ─ Chip ─ memory ─ SoftTpm
 *
 * Each tool runs as a child process with `-T swtpm:host=127.0.0.1,port=P` and its output is
 * checked against known values (the sha256 extend known answer is the one swtpm 0.7.1 gives,
 * measured with tpm2-tools 5.4). tpm2-tools must be installed (CI installs it): a missing tool is a
 * failure, never a skip. Every tool runs with a timeout and the server is closed in afterAll.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Chip, SoftTpm, memory, serveSwtpm, type SwtpmServer } from "../../src/index.js";
import { freePortPair } from "./ports.js";

interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one tpm2 tool against the server; rejects only when the tool cannot be started at all. */
function tool(name: string, args: string[], tcti: string, timeoutMs = 10_000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile(name, ["-T", tcti, ...args], { timeout: timeoutMs, encoding: "utf8", env: { ...process.env, TSS2_LOG: "all+none" } }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === "ENOENT") {
        reject(new Error(`${name} is not installed: this test needs tpm2-tools (apt-get install tpm2-tools)`));
        return;
      }
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a tool and expects exit 0 (the message carries its stderr). */
async function ok(name: string, args: string[], tcti: string): Promise<string> {
  const r = await tool(name, args, tcti);
  expect(r.code, `${name} ${args.join(" ")} failed:\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** The hex of one PCR from tpm2_pcrread's YAML-like output ("    0 : 0x…"). */
function pcrFrom(out: string, bank: string, pcr: number): string {
  const section = out.split(new RegExp(`^\\s*${bank}:\\s*$`, "m"))[1] ?? "";
  const m = new RegExp(`^\\s*${pcr}\\s*:\\s*0x([0-9A-Fa-f]+)\\s*$`, "m").exec(section);
  if (!m) throw new Error(`no ${bank} PCR ${pcr} in tpm2_pcrread output:\n${out}`);
  return m[1]!.toLowerCase();
}

const EXTEND_KAT = "90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365";
const NV_INDEX = "0x1500016";

describe("tpm2-tools 5.4 against tpmkit serve (swtpm protocol) over SoftTpm", () => {
  let server: SwtpmServer | undefined;
  let chip: Chip | undefined;
  let dir = "";
  let T = "";

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-tools-"));
    chip = new Chip(memory({ backend: new SoftTpm() }));
    await chip.open();
    const port = await freePortPair();
    server = await serveSwtpm({ chip, host: "127.0.0.1", port });
    T = `swtpm:host=127.0.0.1,port=${port}`;
  });

  afterAll(async () => {
    await server?.close();
    await chip?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("tpm2_startup -c starts the TPM; tpm2_getrandom 8 --hex prints 8 fresh bytes", async () => {
    await ok("tpm2_startup", ["-c"], T);
    const a = (await ok("tpm2_getrandom", ["8", "--hex"], T)).trim();
    const b = (await ok("tpm2_getrandom", ["8", "--hex"], T)).trim();
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(b).toMatch(/^[0-9a-f]{16}$/);
    expect(a).not.toBe(b);
  });

  it("tpm2_pcrread shows zero PCRs 0–2 and 0xFF…FF for PCR 17; tpm2_pcrextend then gives the swtpm known answer", async () => {
    const before = await ok("tpm2_pcrread", ["sha256:0,1,2,17"], T);
    for (const i of [0, 1, 2]) expect(pcrFrom(before, "sha256", i)).toBe("00".repeat(32));
    expect(pcrFrom(before, "sha256", 17)).toBe("ff".repeat(32));
    await ok("tpm2_pcrextend", [`0:sha256=${"00".repeat(31)}01`], T);
    const after = await ok("tpm2_pcrread", ["sha256:0"], T);
    expect(pcrFrom(after, "sha256", 0)).toBe(EXTEND_KAT);
  });

  it("tpm2_getcap properties-fixed reports family 2.0 and SoftTpm's manufacturer TKIT", async () => {
    const out = await ok("tpm2_getcap", ["properties-fixed"], T);
    expect(out).toMatch(/TPM2_PT_FAMILY_INDICATOR:\s*\n\s*raw: 0x322E3000\s*\n\s*value: "2.0"/);
    expect(out).toMatch(/TPM2_PT_MANUFACTURER:\s*\n\s*raw: 0x544B4954\s*\n\s*value: "TKIT"/);
    expect(out).toMatch(/TPM2_PT_PCR_COUNT:\s*\n\s*raw: 0x18/);
  });

  it("tpm2_nvdefine, tpm2_nvwrite -i and tpm2_nvread round-trip 32 bytes; tpm2_clear removes the owner index", async () => {
    const data = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
    const input = path.join(dir, "nv.in");
    const output = path.join(dir, "nv.out");
    fs.writeFileSync(input, data);
    await ok("tpm2_nvdefine", [NV_INDEX, "-C", "o", "-s", "32", "-a", "ownerread|ownerwrite|authread|authwrite"], T);
    const pub = await ok("tpm2_nvreadpublic", [NV_INDEX], T);
    expect(pub).toMatch(/0x1500016:/);
    expect(pub).toMatch(/size: 32/);
    await ok("tpm2_nvwrite", [NV_INDEX, "-C", "o", "-i", input], T);
    await ok("tpm2_nvread", [NV_INDEX, "-C", "o", "-s", "32", "-o", output], T);
    expect(fs.readFileSync(output).toString("hex")).toBe(data.toString("hex"));
    // read through the index's own (empty) auth too, 8 bytes at offset 4
    await ok("tpm2_nvread", [NV_INDEX, "-C", NV_INDEX, "-s", "8", "--offset", "4", "-o", output], T);
    expect(fs.readFileSync(output).toString("hex")).toBe(data.subarray(4, 12).toString("hex"));
    const listed = await ok("tpm2_getcap", ["handles-nv-index"], T);
    expect(listed).toMatch(/0x1500016/);
    await ok("tpm2_clear", [], T);
    expect(await ok("tpm2_getcap", ["handles-nv-index"], T)).not.toMatch(/0x1500016/);
    const gone = await tool("tpm2_nvread", [NV_INDEX, "-C", "o", "-s", "32", "-o", output], T);
    expect(gone.code).not.toBe(0);
  });

  it("tpm2_pcrevent hashes a file and extends PCR 16 with it in every bank", async () => {
    const file = path.join(dir, "event.bin");
    const event = Buffer.from("tpmkit event data\n");
    fs.writeFileSync(file, event);
    const out = await ok("tpm2_pcrevent", ["16", file], T);
    const digest = createHash("sha256").update(event).digest("hex");
    expect(out.toLowerCase()).toContain(`sha256: ${digest}`);
    const pcr = pcrFrom(await ok("tpm2_pcrread", ["sha256:16"], T), "sha256", 16);
    const expected = createHash("sha256").update(Buffer.alloc(32)).update(Buffer.from(digest, "hex")).digest("hex");
    expect(pcr).toBe(expected);
  });
});
