import { describe, expect, it } from "vitest";
import { TeeError } from "../errors/index.js";
import { FakeClock } from "../core/clock.js";
import { TEE_ORIGIN, TEE_PARAM_TYPE as T, TEE_RESULT as R, TEE_STORAGE, teeParamTypes } from "../bus/tee/constants.js";
import { TaPanicError, type TaEnvironment, type TaParam, type TaSession, type TrustedApplication } from "../bus/tee/ta.js";
import { FTPM_TA_UUID, ftpmNvObjectId } from "../devices/optee/ftpm-ta.js";
import { ftpmTa } from "./ftpm.js";
import { authCmd, cmd, hex, nvPublic, pcrExtend, pcrRead, pcrReadDigests, rcOf, SHUTDOWN_STATE, t2b, u16, u32At } from "../softtpm/test-helpers.js";

class MapEnv implements TaEnvironment {
  readonly uuid = FTPM_TA_UUID;
  readonly clock = new FakeClock();
  readonly objects = new Map<string, Uint8Array>();
  failWrite: number | undefined;
  /** Each write completes only after a macrotask turn (a slow storage), so a save the TA does not wait for cannot finish before the answer. */
  slowWrites = false;
  readonly storage = {
    read: async (sid: number, id: Uint8Array) => {
      const d = this.objects.get(`${sid}:${hex(id)}`);
      if (!d) throw new TeeError("no object", R.ITEM_NOT_FOUND, TEE_ORIGIN.TEE);
      return d.slice();
    },
    write: async (sid: number, id: Uint8Array, data: Uint8Array) => {
      if (this.failWrite !== undefined) throw new TeeError("write", this.failWrite, TEE_ORIGIN.TEE);
      if (this.slowWrites) await new Promise((resolve) => setImmediate(resolve));
      this.objects.set(`${sid}:${hex(id)}`, data.slice());
    },
    remove: async (sid: number, id: Uint8Array) => {
      this.objects.delete(`${sid}:${hex(id)}`);
    },
  };
  random(size: number) {
    return new Uint8Array(size);
  }
  panic(code: number): never {
    throw new TaPanicError(this.uuid, code);
  }
  log() {}
}

const SUBMIT = teeParamTypes(T.MEMREF_TEMP_INPUT, T.MEMREF_TEMP_INOUT);
const session: TaSession = { id: 1, login: 0, context: undefined };

async function open(env: MapEnv, storage?: "ree" | "rpmb"): Promise<TrustedApplication> {
  const ta = ftpmTa({ seed: "ftpm-test", ...(storage ? { storage } : {}) }).instantiate();
  expect(await ta.create!(env)).toBe(R.SUCCESS);
  expect(await ta.openSession!(session, 0, [])).toBe(R.SUCCESS);
  return ta;
}

async function tpm(ta: TrustedApplication, command: Uint8Array): Promise<Uint8Array> {
  const rsp = new Uint8Array(4096);
  const none = { a: 0, b: 0, buffer: undefined, size: 0 };
  const p: TaParam[] = [{ a: 0, b: 0, buffer: command, size: command.length }, { a: 0, b: 0, buffer: rsp, size: rsp.length }, none, { ...none }];
  expect(await ta.invoke(session, 0, SUBMIT, p)).toBe(R.SUCCESS);
  return rsp.slice(0, u32At(rsp, 2));
}

const NV_INDEX = 0x01500010;
const OWNER = 0x40000001;
const nvDefine = (size: number) => authCmd(0x12a, [OWNER], [[]], [...t2b([]), ...nvPublic(NV_INDEX, 0x00060006, size)]);
const nvWrite = (data: number[]) => authCmd(0x137, [NV_INDEX, NV_INDEX], [[]], [...t2b(data), ...u16(0)]);
const nvRead = (size: number) => authCmd(0x14e, [NV_INDEX, NV_INDEX], [[]], [...u16(size), ...u16(0)]);

