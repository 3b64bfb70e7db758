/**
 * Object structures of the TPM 2.0 wire format (TPM 2.0 Library Part 2, rev 1.59): public and
 * sensitive areas (§12.2–§12.3), symmetric definitions and schemes (§11.1–§11.2), signatures
 * (§11.3.4), tickets (§10.7), creation data (§15.1) and saved contexts (§14). Each has a reader
 * over a {@link TpmReader} and a writer into a {@link TpmWriter}; every selector and size is
 * checked, and bad input throws {@link TpmFormatError}.
 *
 * @packageDocumentation
 */
import { TpmFormatError } from "../errors/index.js";
import { TpmReader, TpmWriter } from "./buffer.js";
import { TPM_ALG, TPM_ST } from "./constants.js";
import { type PcrSelect, digestSize, hashName, readPcrSelection, writePcrSelection } from "./types.js";

/** Largest TPM2B_DIGEST (sizeof(TPMU_HA), SHA-512). */
export const MAX_DIGEST_BYTES = 64;
/** Largest RSA modulus in TPM2B_PUBLIC_KEY_RSA (MAX_RSA_KEY_BYTES, 4096-bit). */
export const MAX_RSA_KEY_BYTES = 512;
/** Largest ECC coordinate (MAX_ECC_KEY_BYTES, P-521). */
export const MAX_ECC_KEY_BYTES = 66;
/** Largest TPM2B_SENSITIVE_DATA (MAX_SYM_DATA). */
export const MAX_SYM_DATA = 128;
/** Largest TPM2B_SYM_KEY (MAX_SYM_KEY_BYTES, AES-256). */
export const MAX_SYM_KEY_BYTES = 32;
/** Largest TPM2B_CONTEXT_DATA (sizeof(TPMS_CONTEXT_DATA) bound; libtpms: 2 KiB and more). */
export const MAX_CONTEXT_SIZE = 5120;

/** TPMT_SYM_DEF(_OBJECT) (Part 2 §11.1.6–§11.1.7): TPM_ALG_NULL has no keyBits and mode. */
export interface SymDef {
  algorithm: number;
  /** Key size in bits; 0 for TPM_ALG_NULL (XOR: the hash algorithm). */
  keyBits: number;
  /** Block mode; TPM_ALG_NULL for TPM_ALG_NULL and XOR. */
  mode: number;
}

/** The NULL symmetric definition. */
export const SYM_NULL: SymDef = Object.freeze({ algorithm: TPM_ALG.NULL, keyBits: 0, mode: TPM_ALG.NULL });

/**
 * A signing, encryption, key-exchange or keyed-hash scheme (TPMT_RSA_SCHEME, TPMT_ECC_SCHEME,
 * TPMT_KEYEDHASH_SCHEME, TPMT_KDF_SCHEME, TPMT_SIG_SCHEME; Part 2 §11.2). `hashAlg` is 0 when
 * the scheme is TPM_ALG_NULL or has no hash (RSAES); `count` is ECDAA's; `kdf` is XOR's.
 */
export interface Scheme {
  scheme: number;
  hashAlg: number;
  count?: number;
  kdf?: number;
}

/** The NULL scheme. */
export const SCHEME_NULL: Scheme = Object.freeze({ scheme: TPM_ALG.NULL, hashAlg: 0 });

/** The fields every TPMT_PUBLIC has, whatever its type (Part 2 §12.2.4). */
export interface PublicBase {
  nameAlg: number;
  /** TPMA_OBJECT. */
  objectAttributes: number;
  authPolicy: Uint8Array;
}

/** An RSA public area: TPMS_RSA_PARMS (Part 2 §12.2.3.5) and the modulus. */
export interface RsaPublic extends PublicBase {
  type: typeof TPM_ALG.RSA;
  symmetric: SymDef;
  scheme: Scheme;
  keyBits: number;
  /** 0 means the default 65537. */
  exponent: number;
  unique: Uint8Array;
}

/** An ECC public area: TPMS_ECC_PARMS (Part 2 §12.2.3.6) and the point. */
export interface EccPublic extends PublicBase {
  type: typeof TPM_ALG.ECC;
  symmetric: SymDef;
  scheme: Scheme;
  curveId: number;
  kdf: Scheme;
  unique: { x: Uint8Array; y: Uint8Array };
}

