import { describe, expect, it } from "vitest";
import { constants, createCipheriv, createHash, createHmac, createPublicKey, publicEncrypt } from "node:crypto";
import { TPM_CC } from "../wire/constants.js";
import type { SoftTpm } from "./softtpm.js";
import { authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At } from "./test-helpers.js";

// TPM2_Duplicate, TPM2_Rewrap, TPM2_Import (TPM 2.0 Part 3 §13) against SoftTpm, with a client
// side written apart from SoftTpm: node:crypto for OAEP, AES-CFB and HMAC, the KDFa of Part 1
// §11.4.10.2 below.

const OWNER = 0x40000001;
const RH_NULL = 0x40000007;
const cat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const sha256 = (...parts: (Uint8Array | number[])[]) => new Uint8Array(createHash("sha256").update(cat(...parts)).digest());
const enc = (s: string) => [...new TextEncoder().encode(s)];

// TPMA_OBJECT bits (Part 2 §8.3)
const FIXEDTPM = 0x2;
const FIXEDPARENT = 0x10;
const ORIGIN = 0x20;
const USERWITHAUTH = 0x40;
const NODA = 0x400;
const ENCDUP = 0x800;
const RESTRICTED = 0x10000;
const DECRYPT = 0x20000;
const STORAGE = FIXEDTPM | FIXEDPARENT | ORIGIN | USERWITHAUTH | NODA | RESTRICTED | DECRYPT;
const AES128CFB = [...u16(0x0006), ...u16(128), ...u16(0x0043)];
const SYM_NULL = u16(0x0010);

/** policyDigest after PolicyCommandCode(Duplicate) from zero (Part 3 §23.11). */
const DUP_POLICY = sha256(new Uint8Array(32), u32(TPM_CC.PolicyCommandCode), u32(TPM_CC.Duplicate));

/** An ECC P-256 storage key template; `x` makes a different primary key. */
const eccStorage = (x: number[] = [], attrs = STORAGE) => cat(u16(0x23), u16(0x0b), u32(attrs), t2b([]), AES128CFB, u16(0x10), u16(0x0003), u16(0x10), t2b(x), t2b([]));
/** An RSA-1024 storage key template. */
const rsaStorage = () => cat(u16(0x01), u16(0x0b), u32(STORAGE), t2b([]), AES128CFB, u16(0x10), u16(1024), u32(0), t2b([]));
/** A sealed-data object (keyed-hash, no sign / decrypt) that can be duplicated. */
const sealedTemplate = (attrs = USERWITHAUTH, policy: Uint8Array = DUP_POLICY) => cat(u16(0x08), u16(0x0b), u32(attrs), t2b(policy), u16(0x10), t2b([]));
const SECRET = enc("duplicated secret");

function ok(r: Uint8Array): Uint8Array {
  if (rcOf(r) !== 0) throw new Error(`rc 0x${rcOf(r).toString(16)}`);
  return r;
}

/** The TPM2B fields of a response's parameter area, from `at`. */
function fields(r: Uint8Array, at: number, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const s = (r[at]! << 8) | r[at + 1]!;
    out.push(r.slice(at + 2, at + 2 + s));
    at += 2 + s;
  }
  return out;
}

const flush = (t: SoftTpm, h: number) => ok(t.executeSync(cmd(0x8001, TPM_CC.FlushContext, u32(h)), 0));

function primary(t: SoftTpm, template: Uint8Array): number {
  const r = ok(t.executeSync(authCmd(TPM_CC.CreatePrimary, [OWNER], [[]], [...t2b([...t2b([]), ...t2b([])]), ...t2b(template), ...u16(0), ...u32(0)]), 0));
  return u32At(r, 10);
}

function create(t: SoftTpm, parent: number, template: Uint8Array, data: number[] = []): { priv: Uint8Array; pub: Uint8Array } {
  const r = ok(t.executeSync(authCmd(TPM_CC.Create, [parent], [[]], [...t2b([...t2b(enc("pw")), ...t2b(data)]), ...t2b(template), ...u16(0), ...u32(0)]), 0));
  const [priv, pub] = fields(r, 14, 2);
  return { priv: priv!, pub: pub! };
}

