import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { TpmArgumentError } from "../errors/index.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { PolicyDigest, TPM_EO, pcrDigest, policy, policyAuthorizeAHash, policyOr } from "./policy.js";

// Expected values follow the Part 3 §23 formulas with node:crypto, independent of the module.
const H = (alg: string, ...parts: Uint8Array[]): Buffer => createHash(alg).update(Buffer.concat(parts)).digest();
const be32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const be16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
const Z32 = Buffer.alloc(32);

// Command codes written out from TPM 2.0 Part 2 §6.5.2 (not read from the module under test).
const CC = {
  PolicyNV: 0x149,
  PolicySecret: 0x151,
  PolicySigned: 0x160,
  PolicyAuthorize: 0x16a,
  PolicyAuthValue: 0x16b,
  PolicyCommandCode: 0x16c,
  PolicyCpHash: 0x16e,
  PolicyNameHash: 0x170,
  PolicyOR: 0x171,
  PolicyPCR: 0x17f,
  PolicyCounterTimer: 0x16d,
  PolicyPhysicalPresence: 0x187,
  PolicyDuplicationSelect: 0x188,
  PolicyAuthorizeNV: 0x192,
  Unseal: 0x15e,
  NV_Read: 0x14e,
};

const pcr7 = H("sha256", Buffer.from("pcr7"));
const pcr0 = H("sha256", Buffer.from("pcr0"));

describe("PolicyPCR (Part 3 §23.7)", () => {
  it("H(0 ‖ CC ‖ TPML_PCR_SELECTION ‖ H(values)) for sha256 PCR 0 and 7", () => {
    const sel = Buffer.from([0, 0, 0, 1, 0x00, 0x0b, 3, 0x81, 0, 0]); // count 1, sha256, sizeofSelect 3, PCR 0 and 7
    const want = H("sha256", Z32, be32(CC.PolicyPCR), sel, H("sha256", pcr0, pcr7));
    const got = policy("sha256").pcr({ sha256: [7, 0] }, { sha256: { 0: pcr0, 7: pcr7 } });
    expect(got.hex).toBe(want.toString("hex"));
    // the same with the PCR digest given directly
    expect(policy().pcr({ sha256: [0, 7] }, H("sha256", pcr0, pcr7)).hex).toBe(want.toString("hex"));
  });

  it("sha1 PCRs under a sha256 session: the PCR digest uses the session hash", () => {
    const v = H("sha1", Buffer.from("x"));
    const sel = Buffer.from([0, 0, 0, 1, 0x00, 0x04, 3, 0, 0, 0x01]); // PCR 16
    expect(pcrDigest("sha256", { sha1: [16] }, { sha1: { 16: v } })).toEqual(new Uint8Array(H("sha256", v)));
    expect(policy().pcr({ sha1: [16] }, { sha1: { 16: v } }).hex).toBe(H("sha256", Z32, be32(CC.PolicyPCR), sel, H("sha256", v)).toString("hex"));
  });

  it("a missing PCR value or a wrong-size digest is a TpmArgumentError", () => {
    expect(() => policy().pcr({ sha256: [1] }, { sha256: {} })).toThrow(TpmArgumentError);
    expect(() => policy().pcr({ sha256: [1] }, new Uint8Array(20))).toThrow(/32 bytes/);
  });
});

