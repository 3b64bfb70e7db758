/**
 * Command audit (TPM 2.0 Part 1 §32.2; Part 3 §21.2 TPM2_SetCommandCodeAuditStatus, §18.6
 * TPM2_GetCommandAuditDigest). Every digest is recomputed here from the bytes sent and received
 * (cpHash = H(commandCode ‖ Names ‖ parameters), rpHash = H(TPM_RC_SUCCESS ‖ commandCode ‖
 * parameters), digest = H(digest ‖ cpHash ‖ rpHash)). The response codes and sequences were
 * measured on swtpm 0.7.1 (the same commands; every code, counter and digest equal), except the three
 * tests that say they follow libtpms 0.9's source.
 */
import { describe, expect, it } from "vitest";
import { constants, createPublicKey, verify } from "node:crypto";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { TpmReader } from "../wire/buffer.js";
import { TPM_ALG, TPM_ST, TPMA_OBJECT } from "../wire/constants.js";
import { type TpmsAttest, unmarshalAttest } from "../wire/attest.js";
import { type TpmtPublic, marshalPublic, readPublic } from "../wire/structures.js";
import type { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, SHUTDOWN_STATE, STARTUP_CLEAR, authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

const OWNER = 0x40000001;
const LOCKOUT = 0x4000000a;
const ENDORSEMENT = 0x4000000b;
const PLATFORM = 0x4000000c;
const RH_NULL = 0x40000007;
const CC = { SetCommandCodeAuditStatus: 0x140, GetCommandAuditDigest: 0x133, GetRandom: 0x17b, GetCapability: 0x17a, Clear: 0x126, CreatePrimary: 0x131, Shutdown: 0x145 };
const cat = (...p: (Uint8Array | number[])[]) => Uint8Array.from(p.flatMap((x) => [...x]));
const tpml = (l: number[]) => [...u32(l.length), ...l.flatMap(u32)];

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}

/** The response parameters of a command with sessions (bounded by parameterSize). */
function params(r: Uint8Array, handle = false): Uint8Array {
  const at = 10 + (handle ? 4 : 0);
  return r.subarray(at + 4, at + 4 + u32At(r, at));
}

const setcc = (t: SoftTpm, alg: number, set: number[], clear: number[], h = OWNER) => t.executeSync(authCmd(CC.SetCommandCodeAuditStatus, [h], [[]], [...u16(alg), ...tpml(set), ...tpml(clear)]), 0);
const setccCp = (a: typeof sha256, alg: number, set: number[] = [], clear: number[] = []) => a(cat(u32(CC.SetCommandCodeAuditStatus), u32(OWNER), u16(alg), tpml(set), tpml(clear)));
const setccRp = (a: typeof sha256) => a(cat(u32(0), u32(CC.SetCommandCodeAuditStatus)));

/** GetCapability(TPM_CAP_AUDIT_COMMANDS): moreData and the listed codes. */
function auditList(t: SoftTpm, from = 0, count = 100): { more: number; codes: number[] } {
  const r = ok(t.executeSync(cmd(0x8001, CC.GetCapability, [...u32(4), ...u32(from), ...u32(count)]), 0));
  expect(u32At(r, 11)).toBe(4);
  const n = u32At(r, 15);
  return { more: r[10]!, codes: Array.from({ length: n }, (_, i) => u32At(r, 19 + 4 * i)) };
}

/** TPM_PT_AUDIT_COUNTER_0 (high) and _1 (low). */
function counterProps(t: SoftTpm): [number, number] {
  const r = ok(t.executeSync(cmd(0x8001, CC.GetCapability, [...u32(6), ...u32(0x213), ...u32(2)]), 0));
  expect([u32At(r, 15), u32At(r, 19), u32At(r, 27)]).toEqual([2, 0x213, 0x214]);
  return [u32At(r, 23), u32At(r, 31)];
}

