/**
 * The typed client's boundary (GitHub issue 8, point 5): every public method of {@link Tpm}
 * refuses a wrong argument with a titled TpmArgumentError that says what was wrong with the value
 * and its type, before any command reaches the TPM; `getHandles` for every handle type; `digest`
 * flushes its hash sequence on every failure path.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Chip } from "../core/chip.js";
import type { TpmBackend } from "../core/transport.js";
import { TpmAbortError, TpmArgumentError } from "../errors/index.js";
import { SoftTpm } from "../softtpm/softtpm.js";
import { cmd, t2b, u16, u32 } from "../softtpm/test-helpers.js";
import { memory } from "../transports/memory/index.js";
import { TPM_CC, TPM_HT, TPM_RC, TPM_RH, TPM_RS, TPMA_NV } from "../wire/constants.js";
import { TpmResponseError } from "../wire/rc.js";
import { Tpm } from "./tpm.js";

const NV = 0x01000001;
const ccOf = (c: Uint8Array): number => ((c[6]! << 24) | (c[7]! << 16) | (c[8]! << 8) | c[9]!) >>> 0;

/** A SoftTpm behind a memory transport that counts the commands it runs and can inject faults. */
function counted(fault?: (command: Uint8Array) => Uint8Array | undefined): { backend: TpmBackend; commands: number[] } {
  const soft = new SoftTpm({ seed: "client" });
  const commands: number[] = [];
  const backend: TpmBackend = {
    start: () => soft.start(),
    execute(command, locality, signal) {
      commands.push(ccOf(command));
      const injected = fault?.(command);
      return injected ? Promise.resolve(injected) : soft.execute(command, locality, signal);
    },
  };
  return { backend, commands };
}

async function openTpm(fault?: (command: Uint8Array) => Uint8Array | undefined): Promise<{ tpm: Tpm; commands: number[] }> {
  const { backend, commands } = counted(fault);
  const tpm = await Tpm.open(memory({ backend }));
  commands.length = 0;
  return { tpm, commands };
}

