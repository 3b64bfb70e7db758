/**
 * Property tests over the TEE models: whatever a client hands the OpTee model (parameter types,
 * sizes, buffers, shared memory), whatever bytes reach the fTPM TA through SUBMIT_COMMAND, and
 * whatever RPMB frames reach tee-supplicant's RPMB path or come back to the TEE, the models answer
 * with a result or a typed `TeeError`: nothing else is thrown, nothing hangs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FTPM_TA_CMD,
  FTPM_TA_UUID,
  MemoryFileStore,
  OpTee,
  RPMB_FRAME_SIZE,
  RpmbDevice,
  Supplicant,
  TEE_MEM,
  TEE_PARAM_TYPE as T,
  TEE_RESULT,
  TeeError,
  deriveRpmbKey,
  encodeRpmbFrame,
  ftpmTa,
  type TeeContext,
  type TeeParam,
  type TeeRpcReply,
  type TeeRpcRequest,
  type TeeSession,
  type TeeSharedMemory,
} from "../src/index.js";
import { fakeTa, UUID_A } from "../src/devices/optee/test-helpers.js";

const HUK = Uint8Array.from({ length: 16 }, (_, i) => i * 7);
const CID = Uint8Array.from({ length: 16 }, (_, i) => 0x30 + i);

/** Runs `fn`; a throw or rejection must be a TeeError. Returns "ok" or the error. */
async function typed(fn: () => unknown): Promise<"ok" | TeeError> {
  try {
    await fn();
    return "ok";
  } catch (e) {
    if (!(e instanceof TeeError)) throw new Error(`untyped throw out of the model: ${String((e as Error)?.stack ?? e)}`);
    return e;
  }
}

const PARAM_TYPES = [T.NONE, T.VALUE_INPUT, T.VALUE_OUTPUT, T.VALUE_INOUT, T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_OUTPUT, T.MEMREF_TEMP_INOUT, T.MEMREF_WHOLE, T.MEMREF_PARTIAL_INPUT, T.MEMREF_PARTIAL_OUTPUT, T.MEMREF_PARTIAL_INOUT];
const anyNumber = fc.oneof(fc.integer({ min: -4, max: 70000 }), fc.constantFrom(0xffffffff, 2 ** 32, -1, Number.NaN, Infinity, 0.5, Number.MAX_SAFE_INTEGER));
const paramArb = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...PARAM_TYPES), fc.integer({ min: -2, max: 0x1ff })),
    a: anyNumber,
    b: anyNumber,
    buffer: fc.uint8Array({ maxLength: 96 }),
    shm: fc.integer({ min: 0, max: 5 }),
    offset: anyNumber,
    size: anyNumber,
  },
  { requiredKeys: ["type"] },
);
const opArb = fc.record({
  kind: fc.constantFrom("invoke", "invoke", "invoke", "open", "alloc", "register", "release"),
  command: fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: -1, max: 0xffff })),
  params: fc.oneof(fc.array(paramArb, { maxLength: 4 }), fc.array(paramArb, { minLength: 5, maxLength: 6 })),
  size: anyNumber,
  flags: fc.oneof(fc.constantFrom(TEE_MEM.INPUT, TEE_MEM.OUTPUT, TEE_MEM.INPUT | TEE_MEM.OUTPUT), fc.integer({ min: -1, max: 16 })),
  login: fc.oneof(fc.constantFrom(0, 1, 2, 4, 0x80000000), fc.integer({ min: -1, max: 10 })),
});