interface Audit {
  bytes: Uint8Array;
  a: TpmsAttest;
  sigAlg: number;
  sig: Uint8Array;
  counter: bigint;
  alg: number;
  digest: Uint8Array;
  commandDigest: Uint8Array;
}

/** TPM2_GetCommandAuditDigest signed by `key` (TPM_RH_NULL: unsigned). */
function getCommandAuditDigest(t: SoftTpm, key = RH_NULL, qualifyingData: number[] = []): Audit {
  const r = ok(t.executeSync(authCmd(CC.GetCommandAuditDigest, [ENDORSEMENT, key], [[], []], [...t2b(qualifyingData), ...u16(TPM_ALG.NULL)]), 0));
  const rd = new TpmReader(params(r));
  const bytes = rd.tpm2b().slice();
  const sigAlg = rd.u16();
  let sig = new Uint8Array(0);
  if (sigAlg !== TPM_ALG.NULL) {
    rd.u16();
    sig = rd.tpm2b().slice();
  }
  expect(rd.remaining).toBe(0);
  const a = unmarshalAttest(bytes);
  expect(a.type).toBe(TPM_ST.ATTEST_COMMAND_AUDIT);
  if (a.type !== TPM_ST.ATTEST_COMMAND_AUDIT) throw new Error("type");
  const c = a.attested;
  return { bytes, a, sigAlg, sig, counter: c.auditCounter, alg: c.digestAlg, digest: c.auditDigest, commandDigest: c.commandDigest };
}

/** A restricted RSASSA-SHA256 signing primary (RSA-1024 keeps the test fast). */
function signer(t: SoftTpm): { h: number; pub: TpmtPublic; name: Uint8Array } {
  const A = TPMA_OBJECT;
  const tpl = marshalPublic({
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.RESTRICTED | A.SIGN_ENCRYPT,
    authPolicy: new Uint8Array(0),
    symmetric: { algorithm: TPM_ALG.NULL, keyBits: 0, mode: TPM_ALG.NULL },
    scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
    keyBits: 1024,
    exponent: 0,
    unique: new Uint8Array(0),
  });
  const r = ok(t.executeSync(authCmd(CC.CreatePrimary, [ENDORSEMENT], [[]], [...t2b([...t2b([]), ...t2b([])]), ...t2b(tpl), ...u16(0), ...u32(0)]), 0));
  const rd = new TpmReader(params(r, true));
  const pub = readPublic(new TpmReader(rd.tpm2b()));
  rd.tpm2b(); // creationData
  rd.tpm2b(); // creationHash
  rd.u16(); // creationTicket
  rd.u32();
  rd.tpm2b();
  return { h: u32At(r, 10), pub, name: rd.tpm2b().slice() };
}

function rsaVerifies(pub: TpmtPublic, data: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({ key: { kty: "RSA", n: Buffer.from(pub.unique as Uint8Array).toString("base64url"), e: "AQAB" }, format: "jwk" });
  return verify("sha256", data, { key, padding: constants.RSA_PKCS1_PADDING }, sig);
}

/** GetRandom(n) without sessions, and its cpHash / rpHash with `a`. */
function getRandom(t: SoftTpm, a: typeof sha256, n = 8): { cp: Uint8Array; rp: Uint8Array } {
  const r = ok(t.executeSync(cmd(0x8001, CC.GetRandom, u16(n)), 0));
  return { cp: a(cat(u32(CC.GetRandom), u16(n))), rp: a(cat(u32(0), u32(CC.GetRandom), r.subarray(10))) };
}