/** A keyed-hash public area (HMAC key or sealed data): TPMS_KEYEDHASH_PARMS (Part 2 §12.2.3.3). */
export interface KeyedHashPublic extends PublicBase {
  type: typeof TPM_ALG.KEYEDHASH;
  scheme: Scheme;
  /** H(seedValue ‖ sensitive data). */
  unique: Uint8Array;
}

/** A symmetric-cipher public area: TPMS_SYMCIPHER_PARMS (Part 2 §12.2.3.4). */
export interface SymCipherPublic extends PublicBase {
  type: typeof TPM_ALG.SYMCIPHER;
  symmetric: SymDef;
  unique: Uint8Array;
}

/** TPMT_PUBLIC, Part 2 §12.2.4. */
export type TpmtPublic = RsaPublic | EccPublic | KeyedHashPublic | SymCipherPublic;

/** TPMT_SENSITIVE, Part 2 §12.3.2.4: `sensitive` is the TPMU_SENSITIVE_COMPOSITE TPM2B (RSA prime p, ECC d, bits, sym key). */
export interface TpmtSensitive {
  sensitiveType: number;
  authValue: Uint8Array;
  seedValue: Uint8Array;
  sensitive: Uint8Array;
}

/** TPMS_SENSITIVE_CREATE, Part 2 §11.1.15. */
export interface SensitiveCreate {
  userAuth: Uint8Array;
  data: Uint8Array;
}

/** TPMT_SIGNATURE, Part 2 §11.3.4: RSA signatures carry `sig`, ECC ones `r` and `s`, HMAC `sig` (the digest). */
export interface TpmtSignature {
  sigAlg: number;
  hash: number;
  sig?: Uint8Array;
  r?: Uint8Array;
  s?: Uint8Array;
}

/** TPMT_TK_CREATION / TK_VERIFIED / TK_HASHCHECK / TK_AUTH, Part 2 §10.7. */
export interface Ticket {
  tag: number;
  hierarchy: number;
  digest: Uint8Array;
}

/** TPMS_CREATION_DATA, Part 2 §15.1. */
export interface CreationData {
  pcrSelect: PcrSelect[];
  pcrDigest: Uint8Array;
  locality: number;
  parentNameAlg: number;
  parentName: Uint8Array;
  parentQualifiedName: Uint8Array;
  outsideInfo: Uint8Array;
}

/** TPMS_CONTEXT, Part 2 §14.5. */
export interface TpmsContext {
  sequence: bigint;
  savedHandle: number;
  hierarchy: number;
  contextBlob: Uint8Array;
}

const ASYM_SIGN = new Set<number>([TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR]);

function hex16(v: number): string {
  return `0x${v.toString(16).padStart(4, "0")}`;
}

function needHash(alg: number, what: string): void {
  if (hashName(alg) === undefined) throw new TpmFormatError(`${what}: hash algorithm ${hex16(alg)} is not a known hash`);
}

/** Reads TPMT_SYM_DEF_OBJECT (`xor` true: TPMT_SYM_DEF, where XOR is allowed too). */
export function readSymDef(r: TpmReader, xor = false): SymDef {
  const algorithm = r.u16("symmetric.algorithm");
  if (algorithm === TPM_ALG.NULL) return { ...SYM_NULL };
  if (xor && algorithm === TPM_ALG.XOR) {
    const h = r.u16("symmetric.keyBits");
    needHash(h, "symmetric XOR");
    return { algorithm, keyBits: h, mode: TPM_ALG.NULL };
  }
  if (algorithm !== TPM_ALG.AES && algorithm !== TPM_ALG.SM4 && algorithm !== TPM_ALG.CAMELLIA && algorithm !== TPM_ALG.TDES) {
    throw new TpmFormatError(`symmetric.algorithm ${hex16(algorithm)} is not a block cipher`);
  }
  const keyBits = r.u16("symmetric.keyBits");
  const mode = r.u16("symmetric.mode");
  if (![TPM_ALG.CFB, TPM_ALG.CTR, TPM_ALG.OFB, TPM_ALG.CBC, TPM_ALG.ECB, TPM_ALG.NULL].includes(mode as 0x43)) {
    throw new TpmFormatError(`symmetric.mode ${hex16(mode)} is not a block mode`);
  }
  return { algorithm, keyBits, mode };
}

