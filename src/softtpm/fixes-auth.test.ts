/**
 * Authorization fixes of SoftTpm, each with the exact codes and values swtpm 0.7.1 / libtpms 0.9
 * gives (measured side by side with the same commands): TPM2_PolicyPhysicalPresence (Part 3
 * §23.12), the read role of TPM2_PolicyAuthorizeNV (§23.22), the DUP role of TPM2_Duplicate
 * (Part 1 §19.7.2), sessions bound to an entity whose Name or authValue changed (Part 1
 * §19.6.11), the response HMAC of TPM2_SequenceComplete (the sequence object is flushed after the
 * response), and PolicyPCR / Quote / creation data over unallocated PCRs (reference code FilterPcr).
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { policy } from "../client/policy.js";
import { eccSigningTemplate, sealedDataTemplate, srkRsa2048Template } from "../client/templates.js";
import { Tpm } from "../client/tpm.js";
import { memory } from "../transports/memory/index.js";
import { TPM_CC, TPM_RH, TPMA_NV, TPMA_OBJECT } from "../wire/constants.js";
import { TpmResponseError } from "../wire/rc.js";
import { SoftTpm } from "./softtpm.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const sha256 = (...b: Uint8Array[]): Uint8Array => {
  const h = createHash("sha256");
  for (const x of b) h.update(x);
  return new Uint8Array(h.digest());
};
const u16 = (v: number): Uint8Array => Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
const u32 = (v: number): Uint8Array => Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
const cat = (...a: Uint8Array[]): Uint8Array => {
  const o = new Uint8Array(a.reduce((n, x) => n + x.length, 0));
  let p = 0;
  for (const x of a) {
    o.set(x, p);
    p += x.length;
  }
  return o;
};
const b2 = (b: Uint8Array): Uint8Array => cat(u16(b.length), b);
const EMPTY = new Uint8Array(0);

interface SessionArea {
  handle: number;
  nonce: Uint8Array;
  attrs: number;
  hmac: Uint8Array;
}

/** A password session (TPM_RS_PW, continueSession). */
const pw = (p = ""): SessionArea => ({ handle: 0x40000009, nonce: EMPTY, attrs: 1, hmac: enc(p) });
/** A policy session without HMAC (unbound, unsalted: its HMAC key is empty). */
const pol = (handle: number): SessionArea => ({ handle, nonce: EMPTY, attrs: 1, hmac: EMPTY });

/** A command frame (Part 1 §18): TPM_ST_SESSIONS when `auths` is given. */
function cmd(cc: number, handles: number[], auths: SessionArea[] | null, params: Uint8Array): Uint8Array {
  let area: Uint8Array = EMPTY;
  if (auths) {
    const a = cat(...auths.map((x) => cat(u32(x.handle), b2(x.nonce), Uint8Array.of(x.attrs), b2(x.hmac))));
    area = cat(u32(a.length), a);
  }
  const body = cat(...handles.map(u32), area, params);
  return cat(u16(auths ? 0x8002 : 0x8001), u32(10 + body.length), u32(cc), body);
}

const rcOfResponse = (r: Uint8Array): number => ((r[6]! << 24) | (r[7]! << 16) | (r[8]! << 8) | r[9]!) >>> 0;
const u32At = (r: Uint8Array, at: number): number => ((r[at]! << 24) | (r[at + 1]! << 16) | (r[at + 2]! << 8) | r[at + 3]!) >>> 0;

async function rcOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TpmResponseError) return e.rc;
    throw e;
  }
  return 0;
}

async function open(): Promise<{ tpm: Tpm; soft: SoftTpm; raw: (c: Uint8Array) => Promise<{ rc: number; r: Uint8Array }> }> {
  const soft = new SoftTpm({ seed: "fixes-auth" });
  const tpm = await Tpm.open(memory({ backend: soft }));
  const raw = async (c: Uint8Array) => {
    const r = await tpm.transmit(c);
    return { rc: rcOfResponse(r), r };
  };
  return { tpm, soft, raw };
}

/** TPM2_StartAuthSession, unbound and unsalted, SHA-256: type 1 policy, 3 trial, 0 HMAC. */
async function startSession(raw: (c: Uint8Array) => Promise<{ rc: number; r: Uint8Array }>, type = 1): Promise<number> {
  const { rc, r } = await raw(cmd(TPM_CC.StartAuthSession, [TPM_RH.NULL, TPM_RH.NULL], null, cat(b2(new Uint8Array(16).fill(7)), u16(0), Uint8Array.of(type), u16(0x0010), u16(0x000b))));
  expect(rc).toBe(0);
  return u32At(r, 10);
}

