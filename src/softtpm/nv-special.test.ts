import { describe, expect, it } from "vitest";
import { createHash, createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import { TPM_CC } from "../wire/constants.js";
import { SHUTDOWN_CLEAR, STARTUP_CLEAR, authCmd, cmd, hex, nvPublic, pwSession, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

/**
 * TPM2_NV_UndefineSpaceSpecial (Part 3 §31.5), TPM2_NV_GlobalWriteLock (§31.12) and the ADMIN
 * role of an NV index (Part 1 §19.7.2). Against SoftTpm, or with TPMKIT_SWTPM_PORT set against a
 * running swtpm through tpm2-tools' tpm2_send (its sessions flushed and the test indices deleted
 * first), so every code can be checked against swtpm 0.7.1:
 * `TPMKIT_SWTPM_PORT=2321 npx vitest run src/softtpm/nv-special.test.ts`.
 */
interface Tpm {
  executeSync(cmd: Uint8Array, locality: number): Uint8Array;
}
const SWTPM = process.env["TPMKIT_SWTPM_PORT"];

const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const ENDORSEMENT = 0x4000000b;
const PLATFORM = 0x4000000c;
const RH_NULL = 0x40000007;
// TPMA_NV bits (Part 2 §13.4)
const PPWRITE = 0x1, OWNERWRITE = 0x2, AUTHWRITE = 0x4, POLICY_DELETE = 0x400, WRITEDEFINE = 0x2000, GLOBALLOCK = 0x8000;
const PPREAD = 0x10000, OWNERREAD = 0x20000, AUTHREAD = 0x40000, NO_DA = 0x02000000, PLATFORMCREATE = 0x40000000;
const COUNTER = 0x10;
/** A platform index that NV_UndefineSpaceSpecial may delete (as abrmd_nvundefinespecial defines it, DA-exempt). */
const SPECIAL = PPWRITE | PPREAD | AUTHWRITE | AUTHREAD | PLATFORMCREATE | POLICY_DELETE | NO_DA;
const INDICES = [0x01000001, 0x01000002, 0x01000003, 0x01500001, 0x01500002, 0x01500003, 0x01500004, 0x01500005, 0x01500006];
const [I, J, K] = INDICES as [number, number, number];

function fresh(): Tpm {
  if (!SWTPM) return startedTpm();
  const t: Tpm = { executeSync: (c) => new Uint8Array(execFileSync("tpm2_send", ["-T", `swtpm:port=${SWTPM}`], { input: c })) };
  // flush loaded sessions (TPM_CAP_HANDLES of TPM_HT_HMAC_SESSION, _POLICY_SESSION), delete the test indices
  for (const first of [0x02000000, 0x03000000]) {
    const r = t.executeSync(cmd(0x8001, 0x17a, [...u32(1), ...u32(first), ...u32(20)]), 0);
    for (let i = 0, n = u32At(r, 15); i < n; i++) t.executeSync(cmd(0x8001, 0x165, u32(u32At(r, 19 + 4 * i))), 0);
  }
  for (const x of INDICES) {
    if (rcOf(t.executeSync(undefine(x, PLATFORM), 0)) === 0) continue;
    if (rcOf(t.executeSync(undefine(x, OWNER), 0)) === 0) continue;
    const s = startPolicy(t);
    policyCommandCode(t, s.handle);
    t.executeSync(special(x, s.area()), 0);
    t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(s.handle)), 0);
  }
  return t;
}

const sha256 = (...parts: (Uint8Array | number[])[]) => new Uint8Array(createHash("sha256").update(Uint8Array.from(parts.flatMap((p) => [...p]))).digest());
const hmac256 = (key: Uint8Array | number[], ...parts: (Uint8Array | number[])[]) =>
  new Uint8Array(createHmac("sha256", Uint8Array.from(key)).update(Uint8Array.from(parts.flatMap((p) => [...p]))).digest());
const ZERO = new Uint8Array(32);
// policy digests (Part 3 §23.11 PolicyCommandCode, §23.18 PolicyAuthValue)
const CC_DIGEST = sha256(ZERO, u32(TPM_CC.PolicyCommandCode), u32(TPM_CC.NV_UndefineSpaceSpecial));
const AV_DIGEST = sha256(ZERO, u32(TPM_CC.PolicyAuthValue));
const AV_CC_DIGEST = sha256(AV_DIGEST, u32(TPM_CC.PolicyCommandCode), u32(TPM_CC.NV_UndefineSpaceSpecial));

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}
const define = (t: Tpm, idx: number, attrs: number, policy: Uint8Array = new Uint8Array(0), auth: number[] = [], h = attrs & PLATFORMCREATE ? PLATFORM : OWNER) =>
  t.executeSync(authCmd(TPM_CC.NV_DefineSpace, [h], [[]], [...t2b(auth), ...nvPublic(idx, attrs >>> 0, 8, 0x000b, [...policy])]), 0);
