import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { MemoryStorage } from "../core/storage.js";
import { TpmReader } from "../wire/buffer.js";
import { TPM_ALG, TPMA_OBJECT } from "../wire/constants.js";
import { type TpmtPublic, marshalPublic, readPublic } from "../wire/structures.js";
import { SoftTpm } from "./softtpm.js";
import { STATE_VERSION, decodeState, encodeState } from "./state.js";
import { savableHmac, sequenceContext, sequenceFromContext } from "./engine/contexts.js";
import { HASH_IMPLS } from "./tables.js";
import { STARTUP_CLEAR, authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At, unhex } from "./test-helpers.js";

const OWNER = 0x40000001;
const PLATFORM = 0x4000000c;
const RH_NULL = 0x40000007;
const CC = { CreatePrimary: 0x131, Create: 0x153, Load: 0x157, ReadPublic: 0x173, Unseal: 0x15e, EvictControl: 0x120, ContextSave: 0x162, ContextLoad: 0x161, FlushContext: 0x165, ObjectChangeAuth: 0x150, LoadExternal: 0x167, CreateLoaded: 0x191, GetCapability: 0x17a, HashSequenceStart: 0x186, StartAuthSession: 0x176 };
const A = TPMA_OBJECT;
const cat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

/** RSA storage key template (tpm2-tools' default primary, at `bits`). */
function rsaStorage(bits: number, unique = new Uint8Array(0)): Uint8Array {
  const p: TpmtPublic = {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.RESTRICTED | A.DECRYPT,
    authPolicy: new Uint8Array(0),
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 },
    keyBits: bits,
    exponent: 0,
    unique,
  };
  return marshalPublic(p);
}

/** Sealed-data template (KEYEDHASH, NULL scheme). */
function sealed(extra = 0): Uint8Array {
  return marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.USERWITHAUTH | extra, authPolicy: new Uint8Array(0), scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 }, unique: new Uint8Array(0) });
}

const sensCreate = (auth: number[] = [], data: number[] = []) => t2b([...t2b(auth), ...t2b(data)]);
const createParams = (template: Uint8Array, auth: number[] = [], data: number[] = []) => [...sensCreate(auth, data), ...t2b(template), ...u16(0), ...u32(0)];

/** The TPM2B fields of a response's parameter area, in order (after handle and parameterSize). */
function fields(r: Uint8Array, withHandle: boolean, n: number): Uint8Array[] {
  const sessions = r[1] === 0x02; // TPM_ST_SESSIONS: a parameterSize field comes first
  const rd = new TpmReader(r, 10 + (withHandle ? 4 : 0) + (sessions ? 4 : 0));
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(rd.tpm2b().slice());
  return out;
}

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}

/** CreatePrimary: handle, outPublic, name. */
function primary(t: SoftTpm, hierarchy: number, template: Uint8Array, auth: number[] = []): { handle: number; pub: Uint8Array; name: Uint8Array } {
  const r = ok(t.executeSync(authCmd(CC.CreatePrimary, [hierarchy], [[]], createParams(template, auth)), 0));
  const handle = u32At(r, 10);
  const rd = new TpmReader(r, 18);
  const pub = rd.tpm2b().slice();
  rd.tpm2b(); // creationData
  rd.tpm2b(); // creationHash
  rd.u16();
  rd.u32();
  rd.tpm2b(); // ticket
  const name = rd.tpm2b().slice();
  return { handle, pub, name };
}

/** Create under `parent`: private, public. */
function create(t: SoftTpm, parent: number, template: Uint8Array, auth: number[] = [], data: number[] = []): { priv: Uint8Array; pub: Uint8Array } {
  const r = ok(t.executeSync(authCmd(CC.Create, [parent], [[]], createParams(template, auth, data)), 0));
  const [priv, pub] = fields(r, false, 2);
  return { priv: priv!, pub: pub! };
}