describe("OpTee: random parameters never throw out of the model", () => {
  it("contexts, sessions, invokes and shared memory with random types, sizes, buffers and shm answer or reject with TeeError", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 12 }), async (ops) => {
        const ta = fakeTa({ early: true });
        const tee = new OpTee({ tas: [ta], channel: false });
        const ctx: TeeContext = await tee.openContext({ client: "kernel" });
        const other: TeeContext = await tee.openContext({ client: "user" });
        const shms: TeeSharedMemory[] = [other.allocateSharedMemory(64, TEE_MEM.INPUT | TEE_MEM.OUTPUT)];
        let session: TeeSession | undefined;
        const toParams = (ps: (typeof ops)[number]["params"]): TeeParam[] =>
          ps.map((p) => {
            const q: TeeParam = { type: p.type };
            if (p.a !== undefined) q.a = p.a;
            if (p.b !== undefined) q.b = p.b;
            if (p.buffer !== undefined) q.buffer = p.buffer;
            if (p.shm !== undefined && shms.length > 0) q.shm = shms[p.shm % shms.length];
            if (p.offset !== undefined) q.offset = p.offset;
            if (p.size !== undefined) q.size = p.size;
            return q;
          });
        for (const op of ops) {
          switch (op.kind) {
            case "open":
              await typed(async () => {
                const s = await ctx.openSession(UUID_A, { login: op.login, operation: { params: toParams(op.params) } });
                await session?.close();
                session = s;
              });
              break;
            case "invoke":
              if (!session) session = await ctx.openSession(UUID_A);
              await typed(() => session!.invoke(op.command, { params: toParams(op.params) }));
              break;
            case "alloc":
              await typed(() => shms.push(ctx.allocateSharedMemory(op.size, op.flags)));
              break;
            case "register":
              await typed(() => shms.push(ctx.registerSharedMemory(new Uint8Array(Math.max(0, Math.min(256, Number.isFinite(op.size) ? op.size : 0))), op.flags)));
              break;
            case "release":
              if (shms.length > 0) await typed(() => ctx.releaseSharedMemory(shms[Math.abs(op.command) % shms.length]!));
              break;
          }
        }
        // the model still serves a well-formed call afterwards (on a new session: the TA may have
        // panicked on a malformed call, which kills that session only)
        await session?.close();
        const s = await ctx.openSession(UUID_A);
        const p: TeeParam[] = [{ type: T.VALUE_INOUT, a: 1, b: 2 }, { type: T.NONE }, { type: T.NONE }, { type: T.NONE }];
        await s.invoke(0, { params: p });
        expect([p[0]!.a, p[0]!.b]).toEqual([2, 4]);
        await s.close();
        await ctx.close();
        await other.close();
      }),
      { numRuns: 150 },
    );
  });
});

describe("fTPM TA: random SUBMIT buffers through the client API", () => {
  it("get a TPM response or a TeeError, never an untyped throw", async () => {
    const supplicant = new Supplicant({ storage: new MemoryFileStore() });
    const tee = new OpTee({ tas: [ftpmTa({ early: true, storage: "ree", seed: "tee-properties" })], supplicant, channel: false });
    await supplicant.start();
    const ctx = await tee.openContext({ client: "kernel" });
    let session = await ctx.openSession(FTPM_TA_UUID);
    const outcomes = new Map<string, number>();
    const command = fc.oneof(
      fc.uint8Array({ maxLength: 4200 }),
      // a TPM header with a random code and size, then random bytes
      // (size -1: the header tells the true length)
      fc.tuple(fc.constantFrom(0x8001, 0x8002, 0xc4), fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 5000 })), fc.integer({ min: 0x11f, max: 0x1a0 }), fc.uint8Array({ maxLength: 300 })).map(([tag, size, cc, body]) => {
        const b = new Uint8Array(10 + body.length);
        const v = new DataView(b.buffer);
        v.setUint16(0, tag);
        v.setUint32(2, size < 0 ? b.length : size);
        v.setUint32(6, cc);
        b.set(body, 10);
        return b;
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        command,
        fc.oneof(fc.constant(4096), fc.integer({ min: 0, max: 5000 })),
        fc.oneof(fc.constant(FTPM_TA_CMD.SUBMIT_COMMAND), fc.integer({ min: 0, max: 5 })),
        fc.constantFrom(T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_INOUT, T.VALUE_INPUT, T.NONE),
        fc.constantFrom(T.MEMREF_TEMP_INOUT, T.MEMREF_TEMP_OUTPUT, T.MEMREF_TEMP_INPUT, T.NONE),
        async (cmd, rspSize, id, t0, t1) => {
          const rsp = new Uint8Array(Math.max(1, rspSize));
          const params: TeeParam[] = [
            { type: t0, buffer: cmd, size: cmd.length },
            { type: t1, buffer: rsp, size: rspSize },
            { type: T.NONE },
            { type: T.NONE },
          ];
          const r = await typed(() => session.invoke(id, { params }));
          if (r === "ok") {
            // a TPM response: a response tag and a size that fits the buffer
            const tag = (rsp[0]! << 8) | rsp[1]!;
            const size = ((rsp[2]! << 24) | (rsp[3]! << 16) | (rsp[4]! << 8) | rsp[5]!) >>> 0;
            if (id === FTPM_TA_CMD.SUBMIT_COMMAND) {
              expect([0x8001, 0x8002]).toContain(tag);
              expect(size).toBeGreaterThanOrEqual(10);
              expect(size).toBeLessThanOrEqual(rspSize);
            }
            outcomes.set("ok", (outcomes.get("ok") ?? 0) + 1);
          } else {
            outcomes.set(r.teeCode.toString(16), (outcomes.get(r.teeCode.toString(16)) ?? 0) + 1);
            if (r.teeCode === TEE_RESULT.TARGET_DEAD) session = await ctx.openSession(FTPM_TA_UUID);
          }
        },
      ),
      {
        numRuns: 300,
        // GetRandom(8), well formed: the TA answers it
        examples: [[Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8), 4096, FTPM_TA_CMD.SUBMIT_COMMAND, T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_INOUT]],
      },
    );
    // both kinds of outcome were exercised
    expect(outcomes.get("ok") ?? 0).toBeGreaterThan(0);
    expect(outcomes.get(TEE_RESULT.BAD_PARAMETERS.toString(16)) ?? 0).toBeGreaterThan(0);
    await session.close();
    await ctx.close();
  });
});

