import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { TPM_ALG, TPMA_OBJECT } from "../wire/constants.js";
import { marshalPublic } from "../wire/structures.js";
import { authCmd, cmd, rcOf, startedTpm, t2b, u16, u32, u32At } from "../softtpm/test-helpers.js";
import type { SoftTpm } from "../softtpm/softtpm.js";
import { ResourceManager, TPM_RC_RESMGR_LAYER, type ResourceManagerOptions } from "./rm.js";
import type { CommandSink } from "./common.js";
import { serveSwtpm } from "./swtpm.js";
import { serveMssim } from "./mssim.js";

const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const CC = { CreatePrimary: 0x131, Create: 0x153, Load: 0x157, ReadPublic: 0x173, ContextSave: 0x162, ContextLoad: 0x161, FlushContext: 0x165, GetCapability: 0x17a, StartAuthSession: 0x176, HashSequenceStart: 0x186 };
const A = TPMA_OBJECT;
const RM_HANDLE = TPM_RC_RESMGR_LAYER | 0x08b;

/** A restricted-decrypt AES-128 storage key: a storage parent that needs no RSA key generation. */
function symStorage(unique: number): Uint8Array {
  return marshalPublic({
    type: TPM_ALG.SYMCIPHER,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.RESTRICTED | A.DECRYPT,
    authPolicy: new Uint8Array(0),
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    unique: Uint8Array.of(unique),
  });
}
function sealedData(): Uint8Array {
  return marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.USERWITHAUTH, authPolicy: new Uint8Array(0), scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 }, unique: new Uint8Array(0) });
}
const createPrimary = (unique: number) => authCmd(CC.CreatePrimary, [OWNER], [[]], [...t2b([0, 0, 0, 0]), ...t2b(symStorage(unique)), ...t2b([]), ...u32(0)]);
const readPublic = (h: number) => cmd(0x8001, CC.ReadPublic, u32(h));
const flush = (h: number) => cmd(0x8001, CC.FlushContext, u32(h));
const getHandles = (first: number, count = 64) => cmd(0x8001, CC.GetCapability, [...u32(1), ...u32(first), ...u32(count)]);
const startSession = (type = 0) => cmd(0x8001, CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Uint8Array(16).fill(7)), ...t2b([]), type, ...u16(0x0010), ...u16(0x000b)]);
/** The handles in a GetCapability(TPM_CAP_HANDLES) response. */
function handlesOf(r: Uint8Array): number[] {
  expect(rcOf(r)).toBe(0);
  const n = u32At(r, 15);
  return Array.from({ length: n }, (_, i) => u32At(r, 19 + 4 * i));
}
/** TPM2B at `at`: its bytes. */
const b2At = (r: Uint8Array, at: number) => r.slice(at + 2, at + 2 + ((r[at]! << 8) | r[at + 1]!));

function setup(options?: ResourceManagerOptions): { tpm: SoftTpm; chip: CommandSink; rm: ResourceManager } {
  const tpm = startedTpm();
  const chip: CommandSink = { transmit: (c, o) => tpm.execute(c, o?.locality ?? 0, o?.signal) };
  return { tpm, chip, rm: new ResourceManager(chip, options) };
}

