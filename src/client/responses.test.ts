/**
 * Issue 9, findings 6 and 7: every field of a response is checked against what was asked (a
 * TpmFormatError naming the field), and every Promise-returning method rejects with a typed
 * error rather than throwing.
 */
import { describe, expect, it } from "vitest";
import type { TpmBackend } from "../core/transport.js";
import { TpmArgumentError, TpmFormatError, TpmkitError } from "../errors/index.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { t2b, u16, u32 } from "../softtpm/test-helpers.js";
import { memory } from "../transports/memory/index.js";
import { buildCommand } from "../wire/command.js";
import { getCapabilityCmd } from "../wire/commands.js";
import { TPM_CAP, TPM_CC, TPM_PT, TPMA_NV } from "../wire/constants.js";
import { Tpm } from "./tpm.js";

const NV = 0x01000001;
const SHA256 = 0x000b;
const ccOf = (c: Uint8Array): number => ((c[6]! << 24) | (c[7]! << 16) | (c[8]! << 8) | c[9]!) >>> 0;

/** A success response (tag NO_SESSIONS) with `body` after the header. */
function ok(body: number[]): Uint8Array {
  return Uint8Array.from([...u16(0x8001), ...u32(10 + body.length), ...u32(0), ...body]);
}

type Fault = (command: Uint8Array, soft: SoftTpm) => Promise<Uint8Array | undefined> | Uint8Array | undefined;

/** A Tpm over a SoftTpm whose answers `fault` may replace. */
async function openTpm(fault?: Fault): Promise<Tpm> {
  const soft = new SoftTpm({ seed: "responses" });
  let armed = false;
  const backend: TpmBackend = {
    start: () => soft.start(),
    async execute(command, locality, signal) {
      const injected = armed ? await fault?.(command, soft) : undefined;
      return injected ?? soft.execute(command, locality, signal);
    },
  };
  const tpm = await Tpm.open(memory({ backend }));
  armed = true;
  return tpm;
}

async function formatError(p: Promise<unknown>): Promise<TpmFormatError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(TpmFormatError);
  return e as TpmFormatError;
}

/** A PCR_Read response: sha256 bank selecting `pcrs`, then `digests`. */
function pcrReadResponse(pcrs: number[], digests: Uint8Array[], hash = SHA256): Uint8Array {
  const mask = pcrs.reduce((m, p) => m | (1 << p), 0);
  return ok([...u32(7), ...u32(1), ...u16(hash), 3, mask & 0xff, (mask >>> 8) & 0xff, (mask >>> 16) & 0xff, ...u32(digests.length), ...digests.flatMap((d) => t2b(d))]);
}

