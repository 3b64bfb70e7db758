import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TpmFormatError, TpmkitError } from "../errors/index.js";
import { EV, eventTypeName, parseEventLog, replayEventLog } from "./eventlog.js";

// --- a small independent writer (little-endian, PFP §10.2) -------------------------------------

const le32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const le16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
const sig16 = (s: string): Buffer => {
  const b = Buffer.alloc(16);
  b.write(s, "latin1");
  return b;
};
const H = (alg: string, ...parts: Uint8Array[]): Buffer => createHash(alg).update(Buffer.concat(parts)).digest();

const SHA1 = 0x0004;
const SHA256 = 0x000b;
const SM3 = 0x0012;

function sha1Event(pcr: number, type: number, digest: Buffer, data: Buffer): Buffer {
  return Buffer.concat([le32(pcr), le32(type), digest, le32(data.length), data]);
}

function specIdData(algs: [number, number][], vendor = Buffer.alloc(0)): Buffer {
  const list = Buffer.concat(algs.map(([id, size]) => Buffer.concat([le16(id), le16(size)])));
  return Buffer.concat([sig16("Spec ID Event03"), le32(0), Buffer.from([0, 2, 0, 2]), le32(algs.length), list, Buffer.from([vendor.length]), vendor]);
}

function event2(pcr: number, type: number, digests: [number, Buffer][], data: Buffer): Buffer {
  const d = Buffer.concat(digests.map(([id, dg]) => Buffer.concat([le16(id), dg])));
  return Buffer.concat([le32(pcr), le32(type), le32(digests.length), d, le32(data.length), data]);
}

/** An event in both banks with digests of its data (as firmware measures most events). */
function measured(pcr: number, type: number, data: Buffer): Buffer {
  return event2(pcr, type, [[SHA1, H("sha1", data)], [SHA256, H("sha256", data)]], data);
}

const SEP = Buffer.alloc(4); // EV_SEPARATOR data: 0x00000000 (PFP §10.4.4)

/** A log shaped as real firmware writes it: Spec ID, StartupLocality 3, CRTM, variables, separators 0..7, a boot application. */
function realLog(): { log: Buffer; events: { pcr: number; type: number; data: Buffer }[] } {
  const events = [
    { pcr: 0, type: EV.EV_S_CRTM_VERSION, data: Buffer.from("1.0\0", "utf16le") },
    { pcr: 0, type: EV.EV_EFI_PLATFORM_FIRMWARE_BLOB, data: Buffer.from("firmware-volume") },
    { pcr: 7, type: EV.EV_EFI_VARIABLE_DRIVER_CONFIG, data: Buffer.from("SecureBoot=1") },
    { pcr: 1, type: EV.EV_EFI_VARIABLE_BOOT, data: Buffer.from("BootOrder") },
    ...[0, 1, 2, 3, 4, 5, 6, 7].map((pcr) => ({ pcr, type: EV.EV_SEPARATOR, data: SEP })),
    { pcr: 4, type: EV.EV_EFI_BOOT_SERVICES_APPLICATION, data: Buffer.from("shimx64.efi") },
    { pcr: 8, type: EV.EV_IPL, data: Buffer.from("grub_cmd: linux /vmlinuz\0") },
  ];
  const header = sha1Event(0, EV.EV_NO_ACTION, Buffer.alloc(20), specIdData([[SHA1, 20], [SHA256, 32]]));
  const locality = event2(0, EV.EV_NO_ACTION, [[SHA1, Buffer.alloc(20)], [SHA256, Buffer.alloc(32)]], Buffer.concat([sig16("StartupLocality"), Buffer.from([3])]));
  const log = Buffer.concat([header, locality, ...events.map((e) => measured(e.pcr, e.type, e.data))]);
  return { log, events };
}

/** The expected PCRs computed straight from the spec formulas, independent of the parser. */
function expectedPcrs(alg: "sha1" | "sha256", size: number, events: { pcr: number; type: number; data: Buffer }[], locality: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const e of events) {
    let v = out.get(e.pcr);
    if (!v) {
      v = Buffer.alloc(size);
      if (e.pcr === 0) v[size - 1] = locality;
    }
    out.set(e.pcr, H(alg, v, H(alg, e.data)));
  }
  return out;
}

describe("event types (PFP §10.4.1)", () => {
  it("have the spec's values", () => {
    expect(EV.EV_NO_ACTION).toBe(3);
    expect(EV.EV_SEPARATOR).toBe(4);
    expect(EV.EV_IPL).toBe(0xd);
    expect(EV.EV_EFI_VARIABLE_DRIVER_CONFIG).toBe(0x80000001);
    expect(EV.EV_EFI_BOOT_SERVICES_APPLICATION).toBe(0x80000003);
    expect(EV.EV_EFI_VARIABLE_AUTHORITY).toBe(0x800000e0);
    expect(eventTypeName(0x80000007)).toBe("EV_EFI_ACTION");
    expect(eventTypeName(0x1234)).toBe("EV_UNKNOWN_0x00001234");
  });
});

