/**
 * The REE FS root of tee-supplicant (`/var/lib/tee`, `--fs-parent-path`) as a `FileStore`:
 * a directory with one file per object (OP-TEE's `dirf.db` and its hex-numbered object files),
 * or the same in memory.
 *
 * What the normal world can do to it: everything. The files belong to the REE, so root (or any
 * process with access to the directory) can read, delete, replace, or roll a file back to an
 * older copy. OP-TEE encrypts and authenticates the objects (optee_os core/tee/tee_ree_fs.c,
 * fs_htree.c), so a changed byte is detected, but the REE FS gives no rollback protection on its
 * own: GlobalPlatform TEE Internal Core API v1.3.1 §2.5 ("rollback protection level" 0 for
 * TEE_STORAGE_PRIVATE_REE unless OP-TEE's CFG_REE_FS_INTEGRITY_RPMB anchors the directory hash
 * in RPMB); a deleted file reads as missing (ITEM_NOT_FOUND), an old whole copy of every file
 * reads as the old state.
 *
 * What is atomic: each `write` and `rename` of one file (write a temporary file in the same
 * directory, fsync it, rename it over the name, fsync the directory, as POSIX rename(2)
 * guarantees). A crash leaves every file with its old or its new bytes, never a torn mix; a
 * sequence of writes to several files is not atomic as a whole (OP-TEE's hash tree and
 * `dirf.db` handle that on their side).
 *
 * @packageDocumentation
 */
