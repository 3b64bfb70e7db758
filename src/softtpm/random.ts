/**
 * Random sources for {@link SoftTpm}: a deterministic, seedable DRBG for reproducible tests and
 * a pooled wrapper over `crypto.getRandomValues` for everything else. Both hand out bytes from a
 * pooled buffer, so a `TPM2_GetRandom(16)` costs a copy, not a call into the platform RNG.
 *
 * @packageDocumentation
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmArgumentError } from "../errors/index.js";
import { concatBytes } from "../wire/bytes.js";

/** Where a SoftTpm draws its random bytes from (TPM 2.0 Part 1 §11.4.10, "Random Number Generator"). */
export interface RandomSource {
  /**
   * Fills `out[offset .. offset + length)` with random bytes.
   *
   * @param out - the destination
   * @param offset - first byte to fill
   * @param length - how many bytes to fill
   */
  fill(out: Uint8Array, offset: number, length: number): void;
  /**
   * Mixes additional input into the generator state (TPM2_StirRandom, TPM 2.0 Part 3 §16.2).
   *
   * @param data - the additional input
   */
  stir(data: Uint8Array): void;
}

const POOL_SIZE = 4096;
const BLOCK = 32;

/**
 * A deterministic generator: SHA-256 in counter mode over a 32-byte key derived from the seed
 * (output block i = SHA-256(key ‖ u64(i))). Same seed, same byte stream, on every platform.
 * Not a certified DRBG: use it for reproducible tests and emulation, not to make real secrets.
 *
 * @example
 * ```ts
 * const rng = new SeededRandom("test-seed");
 * const a = new Uint8Array(16); rng.fill(a, 0, 16);
 * ```
 */
export class SeededRandom implements RandomSource {
  #key: Uint8Array;
  #counter = 0;
  #pool = new Uint8Array(POOL_SIZE);
  #pos = POOL_SIZE;
  #input = new Uint8Array(BLOCK + 8);

  /**
   * @param seed - the seed: bytes, or a string (UTF-8 encoded)
   * @throws TpmArgumentError if `seed` is neither a string nor a Uint8Array
   */
  constructor(seed: Uint8Array | string) {
    if (typeof seed === "string") seed = new TextEncoder().encode(seed);
    if (!(seed instanceof Uint8Array)) throw new TpmArgumentError("SeededRandom: seed must be a Uint8Array or a string");
    this.#key = sha256(concatBytes(new TextEncoder().encode("tpmkit SoftTpm DRBG v1"), seed));
  }

  #refill(): void {
    const input = this.#input;
    input.set(this.#key, 0);
    for (let off = 0; off < POOL_SIZE; off += BLOCK) {
      const c = this.#counter++;
      // u64 big-endian counter (the high half stays 0 below 2^32 blocks)
      input[BLOCK + 4] = (c >>> 24) & 0xff;
      input[BLOCK + 5] = (c >>> 16) & 0xff;
      input[BLOCK + 6] = (c >>> 8) & 0xff;
      input[BLOCK + 7] = c & 0xff;
      input[BLOCK + 3] = Math.floor(c / 0x100000000) & 0xff;
      this.#pool.set(sha256(input), off);
    }
    this.#pos = 0;
  }

  fill(out: Uint8Array, offset: number, length: number): void {
    while (length > 0) {
      if (this.#pos >= POOL_SIZE) this.#refill();
      const n = Math.min(length, POOL_SIZE - this.#pos);
      out.set(this.#pool.subarray(this.#pos, this.#pos + n), offset);
      this.#pos += n;
      offset += n;
      length -= n;
    }
  }

  stir(data: Uint8Array): void {
    this.#key = sha256(concatBytes(this.#key, data));
    this.#pos = POOL_SIZE; // drop pooled bytes made with the old key
  }
}

/**
 * The platform's cryptographic RNG (`crypto.getRandomValues`), drawn 4 KiB at a time into a pool.
 * `stir` is accepted and ignored: the platform RNG mixes its own entropy.
 */
export class SystemRandom implements RandomSource {
  #pool = new Uint8Array(POOL_SIZE);
  #pos = POOL_SIZE;

  fill(out: Uint8Array, offset: number, length: number): void {
    while (length > 0) {
      if (this.#pos >= POOL_SIZE) {
        globalThis.crypto.getRandomValues(this.#pool);
        this.#pos = 0;
      }
      const n = Math.min(length, POOL_SIZE - this.#pos);
      out.set(this.#pool.subarray(this.#pos, this.#pos + n), offset);
      this.#pos += n;
      offset += n;
      length -= n;
    }
  }

  stir(_data: Uint8Array): void {
    this.#pos = POOL_SIZE;
  }
}
