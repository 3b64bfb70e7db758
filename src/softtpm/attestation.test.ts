import { describe, expect, it } from "vitest";
import { constants, createCipheriv, createPublicKey, generateKeyPairSync, privateDecrypt, publicEncrypt, verify } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmReader } from "../wire/buffer.js";
import { TPM_ALG, TPM_ST, TPMA_OBJECT } from "../wire/constants.js";
import { TPM_ST_ATTEST_NV_DIGEST, type TpmsAttest, unmarshalAttest } from "../wire/attest.js";
import { type TpmtPublic, marshalPublic, readPublic } from "../wire/structures.js";
import type { SoftTpm } from "./softtpm.js";
import { authCmd, cmd, hex, nvPublic, pcrExtend, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

// Response codes below were compared with swtpm 0.7.1 running the same command sequence (86
// commands, every code equal); the comments name the code.
const OWNER = 0x40000001;
const ENDORSEMENT = 0x4000000b;
const RH_NULL = 0x40000007;
const CC = { CreatePrimary: 0x131, Quote: 0x158, Certify: 0x148, CertifyCreation: 0x14a, GetTime: 0x14c, NV_Certify: 0x184, MakeCredential: 0x168, ActivateCredential: 0x147, NV_DefineSpace: 0x12a, NV_Write: 0x137, LoadExternal: 0x167, ReadPublic: 0x173, ReadClock: 0x181, FlushContext: 0x165 };
const A = TPMA_OBJECT;
const NULL_SCHEME = u16(TPM_ALG.NULL);
const E = new Uint8Array(0);

function rsaTemplate(attrs: number, bits: number, opts: { storage?: boolean; scheme?: number; hash?: number } = {}): Uint8Array {
  return marshalPublic({
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: attrs,
    authPolicy: E,
    symmetric: opts.storage ? { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB } : { algorithm: TPM_ALG.NULL, keyBits: 0, mode: TPM_ALG.NULL },
    scheme: { scheme: opts.scheme ?? TPM_ALG.NULL, hashAlg: opts.hash ?? 0 },
    keyBits: bits,
    exponent: 0,
    unique: E,
  });
}
const BASE = A.FIXEDTPM | A.FIXEDPARENT | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA;
/** An EK-like storage key (AES-128-CFB; RSA-1024 keeps the tests fast). */
const STORAGE = rsaTemplate(BASE | A.RESTRICTED | A.DECRYPT, 1024, { storage: true });
/** An attestation key: restricted RSASSA-SHA256 (RSA-1024 keeps the tests fast). */
const SIGNER = rsaTemplate(BASE | A.RESTRICTED | A.SIGN_ENCRYPT, 1024, { scheme: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256 });
const createParams = (tpl: Uint8Array, data: number[] = []) => [...t2b([...t2b([]), ...t2b(data)]), ...t2b(tpl), ...u16(0), ...u32(0)];

interface Primary {
  h: number;
  pub: TpmtPublic;
  creationHash: Uint8Array;
  ticket: number[];
  name: Uint8Array;
}

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}

/** The parameter area of a response (bounded by parameterSize when there are sessions). */
function params(r: Uint8Array, handle = false): TpmReader {
  const at = 10 + (handle ? 4 : 0);
  if (r[1] !== 2) return new TpmReader(r, at);
  return new TpmReader(r, at + 4, at + 4 + u32At(r, at));
}

function primary(t: SoftTpm, hierarchy: number, tpl: Uint8Array, data: number[] = []): Primary {
  const r = ok(t.executeSync(authCmd(CC.CreatePrimary, [hierarchy], [[]], createParams(tpl, data)), 0));
  const rd = params(r, true);
  const pub = readPublic(new TpmReader(rd.tpm2b()));
  rd.tpm2b();
  const creationHash = rd.tpm2b().slice();
  const tag = rd.u16();
  const hier = rd.u32();
  const digest = rd.tpm2b().slice();
  const name = rd.tpm2b().slice();
  return { h: u32At(r, 10), pub, creationHash, ticket: [...u16(tag), ...u32(hier), ...t2b(digest)], name };
}