const loadCmd = (parent: number, priv: Uint8Array, pub: Uint8Array) => authCmd(CC.Load, [parent], [[]], [...t2b(priv), ...t2b(pub)]);
const unsealCmd = (h: number, auth: number[]) => authCmd(CC.Unseal, [h], [auth]);
const flush = (h: number) => cmd(0x8001, CC.FlushContext, u32(h));
const getHandles = (from: number) => cmd(0x8001, CC.GetCapability, [...u32(1), ...u32(from), ...u32(20)]);
function handlesOf(r: Uint8Array): number[] {
  const n = u32At(r, 15);
  return Array.from({ length: n }, (_, i) => u32At(r, 19 + 4 * i));
}

async function restart(t: SoftTpm): Promise<void> {
  await t.powerOff();
  await t.start();
  ok(t.executeSync(STARTUP_CLEAR, 0));
}

describe("TPM2_CreatePrimary (Part 3 §24.1): keys derived from the hierarchy seed", () => {
  it("RSA-2048 storage key: Name = nameAlg ‖ SHA-256(public), ReadPublic agrees; timed", () => {
    const t = startedTpm();
    const t0 = performance.now();
    const p = primary(t, OWNER, rsaStorage(2048));
    const ms = performance.now() - t0;
    console.log(`CreatePrimary RSA-2048: ${ms.toFixed(0)} ms`);
    expect(p.handle).toBe(0x80000000);
    const pub = readPublic(new TpmReader(p.pub));
    expect(pub.type === TPM_ALG.RSA && pub.unique.length).toBe(256);
    expect(hex(p.name)).toBe("000b" + hex(sha256(p.pub)));
    const [rp, rn, qn] = fields(ok(t.executeSync(cmd(0x8001, CC.ReadPublic, u32(p.handle)), 0)), false, 3);
    expect(hex(rp!)).toBe(hex(p.pub));
    expect(hex(rn!)).toBe(hex(p.name));
    // qualified name of a primary: H(hierarchy handle ‖ Name)
    expect(hex(qn!)).toBe("000b" + hex(sha256(cat(u32(OWNER), p.name))));
  });

  it("the same template gives the same key after a restart; unique changes it; TPM_RH_NULL and Clear change it", async () => {
    const t = new SoftTpm({ storage: new MemoryStorage(), seed: "objects" });
    await t.start();
    ok(t.executeSync(STARTUP_CLEAR, 0));
    const a = primary(t, OWNER, rsaStorage(1024));
    const n1 = primary(t, RH_NULL, rsaStorage(1024));
    expect(hex(n1.pub)).not.toBe(hex(a.pub));
    await restart(t);
    const b = primary(t, OWNER, rsaStorage(1024));
    expect(hex(b.pub)).toBe(hex(a.pub));
    expect(hex(b.name)).toBe(hex(a.name));
    const c = primary(t, OWNER, rsaStorage(1024, Uint8Array.of(1)));
    expect(hex(c.name)).not.toBe(hex(a.name));
    const n2 = primary(t, RH_NULL, rsaStorage(1024));
    expect(hex(n2.pub)).not.toBe(hex(n1.pub)); // a new null seed after the power cycle
    ok(t.executeSync(flush(b.handle), 0));
    ok(t.executeSync(flush(c.handle), 0));
    ok(t.executeSync(flush(n2.handle), 0));
    ok(t.executeSync(authCmd(0x126, [0x4000000a], [[]]), 0)); // TPM2_Clear
    const d = primary(t, OWNER, rsaStorage(1024));
    expect(hex(d.name)).not.toBe(hex(a.name));
  });

  it("refuses bad templates with the Part 3 codes", () => {
    const t = startedTpm();
    const bad = (tpl: Uint8Array, auth: number[] = [], data: number[] = []) => rcOf(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], createParams(tpl, auth, data)), 0));
    expect(bad(rsaStorage(1000))).toBe(0x2c4); // TPMI_RSA_KEY_BITS: TPM_RC_VALUE + P2 (swtpm 0.7.1 too)
    const noFixedParent = rsaStorage(2048);
    noFixedParent[7]! &= ~A.FIXEDPARENT;
    expect(bad(noFixedParent)).toBe(0x2c2); // TPM_RC_ATTRIBUTES + P2
    const reserved = rsaStorage(2048);
    reserved[7]! |= 1;
    expect(bad(reserved)).toBe(0x2e1); // TPM_RC_RESERVED_BITS + P2
    expect(bad(sealed(), [], [1, 2, 3]) === 0).toBe(true);
    expect(bad(sealed(A.SENSITIVEDATAORIGIN), [], [1])).toBe(0x2c2);
    expect(bad(unhex("0023000b00040072000000100018000b0099001000000000"))).toBe(0x2e6); // ECC on an unknown curve: TPM_RC_CURVE + P2 (swtpm 0.7.1 too)
    expect(bad(unhex("0099000b"))).toBe(0x2ca); // TPM_RC_TYPE + P2
    expect(bad(sealed(), new Array(33).fill(1), [1])).toBe(0x1d5); // userAuth longer than the nameAlg digest: TPM_RC_SIZE + P1
    expect(bad(sealed(), new Array(33).fill(1))).toBe(0x2c2); // the template first: sealed data without data is TPM_RC_ATTRIBUTES + P2 (swtpm 0.7.1)
    expect(rcOf(t.executeSync(authCmd(CC.CreatePrimary, [0x40000000 + 0x0a], [[]], createParams(sealed())), 0))).toBe(0x184); // lockout is no hierarchy: TPM_RC_VALUE + H1
  });
});

