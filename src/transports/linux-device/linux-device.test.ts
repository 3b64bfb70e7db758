import { describe, it, expect } from "vitest";
import { existsSync } from "node:fs";
import { FakeClock, systemClock } from "../../core/clock.js";
import { TpmArgumentError, TpmFormatError, TpmNotFoundError, TpmStateError, TpmTimeoutError, TpmTransportError } from "../../errors/index.js";
import type { SendOptions } from "../../core/transport.js";
import { fromHex, toHex } from "../../wire/buffer.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeTpmDevice, TPMRM_UNKNOWN_COMMAND_RC } from "../../testing/fake-device.js";
import { DEFAULT_DEVICE_PATHS, linuxDevice } from "./linux-device.js";

const GET_RANDOM_8 = fromHex("80010000000c0000017b0008");
const RESPONSE_8 = "8001000000140000000000080001020304050607";

function opts(clock: FakeClock, over: Partial<SendOptions> = {}): SendOptions {
  return { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock, ...over };
}

function setup(options: { nodes?: string[]; denied?: string[]; delayMs?: number } = {}) {
  const clock = new FakeClock({ auto: true });
  const backend = new FakeTpmBackend({ answers: "tools", before: () => (options.delayMs ? clock.sleep(options.delayMs) : undefined) });
  const dev = new FakeTpmDevice({ backend, nodes: options.nodes, denied: options.denied });
  return { clock, backend, dev };
}

describe("FakeTpmDevice behaves as the Linux TPM character devices do (drivers/char/tpm/tpm-dev-common.c)", () => {
  it("lets /dev/tpm0 be opened once (second open EBUSY) and /dev/tpmrm0 many times", async () => {
    const { dev } = setup();
    await dev.open("/dev/tpm0");
    await expect(dev.open("/dev/tpm0")).rejects.toMatchObject({ code: "EBUSY" });
    await dev.open("/dev/tpmrm0");
    await dev.open("/dev/tpmrm0");
    expect(dev.openCount("/dev/tpmrm0")).toBe(2);
  });

  it("rejects writes over 4096 (E2BIG), short (EINVAL), and while a response is unread (EBUSY); read returns 0 when idle", async () => {
    const { dev } = setup();
    const f = await dev.open("/dev/tpmrm0");
    const buf = new Uint8Array(4096);
    expect(await f.read(buf)).toBe(0);
    await expect(f.write(new Uint8Array(4097))).rejects.toMatchObject({ code: "E2BIG" });
    await expect(f.write(new Uint8Array(5))).rejects.toMatchObject({ code: "EINVAL" });
    await expect(f.write(GET_RANDOM_8.subarray(0, 11))).rejects.toMatchObject({ code: "EINVAL" });
    expect(await f.write(GET_RANDOM_8)).toBe(12);
    await expect(f.write(GET_RANDOM_8)).rejects.toMatchObject({ code: "EBUSY" });
    await new Promise<void>((r) => setImmediate(r));
    expect(await f.read(buf.subarray(0, 6))).toBe(6); // partial read
    expect(await f.read(buf.subarray(6))).toBe(14);
    expect(toHex(buf.subarray(0, 20))).toBe(RESPONSE_8);
  });
});

