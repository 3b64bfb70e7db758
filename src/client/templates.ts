/**
 * Public-area templates (TPMT_PUBLIC, TPM 2.0 Part 2 §12.2.4) for the keys tool authors create
 * every day, the TCG EK and SRK templates, and {@link publicKeyToCrypto}, which turns a TPM public
 * area into a key node:crypto and WebCrypto accept.
 *
 * @packageDocumentation
 */
import type { JsonWebKey, KeyObject } from "node:crypto";
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import { TPM_ALG, TPM_ECC_CURVE, TPMA_OBJECT } from "../wire/constants.js";
import { SCHEME_NULL, SYM_NULL, type EccPublic, type KeyedHashPublic, type RsaPublic, type SymDef, type TpmtPublic } from "../wire/structures.js";
import { HASH_ALGS, type HashAlgName } from "../wire/types.js";

const A = TPMA_OBJECT;
const EMPTY = new Uint8Array(0);

/** AES-128-CFB, the symmetric definition of every storage (restricted decrypt) template here (Part 2 §11.1.7). */
export const AES_128_CFB: SymDef = Object.freeze({ algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });

/** The ECC curves the templates offer. */
export type EccCurveName = "p256" | "p384";
/** RSA key sizes the templates offer. */
export type RsaKeyBits = 2048 | 3072;

/** Options common to every template. */
export interface TemplateOptions {
  /** Name algorithm (Part 2 §12.2.4 nameAlg). Default sha256. */
  nameAlg?: HashAlgName;
  /** authPolicy; empty by default. */
  authPolicy?: Uint8Array;
  /** Set noDA (exempt from dictionary-attack lockout). Default false. */
  noDA?: boolean;
  /** Set userWithAuth (the password authorizes the USER role). Default true. */
  userWithAuth?: boolean;
}

const CURVES: Record<EccCurveName, { id: number; bytes: number; crv: string; hash: HashAlgName }> = {
  p256: { id: TPM_ECC_CURVE.NIST_P256, bytes: 32, crv: "P-256", hash: "sha256" },
  p384: { id: TPM_ECC_CURVE.NIST_P384, bytes: 48, crv: "P-384", hash: "sha384" },
};

function baseAttrs(o: TemplateOptions, extra: number): number {
  let a = A.FIXEDTPM | A.FIXEDPARENT | extra;
  if (o.userWithAuth ?? true) a |= A.USERWITHAUTH;
  if (o.noDA) a |= A.NODA;
  return a >>> 0;
}

function nameAlgOf(o: TemplateOptions, title: string): number {
  const n = o.nameAlg ?? "sha256";
  if (!Object.hasOwn(HASH_ALGS, n)) throw new TpmArgumentError(`${title}: nameAlg must be one of ${Object.keys(HASH_ALGS).join(", ")}, got ${String(n)}`);
  return HASH_ALGS[n].id;
}

function rsaBits(bits: unknown, title: string): RsaKeyBits {
  if (bits !== 2048 && bits !== 3072) throw new TpmArgumentError(`${title}: bits must be 2048 or 3072, got ${String(bits)}`);
  return bits;
}

function curveOf(curve: unknown, title: string): (typeof CURVES)[EccCurveName] {
  if (curve !== "p256" && curve !== "p384") throw new TpmArgumentError(`${title}: curve must be "p256" or "p384", got ${String(curve)}`);
  return CURVES[curve];
}

function rsa(o: TemplateOptions, attrs: number, bits: number, symmetric: SymDef, scheme: { scheme: number; hashAlg: number }, title: string, unique = EMPTY): RsaPublic {
  return { type: TPM_ALG.RSA, nameAlg: nameAlgOf(o, title), objectAttributes: attrs, authPolicy: o.authPolicy ?? EMPTY, symmetric, scheme, keyBits: bits, exponent: 0, unique };
}

function ecc(o: TemplateOptions, attrs: number, curveId: number, symmetric: SymDef, scheme: { scheme: number; hashAlg: number }, title: string, unique = { x: EMPTY, y: EMPTY }): EccPublic {
  return { type: TPM_ALG.ECC, nameAlg: nameAlgOf(o, title), objectAttributes: attrs, authPolicy: o.authPolicy ?? EMPTY, symmetric, scheme, curveId, kdf: { ...SCHEME_NULL }, unique };
}

