/**
 * Issue 8, point 3: a parser that refuses what it does not know (node:util parseArgs, strict), one
 * help text per verb, -l for the verb's commands only, one PCR index check (0-23) everywhere, exit 2
 * for every usage error, --json on every verb, --verbose tracing every command.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import { runCli } from "./support/cli.js";
import { VERBS } from "../src/cli/verbs/index.js";

const cli = (...argv: string[]) => runCli(argv);

const ONE = "00".repeat(31) + "01";

describe("the tpmkit command line", () => {
  it("refuses an option a verb does not know: getrandom 8 --hx is a usage error, nothing written", async () => {
    for (const argv of [
      ["getrandom", "8", "--hx"],
      ["getrandom", "8", "--hex=yes"],
      ["pcrextend", `16:sha256=${ONE}`, "--force"],
      ["demo", "--hex"],
      ["serve", "--prot", "swtpm"],
      ["getrandom", "8", "-T"],
    ]) {
      const r = await cli(...argv, ...(argv.includes("-T") ? [] : ["-T", "memory"]));
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toMatch(/^tpmkit: (unknown option|option)/);
    }
  });

  it("every verb has its own --help, printed to stdout with exit 0", async () => {
    const helps = new Set<string>();
    for (const v of VERBS) {
      for (const argv of [[v.name, "--help"], [v.name, "-h"], ["help", v.name]]) {
        const r = await cli(...argv);
        expect(r.code, argv.join(" ")).toBe(0);
        expect(r.err).toBe("");
        expect(r.out).toContain(`usage: tpmkit ${v.name}`);
        expect(r.out).toContain("--json");
        helps.add(r.out);
      }
    }
    expect(helps.size).toBe(VERBS.length);
    const global = await cli("--help");
    expect(global.code).toBe(0);
    for (const v of VERBS) expect(global.out).toContain(`  ${v.name} `);
  });

  it("-l sets the locality of the verb's commands only, never of Startup", async () => {
    // Startup(CLEAR) at locality 3 would set PCR 0 to 0...03 (PC Client PTP; SoftTpm as swtpm 0.7.1)
    const r = await cli("getrandom", "4", "--hex", "--verbose", "-l", "3", "-T", "memory");
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/TPM_CC_Startup locality 0 /);
    expect(r.err).toMatch(/TPM_CC_GetRandom locality 3 /);
    expect(r.err).not.toMatch(/TPM_CC_Startup locality 3/);
    // -l 4 works: Startup is never sent at 4 (where a TPM refuses it)
    const four = await cli("getrandom", "4", "--hex", "-l", "4", "-T", "memory");
    expect(four.code, four.err).toBe(0);
    expect(four.out).toMatch(/^[0-9a-f]{8}\n$/);
    // PCR 17 at locality 4, then PCR 0 read at locality 3 is still zero
    expect((await cli("pcrextend", `17:sha256=${ONE}`, "-l", "4", "-T", "memory")).code).toBe(0);
  });

  it("checks a PCR index once, 0-23, in every verb, with exit 2", async () => {
    for (const argv of [
      ["pcrextend", `99:sha256=${ONE}`],
      ["pcrextend", `24:sha256=${ONE}`],
      ["pcrread", "sha256:99"],
      ["pcrread", "sha256:24"],
      ["pcrread", "sha256:0,x"],
    ]) {
      const r = await cli(...argv, "-T", "memory");
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err, argv.join(" ")).toMatch(/0[-–]23/);
    }
    expect((await cli("pcrextend", `23:sha256=${ONE}`, "-T", "memory")).code).toBe(0);
  });

  it("exit 2 for every usage error, 1 for TPM and transport errors", async () => {
    const cases: [string[], number][] = [
      [["getrandom", "4", "-T", "bogus"], 2],
      [["getrandom", "4", "-T", "swtpm:port=0"], 2],
      [["getrandom", "65536", "-T", "memory"], 2],
      [["getrandom", "4", "5", "-T", "memory"], 2],
      [["getrandom", "4", "-l", "5", "-T", "memory"], 2],
      [["serve", "--port", "70000", "-T", "memory"], 2],
      [["serve", "--protocol", "mssim", "--path", "/tmp/x", "-T", "memory"], 2],
      [["demo", "extra"], 2],
      [["nosuchverb"], 2],
      [["--bogus"], 2],
      [[], 2],
      [["getrandom", "4", "-T", "swtpm:host=127.0.0.1,port=1"], 1],
      [["pcrextend", `17:sha256=${ONE}`, "-T", "memory"], 1],
    ];
    for (const [argv, code] of cases) {
      const r = await cli(...argv);
      expect(r.code, `${argv.join(" ")}: ${r.err}`).toBe(code);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it("--json on every verb", async () => {
    const rnd = await cli("getrandom", "16", "--json", "-T", "memory");
    expect(rnd.code, rnd.err).toBe(0);
    expect(Object.keys(JSON.parse(rnd.out))).toEqual(["randomBytes"]);
    expect(JSON.parse(rnd.out).randomBytes).toMatch(/^[0-9a-f]{32}$/);

    const ext = await cli("pcrextend", `16:sha256=${ONE},sha1=${"00".repeat(20)}`, `23:sha256=${ONE}`, "--json", "-T", "memory");
    expect(ext.code, ext.err).toBe(0);
    expect(JSON.parse(ext.out)).toEqual({
      extended: [
        { pcr: 16, digests: { sha256: ONE, sha1: "00".repeat(20) } },
        { pcr: 23, digests: { sha256: ONE } },
      ],
    });

    const demo = await cli("demo", "--json");
    expect(demo.code, demo.err).toBe(0);
    const d = JSON.parse(demo.out);
    expect(d.info.family).toBe("2.0");
    expect(d.hash.sha256).toBe("ec40932cbf95ef76535bd2a0b03e8fa20c616a17504d960d5d3787e992dcecbd");
    expect(d.random).toMatch(/^[0-9a-f]{32}$/);

    for (const argv of [["pcrread", "sha256:0"], ["getcap", "pcrs"]]) {
      const r = await cli(...argv, "--json", "-T", "memory");
      expect(r.code, r.err).toBe(0);
      expect(() => JSON.parse(r.out), argv.join(" ")).not.toThrow();
    }
  });

  it("--verbose prints the command trace to stderr, one line per command", async () => {
    const r = await cli("getrandom", "8", "--hex", "--verbose", "-T", "memory");
    expect(r.code, r.err).toBe(0);
    const trace = r.err.split("\n").filter((l) => l.startsWith("tpmkit: trace: "));
    expect(trace.map((l) => /TPM_CC_\w+/.exec(l)![0])).toEqual(["TPM_CC_Startup", "TPM_CC_GetRandom"]);
    expect(trace[1]).toMatch(/TPM_RC_SUCCESS/);
    const plain = await cli("getrandom", "8", "--hex", "-T", "memory");
    expect(plain.err).not.toMatch(/trace/);
  });

  it("--version prints package.json's version", async () => {
    const pkg = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    for (const argv of [["--version"], ["-V"], ["getrandom", "--version"]]) {
      const r = await cli(...argv);
      expect(r.code).toBe(0);
      expect(r.out).toBe(`${pkg.version}\n`);
    }
  });
});
