/**
 * Differential test: the same generated command sequences go to SoftTpm and to a real swtpm 0.7.1
 * (libtpms 0.9), and the responses must be byte-identical once the fields that are random or
 * time-dependent are masked (GitHub issue 3, point 6).
 *
 *   generator ─┬─ swtpm() transport ─ TCP ─ swtpm 0.7.1   (locality: CMD_SET_LOCALITY on the control
 *              │                                            channel; power cycle: CMD_INIT)
 *              └─ SoftTpm.executeSync(bytes, locality)      (power cycle: powerOff() + start())
 *
 * CI runs three fixed seeds of 2,500 commands each, every run on a fresh swtpm (its own state dir,
 * stopped by PID). DIFF_SEED runs one seed instead, DIFF_COMMANDS changes the length, and
 * DIFF_TRACE=file writes every step with both answers there. A failure prints the seed, the step
 * and both responses. Frames shorter than the 10-byte header are never sent: swtpm waits for more
 * bytes and does not answer them. swtpm must be installed (CI installs it). Without it this test
 * fails; it does not skip.
 *
 * What may differ, and why, is written down in two tables below. MASKS lists the fields that are
 * random or time-dependent on any TPM; they are masked in both responses before comparing.
 * SESSION_MASK covers the response nonces and HMACs of HMAC sessions. KNOWN_DIFFERENCES lists the
 * answers that differ on purpose, each with its reason. Everything else must match byte for byte.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SoftTpm, SwtpmControl, swtpm, systemClock, toHex, type SwtpmTransport } from "../../src/index.js";
import { TPM_CAP, TPM_CC, TPM_PT } from "../../src/wire/constants.js";
import { DiffGenerator, type DiffStep } from "./differential-gen.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm, type SwtpmPeer } from "./swtpm-peer.js";

const SEED = process.env.DIFF_SEED !== undefined ? Number(process.env.DIFF_SEED) >>> 0 : 0x7e57_2026;
const COMMANDS = process.env.DIFF_COMMANDS !== undefined ? Number(process.env.DIFF_COMMANDS) : 2500;
/** DIFF_TRACE=file writes every step with both responses there (for chasing a difference). */
const TRACE = process.env.DIFF_TRACE;

// ------------------------------------------------------------------------------ response parsing

const u16at = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const u32at = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const ccOf = (cmd: Uint8Array): number => (cmd.length >= 10 ? u32at(cmd, 6) : -1);
const rcOf = (rsp: Uint8Array): number => (rsp.length >= 10 ? u32at(rsp, 6) : -1);

/** Start of the response parameters: after the header, the response handle (if any) and, with sessions, parameterSize. */
function paramStart(rsp: Uint8Array, handles: number): number {
  return 10 + 4 * handles + (u16at(rsp, 0) === 0x8002 ? 4 : 0);
}

/** A byte range [from, to) to blank out, with the mask's name. */
type Blank = [from: number, to: number];

// ------------------------------------------------------------------------------------- the masks

/**
 * Fields that must differ between any two TPMs (or two runs of one), masked in BOTH responses,
 * only in successful responses (an error response is 10 bytes and always compared whole).
 */
const MASKS: { name: string; cc: number; why: string; blank(rsp: Uint8Array): Blank[] }[] = [
  {
    name: "GetRandom randomBytes",
    cc: TPM_CC.GetRandom,
    why: "random output of the RNG; its size (TPM2B size field) is still compared",
    blank: (r) => [[12, r.length]],
  },
  {
    name: "ReadClock time and clock",
    cc: TPM_CC.ReadClock,
    why: "TPMS_TIME_INFO.time and clockInfo.clock are milliseconds since power-on / of TPM lifetime; resetCount, restartCount and safe are compared",
    blank: () => [[10, 26]],
  },
  {
    name: "StartAuthSession nonceTPM",
    cc: TPM_CC.StartAuthSession,
    why: "nonceTPM is fresh random bytes; the session handle and the nonce size are compared",
    blank: (r) => {
      const p = paramStart(r, 1);
      return [[p + 2, p + 2 + u16at(r, p)]];
    },
  },
  {
    name: "Hash validation ticket digest",
    cc: TPM_CC.Hash,
    why: "TPMT_TK_HASHCHECK.digest is an HMAC keyed with the TPM's random proof value (SoftTpm: HMAC-SHA-512 over its own proof); tag, hierarchy and size are compared",
    blank: (r) => {
      const p = paramStart(r, 0);
      const t = p + 2 + u16at(r, p) + 2 + 4; // outHash, ticket.tag, ticket.hierarchy
      return [[t + 2, t + 2 + u16at(r, t)]];
    },
  },
  {
    name: "SequenceComplete validation ticket digest",
    cc: TPM_CC.SequenceComplete,
    why: "as for Hash: an HMAC over the TPM's random proof",
    blank: (r) => {
      const p = paramStart(r, 0);
      const t = p + 2 + u16at(r, p) + 2 + 4;
      return [[t + 2, t + 2 + u16at(r, t)]];
    },
  },
];

