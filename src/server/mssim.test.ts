import { describe, it, expect, afterEach } from "vitest";
import fc from "fast-check";
import type { Socket } from "node:net";
import { FakeClock, systemClock } from "../core/clock.js";
import { TpmTransportError, TpmkitError } from "../errors/index.js";
import { fromHex, toHex } from "../wire/buffer.js";
import { connectSocket } from "../node/connect.js";
import { MSSIM_CMD, encodeSendCommand } from "../node/mssim-protocol.js";
import { u32be } from "../wire/bytes.js";
import { SocketReader } from "../node/socket-reader.js";
import { FakeTpmBackend } from "../testing/fake-backend.js";
import { serveMssim, type MssimServer, type ServeMssimOptions } from "./mssim.js";

const GET_RANDOM_8 = fromHex("80010000000c0000017b0008");

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function sinkOf(backend: FakeTpmBackend) {
  return {
    transmit: (c: Uint8Array, o?: { locality?: number; signal?: AbortSignal }) => backend.execute(c, o?.locality ?? 0, o?.signal),
    cancel: () => backend.cancel?.(),
  };
}

async function start(options: ServeMssimOptions = {}, backend = new FakeTpmBackend({ answers: "tools" })) {
  const errors: unknown[] = [];
  const server = await serveMssim({ chip: sinkOf(backend), port: 0 }, { onError: (e) => errors.push(e), ...options });
  cleanups.push(() => server.close());
  return { server, backend, errors };
}

interface Client {
  socket: Socket;
  reader: SocketReader;
  write(b: Uint8Array): void;
  read(n: number): Promise<Uint8Array>;
  /** Resolves true when the server closes the connection (the test timeout bounds it). */
  closedByPeer(): Promise<boolean>;
}

async function client(port: number): Promise<Client> {
  const socket = await connectSocket({ host: "127.0.0.1", port }, { clock: systemClock, timeoutMs: 2000, label: "test" });
  const reader = new SocketReader(socket, "test client");
  cleanups.push(() => void socket.destroy());
  const closed = new Promise<boolean>((resolve) => socket.once("close", () => resolve(true)));
  return {
    socket,
    reader,
    write: (b) => void socket.write(b),
    read: (n) => reader.read(n, { clock: systemClock, timeoutMs: 2000 }),
    closedByPeer: () => closed,
  };
}

async function powerOn(server: MssimServer): Promise<void> {
  const p = await client(server.platformPort);
  p.write(u32be(MSSIM_CMD.SIGNAL_POWER_ON));
  expect(toHex(await p.read(4))).toBe("00000000");
  p.socket.destroy();
}

async function roundTrip(port: number, command = GET_RANDOM_8, locality = 0): Promise<Uint8Array> {
  const c = await client(port);
  c.write(encodeSendCommand(command, locality));
  const size = new DataView((await c.read(4)).buffer).getUint32(0);
  const body = await c.read(size);
  expect(toHex(await c.read(4))).toBe("00000000");
  c.socket.destroy();
  return body;
}

describe("serveMssim: binding", () => {
  it("binds a free command port and the platform port right after it", async () => {
    const { server } = await start();
    expect(server.port).toBeGreaterThan(0);
    expect(server.platformPort).toBe(server.port + 1);
    expect(server.host).toBe("127.0.0.1");
  });

  it("reports EADDRINUSE as a TpmTransportError when the port is taken", async () => {
    const { server } = await start();
    const err = await serveMssim({ chip: sinkOf(new FakeTpmBackend({ answers: "tools" })), port: server.port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as TpmTransportError).errno).toBe("EADDRINUSE");
  });

  it("close() is idempotent and drops connected clients", async () => {
    const { server } = await start();
    const c = await client(server.port);
    c.write(u32be(MSSIM_CMD.SIGNAL_HASH_START));
    expect(toHex(await c.read(4))).toBe("00000000");
    expect(server.connections).toBe(1);
    await server.close();
    await server.close();
    expect(await c.closedByPeer()).toBe(true);
  });
});

