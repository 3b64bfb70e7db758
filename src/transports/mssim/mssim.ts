/**
 * The mssim transport: a TPM behind the Microsoft/IBM TPM 2.0 simulator TCP protocol (the
 * reference `tpm_server`, IBM's `tpm_server`, wolfTPM's fwTPM, or tpmkit's own
 * `serveMssim`). Behaves like tpm2-tss's tcti-mssim (tpm2-tss src/tss2-tcti/tcti-mssim.c): one
 * persistent command connection, a 9-byte TPM_SEND_COMMAND header (u32 8, u8 locality, u32 size)
 * before each command, and u32 size + response + u32 0 acknowledgement back; platform signals on
 * port + 1.
 *
 * @packageDocumentation
 */
import type { Socket } from "node:net";
import { systemClock, type Clock } from "../../core/clock.js";
import {
  TpmArgumentError,
  TpmFormatError,
  TpmStateError,
  TpmTransportError,
  throwIfAborted,
} from "../../errors/index.js";
import type { OpenContext, SendOptions, Transport } from "../../core/transport.js";
import { readHeader } from "../../wire/buffer.js";
import { connectSocket, formatAddress, type SocketAddress } from "../../node/connect.js";
import { MssimPlatform } from "./platform.js";
import {
  MSSIM_CMD,
  MSSIM_DEFAULT_MAX_SIZE,
  MSSIM_DEFAULT_PORT,
  checkResponseSize,
  encodeSendCommand,
} from "../../node/mssim-protocol.js";
import { readU32be, u32be } from "../../wire/bytes.js";
import { SocketReader } from "../../node/socket-reader.js";

/** Options of {@link mssim}. */
export interface MssimOptions {
  /** Simulator host (default `"127.0.0.1"`; tcti-mssim's default is `localhost`). */
  host?: string | undefined;
  /** Command port (default 2321). */
  port?: number | undefined;
  /** Platform port (default `port + 1`). */
  platformPort?: number | undefined;
  /** UNIX socket of the command channel instead of TCP; the platform socket is `path + ".ctrl"`. */
  path?: string | undefined;
  /** UNIX socket of the platform channel (default `path + ".ctrl"`). */
  platformPath?: string | undefined;
  /**
   * Send SIGNAL_POWER_ON and SIGNAL_NV_ON at `open()`, as tcti-mssim does at init (default
   * true). The caller (the chip) still sends TPM2_Startup.
   */
  powerOn?: boolean | undefined;
  /** Bound on connects and on platform acknowledgements, ms (default 2000). */
  connectTimeoutMs?: number | undefined;
  /** Largest response accepted; larger size prefixes are rejected unread (default 4096). */
  maxResponseSize?: number | undefined;
  /** Largest command sent (default 4096). */
  maxCommandSize?: number | undefined;
  /** Clock for waits outside `send` (default the system clock; `open` switches to the chip's). */
  clock?: Clock | undefined;
}

/** The transport {@link mssim} returns: a {@link Transport} plus the platform client. */
export interface MssimTransport extends Transport {
  readonly kind: "mssim";
  /** The platform port client (power, NV, cancel, reset, physical presence signals). */
  readonly platform: MssimPlatform;
  /** The command port's address, as text. */
  readonly address: string;
}

function checkPort(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new TpmArgumentError(`mssim: ${what} ${p} is not a TCP port (1–65535)`);
  return p;
}

/**
 * Creates an mssim transport. Nothing is connected until `open()` or the first `send()`.
 *
 * - `open()` connects the command port, then the platform port, and sends POWER_ON and NV_ON
 *   (unless `powerOn: false`). Pointed at a swtpm by mistake it fails with
 *   {@link MssimSwtpmDetectedError}, whose message names the `swtpm:` TCTI to use.
 * - `send()` frames the command with TPM_SEND_COMMAND at the requested locality, checks the
 *   response size prefix (10 ≤ size ≤ `maxResponseSize`) before reading the body, checks the
 *   body's header size, and reads the trailing acknowledgement. A lying size, a bad
 *   acknowledgement, a timeout or an abort drops the connection (the stream is out of step);
 *   the next `send()` reconnects. A peer that hung up between commands is reconnected too.
 * - `cancel()` raises SIGNAL_CANCEL_ON while a command runs; CANCEL_OFF follows its response.
 * - `close()` sends SESSION_END on both ports and closes them.
 *
 * Spec: TCG TPM 2.0 reference implementation, Simulator TcpServer.c; tpm2-tss tcti-mssim.c.
 *
 * @param options - host/port (or path), power-on behaviour, limits
 * @returns the transport
 * @throws TpmArgumentError when a port is out of range
 *
 * @example
 * ```ts
 * const tpm = await Tpm.open(mssim({ host: "127.0.0.1", port: 2321 }));
 * await tpm.getRandom(8);
 * ```
 */
