import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../core/clock.js";
import { serveSwtpm, type SwtpmServeOptions, type SwtpmServer } from "./swtpm.js";
import { serveMssim, type ServeMssimOptions, type MssimServer } from "./mssim.js";
import type { CommandSink } from "./common.js";
import { TpmArgumentError } from "../errors/index.js";

const GET_RANDOM_8 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8]);
/** TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_FIXED, 64). */
const GET_CAP = Uint8Array.from([0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7a, 0, 0, 0, 6, 0, 0, 1, 0, 0, 0, 0, 64]);

/** A fake TPM: GetRandom answers bytes 1..n; GetCapability a 2 KiB response; else success with the locality as last byte. */
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
      if (cc === 0x17a) {
        const r = new Uint8Array(2048);
        r.set([0x80, 1, 0, 0, 2048 >> 8, 2048 & 0xff, 0, 0, 0, 0]);
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

async function startSwtpm(chip: CommandSink = fakeChip(), options: SwtpmServeOptions = {}): Promise<SwtpmServer & { port: number; ctrlPort: number }> {
  const s = await serveSwtpm({ chip, port: 0 }, options);
  cleanups.push(() => s.close());
  return Object.assign(s, { port: (s.address as { port: number }).port, ctrlPort: (s.controlAddress as { port: number }).port });
}

function u32s(...v: number[]): Buffer {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i));
  return b;
}

/** Bounded wait: rejects after `ms` with `what`. */
function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}

/** Connects, writes, collects until `want` bytes arrived (then destroys) or the server closes. */
function raw(port: number, data: Uint8Array, want = Infinity): Promise<{ bytes: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    let len = 0;
    s.on("error", reject);
    s.on("connect", () => s.write(data));
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

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(s));
    s.on("error", reject);
    cleanups.push(() => s.destroy());
  });
}

const GOOD_CLIENT_BOUND_MS = 4000;

describe("serveSwtpm abuse: refused frames, idle and slowloris connections (issue 9, finding 1)", () => {
  it("a 0xFFFFFFFF size header with 64 KiB in one burst, then close, does not wedge the server", async () => {
    const s = await startSwtpm();
    const burst = Buffer.alloc(10 + 64 * 1024);
    burst.set([0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0x7b]);
    await new Promise<void>((resolve) => {
      const c = net.connect({ port: s.port, host: "127.0.0.1" }, () => c.end(burst));
      c.on("error", () => undefined);
      c.on("close", () => resolve());
      c.resume();
    });
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "good client after the oversize burst");
    expect(bytes.length).toBe(20);
  });
});

describe("serveSwtpm abuse: idle and slowloris connections (issue 9, finding 1)", () => {
  it("a refused prefixed frame (size 0xFFFFFFFF, 64 KiB burst) closes too, and the next client is served", async () => {
    const s = await startSwtpm();
    const burst = Buffer.alloc(9 + 64 * 1024);
    burst.set([0, 0, 0, 8, 0, 0xff, 0xff, 0xff, 0xff]);
    const refused = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, burst), "refused client closed");
    expect(refused.closed).toBe(true);
    expect(refused.bytes.readUInt32BE(0)).toBe(10);
    expect(refused.bytes.readUInt32BE(10)).toBe(0x142);
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "good client");
    expect(bytes.length).toBe(20);
    expect(s.stats.refusedFrames).toBe(1);
  });

  it("with idleTimeoutMs, a connection that holds the TPM silently is dropped once another client waits", async () => {
    const s = await startSwtpm(fakeChip(), { idleTimeoutMs: 150 });
    const idle = await connect(s.port);
    const idleClosed = new Promise<void>((r) => idle.once("close", () => r()));
    idle.on("error", () => undefined);
    // The idle client is served first (it is the active connection), then says nothing.
    idle.write(GET_RANDOM_8);
    await within(GOOD_CLIENT_BOUND_MS, new Promise((r) => idle.once("data", r)), "idle client's first answer");
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "second client served after the idle bound");
    expect(bytes.length).toBe(20);
    await within(GOOD_CLIENT_BOUND_MS, idleClosed, "idle client dropped");
    expect(s.stats.idleDrops).toBe(1);
  });

  it("with idleTimeoutMs, an idle connection keeps the TPM while nobody else waits", async () => {
    const clock = new FakeClock();
    const s = await startSwtpm(fakeChip(), { idleTimeoutMs: 100, clock });
    const c = await connect(s.port);
    c.write(GET_RANDOM_8);
    await within(GOOD_CLIENT_BOUND_MS, new Promise((r) => c.once("data", r)), "first answer");
    for (let i = 0; i < 5; i++) {
      // bounded: the server arms its idle timer within a few turns of the event loop
      for (let spins = 0; clock.pending === 0; spins++) {
        if (spins > 1000) throw new Error("the server armed no idle timer");
        await new Promise((r) => setImmediate(r));
      }
      await clock.advance(100);
    }
    c.write(GET_RANDOM_8);
    await within(GOOD_CLIENT_BOUND_MS, new Promise((r) => c.once("data", r)), "answer after five idle periods");
    expect(s.stats.idleDrops).toBe(0);
  });

  it("a slowloris client trickling a frame is dropped after commandReadTimeoutMs; the next client is served", async () => {
    const s = await startSwtpm(fakeChip(), { commandReadTimeoutMs: 300 });
    const slow = await connect(s.port);
    slow.on("error", () => undefined);
    const slowClosed = new Promise<void>((r) => slow.once("close", () => r()));
    const frame = Buffer.alloc(4096);
    frame.set([0x80, 0x01, 0, 0, 0x10, 0x00, 0, 0, 0x01, 0x7b]);
    let i = 0;
    const trickle = setInterval(() => {
      if (!slow.destroyed && i < frame.length) slow.write(frame.subarray(i, ++i));
    }, 20);
    cleanups.push(() => clearInterval(trickle));
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "good client after the slowloris");
    expect(bytes.length).toBe(20);
    await within(GOOD_CLIENT_BOUND_MS, slowClosed, "slowloris dropped");
    expect(s.stats.frameTimeouts).toBe(1);
  });
});

