/**
 * SoftTpm's TPM2_PolicyTicket, TPM2_PolicyCounterTimer, TPM2_PolicyDuplicationSelect and
 * TPM2_PolicyAuthorizeNV (TPM 2.0 Part 3 §23.5, §23.10, §23.15, §23.22), the tickets of
 * TPM2_PolicySigned / TPM2_PolicySecret and their cpHashA. Every response code here was measured on
 * swtpm 0.7.1 (libtpms 0.9) with the same command bytes, unless a comment says otherwise.
 */
import { describe, expect, it } from "vitest";
import { generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Clock } from "../core/clock.js";
import { policy, TPM_EO } from "../client/policy.js";
import { TPM_CC } from "../wire/constants.js";
import { SoftTpm } from "./softtpm.js";
import { SHUTDOWN_CLEAR, STARTUP_CLEAR, authCmd, cmd, hex, nvPublic, rcOf, t2b, u16, u32, u32At } from "./test-helpers.js";

const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const ENDORSEMENT = 0x4000000b;
const SE_POLICY = 0x01;
const SE_TRIAL = 0x03;
const NV = 0x01500001;
// TPMA_NV bits (Part 2 §13.4)
const AUTHWRITE = 0x4;
const POLICYWRITE = 0x8;
const OWNERREAD = 0x20000;
const AUTHREAD = 0x40000;
const NO_DA = 0x02000000;
const READ_STCLEAR = 0x80000000;
const ZERO32 = new Uint8Array(32);
const cat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const H = (...parts: (Uint8Array | number[])[]) => sha256(cat(...parts));

/** A clock the test moves by hand (ms). */
function handClock(start = 0): Clock & { ms: number } {
  return { ms: start, now() { return this.ms; }, sleep: async () => {}, setTimer: () => ({ clear() {} }) };
}

function tpmWith(clock: Clock): SoftTpm {
  const t = new SoftTpm({ seed: "policy-more", clock });
  expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0);
  return t;
}

/** A policy or trial session with SHA-256 and no symmetric algorithm. */
class Session {
  handle = 0;
  nonceTPM: number[] = [];
  constructor(readonly tpm: SoftTpm, type: number) {
    const r = tpm.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(0x22)), ...u16(0), type, ...u16(0x10), ...u16(0x0b)]), 0);
    expect(rcOf(r)).toBe(0);
    this.handle = u32At(r, 10);
    this.nonceTPM = [...r.slice(16, 16 + ((r[14]! << 8) | r[15]!))];
  }
  run(cc: number, params: number[] = []): Uint8Array {
    return this.tpm.executeSync(cmd(0x8001, cc, [...u32(this.handle), ...params]), 0);
  }
  digest(): string {
    const r = this.run(TPM_CC.PolicyGetDigest);
    expect(rcOf(r)).toBe(0);
    return hex(r.subarray(12, 12 + ((r[10]! << 8) | r[11]!)));
  }
  /** PolicySecret with OWNER (empty password). */
  secret(nonce: number[], cpHashA: number[], expiration: number, policyRef: number[] = []): Uint8Array {
    return this.tpm.executeSync(authCmd(TPM_CC.PolicySecret, [OWNER, this.handle], [[]], [...t2b(nonce), ...t2b(cpHashA), ...t2b(policyRef), ...u32(expiration >>> 0)]), 0);
  }
  ticket(timeout: number[], cpHashA: number[], policyRef: number[], authName: number[], tag: number, hierarchy: number, digest: number[]): Uint8Array {
    return this.run(TPM_CC.PolicyTicket, [...t2b(timeout), ...t2b(cpHashA), ...t2b(policyRef), ...t2b(authName), ...u16(tag), ...u32(hierarchy), ...t2b(digest)]);
  }
  /** This session in an authorization area, with an empty HMAC (an unbound, unsalted session's key is empty). */
  area(): number[] {
    const s = [...u32(this.handle), ...t2b(new Array(16).fill(0x33)), 1, ...u16(0)];
    return [...u32(s.length), ...s];
  }
  flush(): void {
    expect(rcOf(this.tpm.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(this.handle)), 0))).toBe(0);
  }
}

/** The parameters of a response (after the parameterSize of a response with sessions). */
function paramsOf(r: Uint8Array): Uint8Array {
  if (r[1] !== 0x02) return r.subarray(10);
  return r.subarray(14, 14 + u32At(r, 10));
}

