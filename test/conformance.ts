/**
 * The shared conformance suite (after go-tpm's RunTest): one function that runs the same checks
 * against any transport. Every transport folder calls it with a factory for a fresh stack.
 */
import { describe, expect, it } from "vitest";
import { Tpm } from "../src/client/tpm.js";
import type { Transport } from "../src/core/transport.js";
import { TpmArgumentError, TpmStateError } from "../src/errors/index.js";
import { TPM_CAP, TPM_CC, TPM_RC } from "../src/wire/constants.js";
import { TpmResponseError } from "../src/wire/rc.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** A fresh transport per test, plus whatever must be torn down after it. */
export interface ConformanceTarget {
  transport: Transport;
  cleanup?: () => Promise<void> | void;
}

/** Options for a conformance run. */
export interface ConformanceOptions {
  /** Whether the transport can send at localities 1–4. */
  localities?: boolean;
  /** Whether the TPM behind the transport starts fresh (PCRs at their reset values). */
  fresh?: boolean;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Runs the conformance suite against transports made by `make`. */
export function describeConformance(name: string, make: () => Promise<ConformanceTarget>, options: ConformanceOptions = {}): void {
  describe(`conformance: ${name}`, () => {
    async function withTpm(fn: (tpm: Tpm) => Promise<void>): Promise<void> {
      const target = await make();
      let tpm: Tpm | undefined;
      try {
        tpm = await Tpm.open(target.transport);
        await fn(tpm);
      } finally {
        // also when open fails: cleanup stops external peers (swtpm processes) the target started
        await tpm?.close().catch(() => {});
        await target.transport.close?.().catch(() => {});
        await target.cleanup?.();
      }
    }

    it("reports TPM 2.0 fixed properties and the sha256 PCR bank", () =>
      withTpm(async (tpm) => {
        const info = await tpm.getInfo();
        expect(info.family).toBe("2.0");
        expect(info.maxCommandSize).toBeGreaterThanOrEqual(1024);
        expect(info.pcrCount).toBe(24);
        const banks = await tpm.getPcrBanks();
        const s256 = banks.find((b) => b.hash === 0x000b);
        expect(s256?.pcrs.length).toBe(24);
        const cmds = await tpm.getCommands();
        expect(cmds.map((c) => c.commandIndex)).toContain(TPM_CC.GetRandom & 0xffff);
      }));

    it("returns random bytes of the requested length, different each time", () =>
      withTpm(async (tpm) => {
        const a = await tpm.getRandom(16);
        const b = await tpm.getRandom(16);
        expect(a).toHaveLength(16);
        expect(hex(a)).not.toBe(hex(b));
        expect(await tpm.getRandom(100)).toHaveLength(100);
      }));

    it("extends a PCR as hash(old || digest) and reads it back", () =>
      withTpm(async (tpm) => {
        const before = (await tpm.pcrRead({ sha256: [16] })).sha256![16]!;
        const d = sha256(new TextEncoder().encode("tpmkit conformance"));
        await tpm.pcrExtend(16, { sha256: d });
        const after = (await tpm.pcrRead({ sha256: [16] })).sha256![16]!;
        const cat = new Uint8Array(64);
        cat.set(before);
        cat.set(d, 32);
        expect(hex(after)).toBe(hex(sha256(cat)));
        if (options.fresh !== false) {
          await tpm.pcrReset(16);
          expect(hex((await tpm.pcrRead({ sha256: [16] })).sha256![16]!)).toBe("00".repeat(32));
        }
      }));

    it("answers an unknown command code with TPM_RC_COMMAND_CODE", () =>
      withTpm(async (tpm) => {
        const cmd = Uint8Array.from([0x80, 0x01, 0, 0, 0, 10, 0x20, 0, 0xff, 0xff]);
        const rsp = await tpm.transmit(cmd);
        const rc = new DataView(rsp.buffer, rsp.byteOffset).getUint32(6);
        expect(new TpmResponseError(rc).base).toBe(TPM_RC.COMMAND_CODE);
        await expect(tpm.getCapability(TPM_CAP.TPM_PROPERTIES, 0x100, 1)).resolves.toBeDefined();
      }));

    it("refuses an oversize command before it reaches the transport, and stays usable", () =>
      withTpm(async (tpm) => {
        const big = new Uint8Array(8192);
        big.set([0x80, 0x01, 0, 0, 0x20, 0, 0, 0, 0x01, 0x7b]);
        await expect(tpm.transmit(big)).rejects.toBeInstanceOf(TpmArgumentError);
        expect(await tpm.getRandom(8)).toHaveLength(8);
      }));

    it("rejects an aborted call with an AbortError and serves the next call", () =>
      withTpm(async (tpm) => {
        const ac = new AbortController();
        ac.abort();
        await expect(tpm.getRandom(8, { signal: ac.signal })).rejects.toMatchObject({ name: "AbortError" });
        expect(await tpm.getRandom(8)).toHaveLength(8);
      }));

    if (options.localities) {
      it("enforces PCR locality rules per command (PCR 20 extend refused at 0, allowed at 1)", () =>
        withTpm(async (tpm) => {
          const d = new Uint8Array(32).fill(1);
          const e = await tpm.pcrExtend(20, { sha256: d }, { locality: 0 }).catch((x) => x);
          expect(e).toBeInstanceOf(TpmResponseError);
          expect((e as TpmResponseError).base).toBe(TPM_RC.LOCALITY);
          await tpm.pcrExtend(20, { sha256: d }, { locality: 1 });
        }));
    }

    it("is closed after close(): calls reject with TpmStateError", async () => {
      const target = await make();
      try {
        const tpm = await Tpm.open(target.transport);
        await tpm.close();
        await tpm.close();
        await expect(tpm.getRandom(4)).rejects.toBeInstanceOf(TpmStateError);
      } finally {
        await target.cleanup?.();
      }
    });
  });
}
