/**
 * Fixes of SoftTpm differences found by the object-and-session differential test
 * (test/integration/differential-objects.ts, GitHub issue 12, second pass), each pinned with the
 * codes and bytes swtpm 0.7.1 (libtpms 0.9) answered to the same commands (measured on a fresh
 * swtpm, startup-clear):
 *
 * 1. a persistent parent is copied into an object slot while a command uses it (the loaded
 *    object's handle, TPM_RC_OBJECT_MEMORY);
 * 2. TPM2_ContextSave of a policy session: savedHandle 0x03xxxxxx, the session context counter;
 * 3. TPM2_ReadPublic of a TPM2_LoadExternal object: qualifiedName = name;
 * 4. TPM2_CreatePrimary in the NULL hierarchy: a real creation ticket;
 * 5–7, 10. template checks and their order (Part 3 §12.1; Part 1 §27.2);
 * 8. TPM2_Load of a private whose integrity size is too large;
 * 9. TPM2_EvictControl of a temporary object;
 * 11. ContextSave / ContextLoad / FlushContext take no sessions.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { SoftTpm } from "./softtpm.js";
import { authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At, unhex } from "./test-helpers.js";

const CC = { CreatePrimary: 0x131, Create: 0x153, Load: 0x157, LoadExternal: 0x167, ReadPublic: 0x173, EvictControl: 0x120, FlushContext: 0x165, ContextSave: 0x162, ContextLoad: 0x161, StartAuthSession: 0x176, CreateLoaded: 0x191 };
const OWNER = 0x40000001;
const PLATFORM = 0x4000000c;
const NULL_H = 0x40000007;
/** TPMA_OBJECT bits (Part 2 §8.3). */
const A = { FIXEDTPM: 0x2, FIXEDPARENT: 0x10, SDO: 0x20, UWA: 0x40, NODA: 0x400, RESTRICTED: 0x10000, DECRYPT: 0x20000, SIGN: 0x40000 };
const FIXED = A.FIXEDTPM | A.FIXEDPARENT;

/** The reproducers' ECC P-256 storage primary in the owner hierarchy (AES-128-CFB). */
const CREATE_PRIMARY_ECC = unhex("800200000043000001314000000100000009400000090000010000000400000000001a0023000b00030472000000060080004300100003001000000000000000000000");
/** Create of 4 bytes of sealed data (01020304) under the persistent parent 0x81000001. */
const CREATE_SEALED_UNDER_PERSISTENT = unhex("80020000003b00000153810000010000000940000009000001000000080000000401020304000e0008000b00000452000000100000000000000000");

const run = (t: SoftTpm, c: Uint8Array): Uint8Array => t.executeSync(c, 0);
const rc = (t: SoftTpm, c: Uint8Array): number => rcOf(run(t, c));
const flush = (h: number): Uint8Array => cmd(0x8001, CC.FlushContext, u32(h));

/** TPM2B_PUBLIC of a template (empty authPolicy; unique empty unless given). */
function pub(type: number, attrs: number, parms: number[], unique?: number[]): number[] {
  const u = unique ?? (type === 0x23 ? [...u16(0), ...u16(0)] : u16(0));
  return t2b([...u16(type), ...u16(0x000b), ...u32(attrs), ...u16(0), ...parms, ...u]);
}
/** Create / CreatePrimary parameters: inSensitive (empty userAuth, `data`), inPublic, no outsideInfo, no PCRs. */
const createParams = (p: number[], data: number[] = []): number[] => [...t2b([...u16(0), ...t2b(data)]), ...p, ...u16(0), ...u32(0)];
const create = (parent: number, p: number[], data: number[] = []): Uint8Array => authCmd(CC.Create, [parent], [[]], createParams(p, data));
const createPrimary = (h: number, p: number[], data: number[] = []): Uint8Array => authCmd(CC.CreatePrimary, [h], [[]], createParams(p, data));
const createLoaded = (parent: number, p: number[], data: number[] = []): Uint8Array => authCmd(CC.CreateLoaded, [parent], [[]], [...t2b([...u16(0), ...t2b(data)]), ...p]);

/** A keyed-hash template (scheme NULL unless given: the scheme's details follow it). */
const keyedHash = (attrs: number, scheme: number[] = u16(0x0010)): number[] => pub(0x0008, attrs, scheme);
const aes = (attrs: number, bits: number): number[] => pub(0x0025, attrs, [...u16(0x0006), ...u16(bits), ...u16(0x0043)]);

