/**
 * Persistence for the SoftTpm engine: NV state lives in memory, and after every NV-changing
 * command a complete state blob is handed to the {@link Storage}.
 *
 * Durability contract (what {@link SoftTpm.execute} builds on): every change gets a sequence
 * number; {@link Commits.commit} resolves `true` once a blob containing that change has been
 * saved, `false` if the save failed. Saves are group commits: one save runs at a time, and every
 * change made while it is in flight goes into the next one, so a burst of concurrent commands
 * costs one or two saves and nothing is ever acknowledged before it is stored.
 *
 * A failed save rolls the in-memory state back to the last blob known to be stored (or the
 * state at power-on), so the TPM never keeps, and never shows to a later command, a change whose
 * command was told it failed.
 *
 * @packageDocumentation
 */
import { TpmStateFileError } from "../../errors/index.js";
import type { Storage } from "../../core/storage.js";

/** One command waiting for its change to be stored. */
interface Waiter {
  seq: number;
  resolve: (stored: boolean) => void;
}

/** Group-committed saves of one state blob, with roll-back to the last stored blob on failure. */
export class Commits {
  readonly #storage: Storage | undefined;
  readonly #snapshot: () => Uint8Array;
  readonly #restore: (blob: Uint8Array) => void;
  #saving: Promise<void> | undefined;
  #dirty = false;
  #saveError: unknown;
  /** Number of changes so far (the sequence number of the newest change). */
  #seq = 0;
  /** Every change up to this sequence number is stored. */
  #storedSeq = 0;
  /** Every change up to this sequence number was discarded by a failed save. */
  #failedSeq = 0;
  /** The last blob known to be stored, or the state at power-on: what a failed save rolls back to. */
  #committed: Uint8Array | undefined;
  #waiters: Waiter[] = [];
  #unavailable = false;

  /**
   * @param storage - where blobs go; undefined: nothing is ever saved
   * @param snapshot - encodes the current state (called when a save starts, not when marked)
   * @param restore - replaces the in-memory state with a stored blob (after a failed save)
   */
  constructor(storage: Storage | undefined, snapshot: () => Uint8Array, restore: (blob: Uint8Array) => void) {
    this.#storage = storage;
    this.#snapshot = snapshot;
    this.#restore = restore;
  }

  /** Whether there is a storage to save to. */
  get enabled(): boolean {
    return this.#storage !== undefined;
  }

  /**
   * False from a failed save until a later save succeeds: the TPM cannot update its NV now. A
   * dictionary-attack-protected authorization is then refused before its value is checked
   * (TPM_RC_NV_UNAVAILABLE), since a failure could not be counted.
   */
  get available(): boolean {
    return !this.#unavailable;
  }

  /** Sequence number of the newest change (grows by one per {@link Commits.markDirty}). */
  get seq(): number {
    return this.#seq;
  }

  /**
   * The state a failed save returns to, taken at power-on (the loaded blob, or a new TPM's
   * first state).
   *
   * @param blob - the encoded state
   */
  setBaseline(blob: Uint8Array): void {
    if (this.#storage) this.#committed = blob;
  }

  /** The state changed: save it soon (in a microtask, together with every change before it). */
  markDirty(): void {
    if (!this.#storage) return;
    this.#seq++;
    this.#dirty = true;
    if (!this.#saving) this.#startSave();
  }

  /**
   * Waits until change `seq` is stored.
   *
   * @param seq - a value of {@link Commits.seq} read after the change
   * @returns true once a blob holding the change is saved; false if its save failed (the change
   *   was then rolled back)
   */
  commit(seq: number): Promise<boolean> {
    if (!this.#storage || this.#storedSeq >= seq) return Promise.resolve(true);
    if (this.#failedSeq >= seq) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#waiters.push({ seq, resolve });
      if (!this.#saving) this.#startSave();
    });
  }

  #settle(): void {
    const keep: Waiter[] = [];
    for (const w of this.#waiters) {
      if (this.#storedSeq >= w.seq) w.resolve(true);
      else if (this.#failedSeq >= w.seq) w.resolve(false);
      else keep.push(w);
    }
    this.#waiters = keep;
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
        const upTo = this.#seq;
        const blob = this.#snapshot();
        try {
          await storage.save(blob);
          this.#storedSeq = upTo;
          this.#committed = blob;
          this.#unavailable = false;
        } catch (e) {
          this.#saveError = e;
          this.#unavailable = true;
          // Every change not stored is discarded, including those made while this save ran
          // (they were built on the failed one): their commands are told, and memory goes back
          // to what storage holds.
          this.#failedSeq = this.#seq;
          this.#dirty = false;
          if (this.#committed) this.#restore(this.#committed);
        }
        this.#settle();
      }
    };
    this.#saving = run().finally(() => {
      this.#saving = undefined;
      // a change that landed after the loop's last check must not wait for the next command
      if (this.#dirty) this.#startSave();
      else this.#settle();
    });
  }

  /**
   * Resolves when every change so far is saved.
   *
   * @throws TpmStateFileError (or the storage's error) if a save failed since the last flush;
   *   the next change retries
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
