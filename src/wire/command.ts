/**
 * Commands as data (STYLE 6, after go-tpm): a {@link CommandSpec} says what a command's handle,
 * authorization, parameter and response areas hold; one executor ({@link buildCommand},
 * {@link parseResponse}) turns it into bytes and back. TPM 2.0 Part 1 §18 (command/response
 * structure), Part 2 §10.13 (authorization areas).
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import { TpmReader, TpmWriter } from "./buffer.js";
import { TPM_RS, TPM_ST } from "./constants.js";
import { TpmResponseError } from "./rc.js";

/** A password authorization (TPM_RS_PW) for one authorized handle. */
export interface PasswordAuth {
  /** The password (UTF-8 if a string). Empty by default. */
  password?: Uint8Array | string;
}

/**
 * An authorization by a session (the typed client's `AuthSession`, Part 1 §19.6) with the
 * entity's authValue. Such a spec is run by `Tpm` (it computes the HMACs), not by
 * {@link buildCommand}.
 */
export interface SessionAuth {
  /** The session (an `AuthSession` of the Tpm that runs the command). */
  session: object;
  /** The authorized entity's authValue (UTF-8 if a string). */
  password?: Uint8Array | string;
  /** The entity's authValue after the command, for commands that change it (HierarchyChangeAuth, NV_ChangeAuth). */
  responseAuth?: Uint8Array | string;
}

/** One authorization: a password (TPM_RS_PW) or a session. */
export type CommandAuth = PasswordAuth | SessionAuth;

/** True when any authorization of `spec` is a session. */
export function hasSessionAuth(spec: CommandSpec<unknown>): boolean {
  return (spec.auths ?? []).some((a) => (a as Partial<SessionAuth>).session !== undefined);
}

/** What a command needs: its code, handles, parameters and how to read the response. */
export interface CommandSpec<R> {
  /** TPM_CC of the command. */
  cc: number;
  /** The handle area, in order. */
  handles?: readonly number[];
  /** One authorization per authorized handle (the first `auths.length` handles). */
  auths?: readonly CommandAuth[];
  /** Writes the parameter area. */
  params?: (w: TpmWriter) => void;
  /** Number of handles in the response's handle area. */
  responseHandles?: number;
  /** Reads the response parameter area (the reader is limited to it). */
  response: (r: TpmReader, handles: number[]) => R;
}

const encoder = /* @__PURE__ */ new TextEncoder();

/** Bytes of a password given as a string or bytes. */
export function authBytes(p: Uint8Array | string | undefined): Uint8Array {
  if (p === undefined) return EMPTY;
  return typeof p === "string" ? encoder.encode(p) : p;
}
const EMPTY = /* @__PURE__ */ new Uint8Array(0);
const scratch = /* @__PURE__ */ new TpmWriter(4096);

/**
 * Builds the command bytes for a spec: tag TPM_ST_SESSIONS when it has authorizations (with a
 * password session per authorized handle: TPM_RS_PW, empty nonce, continueSession, the password
 * as hmac), else TPM_ST_NO_SESSIONS.
 */
export function buildCommand(spec: CommandSpec<unknown>): Uint8Array {
  const auths = spec.auths ?? [];
  const handles = spec.handles ?? [];
  if (auths.length > handles.length) throw new TpmArgumentError(`${auths.length} authorizations for ${handles.length} handles`);
  if (hasSessionAuth(spec)) throw new TpmArgumentError("an authorization by a session needs its Tpm (tpm.run), which computes the HMACs");
  // One scratch writer for every command: building is synchronous, and finish() copies out.
  const w = scratch.reset();
  w.u16(auths.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS).u32(0).u32(spec.cc);
  for (const h of handles) w.u32(h >>> 0);
  if (auths.length) {
    const at = w.length;
    w.u32(0);
    for (const a of auths) {
      w.u32(TPM_RS.PW).u16(0).u8(0x01).tpm2b(authBytes((a as PasswordAuth).password));
    }
    w.patchU32(at, w.length - at - 4);
  }
  spec.params?.(w);
  w.patchU32(2, w.length);
  return w.finish();
}

/**
 * Parses a response for a spec: checks the header (size field = length, tag), throws
 * {@link TpmResponseError} for a non-zero rc, reads the response handles, bounds the parameter
 * area by `parameterSize` (sessions) or the end (no sessions) and requires it to be consumed.
 *
 * @throws TpmResponseError, TpmFormatError
 */
export function parseResponse<R>(spec: CommandSpec<R>, rsp: Uint8Array): R {
  const r = new TpmReader(rsp);
  const tag = r.u16("tag");
  const size = r.u32("responseSize");
  const rc = r.u32("responseCode");
  if (size !== rsp.length) throw new TpmFormatError(`response size field says ${size} bytes, ${rsp.length} present`);
  if (rc !== 0) throw new TpmResponseError(rc, spec.cc);
  const sessions = (spec.auths?.length ?? 0) > 0;
  if (tag !== (sessions ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS)) {
    throw new TpmFormatError(`response tag 0x${tag.toString(16)} does not match the command's (${sessions ? "sessions" : "no sessions"})`);
  }
  const handles: number[] = [];
  for (let i = 0; i < (spec.responseHandles ?? 0); i++) handles.push(r.u32("handle"));
  const total = r.end;
  if (sessions) {
    const paramSize = r.u32("parameterSize");
    if (paramSize > r.remaining) throw new TpmFormatError(`parameterSize ${paramSize} exceeds the ${r.remaining} bytes left`);
    r.end = r.offset + paramSize;
  }
  const out = spec.response(r, handles);
  r.expectEnd("response parameters");
  if (sessions) {
    r.end = total;
    for (let i = 0; i < spec.auths!.length; i++) {
      r.tpm2b("nonceTPM");
      r.u8("sessionAttributes");
      r.tpm2b("hmac");
    }
    r.expectEnd("response sessions");
  }
  return out;
}
