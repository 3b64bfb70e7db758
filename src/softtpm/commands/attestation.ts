/**
 * Attestation commands (TPM 2.0 Part 3 §18): TPM2_Certify, CertifyCreation, Quote and GetTime,
 * and TPM2_NV_Certify (Part 3 §31.16, kept here because it builds the same signed TPMS_ATTEST).
 *
 * Each one checks the signing key (TPM_RC_KEY + handle unless it may sign), chooses the signing
 * scheme (TPM_RC_SCHEME + the inScheme parameter unless the key's and the caller's agree), fills
 * in the TPMS_ATTEST common fields (Part 2 §10.12.12; the privacy obfuscation of Part 1 §36.7)
 * and signs H_scheme(TPMS_ATTEST) with the key. The check order is libtpms' (swtpm 0.7.1).
 *
 * @packageDocumentation
 */
import { readSigScheme } from "./signature.js";
import type { SigScheme } from "../engine/sign.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TPM_ST, TPMA_NV, TPMA_OBJECT } from "../../wire/constants.js";
import { type Attested, type ClockInfo, TPM_ST_ATTEST_NV_DIGEST, marshalAttest } from "../../wire/attest.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { CLOCK_UPDATE_MS, SOFTTPM_MAX_BUFFER } from "../engine/limits.js";
import { H, type In, type Out, P, Rc, nvPublicBytes } from "../engine/marshal.js";
import { type TpmObject, findObject } from "../engine/objects.js";
import { equal, hierarchyProof, signDigest } from "../engine/sign.js";
import { readAccess } from "./nv.js";
import { allocatedPcrs } from "./pcr.js";
import { HASH_IMPLS, PCR_COUNT, hashImpl, hashIndex } from "../tables.js";

/** Largest TPM2B_DATA: sizeof(TPMT_HA) (Part 2 §10.4.3). */
const MAX_DATA = 66;
/** Largest TPM2B_DIGEST: sizeof(TPMU_HA) (Part 2 §10.4.2). */
const MAX_DIGEST = 64;

/** TPMT_SIG_SCHEME as chosen for signing (the signing commands' `SigScheme`). */
export type AttestScheme = SigScheme;

/** TPMT_SIG_SCHEME+ is read as TPM2_Sign reads it (one unmarshaller, Part 2 §11.2.1.5). */
export { readSigScheme };

/**
 * The signing key at handle `n` (TPMI_DH_OBJECT+), or undefined for TPM_RH_NULL. A key that may
 * not sign (sign clear, or a symmetric cipher; a sequence object) is TPM_RC_KEY + H + n
 * (IsSigningObject, Part 4 §7.2.2.3 in the reference code).
 */
export function signingKey(t: Engine, h: number, n: number): TpmObject | undefined {
  if (h === TPM_RH.NULL) return undefined;
  const o = findObject(t, h);
  if (!o || !(o.pub.objectAttributes & TPMA_OBJECT.SIGN_ENCRYPT) || o.pub.type === TPM_ALG.SYMCIPHER) throw new Rc(H(TPM_RC.KEY, n));
  return o;
}

/**
 * Chooses the signing scheme (Part 3 §18.1; CryptSelectSignScheme in the reference code): no key
 * gives the NULL scheme; a key without a default takes the caller's (which may not be NULL); a
 * key with one takes it when the caller gave NULL (unless it is a split scheme, ECDAA, that needs
 * the caller's commit count), and otherwise both must name the same scheme and hash. Anything
 * else is TPM_RC_SCHEME + P + `param`.
 */
export function selectScheme(key: TpmObject | undefined, inScheme: AttestScheme, param: number): AttestScheme {
  if (!key) return { scheme: TPM_ALG.NULL, hashAlg: TPM_ALG.NULL };
  if (key.pub.type === TPM_ALG.SYMCIPHER) throw new Rc(P(TPM_RC.SCHEME, param)); // not a signing key (refused before)
  const def = key.pub.scheme;
  if (def.scheme === TPM_ALG.NULL) {
    if (inScheme.scheme === TPM_ALG.NULL) throw new Rc(P(TPM_RC.SCHEME, param));
    return inScheme;
  }
  if (inScheme.scheme === TPM_ALG.NULL) {
    if (def.scheme === TPM_ALG.ECDAA) throw new Rc(P(TPM_RC.SCHEME, param));
    return { scheme: def.scheme, hashAlg: def.hashAlg };
  }
  if (def.scheme !== inScheme.scheme || def.hashAlg !== inScheme.hashAlg) throw new Rc(P(TPM_RC.SCHEME, param));
  return inScheme;
}