describe("serveMssim: TPM_SEND_COMMAND", () => {
  it("answers an empty response while powered off, as the reference simulator does", async () => {
    const { server, backend } = await start();
    const c = await client(server.port);
    c.write(encodeSendCommand(GET_RANDOM_8, 0));
    expect(toHex(await c.read(8))).toBe("0000000000000000");
    expect(backend.commands).toHaveLength(0);
  });

  it("runs the command at the requested locality once powered on, framed as size + response + ack", async () => {
    const { server, backend } = await start();
    await powerOn(server);
    expect(server.poweredOn).toBe(true);
    const rsp = await roundTrip(server.port, GET_RANDOM_8, 3);
    expect(toHex(rsp)).toBe("800100000014000000000008" + "0001020304050607");
    expect(backend.commands.map((c) => c.locality)).toEqual([3]);
  });

  it("answers pipelined commands in order on one connection", async () => {
    const { server } = await start({ poweredOn: true });
    const c = await client(server.port);
    c.write(new Uint8Array([...encodeSendCommand(GET_RANDOM_8, 0), ...encodeSendCommand(GET_RANDOM_8, 0)]));
    const out: string[] = [];
    for (let i = 0; i < 2; i++) {
      await c.read(4);
      out.push(toHex(await c.read(20)).slice(24));
      await c.read(4);
    }
    expect(out).toEqual(["0001020304050607", "0102030405060708"]);
  });

  it("answers TPM_RC_COMMAND_SIZE when the header size disagrees with the frame, without calling the sink", async () => {
    const { server, backend } = await start({ poweredOn: true });
    const lying = fromHex("80010000000d0000017b0008"); // header says 13, 12 sent
    expect(toHex(await roundTrip(server.port, lying))).toBe("80010000000a00000142");
    expect(backend.commands).toHaveLength(0);
  });

  it("answers TPM_RC_COMMAND_SIZE to a command shorter than a TPM header", async () => {
    const { server } = await start({ poweredOn: true });
    const c = await client(server.port);
    c.write(new Uint8Array([0, 0, 0, 8, 0, 0, 0, 0, 3, 0x80, 0x01, 0x00]));
    expect(toHex(await c.read(18))).toBe("0000000a" + "80010000000a00000142" + "00000000");
  });

  it("answers TPM_RC_LOCALITY for a locality above 4", async () => {
    const { server } = await start({ poweredOn: true });
    const c = await client(server.port);
    const frame = encodeSendCommand(GET_RANDOM_8, 0);
    frame[4] = 5;
    c.write(frame);
    expect(toHex(await c.read(18))).toBe("0000000a" + "80010000000a00000907" + "00000000");
  });

  it("answers TPM_RC_FAILURE and reports the error when the sink throws", async () => {
    const backend = new FakeTpmBackend({
      answers: "tools",
      before: () => {
        throw new Error("backend exploded");
      },
    });
    const { server, errors } = await start({ poweredOn: true }, backend);
    expect(toHex(await roundTrip(server.port))).toBe("80010000000a00000101");
    expect(String(errors[0])).toContain("backend exploded");
  });

  it("runs commands from several clients one at a time", async () => {
    const backend = new FakeTpmBackend({ answers: "tools", before: () => new Promise<void>((r) => setImmediate(r)) });
    const { server } = await start({ poweredOn: true }, backend);
    await Promise.all(Array.from({ length: 6 }, () => roundTrip(server.port)));
    expect(backend.commands).toHaveLength(6);
    expect(backend.maxInFlight).toBe(1);
  });
});

