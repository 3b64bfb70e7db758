import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runCli } from "./support/cli.js";
import { openCliTarget } from "../src/cli/target.js";
import { serveCli } from "../src/cli/serve.js";
import { serve } from "../src/cli/verbs/serve.js";
import { PassThrough } from "node:stream";
import { SwtpmControl } from "../src/transports/swtpm/control.js";


/**
 * Runs the CLI in-process. Verbs other than demo pick the TPM from -T, the environment or
 * discovery: these tests give them TPM2TOOLS_TCTI=memory and no discovery, never this machine's.
 */
const cli = (...argv: string[]) => runCli(argv, { env: { TPM2TOOLS_TCTI: "memory" }, discovery: [] });

describe("tpmkit CLI", () => {
  it("demo shows the TPM, its banks, PCRs, random bytes and an extend", async () => {
    const r = await cli("demo");
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(r.out).toMatch(/spec\s+TPM 2\.0/);
    expect(r.out).toMatch(/PCR banks\s+sha1 \(24\), sha256 \(24\), sha384 \(24\), sha512 \(24\)/);
    expect(r.out).toMatch(/sha256 PCR 17\s+f{64}/);
    expect(r.out).toMatch(/random \(16\)\s+[0-9a-f]{32}\n/);
    // sha256("hello from tpmkit"), computed by the TPM, then extended into PCR 16 from zero
    expect(r.out).toContain("ec40932cbf95ef76535bd2a0b03e8fa20c616a17504d960d5d3787e992dcecbd");
  });

  it("demo runs through the TIS and CRB register models", async () => {
    for (const t of ["tis", "crb"]) {
      const r = await cli("demo", "-T", t);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(t === "tis" ? "TisDevice" : "CrbDevice");
      expect(r.out).toMatch(/sha256 PCR 16\s+[0-9a-f]{64}/);
    }
  });

  it("getrandom prints hex or raw bytes of the asked length", async () => {
    const hex = await cli("getrandom", "8", "--hex");
    expect(hex.out).toMatch(/^[0-9a-f]{16}\n$/);
    const raw = await cli("getrandom", "5");
    expect(Buffer.byteLength(raw.out, "latin1")).toBeGreaterThan(0);
  });

  it("pcrextend then pcrread keep state across runs with softtpm:state=FILE (the swtpm known answer)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-cli-"));
    const T = `softtpm:state=${path.join(dir, "tpm.state")}`;
    try {
      expect((await cli("pcrextend", "0:sha256=" + "00".repeat(31) + "01", "-T", T)).code).toBe(0);
      const r = await cli("pcrread", "sha256:0", "-T", T);
      expect(r.out).toContain("0 : 0x90F4B39548DF55AD6187A1D20D731ECEE78C545B94AFD16F42EF7592D99CD365");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("getcap lists fixed properties, banks, algorithms and commands", async () => {
    // tpm2-tools 5.4's YAML (tools/tpm2_getcap.c)
    expect((await cli("getcap", "properties-fixed")).out).toContain('TPM2_PT_FAMILY_INDICATOR:\n  raw: 0x322E3000\n  value: "2.0"');
    expect((await cli("getcap", "pcrs")).out).toContain("  - sha256: [ 0, 1, 2");
    expect((await cli("getcap", "algorithms")).out).toMatch(/^sha256:\n\s+value:\s+0xB$/im);
    expect((await cli("getcap", "commands")).out).toContain("TPM2_CC_GetRandom");
  });

  it("answers bad input with one line and a non-zero exit, never a stack trace", async () => {
    const cases: [string[], number, RegExp][] = [
      [["frobnicate"], 2, /unknown verb/],
      [["getrandom", "x"], 2, /count/],
      [["pcrread", "md5:0"], 2, /bad PCR selection/],
      [["pcrextend", "16:sha256=zz"], 2, /not hex/],
      [["pcrextend", "16:sha256=00"], 2, /32 bytes/],
      [["getcap", "nope"], 2, /getcap needs/],
      [["getrandom", "4", "-T", "nosuch"], 2, /-T: unknown TCTI "nosuch"/],
      [["getrandom", "4", "-T", "swtpm:host=127.0.0.1,port=1"], 1, /ECONNREFUSED/],
      [["pcrextend", "17:sha256=" + "00".repeat(32)], 1, /TPM_RC_LOCALITY/],
      [["getrandom", "4", "--locality", "9"], 2, /locality/],
      [["getrandom", "4", "-Q"], 2, /unknown option/],
    ];
    for (const [argv, code, msg] of cases) {
      const r = await cli(...argv);
      expect(r.code, argv.join(" ")).toBe(code);
      // one line, besides the notice that says the TPM is emulated
      expect(r.err.trim().split("\n").filter((l) => !l.startsWith("tpmkit: emulated TPM"))).toHaveLength(1);
      expect(r.err).toMatch(msg);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it("allows PCR 17 at locality 3", async () => {
    expect((await cli("pcrextend", "17:sha256=" + "00".repeat(32), "-l", "3")).code).toBe(0);
  });
});

describe("tpmkit serve", () => {
  it("a client's CMD_SHUTDOWN ends the server in order and says why (it used to stop nothing and say nothing)", async () => {
    const target = await openCliTarget("memory");
    const out = new PassThrough();
    const lines: string[] = [];
    out.on("data", (d: Buffer) => lines.push(d.toString()));
    const never = new Promise<void>(() => {});
    const serving = serveCli(serve.parse({ values: { protocol: "swtpm", port: "0" }, positionals: [] }), target, out, never, true);
    let info: { controlAddress?: { host: string; port: number } } | undefined;
    for (let i = 0; i < 100 && !info; i++) {
      const first = lines.join("").split("\n")[0];
      if (first) info = JSON.parse(first) as typeof info;
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(info?.controlAddress?.port).toBeGreaterThan(0);
    const control = new SwtpmControl({ host: info!.controlAddress!.host, port: info!.controlAddress!.port });
    try {
      await control.shutdown({ timeoutMs: 2000 });
    } finally {
      await control.close();
    }
    await serving; // ended by the client, not by the (never-resolving) stop promise
    expect(JSON.parse(lines.join("").trim().split("\n").pop()!)).toEqual({ stopped: "a client sent CMD_SHUTDOWN" });
    expect((await target.tpm.getRandom(4)).length).toBe(4); // the TPM is still usable for the orderly end
    await target.finish();
  });
});
