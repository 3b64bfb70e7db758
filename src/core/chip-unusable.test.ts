import { describe, expect, it } from "vitest";
import { Chip, CHIP_WAIT_READY_MS } from "./chip.js";
import { FakeClock } from "./clock.js";
import { ProbeDeferredError, TpmAbortError, TpmArgumentError, TpmStateError, TpmTimeoutError, TpmUnavailableError, TpmkitError } from "../errors/index.js";
import type { SendOptions, Transport, TransportPresence } from "./transport.js";

function cmd(cc: number): Uint8Array {
  const b = new Uint8Array(10);
  const v = new DataView(b.buffer);
  v.setUint16(0, 0x8001);
  v.setUint32(2, 10);
  v.setUint32(6, cc);
  return b;
}

/** A transport whose presence the test sets, reporting each change to its subscribers. */
function switchable(initial: TransportPresence = "present", reply?: (o: SendOptions) => Promise<Uint8Array>) {
  let presence: TransportPresence = initial;
  const subs = new Set<(p: TransportPresence, reason?: unknown) => void>();
  const t = {
    kind: "switch",
    sends: 0,
    opens: 0,
    async open() {
      t.opens++;
    },
    async send(_c: Uint8Array, o: SendOptions) {
      t.sends++;
      return reply ? reply(o) : cmd(0);
    },
    presence: () => presence,
    onPresence(fn: (p: TransportPresence, reason?: unknown) => void) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
    set(p: TransportPresence, reason?: unknown) {
      presence = p;
      for (const fn of [...subs]) fn(p, reason);
    },
    get subscribers() {
      return subs.size;
    },
  } satisfies Transport & Record<string, unknown>;
  return t;
}