/** A signed attestation: the TPMS_ATTEST bytes, parsed, and the TPMT_SIGNATURE fields. */
function attestOf(r: Uint8Array): { bytes: Uint8Array; a: TpmsAttest; sigAlg: number; hash: number; sig: Uint8Array } {
  ok(r);
  const rd = params(r);
  const bytes = rd.tpm2b().slice();
  const sigAlg = rd.u16();
  if (sigAlg === TPM_ALG.NULL) return { bytes, a: unmarshalAttest(bytes), sigAlg, hash: 0, sig: E };
  const hash = rd.u16();
  const sig = sigAlg === TPM_ALG.HMAC ? rd.bytesN(32).slice() : rd.tpm2b().slice();
  expect(rd.remaining).toBe(0);
  return { bytes, a: unmarshalAttest(bytes), sigAlg, hash, sig };
}

/** Does `sig` verify as RSASSA-PKCS1-v1_5 / SHA-256 over `data` under the RSA key `pub`? */
function rsaVerifies(pub: TpmtPublic, data: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({ key: { kty: "RSA", n: Buffer.from(pub.unique as Uint8Array).toString("base64url"), e: "AQAB" }, format: "jwk" });
  return verify("sha256", data, { key, padding: constants.RSA_PKCS1_PADDING }, sig);
}

const sel = (mask: number) => [...u32(1), ...u16(TPM_ALG.SHA256), 3, mask & 0xff, (mask >> 8) & 0xff, (mask >> 16) & 0xff];
const quote = (t: SoftTpm, h: number, qd: number[], scheme: number[] = NULL_SCHEME, s: number[] = sel(0xff)) => t.executeSync(authCmd(CC.Quote, [h], [[]], [...t2b(qd), ...scheme, ...s]), 0);

function readClock(t: SoftTpm): { resetCount: number; restartCount: number } {
  const rd = params(ok(t.executeSync(cmd(0x8001, CC.ReadClock), 0)));
  rd.u64();
  rd.u64();
  return { resetCount: rd.u32(), restartCount: rd.u32() };
}

