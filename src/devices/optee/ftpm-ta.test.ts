import { describe, expect, it } from "vitest";
import { TeeError } from "../../errors/index.js";
import { FakeClock } from "../../core/clock.js";
import type { Storage } from "../../core/storage.js";
import { TA_FLAG, TEE_ORIGIN, TEE_PARAM_TYPE as T, TEE_RESULT as R, TEE_STORAGE, teeParamTypes } from "../../bus/tee/constants.js";
import { TaPanicError, type TaEnvironment, type TaParam, type TaSession, type TrustedApplication } from "../../bus/tee/ta.js";
import { createFtpmTa, FTPM_TA_UUID, ftpmNvObjectId, type FtpmEngine } from "./ftpm-ta.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A hand-written TaEnvironment: objects in a Map, panic throws TaPanicError. */
class FakeEnv implements TaEnvironment {
  readonly uuid = FTPM_TA_UUID;
  readonly clock = new FakeClock();
  readonly objects = new Map<string, Uint8Array>();
  readonly writes: string[] = [];
  failRead: number | undefined;
  failWrite: number | undefined;
  panics: number[] = [];
  readonly storage = {
    read: async (sid: number, id: Uint8Array) => {
      if (this.failRead !== undefined) throw new TeeError("read", this.failRead, TEE_ORIGIN.TEE);
      const d = this.objects.get(`${sid}:${hex(id)}`);
      if (!d) throw new TeeError("no object", R.ITEM_NOT_FOUND, TEE_ORIGIN.TEE);
      return d.slice();
    },
    write: async (sid: number, id: Uint8Array, data: Uint8Array) => {
      if (this.failWrite !== undefined) throw new TeeError("write", this.failWrite, TEE_ORIGIN.TEE);
      this.objects.set(`${sid}:${hex(id)}`, data.slice());
      this.writes.push(hex(id));
    },
    remove: async (sid: number, id: Uint8Array) => {
      this.objects.delete(`${sid}:${hex(id)}`);
    },
  };
  random(size: number) {
    return new Uint8Array(size);
  }
  panic(code: number): never {
    this.panics.push(code);
    throw new TaPanicError(this.uuid, code);
  }
  log() {}
}

const STATE_SIZE = 1300; // 3 data blocks
const CC_STARTUP = 0x144;
const CC_SHUTDOWN = 0x145;
const CC_POKE = 0x20000001; // test command: blob[offset u32] = byte
const CC_BIG = 0x20000002; // test command: a response of n (u32) bytes

/** A TPM engine double: a state blob with "orderly STATE saved" at byte 0 and seeds at 1..32. */
class FakeEngine implements FtpmEngine {
  blob: Uint8Array | undefined;
  manufactured = false;
  startups: number[] = [];
  constructor(readonly storage: Storage) {}
  async start() {
    this.blob = await this.storage.load();
    if (!this.blob) {
      this.manufactured = true;
      this.blob = new Uint8Array(STATE_SIZE);
      for (let i = 1; i <= 32; i++) this.blob[i] = (i * 7 + 3) & 0xff;
      await this.storage.save(this.blob);
    }
  }
  async execute(cmd: Uint8Array): Promise<Uint8Array> {
    const dv = new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
    const cc = cmd.length >= 10 ? dv.getUint32(6) : 0;
    const ok = (extra = 0) => {
      const r = new Uint8Array(10 + extra);
      r.set([0x80, 1]);
      new DataView(r.buffer).setUint32(2, r.length);
      return r;
    };
    const rc = (code: number) => {
      const r = ok();
      new DataView(r.buffer).setUint32(6, code);
      return r;
    };
    try {
      if (cc === CC_STARTUP) {
        const su = dv.getUint16(10);
        this.startups.push(su);
        if (su === 1 && this.blob![0] !== 1) return rc(0x184);
        this.blob![0] = 0;
        await this.storage.save(this.blob!);
        return ok();
      }
      if (cc === CC_SHUTDOWN) {
        this.blob![0] = dv.getUint16(10) === 1 ? 1 : 0;
        await this.storage.save(this.blob!);
        return ok();
      }
      if (cc === CC_POKE) {
        this.blob![dv.getUint32(10)] = cmd[14]!;
        await this.storage.save(this.blob!);
        return ok();
      }
      if (cc === CC_BIG) return ok(dv.getUint32(10) - 10);
      return rc(0x143);
    } catch {
      return rc(0x923);
    }
  }
}

