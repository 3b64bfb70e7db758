import { describe, expect, it } from "vitest";
import { FakeClock } from "../core/clock.js";
import { ProbeDeferredError, TpmAbortError, TpmArgumentError, TpmStateError, TpmTimeoutError } from "../errors/index.js";
import { Tpm } from "../client/tpm.js";
import { SoftTpm } from "../softtpm/index.js";
import { memory } from "../transports/memory/index.js";
import { DEFERRED_PROBE_INITCALL, Platform, type PlatformDevice } from "./platform.js";
import { INITCALL_LEVELS, type TimelineEntry } from "./timeline.js";

/** A chip stand-in: the platform is generic over what it registers. */
type FakeChip = { id: string };

function platform(clock = new FakeClock()): { p: Platform<FakeChip>; clock: FakeClock } {
  return { p: new Platform<FakeChip>({ clock }), clock };
}

function kinds(timeline: readonly TimelineEntry[], name?: string): string[] {
  return timeline.filter((e) => name === undefined || e.name === name).map((e) => e.kind);
}

function find(timeline: readonly TimelineEntry[], kind: string, name: string): TimelineEntry {
  const e = timeline.find((x) => x.kind === kind && x.name === name);
  if (!e) throw new Error(`no ${kind} entry for ${name}`);
  return e;
}

describe("Platform: initcall levels", () => {
  it("runs the levels in order and link order within a level, the flush last in late", async () => {
    const { p } = platform();
    const ran: string[] = [];
    // Registered out of level order on purpose: order comes from the level, then the link order.
    for (const level of [...INITCALL_LEVELS].reverse()) {
      p.initcall(level, `${level}_a`, () => void ran.push(`${level}_a`));
      p.initcall(level, `${level}_b`, async () => {
        await Promise.resolve();
        ran.push(`${level}_b`);
      });
    }
    const report = await p.boot();
    expect(ran).toEqual(INITCALL_LEVELS.flatMap((l) => [`${l}_a`, `${l}_b`]));
    expect(report.levels).toEqual([...INITCALL_LEVELS]);
    const starts = p.timeline.filter((e) => e.kind === "initcall-start").map((e) => e.name);
    expect(starts.slice(starts.indexOf("late_a"), starts.indexOf("late_sync_a") + 1)).toEqual(["late_a", "late_b", DEFERRED_PROBE_INITCALL, "late_sync_a"]);
    for (const e of p.timeline.filter((x) => x.kind === "initcall-start" || x.kind === "initcall-end")) {
      expect(e.level).toBe(e.name === DEFERRED_PROBE_INITCALL ? "late" : e.name.replace(/_[ab]$/, ""));
    }
  });

  it("runs an initcall registered during its own level after the current one", async () => {
    const { p } = platform();
    const ran: string[] = [];
    p.initcall("device", "first", () => {
      ran.push("first");
      p.initcall("device", "added", () => void ran.push("added"));
    });
    p.initcall("device", "second", () => void ran.push("second"));
    await p.boot();
    expect(ran).toEqual(["first", "second", "added"]);
  });

  it("logs an initcall's error in the timeline and goes on with the boot", async () => {
    const { p } = platform();
    const ran: string[] = [];
    p.initcall("subsys", "broken_init", () => {
      throw new Error("ENODEV");
    });
    p.initcall("subsys", "next_init", () => void ran.push("next"));
    p.initcall("late", "late_init", () => void ran.push("late"));
    const report = await p.boot();
    expect(ran).toEqual(["next", "late"]);
    expect(report.errors).toEqual([{ initcall: "broken_init", level: "subsys", error: "Error: ENODEV" }]);
    const end = find(p.timeline, "initcall-end", "broken_init");
    expect(end.level).toBe("subsys");
    expect(end.detail).toContain("error: Error: ENODEV");
    expect(p.dmesg).toContain("initcall broken_init returned error: Error: ENODEV");
  });

  it("refuses a second boot and an initcall for a level that has run", async () => {
    const { p } = platform();
    p.initcall("late", "late_init", () => {
      expect(() => p.initcall("device", "too_late", () => undefined)).toThrow(TpmStateError);
    });
    await p.boot();
    await expect(p.boot()).rejects.toBeInstanceOf(TpmStateError);
    expect(() => p.initcall("late_sync", "after", () => undefined)).toThrow(TpmStateError);
    expect(() => p.initcall("nope" as never, "x", () => undefined)).toThrow(TpmArgumentError);
  });

  it("times the entries on the platform clock since the boot started", async () => {
    const clock = new FakeClock({ start: 1000, auto: true });
    const { p } = platform(clock);
    p.initcall("core", "slow_init", async () => {
      await clock.sleep(30);
    });
    p.initcall("device", "after_init", () => undefined);
    const report = await p.boot();
    expect(find(p.timeline, "initcall-start", "slow_init").time).toBe(0);
    expect(find(p.timeline, "initcall-end", "slow_init").time).toBe(30);
    expect(find(p.timeline, "initcall-start", "after_init").time).toBe(30);
    expect(report.durationMs).toBe(30);
  });
});

