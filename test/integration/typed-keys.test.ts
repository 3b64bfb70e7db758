/**
 * The typed key, crypto and attestation API (TPM 2.0 Part 3 §12, §14, §15, §18, §20, §24, §28)
 * against a real swtpm: every call once, its response checked by the client (Names, handles,
 * schemes, attestation fields) and its results checked here with node:crypto and verifyQuote.
 * Needs `swtpm` on PATH (CI installs it); without it the file fails, it does not skip.
 */
import { createHash, createHmac, verify as nodeVerify } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tpm } from "../../src/client/tpm.js";
import {
  eccSigningTemplate,
  ekEccP256Template,
  ekRsa2048Template,
  hmacKeyTemplate,
  publicKeyToCrypto,
  rsaSigningTemplate,
  rsaStorageTemplate,
  sealedDataTemplate,
  srkEccP256Template,
  srkRsa2048Template,
} from "../../src/client/templates.js";
import { QuoteVerificationError, verifyQuote } from "../../src/client/verify.js";
import { swtpm } from "../../src/transports/swtpm/transport.js";
import { TPM_ALG, TPM_ST, TPMA_OBJECT, TPMA_NV } from "../../src/wire/constants.js";
import type { TpmtPublic } from "../../src/wire/structures.js";
import { killAllStartedSwtpm, requireSwtpm, startSwtpm, type SwtpmPeer } from "./swtpm-peer.js";

let peer: SwtpmPeer;
let tpm: Tpm;
let srk: number;
let srkName: Uint8Array;
const A = TPMA_OBJECT;
const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

beforeAll(async () => {
  requireSwtpm();
  peer = await startSwtpm({ prefix: "tpmkit-typed-keys-" });
  tpm = await Tpm.open(swtpm(peer.data), { signal: AbortSignal.timeout(10_000) });
  const p = await tpm.createPrimary(srkRsa2048Template());
  srk = p.handle;
  srkName = p.name;
}, 30_000);

afterAll(async () => {
  await tpm?.close();
  await peer?.stop();
  killAllStartedSwtpm();
});

describe("objects on swtpm", () => {
  it("the TCG EK and SRK templates create primaries whose Names the client checked and whose keys node:crypto imports", async () => {
    for (const [tpl, hierarchy] of [
      [ekRsa2048Template(), "endorsement"],
      [ekEccP256Template(), "endorsement"],
      [srkEccP256Template(), "owner"],
    ] as const) {
      const p = await tpm.createPrimary(tpl, { hierarchy });
      const { keyObject } = publicKeyToCrypto(p.public);
      expect(keyObject.asymmetricKeyType).toBe(tpl.type === TPM_ALG.RSA ? "rsa" : "ec");
      expect((await tpm.readPublic(p.handle)).name).toEqual(p.name);
      await tpm.flushContext(p.handle);
    }
  });

  it("seal, load, unseal, change the password, context save and load, persist and evict", async () => {
    const secret = new TextEncoder().encode("sealed on swtpm");
    const s = await tpm.create(srk, sealedDataTemplate(), { data: secret, userAuth: "a" });
    expect(s.creationData.parentName).toEqual(srkName);
    const o = await tpm.load(srk, s.private, s.public);
    expect(await tpm.unseal(o.handle, { auth: "a" })).toEqual(secret);
    const priv = await tpm.objectChangeAuth(o.handle, srk, "b", { auth: "a" });
    await tpm.flushContext(o.handle);
    const o2 = await tpm.load(srk, priv, s.public);
    const ctx = await tpm.contextSave(o2.handle);
    await tpm.flushContext(o2.handle);
    const h = await tpm.contextLoad(ctx);
    expect(await tpm.unseal(h, { auth: "b" })).toEqual(secret);
    await tpm.evictControl(h, 0x81000010);
    expect(await tpm.unseal(0x81000010, { auth: "b" })).toEqual(secret);
    await tpm.evictControl(0x81000010, 0x81000010);
    await tpm.flushContext(h);
  });

  it("createLoaded and loadExternal give the same Name for the same public area", async () => {
    const k = await tpm.createLoaded(srk, rsaSigningTemplate(2048));
    const ext = await tpm.loadExternal(k.public);
    expect(ext.name).toEqual(k.name);
    await tpm.flushContext(ext.handle);
    await tpm.flushContext(k.handle);
  });
});

