/**
 * Dictionary-attack functions (TPM 2.0 Part 3 §25): TPM2_DictionaryAttackLockReset and
 * TPM2_DictionaryAttackParameters, both authorized by lockoutAuth (or lockoutPolicy). The failure
 * count and the parameters are in the persistent state (`failedTries`, `daParameters`); the
 * counting itself is in the engine's authorization module (Part 1 §19.8.6). Codes as swtpm 0.7.1 gives them
 * (measured).
 *
 * @packageDocumentation
 */
import { TPM_CC } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import type { In } from "../engine/marshal.js";

/**
 * TPM2_DictionaryAttackLockReset, Part 3 §25.2: failedTries (TPM_PT_LOCKOUT_COUNTER) back to 0,
 * so DA-protected entities are usable again.
 */
function lockReset(t: Engine, inp: In): void {
  inp.done();
  t.ps.failedTries = 0;
  t.daAnchor = t.clockNow();
  t.markDirty();
}

/**
 * TPM2_DictionaryAttackParameters, Part 3 §25.3: newMaxTries, newRecoveryTime and lockoutRecovery
 * (seconds), any UINT32. failedTries is left as it is (the errata took out its reset; libtpms too:
 * with newMaxTries 0 the TPM is in lockout at once with LOCKOUT_COUNTER 0, swtpm 0.7.1, measured).
 */
function parameters(t: Engine, inp: In): void {
  const maxTries = inp.u32();
  inp.param = 2;
  const recoveryTime = inp.u32();
  inp.param = 3;
  const lockoutRecovery = inp.u32();
  inp.done();
  // failures forgiven so far count before the new recoveryTime applies
  t.inLockout();
  t.ps.daParameters = { maxTries, recoveryTime, lockoutRecovery };
  t.daAnchor = t.clockNow();
  // a lockoutAuth blocked now waits the new lockoutRecovery (0: until the next power-on)
  if (t.ps.lockoutAuthDisabled) t.lockoutUntil = lockoutRecovery === 0 ? Number.POSITIVE_INFINITY : t.clockNow() + lockoutRecovery * 1000;
  t.markDirty();
}

/** Part 3 §25 in the dispatch table. */
export const dictionaryCommands: CommandEntries = [
  [TPM_CC.DictionaryAttackLockReset, { handles: ["lockout"], auth: 1, run: (t, _h, i) => lockReset(t, i) }],
  [TPM_CC.DictionaryAttackParameters, { handles: ["lockout"], auth: 1, run: (t, _h, i) => parameters(t, i) }],
];