describe("Platform: buses, drivers, devices", () => {
  it("binds on registration either way", async () => {
    const { p } = platform();
    p.addBus("platform");
    const probed: string[] = [];
    // Device first, driver second: the driver's registration binds it.
    const early = await p.addDevice({ name: "dev0", bus: "platform" });
    expect(early.state).toBe("unbound");
    await p.addDriver({ name: "drv", bus: "platform", probe: (d) => void probed.push(d.name) });
    expect(early.driver).toBe("drv");
    // Driver first, device second: the device's addition binds it.
    const late = await p.addDevice({ name: "dev1", bus: "platform" });
    expect(late.state).toBe("bound");
    expect(late.driver).toBe("drv");
    expect(probed).toEqual(["dev0", "dev1"]);
    expect(kinds(p.timeline)).toEqual(["device-add", "driver-register", "probe", "bind", "device-add", "probe", "bind"]);
    expect(find(p.timeline, "bind", "dev0").driver).toBe("drv");
  });

  it("matches with the bus's match and the driver's id table, and passes the device data", async () => {
    const { p } = platform();
    const ffa = p.addBus("arm_ffa", (dev, drv) => drv.name !== "never");
    const seen: unknown[] = [];
    await p.addDriver({ name: "never", bus: ffa, probe: () => void seen.push("never") });
    await p.addDriver({ name: "tpm", bus: "arm_ffa", match: (d) => d.data.uuid === "tpm-uuid", probe: (d) => void seen.push(d.data.partitionId) });
    const other = await p.addDevice({ name: "arm-ffa-1", bus: ffa, uuid: "other", partitionId: 0x8001 });
    const tpm = await p.addDevice({ name: "arm-ffa-2", bus: "arm_ffa", uuid: "tpm-uuid", partitionId: 0x8002 });
    expect(other.state).toBe("unbound");
    expect(tpm.driver).toBe("tpm");
    expect(tpm.data.partitionId).toBe(0x8002);
    expect(seen).toEqual([0x8002]);
    expect(p.bus("arm_ffa")!.devices.map((d) => d.name)).toEqual(["arm-ffa-1", "arm-ffa-2"]);
  });

  it("tries the next driver when one fails or defers (__device_attach_driver)", async () => {
    const { p } = platform();
    p.addBus("b");
    await p.addDriver({ name: "fails", bus: "b", probe: () => Promise.reject(new Error("EIO")) });
    await p.addDriver({ name: "works", bus: "b", probe: () => undefined });
    const dev = await p.addDevice({ name: "d", bus: "b" });
    expect(dev.driver).toBe("works");
    expect(kinds(p.timeline, "d")).toEqual(["device-add", "probe", "probe-failed", "log", "probe", "bind"]);
  });

  it("refuses an unregistered bus (the kernel's -EINVAL) and duplicate names", async () => {
    const { p } = platform();
    await expect(p.addDriver({ name: "tpm_crb_ffa", bus: "arm_ffa", probe: () => undefined })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(p.addDevice({ name: "x", bus: "arm_ffa" })).rejects.toBeInstanceOf(TpmArgumentError);
    p.addBus("arm_ffa");
    expect(() => p.addBus("arm_ffa")).toThrow(TpmArgumentError);
    await p.addDriver({ name: "tpm_crb_ffa", bus: "arm_ffa", probe: () => undefined });
    await expect(p.addDriver({ name: "tpm_crb_ffa", bus: "arm_ffa", probe: () => undefined })).rejects.toBeInstanceOf(TpmArgumentError);
    await p.addDevice({ name: "x", bus: "arm_ffa" });
    await expect(p.addDevice({ name: "x", bus: "arm_ffa" })).rejects.toBeInstanceOf(TpmArgumentError);
  });

  it("unbinds (calling remove) and removes devices", async () => {
    const { p } = platform();
    p.addBus("b");
    const removed: string[] = [];
    await p.addDriver({ name: "drv", bus: "b", probe: () => undefined, remove: (d) => void removed.push(d.name) });
    const dev = await p.addDevice({ name: "d", bus: "b" });
    await p.unbind("d");
    expect(dev.state).toBe("unbound");
    expect(dev.driver).toBeUndefined();
    expect(removed).toEqual(["d"]);
    await p.addDevice({ name: "e", bus: "b" });
    await p.removeDevice(p.device("e")!);
    expect(removed).toEqual(["d", "e"]);
    expect(p.device("e")).toBeUndefined();
    expect(kinds(p.timeline, "e")).toEqual(["device-add", "probe", "bind", "unbind", "device-remove"]);
    expect(find(p.timeline, "unbind", "e").driver).toBe("drv");
    await expect(p.unbind("nope")).rejects.toBeInstanceOf(TpmArgumentError);
  });
});

describe("Platform: deferred probe", () => {
  /** A driver whose probe needs the device `needs` bound, as crb_acpi needs tpm_crb_ffa. */
  function needsBound(p: Platform<FakeChip>, name: string, needs: string, bus = "platform") {
    const probes: string[] = [];
    const spec = {
      name,
      bus,
      match: (d: PlatformDevice) => d.name !== needs,
      probe: (d: PlatformDevice) => {
        probes.push(d.name);
        if (p.device(needs)?.state !== "bound") throw new ProbeDeferredError(needs);
      },
    };
    return { spec, probes };
  }

  it("a probe deferred until a device appears binds at the flush", async () => {
    const { p } = platform();
    p.addBus("platform");
    p.addBus("arm_ffa");
    const crb = needsBound(p, "crb_acpi", "arm-ffa-1");
    p.initcall("device", "crb_acpi_driver_init", async () => {
      await p.addDriver(crb.spec);
      await p.addDevice({ name: "MSFT0101:00", bus: "platform" });
    });
    p.initcall("device", "tpm_crb_ffa_init", () => p.addDriver({ name: "tpm_crb_ffa", bus: "arm_ffa", probe: () => undefined }).then(() => undefined));
    p.initcall("device", "ffa_init", () => p.addDevice({ name: "arm-ffa-1", bus: "arm_ffa" }).then(() => undefined));
    let stateAtLate: string | undefined;
    p.initcall("late", "init_ima", () => void (stateAtLate = p.device("MSFT0101:00")!.state));
    const report = await p.boot();
    // ffa_init's bind came before the flush: no retry then (probing not yet enabled).
    expect(stateAtLate).toBe("deferred");
    expect(crb.probes).toEqual(["MSFT0101:00", "MSFT0101:00"]);
    expect(p.device("MSFT0101:00")!.driver).toBe("crb_acpi");
    expect(report.deferred).toEqual([]);
    expect(report.binds.map((b) => `${b.device}:${b.driver}`)).toEqual(["arm-ffa-1:tpm_crb_ffa", "MSFT0101:00:crb_acpi"]);
    const deferred = find(p.timeline, "probe-deferred", "MSFT0101:00");
    expect(deferred).toMatchObject({ level: "device", driver: "crb_acpi" });
    expect(deferred.detail).toContain("arm-ffa-1");
    const bind = find(p.timeline, "bind", "MSFT0101:00");
    expect(bind.level).toBe("late");
    // The retry comes after init_ima and inside the flush initcall.
    const idx = (e: TimelineEntry) => p.timeline.indexOf(e);
    expect(idx(bind)).toBeGreaterThan(idx(find(p.timeline, "initcall-end", "init_ima")));
    expect(idx(bind)).toBeGreaterThan(idx(find(p.timeline, "deferred-flush", DEFERRED_PROBE_INITCALL)));
    expect(idx(bind)).toBeLessThan(idx(find(p.timeline, "initcall-end", DEFERRED_PROBE_INITCALL)));
    expect(find(p.timeline, "deferred-enable", DEFERRED_PROBE_INITCALL).level).toBe("late");
    expect(find(p.timeline, "deferred-flush", DEFERRED_PROBE_INITCALL).detail).toBe("retrying MSFT0101:00");
  });

  it("deferral before the flush is not retried on a bind", async () => {
    const { p } = platform();
    p.addBus("platform");
    const a = needsBound(p, "a_drv", "dep");
    await p.addDriver(a.spec);
    await p.addDevice({ name: "a", bus: "platform" });
    expect(p.deferred).toEqual(["a"]);
    await p.addDriver({ name: "dep_drv", bus: "platform", match: (d) => d.name === "dep", probe: () => undefined });
    await p.addDevice({ name: "dep", bus: "platform" });
    expect(p.device("dep")!.state).toBe("bound");
    expect(p.deferredProbeEnabled).toBe(false);
    expect(a.probes).toEqual(["a"]);
    expect(p.device("a")!.state).toBe("deferred");
  });

  it("once probing is enabled, a deferred probe is retried after another bind", async () => {
    const { p } = platform();
    p.addBus("platform");
    const a = needsBound(p, "a_drv", "dep");
    p.initcall("device", "a_init", async () => {
      await p.addDriver(a.spec);
      await p.addDevice({ name: "a", bus: "platform" });
    });
    p.initcall("late_sync", "dep_init", async () => {
      expect(p.deferredProbeEnabled).toBe(true);
      expect(p.device("a")!.state).toBe("deferred"); // the flush retried it: still deferred
      await p.addDriver({ name: "dep_drv", bus: "platform", match: (d) => d.name === "dep", probe: () => undefined });
      await p.addDevice({ name: "dep", bus: "platform" });
      // The bind of dep triggered the retry, which ran before addDevice resolved.
      expect(p.device("a")!.driver).toBe("a_drv");
    });
    const report = await p.boot();
    expect(a.probes).toEqual(["a", "a", "a"]); // at add, at the flush, after dep bound
    const retry = p.timeline.filter((e) => e.kind === "probe" && e.name === "a");
    expect(retry.map((e) => e.detail)).toEqual([undefined, "deferred retry", "deferred retry"]);
    expect(find(p.timeline, "bind", "a").level).toBe("late_sync");
    expect(report.deferred).toEqual([]);
  });

  it("a failure after another driver's deferral keeps the device deferred (retried with every driver)", async () => {
    const { p } = platform();
    p.addBus("platform");
    let failures = 0;
    p.initcall("device", "init", async () => {
      await p.addDriver(needsBound(p, "waits", "never-there").spec);
      await p.addDriver({
        name: "broken",
        bus: "platform",
        match: (d) => d.name === "b",
        probe: () => {
          failures++;
          throw new Error("EIO");
        },
      });
      await p.addDevice({ name: "w", bus: "platform" });
      await p.addDevice({ name: "b", bus: "platform" });
    });
    p.initcall("late_sync", "more", () => p.addDevice({ name: "x", bus: "platform" }).then(() => undefined));
    const report = await p.boot();
    // "waits" matches b too and defers it; "broken" then fails it: b ends on the deferred list
    // (the kernel keeps the deferral) and is retried with both drivers at the flush.
    expect(report.deferred).toEqual(["w", "b", "x"]); // "waits" defers x too
    expect(report.failed).toEqual([]);
    expect(failures).toBe(2); // at the add and at the flush
    expect(p.device("b")!.state).toBe("deferred");
    expect(find(p.timeline, "probe-failed", "b")).toMatchObject({ driver: "broken", detail: "Error: EIO" });
  });

  it("a probe failure alone is final: no retry at the flush or after a bind", async () => {
    const { p } = platform();
    p.addBus("platform");
    let failures = 0;
    p.initcall("device", "init", async () => {
      await p.addDriver({
        name: "broken",
        bus: "platform",
        probe: (d) => {
          if (d.name !== "b") return;
          failures++;
          throw new Error("EIO");
        },
      });
      await p.addDevice({ name: "b", bus: "platform" });
    });
    p.initcall("late_sync", "more", () => p.addDevice({ name: "x", bus: "platform" }).then(() => undefined));
    const report = await p.boot();
    expect(failures).toBe(1);
    expect(report.failed).toEqual([{ device: "b", driver: "broken", error: "Error: EIO" }]);
    expect(report.deferred).toEqual([]);
    expect(p.dmesg.some((l) => l.includes("probe with driver broken failed"))).toBe(true);
  });

  it("a device removed while deferred leaves the deferred list", async () => {
    const { p } = platform();
    p.addBus("platform");
    await p.addDriver(needsBound(p, "waits", "dep").spec);
    await p.addDevice({ name: "w", bus: "platform" });
    await p.removeDevice("w");
    expect(p.deferred).toEqual([]);
    const report = await p.boot();
    expect(find(p.timeline, "deferred-flush", DEFERRED_PROBE_INITCALL).detail).toBe("nothing deferred");
    expect(report.deferred).toEqual([]);
  });

  it("a device probing while a bind triggers is retried when it defers (no deadlock)", async () => {
    const { p } = platform();
    p.addBus("platform");
    p.addBus("child");
    await p.addDriver({ name: "child_drv", bus: "child", probe: () => undefined });
    const parents: string[] = [];
    // The parent's probe adds a child (which binds and triggers) and then defers: the trigger
    // that ran during its probe makes it go again (driver_probe_device's trigger_count check).
    await p.addDriver({
      name: "parent_drv",
      bus: "platform",
      probe: async (d) => {
        parents.push(d.name);
        if (!p.device("c1")) {
          await p.addDevice({ name: "c1", bus: "child" });
          throw new ProbeDeferredError("c1 settling");
        }
      },
    });
    p.initcall("late_sync", "parent_init", () => p.addDevice({ name: "parent", bus: "platform" }).then(() => undefined));
    await p.boot();
    expect(parents).toEqual(["parent", "parent"]);
    expect(p.device("parent")!.driver).toBe("parent_drv");
  });
});

describe("Platform: chips", () => {
  it("defaultChip is the first registered chip", async () => {
    const { p } = platform();
    expect(p.defaultChip()).toBeUndefined();
    const first = { id: "first" };
    expect(p.registerChip(first)).toBe("tpm0");
    expect(p.registerChip({ id: "second" })).toBe("tpm1");
    expect(p.defaultChip()).toBe(first);
    expect(p.chips.map((c) => c.id)).toEqual(["first", "second"]);
    expect(find(p.timeline, "chip-register", "tpm1").kind).toBe("chip-register");
  });

  it("registers a real Tpm (the default chip type) from a probe", async () => {
    const p = new Platform({ clock: new FakeClock() });
    p.addBus("platform");
    p.initcall("device", "crb_acpi_driver_init", () =>
      p
        .addDriver({
          name: "crb",
          bus: "platform",
          probe: async (_d, ctx) => void ctx.platform.registerChip(await Tpm.open(memory({ backend: new SoftTpm() }))),
        })
        .then(() => undefined),
    );
    p.initcall("device", "acpi_scan", () => p.addDevice({ name: "MSFT0101:00", bus: "platform" }).then(() => undefined));
    const report = await p.boot();
    expect(report.chips).toEqual(["tpm0"]);
    const tpm = p.defaultChip()!;
    expect((await tpm.getRandom(8)).length).toBe(8);
    await tpm.close();
  });

  it("waitForChip resolves at once when a chip is there, and on registration otherwise", async () => {
    const { p, clock } = platform();
    const chip = { id: "c" };
    const waiting = p.waitForChip({ timeoutMs: 1000, name: "ima" });
    await clock.advance(400);
    p.registerChip(chip);
    await expect(waiting).resolves.toBe(chip);
    expect(clock.pending).toBe(0);
    await expect(p.waitForChip({ timeoutMs: 0 })).resolves.toBe(chip);
    const waits = p.timeline.filter((e) => e.kind === "wait" && e.name === "ima");
    expect(waits.map((e) => e.detail)).toEqual(["waiting for a TPM chip, up to 1000 ms", "chip tpm0 after 400 ms"]);
  });

  it("waitForChip times out with TpmTimeoutError after timeoutMs", async () => {
    const { p, clock } = platform();
    const waiting = p.waitForChip({ timeoutMs: 250 });
    const seen = waiting.catch((e: unknown) => e);
    await clock.advance(249);
    expect(clock.pending).toBe(1);
    await clock.advance(1);
    const err = await seen;
    expect(err).toBeInstanceOf(TpmTimeoutError);
    expect((err as TpmTimeoutError).timeoutMs).toBe(250);
    // A chip registered later does not resurrect the wait.
    p.registerChip({ id: "late" });
    expect(p.timeline.filter((e) => e.kind === "wait").map((e) => e.detail)).toEqual(["waiting for a TPM chip, up to 250 ms", "timed out after 250 ms"]);
  });

  it("waitForChip aborts with the signal, before and during the wait", async () => {
    const { p, clock } = platform();
    const ac = new AbortController();
    const waiting = p.waitForChip({ timeoutMs: 10_000, signal: ac.signal });
    await clock.advance(5);
    ac.abort();
    await expect(waiting).rejects.toBeInstanceOf(TpmAbortError);
    expect(clock.pending).toBe(0);
    await expect(p.waitForChip({ signal: ac.signal })).rejects.toBeInstanceOf(TpmAbortError);
    await expect(p.waitForChip({ timeoutMs: Number.NaN })).rejects.toBeInstanceOf(TpmArgumentError);
  });
});

describe("Platform: async initcalls and the boot bound", () => {
  it("an async initcall waits for the chip without holding up the flush; boot waits for it", async () => {
    const { p, clock } = platform(new FakeClock({ auto: true }));
    p.addBus("platform");
    p.initcall("device", "crb_init", async () => {
      await p.addDriver({
        name: "crb",
        bus: "platform",
        probe: () => {
          if (p.device("dep")?.state !== "bound") throw new ProbeDeferredError("dep");
          p.registerChip({ id: "tpm" });
        },
      });
      await p.addDevice({ name: "MSFT0101:00", bus: "platform" });
    });
    p.initcall("device", "dep_init", async () => {
      await p.addDriver({ name: "dep_drv", bus: "platform", match: (d) => d.name === "dep", probe: () => undefined });
      await p.addDevice({ name: "dep", bus: "platform" });
    });
    let got: FakeChip | undefined;
    p.initcall(
      "late",
      "init_ima",
      async ({ platform: pl, signal, log }) => {
        got = await pl.waitForChip({ timeoutMs: 2000, signal, name: "init_ima" });
        log(`ima: chip ${got.id}`);
      },
      { async: true },
    );
    const after: string[] = [];
    p.initcall("late", "after_ima", () => void after.push("ran"));
    const report = await p.boot();
    expect(after).toEqual(["ran"]);
    expect(got).toEqual({ id: "tpm" });
    expect(report.chips).toEqual(["tpm0"]);
    expect(p.dmesg).toEqual(["ima: chip tpm"]);
    expect(find(p.timeline, "log", "init_ima").detail).toBe("ima: chip tpm");
    const start = find(p.timeline, "initcall-start", "init_ima");
    expect(start.detail).toBe("async");
    const order = p.timeline.map((e) => `${e.kind}:${e.name}`);
    expect(order.indexOf("initcall-start:after_ima")).toBeLessThan(order.indexOf("initcall-end:init_ima"));
    expect(order.indexOf("bind:MSFT0101:00")).toBeLessThan(order.indexOf("initcall-end:init_ima"));
    expect(order.indexOf("chip-register:tpm0")).toBeGreaterThan(order.indexOf("deferred-flush:" + DEFERRED_PROBE_INITCALL));
    expect(clock.now()).toBe(0); // no time passed: the chip came at the flush
  });

  it("a background initcall still running holds boot() until it ends, bounded by timeoutMs", async () => {
    const clock = new FakeClock({ auto: true });
    const { p } = platform(clock);
    let aborted = false;
    p.initcall(
      "late",
      "forever",
      async ({ signal }) => {
        await clock.sleep(1_000_000, signal).catch(() => (aborted = true));
      },
      { async: true },
    );
    const err = await p.boot({ timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTimeoutError);
    expect(clock.now()).toBe(500);
    await Promise.resolve();
    await Promise.resolve();
    expect(aborted).toBe(true);
  });

  it("a background initcall that ends lets boot() return its duration", async () => {
    const clock = new FakeClock({ auto: true });
    const { p } = platform(clock);
    p.initcall("late", "bg", ({ signal }) => clock.sleep(120, signal), { async: true });
    const report = await p.boot();
    expect(report.durationMs).toBe(120);
    const end = find(p.timeline, "initcall-end", "bg");
    expect(end.time).toBe(120);
    expect(end.level).toBeUndefined(); // after the last level
  });

  it("boot() aborts with its signal", async () => {
    const clock = new FakeClock();
    const { p } = platform(clock);
    const ac = new AbortController();
    p.initcall("core", "hangs", ({ signal }) => clock.sleep(10_000, signal));
    const booting = p.boot({ signal: ac.signal });
    await clock.advance(10);
    ac.abort();
    await expect(booting).rejects.toBeInstanceOf(TpmAbortError);
  });
});

describe("Platform: timeline", () => {
  it("has each kind of entry with its level, name and time", async () => {
    const clock = new FakeClock({ auto: true });
    const { p } = platform(clock);
    p.addBus("platform");
    p.initcall("subsys", "bus_init", () => void p.log("bus ready", "bus_init"));
    p.initcall("device", "drv_init", async () => {
      await clock.sleep(5);
      await p.addDriver({
        name: "drv",
        bus: "platform",
        probe: (d) => {
          if (d.name === "bad") throw new Error("EIO");
          if (d.name === "later" && !p.device("dep")) throw new ProbeDeferredError("dep");
        },
      });
      await p.addDevice({ name: "later", bus: "platform" });
      await p.addDevice({ name: "bad", bus: "platform" });
    });
    p.initcall("late", "dep_init", async () => {
      await clock.sleep(5);
      await p.addDevice({ name: "dep", bus: "platform" });
      p.registerChip({ id: "t" });
      await p.waitForChip({ name: "waiter" });
      p.record("ima", "init_ima", { detail: "aggregate" });
    });
    p.initcall("late_sync", "unbinder", () => p.removeDevice("dep"));
    await p.boot();
    const at = (kind: string, name: string) => {
      const e = find(p.timeline, kind, name);
      return [e.level, e.time];
    };
    expect(at("initcall-start", "bus_init")).toEqual(["subsys", 0]);
    expect(at("log", "bus_init")).toEqual(["subsys", 0]);
    expect(at("initcall-end", "bus_init")).toEqual(["subsys", 0]);
    expect(at("driver-register", "drv")).toEqual(["device", 5]);
    expect(at("device-add", "later")).toEqual(["device", 5]);
    expect(at("probe", "later")).toEqual(["device", 5]);
    expect(at("probe-deferred", "later")).toEqual(["device", 5]);
    expect(at("probe-failed", "bad")).toEqual(["device", 5]);
    expect(at("bind", "dep")).toEqual(["late", 10]);
    expect(at("chip-register", "tpm0")).toEqual(["late", 10]);
    expect(at("ima", "init_ima")).toEqual(["late", 10]);
    expect(at("deferred-enable", DEFERRED_PROBE_INITCALL)).toEqual(["late", 10]);
    expect(at("deferred-flush", DEFERRED_PROBE_INITCALL)).toEqual(["late", 10]);
    expect(at("bind", "later")).toEqual(["late", 10]);
    expect(at("unbind", "dep")).toEqual(["late_sync", 10]);
    expect(at("device-remove", "dep")).toEqual(["late_sync", 10]);
    const covered = new Set(p.timeline.map((e) => e.kind));
    for (const k of ["initcall-start", "initcall-end", "driver-register", "device-add", "device-remove", "probe", "probe-deferred", "probe-failed", "bind", "unbind", "deferred-enable", "deferred-flush", "chip-register", "ima", "log"]) {
      expect(covered.has(k as never), k).toBe(true);
    }
    // Entries made before boot() have time 0 and no level.
    const q = platform().p;
    q.addBus("b");
    await q.addDevice({ name: "d", bus: "b" });
    expect(q.timeline[0]).toEqual({ time: 0, kind: "device-add", level: undefined, name: "d", detail: "bus b" });
  });
});