/** Calls with plain-JS mistakes: [what, call, the exact message]. */
const BAD: [string, (tpm: Tpm) => Promise<unknown>, string][] = [
  ["getRandom with a string count", (t) => t.getRandom("8" as never), 'tpm.getRandom: count must be an integer in 0–65535, got string "8"'],
  ["getRandom with a negative count", (t) => t.getRandom(-1), "tpm.getRandom: count must be an integer in 0–65535, got -1"],
  ["getRandom with a fraction", (t) => t.getRandom(1.5), "tpm.getRandom: count must be an integer in 0–65535, got 1.5"],
  ["getRandom with options that are not an object", (t) => t.getRandom(8, "fast" as never), 'tpm.getRandom: options must be an object, got string "fast"'],
  ["a negative timeoutMs", (t) => t.getRandom(8, { timeoutMs: -1 }), "tpm.getRandom: options.timeoutMs must be a finite number ≥ 0 (ms), got -1"],
  ["an infinite timeoutMs", (t) => t.getRandom(8, { timeoutMs: Infinity }), "tpm.getRandom: options.timeoutMs must be a finite number ≥ 0 (ms), got Infinity"],
  ["a NaN timeoutMs", (t) => t.readClock({ timeoutMs: NaN }), "tpm.readClock: options.timeoutMs must be a finite number ≥ 0 (ms), got NaN"],
  ["a string timeoutMs", (t) => t.readClock({ timeoutMs: "10" as never }), 'tpm.readClock: options.timeoutMs must be a finite number ≥ 0 (ms), got string "10"'],
  ["a locality of 5", (t) => t.getRandom(8, { locality: 5 }), "tpm.getRandom: options.locality must be an integer in 0–4, got 5"],
  ["a signal that is not an AbortSignal", (t) => t.getRandom(8, { signal: "stop" as never }), 'tpm.getRandom: options.signal must be an AbortSignal, got string "stop"'],
  ["retry that is not a boolean", (t) => t.getRandom(8, { retry: "no" as never }), 'tpm.getRandom: options.retry must be a boolean, got string "no"'],
  ["hash of a string", (t) => t.hash("hello" as never), 'tpm.hash: data must be a Uint8Array, got string "hello"'],
  ["hash with an unknown algorithm", (t) => t.hash(new Uint8Array(1), "md5" as never), 'tpm.hash: alg must be one of sha1, sha256, sha384, sha512, sm3_256, sha3_256, sha3_384, sha3_512, got string "md5"'],
  ["hash with a prototype key as algorithm", (t) => t.hash(new Uint8Array(1), "constructor" as never), 'tpm.hash: alg must be one of sha1, sha256, sha384, sha512, sm3_256, sha3_256, sha3_384, sha3_512, got string "constructor"'],
  ["hash with an unknown hierarchy", (t) => t.hash(new Uint8Array(1), "sha256", "toString" as never), 'tpm.hash: hierarchy must be one of owner, platform, endorsement, lockout, null or a handle, got string "toString"'],
  ["digest of a string", (t) => t.digest("x".repeat(2000) as never), `tpm.digest: data must be a Uint8Array, got string "${"x".repeat(40)}…"`],
  ["pcrEvent of a string", (t) => t.pcrEvent(16, "hello" as never), 'tpm.pcrEvent: data must be a Uint8Array, got string "hello"'],
  ["pcrEvent with a string PCR", (t) => t.pcrEvent("16" as never, new Uint8Array(1)), 'tpm.pcrEvent: pcr must be an integer in 0–31 or TPM_RH_NULL (0x40000007), got string "16"'],
  ["pcrExtend with an empty digest map", (t) => t.pcrExtend(16, {}), "tpm.pcrExtend: digests must give at least one bank ({ sha256: Uint8Array(32) }), got an empty object"],
  ["pcrExtend with only undefined banks", (t) => t.pcrExtend(16, { sha256: undefined }), "tpm.pcrExtend: digests must give at least one bank ({ sha256: Uint8Array(32) }), got an empty object"],
  ["pcrExtend with an array", (t) => t.pcrExtend(16, [new Uint8Array(32)] as never), "tpm.pcrExtend: digests must be an object of digests per bank ({ sha256: Uint8Array(32) }), got array(1)"],
  ["pcrExtend with a hex string digest", (t) => t.pcrExtend(16, { sha256: "00" as never }), 'tpm.pcrExtend: digests.sha256 must be a Uint8Array, got string "00"'],
  ["pcrExtend with a short digest", (t) => t.pcrExtend(16, { sha256: new Uint8Array(20) }), "tpm.pcrExtend: digests.sha256 must be 32 bytes, got 20"],
  ["pcrExtend with an unknown bank", (t) => t.pcrExtend(16, { md5: new Uint8Array(16) } as never), 'tpm.pcrExtend: digests has an unknown bank, expected one of sha1, sha256, sha384, sha512, sm3_256, sha3_256, sha3_384, sha3_512, got string "md5"'],
  ["pcrExtend of PCR 99", (t) => t.pcrExtend(99, { sha256: new Uint8Array(32) }), "tpm.pcrExtend: pcr must be an integer in 0–31 or TPM_RH_NULL (0x40000007), got 99"],
  ["pcrExtend with a numeric auth", (t) => t.pcrExtend(16, { sha256: new Uint8Array(32) }, { auth: 5 as never }), "tpm.pcrExtend: options.auth must be a Uint8Array or a string (UTF-8), got 5"],
  ["pcrRead with a number for a bank", (t) => t.pcrRead({ sha256: 0 } as never), "tpm.pcrRead: selection.sha256 must be an array of PCR indices, got 0"],
  ["pcrRead with an array", (t) => t.pcrRead([0] as never), "tpm.pcrRead: selection must be an object of PCR lists per bank ({ sha256: [0, 1] }), got array(1)"],
  ["pcrRead with an empty selection", (t) => t.pcrRead({}), "tpm.pcrRead: selection must select at least one PCR ({ sha256: [0, 1] }), got an empty object"],
  ["pcrRead with an empty bank", (t) => t.pcrRead({ sha256: [] }), "tpm.pcrRead: selection must select at least one PCR ({ sha256: [0, 1] }), got an empty object"],
  ["pcrRead with null", (t) => t.pcrRead(null as never), "tpm.pcrRead: selection must be an object of PCR lists per bank ({ sha256: [0, 1] }), got null"],
  ["pcrRead of PCR 32", (t) => t.pcrRead({ sha256: [0, 32] }), "tpm.pcrRead: selection.sha256[1] must be an integer in 0–31, got 32"],
  ["pcrRead of an unknown bank", (t) => t.pcrRead({ sha999: [0] } as never), 'tpm.pcrRead: selection has an unknown bank, expected one of sha1, sha256, sha384, sha512, sm3_256, sha3_256, sha3_384, sha3_512, got string "sha999"'],
  ["pcrReset of a negative PCR", (t) => t.pcrReset(-1), "tpm.pcrReset: pcr must be an integer in 0–31, got -1"],
  ["nvWrite of a string", (t) => t.nvWrite(NV, "abc" as never), 'tpm.nvWrite: data must be a Uint8Array, got string "abc"'],
  ["nvWrite with a bad offset", (t) => t.nvWrite(NV, new Uint8Array(1), { offset: -1 }), "tpm.nvWrite: options.offset must be an integer in 0–65535, got -1"],
  ["nvWrite to a persistent handle", (t) => t.nvWrite(0x81000000, new Uint8Array(1)), "tpm.nvWrite: index must be an NV index handle (0x01000000–0x01ffffff), got 2164260864 (0x81000000)"],
  ["nvRead of a string index", (t) => t.nvRead("0x01000001" as never), 'tpm.nvRead: index must be an NV index handle (0x01000000–0x01ffffff), got string "0x01000001"'],
  ["nvRead with a bad authHandle", (t) => t.nvRead(NV, { authHandle: "me" as never }), 'tpm.nvRead: options.authHandle must be "index" or one of owner, platform, endorsement, lockout, null or a handle, got string "me"'],
  ["nvRead with a bad size", (t) => t.nvRead(NV, { size: 1e6 }), "tpm.nvRead: options.size must be an integer in 0–65535, got 1000000"],
  ["nvDefineSpace without options", (t) => t.nvDefineSpace(null as never), "tpm.nvDefineSpace: options must be an object, got null"],
  ["nvDefineSpace with a string size", (t) => t.nvDefineSpace({ index: NV, size: "8" as never }), 'tpm.nvDefineSpace: size must be an integer in 0–65535, got string "8"'],
  ["nvDefineSpace with a bad name algorithm", (t) => t.nvDefineSpace({ index: NV, size: 8, nameAlg: "sha" as never }), 'tpm.nvDefineSpace: nameAlg must be one of sha1, sha256, sha384, sha512, sm3_256, sha3_256, sha3_384, sha3_512, got string "sha"'],
  ["nvDefineSpace with a string policy", (t) => t.nvDefineSpace({ index: NV, size: 8, authPolicy: "p" as never }), 'tpm.nvDefineSpace: authPolicy must be a Uint8Array, got string "p"'],
  ["nvDefineSpace with negative attributes", (t) => t.nvDefineSpace({ index: NV, size: 8, attributes: -1 }), "tpm.nvDefineSpace: attributes must be an integer in 0–4294967295, got -1"],
  ["nvSetBits with a number", (t) => t.nvSetBits(NV, 5 as never), "tpm.nvSetBits: bits must be a bigint in 0–2^64−1, got 5"],
  ["nvExtend of a string", (t) => t.nvExtend(NV, "abc" as never), 'tpm.nvExtend: data must be a Uint8Array, got string "abc"'],
  ["nvUndefineSpace from a bad hierarchy", (t) => t.nvUndefineSpace(NV, { hierarchy: "admin" as never }), 'tpm.nvUndefineSpace: options.hierarchy must be one of owner, platform, endorsement, lockout, null or a handle, got string "admin"'],
  ["getHandles with a string type", (t) => t.getHandles("persistent" as never), 'tpm.getHandles: type must be an integer in 0–255, got string "persistent"'],
  ["getHandles with a whole handle", (t) => t.getHandles(0x81000000), "tpm.getHandles: type must be an integer in 0–255, got 2164260864"],
  ["getCapability with a negative property", (t) => t.getCapability(1, -1, 1), "tpm.getCapability: property must be an integer in 0–4294967295, got -1"],
  ["getProperties of another group", (t) => t.getProperties("all" as never), 'tpm.getProperties: group must be one of "fixed", "variable", got string "all"'],
  ["startup of another type", (t) => t.startup("warm" as never), 'tpm.startup: type must be one of "clear", "state", got string "warm"'],
  ["selfTest with a string", (t) => t.selfTest("yes" as never), 'tpm.selfTest: full must be a boolean, got string "yes"'],
  ["incrementalSelfTest with a string", (t) => t.incrementalSelfTest("sha256" as never), 'tpm.incrementalSelfTest: algs must be an array, got string "sha256"'],
  ["incrementalSelfTest with a bad id", (t) => t.incrementalSelfTest([0x10000]), "tpm.incrementalSelfTest: algs[0] must be an integer in 0–65535, got 65536"],
  ["stirRandom of a string", (t) => t.stirRandom("seed" as never), 'tpm.stirRandom: data must be a Uint8Array, got string "seed"'],
  ["sequenceUpdate of a non-transient handle", (t) => t.sequenceUpdate(NV, new Uint8Array(1)), "tpm.sequenceUpdate: handle must be a transient handle (0x80000000–0x80ffffff), got 16777217 (0x01000001)"],
  ["hashSequenceStart with an unknown algorithm", (t) => t.hashSequenceStart("sha2" as never), 'tpm.hashSequenceStart: alg must be "null" or one of sha1, sha256, sha384, sha512, sm3_256, sha3_256, sha3_384, sha3_512, got string "sha2"'],
  ["eventSequenceComplete of a string", (t) => t.eventSequenceComplete(16, 0x80000000, "x" as never), 'tpm.eventSequenceComplete: data must be a Uint8Array, got string "x"'],
  ["clear from the owner hierarchy", (t) => t.clear({ hierarchy: "owner" as never }), 'tpm.clear: options.hierarchy must be one of lockout, platform, got string "owner"'],
  ["clearControl with a string", (t) => t.clearControl("true" as never), 'tpm.clearControl: disable must be a boolean, got string "true"'],
  ["hierarchyChangeAuth with a number", (t) => t.hierarchyChangeAuth("owner", 1234 as never), "tpm.hierarchyChangeAuth: newAuth must be a Uint8Array or a string (UTF-8), got 1234"],
  ["transmit of a string", (t) => t.transmit("80010000000c" as never), 'tpm.transmit: command must be a Uint8Array, got string "80010000000c"'],
  ["run of something that is not a command", (t) => t.run(null as never), "tpm.run: spec must be a CommandSpec ({ cc, response }), got null"],
];

