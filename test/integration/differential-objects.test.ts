/**
 * Differential test, objects and sessions (GitHub issue 12): generated sequences of key, object,
 * context and policy-session commands go to SoftTpm and to a real swtpm 0.7.1 (libtpms 0.9), and
 * the responses must be identical once the random parts are masked. The generator and its masks
 * are in differential-objects.ts; the register-level differential test (NV, PCR, hashing, clock,
 * malformed frames) is differential.test.ts.
 *
 * swtpm's hierarchy seeds cannot be set, so keys the TPMs generate differ: their answers are
 * compared with key material, private blobs, names, creation hashes and ticket HMACs masked (sizes
 * and everything else compared). Everything built from keys the test brings (LoadExternal of fixed
 * RSA, ECC, HMAC and AES keys), sealed data, policy digests, handles, slot limits and error codes
 * is compared byte for byte.
 *
 * CI runs three fixed seeds; DIFF_SEED runs others (comma-separated), DIFF_STEPS changes the length, DIFF_TRACE=file
 * writes every step with both answers. swtpm must be installed: without it this test fails.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SoftTpm, SwtpmControl, swtpm, systemClock, toHex } from "../../src/index.js";
import { TPM_CC } from "../../src/wire/constants.js";
import { type Answers, type Blank, ObjGenerator, type ObjStep, rcOf, sessionBlanks, u16at, u32at } from "./differential-objects.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm } from "./swtpm-peer.js";

/** DIFF_SEED: one seed, or several separated by commas. */
const SEED_LIST = process.env.DIFF_SEED !== undefined ? process.env.DIFF_SEED.split(",").map((x) => Number(x) >>> 0) : undefined;
const STEPS = process.env.DIFF_STEPS !== undefined ? Number(process.env.DIFF_STEPS) : 400;
const TRACE = process.env.DIFF_TRACE;

/**
 * What differs on purpose between SoftTpm and libtpms in the object and session commands, each
 * with its reason. `applies` picks the (successful) answers it covers and `compareAs` says how
 * they are compared instead of byte for byte.
 */
type KnownDifference = { name: string; why: string } & ({ applies(cmd: Uint8Array): boolean; compareAs(rsp: Uint8Array): string } | { maskedBy: string });

const KNOWN_DIFFERENCES: KnownDifference[] = [
  {
    name: "private blob layout",
    why: "TPM2B_PRIVATE is opaque and each TPM's own format: libtpms' blob is 50 bytes longer than SoftTpm's for an empty authValue and 18 bytes longer for a 32-byte one (swtpm 0.7.1, measured; libtpms pads the authValue to the digest size). Its size is not compared, only that the command succeeded and everything after the blob.",
    maskedBy: "privateBlank() in differential-objects.ts (Create, CreateLoaded, ObjectChangeAuth outPrivate, size field included)",
  },
  {
    name: "context blobs",
    why: "the context blob is each TPM's own encrypted structure (libtpms serializes its OBJECT/SESSION). savedHandle, hierarchy and the sequence are compared, for objects and sessions (SoftTpm counts session contexts from 4 as libtpms' contextCounter does).",
    maskedBy: "contextSaveShape / objectContextShape in differential-objects.ts",
  },
  {
    name: "handle-count properties",
    why: "GetCapability(TPM_PROPERTIES) from TPM_PT_HR_TRANSIENT_MIN on: TPM_PT_HR_PERSISTENT_MIN (0x10f) and TPM_PT_ACTIVE_SESSIONS_MAX (0x111) are blanked: libtpms sizes them from its NV and its 64-entry context array; every other value (transient and loaded slots: 3 on both) is compared",
    applies: (c) => c.length >= 22 && u32at(c, 6) === 0x17a && u32at(c, 10) === 6 && u32at(c, 14) === 0x10e,
    compareAs: (r) => {
      const b = Uint8Array.from(r);
      for (let p = 19; p + 8 <= b.length; p += 8) if ([0x10f, 0x111].includes(u32at(b, p))) b.fill(0xee, p + 4, p + 8);
      return toHex(b);
    },
  },
  {
    name: "free session slots",
    why: "GetCapability(TPM_PROPERTIES) from TPM_PT_HR_LOADED on: TPM_PT_HR_ACTIVE_AVAIL (0x206) is blanked: SoftTpm keeps no saved (context-saved) sessions beyond its 3 loaded ones (3), libtpms has 64 active-session entries (0x40); loaded and transient slots are compared",
    applies: (c) => c.length >= 22 && u32at(c, 6) === 0x17a && u32at(c, 10) === 6 && u32at(c, 14) === 0x203,
    compareAs: (r) => {
      const b = Uint8Array.from(r);
      for (let p = 19; p + 8 <= b.length; p += 8) if (u32at(b, p) === 0x206) b.fill(0xee, p + 4, p + 8);
      return toHex(b);
    },
  },
];