describe("protected storage: Create, Load, Unseal, ObjectChangeAuth (Part 3 §12)", () => {
  const t = startedTpm();
  const srk = primary(t, OWNER, rsaStorage(1024));
  const secret = [...new TextEncoder().encode("the secret")];
  const blob = create(t, srk.handle, sealed(), [0x61, 0x62], secret);

  it("Create/Load/ReadPublic round trip; Unseal with the right password; the wrong one is a DA failure", () => {
    const r = ok(t.executeSync(loadCmd(srk.handle, blob.priv, blob.pub), 0));
    const h = u32At(r, 10);
    expect(h).toBe(0x80000001);
    const [name] = fields(r, true, 1);
    expect(hex(name!)).toBe("000b" + hex(sha256(blob.pub)));
    const [rp] = fields(ok(t.executeSync(cmd(0x8001, CC.ReadPublic, u32(h)), 0)), false, 1);
    expect(hex(rp!)).toBe(hex(blob.pub));
    const [data] = fields(ok(t.executeSync(unsealCmd(h, [0x61, 0x62]), 0)), false, 1);
    expect(hex(data!)).toBe(hex(Uint8Array.from(secret)));
    expect(rcOf(t.executeSync(unsealCmd(h, [0x61]), 0))).toBe(0x98e); // TPM_RC_AUTH_FAIL + S1: DA-protected
    ok(t.executeSync(flush(h), 0));
  });

  it("a corrupted private blob is TPM_RC_INTEGRITY + P1, a public area that does not match it too (codes as swtpm 0.7.1)", () => {
    const priv = blob.priv.slice();
    priv[priv.length - 1]! ^= 1;
    expect(rcOf(t.executeSync(loadCmd(srk.handle, priv, blob.pub), 0))).toBe(0x1df);
    const other = create(t, srk.handle, sealed(), [], [1]);
    expect(rcOf(t.executeSync(loadCmd(srk.handle, blob.priv, other.pub), 0))).toBe(0x1df); // the Name is in the HMAC
    expect(rcOf(t.executeSync(loadCmd(srk.handle, Uint8Array.of(0, 1), blob.pub), 0))).toBe(0x1da); // cut: TPM_RC_INSUFFICIENT + P1
    expect(rcOf(t.executeSync(loadCmd(srk.handle, new Uint8Array(0), blob.pub), 0))).toBe(0x1d5); // empty: TPM_RC_SIZE + P1
  });

  it("Unseal of a non-sealed object and Create under a non-storage parent are refused", () => {
    const r = ok(t.executeSync(loadCmd(srk.handle, blob.priv, blob.pub), 0));
    const h = u32At(r, 10);
    expect(rcOf(t.executeSync(authCmd(CC.Create, [h], [[0x61, 0x62]], createParams(sealed(), [], [1])), 0))).toBe(0x18a); // TPM_RC_TYPE + H1
    expect(rcOf(t.executeSync(unsealCmd(srk.handle, []), 0))).toBe(0x18a);
    ok(t.executeSync(flush(h), 0));
  });

  it("ObjectChangeAuth gives a new private blob: the old password fails with it, the new one works", () => {
    const h = u32At(ok(t.executeSync(loadCmd(srk.handle, blob.priv, blob.pub), 0)), 10);
    const r = ok(t.executeSync(authCmd(CC.ObjectChangeAuth, [h, srk.handle], [[0x61, 0x62]], t2b([0x7a])), 0));
    const [priv2] = fields(r, false, 1);
    ok(t.executeSync(flush(h), 0));
    const h2 = u32At(ok(t.executeSync(loadCmd(srk.handle, priv2!, blob.pub), 0)), 10);
    ok(t.executeSync(unsealCmd(h2, [0x7a]), 0));
    ok(t.executeSync(flush(h2), 0));
  });

  it("LoadExternal of a public area only: usable for ReadPublic, never authorized", () => {
    const r = ok(t.executeSync(cmd(0x8001, CC.LoadExternal, [...u16(0), ...t2b(blob.pub), ...u32(OWNER)]), 0));
    const h = u32At(r, 10);
    expect(hex(fields(r, true, 1)[0]!)).toBe("000b" + hex(sha256(blob.pub)));
    expect(rcOf(t.executeSync(unsealCmd(h, []), 0))).toBe(0x12f); // TPM_RC_AUTH_UNAVAILABLE
    ok(t.executeSync(flush(h), 0));
  });
});

