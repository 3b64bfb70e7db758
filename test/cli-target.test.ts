/**
 * Issue 8, point 2: the TPM tpmkit talks to is the one you meant. Verbs other than demo pick it as
 * tpm2-tools 5.4 does (-T, then TPM2TOOLS_TCTI, then TCTI, then discovery in tpm2-tss order), blank
 * variables count as unset, errors about a TCTI string name where it came from, and a run on an
 * emulated TPM says so on stderr. The environment and discovery are injected: these tests never
 * look at this machine's /dev or environment.
 */
import { describe, expect, it } from "vitest";
import type { MainOptions } from "../src/cli/main.js";
import { serveSwtpm } from "../src/server/swtpm.js";
import { Chip } from "../src/core/chip.js";
import { runCli } from "./support/cli.js";
import { memory } from "../src/transports/memory/index.js";
import { SoftTpm } from "../src/softtpm/index.js";
import { Tpm } from "../src/client/tpm.js";

const cli = (options: MainOptions, ...argv: string[]) => runCli(argv, options);

const nothing: MainOptions = { env: {}, discovery: [] };

describe("which TPM a verb talks to", () => {
  it("with nothing configured and nothing discovered, says so and how to use the embedded SoftTpm", async () => {
    const r = await cli({ env: {}, discovery: ["swtpm:host=127.0.0.1,port=1"], probeTimeoutMs: 500 }, "getrandom", "8", "--hex");
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/no TPM found/);
    expect(r.err).toContain("swtpm:host=127.0.0.1,port=1");
    expect(r.err).toContain("-T softtpm");
  });

  it("discovery finds a TPM the library would find (here a swtpm-protocol server) and uses it", async () => {
    const chip = new Chip(memory({ backend: new SoftTpm() }));
    await Tpm.open(chip); // started: the CLI's Startup(CLEAR) then answers TPM_RC_INITIALIZE
    const server = await serveSwtpm({ chip, host: "127.0.0.1", port: 0 });
    try {
      const port = (server.address as { port: number }).port;
      const discovery = ["device:/nonexistent/tpmrm0", `swtpm:host=127.0.0.1,port=${port}`];
      const r = await cli({ env: { TPM2TOOLS_TCTI: "  ", TCTI: "" }, discovery }, "pcrextend", `16:sha256=${"00".repeat(31)}01`);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toBe(""); // a host transport: no "emulated" notice
      // the extend reached the discovered TPM
      const pcr16 = (await new Tpm(chip).pcrRead({ sha256: [16] })).sha256![16]!;
      expect(Buffer.from(pcr16).toString("hex")).toBe("90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365");
    } finally {
      await server.close();
      await chip.close();
    }
  });

  it("-T, then TPM2TOOLS_TCTI, then TCTI; blank variables count as unset", async () => {
    const ok = async (options: MainOptions, ...argv: string[]) => {
      const r = await cli(options, "getrandom", "4", "--hex", ...argv);
      expect(r.code, r.err).toBe(0);
      return r;
    };
    await ok({ env: { TPM2TOOLS_TCTI: "tabrmd", TCTI: "tabrmd" }, discovery: [] }, "-T", "memory");
    await ok({ env: { TPM2TOOLS_TCTI: "memory", TCTI: "tabrmd" }, discovery: [] });
    await ok({ env: { TPM2TOOLS_TCTI: "", TCTI: "memory" }, discovery: [] });
    await ok({ env: { TPM2TOOLS_TCTI: " ", TCTI: "memory" }, discovery: [] });
    const none = await cli({ env: { TPM2TOOLS_TCTI: "", TCTI: "" }, discovery: [] }, "getrandom", "4");
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/no TPM found/);
  });

  it("a bad TCTI string is a usage error (exit 2) that names where it came from", async () => {
    const cases: [MainOptions, string[], RegExp][] = [
      [{ env: { TPM2TOOLS_TCTI: "tabrmd" }, discovery: [] }, [], /^tpmkit: TPM2TOOLS_TCTI: unknown TCTI "tabrmd"/],
      [{ env: { TCTI: "nosuch:x=1" }, discovery: [] }, [], /^tpmkit: TCTI: unknown TCTI "nosuch"/],
      [{ env: { TPM2TOOLS_TCTI: "swtpm:port=99999" }, discovery: [] }, [], /^tpmkit: TPM2TOOLS_TCTI: bad TCTI string .*99999/],
      [nothing, ["-T", "bogus"], /^tpmkit: -T: unknown TCTI "bogus"/],
      [nothing, ["-T", "swtpm:host=a,path=b"], /^tpmkit: -T: bad TCTI string/],
      [nothing, ["-T", "softtpm:stat=x"], /^tpmkit: -T: bad TCTI string .*"stat"/],
      [nothing, ["-T", ""], /^tpmkit: -T: bad TCTI string/],
    ];
    for (const [options, argv, msg] of cases) {
      const r = await cli(options, "getrandom", "4", ...argv);
      expect(r.code, `${JSON.stringify(options.env)} ${argv.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.err.trim().split("\n")).toHaveLength(1);
    }
  });

  it("a run on an emulated TPM says so on stderr, in one line", async () => {
    for (const t of ["memory", "softtpm", "tis", "crb"]) {
      const r = await cli(nothing, "getrandom", "4", "--hex", "-T", t);
      expect(r.code, r.err).toBe(0);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toMatch(/^tpmkit: emulated TPM .*SoftTpm/);
    }
  });

  it("demo keeps the embedded SoftTpm: it reads neither the environment nor discovery", async () => {
    const r = await cli({ env: { TPM2TOOLS_TCTI: "tabrmd" }, discovery: ["swtpm:host=127.0.0.1,port=1"] }, "demo");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^tpmkit demo: SoftTpm, embedded/);
  });
});
