/**
 * Credential protection (TPM 2.0 Part 3 §12.5 TPM2_ActivateCredential, §12.6
 * TPM2_MakeCredential; Part 1 §24 "Credential Protection"). Part 3 keeps both in the object
 * chapter; they live in their own file here.
 *
 * MakeCredential draws a seed, encrypts it to an asymmetric restricted decryption key (an EK):
 * RSA-OAEP with label "IDENTITY\0" and the key's nameAlg (Part 1 §B.10.3), or ECDH with an
 * ephemeral key and KDFe(Z, "IDENTITY", ephemeral x, key x) (Part 1 §C.6.4). From the seed, with
 * the key's nameAlg, symKey = KDFa(seed, "STORAGE", Name, "", keyBits) encrypts the credential
 * (a TPM2B_DIGEST) with AES-CFB and a zero IV, and HMACkey = KDFa(seed, "INTEGRITY", "", "",
 * digest bits) gives outerHMAC = HMAC(HMACkey, encIdentity ‖ Name) (Part 1 §24.4, §24.5). The
 * credentialBlob is TPM2B_DIGEST(outerHMAC) ‖ encIdentity. Name is that of the object the
 * credential is for: ActivateCredential recomputes the HMAC with the Name of activateHandle, so
 * any other object gets TPM_RC_INTEGRITY. The seed is shared with the protector by the
 * engine's secret sharing, as duplication shares its seed.
 *
 * @packageDocumentation
 */
