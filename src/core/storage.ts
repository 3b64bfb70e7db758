/**
 * Where a {@link SoftTpm} keeps its non-volatile state between power cycles. The TPM holds its NV
 * in memory and hands the storage a complete, self-checking state blob (`encodeState` / `decodeState`)
 * after every NV-changing command and at Shutdown; `load` returns the last blob saved.
 *
 * @packageDocumentation
 */

/**
 * Persistent storage for one TPM's state blob (TPM 2.0 Part 1 §37, "Non-Volatile Memory").
 * Implementations must make `save` atomic: after a crash, `load` returns the old or the new
 * blob, never a torn mix.
 *
 * @example
 * ```ts
 * const storage = new MemoryStorage();
 * const tpm = new SoftTpm({ storage });
 * await tpm.start();
 * ```
 */
export interface Storage {
  /**
   * The last saved blob, or `undefined` if nothing was ever saved (a new TPM).
   *
   * @returns the blob or undefined
   * @throws TpmStateFileError if the storage exists but cannot be read
   */
  load(): Promise<Uint8Array | undefined>;
  /**
   * Replaces the stored blob atomically.
   *
   * @param state - the complete state blob
   * @returns when the blob is durable
   */
  save(state: Uint8Array): Promise<void>;
}

/**
 * A {@link Storage} in memory: survives a `SoftTpm` power cycle (or a new `SoftTpm` over the same
 * storage object), not a process restart. `data` exposes the stored bytes for tests that corrupt
 * them on purpose.
 *
 * @example
 * ```ts
 * const storage = new MemoryStorage();
 * const a = new SoftTpm({ storage }); await a.start(); // ... define NV, Shutdown
 * await a.flush();
 * const b = new SoftTpm({ storage }); await b.start(); // same NV
 * ```
 */
export class MemoryStorage implements Storage {
  /** The stored blob (a private copy), or undefined. Tests may replace it. */
  data: Uint8Array | undefined;
  /** Number of completed saves (for tests and benchmarks). */
  saves = 0;

  /** @param initial - a blob to start with (copied) */
  constructor(initial?: Uint8Array) {
    this.data = initial ? initial.slice() : undefined;
  }

  /** @returns a copy of the stored blob, or undefined */
  async load(): Promise<Uint8Array | undefined> {
    return this.data?.slice();
  }

  /** @param state - the blob to keep (copied) */
  async save(state: Uint8Array): Promise<void> {
    this.data = state.slice();
    this.saves++;
  }
}

/**
 * A flat store of named files, each replaced atomically: what tee-supplicant keeps under its REE FS
 * root (`/var/lib/tee`), or any other file-per-object store. Implementations: `MemoryFileStore`
 * here, `ReeFs` (a directory) in the Node layer.
 */
export interface FileStore {
  /** The file's bytes, or undefined when there is no such file. */
  read(name: string): Promise<Uint8Array | undefined>;
  /** Creates or replaces the file atomically: after a crash it holds the old or the new bytes. */
  write(name: string, data: Uint8Array): Promise<void>;
  /** Removes the file; no error when it does not exist. */
  remove(name: string): Promise<void>;
  /** Renames atomically (replacing `to`). */
  rename(from: string, to: string): Promise<void>;
  /** The names of every file. */
  list(): Promise<string[]>;
}

/**
 * A {@link FileStore} in memory. `files` is exposed for tests that corrupt, roll back or delete
 * files on purpose (what the normal world can do to REE FS).
 *
 * @example
 * ```ts
 * const store = new MemoryFileStore();
 * await store.write("dirf.db", new Uint8Array([1, 2]));
 * ```
 */
export class MemoryFileStore implements FileStore {
  /** The files (private copies). Tests may edit. */
  readonly files = new Map<string, Uint8Array>();
  /** Completed writes (for tests). */
  writes = 0;

  async read(name: string): Promise<Uint8Array | undefined> {
    return this.files.get(name)?.slice();
  }
  async write(name: string, data: Uint8Array): Promise<void> {
    this.files.set(name, data.slice());
    this.writes++;
  }
  async remove(name: string): Promise<void> {
    this.files.delete(name);
  }
  async rename(from: string, to: string): Promise<void> {
    const d = this.files.get(from);
    if (d === undefined) return;
    this.files.delete(from);
    this.files.set(to, d);
  }
  async list(): Promise<string[]> {
    return [...this.files.keys()];
  }
}
