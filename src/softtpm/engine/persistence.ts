/**
 * Write-behind persistence for the SoftTpm engine: NV state lives in memory, and after every
 * NV-changing command a complete state blob is handed to the {@link Storage} in a microtask.
 * Saves are coalesced (a burst of commands costs one save) and no command waits for I/O.
 *
 * @packageDocumentation
 */
import { TpmStateFileError } from "../../errors/index.js";
import type { Storage } from "../../core/storage.js";

/** Coalescing, write-behind saves of one state blob. */
export class WriteBehind {
  readonly #storage: Storage | undefined;
  readonly #snapshot: () => Uint8Array;
  #saving: Promise<void> | undefined;
  #dirty = false;
  #saveError: unknown;

  /**
   * @param storage - where blobs go; undefined: nothing is ever saved
   * @param snapshot - encodes the current state (called when a save starts, not when marked)
   */
  constructor(storage: Storage | undefined, snapshot: () => Uint8Array) {
    this.#storage = storage;
    this.#snapshot = snapshot;
  }

  /** Whether there is a storage to save to. */
  get enabled(): boolean {
    return this.#storage !== undefined;
  }

  /** The state changed: save it soon (in a microtask, together with every change before it). */
  markDirty(): void {
    if (!this.#storage) return;
    this.#dirty = true;
    if (!this.#saving) this.#startSave();
  }

  #startSave(): void {
    const storage = this.#storage;
    if (!storage) {
      this.#dirty = false;
      return;
    }
    const run = async () => {
      // Coalesce: every change made before this microtask ends is in this save.
      await Promise.resolve();
      while (this.#dirty) {
        this.#dirty = false;
        const blob = this.#snapshot();
        try {
          await storage.save(blob);
        } catch (e) {
          this.#saveError = e;
        }
      }
    };
    this.#saving = run().finally(() => {
      this.#saving = undefined;
      // a change that landed after the loop's last check must not wait for the next command
      if (this.#dirty) this.#startSave();
    });
  }

  /**
   * Resolves when every change so far is saved.
   *
   * @throws TpmStateFileError (or the storage's error) if a save failed; the next change retries
   */
  async flush(): Promise<void> {
    while (this.#saving || this.#dirty) {
      if (!this.#saving) this.#startSave();
      await this.#saving;
    }
    if (this.#saveError !== undefined) {
      const e = this.#saveError;
      this.#saveError = undefined;
      throw e instanceof TpmStateFileError ? e : new TpmStateFileError("saving the SoftTpm state failed", { cause: e });
    }
  }
}
