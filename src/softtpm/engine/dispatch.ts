/**
 * The SoftTpm dispatcher: command header, handle area, authorization area, parameters, response
 * (TPM 2.0 Part 1 §18, "Command/Response Structure"), over one table of command handlers that the
 * chapter files (`commands/*.ts`) fill.
 *
 * @packageDocumentation
 */
import { errorResponse, readU32be } from "../../wire/bytes.js";
import { TPM_CC, TPM_RC, TPM_ST } from "../../wire/constants.js";
import { authorize, checkExtraSession, decryptCommand, parseSessions, writeResponseSessions } from "./auth.js";
import { auditCommandStart } from "./audit.js";
import type { Engine } from "./engine.js";
import { type HandleKind, checkHandleLoaded, checkHandleType } from "./handles.js";
import { SOFTTPM_MAX_COMMAND_SIZE } from "./limits.js";
import { H, type In, type Out, Rc, S } from "./marshal.js";

/** How the dispatcher runs one command code, and the handler that does the command's work. */
export interface CommandSpec {
  handles: readonly HandleKind[];
  /** How many of the first handles need an authorization session. */
  auth: number;
  /** Response carries a handle (the handler sets `t.rHandle`). */
  rHandle?: boolean;
  /**
   * The command undoes a preceding Shutdown (TPM2_Clear). Which commands do was measured against
   * swtpm 0.7.1: Clear, a platformAuth change and a change to a PCR that Shutdown(STATE) saves do
   * (the last two are handled where they happen); NV commands, ClearControl and the other
   * hierarchies' HierarchyChangeAuth do not.
   */
  changes?: boolean;
  /** Sessions are not allowed at all (TPM_RC_AUTH_CONTEXT), as for Startup and FlushContext. */
  noSessions?: boolean;
  /** The first command parameter is a TPM2B (a session may ask to decrypt it). */
  decrypt?: boolean;
  /** The first response parameter is a TPM2B (a session may ask to encrypt it). */
  encrypt?: boolean;
  /**
   * Parses every parameter (ending with `inp.done()`), then acts and writes the response
   * parameters. Ends the command with a response code by throwing {@link Rc}.
   */
  run: (t: Engine, h: number[], inp: In, out: Out, locality: number) => void;
}

/** One chapter's entries of the dispatch table: command code and spec. */
export type CommandEntries = ReadonlyArray<readonly [code: number, spec: CommandSpec]>;

/** The dispatch table: command code to spec. */
export type CommandTable = ReadonlyMap<number, CommandSpec>;

/** Builds the one dispatch table from the chapters' entries (a code may appear once). */
export function commandTable(...chapters: CommandEntries[]): CommandTable {
  const table = new Map<number, CommandSpec>();
  for (const entries of chapters) {
    for (const [code, spec] of entries) {
      if (table.has(code)) throw new Error(`SoftTpm: command 0x${code.toString(16)} registered twice`);
      table.set(code, spec);
    }
  }
  return table;
}

/** Is `tag` a TPM_ST value at all (then a non-command tag is TPM_RC_BAD_TAG, else TPM_RC_VALUE)? */
function isStructureTag(tag: number): boolean {
  // the TPM_ST values libtpms 0.9 unmarshals (swtpm 0.7.1, measured over every tag
  // 0x8000–0x802f): the reserved 0x8003, 0x8004, 0x801b and FU_MANIFEST (0x8029) are not among
  // them, so they give TPM_RC_VALUE like any other unknown value
  return (
    tag === TPM_ST.RSP_COMMAND ||
    tag === TPM_ST.NULL ||
    (tag >= TPM_ST.ATTEST_NV && tag <= TPM_ST.ATTEST_CREATION) ||
    (tag >= TPM_ST.CREATION && tag <= TPM_ST.AUTH_SIGNED)
  );
}

/**
 * Runs one command. Never throws on bad bytes: a malformed or failing command gets the 10-byte
 * error response a real TPM gives (TPM 2.0 Part 1 §18.10).
 *
 * @returns a fresh response buffer
 */
