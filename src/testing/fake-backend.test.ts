import { describe, it, expect } from "vitest";
import { FakeTpmBackend, fakeTpmResponse, getRandomCommand, paddedCommand } from "./fake-backend.js";
import { FakeClock } from "../core/clock.js";
import { TpmAbortError } from "../errors/index.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));

describe("FakeTpmBackend", () => {
  it("answers the kernel's TPM 2.0 probe byte-for-byte like swtpm 0.7.1 after Startup", async () => {
    // captured from `swtpm socket --tpm2` 0.7.1 on this machine (GetCapability(6, 0x129, 1))
    const swtpm = "80010000001b00000000010000000600000001000001290000006e";
    const r = await new FakeTpmBackend().execute(unhex("800100000016" + "0000017a" + "00000006" + "00000129" + "00000001"), 0);
    expect(hex(r)).toBe(swtpm);
  });

  it("answers GetRandom(n) with n counting bytes in a TPM2B", async () => {
    const b = new FakeTpmBackend();
    const r = await b.execute(unhex("80010000000c0000017b0004"), 0);
    expect(hex(r)).toBe("80010000001000000000" + "0004" + "00010203");
    expect(b.commands).toHaveLength(1);
  });

  it("takes executionMs on the clock, can fail to start, hang, and run a handler", async () => {
    const clock = new FakeClock();
    const b = new FakeTpmBackend({ clock, executionMs: 5, failStart: new Error("no state") });
    await expect(b.start!()).rejects.toThrow("no state");
    let done = false;
    void b.execute(unhex("80010000000a00000144"), 1).then(() => (done = true));
    await clock.advance(4);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);
    b.options = { hang: true };
    const ac = new AbortController();
    const p = b.execute(unhex("80010000000a00000144"), 0, ac.signal);
    ac.abort();
    await expect(p).rejects.toThrow();
    b.options = { handler: () => unhex("80010000000a00000101") };
    expect(hex(await b.execute(unhex("80010000000a00000144"), 0))).toBe("80010000000a00000101");
  });

  it("continues its GetRandom byte counter across answers by default", async () => {
    const b = new FakeTpmBackend();
    await b.execute(getRandomCommand(4), 0);
    expect(hex(await b.execute(getRandomCommand(2), 0))).toBe("80010000000e00000000" + "0002" + "0405");
  });

  it("with random: repeat answers the same GetRandom bytes every call (fakeTpmResponse), capped at 64, and records code and locality", async () => {
    const b = new FakeTpmBackend({ random: "repeat" });
    const first = await b.execute(getRandomCommand(4), 2);
    expect(await b.execute(getRandomCommand(4), 0)).toEqual(first);
    expect(first).toEqual(fakeTpmResponse(getRandomCommand(4)));
    expect((await b.execute(getRandomCommand(1000), 0)).length).toBe(12 + 64);
    expect(b.commands.map((c) => [c.code, c.locality])).toEqual([[0x17b, 2], [0x17b, 0], [0x17b, 0]]);
    expect(hex(getRandomCommand(8))).toBe("80010000000c0000017b0008");
    const p = paddedCommand(16);
    expect(hex(p)).toBe("80010000001000000" + "17b" + "0a0b0c0d0e0f");
  });

  it("has no start() with start: false, and runs a start hook of its own", async () => {
    expect(new FakeTpmBackend({ start: false }).start).toBeUndefined();
    let ran = 0;
    const b = new FakeTpmBackend({ start: async () => void ran++ });
    await b.start!();
    expect([ran, b.starts]).toEqual([1, 1]);
  });

  it("rejects, never settles, or answers late ignoring the signal, as mode says", async () => {
    const clock = new FakeClock();
    const b = new FakeTpmBackend({ clock, mode: "reject" });
    await expect(b.execute(getRandomCommand(1), 0)).rejects.toThrow("backend exploded");
    b.options.mode = "dead";
    const ac = new AbortController();
    let settled = false;
    void b.execute(getRandomCommand(1), 0, ac.signal).finally(() => (settled = true));
    ac.abort();
    await clock.advance(1000);
    expect(settled).toBe(false);
    expect(b.inFlight).toBe(1);
    b.options = { clock, mode: "slow", slowMs: 50 };
    const ac2 = new AbortController();
    let rsp: Uint8Array | undefined;
    void b.execute(getRandomCommand(2), 0, ac2.signal).then((r) => (rsp = r));
    ac2.abort();
    b.cancel();
    await clock.advance(49);
    expect(rsp).toBeUndefined();
    await clock.advance(1);
    expect(rsp).toEqual(fakeTpmResponse(getRandomCommand(2)));
    expect(b.maxInFlight).toBe(2);
    b.options = { mode: "ok" };
    const aborted = AbortSignal.abort();
    await expect(b.execute(getRandomCommand(1), 0, aborted)).rejects.toBeInstanceOf(TpmAbortError);
  });

  it("answers: tools gives Startup success, advancing GetRandom bytes, a property table and TPM_RC_COMMAND_CODE", async () => {
    const b = new FakeTpmBackend({ answers: "tools" });
    expect(hex(await b.execute(unhex("80010000000c000001440000"), 0))).toBe("80010000000a00000000");
    expect(hex(await b.execute(getRandomCommand(4), 0))).toBe("80010000001000000000000400010203");
    expect(hex(await b.execute(getRandomCommand(4), 0))).toBe("80010000001000000000000401020304");
    // GetCapability(TPM_PROPERTIES, PT_MAX_DIGEST 0x120, 2): one property left from 0x120
    const cap = await b.execute(unhex("800100000016" + "0000017a" + "00000006" + "00000120" + "00000002"), 0);
    expect(hex(cap)).toBe("80010000001b00000000" + "00" + "00000006" + "00000001" + "00000120" + "00000040");
    expect(hex(await b.execute(unhex("80010000000a00000999"), 0))).toBe("80010000000a00000143");
  });

  it("runs a before hook; cancel() while it waits ends the command with TPM_RC_CANCELED", async () => {
    const seen: number[] = [];
    const b = new FakeTpmBackend({ before: (call) => (seen.push(call.code), new Promise<void>(() => {})) });
    const p = b.execute(getRandomCommand(4), 0);
    await Promise.resolve();
    b.cancel();
    expect(hex(await p)).toBe("80010000000a00000909");
    expect(seen).toEqual([0x17b]);
    expect(b.cancels).toBe(1);
  });
});
