/**
 * Context management (TPM 2.0 Part 3 §28): TPM2_FlushContext, for HMAC sessions and sequence
 * objects (SoftTpm saves no contexts).
 *
 * @packageDocumentation
 */
import { TPM_CC, TPM_HR, TPM_HT, TPM_RC } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { MAX_SEQUENCES, SESSION_HANDLE_RANGE } from "../engine/limits.js";
import { type In, P, Rc } from "../engine/marshal.js";

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
    // policy-session handle of the same slot (swtpm 0.7.1, measured)
    if (!t.hmacSessions.delete((TPM_HR.HMAC_SESSION | slot) >>> 0)) throw new Rc(P(TPM_RC.HANDLE, 1));
  } else if (ht === TPM_HT.TRANSIENT) {
    if (!t.sequences.delete(h)) throw new Rc(P(TPM_RC.HANDLE, 1));
  } else {
    throw new Rc(P(TPM_RC.VALUE, 1));
  }
}

/** Part 3 §28 in the dispatch table. */
export const contextCommands: CommandEntries = [[TPM_CC.FlushContext, { handles: [], auth: 0, noSessions: true, run: (t, _h, i) => flushContext(t, i) }]];
