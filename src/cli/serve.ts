/**
 * `tpmkit serve`: exposes the `-T` TPM on a swtpm-protocol (data + control) or mssim-protocol
 * (command + platform) socket, so tpm2-tools and other TSS stacks can drive it. Stops cleanly on
 * SIGINT/SIGTERM, with SoftTpm state flushed to its file.
 *
 * @packageDocumentation
 */
import { serveSwtpm, type SwtpmPowerHooks } from "../server/swtpm.js";
import { serveMssim, type MssimPlatformHooks } from "../server/mssim.js";
import { ResourceManager, type ResourceManagerOptions } from "../server/rm.js";
import { UsageError } from "./args.js";
import type { CliTarget } from "./target.js";

/** What `tpmkit serve` serves on, checked before the TPM is opened. */
export interface ServePlan {
  /** `swtpm` (data + control sockets) or `mssim` (command + platform sockets). */
  readonly protocol: "swtpm" | "mssim";
  /** TCP port (0: any free port). */
  readonly port: number;
  /** TCP host. */
  readonly host: string;
  /** Unix socket path instead of TCP (swtpm protocol only). */
  readonly path?: string;
  /** Serve through tpmkit's resource manager (`--rm`), with these per-client limits. */
  readonly rm?: ResourceManagerOptions;
}

/** Serves the target's TPM until SIGINT/SIGTERM (or `stop` resolves, for tests). */
export async function serveCli(plan: ServePlan, target: CliTarget, out: NodeJS.WritableStream, stop?: Promise<void>, json = false): Promise<void> {
  const { protocol, port, host, path } = plan;
  if (protocol === "mssim" && path) throw new UsageError("the mssim protocol serves TCP only (--host/--port)");
  const chip = target.tpm.chip;
  const soft = target.softTpm;
  // Power cycles from the client reach the SoftTpm: TPM_Init, then the client sends Startup.
  const resourceManager = plan.rm ? new ResourceManager(chip, plan.rm) : undefined;
  const powerCycle = soft
    ? async () => {
        await soft.powerOff();
        await soft.powerOn();
        // the reset flushed every object and session: the spaces forget theirs
        resourceManager?.reset();
      }
    : undefined;
  let close: () => Promise<void>;
  /** Resolves when the server ends by itself (a client's CMD_SHUTDOWN), with the line to print. */
  let ended: Promise<string> = new Promise<string>(() => {});
  if (protocol === "swtpm") {
    const power: SwtpmPowerHooks = powerCycle ? { init: () => powerCycle() } : {};
    const server = await serveSwtpm(path ? { chip, path } : { chip, host, port }, { power, ...(resourceManager ? { resourceManager } : {}) });
    if (json) out.write(JSON.stringify({ serving: target.description, protocol, address: server.address, controlAddress: server.controlAddress, tcti: tctiOf("swtpm", server.address) }) + "\n");
    else {
      out.write(`tpmkit: serving ${target.description}${resourceManager ? " through the resource manager" : ""}\n`);
      out.write(`tpmkit: swtpm protocol on ${describe(server.address)}, control on ${describe(server.controlAddress)}; TCTI ${tctiOf("swtpm", server.address)}\n`);
    }
    close = () => server.close();
    ended = server.closed.then((c) => (c.reason === "shutdown" ? "a client sent CMD_SHUTDOWN" : "the server closed"));
  } else {
    // The simulator starts powered off and clients send POWER_ON first (tcti-mssim does): that is
    // TPM_Init for the SoftTpm, which then needs Startup from the client.
    const hooks: MssimPlatformHooks = powerCycle ? { powerOn: () => powerCycle(), powerOff: () => soft!.powerOff() } : {};
    const server = await serveMssim({ chip, host, port }, { hooks, ...(resourceManager ? { resourceManager } : {}) });
    const addr = { host: server.host, port: server.port };
    const platform = { host: server.host, port: server.platformPort };
    if (json) out.write(JSON.stringify({ serving: target.description, protocol, address: addr, platformAddress: platform, tcti: tctiOf("mssim", addr) }) + "\n");
    else {
      out.write(`tpmkit: serving ${target.description}${resourceManager ? " through the resource manager" : ""}\n`);
      out.write(`tpmkit: mssim protocol on ${describe(addr)}, platform on ${describe(platform)}; TCTI ${tctiOf("mssim", addr)}\n`);
    }
    close = () => server.close();
  }
  let onSignal: (() => void) | undefined;
  const stopped = (stop ??
    new Promise<void>((resolve) => {
      onSignal = resolve;
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    })).then(() => "stopped");
  // The TPM state is saved by the caller's orderly end (Shutdown(STATE) and a flush), whichever way
  // the server stops: a signal, the caller, or a client's CMD_SHUTDOWN.
  const why = await Promise.race([stopped, ended]);
  if (onSignal) {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  await close();
  if (json) out.write(JSON.stringify({ stopped: why }) + "\n");
  else out.write(why === "stopped" ? "tpmkit: stopped\n" : `tpmkit: stopped: ${why}\n`);
}

type Addr = { host?: string; port?: number; path?: string } | undefined | null;

function describe(a: Addr): string {
  if (!a) return "(none)";
  return a.path ?? `${a.host}:${a.port}`;
}

function tctiOf(name: string, a: Addr): string {
  if (!a) return name;
  return a.path ? `${name}:path=${a.path}` : `${name}:host=${a.host},port=${a.port}`;
}
