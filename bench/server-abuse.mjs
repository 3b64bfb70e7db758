// tpmkit server abuse benchmark (issue 9, finding 2): the RSS of a server under a client that
// never reads. Prints one JSON object per line, one per protocol.
//   npm run build && node bench/server-abuse.mjs
// For each protocol (swtpm, mssim) a server over memory(SoftTpm) runs in a child process
// (node --expose-gc); a client pipelines TPM2_GetCapability(TPM_PROPERTIES, TPM_PT_FIXED, 64)
// for BENCH_SECONDS seconds (default 10), writing whenever its socket drains and never reading.
// Reported: the child's RSS before the flood (after gc), the peak sampled every 50 ms during it,
// and after the client left (after gc, BENCH_SETTLE_MS later, default 1000); the commands the
// server answered, the bytes the client managed to send, and the server's own peakUnsentBytes.
import { fork } from "node:child_process";
import * as net from "node:net";
import { fileURLToPath } from "node:url";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 1000);
const GET_CAP = Buffer.from([0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7a, 0, 0, 0, 6, 0, 0, 1, 0, 0, 0, 0, 64]);

if (process.argv[2] === "child") {
  const { SoftTpm, Tpm, memory, serveMssim, serveSwtpm } = await import("../dist/index.js");
  const protocol = process.argv[3];
  const tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
  let commands = 0;
  const chip = { transmit: (c, o) => (commands++, tpm.chip.transmit(c, o)) };
  const server = protocol === "swtpm" ? await serveSwtpm({ chip, port: 0 }) : await serveMssim({ chip, port: 0 }, { poweredOn: true });
  const port = protocol === "swtpm" ? server.address.port : server.port;
  const peak = () => (protocol === "swtpm" ? server.stats.peakUnsentBytes : server.peakUnsentBytes);
  process.on("message", (m) => {
    if (m === "gc") globalThis.gc?.();
    if (m === "exit") return void server.close().then(() => process.exit(0));
    process.send({ rss: process.memoryUsage.rss(), commands, peakUnsentBytes: peak() });
  });
  process.send({ port });
} else {
  const here = fileURLToPath(import.meta.url);
  for (const protocol of ["swtpm", "mssim"]) {
    const child = fork(here, ["child", protocol], { execArgv: ["--expose-gc"] });
    const next = () => new Promise((r) => child.once("message", r));
    const ask = async (m) => (child.send(m), next());
    const { port } = await next();
    await ask("gc");
    await new Promise((r) => setTimeout(r, 200));
    await ask("gc");
    const before = (await ask("sample")).rss;
    const frame = protocol === "swtpm" ? GET_CAP : Buffer.concat([Buffer.from([0, 0, 0, 8, 0, 0, 0, 0, GET_CAP.length]), GET_CAP]);
    const batch = Buffer.concat(Array.from({ length: 256 }, () => frame));
    const c = net.connect({ port, host: "127.0.0.1" });
    c.on("error", () => undefined);
    await new Promise((r) => c.once("connect", r));
    c.pause(); // never reads
    let sent = 0;
    let flooding = true;
    const pump = () => {
      while (flooding && c.write(batch)) sent += batch.length;
      if (flooding) sent += batch.length;
    };
    c.on("drain", pump);
    pump();
    let peak = before;
    const end = Date.now() + SECONDS * 1000;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      peak = Math.max(peak, (await ask("sample")).rss);
    }
    flooding = false;
    const during = await ask("sample");
    c.destroy();
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    await ask("gc");
    const after = await ask("sample");
    const mb = (n) => Math.round((n / 1048576) * 10) / 10;
    console.log(
      JSON.stringify({
        protocol,
        seconds: SECONDS,
        rss_before_mb: mb(before),
        rss_peak_mb: mb(peak),
        rss_after_mb: mb(after.rss),
        commands_answered: during.commands,
        client_bytes_queued: sent,
        server_peak_unsent_bytes: during.peakUnsentBytes,
      }),
    );
    child.send("exit");
    await new Promise((r) => child.once("exit", r));
  }
}