describe("Tpm: arguments are checked at the boundary", () => {
  it.each(BAD)("%s is a titled TpmArgumentError, and nothing reaches the TPM", async (_what, call, message) => {
    const { tpm, commands } = await openTpm();
    let p: Promise<unknown> | undefined;
    expect(() => (p = call(tpm))).not.toThrow(); // a rejection, never a synchronous throw
    const err = await p!.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TpmArgumentError);
    expect((err as Error).message).toBe(message);
    expect(commands).toEqual([]);
    await tpm.close();
  });

  it("Tpm.open(null) and other non-transports are TpmArgumentErrors", async () => {
    await expect(Tpm.open(null as never)).rejects.toThrow(new TpmArgumentError("Tpm.open: transport must be a Transport (with send()) or a Chip, got null"));
    await expect(Tpm.open("swtpm:port=2321" as never)).rejects.toThrow(new TpmArgumentError('Tpm.open: transport must be a Transport (with send()) or a Chip, got string "swtpm:port=2321"'));
    await expect(Tpm.open({ kind: "x" } as never)).rejects.toBeInstanceOf(TpmArgumentError);
  });

  it("Tpm.open refuses bad options before it probes", async () => {
    const { backend, commands } = counted();
    await expect(Tpm.open(memory({ backend }), { startup: "warm" as never })).rejects.toThrow(new TpmArgumentError('Tpm.open: options.startup must be true, false, "clear" or "state", got string "warm"'));
    await expect(Tpm.open(memory({ backend }), { signal: {} as never })).rejects.toThrow(new TpmArgumentError("Tpm.open: options.signal must be an AbortSignal, got object"));
    await expect(Tpm.open(memory({ backend }), 3 as never)).rejects.toThrow(new TpmArgumentError("Tpm.open: options must be an object, got 3"));
    expect(commands).toEqual([]);
  });

  it("Chip.transmit refuses a negative or non-finite timeoutMs (raw callers too)", async () => {
    const { tpm, commands } = await openTpm();
    const getRandom8 = Uint8Array.from(cmd(0x8001, TPM_CC.GetRandom, u16(8)));
    await expect(tpm.chip.transmit(getRandom8, { timeoutMs: -1 })).rejects.toThrow(new TpmArgumentError("chip: timeoutMs must be a finite number ≥ 0 (ms), got -1"));
    await expect(tpm.chip.transmit(getRandom8, { timeoutMs: NaN })).rejects.toBeInstanceOf(TpmArgumentError);
    expect(commands).toEqual([]);
    expect((await tpm.transmit(getRandom8, { timeoutMs: 1000 })).length).toBe(20);
    await tpm.close();
  });

  it("good arguments still work: bytes, PCRs, NV", async () => {
    const { tpm } = await openTpm();
    const data = new TextEncoder().encode("hello");
    expect(Buffer.from((await tpm.hash(data)).digest).toString("hex")).toBe(createHash("sha256").update("hello").digest("hex"));
    const ev = await tpm.pcrEvent(16, data);
    expect(Buffer.from(ev.sha256!).toString("hex")).toBe(createHash("sha256").update("hello").digest("hex"));
    const read = await tpm.pcrRead({ sha256: [16, 16, 0] });
    expect(Object.keys(read.sha256!)).toEqual(["0", "16"]);
    await tpm.nvDefineSpace({ index: NV, size: 4, attributes: TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD });
    await tpm.nvWrite(NV, Uint8Array.of(1, 2, 3, 4));
    expect([...(await tpm.nvRead(NV))]).toEqual([1, 2, 3, 4]);
    await tpm.close();
  });
});

