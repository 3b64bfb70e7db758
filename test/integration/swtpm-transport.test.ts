/**
 * tpmkit's swtpm transport and control client against a real swtpm process (TCP and UNIX socket).
 * These tests need `swtpm` on PATH (CI installs it with apt); without it they fail, they do not skip.
 */
import * as fs from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../src/core/clock.js";
import { TpmTransportError } from "../../src/errors/index.js";
import { TpmWriter, toHex } from "../../src/wire/buffer.js";
import { swtpm, type SwtpmTransport } from "../../src/transports/swtpm/transport.js";
import { SwtpmControl } from "../../src/transports/swtpm/control.js";
import { PTM_BLOB_TYPE, PTM_CAP, SwtpmControlError } from "../../src/node/swtpm-protocol.js";
import type { SwtpmEndpoint } from "../../src/node/swtpm-socket.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm as startPeer, type SwtpmPeer } from "./swtpm-peer.js";

// ---------------------------------------------------------------- commands, built by hand (TPM 2.0 Part 3)

function getRandom(n: number): Uint8Array {
  return new TpmWriter().u16(0x8001).u32(12).u32(0x17b).u16(n).finish();
}
function pcrRead(pcr: number): Uint8Array {
  const sel = [0, 0, 0];
  sel[pcr >> 3] = 1 << (pcr & 7);
  return new TpmWriter().u16(0x8001).u32(20).u32(0x17e).u32(1).u16(0x000b).u8(3).u8(sel[0]!).u8(sel[1]!).u8(sel[2]!).finish();
}
function pcrExtend(pcr: number, digest: Uint8Array): Uint8Array {
  const w = new TpmWriter().u16(0x8002).u32(0).u32(0x182).u32(pcr);
  w.u32(9).u32(0x40000009).u16(0).u8(0).u16(0); // password session, empty auth
  w.u32(1).u16(0x000b).bytes(digest);
  w.patchU32(2, w.length);
  return w.finish();
}
function rcOf(r: Uint8Array): number {
  return new DataView(r.buffer, r.byteOffset).getUint32(6);
}
/** The digest of a one-PCR sha256 PCR_Read response: the last 32 bytes. */
function pcrDigest(r: Uint8Array): string {
  expect(rcOf(r)).toBe(0);
  return toHex(r.subarray(r.length - 32));
}

// ---------------------------------------------------------------- swtpm process management

type Swtpm = SwtpmPeer;

/** swtpm with data + control channel over TCP or UNIX sockets (`--flags not-need-init,startup-clear`); `reuse` restarts one on its state dir. */
function startSwtpm(kind: "tcp" | "unix", reuse?: { dir: string; data: SwtpmEndpoint; ctrl: SwtpmEndpoint }): Promise<Swtpm> {
  return startPeer({ kind, flags: "not-need-init,startup-clear", prefix: "tpmkit-swtpm-it-", ...(reuse ? { reuse } : {}) });
}

/** Stops the process by PID; the state dir is removed by the caller (a restart may reuse it). */
function stopSwtpm(s: Swtpm): Promise<void> {
  return s.stop({ keepDir: true });
}

function opts(locality = 0, timeoutMs = 5000) {
  return { signal: AbortSignal.timeout(timeoutMs), locality, timeoutMs, clock: systemClock };
}

const EXTEND_KAT_DIGEST = new Uint8Array(32);
EXTEND_KAT_DIGEST[31] = 1;
const EXTEND_KAT = "90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365";

beforeAll(() => requireSwtpm());
afterAll(() => killAllStartedSwtpm());

