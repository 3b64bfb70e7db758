/**
 * Authorization in the SoftTpm engine: the session area of a command (TPM 2.0 Part 1 §18.6),
 * password (TPM_RS_PW) and unsalted HMAC sessions (Part 1 §19.6), the entities' auth values and
 * dictionary-attack protection (Part 1 §19.8), and the session area of a response. Every check
 * comes in libtpms order, as swtpm 0.7.1 answers (measured).
 *
 * @packageDocumentation
 */
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_CC, TPM_HR, TPM_HT, TPM_RC, TPM_RH, TPM_RS, TPMA_NV, TPMA_OBJECT, TPMA_SESSION } from "../../wire/constants.js";
import { AUTH_MAX } from "../state.js";
import { type HashImpl, PCR_COUNT, hashImpl } from "../tables.js";
import type { CommandSpec } from "./dispatch.js";
import type { Engine, HmacSession } from "./engine.js";
import { LOCKOUT_RECOVERY_S, MAX_SESSION_NUM, SESSION_HANDLE_RANGE } from "./limits.js";
import { EMPTY, type In, type Out, Rc, S, nvPublicBytes } from "./marshal.js";
import { findObject } from "./objects.js";

/** `b` without its trailing zero bytes. */
export function trimZeros(b: Uint8Array): Uint8Array {
  let n = b.length;
  while (n > 0 && b[n - 1] === 0) n--;
  return b.subarray(0, n);
}

/** Constant-time equality of two byte strings. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
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

/** KDFa, SP 800-108 counter mode with HMAC (TPM 2.0 Part 1 §11.4.10.2). */
export function kdfa(a: HashImpl, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  const labelBytes = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 1, off = 0; off < out.length; i++, off += a.size) {
    const block = a.mac(key, u32be(i), labelBytes, contextU, contextV, u32be(bits));
    out.set(block.subarray(0, Math.min(a.size, out.length - off)), off);
  }
  return out;
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
      if (ht === TPM_HT.POLICY_SESSION) throw new Rc(S(TPM_RC.HANDLE, n));
      // no size check on nonceCaller here: libtpms takes any TPM2B_NONCE (0–64 bytes) in a
      // session, and a wrong one just makes the HMAC fail (swtpm 0.7.1, measured)
      for (let j = 0; j < n - 1; j++) if (t.sessionObjs[j] === sess) throw new Rc(S(TPM_RC.HANDLE, n)); // used twice
    }
    if (!sess) {
      // a password session: continueSession only
      if (attrs & ~TPMA_SESSION.CONTINUESESSION) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
    } else if (attrs & (TPMA_SESSION.DECRYPT | TPMA_SESSION.ENCRYPT)) {
      // decrypt / encrypt: TPM_RC_ATTRIBUTES when the command has no TPM2B parameter there,
      // else TPM_RC_SYMMETRIC (SoftTpm's sessions have no symmetric algorithm); the audit bits
      // (audit, auditExclusive, auditReset) are accepted, as libtpms does (swtpm 0.7.1, measured)
      if ((attrs & TPMA_SESSION.DECRYPT && !spec.decrypt) || (attrs & TPMA_SESSION.ENCRYPT && !spec.encrypt)) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
      throw new Rc(S(TPM_RC.SYMMETRIC, n));
    }
    t.sessionAttrs[n - 1] = attrs;
    t.sessionAuths[n - 1] = auth;
    t.sessionNonces[n - 1] = nonce;
    t.sessionObjs[n - 1] = sess;
    t.emptyHmac[n - 1] = false;
  }
  inp.end = saveEnd;
  return n;
}

/**
 * The Name of a handle for cpHash (Part 1 §16): the handle itself, nameAlg ‖ H(public) for NV,
 * empty for a sequence object.
 */
function nameOf(t: Engine, h: number): Uint8Array {
  // an object's Name is nameAlg ‖ H(public); a sequence object's nameAlg is TPM_ALG_NULL: its
  // Name is empty (ESYS and libtpms agree)
  if (h >>> 24 === TPM_HT.TRANSIENT || h >>> 24 === TPM_HT.PERSISTENT) return findObject(t, h)?.name ?? EMPTY;
  if (h >>> 24 === TPM_HT.NV_INDEX) {
    const nv = t.nv(h);
    if (nv) {
      const a = hashImpl(nv.nameAlg)!;
      return concatBytes(Uint8Array.of(nv.nameAlg >>> 8, nv.nameAlg & 0xff), a.hash(nvPublicBytes(nv)));
    }
  }
  return u32be(h);
}

/**
 * The entity's authValue for authorization of handle `h` by command `code` (Part 1 §19.8),
 * with the DA class of a failure. Throws TPM_RC_AUTH_UNAVAILABLE / TPM_RC_LOCKOUT. `code` 0:
 * no command (the bind entity of a new session).
 */
