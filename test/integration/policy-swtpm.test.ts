/**
 * SoftTpm's policy sessions (TPM 2.0 Part 3 §23, Part 1 §19.7) against swtpm 0.7.1: the same
 * command bytes to both, the response codes compared, and the policy digests and every
 * deterministic response compared byte for byte. Only sessions with an empty HMAC key are used,
 * so nothing depends on nonceTPM.
 *
 * Needs swtpm (CI installs it): a missing one is a failure, never a skip.
 */
import { constants, generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SoftTpm, swtpm, systemClock, toHex, type SwtpmTransport } from "../../src/index.js";
import { policy } from "../../src/client/policy.js";
import { TPM_CC } from "../../src/wire/constants.js";
import { cfbRoundTrip, saltedSession } from "../support/session-clients.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm, type SwtpmPeer } from "./swtpm-peer.js";

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const t2b = (b: ArrayLike<number>): number[] => [...u16(b.length), ...Array.from(b)];
const cmd = (tag: number, cc: number, body: number[]): Uint8Array => Uint8Array.from([...u16(tag), ...u32(10 + body.length), ...u32(cc), ...body]);
const rcOf = (r: Uint8Array): number => ((r[6]! << 24) | (r[7]! << 16) | (r[8]! << 8) | r[9]!) >>> 0;
const area = (...s: number[][]): number[] => [...u32(s.flat().length), ...s.flat()];
const PW = [...u32(0x40000009), ...u16(0), 1, ...u16(0)];
const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const POLICY = 0x03000000; // the first session of each TPM
const TRIAL = 0x03000001;
const HMAC = 0x02000002;
const NV1 = 0x01500030;
const NV2 = 0x01500031;
const NV_ATTRS = 0x00000004 | 0x00000008 | 0x02000000 | 0x00040000 | 0x00080000;
/** A policy, trial or HMAC session with an empty HMAC (the key is empty). */
const empty = (h: number): number[] => [...u32(h), ...t2b(new Array(16).fill(0x44)), 1, ...u16(0)];
const start = (type: number) => cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(0x11)), ...u16(0), type, ...u16(0x10), ...u16(0x0b)]);
const nvPub = (index: number, pol: Uint8Array) => t2b([...u32(index), ...u16(0x0b), ...u32(NV_ATTRS), ...t2b(pol), ...u16(8)]);
const nvWrite = (index: number, session: number[], data: number[]) => cmd(0x8002, TPM_CC.NV_Write, [...u32(index), ...u32(index), ...area(session), ...t2b(data), ...u16(0)]);
const pcr16Sel = [...u32(1), ...u16(0x0b), 3, 0, 0, 1];
const policyNv = (operand: number[], offset: number, op: number) => cmd(0x8002, TPM_CC.PolicyNV, [...u32(NV1), ...u32(NV1), ...u32(POLICY), ...area(PW), ...t2b(operand), ...u16(offset), ...u16(op)]);
const secret = (nonce: number[], cp: number[], session: number[]) => cmd(0x8002, TPM_CC.PolicySecret, [...u32(session === PW ? OWNER : NV1), ...u32(POLICY), ...area(session), ...t2b(nonce), ...t2b(cp), ...u16(0), ...u32(0)]);
const authorize = (approved: number[], keyName: number[], tag: number, ticket: number[]) =>
  cmd(0x8001, TPM_CC.PolicyAuthorize, [...u32(POLICY), ...t2b(approved), ...u16(0), ...t2b(keyName), ...u16(tag), ...u32(OWNER), ...t2b(ticket)]);
const getDigest = (h = POLICY) => cmd(0x8001, TPM_CC.PolicyGetDigest, u32(h));
const keyName = [0x00, 0x0b, ...new Array(32).fill(0x33)];
// an RSA-2048 RSASSA-SHA256 signing key loaded into both with LoadExternal (public part only)
const signer = generateKeyPairSync("rsa", { modulusLength: 2048 });
const modulus = [...Buffer.from(signer.publicKey.export({ format: "jwk" }).n!, "base64url")];
const signingPublic = [...u16(0x0001), ...u16(0x000b), ...u32(0x00040440), ...u16(0), ...u16(0x0010), ...u16(0x0014), ...u16(0x000b), ...u16(2048), ...u32(0), ...t2b(modulus)];
const KEY = 0x80000000; // the first transient handle of each TPM
const ref = [7, 7];
/** PolicySigned with an empty nonceTPM and expiration 0: aHash = H(0 ‖ policyRef), the same for both TPMs. */
const goodSig = [...cryptoSign("sha256", Uint8Array.from([...u32(0), ...ref]), signer.privateKey)];
const badSig = goodSig.map((b, i) => (i === 5 ? b ^ 1 : b));
const policySigned = (sig: number[]) => cmd(0x8001, TPM_CC.PolicySigned, [...u32(KEY), ...u32(POLICY), ...u16(0), ...u16(0), ...t2b(ref), ...u32(0), ...u16(0x0014), ...u16(0x000b), ...t2b(sig)]);

