/**
 * Policy digests computed offline, as a trial session would (TPM 2.0 Part 1 §19.7, Part 3 §23):
 * the value to put in an object's `authPolicy` or an NV index's policy without a TPM.
 *
 * Each assertion extends the running digest: `policyDigest_new = H(policyDigest_old ‖ TPM_CC ‖ args)`
 * (Part 3 §23.1), with the hash of the session. Assertions that name an entity use PolicyUpdate
 * (Part 3 §23.2.3): `H(H(policyDigest_old ‖ TPM_CC ‖ name) ‖ policyRef)`. Every value is big-endian
 * as on the wire; a Name or policyRef enters without its size field.
 *
 * @packageDocumentation
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { TpmArgumentError } from "../errors/index.js";
import { TpmWriter } from "../wire/buffer.js";
import { TPM_CC } from "../wire/constants.js";
import { HASH_ALGS, toPcrSelects, writePcrSelection, type HashAlgName, type PcrSelection } from "../wire/types.js";

/** The hash algorithms a policy digest can be computed with here. */
export type PolicyHashAlg = "sha1" | "sha256" | "sha384" | "sha512";

const HASHERS: Record<PolicyHashAlg, (b: Uint8Array) => Uint8Array> = { sha1, sha256, sha384, sha512 };

/** TPM_EO, the comparison of TPM2_PolicyNV and TPM2_PolicyCounterTimer. TPM 2.0 Part 2 §6.8. */
export const TPM_EO = {
  EQ: 0x0000,
  NEQ: 0x0001,
  SIGNED_GT: 0x0002,
  UNSIGNED_GT: 0x0003,
  SIGNED_LT: 0x0004,
  UNSIGNED_LT: 0x0005,
  SIGNED_GE: 0x0006,
  UNSIGNED_GE: 0x0007,
  SIGNED_LE: 0x0008,
  UNSIGNED_LE: 0x0009,
  BITSET: 0x000a,
  BITCLEAR: 0x000b,
} as const;

/** PCR values per bank and index, the shape `Tpm.pcrRead` returns. */
export type PolicyPcrValues = Partial<Record<HashAlgName, Record<number, Uint8Array>>>;

function hasherOf(alg: PolicyHashAlg): (b: Uint8Array) => Uint8Array {
  const h = Object.hasOwn(HASHERS, alg) ? HASHERS[alg] : undefined;
  if (!h) throw new TpmArgumentError(`policy: unsupported hash algorithm "${String(alg)}" (supported: ${Object.keys(HASHERS).join(", ")})`);
  return h;
}

function bytesArg(b: unknown, what: string): Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TpmArgumentError(`policy: ${what} must be a Uint8Array, got ${typeof b}`);
  return b;
}

function u16Arg(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new TpmArgumentError(`policy: ${what} must be an integer in 0..65535, got ${v}`);
  return v;
}

/**
 * The digest of selected PCR values as TPM2_PolicyPCR computes it (Part 3 §23.7): the hash of the
 * values concatenated in selection order (banks as listed, PCRs ascending in each).
 *
 * @param hashAlg - The policy session's hash.
 * @param selection - The PCRs, e.g. `{ sha256: [0, 7] }`.
 * @param values - Their values, e.g. from `Tpm.pcrRead`.
 * @throws `TpmArgumentError` when a selected PCR has no value.
 */
export function pcrDigest(hashAlg: PolicyHashAlg, selection: PcrSelection, values: PolicyPcrValues): Uint8Array {
  const h = hasherOf(hashAlg);
  const w = new TpmWriter();
  for (const s of toPcrSelects(selection)) {
    const bank = Object.entries(HASH_ALGS).find(([, v]) => v.id === s.hash)![0] as HashAlgName;
    for (const pcr of [...new Set(s.pcrs)].sort((a, b) => a - b)) {
      const v = values[bank]?.[pcr];
      if (!(v instanceof Uint8Array)) throw new TpmArgumentError(`policy: no value for ${bank} PCR ${pcr}`);
      w.bytes(v);
    }
  }
  return h(w.finish());
}

/**
 * A policy digest, immutable: every assertion returns a new value. Start one with {@link policy}.
 *
 * @example
 * ```ts
 * import { policy, TPM_CC } from "tpmkit";
 * // seal to PCR 7 and allow only TPM2_Unseal
 * const p = policy("sha256").pcr({ sha256: [7] }, { sha256: { 7: pcr7 } }).commandCode(TPM_CC.Unseal);
 * console.log(p.hex);
 * ```
 */
