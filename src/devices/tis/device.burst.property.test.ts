import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { TisDevice } from "./device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";
import type { InterruptEvent } from "../../bus/interrupt.js";

// Differential tests for the block-copy fast paths of TisDevice.writeFifo/readFifo: a burst must
// leave the device exactly as the same bytes written or read one at a time through write8/read8
// (state, STS and burst count, interrupts, diagnostics events, returned bytes).

/** FIFO offsets a burst can target: DATA_FIFO (any byte lane) and XDATA_FIFO. */
const FIFO = [0x24, 0x25, 0x27, 0x80, 0x9d, 0xbf];

type Op =
  | { k: "access"; loc: number; value: number }
  | { k: "sts"; loc: number; value: number }
  | { k: "inte"; loc: number; value: number }
  | { k: "wfifo"; loc: number; reg: number; data: Uint8Array }
  | { k: "cmd"; loc: number; reg: number; size: number; len: number; chunk: number; prep: boolean }
  | { k: "rfifo"; loc: number; reg: number; n: number }
  | { k: "time"; ms: number };

const loc = fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 4 }), weight: 1 });
const fifoReg = fc.constantFrom(...FIFO);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant("access" as const), loc, value: fc.constantFrom(0x02, 0x20, 0x08, 0x80, 0x00) }),
  fc.record({ k: fc.constant("sts" as const), loc, value: fc.constantFrom(0x40, 0x20, 0x02, 0x01, 0x00) }),
  fc.record({ k: fc.constant("inte" as const), loc, value: fc.constantFrom(0x8000_0087, 0x8000_0001, 0x8000_0004, 0) }),
  fc.record({ k: fc.constant("wfifo" as const), loc, reg: fifoReg, data: fc.uint8Array({ maxLength: 80 }) }),
  fc.record({
    k: fc.constant("cmd" as const),
    loc,
    reg: fifoReg,
    size: fc.oneof(fc.integer({ min: 0, max: 120 }), fc.constantFrom(10, 12, 0xffff_ffff)),
    len: fc.integer({ min: 0, max: 120 }),
    chunk: fc.integer({ min: 1, max: 130 }),
    prep: fc.boolean(),
  }),
  fc.record({ k: fc.constant("rfifo" as const), loc, reg: fifoReg, n: fc.integer({ min: 0, max: 70 }) }),
  fc.record({ k: fc.constant("time" as const), ms: fc.integer({ min: 0, max: 3 }) }),
);

interface Side {
  device: TisDevice;
  clock: FakeClock;
  log: unknown[];
  stop: () => void;
}

let channelSeq = 0;

async function side(bufferSize: number, burstCount: number | undefined): Promise<Side> {
  const clock = new FakeClock();
  const channel = `tpmkit:test:tis-burst:${channelSeq++}`;
  const device = new TisDevice({ backend: new FakeTpmBackend({ clock, executionMs: 1 }), clock, bufferSize, burstCount, channel });
  const log: unknown[] = [];
  const onMessage = (m: unknown) => log.push(m);
  subscribe(channel, onMessage);
  device.onInterrupt((e: InterruptEvent) => log.push({ irq: e }));
  await device.start();
  return { device, clock, log, stop: () => unsubscribe(channel, onMessage) };
}

/** A command-shaped burst: header with the given size field, then filler, `len` bytes in all. */
function commandBytes(size: number, len: number): Uint8Array {
  const c = new Uint8Array(len);
  const h = [0x80, 0x01, size >>> 24, (size >>> 16) & 0xff, (size >>> 8) & 0xff, size & 0xff, 0, 0, 0x01, 0x7b];
  for (let i = 0; i < len; i++) c[i] = i < h.length ? h[i]! : (i * 7) & 0xff;
  return c;
}

function writeBurst(s: Side, offset: number, data: Uint8Array, bytewise: boolean): void {
  if (bytewise) for (const b of data) s.device.write8(offset, b);
  else s.device.writeFifo(offset, data);
}

