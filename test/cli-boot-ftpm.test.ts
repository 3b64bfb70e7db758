/** `tpmkit boot ftpm-supplicant`: seeds 000 and 001 on the platform model, as a table, JSON or an SVG. */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";

const cli = (...argv: string[]) => runCli(argv, { env: {}, discovery: [] });
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("tpmkit boot ftpm-supplicant", () => {
  it("000 built in, REE TA: the table shows the deferral, ffff000c origin TEE, -EINVAL, the 90 s timeout and the fixes", async () => {
    const r = await cli("boot", "ftpm-supplicant", "--scenario", "000", "--ta", "ree");
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe("");
    expect(r.out).toContain("scenario 000, variant builtin, ree TA");
    expect(r.out).toMatch(/device\s+probe-deferred\s+ftpm\s+driver ftpm-tee; ProbeDeferredError: .*tee_client_open_context: -ENOENT/);
    expect(r.out).toContain("ftpm-tee ftpm: tee_client_open_session failed, err=ffff000c (OUT_OF_MEMORY, origin TEE)");
    expect(r.out).toMatch(/late\s+probe-failed\s+ftpm\s+driver ftpm-tee; TpmStateError: -EINVAL: tee_client_open_session failed, err=ffff000c/);
    expect(r.out).toMatch(/90000\.000\s+-\s+wait\s+dev-tpm0\.device\s+timed out after 90000 ms/);
    expect(r.out).toContain("result: no /dev/tpm0 (probe failed: 0xffff000c, -EINVAL)");
    expect(r.out).toContain("fix: build tpm_ftpm_tee as a module");
    expect(r.out).toContain("fix: or, if the TPM is needed in the initrd, run tee-supplicant in the initrd too");
  });

  it("000 built in, early TA (default): TARGET_DEAD ffff3024; --json carries the code and origin", async () => {
    const r = await cli("boot", "ftpm-supplicant", "--json");
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { seed: string; variant: string; ta: string; tpmFound: boolean; probeError: { teeCode: number; origin: number }; timeline: { kind: string; name: string; detail?: string }[] };
    expect([j.seed, j.variant, j.ta, j.tpmFound]).toEqual(["000", "builtin", "early", false]);
    expect(j.probeError.teeCode).toBe(0xffff3024);
    expect(j.probeError.origin).toBe(3);
    expect(j.timeline.find((e) => e.kind === "probe-failed")!.detail).toBe("TpmStateError: -EINVAL: tee_client_open_session failed, err=ffff3024");
  });

  it("000 module: /dev/tpm0 registered after tee-supplicant, found", async () => {
    const r = await cli("boot", "ftpm-supplicant", "--scenario", "000", "--variant", "module");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/chip-register\s+tpm0/);
    expect(r.out).toContain("dev-tpm0.device: found /dev/tpm0");
    expect(r.out).toContain("result: /dev/tpm0 found");
    expect(r.out).not.toContain("probe-failed");
  });

  it("001: present but unusable after switch root, usable after the restart; execstop order in the SVG", async () => {
    const r = await cli("boot", "ftpm-supplicant", "--scenario", "001");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("/dev/tpm0 present: true; chip readiness unusable");
    expect(r.out).toContain("TPM2_GetRandom(8) failed after 0 ms: TpmUnavailableError");
    expect(r.out).toContain("TPM2_Shutdown(CLEAR) failed at once: TpmUnavailableError");
    expect(r.out).toContain("fix: tee-supplicant@.service: ExecStop=modprobe -r tpm_ftpm_tee");
    const d = mkdtempSync(join(tmpdir(), "tpmkit-bootftpm-"));
    dirs.push(d);
    const svg = join(d, "t.svg");
    const s = await cli("boot", "ftpm-supplicant", "--scenario", "001", "--variant", "execstop", "--svg", svg);
    expect(s.code, s.err).toBe(0);
    expect(s.out).toContain("TPM2_Shutdown(CLEAR): done (NV written through tee-supplicant)");
    const pic = readFileSync(svg, "utf8");
    expect(pic).toMatch(/^<svg|<\?xml/);
    expect(pic).toContain("ftpm-supplicant 001: execstop");
  });

  it("bad options are usage errors (exit 2)", async () => {
    for (const [argv, re] of [
      [["--scenario", "002"], /--scenario must be 000 or 001/],
      [["--scenario", "001", "--variant", "module"], /--variant for scenario 001 must be one of stop-first, execstop/],
      [["--ta", "tee"], /--ta must be early or ree/],
      [["--fix", "rootfs"], /--order and --fix are for ffa-ima/],
    ] as const) {
      const r = await cli("boot", "ftpm-supplicant", ...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err).toMatch(re);
    }
    const f = await cli("boot", "ffa-ima", "--ta", "ree");
    expect(f.code).toBe(2);
  });
});
