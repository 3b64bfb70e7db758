/**
 * The elliptic curves of the SoftTpm engine: NIST P-256 and P-384 (TPM_ECC_NIST_P256 and
 * TPM_ECC_NIST_P384, TPM 2.0 Part 2 §6.4), from @noble/curves: private scalars from a byte
 * stream (FIPS 186-4 §B.4.1, "key pair generation using extra random bits"), public points,
 * on-curve checks, ECDSA over a digest and point multiplication (ECDH, Part 1 §C.6.1); the
 * commit state of the two-phase operations (TPM2_Commit, TPM2_EC_Ephemeral, ECDAA signing and
 * TPM2_ZGen_2Phase; Part 1 §C.2) and the curve parameters of TPM2_ECC_Parameters.
 *
 * @packageDocumentation
 */
import { p256, p384 } from "@noble/curves/nist.js";
import { concatBytes } from "../../wire/bytes.js";
import { TPM_ALG, TPM_ECC_CURVE } from "../../wire/constants.js";
import { type HashImpl, hashImpl } from "../tables.js";
import { type ByteSource, KdfStream, fromBig, toBig } from "./crypto.js";
import type { Engine } from "./engine.js";

type NobleCurve = typeof p256;

/** A curve SoftTpm implements. */
export interface Curve {
  /** TPM_ECC_CURVE. */
  readonly id: number;
  /** Bytes of a coordinate and of a scalar. */
  readonly size: number;
  /** The group order n. */
  readonly n: bigint;
  readonly impl: NobleCurve;
}

/** The curves SoftTpm implements, by TPM_ECC_CURVE (TPM_RC_CURVE for any other). */
export const CURVES: ReadonlyMap<number, Curve> = /* @__PURE__ */ new Map<number, Curve>([
  [TPM_ECC_CURVE.NIST_P256, { id: TPM_ECC_CURVE.NIST_P256, size: 32, n: p256.Point.CURVE().n, impl: p256 }],
  [TPM_ECC_CURVE.NIST_P384, { id: TPM_ECC_CURVE.NIST_P384, size: 48, n: p384.Point.CURVE().n, impl: p384 }],
]);

/** A point as the TPM carries it (TPMS_ECC_POINT, Part 2 §11.2.5.2): big-endian x and y. */
export interface EccPoint {
  x: Uint8Array;
  y: Uint8Array;
}

/**
 * A private scalar d in [1, n − 1] from `source`: n's size plus 8 bytes (64 extra bits), then
 * d = (c mod (n − 1)) + 1 (FIPS 186-4 §B.4.1). Deterministic for a deterministic source, so a
 * primary key derived from a KDFa stream is the same after a restart.
 */
export function eccScalar(c: Curve, source: ByteSource): Uint8Array {
  const v = toBig(source(c.size + 8));
  return fromBig((v % (c.n - 1n)) + 1n, c.size);
}

/** d·G as a TPMS_ECC_POINT with coordinates of the curve's size. */
export function eccPublic(c: Curve, d: Uint8Array): EccPoint {
  const p = c.impl.Point.BASE.multiply(toBig(d)).toAffine();
  return { x: fromBig(p.x, c.size), y: fromBig(p.y, c.size) };
}

/** Is d a valid private scalar (1 ≤ d < n)? */
export function validScalar(c: Curve, d: Uint8Array): boolean {
  const v = toBig(d);
  return d.length <= c.size && v >= 1n && v < c.n;
}

/** The curve point of (x, y), or undefined when it is not on the curve (or a coordinate is too long). */
export function toPoint(c: Curve, q: EccPoint): InstanceType<NobleCurve["Point"]> | undefined {
  if (q.x.length > c.size || q.y.length > c.size) return undefined;
  try {
    const p = c.impl.Point.fromAffine({ x: toBig(q.x), y: toBig(q.y) });
    p.assertValidity();
    return p;
  } catch {
    return undefined;
  }
}

/** k·Q (ECDH, Part 1 §C.6.1: the x coordinate is Z), or undefined when Q is not on the curve. */
export function eccMultiply(c: Curve, k: Uint8Array, q: EccPoint): EccPoint | undefined {
  const p = toPoint(c, q);
  if (!p) return undefined;
  const r = p.multiply(toBig(k)).toAffine();
  return { x: fromBig(r.x, c.size), y: fromBig(r.y, c.size) };
}

/**
 * ECDSA over a digest (no hashing here; a digest longer than n is truncated to its leftmost
 * bits, SEC 1 §4.1.3 step 5, as a TPM does). The nonce is RFC 6979's with `entropy` from the
 * TPM's random source mixed in (RFC 6979 §3.6). S is not normalised to the lower half: TPMs
 * do not (Part 1 §C.4.1 knows no low-S rule), and verification accepts either half.
 */
