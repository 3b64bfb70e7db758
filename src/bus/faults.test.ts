import { describe, it, expect } from "vitest";
import type { Mmio } from "./mmio.js";
import { faultyMmio } from "./faults.js";
import { FakeClock } from "../core/clock.js";
import { TpmArgumentError, TpmTransportError } from "../errors/index.js";

function regs(): Mmio & { writes: [number, number][]; fifo: number[] } {
  const writes: [number, number][] = [];
  const fifo: number[] = [];
  return {
    writes,
    fifo,
    read8: () => 0x81,
    read16: () => 0x1234,
    read32: () => 0x0410_0040,
    write8: (o, v) => void writes.push([o, v]),
    write16: (o, v) => void writes.push([o, v]),
    write32: (o, v) => void writes.push([o, v]),
    readFifo: (_o, n) => Uint8Array.from({ length: n }, (_, i) => i),
    writeFifo: (_o, d) => void fifo.push(...d),
  };
}

describe("faultyMmio", () => {
  it("passes accesses through unchanged and synchronously without faults", () => {
    const f = faultyMmio(regs());
    expect(f.read32(0x18)).toBe(0x0410_0040);
    expect(f.hits).toBe(0);
  });

  it("stuck: reads of a register return the stuck value masked to the access width", () => {
    const f = faultyMmio(regs(), { faults: [{ kind: "stuck", offset: 0x18, value: 0xffff_ffff }] });
    expect(f.read8(0x18)).toBe(0xff);
    expect(f.read32(0x18)).toBe(0xffff_ffff);
    expect(f.read8(0x00)).toBe(0x81);
  });

  it("stuck without an offset makes every read all zeros, FIFO bytes included", () => {
    const f = faultyMmio(regs(), { faults: [{ kind: "stuck", value: 0 }] });
    expect(f.read8(0)).toBe(0);
    expect(f.read32(0xf00)).toBe(0);
    expect([...(f.readFifo(0x24, 3) as Uint8Array)]).toEqual([0, 0, 0]);
  });

  it("drop: matching writes never reach the device", () => {
    const r = regs();
    const f = faultyMmio(r, { faults: [{ kind: "drop", offset: 0x18 }] });
    f.write8(0x18, 0x40);
    f.write8(0x00, 0x02);
    expect(r.writes).toEqual([[0x00, 0x02]]);
  });

  it("flip: inverts one bit of a register read or of one FIFO byte", () => {
    const f = faultyMmio(regs(), {
      faults: [
        { kind: "flip", offset: 0x18, bit: 4, times: 1 },
        { kind: "flip", offset: 0x24, bit: 7, byte: 2 },
      ],
    });
    expect(f.read8(0x18)).toBe(0x81 ^ 0x10);
    expect(f.read8(0x18)).toBe(0x81);
    expect([...(f.readFifo(0x24, 4) as Uint8Array)]).toEqual([0, 1, 2 ^ 0x80, 3]);
  });

  it("flip on writes corrupts the value that reaches the device", () => {
    const r = regs();
    const f = faultyMmio(r, { faults: [{ kind: "flip", ops: "write", bit: 0, byte: 1 }] });
    f.writeFifo(0x24, new Uint8Array([0x10, 0x20]));
    f.write8(0x18, 0x40);
    expect(r.fifo).toEqual([0x10, 0x21]);
    expect(r.writes).toEqual([[0x18, 0x41]]);
  });

  it("skip and times select which matching accesses are hit", () => {
    const f = faultyMmio(regs(), { faults: [{ kind: "stuck", offset: 0, value: 0, skip: 2, times: 2 }] });
    expect([0, 1, 2, 3, 4].map(() => f.read8(0))).toEqual([0x81, 0x81, 0, 0, 0x81]);
    expect(f.hits).toBe(2);
  });

  it("delay: the access completes only after the delay on the injected clock", async () => {
    const clock = new FakeClock();
    const f = faultyMmio(regs(), { clock, faults: [{ kind: "delay", ms: 5, offset: 0x18 }] });
    const p = f.read8(0x18);
    expect(p).toBeInstanceOf(Promise);
    let done = false;
    void (p as Promise<number>).then(() => (done = true));
    await clock.advance(4);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);
    expect(await p).toBe(0x81);
  });

  it("vanish: from the triggering access on, reads are all ones and writes are dropped", () => {
    const r = regs();
    const f = faultyMmio(r, { faults: [{ kind: "vanish", skip: 1 }] });
    expect(f.read8(0)).toBe(0x81);
    expect(f.vanished).toBe(false);
    expect(f.read8(0)).toBe(0xff);
    expect(f.vanished).toBe(true);
    f.write8(0x18, 0x40);
    expect(f.read32(0x18)).toBe(0xffff_ffff);
    expect([...(f.readFifo(0x24, 2) as Uint8Array)]).toEqual([0xff, 0xff]);
    expect(r.writes).toEqual([]);
    f.clear();
    expect(f.read8(0)).toBe(0x81);
  });

  it("throw: the access fails with a TpmTransportError (EIO)", () => {
    const f = faultyMmio(regs(), { faults: [{ kind: "throw", offset: 0x18 }] });
    expect(() => f.read8(0x18)).toThrow(TpmTransportError);
  });

  it("match: a predicate narrows a fault to specific accesses", () => {
    const f = faultyMmio(regs(), { faults: [{ kind: "stuck", value: 0, match: (a) => a.op === "read32" }] });
    expect(f.read8(0x18)).toBe(0x81);
    expect(f.read32(0x18)).toBe(0);
  });

  it("rejects malformed faults with a TpmArgumentError", () => {
    const f = faultyMmio(regs());
    expect(() => f.inject({ kind: "flip", bit: 32 })).toThrow(TpmArgumentError);
    expect(() => f.inject({ kind: "delay", ms: -1 })).toThrow(TpmArgumentError);
    expect(() => f.inject({ kind: "drop", skip: -2 })).toThrow(TpmArgumentError);
  });
});