async function policyDigest(raw: (c: Uint8Array) => Promise<{ rc: number; r: Uint8Array }>, s: number): Promise<Uint8Array> {
  const { rc, r } = await raw(cmd(TPM_CC.PolicyGetDigest, [s], null, EMPTY));
  expect(rc).toBe(0);
  return r.slice(12, 12 + ((r[10]! << 8) | r[11]!));
}

describe("TPM2_PolicyPhysicalPresence (Part 3 §23.12)", () => {
  it("is listed with TPMA_CC 0x02000187, its digest is policy().physicalPresence(), and the policy fails authorization with TPM_RC_PP + S1 (0x990): no physical presence, as swtpm", async () => {
    const { tpm, raw } = await open();
    const cmds = await tpm.getCommands();
    const listed = cmds.find((c) => c.commandIndex === 0x187);
    expect(listed?.attributes).toBe(0x02000187);
    const want = policy().physicalPresence().digest;
    for (const type of [1, 3]) {
      const s = await startSession(raw, type);
      expect((await raw(cmd(TPM_CC.PolicyPhysicalPresence, [s], null, EMPTY))).rc).toBe(0);
      expect(await policyDigest(raw, s)).toEqual(want);
      await raw(cmd(TPM_CC.FlushContext, [], null, u32(s)));
    }
    const srk = (await tpm.createPrimary(srkRsa2048Template())).handle;
    const c = await tpm.create(srk, sealedDataTemplate({ authPolicy: want, userWithAuth: false }), { data: enc("pp") });
    const obj = (await tpm.load(srk, c.private, c.public)).handle;
    const s = await startSession(raw);
    await raw(cmd(TPM_CC.PolicyPhysicalPresence, [s], null, EMPTY));
    expect((await raw(cmd(TPM_CC.Unseal, [obj], [pol(s)], EMPTY))).rc).toBe(0x990);
    // PolicyRestart clears the assertion: another policy digest then (TPM_RC_POLICY_FAIL + S1)
    await raw(cmd(TPM_CC.PolicyRestart, [s], null, EMPTY));
    expect((await raw(cmd(TPM_CC.Unseal, [obj], [pol(s)], EMPTY))).rc).toBe(0x99d);
  });
});

describe("TPM2_PolicyAuthorizeNV authorized by the index itself: a read (swtpm 0.7.1, measured)", () => {
  it("an AUTHREAD-only index authorizes it, an AUTHWRITE-only one is TPM_RC_AUTH_UNAVAILABLE (0x12f)", async () => {
    const { raw } = await open();
    const results: number[] = [];
    for (const [index, attrs] of [
      [0x01500010, TPMA_NV.AUTHREAD | TPMA_NV.OWNERWRITE],
      [0x01500011, TPMA_NV.AUTHWRITE | TPMA_NV.OWNERREAD],
    ] as const) {
      const nvPublic = cat(u32(index), u16(0x000b), u32(attrs), u16(0), u16(34));
      expect((await raw(cmd(TPM_CC.NV_DefineSpace, [TPM_RH.OWNER], [pw()], cat(b2(enc("nvpw")), b2(nvPublic))))).rc).toBe(0);
      // the approved policy: a TPMT_HA of SHA-256 equal to a fresh session's digest (all zeros)
      const writer = attrs & TPMA_NV.OWNERWRITE ? TPM_RH.OWNER : index;
      expect((await raw(cmd(TPM_CC.NV_Write, [writer, index], [pw(writer === index ? "nvpw" : "")], cat(b2(cat(u16(0x000b), new Uint8Array(32))), u16(0))))).rc).toBe(0);
      const s = await startSession(raw);
      const r = await raw(cmd(TPM_CC.PolicyAuthorizeNV, [index, index, s], [pw("nvpw")], EMPTY));
      results.push(r.rc);
      if (r.rc === 0) {
        const name = cat(u16(0x000b), sha256(nvPublic.slice(0, 6), u32(attrs | TPMA_NV.WRITTEN), nvPublic.slice(10)));
        expect(await policyDigest(raw, s)).toEqual(sha256(new Uint8Array(32), u32(TPM_CC.PolicyAuthorizeNV), name));
      }
    }
    expect(results).toEqual([0, 0x12f]);
  });
});

