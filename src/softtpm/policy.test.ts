import { describe, it, expect } from "vitest";
import { constants, generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { policy, policyAuthorizeAHash, TPM_EO } from "../client/policy.js";
import { TPM_CC } from "../wire/constants.js";
import { SeededRandom, type RandomSource } from "./random.js";
import { SoftTpm } from "./softtpm.js";
import { cfbRoundTrip, saltedSession } from "../../test/support/session-clients.js";
import { STARTUP_CLEAR, authCmd, cmd, hex, nvPublic, pcrExtend, pcrRead, pcrReadDigests, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

const RH_NULL = 0x40000007;
const OWNER = 0x40000001;
const SE_HMAC = 0x00;
const SE_POLICY = 0x01;
const SE_TRIAL = 0x03;
const NV = 0x01500020;
// TPMA_NV: AUTHWRITE | POLICYWRITE | NO_DA | AUTHREAD | POLICYREAD | OWNERREAD... (Part 2 §13.4)
const NV_ATTRS = 0x00000004 | 0x00000008 | 0x02000000 | 0x00040000 | 0x00080000;
const cat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

/** The client side of a policy session (Part 1 §19.7, Part 3 §23), written apart from SoftTpm. */
class Session {
  handle = 0;
  nonceTPM = new Uint8Array(0);
  nonceCaller = new Uint8Array(16).fill(0x22);
  constructor(readonly tpm: SoftTpm) {}
  start(type: number): number {
    const r = this.tpm.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(this.nonceCaller), ...u16(0), type, ...u16(0x10), ...u16(0x0b)]), 0);
    if (rcOf(r) !== 0) return rcOf(r);
    this.handle = u32At(r, 10);
    this.nonceTPM = r.slice(16, 16 + ((r[14]! << 8) | r[15]!));
    return 0;
  }
  /** A policy command on this session (its handle last, as in PolicySecret and PolicyNV). */
  run(cc: number, params: number[] = [], before: number[] = [], auths?: number[][]): Uint8Array {
    const handles = [...before, this.handle].flatMap(u32);
    if (!auths) return this.tpm.executeSync(cmd(0x8001, cc, [...handles, ...params]), 0);
    const area = auths.flat();
    return this.tpm.executeSync(cmd(0x8002, cc, [...handles, ...u32(area.length), ...area, ...params]), 0);
  }
  digest(): string {
    const r = this.run(TPM_CC.PolicyGetDigest);
    expect(rcOf(r)).toBe(0);
    return hex(r.subarray(12, 12 + ((r[10]! << 8) | r[11]!)));
  }
  /**
   * This session in an authorization area for `cc`: the HMAC field is `password` when given,
   * else HMAC(key, cpHash ‖ nonceCaller ‖ nonceTPM ‖ attrs) with an empty HMAC under an empty key.
   */
  auth(cc: number, names: Uint8Array[], params: number[], key: Uint8Array, password?: Uint8Array): number[] {
    this.nonceCaller = this.nonceCaller.map((b) => (b + 1) & 0xff);
    let mac: Uint8Array = new Uint8Array(0);
    if (password) mac = password;
    else if (key.length > 0) mac = hmac(sha256, key, cat(sha256(cat(u32(cc), ...names, params)), this.nonceCaller, this.nonceTPM, [1]));
    return [...u32(this.handle), ...t2b(this.nonceCaller), 1, ...t2b(mac)];
  }
  /** Takes the new nonceTPM from a one-session response and checks its HMAC under `key` (empty: empty HMAC). */
  answer(r: Uint8Array, cc: number, key: Uint8Array): void {
    expect(rcOf(r)).toBe(0);
    const paramSize = u32At(r, 10);
    let p = 14 + paramSize;
    const n = (r[p]! << 8) | r[p + 1]!;
    const nonce = r.slice(p + 2, p + 2 + n);
    p += 2 + n + 1;
    const mac = r.subarray(p + 2, p + 2 + ((r[p]! << 8) | r[p + 1]!));
    const want = key.length === 0 ? new Uint8Array(0) : hmac(sha256, key, cat(sha256(cat(u32(0), u32(cc), r.subarray(14, 14 + paramSize))), nonce, this.nonceCaller, [1]));
    expect(hex(mac)).toBe(hex(want));
    this.nonceTPM = nonce;
  }
}

