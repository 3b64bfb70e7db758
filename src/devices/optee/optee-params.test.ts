import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { TeeError } from "../../errors/index.js";
import { TEE_ORIGIN, TEE_RESULT } from "../../bus/tee/constants.js";
import type { TeeParam } from "../../bus/tee/client.js";
import { OpTee } from "./optee.js";
import { UUID_A, fakeTa } from "./test-helpers.js";

describe("OpTee: random operations never escape the model", () => {
  it("any parameter list resolves or rejects with a TeeError (BAD_PARAMETERS from API/COMMS, or the TA's code)", async () => {
    // A TA that touches every parameter as its type says (values incremented, memrefs filled, sizes halved).
    const ta = fakeTa({
      impl: () => ({
        invoke: (_s, cmd, types, params) => {
          for (let i = 0; i < 4; i++) {
            const t = (types >> (i * 4)) & 0xf;
            const p = params[i]!;
            if (t === 2 || t === 3) [p.a, p.b] = [p.a + 1, p.b + 1];
            if (t === 6 || t === 7) {
              p.buffer?.fill(cmd);
              p.size = p.size >> 1;
            }
          }
          return cmd === 3 ? TEE_RESULT.SHORT_BUFFER : 0;
        },
      }),
    });
    const tee = new OpTee({ tas: [ta], threads: 8 });
    const ctx = await tee.openContext({ client: "kernel" });
    const s = await ctx.openSession(UUID_A);
    const shm = ctx.allocateSharedMemory(64);
    const foreign = (await tee.openContext({ client: "kernel" })).allocateSharedMemory(16);
    const anyNum = fc.oneof(fc.integer({ min: -5, max: 70 }), fc.constant(2 ** 32), fc.constant(Number.NaN), fc.constant(undefined));
    const param = fc.record(
      {
        type: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.constant(-1)),
        a: anyNum,
        b: anyNum,
        buffer: fc.oneof(fc.constant(undefined), fc.uint8Array({ maxLength: 16 })),
        shm: fc.constantFrom(undefined, shm, foreign),
        offset: anyNum,
        size: anyNum,
      },
      { requiredKeys: ["type"] },
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.array(param, { maxLength: 5 }), async (cmd, params) => {
        try {
          await s.invoke(cmd, { params: params as TeeParam[] });
        } catch (e) {
          expect(e).toBeInstanceOf(TeeError);
          const t = e as TeeError;
          if (t.origin === TEE_ORIGIN.TRUSTED_APP) expect(t.teeCode).toBe(TEE_RESULT.SHORT_BUFFER);
          else expect([t.teeCode, t.origin]).toSatisfy(([c, o]: number[]) => c === TEE_RESULT.BAD_PARAMETERS && (o === TEE_ORIGIN.API || o === TEE_ORIGIN.COMMS));
        }
      }),
      { numRuns: 300 },
    );
    // The session still works afterwards.
    await s.invoke(0, { params: [{ type: 3, a: 1, b: 1 }] });
  });
});