export class PolicyDigest {
  /** The session hash. */
  readonly hashAlg: PolicyHashAlg;
  /** The policy digest so far. */
  readonly digest: Uint8Array;

  /**
   * @param hashAlg - The session hash.
   * @param digest - The starting digest (default all zeros, as TPM2_StartAuthSession sets it, Part 3 §11.1).
   */
  constructor(hashAlg: PolicyHashAlg, digest?: Uint8Array) {
    hasherOf(hashAlg);
    const size = HASH_ALGS[hashAlg].size;
    if (digest !== undefined && (!(digest instanceof Uint8Array) || digest.length !== size)) {
      throw new TpmArgumentError(`policy: a ${hashAlg} policy digest is ${size} bytes`);
    }
    this.hashAlg = hashAlg;
    this.digest = digest ? new Uint8Array(digest) : new Uint8Array(size);
  }

  /** Lowercase hex of {@link PolicyDigest.digest}. */
  get hex(): string {
    return Array.from(this.digest, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  #extend(cc: number, ...args: Uint8Array[]): PolicyDigest {
    const w = new TpmWriter().bytes(this.digest).u32(cc);
    for (const a of args) w.bytes(a);
    return new PolicyDigest(this.hashAlg, hasherOf(this.hashAlg)(w.finish()));
  }

  /** PolicyUpdate, Part 3 §23.2.3: H(H(old ‖ cc ‖ name) ‖ policyRef). */
  #update(cc: number, name: Uint8Array, policyRef: Uint8Array): PolicyDigest {
    const h = hasherOf(this.hashAlg);
    const inner = this.#extend(cc, name).digest;
    const w = new TpmWriter().bytes(inner).bytes(policyRef);
    return new PolicyDigest(this.hashAlg, h(w.finish()));
  }

  /**
   * TPM2_PolicyPCR, Part 3 §23.7: `H(old ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ pcrDigest)`.
   *
   * @param selection - The PCRs, e.g. `{ sha256: [0, 7] }` (marshalled as Part 2 §10.9.7, sizeofSelect 3 or more).
   * @param digestOrValues - The PCR digest ({@link pcrDigest}) or the PCR values to compute it from.
   */
  pcr(selection: PcrSelection, digestOrValues: Uint8Array | PolicyPcrValues): PolicyDigest {
    const d = digestOrValues instanceof Uint8Array ? digestOrValues : pcrDigest(this.hashAlg, selection, digestOrValues);
    if (d.length !== HASH_ALGS[this.hashAlg].size) throw new TpmArgumentError(`policy: a ${this.hashAlg} PCR digest is ${HASH_ALGS[this.hashAlg].size} bytes, got ${d.length}`);
    const w = new TpmWriter();
    writePcrSelection(w, toPcrSelects(selection));
    return this.#extend(TPM_CC.PolicyPCR, w.finish(), d);
  }

  /** TPM2_PolicyAuthValue, Part 3 §23.17: `H(old ‖ TPM_CC_PolicyAuthValue)`. */
  authValue(): PolicyDigest {
    return this.#extend(TPM_CC.PolicyAuthValue);
  }

  /** TPM2_PolicyPassword, Part 3 §23.18: the same digest as PolicyAuthValue (`TPM_CC_PolicyAuthValue`). */
  password(): PolicyDigest {
    return this.#extend(TPM_CC.PolicyAuthValue);
  }

  /** TPM2_PolicyCommandCode, Part 3 §23.11: `H(old ‖ TPM_CC_PolicyCommandCode ‖ code)`. */
  commandCode(code: number): PolicyDigest {
    if (!Number.isInteger(code) || code < 0 || code > 0xffffffff) throw new TpmArgumentError(`policy: command code must be a u32, got ${code}`);
    return this.#extend(TPM_CC.PolicyCommandCode, new TpmWriter().u32(code).finish());
  }

  /**
   * TPM2_PolicySecret, Part 3 §23.4: PolicyUpdate(TPM_CC_PolicySecret, authObject's Name, policyRef).
   * TPM2_PolicyTicket with an AUTH_SECRET ticket (Part 3 §23.5) gives the same digest.
   *
   * @param authObjectName - The Name of the object or hierarchy whose authorization is required (a
   *   permanent handle's Name is the handle, 4 bytes).
   */
  secret(authObjectName: Uint8Array, policyRef: Uint8Array = new Uint8Array(0)): PolicyDigest {
    return this.#update(TPM_CC.PolicySecret, bytesArg(authObjectName, "authObject name"), bytesArg(policyRef, "policyRef"));
  }