function defineNv(t: SoftTpm, authPolicy: Uint8Array, auth: number[] = [], index = NV, attrs = NV_ATTRS): void {
  expect(rcOf(t.executeSync(authCmd(0x12a, [OWNER], [[]], [...t2b(auth), ...nvPublic(index, attrs, 8, 0x0b, [...authPolicy])]), 0))).toBe(0);
}

function nvName(t: SoftTpm, index = NV): Uint8Array {
  const r = t.executeSync(cmd(0x8001, TPM_CC.NV_ReadPublic, u32(index)), 0);
  expect(rcOf(r)).toBe(0);
  const pubLen = (r[10]! << 8) | r[11]!;
  const at = 12 + pubLen;
  return r.slice(at + 2, at + 2 + ((r[at]! << 8) | r[at + 1]!));
}

/** An authorization area holding one session's bytes. */
const area = (session: number[]) => [...u32(session.length), ...session];
const writeParams = (data: number[]) => [...t2b(data), ...u16(0)];
const pcrSel16 = [...u32(1), ...u16(0x0b), 3, 0x00, 0x00, 0x01]; // sha256: PCR 16

describe("policy and trial sessions (TPM2_StartAuthSession, Part 3 §11.1)", () => {
  it("starts policy and trial sessions with TPM_HT_POLICY_SESSION handles and a zero policyDigest", () => {
    const t = startedTpm();
    const hs = new Session(t);
    expect(hs.start(SE_HMAC)).toBe(0);
    expect(hs.handle).toBe(0x02000000);
    const ps = new Session(t);
    expect(ps.start(SE_POLICY)).toBe(0);
    expect(ps.handle).toBe(0x03000001); // slots are shared by both kinds
    const tr = new Session(t);
    expect(tr.start(SE_TRIAL)).toBe(0);
    expect(tr.handle).toBe(0x03000002);
    expect(tr.digest()).toBe("00".repeat(32));
    expect(tr.nonceTPM.length).toBe(16); // the nonceCaller's size
  });

  it("refuses a policy command on an HMAC session's slot (TPM_RC_HANDLE) and on an empty slot (TPM_RC_REFERENCE_H0)", () => {
    const t = startedTpm();
    const hs = new Session(t);
    hs.start(SE_HMAC);
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.PolicyGetDigest, u32(0x03000000)), 0))).toBe(0x18b); // TPM_RC_HANDLE + H1
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.PolicyGetDigest, u32(0x03000005)), 0))).toBe(0x910); // TPM_RC_REFERENCE_H0
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.PolicyGetDigest, u32(0x02000000)), 0))).toBe(0x184); // TPMI_SH_POLICY: TPM_RC_VALUE + H1
  });
});

