/** Issue 9, finding 6: a backend (or transport) that answers with a plain value, not a Promise. */
import { describe, expect, it } from "vitest";
import { Chip } from "./chip.js";
import type { TpmBackend } from "./transport.js";
import { TpmFormatError } from "../errors/index.js";
import { memory } from "../transports/memory/index.js";

const GET_RANDOM_8 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8]);
const RESPONSE = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0]);

describe("Chip: a backend whose execute returns a plain value", () => {
  it("accepts plain response bytes, and keeps working", async () => {
    const backend = { execute: () => RESPONSE.slice() } as unknown as TpmBackend;
    const chip = new Chip(memory({ backend }));
    expect(await chip.transmit(GET_RANDOM_8)).toEqual(RESPONSE);
    expect(await chip.transmit(GET_RANDOM_8)).toEqual(RESPONSE);
    await chip.close();
  });

  it("answers a plain value that is not bytes with TpmFormatError, and keeps working", async () => {
    let answer: unknown = 42;
    const backend = { execute: () => answer } as unknown as TpmBackend;
    const chip = new Chip(memory({ backend }));
    await expect(chip.transmit(GET_RANDOM_8)).rejects.toBeInstanceOf(TpmFormatError);
    answer = undefined;
    await expect(chip.transmit(GET_RANDOM_8)).rejects.toBeInstanceOf(TpmFormatError);
    answer = RESPONSE;
    expect(await chip.transmit(GET_RANDOM_8)).toEqual(RESPONSE);
    await chip.close();
  });
});
