/**
 * The scripted {@link TpmBackend} for tests of device models, drivers, servers and socket
 * transports: it answers GetRandom, GetCapability and everything else with well-formed TPM 2.0
 * responses, and can take time on a clock, fail to start, reject, hang, never settle, run a hook
 * before each command or a handler of your own. Not a TPM: use SoftTpm for real command semantics.
 * Also the command builders tests need (`getRandomCommand`, `paddedCommand`) and the answer the
 * backend gives by default (`fakeTpmResponse`).
 *
 * @packageDocumentation
 */
import type { TpmBackend } from "../core/transport.js";
import type { Clock } from "../core/clock.js";
import { TpmAbortError, TpmStateError } from "../errors/index.js";
import { TPM_CAP, TPM_CC, TPM_PT, TPM_RC, TPM_ST } from "../wire/constants.js";
import { errorResponse, readU32be } from "../wire/bytes.js";

/**
 * How {@link FakeTpmBackend.execute} behaves.
 *
 * - `"ok"`: answers (after `executionMs` on the clock, when set).
 * - `"reject"`: rejects with `Error("backend exploded")` (the emulator failed the command).
 * - `"hang"`: never answers; rejects once the execute signal aborts.
 * - `"dead"`: never settles at all, whatever the signal says.
 * - `"slow"`: answers after `slowMs` on the clock, ignoring the signal and `cancel()`.
 */
export type FakeTpmBackendMode = "ok" | "reject" | "hang" | "dead" | "slow";

/**
 * Which built-in answers the backend gives.
 *
 * - `"probe"` (default): GetRandom(n) returns min(n, 64) bytes ({@link FakeTpmRandom}, default
 *   `"stream"`); GetCapability returns one tagged property per request (value 0x6E, moreData YES:
 *   swtpm 0.7.1's reply to the Linux kernel's tpm2_probe(), measured); every other command a
 *   10-byte TPM_RC_SUCCESS response. With `random: "repeat"` every answer is
 *   {@link fakeTpmResponse}'s.
 * - `"tools"`: enough for tpm2-tools over a socket: Startup succeeds; GetRandom(n) returns
 *   min(n, 64) bytes (default `"step"`); GetCapability(TPM_PROPERTIES) answers from a small fixed
 *   table; every other command gets TPM_RC_COMMAND_CODE.
 */
export type FakeTpmAnswers = "probe" | "tools";

/**
 * The bytes GetRandom answers.
 *
 * - `"stream"`: one running byte counter: 0, 1, 2, ... continuing across answers.
 * - `"step"`: the k-th answer (from 0) is `(i + k) & 0xff`, so consecutive answers differ by one.
 * - `"repeat"`: every answer is 0, 1, 2, ..., the same for the same request.
 */
export type FakeTpmRandom = "stream" | "step" | "repeat";

/** One command the backend saw. */
export interface FakeTpmCall {
  /** The command bytes (a copy). */
  command: Uint8Array;
  /** Locality it was sent at. */
  locality: number;
  /** Its command code (0 when shorter than a header). */
  code: number;
}