function load(t: SoftTpm, parent: number, priv: Uint8Array, pub: Uint8Array): number {
  return u32At(ok(t.executeSync(authCmd(TPM_CC.Load, [parent], [[]], [...t2b(priv), ...t2b(pub)]), 0)), 10);
}

function unseal(t: SoftTpm, h: number): string {
  const r = ok(t.executeSync(authCmd(TPM_CC.Unseal, [h], [enc("pw")]), 0));
  return hex(fields(r, 14, 1)[0]!);
}

/** A policy session with PolicyCommandCode(Duplicate) unless `assert` is false. */
function dupSession(t: SoftTpm, assert = true): number {
  const r = ok(t.executeSync(cmd(0x8001, TPM_CC.StartAuthSession, [...u32(RH_NULL), ...u32(RH_NULL), ...t2b(new Uint8Array(16).fill(1)), ...u16(0), 0x01, ...u16(0x10), ...u16(0x0b)]), 0));
  const s = u32At(r, 10);
  if (assert) ok(t.executeSync(cmd(0x8001, TPM_CC.PolicyCommandCode, [...u32(s), ...u32(TPM_CC.Duplicate)]), 0));
  return s;
}

/** TPM2_Duplicate with `session` (a policy session with an empty HMAC, or the password session TPM_RS_PW). */
function duplicateCmd(obj: number, newParent: number, keyIn: number[], sym: number[], session: number): Uint8Array {
  const area = session === 0x40000009 ? [...u32(session), ...u16(0), 1, ...t2b(enc("pw"))] : [...u32(session), ...t2b(new Uint8Array(16).fill(2)), 1, ...t2b([])];
  return cmd(0x8002, TPM_CC.Duplicate, [...u32(obj), ...u32(newParent), ...u32(area.length), ...area, ...t2b(keyIn), ...sym]);
}

function duplicate(t: SoftTpm, obj: number, newParent: number, keyIn: number[], sym: number[]): { keyOut: Uint8Array; dup: Uint8Array; seed: Uint8Array } {
  const r = ok(t.executeSync(duplicateCmd(obj, newParent, keyIn, sym, dupSession(t)), 0));
  const [keyOut, dup, seed] = fields(r, 14, 3);
  return { keyOut: keyOut!, dup: dup!, seed: seed! };
}

const importCmd = (parent: number, key: Uint8Array | number[], pub: Uint8Array, dup: Uint8Array, seed: Uint8Array, sym: number[]) =>
  authCmd(TPM_CC.Import, [parent], [[]], [...t2b(key), ...t2b(pub), ...t2b(dup), ...t2b(seed), ...sym]);

function importBlob(t: SoftTpm, parent: number, key: Uint8Array | number[], pub: Uint8Array, dup: Uint8Array, seed: Uint8Array, sym: number[]): Uint8Array {
  return fields(ok(t.executeSync(importCmd(parent, key, pub, dup, seed, sym), 0)), 14, 1)[0]!;
}

/** A world with two storage parents (ECC) and a duplicable sealed object under the first, loaded (the first flushed). */
function world(attrs = USERWITHAUTH, policy: Uint8Array = DUP_POLICY, parentAttrs = STORAGE) {
  const t = startedTpm();
  const a = primary(t, eccStorage([1], parentAttrs));
  const b = primary(t, eccStorage([2]));
  const obj = create(t, a, sealedTemplate(attrs, policy), SECRET);
  const h = load(t, a, obj.priv, obj.pub);
  flush(t, a); // SoftTpm has three object slots
  return { t, b, obj, h };
}

