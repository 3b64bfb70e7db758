/**
 * HMAC, policy and trial sessions of the typed client ({@link AuthSession}), after go-tpm's
 * `tpm2` sessions and tpm2-pytss / ESAPI: the client keeps each session's key and nonces,
 * computes every command HMAC and checks every response HMAC, encrypts the first command
 * parameter and decrypts the first response parameter, as TPM 2.0 Part 1 §19.6 and §21 say.
 *
 * The design, in short:
 * - `tpm.startAuthSession(options)` sends TPM2_StartAuthSession (Part 3 §11.1) and returns an
 *   {@link AuthSession}. A session may be bound (`bind`: an entity's handle and authValue enter
 *   the session key) and salted (`salt`: a loaded RSA or ECC key; the client reads its public
 *   area and encrypts the salt itself: RSA-OAEP with the label "SECRET", or one-pass ECDH and
 *   KDFe, Part 1 §11.4.10.3 and Annex C.6, both through node:crypto). sessionKey = KDFa(hashAlg, bindAuth ‖ salt, "ATH",
 *   nonceTPM, nonceCaller, digest bits) (Part 1 §19.6.8).
 * - A typed call takes a session where it takes a password: `auth: session`, or
 *   `auth: { session, password }` where `password` is the entity's authValue (the HMAC key of an
 *   HMAC session, and of a policy session after PolicyAuthValue; sent in clear after
 *   PolicyPassword). `options.sessions` adds sessions that only encrypt or audit.
 * - Per command, the client reads the Name of every handle in the handle area (Part 1 §16: a
 *   permanent, PCR or session handle is its own Name; an object's comes from TPM2_ReadPublic, an
 *   NV index's from TPM2_NV_ReadPublic, each time, since a handle can be flushed and reused and
 *   an NV index's Name changes with TPMA_NV_WRITTEN), computes cpHash = H(commandCode ‖ Names ‖
 *   parameters) (Part 1 §18.7) and each session's HMAC = HMAC(sessionKey ‖ authValue, cpHash ‖
 *   nonceCaller ‖ nonceTPM ‖ [nonceTPMdecrypt ‖ nonceTPMencrypt] ‖ sessionAttributes)
 *   (Part 1 §19.6.5); a fresh nonceCaller every command.
 * - Every response HMAC = HMAC(key, rpHash ‖ nonceTPM ‖ nonceCaller ‖ attributes), rpHash =
 *   H(TPM_RC_SUCCESS ‖ commandCode ‖ parameters) (Part 1 §19.6.16), is checked before the
 *   response is parsed; one that does not verify is a {@link TpmSessionError}, never a result.
 * - Parameter encryption is AES-CFB (Part 1 §21.3): key and IV from KDFa(hashAlg, sessionKey ‖
 *   authValue, "CFB", nonceNewer, nonceOlder, keyBits + 128), on the data of the first TPM2B
 *   command parameter (`decrypt`) and of the first TPM2B response parameter (`encrypt`), for the
 *   commands whose first parameter is a TPM2B (for the others the bit is left off, as ESAPI does).
 * - A session ends with `session.close()` (TPM2_FlushContext), `await using`, or a command sent
 *   with `continueSession: false`.
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmFormatError, TpmkitError, type TpmkitErrorOptions } from "../errors/index.js";
import type { CallOptions } from "./tpm.js";
import type { CommandSpec } from "../wire/command.js";
import { authBytes } from "../wire/command.js";
import { TpmReader, TpmWriter } from "../wire/buffer.js";
import { TPM_ALG, TPM_CC, TPM_ECC_CURVE, TPM_HT, TPM_RC, TPM_RH, TPM_RS, TPM_SE, TPM_ST, TPMA_SESSION } from "../wire/constants.js";
import { TpmResponseError } from "../wire/rc.js";
import type { TpmtPublic } from "../wire/structures.js";
import { HASH_ALGS, type HashAlgName } from "../wire/types.js";
import { concatBytes, constantTimeEqual, u32be } from "../wire/bytes.js";
import { nodeCrypto, publicKeyToCrypto } from "./templates.js";

/** What a session is for: authorization by HMAC, by policy, or a trial policy (digest only). Part 2 §6.11 TPM_SE. */
export type SessionType = "hmac" | "policy" | "trial";

/** TPMA_SESSION bits the client sets on a session's commands (Part 2 §8.4). */
export interface SessionAttributes {
  /** Keep the session after the command (default true); false: the TPM flushes it after a successful command. */
  continueSession?: boolean;
  /** Encrypt the first command parameter (a TPM2B) with this session. */
  decrypt?: boolean;
  /** Ask the TPM to encrypt the first response parameter (a TPM2B) with this session. */
  encrypt?: boolean;
  /** Audit the command with this session (Part 1 §19.6.6). */
  audit?: boolean;
}