describe("Tpm.getHandles: every handle type (TPM_CAP_HANDLES, Part 2 §7.2 TPM_HT)", () => {
  /** StartAuthSession (Part 3 §11.1): an unbound, unsalted HMAC session with SHA-256. */
  const startHmacSession = Uint8Array.from(
    cmd(0x8001, TPM_CC.StartAuthSession, [...u32(TPM_RH.NULL), ...u32(TPM_RH.NULL), ...t2b(new Uint8Array(16)), ...t2b([]), 0x00, ...u16(0x0010), ...u16(0x000b)]),
  );

  async function populated(): Promise<{ tpm: Tpm; sequence: number; session: number }> {
    const { tpm } = await openTpm();
    await tpm.nvDefineSpace({ index: NV, size: 8 });
    const sequence = await tpm.hashSequenceStart("sha256");
    const rsp = await tpm.transmit(startHmacSession);
    expect(ccOf(rsp)).toBe(0); // the response code, read where ccOf reads
    const session = ((rsp[10]! << 24) | (rsp[11]! << 16) | (rsp[12]! << 8) | rsp[13]!) >>> 0;
    return { tpm, sequence, session };
  }

  const PERMANENT = [TPM_RH.OWNER, TPM_RS.PW, TPM_RH.LOCKOUT, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM, TPM_RH.PLATFORM_NV, TPM_RH.NULL].sort((a, b) => a - b);
  const expected: Record<keyof typeof TPM_HT, (s: { sequence: number; session: number }) => number[]> = {
    PCR: () => Array.from({ length: 24 }, (_, i) => i),
    NV_INDEX: () => [NV],
    HMAC_SESSION: (s) => [s.session],
    LOADED_SESSION: (s) => [s.session],
    POLICY_SESSION: () => [],
    SAVED_SESSION: () => [],
    PERMANENT: () => PERMANENT,
    TRANSIENT: (s) => [s.sequence],
    PERSISTENT: () => [],
  };

  it.each(Object.keys(expected) as (keyof typeof TPM_HT)[])("lists TPM_HT_%s", async (name) => {
    const { tpm, sequence, session } = await populated();
    expect(sequence >>> 24).toBe(TPM_HT.TRANSIENT);
    expect(session >>> 24).toBe(TPM_HT.HMAC_SESSION);
    expect(await tpm.getHandles(TPM_HT[name])).toEqual(expected[name]({ sequence, session }));
    await tpm.close();
  });

  it("an unsupported handle type is the TPM's TPM_RC_HANDLE, as swtpm answers it", async () => {
    const { tpm } = await openTpm();
    const err = await tpm.getHandles(0x90).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmResponseError);
    expect((err as TpmResponseError).base).toBe(TPM_RC.HANDLE);
    await tpm.close();
  });
});

