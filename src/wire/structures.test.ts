import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { TpmFormatError } from "../errors/index.js";
import { TpmReader, TpmWriter, fromHex, toHex } from "./buffer.js";
import { TPM_ALG, TPM_ST, TPMA_OBJECT } from "./constants.js";
import {
  type TpmtPublic,
  marshalPublic,
  objectName,
  readContext,
  readPublic,
  readPublic2b,
  readSensitive2b,
  readSensitiveCreate,
  readSignature,
  readTicket,
  writeContext,
  writePublic2b,
  writeSensitive2b,
  writeSignature,
} from "./structures.js";

// tpm2_createprimary -C o -G rsa2048:aes128cfb (the tpm2-tools default storage key): TPMT_PUBLIC
// laid out as Part 2 §12.2.4 (type, nameAlg, TPMA_OBJECT 0x00030072, empty policy, AES-128-CFB,
// NULL scheme, 2048 bits, exponent 0, empty unique), assembled by hand
const RSA_SRK = "0001" + "000b" + "00030072" + "0000" + "0006" + "0080" + "0043" + "0010" + "0800" + "00000000" + "0000";
// a sealed-data object: KEYEDHASH, sha256, fixedTPM|fixedParent|userWithAuth, NULL scheme, 32-byte unique
const SEAL = "0008" + "000b" + "00000052" + "0000" + "0010" + "0020" + "11".repeat(32);
// ECC P-256 signing key: ECDSA-SHA256, NULL kdf, x and y
const ECC_SIGN = "0023" + "000b" + "00040072" + "0000" + "0010" + "0018" + "000b" + "0003" + "0010" + "0020" + "aa".repeat(32) + "0020" + "bb".repeat(32);
// SYMCIPHER AES-256-CFB
const SYM = "0025" + "000b" + "00060072" + "0000" + "0006" + "0100" + "0043" + "0000";

function roundTrip(h: string): TpmtPublic {
  const p = readPublic(new TpmReader(fromHex(h)));
  expect(toHex(marshalPublic(p))).toBe(h);
  return p;
}