function readBurst(s: Side, offset: number, n: number, bytewise: boolean): number[] {
  if (bytewise) return Array.from({ length: n }, () => s.device.read8(offset));
  return [...s.device.readFifo(offset, n)];
}

async function apply(s: Side, o: Op, bytewise: boolean): Promise<unknown> {
  const d = s.device;
  const base = ("loc" in o ? o.loc : 0) * 0x1000;
  switch (o.k) {
    case "access":
      d.write8(base, o.value);
      return undefined;
    case "sts":
      d.write8(base + 0x18, o.value);
      return undefined;
    case "inte":
      d.write32(base + 0x08, o.value);
      return undefined;
    case "wfifo":
      writeBurst(s, base + o.reg, o.data, bytewise);
      return undefined;
    case "cmd": {
      if (o.prep) {
        d.write8(base, 0x02); // requestUse
        d.write8(base + 0x18, 0x40); // commandReady
      }
      const bytes = commandBytes(o.size, o.len);
      for (let i = 0; i < bytes.length; i += o.chunk) writeBurst(s, base + o.reg, bytes.subarray(i, i + o.chunk), bytewise);
      return undefined;
    }
    case "rfifo":
      return readBurst(s, base + o.reg, o.n, bytewise);
    case "time":
      await s.clock.advance(o.ms);
      return undefined;
  }
}

function observe(s: Side): unknown {
  const d = s.device;
  const regs = [0, 1, 2, 3, 4].map((l) => [d.read32(l * 0x1000 + 0x18), d.read8(l * 0x1000 + 0x19), d.read8(l * 0x1000)]);
  return { state: d.state, regs };
}

describe("TisDevice burst fast paths", () => {
  it("writeFifo and readFifo bursts leave the device exactly as the same bytes moved one at a time", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 40 }),
        fc.constantFrom(16, 64, 4096),
        fc.constantFrom<number | undefined>(undefined, 1, 7, 64),
        async (ops, bufferSize, burstCount) => {
          const fast = await side(bufferSize, burstCount);
          const slow = await side(bufferSize, burstCount);
          try {
            for (const o of ops) {
              const a = await apply(fast, o, false);
              const b = await apply(slow, o, true);
              expect(a).toEqual(b);
              expect(observe(fast)).toEqual(observe(slow));
              expect(fast.log).toEqual(slow.log);
            }
          } finally {
            fast.stop();
            slow.stop();
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("a 1 KiB command written in one burst and its response read in one burst match the byte path", async () => {
    const fast = await side(4096, undefined);
    const slow = await side(4096, undefined);
    try {
      const cmd = commandBytes(1024, 1024);
      for (const [s, bytewise] of [[fast, false], [slow, true]] as const) {
        s.device.write32(0x08, 0x8000_0087); // interrupts on, so STS_VALID/DATA_AVAIL raises are compared too
        s.device.write8(0x00, 0x02);
        s.device.write8(0x18, 0x40);
        writeBurst(s, 0x24, cmd, bytewise);
        expect(s.device.read8(0x18) & 0x08).toBe(0); // Expect dropped after the last byte
        s.device.write8(0x18, 0x20);
        await s.clock.advance(1);
      }
      expect(fast.log).toEqual(slow.log);
      // the fake backend answers this GetRandom-coded command with a 76-byte response
      const a = readBurst(fast, 0x24, 80, false);
      const b = readBurst(slow, 0x24, 80, true);
      expect(a).toEqual(b);
      expect(a.slice(0, 6)).toEqual([0x80, 0x01, 0, 0, 0, 76]);
      expect(a.slice(76)).toEqual([0xff, 0xff, 0xff, 0xff]); // past the response: no-data bytes
      expect(observe(fast)).toEqual(observe(slow));
      expect(fast.log).toEqual(slow.log);
    } finally {
      fast.stop();
      slow.stop();
    }
  });
});
