/**
 * Dictionary-attack commands (TPM 2.0 Part 3 §25): TPM2_DictionaryAttackParameters and
 * TPM2_DictionaryAttackLockReset, the parameters' effect on DA protection (Part 1 §19.8.6), their
 * report in TPM2_GetCapability and their persistence. Codes measured against swtpm 0.7.1 with the
 * same command bytes: a handle other than TPM_RH_LOCKOUT is TPM_RC_VALUE + H1 (0x184), a missing
 * third parameter TPM_RC_INSUFFICIENT + P3 (0x3da), a trailing byte TPM_RC_SIZE (0x95); maxTries 0
 * is lockout at once with LOCKOUT_COUNTER 0; recoveryTime 0 counts no failure; a lockoutAuth failure
 * with lockoutRecovery 0 blocks lockoutAuth (TPM_RC_LOCKOUT, 0x921).
 */
import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../core/storage.js";
import { TPM_CAP, TPM_CC, TPM_PT } from "../wire/constants.js";
import { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, STARTUP_CLEAR, authCmd, cmd, rcOf, startedTpm, u16, u32, u32At } from "./test-helpers.js";

const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const PLATFORM = 0x4000000c;
const INLOCKOUT = 0x200;

const params = (maxTries: number, recovery: number, lockoutRecovery: number, auth: number[] = [], h = LOCKOUT): Uint8Array =>
  authCmd(TPM_CC.DictionaryAttackParameters, [h], [auth], [...u32(maxTries), ...u32(recovery), ...u32(lockoutRecovery)]);
const lockReset = (auth: number[] = [], h = LOCKOUT): Uint8Array => authCmd(TPM_CC.DictionaryAttackLockReset, [h], [auth]);

/** TPM_PT_PERMANENT, LOCKOUT_COUNTER, MAX_AUTH_FAIL, LOCKOUT_INTERVAL, LOCKOUT_RECOVERY. */
function daProperties(t: SoftTpm): { inLockout: boolean; counter: number; maxTries: number; interval: number; recovery: number } {
  const get = (pt: number): number => {
    const r = t.executeSync(cmd(0x8001, TPM_CC.GetCapability, [...u32(TPM_CAP.TPM_PROPERTIES), ...u32(pt), ...u32(1)]), 0);
    expect(rcOf(r)).toBe(0);
    expect(u32At(r, 19)).toBe(pt);
    return u32At(r, 23);
  };
  return {
    inLockout: (get(TPM_PT.PERMANENT) & INLOCKOUT) !== 0,
    counter: get(TPM_PT.LOCKOUT_COUNTER),
    maxTries: get(TPM_PT.MAX_AUTH_FAIL),
    interval: get(TPM_PT.LOCKOUT_INTERVAL),
    recovery: get(TPM_PT.LOCKOUT_RECOVERY),
  };
}

/** A DA-protected sealed-data primary object (userWithAuth, no noDA) with authValue 1 2; its handle. */
function daProtectedObject(t: SoftTpm): number {
  const tpl = [...u16(0x0008), ...u16(0x000b), ...u32(0x00000052), ...u16(0), ...u16(0x0010), ...u16(0)];
  const sens = [...u16(2), 1, 2, ...u16(1), 9];
  const r = t.executeSync(authCmd(TPM_CC.CreatePrimary, [OWNER], [[]], [...u16(sens.length), ...sens, ...u16(tpl.length), ...tpl, ...u16(0), ...u32(0)]), 0);
  expect(rcOf(r)).toBe(0);
  return u32At(r, 10);
}
const unseal = (h: number, auth: number[]): Uint8Array => authCmd(TPM_CC.Unseal, [h], [auth]);

