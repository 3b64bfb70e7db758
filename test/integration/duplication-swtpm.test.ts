/**
 * Duplication across TPMs (TPM 2.0 Part 3 §13, Part 1 §23.3): an object duplicated by swtpm 0.7.1
 * imports into SoftTpm, and one duplicated by SoftTpm imports into swtpm; both with an inner
 * wrapper (AES-128-CFB, TPM-generated key) and an outer wrapper to an ECC P-256 storage parent
 * of the other TPM (loaded there with TPM2_LoadExternal, public part only).
 *
 * Needs swtpm (CI installs it): a missing one is a failure, never a skip.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { SoftTpm, swtpm, systemClock, toHex, type SwtpmTransport } from "../../src/index.js";
import { TPM_CC } from "../../src/wire/constants.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm, type SwtpmPeer } from "./swtpm-peer.js";

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const t2b = (b: ArrayLike<number>): number[] => [...u16(b.length), ...Array.from(b)];
const cmd = (tag: number, cc: number, body: number[]): Uint8Array => Uint8Array.from([...u16(tag), ...u32(10 + body.length), ...u32(cc), ...body]);
const rcOf = (r: Uint8Array): number => ((r[6]! << 24) | (r[7]! << 16) | (r[8]! << 8) | r[9]!) >>> 0;
const u32At = (r: Uint8Array, at: number): number => ((r[at]! << 24) | (r[at + 1]! << 16) | (r[at + 2]! << 8) | r[at + 3]!) >>> 0;
const area = (...s: number[][]): number[] => [...u32(s.flat().length), ...s.flat()];
const pw = (auth: number[] = []) => [...u32(0x40000009), ...u16(0), 1, ...t2b(auth)];
const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const PASSWORD = [0x70, 0x77];
const SECRET = [...new TextEncoder().encode("crosses TPMs")];
const AES128CFB = [...u16(0x0006), ...u16(128), ...u16(0x0043)];
/** PolicyCommandCode(TPM2_Duplicate) from a zero digest (Part 3 §23.11). */
const DUP_POLICY = [...createHash("sha256").update(Uint8Array.from([...new Array(32).fill(0), ...u32(TPM_CC.PolicyCommandCode), ...u32(TPM_CC.Duplicate)])).digest()];
// restricted | decrypt | fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA; AES-128-CFB; ECC P-256
const eccStorage = [...u16(0x23), ...u16(0x0b), ...u32(0x00030472), ...t2b([]), ...AES128CFB, ...u16(0x10), ...u16(0x0003), ...u16(0x10), ...t2b([]), ...t2b([])];
// a sealed-data object with userWithAuth, noDA and encryptedDuplication, duplicable under DUP_POLICY
const sealed = [...u16(0x08), ...u16(0x0b), ...u32(0x00000c40), ...t2b(DUP_POLICY), ...u16(0x10), ...t2b([])];

type Send = (c: Uint8Array) => Promise<Uint8Array>;

function fields(r: Uint8Array, at: number, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const s = (r[at]! << 8) | r[at + 1]!;
    out.push(r.slice(at + 2, at + 2 + s));
    at += 2 + s;
  }
  return out;
}

async function ok(send: Send, c: Uint8Array, what: string): Promise<Uint8Array> {
  const r = await send(c);
  expect(rcOf(r).toString(16), what).toBe("0");
  return r;
}

/** A storage primary and a duplicable sealed object loaded under it (the primary flushed); the object's public area. */
async function setUp(send: Send): Promise<{ parent: number; parentPub: Uint8Array; obj: number; objPub: Uint8Array }> {
  const p = await ok(send, cmd(0x8002, TPM_CC.CreatePrimary, [...u32(OWNER), ...area(pw()), ...t2b([...t2b([]), ...t2b([])]), ...t2b(eccStorage), ...u16(0), ...u32(0)]), "CreatePrimary");
  const parent = u32At(p, 10);
  const parentPub = fields(p, 18, 1)[0]!;
  const c = await ok(send, cmd(0x8002, TPM_CC.Create, [...u32(parent), ...area(pw()), ...t2b([...t2b(PASSWORD), ...t2b(SECRET)]), ...t2b(sealed), ...u16(0), ...u32(0)]), "Create");
  const [priv, objPub] = fields(c, 14, 2);
  const l = await ok(send, cmd(0x8002, TPM_CC.Load, [...u32(parent), ...area(pw()), ...t2b(priv!), ...t2b(objPub!)]), "Load");
  return { parent, parentPub, obj: u32At(l, 10), objPub: objPub! };
}