/** Options of {@link FakeTpmBackend}. All of them may be changed at any time through `options`. */
export interface FakeTpmBackendOptions {
  /** Clock for `executionMs` and mode `"slow"`. Needed when either is used. */
  clock?: Clock;
  /** Time each command takes on the clock in mode `"ok"`. Default 0 (answers after a microtask). */
  executionMs?: number;
  /** `start()` rejects with this error (the emulator failed to start). */
  failStart?: unknown;
  /**
   * The backend's `start()`: a hook of your own, or `false` for a backend without `start()` (a
   * device model in front of it is running at once). Read by the constructor only. Default: a
   * `start()` that counts and rejects with `failStart` when set.
   */
  start?: false | (() => Promise<void>);
  /** See {@link FakeTpmBackendMode}. Default `"ok"`. */
  mode?: FakeTpmBackendMode;
  /** Commands never complete (the emulator hangs): the same as `mode: "hang"`. */
  hang?: boolean;
  /** How long a command takes in mode `"slow"`, in ms on the clock. Default 250. */
  slowMs?: number;
  /** See {@link FakeTpmAnswers}. Default `"probe"`. */
  answers?: FakeTpmAnswers;
  /** See {@link FakeTpmRandom}. Default `"stream"` with answers `"probe"`, `"step"` with `"tools"`. */
  random?: FakeTpmRandom;
  /** Custom answer; return undefined to fall back to the built-in answers. */
  handler?: (command: Uint8Array, locality: number) => Uint8Array | undefined;
  /**
   * Runs before each command is answered (mode `"ok"`); may delay or throw. While it waits,
   * `cancel()` ends the command with TPM_RC_CANCELED, as a TPM that honours a cancel does.
   */
  before?: (call: FakeTpmCall, signal?: AbortSignal) => Promise<void> | void;
}

/** GetRandom answers at most this many bytes: the largest digest (TPM 2.0 Part 3 §16.1, SHA-512). */
const MAX_RANDOM = 64;

/** The property table of the `"tools"` answers (TPM 2.0 Part 2 §6.13). */
const TOOLS_PROPERTIES: ReadonlyArray<readonly [number, number]> = [
  [TPM_PT.FAMILY_INDICATOR, 0x322e3000],
  [TPM_PT.MANUFACTURER, 0x54504d4b],
  [TPM_PT.INPUT_BUFFER, 1024],
  [TPM_PT.PCR_COUNT, 24],
  [TPM_PT.MAX_COMMAND_SIZE, 4096],
  [TPM_PT.MAX_RESPONSE_SIZE, 4096],
  [TPM_PT.MAX_DIGEST, 64],
];

/**
 * A scripted TPM 2.0 backend: records every command, answers as {@link FakeTpmAnswers} says,
 * and misbehaves as {@link FakeTpmBackendMode} says.
 *
 * @example
 * ```ts
 * const backend = new FakeTpmBackend({ clock, executionMs: 5 });
 * const device = new TisDevice({ backend, clock });
 * backend.options.mode = "hang"; // the next command never completes
 * ```
 */
export class FakeTpmBackend implements TpmBackend {
  /** Commands executed, in order. */
  readonly commands: FakeTpmCall[] = [];
  /** Times `cancel()` was called. */
  cancels = 0;
  /** Times `start()` was called. */
  starts = 0;
  /** Commands running now. */
  inFlight = 0;
  /** The most commands that ever ran at once (1 when callers serialize). */
  maxInFlight = 0;
  /** See {@link FakeTpmBackendOptions}; may be changed at any time. */
  options: FakeTpmBackendOptions;
  /**
   * Starts the backend: resolves, or rejects with `options.failStart` (or runs the `start` hook).
   * Absent when the backend was built with `start: false`; may be replaced.
   */
  start?: () => Promise<void>;
  /** GetRandom answers given. */
  #randoms = 0;
  /** The next byte of the `"stream"` counter. */
  #stream = 0;
  #cancelWaiters: Array<() => void> = [];

  /** @param options - Timing, failure behaviour and answers. */
  constructor(options: FakeTpmBackendOptions = {}) {
    this.options = options;
    const hook = options.start;
    if (hook !== false) {
      this.start = async () => {
        this.starts++;
        if (hook) return hook();
        if (this.options.failStart !== undefined) throw this.options.failStart;
      };
    }
  }