/** [what, command, compare: "rc" (code and, for a handle, the handle) or "all" (the whole response)]. */
const STEPS: [string, Uint8Array, "rc" | "all"][] = [
  ["start policy session", start(1), "rc"],
  ["start trial session", start(3), "rc"],
  ["start HMAC session", start(0), "rc"],
  ["PolicyGetDigest of a fresh session", getDigest(), "all"],
  ["PolicyGetDigest on an HMAC session's handle type", getDigest(HMAC), "rc"],
  ["PolicyGetDigest on an empty slot", getDigest(0x03000005), "rc"],
  ["PolicyGetDigest on the HMAC session's slot", getDigest(0x03000002), "rc"],
  ["PolicyPCR with a wrong digest", cmd(0x8001, TPM_CC.PolicyPCR, [...u32(POLICY), ...t2b(new Array(32).fill(1)), ...pcr16Sel]), "rc"],
  ["PolicyOR without the current digest", cmd(0x8001, TPM_CC.PolicyOR, [...u32(POLICY), ...u32(2), ...t2b(new Array(32).fill(1)), ...t2b(new Array(32).fill(2))]), "rc"],
  ["PolicyOR with one branch", cmd(0x8001, TPM_CC.PolicyOR, [...u32(POLICY), ...u32(1), ...t2b(new Array(32).fill(0))]), "rc"],
  ["PolicyOR", cmd(0x8001, TPM_CC.PolicyOR, [...u32(POLICY), ...u32(2), ...t2b(new Array(32).fill(1)), ...t2b(new Array(32).fill(0))]), "rc"],
  ["PolicyGetDigest after PolicyOR", getDigest(), "all"],
  ["PolicyRestart", cmd(0x8001, TPM_CC.PolicyRestart, u32(POLICY)), "all"],
  ["PolicyGetDigest after PolicyRestart", getDigest(), "all"],
  ["PolicyCommandCode of no command", cmd(0x8001, TPM_CC.PolicyCommandCode, [...u32(POLICY), ...u32(0x1ff)]), "rc"],
  ["PolicyCommandCode(NV_Write)", cmd(0x8001, TPM_CC.PolicyCommandCode, [...u32(POLICY), ...u32(TPM_CC.NV_Write)]), "all"],
  ["PolicyCommandCode(NV_Read) after NV_Write", cmd(0x8001, TPM_CC.PolicyCommandCode, [...u32(POLICY), ...u32(TPM_CC.NV_Read)]), "rc"],
  ["PolicyGetDigest after PolicyCommandCode", getDigest(), "all"],
  ["NV_DefineSpace with a PolicyCommandCode policy", cmd(0x8002, TPM_CC.NV_DefineSpace, [...u32(OWNER), ...area(PW), ...u16(0), ...nvPub(NV1, policy("sha256").commandCode(TPM_CC.NV_Write).digest)]), "all"],
  ["NV_Read with a PolicyCommandCode(NV_Write) session", cmd(0x8002, TPM_CC.NV_Read, [...u32(NV1), ...u32(NV1), ...area(empty(POLICY)), ...u16(1), ...u16(0)]), "rc"],
  ["NV_Write with the policy session", nvWrite(NV1, empty(POLICY), [5, 0, 0, 0, 0xf0]), "rc"],
  ["NV_Write again: the assertions were spent", nvWrite(NV1, empty(POLICY), [5]), "rc"],
  ["NV_Write with a trial session", nvWrite(NV1, empty(TRIAL), [5]), "rc"],
  ["PolicyNV EQ", policyNv([5, 0], 0, 0), "all"],
  ["PolicyNV UNSIGNED_GT, false", policyNv([5, 0], 0, 3), "rc"],
  ["PolicyNV SIGNED_LT", policyNv([0x10], 4, 4), "rc"],
  ["PolicyNV offset past the data", policyNv([1], 9, 0), "rc"],
  ["PolicyNV operand past the data", policyNv([1, 2], 7, 0), "rc"],
  ["PolicyNV no TPM_EO", policyNv([1], 0, 0x0c), "rc"],
  ["PolicyGetDigest after PolicyNV", getDigest(), "all"],
  ["PolicyRestart", cmd(0x8001, TPM_CC.PolicyRestart, u32(POLICY)), "all"],
  ["PolicySecret with a wrong nonce", secret(new Array(16).fill(0), [], PW), "rc"],
  ["PolicySecret with a short cpHashA", secret([], [1, 2], PW), "rc"],
  ["PolicySecret(owner)", secret([], [], PW), "all"],
  ["PolicyGetDigest after PolicySecret", getDigest(), "all"],
  ["FlushContext of the HMAC session", cmd(0x8001, TPM_CC.FlushContext, u32(HMAC)), "all"],
  ["start a second policy session", start(1), "rc"],
  ["PolicySecret by a policy session without authValue", secret([], [], empty(TRIAL + 1)), "rc"],
  ["PolicyAuthorize, approvedPolicy not current", authorize(new Array(32).fill(9), keyName, 0x8022, new Array(64).fill(1)), "rc"],
  ["PolicyAuthorize, a wrong ticket", authorize([...policy("sha256").secret(Uint8Array.from(u32(OWNER))).digest], keyName, 0x8022, new Array(64).fill(1)), "rc"],
  ["PolicyAuthorize, not TPM_ST_VERIFIED", authorize([], keyName, 0x8021, []), "rc"],
  ["PolicyRestart", cmd(0x8001, TPM_CC.PolicyRestart, u32(POLICY)), "all"],
  ["LoadExternal of an RSA signing key", cmd(0x8001, TPM_CC.LoadExternal, [...u16(0), ...t2b(signingPublic), ...u32(RH_NULL)]), "all"],
  ["PolicySigned with a bad signature", policySigned(badSig), "rc"],
  ["PolicySigned", policySigned(goodSig), "all"],
  ["PolicyGetDigest after PolicySigned", getDigest(), "all"],
  ["PolicyRestart", cmd(0x8001, TPM_CC.PolicyRestart, u32(POLICY)), "all"],
  ["PolicyPCR over PCR 16", cmd(0x8001, TPM_CC.PolicyPCR, [...u32(POLICY), ...u16(0), ...pcr16Sel]), "all"],
  ["PolicyGetDigest after PolicyPCR", getDigest(), "all"],
  ["NV_DefineSpace with a PolicyPCR policy", cmd(0x8002, TPM_CC.NV_DefineSpace, [...u32(OWNER), ...area(PW), ...u16(0), ...nvPub(NV2, policy("sha256").pcr({ sha256: [16] }, { sha256: { 16: new Uint8Array(32) } }).digest)]), "all"],
  ["PCR_Extend(8)", cmd(0x8002, TPM_CC.PCR_Extend, [...u32(8), ...area(PW), ...u32(1), ...u16(0x0b), ...new Array(32).fill(1)]), "all"],
  ["NV_Write after a PCR changed", nvWrite(NV2, empty(POLICY), [1]), "rc"],
  ["PolicyPassword", cmd(0x8001, TPM_CC.PolicyPassword, u32(POLICY)), "all"],
  ["PolicyAuthValue", cmd(0x8001, TPM_CC.PolicyAuthValue, u32(POLICY)), "all"],
  ["PolicyGetDigest after PolicyPassword, PolicyAuthValue", getDigest(), "all"],
];