describe("object slots and FlushContext", () => {
  it("three objects fill the slots: TPM_RC_OBJECT_MEMORY for a fourth object or a sequence; flushing frees one", () => {
    const t = startedTpm();
    const hs = [1, 2, 3].map((i) => u32At(ok(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], createParams(sealed(), [], [i])), 0)), 10));
    expect(hs).toEqual([0x80000000, 0x80000001, 0x80000002]);
    expect(rcOf(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], createParams(sealed(), [], [1])), 0))).toBe(0x902);
    expect(rcOf(t.executeSync(cmd(0x8001, CC.HashSequenceStart, [...u16(0), ...u16(0x0b)]), 0))).toBe(0x902);
    expect(handlesOf(t.executeSync(getHandles(0x80000000), 0))).toEqual(hs);
    ok(t.executeSync(flush(0x80000001), 0));
    expect(rcOf(t.executeSync(flush(0x80000001), 0))).toBe(0x1cb); // TPM_RC_HANDLE + P1
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ReadPublic, u32(0x80000001)), 0))).toBe(0x910); // TPM_RC_REFERENCE_H0
    expect(u32At(ok(t.executeSync(cmd(0x8001, CC.HashSequenceStart, [...u16(0), ...u16(0x0b)]), 0)), 10)).toBe(0x80000001);
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ReadPublic, u32(0x80000001)), 0))).toBe(0x103); // TPM_RC_SEQUENCE
  });
});

