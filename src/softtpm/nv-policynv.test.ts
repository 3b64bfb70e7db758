import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { TPM_CC } from "../wire/constants.js";
import { authCmd, cmd, hex, nvPublic, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

/**
 * TPM2_PolicyNV (Part 3 §23.9) against an NV index: the signed comparisons (TPM_EO_SIGNED_*,
 * Part 2 §6.8) as libtpms makes them, which tpm2-tools' abrmd_policynv relies on. Against SoftTpm,
 * or with TPMKIT_SWTPM_PORT set against a running swtpm through tpm2-tools' tpm2_send:
 * `TPMKIT_SWTPM_PORT=2321 npx vitest run src/softtpm/nv-policynv.test.ts`.
 */
interface Tpm {
  executeSync(cmd: Uint8Array, locality: number): Uint8Array;
}
const SWTPM = process.env["TPMKIT_SWTPM_PORT"];
const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const I = 0x01500001;
const OWNERWRITE = 0x2, OWNERREAD = 0x20000;
const SIGNED_GT = 0x2, SIGNED_LT = 0x4, SIGNED_GE = 0x6, SIGNED_LE = 0x8;

function fresh(): Tpm {
  if (!SWTPM) return startedTpm();
  const t: Tpm = { executeSync: (c) => new Uint8Array(execFileSync("tpm2_send", ["-T", `swtpm:port=${SWTPM}`], { input: c })) };
  t.executeSync(authCmd(TPM_CC.NV_UndefineSpace, [OWNER, I], [[]]), 0);
  const r = t.executeSync(cmd(0x8001, 0x17a, [...u32(1), ...u32(0x03000000), ...u32(20)]), 0);
  for (let i = 0, n = u32At(r, 15); i < n; i++) t.executeSync(cmd(0x8001, 0x165, u32(u32At(r, 19 + 4 * i))), 0);
  return t;
}

describe("TPM2_PolicyNV signed comparisons (swtpm 0.7.1, measured)", () => {
  it("a positive value is above a negative one; two negative ones compare reversed, as libtpms does", () => {
    const t = fresh();
    const ok = (r: Uint8Array) => expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
    ok(t.executeSync(authCmd(TPM_CC.NV_DefineSpace, [OWNER], [[]], [...t2b([]), ...nvPublic(I, OWNERWRITE | OWNERREAD, 2)]), 0));
    const s = u32At(t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(0x22)), ...u16(0), 0x01, ...u16(0x10), ...u16(0x0b)]), 0), 10);
    /** PolicyNV of operandB against the index's first bytes: 0 or TPM_RC_POLICY (0x126). */
    const policyNv = (nv: number, b: number[], op: number) => {
      ok(t.executeSync(authCmd(TPM_CC.NV_Write, [OWNER, I], [[]], [...t2b([nv, 0x10]), ...u16(0)]), 0));
      return rcOf(t.executeSync(authCmd(TPM_CC.PolicyNV, [OWNER, I, s], [[]], [...t2b(b), ...u16(0), ...u16(op)]), 0));
    };
    // [NV byte, operandB, operation, response code]
    const cases: [number, number[], number, number][] = [
      [0x81, [0xfe], SIGNED_GT, 0], // -127 > -2 for libtpms (two's complement says no)
      [0x81, [0xfe], SIGNED_LT, 0x126],
      [0x81, [0x80], SIGNED_LT, 0],
      [0x81, [0x80], SIGNED_GT, 0x126],
      [0xff, [0x80], SIGNED_GT, 0x126],
      [0xff, [0x80], SIGNED_LT, 0],
      [0x80, [0xff], SIGNED_GE, 0],
      [0x81, [0x81], SIGNED_GE, 0],
      [0x81, [0x81], SIGNED_LE, 0],
      [0x01, [0x81], SIGNED_GT, 0], // different signs: the positive one is above
      [0x81, [0x01], SIGNED_LT, 0],
      [0x7f, [0x01], SIGNED_GT, 0],
      [0x81, [0x81, 0x20], SIGNED_GT, 0], // 0x8110 against 0x8120
      [0x81, [0x81, 0x00], SIGNED_GT, 0x126],
      [0x81, [0x80, 0x10], SIGNED_LT, 0],
    ];
    expect(cases.map(([nv, b, op]) => policyNv(nv, b, op))).toEqual(cases.map((c) => c[3]));
    ok(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(s)), 0));
    ok(t.executeSync(authCmd(TPM_CC.NV_UndefineSpace, [OWNER, I], [[]]), 0));
  });
});
