import { describe, expect, it } from "vitest";
import { createHash, createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import { TpmReader } from "../wire/buffer.js";
import { policy } from "../client/policy.js";
import { TPM_ALG, TPM_CC, TPMA_OBJECT } from "../wire/constants.js";
import { type Scheme, type SymDef, marshalPublic } from "../wire/structures.js";
import { authCmd, cmd, hex, nvPublic, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

/**
 * TPM2_HMAC_Start (Part 3 §17.2), policy assertions of Part 3 §23 and TPM2_NV_ChangeAuth
 * (§31.8). Against SoftTpm, or with TPMKIT_SWTPM_PORT set a running swtpm (each command through
 * tpm2-tools' tpm2_send, its transient objects and sessions flushed first), so the codes can be checked
 * against swtpm 0.7.1: `TPMKIT_SWTPM_PORT=2321 npx vitest run src/softtpm/more-commands-b.test.ts`.
 */
interface Tpm {
  executeSync(cmd: Uint8Array, locality: number): Uint8Array;
}
const SWTPM = process.env["TPMKIT_SWTPM_PORT"];

function fresh(): Tpm {
  if (!SWTPM) return startedTpm();
  const t: Tpm = { executeSync: (c) => new Uint8Array(execFileSync("tpm2_send", ["-T", `swtpm:port=${SWTPM}`], { input: c })) };
  // flush transient objects and loaded sessions (TPM_CAP_HANDLES of TPM_HT_TRANSIENT, _HMAC_SESSION, _POLICY_SESSION)
  for (const first of [0x80000000, 0x02000000, 0x03000000]) {
    const r = t.executeSync(cmd(0x8001, 0x17a, [...u32(1), ...u32(first), ...u32(20)]), 0);
    for (let i = 0, n = u32At(r, 15); i < n; i++) t.executeSync(cmd(0x8001, 0x165, u32(u32At(r, 19 + 4 * i))), 0);
  }
  return t;
}

const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const CC = {
  CreatePrimary: 0x131, Create: 0x153, Load: 0x157, HMAC_Start: 0x15b, SequenceUpdate: 0x15c, SequenceComplete: 0x13e, EventSequenceComplete: 0x185,
};
const A = TPMA_OBJECT;
const BASE = A.FIXEDTPM | A.FIXEDPARENT | A.USERWITHAUTH;
const E = new Uint8Array(0);
const NULL_SCHEME: Scheme = { scheme: TPM_ALG.NULL, hashAlg: 0 };
const AES128CFB: SymDef = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
const rsaStorage = () =>
  marshalPublic({ type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: BASE | A.SENSITIVEDATAORIGIN | A.RESTRICTED | A.DECRYPT, authPolicy: E, symmetric: AES128CFB, scheme: NULL_SCHEME, keyBits: 2048, exponent: 0, unique: E });
const keyedHash = (attrs: number, scheme: Scheme) => marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: E, scheme, unique: E });
const createParams = (template: Uint8Array, data: number[] = []) => [...t2b([...t2b([]), ...t2b(data)]), ...t2b(template), ...u16(0), ...u32(0)];

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}
function primary(t: Tpm): number {
  return u32At(ok(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], createParams(rsaStorage())), 0)), 10);
}
function child(t: Tpm, parent: number, template: Uint8Array, data: number[] = []): number {
  const r = ok(t.executeSync(authCmd(CC.Create, [parent], [[]], createParams(template, data)), 0));
  const rd = new TpmReader(r, 14);
  const priv = rd.tpm2b().slice();
  const area = rd.tpm2b().slice();
  return u32At(ok(t.executeSync(authCmd(CC.Load, [parent], [[]], [...t2b(priv), ...t2b(area)]), 0)), 10);
}

