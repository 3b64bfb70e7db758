import { describe, it, expect } from "vitest";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { Mmio } from "./mmio.js";
import { traceMmio, MMIO_TRACE_CHANNEL } from "./trace.js";
import { formatAccess } from "./access.js";

/** A register file: 32-bit cells, FIFO reads return the offset's low byte. */
function ram(): Mmio & { cells: Map<number, number> } {
  const cells = new Map<number, number>();
  return {
    cells,
    read8: (o) => (cells.get(o) ?? 0) & 0xff,
    read16: (o) => (cells.get(o) ?? 0) & 0xffff,
    read32: (o) => (cells.get(o) ?? 0) >>> 0,
    write8: (o, v) => void cells.set(o, v & 0xff),
    write16: (o, v) => void cells.set(o, v & 0xffff),
    write32: (o, v) => void cells.set(o, v >>> 0),
    readFifo: (o, n) => new Uint8Array(n).fill(o & 0xff),
    writeFifo: (o, d) => void cells.set(o, d[d.length - 1] ?? 0),
  };
}

describe("traceMmio", () => {
  it("records every access with the value read or written, in order", () => {
    const t = traceMmio(ram(), { channel: false });
    t.write8(0x18, 0x40);
    expect(t.read8(0x18)).toBe(0x40);
    t.writeFifo(0x24, new Uint8Array([1, 2, 3]));
    t.readFifo(0x24, 2);
    t.write32(0x10, 0xdeadbeef);
    t.read32(0x10);
    expect(t.log.map(formatAccess)).toEqual([
      "w8 0x0018 0x40",
      "r8 0x0018 = 0x40",
      "wfifo 0x0024 [3]",
      "rfifo 0x0024 [2]",
      "w32 0x0010 0xdeadbeef",
      "r32 0x0010 = 0xdeadbeef",
    ]);
    expect([...t.log[2]!.data!]).toEqual([1, 2, 3]);
  });

  it("copies FIFO data so later buffer reuse does not rewrite the log", () => {
    const t = traceMmio(ram(), { channel: false });
    const buf = new Uint8Array([9, 9]);
    t.writeFifo(0x24, buf);
    buf[0] = 0;
    expect([...t.log[0]!.data!]).toEqual([9, 9]);
  });

  it("keeps a synchronous device synchronous", () => {
    const t = traceMmio(ram(), { channel: false });
    expect(t.read8(0)).toBe(0);
    expect(t.read8(0) instanceof Promise).toBe(false);
  });

  it("follows asynchronous devices and records after the value is known", async () => {
    const inner = ram();
    const asyncMmio: Mmio = { ...inner, read8: async (o) => (inner.read8(o) as number) + 7 };
    const t = traceMmio(asyncMmio, { channel: false });
    expect(await t.read8(0)).toBe(7);
    expect(t.log[0]).toMatchObject({ op: "read8", offset: 0, value: 7 });
  });

  it("publishes on tpmkit:bus:mmio only when subscribed, with label and sequence", () => {
    expect(MMIO_TRACE_CHANNEL).toBe("tpmkit:bus:mmio");
    const seen: unknown[] = [];
    const fn = (m: unknown) => seen.push(m);
    const t = traceMmio(ram(), { label: "tis0", record: false });
    t.read8(1);
    subscribe(MMIO_TRACE_CHANNEL, fn);
    try {
      t.write8(2, 3);
    } finally {
      unsubscribe(MMIO_TRACE_CHANNEL, fn);
    }
    t.read8(4);
    expect(seen).toEqual([{ op: "write8", offset: 2, value: 3, label: "tis0", seq: 1 }]);
    expect(t.log).toEqual([]);
  });

  it("drops the oldest entries past the limit and clears on demand", () => {
    const t = traceMmio(ram(), { channel: false, limit: 2 });
    t.read8(1);
    t.read8(2);
    t.read8(3);
    expect(t.log.map((a) => a.offset)).toEqual([2, 3]);
    t.clear();
    expect(t.log).toEqual([]);
  });
});