describe("TPM2_Duplicate's DUP role (Part 1 §19.7.2; swtpm 0.7.1, measured)", () => {
  it("a password or HMAC session is TPM_RC_AUTH_TYPE (0x124) whatever userWithAuth and the password; a policy without a command code TPM_RC_POLICY_FAIL + S1 (0x99d), before the parameters; PolicyCommandCode(Duplicate) succeeds", async () => {
    const { tpm, raw } = await open();
    const srk = (await tpm.createPrimary(srkRsa2048Template())).handle;
    const authPolicy = policy().commandCode(TPM_CC.Duplicate).digest;
    const params = cat(u16(0), u16(0x0010)); // encryptionKeyIn empty, symmetricAlg TPM_ALG_NULL
    for (const userWithAuth of [false, true]) {
      const tpl = sealedDataTemplate({ authPolicy, userWithAuth });
      tpl.objectAttributes &= ~(TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT);
      const c = await tpm.create(srk, tpl, { data: enc("dup"), userAuth: "opw" });
      const obj = (await tpm.load(srk, c.private, c.public)).handle;
      const dup = (auth: SessionArea, p = params) => raw(cmd(TPM_CC.Duplicate, [obj, TPM_RH.NULL], [auth], p));
      expect((await dup(pw("opw"))).rc).toBe(0x124);
      expect((await dup(pw("wrong"))).rc).toBe(0x124);
      const hs = await startSession(raw, 0);
      expect((await dup({ handle: hs, nonce: new Uint8Array(16).fill(1), attrs: 1, hmac: new Uint8Array(32).fill(9) })).rc).toBe(0x124);
      const p0 = await startSession(raw);
      expect((await dup(pol(p0))).rc).toBe(0x99d);
      expect((await dup(pol(p0), u16(0))).rc).toBe(0x99d); // cut parameters: the authorization fails first
      const p1 = await startSession(raw);
      expect((await raw(cmd(TPM_CC.PolicyCommandCode, [p1], null, u32(TPM_CC.Duplicate)))).rc).toBe(0);
      expect((await dup(pol(p1))).rc).toBe(0);
      for (const s of [hs, p0, p1]) await raw(cmd(TPM_CC.FlushContext, [], null, u32(s)));
      await tpm.flushContext(obj);
    }
  });
});

describe("a session bound to an entity stays bound while the entity's Name and authValue are those of StartAuthSession (Part 1 §19.6.11; swtpm 0.7.1, measured)", () => {
  it("bound to an NV index: the first write sets TPMA_NV_WRITTEN, the Name changes, and the next commands key the HMAC with the authValue (the client computes it as swtpm)", async () => {
    const { tpm } = await open();
    const index = 0x01500020;
    await tpm.nvDefineSpace({ index, size: 8, authValue: "nv", attributes: TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE | TPMA_NV.NO_DA });
    const s = await tpm.startAuthSession({ bind: { handle: index, auth: "nv" } });
    const rcs: number[] = [];
    for (let i = 0; i < 3; i++) rcs.push(await rcOf(tpm.nvWrite(index, new Uint8Array(8).fill(i), { auth: { session: s, password: "nv" } })));
    expect(rcs).toEqual([0, 0, 0]);
    expect(await tpm.nvRead(index, { auth: { session: s, password: "nv" } })).toEqual(new Uint8Array(8).fill(2));
    // a wrong password while no longer bound: the HMAC fails (NO_DA: TPM_RC_BAD_AUTH + S1)
    expect(await rcOf(tpm.nvRead(index, { auth: { session: s, password: "nope" } }))).toBe(0x9a2);
  });

  it("bound to an AUTHREAD-only NV index: the sessionKey takes its authValue (no AUTHWRITE needed to bind)", async () => {
    const { tpm } = await open();
    const index = 0x01500021;
    await tpm.nvDefineSpace({ index, size: 8, authValue: "nv", attributes: TPMA_NV.AUTHREAD | TPMA_NV.OWNERWRITE | TPMA_NV.NO_DA });
    await tpm.nvWrite(index, new Uint8Array(8).fill(3), { authHandle: "owner" });
    const s = await tpm.startAuthSession({ bind: { handle: index, auth: "nv" } });
    // bound: the password is not in the HMAC, a wrong one does not matter
    expect(await tpm.nvRead(index, { auth: { session: s, password: "wrong" } })).toEqual(new Uint8Array(8).fill(3));
  });

  it("bound to an object that is flushed: another object loaded at the same handle has another Name, the session is not bound to it (its password keys the HMAC)", async () => {
    const { tpm } = await open();
    const srk = (await tpm.createPrimary(srkRsa2048Template())).handle;
    const a = await tpm.create(srk, sealedDataTemplate(), { data: enc("A"), userAuth: "pwA" });
    const b = await tpm.create(srk, sealedDataTemplate(), { data: enc("B"), userAuth: "pwB" });
    const ha = (await tpm.load(srk, a.private, a.public)).handle;
    const s = await tpm.startAuthSession({ bind: { handle: ha, auth: "pwA" } });
    expect(await tpm.unseal(ha, { auth: { session: s, password: "not in the HMAC" } })).toEqual(enc("A"));
    await tpm.flushContext(ha);
    const hb = (await tpm.load(srk, b.private, b.public)).handle;
    expect(hb).toBe(ha);
    expect(await tpm.unseal(hb, { auth: { session: s, password: "pwB" } })).toEqual(enc("B"));
    expect(await rcOf(tpm.unseal(hb, { auth: { session: s, password: "pwA" } }))).toBe(0x98e); // TPM_RC_AUTH_FAIL + S1 (DA-protected)
  });

  it("bound to OWNER: after HierarchyChangeAuth through it the session is no longer bound (the authValue changed): a client keying as if bound gets TPM_RC_BAD_AUTH + S1 (0x9a2), as from swtpm", async () => {
    const { tpm } = await open();
    const s = await tpm.startAuthSession({ bind: { handle: TPM_RH.OWNER, auth: "" } });
    expect(await rcOf(tpm.hierarchyChangeAuth("owner", "new", { auth: { session: s, password: "" } }))).toBe(0);
    expect(await rcOf(tpm.hierarchyChangeAuth("owner", "", { auth: { session: s, password: "new" } }))).toBe(0x9a2);
    expect(await rcOf(tpm.hierarchyChangeAuth("owner", "", { auth: "new" }))).toBe(0);
  });
});