/** A started TPM with the ECC storage primary at 0x80000000. */
function withParent(): SoftTpm {
  const t = startedTpm();
  const r = run(t, CREATE_PRIMARY_ECC);
  expect(rcOf(r)).toBe(0);
  expect(u32At(r, 10)).toBe(0x80000000);
  return t;
}

/** The Load command for a Create answer (outPrivate, outPublic) under `parent`. */
function loadFrom(parent: number, createRsp: Uint8Array): Uint8Array {
  expect(rcOf(createRsp)).toBe(0);
  let p = 14; // header, parameterSize
  const privSize = (createRsp[p]! << 8) | createRsp[p + 1]!;
  const priv = Array.from(createRsp.subarray(p, p + 2 + privSize));
  p += 2 + privSize;
  const pubSize = (createRsp[p]! << 8) | createRsp[p + 1]!;
  const pubArea = Array.from(createRsp.subarray(p, p + 2 + pubSize));
  return authCmd(CC.Load, [parent], [[]], [...priv, ...pubArea]);
}

describe("1. a persistent parent takes an object slot while a command uses it (libtpms; swtpm 0.7.1, measured)", () => {
  /** The ECC primary made persistent at 0x81000001 and flushed: no transient object loaded. */
  function persistentParent(): SoftTpm {
    const t = withParent();
    expect(hex(run(t, authCmd(CC.EvictControl, [OWNER, 0x80000000], [[]], u32(0x81000001))))).toBe("80020000001300000000000000000000010000");
    expect(rc(t, flush(0x80000000))).toBe(0);
    return t;
  }

  it("Load under a persistent parent answers the slot after the parent's copy: 0x80000001", () => {
    const t = persistentParent();
    const c = run(t, CREATE_SEALED_UNDER_PERSISTENT);
    const l = run(t, loadFrom(0x81000001, c));
    expect(hex(l.subarray(0, 14))).toBe("80020000003b0000000080000001");
    // the copy is gone after the command: slot 0 is free
    expect(rc(t, cmd(0x8001, CC.ReadPublic, u32(0x80000000)))).toBe(0x910); // TPM_RC_REFERENCE_H0: not loaded (swtpm 0.7.1 too)
    // the next Load: the copy takes slot 0 again, the object slot 2 (swtpm 0.7.1, measured: 0x80000002)
    expect(u32At(run(t, loadFrom(0x81000001, c)), 10)).toBe(0x80000002);
    // CreateLoaded likewise: slots 1 and 2 taken, the copy takes slot 0 → TPM_RC_OBJECT_MEMORY
    expect(rc(t, createLoaded(0x81000001, keyedHash(FIXED | A.UWA), [1]))).toBe(0x902);
    expect(rc(t, flush(0x80000001))).toBe(0);
    const cl = run(t, createLoaded(0x81000001, keyedHash(FIXED | A.UWA), [1]));
    expect(rcOf(cl)).toBe(0);
    expect(u32At(cl, 10)).toBe(0x80000001);
    // under a transient parent nothing is copied: the lowest free slot
    expect(rc(t, flush(0x80000001))).toBe(0);
    expect(rc(t, flush(0x80000002))).toBe(0);
    expect(u32At(run(t, CREATE_PRIMARY_ECC), 10)).toBe(0x80000000);
    expect(u32At(run(t, createLoaded(0x80000000, keyedHash(FIXED | A.UWA), [1])), 10)).toBe(0x80000001);
  });

  it("only the command's own handles count: after ObjectChangeAuth under the persistent parent, Load under the transient one takes the lowest slot", () => {
    const t = withParent();
    expect(rcOf(run(t, authCmd(CC.EvictControl, [OWNER, 0x80000000], [[]], u32(0x81000001))))).toBe(0);
    const c = run(t, create(0x80000000, keyedHash(FIXED | A.UWA), [1, 2]));
    expect(u32At(run(t, loadFrom(0x80000000, c)), 10)).toBe(0x80000001);
    expect(rcOf(run(t, authCmd(0x150, [0x80000001, 0x81000001], [[]], t2b([9]))))).toBe(0); // ObjectChangeAuth
    expect(rc(t, flush(0x80000001))).toBe(0);
    expect(u32At(run(t, loadFrom(0x80000000, c)), 10)).toBe(0x80000001);
  });

  it("with two objects loaded, Load and Create under the persistent parent are TPM_RC_OBJECT_MEMORY (0x902), under a transient one not", () => {
    const t = persistentParent();
    const c = run(t, CREATE_SEALED_UNDER_PERSISTENT);
    expect(rcOf(run(t, CREATE_PRIMARY_ECC))).toBe(0); // 0x80000000
    expect(rcOf(run(t, CREATE_PRIMARY_ECC))).toBe(0); // 0x80000001
    expect(hex(run(t, loadFrom(0x81000001, c)))).toBe("80010000000a00000902");
    expect(hex(run(t, CREATE_SEALED_UNDER_PERSISTENT))).toBe("80010000000a00000902");
    // a private with a broken integrity size: the slot is looked for first (swtpm 0.7.1, measured)
    const junk = unhex("80020000005f0000015781000001000000094000000900000100000030471663ac63b61eb8d64391c395215ed477e64cae1f4209ad78679a069f555d872e5b7f3aedd0a2fa28f68864adf1586d00100008000b0004047200000005000b0000");
    expect(hex(run(t, junk))).toBe("80010000000a00000902");
    expect(rcOf(run(t, create(0x80000000, keyedHash(FIXED | A.UWA), [1])))).toBe(0);
    expect(rc(t, flush(0x80000001))).toBe(0);
    expect(hex(run(t, junk))).toBe("80010000000a000001d5");
  });
});

