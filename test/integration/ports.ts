/**
 * Free loopback ports for tests that start real peers. Ports come first from 20000–31999, below
 * Linux's default ephemeral range, so neither outgoing connections nor the thousands of TIME-WAIT
 * sockets tcti-swtpm leaves behind (one connection per command) can hold port + 1.
 */
import * as net from "node:net";
import { portPairCandidate } from "../../src/server/common.js";

function tryListen(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(undefined));
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

const close = (s: net.Server) => new Promise<void>((r) => s.close(() => r()));

/** A port P with P and P + 1 both free (swtpm's data and control, mssim's command and platform). */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 60; attempt++) {
    const a = await tryListen(portPairCandidate(attempt));
    if (!a) continue;
    const port = (a.address() as net.AddressInfo).port;
    const b = port < 0xffff ? await tryListen(port + 1) : undefined;
    await close(a);
    if (b) {
      await close(b);
      return port;
    }
  }
  throw new Error("no free adjacent port pair on 127.0.0.1");
}

/** One free port. */
export async function freePort(): Promise<number> {
  return freePortPair();
}