describe("TPM2_SequenceComplete through an HMAC session: the response HMAC takes the sequence's authValue though the command flushed it (swtpm 0.7.1, measured)", () => {
  it("the client verifies the response HMAC of SequenceComplete and EventSequenceComplete", async () => {
    const { tpm } = await open();
    const s = await tpm.startAuthSession();
    const seq = await tpm.hashSequenceStart("sha256", "sq");
    await tpm.sequenceUpdate(seq, enc("abc"), { auth: { session: s, password: "sq" } });
    expect((await tpm.sequenceComplete(seq, enc("def"), "null", { auth: { session: s, password: "sq" } })).digest).toEqual(sha256(enc("abcdef")));
    const ev = await tpm.hashSequenceStart("null", "ev");
    const digests = await tpm.eventSequenceComplete(16, ev, enc("event"), { auth: "", sequenceAuth: { session: s, password: "ev" } });
    expect(digests.sha256).toEqual(sha256(enc("event")));
    // a sequence has no authPolicy: a policy session is TPM_RC_AUTH_UNAVAILABLE (0x12f), as swtpm
    const seq2 = await tpm.hashSequenceStart("sha256", "sq");
    const ps = await tpm.startAuthSession({ type: "policy" });
    await tpm.policyAuthValue(ps);
    expect(await rcOf(tpm.sequenceComplete(seq2, enc("x"), "null", { auth: { session: ps, password: "sq" } }))).toBe(0x12f);
  });
});

describe("TPM2_PolicyPCR after a PCR changed (reference code PolicyPCR.c; swtpm 0.7.1, measured)", () => {
  it("a second PolicyPCR in a policy session after PCR_Extend is TPM_RC_PCR_CHANGED (0x128); a trial session does not check", async () => {
    const { raw } = await open();
    const sel = cat(u32(1), u16(0x000b), Uint8Array.of(3, 1, 0, 0));
    const extend = () => raw(cmd(TPM_CC.PCR_Extend, [0], [pw()], cat(u32(1), u16(0x000b), new Uint8Array(32))));
    for (const [type, second] of [
      [1, 0x128],
      [3, 0],
    ] as const) {
      const s = await startSession(raw, type);
      expect((await raw(cmd(TPM_CC.PolicyPCR, [s], null, cat(u16(0), sel)))).rc).toBe(0);
      expect((await extend()).rc).toBe(0);
      expect((await raw(cmd(TPM_CC.PolicyPCR, [s], null, cat(u16(0), sel)))).rc).toBe(second);
    }
  });
});

