/** Hooks the fuzz test's node:net mock reads (kept free of node:net imports). */
import type { EventEmitter } from "node:events";

/** Every net.Server created, and in-process connection factories by UNIX path. */
export const netHooks: { servers: EventEmitter[]; connect: Map<string, () => EventEmitter> } = { servers: [], connect: new Map() };
