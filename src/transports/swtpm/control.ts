/**
 * Client for the swtpm control channel (`swtpm socket --ctrl ...`): every command swtpm 0.7 has,
 * replies decoded to typed results, non-zero result codes thrown as {@link SwtpmControlError}.
 *
 * Exchanges are serialized: one request is written and its whole reply read before the next
 * request goes out, so two concurrent callers never read each other's replies (QEMU guards its
 * control chardev with a mutex for the same reason: QEMU backends/tpm/tpm_emulator.c,
 * tpm_emulator_ctrlcmd()). An exchange that
 * times out or is aborted drops the connection, so a late reply can never be read by the next
 * caller; the next exchange reconnects.
 *
 * Reply lengths (swtpm 0.7.1, measured): a failed command answers with the 4-byte result only,
 * except CMD_GET_CAPABILITY/GET_CONFIG (always 8 bytes), CMD_GET_STATEBLOB (always the 16-byte
 * header, then `length` bytes) and CMD_GET_TPMESTABLISHED (8 bytes unless the TPM is stopped).
 * Bytes beyond a reply, or that arrive when no exchange is waiting, mean the stream is out of step:
 * the connection is dropped (at the latest before the next request goes out). Note that a swtpm started with `--ctrl ...,terminate` exits when its control connection
 * is lost, so with such a swtpm a timed-out or aborted control exchange ends the process too.
 *
 * Node-specific (node:net).
 *
 * @packageDocumentation
 */
import { systemClock, type Clock } from "../../core/clock.js";
import { TpmArgumentError, TpmFormatError, TpmStateError, TpmTimeoutError, TpmTransportError, TpmkitError, abortErrorFrom } from "../../errors/index.js";
import {
  PTM_CONFIG_FLAG,
  PTM_INIT_FLAG_DELETE_VOLATILE,
  PTM_STATE_FLAG_DECRYPTED,
  PTM_STATE_FLAG_ENCRYPTED,
  SWTPM_CMD,
  SWTPM_HASH_DATA_MAX,
  SWTPM_RESULT,
  SWTPM_STATEBLOB_MAX,
  SwtpmControlError,
  decodeCapabilities,
  swtpmCommandName,
  type SwtpmCapabilities,
} from "../../node/swtpm-protocol.js";
import { concatBytes, readU32be as be32, writeU32be as put32 } from "../../wire/bytes.js";
import { connectSocket } from "../../node/connect.js";
import { SocketReader } from "../../node/socket-reader.js";
import { describeEndpoint, normalizeEndpoint, type SwtpmEndpoint } from "../../node/swtpm-socket.js";

/** Options of {@link SwtpmControl}. */
export interface SwtpmControlOptions {
  /** Clock for the bounds (default: the system clock). */
  clock?: Clock;
  /** Bound of one whole exchange (connect + request + reply), ms. Default 10 000. */
  timeoutMs?: number;
  /** Bound of a connect, ms. Default 5 000. */
  connectTimeoutMs?: number;
  /** Largest state blob or info string accepted from the peer, bytes. Default 16 MiB. */
  maxBlobSize?: number;
}

/** Per-call options. */
export interface SwtpmControlCallOptions {
  /** Aborts the call; the control connection is dropped if a request was already written. */
  signal?: AbortSignal;
  /** Overrides the exchange bound for this call, ms. */
  timeoutMs?: number;
}

/** Decoded CMD_SET_BUFFERSIZE reply. */
export interface SwtpmBufferSize {
  /** Buffer size now in use. */
  size: number;
  /** Smallest size the TPM accepts. */
  min: number;
  /** Largest size the TPM accepts. */
  max: number;
}

/** Decoded CMD_GET_CONFIG reply. */
export interface SwtpmConfig {
  /** Raw flags. */
  flags: number;
  /** A state-encryption key was given (`--key`). */
  fileKey: boolean;
  /** A migration key was given (`--migration-key`). */
  migrationKey: boolean;
}