describe("TPM2_Quote (Part 3 §18.4)", () => {
  it("signs a TPMS_ATTEST with the nonce and the digest of the selected PCRs, which the key's public part verifies", () => {
    const t = startedTpm();
    const ak = primary(t, OWNER, SIGNER);
    const d = sha256(Uint8Array.of(1, 2, 3));
    ok(t.executeSync(pcrExtend(0, [[TPM_ALG.SHA256, d]]), 0));
    const nonce = Array.from({ length: 32 }, (_, i) => i);
    const q = attestOf(quote(t, ak.h, nonce, NULL_SCHEME, sel(0b11)));
    expect(q.a.type).toBe(TPM_ST.ATTEST_QUOTE);
    if (q.a.type !== TPM_ST.ATTEST_QUOTE) return;
    expect([...q.a.extraData]).toEqual(nonce);
    const pcr0 = sha256(Uint8Array.from([...new Uint8Array(32), ...d]));
    expect(hex(q.a.attested.pcrDigest)).toBe(hex(sha256(Uint8Array.from([...pcr0, ...new Uint8Array(32)]))));
    expect(q.a.attested.pcrSelect).toEqual([{ hash: TPM_ALG.SHA256, pcrs: [0, 1] }]);
    // qualifiedSigner is the key's qualified name (ReadPublic's third output)
    const rp = params(ok(t.executeSync(cmd(0x8001, CC.ReadPublic, u32(ak.h)), 0)));
    rp.tpm2b();
    rp.tpm2b();
    expect(hex(q.a.qualifiedSigner)).toBe(hex(rp.tpm2b()));
    expect([q.sigAlg, q.hash]).toEqual([TPM_ALG.RSASSA, TPM_ALG.SHA256]);
    expect(rsaVerifies(ak.pub, q.bytes, q.sig)).toBe(true);
    const tampered = q.bytes.slice();
    tampered[tampered.length - 1]! ^= 1;
    expect(rsaVerifies(ak.pub, tampered, q.sig)).toBe(false);
  });

  it("gives swtpm's response codes for keys, schemes, qualifying data and PCR selections", () => {
    const t = startedTpm();
    const ek = primary(t, ENDORSEMENT, STORAGE);
    const ak = primary(t, OWNER, SIGNER);
    const codes = {
      qd66: quote(t, ak.h, Array(66).fill(1)), // TPM2B_DATA holds sizeof(TPMT_HA): more than a digest is fine
      qd67: quote(t, ak.h, Array(67).fill(1)),
      storageKey: quote(t, ek.h, []),
      pss: quote(t, ak.h, [], [...u16(TPM_ALG.RSAPSS), ...u16(TPM_ALG.SHA256)]),
      otherHash: quote(t, ak.h, [], [...u16(TPM_ALG.RSASSA), ...u16(TPM_ALG.SHA1)]),
      sameScheme: quote(t, ak.h, [], [...u16(TPM_ALG.RSASSA), ...u16(TPM_ALG.SHA256)]),
      unknownScheme: quote(t, ak.h, [], [...u16(0x99), ...u16(TPM_ALG.SHA256)]),
      unknownHash: quote(t, ak.h, [], [...u16(TPM_ALG.RSASSA), ...u16(0x99)]),
      nullKey: quote(t, RH_NULL, []),
      select4: quote(t, ak.h, [], NULL_SCHEME, [...u32(1), ...u16(TPM_ALG.SHA256), 4, 1, 0, 0, 0]),
      selectHash: quote(t, ak.h, [], NULL_SCHEME, [...u32(1), ...u16(0x99), 3, 1, 0, 0]),
      select5: quote(t, ak.h, [], NULL_SCHEME, [...u32(5), ...u16(TPM_ALG.SHA256), 3, 1, 0, 0]),
      selectNone: quote(t, ak.h, [], NULL_SCHEME, u32(0)),
      missing: quote(t, 0x81000099, []),
    };
    const got = Object.fromEntries(Object.entries(codes).map(([k, r]) => [k, rcOf(r)]));
    expect(got).toEqual({
      qd66: 0,
      qd67: 0x1d5, // TPM_RC_SIZE + P1
      storageKey: 0x19c, // TPM_RC_KEY + H1
      pss: 0x2d2, // TPM_RC_SCHEME + P2: not the key's scheme
      otherHash: 0x2d2,
      sameScheme: 0,
      unknownScheme: 0x2d2,
      unknownHash: 0x2c3, // TPM_RC_HASH + P2
      nullKey: 0x2d2, // no key, no scheme hash for the PCR digest
      select4: 0x3c4, // TPM_RC_VALUE + P3: sizeofSelect
      selectHash: 0x3c3,
      select5: 0x3d5,
      selectNone: 0,
      missing: 0x18b, // TPM_RC_HANDLE + H1: no such persistent object
    });
  });

  it("signs with a keyed-hash (HMAC) key: the signature is HMAC(key, TPMS_ATTEST)", () => {
    const t = startedTpm();
    const key = Array.from({ length: 32 }, (_, i) => 0x40 + i);
    const tpl = marshalPublic({ type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: A.FIXEDTPM | A.FIXEDPARENT | A.USERWITHAUTH | A.NODA | A.SIGN_ENCRYPT, authPolicy: E, scheme: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 }, unique: E });
    const hk = primary(t, OWNER, tpl, key);
    const q = attestOf(quote(t, hk.h, [9]));
    expect([q.sigAlg, q.hash]).toEqual([TPM_ALG.HMAC, TPM_ALG.SHA256]);
    expect(hex(q.sig)).toBe(hex(hmac(sha256, Uint8Array.from(key), sha256(q.bytes))));
  });

  it("obfuscates resetCount, restartCount and firmwareVersion for an owner-hierarchy signer, the same way each time (Part 1 §36.7)", () => {
    const t = startedTpm({ firmwareVersion: [0x20191023, 0x00163636] });
    const owner = primary(t, OWNER, SIGNER);
    const endorsement = primary(t, ENDORSEMENT, SIGNER);
    const plain = readClock(t);
    const a1 = attestOf(quote(t, owner.h, [])).a;
    const a2 = attestOf(quote(t, owner.h, [])).a;
    const e = attestOf(quote(t, endorsement.h, [])).a;
    expect(e.clockInfo.resetCount).toBe(plain.resetCount);
    expect(e.clockInfo.restartCount).toBe(plain.restartCount);
    expect(e.firmwareVersion).toBe(0x2019102300163636n);
    expect(a1.firmwareVersion).not.toBe(0x2019102300163636n);
    expect([a1.clockInfo.resetCount, a1.clockInfo.restartCount]).not.toEqual([plain.resetCount, plain.restartCount]);
    expect([a2.clockInfo.resetCount, a2.clockInfo.restartCount, a2.firmwareVersion]).toEqual([a1.clockInfo.resetCount, a1.clockInfo.restartCount, a1.firmwareVersion]);
  });
});