describe("TPM2_EvictControl (Part 3 §28.5): persistent objects survive a restart", () => {
  it("persist, use after a restart, evict; wrong ranges and duplicates refused", async () => {
    const storage = new MemoryStorage();
    const t = new SoftTpm({ storage, seed: "evict" });
    await t.start();
    ok(t.executeSync(STARTUP_CLEAR, 0));
    const srk = primary(t, OWNER, rsaStorage(1024));
    const b = create(t, srk.handle, sealed(A.NODA), [], [1, 2, 3]);
    const h = u32At(ok(t.executeSync(loadCmd(srk.handle, b.priv, b.pub), 0)), 10);
    const evict = (obj: number, p: number, auth = OWNER) => t.executeSync(authCmd(CC.EvictControl, [auth, obj], [[]], u32(p)), 0);
    expect(rcOf(evict(h, 0x81800001))).toBe(0x1cd); // TPM_RC_RANGE + P1: a platform handle under owner auth
    ok(evict(h, 0x81000001));
    expect(rcOf(evict(h, 0x81000001))).toBe(0x14c); // TPM_RC_NV_DEFINED
    expect(rcOf(evict(h, 0x81800001, PLATFORM))).toBe(0x285); // TPM_RC_HIERARCHY + H2: an owner object
    await t.flush();
    await restart(t);
    expect(handlesOf(t.executeSync(getHandles(0x81000000), 0))).toEqual([0x81000001]);
    expect(hex(fields(ok(t.executeSync(unsealCmd(0x81000001, []), 0)), false, 1)[0]!)).toBe("010203");
    // the qualified name survives too: H(QN(SRK) ‖ Name)
    const srkQn = cat([0, 0x0b], sha256(cat(u32(OWNER), srk.name)));
    const [, pname, pqn] = fields(ok(t.executeSync(cmd(0x8001, CC.ReadPublic, u32(0x81000001)), 0)), false, 3);
    expect(hex(pqn!)).toBe("000b" + hex(sha256(cat(srkQn, pname!))));
    expect(rcOf(evict(0x81000001, 0x81000002))).toBe(0x1cb); // TPM_RC_HANDLE + P1
    ok(evict(0x81000001, 0x81000001));
    await t.flush();
    await restart(t);
    expect(handlesOf(t.executeSync(getHandles(0x81000000), 0))).toEqual([]);
    expect(rcOf(t.executeSync(unsealCmd(0x81000001, []), 0))).toBe(0x18b); // TPM_RC_HANDLE + H1
  });
});

/** A client-side unbound, unsalted HMAC session (Part 1 §19.6), independent of SoftTpm. */
class Session {
  handle = 0;
  nonceTPM = new Uint8Array(0);
  nonceCaller = new Uint8Array(16).fill(0x33);
  constructor(readonly t: SoftTpm) {
    const r = ok(t.executeSync(cmd(0x8001, CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(this.nonceCaller), ...u16(0), 0, ...u16(0x10), ...u16(0x0b)]), 0));
    this.handle = u32At(r, 10);
    this.nonceTPM = r.slice(16, 16 + ((r[14]! << 8) | r[15]!));
  }
  unseal(h: number, name: Uint8Array, auth: Uint8Array): Uint8Array {
    this.nonceCaller = this.nonceCaller.map((x) => (x + 1) & 0xff);
    const cpHash = sha256(cat(u32(CC.Unseal), name));
    const mac = hmac(sha256, auth, cat(cpHash, this.nonceCaller, this.nonceTPM, [1]));
    const s = [...u32(this.handle), ...t2b(this.nonceCaller), 1, ...t2b(mac)];
    const r = this.t.executeSync(cmd(0x8002, CC.Unseal, [...u32(h), ...u32(s.length), ...s]), 0);
    if (rcOf(r) === 0) {
      const p = 14 + u32At(r, 10);
      this.nonceTPM = r.slice(p + 2, p + 2 + ((r[p]! << 8) | r[p + 1]!));
    }
    return r;
  }
}

