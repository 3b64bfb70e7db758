/**
 * Random number generator (TPM 2.0 Part 3 §16): TPM2_GetRandom and TPM2_StirRandom, over the
 * engine's `RandomSource`.
 *
 * @packageDocumentation
 */
import { TPM_CC } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { MAX_SYM_DATA, SOFTTPM_MAX_RANDOM } from "../engine/limits.js";
import type { In, Out } from "../engine/marshal.js";

/** TPM2_GetRandom, Part 3 §16.1: at most {@link SOFTTPM_MAX_RANDOM} bytes per call. */
function getRandom(t: Engine, inp: In, out: Out): void {
  let n = inp.u16();
  inp.done();
  if (n > SOFTTPM_MAX_RANDOM) n = SOFTTPM_MAX_RANDOM;
  out.u16(n);
  out.room(n);
  t.random.fill(out.buf, out.pos, n);
  out.pos += n;
}

/** TPM2_StirRandom, Part 3 §16.2. */
function stirRandom(t: Engine, inp: In): void {
  const d = inp.tpm2b(MAX_SYM_DATA); // TPM2B_SENSITIVE_DATA
  inp.done();
  t.random.stir(d);
}

/** Part 3 §16 in the dispatch table. */
export const randomCommands: CommandEntries = [
  // randomBytes and inData are TPM2Bs: a session may encrypt / decrypt them (Part 3 §16.1, §16.2)
  [TPM_CC.GetRandom, { encrypt: true, handles: [], auth: 0, run: (t, _h, i, o) => getRandom(t, i, o) }],
  [TPM_CC.StirRandom, { decrypt: true, handles: [], auth: 0, run: (t, _h, i) => stirRandom(t, i) }],
];
