/**
 * Start and stop a real swtpm 0.7 process for the integration tests (`swtpm socket --tpm2`, swtpm(8)).
 *
 * The process runs in the foreground (no `--daemon`), so its PID is the child's and it is stopped by
 * that PID; state lives in a fresh temp dir that {@link SwtpmPeer.stop} removes. A missing swtpm is
 * an error, never a skip: CI installs it (`.ci/run`).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import type { SwtpmEndpoint } from "../../src/node/swtpm-socket.js";
import { freePortPair } from "./ports.js";

/** A running swtpm. */
export interface SwtpmPeer {
  /** Data channel. */
  readonly data: SwtpmEndpoint;
  /** Control channel (TCP port + 1, or `<path>.ctrl`). */
  readonly ctrl: SwtpmEndpoint;
  /** TCP data port (0 for a UNIX socket peer). */
  readonly port: number;
  /** State directory (also holds the log). */
  readonly dir: string;
  /** The swtpm process. */
  readonly child: ChildProcess;
  /** The last 500 bytes of swtpm's log, for error messages. */
  log(): string;
  /** Stops the process by its PID (SIGTERM, SIGKILL after 2 s) and, unless `keepDir`, removes the state dir. Idempotent. */
  stop(opts?: { keepDir?: boolean }): Promise<void>;
}

/** Options of {@link startSwtpm}. */
export interface StartSwtpmOptions {
  /** "tcp" (default) or "unix". */
  kind?: "tcp" | "unix";
  /** `--flags` value. Default "not-need-init,startup-clear". */
  flags?: string;
  /** Reuse this state dir and these endpoints (a restart); the dir is not created. */
  reuse?: { dir: string; data: SwtpmEndpoint; ctrl: SwtpmEndpoint };
  /** Prefix of the temp dir name. */
  prefix?: string;
}

const running = new Set<ChildProcess>();

/** Throws a clear error when swtpm is not installed (the tests fail, they do not skip). */
export function requireSwtpm(): void {
  const r = spawnSync("swtpm", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new Error("swtpm is not installed or not on PATH: these integration tests need it (apt-get install swtpm swtpm-tools)");
  }
}

/** Kills every swtpm this module started that is still running (an afterAll safety net). */
export function killAllStartedSwtpm(): void {
  for (const c of running) {
    if (c.pid === undefined) continue;
    try {
      process.kill(c.pid, "SIGKILL");
    } catch {
      // already gone (its exit event not delivered yet)
    }
  }
}

function readTail(p: string): string {
  try {
    return fs.readFileSync(p, "utf8").slice(-500);
  } catch {
    return "(no log)";
  }
}

function canConnect(ep: SwtpmEndpoint): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect("path" in ep ? { path: ep.path } : { port: ep.port, host: ep.host ?? "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Starts swtpm (`swtpm socket --tpm2`) with a data and a control channel and waits (at most 5 s)
 * until the control channel accepts. Probing the control channel, not the data channel, keeps the
 * single data connection swtpm serves free for the test.
 */
export async function startSwtpm(options: StartSwtpmOptions = {}): Promise<SwtpmPeer> {
  const kind = options.kind ?? "tcp";
  const dir = options.reuse?.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), options.prefix ?? "tpmkit-swtpm-"));
  let data: SwtpmEndpoint;
  let ctrl: SwtpmEndpoint;
  if (options.reuse) {
    data = options.reuse.data;
    ctrl = options.reuse.ctrl;
  } else if (kind === "tcp") {
    const port = await freePortPair();
    data = { host: "127.0.0.1", port };
    ctrl = { host: "127.0.0.1", port: port + 1 };
  } else {
    data = { path: path.join(dir, "swtpm.sock") };
    ctrl = { path: path.join(dir, "swtpm.sock.ctrl") };
  }
  const server = "path" in data ? `type=unixio,path=${data.path}` : `type=tcp,port=${data.port},bindaddr=127.0.0.1`;
  const control = "path" in ctrl ? `type=unixio,path=${ctrl.path}` : `type=tcp,port=${ctrl.port},bindaddr=127.0.0.1`;
  const logFile = path.join(dir, "log");
  const child = spawn(
    "swtpm",
    ["socket", "--tpm2", "--tpmstate", `dir=${dir}`, "--server", server, "--ctrl", control, "--flags", options.flags ?? "not-need-init,startup-clear", "--log", `file=${logFile},level=1`],
    { stdio: "ignore" },
  );
  running.add(child);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.once("exit", () => running.delete(child));
  let spawnError: Error | undefined;
  child.once("error", (e) => {
    spawnError = e;
    running.delete(child);
  });
  let stopped = false;
  const peer: SwtpmPeer = {
    data,
    ctrl,
    port: "port" in data ? data.port : 0,
    dir,
    child,
    log: () => readTail(logFile),
    async stop(opts = {}) {
      if (!stopped) {
        stopped = true;
        if (child.pid !== undefined && child.exitCode === null && child.signalCode === null && !spawnError) {
          try {
            process.kill(child.pid, "SIGTERM");
          } catch {
            // exited meanwhile
          }
          const t = setTimeout(() => {
            if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
              try {
                process.kill(child.pid, "SIGKILL");
              } catch {
                // exited meanwhile
              }
            }
          }, 2000);
          await exited;
          clearTimeout(t);
        }
      }
      if (!opts.keepDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 5000;
  for (;;) {
    if (spawnError) {
      await peer.stop({ keepDir: !!options.reuse });
      throw new Error(`cannot run swtpm (is it installed?): ${spawnError.message}`);
    }
    if (child.exitCode !== null) {
      const log = readTail(logFile);
      await peer.stop({ keepDir: !!options.reuse });
      throw new Error(`swtpm exited with ${child.exitCode}; log: ${log}`);
    }
    if (await canConnect(ctrl)) break;
    if (Date.now() > deadline) {
      await peer.stop({ keepDir: !!options.reuse });
      throw new Error("swtpm did not start listening within 5 s");
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return peer;
}
