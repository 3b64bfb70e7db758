import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { FakeClock, systemClock } from "../../core/clock.js";
import { TpmArgumentError, TpmFormatError, TpmStateError, TpmTimeoutError, TpmTransportError, TpmkitError } from "../../errors/index.js";
import { swtpm } from "./transport.js";
import { SwtpmControl } from "./control.js";

const GET_RANDOM_8 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8]);

function response(payload: number[]): Uint8Array {
  const size = 10 + payload.length;
  return Uint8Array.from([0x80, 0x01, (size >>> 24) & 0xff, (size >>> 16) & 0xff, (size >>> 8) & 0xff, size & 0xff, 0, 0, 0, 0, ...payload]);
}

interface Peer {
  port: number;
  /** Commands received, per connection. */
  received: Uint8Array[];
  connections: number;
  sockets: net.Socket[];
  close(): Promise<void>;
}

/** A scripted data peer: `onCommand` decides what to write back for each command. */
async function dataPeer(onCommand: (cmd: Uint8Array, sock: net.Socket, n: number) => void): Promise<Peer> {
  const received: Uint8Array[] = [];
  const sockets: net.Socket[] = [];
  let n = 0;
  const peer: Peer = { port: 0, received, connections: 0, sockets, close: async () => undefined };
  const server = net.createServer({ noDelay: true } as net.ServerOpts, (s) => {
    peer.connections++;
    sockets.push(s);
    s.on("error", () => undefined);
    s.on("data", (d) => {
      const cmd = new Uint8Array(d);
      received.push(cmd);
      onCommand(cmd, s, n++);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  peer.port = (server.address() as net.AddressInfo).port;
  peer.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return peer;
}

/** A control peer that answers every request with result 0 (4 bytes) and logs requests. */
async function ctrlPeer(): Promise<{ port: number; log: Uint8Array[]; close(): Promise<void> }> {
  const log: Uint8Array[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on("error", () => undefined);
    s.on("data", (d) => {
      log.push(new Uint8Array(d));
      s.write(Buffer.alloc(4));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    log,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function opts(signal = new AbortController().signal, locality = 0) {
  return { signal, locality, timeoutMs: 2000, clock: systemClock };
}

describe("swtpm transport: data channel framing", () => {
  it("sends each command in one write and returns the response framed by its header", async () => {
    const peer = await dataPeer((_c, s) => s.write(response([0, 8, 1, 2, 3, 4, 5, 6, 7, 8])));
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    const r = await t.send(GET_RANDOM_8, opts());
    expect(Array.from(r)).toEqual(Array.from(response([0, 8, 1, 2, 3, 4, 5, 6, 7, 8])));
    expect(t.kind).toBe("swtpm");
    expect(peer.received).toHaveLength(1);
    expect(Array.from(peer.received[0]!)).toEqual(Array.from(GET_RANDOM_8));
  });

  it("keeps one persistent data connection across many commands", async () => {
    const peer = await dataPeer((_c, s) => s.write(response([0, 0])));
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    for (let i = 0; i < 20; i++) await t.send(GET_RANDOM_8, opts());
    expect(peer.connections).toBe(1);
    expect(t.connections).toBe(1);
  });

  it("reassembles a response however the peer splits it (property)", async () => {
    let plan: number[] = [];
    const body = Array.from({ length: 40 }, (_, i) => i);
    const full = response(body);
    const peer = await dataPeer((_c, s) => {
      // write the response in the planned pieces, each as its own TCP segment
      let off = 0;
      const pieces: Uint8Array[] = [];
      for (const cut of plan) {
        pieces.push(full.subarray(off, cut));
        off = cut;
      }
      pieces.push(full.subarray(off));
      const writeNext = () => {
        const p = pieces.shift();
        if (!p) return;
        s.write(p, () => setImmediate(writeNext));
      };
      writeNext();
    });
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: full.length - 1 }), { maxLength: 6 }), async (cuts) => {
        plan = [...cuts].sort((a, b) => a - b);
        const r = await t.send(GET_RANDOM_8, opts());
        expect(Array.from(r)).toEqual(Array.from(full));
      }),
      { numRuns: 30 },
    );
    expect(t.connections).toBe(1);
  });

  it.each([
    ["below 10", 9],
    ["zero", 0],
    ["above maxResponseSize", 4097],
    ["huge", 0xffffffff],
  ])("rejects a response size field %s with TpmFormatError and reconnects for the next command", async (_n, size) => {
    const peer = await dataPeer((_c, s, n) => {
      if (n === 0) s.write(Uint8Array.from([0x80, 0x01, (size >>> 24) & 0xff, (size >>> 16) & 0xff, (size >>> 8) & 0xff, size & 0xff, 0, 0, 0, 0, 1, 2, 3]));
      else s.write(response([0, 0]));
    });
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    const err = await t.send(GET_RANDOM_8, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmFormatError);
    expect(String((err as Error).message)).toMatch(/size field/);
    const r = await t.send(GET_RANDOM_8, opts());
    expect(Array.from(r)).toEqual(Array.from(response([0, 0])));
    expect(peer.connections).toBe(2);
  });

  it("fails the command in flight with TpmTransportError when the peer drops at any byte offset, then reconnects", async () => {
    const full = response([0, 4, 9, 9, 9, 9]);
    let cutAt = 0;
    const peer = await dataPeer((_c, s, n) => {
      if (n % 2 === 0) {
        s.end(full.subarray(0, cutAt));
      } else s.write(full);
    });
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    for (cutAt = 0; cutAt < full.length; cutAt++) {
      const err = await t.send(GET_RANDOM_8, opts()).catch((e: unknown) => e);
      expect(err, `cut at ${cutAt}`).toBeInstanceOf(TpmTransportError);
      expect((err as TpmTransportError).errno).toBe("ECONNRESET");
      const ok = await t.send(GET_RANDOM_8, opts());
      expect(Array.from(ok)).toEqual(Array.from(full));
    }
    expect(peer.connections).toBe(full.length + 1);
  });

  it("any bytes from the peer followed by a close give a well-framed response or a typed error (property)", async () => {
    let reply = new Uint8Array(0);
    const peer = await dataPeer((_c, s) => s.end(reply));
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 40 })).map(([size, rest]) => {
            const b = new Uint8Array(10 + rest.length);
            new DataView(b.buffer).setUint32(2, size);
            b.set(rest, 10);
            return b;
          }),
        ),
        async (bytes) => {
          reply = bytes;
          const out = await t.send(GET_RANDOM_8, opts()).then(
            (r) => r,
            (e: unknown) => e,
          );
          if (out instanceof Uint8Array) {
            expect(new DataView(out.buffer, out.byteOffset).getUint32(2)).toBe(out.length);
            expect(Array.from(out)).toEqual(Array.from(bytes.subarray(0, out.length)));
          } else expect(out).toBeInstanceOf(TpmkitError);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("drops the connection when the peer sends bytes after a complete response", async () => {
    const peer = await dataPeer((_c, s, n) => {
      if (n === 0) s.write(Buffer.concat([response([0, 0]), Buffer.from([0xde, 0xad])]));
      else s.write(response([0, 1]));
    });
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    const first = await t.send(GET_RANDOM_8, opts());
    expect(Array.from(first)).toEqual(Array.from(response([0, 0])));
    const second = await t.send(GET_RANDOM_8, opts());
    expect(Array.from(second)).toEqual(Array.from(response([0, 1])));
    expect(peer.connections).toBe(2);
  });

  it("drops the connection as soon as stray bytes arrive between commands, so they are never read as the next response (issue 9)", async () => {
    let strayWritten = false;
    const peer = await dataPeer((_c, s, n) => {
      if (n === 0) {
        s.write(response([0, 0]));
        // a late, stray answer, after the client has its response
        setTimeout(() => s.write(response([0xee, 0xee]), () => (strayWritten = true)), 20);
      } else s.write(response([0, 1]));
    });
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    expect(Array.from(await t.send(GET_RANDOM_8, opts()))).toEqual(Array.from(response([0, 0])));
    expect(t.presence()).toBe("present");
    // Deterministic signal: the transport drops the link when the stray bytes arrive (bounded wait).
    for (let i = 0; i < 400 && t.presence() === "present"; i++) await new Promise((r) => setTimeout(r, 5));
    expect(strayWritten).toBe(true);
    expect(t.presence()).toBe("absent");
    expect(Array.from(await t.send(GET_RANDOM_8, opts()))).toEqual(Array.from(response([0, 1])));
    expect(peer.connections).toBe(2);
  });

  it("settles an aborted command at once with the abort reason and never hands its late response to the next command", async () => {
    let held: net.Socket | undefined;
    const peer = await dataPeer((_c, s, n) => {
      if (n === 0) held = s; // no answer yet
      else s.write(response([0, 2]));
    });
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    const ac = new AbortController();
    const p = t.send(GET_RANDOM_8, opts(ac.signal));
    await new Promise((r) => setImmediate(r));
    while (!held) await new Promise((r) => setImmediate(r));
    ac.abort(new TpmTransportError("deadline", { errno: "ETIME" }));
    await expect(p).rejects.toMatchObject({ errno: "ETIME" });
    held.write(response([0, 1])); // the late answer to the aborted command goes to a dead socket
    const r = await t.send(GET_RANDOM_8, opts());
    expect(Array.from(r)).toEqual(Array.from(response([0, 2])));
  });

  it("removes its abort listener when a command settles", async () => {
    const peer = await dataPeer((_c, s) => s.write(response([0, 0])));
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    const ac = new AbortController();
    let added = 0;
    let removed = 0;
    const sig = ac.signal;
    const origAdd = sig.addEventListener.bind(sig);
    const origRemove = sig.removeEventListener.bind(sig);
    sig.addEventListener = ((...a: Parameters<AbortSignal["addEventListener"]>) => {
      added++;
      origAdd(...a);
    }) as AbortSignal["addEventListener"];
    sig.removeEventListener = ((...a: Parameters<AbortSignal["removeEventListener"]>) => {
      removed++;
      origRemove(...a);
    }) as AbortSignal["removeEventListener"];
    for (let i = 0; i < 5; i++) await t.send(GET_RANDOM_8, opts(sig));
    expect(added).toBeGreaterThan(0);
    expect(removed).toBe(added);
  });

  it("rejects malformed commands before any I/O", async () => {
    const t = swtpm({ port: 1 }, { control: false });
    await expect(t.send(new Uint8Array(5), opts())).rejects.toBeInstanceOf(TpmArgumentError);
    const lying = GET_RANDOM_8.slice();
    lying[5] = 99;
    await expect(t.send(lying, opts())).rejects.toThrow(/does not match/);
    const big = new Uint8Array(5000);
    big.set([0x80, 1, 0, 0, 0x13, 0x88]);
    await expect(t.send(big, opts())).rejects.toThrow(/maxCommandSize/);
    await expect(t.send(GET_RANDOM_8, opts(undefined, 1))).rejects.toThrow(/locality 1/);
    await t.close();
    await expect(t.send(GET_RANDOM_8, opts())).rejects.toBeInstanceOf(TpmStateError);
  });

  it("reports a refused connection as TpmTransportError ECONNREFUSED", async () => {
    const peer = await dataPeer(() => undefined);
    const port = peer.port;
    await peer.close();
    const t = swtpm({ port }, { control: false });
    const err = await t.send(GET_RANDOM_8, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as TpmTransportError).errno).toBe("ECONNREFUSED");
  });

  it("reports a data-channel connect past connectTimeoutMs as TpmTimeoutError", async () => {
    const peer = await dataPeer(() => undefined);
    cleanups.push(() => peer.close());
    // Timers of this clock fire on the next microtask, before any socket event: the bound always passes first.
    const instant = { now: () => 0, sleep: () => Promise.resolve(), setTimer: (_ms: number, fn: () => void) => (queueMicrotask(fn), { clear: () => undefined }) };
    const t = swtpm({ port: peer.port }, { control: false, connectTimeoutMs: 300 });
    cleanups.push(() => t.close());
    const err = await t.open!({ clock: instant, locality: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTimeoutError);
    expect((err as TpmTimeoutError).timeoutMs).toBe(300);
  });

  it("works over a UNIX socket", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-swtpm-"));
    const p = path.join(dir, "s");
    const server = net.createServer((s) => s.on("data", () => s.write(response([0, 0]))));
    await new Promise<void>((r) => server.listen(p, r));
    cleanups.push(() => new Promise((r) => server.close(r)), () => fs.rmSync(dir, { recursive: true, force: true }));
    const t = swtpm({ path: p }, { control: false });
    cleanups.push(() => t.close());
    const r = await t.send(GET_RANDOM_8, opts());
    expect(Array.from(r)).toEqual(Array.from(response([0, 0])));
  });

  it("opens the data connection in open() and reports presence", async () => {
    const peer = await dataPeer(() => undefined);
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: false });
    cleanups.push(() => t.close());
    expect(t.presence!()).toBe("absent");
    await t.open!({ clock: new FakeClock(), locality: 0 });
    expect(t.presence!()).toBe("present");
    expect(peer.connections).toBe(1);
  });
});