/** KDFa(SHA-512, key, label, contextU, "", bits) (Part 1 §11.4.10.2). */
function kdfa(key: Uint8Array, label: string, contextU: Uint8Array, bits: number): Uint8Array {
  const lb = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(bits / 8);
  for (let i = 1, off = 0; off < out.length; i++, off += 64) {
    const block = hmac(sha512, key, concatBytes(u32be(i), lb, contextU, u32be(bits)));
    out.set(block.subarray(0, Math.min(64, out.length - off)), off);
  }
  return out;
}

/** TPMS_CLOCK_INFO now (as TPM2_ReadClock reports it, Part 3 §29.1). */
function clockInfoNow(t: Engine): ClockInfo {
  const clock = t.clockNow();
  if (!t.ps.clockSafe && clock - t.clockAtPowerOn >= CLOCK_UPDATE_MS) t.ps.clockSafe = true;
  return { clock: BigInt(clock), resetCount: t.ps.resetCount, restartCount: t.ps.restartCount, safe: t.ps.clockSafe };
}

/** TPM_PT_FIRMWARE_VERSION_1 ‖ _2 as one u64 (Part 2 §10.12.12 firmwareVersion). */
function firmwareVersion(t: Engine): bigint {
  return (BigInt(t.firmware[0] >>> 0) << 32n) | BigInt(t.firmware[1] >>> 0);
}

