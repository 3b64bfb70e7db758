import { describe, it, expect } from "vitest";
import { createHmac } from "node:crypto";
import { TeeError, TpmArgumentError } from "../../errors/index.js";
import { TEE_RESULT } from "../../bus/tee/constants.js";
import { HUK_SUBKEY, RPMB_CID_CRC_OFFSET, RPMB_CID_PRV_OFFSET, RPMB_TEST_KEY, deriveRpmbKey, hukSubkeyDerive } from "./rpmb-key.js";
import { rpmbTestKeyRetrieve } from "./rpmb-fs.js";

const huk = Uint8Array.from({ length: 16 }, (_, i) => i);
const cid = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("deriveRpmbKey (optee_os tee_rpmb_key_gen → huk_subkey_derive)", () => {
  it("pins OP-TEE's numbers", () => {
    expect(HUK_SUBKEY).toEqual({ RPMB: 0, SSK: 1, DIE_ID: 2, UNIQUE_TA: 3, TA_ENC: 4, SE050: 5 });
    expect(RPMB_CID_PRV_OFFSET).toBe(9);
    expect(RPMB_CID_CRC_OFFSET).toBe(15);
    expect(hex(RPMB_TEST_KEY)).toBe("d3eb3ec36e334c9f988ce2c0b85954610d2bcf8664844df2ab56e6c61bb701e4");
  });

  it("is HMAC-SHA256(HUK, u32le(0) ‖ CID with bytes 9 and 15 zeroed), checked with node:crypto", () => {
    const masked = Buffer.from(cid);
    masked[9] = 0;
    masked[15] = 0;
    const expected = createHmac("sha256", huk).update(Buffer.from([0, 0, 0, 0])).update(masked).digest();
    const k = deriveRpmbKey(huk, cid);
    expect(k.length).toBe(32);
    expect(hex(k)).toBe(expected.toString("hex"));
    // The same vector computed with Python's hmac module, as scripts/derive_rpmb_key.py does.
    expect(hex(k)).toBe("691c8d33baa0123bf63f17728cf2397d64e3330bea8fc55944efb7382d878887");
  });

  it("ignores the PRV and CRC bytes (an eMMC firmware update keeps the key) and nothing else", () => {
    const updated = cid.slice();
    updated[9] = 0xee;
    updated[15] = 0x77;
    expect(deriveRpmbKey(huk, updated)).toEqual(deriveRpmbKey(huk, cid));
    const other = cid.slice();
    other[0] ^= 1;
    expect(deriveRpmbKey(huk, other)).not.toEqual(deriveRpmbKey(huk, cid));
    const otherHuk = huk.slice();
    otherHuk[15] ^= 1;
    expect(deriveRpmbKey(otherHuk, cid)).not.toEqual(deriveRpmbKey(huk, cid));
    expect(cid[9]).toBe(0x19); // the caller's CID is not modified
  });

  it("other usages give other subkeys (usage word little-endian)", () => {
    const ssk = hukSubkeyDerive(huk, HUK_SUBKEY.SSK);
    expect(hex(ssk)).toBe(createHmac("sha256", huk).update(Buffer.from([1, 0, 0, 0])).digest("hex"));
  });

  it("checks lengths: the HUK is 16 bytes, the CID 16", () => {
    expect(() => deriveRpmbKey(new Uint8Array(32), cid)).toThrow(TpmArgumentError);
    expect(() => deriveRpmbKey(huk, new Uint8Array(15))).toThrow(TpmArgumentError);
    expect(() => hukSubkeyDerive(huk, -1)).toThrow(TpmArgumentError);
  });
});

describe("rpmbTestKeyRetrieve (CFG_RPMB_WRITE_KEY test builds only)", () => {
  it("harvests the key a write-key build programs: the same key deriveRpmbKey gives", async () => {
    const key = deriveRpmbKey(huk, cid);
    const got = await rpmbTestKeyRetrieve({ key, cid, writeKey: true, plat: { keyIsReady: true } });
    expect(hex(got)).toBe(hex(key));
    const testBuild = await rpmbTestKeyRetrieve({ key: RPMB_TEST_KEY, cid, writeKey: true });
    expect(testBuild).toEqual(RPMB_TEST_KEY);
  });

  it("a production build gives nothing: STORAGE_NOT_AVAILABLE, or BAD_STATE when the platform holds the key back", async () => {
    const key = deriveRpmbKey(huk, cid);
    const e1 = await rpmbTestKeyRetrieve({ key, cid }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(TeeError);
    expect((e1 as TeeError).teeCode).toBe(TEE_RESULT.STORAGE_NOT_AVAILABLE);
    const e2 = await rpmbTestKeyRetrieve({ key, cid, writeKey: true, plat: { keyIsReady: false } }).catch((e: unknown) => e);
    expect((e2 as TeeError).teeCode).toBe(TEE_RESULT.BAD_STATE);
  });
});
