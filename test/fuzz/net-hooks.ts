/** Hooks the fuzz tests' node:net mock reads (kept free of node:net value imports). */
import type { EventEmitter } from "node:events";
import type * as Net from "node:net";

/** Every net.Server created, and in-process connection factories by UNIX path. */
export const netHooks: { servers: EventEmitter[]; connect: Map<string, () => EventEmitter> } = { servers: [], connect: new Map() };

/**
 * The node:net a fuzz test file mocks in: each net.Server created is recorded in
 * `netHooks.servers` (its 'connection' event is then driven with a FakeSocket), and a connection
 * to a path registered in `netHooks.connect` gets what that factory returns.
 */
export function mockNet(net: typeof Net): typeof Net & { default: typeof Net } {
  const createServer = ((...a: Parameters<typeof net.createServer>) => {
    const s = net.createServer(...a);
    netHooks.servers.push(s);
    return s;
  }) as typeof net.createServer;
  const createConnection = ((o: { path?: string }, ...rest: unknown[]) => {
    const f = typeof o === "object" && o?.path ? netHooks.connect.get(o.path) : undefined;
    if (f) return f();
    return (net.createConnection as (...a: unknown[]) => unknown)(o, ...rest);
  }) as typeof net.createConnection;
  const m = { ...net, createServer, createConnection, connect: createConnection };
  return { ...m, default: m };
}
