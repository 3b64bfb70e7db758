/**
 * The kernel's supplicant queue (Linux drivers/tee/optee/supp.c): requests from the secure world go
 * to the one attached tee-supplicant; without one, an in-kernel client's request fails at once
 * (supp_nowait) and a user client's waits for a supplicant (killable: an interrupted wait answers
 * TEEC_ERROR_COMMUNICATION). When the supplicant goes away (optee_supp_release) every request it
 * was serving completes with COMMUNICATION.
 *
 * @packageDocumentation
 */
import { TeeError } from "../../errors/index.js";
import { TEE_ORIGIN, TEE_RESULT } from "../../bus/tee/constants.js";
import type { Clock } from "../../core/clock.js";
import type { TeeClientKind } from "../../bus/tee/client.js";
import type { TeeRpcReply, TeeRpcRequest, TeeRpcServer } from "../../bus/tee/rpc.js";

/** The calling client of one TEE call, as the RPCs made for it see it. */
export interface CallContext {
  client: TeeClientKind;
  signal: AbortSignal | undefined;
  /** True while an RPC for this call waits for a supplicant or its answer. */
  inRpc: boolean;
}

const COMM: TeeRpcReply = Object.freeze({ result: TEE_RESULT.COMMUNICATION }) as TeeRpcReply;

/** @internal The supplicant port's queue. */
export class SuppQueue {
  #server: TeeRpcServer | undefined;
  #ever = false;
  #waiters = new Set<() => void>();
  #inflight = new Set<(r: TeeRpcReply) => void>();
  #closed = false;
  readonly #clock: Clock;
  readonly #waitMs: number;
  readonly #onChange: () => void;

  constructor(clock: Clock, waitMs: number, onChange: () => void) {
    this.#clock = clock;
    this.#waitMs = waitMs;
    this.#onChange = onChange;
  }

  get attached(): boolean {
    return this.#server !== undefined;
  }
  get everAttached(): boolean {
    return this.#ever;
  }

  attach(server: TeeRpcServer): () => void {
    if (this.#closed) throw new TeeError("the TEE partition is gone: no supplicant can attach", TEE_RESULT.COMMUNICATION, TEE_ORIGIN.COMMS);
    if (!server || typeof server.handle !== "function") throw new TeeError("attach needs a TeeRpcServer (an object with handle())", TEE_RESULT.BAD_PARAMETERS, TEE_ORIGIN.API);
    // Only one process may open /dev/teepriv0 (optee_supp: EBUSY).
    if (this.#server) throw new TeeError("a supplicant is already attached (teepriv is busy)", TEE_RESULT.BUSY, TEE_ORIGIN.COMMS);
    this.#server = server;
    this.#ever = true;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
    this.#onChange();
    let done = false;
    return () => {
      if (done || this.#server !== server) return;
      done = true;
      this.#drop();
      this.#onChange();
    };
  }

  /** Detaches and ends everything for good (partition destroyed). */
  close(): void {
    this.#closed = true;
    const had = this.#server !== undefined;
    this.#drop();
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
    if (had) this.#onChange();
  }

  #drop(): void {
    this.#server = undefined;
    const inflight = [...this.#inflight];
    this.#inflight.clear();
    for (const f of inflight) f(COMM);
  }

  /** One RPC for `call`. Never rejects: failures are replies with a result code. */
  async request(req: TeeRpcRequest, call: CallContext): Promise<TeeRpcReply> {
    call.inRpc = true;
    try {
      if (!this.#server) {
        if (this.#closed || call.client === "kernel") return COMM;
        if (!(await this.#waitAttach(call.signal))) return COMM;
      }
      const server = this.#server!;
      return await new Promise<TeeRpcReply>((resolve) => {
        let settled = false;
        const finish = (r: TeeRpcReply) => {
          if (settled) return;
          settled = true;
          this.#inflight.delete(finish);
          call.signal?.removeEventListener("abort", onAbort);
          resolve(r);
        };
        const onAbort = () => finish(COMM);
        this.#inflight.add(finish);
        if (call.signal?.aborted) return finish(COMM);
        call.signal?.addEventListener("abort", onAbort, { once: true });
        let p: Promise<TeeRpcReply>;
        try {
          p = Promise.resolve(server.handle(req, call.signal));
        } catch {
          return finish(COMM);
        }
        p.then(
          (r) => finish(r && typeof r.result === "number" ? r : COMM),
          () => finish(COMM),
        );
      });
    } finally {
      call.inRpc = false;
    }
  }

  #waitAttach(signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      if (signal?.aborted) return resolve(false);
      let timer: { clear(): void } | undefined;
      const done = (ok: boolean) => {
        this.#waiters.delete(onAttach);
        signal?.removeEventListener("abort", onAbort);
        timer?.clear();
        resolve(ok);
      };
      const onAttach = () => done(this.#server !== undefined);
      const onAbort = () => done(false);
      this.#waiters.add(onAttach);
      signal?.addEventListener("abort", onAbort, { once: true });
      timer = Number.isFinite(this.#waitMs) ? this.#clock.setTimer(this.#waitMs, () => done(false)) : undefined;
    });
  }
}
