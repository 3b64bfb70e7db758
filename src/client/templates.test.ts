/**
 * The key templates (TPMT_PUBLIC, TPM 2.0 Part 2 §12.2.4): the TCG EK templates byte for byte as
 * the EK Credential Profile 2.x tables give them, the SRK attributes of the Provisioning Guidance,
 * and publicKeyToCrypto round trips through node:crypto.
 */
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import { toHex } from "../wire/buffer.js";
import { TPM_ALG, TPM_ECC_CURVE, TPMA_OBJECT } from "../wire/constants.js";
import { marshalPublic } from "../wire/structures.js";
import {
  EK_POLICY_SHA256,
  eccSigningTemplate,
  eccStorageTemplate,
  ekEccP256Template,
  ekRsa2048Template,
  hmacKeyTemplate,
  publicKeyToCrypto,
  rsaSigningTemplate,
  rsaStorageTemplate,
  sealedDataTemplate,
  srkEccP256Template,
  srkRsa2048Template,
} from "./templates.js";

describe("TCG EK templates (EK Credential Profile 2.x, L-1 and L-2)", () => {
  it("L-1 marshals as the profile's RSA 2048 template: attributes 0x000300b2, PolicyA, AES-128-CFB, 256 zero bytes", () => {
    const hex = toHex(marshalPublic(ekRsa2048Template()));
    expect(hex).toBe("0001000b000300b20020" + toHex(EK_POLICY_SHA256) + "00060080004300100800000000000100" + "00".repeat(256));
  });
  it("L-2 marshals as the profile's ECC P-256 template: two 32-byte zero coordinates", () => {
    const hex = toHex(marshalPublic(ekEccP256Template()));
    expect(hex).toBe("0023000b000300b20020" + toHex(EK_POLICY_SHA256) + "0006008000430010000300100020" + "00".repeat(32) + "0020" + "00".repeat(32));
  });
  it("the EK policy is PolicySecret(TPM_RH_ENDORSEMENT) under SHA-256", () => {
    expect(toHex(EK_POLICY_SHA256)).toBe("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
  });
});

describe("SRK and key templates", () => {
  it("SRKs are restricted decrypt keys with userWithAuth and noDA (0x00030472), empty auth policy", () => {
    for (const t of [srkRsa2048Template(), srkEccP256Template()]) {
      expect(t.objectAttributes).toBe(0x00030472);
      expect(t.authPolicy.length).toBe(0);
      expect(t.symmetric).toEqual({ algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });
    }
  });
  it("storage, signing, attestation, HMAC and sealed templates carry the attributes of their kind", () => {
    const A = TPMA_OBJECT;
    expect(rsaStorageTemplate(3072).keyBits).toBe(3072);
    expect(eccStorageTemplate("p384").curveId).toBe(TPM_ECC_CURVE.NIST_P384);
    expect(rsaStorageTemplate().objectAttributes & (A.RESTRICTED | A.DECRYPT | A.SIGN_ENCRYPT)).toBe(A.RESTRICTED | A.DECRYPT);
    expect(rsaSigningTemplate().objectAttributes & (A.RESTRICTED | A.SIGN_ENCRYPT)).toBe(A.SIGN_ENCRYPT);
    expect(rsaSigningTemplate(2048, { restricted: true }).objectAttributes & (A.RESTRICTED | A.SIGN_ENCRYPT)).toBe(A.RESTRICTED | A.SIGN_ENCRYPT);
    expect(eccSigningTemplate("p256").scheme).toEqual({ scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
    expect(hmacKeyTemplate().scheme).toEqual({ scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 });
    const sealed = sealedDataTemplate({ noDA: true });
    expect(sealed.objectAttributes & (A.SIGN_ENCRYPT | A.DECRYPT | A.SENSITIVEDATAORIGIN)).toBe(0);
    expect(sealed.objectAttributes & A.NODA).toBe(A.NODA);
  });
  it("refuses a key size or curve it has no template for", () => {
    expect(() => rsaStorageTemplate(1024 as never)).toThrow(TpmArgumentError);
    expect(() => eccStorageTemplate("p521" as never)).toThrow(/curve must be "p256" or "p384"/);
  });
});

describe("publicKeyToCrypto", () => {
  it("an ECC P-384 point becomes the same key in node:crypto and a JWK", () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const jwk = publicKey.export({ format: "jwk" });
    const pub = { ...eccSigningTemplate("p384"), unique: { x: new Uint8Array(Buffer.from(jwk.x!, "base64url")), y: new Uint8Array(Buffer.from(jwk.y!, "base64url")) } };
    const out = publicKeyToCrypto(pub);
    expect(out.jwk).toEqual({ kty: "EC", crv: "P-384", x: jwk.x, y: jwk.y });
    expect(out.keyObject.equals(publicKey)).toBe(true);
  });
  it("an RSA modulus and exponent 0 become e = 65537", () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = publicKey.export({ format: "jwk" });
    const out = publicKeyToCrypto({ ...rsaSigningTemplate(), unique: new Uint8Array(Buffer.from(jwk.n!, "base64url")) });
    expect(out.jwk).toEqual({ kty: "RSA", n: jwk.n, e: "AQAB" });
    expect(out.keyObject.equals(publicKey)).toBe(true);
  });
  it("refuses a keyed-hash object and a coordinate longer than the field", () => {
    expect(() => publicKeyToCrypto(hmacKeyTemplate())).toThrow(TpmFormatError);
    expect(() => publicKeyToCrypto({ ...eccSigningTemplate("p256"), unique: { x: new Uint8Array(33), y: new Uint8Array(32) } })).toThrow(/ECC x is 33 bytes, the curve's field is 32/);
  });
});
