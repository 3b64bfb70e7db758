/**
 * One CRB-over-FF-A stack for tests: SoftTpm → 5-locality doorbell CrbDevice → TpmServicePartition
 * → FfaBus → crb(ffaStart), on a FakeClock that advances itself whenever everything waits on it.
 * The Trusted Services variant gets the pre-6.18 sequence (`hasIdle: false`), which it needs.
 */
import { expect } from "vitest";
import { FfaBus } from "../../src/devices/ffa/bus.js";
import { TpmServicePartition, type TpmServicePartitionOptions } from "../../src/devices/ffa/partition.js";
import { CrbDevice } from "../../src/devices/crb/index.js";
import { SoftTpm } from "../../src/softtpm/index.js";
import { FakeClock } from "../../src/core/clock.js";
import { crb } from "../../src/transports/crb/crb.js";
import { ffaStart, type FfaStartOptions } from "../../src/transports/crb/start-ffa.js";
import { FfaError } from "../../src/errors/index.js";
import type { FfaConduit } from "../../src/bus/ffa/conduit.js";

/** Options of {@link ffaRig}. */
export interface FfaRigOptions {
  partition?: Partial<TpmServicePartitionOptions>;
  start?: Partial<FfaStartOptions>;
  /** Register the partition on the bus at once (default true; false to hot-plug it later). */
  plug?: boolean;
  /** What the driver calls instead of the bus (a wrapper that counts or alters calls). */
  wrap?: (bus: FfaBus, partition: TpmServicePartition) => FfaConduit;
}

/** Builds the stack; nothing is opened yet. */
export function ffaRig(options: FfaRigOptions = {}) {
  const clock = new FakeClock({ auto: true });
  const device = new CrbDevice({ backend: new SoftTpm(), localities: 5, trigger: "doorbell", channel: false });
  const partition = new TpmServicePartition({ device, ...options.partition });
  const bus = new FfaBus({ clock, channel: false });
  if (options.plug !== false) bus.addPartition(partition);
  const conduit = options.wrap ? options.wrap(bus, partition) : bus;
  const start = ffaStart({ bus: conduit, ...(partition.variant === "ts" ? { hasIdle: false } : {}), ...options.start });
  const transport = crb({ mmio: device, start });
  return { clock, device, partition, bus, start, transport };
}

/** The first FfaError in an error's cause chain. */
export function ffaErrorIn(e: unknown): FfaError | undefined {
  for (let x = e, n = 0; x instanceof Error && n < 8; x = x.cause, n++) if (x instanceof FfaError) return x;
  return undefined;
}

/** Resolves to what `p` rejected with (fails the test when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.unreachable("expected a rejection"),
    (e: unknown) => e,
  );
}