function frame(cc: number, body: number[] = []): Uint8Array {
  const b = new Uint8Array(10 + body.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 0x8001);
  dv.setUint32(2, b.length);
  dv.setUint32(6, cc);
  b.set(body, 10);
  return b;
}
const u32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const u16 = (v: number) => [(v >>> 8) & 0xff, v & 0xff];

const SUBMIT = teeParamTypes(T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_INOUT);
const session: TaSession = { id: 1, login: 0, context: undefined };
function params(cmd: Uint8Array | undefined, rsp: Uint8Array | undefined): TaParam[] {
  return [
    { a: 0, b: 0, buffer: cmd, size: cmd?.length ?? 0 },
    { a: 0, b: 0, buffer: rsp, size: rsp?.length ?? 0 },
    { a: 0, b: 0, buffer: undefined, size: 0 },
    { a: 0, b: 0, buffer: undefined, size: 0 },
  ];
}

async function boot(env: FakeEnv, opts: { storage?: "ree" | "rpmb"; emulatePpi?: boolean } = {}) {
  let engine: FakeEngine | undefined;
  const def = createFtpmTa({ early: true, ...opts, engine: (s) => (engine = new FakeEngine(s)) });
  const ta: TrustedApplication = def.instantiate();
  expect(await ta.create!(env)).toBe(R.SUCCESS);
  expect(await ta.openSession!(session, 0, params(undefined, undefined))).toBe(R.SUCCESS);
  return { def, ta, engine: engine! };
}

async function submit(ta: TrustedApplication, cmd: Uint8Array, rspSize = 4096) {
  const rsp = new Uint8Array(rspSize);
  const p = params(cmd, rsp);
  const result = await ta.invoke(session, 0, SUBMIT, p);
  return { result, rsp, p };
}

const PRIVATE = TEE_STORAGE.PRIVATE;
const key = (i: number, sid: number = PRIVATE) => `${sid}:${hex(ftpmNvObjectId(i))}`;

describe("fTPM TA: identity", () => {
  it("has the optee_ftpm UUID, flags and early/REE choice", () => {
    const def = createFtpmTa({ early: false, engine: (s) => new FakeEngine(s) });
    expect(def.uuid).toBe("bc50d971-d4c9-42c4-82cb-343fb7f37896");
    expect(def.flags).toBe(TA_FLAG.SINGLE_INSTANCE | TA_FLAG.INSTANCE_KEEP_ALIVE | TA_FLAG.DEVICE_ENUM_TEE_STORAGE_PRIVATE);
    expect(def.flags).toBe(0x1014);
    expect(def.early).toBe(false);
    expect(createFtpmTa({ early: true, engine: (s) => new FakeEngine(s) }).early).toBe(true);
  });
  it("object ids are the little-endian u32 0x54504D00 + i", () => {
    expect(hex(ftpmNvObjectId(0))).toBe("004d5054");
    expect(hex(ftpmNvObjectId(3))).toBe("034d5054");
  });
});