describe("Tpm.digest flushes its hash sequence on every failure path", () => {
  const data = Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff);
  const sha256 = createHash("sha256").update(data).digest("hex");
  const errorResponse = (rc: number) => Uint8Array.from([0x80, 0x01, ...u32(10), ...u32(rc)]);

  it("a TPM error in SequenceUpdate, five times over, then a digest that succeeds", async () => {
    let failing = true;
    const { tpm, commands } = await openTpm((c) => (failing && ccOf(c) === TPM_CC.SequenceUpdate ? errorResponse(TPM_RC.FAILURE) : undefined));
    for (let i = 0; i < 5; i++) {
      const err = await tpm.digest(data).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmResponseError);
      expect((err as TpmResponseError).base).toBe(TPM_RC.FAILURE);
    }
    expect(commands.filter((c) => c === TPM_CC.FlushContext)).toHaveLength(5);
    expect(await tpm.getHandles(TPM_HT.TRANSIENT)).toEqual([]);
    failing = false;
    expect(Buffer.from(await tpm.digest(data)).toString("hex")).toBe(sha256);
    await tpm.close();
  });

  it("a TPM error in SequenceComplete, then a digest that succeeds", async () => {
    let failing = true;
    const { tpm } = await openTpm((c) => (failing && ccOf(c) === TPM_CC.SequenceComplete ? errorResponse(TPM_RC.FAILURE) : undefined));
    for (let i = 0; i < 4; i++) await expect(tpm.digest(data)).rejects.toBeInstanceOf(TpmResponseError);
    expect(await tpm.getHandles(TPM_HT.TRANSIENT)).toEqual([]);
    failing = false;
    expect(Buffer.from(await tpm.digest(data)).toString("hex")).toBe(sha256);
    await tpm.close();
  });

  it("a signal aborted mid-sequence, four times over, then a digest that succeeds", async () => {
    let ac = new AbortController();
    let abortOnUpdate = true;
    const { tpm } = await openTpm((c) => {
      if (abortOnUpdate && ccOf(c) === TPM_CC.SequenceUpdate) ac.abort();
      return undefined;
    });
    for (let i = 0; i < 4; i++) {
      ac = new AbortController();
      await expect(tpm.digest(data, "sha256", { signal: ac.signal })).rejects.toBeInstanceOf(TpmAbortError);
    }
    expect(await tpm.getHandles(TPM_HT.TRANSIENT)).toEqual([]);
    abortOnUpdate = false;
    expect(Buffer.from(await tpm.digest(data)).toString("hex")).toBe(sha256);
    await tpm.close();
  });

  it("an already-aborted signal starts no sequence", async () => {
    const { tpm, commands } = await openTpm();
    const ac = new AbortController();
    ac.abort();
    await expect(tpm.digest(data, "sha256", { signal: ac.signal })).rejects.toBeInstanceOf(TpmAbortError);
    expect(commands).toEqual([]);
    await tpm.close();
  });
});

