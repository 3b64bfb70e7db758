/**
 * FF-A fault rows (issue 10 point 6; the F1 row of the reliability matrix) against the real
 * FfaBus + TpmServicePartition, driven by crb(ffaStart), all on a FakeClock: BUSY for less and
 * more than the busy timeout (Linux tpm_crb_ffa.c, busy_timeout_ms), DENIED, a partition absent
 * then hot-plugged (-ENOENT → -EPROBE_DEFER), a bad interface version major
 * (tpm_crb_ffa_probe(): -EINVAL, not deferred), FFA_INTERRUPT storms (arm_ffa driver.c,
 * ffa_msg_send_wait_for_completion(), bounded here), the other FF-A error codes, and a partition
 * that never answers (bounded and abortable).
 */
import { describe, expect, it } from "vitest";
import { Chip } from "../src/core/chip.js";
import { Tpm } from "../src/client/tpm.js";
import { crb } from "../src/transports/crb/crb.js";
import { ffaStart } from "../src/transports/crb/start-ffa.js";
import { ProbeDeferredError, TpmNotFoundError } from "../src/errors/index.js";
import { FFA_ERROR_CODE, TPM_SERVICE_STATUS } from "../src/bus/ffa/abi.js";
import { ffaErrorIn, ffaRig, rejection } from "./support/ffa-rig.js";

const rig = ffaRig;

describe("FF-A faults: BUSY", () => {
  it("BUSY for less than the busy timeout: retried until it clears, the command succeeds", async () => {
    const { clock, partition, start, transport } = rig();
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.busyForMs = 500; // < busyTimeoutMs 2000
    const t0 = clock.now();
    expect(await tpm.getRandom(8)).toHaveLength(8);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(500);
    expect(clock.now() - t0).toBeLessThan(2000);
    expect(start.stats.busyRetries).toBeGreaterThan(0);
  });

  it("BUSY for more than the busy timeout: FfaError BUSY (-4) about busyTimeoutMs after the first BUSY, clean-up bounded too; works once it clears", async () => {
    const { clock, partition, transport } = rig({ start: { busyTimeoutMs: 300 } });
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.busyForMs = 60_000;
    const t0 = clock.now();
    const e = await rejection(tpm.getRandom(8, { timeoutMs: 120_000 }));
    const elapsed = clock.now() - t0;
    expect(ffaErrorIn(e)?.status).toBe(FFA_ERROR_CODE.BUSY);
    // not the command's own 120 s timeout: the busy bound, plus the bounded clean-up calls
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(3 * 300 + 50);
    partition.faults.busyForMs = 0;
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });
});

describe("FF-A faults: the TPM service's and the framework's errors", () => {
  it("DENIED: START answers 0x8E00000A, surfaced as FfaError with that status; works once cleared", async () => {
    const { clock, partition, transport } = rig();
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.denied = true;
    const e = await rejection(tpm.getRandom(8));
    expect(ffaErrorIn(e)?.status).toBe(TPM_SERVICE_STATUS.DENIED);
    partition.faults.denied = false;
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });

  for (const [name, code] of [
    ["RETRY", FFA_ERROR_CODE.RETRY],
    ["ABORTED", FFA_ERROR_CODE.ABORTED],
    ["INVALID_PARAMETERS", FFA_ERROR_CODE.INVALID_PARAMETERS],
    ["NOT_SUPPORTED", FFA_ERROR_CODE.NOT_SUPPORTED],
  ] as const) {
    it(`FFA_ERROR ${name} (${code}) on every direct request: a typed FfaError at once, no busy loop`, async () => {
      const { clock, partition, bus, transport } = rig();
      await using tpm = await Tpm.open(transport, { clock });
      partition.faults.ffaError = code;
      const calls0 = bus.calls;
      const t0 = clock.now();
      const e = await rejection(tpm.getRandom(8));
      expect(ffaErrorIn(e)?.status).toBe(code);
      expect(clock.now() - t0).toBeLessThan(50);
      expect(bus.calls - calls0).toBeLessThan(10);
      partition.faults.ffaError = undefined;
      expect(await tpm.getRandom(8)).toHaveLength(8);
    });
  }
});