describe("serveMssim: bad frames never take the server down", () => {
  it("survives a client cut at every byte offset of a TPM_SEND_COMMAND frame", async () => {
    const { server, backend } = await start({ poweredOn: true });
    const frame = encodeSendCommand(GET_RANDOM_8, 0);
    for (let cut = 0; cut < frame.length; cut++) {
      const c = await client(server.port);
      c.write(frame.subarray(0, cut));
      await new Promise<void>((resolve) => c.socket.end(resolve));
      c.socket.destroy();
    }
    // No cut frame reached the sink, and the server still answers.
    expect(toHex(await roundTrip(server.port)).slice(0, 12)).toBe("800100000014");
    expect(backend.commands).toHaveLength(1);
  });

  it("closes the connection on a size prefix above the limit without reading the body", async () => {
    const { server, errors } = await start({ poweredOn: true, maxCommandSize: 1024 });
    const c = await client(server.port);
    c.write(new Uint8Array([0, 0, 0, 8, 0, 0x00, 0x00, 0x04, 0x01]));
    expect(await c.closedByPeer()).toBe(true);
    expect(String(errors.at(-1))).toContain("exceeds 1024");
    expect(toHex(await roundTrip(server.port)).slice(0, 12)).toBe("800100000014");
  });

  it("closes a connection whose frame stops arriving, after the frame timeout", async () => {
    const clock = new FakeClock({ auto: true });
    const { server } = await start({ poweredOn: true, clock, frameTimeoutMs: 5000 });
    const c = await client(server.port);
    c.write(encodeSendCommand(GET_RANDOM_8, 0).subarray(0, 7));
    expect(await c.closedByPeer()).toBe(true);
    expect(clock.now()).toBeGreaterThanOrEqual(5000);
  });

  it("answers an unknown platform code with 1 and closes; closes on an unknown command-port code", async () => {
    const { server } = await start();
    const p = await client(server.platformPort);
    p.write(u32be(99));
    expect(toHex(await p.read(4))).toBe("00000001");
    expect(await p.closedByPeer()).toBe(true);
    const c = await client(server.port);
    c.write(u32be(99));
    expect(await c.closedByPeer()).toBe(true);
  });

  it("treats a platform signal sent to the command port as unknown (commands out of place)", async () => {
    const { server } = await start();
    const c = await client(server.port);
    c.write(u32be(MSSIM_CMD.SIGNAL_POWER_ON));
    expect(await c.closedByPeer()).toBe(true);
    expect(server.poweredOn).toBe(false);
  });

  it("ends the connection on SESSION_END without an acknowledgement", async () => {
    const { server } = await start();
    const c = await client(server.port);
    c.write(u32be(MSSIM_CMD.SESSION_END));
    expect(await c.closedByPeer()).toBe(true);
    expect(c.reader.buffered).toBe(0);
  });
});

describe("serveMssim: random bytes on either port (property)", () => {
  it("never crashes, reports only typed errors, and keeps answering", async () => {
    const { server, errors } = await start({ poweredOn: true });
    const code = fc.constantFrom(...Object.values(MSSIM_CMD), 0, 99, 0xffffffff).map((c) => Uint8Array.from(u32be(c)));
    const input = fc.tuple(fc.boolean(), fc.array(fc.oneof(code, fc.uint8Array({ maxLength: 24 })), { maxLength: 6 }));
    await fc.assert(
      fc.asyncProperty(input, async ([platform, parts]) => {
        const c = await client(platform ? server.platformPort : server.port);
        for (const p of parts) c.write(p);
        await new Promise<void>((resolve) => c.socket.end(resolve));
        await c.closedByPeer();
      }),
      { numRuns: 60 },
    );
    await powerOn(server);
    expect(toHex(await roundTrip(server.port)).slice(0, 12)).toBe("800100000014");
    expect(errors.every((e) => e instanceof TpmkitError)).toBe(true);
  }, 15000);
});