/**
 * An RSA storage key: a restricted decryption key with AES-128-CFB, the parent type of Part 1
 * §25 (TPMA_OBJECT restricted | decrypt, Part 2 §8.3.3.1), scheme TPM_ALG_NULL.
 */
export function rsaStorageTemplate(bits: RsaKeyBits = 2048, options: TemplateOptions = {}): RsaPublic {
  const t = "rsaStorageTemplate";
  return rsa(options, baseAttrs(options, A.SENSITIVEDATAORIGIN | A.RESTRICTED | A.DECRYPT), rsaBits(bits, t), { ...AES_128_CFB }, { ...SCHEME_NULL }, t);
}

/** An ECC storage key (restricted decrypt, AES-128-CFB, Part 2 §8.3.3.1) on NIST P-256 or P-384. */
export function eccStorageTemplate(curve: EccCurveName = "p256", options: TemplateOptions = {}): EccPublic {
  const t = "eccStorageTemplate";
  return ecc(options, baseAttrs(options, A.SENSITIVEDATAORIGIN | A.RESTRICTED | A.DECRYPT), curveOf(curve, t).id, { ...AES_128_CFB }, { ...SCHEME_NULL }, t);
}

/** Options of the signing templates. */
export interface SigningTemplateOptions extends TemplateOptions {
  /**
   * A restricted signing key (an attestation key): it signs only digests the TPM computed itself
   * or checked with a TPMT_TK_HASHCHECK ticket (Part 1 §25.2.2). Default false.
   */
  restricted?: boolean;
}

/** An RSA signing key with RSASSA-PKCS1-v1_5 SHA-256 (Part 2 §11.2.4); `restricted` makes it an attestation key. */
export function rsaSigningTemplate(bits: RsaKeyBits = 2048, options: SigningTemplateOptions = {}): RsaPublic {
  const t = "rsaSigningTemplate";
  const attrs = baseAttrs(options, A.SENSITIVEDATAORIGIN | A.SIGN_ENCRYPT | (options.restricted ? A.RESTRICTED : 0));
  return rsa(options, attrs, rsaBits(bits, t), { ...SYM_NULL }, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }, t);
}

/** An ECC signing key with ECDSA SHA-256 (Part 2 §11.2.5); `restricted` makes it an attestation key. */
export function eccSigningTemplate(curve: EccCurveName = "p256", options: SigningTemplateOptions = {}): EccPublic {
  const t = "eccSigningTemplate";
  const attrs = baseAttrs(options, A.SENSITIVEDATAORIGIN | A.SIGN_ENCRYPT | (options.restricted ? A.RESTRICTED : 0));
  return ecc(options, attrs, curveOf(curve, t).id, { ...SYM_NULL }, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }, t);
}

/** A keyed-hash (HMAC) key with the HMAC scheme (Part 2 §11.1.19, §12.2.3.3); the TPM generates the key bits. */
export function hmacKeyTemplate(hashAlg: HashAlgName = "sha256", options: TemplateOptions = {}): KeyedHashPublic {
  const t = "hmacKeyTemplate";
  if (!Object.hasOwn(HASH_ALGS, hashAlg)) throw new TpmArgumentError(`${t}: hashAlg must be one of ${Object.keys(HASH_ALGS).join(", ")}, got ${String(hashAlg)}`);
  return { type: TPM_ALG.KEYEDHASH, nameAlg: nameAlgOf(options, t), objectAttributes: baseAttrs(options, A.SENSITIVEDATAORIGIN | A.SIGN_ENCRYPT), authPolicy: options.authPolicy ?? EMPTY, scheme: { scheme: TPM_ALG.HMAC, hashAlg: HASH_ALGS[hashAlg].id }, unique: EMPTY };
}

/**
 * A sealed data object: a keyed-hash object with scheme TPM_ALG_NULL and neither sign nor decrypt
 * (Part 1 §25.4; Part 2 §12.2.3.3); the caller supplies the data (`create`'s `data`) so
 * sensitiveDataOrigin is clear. Read it back with TPM2_Unseal.
 */
export function sealedDataTemplate(options: TemplateOptions = {}): KeyedHashPublic {
  const t = "sealedDataTemplate";
  return { type: TPM_ALG.KEYEDHASH, nameAlg: nameAlgOf(options, t), objectAttributes: baseAttrs(options, 0), authPolicy: options.authPolicy ?? EMPTY, scheme: { ...SCHEME_NULL }, unique: EMPTY };
}