describe("TPMT_PUBLIC", () => {
  it("reads and writes the tpm2-tools RSA storage template byte for byte", () => {
    const p = roundTrip(RSA_SRK);
    expect(p.type).toBe(TPM_ALG.RSA);
    if (p.type !== TPM_ALG.RSA) return;
    expect(p.objectAttributes).toBe(TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT);
    expect(p.symmetric).toEqual({ algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });
    expect(p.scheme.scheme).toBe(TPM_ALG.NULL);
    expect(p.keyBits).toBe(2048);
  });
  it("round-trips KEYEDHASH, ECC and SYMCIPHER areas", () => {
    expect(roundTrip(SEAL).type).toBe(TPM_ALG.KEYEDHASH);
    const e = roundTrip(ECC_SIGN);
    expect(e.type === TPM_ALG.ECC && e.scheme).toEqual({ scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
    const s = roundTrip(SYM);
    expect(s.type === TPM_ALG.SYMCIPHER && s.symmetric.keyBits).toBe(256);
  });
  it("TPM2B_PUBLIC: the size must match the area exactly", () => {
    const w = new TpmWriter();
    writePublic2b(w, readPublic(new TpmReader(fromHex(RSA_SRK))));
    const b = w.finish();
    expect(toHex(b)).toBe("001a" + RSA_SRK);
    expect(() => readPublic2b(new TpmReader(fromHex("001b" + RSA_SRK + "00")))).toThrow(/trailing/);
    expect(() => readPublic2b(new TpmReader(fromHex("0019" + RSA_SRK)))).toThrow(TpmFormatError);
    expect(() => readPublic2b(new TpmReader(fromHex("0000")))).toThrow(/empty/);
  });
  it("refuses a bad type, hash, mode, scheme and oversize unique with TpmFormatError", () => {
    for (const bad of [
      "0002" + RSA_SRK.slice(4), // type TPM_ALG_TDES? (0x0002 is no object type)
      RSA_SRK.slice(0, 4) + "0099" + RSA_SRK.slice(8), // nameAlg
      RSA_SRK.replace("00800043", "00800099"), // mode
      RSA_SRK.replace("0043" + "0010", "0043" + "0018"), // ECDSA on an RSA key
      "0001000b000300720000001000100800000000000201" + "00".repeat(513), // unique > 512
      SEAL.slice(0, -64), // truncated
    ]) {
      expect(() => readPublic(new TpmReader(fromHex(bad)))).toThrow(TpmFormatError);
    }
  });
  it("Name = nameAlg ‖ SHA-256(TPMT_PUBLIC)", () => {
    const p = readPublic(new TpmReader(fromHex(RSA_SRK)));
    const n = objectName(p, (_a, d) => sha256(d));
    expect(toHex(n)).toBe("000b" + toHex(sha256(fromHex(RSA_SRK))));
    expect(() => objectName(p, () => new Uint8Array(20))).toThrow(TpmFormatError);
  });
});

describe("sensitive areas, signatures, tickets, contexts", () => {
  it("TPM2B_SENSITIVE round trip and bounds", () => {
    const s = { sensitiveType: TPM_ALG.KEYEDHASH, authValue: fromHex("6162"), seedValue: new Uint8Array(32).fill(7), sensitive: fromHex("736563726574") };
    const w = new TpmWriter();
    writeSensitive2b(w, s);
    const b = w.finish();
    expect(toHex(b)).toBe("0030" + "0008" + "0002" + "6162" + "0020" + "07".repeat(32) + "0006" + "736563726574");
    expect(readSensitive2b(new TpmReader(b))).toEqual(s);
    expect(() => readSensitive2b(new TpmReader(fromHex("0008" + "0099" + "000000000000")))).toThrow(/sensitiveType/);
  });
  it("TPM2B_SENSITIVE_CREATE: userAuth and data, data bounded", () => {
    expect(readSensitiveCreate(new TpmReader(fromHex("0008" + "0002" + "6162" + "0002" + "6364")))).toEqual({ userAuth: fromHex("6162"), data: fromHex("6364") });
    expect(() => readSensitiveCreate(new TpmReader(fromHex("0085" + "0000" + "0081" + "00".repeat(129))))).toThrow(/exceeds/);
    expect(() => readSensitiveCreate(new TpmReader(fromHex("0005" + "0000" + "0000" + "00")))).toThrow(/trailing/);
  });
  it("TPMT_SIGNATURE: RSASSA, ECDSA, HMAC, NULL", () => {
    for (const h of ["0014" + "000b" + "0004" + "01020304", "0018" + "000b" + "0002" + "0102" + "0002" + "0304", "0005" + "000b" + "22".repeat(32), "0010"]) {
      const s = readSignature(new TpmReader(fromHex(h)));
      const w = new TpmWriter();
      writeSignature(w, s);
      expect(toHex(w.finish())).toBe(h);
    }
    expect(() => readSignature(new TpmReader(fromHex("0005000b" + "22".repeat(31))))).toThrow(TpmFormatError);
  });
  it("tickets carry the expected tag", () => {
    const t = readTicket(new TpmReader(fromHex("8021" + "40000001" + "0000")), TPM_ST.CREATION);
    expect(t).toEqual({ tag: TPM_ST.CREATION, hierarchy: 0x40000001, digest: new Uint8Array(0) });
    expect(() => readTicket(new TpmReader(fromHex("8022" + "40000001" + "0000")), TPM_ST.CREATION)).toThrow(TpmFormatError);
  });
  it("TPMS_CONTEXT round trip", () => {
    const h = "0000000000000002" + "80000000" + "40000001" + "0003" + "010203";
    const c = readContext(new TpmReader(fromHex(h)));
    expect(c.sequence).toBe(2n);
    const w = new TpmWriter();
    writeContext(w, c);
    expect(toHex(w.finish())).toBe(h);
  });
});