// ------------------------------------------------------------------------- the known differences

/** Fixed properties (TPM_PT_*) whose values differ on purpose; their tags and order are compared. */
const PROPERTY_DIFFERENCES = new Map<number, string>([
  [TPM_PT.HR_PERSISTENT_MIN, "SoftTpm has no persistent objects (0); libtpms guarantees 7"],
  [TPM_PT.ACTIVE_SESSIONS_MAX, "SoftTpm keeps 3 HMAC sessions; libtpms 64 active (saved) sessions"],
  [TPM_PT.MAX_OBJECT_CONTEXT, "SoftTpm has no ContextSave (0)"],
  [TPM_PT.MAX_SESSION_CONTEXT, "SoftTpm has no ContextSave (0)"],
  [TPM_PT.PS_FAMILY_INDICATOR, "libtpms copies the library spec's family, level, revision and date into the PS_* properties; SoftTpm names the PC Client platform spec (family 1) and leaves the rest 0"],
  [TPM_PT.PS_LEVEL, "see PS_FAMILY_INDICATOR"],
  [TPM_PT.PS_REVISION, "see PS_FAMILY_INDICATOR"],
  [TPM_PT.PS_DAY_OF_YEAR, "see PS_FAMILY_INDICATOR"],
  [TPM_PT.PS_YEAR, "see PS_FAMILY_INDICATOR"],
  [TPM_PT.TOTAL_COMMANDS, "SoftTpm implements 33 commands, libtpms 0.9 110"],
  [TPM_PT.HR_ACTIVE_AVAIL, "follows ACTIVE_SESSIONS_MAX (3 against 64)"],
  [TPM_PT.HR_PERSISTENT_AVAIL, "SoftTpm has no persistent objects (0)"],
  [TPM_PT.NV_COUNTERS_AVAIL, "libtpms derives it from its free NV bytes, SoftTpm from its limit on the number of indices"],
  [TPM_PT.LOADED_CURVES, "SoftTpm has no ECC (0)"],
  [TPM_PT.LIBRARY_COMMANDS, "same as TOTAL_COMMANDS"],
]);

/**
 * Everything that differs on purpose, in one table. An entry either says which successful
 * responses it covers and how they are compared instead of byte for byte (`applies` and
 * `compareAs`), or, for behaviour SoftTpm does not implement at all, `notGenerated` says how the
 * generator (differential-gen.ts) keeps away from it, because a single such command would make
 * the two TPMs' states drift apart and every later answer differ.
 */
type KnownDifference = { name: string; why: string } & (
  | { applies(cmd: Uint8Array): boolean; compareAs(rsp: Uint8Array): string }
  | { notGenerated: string }
);