describe("trial-session digests equal the offline calculator (src/client/policy.ts)", () => {
  it("PolicyPCR, PolicyAuthValue, PolicyPassword, PolicyCommandCode", () => {
    const t = startedTpm();
    t.executeSync(pcrExtend(16, [[0x0b, new Array(32).fill(7)]]), 0);
    const pcr16 = pcrReadDigests(t.executeSync(pcrRead([[0x0b, 1 << 16]]), 0))[0]!;
    const s = new Session(t);
    expect(s.start(SE_TRIAL)).toBe(0);
    expect(rcOf(s.run(TPM_CC.PolicyPCR, [...u16(0), ...pcrSel16]))).toBe(0);
    let want = policy("sha256").pcr({ sha256: [16] }, { sha256: { 16: pcr16 } });
    expect(s.digest()).toBe(want.hex);
    expect(rcOf(s.run(TPM_CC.PolicyAuthValue))).toBe(0);
    expect(rcOf(s.run(TPM_CC.PolicyPassword))).toBe(0);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.Unseal)))).toBe(0);
    want = want.authValue().password().commandCode(TPM_CC.Unseal);
    expect(s.digest()).toBe(want.hex);
    // a trial session takes the caller's PCR digest as given
    const s2 = new Session(t);
    s2.start(SE_TRIAL);
    const given = new Array(32).fill(0x5a);
    expect(rcOf(s2.run(TPM_CC.PolicyPCR, [...t2b(given), ...pcrSel16]))).toBe(0);
    expect(s2.digest()).toBe(policy("sha256").pcr({ sha256: [16] }, Uint8Array.from(given)).hex);
  });

  it("PolicySecret (owner, password-authorized), PolicyOR, PolicyNV, PolicyAuthorize", () => {
    const t = startedTpm();
    defineNv(t, new Uint8Array(0), [1, 2]);
    const name = nvName(t);
    const s = new Session(t);
    s.start(SE_TRIAL);
    const ref = [0xab, 0xcd];
    const r = s.run(TPM_CC.PolicySecret, [...u16(0), ...u16(0), ...t2b(ref), ...u32(0)], [OWNER], [[...u32(0x40000009), ...u16(0), 1, ...u16(0)]]);
    expect(rcOf(r)).toBe(0);
    let want = policy("sha256").secret(Uint8Array.from(u32(OWNER)), Uint8Array.from(ref));
    expect(s.digest()).toBe(want.hex);
    const a = new Array(32).fill(1);
    const b = new Array(32).fill(2);
    expect(rcOf(s.run(TPM_CC.PolicyOR, [...u32(2), ...t2b(a), ...t2b(b)]))).toBe(0);
    want = want.or([Uint8Array.from(a), Uint8Array.from(b)]);
    expect(s.digest()).toBe(want.hex);
    const operand = [0, 0, 0, 9];
    const nr = s.run(TPM_CC.PolicyNV, [...t2b(operand), ...u16(4), ...u16(TPM_EO.UNSIGNED_GE)], [NV, NV], [[...u32(0x40000009), ...u16(0), 1, ...t2b([1, 2])]]);
    expect(rcOf(nr)).toBe(0);
    want = want.nv(name, Uint8Array.from(operand), 4, TPM_EO.UNSIGNED_GE);
    expect(s.digest()).toBe(want.hex);
    const keyName = Uint8Array.from([0x00, 0x0b, ...new Array(32).fill(0x33)]);
    const ar = s.run(TPM_CC.PolicyAuthorize, [...t2b(new Array(32).fill(0)), ...t2b(ref), ...t2b(keyName), ...u16(0x8022), ...u32(RH_NULL), ...u16(0)]);
    expect(rcOf(ar)).toBe(0);
    expect(s.digest()).toBe(want.authorize(keyName, Uint8Array.from(ref)).hex);
    expect(rcOf(s.run(TPM_CC.PolicyRestart))).toBe(0);
    expect(s.digest()).toBe("00".repeat(32));
  });
});

