import { describe, expect, it } from "vitest";
import { Chip } from "./chip.js";
import { FakeClock } from "./clock.js";
import { ProbeDeferredError, TpmArgumentError, TpmFormatError, TpmNotFoundError, TpmStateError, TpmTimeoutError, abortErrorFrom } from "../errors/index.js";
import type { SendOptions, Transport } from "./transport.js";

function cmd(cc: number, body: number[] = []): Uint8Array {
  const b = new Uint8Array(10 + body.length);
  const v = new DataView(b.buffer);
  v.setUint16(0, 0x8001);
  v.setUint32(2, b.length);
  v.setUint32(6, cc);
  b.set(body, 10);
  return b;
}
function rsp(rc: number, body: number[] = []): Uint8Array {
  return cmd(rc, body);
}
const rcOf = (r: Uint8Array) => new DataView(r.buffer, r.byteOffset).getUint32(6);

/** A transport whose replies come from a function, optionally after a delay on the clock. */
function fakeTransport(reply: (c: Uint8Array, o: SendOptions) => Uint8Array | Promise<Uint8Array>, extra: Partial<Transport> = {}): Transport & { sends: number; cancels: number } {
  const t = {
    kind: "fake",
    sends: 0,
    cancels: 0,
    localities: [0, 1, 2, 3, 4],
    async send(c: Uint8Array, o: SendOptions) {
      t.sends++;
      return reply(c, o);
    },
    cancel() {
      t.cancels++;
    },
    ...extra,
  };
  return t;
}

/** A reply that waits `ms` on the clock and honours the signal. */
function delayed(clock: FakeClock, ms: number, value: Uint8Array, o: SendOptions): Promise<Uint8Array> {
  return clock.sleep(ms, o.signal).then(() => value);
}

describe("Chip queue", () => {
  it("gives each of 1000 concurrent callers its own reply, in order, one in flight at a time", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const t = fakeTransport(async (c) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      // echo the 4-byte body after a random number of microtask turns
      const turns = c[10]! % 7;
      for (let i = 0; i < turns; i++) await Promise.resolve();
      inFlight--;
      return rsp(0, [...c.subarray(10, 14)]);
    });
    const chip = new Chip(t);
    const calls = Array.from({ length: 1000 }, (_, i) => {
      const body = [(i >>> 24) & 0xff, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff];
      return chip.transmit(cmd(0x17b, body)).then((r) => new DataView(r.buffer, r.byteOffset).getUint32(10));
    });
    const got = await Promise.all(calls);
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(maxInFlight).toBe(1);
    expect(t.sends).toBe(1000);
  });

  it("removes an aborted caller from the queue without sending its command", async () => {
    const clock = new FakeClock();
    const t = fakeTransport((_c, o) => delayed(clock, 10, rsp(0), o));
    const chip = new Chip(t, { clock });
    const first = chip.transmit(cmd(0x17b));
    const ac = new AbortController();
    const second = chip.transmit(cmd(0x17b), { signal: ac.signal });
    ac.abort();
    await expect(second).rejects.toMatchObject({ name: "AbortError" });
    await clock.advance(10);
    await expect(first).resolves.toBeInstanceOf(Uint8Array);
    expect(t.sends).toBe(1);
  });
});

describe("Chip timeouts and abort", () => {
  it("times out after the command's duration on a fake clock and tells the transport to cancel", async () => {
    const clock = new FakeClock();
    const t = fakeTransport((_c, o) => delayed(clock, 10_000, rsp(0), o));
    const chip = new Chip(t, { clock });
    const p = chip.transmit(cmd(0x17b)); // GetRandom: 2000 ms
    const settled = expect(p).rejects.toBeInstanceOf(TpmTimeoutError);
    await clock.advance(1999);
    expect(t.cancels).toBe(0);
    await clock.advance(1);
    await settled;
    expect(t.cancels).toBe(1);
    expect(chip.readiness).toBe("ready");
  });

  it("uses the kernel's duration table: PCR_Extend 750 ms, SelfTest 3000 ms, others 120 s", async () => {
    const clock = new FakeClock({ auto: true });
    const t = fakeTransport((_c, o) => delayed(clock, 1e9, rsp(0), o));
    const chip = new Chip(t, { clock });
    for (const [cc, ms] of [[0x182, 750], [0x143, 3000], [0x17a, 750], [0x17b, 2000], [0x12345, 120_000]] as const) {
      const t0 = clock.now();
      const e = await chip.transmit(cmd(cc)).catch((x) => x);
      expect(e).toBeInstanceOf(TpmTimeoutError);
      expect(e.timeoutMs).toBe(ms);
      expect(clock.now() - t0).toBe(ms);
    }
  });

  it("rejects promptly when aborted mid-command and runs the next command afterwards", async () => {
    const clock = new FakeClock();
    const t = fakeTransport((c, o) => delayed(clock, c[9] === 0x7b ? 500 : 1, rsp(0, [c[9]!]), o));
    const chip = new Chip(t, { clock });
    const ac = new AbortController();
    const p = chip.transmit(cmd(0x17b), { signal: ac.signal });
    const next = chip.transmit(cmd(0x17e));
    await clock.advance(100);
    ac.abort(new Error("user gave up"));
    await expect(p).rejects.toMatchObject({ name: "AbortError", code: "ABORT_ERR" });
    expect(t.cancels).toBe(1);
    await clock.advance(1);
    const r = await next;
    expect(r[10]).toBe(0x7e);
  });

  it("declares itself failed when a transport ignores the abort, and fails queued callers", async () => {
    const clock = new FakeClock();
    const t = fakeTransport(() => new Promise<Uint8Array>(() => {})); // never settles
    const chip = new Chip(t, { clock, cancelGraceMs: 100 });
    const p = chip.transmit(cmd(0x17b));
    const q = chip.transmit(cmd(0x17b));
    const pe = expect(p).rejects.toBeInstanceOf(TpmTimeoutError);
    const qe = expect(q).rejects.toBeInstanceOf(TpmStateError);
    await clock.advance(2000);
    await pe;
    await clock.advance(100);
    await qe;
    expect(chip.readiness).toBe("failed");
    await expect(chip.transmit(cmd(0x17b))).rejects.toBeInstanceOf(TpmStateError);
  });
});

