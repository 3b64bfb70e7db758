/**
 * verifyQuote (TPM 2.0 Part 3 §18.4) on hand-built quotes signed with node:crypto keys: each
 * field that can be wrong has one negative vector, and each fails closed with a
 * QuoteVerificationError naming that field (the CVE-2024-29040 class).
 */
import { createHash, generateKeyPairSync, sign as nodeSign, type KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import { TpmWriter } from "../wire/buffer.js";
import { TPM_ALG, TPM_ST } from "../wire/constants.js";
import type { EccPublic, RsaPublic, TpmtSignature } from "../wire/structures.js";
import { writePcrSelection, type PcrSelect } from "../wire/types.js";
import { eccSigningTemplate, rsaSigningTemplate } from "./templates.js";
import { QuoteVerificationError, verifyQuote, type ExpectedPcrs } from "./verify.js";

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());
const b64u = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64url"));

interface Fields {
  magic?: number;
  type?: number;
  extraData?: Uint8Array;
  select?: PcrSelect[];
  pcrDigest?: Uint8Array;
  trailing?: boolean;
}

const NONCE = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
const PCR0 = new Uint8Array(32).fill(0xa0);
const PCR7 = new Uint8Array(32).fill(0xa7);
const EXPECTED: ExpectedPcrs = { sha256: { 0: PCR0, 7: PCR7 } };
const GOOD_DIGEST = sha256(new Uint8Array([...PCR0, ...PCR7]));

/** A TPMS_ATTEST of type quote (Part 2 §10.12.12), field by field. */
function attest(f: Fields = {}): Uint8Array {
  const w = new TpmWriter(256);
  w.u32(f.magic ?? 0xff544347).u16(f.type ?? TPM_ST.ATTEST_QUOTE);
  w.tpm2b(new Uint8Array([0x00, 0x0b, ...new Uint8Array(32).fill(0x55)])); // qualifiedSigner
  w.tpm2b(f.extraData ?? NONCE);
  w.u64(123456n).u32(1).u32(0).u8(1); // clockInfo
  w.u64(0x2000_0001_0002_0003n); // firmwareVersion
  writePcrSelection(w, f.select ?? [{ hash: TPM_ALG.SHA256, pcrs: [0, 7] }]);
  w.tpm2b(f.pcrDigest ?? GOOD_DIGEST);
  if (f.trailing) w.u8(0);
  return w.finish();
}

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });

function rsaPublic(key: KeyObject): RsaPublic {
  const jwk = key.export({ format: "jwk" });
  return { ...rsaSigningTemplate(2048, { restricted: true }), unique: b64u(jwk.n!) };
}
function eccPublic(key: KeyObject): EccPublic {
  const jwk = key.export({ format: "jwk" });
  return { ...eccSigningTemplate("p256", { restricted: true }), unique: { x: b64u(jwk.x!), y: b64u(jwk.y!) } };
}

function rsassa(data: Uint8Array, key = rsa.privateKey): TpmtSignature {
  return { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: new Uint8Array(nodeSign("sha256", data, key)) };
}
function ecdsa(data: Uint8Array): TpmtSignature {
  const rs = new Uint8Array(nodeSign("sha256", data, { key: ec.privateKey, dsaEncoding: "ieee-p1363" }));
  return { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: rs.slice(0, 32), s: rs.slice(32) };
}

