/**
 * Enhanced authorization (TPM 2.0 Part 3 §23): the policy assertions a policy or trial session
 * collects. Each one extends the session's policyDigest, `H(old ‖ TPM_CC ‖ args)`, and a policy
 * session (not a trial session) also checks it and records what authorization must check later
 * (Part 1 §19.7). Which entity a finished policy authorizes is the engine's authorization step.
 *
 * @packageDocumentation
 */
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_CC, TPM_HR, TPM_RC, TPM_RH, TPM_ST, TPMA_NV } from "../../wire/constants.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { type PolicyState, nameOf, resetPolicy } from "../engine/auth.js";
import { findObject } from "../engine/objects.js";
import { hierarchyProof, isSigningKey, verifiedTicket, verifyDigest } from "../engine/sign.js";
import { readSignatureParam } from "./signature.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine, HmacSession } from "../engine/engine.js";
import { EMPTY, type In, type Out, P, Rc } from "../engine/marshal.js";
import { HASH_IMPLS, PCR_COUNT, hashImpl, hashIndex } from "../tables.js";
import { constantTimeEqual } from "../../wire/bytes.js";

/** Largest TPM2B_DIGEST / TPM2B_NONCE: the largest digest (SHA-512). */
const MAX_DIGEST = 64;
/** Largest TPM2B_NAME: a hash algorithm and the largest digest. */
const MAX_NAME = 2 + MAX_DIGEST;
/** TPMS_PCR_SELECTION.sizeofSelect SoftTpm takes (24 PCRs), as TPM2_PCR_Read. */
const PCR_SELECT_SIZE = 3;
/** TPML_DIGEST holds at most 8 digests (Part 2 §10.9.2). */
const MAX_DIGESTS = 8;
/** Largest TPM2B_OPERAND (a digest's size, Part 2 §10.4.4... TPM2B_OPERAND is a TPM2B_DIGEST). */
const MAX_OPERAND = MAX_DIGEST;

const COMMAND_CODES: ReadonlySet<number> = /* @__PURE__ */ new Set(Object.values(TPM_CC));

/** The session of a TPMI_SH_POLICY handle (the dispatcher checked it is a loaded policy session). */
function policyOf(t: Engine, h: number): { sess: HmacSession; p: PolicyState } {
  const sess = t.hmacSessions.get((TPM_HR.HMAC_SESSION | (h & TPM_HR.HANDLE_MASK)) >>> 0)!;
  return { sess, p: sess.policy! };
}

/** policyDigest_new = H(policyDigest_old ‖ cc ‖ args), Part 3 §23.1. */
function extend(sess: HmacSession, p: PolicyState, cc: number, ...args: Uint8Array[]): void {
  p.digest = sess.authHash.hash(concatBytes(p.digest, u32be(cc), ...args));
}

/** PolicyUpdate, Part 3 §23.2.3: H(H(old ‖ cc ‖ name) ‖ policyRef). */
function policyUpdate(sess: HmacSession, p: PolicyState, cc: number, name: Uint8Array, policyRef: Uint8Array): void {
  extend(sess, p, cc, name);
  p.digest = sess.authHash.hash(concatBytes(p.digest, policyRef));
}

/** A TPMT_TK_AUTH's HMAC under proof(hierarchy) (Part 2 §10.7.5), as every ticket of this TPM (HMAC-SHA-512). */
function ticketHmac(t: Engine, hierarchy: number, ...parts: Uint8Array[]): Uint8Array {
  return hmac(sha512, hierarchyProof(t, hierarchy), concatBytes(...parts));
}

/**
 * Writes timeout and policyTicket of PolicySigned / PolicySecret (Part 3 §23.3, §23.4): a
 * TPMT_TK_AUTH HMAC(proof, tag ‖ timeout ‖ cpHashA ‖ policyRef ‖ authName) (Part 2 §10.7.5) for a
 * negative expiration with the session's nonce, else an empty timeout and a NULL ticket.
 */