/** Decoded CMD_GET_STATEBLOB reply. */
export interface SwtpmStateBlob {
  /** State flags of the blob (PTM_STATE_FLAG_ENCRYPTED if encrypted). */
  flags: number;
  /** True when the blob is encrypted. */
  encrypted: boolean;
  /** The whole blob. */
  blob: Uint8Array;
}

/** How to read one reply: called with the first 4 bytes (result), returns the reader. */
type ReplyReader = (result: number, read: (n: number) => Promise<Uint8Array>) => Promise<Uint8Array>;

const replyOf =
  (okLen: number, errLen = 4): ReplyReader =>
  async (result, read) => {
    const n = (result === 0 ? okLen : errLen) - 4;
    return n > 0 ? read(n) : new Uint8Array(0);
  };

/**
 * A client for the swtpm control channel.
 *
 * Usable on its own (like `swtpm_ioctl`) and from the {@link swtpm} transport. One persistent
 * connection, opened on first use and re-opened after the peer drops it.
 *
 * Spec: swtpm_ioctls(3), swtpm include/swtpm/tpm_ioctl.h and src/swtpm/ctrlchannel.c.
 *
 * @example
 * ```ts
 * const ctrl = new SwtpmControl({ host: "127.0.0.1", port: 2322 });
 * const caps = await ctrl.getCapability();
 * if (caps.has(PTM_CAP.SET_LOCALITY)) await ctrl.setLocality(3);
 * await ctrl.init({ deleteVolatile: false });
 * await ctrl.close();
 * ```
 */
export class SwtpmControl {
  /** The endpoint this client talks to. */
  readonly endpoint: SwtpmEndpoint;
  #clock: Clock;
  #timeoutMs: number;
  #connectTimeoutMs: number;
  #maxBlob: number;
  #conn: SocketReader | undefined;
  #queue: Array<() => void> = [];
  #busy = false;
  #closed = false;
  #generation = 0;

  /**
   * @param endpoint - the control socket: `{ host?, port }` or `{ path }`.
   * @param options - clock and bounds.
   * @throws TpmArgumentError on a malformed endpoint or option.
   */
  constructor(endpoint: SwtpmEndpoint, options: SwtpmControlOptions = {}) {
    this.endpoint = normalizeEndpoint(endpoint, "control endpoint");
    this.#clock = options.clock ?? systemClock;
    this.#timeoutMs = positive(options.timeoutMs ?? 10_000, "timeoutMs");
    this.#connectTimeoutMs = positive(options.connectTimeoutMs ?? 5_000, "connectTimeoutMs");
    this.#maxBlob = positive(options.maxBlobSize ?? 16 * 1024 * 1024, "maxBlobSize");
  }

  /**
   * Increments each time a new control connection is made (a reconnect after a drop shows up here).
   * @returns the number of connections made so far.
   */
  get connections(): number {
    return this.#generation;
  }

  /**
   * CMD_GET_CAPABILITY: which control commands the peer supports.
   * @param options - signal / bound.
   * @returns the decoded capability bits.
   * @throws SwtpmControlError on a non-zero result, TpmTransportError on I/O failure, TpmTimeoutError past the bound, AbortError when aborted.
   */
  async getCapability(options?: SwtpmControlCallOptions): Promise<SwtpmCapabilities> {
    const r = await this.#exchange(SWTPM_CMD.GET_CAPABILITY, EMPTY, replyOf(8, 8), options);
    return decodeCapabilities(be32(r, 4));
  }

  /**
   * CMD_INIT: (re)starts the TPM library, reading its saved state.
   * @param init - `deleteVolatile`: delete the volatile state file after reading it.
   * @param options - signal / bound.
   * @throws SwtpmControlError (e.g. TPM_FAIL when the state is broken).
   */
  async init(init: { deleteVolatile?: boolean } = {}, options?: SwtpmControlCallOptions): Promise<void> {
    const body = new Uint8Array(4);
    put32(body, 0, init.deleteVolatile ? PTM_INIT_FLAG_DELETE_VOLATILE : 0);
    await this.#exchange(SWTPM_CMD.INIT, body, replyOf(4), options);
  }

