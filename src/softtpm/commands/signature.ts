/**
 * Signing and signature verification (TPM 2.0 Part 3 §20): TPM2_VerifySignature (§20.1), which
 * returns a TPMT_TK_VERIFIED, and TPM2_Sign (§20.2), where a restricted key signs only a digest
 * the TPM computed itself (a TPMT_TK_HASHCHECK from TPM2_Hash or a hash sequence).
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TPM_ST, TPMA_OBJECT } from "../../wire/constants.js";
import type { TpmtSignature } from "../../wire/structures.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { findObject } from "../engine/objects.js";
import { type SigScheme, equal, hashcheckTicket, isSigningKey, selectSignScheme, signDigest, verifiedTicket, verifyDigest } from "../engine/sign.js";
import { hashImpl } from "../tables.js";

/** Largest TPM2B_DIGEST (sizeof(TPMU_HA), Part 2 §10.4.2). */
export const MAX_DIGEST = 64;
/** Largest TPM2B_PUBLIC_KEY_RSA (an RSA-4096 modulus, Part 2 §11.2.4.5). */
const MAX_RSA = 512;
/** Largest TPM2B_ECC_PARAMETER (P-521, Part 2 §11.2.5.1). */
export const MAX_ECC = 66;

/** TPMI_ALG_SIG_SCHEME (Part 2 §11.2.1.5): the selectors a TPMT_SIG_SCHEME may carry besides NULL. */
const SIG_SCHEMES: ReadonlySet<number> = new Set<number>([TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR, TPM_ALG.HMAC]);

/**
 * Reads a TPMT_SIG_SCHEME as parameter `n` (Part 2 §11.2.1.5): an unknown selector is
 * TPM_RC_SCHEME, an unimplemented hash TPM_RC_HASH; ECDAA carries a count.
 */
export function readSigScheme(inp: In, n: number): SigScheme {
  inp.param = n;
  const scheme = inp.u16();
  if (scheme === TPM_ALG.NULL) return { scheme, hashAlg: TPM_ALG.NULL };
  if (!SIG_SCHEMES.has(scheme)) throw new Rc(P(TPM_RC.SCHEME, n));
  const hashAlg = inp.u16();
  if (!hashImpl(hashAlg)) throw new Rc(P(TPM_RC.HASH, n));
  if (scheme === TPM_ALG.ECDAA) return { scheme, hashAlg, count: inp.u16() };
  return { scheme, hashAlg };
}

/**
 * Whether `v` is a TPM_ST value libtpms 0.9 unmarshals (Part 2 §6.9; the same set as the
 * dispatcher's command-tag check, plus the two command tags): swtpm 0.7.1,
 * measured over ticket tags 0x00c3–0x00c5 and 0x8000–0x8030. The reserved 0x8003, 0x8004,
 * 0x801b–0x8020, 0x8026–0x8028 and FU_MANIFEST (0x8029) are not among them.
 */
export function isTpmSt(v: number): boolean {
  return (
    v === TPM_ST.RSP_COMMAND ||
    v === TPM_ST.NULL ||
    v === TPM_ST.NO_SESSIONS ||
    v === TPM_ST.SESSIONS ||
    (v >= TPM_ST.ATTEST_NV && v <= TPM_ST.ATTEST_CREATION) ||
    (v >= TPM_ST.CREATION && v <= TPM_ST.AUTH_SIGNED)
  );
}

/**
 * Reads a ticket of type `tag` as parameter `n` (Part 2 §10.7): a tag that is no TPM_ST value is
 * TPM_RC_VALUE (TPM_ST unmarshalling), another TPM_ST value TPM_RC_TAG, a wrong hierarchy
 * TPM_RC_VALUE (swtpm 0.7.1, measured).
 */
