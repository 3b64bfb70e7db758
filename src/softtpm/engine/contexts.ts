/**
 * Saved contexts (TPM 2.0 Part 1 §30 "Context Management"; Part 2 §14.5 TPMS_CONTEXT): what
 * TPM2_ContextSave puts in contextBlob and TPM2_ContextLoad checks. The blob is
 * TPM2B_DIGEST(integrity) ‖ encrypted context, as Part 1 §30.3.2 lays it out:
 *
 * - encryption: AES-256-CFB with key and IV from KDFa(SHA-256, contextSecret, "CONTEXT",
 *   sequence, savedHandle, 384) (Part 1 §30.3.3);
 * - integrity: HMAC-SHA-512 keyed by KDFa(SHA-512, contextSecret, "INTEGRITY", "", "", 512) over
 *   sequence ‖ savedHandle ‖ hierarchy ‖ encrypted context (Part 1 §30.3.2), so none of the
 *   TPMS_CONTEXT fields can be changed.
 *
 * contextSecret is drawn on first use and lasts until power-off: a context from an earlier
 * power cycle fails its integrity check. TPM_PT_CONTEXT_HASH (SHA-512) and TPM_PT_CONTEXT_SYM /
 * _SYM_SIZE (AES, 256) report these algorithms.
 *
 * @packageDocumentation
 */
import { TpmReader, TpmWriter } from "../../wire/buffer.js";
import { u32be } from "../../wire/bytes.js";
import { TPM_RC } from "../../wire/constants.js";
import { readPublic, readSensitive, writeSensitive } from "../../wire/structures.js";
import { HASH_IMPLS, type HashImpl, hashImpl } from "../tables.js";
import { aesCfb, kdfa } from "./crypto.js";
import type { PolicyState } from "./auth.js";
import type { Engine, HmacSession, Sequence } from "./engine.js";
import { type TpmObject, nameOf } from "./objects.js";
import { P, Rc } from "./marshal.js";

const SHA256 = HASH_IMPLS[1]!;
const SHA512 = HASH_IMPLS[3]!;
/** Largest contextBlob of an object: integrity value and an RSA-3072 object's state (TPM_PT_MAX_OBJECT_CONTEXT). */
export const MAX_OBJECT_CONTEXT_BYTES = 2048;
/**
 * Largest contextBlob of a session: integrity value, 1 + 4 + 2 + 66 + 66 + 4 + 1 bytes of state,
 * 6 of its symmetric algorithm and a policy session's 1 + 66 + 4 + 4 + 8 + 8
 * (TPM_PT_MAX_SESSION_CONTEXT).
 */
export const MAX_SESSION_CONTEXT_BYTES = 2 + 64 + 1 + 4 + 2 + 66 + 66 + 4 + 1 + 6 + 1 + 66 + 4 + 4 + 8 + 8;
/** The integrity value's size: a SHA-512 HMAC. */
export const CONTEXT_INTEGRITY_SIZE = 64;

function u64be(v: bigint): Uint8Array {
  const w = new TpmWriter(8);
  w.u64(v);
  return w.finish();
}

function secret(t: Engine): Uint8Array {
  if (!t.contextSecret) {
    t.contextSecret = new Uint8Array(32);
    t.random.fill(t.contextSecret, 0, 32);
  }
  return t.contextSecret;
}

function integrity(t: Engine, sequence: bigint, savedHandle: number, hierarchy: number, enc: Uint8Array): Uint8Array {
  const key = kdfa(SHA512, secret(t), "INTEGRITY", new Uint8Array(0), new Uint8Array(0), 512);
  return SHA512.mac(key, u64be(sequence), u32be(savedHandle), u32be(hierarchy), enc);
}

function cipher(t: Engine, sequence: bigint, savedHandle: number, data: Uint8Array, encrypt: boolean): Uint8Array {
  const k = kdfa(SHA256, secret(t), "CONTEXT", u64be(sequence), u32be(savedHandle), 384);
  return aesCfb(k.subarray(0, 32), data, encrypt, k.subarray(32, 48));
}