describe("policy session checks (Part 3 §23)", () => {
  it("PolicyPCR refuses a PCR digest that is not the current one (TPM_RC_VALUE + P1)", () => {
    const t = startedTpm();
    const s = new Session(t);
    s.start(SE_POLICY);
    expect(rcOf(s.run(TPM_CC.PolicyPCR, [...t2b(new Array(32).fill(1)), ...pcrSel16]))).toBe(0x1c4);
    expect(rcOf(s.run(TPM_CC.PolicyPCR, [...u16(0), ...u32(1), ...u16(0x0b), 4, 0, 0, 1, 0]))).toBe(0x2c4); // sizeofSelect 4: TPM_RC_VALUE + P2
    expect(s.digest()).toBe("00".repeat(32));
  });

  it("PolicyOR needs the current digest among the branches (TPM_RC_VALUE + P1) and two of them (TPM_RC_SIZE + P1)", () => {
    const t = startedTpm();
    const s = new Session(t);
    s.start(SE_POLICY);
    const a = new Array(32).fill(1);
    expect(rcOf(s.run(TPM_CC.PolicyOR, [...u32(2), ...t2b(a), ...t2b(new Array(32).fill(2))]))).toBe(0x1c4);
    expect(rcOf(s.run(TPM_CC.PolicyOR, [...u32(1), ...t2b(new Array(32).fill(0))]))).toBe(0x1d5);
    expect(rcOf(s.run(TPM_CC.PolicyOR, [...u32(2), ...t2b(a), ...t2b(new Array(32).fill(0))]))).toBe(0);
    expect(s.digest()).toBe(policy("sha256").or([Uint8Array.from(a), new Uint8Array(32)]).hex);
  });

  it("PolicyCommandCode: a second, different code is TPM_RC_VALUE + P1; a code that is no command is TPM_RC_POLICY_CC + P1", () => {
    const t = startedTpm();
    const s = new Session(t);
    s.start(SE_POLICY);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(0x1ff)))).toBe(0x1e4);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write)))).toBe(0);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Read)))).toBe(0x1c4);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write)))).toBe(0);
  });

  it("PolicyNV compares the index's data (TPM_RC_POLICY when it does not hold) and checks the offset", () => {
    const t = startedTpm();
    defineNv(t, new Uint8Array(0));
    const s = new Session(t);
    s.start(SE_POLICY);
    const pw = [...u32(0x40000009), ...u16(0), 1, ...u16(0)];
    const nv = (operand: number[], offset: number, op: number) => rcOf(s.run(TPM_CC.PolicyNV, [...t2b(operand), ...u16(offset), ...u16(op)], [NV, NV], [pw]));
    expect(nv([1], 0, TPM_EO.EQ)).toBe(0x14a); // not written: TPM_RC_NV_UNINITIALIZED
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_Write, [NV, NV], [[]], writeParams([0, 0, 0, 5, 0xf0, 0, 0, 0])), 0))).toBe(0);
    expect(nv([0, 0, 0, 5], 0, TPM_EO.EQ)).toBe(0);
    expect(nv([0, 0, 0, 6], 0, TPM_EO.UNSIGNED_LT)).toBe(0);
    expect(nv([0, 0, 0, 6], 0, TPM_EO.UNSIGNED_GT)).toBe(0x126);
    expect(nv([0x10], 4, TPM_EO.SIGNED_LT)).toBe(0); // 0xf0 is negative
    expect(nv([0x10], 4, TPM_EO.UNSIGNED_LT)).toBe(0x126);
    expect(nv([0xc0], 4, TPM_EO.BITSET)).toBe(0);
    expect(nv([0x0f], 4, TPM_EO.BITCLEAR)).toBe(0);
    expect(nv([1], 9, TPM_EO.EQ)).toBe(0x2c4); // offset past the data: TPM_RC_VALUE + P2
    expect(nv([1, 2], 7, TPM_EO.EQ)).toBe(0x1d5); // operand past the data: TPM_RC_SIZE + P1
    expect(nv([1], 0, 0x0c)).toBe(0x3c4); // not a TPM_EO: TPM_RC_VALUE + P3
  });
});

