/**
 * Context management (TPM 2.0 Part 3 §28): TPM2_ContextSave and TPM2_ContextLoad for loaded
 * objects, sequence objects (hash, event and HMAC sequences, with their hash state) and sessions, TPM2_FlushContext for objects, sequences and loaded or saved
 * sessions, and TPM2_EvictControl for persistent objects. Context blobs are encrypted and
 * integrity-protected by the engine's context module (Part 1 §30.3).
 *
 * @packageDocumentation
 */
import { TPM_CC, TPM_HR, TPM_HT, TPM_RC, TPM_RH, TPMA_OBJECT } from "../../wire/constants.js";
import { MAX_CONTEXT_SIZE } from "../../wire/structures.js";
import { objectContext, objectFromContext, openContext, sealContext, sequenceContext, sequenceFromContext, sessionContext, sessionFromContext } from "../engine/contexts.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { MAX_SEQUENCES, MAX_SESSIONS, SESSION_HANDLE_RANGE } from "../engine/limits.js";
import { H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { allocTransient, findObject, persistentRecord } from "../engine/objects.js";
import { PERSISTENT_OBJECTS_MAX } from "../state.js";

/** TPMS_CONTEXT.savedHandle of a saved ordinary object (Part 2 §14.5). */
const SAVED_OBJECT = 0x80000000;
/** TPMS_CONTEXT.savedHandle of a saved sequence object (Part 2 §14.5). */
const SAVED_SEQUENCE = 0x80000001;
/** TPMS_CONTEXT.savedHandle of a saved object with stClear SET (Part 2 §14.5). */
const SAVED_STCLEAR_OBJECT = 0x80000002;
/** TPM_PT_CONTEXT_GAP_MAX: the oldest saved session may be at most this many contexts behind (Part 1 §30.5). */
export const CONTEXT_GAP_MAX = 0xffff;
/** The sequence number of the first session context after a TPM Reset: MAX_LOADED_SESSIONS + 1 (libtpms SessionStartup). */
const FIRST_SESSION_CONTEXT = BigInt(MAX_SESSIONS) + 1n;

/** TPM2_FlushContext, Part 3 §28.4. */
function flushContext(t: Engine, inp: In): void {
  const h = inp.u32();
  const ht = h >>> 24;
  const slot = h & TPM_HR.HANDLE_MASK;
  const isSession = ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION;
  const ok = (isSession && slot < SESSION_HANDLE_RANGE) || (ht === TPM_HT.TRANSIENT && slot < MAX_SEQUENCES);
  if (!ok) throw new Rc(P(TPM_RC.VALUE, 1)); // TPMI_DH_CONTEXT, with libtpms' handle ranges
  inp.done();
  if (isSession) {
    // libtpms finds a session by its slot alone: an HMAC session can be flushed through the
    // policy-session handle of the same slot (swtpm 0.7.1, measured); a saved session is
    // flushed too (Part 3 §28.4: its context can then no longer be loaded)
    const sh = (TPM_HR.HMAC_SESSION | slot) >>> 0;
    if (!t.hmacSessions.delete(sh) && !t.savedSessions.delete(sh)) throw new Rc(P(TPM_RC.HANDLE, 1));
  } else if (ht === TPM_HT.TRANSIENT) {
    if (!t.sequences.delete(h) && !t.objects.delete(h)) throw new Rc(P(TPM_RC.HANDLE, 1));
  } else {
    throw new Rc(P(TPM_RC.VALUE, 1));
  }
}

function writeContext(out: Out, sequence: bigint, savedHandle: number, hierarchy: number, blob: Uint8Array): void {
  out.u64(sequence);
  out.u32(savedHandle);
  out.u32(hierarchy);
  out.tpm2b(blob);
}

/**
 * TPM2_ContextSave, Part 3 §28.2. An object stays loaded; a session leaves its slot, keeps its
 * handle, and exactly this context can bring it back once (Part 1 §30.5). The oldest saved
 * session may not fall more than {@link CONTEXT_GAP_MAX} contexts behind (TPM_RC_CONTEXT_GAP).
 */
function contextSave(t: Engine, h: number[], inp: In, out: Out): void {
  inp.done();
  const handle = h[0]!;
  const ht = handle >>> 24;
  if (ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION) {
    const sh = (TPM_HR.HMAC_SESSION | (handle & TPM_HR.HANDLE_MASK)) >>> 0;
    const s = t.hmacSessions.get(sh);
    if (!s) throw new Rc(TPM_RC.REFERENCE_H0);
    // the handle names the session's own type: a policy session through its HMAC-session
    // handle, or the reverse, is TPM_RC_HANDLE + H1 (swtpm 0.7.1, measured)
    if ((ht === TPM_HT.POLICY_SESSION) !== !!s.policy) throw new Rc(H(TPM_RC.HANDLE, 1));
    // libtpms' contextCounter starts at MAX_LOADED_SESSIONS + 1 (4) at TPM Reset and counts the
    // saved session contexts only (reference code SessionStartup; swtpm 0.7.1, measured: the
    // first session context after Startup is sequence 4)
    const seq = (t.contextCounter < FIRST_SESSION_CONTEXT - 1n ? FIRST_SESSION_CONTEXT - 1n : t.contextCounter) + 1n;
    for (const old of t.savedSessions.values()) if (seq - old > BigInt(CONTEXT_GAP_MAX)) throw new Rc(TPM_RC.CONTEXT_GAP);
    t.contextCounter = seq;
    // TPMS_CONTEXT.savedHandle is the session's own handle: 0x03xxxxxx for a policy or trial
    // session (Part 2 §14.5; swtpm 0.7.1, measured); it is what the blob is bound to
    const blob = sealContext(t, seq, handle, TPM_RH.NULL, sessionContext(s));
    t.hmacSessions.delete(sh);
    t.savedSessions.set(sh, seq);
    writeContext(out, seq, handle, TPM_RH.NULL, blob);
    return;
  }
  // objects count their contexts apart from sessions (libtpms objectContextID; swtpm 0.7.1 numbers
  // the first object context 1 after sessions were saved)
  const sq = t.sequences.get(handle);
  if (sq) {
    // a sequence object (Part 3 §28.2), with its hash state; it belongs to no hierarchy
    // (TPM_RH_NULL, as the reference code's ObjectGetHierarchy gives for one) and stays loaded
    const plain = sequenceContext(sq);
    if (!plain) throw new Rc(H(TPM_RC.TYPE, 1)); // a hasher whose state cannot be saved
    const seq = t.objectContextCounter + 1n;
    t.objectContextCounter = seq;
    writeContext(out, seq, SAVED_SEQUENCE, TPM_RH.NULL, sealContext(t, seq, SAVED_SEQUENCE, TPM_RH.NULL, plain));
    return;
  }
  const o = t.objects.get(handle);
  if (!o) throw new Rc(H(TPM_RC.TYPE, 1));
  const seq = t.objectContextCounter + 1n;
  t.objectContextCounter = seq;
  const saved = o.pub.objectAttributes & TPMA_OBJECT.STCLEAR ? SAVED_STCLEAR_OBJECT : SAVED_OBJECT;
  writeContext(out, seq, saved, o.hierarchy, sealContext(t, seq, saved, o.hierarchy, objectContext(o)));
}

/** TPM2_ContextLoad, Part 3 §28.3: integrity first (TPM_RC_INTEGRITY), then the handle. */
function contextLoad(t: Engine, inp: In): void {
  const hi = inp.u32();
  const lo = inp.u32();
  const sequence = (BigInt(hi) << 32n) | BigInt(lo);
  const savedHandle = inp.u32();
  // TPMI_DH_SAVED: a session handle or one of the three saved-object handles, checked as it is
  // read (TPM_RC_VALUE; swtpm 0.7.1, measured)
  const ht = savedHandle >>> 24;
  const isSession = (ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION) && (savedHandle & TPM_HR.HANDLE_MASK) < SESSION_HANDLE_RANGE;
  if (!isSession && savedHandle !== SAVED_OBJECT && savedHandle !== SAVED_SEQUENCE && savedHandle !== SAVED_STCLEAR_OBJECT) throw new Rc(P(TPM_RC.VALUE, 1));
  const hierarchy = inp.u32();
  if (hierarchy !== TPM_RH.OWNER && hierarchy !== TPM_RH.ENDORSEMENT && hierarchy !== TPM_RH.PLATFORM && hierarchy !== TPM_RH.NULL) throw new Rc(P(TPM_RC.VALUE, 1));
  const blob = inp.tpm2b(MAX_CONTEXT_SIZE);
  inp.done();
  const plain = openContext(t, sequence, savedHandle, hierarchy, blob);
  if (isSession) {
    // only the one context saved last for this session, and only once (Part 1 §30.5); saved
    // sessions are kept by their HMAC-session handle
    const sh = (TPM_HR.HMAC_SESSION | (savedHandle & TPM_HR.HANDLE_MASK)) >>> 0;
    if (t.savedSessions.get(sh) !== sequence) throw new Rc(P(TPM_RC.HANDLE, 1));
    if (t.hmacSessions.size >= MAX_SESSIONS) throw new Rc(TPM_RC.SESSION_MEMORY);
    const s = sessionFromContext(plain);
    t.savedSessions.delete(sh);
    t.hmacSessions.set(s.handle, s);
    t.rHandle = s.policy ? (TPM_HR.POLICY_SESSION | (s.handle & TPM_HR.HANDLE_MASK)) >>> 0 : s.handle; // a policy session comes back as one
    return;
  }
  const handle = allocTransient(t);
  if (savedHandle === SAVED_SEQUENCE) t.sequences.set(handle, sequenceFromContext(plain, handle));
  else t.objects.set(handle, objectFromContext(plain, handle));
  t.rHandle = handle;
}

/** Owner persistent handles 0x81000000–0x817FFFFF, platform 0x81800000–0x81FFFFFF (TCG Handle Registry; Part 3 §28.5). */
function inPlatformRange(h: number): boolean {
  return (h & 0x00800000) !== 0;
}

/** TPM2_EvictControl, Part 3 §28.5: makes a loaded object persistent, or removes a persistent one. */
function evictControl(t: Engine, h: number[], inp: In): void {
  const auth = h[0]!;
  const objectHandle = h[1]!;
  const persistentHandle = inp.u32();
  if (persistentHandle >>> 24 !== TPM_HT.PERSISTENT) throw new Rc(P(TPM_RC.VALUE, 1)); // TPMI_DH_PERSISTENT
  inp.done();
  const ps = t.ps;
  if (objectHandle >>> 24 === TPM_HT.PERSISTENT) {
    if (inPlatformRange(persistentHandle) !== (auth === TPM_RH.PLATFORM)) throw new Rc(P(TPM_RC.RANGE, 1));
    if (objectHandle !== persistentHandle) throw new Rc(P(TPM_RC.HANDLE, 1));
    ps.persistent = ps.persistent.filter((o) => o.handle !== objectHandle);
    t.persistentCache.delete(objectHandle);
    t.markDirty();
    return;
  }
  const o = findObject(t, objectHandle)!;
  const a = o.pub.objectAttributes;
  // a temporary object (NULL hierarchy, or loaded by TPM2_LoadExternal), a public-only or a
  // stClear one cannot be made persistent: TPM_RC_ATTRIBUTES + H2 before any other check; then
  // the hierarchy (TPM_RC_HIERARCHY + H2) before the handle range (TPM_RC_RANGE + P1) (reference
  // code EvictControl.c; swtpm 0.7.1, measured)
  if (o.hierarchy === TPM_RH.NULL || o.publicOnly || o.external || a & TPMA_OBJECT.STCLEAR) throw new Rc(H(TPM_RC.ATTRIBUTES, 2));
  if ((o.hierarchy === TPM_RH.PLATFORM) !== (auth === TPM_RH.PLATFORM)) throw new Rc(H(TPM_RC.HIERARCHY, 2));
  if (inPlatformRange(persistentHandle) !== (auth === TPM_RH.PLATFORM)) throw new Rc(P(TPM_RC.RANGE, 1));
  if (ps.persistent.some((p) => p.handle === persistentHandle)) throw new Rc(TPM_RC.NV_DEFINED);
  if (ps.persistent.length >= PERSISTENT_OBJECTS_MAX) throw new Rc(TPM_RC.NV_SPACE);
  ps.persistent = [...ps.persistent, persistentRecord(o, persistentHandle)].sort((x, y) => x.handle - y.handle);
  t.markDirty();
}

/** Part 3 §28 in the dispatch table. */
export const contextCommands: CommandEntries = [
  // ContextSave, ContextLoad and FlushContext take no sessions: TPM_RC_AUTH_CONTEXT (swtpm 0.7.1, measured)
  [TPM_CC.ContextSave, { handles: ["context"], auth: 0, noSessions: true, run: (t, h, i, o) => contextSave(t, h, i, o) }],
  [TPM_CC.ContextLoad, { handles: [], auth: 0, noSessions: true, rHandle: true, run: (t, _h, i) => contextLoad(t, i) }],
  [TPM_CC.FlushContext, { handles: [], auth: 0, noSessions: true, run: (t, _h, i) => flushContext(t, i) }],
  [TPM_CC.EvictControl, { handles: ["provision", "object"], auth: 1, run: (t, h, i) => evictControl(t, h, i) }],
];
