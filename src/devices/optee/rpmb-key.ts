/**
 * The RPMB authentication key as OP-TEE computes it.
 *
 * Sources: optee_os core/tee/tee_rpmb_fs.c tee_rpmb_key_gen (the CID with its PRV byte, index
 * RPMB_CID_PRV_OFFSET = 9, and its CRC byte, RPMB_CID_CRC_OFFSET = 15, zeroed, because both change
 * on an eMMC firmware update) and, with CFG_RPMB_TESTKEY, the fixed public key; optee_os
 * core/kernel/huk_subkey.c huk_subkey_derive (HMAC-SHA256 keyed with the HUK over the usage as a
 * 32-bit word in the CPU's byte order, little-endian on Arm, then the constant data) and
 * core/include/kernel/huk_subkey.h (HUK_SUBKEY_RPMB = 0); optee_os scripts/derive_rpmb_key.py
 * (the same derivation off-target, `struct.pack('<I', 0)`, and `--testkey`).
 *
 * @packageDocumentation
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { TpmArgumentError } from "../../errors/index.js";
import { HUK_LENGTH } from "../../bus/tee/constants.js";
import { RPMB_CID_SIZE } from "../../bus/tee/rpmb.js";

/** `enum huk_subkey_usage` (optee_os core/include/kernel/huk_subkey.h). */
export const HUK_SUBKEY = /* @__PURE__ */ Object.freeze({
  RPMB: 0,
  SSK: 1,
  DIE_ID: 2,
  UNIQUE_TA: 3,
  TA_ENC: 4,
  SE050: 5,
});

/** Index of the CID's PRV (product revision) byte, zeroed before derivation (tee_rpmb_fs.c RPMB_CID_PRV_OFFSET). */
export const RPMB_CID_PRV_OFFSET = 9;
/** Index of the CID's CRC7 byte, zeroed before derivation (tee_rpmb_fs.c RPMB_CID_CRC_OFFSET). */
export const RPMB_CID_CRC_OFFSET = 15;

/**
 * The fixed key of an OP-TEE built with CFG_RPMB_TESTKEY=y (tee_rpmb_fs.c; printed by
 * `scripts/derive_rpmb_key.py --testkey`). Public and the same on every device: test builds only.
 */
export const RPMB_TEST_KEY: Uint8Array = /* @__PURE__ */ Uint8Array.from([
  0xd3, 0xeb, 0x3e, 0xc3, 0x6e, 0x33, 0x4c, 0x9f, 0x98, 0x8c, 0xe2, 0xc0, 0xb8, 0x59, 0x54, 0x61,
  0x0d, 0x2b, 0xcf, 0x86, 0x64, 0x84, 0x4d, 0xf2, 0xab, 0x56, 0xe6, 0xc6, 0x1b, 0xb7, 0x01, 0xe4,
]);

/**
 * OP-TEE's subkey derivation (huk_subkey_derive, without CFG_CORE_HUK_SUBKEY_COMPAT):
 * `HMAC-SHA256(huk, u32le(usage) ‖ constData)`, 32 bytes.
 */
export function hukSubkeyDerive(huk: Uint8Array, usage: number, constData: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (!(huk instanceof Uint8Array) || huk.length !== HUK_LENGTH) {
    throw new TpmArgumentError(`HUK must be ${HUK_LENGTH} bytes (OP-TEE HW_UNIQUE_KEY_LENGTH)`);
  }
  if (!Number.isInteger(usage) || usage < 0 || usage > 0xffffffff) throw new TpmArgumentError("HUK subkey usage must be a uint32");
  const word = new Uint8Array(4);
  new DataView(word.buffer).setUint32(0, usage, true);
  return hmac.create(sha256, huk).update(word).update(constData).digest();
}

/**
 * The RPMB key OP-TEE derives on every boot from its hardware unique key and the eMMC's CID
 * (tee_rpmb_key_gen): `huk_subkey_derive(HUK_SUBKEY_RPMB, cid with bytes 9 and 15 zeroed)`.
 * Returns 32 bytes. Throws `TpmArgumentError` unless the HUK and the CID are 16 bytes each.
 */
export function deriveRpmbKey(huk: Uint8Array, cid: Uint8Array): Uint8Array {
  if (!(cid instanceof Uint8Array) || cid.length !== RPMB_CID_SIZE) {
    throw new TpmArgumentError(`eMMC CID must be ${RPMB_CID_SIZE} bytes`);
  }
  const message = cid.slice();
  message[RPMB_CID_PRV_OFFSET] = 0;
  message[RPMB_CID_CRC_OFFSET] = 0;
  return hukSubkeyDerive(huk, HUK_SUBKEY.RPMB, message);
}