describe("authorization with a policy session (Part 1 §19.7)", () => {
  it("authorizes an NV index whose authPolicy is the session's digest, once per assertion set", () => {
    const t = startedTpm();
    defineNv(t, policy("sha256").commandCode(TPM_CC.NV_Write).digest);
    const s = new Session(t);
    s.start(SE_POLICY);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write)))).toBe(0);
    const p = writeParams([1, 2, 3]);
    const r = t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(s.auth(TPM_CC.NV_Write, [], p, new Uint8Array(0))), ...p]), 0);
    s.answer(r, TPM_CC.NV_Write, new Uint8Array(0));
    // the assertions were spent with the rolled nonce: the digest is zeros again (POLICY_FAIL + S1)
    expect(s.digest()).toBe("00".repeat(32));
    const r2 = t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(s.auth(TPM_CC.NV_Write, [], p, new Uint8Array(0))), ...p]), 0);
    expect(rcOf(r2)).toBe(0x99d);
  });

  it("checks the command code (TPM_RC_POLICY_CC + S1) and the PCR counter (TPM_RC_PCR_CHANGED)", () => {
    const t = startedTpm();
    defineNv(t, policy("sha256").commandCode(TPM_CC.NV_Write).digest);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_Write, [NV, NV], [[]], writeParams([1])), 0))).toBe(0);
    const s = new Session(t);
    s.start(SE_POLICY);
    s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write));
    const rp = [...u16(1), ...u16(0)];
    expect(rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_Read, [...u32(NV), ...u32(NV), ...area(s.auth(TPM_CC.NV_Read, [], rp, new Uint8Array(0))), ...rp]), 0))).toBe(0x9a4);

    const pcrPolicy = new Session(t);
    pcrPolicy.start(SE_TRIAL);
    pcrPolicy.run(TPM_CC.PolicyPCR, [...u16(0), ...pcrSel16]);
    const digest = pcrPolicy.digest();
    defineNv(t, Uint8Array.from(digest.match(/../g)!.map((x) => parseInt(x, 16))), [], NV + 1);
    const s2 = new Session(t);
    s2.start(SE_POLICY);
    expect(rcOf(s2.run(TPM_CC.PolicyPCR, [...u16(0), ...pcrSel16]))).toBe(0);
    expect(s2.digest()).toBe(digest);
    // any extend moves pcrUpdateCounter (PCR 8 here, not in the policy; PCR 16 does not count)
    expect(rcOf(t.executeSync(pcrExtend(8, [[0x0b, new Array(32).fill(1)]]), 0))).toBe(0);
    const p = writeParams([1]);
    expect(rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV + 1), ...u32(NV + 1), ...area(s2.auth(TPM_CC.NV_Write, [], p, new Uint8Array(0))), ...p]), 0))).toBe(0x128);
  });

  it("PolicyPassword takes the authValue in clear and answers with an empty HMAC; a wrong one is TPM_RC_BAD_AUTH + S1", () => {
    const t = startedTpm();
    defineNv(t, policy("sha256").password().digest, [0x70, 0x77]);
    const s = new Session(t);
    s.start(SE_POLICY);
    const p = writeParams([4]);
    s.run(TPM_CC.PolicyPassword);
    const bad = t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(s.auth(TPM_CC.NV_Write, [], p, new Uint8Array(0), Uint8Array.of(0x70, 0x78))), ...p]), 0);
    expect(rcOf(bad)).toBe(0x9a2);
    const r = t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(s.auth(TPM_CC.NV_Write, [], p, new Uint8Array(0), Uint8Array.of(0x70, 0x77))), ...p]), 0);
    s.answer(r, TPM_CC.NV_Write, new Uint8Array(0));
  });

  it("PolicyAuthValue: the HMAC is keyed with the entity's authValue, the response too", () => {
    const t = startedTpm();
    const auth = Uint8Array.of(0x61, 0x62, 0x63);
    defineNv(t, policy("sha256").authValue().digest, [...auth]);
    const name = nvName(t);
    const s = new Session(t);
    s.start(SE_POLICY);
    s.run(TPM_CC.PolicyAuthValue);
    const p = writeParams([9, 9]);
    const r = t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(s.auth(TPM_CC.NV_Write, [name, name], p, auth)), ...p]), 0);
    s.answer(r, TPM_CC.NV_Write, auth);
    const read = t.executeSync(authCmd(TPM_CC.NV_Read, [NV, NV], [[...auth]], [...u16(2), ...u16(0)]), 0);
    expect(hex(read.subarray(16, 18))).toBe("0909");
  });

  it("a trial session cannot authorize (TPM_RC_ATTRIBUTES + S1); a policy session cannot authorize an entity without a policy (TPM_RC_AUTH_UNAVAILABLE)", () => {
    const t = startedTpm();
    defineNv(t, new Uint8Array(32));
    const tr = new Session(t);
    tr.start(SE_TRIAL);
    const p = writeParams([1]);
    expect(rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(tr.auth(TPM_CC.NV_Write, [], p, new Uint8Array(0))), ...p]), 0))).toBe(0x982);
    const s = new Session(t);
    s.start(SE_POLICY);
    const ext = [...u32(1), ...u16(0x0b), ...new Array(32).fill(1)];
    expect(rcOf(t.executeSync(cmd(0x8002, 0x182, [...u32(0), ...area(s.auth(0x182, [], ext, new Uint8Array(0))), ...ext]), 0))).toBe(0x12f);
  });

  it("PolicySecret with a policy session that asserts no authValue is TPM_RC_MODE + S1", () => {
    const t = startedTpm();
    defineNv(t, new Uint8Array(32));
    const inner = new Session(t);
    inner.start(SE_POLICY);
    const outer = new Session(t);
    outer.start(SE_POLICY);
    const params = [...u16(0), ...u16(0), ...u16(0), ...u32(0)];
    const r = outer.run(TPM_CC.PolicySecret, params, [NV], [inner.auth(TPM_CC.PolicySecret, [], params, new Uint8Array(0))]);
    expect(rcOf(r)).toBe(0x989);
  });

  it("PolicySecret checks the nonce (TPM_RC_NONCE + P1) and cpHashA's size (TPM_RC_SIZE + P2)", () => {
    const t = startedTpm();
    const s = new Session(t);
    s.start(SE_POLICY);
    const pw = [...u32(0x40000009), ...u16(0), 1, ...u16(0)];
    expect(rcOf(s.run(TPM_CC.PolicySecret, [...t2b(new Array(16).fill(0)), ...u16(0), ...u16(0), ...u32(0)], [OWNER], [pw]))).toBe(0x1cf);
    expect(rcOf(s.run(TPM_CC.PolicySecret, [...t2b(s.nonceTPM), ...t2b([1, 2]), ...u16(0), ...u32(0)], [OWNER], [pw]))).toBe(0x2d5);
    const ok = s.run(TPM_CC.PolicySecret, [...t2b(s.nonceTPM), ...u16(0), ...u16(0), ...u32(0)], [OWNER], [pw]);
    expect(rcOf(ok)).toBe(0);
    expect(s.digest()).toBe(policy("sha256").secret(Uint8Array.from(u32(OWNER))).hex);
  });
});

