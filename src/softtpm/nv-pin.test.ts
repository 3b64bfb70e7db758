import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { TPM_CC } from "../wire/constants.js";
import { authCmd, cmd, hex, nvPublic, rcOf, startedTpm, t2b, u16, u32 } from "./test-helpers.js";

/**
 * PIN fail and PIN pass indices (TPM_NT_PIN_FAIL, TPM_NT_PIN_PASS, Part 2 §13.4; Part 3 §31.3):
 * defining, writing and reading them. Against SoftTpm, or with TPMKIT_SWTPM_PORT set against a
 * running swtpm through tpm2-tools' tpm2_send (the test index deleted first), so every code can
 * be checked against swtpm 0.7.1: `TPMKIT_SWTPM_PORT=2321 npx vitest run src/softtpm/nv-pin.test.ts`.
 */
interface Tpm {
  executeSync(cmd: Uint8Array, locality: number): Uint8Array;
}
const SWTPM = process.env["TPMKIT_SWTPM_PORT"];

const OWNER = 0x40000001;
const I = 0x01500000;
// TPMA_NV bits (Part 2 §13.4)
const OWNERWRITE = 0x2, AUTHWRITE = 0x4, WRITEALL = 0x1000, WRITEDEFINE = 0x2000, WRITE_STCLEAR = 0x4000, GLOBALLOCK = 0x8000;
const OWNERREAD = 0x20000, AUTHREAD = 0x40000, NO_DA = 0x02000000, CLEAR_STCLEAR = 0x08000000, PLATFORMCREATE = 0x40000000;
const PIN_FAIL = 0x80, PIN_PASS = 0x90;
const OWNER_RW = OWNERWRITE | OWNERREAD;

const define = (t: Tpm, attrs: number, size = 8) => rcOf(t.executeSync(authCmd(TPM_CC.NV_DefineSpace, [OWNER], [[]], [...t2b([]), ...nvPublic(I, attrs >>> 0, size)]), 0));
const undefine = (t: Tpm) => rcOf(t.executeSync(authCmd(TPM_CC.NV_UndefineSpace, [OWNER, I], [[]]), 0));
const write = (t: Tpm, data: string, off = 0) => rcOf(t.executeSync(authCmd(TPM_CC.NV_Write, [OWNER, I], [[]], [...t2b(unhex(data)), ...u16(off)]), 0));
const read = (t: Tpm, size = 8, off = 0) => t.executeSync(authCmd(TPM_CC.NV_Read, [OWNER, I], [[]], [...u16(size), ...u16(off)]), 0);
const readPublic = (t: Tpm) => hex(t.executeSync(cmd(0x8001, TPM_CC.NV_ReadPublic, u32(I)), 0));
const unhex = (h: string) => Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
/** The data of a successful NV_Read response (paramSize, then the TPM2B). */
const dataOf = (r: Uint8Array) => {
  expect(rcOf(r)).toBe(0);
  return hex(r.subarray(16, 16 + ((r[14]! << 8) | r[15]!)));
};

function fresh(): Tpm {
  if (!SWTPM) return startedTpm();
  const t: Tpm = { executeSync: (c) => new Uint8Array(execFileSync("tpm2_send", ["-T", `swtpm:port=${SWTPM}`], { input: c })) };
  undefine(t);
  return t;
}

describe("PIN indices: NV_DefineSpace (Part 3 §31.3)", () => {
  it("takes 8 bytes (TPM_RC_SIZE + P2 first), no AUTHWRITE / GLOBALLOCK / WRITEDEFINE, and NO_DA for a PIN fail index", () => {
    const t = fresh();
    const tryDefine = (attrs: number, size = 8) => {
      const rc = define(t, attrs, size);
      if (rc === 0) expect(undefine(t)).toBe(0);
      return rc;
    };
    expect(tryDefine(PIN_FAIL | OWNER_RW | NO_DA)).toBe(0);
    expect(tryDefine(PIN_PASS | OWNER_RW)).toBe(0);
    expect(tryDefine(PIN_PASS | OWNER_RW, 4)).toBe(0x2d5);
    expect(tryDefine(PIN_FAIL | OWNER_RW | NO_DA, 16)).toBe(0x2d5);
    expect(tryDefine(PIN_FAIL | OWNER_RW, 4)).toBe(0x2d5); // the size before the attributes
    expect(tryDefine(PIN_FAIL | OWNER_RW)).toBe(0x2c2);
    expect(tryDefine(PIN_PASS | AUTHWRITE | OWNERREAD)).toBe(0x2c2);
    expect(tryDefine(PIN_PASS | OWNER_RW | GLOBALLOCK)).toBe(0x2c2);
    expect(tryDefine(PIN_PASS | OWNER_RW | WRITEDEFINE)).toBe(0x2c2);
    expect(tryDefine(PIN_PASS | OWNER_RW | PLATFORMCREATE | AUTHWRITE)).toBe(0x2c2); // before the PLATFORMCREATE check
    expect(tryDefine(PIN_PASS | OWNERWRITE | AUTHREAD)).toBe(0);
    for (const extra of [WRITEALL, CLEAR_STCLEAR, WRITE_STCLEAR]) expect(tryDefine(PIN_PASS | OWNER_RW | extra)).toBe(0);
    expect(tryDefine(0xa0 | OWNER_RW)).toBe(0x2c2); // TPM_NT 0xA: not a type
  });
});