describe("Tpm.flushContext", () => {
  it("flushes a hash sequence (TPM2_FlushContext, Part 3 §28.4)", async () => {
    const { tpm } = await openTpm();
    const h = await tpm.hashSequenceStart("sha256");
    expect(await tpm.getHandles(TPM_HT.TRANSIENT)).toEqual([h]);
    await tpm.flushContext(h);
    expect(await tpm.getHandles(TPM_HT.TRANSIENT)).toEqual([]);
    await expect(tpm.flushContext("h" as never)).rejects.toThrow(new TpmArgumentError('tpm.flushContext: handle must be an integer in 0–4294967295, got string "h"'));
    await tpm.close();
  });

  it("a Chip passed to Tpm.open is used as it is", async () => {
    const { backend } = counted();
    const chip = new Chip(memory({ backend }));
    const tpm = await Tpm.open(chip);
    expect(tpm.chip).toBe(chip);
    expect((await tpm.getRandom(4)).length).toBe(4);
    await tpm.close();
  });
});

describe("SoftTpm answers TPM_CAP_HANDLES and TPM_CAP_PCR_PROPERTIES as swtpm 0.7.1 does", () => {
  // Responses of a fresh `swtpm socket --tpm2 --flags not-need-init,startup-clear` (swtpm 0.7.1,
  // libtpms 0.9) to TPM2_GetCapability(capability, property, count), captured from the real
  // swtpm; test/integration/differential.test.ts compares the two live.
  const pcrs = Array.from({ length: 24 }, (_, i) => i.toString(16).padStart(8, "0")).join("");
  const CAPTURED: [cap: number, property: number, count: number, response: string][] = [
    [1, 0x00000000, 256, `8001 00000073 00000000 00 00000001 00000018 ${pcrs}`],
    [1, 0x00000005, 2, "8001 0000001b 00000000 01 00000001 00000002 00000005 00000006"],
    [1, 0x01000000, 256, "8001 00000013 00000000 00 00000001 00000000"],
    [1, 0x02000000, 256, "8001 00000013 00000000 00 00000001 00000000"],
    [1, 0x03000000, 256, "8001 00000013 00000000 00 00000001 00000000"],
    [1, 0x40000000, 256, "8001 0000002f 00000000 00 00000001 00000007 40000001 40000007 40000009 4000000a 4000000b 4000000c 4000000d"],
    [1, 0x40000009, 256, "8001 00000027 00000000 00 00000001 00000005 40000009 4000000a 4000000b 4000000c 4000000d"],
    [1, 0x80000000, 256, "8001 00000013 00000000 00 00000001 00000000"],
    [1, 0x81000000, 256, "8001 00000013 00000000 00 00000001 00000000"],
    [1, 0x90000000, 256, "8001 0000000a 000002cb"],
    [1, 0x04000000, 256, "8001 0000000a 000002cb"],
    [1, 0xff000000, 256, "8001 0000000a 000002cb"],
    [7, 0x00000014, 256, "8001 0000001b 00000000 00 00000007 00000001 00000014 03 000070"],
    [7, 0x00000000, 2, "8001 00000023 00000000 01 00000007 00000002 00000000 03 ffff00 00000001 03 ffff81"],
    [7, 0x00000100, 256, "8001 00000013 00000000 00 00000007 00000000"],
  ];
  it.each(CAPTURED)("GetCapability(%i, %i, %i)", async (cap, property, count, response) => {
    const { tpm } = await openTpm();
    const rsp = await tpm.transmit(Uint8Array.from(cmd(0x8001, TPM_CC.GetCapability, [...u32(cap), ...u32(property), ...u32(count)])));
    expect(Buffer.from(rsp).toString("hex")).toBe(response.replace(/\s+/g, ""));
    await tpm.close();
  });
});

describe("new Tpm", () => {
  it("refuses what is not a Chip", () => {
    expect(() => new Tpm(memory({ backend: new SoftTpm() }) as never)).toThrow(new TpmArgumentError("new Tpm: chip must be a Chip (use Tpm.open for a transport), got object"));
    expect(() => new Tpm(undefined as never)).toThrow(TpmArgumentError);
  });
});
