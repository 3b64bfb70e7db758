import { describe, it, expect } from "vitest";
import { measureTisTransactions } from "./measure-tis.js";
import { TpmArgumentError } from "../errors/index.js";

describe("measureTisTransactions", () => {
  it("counts bus transactions per command for 12 B, 1 KiB and 4 KiB with burst 64 and QEMU's dynamic burst", async () => {
    const rows = await measureTisTransactions();
    console.table(rows);
    expect(rows).toHaveLength(6);
    const row = (burst: number | "dynamic", size: number) => rows.find((r) => r.burst === burst && r.commandSize === size)!;
    // FIFO bursts: the command in ceil(size / 64) bursts, or one dynamic burst; a 10-byte response in one
    expect(row(64, 4096).fifoBursts).toBe(64 + 1);
    expect(row(64, 1024).fifoBursts).toBe(16 + 1);
    expect(row("dynamic", 4096).fifoBursts).toBe(2);
    for (const r of rows) {
      expect(r.transactions).toBe(r.registerReads + r.registerWrites + r.fifoBursts);
      expect(r.transactions).toBeGreaterThanOrEqual(r.minimum);
      // one status read per burst on top of the minimum, plus the commandReady check and final
      // extra-data check: never more than twice the minimum plus the wait polls
      expect(r.transactions - r.waitPolls).toBeLessThanOrEqual(2 * r.minimum);
    }
  });

  it("costs no wait polls in interrupt mode even with a slow backend", async () => {
    const [r] = await measureTisTransactions({ commandSizes: [12], bursts: ["dynamic"], interrupts: true, executionMs: 20 });
    expect(r!.waitPolls).toBeLessThanOrEqual(1);
  });

  it("rejects sizes outside 10..4096", async () => {
    await expect(measureTisTransactions({ commandSizes: [9] })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(measureTisTransactions({ bursts: [0] })).rejects.toBeInstanceOf(TpmArgumentError);
  });
});
