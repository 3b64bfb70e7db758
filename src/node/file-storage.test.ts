import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileStorage } from "./file-storage.js";

describe("FileStorage", () => {
  it("two instances saving the same file at once both succeed (distinct temporary files), and one of the blobs wins whole", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tpmkit-fs-"));
    try {
      const path = join(dir, "tpm.state");
      const a = new FileStorage(path);
      const b = new FileStorage(path);
      const blobA = new Uint8Array(4096).fill(0xaa);
      const blobB = new Uint8Array(4096).fill(0xbb);
      for (let i = 0; i < 20; i++) await Promise.all([a.save(blobA), b.save(blobB)]);
      const got = new Uint8Array(await readFile(path));
      expect([0xaa, 0xbb]).toContain(got[0]);
      expect(got.every((x) => x === got[0])).toBe(true);
      expect(await readdir(dir)).toEqual(["tpm.state"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
