import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { FakeClock, systemClock, type Clock } from "../../core/clock.js";
import type { Mmio } from "../../bus/mmio.js";
import { CrbDevice } from "../../devices/crb/index.js";
import { crb, mmioStart } from "./index.js";
import { RecordingMmio, type Access } from "../../testing/crb.js";
import { FakeTpmBackend, fakeTpmResponse as answer, getRandomCommand, paddedCommand } from "../../testing/fake-backend.js";
import { countingClock } from "../../../test/support/counting-clock.js";

// The driver awaits an access only when it returned a Promise. These tests hold it to the same
// register sequence whether the Mmio answers synchronously (a device model), asynchronously (a
// bridge), or a mix of both, and check that a synchronous device costs no timer.

const fmt = (a: Access) => `${a.op} 0x${a.offset.toString(16)} ${a.value}`;

/** Records accesses like RecordingMmio; `asyncAt(i)` decides whether access i answers with a Promise. */
class MixedMmio implements Mmio {
  log: Access[] = [];
  #n = 0;
  constructor(
    readonly inner: Mmio,
    readonly asyncAt: (i: number) => boolean,
  ) {}
  #ret<T>(v: T): T | Promise<T> {
    return this.asyncAt(this.#n++) ? Promise.resolve(v) : v;
  }
  read8(o: number) {
    const v = this.inner.read8(o) as number;
    this.log.push({ op: "r8", offset: o, value: v });
    return this.#ret(v);
  }
  read16(o: number) {
    const v = this.inner.read16(o) as number;
    this.log.push({ op: "r16", offset: o, value: v });
    return this.#ret(v);
  }
  read32(o: number) {
    const v = this.inner.read32(o) as number;
    this.log.push({ op: "r32", offset: o, value: v });
    return this.#ret(v);
  }
  write8(o: number, v: number) {
    this.log.push({ op: "w8", offset: o, value: v });
    return this.#ret(this.inner.write8(o, v) as void);
  }
  write16(o: number, v: number) {
    this.log.push({ op: "w16", offset: o, value: v });
    return this.#ret(this.inner.write16(o, v) as void);
  }
  write32(o: number, v: number) {
    this.log.push({ op: "w32", offset: o, value: v });
    return this.#ret(this.inner.write32(o, v) as void);
  }
  readFifo(o: number, n: number) {
    const v = this.inner.readFifo(o, n) as Uint8Array;
    this.log.push({ op: "rblk", offset: o, value: n });
    return this.#ret(v);
  }
  writeFifo(o: number, d: Uint8Array) {
    this.log.push({ op: "wblk", offset: o, value: d.length });
    return this.#ret(this.inner.writeFifo(o, d) as void);
  }
}


const opts = (clock: Clock) => ({ signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });

/** Registers other than CTRL_START polls (their count depends on how many microtasks the backend takes). */
const withoutStartPolls = (log: Access[]) => log.filter((a) => !(a.op === "r32" && a.offset === 0x4c && a.value === 1)).map(fmt);

describe("crb driver: synchronous and asynchronous Mmio take the same path", () => {
  it("a synchronous device gives the same register sequence as an asynchronous bridge, and the same response", async () => {
    const clock = new FakeClock({ auto: true });
    const sync = new MixedMmio(new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) }), () => false);
    const bridged = new RecordingMmio(new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) }));
    const ts = crb({ mmio: sync, start: mmioStart() });
    const ta = crb({ mmio: bridged, start: mmioStart() });
    await ts.open({ clock, locality: 0 });
    await ta.open({ clock, locality: 0 });
    expect(sync.log.map(fmt)).toEqual(bridged.log.map(fmt));
    sync.log = [];
    bridged.log = [];
    const cmd = getRandomCommand(16);
    const [rs, ra] = await Promise.all([ts.send(cmd, opts(clock)), ta.send(cmd, opts(clock))]);
    expect(rs).toEqual(answer(cmd));
    expect(ra).toEqual(rs);
    expect(withoutStartPolls(sync.log)).toEqual(withoutStartPolls(bridged.log));
    expect(sync.log.filter((a) => a.op === "w32" && a.offset === 0x4c)).toHaveLength(1); // one START
    expect(clock.now()).toBe(0);
  });

  it("any mix of synchronous and Promise-returning accesses runs the same sequence to the same response", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }), fc.constantFrom(12, 100, 300), fc.constantFrom<"burst" | "dword">("burst", "dword"), async (pattern, size, bufferAccess) => {
        const clock = new FakeClock({ auto: true });
        const ref = new MixedMmio(new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) }), () => false);
        const mixed = new MixedMmio(new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) }), (i) => pattern[i % pattern.length]!);
        const tr = crb({ mmio: ref, start: mmioStart(), bufferAccess });
        const tm = crb({ mmio: mixed, start: mmioStart(), bufferAccess });
        await tr.open({ clock, locality: 0 });
        await tm.open({ clock, locality: 0 });
        const cmd = paddedCommand(size);
        for (let k = 0; k < 2; k++) {
          const a = await tr.send(cmd, opts(clock));
          const b = await tm.send(cmd, opts(clock));
          expect(b).toEqual(a);
          expect(a).toEqual(answer(cmd));
        }
        expect(withoutStartPolls(mixed.log)).toEqual(withoutStartPolls(ref.log));
      }),
      { numRuns: 25 },
    );
  });

  it("a device model on the system clock costs no timer per command", async () => {
    const clock = countingClock(systemClock);
    const device = new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) });
    const t = crb({ mmio: device, start: mmioStart(), clock });
    await t.open({ clock, locality: 0 });
    const before = clock.timers;
    for (let i = 0; i < 20; i++) expect(await t.send(getRandomCommand(8), opts(clock))).toEqual(answer(getRandomCommand(8)));
    expect(clock.timers).toBe(before);
  });

  it("an access that throws synchronously rejects the send (never throws from it) and still releases the locality", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) });
    let failStart = false;
    const mmio = new MixedMmio(device, () => false);
    const write32 = mmio.write32.bind(mmio);
    mmio.write32 = (o: number, v: number) => {
      if (failStart && o === 0x4c) throw new Error("bus fault");
      return write32(o, v);
    };
    const t = crb({ mmio, start: mmioStart() });
    await t.open({ clock, locality: 0 });
    failStart = true;
    let p: Promise<Uint8Array> | undefined;
    expect(() => (p = t.send(getRandomCommand(4), opts(clock)))).not.toThrow();
    await expect(p).rejects.toThrow("bus fault");
    expect(device.state.locality).toBe(-1); // relinquished in the cleanup
    expect(device.state.idle).toBe(true); // goIdle ran too
    failStart = false;
    expect(await t.send(getRandomCommand(4), opts(clock))).toEqual(answer(getRandomCommand(4)));
  });
});
