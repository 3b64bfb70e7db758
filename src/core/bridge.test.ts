import { describe, expect, it } from "vitest";
import { Chip } from "./chip.js";
import { chipBackend } from "./bridge.js";
import type { SendOptions } from "./transport.js";

describe("chipBackend", () => {
  it("forwards commands and localities through the chip, without retrying warnings", async () => {
    const seen: number[] = [];
    let sends = 0;
    const chip = new Chip({
      kind: "fake",
      localities: [0, 1, 2, 3, 4],
      async send(c: Uint8Array, o: SendOptions) {
        sends++;
        seen.push(o.locality);
        const r = new Uint8Array(10);
        r.set([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x22]); // TPM_RC_RETRY
        return r;
      },
    });
    const b = chipBackend(chip);
    await b.start!();
    const rsp = await b.execute(Uint8Array.from([0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x7b]), 3);
    expect(rsp[9]).toBe(0x22);
    expect(seen).toEqual([3]);
    expect(sends).toBe(1);
    expect(chip.readiness).toBe("ready");
  });
});
