import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { FakeClock, systemClock } from "../core/clock.js";
import { swtpm } from "../transports/swtpm/transport.js";
import { SwtpmControl } from "../transports/swtpm/control.js";
import { PTM_CAP } from "../node/swtpm-protocol.js";
import { serveSwtpm, tpmErrorResponse, type SwtpmServeOptions, type SwtpmServer } from "./swtpm.js";
import type { CommandSink } from "./common.js";

const GET_RANDOM_8 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8]);

/** A fake TPM: GetRandom answers bytes 1..n; everything else success with the locality in the last byte of a 11-byte reply. */
function fakeChip(log: Array<{ cc: number; locality: number }> = []): CommandSink {
  return {
    async transmit(c, o) {
      const cc = ((c[6]! << 24) | (c[7]! << 16) | (c[8]! << 8) | c[9]!) >>> 0;
      const locality = o?.locality ?? 0;
      log.push({ cc, locality });
      if (cc === 0x17b) {
        const n = (c[10]! << 8) | c[11]!;
        const r = new Uint8Array(12 + n);
        r.set([0x80, 1, 0, 0, (12 + n) >> 8, (12 + n) & 0xff, 0, 0, 0, 0, 0, n]);
        for (let i = 0; i < n; i++) r[12 + i] = i + 1;
        return r;
      }
      return Uint8Array.of(0x80, 1, 0, 0, 0, 11, 0, 0, 0, 0, locality);
    },
  };
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function start(chip: CommandSink = fakeChip(), options: SwtpmServeOptions = {}): Promise<SwtpmServer & { port: number; ctrlPort: number }> {
  const s = await serveSwtpm({ chip, port: 0 }, options);
  cleanups.push(() => s.close());
  const port = (s.address as { port: number }).port;
  const ctrlPort = s.controlAddress ? (s.controlAddress as { port: number }).port : -1;
  return Object.assign(s, { port, ctrlPort });
}

function sendOpts(locality = 0) {
  return { signal: new AbortController().signal, locality, timeoutMs: 2000, clock: systemClock };
}

/** Raw client: connect, write, collect everything until the server closes or `want` bytes arrived. */
function raw(port: number, data: Uint8Array | Uint8Array[], want = Infinity): Promise<{ bytes: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    let len = 0;
    s.on("error", reject);
    s.on("connect", () => {
      for (const d of Array.isArray(data) ? data : [data]) s.write(d);
    });
    s.on("data", (d) => {
      chunks.push(d);
      len += d.length;
      if (len >= want) {
        s.destroy();
        resolve({ bytes: Buffer.concat(chunks), closed: false });
      }
    });
    s.on("close", () => resolve({ bytes: Buffer.concat(chunks), closed: true }));
  });
}

function u32s(...v: number[]): Buffer {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i));
  return b;
}

