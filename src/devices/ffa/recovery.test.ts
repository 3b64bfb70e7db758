/**
 * A stuck partition made recoverable, and the synchronous fast path of the FF-A bus.
 *
 * DEN0077A §13 (FFA_INTERRUPT, FFA_YIELD, FFA_RUN): a preempted or yielding partition's execution
 * context waits for the caller's FFA_RUN; while it does, a new direct request to it is answered
 * FFA_ERROR BUSY (Hafnium src/api.c). FF-A v1.2 has no ABI for the normal world to cancel a direct
 * request, so a client that gave up on a message (past `maxResumes`, an abort) resumes it to its
 * end with FFA_RUN before its next message and drops that answer: `ffaStart` does so at the next
 * command, bounded by `maxResumes` again.
 */
import { describe, expect, it } from "vitest";
import { FfaBus } from "./bus.js";
import { TpmServicePartition } from "./partition.js";
import { CrbDevice } from "../crb/index.js";
import { SoftTpm } from "../../softtpm/index.js";
import { Tpm } from "../../client/tpm.js";
import { FFA_ERROR_CODE, FFA_FN, FFA_VERSION_1_2, TPM_SERVICE_FN, TPM_SERVICE_STATUS, TPM_SERVICE_UUID, uuidToRegs } from "../../bus/ffa/abi.js";
import { w32, type FfaRegs } from "../../bus/ffa/conduit.js";
import { ffaErrorIn, ffaRig, rejection } from "../../../test/support/ffa-rig.js";

const rig = ffaRig;

describe("FfaBus answers synchronously when it can", () => {
  it("framework ABIs and a partition that answers at once: a plain array, not a Promise", () => {
    const device = new CrbDevice({ backend: new SoftTpm(), localities: 5, trigger: "doorbell", channel: false });
    const bus = new FfaBus({ channel: false });
    bus.addPartition(new TpmServicePartition({ device }));
    const v = bus.call([BigInt(FFA_FN.VERSION), BigInt(FFA_VERSION_1_2)]);
    expect(Array.isArray(v)).toBe(true);
    expect((v as bigint[])[0]).toBe(BigInt(FFA_VERSION_1_2));
    const [u0, u1] = uuidToRegs(TPM_SERVICE_UUID);
    const r = bus.call([BigInt(FFA_FN.MSG_SEND_DIRECT_REQ2), 0x8002n, u0, u1, BigInt(TPM_SERVICE_FN.GET_INTERFACE_VERSION)]);
    expect(Array.isArray(r)).toBe(true);
    expect(w32((r as bigint[])[0])).toBe(FFA_FN.MSG_SEND_DIRECT_RESP2);
    expect(w32((r as bigint[])[4])).toBe(TPM_SERVICE_STATUS.OK_RESULTS_RETURNED);
    expect(r).toHaveLength(18);
    // a REQ2 naming another service UUID is still refused
    const bad = bus.call([BigInt(FFA_FN.MSG_SEND_DIRECT_REQ2), 0x8002n, 1n, 2n, BigInt(TPM_SERVICE_FN.GET_INTERFACE_VERSION)]) as bigint[];
    expect(w32(bad[0])).toBe(FFA_FN.ERROR);
  });

  it("commands over crb(ffaStart) send only the START(command) message asynchronously (the device runs the TPM asynchronously)", async () => {
    let sync = 0;
    let async_ = 0;
    const { clock, transport } = rig({
      wrap: (bus) => ({
        call(regs: FfaRegs) {
          const v = bus.call(regs);
          if (v instanceof Promise) async_++;
          else sync++;
          return v;
        },
      }),
    });
    await using tpm = await Tpm.open(transport, { clock });
    sync = async_ = 0;
    expect(await tpm.getRandom(8)).toHaveLength(8);
    expect(sync).toBe(4); // request locality, cmdReady, goIdle, relinquish
    expect(async_).toBe(1);
  });
});