for (const kind of ["tcp", "unix"] as const) {
  describe(`swtpm transport against a real swtpm over ${kind.toUpperCase()}`, () => {
    let peer: Swtpm;
    let t: SwtpmTransport;
    beforeAll(async () => {
      peer = await startSwtpm(kind);
      t = swtpm(peer.data);
    });
    afterAll(async () => {
      await t?.close();
      if (peer) {
        await stopSwtpm(peer);
        fs.rmSync(peer.dir, { recursive: true, force: true });
      }
    });

    it("GetRandom(16) returns 16 fresh bytes on one persistent connection", async () => {
      const a = await t.send(getRandom(16), opts());
      const b = await t.send(getRandom(16), opts());
      expect(rcOf(a)).toBe(0);
      expect(a.length).toBe(12 + 16);
      expect(toHex(a.subarray(12))).not.toBe(toHex(b.subarray(12)));
      expect(t.connections).toBe(1);
    });

    it("PCR_Extend of sha256 PCR 0 with 31 zero bytes + 0x01 gives the known answer", async () => {
      expect(pcrDigest(await t.send(pcrRead(0), opts()))).toBe("00".repeat(32));
      expect(rcOf(await t.send(pcrExtend(0, EXTEND_KAT_DIGEST), opts()))).toBe(0);
      expect(pcrDigest(await t.send(pcrRead(0), opts()))).toBe(EXTEND_KAT);
    });

    it("sets the locality over the control channel: PCR 20 extend refused at 0 (TPM_RC_LOCALITY), allowed at 1", async () => {
      expect(rcOf(await t.send(pcrExtend(20, EXTEND_KAT_DIGEST), opts(0)))).toBe(0x907);
      expect(rcOf(await t.send(pcrExtend(20, EXTEND_KAT_DIGEST), opts(1)))).toBe(0);
      expect(rcOf(await t.send(getRandom(8), opts(0)))).toBe(0);
    });
  });
}

describe("SwtpmControl against a real swtpm", () => {
  let peer: Swtpm;
  let c: SwtpmControl;
  let t: SwtpmTransport;
  beforeAll(async () => {
    peer = await startSwtpm("tcp");
    c = new SwtpmControl(peer.ctrl);
    t = swtpm(peer.data, { control: c });
  });
  afterAll(async () => {
    await t?.close();
    await c?.close();
    if (peer) {
      await stopSwtpm(peer);
      fs.rmSync(peer.dir, { recursive: true, force: true });
    }
  });

  it("GET_CAPABILITY, GET_CONFIG, SET_BUFFERSIZE and GET_INFO decode swtpm 0.7's answers", async () => {
    const caps = await c.getCapability();
    for (const cap of [PTM_CAP.INIT, PTM_CAP.SHUTDOWN, PTM_CAP.SET_LOCALITY, PTM_CAP.CANCEL_TPM_CMD, PTM_CAP.GET_STATEBLOB, PTM_CAP.GET_INFO]) expect(caps.has(cap)).toBe(true);
    expect(await c.getConfig()).toEqual({ flags: 0, fileKey: false, migrationKey: false });
    expect(await c.setBufferSize()).toMatchObject({ size: 4096, max: 4096 }); // 0.7.1 + libtpms 0.9: min 2808
    const info = await c.getInfo(3);
    expect(info.json.TPMSpecification).toMatchObject({ family: "2.0" });
    expect(info.json.TPMAttributes).toMatchObject({ model: "swtpm" });
  });

  it("serializes concurrent control callers: each gets its own reply", async () => {
    const caps = (await c.getCapability()).bits;
    const buf = await c.setBufferSize();
    const calls = Array.from({ length: 40 }, (_, i) =>
      i % 4 === 0 ? c.getCapability().then((x) => x.bits === caps) :
      i % 4 === 1 ? c.getTpmEstablished().then((x) => x === false) :
      i % 4 === 2 ? c.setBufferSize().then((x) => x.size === buf.size && x.min === buf.min && x.max === buf.max) :
      c.getConfig().then((x) => x.flags === 0),
    );
    expect(await Promise.all(calls)).toEqual(Array(40).fill(true));
  });

  it("SET_LOCALITY 5 is refused with TPM_BAD_LOCALITY; an unknown command with TPM_BAD_ORDINAL", async () => {
    const e = await c.setLocality(5).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SwtpmControlError);
    expect((e as SwtpmControlError).resultName).toBe("TPM_BAD_LOCALITY");
    await expect(c.raw(0x63, new Uint8Array(0), 4)).rejects.toMatchObject({ result: 0x0a });
    // CMD_LOCK_STORAGE arrived in swtpm 0.8: 0.7 (no capability bit) answers TPM_BAD_ORDINAL
    if ((await c.getCapability()).has(PTM_CAP.LOCK_STORAGE)) await c.lockStorage(1);
    else await expect(c.lockStorage(1)).rejects.toMatchObject({ result: 0x0a, command: "CMD_LOCK_STORAGE" });
  });

  it("a DRTM hash sequence sets the established flag; RESET_TPMESTABLISHED from locality 3 clears it", async () => {
    expect(await c.getTpmEstablished()).toBe(false);
    await c.hashStart();
    await c.hashData(new TextEncoder().encode("tpmkit"));
    await c.hashEnd();
    expect(await c.getTpmEstablished()).toBe(true);
    await expect(c.resetTpmEstablished(0)).rejects.toMatchObject({ result: 0x3d });
    await c.resetTpmEstablished(3);
    expect(await c.getTpmEstablished()).toBe(false);
  });

  it("GET_STATEBLOB reads the permanent state; STORE_VOLATILE and CANCEL_TPM_CMD succeed", async () => {
    const blob = await c.getStateBlob(PTM_BLOB_TYPE.PERMANENT, { decrypted: true });
    expect(blob.blob.length).toBeGreaterThan(100);
    await c.storeVolatile();
    await c.cancelTpmCmd();
  });

  it("STOP makes TPM commands fail with TPM_RC_FAILURE; INIT brings the TPM back", async () => {
    await c.stop();
    expect(rcOf(await t.send(getRandom(8), opts()))).toBe(0x101);
    await expect(c.getTpmEstablished()).rejects.toMatchObject({ result: 0x0a });
    await c.init();
    expect(rcOf(await t.send(getRandom(8), opts()))).toBe(0);
  });
});

