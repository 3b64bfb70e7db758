/**
 * Session audit (TPM 2.0 Part 1 §32.4; TPMA_SESSION audit, auditExclusive, auditReset, Part 2
 * §8.4; Part 3 §18.5 TPM2_GetSessionAuditDigest). The client side of the HMAC session and every
 * digest are computed here independently of SoftTpm: sessionDigest = H(sessionDigest ‖ cpHash ‖
 * rpHash), starting at zeros. Response codes, response attributes and sequences were measured on
 * swtpm 0.7.1 (the same commands; every code, attribute and digest equal).
 */
import { describe, expect, it } from "vitest";
import { constants, createPublicKey, verify } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmReader } from "../wire/buffer.js";
import { TPM_ALG, TPM_ST, TPMA_OBJECT } from "../wire/constants.js";
import { unmarshalAttest } from "../wire/attest.js";
import { type TpmtPublic, marshalPublic, readPublic } from "../wire/structures.js";
import type { SoftTpm } from "./softtpm.js";
import { authCmd, cmd, hex, pwSession, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

const OWNER = 0x40000001;
const ENDORSEMENT = 0x4000000b;
const RH_NULL = 0x40000007;
const CC = { GetRandom: 0x17b, PCR_Extend: 0x182, GetSessionAuditDigest: 0x14d, SetCommandCodeAuditStatus: 0x140, GetCommandAuditDigest: 0x133, HierarchyChangeAuth: 0x129, ContextSave: 0x162, ContextLoad: 0x161, FlushContext: 0x165, CreatePrimary: 0x131 };
const AUDIT = 0x80;
const CONT = 0x01;
const EXCL = 0x02;
const RESET = 0x04;
const cat = (...p: (Uint8Array | number[])[]) => Uint8Array.from(p.flatMap((x) => [...x]));

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}

/** KDFa with SHA-256 (Part 1 §11.4.10.2), for a bound session's key. */
function kdfa(key: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number): Uint8Array {
  const lb = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(bits / 8);
  for (let i = 1, off = 0; off < out.length; i++, off += 32) out.set(hmac(sha256, key, cat(u32(i), lb, u, v, u32(bits))).subarray(0, Math.min(32, out.length - off)), off);
  return out;
}

/** The client side of an HMAC session with SHA-256 (Part 1 §19.6). */
class Session {
  handle = 0;
  nonceTPM: Uint8Array = new Uint8Array(0);
  nonceCaller: Uint8Array = new Uint8Array(32).fill(0x11);
  key: Uint8Array = new Uint8Array(0);
  /** cpHash and rpHash of the last successful command. */
  cp: Uint8Array = new Uint8Array(0);
  rp: Uint8Array = new Uint8Array(0);
  constructor(readonly t: SoftTpm) {}
  start(type = 0, bind = RH_NULL, bindAuth = new Uint8Array(0)): number {
    const r = this.t.executeSync(cmd(0x8001, 0x176, [...u32(RH_NULL), ...u32(bind), ...t2b(this.nonceCaller), ...u16(0), type, ...u16(TPM_ALG.NULL), ...u16(TPM_ALG.SHA256)]), 0);
    if (rcOf(r) !== 0) return rcOf(r);
    this.handle = u32At(r, 10);
    this.nonceTPM = r.slice(16, 16 + ((r[14]! << 8) | r[15]!));
    if (bind !== RH_NULL) this.key = kdfa(bindAuth, "ATH", this.nonceTPM, this.nonceCaller, 256);
    return 0;
  }
  /** The session's entry in a command's authorization area. */
  entry(cc: number, names: (Uint8Array | number[])[], params: number[], attrs: number, authValue: number[] = []): number[] {
    this.nonceCaller = this.nonceCaller.map((b) => (b + 1) & 0xff);
    this.cp = sha256(cat(u32(cc), ...names, params));
    const mac = hmac(sha256, cat(this.key, authValue), cat(this.cp, this.nonceCaller, this.nonceTPM, [attrs]));
    return [...u32(this.handle), ...t2b(this.nonceCaller), attrs, ...t2b(mac)];
  }
  /** Sends `cc` with this session at position `at` among `others`; checks its response HMAC; returns the response and its attributes. */
  call(cc: number, handles: number[], names: (Uint8Array | number[])[], params: number[], attrs: number, opts: { authValue?: number[]; before?: number[][]; after?: number[][] } = {}): { r: Uint8Array; attrs: number } {
    const e = this.entry(cc, names, params, attrs, opts.authValue);
    const area = [...(opts.before ?? []), e, ...(opts.after ?? [])].flat();
    const r = this.t.executeSync(cmd(0x8002, cc, [...handles.flatMap(u32), ...u32(area.length), ...area, ...params]), 0);
    if (rcOf(r) !== 0) return { r, attrs: -1 };
    const paramSize = u32At(r, 10);
    const rParams = r.subarray(14, 14 + paramSize);
    let p = 14 + paramSize;
    for (let i = 0; i < (opts.before ?? []).length; i++) p += 2 + ((r[p]! << 8) | r[p + 1]!) + 1 + 2 + ((r[p + 3 + ((r[p]! << 8) | r[p + 1]!)]! << 8) | r[p + 4 + ((r[p]! << 8) | r[p + 1]!)]!);
    const nlen = (r[p]! << 8) | r[p + 1]!;
    const nonce = r.slice(p + 2, p + 2 + nlen);
    p += 2 + nlen;
    const rAttrs = r[p]!;
    const mac = r.subarray(p + 3, p + 3 + ((r[p + 1]! << 8) | r[p + 2]!));
    this.rp = sha256(cat(u32(0), u32(cc), rParams));
    expect(hex(mac)).toBe(hex(hmac(sha256, cat(this.key, opts.authValue ?? []), cat(this.rp, nonce, this.nonceCaller, [rAttrs]))));
    this.nonceTPM = nonce;
    return { r, attrs: rAttrs };
  }
  /** GetRandom(8) with this session as its only (non-authorizing) session. */
  getRandom(attrs: number): { r: Uint8Array; attrs: number } {
    return this.call(CC.GetRandom, [], [], u16(8), attrs);
  }
}

