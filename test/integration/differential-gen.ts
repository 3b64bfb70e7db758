/**
 * The seeded command-sequence generator of the SoftTpm ↔ swtpm differential test.
 *
 * It produces steps over the commands SoftTpm implements (src/softtpm/README.md), well-formed and
 * malformed, at localities 0–4, with power cycles. It is interactive: after each command the test
 * hands it swtpm's response ({@link DiffGenerator.observe}), so it tracks what exists (sequence and
 * session handles, NV indices, hierarchy auth values) and keeps most commands meaningful instead of
 * failing on a stale handle or a wrong password. The same seed always gives the same sequence as
 * long as the TPM answers the same way, which is what the test checks.
 *
 * Byte layouts: TPM 2.0 Part 1 §18 (command header, authorization area), Part 3 (each command's
 * parameters), Part 2 (structures). Constants come from src/tpm/constants.ts.
 */
import { TPMA_NV, TPM_ALG, TPM_CAP, TPM_CC, TPM_RH, TPM_RS, TPM_ST, TPM_SU } from "../../src/wire/constants.js";

// ------------------------------------------------------------------------------------------- PRNG

/** mulberry32: a small, fast, seeded 32-bit PRNG (good enough to pick test cases). */
export class Prng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A uniform u32. */
  u32(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }
  /** One element of a non-empty list. */
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  /** n bytes. */
  bytes(n: number): number[] {
    return Array.from({ length: n }, () => this.u32() & 0xff);
  }
}

// --------------------------------------------------------------------------------- byte builders

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const t2b = (b: readonly number[]): number[] => [...u16(b.length), ...b];

/** A command: tag, size (correct), code, body. TPM 2.0 Part 1 §18.2. */
export function command(tag: number, cc: number, body: readonly number[] = []): Uint8Array {
  return Uint8Array.from([...u16(tag), ...u32(10 + body.length), ...u32(cc), ...body]);
}

/** A password session (TPM_RS_PW, empty nonce, continueSession). TPM 2.0 Part 1 §19.8.4. */
function pwSession(auth: readonly number[], attrs = 1): number[] {
  return [...u32(TPM_RS.PW), ...u16(0), attrs, ...t2b(auth)];
}

/** A command with one password session per entry of `auths`. */
function authCommand(cc: number, handles: readonly number[], auths: readonly (readonly number[])[], params: readonly number[] = []): Uint8Array {
  const area = auths.flatMap((a) => pwSession(a));
  return command(TPM_ST.SESSIONS, cc, [...handles.flatMap(u32), ...u32(area.length), ...area, ...params]);
}

/** TPM2B_NV_PUBLIC. TPM 2.0 Part 2 §13.5–13.6. */
function nvPublic(index: number, attrs: number, size: number, nameAlg: number = TPM_ALG.SHA256, policy: readonly number[] = []): number[] {
  return t2b([...u32(index), ...u16(nameAlg), ...u32(attrs), ...t2b(policy), ...u16(size)]);
}

// --------------------------------------------------------------------------------------- steps

/** One step of a sequence. */
export type DiffStep =
  /** Send `bytes` at `locality` to both TPMs (through the swtpm transport and SoftTpm.executeSync). */
  | { kind: "cmd"; name: string; bytes: Uint8Array; locality: number }
  /**
   * Send `bytes`, whose header size field lies about the length, at `locality`. tpmkit's swtpm
   * transport refuses such frames (it checks the size field), so the test writes them on a raw
   * data-channel connection.
   */
  | { kind: "raw"; name: string; bytes: Uint8Array; locality: number }
  /** Power cycle: swtpm CMD_INIT on the control channel; SoftTpm powerOff() + start(). */
  | { kind: "cycle"; name: string };

const HASHES = [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512] as const;
const DIGEST_SIZE: Record<number, number> = { [TPM_ALG.SHA1]: 20, [TPM_ALG.SHA256]: 32, [TPM_ALG.SHA384]: 48, [TPM_ALG.SHA512]: 64 };
const SEQ_FIRST = 0x80000000;
const SESSION_FIRST = 0x02000000;
/** NV indices the generator plays with (owner range 0x01500000.., platform 0x01400000). */
const NV_INDICES = [0x01500000, 0x01500001, 0x01500002, 0x01500003, 0x01400000, 0x01400001];
const NT_ORDINARY = 0x0,
  NT_COUNTER = 0x1,
  NT_BITS = 0x2,
  NT_EXTEND = 0x4;

/**
 * Command codes no TPM here implements: neither SoftTpm nor libtpms 0.9. (A code that libtpms runs
 * and SoftTpm does not, e.g. CreatePrimary, is a deliberate difference in the command list and is
 * never generated.) 0x20000000 (Vendor_TCG_Test) is left out too.
 */
const UNKNOWN_CODES = [0x0000, 0x0001, 0x00ff, 0x0100, 0x011e, 0x01a0, 0x01ff, 0x0200, 0x0fff, 0x7fff, 0xffff, 0x20000001, 0x2000ffff, 0x00010144, 0x8000017b, 0xffffffff];

interface NvModel {
  attrs: number;
  size: number;
  auth: number[];
  nameAlg: number;
}

/** Counters of what was generated, for the report. */
export interface DiffCounts {
  commands: number;
  malformed: number;
  raw: number;
  cycles: number;
  byCode: Map<string, number>;
}