describe("crypto on swtpm", () => {
  it("sign (RSASSA and ECDSA SHA-256) verifies with node:crypto and with TPM2_VerifySignature", async () => {
    const digest = sha256(new TextEncoder().encode("message"));
    for (const tpl of [rsaSigningTemplate(2048), eccSigningTemplate("p256")]) {
      const k = await tpm.createLoaded(srk, tpl);
      const sig = await tpm.sign(k.handle, digest);
      const { keyObject } = publicKeyToCrypto(k.public);
      if (sig.sigAlg === TPM_ALG.RSASSA) expect(nodeVerify("sha256", new TextEncoder().encode("message"), keyObject, sig.sig!)).toBe(true);
      else {
        expect(sig.sigAlg).toBe(TPM_ALG.ECDSA);
        expect(nodeVerify("sha256", new TextEncoder().encode("message"), { key: keyObject, dsaEncoding: "ieee-p1363" }, new Uint8Array([...sig.r!, ...sig.s!]))).toBe(true);
      }
      const ticket = await tpm.verifySignature(k.handle, digest, sig);
      expect(ticket.tag).toBe(TPM_ST.VERIFIED);
      await tpm.flushContext(k.handle);
    }
    const pss = await tpm.createLoaded(srk, { ...rsaSigningTemplate(2048), scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 } } as TpmtPublic);
    const sig = await tpm.sign(pss.handle, digest, { scheme: "rsapss", hashAlg: "sha256" });
    expect(sig.sigAlg).toBe(TPM_ALG.RSAPSS);
    await tpm.flushContext(pss.handle);
  });

  it("rsaEncrypt (OAEP SHA-256) then rsaDecrypt gives the message back", async () => {
    const tpl = { ...rsaSigningTemplate(2048), objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.DECRYPT, scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 } } as TpmtPublic;
    const k = await tpm.createLoaded(srk, tpl);
    const msg = new TextEncoder().encode("a key to wrap");
    const c = await tpm.rsaEncrypt(k.handle, msg, { scheme: "oaep" });
    expect(c.length).toBe(256);
    expect(await tpm.rsaDecrypt(k.handle, c, { scheme: "oaep" })).toEqual(msg);
    await tpm.flushContext(k.handle);
  });

  it("encryptDecrypt2 (AES-128-CFB) round-trips", async () => {
    const tpl: TpmtPublic = { type: TPM_ALG.SYMCIPHER, nameAlg: TPM_ALG.SHA256, objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.DECRYPT | A.SIGN_ENCRYPT, authPolicy: new Uint8Array(0), symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, unique: new Uint8Array(0) };
    const k = await tpm.createLoaded(srk, tpl);
    const data = new Uint8Array(40).map((_, i) => i);
    const enc = await tpm.encryptDecrypt2(k.handle, data);
    expect(enc.outData).not.toEqual(data);
    expect((await tpm.encryptDecrypt2(k.handle, enc.outData, { decrypt: true })).outData).toEqual(data);
    await tpm.flushContext(k.handle);
  });

  it("hmac with a key of known bits equals node:crypto's HMAC-SHA256", async () => {
    const bits = new Uint8Array(32).fill(0x11);
    const tpl = { ...hmacKeyTemplate("sha256"), objectAttributes: hmacKeyTemplate().objectAttributes & ~A.SENSITIVEDATAORIGIN };
    const k = await tpm.createLoaded(srk, tpl, { data: bits });
    const data = new TextEncoder().encode("hmac me");
    expect(await tpm.hmac(k.handle, data)).toEqual(new Uint8Array(createHmac("sha256", bits).update(data).digest()));
    await tpm.flushContext(k.handle);
  });

  it("ecdhZGen of ecdhKeyGen's ephemeral point gives the same Z", async () => {
    const tpl = { ...eccSigningTemplate("p256"), objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.DECRYPT, scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 } } as TpmtPublic;
    const k = await tpm.createLoaded(srk, tpl);
    const { zPoint, pubPoint } = await tpm.ecdhKeyGen(k.handle);
    expect(await tpm.ecdhZGen(k.handle, pubPoint)).toEqual(zPoint);
    await tpm.flushContext(k.handle);
  });
});