describe("assertions without an entity", () => {
  it("PolicyAuthValue and PolicyPassword both extend TPM_CC_PolicyAuthValue (§23.17, §23.18)", () => {
    const want = H("sha256", Z32, be32(CC.PolicyAuthValue)).toString("hex");
    expect(policy().authValue().hex).toBe(want);
    expect(policy().password().hex).toBe(want);
  });

  it("PolicyCommandCode (§23.11), chained after PolicyPCR", () => {
    const sel = Buffer.from([0, 0, 0, 1, 0x00, 0x0b, 3, 0x80, 0, 0]);
    const p1 = H("sha256", Z32, be32(CC.PolicyPCR), sel, H("sha256", pcr7));
    const want = H("sha256", p1, be32(CC.PolicyCommandCode), be32(CC.Unseal));
    const p = policy("sha256").pcr({ sha256: [7] }, { sha256: { 7: pcr7 } });
    const q = p.commandCode(CC.Unseal);
    expect(q.hex).toBe(want.toString("hex"));
    expect(p.hex).toBe(p1.toString("hex")); // immutable: p is unchanged
  });

  it("PolicyCpHash (§23.13) and PolicyNameHash (§23.14)", () => {
    const x = H("sha256", Buffer.from("cp"));
    expect(policy().cpHash(x).hex).toBe(H("sha256", Z32, be32(CC.PolicyCpHash), x).toString("hex"));
    expect(policy().nameHash(x).hex).toBe(H("sha256", Z32, be32(CC.PolicyNameHash), x).toString("hex"));
  });

  it("sha1, sha384 and sha512 sessions use their hash and size", () => {
    for (const [alg, size] of [["sha1", 20], ["sha384", 48], ["sha512", 64]] as const) {
      const p = policy(alg).authValue();
      expect(p.digest.length).toBe(size);
      expect(p.hex).toBe(H(alg, Buffer.alloc(size), be32(CC.PolicyAuthValue)).toString("hex"));
    }
  });
});

describe("PolicyUpdate assertions (§23.2.3)", () => {
  const ownerName = be32(0x40000001); // TPM_RH_OWNER: a permanent handle's Name is the handle
  const keyName = Buffer.concat([be16(0x000b), H("sha256", Buffer.from("public area"))]);
  const ref = Buffer.from("ref");

  it("PolicySecret (§23.4): H(H(old ‖ CC ‖ name) ‖ policyRef)", () => {
    expect(policy().secret(ownerName).hex).toBe(H("sha256", H("sha256", Z32, be32(CC.PolicySecret), ownerName)).toString("hex"));
    expect(policy().secret(ownerName, ref).hex).toBe(H("sha256", H("sha256", Z32, be32(CC.PolicySecret), ownerName), ref).toString("hex"));
  });

  it("PolicySigned (§23.3)", () => {
    expect(policy().signed(keyName, ref).hex).toBe(H("sha256", H("sha256", Z32, be32(CC.PolicySigned), keyName), ref).toString("hex"));
  });

  it("PolicyAuthorize (§23.16) resets first: the digest does not depend on what came before", () => {
    const want = H("sha256", H("sha256", Z32, be32(CC.PolicyAuthorize), keyName), ref).toString("hex");
    expect(policy().authorize(keyName, ref).hex).toBe(want);
    expect(policy().authValue().authorize(keyName, ref).hex).toBe(want);
    const approved = policy().authValue().digest;
    expect(Buffer.from(policyAuthorizeAHash("sha256", approved, ref))).toEqual(H("sha256", approved, ref));
  });
});

describe("PolicyOR (§23.6)", () => {
  it("H(0…0 ‖ CC ‖ digests), whatever the current digest", () => {
    const a = policy().authValue();
    const b = policy().commandCode(CC.Unseal);
    const want = H("sha256", Z32, be32(CC.PolicyOR), a.digest, b.digest).toString("hex");
    expect(policyOr("sha256", [a, b]).hex).toBe(want);
    expect(a.or([a.digest, b.digest]).hex).toBe(want);
  });

  it("refuses fewer than 2 or more than 8 branches, or a branch of the wrong size", () => {
    const a = policy().authValue();
    expect(() => policyOr("sha256", [a])).toThrow(TpmArgumentError);
    expect(() => policyOr("sha256", Array(9).fill(a))).toThrow(TpmArgumentError);
    expect(() => policyOr("sha256", [a, new Uint8Array(20)])).toThrow(/32-byte/);
    expect(policyOr("sha256", Array(8).fill(a)).digest.length).toBe(32);
  });
});

