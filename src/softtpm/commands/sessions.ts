/**
 * Session commands (TPM 2.0 Part 3 §11): TPM2_StartAuthSession, for unsalted HMAC sessions
 * (bound or unbound) with symmetric TPM_ALG_NULL. Salted sessions need a loaded key (SoftTpm has
 * none); policy and trial sessions and parameter encryption are not implemented. How a session
 * authorizes a command is the engine's authorization step.
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_HR, TPM_HT, TPM_RC, TPM_RH, TPM_SE, TPMA_NV } from "../../wire/constants.js";
import { bindAuthValue, kdfa, trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { MAX_ENCRYPTED_SECRET, MAX_SESSIONS, SESSION_HANDLE_RANGE } from "../engine/limits.js";
import { EMPTY, H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { hashImpl } from "../tables.js";

/** Shortest nonceCaller TPM2_StartAuthSession takes (Part 3 §11.1: 16 bytes). */
const MIN_NONCE = 16;
/** Largest TPM2B_NONCE: the largest digest (SHA-512). */
const MAX_NONCE = 64;

/** TPM2_StartAuthSession, Part 3 §11.1. */
function startAuthSession(t: Engine, h: number[], inp: In, out: Out): void {
  const tpmKey = h[0]!;
  const bind = h[1]!;
  const nonceCaller = inp.tpm2b(MAX_NONCE);
  inp.param = 2;
  const salt = inp.tpm2b(MAX_ENCRYPTED_SECRET);
  inp.param = 3;
  const type = inp.u8();
  if (type !== TPM_SE.HMAC && type !== TPM_SE.POLICY && type !== TPM_SE.TRIAL) throw new Rc(P(TPM_RC.VALUE, 3)); // TPMI_SE
  inp.param = 4;
  const sym = inp.u16();
  if (sym !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.SYMMETRIC, 4)); // no symmetric algorithm is implemented
  inp.param = 5;
  const authHash = hashImpl(inp.u16());
  if (!authHash) throw new Rc(P(TPM_RC.HASH, 5));
  inp.done();
  // nonceCaller first, then tpmKey and the salt (libtpms order; swtpm 0.7.1, measured)
  if (nonceCaller.length < MIN_NONCE || nonceCaller.length > authHash.size) throw new Rc(P(TPM_RC.SIZE, 1));
  if (tpmKey !== TPM_RH.NULL) throw new Rc(H(TPM_RC.KEY, 1)); // a loaded object here is a sequence, not a key
  if (salt.length !== 0) throw new Rc(P(TPM_RC.VALUE, 2)); // no tpmKey: a salt cannot be decrypted
  if (t.hmacSessions.size >= MAX_SESSIONS) throw new Rc(TPM_RC.SESSION_MEMORY);
  // loaded and saved sessions together hold at most SESSION_HANDLE_RANGE handles (libtpms MAX_ACTIVE_SESSIONS)
  if (t.hmacSessions.size + t.savedSessions.size >= SESSION_HANDLE_RANGE) throw new Rc(TPM_RC.SESSION_HANDLES);
  // Policy and trial sessions are not implemented: refused where libtpms would start one, so
  // every check libtpms makes first gives the same answer (swtpm 0.7.1, measured).
  if (type !== TPM_SE.HMAC) throw new Rc(P(TPM_RC.VALUE, 3));
  // nonceTPM has the size of nonceCaller, as in libtpms (swtpm 0.7.1: 16-byte nonceCaller with
  // SHA-256 gives a 16-byte nonceTPM); every later nonceTPM keeps that size.
  const nonceTPM = new Uint8Array(nonceCaller.length);
  t.random.fill(nonceTPM, 0, nonceTPM.length);
  let sessionKey: Uint8Array = EMPTY;
  if (tpmKey !== TPM_RH.NULL || bind !== TPM_RH.NULL) {
    // sessionKey = KDFa(authHash, bind authValue ‖ salt, "ATH", nonceTPM, nonceCaller), Part 1 §19.6
    const bindAuth = bind === TPM_RH.NULL ? EMPTY : trimZeros(bindAuthValue(t, bind));
    sessionKey = kdfa(authHash, bindAuth, "ATH", nonceTPM, nonceCaller, authHash.size * 8);
  }
  let handle: number = TPM_HR.HMAC_SESSION;
  while (t.hmacSessions.has(handle) || t.savedSessions.has(handle)) handle++;
  const bindNv = bind >>> 24 === TPM_HT.NV_INDEX ? t.nv(bind) : undefined;
  const daBound = bindNv !== undefined && (bindNv.attributes & TPMA_NV.NO_DA) === 0;
  t.hmacSessions.set(handle, { handle, authHash, nonceTPM, sessionKey, bind: bind === TPM_RH.NULL ? undefined : bind, daBound });
  t.rHandle = handle;
  out.tpm2b(nonceTPM);
}

/** Part 3 §11 in the dispatch table. */
export const sessionCommands: CommandEntries = [
  [TPM_CC.StartAuthSession, { handles: ["tpmKey", "entity"], auth: 0, rHandle: true, run: (t, h, i, o) => startAuthSession(t, h, i, o) }],
];
