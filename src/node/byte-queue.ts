/**
 * A FIFO of received byte chunks with exact-length takes and non-consuming peeks: the framing
 * buffer under every socket client and server (swtpm, mssim). Pure: no Node APIs.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";

/**
 * Bytes received so far, in order, kept as the chunks they arrived in.
 *
 * @example
 * ```ts
 * const q = new ByteQueue();
 * q.push(Uint8Array.of(0, 0)); q.push(Uint8Array.of(0, 12));
 * q.u32(0);  // 12, without consuming
 * q.take(4); // Uint8Array [0, 0, 0, 12]
 * ```
 */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  #length = 0;

  /** Bytes queued. */
  get length(): number {
    return this.#length;
  }

  /** Appends a chunk (kept by reference; the caller must not reuse it). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /**
   * Byte at `i` (0 ≤ i < length), without consuming.
   * @throws TpmArgumentError when `i` is outside the queued bytes (a caller bug)
   */
  at(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.#length) throw new TpmArgumentError(`ByteQueue.at(${i}) outside ${this.#length} queued bytes`);
    for (const c of this.#chunks) {
      if (i < c.length) return c[i]!;
      i -= c.length;
    }
    return 0;
  }

  /** Big-endian u16 at `i`, without consuming. */
  u16(i: number): number {
    return (this.at(i) << 8) | this.at(i + 1);
  }

  /** Big-endian u32 at `i`, without consuming. */
  u32(i: number): number {
    return ((this.at(i) << 24) | (this.at(i + 1) << 16) | (this.at(i + 2) << 8) | this.at(i + 3)) >>> 0;
  }

  /**
   * Removes and returns exactly `n` bytes as one fresh array.
   * @throws TpmArgumentError when fewer than `n` bytes are queued (a caller bug)
   */
  take(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0 || n > this.#length) throw new TpmArgumentError(`ByteQueue.take(${n}) with ${this.#length} bytes queued`);
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const head = this.#chunks[0]!;
      const want = n - off;
      if (head.length <= want) {
        out.set(head, off);
        off += head.length;
        this.#chunks.shift();
      } else {
        out.set(head.subarray(0, want), off);
        this.#chunks[0] = head.subarray(want);
        off += want;
      }
    }
    this.#length -= n;
    return out;
  }

  /** Discards everything queued. */
  clear(): void {
    this.#chunks = [];
    this.#length = 0;
  }
}
