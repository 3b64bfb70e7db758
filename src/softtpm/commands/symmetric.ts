/**
 * Symmetric primitives (TPM 2.0 Part 3 §15): TPM2_EncryptDecrypt (§15.2) and
 * TPM2_EncryptDecrypt2 (§15.3) with AES in CFB, CBC, ECB, CTR and OFB modes (Part 1 §11.4.6;
 * NIST SP 800-38A), and TPM2_HMAC (§15.5) with keyed-hash keys.
 *
 * @packageDocumentation
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { TPM_ALG, TPM_CC, TPM_RC, TPMA_OBJECT } from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import { SOFTTPM_MAX_BUFFER } from "../engine/limits.js";
import { H, type In, type Out, P, Rc } from "../engine/marshal.js";
import { findObject } from "../engine/objects.js";
import { hashImpl } from "../tables.js";

/** AES block size (MAX_SYM_BLOCK_SIZE; the largest TPM2B_IV, Part 2 §11.1.8). */
const BLOCK = 16;

/** TPMI_ALG_CIPHER_MODE (Part 2 §9.30). */
const CIPHER_MODES: readonly number[] = [TPM_ALG.CTR, TPM_ALG.OFB, TPM_ALG.CBC, TPM_ALG.CFB, TPM_ALG.ECB];

/** One AES block encryption with `key` (the forward cipher function of SP 800-38A). */
function blockCipher(key: Uint8Array): (b: Uint8Array) => Uint8Array {
  const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
  return (b) => new Uint8Array(c.update(b));
}

/**
 * Runs AES in `mode` over `data` with `iv` and returns the output and the chaining value the
 * next call continues from (ivOut, Part 3 §15.3): CBC the last cipher block, CFB the last
 * cipher block (a partial one followed by the rest of its key-stream block, as the TPM reference
 * code's CryptSymmetricEncrypt / CryptSymmetricDecrypt leave it; swtpm 0.7.1, measured), OFB the
 * last key-stream block, CTR the next counter, ECB nothing.
 */
export function aesMode(key: Uint8Array, mode: number, decrypt: boolean, iv: Uint8Array, data: Uint8Array): { out: Uint8Array; iv: Uint8Array } {
  const bits = key.length * 8;
  if (mode === TPM_ALG.ECB || mode === TPM_ALG.CBC) {
    const name = `aes-${bits}-${mode === TPM_ALG.ECB ? "ecb" : "cbc"}`;
    const ivArg = mode === TPM_ALG.ECB ? null : iv;
    const c = (decrypt ? createDecipheriv(name, key, ivArg) : createCipheriv(name, key, ivArg)).setAutoPadding(false);
    const out = new Uint8Array(Buffer.concat([c.update(data), c.final()]));
    if (mode === TPM_ALG.ECB) return { out, iv: new Uint8Array(0) };
    const last = (decrypt ? data : out).slice(data.length - BLOCK);
    return { out, iv: data.length === 0 ? iv.slice() : last };
  }
  const enc = blockCipher(key);
  const out = new Uint8Array(data.length);
  const reg = iv.slice();
  for (let off = 0; off < data.length; off += BLOCK) {
    const n = Math.min(BLOCK, data.length - off);
    const ks = enc(reg);
    for (let i = 0; i < n; i++) out[off + i] = data[off + i]! ^ ks[i]!;
    switch (mode) {
      case TPM_ALG.CFB: {
        // the register takes the cipher text; after a partial last block, the cipher text bytes
        // followed by the rest of that block's key stream (libtpms 0.9 / swtpm 0.7.1, measured:
        // the reference code XORs the data into the encrypted register in place)
        const ct = decrypt ? data : out;
        reg.set(ks);
        reg.set(ct.subarray(off, off + n), 0);
        break;
      }
      case TPM_ALG.OFB:
        reg.set(ks);
        break;
      default: // CTR: a 128-bit big-endian counter
        for (let i = BLOCK - 1; i >= 0; i--) {
          reg[i] = (reg[i]! + 1) & 0xff;
          if (reg[i] !== 0) break;
        }
    }
  }
  return { out, iv: reg };
}

/**
 * The shared work of TPM2_EncryptDecrypt and EncryptDecrypt2 (Part 3 §15.2, §15.3), with the
 * parameter numbers of the command: `np` maps "inData", "decrypt", "mode", "ivIn" to them.
 */
