import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Tpm } from "../client/tpm.js";
import { BOARDS, boardFor } from "./boards.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("boards: the emulated stacks TCTI strings build", () => {
  it("each board is a working TPM: GetRandom through the whole stack", async () => {
    for (const name of Object.keys(BOARDS)) {
      const board = boardFor(name)!.build({});
      await using tpm = await Tpm.open(board.transport);
      expect((await tpm.getRandom(8)).length).toBe(8);
      expect(board.description).toMatch(/SoftTpm/);
    }
  });

  it("host transports and unknown names are not boards", () => {
    expect(boardFor("swtpm")).toBeUndefined();
    expect(boardFor("device")).toBeUndefined();
    expect(boardFor("toString")).toBeUndefined();
  });

  it("state=FILE keeps the SoftTpm's state in that file, for every board with a SoftTpm", async () => {
    for (const name of ["softtpm", "tis", "crb"]) {
      const dir = mkdtempSync(join(tmpdir(), "tpmkit-board-"));
      dirs.push(dir);
      const file = join(dir, "tpm.state");
      const board = boardFor(name)!.build({ state: file });
      expect(board.stateFile).toBe(file);
      const tpm = await Tpm.open(board.transport);
      await tpm.pcrExtend(0, { sha256: new Uint8Array(32).fill(1) });
      await tpm.shutdown("state");
      await board.softTpm!.flush();
      await tpm.close();
      expect(statSync(file).size).toBeGreaterThan(0);
      const again = boardFor(name)!.build({ state: file });
      const tpm2 = await Tpm.open(again.transport, { startup: false });
      await tpm2.startup("state");
      const { sha256 } = await tpm2.pcrRead({ sha256: [0] });
      expect(sha256![0]).not.toEqual(new Uint8Array(32));
      await tpm2.close();
    }
  });
});
