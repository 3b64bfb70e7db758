import { describe, it, expect } from "vitest";
import { FakeTpmBackend } from "./fake-backend.js";
import { FakeClock } from "../core/clock.js";

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
    await expect(b.start()).rejects.toThrow("no state");
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
});