  /**
   * CMD_SHUTDOWN: stops the TPM; swtpm then exits.
   * @param options - signal / bound.
   * @throws SwtpmControlError.
   */
  async shutdown(options?: SwtpmControlCallOptions): Promise<void> {
    await this.#exchange(SWTPM_CMD.SHUTDOWN, EMPTY, replyOf(4), options);
  }

  /**
   * CMD_GET_TPMESTABLISHED: the TPM-established flag (set by a DRTM hash sequence).
   * @param options - signal / bound.
   * @returns the flag.
   * @throws SwtpmControlError (TPM_BAD_ORDINAL when the TPM is stopped).
   */
  async getTpmEstablished(options?: SwtpmControlCallOptions): Promise<boolean> {
    const r = await this.#exchange(
      SWTPM_CMD.GET_TPMESTABLISHED,
      EMPTY,
      (res, read) => (res === SWTPM_RESULT.BAD_ORDINAL || res === SWTPM_RESULT.BAD_PARAMETER ? Promise.resolve(EMPTY) : read(4)),
      options,
    );
    return (r[4]! & 1) === 1;
  }

  /**
   * CMD_SET_LOCALITY: locality for the following TPM commands on the data channel.
   * @param locality - 0–4.
   * @param options - signal / bound.
   * @throws TpmArgumentError when not an integer 0–255; SwtpmControlError TPM_BAD_LOCALITY when the peer refuses it.
   */
  async setLocality(locality: number, options?: SwtpmControlCallOptions): Promise<void> {
    checkByte(locality, "locality");
    await this.#exchange(SWTPM_CMD.SET_LOCALITY, Uint8Array.of(locality), replyOf(4), options);
  }

  /**
   * CMD_HASH_START: starts a DRTM hash sequence (the locality-4 _TPM_Hash_Start). TPM 2.0 Part 3 §32.
   * @param options - signal / bound.
   * @throws SwtpmControlError.
   */
  async hashStart(options?: SwtpmControlCallOptions): Promise<void> {
    await this.#exchange(SWTPM_CMD.HASH_START, EMPTY, replyOf(4), options);
  }

  /**
   * CMD_HASH_DATA: feeds data to the DRTM hash sequence, in messages of at most 4096 bytes.
   * @param data - the bytes to hash.
   * @param options - signal / bound (per message).
   * @throws SwtpmControlError.
   */
  async hashData(data: Uint8Array, options?: SwtpmControlCallOptions): Promise<void> {
    for (let off = 0; off < data.length || (off === 0 && data.length === 0); off += SWTPM_HASH_DATA_MAX) {
      const chunk = data.subarray(off, off + SWTPM_HASH_DATA_MAX);
      const body = new Uint8Array(4 + chunk.length);
      put32(body, 0, chunk.length);
      body.set(chunk, 4);
      await this.#exchange(SWTPM_CMD.HASH_DATA, body, replyOf(4), options);
      if (data.length === 0) break;
    }
  }

  /**
   * CMD_HASH_END: ends the DRTM hash sequence (extends PCR 17).
   * @param options - signal / bound.
   * @throws SwtpmControlError.
   */
  async hashEnd(options?: SwtpmControlCallOptions): Promise<void> {
    await this.#exchange(SWTPM_CMD.HASH_END, EMPTY, replyOf(4), options);
  }

  /**
   * CMD_CANCEL_TPM_CMD: asks the TPM to cancel the command in flight (swtpm 0.7 answers success but
   * cannot interrupt a running command).
   * @param options - signal / bound.
   * @throws SwtpmControlError (TPM_BAD_ORDINAL when stopped).
   */
  async cancelTpmCmd(options?: SwtpmControlCallOptions): Promise<void> {
    await this.#exchange(SWTPM_CMD.CANCEL_TPM_CMD, EMPTY, replyOf(4), options);
  }

  /**
   * CMD_STORE_VOLATILE: writes the volatile state to storage.
   * @param options - signal / bound.
   * @throws SwtpmControlError.
   */
  async storeVolatile(options?: SwtpmControlCallOptions): Promise<void> {
    await this.#exchange(SWTPM_CMD.STORE_VOLATILE, EMPTY, replyOf(4), options);
  }

  /**
   * CMD_RESET_TPMESTABLISHED: clears the TPM-established flag, running at `locality` (3 or 4 for
   * the reset to be allowed).
   * @param locality - the locality to run the reset at, 0–4.
   * @param options - signal / bound.
   * @throws SwtpmControlError TPM_BAD_LOCALITY when refused.
   */
  async resetTpmEstablished(locality: number, options?: SwtpmControlCallOptions): Promise<void> {
    checkByte(locality, "locality");
    await this.#exchange(SWTPM_CMD.RESET_TPMESTABLISHED, Uint8Array.of(locality), replyOf(4), options);
  }

  /**
   * CMD_GET_STATEBLOB: reads a state blob (permanent 1, volatile 2, savestate 3), following the
   * offset until `totlength` bytes are in.
   * @param type - PTM_BLOB_TYPE value.
   * @param opts - `decrypted`: ask for the decrypted blob.
   * @param options - signal / bound.
   * @returns the blob and its flags.
   * @throws SwtpmControlError; TpmFormatError when the peer's lengths are inconsistent or exceed maxBlobSize.
   */
  async getStateBlob(type: number, opts: { decrypted?: boolean } = {}, options?: SwtpmControlCallOptions): Promise<SwtpmStateBlob> {
    checkU32(type, "type");
    // Pieces are kept until the end: nothing is allocated from a peer's totlength alone.
    const parts: Uint8Array[] = [];
    let expected: number | undefined;
    let flags = 0;
    let got = 0;
    for (let rounds = 0; ; rounds++) {
      const body = new Uint8Array(12);
      put32(body, 0, opts.decrypted ? PTM_STATE_FLAG_DECRYPTED : 0);
      put32(body, 4, type);
      put32(body, 8, got);
      const max = this.#maxBlob;
      const r = await this.#exchange(
        SWTPM_CMD.GET_STATEBLOB,
        body,
        async (res, read) => {
          const head = await read(12);
          const total = be32(head, 4);
          const length = be32(head, 8);
          if (res !== 0) {
            if (length !== 0) throw new TpmFormatError(`CMD_GET_STATEBLOB error reply carries ${length} blob bytes`);
            return head;
          }
          if (total > max) throw new TpmFormatError(`state blob totlength ${total} exceeds the limit ${max}`);
          if (length > total - got) throw new TpmFormatError(`state blob length ${length} at offset ${got} runs past totlength ${total}`);
          const data = length > 0 ? await read(length) : EMPTY;
          const out = new Uint8Array(12 + length);
          out.set(head, 0);
          out.set(data, 12);
          return out;
        },
        options,
      );
      // r = state_flags, totlength, length, data (after the 4-byte result, stripped below)
      flags = be32(r, 4);
      const total = be32(r, 8);
      const length = be32(r, 12);
      if (expected === undefined) expected = total;
      else if (expected !== total) throw new TpmFormatError(`state blob totlength changed from ${expected} to ${total}`);
      parts.push(r.subarray(16, 16 + length));
      got += length;
      if (got >= total) break;
      if (length === 0 || rounds > 1 << 16) throw new TpmFormatError(`state blob stalled at ${got} of ${total} bytes`);
    }
    return { flags, encrypted: (flags & PTM_STATE_FLAG_ENCRYPTED) !== 0, blob: concatBytes(...parts) };
  }

  /**
   * CMD_SET_STATEBLOB: writes a state blob. The TPM must be stopped ({@link SwtpmControl.stop}).
   * @param type - PTM_BLOB_TYPE value.
   * @param blob - the bytes (at most 512 KiB).
   * @param opts - `encrypted`: the blob is encrypted.
   * @param options - signal / bound.
   * @throws TpmArgumentError when larger than 512 KiB; SwtpmControlError (TPM_BAD_ORDINAL while running).
   */
  async setStateBlob(type: number, blob: Uint8Array, opts: { encrypted?: boolean } = {}, options?: SwtpmControlCallOptions): Promise<void> {
    checkU32(type, "type");
    if (blob.length > SWTPM_STATEBLOB_MAX) throw new TpmArgumentError(`state blob of ${blob.length} bytes exceeds swtpm's ${SWTPM_STATEBLOB_MAX}`);
    const body = new Uint8Array(12 + blob.length);
    put32(body, 0, opts.encrypted ? PTM_STATE_FLAG_ENCRYPTED : 0);
    put32(body, 4, type);
    put32(body, 8, blob.length);
    body.set(blob, 12);
    await this.#exchange(SWTPM_CMD.SET_STATEBLOB, body, replyOf(4), options);
  }

  /**
   * CMD_STOP: stops the TPM library; the process stays up (for SET_STATEBLOB, SET_BUFFERSIZE).
   * @param options - signal / bound.
   * @throws SwtpmControlError.
   */
  async stop(options?: SwtpmControlCallOptions): Promise<void> {
    await this.#exchange(SWTPM_CMD.STOP, EMPTY, replyOf(4), options);
  }

  /**
   * CMD_GET_CONFIG: which keys swtpm was given.
   * @param options - signal / bound.
   * @returns the decoded flags.
   * @throws SwtpmControlError.
   */
  async getConfig(options?: SwtpmControlCallOptions): Promise<SwtpmConfig> {
    const r = await this.#exchange(SWTPM_CMD.GET_CONFIG, EMPTY, replyOf(8, 8), options);
    const flags = be32(r, 4);
    return { flags, fileKey: (flags & PTM_CONFIG_FLAG.FILE_KEY) !== 0, migrationKey: (flags & PTM_CONFIG_FLAG.MIGRATION_KEY) !== 0 };
  }

  /**
   * CMD_SET_BUFFERSIZE: queries (size 0) or sets the TPM I/O buffer size. Setting needs a stopped TPM.
   * @param size - wanted size, 0 to query.
   * @param options - signal / bound.
   * @returns size in use, min and max.
   * @throws SwtpmControlError (TPM_BAD_ORDINAL when setting while running).
   */
  async setBufferSize(size = 0, options?: SwtpmControlCallOptions): Promise<SwtpmBufferSize> {
    checkU32(size, "size");
    const body = new Uint8Array(4);
    put32(body, 0, size);
    const r = await this.#exchange(SWTPM_CMD.SET_BUFFERSIZE, body, replyOf(16), options);
    return { size: be32(r, 4), min: be32(r, 8), max: be32(r, 12) };
  }

  /**
   * CMD_GET_INFO: JSON information (flags: SWTPM_INFO.TPMSPECIFICATION, .TPMATTRIBUTES), read in
   * pieces until `totlength` bytes are in.
   * @param flags - SWTPM_INFO bits.
   * @param options - signal / bound.
   * @returns the parsed JSON object and the raw string.
   * @throws SwtpmControlError; TpmFormatError when lengths are inconsistent or the JSON does not parse.
   */
  async getInfo(flags: number | bigint, options?: SwtpmControlCallOptions): Promise<{ json: Record<string, unknown>; text: string }> {
    const f = BigInt(flags);
    if (f < 0n || f > 0xffffffffffffffffn) throw new TpmArgumentError(`GET_INFO flags out of range: ${flags}`);
    const parts: Uint8Array[] = [];
    let expected: number | undefined;
    let got = 0;
    for (;;) {
      const body = new Uint8Array(16);
      new DataView(body.buffer).setBigUint64(0, f);
      put32(body, 8, got);
      const max = this.#maxBlob;
      const r = await this.#exchange(
        SWTPM_CMD.GET_INFO,
        body,
        async (res, read) => {
          if (res !== 0) return EMPTY;
          const head = await read(8);
          const total = be32(head, 0);
          const length = be32(head, 4);
          if (total > max) throw new TpmFormatError(`GET_INFO totlength ${total} exceeds the limit ${max}`);
          if (length > total - got) throw new TpmFormatError(`GET_INFO length ${length} at offset ${got} runs past totlength ${total}`);
          const data = await read(length);
          const out = new Uint8Array(8 + length);
          out.set(head);
          out.set(data, 8);
          return out;
        },
        options,
      );
      const total = be32(r, 4);
      const length = be32(r, 8);
      if (expected === undefined) expected = total;
      else if (expected !== total) throw new TpmFormatError(`GET_INFO totlength changed from ${expected} to ${total}`);
      parts.push(r.subarray(12, 12 + length));
      got += length;
      if (got >= total) break;
      if (length === 0) throw new TpmFormatError(`GET_INFO stalled at ${got} of ${total} bytes`);
    }
    const bytes = concatBytes(...parts);
    let end = bytes.indexOf(0);
    if (end < 0) end = bytes.length;
    const text = new TextDecoder().decode(bytes.subarray(0, end));
    try {
      const json = JSON.parse(text) as unknown;
      if (json === null || typeof json !== "object" || Array.isArray(json)) throw new Error("not an object");
      return { json: json as Record<string, unknown>, text };
    } catch (e) {
      throw new TpmFormatError(`GET_INFO returned text that is not a JSON object: ${JSON.stringify(text.slice(0, 80))}`, { cause: e });
    }
  }

  /**
   * CMD_LOCK_STORAGE (swtpm ≥ 0.8): re-locks the state storage after an outgoing migration fell
   * back, retrying `retries` times 10 ms apart. swtpm 0.7 answers TPM_BAD_ORDINAL.
   * @param retries - number of retries.
   * @param options - signal / bound.
   * @throws SwtpmControlError (TPM_BAD_ORDINAL on swtpm 0.7, TPM_IOERROR when locking failed).
   */
  async lockStorage(retries = 0, options?: SwtpmControlCallOptions): Promise<void> {
    checkU32(retries, "retries");
    const body = new Uint8Array(4);
    put32(body, 0, retries);
    await this.#exchange(SWTPM_CMD.LOCK_STORAGE, body, replyOf(4), options);
  }

  /**
   * Sends an arbitrary control command and returns the raw reply (result included). For commands
   * newer than this client; `replyLength` says how many bytes to read in total.
   * @param command - the u32 command code.
   * @param body - request body.
   * @param replyLength - total reply length on success (≥ 4); a failure reads 4 bytes.
   * @param options - signal / bound.
   * @returns the reply bytes, starting with the u32 result.
   * @throws SwtpmControlError on a non-zero result.
   */
  async raw(command: number, body: Uint8Array, replyLength: number, options?: SwtpmControlCallOptions): Promise<Uint8Array> {
    checkU32(command, "command");
    if (!Number.isInteger(replyLength) || replyLength < 4 || replyLength > this.#maxBlob) throw new TpmArgumentError(`replyLength must be 4–${this.#maxBlob}`);
    return this.#exchange(command, body, replyOf(replyLength), options);
  }

  /** Closes the control connection. Idempotent; later calls throw TpmStateError. */
  async close(): Promise<void> {
    this.#closed = true;
    const c = this.#conn;
    this.#conn = undefined;
    c?.destroy(new TpmStateError("swtpm control client closed"));
    const q = this.#queue;
    this.#queue = [];
    for (const next of q) next();
  }

  /** Drops the current connection (the next call reconnects). */
  disconnect(): void {
    const c = this.#conn;
    this.#conn = undefined;
    c?.destroy(new TpmTransportError("swtpm control connection dropped by the client", { errno: "ECONNRESET" }));
  }

  async #lock(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#busy) {
      this.#busy = true;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#queue.indexOf(go);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(abortErrorFrom(signal!));
      };
      const go = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      if (signal?.aborted) return reject(abortErrorFrom(signal));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(go);
    });
  }

  #unlock(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#busy = false;
  }

  async #connection(signal: AbortSignal | undefined): Promise<SocketReader> {
    const c = this.#conn;
    if (c && !c.closed) {
      if (c.buffered === 0) return c;
      // Bytes that arrived when no exchange was waiting: the stream is out of step.
      this.#fail(c, new TpmFormatError(`swtpm control channel sent ${c.buffered} unsolicited bytes; connection dropped`));
    }
    const sock = await connectSocket(this.endpoint, {
      clock: this.#clock,
      timeoutMs: this.#connectTimeoutMs,
      signal,
      label: "swtpm control channel",
    });
    if (this.#closed) {
      sock.destroy();
      throw new TpmStateError("swtpm control client closed");
    }
    this.#generation++;
    const conn = new SocketReader(sock, `swtpm control channel ${describeEndpoint(this.endpoint)}`);
    this.#conn = conn;
    return conn;
  }

  /** Drops `conn` (failing its pending read with `err`); the next exchange reconnects. */
  #fail(conn: SocketReader, err: TpmkitError): void {
    if (this.#conn === conn) this.#conn = undefined;
    conn.destroy(err);
  }

  /**
   * One serialized exchange: write u32 command + body in one write, read the u32 result, then the
   * rest as `readRest` says. Returns result + rest; throws SwtpmControlError on a non-zero result.
   */
  async #exchange(command: number, body: Uint8Array, readRest: ReplyReader, options: SwtpmControlCallOptions = {}): Promise<Uint8Array> {
    if (this.#closed) throw new TpmStateError("swtpm control client closed");
    const { signal } = options;
    await this.#lock(signal);
    try {
      if (this.#closed) throw new TpmStateError("swtpm control client closed");
      const bound = options.timeoutMs ?? this.#timeoutMs;
      const ac = new AbortController();
      const timer = this.#clock.setTimer(bound, () => ac.abort(new TpmTimeoutError(`swtpm ${swtpmCommandName(command)} exchange`, bound)));
      const onAbort = () => ac.abort(abortErrorFrom(signal!));
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
      let conn: SocketReader | undefined;
      const stop = () => {
        // A late reply must never reach the next caller: drop the connection.
        if (conn) this.#fail(conn, abortErrorFrom(ac.signal));
      };
      ac.signal.addEventListener("abort", stop, { once: true });
      try {
        if (ac.signal.aborted) throw ac.signal.reason;
        conn = await this.#connection(ac.signal);
        if (ac.signal.aborted) {
          stop();
          throw ac.signal.reason;
        }
        const req = new Uint8Array(4 + body.length);
        put32(req, 0, command);
        req.set(body, 4);
        conn.socket.write(req);
        const read = (n: number) => conn!.read(n, { signal: ac.signal, what: `${swtpmCommandName(command)} reply` });
        const head = await read(4);
        const result = be32(head, 0);
        const rest = await readRest(result, read);
        if (conn.buffered > 0) throw new TpmFormatError(`swtpm ${swtpmCommandName(command)} reply is longer than the protocol allows`);
        if (result !== 0) throw new SwtpmControlError(command, result);
        const out = new Uint8Array(4 + rest.length);
        out.set(head);
        out.set(rest, 4);
        return out;
      } catch (e) {
        if (e instanceof TpmFormatError && conn) this.#fail(conn, e);
        if (ac.signal.aborted && !(e instanceof SwtpmControlError)) throw ac.signal.reason;
        if (e instanceof TpmkitError) throw e;
        throw new TpmTransportError(`swtpm ${swtpmCommandName(command)} failed`, { cause: e, errno: "EIO" });
      } finally {
        timer.clear();
        signal?.removeEventListener("abort", onAbort);
        ac.signal.removeEventListener("abort", stop);
      }
    } finally {
      this.#unlock();
    }
  }
}

const EMPTY = /* @__PURE__ */ new Uint8Array(0);

function positive(v: number, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new TpmArgumentError(`${what} must be a positive number, got ${String(v)}`);
  return v;
}
function checkByte(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new TpmArgumentError(`${what} must be an integer 0–255, got ${String(v)}`);
}
function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new TpmArgumentError(`${what} must be a u32, got ${String(v)}`);
}