describe("linuxDevice", () => {
  it("opens /dev/tpmrm0 by default and runs a command", async () => {
    const { dev, clock } = setup();
    const t = linuxDevice({ fs: dev });
    await t.open!({ clock, locality: 0 });
    expect(t.path).toBe("/dev/tpmrm0");
    expect(toHex(await t.send(GET_RANDOM_8, opts(clock)))).toBe(RESPONSE_8);
    expect(t.kind).toBe("device");
    expect(t.localities).toEqual([0]);
  });

  it("falls back to /dev/tpm0 when /dev/tpmrm0 does not exist", async () => {
    const { dev, clock } = setup({ nodes: ["/dev/tpm0"] });
    const t = linuxDevice({ fs: dev });
    await t.open!({ clock, locality: 0 });
    expect(t.path).toBe("/dev/tpm0");
    expect(dev.openCount("/dev/tpm0")).toBe(1);
  });

  it("throws TpmNotFoundError listing every path tried when no device node exists", async () => {
    const { dev, clock } = setup({ nodes: [] });
    const err = await linuxDevice({ fs: dev }).open!({ clock, locality: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmNotFoundError);
    expect((err as TpmNotFoundError).details).toContain("/dev/tpmrm0");
    expect((err as TpmNotFoundError).details).toContain("/dev/tpm0");
  });

  it("maps EACCES to a TpmTransportError with errno and a hint", async () => {
    const { dev, clock } = setup({ nodes: ["/dev/tpm0"], denied: ["/dev/tpm0"] });
    const err = await linuxDevice({ fs: dev, path: "/dev/tpm0" }).open!({ clock, locality: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as TpmTransportError).errno).toBe("EACCES");
    expect((err as TpmTransportError).details).toMatch(/tss/);
  });

  it("maps a second opener of /dev/tpm0 to EBUSY", async () => {
    const { dev, clock } = setup();
    await linuxDevice({ fs: dev, path: "/dev/tpm0" }).open!({ clock, locality: 0 });
    const err = await linuxDevice({ fs: dev, path: "/dev/tpm0" }).open!({ clock, locality: 0 }).catch((e: unknown) => e);
    expect((err as TpmTransportError).errno).toBe("EBUSY");
  });

  it("passes E2BIG and EINVAL from write() through as typed errors", async () => {
    const { dev, clock } = setup();
    const t = linuxDevice({ fs: dev });
    const big = new Uint8Array(5000);
    big.set(fromHex("8001000013880000017b"));
    const e1 = await t.send(big, opts(clock)).catch((e: unknown) => e);
    expect((e1 as TpmTransportError).errno).toBe("E2BIG");
    dev.faults.writeErrno = "EINVAL";
    const e2 = await t.send(GET_RANDOM_8, opts(clock)).catch((e: unknown) => e);
    expect((e2 as TpmTransportError).errno).toBe("EINVAL");
  });

  it("returns the resource manager's synthetic 0x000B0143 response for an unknown command", async () => {
    const { dev, clock, backend } = setup();
    const t = linuxDevice({ fs: dev, path: "/dev/tpmrm0" });
    const rsp = await t.send(fromHex("80010000000a20000001"), opts(clock));
    expect(toHex(rsp)).toBe("80010000000a" + TPMRM_UNKNOWN_COMMAND_RC.toString(16).padStart(8, "0"));
    expect(backend.commands).toHaveLength(0);
  });

  it("polls on the clock while the command runs (no event-loop blocking) and returns the response", async () => {
    const { dev, clock } = setup({ delayMs: 300 });
    const t = linuxDevice({ fs: dev });
    const rsp = await t.send(GET_RANDOM_8, opts(clock));
    expect(toHex(rsp)).toBe(RESPONSE_8);
    expect(clock.now()).toBeGreaterThanOrEqual(300);
    expect(clock.now()).toBeLessThan(330); // poll interval capped at 20 ms
  });

  it("times out at the command's deadline when the response never comes", async () => {
    const { dev, clock } = setup();
    dev.faults.hang = true;
    const t = linuxDevice({ fs: dev });
    const err = await t.send(GET_RANDOM_8, opts(clock, { timeoutMs: 750 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTimeoutError);
    expect(clock.now()).toBe(750);
  });

  it("aborts promptly, then drains the late response before the next command", async () => {
    const { dev, clock } = setup({ delayMs: 500 });
    const t = linuxDevice({ fs: dev });
    const ac = new AbortController();
    clock.setTimer(100, () => ac.abort());
    const err = await t.send(GET_RANDOM_8, opts(clock, { signal: ac.signal })).catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
    expect(clock.now()).toBeLessThan(500);
    // The kernel would answer EBUSY while the old response is unread; the transport drains it.
    const rsp = await t.send(GET_RANDOM_8, opts(clock));
    expect(toHex(rsp).slice(24)).toBe("0102030405060708"); // the second GetRandom's bytes, not the first's
    expect(dev.commands).toHaveLength(2);
  });

  it("rejects a response whose header size lies, or that is shorter than a header", async () => {
    const { dev, clock } = setup();
    const t = linuxDevice({ fs: dev });
    dev.faults.response = (r) => {
      const c = r.slice();
      c[5] = 0x30;
      return c;
    };
    await expect(t.send(GET_RANDOM_8, opts(clock))).rejects.toBeInstanceOf(TpmFormatError);
    dev.faults.response = (r) => r.subarray(0, 8);
    await expect(t.send(GET_RANDOM_8, opts(clock))).rejects.toBeInstanceOf(TpmFormatError);
  });

  it("reports a failed command (EIO from read) and a short write as TpmTransportError", async () => {
    const clock = new FakeClock({ auto: true });
    const dev = new FakeTpmDevice({ backend: { execute: () => Promise.reject(new Error("bus error")) } });
    const t = linuxDevice({ fs: dev });
    const e1 = await t.send(GET_RANDOM_8, opts(clock)).catch((e: unknown) => e);
    expect((e1 as TpmTransportError).errno).toBe("EIO");
    dev.faults.shortWrite = 4;
    const e2 = await t.send(GET_RANDOM_8, opts(clock)).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(TpmTransportError);
    expect((e2 as Error).message).toMatch(/short write, 4 of 12/);
  });

  it("refuses localities other than 0 and sends after close", async () => {
    const { dev, clock } = setup();
    const t = linuxDevice({ fs: dev, path: "/dev/tpm0" });
    await expect(t.send(GET_RANDOM_8, opts(clock, { locality: 3 }))).rejects.toBeInstanceOf(TpmArgumentError);
    await t.open!({ clock, locality: 0 });
    await t.close!();
    await t.close!();
    expect(dev.openCount("/dev/tpm0")).toBe(0);
    await expect(t.send(GET_RANDOM_8, opts(clock))).rejects.toBeInstanceOf(TpmStateError);
  });

  it("talks to the real device named by TPM_DEVICE; unset, the default search reports what exists", async () => {
    const real = process.env.TPM_DEVICE;
    if (real) {
      const t = linuxDevice({ path: real });
      try {
        const rsp = await t.send(GET_RANDOM_8, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock: systemClock });
        expect(toHex(rsp.subarray(0, 2))).toBe("8001");
        expect(rsp.length).toBe(20);
      } finally {
        await t.close!();
      }
      return;
    }
    const t = linuxDevice();
    const err = await t.open!({ clock: new FakeClock(), locality: 0 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await t.close!();
    const present = DEFAULT_DEVICE_PATHS.filter((p) => existsSync(p));
    if (present.length === 0) {
      expect(err).toBeInstanceOf(TpmNotFoundError);
      expect((err as TpmNotFoundError).shortMessage).toBe("no TPM device: tried /dev/tpmrm0, /dev/tpm0");
    } else if (err === undefined) {
      expect(t.path).toBe(present[0]);
    } else {
      expect(err).toBeInstanceOf(TpmTransportError); // exists but not openable here (EACCES, EBUSY)
    }
  });
});
