import { describe, expect, it } from "vitest";
import { ftpmTee, FTPM_SHM_SIZE, type FtpmTeeTransport } from "./index.js";
import { Chip } from "../../core/chip.js";
import { FakeClock } from "../../core/clock.js";
import { Tpm } from "../../client/tpm.js";
import { ProbeDeferredError, TeeError, TpmAbortError, TpmArgumentError, TpmFormatError, TpmStateError, TpmTimeoutError, TpmTransportError, TpmUnavailableError, abortErrorFrom } from "../../errors/index.js";
import { FTPM_TA_UUID, TEE_LOGIN, TEE_ORIGIN, TEE_PARAM_TYPE, TEE_RESULT } from "../../bus/tee/constants.js";
import type { TeeClientKind, TeeContext, TeeDevice, TeeDeviceStatus, TeeOperation, TeeSession, TeeSharedMemory } from "../../bus/tee/client.js";

const TPM_CC_GetRandom = 0x17b;

function tpmCmd(cc: number, bodyLen = 0): Uint8Array {
  const b = new Uint8Array(10 + bodyLen);
  const v = new DataView(b.buffer);
  v.setUint16(0, 0x8001);
  v.setUint32(2, b.length);
  v.setUint32(6, cc);
  for (let i = 10; i < b.length; i++) b[i] = 0xa5;
  return b;
}
/** The canned answer of the fake TA: TPM_RC_SUCCESS with two body bytes. */
const CANNED = Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0xbe, 0xef);

const TPM_CC_Startup = 0x144;
/** TPM_RC_SUCCESS without parameters: the answer to Startup. */
const STARTED = Uint8Array.of(0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0);

/** Waits for `pred` while letting the TEE model's promises run (no clock, no real sleep). */
async function until(pred: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await Promise.resolve();
  expect(pred()).toBe(true);
}

interface Submit {
  cmd: number;
  params: TeeOperation["params"];
  command: Uint8Array;
  tail: Uint8Array;
}

/**
 * A TEE with a fake fTPM TA behind it. The TA answers SUBMIT_COMMAND with a canned response; its
 * NV needs the supplicant (`taNeedsSupplicant`): a kernel client's request then fails at once and
 * the TA panics (TARGET_DEAD), a user client's waits for the supplicant, bounded by its signal.
 */
class FakeTee implements TeeDevice {
  readonly kind = "fake-tee";
  present = true;
  supplicant: TeeDeviceStatus["supplicant"] = "running";
  /** openContext rejects with ITEM_NOT_FOUND (no /dev/tee0 although the bus says present). */
  contextNotFound = false;
  /** The TA's create entry point reads NV: an open needs the supplicant too. */
  openNeedsSupplicant = true;
  taNeedsSupplicant = true;
  /** A TeeError for every openSession. */
  openError: TeeError | undefined;
  /** The TA panics on the next SUBMIT. */
  dieOnNext = false;
  taDead = false;
  /** What the TA writes at offset 4096 (default CANNED). */
  response: Uint8Array = CANNED;
  /** A TeeError the next SUBMIT returns. */
  invokeError: TeeError | undefined;
  /** A user context's session close waits forever while the supplicant is not running. */
  userCloseHangs = false;
  submits: Submit[] = [];
  opens: { uuid: string; login: number | undefined; client: TeeClientKind; signal: AbortSignal | undefined }[] = [];
  contexts: { client: TeeClientKind; closed: boolean; shms: number; sessions: number }[] = [];
  allocs: number[] = [];
  cancels = 0;
  #listeners = new Set<(s: TeeDeviceStatus) => void>();
  #waiters = new Set<() => void>();

