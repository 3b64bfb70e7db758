import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { TPM_RC } from "./constants.js";
import { TpmResponseError, decodeRc, formatRc } from "./rc.js";

describe("decodeRc", () => {
  it("names format-0 errors and flags warnings", () => {
    expect(decodeRc(0x100)).toMatchObject({ name: "TPM_RC_INITIALIZE", format: "fmt0", warning: false, base: TPM_RC.INITIALIZE });
    expect(decodeRc(0x143).name).toBe("TPM_RC_COMMAND_CODE");
    expect(decodeRc(0x922)).toMatchObject({ name: "TPM_RC_RETRY", warning: true });
    expect(decodeRc(0x90a).name).toBe("TPM_RC_TESTING");
    expect(decodeRc(0x907).name).toBe("TPM_RC_LOCALITY");
  });

  it("decodes format-1 codes with their handle, parameter or session index", () => {
    // AUTH_FAIL on session 1: 0x80 + 0x0E, S bit (0x800) and N=1 (0x100)
    expect(decodeRc(0x98e)).toMatchObject({ name: "TPM_RC_AUTH_FAIL", session: 1, format: "fmt1" });
    // VALUE on parameter 1
    expect(decodeRc(0x1c4)).toMatchObject({ name: "TPM_RC_VALUE", parameter: 1 });
    // HANDLE on handle 1
    expect(decodeRc(0x18b)).toMatchObject({ name: "TPM_RC_HANDLE", handle: 1 });
    expect(decodeRc(0x2c4)).toMatchObject({ name: "TPM_RC_VALUE", parameter: 2 });
  });

  it("strips the TSS layer and names it (the resource manager's synthetic COMMAND_CODE)", () => {
    const d = decodeRc(0x000b0143);
    expect(d).toMatchObject({ name: "TPM_RC_COMMAND_CODE", layer: 11, layerName: "RESMGR", base: 0x143 });
    expect(formatRc(0x000b0143)).toContain("RESMGR");
  });

  it("never throws and always yields a name for any 32-bit code", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (rc) => {
        const d = decodeRc(rc);
        expect(d.name.length).toBeGreaterThan(0);
        expect(d.rc).toBe(rc >>> 0);
      }),
    );
  });
});

describe("TpmResponseError", () => {
  it("carries the stable code, rc and name", () => {
    const e = new TpmResponseError(0x143, 0x17b);
    expect(e.code).toBe("TPM_RESPONSE");
    expect(e.rcName).toBe("TPM_RC_COMMAND_CODE");
    expect(e.message).toContain("TPM_CC_GetRandom");
    expect(e.base).toBe(TPM_RC.COMMAND_CODE);
  });
});