describe("2. ContextSave of sessions (Part 2 §14.5; libtpms contextCounter; swtpm 0.7.1, measured)", () => {
  const startPolicy = unhex("80010000002b0000017640000007400000070010010101010101010101010101010101010000010010000b");
  const startHmac = unhex("80010000002b0000017640000007400000070010010101010101010101010101010101010000000010000b");
  const startTrial = unhex("80010000002b0000017640000007400000070010010101010101010101010101010101010000030010000b");
  const save = (h: number): Uint8Array => cmd(0x8001, CC.ContextSave, u32(h));

  it("a policy session is saved under its own handle 0x03xxxxxx; the first session context after Startup is sequence 4", () => {
    const t = startedTpm();
    expect(u32At(run(t, startPolicy), 10)).toBe(0x03000000);
    const s = run(t, save(0x03000000));
    expect(hex(s.subarray(0, 26))).toBe("80010000" + hex(s.subarray(4, 6)) + "00000000" + "0000000000000004" + "03000000" + "40000007");
    // it comes back as a policy session, under the same handle
    const l = run(t, cmd(0x8001, CC.ContextLoad, Array.from(s.subarray(10))));
    expect(hex(l)).toBe("80010000000e0000000003000000");
    // the counter counts session contexts only: the next one is 5, a trial session's handle is 0x03 too
    expect(u32At(run(t, startTrial), 10)).toBe(0x03000001);
    expect(hex(run(t, save(0x03000001)).subarray(10, 26))).toBe("0000000000000005" + "03000001" + "40000007");
    expect(hex(run(t, save(0x03000000)).subarray(10, 26))).toBe("0000000000000006" + "03000000" + "40000007");
  });

  it("a session saved through the other type's handle is TPM_RC_HANDLE + H1 (0x18b) and stays loaded", () => {
    const t = startedTpm();
    expect(u32At(run(t, startHmac), 10)).toBe(0x02000000);
    expect(u32At(run(t, startPolicy), 10)).toBe(0x03000001);
    expect(hex(run(t, save(0x03000000)))).toBe("80010000000a0000018b");
    expect(hex(run(t, save(0x02000001)))).toBe("80010000000a0000018b");
    // a failed save does not move the counter
    expect(hex(run(t, save(0x02000000)).subarray(10, 26))).toBe("0000000000000004" + "02000000" + "40000007");
    expect(hex(run(t, save(0x03000001)).subarray(10, 26))).toBe("0000000000000005" + "03000001" + "40000007");
  });

  it("an object context still starts at 1 (libtpms objectContextID)", () => {
    const t = withParent();
    expect(u32At(run(t, startHmac), 10)).toBe(0x02000000);
    expect(rcOf(run(t, save(0x02000000)))).toBe(0);
    expect(hex(run(t, save(0x80000000)).subarray(10, 26))).toBe("0000000000000001" + "80000000" + "40000001");
  });
});