/**
 * The interactive generator. `next()` gives the next step (undefined when done); `observe()` takes
 * swtpm's response to the last "cmd"/"raw" step.
 */
export class DiffGenerator {
  readonly rng: Prng;
  readonly counts: DiffCounts = { commands: 0, malformed: 0, raw: 0, cycles: 0, byCode: new Map() };
  #left: number;
  #locality = 0;
  #started = false;
  #queue: DiffStep[] = [];
  #sequences = new Map<number, number[]>(); // handle → auth
  #sessions = new Set<number>();
  #nv = new Map<number, NvModel>();
  #auth = { owner: [] as number[], endorsement: [] as number[], lockout: [] as number[], platform: [] as number[] };
  #last: DiffStep | undefined;

  /**
   * @param seed - PRNG seed
   * @param commands - how many TPM commands (cmd + raw steps) to produce in all
   */
  constructor(seed: number, commands: number) {
    this.rng = new Prng(seed);
    this.#left = commands;
    // Before TPM2_Startup: everything but Startup is TPM_RC_INITIALIZE, bad Startup values too.
    this.#push("GetRandom before Startup", command(TPM_ST.NO_SESSIONS, TPM_CC.GetRandom, u16(8)));
    this.#push("ReadClock before Startup", command(TPM_ST.NO_SESSIONS, TPM_CC.ReadClock));
    this.#push("unknown code before Startup", command(TPM_ST.NO_SESSIONS, 0xffff));
    this.#push("Startup(STATE) on a fresh TPM", command(TPM_ST.NO_SESSIONS, TPM_CC.Startup, u16(TPM_SU.STATE)));
    this.#push("Startup(5)", command(TPM_ST.NO_SESSIONS, TPM_CC.Startup, u16(5)));
    this.#push("Startup with trailing byte", command(TPM_ST.NO_SESSIONS, TPM_CC.Startup, [...u16(0), 0]));
    this.#push("Startup(CLEAR)", command(TPM_ST.NO_SESSIONS, TPM_CC.Startup, u16(TPM_SU.CLEAR)));
  }

  /** The current locality. */
  get locality(): number {
    return this.#locality;
  }

