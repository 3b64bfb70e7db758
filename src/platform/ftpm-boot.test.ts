import { describe, expect, it } from "vitest";
import { FakeClock } from "../core/clock.js";
import { TEE_ORIGIN, TEE_RESULT } from "../bus/tee/constants.js";
import { TeeError, TpmArgumentError } from "../errors/index.js";
import { ftpmSupplicantBoot, FTPM_BOOT_FIXES } from "./ftpm-boot.js";
import type { TimelineEntry } from "./timeline.js";

const run = (o: Parameters<typeof ftpmSupplicantBoot>[0]) => ftpmSupplicantBoot({ ...o, clock: new FakeClock({ auto: true }) });
const line = (t: readonly TimelineEntry[], kind: string, name: string) => t.filter((e) => e.kind === kind && e.name === name).map((e) => `${e.time} ${e.level ?? "-"} ${e.detail ?? ""}`);
const logs = (t: readonly TimelineEntry[]) => t.filter((e) => e.kind === "log").map((e) => e.detail);

describe("seed 000: tpm_ftpm_tee built in vs module", () => {
  for (const [ta, code, name] of [["ree", TEE_RESULT.OUT_OF_MEMORY, "ffff000c"], ["early", TEE_RESULT.TARGET_DEAD, "ffff3024"]] as const) {
    it(`built in, ${ta} TA: deferred at device_initcall, fails at the flush with ${name} origin TEE, -EINVAL, no /dev/tpm0, 90 s device timeout`, async () => {
      const b = await run({ scenario: "000", ta });
      const t = b.timeline;
      expect(b.probeError).toBeInstanceOf(TeeError);
      expect(b.probeError!.teeCode).toBe(code);
      expect(b.probeError!.origin).toBe(TEE_ORIGIN.TEE);
      expect(line(t, "probe-deferred", "ftpm")).toEqual(["0 device driver ftpm-tee; ProbeDeferredError: probe deferred: tee_client_open_context: -ENOENT (no TEE yet) is not available yet"].map((s) => s.replace("driver ftpm-tee; ", "")));
      expect(line(t, "probe-failed", "ftpm")).toEqual([`0 late TpmStateError: -EINVAL: tee_client_open_session failed, err=${name}`]);
      expect(logs(t)).toContain(`ftpm-tee ftpm: tee_client_open_session failed, err=${name} (${ta === "ree" ? "OUT_OF_MEMORY" : "TARGET_DEAD"}, origin TEE)`);
      // the supplicant starts later, but nothing retries the probe
      const started = t.findIndex((e) => e.name === "tee-supplicant");
      const failed = t.findIndex((e) => e.kind === "probe-failed");
      expect(failed).toBeLessThan(started);
      expect(t.filter((e) => e.kind === "probe" && e.name === "ftpm")).toHaveLength(2);
      expect(t.some((e) => e.kind === "chip-register")).toBe(false);
      expect(b.tpmFound).toBe(false);
      expect(line(t, "wait", "dev-tpm0.device")).toEqual(["0 - waiting for a TPM chip, up to 90000 ms", "90000 - timed out after 90000 ms"]);
      expect(b.fixes).toEqual(FTPM_BOOT_FIXES["000"]);
    });
  }

  it("module after tee-supplicant: the probe opens the session, tpm0 registered, the consumer finds it and a command works", async () => {
    for (const ta of ["early", "ree"] as const) {
      const b = await run({ scenario: "000", variant: "module", ta });
      const t = b.timeline;
      expect(b.probeError).toBeUndefined();
      expect(b.tpmFound).toBe(true);
      const order = t.filter((e) => e.level === undefined && e.kind !== "log").map((e) => `${e.kind} ${e.name}`);
      expect(order.slice(0, 4)).toEqual(["driver-register ftpm-tee", "probe ftpm", "chip-register tpm0", "bind ftpm"]);
      const sup = t.findIndex((e) => e.name === "tee-supplicant");
      expect(sup).toBeLessThan(t.findIndex((e) => e.kind === "driver-register" && e.name === "ftpm-tee"));
      expect(logs(t)).toContain("TPM2_GetRandom(8): 8 bytes; chip readiness ready");
      expect(t.some((e) => e.kind === "probe-deferred" || e.kind === "probe-failed")).toBe(false);
    }
  });
});

describe("seed 001: present before usable", () => {
  it("initrd supplicant → works; switch root → present but unusable, TpmUnavailableError at once; restarted → usable; shutdown with the supplicant first is bounded", async () => {
    const b = await run({ scenario: "001" });
    const l = logs(b.timeline);
    const idx = (s: string) => l.findIndex((x) => x?.startsWith(s));
    expect(l).toContain("initrd: tee-supplicant@teepriv0.service started (opened /dev/teepriv0, READY=1)");
    expect(l[idx("/dev/tpm0 present")]).toBe("/dev/tpm0 present: true; chip readiness unusable");
    expect(l).toContain("TPM2_GetRandom(8) failed after 0 ms: TpmUnavailableError: ftpm-tee: the TPM is present but not usable now (nothing was sent)");
    expect(l).toContain("chip readiness ready");
    const ok = l.filter((x) => x === "TPM2_GetRandom(8): 8 bytes; chip readiness ready");
    expect(ok).toHaveLength(2); // initrd, and root after the restart
    expect(idx("initrd: tee-supplicant")).toBeLessThan(idx("switch-root"));
    expect(idx("switch-root")).toBeLessThan(idx("TPM2_GetRandom(8) failed"));
    expect(idx("TPM2_GetRandom(8) failed")).toBeLessThan(idx("root: tee-supplicant"));
    // shutdown: supplicant stopped first; TPM2_Shutdown fails at once, remove never waits
    expect(idx("tee-supplicant stopped")).toBeLessThan(idx("TPM2_Shutdown"));
    expect(l[idx("TPM2_Shutdown")]).toMatch(/^TPM2_Shutdown\(CLEAR\) failed at once: TpmUnavailableError/);
    expect(l).toContain("ftpm_tee_remove: session and context closed after 0 ms");
    expect(l.at(-1)).toBe("reboot: reached");
    expect(b.timeline.filter((e) => e.kind === "unbind").map((e) => e.name)).toEqual(["ftpm"]);
    expect(b.timeline.at(-1)!.time).toBe(0); // nothing waited on the clock
  });

  it("execstop: modprobe -r tpm_ftpm_tee before the supplicant is killed: TPM2_Shutdown reaches the TPM", async () => {
    const b = await run({ scenario: "001", variant: "execstop" });
    const l = logs(b.timeline);
    const i = (s: string) => l.findIndex((x) => x?.startsWith(s));
    expect(l).toContain("TPM2_Shutdown(CLEAR): done (NV written through tee-supplicant)");
    expect(i("TPM2_Shutdown")).toBeLessThan(i("tee-supplicant stopped"));
    expect(b.fixes).toEqual(FTPM_BOOT_FIXES["001"]);
  });

  it("bad options are TpmArgumentErrors", async () => {
    await expect(ftpmSupplicantBoot({ scenario: "002" as never })).rejects.toThrow(TpmArgumentError);
    await expect(ftpmSupplicantBoot({ scenario: "001", variant: "module" })).rejects.toThrow(/variant stop-first or execstop/);
    await expect(ftpmSupplicantBoot({ ta: "tee" as never })).rejects.toThrow(/ta must be/);
    await expect(ftpmSupplicantBoot({ deviceTimeoutMs: -1 })).rejects.toThrow(/deviceTimeoutMs/);
  });
});
