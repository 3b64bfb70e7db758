/**
 * A tiny scripted {@link TpmBackend} for tests of device models and drivers: it answers
 * GetRandom, GetCapability and everything else with well-formed TPM 2.0 responses, can take
 * time on a clock, fail to start, hang, or run a handler of your own. Not a TPM: use SoftTpm for
 * real command semantics.
 *
 * @packageDocumentation
 */
import type { TpmBackend } from "../core/transport.js";
import type { Clock } from "../core/clock.js";
import { TpmStateError } from "../errors/index.js";
import { TPM_CAP, TPM_CC, TPM_RC, TPM_ST } from "../wire/constants.js";


/** Options of {@link FakeTpmBackend}. */
export interface FakeTpmBackendOptions {
  /** Clock for `executionMs`. Needed when `executionMs` > 0. */
  clock?: Clock;
  /** Time each command takes on the clock. Default 0 (answers after a microtask). */
  executionMs?: number;
  /** `start()` rejects with this error (the emulator failed to start). */
  failStart?: unknown;
  /** Commands never complete (the emulator hangs). */
  hang?: boolean;
  /** Custom answer; return undefined to fall back to the built-in answers. */
  handler?: (command: Uint8Array, locality: number) => Uint8Array | undefined;
}

/**
 * A scripted TPM 2.0 backend. Built-in answers (TPM 2.0 Part 3): GetRandom(n) returns n bytes
 * counting up from a running counter; GetCapability returns one tagged property per request
 * (value 0x6E, swtpm 0.7.1's TOTAL_COMMANDS, byte-identical to its reply to the kernel's probe); every other command returns a 10-byte TPM_RC_SUCCESS response.
 *
 * @example
 * ```ts
 * const backend = new FakeTpmBackend({ clock, executionMs: 5 });
 * const device = new TisDevice({ backend, clock });
 * ```
 */
export class FakeTpmBackend implements TpmBackend {
  /** Commands executed, with their locality. */
  readonly commands: { command: Uint8Array; locality: number }[] = [];
  /** Times `cancel()` was called. */
  cancels = 0;
  /** Times `start()` was called. */
  starts = 0;
  /** See {@link FakeTpmBackendOptions}; may be changed at any time. */
  options: FakeTpmBackendOptions;
  #counter = 0;

  /** @param options - Timing and failure behaviour. */
  constructor(options: FakeTpmBackendOptions = {}) {
    this.options = options;
  }

  /**
   * Starts the backend.
   *
   * @returns Resolves, or rejects with `options.failStart`.
   * @throws Never synchronously.
   */
  async start(): Promise<void> {
    this.starts++;
    if (this.options.failStart !== undefined) throw this.options.failStart;
  }

  /**
   * Runs one command.
   *
   * @param command - Command bytes.
   * @param locality - Locality it was sent at.
   * @param signal - Aborted when the device forgets the command.
   * @returns The response.
   * @throws {TpmStateError} When aborted while hanging or waiting.
   */
  async execute(command: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
    this.commands.push({ command: command.slice(), locality });
    const o = this.options;
    if (o.hang) {
      await new Promise<never>((_, reject) => signal?.addEventListener("abort", () => reject(new TpmStateError("aborted")), { once: true }));
    }
    if ((o.executionMs ?? 0) > 0) {
      if (!o.clock) throw new TpmStateError("FakeTpmBackend: executionMs needs a clock");
      await o.clock.sleep(o.executionMs!, signal);
    }
    return o.handler?.(command, locality) ?? this.#answer(command);
  }

  /** Counts cancellations. */
  cancel(): void {
    this.cancels++;
  }

  #answer(command: Uint8Array): Uint8Array {
    const v = new DataView(command.buffer, command.byteOffset, command.byteLength);
    const cc = command.length >= 10 ? v.getUint32(6) : 0;
    if (cc === TPM_CC.GetRandom && command.length >= 12) {
      const n = Math.min(v.getUint16(10), 64);
      const out = new Uint8Array(12 + n);
      for (let i = 0; i < n; i++) out[12 + i] = this.#counter++ & 0xff;
      return frame(out, TPM_RC.SUCCESS, (w) => w.setUint16(10, n));
    }
    if (cc === TPM_CC.GetCapability && command.length >= 22) {
      const out = new Uint8Array(10 + 1 + 4 + 4 + 8);
      const cap = v.getUint32(10);
      const prop = v.getUint32(14);
      return frame(out, TPM_RC.SUCCESS, (w) => {
        w.setUint8(10, 1); // moreData = YES, as swtpm 0.7.1 answers (captured, see fake-backend.test.ts)
        w.setUint32(11, cap === TPM_CAP.TPM_PROPERTIES ? cap : TPM_CAP.TPM_PROPERTIES);
        w.setUint32(15, 1);
        w.setUint32(19, prop);
        w.setUint32(23, 0x6e);
      });
    }
    return frame(new Uint8Array(10), TPM_RC.SUCCESS);
  }
}

function frame(out: Uint8Array, rc: number, fill?: (w: DataView) => void): Uint8Array {
  const w = new DataView(out.buffer);
  w.setUint16(0, TPM_ST.NO_SESSIONS);
  w.setUint32(2, out.length);
  w.setUint32(6, rc);
  fill?.(w);
  return out;
}
