import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { describe, expect, it } from "vitest";
import { FakeClock } from "../../core/clock.js";
import { MemoryFileStore, type FileStore } from "../../core/storage.js";
import { TEE_ORIGIN, TEE_RESULT } from "../../bus/tee/constants.js";
import type { TeeRpcRequest, TeeRpcServer, TeeSupplicantPort } from "../../bus/tee/rpc.js";
import type { RpmbTarget } from "../../bus/tee/rpmb.js";
import type { TaDefinition, TrustedApplication } from "../../bus/tee/ta.js";
import { TeeError, TpmArgumentError, TpmStateError } from "../../errors/index.js";
import { SUPPLICANT_TRACE_CHANNEL, Supplicant, type SupplicantStateEvent } from "./supplicant.js";

const R = TEE_RESULT;

/** A hand-written port: one server at a time (BUSY otherwise), attach/detach recorded. */
class FakePort implements TeeSupplicantPort {
  server: TeeRpcServer | undefined;
  log: string[] = [];
  constructor(
    readonly reeTas: readonly TaDefinition[] = [],
    readonly rpmb: RpmbTarget | undefined = undefined,
  ) {}
  attach(server: TeeRpcServer): () => void {
    if (this.server) throw new TeeError("teepriv busy", R.BUSY, TEE_ORIGIN.COMMS);
    this.server = server;
    this.log.push("attach");
    return () => {
      this.log.push("detach");
      if (this.server === server) this.server = undefined;
    };
  }
}

function ta(uuid: string, name = "ta"): TaDefinition {
  return { uuid, name, flags: 0, early: false, instantiate: () => ({}) as TrustedApplication };
}

async function running(options: ConstructorParameters<typeof Supplicant>[0] = {}, port = new FakePort()) {
  const s = new Supplicant(options);
  s.bind(port);
  await s.start();
  return { s, port };
}

/** A 512-byte RPMB request frame of message type `type`. */
function frame(type: number): Uint8Array {
  const f = new Uint8Array(512);
  f[510] = type >> 8;
  f[511] = type & 0xff;
  return f;
}
function frames(...types: number[]): Uint8Array {
  const out = new Uint8Array(512 * types.length);
  types.forEach((t, i) => out.set(frame(t), i * 512));
  return out;
}

class FakeRpmb implements RpmbTarget {
  calls: { frames: Uint8Array; responseFrames: number }[] = [];
  fail = false;
  constructor(readonly cid = new Uint8Array(16).fill(7)) {}
  transfer(frames: Uint8Array, responseFrames: number): Uint8Array {
    this.calls.push({ frames, responseFrames });
    if (this.fail) throw new Error("ioctl MMC_IOC_MULTI_CMD: EIO");
    const out = new Uint8Array(512 * responseFrames);
    out[511] = 0x42;
    return out;
  }
}