describe("PolicyNV (§23.9)", () => {
  it("H(old ‖ CC ‖ H(operandB ‖ offset ‖ operation) ‖ nvIndex name)", () => {
    const nvName = Buffer.concat([be16(0x000b), H("sha256", Buffer.from("nv public"))]);
    const operandB = Buffer.from([0, 0, 0, 5]);
    const args = H("sha256", operandB, be16(4), be16(0x0007));
    const want = H("sha256", Z32, be32(CC.PolicyNV), args, nvName);
    expect(policy().nv(nvName, operandB, 4, TPM_EO.UNSIGNED_GE).hex).toBe(want.toString("hex"));
    expect(() => policy().nv(nvName, operandB, 0x10000, TPM_EO.EQ)).toThrow(TpmArgumentError);
  });
});

describe("arguments", () => {
  it("unknown hash, wrong-size start digest, non-bytes names are TpmArgumentErrors", () => {
    expect(() => policy("sm3" as never)).toThrow(TpmArgumentError);
    expect(() => policy("constructor" as never)).toThrow(TpmArgumentError);
    expect(() => new PolicyDigest("sha256", new Uint8Array(20))).toThrow(TpmArgumentError);
    expect(() => policy().secret("owner" as never)).toThrow(TpmArgumentError);
    expect(() => policy().commandCode(-1)).toThrow(TpmArgumentError);
  });

  it("a start digest continues from there (a policy built across steps)", () => {
    const start = H("sha256", Buffer.from("s"));
    expect(new PolicyDigest("sha256", start).authValue().hex).toBe(H("sha256", start, be32(CC.PolicyAuthValue)).toString("hex"));
  });
});