describe("PolicyPCR, Quote and creation data see only allocated PCRs (reference code FilterPcr; swtpm 0.7.1, measured after PCR_Allocate and a TPM Reset)", () => {
  it("an unallocated bank is cleared from the selection, which enters the policy digest (trial sessions too), the quote and the creation data", async () => {
    const { tpm, soft, raw } = await open();
    const sel = (banks: [number, number][]): Uint8Array => cat(u32(banks.length), ...banks.map(([alg, m]) => cat(u16(alg), Uint8Array.of(3, m & 0xff, (m >>> 8) & 0xff, (m >>> 16) & 0xff))));
    // SHA-256 only (swtpm allocates whole banks: a partial one is TPM_RC_PCR there)
    const alloc = await raw(cmd(TPM_CC.PCR_Allocate, [TPM_RH.PLATFORM], [pw()], sel([[0x0004, 0], [0x000b, 0xffffff], [0x000c, 0], [0x000d, 0]])));
    expect(alloc.rc).toBe(0);
    await soft.powerOff();
    await soft.powerOn();
    expect((await raw(cmd(TPM_CC.Startup, [], null, u16(0)))).rc).toBe(0);
    const zero = new Uint8Array(32);
    const cc = u32(TPM_CC.PolicyPCR);
    const cases: [[number, number][], [number, number][], Uint8Array][] = [
      [[[0x0004, 1]], [[0x0004, 0]], sha256()], // SHA-1 PCR 0: nothing selected, the digest of nothing
      [[[0x0004, 1], [0x000b, 1]], [[0x0004, 0], [0x000b, 1]], sha256(zero)],
      [[[0x000b, 0x0101]], [[0x000b, 0x0101]], sha256(zero, zero)],
    ];
    for (const [asked, filtered, pcrDigest] of cases) {
      const s = await startSession(raw);
      expect((await raw(cmd(TPM_CC.PolicyPCR, [s], null, cat(u16(0), sel(asked))))).rc).toBe(0);
      expect(await policyDigest(raw, s)).toEqual(sha256(zero, cc, sel(filtered), pcrDigest));
      await raw(cmd(TPM_CC.FlushContext, [], null, u32(s)));
    }
    // a trial session takes the caller's digest, with the selection filtered
    const trial = await startSession(raw, 3);
    const given = new Uint8Array(32).fill(1);
    expect((await raw(cmd(TPM_CC.PolicyPCR, [trial], null, cat(b2(given), sel([[0x0004, 1]]))))).rc).toBe(0);
    expect(await policyDigest(raw, trial)).toEqual(sha256(zero, cc, sel([[0x0004, 0]]), given));
    // a policy session: a pcrDigest of the unfiltered selection's PCRs does not match (TPM_RC_VALUE + P1)
    const s = await startSession(raw);
    expect((await raw(cmd(TPM_CC.PolicyPCR, [s], null, cat(b2(sha256(new Uint8Array(20))), sel([[0x0004, 1]]))))).rc).toBe(0x1c4);
    expect((await raw(cmd(TPM_CC.PolicyPCR, [s], null, cat(b2(sha256()), sel([[0x0004, 1]]))))).rc).toBe(0);

    // Quote: TPMS_QUOTE_INFO pcrSelect 0004 03 000000 and the digest of nothing
    const key = (await tpm.createPrimary(eccSigningTemplate())).handle;
    const q = await raw(cmd(TPM_CC.Quote, [key], [pw()], cat(u16(0), u16(0x0010), sel([[0x0004, 1], [0x000b, 2]]))));
    expect(q.rc).toBe(0);
    // (TPMS_QUOTE_INFO is the end of TPMS_ATTEST: the TPM2B_ATTEST at offset 14 ends with it)
    const attestSize = (q.r[14]! << 8) | q.r[15]!;
    const quoted = cat(sel([[0x0004, 0], [0x000b, 2]]), b2(sha256(zero)));
    expect(q.r.subarray(16 + attestSize - quoted.length, 16 + attestSize)).toEqual(quoted);

    // creation data: the selection filtered, the digest over the allocated PCRs only
    const created = await tpm.createPrimary(eccSigningTemplate(), { creationPcrs: { sha1: [0], sha256: [1] } });
    expect(created.creationData.pcrSelect).toEqual([
      { hash: 0x0004, pcrs: [] },
      { hash: 0x000b, pcrs: [1] },
    ]);
    expect(created.creationData.pcrDigest).toEqual(sha256(zero));
  });
});
