/**
 * Cryptographic primitives of the SoftTpm object store: a KDFa byte stream (the DRBG that
 * derives primary keys, TPM 2.0 Part 1 §11.4.10.2), AES-CFB with a zero IV (Part 1 §11.4.6,
 * protected storage and context blobs), and RSA key generation from such a stream (a
 * deterministic prime search, FIPS 186-4 §B.3.3 style, the primality test from OpenSSL through node:crypto).
 *
 * AES comes from node:crypto; hashes and HMAC from @noble/hashes.
 *
 * @packageDocumentation
 */
import { checkPrimeSync, createCipheriv, createDecipheriv } from "node:crypto";
import { concatBytes, u32be } from "../../wire/bytes.js";
import type { HashImpl } from "../tables.js";

/**
 * A deterministic byte stream: block i is HMAC(key, i ‖ label ‖ 00 ‖ contextU ‖ contextV ‖ L),
 * the KDFa construction (Part 1 §11.4.10.2, SP 800-108 counter mode) left open-ended, with L the
 * digest size in bits; the same seed and template give the same bytes after a restart.
 */
export class KdfStream {
  #block = 0;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  readonly #labelBytes: Uint8Array;

  constructor(
    readonly hash: HashImpl,
    readonly key: Uint8Array,
    label: string,
    readonly contextU: Uint8Array,
    readonly contextV: Uint8Array,
  ) {
    this.#labelBytes = new TextEncoder().encode(label + "\0");
  }

  /** The next `n` bytes. */
  next(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      if (this.#pos === this.#buf.length) {
        this.#block++;
        // counter ‖ label ‖ 00 ‖ contextU ‖ contextV ‖ L, with L the stream's block size in bits
        this.#buf = this.hash.mac(this.key, u32be(this.#block), this.#labelBytes, this.contextU, this.contextV, u32be(this.hash.size * 8));
        this.#pos = 0;
      }
      const k = Math.min(n - off, this.#buf.length - this.#pos);
      out.set(this.#buf.subarray(this.#pos, this.#pos + k), off);
      this.#pos += k;
      off += k;
    }
    return out;
  }
}

/** KDFa, SP 800-108 counter mode with HMAC (TPM 2.0 Part 1 §11.4.10.2); `label` gets its terminating zero. */
export function kdfa(a: HashImpl, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  const labelBytes = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 1, off = 0; off < out.length; i++, off += a.size) {
    const block = a.mac(key, u32be(i), labelBytes, contextU, contextV, u32be(bits));
    out.set(block.subarray(0, Math.min(a.size, out.length - off)), off);
  }
  return out;
}

/**
 * KDFe (Part 1 §11.4.10.3; NIST SP 800-56A §5.8.1 one-step KDF):
 * H(counter ‖ Z ‖ label ‖ partyUInfo ‖ partyVInfo) for counter = 1, 2, … truncated to `bits`. A
 * string `label` gets its terminating zero, as in KDFa (a label that does not end in 0 has one
 * appended); bytes are taken as they are.
 */
export function kdfe(a: HashImpl, z: Uint8Array, label: string | Uint8Array, partyU: Uint8Array, partyV: Uint8Array, bits: number): Uint8Array {
  const labelBytes = typeof label === "string" ? new TextEncoder().encode(label + "\0") : label;
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 1, off = 0; off < out.length; i++, off += a.size) {
    const block = a.hash(concatBytes(u32be(i), z, labelBytes, partyU, partyV));
    out.set(block.subarray(0, Math.min(a.size, out.length - off)), off);
  }
  return out;
}

/** Anything that fills bytes: a {@link KdfStream} or the TPM's random source. */
export type ByteSource = (n: number) => Uint8Array;

