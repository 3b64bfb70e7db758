/**
 * The fTPM trusted application with tpmkit's SoftTpm inside: what an OP-TEE build with
 * optee_ftpm (CFG_EARLY_TA or a `<uuid>.ta` on the REE file system) gives the TEE. Device models
 * may not import the SoftTpm, so the composition lives here.
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import type { TaDefinition } from "../bus/tee/ta.js";
import { createFtpmTa } from "../devices/optee/ftpm-ta.js";
import { SoftTpm } from "../softtpm/softtpm.js";

/** Options of {@link ftpmTa}. */
export interface FtpmTaConfig {
  /**
   * Early TA (linked into the OP-TEE image: loading needs no supplicant, NV still does with REE
   * FS) or REE-loaded (tee-supplicant's LOAD_TA). Default true.
   */
  early?: boolean;
  /** CFG_FTPM_TA_TEE_STORAGE_ID: "ree" or "rpmb"; absent: TEE_STORAGE_PRIVATE, the TEE's default. */
  storage?: "ree" | "rpmb";
  /** Seed of the SoftTpm's random source (deterministic tests); absent: system randomness. */
  seed?: Uint8Array | string;
  /** CFG_FTPM_EMULATE_PPI (default false). */
  emulatePpi?: boolean;
}

/**
 * The fTPM TA (UUID bc50d971-d4c9-42c4-82cb-343fb7f37896) over a SoftTpm whose NV lives on the
 * TA's secure storage as 512-byte objects 0x54504D00+i. Give it to the TEE model's TA list.
 *
 * @example
 * ```ts
 * const ta = ftpmTa({ early: true, storage: "ree" });
 * ```
 *
 * @param options - early or REE-loaded, storage id, seed, PPI emulation
 * @returns the TA definition
 * @throws TpmArgumentError if an option is malformed
 */
export function ftpmTa(options: FtpmTaConfig = {}): TaDefinition {
  if (options === null || typeof options !== "object") throw new TpmArgumentError("ftpmTa: options must be an object");
  if (options.early !== undefined && typeof options.early !== "boolean") throw new TpmArgumentError("ftpmTa: early must be a boolean");
  const seed = options.seed;
  return createFtpmTa({
    early: options.early ?? true,
    ...(options.storage !== undefined ? { storage: options.storage } : {}),
    ...(options.emulatePpi !== undefined ? { emulatePpi: options.emulatePpi } : {}),
    engine: (storage) => new SoftTpm(seed !== undefined ? { storage, seed } : { storage }),
  });
}