describe("TPM2_DictionaryAttackParameters", () => {
  it("sets maxTries, recoveryTime and lockoutRecovery, reported as TPM_PT_MAX_AUTH_FAIL, _LOCKOUT_INTERVAL, _LOCKOUT_RECOVERY", () => {
    const t = startedTpm();
    expect(daProperties(t)).toEqual({ inLockout: false, counter: 0, maxTries: 3, interval: 1000, recovery: 1000 });
    expect(rcOf(t.executeSync(params(5, 6, 7), 0))).toBe(0);
    expect(daProperties(t)).toEqual({ inLockout: false, counter: 0, maxTries: 5, interval: 6, recovery: 7 });
  });

  it("refuses other handles (0x184), a missing parameter (0x3da), a trailing byte (0x95), and changes nothing then", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(params(5, 6, 7, [], OWNER), 0))).toBe(0x184);
    expect(rcOf(t.executeSync(params(5, 6, 7, [], PLATFORM), 0))).toBe(0x184);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.DictionaryAttackParameters, [LOCKOUT], [[]], [...u32(5), ...u32(6)]), 0))).toBe(0x3da);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.DictionaryAttackParameters, [LOCKOUT], [[]], [...u32(5), ...u32(6), ...u32(7), 0]), 0))).toBe(0x95);
    expect(rcOf(t.executeSync(lockReset([], OWNER), 0))).toBe(0x184);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.DictionaryAttackLockReset, [LOCKOUT], [[]], [0]), 0))).toBe(0x95);
    expect(daProperties(t)).toEqual({ inLockout: false, counter: 0, maxTries: 3, interval: 1000, recovery: 1000 });
  });

  it("maxTries 0 is lockout at once with LOCKOUT_COUNTER 0 (a DA-protected object answers TPM_RC_LOCKOUT)", () => {
    const t = startedTpm();
    const obj = daProtectedObject(t);
    expect(rcOf(t.executeSync(params(0, 6, 7), 0))).toBe(0);
    expect(daProperties(t)).toMatchObject({ inLockout: true, counter: 0, maxTries: 0 });
    expect(rcOf(t.executeSync(unseal(obj, [1, 2]), 0))).toBe(0x921);
    expect(rcOf(t.executeSync(params(1, 6, 7), 0))).toBe(0);
    expect(rcOf(t.executeSync(unseal(obj, [1, 2]), 0))).toBe(0);
  });

  it("counts failures against the new maxTries; recoveryTime 0 counts none", () => {
    const t = startedTpm();
    const obj = daProtectedObject(t);
    expect(rcOf(t.executeSync(params(2, 100, 100), 0))).toBe(0);
    expect(rcOf(t.executeSync(unseal(obj, [7]), 0))).toBe(0x98e);
    expect(daProperties(t)).toMatchObject({ inLockout: false, counter: 1 });
    expect(rcOf(t.executeSync(unseal(obj, [7]), 0))).toBe(0x98e);
    expect(daProperties(t)).toMatchObject({ inLockout: true, counter: 2 });
    expect(rcOf(t.executeSync(unseal(obj, [1, 2]), 0))).toBe(0x921);
    // TPM2_DictionaryAttackLockReset ends it
    expect(rcOf(t.executeSync(lockReset(), 0))).toBe(0);
    expect(daProperties(t)).toMatchObject({ inLockout: false, counter: 0 });
    expect(rcOf(t.executeSync(unseal(obj, [1, 2]), 0))).toBe(0);
    // recoveryTime 0: DA protection off, a failure is still TPM_RC_AUTH_FAIL but not counted
    expect(rcOf(t.executeSync(params(2, 0, 100), 0))).toBe(0);
    for (let i = 0; i < 3; i++) expect(rcOf(t.executeSync(unseal(obj, [7]), 0))).toBe(0x98e);
    expect(daProperties(t)).toMatchObject({ inLockout: false, counter: 0 });
  });

  it("lockoutRecovery 0: a lockoutAuth failure blocks lockoutAuth until the TPM is powered again", async () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(params(3, 1000, 0), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.HierarchyChangeAuth, [LOCKOUT], [[]], [...u16(1), 5]), 0))).toBe(0);
    expect(rcOf(t.executeSync(lockReset([4]), 0))).toBe(0x98e);
    expect(rcOf(t.executeSync(lockReset([5]), 0))).toBe(0x921);
    expect(rcOf(t.executeSync(SHUTDOWN_CLEAR, 0))).toBe(0);
    await t.powerOff();
    await t.powerOn();
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(t.executeSync(lockReset([5]), 0))).toBe(0);
  });

  it("the parameters are saved with the state", async () => {
    const storage = new MemoryStorage();
    const a = new SoftTpm({ storage, seed: "d" });
    await a.start();
    expect(rcOf(a.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(a.executeSync(params(5, 6, 7), 0))).toBe(0);
    await a.powerOff();
    const b = new SoftTpm({ storage, seed: "e" });
    await b.start();
    expect(rcOf(b.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(daProperties(b)).toMatchObject({ maxTries: 5, interval: 6, recovery: 7 });
    await b.flush();
  });
});
