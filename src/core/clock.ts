/**
 * Injected time. Everything in tpmkit that waits asks a {@link Clock}, so tests run polling loops
 * and timeouts on a {@link FakeClock} with no real sleeps (STYLE: time is injected).
 *
 * @packageDocumentation
 */
import { TpmAbortError, abortErrorFrom } from "../errors/index.js";

/** A cancellable one-shot timer. */
export interface TimerHandle {
  clear(): void;
}

/** The source of time and of delays. */
export interface Clock {
  /** Milliseconds, monotonic, fractional allowed. */
  now(): number;
  /** Resolves after `ms`; rejects with an AbortError when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` after `ms` unless cleared. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

/**
 * Longest delay one `setTimeout` can take (2^31 - 1 ms, about 24.8 days): Node clamps anything
 * longer to 1 ms with a TimeoutOverflowWarning, so a longer wait is a chain of such timers.
 */
const MAX_TIMEOUT_MS = 0x7fffffff;

/** A timer that fires after `ms`, however long (chained past `MAX_TIMEOUT_MS`); `unref`: it does not keep the process alive. */
function longTimer(ms: number, fn: () => void, unref: boolean): { clear(): void } {
  let t: ReturnType<typeof setTimeout>;
  const arm = (left: number) => {
    const step = Math.min(Math.max(0, left), MAX_TIMEOUT_MS);
    t = setTimeout(() => (left > MAX_TIMEOUT_MS ? arm(left - MAX_TIMEOUT_MS) : fn()), step);
    if (unref) (t as { unref?: () => void }).unref?.();
  };
  arm(ms);
  return { clear: () => clearTimeout(t) };
}

/** The real clock: `performance.now()`, `setTimeout` for sleeps and unref'd `setTimeout` for timers (chained for delays past 2^31 - 1 ms). */
export const systemClock: Clock = {
  now: () => performance.now(),
  sleep(ms, signal) {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortErrorFrom(signal));
      const t = longTimer(ms, done, false);
      function done() {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }
      function onAbort() {
        t.clear();
        reject(abortErrorFrom(signal!));
      }
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
  setTimer(ms, fn) {
    return longTimer(ms, fn, true);
  },
};

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
  cleared: boolean;
}

/**
 * A virtual clock for tests. Time moves only when told: {@link FakeClock.advance} runs every timer
 * that falls due, in order. With `{ auto: true }` the clock moves itself: whenever a sleep or
 * timer is pending and the microtask queue has drained, it jumps to the next due timer, so a
 * polling loop that would take 750 ms of real time finishes at once while `now()` reads 750.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: FakeTimer[] = [];
  #auto: boolean;
  #scheduled = false;

  constructor(options: { start?: number; auto?: boolean } = {}) {
    this.#now = options.start ?? 0;
    this.#auto = options.auto ?? false;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const t: FakeTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cleared: false };
    this.#timers.push(t);
    this.#kick();
    return {
      clear: () => {
        t.cleared = true;
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortErrorFrom(signal));
      const onAbort = () => {
        h.clear();
        reject(signal ? abortErrorFrom(signal) : new TpmAbortError());
      };
      const h = this.setTimer(ms, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Number of timers not yet fired or cleared. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cleared).length;
  }

  /** Moves time forward by `ms`, firing due timers in order (awaiting microtasks between them). */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await flushMicrotasks();
      const next = this.#nextDue();
      if (!next || next.at > end) break;
      this.#fire(next);
    }
    this.#now = Math.max(this.#now, end);
    await flushMicrotasks();
  }

  /** Turns automatic advancing on or off. */
  setAuto(auto: boolean): void {
    this.#auto = auto;
    this.#kick();
  }

  #nextDue(): FakeTimer | undefined {
    this.#timers = this.#timers.filter((t) => !t.cleared);
    let best: FakeTimer | undefined;
    for (const t of this.#timers) if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    return best;
  }

  #fire(t: FakeTimer): void {
    t.cleared = true;
    if (t.at > this.#now) this.#now = t.at;
    t.fn();
  }

  #kick(): void {
    if (!this.#auto || this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate runs after the microtask queue drained: everything that could still arm an
    // earlier timer has run by then.
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#auto) return;
      const next = this.#nextDue();
      if (!next) return;
      this.#fire(next);
      this.#kick();
    });
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