/** Writes TPMT_SYM_DEF(_OBJECT). */
export function writeSymDef(w: TpmWriter, s: SymDef): void {
  w.u16(s.algorithm);
  if (s.algorithm === TPM_ALG.NULL) return;
  w.u16(s.keyBits);
  if (s.algorithm !== TPM_ALG.XOR) w.u16(s.mode);
}

/**
 * Reads a scheme whose selector is one of `allowed` (TPM_ALG_NULL is always allowed): every
 * scheme but NULL and RSAES carries a hash, ECDAA a count, XOR a KDF (Part 2 §11.2).
 */
export function readScheme(r: TpmReader, allowed: readonly number[], what: string): Scheme {
  const scheme = r.u16(`${what}.scheme`);
  if (scheme === TPM_ALG.NULL) return { ...SCHEME_NULL };
  if (!allowed.includes(scheme)) throw new TpmFormatError(`${what}: scheme ${hex16(scheme)} is not allowed here`);
  if (scheme === TPM_ALG.RSAES) return { scheme, hashAlg: 0 };
  const hashAlg = r.u16(`${what}.hashAlg`);
  needHash(hashAlg, what);
  if (scheme === TPM_ALG.ECDAA) return { scheme, hashAlg, count: r.u16(`${what}.count`) };
  if (scheme === TPM_ALG.XOR) {
    const kdf = r.u16(`${what}.kdf`);
    if (kdf !== TPM_ALG.KDF1_SP800_108 && kdf !== TPM_ALG.KDF1_SP800_56A && kdf !== TPM_ALG.KDF2 && kdf !== TPM_ALG.NULL) {
      throw new TpmFormatError(`${what}: kdf ${hex16(kdf)} is not a KDF`);
    }
    return { scheme, hashAlg, kdf };
  }
  return { scheme, hashAlg };
}

/** Writes a scheme (see {@link readScheme}). */
export function writeScheme(w: TpmWriter, s: Scheme): void {
  w.u16(s.scheme);
  if (s.scheme === TPM_ALG.NULL || s.scheme === TPM_ALG.RSAES) return;
  w.u16(s.hashAlg);
  if (s.scheme === TPM_ALG.ECDAA) w.u16(s.count ?? 0);
  if (s.scheme === TPM_ALG.XOR) w.u16(s.kdf ?? TPM_ALG.NULL);
}

/** TPMI_ALG_RSA_SCHEME (Part 2 §11.2.4.1). */
export const RSA_SCHEMES: readonly number[] = [TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.RSAES, TPM_ALG.OAEP];
/** TPMI_ALG_ECC_SCHEME (Part 2 §11.2.5.4). */
export const ECC_SCHEMES: readonly number[] = [TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR, TPM_ALG.ECDH, TPM_ALG.ECMQV];
/** TPMI_ALG_KEYEDHASH_SCHEME (Part 2 §11.1.19). */
export const KEYEDHASH_SCHEMES: readonly number[] = [TPM_ALG.HMAC, TPM_ALG.XOR];
/** TPMI_ALG_KDF (Part 2 §9.31). */
export const KDF_SCHEMES: readonly number[] = [TPM_ALG.KDF1_SP800_56A, TPM_ALG.KDF2, TPM_ALG.KDF1_SP800_108];

