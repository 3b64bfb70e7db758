/**
 * Hashing: TPM2_Hash (TPM 2.0 Part 3 §15.4) and the hash and event sequences of Part 3 §17
 * (TPM2_HashSequenceStart, TPM2_SequenceUpdate, TPM2_SequenceComplete,
 * TPM2_EventSequenceComplete, TPM2_HMAC_Start), with TPMT_TK_HASHCHECK tickets.
 *
 * @packageDocumentation
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { concatBytes, u32be } from "../../wire/bytes.js";
import { TPM_ALG, TPM_CC, TPM_GENERATED_VALUE, TPM_RC, TPM_RH, TPM_ST, TPMA_OBJECT } from "../../wire/constants.js";
import { trimZeros } from "../engine/auth.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { SOFTTPM_MAX_BUFFER } from "../engine/limits.js";
import { allocTransient, findObject, persistentCopies } from "../engine/objects.js";
import { savableHmac } from "../engine/contexts.js";
import { H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { AUTH_MAX } from "../state.js";
import { HASH_IMPLS, type HashImpl, hashImpl } from "../tables.js";
import { checkExtendLocality, extendBank, extendTargets } from "./pcr.js";

/** Does `d` start with TPM_GENERATED_VALUE? Such data gets no ticket (Part 3 §15.4). */
function startsWithGenerated(d: Uint8Array): boolean {
  return d.length >= 4 && ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0 === TPM_GENERATED_VALUE;
}

/**
 * Whether data hashed by a sequence may be given a ticket (libtpms TicketIsSafe; swtpm 0.7.1,
 * measured): at least 4 bytes, and not starting with TPM_GENERATED_VALUE.
 */
function ticketIsSafe(d: Uint8Array): boolean {
  return d.length >= 4 && !startsWithGenerated(d);
}

/**
 * Writes a TPMT_TK_HASHCHECK: HMAC(proof(hierarchy), TPM_ST_HASHCHECK ‖ digest), Part 2
 * §10.7.6, with the context hash (SHA-512, as swtpm) so tickets have the size a real TPM gives;
 * a NULL ticket for TPM_RH_NULL.
 */
function ticket(t: Engine, out: Out, hierarchy: number, digest: Uint8Array): void {
  out.u16(TPM_ST.HASHCHECK);
  out.u32(hierarchy);
  if (hierarchy === TPM_RH.NULL) {
    out.u16(0);
    return;
  }
  const proof = sha512(concatBytes(t.ps.proofSeed, u32be(hierarchy)));
  out.tpm2b(hmac(sha512, proof, concatBytes(Uint8Array.of(TPM_ST.HASHCHECK >>> 8, TPM_ST.HASHCHECK & 0xff), digest)));
}

/** Reads parameter `n`, a TPMI_RH_HIERARCHY+ (owner, endorsement, platform or null). */
function hierarchyParam(inp: In, n: number): number {
  inp.param = n;
  const hier = inp.u32();
  if (hier !== TPM_RH.OWNER && hier !== TPM_RH.ENDORSEMENT && hier !== TPM_RH.PLATFORM && hier !== TPM_RH.NULL) throw new Rc(P(TPM_RC.VALUE, n));
  return hier;
}

/** TPM2_Hash, Part 3 §15.4. */
function hash(t: Engine, inp: In, out: Out): void {
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
  inp.param = 2;
  const a = hashImpl(inp.u16());
  if (!a) throw new Rc(P(TPM_RC.HASH, 2));
  const hier = hierarchyParam(inp, 3);
  inp.done();
  const d = a.hash(data);
  out.tpm2b(d);
  ticket(t, out, startsWithGenerated(data) ? TPM_RH.NULL : hier, d);
}

/** TPM2_HashSequenceStart, Part 3 §17.3. */
function hashSequenceStart(t: Engine, inp: In): void {
  const auth = inp.tpm2b(AUTH_MAX);
  inp.param = 2;
  const algId = inp.u16();
  const a = algId === TPM_ALG.NULL ? undefined : hashImpl(algId);
  if (algId !== TPM_ALG.NULL && !a) throw new Rc(P(TPM_RC.HASH, 2));
  inp.done();
  const handle = allocTransient(t); // TPM_RC_OBJECT_MEMORY when the object slots are full
  t.sequences.set(handle, {
    handle,
    alg: a,
    hashers: a ? [a.create()] : HASH_IMPLS.map((x) => x.create()),
    authValue: trimZeros(auth).slice(),
  });
  t.rHandle = handle;
}

/**
 * TPM2_HMAC_Start, Part 3 §17.2: an HMAC sequence keyed by a loaded keyed-hash object that is
 * unrestricted and has `sign` (checked in the order of the reference code, HMAC_Start.c:
 * TPM_RC_TYPE, TPM_RC_ATTRIBUTES, TPM_RC_KEY on the handle), with the key's scheme hash, or
 * hashAlg when the scheme is NULL (TPM_RC_VALUE + P2 when neither, or both and they differ).
 * SequenceComplete of an HMAC sequence returns the HMAC with a NULL ticket (Part 3 §17.5).
 */