  /**
   * Runs one command.
   *
   * @param command - Command bytes.
   * @param locality - Locality it was sent at.
   * @param signal - Aborted when the caller forgets the command.
   * @returns The response.
   * @throws {TpmAbortError} When the signal had already fired.
   * @throws {TpmStateError} When aborted while hanging or waiting, or `executionMs`/`"slow"` lack a clock.
   */
  execute(command: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    const call: FakeTpmCall = { command: command.slice(), locality, code: command.length >= 10 ? readU32be(command, 6) : 0 };
    this.commands.push(call);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return this.#run(call, signal).finally(() => {
      this.inFlight--;
    });
  }

  async #run(call: FakeTpmCall, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const { command, locality } = call;
    {
      const o = this.options;
      const mode = o.mode ?? (o.hang ? "hang" : "ok");
      switch (mode) {
        case "reject":
          throw new Error("backend exploded");
        case "dead":
          return await new Promise<never>(() => {});
        case "hang":
          return await new Promise<never>((_, reject) => {
            if (signal?.aborted) reject(new TpmStateError("aborted"));
            signal?.addEventListener("abort", () => reject(new TpmStateError("aborted")), { once: true });
          });
        case "slow":
          if (!o.clock) throw new TpmStateError("FakeTpmBackend: mode \"slow\" needs a clock");
          await o.clock.sleep(o.slowMs ?? 250);
          return this.#answer(command, locality);
      }
      if (o.before) {
        const cancelled = new Promise<"cancelled">((resolve) => this.#cancelWaiters.push(() => resolve("cancelled")));
        const r = await Promise.race([Promise.resolve(o.before(call, signal)).then(() => "done" as const), cancelled]);
        if (r === "cancelled") return errorResponse(TPM_RC.CANCELED);
      }
      if (signal?.aborted) throw new TpmAbortError();
      if ((o.executionMs ?? 0) > 0) {
        if (!o.clock) throw new TpmStateError("FakeTpmBackend: executionMs needs a clock");
        await o.clock.sleep(o.executionMs!, signal);
      }
      return this.#answer(command, locality);
    }
  }

  /** Counts cancellations and ends a command waiting in the `before` hook with TPM_RC_CANCELED. */
  cancel(): void {
    this.cancels++;
    const w = this.#cancelWaiters;
    this.#cancelWaiters = [];
    for (const f of w) f();
  }

  #answer(command: Uint8Array, locality: number): Uint8Array {
    const custom = this.options.handler?.(command, locality);
    if (custom) return custom;
    const tools = this.options.answers === "tools";
    const cc = command.length >= 10 ? readU32be(command, 6) : 0;
    const v = new DataView(command.buffer, command.byteOffset, command.byteLength);
    if (cc === TPM_CC.GetRandom && command.length >= 12) {
      const random = this.options.random ?? (tools ? "step" : "stream");
      const n = Math.min(v.getUint16(10), MAX_RANDOM);
      const first = random === "stream" ? this.#stream : random === "step" ? this.#randoms : 0;
      this.#randoms++;
      this.#stream += n;
      return frame(new Uint8Array(12 + n), TPM_RC.SUCCESS, (w, out) => {
        w.setUint16(10, n);
        for (let i = 0; i < n; i++) out[12 + i] = (i + first) & 0xff;
      });
    }
    if (!tools) return fakeTpmResponse(command);
    switch (cc) {
      case TPM_CC.Startup:
        return errorResponse(TPM_RC.SUCCESS);
      case TPM_CC.GetRandom:
        return errorResponse(TPM_RC.COMMAND_SIZE);
      case TPM_CC.GetCapability: {
        if (command.length < 22) return errorResponse(TPM_RC.COMMAND_SIZE);
        const cap = v.getUint32(10);
        const first = v.getUint32(14);
        const count = v.getUint32(18);
        if (cap !== TPM_CAP.TPM_PROPERTIES) return errorResponse(TPM_RC.VALUE | TPM_RC.P | TPM_RC["1"]);
        const sel = TOOLS_PROPERTIES.filter(([p]) => p >= first).slice(0, count);
        return frame(new Uint8Array(10 + 1 + 4 + 4 + 8 * sel.length), TPM_RC.SUCCESS, (w) => {
          w.setUint8(10, 0);
          w.setUint32(11, TPM_CAP.TPM_PROPERTIES);
          w.setUint32(15, sel.length);
          sel.forEach(([p, val], i) => {
            w.setUint32(19 + 8 * i, p);
            w.setUint32(23 + 8 * i, val);
          });
        });
      }
      default:
        return errorResponse(TPM_RC.COMMAND_CODE);
    }
  }
}

