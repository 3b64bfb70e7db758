import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { systemClock, type Clock } from "../core/clock.js";
import { TpmTimeoutError, TpmTransportError } from "../errors/index.js";
import { connectSocket, formatAddress } from "./connect.js";

/** A clock whose timers fire on the next microtask: a connect bound by it always times out first. */
const instantClock: Clock = {
  now: () => 0,
  sleep: () => Promise.resolve(),
  setTimer: (_ms, fn) => {
    let cleared = false;
    queueMicrotask(() => {
      if (!cleared) fn();
    });
    return { clear: () => void (cleared = true) };
  },
};

async function listening(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

describe("connectSocket: one bounded, abortable connect with one error shape", () => {
  it("connects over TCP (TCP_NODELAY on) and over a UNIX socket", async () => {
    const { server, port } = await listening();
    const s = await connectSocket({ port }, { clock: systemClock, timeoutMs: 2000, label: "test" });
    expect(s.remotePort).toBe(port);
    s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    const p = path.join(os.tmpdir(), `tpmkit-connect-${process.pid}.sock`);
    const unix = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => unix.listen(p, r));
    const u = await connectSocket({ path: p }, { clock: systemClock, timeoutMs: 2000, label: "test" });
    u.destroy();
    await new Promise<void>((r) => unix.close(() => r()));
  });

  it("reports a refused connect as TpmTransportError with the errno, naming the peer", async () => {
    const { server, port } = await listening();
    await new Promise<void>((r) => server.close(() => r()));
    const err = await connectSocket({ host: "127.0.0.1", port }, { clock: systemClock, timeoutMs: 2000, label: "mssim command port" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmTransportError);
    expect((err as TpmTransportError).errno).toBe("ECONNREFUSED");
    expect((err as Error).message).toContain(`mssim command port: cannot connect to 127.0.0.1:${port}`);
    const missing = await connectSocket({ path: path.join(os.tmpdir(), "tpmkit-no-such.sock") }, { clock: systemClock, timeoutMs: 2000, label: "t" }).catch((e: unknown) => e);
    expect((missing as TpmTransportError).errno).toBe("ENOENT");
  });

  it("reports a connect past its bound as TpmTimeoutError (not a transport errno)", async () => {
    const { server, port } = await listening();
    try {
      const err = await connectSocket({ port }, { clock: instantClock, timeoutMs: 250, label: "swtpm data channel" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmTimeoutError);
      expect((err as TpmTimeoutError).timeoutMs).toBe(250);
      expect((err as TpmTimeoutError).operation).toBe(`swtpm data channel: connect to 127.0.0.1:${port}`);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("rejects with the abort error when the signal aborts, before or during the connect", async () => {
    const { server, port } = await listening();
    try {
      const before = new AbortController();
      before.abort();
      await expect(connectSocket({ port }, { clock: systemClock, timeoutMs: 2000, signal: before.signal, label: "t" })).rejects.toMatchObject({ name: "AbortError" });
      const during = new AbortController();
      const p = connectSocket({ port }, { clock: systemClock, timeoutMs: 2000, signal: during.signal, label: "t" });
      during.abort(new TpmTransportError("deadline", { errno: "ETIME" }));
      await expect(p).rejects.toMatchObject({ errno: "ETIME" });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("formats addresses: default host, IPv6 in brackets, paths as they are", () => {
    expect(formatAddress({ port: 2321 })).toBe("127.0.0.1:2321");
    expect(formatAddress({ host: "::1", port: 2321 })).toBe("[::1]:2321");
    expect(formatAddress({ path: "/run/swtpm.sock" })).toBe("/run/swtpm.sock");
  });
});
