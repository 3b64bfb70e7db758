/**
 * Hierarchy commands (TPM 2.0 Part 3 §24): TPM2_CreatePrimary, TPM2_HierarchyControl,
 * TPM2_SetPrimaryPolicy, TPM2_Clear, TPM2_ClearControl, TPM2_HierarchyChangeAuth, TPM2_ChangePPS
 * and TPM2_ChangeEPS.
 *
 * The hierarchy enables (phEnable, shEnable, ehEnable, phEnableNV) and platformPolicy are
 * volatile, kept per engine (`hierarchyState`, in the engine's authorization module); ownerPolicy, endorsementPolicy and
 * lockoutPolicy are in the persistent state (state format 3), where a policy session's
 * authorization of a hierarchy finds them (Part 1 §19.7).
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TPMA_NV } from "../../wire/constants.js";
import { checkHierarchyEnabled, epochOf, hierarchyState, trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { EMPTY, H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { hashImpl } from "../tables.js";
import { allocTransient } from "../engine/objects.js";
import { u32be } from "../../wire/bytes.js";
import { createPrimaryObject, readCreateParams, writeCreation } from "./object.js";
import { AUTH_MAX, type HierarchyPolicyState, PRIMARY_SEED_SIZE, deriveSeed } from "../state.js";
import { flushHierarchyObjects } from "../engine/objects.js";
import { noteCounterGone } from "./nv.js";
import { pcrAllocation } from "./pcr.js";

export { type HierarchyState, checkHierarchyEnabled, hierarchyEnabled, hierarchyPolicy, hierarchyState } from "../engine/auth.js";


/** Sets (or, with undefined, empties) the authPolicy of hierarchy `h`; the persistent ones are saved. */
function setHierarchyPolicy(t: Engine, h: number, p: HierarchyPolicyState | undefined): void {
  const ps = t.ps;
  const key = h === TPM_RH.OWNER ? "ownerPolicy" : h === TPM_RH.ENDORSEMENT ? "endorsementPolicy" : h === TPM_RH.LOCKOUT ? "lockoutPolicy" : undefined;
  if (!key) {
    hierarchyState(t).platformPolicy = p;
    return;
  }
  if (p) ps[key] = p;
  else delete ps[key];
  t.markDirty();
}

/**
 * TPM2_CreatePrimary, Part 3 §24.1: a primary object derived from the hierarchy's primary seed
 * and the template (Part 1 §27.3), loaded; the same template gives the same object until the
 * seed changes (TPM2_Clear for the owner hierarchy, every TPM Reset for TPM_RH_NULL).
 */
function createPrimary(t: Engine, h: number[], inp: In, out: Out, locality: number): void {
  checkHierarchyEnabled(t, h[0]!, 1);
  const p = readCreateParams(inp);
  const handle = allocTransient(t);
  const o = createPrimaryObject(t, h[0]!, p, handle);
  t.objects.set(handle, o);
  t.rHandle = handle;
  out.tpm2b(o.publicArea);
  writeCreation(t, out, o, TPM_ALG.NULL, u32be(h[0]!), u32be(h[0]!), p, locality);
  out.tpm2b(o.name);
}

/** TPM2_Clear, Part 3 §24.6. */
function clear(t: Engine, h: number[], inp: In): void {
  inp.done();
  checkHierarchyEnabled(t, h[0]!, 1);
  const hs = hierarchyState(t); // before the counters change below
  const ps = t.ps;
  if (ps.disableClear) throw new Rc(TPM_RC.DISABLED);
  pcrAllocation(t); // an allocation waiting since before the last TPM Reset applies now, before resetCount goes to 0
  ps.ownerAuth = EMPTY;
  ps.endorsementAuth = EMPTY;
  ps.lockoutAuth = EMPTY;
  for (const nv of ps.nv) if (!(nv.attributes & TPMA_NV.PLATFORMCREATE)) noteCounterGone(t, nv);
  ps.nv = ps.nv.filter((nv) => (nv.attributes & TPMA_NV.PLATFORMCREATE) !== 0);
  const seed = new Uint8Array(32);
  t.random.fill(seed, 0, 32);
  ps.proofSeed = seed;
  // a new storage primary seed: primary objects of the owner hierarchy change (Part 1 §14.3.4),
  // persistent objects of the owner and endorsement hierarchies go (Part 3 §24.6)
  ps.storageSeed = deriveSeed(seed, "SPS");
  ps.persistent = ps.persistent.filter((o) => o.hierarchy === TPM_RH.PLATFORM);
  flushHierarchyObjects(t, (h) => h !== TPM_RH.PLATFORM);
  // Clear also resets the dictionary-attack state (swtpm: LOCKOUT_COUNTER 0, lockoutAuth usable)
  ps.failedTries = 0;
  t.lockoutUntil = 0;
  ps.lockoutAuthDisabled = false;
  // Clear bumps pcrUpdateCounter (libtpms does too) and empties the PCR authValue (below; the PCR
  // policy stays: swtpm 0.7.1, measured)
  t.pcrUpdateCounter = (t.pcrUpdateCounter + 1) >>> 0;
  // ... and restarts Clock at 0 with resetCount and restartCount 0 and Clock safe (Part 3 §24.6;
  // swtpm 0.7.1, measured); `time` (since power-on) goes on
  t.clockAtPowerOn = -Math.max(0, Math.floor(t.clock.now() - t.powerOnAt));
  t.daAnchor = 0;
  ps.resetCount = 0;
  ps.restartCount = 0;
  // a PCR allocation still waiting for the next TPM Reset keeps waiting (it applies when resetCount changes)
  if (ps.pcrAllocationPending) ps.pcrAllocationPending.resetCount = 0;
  ps.clockSafe = true;
  // ... and empties the owner, endorsement and lockout policies and SETs shEnable and ehEnable
  // (Part 3 §24.6; swtpm 0.7.1, measured: after HierarchyControl disabled them)
  hs.shEnable = true;
  hs.ehEnable = true;
  delete ps.ownerPolicy;
  delete ps.endorsementPolicy;
  delete ps.lockoutPolicy;
  hs.pcrAuth = EMPTY; // the PCR authValues too (reference code, PCRClearAuth), not the PCR policy
  hs.epoch = epochOf(t);
  t.markDirty();
}