/**
 * The answer a {@link FakeTpmBackend} gives by default (answers `"probe"`): GetRandom(n) → min(n,
 * 64) bytes 0, 1, 2, ...; GetCapability → one tagged property (the one asked for, value 0x6E,
 * moreData YES, as swtpm 0.7.1 answers the Linux kernel's tpm2_probe(), measured); anything else
 * → a bare TPM_RC_SUCCESS response. A pure function: the same command, the same bytes.
 *
 * @param command - Command bytes.
 * @returns The response bytes.
 */
export function fakeTpmResponse(command: Uint8Array): Uint8Array {
  const v = new DataView(command.buffer, command.byteOffset, command.byteLength);
  const cc = command.length >= 10 ? v.getUint32(6) : 0;
  if (cc === TPM_CC.GetRandom && command.length >= 12) {
    const n = Math.min(v.getUint16(10), MAX_RANDOM);
    return frame(new Uint8Array(12 + n), TPM_RC.SUCCESS, (w, out) => {
      w.setUint16(10, n);
      for (let i = 0; i < n; i++) out[12 + i] = i & 0xff;
    });
  }
  if (cc === TPM_CC.GetCapability && command.length >= 22) {
    const cap = v.getUint32(10);
    const prop = v.getUint32(14);
    return frame(new Uint8Array(10 + 1 + 4 + 4 + 8), TPM_RC.SUCCESS, (w) => {
      w.setUint8(10, 1); // moreData = YES, as swtpm 0.7.1 answers (measured, see fake-backend.test.ts)
      w.setUint32(11, cap === TPM_CAP.TPM_PROPERTIES ? cap : TPM_CAP.TPM_PROPERTIES);
      w.setUint32(15, 1);
      w.setUint32(19, prop);
      w.setUint32(23, 0x6e);
    });
  }
  return errorResponse(TPM_RC.SUCCESS);
}

/**
 * TPM2_GetRandom(bytesRequested) command bytes (TPM 2.0 Part 3 §16.1).
 *
 * @param n - bytesRequested, 0–65535.
 * @returns The 12-byte command.
 */
export function getRandomCommand(n: number): Uint8Array {
  const c = new Uint8Array(12);
  const dv = new DataView(c.buffer);
  dv.setUint16(0, TPM_ST.NO_SESSIONS);
  dv.setUint32(2, 12);
  dv.setUint32(6, TPM_CC.GetRandom);
  dv.setUint16(10, n);
  return c;
}

/**
 * A command of exactly `size` bytes: a TPM header with the GetRandom code and its size field
 * saying `size`, then filler bytes `i & 0xff`.
 *
 * @param size - Total length, at least 10.
 * @returns The command.
 */
export function paddedCommand(size: number): Uint8Array {
  const c = new Uint8Array(size);
  const dv = new DataView(c.buffer);
  dv.setUint16(0, TPM_ST.NO_SESSIONS);
  dv.setUint32(2, size);
  dv.setUint32(6, TPM_CC.GetRandom);
  for (let i = 10; i < size; i++) c[i] = i & 0xff;
  return c;
}

function frame(out: Uint8Array, rc: number, fill?: (w: DataView, out: Uint8Array) => void): Uint8Array {
  const w = new DataView(out.buffer);
  w.setUint16(0, TPM_ST.NO_SESSIONS);
  w.setUint32(2, out.length);
  w.setUint32(6, rc);
  fill?.(w, out);
  return out;
}