const KNOWN_DIFFERENCES: KnownDifference[] = [
  {
    name: "algorithm, command, audit and curve lists",
    why: "GetCapability(ALGS / COMMANDS / PP_COMMANDS / AUDIT_COMMANDS / ECC_CURVES) lists what each TPM implements: SoftTpm has hashes only (no RSA, ECC, AES, keys), libtpms the whole library; libtpms lists PP_Commands as needing physical presence and always audits SetCommandCodeAuditStatus, two commands SoftTpm does not implement. Header, response code and the capability field are compared.",
    applies: (c) => ccOf(c) === TPM_CC.GetCapability && c.length >= 14 && [TPM_CAP.ALGS, TPM_CAP.COMMANDS, TPM_CAP.PP_COMMANDS, TPM_CAP.AUDIT_COMMANDS, TPM_CAP.ECC_CURVES].includes(u32at(c, 10) as 0),
    compareAs: (r) => toHex(r.subarray(0, 10)).slice(0, 4) + toHex(r.subarray(6, 10)) + toHex(r.subarray(11, 15)),
  },
  {
    name: "vendor and command-count properties",
    why: `GetCapability(TPM_PROPERTIES): values of ${[...PROPERTY_DIFFERENCES.keys()].map((p) => "0x" + p.toString(16)).join(", ")} are blanked: ${[...PROPERTY_DIFFERENCES.values()].join("; ")}. Every other property, the tags, moreData and count are compared.`,
    applies: (c) => ccOf(c) === TPM_CC.GetCapability && c.length >= 14 && u32at(c, 10) === TPM_CAP.TPM_PROPERTIES,
    compareAs: (r) => {
      const b = Uint8Array.from(r);
      if (b.length < 19) return toHex(b);
      const n = u32at(b, 15);
      for (let i = 0, p = 19; i < n && p + 8 <= b.length; i++, p += 8) if (PROPERTY_DIFFERENCES.has(u32at(b, p))) b.fill(0xee, p + 4, p + 8);
      return toHex(b);
    },
  },
  {
    name: "IncrementalSelfTest to-do list",
    why: "SoftTpm tests nothing lazily, so its toDoList is always empty; libtpms lists the algorithms it has not self-tested yet. Header and response code are compared.",
    applies: (c) => ccOf(c) === TPM_CC.IncrementalSelfTest,
    compareAs: (r) => toHex(r.subarray(0, 2)) + toHex(r.subarray(6, 10)),
  },
  {
    name: "commands only libtpms implements",
    why: "SoftTpm answers TPM_RC_COMMAND_CODE for the ~77 library commands it lacks (keys, policies, context save, audit, ...); libtpms runs them.",
    notGenerated: "unknown-code frames use codes neither implements (below 0x11f, 0x1a0 and up, vendor codes other than 0x20000000); byte flips never touch the command code",
  },
  {
    name: "algorithms only libtpms implements",
    why: "SoftTpm has the four hashes only: IncrementalSelfTest of RSA/AES/ECC..., or a session with a symmetric algorithm, succeed on libtpms and are refused by SoftTpm.",
    notGenerated: "IncrementalSelfTest names hashes, NULL or non-algorithms; StartAuthSession uses symmetric NULL or a non-symmetric value",
  },
  {
    name: "policy and trial sessions",
    why: "SoftTpm has no policy sessions: StartAuthSession(POLICY/TRIAL) is TPM_RC_VALUE + P3 where libtpms starts one (all checks before that give the same answers).",
    notGenerated: "sessionType is HMAC or an invalid TPM_SE",
  },
  {
    name: "PIN indices",
    why: "TPM_NT_PIN_FAIL and TPM_NT_PIN_PASS (8, 9) are not implemented: TPM_RC_ATTRIBUTES on SoftTpm.",
    notGenerated: "NV types are 0, 1, 2, 4 or values no TPM implements",
  },
  {
    name: "TPMA_NV_ORDERLY indices",
    why: "libtpms keeps them in a small RAM area (TPM_RC_NV_SPACE beyond it) that is lost on a power cycle without Shutdown (the index loses its WRITTEN state); SoftTpm treats them as ordinary NV.",
    notGenerated: "the ORDERLY attribute is never set",
  },
];

/**
 * The response authorization area of a successful ST_SESSIONS response: each session's nonceTPM
 * (fresh random bytes for an HMAC session) and HMAC (keyed over those nonces) are masked; their
 * sizes and the session attributes are compared. Password sessions have both empty, so nothing
 * is masked for them. TPM 2.0 Part 1 §18.8–18.9.
 */
const SESSION_MASK = "response session nonceTPM and HMAC";

function sessionBlanks(cmd: Uint8Array, rsp: Uint8Array): Blank[] {
  if (u16at(rsp, 0) !== 0x8002 || rsp.length < 14) return [];
  const handles = ccOf(cmd) === TPM_CC.StartAuthSession || ccOf(cmd) === TPM_CC.HashSequenceStart ? 1 : 0;
  let p = 10 + 4 * handles;
  if (p + 4 > rsp.length) return [];
  p += 4 + u32at(rsp, p);
  const out: Blank[] = [];
  while (p + 2 <= rsp.length) {
    const n = u16at(rsp, p);
    if (n) out.push([p + 2, p + 2 + n]);
    p += 2 + n + 1;
    if (p + 2 > rsp.length) break;
    const h = u16at(rsp, p);
    if (h) out.push([p + 2, p + 2 + h]);
    p += 2 + h;
  }
  return out;
}