  /**
   * TPM2_PolicySigned, Part 3 §23.3: PolicyUpdate(TPM_CC_PolicySigned, authObject's Name, policyRef).
   * TPM2_PolicyTicket with an AUTH_SIGNED ticket (Part 3 §23.5) gives the same digest.
   */
  signed(authObjectName: Uint8Array, policyRef: Uint8Array = new Uint8Array(0)): PolicyDigest {
    return this.#update(TPM_CC.PolicySigned, bytesArg(authObjectName, "authObject name"), bytesArg(policyRef, "policyRef"));
  }

  /**
   * TPM2_PolicyOR, Part 3 §23.6: the digest is reset to zeros, then
   * `H(0…0 ‖ TPM_CC_PolicyOR ‖ digest1 ‖ … ‖ digestN)`. As in a trial session, the current digest
   * is not checked against the list (a real session requires it to be one of them).
   */
  or(digests: readonly (Uint8Array | PolicyDigest)[]): PolicyDigest {
    return policyOr(this.hashAlg, digests);
  }

  /**
   * TPM2_PolicyNV, Part 3 §23.9: `H(old ‖ TPM_CC_PolicyNV ‖ args ‖ nvIndex's Name)` with
   * `args = H(operandB ‖ offset ‖ operation)` (offset and operation u16).
   */
  nv(nvIndexName: Uint8Array, operandB: Uint8Array, offset: number, operation: number): PolicyDigest {
    const args = hasherOf(this.hashAlg)(new TpmWriter().bytes(bytesArg(operandB, "operandB")).u16(u16Arg(offset, "offset")).u16(u16Arg(operation, "operation")).finish());
    return this.#extend(TPM_CC.PolicyNV, args, bytesArg(nvIndexName, "nvIndex name"));
  }

  /**
   * TPM2_PolicyAuthorize, Part 3 §23.16: the digest is reset to zeros, then
   * PolicyUpdate(TPM_CC_PolicyAuthorize, keySign's Name, policyRef). The approved policy does not
   * enter the digest (the TPM only checks its ticket); {@link policyAuthorizeAHash} gives what
   * keySign signs.
   */
  authorize(keySignName: Uint8Array, policyRef: Uint8Array = new Uint8Array(0)): PolicyDigest {
    return new PolicyDigest(this.hashAlg).#update(TPM_CC.PolicyAuthorize, bytesArg(keySignName, "keySign name"), bytesArg(policyRef, "policyRef"));
  }

  /** TPM2_PolicyCpHash, Part 3 §23.13: `H(old ‖ TPM_CC_PolicyCpHash ‖ cpHashA)`. */
  cpHash(cpHashA: Uint8Array): PolicyDigest {
    return this.#extend(TPM_CC.PolicyCpHash, bytesArg(cpHashA, "cpHashA"));
  }

  /** TPM2_PolicyNameHash, Part 3 §23.14: `H(old ‖ TPM_CC_PolicyNameHash ‖ nameHash)`. */
  nameHash(nameHash: Uint8Array): PolicyDigest {
    return this.#extend(TPM_CC.PolicyNameHash, bytesArg(nameHash, "nameHash"));
  }

  /**
   * TPM2_PolicyCounterTimer, Part 3 §23.10: `H(old ‖ TPM_CC_PolicyCounterTimer ‖ args)` with
   * `args = H(operandB ‖ offset ‖ operation)` (offset and operation u16), operandB compared with
   * the bytes of TPMS_TIME_INFO at offset (time 0, clock 8, resetCount 16, restartCount 20, safe 24).
   *
   * @throws `TpmArgumentError` when operandB from offset does not fit in the 25 bytes of
   *   TPMS_TIME_INFO (the TPM refuses it even in a trial session) or operation is not a TPM_EO.
   */
  counterTimer(operandB: Uint8Array, offset: number, operation: number): PolicyDigest {
    bytesArg(operandB, "operandB");
    u16Arg(offset, "offset");
    if (offset + operandB.length > 25) throw new TpmArgumentError(`policy: operandB at offset ${offset} runs past TPMS_TIME_INFO (25 bytes)`);
    if (!Number.isInteger(operation) || operation < 0 || operation > TPM_EO.BITCLEAR) throw new TpmArgumentError(`policy: operation must be a TPM_EO (0..11), got ${operation}`);
    const args = hasherOf(this.hashAlg)(new TpmWriter().bytes(operandB).u16(offset).u16(operation).finish());
    return this.#extend(TPM_CC.PolicyCounterTimer, args);
  }