describe("Supplicant lifecycle", () => {
  it("start() before bind() rejects with a TpmStateError and stays stopped", async () => {
    const s = new Supplicant();
    await expect(s.start()).rejects.toBeInstanceOf(TpmStateError);
    expect(s.state).toBe("stopped");
  });

  it("start attaches, stop detaches, restart does both; states and events follow", async () => {
    const port = new FakePort();
    const s = new Supplicant();
    const events: SupplicantStateEvent[] = [];
    s.onState((e) => events.push(e));
    s.bind(port);
    expect(s.state).toBe("stopped");
    await s.start();
    expect(s.state).toBe("running");
    expect(port.server).toBe(s);
    await s.start(); // idempotent
    await s.stop();
    expect(s.state).toBe("stopped");
    expect(port.server).toBeUndefined();
    await s.restart();
    expect(s.state).toBe("running");
    expect(port.log).toEqual(["attach", "detach", "attach"]);
    expect(events.map((e) => `${e.from}>${e.to}`)).toEqual(["stopped>running", "running>stopped", "stopped>running"]);
  });

  it("a second supplicant on the same port: start() rejects with the port's TeeError BUSY, state unchanged", async () => {
    const { port } = await running();
    const b = new Supplicant({ name: "second" });
    b.bind(port);
    const err = await b.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TeeError);
    expect((err as TeeError).teeCode).toBe(R.BUSY);
    expect(b.state).toBe("stopped");
  });

  it("crash() detaches at once and reads crashed; restart() brings it back", async () => {
    const { s, port } = await running();
    s.crash();
    expect(s.state).toBe("crashed");
    expect(port.log).toEqual(["attach", "detach"]);
    expect((await s.handle({ cmd: 0, uuid: "x" })).result).toBe(R.COMMUNICATION);
    await s.restart();
    expect(s.state).toBe("running");
    expect(port.log).toEqual(["attach", "detach", "attach"]);
  });

  it("answers COMMUNICATION while stopped, and counts the refusals", async () => {
    const s = new Supplicant();
    expect(await s.handle({ cmd: 2, op: "list", name: "" })).toEqual({ result: R.COMMUNICATION });
    expect(s.refused).toBe(1);
    expect(s.served.size).toBe(0);
  });

  it("requests the port hands over inside attach() are served (the supplicant is running by then)", async () => {
    const results: Promise<number>[] = [];
    const port = new FakePort([ta("11111111-2222-3333-4444-555555555555")]);
    const attach = port.attach.bind(port);
    port.attach = (server) => {
      const d = attach(server);
      results.push(server.handle({ cmd: 0, uuid: "11111111-2222-3333-4444-555555555555" }).then((r) => r.result));
      return d;
    };
    const s = new Supplicant();
    s.bind(port);
    await s.start();
    expect(await Promise.all(results)).toEqual([R.SUCCESS]);
  });

  it("bind() to another port while running is a TpmStateError", async () => {
    const { s } = await running();
    expect(() => s.bind(new FakePort())).toThrow(TpmStateError);
  });
});

describe("Supplicant in-flight requests", () => {
  it("stop() answers COMMUNICATION to requests still waiting (delayMs) and detaches after them", async () => {
    const clock = new FakeClock();
    const { s, port } = await running({ clock, faults: { delayMs: 1000 } });
    const p = s.handle({ cmd: 2, op: "write", name: "f", data: new Uint8Array([1]) });
    await Promise.resolve();
    await s.stop();
    expect((await p).result).toBe(R.COMMUNICATION);
    expect(await s.storage.read("f")).toBeUndefined(); // not performed
    expect(port.log).toEqual(["attach", "detach"]);
  });

  it("stop() lets a request that is touching storage finish with its real answer, before detaching", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const inner = new MemoryFileStore();
    const slow: FileStore = { ...bindStore(inner), write: async (n, d) => { await gate; await inner.write(n, d); } };
    const { s, port } = await running({ storage: slow });
    const p = s.handle({ cmd: 2, op: "write", name: "f", data: new Uint8Array([9]) });
    await Promise.resolve();
    const stopped = s.stop();
    expect(s.state).toBe("stopped");
    expect(port.log).toEqual(["attach"]); // not detached while the write runs
    release();
    await stopped;
    expect((await p).result).toBe(R.SUCCESS);
    expect(inner.files.get("f")).toEqual(new Uint8Array([9]));
    expect(port.log).toEqual(["attach", "detach"]);
  });

  it("start() during a stop that still waits for storage waits for the detach (no BUSY from the port)", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const inner = new MemoryFileStore();
    const slow: FileStore = { ...bindStore(inner), write: async (n, d) => { await gate; await inner.write(n, d); } };
    const { s, port } = await running({ storage: slow });
    const p = s.handle({ cmd: 2, op: "write", name: "f", data: new Uint8Array([9]) });
    await Promise.resolve();
    const stop1 = s.stop();
    const stop2 = s.stop();
    const started = s.start();
    release();
    await Promise.all([stop1, stop2, started]);
    expect((await p).result).toBe(R.SUCCESS);
    expect(s.state).toBe("running");
    expect(port.log).toEqual(["attach", "detach", "attach"]);
  });

  it("crash() with a delayed request in flight: the request never performs, and its late reply is COMMUNICATION", async () => {
    const clock = new FakeClock();
    const { s } = await running({ clock, faults: { delayMs: 50 } });
    const p = s.handle({ cmd: 2, op: "write", name: "f", data: new Uint8Array([1]) });
    s.crash();
    await clock.advance(100);
    expect((await p).result).toBe(R.COMMUNICATION);
    expect(await s.storage.read("f")).toBeUndefined();
  });

  it("delayMs answers after the delay on the injected clock, not before", async () => {
    const clock = new FakeClock();
    const { s } = await running({ clock, faults: { delayMs: 200 } });
    let done = false;
    const p = s.handle({ cmd: 6, size: 64 }).then((r) => ((done = true), r));
    await clock.advance(199);
    expect(done).toBe(false);
    await clock.advance(1);
    expect((await p).result).toBe(R.SUCCESS);
  });

  it("the caller's signal aborting a delayed request answers COMMUNICATION", async () => {
    const clock = new FakeClock();
    const { s } = await running({ clock, faults: { delayMs: 200 } });
    const ac = new AbortController();
    const p = s.handle({ cmd: 6, size: 64 }, ac.signal);
    ac.abort();
    expect((await p).result).toBe(R.COMMUNICATION);
    expect((await s.handle({ cmd: 6, size: 1 }, ac.signal)).result).toBe(R.COMMUNICATION);
  });
});