/** TPM2_ClearControl, Part 3 §24.7. */
function clearControl(t: Engine, h: number[], inp: In): void {
  const disable = inp.u8(); // TPMI_YES_NO
  if (disable > 1) throw new Rc(P(TPM_RC.VALUE, 1));
  inp.done();
  if (h[0] === TPM_RH.LOCKOUT && disable === 0) throw new Rc(TPM_RC.AUTH_FAIL); // only the platform may enable Clear
  t.ps.disableClear = disable === 1;
  t.markDirty();
}

/** TPM2_HierarchyChangeAuth, Part 3 §24.8. */
function hierarchyChangeAuth(t: Engine, h: number[], inp: In): void {
  checkHierarchyEnabled(t, h[0]!, 1);
  const auth = trimZeros(inp.tpm2b(AUTH_MAX)); // TPM2B_AUTH
  inp.done();
  const v = auth.slice();
  switch (h[0]) {
    case TPM_RH.OWNER:
      t.ps.ownerAuth = v;
      break;
    case TPM_RH.ENDORSEMENT:
      t.ps.endorsementAuth = v;
      break;
    case TPM_RH.LOCKOUT:
      t.ps.lockoutAuth = v;
      break;
    default:
      t.platformAuth = v;
      // platformAuth is part of the state Shutdown(STATE) saves: changing it undoes that
      // Shutdown (the other hierarchies' auth values and NV changes do not; swtpm 0.7.1, measured)
      if (t.shutdownIssued) t.invalidateOrderly();
      return; // platform auth is volatile
  }
  t.markDirty();
}

/**
 * TPM2_HierarchyControl, Part 3 §24.2: enables or disables a hierarchy. Only the platform may
 * touch phEnable / phEnableNV or enable a hierarchy that is disabled (its own handle is then
 * disabled too); the owner and endorsement hierarchies may disable themselves. A disabled
 * hierarchy's loaded objects are flushed. Codes as swtpm 0.7.1 gives them (measured).
 */
function hierarchyControl(t: Engine, h: number[], inp: In): void {
  const auth = h[0]!;
  if (auth === TPM_RH.NULL) throw new Rc(H(TPM_RC.VALUE, 1)); // TPMI_RH_HIERARCHY without NULL
  checkHierarchyEnabled(t, auth, 1);
  const enable = inp.u32(); // TPMI_RH_ENABLES
  if (enable !== TPM_RH.OWNER && enable !== TPM_RH.ENDORSEMENT && enable !== TPM_RH.PLATFORM && enable !== TPM_RH.PLATFORM_NV) throw new Rc(P(TPM_RC.VALUE, 1));
  inp.param = 2;
  const state = inp.u8(); // TPMI_YES_NO
  if (state > 1) throw new Rc(P(TPM_RC.VALUE, 2));
  inp.done();
  if (auth !== TPM_RH.PLATFORM) {
    // the owner may only change shEnable, the endorsement hierarchy only ehEnable
    if (enable !== auth) throw new Rc(TPM_RC.AUTH_TYPE);
  }
  const s = hierarchyState(t);
  const on = state === 1;
  let was: boolean;
  switch (enable) {
    case TPM_RH.OWNER:
      was = s.shEnable;
      s.shEnable = on;
      break;
    case TPM_RH.ENDORSEMENT:
      was = s.ehEnable;
      s.ehEnable = on;
      break;
    case TPM_RH.PLATFORM:
      was = s.phEnable;
      s.phEnable = on;
      break;
    default:
      was = s.phEnableNV;
      s.phEnableNV = on;
  }
  if (was === on) return;
  // a disabled hierarchy's transient objects go (reference code, ObjectFlushHierarchy)
  if (!on && enable !== TPM_RH.PLATFORM_NV) flushHierarchyObjects(t, (x) => x === enable);
  // the state-clear data changed: a preceding Shutdown no longer counts (g_clearOrderly)
  if (t.shutdownIssued) t.invalidateOrderly();
}