/** timeout and policyTicket of a PolicySigned / PolicySecret response. */
function ticketOf(r: Uint8Array): { timeout: number[]; tag: number; hierarchy: number; digest: number[] } {
  let p = r[1] === 0x02 ? 14 : 10;
  const tl = (r[p]! << 8) | r[p + 1]!;
  const timeout = [...r.subarray(p + 2, p + 2 + tl)];
  p += 2 + tl;
  const dl = (r[p + 6]! << 8) | r[p + 7]!;
  return { timeout, tag: (r[p]! << 8) | r[p + 1]!, hierarchy: u32At(r, p + 2), digest: [...r.subarray(p + 8, p + 8 + dl)] };
}

const u64 = (v: bigint): number[] => [...u32(Number(v >> 32n) >>> 0), ...u32(Number(v & 0xffffffffn))];

function defineNv(t: SoftTpm, index: number, attrs: number, size: number, auth: number[] = [], authPolicy: number[] = []): void {
  expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_DefineSpace, [OWNER], [[]], [...t2b(auth), ...nvPublic(index, attrs, size, 0x0b, authPolicy)]), 0))).toBe(0);
}

function nvWrite(t: SoftTpm, auth: number, index: number, data: number[], pw: number[] = []): number {
  return rcOf(t.executeSync(authCmd(TPM_CC.NV_Write, [auth, index], [pw], [...t2b(data), ...u16(0)]), 0));
}

function nvName(t: SoftTpm, index: number): Uint8Array {
  const r = t.executeSync(cmd(0x8001, TPM_CC.NV_ReadPublic, u32(index)), 0);
  expect(rcOf(r)).toBe(0);
  const at = 12 + ((r[10]! << 8) | r[11]!);
  return r.slice(at + 2, at + 2 + ((r[at]! << 8) | r[at + 1]!));
}

describe("TPM2_PolicyCounterTimer (Part 3 §23.10)", () => {
  const pct = (s: Session, operandB: number[], offset: number, operation: number) => rcOf(s.run(TPM_CC.PolicyCounterTimer, [...t2b(operandB), ...u16(offset), ...u16(operation)]));

  it("a trial session extends H(old ‖ TPM_CC ‖ H(operandB ‖ offset ‖ operation)) without comparing", () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_TRIAL);
    const operandB = [0, 0, 0, 0, 0, 0, 0xea, 0x60]; // 60000 ms
    expect(pct(s, operandB, 0, TPM_EO.UNSIGNED_LT)).toBe(0);
    expect(s.digest()).toBe(hex(H(ZERO32, u32(TPM_CC.PolicyCounterTimer), H(operandB, u16(0), u16(5)))));
    // the same as tpm2-tools computes in abrmd_policycountertimer, and as the offline calculator
    expect(s.digest()).toBe("7f48cceb9fae31e1662d7f8306fdd1c4f81d2b8d3b0e9d82fdec42949ad5257e");
    expect(s.digest()).toBe(policy().counterTimer(Uint8Array.from(operandB), 0, TPM_EO.UNSIGNED_LT).hex);
  });

  it("checks operation, offset and range even in a trial session: TPM_RC_VALUE + P3, TPM_RC_VALUE + P2, TPM_RC_RANGE", () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_TRIAL);
    expect(pct(s, [1], 0, 0x0c)).toBe(0x3c4);
    expect(pct(s, [], 26, 0x0c)).toBe(0x3c4); // the operation first: it is unmarshalled
    expect(pct(s, [], 26, 0)).toBe(0x2c4);
    expect(pct(s, [1], 25, 0)).toBe(0x08d); // TPM_RC_RANGE without a parameter number
    expect(pct(s, new Array(8).fill(0), 20, 0)).toBe(0x08d);
    expect(pct(s, new Array(64).fill(0), 0, 0)).toBe(0x08d);
    expect(pct(s, new Array(65).fill(0), 0, 0)).toBe(0x1d5); // TPM2B_OPERAND: TPM_RC_SIZE + P1
    expect(s.digest()).toBe("00".repeat(32)); // nothing extended by a failed assertion
    expect(pct(s, [], 25, 0)).toBe(0); // an empty operand at the end of TPMS_TIME_INFO
  });

  it("a policy session compares TPMS_TIME_INFO (time, clock, resetCount, restartCount, safe): TPM_RC_POLICY when it does not hold", () => {
    const clock = handClock(5000);
    const t = tpmWith(clock);
    const s = new Session(t, SE_POLICY);
    const max = [0x7f, 0, 0, 0, 0, 0, 0, 0];
    expect(pct(s, max, 0, TPM_EO.UNSIGNED_LT)).toBe(0);
    expect(pct(s, max, 0, TPM_EO.UNSIGNED_GT)).toBe(0x126);
    expect(pct(s, [0x80, 0, 0, 0, 0, 0, 0, 0], 0, TPM_EO.SIGNED_GT)).toBe(0); // signed: 0x80… is negative
    expect(pct(s, new Array(8).fill(0), 8, TPM_EO.UNSIGNED_GE)).toBe(0);
    expect(pct(s, [1], 24, TPM_EO.EQ)).toBe(0); // safe
    expect(pct(s, [0], 24, TPM_EO.EQ)).toBe(0x126);
    expect(pct(s, [0, 0, 0, 0], 20, TPM_EO.EQ)).toBe(0); // restartCount
    expect(pct(s, [], 3, TPM_EO.NEQ)).toBe(0x126); // an empty operand equals anything
    expect(pct(s, [], 3, TPM_EO.EQ)).toBe(0);
    expect(pct(s, [0], 7, TPM_EO.BITSET)).toBe(0);
    expect(pct(s, [0xff], 16, TPM_EO.BITCLEAR)).toBe(0); // resetCount 0 here
    // time counts from power-on: "time > 1 s" holds only once a second has passed
    const over1s = [0, 0, 0, 0, 0, 0, 0x03, 0xe8];
    expect(pct(s, over1s, 0, TPM_EO.UNSIGNED_GT)).toBe(0x126);
    clock.ms += 1001;
    expect(pct(s, over1s, 0, TPM_EO.UNSIGNED_GT)).toBe(0);
  });

  it("a sealed object's policy of PolicyCounterTimer unseals while it holds (abrmd_policycountertimer)", () => {
    const clock = handClock();
    const t = tpmWith(clock);
    const operandB = [0, 0, 0, 0, 0, 0, 0xea, 0x60];
    const authPolicy = [...H(ZERO32, u32(TPM_CC.PolicyCounterTimer), H(operandB, u16(0), u16(TPM_EO.UNSIGNED_LT)))];
    defineNv(t, NV, POLICYWRITE | AUTHREAD | NO_DA, 8, [], authPolicy);
    const write = (s: Session) => rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...s.area(), ...t2b([1]), ...u16(0)]), 0));
    const s = new Session(t, SE_POLICY);
    expect(pct(s, operandB, 0, TPM_EO.UNSIGNED_LT)).toBe(0);
    expect(write(s)).toBe(0);
    s.flush();
    clock.ms += 60_000; // time is now 60 s: "time < 60000" no longer holds
    const s2 = new Session(t, SE_POLICY);
    expect(pct(s2, operandB, 0, TPM_EO.UNSIGNED_LT)).toBe(0x126);
  });
});

