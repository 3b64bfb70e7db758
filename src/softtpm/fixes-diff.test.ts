/**
 * Fixes of SoftTpm differences found by the object-and-session differential test
 * (test/integration/differential-objects.ts, GitHub issue 12), each pinned with the exact bytes
 * swtpm 0.7.1 (libtpms 0.9) answered to the same commands (measured on a fresh swtpm, startup-clear):
 *
 * - TPM2_EncryptDecrypt ivOut (Part 3 §15.2) after a partial last CFB block;
 * - TPM2_Sign's validation ticket tag (Part 2 §10.7.6): no TPM_ST value → TPM_RC_VALUE;
 * - TPM2_GetCapability(TPM_CAP_HANDLES) of loaded and saved sessions (Part 2 §7.2);
 * - TPM2_TestParms (Part 3 §30.3) of ECC with ECDAA (TPMS_SCHEME_ECDAA.count);
 * - TPM2_GetSessionAuditDigest's TPMI_SH_HMAC sessionHandle (Part 3 §18.5).
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { SoftTpm } from "./softtpm.js";
import { authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32 } from "./test-helpers.js";

const NULL_H = 0x40000007;
const ENDORSEMENT = 0x4000000b;
const CC = { LoadExternal: 0x167, EncryptDecrypt: 0x164, Sign: 0x15d, StartAuthSession: 0x176, GetCapability: 0x17a, ContextSave: 0x162, TestParms: 0x18a, GetSessionAuditDigest: 0x14d };
const ALG = { SHA256: 0x0b, NULL: 0x10, AES: 0x06, SYMCIPHER: 0x25, KEYEDHASH: 0x08, HMAC: 0x05, ECC: 0x23, ECDSA: 0x18, ECDH: 0x19, ECDAA: 0x1a, SM2: 0x1b, CFB: 0x43, CBC: 0x42, CTR: 0x40, OFB: 0x41, ECB: 0x44 };
/** userWithAuth | noDA | decrypt | sign (TPMA_OBJECT, Part 2 §8.3). */
const ATTRS = 0x40 | 0x400 | 0x20000 | 0x40000;
const sha256 = (...p: number[][]): number[] => Array.from(createHash("sha256").update(Uint8Array.from(p.flat())).digest());

/** Runs `cmd` and returns the response as hex. */
const run = (t: SoftTpm, c: Uint8Array): string => hex(t.executeSync(c, 0));

/** LoadExternal (NULL hierarchy) of a key with its sensitive part; unique = H(seed ‖ key) (Part 2 §12.2.3.2). */
function loadExternal(type: number, parms: number[], attrs: number, key: number[], seedByte: number): Uint8Array {
  const seed = Array<number>(32).fill(seedByte);
  const sens = t2b([...u16(type), ...t2b([]), ...t2b(seed), ...t2b(key)]);
  const pub = t2b([...u16(type), ...u16(ALG.SHA256), ...u32(attrs), ...t2b([]), ...parms, ...t2b(sha256(seed, key))]);
  return cmd(0x8001, CC.LoadExternal, [...sens, ...pub, ...u32(NULL_H)]);
}