  /**
   * TPM2_PolicyDuplicationSelect, Part 3 §23.15: `H(old ‖ TPM_CC_PolicyDuplicationSelect ‖
   * [objectName] ‖ newParentName ‖ includeObject)`, objectName only when `includeObject`
   * (includeObject one byte, YES 1 / NO 0). Without it the policy lets any object with this
   * policy be duplicated to newParentName.
   */
  duplicationSelect(objectName: Uint8Array, newParentName: Uint8Array, includeObject = false): PolicyDigest {
    bytesArg(objectName, "objectName");
    bytesArg(newParentName, "newParentName");
    return this.#extend(TPM_CC.PolicyDuplicationSelect, includeObject ? objectName : new Uint8Array(0), newParentName, Uint8Array.of(includeObject ? 1 : 0));
  }

  /**
   * TPM2_PolicyAuthorizeNV, Part 3 §23.22: the digest is reset to zeros, then
   * `H(0…0 ‖ TPM_CC_PolicyAuthorizeNV ‖ nvIndexName)`. The policy the index approves (a TPMT_HA,
   * the hash algorithm then the digest, at its start) does not enter the digest.
   */
  authorizeNV(nvIndexName: Uint8Array): PolicyDigest {
    return new PolicyDigest(this.hashAlg).#extend(TPM_CC.PolicyAuthorizeNV, bytesArg(nvIndexName, "nvIndex name"));
  }

  /** TPM2_PolicyPhysicalPresence, Part 3 §23.12: `H(old ‖ TPM_CC_PolicyPhysicalPresence)`. */
  physicalPresence(): PolicyDigest {
    return this.#extend(TPM_CC.PolicyPhysicalPresence);
  }
}

/**
 * Starts a policy digest offline (all zeros, as a fresh trial session), Part 3 §23.
 *
 * @param hashAlg - The session hash (default `"sha256"`).
 * @throws `TpmArgumentError` for a hash this module does not compute.
 *
 * @example
 * ```ts
 * import { policy, TPM_CC } from "tpmkit";
 * const authPolicy = policy("sha256").authValue().commandCode(TPM_CC.Unseal).digest;
 * ```
 */
export function policy(hashAlg: PolicyHashAlg = "sha256"): PolicyDigest {
  return new PolicyDigest(hashAlg);
}

/**
 * TPM2_PolicyOR's digest, Part 3 §23.6: `H(0…0 ‖ TPM_CC_PolicyOR ‖ digest1 ‖ … ‖ digestN)`.
 *
 * @param hashAlg - The session hash.
 * @param digests - 2 to 8 branch digests (TPML_DIGEST with at least two entries, Part 3 §23.6), each of the hash's size.
 * @throws `TpmArgumentError` for fewer than 2 or more than 8 digests, or a digest of the wrong size.
 */
export function policyOr(hashAlg: PolicyHashAlg, digests: readonly (Uint8Array | PolicyDigest)[]): PolicyDigest {
  const h = hasherOf(hashAlg);
  const size = HASH_ALGS[hashAlg].size;
  if (!Array.isArray(digests) || digests.length < 2 || digests.length > 8) throw new TpmArgumentError(`policy: PolicyOR takes 2 to 8 digests, got ${Array.isArray(digests) ? digests.length : typeof digests}`);
  const w = new TpmWriter().bytes(new Uint8Array(size)).u32(TPM_CC.PolicyOR);
  for (const d of digests) {
    const b = d instanceof PolicyDigest ? d.digest : d;
    if (!(b instanceof Uint8Array) || b.length !== size) throw new TpmArgumentError(`policy: every PolicyOR branch must be a ${size}-byte ${hashAlg} digest`);
    w.bytes(b);
  }
  return new PolicyDigest(hashAlg, h(w.finish()));
}

/**
 * What the keySign key signs for TPM2_PolicyAuthorize (Part 3 §23.16): `aHash = H(approvedPolicy ‖ policyRef)`,
 * checked by TPM2_VerifySignature to produce the ticket.
 */
export function policyAuthorizeAHash(hashAlg: PolicyHashAlg, approvedPolicy: Uint8Array, policyRef: Uint8Array = new Uint8Array(0)): Uint8Array {
  return hasherOf(hashAlg)(new TpmWriter().bytes(bytesArg(approvedPolicy, "approvedPolicy")).bytes(bytesArg(policyRef, "policyRef")).finish());
}
