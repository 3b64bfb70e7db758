/**
 * A fake `/dev/tpm0` + `/dev/tpmrm0` for tests: a {@link DeviceFs} that behaves as the Linux
 * TPM character devices do towards userspace (Linux drivers/char/tpm/tpm-dev-common.c, tpm-dev.c,
 * tpmrm-dev.c and tpm2-space.c), over any {@link TpmBackend}.
 * Pure TypeScript, no Node APIs.
 *
 * What it reproduces:
 * - `/dev/tpm0` allows one opener: a second open fails EBUSY. `/dev/tpmrm0` allows many.
 * - A missing node fails ENOENT; a node listed in `denied` fails EACCES.
 * - fstat reports a character device, or what `kinds` says for the node.
 * - write(): more than 4096 bytes → E2BIG; a response unread or a command queued → EBUSY;
 *   fewer than 6 bytes or fewer than the header's size field → EINVAL. Otherwise the command is
 *   queued (O_NONBLOCK semantics) and runs on the backend.
 * - read(): 0 when nothing is pending or the command still runs; partial reads allowed (the
 *   rest stays for the next read); a backend failure comes back as the read's errno (EIO).
 * - `/dev/tpmrm0` answers a command code outside `knownCommands` with the resource manager's
 *   synthetic 10-byte response, RC 0x000B0143, without reaching the backend.
 *
 * @packageDocumentation
 */
import type { TpmBackend } from "../core/transport.js";
import { TPM_CC } from "../wire/constants.js";
import type { DeviceFile, DeviceFileKind, DeviceFs } from "../transports/linux-device/fs.js";