/**
 * Error answers that differ on purpose: `applies` picks them by command and response code, and
 * both TPMs' answers are then compared as `as`.
 */
const KNOWN_ERROR_DIFFERENCES: { name: string; why: string; applies(cmd: Uint8Array, rsp: Uint8Array): boolean; as: string }[] = [
  {
    name: "RSA value errors",
    why: "RSA_Decrypt of a cipher text not below the modulus (or with a bad padding) and RSA_Encrypt of a message not below it: SoftTpm answers TPM_RC_VALUE (0x084), the code Part 3 §14.2–14.3 gives; libtpms 0.9 answers TPM_RC_FAILURE (0x101) from its OpenSSL glue without entering failure mode (swtpm 0.7.1, measured; src/softtpm/commands/asymmetric.ts)",
    applies: (c, r) => ([TPM_CC.RSA_Decrypt, TPM_CC.RSA_Encrypt] as number[]).includes(u32at(c, 6)) && [0x084, 0x101].includes(rcOf(r)),
    as: "RSA value error (TPM_RC_VALUE / TPM_RC_FAILURE)",
  },
];

/** The comparable form of one TPM's answer to a step. */
function comparable(step: ObjStep, cmd: Uint8Array, rsp: Uint8Array): { text: string; how: string } {
  const knownError = rcOf(rsp) !== 0 ? KNOWN_ERROR_DIFFERENCES.find((k) => k.applies(cmd, rsp)) : undefined;
  if (knownError) return { text: knownError.as, how: knownError.name };
  if (rsp.length <= 10 || rcOf(rsp) !== 0) return { text: toHex(rsp), how: "bytes" };
  const known = KNOWN_DIFFERENCES.find((k) => "applies" in k && k.applies(cmd));
  if (known && "compareAs" in known) return { text: known.compareAs(rsp), how: known.name };
  if (step.compareAs) return { text: step.compareAs(rsp), how: "shape" };
  const blanks: Blank[] = [];
  try {
    blanks.push(...sessionBlanks(rsp, step.handles));
    if (step.mask) blanks.push(...step.mask(rsp));
  } catch {
    return { text: toHex(rsp), how: "bytes (mask failed)" };
  }
  // each masked range becomes one "[..]": ranges of different lengths (an opaque blob) compare equal
  const real = blanks.filter(([f, t]) => t > f).sort((x, y) => x[0] - y[0]);
  if (!real.length) return { text: toHex(rsp), how: "bytes" };
  let text = "";
  let at = 0;
  for (const [from, to] of real) {
    if (from < at) {
      at = Math.max(at, to);
      continue;
    }
    text += toHex(rsp.subarray(at, from)) + "[..]";
    at = Math.min(to, rsp.length);
  }
  return { text: text + toHex(rsp.subarray(at)), how: "masked" };
}

interface Difference {
  index: number;
  step: ObjStep;
  swtpm: string;
  soft: string;
}

