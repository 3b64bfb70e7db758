/**
 * The TEE mediator end to end: `Tpm` → `ftpmTee({ tee: guest })` → `TeeMediator` → the guest's
 * OP-TEE partition → its own fTPM TA instance (a SoftTpm) → its own tee-supplicant and REE FS.
 *
 * Sources: Xen xen/arch/arm/tee/optee.c (the mediator's duties), optee_os
 * core/arch/arm/kernel/virtualization.c (a partition per guest: TA instances, sessions and RPCs
 * are per guest, so one SINGLE_INSTANCE fTPM per guest).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { FakeClock, OpTee, TeeError, TeeMediator, Tpm, TpmkitError, TEE_ORIGIN, TEE_RESULT, ftpmTa, ftpmTee, type TeeGuest } from "../src/index.js";

const NV = 0x01500030;

function stack(maxGuests = 64) {
  const clock = new FakeClock();
  const tee = new OpTee({ tas: [ftpmTa({ early: true })], virtualization: true, maxGuests, clock });
  const mediator = new TeeMediator(tee, { clock });
  return { tee, mediator, clock };
}

function own(vmId: number): Uint8Array {
  return Uint8Array.from({ length: 8 }, (_, i) => (vmId * 7 + i) & 0xff);
}

function expectedPcr(vmId: number, extends_: number): Uint8Array {
  let pcr: Uint8Array = new Uint8Array(32);
  const d = sha256(own(vmId));
  for (let i = 0; i < extends_; i++) {
    const buf = new Uint8Array(64);
    buf.set(pcr);
    buf.set(d, 32);
    pcr = sha256(buf);
  }
  return pcr;
}

describe("TeeMediator with the fTPM", () => {
  it("64 guests × 100 commands through Tpm.open(ftpmTee({ tee: guest })) with no cross-talk", async () => {
    const { mediator, tee } = stack();
    const guests = await Promise.all(Array.from({ length: 64 }, () => mediator.createGuest()));
    expect(guests.map((g) => g.vmId)).toEqual(Array.from({ length: 64 }, (_, i) => i + 2));
    const EXTENDS = 96;
    const results = await Promise.all(
      guests.map(async (g) => {
        const tpm = await Tpm.open(ftpmTee({ tee: g }));
        try {
          await tpm.nvDefineSpace({ index: NV, size: 8 }); // 1
          await tpm.nvWrite(NV, own(g.vmId)); // 2
          const d = sha256(own(g.vmId));
          for (let i = 0; i < EXTENDS; i++) await tpm.pcrExtend(16, { sha256: d }); // 98
          const pcr = (await tpm.pcrRead({ sha256: [16] })).sha256![16]!; // 99
          const nv = await tpm.nvRead(NV); // 100
          return { vmId: g.vmId, pcr, nv };
        } finally {
          await tpm.close();
        }
      }),
    );
    for (const r of results) {
      expect(Buffer.from(r.pcr).toString("hex")).toBe(Buffer.from(expectedPcr(r.vmId, EXTENDS)).toString("hex"));
      expect([...r.nv]).toEqual([...own(r.vmId)]);
    }
    expect(new Set(results.map((r) => Buffer.from(r.pcr).toString("hex"))).size).toBe(64);
    // Each guest's own fTPM instance and supplicant did the work.
    for (const g of guests) {
      expect(tee.instanceOf("bc50d971-d4c9-42c4-82cb-343fb7f37896", g.vmId)).toBeDefined();
      expect(g.supplicant!.served.get(2)).toBeGreaterThan(0); // REE FS requests on its own supplicant
      expect(g.pinnedPages).toBe(0); // the 8 KiB shm was unregistered at close
      expect(g.callsInFlight).toBe(0);
    }
    const stores = new Set(guests.map((g) => g.supplicant!.storage));
    expect(stores.size).toBe(64);
  }, 15_000);

  it("guest A cannot see or reach guest B's session, NV or PCRs", async () => {
    const { mediator } = stack();
    const a = await mediator.createGuest();
    const b = await mediator.createGuest();
    const ta = await Tpm.open(ftpmTee({ tee: a }));
    // B opens its fTPM while A holds its single-session fTPM: a separate instance, not BUSY.
    const tb = await Tpm.open(ftpmTee({ tee: b }));
    await ta.nvDefineSpace({ index: NV, size: 4 });
    await ta.nvWrite(NV, Uint8Array.of(0xa, 0xa, 0xa, 0xa));
    await ta.pcrExtend(16, { sha256: sha256(Uint8Array.of(1)) });
    expect(await tb.getHandles()).not.toContain(NV);
    await expect(tb.nvRead(NV)).rejects.toBeInstanceOf(TpmkitError);
    expect([...(await tb.pcrRead({ sha256: [16] })).sha256![16]!]).toEqual(new Array(32).fill(0));
    expect([...(await ta.nvRead(NV))]).toEqual([0xa, 0xa, 0xa, 0xa]);

    // Sessions are per partition: A's and B's first fTPM sessions carry the same id, yet each reaches
    // only its own TA instance; a second session on A's fTPM is BUSY, on B unaffected.
    const ca = await a.openContext({ client: "kernel" });
    const cb = await b.openContext({ client: "kernel" });
    const e = await ca.openSession("bc50d971-d4c9-42c4-82cb-343fb7f37896").then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(TeeError);
    expect((e as TeeError).teeCode).toBe(TEE_RESULT.BUSY);
    await tb.close();
    const sb = await cb.openSession("bc50d971-d4c9-42c4-82cb-343fb7f37896");
    expect(sb.id).toBe(2); // B's own session numbering (its first session was 1)
    await sb.close();
    await ca.close();
    await cb.close();
    await ta.close();
  }, 10_000);

  it("destroy: the guest's TPM and handles reject with a typed error; the VM id comes back with fresh state", async () => {
    const { mediator } = stack();
    const g = await mediator.createGuest();
    const tpm = await Tpm.open(ftpmTee({ tee: g }));
    await tpm.nvDefineSpace({ index: NV, size: 4 });
    await mediator.destroyGuest(g);
    const err = await tpm.getRandom(4).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(TpmkitError);
    const ctxErr = await g.openContext().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(ctxErr).toMatchObject({ teeCode: TEE_RESULT.ITEM_NOT_FOUND, origin: TEE_ORIGIN.API });
    await tpm.close();
    const again: TeeGuest = await mediator.createGuest();
    expect(again.vmId).toBe(g.vmId);
    const tpm2 = await Tpm.open(ftpmTee({ tee: again }));
    expect(await tpm2.getHandles()).not.toContain(NV); // a new guest, a new fTPM
    await tpm2.close();
  }, 10_000);
});
