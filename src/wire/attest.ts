/**
 * TPMS_ATTEST, the structure a TPM signs in its attestation commands (TPM 2.0 Library Part 2,
 * rev 1.59, §10.12): the magic TPM_GENERATED_VALUE, the attestation type (TPM_ST_ATTEST_*), the
 * signer's qualified name, the caller's extraData, clock and firmware information, and the
 * `attested` union (TPMU_ATTEST, §10.12.11) selected by the type: TPMS_QUOTE_INFO (§10.12.4),
 * TPMS_CERTIFY_INFO (§10.12.3), TPMS_CREATION_INFO (§10.12.8), TPMS_NV_CERTIFY_INFO (§10.12.9),
 * TPMS_NV_DIGEST_CERTIFY_INFO (§10.12.10), TPMS_TIME_ATTEST_INFO (§10.12.2),
 * TPMS_COMMAND_AUDIT_INFO (§10.12.5) and TPMS_SESSION_AUDIT_INFO (§10.12.6).
 *
 * Every length is checked against the structure's bound and the bytes present; bad input throws
 * {@link TpmFormatError}.
 *
 * @packageDocumentation
 */
import { TpmFormatError } from "../errors/index.js";
import { TpmReader, TpmWriter } from "./buffer.js";
import { TPM_GENERATED_VALUE, TPM_ST } from "./constants.js";
import { MAX_DIGEST_BYTES } from "./structures.js";
import { type PcrSelect, readPcrSelection, writePcrSelection } from "./types.js";

/** TPM_ST_ATTEST_NV_DIGEST (Part 2 §6.9, rev 1.59): an NV_Certify of a whole index as a digest. */
export const TPM_ST_ATTEST_NV_DIGEST = 0x801c;

/** Largest TPM2B_NAME: sizeof(TPMU_NAME), a TPMT_HA with a SHA-512 digest (Part 2 §10.5.3). */
export const MAX_NAME_BYTES = 2 + MAX_DIGEST_BYTES;
/** Largest TPM2B_DATA: sizeof(TPMT_HA) (Part 2 §10.4.3). */
export const MAX_DATA_BYTES = 2 + MAX_DIGEST_BYTES;
/**
 * Largest TPM2B_MAX_NV_BUFFER this parser takes. MAX_NV_BUFFER_SIZE is implementation-dependent
 * (Part 2 §10.4.9; the reference implementation and libtpms use 1024); the bound here leaves room
 * for TPMs with a larger buffer while still refusing absurd sizes.
 */
export const MAX_NV_BUFFER_BYTES = 2048;

/** TPMS_CLOCK_INFO, Part 2 §10.11.1. */
export interface ClockInfo {
  /** Milliseconds the TPM has been powered in its life. */
  clock: bigint;
  resetCount: number;
  restartCount: number;
  /** TPMI_YES_NO: Clock has not been set back since it was last saved. */
  safe: boolean;
}

/** TPMS_QUOTE_INFO, Part 2 §10.12.4. */
export interface QuoteInfo {
  pcrSelect: PcrSelect[];
  /** Digest of the selected PCRs, with the hash of the signing scheme. */
  pcrDigest: Uint8Array;
}

/** TPMS_CERTIFY_INFO, Part 2 §10.12.3. */
export interface CertifyInfo {
  name: Uint8Array;
  qualifiedName: Uint8Array;
}

/** TPMS_CREATION_INFO, Part 2 §10.12.8. */
export interface CreationInfo {
  objectName: Uint8Array;
  creationHash: Uint8Array;
}

/** TPMS_NV_CERTIFY_INFO, Part 2 §10.12.9. */
export interface NvCertifyInfo {
  indexName: Uint8Array;
  offset: number;
  nvContents: Uint8Array;
}

/** TPMS_NV_DIGEST_CERTIFY_INFO, Part 2 §10.12.10. */
export interface NvDigestCertifyInfo {
  indexName: Uint8Array;
  nvDigest: Uint8Array;
}

/** TPMS_TIME_ATTEST_INFO, Part 2 §10.12.2 (with its TPMS_TIME_INFO, §10.11.6, flattened). */
export interface TimeAttestInfo {
  /** Milliseconds since the last TPM Reset or TPM Restart. */
  time: bigint;
  clockInfo: ClockInfo;
  firmwareVersion: bigint;
}

/** TPMS_COMMAND_AUDIT_INFO, Part 2 §10.12.5. */
export interface CommandAuditInfo {
  auditCounter: bigint;
  digestAlg: number;
  auditDigest: Uint8Array;
  commandDigest: Uint8Array;
}

/** TPMS_SESSION_AUDIT_INFO, Part 2 §10.12.6. */
export interface SessionAuditInfo {
  exclusiveSession: boolean;
  sessionDigest: Uint8Array;
}

