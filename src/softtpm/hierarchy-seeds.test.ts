/**
 * TPM2_ChangePPS and TPM2_ChangeEPS (TPM 2.0 Part 3 §24.10, §24.11): a new primary seed, the
 * hierarchy's objects flushed (loaded and persistent), platformPolicy / endorsementAuth,
 * endorsementPolicy emptied and ehEnable set. Codes measured against swtpm 0.7.1 with the same
 * command bytes: another handle than TPM_RH_PLATFORM is TPM_RC_VALUE + H1 (0x184), a trailing byte
 * TPM_RC_SIZE (0x95), a flushed transient handle TPM_RC_REFERENCE_H0 (0x910); ChangeEPS clears
 * endorsementAuthSet and sets ehEnable again.
 */
import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../core/storage.js";
import { TPM_CAP, TPM_CC, TPM_PT } from "../wire/constants.js";
import { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, STARTUP_CLEAR, authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const ENDORSEMENT = 0x4000000b;
const PLATFORM = 0x4000000c;
const PERSISTENT = 0x81010001;

/** A sealed-data template: its unique field comes from the hierarchy's seed. */
const TEMPLATE = [...u16(0x0008), ...u16(0x000b), ...u32(0x00000052), ...u16(0), ...u16(0x0010), ...u16(0)];

/** CreatePrimary in hierarchy `h`: the new handle and outPublic (hex). */
function primary(t: SoftTpm, h: number, auth: number[] = []): { handle: number; pub: string } {
  const r = t.executeSync(authCmd(TPM_CC.CreatePrimary, [h], [auth], [...u16(5), ...u16(0), ...u16(1), 0x01, ...t2b(TEMPLATE), ...u16(0), ...u32(0)]), 0);
  expect(rcOf(r)).toBe(0);
  const size = (r[18]! << 8) | r[19]!;
  return { handle: u32At(r, 10), pub: hex(r.subarray(20, 20 + size)) };
}
const flush = (t: SoftTpm, h: number): number => rcOf(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(h)), 0));
const readPublic = (t: SoftTpm, h: number): number => rcOf(t.executeSync(cmd(0x8001, TPM_CC.ReadPublic, u32(h)), 0));
const changePPS = (auth: number[] = [], h = PLATFORM): Uint8Array => authCmd(TPM_CC.ChangePPS, [h], [auth]);
const changeEPS = (auth: number[] = [], h = PLATFORM): Uint8Array => authCmd(TPM_CC.ChangeEPS, [h], [auth]);

function variable(t: SoftTpm, pt: number): number {
  const r = t.executeSync(cmd(0x8001, TPM_CC.GetCapability, [...u32(TPM_CAP.TPM_PROPERTIES), ...u32(pt), ...u32(1)]), 0);
  expect(rcOf(r)).toBe(0);
  return u32At(r, 23);
}

describe("TPM2_ChangePPS", () => {
  it("gives the platform hierarchy new primary objects and flushes its loaded ones; the other hierarchies keep theirs", () => {
    const t = startedTpm();
    const before = primary(t, PLATFORM);
    expect(flush(t, before.handle)).toBe(0);
    const again = primary(t, PLATFORM);
    expect(again.pub).toBe(before.pub);
    const owner = primary(t, OWNER);
    expect(rcOf(t.executeSync(changePPS(), 0))).toBe(0);
    expect(readPublic(t, again.handle)).toBe(0x910);
    expect(readPublic(t, owner.handle)).toBe(0);
    const after = primary(t, PLATFORM);
    expect(after.pub).not.toBe(before.pub);
    expect(primary(t, OWNER).pub).toBe(owner.pub);
  });

  it("empties platformPolicy; refuses other handles (0x184) and a trailing byte (0x95)", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(authCmd(TPM_CC.SetPrimaryPolicy, [PLATFORM], [[]], [...t2b(new Array(32).fill(1)), ...u16(0x000b)]), 0))).toBe(0);
    for (const h of [OWNER, LOCKOUT, ENDORSEMENT]) expect(rcOf(t.executeSync(changePPS([], h), 0))).toBe(0x184);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.ChangePPS, [PLATFORM], [[]], [0]), 0))).toBe(0x95);
    const policies = (): string => hex(t.executeSync(cmd(0x8001, TPM_CC.GetCapability, [...u32(TPM_CAP.AUTH_POLICIES), ...u32(PLATFORM), ...u32(1)]), 0).subarray(19));
    expect(policies()).toBe("4000000c000b" + "01".repeat(32));
    expect(rcOf(t.executeSync(changePPS(), 0))).toBe(0);
    expect(policies()).toBe("4000000c0010");
  });
});

describe("TPM2_ChangeEPS", () => {
  it("new endorsement primaries, loaded and persistent endorsement objects gone, endorsementAuth emptied, ehEnable set", () => {
    const t = startedTpm();
    const e = primary(t, ENDORSEMENT);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.EvictControl, [OWNER, e.handle], [[]], u32(PERSISTENT)), 0))).toBe(0);
    const owner = primary(t, OWNER);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.HierarchyChangeAuth, [ENDORSEMENT], [[]], t2b([7, 7])), 0))).toBe(0);
    expect(variable(t, TPM_PT.PERMANENT) & 2).toBe(2); // endorsementAuthSet
    expect(rcOf(t.executeSync(authCmd(TPM_CC.HierarchyControl, [PLATFORM], [[]], [...u32(ENDORSEMENT), 0]), 0))).toBe(0);
    expect(variable(t, TPM_PT.STARTUP_CLEAR) & 4).toBe(0); // ehEnable clear
    expect(rcOf(t.executeSync(changeEPS(), 0))).toBe(0);
    expect(variable(t, TPM_PT.PERMANENT) & 2).toBe(0);
    expect(variable(t, TPM_PT.STARTUP_CLEAR) & 4).toBe(4);
    expect(readPublic(t, PERSISTENT)).toBe(0x18b);
    expect(readPublic(t, owner.handle)).toBe(0);
    expect(primary(t, ENDORSEMENT).pub).not.toBe(e.pub);
    expect(rcOf(t.executeSync(changeEPS([], OWNER), 0))).toBe(0x184);
  });

  it("the new seed is saved: the same endorsement primary after a restart from storage", async () => {
    const storage = new MemoryStorage();
    const a = new SoftTpm({ storage, seed: "s" });
    await a.start();
    expect(rcOf(a.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    const old = primary(a, ENDORSEMENT).pub;
    expect(rcOf(a.executeSync(changeEPS(), 0))).toBe(0);
    const fresh = primary(a, ENDORSEMENT).pub;
    expect(fresh).not.toBe(old);
    expect(rcOf(a.executeSync(SHUTDOWN_CLEAR, 0))).toBe(0);
    await a.powerOff();
    const b = new SoftTpm({ storage, seed: "t" });
    await b.start();
    expect(rcOf(b.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(primary(b, ENDORSEMENT).pub).toBe(fresh);
    await b.flush();
  });
});