describe("3. ReadPublic of a LoadExternal object: qualifiedName = name (libtpms; swtpm 0.7.1, measured)", () => {
  /** The fixed P-256 public key of the reproducer in the owner hierarchy. */
  const LOAD_EXTERNAL_OWNER = unhex(
    "80010000006a00000167000000580023000b00040440000000100018000b0003001000201e25a2b5e9b52c57d4b44c736c9d9d81f32856d62beef032606893cbb644bb9d0020e8f2abe7721a66551d42f68670d1e5715bfc1c6b9bb19bfb2f2909129ea42ed140000001",
  );
  const NAME = "0022000ba704fad8f4e1adb1a57de1bdc95864bdb57a94a2516e79729d3230fb0016601f";

  it("answers swtpm's bytes in the owner and in the NULL hierarchy", () => {
    for (const h of [OWNER, NULL_H]) {
      const t = startedTpm();
      const frame = LOAD_EXTERNAL_OWNER.slice();
      frame.set(u32(h), frame.length - 4);
      expect(hex(run(t, frame))).toBe("8001000000320000000080000000" + NAME);
      expect(hex(run(t, cmd(0x8001, CC.ReadPublic, u32(0x80000000))))).toBe(
        "8001000000ac00000000" +
          "00580023000b00040440000000100018000b0003001000201e25a2b5e9b52c57d4b44c736c9d9d81f32856d62beef032606893cbb644bb9d0020e8f2abe7721a66551d42f68670d1e5715bfc1c6b9bb19bfb2f2909129ea42ed1" +
          NAME +
          NAME,
      );
    }
  });

  it("keeps it through ContextSave / ContextLoad, and a public-only object stays public-only (no authorization: TPM_RC_AUTH_UNAVAILABLE)", () => {
    const t = startedTpm();
    expect(rcOf(run(t, LOAD_EXTERNAL_OWNER))).toBe(0);
    const s = run(t, cmd(0x8001, CC.ContextSave, u32(0x80000000)));
    expect(rc(t, flush(0x80000000))).toBe(0);
    expect(hex(run(t, cmd(0x8001, CC.ContextLoad, Array.from(s.subarray(10)))))).toBe("80010000000e0000000080000000");
    expect(hex(run(t, cmd(0x8001, CC.ReadPublic, u32(0x80000000)))).slice(-2 * NAME.length)).toBe(NAME + NAME);
    // Sign with a password: the object has no authValue (Part 3 §12.3: public-only)
    expect(rc(t, authCmd(0x15d, [0x80000000], [[]], [...t2b(new Array(32).fill(1)), ...u16(0x0010), ...u16(0x8024), ...u32(NULL_H), ...u16(0)]))).toBe(0x12f);
  });
});

describe("4. CreatePrimary in the NULL hierarchy answers a creation ticket (libtpms nullProof; swtpm 0.7.1, measured)", () => {
  /** The reproducer: an ECC P-256 ECDSA signing key (sha256 nameAlg) in the NULL hierarchy. */
  const CP_NULL = unhex("80020000004700000131400000070000000940000009000001000000040000000000180023000b00040472000000100018000b0003001000000000000000000001000b03200000");

  /** The TPMT_TK_CREATION of a CreatePrimary answer: it ends the parameters, before name. */
  function ticketOf(r: Uint8Array): string {
    expect(rcOf(r)).toBe(0);
    let p = 18; // header, handle, parameterSize
    for (let i = 0; i < 3; i++) p += 2 + ((r[p]! << 8) | r[p + 1]!); // outPublic, creationData, creationHash
    const size = (r[p + 6]! << 8) | r[p + 7]!;
    return hex(r.subarray(p, p + 8 + size));
  }

  it("tag 8021, hierarchy 40000007, a 64-byte HMAC (SHA-512, the ticket hash of libtpms) — the same for the same object until a TPM Reset", () => {
    const t = startedTpm();
    const a = ticketOf(run(t, CP_NULL));
    expect(a).toMatch(/^8021400000070040[0-9a-f]{128}$/);
    expect(a).not.toBe("8021400000070040" + "00".repeat(64));
    expect(rc(t, flush(0x80000000))).toBe(0);
    expect(ticketOf(run(t, CP_NULL))).toBe(a);
    // an owner-hierarchy ticket of the same template has its own proof
    const owner = CP_NULL.slice();
    owner.set(u32(OWNER), 10);
    expect(ticketOf(run(t, owner)).slice(0, 16)).toBe("8021400000010040");
  });
});