/** Encrypts and integrity-protects a context's plaintext (the contextBlob of TPMS_CONTEXT). */
export function sealContext(t: Engine, sequence: bigint, savedHandle: number, hierarchy: number, plain: Uint8Array): Uint8Array {
  const enc = cipher(t, sequence, savedHandle, plain, true);
  const w = new TpmWriter(2 + CONTEXT_INTEGRITY_SIZE + enc.length);
  w.tpm2b(integrity(t, sequence, savedHandle, hierarchy, enc)).bytes(enc);
  return w.finish();
}

/** Checks and decrypts a contextBlob: TPM_RC_INTEGRITY + P1 unless it is exactly what this TPM sealed (Part 3 §28.3). */
export function openContext(t: Engine, sequence: bigint, savedHandle: number, hierarchy: number, blob: Uint8Array): Uint8Array {
  const bad = new Rc(P(TPM_RC.INTEGRITY, 1));
  if (blob.length < 2) throw bad;
  const n = (blob[0]! << 8) | blob[1]!;
  if (n !== CONTEXT_INTEGRITY_SIZE || blob.length < 2 + n) throw bad;
  const enc = blob.subarray(2 + n);
  const expect = integrity(t, sequence, savedHandle, hierarchy, enc);
  let diff = 0;
  for (let i = 0; i < n; i++) diff |= expect[i]! ^ blob[2 + i]!;
  if (diff !== 0) throw bad;
  return cipher(t, sequence, savedHandle, enc, false);
}

/** An object's saved state: hierarchy, TPMT_PUBLIC, TPMT_SENSITIVE, qualified name, parent name. */
export function objectContext(o: TpmObject): Uint8Array {
  const w = new TpmWriter(256);
  w.u8(1).u32(o.hierarchy).tpm2b(o.publicArea);
  const s = new TpmWriter(128);
  writeSensitive(s, o.sensitive);
  w.tpm2b(s.finish()).tpm2b(o.qualifiedName).tpm2b(o.parentName);
  // how the object was loaded: bit 0 public only, bit 1 by TPM2_LoadExternal
  w.u8((o.publicOnly ? 1 : 0) | (o.external ? 2 : 0));
  return w.finish();
}

/** The object in an opened context (handle to be assigned by the caller). */
export function objectFromContext(plain: Uint8Array, handle: number): TpmObject {
  const r = new TpmReader(plain);
  if (r.u8() !== 1) throw new Error("not an object context");
  const hierarchy = r.u32();
  const publicArea = r.tpm2b().slice();
  const pub = readPublic(new TpmReader(publicArea));
  const sensitive = readSensitive(new TpmReader(r.tpm2b()));
  const qualifiedName = r.tpm2b().slice();
  const parentName = r.tpm2b().slice();
  const flags = r.u8();
  r.expectEnd();
  const o: TpmObject = { handle, pub, publicArea, name: nameOf(pub, publicArea), sensitive, hierarchy, qualifiedName, parentName };
  if (flags & 1) o.publicOnly = true;
  if (flags & 2) o.external = true;
  return o;
}

/** A hasher of a sequence object, as TPM2_HashSequenceStart, HMAC_Start and SequenceUpdate use it. */
type Hasher = Sequence["hashers"][number];

/**
 * The state of a Merkle–Damgård hasher of @noble/hashes (SHA-1, SHA-2): the chaining words of
 * get() / set(), the message length so far, and the bytes of the partial block.
 */
interface MdState {
  get(): number[];
  set(...words: number[]): void;
  buffer: Uint8Array;
  length: number;
  pos: number;
  finished: boolean;
}

function isMd(x: unknown): x is MdState {
  const h = x as Partial<MdState>;
  return typeof h.get === "function" && typeof h.set === "function" && h.buffer instanceof Uint8Array && typeof h.length === "number" && typeof h.pos === "number";
}

/**
 * An HMAC (RFC 2104) whose state a context can hold: the inner hash over (K ⊕ ipad) ‖ data so
 * far, and the padded key for the outer hash. TPM2_HMAC_Start's sequences need this shape for
 * TPM2_ContextSave to save them.
 */
export interface SavableHmac {
  update(d: Uint8Array): unknown;
  digest(): Uint8Array;
  readonly inner: Hasher;
  /** The key padded to the hash's block (K, before the pads are applied). */
  readonly key: Uint8Array;
  readonly alg: HashImpl;
}