describe("tickets of TPM2_PolicySecret and TPM2_PolicySigned, redeemed by TPM2_PolicyTicket (Part 3 §23.3–§23.5)", () => {
  it("PolicySecret with nonceTPM and expiration -500 gives a timeout 500 s after the session's start and an AUTH_SECRET ticket in the owner hierarchy", () => {
    const clock = handClock();
    const t = tpmWith(clock);
    clock.ms = 3000;
    const s = new Session(t, SE_POLICY);
    const r = s.secret(s.nonceTPM, [], -500);
    expect(rcOf(r)).toBe(0);
    const tk = ticketOf(r);
    expect(hex(Uint8Array.from(tk.timeout))).toBe(hex(Uint8Array.from(u64(3000n + 500_000n))));
    expect(tk.tag).toBe(0x8023);
    expect(tk.hierarchy).toBe(OWNER);
    expect(tk.digest.length).toBe(64); // as swtpm 0.7.1 (SHA-512 HMAC)
    // expiration 0, or positive, gives no ticket: an empty timeout and a NULL ticket
    expect(hex(paramsOf(s.secret(s.nonceTPM, [], 0)))).toBe("0000" + "8023" + "40000007" + "0000");
    expect(hex(paramsOf(s.secret(s.nonceTPM, [], 100)))).toBe("0000" + "8023" + "40000007" + "0000");
    // a trial session gives none either
    const tr = new Session(t, SE_TRIAL);
    expect(hex(paramsOf(tr.secret([], [], -500)))).toBe("0000" + "8023" + "40000007" + "0000");
  });

  it("without nonceTPM the expiration is an absolute time (seconds since power-on), the ticket's timeout carries bit 63, and a time already past is TPM_RC_EXPIRED + P4", () => {
    const clock = handClock();
    const t = tpmWith(clock);
    clock.ms = 2345;
    const s = new Session(t, SE_POLICY);
    const r = s.secret([], [], -500);
    expect(rcOf(r)).toBe(0);
    // 500 s plus the current time's milliseconds (libtpms ComputeAuthTimeout; swtpm answered 0x800000000007a4ed at time 34.973 s)
    expect(hex(Uint8Array.from(ticketOf(r).timeout))).toBe(hex(Uint8Array.from(u64((1n << 63n) | 500_345n))));
    expect(rcOf(s.secret([], [], -1))).toBe(0x4e3);
    expect(rcOf(s.secret([], [], 1))).toBe(0x4e3);
    expect(rcOf(s.secret([], [], 2))).toBe(0); // 2.345 s: exactly now, not yet past
  });

  it("the ticket's hierarchy is the entity's: ENDORSEMENT and PLATFORM their own, LOCKOUT the owner's", () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_POLICY);
    const hierarchyOf = (auth: number) => {
      const r = t.executeSync(authCmd(TPM_CC.PolicySecret, [auth, s.handle], [[]], [...t2b(s.nonceTPM), ...u16(0), ...u16(0), ...u32(-10 >>> 0)]), 0);
      expect(rcOf(r)).toBe(0);
      return ticketOf(r).hierarchy;
    };
    expect([ENDORSEMENT, 0x4000000c, 0x4000000a].map(hierarchyOf)).toEqual([ENDORSEMENT, 0x4000000c, OWNER]);
  });

  it("a trial session checks neither nonceTPM nor cpHashA, but keeps the cpHashA (a different PolicyCpHash is then TPM_RC_CPHASH)", () => {
    const t = tpmWith(handClock());
    const tr = new Session(t, SE_TRIAL);
    expect(rcOf(tr.secret(new Array(16).fill(9), [], 0))).toBe(0);
    expect(rcOf(tr.secret([], [1, 2, 3, 4, 5], 0))).toBe(0);
    expect(rcOf(tr.run(TPM_CC.PolicyCpHash, t2b(new Array(32).fill(0xa))))).toBe(0x151);
    const s = new Session(t, SE_POLICY);
    expect(rcOf(s.secret(new Array(16).fill(9), [], 0))).toBe(0x1cf); // TPM_RC_NONCE + P1
  });

  it("PolicyTicket takes the ticket in place of PolicySecret: the same digest, in any later session, more than once", () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_POLICY);
    const ref = [7, 7];
    const tk = ticketOf(s.secret(s.nonceTPM, [], -500, ref));
    const want = s.digest();
    expect(want).toBe(policy().secret(Uint8Array.from(u32(OWNER)), Uint8Array.from(ref)).hex);
    s.flush();
    const p = new Session(t, SE_POLICY);
    expect(rcOf(p.ticket(tk.timeout, [], ref, u32(OWNER), tk.tag, tk.hierarchy, tk.digest))).toBe(0);
    expect(p.digest()).toBe(want);
    const p2 = new Session(t, SE_POLICY);
    expect(rcOf(p2.ticket(tk.timeout, [], ref, u32(OWNER), tk.tag, tk.hierarchy, tk.digest))).toBe(0);
    expect(p2.digest()).toBe(want);
  });

  it("refuses a trial session (TPM_RC_ATTRIBUTES + H1) and a bad timeout, tag, hierarchy, name, cpHashA or ticket with swtpm's codes", () => {
    const clock = handClock();
    const t = tpmWith(clock);
    const s = new Session(t, SE_POLICY);
    const tk = ticketOf(s.secret(s.nonceTPM, [], -500));
    clock.ms += 10;
    const tr = new Session(t, SE_TRIAL);
    expect(rcOf(tr.ticket(tk.timeout, [], [], u32(OWNER), tk.tag, tk.hierarchy, tk.digest))).toBe(0x182);
    const p = new Session(t, SE_POLICY);
    const go = (over: Partial<{ timeout: number[]; cp: number[]; name: number[]; tag: number; hierarchy: number; digest: number[] }>) =>
      rcOf(p.ticket(over.timeout ?? tk.timeout, over.cp ?? [], [], over.name ?? u32(OWNER), over.tag ?? tk.tag, over.hierarchy ?? tk.hierarchy, over.digest ?? tk.digest));
    expect(go({ timeout: tk.timeout.slice(1) })).toBe(0x1d5); // TPM_RC_SIZE + P1
    expect(go({ timeout: [0, ...tk.timeout] })).toBe(0x1d5);
    expect(go({ tag: 0x8022 })).toBe(0x5d7); // TPM_ST_VERIFIED: TPM_RC_TAG + P5
    expect(go({ hierarchy: 0x40000002 })).toBe(0x5c4); // not a hierarchy: TPM_RC_VALUE + P5
    expect(go({ hierarchy: ENDORSEMENT })).toBe(0x5e0); // TPM_RC_TICKET + P5
    expect(go({ tag: 0x8025 })).toBe(0x5e0);
    expect(go({ digest: tk.digest.map((v, i) => (i === 0 ? v ^ 1 : v)) })).toBe(0x5e0);
    expect(go({ digest: new Array(65).fill(0) })).toBe(0x5d5);
    expect(go({ cp: [1, 2, 3, 4, 5] })).toBe(0x2d5);
    expect(go({ name: new Array(68).fill(0) })).toBe(0x5e0);
    expect(go({ name: new Array(69).fill(0) })).toBe(0x4d5); // TPM2B_NAME holds 68 bytes
    expect(go({ timeout: new Array(8).fill(0) })).toBe(0x5e0);
    expect(go({ timeout: [0, 0, 0, 0, 0, 0, 0, 1] })).toBe(0x1e3); // past: TPM_RC_EXPIRED + P1
    expect(p.digest()).toBe("00".repeat(32));
    expect(go({})).toBe(0);
  });

  it("a ticket expires with its timeout (TPM_RC_EXPIRED + P1), and so does the session it went into (TPM_RC_EXPIRED + S1)", () => {
    const clock = handClock();
    const t = tpmWith(clock);
    const authPolicy = [...policy().secret(Uint8Array.from(u32(OWNER))).digest];
    defineNv(t, NV, POLICYWRITE | AUTHREAD | NO_DA, 8, [], authPolicy);
    const s = new Session(t, SE_POLICY);
    const tk = ticketOf(s.secret(s.nonceTPM, [], -2));
    s.flush();
    const p = new Session(t, SE_POLICY);
    expect(rcOf(p.ticket(tk.timeout, [], [], u32(OWNER), tk.tag, tk.hierarchy, tk.digest))).toBe(0);
    clock.ms += 2500;
    const write = rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...p.area(), ...t2b([1]), ...u16(0)]), 0));
    expect(write).toBe(0x9a3);
    const p2 = new Session(t, SE_POLICY);
    expect(rcOf(p2.ticket(tk.timeout, [], [], u32(OWNER), tk.tag, tk.hierarchy, tk.digest))).toBe(0x1e3);
  });

  it("a ticket made without nonceTPM ends at TPM Reset; one made with it does not (libtpms Ticket.c: totalResetCount in the HMAC)", async () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_POLICY);
    const withNonce = ticketOf(s.secret(s.nonceTPM, [], -500));
    const without = ticketOf(s.secret([], [], -500));
    expect(rcOf(t.executeSync(SHUTDOWN_CLEAR, 0))).toBe(0);
    await t.powerOff();
    await t.powerOn();
    expect(rcOf(t.executeSync(STARTUP_CLEAR, 0))).toBe(0); // a TPM Reset
    const p = new Session(t, SE_POLICY);
    expect(rcOf(p.ticket(without.timeout, [], [], u32(OWNER), without.tag, without.hierarchy, without.digest))).toBe(0x5e0);
    expect(rcOf(p.ticket(withNonce.timeout, [], [], u32(OWNER), withNonce.tag, withNonce.hierarchy, withNonce.digest))).toBe(0);
  });

  it("PolicySigned with expiration < 0 gives an AUTH_SIGNED ticket in the key's hierarchy, redeemable by PolicyTicket (abrmd_policyticket)", () => {
    const t = tpmWith(handClock());
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const n = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
    const publicArea = [...u16(0x0001), ...u16(0x000b), ...u32(0x00040440), ...u16(0), ...u16(0x0010), ...u16(0x0014), ...u16(0x000b), ...u16(2048), ...u32(0), ...t2b([...n])];
    const name = [0x00, 0x0b, ...H(publicArea)];
    const lr = t.executeSync(cmd(0x8001, TPM_CC.LoadExternal, [...u16(0), ...t2b(publicArea), ...u32(OWNER)]), 0);
    expect(rcOf(lr)).toBe(0);
    const s = new Session(t, SE_POLICY);
    const exp = -500;
    const sig = cryptoSign("sha256", cat(s.nonceTPM, u32(exp >>> 0)), privateKey);
    const r = t.executeSync(cmd(0x8001, TPM_CC.PolicySigned, [...u32(u32At(lr, 10)), ...u32(s.handle), ...t2b(s.nonceTPM), ...u16(0), ...u16(0), ...u32(exp >>> 0), ...u16(0x0014), ...u16(0x000b), ...t2b([...sig])]), 0);
    expect(rcOf(r)).toBe(0);
    const tk = ticketOf(r);
    expect(tk.tag).toBe(0x8025);
    expect(tk.hierarchy).toBe(OWNER);
    const p = new Session(t, SE_POLICY);
    expect(rcOf(p.ticket(tk.timeout, [], [], name, tk.tag, tk.hierarchy, tk.digest))).toBe(0);
    expect(p.digest()).toBe(policy().signed(Uint8Array.from(name)).hex);
    expect(rcOf(p.ticket(tk.timeout, [], [], name, 0x8023, tk.hierarchy, tk.digest))).toBe(0x5e0); // not a PolicySecret ticket
  });
});

