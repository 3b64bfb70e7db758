/**
 * `tpmkit serve` to real tpm2-tools (needs tpm2-tools: listed in test/support/peers.ts).
 */
import { describe, expect, it } from "vitest";
import { PassThrough } from "node:stream";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { openCliTarget } from "../../src/cli/target.js";
import { serveCli } from "../../src/cli/serve.js";
import { serve } from "../../src/cli/verbs/serve.js";

const run = promisify(execFile);

describe("tpmkit serve", () => {
  it("serves SoftTpm on the swtpm protocol to real tpm2-tools, and stops cleanly", async () => {
    const target = await openCliTarget("memory");
    const out = new PassThrough();
    const lines: string[] = [];
    out.on("data", (d: Buffer) => lines.push(d.toString()));
    let stop!: () => void;
    const stopped = new Promise<void>((r) => (stop = r));
    const serving = serveCli(serve.parse({ values: { protocol: "swtpm", port: "0" }, positionals: [] }), target, out, stopped);
    let tcti: string | undefined;
    for (let i = 0; i < 100 && !tcti; i++) {
      tcti = /TCTI (swtpm:host=[^\s]+)/.exec(lines.join(""))?.[1];
      if (!tcti) await new Promise((r) => setTimeout(r, 20));
    }
    expect(tcti).toBeDefined();
    try {
      const rnd = await run("tpm2_getrandom", ["-T", tcti!, "8", "--hex"]);
      expect(rnd.stdout.trim()).toMatch(/^[0-9a-f]{16}$/);
      await run("tpm2_pcrextend", ["-T", tcti!, "0:sha256=" + "00".repeat(31) + "01"]);
      const pcr = await run("tpm2_pcrread", ["-T", tcti!, "sha256:0"]);
      expect(pcr.stdout).toContain("0x90F4B39548DF55AD6187A1D20D731ECEE78C545B94AFD16F42EF7592D99CD365");
    } finally {
      stop();
      await serving;
      await target.finish();
    }
    expect(lines.join("")).toContain("tpmkit: stopped");
  });
});