/** AES-CFB (128-bit feedback) encryption or decryption with a zero IV (Part 1 §11.4.6 with IV 0, as Part 1 §23.3 uses it). */
export function aesCfb(key: Uint8Array, data: Uint8Array, encrypt: boolean, iv: Uint8Array = new Uint8Array(16)): Uint8Array {
  const name = `aes-${key.length * 8}-cfb`;
  const c = encrypt ? createCipheriv(name, key, iv) : createDecipheriv(name, key, iv);
  const a = c.update(data);
  const b = c.final();
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Big-endian bytes to BigInt. */
export function toBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** BigInt to `n` big-endian bytes. */
export function fromBig(v: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** base^exp mod m. */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  base %= m;
  while (exp > 0n) {
    if (exp & 1n) r = (r * base) % m;
    base = (base * base) % m;
    exp >>= 1n;
  }
  return r;
}

/** a⁻¹ mod m (a and m coprime). */
export function modInv(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

const SMALL_PRIMES: number[] = (() => {
  const out: number[] = [];
  for (let n = 3; out.length < 2000; n += 2) {
    let prime = true;
    for (const p of out) {
      if (p * p > n) break;
      if (n % p === 0) {
        prime = false;
        break;
      }
    }
    if (prime) out.push(n);
  }
  return out;
})();

/**
 * Is the odd number `n` prime? Miller-Rabin with `rounds` bases drawn from `source` (FIPS 186-4
 * §C.3.1): the bases are drawn as that test draws them, and the test itself is OpenSSL's
 * (`checkPrimeSync`, its own rounds: an error probability below 2^-128 for a prime this size),
 * some 20 times faster than BigInt exponentiation.
 *
 * The bytes drawn are those of the BigInt Miller-Rabin SoftTpm ran before (the stream, and with
 * it the primary keys derived from the seeds, must stay the same across versions: a key sealed
 * under a primary must still load after an upgrade): a prime passes every round, so it draws
 * `rounds` bases; a composite of this size fails on its first random base but with probability
 * far below 2^-80 (FIPS 186-4 §F.2), so it draws one. `crypto.test.ts` pins keys from the BigInt
 * search.
 */
function millerRabin(n: bigint, rounds: number, source: ByteSource, bytes: number): boolean {
  const prime = checkPrimeSync(n);
  for (let i = prime ? rounds : 1; i > 0; i--) source(bytes);
  return prime;
}

/**
 * A prime of `bits` bits (top two bits set, so p·q has the full size) with gcd(p − 1, e) = 1:
 * a candidate from `source`, then the odd numbers above it, each sieved by 2,000 small primes
 * and then tested with Miller-Rabin (5 rounds for 1024-bit primes and up, 8 below; FIPS 186-4
 * Table C.2). Deterministic for a deterministic source.
 */
export function generatePrime(bits: number, e: bigint, source: ByteSource): bigint {
  const bytes = bits / 8;
  const rounds = bits >= 1024 ? 5 : 8;
  for (;;) {
    const c = source(bytes);
    c[0]! |= 0xc0;
    c[bytes - 1]! |= 1;
    let p = toBig(c);
    const residues = SMALL_PRIMES.map((q) => Number(p % BigInt(q)));
    for (let delta = 0; delta < 20 * bits; delta += 2) {
      let ok = true;
      for (let i = 0; i < SMALL_PRIMES.length; i++) {
        if ((residues[i]! + delta) % SMALL_PRIMES[i]! === 0) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      const cand = p + BigInt(delta);
      if (cand >> BigInt(bits) !== 0n) break;
      if ((cand - 1n) % e === 0n) continue;
      if (millerRabin(cand, rounds, source, bytes)) return cand;
    }
    p = 0n; // no prime in this window: a new candidate
  }
}

/** An RSA private key's numbers. */
export interface RsaKey {
  n: bigint;
  e: bigint;
  d: bigint;
  p: bigint;
  q: bigint;
}

/** The RSA key with modulus n whose prime p is known (the TPM keeps only p; Part 2 §11.2.4.7 TPM2B_PRIVATE_KEY_RSA). */
export function rsaFromPrime(n: bigint, e: bigint, p: bigint): RsaKey | undefined {
  if (p <= 1n || n % p !== 0n) return undefined;
  const q = n / p;
  const phi = (p - 1n) * (q - 1n);
  return { n, e, d: modInv(e, phi), p, q };
}

/** An RSA key of `bits` bits with exponent `e`, both primes from `source` (p > q). */
export function generateRsa(bits: number, e: bigint, source: ByteSource): RsaKey {
  for (;;) {
    let p = generatePrime(bits / 2, e, source);
    let q = generatePrime(bits / 2, e, source);
    if (p === q) continue;
    if (p < q) [p, q] = [q, p];
    const n = p * q;
    if (n >> BigInt(bits - 1) !== 1n) continue;
    return rsaFromPrime(n, e, p)!;
  }
}