describe("Supplicant LOAD_TA (OPTEE_RPC_CMD_LOAD_TA = 0)", () => {
  const reeUuid = "bc50d971-d4c9-42c4-82cb-343fb7f37896";
  const extraUuid = "8aaaf200-2450-11e4-abe2-0002a5d5c51b";

  it("finds the port's REE TAs and its own TA directory entries by UUID (case-insensitive)", async () => {
    const reeTa = ta(reeUuid, "fTPM");
    const extra = ta(extraUuid, "extra");
    const { s } = await running({ tas: [extra] }, new FakePort([reeTa]));
    expect(await s.handle({ cmd: 0, uuid: reeUuid })).toEqual({ result: R.SUCCESS, ta: reeTa });
    expect(await s.handle({ cmd: 0, uuid: extraUuid.toUpperCase() })).toEqual({ result: R.SUCCESS, ta: extra });
    expect(s.served.get(0)).toBe(2);
  });

  it("a UUID with no .ta file → ITEM_NOT_FOUND (tee_supplicant.c load_ta: 'TA not found')", async () => {
    const { s } = await running({}, new FakePort([ta(reeUuid)]));
    expect(await s.handle({ cmd: 0, uuid: "00000000-0000-0000-0000-000000000001" })).toEqual({ result: R.ITEM_NOT_FOUND });
  });

  it("a non-string UUID → BAD_PARAMETERS", async () => {
    const { s } = await running();
    expect((await s.handle({ cmd: 0, uuid: 5 } as unknown as TeeRpcRequest)).result).toBe(R.BAD_PARAMETERS);
  });
});

function bindStore(s: FileStore): FileStore {
  return { read: (n) => s.read(n), write: (n, d) => s.write(n, d), remove: (n) => s.remove(n), rename: (a, b) => s.rename(a, b), list: () => s.list() };
}

