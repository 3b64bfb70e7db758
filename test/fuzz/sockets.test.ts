/**
 * Fuzz targets over in-process sockets (see ./run.ts for counts): both servers' data ports, the
 * swtpm control channel, the mssim platform port, the swtpm and mssim clients. node:net is
 * mocked (./net-hooks.ts): each net.Server created is recorded and driven with FakeSockets, and a
 * connection to a registered /fuzz/ path gets a FakeSocket peer.
 */
import { expect, it, vi } from "vitest";

vi.mock("node:net", async (importOriginal) => (await import("./net-hooks.js")).mockNet(await importOriginal()));

const { fuzzTests } = await import("./run.js");
const t = await import("./targets.js");

fuzzTests("sockets", [t.swtpmServer, t.mssimServer, t.swtpmControl, t.mssimPlatform, t.swtpmClient, t.mssimClient]);

it("swtpm control CMD_SHUTDOWN (the one control code the fuzzer leaves out): answered 0, then an orderly close", async () => {
  const { reply, reason } = await t.swtpmControlShutdown();
  expect(Array.from(reply)).toEqual([0, 0, 0, 0]);
  expect(reason).toBe("shutdown");
});
