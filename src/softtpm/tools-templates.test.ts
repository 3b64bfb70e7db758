/**
 * The keys tpm2-tools 5.4 makes, used the way tpm2-tools uses them: every tool saves the object
 * it loaded (TPM2_ContextSave, Part 3 §28.2) and the next tool loads it back (TPM2_ContextLoad,
 * §28.3), or the key is persistent (TPM2_EvictControl, §28.5). An RSA object that comes back that
 * way must still sign (§20.2) and decrypt (§14.3), as swtpm 0.7.1 does (measured with
 * `tpm2 create -G rsa` / `tpm2 load` / `tpm2 rsadecrypt` / `tpm2 sign`).
 */
import { describe, expect, it } from "vitest";
import { constants, createPublicKey, verify as nodeVerify } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmReader } from "../wire/buffer.js";
import { readPublic } from "../wire/structures.js";
import type { SoftTpm } from "./softtpm.js";
import { authCmd, cmd, hex, rcOf, startedTpm, t2b, u16, u32, u32At, unhex } from "./test-helpers.js";

const CC = { CreatePrimary: 0x131, Create: 0x153, Load: 0x157, ContextSave: 0x162, ContextLoad: 0x161, FlushContext: 0x165, EvictControl: 0x120, Sign: 0x15d, RSA_Encrypt: 0x174, RSA_Decrypt: 0x159 };
const OWNER = 0x40000001;
const ENDORSEMENT = 0x4000000b;
const RH_NULL = 0x40000007;
const ALG = { RSASSA: 0x0014, RSAES: 0x0015, SHA256: 0x000b, NULL: 0x0010 };

/**
 * `tpm2 createprimary -C e -g sha256 -G rsa`: TPMT_PUBLIC RSA, sha256, fixedtpm|fixedparent|
 * sensitivedataorigin|userwithauth|restricted|decrypt (0x30072), AES-128-CFB, NULL scheme, 2048
 * bits, exponent 0, empty unique.
 */
const PRIMARY_TEMPLATE = unhex("0001 000b 00030072 0000 0006 0080 0043 0010 0800 00000000 0000");
/**
 * `tpm2 create -g sha256 -G rsa`: RSA, sha256, fixedtpm|fixedparent|sensitivedataorigin|
 * userwithauth|decrypt|sign (0x60072), NULL symmetric, NULL scheme, 2048 bits, exponent 0.
 */
const RSA_KEY_TEMPLATE = unhex("0001 000b 00060072 0000 0010 0010 0800 00000000 0000");
const FOO = [...new TextEncoder().encode("foo")];

function ok(r: Uint8Array): Uint8Array {
  expect(hex(r.subarray(6, 10)), hex(r)).toBe("00000000");
  return r;
}

const createParams = (template: Uint8Array, auth: number[] = []) => [...t2b([...t2b(auth), ...t2b([])]), ...t2b(template), ...u16(0), ...u32(0)];

/** The storage primary and a loaded child made from the tpm2-tools templates (child auth "foo"). */
function toolsKey(t: SoftTpm): { handle: number; n: Uint8Array } {
  const p = ok(t.executeSync(authCmd(CC.CreatePrimary, [ENDORSEMENT], [[]], createParams(PRIMARY_TEMPLATE)), 0));
  const parent = u32At(p, 10);
  const c = ok(t.executeSync(authCmd(CC.Create, [parent], [[]], createParams(RSA_KEY_TEMPLATE, FOO)), 0));
  const rd = new TpmReader(c, 14);
  const priv = rd.tpm2b().slice();
  const area = rd.tpm2b().slice();
  const l = ok(t.executeSync(authCmd(CC.Load, [parent], [[]], [...t2b(priv), ...t2b(area)]), 0));
  ok(t.executeSync(cmd(0x8001, CC.FlushContext, u32(parent)), 0));
  const pub = readPublic(new TpmReader(area));
  if (pub.type !== 0x0001) throw new Error("not RSA");
  return { handle: u32At(l, 10), n: pub.unique };
}

/** ContextSave, FlushContext, ContextLoad: what one tpm2 tool leaves and the next picks up. */
function swapOutAndIn(t: SoftTpm, handle: number): number {
  const saved = ok(t.executeSync(cmd(0x8001, CC.ContextSave, u32(handle)), 0)).slice(10);
  ok(t.executeSync(cmd(0x8001, CC.FlushContext, u32(handle)), 0));
  return u32At(ok(t.executeSync(cmd(0x8001, CC.ContextLoad, saved), 0)), 10);
}

/** `tpm2 sign -g sha256` on a NULL-scheme RSA key: the tool asks for RSASSA with SHA-256; node verifies the signature. */
function expectSigns(t: SoftTpm, handle: number, n: Uint8Array): void {
  const msg = new TextEncoder().encode("12345678\n");
  const digest = sha256(msg);
  const r = t.executeSync(authCmd(CC.Sign, [handle], [FOO], [...t2b(digest), ...u16(ALG.RSASSA), ...u16(ALG.SHA256), ...u16(0x8024), ...u32(RH_NULL), ...u16(0)]), 0);
  ok(r);
  const rd = new TpmReader(r, 14);
  expect(rd.u16()).toBe(ALG.RSASSA);
  expect(rd.u16()).toBe(ALG.SHA256);
  const sig = rd.tpm2b();
  const key = createPublicKey({ key: { kty: "RSA", n: Buffer.from(n).toString("base64url"), e: "AQAB" }, format: "jwk" });
  expect(nodeVerify("sha256", msg, { key, padding: constants.RSA_PKCS1_PADDING }, sig)).toBe(true);
}

/** `tpm2 rsaencrypt` then `tpm2 rsadecrypt` with RSAES: the plain text comes back. */
function expectDecrypts(t: SoftTpm, handle: number): void {
  const msg = [...new TextEncoder().encode("12345678\n")];
  const scheme = u16(ALG.RSAES);
  const e = ok(t.executeSync(cmd(0x8001, CC.RSA_Encrypt, [...u32(handle), ...t2b(msg), ...scheme, ...t2b([])]), 0));
  const cipher = new TpmReader(e, 10).tpm2b().slice();
  const d = t.executeSync(authCmd(CC.RSA_Decrypt, [handle], [FOO], [...t2b(cipher), ...scheme, ...t2b([])]), 0);
  expect(rcOf(d), hex(d)).toBe(0);
  expect(hex(new TpmReader(d, 14).tpm2b())).toBe(hex(Uint8Array.from(msg)));
}

describe("tpm2-tools 5.4 RSA keys after ContextSave/ContextLoad and EvictControl", () => {
  it("a `tpm2 create -G rsa` key loaded back from its saved context signs (RSASSA) and decrypts (RSAES), not TPM_RC_KEY", () => {
    const t = startedTpm();
    const { handle, n } = toolsKey(t);
    const back = swapOutAndIn(t, handle);
    expectSigns(t, back, n);
    const again = swapOutAndIn(t, back);
    expectDecrypts(t, again);
  });

  it("the same key made persistent (EvictControl) signs and decrypts through its persistent handle", () => {
    const t = startedTpm();
    const { handle, n } = toolsKey(t);
    const persistent = 0x81000005;
    ok(t.executeSync(authCmd(CC.EvictControl, [OWNER, handle], [[]], u32(persistent)), 0));
    ok(t.executeSync(cmd(0x8001, CC.FlushContext, u32(handle)), 0));
    expectSigns(t, persistent, n);
    expectDecrypts(t, persistent);
  });
});
