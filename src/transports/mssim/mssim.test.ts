import { describe, it, expect, afterEach } from "vitest";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { FakeClock, systemClock, type Clock } from "../../core/clock.js";
import { TpmArgumentError, TpmFormatError, TpmStateError, TpmTimeoutError, TpmTransportError } from "../../errors/index.js";
import type { SendOptions } from "../../core/transport.js";
import { fromHex, toHex } from "../../wire/buffer.js";
import { serveMssim, type ServeMssimOptions } from "../../server/mssim.js";
import { mssim, type MssimOptions } from "./mssim.js";
import { MssimSwtpmDetectedError } from "./platform.js";
import { ByteQueue } from "../../node/socket-reader.js";
import { MSSIM_CMD, encodeSendCommand, mssimCommandName } from "../../node/mssim-protocol.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";

const GET_RANDOM_8 = fromHex("80010000000c0000017b0008");
const RESPONSE_8 = fromHex("8001000000140000000000080001020304050607");

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function sendOpts(over: Partial<SendOptions> = {}): SendOptions {
  return { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: systemClock, ...over };
}

async function withServer(options: ServeMssimOptions = {}, backend: FakeTpmBackend = new FakeTpmBackend({ answers: "tools" })) {
  const server = await serveMssim(
    { chip: { transmit: (c, o) => backend.execute(c, o?.locality ?? 0, o?.signal), cancel: () => backend.cancel?.() }, port: 0 },
    options,
  );
  cleanups.push(() => server.close());
  return { server, backend };
}

function transport(options: MssimOptions) {
  const t = mssim(options);
  cleanups.push(() => t.close!());
  return t;
}

/** A raw TCP peer that runs `onConnection(socket, index)` for each client; returns its port and connection count. */
async function fakePeer(onConnection: (socket: Socket, index: number) => void) {
  let count = 0;
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
    onConnection(s, count++);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return { port: (srv.address() as AddressInfo).port, connections: () => count };
}

/** Answers every TPM_SEND_COMMAND frame (9-byte header + body) with `reply(index)`. */
function answering(reply: (conn: number, frame: number) => Uint8Array) {
  return (s: Socket, conn: number) => {
    let buf = Buffer.alloc(0);
    let frame = 0;
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUInt32BE(5)) {
        buf = buf.subarray(9 + buf.readUInt32BE(5));
        s.write(reply(conn, frame++));
      }
    });
  };
}

const frameOf = (rsp: Uint8Array, ack = 0) => new Uint8Array([...u32(rsp.length), ...rsp, ...u32(ack)]);
function u32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

describe("mssim protocol helpers", () => {
  it("frames TPM_SEND_COMMAND as u32 8, u8 locality, u32 size, command", () => {
    expect(toHex(encodeSendCommand(GET_RANDOM_8, 2))).toBe("00000008" + "02" + "0000000c" + "80010000000c0000017b0008");
  });

  it("rejects a locality outside 0–4 and a command shorter than a header", () => {
    expect(() => encodeSendCommand(GET_RANDOM_8, 5)).toThrow(TpmArgumentError);
    expect(() => encodeSendCommand(new Uint8Array(9), 0)).toThrow(TpmArgumentError);
  });

  it("names known codes and prints unknown ones in hex", () => {
    expect(mssimCommandName(MSSIM_CMD.SIGNAL_NV_ON)).toBe("SIGNAL_NV_ON");
    expect(mssimCommandName(99)).toBe("0x00000063");
  });

  it("ByteQueue.take returns the concatenation whatever the chunking", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 10 }), fc.nat(), (chunks, k) => {
        const all = chunks.flatMap((c) => [...c]);
        const q = new ByteQueue();
        for (const c of chunks) q.push(c);
        const n = all.length === 0 ? 0 : k % (all.length + 1);
        expect([...q.take(n)]).toEqual(all.slice(0, n));
        expect([...q.take(all.length - n)]).toEqual(all.slice(n));
        expect(q.length).toBe(0);
      }),
    );
  });
});