/** The `type` and `attested` pair of a TPMS_ATTEST: the TPMU_ATTEST member the type selects (Part 2 §10.12.11). */
export type Attested =
  | { type: typeof TPM_ST.ATTEST_QUOTE; attested: QuoteInfo }
  | { type: typeof TPM_ST.ATTEST_CERTIFY; attested: CertifyInfo }
  | { type: typeof TPM_ST.ATTEST_CREATION; attested: CreationInfo }
  | { type: typeof TPM_ST.ATTEST_NV; attested: NvCertifyInfo }
  | { type: typeof TPM_ST_ATTEST_NV_DIGEST; attested: NvDigestCertifyInfo }
  | { type: typeof TPM_ST.ATTEST_TIME; attested: TimeAttestInfo }
  | { type: typeof TPM_ST.ATTEST_COMMAND_AUDIT; attested: CommandAuditInfo }
  | { type: typeof TPM_ST.ATTEST_SESSION_AUDIT; attested: SessionAuditInfo };

/**
 * TPMS_ATTEST, Part 2 §10.12.12. The magic is not a field: the reader refuses anything but
 * TPM_GENERATED_VALUE, and the writer always writes it.
 */
export type TpmsAttest = {
  /** The qualified name of the signing key (TPM_RH_NULL's handle when unsigned, empty for an anonymous scheme). */
  qualifiedSigner: Uint8Array;
  /** The caller's qualifying data (a nonce). */
  extraData: Uint8Array;
  clockInfo: ClockInfo;
  /** TPM vendor firmware version (obfuscated when the signer is outside the endorsement and platform hierarchies). */
  firmwareVersion: bigint;
} & Attested;

function yesNo(r: TpmReader, what: string): boolean {
  const v = r.u8(what);
  if (v > 1) throw new TpmFormatError(`${what}: TPMI_YES_NO is ${v}, not 0 or 1`);
  return v === 1;
}

/** Reads TPMS_CLOCK_INFO (Part 2 §10.11.1). */
export function readClockInfo(r: TpmReader): ClockInfo {
  const clock = r.u64("clockInfo.clock");
  const resetCount = r.u32("clockInfo.resetCount");
  const restartCount = r.u32("clockInfo.restartCount");
  const safe = yesNo(r, "clockInfo.safe");
  return { clock, resetCount, restartCount, safe };
}

/** Writes TPMS_CLOCK_INFO. */
export function writeClockInfo(w: TpmWriter, c: ClockInfo): void {
  w.u64(c.clock).u32(c.resetCount >>> 0).u32(c.restartCount >>> 0).u8(c.safe ? 1 : 0);
}

function readAttested(r: TpmReader, type: number): Attested {
  switch (type) {
    case TPM_ST.ATTEST_QUOTE: {
      const pcrSelect = readPcrSelection(r);
      const pcrDigest = r.tpm2b("quote.pcrDigest", MAX_DIGEST_BYTES).slice();
      return { type, attested: { pcrSelect, pcrDigest } };
    }
    case TPM_ST.ATTEST_CERTIFY: {
      const name = r.tpm2b("certify.name", MAX_NAME_BYTES).slice();
      const qualifiedName = r.tpm2b("certify.qualifiedName", MAX_NAME_BYTES).slice();
      return { type, attested: { name, qualifiedName } };
    }
    case TPM_ST.ATTEST_CREATION: {
      const objectName = r.tpm2b("creation.objectName", MAX_NAME_BYTES).slice();
      const creationHash = r.tpm2b("creation.creationHash", MAX_DIGEST_BYTES).slice();
      return { type, attested: { objectName, creationHash } };
    }
    case TPM_ST.ATTEST_NV: {
      const indexName = r.tpm2b("nv.indexName", MAX_NAME_BYTES).slice();
      const offset = r.u16("nv.offset");
      const nvContents = r.tpm2b("nv.nvContents", MAX_NV_BUFFER_BYTES).slice();
      return { type, attested: { indexName, offset, nvContents } };
    }
    case TPM_ST_ATTEST_NV_DIGEST: {
      const indexName = r.tpm2b("nvDigest.indexName", MAX_NAME_BYTES).slice();
      const nvDigest = r.tpm2b("nvDigest.nvDigest", MAX_DIGEST_BYTES).slice();
      return { type, attested: { indexName, nvDigest } };
    }
    case TPM_ST.ATTEST_TIME: {
      const time = r.u64("time.time");
      const clockInfo = readClockInfo(r);
      const firmwareVersion = r.u64("time.firmwareVersion");
      return { type, attested: { time, clockInfo, firmwareVersion } };
    }
    case TPM_ST.ATTEST_COMMAND_AUDIT: {
      const auditCounter = r.u64("commandAudit.auditCounter");
      const digestAlg = r.u16("commandAudit.digestAlg");
      const auditDigest = r.tpm2b("commandAudit.auditDigest", MAX_DIGEST_BYTES).slice();
      const commandDigest = r.tpm2b("commandAudit.commandDigest", MAX_DIGEST_BYTES).slice();
      return { type, attested: { auditCounter, digestAlg, auditDigest, commandDigest } };
    }
    case TPM_ST.ATTEST_SESSION_AUDIT: {
      const exclusiveSession = yesNo(r, "sessionAudit.exclusiveSession");
      const sessionDigest = r.tpm2b("sessionAudit.sessionDigest", MAX_DIGEST_BYTES).slice();
      return { type, attested: { exclusiveSession, sessionDigest } };
    }
    default:
      throw new TpmFormatError(`TPMS_ATTEST.type 0x${type.toString(16)} is not a TPMI_ST_ATTEST value`);
  }
}

