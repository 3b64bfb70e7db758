/**
 * A resource manager for tpmkit's servers: per-client spaces in front of one TPM, as the Linux
 * kernel's /dev/tpmrm0 (drivers/char/tpm/tpm2-space.c: tpm2_prepare_space, tpm2_commit_space,
 * tpm2_map_response_header, tpm2_flush_space) and tpm2-abrmd give, without abrmd or D-Bus.
 *
 * Each {@link RmSpace} sees its own transient objects under virtual handles (0x80FFxxxx) and its
 * own sessions (which keep their TPM handles). Between commands every object of a space is
 * context-saved and flushed from the TPM, and every session context-saved (TPM 2.0 Part 3 §28.2);
 * before a command, the objects and sessions it names (handle area, authorization area) are
 * loaded back (Part 3 §28.3). A space's objects and sessions are flushed when it closes. What
 * the resource manager itself refuses is answered with a response code in the resource-manager
 * layer, {@link TPM_RC_RESMGR_LAYER} (11 << 16, TSS2_RESMGR_TPM_RC_LAYER of the TSS 2.0 TCTI
 * specification and of tpm2-abrmd): a handle the space does not own, more objects or sessions
 * than the per-space limit, a command code the TPM does not list (0x000B0143, as tpm2-space.c
 * answers).
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmTransportError } from "../errors/index.js";
import { TPM_CAP, TPM_CC, TPM_HT, TPM_RC, TPM_ST } from "../wire/constants.js";
import type { CommandSink } from "./common.js";

/** The response-code layer of a resource manager: 11 << 16 (TSS2_RESMGR_TPM_RC_LAYER; the kernel's tpm2-space.c uses it too). */
export const TPM_RC_RESMGR_LAYER = 0x000b0000;

/** Default limit of transient objects per space (each is a saved context between commands). */
export const RM_DEFAULT_MAX_OBJECTS = 16;

/** Default limit of sessions per space (a saved session still holds one of the TPM's session slots). */
export const RM_DEFAULT_MAX_SESSIONS = 16;

/** Options of a {@link ResourceManager}. */
export interface ResourceManagerOptions {
  /** Transient objects one space may hold (default {@link RM_DEFAULT_MAX_OBJECTS}); more: TPM_RC_OBJECT_MEMORY in the RM layer. */
  maxObjects?: number;
  /** Sessions one space may hold (default {@link RM_DEFAULT_MAX_SESSIONS}); more: TPM_RC_SESSION_MEMORY in the RM layer. */
  maxSessions?: number;
}

/**
 * One client's view of the TPM through a {@link ResourceManager}: a command sink whose transient
 * handles are virtual and whose objects and sessions no other space can name or list.
 */
export interface RmSpace extends CommandSink {
  /** Flushes the space's objects and sessions from the TPM; later commands are refused. Idempotent. */
  close(): Promise<void>;
  /** Transient objects the space holds. */
  readonly objects: number;
  /** Sessions the space holds. */
  readonly sessions: number;
  /** Whether {@link RmSpace.close} was called. */
  readonly closed: boolean;
}

/** First virtual handle of a space (tpm2-abrmd numbers its virtual handles from 0x80FF0000 too). */
const VHANDLE_BASE = 0x80ff0000;

/** TPMA_CC fields the resource manager needs (Part 2 §8.9): cHandles bits 27:25, rHandle bit 28. */
interface CommandAttrs {
  cHandles: number;
  rHandle: boolean;
}

interface ObjectEntry {
  /** The TPM handle while loaded (during a command, or pinned when its context could not be saved). */
  real?: number;
  /** The saved TPMS_CONTEXT between commands. */
  blob?: Uint8Array;
}

interface SessionEntry {
  /** The session handle as the TPM reported it. */
  handle: number;
  loaded: boolean;
  /** The saved TPMS_CONTEXT between commands (a session context loads once: Part 1 §30.5). */
  blob?: Uint8Array;
}

const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const u16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}
function command(cc: number, body: number[] | Uint8Array): Uint8Array {
  const b = new Uint8Array(10 + body.length);
  b[0] = 0x80;
  b[1] = 0x01;
  put32(b, 2, b.length);
  put32(b, 6, cc);
  b.set(body, 10);
  return b;
}
function u32bytes(v: number): number[] {
  return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}
