import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { FakeClock } from "../../core/clock.js";
import { TpmArgumentError, TpmFormatError, TpmStateError, TpmTimeoutError, TpmTransportError, TpmkitError } from "../../errors/index.js";
import { SwtpmControl } from "./control.js";
import { PTM_CAP, SWTPM_CMD, SWTPM_RESULT, SwtpmControlError, swtpmResultName } from "../../node/swtpm-protocol.js";
import { readU32be as be32, writeU32be as put32 } from "../../wire/bytes.js";

type Handler = (req: Uint8Array, sock: net.Socket) => void;

interface Peer {
  port: number;
  requests: Uint8Array[];
  connections: number;
  close(): Promise<void>;
}

/** A scripted control peer: every arrival is one request (control clients never pipeline). */
async function peer(handler: Handler): Promise<Peer> {
  const sockets: net.Socket[] = [];
  const p: Peer = { port: 0, requests: [], connections: 0, close: async () => undefined };
  const server = net.createServer({ noDelay: true } as net.ServerOpts, (s) => {
    p.connections++;
    sockets.push(s);
    s.on("error", () => undefined);
    s.on("data", (d) => {
      const req = new Uint8Array(d);
      p.requests.push(req);
      handler(req, s);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  p.port = (server.address() as net.AddressInfo).port;
  p.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return p;
}

function words(...v: number[]): Buffer {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i));
  return b;
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(handler: Handler, options: ConstructorParameters<typeof SwtpmControl>[1] = {}) {
  const p = await peer(handler);
  const c = new SwtpmControl({ port: p.port }, options);
  cleanups.push(() => p.close(), () => c.close());
  return { p, c };
}

describe("SwtpmControl: requests and decoded replies (layouts as swtpm 0.7.1 answers them)", () => {
  it("GET_CAPABILITY decodes the capability bits", async () => {
    const { p, c } = await setup((_r, s) => s.write(words(0, 0xffff)));
    const caps = await c.getCapability();
    expect(caps.bits).toBe(0xffff);
    expect(caps.has(PTM_CAP.SET_LOCALITY)).toBe(true);
    expect(caps.has(PTM_CAP.LOCK_STORAGE)).toBe(false);
    expect(caps.names).toContain("SEND_COMMAND_HEADER");
    expect(Array.from(p.requests[0]!)).toEqual([0, 0, 0, 1]);
  });

  it("INIT sends the delete-volatile flag as a u32", async () => {
    const { p, c } = await setup((_r, s) => s.write(words(0)));
    await c.init({ deleteVolatile: true });
    await c.init();
    expect(p.requests.map((r) => Array.from(r))).toEqual([
      [0, 0, 0, 2, 0, 0, 0, 1],
      [0, 0, 0, 2, 0, 0, 0, 0],
    ]);
  });

  it("GET_TPMESTABLISHED reads the bit from the 8-byte reply", async () => {
    let bit = 1;
    const { c } = await setup((_r, s) => s.write(Buffer.from([0, 0, 0, 0, bit, 0, 0, 0])));
    expect(await c.getTpmEstablished()).toBe(true);
    bit = 0;
    expect(await c.getTpmEstablished()).toBe(false);
  });

  it("GET_TPMESTABLISHED on a stopped TPM throws TPM_BAD_ORDINAL from a 4-byte reply and stays in step", async () => {
    let n = 0;
    const { c, p } = await setup((_r, s) => s.write(n++ === 0 ? words(SWTPM_RESULT.BAD_ORDINAL) : words(0, 0xffff)));
    const err = await c.getTpmEstablished().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwtpmControlError);
    expect((err as SwtpmControlError).result).toBe(0x0a);
    expect((err as SwtpmControlError).resultName).toBe("TPM_BAD_ORDINAL");
    expect((err as SwtpmControlError).command).toBe("CMD_GET_TPMESTABLISHED");
    expect((await c.getCapability()).bits).toBe(0xffff);
    expect(p.connections).toBe(1);
  });

  it("SET_LOCALITY refused by the peer throws SwtpmControlError TPM_BAD_LOCALITY", async () => {
    const { c, p } = await setup((r, s) => s.write(words(r[4]! > 4 ? SWTPM_RESULT.BAD_LOCALITY : 0)));
    await c.setLocality(4);
    await expect(c.setLocality(5)).rejects.toMatchObject({ code: "SWTPM_CONTROL", result: 0x3d, resultName: "TPM_BAD_LOCALITY" });
    await expect(c.setLocality(256)).rejects.toBeInstanceOf(TpmArgumentError);
    expect(p.requests.map((r) => Array.from(r))).toEqual([
      [0, 0, 0, 5, 4],
      [0, 0, 0, 5, 5],
    ]);
  });

  it("simple commands send their code and an empty or 1-byte body", async () => {
    const { c, p } = await setup((_r, s) => s.write(words(0)));
    await c.shutdown();
    await c.hashStart();
    await c.hashEnd();
    await c.cancelTpmCmd();
    await c.storeVolatile();
    await c.resetTpmEstablished(3);
    await c.stop();
    expect(p.requests.map((r) => Array.from(r))).toEqual([
      [0, 0, 0, SWTPM_CMD.SHUTDOWN],
      [0, 0, 0, SWTPM_CMD.HASH_START],
      [0, 0, 0, SWTPM_CMD.HASH_END],
      [0, 0, 0, SWTPM_CMD.CANCEL_TPM_CMD],
      [0, 0, 0, SWTPM_CMD.STORE_VOLATILE],
      [0, 0, 0, SWTPM_CMD.RESET_TPMESTABLISHED, 3],
      [0, 0, 0, SWTPM_CMD.STOP],
    ]);
  });

  it("HASH_DATA splits data into messages of at most 4096 bytes, each with its length", async () => {
    const { c, p } = await setup((_r, s) => s.write(words(0)));
    const data = new Uint8Array(5000).map((_, i) => i & 0xff);
    // the peer sees arrivals, not messages: collect by total length
    await c.hashData(data);
    const all = Buffer.concat(p.requests);
    expect(be32(all, 0)).toBe(SWTPM_CMD.HASH_DATA);
    expect(be32(all, 4)).toBe(4096);
    expect(be32(all, 8 + 4096)).toBe(SWTPM_CMD.HASH_DATA);
    expect(be32(all, 12 + 4096)).toBe(904);
    expect(all.length).toBe(16 + 5000);
  });

  it("GET_CONFIG decodes the key flags", async () => {
    const { c } = await setup((_r, s) => s.write(words(0, 3)));
    expect(await c.getConfig()).toEqual({ flags: 3, fileKey: true, migrationKey: true });
  });

  it("SET_BUFFERSIZE returns size, min and max", async () => {
    const { c, p } = await setup((_r, s) => s.write(words(0, 4096, 2808, 4096)));
    expect(await c.setBufferSize()).toEqual({ size: 4096, min: 2808, max: 4096 });
    expect(Array.from(p.requests[0]!)).toEqual([0, 0, 0, 0x11, 0, 0, 0, 0]);
  });

  it("GET_INFO reads the JSON across several replies by offset", async () => {
    const text = Buffer.from(JSON.stringify({ TPMSpecification: { family: "2.0", level: 0, revision: 164 } }) + "\0");
    const { c, p } = await setup((r, s) => {
      const off = be32(r, 12);
      const part = text.subarray(off, off + 10);
      s.write(Buffer.concat([words(0, text.length, part.length), part]));
    });
    const info = await c.getInfo(1);
    expect(info.json).toEqual({ TPMSpecification: { family: "2.0", level: 0, revision: 164 } });
    expect(p.requests).toHaveLength(Math.ceil(text.length / 10));
    expect(Array.from(p.requests[0]!.subarray(0, 12))).toEqual([0, 0, 0, 0x12, 0, 0, 0, 0, 0, 0, 0, 1]);
  });

  it("GET_INFO with text that is not JSON is a TpmFormatError", async () => {
    const { c } = await setup((_r, s) => s.write(Buffer.concat([words(0, 4, 4), Buffer.from("{{{\0")])));
    await expect(c.getInfo(1)).rejects.toBeInstanceOf(TpmFormatError);
  });

  it("GET_STATEBLOB reassembles a blob sent in pieces and rejects lengths that lie", async () => {
    const blob = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    let lie = false;
    const { c } = await setup((r, s) => {
      const off = be32(r, 12);
      const part = blob.subarray(off, off + 33);
      s.write(Buffer.concat([words(0, 2, blob.length, lie ? 1000 : part.length), part]));
    });
    const got = await c.getStateBlob(1, { decrypted: true });
    expect(Buffer.from(got.blob).equals(blob)).toBe(true);
    expect(got.encrypted).toBe(true);
    lie = true;
    await expect(c.getStateBlob(1)).rejects.toThrow(/runs past totlength/);
  });

  it("GET_STATEBLOB error reply (16 bytes) throws with the result code", async () => {
    const { c } = await setup((_r, s) => s.write(words(0x800, 0, 0, 0)));
    await expect(c.getStateBlob(9)).rejects.toMatchObject({ result: 0x800, resultName: "TPM_NON_FATAL+0x0" });
  });

  it("SET_STATEBLOB writes the 12-byte header and the blob; refuses more than 512 KiB", async () => {
    const { c, p } = await setup((r, s) => {
      if (Buffer.concat(p.requests).length >= 16 + 3) s.write(words(0));
      void r;
    });
    await c.setStateBlob(2, Uint8Array.of(7, 8, 9), { encrypted: true });
    expect(Array.from(Buffer.concat(p.requests))).toEqual([0, 0, 0, 0x0d, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 7, 8, 9]);
    await expect(c.setStateBlob(1, new Uint8Array(512 * 1024 + 1))).rejects.toBeInstanceOf(TpmArgumentError);
  });

  it("raw() sends any command and returns the whole reply", async () => {
    const { c } = await setup((_r, s) => s.write(words(0, 0xabcd)));
    const r = await c.raw(0x63, new Uint8Array(0), 8);
    expect(be32(r, 4)).toBe(0xabcd);
  });
});

describe("SwtpmControl: serialization, bounds and stream hygiene", () => {
  it("never lets concurrent callers read each other's replies, however replies are split", async () => {
    let overlap = false;
    let inFlight = false;
    const { c } = await setup((r, s) => {
      if (inFlight) overlap = true;
      inFlight = true;
      // echo the requested size back, split into 1-byte writes, after a turn of the event loop
      const size = be32(r, 4);
      const reply = words(0, size, 1, 0xffffffff);
      let i = 0;
      const step = () => {
        if (i === reply.length - 1) inFlight = false;
        s.write(reply.subarray(i, i + 1));
        if (++i < reply.length) setImmediate(step);
      };
      setImmediate(step);
    });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 0xfffffff }), { minLength: 2, maxLength: 12 }), async (sizes) => {
        const results = await Promise.all(sizes.map((n) => c.setBufferSize(n)));
        expect(results.map((r) => r.size)).toEqual(sizes);
      }),
      { numRuns: 15 },
    );
    expect(overlap).toBe(false);
  });

  it("a reply that does not come within the bound gives TpmTimeoutError, drops the connection, and the next call is answered correctly", async () => {
    const clock = new FakeClock();
    let n = 0;
    let late: (() => void) | undefined;
    const { c, p } = await setup(
      (_r, s) => {
        if (n++ === 0) late = () => s.write(words(0, 1111));
        else s.write(words(0, 2222));
      },
      { clock, timeoutMs: 100 },
    );
    const first = c.getCapability().catch((e: unknown) => e);
    while (!late) await new Promise((r) => setImmediate(r));
    await clock.advance(100);
    const err = await first;
    expect(err).toBeInstanceOf(TpmTimeoutError);
    late(); // arrives on the dropped connection
    const caps = await c.getCapability();
    expect(caps.bits).toBe(2222);
    expect(p.connections).toBe(2);
  });

  it("an aborted caller waiting for its turn leaves the queue without touching the wire", async () => {
    let release: (() => void) | undefined;
    const { c, p } = await setup((_r, s) => {
      release = () => s.write(words(0, 0xffff));
    });
    const first = c.getCapability();
    const ac = new AbortController();
    const second = c.getCapability({ signal: ac.signal });
    ac.abort();
    await expect(second).rejects.toMatchObject({ name: "AbortError" });
    while (!release) await new Promise((r) => setImmediate(r));
    release();
    expect((await first).bits).toBe(0xffff);
    expect(p.requests).toHaveLength(1);
  });

  it("unsolicited or surplus reply bytes drop the connection instead of desynchronising the next exchange", async () => {
    let n = 0;
    const { c, p } = await setup((_r, s) => {
      if (n++ === 0) s.write(Buffer.concat([words(0), Buffer.from([1, 2, 3])])); // 3 bytes too many
      else s.write(words(0));
    });
    await expect(c.stop()).rejects.toBeInstanceOf(TpmFormatError);
    await c.stop();
    expect(p.connections).toBe(2);
  });

  it("a peer that closes mid-reply gives TpmTransportError and the next call reconnects", async () => {
    let n = 0;
    const { c, p } = await setup((_r, s) => {
      if (n++ === 0) s.end(Buffer.from([0, 0]));
      else s.write(words(0, 5));
    });
    await expect(c.getCapability()).rejects.toBeInstanceOf(TpmTransportError);
    expect((await c.getCapability()).bits).toBe(5);
    expect(p.connections).toBe(2);
  });

  it("a refused connection is TpmTransportError ECONNREFUSED; calls after close() are TpmStateError", async () => {
    const p = await peer(() => undefined);
    const port = p.port;
    await p.close();
    const c = new SwtpmControl({ port });
    await expect(c.getCapability()).rejects.toMatchObject({ errno: "ECONNREFUSED" });
    await c.close();
    await expect(c.getCapability()).rejects.toBeInstanceOf(TpmStateError);
  });
});

