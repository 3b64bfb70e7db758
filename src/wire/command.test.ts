import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { buildCommand, hasSessionAuth, parseResponse, type CommandSpec } from "./command.js";
import * as C from "./commands.js";
import { TpmReader, TpmWriter, fromHex, toHex, readHeader } from "./buffer.js";
import { TpmFormatError, TpmArgumentError } from "../errors/index.js";
import { TpmResponseError } from "./rc.js";
import { readPcrSelection, writePcrSelection } from "./types.js";

describe("command bytes match what tpm2-tss 3.2.1 sends (measured against swtpm 0.7.1)", () => {
  it("GetRandom(16)", () => {
    expect(toHex(buildCommand(C.getRandomCmd(16)))).toBe("80010000000c0000017b0010");
  });
  it("PCR_Read(sha256 PCR 0)", () => {
    expect(toHex(buildCommand(C.pcrReadCmd([{ hash: 0x0b, pcrs: [0] }])))).toBe("80010000001400" + "00017e00000001000b03010000");
  });
  it("PCR_Extend with a password session: TPM_RS_PW, empty nonce, continueSession, empty hmac", () => {
    const d = new Uint8Array(32);
    d[31] = 1;
    const b = buildCommand(C.pcrExtendCmd(0, [{ hash: 0x0b, digest: d }]));
    const r = new TpmReader(b);
    expect(r.u16()).toBe(0x8002);
    expect(r.u32()).toBe(b.length);
    expect(r.u32()).toBe(0x182);
    expect(r.u32()).toBe(0); // PCR 0 handle
    expect(r.u32()).toBe(9); // authorizationSize
    expect(toHex(r.bytesN(9))).toBe("40000009" + "0000" + "01" + "0000");
    expect(r.u32()).toBe(1);
    expect(r.u16()).toBe(0x0b);
    expect(toHex(r.bytesN(32))).toBe(toHex(d));
    r.expectEnd();
  });
  it("a password is carried as the session hmac", () => {
    const b = buildCommand(C.clearCmd(0x4000000a, { password: "pw" }));
    expect(toHex(b.subarray(14))).toBe("0000000b" + "40000009" + "0000" + "01" + "0002" + "7077");
  });
});

describe("parseResponse", () => {
  const ok = (hexBody: string, tag = "8001") => {
    const body = fromHex(hexBody);
    const w = new TpmWriter();
    w.u16(parseInt(tag, 16)).u32(10 + body.length).u32(0).bytes(body);
    return w.finish();
  };

  it("parses a GetRandom response (bytes swtpm 0.7.1 answered, measured)", () => {
    const rsp = fromHex("8001000000140000000000080d5dd37366b45f17");
    expect(toHex(parseResponse(C.getRandomCmd(8), rsp))).toBe("0d5dd37366b45f17");
  });

  it("throws TpmResponseError with the command's name for a non-zero rc", () => {
    const rsp = fromHex("80010000000a00000143");
    const e = (() => {
      try {
        parseResponse(C.getRandomCmd(8), rsp);
      } catch (x) {
        return x;
      }
    })() as TpmResponseError;
    expect(e).toBeInstanceOf(TpmResponseError);
    expect(e.rcName).toBe("TPM_RC_COMMAND_CODE");
  });

  it("bounds the parameter area by parameterSize and checks the session area", () => {
    const spec = C.pcrEventCmd(16, new Uint8Array([1]));
    // parameterSize 4 + TPML_DIGEST_VALUES with 0 entries, then one session: nonce 0, attrs 1, hmac 0
    const good = ok("00000004" + "00000000" + "0000" + "01" + "0000", "8002");
    expect(parseResponse(spec, good)).toEqual([]);
    const lyingParamSize = ok("000000ff" + "00000000" + "0000" + "01" + "0000", "8002");
    expect(() => parseResponse(spec, lyingParamSize)).toThrow(TpmFormatError);
    const noSession = ok("00000004" + "00000000", "8002");
    expect(() => parseResponse(spec, noSession)).toThrow(TpmFormatError);
    const wrongTag = ok("00000004" + "00000000" + "0000" + "01" + "0000", "8001");
    expect(() => parseResponse(spec, wrongTag)).toThrow(/tag/);
  });

  it("rejects every truncation of a valid PCR_Read response with TpmFormatError, never a RangeError", () => {
    const body = "00000005" + "00000001000b03010000" + "00000001" + "0020" + "11".repeat(32);
    const full = ok(body);
    expect(parseResponse(C.pcrReadCmd([{ hash: 0x0b, pcrs: [0] }]), full).digests[0]).toHaveLength(32);
    for (let n = 0; n < full.length; n++) {
      const cut = full.slice(0, n);
      if (n >= 6) cut.set([0, 0, 0, n], 2);
      expect(() => parseResponse(C.pcrReadCmd([{ hash: 0x0b, pcrs: [0] }]), cut)).toThrow(TpmFormatError);
    }
  });

  it("never throws anything but tpmkit errors on random response bytes", () => {
    const specs: CommandSpec<unknown>[] = [C.getRandomCmd(8), C.pcrReadCmd([{ hash: 0x0b, pcrs: [0] }]), C.getCapabilityCmd(6, 0x100, 8), C.nvReadPublicCmd(0x1000000), C.readClockCmd(), C.pcrEventCmd(1, new Uint8Array(1))];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), fc.integer({ min: 0, max: specs.length - 1 }), (bytes, fixSize, k) => {
        const b = bytes.slice();
        if (fixSize && b.length >= 10) {
          new DataView(b.buffer).setUint32(2, b.length);
          new DataView(b.buffer).setUint32(6, 0);
        }
        try {
          parseResponse(specs[k]!, b);
        } catch (e) {
          expect(e instanceof TpmFormatError || e instanceof TpmResponseError).toBe(true);
        }
      }),
    );
  });
});

