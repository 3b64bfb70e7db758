/**
 * Shared by the OpTee tests (not part of the public API): small fake TAs and a fake supplicant server.
 *
 * @packageDocumentation
 */
import { expect } from "vitest";
import { TeeError } from "../../errors/index.js";
import { OPTEE_RPC_CMD, TEE_RESULT } from "../../bus/tee/constants.js";
import { MemoryFileStore } from "../../core/storage.js";
import type { TeeRpcReply, TeeRpcRequest, TeeRpcServer, TeeSupplicantPort } from "../../bus/tee/rpc.js";
import type { TaDefinition, TaEnvironment, TaParam, TaSession, TrustedApplication } from "../../bus/tee/ta.js";

export const UUID_A = "11111111-2222-3333-4444-555555555555";
export const UUID_B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

export interface Counters {
  instantiated: number;
  created: number;
  destroyed: number;
  opened: number;
  closed: number;
  env?: TaEnvironment;
}

/** A TA definition whose instances count their entry points; `impl` overrides entry points. */
export function fakeTa(options: { uuid?: string; flags?: number; early?: boolean; impl?: (c: Counters) => Partial<TrustedApplication> } = {}): TaDefinition & { counters: Counters } {
  const counters: Counters = { instantiated: 0, created: 0, destroyed: 0, opened: 0, closed: 0 };
  return {
    uuid: options.uuid ?? UUID_A,
    name: "fake",
    flags: options.flags ?? 0,
    early: options.early ?? true,
    counters,
    instantiate(): TrustedApplication {
      counters.instantiated++;
      const base: TrustedApplication = {
        create(env) {
          counters.created++;
          counters.env = env;
          return 0;
        },
        destroy() {
          counters.destroyed++;
        },
        openSession() {
          counters.opened++;
          return 0;
        },
        closeSession() {
          counters.closed++;
        },
        // Command 0: value echo (a+1, b+2) on param 0 (INOUT); command 1: copy param 0 to param 1.
        invoke(_s: TaSession, cmd: number, _types: number, params: TaParam[]) {
          if (cmd === 0) {
            params[0]!.a += 1;
            params[0]!.b += 2;
            return 0;
          }
          if (cmd === 1) {
            const inp = params[0]!.buffer!;
            const out = params[1]!;
            if (out.size < inp.length) {
              out.size = inp.length;
              return TEE_RESULT.SHORT_BUFFER;
            }
            out.buffer!.set(inp);
            out.size = inp.length;
            return 0;
          }
          return TEE_RESULT.BAD_PARAMETERS;
        },
      };
      return { ...base, ...(options.impl?.(counters) ?? {}) };
    },
  };
}

/** A supplicant server: LOAD_TA from the port's REE TAs, FS on a MemoryFileStore, SHM_ALLOC/FREE. */
export class FakeSupplicant implements TeeRpcServer {
  readonly store = new MemoryFileStore();
  readonly log: TeeRpcRequest[] = [];
  /** true: every request hangs; a number: requests with that cmd hang. */
  hang: boolean | number = false;
  #shm = 1;
  detach: (() => void) | undefined;
  /** When set, LOAD_TA answers this result. */
  loadResult: number | undefined;
  constructor(readonly port: TeeSupplicantPort) {}
  start(): this {
    this.detach = this.port.attach(this);
    return this;
  }
  stop(): void {
    this.detach?.();
    this.detach = undefined;
  }
  async handle(req: TeeRpcRequest): Promise<TeeRpcReply> {
    this.log.push(req);
    if (this.hang === true || this.hang === req.cmd) return new Promise<TeeRpcReply>(() => {});
    switch (req.cmd) {
      case OPTEE_RPC_CMD.SHM_ALLOC:
        return { result: 0, id: this.#shm++ };
      case OPTEE_RPC_CMD.SHM_FREE:
        return { result: 0 };
      case OPTEE_RPC_CMD.RPMB: {
        const rpmb = this.port.rpmb;
        if (!rpmb) return { result: TEE_RESULT.ITEM_NOT_FOUND };
        return { result: 0, data: rpmb.transfer(req.frames, req.responseFrames) };
      }
      case OPTEE_RPC_CMD.LOAD_TA: {
        if (this.loadResult !== undefined) return { result: this.loadResult };
        const ta = this.port.reeTas.find((t) => t.uuid === req.uuid);
        return ta ? { result: 0, ta } : { result: TEE_RESULT.ITEM_NOT_FOUND };
      }
      case OPTEE_RPC_CMD.FS: {
        if (req.op === "read") {
          const d = await this.store.read(req.name);
          return d ? { result: 0, data: d } : { result: TEE_RESULT.ITEM_NOT_FOUND };
        }
        if (req.op === "write") {
          await this.store.write(req.name, req.data!);
          return { result: 0 };
        }
        if (req.op === "remove") {
          await this.store.remove(req.name);
          return { result: 0 };
        }
        if (req.op === "list") return { result: 0, names: await this.store.list() };
        return { result: TEE_RESULT.BAD_PARAMETERS };
      }
      default:
        return { result: TEE_RESULT.NOT_SUPPORTED };
    }
  }
  cmds(): number[] {
    return this.log.map((r) => r.cmd);
  }
}

/** The TeeError a promise rejects with. */
export async function rejection(p: Promise<unknown>): Promise<TeeError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TeeError);
  return err as TeeError;
}

/** The TeeError a function throws. */
export function thrown(fn: () => unknown): TeeError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TeeError);
  return err as TeeError;
}

/** Lets pending microtasks and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