const undefine = (idx: number, h: number) => authCmd(TPM_CC.NV_UndefineSpace, [h, idx], [[]]);
const readPublic = (t: Tpm, idx: number) => t.executeSync(cmd(0x8001, TPM_CC.NV_ReadPublic, u32(idx)), 0);
const attrsOf = (t: Tpm, idx: number) => u32At(ok(readPublic(t, idx)), 18);
/** NV_UndefineSpaceSpecial with the nvIndex's session area entry `first` and a password for the platform. */
const special = (idx: number, first: number[], platform = PLATFORM, platformPw: number[] = []) => {
  const area = [...first, ...pwSession(platformPw)];
  return cmd(0x8002, TPM_CC.NV_UndefineSpaceSpecial, [...u32(idx), ...u32(platform), ...u32(area.length), ...area]);
};
const write = (t: Tpm, idx: number, h = OWNER) => t.executeSync(authCmd(TPM_CC.NV_Write, [h, idx], [[]], [...t2b([1, 2]), ...u16(0)]), 0);
const globalWriteLock = (t: Tpm, h = OWNER, pw: number[] = [], extra: number[] = []) => t.executeSync(authCmd(TPM_CC.NV_GlobalWriteLock, [h], [pw], extra), 0);

/** A policy session (unbound, unsalted, SHA-256): its handle, its nonceTPM, and an area entry. */
function startPolicy(t: Tpm, type = 0x01) {
  const r = ok(t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(0x22)), ...u16(0), type, ...u16(0x10), ...u16(0x0b)]), 0));
  const handle = u32At(r, 10);
  const nonceTPM = r.slice(16, 16 + ((r[14]! << 8) | r[15]!));
  // continueSession, an empty HMAC (its key, sessionKey ‖ nothing, is empty)
  return { handle, nonceTPM, area: (hmac: number[] | Uint8Array = [], nonce = new Array(16).fill(0x23)) => [...u32(handle), ...t2b(nonce), 1, ...t2b([...hmac])] };
}
const policyCommandCode = (t: Tpm, s: number, code = TPM_CC.NV_UndefineSpaceSpecial) => ok(t.executeSync(cmd(0x8001, TPM_CC.PolicyCommandCode, [...u32(s), ...u32(code)]), 0));
const policyAuthValue = (t: Tpm, s: number) => ok(t.executeSync(cmd(0x8001, TPM_CC.PolicyAuthValue, u32(s)), 0));
/** PolicyRestart: a command that failed left the session's assertions as they were. */
const policyRestart = (t: Tpm, s: number) => ok(t.executeSync(cmd(0x8001, TPM_CC.PolicyRestart, u32(s)), 0));