export function readTicketParam(inp: In, n: number, tag: number): { hierarchy: number; digest: Uint8Array } {
  inp.param = n;
  const got = inp.u16();
  if (got !== tag) throw new Rc(P(isTpmSt(got) ? TPM_RC.TAG : TPM_RC.VALUE, n));
  const hierarchy = inp.u32();
  if (hierarchy !== TPM_RH.OWNER && hierarchy !== TPM_RH.ENDORSEMENT && hierarchy !== TPM_RH.PLATFORM && hierarchy !== TPM_RH.NULL) throw new Rc(P(TPM_RC.VALUE, n));
  return { hierarchy, digest: inp.tpm2b(MAX_DIGEST).slice() };
}

/** Reads a TPMT_SIGNATURE as parameter `n` (Part 2 §11.3.4). */
export function readSignatureParam(inp: In, n: number): TpmtSignature {
  inp.param = n;
  const sigAlg = inp.u16();
  if (sigAlg === TPM_ALG.NULL) return { sigAlg, hash: TPM_ALG.NULL };
  if (!SIG_SCHEMES.has(sigAlg)) throw new Rc(P(TPM_RC.SCHEME, n));
  const hash = inp.u16();
  const a = hashImpl(hash);
  if (!a) throw new Rc(P(TPM_RC.HASH, n));
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) return { sigAlg, hash, sig: inp.tpm2b(MAX_RSA).slice() };
  if (sigAlg === TPM_ALG.HMAC) return { sigAlg, hash, sig: inp.bytes(a.size).slice() };
  const r = inp.tpm2b(MAX_ECC).slice();
  const s = inp.tpm2b(MAX_ECC).slice();
  return { sigAlg, hash, r, s };
}

/** TPM2_VerifySignature, Part 3 §20.1. */
function verifySignature(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const digest = inp.tpm2b(MAX_DIGEST).slice();
  const sig = readSignatureParam(inp, 2);
  inp.done();
  const key = findObject(t, h[0]!)!;
  if (!(key.pub.objectAttributes & TPMA_OBJECT.SIGN_ENCRYPT)) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  try {
    verifyDigest(key, digest, sig);
  } catch (e) {
    if (e instanceof Rc) throw new Rc(P(e.rc, 2));
    throw e;
  }
  // a key of the NULL hierarchy gets a NULL ticket (Part 3 §20.1)
  const hierarchy = key.pub.nameAlg === TPM_ALG.NULL ? TPM_RH.NULL : key.hierarchy;
  out.u16(TPM_ST.VERIFIED);
  out.u32(hierarchy);
  out.tpm2b(verifiedTicket(t, hierarchy, digest, key.name));
}

/** TPM2_Sign, Part 3 §20.2. */
function sign(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const digest = inp.tpm2b(MAX_DIGEST).slice();
  const inScheme = readSigScheme(inp, 2);
  const validation = readTicketParam(inp, 3, TPM_ST.HASHCHECK);
  inp.done();
  const key = findObject(t, h[0]!)!;
  if (!isSigningKey(key)) throw new Rc(H(TPM_RC.KEY, 1));
  // a key for X.509 certificates signs only in TPM2_CertifyX509 (Part 2 §8.3.3.1 x509sign)
  if (key.pub.objectAttributes & TPMA_OBJECT.X509SIGN) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  const scheme = selectSignScheme(key, inScheme, 2);
  if (validation.digest.length !== 0 || key.pub.objectAttributes & TPMA_OBJECT.RESTRICTED) {
    // a restricted key signs only what the TPM hashed: the ticket must be the one the TPM gave
    // for this digest (Part 3 §20.2); a NULL ticket never is
    if (!equal(validation.digest, hashcheckTicket(t, validation.hierarchy, digest))) throw new Rc(P(TPM_RC.TICKET, 3));
  } else if (digest.length !== hashImpl(scheme.hashAlg)!.size) {
    // without a ticket the digest must at least have the size of the scheme's hash
    throw new Rc(P(TPM_RC.SIZE, 1));
  }
  out.bytes(signDigest(t, key, scheme, digest));
}

/** Part 3 §20 in the dispatch table. */
export const signatureCommands: CommandEntries = [
  [TPM_CC.VerifySignature, { decrypt: true, handles: ["object"], auth: 0, run: (t, h, i, o) => verifySignature(t, h, i, o) }],
  [TPM_CC.Sign, { decrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => sign(t, h, i, o) }],
];