/** An HMAC hasher of `a` keyed by `key` (a key longer than the block is hashed first), savable in a context. */
export function savableHmac(a: HashImpl, key: Uint8Array, inner?: Hasher): SavableHmac {
  const block = a.size > 32 ? 128 : 64; // FIPS 180-4 §1: SHA-1 and SHA-256 64-byte blocks, SHA-384 / SHA-512 128
  const k = new Uint8Array(block);
  k.set(key.length > block ? a.hash(key) : key);
  let h = inner;
  if (!h) {
    h = a.create();
    h.update(k.map((x) => x ^ 0x36));
  }
  const ih = h;
  return {
    update: (d: Uint8Array) => ih.update(d),
    digest: () => {
      const outer = a.create();
      outer.update(k.map((x) => x ^ 0x5c));
      outer.update(ih.digest());
      return outer.digest();
    },
    inner: ih,
    key: k,
    alg: a,
  };
}

function isSavableHmac(x: unknown): x is SavableHmac {
  const h = x as Partial<SavableHmac>;
  return h.key instanceof Uint8Array && h.inner !== undefined && h.alg !== undefined;
}

function writeMd(w: TpmWriter, x: unknown): boolean {
  if (!isMd(x) || x.finished) return false;
  const words = x.get();
  w.u8(words.length);
  for (const v of words) w.u32(v >>> 0);
  w.u64(BigInt(x.length)).tpm2b(x.buffer.subarray(0, x.pos));
  return true;
}

function readMd(r: TpmReader, a: HashImpl): Hasher {
  const h = a.create();
  if (!isMd(h)) throw new Error("hash state");
  const n = r.u8();
  const words: number[] = [];
  for (let i = 0; i < n; i++) words.push(r.u32() | 0);
  if (words.length !== h.get().length) throw new Error("hash state");
  h.set(...words);
  h.length = Number(r.u64());
  const partial = r.tpm2b();
  if (partial.length >= h.buffer.length) throw new Error("hash state");
  h.buffer.set(partial);
  h.pos = partial.length;
  return h;
}

/**
 * A sequence object's saved state (Part 3 §28.2: sequence objects can be saved; Part 2 §14.5
 * savedHandle 0x80000001): its hash (0 for an event sequence), authValue, ticket state, and the
 * state of each hasher (an HMAC's inner hash and padded key). undefined when a hasher's state
 * cannot be read (a hasher of another shape).
 */
export function sequenceContext(seq: Sequence): Uint8Array | undefined {
  const w = new TpmWriter(512);
  w.u8(3).u16(seq.alg?.alg ?? 0).tpm2b(seq.authValue).u8(seq.ticketSafe === undefined ? 0 : seq.ticketSafe ? 2 : 1).u8(seq.hashers.length);
  for (const x of seq.hashers) {
    if (isSavableHmac(x)) {
      w.u8(2).u16(x.alg.alg).tpm2b(x.key);
      if (!writeMd(w, x.inner)) return undefined;
    } else {
      w.u8(1);
      if (!writeMd(w, x)) return undefined;
    }
  }
  return w.finish();
}

/** The sequence object in an opened context (handle to be assigned by the caller). */
export function sequenceFromContext(plain: Uint8Array, handle: number): Sequence {
  const r = new TpmReader(plain);
  if (r.u8() !== 3) throw new Error("not a sequence context");
  const algId = r.u16();
  const alg = algId === 0 ? undefined : hashImpl(algId);
  if (algId !== 0 && !alg) throw new Error("sequence hash");
  const authValue = r.tpm2b().slice();
  const ts = r.u8();
  const n = r.u8();
  const hashers: Hasher[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    // an event sequence hashes into every bank, in HASH_IMPLS order
    const a = alg ?? HASH_IMPLS[i];
    if (!a) throw new Error("sequence hash");
    if (kind === 2) {
      const ha = hashImpl(r.u16());
      if (!ha) throw new Error("sequence hash");
      const key = r.tpm2b().slice();
      hashers.push(savableHmac(ha, key, readMd(r, ha)));
    } else {
      hashers.push(readMd(r, a));
    }
  }
  r.expectEnd();
  const seq: Sequence = { handle, alg, hashers, authValue };
  if (ts !== 0) seq.ticketSafe = ts === 2;
  return seq;
}

