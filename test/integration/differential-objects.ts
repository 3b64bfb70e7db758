/**
 * The seeded object-and-session generator of the SoftTpm ↔ swtpm differential test
 * (differential-objects.test.ts), GitHub issue 12: "checked against swtpm with the differential
 * test where outputs are deterministic (extend it to objects and sessions: same templates, same
 * seeds where swtpm allows setting them, masks for what is random)".
 *
 * swtpm's hierarchy seeds cannot be set, so every key a TPM generates differs between the two. The
 * steps therefore come in two kinds:
 *
 * - deterministic ones, compared byte for byte: everything around keys the test brings itself
 *   (LoadExternal of a fixed RSA-2048 / ECC P-256 key, an HMAC key or an AES key with known
 *   sensitive parts, then ReadPublic, Sign RSASSA/HMAC, VerifySignature, RSA_Encrypt with the NULL
 *   scheme, RSA_Decrypt, HMAC, HMAC sequences, EncryptDecrypt(2)), Unseal of data the test sealed,
 *   policy sessions (the policy digest is deterministic: PolicyGetDigest is compared), handles,
 *   slot exhaustion, and every error path;
 * - TPM-generated keys (CreatePrimary, Create, CreateLoaded, Load, ObjectChangeAuth, ContextSave),
 *   whose responses are compared with the random parts masked by the step itself
 *   ({@link ObjStep.mask}): key material (TPMT_PUBLIC.unique), the private blob, names, creation
 *   hashes and ticket HMACs are blanked, their sizes and everything else compared.
 *
 * Where a command must carry what one TPM answered before (Load of the private blob that TPM
 * created, ContextLoad of its own context blob, VerifySignature of its own signature, an
 * authPolicy read from its own trial session), the step has a second frame for SoftTpm
 * ({@link ObjStep.soft}) built from SoftTpm's earlier answer; everything else is the same bytes.
 *
 * Where SoftTpm answers differently from swtpm by mistake, the step that shows it is left out of
 * the mix with a `BUG:` comment holding the reproducer (command bytes and both answers), so that
 * it can be fixed and the step re-enabled; the differences that are intended are listed in the
 * test's KNOWN_DIFFERENCES and KNOWN_ERROR_DIFFERENCES.
 *
 * Byte layouts: TPM 2.0 Part 1 §18 (command header, authorization area), Part 2 (TPMT_PUBLIC
 * §12.2.4, TPMT_SENSITIVE §12.3.2.4, TPMS_CREATION_DATA §15.1, TPMS_CONTEXT §14.5), Part 3 (each
 * command's parameters).
 */
import { createHash } from "node:crypto";
import { TPMA_OBJECT, TPM_ALG, TPM_CC, TPM_RH, TPM_RS, TPM_ST, TPM_SU } from "../../src/wire/constants.js";
import { Prng } from "./differential-gen.js";

// ------------------------------------------------------------------------------------ byte helpers

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const t2b = (b: readonly number[]): number[] => [...u16(b.length), ...b];
const hex = (s: string): number[] => Array.from(Buffer.from(s, "hex"));
/** Big-endian u16 / u32 of a response. */
export const u16at = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
export const u32at = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
/** Response code of a response (-1 for a frame shorter than a header). */
export const rcOf = (rsp: Uint8Array): number => (rsp.length >= 10 ? u32at(rsp, 6) : -1);

function frame(tag: number, cc: number, body: readonly number[]): Uint8Array {
  return Uint8Array.from([...u16(tag), ...u32(10 + body.length), ...u32(cc), ...body]);
}
/** A command without sessions. */
function plain(cc: number, body: readonly number[] = []): Uint8Array {
  return frame(TPM_ST.NO_SESSIONS, cc, body);
}
/** A session of the authorization area: a password (TPM_RS_PW) or a policy session handle with a cleartext password (PolicyPassword) or none. */
interface Auth {
  handle: number;
  value: readonly number[];
  attrs?: number;
}
const pw = (value: readonly number[] = []): Auth => ({ handle: TPM_RS.PW, value });
/** A command with one session per entry of `auths` (empty nonceCaller). TPM 2.0 Part 1 §18.7. */
function authed(cc: number, handles: readonly number[], auths: readonly Auth[], params: readonly number[] = []): Uint8Array {
  const area = auths.flatMap((a) => [...u32(a.handle), ...u16(0), a.attrs ?? 1, ...t2b(a.value)]);
  return frame(TPM_ST.SESSIONS, cc, [...handles.flatMap(u32), ...u32(area.length), ...area, ...params]);
}

// ---------------------------------------------------------------------------- fixed test material

/**
 * A fixed RSA-2048 key (e = 65537) and P-256 key, generated once with node:crypto for this test,
 * and an ECDSA-SHA256 signature by the P-256 key over ECC_DIGEST. Fixed so that a seed always
 * gives the same frames.
 */
const RSA_N = hex(
  "b926aac9369b3c4b28c7acee81d44c7bca37bf991a14674d7130cb0b5635f0bab80c784b4f80382073995989c8917a2f256f235284fb71094a28819d502a076ea53b08b35d3fe0d8264bfd51a6b9c723d904d55e46a066b647183b70cc834d0455410821114a90cc6d9e9e38467b081fb4af0309eb0bf7a710852024807323c0d73f559a0d4aef025c6bf53e5427684bc06240825a059fd0bd3f6e0b31e9533b514a5b9840999944af2fd20736c1bb3318b1172bd8af67b4ca99de4733aa4def6803f9cb2557f97fb8e95782f12b18728fdd631f53c467458b3e37d4a773a18286d07e778f60dcce558cfb534991b001654c28ef4b7884a0ede55985c63e9a17",
);
const RSA_P = hex(
  "efb6fc044aab422413eac5dc7bdb542109ecd2813dd6f6b40f92a0a2d53d129dfb0ebf1cd65b5f0affad3f21e2324750a3c8389ce66a59c6eaf08160f3e3e35e50e5980d362ae3b1b155266b895159a05d6100191482ed83a8c785f805cb6e723cc223cf4c5beb99d42b258713985e9f45962abf6a42e15c14d1e7419c389c99",
);
const ECC_D = hex("a122f1999158bc0e405901edbaa416165ec0d9b2c50a675a3054821b6fe6e40b");
const ECC_X = hex("1e25a2b5e9b52c57d4b44c736c9d9d81f32856d62beef032606893cbb644bb9d");
const ECC_Y = hex("e8f2abe7721a66551d42f68670d1e5715bfc1c6b9bb19bfb2f2909129ea42ed1");
const ECC_DIGEST = hex("494d3a6a9f81904bccf6c0b04a793f84a5dd6cdb8ca38b13378f4810a01afd31");
const ECC_SIG_R = hex("37ca3efa85cb419c9faa344ebd9d684160c16f6d6b60957bc7e89b4b745d4c6c");
const ECC_SIG_S = hex("5a43b1796e88d5bffde10e9d0eb85ddd2f8a3b6d7440533929df049569173e8f");

/** m^65537 mod n for the fixed RSA key, as 256 big-endian bytes (a cipher text the TPM decrypts deterministically). */
function rsaPublicOp(m: readonly number[]): number[] {
  const big = (b: readonly number[]): bigint => BigInt("0x" + (Buffer.from(b).toString("hex") || "0"));
  const n = big(RSA_N);
  let base = big(m) % n;
  let result = 1n;
  for (let e = 65537n; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * base) % n;
    base = (base * base) % n;
  }
  return hex(result.toString(16).padStart(512, "0"));
}

const HASH_NAME: Record<number, string> = { [TPM_ALG.SHA1]: "sha1", [TPM_ALG.SHA256]: "sha256", [TPM_ALG.SHA384]: "sha384", [TPM_ALG.SHA512]: "sha512" };
const DIGEST_SIZE: Record<number, number> = { [TPM_ALG.SHA1]: 20, [TPM_ALG.SHA256]: 32, [TPM_ALG.SHA384]: 48, [TPM_ALG.SHA512]: 64 };
const H = (alg: number, ...parts: (readonly number[])[]): number[] => Array.from(createHash(HASH_NAME[alg]!).update(Uint8Array.from(parts.flat())).digest());

// ---------------------------------------------------------------------------------- templates

const A = TPMA_OBJECT;
const FIXED = A.FIXEDTPM | A.FIXEDPARENT;
const NULL_ALG = TPM_ALG.NULL;
const AES = TPM_ALG.AES;
const CFB = TPM_ALG.CFB;
const TPM_ECC_NIST_P256 = 0x0003;

interface Template {
  type: number;
  nameAlg?: number;
  attrs: number;
  policy?: readonly number[];
  /** the parameters (TPMU_PUBLIC_PARMS) as bytes */
  parms: readonly number[];
  /** the unique field as bytes (TPMU_PUBLIC_ID) */
  unique?: readonly number[];
}

/** TPM2B_PUBLIC of a template. TPM 2.0 Part 2 §12.2.4–12.2.5. */
function pub(t: Template): number[] {
  const emptyUnique = t.type === TPM_ALG.ECC ? [...u16(0), ...u16(0)] : u16(0);
  return t2b([...u16(t.type), ...u16(t.nameAlg ?? TPM_ALG.SHA256), ...u32(t.attrs), ...t2b(t.policy ?? []), ...t.parms, ...(t.unique ?? emptyUnique)]);
}

const symAes128Cfb = [...u16(AES), ...u16(128), ...u16(CFB)];
const T = {
  rsaStorage: (): Template => ({ type: TPM_ALG.RSA, attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.RESTRICTED | A.DECRYPT, parms: [...symAes128Cfb, ...u16(NULL_ALG), ...u16(2048), ...u32(0)] }),
  rsaSign: (): Template => ({ type: TPM_ALG.RSA, attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.SIGN_ENCRYPT, parms: [...u16(NULL_ALG), ...u16(TPM_ALG.RSASSA), ...u16(TPM_ALG.SHA256), ...u16(2048), ...u32(0)] }),
  eccStorage: (): Template => ({ type: TPM_ALG.ECC, attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.RESTRICTED | A.DECRYPT, parms: [...symAes128Cfb, ...u16(NULL_ALG), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)] }),
  eccSign: (): Template => ({ type: TPM_ALG.ECC, attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.SIGN_ENCRYPT, parms: [...u16(NULL_ALG), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)] }),
  hmacKey: (hash: number = TPM_ALG.SHA256): Template => ({ type: TPM_ALG.KEYEDHASH, attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.SIGN_ENCRYPT, parms: [...u16(TPM_ALG.HMAC), ...u16(hash)] }),
  sealed: (attrs: number = FIXED | A.USERWITHAUTH | A.NODA, policy: readonly number[] = []): Template => ({ type: TPM_ALG.KEYEDHASH, attrs, policy, parms: u16(NULL_ALG) }),
  aes: (bits = 128, mode: number = CFB): Template => ({ type: TPM_ALG.SYMCIPHER, attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.NODA | A.DECRYPT | A.SIGN_ENCRYPT, parms: [...u16(AES), ...u16(bits), ...u16(mode)] }),
};

/** TPM2B_SENSITIVE_CREATE. TPM 2.0 Part 2 §12.1.15–12.1.16. */
const sensCreate = (auth: readonly number[] = [], data: readonly number[] = []): number[] => t2b([...t2b(auth), ...t2b(data)]);
/** An empty TPML_PCR_SELECTION, or one bank with the given PCRs. */
function pcrSel(hash?: number, pcrs: readonly number[] = []): number[] {
  if (hash === undefined) return u32(0);
  const bits = [0, 0, 0];
  for (const p of pcrs) bits[p >> 3]! |= 1 << (p & 7);
  return [...u32(1), ...u16(hash), 3, ...bits];
}

