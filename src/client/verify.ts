/**
 * Attestation on the caller's side, without a TPM: {@link verifyQuote} checks a TPM2_Quote (TPM 2.0
 * Part 3 §18.4; the TPMS_ATTEST of Part 2 §10.12.12) field by field,
 * failing closed on every one (the class of CVE-2024-29040, where a verifier trusted a quote
 * whose attestation type or magic it never checked).
 *
 * @packageDocumentation
 */
import type { KeyObject } from "node:crypto";
import { TpmkitError } from "../errors/index.js";
import { unmarshalAttest, type TpmsAttest } from "../wire/attest.js";
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "../wire/constants.js";
import type { TpmtPublic, TpmtSignature } from "../wire/structures.js";
import { HASH_ALGS, digestSize, hashName, type HashAlgName } from "../wire/types.js";
import { hashById, nodeCrypto, publicKeyToCrypto } from "./templates.js";
import { constantTimeEqual } from "../wire/bytes.js";

/** The field of a quote that failed verification. */
export type QuoteField = "format" | "magic" | "type" | "extraData" | "pcrSelect" | "pcrs" | "pcrDigest" | "signature.sigAlg" | "signature.hash" | "signature";

/** A quote failed verification; `field` names the first field that did not check out. */
export class QuoteVerificationError extends TpmkitError {
  static override readonly errorName: string = "QuoteVerificationError";
  /** The field that failed. */
  readonly field: QuoteField;
  constructor(field: QuoteField, message: string, options?: { cause?: unknown }) {
    super("QUOTE_VERIFICATION", `quote ${field}: ${message}`, options);
    this.field = field;
  }
}

/** Expected PCR values per bank: `{ sha256: { 0: Uint8Array, 7: Uint8Array } }`. */
export type ExpectedPcrs = Partial<Record<HashAlgName, Record<number, Uint8Array>>>;

/** What {@link verifyQuote} checks. */
export interface VerifyQuoteOptions {
  /** The quoted TPMS_ATTEST bytes (the content of TPM2B_ATTEST `quoted`). */
  quoted: Uint8Array;
  /** The TPMT_SIGNATURE over it. */
  signature: TpmtSignature;
  /** The attestation key: its TPMT_PUBLIC (from the TPM) or a node:crypto public KeyObject. */
  publicKey: TpmtPublic | KeyObject;
  /** The nonce the verifier sent as qualifyingData; extraData must equal it. */
  nonce: Uint8Array;
  /** The PCR values the verifier expects; their selection must be exactly the quote's. */
  pcrs: ExpectedPcrs;
}


function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

const NODE_HASH: Record<number, string> = { [TPM_ALG.SHA1]: "sha1", [TPM_ALG.SHA256]: "sha256", [TPM_ALG.SHA384]: "sha384", [TPM_ALG.SHA512]: "sha512" };

function isKeyObject(k: unknown): k is KeyObject {
  return typeof k === "object" && k !== null && typeof (k as KeyObject).asymmetricKeyType === "string" && typeof (k as KeyObject).export === "function";
}

/**
 * Checks a TPM2_Quote (Part 3 §18.4) on the caller's side, without a TPM, and returns the parsed
 * attestation. In order, each failure a {@link QuoteVerificationError} naming the field:
 * magic is TPM_GENERATED_VALUE 0xff544347 (`magic`); type is TPM_ST_ATTEST_QUOTE 0x8018
 * (`type`); the structure parses, with no bytes left over (`format`); extraData equals `nonce` (`extraData`); the quote selects
 * exactly the PCRs of `pcrs`, no bank twice (`pcrSelect`; `pcrs` when an expected value has the
 * wrong size); pcrDigest is H(the expected values concatenated in the quote's selection order),
 * H being the signature's hash (Part 3 §18.4.1) (`pcrDigest`); the signature scheme suits the key
 * (RSASSA or RSAPSS for RSA, ECDSA for ECC, and the key's own scheme when its public area names
 * one) (`signature.sigAlg`, `signature.hash`); and the signature verifies over H(quoted)
 * (`signature`).
 *
 * @throws {@link QuoteVerificationError}
 */