describe("TPM2_Certify and TPM2_CertifyCreation (Part 3 §18.2, §18.3)", () => {
  const certify = (t: SoftTpm, o: number, s: number, qd: number[] = []) => t.executeSync(authCmd(CC.Certify, [o, s], [[], []], [...t2b(qd), ...NULL_SCHEME]), 0);
  const certifyCreation = (t: SoftTpm, s: number, o: number, ch: Uint8Array, ticket: number[]) => t.executeSync(authCmd(CC.CertifyCreation, [s, o], [[]], [...t2b([9]), ...t2b(ch), ...NULL_SCHEME, ...ticket]), 0);

  it("certifies an object's Name and qualified name, signed by the attestation key", () => {
    const t = startedTpm();
    const ek = primary(t, ENDORSEMENT, STORAGE);
    const ak = primary(t, OWNER, SIGNER);
    const c = attestOf(certify(t, ek.h, ak.h, [1, 2, 3]));
    expect(c.a.type).toBe(TPM_ST.ATTEST_CERTIFY);
    if (c.a.type !== TPM_ST.ATTEST_CERTIFY) return;
    expect(hex(c.a.attested.name)).toBe(hex(ek.name));
    expect(hex(c.a.extraData)).toBe("010203");
    expect(rsaVerifies(ak.pub, c.bytes, c.sig)).toBe(true);
    // no signing key: the TPMS_ATTEST with a NULL signature, and TPM_RH_NULL as the signer
    const n = attestOf(certify(t, ek.h, RH_NULL));
    expect([n.sigAlg, hex(n.a.qualifiedSigner)]).toEqual([TPM_ALG.NULL, "40000007"]);
    expect(rcOf(certify(t, ak.h, ek.h))).toBe(0x29c); // TPM_RC_KEY + H2
    expect(rcOf(certify(t, RH_NULL, ak.h))).toBe(0x184); // TPM_RC_VALUE + H1: objectHandle is not TPMI_DH_OBJECT+
  });

  it("authorizes objectHandle in the ADMIN role: adminWithPolicy refuses a password with TPM_RC_AUTH_TYPE", () => {
    const t = startedTpm();
    const ak = primary(t, OWNER, SIGNER);
    const adm = primary(t, OWNER, rsaTemplate(BASE | A.ADMINWITHPOLICY | A.RESTRICTED | A.DECRYPT, 1024, { storage: true }));
    expect(rcOf(certify(t, adm.h, ak.h))).toBe(0x124);
    expect(rcOf(certify(t, ak.h, ak.h))).toBe(0); // a key certifies itself
  });

  it("checks the creation ticket of CreatePrimary: another hash, object, tag or hierarchy is refused", () => {
    const t = startedTpm();
    const ek = primary(t, ENDORSEMENT, STORAGE);
    const ak = primary(t, OWNER, SIGNER);
    const c = attestOf(certifyCreation(t, ak.h, ek.h, ek.creationHash, ek.ticket));
    expect(c.a.type).toBe(TPM_ST.ATTEST_CREATION);
    if (c.a.type !== TPM_ST.ATTEST_CREATION) return;
    expect([hex(c.a.attested.objectName), hex(c.a.attested.creationHash)]).toEqual([hex(ek.name), hex(ek.creationHash)]);
    expect(rsaVerifies(ak.pub, c.bytes, c.sig)).toBe(true);
    const badHash = ek.creationHash.slice();
    badHash[0]! ^= 1;
    const digest = ek.ticket.slice(6);
    expect(rcOf(certifyCreation(t, ak.h, ek.h, badHash, ek.ticket))).toBe(0x4e0); // TPM_RC_TICKET + P4
    expect(rcOf(certifyCreation(t, ak.h, ak.h, ek.creationHash, ek.ticket))).toBe(0x4e0);
    expect(rcOf(certifyCreation(t, ak.h, ek.h, ek.creationHash, [...u16(0x8021), ...u32(OWNER), ...digest]))).toBe(0x4e0);
    expect(rcOf(certifyCreation(t, ak.h, ek.h, ek.creationHash, [...u16(0x8021), ...u32(RH_NULL), ...u16(0)]))).toBe(0x4e0);
    expect(rcOf(certifyCreation(t, ak.h, ek.h, ek.creationHash, [...u16(0x8022), ...ek.ticket.slice(2)]))).toBe(0x4d7); // TPM_RC_TAG + P4
    expect(rcOf(certifyCreation(t, ak.h, ek.h, ek.creationHash, [...u16(0x8021), ...u32(0x4000000a), ...digest]))).toBe(0x4c4); // TPM_RC_VALUE + P4
    expect(rcOf(certifyCreation(t, ek.h, ek.h, ek.creationHash, ek.ticket))).toBe(0x19c); // TPM_RC_KEY + H1
  });
});