describe("swtpm transport: locality and cancel over the control channel", () => {
  it("sends CMD_SET_LOCALITY only when the locality changes", async () => {
    const peer = await dataPeer((_c, s) => s.write(response([0, 0])));
    const ctrl = await ctrlPeer();
    cleanups.push(() => peer.close(), () => ctrl.close());
    const t = swtpm({ port: peer.port }, { control: { port: ctrl.port } });
    cleanups.push(() => t.close());
    for (const loc of [0, 0, 3, 3, 3, 1, 0, 0]) await t.send(GET_RANDOM_8, opts(undefined, loc));
    const sent = ctrl.log.map((b) => Array.from(b));
    expect(sent).toEqual([
      [0, 0, 0, 5, 0],
      [0, 0, 0, 5, 3],
      [0, 0, 0, 5, 1],
      [0, 0, 0, 5, 0],
    ]);
  });

  it("derives the control endpoint as port + 1 by default and exposes the control client", () => {
    const t = swtpm({ host: "127.0.0.1", port: 2321 });
    expect(t.control?.endpoint).toEqual({ host: "127.0.0.1", port: 2322 });
    expect(t.localities).toEqual([0, 1, 2, 3, 4]);
    const u = swtpm({ path: "/run/x.sock" });
    expect(u.control?.endpoint).toEqual({ path: "/run/x.sock.ctrl" });
    const v = swtpm({ port: 2321 }, { control: false });
    expect(v.control).toBeUndefined();
    expect(v.localities).toEqual([0]);
  });

  it("sets the locality again after the data connection was re-established", async () => {
    const peer = await dataPeer((_c, s, n) => (n === 1 ? s.destroy() : s.write(response([0, 0]))));
    const ctrl = await ctrlPeer();
    cleanups.push(() => peer.close(), () => ctrl.close());
    const t = swtpm({ port: peer.port }, { control: new SwtpmControl({ port: ctrl.port }) });
    cleanups.push(() => t.close());
    await t.send(GET_RANDOM_8, opts(undefined, 2));
    await expect(t.send(GET_RANDOM_8, opts(undefined, 2))).rejects.toBeInstanceOf(TpmTransportError);
    await t.send(GET_RANDOM_8, opts(undefined, 2));
    expect(ctrl.log.map((b) => Array.from(b))).toEqual([
      [0, 0, 0, 5, 2],
      [0, 0, 0, 5, 2],
    ]);
  });

  it("explains how to proceed when the control channel is not reachable", async () => {
    const peer = await dataPeer((_c, s) => s.write(response([0, 0])));
    const gone = await ctrlPeer();
    await gone.close();
    cleanups.push(() => peer.close());
    const t = swtpm({ port: peer.port }, { control: { port: gone.port } });
    cleanups.push(() => t.close());
    const err = await t.send(GET_RANDOM_8, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as TpmTransportError).errno).toBe("ECONNREFUSED");
    expect((err as TpmTransportError).details).toMatch(/control: false/);
  });

  it("cancel() right after an in-flight command was aborted still sends CMD_CANCEL_TPM_CMD (the chip's order), once", async () => {
    let held = false;
    const peer = await dataPeer(() => (held = true));
    const ctrl = await ctrlPeer();
    cleanups.push(() => peer.close(), () => ctrl.close());
    const t = swtpm({ port: peer.port }, { control: { port: ctrl.port } });
    cleanups.push(() => t.close());
    const ac = new AbortController();
    const p = t.send(GET_RANDOM_8, opts(ac.signal)).catch((e: unknown) => e);
    while (!held) await new Promise((r) => setImmediate(r));
    ac.abort();
    expect(await p).toMatchObject({ name: "AbortError" });
    await t.cancel();
    await t.cancel(); // nothing in flight any more: no second CANCEL
    expect(ctrl.log.map((b) => Array.from(b))).toEqual([
      [0, 0, 0, 5, 0],
      [0, 0, 0, 9],
    ]);
  });

  it("cancel() sends CMD_CANCEL_TPM_CMD while a command is in flight", async () => {
    let held: net.Socket | undefined;
    const peer = await dataPeer((_c, s) => (held = s));
    const ctrl = await ctrlPeer();
    cleanups.push(() => peer.close(), () => ctrl.close());
    const t = swtpm({ port: peer.port }, { control: { port: ctrl.port } });
    cleanups.push(() => t.close());
    const p = t.send(GET_RANDOM_8, opts());
    while (!held) await new Promise((r) => setImmediate(r));
    await t.cancel!();
    held.write(response([0, 0]));
    await p;
    expect(ctrl.log.map((b) => Array.from(b))).toEqual([
      [0, 0, 0, 5, 0],
      [0, 0, 0, 9],
    ]);
  });
});
