import { describe, expect, it } from "vitest";
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmFormatError } from "../errors/index.js";
import { TPM_ST } from "./constants.js";
import { TpmReader, fromHex, toHex } from "./buffer.js";
import { TPM_ST_ATTEST_NV_DIGEST, type TpmsAttest, marshalAttest, readAttest2b, unmarshalAttest } from "./attest.js";

// A TPM2_Quote's TPMS_ATTEST as swtpm 0.7.1 returned it (measured): sha256 PCRs 0-7 after
// Startup(CLEAR), qualifyingData 01 02, an RSA signing key in the owner hierarchy (so the reset
// and restart counts and the firmware version are obfuscated).
const SWTPM_QUOTE =
  "ff544347" + "8018" +
  "0022" + "000be8c6820ef1568fb3060a4d3d7a6fa8d0a38971dd3d91d92f9dbb2c43a6c887f3" +
  "0002" + "0102" +
  "00000000000007eb" + "be4c8348" + "0e776bbe" + "01" +
  "0a73a6442dd1721a" +
  "00000001" + "000b" + "03" + "ff0000" +
  "0020" + "5341e6b2646979a70e57653007a1f310169421ec9bdd9f1a5648f75ade005af1";

/** A hand-assembled TPMS_ATTEST: the common part, then `attested` (hex). */
const attest = (type: string, attested: string, signer = "0004" + "40000007", extra = "0000"): string =>
  "ff544347" + type + signer + extra + "0000000000001000" + "00000002" + "00000003" + "00" + "0000000100020003" + attested;

