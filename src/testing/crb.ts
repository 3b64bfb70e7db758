/**
 * Test helper for the CRB driver and device tests: an {@link Mmio} wrapper that records every
 * access (and lets a test rewrite reads). The scripted backend they use is `FakeTpmBackend`
 * (`./fake-backend.ts`). Not part of the public API.
 *
 * @packageDocumentation
 */
import type { Mmio } from "../bus/mmio.js";

/** One recorded access. */
export interface Access {
  op: "r8" | "r16" | "r32" | "w8" | "w16" | "w32" | "rblk" | "wblk";
  offset: number;
  /** The value read or written; for blocks, the length. */
  value: number;
}

/** Wraps an Mmio and records every access in `log` (and lets a test rewrite reads). */
export class RecordingMmio implements Mmio {
  log: Access[] = [];
  /** Rewrites a 32-bit read: return a number to replace the value. */
  override: ((offset: number, value: number) => number | undefined) | undefined;
  constructor(readonly inner: Mmio) {}
  async read8(o: number) {
    const v = await this.inner.read8(o);
    this.log.push({ op: "r8", offset: o, value: v });
    return v;
  }
  async read16(o: number) {
    const v = await this.inner.read16(o);
    this.log.push({ op: "r16", offset: o, value: v });
    return v;
  }
  async read32(o: number) {
    let v = await this.inner.read32(o);
    const r = this.override?.(o, v);
    if (r !== undefined) v = r >>> 0;
    this.log.push({ op: "r32", offset: o, value: v });
    return v;
  }
  async write8(o: number, v: number) {
    this.log.push({ op: "w8", offset: o, value: v });
    await this.inner.write8(o, v);
  }
  async write16(o: number, v: number) {
    this.log.push({ op: "w16", offset: o, value: v });
    await this.inner.write16(o, v);
  }
  async write32(o: number, v: number) {
    this.log.push({ op: "w32", offset: o, value: v });
    await this.inner.write32(o, v);
  }
  async readFifo(o: number, n: number) {
    const v = await this.inner.readFifo(o, n);
    this.log.push({ op: "rblk", offset: o, value: n });
    return v;
  }
  async writeFifo(o: number, d: Uint8Array) {
    this.log.push({ op: "wblk", offset: o, value: d.length });
    await this.inner.writeFifo(o, d);
  }
}