/** TPM2_GetSessionAuditDigest, unsigned unless `key`; the exclusive flag and the digest. */
function sessionAudit(t: SoftTpm, h: number, key = RH_NULL): { rc: number; exclusive?: boolean; digest?: Uint8Array; bytes?: Uint8Array; sig?: Uint8Array } {
  const r = t.executeSync(authCmd(CC.GetSessionAuditDigest, [ENDORSEMENT, key, h], [[], []], [...t2b([]), ...u16(TPM_ALG.NULL)]), 0);
  if (rcOf(r) !== 0) return { rc: rcOf(r) };
  const rd = new TpmReader(r, 14, 14 + u32At(r, 10));
  const bytes = rd.tpm2b().slice();
  const sigAlg = rd.u16();
  let sig: Uint8Array | undefined;
  if (sigAlg !== TPM_ALG.NULL) {
    expect(rd.u16()).toBe(TPM_ALG.SHA256);
    sig = rd.tpm2b().slice();
  }
  const a = unmarshalAttest(bytes);
  expect(a.type).toBe(TPM_ST.ATTEST_SESSION_AUDIT);
  if (a.type !== TPM_ST.ATTEST_SESSION_AUDIT) throw new Error("type");
  return { rc: 0, exclusive: a.attested.exclusiveSession, digest: a.attested.sessionDigest, bytes, ...(sig ? { sig } : {}) };
}

const extend = (b: number) => [...u32(1), ...u16(TPM_ALG.SHA256), ...new Array<number>(32).fill(b)];

