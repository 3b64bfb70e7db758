import { describe, expect, it } from "vitest";
import { FakeClock } from "../../core/clock.js";
import { TeeError } from "../../errors/index.js";
import { OPTEE_RPC_CMD, TEE_ORIGIN, TEE_PARAM_TYPE, TEE_RESULT, TEE_STORAGE } from "../../bus/tee/constants.js";
import type { TaEnvironment } from "../../bus/tee/ta.js";
import type { SecureStorageBackend } from "./secure-storage.js";
import { OpTee } from "./optee.js";
import { reeFsFileName } from "./ree-fs-backend.js";
import { RpmbDevice } from "./rpmb-device.js";
import { FakeSupplicant, UUID_A, UUID_B, fakeTa, rejection, settle } from "./test-helpers.js";

const { TEE, TRUSTED_APP } = TEE_ORIGIN;
const OBJ = new Uint8Array([0x54, 0x50, 0x4d, 0x00]);

function expectCode(e: TeeError, code: number, origin: number): void {
  expect({ code: e.teeCode.toString(16), origin: e.origin }).toEqual({ code: code.toString(16), origin });
}

/**
 * A TA whose commands use secure storage: 10 write (value a = storage id, memref 1 = data),
 * 11 read (into memref 1, size written), 12 remove. A storage TeeError is returned as the TA's
 * result, so the test sees the code the core let through (origin TRUSTED_APP).
 */
function storageTa(uuid = UUID_A) {
  let env: TaEnvironment | undefined;
  const ta = fakeTa({
    uuid,
    impl: () => ({
      create: (e) => {
        env = e;
      },
      invoke: async (_s, cmd, _t, params) => {
        const id = params[0]!.a;
        try {
          if (cmd === 10) await env!.storage.write(id, OBJ, params[1]!.buffer!.slice(0, params[1]!.size));
          else if (cmd === 11) {
            const d = await env!.storage.read(id, OBJ);
            params[1]!.buffer!.set(d);
            params[1]!.size = d.length;
          } else if (cmd === 12) await env!.storage.remove(id, OBJ);
          return 0;
        } catch (e) {
          if (e instanceof TeeError) return e.teeCode;
          throw e;
        }
      },
    }),
  });
  return ta;
}

async function rig(options: { huk?: Uint8Array; reeFs?: boolean; storageBackends?: SecureStorageBackend[]; supplicant?: boolean; uuid?: string } = {}) {
  const ta = storageTa(options.uuid);
  const tee = new OpTee({ tas: [ta], huk: options.huk, reeFs: options.reeFs, storageBackends: options.storageBackends, clock: new FakeClock() });
  const supp = new FakeSupplicant(tee);
  if (options.supplicant !== false) supp.start();
  const s = await (await tee.openContext({ client: "kernel" })).openSession(options.uuid ?? UUID_A);
  const write = (data: number[], id: number = TEE_STORAGE.PRIVATE) => s.invoke(10, { params: [{ type: TEE_PARAM_TYPE.VALUE_INPUT, a: id }, { type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, buffer: Uint8Array.from(data) }] });
  const read = async (id: number = TEE_STORAGE.PRIVATE) => {
    const out = { type: TEE_PARAM_TYPE.MEMREF_TEMP_OUTPUT, buffer: new Uint8Array(64), size: 64 };
    await s.invoke(11, { params: [{ type: TEE_PARAM_TYPE.VALUE_INPUT, a: id }, out] });
    return [...out.buffer.subarray(0, out.size)];
  };
  return { tee, supp, s, write, read, ta };
}