describe("TPM2_GetTime (Part 3 §18.7)", () => {
  const getTime = (t: SoftTpm, p: number, s: number) => t.executeSync(authCmd(CC.GetTime, [p, s], [[], []], [...t2b([7]), ...NULL_SCHEME]), 0);

  it("reports clock, counts and firmware in plain text inside, obfuscating only the common fields for an owner signer", () => {
    const t = startedTpm({ firmwareVersion: [0x20191023, 0x00163636] });
    const ak = primary(t, OWNER, SIGNER);
    const plain = readClock(t);
    const g = attestOf(getTime(t, ENDORSEMENT, ak.h));
    expect(g.a.type).toBe(TPM_ST.ATTEST_TIME);
    if (g.a.type !== TPM_ST.ATTEST_TIME) return;
    expect(g.a.attested.firmwareVersion).toBe(0x2019102300163636n);
    expect([g.a.attested.clockInfo.resetCount, g.a.attested.clockInfo.restartCount]).toEqual([plain.resetCount, plain.restartCount]);
    expect(g.a.firmwareVersion).not.toBe(0x2019102300163636n);
    expect(rsaVerifies(ak.pub, g.bytes, g.sig)).toBe(true);
    expect(attestOf(getTime(t, ENDORSEMENT, RH_NULL)).sigAlg).toBe(TPM_ALG.NULL);
    expect(rcOf(getTime(t, OWNER, ak.h))).toBe(0x184); // TPM_RC_VALUE + H1: TPMI_RH_ENDORSEMENT
  });
});