describe("TPMS_ATTEST (Part 2 §10.12.12)", () => {
  it("parses a quote swtpm 0.7.1 signed, and marshals it back byte for byte", () => {
    const a = unmarshalAttest(fromHex(SWTPM_QUOTE));
    expect(a.type).toBe(TPM_ST.ATTEST_QUOTE);
    if (a.type !== TPM_ST.ATTEST_QUOTE) return;
    expect(toHex(a.qualifiedSigner).slice(0, 4)).toBe("000b");
    expect(a.qualifiedSigner.length).toBe(34);
    expect(toHex(a.extraData)).toBe("0102");
    expect(a.clockInfo).toEqual({ clock: 0x7ebn, resetCount: 0xbe4c8348, restartCount: 0x0e776bbe, safe: true });
    expect(a.firmwareVersion).toBe(0x0a73a6442dd1721an);
    expect(a.attested.pcrSelect).toEqual([{ hash: 0x000b, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }]);
    // eight zero PCRs after Startup(CLEAR): the digest is SHA-256 of 8 × 32 zero bytes
    expect(toHex(a.attested.pcrDigest)).toBe(toHex(sha256(new Uint8Array(256))));
    expect(toHex(marshalAttest(a))).toBe(SWTPM_QUOTE);
  });

  const cases: [string, number, string, (a: TpmsAttest) => void][] = [
    ["certify", TPM_ST.ATTEST_CERTIFY, "0003aabbcc" + "0002dddd", (a) => a.type === TPM_ST.ATTEST_CERTIFY && expect([toHex(a.attested.name), toHex(a.attested.qualifiedName)]).toEqual(["aabbcc", "dddd"])],
    ["creation", TPM_ST.ATTEST_CREATION, "000101" + "000202ff", (a) => a.type === TPM_ST.ATTEST_CREATION && expect([toHex(a.attested.objectName), toHex(a.attested.creationHash)]).toEqual(["01", "02ff"])],
    ["nv", TPM_ST.ATTEST_NV, "000101" + "0004" + "0003010203", (a) => a.type === TPM_ST.ATTEST_NV && expect([a.attested.offset, toHex(a.attested.nvContents)]).toEqual([4, "010203"])],
    ["nv digest", TPM_ST_ATTEST_NV_DIGEST, "000101" + "000109", (a) => a.type === TPM_ST_ATTEST_NV_DIGEST && expect(toHex(a.attested.nvDigest)).toBe("09")],
    ["time", TPM_ST.ATTEST_TIME, "0000000000000005" + "0000000000001000" + "00000001" + "00000000" + "01" + "2019102300163636", (a) => a.type === TPM_ST.ATTEST_TIME && expect(a.attested).toEqual({ time: 5n, clockInfo: { clock: 0x1000n, resetCount: 1, restartCount: 0, safe: true }, firmwareVersion: 0x2019102300163636n })],
    ["command audit", TPM_ST.ATTEST_COMMAND_AUDIT, "0000000000000007" + "000b" + "0001aa" + "0001bb", (a) => a.type === TPM_ST.ATTEST_COMMAND_AUDIT && expect([a.attested.auditCounter, a.attested.digestAlg]).toEqual([7n, 0xb])],
    ["session audit", TPM_ST.ATTEST_SESSION_AUDIT, "01" + "0001cc", (a) => a.type === TPM_ST.ATTEST_SESSION_AUDIT && expect(a.attested.exclusiveSession).toBe(true)],
  ];
  for (const [what, type, body, check] of cases) {
    it(`parses and re-marshals a hand-assembled ${what} structure`, () => {
      const hex = attest(type.toString(16), body);
      const a = unmarshalAttest(fromHex(hex));
      expect(a.type).toBe(type);
      expect(toHex(a.qualifiedSigner)).toBe("40000007");
      expect(a.clockInfo).toEqual({ clock: 0x1000n, resetCount: 2, restartCount: 3, safe: false });
      expect(a.firmwareVersion).toBe(0x0000000100020003n);
      check(a);
      expect(toHex(marshalAttest(a))).toBe(hex);
    });
  }

  it("reads a TPM2B_ATTEST (size first, exactly one structure inside)", () => {
    const body = fromHex(SWTPM_QUOTE);
    const r = new TpmReader(Uint8Array.from([body.length >> 8, body.length & 0xff, ...body, 0x77]));
    expect(readAttest2b(r).type).toBe(TPM_ST.ATTEST_QUOTE);
    expect(r.remaining).toBe(1);
  });

  it("refuses every truncation of a valid structure with TpmFormatError", () => {
    const full = fromHex(SWTPM_QUOTE);
    for (let n = 0; n < full.length; n++) expect(() => unmarshalAttest(full.subarray(0, n)), `length ${n}`).toThrow(TpmFormatError);
  });

  it("refuses trailing bytes, a wrong magic and an unknown type", () => {
    expect(() => unmarshalAttest(fromHex(SWTPM_QUOTE + "00"))).toThrow(/trailing/);
    expect(() => unmarshalAttest(fromHex("ff544348" + SWTPM_QUOTE.slice(8)))).toThrow(/TPM_GENERATED_VALUE/);
    expect(() => unmarshalAttest(fromHex(attest("8021", "")))).toThrow(/TPMI_ST_ATTEST/);
  });

  it("refuses sizes beyond each TPM2B's bound and a TPMI_YES_NO other than 0 or 1", () => {
    // qualifiedSigner of 67 bytes (TPM2B_NAME holds at most 66)
    expect(() => unmarshalAttest(fromHex(attest("8017", "00000000", "0043" + "00".repeat(67))))).toThrow(/exceeds the maximum 66/);
    // extraData of 67 bytes (TPM2B_DATA holds at most 66)
    expect(() => unmarshalAttest(fromHex(attest("8017", "00000000", undefined, "0043" + "00".repeat(67))))).toThrow(/exceeds the maximum 66/);
    // pcrDigest of 65 bytes
    expect(() => unmarshalAttest(fromHex(attest("8018", "00000000" + "0041" + "00".repeat(65))))).toThrow(/exceeds the maximum 64/);
    // a TPML_PCR_SELECTION count of 17
    expect(() => unmarshalAttest(fromHex(attest("8018", "00000011")))).toThrow(/count 17/);
    // nvContents above the NV buffer bound
    expect(() => unmarshalAttest(fromHex(attest("8014", "000101" + "0000" + "0801" + "00".repeat(0x801))))).toThrow(/exceeds the maximum 2048/);
    // clockInfo.safe = 2
    const bad = attest("8017", "00000000").split("");
    const safeAt = 2 * (4 + 2 + 6 + 2 + 8 + 4 + 4);
    bad.splice(safeAt, 2, "0", "2");
    expect(() => unmarshalAttest(fromHex(bad.join("")))).toThrow(/TPMI_YES_NO/);
    expect(() => unmarshalAttest(fromHex(attest("8016", "02" + "0000")))).toThrow(/TPMI_YES_NO/);
  });
});
