/**
 * The mssim platform port client: power, NV, cancel, physical presence and reset signals, each a
 * bare u32 command code answered by a u32 0 acknowledgement (TCG TPM 2.0 reference implementation,
 * TPMCmd/Simulator/src/TcpServer.c, PlatformServer()).
 *
 * @packageDocumentation
 */
import type { Socket } from "node:net";
import { systemClock, type Clock } from "../../core/clock.js";
import { TpmFormatError, TpmStateError, TpmTransportError, type TpmkitErrorOptions } from "../../errors/index.js";
import { connectSocket, formatAddress, type SocketAddress } from "../../node/connect.js";
import { MSSIM_CMD, mssimCommandName } from "../../node/mssim-protocol.js";
import { readU32be, u32be } from "../../wire/bytes.js";
import { SocketReader } from "../../node/socket-reader.js";

/**
 * The peer on the mssim platform port answered like a swtpm control channel: the classic mistake
 * of pointing an mssim client at a swtpm, whose port + 1 speaks swtpm's control protocol (there,
 * POWER_ON = 1 is CMD_GET_CAPABILITY and comes back as 8 bytes). `suggestion` is the TCTI string
 * to use instead. (swtpm 0.7.1, measured: its control channel answers CMD_GET_CAPABILITY with
 * 8 bytes, so the 4-byte acknowledgement reads as 0 and 4 stray bytes follow.)
 */
export class MssimSwtpmDetectedError extends TpmTransportError {
  static override readonly errorName: string = "MssimSwtpmDetectedError";
  /** The TCTI string that would work, e.g. `"swtpm:host=127.0.0.1,port=2321"`. */
  readonly suggestion: string;
  constructor(message: string, suggestion: string, options: TpmkitErrorOptions = {}) {
    super(message, { ...options, errno: "EPROTO" });
    this.suggestion = suggestion;
  }
}

/** Options of {@link MssimPlatform}. */
export interface MssimPlatformOptions {
  /** The platform port (TCP host/port, or a UNIX socket path). */
  address: SocketAddress;
  /** The command port it belongs to, for the swtpm hint (`swtpm:host=..,port=..`). */
  commandAddress?: SocketAddress | undefined;
  /** Clock for the connect and ack deadlines (default the system clock). */
  clock?: Clock | undefined;
  /** Bound on connecting and on each signal's acknowledgement, ms (default 2000). */
  timeoutMs?: number | undefined;
}

/** The largest/most recent command and response sizes the simulator reports (GET_COMMAND_RESPONSE_SIZES). */
export interface MssimCommandResponseSizes {
  largestCommandSize: number;
  largestCommand: number;
  largestResponseSize: number;
  largestResponse: number;
}

/**
 * A client for the simulator's platform port. Keeps one connection, opened on first use;
 * signals are serialized (one exchange at a time on the socket, like QEMU's control mutex).
 *
 * @example
 * ```ts
 * const p = new MssimPlatform({ address: { host: "127.0.0.1", port: 2322 } });
 * await p.powerOn();
 * await p.nvOn();
 * await p.close();
 * ```
 */
