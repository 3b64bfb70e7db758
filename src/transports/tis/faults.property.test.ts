/**
 * Random fault schedules never hang the driver: every open and send settles with a whole response
 * or a typed tpmkit error within its bound on a FakeClock (stalled status bits, bit flips, short or
 * extra FIFO data: the faults Linux tpm_tis_core.c bounds and checks for).
 */
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { tis } from "./tis.js";
import { TisDevice, type TisDeviceFaults } from "../../devices/tis/device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";
import { faultyMmio, type MmioFault } from "../../bus/faults.js";
import { TpmkitError } from "../../errors/index.js";

const GET_RANDOM_16 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);
const STS = 0x18, FIFO = 0x24, ACCESS = 0x00;

const selector = { skip: fc.integer({ min: 0, max: 30 }), times: fc.integer({ min: 1, max: 4 }) };
const busFault: fc.Arbitrary<MmioFault> = fc.oneof(
  // single-bit flips in STS (status byte and burst count), ACCESS and FIFO data
  fc.record({ kind: fc.constant("flip" as const), offset: fc.constant(STS), bit: fc.integer({ min: 0, max: 23 }), ...selector }),
  fc.record({ kind: fc.constant("flip" as const), offset: fc.constant(ACCESS), bit: fc.integer({ min: 0, max: 7 }), ...selector }),
  fc.record({ kind: fc.constant("flip" as const), offset: fc.constant(FIFO), bit: fc.integer({ min: 0, max: 7 }), byte: fc.integer({ min: 0, max: 11 }), ops: fc.constantFrom("read" as const, "write" as const), ...selector }),
  // stuck status, dropped writes, stalls, a device that vanishes
  fc.record({ kind: fc.constant("stuck" as const), offset: fc.constant(STS), value: fc.constantFrom(0, 0xff, 0x80, 0x90, 0x40, 0xffff_ffff), ...selector }),
  fc.record({ kind: fc.constant("drop" as const), offset: fc.constantFrom(STS, ACCESS, FIFO), ...selector }),
  fc.record({ kind: fc.constant("delay" as const), ms: fc.integer({ min: 1, max: 400 }), ops: fc.constant("any" as const), ...selector }),
  fc.record({ kind: fc.constant("vanish" as const), ops: fc.constant("any" as const), skip: fc.integer({ min: 0, max: 60 }) }),
);

const deviceFaults: fc.Arbitrary<TisDeviceFaults> = fc.record(
  {
    stallExecution: fc.boolean(),
    completionDelayMs: fc.integer({ min: 0, max: 300 }),
    mutateResponse: fc.oneof(
      fc.integer({ min: 0, max: 27 }).map((n) => (r: Uint8Array) => r.subarray(0, n)), // short data
      fc.integer({ min: 1, max: 16 }).map((n) => (r: Uint8Array) => Uint8Array.from([...r, ...new Array<number>(n).fill(0xaa)])), // extra data
      fc.integer({ min: 0, max: 0xffff_ffff }).map((size) => (r: Uint8Array) => {
        const x = r.slice();
        new DataView(x.buffer).setUint32(2, size); // a size field that lies
        return x;
      }),
    ),
  },
  { requiredKeys: [] },
);

const HANG_GUARD_MS = 5000; // real time: only trips if the driver never settles

function settleOrHang<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let guard: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    guard = setTimeout(() => reject(new Error("HANG: the driver did not settle")), HANG_GUARD_MS);
  });
  return Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), hang]).finally(() => clearTimeout(guard));
}

function checkOutcome(r: { value?: Uint8Array; error?: unknown }): void {
  if (r.error !== undefined) {
    expect(r.error).toBeInstanceOf(TpmkitError);
  } else {
    const rsp = r.value!;
    expect(rsp.length).toBeGreaterThanOrEqual(10);
    expect(new DataView(rsp.buffer, rsp.byteOffset).getUint32(2)).toBe(rsp.length);
  }
}

describe("tis driver under random faults", () => {
  it("every open and send settles with a response or a typed error within its bound", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(busFault, { maxLength: 3 }),
        deviceFaults,
        fc.integer({ min: 0, max: 50 }),
        fc.constantFrom(undefined, 8, 64),
        fc.boolean(),
        async (faults, devFaults, execMs, burstCount, irq) => {
          const clock = new FakeClock({ auto: true });
          const backend = new FakeTpmBackend({ clock, executionMs: execMs });
          const device = new TisDevice({ backend, clock, ...(burstCount ? { burstCount } : {}) });
          await device.start();
          const bus = faultyMmio(device, { clock });
          const t = tis({ mmio: bus, retries: 5, ...(irq ? { interrupts: device } : {}) });

          // open: bounded by its own timeouts; a watchdog signal (like the chip's) caps it too
          const openBound = 6000;
          const ac0 = new AbortController();
          const timer0 = clock.setTimer(openBound, () => ac0.abort());
          const t0 = clock.now();
          const opened = await settleOrHang(t.open({ clock, locality: 0, signal: ac0.signal }));
          timer0.clear();
          if (opened.error !== undefined) expect(opened.error).toBeInstanceOf(TpmkitError);
          expect(clock.now() - t0).toBeLessThanOrEqual(openBound + 750);

          for (const f of faults) bus.inject(f);
          device.faults = devFaults;
          for (let i = 0; i < 2; i++) {
            const duration = 1000;
            const ac = new AbortController();
            const timer = clock.setTimer(duration, () => ac.abort());
            const start = clock.now();
            const r = await settleOrHang(t.send(GET_RANDOM_16, { signal: ac.signal, locality: 0, timeoutMs: duration, clock }));
            timer.clear();
            expect(r.error === undefined || !(r.error instanceof Error && r.error.message.startsWith("HANG"))).toBe(true);
            checkOutcome(r);
            // the abort fires at `duration`; cleanup is bounded by TIMEOUT_A (plus one delayed access)
            expect(clock.now() - start).toBeLessThanOrEqual(duration + 750 + 400);
          }
        },
      ),
      { numRuns: 70 },
    );
  }, 60_000);

  it("without faults every send succeeds, whatever the burst size and backend latency", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 30 }), fc.constantFrom(undefined, 1, 3, 10, 64), fc.boolean(), async (execMs, burstCount, irq) => {
        const clock = new FakeClock({ auto: true });
        const device = new TisDevice({ backend: new FakeTpmBackend({ clock, executionMs: execMs }), clock, ...(burstCount ? { burstCount } : {}) });
        const t = tis({ mmio: device, ...(irq ? { interrupts: device } : {}) });
        await t.open({ clock, locality: 0 });
        const rsp = await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
        expect(rsp.length).toBe(28);
      }),
      { numRuns: 60 },
    );
  });
});
