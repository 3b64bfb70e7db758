/**
 * The typed object API against SoftTpm (TPM 2.0 Part 3 §12, §24, §28): create, load, read,
 * seal and unseal, save and load contexts, persist; and the response checks (a Name that is not
 * nameAlg ‖ H(public), a handle outside the transient range, a public area that is not the
 * template's) turned into TpmFormatError, arguments refused before anything is sent.
 */
import { createHash, createHmac, verify as nodeVerify } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { TpmBackend } from "../core/transport.js";
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { memory } from "../transports/memory/index.js";
import { TPM_ALG, TPM_CC, TPM_HT, TPM_RC, TPM_RH, TPM_ST } from "../wire/constants.js";
import { TpmResponseError } from "../wire/rc.js";
import { marshalPublic, type TpmtPublic } from "../wire/structures.js";
import { eccSigningTemplate, hmacKeyTemplate, publicKeyToCrypto, rsaSigningTemplate, rsaStorageTemplate, sealedDataTemplate, srkRsa2048Template } from "./templates.js";
import { Tpm } from "./tpm.js";
import { verifyQuote } from "./verify.js";

const ccOf = (c: Uint8Array): number => ((c[6]! << 24) | (c[7]! << 16) | (c[8]! << 8) | c[9]!) >>> 0;

/** SoftTpm behind a memory transport; `tamper` may rewrite the response of one command code. */
async function open(tamper?: { cc: number; edit: (rsp: Uint8Array) => Uint8Array }): Promise<{ tpm: Tpm; sent: number[] }> {
  const soft = new SoftTpm({ seed: "keys" });
  const sent: number[] = [];
  const backend: TpmBackend = {
    start: () => soft.start(),
    async execute(command, locality, signal) {
      sent.push(ccOf(command));
      const rsp = await soft.execute(command, locality, signal);
      return tamper && ccOf(command) === tamper.cc ? tamper.edit(rsp.slice()) : rsp;
    },
  };
  const tpm = await Tpm.open(memory({ backend }));
  sent.length = 0;
  return { tpm, sent };
}

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());
const nameOf = (p: Parameters<typeof marshalPublic>[0]): Uint8Array => new Uint8Array([0x00, 0x0b, ...sha256(marshalPublic(p))]);

