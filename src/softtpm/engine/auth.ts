/**
 * Authorization in the SoftTpm engine: the session area of a command (TPM 2.0 Part 1 §18.6),
 * password (TPM_RS_PW) and unsalted HMAC sessions (Part 1 §19.6), the entities' auth values and
 * dictionary-attack protection (Part 1 §19.8), and the session area of a response. Every check
 * comes in libtpms order, as swtpm 0.7.1 answers (measured).
 *
 * @packageDocumentation
 */
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_ALG, TPM_CC, TPM_HR, TPM_HT, TPM_NT, TPM_PT, TPM_RC, TPM_RH, TPM_RS, TPMA_NV, TPMA_OBJECT, TPMA_SESSION } from "../../wire/constants.js";
import { AUTH_MAX, type HierarchyPolicyState, type NvIndexState, daParameters } from "../state.js";
import { type HashImpl, PCR_COUNT, PCR_PROPERTIES, hashImpl } from "../tables.js";
import { aesCfb, kdfa, kdfe } from "./crypto.js";

export { kdfa, kdfe };
import { auditResponse, checkAuditSession } from "./audit.js";
import { nameOf } from "./names.js";

export { nameOf };
import type { CommandSpec } from "./dispatch.js";
import type { Engine, HmacSession } from "./engine.js";
import { MAX_SESSION_NUM, SESSION_HANDLE_RANGE } from "./limits.js";
import { EMPTY, H, type In, type Out, Rc, S, nvPublicBytes } from "./marshal.js";
import { findObject } from "./objects.js";
import { constantTimeEqual } from "../../wire/bytes.js";

/**
 * What a policy or trial session has asserted so far (Part 1 §19.7; the reference code's SESSION
 * fields policyDigest, pcrCounter, commandCode, isAuthValueNeeded, isPasswordNeeded, timeout).
 */
export interface PolicyState {
  /** A trial session (TPM_SE_TRIAL): computes a digest, checks nothing, authorizes nothing. */
  trial: boolean;
  /** policyDigest, the session hash's size. */
  digest: Uint8Array;
  /** TPM clock (ms) when the policy data was last reset: the start of the expiration intervals. */
  startTime: number;
  /** TPM clock (ms) after which the session no longer authorizes (0: no timeout). */
  timeout: number;
  /** pcrUpdateCounter when TPM2_PolicyPCR ran (undefined: no PolicyPCR). */
  pcrCounter: number | undefined;
  /** The command TPM2_PolicyCommandCode allows (undefined: any). */
  commandCode: number | undefined;
  /** TPM2_PolicyAuthValue: the entity's authValue enters the HMAC. */
  authValueNeeded: boolean;
  /** TPM2_PolicyPassword: the HMAC field carries the entity's authValue in clear. */
  passwordNeeded: boolean;
  /**
   * The digest TPM2_PolicyCpHash, TPM2_PolicyNameHash or TPM2_PolicyTemplate set (one at a time:
   * the reference code keeps them in one union, `u1`), and which one (undefined: none).
   */
  cpHash?: { kind: "cpHash" | "nameHash" | "template"; digest: Uint8Array } | undefined;
  /** TPMA_LOCALITY from TPM2_PolicyLocality (0 or undefined: any locality). */
  locality?: number | undefined;
  /** TPM2_PolicyNvWritten: the TPMA_NV_WRITTEN state the NV index must have (undefined: no check). */
  nvWritten?: boolean | undefined;
  /** TPM2_PolicyPhysicalPresence: physical presence must be asserted at authorization (Part 3 §23.12). */
  ppRequired?: boolean | undefined;
}

/** Fresh policy data (Part 3 §11.1 and §23.12 PolicyRestart): zero digest, nothing asserted. */
export function resetPolicy(p: PolicyState, size: number, now: number): void {
  p.digest = new Uint8Array(size);
  p.startTime = now;
  p.timeout = 0;
  p.pcrCounter = undefined;
  p.commandCode = undefined;
  p.authValueNeeded = false;
  p.passwordNeeded = false;
  p.cpHash = undefined;
  p.locality = undefined;
  p.nvWritten = undefined;
  p.ppRequired = undefined;
}

/** The PCRs of the one PCR policy group (TPM_PT_PCR_POLICY, as libtpms 0.9 reports it: 20–22). */
export const PCR_POLICY_GROUP = /* @__PURE__ */ PCR_PROPERTIES.find(([tag]) => tag === TPM_PT.PCR_POLICY)![1];
/** The PCRs of the one PCR authorization group (TPM_PT_PCR_AUTH: 20–22). */
export const PCR_AUTH_GROUP = /* @__PURE__ */ PCR_PROPERTIES.find(([tag]) => tag === TPM_PT.PCR_AUTH)![1];

/** `b` without its trailing zero bytes. */
export function trimZeros(b: Uint8Array): Uint8Array {
  let n = b.length;
  while (n > 0 && b[n - 1] === 0) n--;
  return b.subarray(0, n);
}