describe("TPM2_PolicyAuthorize (Part 3 §23.16) with a TPMT_TK_VERIFIED", () => {
  it("accepts the ticket HMAC(proof(hierarchy), TPM_ST_VERIFIED ‖ aHash ‖ keyName), refuses a wrong one (TPM_RC_VALUE + P4)", () => {
    // proofSeed is the first 32 random bytes a new TPM draws: record them
    const inner = new SeededRandom("authorize");
    let proofSeed: Uint8Array | undefined;
    const random: RandomSource = {
      fill(b, off, len) {
        inner.fill(b, off, len);
        proofSeed ??= b.slice(off, off + len);
      },
      stir: (d) => inner.stir(d),
    };
    const t = new SoftTpm({ random });
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
    expect(proofSeed!.length).toBe(32);
    const keyName = Uint8Array.from([0x00, 0x0b, ...sha256(Uint8Array.of(1, 2, 3))]);
    const ref = Uint8Array.of(7);
    const s = new Session(t);
    s.start(SE_POLICY);
    s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write));
    const approved = s.digest();
    const approvedBytes = Uint8Array.from(approved.match(/../g)!.map((x) => parseInt(x, 16)));
    const aHash = policyAuthorizeAHash("sha256", approvedBytes, ref);
    const proof = sha512(cat(proofSeed!, u32(OWNER)));
    const ticket = hmac(sha512, proof, cat(u16(0x8022), aHash, keyName));
    const call = (tk: Uint8Array, approvedPolicy = approvedBytes) => rcOf(s.run(TPM_CC.PolicyAuthorize, [...t2b(approvedPolicy), ...t2b(ref), ...t2b(keyName), ...u16(0x8022), ...u32(OWNER), ...t2b(tk)]));
    const wrong = ticket.slice();
    wrong[0]! ^= 1;
    expect(call(wrong)).toBe(0x4c4);
    expect(call(ticket, new Uint8Array(32))).toBe(0x1c4);
    expect(call(ticket)).toBe(0);
    expect(s.digest()).toBe(policy("sha256").authorize(keyName, ref).hex);
    expect(rcOf(s.run(TPM_CC.PolicyAuthorize, [...t2b(approvedBytes), ...t2b(ref), ...t2b(keyName), ...u16(0x8021), ...u32(OWNER), ...t2b(ticket)]))).toBe(0x4d7); // not TPM_ST_VERIFIED: TPM_RC_TAG + P4
  });
});