describe("fTPM TA: sessions and parameters", () => {
  it("openSession: every param NONE, else BAD_PARAMETERS; a second session ACCESS_CONFLICT", async () => {
    const env = new FakeEnv();
    const { ta } = await boot(env);
    const s2: TaSession = { id: 2, login: 0, context: undefined };
    expect(await ta.openSession!(s2, 0, params(undefined, undefined))).toBe(R.ACCESS_CONFLICT);
    await ta.closeSession!(session);
    expect(await ta.openSession!(s2, teeParamTypes(T.VALUE_INPUT), params(undefined, undefined))).toBe(R.BAD_PARAMETERS);
    expect(await ta.openSession!(s2, teeParamTypes(0, 0, 0, T.MEMREF_TEMP_INPUT), params(undefined, undefined))).toBe(R.BAD_PARAMETERS);
    expect(await ta.openSession!(s2, 0, params(undefined, undefined))).toBe(R.SUCCESS);
  });

  it("SUBMIT: param types must be exactly [MEMREF_INPUT, MEMREF_INOUT, NONE, NONE]", async () => {
    const { ta } = await boot(new FakeEnv());
    const cmd = frame(CC_BIG, u32(10));
    for (const pt of [
      teeParamTypes(T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_OUTPUT),
      teeParamTypes(T.MEMREF_TEMP_INOUT, T.MEMREF_TEMP_INOUT),
      teeParamTypes(T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_INOUT, T.VALUE_INPUT),
      teeParamTypes(T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_INOUT, 0, T.VALUE_OUTPUT),
      teeParamTypes(T.MEMREF_TEMP_INPUT),
    ]) {
      expect(await ta.invoke(session, 0, pt, params(cmd, new Uint8Array(64)))).toBe(R.BAD_PARAMETERS);
    }
    expect(await ta.invoke(session, 0, SUBMIT, params(cmd, new Uint8Array(64)))).toBe(R.SUCCESS);
  });

  it("SUBMIT: buffer sizes 1..4096, else BAD_PARAMETERS", async () => {
    const { ta } = await boot(new FakeEnv());
    const cmd = frame(CC_BIG, u32(10));
    const big = new Uint8Array(4097);
    big.set(cmd);
    expect(await ta.invoke(session, 0, SUBMIT, params(new Uint8Array(0), new Uint8Array(64)))).toBe(R.BAD_PARAMETERS);
    expect(await ta.invoke(session, 0, SUBMIT, params(cmd, new Uint8Array(0)))).toBe(R.BAD_PARAMETERS);
    expect(await ta.invoke(session, 0, SUBMIT, params(big, new Uint8Array(64)))).toBe(R.BAD_PARAMETERS);
    expect(await ta.invoke(session, 0, SUBMIT, params(cmd, new Uint8Array(4097)))).toBe(R.BAD_PARAMETERS);
    expect(await ta.invoke(session, 0, SUBMIT, params(undefined, new Uint8Array(64)))).toBe(R.BAD_PARAMETERS);
    expect(await ta.invoke(session, 0, SUBMIT, params(big.subarray(0, 4096), new Uint8Array(4096)))).toBe(R.SUCCESS);
  });

  it("SUBMIT: the header's command length must fit the buffer; only that many bytes reach the TPM", async () => {
    const { ta } = await boot(new FakeEnv());
    const cmd = frame(CC_BIG, u32(12));
    new DataView(cmd.buffer).setUint32(2, cmd.length + 1);
    expect((await submit(ta, cmd)).result).toBe(R.BAD_PARAMETERS);
    const padded = new Uint8Array(100);
    padded.set(frame(CC_BIG, u32(12)));
    const r = await submit(ta, padded);
    expect(r.result).toBe(R.SUCCESS);
    expect(new DataView(r.rsp.buffer).getUint32(2)).toBe(12);
  });

  it("SUBMIT: a response longer than the buffer → SHORT_BUFFER with the part that fits; the size is never written back", async () => {
    const { ta } = await boot(new FakeEnv());
    const r = await submit(ta, frame(CC_BIG, u32(100)), 50);
    expect(r.result).toBe(R.SHORT_BUFFER);
    expect(new DataView(r.rsp.buffer).getUint32(2)).toBe(100);
    expect(r.p[1]!.size).toBe(50);
    const ok = await submit(ta, frame(CC_BIG, u32(100)), 100);
    expect(ok.result).toBe(R.SUCCESS);
    expect(ok.p[1]!.size).toBe(100);
  });

  it("EMULATE_PPI: NOT_SUPPORTED unless emulatePpi; then the same checks; other ids BAD_PARAMETERS", async () => {
    const { ta } = await boot(new FakeEnv());
    const c = frame(CC_BIG, u32(10));
    expect(await ta.invoke(session, 1, SUBMIT, params(c, new Uint8Array(64)))).toBe(R.NOT_SUPPORTED);
    expect(await ta.invoke(session, 1, 0, params(undefined, undefined))).toBe(R.NOT_SUPPORTED);
    expect(await ta.invoke(session, 2, SUBMIT, params(c, new Uint8Array(64)))).toBe(R.BAD_PARAMETERS);
    expect(await ta.invoke(session, 0x7fffffff, SUBMIT, params(c, new Uint8Array(64)))).toBe(R.BAD_PARAMETERS);
    const ppi = (await boot(new FakeEnv(), { emulatePpi: true })).ta;
    expect(await ppi.invoke(session, 1, 0, params(undefined, undefined))).toBe(R.BAD_PARAMETERS);
    expect(await ppi.invoke(session, 1, SUBMIT, params(new Uint8Array(0), new Uint8Array(64)))).toBe(R.BAD_PARAMETERS);
  });
});

