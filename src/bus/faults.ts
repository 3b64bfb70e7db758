/**
 * An MMIO fault injector: a wrapper `Mmio => Mmio` that makes a healthy register window misbehave
 * the way real buses and chips do: stuck registers, reads of all
 * 0s or all 1s (no device / locality not held), dropped writes, slow accesses (delays on the
 * injected clock), single-bit flips (TPM Genie-style bus glitches) and a device that vanishes
 * mid-command. Faults are plain data, so property tests can generate schedules of them.
 *
 * @packageDocumentation
 */
import type { Mmio } from "./mmio.js";
import type { MaybePromise } from "../core/transport.js";
import type { Clock } from "../core/clock.js";
import { systemClock } from "../core/clock.js";
import { TpmArgumentError, TpmTransportError } from "../errors/index.js";
import { type MmioAccess, type MmioOp, isRead, mapMaybe, widthOf } from "./access.js";

/** What a fault does to a matching access. */
export type MmioFaultEffect =
  /** Reads return `value` (masked to the access width; FIFO reads return `value & 0xFF` in every byte). */
  | { kind: "stuck"; value: number }
  /** Writes are silently ignored. */
  | { kind: "drop" }
  /** The access waits `ms` on the clock before it happens (a slow bus or a clock-stretching chip). */
  | { kind: "delay"; ms: number }
  /** Bit `bit` of the value (register access) or of byte `byte` (FIFO access, default 0) is inverted. */
  | { kind: "flip"; bit: number; byte?: number }
  /**
   * The device disappears: from this access on, every access at any offset reads `value`
   * (default all ones, as on a bus with nothing behind it) and every write is dropped.
   */
  | { kind: "vanish"; value?: number }
  /** The access throws a `TpmTransportError` (errno EIO), like a bridge whose bus transfer failed. */
  | { kind: "throw" };

/** Which accesses a fault applies to, and how often. */
export interface MmioFaultSelector {
  /** Only accesses at exactly this offset. */
  offset?: number;
  /** Only accesses for which this returns true (combined with the other filters). */
  match?: (access: MmioAccess) => boolean;
  /** `"read"`, `"write"`, `"any"` or a list of operations. Default: reads for stuck/flip, writes for drop, any otherwise. */
  ops?: "read" | "write" | "any" | readonly MmioOp[];
  /** Matching accesses let through untouched before the fault starts. Default 0. */
  skip?: number;
  /** Matching accesses affected, after `skip`. Default unlimited. */
  times?: number;
}

/** A fault: an effect plus a selector. */
export type MmioFault = MmioFaultEffect & MmioFaultSelector;

/** Options of {@link faultyMmio}. */
export interface FaultyMmioOptions {
  /** Clock for `delay` faults. Default the system clock; tests pass a `FakeClock`. */
  clock?: Clock;
  /** Faults active from the start. */
  faults?: readonly MmioFault[];
}

/** An {@link Mmio} with faults that can be added and removed at run time. */
export interface FaultyMmio extends Mmio {
  /** Adds a fault (checked: bad bit numbers and negative delays are rejected). */
  inject(fault: MmioFault): void;
  /** Removes every fault and brings a vanished device back. */
  clear(): void;
  /** Accesses altered by a fault so far. */
  readonly hits: number;
  /** True once a `vanish` fault fired. */
  readonly vanished: boolean;
}

interface Active {
  fault: MmioFault;
  seen: number;
  used: number;
}

function checkFault(f: MmioFault): void {
  const bad = (msg: string) => new TpmArgumentError(`invalid MMIO fault: ${msg}`);
  if (f.kind === "flip" && (!Number.isInteger(f.bit) || f.bit < 0 || f.bit > 31)) throw bad(`bit ${f.bit} is not 0–31`);
  if (f.kind === "flip" && f.byte !== undefined && (!Number.isInteger(f.byte) || f.byte < 0)) throw bad(`byte ${f.byte}`);
  if (f.kind === "delay" && (!Number.isFinite(f.ms) || f.ms < 0)) throw bad(`delay ${f.ms} ms`);
  if (f.skip !== undefined && (!Number.isInteger(f.skip) || f.skip < 0)) throw bad(`skip ${f.skip}`);
  if (f.times !== undefined && !(f.times >= 0)) throw bad(`times ${f.times}`);
}

function opsMatch(f: MmioFault, op: MmioOp): boolean {
  const ops = f.ops ?? (f.kind === "stuck" || f.kind === "flip" ? "read" : f.kind === "drop" ? "write" : "any");
  if (ops === "any") return true;
  if (ops === "read") return isRead(op);
  if (ops === "write") return !isRead(op);
  return ops.includes(op);
}

const mask = (w: number) => (w === 4 ? 0xffff_ffff : (1 << (w * 8)) - 1);

/**
 * Wraps `mmio` with injectable faults. With no fault active, accesses pass straight through and a
 * synchronous device stays synchronous; a `delay` fault makes the affected accesses asynchronous.
 * Several faults may match one access: delays add up, then `vanish`, `throw`, `drop`, `stuck` and
 * `flip` apply in that order.
 *
 * The faults are those host drivers have had to survive: stalled status bits and burstCount 0
 * (Linux tpm_tis_core.c bounds every wait_for_tpm_stat() by a timeout), bus bit flips (NCC Group,
 * "TPM Genie", 2018, and the Linux fixes that followed it, which stopped trusting lengths read
 * from the device), short or extra FIFO data (tpm_tis_recv()'s size and dataAvail checks), and
 * reads of all 0 or all 0xFF (a locality not held: tpm_tis_status() "invalid TPM_STS.x").
 *
 * @param mmio - The healthy window.
 * @param options - Clock for delays and initial faults.
 * @returns A {@link FaultyMmio}.
 * @throws {TpmArgumentError} When a fault is malformed (at creation or `inject`).
 * @example
 * ```ts
 * const bus = faultyMmio(device, { clock });
 * bus.inject({ kind: "stuck", value: 0xffff_ffff });           // every read is all ones
 * bus.inject({ kind: "flip", offset: 0x18, bit: 4, times: 1 }); // one glitch on STS.dataAvail
 * bus.inject({ kind: "vanish", skip: 40, ops: "any" });         // gone after 40 accesses
 * ```
 */