/** An Error with an errno `code`, as Node's fs throws. */
export function errnoError(code: string, syscall: string, path: string): Error & { code: string } {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

/** Faults a {@link FakeTpmDevice} can inject. */
export interface FakeDeviceFaults {
  /** Makes the next write(s) fail with this errno. */
  writeErrno?: string;
  /** Makes the next read(s) fail with this errno. */
  readErrno?: string;
  /** Rewrites each response before userspace reads it (lying sizes, truncation...). */
  response?(rsp: Uint8Array): Uint8Array;
  /** write() takes only this many bytes (a short write). */
  shortWrite?: number;
  /** The command never completes (reads return 0 forever). */
  hang?: boolean;
}

/** Options of {@link FakeTpmDevice}. */
export interface FakeTpmDeviceOptions {
  /** What runs the commands. */
  backend: TpmBackend;
  /** Device nodes that exist (default both `/dev/tpm0` and `/dev/tpmrm0`). */
  nodes?: readonly string[];
  /** Nodes that exist but deny access (EACCES). */
  denied?: readonly string[];
  /**
   * What fstat(2) reports per node (default `"character"` for every node): e.g.
   * `{ "/tmp/notes": "file" }` with that path in `nodes` models a regular file.
   */
  kinds?: Readonly<Record<string, DeviceFileKind>>;
  /** Command codes the resource manager knows (default every TPM_CC in tpmkit's constants). */
  knownCommands?: ReadonlySet<number>;
}

/** RC of the resource manager's synthetic response to an unknown command (TSS2_RESMGR_TPM layer 0x0B + TPM_RC_COMMAND_CODE). */
export const TPMRM_UNKNOWN_COMMAND_RC = 0x000b0143;

interface OpenFileState {
  path: string;
  closed: boolean;
  running: boolean;
  pending: Uint8Array | undefined;
  error: string | undefined;
}

/**
 * The fake device. Use it as the `fs` option of {@link linuxDevice}.
 *
 * @example
 * ```ts
 * const dev = new FakeTpmDevice({ backend: new SoftTpm() });
 * const tpm = await Tpm.open(linuxDevice({ fs: dev }));
 * ```
 */
export class FakeTpmDevice implements DeviceFs {
  readonly #backend: TpmBackend;
  readonly #nodes: Set<string>;
  readonly #denied: Set<string>;
  readonly #known: ReadonlySet<number>;
  readonly #kinds: Readonly<Record<string, DeviceFileKind>>;
  readonly #open = new Set<OpenFileState>();
  /** Faults applied to every open file; change at any time. */
  faults: FakeDeviceFaults = {};
  /** Commands the backend ran (bytes), in order. */
  readonly commands: Uint8Array[] = [];

  constructor(options: FakeTpmDeviceOptions) {
    this.#backend = options.backend;
    this.#nodes = new Set(options.nodes ?? ["/dev/tpm0", "/dev/tpmrm0"]);
    this.#denied = new Set(options.denied ?? []);
    this.#known = options.knownCommands ?? new Set<number>(Object.values(TPM_CC));
    this.#kinds = options.kinds ?? {};
  }

  /** Files open now, per path. */
  openCount(path: string): number {
    let n = 0;
    for (const f of this.#open) if (f.path === path) n++;
    return n;
  }

  /** {@inheritDoc DeviceFs.open} */
  async open(path: string): Promise<DeviceFile> {
    if (!this.#nodes.has(path)) throw errnoError("ENOENT", "open", path);
    if (this.#denied.has(path)) throw errnoError("EACCES", "open", path);
    if (!path.includes("tpmrm") && this.openCount(path) > 0) throw errnoError("EBUSY", "open", path);
    const st: OpenFileState = { path, closed: false, running: false, pending: undefined, error: undefined };
    this.#open.add(st);
    return {
      write: async (data) => this.#write(st, data),
      read: async (buffer) => this.#read(st, buffer),
      stat: async () => {
        if (st.closed) throw errnoError("EBADF", "fstat", st.path);
        return { kind: Object.hasOwn(this.#kinds, path) ? this.#kinds[path]! : "character" };
      },
      close: async () => {
        st.closed = true;
        this.#open.delete(st);
      },
    };
  }

  #write(st: OpenFileState, data: Uint8Array): number {
    if (st.closed) throw errnoError("EBADF", "write", st.path);
    if (this.faults.writeErrno) throw errnoError(this.faults.writeErrno, "write", st.path);
    if (data.length > 4096) throw errnoError("E2BIG", "write", st.path);
    if (st.running || st.pending || st.error) throw errnoError("EBUSY", "write", st.path);
    if (data.length < 6) throw errnoError("EINVAL", "write", st.path);
    const size = ((data[2]! << 24) | (data[3]! << 16) | (data[4]! << 8) | data[5]!) >>> 0;
    if (data.length < size || size < 10) throw errnoError("EINVAL", "write", st.path);
    const command = data.slice(0, size);
    const taken = this.faults.shortWrite ?? data.length;
    if (taken < data.length) return taken;
    const code = size >= 10 ? ((command[6]! << 24) | (command[7]! << 16) | (command[8]! << 8) | command[9]!) >>> 0 : 0;
    if (st.path.includes("tpmrm") && !this.#known.has(code)) {
      const r = new Uint8Array([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]);
      new DataView(r.buffer).setUint32(6, TPMRM_UNKNOWN_COMMAND_RC);
      st.pending = r;
      return data.length;
    }
    st.running = true;
    if (this.faults.hang) return data.length;
    this.commands.push(command);
    void this.#backend.execute(command, 0).then(
      (rsp) => {
        st.running = false;
        if (st.closed) return;
        st.pending = this.faults.response ? this.faults.response(rsp) : rsp;
      },
      () => {
        st.running = false;
        st.error = "EIO";
      },
    );
    return data.length;
  }

  #read(st: OpenFileState, buffer: Uint8Array): number {
    if (st.closed) throw errnoError("EBADF", "read", st.path);
    if (this.faults.readErrno) throw errnoError(this.faults.readErrno, "read", st.path);
    if (st.error) {
      const e = st.error;
      st.error = undefined;
      throw errnoError(e, "read", st.path);
    }
    const p = st.pending;
    if (!p) return 0;
    const n = Math.min(buffer.length, p.length);
    buffer.set(p.subarray(0, n));
    st.pending = n < p.length ? p.subarray(n) : undefined;
    return n;
  }
}