describe("Supplicant FS (OPTEE_RPC_CMD_FS = 2)", () => {
  it("write, read, list, rename, remove on the FileStore", async () => {
    const storage = new MemoryFileStore();
    const { s } = await running({ storage });
    expect((await s.handle({ cmd: 2, op: "write", name: "dirf.db", data: new Uint8Array([1, 2, 3]) })).result).toBe(R.SUCCESS);
    expect(await s.handle({ cmd: 2, op: "read", name: "dirf.db" })).toEqual({ result: R.SUCCESS, data: new Uint8Array([1, 2, 3]) });
    expect(await s.handle({ cmd: 2, op: "list", name: "" })).toEqual({ result: R.SUCCESS, names: ["dirf.db"] });
    expect((await s.handle({ cmd: 2, op: "rename", name: "dirf.db", newName: "0" })).result).toBe(R.SUCCESS);
    expect([...storage.files.keys()]).toEqual(["0"]);
    expect((await s.handle({ cmd: 2, op: "remove", name: "0" })).result).toBe(R.SUCCESS);
    expect(storage.files.size).toBe(0);
    expect(s.served.get(2)).toBe(5);
  });

  it("read, remove or rename of a missing file → ITEM_NOT_FOUND (ENOENT in tee_supp_fs.c)", async () => {
    const { s } = await running();
    expect(await s.handle({ cmd: 2, op: "read", name: "nope" })).toEqual({ result: R.ITEM_NOT_FOUND });
    expect(await s.handle({ cmd: 2, op: "remove", name: "nope" })).toEqual({ result: R.ITEM_NOT_FOUND });
    expect(await s.handle({ cmd: 2, op: "rename", name: "nope", newName: "x" })).toEqual({ result: R.ITEM_NOT_FOUND });
  });

  it("bad parameters: empty name, write without data, rename without newName, unknown op → BAD_PARAMETERS", async () => {
    const { s } = await running();
    expect((await s.handle({ cmd: 2, op: "read", name: "" })).result).toBe(R.BAD_PARAMETERS);
    expect((await s.handle({ cmd: 2, op: "write", name: "a" })).result).toBe(R.BAD_PARAMETERS);
    await s.handle({ cmd: 2, op: "write", name: "a", data: new Uint8Array(1) });
    expect((await s.handle({ cmd: 2, op: "rename", name: "a" })).result).toBe(R.BAD_PARAMETERS);
    expect((await s.handle({ cmd: 2, op: "truncate", name: "a" } as unknown as TeeRpcRequest)).result).toBe(R.BAD_PARAMETERS);
  });

  it("a store that throws maps as errno_to_teec: ENOSPC → STORAGE_NO_SPACE, ENOENT → ITEM_NOT_FOUND, bad name → BAD_PARAMETERS, else GENERIC", async () => {
    let thrown: unknown;
    const storage: FileStore = { ...bindStore(new MemoryFileStore()), write: async () => { throw thrown; } };
    const { s } = await running({ storage });
    const w = async () => (await s.handle({ cmd: 2, op: "write", name: "a", data: new Uint8Array(1) })).result;
    thrown = new Error("wrapped", { cause: Object.assign(new Error("no space"), { code: "ENOSPC" }) });
    expect(await w()).toBe(R.STORAGE_NO_SPACE);
    thrown = Object.assign(new Error("gone"), { code: "ENOENT" });
    expect(await w()).toBe(R.ITEM_NOT_FOUND);
    thrown = new TpmArgumentError("bad name");
    expect(await w()).toBe(R.BAD_PARAMETERS);
    thrown = Object.assign(new Error("io"), { code: "EIO" });
    expect(await w()).toBe(R.GENERIC);
    thrown = "not even an error";
    expect(await w()).toBe(R.GENERIC);
  });
});