describe("ContextSave / ContextLoad (Part 3 §28.2–§28.3)", () => {
  it("an object: saved, flushed, loaded again under a new handle; a changed blob is TPM_RC_INTEGRITY + P1", () => {
    const t = startedTpm();
    const srk = primary(t, OWNER, rsaStorage(1024));
    const b = create(t, srk.handle, sealed(), [0x70], [9, 9]);
    const h = u32At(ok(t.executeSync(loadCmd(srk.handle, b.priv, b.pub), 0)), 10);
    const saved = ok(t.executeSync(cmd(0x8001, CC.ContextSave, u32(h)), 0)).slice(10);
    expect(hex(saved.subarray(8, 16))).toBe("80000000" + "40000001"); // savedHandle, hierarchy
    ok(t.executeSync(flush(h), 0));
    ok(t.executeSync(flush(srk.handle), 0));
    const r = ok(t.executeSync(cmd(0x8001, CC.ContextLoad, saved), 0));
    const h2 = u32At(r, 10);
    expect(h2).toBe(0x80000000);
    expect(hex(fields(ok(t.executeSync(unsealCmd(h2, [0x70]), 0)), false, 1)[0]!)).toBe("0909");
    const bad = saved.slice();
    bad[bad.length - 1]! ^= 0x80;
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextLoad, bad), 0))).toBe(0x1df);
    const seq = saved.slice();
    seq[7]! ^= 1; // another sequence number
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextLoad, seq), 0))).toBe(0x1df);
    const hier = saved.slice();
    hier[15] = 0x0b; // endorsement instead of owner
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextLoad, hier), 0))).toBe(0x1df);
    const sh = saved.slice();
    sh[8] = 0x81; // savedHandle 0x81000000 is no TPMI_DH_SAVED
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextLoad, sh), 0))).toBe(0x1c4);
  });

  it("an HMAC session: saved (handle kept, listed as saved), loaded once, then used; a second load is TPM_RC_HANDLE + P1", () => {
    const t = startedTpm();
    const srk = primary(t, OWNER, rsaStorage(1024));
    const b = create(t, srk.handle, sealed(), [0x6b], [5]);
    const lr = ok(t.executeSync(loadCmd(srk.handle, b.priv, b.pub), 0));
    const h = u32At(lr, 10);
    const name = fields(lr, true, 1)[0]!;
    const s = new Session(t);
    ok(s.unseal(h, name, Uint8Array.of(0x6b)));
    const saved = ok(t.executeSync(cmd(0x8001, CC.ContextSave, u32(s.handle)), 0)).slice(10);
    expect(u32At(saved, 8)).toBe(s.handle);
    expect(handlesOf(t.executeSync(getHandles(0x02000000), 0))).toEqual([]);
    expect(handlesOf(t.executeSync(getHandles(0x03000000), 0))).toEqual([s.handle]);
    expect(rcOf(s.unseal(h, name, Uint8Array.of(0x6b)))).toBe(0x918); // TPM_RC_REFERENCE_S0: not loaded
    const r = ok(t.executeSync(cmd(0x8001, CC.ContextLoad, saved), 0));
    expect(u32At(r, 10)).toBe(s.handle);
    expect(hex(fields(ok(s.unseal(h, name, Uint8Array.of(0x6b))), false, 1)[0]!)).toBe("05");
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextLoad, saved), 0))).toBe(0x1cb); // TPM_RC_HANDLE + P1: loaded once only
    // saved again, then flushed while saved: its context can no longer be loaded
    const again = ok(t.executeSync(cmd(0x8001, CC.ContextSave, u32(s.handle)), 0)).slice(10);
    ok(t.executeSync(flush(s.handle), 0));
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextLoad, again), 0))).toBe(0x1cb);
  });
});

describe("state file: version 2 with seeds and persistent objects, version 1 migrated", () => {
  it("a version-1 blob written by the old encoder still loads: NV kept, seeds derived the same each time", async () => {
    const v1 = unhex((JSON.parse(readFileSync(new URL("./vectors/state-v1.json", import.meta.url), "utf8")) as { hex: string }).hex);
    const s = decodeState(v1);
    expect(s.nv.map((n) => n.handle)).toEqual([0x01500000]);
    expect(s.persistent).toEqual([]);
    expect(hex(decodeState(v1).storageSeed)).toBe(hex(s.storageSeed));
    expect(hex(s.storageSeed)).not.toBe(hex(s.endorsementSeed));
    const v2 = encodeState(s);
    expect(v2[5]).toBe(STATE_VERSION); // re-encoded in the current version (3 since TPM2_SetPrimaryPolicy)
    expect(decodeState(v2)).toEqual(s);
    const t = new SoftTpm({ storage: new MemoryStorage(v1) });
    await t.start();
    ok(t.executeSync(STARTUP_CLEAR, 0));
    const r = ok(t.executeSync(authCmd(0x14e, [0x01500000, 0x01500000], [[0x61]], [...u16(4), ...u16(0)]), 0));
    expect(hex(r.subarray(r.length - 5 - 4, r.length - 5))).toBe("deadbeef");
  });
});