describe("serveSwtpm: data channel", () => {
  it("answers TPM commands through the swtpm transport, control channel at port + 1", async () => {
    const s = await start();
    expect(s.ctrlPort).toBe(s.port + 1);
    const t = swtpm({ port: s.port });
    cleanups.push(() => t.close());
    const r = await t.send(GET_RANDOM_8, sendOpts());
    expect(Array.from(r)).toEqual([0x80, 1, 0, 0, 0, 20, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(s.state.commands).toBe(1);
  });

  it("runs commands at the locality set over the control channel", async () => {
    const log: Array<{ cc: number; locality: number }> = [];
    const s = await start(fakeChip(log));
    const t = swtpm({ port: s.port });
    cleanups.push(() => t.close());
    for (const loc of [0, 3, 1, 4]) {
      const r = await t.send(Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x44), sendOpts(loc));
      expect(r[10]).toBe(loc);
    }
    expect(log.map((l) => l.locality)).toEqual([0, 3, 1, 4]);
  });

  it("serves a UNIX socket with the control socket at path + .ctrl", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-srv-"));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const p = path.join(dir, "tpm.sock");
    const s = await serveSwtpm({ chip: fakeChip(), path: p });
    cleanups.push(() => s.close());
    expect(s.controlAddress).toEqual({ path: `${p}.ctrl` });
    const t = swtpm({ path: p });
    cleanups.push(() => t.close());
    const r = await t.send(GET_RANDOM_8, sendOpts(2));
    expect(r.length).toBe(20);
  });

  it("refuses a UNIX path where another server is live, and replaces a stale socket file", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-srv-"));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const p = path.join(dir, "tpm.sock");
    const first = await serveSwtpm({ chip: fakeChip(), path: p }, { control: false });
    cleanups.push(() => first.close());
    await expect(serveSwtpm({ chip: fakeChip(), path: p }, { control: false })).rejects.toMatchObject({ errno: "EADDRINUSE" });
    // a stale socket file, as a killed process leaves it: bind, move the file away, close
    const stale = path.join(dir, "stale.sock");
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(path.join(dir, "tmp.sock"), r));
    fs.renameSync(path.join(dir, "tmp.sock"), stale);
    await new Promise((r) => srv.close(r));
    expect(fs.statSync(stale).isSocket()).toBe(true);
    const second = await serveSwtpm({ chip: fakeChip(), path: stale }, { control: false });
    cleanups.push(() => second.close());
    const { bytes } = await new Promise<{ bytes: Buffer }>((resolve) => {
      const c = net.connect({ path: stale }, () => c.write(GET_RANDOM_8));
      c.once("data", (d) => {
        c.destroy();
        resolve({ bytes: d });
      });
    });
    expect(bytes.length).toBe(20);
  });

  it("understands swtpm's mssim-style TPM_SEND_COMMAND prefix (size + response + zero ack; the locality is that frame's only)", async () => {
    const log: Array<{ cc: number; locality: number }> = [];
    const s = await start(fakeChip(log));
    const prefix = Buffer.concat([u32s(8), Buffer.from([3]), u32s(GET_RANDOM_8.length)]);
    const { bytes } = await raw(s.port, Buffer.concat([prefix, GET_RANDOM_8]), 28);
    expect(bytes.readUInt32BE(0)).toBe(20);
    expect(Array.from(bytes.subarray(4, 24))).toEqual([0x80, 1, 0, 0, 0, 20, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(bytes.readUInt32BE(24)).toBe(0);
    expect(log[0]!.locality).toBe(3);
    // issue 9: a prefixed frame's locality no longer sticks server-wide (see abuse.test.ts)
    expect(s.state.locality).toBe(0);
  });

  it("processes pipelined commands in order", async () => {
    const s = await start();
    const { bytes } = await raw(s.port, Buffer.concat([GET_RANDOM_8, GET_RANDOM_8, GET_RANDOM_8]), 60);
    expect(bytes.length).toBe(60);
    expect(bytes.readUInt32BE(22)).toBe(20);
    expect(bytes.readUInt32BE(42)).toBe(20);
  });

  it.each([
    ["below 10", 9],
    ["zero", 0],
    ["above the buffer size", 4097],
    ["0xffffffff", 0xffffffff],
  ])("a size field %s gets TPM_RC_COMMAND_SIZE and the connection is closed before any body is read", async (_n, size) => {
    const s = await start();
    const cmd = Buffer.from(GET_RANDOM_8);
    cmd.writeUInt32BE(size, 2);
    const { bytes, closed } = await raw(s.port, cmd);
    expect(closed).toBe(true);
    expect(Array.from(bytes)).toEqual(Array.from(tpmErrorResponse(0x142)));
    const again = await raw(s.port, GET_RANDOM_8, 20);
    expect(again.bytes.length).toBe(20);
  });

  it("survives a client cut at every byte offset of a command and serves the next client", async () => {
    const s = await start();
    for (let cut = 0; cut <= GET_RANDOM_8.length; cut++) {
      await new Promise<void>((resolve) => {
        const c = net.connect({ port: s.port, host: "127.0.0.1" }, () => {
          c.end(GET_RANDOM_8.subarray(0, cut));
        });
        c.on("error", () => undefined);
        c.on("close", () => resolve());
        c.resume();
      });
    }
    const { bytes } = await raw(s.port, GET_RANDOM_8, 20);
    expect(bytes.length).toBe(20);
  });

  it("closes a connection whose command does not arrive whole within commandReadTimeoutMs", async () => {
    const clock = new FakeClock();
    const s = await start(fakeChip(), { clock, commandReadTimeoutMs: 1000 });
    const done = raw(s.port, GET_RANDOM_8.subarray(0, 7));
    while (clock.pending === 0) await new Promise((r) => setImmediate(r));
    await clock.advance(999);
    expect(clock.pending).toBe(1);
    await clock.advance(1);
    const { bytes, closed } = await done;
    expect(closed).toBe(true);
    expect(bytes.length).toBe(0);
  });

  it("never crashes on random bytes and still serves the next client (property)", async () => {
    const clock = new FakeClock();
    const s = await start(fakeChip(), { clock, commandReadTimeoutMs: 10 });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (junk) => {
        const c = net.connect({ port: s.port, host: "127.0.0.1" });
        c.on("error", () => undefined);
        c.resume();
        await new Promise((r) => c.once("connect", r));
        c.write(junk);
        // let the server read, then fire whatever read timer it armed, then leave
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
        await clock.advance(10);
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
        c.destroy();
        await new Promise((r) => (c.closed ? r(undefined) : c.once("close", r)));
      }),
      { numRuns: 40 },
    );
    const { bytes } = await raw(s.port, GET_RANDOM_8, 20);
    expect(bytes.length).toBe(20);
  });

  it("serves one data connection at a time; the second is answered when the first closes", async () => {
    const s = await start();
    const a = net.connect({ port: s.port, host: "127.0.0.1" });
    await new Promise((r) => a.once("connect", r));
    await new Promise<void>((r) => {
      a.once("data", () => r());
      a.write(GET_RANDOM_8);
    });
    let bAnswered = false;
    const b = raw(s.port, GET_RANDOM_8, 20).then((x) => {
      bAnswered = true;
      return x;
    });
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(bAnswered).toBe(false);
    a.destroy();
    const { bytes } = await b;
    expect(bytes.length).toBe(20);
  });

  it("answers a sink failure or a malformed sink response with TPM_RC_FAILURE", async () => {
    let mode = 0;
    const chip: CommandSink = {
      async transmit() {
        if (mode === 0) throw new Error("backend exploded");
        return Uint8Array.of(0x80, 1, 0, 0, 0, 99, 0, 0, 0, 0);
      },
    };
    const s = await start(chip);
    const t = swtpm({ port: s.port });
    cleanups.push(() => t.close());
    expect(Array.from(await t.send(GET_RANDOM_8, sendOpts()))).toEqual(Array.from(tpmErrorResponse(0x101)));
    mode = 1;
    expect(Array.from(await t.send(GET_RANDOM_8, sendOpts()))).toEqual(Array.from(tpmErrorResponse(0x101)));
  });

  it("aborts the command in flight when the data client disconnects", async () => {
    let seen: AbortSignal | undefined;
    const chip: CommandSink = {
      transmit: (_c, o) =>
        new Promise((_r, reject) => {
          seen = o?.signal;
          o?.signal?.addEventListener("abort", () => reject(o.signal!.reason));
        }),
    };
    const s = await start(chip);
    const c = net.connect({ port: s.port, host: "127.0.0.1" }, () => c.write(GET_RANDOM_8));
    c.on("error", () => undefined);
    while (!seen) await new Promise((r) => setImmediate(r));
    c.destroy();
    while (!seen.aborted) await new Promise((r) => setImmediate(r));
    expect(seen.aborted).toBe(true);
  });
});

