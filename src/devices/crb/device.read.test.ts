import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { CrbDevice } from "./index.js";
import { CRB_REG } from "../../bus/crb-registers.js";
import { FakeTpmBackend, getRandomCommand } from "../../testing/fake-backend.js";

// An aligned 32-bit register read is answered from the register in one step (a fast path); it
// must equal the little-endian composition of the four byte reads, in every state.

const R = CRB_REG;
const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/** Every aligned offset of the control area of each page, plus the first data word and a page past the end. */
function offsets(localities: number): number[] {
  const out: number[] = [];
  for (let p = 0; p <= localities; p++) for (let r = 0; r <= 0x84; r += 4) out.push(p * 0x1000 + r);
  return out;
}

function expectWordsMatchBytes(dev: CrbDevice, localities: number): void {
  for (const o of offsets(localities)) {
    const bytes = dev.read8(o) | (dev.read8(o + 1) << 8) | (dev.read8(o + 2) << 16) | (dev.read8(o + 3) << 24);
    expect({ o, v: dev.read32(o) }).toEqual({ o, v: bytes >>> 0 });
    expect({ o, v: dev.read16(o) }).toEqual({ o, v: bytes & 0xffff });
  }
}

describe("CrbDevice aligned register reads", () => {
  it("equal their four byte reads through locality, idle, start and completion, with faults", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1 as const, 5 as const),
        fc.integer({ min: 0, max: 4 }),
        fc.record({ tpmSts: fc.boolean(), cmdSize: fc.option(fc.integer({ min: 0, max: 0xffff_ffff }), { nil: undefined }), cmdAddress: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }) }),
        async (localities, l, faults) => {
          const backend = new FakeTpmBackend({ start: false, random: "repeat" });
          const dev = new CrbDevice({ backend, localities, address: 0xfed4_0000 });
          await dev.ready;
          Object.assign(dev.faults, faults);
          const page = (l % localities) * 0x1000;
          expectWordsMatchBytes(dev, localities);
          dev.write32(page + R.LOC_CTRL, 1);
          dev.write32(page + R.CTRL_REQ, 1);
          dev.writeFifo(page + R.DATA_BUFFER, getRandomCommand(8));
          expectWordsMatchBytes(dev, localities);
          dev.write32(page + R.CTRL_START, 1);
          expectWordsMatchBytes(dev, localities); // START set
          await flush();
          expectWordsMatchBytes(dev, localities); // response in the buffer
          expect(dev.read32(page + R.CTRL_START)).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("read 0 while the backend has not started", () => {
    const dev = new CrbDevice({ backend: new FakeTpmBackend({ random: "repeat", start: () => new Promise<void>(() => {}) }) });
    expect(dev.read32(R.LOC_STATE)).toBe(0);
    expect(dev.read32(R.INTF_ID)).toBe(0);
  });
});