import { constants as fsConstants } from "node:fs";
import { mkdir, open, readdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { TpmArgumentError, TpmStateFileError } from "../errors/index.js";
import { MemoryFileStore, type FileStore } from "../core/storage.js";
import { fsyncDirectory, removeDeadTemps, replaceFile, tempNameFor } from "./atomic-file.js";

/** Largest file a {@link ReeFs} reads (bytes); a bigger file is refused, not read. */
export const REE_FS_FILE_MAX = 16 << 20;
/**
 * Longest file name a {@link ReeFs} accepts, bytes: NAME_MAX (255) of Linux file systems less room
 * for the temporary name `.<name>.<pid>.<n>.rfs-tmp` written beside it.
 */
export const REE_FS_NAME_MAX = 200;

/** Temporary files are `.<name>.<pid>.<n>.rfs-tmp`; the suffix never matches a valid name's end by accident. */
const TEMP = /^\.(.+)\.(\d+)\.(\d+)\.rfs-tmp$/;
/** Numbers this process's temporary files (several ReeFs on one directory must not collide). */

/**
 * A `FileStore` for tee-supplicant's REE FS. With `dir`, one file per name under it (the
 * directory is created on first use; names are plain file names: no `/`, `\`, NUL, `.` or `..`,
 * at most {@link REE_FS_NAME_MAX} bytes, and not starting with `.`, which is kept for temporary files). Without
 * `dir`, in memory (a `MemoryFileStore`, exposed as `memory`).
 *
 * Each write and rename is atomic and durable when it resolves (temporary file, fsync, rename,
 * fsync of the directory); temporary files a killed process left behind are removed on first use.
 * The normal world can delete or roll back any file: REE FS has rollback protection level 0.
 *
 * @example
 * ```ts
 * const supplicant = new Supplicant({ storage: new ReeFs("/var/lib/tee") });
 * ```
 */
export class ReeFs implements FileStore {
  /** The directory, or undefined for an in-memory store. */
  readonly dir: string | undefined;
  /** The in-memory store when there is no directory (tests may edit its `files`). */
  readonly memory: MemoryFileStore | undefined;
  #ready: Promise<void> | undefined;

  /**
   * @param dir - the REE FS root; omitted: in memory
   * @throws TpmArgumentError if `dir` is given but not a non-empty string
   */
  constructor(dir?: string) {
    if (dir !== undefined && (typeof dir !== "string" || dir === "")) throw new TpmArgumentError("ReeFs: dir must be a non-empty string");
    this.dir = dir;
    this.memory = dir === undefined ? new MemoryFileStore() : undefined;
  }

  /**
   * The file's bytes, or undefined when there is none.
   *
   * @throws TpmArgumentError for an invalid name; TpmStateFileError if it is not a regular file, too big or unreadable
   */
  async read(name: string): Promise<Uint8Array | undefined> {
    checkName(name);
    if (this.memory) return this.memory.read(name);
    await this.#init();
    const path = join(this.dir!, name);
    let fh;
    try {
      fh = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new TpmStateFileError(`ReeFs: cannot open ${path}`, { cause: e });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new TpmStateFileError(`ReeFs: ${path} is not a regular file`);
      if (st.size > REE_FS_FILE_MAX) throw new TpmStateFileError(`ReeFs: ${path} is ${st.size} bytes, larger than ${REE_FS_FILE_MAX}`);
      const buf = new Uint8Array(st.size + 1);
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n >= buf.length) throw new TpmStateFileError(`ReeFs: ${path} grew while being read`);
      }
      return buf.slice(0, n);
    } catch (e) {
      if (e instanceof TpmStateFileError) throw e;
      throw new TpmStateFileError(`ReeFs: cannot read ${path}`, { cause: e });
    } finally {
      await fh.close();
    }
  }

  /**
   * Creates or replaces the file atomically: temporary file in the same directory, fsync, rename,
   * fsync of the directory. Resolves when the new bytes are durable.
   *
   * @throws TpmArgumentError for an invalid name or data; TpmStateFileError if a step fails (the old file is left)
   */
  async write(name: string, data: Uint8Array): Promise<void> {
    checkName(name);
    if (!(data instanceof Uint8Array)) throw new TpmArgumentError("ReeFs.write: data must be a Uint8Array");
    if (this.memory) return this.memory.write(name, data);
    await this.#init();
    const dir = this.dir!;
    const path = join(dir, name);
    try {
      await replaceFile(dir, tempNameFor(name, "rfs-tmp"), path, data);
    } catch (e) {
      throw new TpmStateFileError(`ReeFs: cannot write ${path}`, { cause: e });
    }
    await this.#syncDir();
  }

  /**
   * Removes the file; no error when there is none.
   *
   * @throws TpmArgumentError for an invalid name; TpmStateFileError if unlink fails otherwise
   */
  async remove(name: string): Promise<void> {
    checkName(name);
    if (this.memory) return this.memory.remove(name);
    await this.#init();
    const path = join(this.dir!, name);
    try {
      await unlink(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new TpmStateFileError(`ReeFs: cannot remove ${path}`, { cause: e });
    }
    await this.#syncDir();
  }

  /**
   * Renames atomically, replacing `to`. A missing `from` is a no-op (as `MemoryFileStore`).
   *
   * @throws TpmArgumentError for an invalid name; TpmStateFileError if rename fails otherwise
   */
  async rename(from: string, to: string): Promise<void> {
    checkName(from);
    checkName(to);
    if (this.memory) return this.memory.rename(from, to);
    await this.#init();
    try {
      await rename(join(this.dir!, from), join(this.dir!, to));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new TpmStateFileError(`ReeFs: cannot rename ${from} to ${to} in ${this.dir}`, { cause: e });
    }
    await this.#syncDir();
  }

  /**
   * The names of every regular file (temporary files excluded).
   *
   * @throws TpmStateFileError if the directory cannot be read
   */
  async list(): Promise<string[]> {
    if (this.memory) return this.memory.list();
    await this.#init();
    try {
      const entries = await readdir(this.dir!, { withFileTypes: true });
      return entries.filter((d) => d.isFile() && validName(d.name)).map((d) => d.name);
    } catch (e) {
      throw new TpmStateFileError(`ReeFs: cannot list ${this.dir}`, { cause: e });
    }
  }

  /**
   * Removes the temporary files a killed writer left in the directory (those of processes no
   * longer running; never this process's or a live one's). Runs once on first use; errors are
   * ignored (best effort).
   *
   * @returns the names removed
   */
  async removeStaleTemps(): Promise<string[]> {
    if (!this.dir) return [];
    return removeDeadTemps(this.dir, TEMP, 2);
  }

  /** Creates the directory and removes stale temporary files, once. */
  #init(): Promise<void> {
    this.#ready ??= (async () => {
      try {
        await mkdir(this.dir!, { recursive: true, mode: 0o700 });
      } catch (e) {
        this.#ready = undefined;
        throw new TpmStateFileError(`ReeFs: cannot create ${this.dir}`, { cause: e });
      }
      await this.removeStaleTemps();
    })();
    return this.#ready;
  }

  async #syncDir(): Promise<void> {
    try {
      await fsyncDirectory(this.dir!);
    } catch (e) {
      throw new TpmStateFileError(`ReeFs: cannot fsync directory ${this.dir}`, { cause: e });
    }
  }
}

function validName(name: unknown): name is string {
  return (
    typeof name === "string" &&
    name !== "" &&
    name !== "." &&
    name !== ".." &&
    !name.startsWith(".") &&
    !/[/\\\0]/.test(name) &&
    Buffer.byteLength(name) <= REE_FS_NAME_MAX
  );
}

function checkName(name: unknown): asserts name is string {
  if (!validName(name)) {
    throw new TpmArgumentError(`ReeFs: invalid file name ${JSON.stringify(String(name))}: a plain name of 1-${REE_FS_NAME_MAX} bytes without '/', '\\', NUL or a leading '.'`);
  }
}