describe("objects on SoftTpm", () => {
  it("createPrimary returns a transient handle, the template's public area, its Name and a creation hash over the creation data", async () => {
    const { tpm } = await open();
    const p = await tpm.createPrimary(srkRsa2048Template(), { hierarchy: "owner" });
    expect(p.handle >>> 24).toBe(TPM_HT.TRANSIENT);
    expect(p.public.type).toBe(TPM_ALG.RSA);
    expect(p.public.objectAttributes).toBe(0x00030472);
    expect(p.public.type === TPM_ALG.RSA && p.public.unique.length).toBe(256);
    expect(p.name).toEqual(nameOf(p.public));
    expect(p.creationTicket.tag).toBe(TPM_ST.CREATION);
    // The same template gives the same key (primary keys derive from the hierarchy seed, Part 1 §26.3).
    const again = await tpm.createPrimary(srkRsa2048Template());
    expect(again.name).toEqual(p.name);
    const { public: read, name } = await tpm.readPublic(p.handle);
    expect(name).toEqual(p.name);
    expect(marshalPublic(read)).toEqual(marshalPublic(p.public));
  });

  it("create + load + unseal round-trips sealed data, with the object's password", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const secret = new TextEncoder().encode("the disk key");
    const sealed = await tpm.create(srk.handle, sealedDataTemplate(), { data: secret, userAuth: "pw" });
    expect(sealed.public.type).toBe(TPM_ALG.KEYEDHASH);
    const obj = await tpm.load(srk.handle, sealed.private, sealed.public);
    expect(obj.handle >>> 24).toBe(TPM_HT.TRANSIENT);
    expect(obj.name).toEqual(nameOf(sealed.public));
    expect(await tpm.unseal(obj.handle, { auth: "pw" })).toEqual(secret);
    await expect(tpm.unseal(obj.handle, { auth: "wrong" })).rejects.toMatchObject({ base: TPM_RC.AUTH_FAIL });
  });

  it("objectChangeAuth gives a private blob that loads with the new password", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const sealed = await tpm.create(srk.handle, sealedDataTemplate(), { data: new Uint8Array([1, 2, 3]), userAuth: "old" });
    const obj = await tpm.load(srk.handle, sealed.private, sealed.public);
    const priv = await tpm.objectChangeAuth(obj.handle, srk.handle, "new", { auth: "old" });
    const again = await tpm.load(srk.handle, priv, sealed.public);
    expect(await tpm.unseal(again.handle, { auth: "new" })).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("createLoaded under a storage key returns a loaded signing key whose public key node:crypto imports", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const k = await tpm.createLoaded(srk.handle, rsaSigningTemplate(2048));
    expect(k.name).toEqual(nameOf(k.public));
    const { keyObject, jwk } = publicKeyToCrypto(k.public);
    expect(keyObject.asymmetricKeyType).toBe("rsa");
    expect(keyObject.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(jwk.e).toBe("AQAB");
  });

  it("loadExternal of a public key into the null hierarchy gives its Name", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const k = await tpm.createLoaded(srk.handle, rsaSigningTemplate(2048));
    const ext = await tpm.loadExternal(k.public);
    expect(ext.handle >>> 24).toBe(TPM_HT.TRANSIENT);
    expect(ext.name).toEqual(k.name);
  });

  it("contextSave / flushContext / contextLoad bring an object back under a transient handle", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const ctx = await tpm.contextSave(srk.handle);
    expect(ctx.contextBlob.length).toBeGreaterThan(0);
    await tpm.flushContext(srk.handle);
    await expect(tpm.readPublic(srk.handle)).rejects.toBeInstanceOf(TpmResponseError);
    const h = await tpm.contextLoad(ctx);
    expect(h >>> 24).toBe(TPM_HT.TRANSIENT);
    expect((await tpm.readPublic(h)).name).toEqual(srk.name);
  });

  it("evictControl persists an object at 0x81000001 and evicts it again", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(srkRsa2048Template());
    await tpm.evictControl(srk.handle, 0x81000001);
    expect((await tpm.readPublic(0x81000001)).name).toEqual(srk.name);
    await tpm.evictControl(0x81000001, 0x81000001);
    await expect(tpm.readPublic(0x81000001)).rejects.toBeInstanceOf(TpmResponseError);
  });

  it("an HMAC key template creates a keyed-hash key with the HMAC scheme", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const k = await tpm.create(srk.handle, hmacKeyTemplate("sha256"));
    expect(k.public.type).toBe(TPM_ALG.KEYEDHASH);
    expect(k.public.type === TPM_ALG.KEYEDHASH && k.public.scheme).toEqual({ scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 });
  });
});