export function execute(t: Engine, table: CommandTable, cmd: Uint8Array, locality: number): Uint8Array {
  let rc: number;
  try {
    return run(t, table, cmd, locality);
  } catch (e) {
    if (e instanceof Rc) rc = e.rc;
    else rc = TPM_RC.FAILURE; // an internal bug must not escape as an exception to the bus
  }
  return errorResponse(rc);
}

function run(t: Engine, table: CommandTable, cmd: Uint8Array, locality: number): Uint8Array {
  if (cmd.length < 10) return errorResponse(TPM_RC.INSUFFICIENT);
  const tag = (cmd[0]! << 8) | cmd[1]!;
  if (tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS) return errorResponse(isStructureTag(tag) ? TPM_RC.BAD_TAG : TPM_RC.VALUE);
  const size = readU32be(cmd, 2);
  if (size !== cmd.length || size > SOFTTPM_MAX_COMMAND_SIZE) return errorResponse(TPM_RC.COMMAND_SIZE);
  const code = readU32be(cmd, 6);
  const spec = code <= 0xffff ? table.get(code) : undefined;
  if (!spec) return errorResponse(TPM_RC.COMMAND_CODE);
  if (t.power === "needs-startup" && code !== TPM_CC.Startup) return errorResponse(TPM_RC.INITIALIZE);
  if (t.power === "running" && code === TPM_CC.Startup) return errorResponse(TPM_RC.INITIALIZE);

  const inp = t.in;
  inp.buf = cmd;
  inp.pos = 10;
  inp.end = cmd.length;
  inp.param = 0;

  // handle area
  const nh = spec.handles.length;
  const handles = t.handles;
  for (let i = 0; i < nh; i++) {
    if (inp.end - inp.pos < 4) throw new Rc(H(TPM_RC.INSUFFICIENT, i + 1));
    handles[i] = inp.u32();
    checkHandleType(spec.handles[i]!, handles[i]!, i + 1); // unmarshal: type, as read
  }
  for (let i = 0; i < nh; i++) checkHandleLoaded(t, spec.handles[i]!, handles[i]!, i + 1);

  // authorization area (TPM 2.0 Part 1 §18.6)
  let nSessions = 0;
  if (tag === TPM_ST.SESSIONS) {
    nSessions = parseSessions(t, inp, spec);
    if (nSessions < spec.auth) throw new Rc(TPM_RC.AUTH_MISSING);
  } else if (spec.auth > 0) {
    throw new Rc(TPM_RC.AUTH_MISSING);
  }
  const paramAt = inp.pos;
  for (let i = 0; i < spec.auth; i++) authorize(t, code, handles, nh, i, cmd, paramAt, locality);
  // a session beyond the authorizations is checked only after those were (libtpms order: a
  // lockout on session 1 comes first; swtpm 0.7.1, measured): it must encrypt, decrypt or audit
  for (let i = spec.auth; i < nSessions; i++) checkExtraSession(t, code, handles, nh, i, cmd, paramAt);
  // the audit cpHashes, over the parameters as sent (engine/audit.ts)
  auditCommandStart(t, code, handles, nh, nSessions, cmd, paramAt);
  // the first parameter is decrypted last (Part 1 §21; reference code, ParseSessionBuffer)
  if (nSessions > 0) inp.buf = decryptCommand(t, spec, handles, nSessions, cmd, paramAt);

  // parameters and response
  const out = t.out;
  out.pos = 10 + (spec.rHandle ? 4 : 0) + (nSessions > 0 ? 4 : 0);
  const paramStart = out.pos;
  inp.param = 1;
  spec.run(t, handles, inp, out, locality);
  if (spec.changes && t.shutdownIssued) t.invalidateOrderly();
  const paramSize = out.pos - paramStart;
  writeResponseSessions(t, spec, code, handles, nSessions, out, paramStart, paramSize);
  const len = out.pos;
  const b = out.buf;
  const rtag = nSessions > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  b[0] = rtag >>> 8;
  b[1] = rtag & 0xff;
  out.putU32(2, len);
  out.putU32(6, TPM_RC.SUCCESS);
  let at = 10;
  if (spec.rHandle) {
    out.putU32(at, t.rHandle);
    at += 4;
  }
  if (nSessions > 0) out.putU32(at, paramSize);
  return b.slice(0, len);
}
