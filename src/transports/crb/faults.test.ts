import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { FakeClock } from "../../core/clock.js";
import { Chip } from "../../core/chip.js";
import { Tpm } from "../../client/tpm.js";
import { TpmNotFoundError, TpmTimeoutError, TpmTransportError, TpmkitError } from "../../errors/index.js";
import { CrbDevice } from "../../devices/crb/index.js";
import { crb, mmioStart, smcStart, type CrbStartMethod } from "./index.js";
import { FakeTpmBackend, fakeTpmResponse as answer, getRandomCommand, type FakeTpmBackendMode as FakeMode } from "../../testing/fake-backend.js";
import { faultyMmio, type MmioFault } from "../../bus/faults.js";
import { CRB_REG } from "../../bus/crb-registers.js";

describe("crb under a Chip", () => {
  it("serves Tpm.open + getRandom through the register path (the design example)", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ start: false, random: "repeat" });
    const tpm = await Tpm.open(crb({ mmio: new CrbDevice({ backend }), start: mmioStart() }), { clock });
    const bytes = await tpm.getRandom(16);
    expect([...bytes]).toEqual([...Array(16).keys()]);
    expect(backend.commands.map((c) => (c.command[8]! << 8) | c.command[9]!)).toEqual([0x144, 0x17b]); // Startup, GetRandom
    await tpm.close();
  });

  it("opens, transmits and reports the transport's localities", async () => {
    const clock = new FakeClock({ auto: true });
    const chip = new Chip(crb({ mmio: new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) }), start: mmioStart() }), { clock });
    await chip.open();
    expect(chip.readiness).toBe("ready");
    expect(await chip.transmit(getRandomCommand(16))).toEqual(answer(getRandomCommand(16)));
    await chip.close();
  });

  it("leaves the chip absent when the backend failed to start", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ random: "repeat", start: () => Promise.reject(new Error("no NV")) });
    const chip = new Chip(crb({ mmio: new CrbDevice({ backend }), start: mmioStart() }), { clock });
    await expect(chip.open()).rejects.toBeInstanceOf(TpmNotFoundError);
    expect(chip.readiness).toBe("absent");
    expect(clock.now()).toBeLessThanOrEqual(751);
  });

  it("turns a backend that dies mid-command into the chip's timeout, and cancels on the device", async () => {
    const clock = new FakeClock({ auto: true });
    const backend = new FakeTpmBackend({ start: false, random: "repeat" });
    const chip = new Chip(crb({ mmio: new CrbDevice({ backend }), start: mmioStart() }), { clock });
    await chip.open();
    backend.options.mode = "hang";
    const t0 = clock.now();
    await expect(chip.transmit(getRandomCommand(8), { timeoutMs: 300 })).rejects.toBeInstanceOf(TpmTimeoutError);
    expect(clock.now() - t0).toBeLessThan(302);
    expect(backend.cancels).toBe(1); // one CANCEL, though both the signal and chip.cancel() asked
    backend.options.mode = "ok";
    expect(await chip.transmit(getRandomCommand(4))).toEqual(answer(getRandomCommand(4)));
  });
});

/** A start method that rings the device's doorbell on every request, as ffaStart will (DEN0138 START). */
function doorbellStart(dev: CrbDevice): CrbStartMethod {
  const ring = (q: "command" | "locality", l: number) => {
    const s = dev.doorbell(q, l);
    if (s !== "ok") throw new TpmTransportError(`START(${q}, ${l}): ${s}`, { errno: s === "denied" ? "EACCES" : "EINVAL" });
  };
  return {
    name: "doorbell",
    hasIdle: true,
    async start(ctx) {
      await ctx.mmio.write32(ctx.page + CRB_REG.CTRL_START, 1);
      ring("command", ctx.locality);
    },
    async notify(q, _ev, ctx) {
      ring(q, ctx.locality);
    },
  };
}

type Step =
  | { k: "send"; n: number; timeoutMs: number; abortAt: number | undefined; locality: number }
  | { k: "mode"; m: FakeMode }
  | { k: "fault"; f: "startNeverClears" | "tpmSts" | "ctrlReqStuck" | "localityDenied"; on: boolean }
  | { k: "reset" }
  | { k: "smcFails"; on: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant("send" as const), n: fc.integer({ min: 0, max: 40 }), timeoutMs: fc.integer({ min: 1, max: 3000 }), abortAt: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }), locality: fc.constantFrom(0, 0, 0, 1, 4) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("mode" as const), m: fc.constantFrom<FakeMode>("ok", "ok", "reject", "hang", "dead", "slow") }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("fault" as const), f: fc.constantFrom("startNeverClears" as const, "tpmSts" as const, "ctrlReqStuck" as const, "localityDenied" as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("reset" as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("smcFails" as const), on: fc.boolean() }) },
);