describe("TPM2_NV_Certify (Part 3 §31.16)", () => {
  const NV = 0x01500001;
  const nvCertify = (t: SoftTpm, s: number, auth: number, size: number, offset: number, index = NV) => t.executeSync(authCmd(CC.NV_Certify, [s, auth, index], [[], []], [...t2b([5]), ...NULL_SCHEME, ...u16(size), ...u16(offset)]), 0);

  it("certifies a range of the index, or the digest of all of it for size 0 at offset 0", () => {
    const t = startedTpm();
    const ak = primary(t, OWNER, SIGNER);
    // ownerread | ownerwrite | authread | authwrite | no_da
    ok(t.executeSync(authCmd(CC.NV_DefineSpace, [OWNER], [[]], [...t2b([]), ...nvPublic(NV, 0x02060006, 16)]), 0));
    expect(rcOf(nvCertify(t, ak.h, NV, 8, 0))).toBe(0x14a); // TPM_RC_NV_UNINITIALIZED
    const data = Array.from({ length: 16 }, (_, i) => i);
    ok(t.executeSync(authCmd(CC.NV_Write, [NV, NV], [[]], [...t2b(data), ...u16(0)]), 0));
    const c = attestOf(nvCertify(t, ak.h, NV, 8, 4));
    expect(c.a.type).toBe(TPM_ST.ATTEST_NV);
    if (c.a.type !== TPM_ST.ATTEST_NV) return;
    expect([c.a.attested.offset, [...c.a.attested.nvContents]]).toEqual([4, data.slice(4, 12)]);
    expect(hex(c.a.attested.indexName.subarray(0, 2))).toBe("000b");
    expect(rsaVerifies(ak.pub, c.bytes, c.sig)).toBe(true);
    const d = attestOf(nvCertify(t, ak.h, OWNER, 0, 0));
    expect(d.a.type).toBe(TPM_ST_ATTEST_NV_DIGEST);
    if (d.a.type !== TPM_ST_ATTEST_NV_DIGEST) return;
    expect(hex(d.a.attested.nvDigest)).toBe(hex(sha256(Uint8Array.from(data))));
    expect(rcOf(nvCertify(t, ak.h, NV, 8, 9))).toBe(0x146); // TPM_RC_NV_RANGE
    expect(rcOf(nvCertify(t, RH_NULL, NV, 2, 0))).toBe(0);
  });

  it("applies the read checks: no AUTHREAD is TPM_RC_AUTH_UNAVAILABLE, no PPREAD TPM_RC_NV_AUTHORIZATION", () => {
    const t = startedTpm();
    const ak = primary(t, OWNER, SIGNER);
    const NVJ = 0x01500002;
    // authwrite | ownerread | no_da
    ok(t.executeSync(authCmd(CC.NV_DefineSpace, [OWNER], [[]], [...t2b([]), ...nvPublic(NVJ, 0x02020004, 8)]), 0));
    ok(t.executeSync(authCmd(CC.NV_Write, [NVJ, NVJ], [[]], [...t2b([1, 2]), ...u16(0)]), 0));
    expect(rcOf(nvCertify(t, ak.h, NVJ, 2, 0, NVJ))).toBe(0x12f);
    expect(rcOf(nvCertify(t, ak.h, 0x4000000c, 2, 0, NVJ))).toBe(0x149);
    expect(rcOf(nvCertify(t, ak.h, OWNER, 2, 0, NVJ))).toBe(0);
  });
});

/** KDFa with SHA-256 (Part 1 §11.4.10.2), written out for the test. */
function kdfa(key: Uint8Array, label: string, context: Uint8Array, bits: number): Uint8Array {
  const out: number[] = [];
  for (let i = 1; out.length < bits / 8; i++) out.push(...hmac(sha256, key, Uint8Array.from([...u32(i), ...new TextEncoder().encode(label), 0, ...context, ...u32(bits)])));
  return Uint8Array.from(out.slice(0, bits / 8));
}