/** A 10-byte response with `rc`. */
function bare(rc: number): Uint8Array {
  const b = new Uint8Array(10);
  b[0] = 0x80;
  b[1] = 0x01;
  put32(b, 2, 10);
  put32(b, 6, rc);
  return b;
}
/** A response code of the resource-manager layer. */
const rmError = (rc: number): Uint8Array => bare((TPM_RC_RESMGR_LAYER | rc) >>> 0);
const rcOf = (r: Uint8Array): number => (r.length >= 10 ? u32(r, 6) : TPM_RC.FAILURE);
const isSessionHandle = (h: number): boolean => h >>> 24 === TPM_HT.HMAC_SESSION || h >>> 24 === TPM_HT.POLICY_SESSION;
/** Sessions are named by slot: the HMAC and policy forms of a handle differ only in the type byte (Part 2 §7.5). */
const slotOf = (h: number): number => h & 0x00ffffff;

/** The shared part of a resource manager: the TPM, the lock, the command table, the open spaces. */
class RmCore {
  readonly tpm: CommandSink;
  readonly limits: { objects: number; sessions: number };
  readonly spaces = new Set<SpaceImpl>();
  #lock: Promise<unknown> = Promise.resolve();
  attrs: Map<number, CommandAttrs> | undefined;

  constructor(tpm: CommandSink, limits: { objects: number; sessions: number }) {
    this.tpm = tpm;
    this.limits = limits;
  }

  /** Runs `fn` after every earlier command of every space. */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  dropSpace(s: SpaceImpl): void {
    this.spaces.delete(s);
  }

  /** One command straight to the TPM (no mapping). */
  async raw(cmd: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.tpm.transmit(cmd, signal ? { locality, signal } : { locality });
  }

  /**
   * The command attributes (Part 2 §8.9) the TPM lists in GetCapability(TPM_CAP_COMMANDS)
   * (Part 3 §30.2), read once, as tpm2_get_cc_attrs_tbl in the kernel does; undefined while the
   * TPM cannot answer (before Startup).
   */
  async commandAttrs(locality: number): Promise<Map<number, CommandAttrs> | undefined> {
    if (this.attrs) return this.attrs;
    const table = new Map<number, CommandAttrs>();
    let next = TPM_CC.NV_UndefineSpaceSpecial as number;
    for (let round = 0; round < 64; round++) {
      const r = await this.raw(command(TPM_CC.GetCapability, [...u32bytes(TPM_CAP.COMMANDS), ...u32bytes(next), ...u32bytes(256)]), locality);
      if (rcOf(r) !== 0 || r.length < 19) return undefined;
      const more = r[10] !== 0;
      const count = u32(r, 15);
      if (r.length < 19 + 4 * count) return undefined;
      let last = next;
      for (let i = 0; i < count; i++) {
        const a = u32(r, 19 + 4 * i);
        const cc = (a & 0xffff) | (a & 0x20000000 ? 0x20000000 : 0);
        table.set(cc, { cHandles: (a >>> 25) & 7, rHandle: (a & 0x10000000) !== 0 });
        last = cc;
      }
      if (!more || count === 0) break;
      next = last + 1;
    }
    this.attrs = table;
    return table;
  }
}

/**
 * A resource manager over one TPM: hands out {@link RmSpace}s (one per client) and runs their
 * commands one at a time, swapping each space's objects and sessions in and out around every
 * command (Part 3 §28, ContextSave/ContextLoad/FlushContext), as /dev/tpmrm0 does
 * (drivers/char/tpm/tpm2-space.c).
 *
 * @example
 * ```ts
 * const rm = new ResourceManager(chip);
 * const a = rm.openSpace();
 * const response = await a.transmit(createPrimaryCommand);
 * await a.close(); // its objects and sessions leave the TPM
 * ```
 */
export class ResourceManager {
  readonly #core: RmCore;

  /**
   * @param tpm - the TPM every space shares (a `Chip`, or a wrapped `TpmBackend`).
   * @param options - per-space limits.
   * @throws TpmArgumentError when a limit is not an integer 1–1024.
   */
  constructor(tpm: CommandSink, options: ResourceManagerOptions = {}) {
    if (!tpm || typeof tpm.transmit !== "function") throw new TpmArgumentError("ResourceManager: tpm must have a transmit(command, options) method");
    const maxObjects = options.maxObjects ?? RM_DEFAULT_MAX_OBJECTS;
    const maxSessions = options.maxSessions ?? RM_DEFAULT_MAX_SESSIONS;
    for (const [k, v] of [["maxObjects", maxObjects], ["maxSessions", maxSessions]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 1024) throw new TpmArgumentError(`ResourceManager: ${k} must be an integer 1–1024, got ${String(v)}`);
    }
    this.#core = new RmCore(tpm, { objects: maxObjects, sessions: maxSessions });
  }