describe("Chip retry", () => {
  it("retries TPM_RC_RETRY with the kernel's doubling back-off and gives up after 1280 ms", async () => {
    const clock = new FakeClock({ auto: true });
    const times: number[] = [];
    const t = fakeTransport(() => {
      times.push(clock.now());
      return rsp(0x922);
    });
    const chip = new Chip(t, { clock });
    const r = await chip.transmit(cmd(0x17b));
    expect(rcOf(r)).toBe(0x922);
    const gaps = times.slice(1).map((x, i) => x - times[i]!);
    expect(gaps).toEqual([20, 40, 80, 160, 320, 640, 1280]);
  });

  it("retries TPM_RC_TESTING until success, but returns TESTING to SelfTest at once", async () => {
    const clock = new FakeClock({ auto: true });
    let n = 0;
    const t = fakeTransport((c) => (c[9] === 0x43 ? rsp(0x90a) : ++n < 3 ? rsp(0x90a) : rsp(0)));
    const chip = new Chip(t, { clock });
    expect(rcOf(await chip.transmit(cmd(0x17b)))).toBe(0);
    expect(n).toBe(3);
    const before = t.sends;
    expect(rcOf(await chip.transmit(cmd(0x143, [0])))).toBe(0x90a);
    expect(t.sends - before).toBe(1);
  });

  it("does not retry YIELDED or CANCELED unless told to", async () => {
    const clock = new FakeClock({ auto: true });
    const t = fakeTransport(() => rsp(0x908));
    expect(rcOf(await new Chip(t, { clock }).transmit(cmd(0x17b)))).toBe(0x908);
    expect(t.sends).toBe(1);
    const t2 = fakeTransport(() => rsp(0x909));
    expect(rcOf(await new Chip(t2, { clock, retry: { yielded: true } }).transmit(cmd(0x17b)))).toBe(0x909);
    expect(t2.sends).toBe(1);
    const t3 = fakeTransport(() => (t3.sends < 2 ? rsp(0x908) : rsp(0)));
    expect(rcOf(await new Chip(t3, { clock, retry: { yielded: true } }).transmit(cmd(0x17b)))).toBe(0);
  });
});

describe("Chip input and response checks", () => {
  it("rejects commands that are short, lie about their size, are oversize or use a bad locality", async () => {
    const chip = new Chip(fakeTransport(() => rsp(0)));
    await expect(chip.transmit(new Uint8Array(5))).rejects.toBeInstanceOf(TpmArgumentError);
    const lying = cmd(0x17b, [0, 16]);
    lying[5] = 50;
    await expect(chip.transmit(lying)).rejects.toThrow(/header says 50 bytes/);
    await expect(chip.transmit(cmd(0x17b, new Array(5000).fill(0)))).rejects.toThrow(/E2BIG/);
    await expect(chip.transmit(cmd(0x17b), { locality: 5 })).rejects.toBeInstanceOf(TpmArgumentError);
    const only0 = new Chip({ kind: "x", send: async () => rsp(0) });
    await expect(only0.transmit(cmd(0x17b), { locality: 3 })).rejects.toThrow(/locality 3 is not offered/);
  });

  it("turns a response whose size field lies into a TpmFormatError, and stays usable", async () => {
    let lie = true;
    const chip = new Chip(
      fakeTransport(() => {
        const r = rsp(0, [1, 2, 3]);
        if (lie) r[5] = 200;
        lie = false;
        return r;
      }),
    );
    await expect(chip.transmit(cmd(0x17b))).rejects.toBeInstanceOf(TpmFormatError);
    await expect(chip.transmit(cmd(0x17b))).resolves.toHaveLength(13);
  });

  it("rejects truncated responses and unknown tags", async () => {
    await expect(new Chip(fakeTransport(() => new Uint8Array([0x80, 1, 0]))).transmit(cmd(1))).rejects.toBeInstanceOf(TpmFormatError);
    const bad = rsp(0);
    bad[0] = 0x12;
    await expect(new Chip(fakeTransport(() => bad)).transmit(cmd(1))).rejects.toThrow(/tag/);
  });

  it("passes the per-command locality to the transport", async () => {
    const seen: number[] = [];
    const chip = new Chip(fakeTransport((_c, o) => (seen.push(o.locality), rsp(0))), { locality: 2 });
    await chip.transmit(cmd(1));
    await chip.transmit(cmd(1), { locality: 4 });
    expect(seen).toEqual([2, 4]);
  });
});