let peer: SwtpmPeer;
let transport: SwtpmTransport;

beforeAll(async () => {
  requireSwtpm();
  peer = await startSwtpm({ prefix: "tpmkit-policy-swtpm-" });
  transport = swtpm(peer.data);
}, 30_000);

afterAll(async () => {
  await transport?.close().catch(() => undefined);
  await peer?.stop();
  killAllStartedSwtpm();
});

const soft = new SoftTpm({ seed: "policy-swtpm" });
const send = (bytes: Uint8Array) => transport.send(bytes, { signal: AbortSignal.timeout(5000), locality: 0, timeoutMs: 5000, clock: systemClock });

/** Sends each step to both, compares as the step says; returns what swtpm answered. */
async function compare(steps: [string, Uint8Array, "rc" | "all"][]): Promise<string[]> {
  const seen: string[] = [];
  for (const [what, bytes, how] of steps) {
    const a = await send(bytes);
    const b = soft.executeSync(bytes, 0);
    const view = (r: Uint8Array) => (how === "all" || r.length === 10 ? toHex(r) : `${rcOf(r).toString(16)}${bytes[9] === 0x76 && rcOf(r) === 0 ? ` handle ${toHex(r.subarray(10, 14))}` : ""}`);
    seen.push(`${what}: ${view(a)}`);
    expect(view(b), what).toBe(view(a));
  }
  if (process.env.POLICY_TRACE) console.log(seen.join("\n")); // POLICY_TRACE=1: what swtpm answered
  return seen;
}