  /** Open spaces. */
  get spaces(): number {
    return this.#core.spaces.size;
  }

  /** A new, empty space for one client. */
  openSpace(): RmSpace {
    const s = new SpaceImpl(this.#core);
    this.#core.spaces.add(s);
    return s;
  }

  /**
   * Forgets every space's objects and sessions without flushing them: call it after the TPM was
   * reset (a power cycle: TPM_Init then Startup), which flushed them already. The spaces stay open.
   */
  reset(): void {
    for (const s of this.#core.spaces) s.forget();
    this.#core.attrs = undefined;
  }
}

class SpaceImpl implements RmSpace {
  readonly #rm: RmCore;
  readonly #objects = new Map<number, ObjectEntry>();
  /** Keyed by slot (the handle without its type byte). */
  readonly #sessions = new Map<number, SessionEntry>();
  #nextV = 0;
  #closed = false;

  constructor(rm: RmCore) {
    this.#rm = rm;
  }

  get objects(): number {
    return this.#objects.size;
  }
  get sessions(): number {
    return this.#sessions.size;
  }
  get closed(): boolean {
    return this.#closed;
  }

  forget(): void {
    this.#objects.clear();
    this.#sessions.clear();
  }

  transmit(cmd: Uint8Array, options?: { locality?: number; signal?: AbortSignal }): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new TpmTransportError("resource manager: the space is closed", { errno: "EBADF" }));
    return this.#rm.serialize(() => this.#run(cmd, options?.locality ?? 0, options?.signal));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return this.#rm.serialize(async () => {
      // tpm2_flush_space: every object and session of the space leaves the TPM
      for (const o of this.#objects.values()) if (o.real !== undefined) await this.#flush(o.real, 0);
      for (const s of this.#sessions.values()) await this.#flush(s.handle, 0);
      this.forget();
      this.#rm.dropSpace(this);
    });
  }