/**
 * The standard EK authPolicy: TPM2_PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256 (TCG EK
 * Credential Profile 2.x §B.6, "PolicyA").
 */
export const EK_POLICY_SHA256: Uint8Array = /* @__PURE__ */ hexBytes("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");

/** TPMA_OBJECT of the low-range EK templates: fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt (0x000300b2). */
const EK_ATTRS = (A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.ADMINWITHPOLICY | A.RESTRICTED | A.DECRYPT) >>> 0;

/**
 * The TCG RSA 2048 EK template "L-1" (TCG EK Credential Profile 2.x §B.3.3, Template L-1): SHA-256
 * name, attributes 0x000300b2, the {@link EK_POLICY_SHA256} policy, AES-128-CFB, no scheme,
 * exponent 0 and a unique field of 256 zero bytes.
 */
export function ekRsa2048Template(): RsaPublic {
  return { type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: EK_ATTRS, authPolicy: EK_POLICY_SHA256.slice(), symmetric: { ...AES_128_CFB }, scheme: { ...SCHEME_NULL }, keyBits: 2048, exponent: 0, unique: new Uint8Array(256) };
}

/**
 * The TCG ECC NIST P-256 EK template "L-2" (TCG EK Credential Profile 2.x §B.3.4, Template L-2):
 * as L-1 but ECC P-256, KDF TPM_ALG_NULL and x and y of 32 zero bytes each.
 */
export function ekEccP256Template(): EccPublic {
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRS,
    authPolicy: EK_POLICY_SHA256.slice(),
    symmetric: { ...AES_128_CFB },
    scheme: { ...SCHEME_NULL },
    curveId: TPM_ECC_CURVE.NIST_P256,
    kdf: { ...SCHEME_NULL },
    unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
  };
}

/** TPMA_OBJECT of the SRK templates: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, noDA, restricted, decrypt (0x00030472). */
const SRK_ATTRS = (A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.RESTRICTED | A.DECRYPT) >>> 0;

/**
 * The RSA 2048 SRK template (TCG TPM v2.0 Provisioning Guidance §7.5.1): SHA-256 name, attributes
 * 0x00030472 (userWithAuth, noDA, restricted decrypt), empty authPolicy, AES-128-CFB, no scheme,
 * exponent 0, empty unique. Create it in the owner hierarchy with empty auth; persist it at
 * 0x81000001.
 */
export function srkRsa2048Template(): RsaPublic {
  return { type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: SRK_ATTRS, authPolicy: EMPTY, symmetric: { ...AES_128_CFB }, scheme: { ...SCHEME_NULL }, keyBits: 2048, exponent: 0, unique: EMPTY };
}

/** The ECC NIST P-256 SRK template (TCG TPM v2.0 Provisioning Guidance §7.5.1): as the RSA one, on P-256 with KDF TPM_ALG_NULL. */
export function srkEccP256Template(): EccPublic {
  return { type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: SRK_ATTRS, authPolicy: EMPTY, symmetric: { ...AES_128_CFB }, scheme: { ...SCHEME_NULL }, curveId: TPM_ECC_CURVE.NIST_P256, kdf: { ...SCHEME_NULL }, unique: { x: EMPTY, y: EMPTY } };
}

/** A public key in the forms node:crypto and WebCrypto take. */
export interface CryptoPublicKey {
  /** node:crypto public KeyObject (`crypto.verify`, `publicEncrypt`, ...). */
  keyObject: KeyObject;
  /** The JWK (RFC 7517): `crypto.subtle.importKey("jwk", jwk, ...)`. */
  jwk: JsonWebKey;
}

/**
 * The public key of an RSA or ECC public area (TPMT_PUBLIC, Part 2 §12.2.4) as a node:crypto
 * KeyObject and a JWK: RSA from the modulus (`unique.rsa`) and exponent (0 means 65537, Part 2
 * §12.2.3.5); ECC from the point x, y on NIST P-256, P-384 or P-521 (coordinates left-padded to the
 * field size).
 *
 * @throws {@link TpmFormatError} for a keyed-hash or symmetric object, an unknown curve, an empty
 *   modulus or a point whose coordinates are longer than the curve's field.
 */