describe("TPM2_MakeCredential and TPM2_ActivateCredential (Part 3 §12.5, §12.6; Part 1 §24)", () => {
  const makeCredential = (t: SoftTpm, h: number, cred: number[] | Uint8Array, name: number[] | Uint8Array) => t.executeSync(cmd(0x8001, CC.MakeCredential, [...u32(h), ...t2b(cred), ...t2b(name)]), 0);
  const activate = (t: SoftTpm, act: number, key: number, blob: number[] | Uint8Array, secret: number[] | Uint8Array) => t.executeSync(authCmd(CC.ActivateCredential, [act, key], [[], []], [...t2b(blob), ...t2b(secret)]), 0);
  const credential = Array.from({ length: 32 }, (_, i) => 0xa0 + i);
  const split = (r: Uint8Array) => {
    const rd = params(ok(r));
    return { blob: rd.tpm2b().slice(), secret: rd.tpm2b().slice() };
  };

  it("protects the credential as Part 1 §24 says: OAEP(\"IDENTITY\") seed, KDFa keys, HMAC over encIdentity ‖ Name", () => {
    const t = startedTpm();
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const n = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
    const pub = readPublic(new TpmReader(STORAGE));
    const ekPub = marshalPublic({ ...pub, unique: new Uint8Array(n) } as TpmtPublic);
    const le = ok(t.executeSync(cmd(0x8001, CC.LoadExternal, [...u16(0), ...t2b(ekPub), ...u32(RH_NULL)]), 0));
    const name = Uint8Array.from([0x00, 0x0b, ...sha256(Uint8Array.of(1))]);
    const { blob, secret } = split(makeCredential(t, u32At(le, 10), credential, name));
    expect(secret.length).toBe(256);
    const seed = new Uint8Array(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Buffer.from("IDENTITY\0") }, secret));
    expect(seed.length).toBe(32);
    const integrity = blob.subarray(2, 34);
    const enc = blob.subarray(34);
    expect(hex(blob.subarray(0, 2))).toBe("0020");
    expect(hex(integrity)).toBe(hex(hmac(sha256, kdfa(seed, "INTEGRITY", E, 256), Uint8Array.from([...enc, ...name]))));
    // encIdentity = AES-128-CFB(KDFa(seed, "STORAGE", Name), IV 0, TPM2B_DIGEST credential)
    const c = createCipheriv("aes-128-cfb", kdfa(seed, "STORAGE", name, 128), new Uint8Array(16));
    expect(hex(enc)).toBe(hex(Uint8Array.from(c.update(Uint8Array.from([0, 32, ...credential])))));
  });

  it("activates a credential a verifier made with node:crypto for the TPM's EK, only for the object whose Name it names", () => {
    const t = startedTpm();
    const ek = primary(t, ENDORSEMENT, STORAGE);
    const ak = primary(t, OWNER, SIGNER);
    const key = createPublicKey({ key: { kty: "RSA", n: Buffer.from(ek.pub.unique as Uint8Array).toString("base64url"), e: "AQAB" }, format: "jwk" });
    const seed = sha256(Uint8Array.of(42));
    const secret = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Buffer.from("IDENTITY\0") }, seed);
    const c = createCipheriv("aes-128-cfb", kdfa(seed, "STORAGE", ak.name, 128), new Uint8Array(16));
    const enc = Uint8Array.from(c.update(Uint8Array.from([0, 32, ...credential])));
    const blob = [0, 32, ...hmac(sha256, kdfa(seed, "INTEGRITY", E, 256), Uint8Array.from([...enc, ...ak.name])), ...enc];
    const r = ok(activate(t, ak.h, ek.h, blob, secret));
    expect([...params(r).tpm2b()]).toEqual(credential);
    expect(rcOf(activate(t, ek.h, ek.h, blob, secret))).toBe(0x1df); // TPM_RC_INTEGRITY + P1: another object's Name
  });

  it("round-trips on SoftTpm with swtpm's response codes for wrong keys, sizes and corrupted blobs", () => {
    const t = startedTpm();
    const ek = primary(t, ENDORSEMENT, STORAGE);
    const ak = primary(t, OWNER, SIGNER);
    const { blob, secret } = split(makeCredential(t, ek.h, credential, ak.name));
    expect([...params(ok(activate(t, ak.h, ek.h, blob, secret))).tpm2b()]).toEqual(credential);
    const corrupt = (b: Uint8Array, at: number) => {
      const c = b.slice();
      c[at]! ^= 1;
      return c;
    };
    const codes = {
      makeWithSigner: rcOf(makeCredential(t, ak.h, credential, ak.name)), // TPM_RC_TYPE + H1
      credential33: rcOf(makeCredential(t, ek.h, [...credential, 1], ak.name)), // TPM_RC_SIZE + P1
      name68: rcOf(makeCredential(t, ek.h, credential, Array(68).fill(0))), // sizeof(TPMU_NAME) is 68 in libtpms
      name70: rcOf(makeCredential(t, ek.h, credential, Array(70).fill(0))),
      emptyName: rcOf(makeCredential(t, ek.h, credential, [])),
      signerAsKey: rcOf(activate(t, ak.h, ak.h, blob, secret)), // TPM_RC_TYPE + H2
      secretShort: rcOf(activate(t, ak.h, ek.h, blob, secret.slice(1))), // TPM_RC_SIZE + P2
      secretEmpty: rcOf(activate(t, ak.h, ek.h, blob, [])),
      secretCorrupt: rcOf(activate(t, ak.h, ek.h, blob, corrupt(secret, 5))), // TPM_RC_FAILURE, as swtpm
      secretAllOnes: rcOf(activate(t, ak.h, ek.h, blob, Array(secret.length).fill(0xff))), // above the modulus
      blobCorrupt: rcOf(activate(t, ak.h, ek.h, corrupt(blob, 40), secret)), // TPM_RC_INTEGRITY + P1
      blobEmpty: rcOf(activate(t, ak.h, ek.h, [], secret)), // TPM_RC_INSUFFICIENT + P1
      blobTruncated: rcOf(activate(t, ak.h, ek.h, blob.slice(0, 20), secret)),
      integrity31: rcOf(activate(t, ak.h, ek.h, [0, 31, ...blob.slice(3)], secret)),
    };
    expect(codes).toEqual({
      makeWithSigner: 0x18a,
      credential33: 0x1d5,
      name68: 0,
      name70: 0x2d5,
      emptyName: 0,
      signerAsKey: 0x28a,
      secretShort: 0x2d5,
      secretEmpty: 0x2d5,
      secretCorrupt: 0x101,
      secretAllOnes: 0x101,
      blobCorrupt: 0x1df,
      blobEmpty: 0x1da,
      blobTruncated: 0x1da,
      integrity31: 0x1df,
    });
  });

  it("protects with an ECC P-256 EK (ECDH and KDFe), refusing a point off the curve", () => {
    const t = startedTpm();
    const eccEk = marshalPublic({ type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: BASE | A.RESTRICTED | A.DECRYPT, authPolicy: E, symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, scheme: { scheme: TPM_ALG.NULL, hashAlg: 0 }, curveId: 3, kdf: { scheme: TPM_ALG.NULL, hashAlg: 0 }, unique: { x: E, y: E } });
    const ek = primary(t, ENDORSEMENT, eccEk);
    const ak = primary(t, OWNER, SIGNER);
    const { blob, secret } = split(makeCredential(t, ek.h, credential, ak.name));
    expect(secret.length).toBe(2 + 32 + 2 + 32); // the ephemeral TPMS_ECC_POINT
    expect([...params(ok(activate(t, ak.h, ek.h, blob, secret))).tpm2b()]).toEqual(credential);
    const off = secret.slice();
    off[5]! ^= 1;
    expect(rcOf(activate(t, ak.h, ek.h, blob, off))).toBe(0x2e7); // TPM_RC_ECC_POINT + P2
    expect(rcOf(activate(t, ak.h, ek.h, blob, secret.slice(0, 10)))).toBe(0x2da); // TPM_RC_INSUFFICIENT + P2
  });

  it("authorizes activateHandle in the ADMIN role (adminWithPolicy: TPM_RC_AUTH_TYPE)", () => {
    const t = startedTpm();
    const ek = primary(t, ENDORSEMENT, STORAGE);
    const adm = primary(t, OWNER, rsaTemplate(BASE | A.ADMINWITHPOLICY | A.RESTRICTED | A.DECRYPT, 1024, { storage: true }));
    const { blob, secret } = split(makeCredential(t, ek.h, credential, adm.name));
    expect(rcOf(activate(t, adm.h, ek.h, blob, secret))).toBe(0x124);
  });
});
