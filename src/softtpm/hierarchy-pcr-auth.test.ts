/**
 * TPM2_PCR_SetAuthValue and TPM2_PCR_SetAuthPolicy (TPM 2.0 Part 3 §22.7, §22.6) for the one PCR
 * authorization / policy group SoftTpm reports (PCRs 20–22, TPM_PT_PCR_AUTH and _POLICY as libtpms
 * 0.9). Every code below was measured against swtpm 0.7.1 with the same command bytes; PCR_Extend
 * of PCR 20 at locality 0 answers TPM_RC_LOCALITY (0x907) once its authorization has passed, so
 * 0x907 there means "authorized".
 */
import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../core/storage.js";
import { TPM_CC } from "../wire/constants.js";
import { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, STARTUP_CLEAR, authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

const PLATFORM = 0x4000000c;
const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const ZERO32 = new Array<number>(32).fill(0);
const AB = [0x41, 0x42];

const setAuthValue = (pcr: number, value: number[], auth: number[] = []): Uint8Array => authCmd(TPM_CC.PCR_SetAuthValue, [pcr], [auth], t2b(value));
const setAuthPolicy = (digest: number[], alg: number, pcr: number, h = PLATFORM): Uint8Array =>
  authCmd(TPM_CC.PCR_SetAuthPolicy, [h], [[]], [...t2b(digest), ...u16(alg), ...u32(pcr)]);
const extend = (pcr: number, auth: number[]): Uint8Array => authCmd(TPM_CC.PCR_Extend, [pcr], [auth], u32(0));

/** PCR_Extend of `pcr` (no digests) authorized by a fresh unsalted, unbound SHA-256 policy session; the session is flushed. */
function extendWithPolicy(t: SoftTpm, pcr: number): number {
  const r = t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(0x40000007), ...u32(0x40000007), ...t2b(new Array(16).fill(1)), ...u16(0), 0x01, ...u16(0x0010), ...u16(0x000b)]), 0);
  expect(rcOf(r)).toBe(0);
  const s = u32At(r, 10);
  const area = [...u32(s), ...t2b(new Array(16).fill(2)), 0x01, ...u16(0)];
  const rc = rcOf(t.executeSync(cmd(0x8002, TPM_CC.PCR_Extend, [...u32(pcr), ...u32(area.length), ...area, ...u32(0)]), 0));
  expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(s)), 0))).toBe(0);
  return rc;
}

describe("TPM2_PCR_SetAuthValue", () => {
  it("sets the group's authValue (trailing zeros removed), used by every PCR of the group", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(extend(20, []), 0))).toBe(0x907);
    expect(rcOf(t.executeSync(setAuthValue(20, [...AB, 0]), 0))).toBe(0);
    expect(rcOf(t.executeSync(extend(20, []), 0))).toBe(0x9a2);
    expect(rcOf(t.executeSync(extend(20, AB), 0))).toBe(0x907);
    expect(rcOf(t.executeSync(extend(21, AB), 0))).toBe(0x907);
    // PCR 0 keeps its empty authValue
    expect(rcOf(t.executeSync(extend(0, []), 0))).toBe(0);
    // the current authValue authorizes a change; 65 bytes is TPM_RC_SIZE + P1
    expect(rcOf(t.executeSync(setAuthValue(20, new Array(65).fill(0x41), AB), 0))).toBe(0x1d5);
    expect(rcOf(t.executeSync(setAuthValue(22, [], AB), 0))).toBe(0);
    expect(rcOf(t.executeSync(extend(20, []), 0))).toBe(0x907);
  });

  it("refuses a PCR outside the group with TPM_RC_VALUE (0x84) and a handle past PCR 23 with TPM_RC_VALUE + H1", () => {
    const t = startedTpm();
    for (const pcr of [0, 16, 23]) expect(rcOf(t.executeSync(setAuthValue(pcr, AB), 0)), `PCR ${pcr}`).toBe(0x84);
    expect(rcOf(t.executeSync(setAuthValue(24, AB), 0))).toBe(0x184);
  });

  it("is emptied by Startup(CLEAR) and TPM2_Clear", async () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(setAuthValue(20, AB), 0))).toBe(0);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.Clear, [LOCKOUT], [[]]), 0))).toBe(0);
    expect(rcOf(t.executeSync(extend(20, []), 0))).toBe(0x907);
    expect(rcOf(t.executeSync(setAuthValue(20, AB), 0))).toBe(0);
    expect(rcOf(t.executeSync(SHUTDOWN_CLEAR, 0))).toBe(0);
    await t.powerOff();
    await t.powerOn();
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(t.executeSync(extend(20, []), 0))).toBe(0x907);
  });
});

describe("TPM2_PCR_SetAuthPolicy", () => {
  it("sets the group's policy: a matching policy session authorizes PCRs 20–22; outside the group TPM_RC_AUTH_UNAVAILABLE", () => {
    const t = startedTpm();
    expect(extendWithPolicy(t, 20)).toBe(0x99d); // the Empty Buffer policy: no digest matches
    expect(rcOf(t.executeSync(setAuthPolicy(ZERO32, 0x000b, 20), 0))).toBe(0);
    expect(extendWithPolicy(t, 20)).toBe(0x907);
    expect(extendWithPolicy(t, 22)).toBe(0x907);
    expect(extendWithPolicy(t, 0)).toBe(0x12f);
    // TPM_ALG_NULL with an empty digest empties it again
    expect(rcOf(t.executeSync(setAuthPolicy([], 0x0010, 21), 0))).toBe(0);
    expect(extendWithPolicy(t, 20)).toBe(0x99d);
  });

  it("refuses a digest of the wrong size (0x1d5), a PCR outside the group or past 23 (0x3c4), another handle (0x184)", () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(setAuthPolicy(new Array(20).fill(0), 0x000b, 0), 0))).toBe(0x1d5);
    expect(rcOf(t.executeSync(setAuthPolicy(ZERO32, 0x000b, 0), 0))).toBe(0x3c4);
    expect(rcOf(t.executeSync(setAuthPolicy(ZERO32, 0x000b, 16), 0))).toBe(0x3c4);
    expect(rcOf(t.executeSync(setAuthPolicy(ZERO32, 0x000b, 24), 0))).toBe(0x3c4);
    expect(rcOf(t.executeSync(setAuthPolicy(ZERO32, 0x000b, 20, OWNER), 0))).toBe(0x184);
    expect(extendWithPolicy(t, 20)).toBe(0x99d);
  });

  it("is persistent: kept by TPM2_Clear and a restart from storage, emptied by TPM2_ChangePPS", async () => {
    const storage = new MemoryStorage();
    const a = new SoftTpm({ storage, seed: "x" });
    await a.start();
    expect(rcOf(a.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(a.executeSync(setAuthPolicy(ZERO32, 0x000b, 20), 0))).toBe(0);
    expect(rcOf(a.executeSync(authCmd(TPM_CC.Clear, [LOCKOUT], [[]]), 0))).toBe(0);
    expect(extendWithPolicy(a, 20)).toBe(0x907);
    await a.powerOff();
    const b = new SoftTpm({ storage, seed: "y" });
    await b.start();
    expect(rcOf(b.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(extendWithPolicy(b, 20)).toBe(0x907);
    expect(hex(b.executeSync(authCmd(TPM_CC.ChangePPS, [PLATFORM], [[]]), 0))).toBe("80020000001300000000000000000000010000");
    expect(extendWithPolicy(b, 20)).toBe(0x99d);
    await b.flush();
  });
});