function encryptDecrypt(t: Engine, handle: number, decrypt: boolean, modeIn: number, iv: Uint8Array, data: Uint8Array, out: Out, np: { inData: number; mode: number; ivIn: number }): void {
  const key = findObject(t, handle)!;
  if (key.pub.type !== TPM_ALG.SYMCIPHER) throw new Rc(H(TPM_RC.KEY, 1));
  const a = key.pub.objectAttributes;
  // unrestricted, with decrypt to decrypt and sign to encrypt (Part 3 §15.2)
  if (a & TPMA_OBJECT.RESTRICTED || !(a & (decrypt ? TPMA_OBJECT.DECRYPT : TPMA_OBJECT.SIGN_ENCRYPT))) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  let mode = key.pub.symmetric.mode;
  if (mode !== TPM_ALG.NULL && modeIn !== TPM_ALG.NULL && mode !== modeIn) throw new Rc(P(TPM_RC.MODE, np.mode));
  if (mode === TPM_ALG.NULL) {
    if (modeIn === TPM_ALG.NULL) throw new Rc(P(TPM_RC.MODE, np.mode));
    mode = modeIn;
  }
  // ECB takes no IV, the other modes one block (TPM_RC_SIZE on ivIn); CBC and ECB whole blocks (on inData)
  if (mode === TPM_ALG.ECB ? iv.length !== 0 : iv.length !== BLOCK) throw new Rc(P(TPM_RC.SIZE, np.ivIn));
  if ((mode === TPM_ALG.CBC || mode === TPM_ALG.ECB) && data.length % BLOCK !== 0) throw new Rc(P(TPM_RC.SIZE, np.inData));
  const r = aesMode(key.sensitive.sensitive, mode, decrypt, iv, data);
  out.tpm2b(r.out);
  out.tpm2b(r.iv);
}

/** Reads TPMI_YES_NO (TPM_RC_VALUE otherwise) as parameter `n`. */
function yesNo(inp: In, n: number): boolean {
  inp.param = n;
  const v = inp.u8();
  if (v > 1) throw new Rc(P(TPM_RC.VALUE, n));
  return v === 1;
}

/** Reads TPMI_ALG_CIPHER_MODE+ (TPM_RC_MODE otherwise) as parameter `n`. */
function cipherMode(inp: In, n: number): number {
  inp.param = n;
  const m = inp.u16();
  if (m !== TPM_ALG.NULL && !CIPHER_MODES.includes(m)) throw new Rc(P(TPM_RC.MODE, n));
  return m;
}

/** TPM2_EncryptDecrypt, Part 3 §15.2 (decrypt, mode, ivIn, inData). */
function encryptDecrypt1(t: Engine, h: number[], inp: In, out: Out): void {
  const decrypt = yesNo(inp, 1);
  const mode = cipherMode(inp, 2);
  inp.param = 3;
  const iv = inp.tpm2b(BLOCK).slice();
  inp.param = 4;
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER).slice();
  inp.done();
  encryptDecrypt(t, h[0]!, decrypt, mode, iv, data, out, { inData: 4, mode: 2, ivIn: 3 });
}

/** TPM2_EncryptDecrypt2, Part 3 §15.3 (inData, decrypt, mode, ivIn: inData first, so a session can encrypt it). */
function encryptDecrypt2(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const data = inp.tpm2b(SOFTTPM_MAX_BUFFER).slice();
  const decrypt = yesNo(inp, 2);
  const mode = cipherMode(inp, 3);
  inp.param = 4;
  const iv = inp.tpm2b(BLOCK).slice();
  inp.done();
  encryptDecrypt(t, h[0]!, decrypt, mode, iv, data, out, { inData: 1, mode: 3, ivIn: 4 });
}

/**
 * TPM2_HMAC, Part 3 §15.5: a keyed-hash key (TPM_RC_TYPE otherwise), unrestricted
 * (TPM_RC_ATTRIBUTES), with sign (TPM_RC_KEY); its scheme's hash, or the caller's when it has
 * none; both given and different, or neither, is TPM_RC_VALUE on hashAlg.
 */
function hmacCmd(t: Engine, h: number[], inp: In, out: Out): void {
  inp.param = 1;
  const buffer = inp.tpm2b(SOFTTPM_MAX_BUFFER).slice();
  inp.param = 2;
  const inHash = inp.u16();
  if (inHash !== TPM_ALG.NULL && !hashImpl(inHash)) throw new Rc(P(TPM_RC.HASH, 2));
  inp.done();
  const key = findObject(t, h[0]!)!;
  if (key.pub.type !== TPM_ALG.KEYEDHASH) throw new Rc(H(TPM_RC.TYPE, 1));
  if (key.pub.objectAttributes & TPMA_OBJECT.RESTRICTED) throw new Rc(H(TPM_RC.ATTRIBUTES, 1));
  if (!(key.pub.objectAttributes & TPMA_OBJECT.SIGN_ENCRYPT)) throw new Rc(H(TPM_RC.KEY, 1));
  const own = key.pub.scheme.scheme === TPM_ALG.NULL ? TPM_ALG.NULL : key.pub.scheme.hashAlg;
  const alg = own === TPM_ALG.NULL ? inHash : inHash === TPM_ALG.NULL || inHash === own ? own : TPM_ALG.NULL;
  if (alg === TPM_ALG.NULL) throw new Rc(P(TPM_RC.VALUE, 2));
  out.tpm2b(hashImpl(alg)!.mac(key.sensitive.sensitive, buffer));
}

/** Part 3 §15.2, §15.3 and §15.5 in the dispatch table. */
export const symmetricCommands: CommandEntries = [
  [TPM_CC.HMAC, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => hmacCmd(t, h, i, o) }],
  [TPM_CC.EncryptDecrypt, { encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => encryptDecrypt1(t, h, i, o) }],
  [TPM_CC.EncryptDecrypt2, { decrypt: true, encrypt: true, handles: ["object"], auth: 1, run: (t, h, i, o) => encryptDecrypt2(t, h, i, o) }],
];
