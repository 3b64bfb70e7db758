import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { TpmArgumentError } from "../errors/index.js";
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