const readU64 = (b: Uint8Array, at: number): bigint => (BigInt(((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0) << 32n) | BigInt(((b[at + 4]! << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!) >>> 0);

/** The fields every TPMS_ATTEST shares (all but type and attested). */
interface AttestCommon {
  qualifiedSigner: Uint8Array;
  extraData: Uint8Array;
  clockInfo: ClockInfo;
  firmwareVersion: bigint;
}

/**
 * The common TPMS_ATTEST fields (Part 3 §18.1; FillInAttestInfo in the reference code). For a
 * signer outside the endorsement and platform hierarchies (and for no signer) resetCount,
 * restartCount and firmwareVersion are obfuscated (Part 1 §36.7): 128 bits of
 * KDFa(shProof, "OBFUSCATE", qualifiedSigner) are added, the first 64 to firmwareVersion, the
 * next 32 to resetCount and the last 32 to restartCount, so the same signer always sees the same
 * offsets and another signer cannot correlate them. An anonymous scheme (ECDAA) leaves
 * qualifiedSigner and extraData empty.
 */
export function attestCommon(t: Engine, key: TpmObject | undefined, scheme: AttestScheme, qualifyingData: Uint8Array): AttestCommon {
  const anonymous = scheme.scheme === TPM_ALG.ECDAA;
  const qualifiedSigner = !key ? u32be(TPM_RH.NULL) : anonymous ? new Uint8Array(0) : key.qualifiedName;
  const clockInfo = clockInfoNow(t);
  let fw = firmwareVersion(t);
  if (!key || (key.hierarchy !== TPM_RH.ENDORSEMENT && key.hierarchy !== TPM_RH.PLATFORM)) {
    const ob = kdfa(hierarchyProof(t, TPM_RH.OWNER), "OBFUSCATE", qualifiedSigner, 128);
    fw = (fw + readU64(ob, 0)) & 0xffffffffffffffffn;
    const hi = ((ob[8]! << 24) | (ob[9]! << 16) | (ob[10]! << 8) | ob[11]!) >>> 0;
    const lo = ((ob[12]! << 24) | (ob[13]! << 16) | (ob[14]! << 8) | ob[15]!) >>> 0;
    clockInfo.resetCount = (clockInfo.resetCount + hi) >>> 0;
    clockInfo.restartCount = (clockInfo.restartCount + lo) >>> 0;
  }
  return { qualifiedSigner, extraData: anonymous ? new Uint8Array(0) : qualifyingData.slice(), clockInfo, firmwareVersion: fw };
}

/**
 * Writes TPM2B_ATTEST and its TPMT_SIGNATURE (SignAttestInfo in the reference code): the
 * signature is over H_scheme(TPMS_ATTEST); no key gives the NULL signature. A signature changes
 * what Shutdown saved (the clock is in it), so a pending orderly shutdown is undone.
 */
export function signAttest(t: Engine, out: Out, key: TpmObject | undefined, scheme: AttestScheme, common: AttestCommon, attested: Attested): void {
  const body = marshalAttest({ ...common, ...attested });
  let sig: Uint8Array;
  if (!key) {
    sig = Uint8Array.of(TPM_ALG.NULL >>> 8, TPM_ALG.NULL & 0xff);
  } else {
    const a = hashImpl(scheme.hashAlg);
    if (!a) throw new Rc(TPM_RC.SCHEME);
    sig = signDigest(t, key, { scheme: scheme.scheme, hashAlg: scheme.hashAlg }, a.hash(body));
    if (t.shutdownIssued) t.invalidateOrderly();
  }
  out.tpm2b(body);
  out.bytes(sig);
}

/** Reads TPM2B_DATA qualifyingData as parameter `n` (TPM_RC_SIZE + P + n above sizeof(TPMT_HA)). */
function readQualifyingData(inp: In, n: number): Uint8Array {
  inp.param = n;
  return inp.tpm2b(MAX_DATA).slice();
}

/** A TPML_PCR_SELECTION parameter: the banks and 24-bit masks, in the order given. */
interface PcrSelectParam {
  sel: { alg: number; bank: number; bits: number }[];
}

/**
 * Reads TPML_PCR_SELECTION as parameter `n` (Part 2 §10.9.7): more entries than banks is
 * TPM_RC_SIZE, an unimplemented hash TPM_RC_HASH, a sizeofSelect other than 3 (PCR_SELECT_MIN =
 * PCR_SELECT_MAX for 24 PCRs) TPM_RC_VALUE.
 */
function readPcrSelect(inp: In, n: number): PcrSelectParam {
  inp.param = n;
  const count = inp.u32();
  if (count > HASH_IMPLS.length) throw new Rc(P(TPM_RC.SIZE, n));
  const sel: PcrSelectParam["sel"] = [];
  for (let i = 0; i < count; i++) {
    const alg = inp.u16();
    if (!hashImpl(alg)) throw new Rc(P(TPM_RC.HASH, n));
    const size = inp.u8();
    if (size !== 3) throw new Rc(P(TPM_RC.VALUE, n));
    const b = inp.bytes(3);
    sel.push({ alg, bank: hashIndex(alg), bits: b[0]! | (b[1]! << 8) | (b[2]! << 16) });
  }
  return { sel };
}

/** TPM2_Quote, Part 3 §18.4. */
function quote(t: Engine, h: number[], inp: In, out: Out): void {
  const qualifyingData = readQualifyingData(inp, 1);
  const inScheme = readSigScheme(inp, 2);
  const pcrs = readPcrSelect(inp, 3);
  inp.done();
  const key = signingKey(t, h[0]!, 1);
  const scheme = selectScheme(key, inScheme, 2);
  const common = attestCommon(t, key, scheme, qualifyingData);
  // the PCR digest uses the scheme's hash: without one, no digest (TPM_RC_SCHEME)
  const a = hashImpl(scheme.hashAlg);
  if (!a) throw new Rc(P(TPM_RC.SCHEME, 2));
  // digest of the selected PCRs, bank by bank as listed, PCR 0 first (Part 3 §18.4, PCRComputeCurrentDigest);
  // only allocated PCRs count: the others are cleared from the selection, which the quote reports
  // so filtered (reference code FilterPcr; swtpm 0.7.1, measured with an unallocated SHA-1 bank:
  // pcrSelect 0004 03 000000 and the digest of nothing)
  const hs = a.create();
  const sel = pcrs.sel.map((s) => ({ ...s, bits: s.bits & allocatedPcrs(t, s.bank) }));
  for (const s of sel) {
    const size = HASH_IMPLS[s.bank]!.size;
    for (let i = 0; i < PCR_COUNT; i++) if ((s.bits >>> i) & 1) hs.update(t.pcrs[s.bank]!.subarray(i * size, (i + 1) * size));
  }
  const pcrSelect = sel.map((s) => ({ hash: s.alg, pcrs: Array.from({ length: PCR_COUNT }, (_, i) => i).filter((i) => (s.bits >>> i) & 1) }));
  signAttest(t, out, key, scheme, common, { type: TPM_ST.ATTEST_QUOTE, attested: { pcrSelect, pcrDigest: hs.digest() } });
}

/** TPM2_Certify, Part 3 §18.2: objectHandle (ADMIN role) certified by signHandle. */
function certify(t: Engine, h: number[], inp: In, out: Out): void {
  const qualifyingData = readQualifyingData(inp, 1);
  const inScheme = readSigScheme(inp, 2);
  inp.done();
  const key = signingKey(t, h[1]!, 2);
  const scheme = selectScheme(key, inScheme, 2);
  const o = findObject(t, h[0]!)!;
  const common = attestCommon(t, key, scheme, qualifyingData);
  const qualifiedName = scheme.scheme === TPM_ALG.ECDAA ? new Uint8Array(0) : o.qualifiedName;
  signAttest(t, out, key, scheme, common, { type: TPM_ST.ATTEST_CERTIFY, attested: { name: o.name, qualifiedName } });
}

/**
 * TPM2_CertifyCreation, Part 3 §18.3: the creation ticket must be the one TPM2_Create /
 * CreatePrimary gave for this object and creationHash (HMAC(proof(hierarchy), TPM_ST_CREATION ‖
 * Name ‖ creationHash)), else TPM_RC_TICKET + P4. SoftTpm issues no ticket for the NULL
 * hierarchy, so a NULL ticket never verifies.
 */
function certifyCreation(t: Engine, h: number[], inp: In, out: Out): void {
  const qualifyingData = readQualifyingData(inp, 1);
  inp.param = 2;
  const creationHash = inp.tpm2b(MAX_DIGEST).slice();
  const inScheme = readSigScheme(inp, 3);
  inp.param = 4;
  const tag = inp.u16();
  if (tag !== TPM_ST.CREATION) throw new Rc(P(TPM_RC.TAG, 4));
  const hierarchy = inp.u32();
  if (hierarchy !== TPM_RH.OWNER && hierarchy !== TPM_RH.ENDORSEMENT && hierarchy !== TPM_RH.PLATFORM && hierarchy !== TPM_RH.NULL) throw new Rc(P(TPM_RC.VALUE, 4));
  const digest = inp.tpm2b(MAX_DIGEST).slice();
  inp.done();
  const key = signingKey(t, h[0]!, 1);
  const scheme = selectScheme(key, inScheme, 3);
  const o = findObject(t, h[1]!)!;
  if (hierarchy === TPM_RH.NULL) throw new Rc(P(TPM_RC.TICKET, 4));
  const expect = hmac(sha512, hierarchyProof(t, hierarchy), concatBytes(Uint8Array.of(TPM_ST.CREATION >>> 8, TPM_ST.CREATION & 0xff), o.name, creationHash));
  if (!equal(expect, digest)) throw new Rc(P(TPM_RC.TICKET, 4));
  const common = attestCommon(t, key, scheme, qualifyingData);
  signAttest(t, out, key, scheme, common, { type: TPM_ST.ATTEST_CREATION, attested: { objectName: o.name, creationHash } });
}

/**
 * TPM2_GetTime, Part 3 §18.7: authorized by the privacy administrator (the endorsement
 * hierarchy). The TPMS_TIME_ATTEST_INFO carries clock, resetCount, restartCount and
 * firmwareVersion in plain text; only the TPMS_ATTEST common fields are obfuscated for a signer
 * outside the endorsement and platform hierarchies (Part 1 §36.7).
 */
function getTime(t: Engine, h: number[], inp: In, out: Out): void {
  const qualifyingData = readQualifyingData(inp, 1);
  const inScheme = readSigScheme(inp, 2);
  inp.done();
  const key = signingKey(t, h[1]!, 2);
  const scheme = selectScheme(key, inScheme, 2);
  const common = attestCommon(t, key, scheme, qualifyingData);
  const time = BigInt(Math.max(0, Math.floor(t.clock.now() - t.powerOnAt)));
  signAttest(t, out, key, scheme, common, { type: TPM_ST.ATTEST_TIME, attested: { time, clockInfo: clockInfoNow(t), firmwareVersion: firmwareVersion(t) } });
}

/**
 * TPM2_NV_Certify, Part 3 §31.16: the read checks of TPM2_NV_Read (TPM_RC_NV_LOCKED,
 * TPM_RC_NV_AUTHORIZATION, TPM_RC_NV_UNINITIALIZED), then TPM_RC_NV_RANGE past the index's data
 * and TPM_RC_VALUE + P3 above the NV buffer. size 0 at offset 0 certifies the digest of the whole
 * index (TPM_ST_ATTEST_NV_DIGEST, with the scheme's hash), anything else the bytes themselves.
 */
function nvCertify(t: Engine, h: number[], inp: In, out: Out): void {
  const qualifyingData = readQualifyingData(inp, 1);
  const inScheme = readSigScheme(inp, 2);
  inp.param = 3;
  const size = inp.u16();
  inp.param = 4;
  const offset = inp.u16();
  inp.done();
  const key = signingKey(t, h[0]!, 1);
  const scheme = selectScheme(key, inScheme, 2);
  const nv = t.nv(h[2]!)!;
  readAccess(h[1]!, nv);
  if (!(nv.attributes & TPMA_NV.WRITTEN)) throw new Rc(TPM_RC.NV_UNINITIALIZED);
  if (size + offset > nv.dataSize) throw new Rc(TPM_RC.NV_RANGE);
  if (size > SOFTTPM_MAX_BUFFER) throw new Rc(P(TPM_RC.VALUE, 3));
  const common = attestCommon(t, key, scheme, qualifyingData);
  const na = hashImpl(nv.nameAlg)!;
  const indexName = concatBytes(Uint8Array.of(na.alg >>> 8, na.alg & 0xff), na.hash(nvPublicBytes(nv)));
  if (size === 0 && offset === 0) {
    const a = hashImpl(scheme.hashAlg);
    const nvDigest = a ? a.hash(nv.data) : new Uint8Array(0);
    signAttest(t, out, key, scheme, common, { type: TPM_ST_ATTEST_NV_DIGEST, attested: { indexName, nvDigest } });
    return;
  }
  signAttest(t, out, key, scheme, common, { type: TPM_ST.ATTEST_NV, attested: { indexName, offset, nvContents: nv.data.slice(offset, offset + size) } });
}

/** Part 3 §18 (and §31.16) in the dispatch table. */
export const attestationCommands: CommandEntries = [
  [TPM_CC.Certify, { decrypt: true, encrypt: true, handles: ["object", "tpmKey"], auth: 2, run: (t, h, i, o) => certify(t, h, i, o) }],
  [TPM_CC.CertifyCreation, { decrypt: true, encrypt: true, handles: ["tpmKey", "object"], auth: 1, run: (t, h, i, o) => certifyCreation(t, h, i, o) }],
  [TPM_CC.Quote, { decrypt: true, encrypt: true, handles: ["tpmKey"], auth: 1, run: (t, h, i, o) => quote(t, h, i, o) }],
  [TPM_CC.GetTime, { decrypt: true, encrypt: true, handles: ["endorsement", "tpmKey"], auth: 2, run: (t, h, i, o) => getTime(t, h, i, o) }],
  [TPM_CC.NV_Certify, { decrypt: true, encrypt: true, handles: ["tpmKey", "nvAuth", "nvIndex"], auth: 2, run: (t, h, i, o) => nvCertify(t, h, i, o) }],
];