describe("fTPM TA: emulated PPI (emulatePpi)", () => {
  const ppiCall = async (ta: TrustedApplication, words: number[], rspSize = 64) => {
    const c = new Uint8Array(words.length * 4);
    words.forEach((w, i) => new DataView(c.buffer).setUint32(i * 4, w));
    const rsp = new Uint8Array(rspSize);
    const p = params(c, rsp);
    const result = await ta.invoke(session, 1, SUBMIT, p);
    const dv = new DataView(rsp.buffer);
    const out = Array.from({ length: Math.floor(Math.min(p[1]!.size, rspSize) / 4) }, (_, i) => dv.getUint32(i * 4, true));
    return { result, size: p[1]!.size, out };
  };

  it("QUERY, VERSION, unknown functions, results little-endian with the size written back", async () => {
    const { ta } = await boot(new FakeEnv(), { emulatePpi: true });
    expect(await ppiCall(ta, [0])).toEqual({ result: R.SUCCESS, size: 4, out: [0x1ab] });
    expect(await ppiCall(ta, [1])).toEqual({ result: R.SUCCESS, size: 4, out: [0x00322e31] });
    expect(await ppiCall(ta, [2])).toEqual({ result: R.SUCCESS, size: 4, out: [2] });
    expect(await ppiCall(ta, [9])).toEqual({ result: R.SUCCESS, size: 0, out: [] });
    expect((await ppiCall(ta, [5])).out).toEqual([0, 0, 0]);
    expect(await ppiCall(ta, [8, 5])).toEqual({ result: R.SUCCESS, size: 4, out: [3] });
    expect(await ppiCall(ta, [8, 1])).toEqual({ result: R.SUCCESS, size: 4, out: [4] });
    expect(await ppiCall(ta, [8, 200])).toEqual({ result: R.SUCCESS, size: 4, out: [0] });
    // GET_PENDING_OP answers 2 words: a 4-byte buffer is too short
    expect((await ppiCall(ta, [3], 4)).result).toBe(R.SHORT_BUFFER);
  });

  it("a request under 4 bytes (or 1–3 bytes after the index) is dropped: SUCCESS, size = the buffer's", async () => {
    const { ta } = await boot(new FakeEnv(), { emulatePpi: true });
    const rsp = new Uint8Array(64);
    const p = params(Uint8Array.of(0, 0), rsp);
    expect(await ta.invoke(session, 1, SUBMIT, p)).toBe(R.SUCCESS);
    expect(p[1]!.size).toBe(64);
    const p2 = params(Uint8Array.of(0, 0, 0, 7, 0), rsp);
    expect(await ta.invoke(session, 1, SUBMIT, p2)).toBe(R.SUCCESS);
    expect(p2[1]!.size).toBe(64);
  });

  it("SUBMIT_OP_REQ2 keeps the operation pending in NV across instances; 17/18 and reserved ops not implemented", async () => {
    const env = new FakeEnv();
    const a = await boot(env, { emulatePpi: true });
    expect((await ppiCall(a.ta, [7, 17])).out).toEqual([1]);
    expect((await ppiCall(a.ta, [7, 23])).out).toEqual([1]);
    env.writes.length = 0;
    expect((await ppiCall(a.ta, [7, 5])).out).toEqual([0]);
    expect(env.writes).toEqual([hex(ftpmNvObjectId(0))]);
    expect((await ppiCall(a.ta, [3])).out).toEqual([0, 5]);
    const b = await boot(env, { emulatePpi: true });
    expect((await ppiCall(b.ta, [3])).out).toEqual([0, 5]);
  });

  it("TPM_CC_EmulatePPI through SUBMIT_COMMAND is answered by the TA (only with emulatePpi)", async () => {
    const { ta, engine } = await boot(new FakeEnv(), { emulatePpi: true });
    const r = await submit(ta, frame(0x200001ff, u32(1)));
    expect(r.result).toBe(R.SUCCESS);
    const dv = new DataView(r.rsp.buffer);
    expect([dv.getUint16(0), dv.getUint32(2), dv.getUint32(6), dv.getUint32(10, true)]).toEqual([0x8001, 14, 0, 0x00322e31]);
    expect(dv.getUint32(6)).toBe(0);
    const bad = await submit(ta, frame(0x200001ff, u32(99)));
    expect(new DataView(bad.rsp.buffer).getUint32(6)).toBe(0x101);
    const short = await submit(ta, frame(0x200001ff, u16(1)));
    expect(new DataView(short.rsp.buffer).getUint32(6)).toBe(0x195);
    const sess = frame(0x200001ff, u32(1));
    sess[1] = 2;
    expect(new DataView((await submit(ta, sess)).rsp.buffer).getUint32(6)).toBe(0x01e);
    // without emulatePpi the TPM gets it (the engine double answers TPM_RC_COMMAND_CODE)
    const plain = await boot(new FakeEnv());
    expect(new DataView((await submit(plain.ta, frame(0x200001ff, u32(1)))).rsp.buffer).getUint32(6)).toBe(0x143);
    expect(engine.startups).toEqual([0]);
  });
});

