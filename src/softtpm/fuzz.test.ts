import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { SoftTpm } from "./softtpm.js";
import { MemoryStorage } from "../core/storage.js";
import { decodeState } from "./state.js";
import { SOFTTPM_COMMAND_ATTRIBUTES } from "./index.js";
import { STARTUP_CLEAR, authArea, pwSession, rcOf, u16, u32 } from "./test-helpers.js";

/** A response is well formed: ≥ 10 bytes, size field = length, tag 0x8001 (or 0x8002 on success). */
function expectWellFormed(r: Uint8Array): void {
  expect(r.length).toBeGreaterThanOrEqual(10);
  expect(r.length).toBeLessThanOrEqual(4096);
  const size = ((r[2]! << 24) | (r[3]! << 16) | (r[4]! << 8) | r[5]!) >>> 0;
  expect(size).toBe(r.length);
  const tag = (r[0]! << 8) | r[1]!;
  const rc = rcOf(r);
  expect(rc).not.toBe(0x101); // TPM_RC_FAILURE would mean an internal error was swallowed
  if (rc !== 0) {
    expect(tag).toBe(0x8001);
    expect(r.length).toBe(10);
  } else {
    expect([0x8001, 0x8002]).toContain(tag);
  }
}

const codes = SOFTTPM_COMMAND_ATTRIBUTES.map((a) => a & 0xffff);
const getRandom = Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8);

/** Frames with a plausible header and session area around random handles and parameters. */
const frameArb = fc
  .record({
    sessions: fc.boolean(),
    code: fc.oneof(fc.constantFrom(...codes), fc.integer({ min: 0, max: 0xffffffff })),
    handles: fc.array(fc.oneof(fc.integer({ min: 0, max: 30 }), fc.constantFrom(0x40000001, 0x40000007, 0x4000000a, 0x4000000c, 0x01500000, 0x80000000), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 3 }),
    auth: fc.uint8Array({ maxLength: 4 }),
    params: fc.uint8Array({ maxLength: 80 }),
    sizeDelta: fc.oneof(fc.constant(0), fc.integer({ min: -12, max: 12 })),
  })
  .map(({ sessions, code, handles, auth, params, sizeDelta }) => {
    const body = [...handles.flatMap(u32), ...(sessions ? authArea(pwSession(auth)) : []), ...params];
    const size = Math.max(0, 10 + body.length + sizeDelta);
    return Uint8Array.from([...u16(sessions ? 0x8002 : 0x8001), ...u32(size), ...u32(code), ...body]);
  });

describe("SoftTpm never throws on bad bytes (fault matrix B1)", () => {
  it("random byte strings always get a well-formed response", () => {
    const t = new SoftTpm({ seed: "fuzz" });
    t.executeSync(STARTUP_CLEAR, 0);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 4 }), (bytes, locality) => {
        expectWellFormed(t.executeSync(bytes, locality));
      }),
      { numRuns: 2000 },
    );
    expect(rcOf(t.executeSync(getRandom, 0))).toBe(0);
  });

  it("structured frames for every command code always get a well-formed response, and the TPM stays usable", () => {
    const t = new SoftTpm({ seed: "fuzz2" });
    t.executeSync(STARTUP_CLEAR, 0);
    fc.assert(
      fc.property(frameArb, fc.integer({ min: 0, max: 4 }), (frame, locality) => {
        expectWellFormed(t.executeSync(frame, locality));
        if (rcOf(t.executeSync(getRandom, 0)) === 0x100) t.executeSync(STARTUP_CLEAR, 0); // a fuzzed Startup/Shutdown is fine
        expect(rcOf(t.executeSync(getRandom, 0))).toBe(0);
      }),
      { numRuns: 3000 },
    );
  });

  it("the saved state decodes after any fuzzed command sequence (state round trip per input)", async () => {
    const storage = new MemoryStorage();
    const t = new SoftTpm({ seed: "fuzz3", storage });
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { maxLength: 10 }), async (frames) => {
        for (const f of frames) expectWellFormed(t.executeSync(f, 0));
        await t.flush();
        expect(() => decodeState(storage.data!)).not.toThrow();
      }),
      { numRuns: 100 },
    );
  });
});