describe("ffaStart: a stuck partition is recovered once the fault clears", () => {
  for (const variant of ["mu", "ts", "stmm"] as const) {
    it(`${variant}: an FFA_INTERRUPT storm → FfaError INTERRUPTED (-5); cleared → the next command works`, async () => {
      const { clock, partition, start, transport } = rig({ partition: { variant }, start: { maxResumes: 50, busyTimeoutMs: 100 } });
      await using tpm = await Tpm.open(transport, { clock });
      partition.faults.interruptEvery = 1;
      const r0 = start.stats.resumes;
      const t0 = clock.now();
      const e = await rejection(tpm.getRandom(8));
      expect(ffaErrorIn(e)?.status).toBe(FFA_ERROR_CODE.INTERRUPTED);
      // bounded: maxResumes FFA_RUNs for the message, the clean-up fails at once (no second loop)
      expect(start.stats.resumes - r0).toBe(50);
      expect(clock.now() - t0).toBeLessThan(50);
      partition.faults.interruptEvery = 0;
      expect(await tpm.getRandom(8)).toHaveLength(8);
      expect(await tpm.getRandom(8)).toHaveLength(8);
    });
  }

  it("while the storm lasts, later commands fail bounded (no BUSY wait), then recover", async () => {
    const { clock, partition, start, transport } = rig({ start: { maxResumes: 20, busyTimeoutMs: 100 } });
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.interruptEvery = 1;
    await rejection(tpm.getRandom(8));
    const t0 = clock.now();
    const r0 = start.stats.resumes;
    const e = await rejection(tpm.getRandom(8));
    expect(ffaErrorIn(e)?.status).toBe(FFA_ERROR_CODE.INTERRUPTED);
    expect(start.stats.resumes - r0).toBe(20); // one bounded recovery attempt, then fail fast
    expect(start.stats.busyRetries).toBe(0);
    expect(clock.now() - t0).toBeLessThan(50);
    partition.faults.interruptEvery = 0;
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });

  it("a partition that never answers (FFA_YIELD forever) → bounded failure; cleared → the next command works", async () => {
    const { clock, partition, transport } = rig({ start: { maxResumes: 100, busyTimeoutMs: 100 } });
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.neverAnswers = true;
    const t0 = clock.now();
    const e = await rejection(tpm.getRandom(8));
    expect(ffaErrorIn(e)?.status).toBe(FFA_ERROR_CODE.INTERRUPTED);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(100); // 1 ms before each FFA_RUN (Linux)
    expect(clock.now() - t0).toBeLessThan(150);
    partition.faults.neverAnswers = false;
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });

  it("a message abandoned by an abort is resumed before the next command", async () => {
    const { clock, partition, transport } = rig(); // maxResumes 1000: ~1 s of yields
    await using tpm = await Tpm.open(transport, { clock });
    partition.faults.neverAnswers = true;
    const ac = new AbortController();
    clock.setTimer(30, () => ac.abort());
    const e = await rejection(tpm.getRandom(8, { signal: ac.signal }));
    expect((e as Error).name).toMatch(/Abort/);
    partition.faults.neverAnswers = false;
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });

  it("a storm that starts at START(command): the abandoned START is resumed, the next command works", async () => {
    let directs = 0;
    let armed = false;
    const { clock, partition, transport } = rig({
      start: { maxResumes: 10 },
      wrap: (bus, p) => ({
        call(regs: FfaRegs) {
          if (w32(regs[0]) === FFA_FN.MSG_SEND_DIRECT_REQ2 && armed && ++directs === 3) p.faults.interruptEvery = 1; // the third message: START(command)
          return bus.call(regs);
        },
      }),
    });
    await using tpm = await Tpm.open(transport, { clock });
    armed = true;
    const e = await rejection(tpm.getRandom(8));
    expect(ffaErrorIn(e)?.status).toBe(FFA_ERROR_CODE.INTERRUPTED);
    armed = false;
    partition.faults.interruptEvery = 0;
    expect(await tpm.getRandom(8)).toHaveLength(8);
    expect(await tpm.getRandom(8)).toHaveLength(8);
  });
});