describe("a policy session saved and loaded (TPM2_ContextSave / ContextLoad, Part 1 §30.5)", () => {
  it("keeps its digest and assertions across the context swap and comes back as a policy session", () => {
    const t = startedTpm();
    defineNv(t, policy("sha256").commandCode(TPM_CC.NV_Write).authValue().digest, [5]);
    const name = nvName(t);
    const s = new Session(t);
    s.start(SE_POLICY);
    s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write));
    s.run(TPM_CC.PolicyAuthValue);
    const before = s.digest();
    const saved = t.executeSync(cmd(0x8001, TPM_CC.ContextSave, u32(s.handle)), 0);
    expect(rcOf(saved)).toBe(0);
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.PolicyGetDigest, u32(s.handle)), 0))).toBe(0x910);
    const loaded = t.executeSync(cmd(0x8001, TPM_CC.ContextLoad, saved.subarray(10)), 0);
    expect(rcOf(loaded)).toBe(0);
    expect(u32At(loaded, 10)).toBe(s.handle);
    expect(s.digest()).toBe(before);
    const p = writeParams([3]);
    const r = t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(s.auth(TPM_CC.NV_Write, [name, name], p, Uint8Array.of(5))), ...p]), 0);
    s.answer(r, TPM_CC.NV_Write, Uint8Array.of(5));
  });
});

/** An RSA-2048 signing key's TPMT_PUBLIC (RSASSA-SHA256, Part 2 §12.2.4) and a signer for it. */
function rsaSigner(): { publicArea: number[]; name: Uint8Array; sign(data: Uint8Array): Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const n = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
  // type RSA, nameAlg SHA-256, sign | userWithAuth | noDA, no policy, symmetric NULL, RSASSA-SHA256, 2048 bits, exponent 0
  const publicArea = [...u16(0x0001), ...u16(0x000b), ...u32(0x00040440), ...u16(0), ...u16(0x0010), ...u16(0x0014), ...u16(0x000b), ...u16(2048), ...u32(0), ...t2b([...n])];
  const name = Uint8Array.from([0x00, 0x0b, ...sha256(Uint8Array.from(publicArea))]);
  return { publicArea, name, sign: (data) => new Uint8Array(cryptoSign("sha256", data, privateKey)) };
}

describe("TPM2_PolicySigned (Part 3 §23.3)", () => {
  it("verifies a signature over aHash = H(nonceTPM ‖ expiration ‖ cpHashA ‖ policyRef) with a loaded key", () => {
    const t = startedTpm();
    const key = rsaSigner();
    const lr = t.executeSync(cmd(0x8001, TPM_CC.LoadExternal, [...u16(0), ...t2b(key.publicArea), ...u32(RH_NULL)]), 0);
    expect(rcOf(lr)).toBe(0);
    const kh = u32At(lr, 10);
    expect(hex(lr.subarray(16, 16 + 34))).toBe(hex(key.name)); // the Name LoadExternal returns
    const s = new Session(t);
    s.start(SE_POLICY);
    const ref = [1, 2, 3];
    const signed = (nonce: Uint8Array, sig: Uint8Array, exp = 0) =>
      s.run(TPM_CC.PolicySigned, [...t2b(nonce), ...u16(0), ...t2b(ref), ...u32(exp), ...u16(0x0014), ...u16(0x000b), ...t2b(sig)], [kh]);
    const aHashInput = (nonce: Uint8Array, exp: number) => cat(nonce, u32(exp), ref);
    const good = key.sign(aHashInput(s.nonceTPM, 0));
    const bad = good.slice();
    bad[10]! ^= 1;
    expect(rcOf(signed(s.nonceTPM, bad))).toBe(0x5db); // TPM_RC_SIGNATURE + P5
    expect(rcOf(signed(new Uint8Array(16), good))).toBe(0x1cf); // TPM_RC_NONCE + P1
    const r = signed(s.nonceTPM, good);
    expect(rcOf(r)).toBe(0);
    expect(hex(r.subarray(10))).toBe("0000" + "8025" + "40000007" + "0000"); // no timeout, a NULL TPMT_TK_AUTH
    expect(s.digest()).toBe(policy("sha256").signed(key.name, Uint8Array.from(ref)).hex);
    // a trial session checks no signature
    const tr = new Session(t);
    tr.start(SE_TRIAL);
    expect(rcOf(tr.run(TPM_CC.PolicySigned, [...u16(0), ...u16(0), ...t2b(ref), ...u32(0), ...u16(0x0014), ...u16(0x000b), ...t2b(bad)], [kh]))).toBe(0);
    expect(tr.digest()).toBe(policy("sha256").signed(key.name, Uint8Array.from(ref)).hex);
  });
});


