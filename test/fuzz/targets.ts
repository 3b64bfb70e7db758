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
import { serveSwtpm, type SwtpmServer } from "../../src/server/swtpm.js";
import { serveMssim } from "../../src/server/mssim.js";
import { swtpm } from "../../src/transports/swtpm/transport.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { TpmBackend } from "../../src/core/transport.js";
import { FakeClock } from "../../src/core/clock.js";
import { mssim } from "../../src/transports/mssim/index.js";
import { SWTPM_CMD } from "../../src/node/swtpm-protocol.js";
import { MSSIM_CMD } from "../../src/node/mssim-protocol.js";
import { FfaBus, TpmServicePartition } from "../../src/devices/ffa/index.js";
import { CrbDevice } from "../../src/devices/crb/index.js";
import { FFA_FN, TPM_SERVICE_FN } from "../../src/bus/ffa/abi.js";
import type { CommandSink } from "../../src/server/common.js";

/** One fuzz target: runs `cases` cases (or until `untilMs` on Date.now()) and returns how many ran. */
export interface FuzzTarget {
  readonly name: string;
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

/**
 * The hang bound of a running target: one interval timer per target instead of one timer per
 * case (a per-case setTimeout cost more than most cases). It fires only if no case finished
 * within `ms` (real time; only a bound, never expected to fire): then the case in flight is a hang.
 */
class Watchdog {
  progress = 0;
  readonly hang: Promise<never>;
  #seen = -1;
  #reject!: (e: Error) => void;
  readonly #timer: NodeJS.Timeout;
  what = "";
  constructor(ms: number) {
    this.hang = new Promise<never>((_, rej) => (this.#reject = rej));
    this.hang.catch(() => undefined);
    this.#timer = setInterval(() => {
      if (this.progress === this.#seen) this.#reject(new Error(`hang: ${this.what} did not settle in ${ms} ms`));
      this.#seen = this.progress;
    }, ms);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

let watchdog: Watchdog | undefined;

/** Runs `body` for each case index; corpus entries (replayed first) are cases 0..n-1. */
async function loop(cases: number, untilMs: number | undefined, body: (i: number) => Promise<void> | void): Promise<number> {
  const outer = watchdog;
  const wd = (watchdog = new Watchdog(5000));
  let i = 0;
  try {
    for (; untilMs !== undefined ? Date.now() < untilMs : i < cases; i++) {
      const p = body(i);
      if (p) await p;
      wd.progress++;
    }
  } finally {
    wd.stop();
    watchdog = outer;
  }
  return i;
}

/** Rejects if `p` has not settled while the target's watchdog sees no progress (a hang). */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  if (watchdog) {
    watchdog.what = what;
    return Promise.race([p, watchdog.hang]);
  }
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
      const describe = (): string => `${m}(${args.map((a) => (typeof a === "symbol" ? "Symbol" : typeof a === "bigint" ? `${a}n` : typeof a === "function" ? "fn" : JSON.stringify(a, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x))?.slice(0, 40))).join(", ")})`;
      let p: unknown;
      try {
        p = ((tpm as unknown as Record<string, (...a: unknown[]) => unknown>)[m]!)(...args);
      } catch (e) {
        fail(this.name, i, describe(), `threw synchronously: ${String(e)}`);
      }
      if (!(p instanceof Promise)) return;
      try {
        await bounded(p, 2000, m);
      } catch (e) {
        if (!typed(e)) fail(this.name, i, describe(), e);
      }
      if (m === "startup" || m === "clear" || m === "hierarchyChangeAuth" || m === "clearControl") {
        // State-changing calls: keep the TPM in a known state.
        await tpm.transmit(STARTUP_CLEAR).catch(() => undefined);
      }
      if (i % 1000 === 0) {
        const r = await tpm.transmit(GET_RANDOM).catch((e: unknown) => fail(this.name, i, describe(), e));
        if (wellFormed(r)) fail(this.name, i, describe(), `not usable after: ${wellFormed(r)}`);
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

/** Feeds `input` to `s` in 1–3 chunks (separate 'data' events). */
function feedChunks(s: FakeSocket, rng: Rng, input: Uint8Array): void {
  let at = 0;
  const parts = 1 + rng.int(3);
  for (let k = 0; k < parts - 1 && at < input.length; k++) {
    const n = rng.int(input.length - at + 1);
    s.feed(input.subarray(at, at + n));
    at += n;
  }
  s.feed(input.subarray(at));
}

/** One good exchange: a fresh connection sends `frame`, waits for `want` bytes back, then EOF; it must close. */
async function exchange(server: EventEmitter, frame: Uint8Array, what: string): Promise<Uint8Array> {
  const s = new FakeSocket();
  server.emit("connection", s);
  s.feed(frame);
  s.finish();
  await bounded(s.closed, 3000, what);
  return s.bytesOut();
}

/**
 * A stream of fuzzed frames into one server port. A case is one fuzzed frame (fed in 1–3
 * chunks); frames go down one connection back to back (a pipelining client), a fresh connection
 * every `batch` cases or as soon as the server closed the current one; each connection ends
 * with EOF and must then close (bounded). Every `checkEvery` connections, `check` runs (a good
 * client is served). `verify` sees what one connection got back.
 */
async function streamTarget(
  name: string,
  port: EventEmitter | (() => Promise<EventEmitter>),
  rng: Rng,
  cases: number,
  untilMs: number | undefined,
  o: {
    batch: number;
    next(i: number): Uint8Array;
    verify?(out: Uint8Array, inputs: Uint8Array[]): string | undefined;
    check(): Promise<string | undefined>;
    checkEvery?: number;
  },
): Promise<number> {
  let s: FakeSocket | undefined;
  let inputs: Uint8Array[] = [];
  let conns = 0;
  const end = async (i: number) => {
    const c = s!;
    s = undefined;
    c.finish();
    try {
      await bounded(c.closed, 3000, "server closing the connection after EOF");
    } catch (e) {
      fail(name, i, inputs.map((x) => hex(x.subarray(0, 256))).join(" | "), e);
    }
    const bad = o.verify?.(c.bytesOut(), inputs);
    if (bad) fail(name, i, inputs.map((x) => hex(x.subarray(0, 256))).join(" | "), bad);
    if (++conns % (o.checkEvery ?? 4) === 0) {
      const why = await o.check();
      if (why) fail(name, i, inputs.map((x) => hex(x.subarray(0, 256))).join(" | "), `good client not served after: ${why}`);
    }
    inputs = [];
  };
  const n = await loop(cases, untilMs, async (i) => {
    if (s && (s.destroyed || inputs.length >= o.batch)) await end(i);
    if (!s) {
      s = new FakeSocket();
      (typeof port === "function" ? await port() : port).emit("connection", s);
    }
    const input = o.next(i);
    inputs.push(input);
    feedChunks(s, rng, input);
    // Let the server take the frame in (microtasks only; the batch end drains the rest).
    await Promise.resolve();
  });
  if (s) await end(n);
  return n;
}

/** The output of a raw-mode swtpm data connection is whole TPM responses. */
function wholeResponses(out: Uint8Array): string | undefined {
  for (let at = 0; at < out.length; ) {
    if (out.length - at < 10) return `cut response ${hex(out.subarray(at))}`;
    const n = sizeOf(out, at + 2);
    if (n < 10 || at + n > out.length) return `bad response at ${at}: ${hex(out.subarray(at, at + 16))}`;
    at += n;
  }
  return undefined;
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
  const cmdSeeds = [GET_RANDOM, STARTUP_CLEAR, ...commandSeeds().slice(0, 6)];
  try {
    return await streamTarget(name, data, rng, cases, untilMs, {
      batch: 32,
      next: (i) => (i < seeds.length ? seeds[i]! : rng.oneIn(3) ? sendFrame(rng.int(8), mutate(rng, rng.pick(cmdSeeds))) : mutate(rng, rng.pick(seeds), 70000)),
      // Raw frames only (no TPM_SEND_COMMAND prefix anywhere): what came back is whole TPM responses.
      verify: mssim ? undefined : (out, inputs) => (inputs.every((x) => x[0] === 0x80) ? wholeResponses(out) : undefined),
      async check() {
        let r = await exchange(data, mssim ? sendFrame(0, GET_RANDOM) : GET_RANDOM, "good client");
        if (mssim) r = r.subarray(4, r.length - 4);
        if (wellFormed(r) || (rcOf(r) !== 0 && rcOf(r) !== 0x100)) return hex(r);
        if (rcOf(r) === 0x100) soft.executeSync(STARTUP_CLEAR, 0);
        return undefined;
      },
    });
  } finally {
    await server.close();
  }
}

export const swtpmServer: FuzzTarget = { name: "swtpm-server", run: (rng, cases, until) => serverTarget("swtpm-server", false, rng, cases, until) };
export const mssimServer: FuzzTarget = { name: "mssim-server", run: (rng, cases, until) => serverTarget("mssim-server", true, rng, cases, until) };

// ------------------------------------------------------------------ swtpm control channel

/** A control message: u32 command + body (swtpm_ioctls(3)). */
const ctl = (cmd: number, body: number[] = []): Uint8Array => Uint8Array.from([...u32(cmd), ...body]);

function controlSeeds(): Uint8Array[] {
  const s: Uint8Array[] = [];
  for (const cmd of Object.values(SWTPM_CMD)) if (cmd !== SWTPM_CMD.SHUTDOWN) s.push(ctl(cmd), ctl(cmd, u32(0)), ctl(cmd, u32(1)));
  s.push(
    ctl(SWTPM_CMD.SET_LOCALITY, [7]),
    ctl(SWTPM_CMD.SET_LOCALITY, [4]),
    ctl(SWTPM_CMD.HASH_DATA, [...u32(0xffffffff)]), // a length the protocol cannot carry
    ctl(SWTPM_CMD.HASH_DATA, [...u32(4), 1, 2, 3, 4]),
    ctl(SWTPM_CMD.SET_STATEBLOB, [...u32(0), ...u32(1), ...u32(0xffffffff)]),
    ctl(SWTPM_CMD.SET_STATEBLOB, [...u32(0), ...u32(1), ...u32(4), 1, 2, 3, 4]),
    ctl(SWTPM_CMD.GET_STATEBLOB, [...u32(0), ...u32(1), ...u32(0)]),
    ctl(SWTPM_CMD.SET_BUFFERSIZE, u32(0xffffffff)),
    ctl(SWTPM_CMD.GET_INFO, [...u32(0), ...u32(3), ...u32(0), ...u32(0)]),
    ctl(0x7fffffff),
    Uint8Array.of(0, 0),
  );
  return s;
}

/**
 * The swtpm control channel: random control messages on one server. CMD_SHUTDOWN ends the
 * server, so it is never generated here (a mutated message that came out as SHUTDOWN is turned
 * into GET_CAPABILITY); {@link swtpmControlShutdown} covers it once, on its own server.
 */
export const swtpmControl: FuzzTarget = {
  name: "swtpm-control",
  async run(rng, cases, untilMs) {
    const soft = new SoftTpm({ seed: "fuzz-swtpm-control" });
    soft.executeSync(STARTUP_CLEAR, 0);
    const path = `/tmp/tpmkit-fuzz-${process.pid}-control.sock`;
    // A SHUTDOWN can still form in the byte stream (a message shorter than its length field
    // takes the next one's first bytes): then the server ends in order and a fresh one takes over.
    let srv: { server: SwtpmServer; data: EventEmitter; control: EventEmitter; down: boolean } | undefined;
    const current = async () => {
      if (srv && !srv.down) return srv;
      if (srv) await srv.server.close();
      const before = netHooks.servers.length;
      const server = await serveSwtpm({ chip: chipOf(soft), path }, { control: { path: `${path}.ctrl` } });
      const s = { server, data: netHooks.servers[before]!, control: netHooks.servers[before + 1]!, down: false };
      void server.closed.then(() => (s.down = true));
      return (srv = s);
    };
    const seeds = controlSeeds();
    try {
      return await streamTarget(this.name, async () => (await current()).control, rng, cases, untilMs, {
        batch: 32,
        next(i) {
          const m = i < seeds.length ? seeds[i]! : mutate(rng, rng.pick(seeds), 8192);
          if (m.length >= 4 && sizeOf(m, 0) === SWTPM_CMD.SHUTDOWN) m[3] = SWTPM_CMD.GET_CAPABILITY;
          return m;
        },
        async check() {
          const { control, data } = await current();
          // CMD_INIT restarts the TPM whatever a fuzzed STOP did; then the data channel serves.
          const init = await exchange(control, ctl(SWTPM_CMD.INIT, u32(0)), "control INIT");
          if (init.length !== 4 || sizeOf(init, 0) !== 0) return `INIT answered ${hex(init)}`;
          const r = await exchange(data, GET_RANDOM, "good data client");
          if (wellFormed(r) || (rcOf(r) !== 0 && rcOf(r) !== 0x100)) return `GetRandom answered ${hex(r)}`;
          if (rcOf(r) === 0x100) soft.executeSync(STARTUP_CLEAR, 0);
          return undefined;
        },
      });
    } finally {
      await srv?.server.close();
    }
  },
};

/** CMD_SHUTDOWN, once per run on its own server: answered 0, then the server closes with reason "shutdown". */
export async function swtpmControlShutdown(): Promise<{ reply: Uint8Array; reason: string }> {
  const soft = new SoftTpm({ seed: "fuzz-swtpm-shutdown" });
  soft.executeSync(STARTUP_CLEAR, 0);
  const before = netHooks.servers.length;
  const path = `/tmp/tpmkit-fuzz-${process.pid}-shutdown.sock`;
  const server = await serveSwtpm({ chip: chipOf(soft), path }, { control: { path: `${path}.ctrl` } });
  const control = netHooks.servers[before + 1]!;
  try {
    const reply = await exchange(control, ctl(SWTPM_CMD.SHUTDOWN), "CMD_SHUTDOWN");
    const closed = await bounded(server.closed, 3000, "server closing after CMD_SHUTDOWN");
    return { reply, reason: closed.reason };
  } finally {
    await server.close();
  }
}

// ------------------------------------------------------------------ mssim platform port (server side)

const PLATFORM_CODES = Object.values(MSSIM_CMD).filter((c) => c !== MSSIM_CMD.TPM_SEND_COMMAND);

/** The mssim server's platform port: random signals (known codes, their operands, junk). */
export const mssimPlatform: FuzzTarget = {
  name: "mssim-platform",
  async run(rng, cases, untilMs) {
    const soft = new SoftTpm({ seed: "fuzz-mssim-platform" });
    soft.executeSync(STARTUP_CLEAR, 0);
    const before = netHooks.servers.length;
    const server = await serveMssim({ chip: chipOf(soft), port: 0, platformPort: 0 }, { poweredOn: true });
    const data = netHooks.servers[before]!;
    const platform = netHooks.servers[before + 1]!;
    const seeds: Uint8Array[] = [...PLATFORM_CODES.map((c) => Uint8Array.from(u32(c))), Uint8Array.from([...u32(6), ...u32(4), 1, 2, 3, 4]), Uint8Array.from(u32(0xffffffff)), Uint8Array.of(0, 0, 0)];
    try {
      return await streamTarget(this.name, platform, rng, cases, untilMs, {
        batch: 32,
        next: (i) =>
          i < seeds.length ? seeds[i]! : rng.oneIn(2) ? Uint8Array.from(u32(rng.oneIn(8) ? rng.u32() : rng.pick(PLATFORM_CODES))) : mutate(rng, rng.pick(seeds), 64),
        // Every platform answer is a u32 (acks) or GET_COMMAND_RESPONSE_SIZES' 24 bytes: whole words.
        verify: (out) => (out.length % 4 === 0 ? undefined : `platform output of ${out.length} bytes is not whole u32 words`),
        async check() {
          const on = await exchange(platform, Uint8Array.from(u32(MSSIM_CMD.SIGNAL_POWER_ON)), "platform POWER_ON");
          if (on.length !== 4 || sizeOf(on, 0) !== 0) return `POWER_ON answered ${hex(on)}`;
          const out = await exchange(data, sendFrame(0, GET_RANDOM), "good command client");
          const r = out.subarray(4, out.length - 4);
          if (wellFormed(r) || (rcOf(r) !== 0 && rcOf(r) !== 0x100)) return `GetRandom answered ${hex(out)}`;
          if (rcOf(r) === 0x100) soft.executeSync(STARTUP_CLEAR, 0);
          return undefined;
        },
      });
    } finally {
      await server.close();
    }
  },
};

// ------------------------------------------------------------------ clients over an in-process peer

/**
 * A client transport's framing against a peer that answers each write with fuzzed bytes (on a
 * microtask), then may hang up. Send must give a whole TPM response or a TpmkitError.
 */
async function clientTarget(
  name: string,
  rng: Rng,
  cases: number,
  untilMs: number | undefined,
  o: { path: string; seeds: Uint8Array[]; whole(a: Uint8Array): boolean; send(signal: AbortSignal): Promise<Uint8Array>; close(): Promise<void> },
): Promise<number> {
  let answer: Uint8Array = new Uint8Array(0);
  let hangUp = false;
  netHooks.connect.set(o.path, () => {
    const s = new FakeSocket();
    s.onWrite = () => {
      const a = answer;
      const close = hangUp;
      queueMicrotask(() => {
        s.feed(a);
        if (close) {
          s.finish();
          s.destroy();
        }
      });
    };
    queueMicrotask(() => s.emit("connect"));
    return s;
  });
  const signal = new AbortController().signal;
  try {
    return await loop(cases, untilMs, async (i) => {
      answer = i < o.seeds.length ? o.seeds[i]! : mutate(rng, rng.pick(o.seeds), 8192);
      // A peer that keeps the connection must answer whole (else only the deadline ends it): hang up otherwise.
      hangUp = rng.oneIn(2) || !o.whole(answer);
      try {
        const r = await bounded(o.send(signal), 2000, `${name} send`);
        if (!(r instanceof Uint8Array) || r.length < 10 || sizeOf(r) !== r.length) fail(name, i, hex(answer), `bad response ${String(r)}`);
      } catch (e) {
        if (!typed(e)) fail(name, i, hex(answer), e);
      }
    });
  } finally {
    await o.close();
    netHooks.connect.delete(o.path);
  }
}

/** The swtpm client's framing: each command gets a fuzzed answer, then the peer may hang up. */
export const swtpmClient: FuzzTarget = {
  name: "swtpm-client",
  async run(rng, cases, untilMs) {
    const path = `/fuzz/swtpm-client-${process.pid}`;
    const t = swtpm({ path }, { control: false });
    // The read bounds run on a clock that never fires: the watchdog is the hang bound.
    const clock = new FakeClock();
    const good = rsp(0, [...u16(8), 1, 2, 3, 4, 5, 6, 7, 8]);
    const seeds = [good, rsp(0x101), Uint8Array.from([...good, 0x80, 0x01]), Uint8Array.from([0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), good.subarray(0, 9), new Uint8Array(0)];
    return clientTarget(this.name, rng, cases, untilMs, {
      path,
      seeds,
      whole: (a) => a.length >= 10 && sizeOf(a) === a.length,
      send: (signal) => t.send(GET_RANDOM, { locality: 0, signal, timeoutMs: 1000, clock }),
      close: async () => void (await t.close?.()),
    });
  },
};

/** The mssim client's framing (src/transports/mssim): u32 size, response, u32 ack, all fuzzed. */
export const mssimClient: FuzzTarget = {
  name: "mssim-client",
  async run(rng, cases, untilMs) {
    const path = `/fuzz/mssim-client-${process.pid}`;
    const t = mssim({ path, powerOn: false });
    const clock = new FakeClock();
    const good = rsp(0, [...u16(8), 1, 2, 3, 4, 5, 6, 7, 8]);
    const framed = (r: Uint8Array, ack = 0, size = r.length) => Uint8Array.from([...u32(size), ...r, ...u32(ack)]);
    const seeds = [
      framed(good),
      framed(rsp(0x101)),
      framed(new Uint8Array(0)), // powered off: size 0 + ack
      framed(good, 1), // bad ack
      framed(good, 0, 0xffffffff), // a lying size
      framed(good, 0, 9),
      Uint8Array.from([...framed(good), 0, 0]), // stray bytes after
      framed(good).subarray(0, 13),
      new Uint8Array(0),
    ];
    return clientTarget(this.name, rng, cases, untilMs, {
      path,
      seeds,
      whole: (a) => a.length >= 18 && sizeOf(a, 0) === a.length - 8 && sizeOf(a, 0) >= 10 && sizeOf(a, 6) === a.length - 8 && sizeOf(a, a.length - 4) === 0,
      send: (signal) => t.send(GET_RANDOM, { locality: rng.int(5), signal, timeoutMs: 1000, clock }),
      close: async () => void (await t.close?.()),
    });
  },
};

// ------------------------------------------------------------------ FF-A TPM service partition

const FFA_FUNCS = Object.values(FFA_FN);
const TPM_FUNCS = Object.values(TPM_SERVICE_FN);
const FFA_WORDS = [0n, 1n, 2n, 0xffffffffn, 0xffffffffffffffffn, 0x8000n, 0x8002n, 0x8001n, 0x10001n, 0x10000n, 0x1000n, 4n, 5n, 0x80000000n];
const FFA_ID = 0x8002;
const FFA_OK_W0 = new Set<bigint>([FFA_FN.ERROR, FFA_FN.SUCCESS_32, FFA_FN.SUCCESS_64, FFA_FN.MSG_SEND_DIRECT_RESP_32, FFA_FN.MSG_SEND_DIRECT_RESP_64, FFA_FN.MSG_SEND_DIRECT_RESP2, FFA_FN.INTERRUPT, FFA_FN.YIELD].map(BigInt));

/**
 * Random direct-message registers (and other FF-A calls) into an FfaBus holding a
 * TpmServicePartition over a CRB device on a SoftTpm: every answer is an FF-A frame (FFA_ERROR,
 * FFA_SUCCESS, a direct response carrying a status), never a throw or a rejection.
 */
export const ffaPartition: FuzzTarget = {
  name: "ffa-partition",
  async run(rng, cases, untilMs) {
    const soft = new SoftTpm({ seed: "fuzz-ffa" });
    soft.executeSync(STARTUP_CLEAR, 0);
    const device = new CrbDevice({ backend: soft, localities: 5, trigger: "doorbell", channel: false });
    const partition = new TpmServicePartition({ device });
    const bus = new FfaBus({ clock: new FakeClock(), channel: false });
    bus.addPartition(partition);
    const word = (): bigint => (rng.oneIn(4) ? BigInt(rng.u32()) | (rng.oneIn(4) ? BigInt(rng.u32()) << 32n : 0n) : rng.pick(FFA_WORDS));
    const direct = [FFA_FN.MSG_SEND_DIRECT_REQ_64, FFA_FN.MSG_SEND_DIRECT_REQ_32, FFA_FN.MSG_SEND_DIRECT_REQ2];
    const corpus: bigint[][] = TPM_FUNCS.map((f) => [BigInt(FFA_FN.MSG_SEND_DIRECT_REQ_64), BigInt(FFA_ID), 0n, 0n, BigInt(f), 0n, 0n, 0n]);
    return loop(cases, untilMs, async (i) => {
      let regs: bigint[];
      if (i < corpus.length) regs = corpus[i]!;
      else {
        const fn = rng.oneIn(8) ? rng.pick(FFA_FUNCS) : rng.oneIn(16) ? rng.u32() : rng.pick(direct);
        const dest = rng.oneIn(8) ? word() : BigInt(rng.oneIn(8) ? FFA_ID << 16 : FFA_ID);
        regs = [BigInt(fn), dest, ...Array.from({ length: rng.int(17) }, (_, k) => (k === 2 && !rng.oneIn(4) ? BigInt(rng.pick(TPM_FUNCS)) : word()))];
        if (rng.oneIn(32)) regs.length = rng.int(regs.length + 1);
      }
      let out: bigint[];
      try {
        out = await bounded(Promise.resolve(bus.call(regs)), 2000, "FF-A call");
      } catch (e) {
        fail(this.name, i, regs.map((r) => `0x${r.toString(16)}`).join(","), e);
      }
      // FFA_VERSION answers the version itself (or NOT_SUPPORTED) in w0; every other call a function id.
      const versionCall = regs[0] === BigInt(FFA_FN.VERSION);
      if (!Array.isArray(out) || out.length < 1 || typeof out[0] !== "bigint" || (!versionCall && !FFA_OK_W0.has(out[0]))) {
        fail(this.name, i, regs.map((r) => `0x${r.toString(16)}`).join(","), `answer ${String(out)}`);
      }
    });
  },
};

/** Every target, in the order the test runs them. */
export const TARGETS: readonly FuzzTarget[] = [softtpmDispatch, stateDecoder, tpmResponses, tpmArguments, tctiParser, cliArgs, ffaPartition, swtpmServer, mssimServer, swtpmControl, mssimPlatform, swtpmClient, mssimClient];
