/**
 * The IMA model (issue 10, point 4): the boot_aggregate as Linux computes it (bank choice, PCR
 * 0–7 plus 8–9 for non-SHA-1 banks), the ima-ng entry extended into PCR 10, and TPM-bypass. Every
 * expected digest is recomputed here with node:crypto from the PCR values the test set, not with
 * the code under test.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Tpm } from "../client/tpm.js";
import { TpmAbortError, TpmArgumentError } from "../errors/index.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { memory } from "../transports/memory/index.js";
import { TPM_ALG } from "../wire/constants.js";
import type { PcrSelect } from "../wire/types.js";
import {
  allocatedBanks,
  chooseImaBank,
  IMA_BYPASS_LOG,
  IMA_MEASURE_PCR,
  IMA_NO_SUITABLE_BANK_LOG,
  imaBootAggregate,
  initIma,
  type ImaChip,
} from "./ima.js";

type Bank = "sha1" | "sha256" | "sha384" | "sha512";
const SIZE: Record<Bank, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
const BANKS: Bank[] = ["sha1", "sha256", "sha384", "sha512"];
const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);

const h = (alg: Bank, ...parts: Uint8Array[]): Uint8Array => {
  const c = createHash(alg);
  for (const p of parts) c.update(p);
  return new Uint8Array(c.digest());
};
const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString("hex");
const le32 = (n: number): Uint8Array => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return new Uint8Array(b);
};
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));

/** What "firmware" measures into PCR i of bank `alg` (one extend each). */
const firmwareEvent = (alg: Bank, pcr: number): Uint8Array => h(alg, ascii(`firmware event for PCR ${pcr}`));

/** A SoftTpm whose PCRs 0–9 firmware extended once in every bank, and the PCR values we expect (node:crypto). */
async function firmwareBootedTpm(): Promise<{ tpm: Tpm; expected: Record<Bank, Uint8Array[]> }> {
  const tpm = await Tpm.open(memory({ backend: new SoftTpm({ seed: "ima" }) }));
  const expected = {} as Record<Bank, Uint8Array[]>;
  for (const b of BANKS) expected[b] = [];
  for (let pcr = 0; pcr < 10; pcr++) {
    const digests: Partial<Record<Bank, Uint8Array>> = {};
    for (const b of BANKS) {
      digests[b] = firmwareEvent(b, pcr);
      expected[b][pcr] = h(b, new Uint8Array(SIZE[b]), digests[b]);
    }
    await tpm.pcrExtend(pcr, digests);
  }
  return { tpm, expected };
}

/** The boot aggregate recomputed independently: H(PCR0‖…‖PCR7[‖PCR8‖PCR9]). */
const expectedAggregate = (bank: Bank, pcrs: Uint8Array[]): Uint8Array => h(bank, ...pcrs.slice(0, bank === "sha1" ? 8 : 10));

/** The ima-ng template digest recomputed independently: per field le32(len) ‖ data; d-ng = "alg:" NUL digest; n-ng = name NUL. */
function expectedTemplate(bank: Bank, digestAlg: Bank, digest: Uint8Array, name: string): Uint8Array {
  const d = Buffer.concat([ascii(`${digestAlg}:`), new Uint8Array([0]), digest]);
  const n = Buffer.concat([ascii(name), new Uint8Array([0])]);
  return h(bank, le32(d.length), d, le32(n.length), n);
}