export function mssim(options: MssimOptions = {}): MssimTransport {
  let address: SocketAddress;
  let platformAddress: SocketAddress;
  if (options.path !== undefined) {
    if (options.path === "") throw new TpmArgumentError("mssim: path is empty");
    address = { path: options.path };
    platformAddress = { path: options.platformPath ?? `${options.path}.ctrl` };
  } else {
    const host = options.host ?? "127.0.0.1";
    const port = checkPort(options.port ?? MSSIM_DEFAULT_PORT, "port");
    const pport = options.platformPort === undefined ? port + 1 : checkPort(options.platformPort, "platformPort");
    if (pport > 65535) throw new TpmArgumentError(`mssim: platform port ${pport} (port + 1) is not a TCP port; pass platformPort`);
    address = { host, port };
    platformAddress = { host, port: pport };
  }
  const maxResponse = options.maxResponseSize ?? MSSIM_DEFAULT_MAX_SIZE;
  const maxCommand = options.maxCommandSize ?? MSSIM_DEFAULT_MAX_SIZE;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const powerOn = options.powerOn ?? true;
  let clock: Clock = options.clock ?? systemClock;
  const label = `mssim ${formatAddress(address)}`;
  const platform = new MssimPlatform({ address: platformAddress, commandAddress: address, clock, timeoutMs: connectTimeoutMs });

  let socket: Socket | undefined;
  let reader: SocketReader | undefined;
  let closed = false;
  let inFlight = false;
  let cancelRaised = false;

  const drop = () => {
    socket?.destroy();
    socket = undefined;
    reader = undefined;
  };

  async function connected(signal: AbortSignal | undefined, c: Clock, timeoutMs: number): Promise<SocketReader> {
    if (socket && reader && !reader.closed) {
      // Bytes that arrived between commands belong to no request: the stream is out of step.
      if (reader.buffered === 0) return reader;
    }
    drop();
    const s = await connectSocket(address, { clock: c, timeoutMs, signal, label: "mssim command port" });
    socket = s;
    reader = new SocketReader(s, label);
    return reader;
  }

  async function lowerCancel(): Promise<void> {
    if (!cancelRaised) return;
    cancelRaised = false;
    await platform.cancelOff().catch(() => undefined);
  }

  const transport: MssimTransport = {
    kind: "mssim",
    platform,
    address: formatAddress(address),
    localities: [0, 1, 2, 3, 4],
    maxCommandSize: maxCommand,

    async open(ctx: OpenContext): Promise<void> {
      if (closed) throw new TpmStateError(`${label}: transport is closed`);
      clock = ctx.clock;
      platform.setClock(ctx.clock);
      await connected(ctx.signal, clock, connectTimeoutMs);
      if (!powerOn) return;
      try {
        await platform.powerOn(ctx.signal);
        await platform.nvOn(ctx.signal);
      } catch (e) {
        // Leave nothing connected: a swtpm (and the reference simulator) serves one client at a time.
        drop();
        if (e instanceof TpmTransportError && e.errno === "ECONNREFUSED") {
          const hint = "path" in address ? `swtpm:path=${address.path}` : `swtpm:host=${address.host},port=${address.port}`;
          throw new TpmTransportError(
            `${label}: the command port answers but the platform port ${platform.address} refuses connections`,
            {
              cause: e,
              errno: "ECONNREFUSED",
              details: `A Microsoft/IBM simulator always listens on both. If this is a swtpm, use ${hint}; to skip the power-on signals, pass powerOn: false.`,
            },
          );
        }
        throw e;
      }
    },

    async send(command: Uint8Array, opts: SendOptions): Promise<Uint8Array> {
      if (closed) throw new TpmStateError(`${label}: transport is closed`);
      throwIfAborted(opts.signal);
      if (command.length > maxCommand) throw new TpmArgumentError(`${label}: command of ${command.length} bytes exceeds the ${maxCommand}-byte limit`);
      try {
        readHeader(command, true);
      } catch (e) {
        throw new TpmArgumentError(`${label}: not a whole TPM command`, { cause: e });
      }
      const frame = encodeSendCommand(command, opts.locality);
      const c = opts.clock ?? clock;
      const deadline = c.now() + opts.timeoutMs;
      const left = () => Math.max(0, deadline - c.now());
      inFlight = true;
      try {
        const r = await connected(opts.signal, c, Math.min(connectTimeoutMs, left()));
        socket!.write(frame);
        const ro = (what: string) => ({ signal: opts.signal, clock: c, timeoutMs: left(), what });
        const size = readU32be(await r.read(4, ro("response size")), 0, "response size");
        if (size === 0) {
          // The reference simulator answers an empty response while powered off.
          await r.read(4, ro("acknowledgement"));
          throw new TpmTransportError(`${label}: the simulator returned an empty response: it is powered off`, {
            errno: "EIO",
            details: "Send SIGNAL_POWER_ON and SIGNAL_NV_ON on the platform port first (open() does unless powerOn is false).",
          });
        }
        checkResponseSize(size, maxResponse);
        const response = await r.read(size, ro("response"));
        readHeader(response, true);
        const ack = readU32be(await r.read(4, ro("acknowledgement")), 0, "acknowledgement");
        if (ack !== 0) throw new TpmFormatError(`${label}: response acknowledgement is ${ack}, expected 0`);
        return response;
      } catch (e) {
        drop();
        throw e instanceof TpmFormatError ? new TpmFormatError(`${label}: ${e.shortMessage.replace(/^mssim: /, "")}`, { cause: e }) : e;
      } finally {
        inFlight = false;
        await lowerCancel();
      }
    },

    async cancel(): Promise<void> {
      if (!inFlight || closed) return;
      cancelRaised = true;
      await platform.cancelOn().catch(() => undefined);
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const s = socket;
      if (s && reader && !reader.closed) s.end(u32be(MSSIM_CMD.SESSION_END), () => s.destroy());
      else s?.destroy();
      socket = undefined;
      reader = undefined;
      await platform.close();
    },
  };
  return transport;
}