export function verifyQuote(o: VerifyQuoteOptions): TpmsAttest & { type: typeof TPM_ST.ATTEST_QUOTE } {
  if (typeof o !== "object" || o === null) throw new QuoteVerificationError("format", "options must be an object");
  if (!(o.quoted instanceof Uint8Array)) throw new QuoteVerificationError("format", "quoted must be a Uint8Array");
  if (!(o.nonce instanceof Uint8Array)) throw new QuoteVerificationError("extraData", "nonce must be a Uint8Array");
  if (o.quoted.length < 6) throw new QuoteVerificationError("format", `${o.quoted.length} bytes is shorter than a TPMS_ATTEST's magic and type`);
  const v = new DataView(o.quoted.buffer, o.quoted.byteOffset, o.quoted.length);
  const magic = v.getUint32(0);
  if (magic !== TPM_GENERATED_VALUE) throw new QuoteVerificationError("magic", `0x${magic.toString(16)} is not TPM_GENERATED_VALUE 0xff544347`);
  const type = v.getUint16(4);
  if (type !== TPM_ST.ATTEST_QUOTE) throw new QuoteVerificationError("type", `0x${type.toString(16)} is not TPM_ST_ATTEST_QUOTE 0x8018`);
  let a: TpmsAttest;
  try {
    a = unmarshalAttest(o.quoted);
  } catch (e) {
    throw new QuoteVerificationError("format", e instanceof Error ? e.message : String(e), { cause: e });
  }
  if (a.type !== TPM_ST.ATTEST_QUOTE) throw new QuoteVerificationError("type", `0x${a.type.toString(16)} is not TPM_ST_ATTEST_QUOTE 0x8018`);
  if (!constantTimeEqual(a.extraData, o.nonce)) throw new QuoteVerificationError("extraData", `${hex(a.extraData)} is not the nonce ${hex(o.nonce)}`);

  // The selection: exactly the expected banks and indices.
  const sel = a.attested.pcrSelect;
  const seen = new Set<number>();
  const expectedBanks = Object.entries(o.pcrs ?? {}).filter(([, v]) => v !== undefined && Object.keys(v).length > 0);
  for (const s of sel) {
    const name = hashName(s.hash);
    if (seen.has(s.hash)) throw new QuoteVerificationError("pcrSelect", `bank 0x${s.hash.toString(16)} is selected twice`);
    seen.add(s.hash);
    if (s.pcrs.length === 0) continue;
    const want = name ? o.pcrs[name] : undefined;
    const wantIdx = want ? Object.keys(want).map(Number).sort((x, y) => x - y) : [];
    if (!name || wantIdx.join(",") !== s.pcrs.join(",")) {
      throw new QuoteVerificationError("pcrSelect", `bank ${name ?? "0x" + s.hash.toString(16)} selects PCRs [${s.pcrs.join(",")}], expected [${wantIdx.join(",")}]`);
    }
  }
  for (const [bank] of expectedBanks) {
    const id = HASH_ALGS[bank as HashAlgName]?.id;
    if (id === undefined) throw new QuoteVerificationError("pcrs", `unknown bank ${bank}`);
    if (!sel.some((s) => s.hash === id && s.pcrs.length > 0)) throw new QuoteVerificationError("pcrSelect", `the quote does not select bank ${bank}`);
  }

  // The signature's scheme and hash, then the PCR digest under that hash.
  const sig = o.signature;
  if (typeof sig !== "object" || sig === null) throw new QuoteVerificationError("signature", "signature must be a TPMT_SIGNATURE");
  const nodeHash = NODE_HASH[sig.hash];
  if (!nodeHash) throw new QuoteVerificationError("signature.hash", `hash 0x${(sig.hash ?? 0).toString(16)} is not SHA-1/256/384/512`);

  const parts: Uint8Array[] = [];
  for (const s of sel) {
    const name = hashName(s.hash)!;
    for (const i of s.pcrs) {
      const v = o.pcrs[name]![i]!;
      if (!(v instanceof Uint8Array) || v.length !== digestSize(s.hash)) throw new QuoteVerificationError("pcrs", `expected ${name} PCR ${i} must be ${digestSize(s.hash)} bytes`);
      parts.push(v);
    }
  }
  const concat = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    concat.set(p, off);
    off += p.length;
  }
  const want = hashById(sig.hash, concat)!;
  if (!constantTimeEqual(a.attested.pcrDigest, want)) throw new QuoteVerificationError("pcrDigest", `${hex(a.attested.pcrDigest)} is not H(expected PCRs) ${hex(want)}`);

  // The key and the signature.
  let key: KeyObject;
  let keyType: "rsa" | "ec";
  if (isKeyObject(o.publicKey)) {
    key = o.publicKey;
    const t = key.asymmetricKeyType;
    if (t !== "rsa" && t !== "ec" && t !== "rsa-pss") throw new QuoteVerificationError("signature", `the key is ${t}, not RSA or EC`);
    keyType = t === "ec" ? "ec" : "rsa";
  } else {
    const p = o.publicKey as TpmtPublic;
    try {
      key = publicKeyToCrypto(p).keyObject;
    } catch (e) {
      throw new QuoteVerificationError("signature", `publicKey: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    keyType = p.type === TPM_ALG.ECC ? "ec" : "rsa";
    if ((p.type === TPM_ALG.RSA || p.type === TPM_ALG.ECC) && p.scheme.scheme !== TPM_ALG.NULL) {
      if (p.scheme.scheme !== sig.sigAlg) throw new QuoteVerificationError("signature.sigAlg", `0x${sig.sigAlg.toString(16)} is not the key's scheme 0x${p.scheme.scheme.toString(16)}`);
      if (p.scheme.hashAlg !== sig.hash) throw new QuoteVerificationError("signature.hash", `0x${sig.hash.toString(16)} is not the key's scheme hash 0x${p.scheme.hashAlg.toString(16)}`);
    }
  }
  const nc = nodeCrypto();
  let ok: boolean;
  if (keyType === "rsa") {
    if (sig.sigAlg !== TPM_ALG.RSASSA && sig.sigAlg !== TPM_ALG.RSAPSS) throw new QuoteVerificationError("signature.sigAlg", `0x${sig.sigAlg.toString(16)} is not RSASSA or RSAPSS for an RSA key`);
    if (!(sig.sig instanceof Uint8Array)) throw new QuoteVerificationError("signature", "an RSA signature carries sig");
    const padding = sig.sigAlg === TPM_ALG.RSASSA ? nc.constants.RSA_PKCS1_PADDING : nc.constants.RSA_PKCS1_PSS_PADDING;
    ok = nc.verify(nodeHash, o.quoted, { key, padding, saltLength: nc.constants.RSA_PSS_SALTLEN_AUTO }, sig.sig);
  } else {
    if (sig.sigAlg !== TPM_ALG.ECDSA) throw new QuoteVerificationError("signature.sigAlg", `0x${sig.sigAlg.toString(16)} is not ECDSA for an ECC key`);
    if (!(sig.r instanceof Uint8Array) || !(sig.s instanceof Uint8Array)) throw new QuoteVerificationError("signature", "an ECDSA signature carries r and s");
    const n = ecFieldBytes(key);
    if (sig.r.length > n || sig.s.length > n) throw new QuoteVerificationError("signature", `r or s is longer than the curve's ${n} bytes`);
    const rs = new Uint8Array(2 * n);
    rs.set(sig.r, n - sig.r.length);
    rs.set(sig.s, 2 * n - sig.s.length);
    // r ‖ s as IEEE P1363 (what the TPM's TPMS_SIGNATURE_ECDSA holds), not DER.
    ok = nc.verify(nodeHash, o.quoted, { key, dsaEncoding: "ieee-p1363" }, rs);
  }
  if (!ok) throw new QuoteVerificationError("signature", "does not verify over H(quoted) with this key");
  return a as TpmsAttest & { type: typeof TPM_ST.ATTEST_QUOTE };
}

function ecFieldBytes(key: KeyObject): number {
  const c = key.asymmetricKeyDetails?.namedCurve;
  if (c === "prime256v1") return 32;
  if (c === "secp384r1") return 48;
  if (c === "secp521r1") return 66;
  throw new QuoteVerificationError("signature", `curve ${String(c)} is not P-256, P-384 or P-521`);
}
