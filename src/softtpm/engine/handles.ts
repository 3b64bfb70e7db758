/**
 * Handle-area checks of the SoftTpm dispatcher, in libtpms order: each handle's type as it is
 * unmarshalled (TPMI_* of TPM 2.0 Part 2), then, after the whole handle area is read, whether the
 * entity exists.
 *
 * @packageDocumentation
 */
import { TPM_HR, TPM_HT, TPM_RC, TPM_RH } from "../../wire/constants.js";
import { PCR_COUNT } from "../tables.js";
import type { Engine } from "./engine.js";
import { MAX_SEQUENCES, SESSION_HANDLE_RANGE } from "./limits.js";
import { findObject, objectSlotsUsed } from "./objects.js";
import { H, Rc } from "./marshal.js";

/** Handle kinds a command's handle area may hold (TPMI_* types of TPM 2.0 Part 2). */
export type HandleKind =
  | "pcr" // TPMI_DH_PCR
  | "pcr+null" // TPMI_DH_PCR+
  | "provision" // TPMI_RH_PROVISION: owner, platform
  | "clear" // TPMI_RH_CLEAR: lockout, platform
  | "lockout" // TPMI_RH_LOCKOUT
  | "platform" // TPMI_RH_PLATFORM
  | "hierarchyAuth" // TPMI_RH_HIERARCHY_AUTH
  | "nvAuth" // TPMI_RH_NV_AUTH: owner, platform, NV index
  | "nvIndex" // TPMI_RH_NV_INDEX (must exist)
  | "sequence" // TPMI_DH_OBJECT holding a sequence
  | "tpmKey" // TPMI_DH_OBJECT+ (SoftTpm loads no keys: only TPM_RH_NULL)
  | "entity" // TPMI_DH_ENTITY+
  | "object" // TPMI_DH_OBJECT: a loaded object (transient) or a persistent one
  | "anyObject" // TPMI_DH_OBJECT where a sequence object is refused by the command (ReadPublic)
  | "parent" // TPMI_DH_PARENT+: an object, or TPM_RH_OWNER / _ENDORSEMENT / _PLATFORM / _NULL
  | "hierarchy" // TPMI_RH_HIERARCHY+: TPM_RH_OWNER / _ENDORSEMENT / _PLATFORM / _NULL
  | "endorsement" // TPMI_RH_ENDORSEMENT: TPM_RH_ENDORSEMENT (the privacy administrator of TPM2_GetTime)
  | "context" // TPMI_DH_CONTEXT: a session or a transient object
  | "policySession" // TPMI_SH_POLICY: a loaded policy or trial session
  | "hmacSession"; // TPMI_SH_HMAC: a loaded HMAC session

/** A transient handle in the range of SoftTpm's object slots. */
function isObjectSlot(h: number): boolean {
  return h >>> 24 === TPM_HT.TRANSIENT && (h & TPM_HR.HANDLE_MASK) < MAX_SEQUENCES;
}

/** TPM_RH_OWNER, _ENDORSEMENT, _PLATFORM or _NULL (TPMI_RH_HIERARCHY+). */
function isHierarchy(h: number): boolean {
  return h === TPM_RH.OWNER || h === TPM_RH.ENDORSEMENT || h === TPM_RH.PLATFORM || h === TPM_RH.NULL;
}