function writeAuthTicket(t: Engine, out: Out, tag: number, ticketed: boolean, hierarchy: number, timeout: number, cpHashA: Uint8Array, policyRef: Uint8Array, name: Uint8Array): void {
  if (ticketed) {
    const to = new Uint8Array(8);
    new DataView(to.buffer).setBigUint64(0, BigInt(timeout));
    out.tpm2b(to);
    out.u16(tag);
    out.u32(hierarchy);
    out.tpm2b(ticketHmac(t, hierarchy, st(tag), to, cpHashA, policyRef, name));
    return;
  }
  out.tpm2b(EMPTY);
  out.u16(tag);
  out.u32(TPM_RH.NULL);
  out.u16(0);
}

/**
 * TPM2_PolicySigned, Part 3 §23.3: authObject signed aHash = H(nonceTPM ‖ expiration ‖ cpHashA ‖
 * policyRef) with the signature's hash; verified with the loaded key (a trial session checks
 * nothing). Then PolicyUpdate(TPM_CC_PolicySigned, authObject's Name, policyRef).
 */
function policySigned(t: Engine, h: number[], inp: In, out: Out): void {
  const nonceTPM = inp.tpm2b(MAX_DIGEST);
  inp.param = 2;
  const cpHashA = inp.tpm2b(MAX_DIGEST);
  inp.param = 3;
  const policyRef = inp.tpm2b(MAX_DIGEST);
  inp.param = 4;
  const expiration = inp.u32() | 0; // INT32
  const sig = readSignatureParam(inp, 5);
  inp.done();
  const key = findObject(t, h[0]!)!;
  const { sess, p } = policyOf(t, h[1]!);
  let timeout = 0;
  if (!p.trial) {
    timeout = parameterChecks(t, sess, p, nonceTPM, cpHashA, expiration, 1, 2, 4);
    const a = hashImpl(sig.hash);
    if (!a) throw new Rc(P(TPM_RC.SCHEME, 5)); // a NULL signature
    const aHash = a.hash(concatBytes(nonceTPM, u32be(expiration >>> 0), cpHashA, policyRef));
    if (!isSigningKey(key)) throw new Rc(P(TPM_RC.ATTRIBUTES, 5));
    try {
      verifyDigest(key, aHash, sig);
    } catch (e) {
      if (e instanceof Rc) throw new Rc(P(e.rc, 5));
      throw e;
    }
  }
  policyUpdate(sess, p, TPM_CC.PolicySigned, key.name, policyRef);
  if (!p.trial && timeout !== 0 && (p.timeout === 0 || timeout < p.timeout)) p.timeout = timeout;
  writeAuthTicket(t, out, TPM_ST.AUTH_SIGNED, expiration < 0 && !p.trial, key.hierarchy, timeout, cpHashA, policyRef, key.name);
}

const st = (tag: number): Uint8Array => Uint8Array.of(tag >>> 8, tag & 0xff);

/** TPM2_PolicyPCR, Part 3 §23.7. */
function policyPcr(t: Engine, h: number[], inp: In, out: Out): void {
  const pcrDigest = inp.tpm2b(MAX_DIGEST);
  inp.param = 2;
  const selStart = inp.pos;
  const count = inp.u32();
  if (count > HASH_IMPLS.length) throw new Rc(P(TPM_RC.SIZE, 2));
  const sels: { bank: number; mask: number }[] = [];
  for (let i = 0; i < count; i++) {
    const alg = inp.u16();
    if (!hashImpl(alg)) throw new Rc(P(TPM_RC.HASH, 2));
    const sz = inp.u8();
    if (sz !== PCR_SELECT_SIZE) throw new Rc(P(TPM_RC.VALUE, 2));
    const b = inp.bytes(sz);
    sels.push({ bank: hashIndex(alg), mask: b[0]! | (b[1]! << 8) | (b[2]! << 16) });
  }
  const pcrs = inp.buf.slice(selStart, inp.pos);
  inp.done();
  void out;
  const { sess, p } = policyOf(t, h[0]!);
  // the digest of the selected PCRs: banks as listed, PCRs ascending (Part 3 §23.7)
  const hh = sess.authHash.create();
  for (const s of sels) {
    const size = HASH_IMPLS[s.bank]!.size;
    for (let pcr = 0; pcr < PCR_COUNT; pcr++) if ((s.mask >>> pcr) & 1) hh.update(t.pcrs[s.bank]!.subarray(pcr * size, (pcr + 1) * size));
  }
  let digest = hh.digest();
  if (!p.trial) {
    if (pcrDigest.length !== 0 && !constantTimeEqual(pcrDigest, digest)) throw new Rc(P(TPM_RC.VALUE, 1));
  } else if (pcrDigest.length !== 0) {
    digest = pcrDigest; // a trial session takes the caller's digest
  }
  extend(sess, p, TPM_CC.PolicyPCR, pcrs, digest);
  if (!p.trial) p.pcrCounter = t.pcrUpdateCounter;
}