/** A chip stand-in with the banks given (as TPM_CAP_PCRS lists them) and PCR i = byte i repeated. */
function stubChip(banks: PcrSelect[], faults: { readFails?: number[]; extendFails?: boolean } = {}): ImaChip & { reads: string[]; extends: unknown[] } {
  const reads: string[] = [];
  const ext: unknown[] = [];
  const chip = {
    reads,
    extends: ext,
    getPcrBanks: async () => banks,
    pcrRead: async (sel: Record<string, number[]>) => {
      const [bank, [pcr]] = Object.entries(sel)[0] as [Bank, number[]];
      reads.push(`${bank}:${pcr}`);
      if (faults.readFails?.includes(pcr!)) throw new Error("TPM gone");
      return { [bank]: { [pcr!]: new Uint8Array(SIZE[bank]).fill(pcr! + 1) } };
    },
    pcrExtend: async (pcr: number, digests: unknown) => {
      if (faults.extendFails) throw new Error("extend failed");
      ext.push([pcr, digests]);
    },
  };
  return chip as unknown as ImaChip & { reads: string[]; extends: unknown[] };
}
const sel = (alg: number, pcrs = ALL_PCRS): PcrSelect => ({ hash: alg, pcrs });

describe("boot_aggregate (ima_calc_boot_aggregate)", () => {
  it("over a SoftTpm whose PCRs 0–9 firmware extended: SHA-256 bank, PCR 0–9, recomputed with node:crypto", async () => {
    const { tpm, expected } = await firmwareBootedTpm();
    const r = await imaBootAggregate(tpm);
    expect(r.bank).toBe("sha256");
    expect(r.pcrs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(hex(r.aggregate)).toBe(hex(expectedAggregate("sha256", expected.sha256)));
    // non-trivial: not the aggregate of untouched PCRs, and PCR 8–9 count
    expect(hex(r.aggregate)).not.toBe(hex(h("sha256", new Uint8Array(320))));
    expect(hex(r.aggregate)).not.toBe(hex(h("sha256", ...expected.sha256.slice(0, 8))));
    expect(r.log).toEqual([]);
  });

  it("ima_hash=sha1: the SHA-1 bank over PCR 0–7 only", async () => {
    const { tpm, expected } = await firmwareBootedTpm();
    const r = await imaBootAggregate(tpm, { imaHash: "sha1" });
    expect(r.bank).toBe("sha1");
    expect(r.pcrs).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(hex(r.aggregate)).toBe(hex(expectedAggregate("sha1", expected.sha1)));
  });

  it.each(["sha384", "sha512"] as const)("ima_hash=%s: its own bank over PCR 0–9", async (alg) => {
    const { tpm, expected } = await firmwareBootedTpm();
    const r = await imaBootAggregate(tpm, { imaHash: alg });
    expect(r.bank).toBe(alg);
    expect(r.aggregate.length).toBe(SIZE[alg]);
    expect(hex(r.aggregate)).toBe(hex(expectedAggregate(alg, expected[alg])));
  });

  it("a fresh SoftTpm (nothing measured) gives H(zeros) over 10 PCRs", async () => {
    const tpm = await Tpm.open(memory({ backend: new SoftTpm({ seed: "fresh" }) }));
    const r = await imaBootAggregate(tpm);
    expect(hex(r.aggregate)).toBe(hex(h("sha256", new Uint8Array(32 * 10))));
  });
});

describe("bank choice (the kernel's loop over allocated_banks)", () => {
  it.each<[string, Bank[], Bank | undefined, Bank | undefined]>([
    ["IMA's own hash wins", ["sha1", "sha256", "sha384"], "sha384", "sha384"],
    ["else SHA-256", ["sha1", "sha256", "sha384"], "sha512", "sha256"],
    ["SHA-256 listed before SHA-1", ["sha256", "sha1"], "sha384", "sha256"],
    ["SHA-256 listed after SHA-1", ["sha1", "sha256"], "sha384", "sha256"],
    ["else SHA-1", ["sha1", "sha384"], undefined, "sha1"],
    ["SHA-1 only", ["sha1"], "sha256", "sha1"],
    ["no suitable bank", ["sha384", "sha512"], undefined, undefined],
    ["no banks", [], "sha256", undefined],
  ])("%s", (_, banks, imaHash, want) => {
    expect(chooseImaBank(banks, imaHash)).toBe(want);
  });

  it("allocated banks: TPM_CAP_PCRS order, a bank with no PCR selected is left out", () => {
    expect(allocatedBanks([sel(TPM_ALG.SHA1, []), sel(TPM_ALG.SHA384), sel(TPM_ALG.SHA256)])).toEqual(["sha384", "sha256"]);
  });

  it("SHA-256 bank unallocated: SHA-1 bank, PCR 0–7 read one by one", async () => {
    const chip = stubChip([sel(TPM_ALG.SHA1), sel(TPM_ALG.SHA256, [])]);
    const r = await imaBootAggregate(chip);
    expect(r.bank).toBe("sha1");
    expect(chip.reads).toEqual(["sha1:0", "sha1:1", "sha1:2", "sha1:3", "sha1:4", "sha1:5", "sha1:6", "sha1:7"]);
    const pcrs = Array.from({ length: 8 }, (_, i) => new Uint8Array(20).fill(i + 1));
    expect(hex(r.aggregate)).toBe(hex(h("sha1", ...pcrs)));
  });

  it("only a SHA-384 bank and ima_hash=sha256: no suitable bank, zero aggregate of SHA-256 size, nothing read", async () => {
    const chip = stubChip([sel(TPM_ALG.SHA384)]);
    const r = await imaBootAggregate(chip);
    expect(r).toMatchObject({ bank: "sha256", pcrs: [], log: [IMA_NO_SUITABLE_BANK_LOG] });
    expect(hex(r.aggregate)).toBe("00".repeat(32));
    expect(chip.reads).toEqual([]);
  });

  it("a failed PCR read logs and hashes the previous PCR's value again (the kernel reuses its digest buffer)", async () => {
    const chip = stubChip([sel(TPM_ALG.SHA256)], { readFails: [0, 5] });
    const r = await imaBootAggregate(chip);
    expect(r.log).toEqual(["ima: Error Communicating to TPM chip", "ima: Error Communicating to TPM chip"]);
    const v = (i: number) => new Uint8Array(32).fill(i + 1);
    const parts = [new Uint8Array(32), v(1), v(2), v(3), v(4), v(4), v(6), v(7), v(8), v(9)];
    expect(hex(r.aggregate)).toBe(hex(h("sha256", ...parts)));
  });
});

describe("initIma (ima_init + ima_add_boot_aggregate)", () => {
  it("no chip: TPM-bypass, the log line, a zero aggregate of ima_hash's size, nothing extended", async () => {
    const r = await initIma({ chip: undefined });
    expect(r).toMatchObject({ bypass: true, bank: "sha256", log: [IMA_BYPASS_LOG], entryName: "boot_aggregate", extended: {} });
    expect(IMA_BYPASS_LOG).toBe("ima: No TPM chip found, activating TPM-bypass!");
    expect(hex(r.aggregate)).toBe("00".repeat(32));
    const r1 = await initIma({ chip: undefined, imaHash: "sha1" });
    expect(r1.aggregate).toEqual(new Uint8Array(20));
    expect(r1.bank).toBe("sha1");
  });

  it("a chip: the aggregate, and the ima-ng template digest of each bank extended into PCR 10", async () => {
    const { tpm, expected } = await firmwareBootedTpm();
    const r = await initIma({ chip: tpm });
    expect(r.bypass).toBe(false);
    expect(r.bank).toBe("sha256");
    const agg = expectedAggregate("sha256", expected.sha256);
    expect(hex(r.aggregate)).toBe(hex(agg));
    expect(r.log).toEqual([]);
    const pcr10 = await tpm.pcrRead({ sha1: [IMA_MEASURE_PCR], sha256: [IMA_MEASURE_PCR], sha384: [IMA_MEASURE_PCR], sha512: [IMA_MEASURE_PCR] });
    for (const b of BANKS) {
      const t = expectedTemplate(b, "sha256", agg, "boot_aggregate");
      expect(hex(r.extended[b]), b).toBe(hex(t));
      expect(hex(pcr10[b]?.[IMA_MEASURE_PCR]), b).toBe(hex(h(b, new Uint8Array(SIZE[b]), t)));
    }
    // PCR 10 gets the template digest, not the aggregate itself
    expect(hex(pcr10.sha256?.[IMA_MEASURE_PCR])).not.toBe(hex(h("sha256", new Uint8Array(32), agg)));
    // the firmware PCRs are untouched
    const p0 = await tpm.pcrRead({ sha256: [0] });
    expect(hex(p0.sha256?.[0])).toBe(hex(expected.sha256[0]));
  });

  it("entryName boot_aggregate_late changes n-ng and so PCR 10, not the aggregate", async () => {
    const a = await firmwareBootedTpm();
    const b = await firmwareBootedTpm();
    const early = await initIma({ chip: a.tpm });
    const late = await initIma({ chip: b.tpm, entryName: "boot_aggregate_late" });
    expect(late.entryName).toBe("boot_aggregate_late");
    expect(hex(late.aggregate)).toBe(hex(early.aggregate));
    expect(hex(late.extended.sha256)).toBe(hex(expectedTemplate("sha256", "sha256", late.aggregate, "boot_aggregate_late")));
    expect(hex(late.extended.sha256)).not.toBe(hex(early.extended.sha256));
  });

  it("ima_hash=sha1 on a chip: d-ng names sha1 and carries the 20-byte aggregate", async () => {
    const { tpm, expected } = await firmwareBootedTpm();
    const r = await initIma({ chip: tpm, imaHash: "sha1" });
    const agg = expectedAggregate("sha1", expected.sha1);
    expect(hex(r.aggregate)).toBe(hex(agg));
    expect(hex(r.extended.sha384)).toBe(hex(expectedTemplate("sha384", "sha1", agg, "boot_aggregate")));
  });

  it("no suitable bank: the entry still goes to PCR 10 with a zero aggregate", async () => {
    const chip = stubChip([sel(TPM_ALG.SHA384)]);
    const r = await initIma({ chip });
    expect(r.bypass).toBe(false);
    expect(r.log).toEqual([IMA_NO_SUITABLE_BANK_LOG]);
    expect(chip.extends).toHaveLength(1);
    const [pcr, digests] = chip.extends[0] as [number, Record<string, Uint8Array>];
    expect(pcr).toBe(10);
    expect(Object.keys(digests)).toEqual(["sha384"]);
    expect(hex(digests.sha384)).toBe(hex(expectedTemplate("sha384", "sha256", new Uint8Array(32), "boot_aggregate")));
  });

  it("a failed extend is logged and IMA carries on", async () => {
    const chip = stubChip([sel(TPM_ALG.SHA256)], { extendFails: true });
    const r = await initIma({ chip });
    expect(r.bypass).toBe(false);
    expect(r.log).toEqual(["ima: Error Communicating to TPM chip, result: -5"]);
  });

  it("an aborted signal rejects with the abort error instead of being logged", async () => {
    const { tpm } = await firmwareBootedTpm();
    const ac = new AbortController();
    ac.abort();
    await expect(initIma({ chip: tpm, signal: ac.signal })).rejects.toBeInstanceOf(TpmAbortError);
    await expect(imaBootAggregate(tpm, { signal: ac.signal })).rejects.toBeInstanceOf(TpmAbortError);
  });

  it("bad options are TpmArgumentErrors", async () => {
    await expect(initIma(undefined as never)).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(initIma({} as never)).rejects.toBeInstanceOf(TpmArgumentError);
    await expect(initIma({ chip: undefined, imaHash: "md5" as never })).rejects.toThrow('initIma: imaHash must be one of sha1, sha256, sha384, sha512, got "md5"');
    await expect(initIma({ chip: undefined, entryName: "other" as never })).rejects.toBeInstanceOf(TpmArgumentError);
    expect(() => chooseImaBank([], "sm3_256" as never)).toThrow(TpmArgumentError);
  });
});
