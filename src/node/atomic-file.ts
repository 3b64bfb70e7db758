/**
 * The one way tpmkit replaces a file so that a crash leaves the old bytes or the new, never a
 * mix: write a temporary file in the same directory, fsync it, rename it over the target, fsync the
 * directory (POSIX rename(2) is atomic within a file system; the directory fsync makes the rename
 * itself durable). Also the cleanup of temporary files a crashed writer left behind. Used by
 * `FileStorage` (SoftTpm's state file) and `ReeFs` (tee-supplicant's REE FS directory).
 *
 * @packageDocumentation
 */
import { constants as fsConstants } from "node:fs";
import { lstat, open, readdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";

let tempSeq = 0;

/**
 * A fresh temporary name for `target` in its directory: `.<target>.<pid>.<n>.<suffix>`, so a
 * later cleaner can tell whose it was ({@link removeDeadTemps}).
 */
export function tempNameFor(target: string, suffix: string): string {
  return `.${target}.${process.pid}.${++tempSeq}.${suffix}`;
}

/**
 * Writes `data` to `dir/tmpName`, fsyncs it and renames it to `path`. On failure the temporary
 * file is removed and the raw error rethrown (the old file is left in place). Call
 * {@link fsyncDirectory} after it for a durable rename.
 */
export async function replaceFile(dir: string, tmpName: string, path: string, data: Uint8Array): Promise<void> {
  const tmp = join(dir, tmpName);
  try {
    const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    try {
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        off += bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/**
 * fsyncs a directory so a rename in it is durable. File systems that refuse fsync on a directory
 * (EINVAL, EISDIR, EPERM, EACCES) are tolerated: the rename is done. Other errors are rethrown.
 */
export async function fsyncDirectory(dir: string): Promise<void> {
  try {
    const d = await open(dir, fsConstants.O_RDONLY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "EISDIR" && code !== "EPERM" && code !== "EACCES") throw e;
  }
}

/**
 * Removes the temporary files in `dir` that match `pattern` and belong to a process that no longer
 * exists (`pattern`'s capture group `pidGroup` is the writer's pid). This process's temporaries,
 * a live process's, directories and anything that does not match are left alone.
 *
 * @returns the names removed
 */
export async function removeDeadTemps(dir: string, pattern: RegExp, pidGroup: number): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m) continue;
    const pid = Number(m[pidGroup]);
    if (pid === process.pid || processAlive(pid)) continue;
    const p = join(dir, name);
    try {
      if (!(await lstat(p)).isFile()) continue;
      await unlink(p);
      removed.push(name);
    } catch {
      // raced with another cleaner, or not ours to remove: leave it
    }
  }
  return removed;
}

/** Whether a process with this id exists (kill(2) with signal 0; EPERM means it exists). */
function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
