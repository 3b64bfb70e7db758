/**
 * HMAC, policy and trial sessions of the typed client against SoftTpm (TPM 2.0 Part 1 §19.6,
 * §21; Part 3 §11.1, §23): bound, unbound and salted (RSA, ECC) HMAC sessions; parameter
 * encryption both ways, checked by tampering with the bytes on the wire; a response HMAC that
 * does not verify is a TpmSessionError; each policy command, with digests checked against the
 * offline `policy()` helper.
 */
import { describe, expect, it } from "vitest";
import type { TpmBackend } from "../core/transport.js";
import { TpmArgumentError } from "../errors/index.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { memory } from "../transports/memory/index.js";
import { TPM_CC, TPM_RC, TPM_RH, TPM_ST, TPMA_NV } from "../wire/constants.js";
import { TpmResponseError } from "../wire/rc.js";
import { u32be } from "../wire/bytes.js";
import { TPM_EO, policy } from "./policy.js";
import { AuthSession, TpmSessionError } from "./session.js";
import { eccSigningTemplate, eccStorageTemplate, rsaStorageTemplate, sealedDataTemplate, srkRsa2048Template } from "./templates.js";
import { Tpm } from "./tpm.js";
import { createHash } from "node:crypto";

const ccOf = (c: Uint8Array): number => ((c[6]! << 24) | (c[7]! << 16) | (c[8]! << 8) | c[9]!) >>> 0;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

interface Wire {
  commands: Uint8Array[];
  responses: Uint8Array[];
  /** Rewrites the next command of this code before SoftTpm sees it. */
  editCommand?: { cc: number; edit: (c: Uint8Array) => Uint8Array } | undefined;
  /** Rewrites the next response to this code. */
  editResponse?: { cc: number; edit: (r: Uint8Array) => Uint8Array } | undefined;
}

async function open(): Promise<{ tpm: Tpm; wire: Wire; srk: number }> {
  const soft = new SoftTpm({ seed: "sessions" });
  const wire: Wire = { commands: [], responses: [] };
  const backend: TpmBackend = {
    start: () => soft.start(),
    async execute(command, locality, signal) {
      let c = command;
      const cc = ccOf(c);
      if (wire.editCommand?.cc === cc) {
        c = wire.editCommand.edit(c.slice());
        wire.editCommand = undefined;
      }
      wire.commands.push(c);
      let rsp = await soft.execute(c, locality, signal);
      if (wire.editResponse?.cc === cc) {
        rsp = wire.editResponse.edit(rsp.slice());
        wire.editResponse = undefined;
      }
      wire.responses.push(rsp);
      return rsp;
    },
  };
  const tpm = await Tpm.open(memory({ backend }));
  const srk = (await tpm.createPrimary(srkRsa2048Template())).handle;
  return { tpm, wire, srk };
}

/** A sealed object under `parent` with `data`, password `pw` and optional authPolicy. */
async function seal(tpm: Tpm, parent: number, data: Uint8Array, pw = "pw", authPolicy?: Uint8Array): Promise<number> {
  const tpl = sealedDataTemplate(authPolicy ? { authPolicy, userWithAuth: false } : {});
  const c = await tpm.create(parent, tpl, { data, userAuth: pw });
  return (await tpm.load(parent, c.private, c.public)).handle;
}

async function rcOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TpmResponseError) return e.rc;
    throw e;
  }
  throw new Error("expected a TPM error");
}

