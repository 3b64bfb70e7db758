/**
 * Audit commands: TPM2_SetCommandCodeAuditStatus (TPM 2.0 Part 3 §21.2), and the two audit
 * attestations TPM2_GetSessionAuditDigest (Part 3 §18.5) and TPM2_GetCommandAuditDigest
 * (Part 3 §18.6), which sign a TPMS_ATTEST as the other attestation commands do. The audit
 * bookkeeping itself (the digests, the list, the counter, the exclusive session) is in the
 * engine's audit module. Check order and codes are libtpms' (swtpm 0.7.1, measured).
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_RC, TPM_ST } from "../../wire/constants.js";
import { auditState, commandListDigest, isImplemented } from "../engine/audit.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { EMPTY, H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { hashImpl } from "../tables.js";
import { attestCommon, readSigScheme, selectScheme, signAttest, signingKey } from "./attestation.js";
import { checkHierarchyEnabled } from "./hierarchy.js";

/** Largest TPM2B_DATA: sizeof(TPMT_HA) (Part 2 §10.4.3). */
const MAX_DATA = 66;
/** Most command codes in a TPML_CC (MAX_CAP_CC, Part 2 §10.9.1; 254 in libtpms: TPM_RC_SIZE above, swtpm 0.7.1, measured). */
const MAX_CAP_CC = 254;

/** Reads TPML_CC as parameter `n`: more than MAX_CAP_CC entries is TPM_RC_SIZE + P + n. */
function readCcList(inp: In, n: number): number[] {
  inp.param = n;
  const count = inp.u32();
  if (count > MAX_CAP_CC) throw new Rc(P(TPM_RC.SIZE, n));
  const list: number[] = [];
  for (let i = 0; i < count; i++) list.push(inp.u32());
  return list;
}

/**
 * TPM2_SetCommandCodeAuditStatus, Part 3 §21.2 (owner or platform authorization). auditAlg
 * (TPMI_ALG_HASH+: TPM_RC_HASH + P1 for a hash SoftTpm lacks) other than TPM_ALG_NULL and the
 * current algorithm changes the algorithm and empties the audit digest; the lists must then be
 * empty (TPM_RC_VALUE + P1), and this command is not audited. Otherwise the codes of setList are
 * added and those of clearList removed: a code SoftTpm does not implement is ignored, as are
 * TPM2_Shutdown in setList and TPM2_SetCommandCodeAuditStatus in clearList. Needs NV
 * (TPM_RC_NV_UNAVAILABLE), as in a TPM the list is NV state.
 */
function setCommandCodeAuditStatus(t: Engine, h: number[], inp: In): void {
  // a disabled hierarchy first, before the parameters (swtpm 0.7.1, measured: TPM_RC_HIERARCHY + H1;
  // swtpm refuses it before the authorization too, SoftTpm's handlers run after it)
  checkHierarchyEnabled(t, h[0]!, 1);
  inp.param = 1;
  const alg = inp.u16();
  const a = alg === TPM_ALG.NULL ? undefined : hashImpl(alg);
  if (alg !== TPM_ALG.NULL && !a) throw new Rc(P(TPM_RC.HASH, 1));
  const setList = readCcList(inp, 2);
  const clearList = readCcList(inp, 3);
  inp.done();
  if (!t.persistence.available) throw new Rc(TPM_RC.NV_UNAVAILABLE);
  const s = auditState(t);
  if (a && a !== s.alg) {
    if (setList.length !== 0 || clearList.length !== 0) throw new Rc(P(TPM_RC.VALUE, 1));
    s.alg = a;
    s.digest = undefined;
    s.skipCommandAudit = true;
    return;
  }
  for (const c of setList) if (c !== TPM_CC.Shutdown && isImplemented(c)) s.commands.add(c);
  for (const c of clearList) if (c !== TPM_CC.SetCommandCodeAuditStatus) s.commands.delete(c);
}

/**
 * TPM2_GetSessionAuditDigest, Part 3 §18.5: the audit digest of the HMAC session `sessionHandle`,
 * signed. Authorized by the privacy administrator (the endorsement hierarchy) and the signing key.
 * sessionHandle is a TPMI_SH_HMAC, checked by the dispatcher (handle kind "hmacSession": a
 * policy session, object or other handle is TPM_RC_VALUE + H3; an HMAC session that is not loaded
 * TPM_RC_REFERENCE_H2; the HMAC handle of a policy session's slot TPM_RC_HANDLE + H3); a session
 * never used for audit is TPM_RC_TYPE + H3, after the key (TPM_RC_KEY + H2) and scheme
 * (TPM_RC_SCHEME + P2) checks.
 */
function getSessionAuditDigest(t: Engine, h: number[], inp: In, out: Out): void {
  const sh = h[2]!;
  inp.param = 1;
  const qualifyingData = inp.tpm2b(MAX_DATA).slice();
  const inScheme = readSigScheme(inp, 2);
  inp.done();
  const key = signingKey(t, h[1]!, 2);
  const scheme = selectScheme(key, inScheme, 2);
  const s = auditState(t);
  const digest = s.sessions.get(sh);
  if (digest === undefined) throw new Rc(H(TPM_RC.TYPE, 3));
  const common = attestCommon(t, key, scheme, qualifyingData);
  signAttest(t, out, key, scheme, common, { type: TPM_ST.ATTEST_SESSION_AUDIT, attested: { exclusiveSession: s.exclusive === sh, sessionDigest: digest.slice() } });
}

/**
 * TPM2_GetCommandAuditDigest, Part 3 §18.6: the audit counter, auditAlg, the command audit digest
 * (empty when no audited command ran since it was last emptied) and the digest of the audit list,
 * signed. A signature by a key (not TPM_RH_NULL) empties the audit digest, so the next audited
 * command starts a new one and bumps the counter.
 */
function getCommandAuditDigest(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const qualifyingData = inp.tpm2b(MAX_DATA).slice();
  const inScheme = readSigScheme(inp, 2);
  inp.done();
  const key = signingKey(t, h[1]!, 2);
  const scheme = selectScheme(key, inScheme, 2);
  const s = auditState(t);
  const common = attestCommon(t, key, scheme, qualifyingData);
  signAttest(t, out, key, scheme, common, {
    type: TPM_ST.ATTEST_COMMAND_AUDIT,
    attested: { auditCounter: s.counter, digestAlg: s.alg.alg, auditDigest: s.digest?.slice() ?? EMPTY, commandDigest: commandListDigest(s) },
  });
  if (key) s.digest = undefined;
}

/** Part 3 §21.2, §18.5 and §18.6 in the dispatch table. */
export const auditCommands: CommandEntries = [
  [TPM_CC.SetCommandCodeAuditStatus, { handles: ["provision"], auth: 1, run: (t, h, i) => setCommandCodeAuditStatus(t, h, i) }],
  [TPM_CC.GetSessionAuditDigest, { decrypt: true, encrypt: true, handles: ["endorsement", "tpmKey", "hmacSession"], auth: 2, run: (t, h, i, o) => getSessionAuditDigest(t, h, i, o) }],
  [TPM_CC.GetCommandAuditDigest, { decrypt: true, encrypt: true, handles: ["endorsement", "tpmKey"], auth: 2, run: (t, h, i, o) => getCommandAuditDigest(t, h, i, o) }],
];