// --------------------------------------------------------------------------------------- masks

/** A byte range [from, to) to blank out. */
export type Blank = [from: number, to: number];

/** Start of the response parameters: after the header, `handles` response handles and, with sessions, parameterSize. */
export function paramStart(rsp: Uint8Array, handles: number): number {
  return 10 + 4 * handles + (u16at(rsp, 0) === TPM_ST.SESSIONS ? 4 : 0);
}

/** The contents of the TPM2B at `p` (its size stays compared); returns the blank and the offset after it. */
function t2bBlank(r: Uint8Array, p: number): [Blank, number] {
  const n = u16at(r, p);
  return [[p + 2, p + 2 + n], p + 2 + n];
}

/** Skips TPMU_PUBLIC_PARMS of `type` starting at p. TPM 2.0 Part 2 §12.2.3.7. */
function skipParms(r: Uint8Array, p: number, type: number): number {
  const sym = (q: number): number => (u16at(r, q) === NULL_ALG ? q + 2 : q + 6);
  const scheme = (q: number): number => {
    const alg = u16at(r, q);
    return alg === NULL_ALG ? q + 2 : alg === TPM_ALG.ECDAA ? q + 6 : q + 4;
  };
  switch (type) {
    case TPM_ALG.RSA:
      return scheme(sym(p)) + 6;
    case TPM_ALG.ECC: {
      const q = scheme(sym(p)) + 2;
      return u16at(r, q) === NULL_ALG ? q + 2 : q + 4;
    }
    case TPM_ALG.KEYEDHASH: {
      const alg = u16at(r, p);
      return alg === NULL_ALG ? p + 2 : alg === TPM_ALG.XOR ? p + 6 : p + 4;
    }
    default:
      return p + 6; // SYMCIPHER: TPMT_SYM_DEF_OBJECT
  }
}

/** Blanks TPMT_PUBLIC.unique (key material, or H(seedValue ‖ sensitive)) of the TPM2B_PUBLIC at p; returns the offset after it. */
function publicBlanks(r: Uint8Array, p: number, out: Blank[]): number {
  const end = p + 2 + u16at(r, p);
  const type = u16at(r, p + 2);
  let q = p + 2 + 8;
  q += 2 + u16at(r, q); // authPolicy
  q = skipParms(r, q, type);
  let [b, next] = t2bBlank(r, q);
  out.push(b);
  if (type === TPM_ALG.ECC) {
    [b, next] = t2bBlank(r, next);
    out.push(b);
  }
  return end;
}

/** TPM2B_CREATION_DATA at p: parentName and parentQualifiedName blanked when the parent is an object (its name is random). TPM 2.0 Part 2 §15.1. */
function creationDataBlanks(r: Uint8Array, p: number, childOfObject: boolean, out: Blank[]): number {
  const end = p + 2 + u16at(r, p);
  let q = p + 2;
  const count = u32at(r, q);
  q += 4;
  for (let i = 0; i < count; i++) q += 3 + r[q + 2]!;
  q += 2 + u16at(r, q); // pcrDigest
  q += 1 + 2; // locality, parentNameAlg
  if (childOfObject) {
    let [b, next] = t2bBlank(r, q);
    out.push(b);
    [b, next] = t2bBlank(r, next);
    out.push(b);
  }
  return end;
}

/** TPMT_TK_CREATION / TPMT_TK_VERIFIED / TPMT_TK_HASHCHECK at p: the HMAC over the TPM's proof is blanked, tag and hierarchy compared. */
function ticketBlanks(r: Uint8Array, p: number, out: Blank[]): number {
  const [b, next] = t2bBlank(r, p + 6);
  out.push(b);
  return next;
}

/**
 * TPM2B_PRIVATE at p, size included: the blob is opaque and its layout implementation-specific.
 * libtpms' blob is 50 bytes longer than SoftTpm's for an empty authValue and 18 bytes longer for
 * a 32-byte one (swtpm 0.7.1, measured): it pads the authValue to the nameAlg digest size and adds
 * 18 bytes of its own; SoftTpm's is integrity HMAC ‖ CFB(TPMT_SENSITIVE) of Part 1 §22–23. See
 * KNOWN_DIFFERENCES in the test.
 */
function privateBlank(r: Uint8Array, p: number): [Blank, number] {
  const n = u16at(r, p);
  return [[p, p + 2 + n], p + 2 + n];
}

/** With a private blob in the answer, the header's responseSize and the parameterSize follow its size: blanked too. */
function sizeFieldBlanks(r: Uint8Array, handles: number): Blank[] {
  const out: Blank[] = [[2, 6]];
  if (u16at(r, 0) === TPM_ST.SESSIONS) out.push([10 + 4 * handles, 14 + 4 * handles]);
  return out;
}

/** The mask of a TPM-generated key's CreatePrimary / Create / CreateLoaded / Load / ReadPublic / ObjectChangeAuth answer. */
const MASK = {
  /** CreatePrimary: handle; outPublic.unique, creationData (compared: a hierarchy parent), creationHash compared, ticket HMAC and name blanked. */
  createPrimary: (r: Uint8Array): Blank[] => {
    const out: Blank[] = [];
    let p = publicBlanks(r, paramStart(r, 1), out);
    p = creationDataBlanks(r, p, false, out);
    p += 2 + u16at(r, p); // creationHash: over creationData, which is deterministic for a primary
    p = ticketBlanks(r, p, out);
    out.push(t2bBlank(r, p)[0]);
    return out;
  },
  /** Create: outPrivate, outPublic.unique, the parent's names in creationData, creationHash, ticket HMAC. */
  create: (r: Uint8Array): Blank[] => {
    const out: Blank[] = sizeFieldBlanks(r, 0);
    let [b, p] = privateBlank(r, paramStart(r, 0));
    out.push(b);
    p = publicBlanks(r, p, out);
    p = creationDataBlanks(r, p, true, out);
    [b, p] = t2bBlank(r, p);
    out.push(b);
    ticketBlanks(r, p, out);
    return out;
  },
  /** CreateLoaded: handle; outPrivate, outPublic.unique, name. */
  createLoaded: (r: Uint8Array): Blank[] => {
    const out: Blank[] = sizeFieldBlanks(r, 1);
    let [b, p] = privateBlank(r, paramStart(r, 1));
    out.push(b);
    p = publicBlanks(r, p, out);
    out.push(t2bBlank(r, p)[0]);
    return out;
  },
  /** Load: handle; name. */
  load: (r: Uint8Array): Blank[] => [t2bBlank(r, paramStart(r, 1))[0]],
  /** ReadPublic of a TPM-generated key: unique, name, qualifiedName. */
  readPublic: (r: Uint8Array): Blank[] => {
    const out: Blank[] = [];
    let p = publicBlanks(r, paramStart(r, 0), out);
    let b: Blank;
    [b, p] = t2bBlank(r, p);
    out.push(b);
    out.push(t2bBlank(r, p)[0]);
    return out;
  },
  /** ReadPublic of a child of a TPM-generated key: unique and name are fixed (LoadExternal), the qualified name is not. */
  firstT2b: (r: Uint8Array): Blank[] => [t2bBlank(r, paramStart(r, 0))[0]],
  /** RSA_Encrypt / Sign(RSASSA) / EncryptDecrypt with a TPM-generated key: the key-dependent output, its size compared. */
  allParams: (r: Uint8Array): Blank[] => [[paramStart(r, 0), r.length]],
  /** VerifySignature with a key of a hierarchy: the ticket HMAC. */
  verified: (r: Uint8Array): Blank[] => {
    const out: Blank[] = [];
    ticketBlanks(r, paramStart(r, 0), out);
    return out;
  },
  /** Hash: the ticket HMAC. */
  hash: (r: Uint8Array): Blank[] => {
    const out: Blank[] = [];
    const p = paramStart(r, 0);
    ticketBlanks(r, p + 2 + u16at(r, p), out);
    return out;
  },
  /** StartAuthSession: nonceTPM. */
  startAuthSession: (r: Uint8Array): Blank[] => [t2bBlank(r, paramStart(r, 1))[0]],
};

/**
 * ContextSave: compared as tag, response code, savedHandle and hierarchy (objectContextShape adds
 * the sequence number, for objects and sessions). The blob (integrity HMAC + encrypted object or session) is
 * implementation-specific in both contents and size (libtpms serializes its OBJECT/SESSION
 * structures). TPM 2.0 Part 2 §14.5.
 */
const contextSaveShape = (r: Uint8Array): string => `${u16at(r, 0).toString(16)} rc ${rcOf(r).toString(16)} savedHandle ${u32at(r, 18).toString(16)} hierarchy ${u32at(r, 22).toString(16)}`;
/** ContextSave of an object or a session: the sequence number is compared too (libtpms counts object contexts from 1 and session contexts from 4). */
const objectContextShape = (r: Uint8Array): string => `${contextSaveShape(r)} sequence ${toHexLocal(r.subarray(10, 18))}`;
const toHexLocal = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/**
 * The response authorization area of a successful ST_SESSIONS response: each session's nonceTPM
 * and HMAC contents are blanked (sizes and attributes compared). Password sessions have both
 * empty. TPM 2.0 Part 1 §18.8–18.9.
 */
export function sessionBlanks(rsp: Uint8Array, handles: number): Blank[] {
  if (u16at(rsp, 0) !== TPM_ST.SESSIONS || rsp.length < 14 + 4 * handles) return [];
  let p = 10 + 4 * handles;
  p += 4 + u32at(rsp, p);
  const out: Blank[] = [];
  while (p + 2 <= rsp.length) {
    const [nb, q] = t2bBlank(rsp, p);
    out.push(nb);
    p = q + 1;
    if (p + 2 > rsp.length) break;
    const [hb, q2] = t2bBlank(rsp, p);
    out.push(hb);
    p = q2;
  }
  return out;
}

// --------------------------------------------------------------------------------------- steps

/** One command of a sequence. */
export interface ObjStep {
  /** What it is (for the failure report). */
  name: string;
  /** The group it counts under in the step mix. */
  group: string;
  /** The frame for swtpm (and for SoftTpm unless `soft` is given). */
  bytes: Uint8Array;
  /** SoftTpm's frame where it must carry what SoftTpm answered earlier (its own private blob, context, signature). */
  soft?: Uint8Array;
  /** Response handles of the command (for the session-area mask). */
  handles: number;
  /** Random parts of a successful answer, blanked in both. */
  mask?: (rsp: Uint8Array) => Blank[];
  /** A successful answer compared in this form instead of byte for byte. */
  compareAs?: (rsp: Uint8Array) => string;
}

/** The two answers to a step: swtpm's (a) and SoftTpm's (b). */
export interface Answers {
  a: Uint8Array;
  b: Uint8Array;
}

type Scenario = Generator<ObjStep, void, Answers>;

/** Counters for the report. */
export interface ObjCounts {
  steps: number;
  groups: Map<string, number>;
  scenarios: Map<string, number>;
}

/** The persistent copy of the ECC P-256 storage parent (the transient one is ObjGenerator's parent, see there why both). */
export const STORAGE_PARENT = 0x81000001;
/** Where the RSA-2048 storage primary is made persistent. */
export const RSA_PARENT = 0x81000002;

const ok = (x: Answers): boolean => rcOf(x.a) === 0 && rcOf(x.b) === 0;
/** The raw bytes of the TPM2B at p (size included). */
const rawT2b = (r: Uint8Array, p: number): number[] => Array.from(r.subarray(p, p + 2 + u16at(r, p)));