describe("5–7. keyed-hash and symmetric templates: the attribute checks come first (Part 1 §27.2; swtpm 0.7.1, measured)", () => {
  const HMAC_SHA256 = [...u16(0x0005), ...u16(0x000b)];
  const XOR_SHA256 = [...u16(0x000a), ...u16(0x000b), ...u16(0x0022)];

  it("5. sealed data with sensitiveDataOrigin CLEAR and no data: TPM_RC_ATTRIBUTES + P2 in Create, CreatePrimary and CreateLoaded", () => {
    const t = withParent();
    expect(hex(run(t, unhex("800200000037000001538000000000000009400000090000010000000400000000000e0008000b00000452000000100000000000000000")))).toBe("80010000000a000002c2");
    expect(rc(t, createPrimary(OWNER, keyedHash(FIXED | A.UWA)))).toBe(0x2c2);
    expect(rc(t, createLoaded(0x80000000, keyedHash(FIXED | A.UWA)))).toBe(0x2c2);
    expect(rc(t, createLoaded(OWNER, keyedHash(FIXED | A.UWA)))).toBe(0x2c2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA), [1]))).toBe(0);
  });

  it("7. sign SET with scheme NULL and no data: TPM_RC_ATTRIBUTES + P2 before TPM_RC_SCHEME", () => {
    const t = withParent();
    expect(hex(run(t, unhex("800200000037000001538000000000000009400000090000010000000400000000000e0008000b00040052000000100000000000000000")))).toBe("80010000000a000002c2");
    expect(rc(t, createPrimary(OWNER, keyedHash(FIXED | A.UWA | A.SIGN)))).toBe(0x2c2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA, HMAC_SHA256)))).toBe(0x2c2); // sealed, HMAC scheme, no data
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.SIGN | A.SDO), [1]))).toBe(0x2c2); // data and sensitiveDataOrigin
    // the scheme when the attributes are right
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.SIGN | A.SDO)))).toBe(0x2d2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.SIGN), [1]))).toBe(0x2d2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA, XOR_SHA256), [1]))).toBe(0x2d2); // sealed data with a scheme
  });

  it("a keyed-hash decryption key needs the XOR scheme: NULL is TPM_RC_SCHEME + P2", () => {
    const t = withParent();
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.DECRYPT), [1, 2, 3, 4]))).toBe(0x2d2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.DECRYPT | A.SDO)))).toBe(0x2d2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.DECRYPT | A.SDO | A.RESTRICTED)))).toBe(0x2d2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.DECRYPT, XOR_SHA256), [1, 2, 3, 4]))).toBe(0);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.DECRYPT | A.SDO, XOR_SHA256)))).toBe(0);
    // a kdf that is no KDF: TPM_RC_KDF + P2 as TPMI_ALG_KDF is unmarshalled
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.SIGN, [...u16(0x000a), ...u16(0x000b)]), [1]))).toBe(0x2cc);
  });

  it("a restricted fixedTPM key from the caller's data is TPM_RC_ATTRIBUTES + P2; without fixedTPM it is taken", () => {
    const t = withParent();
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.RESTRICTED | A.SIGN, HMAC_SHA256), [1, 2, 3, 4]))).toBe(0x2c2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.RESTRICTED | A.DECRYPT, XOR_SHA256), [1, 2, 3, 4]))).toBe(0x2c2);
    expect(rc(t, create(0x80000000, aes(FIXED | A.UWA | A.RESTRICTED | A.DECRYPT, 128), new Array(16).fill(7)))).toBe(0x2c2);
    expect(rc(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.RESTRICTED | A.SIGN, [...u16(0x0010)]), [1]))).toBe(0x2c2); // before the scheme
    const h = (r: Uint8Array) => rcOf(r);
    expect(h(run(t, create(0x80000000, keyedHash(A.UWA | A.RESTRICTED | A.SIGN, HMAC_SHA256), [1, 2, 3, 4])))).toBe(0);
    expect(h(run(t, create(0x80000000, aes(A.UWA | A.RESTRICTED | A.DECRYPT, 128), new Array(16).fill(7))))).toBe(0);
    expect(h(run(t, create(0x80000000, keyedHash(FIXED | A.UWA | A.RESTRICTED | A.SIGN | A.SDO, HMAC_SHA256))))).toBe(0);
  });

  it("an RSA or ECC key with the caller's data is TPM_RC_ATTRIBUTES + P2, with sensitiveDataOrigin SET too", () => {
    const t = withParent();
    const sym = [...u16(0x0006), ...u16(128), ...u16(0x0043), ...u16(0x0010)];
    const rsa = (attrs: number) => pub(0x0001, attrs, [...sym, ...u16(2048), ...u32(0)]);
    const ecc = (attrs: number) => pub(0x0023, attrs, [...sym, ...u16(0x0003), ...u16(0x0010)]);
    for (const p of [rsa, ecc]) {
      expect(rc(t, create(0x80000000, p(FIXED | A.SDO | A.UWA | A.RESTRICTED | A.DECRYPT), [1]))).toBe(0x2c2);
      expect(rc(t, create(0x80000000, p(A.UWA | A.RESTRICTED | A.DECRYPT), [1]))).toBe(0x2c2);
      expect(rc(t, create(0x80000000, p(FIXED | A.UWA | A.RESTRICTED | A.DECRYPT)))).toBe(0x2c2);
    }
  });

  it("an AES key of the wrong length is TPM_RC_KEY_SIZE without a parameter number (0x087)", () => {
    const t = withParent();
    expect(hex(run(t, create(0x80000000, aes(FIXED | A.UWA | A.DECRYPT | A.SIGN, 128), new Array(8).fill(1))))).toBe("80010000000a00000087");
  });
});