/** Handle unmarshal (TPMI_* type checks): TPM_RC_VALUE + H + n. */
export function checkHandleType(kind: HandleKind, h: number, n: number): void {
  const ht = h >>> 24;
  let ok: boolean;
  switch (kind) {
    case "pcr":
      ok = h < PCR_COUNT;
      break;
    case "pcr+null":
      ok = h < PCR_COUNT || h === TPM_RH.NULL;
      break;
    case "provision":
      ok = h === TPM_RH.OWNER || h === TPM_RH.PLATFORM;
      break;
    case "clear":
      ok = h === TPM_RH.LOCKOUT || h === TPM_RH.PLATFORM;
      break;
    case "lockout":
      ok = h === TPM_RH.LOCKOUT;
      break;
    case "platform":
      ok = h === TPM_RH.PLATFORM;
      break;
    case "hierarchyAuth":
      ok = h === TPM_RH.LOCKOUT || h === TPM_RH.OWNER || h === TPM_RH.ENDORSEMENT || h === TPM_RH.PLATFORM;
      break;
    case "nvAuth":
      ok = h === TPM_RH.OWNER || h === TPM_RH.PLATFORM || ht === TPM_HT.NV_INDEX;
      break;
    case "nvIndex":
      ok = ht === TPM_HT.NV_INDEX;
      break;
    case "sequence":
      // TPMI_DH_OBJECT: transient or persistent (libtpms: a persistent handle passes the type
      // check and is then "not loaded", TPM_RC_HANDLE; swtpm 0.7.1, measured)
      ok = isObjectSlot(h) || ht === TPM_HT.PERSISTENT;
      break;
    case "tpmKey":
      ok = h === TPM_RH.NULL || isObjectSlot(h) || ht === TPM_HT.PERSISTENT;
      break;
    case "object":
    case "anyObject":
      ok = isObjectSlot(h) || ht === TPM_HT.PERSISTENT;
      break;
    case "parent":
      ok = isObjectSlot(h) || ht === TPM_HT.PERSISTENT || isHierarchy(h);
      break;
    case "hierarchy":
      ok = isHierarchy(h);
      break;
    case "endorsement":
      ok = h === TPM_RH.ENDORSEMENT;
      break;
    case "context":
      ok = isObjectSlot(h) || ((ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION) && (h & TPM_HR.HANDLE_MASK) < SESSION_HANDLE_RANGE);
      break;
    case "policySession":
      ok = ht === TPM_HT.POLICY_SESSION && (h & TPM_HR.HANDLE_MASK) < SESSION_HANDLE_RANGE;
      break;
    case "hmacSession":
      // TPMI_SH_HMAC: an HMAC session handle of the session range; a policy session, object or
      // any other handle is TPM_RC_VALUE (swtpm 0.7.1, measured: an unloaded transient handle too)
      ok = ht === TPM_HT.HMAC_SESSION && (h & TPM_HR.HANDLE_MASK) < SESSION_HANDLE_RANGE;
      break;
    case "entity":
      ok =
        h === TPM_RH.NULL ||
        h < PCR_COUNT ||
        h === TPM_RH.OWNER ||
        h === TPM_RH.ENDORSEMENT ||
        h === TPM_RH.PLATFORM ||
        h === TPM_RH.LOCKOUT ||
        ht === TPM_HT.NV_INDEX ||
        isObjectSlot(h) ||
        ht === TPM_HT.PERSISTENT;
      break;
  }
  if (!ok) throw new Rc(H(TPM_RC.VALUE, n));
}

/** Entity existence, after the whole handle area is read: TPM_RC_HANDLE / TPM_RC_REFERENCE_Hn. */
export function checkHandleLoaded(t: Engine, kind: HandleKind, h: number, n: number): void {
  const ht = h >>> 24;
  if (ht === TPM_HT.NV_INDEX && kind !== "pcr" && !t.nv(h)) throw new Rc(H(TPM_RC.HANDLE, n));
  if (ht === TPM_HT.TRANSIENT) {
    if (!t.sequences.has(h) && !t.objects.has(h)) throw new Rc(TPM_RC.REFERENCE_H0 + n - 1); // object not loaded
    // a key where a sequence is expected: TPM_RC_MODE (Part 3 §17.4 SequenceUpdate)
    if (kind === "sequence" && !t.sequences.has(h)) throw new Rc(H(TPM_RC.MODE, n));
    // a sequence where a key is expected: TPM_RC_TYPE
    if ((kind === "object" || kind === "parent") && !t.objects.has(h)) throw new Rc(H(TPM_RC.TYPE, n));
  }
  // a policy session is found by its slot (libtpms SessionIsLoaded); an HMAC session there is
  // not a policy session (TPM_RC_HANDLE)
  if (kind === "policySession") {
    const s = t.hmacSessions.get((TPM_HR.HMAC_SESSION | (h & TPM_HR.HANDLE_MASK)) >>> 0);
    if (!s) throw new Rc(TPM_RC.REFERENCE_H0 + n - 1);
    if (!s.policy) throw new Rc(H(TPM_RC.HANDLE, n));
  }
  // and an HMAC session likewise: not loaded is TPM_RC_REFERENCE_Hn, a policy session in that
  // slot TPM_RC_HANDLE (swtpm 0.7.1, measured with TPM2_GetSessionAuditDigest)
  if (kind === "hmacSession") {
    const s = t.hmacSessions.get(h);
    if (!s) throw new Rc(TPM_RC.REFERENCE_H0 + n - 1);
    if (s.policy) throw new Rc(H(TPM_RC.HANDLE, n));
  }
  // a persistent object is used from an object slot: libtpms first needs a free one (else
  // TPM_RC_OBJECT_MEMORY), then looks the handle up (TPM_RC_HANDLE); swtpm 0.7.1, measured
  if (ht === TPM_HT.PERSISTENT) {
    if (objectSlotsUsed(t) >= MAX_SEQUENCES) throw new Rc(TPM_RC.OBJECT_MEMORY);
    if (kind === "sequence" || !findObject(t, h)) throw new Rc(H(TPM_RC.HANDLE, n));
  }
}