describe("Supplicant RPMB (OPTEE_RPC_CMD_RPMB = 1, legacy routing)", () => {
  it("forwards the frames to the port's RPMB device and returns its response frames", async () => {
    const rpmb = new FakeRpmb();
    const { s } = await running({}, new FakePort([], rpmb));
    const reply = await s.handle({ cmd: 1, devId: 0, frames: frames(0x0003, 0x0003), responseFrames: 1 });
    expect(reply.result).toBe(R.SUCCESS);
    expect(reply.data?.length).toBe(512);
    expect(reply.data?.[511]).toBe(0x42);
    expect(rpmb.calls).toHaveLength(1);
    expect(rpmb.calls[0]!.frames.length).toBe(1024);
    expect(s.served.get(1)).toBe(1);
  });

  it("the rpmb option overrides the port's device", async () => {
    const mine = new FakeRpmb();
    const portRpmb = new FakeRpmb();
    const { s } = await running({ rpmb: mine }, new FakePort([], portRpmb));
    expect((await s.handle({ cmd: 1, devId: 0, frames: frames(0x0004), responseFrames: 2 })).result).toBe(R.SUCCESS);
    expect(mine.calls).toHaveLength(1);
    expect(portRpmb.calls).toHaveLength(0);
  });

  it("no RPMB device → BAD_PARAMETERS (rpmb.c: mmc_rpmb_fd() < 0)", async () => {
    const { s } = await running();
    expect(await s.handle({ cmd: 1, devId: 0, frames: frames(0x0002), responseFrames: 1 })).toEqual({ result: R.BAD_PARAMETERS });
  });

  it("rpmbCid naming another device → ITEM_NOT_FOUND (remap_rpmb_dev_id); the right CID is served", async () => {
    const rpmb = new FakeRpmb(new Uint8Array(16).fill(7));
    const a = await running({ rpmbCid: new Uint8Array(16).fill(1) }, new FakePort([], rpmb));
    expect((await a.s.handle({ cmd: 1, devId: 0, frames: frames(0x0002), responseFrames: 1 })).result).toBe(R.ITEM_NOT_FOUND);
    const b = await running({ rpmbCid: new Uint8Array(16).fill(7) }, new FakePort([], rpmb));
    expect((await b.s.handle({ cmd: 1, devId: 0, frames: frames(0x0002), responseFrames: 1 })).result).toBe(R.SUCCESS);
    expect(() => new Supplicant({ rpmbCid: new Uint8Array(3) })).toThrow(TpmArgumentError);
  });

  it("frame checks of rpmb_data_req: mixed types, wrong frame counts → BAD_PARAMETERS; unknown type → GENERIC", async () => {
    const rpmb = new FakeRpmb();
    const { s } = await running({}, new FakePort([], rpmb));
    const q = async (f: Uint8Array, responseFrames: number) => (await s.handle({ cmd: 1, devId: 0, frames: f, responseFrames })).result;
    expect(await q(frames(0x0003, 0x0004), 1)).toBe(R.BAD_PARAMETERS); // mixed types
    expect(await q(frames(0x0001), 2)).toBe(R.BAD_PARAMETERS); // key program: one response frame
    expect(await q(frames(0x0003), 2)).toBe(R.BAD_PARAMETERS); // data write: one response frame
    expect(await q(frames(0x0002, 0x0002), 1)).toBe(R.BAD_PARAMETERS); // counter read: one request frame
    expect(await q(frames(0x0002), 2)).toBe(R.BAD_PARAMETERS); // counter read: one response frame
    expect(await q(frames(0x0004, 0x0004), 1)).toBe(R.BAD_PARAMETERS); // data read: one request frame
    expect(await q(frames(0x0005), 1)).toBe(R.GENERIC); // result read is not a request the host sends alone
    expect(await q(new Uint8Array(511), 1)).toBe(R.BAD_PARAMETERS); // not whole frames
    expect(await q(new Uint8Array(0), 1)).toBe(R.BAD_PARAMETERS);
    expect(await q(frames(0x0004), 0)).toBe(R.BAD_PARAMETERS);
    expect(await q(frames(0x0004), 1.5)).toBe(R.BAD_PARAMETERS);
    expect(rpmb.calls).toHaveLength(0);
  });

  it("a failing transfer (the ioctl) or a wrong-sized answer → GENERIC", async () => {
    const rpmb = new FakeRpmb();
    const { s } = await running({ rpmb });
    rpmb.fail = true;
    expect((await s.handle({ cmd: 1, devId: 0, frames: frames(0x0002), responseFrames: 1 })).result).toBe(R.GENERIC);
    rpmb.fail = false;
    rpmb.transfer = () => new Uint8Array(100);
    expect((await s.handle({ cmd: 1, devId: 0, frames: frames(0x0002), responseFrames: 1 })).result).toBe(R.GENERIC);
  });
});