describe("Chip readiness", () => {
  it("is deferred while a dependency is missing, and ready once open succeeds", async () => {
    let present = false;
    const chip = new Chip(
      fakeTransport(() => rsp(0), {
        async open() {
          if (!present) throw new ProbeDeferredError("ffa partition 0x8003");
        },
      }),
    );
    await expect(chip.open()).rejects.toBeInstanceOf(ProbeDeferredError);
    expect(chip.readiness).toBe("deferred");
    await expect(chip.transmit(cmd(1))).rejects.toBeInstanceOf(TpmStateError);
    const waiting = chip.waitReady({ timeoutMs: 1000 });
    present = true;
    await chip.open();
    await waiting;
    expect(chip.readiness).toBe("ready");
  });

  it("is absent when the transport finds no TPM, and waitReady times out on the clock", async () => {
    const clock = new FakeClock();
    const chip = new Chip(
      fakeTransport(() => rsp(0), {
        async open() {
          throw new TpmNotFoundError("registers read 0");
        },
      }),
      { clock },
    );
    await expect(chip.open()).rejects.toBeInstanceOf(TpmNotFoundError);
    expect(chip.readiness).toBe("absent");
    const w = chip.waitReady({ timeoutMs: 5000 });
    const e = expect(w).rejects.toBeInstanceOf(TpmTimeoutError);
    await clock.advance(5000);
    await e;
  });

  it("waitReady is abortable and close() fails queued callers", async () => {
    const chip = new Chip(fakeTransport(() => new Promise(() => {})), { cancelGraceMs: 10 });
    const ac = new AbortController();
    const w = chip.waitReady({ signal: ac.signal });
    ac.abort();
    await expect(w).rejects.toMatchObject({ name: "AbortError" });
    await chip.open();
    const a = chip.transmit(cmd(1));
    const b = chip.transmit(cmd(1));
    await chip.close();
    await expect(a).rejects.toBeInstanceOf(TpmStateError);
    await expect(b).rejects.toBeInstanceOf(TpmStateError);
    expect(chip.readiness).toBe("closed");
  });

  it("maps an abort reason that is already a tpmkit error unchanged", () => {
    const ac = new AbortController();
    const reason = new TpmStateError("x");
    ac.abort(reason);
    expect(abortErrorFrom(ac.signal)).toBe(reason);
  });
});

describe("Chip default locality", () => {
  it("adopts the transport's defaultLocality when the caller gave none, for commands and for open()", async () => {
    const seen: number[] = [];
    let opened = -1;
    const t = fakeTransport((_c, o) => (seen.push(o.locality), rsp(0)), {
      defaultLocality: 3,
      async open(ctx) {
        opened = ctx.locality;
      },
    });
    const chip = new Chip(t);
    expect(chip.locality).toBe(3);
    await chip.open();
    expect(opened).toBe(3);
    await chip.transmit(cmd(0x17b));
    await chip.transmit(cmd(0x17b), { locality: 1 });
    expect(seen).toEqual([3, 1]);
  });

  it("the chip's own locality option wins over the transport's", async () => {
    const seen: number[] = [];
    const chip = new Chip(fakeTransport((_c, o) => (seen.push(o.locality), rsp(0)), { defaultLocality: 3 }), { locality: 2 });
    await chip.transmit(cmd(0x17b));
    expect(seen).toEqual([2]);
  });

  it("a transport without one gives 0, and a bad one is refused with a titled error", () => {
    expect(new Chip(fakeTransport(() => rsp(0))).locality).toBe(0);
    expect(() => new Chip(fakeTransport(() => rsp(0), { defaultLocality: 7 }))).toThrow(new TpmArgumentError("chip: locality must be an integer in 0–4, got 7"));
  });
});