/** TPM2_PolicyAuthValue, Part 3 §23.17. */
function policyAuthValue(t: Engine, h: number[], inp: In): void {
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  extend(sess, p, TPM_CC.PolicyAuthValue);
  p.authValueNeeded = true;
  p.passwordNeeded = false;
}

/** TPM2_PolicyPassword, Part 3 §23.18: the digest of PolicyAuthValue, the authValue in clear. */
function policyPassword(t: Engine, h: number[], inp: In): void {
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  extend(sess, p, TPM_CC.PolicyAuthValue);
  p.passwordNeeded = true;
  p.authValueNeeded = false;
}

/** TPM2_PolicyCommandCode, Part 3 §23.11. */
function policyCommandCode(t: Engine, h: number[], inp: In): void {
  const code = inp.u32();
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  if (p.commandCode !== undefined && p.commandCode !== code) throw new Rc(P(TPM_RC.VALUE, 1));
  if (!COMMAND_CODES.has(code)) throw new Rc(P(TPM_RC.POLICY_CC, 1)); // not a TPM 2.0 command
  extend(sess, p, TPM_CC.PolicyCommandCode, u32be(code));
  p.commandCode = code;
}

/**
 * The nonce, expiration and cpHash checks of PolicySigned and PolicySecret (Part 3 §23.3, §23.4;
 * reference code, Policy_spt_hierarchy.c PolicyParameterChecks): a nonceTPM, when given, must be
 * the session's; a non-zero expiration counts seconds from the session's start (its sign only
 * says whether a ticket is wanted); a cpHashA has the session hash's size.
 *
 * @returns the timeout (TPM clock, ms), or 0
 */
function parameterChecks(t: Engine, sess: HmacSession, p: PolicyState, nonce: Uint8Array, cpHashA: Uint8Array, expiration: number, nonceParam: number, cpParam: number, expParam: number): number {
  if (nonce.length !== 0 && !constantTimeEqual(nonce, sess.nonceTPM)) throw new Rc(P(TPM_RC.NONCE, nonceParam));
  let timeout = 0;
  if (expiration !== 0) {
    timeout = p.startTime + Math.abs(expiration) * 1000;
    if (timeout < t.clockNow()) throw new Rc(P(TPM_RC.EXPIRED, expParam));
  }
  if (cpHashA.length !== 0 && cpHashA.length !== sess.authHash.size) throw new Rc(P(TPM_RC.SIZE, cpParam));
  return timeout;
}

/** TPM2_PolicySecret, Part 3 §23.4: the authHandle was authorized by the dispatcher. */
function policySecret(t: Engine, h: number[], inp: In, out: Out): void {
  const nonceTPM = inp.tpm2b(MAX_DIGEST);
  inp.param = 2;
  const cpHashA = inp.tpm2b(MAX_DIGEST);
  inp.param = 3;
  const policyRef = inp.tpm2b(MAX_DIGEST);
  inp.param = 4;
  const expiration = inp.u32() | 0; // INT32
  inp.done();
  const { sess, p } = policyOf(t, h[1]!);
  const timeout = parameterChecks(t, sess, p, nonceTPM, cpHashA, expiration, 1, 2, 4);
  const name = nameOf(t, h[0]!);
  policyUpdate(sess, p, TPM_CC.PolicySecret, name, policyRef);
  if (!p.trial && timeout !== 0 && (p.timeout === 0 || timeout < p.timeout)) p.timeout = timeout;
  // a ticket only for a negative expiration with the session's nonce (Part 3 §23.4); SoftTpm
  // does not implement TPM2_PolicyTicket, so the ticket is written but not yet redeemable
  writeAuthTicket(t, out, TPM_ST.AUTH_SECRET, expiration < 0 && nonceTPM.length !== 0 && !p.trial, TPM_RH.OWNER, timeout, cpHashA, policyRef, name);
}