describe("Tpm: response fields are checked against what was asked (issue 9, finding 7)", () => {
  it("pcrRead refuses a sha256 digest of 64 bytes, naming pcrValues", async () => {
    const tpm = await openTpm((c) => (ccOf(c) === TPM_CC.PCR_Read ? pcrReadResponse([0], [new Uint8Array(64)]) : undefined));
    const e = await formatError(tpm.pcrRead({ sha256: [0, 1] }));
    expect(e.message).toMatch(/pcrValues digest for PCR 0 .* 64 bytes, not 32/);
  });

  it("pcrRead refuses an answer for a PCR that was not asked (which dropped the asked one), naming pcrSelectionOut", async () => {
    const tpm = await openTpm((c) => (ccOf(c) === TPM_CC.PCR_Read ? pcrReadResponse([5], [new Uint8Array(32)]) : undefined));
    const e = await formatError(tpm.pcrRead({ sha256: [0] }));
    expect(e.message).toMatch(/pcrSelectionOut selects PCR 5/);
  });

  it("pcrRead refuses an answer for a bank that was not asked, naming pcrSelectionOut", async () => {
    const tpm = await openTpm((c) => (ccOf(c) === TPM_CC.PCR_Read ? pcrReadResponse([0], [new Uint8Array(20)], 0x0004) : undefined));
    const e = await formatError(tpm.pcrRead({ sha256: [0] }));
    expect(e.message).toMatch(/pcrSelectionOut names bank 0x4/);
  });

  it("pcrRead still reads every asked PCR from a well-behaved TPM", async () => {
    const tpm = await openTpm();
    const r = await tpm.pcrRead({ sha256: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], sha1: [0] });
    expect(Object.keys(r.sha256!)).toHaveLength(11);
    for (const d of Object.values(r.sha256!)) expect(d.length).toBe(32);
    expect(r.sha1?.[0]?.length).toBe(20);
  });

  it("nvReadPublic refuses the public area of another index, naming nvPublic.nvIndex", async () => {
    const tpm = await openTpm((c, soft) => {
      if (ccOf(c) !== TPM_CC.NV_ReadPublic) return undefined;
      const r = soft.executeSync(c, 0).slice();
      r.set(u32(0x01000002), 12); // after the header and TPM2B_NV_PUBLIC's size
      return r;
    });
    await tpm.nvDefineSpace({ index: NV, size: 8, attributes: TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE });
    const e = await formatError(tpm.nvReadPublic(NV));
    expect(e.message).toMatch(/nvPublic\.nvIndex is 0x1000002, asked 0x1000001/);
    // nvRead (which sizes itself from NV_ReadPublic) is refused the same way
    await formatError(tpm.nvRead(NV));
  });

  it("getCapability refuses another capability than asked, naming capabilityData.capability", async () => {
    const tpm = await openTpm((c, soft) => (ccOf(c) === TPM_CC.GetCapability ? soft.executeSync(buildCommand(getCapabilityCmd(TPM_CAP.ALGS, 0, 8)), 0) : undefined));
    const e = await formatError(tpm.getCapability(TPM_CAP.TPM_PROPERTIES, TPM_PT.FIXED, 8));
    expect(e.message).toMatch(/capabilityData\.capability is 0x0, asked 0x6/);
    await formatError(tpm.getProperty(TPM_PT.MANUFACTURER)); // no longer "undefined" for a lying TPM
  });

  it("getCapability refuses more entries than asked, or entries below the asked property", async () => {
    const props = (list: [number, number][]) => ok([0, ...u32(TPM_CAP.TPM_PROPERTIES), ...u32(list.length), ...list.flatMap(([p, v]) => [...u32(p), ...u32(v)])]);
    let answer = props([]);
    const tpm = await openTpm((c) => (ccOf(c) === TPM_CC.GetCapability ? answer : undefined));
    answer = props([
      [TPM_PT.FIXED, 1],
      [TPM_PT.FIXED + 1, 2],
    ]);
    expect((await formatError(tpm.getCapability(TPM_CAP.TPM_PROPERTIES, TPM_PT.FIXED, 1))).message).toMatch(/tpmProperties has 2 entries, asked at most 1/);
    answer = props([[TPM_PT.FIXED, 1]]);
    expect((await formatError(tpm.getCapability(TPM_CAP.TPM_PROPERTIES, TPM_PT.FIXED + 5, 1))).message).toMatch(/tpmProperties entry 0x100 is below the asked property 0x105/);
    answer = props([
      [TPM_PT.FIXED + 2, 1],
      [TPM_PT.FIXED + 1, 2],
    ]);
    expect((await formatError(tpm.getCapability(TPM_CAP.TPM_PROPERTIES, TPM_PT.FIXED, 8))).message).toMatch(/tpmProperties is not in ascending order/);
  });

  it("hashSequenceStart refuses a sequence handle that is not transient, naming sequenceHandle", async () => {
    const tpm = await openTpm((c) => (ccOf(c) === TPM_CC.HashSequenceStart ? ok([...u32(0x81000001)]) : undefined));
    const e = await formatError(tpm.hashSequenceStart("sha256"));
    expect(e.message).toMatch(/sequenceHandle 0x81000001 is not a transient handle/);
  });

  it("a well-behaved TPM still answers getCapability, getProperties, getHandles and hash sequences", async () => {
    const tpm = await openTpm();
    expect((await tpm.getCapability(TPM_CAP.ALGS, 0, 4)).data.capability).toBe(TPM_CAP.ALGS);
    expect((await tpm.getProperties("fixed")).size).toBeGreaterThan(5);
    expect(await tpm.getProperty(TPM_PT.MANUFACTURER)).toBeTypeOf("number");
    expect(await tpm.getHandles()).toEqual([]);
    const h = await tpm.hashSequenceStart("sha256");
    expect(h >>> 24).toBe(0x80);
    expect((await tpm.sequenceComplete(h, new Uint8Array([1]))).digest.length).toBe(32);
  });
});

describe("Tpm: every Promise-returning method rejects, with a TpmkitError (issue 9, finding 6)", () => {
  it("nvRead with an offset past the index, or a size of -1, rejects with TpmArgumentError", async () => {
    const tpm = await openTpm();
    await tpm.nvDefineSpace({ index: NV, size: 8, attributes: TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE });
    await tpm.nvWrite(NV, new Uint8Array(8).fill(7));
    for (const call of [() => tpm.nvRead(NV, { offset: 9 }), () => tpm.nvRead(NV, { offset: 100 }), () => tpm.nvRead(NV, { size: -1 }), () => tpm.nvRead(NV, { offset: 2, size: -1 })]) {
      let p: Promise<unknown> | undefined;
      expect(() => (p = call())).not.toThrow();
      await expect(p!).rejects.toBeInstanceOf(TpmArgumentError);
    }
    expect(await tpm.nvRead(NV, { offset: 8 })).toEqual(new Uint8Array(0));
    expect(await tpm.nvRead(NV, { offset: 6 })).toEqual(new Uint8Array([7, 7]));
  });

  it("pcrExtend, pcrReset, hash, nvDefineSpace, hierarchyChangeAuth, hashSequenceStart and sequenceComplete reject rather than throw", async () => {
    const tpm = await openTpm();
    const calls: Array<() => Promise<unknown>> = [
      () => tpm.pcrExtend(null as never, null as never),
      () => tpm.pcrReset(undefined as never),
      () => tpm.hash(undefined as never, undefined as never, 5 as never),
      () => tpm.nvDefineSpace(undefined as never),
      () => tpm.hierarchyChangeAuth(undefined as never, undefined as never),
      () => tpm.hashSequenceStart(7 as never, 7 as never),
      () => tpm.sequenceComplete(undefined as never, 5 as never),
    ];
    for (const call of calls) {
      let p: Promise<unknown> | undefined;
      expect(() => (p = call())).not.toThrow();
      const e = await p!.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(TpmkitError);
    }
  });
});
