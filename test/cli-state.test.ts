/**
 * Issue 8, point 1: a tpmkit run never loses the TPM's state. Each run of a verb against
 * `softtpm:state=FILE` ends with Shutdown(STATE) (TPM 2.0 Part 3 §9.4) on every path, so the next
 * Startup(STATE) (Part 3 §9.3) resumes PCRs 0-15 (TCG PC Client PTP: the PCRs a TPM Resume keeps);
 * a refused resume is an error that names --startup-clear, never a silent Startup(CLEAR).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openCliTarget } from "../src/cli/target.js";
import { runCli } from "./support/cli.js";
import { CHIP_COMMAND_CHANNEL } from "../src/core/chip.js";

const cli = (...argv: string[]) => runCli(argv);

const ONE = "00".repeat(31) + "01";
/** sha256 PCR extended once from zero with 00..01: what swtpm 0.7.1 gives (test/cli.test.ts's known answer). */
const EXTENDED = "90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365";
const ZERO = "00".repeat(32);

/** sha256 PCR values, read the way a next tpmkit run would (Startup(STATE), read, Shutdown(STATE)). */
async function pcrs(T: string, list: number[]): Promise<Record<string, string>> {
  const t = await openCliTarget(T);
  try {
    const v = await t.tpm.pcrRead({ sha256: list });
    return Object.fromEntries(list.map((i) => [String(i), Buffer.from(v.sha256![i]!).toString("hex")]));
  } finally {
    await t.finish();
  }
}

let dir: string;
let T: string;
let stateFile: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-cli-state-"));
  stateFile = path.join(dir, "q.state");
  T = `softtpm:state=${stateFile}`;
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("tpmkit keeps the TPM state across runs, whatever happens", () => {
  it("a failing PCR 17 extend (TPM_RC_LOCALITY) leaves PCR 5 as it was (the issue's sequence)", async () => {
    expect((await cli("pcrextend", `5:sha256=${ONE}`, "-T", T)).code).toBe(0);
    const bad = await cli("pcrextend", `17:sha256=${ONE}`, "-T", T);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/TPM_RC_LOCALITY/);
    expect((await pcrs(T, [5]))["5"]).toBe(EXTENDED);
  });

  it("a typo in a verb's arguments changes nothing", async () => {
    expect((await cli("pcrextend", `5:sha256=${ONE}`, "-T", T)).code).toBe(0);
    const before = fs.readFileSync(stateFile);
    for (const argv of [
      ["pcrextend", "5:sha256=zz"],
      ["pcrextend", `5:sha256=${ONE}`, `6:sha265=${ONE}`],
      ["pcrread", "sha256:5", "--hx"],
      ["getcap", "properties-fixd"],
      ["getrandom", "eight"],
    ]) {
      const r = await cli(...argv, "-T", T);
      expect(r.code, argv.join(" ")).toBe(2);
    }
    expect(fs.readFileSync(stateFile).equals(before)).toBe(true);
    const v = await pcrs(T, [5, 6]);
    expect(v["5"]).toBe(EXTENDED);
    expect(v["6"]).toBe(ZERO);
  });

  it("pcrextend with a good and a bad spec sends no command at all", async () => {
    const seen: number[] = [];
    const onCommand = (m: unknown) => seen.push((m as { commandCode: number }).commandCode);
    subscribe(CHIP_COMMAND_CHANNEL, onCommand);
    try {
      const r = await cli("pcrextend", `16:sha256=${ONE}`, `99:sha256=${ONE}`, "-T", "memory");
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/0[-–]23/);
    } finally {
      unsubscribe(CHIP_COMMAND_CHANNEL, onCommand);
    }
    expect(seen).toEqual([]);
    // and on a state file: the good spec was not extended
    expect((await cli("pcrextend", `4:sha256=${ONE}`, "-T", T)).code).toBe(0);
    expect((await cli("pcrextend", `5:sha256=${ONE}`, `99:sha256=${ONE}`, "-T", T)).code).toBe(2);
    const v = await pcrs(T, [4, 5]);
    expect(v).toEqual({ "4": EXTENDED, "5": ZERO });
  });

  it("a refused Startup(STATE) is an error naming --startup-clear, and --startup-clear starts clear", async () => {
    // A run that ended without Shutdown(STATE) (a crash): extend PCR 5, then drop the TPM.
    const t = await openCliTarget(T);
    await t.tpm.pcrExtend(5, { sha256: Uint8Array.from(Buffer.from(ONE, "hex")) });
    await t.abandon();
    const before = fs.readFileSync(stateFile);

    const r = await cli("pcrread", "sha256:5", "-T", T);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/Startup\(STATE\)/);
    expect(r.err).toMatch(/TPM_RC_VALUE/);
    expect(r.err).toMatch(/--startup-clear/);
    expect(fs.readFileSync(stateFile).equals(before)).toBe(true);
    // no silent Startup(CLEAR) on a second try either
    expect((await cli("pcrread", "sha256:5", "-T", T)).code).toBe(1);

    const clear = await cli("getrandom", "4", "--hex", "--startup-clear", "-T", T);
    expect(clear.code, clear.err).toBe(0);
    expect(clear.err).toMatch(/Startup\(CLEAR\)/);
    expect((await pcrs(T, [5]))["5"]).toBe(ZERO);
    // from here on the state resumes again
    expect((await cli("pcrextend", `5:sha256=${ONE}`, "-T", T)).code).toBe(0);
    expect((await pcrs(T, [5]))["5"]).toBe(EXTENDED);
  });

  it("a new state file is a new TPM: Startup(CLEAR), no error", async () => {
    expect(fs.existsSync(stateFile)).toBe(false);
    const v = await pcrs(T, [0]);
    expect(v["0"]).toBe(ZERO);
    expect(fs.existsSync(stateFile)).toBe(true);
  });
});