describe("EncryptDecrypt ivOut (swtpm 0.7.1, measured)", () => {
  // AES-128 key 0102…10, mode NULL; ivIn a0a1…af; data 030a11…: byte i is 7i + 3
  const KEY = Array.from({ length: 16 }, (_, i) => i + 1);
  const IV = Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  const data = (n: number) => Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);
  const ed = (decrypt: number, mode: number, n: number) => authCmd(CC.EncryptDecrypt, [0x80000000], [[]], [decrypt, ...u16(mode), ...t2b(IV), ...t2b(data(n))]);
  const loaded = () => {
    const t = startedTpm();
    expect(run(t, loadExternal(ALG.SYMCIPHER, [...u16(ALG.AES), ...u16(128), ...u16(ALG.NULL)], ATTRS, KEY, 7))).toBe(
      "80010000003200000000800000000022000bd26d2d5a5a1e6cbebb87ed6740d2f4c97c7dbed9701ec9be039b2099e4f97f7b",
    );
    return t;
  };

  it("CFB over a partial last block: ivOut is that block's cipher text followed by the rest of its key-stream block, encrypting and decrypting", () => {
    const t = loaded();
    expect(run(t, ed(0, ALG.CFB, 5))).toBe("80020000002c000000000000001900054561c2b15500104561c2b1551ffa639b33f0112a9343160000010000");
    expect(run(t, ed(0, ALG.CFB, 21))).toBe("80020000003c000000000000002900154561c2b15539d757a071b9417dcd267aefee727e280010efee727e28d1910da5120939aea95e080000010000");
    expect(run(t, ed(1, ALG.CFB, 5))).toBe("80020000002c000000000000001900054561c2b1550010030a11181f1ffa639b33f0112a9343160000010000");
    expect(run(t, ed(1, ALG.CFB, 21))).toBe("80020000003c000000000000002900154561c2b15539d757a071b9417dcd267a140cf8c7540010737a81888fc23f896e5a30ee408299610000010000");
    // whole blocks: the last cipher block
    expect(run(t, ed(0, ALG.CFB, 16))).toBe("800200000037000000000000002400104561c2b15539d757a071b9417dcd267a00104561c2b15539d757a071b9417dcd267a0000010000");
  });

  it("OFB (the last key-stream block) and CTR (the next counter) over partial blocks; CBC over a partial block TPM_RC_SIZE + P4, ECB with an IV TPM_RC_SIZE + P3", () => {
    const t = loaded();
    expect(run(t, ed(0, ALG.OFB, 5))).toBe("80020000002c000000000000001900054561c2b1550010466bd3a94a1ffa639b33f0112a9343160000010000");
    expect(run(t, ed(1, ALG.OFB, 21))).toBe("80020000003c000000000000002900154561c2b15539d757a071b9417dcd267a3511b644bd0010466b37cc32f9728cfd041fc6d18ed8910000010000");
    expect(run(t, ed(0, ALG.CTR, 5))).toBe("80020000002c000000000000001900054561c2b1550010a0a1a2a3a4a5a6a7a8a9aaabacadaeb00000010000");
    expect(run(t, ed(1, ALG.CTR, 21))).toBe("80020000003c000000000000002900154561c2b15539d757a071b9417dcd267ac71fed6caf0010a0a1a2a3a4a5a6a7a8a9aaabacadaeb10000010000");
    expect(run(t, ed(0, ALG.CBC, 21))).toBe("80010000000a000004d5");
    expect(run(t, ed(1, ALG.ECB, 21))).toBe("80010000000a000003d5");
  });
});

describe("Sign's validation ticket tag (swtpm 0.7.1, measured)", () => {
  const sign = (tag: number, hierarchy = NULL_H) => authCmd(CC.Sign, [0x80000000], [[]], [...t2b(Array<number>(32).fill(0x55)), ...u16(ALG.NULL), ...u16(tag), ...u32(hierarchy), ...t2b([])]);

  it("no TPM_ST value is TPM_RC_VALUE + P3, another TPM_ST value TPM_RC_TAG + P3, a wrong hierarchy TPM_RC_VALUE + P3", () => {
    const t = startedTpm();
    // an HMAC-SHA256 key 0303…, scheme HMAC
    expect(run(t, loadExternal(ALG.KEYEDHASH, [...u16(ALG.HMAC), ...u16(ALG.SHA256)], 0x40 | 0x400 | 0x40000, Array<number>(16).fill(3), 9))).toBe(
      "80010000003200000000800000000022000b81f449ec319e22be677287590c1d2d2cf2170a3848148d8d473aeb0eaed789bd",
    );
    expect(run(t, sign(0x8024))).toBe("80020000003700000000000000240005000be41c9215fd588485db1f1601be4b9b5eccbaa36d950bae70511356a6f7a7abb90000010000");
    const value = [0x0004, 0x00c3, 0x00c5, 0x7fff, 0x8003, 0x8004, 0x8005, 0x8013, 0x801b, 0x801c, 0x801f, 0x8020, 0x8026, 0x8027, 0x8028, 0x8029, 0x802a, 0x8030, 0xffff];
    const tag = [0x00c4, 0x8000, 0x8001, 0x8002, 0x8014, 0x8015, 0x8016, 0x8017, 0x8018, 0x8019, 0x801a, 0x8021, 0x8022, 0x8023, 0x8025];
    for (const v of value) expect(rcOf(t.executeSync(sign(v), 0)), v.toString(16)).toBe(0x3c4);
    for (const v of tag) expect(rcOf(t.executeSync(sign(v), 0)), v.toString(16)).toBe(0x3d7);
    expect(run(t, sign(0x0004, 0x40000099))).toBe("80010000000a000003c4");
    expect(run(t, sign(0x8024, 0x40000099))).toBe("80010000000a000003c4");
  });
});