/** Reads a TPMS_ATTEST (Part 2 §10.12.12), refusing a magic other than TPM_GENERATED_VALUE. */
export function readAttest(r: TpmReader): TpmsAttest {
  const magic = r.u32("TPMS_ATTEST.magic");
  if (magic !== TPM_GENERATED_VALUE) throw new TpmFormatError(`TPMS_ATTEST.magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE (0xff544347)`);
  const type = r.u16("TPMS_ATTEST.type");
  const qualifiedSigner = r.tpm2b("TPMS_ATTEST.qualifiedSigner", MAX_NAME_BYTES).slice();
  const extraData = r.tpm2b("TPMS_ATTEST.extraData", MAX_DATA_BYTES).slice();
  const clockInfo = readClockInfo(r);
  const firmwareVersion = r.u64("TPMS_ATTEST.firmwareVersion");
  return { qualifiedSigner, extraData, clockInfo, firmwareVersion, ...readAttested(r, type) };
}

/**
 * Parses the contents of a TPM2B_ATTEST (what a quote or certify response carries and the
 * signature covers): exactly one TPMS_ATTEST, no trailing bytes.
 *
 * @example
 * ```ts
 * import { unmarshalAttest, TPM_ST } from "tpmkit/wire";
 * const a = unmarshalAttest(quoted); // quoted: the TPM2B_ATTEST's bytes from TPM2_Quote
 * if (a.type === TPM_ST.ATTEST_QUOTE) console.log(a.attested.pcrDigest, a.extraData);
 * ```
 */
export function unmarshalAttest(bytes: Uint8Array): TpmsAttest {
  const r = new TpmReader(bytes);
  const a = readAttest(r);
  r.expectEnd("TPMS_ATTEST");
  return a;
}

/** Reads a TPM2B_ATTEST (Part 2 §10.12.13): the size, then exactly one TPMS_ATTEST. */
export function readAttest2b(r: TpmReader): TpmsAttest {
  return unmarshalAttest(r.tpm2b("TPM2B_ATTEST"));
}

function writeAttested(w: TpmWriter, a: Attested): void {
  switch (a.type) {
    case TPM_ST.ATTEST_QUOTE:
      writePcrSelection(w, a.attested.pcrSelect);
      w.tpm2b(a.attested.pcrDigest);
      return;
    case TPM_ST.ATTEST_CERTIFY:
      w.tpm2b(a.attested.name).tpm2b(a.attested.qualifiedName);
      return;
    case TPM_ST.ATTEST_CREATION:
      w.tpm2b(a.attested.objectName).tpm2b(a.attested.creationHash);
      return;
    case TPM_ST.ATTEST_NV:
      w.tpm2b(a.attested.indexName).u16(a.attested.offset).tpm2b(a.attested.nvContents);
      return;
    case TPM_ST_ATTEST_NV_DIGEST:
      w.tpm2b(a.attested.indexName).tpm2b(a.attested.nvDigest);
      return;
    case TPM_ST.ATTEST_TIME:
      w.u64(a.attested.time);
      writeClockInfo(w, a.attested.clockInfo);
      w.u64(a.attested.firmwareVersion);
      return;
    case TPM_ST.ATTEST_COMMAND_AUDIT:
      w.u64(a.attested.auditCounter).u16(a.attested.digestAlg).tpm2b(a.attested.auditDigest).tpm2b(a.attested.commandDigest);
      return;
    case TPM_ST.ATTEST_SESSION_AUDIT:
      w.u8(a.attested.exclusiveSession ? 1 : 0).tpm2b(a.attested.sessionDigest);
      return;
  }
}

/** Writes a TPMS_ATTEST (TPM_GENERATED_VALUE first). */
export function writeAttest(w: TpmWriter, a: TpmsAttest): void {
  w.u32(TPM_GENERATED_VALUE).u16(a.type).tpm2b(a.qualifiedSigner).tpm2b(a.extraData);
  writeClockInfo(w, a.clockInfo);
  w.u64(a.firmwareVersion);
  writeAttested(w, a);
}

/** A TPMS_ATTEST as bytes (the contents of a TPM2B_ATTEST, what the signature covers). */
export function marshalAttest(a: TpmsAttest): Uint8Array {
  const w = new TpmWriter(256);
  writeAttest(w, a);
  return w.finish();
}
