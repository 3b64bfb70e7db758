/**
 * Command audit and session audit in the SoftTpm engine (TPM 2.0 Part 1 §32 "Audit"; Part 1
 * §19.6.x and Part 2 §8.4 TPMA_SESSION audit, auditExclusive, auditReset).
 *
 * - Command audit (Part 1 §32.2): after every successful command whose code is on the audit list,
 *   commandAuditDigest := H_auditAlg(commandAuditDigest ‖ cpHash ‖ rpHash), with cpHash and
 *   rpHash computed with auditAlg (Part 1 §18.7 / §18.8). An empty digest starts as zeros and
 *   bumps the audit counter. TPM2_SetCommandCodeAuditStatus (Part 3 §21.2) keeps the list and
 *   the algorithm; a change of algorithm empties the digest and is itself not audited.
 *   TPM2_SetCommandCodeAuditStatus is always on the list, TPM2_Shutdown never is.
 * - Session audit (Part 1 §32.4): an HMAC session used with `audit` accumulates
 *   sessionDigest := H_authHash(sessionDigest ‖ cpHash ‖ rpHash) after every successful command;
 *   its first use (or `auditReset`) starts the digest at zeros and makes the session the
 *   exclusive audit session, which any successful command that allows sessions but has no audit
 *   session ends. The response reports exclusivity in `auditExclusive`.
 *
 * The order of every step is libtpms' (swtpm 0.7.1 / libtpms 0.9, measured): the audit
 * attribute checks while the session area is read, the cpHashes before the first parameter is
 * decrypted, the digests after the response parameter is encrypted and before the response HMACs
 * (so the HMAC covers the reported `auditExclusive`).
 *
 * LIMITATION: in a TPM the audit list, the audit algorithm and the audit counter are persistent
 * (NV) state and the command audit digest survives TPM Restart / Resume. SoftTpm keeps all of them
 * in memory per engine (a WeakMap, as the hierarchy enables are kept): they last
 * as long as the SoftTpm object, across its power cycles, but a SoftTpm re-created from its
 * storage starts again from the manufactured defaults.
 *
 * @packageDocumentation
 */
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_CC, TPM_HR, TPM_HT, TPM_RC, TPMA_SESSION } from "../../wire/constants.js";
import { COMMAND_ATTRIBUTES, type HashImpl, HASH_IMPLS } from "../tables.js";
import { nameOf } from "./names.js";
import type { CommandSpec } from "./dispatch.js";
import type { Engine, HmacSession } from "./engine.js";
import { Rc, S } from "./marshal.js";

/** The audit state of one engine. */
export interface AuditState {
  /** auditAlg: the command audit digest's hash (manufactured as SHA-512, libtpms' context integrity hash; swtpm 0.7.1, measured). */
  alg: HashImpl;
  /** The audited command codes (TPM_CC_SetCommandCodeAuditStatus always among them). */
  commands: Set<number>;
  /** The audit counter (TPM_PT_AUDIT_COUNTER_0/_1). */
  counter: bigint;
  /** commandAuditDigest; undefined while it is empty (after TPM Reset, an algorithm change, GetCommandAuditDigest). */
  digest: Uint8Array | undefined;
  /** The command running now changed auditAlg: it is not audited itself. */
  skipCommandAudit: boolean;
  /** cpHash of the command running now with auditAlg (undefined: the command is not audited). */
  commandCpHash: Uint8Array | undefined;
  /** The audit digest of each audit session, by its TPM_HT_HMAC_SESSION handle (present: the session is an audit session). */
  sessions: Map<number, Uint8Array>;
  /** The exclusive audit session (its handle), if any. */
  exclusive: number | undefined;
  /** cpHash of the command running now with the audit session's hash (undefined: no audit session). */
  sessionCpHash: Uint8Array | undefined;
  /** The session context TPM2_FlushContext flushes (read before the command runs). */
  flushHandle: number | undefined;
}

const AUDIT_STATE = new WeakMap<Engine, AuditState>();

/** SHA-512, the manufactured auditAlg. */
const DEFAULT_AUDIT_HASH = HASH_IMPLS[3]!;

/** The audit state of `t` (manufactured defaults the first time). */
export function auditState(t: Engine): AuditState {
  let s = AUDIT_STATE.get(t);
  if (!s) {
    s = {
      alg: DEFAULT_AUDIT_HASH,
      commands: new Set([TPM_CC.SetCommandCodeAuditStatus]),
      counter: 0n,
      digest: undefined,
      skipCommandAudit: false,
      commandCpHash: undefined,
      sessions: new Map(),
      exclusive: undefined,
      sessionCpHash: undefined,
      flushHandle: undefined,
    };
    AUDIT_STATE.set(t, s);
  }
  return s;
}

