// tpmkit swtpm benchmark (GitHub issue 3, point 7): tpmkit's swtpm transport against the C peer.
// Prints one JSON object per line.
//
//   npm run build && node --expose-gc bench/swtpm.mjs
//
// Environment:
//   BENCH_N        commands per timed run, per path (default 5000; the peer gets the same N)
//   BENCH_ROUNDS   interleaved rounds; every figure is the median over rounds (default 5)
//   PEER_BENCH     path of peer-bench.sh, the C peer (tpm2-tss over swtpm; not part of this repository);
//                  unset, the C peer is skipped (then no tpm2-tss ratios are printed)
//
// Paths measured, all sequential TPM2_GetRandom(16) unless named otherwise:
//   tpmkit/transport     swtpm().send(cmd)                     (the transport alone, no chip)
//   tpmkit/typed         Tpm.open(swtpm()) then tpm.getRandom(16)   (codec + Chip + transport)
//   tpmkit/typed-pcrread tpm.pcrRead({ sha256: [0] })         (the counterpart of ESYS_PCR_Read)
//   node-raw-socket      a bare node:net socket: hand-built command, header-then-body read
//                        (the Node floor: what any Node client can reach)
//   tpm2-tss/tcti-getrandom, tpm2-tss/esys-pcrread, c-raw-socket/raw-*-getrandom
//                        from peer-bench.sh, over its own swtpm, in the same run
// Each over TCP (loopback, free port) and over a UNIX socket, against swtpm processes this script
// starts (state in temp dirs) and stops by PID at the end, also on error or Ctrl-C.
// The last line holds the ratios (cmd/s of tpmkit ÷ cmd/s of the peer; targets: vs tpm2-tss TCP
// ≥ 1.3, UNIX ≥ 1.0; vs the raw C socket ≥ 0.65), as "median" (per-round ratio, median over
// rounds) and "best" (fastest run of each path).
import { spawnSync, execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { Tpm, swtpm, systemClock } from "../dist/index.js";

const N = Number(process.env.BENCH_N ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PEER_BENCH = process.env.PEER_BENCH ?? "";
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error("BENCH_N and BENCH_ROUNDS must be positive integers");
  process.exit(2);
}

// TPM2_GetRandom(bytesRequested = 16), TPM_ST_NO_SESSIONS (TPM 2.0 Part 3 §16.1).
const GETRANDOM16 = Uint8Array.from([0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x10]);

// ---------------------------------------------------------------------------------------------
// swtpm processes (started here, stopped by PID)

const started = []; // { pid, dir }
function stopAll() {
  for (const s of started.splice(0)) {
    try {
      process.kill(s.pid, "SIGTERM");
    } catch {
      // already gone
    }
    rmSync(s.dir, { recursive: true, force: true });
  }
}
process.on("exit", stopAll);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    stopAll();
    process.exit(130);
  });
}

/**
 * A loopback port p with p and p + 1 both bindable (swtpm's control channel sits at p + 1).
 * Candidates come from below the kernel's ephemeral range (ip_local_port_range starts at 32768):
 * tcti-swtpm connects once per command, so a peer run leaves tens of thousands of TIME-WAIT
 * sockets on ephemeral ports, and a listener cannot bind a port that has one.
 */
async function freePortPair(avoid = []) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const p = 20000 + Math.floor(Math.random() * 12000);
    if (avoid.some((a) => Math.abs(a - p) <= 1)) continue;
    try {
      await listenOnce(p);
      await listenOnce(p + 1);
      return p;
    } catch {
      // taken: try another
    }
  }
  throw new Error("no free loopback port pair found in 20000-32000");
}
function listenOnce(port) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(port, "127.0.0.1", () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `swtpm socket --tpm2` (the flags that worked against swtpm 0.7.1; see swtpm(8)) and waits until it answers. */
async function startSwtpm(kind, port) {
  const dir = mkdtempSync(join(tmpdir(), `tpmkit-bench-${kind}-`));
  const pidFile = join(dir, "pid");
  const server = kind === "tcp" ? `type=tcp,port=${port},bindaddr=127.0.0.1` : `type=unixio,path=${join(dir, "s")}`;
  const ctrl = kind === "tcp" ? `type=tcp,port=${port + 1},bindaddr=127.0.0.1` : `type=unixio,path=${join(dir, "s.ctrl")}`;
  const args = ["socket", "--tpm2", "--tpmstate", `dir=${dir}`, "--server", server, "--ctrl", ctrl, "--flags", "not-need-init,startup-clear", "--pid", `file=${pidFile}`, "--daemon"];
  const r = spawnSync("swtpm", args, { encoding: "utf8", timeout: 10_000 });
  if (r.error || r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`swtpm ${kind} did not start: ${r.error?.message ?? r.stderr}`);
  }
  let pid = 0;
  for (let i = 0; i < 100 && !pid; i++) {
    if (existsSync(pidFile)) pid = Number(readFileSync(pidFile, "utf8").trim()) || 0;
    if (!pid) await sleep(50);
  }
  if (!pid) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`swtpm ${kind} wrote no pid file`);
  }
  started.push({ pid, dir });
  const endpoint = kind === "tcp" ? { host: "127.0.0.1", port } : { path: join(dir, "s") };
  // Ready when one GetRandom goes through (the daemon may still be setting up its sockets).
  for (let i = 0; ; i++) {
    try {
      const raw = await rawConnect(endpoint);
      await raw.roundTrip(GETRANDOM16);
      raw.destroy();
      await sleep(20); // let swtpm notice the close before the next client connects
      break;
    } catch (e) {
      if (i >= 100) throw new Error(`swtpm ${kind} (pid ${pid}) does not answer: ${e.message}`);
      await sleep(50);
    }
  }
  return { kind, pid, endpoint };
}