  get statusListeners(): number {
    return this.#listeners.size;
  }
  status(): TeeDeviceStatus {
    return { present: this.present, supplicant: this.supplicant };
  }
  onStatus(fn: (s: TeeDeviceStatus) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
  setSupplicant(s: TeeDeviceStatus["supplicant"]): void {
    this.supplicant = s;
    for (const fn of [...this.#listeners]) fn(this.status());
    if (s === "running") for (const w of [...this.#waiters]) w();
  }
  setPresent(p: boolean): void {
    this.present = p;
    for (const fn of [...this.#listeners]) fn(this.status());
  }

  /** The supplicant RPC: at once for a kernel client (supp_nowait), waits for a user client. */
  #rpc(client: TeeClientKind, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.supplicant === "running") return Promise.resolve(true);
    if (client === "kernel") return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      const w = () => {
        this.#waiters.delete(w);
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      };
      const onAbort = () => {
        this.#waiters.delete(w);
        this.cancels++;
        reject(abortErrorFrom(signal!));
      };
      this.#waiters.add(w);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async openContext(options: { client?: TeeClientKind; signal?: AbortSignal } = {}): Promise<TeeContext> {
    if (!this.present || this.contextNotFound) throw new TeeError("no TEE device", TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.COMMS);
    const client = options.client ?? "user";
    const rec = { client, closed: false, shms: 0, sessions: 0 };
    this.contexts.push(rec);
    const tee = this;
    const ctx: TeeContext = {
      client,
      async openSession(uuid, o = {}) {
        tee.opens.push({ uuid, login: o.login, client, signal: o.signal });
        if (tee.openError) throw tee.openError;
        if (uuid !== FTPM_TA_UUID) throw new TeeError("no such TA", TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.TEE);
        if (tee.openNeedsSupplicant && !(await tee.#rpc(client, o.signal))) throw new TeeError("TA panicked in create", TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
        tee.taDead = false;
        rec.sessions++;
        let closed = false;
        const session: TeeSession = {
          id: 1,
          uuid,
          async invoke(cmd, op, io = {}) {
            if (closed) throw new TeeError("session closed", TEE_RESULT.BAD_STATE, TEE_ORIGIN.API);
            if (tee.taDead) throw new TeeError("TA dead", TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
            const p = op!.params;
            const shm = p[0]!.shm!;
            tee.submits.push({ cmd, params: p.map((x) => ({ ...x })), command: shm.buffer.slice(p[0]!.offset!, p[0]!.offset! + p[0]!.size!), tail: shm.buffer.slice(p[0]!.size!, 4096) });
            if (tee.invokeError) {
              const e = tee.invokeError;
              tee.invokeError = undefined;
              throw e;
            }
            if (tee.dieOnNext || (tee.taNeedsSupplicant && !(await tee.#rpc(client, io.signal)))) {
              tee.dieOnNext = false;
              tee.taDead = true;
              throw new TeeError("TA panicked", TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE);
            }
            const cc = new DataView(shm.buffer.buffer, shm.buffer.byteOffset).getUint32(6);
            p[1]!.shm!.buffer.set(cc === TPM_CC_Startup ? STARTED : tee.response, p[1]!.offset!);
          },
          requestCancellation() {
            tee.cancels++;
          },
          async close() {
            if (closed) return;
            if (client === "user" && tee.userCloseHangs && tee.supplicant !== "running") await new Promise(() => {});
            closed = true;
            rec.sessions--;
          },
        };
        return session;
      },
      allocateSharedMemory(size, flags = 3): TeeSharedMemory {
        tee.allocs.push(size);
        rec.shms++;
        return { id: rec.shms, buffer: new Uint8Array(size), size, flags, registered: false };
      },
      registerSharedMemory(): TeeSharedMemory {
        throw new Error("not used");
      },
      releaseSharedMemory() {
        rec.shms--;
      },
      get sharedMemoryCount() {
        return rec.shms;
      },
      get sessionCount() {
        return rec.sessions;
      },
      async close() {
        rec.closed = true;
      },
    };
    return ctx;
  }
}

async function openChip(tee: FakeTee, extra: Partial<Parameters<typeof ftpmTee>[0]> = {}, clock = new FakeClock()) {
  const t = ftpmTee({ tee, clock, ...extra });
  const chip = new Chip(t, { clock });
  await chip.open();
  return { t, chip, clock };
}

describe("ftpmTee probe (ftpm_tee_probe)", () => {
  it("defers while there is no TEE (status not present): ProbeDeferredError, chip deferred, presence deferred", async () => {
    const tee = new FakeTee();
    tee.present = false;
    const t = ftpmTee({ tee });
    const chip = new Chip(t);
    await expect(chip.open()).rejects.toBeInstanceOf(ProbeDeferredError);
    expect(chip.readiness).toBe("deferred");
    expect(t.presence()).toBe("deferred");
    expect(tee.contexts).toHaveLength(0);
    tee.present = true;
    await chip.open();
    expect(chip.readiness).toBe("ready");
  });

  it("turns openContext's ITEM_NOT_FOUND into ProbeDeferredError (-ENOENT -> -EPROBE_DEFER), cause kept", async () => {
    const tee = new FakeTee();
    tee.contextNotFound = true;
    const e = await ftpmTee({ tee }).open({ clock: new FakeClock(), locality: 0 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ProbeDeferredError);
    expect((e as ProbeDeferredError).cause).toMatchObject({ teeCode: TEE_RESULT.ITEM_NOT_FOUND });
  });

  it("opens a kernel context and one session to the fTPM UUID with login PUBLIC by default", async () => {
    const tee = new FakeTee();
    const { t } = await openChip(tee);
    expect(tee.contexts.map((c) => c.client)).toEqual(["kernel"]);
    expect(tee.opens).toEqual([{ uuid: "bc50d971-d4c9-42c4-82cb-343fb7f37896", login: TEE_LOGIN.PUBLIC, client: "kernel", signal: expect.any(AbortSignal) }]);
    expect(t.state()).toMatchObject({ open: true, sessionDead: false, presence: "present" });
  });

  it("uses the login it is given (REE_KERNEL, the U-Boot-like client) and the user client kind", async () => {
    const tee = new FakeTee();
    await openChip(tee, { login: TEE_LOGIN.REE_KERNEL, client: "user" });
    expect(tee.opens[0]).toMatchObject({ login: 0x80000000, client: "user" });
    expect(tee.contexts[0]!.client).toBe("user");
  });

  it.each([
    ["an REE TA that cannot be loaded without the supplicant", TEE_RESULT.OUT_OF_MEMORY, TEE_ORIGIN.TEE, "ffff000c"],
    ["the 2019 OP-TEE's answer for the same case", TEE_RESULT.ITEM_NOT_FOUND, TEE_ORIGIN.TEE, "ffff0008"],
    ["an early TA that dies on its storage", TEE_RESULT.TARGET_DEAD, TEE_ORIGIN.TEE, "ffff3024"],
    ["a failed RPC", TEE_RESULT.COMMUNICATION, TEE_ORIGIN.COMMS, "ffff000e"],
  ])("surfaces an open-session failure (%s) as TeeError with its code and origin, once, and releases the context", async (_what, code, origin, hex) => {
    const tee = new FakeTee();
    tee.openError = new TeeError("open failed", code, origin);
    const t = ftpmTee({ tee });
    const chip = new Chip(t);
    const e = await chip.open().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TeeError);
    expect(e).toMatchObject({ teeCode: code, origin, code: "TEE_ERROR" });
    expect((e as Error).message).toContain(`tee_client_open_session failed, err=${hex}`);
    expect(tee.opens).toHaveLength(1); // no retry
    expect(tee.contexts[0]!.closed).toBe(true);
    expect(tee.allocs).toEqual([]);
    expect(chip.readiness).toBe("failed");
    expect(t.presence()).toBe("absent");
  });

  it("rejects bad options with TpmArgumentError", () => {
    expect(() => ftpmTee({} as never)).toThrow(TpmArgumentError);
    expect(() => ftpmTee({ tee: new FakeTee(), client: "root" as never })).toThrow(/client/);
    expect(() => ftpmTee({ tee: new FakeTee(), login: -1 })).toThrow(/login/);
    expect(() => ftpmTee({ tee: new FakeTee(), closeTimeoutMs: Number.NaN })).toThrow(/closeTimeoutMs/);
  });
});

describe("ftpmTee send (ftpm_tee_tpm_op_send)", () => {
  it("allocates one 8 KiB block and submits command 0 with the kernel's four parameters", async () => {
    const tee = new FakeTee();
    const { chip } = await openChip(tee);
    expect(tee.allocs).toEqual([FTPM_SHM_SIZE]);
    expect(FTPM_SHM_SIZE).toBe(8192);
    const long = tpmCmd(TPM_CC_GetRandom, 100);
    await chip.transmit(long);
    const short = tpmCmd(TPM_CC_GetRandom, 2);
    const rsp = await chip.transmit(short);
    expect(rsp).toEqual(CANNED);
    const s = tee.submits[1]!;
    expect(s.cmd).toBe(0);
    expect(s.params.map((p) => p.type)).toEqual([TEE_PARAM_TYPE.MEMREF_PARTIAL_INPUT, TEE_PARAM_TYPE.MEMREF_PARTIAL_INOUT, TEE_PARAM_TYPE.NONE, TEE_PARAM_TYPE.NONE]);
    expect(s.params[0]).toMatchObject({ offset: 0, size: short.length });
    expect(s.params[1]).toMatchObject({ offset: 4096, size: 4096 });
    expect(s.params[0]!.shm).toBe(s.params[1]!.shm);
    expect(s.command).toEqual(short);
    // the block is zeroed before each command: nothing of the longer first command is left
    expect(s.tail.every((b) => b === 0)).toBe(true);
    expect(tee.allocs).toHaveLength(1);
  });

  it("reads the response length from the header at 4096 and returns exactly that many bytes", async () => {
    const tee = new FakeTee();
    const { chip } = await openChip(tee);
    const r = new Uint8Array(40);
    r.set([0x80, 0x01, 0, 0, 0, 14, 0, 0, 0, 0, 1, 2, 3, 4], 0);
    r.fill(0xff, 14);
    tee.response = r;
    expect(await chip.transmit(tpmCmd(TPM_CC_GetRandom))).toEqual(r.slice(0, 14));
  });

  it.each([
    ["shorter than a header", 9],
    ["zero", 0],
    ["over 4096", 4097],
    ["huge", 0xffffffff],
  ])("rejects a response length %s with TpmFormatError", async (_what, len) => {
    const tee = new FakeTee();
    const { chip } = await openChip(tee);
    const r = new Uint8Array(10);
    new DataView(r.buffer).setUint16(0, 0x8001);
    new DataView(r.buffer).setUint32(2, len);
    tee.response = r;
    await expect(chip.transmit(tpmCmd(TPM_CC_GetRandom))).rejects.toBeInstanceOf(TpmFormatError);
  });

  it("passes a TeeError from the invoke to the caller with its code and origin", async () => {
    const tee = new FakeTee();
    const { chip } = await openChip(tee);
    tee.invokeError = new TeeError("short", TEE_RESULT.SHORT_BUFFER, TEE_ORIGIN.TRUSTED_APP);
    const e = await chip.transmit(tpmCmd(TPM_CC_GetRandom)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TeeError);
    expect(e).toMatchObject({ teeCode: 0xffff0010, origin: 4 });
    expect(chip.readiness).toBe("ready");
  });

  it("offers 4096 bytes: the chip refuses more up front, the transport alone says EIO", async () => {
    const tee = new FakeTee();
    const { t, chip, clock } = await openChip(tee);
    expect(t.maxCommandSize).toBe(4096);
    await expect(chip.transmit(tpmCmd(TPM_CC_GetRandom, 4087))).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(t.send(tpmCmd(TPM_CC_GetRandom, 4087), { signal: new AbortController().signal, locality: 0, timeoutMs: 1000, clock })).rejects.toMatchObject({ errno: "EIO" });
    await expect(chip.transmit(tpmCmd(TPM_CC_GetRandom, 4086))).resolves.toEqual(CANNED);
    expect(tee.submits).toHaveLength(1);
  });

  it("refuses to send before open", async () => {
    const t = ftpmTee({ tee: new FakeTee() });
    await expect(t.send(tpmCmd(1), { signal: new AbortController().signal, locality: 0, timeoutMs: 1, clock: new FakeClock() })).rejects.toBeInstanceOf(TpmStateError);
  });
});

describe("ftpmTee present vs usable (seed 001)", () => {
  it("reproduces the sequence: works, switch root stops the supplicant (unusable, nothing sent), restart (usable again)", async () => {
    const tee = new FakeTee();
    const clock = new FakeClock();
    const t = ftpmTee({ tee, clock });
    // initrd: the supplicant runs, the TPM works
    const tpm = await Tpm.open(t, { clock });
    expect(tpm.chip.readiness).toBe("ready");
    expect(await tpm.chip.transmit(tpmCmd(TPM_CC_GetRandom))).toEqual(CANNED);
    const sent = tee.submits.length;
    // switch root: the initrd's supplicant stops; the node stays, the TPM is not usable
    tee.setSupplicant("stopped");
    expect(tpm.chip.readiness).toBe("unusable");
    expect(t.presence()).toBe("unusable");
    expect(t.state().open).toBe(true);
    expect(tpm.chip.readinessError).toBeInstanceOf(TpmUnavailableError);
    expect(String((tpm.chip.readinessError as Error).message)).toMatch(/tee-supplicant is stopped/);
    // a consumer gets a typed error at once, and nothing reaches the TA (it would die)
    const e = await tpm.chip.transmit(tpmCmd(TPM_CC_GetRandom)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TpmUnavailableError);
    expect(e).toMatchObject({ code: "TPM_UNAVAILABLE" });
    await expect(tpm.getRandom(4)).rejects.toBeInstanceOf(TpmUnavailableError);
    expect(tee.submits.length).toBe(sent);
    expect(tee.taDead).toBe(false);
    // waitReady is bounded on the clock...
    const timedOut = tpm.chip.waitReady({ timeoutMs: 5000 }).catch((x: unknown) => x);
    await clock.advance(5000);
    expect(await timedOut).toBeInstanceOf(TpmTimeoutError);
    // ...and abortable
    const ac = new AbortController();
    const aborted = tpm.chip.waitReady({ signal: ac.signal, timeoutMs: 60_000 });
    ac.abort();
    await expect(aborted).rejects.toBeInstanceOf(TpmAbortError);
    // the rootfs starts its supplicant: usable again
    const back = tpm.chip.waitReady({ timeoutMs: 60_000 });
    tee.setSupplicant("running");
    await back;
    expect(tpm.chip.readiness).toBe("ready");
    expect(await tpm.chip.transmit(tpmCmd(TPM_CC_GetRandom))).toEqual(CANNED);
    // shutdown with the supplicant stopped first never hangs: no clock movement needed
    tee.setSupplicant("stopped");
    await tpm.close();
    expect(tee.contexts[0]).toMatchObject({ closed: true, shms: 0, sessions: 0 });
    expect(tee.statusListeners).toBe(0);
    expect(t.presence()).toBe("absent");
  });

  it("a TA that died (TARGET_DEAD) leaves the chip unusable until the transport is opened again (re-bind)", async () => {
    const tee = new FakeTee();
    const { t, chip } = await openChip(tee);
    tee.dieOnNext = true;
    const e = await chip.transmit(tpmCmd(TPM_CC_GetRandom)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TeeError);
    expect(e).toMatchObject({ teeCode: TEE_RESULT.TARGET_DEAD, origin: TEE_ORIGIN.TEE });
    expect(chip.readiness).toBe("unusable");
    expect(chip.readinessError).toMatchObject({ teeCode: 0xffff3024 });
    expect(String((chip.readinessError as Error).message)).toMatch(/re-bind/);
    expect(t.state().sessionDead).toBe(true);
    // a supplicant restart does not revive a dead session
    tee.setSupplicant("stopped");
    tee.setSupplicant("running");
    expect(chip.readiness).toBe("unusable");
    await expect(chip.transmit(tpmCmd(TPM_CC_GetRandom))).rejects.toBeInstanceOf(TpmUnavailableError);
    // re-bind: the old session, shm and context are released, a new session is opened
    await chip.open();
    expect(chip.readiness).toBe("ready");
    expect(tee.opens).toHaveLength(2);
    expect(tee.contexts[0]).toMatchObject({ closed: true, shms: 0, sessions: 0 });
    expect(tee.statusListeners).toBe(1);
    expect(await chip.transmit(tpmCmd(TPM_CC_GetRandom))).toEqual(CANNED);
  });

  it("with needsSupplicant false stays present without the supplicant; a kernel client's command then kills the TA", async () => {
    const tee = new FakeTee();
    const { chip } = await openChip(tee, { needsSupplicant: false });
    tee.setSupplicant("stopped");
    expect(chip.readiness).toBe("ready");
    tee.taNeedsSupplicant = false;
    expect(await chip.transmit(tpmCmd(TPM_CC_GetRandom))).toEqual(CANNED);
    tee.taNeedsSupplicant = true; // storage RPC with supp_nowait: COMMUNICATION inside, the TA panics
    await expect(chip.transmit(tpmCmd(TPM_CC_GetRandom))).rejects.toMatchObject({ teeCode: TEE_RESULT.TARGET_DEAD });
    expect(chip.readiness).toBe("unusable");
  });

  it("reports unusable when the TEE goes away under an open session", async () => {
    const tee = new FakeTee();
    const { chip } = await openChip(tee);
    tee.setPresent(false);
    expect(chip.readiness).toBe("unusable");
    await expect(chip.transmit(tpmCmd(TPM_CC_GetRandom))).rejects.toBeInstanceOf(TpmUnavailableError);
  });

  it("opens unusable when the supplicant is absent though the session opened (early TA, lazy storage)", async () => {
    const tee = new FakeTee();
    tee.supplicant = "absent";
    tee.openNeedsSupplicant = false;
    const { chip } = await openChip(tee);
    expect(chip.readiness).toBe("unusable");
    expect(String((chip.readinessError as Error).message)).toMatch(/absent/);
  });
});

describe("ftpmTee client kinds", () => {
  it("a kernel client fails at once without the supplicant (TARGET_DEAD at open, the seed's ffff3024)", async () => {
    const tee = new FakeTee();
    tee.supplicant = "stopped";
    const clock = new FakeClock();
    const e = await Tpm.open(ftpmTee({ tee, clock }), { clock }).catch((x: unknown) => x);
    expect(e).toMatchObject({ teeCode: 0xffff3024, origin: TEE_ORIGIN.TEE });
    expect(clock.now()).toBe(0);
  });

  it("a user client's open waits for the supplicant, bounded by Tpm.open's signal (the signal reaches the TEE)", async () => {
    const tee = new FakeTee();
    tee.supplicant = "stopped";
    const clock = new FakeClock();
    const ac = new AbortController();
    const opening = Tpm.open(ftpmTee({ tee, client: "user", clock }), { signal: ac.signal, clock }).catch((x: unknown) => x);
    await until(() => tee.opens.length === 1);
    const seen = tee.opens[0]!.signal!;
    expect(seen.aborted).toBe(false);
    ac.abort();
    const e = await opening;
    expect(e).toBeInstanceOf(TpmAbortError);
    expect(seen.aborted).toBe(true);
    expect(tee.cancels).toBe(1);
    expect(tee.contexts[0]!.closed).toBe(true);
  });

  it("a user client's open proceeds once the supplicant starts", async () => {
    const tee = new FakeTee();
    tee.supplicant = "stopped";
    const clock = new FakeClock();
    const opening = Tpm.open(ftpmTee({ tee, client: "user", clock }), { clock });
    await until(() => tee.opens.length === 1);
    tee.setSupplicant("running");
    const tpm = await opening;
    expect(tpm.chip.readiness).toBe("ready");
    await tpm.close();
  });

  it("a user client's open is bounded by openTimeoutMs on the clock without a signal", async () => {
    const tee = new FakeTee();
    tee.supplicant = "stopped";
    const clock = new FakeClock();
    const opening = ftpmTee({ tee, client: "user", clock, openTimeoutMs: 3000 })
      .open({ clock, locality: 0 })
      .catch((x: unknown) => x);
    await until(() => tee.opens.length === 1);
    await clock.advance(3000);
    const e = await opening;
    expect(e).toBeInstanceOf(TpmTimeoutError);
    expect(e).toMatchObject({ timeoutMs: 3000 });
    expect(tee.contexts[0]!.closed).toBe(true);
  });

  it("a user client's command waits for the supplicant, bounded by the chip's per-command signal", async () => {
    const tee = new FakeTee();
    const { chip, clock } = await openChip(tee, { client: "user", needsSupplicant: false });
    tee.setSupplicant("stopped");
    expect(chip.readiness).toBe("ready");
    const timed = chip.transmit(tpmCmd(TPM_CC_GetRandom), { timeoutMs: 200 }).catch((x: unknown) => x);
    await until(() => tee.submits.length === 1);
    await clock.advance(200);
    expect(await timed).toBeInstanceOf(TpmTimeoutError);
    expect(tee.cancels).toBe(1);
    expect(tee.taDead).toBe(false);
    const ac = new AbortController();
    const aborted = chip.transmit(tpmCmd(TPM_CC_GetRandom), { signal: ac.signal }).catch((x: unknown) => x);
    await until(() => tee.submits.length === 2);
    ac.abort();
    expect(await aborted).toBeInstanceOf(TpmAbortError);
    // and it completes when the supplicant comes back in time
    const ok = chip.transmit(tpmCmd(TPM_CC_GetRandom), { timeoutMs: 200 });
    await until(() => tee.submits.length === 3);
    tee.setSupplicant("running");
    expect(await ok).toEqual(CANNED);
  });
});

describe("ftpmTee close (ftpm_tee_remove)", () => {
  it("a kernel client closes at once with the supplicant stopped", async () => {
    const tee = new FakeTee();
    tee.userCloseHangs = true;
    const { chip, t, clock } = await openChip(tee);
    tee.setSupplicant("stopped");
    await chip.close();
    expect(clock.now()).toBe(0);
    expect(tee.contexts[0]).toMatchObject({ closed: true, shms: 0, sessions: 0 });
    expect((t as FtpmTeeTransport).state()).toMatchObject({ open: false, closeTimedOut: false, presence: "absent" });
  });

  it("a user client's close is bounded by closeTimeoutMs when the TEE waits for a stopped supplicant", async () => {
    const tee = new FakeTee();
    tee.userCloseHangs = true;
    const { chip, t, clock } = await openChip(tee, { client: "user", closeTimeoutMs: 500 });
    tee.setSupplicant("stopped");
    let closed = false;
    const closing = chip.close().then(() => {
      closed = true;
    });
    await clock.advance(499);
    expect(closed).toBe(false);
    await clock.advance(1);
    await closing;
    expect(t.state()).toMatchObject({ open: false, closeTimedOut: true });
    expect(tee.contexts[0]!.shms).toBe(0);
    expect(tee.statusListeners).toBe(0);
  });

  it("close is idempotent and close before open does nothing", async () => {
    const tee = new FakeTee();
    const t = ftpmTee({ tee });
    await t.close();
    const { chip } = await openChip(tee);
    await chip.close();
    await chip.close();
    expect(tee.contexts.filter((c) => !c.closed)).toHaveLength(0);
  });

  it("turns a non-TEE error from the TEE model into TeeError GENERIC, origin COMMS (a failed ioctl)", async () => {
    const tee = new FakeTee();
    const { chip } = await openChip(tee);
    tee.invokeError = new Error("ioctl EINVAL") as never;
    const e = await chip.transmit(tpmCmd(TPM_CC_GetRandom)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TeeError);
    expect(e).toMatchObject({ teeCode: TEE_RESULT.GENERIC, origin: TEE_ORIGIN.COMMS });
    expect(e).not.toBeInstanceOf(TpmTransportError);
  });
});
