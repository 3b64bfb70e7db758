/**
 * Issue 10, point 5: `tpmkit boot ffa-ima` (the CRB-over-FF-A / IMA boot race, reproduced on the
 * platform model, as a table, JSON or an SVG) and `-T crb-ffa` (every verb and `serve` through
 * CRB over Arm FF-A: SoftTpm → CrbDevice → TpmServicePartition → FfaBus → crb(ffaStart)).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";
import { openCliTarget } from "../src/cli/target.js";
import { serveCli } from "../src/cli/serve.js";
import { serve } from "../src/cli/verbs/serve.js";
import { parseLinkOrder } from "../src/cli/verbs/boot.js";
import { swtpm } from "../src/transports/swtpm/transport.js";
import { Tpm } from "../src/client/tpm.js";
import { parseTcti } from "../src/platform/tcti-parse.js";
import { boardFor } from "../src/platform/boards.js";

const cli = (...argv: string[]) => runCli(argv, { env: {}, discovery: [] });

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "tpmkit-boot-"));
  dirs.push(d);
  return d;
}

const BYPASS_LINE = "ima: No TPM chip found, activating TPM-bypass!";
const KERNEL_ORDER = "crb_acpi_driver_init,tpm_crb_ffa_init,ffa_init";

describe("tpmkit boot ffa-ima", () => {
  it("reproduces the bypass with the kernel's link order and no fix: table, IMA line, exit 0", async () => {
    const r = await cli("boot", "ffa-ima");
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe(""); // no TPM opened, no "emulated TPM" notice
    expect(r.out).toContain(`link order ${KERNEL_ORDER.split(",").join(", ")}; fix none`);
    expect(r.out).toMatch(/time \(ms\)\s+level\s+kind\s+name\s+detail/);
    expect(r.out).toMatch(/device\s+probe-deferred\s+MSFT0101:00/);
    expect(r.out).toMatch(/late\s+deferred-flush/);
    expect(r.out).toContain(BYPASS_LINE);
    expect(r.out).toMatch(/IMA: TPM-bypass.*boot_aggregate 0{64} \(all zero, sha256\)/);
    // IMA decided before the flush bound the chip
    expect(r.out.indexOf("init_ima")).toBeLessThan(r.out.indexOf("chip-register"));
  });

  for (const fix of ["rootfs", "late-sync", "wait"]) {
    it(`--fix ${fix}: no bypass, a boot_aggregate with its bank`, async () => {
      const r = await cli("boot", "ffa-ima", "--fix", fix);
      expect(r.code, r.err).toBe(0);
      expect(r.out).not.toContain(BYPASS_LINE);
      const m = /IMA: measured: boot_aggregate \(sha256\) ([0-9a-f]{64})\n/.exec(r.out);
      expect(m?.[1]).toBeDefined();
      expect(m![1]).not.toBe("0".repeat(64));
      expect(r.out).toMatch(/chip-register\s+tpm0/);
      if (fix === "late-sync") expect(r.out).toMatch(/late_sync\s+ima\s+init_ima\s+boot_aggregate_late/);
    });
  }

  it("--order with ffa_init and tpm_crb_ffa_init before crb_acpi_driver_init: no bypass without a fix", async () => {
    const r = await cli("boot", "ffa-ima", "--order", "ffa_init,tpm_crb_ffa_init,crb_acpi_driver_init");
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toContain(BYPASS_LINE);
    expect(r.out).not.toContain("probe-deferred");
    expect(r.out).toMatch(/IMA: measured/);
  });

  it("the same aggregate for every fix (a fresh SoftTpm: PCRs 0–9 at zero)", async () => {
    const aggs = new Set<string>();
    for (const fix of ["rootfs", "late-sync", "wait"]) {
      const r = await cli("boot", "ffa-ima", "--fix", fix, "--json");
      aggs.add((JSON.parse(r.out) as { ima: { aggregate: string } }).ima.aggregate);
    }
    expect(aggs.size).toBe(1);
  });

  it("--json prints { ima, timeline }", async () => {
    const r = await cli("boot", "ffa-ima", "--json");
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out) as { ima: { bypass: boolean; bank: string; aggregate: string; log: string[] }; timeline: { kind: string; name: string; level?: string }[]; fix: string; linkOrder: string[] };
    expect(doc.ima).toEqual({ bypass: true, bank: "sha256", aggregate: "0".repeat(64), log: [BYPASS_LINE] });
    expect(doc.fix).toBe("none");
    expect(doc.linkOrder).toEqual(KERNEL_ORDER.split(","));
    expect(doc.timeline.some((e) => e.kind === "probe-deferred" && e.name === "MSFT0101:00")).toBe(true);
    expect(doc.timeline.some((e) => e.kind === "ima")).toBe(true);
    const fixed = JSON.parse((await cli("boot", "ffa-ima", "--json", "--fix", "late-sync")).out) as typeof doc;
    expect(fixed.ima.bypass).toBe(false);
    expect(fixed.ima.aggregate).toMatch(/^[0-9a-f]{64}$/);
  });

  it("--svg FILE writes the timeline as an SVG", async () => {
    const file = join(tmp(), "boot.svg");
    const r = await cli("boot", "ffa-ima", "--svg", file);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`timeline written to ${file}`);
    const svg = readFileSync(file, "utf8");
    expect(svg).toMatch(/<svg[\s>]/);
    expect(svg).toContain("</svg>");
    expect(svg).toContain("init_ima");
    expect(statSync(file).size).toBeGreaterThan(1000);
  });

  it("--variant stmm and ts boot too (ts with the pre-6.18 sequence)", async () => {
    for (const variant of ["stmm", "ts"]) {
      const r = await cli("boot", "ffa-ima", "--fix", "late-sync", "--variant", variant);
      expect(r.code, `${variant}: ${r.err}`).toBe(0);
      expect(r.out).toMatch(/IMA: measured/);
    }
  });

  it("bad arguments: exit 2, one line, nothing run", async () => {
    for (const argv of [
      ["boot"],
      ["boot", "tis-ima"],
      ["boot", "ffa-ima", "extra"],
      ["boot", "ffa-ima", "--fix", "later"],
      ["boot", "ffa-ima", "--variant", "optee"],
      ["boot", "ffa-ima", "--order", "ffa_init,ffa_init,crb_acpi_driver_init"],
      ["boot", "ffa-ima", "--order", "ffa_init,tpm_crb_ffa_init"],
      ["boot", "ffa-ima", "--order", "ffa_init,tpm_crb_ffa_init,tis_init"],
      ["boot", "ffa-ima", "--svg", ""],
      ["boot", "ffa-ima", "--bogus"],
    ]) {
      const r = await cli(...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out, argv.join(" ")).toBe("");
      expect(r.err.trim().split("\n"), argv.join(" ")).toHaveLength(1);
    }
  });

  it("--help and `help boot` print the usage", async () => {
    for (const argv of [["boot", "--help"], ["help", "boot"]]) {
      const r = await cli(...argv);
      expect(r.code).toBe(0);
      expect(r.out).toContain("usage: tpmkit boot ffa-ima");
    }
    expect((await cli("--help")).out).toMatch(/\bboot\b/);
  });

  it("parseLinkOrder takes the names with or without _init", () => {
    expect(parseLinkOrder("ffa, tpm_crb_ffa ,crb_acpi_driver_init")).toEqual(["ffa_init", "tpm_crb_ffa_init", "crb_acpi_driver_init"]);
  });
});

describe("-T crb-ffa: every verb through CRB over Arm FF-A", () => {
  it("parses crb-ffa:state=FILE,variant=V and refuses other keys", () => {
    expect(parseTcti("crb-ffa:state=/tmp/x,variant=ts").config).toEqual({ state: "/tmp/x", variant: "ts" });
    expect(() => parseTcti("crb-ffa:port=1")).toThrow(/crb-ffa does not take "port"/);
  });

  it("demo runs on each partition variant", async () => {
    for (const variant of ["", ":variant=mu", ":variant=ts", ":variant=stmm"]) {
      const r = await cli("demo", "-T", `crb-ffa${variant}`);
      expect(r.code, `${variant}: ${r.err}`).toBe(0);
      expect(r.out).toContain("CRB over Arm FF-A");
      expect(r.out).toContain("ec40932cbf95ef76535bd2a0b03e8fa20c616a17504d960d5d3787e992dcecbd");
      expect(r.out).toMatch(/sha256 PCR 16\s+[0-9a-f]{64}/);
    }
  });

  it("getrandom, pcrextend, pcrread and getcap; state kept in a file across runs", async () => {
    const state = join(tmp(), "tpm.state");
    const T = `crb-ffa:state=${state}`;
    const rnd = await cli("getrandom", "8", "--hex", "-T", T);
    expect(rnd.code, rnd.err).toBe(0);
    expect(rnd.out).toMatch(/^[0-9a-f]{16}\n$/);
    expect(rnd.err).toMatch(/emulated TPM.*CRB over Arm FF-A/);
    const ext = await cli("pcrextend", `0:sha256=${"00".repeat(31)}01`, "-T", T);
    expect(ext.code, ext.err).toBe(0);
    const read = await cli("pcrread", "sha256:0", "-T", T);
    expect(read.code, read.err).toBe(0);
    // the swtpm known answer for one extend of 0…01 into a zero PCR; PCR 0 survives Shutdown(STATE)
    expect(read.out.toLowerCase()).toContain("90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365");
    const cap = await cli("getcap", "properties-fixed", "-T", T);
    expect(cap.code, cap.err).toBe(0);
    expect(cap.out).toMatch(/TPM2_PT_FAMILY_INDICATOR/);
  });

  it("-l picks the locality: PCR 17 extend at locality 4 (mu), refused at 0", async () => {
    expect((await cli("pcrextend", `17:sha256=${"00".repeat(32)}`, "-T", "crb-ffa", "-l", "4")).code).toBe(0);
    expect((await cli("pcrextend", `17:sha256=${"00".repeat(32)}`, "-T", "crb-ffa", "-l", "0")).code).toBe(1);
  });

  it("variant=stmm refuses locality 4 (DENIED), variant=ts has none (NOTSUP): exit 1 with the status", async () => {
    const stmm = await cli("getrandom", "8", "--hex", "-T", "crb-ffa:variant=stmm", "-l", "4");
    expect(stmm.code).toBe(1);
    expect(stmm.err).toMatch(/DENIED|0x8e00000a/i);
    const ts = await cli("getrandom", "8", "--hex", "-T", "crb-ffa:variant=ts", "-l", "4");
    expect(ts.code).toBe(1);
    expect(ts.err).toMatch(/NOTSUP|0x8e000002/i);
  });

  it("a bad variant is a usage error", async () => {
    const r = await cli("getrandom", "8", "-T", "crb-ffa:variant=optee");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/variant must be one of mu, ts, stmm/);
    expect(() => boardFor("crb-ffa")!.build({ variant: "x" })).toThrow(/variant/);
  });

  it("serve -T crb-ffa: a swtpm-protocol client (tpmkit's swtpm transport) drives the FF-A stack", async () => {
    const target = await openCliTarget("crb-ffa");
    const out = new PassThrough();
    const lines: string[] = [];
    out.on("data", (d: Buffer) => lines.push(d.toString()));
    let stop!: () => void;
    const stopped = new Promise<void>((r) => (stop = r));
    const serving = serveCli(serve.parse({ values: { protocol: "swtpm", port: "0" }, positionals: [] }), target, out, stopped);
    let port: number | undefined;
    for (let i = 0; i < 100 && port === undefined; i++) {
      const m = /TCTI swtpm:host=[^,\s]+,port=(\d+)/.exec(lines.join(""));
      if (m) port = Number(m[1]);
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(port).toBeDefined();
    try {
      const client = await Tpm.open(swtpm({ host: "127.0.0.1", port: port! }));
      try {
        expect(await client.getRandom(16)).toHaveLength(16);
        await client.pcrExtend(16, { sha256: new Uint8Array(32).fill(0xaa) });
        const pcr = (await client.pcrRead({ sha256: [16] })).sha256![16]!;
        expect(pcr).not.toEqual(new Uint8Array(32));
      } finally {
        await client.close();
      }
      // the commands went through the FF-A stack's chip
      const pcr16 = (await target.tpm.pcrRead({ sha256: [16] })).sha256![16]!;
      expect(pcr16).not.toEqual(new Uint8Array(32));
    } finally {
      stop();
      await serving;
      await target.finish();
    }
  });
});