export function publicKeyToCrypto(pub: TpmtPublic): CryptoPublicKey {
  const jwk = publicKeyJwk(pub);
  const nc = nodeCrypto();
  return { keyObject: nc.createPublicKey({ key: jwk, format: "jwk" }), jwk };
}

/** The JWK of an RSA or ECC public area (what {@link publicKeyToCrypto} builds its KeyObject from). */
export function publicKeyJwk(pub: TpmtPublic): JsonWebKey {
  if (typeof pub !== "object" || pub === null) throw new TpmArgumentError("publicKeyToCrypto: pub must be a TPMT_PUBLIC object");
  if (pub.type === TPM_ALG.RSA) {
    if (pub.unique.length === 0) throw new TpmFormatError("publicKeyToCrypto: the RSA modulus (unique) is empty");
    if (pub.keyBits && pub.unique.length * 8 !== pub.keyBits) throw new TpmFormatError(`publicKeyToCrypto: the RSA modulus is ${pub.unique.length * 8} bits, keyBits says ${pub.keyBits}`);
    const e = pub.exponent === 0 ? 65537 : pub.exponent;
    const eb = trimZeros(new Uint8Array([(e >>> 24) & 0xff, (e >>> 16) & 0xff, (e >>> 8) & 0xff, e & 0xff]));
    return { kty: "RSA", n: b64url(trimZeros(pub.unique)), e: b64url(eb) };
  }
  if (pub.type === TPM_ALG.ECC) {
    const c = pub.curveId === TPM_ECC_CURVE.NIST_P256 ? CURVES.p256 : pub.curveId === TPM_ECC_CURVE.NIST_P384 ? CURVES.p384 : pub.curveId === TPM_ECC_CURVE.NIST_P521 ? { bytes: 66, crv: "P-521" } : undefined;
    if (!c) throw new TpmFormatError(`publicKeyToCrypto: curve 0x${pub.curveId.toString(16).padStart(4, "0")} is not a NIST curve WebCrypto knows`);
    return { kty: "EC", crv: c.crv, x: b64url(leftPad(pub.unique.x, c.bytes, "x")), y: b64url(leftPad(pub.unique.y, c.bytes, "y")) };
  }
  throw new TpmFormatError(`publicKeyToCrypto: object type 0x${(pub as { type: number }).type.toString(16).padStart(4, "0")} has no public key (only RSA and ECC do)`);
}

/**
 * node:crypto, reached without a static import so the typed client stays loadable where there is
 * no Node (the same pattern as the trace channel).
 *
 * @internal
 */
export function nodeCrypto(): typeof import("node:crypto") {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const m = p?.getBuiltinModule?.("node:crypto") as typeof import("node:crypto") | undefined;
  if (!m) throw new TpmFormatError("node:crypto is not available here (a KeyObject needs Node 20.16 or later); use the JWK with WebCrypto instead");
  return m;
}

/**
 * H_alg(data) for a TPM_ALG hash id (SHA-1, SHA-256, SHA-384, SHA-512), or undefined for another.
 * Through node:crypto (reached without a static import, as `nodeCrypto` does), so importing the typed client does not
 * pull a hash implementation into an application's bundle.
 *
 * @internal
 */
export function hashById(alg: number, data: Uint8Array): Uint8Array | undefined {
  const name = alg === TPM_ALG.SHA1 ? "sha1" : alg === TPM_ALG.SHA256 ? "sha256" : alg === TPM_ALG.SHA384 ? "sha384" : alg === TPM_ALG.SHA512 ? "sha512" : undefined;
  if (!name) return undefined;
  return new Uint8Array(nodeCrypto().createHash(name).update(data).digest());
}

function leftPad(b: Uint8Array, n: number, what: string): Uint8Array {
  if (b.length > n) throw new TpmFormatError(`publicKeyToCrypto: ECC ${what} is ${b.length} bytes, the curve's field is ${n}`);
  if (b.length === n) return b;
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

function trimZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function b64url(b: Uint8Array): string {
  let s = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const v = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    s += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + B64[v & 63]!;
  }
  if (b.length - i === 1) {
    const v = b[i]! << 16;
    s += B64[v >> 18]! + B64[(v >> 12) & 63]!;
  } else if (b.length - i === 2) {
    const v = (b[i]! << 16) | (b[i + 1]! << 8);
    s += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]!;
  }
  return s;
}

function hexBytes(h: string): Uint8Array {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}