describe("response checks (issue 9: every field against the request)", () => {
  it("a Name that is not nameAlg ‖ H(public) is a TpmFormatError (Load)", async () => {
    // Load's response: header 10, handle 4, parameterSize 4, TPM2B_NAME, then a 5-byte password session.
    const { tpm } = await open({ cc: TPM_CC.Load, edit: (r) => ((r[r.length - 6]! ^= 1), r) });
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const s = await tpm.create(srk.handle, sealedDataTemplate(), { data: new Uint8Array([9]) });
    await expect(tpm.load(srk.handle, s.private, s.public)).rejects.toThrow(/tpm.load: the TPM returned a Name that is not nameAlg ‖ H\(public\)/);
  });

  it("a handle outside the transient range is a TpmFormatError (CreatePrimary)", async () => {
    const { tpm } = await open({ cc: TPM_CC.CreatePrimary, edit: (r) => ((r[10] = 0x81), r) });
    const e = await tpm.createPrimary(rsaStorageTemplate(2048)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TpmFormatError);
    expect(String(e)).toMatch(/not a transient handle/);
  });

  it("a public area that differs from the template is a TpmFormatError (Create)", async () => {
    // Create's response: header 10, parameterSize 4, TPM2B_PRIVATE, TPM2B_PUBLIC (size 2, type 2, nameAlg 2, attributes 4).
    const { tpm } = await open({
      cc: TPM_CC.Create,
      edit: (r) => {
        const privSize = (r[14]! << 8) | r[15]!;
        const attr = 16 + privSize + 2 + 4 + 3; // last byte of objectAttributes
        r[attr]! ^= 0x40; // userWithAuth
        return r;
      },
    });
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    await expect(tpm.create(srk.handle, sealedDataTemplate(), { data: new Uint8Array([1]) })).rejects.toThrow(/differs from the template/);
  });

  it("a creation hash that is not H(creationData) is a TpmFormatError (CreatePrimary)", async () => {
    // Find TPM2B_CREATION_DATA after the handle, parameterSize and TPM2B_PUBLIC; the 32-byte creationHash follows it.
    const { tpm } = await open({
      cc: TPM_CC.CreatePrimary,
      edit: (r) => {
        const pubAt = 10 + 4 + 4;
        const cdAt = pubAt + 2 + ((r[pubAt]! << 8) | r[pubAt + 1]!);
        const hashAt = cdAt + 2 + ((r[cdAt]! << 8) | r[cdAt + 1]!);
        expect((r[hashAt]! << 8) | r[hashAt + 1]!).toBe(32);
        r[hashAt + 2 + 31]! ^= 1;
        return r;
      },
    });
    await expect(tpm.createPrimary(rsaStorageTemplate(2048))).rejects.toThrow(/creationHash is not H_nameAlg\(creationData\)/);
  });
});

describe("arguments are refused before anything is sent", () => {
  const BAD: [string, (t: Tpm) => Promise<unknown>, RegExp][] = [
    ["createPrimary of a non-template", (t) => t.createPrimary({} as never), /tpm.createPrimary: template must be a TPMT_PUBLIC/],
    ["createPrimary with an unknown hierarchy", (t) => t.createPrimary(rsaStorageTemplate(), { hierarchy: "nope" as never }), /tpm.createPrimary: options.hierarchy/],
    ["create with too much data", (t) => t.create(0x80000000, sealedDataTemplate(), { data: new Uint8Array(129) }), /tpm.create: options.data must be 0–128 bytes, got 129/],
    ["create with a numeric userAuth", (t) => t.create(0x80000000, sealedDataTemplate(), { userAuth: 5 as never }), /tpm.create: options.userAuth must be a Uint8Array or a string/],
    ["load with an empty private", (t) => t.load(0x80000000, new Uint8Array(0), sealedDataTemplate()), /tpm.load: priv must be 1–65535 bytes, got 0/],
    ["evictControl to a transient handle", (t) => t.evictControl(0x80000000, 0x80000001), /tpm.evictControl: persistent must be a persistent handle/],
    ["sign with an unknown scheme", (t) => t.sign(0x80000000, new Uint8Array(32), { scheme: "dsa" as never }), /tpm.sign: options.scheme must be one of "rsassa", "rsapss", "ecdsa", "hmac", got string "dsa"/],
    ["quote with an empty selection", (t) => t.quote(0x80000000, new Uint8Array(8), {}), /tpm.quote: pcrs must select at least one PCR/],
    ["unseal of a string handle", (t) => t.unseal("0x80000000" as never), /tpm.unseal: handle must be an integer/],
    ["contextLoad of a non-context", (t) => t.contextLoad({} as never), /tpm.contextLoad: context must be a TPMS_CONTEXT/],
    ["hmac with an unknown hash", (t) => t.hmac(0x80000000, new Uint8Array(1), { hashAlg: "md5" as never }), /tpm.hmac: options.hashAlg must be one of/],
    ["makeCredential with an empty name", (t) => t.makeCredential(0x80000000, new Uint8Array(16), new Uint8Array(0)), /tpm.makeCredential: objectName must be 1–66 bytes, got 0/],
  ];
  for (const [what, call, msg] of BAD) {
    it(what, async () => {
      const { tpm, sent } = await open();
      const e = await call(tpm).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(TpmArgumentError);
      expect(String((e as Error).message)).toMatch(msg);
      expect(sent).toEqual([]);
    });
  }
});