describe("TPM2_Duplicate and TPM2_Import round trips (Part 3 §13.1, §13.3)", () => {
  it("duplicates to another ECC parent with a TPM-generated inner key; Import and Load under it give the same object", () => {
    const { t, b, obj, h } = world();
    const d = duplicate(t, h, b, [], AES128CFB);
    expect(d.keyOut.length).toBe(16); // the TPM's inner key
    expect(d.seed.length).toBe(2 + 32 + 2 + 32); // TPMS_ECC_POINT of the ephemeral key
    flush(t, h);
    const priv = importBlob(t, b, d.keyOut, obj.pub, d.dup, d.seed, AES128CFB);
    const h2 = load(t, b, priv, obj.pub);
    expect(unseal(t, h2)).toBe(hex(Uint8Array.from(SECRET)));
  });

  it("duplicates to an RSA parent (seed under OAEP \"DUPLICATE\") with the caller's inner key: encryptionKeyOut is empty", () => {
    const { t, b, obj, h } = world();
    flush(t, b);
    const r = primary(t, rsaStorage());
    const key = new Array(16).fill(0x5a);
    const d = duplicate(t, h, r, key, AES128CFB);
    flush(t, h);
    expect(d.keyOut.length).toBe(0);
    expect(d.seed.length).toBe(128);
    // the wrong inner key leaves an integrity TPM2B whose size is no digest's: TPM_RC_SIZE + P3
    expect(rcOf(t.executeSync(importCmd(r, new Array(16).fill(0x5b), obj.pub, d.dup, d.seed, AES128CFB), 0))).toBe(0x3d5);
    // a changed byte in the outer wrapper: TPM_RC_INTEGRITY + P3
    const bad = d.dup.slice();
    bad[bad.length - 1]! ^= 1;
    expect(rcOf(t.executeSync(importCmd(r, key, obj.pub, bad, d.seed, AES128CFB), 0))).toBe(0x3df);
    const priv = importBlob(t, r, key, obj.pub, d.dup, d.seed, AES128CFB);
    expect(unseal(t, load(t, r, priv, obj.pub))).toBe(hex(Uint8Array.from(SECRET)));
  });

  it("duplicates with neither wrapper (new parent TPM_RH_NULL, symmetricAlg NULL): the duplicate is TPM2B_SENSITIVE in the clear", () => {
    const { t, b, obj, h } = world();
    const d = duplicate(t, h, RH_NULL, [], SYM_NULL);
    expect(d.seed.length).toBe(0);
    expect(d.keyOut.length).toBe(0);
    flush(t, h);
    // TPMT_SENSITIVE: type keyedhash, authValue "pw", seedValue (32), the data
    const s = d.dup.subarray(2);
    expect(hex(s.subarray(0, 6))).toBe(hex(Uint8Array.from([0x00, 0x08, 0x00, 0x02, ...enc("pw")])));
    expect(hex(s.subarray(s.length - SECRET.length))).toBe(hex(Uint8Array.from(SECRET)));
    // Import takes it as it is, with no seed
    const priv = importBlob(t, b, [], obj.pub, d.dup, new Uint8Array(0), SYM_NULL);
    expect(unseal(t, load(t, b, priv, obj.pub))).toBe(hex(Uint8Array.from(SECRET)));
  });

  it("Rewrap moves the outer wrapper from one parent to another; the result imports under the second only", () => {
    const { t, b, obj, h } = world();
    const d = duplicate(t, h, b, [], SYM_NULL);
    flush(t, h);
    const r = primary(t, rsaStorage());
    const name = cat(u16(0x0b), sha256(obj.pub));
    const rw = ok(t.executeSync(authCmd(TPM_CC.Rewrap, [b, r], [[]], [...t2b(d.dup), ...t2b(name), ...t2b(d.seed)]), 0));
    const [dup2, seed2] = fields(rw, 14, 2);
    expect(seed2!.length).toBe(128);
    // a seed without an old parent, or an old parent without a seed: TPM_RC_HANDLE + H1
    expect(rcOf(t.executeSync(authCmd(TPM_CC.Rewrap, [RH_NULL, r], [[]], [...t2b(d.dup), ...t2b(name), ...t2b(d.seed)]), 0))).toBe(0x18b);
    expect(rcOf(t.executeSync(authCmd(TPM_CC.Rewrap, [b, r], [[]], [...t2b(d.dup), ...t2b(name), ...t2b([])]), 0))).toBe(0x18b);
    // another Name fails the outer wrapper's HMAC: TPM_RC_INTEGRITY + P1
    expect(rcOf(t.executeSync(authCmd(TPM_CC.Rewrap, [b, r], [[]], [...t2b(d.dup), ...t2b(cat(u16(0x0b), new Uint8Array(32))), ...t2b(d.seed)]), 0))).toBe(0x1df);
    flush(t, b);
    const priv = importBlob(t, r, [], obj.pub, dup2!, seed2!, SYM_NULL);
    expect(unseal(t, load(t, r, priv, obj.pub))).toBe(hex(Uint8Array.from(SECRET)));
  });
  it("imports an object built outside any TPM: seed under RSA-OAEP \"DUPLICATE\", outer wrapper only (what tpm2 import does with a key file)", () => {
    const t = startedTpm();
    const r = primary(t, rsaStorage());
    const rp = fields(ok(t.executeSync(cmd(0x8001, TPM_CC.ReadPublic, u32(r)), 0)), 10, 1)[0]!;
    const modulus = rp.subarray(rp.length - 128);
    const rsaPub = createPublicKey({ key: { kty: "RSA", n: Buffer.from(modulus).toString("base64url"), e: "AQAB" }, format: "jwk" });
    // a sealed object: TPMT_PUBLIC with unique = H(seedValue || data), TPMT_SENSITIVE
    const seedValue = new Uint8Array(32).fill(9);
    const data = enc("made outside");
    const pub = cat(u16(0x08), u16(0x0b), u32(USERWITHAUTH), t2b([]), u16(0x10), t2b(sha256(seedValue, data)));
    const name = cat(u16(0x0b), sha256(pub));
    const sens = cat(u16(0x08), t2b(enc("pw")), t2b(seedValue), t2b(data));
    const seed = new Uint8Array(32).fill(7);
    const secret = new Uint8Array(publicEncrypt({ key: rsaPub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Buffer.from("DUPLICATE\0") }, seed));
    // Part 1 §23.3.2: symKey = KDFa(seed, "STORAGE", Name, 128), HMACkey = KDFa(seed, "INTEGRITY", "", 256)
    const symKey = kdfa(seed, "STORAGE", name, 128);
    const hmacKey = kdfa(seed, "INTEGRITY", new Uint8Array(0), 256);
    const c = createCipheriv("aes-128-cfb", symKey, new Uint8Array(16));
    const encSens = new Uint8Array(Buffer.concat([c.update(cat(t2b(sens))), c.final()]));
    const mac = new Uint8Array(createHmac("sha256", hmacKey).update(encSens).update(name).digest());
    const dup = cat(t2b(mac), encSens);
    const priv = importBlob(t, r, [], pub, dup, secret, SYM_NULL);
    expect(unseal(t, load(t, r, priv, pub))).toBe(hex(Uint8Array.from(data)));
    // a public area whose unique is not H(seedValue || data) of the sensitive area, under a
    // fixedTPM parent (checked as Load would): TPM_RC_BINDING + P2
    const pub2 = cat(u16(0x08), u16(0x0b), u32(USERWITHAUTH), t2b([]), u16(0x10), t2b(sha256(seedValue, enc("other"))));
    const name2 = cat(u16(0x0b), sha256(pub2));
    const c2 = createCipheriv("aes-128-cfb", kdfa(seed, "STORAGE", name2, 128), new Uint8Array(16));
    const enc2 = new Uint8Array(Buffer.concat([c2.update(cat(t2b(sens))), c2.final()]));
    const dup2 = cat(t2b(new Uint8Array(createHmac("sha256", hmacKey).update(enc2).update(name2).digest())), enc2);
    expect(rcOf(t.executeSync(importCmd(r, [], pub2, dup2, secret, SYM_NULL), 0))).toBe(0x2e5);
    // a seed OAEP-encrypted with another label does not decrypt: TPM_RC_FAILURE (as swtpm 0.7.1's OpenSSL)
    const other = new Uint8Array(publicEncrypt({ key: rsaPub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Buffer.from("IDENTITY\0") }, seed));
    expect(rcOf(t.executeSync(importCmd(r, [], pub, dup, other, SYM_NULL), 0))).toBe(0x101);
  });
});

