import { describe, it, expect } from "vitest";
import type { Mmio } from "./mmio.js";
import { countMmio } from "./count.js";

const nullMmio: Mmio = {
  read8: () => 0,
  read16: () => 0,
  read32: () => 0,
  write8: () => {},
  write16: () => {},
  write32: () => {},
  readFifo: (_o, n) => new Uint8Array(n),
  writeFifo: () => {},
};

describe("countMmio", () => {
  it("counts register reads, writes, FIFO bursts and bytes separately", () => {
    const c = countMmio(nullMmio);
    c.read8(0);
    c.read16(0);
    c.read32(0);
    c.write8(0, 1);
    c.write32(0, 1);
    c.writeFifo(0x24, new Uint8Array(64));
    c.writeFifo(0x24, new Uint8Array(3));
    c.readFifo(0x24, 10);
    expect({ ...c.counts }).toEqual({ reads: 3, writes: 2, fifoReads: 1, fifoWrites: 2, bytesRead: 10, bytesWritten: 67 });
    expect(c.transactions).toBe(8);
    expect({ ...c.byOp }).toEqual({ read8: 1, read16: 1, read32: 1, write8: 1, write16: 0, write32: 1, readFifo: 1, writeFifo: 2 });
  });

  it("resets every count to zero", () => {
    const c = countMmio(nullMmio);
    c.read8(0);
    c.readFifo(0, 4);
    c.reset();
    expect(c.transactions).toBe(0);
    expect(c.counts.bytesRead).toBe(0);
    expect(Object.values(c.byOp).every((n) => n === 0)).toBe(true);
  });

  it("counts bytes of asynchronous FIFO reads once they arrive", async () => {
    const c = countMmio({ ...nullMmio, readFifo: async (_o, n) => new Uint8Array(n) });
    await c.readFifo(0, 5);
    expect(c.counts.bytesRead).toBe(5);
  });
});