/** Reads TPMT_PUBLIC (Part 2 §12.2.4). */
export function readPublic(r: TpmReader): TpmtPublic {
  const type = r.u16("public.type");
  const nameAlg = r.u16("public.nameAlg");
  if (nameAlg !== TPM_ALG.NULL) needHash(nameAlg, "public.nameAlg");
  const objectAttributes = r.u32("public.objectAttributes");
  const authPolicy = r.tpm2b("public.authPolicy", MAX_DIGEST_BYTES).slice();
  const base = { nameAlg, objectAttributes, authPolicy };
  switch (type) {
    case TPM_ALG.RSA: {
      const symmetric = readSymDef(r);
      const scheme = readScheme(r, RSA_SCHEMES, "rsa.scheme");
      const keyBits = r.u16("rsa.keyBits");
      const exponent = r.u32("rsa.exponent");
      const unique = r.tpm2b("rsa.unique", MAX_RSA_KEY_BYTES).slice();
      return { type, ...base, symmetric, scheme, keyBits, exponent, unique };
    }
    case TPM_ALG.ECC: {
      const symmetric = readSymDef(r);
      const scheme = readScheme(r, ECC_SCHEMES, "ecc.scheme");
      const curveId = r.u16("ecc.curveID");
      const kdf = readScheme(r, KDF_SCHEMES, "ecc.kdf");
      const x = r.tpm2b("ecc.unique.x", MAX_ECC_KEY_BYTES).slice();
      const y = r.tpm2b("ecc.unique.y", MAX_ECC_KEY_BYTES).slice();
      return { type, ...base, symmetric, scheme, curveId, kdf, unique: { x, y } };
    }
    case TPM_ALG.KEYEDHASH: {
      const scheme = readScheme(r, KEYEDHASH_SCHEMES, "keyedHash.scheme");
      const unique = r.tpm2b("keyedHash.unique", MAX_DIGEST_BYTES).slice();
      return { type, ...base, scheme, unique };
    }
    case TPM_ALG.SYMCIPHER: {
      const symmetric = readSymDef(r);
      if (symmetric.algorithm === TPM_ALG.NULL) throw new TpmFormatError("symCipher.sym may not be TPM_ALG_NULL");
      const unique = r.tpm2b("symCipher.unique", MAX_DIGEST_BYTES).slice();
      return { type, ...base, symmetric, unique };
    }
    default:
      throw new TpmFormatError(`public.type ${hex16(type)} is not an object type`);
  }
}

/** Writes TPMT_PUBLIC (Part 2 §12.2.4). */
export function writePublic(w: TpmWriter, p: TpmtPublic): void {
  w.u16(p.type).u16(p.nameAlg).u32(p.objectAttributes >>> 0).tpm2b(p.authPolicy);
  switch (p.type) {
    case TPM_ALG.RSA:
      writeSymDef(w, p.symmetric);
      writeScheme(w, p.scheme);
      w.u16(p.keyBits).u32(p.exponent >>> 0).tpm2b(p.unique);
      return;
    case TPM_ALG.ECC:
      writeSymDef(w, p.symmetric);
      writeScheme(w, p.scheme);
      w.u16(p.curveId);
      writeScheme(w, p.kdf);
      w.tpm2b(p.unique.x).tpm2b(p.unique.y);
      return;
    case TPM_ALG.KEYEDHASH:
      writeScheme(w, p.scheme);
      w.tpm2b(p.unique);
      return;
    case TPM_ALG.SYMCIPHER:
      writeSymDef(w, p.symmetric);
      w.tpm2b(p.unique);
      return;
  }
}

/** The bytes of TPMT_PUBLIC (what an object's Name hashes). */
export function marshalPublic(p: TpmtPublic): Uint8Array {
  const w = new TpmWriter(128);
  writePublic(w, p);
  return w.finish();
}

/** Reads TPM2B_PUBLIC: the size must equal the bytes TPMT_PUBLIC took (Part 2 §12.2.5). */
export function readPublic2b(r: TpmReader): TpmtPublic {
  const size = r.u16("TPM2B_PUBLIC.size");
  if (size === 0) throw new TpmFormatError("TPM2B_PUBLIC is empty");
  const inner = new TpmReader(r.bytesN(size, "TPM2B_PUBLIC"));
  const p = readPublic(inner);
  inner.expectEnd("TPM2B_PUBLIC");
  return p;
}

/** Writes TPM2B_PUBLIC. */
export function writePublic2b(w: TpmWriter, p: TpmtPublic): void {
  w.tpm2b(marshalPublic(p));
}

/** Reads TPMT_SENSITIVE (Part 2 §12.3.2.4). */
export function readSensitive(r: TpmReader): TpmtSensitive {
  const sensitiveType = r.u16("sensitive.sensitiveType");
  if (sensitiveType !== TPM_ALG.RSA && sensitiveType !== TPM_ALG.ECC && sensitiveType !== TPM_ALG.KEYEDHASH && sensitiveType !== TPM_ALG.SYMCIPHER) {
    throw new TpmFormatError(`sensitive.sensitiveType ${hex16(sensitiveType)} is not an object type`);
  }
  const authValue = r.tpm2b("sensitive.authValue", MAX_DIGEST_BYTES).slice();
  const seedValue = r.tpm2b("sensitive.seedValue", MAX_DIGEST_BYTES).slice();
  const max = sensitiveType === TPM_ALG.RSA ? MAX_RSA_KEY_BYTES / 2 : sensitiveType === TPM_ALG.ECC ? MAX_ECC_KEY_BYTES : sensitiveType === TPM_ALG.KEYEDHASH ? MAX_SYM_DATA : MAX_SYM_KEY_BYTES;
  const sensitive = r.tpm2b("sensitive.sensitive", max).slice();
  return { sensitiveType, authValue, seedValue, sensitive };
}

