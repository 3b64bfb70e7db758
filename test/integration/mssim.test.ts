/**
 * The mssim transport and server against real peers: tpm2-tools' tcti-mssim driving
 * serveMssim, and the mssim transport pointed (by mistake) at a real swtpm.
 * tpm2-tools and swtpm must be installed (.ci/run installs them); a missing tool FAILS here.
 */
import { describe, it, expect, afterEach } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Chip } from "../../src/core/chip.js";
import { systemClock } from "../../src/core/clock.js";
import { fromHex, toHex } from "../../src/wire/buffer.js";
import { serveMssim } from "../../src/server/mssim.js";
import { mssim, MssimSwtpmDetectedError } from "../../src/transports/mssim/index.js";
import { FakeTpmBackend } from "../../src/testing/fake-backend.js";
import { startSwtpm } from "./swtpm-peer.js";

const run = promisify(execFile);
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function startServer() {
  const backend = new FakeTpmBackend({ answers: "tools" });
  const server = await serveMssim({ chip: { transmit: (c, o) => backend.execute(c, o?.locality ?? 0, o?.signal), cancel: () => backend.cancel?.() } });
  cleanups.push(() => server.close());
  return { server, backend };
}


describe("tpm2-tools (tcti-mssim) against serveMssim", () => {
  it("tpm2_getrandom -T mssim:host=127.0.0.1,port=P 8 --hex prints the backend's bytes", async () => {
    const { server, backend } = await startServer();
    const { stdout } = await run("tpm2_getrandom", ["-T", `mssim:host=127.0.0.1,port=${server.port}`, "8", "--hex"], { timeout: 15000 });
    expect(stdout.trim()).toBe("0001020304050607");
    // tcti-mssim powered the simulator on and turned NV on before the first command.
    expect(server.poweredOn).toBe(true);
    expect(server.nvOn).toBe(true);
    expect(backend.commands.map((c) => c.code.toString(16))).toContain("17b");
  });

  it("serves several tpm2_getrandom runs in a row (one client after another)", async () => {
    const { server } = await startServer();
    const outs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { stdout } = await run("tpm2_getrandom", ["-T", `mssim:host=127.0.0.1,port=${server.port}`, "4", "--hex"], { timeout: 15000 });
      outs.push(stdout.trim());
    }
    expect(outs).toEqual(["00010203", "01020304", "02030405"]);
  });
});

describe("tpm2-tools driving a real swtpm through serveMssim (Chip bridge)", () => {
  it("tpm2_startup, tpm2_pcrextend and tpm2_pcrread give the value swtpm gives directly", async () => {
    const sw = await startSwtpm({ flags: "not-need-init", prefix: "tpmkit-mssim-bridge-" });
    cleanups.push(() => sw.stop());
    const port = sw.port;
    const chip = new Chip(mssim({ port, powerOn: false }));
    cleanups.push(() => chip.close());
    await chip.open();
    const server = await serveMssim({ chip });
    cleanups.push(() => server.close());
    const T = ["-T", `mssim:host=127.0.0.1,port=${server.port}`];
    await run("tpm2_startup", [...T, "-c"], { timeout: 15000 });
    await run("tpm2_pcrextend", [...T, "0:sha256=0000000000000000000000000000000000000000000000000000000000000001"], { timeout: 15000 });
    const { stdout } = await run("tpm2_pcrread", [...T, "sha256:0"], { timeout: 15000 });
    // Value measured with tpm2-tools 5.4 straight against swtpm 0.7.1.
    expect(stdout).toContain("0x90F4B39548DF55AD6187A1D20D731ECEE78C545B94AFD16F42EF7592D99CD365");
  });
});

describe("mssim transport through a Chip against serveMssim", () => {
  it("opens (power on, NV on) and transmits GetRandom", async () => {
    const { server } = await startServer();
    const chip = new Chip(mssim({ port: server.port }), { clock: systemClock });
    cleanups.push(() => chip.close());
    await chip.open();
    const rsp = await chip.transmit(fromHex("80010000000c0000017b0008"));
    expect(toHex(rsp)).toBe("8001000000140000000000080001020304050607");
  });
});

describe("mssim transport pointed at a real swtpm", () => {
  it("fails open() with MssimSwtpmDetectedError naming the swtpm TCTI", async () => {
    const sw = await startSwtpm({ prefix: "tpmkit-mssim-swtpm-" });
    cleanups.push(() => sw.stop());
    const port = sw.port;
    const t = mssim({ port });
    cleanups.push(() => t.close!());
    const err = await t.open!({ clock: systemClock, locality: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MssimSwtpmDetectedError);
    expect((err as Error).message).toContain(`this looks like a swtpm; use swtpm:host=127.0.0.1,port=${port}`);

    // swtpm does understand TPM_SEND_COMMAND framing on its data port (swtpm 0.7.1, measured):
    // with the power-on signals skipped, the mssim transport talks to it.
    const direct = mssim({ port, powerOn: false });
    cleanups.push(() => direct.close!());
    const rsp = await direct.send(fromHex("80010000000c0000017b0008"), {
      signal: new AbortController().signal,
      locality: 0,
      timeoutMs: 5000,
      clock: systemClock,
    });
    expect(toHex(rsp.subarray(0, 12))).toBe("800100000014000000000008");
  });
});