describe("command audit: TPM2_SetCommandCodeAuditStatus and TPM2_GetCommandAuditDigest", () => {
  it("starts with SetCommandCodeAuditStatus audited, SHA-512, counter 0 and an empty digest", () => {
    const t = startedTpm();
    expect(auditList(t)).toEqual({ more: 0, codes: [CC.SetCommandCodeAuditStatus] });
    expect(counterProps(t)).toEqual([0, 0]);
    const g = getCommandAuditDigest(t);
    expect(g.sigAlg).toBe(TPM_ALG.NULL);
    expect([g.counter, g.alg, g.digest.length]).toEqual([0n, TPM_ALG.SHA512, 0]);
    expect(hex(g.commandDigest)).toBe(hex(sha512(Uint8Array.from(u32(CC.SetCommandCodeAuditStatus)))));
  });

  it("changes the algorithm without auditing that command; the next audited command starts a digest and bumps the counter", () => {
    const t = startedTpm();
    ok(setcc(t, TPM_ALG.SHA256, [], []));
    expect(counterProps(t)).toEqual([0, 0]);
    let g = getCommandAuditDigest(t);
    expect([g.counter, g.alg, g.digest.length]).toEqual([0n, TPM_ALG.SHA256, 0]);
    expect(hex(g.commandDigest)).toBe(hex(sha256(Uint8Array.from(u32(0x140)))));
    // the same algorithm again: an ordinary audited command
    ok(setcc(t, TPM_ALG.SHA256, [], []));
    expect(counterProps(t)).toEqual([0, 1]);
    const d1 = sha256(cat(new Uint8Array(32), setccCp(sha256, TPM_ALG.SHA256), setccRp(sha256)));
    g = getCommandAuditDigest(t);
    expect(g.counter).toBe(1n);
    expect(hex(g.digest)).toBe(hex(d1));
    // an unsigned GetCommandAuditDigest leaves the digest as it is
    expect(hex(getCommandAuditDigest(t).digest)).toBe(hex(d1));
    // TPM_ALG_NULL keeps the algorithm
    ok(setcc(t, TPM_ALG.NULL, [], []));
    const d2 = sha256(cat(d1, setccCp(sha256, TPM_ALG.NULL), setccRp(sha256)));
    expect(hex(getCommandAuditDigest(t).digest)).toBe(hex(d2));
  });

  it("audits the listed commands that succeed, chains the digest and lists them in TPM_CAP_AUDIT_COMMANDS", () => {
    const t = startedTpm();
    ok(setcc(t, TPM_ALG.SHA256, [], []));
    ok(setcc(t, TPM_ALG.SHA256, [CC.GetRandom], []));
    let d = sha256(cat(new Uint8Array(32), setccCp(sha256, TPM_ALG.SHA256, [CC.GetRandom]), setccRp(sha256)));
    expect(auditList(t).codes).toEqual([0x140, 0x17b]);
    for (let i = 0; i < 3; i++) {
      const { cp, rp } = getRandom(t, sha256, 4 + i);
      d = sha256(cat(d, cp, rp));
    }
    // a failing GetRandom (trailing byte: TPM_RC_SIZE) is not audited
    expect(rcOf(t.executeSync(cmd(0x8001, CC.GetRandom, [...u16(4), 0]), 0))).toBe(0x95);
    const g = getCommandAuditDigest(t);
    expect(g.counter).toBe(1n);
    expect(hex(g.digest)).toBe(hex(d));
    expect(hex(g.commandDigest)).toBe(hex(sha256(cat(u32(0x140), u32(0x17b)))));
    // cleared again: the tpm2-tools commandaudit sequence
    ok(setcc(t, TPM_ALG.SHA256, [], [CC.GetRandom]));
    expect(auditList(t).codes).toEqual([0x140]);
    expect(hex(getCommandAuditDigest(t).commandDigest)).toBe(hex(sha256(Uint8Array.from(u32(0x140)))));
  });

  it("a signed GetCommandAuditDigest verifies and empties the digest; the next audited command bumps the counter", () => {
    // libtpms 0.9 TPM2_GetCommandAuditDigest: the digest is emptied when signHandle is not TPM_RH_NULL
    const t = startedTpm();
    const k = signer(t);
    ok(setcc(t, TPM_ALG.SHA256, [], []));
    ok(setcc(t, TPM_ALG.SHA256, [], []));
    const d1 = sha256(cat(new Uint8Array(32), setccCp(sha256, TPM_ALG.SHA256), setccRp(sha256)));
    const g = getCommandAuditDigest(t, k.h, [1, 2, 3]);
    expect([g.sigAlg, g.counter]).toEqual([TPM_ALG.RSASSA, 1n]);
    expect(hex(g.digest)).toBe(hex(d1));
    expect([...g.a.extraData]).toEqual([1, 2, 3]);
    expect(rsaVerifies(k.pub, g.bytes, g.sig)).toBe(true);
    const bad = g.bytes.slice();
    bad[bad.length - 1]! ^= 1;
    expect(rsaVerifies(k.pub, bad, g.sig)).toBe(false);
    const g2 = getCommandAuditDigest(t);
    expect([g2.counter, g2.digest.length]).toEqual([1n, 0]);
    ok(setcc(t, TPM_ALG.SHA256, [], []));
    const g3 = getCommandAuditDigest(t);
    expect(g3.counter).toBe(2n);
    expect(hex(g3.digest)).toBe(hex(d1)); // the same command again, from zeros
    expect(counterProps(t)).toEqual([0, 2]);
  });

  it("audits GetCommandAuditDigest itself after it reads the digest", () => {
    // libtpms 0.9 BuildResponseSession: CommandAudit runs after the command's action emptied the digest
    const t = startedTpm();
    const k = signer(t);
    ok(setcc(t, TPM_ALG.SHA256, [], []));
    ok(setcc(t, TPM_ALG.SHA256, [CC.GetCommandAuditDigest], []));
    const d0 = sha256(cat(new Uint8Array(32), setccCp(sha256, TPM_ALG.SHA256, [CC.GetCommandAuditDigest]), setccRp(sha256)));
    // signed: the digest read is d0, then emptied, then this command starts a new one (counter 2)
    const qd = [9];
    const r = ok(t.executeSync(authCmd(CC.GetCommandAuditDigest, [ENDORSEMENT, k.h], [[], []], [...t2b(qd), ...u16(TPM_ALG.NULL)]), 0));
    const a = unmarshalAttest(new TpmReader(params(r)).tpm2b());
    if (a.type !== TPM_ST.ATTEST_COMMAND_AUDIT) throw new Error("type");
    expect(hex(a.attested.auditDigest)).toBe(hex(d0));
    const cp = sha256(cat(u32(CC.GetCommandAuditDigest), u32(ENDORSEMENT), k.name, t2b(qd), u16(TPM_ALG.NULL)));
    const rp = sha256(cat(u32(0), u32(CC.GetCommandAuditDigest), params(r)));
    const g = getCommandAuditDigest(t);
    expect(g.counter).toBe(2n);
    expect(hex(g.digest)).toBe(hex(sha256(cat(new Uint8Array(32), cp, rp))));
  });

  it("ignores Shutdown, unimplemented and vendor codes in setList and SetCommandCodeAuditStatus in clearList", () => {
    const t = startedTpm();
    ok(setcc(t, TPM_ALG.NULL, [CC.Shutdown, 0x1ff, 0x2000017b, CC.GetRandom, CC.GetCommandAuditDigest, 0x20000001, CC.GetCapability], [CC.SetCommandCodeAuditStatus]));
    expect(auditList(t).codes).toEqual([0x133, 0x140, 0x17a, 0x17b]);
    // paging as libtpms: from 0x134, one entry, more to come
    expect(auditList(t, 0x134, 1)).toEqual({ more: 1, codes: [0x140] });
    expect(auditList(t, 0, 0)).toEqual({ more: 1, codes: [] });
    expect(auditList(t, 0x17c)).toEqual({ more: 0, codes: [] });
  });

  it("gives swtpm's response codes for bad parameters and handles", () => {
    const t = startedTpm();
    expect(rcOf(setcc(t, TPM_ALG.SHA384, [CC.GetRandom], []))).toBe(0x1c4); // TPM_RC_VALUE + P1: algorithm and list at once
    expect(rcOf(setcc(t, 0x0012, [], []))).toBe(0x1c3); // TPM_RC_HASH + P1 (SM3: not implemented)
    expect(rcOf(setcc(t, TPM_ALG.RSA, [], []))).toBe(0x1c3);
    expect(rcOf(setcc(t, TPM_ALG.SHA256, [], [], ENDORSEMENT))).toBe(0x184); // TPM_RC_VALUE + H1
    expect(rcOf(setcc(t, TPM_ALG.SHA256, [], [], LOCKOUT))).toBe(0x184);
    const raw = (p: number[]) => rcOf(t.executeSync(authCmd(CC.SetCommandCodeAuditStatus, [OWNER], [[]], p), 0));
    expect(raw([...u16(TPM_ALG.SHA256), ...u32(255)])).toBe(0x2d5); // TPM_RC_SIZE + P2
    expect(raw([...u16(TPM_ALG.SHA256), ...u32(0), ...u32(255)])).toBe(0x3d5); // TPM_RC_SIZE + P3
    expect(raw([...u16(TPM_ALG.SHA256), ...u32(254)])).toBe(0x2da); // TPM_RC_INSUFFICIENT + P2
    expect(raw([...u16(TPM_ALG.SHA256), ...u32(0), ...u32(0), 0])).toBe(0x95); // TPM_RC_SIZE
    // nothing changed by the refused commands
    const g = getCommandAuditDigest(t);
    expect([g.alg, g.counter, g.digest.length]).toEqual([TPM_ALG.SHA512, 0n, 0]);
    ok(setcc(t, TPM_ALG.SHA256, [], [], PLATFORM));
    expect(getCommandAuditDigest(t).alg).toBe(TPM_ALG.SHA256);
    // a disabled owner hierarchy (HierarchyControl): TPM_RC_HIERARCHY + H1, before the parameters
    ok(t.executeSync(authCmd(0x121, [PLATFORM], [[]], [...u32(OWNER), 0]), 0));
    expect(rcOf(setcc(t, TPM_ALG.SHA256, [], []))).toBe(0x185);
    expect(rcOf(setcc(t, 0x0012, [], []))).toBe(0x185);
  });

  it("TPM2_Clear zeroes the counter and keeps the list and the digest", () => {
    const t = startedTpm();
    ok(setcc(t, TPM_ALG.NULL, [CC.GetRandom], []));
    expect(counterProps(t)).toEqual([0, 1]);
    const before = getCommandAuditDigest(t).digest;
    ok(t.executeSync(authCmd(CC.Clear, [LOCKOUT], [[]]), 0));
    expect(counterProps(t)).toEqual([0, 0]);
    expect(auditList(t).codes).toEqual([0x140, 0x17b]);
    expect(hex(getCommandAuditDigest(t).digest)).toBe(hex(before));
  });

  it("TPM Reset empties the digest, TPM Restart keeps it", async () => {
    // libtpms 0.9 CommandAuditStartup: the digest is emptied unless the Startup is a Restart or Resume
    const t = startedTpm();
    ok(setcc(t, TPM_ALG.NULL, [], []));
    const d = getCommandAuditDigest(t).digest;
    expect(d.length).toBe(64);
    ok(t.executeSync(SHUTDOWN_STATE, 0));
    await t.powerOff();
    await t.powerOn();
    ok(t.executeSync(STARTUP_CLEAR, 0)); // TPM Restart
    expect(hex(getCommandAuditDigest(t).digest)).toBe(hex(d));
    ok(t.executeSync(SHUTDOWN_CLEAR, 0));
    await t.powerOff();
    await t.powerOn();
    ok(t.executeSync(STARTUP_CLEAR, 0)); // TPM Reset
    const g = getCommandAuditDigest(t);
    expect([g.digest.length, g.counter]).toEqual([0, 1n]);
  });
});
