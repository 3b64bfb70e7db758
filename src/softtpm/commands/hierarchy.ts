/**
 * Hierarchy commands (TPM 2.0 Part 3 §24): TPM2_CreatePrimary, TPM2_Clear, TPM2_ClearControl
 * and TPM2_HierarchyChangeAuth. (HierarchyControl, SetPrimaryPolicy and ChangePPS/EPS are not
 * implemented yet.)
 *
 * @packageDocumentation
 */
import { TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TPMA_NV } from "../../wire/constants.js";
import { trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { EMPTY, type In, type Out, P, Rc } from "../engine/marshal.js";
import { allocTransient } from "../engine/objects.js";
import { u32be } from "../../wire/bytes.js";
import { createPrimaryObject, readCreateParams, writeCreation } from "./object.js";
import { AUTH_MAX, deriveSeed } from "../state.js";
import { flushHierarchyObjects } from "../engine/objects.js";
import { noteCounterGone } from "./nv.js";

/**
 * TPM2_CreatePrimary, Part 3 §24.1: a primary object derived from the hierarchy's primary seed
 * and the template (Part 1 §27.3), loaded; the same template gives the same object until the
 * seed changes (TPM2_Clear for the owner hierarchy, every TPM Reset for TPM_RH_NULL).
 */
function createPrimary(t: Engine, h: number[], inp: In, out: Out, locality: number): void {
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
function clear(t: Engine, inp: In): void {
  inp.done();
  const ps = t.ps;
  if (ps.disableClear) throw new Rc(TPM_RC.DISABLED);
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
  // Clear resets the PCR auth values and policies and bumps pcrUpdateCounter (libtpms does too)
  t.pcrUpdateCounter = (t.pcrUpdateCounter + 1) >>> 0;
  // ... and restarts Clock at 0 with resetCount and restartCount 0 and Clock safe (Part 3 §24.6;
  // swtpm 0.7.1, measured); `time` (since power-on) goes on
  t.clockAtPowerOn = -Math.max(0, Math.floor(t.clock.now() - t.powerOnAt));
  t.daAnchor = 0;
  ps.resetCount = 0;
  ps.restartCount = 0;
  ps.clockSafe = true;
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

/** Part 3 §24 in the dispatch table. */
export const hierarchyCommands: CommandEntries = [
  [TPM_CC.CreatePrimary, { decrypt: true, encrypt: true, handles: ["hierarchy"], auth: 1, rHandle: true, run: (t, h, i, o, l) => createPrimary(t, h, i, o, l) }],
  [TPM_CC.Clear, { handles: ["clear"], auth: 1, changes: true, run: (t, _h, i) => clear(t, i) }],
  [TPM_CC.ClearControl, { handles: ["clear"], auth: 1, run: (t, h, i) => clearControl(t, h, i) }],
  [TPM_CC.HierarchyChangeAuth, { decrypt: true, handles: ["hierarchyAuth"], auth: 1, run: (t, h, i) => hierarchyChangeAuth(t, h, i) }],
];