describe("codecs", () => {
  it("round-trips PCR selections", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ hash: fc.constantFrom(4, 0xb, 0xc, 0xd), pcrs: fc.uniqueArray(fc.integer({ min: 0, max: 23 }), { maxLength: 24 }) }), { maxLength: 4 }), (sel) => {
        const w = new TpmWriter();
        writePcrSelection(w, sel);
        const got = readPcrSelection(new TpmReader(w.finish()));
        expect(got).toEqual(sel.map((s) => ({ hash: s.hash, pcrs: [...s.pcrs].sort((a, b) => a - b) })));
      }),
    );
  });

  it("round-trips every writer field through the reader", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffffffff }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.uint8Array({ maxLength: 300 }), (a, b, c, d, e) => {
        const w = new TpmWriter(1);
        w.u8(a).u16(b).u32(c).u64(d).tpm2b(e);
        const r = new TpmReader(w.finish());
        expect([r.u8(), r.u16(), r.u32(), r.u64(), [...r.tpm2b()]]).toEqual([a, b, c, d, [...e]]);
        r.expectEnd();
      }),
    );
  });

  it("rejects lying lengths: TPM2B sizes and list counts beyond the data", () => {
    expect(() => new TpmReader(fromHex("0005aabb")).tpm2b()).toThrow(TpmFormatError);
    expect(() => new TpmReader(fromHex("ffffffff")).list((r) => r.u8())).toThrow(TpmFormatError);
    expect(() => new TpmReader(fromHex("00000002aa")).list((r) => r.u8())).toThrow(TpmFormatError);
    expect(() => readHeader(fromHex("8001000000ff00000000"))).toThrow(/255/);
    expect(() => readHeader(fromHex("800100000005000000000000"), false)).toThrow(/below 10/);
  });

  it("refuses out-of-range values when writing", () => {
    expect(() => new TpmWriter().u8(256)).toThrow(TpmArgumentError);
    expect(() => new TpmWriter().u16(-1)).toThrow(TpmArgumentError);
    expect(() => new TpmWriter().u32(1.5)).toThrow(TpmArgumentError);
    expect(() => fromHex("abc")).toThrow(TpmArgumentError);
  });
});

describe("TpmWriter refuses what is not bytes", () => {
  it("a string given as bytes or a TPM2B is a TpmArgumentError, not that many zero bytes", () => {
    expect(() => new TpmWriter().bytes("hello" as unknown as Uint8Array)).toThrow(TpmArgumentError);
    expect(() => new TpmWriter().tpm2b("hello" as unknown as Uint8Array)).toThrow(/TpmWriter\.tpm2b: expected a Uint8Array, got string/);
    expect(toHex(new TpmWriter().tpm2b(Uint8Array.of(1, 2)).finish())).toBe("00020102");
  });
});

describe("authorizations by a session (run by Tpm, which computes the HMACs)", () => {
  it("hasSessionAuth tells a session authorization from passwords, and buildCommand refuses one instead of sending a password session", () => {
    const withPassword: CommandSpec<void> = { cc: 0x15e, handles: [0x80000000], auths: [{ password: "x" }], response: () => undefined };
    const withSession: CommandSpec<void> = { cc: 0x15e, handles: [0x80000000], auths: [{ session: {}, password: "x" }], response: () => undefined };
    expect(hasSessionAuth(withPassword)).toBe(false);
    expect(hasSessionAuth({ cc: 0x17b, response: () => undefined })).toBe(false);
    expect(hasSessionAuth(withSession)).toBe(true);
    expect(toHex(buildCommand(withPassword))).toBe("80020000001c0000015e80000000" + "0000000a40000009000001000178");
    expect(() => buildCommand(withSession)).toThrow(TpmArgumentError);
  });
});