/** Options of {@link Tpm.startAuthSession}. */
export interface StartAuthSessionOptions extends CallOptions {
  /** "hmac" (default), "policy" or "trial". */
  type?: SessionType;
  /** The session's hash (authHash), sha256 by default. */
  hashAlg?: HashAlgName;
  /** The entity the session is bound to: its handle and authValue (Part 1 §19.6.10). */
  bind?: { handle: number; auth?: Uint8Array | string };
  /** A loaded RSA or ECC decryption key that salts the session (Part 1 §19.6.13). */
  salt?: number;
  /** Parameter encryption: "aes128cfb" (default), "aes256cfb" or null (none). */
  symmetric?: "aes128cfb" | "aes256cfb" | null;
  /** The attributes the session's commands carry (default: continueSession only). */
  attributes?: SessionAttributes;
}

/**
 * The response HMAC of a session did not verify (Part 1 §19.6.16), or the response's session
 * area does not match the command's: the response is not returned, whatever its parameters say.
 */
export class TpmSessionError extends TpmkitError {
  static override readonly errorName: string = "TpmSessionError";
  /** The session's handle. */
  readonly sessionHandle: number;
  constructor(message: string, sessionHandle: number, options?: TpmkitErrorOptions) {
    super("TPM_SESSION", message, options);
    this.sessionHandle = sessionHandle;
  }
}

