/**
 * Issue 9, finding 5: `-T device:PATH` must never write a TPM command into something that is not
 * a character device (a regular file, as root any file). The transport fstat()s after open and
 * before any write.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock, systemClock } from "../../core/clock.js";
import { TpmNotFoundError, TpmTransportError } from "../../errors/index.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeTpmDevice } from "../../testing/fake-device.js";
import { fromHex, toHex } from "../../wire/buffer.js";
import { nodeDeviceFs } from "./fs.js";
import { linuxDevice } from "./linux-device.js";

const GET_RANDOM_8 = fromHex("80010000000c0000017b0008");
const send = (clock = systemClock) => ({ signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe("linuxDevice refuses a path that is not a character device", () => {
  it("writes nothing into a real regular file (node:fs) and fails with TpmNotFoundError", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tpmkit-notdev-"));
    dirs.push(dir);
    const file = join(dir, "precious.txt");
    writeFileSync(file, "keep me\n");
    const before = statSync(file);
    const t = linuxDevice({ path: file });
    const err = await t.send(GET_RANDOM_8, send()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TpmNotFoundError);
    expect((err as Error).message).toContain(`${file} is a regular file, not a TPM character device; nothing was written to it`);
    await expect(t.open!({ clock: systemClock, locality: 0 })).rejects.toBeInstanceOf(TpmNotFoundError);
    await t.close!();
    expect(readFileSync(file, "utf8")).toBe("keep me\n");
    expect(statSync(file).size).toBe(before.size);
    expect(statSync(file).mtimeMs).toBe(before.mtimeMs);
  });

  it("nodeDeviceFs reports a regular file as a file and /dev/null as a character device", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tpmkit-notdev-"));
    dirs.push(dir);
    const file = join(dir, "f");
    writeFileSync(file, "");
    const f = await nodeDeviceFs.open(file);
    expect((await f.stat()).kind).toBe("file");
    await f.close();
    const n = await nodeDeviceFs.open("/dev/null");
    expect((await n.stat()).kind).toBe("character");
    await n.close();
  });

  it("with FakeTpmDevice: a node that fstat reports as a file is closed unwritten, and the default search moves on", async () => {
    const clock = new FakeClock({ auto: true });
    const dev = new FakeTpmDevice({ backend: new FakeTpmBackend({ answers: "tools" }), kinds: { "/dev/tpmrm0": "file" } });
    const t = linuxDevice({ fs: dev, path: "/dev/tpmrm0" });
    await expect(t.send(GET_RANDOM_8, send(clock))).rejects.toThrow(/\/dev\/tpmrm0 is a regular file, not a TPM character device/);
    expect(dev.commands).toHaveLength(0);
    expect(dev.openCount("/dev/tpmrm0")).toBe(0); // closed again
    const d = linuxDevice({ fs: dev });
    expect(toHex(await d.send(GET_RANDOM_8, send(clock)))).toBe("8001000000140000000000080001020304050607");
    expect(d.path).toBe("/dev/tpm0");
    await d.close!();
  });

  it("with FakeTpmDevice: a FIFO, a block device or a socket is refused too; a failing fstat is a TpmTransportError", async () => {
    const clock = new FakeClock({ auto: true });
    for (const kind of ["fifo", "block", "socket", "directory", "other"] as const) {
      const dev = new FakeTpmDevice({ backend: new FakeTpmBackend({ answers: "tools" }), nodes: ["/x"], kinds: { "/x": kind } });
      await expect(linuxDevice({ fs: dev, path: "/x" }).send(GET_RANDOM_8, send(clock))).rejects.toBeInstanceOf(TpmNotFoundError);
      expect(dev.commands).toHaveLength(0);
    }
    const written: Uint8Array[] = [];
    const broken = {
      open: async () => ({
        write: async (d: Uint8Array) => (written.push(d), d.length),
        read: async () => 0,
        stat: async () => {
          throw Object.assign(new Error("EIO: fstat"), { code: "EIO" });
        },
        close: async () => undefined,
      }),
    };
    await expect(linuxDevice({ fs: broken, path: "/y" }).send(GET_RANDOM_8, send(clock))).rejects.toBeInstanceOf(TpmTransportError);
    const noStat = { open: async () => ({ write: async (d: Uint8Array) => (written.push(d), d.length), read: async () => 0, close: async () => undefined }) };
    await expect(linuxDevice({ fs: noStat as never, path: "/z" }).send(GET_RANDOM_8, send(clock))).rejects.toBeInstanceOf(TpmTransportError);
    expect(written).toHaveLength(0);
  });
});