function entityAuth(t: Engine, code: number, h: number): { value: Uint8Array; daProtected: boolean; isLockout: boolean } {
  if (h < PCR_COUNT || h === TPM_RH.NULL) return { value: EMPTY, daProtected: false, isLockout: false };
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
    const isRead = code === TPM_CC.NV_Read || code === TPM_CC.NV_ReadLock;
    if (!(nv.attributes & (isRead ? TPMA_NV.AUTHREAD : TPMA_NV.AUTHWRITE))) throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
    return { value: nv.authValue, daProtected, isLockout: false };
  }
  const obj = findObject(t, h);
  if (obj) {
    // Part 1 §19.7.2: the USER role with a password or HMAC needs userWithAuth, the ADMIN role
    // (ObjectChangeAuth, Part 3 §12.8) needs adminWithPolicy clear; else only a policy session
    // could authorize (TPM_RC_AUTH_UNAVAILABLE)
    const a = obj.pub.objectAttributes;
    const admin = code === TPM_CC.ObjectChangeAuth;
    if (obj.publicOnly && code !== 0) throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
    if (code !== 0 && (admin ? (a & TPMA_OBJECT.ADMINWITHPOLICY) !== 0 : (a & TPMA_OBJECT.USERWITHAUTH) === 0)) throw new Rc(TPM_RC.AUTH_UNAVAILABLE);
    const daProtected = (a & TPMA_OBJECT.NODA) === 0;
    if (daProtected && code !== 0 && t.inLockout()) throw new Rc(TPM_RC.LOCKOUT);
    return { value: obj.sensitive.authValue, daProtected, isLockout: false };
  }
  const seq = t.sequences.get(h);
  return { value: seq ? seq.authValue : EMPTY, daProtected: false, isLockout: false };
}

/** The authValue of the entity a new session binds to (empty when it has none or is unavailable). */
export function bindAuthValue(t: Engine, h: number): Uint8Array {
  try {
    return entityAuth(t, 0, h).value;
  } catch {
    return EMPTY;
  }
}

/** sessionKey ‖ authValue (authValue left out when the session is bound to this entity). */
function sessionHmacKey(t: Engine, sess: HmacSession, code: number, h: number | undefined, forResponse: boolean): Uint8Array {
  if (h === undefined || sess.bind === h) return sess.sessionKey;
  let value: Uint8Array;
  try {
    value = entityAuth(t, code, h).value;
  } catch (e) {
    if (!forResponse) throw e;
    value = EMPTY;
  }
  return concatBytes(sess.sessionKey, trimZeros(value));
}

/**
 * Authorizes handle `handles[i]` with session i + 1: a password (Part 1 §19.8.4) or an HMAC
 * session (Part 1 §19.6: HMAC(sessionKey ‖ authValue, cpHash ‖ nonceCaller ‖ nonceTPM ‖ attrs)).
 * A failure counts against dictionary-attack protection as Part 1 §19.8.6 says.
 */
export function authorize(t: Engine, code: number, handles: number[], nh: number, i: number, cmd: Uint8Array, paramAt: number): void {
  const h = handles[i]!;
  const n = i + 1;
  const ent = entityAuth(t, code, h);
  const sess = t.sessionObjs[i];
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
  let ok: boolean;
  if (!sess) {
    ok = authEqual(t.sessionAuths[i]!, ent.value);
  } else {
    const a = sess.authHash;
    const cp = a.create();
    cp.update(u32be(code));
    for (let j = 0; j < nh; j++) cp.update(nameOf(t, handles[j]!));
    cp.update(cmd.subarray(paramAt));
    const cpHash = cp.digest();
    const key = sessionHmacKey(t, sess, code, h, false);
    // libtpms accepts an empty HMAC when the HMAC key (sessionKey ‖ authValue) is empty, and
    // then answers with an empty HMAC too (swtpm 0.7.1, measured)
    t.emptyHmac[i] = key.length === 0 && t.sessionAuths[i]!.length === 0;
    if (t.emptyHmac[i]) {
      ok = true;
    } else {
      const expected = a.mac(key, cpHash, t.sessionNonces[i]!, sess.nonceTPM, Uint8Array.of(t.sessionAttrs[i]!));
      ok = constantTimeEqual(expected, t.sessionAuths[i]!);
    }
  }
  if (ok) return;
  if (ent.isLockout) {
    t.lockoutUntil = t.clockNow() + LOCKOUT_RECOVERY_S * 1000;
    t.ps.lockoutAuthDisabled = true;
    t.markDirty();
  } else if (da) {
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
    const nonce = new Uint8Array(sess.nonceTPM.length);
    t.random.fill(nonce, 0, nonce.length);
    sess.nonceTPM = nonce;
    const attrs = t.sessionAttrs[i]!;
    const key = sessionHmacKey(t, sess, code, i < spec.auth ? handles[i]! : undefined, true);
    out.tpm2b(nonce);
    out.u8(attrs);
    out.tpm2b(t.emptyHmac[i] && key.length === 0 ? EMPTY : a.mac(key, rpHash, nonce, t.sessionNonces[i]!, Uint8Array.of(attrs)));
    if (!(attrs & TPMA_SESSION.CONTINUESESSION)) t.hmacSessions.delete(sess.handle);
  }
}