/** The comparable form of a response: hex with masked bytes as "..". */
function comparable(cmd: Uint8Array, rsp: Uint8Array): { text: string; how: string } {
  if (rsp.length <= 10 || rcOf(rsp) !== 0) return { text: toHex(rsp), how: "bytes" };
  const known = KNOWN_DIFFERENCES.find((k) => "applies" in k && k.applies(cmd));
  if (known && "compareAs" in known) return { text: known.compareAs(rsp), how: known.name };
  const mask = MASKS.find((m) => m.cc === ccOf(cmd));
  let blanks: Blank[] = [];
  try {
    blanks = sessionBlanks(cmd, rsp);
  } catch {
    blanks = [];
  }
  const how = mask ? mask.name : blanks.length ? SESSION_MASK : "bytes";
  if (!mask && !blanks.length) return { text: toHex(rsp), how };
  try {
    if (mask) blanks.push(...mask.blank(rsp));
  } catch {
    // a response too short for its mask is compared as it is
  }
  const chars = toHex(rsp).split("");
  for (const [from, to] of blanks) for (let i = Math.max(0, from); i < Math.min(to, rsp.length); i++) chars.splice(2 * i, 2, ".", ".");
  return { text: chars.join(""), how };
}

// -------------------------------------------------------------------------------- the raw path

/**
 * One frame on a fresh data connection, for frames whose size field lies (the transport refuses
 * them). Reads one response framed by its own header, bounded by 2 s.
 */
function rawExchange(peer: SwtpmPeer, bytes: Uint8Array): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const ep = peer.data;
    const s = net.connect("path" in ep ? { path: ep.path } : { port: ep.port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`swtpm did not answer the raw frame ${toHex(bytes)} within 2 s`));
    }, 2000);
    s.on("data", (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      const all = Buffer.concat(chunks);
      if (have >= 10 && have >= all.readUInt32BE(2)) {
        clearTimeout(timer);
        s.destroy();
        resolve(new Uint8Array(all.subarray(0, all.readUInt32BE(2))));
      }
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.setNoDelay(true);
    s.write(bytes);
  });
}

// --------------------------------------------------------------------------------------- the test

interface Difference {
  index: number;
  step: DiffStep;
  swtpm: string;
  soft: string;
}

/** What one run found. */
interface RunResult {
  seed: number;
  compared: number;
  differences: Difference[];
  how: Map<string, number>;
  gen: DiffGenerator;
  ms: number;
}

/**
 * Runs one generated sequence against a fresh swtpm (its own state dir, stopped by PID at the end,
 * also on failure) and a fresh SoftTpm.
 */