/** Writes TPMT_SENSITIVE. */
export function writeSensitive(w: TpmWriter, s: TpmtSensitive): void {
  w.u16(s.sensitiveType).tpm2b(s.authValue).tpm2b(s.seedValue).tpm2b(s.sensitive);
}

/** Reads TPM2B_SENSITIVE (Part 2 §12.3.3): the size must match. */
export function readSensitive2b(r: TpmReader): TpmtSensitive {
  const size = r.u16("TPM2B_SENSITIVE.size");
  const inner = new TpmReader(r.bytesN(size, "TPM2B_SENSITIVE"));
  const s = readSensitive(inner);
  inner.expectEnd("TPM2B_SENSITIVE");
  return s;
}

/** Writes TPM2B_SENSITIVE. */
export function writeSensitive2b(w: TpmWriter, s: TpmtSensitive): void {
  const inner = new TpmWriter(64);
  writeSensitive(inner, s);
  w.tpm2b(inner.finish());
}

/** Reads TPM2B_SENSITIVE_CREATE (Part 2 §11.1.16); `maxData` bounds the data (MAX_SYM_DATA, or larger for derivation). */
export function readSensitiveCreate(r: TpmReader, maxData = MAX_SYM_DATA): SensitiveCreate {
  const size = r.u16("TPM2B_SENSITIVE_CREATE.size");
  const inner = new TpmReader(r.bytesN(size, "TPM2B_SENSITIVE_CREATE"));
  const userAuth = inner.tpm2b("sensitiveCreate.userAuth", MAX_DIGEST_BYTES).slice();
  const data = inner.tpm2b("sensitiveCreate.data", maxData).slice();
  inner.expectEnd("TPM2B_SENSITIVE_CREATE");
  return { userAuth, data };
}

/** Writes TPM2B_SENSITIVE_CREATE. */
export function writeSensitiveCreate(w: TpmWriter, s: SensitiveCreate): void {
  const inner = new TpmWriter(32);
  inner.tpm2b(s.userAuth).tpm2b(s.data);
  w.tpm2b(inner.finish());
}

/** Reads TPMT_SIGNATURE (Part 2 §11.3.4). */
export function readSignature(r: TpmReader): TpmtSignature {
  const sigAlg = r.u16("signature.sigAlg");
  if (sigAlg === TPM_ALG.NULL) return { sigAlg, hash: 0 };
  const hash = r.u16("signature.hash");
  needHash(hash, "signature");
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) return { sigAlg, hash, sig: r.tpm2b("signature.sig", MAX_RSA_KEY_BYTES).slice() };
  if (sigAlg === TPM_ALG.HMAC) {
    const n = digestSize(hash);
    return { sigAlg, hash, sig: r.bytesN(n, "signature.digest").slice() };
  }
  if (ASYM_SIGN.has(sigAlg)) {
    const rr = r.tpm2b("signature.r", MAX_ECC_KEY_BYTES).slice();
    const s = r.tpm2b("signature.s", MAX_ECC_KEY_BYTES).slice();
    return { sigAlg, hash, r: rr, s };
  }
  throw new TpmFormatError(`signature.sigAlg ${hex16(sigAlg)} is not a signature scheme`);
}

/** Writes TPMT_SIGNATURE. */
export function writeSignature(w: TpmWriter, s: TpmtSignature): void {
  w.u16(s.sigAlg);
  if (s.sigAlg === TPM_ALG.NULL) return;
  w.u16(s.hash);
  if (s.sigAlg === TPM_ALG.RSASSA || s.sigAlg === TPM_ALG.RSAPSS) w.tpm2b(s.sig ?? new Uint8Array(0));
  else if (s.sigAlg === TPM_ALG.HMAC) w.bytes(s.sig ?? new Uint8Array(0));
  else w.tpm2b(s.r ?? new Uint8Array(0)).tpm2b(s.s ?? new Uint8Array(0));
}