/** Pipelines `n` GetCapability commands (2 KiB answers each) and never reads; resolves once the server has settled. */
async function flood(port: number, settled: () => number, n: number, prefix?: (c: Uint8Array) => Buffer): Promise<net.Socket> {
  const c = await connect(port);
  c.on("error", () => undefined);
  c.pause();
  const one = prefix ? prefix(GET_CAP) : Buffer.from(GET_CAP);
  c.write(Buffer.concat(Array.from({ length: n }, () => one)));
  // Settled: the count of answered commands stops moving (backpressure) or reaches n (none).
  let last = -1;
  let still = 0;
  const end = Date.now() + 3000;
  while (Date.now() < end && still < 5) {
    await new Promise((r) => setTimeout(r, 40));
    const now = settled();
    still = now === last ? still + 1 : 0;
    last = now;
    if (now >= n) break;
  }
  return c;
}

describe("backpressure: a client that never reads (issue 9, finding 2)", () => {
  const N = 3000; // 6 MiB of answers: far beyond what loopback socket buffers absorb
  const BOUND = 64 * 1024 + 4096;

  it("swtpm: the server's unsent output stays bounded, and after the client leaves a good client is served", async () => {
    const s = await startSwtpm();
    const c = await flood(s.port, () => s.state.commands, N);
    expect(s.state.commands).toBeLessThan(N);
    expect(s.stats.peakUnsentBytes).toBeLessThanOrEqual(BOUND);
    c.destroy();
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "good client after the flood");
    expect(bytes.length).toBe(20);
  });

  it("mssim: the server's unsent output stays bounded, and after the client leaves a good client is served", async () => {
    let count = 0;
    const inner = fakeChip();
    const chip: CommandSink = { transmit: (cmd, o) => (count++, inner.transmit(cmd, o)) };
    const s: MssimServer = await serveMssim({ chip, port: 0 }, { poweredOn: true } satisfies ServeMssimOptions);
    cleanups.push(() => s.close());
    const wrap = (cmd: Uint8Array) => Buffer.concat([u32s(8), Buffer.from([0]), u32s(cmd.length), Buffer.from(cmd)]);
    const c = await flood(s.port, () => count, N, wrap);
    expect(count).toBeLessThan(N);
    expect(s.peakUnsentBytes).toBeLessThanOrEqual(BOUND);
    c.destroy();
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, wrap(GET_RANDOM_8), 28), "good client after the flood");
    expect(bytes.readUInt32BE(0)).toBe(20);
  });
});

