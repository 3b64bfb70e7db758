/**
 * Friendly names for TPM 2.0 values used by the typed API: hash algorithms, hierarchies,
 * PCR selections. TPM 2.0 Part 2 §6.3 (TPM_ALG_ID), §7.4 (TPM_RH), §10.6 (TPMS_PCR_SELECTION).
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmFormatError } from "../errors/index.js";
import type { TpmReader, TpmWriter } from "./buffer.js";
import { TPM_ALG, TPM_RH } from "./constants.js";

/** Hash algorithms by name, with their TPM_ALG_ID and digest size. */
export const HASH_ALGS = {
  sha1: { id: TPM_ALG.SHA1, size: 20 },
  sha256: { id: TPM_ALG.SHA256, size: 32 },
  sha384: { id: TPM_ALG.SHA384, size: 48 },
  sha512: { id: TPM_ALG.SHA512, size: 64 },
  sm3_256: { id: TPM_ALG.SM3_256, size: 32 },
  sha3_256: { id: TPM_ALG.SHA3_256, size: 32 },
  sha3_384: { id: TPM_ALG.SHA3_384, size: 48 },
  sha3_512: { id: TPM_ALG.SHA3_512, size: 64 },
} as const;

/** A hash algorithm name. */
export type HashAlgName = keyof typeof HASH_ALGS;

const HASH_BY_ID = /* @__PURE__ */ new Map<number, HashAlgName>(/* @__PURE__ */ Object.entries(HASH_ALGS).map(([k, v]) => [v.id, k as HashAlgName]));

/** The name of a hash TPM_ALG_ID, or undefined. */
export function hashName(id: number): HashAlgName | undefined {
  return HASH_BY_ID.get(id);
}

/** TPM_ALG_ID of a hash given by name or number. */
export function hashId(alg: HashAlgName | number): number {
  if (typeof alg === "number") return alg;
  const a = Object.hasOwn(HASH_ALGS, alg) ? HASH_ALGS[alg] : undefined; // own keys only: not "constructor"
  if (!a) throw new TpmArgumentError(`unknown hash algorithm "${alg}" (known: ${Object.keys(HASH_ALGS).join(", ")})`);
  return a.id;
}

/** Digest size of a hash TPM_ALG_ID. */
export function digestSize(id: number): number {
  const n = HASH_BY_ID.get(id);
  if (!n) throw new TpmArgumentError(`not a known hash algorithm: 0x${id.toString(16)}`);
  return HASH_ALGS[n].size;
}

/** Hierarchies and other permanent handles by name. */
export const HIERARCHIES = {
  owner: TPM_RH.OWNER,
  platform: TPM_RH.PLATFORM,
  endorsement: TPM_RH.ENDORSEMENT,
  lockout: TPM_RH.LOCKOUT,
  null: TPM_RH.NULL,
} as const;

/** A hierarchy by name or handle value. */
export type Hierarchy = keyof typeof HIERARCHIES | number;

/** Handle of a hierarchy. */
export function hierarchyHandle(h: Hierarchy): number {
  if (typeof h === "number") return h >>> 0;
  const v = Object.hasOwn(HIERARCHIES, h) ? HIERARCHIES[h] : undefined; // own keys only: not "toString"
  if (v === undefined) throw new TpmArgumentError(`unknown hierarchy "${h}"`);
  return v;
}

/** PCR indices per bank, e.g. `{ sha256: [0, 1, 2] }`. */
export type PcrSelection = Partial<Record<HashAlgName, readonly number[]>>;

/** One bank's entry of a TPML_PCR_SELECTION as numbers. */
export interface PcrSelect {
  hash: number;
  pcrs: number[];
}

/** Writes a TPML_PCR_SELECTION (sizeofSelect = max(3, bytes needed)). Part 2 §10.9.7. */
export function writePcrSelection(w: TpmWriter, sel: readonly PcrSelect[]): void {
  w.u32(sel.length);
  for (const s of sel) {
    let max = 23;
    for (const p of s.pcrs) {
      if (!Number.isInteger(p) || p < 0 || p > 255) throw new TpmArgumentError(`PCR index out of range: ${p}`);
      if (p > max) max = p;
    }
    const n = (max >> 3) + 1;
    const bits = new Uint8Array(n);
    for (const p of s.pcrs) bits[p >> 3]! |= 1 << (p & 7);
    w.u16(s.hash).u8(n).bytes(bits);
  }
}

/** Reads a TPML_PCR_SELECTION (at most 16 banks, sizeofSelect at most 32). */
export function readPcrSelection(r: TpmReader): PcrSelect[] {
  return r.list(
    (rr) => {
      const hash = rr.u16("TPMS_PCR_SELECTION.hash");
      const n = rr.u8("sizeofSelect");
      if (n > 32) throw new TpmFormatError(`sizeofSelect ${n} is larger than any TPM has`);
      const bits = rr.bytesN(n, "pcrSelect");
      const pcrs: number[] = [];
      for (let i = 0; i < n * 8; i++) if (bits[i >> 3]! & (1 << (i & 7))) pcrs.push(i);
      return { hash, pcrs };
    },
    "TPML_PCR_SELECTION",
    16,
  );
}

/** Converts a friendly selection to numbered banks. */
export function toPcrSelects(sel: PcrSelection): PcrSelect[] {
  const out: PcrSelect[] = [];
  for (const [name, pcrs] of Object.entries(sel)) {
    if (!pcrs) continue;
    out.push({ hash: hashId(name as HashAlgName), pcrs: [...pcrs] });
  }
  return out;
}
