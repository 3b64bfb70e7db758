import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock, systemClock } from "../core/clock.js";
import { TpmStateError, TpmTimeoutError, TpmTransportError } from "../errors/index.js";
import { connectSocket } from "./connect.js";
import { SocketReader } from "./socket-reader.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A connected pair: `peer` is the server side, `reader` reads the client side. */
async function pair(): Promise<{ peer: net.Socket; reader: SocketReader; client: net.Socket }> {
  let peer: net.Socket | undefined;
  const server = net.createServer((s) => {
    s.on("error", () => undefined);
    peer = s;
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const client = await connectSocket({ port: (server.address() as net.AddressInfo).port }, { clock: systemClock, timeoutMs: 2000, label: "test" });
  while (!peer) await new Promise((r) => setImmediate(r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())), () => client.destroy(), () => peer!.destroy());
  return { peer, client, reader: new SocketReader(client, "test peer") };
}

describe("SocketReader", () => {
  it("reads exact byte counts however the peer splits them", async () => {
    const { peer, reader } = await pair();
    const p = reader.read(6);
    peer.write(Uint8Array.of(1, 2));
    await new Promise((r) => setTimeout(r, 5));
    peer.write(Uint8Array.of(3, 4, 5, 6, 7));
    expect(Array.from(await p)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(reader.buffered).toBe(1);
    expect(Array.from(await reader.read(1))).toEqual([7]);
  });

  it("wait(n) resolves once n bytes are buffered and takes none", async () => {
    const { peer, reader } = await pair();
    const w = reader.wait(1);
    peer.write(Uint8Array.of(9, 8));
    await w;
    while (reader.buffered < 2) await new Promise((r) => setImmediate(r));
    expect(Array.from(await reader.read(2))).toEqual([9, 8]);
  });

  it("bounds a read by its deadline (TpmTimeoutError) and fails reads once the peer closes (ECONNRESET)", async () => {
    const { peer, reader } = await pair();
    const clock = new FakeClock();
    const late = reader.read(4, { clock, timeoutMs: 100, what: "frame" }).catch((e: unknown) => e);
    await clock.advance(100);
    const err = await late;
    expect(err).toBeInstanceOf(TpmTimeoutError);
    expect((err as TpmTimeoutError).operation).toBe("test peer: reading frame");
    peer.end(Uint8Array.of(1));
    const closed = await reader.read(4).catch((e: unknown) => e);
    expect(closed).toBeInstanceOf(TpmTransportError);
    expect((closed as TpmTransportError).errno).toBe("ECONNRESET");
  });

  it("destroy(error) drops buffered bytes, fails the pending and later reads with that error, and closes the socket", async () => {
    const { peer, reader, client } = await pair();
    peer.write(Uint8Array.of(1, 2, 3));
    while (reader.buffered < 3) await new Promise((r) => setImmediate(r));
    const pending = reader.read(8);
    reader.destroy(new TpmStateError("closed by owner"));
    await expect(pending).rejects.toBeInstanceOf(TpmStateError);
    await expect(reader.read(1)).rejects.toBeInstanceOf(TpmStateError);
    expect(reader.closed).toBe(true);
    expect(reader.buffered).toBe(0);
    expect(client.destroyed).toBe(true);
  });

  it("rejects an aborted read with the signal's error", async () => {
    const { reader } = await pair();
    const ac = new AbortController();
    const p = reader.read(4, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
  });
});