/** Duplicates `obj` to the public key `newParentPub` (loaded with LoadExternal) under a PolicyCommandCode session. */
async function duplicateTo(send: Send, obj: number, newParentPub: Uint8Array): Promise<{ keyOut: Uint8Array; dup: Uint8Array; seed: Uint8Array }> {
  const le = await ok(send, cmd(0x8001, TPM_CC.LoadExternal, [...u16(0), ...t2b(newParentPub), ...u32(OWNER)]), "LoadExternal");
  const np = u32At(le, 10);
  const s = await ok(send, cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(1)), ...u16(0), 1, ...u16(0x10), ...u16(0x0b)]), "StartAuthSession");
  const sh = u32At(s, 10);
  await ok(send, cmd(0x8001, TPM_CC.PolicyCommandCode, [...u32(sh), ...u32(TPM_CC.Duplicate)]), "PolicyCommandCode");
  const session = [...u32(sh), ...t2b(new Array(16).fill(2)), 0, ...u16(0)];
  const d = await ok(send, cmd(0x8002, TPM_CC.Duplicate, [...u32(obj), ...u32(np), ...area(session), ...t2b([]), ...AES128CFB]), "Duplicate");
  const [keyOut, dup, seed] = fields(d, 14, 3);
  await ok(send, cmd(0x8001, TPM_CC.FlushContext, u32(np)), "FlushContext");
  return { keyOut: keyOut!, dup: dup!, seed: seed! };
}

/** Imports under `parent`, loads, unseals: the sealed data. */
async function importAndUnseal(send: Send, parent: number, objPub: Uint8Array, d: { keyOut: Uint8Array; dup: Uint8Array; seed: Uint8Array }): Promise<string> {
  const i = await ok(send, cmd(0x8002, TPM_CC.Import, [...u32(parent), ...area(pw()), ...t2b(d.keyOut), ...t2b(objPub), ...t2b(d.dup), ...t2b(d.seed), ...AES128CFB]), "Import");
  const priv = fields(i, 14, 1)[0]!;
  const l = await ok(send, cmd(0x8002, TPM_CC.Load, [...u32(parent), ...area(pw()), ...t2b(priv), ...t2b(objPub)]), "Load imported");
  const h = u32At(l, 10);
  const u = await ok(send, cmd(0x8002, TPM_CC.Unseal, [...u32(h), ...area(pw(PASSWORD))]), "Unseal");
  await ok(send, cmd(0x8001, TPM_CC.FlushContext, u32(h)), "FlushContext");
  return toHex(fields(u, 14, 1)[0]!);
}

let peer: SwtpmPeer;
let transport: SwtpmTransport;

beforeAll(async () => {
  requireSwtpm();
  peer = await startSwtpm({ prefix: "tpmkit-duplication-swtpm-" });
  transport = swtpm(peer.data);
}, 30_000);

afterAll(async () => {
  await transport?.close().catch(() => undefined);
  await peer?.stop();
  killAllStartedSwtpm();
});

const soft = new SoftTpm({ seed: "duplication-swtpm" });
const toSwtpm: Send = (bytes) => transport.send(bytes, { signal: AbortSignal.timeout(10_000), locality: 0, timeoutMs: 10_000, clock: systemClock });
const toSoft: Send = (bytes) => Promise.resolve(soft.executeSync(bytes, 0));

