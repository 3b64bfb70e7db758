/**
 * Hierarchy policies (TPM2_SetPrimaryPolicy, Part 3 §24.3) authorizing the hierarchy handles with
 * a policy session (Part 1 §19.7), their persistence (owner, endorsement, lockout) and volatility
 * (platform). Codes measured against swtpm 0.7.1 with tpm2-tools 5.4: an Empty Buffer policy is
 * TPM_RC_AUTH_UNAVAILABLE (0x12f), another digest or another session hash TPM_RC_POLICY_FAIL + S1
 * (0x99d), the matching digest authorizes.
 */
import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../core/storage.js";
import { TPM_CAP, TPM_CC } from "../wire/constants.js";
import { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, STARTUP_CLEAR, authCmd, cmd, rcOf, startedTpm, t2b, u16, u32, u32At, unhex } from "./test-helpers.js";

const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const ENDORSEMENT = 0x4000000b;
const PLATFORM = 0x4000000c;
const SHA1 = 0x0004;
const SHA256 = 0x000b;
const ZERO32 = new Array<number>(32).fill(0);

const spp = (auth: number, digest: number[], alg: number): Uint8Array => authCmd(TPM_CC.SetPrimaryPolicy, [auth], [[]], [...t2b(digest), ...u16(alg)]);

/** Starts an unbound, unsalted policy session (its policyDigest stays all zeros: no assertion). */
function policySession(t: SoftTpm, hash = SHA256): number {
  const r = t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(0x40000007), ...u32(0x40000007), ...t2b(new Array(16).fill(1)), ...u16(0), 0x01, ...u16(0x0010), ...u16(hash)]), 0);
  expect(rcOf(r)).toBe(0);
  return u32At(r, 10);
}

/**
 * `cc` on `handle` authorized by policy session `s` (empty HMAC: the session key is empty),
 * continueSession set; the session is flushed afterwards unless `keep`.
 */
function withPolicy(t: SoftTpm, cc: number, handle: number, s: number, params: number[] = [], keep = false): number {
  const area = [...u32(s), ...t2b(new Array(16).fill(2)), 0x01, ...u16(0)];
  const rc = rcOf(t.executeSync(cmd(0x8002, cc, [...u32(handle), ...u32(area.length), ...area, ...params]), 0));
  if (!keep) expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(s)), 0))).toBe(0);
  return rc;
}

/** The command each hierarchy handle is tried with: HierarchyChangeAuth, for lockout DictionaryAttackLockReset too. */
const changeAuth = (t: SoftTpm, h: number, s: number, keep = false): number => withPolicy(t, TPM_CC.HierarchyChangeAuth, h, s, t2b([]), keep);

function authPolicies(t: SoftTpm): Uint8Array {
  const r = t.executeSync(cmd(0x8001, TPM_CC.GetCapability, [...u32(TPM_CAP.AUTH_POLICIES), ...u32(0x40000000), ...u32(16)]), 0);
  expect(rcOf(r)).toBe(0);
  return r.subarray(15);
}

describe("hierarchy authPolicy in a policy session", () => {
  it("an Empty Buffer policy cannot be satisfied: TPM_RC_AUTH_UNAVAILABLE for each hierarchy", () => {
    const t = startedTpm();
    for (const h of [OWNER, ENDORSEMENT, PLATFORM, LOCKOUT]) expect(changeAuth(t, h, policySession(t)), `0x${h.toString(16)}`).toBe(0x12f);
  });

  it("the policyDigest equal to the hierarchy's authPolicy authorizes it; another digest or hash is TPM_RC_POLICY_FAIL + S1", () => {
    const t = startedTpm();
    for (const h of [OWNER, ENDORSEMENT, PLATFORM, LOCKOUT]) {
      expect(rcOf(t.executeSync(spp(h, new Array(32).fill(0x11), SHA256), 0))).toBe(0);
      const s = policySession(t);
      expect(changeAuth(t, h, s, true), "other digest").toBe(0x99d);
      expect(rcOf(t.executeSync(spp(h, ZERO32, SHA256), 0))).toBe(0);
      expect(changeAuth(t, h, s), "matching digest, same session").toBe(0);
      expect(changeAuth(t, h, policySession(t, SHA1)), "SHA-1 session").toBe(0x99d);
    }
    // lockoutPolicy authorizes the dictionary-attack commands as well
    expect(withPolicy(t, TPM_CC.DictionaryAttackLockReset, LOCKOUT, policySession(t))).toBe(0);
  });

  it("TPM2_Clear and TPM2_ChangeEPS empty the policies they own; the policy then no longer authorizes", () => {
    const t = startedTpm();
    for (const h of [OWNER, ENDORSEMENT, LOCKOUT, PLATFORM]) expect(rcOf(t.executeSync(spp(h, ZERO32, SHA256), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.ChangeEPS, [PLATFORM], [[]]), 0))).toBe(0);
    expect(changeAuth(t, ENDORSEMENT, policySession(t))).toBe(0x12f);
    expect(changeAuth(t, OWNER, policySession(t))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.Clear, [LOCKOUT], [[]]), 0))).toBe(0);
    expect(changeAuth(t, OWNER, policySession(t))).toBe(0x12f);
    expect(changeAuth(t, LOCKOUT, policySession(t))).toBe(0x12f);
    expect(changeAuth(t, PLATFORM, policySession(t))).toBe(0);
  });

  it("owner, endorsement and lockout policies are saved with the state; the platform policy is not", async () => {
    const storage = new MemoryStorage();
    const a = new SoftTpm({ storage, seed: "p" });
    await a.start();
    expect(rcOf(a.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(a.executeSync(spp(OWNER, ZERO32, SHA256), 0))).toBe(0);
    expect(rcOf(a.executeSync(spp(ENDORSEMENT, new Array(20).fill(0x22), SHA1), 0))).toBe(0);
    expect(rcOf(a.executeSync(spp(LOCKOUT, new Array(32).fill(0x33), SHA256), 0))).toBe(0);
    expect(rcOf(a.executeSync(spp(PLATFORM, ZERO32, SHA256), 0))).toBe(0);
    expect(rcOf(a.executeSync(SHUTDOWN_CLEAR, 0))).toBe(0);
    await a.powerOff();
    const b = new SoftTpm({ storage, seed: "q" });
    await b.start();
    expect(rcOf(b.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(authPolicies(b)).toEqual(
      unhex("00000004 40000001 000b" + "00".repeat(32) + "4000000a 000b" + "33".repeat(32) + "4000000b 0004" + "22".repeat(20) + "4000000c 0010"),
    );
    expect(changeAuth(b, OWNER, policySession(b))).toBe(0);
    expect(changeAuth(b, PLATFORM, policySession(b))).toBe(0x12f);
    await b.flush();
  });
});