export function ecdsaSign(c: Curve, d: Uint8Array, digest: Uint8Array, entropy: Uint8Array): { r: Uint8Array; s: Uint8Array } {
  const sig = c.impl.sign(digest, d, { prehash: false, lowS: false, extraEntropy: entropy });
  return { r: sig.slice(0, c.size), s: sig.slice(c.size) };
}

/** Verifies an ECDSA signature (r, s) over `digest` with the public point q. */
export function ecdsaVerify(c: Curve, q: EccPoint, digest: Uint8Array, r: Uint8Array, s: Uint8Array): boolean {
  if (r.length > c.size || s.length > c.size) return false;
  if (!toPoint(c, q)) return false;
  const sig = new Uint8Array(2 * c.size);
  sig.set(fromBig(toBig(r), c.size), 0);
  sig.set(fromBig(toBig(s), c.size), c.size);
  const pub = new Uint8Array(1 + 2 * c.size);
  pub[0] = 4;
  pub.set(fromBig(toBig(q.x), c.size), 1);
  pub.set(fromBig(toBig(q.y), c.size), 1 + c.size);
  try {
    return c.impl.verify(sig, digest, pub, { prehash: false, lowS: false });
  } catch {
    return false;
  }
}

// ---- two-phase ECC operations (Part 1 §C.2, "the commit state"; Part 3 §19) ----

/**
 * Bits of the commit array: a commitment's counter value c is usable while bit c mod 128 is set.
 * libtpms 0.9 keeps 128 (STATE_RESET_DATA.commitArray, 16 bytes); the TPM spec lets the size be
 * any power of two up to 64 Ki (Part 1 §C.2.2).
 */
export const COMMIT_BITS = 128;
const COMMIT_MASK = COMMIT_BITS - 1;

/**
 * The commit state of one TPM (Part 1 §C.2.2: commitNonce, commitCounter, commitArray). Like
 * libtpms' state-reset data it starts over at a TPM Reset (a new commitNonce, counter 0, no
 * usable commitment) and lasts across TPM Restart / Resume (swtpm 0.7.1, measured: a commitment
 * signs after Shutdown(STATE) + Startup(CLEAR), not after a TPM Reset, and the counter is 0
 * again). SoftTpm keeps it beside the engine, volatile: it is not in the saved-state blob, so a
 * SoftTpm rebuilt from storage starts a new one (commitments made before are then refused, as
 * after a TPM Reset); a TPM Reset is noticed by resetCount changing, so TPM2_Clear (which sets
 * resetCount to 0) ends the commitments too.
 */
interface CommitState {
  /** The persistent state and resetCount the commit state belongs to (a TPM Reset changes the count). */
  readonly ps: object;
  readonly resetCount: number;
  /** commitNonce: the secret the ephemeral scalars r are derived from. */
  readonly nonce: Uint8Array;
  /** commitCounter (64 bits). */
  counter: bigint;
  /** commitArray. */
  readonly array: Uint8Array;
}

const commitStates = new WeakMap<Engine, CommitState>();

/** The engine's commit state, a fresh one after a TPM Reset. */
function commitState(t: Engine): CommitState {
  let s = commitStates.get(t);
  if (!s || s.ps !== t.ps || s.resetCount !== t.ps.resetCount) {
    const nonce = new Uint8Array(32);
    t.random.fill(nonce, 0, 32);
    s = { ps: t.ps, resetCount: t.ps.resetCount, nonce, counter: 0n, array: new Uint8Array(COMMIT_BITS / 8) };
    commitStates.set(t, s);
  }
  return s;
}

const SHA256 = hashImpl(TPM_ALG.SHA256)!;

/**
 * The ephemeral scalar r of commit count `count` (Part 1 §C.2.2): r = KDFa(SHA-256, commitNonce,
 * "ECDAA Commit", name, count as a 64-bit number), drawn again until 1 ≤ r < n. The same count and
 * key name give the same r, so TPM2_Commit / TPM2_EC_Ephemeral make it and TPM2_Sign (ECDAA) /
 * TPM2_ZGen_2Phase make it again from the count alone. `name` is empty for TPM2_EC_Ephemeral.
 */
function deriveR(s: CommitState, c: Curve, name: Uint8Array, count: bigint): Uint8Array {
  const stream = new KdfStream(SHA256, s.nonce, "ECDAA Commit", name, u64be(count));
  for (;;) {
    const r = stream.next(c.size);
    const v = toBig(r);
    if (v >= 1n && v < c.n) return r;
  }
}

function u64be(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  for (let i = 7; i >= 0; i--, v >>= 8n) b[i] = Number(v & 0xffn);
  return b;
}