describe("6. key sizes and curves are checked as the template is unmarshalled (Part 2 §11.2; swtpm 0.7.1, measured)", () => {
  it("AES keyBits 0, 64, 100, 512: TPM_RC_VALUE + P2 (0x2c4), in Create and CreatePrimary, also inside a storage key", () => {
    const t = withParent();
    expect(hex(run(t, unhex("80020000003b00000153800000000000000940000009000001000000040000000000120025000b0006047200000006006400430000000000000000")))).toBe("80010000000a000002c4");
    for (const bits of [0, 64, 100, 512]) {
      expect(rc(t, create(0x80000000, aes(FIXED | A.SDO | A.UWA | A.NODA | A.DECRYPT | A.SIGN, bits)))).toBe(0x2c4);
      expect(rc(t, createPrimary(OWNER, aes(FIXED | A.SDO | A.UWA | A.NODA | A.DECRYPT | A.SIGN, bits)))).toBe(0x2c4);
      const rsaStorage = pub(0x0001, FIXED | A.SDO | A.UWA | A.NODA | A.RESTRICTED | A.DECRYPT, [...u16(0x0006), ...u16(bits), ...u16(0x0043), ...u16(0x0010), ...u16(2048), ...u32(0)]);
      expect(rc(t, create(0x80000000, rsaStorage))).toBe(0x2c4);
      const eccStorage = pub(0x0023, FIXED | A.SDO | A.UWA | A.NODA | A.RESTRICTED | A.DECRYPT, [...u16(0x0006), ...u16(bits), ...u16(0x0043), ...u16(0x0010), ...u16(0x0003), ...u16(0x0010)]);
      expect(rc(t, create(0x80000000, eccStorage))).toBe(0x2c4);
    }
    // even where the attributes are wrong too (restricted sign and decrypt)
    const both = pub(0x0023, FIXED | A.SDO | A.UWA | A.RESTRICTED | A.DECRYPT | A.SIGN, [...u16(0x0006), ...u16(100), ...u16(0x0043), ...u16(0x0018), ...u16(0x000b), ...u16(0x0003), ...u16(0x0010)]);
    expect(rc(t, create(0x80000000, both))).toBe(0x2c4);
  });

  it("RSA keyBits 0, 512, 1000, 4096: TPM_RC_VALUE + P2; an unknown curve TPM_RC_CURVE + P2, before the attribute checks", () => {
    const t = withParent();
    const rsa = (bits: number, attrs: number) => pub(0x0001, attrs, [...u16(0x0010), ...u16(0x0014), ...u16(0x000b), ...u16(bits), ...u32(0)]);
    for (const bits of [0, 512, 1000, 4096]) expect(rc(t, create(0x80000000, rsa(bits, FIXED | A.SDO | A.UWA | A.SIGN)))).toBe(0x2c4);
    expect(rc(t, create(0x80000000, pub(0x0001, FIXED | A.SDO | A.UWA | A.RESTRICTED | A.DECRYPT | A.SIGN, [...u16(0x0010), ...u16(0x0010), ...u16(1000), ...u32(0)])))).toBe(0x2c4);
    expect(rc(t, create(0x80000000, pub(0x0023, FIXED | A.SDO | A.UWA | A.RESTRICTED | A.DECRYPT | A.SIGN, [...u16(0x0010), ...u16(0x0010), ...u16(0x0099), ...u16(0x0010)])))).toBe(0x2e6);
  });

  it("LoadExternal alike: an RSA-4096 public key is TPM_RC_VALUE + P2, an unknown curve TPM_RC_CURVE + P2 before a bad hierarchy (P3)", () => {
    const t = startedTpm();
    const rsa = (bits: number) => pub(0x0001, A.UWA | A.SIGN, [...u16(0x0010), ...u16(0x0014), ...u16(0x000b), ...u16(bits), ...u32(0)], t2b(new Array(bits / 8).fill(0xc5)));
    expect(hex(run(t, cmd(0x8001, CC.LoadExternal, [...u16(0), ...rsa(4096), ...u32(NULL_H)])))).toBe("80010000000a000002c4");
    expect(u32At(run(t, cmd(0x8001, CC.LoadExternal, [...u16(0), ...rsa(1024), ...u32(NULL_H)])), 10)).toBe(0x80000000);
    const ecc = pub(0x0023, A.UWA | A.SIGN, [...u16(0x0010), ...u16(0x0018), ...u16(0x000b), ...u16(0x0099), ...u16(0x0010)], [...t2b(new Array(32).fill(1)), ...t2b(new Array(32).fill(2))]);
    expect(hex(run(t, cmd(0x8001, CC.LoadExternal, [...u16(0), ...ecc, ...u32(0x40000003)])))).toBe("80010000000a000002e6");
  });
});