/**
 * The generator. `steps()` yields the frames; the test sends each to both TPMs and passes both
 * answers back into the generator (`it.next(answers)`).
 */
export class ObjGenerator {
  readonly rng: Prng;
  readonly counts: ObjCounts = { steps: 0, groups: new Map(), scenarios: new Map() };
  readonly #budget: number;
  /**
   * The ECC P-256 storage parent, kept loaded at its transient handle (0x80000000) for the whole
   * sequence; its persistent copy is STORAGE_PARENT.
   *
   * Load under the persistent copy: libtpms copies the persistent parent into the lowest free
   * object slot for the duration of the command, so the loaded object gets the slot after it
   * (0x80000002 with this parent loaded) and the copy counts against the three slots; SoftTpm
   * numbers it the same way (fixed, src/softtpm/fixes-objects.test.ts).
   */
  #parent = 0x80000000;

  /**
   * @param seed - PRNG seed
   * @param budget - scenarios start while fewer than this many steps were produced
   */
  constructor(seed: number, budget: number) {
    this.rng = new Prng(seed);
    this.#budget = budget;
  }

  /** Sends one step, again after TPM_RC_RETRY (libtpms' first DA-protected authorization after Startup; SoftTpm is configured the same way). */
  *#send(group: string, name: string, bytes: Uint8Array, opts: Partial<Omit<ObjStep, "name" | "group" | "bytes">> = {}): Generator<ObjStep, Answers, Answers> {
    for (let i = 0; ; i++) {
      this.counts.steps++;
      this.counts.groups.set(group, (this.counts.groups.get(group) ?? 0) + 1);
      const x: Answers = yield { name, group, bytes, handles: opts.handles ?? 0, ...opts };
      if (rcOf(x.a) !== 0x922 || i > 1) return x;
    }
  }

  /** Sends a frame built from each TPM's own earlier answer (the same bytes when both builds agree). */
  *#sendBoth(group: string, name: string, prev: Answers, build: (r: Uint8Array) => Uint8Array | undefined, opts: Partial<Omit<ObjStep, "name" | "group" | "bytes" | "soft">> = {}): Generator<ObjStep, Answers | undefined, Answers> {
    let a: Uint8Array | undefined, b: Uint8Array | undefined;
    try {
      a = build(prev.a);
      b = build(prev.b);
    } catch {
      return undefined;
    }
    if (!a || !b) return undefined;
    const same = a.length === b.length && a.every((v, i) => v === b![i]);
    return yield* this.#send(group, name, a, { ...opts, ...(same ? {} : { soft: b }) });
  }

  *#flush(h: number, group = "FlushContext"): Generator<ObjStep, Answers, Answers> {
    return yield* this.#send(group, `FlushContext ${h.toString(16)}`, plain(TPM_CC.FlushContext, u32(h)));
  }

  /** The whole sequence. */
  *steps(): Scenario {
    const r = this.rng;
    yield* this.#send("Startup", "Startup(CLEAR)", plain(TPM_CC.Startup, u16(TPM_SU.CLEAR)));
    yield* this.#capabilities();
    yield* this.#setup();
    const scenarios: [number, string, () => Scenario][] = [
      [6, "seal/unseal with a password", () => this.#sealPassword()],
      [5, "seal/unseal with a policy", () => this.#sealPolicy()],
      [8, "policy digests", () => this.#policyDigests()],
      [5, "HMAC key (LoadExternal)", () => this.#hmacExternal()],
      [5, "AES key (LoadExternal)", () => this.#aesExternal()],
      [4, "RSA key (LoadExternal)", () => this.#rsaExternal()],
      [4, "ECC key (LoadExternal)", () => this.#eccExternal()],
      [5, "TPM-generated keys", () => this.#tpmKeys()],
      [3, "contexts", () => this.#contexts()],
      [2, "slot exhaustion", () => this.#exhaustion()],
      [8, "error paths", () => this.#errors()],
    ];
    const total = scenarios.reduce((s, [w]) => s + w, 0);
    while (this.counts.steps < this.#budget) {
      let k = r.int(total);
      for (const [w, name, run] of scenarios) {
        if (k < w) {
          this.counts.scenarios.set(name, (this.counts.scenarios.get(name) ?? 0) + 1);
          yield* run();
          break;
        }
        k -= w;
      }
    }
    yield* this.#capabilities();
  }

  // ----------------------------------------------------------------------------------- scenarios

  /** GetCapability(TPM_PROPERTIES) of the handle and slot counts (fixed HR_* and variable HR_* properties) and the DA counter. */
  *#capabilities(): Scenario {
    // TPM_PT_HR_TRANSIENT_MIN .. TPM_PT_CONTEXT_GAP_MAX (0x10e–0x114)
    yield* this.#send("GetCapability", "GetCapability(HR_TRANSIENT_MIN..)", plain(TPM_CC.GetCapability, [...u32(6), ...u32(0x10e), ...u32(7)]));
    // TPM_PT_HR_LOADED .. TPM_PT_HR_TRANSIENT_AVAIL, and LOCKOUT_COUNTER .. LOCKOUT_RECOVERY (0x203–0x207, 0x20e–0x211)
    yield* this.#send("GetCapability", "GetCapability(HR_LOADED..)", plain(TPM_CC.GetCapability, [...u32(6), ...u32(0x203), ...u32(5)]));
    yield* this.#send("GetCapability", "GetCapability(LOCKOUT_COUNTER..)", plain(TPM_CC.GetCapability, [...u32(6), ...u32(0x20e), ...u32(4)]));
    // TPM_CAP_HANDLES: transient, persistent, loaded sessions
    for (const first of [0x80000000, 0x81000000, 0x02000000, 0x03000000]) {
      yield* this.#send("GetCapability", `GetCapability(HANDLES ${first.toString(16)})`, plain(TPM_CC.GetCapability, [...u32(1), ...u32(first), ...u32(20)]));
    }
  }

  /** The persistent ECC storage parent, and one RSA-2048 storage primary (slow: once per sequence), made persistent too. */
  *#setup(): Scenario {
    const r = this.rng;
    const x = yield* this.#send("CreatePrimary", "CreatePrimary ECC P-256 storage (owner)", authed(TPM_CC.CreatePrimary, [TPM_RH.OWNER], [pw()], [...sensCreate(), ...pub(T.eccStorage()), ...t2b([]), ...pcrSel()]), { handles: 1, mask: MASK.createPrimary });
    if (!ok(x)) return;
    const h = u32at(x.a, 10);
    this.#parent = h;
    yield* this.#send("ReadPublic", "ReadPublic of the ECC primary", plain(TPM_CC.ReadPublic, u32(h)), { mask: MASK.readPublic });
    yield* this.#send("EvictControl", "EvictControl ECC primary → 0x81000001", authed(TPM_CC.EvictControl, [TPM_RH.OWNER, h], [pw()], u32(STORAGE_PARENT)));
    yield* this.#send("EvictControl", "EvictControl again (handle in use)", authed(TPM_CC.EvictControl, [TPM_RH.OWNER, h], [pw()], u32(STORAGE_PARENT)));
    yield* this.#send("ReadPublic", "ReadPublic of the persistent copy", plain(TPM_CC.ReadPublic, u32(STORAGE_PARENT)), { mask: MASK.readPublic });
    // RSA primary: in the endorsement or owner hierarchy, with creation PCRs
    const hier = r.pick([TPM_RH.OWNER, TPM_RH.ENDORSEMENT]);
    const rsaAuth = r.bytes(8);
    const y = yield* this.#send("CreatePrimary", "CreatePrimary RSA-2048 storage", authed(TPM_CC.CreatePrimary, [hier], [pw()], [...sensCreate(rsaAuth), ...pub(T.rsaStorage()), ...t2b(r.bytes(4)), ...pcrSel(TPM_ALG.SHA256, [0, 7])]), { handles: 1, mask: MASK.createPrimary });
    if (!ok(y)) return;
    const rh = u32at(y.a, 10);
    // RSA_Encrypt with the NULL scheme under the TPM's own key: only the size is comparable
    yield* this.#send("RSA_Encrypt", "RSA_Encrypt of a restricted decryption key", plain(TPM_CC.RSA_Encrypt, [...u32(rh), ...t2b(r.bytes(16)), ...u16(NULL_ALG), ...t2b([])]), { mask: MASK.allParams });
    if (hier === TPM_RH.OWNER) {
      yield* this.#send("EvictControl", "EvictControl RSA primary → 0x81000002", authed(TPM_CC.EvictControl, [TPM_RH.OWNER, rh], [pw()], u32(RSA_PARENT)));
    } else {
      yield* this.#send("EvictControl", "EvictControl endorsement key with owner auth", authed(TPM_CC.EvictControl, [TPM_RH.OWNER, rh], [pw()], u32(RSA_PARENT)));
      yield* this.#send("EvictControl", "EvictControl endorsement key → 0x81010001", authed(TPM_CC.EvictControl, [TPM_RH.OWNER, rh], [pw()], u32(0x81010001)));
    }
    // one RSA child: RSASSA signing key under the RSA primary (the second and last RSA key generation)
    const c = yield* this.#send("Create", "Create RSA-2048 RSASSA key under the RSA primary", authed(TPM_CC.Create, [rh], [pw(rsaAuth)], [...sensCreate(), ...pub(T.rsaSign()), ...t2b([]), ...pcrSel()]), { mask: MASK.create });
    if (ok(c)) {
      const l = yield* this.#sendBoth("Load", "Load the RSA signing key", c, (rsp) => this.#loadFrom(rh, rsp, rsaAuth), { handles: 1, mask: MASK.load });
      if (l && ok(l)) {
        const kh = u32at(l.a, 10);
        const digest = r.bytes(32);
        const s = yield* this.#send("Sign", "Sign RSASSA-SHA256 (TPM key)", authed(TPM_CC.Sign, [kh], [pw()], [...t2b(digest), ...u16(NULL_ALG), ...u16(TPM_ST.HASHCHECK), ...u32(TPM_RH.NULL), ...t2b([])]), { mask: (q) => [[paramStart(q, 0) + 6, q.length - 5]] });
        if (ok(s)) {
          yield* this.#sendBoth("VerifySignature", "VerifySignature of its own RSASSA signature", s, (q) => plain(TPM_CC.VerifySignature, [...u32(kh), ...t2b(digest), ...q.subarray(paramStart(q, 0), q.length - 5)]), { mask: MASK.verified });
          yield* this.#sendBoth("VerifySignature", "VerifySignature of its own signature over another digest", s, (q) => plain(TPM_CC.VerifySignature, [...u32(kh), ...t2b(r.bytes(32)), ...q.subarray(paramStart(q, 0), q.length - 5)]));
        }
        yield* this.#flush(kh);
      }
    }
    yield* this.#flush(rh);
  }

  /** Load frame for one TPM's Create answer. */
  #loadFrom(parent: number, rsp: Uint8Array, parentAuth: number[] = []): Uint8Array | undefined {
    if (rcOf(rsp) !== 0) return undefined;
    const p = paramStart(rsp, 0);
    const priv = rawT2b(rsp, p);
    const pubArea = rawT2b(rsp, p + priv.length);
    return authed(TPM_CC.Load, [parent], [pw(parentAuth)], [...priv, ...pubArea]);
  }

  /** Create + Load of a sealed data object under the ECC parent; returns the handle (same on both) and the Create answers. */
  *#createLoadSealed(data: number[], auth: number[], attrs?: number, policy: readonly number[] | Answers = []): Generator<ObjStep, { h: number; create: Answers } | undefined, Answers> {
    const build = (pol: readonly number[]) => authed(TPM_CC.Create, [this.#parent], [pw()], [...sensCreate(auth, data), ...pub(T.sealed(attrs, pol)), ...t2b([]), ...pcrSel()]);
    let c: Answers;
    if (Array.isArray(policy)) {
      c = yield* this.#send("Create", `Create sealed data (${data.length} bytes)`, build(policy as number[]), { mask: MASK.create });
    } else {
      // the authPolicy is each TPM's own PolicyGetDigest answer
      const got = yield* this.#sendBoth("Create", `Create sealed data with a policy (${data.length} bytes)`, policy as Answers, (q) => build(Array.from(q.subarray(12, 12 + u16at(q, 10)))), { mask: MASK.create });
      if (!got) return undefined;
      c = got;
    }
    if (!ok(c)) return undefined;
    const l = yield* this.#sendBoth("Load", "Load sealed data", c, (rsp) => this.#loadFrom(this.#parent, rsp), { handles: 1, mask: MASK.load });
    if (!l || !ok(l)) return undefined;
    return { h: u32at(l.a, 10), create: c };
  }

  *#sealPassword(): Scenario {
    const r = this.rng;
    // empty data with sensitiveDataOrigin CLEAR: TPM_RC_ATTRIBUTES + P2 on both (fixed in SoftTpm,
    // src/softtpm/fixes-objects.test.ts)
    const data = r.bytes(r.pick([0, 1, 16, 32, 64, 128]));
    const auth = r.bytes(r.pick([0, 4, 16, 32]));
    const noDA = r.chance(0.8);
    const s = yield* this.#createLoadSealed(data, auth, FIXED | A.USERWITHAUTH | (noDA ? A.NODA : 0));
    if (!s) return;
    yield* this.#send("Unseal", "Unseal with the right password", authed(TPM_CC.Unseal, [s.h], [pw(auth)]));
    if (r.chance(0.4)) {
      yield* this.#send("Unseal", `Unseal with a wrong password (${noDA ? "noDA" : "DA-protected"})`, authed(TPM_CC.Unseal, [s.h], [pw([...auth, 1])]));
      if (!noDA) yield* this.#send("GetCapability", "GetCapability(LOCKOUT_COUNTER)", plain(TPM_CC.GetCapability, [...u32(6), ...u32(0x20e), ...u32(1)]));
    }
    yield* this.#send("ReadPublic", "ReadPublic of sealed data", plain(TPM_CC.ReadPublic, u32(s.h)), { mask: MASK.readPublic });
    if (r.chance(0.5)) {
      const newAuth = r.bytes(r.pick([0, 8, 20]));
      const c = yield* this.#send("ObjectChangeAuth", "ObjectChangeAuth of sealed data", authed(TPM_CC.ObjectChangeAuth, [s.h, this.#parent], [pw(auth)], t2b(newAuth)), { mask: (q) => [...sizeFieldBlanks(q, 0), privateBlank(q, paramStart(q, 0))[0]] });
      yield* this.#send("ObjectChangeAuth", "ObjectChangeAuth with the wrong parent", authed(TPM_CC.ObjectChangeAuth, [s.h, RSA_PARENT], [pw(auth)], t2b(newAuth)));
      if (ok(c)) {
        yield* this.#flush(s.h);
        // the new private with the old public
        const p = paramStart(s.create.a, 0);
        const pubA = rawT2b(s.create.a, p + 2 + u16at(s.create.a, p));
        const pb = paramStart(s.create.b, 0);
        const pubB = rawT2b(s.create.b, pb + 2 + u16at(s.create.b, pb));
        const l = yield* this.#sendBoth("Load", "Load the re-authorized sealed data", c, (q) => authed(TPM_CC.Load, [this.#parent], [pw()], [...rawT2b(q, paramStart(q, 0)), ...(q === c.a ? pubA : pubB)]), { handles: 1, mask: MASK.load });
        if (l && ok(l)) {
          const h2 = u32at(l.a, 10);
          yield* this.#send("Unseal", "Unseal with the new password", authed(TPM_CC.Unseal, [h2], [pw(newAuth)]));
          yield* this.#send("Unseal", "Unseal with the old password", authed(TPM_CC.Unseal, [h2], [pw(auth)]));
          yield* this.#flush(h2);
        }
        return;
      }
    }
    yield* this.#flush(s.h);
    yield* this.#send("Unseal", "Unseal of a flushed handle", authed(TPM_CC.Unseal, [s.h], [pw(auth)]));
  }

  /** A random policy: the assertions and their frames for a given session handle. */
  #randomPolicy(forUnseal: boolean): { name: string; build: (s: number) => Uint8Array; password?: boolean }[] {
    const r = this.rng;
    const out: { name: string; build: (s: number) => Uint8Array; password?: boolean }[] = [];
    if (forUnseal || r.chance(0.7)) out.push({ name: "PolicyCommandCode(Unseal)", build: (s) => plain(TPM_CC.PolicyCommandCode, [...u32(s), ...u32(TPM_CC.Unseal)]) });
    if (r.chance(0.5)) {
      const bank = r.pick([TPM_ALG.SHA256, TPM_ALG.SHA1]);
      const pcrs = [r.int(24), r.int(24)];
      out.push({ name: `PolicyPCR(${pcrs})`, build: (s) => plain(TPM_CC.PolicyPCR, [...u32(s), ...t2b([]), ...pcrSel(bank, pcrs)]) });
    }
    if (r.chance(0.5)) out.push({ name: "PolicyPassword", build: (s) => plain(TPM_CC.PolicyPassword, u32(s)), password: true });
    if (!forUnseal && r.chance(0.3)) out.push({ name: "PolicyAuthValue", build: (s) => plain(TPM_CC.PolicyAuthValue, u32(s)) });
    return r.chance(0.5) ? out : out.reverse();
  }

  *#startSession(type: number, hash: number = TPM_ALG.SHA256): Generator<ObjStep, number | undefined, Answers> {
    const x = yield* this.#send("StartAuthSession", `StartAuthSession(${type === 1 ? "POLICY" : type === 3 ? "TRIAL" : "HMAC"})`, plain(TPM_CC.StartAuthSession, [...u32(TPM_RH.NULL), ...u32(TPM_RH.NULL), ...t2b(this.rng.bytes(16)), ...t2b([]), type, ...u16(NULL_ALG), ...u16(hash)]), { handles: 1, mask: MASK.startAuthSession });
    return ok(x) ? u32at(x.a, 10) : undefined;
  }

  *#sealPolicy(): Scenario {
    const r = this.rng;
    const policy = this.#randomPolicy(true);
    const password = policy.some((p) => p.password);
    const auth = r.bytes(8);
    const trial = yield* this.#startSession(3);
    if (trial === undefined) return;
    for (const p of policy) yield* this.#send("policy assertion", `${p.name} (trial)`, p.build(trial));
    const d = yield* this.#send("PolicyGetDigest", "PolicyGetDigest (trial)", plain(TPM_CC.PolicyGetDigest, u32(trial)));
    yield* this.#flush(trial);
    if (!ok(d)) return;
    const s = yield* this.#createLoadSealed(r.bytes(24), auth, FIXED | A.NODA, d);
    if (!s) return;
    const sess = yield* this.#startSession(1);
    if (sess !== undefined) {
      // sometimes leave one assertion out: Unseal then fails with TPM_RC_POLICY_FAIL
      const skip = r.chance(0.25) ? r.int(policy.length) : -1;
      for (const [i, p] of policy.entries()) if (i !== skip) yield* this.#send("policy assertion", p.name, p.build(sess));
      yield* this.#send("PolicyGetDigest", "PolicyGetDigest", plain(TPM_CC.PolicyGetDigest, u32(sess)));
      const value = password ? (r.chance(0.85) ? auth : [...auth, 7]) : [];
      yield* this.#send("Unseal", `Unseal with a policy session${skip >= 0 ? " (an assertion left out)" : ""}`, authed(TPM_CC.Unseal, [s.h], [{ handle: sess, value }]), { mask: (q) => sessionBlanks(q, 0) });
      yield* this.#send("Unseal", "Unseal with a password (userWithAuth clear)", authed(TPM_CC.Unseal, [s.h], [pw(auth)]));
      yield* this.#flush(sess);
    }
    yield* this.#flush(s.h);
  }

  *#policyDigests(): Scenario {
    const r = this.rng;
    const type = r.pick([1, 3]);
    const hash = r.chance(0.8) ? TPM_ALG.SHA256 : r.pick([TPM_ALG.SHA1, TPM_ALG.SHA384]);
    const s = yield* this.#startSession(type, hash);
    if (s === undefined) return;
    const n = r.range(2, 7);
    for (let i = 0; i < n; i++) {
      const op = r.int(12);
      if (op === 0) yield* this.#send("policy assertion", "PolicyCommandCode", plain(TPM_CC.PolicyCommandCode, [...u32(s), ...u32(r.pick([TPM_CC.Unseal, TPM_CC.Sign, TPM_CC.NV_Read, TPM_CC.PolicyNV, 0x7777]))]));
      else if (op === 1) {
        const bank = r.pick([TPM_ALG.SHA256, TPM_ALG.SHA1, TPM_ALG.SHA384]);
        yield* this.#send("policy assertion", "PolicyPCR", plain(TPM_CC.PolicyPCR, [...u32(s), ...t2b(r.chance(0.8) ? [] : r.bytes(DIGEST_SIZE[hash]!)), ...pcrSel(bank, [r.int(24), r.int(24), r.int(24)])]));
      } else if (op === 2) yield* this.#send("policy assertion", "PolicyAuthValue", plain(TPM_CC.PolicyAuthValue, u32(s)));
      else if (op === 3) yield* this.#send("policy assertion", "PolicyPassword", plain(TPM_CC.PolicyPassword, u32(s)));
      else if (op === 4) yield* this.#send("PolicyRestart", "PolicyRestart", plain(TPM_CC.PolicyRestart, u32(s)));
      else if (op === 5 || op === 6) {
        // PolicyOR over the current digest (each TPM's own answer) and 1–7 others; sometimes without it (TPM_RC_VALUE)
        const d = yield* this.#send("PolicyGetDigest", "PolicyGetDigest", plain(TPM_CC.PolicyGetDigest, u32(s)));
        if (!ok(d)) continue;
        const others = Array.from({ length: r.range(1, r.chance(0.9) ? 7 : 8) }, () => r.bytes(r.chance(0.95) ? DIGEST_SIZE[hash]! : 20));
        const at = r.int(others.length + 1);
        const include = r.chance(0.85);
        yield* this.#sendBoth("policy assertion", `PolicyOR of ${others.length + (include ? 1 : 0)} digests${include ? "" : " (current one missing)"}`, d, (q) => {
          const cur = Array.from(q.subarray(12, 12 + u16at(q, 10)));
          const list = [...others];
          if (include) list.splice(at, 0, cur);
          return plain(TPM_CC.PolicyOR, [...u32(s), ...u32(list.length), ...list.flatMap((x) => t2b(x))]);
        });
      } else if (op === 7) yield* this.#send("policy assertion", "PolicyLocality", plain(TPM_CC.PolicyLocality, [...u32(s), r.pick([1, 2, 0x1f, 0x20, 0])]));
      else if (op === 8) {
        // PolicySecret with the owner's password, no nonce and no expiration: a NULL ticket, an
        // empty timeout and a deterministic digest; a wrong password is TPM_RC_BAD_AUTH
        const right = r.chance(0.85);
        yield* this.#send("policy assertion", `PolicySecret(owner${right ? "" : ", wrong password"})`, authed(TPM_CC.PolicySecret, [TPM_RH.OWNER, s], [pw(right ? [] : [5])], [...t2b([]), ...t2b([]), ...t2b(r.bytes(r.pick([0, 8]))), ...u32(0)]));
      } else if (op === 9) yield* this.#send("policy assertion", "PolicyCpHash", plain(TPM_CC.PolicyCpHash, [...u32(s), ...t2b(r.chance(0.5) ? Array(DIGEST_SIZE[hash]!).fill(0x11) : r.bytes(r.pick([DIGEST_SIZE[hash]!, 20])))]));
      else if (op === 10) yield* this.#send("policy assertion", "PolicyNameHash", plain(TPM_CC.PolicyNameHash, [...u32(s), ...t2b(r.chance(0.5) ? Array(DIGEST_SIZE[hash]!).fill(0x22) : r.bytes(r.pick([DIGEST_SIZE[hash]!, 20])))]));
      else yield* this.#send("PolicyGetDigest", "PolicyGetDigest", plain(TPM_CC.PolicyGetDigest, u32(s)));
    }
    yield* this.#send("PolicyGetDigest", "PolicyGetDigest", plain(TPM_CC.PolicyGetDigest, u32(s)));
    if (r.chance(0.3)) yield* this.#send("PolicyRestart", "PolicyRestart of a flushed session", plain(TPM_CC.PolicyRestart, u32(s === 0x03000000 ? 0x03000002 : 0x03000000)));
    yield* this.#flush(s);
  }

  // ReadPublic of a LoadExternal object: qualifiedName = name in every hierarchy (libtpms; fixed
  // in SoftTpm, src/softtpm/fixes-objects.test.ts): compared whole.

  /** LoadExternal of an HMAC key with a known sensitive part; everything after it is deterministic. */
  *#loadExternalHmac(hash: number, key: number[], withAuth: number[] = []): Generator<ObjStep, number | undefined, Answers> {
    const seed = this.rng.bytes(DIGEST_SIZE[hash]!);
    const sens = t2b([...u16(TPM_ALG.KEYEDHASH), ...t2b(withAuth), ...t2b(seed), ...t2b(key)]);
    const t: Template = { type: TPM_ALG.KEYEDHASH, nameAlg: hash, attrs: A.USERWITHAUTH | A.SIGN_ENCRYPT | A.NODA, parms: [...u16(TPM_ALG.HMAC), ...u16(hash)], unique: t2b(H(hash, seed, key)) };
    const x = yield* this.#send("LoadExternal", `LoadExternal HMAC-${HASH_NAME[hash]} key`, plain(TPM_CC.LoadExternal, [...sens, ...pub(t), ...u32(TPM_RH.NULL)]), { handles: 1 });
    return ok(x) ? u32at(x.a, 10) : undefined;
  }

  *#hmacExternal(): Scenario {
    const r = this.rng;
    const hash = r.pick([TPM_ALG.SHA256, TPM_ALG.SHA256, TPM_ALG.SHA1, TPM_ALG.SHA384]);
    const auth = r.bytes(r.pick([0, 6]));
    const h = yield* this.#loadExternalHmac(hash, r.bytes(r.pick([16, 32, DIGEST_SIZE[hash]!])), auth);
    if (h === undefined) return;
    if (r.chance(0.5)) yield* this.#send("ReadPublic", "ReadPublic of an external HMAC key", plain(TPM_CC.ReadPublic, u32(h)));
    const n = r.range(2, 5);
    for (let i = 0; i < n; i++) {
      const op = r.int(6);
      if (op === 0) yield* this.#send("HMAC", "HMAC", authed(TPM_CC.HMAC, [h], [pw(auth)], [...t2b(r.bytes(r.pick([0, 1, 64, 1024]))), ...u16(r.chance(0.85) ? hash : r.pick([NULL_ALG, TPM_ALG.SHA512]))]));
      else if (op === 1) yield* this.#send("HMAC", "HMAC with a wrong password", authed(TPM_CC.HMAC, [h], [pw([...auth, 9])], [...t2b(r.bytes(8)), ...u16(hash)]));
      else if (op === 2 || op === 3) {
        const digest = r.bytes(DIGEST_SIZE[hash]!);
        // a wrong ticket tag: another TPM_ST value (CREATION) is TPM_RC_TAG + P3, a value that is no
        // TPM_ST (0x0004, the reserved 0x8003, FU_MANIFEST 0x8029) TPM_RC_VALUE + P3 on both
        const scheme = r.chance(0.8) ? NULL_ALG : TPM_ALG.HMAC;
        const tag = r.chance(0.9) ? TPM_ST.HASHCHECK : r.pick([0x8021, 0x0004, 0x8003, 0x8029]);
        const s = yield* this.#send("Sign", `Sign (HMAC scheme${tag === TPM_ST.HASHCHECK ? "" : `, ticket tag ${tag.toString(16)}`})`, authed(TPM_CC.Sign, [h], [pw(auth)], [...t2b(digest), ...u16(scheme), ...(scheme === NULL_ALG ? [] : u16(hash)), ...u16(tag), ...u32(TPM_RH.NULL), ...t2b([])]));
        if (ok(s)) {
          const sig = Array.from(s.a.subarray(paramStart(s.a, 0), s.a.length - 5));
          if (r.chance(0.3)) sig[sig.length - 1]! ^= 1;
          yield* this.#send("VerifySignature", "VerifySignature of the HMAC signature", plain(TPM_CC.VerifySignature, [...u32(h), ...t2b(digest), ...sig]));
        }
      } else if (op === 4) {
        const x = yield* this.#send("HMAC_Start", "HMAC_Start", authed(TPM_CC.HMAC_Start, [h], [pw(auth)], [...t2b(auth), ...u16(hash)]), { handles: 1 });
        if (ok(x)) {
          const seq = u32at(x.a, 10);
          yield* this.#send("SequenceUpdate", "SequenceUpdate", authed(TPM_CC.SequenceUpdate, [seq], [pw(auth)], t2b(r.bytes(r.range(0, 100)))));
          yield* this.#send("SequenceComplete", "SequenceComplete (HMAC)", authed(TPM_CC.SequenceComplete, [seq], [pw(auth)], [...t2b(r.bytes(r.range(0, 40))), ...u32(TPM_RH.NULL)]));
        }
      } else yield* this.#send("Hash", "Hash", plain(TPM_CC.Hash, [...t2b(r.bytes(r.range(0, 200))), ...u16(hash), ...u32(r.pick([TPM_RH.NULL, TPM_RH.OWNER]))]), { mask: MASK.hash });
    }
    yield* this.#flush(h);
  }

  *#aesExternal(): Scenario {
    const r = this.rng;
    const bits = r.pick([128, 128, 256]);
    const objMode = r.chance(0.6) ? NULL_ALG : r.pick([CFB, TPM_ALG.CBC, TPM_ALG.CTR, TPM_ALG.OFB, TPM_ALG.ECB]);
    const key = r.bytes(bits / 8);
    const seed = r.bytes(32);
    const t: Template = { ...T.aes(bits, objMode), attrs: A.USERWITHAUTH | A.NODA | A.DECRYPT | A.SIGN_ENCRYPT, unique: t2b(H(TPM_ALG.SHA256, seed, key)) };
    const x = yield* this.#send("LoadExternal", `LoadExternal AES-${bits} key (mode ${objMode.toString(16)})`, plain(TPM_CC.LoadExternal, [...t2b([...u16(TPM_ALG.SYMCIPHER), ...t2b([]), ...t2b(seed), ...t2b(key)]), ...pub(t), ...u32(TPM_RH.NULL)]), { handles: 1 });
    if (!ok(x)) return;
    const h = u32at(x.a, 10);
    const n = r.range(2, 5);
    for (let i = 0; i < n; i++) {
      const mode = objMode !== NULL_ALG && r.chance(0.7) ? r.pick([objMode, NULL_ALG]) : r.pick([CFB, TPM_ALG.CBC, TPM_ALG.CTR, TPM_ALG.OFB, TPM_ALG.ECB, NULL_ALG]);
      const iv = r.bytes(r.chance(0.9) ? 16 : r.pick([0, 15]));
      // partial last blocks in every mode: CBC and ECB refuse them (TPM_RC_SIZE), CFB's ivOut is
      // the last cipher text bytes followed by the rest of that block's key stream
      const data = r.bytes(r.chance(0.8) ? 16 * r.range(0, 8) : r.range(1, 70));
      const decrypt = r.chance(0.5) ? 1 : 0;
      if (r.chance(0.5)) yield* this.#send("EncryptDecrypt", `EncryptDecrypt(${decrypt ? "decrypt" : "encrypt"}, mode ${mode.toString(16)})`, authed(TPM_CC.EncryptDecrypt, [h], [pw()], [decrypt, ...u16(mode), ...t2b(iv), ...t2b(data)]));
      else yield* this.#send("EncryptDecrypt", `EncryptDecrypt2(${decrypt ? "decrypt" : "encrypt"}, mode ${mode.toString(16)})`, authed(TPM_CC.EncryptDecrypt2, [h], [pw()], [...t2b(data), decrypt, ...u16(mode), ...t2b(iv)]));
    }
    yield* this.#flush(h);
  }

  /** TPM2B_PUBLIC of the fixed RSA key (unrestricted; scheme NULL, or RSASSA). */
  #rsaPub(scheme: number, attrs: number): number[] {
    const sch = scheme === NULL_ALG ? u16(NULL_ALG) : [...u16(scheme), ...u16(TPM_ALG.SHA256)];
    return pub({ type: TPM_ALG.RSA, attrs, parms: [...u16(NULL_ALG), ...sch, ...u16(2048), ...u32(0)], unique: t2b(RSA_N) });
  }

  *#rsaExternal(): Scenario {
    const r = this.rng;
    const priv = r.chance(0.6);
    const scheme = r.pick([NULL_ALG, TPM_ALG.RSASSA]);
    const attrs = A.USERWITHAUTH | A.NODA | A.SIGN_ENCRYPT | (scheme === NULL_ALG ? A.DECRYPT : 0);
    const hier = priv ? TPM_RH.NULL : r.pick([TPM_RH.NULL, TPM_RH.OWNER]);
    const sens = priv ? t2b([...u16(TPM_ALG.RSA), ...t2b([]), ...t2b([]), ...t2b(RSA_P)]) : u16(0);
    const x = yield* this.#send("LoadExternal", `LoadExternal RSA-2048 ${priv ? "key pair" : "public key"} (scheme ${scheme.toString(16)})`, plain(TPM_CC.LoadExternal, [...sens, ...this.#rsaPub(scheme, attrs), ...u32(hier)]), { handles: 1 });
    if (!ok(x)) return;
    const h = u32at(x.a, 10);
    if (r.chance(0.5)) yield* this.#send("ReadPublic", "ReadPublic of an external RSA key", plain(TPM_CC.ReadPublic, u32(h)));
    const n = r.range(2, 5);
    for (let i = 0; i < n; i++) {
      const op = r.int(5);
      if (op === 0 && scheme === NULL_ALG) {
        // raw RSA (NULL scheme): deterministic; a message ≥ n is TPM_RC_VALUE
        const msg = r.chance(0.8) ? [0x00, ...r.bytes(255)] : r.pick([[0xff, ...r.bytes(255)], r.bytes(r.range(1, 200))]);
        yield* this.#send("RSA_Encrypt", "RSA_Encrypt (NULL scheme)", plain(TPM_CC.RSA_Encrypt, [...u32(h), ...t2b(msg), ...u16(NULL_ALG), ...t2b([])]));
      } else if (op === 1) {
        // OAEP and RSAES encryption are randomized: only the size is compared
        const sch = r.pick([TPM_ALG.OAEP, TPM_ALG.RSAES]);
        yield* this.#send("RSA_Encrypt", `RSA_Encrypt (${sch === TPM_ALG.OAEP ? "OAEP" : "RSAES"})`, plain(TPM_CC.RSA_Encrypt, [...u32(h), ...t2b(r.bytes(r.range(1, 100))), ...u16(sch), ...(sch === TPM_ALG.OAEP ? u16(TPM_ALG.SHA256) : []), ...t2b([])]), { mask: (q) => [t2bBlank(q, paramStart(q, 0))[0]] });
      } else if (op === 2 && priv && scheme === NULL_ALG && r.chance(0.5)) {
        // RSAES (PKCS#1 v1.5) decryption of a cipher text built here with seeded padding: the
        // message comes back; deterministic
        const msg = r.bytes(r.range(0, 40));
        const ps = r.bytes(256 - 3 - msg.length).map((b) => b || 1);
        yield* this.#send("RSA_Decrypt", "RSA_Decrypt (RSAES)", authed(TPM_CC.RSA_Decrypt, [h], [pw()], [...t2b(rsaPublicOp([0, 2, ...ps, 0, ...msg])), ...u16(TPM_ALG.RSAES), ...t2b([])]));
      } else if (op === 2 && priv && scheme === NULL_ALG) {
        const ct = r.chance(0.8) ? [0x10, ...r.bytes(255)] : [0xff, ...r.bytes(255)];
        // NULL scheme only: RSAES/OAEP decryption of random bytes is a padding error, which
        // SoftTpm answers with TPM_RC_VALUE where libtpms gives TPM_RC_FAILURE (see KNOWN_DIFFERENCES)
        yield* this.#send("RSA_Decrypt", "RSA_Decrypt (NULL scheme)", authed(TPM_CC.RSA_Decrypt, [h], [pw()], [...t2b(ct), ...u16(NULL_ALG), ...t2b([])]));
      } else if (op === 3 && priv) {
        const sch = scheme === NULL_ALG ? r.pick([TPM_ALG.RSASSA, TPM_ALG.NULL]) : r.pick([NULL_ALG, TPM_ALG.RSASSA]);
        const digest = r.bytes(r.chance(0.9) ? 32 : 20);
        yield* this.#send("Sign", `Sign RSASSA (fixed key, scheme ${sch.toString(16)})`, authed(TPM_CC.Sign, [h], [pw()], [...t2b(digest), ...u16(sch), ...(sch === NULL_ALG ? [] : u16(TPM_ALG.SHA256)), ...u16(TPM_ST.HASHCHECK), ...u32(TPM_RH.NULL), ...t2b([])]));
      } else {
        yield* this.#send("VerifySignature", "VerifySignature with a made-up RSASSA signature", plain(TPM_CC.VerifySignature, [...u32(h), ...t2b(r.bytes(32)), ...u16(TPM_ALG.RSASSA), ...u16(TPM_ALG.SHA256), ...t2b(r.bytes(r.pick([256, 255, 10])))]));
      }
    }
    yield* this.#flush(h);
  }

  *#eccExternal(): Scenario {
    const r = this.rng;
    if (r.chance(0.3)) {
      yield* this.#ecdhExternal();
      return;
    }
    const priv = r.chance(0.4);
    const hier = priv ? TPM_RH.NULL : r.pick([TPM_RH.NULL, TPM_RH.OWNER, TPM_RH.ENDORSEMENT]);
    const t: Template = { type: TPM_ALG.ECC, attrs: A.USERWITHAUTH | A.NODA | A.SIGN_ENCRYPT, parms: [...u16(NULL_ALG), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)], unique: [...t2b(ECC_X), ...t2b(ECC_Y)] };
    const sens = priv ? t2b([...u16(TPM_ALG.ECC), ...t2b([]), ...t2b([]), ...t2b(ECC_D)]) : u16(0);
    const x = yield* this.#send("LoadExternal", `LoadExternal P-256 ${priv ? "key pair" : "public key"} (hierarchy ${hier.toString(16)})`, plain(TPM_CC.LoadExternal, [...sens, ...pub(t), ...u32(hier)]), { handles: 1 });
    if (!ok(x)) return;
    const h = u32at(x.a, 10);
    if (r.chance(0.5)) yield* this.#send("ReadPublic", "ReadPublic of an external P-256 key", plain(TPM_CC.ReadPublic, u32(h)));
    const n = r.range(1, 4);
    for (let i = 0; i < n; i++) {
      const op = r.int(4);
      if (op <= 1) {
        const bad = op === 1;
        const s = [...ECC_SIG_S];
        if (bad) s[r.int(32)]! ^= 0x10;
        // a NULL-hierarchy key's ticket is the NULL ticket (empty HMAC): compared whole
        yield* this.#send("VerifySignature", `VerifySignature ECDSA (fixed signature${bad ? ", altered" : ""})`, plain(TPM_CC.VerifySignature, [...u32(h), ...t2b(ECC_DIGEST), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...t2b(ECC_SIG_R), ...t2b(s)]), { mask: hier === TPM_RH.NULL ? undefined : MASK.verified });
      } else if (op === 2 && priv) {
        // ECDSA uses a random nonce: sigAlg and hash compared; r and s (and their sizes) masked
        yield* this.#send("Sign", "Sign ECDSA (fixed key)", authed(TPM_CC.Sign, [h], [pw()], [...t2b(r.bytes(32)), ...u16(NULL_ALG), ...u16(TPM_ST.HASHCHECK), ...u32(TPM_RH.NULL), ...t2b([])]), { compareAs: (q) => `${rcOf(q)} ${u16at(q, 14).toString(16)} ${u16at(q, 16).toString(16)}` });
      } else {
        yield* this.#send("VerifySignature", "VerifySignature ECDSA over another digest", plain(TPM_CC.VerifySignature, [...u32(h), ...t2b(r.bytes(32)), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...t2b(ECC_SIG_R), ...t2b(ECC_SIG_S)]));
      }
    }
    yield* this.#flush(h);
  }

  /** LoadExternal of the fixed P-256 key pair as a decryption key: ECDH_ZGen is deterministic. */
  *#ecdhExternal(): Scenario {
    const r = this.rng;
    const scheme = r.pick([NULL_ALG, TPM_ALG.ECDH]);
    const t: Template = { type: TPM_ALG.ECC, attrs: A.USERWITHAUTH | A.NODA | A.DECRYPT, parms: [...u16(NULL_ALG), ...(scheme === NULL_ALG ? u16(NULL_ALG) : [...u16(scheme), ...u16(TPM_ALG.SHA256)]), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)], unique: [...t2b(ECC_X), ...t2b(ECC_Y)] };
    const x = yield* this.#send("LoadExternal", `LoadExternal P-256 ECDH key pair (scheme ${scheme.toString(16)})`, plain(TPM_CC.LoadExternal, [...t2b([...u16(TPM_ALG.ECC), ...t2b([]), ...t2b([]), ...t2b(ECC_D)]), ...pub(t), ...u32(TPM_RH.NULL)]), { handles: 1 });
    if (!ok(x)) return;
    const h = u32at(x.a, 10);
    const n = r.range(1, 3);
    for (let i = 0; i < n; i++) {
      const op = r.int(4);
      if (op <= 1) {
        // d·Q for the key's own public point Q; a point off the curve is TPM_RC_ECC_POINT
        const y = [...ECC_Y];
        if (op === 1) y[31]! ^= 1;
        yield* this.#send("ECDH_ZGen", `ECDH_ZGen${op === 1 ? " (point off the curve)" : ""}`, authed(TPM_CC.ECDH_ZGen, [h], [pw()], t2b([...t2b(ECC_X), ...t2b(y)])));
      } else if (op === 2) {
        // ECDH_KeyGen: a fresh ephemeral key: only the response code is compared
        yield* this.#send("ECDH_KeyGen", "ECDH_KeyGen", plain(TPM_CC.ECDH_KeyGen, u32(h)), { compareAs: (q) => `rc ${rcOf(q)}` });
      } else {
        yield* this.#send("ECDH_ZGen", "ECDH_ZGen with a wrong password", authed(TPM_CC.ECDH_ZGen, [h], [pw([3])], t2b([...t2b(ECC_X), ...t2b(ECC_Y)])));
      }
    }
    yield* this.#flush(h);
  }

  *#tpmKeys(): Scenario {
    const r = this.rng;
    const kind = r.pick(["ecc", "hmac", "aes", "sealed"] as const);
    const template = kind === "ecc" ? T.eccSign() : kind === "hmac" ? T.hmacKey() : kind === "aes" ? T.aes() : T.sealed(FIXED | A.USERWITHAUTH | A.NODA | A.SENSITIVEDATAORIGIN);
    const sens = sensCreate([], []);
    let h: number;
    if (r.chance(0.4)) {
      const x = yield* this.#send("CreateLoaded", `CreateLoaded ${kind}`, authed(TPM_CC.CreateLoaded, [this.#parent], [pw()], [...sens, ...pub(template)]), { handles: 1, mask: MASK.createLoaded });
      if (!ok(x)) return;
      h = u32at(x.a, 10);
    } else if (r.chance(0.3)) {
      // a primary of that kind in the owner, endorsement or NULL hierarchy (the NULL hierarchy's
      // creation ticket is a 64-byte HMAC too, under its own proof: fixed in SoftTpm,
      // src/softtpm/fixes-objects.test.ts)
      const hier = r.pick([TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.NULL]);
      const x = yield* this.#send("CreatePrimary", `CreatePrimary ${kind} (hierarchy ${hier.toString(16)})`, authed(TPM_CC.CreatePrimary, [hier], [pw()], [...sens, ...pub(template), ...t2b([]), ...pcrSel(TPM_ALG.SHA256, [r.int(24)])]), { handles: 1, mask: MASK.createPrimary });
      if (!ok(x)) return;
      h = u32at(x.a, 10);
    } else {
      // under the persistent copy sometimes, Create and Load (see the note at #parent)
      const parent = r.chance(0.3) ? STORAGE_PARENT : this.#parent;
      const c = yield* this.#send("Create", `Create ${kind}${parent === STORAGE_PARENT ? " (persistent parent)" : ""}`, authed(TPM_CC.Create, [parent], [pw()], [...sens, ...pub(template), ...t2b(r.bytes(r.pick([0, 8]))), ...pcrSel(r.chance(0.5) ? TPM_ALG.SHA256 : undefined, [1])]), { mask: MASK.create });
      if (!ok(c)) return;
      const l = yield* this.#sendBoth("Load", `Load ${kind}${parent === STORAGE_PARENT ? " (persistent parent)" : ""}`, c, (q) => this.#loadFrom(parent, q), { handles: 1, mask: MASK.load });
      if (!l || !ok(l)) return;
      h = u32at(l.a, 10);
    }
    yield* this.#send("ReadPublic", `ReadPublic ${kind}`, plain(TPM_CC.ReadPublic, u32(h)), { mask: MASK.readPublic });
    const digest = r.bytes(32);
    if (kind === "ecc") {
      const s = yield* this.#send("Sign", "Sign ECDSA (TPM key)", authed(TPM_CC.Sign, [h], [pw()], [...t2b(digest), ...u16(NULL_ALG), ...u16(TPM_ST.HASHCHECK), ...u32(TPM_RH.NULL), ...t2b([])]), { compareAs: (q) => `${rcOf(q)} ${u16at(q, 14).toString(16)} ${u16at(q, 16).toString(16)}` });
      if (ok(s)) yield* this.#sendBoth("VerifySignature", "VerifySignature of its own ECDSA signature", s, (q) => plain(TPM_CC.VerifySignature, [...u32(h), ...t2b(digest), ...q.subarray(paramStart(q, 0), q.length - 5)]), { mask: MASK.verified });
    } else if (kind === "hmac") {
      yield* this.#send("HMAC", "HMAC (TPM key)", authed(TPM_CC.HMAC, [h], [pw()], [...t2b(r.bytes(40)), ...u16(TPM_ALG.SHA256)]), { mask: MASK.allParams });
      const s = yield* this.#send("Sign", "Sign HMAC (TPM key)", authed(TPM_CC.Sign, [h], [pw()], [...t2b(digest), ...u16(NULL_ALG), ...u16(TPM_ST.HASHCHECK), ...u32(TPM_RH.NULL), ...t2b([])]), { mask: (q) => [[paramStart(q, 0) + 4, q.length - 5]] });
      if (ok(s)) yield* this.#sendBoth("VerifySignature", "VerifySignature of its own HMAC signature", s, (q) => plain(TPM_CC.VerifySignature, [...u32(h), ...t2b(digest), ...q.subarray(paramStart(q, 0), q.length - 5)]), { mask: MASK.verified });
    } else if (kind === "aes") {
      yield* this.#send("EncryptDecrypt", "EncryptDecrypt2 (TPM key)", authed(TPM_CC.EncryptDecrypt2, [h], [pw()], [...t2b(r.bytes(32)), 0, ...u16(NULL_ALG), ...t2b(r.bytes(16))]), { mask: (q) => {
        const p = paramStart(q, 0);
        const [b1, next] = t2bBlank(q, p);
        return [b1, t2bBlank(q, next)[0]];
      } });
    } else {
      // TPM-generated sealed data (sensitiveDataOrigin): Unseal gives random bytes of nameAlg size
      yield* this.#send("Unseal", "Unseal of TPM-generated data", authed(TPM_CC.Unseal, [h], [pw()]), { mask: MASK.firstT2b });
    }
    if (r.chance(0.3)) yield* this.#send("Unseal", `Unseal of a ${kind} object`, authed(TPM_CC.Unseal, [h], [pw()]), kind === "sealed" ? { mask: MASK.firstT2b } : {});
    yield* this.#flush(h);
  }

  *#contexts(): Scenario {
    const r = this.rng;
    const key = r.bytes(32);
    const h = yield* this.#loadExternalHmac(TPM_ALG.SHA256, key);
    if (h === undefined) return;
    const data = r.bytes(20);
    const hmac = () => this.#send("HMAC", "HMAC", authed(TPM_CC.HMAC, [h], [pw()], [...t2b(data), ...u16(TPM_ALG.SHA256)]));
    yield* hmac();
    const c = yield* this.#send("ContextSave", "ContextSave of an object", plain(TPM_CC.ContextSave, u32(h)), { compareAs: objectContextShape });
    if (!ok(c)) return;
    yield* this.#flush(h);
    yield* hmac();
    const tamper = r.chance(0.3);
    const l = yield* this.#sendBoth("ContextLoad", `ContextLoad of the object${tamper ? " (blob altered)" : ""}`, c, (q) => {
      const ctx = q.slice(10);
      if (tamper) ctx[ctx.length - 3]! ^= 0x40;
      return plain(TPM_CC.ContextLoad, Array.from(ctx));
    }, { handles: 1 });
    if (l && ok(l)) {
      yield* hmac();
      if (r.chance(0.5)) {
        const again = yield* this.#sendBoth("ContextLoad", "ContextLoad of the object again", c, (q) => plain(TPM_CC.ContextLoad, Array.from(q.slice(10))), { handles: 1 });
        if (again && ok(again)) yield* this.#flush(u32at(again.a, 10));
      }
      yield* this.#flush(u32at(l.a, 10));
    }
    // a session (HMAC, policy or trial): saved, used while saved, reloaded, replayed. A policy or
    // trial session is saved under its own handle 0x03xxxxxx, and the session context counter
    // starts at 4 (libtpms contextCounter = MAX_LOADED_SESSIONS + 1): the sequence is compared
    // (fixed in SoftTpm, src/softtpm/fixes-objects.test.ts)
    const type = r.pick([0, 0, 1, 3]);
    const s = yield* this.#startSession(type);
    if (s === undefined) return;
    const kind = type === 0 ? "an HMAC" : type === 1 ? "a policy" : "a trial";
    const cs = yield* this.#send("ContextSave", `ContextSave of ${kind} session`, plain(TPM_CC.ContextSave, u32(s)), { compareAs: objectContextShape });
    if (ok(cs)) {
      yield* this.#send("ContextSave", "ContextSave of a saved session", plain(TPM_CC.ContextSave, u32(s)), { compareAs: contextSaveShape });
      yield* this.#send("policy assertion", `PolicyCommandCode on ${kind} saved session`, plain(TPM_CC.PolicyCommandCode, [...u32(s), ...u32(TPM_CC.Unseal)]));
      yield* this.#sendBoth("ContextLoad", "ContextLoad of the session", cs, (q) => plain(TPM_CC.ContextLoad, Array.from(q.slice(10))), { handles: 1 });
      yield* this.#send("policy assertion", `PolicyCommandCode on ${kind} session`, plain(TPM_CC.PolicyCommandCode, [...u32(s), ...u32(TPM_CC.Unseal)]));
      if (r.chance(0.5)) yield* this.#sendBoth("ContextLoad", "ContextLoad of the session again (replay)", cs, (q) => plain(TPM_CC.ContextLoad, Array.from(q.slice(10))), { handles: 1 });
    }
    yield* this.#flush(s);
  }

  *#exhaustion(): Scenario {
    const r = this.rng;
    if (r.chance(0.5)) {
      // three transient slots on both (libtpms MAX_LOADED_OBJECTS 3), one taken by the parent:
      // the third load is TPM_RC_OBJECT_MEMORY
      const handles: number[] = [];
      for (let i = 0; i < 3; i++) {
        const h = yield* this.#loadExternalHmac(TPM_ALG.SHA256, r.bytes(16));
        if (h !== undefined) handles.push(h);
      }
      yield* this.#send("GetCapability", "GetCapability(HR_LOADED..) with full slots", plain(TPM_CC.GetCapability, [...u32(6), ...u32(0x203), ...u32(5)]));
      yield* this.#send("CreatePrimary", "CreatePrimary with full slots", authed(TPM_CC.CreatePrimary, [TPM_RH.NULL], [pw()], [...sensCreate(), ...pub(T.hmacKey()), ...t2b([]), ...pcrSel()]), { handles: 1, mask: MASK.createPrimary });
      for (const h of handles) yield* this.#flush(h);
    } else {
      // three loaded sessions (libtpms MAX_LOADED_SESSIONS 3): the fourth is TPM_RC_SESSION_MEMORY
      const sessions: number[] = [];
      const types = r.chance(0.5) ? [0, 0, 0, r.pick([0, 1, 3])] : Array.from({ length: 4 }, () => r.pick([0, 1, 3]));
      for (const type of types) {
        const s = yield* this.#startSession(type);
        if (s !== undefined) sessions.push(s);
      }
      // TPM_HT_LOADED_SESSION lists a policy or trial session by its own handle (0x03xxxxxx),
      // from the asked slot on; TPM_HT_SAVED_SESSION (0x03) lists the context-saved ones (none here)
      yield* this.#send("GetCapability", "GetCapability(HANDLES loaded sessions)", plain(TPM_CC.GetCapability, [...u32(1), ...u32(r.pick([0x02000000, 0x02000001, 0x02000002])), ...u32(10)]));
      if (r.chance(0.3)) yield* this.#send("GetCapability", "GetCapability(HANDLES saved sessions)", plain(TPM_CC.GetCapability, [...u32(1), ...u32(0x03000000), ...u32(10)]));
      // GetSessionAuditDigest's sessionHandle is a TPMI_SH_HMAC: a session never audited is
      // TPM_RC_TYPE + H3, a slot that holds a policy session TPM_RC_HANDLE + H3, no HMAC session
      // loaded there TPM_RC_REFERENCE_H2, a policy, transient (loaded or not) or other handle
      // TPM_RC_VALUE + H3
      const sh = r.pick([...sessions, ...sessions.map((x) => (0x02000000 | (x & 0xffffff)) >>> 0), 0x02000010, 0x80000000, 0x80000001, 0x81000000]);
      yield* this.#send("GetSessionAuditDigest", `GetSessionAuditDigest of ${sh.toString(16)}`, authed(TPM_CC.GetSessionAuditDigest, [TPM_RH.ENDORSEMENT, r.chance(0.8) ? TPM_RH.NULL : 0x80000002, sh], [pw(), pw()], [...t2b([]), ...u16(NULL_ALG)]));
      for (const s of sessions) yield* this.#flush(s);
    }
  }

  /** Error paths: wrong handles, auth, hierarchy, templates. */
  *#errors(): Scenario {
    const r = this.rng;
    const op = r.int(15);
    const tpl = (t: Template) => pub(t);
    switch (op) {
      case 0:
        yield* this.#send("error", "Load under a handle that is not loaded", authed(TPM_CC.Load, [0x80000002], [pw()], [...t2b(r.bytes(48)), ...pub(T.hmacKey())]), { handles: 1 });
        return;
      case 1:
        // a garbage private: a well-formed 32-byte integrity field (TPM_RC_INTEGRITY), or random
        // bytes whose integrity size is mostly above 64 (TPM_RC_SIZE + P1; fixed in SoftTpm,
        // src/softtpm/fixes-objects.test.ts)
        const junk = r.pick([0, 48, 80]);
        const wellFormed = r.chance(0.5);
        yield* this.#send("error", `Load of a garbage private${wellFormed ? "" : " (random integrity size)"}`, authed(TPM_CC.Load, [this.#parent], [pw()], [...t2b(junk ? (wellFormed ? [...t2b(r.bytes(32)), ...r.bytes(junk - 34)] : r.bytes(junk)) : []), ...pub(T.hmacKey())]), { handles: 1 });
        return;
      case 2:
        yield* this.#send("error", "ReadPublic of an unloaded / odd handle", plain(TPM_CC.ReadPublic, u32(r.pick([0x80000000, 0x80000002, 0x81000007, 0x02000000, TPM_RH.OWNER, 0x01500000]))), { mask: MASK.readPublic });
        return;
      case 3: {
        const h = r.pick([TPM_RH.LOCKOUT, TPM_RH.PLATFORM + 0x10, 0x40000005, 0x01500000, TPM_RH.PLATFORM]);
        const x = yield* this.#send("error", `CreatePrimary in hierarchy ${h.toString(16)}`, authed(TPM_CC.CreatePrimary, [h], [pw()], [...sensCreate(), ...pub(T.hmacKey()), ...t2b([]), ...pcrSel()]), { handles: 1, mask: MASK.createPrimary });
        if (ok(x)) yield* this.#flush(u32at(x.a, 10));
        return;
      }
      case 4:
        yield* this.#send("error", "Create with the wrong parent password", authed(TPM_CC.Create, [r.pick([STORAGE_PARENT, this.#parent])], [pw([1, 2])], [...sensCreate(), ...pub(T.hmacKey()), ...t2b([]), ...pcrSel()]));
        return;
      case 5:
        yield* this.#send("error", "CreatePrimary with the wrong owner password", authed(TPM_CC.CreatePrimary, [TPM_RH.OWNER], [pw([0x33])], [...sensCreate(), ...pub(T.hmacKey()), ...t2b([]), ...pcrSel()]));
        return;
      case 6: {
        // bad templates (refused before any key generation)
        const bad: [string, Template][] = [
          ["RSA 1000 bits", { ...T.rsaStorage(), parms: [...symAes128Cfb, ...u16(NULL_ALG), ...u16(1000), ...u32(0)] }],
          ["ECC unknown curve", { ...T.eccSign(), parms: [...u16(NULL_ALG), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...u16(0x0099), ...u16(NULL_ALG)] }],
          ["restricted decrypt with symmetric NULL", { ...T.eccStorage(), parms: [...u16(NULL_ALG), ...u16(NULL_ALG), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)] }],
          ["fixedTPM without fixedParent", { ...T.hmacKey(), attrs: A.FIXEDTPM | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.SIGN_ENCRYPT }],
          ["reserved attribute bit", { ...T.hmacKey(), attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.SIGN_ENCRYPT | 0x1 }],
          ["nameAlg NULL", { ...T.hmacKey(), nameAlg: NULL_ALG }],
          // key sizes and curves are checked as the template is unmarshalled (TPM_RC_VALUE / TPM_RC_CURVE
          // + P2), before the attributes; keyed-hash attribute checks come before the scheme checks, a
          // storage key's scheme before its symmetric algorithm (fixed in SoftTpm, src/softtpm/fixes-objects.test.ts)
          ["AES 100 bits", { ...T.aes(), parms: [...u16(AES), ...u16(100), ...u16(CFB)] }],
          ["AES 512 bits", { ...T.aes(), parms: [...u16(AES), ...u16(512), ...u16(CFB)] }],
          ["RSA storage with AES-64", { ...T.rsaStorage(), parms: [...u16(AES), ...u16(64), ...u16(CFB), ...u16(NULL_ALG), ...u16(2048), ...u32(0)] }],
          ["RSA 1000 bits, sign and decrypt restricted", { ...T.rsaStorage(), attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.RESTRICTED | A.DECRYPT | A.SIGN_ENCRYPT, parms: [...u16(NULL_ALG), ...u16(NULL_ALG), ...u16(1000), ...u32(0)] }],
          ["keyedhash sign+decrypt with HMAC scheme", { ...T.hmacKey(), attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.SIGN_ENCRYPT | A.DECRYPT }],
          ["keyed hash, scheme NULL, sign, no data", { ...T.sealed(FIXED | A.USERWITHAUTH | A.SIGN_ENCRYPT) }],
          ["keyed hash, scheme NULL, decrypt", { ...T.sealed(FIXED | A.USERWITHAUTH | A.SENSITIVEDATAORIGIN | A.DECRYPT) }],
          ["sealed data with an HMAC scheme, no data", { ...T.sealed(), parms: [...u16(TPM_ALG.HMAC), ...u16(TPM_ALG.SHA256)] }],
          ["restricted decrypt ECC with ECDSA and symmetric NULL", { ...T.eccStorage(), parms: [...u16(NULL_ALG), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)] }],
          ["restricted decrypt ECC on an unknown curve, sign too", { ...T.eccStorage(), attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH | A.RESTRICTED | A.DECRYPT | A.SIGN_ENCRYPT, parms: [...u16(NULL_ALG), ...u16(NULL_ALG), ...u16(0x0099), ...u16(NULL_ALG)] }],
          ["authPolicy of the wrong size", { ...T.hmacKey(), policy: r.bytes(20) }],
          ["neither sign nor decrypt on an RSA key", { ...T.rsaSign(), attrs: FIXED | A.SENSITIVEDATAORIGIN | A.USERWITHAUTH }],
        ];
        const [name, t] = r.pick(bad);
        const primary = r.chance(0.5);
        if (primary) yield* this.#send("bad template", `CreatePrimary: ${name}`, authed(TPM_CC.CreatePrimary, [TPM_RH.OWNER], [pw()], [...sensCreate(), ...tpl(t), ...t2b([]), ...pcrSel()]), { handles: 1, mask: MASK.createPrimary });
        else yield* this.#send("bad template", `Create: ${name}`, authed(TPM_CC.Create, [this.#parent], [pw()], [...sensCreate(), ...tpl(t), ...t2b([]), ...pcrSel()]), { mask: MASK.create });
        return;
      }
      case 7:
        // sensitive data with sensitiveDataOrigin set: TPM_RC_ATTRIBUTES; data too large for a keyed hash: TPM_RC_SIZE
        yield* this.#send("bad template", "Create sealed data with sensitiveDataOrigin", authed(TPM_CC.Create, [this.#parent], [pw()], [...sensCreate([], r.bytes(r.pick([8, 129]))), ...pub(T.sealed(FIXED | A.USERWITHAUTH | A.SENSITIVEDATAORIGIN)), ...t2b([]), ...pcrSel()]));
        return;
      case 8:
        yield* this.#send("error", "LoadExternal of a key pair in the owner hierarchy", plain(TPM_CC.LoadExternal, [...t2b([...u16(TPM_ALG.ECC), ...t2b([]), ...t2b([]), ...t2b(ECC_D)]), ...pub({ type: TPM_ALG.ECC, attrs: A.USERWITHAUTH | A.SIGN_ENCRYPT, parms: [...u16(NULL_ALG), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)], unique: [...t2b(ECC_X), ...t2b(ECC_Y)] }), ...u32(TPM_RH.OWNER)]), { handles: 1 });
        return;
      case 9:
        yield* this.#send("error", "LoadExternal of a key pair with fixedTPM", plain(TPM_CC.LoadExternal, [...t2b([...u16(TPM_ALG.ECC), ...t2b([]), ...t2b([]), ...t2b(ECC_D)]), ...pub({ type: TPM_ALG.ECC, attrs: FIXED | A.USERWITHAUTH | A.SIGN_ENCRYPT, parms: [...u16(NULL_ALG), ...u16(TPM_ALG.ECDSA), ...u16(TPM_ALG.SHA256), ...u16(TPM_ECC_NIST_P256), ...u16(NULL_ALG)], unique: [...t2b(ECC_X), ...t2b(ECC_Y)] }), ...u32(TPM_RH.NULL)]), { handles: 1 });
        return;
      case 10: {
        const target = r.pick([0x81800000, 0x81000001, 0x80000000, 0x82000000]);
        yield* this.#send("EvictControl", `EvictControl of the persistent parent to ${target.toString(16)}`, authed(TPM_CC.EvictControl, [TPM_RH.OWNER, STORAGE_PARENT], [pw([1])], u32(target)));
        return;
      }
      case 11: {
        const h = yield* this.#loadExternalHmac(TPM_ALG.SHA256, r.bytes(16));
        if (h === undefined) return;
        // EvictControl of an external (temporary) object: TPM_RC_ATTRIBUTES + H2 before the handle
        // range; ContextSave with a session: TPM_RC_AUTH_CONTEXT (fixed in SoftTpm,
        // src/softtpm/fixes-objects.test.ts)
        yield* this.#send("error", "EvictControl of an external key", authed(TPM_CC.EvictControl, [TPM_RH.OWNER, h], [pw()], u32(r.pick([0x81000003, 0x81800003]))));
        yield* this.#send("error", "ContextSave with a password session", authed(TPM_CC.ContextSave, [h], [pw()]));
        yield* this.#send("error", "Create under an HMAC key (not a storage parent)", authed(TPM_CC.Create, [h], [pw()], [...sensCreate(), ...pub(T.hmacKey()), ...t2b([]), ...pcrSel()]));
        yield* this.#send("error", "Unseal of an HMAC key", authed(TPM_CC.Unseal, [h], [pw()]));
        yield* this.#send("error", "ContextSave of a persistent handle", plain(TPM_CC.ContextSave, u32(STORAGE_PARENT)));
        yield* this.#flush(h);
        yield* this.#send("error", "FlushContext of a persistent handle", plain(TPM_CC.FlushContext, u32(STORAGE_PARENT)));
        return;
      }
      case 12: {
        // EvictControl round trip: persist a new key, read it, evict it again
        const x = yield* this.#send("CreateLoaded", "CreateLoaded HMAC key to persist", authed(TPM_CC.CreateLoaded, [this.#parent], [pw()], [...sensCreate(), ...pub(T.hmacKey())]), { handles: 1, mask: MASK.createLoaded });
        if (!ok(x)) return;
        const h = u32at(x.a, 10);
        const p = 0x81000000 + r.range(3, 9);
        yield* this.#send("EvictControl", `EvictControl → ${p.toString(16)}`, authed(TPM_CC.EvictControl, [TPM_RH.OWNER, h], [pw()], u32(p)));
        yield* this.#flush(h);
        yield* this.#send("ReadPublic", "ReadPublic of the persisted key", plain(TPM_CC.ReadPublic, u32(p)), { mask: MASK.readPublic });
        yield* this.#send("HMAC", "HMAC with the persisted key", authed(TPM_CC.HMAC, [p], [pw()], [...t2b(r.bytes(8)), ...u16(TPM_ALG.SHA256)]), { mask: MASK.allParams });
        yield* this.#send("EvictControl", `EvictControl ${p.toString(16)} (evict)`, authed(TPM_CC.EvictControl, [TPM_RH.OWNER, p], [pw()], u32(p)));
        yield* this.#send("ReadPublic", "ReadPublic of the evicted handle", plain(TPM_CC.ReadPublic, u32(p)));
        return;
      }
      case 13: {
        // TestParms of ECC parameters (Part 3 §30.3): ECDAA carries a count (TPMS_SCHEME_ECDAA),
        // a hash that is not implemented is TPM_RC_HASH + P1; only schemes and curves both support
        const scheme = r.pick([TPM_ALG.ECDSA, TPM_ALG.ECDH, TPM_ALG.ECDAA, TPM_ALG.ECDAA, NULL_ALG]);
        const hash = r.chance(0.85) ? r.pick([TPM_ALG.SHA256, TPM_ALG.SHA1, TPM_ALG.SHA384]) : 0x0099;
        const details = scheme === NULL_ALG ? [] : [...u16(hash), ...(scheme === TPM_ALG.ECDAA ? u16(r.int(5)) : [])];
        const curve = r.pick([TPM_ECC_NIST_P256, 0x0004]);
        const tail = r.chance(0.9) ? u16(NULL_ALG) : r.pick([[], [...u16(NULL_ALG), 0]]);
        yield* this.#send("TestParms", `TestParms(ECC, scheme ${scheme.toString(16)})`, plain(TPM_CC.TestParms, [...u16(TPM_ALG.ECC), ...u16(NULL_ALG), ...u16(scheme), ...details, ...u16(curve), ...tail]));
        return;
      }
      default: {
        // a policy session that does not satisfy the object's policy, and a wrong session handle
        const s = yield* this.#createLoadSealed(r.bytes(8), [], FIXED | A.USERWITHAUTH | A.NODA);
        if (!s) return;
        const sess = yield* this.#startSession(1);
        if (sess !== undefined) {
          yield* this.#send("Unseal", "Unseal with a policy session (empty authPolicy)", authed(TPM_CC.Unseal, [s.h], [{ handle: sess, value: [] }]), { mask: (q) => sessionBlanks(q, 0) });
          yield* this.#send("Unseal", "Unseal with a trial-type handle that is not loaded", authed(TPM_CC.Unseal, [s.h], [{ handle: sess + 1, value: [] }]));
          yield* this.#flush(sess);
        }
        yield* this.#flush(s.h);
      }
    }
  }
}