  async #flush(handle: number, locality: number): Promise<Uint8Array> {
    try {
      return await this.#rm.raw(command(TPM_CC.FlushContext, u32bytes(handle)), locality);
    } catch {
      return bare(TPM_RC.FAILURE);
    }
  }

  #allocV(): number {
    for (let i = 0; i < 0x10000; i++) {
      const v = (VHANDLE_BASE + ((this.#nextV + i) & 0xffff)) >>> 0;
      if (!this.#objects.has(v)) {
        this.#nextV = (this.#nextV + i + 1) & 0xffff;
        return v;
      }
    }
    throw new TpmTransportError("resource manager: no virtual handle left");
  }

  async #run(cmd: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    // A frame the TPM would refuse anyway goes to it untouched (it answers with its own code).
    if (cmd.length < 10 || u32(cmd, 2) !== cmd.length) return this.#rm.raw(cmd, locality, signal);
    const tag = u16(cmd, 0);
    const cc = u32(cmd, 6);
    const attrs = await this.#rm.commandAttrs(locality);
    if (!attrs) return this.#rm.raw(cmd, locality, signal); // before Startup: nothing can name a handle yet
    const a = attrs.get(cc);
    if (!a) return rmError(TPM_RC.COMMAND_CODE); // tpm2-space.c answers an unlisted code so, without the TPM
    if (cc === TPM_CC.FlushContext) return this.#flushContext(cmd, locality, signal);
    if (cc === TPM_CC.GetCapability) {
      const own = this.#ownHandles(cmd);
      if (own) return own;
    }
    const limits = this.#rm.limits;
    if (a.rHandle && cc === TPM_CC.StartAuthSession && this.#sessions.size >= limits.sessions) return rmError(TPM_RC.SESSION_MEMORY);
    if (a.rHandle && cc !== TPM_CC.StartAuthSession && cc !== TPM_CC.ContextLoad && this.#objects.size >= limits.objects) return rmError(TPM_RC.OBJECT_MEMORY);

    const out = Uint8Array.from(cmd);
    const touched: { objects: ObjectEntry[]; sessions: SessionEntry[] } = { objects: [], sessions: [] };
    try {
      // tpm2_map_command: the handle area
      const hEnd = 10 + 4 * a.cHandles;
      if (cmd.length < hEnd) return this.#rm.raw(cmd, locality, signal);
      for (let at = 10; at < hEnd; at += 4) {
        const h = u32(cmd, at);
        const mapped = await this.#resolve(h, locality, touched);
        if (typeof mapped !== "number") return mapped;
        put32(out, at, mapped);
      }
      // the authorization area: sessions must be the space's own
      if (tag === TPM_ST.SESSIONS) {
        if (cmd.length < hEnd + 4) return rmError(TPM_RC.AUTHSIZE);
        const size = u32(cmd, hEnd);
        const end = hEnd + 4 + size;
        if (size < 9 || end > cmd.length) return rmError(TPM_RC.AUTHSIZE);
        let at = hEnd + 4;
        while (at < end) {
          if (at + 9 > end) return rmError(TPM_RC.AUTHSIZE);
          const h = u32(cmd, at);
          const nonce = u16(cmd, at + 4);
          const hmacAt = at + 6 + nonce + 1;
          if (hmacAt + 2 > end) return rmError(TPM_RC.AUTHSIZE);
          const next = hmacAt + 2 + u16(cmd, hmacAt);
          if (next > end) return rmError(TPM_RC.AUTHSIZE);
          if (isSessionHandle(h)) {
            const mapped = await this.#resolve(h, locality, touched);
            if (typeof mapped !== "number") return mapped;
          }
          at = next;
        }
      }
      let resp = await this.#rm.raw(out, locality, signal);
      // tpm2_map_response_header: a new object gets a virtual handle, a new session joins the space
      if (a.rHandle && resp.length >= 14 && rcOf(resp) === 0) {
        const h = u32(resp, 10);
        if (h >>> 24 === TPM_HT.TRANSIENT) {
          if (this.#objects.size >= limits.objects) {
            await this.#flush(h, locality);
            return rmError(TPM_RC.OBJECT_MEMORY);
          }
          const v = this.#allocV();
          const e: ObjectEntry = { real: h };
          this.#objects.set(v, e);
          touched.objects.push(e);
          resp = Uint8Array.from(resp);
          put32(resp, 10, v);
        } else if (isSessionHandle(h)) {
          if (!this.#sessions.has(slotOf(h)) && this.#sessions.size >= limits.sessions) {
            await this.#flush(h, locality);
            return rmError(TPM_RC.SESSION_MEMORY);
          }
          const e: SessionEntry = { handle: h, loaded: true };
          this.#sessions.set(slotOf(h), e);
          touched.sessions.push(e);
        }
      }
      return resp;
    } finally {
      await this.#commit(touched, locality);
    }
  }

  /**
   * The TPM handle for `h` as this space names it: its own objects loaded (ContextLoad) when saved,
   * its own sessions likewise; other transient or session handles are refused (RM layer
   * TPM_RC_HANDLE); every other handle type passes unchanged.
   */
  async #resolve(h: number, locality: number, touched: { objects: ObjectEntry[]; sessions: SessionEntry[] }): Promise<number | Uint8Array> {
    if (h >>> 24 === TPM_HT.TRANSIENT) {
      const o = this.#objects.get(h);
      if (!o) return rmError(TPM_RC.HANDLE);
      if (o.real === undefined) {
        const r = await this.#rm.raw(command(TPM_CC.ContextLoad, o.blob!), locality);
        if (rcOf(r) !== 0 || r.length < 14) return r.length >= 10 ? bare(rcOf(r)) : bare(TPM_RC.FAILURE);
        o.real = u32(r, 10);
      }
      if (!touched.objects.includes(o)) touched.objects.push(o);
      return o.real;
    }
    if (isSessionHandle(h)) {
      const s = this.#sessions.get(slotOf(h));
      if (!s) return rmError(TPM_RC.HANDLE);
      if (!s.loaded) {
        const r = await this.#rm.raw(command(TPM_CC.ContextLoad, s.blob!), locality);
        if (rcOf(r) !== 0) {
          // a warning (memory) leaves the saved context usable; anything else lost the session
          if ((rcOf(r) & 0x900) !== 0x900) this.#sessions.delete(slotOf(h));
          return bare(rcOf(r));
        }
        s.loaded = true;
        s.blob = undefined;
      }
      if (!touched.sessions.includes(s)) touched.sessions.push(s);
      return h;
    }
    return h;
  }

  /**
   * tpm2_commit_space / tpm2_save_space: objects the command loaded are saved and flushed,
   * sessions saved; a session the command ended (continueSession clear) no longer saves and
   * leaves the space. An object whose context the TPM cannot save stays loaded (SoftTpm saves
   * every object, sequences included; other TPMs may refuse some).
   */
  async #commit(touched: { objects: ObjectEntry[]; sessions: SessionEntry[] }, locality: number): Promise<void> {
    for (const o of touched.objects) {
      if (o.real === undefined) continue;
      let r: Uint8Array;
      try {
        r = await this.#rm.raw(command(TPM_CC.ContextSave, u32bytes(o.real)), locality);
      } catch {
        continue;
      }
      if (rcOf(r) !== 0 || r.length <= 10) {
        if (rcOf(r) === TPM_RC.REFERENCE_H0 || rcOf(r) === (TPM_RC.HANDLE | 0x100)) this.#dropObject(o);
        continue;
      }
      o.blob = r.slice(10);
      await this.#flush(o.real, locality);
      o.real = undefined;
    }
    for (const s of touched.sessions) {
      if (!s.loaded) continue;
      let r: Uint8Array;
      try {
        r = await this.#rm.raw(command(TPM_CC.ContextSave, u32bytes(s.handle)), locality);
      } catch {
        continue;
      }
      if (rcOf(r) === 0 && r.length > 10) {
        s.blob = r.slice(10);
        s.loaded = false;
      } else {
        this.#sessions.delete(slotOf(s.handle));
      }
    }
  }

  #dropObject(o: ObjectEntry): void {
    for (const [v, e] of this.#objects) if (e === o) this.#objects.delete(v);
  }

  /** TPM2_FlushContext (Part 3 §28.4): its handle is a parameter, mapped here. */
  async #flushContext(cmd: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (cmd.length !== 14 || u16(cmd, 0) !== TPM_ST.NO_SESSIONS) return this.#rm.raw(cmd, locality, signal);
    const h = u32(cmd, 10);
    if (h >>> 24 === TPM_HT.TRANSIENT) {
      const o = this.#objects.get(h);
      if (!o) return rmError(TPM_RC.HANDLE);
      this.#objects.delete(h);
      // a saved object context holds nothing in the TPM: forgetting it is the flush
      if (o.real !== undefined) return this.#flush(o.real, locality);
      return bare(TPM_RC.SUCCESS);
    }
    if (isSessionHandle(h)) {
      const s = this.#sessions.get(slotOf(h));
      if (!s) return rmError(TPM_RC.HANDLE);
      this.#sessions.delete(slotOf(h));
      // a saved session is flushed by its handle as a loaded one is (Part 3 §28.4)
      return this.#flush(s.handle, locality);
    }
    return this.#rm.raw(cmd, locality, signal);
  }

  /**
   * GetCapability(TPM_CAP_HANDLES) for transient objects or sessions lists only this space's own
   * (tpm2_map_response_body filters transient handles so): objects by virtual handle, sessions as
   * loaded (a space's sessions are loaded whenever it runs a command), none as saved.
   */
  #ownHandles(cmd: Uint8Array): Uint8Array | undefined {
    if (cmd.length !== 22 || u16(cmd, 0) !== TPM_ST.NO_SESSIONS || u32(cmd, 10) !== TPM_CAP.HANDLES) return undefined;
    const property = u32(cmd, 14);
    const count = u32(cmd, 18);
    const ht = property >>> 24;
    let list: number[];
    if (ht === TPM_HT.TRANSIENT) list = [...this.#objects.keys()];
    else if (ht === TPM_HT.LOADED_SESSION) list = [...this.#sessions.values()].map((s) => s.handle);
    else if (ht === TPM_HT.SAVED_SESSION) list = [];
    else return undefined;
    list = list.filter((h) => (ht === TPM_HT.TRANSIENT ? h >= property : slotOf(h) >= slotOf(property))).sort((x, y) => x - y);
    const n = Math.min(list.length, count, 254);
    const body = [list.length > n ? 1 : 0, ...u32bytes(TPM_CAP.HANDLES), ...u32bytes(n), ...list.slice(0, n).flatMap(u32bytes)];
    const r = new Uint8Array(10 + body.length);
    r[0] = 0x80;
    r[1] = 0x01;
    put32(r, 2, r.length);
    r.set(body, 10);
    return r;
  }
}
