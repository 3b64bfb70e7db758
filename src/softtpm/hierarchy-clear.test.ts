/**
 * TPM2_Clear sets shEnable and ehEnable again (TPM 2.0 Part 3 §24.6), measured on swtpm 0.7.1:
 * after TPM2_HierarchyControl disabled the owner and endorsement hierarchies, a Clear by lockout
 * makes their commands work again (tpm2-tools' abrmd_policycphash script relies on it).
 */
import { describe, expect, it } from "vitest";
import { TPM_CC } from "../wire/constants.js";
import { authCmd, rcOf, startedTpm, t2b, u16, u32 } from "./test-helpers.js";

const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const ENDORSEMENT = 0x4000000b;
const PLATFORM = 0x4000000c;

/** TPM2_HierarchyControl(authHandle, enable, state) with an empty password. */
const hierarchyControl = (auth: number, enable: number, state: number): Uint8Array => authCmd(TPM_CC.HierarchyControl, [auth], [[]], [...u32(enable), state]);
/** TPM2_SetPrimaryPolicy(authHandle, an empty policy, TPM_ALG_NULL): a command on the hierarchy itself. */
const setPrimaryPolicy = (auth: number): Uint8Array => authCmd(TPM_CC.SetPrimaryPolicy, [auth], [[]], [...t2b([]), ...u16(0x0010)]);

describe("TPM2_Clear and the hierarchy enables (Part 3 §24.6)", () => {
  it("a disabled owner or endorsement hierarchy answers TPM_RC_HIERARCHY until TPM2_Clear enables it again", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(hierarchyControl(PLATFORM, OWNER, 0), 0))).toBe(0);
    expect(rcOf(t.executeSync(hierarchyControl(PLATFORM, ENDORSEMENT, 0), 0))).toBe(0);
    expect(rcOf(t.executeSync(setPrimaryPolicy(OWNER), 0))).toBe(0x185); // TPM_RC_HIERARCHY + H1
    expect(rcOf(t.executeSync(setPrimaryPolicy(ENDORSEMENT), 0))).toBe(0x185);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.Clear, [LOCKOUT], [[]]), 0))).toBe(0);
    expect(rcOf(t.executeSync(setPrimaryPolicy(OWNER), 0))).toBe(0);
    expect(rcOf(t.executeSync(setPrimaryPolicy(ENDORSEMENT), 0))).toBe(0);
  });
});