/**
 * TPM2_SetPrimaryPolicy, Part 3 §24.3: sets the authPolicy of a hierarchy (TPM_RH_LOCKOUT,
 * _OWNER, _ENDORSEMENT, _PLATFORM). The digest must have the size of hashAlg (TPM_ALG_NULL: empty),
 * else TPM_RC_SIZE + P + 1 (swtpm 0.7.1, measured).
 */
function setPrimaryPolicy(t: Engine, h: number[], inp: In): void {
  checkHierarchyEnabled(t, h[0]!, 1);
  const policy = inp.tpm2b(AUTH_MAX); // TPM2B_DIGEST
  inp.param = 2;
  const alg = inp.u16(); // TPMI_ALG_HASH+
  if (alg !== TPM_ALG.NULL && !hashImpl(alg)) throw new Rc(P(TPM_RC.HASH, 2));
  inp.done();
  const size = alg === TPM_ALG.NULL ? 0 : hashImpl(alg)!.size;
  if (policy.length !== size) throw new Rc(P(TPM_RC.SIZE, 1));
  setHierarchyPolicy(t, h[0]!, policy.length === 0 ? undefined : { policy: policy.slice(), alg });
}

/**
 * A new primary seed for the platform or endorsement hierarchy, with what goes with it (Part 3
 * §24.10, §24.11; reference code, ChangePPS / ChangeEPS): the hierarchy's loaded objects are
 * flushed and its persistent objects deleted (its NV indices stay), and since state-clear data
 * changed a preceding Shutdown no longer counts.
 */
function newHierarchySeed(t: Engine, hierarchy: number): Uint8Array {
  const seed = new Uint8Array(PRIMARY_SEED_SIZE);
  t.random.fill(seed, 0, PRIMARY_SEED_SIZE);
  const ps = t.ps;
  ps.persistent = ps.persistent.filter((o) => o.hierarchy !== hierarchy);
  flushHierarchyObjects(t, (x) => x === hierarchy);
  if (t.shutdownIssued) t.invalidateOrderly();
  return seed;
}

/**
 * TPM2_ChangePPS, Part 3 §24.10: a new platform primary seed (PPS) from the RNG, platformPolicy
 * and the PCR policy back to the Empty Buffer, platform objects flushed. (SoftTpm derives every
 * hierarchy proof from one secret, so phProof is not renewed: tickets and contexts of the
 * platform hierarchy stay valid; libtpms renews phProof and refuses them.)
 */
function changePPS(t: Engine, h: number[], inp: In): void {
  inp.done();
  checkHierarchyEnabled(t, h[0]!, 1);
  t.ps.platformSeed = newHierarchySeed(t, TPM_RH.PLATFORM);
  hierarchyState(t).platformPolicy = undefined;
  delete t.ps.pcrPolicy; // the PCR policies start over too (reference code, ChangePPS)
  t.markDirty();
}

/**
 * TPM2_ChangeEPS, Part 3 §24.11: a new endorsement primary seed (EPS) from the RNG; the
 * endorsement hierarchy is enabled again, its authValue and authPolicy are emptied, its objects
 * flushed. (ehProof is not renewed, as for ChangePPS.)
 */
function changeEPS(t: Engine, h: number[], inp: In): void {
  inp.done();
  checkHierarchyEnabled(t, h[0]!, 1);
  const ps = t.ps;
  ps.endorsementSeed = newHierarchySeed(t, TPM_RH.ENDORSEMENT);
  ps.endorsementAuth = EMPTY;
  delete ps.endorsementPolicy;
  hierarchyState(t).ehEnable = true;
  t.markDirty();
}

/** Part 3 §24 in the dispatch table. */
export const hierarchyCommands: CommandEntries = [
  [TPM_CC.CreatePrimary, { decrypt: true, encrypt: true, handles: ["hierarchy"], auth: 1, rHandle: true, run: (t, h, i, o, l) => createPrimary(t, h, i, o, l) }],
  [TPM_CC.HierarchyControl, { handles: ["hierarchy"], auth: 1, run: (t, h, i) => hierarchyControl(t, h, i) }],
  [TPM_CC.SetPrimaryPolicy, { decrypt: true, handles: ["hierarchyAuth"], auth: 1, run: (t, h, i) => setPrimaryPolicy(t, h, i) }],
  [TPM_CC.Clear, { handles: ["clear"], auth: 1, changes: true, run: (t, h, i) => clear(t, h, i) }],
  [TPM_CC.ClearControl, { handles: ["clear"], auth: 1, run: (t, h, i) => clearControl(t, h, i) }],
  [TPM_CC.HierarchyChangeAuth, { decrypt: true, handles: ["hierarchyAuth"], auth: 1, run: (t, h, i) => hierarchyChangeAuth(t, h, i) }],
  [TPM_CC.ChangePPS, { handles: ["platform"], auth: 1, run: (t, h, i) => changePPS(t, h, i) }],
  [TPM_CC.ChangeEPS, { handles: ["platform"], auth: 1, run: (t, h, i) => changeEPS(t, h, i) }],
];
