import { describe, it, expect } from "vitest";
import { FakeClock } from "../../core/clock.js";
import { SoftTpm } from "../../softtpm/index.js";
import { Tpm } from "../../client/tpm.js";
import { CrbDevice } from "../../devices/crb/index.js";
import { crb, mmioStart, smcStart } from "./index.js";
import { expectPcr17Extends } from "../../../test/support/pcr17.js";
import { TpmResponseError } from "../../wire/rc.js";
import { TPM_RC } from "../../wire/constants.js";

describe("crb + CrbDevice + SoftTpm (the embedded default backend)", () => {
  it("runs Startup, GetRandom, PCR_Extend and PCR_Read through the register path", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new CrbDevice({ backend: new SoftTpm() });
    const transport = crb({ mmio: device, start: mmioStart() });
    const tpm = await Tpm.open(transport, { clock });
    const r = await tpm.getRandom(16);
    expect(r.length).toBe(16);
    const digest = new Uint8Array(32).fill(7);
    await tpm.pcrExtend(16, { sha256: digest });
    const { sha256 } = await tpm.pcrRead({ sha256: [16] });
    expect(sha256![16]!.length).toBe(32);
    expect(sha256![16]).not.toEqual(new Uint8Array(32));
    expect(device.state.commands).toBe(4);
    await tpm.close();
  });

  it("hands SoftTpm the locality of the page the command was started from", async () => {
    const clock = new FakeClock({ auto: true });
    const soft = new SoftTpm();
    const seen: number[] = [];
    const backend = { start: () => soft.start(), execute: (c: Uint8Array, l: number, s?: AbortSignal) => (seen.push(l), soft.execute(c, l, s)) };
    const tpm = await Tpm.open(crb({ mmio: new CrbDevice({ backend, localities: 5 }), start: smcStart({ call: () => 0 }) }), { clock });
    await tpm.getRandom(4, { locality: 3 });
    expect(seen).toEqual([0, 3]);
    await tpm.close();
  });

  it("crb({ locality: 3 }) over a 5-locality device sends every command at locality 3: PCR 17 extends", async () => {
    const clock = new FakeClock({ auto: true });
    const soft = new SoftTpm();
    const seen: number[] = [];
    const backend = { start: () => soft.start(), execute: (c: Uint8Array, l: number, s?: AbortSignal) => (seen.push(l), soft.execute(c, l, s)) };
    const transport = crb({ mmio: new CrbDevice({ backend, localities: 5 }), start: mmioStart(), locality: 3 });
    expect(transport.defaultLocality).toBe(3);
    const tpm = await Tpm.open(transport, { clock });
    await expectPcr17Extends(tpm);
    expect(transport.info!.locality).toBe(3); // open read locality 3's buffers
    expect(seen).toEqual([3, 3, 3, 3]); // Startup, PCR_Read, PCR_Extend, PCR_Read
    await tpm.close();
  });

  it("crb() without a locality option sends at the chip's 0, where a PCR 17 extend is refused with TPM_RC_LOCALITY", async () => {
    const clock = new FakeClock({ auto: true });
    const transport = crb({ mmio: new CrbDevice({ backend: new SoftTpm(), localities: 5 }), start: mmioStart() });
    expect(transport.defaultLocality).toBeUndefined();
    const tpm = await Tpm.open(transport, { clock });
    const e = await tpm.pcrExtend(17, { sha256: new Uint8Array(32) }).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(TpmResponseError);
    expect((e as TpmResponseError).base).toBe(TPM_RC.LOCALITY);
    await tpm.close();
  });
});