/**
 * The commit phase (Part 3 §19.2, §19.3): the scalar r of the next count, without committing it
 * yet (the command calls {@link commitNext} once every check passed).
 */
export function commitR(t: Engine, c: Curve, name: Uint8Array): Uint8Array {
  const s = commitState(t);
  return deriveR(s, c, name, s.counter);
}

/**
 * Commits the current count (libtpms CryptCommit): marks it usable in the commit array, advances
 * commitCounter and returns the low 16 bits of the count that was committed (the `counter` of
 * TPM2_Commit / TPM2_EC_Ephemeral).
 */
export function commitNext(t: Engine): number {
  const s = commitState(t);
  const old = s.counter;
  s.counter = old + 1n;
  const bit = Number(old & BigInt(COMMIT_MASK));
  s.array[bit >>> 3]! |= 1 << (bit & 7);
  return Number(old & 0xffffn);
}

/**
 * The scalar r a commitment with 16-bit counter `c` was made with, or undefined when `c` names no
 * usable commitment (never made, already used, or so old that its array bit was reused: the bits
 * of `c` above the array index must match the count it was made at; Part 1 §C.2.2).
 */
export function committedR(t: Engine, c: Curve, name: Uint8Array, count: number): Uint8Array | undefined {
  const s = commitState(t);
  const bit = count & COMMIT_MASK;
  if (!(s.array[bit >>> 3]! & (1 << (bit & 7)))) return undefined;
  // the full count: the latest value below commitCounter whose low 16 bits are `count`, and no
  // more than COMMIT_BITS behind it
  let current = s.counter;
  if (bit >= Number(current & BigInt(COMMIT_MASK))) current -= BigInt(COMMIT_BITS);
  if (current < 0n) return undefined;
  if ((Number(current & 0xffffn) & ~COMMIT_MASK) !== (count & ~COMMIT_MASK)) return undefined;
  return deriveR(s, c, name, (current & ~0xffffn) | BigInt(count));
}

/** Ends a commitment once it was used (libtpms CryptEndCommit): its count can never sign again. */
export function commitEnd(t: Engine, count: number): void {
  const bit = count & COMMIT_MASK;
  commitState(t).array[bit >>> 3]! &= ~(1 << (bit & 7));
}

/**
 * ECDAA signing (Part 1 §C.4.4, TPMS_SIGNATURE_ECDAA of Part 2 §11.3.2): with r the committed
 * scalar, a random nonce 0 < k < n, T = H(k ‖ digest) and s = (r + T·d) mod n; the signature is
 * (k, s). k is given without leading zero bytes and the hash covers it so, s is of the order's
 * size (as libtpms 0.9 gives them). A verifier checks [s]G = E + [T]Q, with E = [r]P1 from
 * TPM2_Commit. Returns undefined for the (negligible) s = 0.
 */
export function ecdaaSign(c: Curve, d: Uint8Array, r: Uint8Array, hash: HashImpl, digest: Uint8Array, nonce: Uint8Array): { r: Uint8Array; s: Uint8Array } | undefined {
  let i = 0;
  while (i < nonce.length - 1 && nonce[i] === 0) i++;
  const k = nonce.slice(i);
  const tv = toBig(hash.hash(concatBytes(k, digest)));
  const s = (toBig(r) + ((tv % c.n) * toBig(d)) % c.n) % c.n;
  if (s === 0n) return undefined;
  return { r: k, s: fromBig(s, c.size) };
}

/**
 * TPMS_ALGORITHM_DETAIL_ECC of a curve (Part 2 §11.2.5.3), as TPM2_ECC_Parameters returns it:
 * the key size, the curve's KDF (KDF1_SP800_56A with SHA-256 for P-256, SHA-384 for P-384) and
 * signing scheme (NULL), then p, a, b, Gx, Gy of the field size and n and h without leading
 * zeros (swtpm 0.7.1, measured).
 */
export function curveDetail(c: Curve): { keyBits: number; kdfHash: number; p: Uint8Array; a: Uint8Array; b: Uint8Array; gX: Uint8Array; gY: Uint8Array; n: Uint8Array; h: Uint8Array } {
  const k = c.impl.Point.CURVE();
  const min = (v: bigint): Uint8Array => fromBig(v, Math.max(1, Math.ceil(v.toString(16).length / 2)));
  return {
    keyBits: c.size * 8,
    kdfHash: c.size === 32 ? TPM_ALG.SHA256 : TPM_ALG.SHA384,
    p: fromBig(k.p, c.size),
    a: fromBig(k.a, c.size),
    b: fromBig(k.b, c.size),
    gX: fromBig(k.Gx, c.size),
    gY: fromBig(k.Gy, c.size),
    n: min(k.n),
    h: min(k.h),
  };
}