describe("Supplicant SHM_ALLOC / SHM_FREE (6 / 7) and other commands", () => {
  it("allocates distinct ids, frees them; an unknown id → BAD_PARAMETERS (process_free)", async () => {
    const { s } = await running();
    const a = await s.handle({ cmd: 6, size: 4096 });
    const b = await s.handle({ cmd: 6, size: 0 });
    expect(a.result).toBe(R.SUCCESS);
    expect(b.result).toBe(R.SUCCESS);
    expect(a.id).not.toBe(b.id);
    expect(s.shmAllocated).toBe(2);
    expect(await s.handle({ cmd: 7, id: a.id! })).toEqual({ result: R.SUCCESS });
    expect(await s.handle({ cmd: 7, id: a.id! })).toEqual({ result: R.BAD_PARAMETERS });
    expect(await s.handle({ cmd: 7, id: 999 })).toEqual({ result: R.BAD_PARAMETERS });
    expect((await s.handle({ cmd: 6, size: -1 })).result).toBe(R.BAD_PARAMETERS);
    expect((await s.handle({ cmd: 6, size: 2 ** 32 })).result).toBe(R.BAD_PARAMETERS);
    expect(s.served.get(6)).toBe(4);
    expect(s.served.get(7)).toBe(3);
  });

  it("allocations do not survive a restart (the process that held them exited)", async () => {
    const { s } = await running();
    const a = await s.handle({ cmd: 6, size: 16 });
    await s.restart();
    expect(s.shmAllocated).toBe(0);
    expect((await s.handle({ cmd: 7, id: a.id! })).result).toBe(R.BAD_PARAMETERS);
  });

  it("any other command (GET_TIME 3, SOCKET 10, 99) → NOT_SUPPORTED", async () => {
    const { s } = await running();
    for (const cmd of [3, 10, 99]) {
      expect(await s.handle({ cmd } as unknown as TeeRpcRequest)).toEqual({ result: R.NOT_SUPPORTED });
    }
    expect(s.served.get(99)).toBe(1);
  });
});

describe("Supplicant faults and trace", () => {
  it("failNext answers the next request of that cmd with the result, once, without serving it", async () => {
    const storage = new MemoryFileStore();
    const { s } = await running({ storage, faults: { failNext: { cmd: 2, result: R.STORAGE_NO_SPACE } } });
    expect((await s.handle({ cmd: 6, size: 1 })).result).toBe(R.SUCCESS); // other cmd: untouched
    expect((await s.handle({ cmd: 2, op: "write", name: "a", data: new Uint8Array(1) })).result).toBe(R.STORAGE_NO_SPACE);
    expect(storage.files.size).toBe(0);
    expect((await s.handle({ cmd: 2, op: "write", name: "a", data: new Uint8Array(1) })).result).toBe(R.SUCCESS);
    expect(storage.files.size).toBe(1);
    s.faults.failNext = { cmd: 0, result: R.GENERIC };
    expect((await s.handle({ cmd: 0, uuid: "x" })).result).toBe(R.GENERIC);
  });

  it("publishes state and request events on its channel with its name and clock time", async () => {
    const seen: unknown[] = [];
    const fn = (m: unknown) => seen.push(m);
    subscribe(SUPPLICANT_TRACE_CHANNEL, fn);
    try {
      const clock = new FakeClock({ start: 5 });
      const { s } = await running({ clock, name: "initrd" });
      await s.handle({ cmd: 0, uuid: "none" });
      expect(seen).toEqual([
        { type: "state", from: "stopped", to: "running", name: "initrd", time: 5 },
        { type: "request", cmd: 0, result: R.ITEM_NOT_FOUND, name: "initrd", time: 5 },
      ]);
    } finally {
      unsubscribe(SUPPLICANT_TRACE_CHANNEL, fn);
    }
  });
});
