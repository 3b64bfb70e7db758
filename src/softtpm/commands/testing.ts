/**
 * Testing (TPM 2.0 Part 3 §10): TPM2_SelfTest, TPM2_IncrementalSelfTest, TPM2_GetTestResult.
 * SoftTpm tests nothing lazily: every algorithm is always "tested".
 *
 * @packageDocumentation
 */
import { TPM_CC, TPM_RC } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import { type In, type Out, P, Rc } from "../engine/marshal.js";
import { IMPLEMENTED_ALGS } from "../tables.js";

/** Largest TPML_ALG (MAX_ALG_LIST_SIZE, TPM 2.0 Part 2 §10.9.3). */
const MAX_ALG_LIST_SIZE = 64;

/** TPM2_SelfTest, Part 3 §10.2. */
function selfTest(inp: In): void {
  const full = inp.u8(); // TPMI_YES_NO
  if (full > 1) throw new Rc(P(TPM_RC.VALUE, 1));
  inp.done();
}

/** TPM2_IncrementalSelfTest, Part 3 §10.3: everything is tested, the to-do list is empty. */
function incrementalSelfTest(inp: In, out: Out): void {
  const count = inp.u32();
  if (count > MAX_ALG_LIST_SIZE) throw new Rc(P(TPM_RC.SIZE, 1));
  const at = inp.pos;
  inp.bytes(2 * count);
  inp.done();
  // the action refuses algorithms that are not implemented (libtpms: after the size checks); any
  // algorithm TPM_CAP_ALGS lists is (tpm2_incrementalselftest asks for every one of them)
  for (let i = 0; i < count; i++) {
    const alg = (inp.buf[at + 2 * i]! << 8) | inp.buf[at + 2 * i + 1]!;
    if (!IMPLEMENTED_ALGS.some(([a]) => a === alg)) throw new Rc(P(TPM_RC.VALUE, 1));
  }
  out.u32(0);
}

/** TPM2_GetTestResult, Part 3 §10.4: no outData, testResult TPM_RC_SUCCESS. */
function getTestResult(inp: In, out: Out): void {
  inp.done();
  out.u16(0);
  out.u32(TPM_RC.SUCCESS);
}

/** Part 3 §10 in the dispatch table. */
export const testingCommands: CommandEntries = [
  [TPM_CC.SelfTest, { handles: [], auth: 0, run: (_t, _h, i) => selfTest(i) }],
  [TPM_CC.IncrementalSelfTest, { handles: [], auth: 0, run: (_t, _h, i, o) => incrementalSelfTest(i, o) }],
  [TPM_CC.GetTestResult, { handles: [], auth: 0, run: (_t, _h, i, o) => getTestResult(i, o) }],
];