describe("TPM2_NV_UndefineSpaceSpecial (Part 3 §31.5)", () => {
  it("deletes a POLICY_DELETE index with a PolicyCommandCode session on it and platformAuth", () => {
    const t = fresh();
    ok(define(t, I, SPECIAL, CC_DIGEST));
    expect(rcOf(t.executeSync(undefine(I, PLATFORM), 0))).toBe(0x282); // NV_UndefineSpace: TPM_RC_ATTRIBUTES + H2
    const s = startPolicy(t);
    policyCommandCode(t, s.handle);
    // the response: no parameters, the policy session (continued, empty HMAC), the password session
    const r = t.executeSync(special(I, s.area()), 0);
    expect(hex(r.subarray(0, 14))).toBe("8002000000280000000000000000");
    expect(hex(r.subarray(32))).toBe("0100000000010000");
    expect(rcOf(readPublic(t, I))).toBe(0x18b);
    ok(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(s.handle)), 0)); // the session stays loaded
  });

  it("the nvIndex takes a policy session only (TPM_RC_AUTH_TYPE); handle, session and platform errors", () => {
    const t = fresh();
    ok(define(t, I, SPECIAL, CC_DIGEST));
    expect(rcOf(t.executeSync(special(I, pwSession()), 0))).toBe(0x124); // a password: TPM_RC_AUTH_TYPE
    const h = ok(t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(0x22)), ...u16(0), 0x00, ...u16(0x10), ...u16(0x0b)]), 0));
    const hmacSession = [...u32(u32At(h, 10)), ...t2b(new Array(16).fill(0x23)), 1, ...t2b([])];
    expect(rcOf(t.executeSync(special(I, hmacSession), 0))).toBe(0x124); // an HMAC session: the same
    const s = startPolicy(t);
    policyCommandCode(t, s.handle);
    expect(rcOf(t.executeSync(special(I, s.area(), OWNER), 0))).toBe(0x284); // @platform is TPMI_RH_PLATFORM: TPM_RC_VALUE + H2
    expect(rcOf(t.executeSync(special(I, s.area(), PLATFORM, [0x78]), 0))).toBe(0xaa2); // platformAuth wrong: TPM_RC_BAD_AUTH + S2
    expect(rcOf(t.executeSync(special(0x01000009, s.area()), 0))).toBe(0x18b); // no such index: TPM_RC_HANDLE + H1
    expect(rcOf(t.executeSync(special(OWNER, s.area()), 0))).toBe(0x184); // not an NV index: TPM_RC_VALUE + H1
    expect(rcOf(t.executeSync(special(0x01000009, s.area(), OWNER), 0))).toBe(0x284); // both handles' types before the index is looked up
    const one = [...s.area()];
    expect(rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_UndefineSpaceSpecial, [...u32(I), ...u32(PLATFORM), ...u32(one.length), ...one]), 0))).toBe(0x125); // TPM_RC_AUTH_MISSING
    const trial = startPolicy(t, 0x03);
    expect(rcOf(t.executeSync(special(I, trial.area()), 0))).toBe(0x982); // a trial session: TPM_RC_ATTRIBUTES + S1
    ok(t.executeSync(special(I, s.area()), 0));
  });

  it("a policy that does not match is TPM_RC_POLICY_FAIL + S1; the ADMIN role needs PolicyCommandCode", () => {
    const t = fresh();
    ok(define(t, I, SPECIAL, CC_DIGEST));
    const s = startPolicy(t);
    policyAuthValue(t, s.handle);
    expect(rcOf(t.executeSync(special(I, s.area()), 0))).toBe(0x99d);
    // an index whose policy is PolicyAuthValue alone: the digest matches, the command code is missing
    ok(define(t, J, SPECIAL, AV_DIGEST));
    const s2 = startPolicy(t);
    policyAuthValue(t, s2.handle);
    expect(rcOf(t.executeSync(special(J, s2.area()), 0))).toBe(0x99d);
    // NV_ChangeAuth (the other ADMIN-role NV command) likewise
    ok(define(t, 0x01500001, OWNERWRITE | OWNERREAD | AUTHWRITE | AUTHREAD | NO_DA, AV_DIGEST));
    const s3 = startPolicy(t);
    policyAuthValue(t, s3.handle);
    const area = s3.area();
    expect(rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_ChangeAuth, [...u32(0x01500001), ...u32(area.length), ...area, ...t2b([0x61])]), 0))).toBe(0x99d);
  });

  it("both authorizations come before the POLICY_DELETE check (TPM_RC_ATTRIBUTES + H1)", () => {
    const t = fresh();
    ok(define(t, I, SPECIAL & ~POLICY_DELETE, CC_DIGEST));
    ok(define(t, 0x01500001, OWNERWRITE | OWNERREAD | NO_DA, CC_DIGEST));
    const s = startPolicy(t);
    policyAuthValue(t, s.handle);
    expect(rcOf(t.executeSync(special(I, s.area()), 0))).toBe(0x99d);
    policyRestart(t, s.handle);
    policyCommandCode(t, s.handle);
    expect(rcOf(t.executeSync(special(I, s.area(), PLATFORM, [0x78]), 0))).toBe(0xaa2);
    expect(rcOf(t.executeSync(special(I, s.area()), 0))).toBe(0x182);
    expect(rcOf(t.executeSync(special(0x01500001, s.area()), 0))).toBe(0x182); // an owner index never has POLICY_DELETE
    ok(t.executeSync(undefine(I, PLATFORM), 0));
  });

  it("with PolicyAuthValue the command HMAC takes the index's authValue, the response HMAC does not (it is gone)", () => {
    const t = fresh();
    const auth = [0x70, 0x77];
    ok(define(t, K, SPECIAL, AV_CC_DIGEST, auth));
    const pub = ok(readPublic(t, K));
    const at = 12 + ((pub[10]! << 8) | pub[11]!);
    const name = pub.slice(at + 2, at + 2 + ((pub[at]! << 8) | pub[at + 1]!));
    const s = startPolicy(t);
    policyAuthValue(t, s.handle);
    policyCommandCode(t, s.handle);
    const nonceCaller = new Array(16).fill(0x33);
    const cpHash = sha256(u32(TPM_CC.NV_UndefineSpaceSpecial), name, u32(PLATFORM));
    expect(rcOf(t.executeSync(special(K, s.area(hmac256([0x70], cpHash, nonceCaller, s.nonceTPM, [1]), nonceCaller)), 0))).toBe(0x9a2); // TPM_RC_BAD_AUTH + S1 (NO_DA)
    policyRestart(t, s.handle);
    policyAuthValue(t, s.handle);
    policyCommandCode(t, s.handle);
    const r = ok(t.executeSync(special(K, s.area(hmac256(auth, cpHash, nonceCaller, s.nonceTPM, [1]), nonceCaller)), 0));
    expect(rcOf(readPublic(t, K))).toBe(0x18b);
    const newNonce = r.subarray(16, 32);
    const rpHash = sha256(u32(0), u32(TPM_CC.NV_UndefineSpaceSpecial));
    expect(hex(r.subarray(33, 35))).toBe("0020");
    expect(hex(r.subarray(35, 67))).toBe(hex(hmac256([], rpHash, newNonce, nonceCaller, [1])));
  });
});