describe("8. Load: the integrity TPM2B of the private (Part 2 §10.4.2; swtpm 0.7.1, measured)", () => {
  const sealedPub = pub(0x0008, FIXED | A.UWA | A.NODA, u16(0x0010), t2b(new Array(32).fill(0)));
  it("a size above 64 is TPM_RC_SIZE + P1 (0x1d5), one within 64 that runs past the end TPM_RC_INSUFFICIENT + P1 (0x1da)", () => {
    const t = withParent();
    expect(hex(run(t, unhex("80020000005f0000015780000000000000094000000900000100000030471663ac63b61eb8d64391c395215ed477e64cae1f4209ad78679a069f555d872e5b7f3aedd0a2fa28f68864adf1586d00100008000b0004047200000005000b0000")))).toBe("80010000000a000001d5");
    expect(rc(t, authCmd(CC.Load, [0x80000000], [[]], [...t2b([...u16(0x41), ...new Array(0x41).fill(0)]), ...sealedPub]))).toBe(0x1d5);
    expect(rc(t, authCmd(CC.Load, [0x80000000], [[]], [...t2b([...u16(0x20), ...new Array(14).fill(0)]), ...sealedPub]))).toBe(0x1da);
  });
});

describe("9. EvictControl of a temporary object: TPM_RC_ATTRIBUTES + H2 first (EvictControl.c; swtpm 0.7.1, measured)", () => {
  const evict = (auth: number, h: number, p: number): Uint8Array => authCmd(CC.EvictControl, [auth, h], [[]], u32(p));
  const LOAD_EXTERNAL_OWNER = unhex(
    "80010000006a00000167000000580023000b00040440000000100018000b0003001000201e25a2b5e9b52c57d4b44c736c9d9d81f32856d62beef032606893cbb644bb9d0020e8f2abe7721a66551d42f68670d1e5715bfc1c6b9bb19bfb2f2909129ea42ed140000001",
  );

  it("an external object (public only, owner hierarchy; or with its sensitive part, NULL hierarchy) and a NULL-hierarchy primary", () => {
    const t = withParent();
    expect(u32At(run(t, LOAD_EXTERNAL_OWNER), 10)).toBe(0x80000001);
    expect(hex(run(t, evict(OWNER, 0x80000001, 0x81000003)))).toBe("80010000000a00000282");
    expect(hex(run(t, evict(OWNER, 0x80000001, 0x81800003)))).toBe("80010000000a00000282"); // before the range
    expect(rc(t, flush(0x80000001))).toBe(0);
    // an HMAC key with its sensitive part (NULL hierarchy)
    const key = new Array(16).fill(5);
    const seed = new Array(32).fill(6);
    const unique = Array.from(createHash("sha256").update(Uint8Array.from([...seed, ...key])).digest());
    const sens = t2b([...u16(0x0008), ...u16(0), ...t2b(seed), ...t2b(key)]);
    const p = pub(0x0008, A.UWA | A.NODA | A.SIGN, [...u16(0x0005), ...u16(0x000b)], t2b(unique));
    expect(u32At(run(t, cmd(0x8001, CC.LoadExternal, [...sens, ...p, ...u32(NULL_H)])), 10)).toBe(0x80000001);
    expect(hex(run(t, evict(OWNER, 0x80000001, 0x81000003)))).toBe("80010000000a00000282");
    expect(rc(t, flush(0x80000001))).toBe(0);
    // a primary in the NULL hierarchy
    expect(u32At(run(t, createPrimary(NULL_H, keyedHash(FIXED | A.UWA), [1])), 10)).toBe(0x80000001);
    expect(hex(run(t, evict(OWNER, 0x80000001, 0x81000003)))).toBe("80010000000a00000282");
    expect(hex(run(t, evict(OWNER, 0x80000001, 0x81800003)))).toBe("80010000000a00000282");
  });

  it("an owner object: the hierarchy (TPM_RC_HIERARCHY + H2) before the handle range (TPM_RC_RANGE + P1)", () => {
    const t = withParent();
    expect(hex(run(t, evict(OWNER, 0x80000000, 0x81800003)))).toBe("80010000000a000001cd");
    expect(hex(run(t, evict(PLATFORM, 0x80000000, 0x81800003)))).toBe("80010000000a00000285");
    expect(hex(run(t, evict(PLATFORM, 0x80000000, 0x81000003)))).toBe("80010000000a00000285");
    expect(hex(run(t, evict(OWNER, 0x80000000, 0x81000003)))).toBe("80020000001300000000000000000000010000");
  });
});