describe("cpHashA of PolicySecret / PolicyTicket (reference code PolicyParameterChecks, PolicyContextUpdate)", () => {
  it("sets the session's cpHash: a different one later is TPM_RC_CPHASH, as is a different one after PolicyNameHash", () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_POLICY);
    const a = new Array(32).fill(0xa);
    const b = new Array(32).fill(0xb);
    expect(rcOf(s.secret([], [1, 2, 3, 4, 5], 0))).toBe(0x2d5); // TPM_RC_SIZE + P2
    expect(rcOf(s.secret([], a, 0))).toBe(0);
    expect(rcOf(s.secret([], b, 0))).toBe(0x151);
    expect(rcOf(s.run(TPM_CC.PolicyCpHash, t2b(b)))).toBe(0x151);
    expect(rcOf(s.run(TPM_CC.PolicyCpHash, t2b(a)))).toBe(0);
    const n = new Session(t, SE_POLICY);
    expect(rcOf(n.run(TPM_CC.PolicyNameHash, t2b(a)))).toBe(0);
    expect(rcOf(n.secret([], a, 0))).toBe(0);
    expect(rcOf(n.secret([], b, 0))).toBe(0x151);
  });

  it("the command authorized must have that cpHash (TPM_RC_POLICY_FAIL + S1)", () => {
    const t = tpmWith(handClock());
    const authPolicy = [...policy().secret(Uint8Array.from(u32(OWNER))).digest];
    defineNv(t, NV, POLICYWRITE | AUTHREAD | NO_DA, 8, [], authPolicy);
    const name = nvName(t, NV);
    const params = [...t2b([1]), ...u16(0)];
    const cpHash = [...H(u32(TPM_CC.NV_Write), name, name, params)];
    const write = (s: Session, data: number[]) => rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(NV), ...u32(NV), ...s.area(), ...t2b(data), ...u16(0)]), 0));
    const s = new Session(t, SE_POLICY);
    expect(rcOf(s.secret([], cpHash, 0))).toBe(0);
    expect(write(s, [2])).toBe(0x99d);
    const s2 = new Session(t, SE_POLICY);
    expect(rcOf(s2.secret([], cpHash, 0))).toBe(0);
    expect(write(s2, [1])).toBe(0);
  });
});