describe("serveMssim: platform signals", () => {
  it("tracks power and NV, ignoring NV while off, and calls the hooks", async () => {
    const seen: string[] = [];
    const { server } = await start({
      hooks: { powerOn: () => void seen.push("on"), powerOff: () => void seen.push("off"), nvOn: () => void seen.push("nv") },
    });
    const p = await client(server.platformPort);
    const sig = async (code: number) => {
      p.write(u32be(code));
      return toHex(await p.read(4));
    };
    expect(await sig(MSSIM_CMD.SIGNAL_NV_ON)).toBe("00000000");
    expect(server.nvOn).toBe(false);
    expect(await sig(MSSIM_CMD.SIGNAL_POWER_ON)).toBe("00000000");
    expect(await sig(MSSIM_CMD.SIGNAL_POWER_ON)).toBe("00000000");
    expect(await sig(MSSIM_CMD.SIGNAL_NV_ON)).toBe("00000000");
    expect(server.nvOn).toBe(true);
    expect(await sig(MSSIM_CMD.SIGNAL_POWER_OFF)).toBe("00000000");
    expect(server.poweredOn).toBe(false);
    expect(seen).toEqual(["on", "nv", "off"]);
  });

  it("acknowledges with 1 when a hook fails", async () => {
    const { server } = await start({
      hooks: {
        powerOn: () => {
          throw new Error("no power");
        },
      },
    });
    const p = await client(server.platformPort);
    p.write(u32be(MSSIM_CMD.SIGNAL_POWER_ON));
    expect(toHex(await p.read(4))).toBe("00000001");
    expect(server.poweredOn).toBe(false);
  });

  it("passes CANCEL_ON to the sink's cancel while powered on", async () => {
    const { server, backend } = await start({ poweredOn: true });
    const p = await client(server.platformPort);
    p.write(new Uint8Array([...u32be(MSSIM_CMD.SIGNAL_CANCEL_ON), ...u32be(MSSIM_CMD.SIGNAL_CANCEL_OFF)]));
    expect(toHex(await p.read(8))).toBe("0000000000000000");
    expect(backend.cancels).toBe(1);
  });

  it("reports the largest command and response in GET_COMMAND_RESPONSE_SIZES", async () => {
    const { server } = await start({ poweredOn: true });
    await roundTrip(server.port);
    const p = await client(server.platformPort);
    p.write(u32be(MSSIM_CMD.GET_COMMAND_RESPONSE_SIZES));
    expect(toHex(await p.read(24))).toBe("00000010" + "0000000c" + "0000017b" + "00000014" + "00000000" + "00000000");
  });

  it("answers REMOTE_HANDSHAKE with server version 1 and its endpoint flags, and refuses version 0", async () => {
    const { server } = await start();
    const c = await client(server.port);
    c.write(new Uint8Array([...u32be(MSSIM_CMD.REMOTE_HANDSHAKE), ...u32be(1)]));
    expect(toHex(await c.read(12))).toBe("00000001" + "0000000d" + "00000000");
    const d = await client(server.port);
    d.write(new Uint8Array([...u32be(MSSIM_CMD.REMOTE_HANDSHAKE), ...u32be(0)]));
    expect(await d.closedByPeer()).toBe(true);
  });

  it("passes hash data to the hook only while powered on", async () => {
    const data: string[] = [];
    const { server } = await start({ hooks: { hashData: (d) => void data.push(toHex(d)) } });
    const c = await client(server.port);
    const msg = new Uint8Array([...u32be(MSSIM_CMD.SIGNAL_HASH_DATA), ...u32be(3), 1, 2, 3]);
    c.write(msg);
    expect(toHex(await c.read(4))).toBe("00000000");
    await powerOn(server);
    c.write(msg);
    expect(toHex(await c.read(4))).toBe("00000000");
    expect(data).toEqual(["010203"]);
  });
});

describe("serveMssim: many idle connections", () => {
  it("waits on the shutdown signal for 50 idle connections without a MaxListenersExceededWarning", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const { server } = await start({ poweredOn: true });
      const idle = await Promise.all(Array.from({ length: 50 }, () => client(server.port)));
      // Every idle connection is now waiting for its first byte; a command on one more still runs.
      const c = await client(server.port);
      c.write(encodeSendCommand(GET_RANDOM_8, 0));
      const size = (await c.read(4))[3]!;
      expect(size).toBeGreaterThanOrEqual(10);
      await c.read(size + 4);
      expect(server.connections).toBe(idle.length + 1);
      // Warnings are emitted on process.nextTick: let them out before looking.
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