describe("FF-A faults: probe", () => {
  it("partition absent: ProbeDeferredError from Tpm.open and from chip.open(); hot-plugged: open works", async () => {
    const { clock, partition, bus, device } = rig({ plug: false });
    await expect(Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock })).rejects.toBeInstanceOf(ProbeDeferredError);
    const chip = new Chip(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    await expect(chip.open()).rejects.toBeInstanceOf(ProbeDeferredError);
    await chip.close();
    bus.addPartition(partition);
    await using tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });

  it("partition present but hidden (faults.absent): deferred; visible again: open works", async () => {
    const { clock, partition, bus, device } = rig();
    partition.faults.absent = true;
    await expect(Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock })).rejects.toBeInstanceOf(ProbeDeferredError);
    partition.faults.absent = false;
    await using tpm = await Tpm.open(crb({ mmio: device, start: ffaStart({ bus }) }), { clock });
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });

  for (const major of [0, 2]) {
    it(`interface version major ${major}: the probe fails (TpmNotFoundError), it is not deferred`, async () => {
      const { clock, transport } = rig({ partition: { interfaceVersion: { major, minor: 0 } } });
      const e = await rejection(Tpm.open(transport, { clock }));
      expect(e).toBeInstanceOf(TpmNotFoundError);
      expect(e).not.toBeInstanceOf(ProbeDeferredError);
      expect((e as Error).message).toMatch(/ABI version/);
    });
  }

  it("interface version 1.1 (Arm StMM 2026) is accepted", async () => {
    const { clock, start, transport } = rig({ partition: { interfaceVersion: { major: 1, minor: 1 }, variant: "stmm" } });
    await using tpm = await Tpm.open(transport, { clock });
    expect(start.partition?.interfaceVersion).toEqual({ major: 1, minor: 1 });
  });
});

describe("FF-A faults: preemption and a partition that never answers", () => {
  it("FFA_INTERRUPT every 2nd and 3rd call: resumed with FFA_RUN, commands succeed", async () => {
    for (const every of [2, 3]) {
      const { clock, partition, start, transport } = rig();
      partition.faults.interruptEvery = every;
      await using tpm = await Tpm.open(transport, { clock });
      expect(await tpm.getRandom(8)).toHaveLength(8);
      expect(start.stats.resumes).toBeGreaterThan(0);
    }
  });

  // After maxResumes the driver gives up on the preempted message (the partition keeps it: FF-A has
  // no cancel); the clean-up calls of that command fail at once with INTERRUPTED, and the next
  // command first resumes the old message with FFA_RUN (src/devices/ffa/recovery.test.ts proves the
  // recovery). Here: the failure is typed and bounded in time.
  it("an FFA_INTERRUPT storm that never ends: FfaError INTERRUPTED (-5) after maxResumes FFA_RUNs, bounded in time", async () => {
    const { clock, partition, start, transport } = rig({ start: { maxResumes: 50, busyTimeoutMs: 100 } });
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.interruptEvery = 1;
    const resumes0 = start.stats.resumes;
    const t0 = clock.now();
    const e = await rejection(tpm.getRandom(8, { timeoutMs: 120_000 }));
    expect(ffaErrorIn(e)?.status).toBe(FFA_ERROR_CODE.INTERRUPTED);
    expect(start.stats.resumes - resumes0).toBe(50);
    expect(clock.now() - t0).toBeLessThan(120 + 50);
  });

  it("a partition that never answers (FFA_YIELD forever): bounded by maxResumes on the clock", async () => {
    const { clock, partition, transport } = rig({ start: { maxResumes: 100, busyTimeoutMs: 100 } });
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.neverAnswers = true;
    const t0 = clock.now();
    const e = await rejection(tpm.getRandom(8, { timeoutMs: 120_000 }));
    expect(ffaErrorIn(e)?.status).toBe(FFA_ERROR_CODE.INTERRUPTED);
    // Linux sleeps 1 ms before each FFA_RUN of a yielded partition: ~100 ms for the message, then
    // the clean-up's BUSY answers for at most busyTimeoutMs
    expect(clock.now() - t0).toBeGreaterThanOrEqual(100);
    expect(clock.now() - t0).toBeLessThan(100 + 100 + 50);
  });

  it("a partition that never answers, with the command's own timeout shorter: TpmTimeoutError at that timeout", async () => {
    const { clock, partition, transport } = rig();
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.neverAnswers = true;
    const t0 = clock.now();
    const e = await rejection(tpm.getRandom(8, { timeoutMs: 300 }));
    expect((e as Error).name).toBe("TpmTimeoutError");
    expect(clock.now() - t0).toBeGreaterThanOrEqual(300);
    expect(clock.now() - t0).toBeLessThan(300 + 50);
  });

  it("a partition that never answers: an abort ends the wait with AbortError at the abort's time", async () => {
    const { clock, partition, transport } = rig(); // default maxResumes 1000: ~1 s of yields
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.neverAnswers = true;
    const ac = new AbortController();
    clock.setTimer(25, () => ac.abort());
    const t0 = clock.now();
    const e = await rejection(tpm.getRandom(8, { signal: ac.signal }));
    expect((e as Error).name).toBe("AbortError");
    expect(clock.now() - t0).toBeGreaterThanOrEqual(25);
    expect(clock.now() - t0).toBeLessThan(100);
  });
});
