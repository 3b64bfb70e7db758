/**
 * The elliptic curves of the SoftTpm engine: NIST P-256 and P-384 (TPM_ECC_NIST_P256 and
 * TPM_ECC_NIST_P384, TPM 2.0 Part 2 §6.4), from @noble/curves: private scalars from a byte
 * stream (FIPS 186-4 §B.4.1, "key pair generation using extra random bits"), public points,
 * on-curve checks, ECDSA over a digest and point multiplication (ECDH, Part 1 §C.6.1).
 *
 * @packageDocumentation
 */
import { p256, p384 } from "@noble/curves/nist.js";
import { TPM_ECC_CURVE } from "../../wire/constants.js";
import { type ByteSource, fromBig, toBig } from "./crypto.js";

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