describe("PolicyCounterTimer, PolicyDuplicationSelect, PolicyAuthorizeNV, PolicyPhysicalPresence (§23.10, §23.15, §23.22, §23.12)", () => {
  const nvName = Buffer.concat([be16(0x000b), H("sha256", Buffer.from("nv public"))]);
  const objName = Buffer.concat([be16(0x000b), H("sha256", Buffer.from("object"))]);
  const parentName = Buffer.concat([be16(0x000b), H("sha256", Buffer.from("parent"))]);

  it("PolicyCounterTimer: H(old ‖ CC ‖ H(operandB ‖ offset ‖ operation)); operandB must fit in TPMS_TIME_INFO", () => {
    const operandB = Buffer.from([0, 0, 0, 0, 0, 0, 0xea, 0x60]);
    const want = H("sha256", Z32, be32(CC.PolicyCounterTimer), H("sha256", operandB, be16(0), be16(TPM_EO.UNSIGNED_LT)));
    expect(policy().counterTimer(operandB, 0, TPM_EO.UNSIGNED_LT).hex).toBe(want.toString("hex"));
    // the value tpm2-tools 5.4's abrmd_policycountertimer expects for `--ult 60000`
    expect(policy().counterTimer(operandB, 0, TPM_EO.UNSIGNED_LT).hex).toBe("7f48cceb9fae31e1662d7f8306fdd1c4f81d2b8d3b0e9d82fdec42949ad5257e");
    expect(() => policy().counterTimer(new Uint8Array(8), 20, TPM_EO.EQ)).toThrow(TpmArgumentError);
    expect(() => policy().counterTimer(new Uint8Array(1), 0, 12)).toThrow(TpmArgumentError);
    expect(policy().counterTimer(new Uint8Array(1), 24, TPM_EO.EQ).digest.length).toBe(32);
  });

  it("PolicyDuplicationSelect: objectName only with includeObject", () => {
    expect(policy().duplicationSelect(objName, parentName).hex).toBe(H("sha256", Z32, be32(CC.PolicyDuplicationSelect), parentName, Buffer.from([0])).toString("hex"));
    expect(policy().duplicationSelect(objName, parentName, true).hex).toBe(H("sha256", Z32, be32(CC.PolicyDuplicationSelect), objName, parentName, Buffer.from([1])).toString("hex"));
  });

  it("PolicyAuthorizeNV resets first: H(0…0 ‖ CC ‖ nvIndex name)", () => {
    const want = H("sha256", Z32, be32(CC.PolicyAuthorizeNV), nvName).toString("hex");
    expect(policy().authorizeNV(nvName).hex).toBe(want);
    expect(policy().authValue().authorizeNV(nvName).hex).toBe(want);
  });

  it("PolicyPhysicalPresence: H(old ‖ CC)", () => {
    expect(policy().physicalPresence().hex).toBe(H("sha256", Z32, be32(CC.PolicyPhysicalPresence)).toString("hex"));
  });

  it("each equals a SoftTpm trial session's digest (TPM2_PolicyGetDigest)", () => {
    const t = new SoftTpm({ seed: "client-policy" });
    const exec = (b: Uint8Array) => t.executeSync(b, 0);
    const cmd = (tag: number, cc: number, body: Buffer) => {
      const head = Buffer.alloc(10);
      head.writeUInt16BE(tag);
      head.writeUInt32BE(10 + body.length, 2);
      head.writeUInt32BE(cc, 6);
      return new Uint8Array(Buffer.concat([head, body]));
    };
    const rc = (r: Uint8Array) => Buffer.from(r).readUInt32BE(6);
    const t2b = (b: Uint8Array) => Buffer.concat([be16(b.length), b]);
    const pw = Buffer.concat([be32(9), be32(0x40000009), be16(0), Buffer.from([1]), be16(0)]); // one empty password session
    expect(rc(exec(cmd(0x8001, 0x144, be16(0))))).toBe(0); // Startup(CLEAR)
    const trial = (): Buffer => {
      const r = Buffer.from(exec(cmd(0x8001, 0x176, Buffer.concat([be32(0x40000007), be32(0x40000007), t2b(Buffer.alloc(16, 1)), be16(0), Buffer.from([3]), be16(0x10), be16(0x0b)]))));
      expect(r.readUInt32BE(6)).toBe(0);
      return r.subarray(10, 14);
    };
    const digestOf = (s: Buffer): string => {
      const r = Buffer.from(exec(cmd(0x8001, 0x189, s)));
      expect(r.readUInt32BE(6)).toBe(0);
      const d = r.subarray(12, 12 + r.readUInt16BE(10)).toString("hex");
      expect(rc(exec(cmd(0x8001, 0x165, s)))).toBe(0); // FlushContext
      return d;
    };
    // PolicyCounterTimer
    let s = trial();
    const operandB = Buffer.from([0, 0, 0, 0, 0, 0, 0x03, 0xe8]);
    expect(rc(exec(cmd(0x8001, CC.PolicyCounterTimer, Buffer.concat([s, t2b(operandB), be16(8), be16(TPM_EO.UNSIGNED_GE)]))))).toBe(0);
    expect(digestOf(s)).toBe(policy().counterTimer(operandB, 8, TPM_EO.UNSIGNED_GE).hex);
    // PolicyDuplicationSelect, both ways
    for (const include of [false, true]) {
      s = trial();
      expect(rc(exec(cmd(0x8001, CC.PolicyDuplicationSelect, Buffer.concat([s, t2b(objName), t2b(parentName), Buffer.from([include ? 1 : 0])]))))).toBe(0);
      expect(digestOf(s)).toBe(policy().duplicationSelect(objName, parentName, include).hex);
    }
    // PolicyAuthorizeNV after PolicyAuthValue: an NV index (OWNER, AUTHREAD | AUTHWRITE | NO_DA, 34 bytes)
    const nvPub = Buffer.concat([be32(0x01500010), be16(0x0b), be32(0x00040004 | 0x02000000), be16(0), be16(34)]);
    expect(rc(exec(cmd(0x8002, 0x12a, Buffer.concat([be32(0x40000001), pw, be16(0), t2b(nvPub)]))))).toBe(0);
    const rp = Buffer.from(exec(cmd(0x8001, 0x169, be32(0x01500010))));
    const at = 12 + rp.readUInt16BE(10);
    const name = rp.subarray(at + 2, at + 2 + rp.readUInt16BE(at));
    s = trial();
    expect(rc(exec(cmd(0x8001, CC.PolicyAuthValue, s)))).toBe(0);
    expect(rc(exec(cmd(0x8002, CC.PolicyAuthorizeNV, Buffer.concat([be32(0x01500010), be32(0x01500010), s, pw]))))).toBe(0);
    expect(digestOf(s)).toBe(policy().authValue().authorizeNV(name).hex);
  });
});