describe("TPM2_HMAC_Start (Part 3 §17.2)", () => {
  const hmacStart = (t: Tpm, key: number, alg: number, auth: number[] = []) => t.executeSync(authCmd(CC.HMAC_Start, [key], [[]], [...t2b(auth), ...u16(alg)]), 0);
  const update = (t: Tpm, seq: number, data: number[], pw: number[] = []) => t.executeSync(authCmd(CC.SequenceUpdate, [seq], [pw], t2b(data)), 0);
  const complete = (t: Tpm, seq: number, data: number[], pw: number[] = []) => t.executeSync(authCmd(CC.SequenceComplete, [seq], [pw], [...t2b(data), ...u32(OWNER)]), 0);

  it("an HMAC sequence (SequenceUpdate, SequenceComplete) equals node:crypto's HMAC, with a NULL ticket", () => {
    const t = fresh();
    const parent = primary(t);
    const cases: [number, string, number[]][] = [
      [TPM_ALG.SHA256, "sha256", [5, 6, 7, 8]],
      [TPM_ALG.SHA256, "sha256", Array.from({ length: 64 }, (_, i) => i)], // a whole block
      [TPM_ALG.SHA384, "sha384", Array.from({ length: 128 }, (_, i) => 255 - i)],
      [TPM_ALG.SHA1, "sha1", [1]],
    ];
    for (const [alg, name, secret] of cases) {
      const key = child(t, parent, keyedHash(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.HMAC, hashAlg: alg }), secret);
      const seq = u32At(ok(hmacStart(t, key, TPM_ALG.NULL, [9, 9])), 10);
      const a = Array.from({ length: 700 }, (_, i) => i & 0xff);
      const b = [1, 2, 3];
      ok(update(t, seq, a, [9, 9]));
      ok(update(t, seq, b, [9, 9]));
      const r = ok(complete(t, seq, [4, 5], [9, 9]));
      const rd = new TpmReader(r, 14);
      const want = createHmac(name, Uint8Array.from(secret)).update(Uint8Array.from([...a, ...b, 4, 5])).digest();
      expect(hex(rd.tpm2b())).toBe(hex(want));
      // validation: TPM_ST_HASHCHECK, TPM_RH_NULL, empty digest (Part 3 §17.5)
      expect([rd.u16(), rd.u32(), rd.tpm2b().length]).toEqual([0x8024, RH_NULL, 0]);
      ok(t.executeSync(cmd(0x8001, 0x165, u32(key)), 0)); // FlushContext: the object slots are few
    }
  });

  it("hashAlg must match the key's scheme (TPM_RC_VALUE + P2) and be a MAC scheme (TPM_RC_SYMMETRIC + P2)", () => {
    const t = fresh();
    const parent = primary(t);
    const key = child(t, parent, keyedHash(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 }), [1, 2]);
    const seq = u32At(ok(hmacStart(t, key, TPM_ALG.SHA256)), 10);
    expect(hex(new TpmReader(ok(complete(t, seq, [3])), 14).tpm2b())).toBe(hex(createHmac("sha256", Uint8Array.of(1, 2)).update(Uint8Array.of(3)).digest()));
    expect(rcOf(hmacStart(t, key, TPM_ALG.SHA384))).toBe(0x2c4);
    // hashAlg is a TPMI_ALG_MAC_SCHEME+: not a hash nor CMAC is TPM_RC_SYMMETRIC + P2, CMAC
    // differs from the key's scheme (swtpm 0.7.1, measured)
    for (const alg of [TPM_ALG.AES, TPM_ALG.RSA, 0x0099]) expect(rcOf(hmacStart(t, key, alg))).toBe(0x2d6);
    expect(rcOf(hmacStart(t, key, TPM_ALG.CMAC))).toBe(0x2c4);
  });

  it("the key: keyed-hash (TPM_RC_TYPE + H1), signing (TPM_RC_KEY + H1)", () => {
    const t = fresh();
    const parent = primary(t);
    expect(rcOf(hmacStart(t, parent, TPM_ALG.SHA256))).toBe(0x18a);
    const sealed = child(t, parent, keyedHash(BASE, NULL_SCHEME), [1]);
    expect(rcOf(hmacStart(t, sealed, TPM_ALG.SHA256))).toBe(0x19c);
  });

  it("the sequence takes the auth given to HMAC_Start; an event sequence completion refuses it (TPM_RC_MODE + H2)", () => {
    const t = fresh();
    const parent = primary(t);
    const key = child(t, parent, keyedHash(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 }), [1, 2]);
    const seq = u32At(ok(hmacStart(t, key, TPM_ALG.NULL, [7])), 10);
    expect(rcOf(update(t, seq, [1], [8]))).toBe(0x9a2); // TPM_RC_BAD_AUTH + session 1: a sequence is not DA-protected
    const ev = t.executeSync(authCmd(CC.EventSequenceComplete, [RH_NULL, seq], [[], [7]], t2b([])), 0);
    expect(rcOf(ev)).toBe(0x289);
  });
});