describe("session audit: the audit attributes and TPM2_GetSessionAuditDigest", () => {
  it("starts at zeros and exclusive on first use, extends with cpHash ‖ rpHash, reports auditExclusive in the response", () => {
    const t = startedTpm();
    const s = new Session(t);
    expect(s.start()).toBe(0);
    expect(s.getRandom(CONT | AUDIT).attrs).toBe(CONT | AUDIT | EXCL);
    let d = sha256(cat(new Uint8Array(32), s.cp, s.rp));
    let g = sessionAudit(t, s.handle);
    expect([g.exclusive, hex(g.digest!)]).toEqual([true, hex(d)]);
    // GetSessionAuditDigest allows sessions and had no audit session: exclusivity is gone
    expect(s.getRandom(CONT | AUDIT).attrs).toBe(CONT | AUDIT);
    d = sha256(cat(d, s.cp, s.rp));
    g = sessionAudit(t, s.handle);
    expect([g.exclusive, hex(g.digest!)]).toEqual([false, hex(d)]);
    // auditExclusive on a session that is not exclusive: TPM_RC_EXCLUSIVE, nothing changed
    expect(rcOf(s.getRandom(CONT | AUDIT | EXCL).r)).toBe(0x121);
    expect(hex(sessionAudit(t, s.handle).digest!)).toBe(hex(d));
    // auditReset: from zeros again, exclusive; the response keeps auditReset
    expect(s.getRandom(CONT | AUDIT | RESET).attrs).toBe(CONT | AUDIT | RESET | EXCL);
    d = sha256(cat(new Uint8Array(32), s.cp, s.rp));
    expect(hex(sessionAudit(t, s.handle).digest!)).toBe(hex(d));
  });

  it("stays exclusive across failing commands and commands that allow no sessions, not across one without an audit session", () => {
    const t = startedTpm();
    const s = new Session(t);
    s.start();
    expect(s.call(CC.PCR_Extend, [16], [u32(16)], extend(1), CONT | AUDIT).attrs).toBe(CONT | AUDIT | EXCL);
    let d = sha256(cat(new Uint8Array(32), s.cp, s.rp));
    // a failing command (bad HMAC) with the session, and a failing one without sessions
    const r = t.executeSync(cmd(0x8002, CC.PCR_Extend, [...u32(16), ...u32(9 + 32 + 32), ...u32(s.handle), ...t2b(new Array(32).fill(7)), CONT | AUDIT, ...t2b(new Array(32).fill(0)), ...extend(2)]), 0);
    expect(rcOf(r)).toBe(0x9a2);
    expect(rcOf(t.executeSync(cmd(0x8001, CC.GetRandom, [...u16(4), 0]), 0))).toBe(0x95);
    // ContextSave / ContextLoad allow no sessions: the digest and exclusivity survive them
    const saved = ok(t.executeSync(cmd(0x8001, CC.ContextSave, u32(s.handle)), 0));
    ok(t.executeSync(cmd(0x8001, CC.ContextLoad, saved.subarray(10)), 0));
    expect(s.call(CC.PCR_Extend, [16], [u32(16)], extend(3), CONT | AUDIT | EXCL).attrs).toBe(CONT | AUDIT | EXCL);
    d = sha256(cat(d, s.cp, s.rp));
    // a successful command without sessions ends it
    ok(t.executeSync(cmd(0x8001, CC.GetRandom, u16(4)), 0));
    expect(rcOf(s.call(CC.PCR_Extend, [16], [u32(16)], extend(4), CONT | AUDIT | EXCL).r)).toBe(0x121);
    const g = sessionAudit(t, s.handle);
    expect([g.exclusive, hex(g.digest!)]).toEqual([false, hex(d)]);
  });

  it("accepts auditExclusive and auditReset without audit and echoes them", () => {
    const t = startedTpm();
    const s = new Session(t);
    s.start();
    expect(s.call(CC.PCR_Extend, [16], [u32(16)], extend(1), CONT | EXCL).attrs).toBe(CONT | EXCL);
    expect(s.call(CC.PCR_Extend, [16], [u32(16)], extend(1), CONT | RESET).attrs).toBe(CONT | RESET);
    expect(sessionAudit(t, s.handle).rc).toBe(0x38a); // never an audit session: TPM_RC_TYPE + H3
  });

  it("gives swtpm's codes for audit on a policy or password session, two audit sessions and bad session handles", () => {
    const t = startedTpm();
    const p = new Session(t);
    expect(p.start(1)).toBe(0); // policy session
    expect(rcOf(p.getRandom(CONT | AUDIT).r)).toBe(0x982); // TPM_RC_ATTRIBUTES + S1
    const a = new Session(t);
    const b = new Session(t);
    a.start();
    b.start();
    const first = a.entry(CC.GetRandom, [], u16(8), CONT | AUDIT);
    expect(rcOf(b.call(CC.GetRandom, [], [], u16(8), CONT | AUDIT, { before: [first] }).r)).toBe(0xa82); // TPM_RC_ATTRIBUTES + S2
    expect(rcOf(t.executeSync(cmd(0x8002, CC.GetRandom, [...u32(9), ...pwSession([], CONT | AUDIT), ...u16(8)]), 0))).toBe(0x982);
    expect(sessionAudit(t, 0x02000010).rc).toBe(0x912); // not loaded: TPM_RC_REFERENCE_H2
    expect(sessionAudit(t, p.handle).rc).toBe(0x384); // a policy session handle: TPM_RC_VALUE + H3
    expect(sessionAudit(t, (p.handle & 0xffffff) | 0x02000000).rc).toBe(0x38b); // its slot as an HMAC handle: TPM_RC_HANDLE + H3
    expect(sessionAudit(t, 0x01000000).rc).toBe(0x384);
  });

  it("an audit session is no longer bound: after its first audited command the HMAC key takes the authValue", () => {
    const t = startedTpm();
    ok(t.executeSync(authCmd(CC.HierarchyChangeAuth, [OWNER], [[]], t2b([0x61, 0x62])), 0));
    const s = new Session(t);
    expect(s.start(0, OWNER, Uint8Array.of(0x61, 0x62))).toBe(0);
    const p = [...u16(TPM_ALG.NULL), ...u32(0), ...u32(0)];
    // bound to the owner: the authValue stays out of the key
    expect(s.call(CC.SetCommandCodeAuditStatus, [OWNER], [u32(OWNER)], p, CONT | AUDIT).attrs).toBe(CONT | AUDIT | EXCL);
    let d = sha256(cat(new Uint8Array(32), s.cp, s.rp));
    // now it goes in
    expect(s.call(CC.SetCommandCodeAuditStatus, [OWNER], [u32(OWNER)], p, CONT | AUDIT, { authValue: [0x61, 0x62] }).attrs).toBe(CONT | AUDIT | EXCL);
    d = sha256(cat(d, s.cp, s.rp));
    expect(hex(sessionAudit(t, s.handle).digest!)).toBe(hex(d));
  });

  it("signs the session digest with a key; the same command is in the command audit digest too", () => {
    const t = startedTpm();
    const A = TPMA_OBJECT;
    const tpl = marshalPublic({
      type: TPM_ALG.RSA,
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.SIGN_ENCRYPT,
      authPolicy: new Uint8Array(0),
      symmetric: { algorithm: TPM_ALG.NULL, keyBits: 0, mode: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
      keyBits: 1024,
      exponent: 0,
      unique: new Uint8Array(0),
    });
    const cr = ok(t.executeSync(authCmd(CC.CreatePrimary, [OWNER], [[]], [...t2b([...t2b([]), ...t2b([])]), ...t2b(tpl), ...u16(0), ...u32(0)]), 0));
    const key = u32At(cr, 10);
    const pub: TpmtPublic = readPublic(new TpmReader(new TpmReader(cr, 18, 18 + u32At(cr, 14)).tpm2b()));
    // command audit of GetRandom with SHA-256 as well
    ok(t.executeSync(authCmd(CC.SetCommandCodeAuditStatus, [OWNER], [[]], [...u16(TPM_ALG.SHA256), ...u32(0), ...u32(0)]), 0));
    ok(t.executeSync(authCmd(CC.SetCommandCodeAuditStatus, [OWNER], [[]], [...u16(TPM_ALG.SHA256), ...u32(1), ...u32(CC.GetRandom), ...u32(0)]), 0));
    const g0 = t.executeSync(authCmd(CC.GetCommandAuditDigest, [ENDORSEMENT, RH_NULL], [[], []], [...t2b([]), ...u16(TPM_ALG.NULL)]), 0);
    const a0 = unmarshalAttest(new TpmReader(ok(g0), 14, 14 + u32At(g0, 10)).tpm2b());
    if (a0.type !== TPM_ST.ATTEST_COMMAND_AUDIT) throw new Error("type");
    const s = new Session(t);
    s.start();
    s.getRandom(CONT | AUDIT);
    const d = sha256(cat(new Uint8Array(32), s.cp, s.rp));
    const g = sessionAudit(t, s.handle, key);
    expect(hex(g.digest!)).toBe(hex(d));
    const k = createPublicKey({ key: { kty: "RSA", n: Buffer.from(pub.unique as Uint8Array).toString("base64url"), e: "AQAB" }, format: "jwk" });
    expect(verify("sha256", g.bytes!, { key: k, padding: constants.RSA_PKCS1_PADDING }, g.sig!)).toBe(true);
    // the command audit digest took the same cpHash / rpHash (both SHA-256)
    const g1 = t.executeSync(authCmd(CC.GetCommandAuditDigest, [ENDORSEMENT, RH_NULL], [[], []], [...t2b([]), ...u16(TPM_ALG.NULL)]), 0);
    const a1 = unmarshalAttest(new TpmReader(ok(g1), 14, 14 + u32At(g1, 10)).tpm2b());
    if (a1.type !== TPM_ST.ATTEST_COMMAND_AUDIT) throw new Error("type");
    expect(hex(a1.attested.auditDigest)).toBe(hex(sha256(cat(a0.attested.auditDigest, s.cp, s.rp))));
  });

  it("forgets the digest of a session that ends: a new session in its slot is no audit session", () => {
    const t = startedTpm();
    const s = new Session(t);
    s.start();
    s.getRandom(AUDIT); // continueSession CLEAR: the session ends with this command
    const n = new Session(t);
    n.start();
    expect(n.handle).toBe(s.handle);
    expect(sessionAudit(t, n.handle).rc).toBe(0x38a);
    n.getRandom(CONT | AUDIT);
    ok(t.executeSync(cmd(0x8001, CC.FlushContext, u32(n.handle)), 0));
    const m = new Session(t);
    m.start();
    expect(m.handle).toBe(n.handle);
    expect(sessionAudit(t, m.handle).rc).toBe(0x38a);
  });
});