/** TPM2_PolicyOR, Part 3 §23.6. */
function policyOr(t: Engine, h: number[], inp: In): void {
  const count = inp.u32();
  if (count > MAX_DIGESTS) throw new Rc(P(TPM_RC.SIZE, 1));
  const list: Uint8Array[] = [];
  for (let i = 0; i < count; i++) list.push(inp.tpm2b(MAX_DIGEST));
  inp.done();
  if (count < 2) throw new Rc(P(TPM_RC.SIZE, 1)); // TPML_DIGEST {2:} for PolicyOR (Part 2 §10.9.2)
  const { sess, p } = policyOf(t, h[0]!);
  if (!p.trial && !list.some((d) => constantTimeEqual(d, p.digest))) throw new Rc(P(TPM_RC.VALUE, 1));
  p.digest = new Uint8Array(sess.authHash.size);
  extend(sess, p, TPM_CC.PolicyOR, ...list);
}

/** TPM_EO comparison of PolicyNV (Part 2 §6.8): `a` from NV, `b` the operand, big-endian. */
function compare(op: number, a: Uint8Array, b: Uint8Array): boolean {
  let signed = 0;
  let unsigned = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      unsigned = a[i]! > b[i]! ? 1 : -1;
      break;
    }
  }
  signed = unsigned;
  if (a.length > 0 && (a[0]! & 0x80) !== (b[0]! & 0x80)) signed = a[0]! & 0x80 ? -1 : 1;
  switch (op) {
    case 0x0: return unsigned === 0;
    case 0x1: return unsigned !== 0;
    case 0x2: return signed > 0;
    case 0x3: return unsigned > 0;
    case 0x4: return signed < 0;
    case 0x5: return unsigned < 0;
    case 0x6: return signed >= 0;
    case 0x7: return unsigned >= 0;
    case 0x8: return signed <= 0;
    case 0x9: return unsigned <= 0;
    case 0xa: return a.every((x, i) => (x & b[i]!) === b[i]);
    default: return a.every((x, i) => (x & b[i]!) === 0); // BITCLEAR
  }
}

