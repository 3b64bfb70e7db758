import { describe, it, expect } from "vitest";
import { TpmArgumentError } from "../errors/index.js";
import { measureCrb } from "./measure-crb.js";
import { smcStart } from "../transports/crb/start-smc.js";

describe("measureCrb", () => {
  it("counts the kernel sequence's accesses per 1 KiB command and times it against the backend", async () => {
    const m = await measureCrb({ commandBytes: 1024, iterations: 200 });
    // per command: 6 register writes (LOC_CTRL ×2, CTRL_REQ ×2, CTRL_CANCEL, CTRL_START),
    // ≥6 register reads (LOC_STATE ×2, CTRL_REQ ×2, CTRL_START ≥1, CTRL_STS), 1 burst in, 2 bursts out
    expect(m.accessesByKind).toMatchObject({ write32: 6, writeFifo: 1, readFifo: 2 });
    expect(m.accessesByKind.read32).toBeGreaterThanOrEqual(6);
    expect(m.accessesPerCommand).toBeGreaterThanOrEqual(15);
    expect(m.crbMicros).toBeGreaterThan(0);
    expect(m.directMicros).toBeGreaterThan(0);
    console.log(`crb 1 KiB: ${m.accessesPerCommand} accesses/command ${JSON.stringify(m.accessesByKind)}; ${m.crbMicros.toFixed(2)} µs vs direct ${m.directMicros.toFixed(2)} µs (${m.ratio.toFixed(1)}×)`);
  });

  it("counts 32-bit copies in dword mode and drops cmdReady/goIdle for smcStart", async () => {
    const m = await measureCrb({ commandBytes: 1024, iterations: 20, bufferAccess: "dword", start: smcStart({ call: () => 0 }) });
    expect(m.accessesByKind.write32).toBe(4 + 256); // LOC_CTRL ×2, CANCEL, START + 1024/4 data words
    expect(m.accessesByKind.readFifo).toBeUndefined();
    console.log(`crb 1 KiB dword+smc: ${m.accessesPerCommand} accesses/command; ${m.crbMicros.toFixed(2)} µs vs direct ${m.directMicros.toFixed(2)} µs (${m.ratio.toFixed(1)}×)`);
  });

  it("rejects bad arguments", async () => {
    await expect(measureCrb({ commandBytes: 5000 })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(measureCrb({ iterations: 0 })).rejects.toBeInstanceOf(TpmArgumentError);
  });
});
