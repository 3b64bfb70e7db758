/**
 * The typed client's sessions (TPM 2.0 Part 1 §19.6, §21; Part 3 §11.1, §23) against a real
 * swtpm: HMAC sessions bound, unbound and salted (RSA and ECC), parameter encryption both ways
 * (the secret never on the wire), the response HMACs the client checks, and the policy commands
 * with their digests compared to the offline `policy()` helper. Needs `swtpm` on PATH (CI
 * installs it); without it the file fails, it does not skip.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TPM_EO, policy } from "../../src/client/policy.js";
import { eccSigningTemplate, eccStorageTemplate, sealedDataTemplate, srkRsa2048Template } from "../../src/client/templates.js";
import { TpmSessionError } from "../../src/client/session.js";
import { Tpm } from "../../src/client/tpm.js";
import type { Transport } from "../../src/core/transport.js";
import { swtpm } from "../../src/transports/swtpm/transport.js";
import { u32be } from "../../src/wire/bytes.js";
import { TPM_CC, TPM_RH, TPMA_NV } from "../../src/wire/constants.js";
import { TpmResponseError } from "../../src/wire/rc.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm, type SwtpmPeer } from "./swtpm-peer.js";

let peer: SwtpmPeer;
let tpm: Tpm;
let srk: number;
const seen: { command: Uint8Array; response: Uint8Array }[] = [];
/** Rewrites the next command / response of one command code (a bus attacker). */
const tamper: { command?: { cc: number; edit: (c: Uint8Array) => void } | undefined; response?: { cc: number; edit: (r: Uint8Array) => void } | undefined } = {};
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