const SE_POLICY = 0x01;
const SE_TRIAL = 0x03;

/**
 * The client side of an unbound, unsalted policy session (Part 1 §19.7): its HMAC key is empty
 * (no PolicyAuthValue here), so its command and response HMACs are empty.
 */
class PolicySession {
  handle = 0;
  constructor(readonly tpm: Tpm) {}
  start(type: number): this {
    const r = ok(this.tpm.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(0x22)), ...u16(0), type, ...u16(0x10), ...u16(0x0b)]), 0));
    this.handle = u32At(r, 10);
    return this;
  }
  /** A policy command on this session (its handle last). */
  run(cc: number, params: number[] = [], locality = 0): Uint8Array {
    return this.tpm.executeSync(cmd(0x8001, cc, [...u32(this.handle), ...params]), locality);
  }
  digest(): string {
    const r = ok(this.run(TPM_CC.PolicyGetDigest));
    return hex(r.subarray(12, 12 + ((r[10]! << 8) | r[11]!)));
  }
  /** This session in an authorization area (continueSession, empty HMAC). */
  area(): number[] {
    const s = [...u32(this.handle), ...t2b(new Array(16).fill(0x23)), 1, ...u16(0)];
    return [...u32(s.length), ...s];
  }
}

const NV = 0x01500030;
// TPMA_NV: AUTHWRITE | AUTHREAD | NO_DA (Part 2 §13.4): no POLICYWRITE, the ADMIN role needs none
const NV_ATTRS = 0x00000004 | 0x00040000 | 0x02000000;
const unhexBytes = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));

function defineNv(t: Tpm, authPolicy: Uint8Array, auth: number[], index = NV, attrs = NV_ATTRS): void {
  ok(t.executeSync(authCmd(TPM_CC.NV_DefineSpace, [OWNER], [[]], [...t2b(auth), ...nvPublic(index, attrs, 8, 0x0b, [...authPolicy])]), 0));
}
const undefineNv = (t: Tpm, index = NV) => t.executeSync(authCmd(TPM_CC.NV_UndefineSpace, [OWNER, index], [[]]), 0);
const nvWrite = (t: Tpm, pw: number[], index = NV) => t.executeSync(authCmd(TPM_CC.NV_Write, [index, index], [pw], [...t2b([1, 2]), ...u16(0)]), 0);

describe("TPM2_NV_ChangeAuth (Part 3 §31.8)", () => {
  const changeAuth = (t: Tpm, s: PolicySession, newAuth: number[], index = NV) => t.executeSync(cmd(0x8002, TPM_CC.NV_ChangeAuth, [...u32(index), ...s.area(), ...t2b(newAuth)]), 0);

  it("a policy session in the ADMIN role changes the authValue; a password is TPM_RC_AUTH_TYPE", () => {
    const t = fresh();
    undefineNv(t);
    defineNv(t, policy("sha256").commandCode(TPM_CC.NV_ChangeAuth).digest, [1, 2]);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_ChangeAuth, [NV], [[1, 2]], t2b([3])), 0))).toBe(0x124);
    const s = new PolicySession(t).start(SE_POLICY);
    ok(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_ChangeAuth)));
    ok(changeAuth(t, s, [3, 4, 0, 0]));
    expect(rcOf(nvWrite(t, [1, 2]))).toBe(0x9a2); // TPM_RC_BAD_AUTH + S1: the old value is gone
    ok(nvWrite(t, [3, 4])); // trailing zeros dropped (Part 1 §19.8.4)
    // the policy is spent after use; a fresh one without PolicyCommandCode fails the digest
    expect(rcOf(changeAuth(t, s, [5]))).toBe(0x99d);
    // newAuth larger than the nameAlg's digest: TPM_RC_SIZE + P1
    ok(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_ChangeAuth)));
    expect(rcOf(changeAuth(t, s, new Array(33).fill(7)))).toBe(0x1d5);
    ok(undefineNv(t));
  });
});