describe("parseEventLog", () => {
  it("parses a crypto-agile log: Spec ID, StartupLocality, events with both banks", () => {
    const { log, events } = realLog();
    const p = parseEventLog(log);
    expect(p.format).toBe("crypto-agile");
    expect(p.specId!.algorithms).toEqual([
      { algorithmId: SHA1, name: "sha1", digestSize: 20 },
      { algorithmId: SHA256, name: "sha256", digestSize: 32 },
    ]);
    expect(p.specId!.specVersionMajor).toBe(2);
    expect(p.startupLocality).toBe(3);
    expect(p.events).toHaveLength(2 + events.length);
    const sep = p.events[2 + 4]!;
    expect(sep.eventTypeName).toBe("EV_SEPARATOR");
    expect(sep.pcrIndex).toBe(0);
    expect(Buffer.from(sep.digests[1]!.digest)).toEqual(H("sha256", SEP));
    expect(p.events[2]!.offset).toBeGreaterThan(p.events[1]!.offset);
  });

  it("parses a legacy SHA-1 log (no Spec ID Event03)", () => {
    const a = Buffer.from("a"), b = Buffer.from("bb");
    const log = Buffer.concat([sha1Event(0, EV.EV_S_CRTM_VERSION, H("sha1", a), a), sha1Event(4, EV.EV_SEPARATOR, H("sha1", b), b)]);
    const p = parseEventLog(log);
    expect(p.format).toBe("sha1");
    expect(p.specId).toBeUndefined();
    expect(p.events.map((e) => [e.pcrIndex, e.eventTypeName])).toEqual([[0, "EV_S_CRTM_VERSION"], [4, "EV_SEPARATOR"]]);
    const r = replayEventLog(p, { sha1: { 0: H("sha1", Buffer.alloc(20), H("sha1", a)), 4: H("sha1", Buffer.alloc(20), H("sha1", b)) } });
    expect(r.compared).toBe(2);
    expect(r.mismatches).toEqual([]);
  });

  it("refuses a digest algorithm the Spec ID event does not list, naming the event", () => {
    const header = sha1Event(0, EV.EV_NO_ACTION, Buffer.alloc(20), specIdData([[SHA256, 32]]));
    const log = Buffer.concat([header, event2(0, 1, [[SHA1, Buffer.alloc(20)]], Buffer.alloc(0))]);
    expect(() => parseEventLog(log)).toThrow(/event 1 \(at offset \d+\).*0x4 is not in the Spec ID/);
  });

  it("refuses a Spec ID event with zero algorithms or a silly digest size", () => {
    expect(() => parseEventLog(sha1Event(0, EV.EV_NO_ACTION, Buffer.alloc(20), specIdData([])))).toThrow(TpmFormatError);
    expect(() => parseEventLog(sha1Event(0, EV.EV_NO_ACTION, Buffer.alloc(20), specIdData([[SHA256, 0x1000]])))).toThrow(/digest size 4096/);
  });

  it("a log truncated at every offset is a TpmFormatError naming the event and offset", () => {
    const { log } = realLog();
    const starts = parseEventLog(log).events.map((e) => e.offset);
    for (let n = 0; n < log.length; n++) {
      if (starts.includes(n) && n > 0) {
        // a cut exactly between events is a shorter valid log
        expect(parseEventLog(log.subarray(0, n)).events.length).toBe(starts.indexOf(n));
        continue;
      }
      let err: unknown;
      try {
        parseEventLog(log.subarray(0, n));
      } catch (e) {
        err = e;
      }
      expect(err, `cut at ${n}`).toBeInstanceOf(TpmFormatError);
      if (n > 0) expect((err as Error).message).toMatch(/event \d+ \(at offset \d+\)/);
    }
  });

  it("random bytes never throw anything but a TpmkitError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          replayEventLog(parseEventLog(bytes));
        } catch (e) {
          expect(e).toBeInstanceOf(TpmkitError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("a valid log with mutated bytes never throws untyped", () => {
    const { log } = realLog();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(log.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (muts) => {
        const b = Buffer.from(log);
        for (const [i, v] of muts) b[i] = v;
        try {
          replayEventLog(parseEventLog(b));
        } catch (e) {
          expect(e).toBeInstanceOf(TpmkitError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("replayEventLog", () => {
  it("replays both banks; EV_NO_ACTION is not extended; StartupLocality 3 sets PCR 0 to 0…03 (PFP §10.4.5.3)", () => {
    const { log, events } = realLog();
    const r = replayEventLog(parseEventLog(log));
    for (const [alg, size] of [["sha1", 20], ["sha256", 32]] as const) {
      const want = expectedPcrs(alg, size, events, 3);
      for (const [pcr, v] of want) expect(Buffer.from(r.values[alg]![pcr]!).toString("hex"), `${alg} PCR ${pcr}`).toBe(v.toString("hex"));
      expect(Object.keys(r.values[alg]!).map(Number).sort((a, b) => a - b)).toEqual([...want.keys()].sort((a, b) => a - b));
    }
    expect(r.pcrs.find((p) => p.pcr === 0 && p.bank === "sha256")!.events).toEqual([2, 3, 6]);
    expect(r.skippedBanks).toEqual([]);
  });

  it("StartupLocality 4 sets PCR 0 to 0…04; without it PCR 0 starts at zeros", () => {
    const data = Buffer.from("crtm");
    const header = sha1Event(0, EV.EV_NO_ACTION, Buffer.alloc(20), specIdData([[SHA256, 32]]));
    const loc4 = event2(0, EV.EV_NO_ACTION, [[SHA256, Buffer.alloc(32)]], Buffer.concat([sig16("StartupLocality"), Buffer.from([4])]));
    const ev = event2(0, EV.EV_S_CRTM_CONTENTS, [[SHA256, H("sha256", data)]], data);
    const init4 = Buffer.alloc(32);
    init4[31] = 4;
    expect(Buffer.from(replayEventLog(Buffer.concat([header, loc4, ev])).values.sha256![0]!)).toEqual(H("sha256", init4, H("sha256", data)));
    expect(Buffer.from(replayEventLog(Buffer.concat([header, ev])).values.sha256![0]!)).toEqual(H("sha256", Buffer.alloc(32), H("sha256", data)));
  });

  it("matching actual values give no mismatch", () => {
    const { log, events } = realLog();
    const want = expectedPcrs("sha256", 32, events, 3);
    const actual = { sha256: Object.fromEntries([...want].map(([k, v]) => [k, new Uint8Array(v)])) };
    const r = replayEventLog(log, actual);
    expect(r.compared).toBe(want.size);
    expect(r.mismatches).toEqual([]);
  });

  it("a PCR that differs names the last event extended into it, the full list, expected and actual", () => {
    const { log, events } = realLog();
    const want = expectedPcrs("sha256", 32, events, 3);
    const wrong = Buffer.alloc(32, 0xee);
    const r = replayEventLog(log, { sha256: { 0: new Uint8Array(want.get(0)!), 4: wrong } });
    expect(r.mismatches).toHaveLength(1);
    const m = r.mismatches[0]!;
    expect(m).toMatchObject({ pcr: 4, bank: "sha256", eventIndex: 14, events: [10, 14], matchesAfterEvent: undefined });
    expect(Buffer.from(m.expected)).toEqual(want.get(4));
    expect(Buffer.from(m.actual)).toEqual(wrong);
  });

  it("an actual value equal to the replay after an earlier event is reported (log has events the PCR never got)", () => {
    const { log } = realLog();
    // PCR 4 after only its separator (event 10)
    const afterSep = H("sha256", Buffer.alloc(32), H("sha256", SEP));
    const r = replayEventLog(log, { sha256: { 4: afterSep, 9: Buffer.alloc(32, 1) } });
    expect(r.mismatches.map((m) => [m.pcr, m.eventIndex, m.matchesAfterEvent])).toEqual([
      [9, -1, undefined], // no event touches PCR 9: its initial value differs
      [4, 14, 10],
    ]);
  });

  it("a bank tpmkit cannot hash (SM3) is skipped, not guessed", () => {
    const data = Buffer.from("x");
    const header = sha1Event(0, EV.EV_NO_ACTION, Buffer.alloc(20), specIdData([[SHA256, 32], [SM3, 32]]));
    const ev = event2(2, EV.EV_POST_CODE, [[SHA256, H("sha256", data)], [SM3, Buffer.alloc(32, 7)]], data);
    const r = replayEventLog(Buffer.concat([header, ev]));
    expect(r.skippedBanks).toEqual([SM3]);
    expect(Object.keys(r.values)).toEqual(["sha256"]);
  });

  it("an event without a digest for a bank is listed in missingDigests", () => {
    const data = Buffer.from("x");
    const header = sha1Event(0, EV.EV_NO_ACTION, Buffer.alloc(20), specIdData([[SHA1, 20], [SHA256, 32]]));
    const ev = event2(2, EV.EV_POST_CODE, [[SHA256, H("sha256", data)]], data);
    expect(replayEventLog(Buffer.concat([header, ev])).missingDigests).toEqual([{ eventIndex: 1, bank: "sha1" }]);
  });
});