describe("crb under random fault schedules (fast-check)", () => {
  it("never hangs, only throws tpmkit errors, and never returns another command's response", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 25 }), fc.constantFrom(1 as const, 5 as const), fc.constantFrom("mmio" as const, "smc" as const, "doorbell" as const), fc.integer({ min: 1, max: 600 }), async (steps, localities, method, slowMs) => {
        const clock = new FakeClock({ auto: true });
        const backend = new FakeTpmBackend({ start: false, random: "repeat", clock });
        backend.options.slowMs = slowMs;
        let smcFails = false;
        const dev = new CrbDevice({ backend, localities, clock, trigger: method === "doorbell" ? "doorbell" : "register" });
        const t = crb({ mmio: dev, start: method === "smc" ? smcStart({ call: () => (smcFails ? 1 : 0) }) : method === "doorbell" ? doorbellStart(dev) : mmioStart() });
        await t.open({ clock, locality: 0 });
        for (const s of steps) {
          if (s.k === "mode") backend.options.mode = s.m;
          else if (s.k === "fault") dev.faults[s.f] = s.on;
          else if (s.k === "reset") await dev.reset();
          else if (s.k === "smcFails") smcFails = s.on;
          else {
            const ac = new AbortController();
            const timer = s.abortAt === undefined ? undefined : clock.setTimer(s.abortAt, () => ac.abort());
            // bound: the duration, plus timeout C for each register wait around it (locality,
            // cmdReady, drain, goIdle, relinquish) and slack for the polling granularity
            const bound = s.timeoutMs + 5 * 200 + 10;
            const t0 = clock.now();
            let hung = false;
            const watchdog = clock.setTimer(bound + 1, () => (hung = true));
            const cmd = getRandomCommand(s.n);
            try {
              const rsp = await t.send(cmd, { signal: ac.signal, locality: s.locality, timeoutMs: s.timeoutMs, clock });
              expect(rsp).toEqual(answer(cmd));
            } catch (e) {
              expect(e).toBeInstanceOf(TpmkitError);
            } finally {
              timer?.clear();
              watchdog.clear();
            }
            expect(hung).toBe(false);
            expect(clock.now() - t0).toBeLessThanOrEqual(bound);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});

const REG_OFFSETS = Object.values(CRB_REG).filter((o) => o < 0x80);
const busFault: fc.Arbitrary<MmioFault> = fc
  .tuple(
    fc.oneof(
      fc.record({ kind: fc.constant("stuck" as const), value: fc.constantFrom(0, 1, 2, 0x80, 0x82, 0xffffffff) }),
      fc.record({ kind: fc.constant("drop" as const) }),
      fc.record({ kind: fc.constant("delay" as const), ms: fc.integer({ min: 0, max: 300 }) }),
      fc.record({ kind: fc.constant("flip" as const), bit: fc.integer({ min: 0, max: 31 }), byte: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant("vanish" as const), value: fc.constantFrom(0, 0xffffffff) }),
      fc.record({ kind: fc.constant("throw" as const) }),
    ),
    fc.option(fc.oneof(fc.constantFrom(...REG_OFFSETS), fc.constant(0x80), fc.constant(0x88)), { nil: undefined }),
    fc.integer({ min: 0, max: 30 }),
    fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
  )
  .map(([effect, offset, skip, times]) => ({ ...effect, ...(offset === undefined ? {} : { offset }), skip, ...(times === undefined ? {} : { times }) }) as MmioFault);

describe("crb over a faulty bus (fast-check: stuck, flipped, dropped and vanishing accesses)", () => {
  it("never hangs, throws only tpmkit errors, and returns only well-framed responses", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(busFault, { maxLength: 4 }), fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 4 }), async (faults, sizes) => {
        const clock = new FakeClock({ auto: true });
        const dev = new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }), clock });
        const bus = faultyMmio(dev, { clock, faults });
        const t = crb({ mmio: bus, start: mmioStart() });
        const bound = 750 + 6 * 200 + 2000 + 4 * 300 * 20; // open + waits + duration + delays
        for (const n of sizes) {
          const t0 = clock.now();
          let hung = false;
          const watchdog = clock.setTimer(bound + 1, () => (hung = true));
          const cmd = getRandomCommand(n);
          try {
            if (!t.info) await t.open({ clock, locality: 0 });
            const rsp = await t.send(cmd, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
            const size = new DataView(rsp.buffer, rsp.byteOffset).getUint32(2);
            expect(size).toBe(rsp.length);
            expect(rsp.length).toBeLessThanOrEqual(t.info!.responseSize);
            if (bus.hits === 0) expect(rsp).toEqual(answer(cmd));
          } catch (e) {
            expect(e).toBeInstanceOf(TpmkitError);
          } finally {
            watchdog.clear();
          }
          expect(hung).toBe(false);
          expect(clock.now() - t0).toBeLessThanOrEqual(bound);
        }
      }),
      { numRuns: 150 },
    );
  });
});