/** What a session needs from the Tpm that owns it (the Tpm itself). @internal */
export interface SessionHost {
  run<R>(spec: CommandSpec<R>, options?: CallOptions): Promise<R>;
  transmit(command: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  readPublic(handle: number, options?: CallOptions): Promise<{ public: TpmtPublic; name: Uint8Array }>;
  nvReadPublic(handle: number, options?: CallOptions): Promise<{ name: Uint8Array }>;
  flushContext(handle: number, options?: CallOptions): Promise<void>;
}

const HASH_NODE: Record<number, string> = { [TPM_ALG.SHA1]: "sha1", [TPM_ALG.SHA256]: "sha256", [TPM_ALG.SHA384]: "sha384", [TPM_ALG.SHA512]: "sha512" };

function nodeHashName(alg: number): string {
  const n = HASH_NODE[alg];
  if (!n) throw new TpmArgumentError(`session: hash algorithm 0x${alg.toString(16)} is not supported`);
  return n;
}
function hashOf(alg: number, ...parts: Uint8Array[]): Uint8Array {
  const h = nodeCrypto().createHash(nodeHashName(alg));
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
function hmacOf(alg: number, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = nodeCrypto().createHmac(nodeHashName(alg), key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
function randomBytes(n: number): Uint8Array {
  return new Uint8Array(nodeCrypto().randomBytes(n));
}

/** `b` without its trailing zero bytes: how the TPM uses an authValue in a key (Part 1 §19.6.5). */
function trimZeros(b: Uint8Array): Uint8Array {
  let n = b.length;
  while (n > 0 && b[n - 1] === 0) n--;
  return b.subarray(0, n);
}

/** KDFa, SP 800-108 counter mode with HMAC (Part 1 §11.4.10.2); `label` gets its terminating zero. */
function kdfa(hashAlg: number, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  const labelBytes = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 1, off = 0; off < out.length; i++) {
    const block = hmacOf(hashAlg, key, u32be(i), labelBytes, contextU, contextV, u32be(bits));
    out.set(block.subarray(0, Math.min(block.length, out.length - off)), off);
    off += block.length;
  }
  return out;
}

/** KDFe, the one-step KDF of SP 800-56A §5.8.1 (Part 1 §11.4.10.3): H(counter ‖ Z ‖ label ‖ U ‖ V)… */
function kdfe(hashAlg: number, z: Uint8Array, label: string, partyU: Uint8Array, partyV: Uint8Array, bits: number): Uint8Array {
  const labelBytes = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let i = 1, off = 0; off < out.length; i++) {
    const block = hashOf(hashAlg, u32be(i), z, labelBytes, partyU, partyV);
    out.set(block.subarray(0, Math.min(block.length, out.length - off)), off);
    off += block.length;
  }
  return out;
}

/** AES-CFB (full-block feedback, as Part 1 §21.3 and the TPM use it) of `data` with key and IV. */
function aesCfb(key: Uint8Array, iv: Uint8Array, data: Uint8Array, encrypt: boolean): Uint8Array {
  const name = `aes-${key.length * 8}-cfb`;
  const nc = nodeCrypto();
  const c = encrypt ? nc.createCipheriv(name, key, iv) : nc.createDecipheriv(name, key, iv);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

/** Parameter encryption of `data` (Part 1 §21.3): AES-CFB, key ‖ IV = KDFa(hash, key, "CFB", nonceNewer, nonceOlder, keyBits + 128). */
function paramCrypt(s: AuthSession, key: Uint8Array, nonceNewer: Uint8Array, nonceOlder: Uint8Array, data: Uint8Array, encrypt: boolean): Uint8Array {
  if (data.length === 0) return data;
  const bits = s.symmetricKeyBits;
  const k = kdfa(s.hashId, key, "CFB", nonceNewer, nonceOlder, bits + 128);
  return aesCfb(k.subarray(0, bits / 8), k.subarray(bits / 8), data, encrypt);
}

/**
 * Commands whose first command parameter is a TPM2B, so a session may `decrypt` it (Part 3, each
 * command's parameter table; the TPMA_CC-independent list SoftTpm and swtpm 0.7.1 accept).
 */
const DECRYPT_CCS: ReadonlySet<number> = /* @__PURE__ */ new Set([
  TPM_CC.RSA_Encrypt, TPM_CC.RSA_Decrypt, TPM_CC.ECDH_ZGen, TPM_CC.Certify, TPM_CC.CertifyCreation, TPM_CC.Quote, TPM_CC.GetTime, TPM_CC.NV_Certify,
  TPM_CC.ActivateCredential, TPM_CC.MakeCredential, TPM_CC.SequenceUpdate, TPM_CC.SequenceComplete, TPM_CC.EventSequenceComplete, TPM_CC.CreatePrimary,
  TPM_CC.HierarchyChangeAuth, TPM_CC.NV_DefineSpace, TPM_CC.NV_Write, TPM_CC.NV_ChangeAuth, TPM_CC.NV_Extend, TPM_CC.Create, TPM_CC.Load,
  TPM_CC.LoadExternal, TPM_CC.ObjectChangeAuth, TPM_CC.CreateLoaded, TPM_CC.PCR_Event, TPM_CC.PolicyNV, TPM_CC.PolicySigned, TPM_CC.PolicySecret,
  TPM_CC.PolicyAuthorize, TPM_CC.PolicyPCR, TPM_CC.StirRandom, TPM_CC.VerifySignature, TPM_CC.Sign, TPM_CC.HMAC, TPM_CC.EncryptDecrypt2,
]);

/** Commands whose first response parameter is a TPM2B, so a session may ask the TPM to `encrypt` it (Part 3). */
const ENCRYPT_CCS: ReadonlySet<number> = /* @__PURE__ */ new Set([
  TPM_CC.RSA_Encrypt, TPM_CC.RSA_Decrypt, TPM_CC.ECDH_KeyGen, TPM_CC.ECDH_ZGen, TPM_CC.Certify, TPM_CC.CertifyCreation, TPM_CC.Quote, TPM_CC.GetTime,
  TPM_CC.NV_Certify, TPM_CC.ActivateCredential, TPM_CC.MakeCredential, TPM_CC.SequenceComplete, TPM_CC.CreatePrimary, TPM_CC.NV_Read, TPM_CC.Create,
  TPM_CC.ReadPublic, TPM_CC.ObjectChangeAuth, TPM_CC.Unseal, TPM_CC.CreateLoaded, TPM_CC.PolicySigned, TPM_CC.PolicySecret, TPM_CC.PolicyGetDigest,
  TPM_CC.GetRandom, TPM_CC.HMAC, TPM_CC.EncryptDecrypt, TPM_CC.EncryptDecrypt2,
]);

/** The authorization of one handle: a password, or a session with the entity's authValue. */
export interface SessionAuthorization {
  session: AuthSession;
  /** The entity's authValue (UTF-8 if a string). */
  password?: Uint8Array | string;
  /**
   * The authValue after the command, when the command changes it (TPM2_HierarchyChangeAuth,
   * TPM2_NV_ChangeAuth): the TPM keys the response HMAC with the new value. @internal
   */
  responseAuth?: Uint8Array | string;
}

const sessionLocks = /* @__PURE__ */ new WeakMap<AuthSession, Promise<void>>();

/**
 * A session started with {@link Tpm.startAuthSession} (Part 3 §11.1): its handle, hash, key and
 * nonces, kept by the client. Pass it as a call's `auth` (or `{ session, password }`), or in
 * `options.sessions` for parameter encryption or audit only; the policy commands
 * ({@link Tpm.policyPCR} and the others) take it as their policy session. Commands that use one
 * session run one at a time (the nonces roll with every command).
 *
 * @example
 * ```ts
 * await using s = await tpm.startAuthSession({ type: "hmac", attributes: { decrypt: true, encrypt: true } });
 * const data = await tpm.unseal(handle, { auth: { session: s, password: "pw" } });
 * ```
 */
export class AuthSession {
  /** The session handle (TPM_HT_HMAC_SESSION 0x02… or TPM_HT_POLICY_SESSION 0x03…). */
  readonly handle: number;
  /** "hmac", "policy" or "trial". */
  readonly type: SessionType;
  /** The session's hash. */
  readonly hashAlg: HashAlgName;
  /** Parameter encryption algorithm, or null. */
  readonly symmetric: "aes128cfb" | "aes256cfb" | null;
  /** The attributes of this session's next commands (change them with {@link AuthSession.setAttributes}). */
  attributes: Readonly<Required<SessionAttributes>>;
  /** @internal */
  readonly host: SessionHost;
  /** @internal */
  readonly hashId: number;
  /** @internal */
  readonly sessionKey: Uint8Array;
  /** @internal the bound entity's handle and Name at the start (Part 1 §19.6.10). */
  readonly bind: { handle: number; name: Uint8Array } | undefined;
  /** @internal */
  nonceTPMValue: Uint8Array;
  /** @internal PolicyAuthValue asserted (the entity's authValue keys the HMAC). */
  authValueNeeded = false;
  /** @internal PolicyPassword asserted (the authValue goes in clear). */
  passwordNeeded = false;
  #closed = false;

  /** @internal use {@link Tpm.startAuthSession}. */
  constructor(init: { host: SessionHost; handle: number; type: SessionType; hashAlg: HashAlgName; symmetric: "aes128cfb" | "aes256cfb" | null; sessionKey: Uint8Array; nonceTPM: Uint8Array; bind: { handle: number; name: Uint8Array } | undefined; attributes: SessionAttributes }) {
    this.host = init.host;
    this.handle = init.handle;
    this.type = init.type;
    this.hashAlg = init.hashAlg;
    this.hashId = HASH_ALGS[init.hashAlg].id;
    this.symmetric = init.symmetric;
    this.sessionKey = init.sessionKey;
    this.nonceTPMValue = init.nonceTPM;
    this.bind = init.bind;
    this.attributes = normalizeAttributes(init.attributes, "tpm.startAuthSession");
  }

  /** The TPM's last nonce (nonceTPM): what TPM2_PolicySigned's signer signs (Part 3 §23.3). A copy. */
  get nonceTPM(): Uint8Array {
    return this.nonceTPMValue.slice();
  }

  /** True once the session was flushed (close, or a command with continueSession false). */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get symmetricKeyBits(): number {
    return this.symmetric === "aes256cfb" ? 256 : 128;
  }

  /** Changes the attributes of the session's next commands (the ones not given are kept). */
  setAttributes(attributes: SessionAttributes): void {
    this.attributes = normalizeAttributes({ ...this.attributes, ...attributes }, "session.setAttributes");
  }

  /**
   * aHash of TPM2_PolicySigned (Part 3 §23.3): H(nonceTPM ‖ expiration ‖ cpHashA ‖ policyRef)
   * with the session's hash, nonceTPM left out when `includeNonce` is false. What the
   * authorizing key signs.
   */
  policySignedDigest(options: { expiration?: number; cpHashA?: Uint8Array; policyRef?: Uint8Array; includeNonce?: boolean } = {}): Uint8Array {
    const e = options.expiration ?? 0;
    if (!Number.isInteger(e) || e < -0x80000000 || e > 0x7fffffff) throw new TpmArgumentError(`session.policySignedDigest: options.expiration must be an INT32, got ${String(e)}`);
    return hashOf(this.hashId, options.includeNonce === false ? new Uint8Array(0) : this.nonceTPMValue, u32be(e >>> 0), options.cpHashA ?? new Uint8Array(0), options.policyRef ?? new Uint8Array(0));
  }

  /** @internal marks the session flushed. */
  markClosed(): void {
    this.#closed = true;
  }

  /** @internal the session's policy data was reset (PolicyRestart, or a command that used it). */
  resetPolicy(): void {
    this.authValueNeeded = false;
    this.passwordNeeded = false;
  }

  /** Flushes the session (TPM2_FlushContext, Part 3 §28.4); nothing when it is closed already. */
  async close(options?: CallOptions): Promise<void> {
    if (this.#closed) return;
    await this.host.flushContext(this.handle, options);
    this.#closed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function normalizeAttributes(a: SessionAttributes | undefined, title: string): Required<SessionAttributes> {
  if (a !== undefined && (typeof a !== "object" || a === null)) throw new TpmArgumentError(`${title}: attributes must be an object`);
  const out: Required<SessionAttributes> = { continueSession: true, decrypt: false, encrypt: false, audit: false };
  for (const k of Object.keys(out) as (keyof SessionAttributes)[]) {
    const v = a?.[k];
    if (v === undefined) continue;
    if (typeof v !== "boolean") throw new TpmArgumentError(`${title}: attributes.${k} must be a boolean, got ${typeof v}`);
    out[k] = v;
  }
  return out;
}

/** The TPMS_ECC_POINT of `x`, `y` (Part 2 §11.2.5.2). */
function eccPointBytes(x: Uint8Array, y: Uint8Array): Uint8Array {
  return new TpmWriter(8 + x.length + y.length).tpm2b(x).tpm2b(y).finish();
}

function leftPad(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

/**
 * The salt and its encryption for a tpmKey (Part 1 §19.6.13): RSA: a random salt of the nameAlg's
 * size, RSA-OAEP with the nameAlg and the label "SECRET\0" (Part 1 Annex B.10.3); ECC: an
 * ephemeral key Qe on the key's curve, Z = (de · Q).x, salt = KDFe(nameAlg, Z, "SECRET", Qe.x,
 * Q.x, digest bits), encryptedSalt = Qe as a TPMS_ECC_POINT (Part 1 Annex C.6.2).
 */
async function makeSalt(pub: TpmtPublic, title: string): Promise<{ salt: Uint8Array; encrypted: Uint8Array }> {
  const nameHash = nodeHashName(pub.nameAlg);
  const size = hashOf(pub.nameAlg).length;
  if (pub.type === TPM_ALG.RSA) {
    const { keyObject } = publicKeyToCrypto(pub);
    const salt = randomBytes(size);
    const nc = nodeCrypto();
    const encrypted = new Uint8Array(nc.publicEncrypt({ key: keyObject, padding: nc.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: nameHash, oaepLabel: new TextEncoder().encode("SECRET\0") }, salt));
    return { salt, encrypted };
  }
  if (pub.type === TPM_ALG.ECC) {
    // node:crypto's ECDH (as the rest of the client's crypto: reached through nodeCrypto, so the
    // typed client's bundle carries no curve arithmetic; SoftTpm uses @noble/curves for its side)
    const curve = pub.curveId === TPM_ECC_CURVE.NIST_P256 ? "prime256v1" : pub.curveId === TPM_ECC_CURVE.NIST_P384 ? "secp384r1" : undefined;
    if (!curve) throw new TpmArgumentError(`${title}: options.salt is an ECC key on curve 0x${pub.curveId.toString(16)}; P-256 and P-384 are supported`);
    const n = pub.curveId === TPM_ECC_CURVE.NIST_P256 ? 32 : 48;
    if (pub.unique.x.length > n || pub.unique.y.length > n) throw new TpmFormatError(`${title}: the salt key's public point is longer than its curve's coordinates`);
    const q = concatBytes(Uint8Array.of(4), leftPad(pub.unique.x, n), leftPad(pub.unique.y, n));
    const ecdh = nodeCrypto().createECDH(curve);
    const qe = new Uint8Array(ecdh.generateKeys()); // 04 ‖ x ‖ y
    let z: Uint8Array;
    try {
      z = new Uint8Array(ecdh.computeSecret(q)); // the x coordinate of de · Q
    } catch (e) {
      throw new TpmFormatError(`${title}: the salt key's public point is not on its curve`, { cause: e });
    }
    const qx = qe.subarray(1, 1 + n);
    const qy = qe.subarray(1 + n);
    const salt = kdfe(pub.nameAlg, z, "SECRET", qx, pub.unique.x, size * 8);
    return { salt, encrypted: eccPointBytes(qx, qy) };
  }
  throw new TpmArgumentError(`${title}: options.salt must be a loaded RSA or ECC key, got an object of type 0x${pub.type.toString(16)}`);
}

/** The Name of handle `h` for cpHash (Part 1 §16), read from the TPM for objects and NV indices. */
export async function nameOfHandle(host: SessionHost, h: number, options: CallOptions | undefined): Promise<Uint8Array> {
  const ht = h >>> 24;
  if (ht === TPM_HT.TRANSIENT || ht === TPM_HT.PERSISTENT) {
    try {
      return (await host.readPublic(h, options)).name;
    } catch (e) {
      // a hash or HMAC sequence object has no public area and an empty Name (Part 1 §16; libtpms
      // answers TPM2_ReadPublic of a sequence with TPM_RC_SEQUENCE)
      if (e instanceof TpmResponseError && e.base === TPM_RC.SEQUENCE) return new Uint8Array(0);
      throw e;
    }
  }
  if (ht === TPM_HT.NV_INDEX) return (await host.nvReadPublic(h, options)).name;
  return u32be(h);
}

/**
 * TPM2_StartAuthSession (Part 3 §11.1) and the session's key. @internal (use {@link Tpm.startAuthSession})
 */
export async function startSession(host: SessionHost, o: StartAuthSessionOptions, title: string): Promise<AuthSession> {
  const type = o.type ?? "hmac";
  if (type !== "hmac" && type !== "policy" && type !== "trial") throw new TpmArgumentError(`${title}: options.type must be "hmac", "policy" or "trial", got ${String(type)}`);
  const hashAlg = o.hashAlg ?? "sha256";
  if (typeof hashAlg !== "string" || !Object.hasOwn(HASH_ALGS, hashAlg) || !HASH_NODE[HASH_ALGS[hashAlg].id]) throw new TpmArgumentError(`${title}: options.hashAlg must be one of ${Object.keys(HASH_ALGS).join(", ")}, got ${String(hashAlg)}`);
  const hashId = HASH_ALGS[hashAlg].id;
  const symmetric = o.symmetric === undefined ? "aes128cfb" : o.symmetric;
  if (symmetric !== null && symmetric !== "aes128cfb" && symmetric !== "aes256cfb") throw new TpmArgumentError(`${title}: options.symmetric must be "aes128cfb", "aes256cfb" or null, got ${String(symmetric)}`);
  const attributes = normalizeAttributes(o.attributes, title);
  if ((attributes.decrypt || attributes.encrypt) && symmetric === null) throw new TpmArgumentError(`${title}: attributes.decrypt / encrypt need options.symmetric`);
  let bindHandle: number = TPM_RH.NULL;
  let bindAuth: Uint8Array = new Uint8Array(0);
  if (o.bind !== undefined) {
    if (typeof o.bind !== "object" || o.bind === null || !Number.isInteger(o.bind.handle) || o.bind.handle < 0 || o.bind.handle > 0xffffffff) throw new TpmArgumentError(`${title}: options.bind must be { handle, auth? }`);
    if (o.bind.auth !== undefined && typeof o.bind.auth !== "string" && !(o.bind.auth instanceof Uint8Array)) throw new TpmArgumentError(`${title}: options.bind.auth must be a Uint8Array or a string (UTF-8)`);
    bindHandle = o.bind.handle >>> 0;
    bindAuth = trimZeros(authBytes(o.bind.auth));
  }
  let tpmKey: number = TPM_RH.NULL;
  let salt: Uint8Array = new Uint8Array(0);
  let encryptedSalt: Uint8Array = new Uint8Array(0);
  if (o.salt !== undefined) {
    if (!Number.isInteger(o.salt) || o.salt < 0 || o.salt > 0xffffffff) throw new TpmArgumentError(`${title}: options.salt must be a key handle, got ${String(o.salt)}`);
    tpmKey = o.salt >>> 0;
    const { public: pub } = await host.readPublic(tpmKey, o);
    ({ salt, encrypted: encryptedSalt } = await makeSalt(pub, title));
  }
  const bindName = bindHandle === TPM_RH.NULL ? undefined : await nameOfHandle(host, bindHandle, o);
  const digestLen = hashOf(hashId).length;
  const nonceCaller = randomBytes(digestLen);
  const keyBits = symmetric === "aes256cfb" ? 256 : 128;
  const r = await host.run(
    {
      cc: TPM_CC.StartAuthSession,
      handles: [tpmKey, bindHandle],
      params: (w) => {
        w.tpm2b(nonceCaller).tpm2b(encryptedSalt).u8(type === "hmac" ? TPM_SE.HMAC : type === "policy" ? TPM_SE.POLICY : TPM_SE.TRIAL);
        if (symmetric === null) w.u16(TPM_ALG.NULL);
        else w.u16(TPM_ALG.AES).u16(keyBits).u16(TPM_ALG.CFB);
        w.u16(hashId);
      },
      responseHandles: 1,
      response: (rd, [handle]) => ({ handle: handle!, nonceTPM: rd.tpm2b("nonceTPM", 64).slice() }),
    },
    o,
  );
  const want = type === "hmac" ? TPM_HT.HMAC_SESSION : TPM_HT.POLICY_SESSION;
  if (r.handle >>> 24 !== want || r.nonceTPM.length < 16) {
    await host.flushContext(r.handle).catch(() => {});
    throw new TpmFormatError(`${title}: the TPM returned session handle 0x${r.handle.toString(16)} with a ${r.nonceTPM.length}-byte nonceTPM`);
  }
  // sessionKey = KDFa(authHash, bindAuth ‖ salt, "ATH", nonceTPM, nonceCaller, digest bits), Part 1 §19.6.8
  const sessionKey = bindHandle === TPM_RH.NULL && tpmKey === TPM_RH.NULL ? new Uint8Array(0) : kdfa(hashId, concatBytes(bindAuth, salt), "ATH", r.nonceTPM, nonceCaller, digestLen * 8);
  return new AuthSession({
    host,
    handle: r.handle,
    type,
    hashAlg,
    symmetric,
    sessionKey,
    nonceTPM: r.nonceTPM,
    // a policy session is never bound: the bind entity enters only its key (Part 1 §19.6.10)
    bind: type === "hmac" && bindName ? { handle: bindHandle, name: bindName } : undefined,
    attributes,
  });
}

/** One entry of a command's session area. */
interface Entry {
  session: AuthSession | undefined;
  /** The authorized handle's authValue (trimmed), for an authorization. */
  auth: Uint8Array;
  /** The authValue after the command (ChangeAuth commands). */
  responseAuth: Uint8Array;
  password: Uint8Array;
  /** Index of the authorized handle, or -1 for a session that only encrypts or audits. */
  index: number;
  attrs: number;
  nonceCaller: Uint8Array;
  hmacKey: Uint8Array;
  /** The entity's authValue is in the HMAC key. */
  withAuth: boolean;
}

async function withLocks<R>(sessions: AuthSession[], fn: () => Promise<R>): Promise<R> {
  const prev = sessions.map((s) => sessionLocks.get(s) ?? Promise.resolve());
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  for (const s of sessions) sessionLocks.set(s, mine);
  await Promise.all(prev);
  try {
    return await fn();
  } finally {
    release();
    for (const s of sessions) if (sessionLocks.get(s) === mine) sessionLocks.delete(s);
  }
}

/**
 * Runs a command whose authorizations include sessions, or with extra sessions (Part 1 §18.6,
 * §19.6, §21): Names, cpHash, HMACs, parameter encryption, then the response's HMACs checked and
 * its first parameter decrypted before `spec.response` reads it. @internal
 */
export function runWithSessions<R>(host: SessionHost, spec: CommandSpec<R>, extra: readonly AuthSession[], options: CallOptions | undefined, title: string): Promise<R> {
  const auths = spec.auths ?? [];
  const handles = spec.handles ?? [];
  const all: AuthSession[] = [];
  for (const a of auths) if ("session" in a && a.session !== undefined) all.push(a.session as AuthSession);
  all.push(...extra);
  for (const s of all) {
    if (!(s instanceof AuthSession)) return Promise.reject(new TpmArgumentError(`${title}: a session must be an AuthSession from tpm.startAuthSession`));
    if (s.host !== host) return Promise.reject(new TpmArgumentError(`${title}: session 0x${s.handle.toString(16)} belongs to another Tpm`));
    if (s.closed) return Promise.reject(new TpmArgumentError(`${title}: session 0x${s.handle.toString(16)} is closed`));
  }
  if (new Set(all).size !== all.length) return Promise.reject(new TpmArgumentError(`${title}: a session may appear once per command`));
  if (auths.length > handles.length) return Promise.reject(new TpmArgumentError(`${title}: ${auths.length} authorizations for ${handles.length} handles`));
  if (auths.length + extra.length > 3) return Promise.reject(new TpmArgumentError(`${title}: at most 3 sessions per command (Part 1 §18.6)`));
  return withLocks(all, () => runLocked(host, spec, extra, options, title));
}

async function runLocked<R>(host: SessionHost, spec: CommandSpec<R>, extra: readonly AuthSession[], options: CallOptions | undefined, title: string): Promise<R> {
  const auths = spec.auths ?? [];
  const handles = (spec.handles ?? []).map((h) => h >>> 0);
  const names: Uint8Array[] = [];
  for (const h of handles) names.push(await nameOfHandle(host, h, options));
  const pw = new TpmWriter(256);
  spec.params?.(pw);
  let params = pw.finish().slice();

  const entries: Entry[] = [];
  auths.forEach((a, i) => {
    const sa = a as { session?: AuthSession; password?: Uint8Array | string; responseAuth?: Uint8Array | string };
    const password = authBytes(sa.password);
    const auth = trimZeros(password);
    entries.push({ session: sa.session, auth, responseAuth: sa.responseAuth === undefined ? auth : trimZeros(authBytes(sa.responseAuth)), password, index: i, attrs: 0, nonceCaller: new Uint8Array(0), hmacKey: new Uint8Array(0), withAuth: false });
  });
  for (const s of extra) entries.push({ session: s, auth: new Uint8Array(0), responseAuth: new Uint8Array(0), password: new Uint8Array(0), index: -1, attrs: 0, nonceCaller: new Uint8Array(0), hmacKey: new Uint8Array(0), withAuth: false });

  // attributes: decrypt / encrypt only where the command has a TPM2B there, one session each (Part 1 §18.6)
  let dec = -1;
  let enc = -1;
  entries.forEach((e, j) => {
    const s = e.session;
    if (!s) {
      e.attrs = TPMA_SESSION.CONTINUESESSION;
      return;
    }
    const at = s.attributes;
    e.attrs = (at.continueSession ? TPMA_SESSION.CONTINUESESSION : 0) | (at.audit ? TPMA_SESSION.AUDIT : 0);
    if (s.symmetric !== null && at.decrypt && dec < 0 && DECRYPT_CCS.has(spec.cc)) {
      e.attrs |= TPMA_SESSION.DECRYPT;
      dec = j;
    }
    if (s.symmetric !== null && at.encrypt && enc < 0 && ENCRYPT_CCS.has(spec.cc)) {
      e.attrs |= TPMA_SESSION.ENCRYPT;
      enc = j;
    }
    e.nonceCaller = randomBytes(hashOf(s.hashId).length);
    // the HMAC key: sessionKey ‖ authValue (Part 1 §19.6.5) — left out for the bound entity of an
    // HMAC session (§19.6.10) and for a policy session without PolicyAuthValue (§19.7.1); an
    // extra session (encrypt / audit only) uses the sessionKey alone
    let withAuth = false;
    if (e.index >= 0) {
      if (s.type === "hmac") {
        const bound = s.bind !== undefined && s.bind.handle === handles[e.index] && constantTimeEqual(s.bind.name, names[e.index]!);
        withAuth = !bound;
      } else withAuth = s.authValueNeeded;
    }
    e.withAuth = withAuth;
    e.hmacKey = withAuth ? concatBytes(s.sessionKey, e.auth) : s.sessionKey;
  });

  // the first command parameter encrypted (Part 1 §21), before cpHash; the key takes the
  // authorized entity's authValue when the session authorizes (reference code, ParseSessionBuffer)
  if (dec >= 0) {
    const e = entries[dec]!;
    const s = e.session!;
    if (params.length < 2) throw new TpmArgumentError(`${title}: no parameter to encrypt`);
    const size = (params[0]! << 8) | params[1]!;
    if (size > params.length - 2) throw new TpmArgumentError(`${title}: the first parameter's size field is past the end`);
    const key = e.index >= 0 ? concatBytes(s.sessionKey, e.auth) : s.sessionKey;
    params.set(paramCrypt(s, key, e.nonceCaller, s.nonceTPMValue, params.subarray(2, 2 + size), true), 2);
  }

  const cpHashes = new Map<number, Uint8Array>();
  const cpHash = (alg: number): Uint8Array => {
    let c = cpHashes.get(alg);
    if (!c) cpHashes.set(alg, (c = hashOf(alg, u32be(spec.cc), ...names, params)));
    return c;
  };

  const w = new TpmWriter(512 + params.length);
  w.u16(TPM_ST.SESSIONS).u32(0).u32(spec.cc);
  for (const h of handles) w.u32(h);
  const areaAt = w.length;
  w.u32(0);
  entries.forEach((e, j) => {
    const s = e.session;
    if (!s) {
      w.u32(TPM_RS.PW).u16(0).u8(e.attrs).tpm2b(e.password);
      return;
    }
    let hmac: Uint8Array;
    if (s.type !== "hmac" && s.passwordNeeded && e.index >= 0) {
      hmac = e.password; // PolicyPassword: the authValue in clear (Part 3 §23.18)
    } else {
      // nonceTPMdecrypt / nonceTPMencrypt: only in the first session's HMAC, each when another session does it (Part 1 §19.6.5)
      const extraNonces: Uint8Array[] = [];
      if (j === 0) {
        if (dec > 0) extraNonces.push(entries[dec]!.session!.nonceTPMValue);
        if (enc > 0 && enc !== dec) extraNonces.push(entries[enc]!.session!.nonceTPMValue);
      }
      hmac = hmacOf(s.hashId, e.hmacKey, cpHash(s.hashId), e.nonceCaller, s.nonceTPMValue, ...extraNonces, Uint8Array.of(e.attrs));
    }
    w.u32(s.handle).tpm2b(e.nonceCaller).u8(e.attrs).tpm2b(hmac);
  });
  w.patchU32(areaAt, w.length - areaAt - 4);
  w.bytes(params);
  w.patchU32(2, w.length);
  const cmd = w.finish();

  const rsp = await host.transmit(cmd, options);
  const r = new TpmReader(rsp);
  const tag = r.u16("tag");
  const size = r.u32("responseSize");
  const rc = r.u32("responseCode");
  if (size !== rsp.length) throw new TpmFormatError(`response size field says ${size} bytes, ${rsp.length} present`);
  if (rc !== 0) throw new TpmResponseError(rc, spec.cc);
  if (tag !== TPM_ST.SESSIONS) throw new TpmFormatError(`response tag 0x${tag.toString(16)} does not match the command's (sessions)`);
  const rHandles: number[] = [];
  for (let i = 0; i < (spec.responseHandles ?? 0); i++) rHandles.push(r.u32("handle"));
  const paramSize = r.u32("parameterSize");
  if (paramSize > r.remaining) throw new TpmFormatError(`parameterSize ${paramSize} exceeds the ${r.remaining} bytes left`);
  const rParams = r.bytesN(paramSize, "response parameters").slice();
  const rSessions = entries.map(() => ({ nonce: r.tpm2b("nonceTPM", 64).slice(), attrs: r.u8("sessionAttributes"), hmac: r.tpm2b("hmac", 64).slice() }));
  r.expectEnd("response sessions");

  // every session's nonces roll (the TPM rolled them), then every HMAC is checked
  let failure: TpmSessionError | undefined;
  const rpHashes = new Map<number, Uint8Array>();
  entries.forEach((e, j) => {
    const s = e.session;
    const got = rSessions[j]!;
    if (!s) {
      if (got.nonce.length !== 0 || got.hmac.length !== 0) failure ??= new TpmSessionError(`${title}: the password session of the response is not empty`, TPM_RS.PW);
      return;
    }
    const nonceCaller = e.nonceCaller;
    const newNonce = got.nonce;
    if (newNonce.length === 0) {
      failure ??= new TpmSessionError(`${title}: session 0x${s.handle.toString(16)} came back without a nonceTPM`, s.handle);
      return;
    }
    s.nonceTPMValue = newNonce;
    if (s.type !== "hmac" && s.passwordNeeded && e.index >= 0) {
      // after PolicyPassword the response HMAC is empty (Part 1 §19.6.17; reference code, BuildSingleResponseAuth)
      if (got.hmac.length !== 0) failure ??= new TpmSessionError(`${title}: a PolicyPassword session came back with an HMAC`, s.handle);
    } else {
      let rp = rpHashes.get(s.hashId);
      if (!rp) rpHashes.set(s.hashId, (rp = hashOf(s.hashId, u32be(0), u32be(spec.cc), rParams)));
      let key = e.hmacKey;
      if (e.withAuth) key = concatBytes(s.sessionKey, e.responseAuth);
      const want = hmacOf(s.hashId, key, rp, newNonce, nonceCaller, Uint8Array.of(got.attrs));
      if (!constantTimeEqual(want, got.hmac)) failure ??= new TpmSessionError(`${title}: the response HMAC of session 0x${s.handle.toString(16)} does not verify (Part 1 §19.6.16)`, s.handle);
    }
    if (!(e.attrs & TPMA_SESSION.CONTINUESESSION)) s.markClosed();
    else if (s.type !== "hmac") s.resetPolicy(); // the TPM resets a policy session after it authorizes (Part 1 §19.7.1)
  });
  if (failure) throw failure;

  // the first response parameter decrypted (Part 1 §21): nonceNewer = the new nonceTPM
  if (enc >= 0) {
    const e = entries[enc]!;
    const s = e.session!;
    if (rParams.length >= 2) {
      const n = (rParams[0]! << 8) | rParams[1]!;
      if (n > rParams.length - 2) throw new TpmFormatError(`${title}: the first response parameter's size field is past the end`);
      const key = e.index >= 0 ? concatBytes(s.sessionKey, e.responseAuth) : s.sessionKey;
      rParams.set(paramCrypt(s, key, s.nonceTPMValue, e.nonceCaller, rParams.subarray(2, 2 + n), false), 2);
    }
  }
  const pr = new TpmReader(rParams);
  const out = spec.response(pr, rHandles);
  pr.expectEnd("response parameters");
  return out;
}