describe("OpTee secure storage: REE FS", () => {
  it("objects round-trip as files named <uuid>.<hex id>, each FS RPC after an APPL SHM_ALLOC", async () => {
    const { supp, write, read } = await rig();
    await write([1, 2, 3]);
    const name = reeFsFileName(UUID_A, OBJ);
    expect(name).toBe(`${UUID_A}.54504d00`);
    expect(supp.store.files.has(name)).toBe(true);
    const fsIdx = supp.log.findIndex((r) => r.cmd === OPTEE_RPC_CMD.FS);
    expect(supp.log[fsIdx - 1]!.cmd).toBe(OPTEE_RPC_CMD.SHM_ALLOC);
    expect(await read()).toEqual([1, 2, 3]);
    // Not encrypted: the data is readable in the file.
    expect([...supp.store.files.get(name)!.subarray(12, 15)]).toEqual([1, 2, 3]);
  });

  it("a changed byte, another HUK or another TA's file read as CORRUPT_OBJECT (allowed: no panic)", async () => {
    const a = await rig();
    await a.write([5, 6, 7]);
    const name = reeFsFileName(UUID_A, OBJ);
    const file = a.supp.store.files.get(name)!;
    file[13]! ^= 1;
    expectCode(await rejection(a.read()), TEE_RESULT.CORRUPT_OBJECT, TRUSTED_APP);
    file[13]! ^= 1;
    expect(await a.read()).toEqual([5, 6, 7]);

    const b = await rig({ huk: new Uint8Array(16).fill(7) });
    await b.supp.store.write(name, file);
    expectCode(await rejection(b.read()), TEE_RESULT.CORRUPT_OBJECT, TRUSTED_APP);

    const c = await rig({ uuid: UUID_B });
    await c.supp.store.write(reeFsFileName(UUID_B, OBJ), file);
    expectCode(await rejection(c.read()), TEE_RESULT.CORRUPT_OBJECT, TRUSTED_APP);
    await c.supp.store.write(reeFsFileName(UUID_B, OBJ), file.subarray(0, 20));
    expectCode(await rejection(c.read()), TEE_RESULT.CORRUPT_OBJECT, TRUSTED_APP);
  });

  it("GP rollback level 0: an older copy of the file put back is accepted", async () => {
    const { supp, write, read } = await rig();
    await write([1]);
    const old = supp.store.files.get(reeFsFileName(UUID_A, OBJ))!.slice();
    await write([2]);
    await supp.store.write(reeFsFileName(UUID_A, OBJ), old);
    expect(await read()).toEqual([1]);
  });

  it("a missing object is ITEM_NOT_FOUND; remove works and then reports ITEM_NOT_FOUND", async () => {
    const { write, read, s } = await rig();
    expectCode(await rejection(read()), TEE_RESULT.ITEM_NOT_FOUND, TRUSTED_APP);
    await write([1]);
    await s.invoke(12, { params: [{ type: TEE_PARAM_TYPE.VALUE_INPUT, a: TEE_STORAGE.PRIVATE }] });
    expectCode(await rejection(s.invoke(12, { params: [{ type: TEE_PARAM_TYPE.VALUE_INPUT, a: TEE_STORAGE.PRIVATE }] })), TEE_RESULT.ITEM_NOT_FOUND, TRUSTED_APP);
  });

  it("no supplicant (kernel client): a read fails OUT_OF_MEMORY (allowed), a write's OUT_OF_MEMORY panics the TA", async () => {
    const { write, read } = await rig({ supplicant: false });
    expectCode(await rejection(read()), TEE_RESULT.OUT_OF_MEMORY, TRUSTED_APP);
    expectCode(await rejection(write([1])), TEE_RESULT.TARGET_DEAD, TEE);
  });

  it("the supplicant going away mid-request: COMMUNICATION, outside the read list → panic, TARGET_DEAD", async () => {
    const { supp, read, s } = await rig();
    supp.hang = OPTEE_RPC_CMD.FS;
    const r = rejection(read());
    await settle();
    supp.stop();
    expectCode(await r, TEE_RESULT.TARGET_DEAD, TEE);
    expectCode(await rejection(s.invoke(0)), TEE_RESULT.TARGET_DEAD, TEE);
  });

  it("a storage id with no back end is ITEM_NOT_FOUND (tee_svc_storage.c: no file operations)", async () => {
    const { read } = await rig();
    expectCode(await rejection(read(TEE_STORAGE.PRIVATE_RPMB)), TEE_RESULT.ITEM_NOT_FOUND, TRUSTED_APP);
  });

  it("with reeFs off, PRIVATE goes to the RPMB back end (an injected one here); its SECURITY on write panics", async () => {
    const calls: string[] = [];
    const fake: SecureStorageBackend = {
      storageId: TEE_STORAGE.PRIVATE_RPMB,
      async read() {
        calls.push("read");
        return new Uint8Array([42]);
      },
      async write() {
        calls.push("write");
        throw new TeeError("wrong key", TEE_RESULT.SECURITY, TEE);
      },
      async remove() {},
    };
    const { read, write } = await rig({ reeFs: false, storageBackends: [fake] });
    expect(await read()).toEqual([42]);
    expectCode(await rejection(write([1])), TEE_RESULT.TARGET_DEAD, TEE);
    expect(calls).toEqual(["read", "write"]);
  });
});

describe("OpTee secure storage: RPMB FS wiring", () => {
  const cid = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

  for (const routing of ["supplicant", "kernel"] as const) {
    it(`rpmbFs with the key written (CFG_RPMB_WRITE_KEY), frames via ${routing}: an object round-trips`, async () => {
      const rpmb = new RpmbDevice({ cid });
      const ta = storageTa();
      const tee = new OpTee({ tas: [ta], reeFs: false, rpmbFs: true, rpmb, rpmbRouting: routing, rpmbWriteKey: true });
      const supp = new FakeSupplicant(tee);
      if (routing === "supplicant") supp.start();
      const s = await (await tee.openContext({ client: "kernel" })).openSession(UUID_A);
      await s.invoke(10, { params: [{ type: TEE_PARAM_TYPE.VALUE_INPUT, a: TEE_STORAGE.PRIVATE }, { type: TEE_PARAM_TYPE.MEMREF_TEMP_INPUT, buffer: new Uint8Array([9, 9]) }] });
      const out = { type: TEE_PARAM_TYPE.MEMREF_TEMP_OUTPUT, buffer: new Uint8Array(8), size: 8 };
      await s.invoke(11, { params: [{ type: TEE_PARAM_TYPE.VALUE_INPUT, a: TEE_STORAGE.PRIVATE }, out] });
      expect([...out.buffer.subarray(0, out.size)]).toEqual([9, 9]);
      expect(supp.log.some((r) => r.cmd === OPTEE_RPC_CMD.RPMB)).toBe(routing === "supplicant");
    });
  }
});