const sha256 = (...parts: (Uint8Array | number[])[]) => new Uint8Array(createHash("sha256").update(Uint8Array.from(parts.flatMap((p) => [...p]))).digest());
const ZERO = new Uint8Array(32);

function nvName(t: Tpm, index = NV): Uint8Array {
  const r = ok(t.executeSync(cmd(0x8001, TPM_CC.NV_ReadPublic, u32(index)), 0));
  const at = 12 + ((r[10]! << 8) | r[11]!);
  return r.slice(at + 2, at + 2 + ((r[at]! << 8) | r[at + 1]!));
}
const writeParams = (data: number[]) => [...t2b(data), ...u16(0)];
const nvWriteWith = (t: Tpm, s: PolicySession, data: number[], index = NV, locality = 0) =>
  t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(index), ...u32(index), ...s.area(), ...writeParams(data)]), locality);

describe("PolicyCpHash, PolicyNameHash, PolicyLocality, PolicyNvWritten, PolicyTemplate (Part 3 §23.13, §23.14, §23.8, §23.20, §23.21)", () => {
  it("the digests: as the client's policy builder, H(old ‖ TPM_CC ‖ argument)", () => {
    const t = fresh();
    const d = sha256([7]);
    const cases: [number, number[], string][] = [
      [TPM_CC.PolicyCpHash, t2b(d), hex(policy("sha256").cpHash(d).digest)],
      [TPM_CC.PolicyNameHash, t2b(d), hex(policy("sha256").nameHash(d).digest)],
      [TPM_CC.PolicyTemplate, t2b(d), hex(sha256(ZERO, u32(TPM_CC.PolicyTemplate), d))],
      [TPM_CC.PolicyLocality, [0x03], hex(sha256(ZERO, u32(TPM_CC.PolicyLocality), [0x03]))],
      [TPM_CC.PolicyNvWritten, [1], hex(sha256(ZERO, u32(TPM_CC.PolicyNvWritten), [1]))],
    ];
    for (const [cc, arg, want] of cases) {
      for (const type of [SE_TRIAL, SE_POLICY]) {
        const s = new PolicySession(t).start(type);
        ok(s.run(cc, arg));
        expect(s.digest()).toBe(want);
        ok(t.executeSync(cmd(0x8001, 0x165, u32(s.handle)), 0));
      }
    }
  });

  it("argument codes: a digest of the wrong size is TPM_RC_SIZE + P1; one cpHash per session (TPM_RC_CPHASH)", () => {
    const t = fresh();
    const a = sha256([1]);
    const b = sha256([2]);
    const s = new PolicySession(t).start(SE_TRIAL);
    for (const cc of [TPM_CC.PolicyCpHash, TPM_CC.PolicyNameHash, TPM_CC.PolicyTemplate]) expect(rcOf(s.run(cc, t2b(a.subarray(0, 20))))).toBe(0x1d5);
    ok(s.run(TPM_CC.PolicyCpHash, t2b(a)));
    ok(s.run(TPM_CC.PolicyCpHash, t2b(a))); // the same again
    expect(rcOf(s.run(TPM_CC.PolicyCpHash, t2b(b)))).toBe(0x151);
    expect(rcOf(s.run(TPM_CC.PolicyNameHash, t2b(a)))).toBe(0x151);
    expect(rcOf(s.run(TPM_CC.PolicyTemplate, t2b(a)))).toBe(0x151);
    ok(s.run(TPM_CC.PolicyRestart));
    ok(s.run(TPM_CC.PolicyNameHash, t2b(a)));
    expect(rcOf(s.run(TPM_CC.PolicyNameHash, t2b(a)))).toBe(0x151); // a nameHash only once
    expect(rcOf(s.run(TPM_CC.PolicyCpHash, t2b(a)))).toBe(0x151);
  });

  it("PolicyLocality: zero, an empty intersection or another extended locality is TPM_RC_RANGE + P1", () => {
    const t = fresh();
    const s = new PolicySession(t).start(SE_TRIAL);
    expect(rcOf(s.run(TPM_CC.PolicyLocality, [0]))).toBe(0x1cd);
    ok(s.run(TPM_CC.PolicyLocality, [0x03]));
    ok(s.run(TPM_CC.PolicyLocality, [0x01])); // narrowed to locality 0
    expect(rcOf(s.run(TPM_CC.PolicyLocality, [0x02]))).toBe(0x1cd);
    expect(rcOf(s.run(TPM_CC.PolicyLocality, [0x20]))).toBe(0x1cd);
    ok(s.run(TPM_CC.PolicyRestart));
    ok(s.run(TPM_CC.PolicyLocality, [0x20]));
    expect(rcOf(s.run(TPM_CC.PolicyLocality, [0x01]))).toBe(0x1cd);
    expect(rcOf(s.run(TPM_CC.PolicyLocality, [0x21]))).toBe(0x1cd);
  });

  it("PolicyNvWritten: writtenSet is a TPMI_YES_NO and may not contradict itself (TPM_RC_VALUE + P1)", () => {
    const t = fresh();
    const s = new PolicySession(t).start(SE_TRIAL);
    expect(rcOf(s.run(TPM_CC.PolicyNvWritten, [2]))).toBe(0x1c4);
    ok(s.run(TPM_CC.PolicyNvWritten, [0]));
    ok(s.run(TPM_CC.PolicyNvWritten, [0]));
    expect(rcOf(s.run(TPM_CC.PolicyNvWritten, [1]))).toBe(0x1c4);
  });

  /**
   * An NV index's Name covers its authPolicy, so a policy naming the index's cpHash or nameHash
   * goes through PolicyAuthorize: authPolicy = PolicyAuthorize(keyed-hash key K), and the policy
   * approved by K's HMAC (its secret known here) holds PolicyCpHash / PolicyNameHash.
   */
  function authorizedNv(t: Tpm) {
    const parent = primary(t);
    const secret = [9, 8, 7, 6];
    const key = child(t, parent, keyedHash(BASE | A.SIGN_ENCRYPT, { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 }), secret);
    const rp = ok(t.executeSync(cmd(0x8001, TPM_CC.ReadPublic, u32(key)), 0));
    const at = 12 + ((rp[10]! << 8) | rp[11]!);
    const keyName = rp.slice(at + 2, at + 2 + ((rp[at]! << 8) | rp[at + 1]!));
    undefineNv(t);
    const attrs = 0x00000008 | 0x00040000 | 0x02000000; // POLICYWRITE | AUTHREAD | NO_DA
    defineNv(t, sha256(sha256(ZERO, u32(TPM_CC.PolicyAuthorize), keyName)), [], NV, attrs);
    /** Runs PolicyAuthorize of `approved` on s (its digest must be `approved` by then). */
    const authorize = (s: PolicySession, approved: Uint8Array) => {
      const aHash = sha256(approved);
      const mac = createHmac("sha256", Uint8Array.from(secret)).update(aHash).digest();
      const v = ok(t.executeSync(cmd(0x8001, TPM_CC.VerifySignature, [...u32(key), ...t2b(aHash), ...u16(TPM_ALG.HMAC), ...u16(TPM_ALG.SHA256), ...mac]), 0));
      ok(s.run(TPM_CC.PolicyAuthorize, [...t2b(approved), ...t2b([]), ...t2b(keyName), ...v.subarray(10)]));
    };
    return { name: nvName(t), authorize };
  }

  it("authorization checks the cpHash of the command (TPM_RC_POLICY_FAIL + S1), also after ContextSave / ContextLoad", () => {
    const t = fresh();
    const { name, authorize } = authorizedNv(t);
    const cp = sha256(u32(TPM_CC.NV_Write), name, name, writeParams([1, 2, 3]));
    const approved = policy("sha256").cpHash(cp).digest;
    const s = new PolicySession(t).start(SE_POLICY);
    ok(s.run(TPM_CC.PolicyCpHash, t2b(cp)));
    authorize(s, approved);
    expect(rcOf(nvWriteWith(t, s, [1, 2, 4]))).toBe(0x99d);
    ok(s.run(TPM_CC.PolicyRestart));
    ok(s.run(TPM_CC.PolicyCpHash, t2b(cp)));
    authorize(s, approved);
    // the restriction survives a context swap
    const saved = ok(t.executeSync(cmd(0x8001, TPM_CC.ContextSave, u32(s.handle)), 0)).slice(10);
    ok(t.executeSync(cmd(0x8001, TPM_CC.ContextLoad, [...saved]), 0));
    expect(rcOf(nvWriteWith(t, s, [1, 2, 4]))).toBe(0x99d);
    ok(s.run(TPM_CC.PolicyRestart));
    ok(s.run(TPM_CC.PolicyCpHash, t2b(cp)));
    authorize(s, approved);
    ok(nvWriteWith(t, s, [1, 2, 3]));
    ok(undefineNv(t));
  });

  it("authorization checks the nameHash: H(Names of the command's handles)", () => {
    const t = fresh();
    const { name, authorize } = authorizedNv(t);
    const s = new PolicySession(t).start(SE_POLICY);
    const wrong = sha256(name);
    ok(s.run(TPM_CC.PolicyNameHash, t2b(wrong)));
    authorize(s, policy("sha256").nameHash(wrong).digest);
    expect(rcOf(nvWriteWith(t, s, [1]))).toBe(0x99d);
    ok(s.run(TPM_CC.PolicyRestart));
    const nh = sha256(name, name);
    ok(s.run(TPM_CC.PolicyNameHash, t2b(nh)));
    authorize(s, policy("sha256").nameHash(nh).digest);
    ok(nvWriteWith(t, s, [1, 2]));
    ok(undefineNv(t));
  });

  it("authorization checks the locality (TPM_RC_LOCALITY) and the index's written state (TPM_RC_POLICY_FAIL + S1)", () => {
    const t = fresh();
    undefineNv(t);
    const attrs = 0x00000008 | 0x00040000 | 0x02000000; // POLICYWRITE | AUTHREAD | NO_DA
    defineNv(t, sha256(sha256(ZERO, u32(TPM_CC.PolicyLocality), [0x02]), u32(TPM_CC.PolicyNvWritten), [0]), [], NV, attrs);
    const s = new PolicySession(t).start(SE_POLICY);
    const assert = () => {
      ok(s.run(TPM_CC.PolicyLocality, [0x02]));
      ok(s.run(TPM_CC.PolicyNvWritten, [0]));
    };
    assert();
    expect(rcOf(nvWriteWith(t, s, [1], NV, 0))).toBe(0x907);
    if (!SWTPM) {
      // (tpm2_send has no locality: this half runs against SoftTpm only)
      ok(nvWriteWith(t, s, [1], NV, 1));
      assert();
      expect(rcOf(nvWriteWith(t, s, [1], NV, 1))).toBe(0x99d); // written now
    }
    ok(undefineNv(t));
  });

  it("authorization checks the template of Create against PolicyTemplate (TPM_RC_POLICY_FAIL + S1)", () => {
    const t = fresh();
    const template = keyedHash(BASE, NULL_SCHEME);
    const other = keyedHash(BASE | A.NODA, NULL_SCHEME);
    const th = sha256(template);
    const parentTemplate = marshalPublic({
      type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.RESTRICTED | A.DECRYPT,
      authPolicy: sha256(ZERO, u32(TPM_CC.PolicyTemplate), th), symmetric: AES128CFB, scheme: NULL_SCHEME, keyBits: 2048, exponent: 0, unique: E,
    });
    const parent = u32At(ok(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], createParams(parentTemplate)), 0)), 10);
    const s = new PolicySession(t).start(SE_POLICY);
    const create = (tpl: Uint8Array) => t.executeSync(cmd(0x8002, CC.Create, [...u32(parent), ...s.area(), ...createParams(tpl, [1])]), 0);
    ok(s.run(TPM_CC.PolicyTemplate, t2b(th)));
    expect(rcOf(create(other))).toBe(0x99d);
    ok(s.run(TPM_CC.PolicyRestart));
    ok(s.run(TPM_CC.PolicyTemplate, t2b(th)));
    ok(create(template));
  });
});