describe("ftpmTa: SoftTpm inside the fTPM TA", () => {
  it("is the fTPM TA, early by default", () => {
    const def = ftpmTa();
    expect(def.uuid).toBe(FTPM_TA_UUID);
    expect(def.early).toBe(true);
    expect(ftpmTa({ early: false }).early).toBe(false);
  });

  it("GetRandom and PCR extend/read through SUBMIT_COMMAND", async () => {
    const env = new MapEnv();
    const ta = await open(env);
    const r = await tpm(ta, cmd(0x8001, 0x17b, u16(16)));
    expect(rcOf(r)).toBe(0);
    expect((r[10]! << 8) | r[11]!).toBe(16);
    const digest = new Array(32).fill(0xab);
    expect(rcOf(await tpm(ta, pcrExtend(16, [[0x000b, digest]])))).toBe(0);
    const read = await tpm(ta, pcrRead([[0x000b, 1 << 16]]));
    expect(rcOf(read)).toBe(0);
    // PCR16 = SHA256(zeros || digest) — not zero any more
    expect(pcrReadDigests(read)[0]!.some((b) => b !== 0)).toBe(true);
  });

  it("an NV write lands in the TA's objects before the response returns, and survives a new instance", async () => {
    const env = new MapEnv();
    const ta = await open(env, "ree");
    expect(rcOf(await tpm(ta, nvDefine(8)))).toBe(0);
    env.slowWrites = true;
    const snapshot = new Map([...env.objects].map(([k, v]) => [k, hex(v)]));
    expect(rcOf(await tpm(ta, nvWrite([1, 2, 3, 4, 5, 6, 7, 8])))).toBe(0);
    // no flush, no destroy: the answered write is already on the TA's storage
    const changed = [...env.objects].filter(([k, v]) => snapshot.get(k) !== hex(v)).map(([k]) => k);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.every((k) => k.startsWith(`${TEE_STORAGE.PRIVATE_REE}:`))).toBe(true);
    for (const v of env.objects.values()) expect(v.length).toBe(512);
    const ta2 = await open(env, "ree"); // a respawn: old instance dropped without destroy
    const r = await tpm(ta2, nvRead(8));
    expect(rcOf(r)).toBe(0);
    expect([...r.subarray(16, 24)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("PCRs survive Shutdown(STATE) → new instance (Startup(STATE)); the seeds stay", async () => {
    const env = new MapEnv();
    const ta = await open(env);
    await tpm(ta, pcrExtend(0, [[0x000b, new Array(32).fill(1)]]));
    const before = pcrReadDigests(await tpm(ta, pcrRead([[0x000b, 1]])))[0]!;
    expect(rcOf(await tpm(ta, SHUTDOWN_STATE))).toBe(0);
    await ta.destroy!();
    const ta2 = await open(env);
    expect(hex(pcrReadDigests(await tpm(ta2, pcrRead([[0x000b, 1]])))[0]!)).toBe(hex(before));
    // without an orderly shutdown the next instance falls back to Startup(CLEAR): PCR 0 reset
    const ta3 = await open(env);
    expect(pcrReadDigests(await tpm(ta3, pcrRead([[0x000b, 1]])))[0]!.every((b) => b === 0)).toBe(true);
  });

  it("the admin object 0x54504D00 records the blob length and the state flag", async () => {
    const env = new MapEnv();
    await open(env);
    const admin = env.objects.get(`${TEE_STORAGE.PRIVATE}:${hex(ftpmNvObjectId(0))}`)!;
    const dv = new DataView(admin.buffer);
    const length = dv.getUint32(8, true);
    expect(dv.getUint32(12, true)).toBe(2);
    expect(env.objects.size).toBe(1 + Math.ceil(length / 512));
  });

  it("a failed NV write after a command panics the TA", async () => {
    const env = new MapEnv();
    const ta = await open(env);
    env.failWrite = R.STORAGE_NOT_AVAILABLE;
    const rsp = new Uint8Array(4096);
    const c = nvDefine(8);
    const none = { a: 0, b: 0, buffer: undefined, size: 0 };
    await expect(
      ta.invoke(session, 0, SUBMIT, [{ a: 0, b: 0, buffer: c, size: c.length }, { a: 0, b: 0, buffer: rsp, size: 4096 }, none, { ...none }]),
    ).rejects.toBeInstanceOf(TaPanicError);
  });
});