/** Is `code` a command SoftTpm implements (listed by TPM_CAP_COMMANDS)? A code with any bit above 15 is not. */
export function isImplemented(code: number): boolean {
  if (code >>> 16 !== 0) return false;
  for (const a of COMMAND_ATTRIBUTES) if ((a & 0xffff) === code) return true;
  return false;
}

/** The audited command codes from `from` on, ascending (TPM_CAP_AUDIT_COMMANDS, Part 3 §30.2). */
export function auditedCommands(t: Engine, from: number): number[] {
  return [...auditState(t).commands].filter((c) => c >= from).sort((a, b) => a - b);
}

/**
 * commandDigest of TPMS_COMMAND_AUDIT_INFO (Part 2 §10.12.5): H_auditAlg of the audited command
 * codes, ascending, each a big-endian UINT32.
 */
export function commandListDigest(s: AuditState): Uint8Array {
  const h = s.alg.create();
  for (const c of [...s.commands].sort((a, b) => a - b)) h.update(u32be(c));
  return h.digest();
}

/** The HMAC-session form of a session handle (policy sessions are kept under it too). */
function sessionKeyOf(h: number): number {
  return (TPM_HR.HMAC_SESSION | (h & TPM_HR.HANDLE_MASK)) >>> 0;
}

/** cpHash (Part 1 §18.7): H(commandCode ‖ Name of each handle ‖ parameters as sent). */
function cpHashOf(a: HashImpl, t: Engine, code: number, handles: number[], nh: number, cmd: Uint8Array, paramAt: number): Uint8Array {
  const h = a.create();
  h.update(u32be(code));
  for (let j = 0; j < nh; j++) h.update(nameOf(t, handles[j]!));
  h.update(cmd.subarray(paramAt));
  return h.digest();
}

/** rpHash (Part 1 §18.8): H(TPM_RC_SUCCESS ‖ commandCode ‖ response parameters as sent). */
function rpHashOf(a: HashImpl, code: number, params: Uint8Array): Uint8Array {
  const h = a.create();
  h.update(u32be(0));
  h.update(u32be(code));
  h.update(params);
  return h.digest();
}

/**
 * The audit attributes of session `n` as the session area is read (reference code, SessionProcess.c
 * RetrieveSessionData, after decrypt and encrypt): `audit` in a second session or in a policy
 * session is TPM_RC_ATTRIBUTES + the session; `auditExclusive` on an audit session that is not the
 * exclusive one is TPM_RC_EXCLUSIVE, unless `auditReset` is set or this is its first use as an audit
 * session. `auditExclusive` and `auditReset` without `audit` are accepted and ignored (swtpm
 * 0.7.1, measured). Password sessions with any audit bit were refused before.
 */
export function checkAuditSession(t: Engine, sess: HmacSession, attrs: number, n: number): void {
  const s = auditState(t);
  // an audit session is no longer bound (reference code, InitAuditSession): its response HMAC
  // was still computed as bound, so the binding goes when the session is next used
  if (s.sessions.has(sess.handle)) sess.bind = undefined;
  if (!(attrs & TPMA_SESSION.AUDIT)) return;
  for (let j = 0; j < n - 1; j++) if (t.sessionObjs[j] && t.sessionAttrs[j]! & TPMA_SESSION.AUDIT) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
  if (sess.policy) throw new Rc(S(TPM_RC.ATTRIBUTES, n));
  if (!(attrs & TPMA_SESSION.AUDITRESET) && s.sessions.has(sess.handle) && attrs & TPMA_SESSION.AUDITEXCLUSIVE && s.exclusive !== sess.handle) {
    throw new Rc(TPM_RC.EXCLUSIVE);
  }
}

/**
 * Before a command runs, after its authorizations and before its first parameter is decrypted:
 * the cpHash of the audit session (its hash) and of command audit (auditAlg). Command audit that
 * must start a new digest (or of TPM2_GetCommandAuditDigest) needs NV: TPM_RC_NV_UNAVAILABLE
 * without it (reference code, CheckCommandAudit).
 */
export function auditCommandStart(t: Engine, code: number, handles: number[], nh: number, nSessions: number, cmd: Uint8Array, paramAt: number): void {
  const s = auditState(t);
  s.sessionCpHash = undefined;
  s.commandCpHash = undefined;
  s.skipCommandAudit = false;
  s.flushHandle = undefined;
  for (let i = 0; i < nSessions; i++) {
    const sess = t.sessionObjs[i];
    if (sess && t.sessionAttrs[i]! & TPMA_SESSION.AUDIT) s.sessionCpHash = cpHashOf(sess.authHash, t, code, handles, nh, cmd, paramAt);
  }
  if (s.commands.has(code)) {
    if ((s.digest === undefined || code === TPM_CC.GetCommandAuditDigest) && !t.persistence.available) throw new Rc(TPM_RC.NV_UNAVAILABLE);
    s.commandCpHash = cpHashOf(s.alg, t, code, handles, nh, cmd, paramAt);
  }
  if (code === TPM_CC.FlushContext && cmd.length - paramAt >= 4) {
    s.flushHandle = ((cmd[paramAt]! << 24) | (cmd[paramAt + 1]! << 16) | (cmd[paramAt + 2]! << 8) | cmd[paramAt + 3]!) >>> 0;
  }
}

