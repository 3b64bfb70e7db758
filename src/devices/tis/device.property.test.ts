import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { TisDevice } from "./device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";

const GET_RANDOM_16 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);
const REGS = [0x00, 0x01, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x19, 0x1a, 0x1b, 0x24, 0x25, 0x30, 0x80, 0x84, 0xf00, 0xf02, 0xf04];
const VALUES = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x0100_0000, 0x0200_0000, 0x8000_0087, 0x87, 0x0008_0000];

type Op =
  | { k: "read"; size: 1 | 2 | 4; loc: number; reg: number }
  | { k: "write"; size: 1 | 2 | 4; loc: number; reg: number; value: number }
  | { k: "rfifo"; loc: number; n: number }
  | { k: "wfifo"; loc: number; data: Uint8Array }
  | { k: "command"; loc: number }
  | { k: "time"; ms: number };

const loc = fc.integer({ min: 0, max: 4 });
const reg = fc.oneof(fc.constantFrom(...REGS), fc.integer({ min: 0, max: 0xfff }));
const value = fc.oneof(fc.constantFrom(...VALUES), fc.integer({ min: 0, max: 0xffff_ffff }));
const size = fc.constantFrom<1 | 2 | 4>(1, 2, 4);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant("read" as const), size, loc, reg }),
  fc.record({ k: fc.constant("write" as const), size, loc, reg, value }),
  fc.record({ k: fc.constant("rfifo" as const), loc, n: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ k: fc.constant("wfifo" as const), loc, data: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ k: fc.constant("command" as const), loc }),
  fc.record({ k: fc.constant("time" as const), ms: fc.integer({ min: 0, max: 10 }) }),
);

function checkInvariants(d: TisDevice): void {
  const s = d.state;
  const active = s.activeLocality;
  expect(active === null || (Number.isInteger(active) && active >= 0 && active <= 4)).toBe(true);
  // exactly the active locality shows activeLocality; none when no locality is active
  s.localities.forEach((l, i) => expect((l.access & 0x20) !== 0).toBe(i === active));
  const executing = s.localities.filter((l) => l.state === "execution").length;
  expect(executing).toBeLessThanOrEqual(1);
  expect(s.executing).toBe(executing === 1);
  expect(s.rwOffset).toBeGreaterThanOrEqual(0);
  expect(s.rwOffset).toBeLessThanOrEqual(s.bufferSize);
  for (const l of s.localities) {
    expect(l.intStatus & ~0x87).toBe(0);
    expect(l.access & 0x80).toBe(0x80);
  }
  if (active !== null) {
    const burst = (d.read32(active * 0x1000 + 0x18) >>> 8) & 0xffff;
    expect(burst).toBeLessThanOrEqual(s.bufferSize);
    expect(d.read8(active * 0x1000 + 0x19)).toBeLessThanOrEqual(0xff);
  }
}

describe("TisDevice properties", () => {
  it("random register access sequences never throw and keep the model's invariants", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.constantFrom(16, 64, 4096), fc.integer({ min: 0, max: 5 }), async (ops, bufferSize, execMs) => {
        const clock = new FakeClock();
        const backend = new FakeTpmBackend({ clock, executionMs: execMs });
        const d = new TisDevice({ backend, clock, bufferSize });
        await d.start();
        for (const o of ops) {
          const base = ("loc" in o ? o.loc : 0) * 0x1000;
          switch (o.k) {
            case "read": {
              const v = o.size === 1 ? d.read8(base + o.reg) : o.size === 2 ? d.read16(base + o.reg) : d.read32(base + o.reg);
              expect(Number.isInteger(v) && v >= 0 && v < 2 ** (8 * o.size)).toBe(true);
              break;
            }
            case "write":
              if (o.size === 1) d.write8(base + o.reg, o.value & 0xff);
              else if (o.size === 2) d.write16(base + o.reg, o.value & 0xffff);
              else d.write32(base + o.reg, o.value);
              break;
            case "rfifo":
              expect(d.readFifo(base + 0x24, o.n)).toHaveLength(o.n);
              break;
            case "wfifo":
              d.writeFifo(base + 0x24, o.data);
              break;
            case "command":
              d.write8(base, 0x02);
              d.write8(base + 0x18, 0x40);
              d.writeFifo(base + 0x24, GET_RANDOM_16);
              d.write8(base + 0x18, 0x20);
              break;
            case "time":
              await clock.advance(o.ms);
              break;
          }
          checkInvariants(d);
        }
        await clock.advance(20);
        checkInvariants(d);
        expect(d.state.executing).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("a complete command at any locality 0–3 always produces the backend's response in the FIFO", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 64 }), async (l, burst) => {
        const clock = new FakeClock();
        const d = new TisDevice({ backend: new FakeTpmBackend(), clock });
        await d.start();
        const base = l * 0x1000;
        d.write8(base, 0x02);
        d.write8(base + 0x18, 0x40);
        for (let i = 0; i < GET_RANDOM_16.length; i += burst) d.writeFifo(base + 0x24, GET_RANDOM_16.subarray(i, i + burst));
        d.write8(base + 0x18, 0x20);
        await clock.advance(0);
        expect(d.read8(base + 0x18)).toBe(0x90);
        const rsp = d.readFifo(base + 0x24, 28);
        expect([...rsp.subarray(0, 6)]).toEqual([0x80, 0x01, 0, 0, 0, 28]);
        expect(d.read8(base + 0x18)).toBe(0x80);
      }),
      { numRuns: 100 },
    );
  });
});