describe("TPM2_ContextSave / ContextLoad of sequence objects (Part 3 §28.2, §28.3)", () => {
  const SEQ = { SequenceUpdate: 0x15c, SequenceComplete: 0x13e, EventSequenceComplete: 0x185 };
  const update = (h: number, data: number[]) => authCmd(SEQ.SequenceUpdate, [h], [[0x73]], t2b(data));
  const save = (h: number) => cmd(0x8001, CC.ContextSave, u32(h));
  const load = (ctx: Uint8Array) => cmd(0x8001, CC.ContextLoad, [...ctx.subarray(10)]);
  const part1 = Array.from({ length: 100 }, (_, i) => i); // more than a SHA-256 block, a partial one left over
  const part2 = [...new TextEncoder().encode("and the rest")];

  it("a hash sequence saved mid-way (savedHandle 0x80000001, TPM_RH_NULL, as swtpm 0.7.1), flushed and loaded back hashes on", () => {
    const t = startedTpm();
    const h = u32At(ok(t.executeSync(cmd(0x8001, CC.HashSequenceStart, [...t2b([0x73]), ...u16(0x0b)]), 0)), 10);
    ok(t.executeSync(update(h, part1), 0));
    const ctx = ok(t.executeSync(save(h), 0));
    expect(u32At(ctx, 18)).toBe(0x80000001); // savedHandle of a sequence object (Part 2 §14.5)
    expect(u32At(ctx, 22)).toBe(0x40000007); // hierarchy
    // the saved sequence stays loaded (Part 3 §28.2) and goes on independently
    ok(t.executeSync(update(h, [1, 2, 3]), 0));
    ok(t.executeSync(flush(h), 0));
    const h2 = u32At(ok(t.executeSync(load(ctx), 0)), 10);
    ok(t.executeSync(update(h2, part2.slice(0, 4)), 0));
    const r = ok(t.executeSync(authCmd(SEQ.SequenceComplete, [h2], [[0x73]], [...t2b(part2.slice(4)), ...u32(0x40000007)]), 0));
    expect(hex(fields(r, false, 1)[0]!)).toBe(hex(sha256(Uint8Array.from([...part1, ...part2]))));
    // its authValue came back too: a wrong one fails
    const h3 = u32At(ok(t.executeSync(load(ctx), 0)), 10);
    expect(rcOf(t.executeSync(authCmd(SEQ.SequenceUpdate, [h3], [[0x74]], t2b([1])), 0))).toBe(0x9a2); // TPM_RC_BAD_AUTH + S1 (a sequence is not DA-protected)
  });

  it("an event sequence comes back with every bank's hash state", () => {
    const t = startedTpm();
    const h = u32At(ok(t.executeSync(cmd(0x8001, CC.HashSequenceStart, [...t2b([0x73]), ...u16(0x10)]), 0)), 10);
    ok(t.executeSync(update(h, part1), 0));
    const ctx = ok(t.executeSync(save(h), 0));
    ok(t.executeSync(flush(h), 0));
    const h2 = u32At(ok(t.executeSync(load(ctx), 0)), 10);
    const r = ok(t.executeSync(cmd(0x8002, SEQ.EventSequenceComplete, [...u32(0x40000007), ...u32(h2), ...u32(19), ...u32(0x40000009), ...u16(0), 0, ...t2b([]), ...u32(0x40000009), ...u16(0), 0, ...t2b([0x73]), ...t2b(part2)]), 0));
    // TPML_DIGEST_VALUES: count, then (alg, digest) per bank in TPM_ALG_ID order; SHA-256 second
    const at = 14 + 4 + 2 + 20 + 2;
    expect(u32At(r, 14)).toBe(4);
    expect(hex(r.subarray(at, at + 32))).toBe(hex(sha256(Uint8Array.from([...part1, ...part2]))));
  });

  it("an HMAC sequence's state (inner hash and padded key) survives the context format (engine/contexts.ts savableHmac)", () => {
    const key = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
    const a = HASH_IMPLS[1]!; // SHA-256
    const seq = { handle: 0x80000000, alg: a, hashers: [savableHmac(a, key)], authValue: Uint8Array.of(1), ticketSafe: false };
    seq.hashers[0]!.update(Uint8Array.from(part1));
    const plain = sequenceContext(seq)!;
    const back = sequenceFromContext(plain, 0x80000001);
    back.hashers[0]!.update(Uint8Array.from(part2));
    expect(hex(back.hashers[0]!.digest())).toBe(hex(hmac(sha256, key, Uint8Array.from([...part1, ...part2]))));
    expect(back.ticketSafe).toBe(false);
    expect(hex(back.authValue)).toBe("01");
  });
});

