/**
 * The Name of an entity (TPM 2.0 Part 1 §16): an object's nameAlg ‖ H(public), an NV index's
 * nameAlg ‖ H(TPMS_NV_PUBLIC), any other handle's own four bytes. Used by authorization (cpHash,
 * rpHash) and by audit; in its own module so that both can use it without importing each other.
 *
 * @packageDocumentation
 */
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_HT } from "../../wire/constants.js";
import { hashImpl } from "../tables.js";
import type { Engine } from "./engine.js";
import { EMPTY, nvPublicBytes } from "./marshal.js";
import { findObject } from "./objects.js";

/**
 * The Name of a handle for cpHash (Part 1 §16): the handle itself, nameAlg ‖ H(public) for NV,
 * empty for a sequence object.
 */
export function nameOf(t: Engine, h: number): Uint8Array {
  // an object's Name is nameAlg ‖ H(public); a sequence object's nameAlg is TPM_ALG_NULL: its
  // Name is empty (ESYS and libtpms agree)
  if (h >>> 24 === TPM_HT.TRANSIENT || h >>> 24 === TPM_HT.PERSISTENT) return findObject(t, h)?.name ?? EMPTY;
  if (h >>> 24 === TPM_HT.NV_INDEX) {
    const nv = t.nv(h);
    if (nv) {
      const a = hashImpl(nv.nameAlg)!;
      return concatBytes(Uint8Array.of(nv.nameAlg >>> 8, nv.nameAlg & 0xff), a.hash(nvPublicBytes(nv)));
    }
  }
  return u32be(h);
}