describe("TPM2_Duplicate, TPM2_Import: refusals (Part 3 §13.1, §13.3)", () => {
  it("Duplicate is in the DUP role: a password session is TPM_RC_AUTH_TYPE, a policy without PolicyCommandCode TPM_RC_POLICY_FAIL + S1", () => {
    const { t, b, h } = world(USERWITHAUTH, new Uint8Array(32)); // authPolicy: the digest of an empty policy
    expect(rcOf(t.executeSync(duplicateCmd(h, b, [], SYM_NULL, 0x40000009), 0))).toBe(0x124);
    expect(rcOf(t.executeSync(duplicateCmd(h, b, [], SYM_NULL, dupSession(t, false)), 0))).toBe(0x99d);
  });

  it("refuses fixedParent (TPM_RC_ATTRIBUTES + H1), a new parent that is no storage key (TPM_RC_TYPE + H2), a key with symmetricAlg NULL or of the wrong size (TPM_RC_SIZE + P1)", () => {
    const { t, b, h } = world();
    const fixed = (() => {
      // fixedParent without fixedTPM needs a parent without fixedTPM (Part 1 §27.2)
      const w = world(USERWITHAUTH | FIXEDPARENT, DUP_POLICY, STORAGE & ~(FIXEDTPM | FIXEDPARENT));
      return rcOf(w.t.executeSync(duplicateCmd(w.h, w.b, [], SYM_NULL, dupSession(w.t)), 0));
    })();
    expect(fixed).toBe(0x182);
    expect(rcOf(t.executeSync(duplicateCmd(h, h, [], SYM_NULL, dupSession(t)), 0))).toBe(0x28a);
    expect(rcOf(t.executeSync(duplicateCmd(h, b, new Array(16).fill(1), SYM_NULL, dupSession(t)), 0))).toBe(0x1d5);
    expect(rcOf(t.executeSync(duplicateCmd(h, b, new Array(15).fill(1), AES128CFB, dupSession(t)), 0))).toBe(0x1d5);
  });

  it("encryptedDuplication needs both wrappers: symmetricAlg NULL is TPM_RC_SYMMETRIC + P2, new parent TPM_RH_NULL TPM_RC_HIERARCHY + H2; Import wants them too", () => {
    const { t, b, obj, h } = world(USERWITHAUTH | ENCDUP);
    expect(rcOf(t.executeSync(duplicateCmd(h, b, [], SYM_NULL, dupSession(t)), 0))).toBe(0x2d6);
    expect(rcOf(t.executeSync(duplicateCmd(h, RH_NULL, [], AES128CFB, dupSession(t)), 0))).toBe(0x285);
    const d = duplicate(t, h, b, [], AES128CFB);
    flush(t, h);
    // no inner wrapper: TPM_RC_ATTRIBUTES + P1; no outer wrapper: TPM_RC_ATTRIBUTES + P4
    expect(rcOf(t.executeSync(importCmd(b, [], obj.pub, d.dup, d.seed, SYM_NULL), 0))).toBe(0x1c2);
    expect(rcOf(t.executeSync(importCmd(b, d.keyOut, obj.pub, d.dup, new Uint8Array(0), AES128CFB), 0))).toBe(0x4c2);
    const priv = importBlob(t, b, d.keyOut, obj.pub, d.dup, d.seed, AES128CFB);
    expect(unseal(t, load(t, b, priv, obj.pub))).toBe(hex(Uint8Array.from(SECRET)));
  });

  it("Import refuses fixedTPM / fixedParent in objectPublic (TPM_RC_ATTRIBUTES + P2) and a parent that is not a storage key (TPM_RC_TYPE + H1)", () => {
    const { t, b, obj, h } = world();
    const d = duplicate(t, h, b, [], SYM_NULL);
    const fixedPub = sealedTemplate(USERWITHAUTH | FIXEDPARENT);
    expect(rcOf(t.executeSync(importCmd(b, [], fixedPub, d.dup, d.seed, SYM_NULL), 0))).toBe(0x2c2);
    const asParent = authCmd(TPM_CC.Import, [h], [enc("pw")], [...t2b([]), ...t2b(obj.pub), ...t2b(d.dup), ...t2b(d.seed), ...SYM_NULL]);
    expect(rcOf(t.executeSync(asParent, 0))).toBe(0x18a);
    // the Name is part of the outer HMAC: another public area fails it (TPM_RC_INTEGRITY + P3)
    expect(rcOf(t.executeSync(importCmd(b, [], sealedTemplate(USERWITHAUTH | NODA), d.dup, d.seed, SYM_NULL), 0))).toBe(0x3df);
  });
});

/** KDFa with SHA-256 and an empty contextV (Part 1 §11.4.10.2). */
function kdfa(key: Uint8Array, label: string, contextU: Uint8Array, bits: number): Uint8Array {
  const out: number[] = [];
  for (let i = 1; out.length < bits / 8; i++) out.push(...createHmac("sha256", key).update(cat(u32(i), enc(label + "\0"), contextU, u32(bits))).digest());
  return Uint8Array.from(out.slice(0, bits / 8));
}