it("the null hierarchy handle is what loadExternal sends by default", async () => {
  let last: Uint8Array | undefined;
  const soft = new SoftTpm({ seed: "keys" });
  const tpm = await Tpm.open(memory({ backend: { start: () => soft.start(), execute: (c, l, s) => ((last = c), soft.execute(c, l, s)) } }));
  const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
  await tpm.loadExternal(srk.public);
  const v = new DataView(last!.buffer, last!.byteOffset);
  expect(v.getUint32(last!.length - 4)).toBe(TPM_RH.NULL);
});

describe("crypto and attestation on SoftTpm", () => {
  const A = { FIXEDTPM: 0x2, FIXEDPARENT: 0x10, SDO: 0x20, USERWITHAUTH: 0x40, DECRYPT: 0x20000, SIGN: 0x40000 };
  const digest = sha256(new TextEncoder().encode("message"));
  const nonce = new Uint8Array(16).fill(7);

  it("sign (RSASSA, ECDSA) verifies with node:crypto and TPM2_VerifySignature; a signature by another key does not", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    for (const tpl of [rsaSigningTemplate(2048), eccSigningTemplate("p256")]) {
      const k = await tpm.createLoaded(srk.handle, tpl);
      const sig = await tpm.sign(k.handle, digest);
      const key = publicKeyToCrypto(k.public).keyObject;
      const msg = new TextEncoder().encode("message");
      const ok = sig.sigAlg === TPM_ALG.RSASSA ? nodeVerify("sha256", msg, key, sig.sig!) : nodeVerify("sha256", msg, { key, dsaEncoding: "ieee-p1363" }, new Uint8Array([...sig.r!, ...sig.s!]));
      expect(ok).toBe(true);
      expect((await tpm.verifySignature(k.handle, digest, sig)).tag).toBe(TPM_ST.VERIFIED);
      await expect(tpm.verifySignature(k.handle, sha256(digest), sig)).rejects.toMatchObject({ base: TPM_RC.SIGNATURE });
      await tpm.flushContext(k.handle);
    }
  });

  it("rsaEncrypt / rsaDecrypt (OAEP), encryptDecrypt2 (AES-128-CFB), hmac and ECDH round-trip", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const dec = A.FIXEDTPM | A.FIXEDPARENT | A.SDO | A.USERWITHAUTH | A.DECRYPT;
    const r = await tpm.createLoaded(srk.handle, { ...rsaSigningTemplate(2048), objectAttributes: dec, scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 } } as TpmtPublic);
    const msg = new Uint8Array([1, 2, 3]);
    expect(await tpm.rsaDecrypt(r.handle, await tpm.rsaEncrypt(r.handle, msg, { scheme: "oaep" }), { scheme: "oaep" })).toEqual(msg);
    await tpm.flushContext(r.handle);

    const sym = await tpm.createLoaded(srk.handle, { type: TPM_ALG.SYMCIPHER, nameAlg: TPM_ALG.SHA256, objectAttributes: dec | A.SIGN, authPolicy: new Uint8Array(0), symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, unique: new Uint8Array(0) });
    const enc = await tpm.encryptDecrypt2(sym.handle, digest);
    expect(enc.outData).not.toEqual(digest);
    expect((await tpm.encryptDecrypt2(sym.handle, enc.outData, { decrypt: true })).outData).toEqual(digest);
    await tpm.flushContext(sym.handle);

    const bits = new Uint8Array(32).fill(0x11);
    const h = await tpm.createLoaded(srk.handle, { ...hmacKeyTemplate(), objectAttributes: hmacKeyTemplate().objectAttributes & ~A.SDO }, { data: bits });
    expect(await tpm.hmac(h.handle, digest)).toEqual(new Uint8Array(createHmac("sha256", bits).update(digest).digest()));
    await tpm.flushContext(h.handle);

    const e = await tpm.createLoaded(srk.handle, { ...eccSigningTemplate("p256"), objectAttributes: dec, scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 } } as TpmtPublic);
    const { zPoint, pubPoint } = await tpm.ecdhKeyGen(e.handle);
    expect(await tpm.ecdhZGen(e.handle, pubPoint)).toEqual(zPoint);
  });

  it("quote passes verifyQuote with the PCRs read back and fails it after an extend", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const ak = await tpm.createLoaded(srk.handle, eccSigningTemplate("p256", { restricted: true }));
    await tpm.pcrExtend(16, { sha256: new Uint8Array(32).fill(0x42) });
    const pcrs = await tpm.pcrRead({ sha256: [0, 16] });
    const q = await tpm.quote(ak.handle, nonce, { sha256: [0, 16] });
    expect(q.signature.sigAlg).toBe(TPM_ALG.ECDSA);
    expect(verifyQuote({ ...q, publicKey: ak.public, nonce, pcrs }).attested.pcrSelect).toEqual([{ hash: TPM_ALG.SHA256, pcrs: [0, 16] }]);
    await tpm.pcrExtend(16, { sha256: new Uint8Array(32) });
    const later = await tpm.quote(ak.handle, nonce, { sha256: [0, 16] });
    expect(() => verifyQuote({ ...later, publicKey: ak.public, nonce, pcrs })).toThrow(expect.objectContaining({ field: "pcrDigest" }));
  });

  it("a quote whose extraData is not the nonce sent is a TpmFormatError", async () => {
    // Quote's response: header 10, parameterSize 4, TPM2B_ATTEST size 2, magic 4, type 2, qualifiedSigner (2 + 34), extraData (2 + n).
    const { tpm } = await open({ cc: TPM_CC.Quote, edit: (r) => ((r[10 + 4 + 2 + 6 + 36 + 2]! ^= 1), r) });
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const ak = await tpm.createLoaded(srk.handle, rsaSigningTemplate(2048, { restricted: true }));
    await expect(tpm.quote(ak.handle, nonce, { sha256: [0] })).rejects.toThrow(/tpm.quote: attest.extraData is not the qualifyingData sent/);
  });

  it("certify, certifyCreation, nvCertify and getTime attest what was asked", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const ak = await tpm.createLoaded(srk.handle, rsaSigningTemplate(2048, { restricted: true }));
    const c = await tpm.certify(srk.handle, ak.handle, nonce);
    expect(c.attest.type === TPM_ST.ATTEST_CERTIFY && c.attest.attested.name).toEqual(srk.name);
    const created = await tpm.create(srk.handle, sealedDataTemplate(), { data: new Uint8Array([1]) });
    const obj = await tpm.load(srk.handle, created.private, created.public);
    const cc = await tpm.certifyCreation(ak.handle, obj.handle, created.creationHash, created.creationTicket, nonce);
    expect(cc.attest.type === TPM_ST.ATTEST_CREATION && cc.attest.attested.objectName).toEqual(obj.name);
    await tpm.nvDefineSpace({ index: 0x01000200, size: 8 });
    await tpm.nvWrite(0x01000200, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    const nv = await tpm.nvCertify(ak.handle, 0x01000200, nonce, { size: 4, offset: 2 });
    expect(nv.attest.type === TPM_ST.ATTEST_NV && nv.attest.attested.nvContents).toEqual(new Uint8Array([3, 4, 5, 6]));
    expect((await tpm.getTime(ak.handle, nonce)).attest.type).toBe(TPM_ST.ATTEST_TIME);
  });

  it("makeCredential / activateCredential recover the credential for the named key only", async () => {
    const { tpm } = await open();
    const srk = await tpm.createPrimary(rsaStorageTemplate(2048));
    const ak = await tpm.createLoaded(srk.handle, rsaSigningTemplate(2048, { restricted: true }));
    const credential = new Uint8Array(16).fill(0xc5);
    const { credentialBlob, secret } = await tpm.makeCredential(srk.handle, credential, ak.name);
    expect(await tpm.activateCredential(ak.handle, srk.handle, credentialBlob, secret)).toEqual(credential);
    const other = await tpm.createLoaded(srk.handle, eccSigningTemplate("p256", { restricted: true }));
    await expect(tpm.activateCredential(other.handle, srk.handle, credentialBlob, secret)).rejects.toBeInstanceOf(TpmResponseError);
  });
});