describe("TPM2_NV_GlobalWriteLock (Part 3 §31.12)", () => {
  it("write-locks every index with GLOBALLOCK (not the others, not later ones)", () => {
    const t = fresh();
    const [A, B, C, D, E, F] = INDICES.slice(3) as [number, number, number, number, number, number];
    ok(define(t, A, OWNERWRITE | OWNERREAD | GLOBALLOCK));
    ok(define(t, B, OWNERWRITE | OWNERREAD));
    ok(define(t, C, OWNERWRITE | OWNERREAD | GLOBALLOCK | WRITEDEFINE));
    ok(define(t, D, COUNTER | OWNERWRITE | OWNERREAD | GLOBALLOCK));
    ok(define(t, E, PPWRITE | PPREAD | GLOBALLOCK | PLATFORMCREATE));
    ok(write(t, C));
    expect(rcOf(globalWriteLock(t, ENDORSEMENT))).toBe(0x184); // TPMI_RH_PROVISION: TPM_RC_VALUE + H1
    expect(rcOf(globalWriteLock(t, LOCKOUT))).toBe(0x184);
    expect(rcOf(globalWriteLock(t, OWNER, [0x78]))).toBe(0x9a2); // ownerAuth wrong: TPM_RC_BAD_AUTH + S1
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.NV_GlobalWriteLock, u32(OWNER)), 0))).toBe(0x125); // TPM_RC_AUTH_MISSING
    expect(rcOf(globalWriteLock(t, OWNER, [], [0]))).toBe(0x95); // a parameter too many: TPM_RC_SIZE
    expect(attrsOf(t, A)).toBe(0x00028002);
    ok(globalWriteLock(t));
    expect([A, B, C, D, E].map((x) => attrsOf(t, x).toString(16))).toEqual(["28802", "20002", "2002a802", "28812", "40018801"]);
    expect(rcOf(write(t, A))).toBe(0x148); // TPM_RC_NV_LOCKED
    ok(write(t, B));
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_Increment, [OWNER, D], [[]]), 0))).toBe(0x148);
    ok(t.executeSync(authCmd(TPM_CC.NV_WriteLock, [OWNER, A], [[]]), 0)); // already locked: success
    ok(define(t, F, OWNERWRITE | OWNERREAD | GLOBALLOCK));
    expect(attrsOf(t, F)).toBe(0x00028002);
    ok(globalWriteLock(t));
    ok(globalWriteLock(t, PLATFORM));
    for (const x of [A, B, C, D, F]) ok(t.executeSync(undefine(x, OWNER), 0));
    ok(t.executeSync(undefine(E, PLATFORM), 0));
  });

  it("the lock ends at Startup(CLEAR), but on a written WRITEDEFINE index (swtpm 0.7.1, measured)", async () => {
    const t = startedTpm();
    const [A, , C, D, E] = INDICES.slice(3) as [number, number, number, number, number];
    ok(define(t, A, OWNERWRITE | OWNERREAD | GLOBALLOCK));
    ok(define(t, C, OWNERWRITE | OWNERREAD | GLOBALLOCK | WRITEDEFINE));
    ok(define(t, D, COUNTER | OWNERWRITE | OWNERREAD | GLOBALLOCK));
    ok(define(t, E, PPWRITE | PPREAD | GLOBALLOCK | PLATFORMCREATE));
    ok(write(t, C));
    ok(globalWriteLock(t));
    ok(t.executeSync(SHUTDOWN_CLEAR, 0));
    await t.powerOff();
    await t.start();
    ok(t.executeSync(STARTUP_CLEAR, 0));
    expect([A, C, D, E].map((x) => attrsOf(t, x).toString(16))).toEqual(["28002", "2002a802", "28012", "40018001"]);
    ok(write(t, A));
    expect(rcOf(write(t, C))).toBe(0x148);
  });
});