// ---------------------------------------------------------------------------------------------
// The Node floor: one persistent socket, hand-built command, header-then-body read.

/**
 * Connects a bare node:net socket. Reads go into one preallocated buffer through `onread` (no
 * stream machinery, no per-read allocation): the fastest way Node offers to read a socket, so this
 * is a fair floor. `raw.roundTrip(cmd)` writes the command in one write and resolves with the
 * whole response, framed by the size field of its 10-byte header.
 */
function rawConnect(endpoint) {
  const buf = new Uint8Array(64 * 1024);
  const hdr = new Uint8Array(10);
  let pending; // { resolve, reject }
  let resp; // response being assembled
  let fill = 0; // bytes of hdr (resp undefined) or of resp
  const fail = (e) => {
    const p = pending;
    pending = undefined;
    p?.reject(e);
  };
  const onread = (nread) => {
    let off = 0;
    while (off < nread) {
      if (!pending) return fail(new Error("unexpected bytes from swtpm")), true;
      if (!resp) {
        const take = Math.min(10 - fill, nread - off);
        hdr.set(buf.subarray(off, off + take), fill);
        fill += take;
        off += take;
        if (fill < 10) break;
        const size = ((hdr[2] << 24) | (hdr[3] << 16) | (hdr[4] << 8) | hdr[5]) >>> 0;
        if (size < 10 || size > 4096) return fail(new Error(`bad response size ${size}`)), true;
        resp = new Uint8Array(size);
        resp.set(hdr);
      }
      const take = Math.min(resp.length - fill, nread - off);
      resp.set(buf.subarray(off, off + take), fill);
      fill += take;
      off += take;
      if (fill === resp.length) {
        if (off < nread) return fail(new Error("trailing bytes after the response")), true;
        const p = pending;
        const r = resp;
        pending = undefined;
        resp = undefined;
        fill = 0;
        p.resolve(r);
      }
    }
    return true;
  };
  return new Promise((resolve, reject) => {
    const opts = { onread: { buffer: buf, callback: onread } };
    const sock = "path" in endpoint ? net.connect({ path: endpoint.path, ...opts }) : net.connect({ port: endpoint.port, host: endpoint.host, noDelay: true, ...opts });
    sock.once("error", reject);
    sock.once("connect", () => {
      sock.off("error", reject);
      sock.on("error", fail);
      sock.on("close", () => fail(new Error("swtpm closed the connection")));
      resolve({
        roundTrip(cmd) {
          return new Promise((res, rej) => {
            pending = { resolve: res, reject: rej };
            fill = 0;
            resp = undefined;
            sock.write(cmd);
          });
        },
        destroy: () => sock.destroy(),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Timing

/** Times `n` sequential awaits of `fn` after a warm-up; returns µs per command. */
async function time(fn, n) {
  for (let i = 0; i < Math.min(500, n); i++) await fn();
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / n / 1000;
}

/** One sample of each tpmkit path over one swtpm; each path holds the single data connection alone. */
const paths = {
  async "tpmkit/transport"(endpoint) {
    const t = swtpm(endpoint);
    const signal = new AbortController().signal;
    const opts = { signal, locality: 0, timeoutMs: 30_000, clock: systemClock };
    await t.open({ locality: 0, clock: systemClock });
    try {
      return await time(() => t.send(GETRANDOM16, opts), N);
    } finally {
      await t.close();
    }
  },
  async "tpmkit/typed"(endpoint) {
    const tpm = await Tpm.open(swtpm(endpoint));
    try {
      return await time(() => tpm.getRandom(16), N);
    } finally {
      await tpm.close();
    }
  },
  async "tpmkit/typed-pcrread"(endpoint) {
    const tpm = await Tpm.open(swtpm(endpoint));
    try {
      return await time(() => tpm.pcrRead({ sha256: [0] }), N);
    } finally {
      await tpm.close();
    }
  },
  async "node-raw-socket"(endpoint) {
    const raw = await rawConnect(endpoint);
    try {
      return await time(() => raw.roundTrip(GETRANDOM16), N);
    } finally {
      raw.destroy();
    }
  },
};

/** Runs peer-bench.sh once; returns its JSON lines (or throws with its stderr). */
function runPeer(port) {
  return new Promise((resolve, reject) => {
    execFile("bash", [PEER_BENCH, String(N)], { env: { ...process.env, PEER_PORT: String(port) }, timeout: 600_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`peer-bench.sh failed: ${stderr.trim() || err.message}`));
      resolve(
        stdout
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l)),
      );
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---------------------------------------------------------------------------------------------
// Main

const samples = new Map(); // "path|name" -> [us]
const add = (transport, name, us) => {
  const k = `${transport}|${name}`;
  if (!samples.has(k)) samples.set(k, []);
  samples.get(k).push(us);
};

let peerError;
try {
  const tcpPort = await freePortPair();
  const tcp = await startSwtpm("tcp", tcpPort);
  const unix = await startSwtpm("unix", 0);
  const names = Object.keys(paths);
  const usePeer = PEER_BENCH !== "" && existsSync(PEER_BENCH);
  if (!usePeer) peerError = PEER_BENCH === "" ? "skipped (PEER_BENCH not set)" : `${PEER_BENCH} not found`;
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order each round so no path always runs first (warm caches, CPU frequency).
    const order = names.map((_, i) => names[(i + r) % names.length]);
    const servers = r % 2 ? [unix, tcp] : [tcp, unix];
    for (const s of servers) {
      for (const name of order) {
        add(s.kind, name, await paths[name](s.endpoint));
        await sleep(20); // swtpm serves one data connection at a time: let it see the close
      }
    }
    if (usePeer && !peerError) {
      try {
        const port = await freePortPair([tcpPort]);
        for (const row of await runPeer(port)) add(row.path, `${row.peer}/${row.mode}`, row.us_per_cmd);
      } catch (e) {
        peerError = e.message;
      }
    }
  }
} finally {
  stopAll();
}

for (const [k, us] of samples) {
  const [transport, name] = k.split("|");
  const med = median(us);
  console.log(
    JSON.stringify({
      bench: "swtpm-getrandom16",
      transport,
      path: name,
      n: N,
      rounds: us.length,
      cmd_per_s: Math.round(1e6 / med),
      us_per_cmd: +med.toFixed(2),
      best_us_per_cmd: +Math.min(...us).toFixed(2),
      runs_us: us.map((x) => +x.toFixed(1)),
    }),
  );
}
if (peerError) console.log(JSON.stringify({ bench: "swtpm-getrandom16", peer: "unavailable", reason: peerError }));

// Ratio of cmd/s = inverse ratio of µs/cmd. "median": taken per round (tpmkit and the peer ran in
// the same round, seconds apart, under the same load), then the median over rounds. "best": the
// fastest run of each path over all rounds (what the paths reach when the machine is quiet).
const ratioMedian = (a, b) => {
  const x = samples.get(a);
  const y = samples.get(b);
  if (!x || !y) return null;
  const n = Math.min(x.length, y.length);
  return +median(x.slice(0, n).map((us, i) => y[i] / us)).toFixed(2);
};
const ratioBest = (a, b) => {
  const x = samples.get(a);
  const y = samples.get(b);
  return x && y ? +(Math.min(...y) / Math.min(...x)).toFixed(2) : null;
};
const ratios = { bench: "swtpm-ratios", n: N, rounds: ROUNDS, cpus: cpus().length, loadavg_1m: +loadavg()[0].toFixed(2) };
for (const t of ["tcp", "unix"]) {
  const tssTarget = t === "tcp" ? 1.3 : 1.0;
  for (const [kind, ratio] of [["median", ratioMedian], ["best", ratioBest]]) {
    const r = {
      transport_vs_tss_tcti: ratio(`${t}|tpmkit/transport`, `${t}|tpm2-tss/tcti-getrandom`),
      typed_vs_tss_tcti: ratio(`${t}|tpmkit/typed`, `${t}|tpm2-tss/tcti-getrandom`),
      typed_pcrread_vs_esys_pcrread: ratio(`${t}|tpmkit/typed-pcrread`, `${t}|tpm2-tss/esys-pcrread`),
      transport_vs_c_raw: ratio(`${t}|tpmkit/transport`, `${t}|c-raw-socket/raw-${t}-getrandom`),
      typed_vs_c_raw: ratio(`${t}|tpmkit/typed`, `${t}|c-raw-socket/raw-${t}-getrandom`),
      node_raw_vs_c_raw: ratio(`${t}|node-raw-socket`, `${t}|c-raw-socket/raw-${t}-getrandom`),
      transport_vs_node_raw: ratio(`${t}|tpmkit/transport`, `${t}|node-raw-socket`),
    };
    r.targets_met = {
      [`vs_tss_ge_${tssTarget}`]: r.transport_vs_tss_tcti === null ? null : r.transport_vs_tss_tcti >= tssTarget && r.typed_vs_tss_tcti >= tssTarget,
      vs_c_raw_ge_0_65: r.transport_vs_c_raw === null ? null : r.transport_vs_c_raw >= 0.65 && r.typed_vs_c_raw >= 0.65,
    };
    (ratios[t] ??= {})[kind] = r;
  }
}
console.log(JSON.stringify(ratios));
