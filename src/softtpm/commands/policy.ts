/**
 * Enhanced authorization (TPM 2.0 Part 3 §23): the policy assertions a policy or trial session
 * collects. Each one extends the session's policyDigest, `H(old ‖ TPM_CC ‖ args)`, and a policy
 * session (not a trial session) also checks it and records what authorization must check later
 * (Part 1 §19.7). Which entity a finished policy authorizes is the engine's authorization step.
 *
 * @packageDocumentation
 */
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_CC, TPM_HR, TPM_NT, TPM_RC, TPM_RH, TPM_ST, TPMA_NV } from "../../wire/constants.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { type PolicyState, nameOf, resetPolicy } from "../engine/auth.js";
import { findObject, hierarchySeed } from "../engine/objects.js";
import { hierarchyProof, isSigningKey, verifiedTicket, verifyDigest } from "../engine/sign.js";
import { readSignatureParam } from "./signature.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine, HmacSession } from "../engine/engine.js";
import type { NvIndexState } from "../state.js";
import { EMPTY, H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { HASH_IMPLS, type HashImpl, PCR_COUNT, hashImpl, hashIndex } from "../tables.js";
import { CLOCK_UPDATE_MS } from "../engine/limits.js";
import { constantTimeEqual } from "../../wire/bytes.js";
import { allocatedPcrs } from "./pcr.js";

/** Largest TPM2B_DIGEST / TPM2B_NONCE: the largest digest (SHA-512). */
const MAX_DIGEST = 64;
/** Largest TPM2B_NAME: a hash algorithm and the largest digest. */
const MAX_NAME = 2 + MAX_DIGEST;
/** TPMS_PCR_SELECTION.sizeofSelect SoftTpm takes (24 PCRs), as TPM2_PCR_Read. */
const PCR_SELECT_SIZE = 3;
/** TPML_DIGEST holds at most 8 digests (Part 2 §10.9.2). */
const MAX_DIGESTS = 8;
/**
 * Largest TPM2B_NAME a policy command takes as a parameter: libtpms sizes it as its TPMU_NAME
 * (a TPMT_HA or a handle), 68 bytes with padding; 69 is TPM_RC_SIZE (swtpm 0.7.1, measured with
 * TPM2_PolicyTicket authName and TPM2_PolicyDuplicationSelect objectName).
 */
const MAX_NAME_PARAM = 68;
/** TPM2B_TIMEOUT holds a UINT64 (Part 2 §10.4.10). */
const TIMEOUT_SIZE = 8;
/** Size of a marshalled TPMS_TIME_INFO: time, clock, resetCount, restartCount, safe (Part 2 §10.11.6). */
const TIME_INFO_SIZE = 25;
/**
 * Bit 63 of a TPM2B_TIMEOUT SoftTpm hands out: the ticket came without nonceTPM and so also
 * ends at the next TPM Reset (the timeout format is the TPM's own; libtpms uses the same flag).
 */
const EXPIRES_ON_RESET = 1n << 63n;

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

/**
 * proof(hierarchy) of a TPMT_TK_AUTH: the hierarchy's proof as for every ticket of this TPM; for
 * TPM_RH_NULL one from the NULL seed, so NULL tickets end at the next TPM Reset (as libtpms'
 * nullProof).
 */
function authTicketProof(t: Engine, hierarchy: number): Uint8Array {
  if (hierarchy === TPM_RH.NULL) return sha512(concatBytes(hierarchySeed(t, TPM_RH.NULL), u32be(hierarchy)));
  return hierarchyProof(t, hierarchy);
}

/**
 * The digest of a TPMT_TK_AUTH (Part 2 §10.7.5): HMAC(proof, ticketType ‖ timeout ‖ cpHashA ‖
 * policyRef ‖ authName) with HMAC-SHA-512, as every ticket of this TPM. A ticket made without
 * nonceTPM (`expiresOnReset`) also covers resetCount, so a TPM Reset voids it (libtpms binds its
 * totalResetCount the same way).
 */
function authTicketDigest(t: Engine, tag: number, hierarchy: number, timeout: bigint, expiresOnReset: boolean, cpHashA: Uint8Array, policyRef: Uint8Array, name: Uint8Array): Uint8Array {
  const to = new Uint8Array(8);
  new DataView(to.buffer).setBigUint64(0, timeout);
  const parts = [st(tag), to, cpHashA, policyRef, name];
  if (expiresOnReset) parts.push(u32be(t.ps.resetCount));
  return hmac(sha512, authTicketProof(t, hierarchy), concatBytes(...parts));
}

/**
 * The hierarchy of an authorizing entity, for its ticket (Part 3 §23.3, §23.4; reference code
 * EntityGetHierarchy): PLATFORM, ENDORSEMENT and NULL are their own, other permanent handles and
 * PCRs belong to OWNER, an NV index to PLATFORM when TPMA_NV_PLATFORMCREATE, an object to its
 * hierarchy.
 */
function entityHierarchy(t: Engine, h: number): number {
  if (h === TPM_RH.PLATFORM || h === TPM_RH.ENDORSEMENT || h === TPM_RH.NULL) return h;
  if (h >>> 24 === 0x01) return (t.nv(h)?.attributes ?? 0) & TPMA_NV.PLATFORMCREATE ? TPM_RH.PLATFORM : TPM_RH.OWNER;
  if (h >>> 24 === 0x80 || h >>> 24 === 0x81) return findObject(t, h)?.hierarchy ?? TPM_RH.NULL;
  return TPM_RH.OWNER;
}

/**
 * Writes timeout and policyTicket of PolicySigned / PolicySecret (Part 3 §23.3, §23.4): for a
 * negative expiration in a policy session, the timeout (bit 63 set when nonceTPM was empty) and a
 * TPMT_TK_AUTH ({@link authTicketDigest}); else an empty timeout and a NULL ticket.
 */
function writeAuthTicket(t: Engine, out: Out, tag: number, ticketed: boolean, hierarchy: number, timeout: number, expiresOnReset: boolean, cpHashA: Uint8Array, policyRef: Uint8Array, name: Uint8Array): void {
  if (ticketed) {
    const to = new Uint8Array(8);
    new DataView(to.buffer).setBigUint64(0, BigInt(timeout) | (expiresOnReset ? EXPIRES_ON_RESET : 0n));
    out.tpm2b(to);
    out.u16(tag);
    out.u32(hierarchy);
    out.tpm2b(authTicketDigest(t, tag, hierarchy, BigInt(timeout), expiresOnReset, cpHashA, policyRef, name));
    return;
  }
  out.tpm2b(EMPTY);
  out.u16(tag);
  out.u32(TPM_RH.NULL);
  out.u16(0);
}

/**
 * Records what PolicySigned, PolicySecret and PolicyTicket assert besides the digest (reference
 * code, PolicyContextUpdate): a non-empty cpHashA becomes the session's cpHash, and a timeout
 * shortens the session's.
 */
function contextUpdate(p: PolicyState, cpHashA: Uint8Array, timeout: number): void {
  if (cpHashA.length !== 0) p.cpHash = { kind: "cpHash", digest: cpHashA.slice() };
  if (timeout !== 0 && (p.timeout === 0 || timeout < p.timeout)) p.timeout = timeout;
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
    timeout = authTimeout(t, p, expiration, nonceTPM);
    parameterChecks(t, sess, p, nonceTPM, cpHashA, timeout, 1, 2, 4);
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
  contextUpdate(p, cpHashA, timeout);
  writeAuthTicket(t, out, TPM_ST.AUTH_SIGNED, expiration < 0 && !p.trial, key.hierarchy, timeout, nonceTPM.length === 0, cpHashA, policyRef, key.name);
}

const st = (tag: number): Uint8Array => Uint8Array.of(tag >>> 8, tag & 0xff);

/** TPM2_PolicyPCR, Part 3 §23.7. */
function policyPcr(t: Engine, h: number[], inp: In, out: Out): void {
  const pcrDigest = inp.tpm2b(MAX_DIGEST);
  inp.param = 2;
  const count = inp.u32();
  if (count > HASH_IMPLS.length) throw new Rc(P(TPM_RC.SIZE, 2));
  const sels: { alg: number; bank: number; mask: number }[] = [];
  for (let i = 0; i < count; i++) {
    const alg = inp.u16();
    if (!hashImpl(alg)) throw new Rc(P(TPM_RC.HASH, 2));
    const sz = inp.u8();
    if (sz !== PCR_SELECT_SIZE) throw new Rc(P(TPM_RC.VALUE, 2));
    const b = inp.bytes(sz);
    const bank = hashIndex(alg);
    // only allocated PCRs: the others are cleared from the selection, and the selection so
    // filtered enters the digest, in a trial session too (reference code, PCRComputeCurrentDigest
    // and FilterPcr; swtpm 0.7.1, measured with an unallocated SHA-1 bank)
    sels.push({ alg, bank, mask: (b[0]! | (b[1]! << 8) | (b[2]! << 16)) & allocatedPcrs(t, bank) });
  }
  inp.done();
  const pcrs = concatBytes(u32be(count), ...sels.map((s) => Uint8Array.of(s.alg >>> 8, s.alg & 0xff, PCR_SELECT_SIZE, s.mask & 0xff, (s.mask >>> 8) & 0xff, (s.mask >>> 16) & 0xff)));
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
    // a PCR changed since an earlier PolicyPCR of this session: TPM_RC_PCR_CHANGED, before the
    // digest is compared (reference code, PolicyPCR.c; swtpm 0.7.1, measured: 0x128)
    if (p.pcrCounter !== undefined && p.pcrCounter !== t.pcrUpdateCounter) throw new Rc(TPM_RC.PCR_CHANGED);
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
 * The timeout an expiration asks for (Part 3 §23.3, §23.4; reference code ComputeAuthTimeout), on
 * the TPM clock (ms) as every SoftTpm timeout: |expiration| seconds from the start of the policy
 * with a nonceTPM; without one, |expiration| is an absolute time (TPMS_TIME_INFO.time, seconds
 * since power-on) plus the current time's milliseconds. 0: no expiration.
 */
function authTimeout(t: Engine, p: PolicyState, expiration: number, nonce: Uint8Array): number {
  if (expiration === 0) return 0;
  const secs = expiration === -0x80000000 ? 0x7fffffff : Math.abs(expiration);
  if (nonce.length !== 0) return p.startTime + secs * 1000;
  const time = t.clockNow() - t.clockAtPowerOn;
  return t.clockAtPowerOn + secs * 1000 + (time % 1000);
}

/**
 * The nonce, timeout and cpHash checks of PolicySigned, PolicySecret and PolicyTicket (reference
 * code, Policy_spt.c PolicyParameterChecks): a nonceTPM, when given, must be the session's
 * (TPM_RC_NONCE); a timeout must not have passed (TPM_RC_EXPIRED); a cpHashA has the session
 * hash's size (TPM_RC_SIZE) and must equal a cpHash, nameHash or template hash set before
 * (TPM_RC_CPHASH). Parameter numbers 0 are never blamed.
 */
function parameterChecks(t: Engine, sess: HmacSession, p: PolicyState, nonce: Uint8Array, cpHashA: Uint8Array, timeout: number, nonceParam: number, cpParam: number, expParam: number): void {
  if (nonce.length !== 0 && !constantTimeEqual(nonce, sess.nonceTPM)) throw new Rc(P(TPM_RC.NONCE, nonceParam));
  if (timeout !== 0) {
    if (!t.persistence.available) throw new Rc(TPM_RC.NV_UNAVAILABLE); // Time needs a running clock
    if (timeout < t.clockNow()) throw new Rc(P(TPM_RC.EXPIRED, expParam));
  }
  if (cpHashA.length !== 0) {
    if (cpHashA.length !== sess.authHash.size) throw new Rc(P(TPM_RC.SIZE, cpParam));
    if (p.cpHash && !constantTimeEqual(p.cpHash.digest, cpHashA)) throw new Rc(TPM_RC.CPHASH);
  }
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
  let timeout = 0;
  if (!p.trial) {
    timeout = authTimeout(t, p, expiration, nonceTPM);
    parameterChecks(t, sess, p, nonceTPM, cpHashA, timeout, 1, 2, 4);
  }
  const name = nameOf(t, h[0]!);
  policyUpdate(sess, p, TPM_CC.PolicySecret, name, policyRef);
  contextUpdate(p, cpHashA, timeout);
  // a ticket for a negative expiration, with or without nonceTPM, but never for a PIN pass index
  // (its use is counted: a ticket would skip the count) (swtpm 0.7.1, measured)
  const pinPass = h[0]! >>> 24 === 0x01 && (((t.nv(h[0]!)?.attributes ?? 0) >>> 4) & 0xf) === TPM_NT.PIN_PASS;
  writeAuthTicket(t, out, TPM_ST.AUTH_SECRET, expiration < 0 && !p.trial && !pinPass, entityHierarchy(t, h[0]!), timeout, nonceTPM.length === 0, cpHashA, policyRef, name);
}

/**
 * TPM2_PolicyTicket, Part 3 §23.5: a TPMT_TK_AUTH from PolicySigned or PolicySecret stands in for
 * that assertion until its timeout. Not in a trial session (TPM_RC_ATTRIBUTES + handle 1); the
 * timeout is the 8 bytes the ticket came with (TPM_RC_SIZE + P1), checked as PolicySigned's
 * (TPM_RC_EXPIRED + P1; cpHashA: TPM_RC_SIZE + P2, TPM_RC_CPHASH), then the ticket
 * (TPM_RC_TICKET + P5); the digest is PolicyUpdate of the command the ticket stands for.
 */
function policyTicket(t: Engine, h: number[], inp: In): void {
  const timeoutBuf = inp.tpm2b(TIMEOUT_SIZE);
  inp.param = 2;
  const cpHashA = inp.tpm2b(MAX_DIGEST);
  inp.param = 3;
  const policyRef = inp.tpm2b(MAX_DIGEST);
  inp.param = 4;
  const authName = inp.tpm2b(MAX_NAME_PARAM);
  inp.param = 5;
  const tag = inp.u16();
  if (tag !== TPM_ST.AUTH_SIGNED && tag !== TPM_ST.AUTH_SECRET) throw new Rc(P(TPM_RC.TAG, 5));
  const hierarchy = inp.u32();
  if (!isHierarchy(hierarchy)) throw new Rc(P(TPM_RC.VALUE, 5));
  const ticket = inp.tpm2b(MAX_DIGEST);
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  if (p.trial) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  if (timeoutBuf.length !== TIMEOUT_SIZE) throw new Rc(P(TPM_RC.SIZE, 1));
  const raw = new DataView(timeoutBuf.buffer, timeoutBuf.byteOffset, 8).getBigUint64(0);
  const expiresOnReset = (raw & EXPIRES_ON_RESET) !== 0n;
  const timeout64 = raw & ~EXPIRES_ON_RESET;
  // a timeout beyond the clock's range can only be one this TPM never issued: it fails the HMAC
  const timeout = timeout64 > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(timeout64);
  parameterChecks(t, sess, p, EMPTY, cpHashA, timeout, 0, 2, 1);
  const want = authTicketDigest(t, tag, hierarchy, timeout64, expiresOnReset, cpHashA, policyRef, authName);
  if (!constantTimeEqual(ticket, want)) throw new Rc(P(TPM_RC.TICKET, 5));
  policyUpdate(sess, p, tag === TPM_ST.AUTH_SIGNED ? TPM_CC.PolicySigned : TPM_CC.PolicySecret, authName, policyRef);
  contextUpdate(p, cpHashA, timeout);
}

/** TPMI_RH_HIERARCHY with TPM_RH_NULL allowed (Part 2 §9.13). */
function isHierarchy(h: number): boolean {
  return h === TPM_RH.OWNER || h === TPM_RH.ENDORSEMENT || h === TPM_RH.PLATFORM || h === TPM_RH.NULL;
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
  else if (a.length > 0 && a[0]! & 0x80) signed = -unsigned; // both negative: libtpms reverses the unsigned order (two's complement would keep it: 0x81 < 0x82 as -127 < -126); the peer wins (swtpm 0.7.1, measured over 280 cases)
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

/**
 * NvReadAccessChecks (Part 3 §31.2.2; reference code NV_spt.c): a read-locked index is
 * TPM_RC_NV_LOCKED; an index authorizes only itself, OWNER needs TPMA_NV_OWNERREAD and PLATFORM
 * TPMA_NV_PPREAD (TPM_RC_NV_AUTHORIZATION); an index never written is TPM_RC_NV_UNINITIALIZED.
 */
function nvReadAccessChecks(auth: number, nv: NvIndexState): void {
  if (nv.attributes & TPMA_NV.READLOCKED) throw new Rc(TPM_RC.NV_LOCKED);
  if (auth >>> 24 === 0x01 && auth !== nv.handle) throw new Rc(TPM_RC.NV_AUTHORIZATION);
  if (auth === TPM_RH.OWNER && !(nv.attributes & TPMA_NV.OWNERREAD)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
  if (auth === TPM_RH.PLATFORM && !(nv.attributes & TPMA_NV.PPREAD)) throw new Rc(TPM_RC.NV_AUTHORIZATION);
  if (!(nv.attributes & TPMA_NV.WRITTEN)) throw new Rc(TPM_RC.NV_UNINITIALIZED);
}

/**
 * The parameters PolicyNV and PolicyCounterTimer share: operandB, offset and a TPM_EO operation
 * (an operation past TPM_EO_BITCLEAR is TPM_RC_VALUE + P3), read to the end of the command.
 */
function readComparison(inp: In): { operandB: Uint8Array; offset: number; operation: number } {
  const operandB = inp.tpm2b(MAX_OPERAND);
  inp.param = 2;
  const offset = inp.u16();
  inp.param = 3;
  const operation = inp.u16();
  if (operation > 0x000b) throw new Rc(P(TPM_RC.VALUE, 3)); // TPM_EO
  inp.done();
  return { operandB, offset, operation };
}

/** args of PolicyNV and PolicyCounterTimer: H(operandB ‖ offset ‖ operation) (Part 3 §23.9, §23.10). */
function comparisonArgs(h: HashImpl, operandB: Uint8Array, offset: number, operation: number): Uint8Array {
  return h.hash(concatBytes(operandB, Uint8Array.of(offset >>> 8, offset & 0xff, operation >>> 8, operation & 0xff)));
}

/** TPM2_PolicyNV, Part 3 §23.9. */
function policyNv(t: Engine, h: number[], inp: In): void {
  const { operandB, offset, operation } = readComparison(inp);
  const { sess, p } = policyOf(t, h[2]!);
  const nv = t.nv(h[1]!)!;
  if (!p.trial) {
    nvReadAccessChecks(h[0]!, nv);
    if (offset > nv.dataSize) throw new Rc(P(TPM_RC.VALUE, 2));
    if (nv.dataSize - offset < operandB.length) throw new Rc(P(TPM_RC.SIZE, 1));
    if (!compare(operation, nv.data.subarray(offset, offset + operandB.length), operandB)) throw new Rc(TPM_RC.POLICY);
  }
  const args = comparisonArgs(sess.authHash, operandB, offset, operation);
  extend(sess, p, TPM_CC.PolicyNV, args, nameOf(t, nv.handle));
}

/**
 * TPMS_TIME_INFO now, marshalled (Part 2 §10.11.6): time (ms since power-on), then TPMS_CLOCK_INFO
 * (clock, resetCount, restartCount, safe) as TPM2_ReadClock reports them (Part 3 §29.1).
 */
function timeInfo(t: Engine): Uint8Array {
  const clock = t.clockNow();
  if (!t.ps.clockSafe && clock - t.clockAtPowerOn >= CLOCK_UPDATE_MS) t.ps.clockSafe = true;
  const b = new Uint8Array(TIME_INFO_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(Math.max(0, Math.floor(t.clock.now() - t.powerOnAt))));
  v.setBigUint64(8, BigInt(clock));
  v.setUint32(16, t.ps.resetCount >>> 0);
  v.setUint32(20, t.ps.restartCount >>> 0);
  b[24] = t.ps.clockSafe ? 1 : 0;
  return b;
}

/**
 * TPM2_PolicyCounterTimer, Part 3 §23.10: operandB compared (TPM_EO, as PolicyNV) with the bytes
 * of TPMS_TIME_INFO at offset. An operation past TPM_EO_BITCLEAR is TPM_RC_VALUE + P3, an offset
 * past the 25 bytes TPM_RC_VALUE + P2 and a range past them TPM_RC_RANGE (no parameter: libtpms,
 * swtpm 0.7.1, measured), in a trial session too; a policy session fails the comparison with
 * TPM_RC_POLICY. Digest: H(old ‖ TPM_CC ‖ H(operandB ‖ offset ‖ operation)).
 */
function policyCounterTimer(t: Engine, h: number[], inp: In): void {
  const { operandB, offset, operation } = readComparison(inp);
  if (offset > TIME_INFO_SIZE) throw new Rc(P(TPM_RC.VALUE, 2));
  if (offset + operandB.length > TIME_INFO_SIZE) throw new Rc(TPM_RC.RANGE);
  const { sess, p } = policyOf(t, h[0]!);
  if (!p.trial) {
    // time and clock (the first 16 bytes) stop when NV is unavailable (reference code)
    if (offset < 16 && !t.persistence.available) throw new Rc(TPM_RC.NV_UNAVAILABLE);
    const info = timeInfo(t);
    if (!compare(operation, info.subarray(offset, offset + operandB.length), operandB)) throw new Rc(TPM_RC.POLICY);
  }
  const args = comparisonArgs(sess.authHash, operandB, offset, operation);
  extend(sess, p, TPM_CC.PolicyCounterTimer, args);
}

/**
 * TPM2_PolicyDuplicationSelect, Part 3 §23.15: TPM2_Duplicate only, of objectName to
 * newParentName. includeObject is a TPMI_YES_NO (TPM_RC_VALUE + P3); a cpHash, nameHash or
 * template hash already set is TPM_RC_CPHASH, a command code already set TPM_RC_COMMAND_CODE (in
 * that order, swtpm 0.7.1, measured). The session's nameHash becomes H(objectName ‖
 * newParentName) and its command code TPM_CC_Duplicate; the digest takes objectName only with
 * includeObject YES: H(old ‖ TPM_CC ‖ [objectName] ‖ newParentName ‖ includeObject).
 */
function policyDuplicationSelect(t: Engine, h: number[], inp: In): void {
  const objectName = inp.tpm2b(MAX_NAME_PARAM);
  inp.param = 2;
  const newParentName = inp.tpm2b(MAX_NAME_PARAM);
  inp.param = 3;
  const includeObject = inp.u8();
  if (includeObject > 1) throw new Rc(P(TPM_RC.VALUE, 3));
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  if (p.cpHash) throw new Rc(TPM_RC.CPHASH);
  if (p.commandCode !== undefined) throw new Rc(TPM_RC.COMMAND_CODE);
  p.cpHash = { kind: "nameHash", digest: sess.authHash.hash(concatBytes(objectName, newParentName)) };
  extend(sess, p, TPM_CC.PolicyDuplicationSelect, includeObject ? objectName : EMPTY, newParentName, Uint8Array.of(includeObject));
  p.commandCode = TPM_CC.Duplicate;
}

/**
 * TPM2_PolicyAuthorizeNV, Part 3 §23.22: the policy approved is the TPMT_HA at the start of the NV
 * index (read as PolicyNV reads, authorized by the index or OWNER / PLATFORM: NvReadAccessChecks).
 * Too few bytes for a TPMT_HA is TPM_RC_INSUFFICIENT, a hash that is not one of SoftTpm's or not
 * the session's TPM_RC_HASH, another digest than the session's TPM_RC_VALUE (each without a
 * parameter, swtpm 0.7.1, measured); a trial session checks nothing. Then the digest is reset and
 * extended with the index's Name: H(0…0 ‖ TPM_CC ‖ nvIndexName).
 */
function policyAuthorizeNv(t: Engine, h: number[], inp: In): void {
  inp.done();
  const nv = t.nv(h[1]!)!;
  const { sess, p } = policyOf(t, h[2]!);
  if (!p.trial) {
    nvReadAccessChecks(h[0]!, nv);
    const data = nv.data.subarray(0, Math.min(nv.dataSize, 2 + MAX_DIGEST));
    if (data.length < 2) throw new Rc(TPM_RC.INSUFFICIENT);
    const alg = hashImpl((data[0]! << 8) | data[1]!);
    if (!alg) throw new Rc(TPM_RC.HASH);
    if (data.length < 2 + alg.size) throw new Rc(TPM_RC.INSUFFICIENT);
    if (alg.alg !== sess.authHash.alg) throw new Rc(TPM_RC.HASH);
    if (!constantTimeEqual(data.subarray(2, 2 + alg.size), p.digest)) throw new Rc(TPM_RC.VALUE);
  }
  p.digest = new Uint8Array(sess.authHash.size);
  extend(sess, p, TPM_CC.PolicyAuthorizeNV, nameOf(t, nv.handle));
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

/**
 * TPM2_PolicyPhysicalPresence, Part 3 §23.12: authorization will need physical presence. The
 * digest is H(old ‖ TPM_CC_PolicyPhysicalPresence); the authorization checks it (`checkPolicyRestrictions`:
 * without a physical-presence indication it is TPM_RC_PP, as swtpm answers).
 */
function policyPhysicalPresence(t: Engine, h: number[], inp: In): void {
  inp.done();
  const { sess, p } = policyOf(t, h[0]!);
  extend(sess, p, TPM_CC.PolicyPhysicalPresence);
  p.ppRequired = true;
}

/** TPM2_PolicyRestart, Part 3 §11.2: the policy data starts over, the nonces stay. */
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
  [TPM_CC.PolicyTicket, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i) => policyTicket(t, h, i) }],
  [TPM_CC.PolicyCounterTimer, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i) => policyCounterTimer(t, h, i) }],
  [TPM_CC.PolicyDuplicationSelect, { handles: ["policySession"], auth: 0, decrypt: true, run: (t, h, i) => policyDuplicationSelect(t, h, i) }],
  [TPM_CC.PolicyAuthorizeNV, { handles: ["nvAuth", "nvIndex", "policySession"], auth: 1, run: (t, h, i) => policyAuthorizeNv(t, h, i) }],
  [TPM_CC.PolicyPhysicalPresence, { handles: ["policySession"], auth: 0, run: (t, h, i) => policyPhysicalPresence(t, h, i) }],
];
