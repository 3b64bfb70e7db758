import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
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

  it("load removes the temporary files a crashed save of this state file left behind, and nothing else", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tpmkit-fs-"));
    try {
      const path = join(dir, "tpm.state");
      const s = new FileStorage(path);
      await s.save(Uint8Array.of(1, 2, 3));
      // a process that has exited: its pid is free (and not ours)
      const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
      const keep = [
        "tpm.state",
        `.tpm.state.${process.pid}.7.tmp`, // this process: a save may be in flight
        `.tpm.state.${process.ppid}.3.tmp`, // a live process
        `.other.state.${dead}.1.tmp`, // another state file's temp
        `.tpm.stateX.${dead}.1.tmp`, // a longer name with the same prefix
        `.tpm.state.${dead}.1.tmp.bak`,
        `tpm.state.${dead}.1.tmp`,
        `.tpm.state.${dead}.dir.tmp`,
      ];
      const stale = [`.tpm.state.${dead}.1.tmp`, `.tpm.state.${dead}.22.tmp`];
      for (const n of [...keep.slice(1), ...stale]) await writeFile(join(dir, n), "torn");
      await mkdir(join(dir, `.tpm.state.${dead}.9.tmp`)); // a directory with a temp's name: not a file, kept
      keep.push(`.tpm.state.${dead}.9.tmp`);
      expect(Array.from((await s.load())!)).toEqual([1, 2, 3]);
      expect((await readdir(dir)).sort()).toEqual(keep.sort());
      // a storage whose file does not exist yet cleans up too
      await writeFile(join(dir, `.new.state.${dead}.5.tmp`), "torn");
      expect(await new FileStorage(join(dir, "new.state")).load()).toBeUndefined();
      expect(await readdir(dir)).not.toContain(`.new.state.${dead}.5.tmp`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