  #push(name: string, bytes: Uint8Array, locality = this.#locality): void {
    this.#queue.push({ kind: "cmd", name, bytes, locality });
  }

  /** The next step, or undefined when the command budget is spent. */
  next(): DiffStep | undefined {
    for (;;) {
      const q = this.#queue.shift();
      if (q) {
        if (q.kind !== "cycle") {
          if (this.#left <= 0) return undefined;
          this.#left--;
          this.counts.commands++;
          if (q.kind === "raw") this.counts.raw++;
          const cc = q.bytes.length >= 10 ? ((q.bytes[6]! << 24) | (q.bytes[7]! << 16) | (q.bytes[8]! << 8) | q.bytes[9]!) >>> 0 : -1;
          const key = cc.toString(16);
          this.counts.byCode.set(key, (this.counts.byCode.get(key) ?? 0) + 1);
        } else {
          this.counts.cycles++;
          this.#started = false;
          this.#sequences.clear();
          this.#sessions.clear();
        }
        this.#last = q;
        return q;
      }
      if (this.#left <= 0) return undefined;
      this.#plan();
    }
  }

  /**
   * Learns from swtpm's response to the step `next()` returned last.
   *
   * @param rsp - the response bytes
   */
  observe(rsp: Uint8Array): void {
    const last = this.#last;
    if (!last || last.kind === "cycle" || rsp.length < 10) return;
    const cmd = last.bytes;
    const rc = ((rsp[6]! << 24) | (rsp[7]! << 16) | (rsp[8]! << 8) | rsp[9]!) >>> 0;
    if (cmd.length < 10) return;
    const cc = ((cmd[6]! << 24) | (cmd[7]! << 16) | (cmd[8]! << 8) | cmd[9]!) >>> 0;
    // TPM_RC_INITIALIZE to anything but Startup: the TPM is not started (a refused Startup)
    if (rc === 0x100 && cc !== TPM_CC.Startup) this.#started = false;
    if (rc !== 0) return;
    const h0 = cmd.length >= 14 ? ((cmd[10]! << 24) | (cmd[11]! << 16) | (cmd[12]! << 8) | cmd[13]!) >>> 0 : 0;
    const h1 = cmd.length >= 18 ? ((cmd[14]! << 24) | (cmd[15]! << 16) | (cmd[16]! << 8) | cmd[17]!) >>> 0 : 0;
    const rh = rsp.length >= 14 ? ((rsp[10]! << 24) | (rsp[11]! << 16) | (rsp[12]! << 8) | rsp[13]!) >>> 0 : 0;
    switch (cc) {
      case TPM_CC.Startup: {
        this.#started = true;
        this.#auth.platform = [];
        this.#sequences.clear();
        this.#sessions.clear();
        break;
      }
      case TPM_CC.HashSequenceStart: {
        // auth is the TPM2B after the header
        const n = (cmd[10]! << 8) | cmd[11]!;
        this.#sequences.set(rh, Array.from(cmd.subarray(12, 12 + n)));
        break;
      }
      case TPM_CC.SequenceComplete:
        this.#sequences.delete(h0);
        break;
      case TPM_CC.EventSequenceComplete:
        this.#sequences.delete(h1);
        break;
      case TPM_CC.StartAuthSession:
        this.#sessions.add(rh);
        break;
      case TPM_CC.FlushContext:
        this.#sequences.delete(h0);
        this.#sessions.delete(h0);
        break;
      case TPM_CC.Clear: {
        this.#auth.owner = [];
        this.#auth.endorsement = [];
        this.#auth.lockout = [];
        for (const [i, m] of this.#nv) if (!(m.attrs & TPMA_NV.PLATFORMCREATE)) this.#nv.delete(i);
        break;
      }
      default:
        break;
    }
  }

  // --------------------------------------------------------------------------------- planning

  #plan(): void {
    const r = this.rng;
    if (!this.#started) {
      // after a power cycle: sometimes a command before Startup, then Startup(STATE) or (CLEAR)
      if (r.chance(0.3)) this.#push("GetRandom before Startup", command(TPM_ST.NO_SESSIONS, TPM_CC.GetRandom, u16(4)));
      // Startup is allowed at localities 0 and 3 only (PC Client); mostly use those, sometimes not
      const roll = r.int(10);
      this.#locality = roll < 6 ? 0 : roll < 9 ? 3 : r.pick([1, 2, 4]);
      const su = r.chance(0.5) ? TPM_SU.STATE : TPM_SU.CLEAR;
      this.#push(`Startup(${su ? "STATE" : "CLEAR"})`, command(TPM_ST.NO_SESSIONS, TPM_CC.Startup, u16(su)));
      if (su === TPM_SU.STATE) this.#push("Startup(CLEAR) after a refused STATE", command(TPM_ST.NO_SESSIONS, TPM_CC.Startup, u16(TPM_SU.CLEAR)));
      this.#started = true; // observe() confirms; a second Startup is refused identically on both
      return;
    }
    if (r.chance(1 / 150)) {
      const sd = r.int(3);
      if (sd < 2) this.#push(`Shutdown(${sd ? "STATE" : "CLEAR"})`, command(TPM_ST.NO_SESSIONS, TPM_CC.Shutdown, u16(sd)));
      this.#queue.push({ kind: "cycle", name: "power cycle" });
      return;
    }
    if (r.chance(1 / 25)) {
      this.#locality = r.int(5);
      this.#push(`PCR_Read at new locality ${this.#locality}`, this.#pcrRead());
      return;
    }
    const roll = r.int(100);
    if (roll < 14) {
      this.#malformed();
      return;
    }
    const [name, bytes] = this.#wellFormed();
    this.#push(name, bytes);
  }

  /** A well-formed command over SoftTpm's command set (parameters may still be wrong on purpose). */
  #wellFormed(): [string, Uint8Array] {
    const r = this.rng;
    const gens: [number, () => [string, Uint8Array]][] = [
      [5, () => ["GetRandom", command(TPM_ST.NO_SESSIONS, TPM_CC.GetRandom, u16(r.pick([0, 1, 8, 16, 32, 48, 64, 65, 200, r.int(0x10000)])))]],
      [2, () => ["StirRandom", command(TPM_ST.NO_SESSIONS, TPM_CC.StirRandom, t2b(r.bytes(r.pick([0, 1, 16, 128, 129, r.int(300)]))))]],
      [12, () => this.#getCapability()],
      [8, () => ["PCR_Read", this.#pcrRead()]],
      [8, () => ["PCR_Extend", this.#pcrExtend()]],
      [4, () => ["PCR_Event", authCommand(TPM_CC.PCR_Event, [this.#pcrHandle()], [[]], t2b(r.bytes(r.pick([0, 1, 16, 64, 65, 1024, 1025]))))]],
      [4, () => ["PCR_Reset", authCommand(TPM_CC.PCR_Reset, [this.#pcrHandle()], [r.chance(0.9) ? [] : [1]])]],
      [4, () => this.#hash()],
      [4, () => this.#sequenceStart()],
      [6, () => this.#sequenceUse()],
      [2, () => ["ReadClock", command(TPM_ST.NO_SESSIONS, TPM_CC.ReadClock)]],
      [2, () => this.#selfTest()],
      [2, () => this.#clear()],
      [2, () => this.#clearControl()],
      [3, () => this.#changeAuth()],
      [8, () => this.#nvDefine()],
      [2, () => this.#nvUndefine()],
      [16, () => this.#nvAccess()],
      [3, () => ["NV_ReadPublic", command(TPM_ST.NO_SESSIONS, TPM_CC.NV_ReadPublic, u32(this.#nvIndex()))]],
      [4, () => this.#session()],
      [1, () => ["Shutdown without a power cycle", command(TPM_ST.NO_SESSIONS, TPM_CC.Shutdown, u16(r.int(2)))]],
    ];
    let total = 0;
    for (const [w] of gens) total += w;
    let k = r.int(total);
    for (const [w, g] of gens) {
      if (k < w) return g();
      k -= w;
    }
    return gens[0]![1]();
  }

  // ----------------------------------------------------------------------- per-command builders

  #hierarchyAuth(h: number): number[] {
    switch (h) {
      case TPM_RH.OWNER:
        return this.#auth.owner;
      case TPM_RH.ENDORSEMENT:
        return this.#auth.endorsement;
      case TPM_RH.LOCKOUT:
        return this.#auth.lockout;
      case TPM_RH.PLATFORM:
        return this.#auth.platform;
      default:
        return [];
    }
  }

  /** The right password most of the time, a wrong one sometimes (DA and lockout paths). */
  #authFor(h: number): number[] {
    const right = this.#nv.get(h)?.auth ?? this.#hierarchyAuth(h);
    return this.rng.chance(0.9) ? right : [...right, 0x58];
  }

  #pcrHandle(): number {
    const r = this.rng;
    return r.chance(0.9) ? r.int(24) : r.pick([24, 31, TPM_RH.NULL, TPM_RH.OWNER, 0x01500000, r.u32()]);
  }

  #pcrRead(): Uint8Array {
    const r = this.rng;
    const n = r.pick([1, 1, 1, 2, 4, 0, 5]);
    const sels: number[] = [];
    for (let i = 0; i < n; i++) {
      const alg = r.chance(0.9) ? r.pick(HASHES) : r.pick([TPM_ALG.NULL, TPM_ALG.SM3_256, TPM_ALG.SHA3_256, r.int(0x10000)]);
      const size = r.chance(0.9) ? 3 : r.pick([0, 1, 2, 4, 5]);
      sels.push(...u16(alg), size, ...r.bytes(size).map((b) => (r.chance(0.5) ? b : b & r.pick([1, 0x80, 0x0f]))));
    }
    return command(TPM_ST.NO_SESSIONS, TPM_CC.PCR_Read, [...u32(n), ...sels]);
  }

  #pcrExtend(): Uint8Array {
    const r = this.rng;
    const n = r.pick([1, 1, 1, 2, 4, 0, 5]);
    const digests: number[] = [];
    for (let i = 0; i < n; i++) {
      const alg = r.chance(0.93) ? r.pick(HASHES) : r.pick([TPM_ALG.NULL, TPM_ALG.SM3_256, r.int(0x10000)]);
      const size = DIGEST_SIZE[alg] ?? 32;
      digests.push(...u16(alg), ...r.bytes(size));
    }
    return authCommand(TPM_CC.PCR_Extend, [this.#pcrHandle()], [r.chance(0.95) ? [] : [1]], [...u32(n), ...digests]);
  }

  #getCapability(): [string, Uint8Array] {
    const r = this.rng;
    const caps: [number, () => number][] = [
      [TPM_CAP.ALGS, () => r.pick([0, 1, 0x10, 0x44, 0x8000])],
      [TPM_CAP.HANDLES, () => r.pick([0x80000000, 0x02000000, 0x03000000, 0x01000000, 0x01500001, 0x81000000, 0x40000000, 0x40000009, 0x00000000, 0x00000005, 0x05000000, 0xff000000])],
      [TPM_CAP.COMMANDS, () => r.pick([0x11f, 0x17e, 0, 0x200])],
      [TPM_CAP.PP_COMMANDS, () => r.pick([0, 0x11f])],
      [TPM_CAP.AUDIT_COMMANDS, () => r.pick([0, 0x11f])],
      [TPM_CAP.PCRS, () => r.pick([0, 0, 1])],
      [TPM_CAP.TPM_PROPERTIES, () => r.pick([0x100 + r.int(0x31), 0x200 + r.int(0x18), 0, 0xff, 0x300])],
      [TPM_CAP.PCR_PROPERTIES, () => r.pick([r.int(0x16), 0x100])],
      [TPM_CAP.ECC_CURVES, () => r.pick([0, 3])],
      [TPM_CAP.AUTH_POLICIES, () => r.pick([0x40000001, 0x40000000])],
      [0x0000000a, () => 0x40000110], // TPM_CAP_ACT
      [0x00000100, () => 0], // TPM_CAP_VENDOR_PROPERTY
      [0x0000000b, () => 0], // past TPM_CAP_LAST
      [0x55, () => 0],
    ];
    const [cap, prop] = r.pick(caps);
    const count = r.pick([0, 1, 1, 2, 3, 7, 8, 16, 100, 0xffffffff, r.int(300)]);
    return [`GetCapability(${cap.toString(16)})`, command(TPM_ST.NO_SESSIONS, TPM_CC.GetCapability, [...u32(cap), ...u32(prop()), ...u32(count)])];
  }

  #hierarchyHandle(): number {
    const r = this.rng;
    return r.chance(0.9) ? r.pick([TPM_RH.NULL, TPM_RH.NULL, TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM]) : r.pick([TPM_RH.LOCKOUT, 0x40000010, 0x01500000, r.u32()]);
  }

  #hashAlg(): number {
    const r = this.rng;
    return r.chance(0.9) ? r.pick(HASHES) : r.pick([TPM_ALG.NULL, TPM_ALG.SM3_256, TPM_ALG.SHA3_256, TPM_ALG.RSA, r.int(0x10000)]);
  }

  #hash(): [string, Uint8Array] {
    const r = this.rng;
    const data = r.bytes(r.pick([0, 1, 3, 64, 1024, 1025, r.int(200)]));
    return ["Hash", command(TPM_ST.NO_SESSIONS, TPM_CC.Hash, [...t2b(data), ...u16(this.#hashAlg()), ...u32(this.#hierarchyHandle())])];
  }

  #sequenceStart(): [string, Uint8Array] {
    const r = this.rng;
    const auth = r.bytes(r.pick([0, 0, 1, 4, 32, 64, 65]));
    const alg = r.chance(0.2) ? TPM_ALG.NULL : this.#hashAlg(); // NULL: an event sequence
    return ["HashSequenceStart", command(TPM_ST.NO_SESSIONS, TPM_CC.HashSequenceStart, [...t2b(auth), ...u16(alg)])];
  }

  #sequenceHandle(): number {
    const r = this.rng;
    const live = [...this.#sequences.keys()];
    if (live.length && r.chance(0.85)) return r.pick(live);
    return r.pick([SEQ_FIRST, SEQ_FIRST + 1, SEQ_FIRST + 2, SEQ_FIRST + 3, 0x80ffffff, 0x81000000, TPM_RH.OWNER]);
  }

  #sequenceUse(): [string, Uint8Array] {
    const r = this.rng;
    const h = this.#sequenceHandle();
    const right = this.#sequences.get(h) ?? [];
    const auth = r.chance(0.9) ? right : [...right, 1];
    const data = r.bytes(r.pick([0, 1, 3, 64, 1024, 1025, r.int(100)]));
    switch (r.int(4)) {
      case 0:
      case 1:
        return ["SequenceUpdate", authCommand(TPM_CC.SequenceUpdate, [h], [auth], t2b(data))];
      case 2:
        return ["SequenceComplete", authCommand(TPM_CC.SequenceComplete, [h], [auth], [...t2b(data), ...u32(this.#hierarchyHandle())])];
      default:
        return ["EventSequenceComplete", authCommand(TPM_CC.EventSequenceComplete, [this.#pcrHandle() === 24 ? TPM_RH.NULL : r.pick([TPM_RH.NULL, r.int(24)]), h], [[], auth], t2b(data))];
    }
  }

  #selfTest(): [string, Uint8Array] {
    const r = this.rng;
    switch (r.int(3)) {
      case 0:
        return ["SelfTest", command(TPM_ST.NO_SESSIONS, TPM_CC.SelfTest, [r.pick([0, 1, 2])])];
      case 1: {
        const n = r.pick([0, 1, 2, 3]);
        // algorithms both TPMs implement, or none implements; one only libtpms has (RSA, AES,
        // ...) is a known difference of the algorithm list and not generated
        const algs = Array.from({ length: n }, () => r.pick([TPM_ALG.SHA256, TPM_ALG.SHA1, TPM_ALG.SHA384, TPM_ALG.SHA512, TPM_ALG.NULL, 0x7777, 0xfff0]));
        return ["IncrementalSelfTest", command(TPM_ST.NO_SESSIONS, TPM_CC.IncrementalSelfTest, [...u32(n), ...algs.flatMap(u16)])];
      }
      default:
        return ["GetTestResult", command(TPM_ST.NO_SESSIONS, TPM_CC.GetTestResult)];
    }
  }

  #clear(): [string, Uint8Array] {
    const h = this.rng.chance(0.7) ? TPM_RH.LOCKOUT : this.rng.pick([TPM_RH.PLATFORM, TPM_RH.OWNER]);
    return ["Clear", authCommand(TPM_CC.Clear, [h], [this.#authFor(h)])];
  }

  #clearControl(): [string, Uint8Array] {
    const r = this.rng;
    const h = r.pick([TPM_RH.LOCKOUT, TPM_RH.PLATFORM, TPM_RH.OWNER]);
    return ["ClearControl", authCommand(TPM_CC.ClearControl, [h], [this.#authFor(h)], [r.chance(0.6) ? 0 : r.pick([1, 2])])];
  }

  #changeAuth(): [string, Uint8Array] {
    const r = this.rng;
    const h = r.chance(0.95) ? r.pick([TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.LOCKOUT, TPM_RH.PLATFORM]) : r.pick([TPM_RH.NULL, 0x01500000]);
    const auth = this.#authFor(h);
    const newAuth = r.bytes(r.pick([0, 0, 1, 2, 20, 32, 64, 65]));
    const bytes = authCommand(TPM_CC.HierarchyChangeAuth, [h], [auth], t2b(newAuth));
    const right = auth.length === this.#hierarchyAuth(h).length;
    this.#afterObserve = (ok) => {
      if (!ok || !right) return;
      const trimmed = newAuth.slice(0); // libtpms trims trailing zeros of auth values (Part 1 §19.6.5)
      while (trimmed.length && trimmed[trimmed.length - 1] === 0) trimmed.pop();
      if (h === TPM_RH.OWNER) this.#auth.owner = trimmed;
      else if (h === TPM_RH.ENDORSEMENT) this.#auth.endorsement = trimmed;
      else if (h === TPM_RH.LOCKOUT) this.#auth.lockout = trimmed;
      else if (h === TPM_RH.PLATFORM) this.#auth.platform = trimmed;
    };
    return ["HierarchyChangeAuth", bytes];
  }

  #nvIndex(): number {
    const r = this.rng;
    const live = [...this.#nv.keys()];
    if (live.length && r.chance(0.7)) return r.pick(live);
    return r.chance(0.9) ? r.pick(NV_INDICES) : r.pick([0x01000000, 0x01ffffff, 0x02000000, TPM_RH.OWNER, r.u32()]);
  }

  #nvDefine(): [string, Uint8Array] {
    const r = this.rng;
    const index = r.chance(0.9) ? r.pick(NV_INDICES) : r.pick([0x01000000, 0x01c00002, 0x02000000, r.u32()]);
    const platform = index >>> 16 === 0x0140 ? r.chance(0.85) : r.chance(0.1);
    const h = platform ? TPM_RH.PLATFORM : TPM_RH.OWNER;
    // index types both implement, or none does; PIN_FAIL (8) and PIN_PASS (9) only libtpms has
    // (a known difference, not generated)
    const nt = r.pick([NT_ORDINARY, NT_ORDINARY, NT_COUNTER, NT_BITS, NT_EXTEND, r.pick([3, 5, 6, 7, 0xa, 0xf])]);
    let attrs = nt << TPMA_NV.TPM2_NT_SHIFT;
    // mostly usable access: owner and auth read/write
    if (r.chance(0.85)) attrs |= TPMA_NV.OWNERREAD | TPMA_NV.OWNERWRITE | TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE;
    if (platform && r.chance(0.8)) attrs |= TPMA_NV.PLATFORMCREATE | TPMA_NV.PPREAD | TPMA_NV.PPWRITE;
    const extra = [
      TPMA_NV.NO_DA,
      TPMA_NV.WRITEALL,
      TPMA_NV.WRITEDEFINE,
      TPMA_NV.WRITE_STCLEAR,
      TPMA_NV.READ_STCLEAR,
      TPMA_NV.GLOBALLOCK,
      // TPMA_NV.ORDERLY is not generated: libtpms keeps such indices in a small RAM area that is
      // lost on a power cycle without Shutdown; SoftTpm does not model it (a known difference)
      TPMA_NV.CLEAR_STCLEAR,
      TPMA_NV.POLICY_DELETE,
      TPMA_NV.POLICYREAD,
      TPMA_NV.POLICYWRITE,
      TPMA_NV.WRITELOCKED,
      TPMA_NV.WRITTEN,
      TPMA_NV.READLOCKED,
      0x00000100, // reserved bits
      0x00100000,
    ];
    for (let i = r.int(4); i > 0; i--) attrs |= r.pick(extra);
    // random bits, but never a PIN type (8, 9) nor ORDERLY
    if (r.chance(0.05)) attrs = ((r.u32() & ~0x80) | 0x20) & ~TPMA_NV.ORDERLY;
    attrs >>>= 0;
    const size = nt === NT_COUNTER || nt === NT_BITS ? r.pick([8, 8, 8, 4]) : nt === NT_EXTEND ? r.pick([32, 32, 20, 64]) : r.pick([0, 1, 8, 16, 32, 64, 1024, 2048, 2049, 3000]);
    const nameAlg = r.chance(0.9) ? TPM_ALG.SHA256 : r.pick([TPM_ALG.SHA1, TPM_ALG.SHA384, TPM_ALG.NULL, TPM_ALG.SHA3_256]);
    const auth = r.chance(0.5) ? [] : r.bytes(r.pick([1, 4, 32, 33, 64, 65]));
    const policy = r.chance(0.9) ? [] : r.bytes(r.pick([32, 20, 1]));
    const bytes = authCommand(TPM_CC.NV_DefineSpace, [h], [this.#authFor(h)], [...t2b(auth), ...nvPublic(index, attrs, size, nameAlg, policy)]);
    this.#afterObserve = (ok) => {
      if (!ok) return;
      const trimmed = auth.slice(0);
      while (trimmed.length && trimmed[trimmed.length - 1] === 0) trimmed.pop();
      this.#nv.set(index, { attrs, size, auth: trimmed, nameAlg });
    };
    return ["NV_DefineSpace", bytes];
  }

  #nvUndefine(): [string, Uint8Array] {
    const r = this.rng;
    const index = this.#nvIndex();
    const m = this.#nv.get(index);
    const h = m ? (m.attrs & TPMA_NV.PLATFORMCREATE ? TPM_RH.PLATFORM : TPM_RH.OWNER) : r.pick([TPM_RH.OWNER, TPM_RH.PLATFORM]);
    const hh = r.chance(0.9) ? h : r.pick([TPM_RH.OWNER, TPM_RH.PLATFORM, TPM_RH.ENDORSEMENT]);
    this.#afterObserve = (ok) => {
      if (ok) this.#nv.delete(index);
    };
    return ["NV_UndefineSpace", authCommand(TPM_CC.NV_UndefineSpace, [hh, index], [this.#authFor(hh)], [])];
  }

  #nvAccess(): [string, Uint8Array] {
    const r = this.rng;
    const index = this.#nvIndex();
    const m = this.#nv.get(index);
    // authorize with the index itself, the owner or the platform
    const authHandle = r.pick([index, index, TPM_RH.OWNER, TPM_RH.PLATFORM]);
    const auth = this.#authFor(authHandle);
    const size = m?.size ?? 8;
    const op = r.int(9);
    switch (op) {
      case 0:
      case 1: {
        const off = r.chance(0.8) ? 0 : r.int(size + 2);
        const len = r.chance(0.7) ? Math.max(0, Math.min(size - off, r.pick([1, 8, size]))) : r.int(size + 3);
        return ["NV_Write", authCommand(TPM_CC.NV_Write, [authHandle, index], [auth], [...t2b(r.bytes(Math.min(len, 1030))), ...u16(off)])];
      }
      case 2:
      case 3: {
        const off = r.chance(0.8) ? 0 : r.int(size + 2);
        const len = r.chance(0.7) ? Math.max(0, size - off) : r.int(size + 3);
        return ["NV_Read", authCommand(TPM_CC.NV_Read, [authHandle, index], [auth], [...u16(len), ...u16(off)])];
      }
      case 4:
        return ["NV_Increment", authCommand(TPM_CC.NV_Increment, [authHandle, index], [auth])];
      case 5:
        return ["NV_Extend", authCommand(TPM_CC.NV_Extend, [authHandle, index], [auth], t2b(r.bytes(r.pick([0, 1, 32, 100]))))];
      case 6:
        return ["NV_SetBits", authCommand(TPM_CC.NV_SetBits, [authHandle, index], [auth], [...u32(r.chance(0.8) ? 0 : r.u32()), ...u32(r.u32() & r.pick([0xff, 0xffff, 0xffffffff]))])];
      case 7:
        return ["NV_WriteLock", authCommand(TPM_CC.NV_WriteLock, [authHandle, index], [auth])];
      default:
        return ["NV_ReadLock", authCommand(TPM_CC.NV_ReadLock, [authHandle, index], [auth])];
    }
  }

  /**
   * Session plumbing without HMAC computation: StartAuthSession (unsalted, symmetric NULL; the
   * response's nonceTPM is random and masked), FlushContext, and commands that present a session
   * handle with a made-up HMAC (refused identically: the HMAC check needs the TPM's nonce).
   */
  #session(): [string, Uint8Array] {
    const r = this.rng;
    const live = [...this.#sessions];
    const op = r.int(5);
    if (op <= 1 || live.length === 0) {
      const bind = r.chance(0.7) ? TPM_RH.NULL : r.pick([TPM_RH.OWNER, this.#nvIndex(), TPM_RH.PLATFORM]);
      const nonce = r.bytes(r.pick([16, 16, 20, 32, 0, 15, 65]));
      // HMAC or an invalid TPM_SE; POLICY and TRIAL are not generated (SoftTpm has no policy
      // sessions: a known difference, see the test file)
      const type = r.chance(0.85) ? 0x00 : r.pick([0x02, 0x07, 0xff]);
      // NULL or a value that is no symmetric algorithm; AES is not generated (SoftTpm has no
      // parameter encryption: a known difference)
      const sym = r.chance(0.9) ? u16(TPM_ALG.NULL) : u16(r.pick([TPM_ALG.RSA, TPM_ALG.SHA256, 0x7777]));
      const alg = r.chance(0.9) ? TPM_ALG.SHA256 : r.pick([TPM_ALG.SHA1, TPM_ALG.NULL, TPM_ALG.SHA384]);
      return ["StartAuthSession", command(TPM_ST.NO_SESSIONS, TPM_CC.StartAuthSession, [...u32(TPM_RH.NULL), ...u32(bind), ...t2b(nonce), ...t2b([]), type, ...sym, ...u16(alg)])];
    }
    const h = r.chance(0.85) ? r.pick(live) : r.pick([SESSION_FIRST, SESSION_FIRST + 5, 0x03000000, 0x02ffffff]);
    if (op === 2) return ["FlushContext", command(TPM_ST.NO_SESSIONS, TPM_CC.FlushContext, u32(r.chance(0.9) ? h : this.#sequenceHandle()))];
    // a command authorized by the session with a bogus HMAC (32 bytes) or an empty one
    const sess = [...u32(h), ...t2b(r.bytes(16)), r.pick([1, 0, 0x21, 0x41]), ...t2b(r.bytes(r.pick([32, 0, 20])))];
    const index = this.#nvIndex();
    const target =
      op === 3
        ? { cc: TPM_CC.NV_Read, handles: [index, index], params: [...u16(1), ...u16(0)] }
        : { cc: TPM_CC.PCR_Extend, handles: [r.int(24)], params: [...u32(0)] };
    return ["command with an HMAC session (bogus HMAC)", command(TPM_ST.SESSIONS, target.cc, [...target.handles.flatMap(u32), ...u32(sess.length), ...sess, ...target.params])];
  }

  // ------------------------------------------------------------------------------ malformed frames

  #malformed(): void {
    const r = this.rng;
    this.counts.malformed++;
    const [name, base] = this.#wellFormed();
    this.#afterObserve = undefined; // a mutated command's success says nothing about the model
    const b = Array.from(base);
    const fix = (a: number[]): Uint8Array => {
      const out = Uint8Array.from(a);
      const n = out.length;
      out[2] = (n >>> 24) & 0xff;
      out[3] = (n >>> 16) & 0xff;
      out[4] = (n >>> 8) & 0xff;
      out[5] = n & 0xff;
      return out;
    };
    const kind = r.int(10);
    switch (kind) {
      case 0: {
        // truncated at any point after the header, size field matching the bytes sent
        const cut = r.range(10, Math.max(10, b.length - 1));
        this.#push(`${name} truncated to ${cut}`, fix(b.slice(0, cut)));
        return;
      }
      case 1:
        this.#push(`${name} with trailing bytes`, fix([...b, ...r.bytes(r.range(1, 5))]));
        return;
      case 2: {
        // a tag that is not NO_SESSIONS/SESSIONS; 0x0000 is left out: swtpm reads 00 00 00 08
        // as the mssim TPM_SEND_COMMAND prefix (swtpm 0.7.1, measured)
        const tag = r.pick([TPM_ST.RSP_COMMAND, TPM_ST.NULL, 0x8003, TPM_ST.ATTEST_NV, 0x1234, 0xffff, 0x0001, r.range(1, 0xffff)]);
        b[0] = tag >>> 8;
        b[1] = tag & 0xff;
        this.#push(`${name} with tag ${tag.toString(16)}`, fix(b));
        return;
      }
      case 3:
        // the other of the two tags: sessions claimed but absent, or present but not claimed
        b[1] = b[1] === 1 ? 2 : 1;
        this.#push(`${name} with the other tag`, fix(b));
        return;
      case 4: {
        const cc = r.pick(UNKNOWN_CODES);
        b.splice(6, 4, ...u32(cc));
        this.#push(`unknown code ${cc.toString(16)}`, fix(b));
        return;
      }
      case 5: {
        // a bad first handle (commands that have one)
        if (b.length >= 14) b.splice(10, 4, ...u32(r.pick([r.u32(), 0x40000009, 0x40000000, 0x80000000, 0x01000000, 0x00000018, 0xffffffff])));
        this.#push(`${name} with a bad handle`, fix(b));
        return;
      }
      case 6: {
        // a bad authorization area on a command with sessions
        const isSess = b[1] === 2;
        if (!isSess) {
          this.#push(`${name} flipped byte`, fix(this.#flip(b)));
          return;
        }
        const at = this.#authAreaOffset(base);
        if (at < 0) {
          this.#push(`${name} flipped byte`, fix(this.#flip(b)));
          return;
        }
        const sub = r.int(7);
        const authSize = (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
        if (sub === 0) b.splice(at, 4, ...u32(authSize + r.pick([1, 4, 100, -1, -4]) >>> 0));
        else if (sub === 1) b.splice(at, 4, ...u32(r.pick([0, 0xffffffff, 0x10000, 8])));
        else if (sub === 2) b.splice(at + 4, 4, ...u32(r.pick([r.u32(), 0x40000000, 0x02000000, 0x03000000, 0x00000000, 0x4000000a])));
        else if (sub === 3) b.splice(at + 8, 2, ...u16(r.pick([1, 0x10, 0xffff, 33])));
        else if (sub === 4) b[at + 10] = r.pick([0x00, 0x02, 0x18, 0x20, 0x40, 0x80, 0xff, r.int(256)]);
        else if (sub === 5) b.splice(at + 11, 2, ...u16(r.pick([0x41, 1, 0xffff, 0x1000])));
        else {
          // a second, third or fourth password session
          const extra = Array.from({ length: r.range(1, 3) }, () => pwSession([])).flat();
          b.splice(at + 4 + authSize, 0, ...extra);
          b.splice(at, 4, ...u32(authSize + extra.length));
        }
        this.#push(`${name} with a bad session area (${sub})`, fix(b));
        return;
      }
      case 7:
        this.#push(`${name} flipped byte`, fix(this.#flip(b)));
        return;
      case 8: {
        // a header size field that lies (raw path); never 00 00 00 08 in the first four bytes
        const lie = r.pick([b.length + 1, b.length + 100, b.length - 1, 10, 4096, 4097, 0xffffffff, r.range(11, 600)]) >>> 0;
        const out = Uint8Array.from(b);
        out.set(u32(lie), 2);
        if (out.length !== lie) {
          this.#queue.push({ kind: "raw", name: `${name} with size field ${lie} for ${out.length} bytes`, bytes: out, locality: this.#locality });
          return;
        }
        this.#push(name, out);
        return;
      }
      default: {
        // a parameter TPM2B size that lies: the first parameter's u16 after the handles/auth
        const at = b[1] === 2 ? this.#authAreaOffset(base) : -1;
        const p = at >= 0 ? at + 4 + ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) : Math.min(b.length, 10 + 4 * r.int(2));
        if (p + 2 <= b.length) b.splice(p, 2, ...u16(r.pick([0xffff, 0x0400, 0x0401, 1, 0])));
        this.#push(`${name} with a lying parameter size`, fix(b));
        return;
      }
    }
  }

  #flip(b: number[]): number[] {
    // never the tag/size/code (a flipped code could land on a command only libtpms implements)
    if (b.length <= 10) return b;
    const at = this.rng.range(10, b.length - 1);
    b[at] = this.rng.int(256);
    return b;
  }

  /** Offset of the authorization-area size of a ST_SESSIONS command (handle count from the code), or -1. */
  #authAreaOffset(cmd: Uint8Array): number {
    const cc = ((cmd[6]! << 24) | (cmd[7]! << 16) | (cmd[8]! << 8) | cmd[9]!) >>> 0;
    const twoHandles: number[] = [TPM_CC.NV_Write, TPM_CC.NV_Read, TPM_CC.NV_Increment, TPM_CC.NV_Extend, TPM_CC.NV_SetBits, TPM_CC.NV_WriteLock, TPM_CC.NV_ReadLock, TPM_CC.NV_UndefineSpace, TPM_CC.EventSequenceComplete];
    const at = 10 + 4 * (twoHandles.includes(cc) ? 2 : 1);
    return at + 4 <= cmd.length ? at : -1;
  }

  /** Called by {@link DiffGenerator.observe} with success of the command (set by the builder). */
  #afterObserve: ((ok: boolean) => void) | undefined;

  /**
   * Like {@link DiffGenerator.observe}, also running the builder's follow-up (auth changes, NV
   * defines). The test calls this one.
   *
   * @param rsp - swtpm's response to the last step
   */
  learn(rsp: Uint8Array): void {
    const step = this.#last;
    const after = this.#afterObserve;
    this.#afterObserve = undefined;
    this.observe(rsp);
    if (after && step && step.kind === "cmd") {
      const ok = rsp.length >= 10 && rsp[6] === 0 && rsp[7] === 0 && rsp[8] === 0 && rsp[9] === 0;
      after(ok);
    }
  }
}