describe("attestation on swtpm", () => {
  it("quote (RSA and ECC attestation keys) passes verifyQuote with the PCR values read back, and fails it with another nonce", async () => {
    await tpm.pcrExtend(16, { sha256: new Uint8Array(32).fill(0x42) });
    const pcrs = await tpm.pcrRead({ sha256: [0, 16] });
    for (const tpl of [rsaSigningTemplate(2048, { restricted: true }), eccSigningTemplate("p256", { restricted: true })]) {
      const ak = await tpm.createLoaded(srk, tpl);
      const nonce = new Uint8Array(16).fill(7);
      const q = await tpm.quote(ak.handle, nonce, { sha256: [0, 16] });
      const a = verifyQuote({ quoted: q.quoted, signature: q.signature, publicKey: ak.public, nonce, pcrs });
      expect(a.type).toBe(TPM_ST.ATTEST_QUOTE);
      expect(() => verifyQuote({ quoted: q.quoted, signature: q.signature, publicKey: ak.public, nonce: new Uint8Array(16), pcrs })).toThrow(QuoteVerificationError);
      await tpm.flushContext(ak.handle);
    }
  });

  it("certify, certifyCreation, nvCertify and getTime return the attestation type asked for", async () => {
    const ak = await tpm.createLoaded(srk, rsaSigningTemplate(2048, { restricted: true }));
    const nonce = new Uint8Array([9, 9, 9]);
    const c = await tpm.certify(srk, ak.handle, nonce);
    expect(c.attest.type === TPM_ST.ATTEST_CERTIFY && c.attest.attested.name).toEqual(srkName);

    const created = await tpm.create(srk, sealedDataTemplate(), { data: new Uint8Array([1]) });
    const obj = await tpm.load(srk, created.private, created.public);
    const cc = await tpm.certifyCreation(ak.handle, obj.handle, created.creationHash, created.creationTicket, nonce);
    expect(cc.attest.type === TPM_ST.ATTEST_CREATION && cc.attest.attested.objectName).toEqual(obj.name);
    await tpm.flushContext(obj.handle);

    const index = 0x01000200;
    await tpm.nvDefineSpace({ index, size: 8, attributes: TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD });
    await tpm.nvWrite(index, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    const nv = await tpm.nvCertify(ak.handle, index, nonce, { size: 4, offset: 2 });
    expect(nv.attest.type === TPM_ST.ATTEST_NV && nv.attest.attested.nvContents).toEqual(new Uint8Array([3, 4, 5, 6]));
    await tpm.nvUndefineSpace(index);

    const t = await tpm.getTime(ak.handle, nonce);
    expect(t.attest.type).toBe(TPM_ST.ATTEST_TIME);
    await tpm.flushContext(ak.handle);
  });

  it("makeCredential for an attestation key, activateCredential under the storage key recovers the credential", async () => {
    const ak = await tpm.createLoaded(srk, rsaSigningTemplate(2048, { restricted: true }));
    const credential = new Uint8Array(16).fill(0xc5);
    const { credentialBlob, secret } = await tpm.makeCredential(srk, credential, ak.name);
    expect(await tpm.activateCredential(ak.handle, srk, credentialBlob, secret)).toEqual(credential);
    await tpm.flushContext(ak.handle);
  });
});