describe("parameter encryption, AES-128-CFB (Part 1 §21.3)", () => {
  it("decrypts the first command parameter and encrypts the first response parameter with sessionKey ‖ authValue", async () => {
    const t = startedTpm();
    const auth = Uint8Array.of(0x61, 0x62, 0x63);
    // AUTHWRITE | AUTHREAD | NO_DA
    expect(rcOf(t.executeSync(authCmd(0x12a, [OWNER], [[]], [...t2b(auth), ...nvPublic(NV, 0x00000004 | 0x00040000 | 0x02000000, 8)]), 0))).toBe(0);
    const data = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    const r = await cfbRoundTrip((b) => t.executeSync(b, 0), NV, auth, data);
    expect(hex(r.stored)).toBe(hex(data));
    expect(hex(r.readBack)).toBe(hex(data));
    expect(hex(r.onWire)).not.toBe(hex(data));
  });

  it("refuses decrypt on a command without a TPM2B first parameter (TPM_RC_ATTRIBUTES + S1), on a NULL-symmetric session (TPM_RC_SYMMETRIC + S1), AES in a mode other than CFB (TPM_RC_MODE + P4)", () => {
    const t = startedTpm();
    const start = (sym: number[]) => t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(1)), ...u16(0), 0, ...sym, ...u16(0x0b)]), 0);
    expect(rcOf(start([...u16(0x0006), ...u16(128), ...u16(0x0044)]))).toBe(0x4c9);
    expect(rcOf(start([...u16(0x0006), ...u16(100), ...u16(0x0043)]))).toBe(0x4c4);
    const aes = u32At(start([...u16(0x0006), ...u16(128), ...u16(0x0043)]), 10);
    const plain = u32At(start(u16(0x0010)), 10);
    const ext = [...u32(1), ...u16(0x0b), ...new Array(32).fill(1)];
    const session = (h: number, attrs: number) => [...u32(h), ...t2b(new Array(16).fill(2)), attrs, ...u16(0)];
    expect(rcOf(t.executeSync(cmd(0x8002, 0x182, [...u32(0), ...area(session(aes, 0x21)), ...ext]), 0))).toBe(0x982);
    const nvW = (h: number) => cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...area(session(h, 0x21)), ...t2b([1]), ...u16(0)]);
    expect(rcOf(t.executeSync(authCmd(0x12a, [OWNER], [[]], [...u16(0), ...nvPublic(NV, 0x00000004 | 0x00040000 | 0x02000000, 8)]), 0))).toBe(0);
    expect(rcOf(t.executeSync(nvW(plain), 0))).toBe(0x996);
    // the AES session keeps its algorithm across ContextSave / ContextLoad: decrypt still works
    // (an empty HMAC under the empty key of an unbound session and an empty authValue)
    const saved = t.executeSync(cmd(0x8001, TPM_CC.ContextSave, u32(aes)), 0);
    expect(rcOf(saved)).toBe(0);
    expect(rcOf(t.executeSync(cmd(0x8001, TPM_CC.ContextLoad, saved.subarray(10)), 0))).toBe(0);
    expect(rcOf(t.executeSync(nvW(aes), 0))).toBe(0);
  });
});


describe("salted sessions (TPM2_StartAuthSession with an RSA tpmKey, Part 1 §19.6.13)", () => {
  it("decrypts the OAEP salt into the sessionKey; a salt that does not decrypt is TPM_RC_VALUE + P2", async () => {
    const t = startedTpm();
    const r = await saltedSession((b) => t.executeSync(b, 0));
    expect(r.badSalt).toBe(0x2c4);
    expect(r.extend).toBe(0);
  });
});