async function runSequence(seed: number, commands: number): Promise<RunResult> {
  // not-need-init: the TPM is on, but TPM2_Startup is left to the sequence
  const p = await startSwtpm({ flags: "not-need-init", prefix: "tpmkit-diff-" });
  const ctl = new SwtpmControl(p.ctrl);
  let transport: SwtpmTransport = swtpm(p.data, { control: ctl });
  try {
    // SoftTpm configured like swtpm where it can be: manufacturer "IBM", vendor strings "SW  "
    // " TPM", its firmware version, and libtpms' TPM_RC_RETRY on the first DA-protected
    // authorization after each Startup and Shutdown.
    const soft = new SoftTpm({ seed: `differential ${seed}`, manufacturer: "IBM", vendorString: "SW   TPM", firmwareVersion: [0x20191023, 0x00163636], daRetryAfterStartup: true });
    const gen = new DiffGenerator(seed, commands);
    const differences: Difference[] = [];
    const how = new Map<string, number>();
    let swtpmLocality = 0;
    let compared = 0;
    let index = 0;
    const trace: string[] = [];
    const send = (bytes: Uint8Array, locality: number) => transport.send(bytes, { signal: AbortSignal.timeout(5000), locality, timeoutMs: 5000, clock: systemClock });
    const t0 = performance.now();
    for (let step = gen.next(); step; step = gen.next(), index++) {
      if (step.kind === "cycle") {
        await ctl.init();
        await ctl.setLocality(swtpmLocality); // keep swtpm's locality what the transport believes it is
        await soft.powerOff();
        await soft.start();
        continue;
      }
      let a: Uint8Array;
      if (step.kind === "raw") {
        await transport.close(); // swtpm serves one data connection at a time
        if (step.locality !== swtpmLocality) await ctl.setLocality(step.locality);
        swtpmLocality = step.locality;
        a = await rawExchange(p, step.bytes);
        transport = swtpm(p.data, { control: ctl }); // sets the locality again on its first command
      } else {
        a = await send(step.bytes, step.locality);
        swtpmLocality = step.locality;
      }
      const b = soft.executeSync(step.bytes, step.locality);
      gen.learn(a);
      compared++;
      const ca = comparable(step.bytes, a);
      const cb = comparable(step.bytes, b);
      how.set(ca.how, (how.get(ca.how) ?? 0) + 1);
      if (TRACE) {
        // with the trace, also the DA failure counters (TPM_PT_LOCKOUT_COUNTER), which drift silently
        const q = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x16, 0, 0, 0x01, 0x7a, 0, 0, 0, 6, 0, 0, 2, 0x0e, 0, 0, 0, 1]);
        const da = (r: Uint8Array) => (rcOf(r) === 0 && r.length >= 27 ? String(u32at(r, 23)) : "-");
        const qa = await send(q, step.locality);
        const qb = soft.executeSync(q, step.locality);
        trace.push(`#${index} L${step.locality} ${step.name} [DA ${da(qa)}/${da(qb)}]\n  > ${toHex(step.bytes)}\n  S ${toHex(a)}\n  T ${toHex(b)}${ca.text !== cb.text ? "  <<<<< DIFFERENT" : ""}`);
      }
      if (ca.text !== cb.text && differences.length < 20) differences.push({ index, step, swtpm: toHex(a), soft: toHex(b) });
    }
    if (TRACE) fs.writeFileSync(TRACE, trace.join("\n") + "\n");
    return { seed, compared, differences, how, gen, ms: performance.now() - t0 };
  } finally {
    await transport.close().catch(() => undefined);
    await ctl.close().catch(() => undefined);
    await p.stop();
  }
}

/** Seeds run in CI: DIFF_SEED alone when given, else three fixed ones. */
const SEEDS = process.env.DIFF_SEED !== undefined ? [SEED] : [SEED, 0x1a, 0x22];

describe("SoftTpm against a real swtpm 0.7.1: generated command sequences", () => {
  beforeAll(() => requireSwtpm());
  afterAll(() => killAllStartedSwtpm());

  for (const seed of SEEDS) {
    it(`gives byte-identical responses after masking (seed 0x${seed.toString(16)}, ${COMMANDS} commands)`, async () => {
      const { compared, differences, how, gen, ms } = await runSequence(seed, COMMANDS);
      const c = gen.counts;
      console.log(
        `differential: seed 0x${seed.toString(16)}: ${compared} commands compared (${c.malformed} malformed, ${c.raw} with lying size fields, ${c.cycles} power cycles) in ${ms.toFixed(0)} ms; ` +
          `${[...how].map(([k, v]) => `${k}: ${v}`).join(", ")}; ${differences.length} differences`,
      );
      const report = differences
        .slice(0, 8)
        .map((d) => `#${d.index} ${d.step.name} at locality ${d.step.kind === "cycle" ? "-" : d.step.locality}\n  command ${d.step.kind === "cycle" ? "" : toHex(d.step.bytes)}\n  swtpm   ${d.swtpm}\n  SoftTpm ${d.soft}`)
        .join("\n");
      expect(differences.length, `seed 0x${seed.toString(16)} (rerun with DIFF_SEED=${seed} DIFF_TRACE=/tmp/trace.txt): ${differences.length} differences\n${report}`).toBe(0);
      expect(compared).toBeGreaterThanOrEqual(Math.min(COMMANDS, 1000));
      // the sequence really exercised the command set, not just error paths
      for (const cc of [TPM_CC.NV_Write, TPM_CC.NV_Read, TPM_CC.PCR_Extend, TPM_CC.GetCapability, TPM_CC.SequenceUpdate, TPM_CC.StartAuthSession]) {
        expect(c.byCode.get(cc.toString(16)) ?? 0).toBeGreaterThan(10);
      }
      expect(c.cycles).toBeGreaterThan(3);
      expect(c.raw).toBeGreaterThan(5);
    });
  }
});