async function runSequence(seed: number, steps: number) {
  const p = await startSwtpm({ flags: "not-need-init", prefix: "tpmkit-diffobj-" });
  const ctl = new SwtpmControl(p.ctrl);
  const transport = swtpm(p.data, { control: ctl });
  try {
    const soft = new SoftTpm({ seed: `differential objects ${seed}`, manufacturer: "IBM", vendorString: "SW   TPM", firmwareVersion: [0x20191023, 0x00163636], daRetryAfterStartup: true });
    const gen = new ObjGenerator(seed, steps);
    const differences: Difference[] = [];
    const how = new Map<string, number>();
    const trace: string[] = [];
    const t0 = performance.now();
    let softMs = 0;
    const it = gen.steps();
    let index = 0;
    for (let n = it.next(undefined as unknown as Answers); !n.done; index++) {
      const step = n.value;
      const a = await transport.send(step.bytes, { signal: AbortSignal.timeout(20000), locality: 0, timeoutMs: 20000, clock: systemClock });
      const t1 = performance.now();
      const sb = step.soft ?? step.bytes;
      const b = soft.executeSync(sb, 0);
      softMs += performance.now() - t1;
      const ca = comparable(step, step.bytes, a);
      const cb = comparable(step, sb, b);
      how.set(ca.how, (how.get(ca.how) ?? 0) + 1);
      const differs = ca.text !== cb.text;
      if (TRACE) trace.push(`#${index} ${step.group}: ${step.name}\n  > ${toHex(step.bytes)}${step.soft ? `\n  >T ${toHex(step.soft)}` : ""}\n  S ${toHex(a)}\n  T ${toHex(b)}${differs ? "  <<<<< DIFFERENT" : ""}`);
      if (differs && differences.length < 20) differences.push({ index, step, swtpm: toHex(a), soft: toHex(b) });
      n = it.next({ a, b });
    }
    if (TRACE) fs.writeFileSync(TRACE, trace.join("\n") + "\n");
    return { compared: index, differences, how, gen, ms: performance.now() - t0, softMs };
  } finally {
    await transport.close().catch(() => undefined);
    await ctl.close().catch(() => undefined);
    await p.stop();
  }
}

const SEEDS = SEED_LIST ?? [0x0b1e_c7ed, 0x2b, 0x3c];

describe("SoftTpm against a real swtpm 0.7.1: generated object and session sequences", () => {
  beforeAll(() => requireSwtpm());
  afterAll(() => killAllStartedSwtpm());

  for (const seed of SEEDS) {
    it(`gives identical responses after masking (seed 0x${seed.toString(16)}, ${STEPS} steps)`, async () => {
      const { compared, differences, how, gen, ms, softMs } = await runSequence(seed, STEPS);
      const c = gen.counts;
      console.log(
        `differential objects: seed 0x${seed.toString(16)}: ${compared} commands in ${ms.toFixed(0)} ms (SoftTpm ${softMs.toFixed(0)} ms); ` +
          `comparison: ${[...how].map(([k, v]) => `${k} ${v}`).join(", ")}; steps: ${[...c.groups].map(([k, v]) => `${k} ${v}`).join(", ")}; ` +
          `scenarios: ${[...c.scenarios].map(([k, v]) => `${k} ${v}`).join(", ")}; ${differences.length} differences`,
      );
      const report = differences
        .slice(0, 8)
        .map((d) => `#${d.index} ${d.step.name}\n  command ${toHex(d.step.bytes)}${d.step.soft ? `\n  (SoftTpm's frame ${toHex(d.step.soft)})` : ""}\n  swtpm   ${d.swtpm}\n  SoftTpm ${d.soft}`)
        .join("\n");
      expect(differences.length, `seed 0x${seed.toString(16)} (rerun with DIFF_SEED=${seed} DIFF_TRACE=/tmp/trace.txt): ${differences.length} differences\n${report}`).toBe(0);
      expect(compared).toBeGreaterThanOrEqual(STEPS);
      // the sequence exercised objects and sessions, and most of it succeeded
      for (const g of ["LoadExternal", "Create", "Load", "Unseal", "PolicyGetDigest", "policy assertion", "StartAuthSession", "FlushContext"]) expect(c.groups.get(g) ?? 0, g).toBeGreaterThan(3);
    });
  }
});