describe("ResourceManager (kernel tools/testing/selftests/tpm2 SpaceTest, ported)", () => {
  it("test_make_two_spaces: each space gets its own virtual handles; the TPM holds no transient object between commands", async () => {
    const { chip, rm } = setup();
    const s1 = rm.openSpace();
    const s2 = rm.openSpace();
    const r1 = await s1.transmit(createPrimary(1));
    const r2 = await s2.transmit(createPrimary(2));
    const r3 = await s2.transmit(createPrimary(3));
    for (const r of [r1, r2, r3]) expect(rcOf(r)).toBe(0);
    const h1 = u32At(r1, 10);
    const h2 = u32At(r2, 10);
    const h3 = u32At(r3, 10);
    expect(h1 >>> 16).toBe(0x80ff);
    expect(h3).not.toBe(h2);
    // objects are context-saved and flushed after each command (tpm2_commit_space)
    expect(handlesOf(await chip.transmit(getHandles(0x80000000)))).toEqual([]);
    // each vhandle reaches its own space's object: the unique field tells the three keys apart
    const pub = async (s: typeof s1, h: number) => {
      const r = await s.transmit(readPublic(h));
      expect(rcOf(r)).toBe(0);
      return Array.from(b2At(r, 10));
    };
    // CreatePrimary's outPublic follows the handle and parameterSize
    const created = (r: Uint8Array) => Array.from(b2At(r, 18));
    expect(await pub(s1, h1)).toEqual(created(r1));
    expect(await pub(s2, h2)).toEqual(created(r2));
    expect(await pub(s2, h3)).toEqual(created(r3));
    expect(created(r2)).not.toEqual(created(r3));
  });

  it("test_get_handles: GetCapability(HANDLES) lists the space's own transient handles only", async () => {
    const { rm } = setup();
    const s1 = rm.openSpace();
    const s2 = rm.openSpace();
    await s1.transmit(createPrimary(1));
    const a = u32At(await s2.transmit(createPrimary(2)), 10);
    const b = u32At(await s2.transmit(createPrimary(3)), 10);
    expect(handlesOf(await s2.transmit(getHandles(0x80000000)))).toEqual([a, b].sort((x, y) => x - y));
    expect(handlesOf(await s1.transmit(getHandles(0x80000000)))).toHaveLength(1);
    // count and moreData
    const one = await s2.transmit(getHandles(0x80000000, 1));
    expect(one[10]).toBe(1);
    expect(handlesOf(one)).toHaveLength(1);
  });

  it("test_flush_context: FlushContext of a vhandle; the handle is then unknown (RM layer TPM_RC_HANDLE)", async () => {
    const { rm } = setup();
    const s1 = rm.openSpace();
    const h = u32At(await s1.transmit(createPrimary(1)), 10);
    expect(rcOf(await s1.transmit(flush(h)))).toBe(0);
    expect(s1.objects).toBe(0);
    expect(rcOf(await s1.transmit(readPublic(h)))).toBe(RM_HANDLE);
    expect(rcOf(await s1.transmit(flush(h)))).toBe(RM_HANDLE);
  });

  it("test_invalid_cc: a command code the TPM does not list is answered 0x000B0143 without the TPM", async () => {
    const { rm } = setup();
    const s1 = rm.openSpace();
    const r = await s1.transmit(cmd(0x8001, 0x11f - 1));
    expect(r).toHaveLength(10);
    expect(rcOf(r)).toBe(0x000b0143);
  });

  it("a space cannot reach another space's objects: a vhandle it does not own is refused", async () => {
    const { rm } = setup();
    const s1 = rm.openSpace();
    const s2 = rm.openSpace();
    const h = u32At(await s1.transmit(createPrimary(1)), 10);
    await s1.transmit(createPrimary(2)); // s1 now has two, s2 none
    expect(rcOf(await s2.transmit(readPublic(h)))).toBe(RM_HANDLE);
    expect(rcOf(await s2.transmit(readPublic((h + 1) >>> 0)))).toBe(RM_HANDLE);
    expect(rcOf(await s2.transmit(flush(h)))).toBe(RM_HANDLE);
    expect(s1.objects).toBe(2);
  });

  it("Create and Load under a vhandle parent, each command a separate load/save", async () => {
    const { chip, rm } = setup();
    const s = rm.openSpace();
    const parent = u32At(await s.transmit(createPrimary(1)), 10);
    const secret = [1, 2, 3, 4];
    const cr = await s.transmit(authCmd(CC.Create, [parent], [[]], [...t2b([0, 0, ...t2b(secret)]), ...t2b(sealedData()), ...t2b([]), ...u32(0)]));
    expect(rcOf(cr)).toBe(0);
    const priv = b2At(cr, 14);
    const pub = b2At(cr, 14 + 2 + priv.length);
    const lr = await s.transmit(authCmd(CC.Load, [parent], [[]], [...t2b(priv), ...t2b(pub)]));
    expect(rcOf(lr)).toBe(0);
    const child = u32At(lr, 10);
    expect(child >>> 16).toBe(0x80ff);
    expect(s.objects).toBe(2);
    const unseal = await s.transmit(authCmd(0x15e, [child], [[]]));
    expect(rcOf(unseal)).toBe(0);
    expect(Array.from(b2At(unseal, 14))).toEqual(secret);
    expect(handlesOf(await chip.transmit(getHandles(0x80000000)))).toEqual([]);
  });

  it("a client's ContextSave of a vhandle gives a blob another space can ContextLoad under its own vhandle", async () => {
    const { rm } = setup();
    const s1 = rm.openSpace();
    const s2 = rm.openSpace();
    const cr = await s1.transmit(createPrimary(1));
    const h = u32At(cr, 10);
    const saved = await s1.transmit(cmd(0x8001, CC.ContextSave, u32(h)));
    expect(rcOf(saved)).toBe(0);
    const loaded = await s2.transmit(cmd(0x8001, CC.ContextLoad, saved.slice(10)));
    expect(rcOf(loaded)).toBe(0);
    const h2 = u32At(loaded, 10);
    expect(h2 >>> 16).toBe(0x80ff);
    expect(Array.from(b2At(await s2.transmit(readPublic(h2)), 10))).toEqual(Array.from(b2At(cr, 18)));
  });

  it("sessions: kept saved between commands, own to their space, flushed on FlushContext and on close", async () => {
    const { chip, rm } = setup();
    const s1 = rm.openSpace();
    const s2 = rm.openSpace();
    const sr = await s1.transmit(startSession());
    expect(rcOf(sr)).toBe(0);
    const sh = u32At(sr, 10);
    expect(sh >>> 24).toBe(0x02); // the session keeps its TPM handle
    expect(s1.sessions).toBe(1);
    // saved (not loaded) in the TPM between commands
    expect(handlesOf(await chip.transmit(getHandles(0x02000000)))).toEqual([]);
    expect(handlesOf(await chip.transmit(getHandles(0x03000000)))).toHaveLength(1);
    // listed to its space as loaded, to no other
    expect(handlesOf(await s1.transmit(getHandles(0x02000000)))).toEqual([sh]);
    expect(handlesOf(await s2.transmit(getHandles(0x02000000)))).toEqual([]);
    // another space naming it in an authorization area is refused before the TPM
    const parent = u32At(await s2.transmit(createPrimary(1)), 10);
    const withSession = (h: number) => cmd(0x8002, CC.Create, [...u32(parent), ...u32(9 + 0), ...u32(h), ...u16(0), 1, ...u16(0), ...t2b([0, 0, 0, 0]), ...t2b(sealedData()), ...t2b([]), ...u32(0)]);
    expect(rcOf(await s2.transmit(withSession(sh)))).toBe(RM_HANDLE);
    // its own space gets it loaded into the TPM (the TPM then judges the HMAC: not an RM code)
    const p1 = u32At(await s1.transmit(createPrimary(1)), 10);
    const own = await s1.transmit(cmd(0x8002, CC.Create, [...u32(p1), ...u32(9), ...u32(sh), ...u16(0), 1, ...u16(0), ...t2b([0, 0, 0, 0]), ...t2b(sealedData()), ...t2b([]), ...u32(0)]));
    expect(rcOf(own) & 0xff0000).toBe(0);
    expect(s1.sessions).toBe(1);
    // FlushContext of another space's session is refused; of its own, flushed in the TPM
    expect(rcOf(await s2.transmit(flush(sh)))).toBe(RM_HANDLE);
    expect(rcOf(await s1.transmit(flush(sh)))).toBe(0);
    expect(s1.sessions).toBe(0);
    expect(handlesOf(await chip.transmit(getHandles(0x03000000)))).toEqual([]);
    // close flushes what is left
    await s1.transmit(startSession(1));
    expect(handlesOf(await chip.transmit(getHandles(0x03000000)))).toHaveLength(1);
    await s1.close();
    expect(s1.closed).toBe(true);
    expect(handlesOf(await chip.transmit(getHandles(0x03000000)))).toEqual([]);
    expect(handlesOf(await chip.transmit(getHandles(0x02000000)))).toEqual([]);
    await expect(s1.transmit(readPublic(p1))).rejects.toThrow(/closed/);
  });

  it("per-space limits: more objects or sessions than allowed are refused in the RM layer, other spaces unaffected", async () => {
    const { rm } = setup({ maxObjects: 2, maxSessions: 1 });
    const s1 = rm.openSpace();
    const s2 = rm.openSpace();
    expect(rcOf(await s1.transmit(createPrimary(1)))).toBe(0);
    expect(rcOf(await s1.transmit(createPrimary(2)))).toBe(0);
    expect(rcOf(await s1.transmit(createPrimary(3)))).toBe(TPM_RC_RESMGR_LAYER | 0x902);
    expect(s1.objects).toBe(2);
    expect(rcOf(await s1.transmit(startSession()))).toBe(0);
    expect(rcOf(await s1.transmit(startSession()))).toBe(TPM_RC_RESMGR_LAYER | 0x903);
    expect(rcOf(await s2.transmit(createPrimary(4)))).toBe(0);
    expect(rcOf(await s2.transmit(startSession()))).toBe(0);
    // ContextLoad is counted after the TPM answers: the surplus object is flushed again
    const saved = await s2.transmit(cmd(0x8001, CC.ContextSave, u32(u32At(await s2.transmit(getHandles(0x80000000)), 19))));
    expect(rcOf(await s2.transmit(cmd(0x8001, CC.ContextLoad, saved.slice(10))))).toBe(0);
    expect(rcOf(await s2.transmit(cmd(0x8001, CC.ContextLoad, saved.slice(10))))).toBe(TPM_RC_RESMGR_LAYER | 0x902);
    expect(s2.objects).toBe(2);
  });

  it("a sequence object is swapped out between commands like any other object (its context can be saved); close forgets it", async () => {
    const { chip, rm } = setup();
    const s = rm.openSpace();
    const r = await s.transmit(cmd(0x8001, CC.HashSequenceStart, [...t2b([]), ...u16(0x000b)]));
    expect(rcOf(r)).toBe(0);
    const v = u32At(r, 10);
    expect(v >>> 16).toBe(0x80ff);
    expect(handlesOf(await chip.transmit(getHandles(0x80000000)))).toEqual([]); // saved and flushed after the command
    expect(rcOf(await s.transmit(authCmd(0x15c, [v], [[]], t2b([1, 2, 3]))))).toBe(0); // TPM2_SequenceUpdate: loaded again for it
    expect(handlesOf(await chip.transmit(getHandles(0x80000000)))).toEqual([]);
    await s.close();
    expect(handlesOf(await chip.transmit(getHandles(0x80000000)))).toEqual([]);
    expect(rm.spaces).toBe(0);
  });

  it("handles of other types pass unchanged; reset() forgets contexts after a power cycle", async () => {
    const { rm } = setup();
    const s = rm.openSpace();
    expect(rcOf(await s.transmit(readPublic(0x81000000)))).not.toBe(RM_HANDLE);
    await s.transmit(createPrimary(1));
    await s.transmit(startSession());
    rm.reset();
    expect(s.objects).toBe(0);
    expect(s.sessions).toBe(0);
    expect(() => new ResourceManager({ transmit: async (c) => c }, { maxObjects: 0 })).toThrow(/maxObjects/);
  });
});

