import { describe, it, expect } from "vitest";
import { COMMANDS } from "../commands/index.js";
import { COMMAND_ATTRIBUTES } from "../tables.js";
import { type CommandSpec, commandTable } from "./dispatch.js";

const spec: CommandSpec = { handles: [], auth: 0, run: () => {} };

describe("the SoftTpm dispatch table", () => {
  it("holds exactly the commands TPM_CAP_COMMANDS reports", () => {
    const listed = COMMAND_ATTRIBUTES.map((a) => a & 0xffff);
    expect([...COMMANDS.keys()].sort((a, b) => a - b)).toEqual(listed);
  });

  it("agrees with each command's TPMA_CC: cHandles (bits 27:25) and rHandle (bit 28), TPM 2.0 Part 2 §8.9", () => {
    for (const a of COMMAND_ATTRIBUTES) {
      const s = COMMANDS.get(a & 0xffff)!;
      expect({ code: a & 0xffff, cHandles: s.handles.length, rHandle: s.rHandle === true }).toEqual({
        code: a & 0xffff,
        cHandles: (a >>> 25) & 7,
        rHandle: ((a >>> 28) & 1) === 1,
      });
    }
  });

  it("refuses a command code registered by two chapters", () => {
    expect(() => commandTable([[0x17b, spec]], [[0x17b, spec]])).toThrow(/0x17b registered twice/);
    expect(commandTable([[0x17b, spec]], [[0x17e, spec]]).size).toBe(2);
  });
});