describe("swtpm killed and restarted under the transport", () => {
  const peers: Swtpm[] = [];
  afterEach(async () => {
    for (const p of peers) await stopSwtpm(p);
    for (const p of peers) fs.rmSync(p.dir, { recursive: true, force: true });
    peers.length = 0;
  });

  it("a command in flight when swtpm dies fails with TpmTransportError within its bound; after a restart the next command works", async () => {
    const first = await startSwtpm("tcp");
    peers.push(first);
    const t = swtpm(first.data);
    try {
      expect(rcOf(await t.send(getRandom(8), opts(0)))).toBe(0);
      first.child.kill("SIGSTOP"); // freeze it so the next command is surely in flight
      const t0 = performance.now();
      const inFlight = t.send(getRandom(8), opts(0, 3000)).catch((e: unknown) => e);
      first.child.kill("SIGKILL");
      const err = await inFlight;
      const elapsed = performance.now() - t0;
      expect(err).toBeInstanceOf(TpmTransportError);
      expect(elapsed).toBeLessThan(3000);
      // No swtpm: a typed error, fast.
      const refused = await t.send(getRandom(8), opts(0, 3000)).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(TpmTransportError);
      // Restart on the same ports and state; the transport reconnects by itself.
      const second = await startSwtpm("tcp", { dir: first.dir, data: first.data, ctrl: first.ctrl });
      peers.push(second);
      expect(rcOf(await t.send(getRandom(8), opts(0)))).toBe(0);
      expect(rcOf(await t.send(pcrExtend(20, EXTEND_KAT_DIGEST), opts(1)))).toBe(0);
      expect(t.connections).toBeGreaterThanOrEqual(2); // 3 when a reconnect attempt raced the restart
    } finally {
      await t.close();
    }
  });
});