describe("TPM2_PolicyDuplicationSelect (Part 3 §23.15)", () => {
  const objectName = [0, 0x0b, ...new Array(32).fill(1)];
  const parentName = [0, 0x0b, ...new Array(32).fill(2)];
  const dupSel = (s: Session, o: number[], np: number[], include: number) => rcOf(s.run(TPM_CC.PolicyDuplicationSelect, [...t2b(o), ...t2b(np), include]));

  it("extends H(old ‖ TPM_CC ‖ [objectName] ‖ newParentName ‖ includeObject), objectName only with YES", () => {
    const t = tpmWith(handClock());
    const no = new Session(t, SE_TRIAL);
    expect(dupSel(no, objectName, parentName, 0)).toBe(0);
    expect(no.digest()).toBe(hex(H(ZERO32, u32(TPM_CC.PolicyDuplicationSelect), parentName, [0])));
    expect(no.digest()).toBe(policy().duplicationSelect(Uint8Array.from(objectName), Uint8Array.from(parentName), false).hex);
    const yes = new Session(t, SE_TRIAL);
    expect(dupSel(yes, objectName, parentName, 1)).toBe(0);
    expect(yes.digest()).toBe(hex(H(ZERO32, u32(TPM_CC.PolicyDuplicationSelect), objectName, parentName, [1])));
    expect(yes.digest()).toBe(policy().duplicationSelect(Uint8Array.from(objectName), Uint8Array.from(parentName), true).hex);
    const empty = new Session(t, SE_POLICY);
    expect(dupSel(empty, [], [], 0)).toBe(0);
  });

  it("includeObject is a TPMI_YES_NO (TPM_RC_VALUE + P3), a Name holds 68 bytes (TPM_RC_SIZE + P1)", () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_TRIAL);
    expect(dupSel(s, objectName, parentName, 2)).toBe(0x3c4);
    expect(dupSel(s, new Array(69).fill(0), parentName, 0)).toBe(0x1d5);
    expect(dupSel(s, objectName, new Array(69).fill(0), 0)).toBe(0x2d5);
    expect(dupSel(s, new Array(68).fill(0), parentName, 0)).toBe(0);
  });

  it("sets the nameHash and the command code TPM2_Duplicate: a second one is TPM_RC_CPHASH, a command code set before TPM_RC_COMMAND_CODE", () => {
    const t = tpmWith(handClock());
    const s = new Session(t, SE_TRIAL);
    expect(dupSel(s, objectName, parentName, 0)).toBe(0);
    expect(dupSel(s, objectName, parentName, 0)).toBe(0x151);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.Duplicate)))).toBe(0);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.Unseal)))).toBe(0x1c4);
    expect(rcOf(s.run(TPM_CC.PolicyNameHash, t2b(new Array(32).fill(0xa))))).toBe(0x151);
    const c = new Session(t, SE_POLICY);
    expect(rcOf(c.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.Unseal)))).toBe(0);
    expect(dupSel(c, objectName, parentName, 0)).toBe(0x143);
    const both = new Session(t, SE_POLICY);
    expect(rcOf(both.run(TPM_CC.PolicyCpHash, t2b(new Array(32).fill(0xa))))).toBe(0);
    expect(rcOf(both.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.Unseal)))).toBe(0);
    expect(dupSel(both, objectName, parentName, 0)).toBe(0x151); // the cpHash is checked first
  });
});

