import { describe, it, expect, afterEach } from "vitest";
import { createServer, type AddressInfo } from "node:net";
import { FakeClock, systemClock } from "../core/clock.js";
import { TpmArgumentError, TpmNotFoundError, TpmTimeoutError } from "../errors/index.js";
import type { Transport } from "../core/transport.js";
import { fromHex, toHex } from "../wire/buffer.js";
import { serveMssim } from "../server/mssim.js";
import { FakeTpmDevice } from "../testing/fake-device.js";
import { linuxDevice } from "../transports/linux-device/linux-device.js";
import { FakeTpmBackend } from "../testing/fake-backend.js";
import { DEFAULT_DISCOVERY, TctiDiscoveryError, configuredTcti, openTransport } from "./discovery.js";
import { defaultTctiRegistry, tctiRegistry } from "./registry.js";
import { defineTcti, type TctiConfig, type TctiRegistry } from "./tcti-parse.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A registry of fake transports that records what was built and opened. */
function recording(behaviour: Record<string, "ok" | "absent" | "hang">) {
  const built: Array<{ name: string; config: TctiConfig }> = [];
  const opened: string[] = [];
  const closed: string[] = [];
  let registry: TctiRegistry = {};
  for (const [name, how] of Object.entries(behaviour)) {
    registry = {
      ...registry,
      ...defineTcti(name, (config) => {
        built.push({ name, config });
        const t: Transport = {
          kind: name,
          async open() {
            opened.push(name);
            if (how === "absent") throw new TpmNotFoundError(`${name}: nothing there`);
            if (how === "hang") await new Promise<never>(() => undefined); // ignores its signal
          },
          async send() {
            return new Uint8Array(10);
          },
          async close() {
            closed.push(name);
          },
        };
        return t;
      }),
    };
  }
  return { registry, built, opened, closed };
}

describe("openTransport with a TCTI string or the environment", () => {
  it("builds the named transport from the registry without opening it", async () => {
    const r = recording({ mssim: "ok" });
    const t = await openTransport("mssim:host=10.0.0.1,port=4000", { registry: r.registry, env: {} });
    expect(t.kind).toBe("mssim");
    expect(r.built).toEqual([{ name: "mssim", config: { host: "10.0.0.1", port: 4000 } }]);
    expect(r.opened).toEqual([]);
  });

  it("reads TPM2TOOLS_TCTI before TCTI, ignoring empty values, when no string is given", () => {
    expect(configuredTcti(undefined, { TPM2TOOLS_TCTI: "device:/dev/tpm0", TCTI: "mssim" })).toEqual({ tcti: "device:/dev/tpm0", source: "TPM2TOOLS_TCTI" });
    expect(configuredTcti(undefined, { TPM2TOOLS_TCTI: " ", TCTI: "mssim" })).toEqual({ tcti: "mssim", source: "TCTI" });
    expect(configuredTcti("swtpm", { TCTI: "mssim" })).toEqual({ tcti: "swtpm", source: "argument" });
    expect(configuredTcti(undefined, {})).toBeUndefined();
  });

  it("uses the environment's TCTI and names the variable when it is malformed", async () => {
    const r = recording({ device: "ok" });
    await openTransport(undefined, { registry: r.registry, env: { TCTI: "device:/dev/tpmrm7" } });
    expect(r.built).toEqual([{ name: "device", config: { path: "/dev/tpmrm7" } }]);
    await expect(openTransport(undefined, { registry: r.registry, env: { TPM2TOOLS_TCTI: "mssim:port=x" } })).rejects.toThrow(/^TPM2TOOLS_TCTI: bad TCTI string/);
  });

  it("rejects an unregistered name, listing the registered ones", async () => {
    const err = await openTransport("swtpm:port=2321", { env: {}, registry: defaultTctiRegistry }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmArgumentError);
    expect((err as Error).message).toMatch(/unknown TCTI "swtpm".*registered: device, mssim/);
    const err2 = await openTransport("nosuch:x=1", { env: {} }).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(TpmArgumentError);
    expect((err2 as Error).message).toMatch(/unknown TCTI "nosuch".*registered: crb, crb-ffa, device, ftpm, memory, mssim, softtpm, swtpm, tis/);
  });

  it("defaults to the one registry of every transport and board, the one the CLI uses", () => {
    expect(Object.keys(tctiRegistry).sort()).toEqual(["crb", "crb-ffa", "device", "ftpm", "memory", "mssim", "softtpm", "swtpm", "tis"]);
    for (const name of Object.keys(tctiRegistry)) {
      const config: Record<string, string> = name === "device" ? { path: "/dev/tpm0" } : {};
      const spec = { name, config, text: name };
      expect(tctiRegistry[name]!(spec.config, spec).kind).toBe(name === "softtpm" ? "memory" : name === "crb-ffa" ? "crb" : name === "ftpm" ? "ftpm-tee" : name);
    }
  });

  it("provides mssim and device entries that build the real transports", () => {
    expect(Object.keys(defaultTctiRegistry).sort()).toEqual(["device", "mssim"]);
    const spec = { name: "device", config: { path: "/dev/tpm0" }, text: "device:/dev/tpm0" };
    expect(defaultTctiRegistry.device!(spec.config, spec).kind).toBe("device");
    expect(defaultTctiRegistry.mssim!({ port: 1 }, { name: "mssim", config: { port: 1 }, text: "mssim:port=1" }).kind).toBe("mssim");
    expect(() => defineTcti("Bad Name", () => linuxDevice())).toThrow(TpmArgumentError);
  });
});

