/**
 * Seeded mutation for the fuzz targets: a small deterministic PRNG and a byte mutator in the
 * style of libFuzzer's (bit flips, interesting values, inserts, deletes, truncation, splices).
 */

/** A seeded PRNG (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform u32. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  /** True with probability 1/n. */
  oneIn(n: number): boolean {
    return this.int(n) === 0;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

const INTERESTING8 = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x40];
const INTERESTING32 = [0, 1, 9, 10, 11, 0x7fffffff, 0x80000000, 0xffffffff, 4096, 4097, 0x1000000, 0x8001, 0x80000000, 0x40000001, 0x01000001];

/** One to four random mutations of `seed` (never modified; a new array is returned). */
export function mutate(rng: Rng, seed: Uint8Array, max = 8192): Uint8Array {
  let b: Uint8Array = seed.slice();
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const len = b.length;
    switch (rng.int(10)) {
      case 0:
        if (len) b[rng.int(len)]! ^= 1 << rng.int(8);
        break;
      case 1:
        if (len) b[rng.int(len)] = rng.u32() & 0xff;
        break;
      case 2:
        if (len) b[rng.int(len)] = rng.pick(INTERESTING8);
        break;
      case 3:
        if (len >= 4) {
          const at = rng.int(len - 3);
          const v = rng.oneIn(3) ? len + rng.int(21) - 10 : rng.pick(INTERESTING32);
          b[at] = v >>> 24;
          b[at + 1] = (v >>> 16) & 0xff;
          b[at + 2] = (v >>> 8) & 0xff;
          b[at + 3] = v & 0xff;
        }
        break;
      case 4: {
        const at = rng.int(len + 1);
        const ins = rng.bytes(1 + rng.int(rng.oneIn(8) ? 256 : 8));
        const c = new Uint8Array(len + ins.length);
        c.set(b.subarray(0, at));
        c.set(ins, at);
        c.set(b.subarray(at), at + ins.length);
        b = c;
        break;
      }
      case 5:
        if (len) {
          const at = rng.int(len);
          const d = 1 + rng.int(Math.min(16, len - at));
          const c = new Uint8Array(len - d);
          c.set(b.subarray(0, at));
          c.set(b.subarray(at + d), at);
          b = c;
        }
        break;
      case 6:
        b = b.subarray(0, rng.int(len + 1)).slice();
        break;
      case 7: {
        const extra = rng.bytes(rng.int(32));
        const c = new Uint8Array(len + extra.length);
        c.set(b);
        c.set(extra, len);
        b = c;
        break;
      }
      case 8:
        if (len >= 2) {
          // Overwrite a u16 (sizes of TPM2B/TPML).
          const at = rng.int(len - 1);
          const v = rng.pick([0, 1, 0xffff, 0x8000, 32, 48, 64, len, rng.u32() & 0xffff]);
          b[at] = v >>> 8;
          b[at + 1] = v & 0xff;
        }
        break;
      default:
        if (len) {
          // Copy a chunk within the input.
          const from = rng.int(len);
          const to = rng.int(len);
          const d = Math.min(1 + rng.int(16), len - from, len - to);
          b.copyWithin(to, from, from + d);
        }
    }
  }
  return b.length > max ? b.subarray(0, max).slice() : b;
}

/** u32 big-endian. */
export const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
/** u16 big-endian. */
export const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
/** A TPM response (tag, size, rc, body). */
export const rsp = (rc: number, body: number[] = [], tag = 0x8001): Uint8Array => Uint8Array.from([...u16(tag), ...u32(10 + body.length), ...u32(rc), ...body]);
