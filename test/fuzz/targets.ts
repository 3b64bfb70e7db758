/**
 * Fuzz targets (issue 9, "the tests that found these"): each feeds seeded mutations of a seed
 * corpus (every reproducer of issue 9 first, replayed as is) to one parser or server and checks
 * the one property everywhere: a well-formed result or a TpmkitError (the CLI: its UsageError),
 * no hang, no crash, and the thing stays usable after.
 */
import { EventEmitter } from "node:events";
import { netHooks } from "./net-hooks.js";
import { Rng, mutate, rsp, u16, u32 } from "./mutate.js";
import { TpmkitError } from "../../src/errors/index.js";
import { SoftTpm } from "../../src/softtpm/softtpm.js";
import { SOFTTPM_COMMAND_ATTRIBUTES } from "../../src/softtpm/index.js";
import { MemoryStorage } from "../../src/core/storage.js";
import { decodeState, encodeState } from "../../src/softtpm/state.js";
import { memory } from "../../src/transports/memory/index.js";
import { Tpm } from "../../src/client/tpm.js";
import { parseTcti, parseKeyValues } from "../../src/platform/tcti-parse.js";
import { parseVerbLine, splitVerb, parseLocality, UsageError } from "../../src/cli/args.js";
import { VERBS } from "../../src/cli/verbs/index.js";
import { serveSwtpm } from "../../src/server/swtpm.js";
import { serveMssim } from "../../src/server/mssim.js";
import { swtpm } from "../../src/transports/swtpm/transport.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { TpmBackend } from "../../src/core/transport.js";
import { systemClock } from "../../src/core/clock.js";
import type { CommandSink } from "../../src/server/common.js";

/** One fuzz target: runs `cases` cases (or until `untilMs` on Date.now()) and returns how many ran. */
export interface FuzzTarget {
  readonly name: string;
  /** Cases the CI run uses when TPMKIT_FUZZ_CASES is not set (kept so the whole file fits its budget). */
  readonly ciCases?: number;
  run(rng: Rng, cases: number, untilMs?: number): Promise<number>;
}

/** Thrown when a case breaks the property; names the target, case and input. */
export class FuzzFailure extends Error {}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const typed = (e: unknown): boolean => e instanceof TpmkitError;

function fail(target: string, i: number, input: string, why: unknown): never {
  const msg = `${target} case ${i}: ${why instanceof Error ? `${why.name}: ${why.message}\n${why.stack}` : String(why)}\ninput: ${input}`;
  throw new FuzzFailure(msg);
}

const STARTUP_CLEAR = Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0);
const GET_RANDOM = Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8);
const rcOf = (r: Uint8Array): number => ((r[6]! << 24) | (r[7]! << 16) | (r[8]! << 8) | r[9]!) >>> 0;
const sizeOf = (r: Uint8Array, at = 2): number => ((r[at]! << 24) | (r[at + 1]! << 16) | (r[at + 2]! << 8) | r[at + 3]!) >>> 0;

/** A TPM response is well formed: ≥ 10 bytes, size field = length, tag 0x8001/0x8002. */
function wellFormed(r: unknown): string | undefined {
  if (!(r instanceof Uint8Array)) return "response is not a Uint8Array";
  if (r.length < 10 || r.length > 4096) return `response length ${r.length}`;
  if (sizeOf(r) !== r.length) return `size field ${sizeOf(r)} != length ${r.length}`;
  const tag = (r[0]! << 8) | r[1]!;
  if (tag !== 0x8001 && tag !== 0x8002) return `tag 0x${tag.toString(16)}`;
  return undefined;
}

/** Runs `body` for each case index; corpus entries (replayed first) are cases 0..n-1. */
async function loop(cases: number, untilMs: number | undefined, body: (i: number) => Promise<void> | void): Promise<number> {
  let i = 0;
  for (; untilMs !== undefined ? Date.now() < untilMs : i < cases; i++) {
    const p = body(i);
    if (p) await p;
  }
  return i;
}