describe("mssim transport against serveMssim", () => {
  it("open() powers the simulator on and turns NV on, like tcti-mssim's init", async () => {
    const { server } = await withServer();
    const t = transport({ port: server.port });
    await t.open!({ clock: systemClock, locality: 0 });
    expect(server.poweredOn).toBe(true);
    expect(server.nvOn).toBe(true);
  });

  it("sends commands at the requested locality over one persistent connection", async () => {
    const { server, backend } = await withServer({ poweredOn: true });
    const t = transport({ port: server.port, powerOn: false });
    expect(toHex(await t.send(GET_RANDOM_8, sendOpts({ locality: 4 })))).toBe(toHex(RESPONSE_8));
    const second = await t.send(GET_RANDOM_8, sendOpts());
    expect(toHex(second).slice(24)).toBe("0102030405060708");
    expect(backend.commands.map((c) => c.locality)).toEqual([4, 0]);
    expect(server.connections).toBe(1);
    expect(t.localities).toEqual([0, 1, 2, 3, 4]);
  });

  it("says the simulator is powered off when it answers an empty response", async () => {
    const { server } = await withServer();
    const t = transport({ port: server.port, powerOn: false });
    const err = await t.send(GET_RANDOM_8, sendOpts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as Error).message).toMatch(/powered off/);
  });

  it("reconnects after the peer hung up between commands", async () => {
    let hungUp!: () => void;
    const firstClosed = new Promise<void>((r) => (hungUp = r));
    const peer = await fakePeer((sock, conn) => {
      answering(() => frameOf(RESPONSE_8))(sock, conn);
      if (conn === 0) {
        sock.once("data", () => setImmediate(() => sock.end()));
        sock.once("close", () => hungUp());
      }
    });
    const t = transport({ port: peer.port, powerOn: false });
    await t.send(GET_RANDOM_8, sendOpts());
    await firstClosed;
    expect(toHex(await t.send(GET_RANDOM_8, sendOpts()))).toBe(toHex(RESPONSE_8));
    expect(peer.connections()).toBe(2);
  });

  it("cancel() raises CANCEL_ON during a command and CANCEL_OFF after its response", async () => {
    const events: string[] = [];
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const backend = new FakeTpmBackend({ answers: "tools", before: () => (started(), new Promise<void>(() => undefined)) });
    const { server } = await withServer({ hooks: { cancelOff: () => void events.push("cancelOff") } }, backend);
    const t = transport({ port: server.port });
    await t.open!({ clock: systemClock, locality: 0 });
    const pending = t.send(GET_RANDOM_8, sendOpts());
    await running;
    await t.cancel!();
    const rsp = await pending;
    expect(toHex(rsp)).toBe("80010000000a00000909"); // TPM_RC_CANCELED from the backend
    expect(backend.cancels).toBe(1);
    expect(events).toEqual(["cancelOff"]);
  });

  it("close() ends the session on both ports and later sends fail with TpmStateError", async () => {
    const { server } = await withServer();
    const t = mssim({ port: server.port });
    await t.open!({ clock: systemClock, locality: 0 });
    await t.send(GET_RANDOM_8, sendOpts());
    await t.close!();
    await t.close!();
    await expect(t.send(GET_RANDOM_8, sendOpts())).rejects.toBeInstanceOf(TpmStateError);
  });

  it("speaks the same protocol over UNIX sockets: path for commands, path.ctrl for the platform", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tpmkit-mssim-unix-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, "sim.sock");
    const signals: number[] = [];
    const listenOn = async (p: string, onConnection: (s: Socket) => void) => {
      const srv = createServer((s) => {
        s.on("error", () => undefined);
        onConnection(s);
      });
      await new Promise<void>((r) => srv.listen(p, r));
      cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    };
    await listenOn(path, (s) => answering(() => frameOf(RESPONSE_8))(s, 0));
    await listenOn(`${path}.ctrl`, (s) =>
      s.on("data", (d) => {
        for (let i = 0; i + 4 <= d.length; i += 4) {
          signals.push(d.readUInt32BE(i));
          s.write(new Uint8Array(4));
        }
      }),
    );
    const t = transport({ path });
    await t.open!({ clock: systemClock, locality: 0 });
    expect(signals).toEqual([MSSIM_CMD.SIGNAL_POWER_ON, MSSIM_CMD.SIGNAL_NV_ON]);
    expect(toHex(await t.send(GET_RANDOM_8, sendOpts()))).toBe(toHex(RESPONSE_8));
    expect(t.address).toBe(path);
  });

  it("rejects a malformed command before any I/O", async () => {
    const t = transport({ port: 1, powerOn: false });
    await expect(t.send(fromHex("80010000000d0000017b0008"), sendOpts())).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(t.send(GET_RANDOM_8, sendOpts({ locality: 7 }))).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(t.send(new Uint8Array(5000), sendOpts())).rejects.toBeInstanceOf(TpmArgumentError);
    expect(() => mssim({ port: 70000 })).toThrow(TpmArgumentError);
  });
});