describe("PIN indices: NV_Write and NV_Read", () => {
  it("a PIN fail index is written and read as 8 bytes, whole or in parts (swtpm bytes)", () => {
    const t = fresh();
    expect(define(t, PIN_FAIL | OWNER_RW | NO_DA)).toBe(0);
    expect(readPublic(t)).toBe("80010000003e00000000000e01500000000b02020082000000080022000b43d4715c7ff2c102f98a43baa1d210da0d0ad31866721a621261ff6785654f37");
    expect(rcOf(read(t))).toBe(0x14a); // TPM_RC_NV_UNINITIALIZED
    expect(write(t, "000004d20000162e")).toBe(0);
    expect(readPublic(t)).toBe("80010000003e00000000000e01500000000b22020082000000080022000bc0b3af7558263a0fe33b7cda4959ab09ee948ef331f09e2c1a1653d8498edd88");
    expect(dataOf(read(t))).toBe("000004d20000162e");
    expect(write(t, "00000001")).toBe(0);
    expect(write(t, "00000001", 4)).toBe(0);
    expect(dataOf(read(t))).toBe("0000000100000001");
    expect(dataOf(read(t, 4, 2))).toBe("00010000");
    expect(write(t, "010203040506070809")).toBe(0x146); // TPM_RC_NV_RANGE
    // not a counter, bits or extend index: TPM_RC_ATTRIBUTES + H2
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_Increment, [OWNER, I], [[]]), 0))).toBe(0x282);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_SetBits, [OWNER, I], [[]], [...u32(0), ...u32(1)]), 0))).toBe(0x282);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_Extend, [OWNER, I], [[]], t2b([1])), 0))).toBe(0x282);
    expect(undefine(t)).toBe(0);
  });

  it("the unwritten bytes of a PIN pass index read as 0xFF", () => {
    const t = fresh();
    expect(define(t, PIN_PASS | OWNER_RW)).toBe(0);
    expect(write(t, "00000001")).toBe(0);
    expect(dataOf(read(t))).toBe("00000001ffffffff");
    expect(readPublic(t)).toBe("80010000003e00000000000e01500000000b20020092000000080022000b088cb5f783d7c24cf8e293cb08b40942a30fe5d8d9c1f87449a6576d477b2eab");
    expect(undefine(t)).toBe(0);
  });
});

describe("PIN indices: authorization with the index's authValue (swtpm 0.7.1, measured)", () => {
  const AB = [0x61, 0x62];
  /** NV_Read authorized by the index itself with password `pw`. */
  const readAs = (t: Tpm, pw: number[], size = 8) => rcOf(t.executeSync(authCmd(TPM_CC.NV_Read, [I, I], [pw], [...u16(size), ...u16(0)]), 0));
  const defineWithAuth = (t: Tpm, attrs: number) => rcOf(t.executeSync(authCmd(TPM_CC.NV_DefineSpace, [OWNER], [[]], [...t2b(AB), ...nvPublic(I, attrs >>> 0, 8)]), 0));

  it("a PIN pass index counts each success; from pinLimit on its authValue is TPM_RC_AUTH_UNAVAILABLE", () => {
    const t = fresh();
    expect(defineWithAuth(t, PIN_PASS | OWNER_RW | AUTHREAD | NO_DA)).toBe(0);
    expect(readAs(t, AB)).toBe(0x12f); // unwritten: no pinCount, no pinLimit
    expect(write(t, "0000000000000002")).toBe(0);
    expect(readAs(t, AB)).toBe(0);
    expect(dataOf(read(t))).toBe("0000000100000002"); // the owner's authorization does not count
    expect(readAs(t, [0x7a])).toBe(0x9a2); // a failure does not count (TPM_RC_BAD_AUTH + S1, NO_DA)
    expect(readAs(t, AB)).toBe(0);
    expect(dataOf(read(t))).toBe("0000000200000002");
    expect(readAs(t, AB)).toBe(0x12f);
    expect(readAs(t, [0x7a])).toBe(0x12f); // before the value is compared
    expect(write(t, "0000000500000003")).toBe(0);
    expect(readAs(t, AB)).toBe(0x12f);
    expect(write(t, "0000000000000003")).toBe(0);
    expect(readAs(t, AB, 9)).toBe(0x146); // the command fails (TPM_RC_NV_RANGE), the success still counts
    expect(dataOf(read(t))).toBe("0000000100000003");
    expect(undefine(t)).toBe(0);
  });

  it("a PIN fail index counts each failure and starts again from 0 on a success", () => {
    const t = fresh();
    expect(defineWithAuth(t, PIN_FAIL | OWNER_RW | AUTHREAD | NO_DA)).toBe(0);
    expect(readAs(t, AB)).toBe(0x12f);
    expect(write(t, "0000000000000001")).toBe(0);
    expect(readAs(t, [0x7a])).toBe(0x9a2);
    expect(dataOf(read(t))).toBe("0000000100000001");
    expect(readAs(t, AB)).toBe(0x12f);
    expect(readAs(t, [0x7a])).toBe(0x12f);
    expect(write(t, "0000000000000003")).toBe(0);
    expect(readAs(t, [0x7a])).toBe(0x9a2);
    expect(readAs(t, [0x7a])).toBe(0x9a2);
    expect(dataOf(read(t))).toBe("0000000200000003");
    expect(readAs(t, AB, 9)).toBe(0x146);
    expect(dataOf(read(t))).toBe("0000000000000003");
    expect(undefine(t)).toBe(0);
  });
});
