/**
 * Start-up (TPM 2.0 Part 3 §9): TPM2_Startup and TPM2_Shutdown, with TPM Reset, Restart and
 * Resume as Part 1 §12.2 defines them, and the libtpms details swtpm 0.7.1 shows (measured).
 *
 * @packageDocumentation
 */
import { TPM_CC, TPM_RC, TPM_SU, TPMA_NV } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { daParameters } from "../state.js";
import { EMPTY, type In, P, Rc } from "../engine/marshal.js";
import { HASH_IMPLS, PCR_COUNT, PCR_INIT_ONES, PCR_NO_INCREMENT, PCR_SAVE } from "../tables.js";

/** Reads a TPM_SU: checked as it is unmarshalled, before the size check. */
function startupType(inp: In): number {
  const su = inp.u16();
  if (su !== TPM_SU.CLEAR && su !== TPM_SU.STATE) throw new Rc(P(TPM_RC.VALUE, 1));
  return su;
}

/**
 * TPM2_Startup, Part 3 §9.3. As libtpms (swtpm 0.7.1, measured): only localities 0 and 3 may
 * start the TPM (TCG PC Client Platform TPM Profile); Startup(CLEAR) at locality 3 sets PCR 0 to
 * 0…03 in every bank; a resume must come from locality 3 exactly when the Startup before the
 * Shutdown(STATE) did.
 */
function startup(t: Engine, inp: In, locality: number): void {
  const su = startupType(inp);
  inp.done();
  if (locality !== 0 && locality !== 3) throw new Rc(TPM_RC.LOCALITY);
  const ps = t.ps;
  const prev = ps.orderly;
  if (su === TPM_SU.STATE && (prev !== "state" || !ps.saved)) {
    // libtpms quirk (swtpm 0.7.1, measured): a refused Startup(STATE) also forgets the
    // "DA used" mark, so the Startup(CLEAR) after it counts no DA failure
    if (ps.daUsed) {
      ps.daUsed = false;
      t.markDirty();
    }
    throw new Rc(P(TPM_RC.VALUE, 1));
  }
  if (su === TPM_SU.STATE && (ps.saved!.startupLocality3 === true) !== (locality === 3)) throw new Rc(TPM_RC.LOCALITY);
  const saved = prev === "state" ? ps.saved : undefined;
  let counter: number;
  if (prev === "state" && saved) {
    // TPM Restart (Startup(CLEAR)) or TPM Resume (Startup(STATE)) after Shutdown(STATE)
    ps.restartCount = (ps.restartCount + 1) >>> 0;
    counter = saved.pcrUpdateCounter;
  } else {
    // TPM Reset
    ps.resetCount = (ps.resetCount + 1) >>> 0;
    ps.restartCount = 0;
    counter = 0;
    if (prev === "none") ps.clockSafe = false;
  }
  const keep = su === TPM_SU.STATE ? PCR_SAVE : 0;
  for (let b = 0; b < HASH_IMPLS.length; b++) {
    const size = HASH_IMPLS[b]!.size;
    const bank = t.pcrs[b]!;
    for (let i = 0; i < PCR_COUNT; i++) {
      if ((keep >>> i) & 1) bank.set(saved!.pcrs[b]!.subarray(i * size, (i + 1) * size), i * size);
      else bank.fill((PCR_INIT_ONES >>> i) & 1 ? 0xff : 0, i * size, (i + 1) * size);
    }
    if (!(keep & 1) && locality === 3) bank[size - 1] = 3; // PCR 0 after a locality-3 Startup
  }
  t.startupLocality3 = locality === 3;
  t.startupOrderly = prev !== "none";
  const da = daParameters(ps);
  if (prev === "none" && ps.daUsed && ps.failedTries < da.maxTries && da.recoveryTime > 0) {
    if (ps.failedTries === 0) t.daAnchor = t.clockNow();
    ps.failedTries++;
  }
  ps.daUsed = false;
  for (let i = 0; i < PCR_COUNT; i++) if (!((keep >>> i) & 1) && !((PCR_NO_INCREMENT >>> i) & 1)) counter++;
  t.pcrUpdateCounter = counter >>> 0;
  t.platformAuth = su === TPM_SU.STATE && saved ? saved.platformAuth : EMPTY;
  if (su === TPM_SU.CLEAR) {
    for (const nv of ps.nv) {
      let a = nv.attributes & ~TPMA_NV.READLOCKED;
      // a write lock lasts past Startup(CLEAR) only on a written WRITEDEFINE index (so an
      // unwritten WRITEDEFINE index is unlocked too; swtpm 0.7.1, measured)
      if (!(a & TPMA_NV.WRITEDEFINE && a & TPMA_NV.WRITTEN)) a &= ~TPMA_NV.WRITELOCKED;
      if (a & TPMA_NV.CLEAR_STCLEAR) a &= ~TPMA_NV.WRITTEN;
      nv.attributes = a >>> 0;
    }
  }
  ps.orderly = "none";
  ps.saved = undefined;
  t.power = "running";
  t.shutdownIssued = false;
  t.daPending = t.daRetry;
  t.markDirty();
}

/** TPM2_Shutdown, Part 3 §9.4. */
function shutdown(t: Engine, inp: In): void {
  const su = startupType(inp);
  inp.done();
  const ps = t.ps;
  // a PCR allocation waits for a TPM Reset: no Shutdown(STATE) meanwhile (libtpms g_pcrReConfig;
  // swtpm 0.7.1, measured: TPM_RC_TYPE + P1)
  if (su === TPM_SU.STATE && ps.pcrAllocationPending) throw new Rc(P(TPM_RC.TYPE, 1));
  if (su === TPM_SU.STATE) {
    ps.orderly = "state";
    ps.saved = { pcrUpdateCounter: t.pcrUpdateCounter, platformAuth: t.platformAuth.slice(), pcrs: t.pcrs.map((p) => p.slice()) };
    if (t.startupLocality3) ps.saved.startupLocality3 = true;
  } else {
    ps.orderly = "clear";
    ps.saved = undefined;
  }
  t.shutdownIssued = true;
  ps.daUsed = false;
  // libtpms answers TPM_RC_RETRY to the first DA-protected authorization after a Shutdown too,
  // not only after Startup (swtpm 0.7.1, measured)
  t.daPending = t.daRetry;
  t.markDirty();
}

/** Part 3 §9 in the dispatch table. */
export const startupCommands: CommandEntries = [
  [TPM_CC.Startup, { handles: [], auth: 0, noSessions: true, run: (t, _h, i, _o, l) => startup(t, i, l) }],
  [TPM_CC.Shutdown, { handles: [], auth: 0, run: (t, _h, i) => shutdown(t, i) }],
];