function fails(o: Parameters<typeof verifyQuote>[0], field: string): void {
  let err: unknown;
  try {
    verifyQuote(o);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(QuoteVerificationError);
  expect((err as QuoteVerificationError).field).toBe(field);
}

describe("verifyQuote accepts a good quote", () => {
  it("RSASSA with the key's TPMT_PUBLIC", () => {
    const q = attest();
    const a = verifyQuote({ quoted: q, signature: rsassa(q), publicKey: rsaPublic(rsa.publicKey), nonce: NONCE, pcrs: EXPECTED });
    expect(a.attested).toEqual({ pcrSelect: [{ hash: TPM_ALG.SHA256, pcrs: [0, 7] }], pcrDigest: GOOD_DIGEST });
    expect(a.clockInfo).toEqual({ clock: 123456n, resetCount: 1, restartCount: 0, safe: true });
  });
  it("RSAPSS with a node:crypto KeyObject", () => {
    const q = attest();
    const sig = new Uint8Array(nodeSign("sha256", q, { key: rsa.privateKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }));
    expect(() => verifyQuote({ quoted: q, signature: { sigAlg: TPM_ALG.RSAPSS, hash: TPM_ALG.SHA256, sig }, publicKey: rsa.publicKey, nonce: NONCE, pcrs: EXPECTED })).not.toThrow();
  });
  it("ECDSA P-256 with r and s (IEEE P1363, not DER), short r left-padded", () => {
    const q = attest();
    const s = ecdsa(q);
    expect(() => verifyQuote({ quoted: q, signature: s, publicKey: eccPublic(ec.publicKey), nonce: NONCE, pcrs: EXPECTED })).not.toThrow();
    expect(() => verifyQuote({ quoted: q, signature: s, publicKey: ec.publicKey, nonce: NONCE, pcrs: EXPECTED })).not.toThrow();
  });
});

describe("verifyQuote fails closed on every field", () => {
  const ok = (f: Fields = {}) => {
    const q = attest(f);
    return { quoted: q, signature: rsassa(q), publicKey: rsaPublic(rsa.publicKey), nonce: NONCE, pcrs: EXPECTED };
  };
  it("format: a trailing byte", () => fails(ok({ trailing: true }), "format"));
  it("format: truncated", () => fails({ ...ok(), quoted: attest().subarray(0, 20) }, "format"));
  it("magic: not TPM_GENERATED_VALUE (a structure the TPM did not make)", () => fails(ok({ magic: 0xff544348 }), "magic"));
  it("type: a certify structure signed by the same key", () => {
    // A TPMS_ATTEST of type CERTIFY whose bytes still parse as one: the type alone must reject it.
    const w = new TpmWriter(256);
    w.u32(0xff544347).u16(TPM_ST.ATTEST_CERTIFY).tpm2b(new Uint8Array(34)).tpm2b(NONCE).u64(1n).u32(1).u32(0).u8(1).u64(0n).tpm2b(new Uint8Array(34)).tpm2b(new Uint8Array(34));
    const q = w.finish();
    fails({ quoted: q, signature: rsassa(q), publicKey: rsa.publicKey, nonce: NONCE, pcrs: EXPECTED }, "type");
  });
  it("extraData: another nonce (a replay)", () => fails(ok({ extraData: new Uint8Array(8) }), "extraData"));
  it("pcrSelect: a PCR fewer than expected", () => fails(ok({ select: [{ hash: TPM_ALG.SHA256, pcrs: [0] }] }), "pcrSelect"));
  it("pcrSelect: another bank", () => fails(ok({ select: [{ hash: TPM_ALG.SHA1, pcrs: [0, 7] }] }), "pcrSelect"));
  it("pcrSelect: the same bank twice", () => fails(ok({ select: [{ hash: TPM_ALG.SHA256, pcrs: [0, 7] }, { hash: TPM_ALG.SHA256, pcrs: [0, 7] }] }), "pcrSelect"));
  it("pcrs: an expected value of the wrong size", () => fails({ ...ok(), pcrs: { sha256: { 0: PCR0, 7: new Uint8Array(20) } } }, "pcrs"));
  it("pcrDigest: not H(expected values)", () => fails(ok({ pcrDigest: sha256(new Uint8Array([...PCR7, ...PCR0])) }), "pcrDigest"));
  it("signature.sigAlg: ECDSA for an RSA key", () => {
    const q = attest();
    fails({ ...ok(), signature: ecdsa(q), publicKey: rsa.publicKey }, "signature.sigAlg");
  });
  it("signature.sigAlg: RSAPSS where the key's public area says RSASSA", () => {
    const q = attest();
    fails({ ...ok(), quoted: q, signature: { ...rsassa(q), sigAlg: TPM_ALG.RSAPSS } }, "signature.sigAlg");
  });
  it("signature.hash: not a hash", () => {
    const q = attest();
    fails({ ...ok(), quoted: q, signature: { ...rsassa(q), hash: 0x0001 } }, "signature.hash");
  });
  it("signature: by another key", () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const q = attest();
    fails({ ...ok(), quoted: q, signature: rsassa(q, other.privateKey) }, "signature");
  });
  it("signature: ECDSA over other bytes", () => {
    const q = attest();
    fails({ quoted: q, signature: ecdsa(attest({ extraData: new Uint8Array(8) })), publicKey: eccPublic(ec.publicKey), nonce: NONCE, pcrs: EXPECTED }, "signature");
  });
});

it("type: an unknown attestation type is refused as the type, not parsed", () => {
  const q = attest({ type: 0x8099 });
  fails({ quoted: q, signature: rsassa(q), publicKey: rsa.publicKey, nonce: NONCE, pcrs: EXPECTED }, "type");
});