describe("serveSwtpm: a frame's locality is that frame's only (issue 9, finding 3)", () => {
  const prefixed = (locality: number, cmd: Uint8Array) => Buffer.concat([u32s(8), Buffer.from([locality]), u32s(cmd.length), Buffer.from(cmd)]);

  it("a prefixed frame with locality above 4 gets TPM_RC_LOCALITY (as swtpm 0.7.1) without reaching the TPM, and poisons nothing", async () => {
    const log: Array<{ cc: number; locality: number }> = [];
    const s = await startSwtpm(fakeChip(log));
    for (const loc of [5, 7, 255]) {
      const { bytes } = await raw(s.port, prefixed(loc, GET_RANDOM_8), 18);
      expect(bytes.readUInt32BE(0)).toBe(10);
      expect(bytes.readUInt32BE(4 + 6)).toBe(0x907);
      expect(bytes.readUInt32BE(14)).toBe(0);
    }
    expect(log).toEqual([]);
    expect(s.stats.badLocalities).toBe(3);
    // Another client, raw frame: served at the default locality 0.
    const { bytes } = await raw(s.port, GET_RANDOM_8, 20);
    expect(bytes.readUInt32BE(6)).toBe(0);
    expect(log).toEqual([{ cc: 0x17b, locality: 0 }]);
    expect(s.state.locality).toBe(0);
  });

  it("localities 1–4 in a prefixed frame apply to that frame only, on the same and on other connections", async () => {
    const log: Array<{ cc: number; locality: number }> = [];
    const s = await startSwtpm(fakeChip(log));
    const OTHER = Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 0x01, 0x44); // any other command: answered with its locality
    for (const loc of [1, 2, 3, 4]) {
      // prefixed at `loc`, then raw on the same connection: 18 + 11 bytes
      await raw(s.port, Buffer.concat([prefixed(loc, OTHER), Buffer.from(OTHER)]), 29);
      await raw(s.port, OTHER, 11);
    }
    expect(log.map((e) => e.locality)).toEqual([1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0]);
    expect(s.state.locality).toBe(0);
  });
});

describe("serveSwtpm: CMD_SHUTDOWN is orderly, saved and reported (issue 9, finding 3)", () => {
  it("lets the command in flight finish, then runs the shutdown hook, then closes with reason 'shutdown'", async () => {
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const chip: CommandSink = {
      async transmit() {
        events.push("command start");
        started();
        await gate;
        events.push("command end");
        return Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0);
      },
    };
    const s = await startSwtpm(chip, { power: { shutdown: () => void events.push("shutdown hook (save)") } });
    const answer = raw(s.port, GET_RANDOM_8, 10);
    await within(GOOD_CLIENT_BOUND_MS, running, "command running");
    const ctrl = await connect(s.ctrlPort);
    const reply = new Promise<Buffer>((r) => ctrl.once("data", r));
    ctrl.write(u32s(3)); // CMD_SHUTDOWN
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toEqual(["command start"]);
    release();
    expect((await within(GOOD_CLIENT_BOUND_MS, reply, "SHUTDOWN reply")).readUInt32BE(0)).toBe(0);
    expect(await within(GOOD_CLIENT_BOUND_MS, s.closed, "closed")).toEqual({ reason: "shutdown", result: 0 });
    expect(events).toEqual(["command start", "command end", "shutdown hook (save)"]);
    expect((await answer).bytes.length).toBe(10);
  });

  it("close() resolves closed with reason 'close'", async () => {
    const s = await startSwtpm();
    await s.close();
    expect(await s.closed).toEqual({ reason: "close" });
  });
});

/** The mssim TPM_SEND_COMMAND frame (code 8, locality, size, command). */
const mssimFrame = (cmd: Uint8Array, locality = 0) => Buffer.concat([u32s(8), Buffer.from([locality]), u32s(cmd.length), Buffer.from(cmd)]);

async function startMssim(chip: CommandSink = fakeChip(), options: ServeMssimOptions = {}): Promise<MssimServer> {
  const s = await serveMssim({ chip, port: 0 }, { poweredOn: true, ...options });
  cleanups.push(() => s.close());
  return s;
}