describe("GetCapability(TPM_CAP_HANDLES) of sessions (swtpm 0.7.1, measured)", () => {
  const start = (type: number) => cmd(0x8001, CC.StartAuthSession, [...u32(NULL_H), ...u32(NULL_H), ...t2b(Array<number>(16).fill(1)), ...t2b([]), type, ...u16(ALG.NULL), ...u16(ALG.SHA256)]);
  const cap = (p: number) => run(t0, cmd(0x8001, CC.GetCapability, [...u32(1), ...u32(p), ...u32(10)]));
  let t0: SoftTpm;

  it("TPM_HT_LOADED_SESSION lists a policy session by its 0x03 handle; TPM_HT_SAVED_SESSION lists saved sessions by their 0x02 handles", () => {
    const t = (t0 = startedTpm());
    const handles = [0, 0, 1, 3].map((type) => t.executeSync(start(type), 0)).map((r) => (rcOf(r) === 0 ? hex(r.subarray(10, 14)) : rcOf(r).toString(16)));
    expect(handles).toEqual(["02000000", "02000001", "03000002", "903"]); // three session slots: TPM_RC_SESSION_MEMORY
    expect(cap(0x02000000)).toBe("80010000001f00000000000000000100000003020000000200000103000002");
    expect(cap(0x02000002)).toBe("8001000000170000000000000000010000000103000002");
    expect(cap(0x03000000)).toBe("80010000001300000000000000000100000000");
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextSave, u32(0x02000001)), 0))).toBe(0);
    expect(cap(0x02000000)).toBe("80010000001b000000000000000001000000020200000003000002");
    expect(cap(0x03000000)).toBe("8001000000170000000000000000010000000102000001");
    expect(cap(0x03000001)).toBe("8001000000170000000000000000010000000102000001");
    expect(cap(0x03000002)).toBe("80010000001300000000000000000100000000");
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextSave, u32(0x03000002)), 0))).toBe(0);
    expect(cap(0x02000000)).toBe("8001000000170000000000000000010000000102000000");
    expect(cap(0x03000000)).toBe("80010000001b000000000000000001000000020200000102000002");
    expect(cap(0x03000002)).toBe("8001000000170000000000000000010000000102000002");
    expect(cap(0x03000003)).toBe("80010000001300000000000000000100000000");
  });
});

describe("TestParms of ECC schemes (swtpm 0.7.1, measured)", () => {
  const testParms = (b: number[]) => cmd(0x8001, CC.TestParms, [...u16(ALG.ECC), ...u16(ALG.NULL), ...b]);

  it("ECDAA reads its count (ecc384:ecdaa4-sha256 is TPM_RC_SUCCESS); a bad hash TPM_RC_HASH + P1; a short or long one TPM_RC_INSUFFICIENT / TPM_RC_SIZE", () => {
    const t = startedTpm();
    expect(run(t, testParms([...u16(ALG.ECDAA), ...u16(ALG.SHA256), ...u16(4), ...u16(0x0004), ...u16(ALG.NULL)]))).toBe("80010000000a00000000");
    expect(run(t, testParms([...u16(ALG.ECDAA), ...u16(ALG.SHA256), ...u16(0), ...u16(0x0003), ...u16(ALG.NULL)]))).toBe("80010000000a00000000");
    expect(run(t, testParms([...u16(ALG.ECDAA), ...u16(0x0099), ...u16(4), ...u16(0x0003), ...u16(ALG.NULL)]))).toBe("80010000000a000001c3");
    expect(run(t, testParms([...u16(ALG.ECDAA), ...u16(ALG.SHA256), ...u16(4), ...u16(0x0003)]))).toBe("80010000000a000001da");
    expect(run(t, testParms([...u16(ALG.ECDAA), ...u16(ALG.SHA256), ...u16(4), ...u16(0x0003), ...u16(ALG.NULL), 0]))).toBe("80010000000a00000095");
    expect(run(t, testParms([...u16(ALG.ECDSA), ...u16(ALG.SHA256), ...u16(0x0003), ...u16(ALG.NULL)]))).toBe("80010000000a00000000");
    expect(run(t, testParms([...u16(ALG.ECDH), ...u16(ALG.SHA256), ...u16(0x0003), ...u16(ALG.NULL)]))).toBe("80010000000a00000000");
  });
});

