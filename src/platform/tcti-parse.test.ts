import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { TpmArgumentError } from "../errors/index.js";
import { formatTcti, parseKeyValues, parseTcti } from "./tcti-parse.js";

describe("parseTcti: accepted forms", () => {
  const cases: Array<[string, string, Record<string, string | number>]> = [
    ["swtpm:host=127.0.0.1,port=2321", "swtpm", { host: "127.0.0.1", port: 2321 }],
    ["swtpm:path=/run/x.sock", "swtpm", { path: "/run/x.sock" }],
    ["mssim:host=localhost,port=2321", "mssim", { host: "localhost", port: 2321 }],
    ["mssim", "mssim", {}],
    ["device:/dev/tpmrm0", "device", { path: "/dev/tpmrm0" }],
    ["device:path=/dev/tpm0", "device", { path: "/dev/tpm0" }],
    ["device", "device", {}],
    ["memory", "memory", {}],
    ["softtpm:state=/var/lib/tpm/state.bin", "softtpm", { state: "/var/lib/tpm/state.bin" }],
    ["tis", "tis", {}],
    ["crb", "crb", {}],
    ["abrmd", "tabrmd", {}],
    ["tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=session", "tabrmd", { bus_name: "com.intel.tss2.Tabrmd", bus_type: "session" }],
    ["libtss2-tcti-mssim.so.0:port=5555", "mssim", { port: 5555 }],
    ["  MSSIM:host=127.0.0.1, port=5555 ", "mssim", { host: "127.0.0.1", port: 5555 }],
  ];
  for (const [text, name, config] of cases) {
    it(`parses "${text}"`, () => {
      const spec = parseTcti(text);
      expect(spec.name).toBe(name);
      expect(spec.config).toEqual(config);
      expect(spec.text).toBe(text);
    });
  }
});

describe("parseTcti: rejected strings say what is wrong", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /it is empty/],
    ["   ", /it is empty/],
    [":port=1", /name is empty/],
    ["ms sim", /not a TCTI name/],
    ["mssim:host", /not a key=value pair/],
    ["mssim:=1", /empty key/],
    ["mssim:port=", /empty value/],
    ["mssim:port=1,port=2", /given twice/],
    ["mssim:port=0", /outside 1–65535/],
    ["mssim:port=65536", /outside 1–65535/],
    ["mssim:port=23a", /not a number/],
    ["mssim:port=1,", /not a key=value pair/],
    ["mssim:foo=1", /does not take "foo" \(it takes host, port, path\)/],
    ["swtpm:path=/x,port=2", /"path" and "port" cannot be combined/],
    ["device:/dev/tpm0,/dev/tpm1", /single path/],
    ["memory:x=1", /takes no configuration/],
    ["mssim:1x=2", /not a valid key/],
  ];
  for (const [text, why] of cases) {
    it(`rejects "${text}"`, () => {
      let err: unknown;
      try {
        parseTcti(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TpmArgumentError);
      expect((err as Error).message).toMatch(why);
    });
  }

  it("rejects a non-string", () => {
    expect(() => parseTcti(42 as unknown as string)).toThrow(TpmArgumentError);
  });
});

describe("formatTcti", () => {
  it("writes device paths bare and other configurations as key=value", () => {
    expect(formatTcti({ name: "device", config: { path: "/dev/tpmrm0" } })).toBe("device:/dev/tpmrm0");
    expect(formatTcti({ name: "mssim", config: { host: "h", port: 1 } })).toBe("mssim:host=h,port=1");
    expect(formatTcti({ name: "memory" })).toBe("memory");
  });

  it("round-trips through parseTcti for any host/port or path", () => {
    const host = fc.stringMatching(/^[a-z0-9.-]{1,20}$/);
    const cfg = fc.oneof(
      fc.record({ host, port: fc.integer({ min: 1, max: 65535 }) }),
      fc.record({ path: fc.stringMatching(/^\/[a-z0-9/._-]{1,30}$/) }),
    );
    fc.assert(
      fc.property(fc.constantFrom("mssim", "swtpm"), cfg, (name, config) => {
        const spec = parseTcti(formatTcti({ name, config }));
        expect(spec.name).toBe(name);
        expect(spec.config).toEqual(config);
      }),
    );
  });

  it("parseKeyValues never throws anything but TpmArgumentError", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        try {
          parseKeyValues(s);
        } catch (e) {
          expect(e).toBeInstanceOf(TpmArgumentError);
        }
      }),
    );
  });
});