describe("mssim transport against lying or broken peers", () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["a size prefix above the limit", new Uint8Array([...u32(5000), ...RESPONSE_8]), /exceeds the 4096-byte limit/],
    ["a size prefix below a TPM header", new Uint8Array([...u32(4), 0, 0, 0, 0]), /below the 10-byte/],
    ["a header size that disagrees with the prefix", frameOf(fromHex("8001000000150000000000080001020304050607")), /header size field/],
    ["a non-zero acknowledgement", frameOf(RESPONSE_8, 7), /acknowledgement is 7/],
  ];
  for (const [name, reply, message] of cases) {
    it(`rejects ${name} with TpmFormatError, drops the connection and reconnects for the next command`, async () => {
      const peer = await fakePeer(answering((conn) => (conn === 0 ? reply : frameOf(RESPONSE_8))));
      const t = transport({ port: peer.port, powerOn: false });
      const err = await t.send(GET_RANDOM_8, sendOpts()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmFormatError);
      expect((err as Error).message).toMatch(message);
      expect(toHex(await t.send(GET_RANDOM_8, sendOpts()))).toBe(toHex(RESPONSE_8));
      expect(peer.connections()).toBe(2);
    });
  }

  it("fails with a TpmTransportError, never a hang, when the peer cuts the response at any byte offset", async () => {
    const full = frameOf(RESPONSE_8);
    // Connection k gets the first k bytes of a valid reply, then the peer hangs up.
    const peer = await fakePeer((sock, conn) => sock.once("data", () => sock.end(full.subarray(0, conn))));
    const t = transport({ port: peer.port, powerOn: false });
    for (let cut = 0; cut < full.length; cut++) {
      const err = await t.send(GET_RANDOM_8, sendOpts()).catch((e: unknown) => e);
      expect(err, `cut at ${cut}`).toBeInstanceOf(TpmTransportError);
      expect((err as TpmTransportError).errno).toBe("ECONNRESET");
    }
    expect(peer.connections()).toBe(full.length);
  }, 10000);

  it("times out on a silent peer at the command's deadline (fake clock)", async () => {
    const peer = await fakePeer(() => undefined);
    const clock: Clock = new FakeClock({ auto: true });
    const t = transport({ port: peer.port, powerOn: false });
    const err = await t.send(GET_RANDOM_8, sendOpts({ clock, timeoutMs: 750 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTimeoutError);
    expect(clock.now()).toBe(750);
  });

  it("rejects with an AbortError when the signal fires mid-read, and works again afterwards", async () => {
    let first = true;
    const peer = await fakePeer(
      answering(() => {
        if (first) {
          first = false;
          return new Uint8Array([0, 0]); // half a size prefix, then silence
        }
        return frameOf(RESPONSE_8);
      }),
    );
    const t = transport({ port: peer.port, powerOn: false });
    const ac = new AbortController();
    const pending = t.send(GET_RANDOM_8, sendOpts({ signal: ac.signal }));
    setImmediate(() => ac.abort());
    const err = await pending.catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
    expect(toHex(await t.send(GET_RANDOM_8, sendOpts()))).toBe(toHex(RESPONSE_8));
  });

  it("reconnects when stale bytes arrived between commands", async () => {
    const peer = await fakePeer(answering((conn) => (conn === 0 ? new Uint8Array([...frameOf(RESPONSE_8), 0xde, 0xad]) : frameOf(RESPONSE_8))));
    const t = transport({ port: peer.port, powerOn: false });
    await t.send(GET_RANDOM_8, sendOpts());
    await new Promise<void>((r) => setImmediate(r));
    await t.send(GET_RANDOM_8, sendOpts());
    expect(peer.connections()).toBe(2);
  });
});

describe("mssim open(): the swtpm mistake and a missing platform port", () => {
  it("detects a swtpm control channel on port + 1 and names the swtpm TCTI to use", async () => {
    const data = await fakePeer(() => undefined);
    // A swtpm control channel answers command 1 (its CMD_GET_CAPABILITY) with 8 bytes.
    const ctrl = await fakePeer((s) => s.on("data", () => s.write(fromHex("000000000000ffff"))));
    const t = transport({ port: data.port, platformPort: ctrl.port });
    const err = await t.open!({ clock: systemClock, locality: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MssimSwtpmDetectedError);
    expect((err as MssimSwtpmDetectedError).suggestion).toBe(`swtpm:host=127.0.0.1,port=${data.port}`);
    expect((err as Error).message).toMatch(/this looks like a swtpm; use swtpm:host=127\.0\.0\.1,port=/);
  });

  it("explains a refused platform port instead of a bare ECONNREFUSED", async () => {
    const data = await fakePeer(() => undefined);
    const closedPort = await fakePeer(() => undefined);
    await cleanups.pop()!(); // close it: nothing listens there now
    const t = transport({ port: data.port, platformPort: closedPort.port });
    const err = await t.open!({ clock: systemClock, locality: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as TpmTransportError).errno).toBe("ECONNREFUSED");
    expect((err as Error).message).toMatch(/platform port .* refuses connections/);
    expect((err as TpmTransportError).details).toMatch(/swtpm:host=127\.0\.0\.1/);
  });

  it("reports a non-zero platform acknowledgement as a protocol error", async () => {
    const { server } = await withServer({ hooks: { powerOn: () => Promise.reject(new Error("no")) } });
    const t = transport({ port: server.port });
    const err = await t.open!({ clock: systemClock, locality: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as Error).message).toMatch(/SIGNAL_POWER_ON acknowledged with 1/);
  });
});
