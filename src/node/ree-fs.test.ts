import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryFileStore } from "../core/storage.js";
import { TpmArgumentError, TpmStateFileError } from "../errors/index.js";
import { REE_FS_NAME_MAX, ReeFs } from "./ree-fs.js";

let root = "";
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "tpmkit-reefs-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const bytes = (...b: number[]) => new Uint8Array(b);

describe("ReeFs on a directory", () => {
  it("creates the directory on first use; write/read/list/rename/remove are files under it", async () => {
    const dir = join(root, "var/lib/tee");
    const fs = new ReeFs(dir);
    expect(await fs.list()).toEqual([]);
    await fs.write("dirf.db", bytes(1, 2, 3));
    await fs.write("0", bytes(9));
    expect(new Uint8Array(await readFile(join(dir, "dirf.db")))).toEqual(bytes(1, 2, 3));
    expect(await fs.read("dirf.db")).toEqual(bytes(1, 2, 3));
    expect((await fs.list()).sort()).toEqual(["0", "dirf.db"]);
    await fs.write("0", bytes(10, 11)); // replace
    expect(await fs.read("0")).toEqual(bytes(10, 11));
    await fs.rename("0", "dirf.db"); // replaces the target
    expect(await fs.read("dirf.db")).toEqual(bytes(10, 11));
    expect(await fs.read("0")).toBeUndefined();
    await fs.remove("dirf.db");
    expect(await fs.read("dirf.db")).toBeUndefined();
    expect(await readdir(dir)).toEqual([]); // no temporary file left behind
  });

  it("a missing file reads undefined; remove and rename of a missing file are no-ops", async () => {
    const fs = new ReeFs(root);
    expect(await fs.read("nope")).toBeUndefined();
    await expect(fs.remove("nope")).resolves.toBeUndefined();
    await expect(fs.rename("nope", "x")).resolves.toBeUndefined();
    expect(await fs.list()).toEqual([]);
  });

  it("a second ReeFs on the same directory sees the files (they are the state, not a cache)", async () => {
    await new ReeFs(root).write("a", bytes(1));
    expect(await new ReeFs(root).read("a")).toEqual(bytes(1));
  });

  it("rejects names with a separator, '..', '.', NUL, a leading '.', empty or too long: TpmArgumentError, nothing written", async () => {
    const fs = new ReeFs(root);
    for (const name of ["a/b", "..", ".", "../x", "a\\b", "a\0b", ".hidden", "", "x".repeat(REE_FS_NAME_MAX + 1), 7 as unknown as string]) {
      await expect(fs.write(name, bytes(1)), JSON.stringify(name)).rejects.toBeInstanceOf(TpmArgumentError);
      await expect(fs.read(name)).rejects.toBeInstanceOf(TpmArgumentError);
      await expect(fs.remove(name)).rejects.toBeInstanceOf(TpmArgumentError);
      await expect(fs.rename("ok", name)).rejects.toBeInstanceOf(TpmArgumentError);
    }
    await expect(fs.write("x".repeat(REE_FS_NAME_MAX), bytes(1))).resolves.toBeUndefined();
    expect(await readdir(root)).toEqual(["x".repeat(REE_FS_NAME_MAX)]);
    await expect(fs.write("a", "text" as unknown as Uint8Array)).rejects.toBeInstanceOf(TpmArgumentError);
  });

  it("the normal world can delete or roll back a file: ReeFs reads whatever the directory holds (rollback protection level 0)", async () => {
    const fs = new ReeFs(root);
    await fs.write("0", bytes(1));
    const old = await readFile(join(root, "0"));
    await fs.write("0", bytes(2));
    await writeFile(join(root, "0"), old); // roll back
    expect(await fs.read("0")).toEqual(bytes(1));
    await rm(join(root, "0")); // delete
    expect(await fs.read("0")).toBeUndefined();
  });

  it("a symlink or a directory under a name is not read through: TpmStateFileError", async () => {
    await writeFile(join(root, "target"), "secret");
    await symlink(join(root, "target"), join(root, "link"));
    await mkdir(join(root, "sub"));
    const fs = new ReeFs(root);
    await expect(fs.read("link")).rejects.toBeInstanceOf(TpmStateFileError);
    await expect(fs.read("sub")).rejects.toBeInstanceOf(TpmStateFileError);
    expect((await fs.list()).sort()).toEqual(["target"]); // only regular files
  });

  it("on first use removes temporary files of dead writers, keeps those of live ones and of this process", async () => {
    const dead = spawnSync(process.execPath, ["-e", "process.pid"]).pid!; // exited
    await writeFile(join(root, `.0.${dead}.3.rfs-tmp`), "torn");
    await writeFile(join(root, `.0.${process.pid}.1.rfs-tmp`), "mine");
    await writeFile(join(root, ".unrelated"), "keep");
    const fs = new ReeFs(root);
    expect(await fs.list()).toEqual([]); // temps are not files of the store
    expect((await readdir(root)).sort()).toEqual([`.0.${process.pid}.1.rfs-tmp`, ".unrelated"]);
  });

  it("a write that fails leaves the old file and no temporary file, with a TpmStateFileError", async () => {
    const fs = new ReeFs(root);
    await fs.write("a", bytes(1));
    await mkdir(join(root, "b")); // rename(tmp, "b") fails: EISDIR
    await expect(fs.write("b", bytes(2))).rejects.toBeInstanceOf(TpmStateFileError);
    expect(await fs.read("a")).toEqual(bytes(1));
    expect((await readdir(root)).sort()).toEqual(["a", "b"]);
  });

  it("an unusable directory (a file in its place) is a TpmStateFileError", async () => {
    await writeFile(join(root, "file"), "x");
    const fs = new ReeFs(join(root, "file"));
    await expect(fs.write("a", bytes(1))).rejects.toBeInstanceOf(TpmStateFileError);
  });

  it("the constructor refuses an empty dir", () => {
    expect(() => new ReeFs("")).toThrow(TpmArgumentError);
  });
});

describe("ReeFs in memory", () => {
  it("without a directory it is a MemoryFileStore with the same name checks", async () => {
    const fs = new ReeFs();
    expect(fs.dir).toBeUndefined();
    expect(fs.memory).toBeInstanceOf(MemoryFileStore);
    await fs.write("dirf.db", bytes(4));
    expect(await fs.read("dirf.db")).toEqual(bytes(4));
    expect(fs.memory!.files.get("dirf.db")).toEqual(bytes(4));
    await fs.rename("dirf.db", "1");
    expect(await fs.list()).toEqual(["1"]);
    await fs.remove("1");
    expect(await fs.list()).toEqual([]);
    await expect(fs.write("../x", bytes(1))).rejects.toBeInstanceOf(TpmArgumentError);
  });
});