export class MssimPlatform {
  readonly #address: SocketAddress;
  readonly #commandAddress: SocketAddress | undefined;
  readonly #timeoutMs: number;
  #clock: Clock;
  #socket: Socket | undefined;
  #reader: SocketReader | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: MssimPlatformOptions) {
    this.#address = options.address;
    this.#commandAddress = options.commandAddress;
    this.#clock = options.clock ?? systemClock;
    this.#timeoutMs = options.timeoutMs ?? 2000;
  }

  /** The platform port's address, as text. */
  get address(): string {
    return formatAddress(this.#address);
  }

  /** Uses `clock` for later waits (the chip's clock, handed over at open). */
  setClock(clock: Clock): void {
    this.#clock = clock;
  }

  /** Simulator SIGNAL_POWER_ON (1): TPM_Init; the caller must still send TPM2_Startup. */
  powerOn(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_POWER_ON, signal);
  }
  /** Simulator SIGNAL_POWER_OFF (2). */
  powerOff(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_POWER_OFF, signal);
  }
  /** Simulator SIGNAL_NV_ON (11): NV memory becomes available. */
  nvOn(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_NV_ON, signal);
  }
  /** Simulator SIGNAL_NV_OFF (12). */
  nvOff(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_NV_OFF, signal);
  }
  /** Simulator SIGNAL_CANCEL_ON (9): the TPM may end the running command with TPM_RC_CANCELED. */
  cancelOn(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_CANCEL_ON, signal);
  }
  /** Simulator SIGNAL_CANCEL_OFF (10). */
  cancelOff(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_CANCEL_OFF, signal);
  }
  /** Simulator SIGNAL_PHYS_PRES_ON (3). */
  physicalPresenceOn(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_PHYS_PRES_ON, signal);
  }
  /** Simulator SIGNAL_PHYS_PRES_OFF (4). */
  physicalPresenceOff(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_PHYS_PRES_OFF, signal);
  }
  /** Simulator SIGNAL_RESET (17): power-on with reset semantics. */
  reset(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_RESET, signal);
  }
  /** Simulator SIGNAL_RESTART (18). */
  restart(signal?: AbortSignal): Promise<void> {
    return this.signal(MSSIM_CMD.SIGNAL_RESTART, signal);
  }

  /**
   * Simulator GET_COMMAND_RESPONSE_SIZES (25): u32 length (16), four u32s, ack.
   *
   * @throws TpmFormatError when the length is not 16
   */
  getCommandResponseSizes(signal?: AbortSignal): Promise<MssimCommandResponseSizes> {
    return this.#exclusive(async () => {
      const r = await this.#connected(signal);
      this.#socket!.write(u32be(MSSIM_CMD.GET_COMMAND_RESPONSE_SIZES));
      const len = readU32be(await r.read(4, this.#readOpts(signal, "sizes length")), 0, "sizes length");
      if (len !== 16) {
        this.#drop();
        throw new TpmFormatError(`mssim platform: GET_COMMAND_RESPONSE_SIZES length ${len}, expected 16`);
      }
      const b = await r.read(16, this.#readOpts(signal, "sizes"));
      const v = new DataView(b.buffer, b.byteOffset, 16);
      await this.#ack(r, MSSIM_CMD.GET_COMMAND_RESPONSE_SIZES, signal);
      return { largestCommandSize: v.getUint32(0), largestCommand: v.getUint32(4), largestResponseSize: v.getUint32(8), largestResponse: v.getUint32(12) };
    });
  }

  /**
   * Sends one platform signal and waits for its u32 0 acknowledgement.
   *
   * @param code - an {@link MSSIM_CMD} signal code
   * @param signal - aborts the exchange (the connection is then dropped)
   * @throws MssimSwtpmDetectedError when the reply looks like a swtpm control channel
   * @throws TpmTransportError when the peer refuses, closes, or acknowledges with a non-zero value
   * @throws TpmTimeoutError when no acknowledgement comes within the bound
   */
  signal(code: number, signal?: AbortSignal): Promise<void> {
    return this.#exclusive(async () => {
      const r = await this.#connected(signal);
      this.#socket!.write(u32be(code));
      await this.#ack(r, code, signal);
    });
  }

  /** SESSION_END (20): tells the simulator this client is done (no acknowledgement). */
  sessionEnd(): Promise<void> {
    return this.#exclusive(async () => {
      if (!this.#socket || this.#reader?.closed) return;
      const s = this.#socket;
      s.end(u32be(MSSIM_CMD.SESSION_END), () => s.destroy());
      this.#socket = undefined;
      this.#reader = undefined;
    });
  }

  /** STOP (21): asks the simulator to stop serving (no acknowledgement). */
  stop(signal?: AbortSignal): Promise<void> {
    return this.#exclusive(async () => {
      await this.#connected(signal);
      const s = this.#socket!;
      s.end(u32be(MSSIM_CMD.STOP), () => s.destroy());
      this.#socket = undefined;
      this.#reader = undefined;
    });
  }

  /** Closes the connection (sending SESSION_END first when connected). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.sessionEnd().catch(() => undefined);
    this.#closed = true;
    this.#drop();
  }

  async #ack(r: SocketReader, code: number, signal: AbortSignal | undefined): Promise<void> {
    const value = readU32be(await r.read(4, this.#readOpts(signal, `${mssimCommandName(code)} acknowledgement`)), 0, "ack");
    const stale = r.buffered;
    if (stale > 0 || value !== 0) {
      this.#drop();
      const hint = this.#swtpmHint();
      if (stale > 0 || value === 0xffff) {
        throw new MssimSwtpmDetectedError(
          `mssim platform port ${this.address} answered ${mssimCommandName(code)} like a swtpm control channel ` +
            `(ack 0x${value.toString(16)}, ${stale} unexpected extra byte${stale === 1 ? "" : "s"}): this looks like a swtpm; use ${hint}`,
          hint,
          { details: "A swtpm understands mssim's TPM_SEND_COMMAND framing on its data port, but its port + 1 is the swtpm control channel, which does not speak the mssim platform protocol." },
        );
      }
      throw new TpmTransportError(
        `mssim platform port ${this.address}: ${mssimCommandName(code)} acknowledged with ${value} instead of 0`,
        { errno: "EPROTO", details: `If this is a swtpm rather than the Microsoft/IBM simulator, use ${hint}.` },
      );
    }
  }

  #swtpmHint(): string {
    const a = this.#commandAddress;
    if (!a) return "the swtpm transport (swtpm:host=...,port=...)";
    return "path" in a ? `swtpm:path=${a.path}` : `swtpm:host=${a.host},port=${a.port}`;
  }

  #readOpts(signal: AbortSignal | undefined, what: string) {
    return { signal, timeoutMs: this.#timeoutMs, clock: this.#clock, what };
  }

  async #connected(signal: AbortSignal | undefined): Promise<SocketReader> {
    if (this.#closed) throw new TpmStateError("mssim platform client is closed");
    if (this.#socket && this.#reader && !this.#reader.closed) return this.#reader;
    this.#drop();
    const socket = await connectSocket(this.#address, { clock: this.#clock, timeoutMs: this.#timeoutMs, signal, label: "mssim platform port" });
    this.#socket = socket;
    this.#reader = new SocketReader(socket, `mssim platform ${this.address}`);
    return this.#reader;
  }

  #drop(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#reader = undefined;
  }

  /** Runs `fn` after every earlier exchange settled; a failed exchange drops the connection. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = async (): Promise<T> => {
      try {
        return await fn();
      } catch (e) {
        this.#drop();
        throw e;
      }
    };
    const run = this.#chain.then(guarded, guarded);
    this.#chain = run.catch(() => undefined);
    return run;
  }
}