import { TpmWriter } from "../../wire/buffer.js";
import { u32be } from "../../wire/bytes.js";
import { TPM_ALG, TPM_CC, TPM_RC, TPMA_OBJECT } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { aesCfb } from "../engine/crypto.js";
import { MAX_ENCRYPTED_SECRET } from "../engine/limits.js";
import { H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { type TpmObject, findObject, secretDecrypt, secretEncrypt } from "../engine/objects.js";
import { equal } from "../engine/sign.js";
import { type HashImpl, hashImpl } from "../tables.js";

/** Largest TPM2B_DIGEST (sizeof(TPMU_HA)). */
const MAX_DIGEST = 64;
/**
 * Largest TPM2B_NAME objectName taken: sizeof(TPMU_NAME), which in the reference code's C is 68
 * (a TPMT_HA of 66 bytes in a union with a 4-byte TPM_HANDLE, padded); swtpm 0.7.1, measured:
 * 68 bytes are taken, 70 are TPM_RC_SIZE.
 */
const MAX_NAME = 68;
/** Largest TPM2B_ID_OBJECT: sizeof(TPMS_ID_OBJECT), two TPM2B_DIGEST (Part 2 §12.4.2). */
const MAX_ID_OBJECT = 2 * (2 + MAX_DIGEST);
/** The OAEP label and KDFe label of credential protection ("IDENTITY" with its NUL, Part 1 §24.4). */
const IDENTITY = /* @__PURE__ */ new TextEncoder().encode("IDENTITY\0");

/**
 * Is `o` an asymmetric, restricted decryption key (what a credential can be protected with)?
 * TPM_RC_TYPE + H + n otherwise (Part 3 §12.5, §12.6).
 */
function protector(o: TpmObject | undefined, n: number): TpmObject {
  if (!o) throw new Rc(H(TPM_RC.HANDLE, n));
  const a = o.pub.objectAttributes;
  if ((o.pub.type !== TPM_ALG.RSA && o.pub.type !== TPM_ALG.ECC) || !(a & TPMA_OBJECT.DECRYPT) || !(a & TPMA_OBJECT.RESTRICTED)) throw new Rc(H(TPM_RC.TYPE, n));
  return o;
}

/** KDFa(a, key, label, contextU, "", bits) (Part 1 §11.4.10.2). */
function kdfa(a: HashImpl, key: Uint8Array, label: string, contextU: Uint8Array, bits: number): Uint8Array {
  const lb = new TextEncoder().encode(label + "\0");
  const out = new Uint8Array(bits / 8);
  for (let i = 1, off = 0; off < out.length; i++, off += a.size) {
    const block = a.mac(key, u32be(i), lb, contextU, u32be(bits));
    out.set(block.subarray(0, Math.min(a.size, out.length - off)), off);
  }
  return out;
}

/** symKey and HMACkey of credential protection (Part 1 §24.4, §24.5), with the protector's nameAlg and symmetric key size. */
function credentialKeys(key: TpmObject, seed: Uint8Array, name: Uint8Array): { symKey: Uint8Array; hmacKey: Uint8Array; a: HashImpl } {
  const a = hashImpl(key.pub.nameAlg)!;
  const keyBits = key.pub.type === TPM_ALG.RSA || key.pub.type === TPM_ALG.ECC ? key.pub.symmetric.keyBits : 128;
  return { symKey: kdfa(a, seed, "STORAGE", name, keyBits), hmacKey: kdfa(a, seed, "INTEGRITY", new Uint8Array(0), a.size * 8), a };
}

/** TPM2_MakeCredential, Part 3 §12.6. No authorization: it uses only the public key. */
function makeCredential(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const credential = inp.tpm2b(MAX_DIGEST).slice();
  inp.param = 2;
  const objectName = inp.tpm2b(MAX_NAME).slice();
  inp.done();
  const key = protector(findObject(t, h[0]!), 1);
  // the credential may be no larger than a digest of the key's nameAlg
  if (credential.length > hashImpl(key.pub.nameAlg)!.size) throw new Rc(P(TPM_RC.SIZE, 1));
  const { seed, secret } = secretEncrypt(t, key, IDENTITY);
  const { symKey, hmacKey, a } = credentialKeys(key, seed, objectName);
  const encIdentity = aesCfb(symKey, new TpmWriter(2 + credential.length).tpm2b(credential).finish(), true);
  const integrity = a.mac(hmacKey, encIdentity, objectName);
  out.tpm2b(new TpmWriter(4 + integrity.length + encIdentity.length).tpm2b(integrity).bytes(encIdentity).finish());
  out.tpm2b(secret);
}

/**
 * TPM2_ActivateCredential, Part 3 §12.5: keyHandle (USER role) recovers the seed, and the
 * credential opens only with the Name of activateHandle (ADMIN role). Errors, in the reference
 * code's order: keyHandle not an asymmetric restricted decryption key TPM_RC_TYPE + H2; secret
 * of the wrong size TPM_RC_SIZE + P2, not decrypting TPM_RC_FAILURE (swtpm 0.7.1, measured; an
 * ECC point off the curve TPM_RC_ECC_POINT + P2); credentialBlob whose
 * HMAC does not match TPM_RC_INTEGRITY + P1, or whose credential does not unmarshal (or leaves
 * bytes over) TPM_RC_SIZE / TPM_RC_INSUFFICIENT + P1.
 */
function activateCredential(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const blob = inp.tpm2b(MAX_ID_OBJECT).slice();
  inp.param = 2;
  const secret = inp.tpm2b(MAX_ENCRYPTED_SECRET).slice();
  inp.done();
  const activate = findObject(t, h[0]!)!;
  const key = protector(findObject(t, h[1]!), 2);
  const seed = secretDecrypt(key, IDENTITY, secret, 2);
  const { symKey, hmacKey, a } = credentialKeys(key, seed, activate.name);
  // integrityHMAC: a TPM2B_DIGEST first
  if (blob.length < 2) throw new Rc(P(TPM_RC.INSUFFICIENT, 1));
  const n = (blob[0]! << 8) | blob[1]!;
  if (n > MAX_DIGEST) throw new Rc(P(TPM_RC.SIZE, 1));
  if (blob.length - 2 < n) throw new Rc(P(TPM_RC.INSUFFICIENT, 1));
  const integrity = blob.subarray(2, 2 + n);
  const encIdentity = blob.subarray(2 + n);
  if (!equal(a.mac(hmacKey, encIdentity, activate.name), integrity)) throw new Rc(P(TPM_RC.INTEGRITY, 1));
  const plain = aesCfb(symKey, encIdentity, false);
  if (plain.length < 2) throw new Rc(P(TPM_RC.INSUFFICIENT, 1));
  const size = (plain[0]! << 8) | plain[1]!;
  if (size > MAX_DIGEST) throw new Rc(P(TPM_RC.SIZE, 1));
  if (plain.length - 2 < size) throw new Rc(P(TPM_RC.INSUFFICIENT, 1));
  if (plain.length - 2 !== size) throw new Rc(P(TPM_RC.SIZE, 1));
  out.tpm2b(plain.subarray(2));
}

/** Part 3 §12.5–§12.6 in the dispatch table. */
export const credentialCommands: CommandEntries = [
  [TPM_CC.ActivateCredential, { decrypt: true, encrypt: true, handles: ["object", "object"], auth: 2, run: (t, h, i, o) => activateCredential(t, h, i, o) }],
  [TPM_CC.MakeCredential, { decrypt: true, encrypt: true, handles: ["object"], auth: 0, run: (t, h, i, o) => makeCredential(t, h, i, o) }],
];