describe("template checks that follow swtpm 0.7.1 (the tpm2-tools create / createprimary loops)", () => {
  const symcipher = (attrs: number, mode: number) =>
    marshalPublic({ type: TPM_ALG.SYMCIPHER, nameAlg: TPM_ALG.SHA1, objectAttributes: attrs, authPolicy: new Uint8Array(0), symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode }, unique: new Uint8Array(0) });
  const keyedHash = (attrs: number, scheme: number) =>
    marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA1, objectAttributes: attrs, authPolicy: new Uint8Array(0), scheme: { scheme, hashAlg: TPM_ALG.SHA1 }, unique: new Uint8Array(0) });
  const DEFAULT = A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH;

  it("a restricted symmetric storage key may name any block mode or NULL (tpm2 createprimary -G aes), its children are still protected", () => {
    const t = startedTpm();
    for (const mode of [TPM_ALG.NULL, TPM_ALG.CBC, TPM_ALG.ECB, TPM_ALG.CTR, TPM_ALG.OFB]) {
      const p = primary(t, OWNER, symcipher(DEFAULT | A.RESTRICTED | A.DECRYPT, mode));
      const b = create(t, p.handle, sealed(), [], [1, 2, 3]);
      const h = u32At(ok(t.executeSync(loadCmd(p.handle, b.priv, b.pub), 0)), 10);
      expect(hex(fields(ok(t.executeSync(unsealCmd(h, []), 0)), false, 1)[0]!)).toBe("010203");
      ok(t.executeSync(flush(h), 0));
      ok(t.executeSync(flush(p.handle), 0));
    }
  });

  it("a keyed-hash key with sign and decrypt takes the NULL scheme (tpm2 create -G keyedhash); a scheme there is TPM_RC_SCHEME + P2", () => {
    const t = startedTpm();
    const p = primary(t, OWNER, rsaStorage(1024));
    expect(create(t, p.handle, keyedHash(DEFAULT | A.SIGN_ENCRYPT | A.DECRYPT, TPM_ALG.NULL)).pub.length).toBeGreaterThan(0);
    expect(rcOf(t.executeSync(authCmd(CC.Create, [p.handle], [[]], createParams(keyedHash(DEFAULT | A.SIGN_ENCRYPT | A.DECRYPT, TPM_ALG.HMAC))), 0))).toBe(0x2d2);
  });

  it("under a fixedTPM parent fixedParent and fixedTPM must agree (TPM_RC_ATTRIBUTES + P2); Create needs a free object slot (TPM_RC_OBJECT_MEMORY)", () => {
    const t = startedTpm();
    const p = primary(t, OWNER, rsaStorage(1024));
    const fixedParentOnly = marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: A.FIXEDPARENT | A.USERWITHAUTH, authPolicy: new Uint8Array(0), scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 }, unique: new Uint8Array(0) });
    expect(rcOf(t.executeSync(authCmd(CC.Create, [p.handle], [[]], createParams(fixedParentOnly, [], [1])), 0))).toBe(0x2c2);
    for (const i of [1, 2]) ok(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], createParams(sealed(), [], [i])), 0));
    expect(rcOf(t.executeSync(authCmd(CC.Create, [p.handle], [[]], createParams(sealed(), [], [1])), 0))).toBe(0x902);
  });
});