describe("TPM2_PolicyAuthorizeNV (Part 3 §23.22)", () => {
  const password = [1, 2];
  const approved = [...H(ZERO32, u32(TPM_CC.PolicyAuthValue))]; // PolicyPassword's digest
  const authNv = (s: Session, auth: number, index: number, pw: number[] = []) => rcOf(s.tpm.executeSync(authCmd(TPM_CC.PolicyAuthorizeNV, [auth, index, s.handle], [pw]), 0));

  it("the index's TPMT_HA must be the session's digest: then H(0…0 ‖ TPM_CC ‖ nvIndexName); TPM_RC_NV_UNINITIALIZED, TPM_RC_VALUE otherwise", () => {
    const t = tpmWith(handClock());
    defineNv(t, NV, AUTHREAD | AUTHWRITE | NO_DA, 34, password);
    const s = new Session(t, SE_POLICY);
    expect(authNv(s, NV, NV, password)).toBe(0x14a);
    expect(nvWrite(t, NV, NV, [0, 0x0b, ...approved], password)).toBe(0);
    expect(authNv(s, NV, NV, password)).toBe(0x084); // the digest is still zeros
    expect(authNv(s, NV, NV, [9])).toBe(0x9a2); // the index's auth: TPM_RC_BAD_AUTH + S1 (noDA)
    expect(authNv(s, OWNER, NV)).toBe(0x149); // no TPMA_NV_OWNERREAD: TPM_RC_NV_AUTHORIZATION
    expect(authNv(s, NV + 5, NV)).toBe(0x18b); // no such index: TPM_RC_HANDLE + H1
    expect(authNv(s, OWNER, 0x81000000)).toBe(0x284); // not an NV index: TPM_RC_VALUE + H2
    expect(authNv(s, OWNER, NV + 7)).toBe(0x28b);
    expect(rcOf(s.run(TPM_CC.PolicyPassword))).toBe(0);
    expect(authNv(s, NV, NV, password)).toBe(0);
    const name = nvName(t, NV);
    expect(s.digest()).toBe(hex(H(ZERO32, u32(TPM_CC.PolicyAuthorizeNV), name)));
    expect(s.digest()).toBe(policy().authorizeNV(name).hex);
    // a trial session compares nothing
    const tr = new Session(t, SE_TRIAL);
    expect(authNv(tr, NV, NV, password)).toBe(0);
    expect(tr.digest()).toBe(s.digest());
  });

  it("the TPMT_HA: a hash that is not the session's or not one at all is TPM_RC_HASH, too few bytes TPM_RC_INSUFFICIENT", () => {
    const t = tpmWith(handClock());
    defineNv(t, NV, AUTHREAD | AUTHWRITE | NO_DA, 34);
    defineNv(t, NV + 1, AUTHREAD | AUTHWRITE | NO_DA, 10);
    const s = new Session(t, SE_POLICY);
    for (const alg of [0x0004, 0x0000, 0x0025]) {
      expect(nvWrite(t, NV, NV, [...u16(alg), ...new Array(20).fill(0)])).toBe(0);
      expect(authNv(s, NV, NV)).toBe(0x083);
    }
    expect(nvWrite(t, NV + 1, NV + 1, [0, 0x0b, 1, 2, 3, 4, 5, 6, 7, 8])).toBe(0);
    expect(authNv(s, NV + 1, NV + 1)).toBe(0x09a);
  });

  it("OWNER reads with TPMA_NV_OWNERREAD; a read-locked index is TPM_RC_NV_LOCKED", () => {
    const t = tpmWith(handClock());
    defineNv(t, NV, AUTHWRITE | OWNERREAD | NO_DA | READ_STCLEAR, 34);
    expect(nvWrite(t, NV, NV, [0, 0x0b, ...ZERO32])).toBe(0);
    const s = new Session(t, SE_POLICY);
    expect(authNv(s, OWNER, NV)).toBe(0); // the zero digest is approved
    expect(rcOf(t.executeSync(authCmd(TPM_CC.NV_ReadLock, [OWNER, NV], [[]]), 0))).toBe(0);
    const s2 = new Session(t, SE_POLICY);
    expect(authNv(s2, OWNER, NV)).toBe(0x148);
  });

  it("an entity whose policy is PolicyAuthorizeNV is authorized by whatever policy the index approves (abrmd_policyauthorizenv)", () => {
    const t = tpmWith(handClock());
    defineNv(t, NV, AUTHREAD | AUTHWRITE | NO_DA, 34, password);
    const ccWrite = [...policy().commandCode(TPM_CC.NV_Write).digest];
    expect(nvWrite(t, NV, NV, [0, 0x0b, ...ccWrite], password)).toBe(0);
    // the Name of the written index (TPMA_NV_WRITTEN is in it)
    const nvAuthz = [...policy().authorizeNV(nvName(t, NV)).digest];
    const TARGET = 0x01500002;
    defineNv(t, TARGET, POLICYWRITE | AUTHREAD | NO_DA, 8, [], nvAuthz);
    const write = (s: Session) => rcOf(t.executeSync(cmd(0x8002, TPM_CC.NV_Write, [...u32(TARGET), ...u32(TARGET), ...s.area(), ...t2b([1]), ...u16(0)]), 0));
    const s = new Session(t, SE_POLICY);
    expect(rcOf(s.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write)))).toBe(0);
    expect(authNv(s, NV, NV, password)).toBe(0);
    expect(write(s)).toBe(0);
    // another approved policy: the old one no longer passes
    expect(nvWrite(t, NV, NV, [0, 0x0b, ...approved], password)).toBe(0);
    const s2 = new Session(t, SE_POLICY);
    expect(rcOf(s2.run(TPM_CC.PolicyCommandCode, u32(TPM_CC.NV_Write)))).toBe(0);
    expect(authNv(s2, NV, NV, password)).toBe(0x084);
  });
});

describe("TPMA_CC of the new commands (GetCapability(TPM_CAP_COMMANDS), as swtpm 0.7.1 lists them)", () => {
  it("PolicyCounterTimer, PolicyTicket, PolicyDuplicationSelect, PolicyAuthorizeNV", () => {
    const t = tpmWith(handClock());
    const attrs: number[] = [];
    for (const cc of [TPM_CC.PolicyCounterTimer, TPM_CC.PolicyTicket, TPM_CC.PolicyDuplicationSelect, TPM_CC.PolicyAuthorizeNV]) {
      const r = t.executeSync(cmd(0x8001, TPM_CC.GetCapability, [...u32(2), ...u32(cc), ...u32(1)]), 0);
      expect(rcOf(r)).toBe(0);
      attrs.push(u32At(r, 19));
    }
    expect(attrs).toEqual([0x0200016d, 0x02000172, 0x02000188, 0x06000192]);
  });
});