describe("Chip readiness: present but unusable", () => {
  it("moves ready -> unusable -> ready on the transport's reports, sending nothing", async () => {
    const t = switchable();
    const chip = new Chip(t);
    const seen: string[] = [];
    chip.onReadiness((r) => seen.push(r));
    await chip.open();
    expect(chip.readiness).toBe("ready");
    const why = new TpmStateError("supplicant stopped");
    t.set("unusable", why);
    expect(chip.readiness).toBe("unusable");
    expect(chip.readinessError).toBe(why);
    t.set("present");
    expect(chip.readiness).toBe("ready");
    expect(seen).toEqual(["probing", "ready", "unusable", "ready"]);
    expect(t.sends).toBe(0);
  });

  it("is unusable right after open when the transport says so, with a typed reason when it gave none", async () => {
    const t = switchable("unusable");
    const chip = new Chip(t);
    await chip.open();
    expect(chip.readiness).toBe("unusable");
    expect(chip.readinessError).toBeInstanceOf(TpmUnavailableError);
  });

  it("takes the reason the transport reported during the probe", async () => {
    const t = switchable();
    const why = new TpmStateError("no supplicant");
    t.open = async () => {
      t.set("unusable", why);
    };
    const chip = new Chip(t);
    await chip.open();
    expect(chip.readiness).toBe("unusable");
    expect(chip.readinessError).toBe(why);
  });

  it("rejects transmit while unusable at once with TpmUnavailableError (a TpmStateError), nothing sent", async () => {
    const t = switchable();
    const chip = new Chip(t);
    await chip.open();
    const why = new TpmStateError("supplicant stopped");
    t.set("unusable", why);
    const e = await chip.transmit(cmd(0x17b)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TpmUnavailableError);
    expect(e).toBeInstanceOf(TpmStateError);
    expect(e).toBeInstanceOf(TpmkitError);
    expect(e).toMatchObject({ code: "TPM_UNAVAILABLE", name: "TpmUnavailableError", cause: why });
    expect(t.sends).toBe(0);
    t.set("present");
    await expect(chip.transmit(cmd(0x17b))).resolves.toBeInstanceOf(Uint8Array);
    expect(t.sends).toBe(1);
  });

  it("fails commands queued behind the one in flight when the transport turns unusable", async () => {
    const clock = new FakeClock();
    const t = switchable("present", (o) => clock.sleep(10, o.signal).then(() => cmd(0)));
    const chip = new Chip(t, { clock });
    await chip.open();
    const a = chip.transmit(cmd(1));
    const b = chip.transmit(cmd(1));
    t.set("unusable");
    await clock.advance(10);
    await expect(a).resolves.toBeInstanceOf(Uint8Array);
    await expect(b).rejects.toBeInstanceOf(TpmUnavailableError);
    expect(t.sends).toBe(1);
  });

  it("waitReady waits through unusable and resolves when usable again", async () => {
    const t = switchable();
    const chip = new Chip(t);
    await chip.open();
    t.set("unusable");
    let done = false;
    const w = chip.waitReady({ timeoutMs: 1000 }).then(() => {
      done = true;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    t.set("present");
    await w;
    expect(done).toBe(true);
  });

  it("waitReady is bounded: TpmTimeoutError after timeoutMs on the clock, the reason as its cause", async () => {
    const clock = new FakeClock();
    const t = switchable();
    const chip = new Chip(t, { clock });
    await chip.open();
    const why = new TpmStateError("supplicant stopped");
    t.set("unusable", why);
    const w = chip.waitReady({ timeoutMs: 250 }).catch((x: unknown) => x);
    await clock.advance(249);
    expect(chip.readiness).toBe("unusable");
    await clock.advance(1);
    const e = await w;
    expect(e).toBeInstanceOf(TpmTimeoutError);
    expect(e).toMatchObject({ timeoutMs: 250, cause: why });
    expect(clock.pending).toBe(0);
  });

  it("waitReady is abortable while unusable", async () => {
    const t = switchable();
    const chip = new Chip(t);
    await chip.open();
    t.set("unusable");
    const ac = new AbortController();
    const w = chip.waitReady({ signal: ac.signal });
    ac.abort();
    await expect(w).rejects.toBeInstanceOf(TpmAbortError);
  });

  it("open() on an unusable chip probes the transport again (the re-bind a dead session needs)", async () => {
    const t = switchable();
    const chip = new Chip(t);
    await chip.open();
    t.set("unusable");
    t.presence = () => "present";
    await chip.open();
    expect(t.opens).toBe(2);
    expect(chip.readiness).toBe("ready");
    expect(t.subscribers).toBe(1);
  });

  it("ignores presence reports before open and after close, and unsubscribes on close", async () => {
    const t = switchable();
    const chip = new Chip(t);
    t.set("unusable");
    expect(chip.readiness).toBe("idle");
    t.presence = () => "present";
    await chip.open();
    expect(chip.readiness).toBe("ready");
    await chip.close();
    expect(t.subscribers).toBe(0);
    t.set("unusable");
    expect(chip.readiness).toBe("closed");
  });

  it("treats absent or deferred reported after a successful probe as unusable", async () => {
    const t = switchable();
    const chip = new Chip(t);
    await chip.open();
    t.set("absent");
    expect(chip.readiness).toBe("unusable");
    t.set("present");
    t.set("deferred");
    expect(chip.readiness).toBe("unusable");
  });
});

describe("waitReady is always bounded", () => {
  it("without options it gives up after CHIP_WAIT_READY_MS (120 s) with TpmTimeoutError; a bad timeoutMs is a TpmArgumentError", async () => {
    const clock = new FakeClock();
    const chip = new Chip({ kind: "never", open: async () => { throw new ProbeDeferredError("not yet"); }, send: async () => new Uint8Array(10) }, { clock });
    await chip.open().catch(() => undefined);
    expect(chip.readiness).toBe("deferred");
    let settled: unknown = "pending";
    chip.waitReady().then(() => (settled = "ready"), (e) => (settled = e));
    await clock.advance(CHIP_WAIT_READY_MS - 1);
    expect(settled).toBe("pending");
    await clock.advance(1);
    expect(settled).toBeInstanceOf(TpmTimeoutError);
    expect(CHIP_WAIT_READY_MS).toBe(120_000);
    await expect(chip.waitReady({ timeoutMs: -1 })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(chip.waitReady({ timeoutMs: Number.NaN })).rejects.toBeInstanceOf(TpmArgumentError);
  });
});