describe("SoftTpm policy sessions answer as swtpm 0.7.1", () => {
  it("gives the same response codes, handles and policy digests, step by step", async () => {
    expect(rcOf(soft.executeSync(cmd(0x8001, TPM_CC.Startup, u16(0)), 0))).toBe(0);
    expect((await compare(STEPS)).length).toBe(STEPS.length);
  }, 30_000);

  it("parameter encryption: the same refusals, and one AES-128-CFB client works with both", async () => {
    const NV3 = 0x01500040;
    const startSym = (sym: number[]) => cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Array(16).fill(1)), ...u16(0), 0, ...sym, ...u16(0x0b)]);
    const session = (h: number, attrs: number) => [...u32(h), ...t2b(new Array(16).fill(2)), attrs, ...u16(0)];
    const ext = [...u32(1), ...u16(0x0b), ...new Array(32).fill(1)];
    await compare([
      ["flush 0x03000000", cmd(0x8001, TPM_CC.FlushContext, u32(0x03000000)), "all"],
      ["flush 0x03000001", cmd(0x8001, TPM_CC.FlushContext, u32(0x03000001)), "all"],
      ["flush 0x03000002", cmd(0x8001, TPM_CC.FlushContext, u32(0x03000002)), "all"],
      ["AES-128-ECB session", startSym([...u16(0x0006), ...u16(128), ...u16(0x0044)]), "rc"],
      ["AES with 100 bits", startSym([...u16(0x0006), ...u16(100), ...u16(0x0043)]), "rc"],
      ["AES-128-CFB session", startSym([...u16(0x0006), ...u16(128), ...u16(0x0043)]), "rc"],
      ["NULL-symmetric session", startSym(u16(0x0010)), "rc"],
      ["PCR_Extend with decrypt", cmd(0x8002, TPM_CC.PCR_Extend, [...u32(0), ...area(session(0x02000000, 0x21)), ...ext]), "rc"],
      ["NV_DefineSpace", cmd(0x8002, TPM_CC.NV_DefineSpace, [...u32(OWNER), ...area(PW), ...t2b([0x61, 0x62, 0x63]), ...t2b([...u32(NV3), ...u16(0x0b), ...u32(0x02040004), ...u16(0), ...u16(8)])]), "all"],
      ["NV_Write, decrypt by a NULL-symmetric session", cmd(0x8002, TPM_CC.NV_Write, [...u32(NV3), ...u32(NV3), ...area(session(0x02000001, 0x21)), ...t2b([1]), ...u16(0)]), "rc"],
      ["flush 0x02000000", cmd(0x8001, TPM_CC.FlushContext, u32(0x02000000)), "all"],
      ["flush 0x02000001", cmd(0x8001, TPM_CC.FlushContext, u32(0x02000001)), "all"],
    ]);
    const data = Uint8Array.of(9, 8, 7, 6, 5, 4, 3, 2);
    const auth = Uint8Array.of(0x61, 0x62, 0x63);
    const a = await cfbRoundTrip(send, NV3, auth, data);
    const b = await cfbRoundTrip((c) => soft.executeSync(c, 0), NV3, auth, data);
    for (const r of [a, b]) {
      expect(toHex(r.stored)).toBe(toHex(data));
      expect(toHex(r.readBack)).toBe(toHex(data));
      expect(toHex(r.onWire)).not.toBe(toHex(data));
    }
  }, 30_000);

  it("salted sessions: one RSA-OAEP salting client works with both, the same code for a bad salt", async () => {
    const a = await saltedSession(send);
    const b = await saltedSession((c) => soft.executeSync(c, 0));
    expect(b).toEqual(a);
    expect(a).toEqual({ badSalt: 0x2c4, extend: 0 });
  }, 30_000);
});