describe("SwtpmControl: arbitrary peer bytes (property)", () => {
  it("any reply followed by a close settles every command with a result or a typed tpmkit error", async () => {
    let reply = new Uint8Array(0);
    const { c } = await setup((_r, s) => s.end(reply));
    const calls: Array<() => Promise<unknown>> = [
      () => c.getCapability(),
      () => c.getTpmEstablished(),
      () => c.setLocality(1),
      () => c.getConfig(),
      () => c.setBufferSize(),
      () => c.getInfo(3),
      () => c.getStateBlob(1),
      () => c.init(),
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          // well-formed heads with lying lengths
          fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })).map(([r, a, b]) => new Uint8Array(words(r === 3 ? 0 : r, a, b, 5))),
        ),
        fc.integer({ min: 0, max: calls.length - 1 }),
        async (bytes, which) => {
          reply = bytes;
          const out = await calls[which]!().then(
            () => "ok",
            (e: unknown) => e,
          );
          if (out !== "ok") expect(out).toBeInstanceOf(TpmkitError);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("swtpm control protocol helpers", () => {
  it("names TPM 1.2 results, TPM 2 codes and unknown values", () => {
    expect(swtpmResultName(0x0a)).toBe("TPM_BAD_ORDINAL");
    expect(swtpmResultName(0x3d)).toBe("TPM_BAD_LOCALITY");
    expect(swtpmResultName(0x101)).toBe("TPM_RC_FAILURE");
    expect(swtpmResultName(0x801)).toBe("TPM_NON_FATAL+0x1");
    expect(swtpmResultName(0x12345678)).toBe("UNKNOWN(0x12345678)");
  });

  it("the wire format's writeU32be/readU32be the control client uses round-trip every u32 (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => {
        const b = new Uint8Array(4);
        put32(b, 0, v);
        expect(be32(b, 0)).toBe(v);
      }),
    );
  });
});
