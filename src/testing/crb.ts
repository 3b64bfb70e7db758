/**
 * Test helpers for the CRB driver and device tests: a small scripted {@link TpmBackend} and an
 * {@link Mmio} wrapper that records every access. Not part of the public API.
 *
 * @packageDocumentation
 */
import type { Clock } from "../core/clock.js";
import type { TpmBackend } from "../core/transport.js";
import type { Mmio } from "../bus/mmio.js";
import { TPM_CC, TPM_RC, TPM_ST } from "../wire/constants.js";

/** How {@link FakeBackend.execute} behaves. */
export type FakeMode = "ok" | "reject" | "hang" | "dead" | "slow";

/**
 * A scripted backend: answers GetRandom(n) with bytes 0, 1, 2, ... and any other command with a
 * bare success response. `mode` makes it reject, hang until aborted, never settle at all, or
 * answer late (`slowMs` on the clock) whatever cancel says.
 */
export class FakeBackend implements TpmBackend {
  calls: { command: Uint8Array; locality: number }[] = [];
  mode: FakeMode = "ok";
  cancels = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** Override the response for a command. */
  respond: ((command: Uint8Array) => Uint8Array) | undefined;
  /** How long a "slow" command takes on `clock` (it ignores cancel). */
  slowMs = 250;
  #start: (() => Promise<void>) | undefined;
  #clock: Clock | undefined;

  constructor(options: { start?: () => Promise<void>; clock?: Clock } = {}) {
    this.#start = options.start;
    this.#clock = options.clock;
  }

  /** Present only when a start hook was given. */
  get start(): (() => Promise<void>) | undefined {
    return this.#start;
  }

  execute(command: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    this.calls.push({ command: command.slice(), locality });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = <T>(p: Promise<T>) =>
      p.finally(() => {
        this.inFlight--;
      });
    switch (this.mode) {
      case "reject":
        return done(Promise.reject(new Error("backend exploded")));
      case "dead":
        return new Promise<Uint8Array>(() => {});
      case "slow":
        if (!this.#clock) throw new Error("FakeBackend: slow mode needs a clock");
        return done(this.#clock.sleep(this.slowMs).then(() => (this.respond ? this.respond(command) : answer(command))));
      case "hang":
        return done(
          new Promise<Uint8Array>((_, reject) => {
            signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
          }),
        );
      default:
        return done(Promise.resolve(this.respond ? this.respond(command) : answer(command)));
    }
  }

  cancel(): void {
    this.cancels++;
  }
}

/** The default answer: GetRandom(n) → n bytes 0..n−1; anything else → bare TPM_RC_SUCCESS. */
export function answer(command: Uint8Array): Uint8Array {
  const dv = new DataView(command.buffer, command.byteOffset, command.byteLength);
  const cc = command.length >= 10 ? dv.getUint32(6) : 0;
  if (cc === TPM_CC.GetRandom && command.length >= 12) {
    const n = dv.getUint16(10);
    const out = new Uint8Array(12 + n);
    const o = new DataView(out.buffer);
    o.setUint16(0, TPM_ST.NO_SESSIONS);
    o.setUint32(2, out.length);
    o.setUint32(6, TPM_RC.SUCCESS);
    o.setUint16(10, n);
    for (let i = 0; i < n; i++) out[12 + i] = i & 0xff;
    return out;
  }
  return response(TPM_RC.SUCCESS);
}

/** A bare 10-byte response with `rc`. */
export function response(rc: number): Uint8Array {
  const out = new Uint8Array(10);
  const o = new DataView(out.buffer);
  o.setUint16(0, TPM_ST.NO_SESSIONS);
  o.setUint32(2, 10);
  o.setUint32(6, rc);
  return out;
}

/** TPM2_GetRandom(bytesRequested) command bytes (Part 3 §16.1). */
export function getRandomCommand(n: number): Uint8Array {
  const c = new Uint8Array(12);
  const dv = new DataView(c.buffer);
  dv.setUint16(0, TPM_ST.NO_SESSIONS);
  dv.setUint32(2, 12);
  dv.setUint32(6, TPM_CC.GetRandom);
  dv.setUint16(10, n);
  return c;
}

/** A command of exactly `size` bytes (a TPM header with an unknown code, then padding). */
export function paddedCommand(size: number): Uint8Array {
  const c = new Uint8Array(size);
  const dv = new DataView(c.buffer);
  dv.setUint16(0, TPM_ST.NO_SESSIONS);
  dv.setUint32(2, size);
  dv.setUint32(6, TPM_CC.GetRandom);
  for (let i = 10; i < size; i++) c[i] = i & 0xff;
  return c;
}

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