/** Constant-time comparison of a password with an auth value, trailing zeros ignored (Part 1 §19.8.4). */
function authEqual(given: Uint8Array, expected: Uint8Array): boolean {
  const a = trimZeros(given);
  const b = trimZeros(expected);
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * Reads the authorization area (Part 1 §18.6) into the engine's session buffers, each field
 * checked as it is read (libtpms order).
 *
 * @returns the number of sessions
 */
export function parseSessions(t: Engine, inp: In, spec: CommandSpec): number {
  const forbidden = spec.noSessions === true;
  if (inp.end - inp.pos < 4) throw new Rc(TPM_RC.INSUFFICIENT);
  const authSize = inp.u32();
  if (authSize < 9 || authSize > inp.end - inp.pos) throw new Rc(TPM_RC.SIZE);
  if (forbidden) throw new Rc(TPM_RC.AUTH_CONTEXT); // after the area size check, as libtpms
  const areaEnd = inp.pos + authSize;
  const saveEnd = inp.end;
  inp.end = areaEnd;
  let n = 0;
  while (inp.pos < areaEnd) {
    n++;
    if (n > MAX_SESSION_NUM) throw new Rc(S(TPM_RC.SIZE, n)); // more than MAX_SESSION_NUM, as libtpms answers
    // unmarshal, each field checked as it is read (libtpms order)
    const insufficient = S(TPM_RC.INSUFFICIENT, n);
    if (inp.end - inp.pos < 4) throw new Rc(insufficient);
    const handle = inp.u32();
    const ht = handle >>> 24;
    const slot = handle & TPM_HR.HANDLE_MASK;
    if (handle !== TPM_RS.PW && !((ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION) && slot < SESSION_HANDLE_RANGE)) throw new Rc(S(TPM_RC.VALUE, n));
    if (inp.end - inp.pos < 2) throw new Rc(insufficient);
    const nonceSize = inp.u16();
    if (nonceSize > AUTH_MAX) throw new Rc(S(TPM_RC.SIZE, n));
    if (nonceSize > inp.end - inp.pos) throw new Rc(insufficient);
    const nonce = inp.buf.subarray(inp.pos, inp.pos + nonceSize);
    inp.pos += nonceSize;
    if (inp.end - inp.pos < 1) throw new Rc(insufficient);
    const attrs = inp.u8();
    if (attrs & TPMA_SESSION.RESERVED1_MASK) throw new Rc(S(TPM_RC.RESERVED_BITS, n));
    if (inp.end - inp.pos < 2) throw new Rc(insufficient);
    const hmacSize = inp.u16();
    if (hmacSize > AUTH_MAX) throw new Rc(S(TPM_RC.SIZE, n));
    if (hmacSize > inp.end - inp.pos) throw new Rc(insufficient);
    const auth = inp.buf.subarray(inp.pos, inp.pos + hmacSize);
    inp.pos += hmacSize;
    let sess: HmacSession | undefined;
    if (handle === TPM_RS.PW) {
      if (nonceSize !== 0) throw new Rc(S(TPM_RC.NONCE, n));
    } else {
      // libtpms finds the session by its slot; a policy-session handle naming a loaded HMAC
      // session is TPM_RC_HANDLE, before the nonce size check (swtpm 0.7.1, measured)
      sess = t.hmacSessions.get((TPM_HR.HMAC_SESSION | slot) >>> 0);
      if (!sess) throw new Rc(TPM_RC.REFERENCE_S0 + n - 1);
      // the handle type must match the session's (reference code, SessionProcess.c RetrieveSessionData)
      if ((ht === TPM_HT.POLICY_SESSION) !== (sess.policy !== undefined)) throw new Rc(S(TPM_RC.HANDLE, n));
      // no size check on nonceCaller here: libtpms takes any TPM2B_NONCE (0–64 bytes) in a
      // session, and a wrong one just makes the HMAC fail (swtpm 0.7.1, measured)
      for (let j = 0; j < n - 1; j++) if (t.sessionObjs[j] === sess) throw new Rc(S(TPM_RC.HANDLE, n)); // used twice
    }
    if (!sess) {
      // a password session: continueSession only
      if (attrs & ~TPMA_SESSION.CONTINUESESSION) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
    } else {
      // decrypt / encrypt (reference code, SessionProcess.c RetrieveSessionData): TPM_RC_ATTRIBUTES
      // when the command has no TPM2B parameter there or a second session asks for the same,
      // TPM_RC_SYMMETRIC for a session without a symmetric algorithm; the audit bits (audit,
      // auditExclusive, auditReset) are accepted, as libtpms does (swtpm 0.7.1, measured)
      for (const [bit, allowed] of [[TPMA_SESSION.DECRYPT, spec.decrypt], [TPMA_SESSION.ENCRYPT, spec.encrypt]] as const) {
        if (!(attrs & bit)) continue;
        if (!allowed) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
        for (let j = 0; j < n - 1; j++) if (t.sessionObjs[j] && t.sessionAttrs[j]! & bit) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
        if (!sess.symmetric) throw new Rc(S(TPM_RC.SYMMETRIC, n));
      }
      checkAuditSession(t, sess, attrs, n); // audit, auditExclusive (engine/audit.ts)
    }
    // a trial session authorizes nothing (reference code, SessionProcess.c ParseSessionBuffer)
    if (sess?.policy?.trial) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
    t.sessionAttrs[n - 1] = attrs;
    t.sessionAuths[n - 1] = auth;
    t.sessionNonces[n - 1] = nonce;
    t.sessionObjs[n - 1] = sess;
    t.emptyHmac[n - 1] = false;
  }
  inp.end = saveEnd;
  t.sessionObjs.length = n; // this command's sessions only (cryptNonces looks at all of them)
  return n;
}


/**
 * The entity's authValue for authorization of handle `h` by command `code` (Part 1 §19.8),
 * with the DA class of a failure. Throws TPM_RC_AUTH_UNAVAILABLE / TPM_RC_LOCKOUT. `code` 0:
 * no command (the bind entity of a new session).
 */
function entityAuth(t: Engine, code: number, h: number): { value: Uint8Array; daProtected: boolean; isLockout: boolean } {
  // a PCR of the authorization group has its group's authValue (TPM2_PCR_SetAuthValue); PCRs are not DA-protected
  if (h < PCR_COUNT) return { value: (PCR_AUTH_GROUP >>> h) & 1 ? hierarchyState(t).pcrAuth : EMPTY, daProtected: false, isLockout: false };
  if (h === TPM_RH.NULL) return { value: EMPTY, daProtected: false, isLockout: false };
  if (h === TPM_RH.OWNER) return { value: t.ps.ownerAuth, daProtected: false, isLockout: false };
  if (h === TPM_RH.ENDORSEMENT) return { value: t.ps.endorsementAuth, daProtected: false, isLockout: false };
  if (h === TPM_RH.PLATFORM) return { value: t.platformAuth, daProtected: false, isLockout: false };
  if (h === TPM_RH.LOCKOUT) {
    if (t.ps.lockoutAuthDisabled) {
      if (t.lockoutUntil > t.clockNow()) throw new Rc(TPM_RC.LOCKOUT);
      t.ps.lockoutAuthDisabled = false; // lockoutRecovery has passed
      t.markDirty();
    }
    return { value: t.ps.lockoutAuth, daProtected: false, isLockout: true };
  }
  if (h >>> 24 === TPM_HT.NV_INDEX) {
    const nv = t.nv(h);
    if (!nv) return { value: EMPTY, daProtected: false, isLockout: false };
    const daProtected = (nv.attributes & TPMA_NV.NO_DA) === 0;
    // a DA lockout first, then the pending RETRY (which stays pending), then availability: the
    // libtpms order (swtpm 0.7.1, measured)
    if (daProtected && code !== 0 && t.inLockout()) throw new Rc(TPM_RC.LOCKOUT);
    if (daProtected && code !== 0 && t.daPending) {
      t.daPending = false;
      t.markDaUsed();
      throw new Rc(TPM_RC.RETRY);
    }
    // the ADMIN role of an NV index (NV_ChangeAuth, Part 3 §31.8) takes a policy session only
    // (Part 1 §19.7.2): a password or HMAC session is TPM_RC_AUTH_TYPE (swtpm 0.7.1, measured;
    // the nvIndex of NV_UndefineSpaceSpecial too, §31.5)
    if (code === TPM_CC.NV_ChangeAuth || code === TPM_CC.NV_UndefineSpaceSpecial) throw new Rc(TPM_RC.AUTH_TYPE);
    const isRead = code === TPM_CC.NV_Read || code === TPM_CC.NV_ReadLock || code === TPM_CC.PolicyNV || code === TPM_CC.NV_Certify || code === TPM_CC.PolicyAuthorizeNV;
    if (!(nv.attributes & (isRead ? TPMA_NV.AUTHREAD : TPMA_NV.AUTHWRITE))) throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
    return { value: nv.authValue, daProtected, isLockout: false };
  }
  const obj = findObject(t, h);
  if (obj) {
    // Part 1 §19.7.2: the USER role with a password or HMAC needs userWithAuth, the ADMIN role
    // (ObjectChangeAuth, Part 3 §12.8) needs adminWithPolicy clear; else only a policy session
    // could authorize (TPM_RC_AUTH_UNAVAILABLE)
    const a = obj.pub.objectAttributes;
    // the DUP role (objectHandle of Duplicate, Part 1 §19.7.2 / Part 3 §13.1) takes a policy
    // session only: a password or HMAC session is TPM_RC_AUTH_TYPE, whatever userWithAuth and
    // the password (swtpm 0.7.1, measured: before the authValue is looked at)
    if (code === TPM_CC.Duplicate && h === t.handles[0]) throw new Rc(TPM_RC.AUTH_TYPE);
    // the first handle of Certify (Part 3 §18.2) and ActivateCredential (§12.5) is in the ADMIN role too
    const admin = code === TPM_CC.ObjectChangeAuth || ((code === TPM_CC.Certify || code === TPM_CC.ActivateCredential) && h === t.handles[0]);
    if (obj.publicOnly && code !== 0) throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
    // (the ADMIN role with adminWithPolicy is TPM_RC_AUTH_TYPE: swtpm 0.7.1, measured, for Certify, ActivateCredential and ObjectChangeAuth)
    if (code !== 0 && admin && (a & TPMA_OBJECT.ADMINWITHPOLICY) !== 0) throw new Rc(TPM_RC.AUTH_TYPE);
    if (code !== 0 && !admin && (a & TPMA_OBJECT.USERWITHAUTH) === 0) throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
    const daProtected = (a & TPMA_OBJECT.NODA) === 0;
    if (daProtected && code !== 0 && t.inLockout()) throw new Rc(TPM_RC.LOCKOUT);
    return { value: obj.sensitive.authValue, daProtected, isLockout: false };
  }
  const seq = t.sequences.get(h);
  return { value: seq ? seq.authValue : EMPTY, daProtected: false, isLockout: false };
}

/**
 * The authValue of the entity a new session binds to (empty when it has none or is unavailable):
 * without the role checks of an authorization, so an NV index without TPMA_NV_AUTHWRITE binds
 * with its authValue too (reference code EntityGetAuthValue; swtpm 0.7.1, measured with an
 * AUTHREAD-only index).
 */
export function bindAuthValue(t: Engine, h: number): Uint8Array {
  try {
    return entityAuthValue(t, h).value;
  } catch {
    return EMPTY;
  }
}

/** The entity a bound session was bound to: its Name and (trimmed) authValue at TPM2_StartAuthSession. */
interface BindEntity {
  name: Uint8Array;
  auth: Uint8Array;
}

/** Per engine, by session handle: the bind entity of each bound HMAC session (kept across ContextSave / ContextLoad, which keep the handle). */
const BIND_ENTITIES = new WeakMap<Engine, Map<number, BindEntity>>();

/**
 * Per engine, the state of the command being run, by session index: whether the HMAC session was
 * bound to the entity it authorized (decided before the command ran), and the authValue the
 * authorization used.
 */
const COMMAND_AUTH = new WeakMap<Engine, { bound: boolean[]; value: Uint8Array[] }>();

function commandAuth(t: Engine): { bound: boolean[]; value: Uint8Array[] } {
  let c = COMMAND_AUTH.get(t);
  if (!c) COMMAND_AUTH.set(t, (c = { bound: [], value: [] }));
  return c;
}

/**
 * Records the entity a new HMAC session `handle` is bound to (TPM2_StartAuthSession, Part 3
 * §11.1): its Name and authValue then. `bind` undefined: not bound (a previous session's record
 * under the same handle is dropped).
 */
export function recordBindEntity(t: Engine, handle: number, bind: number | undefined): void {
  let m = BIND_ENTITIES.get(t);
  if (!m) BIND_ENTITIES.set(t, (m = new Map()));
  if (bind === undefined) m.delete(handle);
  else m.set(handle, { name: nameOf(t, bind).slice(), auth: trimZeros(bindAuthValue(t, bind)).slice() });
}

/**
 * Whether HMAC session `sess` is bound to entity `h` now (Part 1 §19.6.11; reference code,
 * SessionProcess.c IsSessionBindEntity): the same handle, and the same Name and authValue as at
 * TPM2_StartAuthSession. An NV index's Name changes with its attributes (TPMA_NV_WRITTEN after the
 * first write), an authValue with a ChangeAuth: the session is then no longer bound and its HMAC
 * key takes the authValue (swtpm 0.7.1, measured: bind to an NV index, write twice).
 */
function isBindEntity(t: Engine, sess: HmacSession, h: number): boolean {
  if (sess.bind === undefined || sess.bind !== h) return false;
  const b = BIND_ENTITIES.get(t)?.get(sess.handle);
  if (!b) return true; // no record (never expected): by the handle alone
  return constantTimeEqual(nameOf(t, h), b.name) && constantTimeEqual(trimZeros(bindAuthValue(t, h)), b.auth);
}

/**
 * The authValue of entity `h` for the response HMAC of session i: the entity's value now (after
 * TPM2_HierarchyChangeAuth the new one), or, when the command flushed the entity (a sequence
 * object after TPM2_SequenceComplete / TPM2_EventSequenceComplete), the value its authorization
 * used (reference code: the sequence object is flushed only after the response is built;
 * swtpm 0.7.1, measured).
 */
function responseAuthValue(t: Engine, h: number, i: number, current: () => Uint8Array): Uint8Array {
  if (h >>> 24 === TPM_HT.TRANSIENT && !t.sequences.has(h) && !findObject(t, h)) return commandAuth(t).value[i] ?? EMPTY;
  try {
    return current();
  } catch {
    return EMPTY;
  }
}

/** sessionKey ‖ authValue (authValue left out when the session is bound to this entity). */
function sessionHmacKey(t: Engine, sess: HmacSession, code: number, h: number | undefined, bound: boolean): Uint8Array {
  if (h === undefined || bound) return sess.sessionKey;
  return concatBytes(sess.sessionKey, trimZeros(entityAuth(t, code, h).value));
}

/**
 * Authorizes handle `handles[i]` with session i + 1: a password (Part 1 §19.8.4) or an HMAC
 * session (Part 1 §19.6: HMAC(sessionKey ‖ authValue, cpHash ‖ nonceCaller ‖ nonceTPM ‖ attrs)).
 * A failure counts against dictionary-attack protection as Part 1 §19.8.6 says.
 */
export function authorize(t: Engine, code: number, handles: number[], nh: number, i: number, cmd: Uint8Array, paramAt: number, locality = 0): void {
  const h = handles[i]!;
  const n = i + 1;
  const sess = t.sessionObjs[i];
  if (sess?.policy) {
    authorizePolicy(t, code, handles, nh, i, cmd, paramAt, sess, sess.policy, locality);
    return;
  }
  const ent = entityAuth(t, code, h);
  const ca = commandAuth(t);
  ca.value[i] = ent.value;
  ca.bound[i] = sess !== undefined && isBindEntity(t, sess, h);
  const da = ent.daProtected || sess?.daBound === true;
  // NV that cannot be written refuses a DA-protected authorization before its value is checked:
  // a failure could not be counted, and answering "wrong" vs "right" would let guesses through
  // without lockout (TPM 2.0 reference code, SessionProcess.c CheckAuthSession: NvIsAvailable()
  // for entities that are not DA-exempt)
  if ((da || ent.isLockout) && !t.persistence.available) throw new Rc(TPM_RC.NV_UNAVAILABLE);
  if (da && t.inLockout()) throw new Rc(TPM_RC.LOCKOUT);
  if (da && t.daPending) {
    // the pending DA RETRY (see daRetryAfterStartup) also hits a DA-bound session
    t.daPending = false;
    t.markDaUsed();
    throw new Rc(TPM_RC.RETRY);
  }
  const pin = pinIndex(t, h);
  if (pin && !pinAvailable(pin)) throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
  let ok: boolean;
  if (!sess) {
    ok = authEqual(t.sessionAuths[i]!, ent.value);
  } else {
    const key = sessionHmacKey(t, sess, code, h, ca.bound[i]!);
    ok = checkHmac(t, sess, code, handles, nh, i, cmd, paramAt, key);
  }
  if (pin) pinCounted(t, pin, ok);
  if (ok) return;
  authFailed(t, ent, da, n);
}

/** The PIN fail or PIN pass index (TPM_NT_PIN_FAIL / _PIN_PASS, Part 2 §13.4) handle `h` names, if it does. */
function pinIndex(t: Engine, h: number): NvIndexState | undefined {
  if (h >>> 24 !== TPM_HT.NV_INDEX) return undefined;
  const nv = t.nv(h);
  const nt = nv ? (nv.attributes >>> 4) & 0xf : 0;
  return nt === TPM_NT.PIN_FAIL || nt === TPM_NT.PIN_PASS ? nv : undefined;
}

/**
 * A PIN index's authValue serves while pinCount < pinLimit (Part 2 TPMS_NV_PIN_COUNTER_PARAMETERS: two
 * big-endian UINT32), an unwritten index's never: else TPM_RC_AUTH_UNAVAILABLE, before the value is compared
 * (swtpm 0.7.1, measured).
 */
function pinAvailable(nv: NvIndexState): boolean {
  if (!(nv.attributes & TPMA_NV.WRITTEN)) return false;
  const d = new DataView(nv.data.buffer, nv.data.byteOffset, 8);
  return d.getUint32(0) < d.getUint32(4);
}

/**
 * Counts an authorization with a PIN index's authValue (Part 2 §13.4 TPM_NT; swtpm 0.7.1, measured): a
 * PIN pass index counts each success, a PIN fail index each failure and starts again from 0 on a
 * success. The count stays even when the command then fails.
 */
function pinCounted(t: Engine, nv: NvIndexState, ok: boolean): void {
  const d = new DataView(nv.data.buffer, nv.data.byteOffset, 8);
  const fail = ((nv.attributes >>> 4) & 0xf) === TPM_NT.PIN_FAIL;
  if (fail && ok) d.setUint32(0, 0);
  else if (fail || ok) d.setUint32(0, (d.getUint32(0) + 1) >>> 0);
  else return;
  t.markDirty();
}

/** cpHash of the command (Part 1 §18.7): H(commandCode ‖ Names ‖ parameters). */
function cpHashOf(a: HashImpl, t: Engine, code: number, handles: number[], nh: number, cmd: Uint8Array, paramAt: number): Uint8Array {
  const cp = a.create();
  cp.update(u32be(code));
  for (let j = 0; j < nh; j++) cp.update(nameOf(t, handles[j]!));
  cp.update(cmd.subarray(paramAt));
  return cp.digest();
}

/** Checks session i's command HMAC under `key` (an empty HMAC under an empty key passes, as libtpms). */
/**
 * nonceTPMdecrypt and nonceTPMencrypt of the command HMAC of session i (Part 1 §19.6.5; reference
 * code, SessionProcess.c ComputeCommandHMAC): only the first session's HMAC takes them, the
 * nonceTPM of the session that decrypts the command parameter and of the one that encrypts the
 * response parameter, each when that is another session (and the encrypt nonce only once when one
 * other session does both). tpm2-tools does this with an authorizing HMAC session first and a
 * salted parameter-encryption session second.
 */
function cryptNonces(t: Engine, i: number): Uint8Array[] {
  if (i !== 0) return [];
  const n = t.sessionObjs.length;
  let dec = -1;
  let enc = -1;
  for (let j = 0; j < n; j++) {
    if (!t.sessionObjs[j]) continue;
    if (dec < 0 && t.sessionAttrs[j]! & TPMA_SESSION.DECRYPT) dec = j;
    if (enc < 0 && t.sessionAttrs[j]! & TPMA_SESSION.ENCRYPT) enc = j;
  }
  const out: Uint8Array[] = [];
  if (dec > 0) out.push(t.sessionObjs[dec]!.nonceTPM);
  if (enc > 0 && enc !== dec) out.push(t.sessionObjs[enc]!.nonceTPM);
  return out;
}

function checkHmac(t: Engine, sess: HmacSession, code: number, handles: number[], nh: number, i: number, cmd: Uint8Array, paramAt: number, key: Uint8Array): boolean {
  let ok: boolean;
  {
    const a = sess.authHash;
    const cpHash = cpHashOf(a, t, code, handles, nh, cmd, paramAt);
    // libtpms accepts an empty HMAC when the HMAC key (sessionKey ‖ authValue) is empty, and
    // then answers with an empty HMAC too (swtpm 0.7.1, measured)
    t.emptyHmac[i] = key.length === 0 && t.sessionAuths[i]!.length === 0;
    if (t.emptyHmac[i]) {
      ok = true;
    } else {
      const expected = a.mac(key, cpHash, t.sessionNonces[i]!, sess.nonceTPM, ...cryptNonces(t, i), Uint8Array.of(t.sessionAttrs[i]!));
      ok = constantTimeEqual(expected, t.sessionAuths[i]!);
    }
  }
  return ok;
}

/**
 * Counts a failed authorization against DA protection (Part 1 §19.8.6) and ends the command,
 * with the parameters of TPM2_DictionaryAttackParameters (Part 3 §25.3): lockoutAuth is blocked
 * for lockoutRecovery seconds (0: until the TPM is powered again), a DA failure counts only while
 * recoveryTime is not 0 (reference code, DA.c; swtpm 0.7.1, measured: LOCKOUT_COUNTER stays 0).
 */
function authFailed(t: Engine, ent: { isLockout: boolean }, da: boolean, n: number): never {
  const params = daParameters(t.ps);
  if (ent.isLockout) {
    t.lockoutUntil = params.lockoutRecovery === 0 ? Number.POSITIVE_INFINITY : t.clockNow() + params.lockoutRecovery * 1000;
    t.ps.lockoutAuthDisabled = true;
    t.markDirty();
  } else if (da && params.recoveryTime > 0) {
    if (t.ps.failedTries === 0) t.daAnchor = t.clockNow();
    t.ps.failedTries++;
    t.markDirty();
  }
  throw new Rc(S(da || ent.isLockout ? TPM_RC.AUTH_FAIL : TPM_RC.BAD_AUTH, n));
}

/**
 * Writes the response's session area: per session a new nonceTPM, the attributes and the
 * response HMAC (Part 1 §19.6.16: HMAC(sessionKey ‖ authValue, rpHash ‖ nonceTPM ‖ nonceCaller ‖
 * sessionAttributes)); a password session answers empty nonce, continueSession, empty HMAC.
 * Closes the sessions whose caller cleared continueSession.
 */
export function writeResponseSessions(t: Engine, spec: CommandSpec, code: number, handles: number[], nSessions: number, out: Out, paramStart: number, paramSize: number): void {
  // every session's new nonceTPM first: the encrypt session's keys take it (Part 1 §21.1)
  const nonces: Uint8Array[] = [];
  for (let i = 0; i < nSessions; i++) {
    const sess = t.sessionObjs[i];
    if (!sess) continue;
    nonces[i] = new Uint8Array(sess.nonceTPM.length);
    t.random.fill(nonces[i]!, 0, sess.nonceTPM.length);
  }
  // then the first response parameter is encrypted, before any rpHash
  for (let i = 0; i < nSessions; i++) {
    const sess = t.sessionObjs[i];
    if (!sess || !(t.sessionAttrs[i]! & TPMA_SESSION.ENCRYPT) || paramSize < 2) continue;
    const size = (out.buf[paramStart]! << 8) | out.buf[paramStart + 1]!;
    paramCrypt(sess, cryptKey(t, sess, i, spec.auth, handles), nonces[i]!, t.sessionNonces[i]!, out.buf.subarray(paramStart + 2, paramStart + 2 + size), true);
  }
  // session and command audit over the parameters as sent, before the HMACs (engine/audit.ts)
  auditResponse(t, spec, code, nSessions, out.buf.subarray(paramStart, paramStart + paramSize));
  for (let i = 0; i < nSessions; i++) {
    const sess = t.sessionObjs[i];
    if (!sess) {
      out.u16(0); // nonceTPM: empty for a password session
      out.u8(TPMA_SESSION.CONTINUESESSION); // a password session is never closed
      out.u16(0); // hmac: empty
      continue;
    }
    const a = sess.authHash;
    const rp = a.create();
    rp.update(Uint8Array.of(0, 0, 0, 0, (code >>> 24) & 0xff, (code >>> 16) & 0xff, (code >>> 8) & 0xff, code & 0xff)); // TPM_RC_SUCCESS ‖ commandCode
    rp.update(out.buf.subarray(paramStart, paramStart + paramSize));
    const rpHash = rp.digest();
    const nonce = nonces[i]!;
    sess.nonceTPM = nonce;
    const attrs = t.sessionAttrs[i]!;
    const p = sess.policy;
    let key: Uint8Array;
    if (p) {
      // a policy session: sessionKey, ‖ the entity's authValue after PolicyAuthValue
      let value: Uint8Array = EMPTY;
      if (p.authValueNeeded && i < spec.auth) value = responseAuthValue(t, handles[i]!, i, () => entityAuthValue(t, handles[i]!).value);
      key = policyHmacKey(sess, p, value);
    } else if (i >= spec.auth || commandAuth(t).bound[i]) {
      key = sess.sessionKey; // bound: decided when the command was authorized (reference code, includeAuth)
    } else {
      key = concatBytes(sess.sessionKey, trimZeros(responseAuthValue(t, handles[i]!, i, () => entityAuth(t, code, handles[i]!).value)));
    }
    out.tpm2b(nonce);
    out.u8(attrs);
    // after PolicyPassword the response HMAC is empty (reference code, SessionProcess.c BuildSingleResponseAuth)
    const empty = (t.emptyHmac[i] && key.length === 0) || p?.passwordNeeded === true;
    out.tpm2b(empty ? EMPTY : a.mac(key, rpHash, nonce, t.sessionNonces[i]!, Uint8Array.of(attrs)));
    if (!(attrs & TPMA_SESSION.CONTINUESESSION)) t.hmacSessions.delete(sess.handle);
    // a policy session that continues starts over: the nonce rolled, the assertions are spent
    // (reference code, SessionProcess.c UpdateInternalSession)
    else if (p) resetPolicy(p, a.size, t.clockNow());
  }
}

/** The volatile (state-clear) hierarchy data of one engine: the enables, platformPolicy and the PCR authValue. */
export interface HierarchyState {
  /** TPMA_STARTUP_CLEAR phEnable, shEnable, ehEnable, phEnableNV (Part 2 §8.7). */
  phEnable: boolean;
  shEnable: boolean;
  ehEnable: boolean;
  phEnableNV: boolean;
  /**
   * platformPolicy and its hash (TPM2_SetPrimaryPolicy; absent: the Empty Buffer). Volatile like
   * platformAuth; the other hierarchies' policies are in the persistent state (Part 1 §13.3).
   */
  platformPolicy: HierarchyPolicyState | undefined;
  /**
   * The authValue of the PCR authorization group (TPM2_PCR_SetAuthValue, Part 3 §22.7): emptied by
   * Startup(CLEAR) and TPM2_Clear. (SoftTpm empties it on a TPM Resume too, as the enables above.)
   */
  pcrAuth: Uint8Array;
  /** resetCount and restartCount when the enables were last valid (any Startup changes one). */
  epoch: string;
}

const HIERARCHY_STATE = new WeakMap<Engine, HierarchyState>();

/** The Startup epoch: resetCount/restartCount (any Startup changes one). */
export function epochOf(t: Engine): string {
  return `${t.ps.resetCount}/${t.ps.restartCount}`;
}

/**
 * The hierarchy state of `t`. The enables are SET again, the platform policy and the PCR
 * authValue are emptied by every TPM2_Startup (Part 1 §13.3-§13.4: phEnable, shEnable and ehEnable are set by TPM Reset
 * and TPM Restart). SoftTpm notices a Startup by resetCount/restartCount changing, so it sets them
 * on a TPM Resume too (a TPM keeps them there).
 */
export function hierarchyState(t: Engine): HierarchyState {
  let s = HIERARCHY_STATE.get(t);
  const epoch = epochOf(t);
  if (!s) {
    s = { phEnable: true, shEnable: true, ehEnable: true, phEnableNV: true, platformPolicy: undefined, pcrAuth: EMPTY, epoch };
    HIERARCHY_STATE.set(t, s);
  } else if (s.epoch !== epoch) {
    s.phEnable = s.shEnable = s.ehEnable = s.phEnableNV = true;
    s.platformPolicy = undefined; // platformPolicy is volatile like platformAuth
    s.pcrAuth = EMPTY; // state-clear data too (Part 3 §22.7)
    s.epoch = epoch;
  }
  return s;
}

/**
 * The authPolicy of hierarchy `h` (TPM_RH_OWNER, _ENDORSEMENT, _PLATFORM, _LOCKOUT) set by
 * TPM2_SetPrimaryPolicy, with its hash; undefined while it is the Empty Buffer.
 */
export function hierarchyPolicy(t: Engine, h: number): HierarchyPolicyState | undefined {
  switch (h) {
    case TPM_RH.OWNER:
      return t.ps.ownerPolicy;
    case TPM_RH.ENDORSEMENT:
      return t.ps.endorsementPolicy;
    case TPM_RH.LOCKOUT:
      return t.ps.lockoutPolicy;
    case TPM_RH.PLATFORM:
      return hierarchyState(t).platformPolicy;
    default:
      return undefined;
  }
}

/**
 * The authPolicy of the entity a policy session authorizes, with its nameAlg (reference code,
 * EntityGetAuthPolicy and IsAuthPolicyAvailable): TPM_RC_AUTH_UNAVAILABLE when the entity has
 * none (a public-only object, an NV index without TPMA_NV_POLICYREAD / _POLICYWRITE for the
 * access, a hierarchy whose authPolicy is the Empty Buffer, a PCR outside the policy group).
 */
function entityPolicy(t: Engine, code: number, h: number): { policy: Uint8Array; alg: number } {
  if (h === TPM_RH.OWNER || h === TPM_RH.ENDORSEMENT || h === TPM_RH.PLATFORM || h === TPM_RH.LOCKOUT) {
    // a hierarchy's authPolicy from TPM2_SetPrimaryPolicy (Part 3 §24.3); while it is the Empty
    // Buffer no policy can satisfy it: TPM_RC_AUTH_UNAVAILABLE (reference code, IsAuthPolicyAvailable)
    const hp = hierarchyPolicy(t, h);
    if (hp) return hp;
    throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
  }
  // a PCR of the policy group has the group's policy (TPM2_PCR_SetAuthPolicy, Part 3 §22.6),
  // available even while it is the Empty Buffer, which no policyDigest equals (TPM_RC_POLICY_FAIL;
  // swtpm 0.7.1, measured); the other PCRs have none (TPM_RC_AUTH_UNAVAILABLE)
  if (h < PCR_COUNT) {
    if ((PCR_POLICY_GROUP >>> h) & 1) return t.ps.pcrPolicy ?? { policy: EMPTY, alg: TPM_ALG.NULL };
    throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
  }
  if (h >>> 24 === TPM_HT.NV_INDEX) {
    const nv = t.nv(h);
    if (nv) {
      const isRead = code === TPM_CC.NV_Read || code === TPM_CC.NV_ReadLock || code === TPM_CC.PolicyNV || code === TPM_CC.NV_Certify || code === TPM_CC.PolicyAuthorizeNV;
      // the ADMIN role (NV_ChangeAuth, NV_UndefineSpaceSpecial) always has the policy (reference code, IsAuthPolicyAvailable)
      if (code === TPM_CC.NV_ChangeAuth || code === TPM_CC.NV_UndefineSpaceSpecial || nv.attributes & (isRead ? TPMA_NV.POLICYREAD : TPMA_NV.POLICYWRITE)) return { policy: nv.authPolicy, alg: nv.nameAlg };
    }
    throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
  }
  const obj = h >>> 24 === TPM_HT.TRANSIENT || h >>> 24 === TPM_HT.PERSISTENT ? findObject(t, h) : undefined;
  if (obj && !obj.publicOnly) return { policy: obj.pub.authPolicy, alg: obj.pub.nameAlg };
  throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
}

/**
 * Authorization with a policy session (Part 1 §19.7; reference code, SessionProcess.c
 * CheckAuthSession and CheckPolicyAuthSession, in that order): DA lockout when the authValue is
 * used, the entity's policy, PolicySecret needing an authValue, the PCR counter, the digest and
 * its hash, the timeout, the command code (an ADMIN-role command needs one, Part 1 §19.7.3), then
 * the password (PolicyPassword) or the HMAC (keyed with sessionKey, and the authValue after
 * PolicyAuthValue).
 */
function authorizePolicy(t: Engine, code: number, handles: number[], nh: number, i: number, cmd: Uint8Array, paramAt: number, sess: HmacSession, p: PolicyState, locality: number): void {
  const h = handles[i]!;
  const n = i + 1;
  const includeAuth = p.authValueNeeded || p.passwordNeeded;
  let ent: ReturnType<typeof entityAuth> = { value: EMPTY, daProtected: false, isLockout: false };
  if (includeAuth) {
    ent = entityAuthValue(t, h);
    if (ent.daProtected && !t.persistence.available) throw new Rc(TPM_RC.NV_UNAVAILABLE);
    if (ent.daProtected && t.inLockout()) throw new Rc(TPM_RC.LOCKOUT);
  }
  commandAuth(t).value[i] = ent.value; // for the response HMAC when the command flushes the entity
  const { policy, alg } = entityPolicy(t, code, h);
  if (code === TPM_CC.PolicySecret && !includeAuth) throw new Rc(S(TPM_RC.MODE, n));
  if (p.pcrCounter !== undefined && p.pcrCounter !== t.pcrUpdateCounter) throw new Rc(TPM_RC.PCR_CHANGED);
  if (!constantTimeEqual(policy, p.digest) || alg !== sess.authHash.alg) throw new Rc(S(TPM_RC.POLICY_FAIL, n));
  if (p.timeout !== 0 && p.timeout < t.clockNow()) throw new Rc(S(TPM_RC.EXPIRED, n));
  if (p.commandCode !== undefined) {
    if (p.commandCode !== code) throw new Rc(S(TPM_RC.POLICY_CC, n));
  } else if (
    // the ADMIN role of ObjectChangeAuth and the DUP role of Duplicate (Part 1 §19.7.3; swtpm 0.7.1,
    // measured: a policy without PolicyCommandCode / PolicyDuplicationSelect is TPM_RC_POLICY_FAIL + S1)
    ((code === TPM_CC.ObjectChangeAuth || code === TPM_CC.Duplicate) && h >>> 24 !== TPM_HT.NV_INDEX) ||
    // an NV index's ADMIN role too (swtpm 0.7.1, measured: NV_ChangeAuth, NV_UndefineSpaceSpecial)
    (h >>> 24 === TPM_HT.NV_INDEX && (code === TPM_CC.NV_ChangeAuth || code === TPM_CC.NV_UndefineSpaceSpecial))
  ) {
    throw new Rc(S(TPM_RC.POLICY_FAIL, n)); // the ADMIN role needs PolicyCommandCode
  }
  checkPolicyRestrictions(t, code, handles, nh, i, cmd, paramAt, sess, p, locality);
  let ok: boolean;
  if (p.passwordNeeded) ok = authEqual(t.sessionAuths[i]!, ent.value);
  else ok = checkHmac(t, sess, code, handles, nh, i, cmd, paramAt, policyHmacKey(sess, p, ent.value));
  if (ok) return;
  authFailed(t, ent, ent.daProtected, n);
}

/**
 * The restrictions PolicyLocality, PolicyCpHash, PolicyNameHash, PolicyTemplate and
 * PolicyNvWritten put on the command (reference code, SessionProcess.c CheckPolicyAuthSession,
 * in its order after the command code): the locality (TPM_RC_LOCALITY; an extended locality
 * must equal it), the cpHash H(commandCode ‖ Names ‖ parameters) (Part 1 §18.7) or the nameHash
 * H(Names of every handle) with the session hash, the template hash of a Create, CreatePrimary
 * or CreateLoaded (H(inPublic's data), its second parameter), and the NV index's WRITTEN state;
 * a mismatch is TPM_RC_POLICY_FAIL + the session.
 */
function checkPolicyRestrictions(t: Engine, code: number, handles: number[], nh: number, i: number, cmd: Uint8Array, paramAt: number, sess: HmacSession, p: PolicyState, locality: number): void {
  const n = i + 1;
  if (p.locality) {
    const ok = locality < 5 ? p.locality <= 31 && ((p.locality >>> locality) & 1) === 1 : locality > 31 && p.locality === locality;
    if (!ok) throw new Rc(TPM_RC.LOCALITY);
  }
  // PolicyPhysicalPresence: SoftTpm, as swtpm, has no physical-presence indication, so such a
  // policy never authorizes: TPM_RC_PP + the session (swtpm 0.7.1, measured: 0x990 for session 1)
  if (p.ppRequired) throw new Rc(S(TPM_RC.PP, n));
  const c = p.cpHash;
  if (c?.kind === "nameHash") {
    const hh = sess.authHash.create();
    for (let j = 0; j < nh; j++) hh.update(nameOf(t, handles[j]!));
    if (!constantTimeEqual(hh.digest(), c.digest)) throw new Rc(S(TPM_RC.POLICY_FAIL, n));
  } else if (c?.kind === "cpHash") {
    if (!constantTimeEqual(cpHashOf(sess.authHash, t, code, handles, nh, cmd, paramAt), c.digest)) throw new Rc(S(TPM_RC.POLICY_FAIL, n));
  } else if (c?.kind === "template") {
    if (code !== TPM_CC.Create && code !== TPM_CC.CreatePrimary && code !== TPM_CC.CreateLoaded) throw new Rc(S(TPM_RC.POLICY_FAIL, n));
    // skip inSensitive (a TPM2B), then inPublic's data; sizes from the caller are checked
    let at = paramAt;
    const size = (k: number) => (k + 2 <= cmd.length ? (cmd[k]! << 8) | cmd[k + 1]! : -1);
    const s1 = size(at);
    at += 2 + s1;
    const s2 = s1 < 0 ? -1 : size(at);
    if (s2 < 0 || at + 2 + s2 > cmd.length) throw new Rc(S(TPM_RC.POLICY_FAIL, n));
    if (!constantTimeEqual(sess.authHash.hash(cmd.subarray(at + 2, at + 2 + s2)), c.digest)) throw new Rc(S(TPM_RC.POLICY_FAIL, n));
  }
  if (p.nvWritten !== undefined) {
    const h = handles[i]!;
    const nv = h >>> 24 === TPM_HT.NV_INDEX ? t.nv(h) : undefined;
    if (!nv || ((nv.attributes & TPMA_NV.WRITTEN) !== 0) !== p.nvWritten) throw new Rc(S(TPM_RC.POLICY_FAIL, n));
  }
}

/** An entity's authValue without the role checks of a password or HMAC authorization (a policy decides those). */
function entityAuthValue(t: Engine, h: number): { value: Uint8Array; daProtected: boolean; isLockout: boolean } {
  if (h >>> 24 === TPM_HT.NV_INDEX) {
    const nv = t.nv(h);
    return { value: nv?.authValue ?? EMPTY, daProtected: nv !== undefined && (nv.attributes & TPMA_NV.NO_DA) === 0, isLockout: false };
  }
  const obj = h >>> 24 === TPM_HT.TRANSIENT || h >>> 24 === TPM_HT.PERSISTENT ? findObject(t, h) : undefined;
  if (obj) return { value: obj.sensitive.authValue, daProtected: (obj.pub.objectAttributes & TPMA_OBJECT.NODA) === 0, isLockout: false };
  return entityAuth(t, 0, h);
}

/** A policy session's HMAC key: sessionKey, ‖ authValue after PolicyAuthValue (Part 1 §19.6.8). */
function policyHmacKey(sess: HmacSession, p: PolicyState, authValue: Uint8Array): Uint8Array {
  return p.authValueNeeded ? concatBytes(sess.sessionKey, trimZeros(authValue)) : sess.sessionKey;
}

/**
 * Session i beyond the command's authorizations (Part 1 §18.6; reference code, SessionProcess.c
 * ParseSessionBuffer): a password session there is TPM_RC_HANDLE, a session that neither audits
 * nor encrypts / decrypts TPM_RC_ATTRIBUTES; else its HMAC is checked keyed with the sessionKey
 * alone (TPM_RC_BAD_AUTH, no DA consequence).
 */
export function checkExtraSession(t: Engine, code: number, handles: number[], nh: number, i: number, cmd: Uint8Array, paramAt: number): void {
  const sess = t.sessionObjs[i];
  const n = i + 1;
  if (!sess) throw new Rc(S(TPM_RC.HANDLE, n));
  if (!(t.sessionAttrs[i]! & (TPMA_SESSION.AUDIT | TPMA_SESSION.ENCRYPT | TPMA_SESSION.DECRYPT))) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
  if (!checkHmac(t, sess, code, handles, nh, i, cmd, paramAt, sess.sessionKey)) throw new Rc(S(TPM_RC.BAD_AUTH, n));
}

/** The key of parameter encryption for session i: sessionKey ‖ the authorized entity's authValue (Part 1 §21.1). */
function cryptKey(t: Engine, sess: HmacSession, i: number, auth: number, handles: number[]): Uint8Array {
  if (i >= auth) return sess.sessionKey;
  let value: Uint8Array;
  try {
    value = entityAuthValue(t, handles[i]!).value;
  } catch {
    value = EMPTY;
  }
  return concatBytes(sess.sessionKey, trimZeros(value));
}

/**
 * Parameter encryption of `data` in place (Part 1 §21): AES-CFB with key and IV from
 * KDFa(authHash, key, "CFB", nonceNewer, nonceOlder, keyBits + 128) (§21.3), or XOR with the mask
 * KDFa(hash, key, "XOR", nonceNewer, nonceOlder, 8 × size) (§21.2).
 */
function paramCrypt(sess: HmacSession, key: Uint8Array, nonceNewer: Uint8Array, nonceOlder: Uint8Array, data: Uint8Array, encrypt: boolean): void {
  const sym = sess.symmetric!;
  if (data.length === 0) return;
  if (sym.alg === TPM_ALG.XOR) {
    const mask = kdfa(hashImpl(sym.mode)!, key, "XOR", nonceNewer, nonceOlder, data.length * 8);
    for (let j = 0; j < data.length; j++) data[j]! ^= mask[j]!;
    return;
  }
  const k = kdfa(sess.authHash, key, "CFB", nonceNewer, nonceOlder, sym.keyBits + 128);
  data.set(aesCfb(k.subarray(0, sym.keyBits / 8), data, encrypt, k.subarray(sym.keyBits / 8)));
}

/**
 * Decrypts the first command parameter (the data of its TPM2B) when a session has `decrypt`
 * (Part 1 §21; after every authorization, over the parameters as the HMACs saw them). Returns the
 * command to parse: a copy when it was decrypted, the caller's bytes are never changed.
 */
export function decryptCommand(t: Engine, spec: CommandSpec, handles: number[], nSessions: number, cmd: Uint8Array, paramAt: number): Uint8Array {
  for (let i = 0; i < nSessions; i++) {
    const sess = t.sessionObjs[i];
    if (!sess || !(t.sessionAttrs[i]! & TPMA_SESSION.DECRYPT)) continue;
    if (cmd.length - paramAt < 2) throw new Rc(S(TPM_RC.SIZE, i + 1));
    const size = (cmd[paramAt]! << 8) | cmd[paramAt + 1]!;
    if (size > cmd.length - paramAt - 2) throw new Rc(S(TPM_RC.SIZE, i + 1));
    const copy = cmd.slice();
    paramCrypt(sess, cryptKey(t, sess, i, spec.auth, handles), t.sessionNonces[i]!, sess.nonceTPM, copy.subarray(paramAt + 2, paramAt + 2 + size), false);
    return copy;
  }
  return cmd;
}

/**
 * Is the hierarchy `h` enabled? TPM_RH_OWNER, _ENDORSEMENT, _PLATFORM and _PLATFORM_NV can be
 * disabled by TPM2_HierarchyControl; every other handle is "enabled".
 */
export function hierarchyEnabled(t: Engine, h: number): boolean {
  const s = hierarchyState(t);
  if (h === TPM_RH.OWNER) return s.shEnable;
  if (h === TPM_RH.ENDORSEMENT) return s.ehEnable;
  if (h === TPM_RH.PLATFORM) return s.phEnable;
  if (h === TPM_RH.PLATFORM_NV) return s.phEnable && s.phEnableNV;
  return true;
}

/**
 * A disabled hierarchy in handle `n`: TPM_RC_HIERARCHY + H + n (swtpm 0.7.1, measured, for
 * CreatePrimary, HierarchyChangeAuth, SetPrimaryPolicy, HierarchyControl and ClockSet).
 */
export function checkHierarchyEnabled(t: Engine, h: number, n: number): void {
  if (!hierarchyEnabled(t, h)) throw new Rc(H(TPM_RC.HIERARCHY, n));
}