function hmacStart(t: Engine, h: number[], inp: In): void {
  const auth = inp.tpm2b(AUTH_MAX);
  inp.param = 2;
  const inHash = inp.u16();
  // hashAlg is a TPMI_ALG_MAC_SCHEME+ (Part 3 §17.2, rev 1.59): a hash, TPM_ALG_CMAC or NULL;
  // anything else is TPM_RC_SYMMETRIC + P2 (swtpm 0.7.1, measured)
  if (inHash !== TPM_ALG.NULL && inHash !== TPM_ALG.CMAC && !hashImpl(inHash)) throw new Rc(P(TPM_RC.SYMMETRIC, 2));
  inp.done();
  const key = findObject(t, h[0]!)!;
  if (key.pub.type !== TPM_ALG.KEYEDHASH) throw new Rc(H(TPM_RC.TYPE, 1));
  if (key.pub.objectAttributes & TPMA_OBJECT.RESTRICTED) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  if (!(key.pub.objectAttributes & TPMA_OBJECT.SIGN_ENCRYPT)) throw new Rc(H(TPM_RC.KEY, 1));
  const own = key.pub.scheme.scheme === TPM_ALG.NULL ? TPM_ALG.NULL : key.pub.scheme.hashAlg;
  const alg = own === TPM_ALG.NULL ? inHash : inHash === TPM_ALG.NULL || inHash === own ? own : TPM_ALG.NULL;
  const a = hashImpl(alg); // CMAC with a keyed-hash key: TPM_RC_VALUE + P2 (swtpm 0.7.1, measured)
  if (!a) throw new Rc(P(TPM_RC.VALUE, 2));
  // TPM_RC_OBJECT_MEMORY when the slots are full; a persistent key's copy takes one while the
  // command runs (swtpm 0.7.1, measured: 0x80000001 for a persistent key with nothing loaded)
  const handle = allocTransient(t, persistentCopies(h[0]!));
  t.sequences.set(handle, {
    handle,
    alg: a,
    hashers: [savableHmac(a, key.sensitive.sensitive)], // savable: TPM2_ContextSave of an HMAC sequence
    authValue: trimZeros(auth).slice(),
    ticketSafe: false, // an HMAC is never given a ticket
  });
  t.rHandle = handle;
}

/** TPM2_SequenceUpdate, Part 3 §17.4. */
function sequenceUpdate(t: Engine, h: number[], inp: In): void {
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
  inp.done();
  const seq = t.sequences.get(h[0]!)!;
  seq.ticketSafe ??= ticketIsSafe(data);
  for (const x of seq.hashers) x.update(data);
}

/** TPM2_SequenceComplete, Part 3 §17.5. */
function sequenceComplete(t: Engine, h: number[], inp: In, out: Out): void {
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
  const hier = hierarchyParam(inp, 2);
  inp.done();
  const seq = t.sequences.get(h[0]!)!;
  if (!seq.alg) throw new Rc(H(TPM_RC.MODE, 1));
  const x = seq.hashers[0]!;
  x.update(data);
  const d = x.digest();
  t.sequences.delete(seq.handle);
  out.tpm2b(d);
  ticket(t, out, (seq.ticketSafe ?? ticketIsSafe(data)) ? hier : TPM_RH.NULL, d);
}

/** TPM2_EventSequenceComplete, Part 3 §17.6. */
function eventSequenceComplete(t: Engine, h: number[], inp: In, out: Out, locality: number): void {
  const pcr = h[0]!;
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER);
  inp.done();
  const seq = t.sequences.get(h[1]!)!;
  if (seq.alg) throw new Rc(H(TPM_RC.MODE, 2));
  if (pcr !== TPM_RH.NULL) {
    checkExtendLocality(pcr, locality);
    extendTargets(t, pcr);
  }
  t.sequences.delete(seq.handle);
  out.u32(HASH_IMPLS.length);
  HASH_IMPLS.forEach((a, b) => {
    const x = seq.hashers[b]!;
    x.update(data);
    const d = x.digest();
    out.u16(a.alg);
    out.bytes(d);
    if (pcr !== TPM_RH.NULL) extendBank(t, b, pcr, d);
  });
}

/** TPM2_Hash (Part 3 §15.4) and Part 3 §17 in the dispatch table. */
export const hashCommands: CommandEntries = [
  [TPM_CC.Hash, { handles: [], auth: 0, run: (t, _h, i, o) => hash(t, i, o) }],
  [TPM_CC.HashSequenceStart, { handles: [], auth: 0, rHandle: true, run: (t, _h, i) => hashSequenceStart(t, i) }],
  [TPM_CC.HMAC_Start, { handles: ["object"], auth: 1, rHandle: true, run: (t, h, i) => hmacStart(t, h, i) }],
  [TPM_CC.SequenceUpdate, { decrypt: true, handles: ["sequence"], auth: 1, run: (t, h, i) => sequenceUpdate(t, h, i) }],
  [TPM_CC.SequenceComplete, { decrypt: true, encrypt: true, handles: ["sequence"], auth: 1, run: (t, h, i, o) => sequenceComplete(t, h, i, o) }],
  [TPM_CC.EventSequenceComplete, { decrypt: true, handles: ["pcr+null", "sequence"], auth: 2, run: (t, h, i, o, l) => eventSequenceComplete(t, h, i, o, l) }],
];