const TICKET_TAGS = new Set<number>([TPM_ST.CREATION, TPM_ST.VERIFIED, TPM_ST.HASHCHECK, TPM_ST.AUTH_SECRET, TPM_ST.AUTH_SIGNED]);

/** Reads a ticket; `tag` is the tag it must carry (TPM_ST_CREATION, _VERIFIED, _HASHCHECK, ...; Part 2 §10.7). */
export function readTicket(r: TpmReader, tag?: number): Ticket {
  const t = r.u16("ticket.tag");
  if (!TICKET_TAGS.has(t) || (tag !== undefined && t !== tag)) throw new TpmFormatError(`ticket.tag 0x${t.toString(16)} is not the expected ticket tag`);
  const hierarchy = r.u32("ticket.hierarchy");
  const digest = r.tpm2b("ticket.digest", MAX_DIGEST_BYTES).slice();
  return { tag: t, hierarchy, digest };
}

/** Writes a ticket. */
export function writeTicket(w: TpmWriter, t: Ticket): void {
  w.u16(t.tag).u32(t.hierarchy >>> 0).tpm2b(t.digest);
}

/** Reads TPMS_CREATION_DATA (Part 2 §15.1). */
export function readCreationData(r: TpmReader): CreationData {
  const pcrSelect = readPcrSelection(r);
  const pcrDigest = r.tpm2b("creationData.pcrDigest", MAX_DIGEST_BYTES).slice();
  const locality = r.u8("creationData.locality");
  const parentNameAlg = r.u16("creationData.parentNameAlg");
  const parentName = r.tpm2b("creationData.parentName", MAX_DIGEST_BYTES + 2).slice();
  const parentQualifiedName = r.tpm2b("creationData.parentQualifiedName", MAX_DIGEST_BYTES + 2).slice();
  const outsideInfo = r.tpm2b("creationData.outsideInfo", MAX_DIGEST_BYTES).slice();
  return { pcrSelect, pcrDigest, locality, parentNameAlg, parentName, parentQualifiedName, outsideInfo };
}

/** Writes TPMS_CREATION_DATA. */
export function writeCreationData(w: TpmWriter, c: CreationData): void {
  writePcrSelection(w, c.pcrSelect);
  w.tpm2b(c.pcrDigest).u8(c.locality).u16(c.parentNameAlg).tpm2b(c.parentName).tpm2b(c.parentQualifiedName).tpm2b(c.outsideInfo);
}

/** Reads TPMS_CONTEXT (Part 2 §14.5). */
export function readContext(r: TpmReader): TpmsContext {
  const sequence = r.u64("context.sequence");
  const savedHandle = r.u32("context.savedHandle");
  const hierarchy = r.u32("context.hierarchy");
  const contextBlob = r.tpm2b("context.contextBlob", MAX_CONTEXT_SIZE).slice();
  return { sequence, savedHandle, hierarchy, contextBlob };
}

/** Writes TPMS_CONTEXT. */
export function writeContext(w: TpmWriter, c: TpmsContext): void {
  w.u64(c.sequence).u32(c.savedHandle >>> 0).u32(c.hierarchy >>> 0).tpm2b(c.contextBlob);
}

/**
 * An object's Name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC) (Part 1 §16; Part 2 §12.2.4). A nameAlg of
 * TPM_ALG_NULL gives the empty Name. The wire layer holds no hash functions: `hash` computes
 * H_nameAlg and must return the digest of that algorithm's size.
 */
export function objectName(p: TpmtPublic, hash: (alg: number, data: Uint8Array) => Uint8Array): Uint8Array {
  if (p.nameAlg === TPM_ALG.NULL) return new Uint8Array(0);
  needHash(p.nameAlg, "objectName");
  const d = hash(p.nameAlg, marshalPublic(p));
  if (d.length !== digestSize(p.nameAlg)) throw new TpmFormatError(`objectName: digest of ${d.length} bytes for nameAlg ${hex16(p.nameAlg)}`);
  const out = new Uint8Array(2 + d.length);
  out[0] = p.nameAlg >>> 8;
  out[1] = p.nameAlg & 0xff;
  out.set(d, 2);
  return out;
}