/** The swtpm transport, recording every command and response. */
function recording(t: Transport): Transport {
  return new Proxy(t, {
    get(target, prop, recv) {
      if (prop === "send") {
        return async (sent: Uint8Array, ...rest: unknown[]) => {
          const command = sent.slice();
          if (tamper.command?.cc === ccOf(command)) {
            tamper.command.edit(command);
            tamper.command = undefined;
          }
          let response = await (target.send as (c: Uint8Array, ...r: unknown[]) => Promise<Uint8Array>)(command, ...rest);
          if (tamper.response?.cc === ccOf(command)) {
            response = response.slice();
            tamper.response.edit(response);
            tamper.response = undefined;
          }
          seen.push({ command, response });
          return response;
        };
      }
      const v = Reflect.get(target, prop, recv);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

async function seal(data: Uint8Array, pw = "pw", authPolicy?: Uint8Array): Promise<number> {
  const c = await tpm.create(srk, sealedDataTemplate(authPolicy ? { authPolicy, userWithAuth: false, noDA: true } : { noDA: true }), { data, userAuth: pw });
  return (await tpm.load(srk, c.private, c.public)).handle;
}

beforeAll(async () => {
  requireSwtpm();
  peer = await startSwtpm({ prefix: "tpmkit-typed-sessions-" });
  tpm = await Tpm.open(recording(swtpm(peer.data)), { signal: AbortSignal.timeout(10_000) });
  srk = (await tpm.createPrimary(srkRsa2048Template())).handle;
}, 30_000);

afterAll(async () => {
  await tpm?.close();
  await peer?.stop();
  killAllStartedSwtpm();
});

describe("HMAC sessions on swtpm", () => {
  it("unbound, bound (to the authorized object and to another), salted with RSA and with ECC, each for several commands", async () => {
    const h = await seal(enc("on swtpm"));
    const ecc = (await tpm.createPrimary(eccStorageTemplate())).handle;
    const variants = [{}, { bind: { handle: h, auth: "pw" } }, { bind: { handle: TPM_RH.OWNER } }, { salt: srk }, { salt: ecc }, { salt: ecc, bind: { handle: h, auth: "pw" } }];
    for (const v of variants) {
      await using s = await tpm.startAuthSession(v);
      for (let i = 0; i < 2; i++) expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("on swtpm"));
      const err = await tpm.unseal(h, { auth: { session: s, password: "wrong" } }).catch((e: unknown) => e);
      // the bind entity's password is not in the HMAC: a wrong one does not matter
      if (v.bind?.handle === h) expect(err).toEqual(enc("on swtpm"));
      else expect((err as TpmResponseError).rc).toBe(0x9a2); // TPM_RC_BAD_AUTH + session 1 (a noDA object)
    }
    await tpm.flushContext(ecc);
    await tpm.flushContext(h);
  });

  it("salted with a P-384 ECC key and a sha384 session", async () => {
    const h = await seal(enc("p384"));
    const ecc = (await tpm.createPrimary(eccStorageTemplate("p384", { nameAlg: "sha384" }))).handle;
    await using s = await tpm.startAuthSession({ salt: ecc, hashAlg: "sha384", attributes: { encrypt: true, decrypt: true } });
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("p384"));
    await tpm.flushContext(ecc);
    await tpm.flushContext(h);
  });

  it("parameter encryption both ways with a salted session: neither the sealed data nor the unsealed data is on the wire", async () => {
    const secret = enc("swtpm parameter encryption");
    await using s = await tpm.startAuthSession({ salt: srk, attributes: { decrypt: true, encrypt: true } });
    seen.length = 0;
    const c = await tpm.create(srk, sealedDataTemplate(), { data: secret, userAuth: "pw", auth: s });
    const h = (await tpm.load(srk, c.private, c.public, { auth: s })).handle;
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(secret);
    for (const x of seen) {
      expect(contains(x.command, secret)).toBe(false);
      expect(contains(x.response, secret)).toBe(false);
    }
    // the bound entity with encryption: its authValue is not in the HMAC key but is in the
    // encryption key (Part 1 §21.1; swtpm 0.7.1, measured), so the password is needed
    await using b = await tpm.startAuthSession({ bind: { handle: h, auth: "pw" }, attributes: { encrypt: true } });
    expect(await tpm.unseal(h, { auth: { session: b, password: "pw" } })).toEqual(secret);
    // and an extra encrypt-only session: its key is the sessionKey alone
    expect(await tpm.unseal(h, { auth: "pw", sessions: [s] })).toEqual(secret);
    await tpm.flushContext(h);
  });

  it("tampering on the bus: a flipped byte of the encrypted command parameter is the TPM's TPM_RC_BAD_AUTH + session 1 (its HMAC check), of the encrypted response parameter our TpmSessionError", async () => {
    const h = await seal(enc("tamper me"));
    await using s = await tpm.startAuthSession({ salt: srk, attributes: { decrypt: true, encrypt: true } });
    // NV_DefineSpace's first parameter is the index's authValue; flip a byte of it (after the
    // header 10, the owner handle 4, authorizationSize 4 + the area, and the TPM2B size 2)
    const index = 0x01500033;
    tamper.command = { cc: TPM_CC.NV_DefineSpace, edit: (c) => void (c[18 + ((c[14]! << 24) | (c[15]! << 16) | (c[16]! << 8) | c[17]!) + 2]! ^= 1) };
    const err = await tpm.nvDefineSpace({ index, size: 8, authValue: "nv", auth: s }).catch((e: unknown) => e);
    expect((err as TpmResponseError).rc).toBe(0x9a2);
    tamper.response = { cc: TPM_CC.Unseal, edit: (r) => void (r[16]! ^= 1) };
    await expect(tpm.unseal(h, { auth: { session: s, password: "pw" } })).rejects.toBeInstanceOf(TpmSessionError);
    // both sides followed the nonces: the session goes on
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("tamper me"));
    await tpm.flushContext(h);
  });

  it("NV through a session: the Name changes after the first write, the client reads it each time", async () => {
    const index = 0x01500030;
    await tpm.nvDefineSpace({ index, size: 8, authValue: "nv", attributes: TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE | TPMA_NV.NO_DA });
    await using s = await tpm.startAuthSession({ salt: srk, attributes: { decrypt: true, encrypt: true } });
    await tpm.nvWrite(index, enc("12345678"), { auth: { session: s, password: "nv" } });
    expect(await tpm.nvRead(index, { auth: { session: s, password: "nv" } })).toEqual(enc("12345678"));
    await tpm.nvUndefineSpace(index);
  });

  it("a session bound to an NV index stops being bound when the first write changes the index's Name (TPMA_NV_WRITTEN): the client then keys the HMAC with the authValue, as swtpm does", async () => {
    const index = 0x01500032;
    await tpm.nvDefineSpace({ index, size: 8, authValue: "nv", attributes: TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE | TPMA_NV.NO_DA });
    await using s = await tpm.startAuthSession({ bind: { handle: index, auth: "nv" } });
    for (let i = 0; i < 3; i++) await tpm.nvWrite(index, new Uint8Array(8).fill(i), { auth: { session: s, password: "nv" } });
    expect(await tpm.nvRead(index, { auth: { session: s, password: "nv" } })).toEqual(new Uint8Array(8).fill(2));
    await tpm.nvUndefineSpace(index);
  });

  it("a sequence object (empty Name) through a session, and concurrent calls sharing one session (they run one after the other)", async () => {
    const seq = await tpm.hashSequenceStart("sha256", "sq");
    await using s = await tpm.startAuthSession();
    await tpm.sequenceUpdate(seq, enc("abc"), { auth: { session: s, password: "sq" } });
    expect((await tpm.sequenceComplete(seq, enc("def"), "null", { auth: { session: s, password: "sq" } })).digest).toEqual(sha256(enc("abcdef")));
    const h = await seal(enc("shared"));
    const all = await Promise.all([1, 2, 3].map(() => tpm.unseal(h, { auth: { session: s, password: "pw" } })));
    expect(all).toEqual([enc("shared"), enc("shared"), enc("shared")]);
    await tpm.flushContext(h);
  });
});

describe("policy sessions on swtpm", () => {
  it("PolicyPassword, PolicyAuthValue, PolicyCommandCode, PolicyPCR, PolicyOR: digests as computed offline, and the objects unseal", async () => {
    for (const kind of ["password", "authValue"] as const) {
      const want = kind === "password" ? policy().password().digest : policy().authValue().digest;
      const h = await seal(enc(kind), "pw", want);
      await using s = await tpm.startAuthSession({ type: "policy", attributes: { encrypt: true } });
      if (kind === "password") await tpm.policyPassword(s);
      else await tpm.policyAuthValue(s);
      expect(await tpm.policyGetDigest(s)).toEqual(want);
      expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc(kind));
      await tpm.flushContext(h);
    }
    const pcrs = await tpm.pcrRead({ sha256: [16] });
    const a = policy().commandCode(TPM_CC.Unseal);
    const b = policy().pcr({ sha256: [16] }, pcrs);
    const either = policy().or([a, b]).digest;
    const h = await seal(enc("either"), "pw", either);
    await using s = await tpm.startAuthSession({ type: "policy", salt: srk, attributes: { encrypt: true } });
    await tpm.policyPCR(s, { sha256: [16] }, { pcrDigest: sha256(pcrs.sha256![16]!) });
    await tpm.policyOR(s, [a.digest, b.digest]);
    // a policy session that encrypts: the entity's authValue is in the encryption key (swtpm 0.7.1, measured)
    expect(await tpm.unseal(h, { auth: { session: s, password: "pw" } })).toEqual(enc("either"));
    await tpm.policyCommandCode(s, TPM_CC.Unseal);
    await tpm.policyOR(s, [a.digest, b.digest]);
    expect(await tpm.policyGetDigest(s)).toEqual(either);
    await tpm.policyRestart(s);
    expect(await tpm.policyGetDigest(s)).toEqual(new Uint8Array(32));
    await tpm.flushContext(h);
  });

  it("PolicySecret, PolicySigned, PolicyAuthorize and PolicyNV", async () => {
    const key = await tpm.createPrimary(eccSigningTemplate());
    const index = 0x01500031;
    await tpm.nvDefineSpace({ index, size: 4, authValue: "nv", attributes: TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE | TPMA_NV.NO_DA });
    await tpm.nvWrite(index, enc("OKAY"), { auth: "nv" });
    const { name: nvName } = await tpm.nvReadPublic(index);
    const cases: [Uint8Array, (s: Awaited<ReturnType<Tpm["startAuthSession"]>>) => Promise<void>][] = [
      [policy().secret(u32be(TPM_RH.OWNER)).digest, async (s) => void (await tpm.policySecret("owner", s, { auth: "" }))],
      [policy().signed(key.name).digest, async (s) => void (await tpm.policySigned(key.handle, s, await tpm.sign(key.handle, s.policySignedDigest(), { scheme: "ecdsa" })))],
      [policy().nv(nvName, enc("OKAY"), 0, TPM_EO.EQ).digest, (s) => tpm.policyNV(s, index, enc("OKAY"), { auth: "nv" })],
      [
        policy().authorize(key.name).digest,
        async (s) => {
          const approved = policy().commandCode(TPM_CC.Unseal).digest;
          const aHash = sha256(approved);
          const ticket = await tpm.verifySignature(key.handle, aHash, await tpm.sign(key.handle, aHash, { scheme: "ecdsa" }));
          await tpm.policyCommandCode(s, TPM_CC.Unseal);
          await tpm.policyAuthorize(s, approved, key.name, ticket);
        },
      ],
    ];
    for (const [want, assert] of cases) {
      const h = await seal(enc("policy"), "pw", want);
      await using s = await tpm.startAuthSession({ type: "policy" });
      await assert(s);
      expect(await tpm.policyGetDigest(s)).toEqual(want);
      expect(await tpm.unseal(h, { auth: s })).toEqual(enc("policy"));
      await tpm.flushContext(h);
    }
    await tpm.nvUndefineSpace(index);
    await tpm.flushContext(key.handle);
  });
});
