import { describe, expect, it } from "vitest";
import { TpmArgumentError } from "../../errors/index.js";
import {
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  NIL_UUID,
  TPM_SERVICE_UUID,
  ffaVersion,
  uuidBytes,
  uuidToRegs,
  uuidToWords,
} from "./abi.js";
import { ffaFrame, s32, w32 } from "./conduit.js";

// Known answers: Linux drivers/firmware/arm_ffa/driver.c, ffa_partition_probe() (export_uuid into
// four u32 words) and ffa_msg_send_direct_req2() (the UUID as two little-endian u64s).
describe("FF-A UUID helpers (known answers)", () => {
  it("loads the TPM service UUID as PARTITION_INFO_GET w1..w4", () => {
    expect(uuidToWords(TPM_SERVICE_UUID)).toEqual([0xa462b817, 0xaf4f0618, 0x9a08b386, 0x61383558]);
  });

  it("loads the TPM service UUID as DIRECT_REQ2 x2/x3", () => {
    expect(uuidToRegs(TPM_SERVICE_UUID)).toEqual([0xaf4f0618a462b817n, 0x613835589a08b386n]);
  });

  it("keeps the RFC 4122 byte order of the hex digits", () => {
    expect(Buffer.from(uuidBytes(TPM_SERVICE_UUID)).toString("hex")).toBe("17b862a418064faf86b3089a58353861");
    expect(uuidBytes("17B862A4-1806-4FAF-86B3-089A58353861")).toEqual(uuidBytes(TPM_SERVICE_UUID));
  });

  it("maps the nil UUID to zeros", () => {
    expect(uuidToWords(NIL_UUID)).toEqual([0, 0, 0, 0]);
    expect(uuidToRegs(NIL_UUID)).toEqual([0n, 0n]);
  });

  it("rejects malformed UUIDs with TpmArgumentError", () => {
    for (const bad of ["", "17b862a4", "17b862a4-1806-4faf-86b3-089a5835386", "zzb862a4-1806-4faf-86b3-089a58353861"]) {
      expect(() => uuidBytes(bad)).toThrow(TpmArgumentError);
    }
  });
});

describe("FF-A version encoding", () => {
  it("puts the major in bits 30:16 and the minor in 15:0", () => {
    expect(ffaVersion(1, 0)).toBe(0x10000);
    expect(ffaVersion(1, 2)).toBe(0x10002);
    expect(ffaVersion(2, 7)).toBe(0x20007);
    expect([FFA_VERSION_1_0, FFA_VERSION_1_1, FFA_VERSION_1_2]).toEqual([0x10000, 0x10001, 0x10002]);
  });

  it("keeps bit 31 clear", () => {
    expect(ffaVersion(0xffff, 0) & 0x80000000).toBe(0);
  });
});

describe("FF-A register frames", () => {
  it("pads to 18 registers and masks to 64 bits", () => {
    const f = ffaFrame([1n, -1n]);
    expect(f).toHaveLength(18);
    expect(f[1]).toBe(0xffffffffffffffffn);
    expect(f[17]).toBe(0n);
  });

  it("reads w registers unsigned and error codes signed", () => {
    expect(w32(0x1_8400_0060n)).toBe(0x84000060);
    expect(s32(0xfffffffcn)).toBe(-4);
    expect(s32(0xfffffffffffffffen)).toBe(-2);
  });
});