/**
 * Does the command allow sessions at all (libtpms IsSessionAllowed)? Startup, ContextLoad,
 * ContextSave and FlushContext do not (NO_SESSIONS in libtpms' command attributes); SoftTpm's
 * dispatch table marks only Startup and FlushContext `noSessions`, so the context commands are
 * named here.
 */
function sessionsAllowed(spec: CommandSpec, code: number): boolean {
  return !spec.noSessions && code !== TPM_CC.ContextSave && code !== TPM_CC.ContextLoad;
}

/**
 * After a command succeeded, its response parameters written (and encrypted) and before the
 * response HMACs (reference code, BuildResponseSession: UpdateAuditSessionStatus, then
 * CommandAudit):
 *
 * - the audit session starts at zeros and becomes exclusive on its first use or `auditReset`
 *   (and is no longer bound from its next command on: see checkAuditSession), otherwise stays exclusive only if
 *   it was; `auditExclusive` in its response attributes says which; its digest is extended;
 * - without an audit session, a command that allows sessions ends the exclusive audit session;
 * - an audited command extends the command audit digest (a new one bumps the audit counter);
 * - and what other commands change: TPM2_Clear zeroes the audit counter (Part 3 §24.6),
 *   TPM2_Startup forgets the sessions and, on TPM Reset, the command audit digest (Part 1 §32.2),
 *   TPM2_FlushContext and TPM2_StartAuthSession forget a session handle's audit digest.
 */
export function auditResponse(t: Engine, spec: CommandSpec, code: number, nSessions: number, params: Uint8Array): void {
  const s = auditState(t);
  let audited = false;
  for (let i = 0; i < nSessions; i++) {
    const sess = t.sessionObjs[i];
    const attrs = t.sessionAttrs[i]!;
    if (!sess || !(attrs & TPMA_SESSION.AUDIT) || !s.sessionCpHash) continue;
    audited = true;
    const a = sess.authHash;
    let digest = s.sessions.get(sess.handle);
    if (digest === undefined || attrs & TPMA_SESSION.AUDITRESET) {
      digest = new Uint8Array(a.size);
      s.exclusive = sess.handle;
    } else if (s.exclusive !== sess.handle) {
      s.exclusive = undefined;
    }
    t.sessionAttrs[i] = s.exclusive === sess.handle ? attrs | TPMA_SESSION.AUDITEXCLUSIVE : attrs & ~TPMA_SESSION.AUDITEXCLUSIVE;
    digest = a.hash(concatBytes(digest, s.sessionCpHash, rpHashOf(a, code, params)));
    if (attrs & TPMA_SESSION.CONTINUESESSION) s.sessions.set(sess.handle, digest);
    else s.sessions.delete(sess.handle); // the session ends with this command
  }
  if (!audited && sessionsAllowed(spec, code)) s.exclusive = undefined;

  if (s.commandCpHash && !s.skipCommandAudit) {
    if (s.digest === undefined) {
      s.digest = new Uint8Array(s.alg.size);
      s.counter++;
    }
    s.digest = s.alg.hash(concatBytes(s.digest, s.commandCpHash, rpHashOf(s.alg, code, params)));
  }

  if (code === TPM_CC.Clear) s.counter = 0n;
  else if (code === TPM_CC.Startup) {
    s.sessions.clear();
    s.exclusive = undefined;
    // restartCount is 0 after a TPM Reset only (a Restart or Resume counts up)
    if (t.ps.restartCount === 0) s.digest = undefined;
  } else if (code === TPM_CC.StartAuthSession) {
    s.sessions.delete(sessionKeyOf(t.rHandle)); // a new session in a slot that may have held an audit session
  } else if (code === TPM_CC.FlushContext && s.flushHandle !== undefined) {
    const ht = s.flushHandle >>> 24;
    if (ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION) {
      const h = sessionKeyOf(s.flushHandle);
      s.sessions.delete(h);
      if (s.exclusive === h) s.exclusive = undefined;
    }
  }
  // sessions closed by continueSession CLEAR that were not audit sessions of this command
  for (let i = 0; i < nSessions; i++) {
    const sess = t.sessionObjs[i];
    if (sess && !(t.sessionAttrs[i]! & TPMA_SESSION.CONTINUESESSION)) s.sessions.delete(sess.handle);
  }
}
