/**
 * TPM2_PCR_Allocate (TPM 2.0 Part 3 §22.5): validation, the answer (allocationSuccess, maxPCR,
 * sizeNeeded, sizeAvailable), the pending allocation applied at the next TPM Reset and kept in
 * the state. Every response below was measured against swtpm 0.7.1 with the same command bytes
 * (four banks SHA-1/256/384/512 of 24 PCRs: sizeAvailable 0xf60).
 */
import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../core/storage.js";
import { TPM_CAP, TPM_CC } from "../wire/constants.js";
import { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, SHUTDOWN_STATE, STARTUP_CLEAR, authCmd, cmd, hex, rcOf, startedTpm, u32, unhex } from "./test-helpers.js";

const PLATFORM = 0x4000000c;
const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;

const allocate = (selection: string, h = PLATFORM): Uint8Array => authCmd(TPM_CC.PCR_Allocate, [h], [[]], [...unhex(selection)]);
const ok = (sizeNeeded: string): string => `800200000020000000000000000d0100000018${sizeNeeded}00000f600000010000`;
const getPcrs = (t: SoftTpm): string => hex(t.executeSync(cmd(0x8001, TPM_CC.GetCapability, [...u32(TPM_CAP.PCRS), ...u32(0), ...u32(16)]), 0));
const ALL = "80010000002b00000000000000000500000004 000403ffffff 000b03ffffff 000c03ffffff 000d03ffffff".replace(/ /g, "");

async function powerCycle(t: SoftTpm): Promise<void> {
  expect(rcOf(t.executeSync(SHUTDOWN_CLEAR, 0))).toBe(0);
  await t.powerOff();
  await t.powerOn();
  expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
}

describe("TPM2_PCR_Allocate", () => {
  it("answers allocationSuccess YES, maxPCR 24, sizeNeeded of the new allocation and sizeAvailable 0xf60", () => {
    const t = startedTpm();
    expect(hex(t.executeSync(allocate("00000002 0004 03 ffffff 000b 03 ffffff"), 0))).toBe(ok("00000f60"));
    expect(hex(t.executeSync(allocate("00000001 0004 03 000000"), 0))).toBe(ok("00000d80"));
    expect(hex(t.executeSync(allocate("00000001 0004 03 ff0000"), 0))).toBe(ok("00000e20"));
    expect(hex(t.executeSync(allocate("00000001 000b 03 00ffff"), 0))).toBe(ok("00000e60"));
    // an empty list keeps the active allocation; a bank listed twice: the last one counts
    expect(hex(t.executeSync(allocate("00000000"), 0))).toBe(ok("00000f60"));
    expect(hex(t.executeSync(allocate("00000002 0004 03 ffffff 0004 03 000000"), 0))).toBe(ok("00000d80"));
    expect(hex(t.executeSync(allocate("00000002 0004 03 000000 0004 03 ffffff"), 0))).toBe(ok("00000f60"));
  });

  it("refuses what swtpm refuses, with its codes", () => {
    const t = startedTpm();
    const rc = (sel: string, h = PLATFORM): number => rcOf(t.executeSync(allocate(sel, h), 0));
    expect(rc("00000004 0004 03 000000 000b 03 000000 000c 03 000000 000d 03 000000")).toBe(0x127); // TPM_RC_PCR: no PCR left
    for (const sel of ["00000001 0004 04 ffffffff", "00000001 0004 04 ffffff00", "00000001 0004 02 ffff", "00000001 0004 01 ff", "00000001 0004 00"]) expect(rc(sel), sel).toBe(0x1c4);
    for (const alg of ["0012", "0010", "0001"]) expect(rc(`00000001 ${alg} 03 ffffff`), alg).toBe(0x1c3);
    expect(rc("00000011 0004 03 ffffff")).toBe(0x1d5);
    expect(rc("00000005 0004 03 000000 000b 03 000000 000c 03 000000 000d 03 000000 000d 03 ffffff")).toBe(0x1d5);
    expect(rc("00000001 0004 03 ff")).toBe(0x1da);
    expect(rc("00000001 0004 03 ffffff", OWNER)).toBe(0x184);
    expect(rc("00000001 0004 03 ffffff", LOCKOUT)).toBe(0x184);
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.PCR_Allocate, [...u32(PLATFORM), ...unhex("00000001 0004 03 ffffff")]), 0))).toBe(0x125);
    expect(getPcrs(t)).toBe(ALL);
  });

  it("applies at the next TPM Reset: GetCapability(TPM_CAP_PCRS) and PCR_Read show the new allocation only then", async () => {
    const t = startedTpm();
    expect(rcOf(t.executeSync(allocate("00000002 000c 03 000000 000b 03 fcffff"), 0))).toBe(0);
    expect(getPcrs(t)).toBe(ALL);
    // Shutdown(STATE) is refused while an allocation waits (TPM_RC_TYPE + P1)
    expect(rcOf(t.executeSync(SHUTDOWN_STATE, 0))).toBe(0x1ca);
    await powerCycle(t);
    expect(getPcrs(t)).toBe("80010000002b00000000000000000500000004 000403ffffff 000b03fcffff 000c03000000 000d03ffffff".replace(/ /g, ""));
    // sha384 selected but not allocated: an empty selection out; sha256 PCR 0, 1 no longer allocated either
    const r = t.executeSync(cmd(0x8001, TPM_CC.PCR_Read, [...unhex("00000002 000c 03 ffffff 000b 03 070000")]), 0);
    expect(hex(r.subarray(14))).toBe("00000002000c03000000000b03040000000000010020" + "00".repeat(32));
    expect(rcOf(t.executeSync(SHUTDOWN_STATE, 0))).toBe(0);
    // back to every PCR
    expect(hex(t.executeSync(allocate("00000002 000c 03 ffffff 000b 03 ffffff"), 0))).toBe(ok("00000f60"));
    await powerCycle(t);
    expect(getPcrs(t)).toBe(ALL);
  });

  it("the pending allocation is saved with the state and survives TPM2_Clear, which is no TPM Reset", async () => {
    const storage = new MemoryStorage();
    const a = new SoftTpm({ storage, seed: "a" });
    await a.start();
    expect(rcOf(a.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(rcOf(a.executeSync(allocate("00000001 0004 03 000000"), 0))).toBe(0);
    expect(rcOf(a.executeSync(authCmd(TPM_CC.Clear, [LOCKOUT], [[]]), 0))).toBe(0);
    expect(getPcrs(a)).toBe(ALL);
    await a.powerOff();
    const b = new SoftTpm({ storage, seed: "b" });
    await b.start();
    expect(rcOf(b.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(getPcrs(b)).toBe("80010000002b00000000000000000500000004 000403000000 000b03ffffff 000c03ffffff 000d03ffffff".replace(/ /g, ""));
    await b.flush();
  });
});