describe("openTransport discovery", () => {
  it("follows tpm2-tss tctildr's order", () => {
    expect(DEFAULT_DISCOVERY.map((s) => s.split(":")[0] + (s.startsWith("device") ? s.slice(6) : ""))).toEqual([
      "tabrmd",
      "device:/dev/tpmrm0",
      "device:/dev/tpm0",
      "device:/dev/tcm0",
      "swtpm",
      "mssim",
    ]);
  });

  it("returns the first transport that opens, already opened, and closes the ones that failed", async () => {
    const r = recording({ device: "absent", swtpm: "ok", mssim: "ok" });
    const t = await openTransport(undefined, { registry: r.registry, env: {} });
    expect(t.kind).toBe("swtpm");
    expect(r.opened).toEqual(["device", "device", "device", "swtpm"]);
    expect(r.closed).toEqual(["device", "device", "device"]);
    await t.open!({ clock: systemClock, locality: 0 }); // no second probe
    expect(r.opened).toHaveLength(4);
    await t.close!();
    expect(r.closed).toContain("swtpm");
  });

  it("bounds a probe that never settles and moves on (fake clock)", async () => {
    const clock = new FakeClock({ auto: true });
    const r = recording({ device: "hang", mssim: "ok" });
    const t = await openTransport(undefined, { registry: r.registry, env: {}, clock, probeTimeoutMs: 250 });
    expect(t.kind).toBe("mssim");
    expect(clock.now()).toBe(750); // three device probes of 250 ms each
  });

  it("fails fast with a TctiDiscoveryError listing every attempt when nothing is there", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const noDevices = new FakeTpmDevice({ backend: new FakeTpmBackend({ answers: "tools" }), nodes: [] });
    const registry = { ...defaultTctiRegistry, ...defineTcti("device", (c) => linuxDevice({ fs: noDevices, path: String(c.path) })) };
    const discovery = [...DEFAULT_DISCOVERY.slice(0, 5), `mssim:host=127.0.0.1,port=${closedPort}`];
    const started = performance.now();
    const err = await openTransport(undefined, { registry, env: {}, discovery }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(TctiDiscoveryError);
    expect(err).toBeInstanceOf(TpmNotFoundError);
    const attempts = (err as TctiDiscoveryError).attempts;
    expect(attempts.map((a) => [a.tcti, a.outcome])).toEqual([
      ["tabrmd", "skipped"],
      ["device:/dev/tpmrm0", "failed"],
      ["device:/dev/tpm0", "failed"],
      ["device:/dev/tcm0", "failed"],
      ["swtpm:host=127.0.0.1,port=2321", "skipped"],
      [`mssim:host=127.0.0.1,port=${closedPort}`, "failed"],
    ]);
    expect(attempts[1]!.reason).toMatch(/ENOENT/);
    expect(attempts[5]!.reason).toMatch(/ECONNREFUSED/);
    expect((err as TctiDiscoveryError).details).toContain("device:/dev/tpm0: /dev/tpm0: no TPM device (ENOENT)");
    expect(elapsed).toBeLessThan(1000);
  });

  it("finds an mssim simulator and hands back an opened transport that works", async () => {
    const backend = new FakeTpmBackend({ answers: "tools" });
    const server = await serveMssim({ chip: { transmit: (c, o) => backend.execute(c, o?.locality ?? 0, o?.signal) } });
    cleanups.push(() => server.close());
    const t = await openTransport(undefined, { env: {}, discovery: [`mssim:host=127.0.0.1,port=${server.port}`] });
    cleanups.push(() => t.close!());
    expect(server.poweredOn).toBe(true);
    const rsp = await t.send(fromHex("80010000000c0000017b0004"), { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: systemClock });
    expect(toHex(rsp)).toBe("80010000001000000000000400010203");
  });

  it("stops at once when its signal aborts", async () => {
    const clock = new FakeClock({ auto: true });
    const r = recording({ device: "hang" });
    const ac = new AbortController();
    clock.setTimer(100, () => ac.abort());
    const err = await openTransport(undefined, { registry: r.registry, env: {}, clock, signal: ac.signal }).catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
    expect(r.opened).toEqual(["device"]);
    expect(err).not.toBeInstanceOf(TpmTimeoutError);
  });
});