describe("duplication between SoftTpm and swtpm 0.7.1", () => {
  it("swtpm duplicates to SoftTpm's storage key, SoftTpm imports; SoftTpm duplicates to swtpm's, swtpm imports", async () => {
    expect(rcOf(soft.executeSync(cmd(0x8001, TPM_CC.Startup, u16(0)), 0))).toBe(0);
    const s = await setUp(toSoft);
    const w = await setUp(toSwtpm);
    const fromSwtpm = await duplicateTo(toSwtpm, w.obj, s.parentPub);
    const fromSoft = await duplicateTo(toSoft, s.obj, w.parentPub);
    // the same shapes: a 16-byte inner key, an ECC point as the seed
    expect([fromSwtpm.keyOut.length, fromSwtpm.seed.length]).toEqual([16, 68]);
    expect([fromSoft.keyOut.length, fromSoft.seed.length]).toEqual([16, 68]);
    await ok(toSoft, cmd(0x8001, TPM_CC.FlushContext, u32(s.obj)), "FlushContext");
    await ok(toSwtpm, cmd(0x8001, TPM_CC.FlushContext, u32(w.obj)), "FlushContext");
    expect(await importAndUnseal(toSoft, s.parent, w.objPub, fromSwtpm)).toBe(toHex(Uint8Array.from(SECRET)));
    expect(await importAndUnseal(toSwtpm, w.parent, s.objPub, fromSoft)).toBe(toHex(Uint8Array.from(SECRET)));
    // and both refuse a duplicate with a changed byte alike (the outer HMAC: TPM_RC_INTEGRITY + P3)
    const tamper = (d: { keyOut: Uint8Array; dup: Uint8Array; seed: Uint8Array }) => {
      const dup = d.dup.slice();
      dup[dup.length - 1]! ^= 1;
      return { ...d, dup };
    };
    const importCmd = (parent: number, pub: Uint8Array, d: { keyOut: Uint8Array; dup: Uint8Array; seed: Uint8Array }) =>
      cmd(0x8002, TPM_CC.Import, [...u32(parent), ...area(pw()), ...t2b(d.keyOut), ...t2b(pub), ...t2b(d.dup), ...t2b(d.seed), ...AES128CFB]);
    const a = rcOf(await toSwtpm(importCmd(w.parent, s.objPub, tamper(fromSoft))));
    const b = rcOf(await toSoft(importCmd(s.parent, w.objPub, tamper(fromSwtpm))));
    expect([a.toString(16), b.toString(16)]).toEqual(["3df", "3df"]);
  }, 60_000);
  it("refuses as swtpm does: the DUP role, fixedParent, encryptedDuplication, key sizes, Import's attribute and parent checks, Rewrap's handles", async () => {
    // a fresh state on both: the same handles
    const soft2 = new SoftTpm({ seed: "duplication-swtpm-2" });
    const toSoft2: Send = (bytes) => Promise.resolve(soft2.executeSync(bytes, 0));
    expect(rcOf(soft2.executeSync(cmd(0x8001, TPM_CC.Startup, u16(0)), 0))).toBe(0);
    for (let h = 0x80000000; h < 0x80000003; h++) await toSwtpm(cmd(0x8001, TPM_CC.FlushContext, u32(h)));
    const zeroPolicy = [...u16(0x08), ...u16(0x0b), ...u32(0x00000440), ...t2b(new Array(32).fill(0)), ...u16(0x10), ...t2b([])];
    const fixedParent = [...u16(0x08), ...u16(0x0b), ...u32(0x00000450), ...t2b(DUP_POLICY), ...u16(0x10), ...t2b([])];
    const probe = async (send: Send): Promise<string[]> => {
      const codes: string[] = [];
      const open: number[] = [];
      const rc = async (what: string, c: Uint8Array) => {
        codes.push(`${what}: ${rcOf(await send(c)).toString(16)}`);
        // a refused command leaves its policy session loaded
        for (const h of open.splice(0)) await send(cmd(0x8001, TPM_CC.FlushContext, u32(h)));
      };
      const p = await ok(send, cmd(0x8002, TPM_CC.CreatePrimary, [...u32(OWNER), ...area(pw()), ...t2b([...t2b([]), ...t2b([])]), ...t2b(eccStorage), ...u16(0), ...u32(0)]), "CreatePrimary");
      const P = u32At(p, 10);
      const make = async (template: number[]) => {
        const c = await ok(send, cmd(0x8002, TPM_CC.Create, [...u32(P), ...area(pw()), ...t2b([...t2b(PASSWORD), ...t2b(SECRET)]), ...t2b(template), ...u16(0), ...u32(0)]), "Create");
        const [priv, pub] = fields(c, 14, 2);
        return u32At(await ok(send, cmd(0x8002, TPM_CC.Load, [...u32(P), ...area(pw()), ...t2b(priv!), ...t2b(pub!)]), "Load"), 10);
      };
      const policy = async (cc: boolean) => {
        const s = await ok(send, cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(1)), ...u16(0), 1, ...u16(0x10), ...u16(0x0b)]), "StartAuthSession");
        const sh = u32At(s, 10);
        open.push(sh);
        if (cc) await ok(send, cmd(0x8001, TPM_CC.PolicyCommandCode, [...u32(sh), ...u32(TPM_CC.Duplicate)]), "PolicyCommandCode");
        return [...u32(sh), ...t2b(new Array(16).fill(2)), 0, ...u16(0)];
      };
      const dup = (o: number, np: number, session: number[], key: number[], sym: number[]) => cmd(0x8002, TPM_CC.Duplicate, [...u32(o), ...u32(np), ...area(session), ...t2b(key), ...sym]);
      const imp = (parent: number, auth: number[], key: number[], pub: number[], d: number[], seed: number[], sym: number[]) =>
        cmd(0x8002, TPM_CC.Import, [...u32(parent), ...area(pw(auth)), ...t2b(key), ...t2b(pub), ...t2b(d), ...t2b(seed), ...sym]);
      const O = await make(sealed);
      const Z = await make(zeroPolicy);
      await rc("Duplicate with a password session", dup(O, P, pw(PASSWORD), [], u16(0x10)));
      await rc("Duplicate, policy without PolicyCommandCode", dup(Z, P, await policy(false), [], u16(0x10)));
      await rc("Duplicate to a sealed object", dup(O, O, await policy(true), [], AES128CFB));
      await rc("Duplicate, a key with symmetricAlg NULL", dup(O, P, await policy(true), new Array(16).fill(1), u16(0x10)));
      await rc("Duplicate, a 15-byte AES-128 key", dup(O, P, await policy(true), new Array(15).fill(1), AES128CFB));
      await rc("Duplicate encryptedDuplication, symmetricAlg NULL", dup(O, P, await policy(true), [], u16(0x10)));
      await rc("Duplicate encryptedDuplication to TPM_RH_NULL", dup(O, RH_NULL, await policy(true), [], AES128CFB));
      await rc("Import of a fixedParent public area", imp(P, [], [], fixedParent, [1, 2, 3], [], u16(0x10)));
      await rc("Import under a sealed object", imp(O, PASSWORD, [], zeroPolicy, [1, 2, 3], [], u16(0x10)));
      await rc("Import, a key with symmetricAlg NULL", imp(P, [], new Array(16).fill(1), zeroPolicy, [1, 2, 3], [], u16(0x10)));
      await rc("Import encryptedDuplication without an inner wrapper", imp(P, [], [], sealed, [1, 2, 3], [], u16(0x10)));
      await rc("Import encryptedDuplication without an outer wrapper", imp(P, [], new Array(16).fill(1), sealed, [1, 2, 3], [], AES128CFB));
      await rc("Import, neither wrapper, a cut sensitive area", imp(P, [], [], zeroPolicy, [0, 9, 0, 8], [], u16(0x10)));
      await rc("Rewrap, a seed without an old parent", cmd(0x8002, TPM_CC.Rewrap, [...u32(RH_NULL), ...u32(P), ...area(pw()), ...t2b([1, 2]), ...t2b([0, 0x0b, ...new Array(32).fill(1)]), ...t2b([1, 2, 3])]));
      await rc("Rewrap, an old parent without a seed", cmd(0x8002, TPM_CC.Rewrap, [...u32(P), ...u32(P), ...area(pw()), ...t2b([1, 2]), ...t2b([0, 0x0b, ...new Array(32).fill(1)]), ...t2b([])]));
      await rc("Create of a fixedParent object under a fixedTPM parent", cmd(0x8002, TPM_CC.Create, [...u32(P), ...area(pw()), ...t2b([...t2b([]), ...t2b(SECRET)]), ...t2b(fixedParent), ...u16(0), ...u32(0)]));
      // a fixedParent object needs a parent without fixedTPM: a primary with neither attribute
      await ok(send, cmd(0x8001, TPM_CC.FlushContext, u32(Z)), "FlushContext");
      await ok(send, cmd(0x8001, TPM_CC.FlushContext, u32(O)), "FlushContext");
      const loose = [...eccStorage];
      loose[7] = 0x60; // TPMA_OBJECT 0x00030460: fixedTPM and fixedParent clear
      const p2 = await ok(send, cmd(0x8002, TPM_CC.CreatePrimary, [...u32(OWNER), ...area(pw()), ...t2b([...t2b([]), ...t2b([])]), ...t2b(loose), ...u16(0), ...u32(0)]), "CreatePrimary");
      const c = await ok(send, cmd(0x8002, TPM_CC.Create, [...u32(u32At(p2, 10)), ...area(pw()), ...t2b([...t2b(PASSWORD), ...t2b(SECRET)]), ...t2b(fixedParent), ...u16(0), ...u32(0)]), "Create fixedParent");
      const [priv, pub] = fields(c, 14, 2);
      const F = u32At(await ok(send, cmd(0x8002, TPM_CC.Load, [...u32(u32At(p2, 10)), ...area(pw()), ...t2b(priv!), ...t2b(pub!)]), "Load"), 10);
      await rc("Duplicate of a fixedParent object", dup(F, P, await policy(true), [], AES128CFB));
      return codes;
    };
    const a = await probe(toSwtpm);
    const b = await probe(toSoft2);
    expect(b).toEqual(a);
  }, 60_000);
});