/** Rejects if `p` has not settled in `ms` (a hang). Real timers: only a bound, never expected to fire. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`hang: ${what} did not settle in ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

// ------------------------------------------------------------------ SoftTpm command dispatch (B1)

const CODES = SOFTTPM_COMMAND_ATTRIBUTES.map((a) => a & 0xffff);

function commandSeeds(): Uint8Array[] {
  const seeds: Uint8Array[] = [STARTUP_CLEAR, GET_RANDOM];
  // One seed per command code: plausible handle + session area + params.
  for (const cc of CODES) {
    const body = [...u32(0x40000001), ...u32(9), ...u32(0x40000009), 0, 0, 0, 0, 0, ...u16(8), ...u32(0x01000001), ...u16(0x000b), 3, 0xff, 0, 0];
    seeds.push(Uint8Array.from([...u16(0x8002), ...u32(10 + body.length), ...u32(cc), ...body]));
    seeds.push(Uint8Array.from([...u16(0x8001), ...u32(14), ...u32(cc), ...u32(0x01000001)]));
  }
  // Issue 9 reproducers at the command level.
  seeds.push(Uint8Array.from([...u16(0x8001), ...u32(0xffffffff), ...u32(0x17b)]));
  seeds.push(Uint8Array.from([...u16(0x8001), ...u32(12), ...u32(0x186), ...u16(0x000b)])); // HashSequenceStart shapes
  return seeds;
}

export const softtpmDispatch: FuzzTarget = {
  name: "softtpm-dispatch",
  ciCases: 100000,
  async run(rng, cases, untilMs) {
    const storage = new MemoryStorage();
    let t = new SoftTpm({ seed: "fuzz-dispatch", storage });
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    const seeds = commandSeeds();
    return loop(cases, untilMs, async (i) => {
      const input = i < seeds.length ? seeds[i]! : mutate(rng, rng.pick(seeds), 4200);
      const locality = rng.int(5);
      let r: Uint8Array;
      try {
        r = t.executeSync(input, locality);
      } catch (e) {
        fail(this.name, i, hex(input), e);
      }
      const bad = wellFormed(r);
      if (bad) fail(this.name, i, hex(input), bad);
      if (rcOf(r) === 0x101) fail(this.name, i, hex(input), "TPM_RC_FAILURE: an internal error was swallowed");
      let g = t.executeSync(GET_RANDOM, 0);
      if (rcOf(g) === 0x100) {
        t.executeSync(STARTUP_CLEAR, 0); // a fuzzed Shutdown + restart is fine
        g = t.executeSync(GET_RANDOM, 0);
      }
      if (rcOf(g) !== 0) fail(this.name, i, hex(input), `not usable after: GetRandom rc 0x${rcOf(g).toString(16)}`);
      // State save → restore round trip per some inputs (libtpms fuzz.cc does it per input).
      if (i % 500 === 0) {
        await t.flush();
        try {
          decodeState(storage.data!);
        } catch (e) {
          fail(this.name, i, hex(input), e);
        }
        t = new SoftTpm({ seed: "fuzz-dispatch", storage });
        await t.start();
        if (rcOf(t.executeSync(GET_RANDOM, 0)) !== 0) t.executeSync(STARTUP_CLEAR, 0);
      }
    });
  },
};

// ------------------------------------------------------------------ state-blob decoder (B3)

export const stateDecoder: FuzzTarget = {
  name: "state-decoder",
  ciCases: 20000,
  async run(rng, cases, untilMs) {
    // Valid blobs: a fresh state and one with NV indices, from a SoftTpm.
    const storage = new MemoryStorage();
    const t = new SoftTpm({ seed: "fuzz-state", storage });
    await t.start();
    t.executeSync(STARTUP_CLEAR, 0);
    await t.flush();
    const blobs: Uint8Array[] = [storage.data!.slice()];
    const tpm = await Tpm.open(memory({ backend: t, start: false }), { startup: false });
    await tpm.nvDefineSpace({ index: 0x01000001, size: 16 });
    await tpm.nvWrite(0x01000001, Uint8Array.of(1, 2, 3));
    await tpm.nvDefineSpace({ index: 0x01000002, size: 8, attributes: 0x00000016 | 0x00020000 | 0x00040000 | (1 << 4) });
    await t.flush();
    blobs.push(storage.data!.slice());
    blobs.push(encodeState(decodeState(storage.data!)));
    const HEADER = 12;
    return loop(cases, untilMs, async (i) => {
      const seed = rng.pick(blobs);
      let input: Uint8Array;
      if (i < blobs.length) input = blobs[i]!;
      else if (rng.oneIn(4)) input = mutate(rng, seed, 1 << 16); // raw: header/checksum checks
      else {
        // Mutate the body, then fix the length field and checksum so the body decoder is reached.
        const body = mutate(rng, seed.subarray(HEADER, seed.length - 32), 1 << 16);
        input = new Uint8Array(HEADER + body.length + 32);
        input.set(seed.subarray(0, 8));
        input.set(u32(body.length), 8);
        input.set(body, HEADER);
        input.set(sha256(input.subarray(0, HEADER + body.length)), HEADER + body.length);
      }
      let ok = false;
      try {
        decodeState(input);
        ok = true;
      } catch (e) {
        if (!typed(e)) fail(this.name, i, hex(input), e);
      }
      // A blob that decodes must load and run (every 16th, it is slower).
      if (ok && i % 16 === 0) {
        const s = new SoftTpm({ seed: "fuzz-state-load", storage: new MemoryStorage(input) });
        try {
          await s.start();
        } catch (e) {
          if (!typed(e)) fail(this.name, i, hex(input), e);
          return;
        }
        let g = s.executeSync(GET_RANDOM, 0);
        if (rcOf(g) === 0x100) g = (s.executeSync(STARTUP_CLEAR, 0), s.executeSync(GET_RANDOM, 0));
        if (rcOf(g) !== 0) fail(this.name, i, hex(input), `loaded state not usable: rc 0x${rcOf(g).toString(16)}`);
      }
    });
  },
};

// ------------------------------------------------------------------ Tpm response parsers (P2)

type Call = (tpm: Tpm) => Promise<unknown>;
const NVI = 0x01000001;
const CALLS: Record<string, Call> = {
  getRandom: (t) => t.getRandom(16),
  getTestResult: (t) => t.getTestResult(),
  incrementalSelfTest: (t) => t.incrementalSelfTest([0x0b]),
  getCapabilityAlgs: (t) => t.getCapability(0, 0, 8),
  getProperties: (t) => t.getProperties(),
  getCommands: (t) => t.getCommands(),
  getHandles: (t) => t.getHandles(),
  getPcrBanks: (t) => t.getPcrBanks(),
  getInfo: (t) => t.getInfo(),
  pcrRead: (t) => t.pcrRead({ sha256: [0, 1, 2], sha1: [0] }),
  pcrEvent: (t) => t.pcrEvent(16, Uint8Array.of(1)),
  hash: (t) => t.hash(Uint8Array.of(1, 2)),
  digest: (t) => t.digest(Uint8Array.of(1, 2)),
  readClock: (t) => t.readClock(),
  nvReadPublic: (t) => t.nvReadPublic(NVI),
  nvRead: (t) => t.nvRead(NVI, { size: 8 }),
  nvReadCounter: (t) => t.nvReadCounter(NVI),
  hashSequenceStart: (t) => t.hashSequenceStart(),
};

export const tpmResponses: FuzzTarget = {
  name: "tpm-responses",
  ciCases: 20000,
  async run(rng, cases, untilMs) {
    const soft = new SoftTpm({ seed: "fuzz-responses" });
    let replace: Uint8Array | undefined;
    let last: Uint8Array | undefined;
    const backend: TpmBackend = {
      start: () => soft.start(),
      async execute(command, locality) {
        if (replace) return replace;
        return (last = soft.executeSync(command, locality));
      },
    };
    const tpm = await Tpm.open(memory({ backend }));
    await tpm.nvDefineSpace({ index: NVI, size: 8 });
    await tpm.nvWrite(NVI, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    // Record one genuine response per method (the last command each sends).
    const seeds: [string, Uint8Array][] = [];
    for (const [name, call] of Object.entries(CALLS)) {
      await call(tpm).catch(() => undefined);
      seeds.push([name, last!]);
    }
    // Issue 9 reproducers: a 64-byte sha256 digest in PCR_Read, another capability, a non-transient sequence handle, NV_ReadPublic of another index.
    const corpus: [string, Uint8Array][] = [
      ["pcrRead", rsp(0, [...u32(7), ...u32(1), ...u16(0x0b), 3, 7, 0, 0, ...u32(3), ...[0, 1, 2].flatMap(() => [...u16(64), ...new Array<number>(64).fill(0)])])],
      ["getCapabilityAlgs", rsp(0, [0, ...u32(6), ...u32(0)])],
      ["hashSequenceStart", rsp(0, u32(0x81000001))],
      ["nvReadPublic", rsp(0, [...u16(14), ...u32(0x01000002), ...u16(0x0b), ...u32(0x60006), ...u16(0), ...u16(8), ...u16(34), ...u16(0x0b), ...new Array<number>(32).fill(0)])],
      ["nvRead", rsp(0, [...u32(0), ...u16(0xffff)], 0x8002)],
      ...seeds,
    ];
    return loop(cases, untilMs, async (i) => {
      const [name, seed] = i < corpus.length ? corpus[i]! : rng.pick(seeds);
      const input = i < corpus.length ? seed : mutate(rng, seed, 4200);
      replace = input;
      try {
        await bounded(CALLS[name]!(tpm), 2000, name);
      } catch (e) {
        if (!typed(e)) fail(this.name, i, `${name} ${hex(input)}`, e);
      } finally {
        replace = undefined;
      }
      if (i % 1000 === 0) {
        try {
          const r = await tpm.getRandom(8);
          if (r.length !== 8) throw new Error("getRandom length");
        } catch (e) {
          fail(this.name, i, `${name} ${hex(input)}`, `not usable after: ${String(e)}`);
        }
      }
    });
  },
};

// ------------------------------------------------------------------ caller arguments

const VALUES: readonly unknown[] = [
  undefined, null, 0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 32, 2 ** 53, 0x01000001, 0x80000000, 24, 65536, "", "sha256", "owner", "x".repeat(300), true, false,
  {}, [], [0, 1], Uint8Array.of(1), new Uint8Array(5000), 1n, -1n, 2n ** 64n, Symbol("s"), () => 0, new Date(0), { sha256: [0] }, { sha256: [99] }, { sha256: "x" },
  { index: 0x01000001, size: 8 }, { index: -1, size: 8 }, { size: -1 }, { offset: 9 }, { offset: -1, size: 1 }, { signal: "x" }, { signal: AbortSignal.abort() }, new Proxy({}, {}),
];

export const tpmArguments: FuzzTarget = {
  name: "tpm-arguments",
  ciCases: 20000,
  async run(rng, cases, untilMs) {
    const soft = new SoftTpm({ seed: "fuzz-args" });
    const tpm = await Tpm.open(memory({ backend: soft }));
    await tpm.nvDefineSpace({ index: NVI, size: 8 });
    const methods = Object.getOwnPropertyNames(Tpm.prototype).filter((m) => m !== "constructor" && m !== "close" && m !== "shutdown" && typeof (Tpm.prototype as unknown as Record<string, unknown>)[m] === "function");
    // Issue 9 reproducers: nvRead offset past size, size -1; the seven methods that threw synchronously.
    const corpus: [string, unknown[]][] = [
      ["nvRead", [NVI, { offset: 9, size: 1 }]],
      ["nvRead", [NVI, { size: -1 }]],
      ...["pcrExtend", "pcrReset", "hash", "nvDefineSpace", "hierarchyChangeAuth", "hashSequenceStart", "sequenceComplete"].map((m): [string, unknown[]] => [m, [Symbol("bad"), 1n, null]]),
    ];
    return loop(cases, untilMs, async (i) => {
      let m: string;
      let args: unknown[];
      if (i < corpus.length) [m, args] = corpus[i]!;
      else {
        m = rng.pick(methods);
        args = Array.from({ length: rng.int(4) }, () => (rng.oneIn(4) ? { [rng.pick(["size", "offset", "authHandle", "auth", "hierarchy", "index", "attributes", "signal", "timeoutMs", "locality"])]: rng.pick(VALUES) } : rng.pick(VALUES)));
      }
      const desc = `${m}(${args.map((a) => (typeof a === "symbol" ? "Symbol" : typeof a === "bigint" ? `${a}n` : typeof a === "function" ? "fn" : JSON.stringify(a, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x))?.slice(0, 40))).join(", ")})`;
      let p: unknown;
      try {
        p = ((tpm as unknown as Record<string, (...a: unknown[]) => unknown>)[m]!)(...args);
      } catch (e) {
        fail(this.name, i, desc, `threw synchronously: ${String(e)}`);
      }
      if (!(p instanceof Promise)) return;
      try {
        await bounded(p, 2000, desc);
      } catch (e) {
        if (!typed(e)) fail(this.name, i, desc, e);
      }
      if (m === "startup" || m === "clear" || m === "hierarchyChangeAuth" || m === "clearControl") {
        // State-changing calls: keep the TPM in a known state.
        await tpm.transmit(STARTUP_CLEAR).catch(() => undefined);
      }
      if (i % 1000 === 0) {
        const r = await tpm.transmit(GET_RANDOM).catch((e: unknown) => fail(this.name, i, desc, e));
        if (wellFormed(r)) fail(this.name, i, desc, `not usable after: ${wellFormed(r)}`);
      }
    });
  },
};

// ------------------------------------------------------------------ TCTI parser and CLI arguments

const TCTI_SEEDS = [
  "memory", "softtpm", "softtpm:state=/tmp/x", "device", "device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321", "swtpm:path=/run/sock", "mssim:host=h,port=2321",
  "mssim:port=0x10", "swtpm:port=", "swtpm:=1", "device:/dev/../etc/passwd", "tabrmd:bus_name=com.intel.tss2.Tabrmd", "libtss2-tcti-mssim.so.0:port=2321", "swtpm:host=[::1],port=99999",
  ":", "", "a:b=c,d=e,f", "swtpm:port=2321,port=2322", "spi-ltt2go", "tis:state=f", "crb",
];

export const tctiParser: FuzzTarget = {
  name: "tcti-parse",
  ciCases: 50000,
  async run(rng, cases, untilMs) {
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    return loop(cases, untilMs, (i) => {
      const text = i < TCTI_SEEDS.length ? TCTI_SEEDS[i]! : rng.oneIn(8) ? String.fromCharCode(...Array.from({ length: rng.int(24) }, () => rng.int(0x3000))) : dec.decode(mutate(rng, enc.encode(rng.pick(TCTI_SEEDS)), 512));
      for (const f of [parseTcti, (s: string) => parseKeyValues(s)]) {
        try {
          const r = f(text);
          if (r === null || typeof r !== "object") fail(this.name, i, JSON.stringify(text), "result not an object");
        } catch (e) {
          if (!typed(e)) fail(this.name, i, JSON.stringify(text), e);
        }
      }
    });
  },
};

const ARG_TOKENS = ["-T", "--tcti", "memory", "-l", "--locality", "0", "4", "5", "-1", "0x1", "--json", "--verbose", "--startup-clear", "-h", "--help", "-V", "--", "-", "--json=1", "--tcti=", "sha256:0,1", "sha1:16", "sha256:99", "8", "0", "65536", "-n", "--bytes", "--hex", "--port", "2321", "--protocol", "swtpm", "mssim", "--bank", "alg", "properties", "pcrs", "--", "-Tx", "-lq", "--nope", "ａ", "\u0000"];

export const cliArgs: FuzzTarget = {
  name: "cli-args",
  ciCases: 50000,
  async run(rng, cases, untilMs) {
    const corpus: string[][] = [["getrandom", "8"], ["pcrread", "sha256:0,1"], ["serve", "--protocol", "swtpm", "--port", "0"], ["-T", "device:/etc/passwd", "getrandom", "4"], ["-l", "7", "pcrextend", "0", "--bank", "sha256"], ["getcap", "properties"]];
    return loop(cases, untilMs, (i) => {
      let argv: string[];
      if (i < corpus.length) argv = corpus[i]!;
      else {
        argv = Array.from({ length: rng.int(7) }, () => (rng.oneIn(6) ? String(rng.u32() - 2 ** 31) : rng.pick(ARG_TOKENS)));
        if (rng.oneIn(2)) argv.splice(rng.int(argv.length + 1), 0, rng.pick(VERBS).name);
      }
      const input = JSON.stringify(argv);
      try {
        const { verb, rest } = splitVerb(argv);
        const v = VERBS.find((x) => x.name === verb) ?? rng.pick(VERBS);
        const line = parseVerbLine(v.name, rest, v.options);
        if (line.locality !== undefined) parseLocality(String(line.locality));
        v.parse(line.args);
      } catch (e) {
        if (!(e instanceof UsageError) && !typed(e)) fail(this.name, i, input, e);
      }
    });
  },
};

// ------------------------------------------------------------------ in-process sockets for the servers and the swtpm client

/**
 * A stand-in for a net.Socket with what the servers and SocketReader use: bytes in through
 * `feed`, bytes out through `out`, 'end'/'close' events, pause/resume, writableLength 0.
 */
