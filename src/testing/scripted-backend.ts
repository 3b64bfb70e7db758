/**
 * A tiny scripted TPM for exercising socket transports and servers without a real TPM: it
 * answers TPM2_Startup, TPM2_GetRandom (deterministic bytes), TPM2_GetCapability for
 * TPM_PROPERTIES (a few fixed properties, enough for tpm2-tools) and TPM_RC_COMMAND_CODE for
 * everything else. Not a TPM model: use SoftTpm for that.
 *
 * @packageDocumentation
 */
import { TpmAbortError } from "../errors/index.js";
import type { TpmBackend } from "../core/transport.js";
import { TpmReader, TpmWriter, readHeader } from "../wire/buffer.js";
import { TPM_CAP, TPM_CC, TPM_PT, TPM_RC, TPM_ST } from "../wire/constants.js";

/** One command the scripted backend saw. */
export interface ScriptedCall {
  code: number;
  locality: number;
  bytes: Uint8Array;
}

/** Options of {@link scriptedBackend}. */
export interface ScriptedBackendOptions {
  /** Called before each command; may delay or throw. Receives the signal when there is one. */
  before?(call: ScriptedCall, signal?: AbortSignal): Promise<void> | void;
}

/** A {@link TpmBackend} that records calls; `cancelled` counts cancel() calls. */
export interface ScriptedBackend extends TpmBackend {
  readonly calls: ScriptedCall[];
  readonly cancelled: number;
  /** Commands running at once, at most (1 when callers serialize). */
  readonly maxConcurrent: number;
}

function response(rc: number, body?: (w: TpmWriter) => void): Uint8Array {
  const w = new TpmWriter();
  w.u16(TPM_ST.NO_SESSIONS).u32(0).u32(rc);
  body?.(w);
  w.patchU32(2, w.length);
  return w.finish();
}

/**
 * Builds the scripted backend. GetRandom(n) returns bytes `(i + counter) & 0xff`, where the
 * counter grows by one per GetRandom, so consecutive answers differ.
 *
 * @param options - an optional hook run before each command
 * @returns the backend
 *
 * @example
 * ```ts
 * const backend = scriptedBackend();
 * const server = await serveMssim({ chip: { transmit: (c, o) => backend.execute(c, o?.locality ?? 0, o?.signal) } });
 * ```
 */
export function scriptedBackend(options: ScriptedBackendOptions = {}): ScriptedBackend {
  const calls: ScriptedCall[] = [];
  let counter = 0;
  let cancelled = 0;
  let running = 0;
  let maxConcurrent = 0;
  let cancelWaiters: Array<() => void> = [];
  const backend: ScriptedBackend = {
    get calls() {
      return calls;
    },
    get cancelled() {
      return cancelled;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    cancel() {
      cancelled++;
      const w = cancelWaiters;
      cancelWaiters = [];
      for (const f of w) f();
    },
    async execute(command: Uint8Array, locality: number, signal?: AbortSignal): Promise<Uint8Array> {
      running++;
      maxConcurrent = Math.max(maxConcurrent, running);
      try {
        const h = readHeader(command, true);
        const call = { code: h.code, locality, bytes: command.slice() };
        calls.push(call);
        if (options.before) {
          // A hook that waits can be released by cancel(): the command then ends TPM_RC_CANCELED.
          const cancelledNow = new Promise<"cancelled">((resolve) => cancelWaiters.push(() => resolve("cancelled")));
          const r = await Promise.race([Promise.resolve(options.before(call, signal)).then(() => "done" as const), cancelledNow]);
          if (r === "cancelled") return response(TPM_RC.CANCELED);
        }
        if (signal?.aborted) throw new TpmAbortError();
        const rd = new TpmReader(command, 10);
        switch (h.code) {
          case TPM_CC.Startup:
            return response(TPM_RC.SUCCESS);
          case TPM_CC.GetRandom: {
            const n = Math.min(rd.u16("bytesRequested"), 64);
            const base = counter++;
            return response(TPM_RC.SUCCESS, (w) => {
              w.u16(n);
              for (let i = 0; i < n; i++) w.u8((i + base) & 0xff);
            });
          }
          case TPM_CC.GetCapability: {
            const cap = rd.u32("capability");
            const first = rd.u32("property");
            const count = rd.u32("propertyCount");
            if (cap !== TPM_CAP.TPM_PROPERTIES) return response(TPM_RC.VALUE | TPM_RC.P | TPM_RC["1"]);
            const props: Array<[number, number]> = [
              [TPM_PT.FAMILY_INDICATOR, 0x322e3000],
              [TPM_PT.MANUFACTURER, 0x54504d4b],
              [TPM_PT.INPUT_BUFFER, 1024],
              [TPM_PT.PCR_COUNT, 24],
              [TPM_PT.MAX_COMMAND_SIZE, 4096],
              [TPM_PT.MAX_RESPONSE_SIZE, 4096],
              [TPM_PT.MAX_DIGEST, 64],
            ];
            const sel = props.filter(([p]) => p >= first).slice(0, count);
            return response(TPM_RC.SUCCESS, (w) => {
              w.u8(0).u32(TPM_CAP.TPM_PROPERTIES).u32(sel.length);
              for (const [p, v] of sel) w.u32(p).u32(v);
            });
          }
          default:
            return response(TPM_RC.COMMAND_CODE);
        }
      } finally {
        running--;
      }
    },
  };
  return backend;
}