describe("10. a restricted decryption key: the scheme before the symmetric algorithm (swtpm 0.7.1, measured)", () => {
  it("ECC with ECDSA or ECDH and symmetric NULL or CBC, RSA with RSASSA and symmetric NULL: TPM_RC_SCHEME + P2; scheme NULL with CBC: TPM_RC_SYMMETRIC + P2", () => {
    const t = withParent();
    expect(hex(run(t, unhex("80020000004100000153800000000000000940000009000001000000040000000000180023000b00030072000000100018000b0003001000000000000000000000")))).toBe("80010000000a000002d2");
    const attrs = FIXED | A.SDO | A.UWA | A.RESTRICTED | A.DECRYPT;
    const cbc = [...u16(0x0006), ...u16(128), ...u16(0x0042)];
    expect(rc(t, create(0x80000000, pub(0x0023, attrs, [...cbc, ...u16(0x0019), ...u16(0x000b), ...u16(0x0003), ...u16(0x0010)])))).toBe(0x2d2);
    expect(rc(t, create(0x80000000, pub(0x0023, attrs, [...u16(0x0010), ...u16(0x0019), ...u16(0x000b), ...u16(0x0003), ...u16(0x0010)])))).toBe(0x2d2);
    expect(rc(t, create(0x80000000, pub(0x0023, attrs, [...cbc, ...u16(0x0010), ...u16(0x0003), ...u16(0x0010)])))).toBe(0x2d6);
    expect(rc(t, createPrimary(OWNER, pub(0x0001, attrs, [...u16(0x0010), ...u16(0x0014), ...u16(0x000b), ...u16(2048), ...u32(0)])))).toBe(0x2d2);
  });
});

describe("11. ContextSave, ContextLoad and FlushContext take no sessions: TPM_RC_AUTH_CONTEXT (swtpm 0.7.1, measured)", () => {
  it("answers 0x145 to each sent with a password session", () => {
    const t = withParent();
    const s = run(t, cmd(0x8001, CC.ContextSave, u32(0x80000000)));
    expect(rcOf(s)).toBe(0);
    expect(hex(run(t, authCmd(CC.ContextSave, [0x80000000], [[]])))).toBe("80010000000a00000145");
    expect(hex(run(t, authCmd(CC.ContextLoad, [], [[]], Array.from(s.subarray(10)))))).toBe("80010000000a00000145");
    expect(hex(run(t, authCmd(CC.FlushContext, [], [[]], u32(0x80000000))))).toBe("80010000000a00000145");
    // nothing happened: the object is still loaded, its context still loads
    expect(hex(run(t, cmd(0x8001, CC.ContextLoad, Array.from(s.subarray(10)))))).toBe("80010000000e0000000080000001");
  });
});

describe("TPM2_HMAC_Start with a persistent key (Part 3 §17.2)", () => {
  it("the key's copy takes the lowest slot while the command runs: the sequence gets 0x80000001 (swtpm 0.7.1, measured)", () => {
    const t = startedTpm();
    // an HMAC key (sign, userWithAuth, sensitiveDataOrigin, SHA-256 scheme) made persistent at 0x81000002
    const r = run(t, createPrimary(OWNER, keyedHash(FIXED | A.SDO | A.UWA | A.SIGN, [...u16(0x0005), ...u16(0x000b)])));
    expect(rcOf(r)).toBe(0);
    expect(rc(t, authCmd(CC.EvictControl, [OWNER, u32At(r, 10)], [[]], u32(0x81000002)))).toBe(0);
    expect(rc(t, flush(u32At(r, 10)))).toBe(0);
    const s = run(t, authCmd(0x15b, [0x81000002], [[]], [...t2b([]), ...u16(0x000b)])); // TPM2_HMAC_Start
    expect(rcOf(s)).toBe(0);
    expect(u32At(s, 10)).toBe(0x80000001);
  });
});