export class FakeSocket extends EventEmitter {
  readonly out: Uint8Array[] = [];
  destroyed = false;
  writable = true;
  writableLength = 0;
  remoteAddress = "fuzz";
  remotePort = 1;
  onWrite: ((b: Uint8Array) => void) | undefined;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  constructor() {
    super();
    this.closed = new Promise((r) => (this.#resolveClosed = r));
  }
  setNoDelay(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  write(b: Uint8Array, cb?: () => void): boolean {
    if (this.destroyed) return false;
    const c = Uint8Array.from(b);
    this.out.push(c);
    this.onWrite?.(c);
    if (typeof cb === "function") queueMicrotask(cb);
    return true;
  }
  end(b?: Uint8Array | (() => void), cb?: () => void): this {
    if (b instanceof Uint8Array) this.write(b);
    this.writable = false;
    const done = typeof b === "function" ? b : cb;
    setImmediate(() => {
      done?.();
      this.destroy();
    });
    return this;
  }
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writable = false;
    setImmediate(() => {
      this.emit("close", false);
      this.#resolveClosed();
    });
    return this;
  }
  /** The peer sends bytes. */
  feed(b: Uint8Array): void {
    if (!this.destroyed) this.emit("data", Buffer.from(b));
  }
  /** The peer half-closes. */
  finish(): void {
    if (!this.destroyed) this.emit("end");
  }
  bytesOut(): Uint8Array {
    return Buffer.concat(this.out);
  }
}

export { netHooks };

function chipOf(soft: SoftTpm): CommandSink {
  return { transmit: (c, o) => soft.execute(c, o?.locality ?? 0, o?.signal) };
}

const sendFrame = (locality: number, cmd: Uint8Array): Uint8Array => Uint8Array.from([...u32(8), locality, ...u32(cmd.length), ...cmd]);

/** Frames a server's data port gets: the issue 9 reproducers first. */
function serverSeeds(mssimOnly: boolean): Uint8Array[] {
  const huge = new Uint8Array(10 + 65536);
  huge.set([0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0x7b]);
  const s: Uint8Array[] = [
    huge, // size 0xFFFFFFFF + 64 KiB
    sendFrame(7, GET_RANDOM), // locality byte 7
    sendFrame(3, GET_RANDOM),
    Uint8Array.from([...u32(8), 0, ...u32(0xffffffff), ...new Array<number>(64).fill(0)]),
    sendFrame(0, GET_RANDOM),
    sendFrame(0, STARTUP_CLEAR),
    Uint8Array.from([...u32(8), 0]), // cut prefix
    Uint8Array.from([...u32(1)]), // power on (mssim)
    Uint8Array.from([...u32(20)]), // session end
    Uint8Array.from([...u32(15)]), // version
  ];
  if (!mssimOnly) s.push(GET_RANDOM, STARTUP_CLEAR, Uint8Array.of(0x80, 0x01, 0, 0, 0, 9, 0, 0, 1), Uint8Array.of(0x80, 0x02, 0, 0, 0x10, 1));
  return s;
}

/** One server case: a fresh connection gets `input` (split in 1–3 chunks), then EOF; it must close. */
async function serverCase(server: EventEmitter, rng: Rng, input: Uint8Array): Promise<FakeSocket> {
  const s = new FakeSocket();
  server.emit("connection", s);
  let at = 0;
  const parts = 1 + rng.int(3);
  for (let k = 0; k < parts && at < input.length; k++) {
    const n = k === parts - 1 ? input.length - at : rng.int(input.length - at + 1);
    s.feed(input.subarray(at, at + n));
    at += n;
    if (rng.oneIn(4)) await new Promise((r) => setImmediate(r));
  }
  if (at < input.length) s.feed(input.subarray(at));
  s.finish();
  await bounded(s.closed, 3000, "server closing the connection after EOF");
  return s;
}

async function serverTarget(name: string, mssim: boolean, rng: Rng, cases: number, untilMs: number | undefined): Promise<number> {
  const soft = new SoftTpm({ seed: `fuzz-${name}` });
  soft.executeSync(STARTUP_CLEAR, 0);
  const before = netHooks.servers.length;
  const server = mssim
    ? await serveMssim({ chip: chipOf(soft), port: 0, platformPort: 0 }, { poweredOn: true })
    : await serveSwtpm({ chip: chipOf(soft), path: `/tmp/tpmkit-fuzz-${process.pid}-${name}.sock` }, { control: false });
  const data = netHooks.servers[before]!;
  const seeds = serverSeeds(mssim);
  try {
    return await loop(cases, untilMs, async (i) => {
      const input = i < seeds.length ? seeds[i]! : rng.oneIn(3) ? sendFrame(rng.int(8), mutate(rng, rng.pick([GET_RANDOM, STARTUP_CLEAR, ...commandSeeds().slice(0, 6)]))) : mutate(rng, rng.pick(seeds), 70000);
      let s: FakeSocket;
      try {
        s = await serverCase(data, rng, input);
      } catch (e) {
        fail(name, i, hex(input.subarray(0, 256)), e);
      }
      // What came back is whole frames (swtpm raw: TPM responses; prefixed/mssim: response + u32 ack).
      const out = s.bytesOut();
      if (!mssim && out.length > 0 && input[0] === 0x80) {
        for (let at = 0; at < out.length; ) {
          if (out.length - at < 10) fail(name, i, hex(input.subarray(0, 256)), `cut response ${hex(out)}`);
          const n = sizeOf(out, at + 2);
          if (n < 10 || at + n > out.length) fail(name, i, hex(input.subarray(0, 256)), `bad response ${hex(out)}`);
          at += n;
        }
      }
      // Usable after: a good client is served.
      if (i % 64 === 0) {
        const g = await serverCase(data, rng, mssim ? sendFrame(0, GET_RANDOM) : GET_RANDOM);
        let r = g.bytesOut();
        if (mssim) r = r.subarray(4, r.length - 4);
        if (wellFormed(r) || (rcOf(r) !== 0 && rcOf(r) !== 0x100)) fail(name, i, hex(input.subarray(0, 256)), `good client not served: ${hex(g.bytesOut())}`);
        if (rcOf(r) === 0x100) soft.executeSync(STARTUP_CLEAR, 0);
      }
    });
  } finally {
    await server.close();
  }
}

export const swtpmServer: FuzzTarget = { name: "swtpm-server", ciCases: 3000, run: (rng, cases, until) => serverTarget("swtpm-server", false, rng, cases, until) };
export const mssimServer: FuzzTarget = { name: "mssim-server", ciCases: 3000, run: (rng, cases, until) => serverTarget("mssim-server", true, rng, cases, until) };

/** The swtpm client's framing: each command gets a fuzzed answer, then the peer may hang up. */
export const swtpmClient: FuzzTarget = {
  name: "swtpm-client",
  ciCases: 10000,
  async run(rng, cases, untilMs) {
    const path = `/fuzz/swtpm-client-${process.pid}`;
    let answer: Uint8Array = new Uint8Array(0);
    let hangUp = false;
    netHooks.connect.set(path, () => {
      const s = new FakeSocket();
      s.onWrite = () => {
        const a = answer;
        const close = hangUp;
        setImmediate(() => {
          s.feed(a);
          if (close) {
            s.finish();
            s.destroy();
          }
        });
      };
      setImmediate(() => s.emit("connect"));
      return s;
    });
    const t = swtpm({ path }, { control: false });
    const good = rsp(0, [...u16(8), 1, 2, 3, 4, 5, 6, 7, 8]);
    const seeds = [good, rsp(0x101), Uint8Array.from([...good, 0x80, 0x01]), Uint8Array.from([0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), good.subarray(0, 9), new Uint8Array(0)];
    const signal = new AbortController().signal;
    try {
      return await loop(cases, untilMs, async (i) => {
        answer = i < seeds.length ? seeds[i]! : mutate(rng, rng.pick(seeds), 8192);
        // A peer that keeps the connection must answer whole (else only the deadline ends it): hang up otherwise.
        hangUp = rng.oneIn(2) || answer.length < 10 || sizeOf(answer) !== answer.length;
        try {
          const r = await bounded(t.send(GET_RANDOM, { locality: 0, signal, timeoutMs: 1000, clock: systemClock }), 2000, "swtpm client send");
          if (!(r instanceof Uint8Array) || r.length < 10 || sizeOf(r) !== r.length) fail(this.name, i, hex(answer), `bad response ${String(r)}`);
        } catch (e) {
          if (!typed(e)) fail(this.name, i, hex(answer), e);
        }
      });
    } finally {
      await t.close();
      netHooks.connect.delete(path);
    }
  },
};

/** Every target, in the order the test runs them. */
export const TARGETS: readonly FuzzTarget[] = [softtpmDispatch, stateDecoder, tpmResponses, tpmArguments, tctiParser, cliArgs, swtpmServer, mssimServer, swtpmClient];