describe("serveSwtpm: control channel", () => {
  it("reports its capabilities and answers GET_CONFIG, SET_BUFFERSIZE, GET_INFO", async () => {
    const s = await start(fakeChip(), { info: { specification: { family: "2.0", level: 0, revision: 159 } } });
    const c = new SwtpmControl({ port: s.ctrlPort });
    cleanups.push(() => c.close());
    const caps = await c.getCapability();
    for (const cap of [PTM_CAP.INIT, PTM_CAP.SHUTDOWN, PTM_CAP.SET_LOCALITY, PTM_CAP.CANCEL_TPM_CMD, PTM_CAP.GET_TPMESTABLISHED, PTM_CAP.RESET_TPMESTABLISHED, PTM_CAP.SET_BUFFERSIZE, PTM_CAP.GET_INFO, PTM_CAP.STOP]) {
      expect(caps.has(cap)).toBe(true);
    }
    expect(caps.has(PTM_CAP.GET_STATEBLOB)).toBe(false);
    expect(await c.getConfig()).toEqual({ flags: 0, fileKey: false, migrationKey: false });
    expect(await c.setBufferSize()).toEqual({ size: 4096, min: 2808, max: 4096 });
    const info = await c.getInfo(3);
    expect(info.json).toEqual({ TPMSpecification: { family: "2.0", level: 0, revision: 159 }, TPMAttributes: { manufacturer: "id:00000000", version: "id:00000000", model: "tpmkit" } });
  });

  it("SET_LOCALITY refuses 5 (and 4 when told to) with TPM_BAD_LOCALITY", async () => {
    const s = await start(fakeChip(), { rejectLocality4: true });
    const c = new SwtpmControl({ port: s.ctrlPort });
    cleanups.push(() => c.close());
    await c.setLocality(3);
    expect(s.state.locality).toBe(3);
    await expect(c.setLocality(5)).rejects.toMatchObject({ result: 0x3d });
    await expect(c.setLocality(4)).rejects.toMatchObject({ result: 0x3d });
    expect(s.state.locality).toBe(3);
  });

  it("the established flag is set by a hash sequence and reset only from locality 3 or 4", async () => {
    const hashed: number[] = [];
    const s = await start(fakeChip(), { power: { hashData: (d) => void hashed.push(d.length) } });
    const c = new SwtpmControl({ port: s.ctrlPort });
    cleanups.push(() => c.close());
    expect(await c.getTpmEstablished()).toBe(false);
    await c.hashStart();
    await c.hashData(new Uint8Array(5000));
    await c.hashEnd();
    expect(hashed).toEqual([4096, 904]);
    expect(await c.getTpmEstablished()).toBe(true);
    await expect(c.resetTpmEstablished(0)).rejects.toMatchObject({ result: 0x3d });
    await c.resetTpmEstablished(3);
    expect(await c.getTpmEstablished()).toBe(false);
  });

  it("STOP makes TPM commands fail with TPM_RC_FAILURE and running-only commands TPM_BAD_ORDINAL; INIT restarts", async () => {
    const calls: string[] = [];
    const s = await start(fakeChip(), { power: { stop: () => void calls.push("stop"), init: (dv) => void calls.push(`init:${dv}`) } });
    const c = new SwtpmControl({ port: s.ctrlPort });
    const t = swtpm({ port: s.port }, { control: c });
    cleanups.push(() => t.close(), () => c.close());
    await c.stop();
    expect(Array.from(await t.send(GET_RANDOM_8, sendOpts()))).toEqual(Array.from(tpmErrorResponse(0x101)));
    await expect(c.getTpmEstablished()).rejects.toMatchObject({ result: 0x0a });
    await expect(c.cancelTpmCmd()).rejects.toMatchObject({ result: 0x0a });
    expect(await c.setBufferSize(3000)).toEqual({ size: 3000, min: 2808, max: 4096 });
    expect((await c.setBufferSize(100)).size).toBe(2808);
    await c.init({ deleteVolatile: true });
    expect(calls).toEqual(["stop", "init:true"]);
    await expect(c.setBufferSize(4096)).rejects.toMatchObject({ result: 0x0a });
    expect((await t.send(GET_RANDOM_8, sendOpts())).length).toBe(20);
  });

  it("needInit refuses TPM commands until CMD_INIT; a failing init hook answers TPM_FAIL", async () => {
    let fail = true;
    const s = await start(fakeChip(), {
      needInit: true,
      power: {
        init: () => {
          if (fail) throw new Error("state broken");
        },
      },
    });
    const c = new SwtpmControl({ port: s.ctrlPort });
    const t = swtpm({ port: s.port }, { control: c });
    cleanups.push(() => t.close(), () => c.close());
    expect(Array.from(await t.send(GET_RANDOM_8, sendOpts()))).toEqual(Array.from(tpmErrorResponse(0x101)));
    await expect(c.init()).rejects.toMatchObject({ result: 0x09 });
    fail = false;
    await c.init();
    expect((await t.send(GET_RANDOM_8, sendOpts())).length).toBe(20);
  });

  it("CANCEL_TPM_CMD aborts the command in flight, which answers TPM_RC_CANCELED", async () => {
    let started = false;
    let cancelHook = 0;
    const chip: CommandSink = {
      transmit: (_c, o) =>
        new Promise((_r, reject) => {
          started = true;
          o?.signal?.addEventListener("abort", () => reject(o.signal!.reason));
        }),
    };
    const s = await start(chip, { power: { cancel: () => void cancelHook++ } });
    const c = new SwtpmControl({ port: s.ctrlPort });
    const t = swtpm({ port: s.port }, { control: c });
    cleanups.push(() => t.close(), () => c.close());
    const p = t.send(GET_RANDOM_8, sendOpts());
    while (!started) await new Promise((r) => setImmediate(r));
    await t.cancel();
    expect(Array.from(await p)).toEqual(Array.from(tpmErrorResponse(0x909)));
    expect(cancelHook).toBe(1);
  });

  it("CANCEL_TPM_CMD also calls the sink's own cancel() (the one CommandSink both servers take)", async () => {
    let release: ((r: Uint8Array) => void) | undefined;
    let sinkCancels = 0;
    const chip: CommandSink = {
      transmit: () => new Promise((r) => (release = r)),
      cancel: () => {
        sinkCancels++;
        release?.(tpmErrorResponse(0x909));
      },
    };
    const s = await start(chip);
    const c = new SwtpmControl({ port: s.ctrlPort });
    const t = swtpm({ port: s.port }, { control: c });
    cleanups.push(() => t.close(), () => c.close());
    const p = t.send(GET_RANDOM_8, sendOpts());
    while (!release) await new Promise((r) => setImmediate(r));
    await t.cancel();
    expect(Array.from(await p)).toEqual(Array.from(tpmErrorResponse(0x909)));
    expect(sinkCancels).toBe(1);
  });

  it("state blobs go through the hooks; SET_STATEBLOB needs a stopped TPM", async () => {
    const store = new Map<number, Uint8Array>([[1, new Uint8Array(5000).fill(7)]]);
    const s = await start(fakeChip(), {
      power: {
        getStateBlob: (type) => store.get(type) ?? new Uint8Array(0),
        setStateBlob: (type, blob) => void store.set(type, blob),
        storeVolatile: () => undefined,
      },
    });
    const c = new SwtpmControl({ port: s.ctrlPort });
    cleanups.push(() => c.close());
    expect((await c.getCapability()).has(PTM_CAP.GET_STATEBLOB | PTM_CAP.SET_STATEBLOB | PTM_CAP.STORE_VOLATILE)).toBe(true);
    const got = await c.getStateBlob(1, { decrypted: true });
    expect(got.blob.length).toBe(5000);
    await c.storeVolatile();
    await expect(c.setStateBlob(2, Uint8Array.of(1, 2, 3))).rejects.toMatchObject({ result: 0x0a });
    await c.stop();
    await c.setStateBlob(2, new Uint8Array(10000).fill(9));
    expect(store.get(2)!.length).toBe(10000);
    expect(store.get(2)![9999]).toBe(9);
  });

  it("unknown commands get TPM_BAD_ORDINAL and SET_DATAFD TPM_IOERROR, and the channel stays usable", async () => {
    const s = await start();
    const c = new SwtpmControl({ port: s.ctrlPort });
    cleanups.push(() => c.close());
    await expect(c.raw(0x63, new Uint8Array(0), 4)).rejects.toMatchObject({ result: 0x0a, resultName: "TPM_BAD_ORDINAL" });
    await expect(c.raw(0x10, new Uint8Array(0), 4)).rejects.toMatchObject({ result: 0x1f });
    await expect(c.raw(0x02, new Uint8Array(6), 4)).rejects.toMatchObject({ result: 0x03, resultName: "TPM_BAD_PARAMETER" }); // INIT body must be exactly 4 bytes
    expect((await c.getCapability()).bits).toBeGreaterThan(0);
    expect(c.connections).toBe(1);
  });

  it("a control message that stays incomplete is dropped after controlReadTimeoutMs; a lying HASH_DATA length is refused", async () => {
    const clock = new FakeClock();
    const s = await start(fakeChip(), { clock, controlReadTimeoutMs: 500 });
    const partial = raw(s.ctrlPort, Buffer.from([0, 0, 0, 2, 0, 0]));
    while (clock.pending === 0) await new Promise((r) => setImmediate(r));
    await clock.advance(500);
    const r1 = await partial;
    expect(r1.closed).toBe(true);
    expect(r1.bytes.length).toBe(0);
    const lying = await raw(s.ctrlPort, Buffer.concat([u32s(7, 0x10000)]));
    expect(lying.closed).toBe(true);
    expect(Array.from(lying.bytes)).toEqual([0, 0, 0, 3]);
    const blob = await raw(s.ctrlPort, u32s(0x0d, 0, 1, 0x7fffffff));
    expect(Array.from(blob.bytes)).toEqual([0, 0, 0, 3]);
  });

  it("SHUTDOWN calls the hook, answers, and closes the server", async () => {
    let down = 0;
    const s = await start(fakeChip(), { power: { shutdown: () => void down++ } });
    const c = new SwtpmControl({ port: s.ctrlPort });
    cleanups.push(() => c.close());
    await c.shutdown();
    await s.closed;
    expect(down).toBe(1);
    await expect(raw(s.port, GET_RANDOM_8)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});