/** TPM2_PolicyNV, Part 3 §23.9. */
function policyNv(t: Engine, h: number[], inp: In): void {
  const operandB = inp.tpm2b(MAX_OPERAND);
  inp.param = 2;
  const offset = inp.u16();
  inp.param = 3;
  const operation = inp.u16();
  if (operation > 0x000b) throw new Rc(P(TPM_RC.VALUE, 3)); // TPM_EO
  inp.done();
  const { sess, p } = policyOf(t, h[2]!);
  const nv = t.nv(h[1]!)!;
  if (!p.trial) {
    // NvReadAccessChecks (Part 3 §31.2.2), then the range and the comparison
    const auth = h[0]!;
    if (nv.attributes & TPMA_NV.READLOCKED) throw new Rc(TPM_RC.NV_LOCKED);
    if (auth >>> 24 === 0x01 && auth !== nv.handle) throw new Rc(TPM_RC.NV_AUTHORIZATION);
    if (auth === TPM_RH.OWNER && !(nv.attributes & TPMA_NV.OWNERREAD)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
    if (auth === TPM_RH.PLATFORM && !(nv.attributes & TPMA_NV.PPREAD)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
    if (!(nv.attributes & TPMA_NV.WRITTEN)) throw new Rc(TPM_RC.NV_UNINITIALIZED);
    if (offset > nv.dataSize) throw new Rc(P(TPM_RC.VALUE, 2));
    if (nv.dataSize - offset < operandB.length) throw new Rc(P(TPM_RC.SIZE, 1));
    if (!compare(operation, nv.data.subarray(offset, offset + operandB.length), operandB)) throw new Rc(TPM_RC.POLICY);
  }
  const args = sess.authHash.hash(concatBytes(operandB, Uint8Array.of(offset >>> 8, offset & 0xff, operation >>> 8, operation & 0xff)));
  extend(sess, p, TPM_CC.PolicyNV, args, nameOf(t, nv.handle));
}

/**
 * TPM2_PolicyAuthorize, Part 3 §23.16: the current digest must be approvedPolicy, approved by
 * keySign (a TPMT_TK_VERIFIED from TPM2_VerifySignature over aHash = H(approvedPolicy ‖
 * policyRef), ticket HMAC(proof, TPM_ST_VERIFIED ‖ aHash ‖ keyName), Part 2 §10.7.4); then the
 * digest is reset and PolicyUpdate(TPM_CC_PolicyAuthorize, keySign, policyRef) applied.
 */
function policyAuthorize(t: Engine, h: number[], inp: In): void {
  const approvedPolicy = inp.tpm2b(MAX_DIGEST);
  inp.param = 2;
  const policyRef = inp.tpm2b(MAX_DIGEST);
  inp.param = 3;
  const keySign = inp.tpm2b(MAX_NAME);
  inp.param = 4;
  const tag = inp.u16();
  if (tag !== TPM_ST.VERIFIED) throw new Rc(P(TPM_RC.TAG, 4));
  const hierarchy = inp.u32();
  if (hierarchy !== TPM_RH.OWNER && hierarchy !== TPM_RH.ENDORSEMENT && hierarchy !== TPM_RH.PLATFORM && hierarchy !== TPM_RH.NULL) throw new Rc(P(TPM_RC.VALUE, 4));
  const ticket = inp.tpm2b(MAX_DIGEST);
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  if (!p.trial) {
    if (!constantTimeEqual(approvedPolicy, p.digest)) throw new Rc(P(TPM_RC.VALUE, 1));
    const keyAlg = keySign.length >= 2 ? hashImpl((keySign[0]! << 8) | keySign[1]!) : undefined;
    if (!keyAlg) throw new Rc(P(TPM_RC.HASH, 3));
    if (keySign.length - 2 !== keyAlg.size) throw new Rc(P(TPM_RC.SIZE, 3));
    const aHash = sess.authHash.hash(concatBytes(approvedPolicy, policyRef));
    const want = verifiedTicket(t, hierarchy, aHash, keySign); // as TPM2_VerifySignature makes it
    if (want.length === 0 || !constantTimeEqual(ticket, want)) throw new Rc(P(TPM_RC.VALUE, 4));
  }
  p.digest = new Uint8Array(sess.authHash.size);
  policyUpdate(sess, p, TPM_CC.PolicyAuthorize, keySign, policyRef);
}

/**
 * TPM2_PolicyLocality, Part 3 §23.8: the command must come from one of the localities of the
 * TPMA_LOCALITY (bits 0–4), or from the one extended locality (32–255). Zero is TPM_RC_RANGE
 * + P1; a second assertion narrows lower localities to the intersection, which must not be
 * empty, and an extended locality must repeat the earlier one (TPM_RC_RANGE + P1; reference
 * code, PolicyLocality.c). The digest takes the locality as given.
 */
function policyLocality(t: Engine, h: number[], inp: In): void {
  const locality = inp.u8();
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  if (locality === 0) throw new Rc(P(TPM_RC.RANGE, 1));
  let next = locality;
  const prev = p.locality ?? 0;
  if (prev !== 0) {
    if (locality <= 31) {
      if (prev > 31) throw new Rc(P(TPM_RC.RANGE, 1));
      next = locality & prev;
      if (next === 0) throw new Rc(P(TPM_RC.RANGE, 1));
    } else if (prev !== locality) {
      throw new Rc(P(TPM_RC.RANGE, 1));
    }
  }
  extend(sess, p, TPM_CC.PolicyLocality, Uint8Array.of(locality));
  p.locality = next;
}

/**
 * The digest of PolicyCpHash, PolicyNameHash and PolicyTemplate (Part 3 §23.13, §23.14,
 * §23.21): the session hash's size (TPM_RC_SIZE + P1), and the session holds one such digest
 * (reference code: one union): another kind, or the same kind with another digest, is
 * TPM_RC_CPHASH.
 */
function setCpHash(t: Engine, h: number[], inp: In, cc: number, kind: "cpHash" | "nameHash" | "template"): void {
  const digest = inp.tpm2b(MAX_DIGEST);
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  if (digest.length !== sess.authHash.size) throw new Rc(P(TPM_RC.SIZE, 1));
  const c = p.cpHash;
  if (c && (c.kind !== kind || kind === "nameHash" || !constantTimeEqual(c.digest, digest))) throw new Rc(TPM_RC.CPHASH);
  extend(sess, p, cc, digest);
  p.cpHash = { kind, digest: digest.slice() };
}

/**
 * TPM2_PolicyNvWritten, Part 3 §23.20: the authorized NV index must (writtenSet YES) or must
 * not (NO) have TPMA_NV_WRITTEN; writtenSet is a TPMI_YES_NO (TPM_RC_VALUE + P1), and a second
 * assertion that contradicts the first is TPM_RC_VALUE + P1.
 */
function policyNvWritten(t: Engine, h: number[], inp: In): void {
  const writtenSet = inp.u8();
  if (writtenSet > 1) throw new Rc(P(TPM_RC.VALUE, 1));
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  if (p.nvWritten !== undefined && p.nvWritten !== (writtenSet === 1)) throw new Rc(P(TPM_RC.VALUE, 1));
  extend(sess, p, TPM_CC.PolicyNvWritten, Uint8Array.of(writtenSet));
  p.nvWritten = writtenSet === 1;
}

/** TPM2_PolicyGetDigest, Part 3 §23.19. */
function policyGetDigest(t: Engine, h: number[], inp: In, out: Out): void {
  inp.done();
  out.tpm2b(policyOf(t, h[0]!).p.digest);
}

/** TPM2_PolicyRestart, Part 3 §23.12: the policy data starts over, the nonces stay. */
function policyRestart(t: Engine, h: number[], inp: In): void {
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  resetPolicy(p, sess.authHash.size, t.clockNow());
}

/** Part 3 §23 in the dispatch table. */
export const policyCommands: CommandEntries = [
  [TPM_CC.PolicyNV, { handles: ["nvAuth", "nvIndex", "policySession"], auth: 1, decrypt: true, run: (t, h, i) => policyNv(t, h, i) }],
  [TPM_CC.PolicySigned, { handles: ["object", "policySession"], auth: 0, decrypt: true, encrypt: true, run: (t, h, i, o) => policySigned(t, h, i, o) }],
  [TPM_CC.PolicySecret, { handles: ["entity", "policySession"], auth: 1, decrypt: true, encrypt: true, run: (t, h, i, o) => policySecret(t, h, i, o) }],
  [TPM_CC.PolicyAuthorize, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i) => policyAuthorize(t, h, i) }],
  [TPM_CC.PolicyAuthValue, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyAuthValue(t, h, i) }],
  [TPM_CC.PolicyCommandCode, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyCommandCode(t, h, i) }],
  [TPM_CC.PolicyOR, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyOr(t, h, i) }],
  [TPM_CC.PolicyPCR, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i, o) => policyPcr(t, h, i, o) }],
  [TPM_CC.PolicyRestart, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyRestart(t, h, i) }],
  [TPM_CC.PolicyGetDigest, { handles: ["policySession"], auth: 0, encrypt: true, run: (t, h, i, o) => policyGetDigest(t, h, i, o) }],
  [TPM_CC.PolicyPassword, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyPassword(t, h, i) }],
  [TPM_CC.PolicyLocality, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyLocality(t, h, i) }],
  [TPM_CC.PolicyCpHash, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i) => setCpHash(t, h, i, TPM_CC.PolicyCpHash, "cpHash") }],
  [TPM_CC.PolicyNameHash, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i) => setCpHash(t, h, i, TPM_CC.PolicyNameHash, "nameHash") }],
  [TPM_CC.PolicyTemplate, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i) => setCpHash(t, h, i, TPM_CC.PolicyTemplate, "template") }],
  [TPM_CC.PolicyNvWritten, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyNvWritten(t, h, i) }],
];
