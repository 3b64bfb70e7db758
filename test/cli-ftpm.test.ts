/**
 * `-T ftpm`: every verb through the firmware TPM in an OP-TEE-like TEE (SoftTpm inside the fTPM TA
 * → OpTee + tee-supplicant → the ftpmTee driver), early or REE-loaded TA, NV on REE FS or RPMB,
 * kept in a directory across runs with `state=DIR`.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";
import { ftpmBoard } from "../src/platform/boards.js";
import { tctiRegistry } from "../src/platform/registry.js";
import { Tpm } from "../src/client/tpm.js";

const cli = (...argv: string[]) => runCli(argv, { env: {}, discovery: [] });
const HELLO = "ec40932cbf95ef76535bd2a0b03e8fa20c616a17504d960d5d3787e992dcecbd";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "tpmkit-ftpm-"));
  dirs.push(d);
  return d;
}
const resetCount = (out: string): number => Number(/reset count (\d+)/.exec(out)?.[1]);

describe("-T ftpm", () => {
  it("demo runs through the TEE for each TA kind and storage", async () => {
    for (const conf of ["", ":ta=early", ":ta=ree", ":storage=rpmb", ":ta=ree,storage=rpmb", ":client=user"]) {
      const r = await cli("demo", "-T", `ftpm${conf}`);
      expect(r.code, `${conf}: ${r.err}`).toBe(0);
      expect(r.out).toContain("fTPM TA");
      expect(r.out).toContain(conf.includes("ta=ree") ? "REE-loaded TA" : "early TA");
      expect(r.out).toContain(conf.includes("rpmb") ? "NV on RPMB" : "NV on REE FS");
      expect(r.out).toContain(HELLO);
      expect(r.out).toMatch(/sha256 PCR 16\s+[0-9a-f]{64}/);
      expect(resetCount(r.out)).toBe(1); // a fresh TPM every run without state=
    }
  });

  it("getrandom, pcrextend, pcrread, getcap", async () => {
    const rnd = await cli("getrandom", "8", "--hex", "-T", "ftpm:ta=ree");
    expect(rnd.code, rnd.err).toBe(0);
    expect(rnd.out).toMatch(/^[0-9a-f]{16}\n$/);
    expect(rnd.err).toMatch(/emulated TPM.*fTPM TA \(REE-loaded TA/);
    const ext = await cli("pcrextend", `16:sha256=${"00".repeat(31)}01`, "-T", "ftpm");
    expect(ext.code, ext.err).toBe(0);
    const read = await cli("pcrread", "sha256:0,16", "-T", "ftpm");
    expect(read.code, read.err).toBe(0);
    expect(read.out).toContain(`0 : 0x${"00".repeat(32)}`);
    const cap = await cli("getcap", "properties-fixed", "-T", "ftpm:storage=rpmb");
    expect(cap.code, cap.err).toBe(0);
    expect(cap.out).toMatch(/TPM2_PT_FAMILY_INDICATOR/);
  });

  it("the TPM2TOOLS_TCTI and TCTI environment variables pick ftpm too", async () => {
    for (const env of [{ TPM2TOOLS_TCTI: "ftpm:ta=ree" }, { TCTI: "ftpm" }]) {
      const r = await runCli(["getrandom", "4", "--hex"], { env, discovery: [] });
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^[0-9a-f]{8}\n$/);
      expect(r.err).toContain("fTPM TA");
    }
  });

  it("state=DIR keeps the fTPM's NV across runs (the reset count, kept in NV, goes on), REE FS and RPMB", async () => {
    for (const storage of ["ree", "rpmb"]) {
      const dir = tmp();
      const T = `ftpm:storage=${storage},state=${dir}`;
      const counts: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await cli("demo", "-T", T);
        expect(r.code, r.err).toBe(0);
        counts.push(resetCount(r.out));
      }
      expect(counts, storage).toEqual([1, 2, 3]);
      expect(readdirSync(dir).sort()).toEqual(storage === "ree" ? ["tee"] : ["rpmb.img"]);
      if (storage === "ree") expect(readdirSync(join(dir, "tee")).length).toBeGreaterThan(0);
    }
  });

  it("bad keys and values are usage errors (exit 2) naming what is wrong", async () => {
    const cases: [string, RegExp][] = [
      ["ftpm:port=1", /ftpm does not take "port" \(it takes ta, storage, state, client\)/],
      ["ftpm:ta=late", /ta must be one of early, ree, got "late"/],
      ["ftpm:storage=emmc", /storage must be one of ree, rpmb/],
      ["ftpm:client=root", /client must be one of kernel, user/],
    ];
    for (const [T, re] of cases) {
      const r = await cli("getrandom", "8", "-T", T);
      expect(r.code, T).toBe(2);
      expect(r.err).toMatch(re);
    }
  });

  it("the board: open starts the supplicant first, close stops it last; the registry builds it", async () => {
    const board = ftpmBoard({ ta: "ree" });
    expect(board.supplicant.state).toBe("stopped");
    const tpm = await Tpm.open(board.transport);
    expect(board.supplicant.state).toBe("running");
    expect(tpm.chip.readiness).toBe("ready");
    expect(await tpm.getRandom(4)).toHaveLength(4);
    await tpm.close();
    expect(board.supplicant.state).toBe("stopped");
    expect(board.transport.state().open).toBe(false);
    expect(tctiRegistry.ftpm!({}, { name: "ftpm", config: {}, text: "ftpm" }).kind).toBe("ftpm-tee");
  });
});