describe("fTPM TA: NV on secure storage", () => {
  it("first boot manufactures: admin + 512-byte blocks under storage PRIVATE, Startup(CLEAR), flag persisted", async () => {
    const env = new FakeEnv();
    const { engine } = await boot(env);
    expect(engine.manufactured).toBe(true);
    expect(engine.startups).toEqual([0]);
    expect([...env.objects.keys()].sort()).toEqual([0, 1, 2, 3].map((i) => key(i)).sort());
    for (const v of env.objects.values()) expect(v.length).toBe(512);
    const admin = new DataView(env.objects.get(key(0))!.buffer);
    expect(admin.getUint32(8, true)).toBe(STATE_SIZE);
    expect(admin.getUint32(12, true)).toBe(2);
    // block 1 holds blob bytes 0..511 (seeds at 1..32)
    expect(env.objects.get(key(1))![1]).toBe(10);
  });

  it("storage 'ree' / 'rpmb' pick TEE_STORAGE_PRIVATE_REE / _RPMB", async () => {
    const ree = new FakeEnv();
    await boot(ree, { storage: "ree" });
    expect([...ree.objects.keys()].every((k) => k.startsWith(`${TEE_STORAGE.PRIVATE_REE}:`))).toBe(true);
    const rpmb = new FakeEnv();
    await boot(rpmb, { storage: "rpmb" });
    expect([...rpmb.objects.keys()].every((k) => k.startsWith(`${TEE_STORAGE.PRIVATE_RPMB}:`))).toBe(true);
  });

  it("only the blocks that changed are rewritten, and before the response returns", async () => {
    const env = new FakeEnv();
    const { ta } = await boot(env);
    env.writes.length = 0;
    expect((await submit(ta, frame(CC_POKE, [...u32(600), 0x5a]))).result).toBe(R.SUCCESS);
    expect(env.writes).toEqual([hex(ftpmNvObjectId(2))]);
    expect(env.objects.get(key(2))![600 - 512]).toBe(0x5a);
    env.writes.length = 0;
    expect((await submit(ta, frame(CC_POKE, [...u32(600), 0x5a]))).result).toBe(R.SUCCESS);
    expect(env.writes).toEqual([]);
    expect((await submit(ta, frame(CC_BIG, u32(10)))).result).toBe(R.SUCCESS);
    expect(env.writes).toEqual([]);
  });

  it("second boot keeps NV and runs Startup(STATE) after Shutdown(STATE); without it STATE fails and CLEAR follows", async () => {
    const env = new FakeEnv();
    const a = await boot(env);
    await submit(a.ta, frame(CC_POKE, [...u32(1000), 0x77]));
    await submit(a.ta, frame(CC_SHUTDOWN, u16(1)));
    await a.ta.destroy!();
    const b = await boot(env);
    expect(b.engine.manufactured).toBe(false);
    expect(b.engine.blob![1000]).toBe(0x77);
    expect(b.engine.blob![1]).toBe(10);
    expect(b.engine.startups).toEqual([1]);
    // no orderly shutdown this time: Startup(STATE) fails, Startup(CLEAR) follows
    const c = await boot(env);
    expect(c.engine.startups).toEqual([1, 0]);
    expect(c.engine.blob![1000]).toBe(0x77);
  });

  it("Startup(CLEAR) only when the state-present flag is not set", async () => {
    const env = new FakeEnv();
    const a = await boot(env);
    await submit(a.ta, frame(CC_SHUTDOWN, u16(1)));
    const admin = env.objects.get(key(0))!;
    new DataView(admin.buffer).setUint32(12, 0, true);
    const b = await boot(env);
    expect(b.engine.manufactured).toBe(false);
    expect(b.engine.startups).toEqual([0]);
    expect(new DataView(env.objects.get(key(0))!.buffer).getUint32(12, true)).toBe(2);
  });

  it("a missing data object → manufacture (new state)", async () => {
    const env = new FakeEnv();
    const a = await boot(env);
    await submit(a.ta, frame(CC_POKE, [...u32(1000), 0x77]));
    env.objects.delete(key(2));
    const b = await boot(env);
    expect(b.engine.manufactured).toBe(true);
    expect(b.engine.blob![1000]).toBe(0);
  });

  for (const code of [R.STORAGE_NOT_AVAILABLE, R.CORRUPT_OBJECT, R.COMMUNICATION, R.SECURITY]) {
    it(`a storage error at create (0x${code.toString(16)}) panics BAD_STATE`, async () => {
      const env = new FakeEnv();
      await boot(env);
      env.failRead = code;
      const ta = createFtpmTa({ early: true, engine: (s) => new FakeEngine(s) }).instantiate();
      await expect(ta.create!(env)).rejects.toBeInstanceOf(TaPanicError);
      expect(env.panics).toEqual([R.BAD_STATE]);
    });
  }

  it("a failed write at first boot panics", async () => {
    const env = new FakeEnv();
    env.failWrite = R.STORAGE_NOT_AVAILABLE;
    const ta = createFtpmTa({ early: true, engine: (s) => new FakeEngine(s) }).instantiate();
    await expect(ta.create!(env)).rejects.toBeInstanceOf(TaPanicError);
    expect(env.panics).toEqual([R.BAD_STATE]);
  });

  it("a failed NV write after a command panics the TA instead of answering", async () => {
    const env = new FakeEnv();
    const { ta } = await boot(env);
    env.failWrite = R.STORAGE_NOT_AVAILABLE;
    await expect(submit(ta, frame(CC_POKE, [...u32(5), 1]))).rejects.toBeInstanceOf(TaPanicError);
    expect(env.panics).toEqual([R.BAD_STATE]);
  });
});