describe("serveMssim abuse: huge size prefix, idle and slowloris connections, bad localities", () => {
  it("a 0xFFFFFFFF size prefix with 64 KiB in one burst closes that connection unread; a good client is served", async () => {
    const log: Array<{ cc: number; locality: number }> = [];
    const s = await startMssim(fakeChip(log));
    const burst = Buffer.alloc(9 + 64 * 1024);
    burst.set([0, 0, 0, 8, 0, 0xff, 0xff, 0xff, 0xff]);
    const refused = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, burst), "refused client closed");
    expect(refused.closed).toBe(true);
    expect(refused.bytes.length).toBe(0);
    expect(log).toEqual([]);
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, mssimFrame(GET_RANDOM_8), 28), "good client");
    expect(bytes.readUInt32BE(0)).toBe(20);
  });

  it("100 idle connections and a slowloris trickling a frame do not delay a good client (commands run in arrival order of whole frames)", async () => {
    const s = await startMssim(fakeChip(), { frameTimeoutMs: 60_000 });
    for (let i = 0; i < 100; i++) (await connect(s.port)).on("error", () => undefined);
    const slow = await connect(s.port);
    slow.on("error", () => undefined);
    slow.write(mssimFrame(GET_RANDOM_8).subarray(0, 7)); // a frame started and never finished
    for (let round = 0; round < 3; round++) {
      const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, mssimFrame(GET_RANDOM_8), 28), "good client beside idle and slow ones");
      expect(bytes.readUInt32BE(0)).toBe(20);
    }
    expect(s.connections).toBeGreaterThanOrEqual(101);
  });

  it("a frame at locality 7 gets TPM_RC_LOCALITY without reaching the TPM, and the next client runs at its own locality", async () => {
    const log: Array<{ cc: number; locality: number }> = [];
    const s = await startMssim(fakeChip(log));
    const OTHER = Uint8Array.of(0x80, 1, 0, 0, 0, 10, 0, 0, 0x01, 0x44);
    const bad = await raw(s.port, mssimFrame(OTHER, 7), 18);
    expect(bad.bytes.readUInt32BE(4 + 6)).toBe(0x907);
    const good = await raw(s.port, mssimFrame(OTHER, 0), 19);
    expect(good.bytes[4 + 10]).toBe(0);
    expect(log).toEqual([{ cc: 0x144, locality: 0 }]);
  });

  it("platform-port misuse (unknown code, STOP, SESSION_END, garbage) leaves the command port serving", async () => {
    const s = await startMssim();
    for (const junk of [u32s(99), u32s(21), u32s(20), Buffer.from("GET / HTTP/1.1\r\n\r\n")]) {
      await within(GOOD_CLIENT_BOUND_MS, raw(s.platformPort, junk, 4), "platform client");
      const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, mssimFrame(GET_RANDOM_8), 28), "good client after platform misuse");
      expect(bytes.readUInt32BE(0)).toBe(20);
    }
  });
});

describe("serveSwtpm abuse: bounds that cannot be switched off, idle queues, control-channel misuse", () => {
  it("the partial-frame bound cannot be switched off (commandReadTimeoutMs must be finite and positive); idleTimeoutMs must be positive", async () => {
    for (const commandReadTimeoutMs of [Infinity, 0, -1, Number.NaN]) {
      await expect(serveSwtpm({ chip: fakeChip(), port: 0 }, { commandReadTimeoutMs })).rejects.toBeInstanceOf(TpmArgumentError);
    }
    await expect(serveSwtpm({ chip: fakeChip(), port: 0 }, { idleTimeoutMs: 0 })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(serveSwtpm({ chip: fakeChip(), port: 0 }, { maxUnsentBytes: -1 })).rejects.toBeInstanceOf(TpmArgumentError);
  });

  it("with idleTimeoutMs, 20 idle connections queued ahead of a good client are each dropped and the good client is served", async () => {
    const s = await startSwtpm(fakeChip(), { idleTimeoutMs: 25 });
    for (let i = 0; i < 20; i++) (await connect(s.port)).on("error", () => undefined);
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "good client behind 20 idle connections");
    expect(bytes.length).toBe(20);
    expect(s.stats.idleDrops).toBe(20);
  });

  it("control-channel misuse (garbage, unknown codes, lying lengths, an incomplete message, an idle control client) never delays the data channel", async () => {
    const clock = new FakeClock();
    const s = await startSwtpm(fakeChip(), { clock });
    const misuse = [
      u32s(0x63), // unknown command: TPM_BAD_ORDINAL, channel stays open
      u32s(7, 0x10000), // HASH_DATA longer than the protocol carries
      u32s(0x0d, 0, 1, 0x7fffffff), // SET_STATEBLOB with a huge length
      Buffer.from("GET / HTTP/1.1\r\n\r\n"),
    ];
    for (const m of misuse) {
      const r = await within(GOOD_CLIENT_BOUND_MS, raw(s.ctrlPort, m, 4), "control answer");
      expect(r.bytes.readUInt32BE(0)).not.toBe(0);
      const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "good data client after control misuse");
      expect(bytes.length).toBe(20);
    }
    // An incomplete control message from a client that then sits idle: the data channel is unaffected,
    // and the message is dropped after controlReadTimeoutMs (injected clock).
    const idle = await connect(s.ctrlPort);
    idle.on("error", () => undefined);
    const idleClosed = new Promise<void>((r) => idle.once("close", () => r()));
    idle.write(Buffer.from([0, 0, 0, 2, 0, 0]));
    const { bytes } = await within(GOOD_CLIENT_BOUND_MS, raw(s.port, GET_RANDOM_8, 20), "good data client beside an idle control client");
    expect(bytes.length).toBe(20);
    for (let spins = 0; clock.pending === 0; spins++) {
      if (spins > 1000) throw new Error("the control channel armed no read bound");
      await new Promise((r) => setImmediate(r));
    }
    await clock.advance(500);
    await within(GOOD_CLIENT_BOUND_MS, idleClosed, "incomplete control message dropped");
    expect(s.state.locality).toBe(0);
  });
});