/** A TCP client that collects what the server sends; `take(n)` waits (bounded) for n bytes. */
async function client(port: number): Promise<{ send(b: Uint8Array): void; take(n: number): Promise<Uint8Array>; close(): Promise<void> }> {
  const sock = net.connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  let buf = new Uint8Array(0);
  let wake: (() => void) | undefined;
  sock.on("data", (d: Buffer) => {
    const n = new Uint8Array(buf.length + d.length);
    n.set(buf);
    n.set(d, buf.length);
    buf = n;
    wake?.();
  });
  return {
    send: (b) => void sock.write(b),
    async take(n) {
      for (let i = 0; buf.length < n; i++) {
        if (i > 500 || sock.destroyed) throw new Error(`wanted ${n} bytes, got ${buf.length}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 10);
        });
      }
      const out = buf.slice(0, n);
      buf = buf.slice(n);
      return out;
    },
    close: () => new Promise<void>((r) => sock.end(() => r())),
  };
}
async function swtpmCommand(port: number, c: Uint8Array): Promise<Uint8Array> {
  const k = await client(port);
  k.send(c);
  const head = await k.take(10);
  const rest = await k.take(u32At(head, 2) - 10);
  await k.close();
  return Uint8Array.from([...head, ...rest]);
}

describe("ResourceManager in the servers", () => {
  it("swtpm protocol: a space spans a tcti-swtpm client's connection-per-command run, until the next client's empty probe connection", async () => {
    const { chip, rm } = setup();
    const server = await serveSwtpm({ chip, host: "127.0.0.1", port: 0 }, { control: false, resourceManager: rm });
    try {
      const port = (server.address as { port: number }).port;
      const probe = async () => {
        const k = await client(port);
        await k.close();
        await new Promise((r) => setTimeout(r, 20));
      };
      await probe();
      const r = await swtpmCommand(port, createPrimary(1));
      expect(rcOf(r)).toBe(0);
      const v = u32At(r, 10);
      // the same client's next command (a new connection) still reaches its object
      expect(rcOf(await swtpmCommand(port, readPublic(v)))).toBe(0);
      expect(rm.spaces).toBe(1);
      // the next client's probe ends the space: its object is flushed and unknown to the new client
      await probe();
      expect(rcOf(await swtpmCommand(port, readPublic(v)))).toBe(RM_HANDLE);
      expect(handlesOf(await chip.transmit(getHandles(0x80000000)))).toEqual([]);
      expect(rm.spaces).toBe(1);
    } finally {
      await server.close();
    }
    expect(rm.spaces).toBe(0);
  });

  it("mssim protocol: one space per connection, isolated from the others, flushed when the connection ends", async () => {
    const { chip, rm } = setup();
    const server = await serveMssim({ chip, host: "127.0.0.1", port: 0 }, { poweredOn: true, resourceManager: rm });
    const send = async (k: Awaited<ReturnType<typeof client>>, c: Uint8Array) => {
      k.send(Uint8Array.from([...u32(8), 0, ...u32(c.length), ...c]));
      const len = u32At(await k.take(4), 0);
      const resp = await k.take(len);
      await k.take(4);
      return resp;
    };
    try {
      const a = await client(server.port);
      const b = await client(server.port);
      const ra = await send(a, createPrimary(1));
      const rb = await send(b, createPrimary(2));
      expect(rcOf(ra)).toBe(0);
      expect(rcOf(rb)).toBe(0);
      expect(rm.spaces).toBe(2);
      const va = u32At(ra, 10);
      await send(a, startSession());
      // each connection sees one object, its own
      expect(handlesOf(await send(a, getHandles(0x80000000)))).toEqual([va]);
      expect(Array.from(b2At(await send(b, readPublic(u32At(rb, 10))), 10))).toEqual(Array.from(b2At(rb, 18)));
      expect(handlesOf(await send(b, getHandles(0x02000000)))).toEqual([]);
      await a.close();
      for (let i = 0; i < 100 && rm.spaces > 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(rm.spaces).toBe(1);
      expect(handlesOf(await chip.transmit(getHandles(0x03000000)))).toEqual([]);
      await b.close();
    } finally {
      await server.close();
    }
  });
});
