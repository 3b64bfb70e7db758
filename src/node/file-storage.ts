/**
 * A {@link Storage} in one file (Node only). Saves are atomic and durable: write a temporary file
 * in the same directory, fsync it, rename it over the state file, then fsync the directory, so a
 * crash or power cut leaves the old or the new state, never a torn one (as swtpm's
 * `--tpmstate ...,fsync` option does; swtpm(8)). Symlinks are not followed for the state file
 * (CVE-2020-28407).
 *
 * A crash between creating the temporary file and the rename leaves it behind
 * (`.<name>.<pid>.<n>.tmp` beside the state file); `load` removes those of this state file
 * whose process is gone, and nothing else.
 *
 * @packageDocumentation
 */
import { constants as fsConstants } from "node:fs";
import { lstat, open } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { TpmStateFileError } from "../errors/index.js";
import type { Storage } from "../core/storage.js";
import { fsyncDirectory, removeDeadTemps, replaceFile, tempNameFor } from "./atomic-file.js";

/** Largest state file FileStorage reads (bytes); a bigger file is refused, not read. */
export const STATE_FILE_MAX = 1 << 20;

/** Numbers the temporary files of every FileStorage in this process (two instances saving one path must not pick the same name). */

/**
 * Keeps a SoftTpm state blob in `path`.
 *
 * Each `save` resolves only when the new blob is on disk (file and directory fsynced), so
 * SoftTpm's answer to an NV-changing command, which waits for that save, means the change
 * survives a crash or power cut. `load` returns the last blob whose save completed.
 *
 * @example
 * ```ts
 * const tpm = new SoftTpm({ storage: new FileStorage("/var/lib/mytool/tpm.state") });
 * await tpm.start();
 * ```
 */
export class FileStorage implements Storage {
  /** The state file. */
  readonly path: string;

  /**
   * @param path - the state file; its directory must exist
   * @throws TpmStateFileError if `path` is empty
   */
  constructor(path: string) {
    if (typeof path !== "string" || path === "") throw new TpmStateFileError("FileStorage: path must be a non-empty string");
    this.path = path;
  }

  /**
   * Reads the state file.
   *
   * @returns its bytes, or undefined if it does not exist
   * @throws TpmStateFileError if it is not a regular file, is too big, or cannot be read
   */
  async load(): Promise<Uint8Array | undefined> {
    await this.removeStaleTemps();
    let st;
    try {
      st = await lstat(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new TpmStateFileError(`cannot stat state file ${this.path}`, { cause: e });
    }
    if (!st.isFile()) throw new TpmStateFileError(`state file ${this.path} is not a regular file`);
    if (st.size > STATE_FILE_MAX) throw new TpmStateFileError(`state file ${this.path} is ${st.size} bytes, larger than ${STATE_FILE_MAX}`);
    let fh;
    try {
      fh = await open(this.path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
      const buf = new Uint8Array(Math.min(STATE_FILE_MAX + 1, st.size + 1));
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n >= buf.length) throw new TpmStateFileError(`state file ${this.path} grew while being read`);
      }
      return buf.slice(0, n);
    } catch (e) {
      if (e instanceof TpmStateFileError) throw e;
      throw new TpmStateFileError(`cannot read state file ${this.path}`, { cause: e });
    } finally {
      await fh?.close();
    }
  }

  /**
   * Removes the temporary files a crashed save of this state file left behind: names of the form
   * `.<state file name>.<pid>.<n>.tmp` in its directory whose process is not running. A
   * temporary file of this process, of a live process, or of another state file is never
   * touched. Called by {@link FileStorage.load}; errors are ignored (cleanup is best effort).
   *
   * @returns the names removed
   */
  async removeStaleTemps(): Promise<string[]> {
    const pattern = new RegExp(`^\\.${escapeRegExp(basename(this.path))}\\.(\\d+)\\.(\\d+)\\.tmp$`);
    return removeDeadTemps(dirname(this.path), pattern, 1);
  }

  /**
   * Atomically replaces the state file: temp file, fsync, rename, fsync of the directory.
   *
   * @param state - the blob
   * @throws TpmStateFileError if any step fails (the old file is then left in place)
   */
  async save(state: Uint8Array): Promise<void> {
    const dir = dirname(this.path);
    try {
      await replaceFile(dir, tempNameFor(basename(this.path), "tmp"), this.path, state);
    } catch (e) {
      throw new TpmStateFileError(`cannot save state file ${this.path}`, { cause: e });
    }
    try {
      await fsyncDirectory(dir);
    } catch (e) {
      throw new TpmStateFileError(`cannot fsync directory ${dir}`, { cause: e });
    }
  }
}

/** `s` with every RegExp metacharacter escaped. */
function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