describe("HMAC sessions on SoftTpm", () => {
  it("an unbound, unsalted HMAC session authorizes several commands in a row (the nonces roll) and a wrong password is TPM_RC_AUTH_FAIL + session 1", async () => {
    const { tpm, srk } = await open();
    const h = await seal(tpm, srk, enc("secret"));
    const s = await tpm.startAuthSession();
    expect(s.handle >>> 24).toBe(0x02);
    expect(s.type).toBe("hmac");
    const n0 = s.nonceTPM;
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("secret"));
    expect(s.nonceTPM).not.toEqual(n0);
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("secret"));
    expect(await rcOf(tpm.unseal(h, { auth: { session: s, password: "nope" } }))).toBe(0x98e); // TPM_RC_AUTH_FAIL + session 1
    // the session survives the failure (the TPM did not roll the nonce)
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("secret"));
    await s.close();
    expect(s.closed).toBe(true);
  });

  it("a bound session leaves the bind entity's authValue out of the HMAC key, and includes another entity's", async () => {
    const { tpm, srk } = await open();
    const h = await seal(tpm, srk, enc("bound"), "pw");
    const s = await tpm.startAuthSession({ bind: { handle: h, auth: "pw" } });
    // the bind entity: its authValue is already in the session key; the password is not used
    expect(await tpm.unseal(h, { auth: { session: s, password: "anything" } })).toEqual(enc("bound"));
    const h2 = await seal(tpm, srk, enc("other"), "pw2");
    expect(await tpm.unseal(h2, { auth: { session: s, password: "pw2" } })).toEqual(enc("other"));
    expect(await rcOf(tpm.unseal(h2, { auth: { session: s, password: "pw" } }))).toBe(0x98e);
    // the owner hierarchy (a permanent handle, its own Name) through the same session
    await tpm.flushContext(h);
    await tpm.flushContext(h2);
    const p = await tpm.createPrimary(rsaStorageTemplate(), { auth: s });
    expect(p.handle >>> 24).toBe(0x80);
    await s.close();
  });

  it("salted with an RSA key and with an ECC key: the session key comes from the salt the client encrypted", async () => {
    const { tpm, srk } = await open();
    const h = await seal(tpm, srk, enc("salted"));
    const ecc = (await tpm.createPrimary(eccStorageTemplate())).handle;
    for (const key of [srk, ecc]) {
      await using s = await tpm.startAuthSession({ salt: key, attributes: { encrypt: true, decrypt: true } });
      expect(s.sessionKey.length).toBe(32);
      expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("salted"));
    }
  });

  it("a salted and bound session, sha1 and sha384 session hashes, aes256cfb", async () => {
    const { tpm, srk } = await open();
    const h = await seal(tpm, srk, enc("hashes"));
    for (const hashAlg of ["sha1", "sha384"] as const) {
      await using s = await tpm.startAuthSession({ hashAlg, salt: srk, bind: { handle: TPM_RH.OWNER }, symmetric: "aes256cfb", attributes: { encrypt: true } });
      expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("hashes"));
    }
  });

  it("parameter encryption, command side: the data is not on the wire, and a flipped ciphertext byte fails the TPM's HMAC check (TPM_RC_BAD_AUTH)", async () => {
    const { tpm, wire, srk } = await open();
    const secret = enc("very secret data!");
    const s = await tpm.startAuthSession({ salt: srk, attributes: { decrypt: true } });
    wire.commands.length = 0;
    const created = await tpm.create(srk, sealedDataTemplate(), { data: secret, userAuth: "pw", auth: s });
    const cmd = wire.commands.find((c) => ccOf(c) === TPM_CC.Create)!;
    expect(contains(cmd, secret)).toBe(false);
    const h = (await tpm.load(srk, created.private, created.public)).handle;
    expect(await tpm.unseal(h, { auth: "pw" })).toEqual(secret);
    // the same command with one byte of the encrypted first parameter flipped (it follows the session area)
    // (header 10, parent handle 4, authorizationSize 4 + the area, then inSensitive's size 2)
    wire.editCommand = { cc: TPM_CC.Create, edit: (c) => ((c[18 + ((c[14]! << 24) | (c[15]! << 16) | (c[16]! << 8) | c[17]!) + 4]! ^= 1), c) };
    expect(await rcOf(tpm.create(srk, sealedDataTemplate(), { data: secret, userAuth: "pw", auth: s }))).toBe(0x9a2); // TPM_RC_BAD_AUTH + session 1 (the SRK is noDA)
  });

  it("parameter encryption, response side: the data is not on the wire, and a flipped ciphertext byte is a TpmSessionError", async () => {
    const { tpm, wire, srk } = await open();
    const secret = enc("response secret");
    const h = await seal(tpm, srk, secret);
    const s = await tpm.startAuthSession({ salt: srk, attributes: { encrypt: true } });
    wire.responses.length = 0;
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(secret);
    expect(contains(wire.responses.at(-1)!, secret)).toBe(false);
    // byte 16 is in outData (header 10, parameterSize 4, size 2)
    wire.editResponse = { cc: TPM_CC.Unseal, edit: (r) => ((r[16]! ^= 1), r) };
    await expect(tpm.unseal(h, { auth: { session: s, password: "pw" } })).rejects.toBeInstanceOf(TpmSessionError);
    // the TPM rolled its nonce and the client followed: the session still works
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(secret);
  });

  it("a response whose HMAC does not verify is a TpmSessionError, never a result", async () => {
    const { tpm, wire, srk } = await open();
    const h = await seal(tpm, srk, enc("x"));
    const s = await tpm.startAuthSession();
    wire.editResponse = { cc: TPM_CC.Unseal, edit: (r) => ((r[r.length - 1]! ^= 0x80), r) };
    const err = await tpm.unseal(h, { auth: { session: s, password: "pw" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmSessionError);
    expect((err as TpmSessionError).sessionHandle).toBe(s.handle);
    // a changed parameter (no encryption) is caught the same way
    wire.editResponse = { cc: TPM_CC.Unseal, edit: (r) => ((r[16]! ^= 1), r) };
    await expect(tpm.unseal(h, { auth: { session: s, password: "pw" } })).rejects.toBeInstanceOf(TpmSessionError);
  });

  it("an extra session in options.sessions encrypts a password-authorized command; continueSession false flushes the session", async () => {
    const { tpm, wire, srk } = await open();
    const secret = enc("extra session");
    const h = await seal(tpm, srk, secret);
    const s = await tpm.startAuthSession({ salt: srk, attributes: { encrypt: true, continueSession: false } });
    wire.responses.length = 0;
    expect(await tpm.unseal(h, { auth: "pw", sessions: [s] })).toEqual(secret);
    expect(contains(wire.responses.at(-1)!, secret)).toBe(false);
    expect(s.closed).toBe(true);
    expect(await rcOf(tpm.flushContext(s.handle))).toBe(0x1cb); // gone from the TPM (TPM_RC_HANDLE + P1)
    await expect(tpm.unseal(h, { auth: s })).rejects.toBeInstanceOf(TpmArgumentError);
  });

  it("NV: a session-authorized write and read fetch the index's Name each time (it changes with TPMA_NV_WRITTEN)", async () => {
    const { tpm, srk } = await open();
    const index = 0x01500010;
    await tpm.nvDefineSpace({ index, size: 8, authValue: "nv", attributes: TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE | TPMA_NV.NO_DA });
    await using s = await tpm.startAuthSession({ salt: srk, attributes: { decrypt: true, encrypt: true } });
    await tpm.nvWrite(index, enc("12345678"), { auth: { session: s, password: "nv" } });
    expect(await tpm.nvRead(index, { auth: { session: s, password: "nv" } })).toEqual(enc("12345678"));
    await tpm.nvWrite(index, enc("abcdefgh"), { auth: { session: s, password: "nv" } });
    expect(await tpm.nvRead(index, { auth: { session: s, password: "nv" } })).toEqual(enc("abcdefgh"));
  });

  it("a sequence object (its Name is empty) through a session, and concurrent calls sharing one session run one after the other", async () => {
    const { tpm, srk } = await open();
    const seq = await tpm.hashSequenceStart("sha256", "sq");
    await using s = await tpm.startAuthSession();
    await tpm.sequenceUpdate(seq, enc("abc"), { auth: { session: s, password: "sq" } });
    // (SequenceComplete through the session is pinned on swtpm, test/integration/typed-sessions.test.ts:
    // SoftTpm keys its response HMAC without the flushed sequence's authValue, libtpms with it)
    expect((await tpm.sequenceComplete(seq, enc("def"), "null", { auth: "sq" })).digest).toEqual(sha256(enc("abcdef")));
    const h = await seal(tpm, srk, enc("shared"));
    const all = await Promise.all([1, 2, 3].map(() => tpm.unseal(h, { auth: { session: s, password: "pw" } })));
    expect(all).toEqual([enc("shared"), enc("shared"), enc("shared")]);
  });

  it("a trial session cannot authorize: TPM_RC_ATTRIBUTES + session 1", async () => {
    const { tpm, srk } = await open();
    const h = await seal(tpm, srk, enc("t"));
    await using s = await tpm.startAuthSession({ type: "trial" });
    expect(await rcOf(tpm.unseal(h, { auth: s }))).toBe(0x982); // TPM_RC_ATTRIBUTES + session 1
  });

  it("hierarchyChangeAuth through an HMAC session: the response HMAC is keyed with the new authValue", async () => {
    const { tpm } = await open();
    await using s = await tpm.startAuthSession();
    await tpm.hierarchyChangeAuth("owner", "new", { auth: s });
    await tpm.hierarchyChangeAuth("owner", "", { auth: { session: s, password: "new" } });
    expect((await tpm.createPrimary(rsaStorageTemplate(), { auth: s })).handle >>> 24).toBe(0x80);
  });

  it("arguments are checked before anything is sent", async () => {
    const { tpm, wire } = await open();
    const n = wire.commands.length;
    await expect(tpm.startAuthSession({ type: "bogus" as never })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(tpm.startAuthSession({ symmetric: null, attributes: { decrypt: true } })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(tpm.unseal(0x80000001, { auth: { session: {} as AuthSession } })).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(tpm.unseal(0x80000001, { sessions: ["x" as never] })).rejects.toBeInstanceOf(TpmArgumentError);
    const s = await tpm.startAuthSession();
    await expect(tpm.policyGetDigest(s)).rejects.toBeInstanceOf(TpmArgumentError);
    expect(wire.commands.length).toBe(n + 1);
  });
});

describe("policy sessions on SoftTpm", () => {
  it("PolicyPassword and PolicyAuthValue: the digests are the offline helper's, and the sealed object unseals with the password (in clear, or as the HMAC key)", async () => {
    const { tpm, srk } = await open();
    for (const kind of ["password", "authValue"] as const) {
      const want = kind === "password" ? policy().password().digest : policy().authValue().digest;
      const h = await seal(tpm, srk, enc(kind), "pw", want);
      const s = await tpm.startAuthSession({ type: "policy" });
      if (kind === "password") await tpm.policyPassword(s);
      else await tpm.policyAuthValue(s);
      expect(await tpm.policyGetDigest(s)).toEqual(want);
      expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc(kind));
      // the policy was spent: a second use needs the assertion again
      expect(await rcOf(tpm.unseal(h, { auth: { session: s, password: "pw" } }))).toBe(0x99d); // TPM_RC_POLICY_FAIL + session 1
      if (kind === "password") await tpm.policyPassword(s);
      else await tpm.policyAuthValue(s);
      expect(await rcOf(tpm.unseal(h, { auth: { session: s, password: "bad" } }))).toBe(0x98e);
      await s.close();
    }
  });

  it("PolicyCommandCode, PolicyPCR, PolicyOR, PolicyRestart and a trial session", async () => {
    const { tpm, srk } = await open();
    const pcrs = await tpm.pcrRead({ sha256: [16] });
    const a = policy().commandCode(TPM_CC.Unseal);
    const b = policy().pcr({ sha256: [16] }, pcrs);
    const either = policy().or([a, b]).digest;
    const trial = await tpm.startAuthSession({ type: "trial" });
    await tpm.policyCommandCode(trial, TPM_CC.Unseal);
    expect(await tpm.policyGetDigest(trial)).toEqual(a.digest);
    await tpm.policyRestart(trial);
    expect(await tpm.policyGetDigest(trial)).toEqual(new Uint8Array(32));
    await tpm.policyPCR(trial, { sha256: [16] });
    expect(await tpm.policyGetDigest(trial)).toEqual(b.digest);
    await tpm.policyOR(trial, [a.digest, b.digest]);
    expect(await tpm.policyGetDigest(trial)).toEqual(either);
    await trial.close();

    const h = await seal(tpm, srk, enc("either"), "pw", either);
    const s = await tpm.startAuthSession({ type: "policy", attributes: { encrypt: true } });
    await tpm.policyPCR(s, { sha256: [16] }, { pcrDigest: sha256(pcrs.sha256![16]!) });
    await tpm.policyOR(s, [a.digest, b.digest]);
    // the session encrypts the response: the entity's authValue is in that key (Part 1 §21.1), not in the HMAC's
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("either"));
    await tpm.policyCommandCode(s, TPM_CC.Unseal);
    await tpm.policyOR(s, [a.digest, b.digest]);
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("either"));
    // without the password the client cannot decrypt: what it gets does not parse as the data
    await tpm.policyCommandCode(s, TPM_CC.Unseal);
    await tpm.policyOR(s, [a.digest, b.digest]);
    expect(await tpm.unseal(h, { auth: s })).not.toEqual(enc("either"));
    // the PCR changes: the PCR branch no longer holds (PolicyPCR with the old digest: TPM_RC_VALUE + P1)
    await tpm.pcrExtend(16, { sha256: new Uint8Array(32) });
    expect(await rcOf(tpm.policyPCR(s, { sha256: [16] }, { pcrDigest: sha256(pcrs.sha256![16]!) }))).toBe(0x1c4); // TPM_RC_VALUE + P1
  });

  it("PolicySecret with the owner hierarchy (a password or an HMAC session authorizes it)", async () => {
    const { tpm, srk } = await open();
    const want = policy().secret(u32be(TPM_RH.OWNER)).digest;
    const h = await seal(tpm, srk, enc("secret policy"), "pw", want);
    const s = await tpm.startAuthSession({ type: "policy" });
    const r = await tpm.policySecret("owner", s, { auth: "" });
    expect(r.ticket.tag).toBe(TPM_ST.AUTH_SECRET);
    expect(await tpm.policyGetDigest(s)).toEqual(want);
    expect(await tpm.unseal(h, { auth: s })).toEqual(enc("secret policy"));
    await using hs = await tpm.startAuthSession();
    await tpm.policySecret("owner", s, { auth: hs });
    expect(await tpm.unseal(h, { auth: s })).toEqual(enc("secret policy"));
  });

  it("PolicySigned and PolicyAuthorize with a TPM signing key", async () => {
    const { tpm, srk } = await open();
    const key = await tpm.createPrimary(eccSigningTemplate());
    // PolicySigned: the key signs aHash over the session's nonceTPM
    const signedPolicy = policy().signed(key.name).digest;
    const h1 = await seal(tpm, srk, enc("signed"), "pw", signedPolicy);
    const s = await tpm.startAuthSession({ type: "policy" });
    const sig = await tpm.sign(key.handle, s.policySignedDigest(), { scheme: "ecdsa" });
    await tpm.policySigned(key.handle, s, sig);
    expect(await tpm.policyGetDigest(s)).toEqual(signedPolicy);
    expect(await tpm.unseal(h1, { auth: s })).toEqual(enc("signed"));
    // a signature over another nonce: TPM_RC_SIGNATURE + P5
    const old = await tpm.sign(key.handle, sha256(enc("not aHash")), { scheme: "ecdsa" });
    expect(await rcOf(tpm.policySigned(key.handle, s, old))).toBe(0x5db); // TPM_RC_SIGNATURE + P5

    // PolicyAuthorize: the key approves the PolicyCommandCode(Unseal) digest
    await tpm.flushContext(h1);
    const approved = policy().commandCode(TPM_CC.Unseal).digest;
    const authorizePolicy = policy().authorize(key.name).digest;
    const h2 = await seal(tpm, srk, enc("authorized"), "pw", authorizePolicy);
    const aHash = sha256(approved); // H(approvedPolicy ‖ policyRef), policyRef empty
    const ticket = await tpm.verifySignature(key.handle, aHash, await tpm.sign(key.handle, aHash, { scheme: "ecdsa" }));
    await tpm.policyCommandCode(s, TPM_CC.Unseal);
    await tpm.policyAuthorize(s, approved, key.name, ticket);
    expect(await tpm.policyGetDigest(s)).toEqual(authorizePolicy);
    expect(await tpm.unseal(h2, { auth: s })).toEqual(enc("authorized"));
  });

  it("PolicyNV compares NV contents (read with the index's password or an HMAC session)", async () => {
    const { tpm, srk } = await open();
    const index = 0x01500020;
    await tpm.nvDefineSpace({ index, size: 4, authValue: "nv", attributes: TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE | TPMA_NV.NO_DA });
    await tpm.nvWrite(index, enc("OKAY"), { auth: "nv" });
    const { name } = await tpm.nvReadPublic(index);
    const want = policy().nv(name, enc("OKAY"), 0, TPM_EO.EQ).digest;
    const h = await seal(tpm, srk, enc("nv policy"), "pw", want);
    const s = await tpm.startAuthSession({ type: "policy" });
    await tpm.policyNV(s, index, enc("OKAY"), { auth: "nv" });
    expect(await tpm.policyGetDigest(s)).toEqual(want);
    expect(await tpm.unseal(h, { auth: s })).toEqual(enc("nv policy"));
    await using hs = await tpm.startAuthSession();
    await tpm.policyNV(s, index, enc("OKAY"), { auth: { session: hs, password: "nv" } });
    expect(await tpm.unseal(h, { auth: s })).toEqual(enc("nv policy"));
    // other contents: TPM_RC_POLICY
    expect(await rcOf(tpm.policyNV(s, index, enc("NOPE"), { auth: "nv" }))).toBe(TPM_RC.POLICY);
  });

  it("the policy example of docs/sessions-guide.md: PolicyCommandCode then PolicyAuthValue match policy().commandCode().authValue()", async () => {
    const { tpm, srk } = await open();
    const approved = policy().commandCode(TPM_CC.Unseal).authValue().digest;
    const locked = await seal(tpm, srk, enc("x"), "pw", approved);
    await using ps = await tpm.startAuthSession({ type: "policy" });
    await tpm.policyCommandCode(ps, TPM_CC.Unseal);
    await tpm.policyAuthValue(ps);
    expect(await tpm.policyGetDigest(ps)).toEqual(approved);
    expect(await tpm.unseal(locked, { auth: { session: ps, password: "pw" } })).toEqual(enc("x"));
  });
});