describe("RPMB: random frames never throw out of the models", () => {
  const frameArb = fc.oneof(
    fc.uint8Array({ minLength: RPMB_FRAME_SIZE, maxLength: RPMB_FRAME_SIZE }),
    fc
      .record({
        type: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 0xffff })),
        address: fc.integer({ min: 0, max: 0xffff }),
        blockCount: fc.integer({ min: 0, max: 0xffff }),
        writeCounter: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(0xffffffff)),
        result: fc.integer({ min: 0, max: 0xffff }),
      })
      .map((f) => encodeRpmbFrame(f)),
  );
  const framesArb = fc.oneof(
    fc.array(frameArb, { minLength: 1, maxLength: 3 }).map((fs) => {
      const b = new Uint8Array(fs.length * RPMB_FRAME_SIZE);
      fs.forEach((f, i) => b.set(f, i * RPMB_FRAME_SIZE));
      return b;
    }),
    fc.uint8Array({ maxLength: 1100 }),
  );

  it("through tee-supplicant's RPMB path (OPTEE_RPC_CMD_RPMB): a result, never a rejection; response frames only with SUCCESS", async () => {
    const rpmb = new RpmbDevice({ cid: CID });
    const supplicant = new Supplicant({ storage: new MemoryFileStore() });
    new OpTee({ tas: [], supplicant, rpmb, channel: false });
    await supplicant.start();
    await fc.assert(
      fc.asyncProperty(framesArb, fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constantFrom(-1, 0x10000, 1.5, Number.NaN)), fc.boolean(), async (frames, responseFrames, programFirst) => {
        if (programFirst && !rpmb.state.keyProgrammed) rpmb.programKey(deriveRpmbKey(HUK, CID));
        const reply = await supplicant.handle({ cmd: 1, devId: 0, frames, responseFrames } as TeeRpcRequest);
        expect(typeof reply.result).toBe("number");
        if (reply.result === TEE_RESULT.SUCCESS) expect(reply.data?.length).toBe(responseFrames * RPMB_FRAME_SIZE);
        else expect(reply.data).toBeUndefined();
      }),
      { numRuns: 400 },
    );
  });

  it("back to the TEE (a supplicant answering RPMB requests with random frames): the fTPM open fails with a TeeError, never an untyped throw", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(framesArb, fc.constant(undefined)), { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 3 }), async (answers, honest) => {
        const device = new RpmbDevice({ cid: CID });
        device.programKey(deriveRpmbKey(HUK, CID));
        const tee = new OpTee({ tas: [ftpmTa({ early: true, storage: "rpmb", seed: "rpmb-fuzz" })], rpmb: device, rpmbFs: true, reeFs: false, huk: HUK, channel: false });
        let n = 0;
        let shm = 1;
        tee.attach({
          async handle(req: TeeRpcRequest): Promise<TeeRpcReply> {
            if (req.cmd === 6) return { result: 0, id: shm++ };
            if (req.cmd === 7) return { result: 0 };
            if (req.cmd !== 1) return { result: TEE_RESULT.NOT_SUPPORTED };
            // the first `honest` requests reach the device, then random answers (undefined: the RPC fails)
            if (n++ < honest) return { result: 0, data: device.transfer(req.frames, req.responseFrames) };
            const a = answers[(n - honest - 1) % answers.length];
            return a === undefined ? { result: TEE_RESULT.COMMUNICATION } : { result: 0, data: a };
          },
        });
        const ctx = await tee.openContext({ client: "kernel" });
        const r = await typed(() => ctx.openSession(FTPM_TA_UUID));
        // random frames cannot carry the device's MAC: the TA never comes up on them
        expect(r).toBeInstanceOf(TeeError);
        await ctx.close();
      }),
      { numRuns: 60 },
    );
  });
});