// policy flags in a session context
const F_POLICY = 1;
const F_TRIAL = 2;
const F_PCR = 4;
const F_CC = 8;
const F_AUTHVALUE = 16;
const F_PASSWORD = 32;

/**
 * A session's saved state (Part 1 §30.5): everything but the handle, which stays reserved; a
 * policy session adds its policy data (digest, PCR counter, command code, authValue / password
 * flags, start time and timeout), so a session swapped out and back in mid-policy goes on; the
 * symmetric algorithm of parameter encryption (Part 1 §21) is kept too.
 */
export function sessionContext(s: HmacSession): Uint8Array {
  const w = new TpmWriter(256);
  w.u8(2).u32(s.handle).u16(s.authHash.alg).tpm2b(s.nonceTPM).tpm2b(s.sessionKey).u32(s.bind ?? 0).u8(s.daBound ? 1 : 0);
  w.u16(s.symmetric?.alg ?? 0).u16(s.symmetric?.keyBits ?? 0).u16(s.symmetric?.mode ?? 0);
  const p = s.policy;
  if (!p) return w.u8(0).finish();
  const flags = F_POLICY | (p.trial ? F_TRIAL : 0) | (p.pcrCounter !== undefined ? F_PCR : 0) | (p.commandCode !== undefined ? F_CC : 0) | (p.authValueNeeded ? F_AUTHVALUE : 0) | (p.passwordNeeded ? F_PASSWORD : 0);
  w.u8(flags).tpm2b(p.digest).u32(p.pcrCounter ?? 0).u32(p.commandCode ?? 0).u64(BigInt(p.startTime)).u64(BigInt(p.timeout));
  // PolicyCpHash / NameHash / Template, PolicyLocality, PolicyNvWritten (Part 3 §23.13, §23.14, §23.21, §23.8, §23.20)
  w.u8(p.cpHash ? CP_KINDS.indexOf(p.cpHash.kind) + 1 : 0).tpm2b(p.cpHash?.digest ?? new Uint8Array(0)).u8(p.locality ?? 0).u8(p.nvWritten === undefined ? 0 : p.nvWritten ? 2 : 1);
  return w.finish();
}

/** Which of PolicyCpHash, PolicyNameHash, PolicyTemplate set a policy session's cpHash (saved as index + 1). */
const CP_KINDS = ["cpHash", "nameHash", "template"] as const;

/** The session in an opened context. */
export function sessionFromContext(plain: Uint8Array): HmacSession {
  const r = new TpmReader(plain);
  if (r.u8() !== 2) throw new Error("not a session context");
  const handle = r.u32();
  const authHash = hashImpl(r.u16());
  if (!authHash) throw new Error("session hash");
  const nonceTPM = r.tpm2b().slice();
  const sessionKey = r.tpm2b().slice();
  const bind = r.u32();
  const daBound = r.u8() === 1;
  const symAlg = r.u16();
  const keyBits = r.u16();
  const mode = r.u16();
  const flags = r.u8();
  let policy: PolicyState | undefined;
  if (flags & F_POLICY) {
    const digest = r.tpm2b().slice();
    const pcrCounter = r.u32();
    const commandCode = r.u32();
    const startTime = Number(r.u64());
    const timeout = Number(r.u64());
    policy = {
      trial: (flags & F_TRIAL) !== 0,
      digest,
      startTime,
      timeout,
      pcrCounter: flags & F_PCR ? pcrCounter : undefined,
      commandCode: flags & F_CC ? commandCode : undefined,
      authValueNeeded: (flags & F_AUTHVALUE) !== 0,
      passwordNeeded: (flags & F_PASSWORD) !== 0,
    };
    if (r.remaining > 0) {
      const kind = r.u8();
      const digest = r.tpm2b().slice();
      const locality = r.u8();
      const written = r.u8();
      const k = CP_KINDS[kind - 1];
      if (k) policy.cpHash = { kind: k, digest };
      if (locality !== 0) policy.locality = locality;
      if (written !== 0) policy.nvWritten = written === 2;
    }
  }
  r.expectEnd();
  const s: HmacSession = { handle, authHash, nonceTPM, sessionKey, bind: bind === 0 ? undefined : bind, daBound };
  if (policy) s.policy = policy;
  if (symAlg !== 0) s.symmetric = { alg: symAlg, keyBits, mode };
  return s;
}