describe("GetSessionAuditDigest's sessionHandle, TPMI_SH_HMAC (swtpm 0.7.1, measured)", () => {
  const gsad = (h: number, key = NULL_H) => authCmd(CC.GetSessionAuditDigest, [ENDORSEMENT, key, h], [[], []], [...t2b([]), ...u16(ALG.NULL)]);

  it("an unloaded transient handle is TPM_RC_VALUE + H3 like any handle that is no HMAC session; an unloaded HMAC session TPM_RC_REFERENCE_H2, after an unloaded key (TPM_RC_REFERENCE_H1)", () => {
    const t = startedTpm();
    const start = (type: number) => cmd(0x8001, CC.StartAuthSession, [...u32(NULL_H), ...u32(NULL_H), ...t2b(Array<number>(16).fill(1)), ...t2b([]), type, ...u16(ALG.NULL), ...u16(ALG.SHA256)]);
    expect(hex(t.executeSync(start(1), 0).subarray(6, 14))).toBe("0000000003000000"); // policy session
    expect(hex(t.executeSync(start(0), 0).subarray(6, 14))).toBe("0000000002000001"); // HMAC session
    expect(rcOf(t.executeSync(loadExternal(ALG.KEYEDHASH, [...u16(ALG.HMAC), ...u16(ALG.SHA256)], 0x40 | 0x400 | 0x40000, Array<number>(16).fill(3), 9), 0))).toBe(0); // 0x80000000
    const codes: [number, number][] = [
      [0x02000010, 0x912], // an HMAC session not loaded: TPM_RC_REFERENCE_H2
      [0x0200003f, 0x912],
      [0x02000040, 0x384], // outside the session range: TPM_RC_VALUE + H3
      [0x02ffffff, 0x384],
      [0x80000000, 0x384], // a loaded object
      [0x80000001, 0x384], // an unloaded transient handle (TPM_RC_REFERENCE_H2 before this fix)
      [0x80000040, 0x384],
      [0x03000000, 0x384], // a loaded policy session
      [0x02000000, 0x38b], // the HMAC handle of a policy session's slot: TPM_RC_HANDLE + H3
      [0x03000001, 0x384],
      [0x03000010, 0x384],
      [0x01000000, 0x384],
      [0x40000001, 0x384],
      [0x81000000, 0x384],
      [0x00000000, 0x384],
      [0x02000001, 0x38a], // a loaded HMAC session never used for audit: TPM_RC_TYPE + H3
    ];
    for (const [h, rc] of codes) expect(rcOf(t.executeSync(gsad(h), 0)), h.toString(16)).toBe(rc);
    // with an unloaded key (TPM_RC_REFERENCE_H1) the type check of the session handle comes first
    expect(rcOf(t.executeSync(gsad(0x02000010, 0x80000002), 0))).toBe(0x911);
    expect(rcOf(t.executeSync(gsad(0x03000000, 0x80000002), 0))).toBe(0x384);
    expect(rcOf(t.executeSync(gsad(0x02000000, 0x80000002), 0))).toBe(0x911);
    expect(rcOf(t.executeSync(gsad(0x80000000, 0x80000002), 0))).toBe(0x384);
    // a context-saved HMAC session is not loaded
    expect(rcOf(t.executeSync(cmd(0x8001, CC.ContextSave, u32(0x02000001)), 0))).toBe(0);
    expect(rcOf(t.executeSync(gsad(0x02000001), 0))).toBe(0x912);
    expect(rcOf(t.executeSync(gsad(0x02000001, 0x80000002), 0))).toBe(0x911);
  });
});