export function faultyMmio(mmio: Mmio, options: FaultyMmioOptions = {}): FaultyMmio {
  const clock = options.clock ?? systemClock;
  let active: Active[] = [];
  let hits = 0;
  let vanishValue: number | undefined;

  const inject = (fault: MmioFault) => {
    checkFault(fault);
    active.push({ fault, seen: 0, used: 0 });
  };
  for (const f of options.faults ?? []) inject(f);

  /** Faults that fire for this access (counters advance at issue time, in issue order). */
  function select(a: MmioAccess): MmioFault[] {
    const out: MmioFault[] = [];
    for (const s of active) {
      const f = s.fault;
      if (!opsMatch(f, a.op)) continue;
      if (f.offset !== undefined && f.offset !== a.offset) continue;
      if (f.match && !f.match(a)) continue;
      s.seen++;
      if (s.seen <= (f.skip ?? 0)) continue;
      if (s.used >= (f.times ?? Infinity)) continue;
      s.used++;
      out.push(f);
    }
    return out;
  }

  function run<T>(a: MmioAccess, perform: (fs: MmioFault[]) => MaybePromise<T>, vanishResult: () => T): MaybePromise<T> {
    const fs = vanishValue === undefined ? select(a) : [];
    if (fs.length > 0) hits++;
    const go = (): MaybePromise<T> => {
      const v = fs.find((f) => f.kind === "vanish");
      if (v && v.kind === "vanish" && vanishValue === undefined) vanishValue = v.value ?? 0xffff_ffff;
      if (vanishValue !== undefined) return vanishResult();
      if (fs.some((f) => f.kind === "throw")) {
        throw new TpmTransportError(`injected MMIO fault: ${a.op} at 0x${a.offset.toString(16)} failed`, { errno: "EIO" });
      }
      return perform(fs);
    };
    const delay = fs.reduce((ms, f) => ms + (f.kind === "delay" ? f.ms : 0), 0);
    return delay > 0 ? clock.sleep(delay).then(go) : go();
  }

  function regRead(op: "read8" | "read16" | "read32", offset: number): MaybePromise<number> {
    const w = widthOf(op);
    return run<number>(
      { op, offset },
      (fs) =>
        mapMaybe(mmio[op](offset), (v) => {
          for (const f of fs) {
            if (f.kind === "stuck") v = f.value & mask(w);
            else if (f.kind === "flip" && f.bit < w * 8) v = (v ^ (1 << f.bit)) & mask(w);
          }
          return v >>> 0;
        }),
      () => (vanishValue! & mask(w)) >>> 0,
    );
  }

  function regWrite(op: "write8" | "write16" | "write32", offset: number, value: number): MaybePromise<void> {
    const w = widthOf(op);
    return run<void>(
      { op, offset, value },
      (fs) => {
        if (fs.some((f) => f.kind === "drop")) return undefined;
        let v = value;
        for (const f of fs) if (f.kind === "flip" && f.bit < w * 8) v = (v ^ (1 << f.bit)) & mask(w);
        return mmio[op](offset, v >>> 0);
      },
      () => undefined,
    );
  }

  return {
    get hits() {
      return hits;
    },
    get vanished() {
      return vanishValue !== undefined;
    },
    inject,
    clear() {
      active = [];
      vanishValue = undefined;
    },
    read8: (o) => regRead("read8", o),
    read16: (o) => regRead("read16", o),
    read32: (o) => regRead("read32", o),
    write8: (o, v) => regWrite("write8", o, v),
    write16: (o, v) => regWrite("write16", o, v),
    write32: (o, v) => regWrite("write32", o, v),
    readFifo: (offset, length) =>
      run<Uint8Array>(
        { op: "readFifo", offset, length },
        (fs) =>
          mapMaybe(mmio.readFifo(offset, length), (d) => {
            if (fs.length === 0) return d;
            const out = d.slice();
            for (const f of fs) {
              if (f.kind === "stuck") out.fill(f.value & 0xff);
              else if (f.kind === "flip" && (f.byte ?? 0) < out.length) out[f.byte ?? 0]! ^= 1 << (f.bit & 7);
            }
            return out;
          }),
        () => new Uint8Array(Number.isInteger(length) && length > 0 ? length : 0).fill(vanishValue! & 0xff),
      ),
    writeFifo: (offset, data) =>
      run<void>(
        { op: "writeFifo", offset, data },
        (fs) => {
          if (fs.some((f) => f.kind === "drop")) return undefined;
          let out = data;
          for (const f of fs) {
            if (f.kind === "flip" && (f.byte ?? 0) < data.length) {
              if (out === data) out = data.slice();
              out[f.byte ?? 0]! ^= 1 << (f.bit & 7);
            }
          }
          return mmio.writeFifo(offset, out);
        },
        () => undefined,
      ),
  };
}
