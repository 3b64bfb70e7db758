/**
 * Capability commands (TPM 2.0 Part 3 §30): TPM2_GetCapability for every TPM_CAP (Part 2 §6.12),
 * with the paging (property, count, moreData) swtpm 0.7.1 / libtpms 0.9 give (measured), and
 * TPM2_TestParms.
 *
 * @packageDocumentation
 */
import {
  TPM_ALG,
  TPM_CAP,
  TPM_CC,
  TPM_HR,
  TPM_HT,
  TPM_NT,
  TPM_PT,
  TPM_RC,
  TPM_RH,
  TPM_RS,
  TPMA_ALGORITHM,
  TPMA_MEMORY,
  TPMA_PERMANENT,
  TPMA_STARTUP_CLEAR,
} from "../../wire/constants.js";
import type { CommandEntries } from "../engine/dispatch.js";
import type { Engine } from "../engine/engine.js";
import {
  CLOCK_UPDATE_MS,
  MAX_SEQUENCES,
  MAX_SESSIONS,
  SOFTTPM_MAX_BUFFER,
  SOFTTPM_MAX_COMMAND_SIZE,
} from "../engine/limits.js";
import { type In, type Out, P, Rc } from "../engine/marshal.js";
import { NV_DATA_MAX, NV_INDICES_MAX, PERSISTENT_OBJECTS_MAX, daParameters, nvType } from "../state.js";
import { objectSlotsUsed } from "../engine/objects.js";
import { MAX_OBJECT_CONTEXT_BYTES, MAX_SESSION_CONTEXT_BYTES } from "../engine/contexts.js";
import { COMMAND_ATTRIBUTES, HASH_IMPLS, IMPLEMENTED_ALGS, PCR_COUNT, PCR_PROPERTIES, PCR_SELECT_SIZE, hashImpl } from "../tables.js";
import { AES_KEY_SIZES, RSA_KEY_SIZES, SYM_MODES } from "../engine/objects.js";
import { CURVES } from "../engine/ecc.js";
import { auditState, auditedCommands } from "../engine/audit.js";
import { hierarchyPolicy, hierarchyState } from "./hierarchy.js";
import { allocatedPcrs } from "./pcr.js";

/** The permanent handles TPM_CAP_HANDLES lists (TPM_HT_PERMANENT). */
const PERMANENT_HANDLES = [TPM_RH.OWNER, TPM_RH.NULL, TPM_RS.PW, TPM_RH.LOCKOUT, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM, TPM_RH.PLATFORM_NV];

// Most entries one response holds, per list type (MAX_CAP_DATA divided by the entry size, as the
// TPM 2.0 reference implementation and libtpms size them; the policy list never has more than 4)
const MAX_CAP_ALGS = 169; // TPMS_ALG_PROPERTY
const MAX_CAP_HANDLES = 254; // TPM_HANDLE
const MAX_CAP_CC = 254; // TPMA_CC
const MAX_TPM_PROPERTIES = 127; // TPMS_TAGGED_PROPERTY and TPMS_TAGGED_PCR_SELECT
const MAX_TAGGED_POLICIES = 169;

/** Writes a list's count and its first entries (at most `count`, at most `max`); returns moreData. */
function emit<T>(out: Out, list: readonly T[], count: number, max: number, write: (x: T) => void): boolean {
  const n = Math.min(list.length, count, max);
  out.u32(n);
  for (let i = 0; i < n; i++) write(list[i]!);
  return list.length > n;
}

/** TPM2_GetCapability, Part 3 §30.2. */
function getCapability(t: Engine, inp: In, out: Out): void {
  const cap = inp.u32();
  if (cap > TPM_CAP.ACT && cap !== TPM_CAP.VENDOR_PROPERTY) throw new Rc(P(TPM_RC.VALUE, 1)); // TPM_CAP unmarshal
  inp.param = 2;
  const property = inp.u32();
  inp.param = 3;
  const count = inp.u32();
  inp.done();
  // TPM_CAP_VENDOR_PROPERTY is a valid TPM_CAP, refused only after the size check (as libtpms;
  // swtpm 0.7.1, measured: trailing bytes give TPM_RC_SIZE, none TPM_RC_VALUE + P1)
  if (cap === TPM_CAP.VENDOR_PROPERTY) throw new Rc(P(TPM_RC.VALUE, 1));
  const moreAt = out.skip(1);
  out.u32(cap);
  let more = false;
  switch (cap) {
    case TPM_CAP.ALGS: {
      // TPML_ALG_PROPERTY: the algorithms SoftTpm implements, with swtpm 0.7.1's TPMA_ALGORITHM
      const list = IMPLEMENTED_ALGS.filter(([a]) => a >= (property & 0xffff)); // property is read as a TPM_ALG_ID
      more = emit(out, list, count, MAX_CAP_ALGS, ([a, attrs]) => {
        out.u16(a);
        out.u32(attrs);
      });
      break;
    }
    case TPM_CAP.HANDLES: {
      const ht = property >>> 24;
      let handles: number[];
      if (ht === TPM_HT.PCR) handles = Array.from({ length: PCR_COUNT }, (_, i) => i);
      else if (ht === TPM_HT.NV_INDEX) handles = t.ps.nv.map((x) => x.handle);
      else if (ht === TPM_HT.PERMANENT) handles = PERMANENT_HANDLES;
      else if (ht === TPM_HT.TRANSIENT) handles = [...t.sequences.keys(), ...t.objects.keys()].sort((x, y) => x - y);
      else if (ht === TPM_HT.HMAC_SESSION) {
        // TPM_HT_LOADED_SESSION (Part 2 §7.2): every loaded session from the asked slot on, each
        // by its own handle, a policy or trial session as 0x03xxxxxx (swtpm 0.7.1, measured)
        const from = property & TPM_HR.HANDLE_MASK;
        handles = [...t.hmacSessions.entries()].filter(([x]) => (x & TPM_HR.HANDLE_MASK) >= from).sort(([x], [y]) => x - y).map(([x, s]) => (s.policy ? (TPM_HR.POLICY_SESSION | (x & TPM_HR.HANDLE_MASK)) >>> 0 : x));
        more = emit(out, handles, count, MAX_CAP_HANDLES, (x) => out.u32(x));
        break;
      } else if (ht === TPM_HT.PERSISTENT) handles = t.ps.persistent.map((x) => x.handle);
      else if (ht === TPM_HT.POLICY_SESSION) {
        // TPM_HT_SAVED_SESSION: saved sessions, listed by their 0x02xxxxxx handles as libtpms
        // does (swtpm 0.7.1, measured), from the asked slot on
        const from = property & TPM_HR.HANDLE_MASK;
        handles = [...t.savedSessions.keys()].filter((x) => (x & TPM_HR.HANDLE_MASK) >= from).sort((x, y) => x - y);
        more = emit(out, handles, count, MAX_CAP_HANDLES, (x) => out.u32(x));
        break;
      } else throw new Rc(P(TPM_RC.HANDLE, 2));
      more = emit(out, handles.filter((x) => x >= property), count, MAX_CAP_HANDLES, (x) => out.u32(x));
      break;
    }
    case TPM_CAP.COMMANDS: {
      // TPML_CCA
      const list = COMMAND_ATTRIBUTES.filter((a) => (a & 0xffff) >= property);
      more = emit(out, list, count, MAX_CAP_CC, (a) => out.u32(a));
      break;
    }
    case TPM_CAP.PCRS: {
      // TPML_PCR_SELECTION, the active allocation (TPM2_PCR_Allocate, Part 3 §22.5), every bank
      // listed, an unallocated one with an empty selection; property must be 0 and a count of 0
      // returns nothing with moreData set (as libtpms; swtpm 0.7.1, measured)
      if (property !== 0) throw new Rc(P(TPM_RC.VALUE, 2));
      if (count === 0) {
        out.u32(0);
        more = true;
        break;
      }
      out.u32(HASH_IMPLS.length);
      HASH_IMPLS.forEach((a, b) => {
        const m = allocatedPcrs(t, b);
        out.u16(a.alg);
        out.u8(PCR_SELECT_SIZE);
        out.u8(m & 0xff);
        out.u8((m >>> 8) & 0xff);
        out.u8((m >>> 16) & 0xff);
      });
      break;
    }
    case TPM_CAP.TPM_PROPERTIES: {
      // the group (fixed 0x1xx or variable 0x2xx) holding `property`
      const group = property < TPM_PT.VAR ? fixedProperties(t) : property < TPM_PT.VAR + TPM_PT.GROUP ? variableProperties(t) : [];
      const list = group.filter(([tag]) => tag >= property);
      more = emit(out, list, count, MAX_TPM_PROPERTIES, ([tag, v]) => {
        out.u32(tag);
        out.u32(v);
      });
      break;
    }
    case TPM_CAP.PCR_PROPERTIES: {
      // TPML_TAGGED_PCR_PROPERTY
      const list = PCR_PROPERTIES.filter(([tag]) => tag >= property);
      more = emit(out, list, count, MAX_TPM_PROPERTIES, ([tag, bits]) => {
        out.u32(tag);
        out.u8(PCR_SELECT_SIZE);
        out.u8(bits & 0xff);
        out.u8((bits >>> 8) & 0xff);
        out.u8((bits >>> 16) & 0xff);
      });
      break;
    }
    case TPM_CAP.AUTH_POLICIES: {
      // TPML_TAGGED_POLICY: each hierarchy's TPMT_HA (TPM_ALG_NULL while its policy is the Empty
      // Buffer; the TPM2_SetPrimaryPolicy hash and digest otherwise; swtpm 0.7.1, measured)
      if (property >>> 24 !== TPM_HT.PERMANENT) throw new Rc(P(TPM_RC.VALUE, 2));
      const list = [TPM_RH.OWNER, TPM_RH.LOCKOUT, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM].filter((x) => x >= property);
      more = emit(out, list, count, MAX_TAGGED_POLICIES, (x) => {
        out.u32(x);
        const p = hierarchyPolicy(t, x);
        out.u16(p ? p.alg : TPM_ALG.NULL);
        if (p) out.bytes(p.policy);
      });
      break;
    }
    case TPM_CAP.ACT: // no authenticated countdown timers
      if (property < TPM_RH.ACT_0 || property > TPM_RH.ACT_F) throw new Rc(P(TPM_RC.VALUE, 2));
      out.u32(0);
      break;
    case TPM_CAP.AUDIT_COMMANDS:
      // TPML_CC: the audited command codes from `property` on (engine/audit.ts)
      more = emit(out, auditedCommands(t, property), count, MAX_CAP_CC, (c) => out.u32(c));
      break;
    case TPM_CAP.PP_COMMANDS:
    case TPM_CAP.ECC_CURVES:
      // TPML_ECC_CURVE lists the curves the TPM implements (Part 3 §30.2): SoftTpm implements no
      // ECC (TPM_CAP_ALGS lists hashes only), so the list is empty with moreData NO, where
      // swtpm 0.7.1 lists NIST P-192..P-521, BN P-256/P-638 and SM2 P-256 (measured)
      out.u32(0);
      break;
    default:
      throw new Rc(P(TPM_RC.VALUE, 1));
  }
  out.buf[moreAt] = more ? 1 : 0;
}

/** The fixed TPM properties (TPM_PT 0x100 group), Part 2 §6.13. */
function fixedProperties(t: Engine): [number, number][] {
  const ascii2_0 = 0x322e3000; // "2.0\0"
  return [
    [TPM_PT.FAMILY_INDICATOR, ascii2_0],
    [TPM_PT.LEVEL, 0],
    [TPM_PT.REVISION, 164], // 1.64
    [TPM_PT.DAY_OF_YEAR, 75],
    [TPM_PT.YEAR, 2021],
    [TPM_PT.MANUFACTURER, t.manufacturer],
    [TPM_PT.VENDOR_STRING_1, t.vendor[0]!],
    [TPM_PT.VENDOR_STRING_2, t.vendor[1]!],
    [TPM_PT.VENDOR_STRING_3, t.vendor[2]!],
    [TPM_PT.VENDOR_STRING_4, t.vendor[3]!],
    [TPM_PT.VENDOR_TPM_TYPE, 1],
    [TPM_PT.FIRMWARE_VERSION_1, t.firmware[0]],
    [TPM_PT.FIRMWARE_VERSION_2, t.firmware[1]],
    [TPM_PT.INPUT_BUFFER, SOFTTPM_MAX_BUFFER],
    [TPM_PT.HR_TRANSIENT_MIN, MAX_SEQUENCES],
    [TPM_PT.HR_PERSISTENT_MIN, PERSISTENT_OBJECTS_MAX],
    [TPM_PT.HR_LOADED_MIN, MAX_SESSIONS], // HMAC sessions
    [TPM_PT.ACTIVE_SESSIONS_MAX, MAX_SESSIONS],
    [TPM_PT.PCR_COUNT, PCR_COUNT],
    [TPM_PT.PCR_SELECT_MIN, PCR_SELECT_SIZE],
    [TPM_PT.CONTEXT_GAP_MAX, 0xffff],
    [TPM_PT.NV_COUNTERS_MAX, 0], // no limit of its own
    [TPM_PT.NV_INDEX_MAX, NV_DATA_MAX],
    [TPM_PT.MEMORY, TPMA_MEMORY.SHAREDNV | TPMA_MEMORY.OBJECTCOPIEDTORAM],
    [TPM_PT.CLOCK_UPDATE, CLOCK_UPDATE_MS],
    [TPM_PT.CONTEXT_HASH, TPM_ALG.SHA512],
    [TPM_PT.CONTEXT_SYM, TPM_ALG.AES],
    [TPM_PT.CONTEXT_SYM_SIZE, 0x100],
    [TPM_PT.ORDERLY_COUNT, 0xff],
    [TPM_PT.MAX_COMMAND_SIZE, SOFTTPM_MAX_COMMAND_SIZE],
    [TPM_PT.MAX_RESPONSE_SIZE, SOFTTPM_MAX_COMMAND_SIZE],
    [TPM_PT.MAX_DIGEST, 64],
    // the largest contextBlob of an object and of a session (engine/contexts.ts: 66-byte integrity
    // value, then the encrypted state)
    [TPM_PT.MAX_OBJECT_CONTEXT, MAX_OBJECT_CONTEXT_BYTES],
    [TPM_PT.MAX_SESSION_CONTEXT, MAX_SESSION_CONTEXT_BYTES],
    [TPM_PT.PS_FAMILY_INDICATOR, 1], // TPM_PS_PC: PC client
    [TPM_PT.PS_LEVEL, 0],
    [TPM_PT.PS_REVISION, 0],
    [TPM_PT.PS_DAY_OF_YEAR, 0],
    [TPM_PT.PS_YEAR, 0],
    [TPM_PT.SPLIT_MAX, 0x80],
    [TPM_PT.TOTAL_COMMANDS, COMMAND_ATTRIBUTES.length],
    [TPM_PT.LIBRARY_COMMANDS, COMMAND_ATTRIBUTES.length],
    [TPM_PT.VENDOR_COMMANDS, 0],
    [TPM_PT.NV_BUFFER_MAX, SOFTTPM_MAX_BUFFER],
    [TPM_PT.MODES, 0],
    [TPM_PT.MAX_CAP_BUFFER, SOFTTPM_MAX_BUFFER],
  ];
}

/** The variable TPM properties (TPM_PT 0x200 group), Part 2 §6.13. */
function variableProperties(t: Engine): [number, number][] {
  const ps = t.ps;
  const permanent =
    (ps.ownerAuth.length ? TPMA_PERMANENT.OWNERAUTHSET : 0) |
    (ps.endorsementAuth.length ? TPMA_PERMANENT.ENDORSEMENTAUTHSET : 0) |
    (ps.lockoutAuth.length ? TPMA_PERMANENT.LOCKOUTAUTHSET : 0) |
    (ps.disableClear ? TPMA_PERMANENT.DISABLECLEAR : 0) |
    (t.inLockout() ? TPMA_PERMANENT.INLOCKOUT : 0) |
    TPMA_PERMANENT.TPMGENERATEDEPS;
  const counters = ps.nv.filter((x) => nvType(x.attributes) === TPM_NT.COUNTER).length;
  const hs = hierarchyState(t);
  const enabled =
    (hs.phEnable ? TPMA_STARTUP_CLEAR.PHENABLE : 0) |
    (hs.shEnable ? TPMA_STARTUP_CLEAR.SHENABLE : 0) |
    (hs.ehEnable ? TPMA_STARTUP_CLEAR.EHENABLE : 0) |
    (hs.phEnableNV ? TPMA_STARTUP_CLEAR.PHENABLENV : 0);
  return [
    [TPM_PT.PERMANENT, permanent],
    // orderly when the last Startup followed an orderly Shutdown (it stays so until the next
    // Startup; swtpm 0.7.1, measured)
    [TPM_PT.STARTUP_CLEAR, (t.startupOrderly ? TPMA_STARTUP_CLEAR.ORDERLY : 0) | enabled],
    [TPM_PT.HR_NV_INDEX, ps.nv.length],
    [TPM_PT.HR_LOADED, t.hmacSessions.size],
    [TPM_PT.HR_LOADED_AVAIL, MAX_SESSIONS - t.hmacSessions.size],
    [TPM_PT.HR_ACTIVE, t.hmacSessions.size + t.savedSessions.size],
    [TPM_PT.HR_ACTIVE_AVAIL, Math.max(0, MAX_SESSIONS - t.hmacSessions.size - t.savedSessions.size)],
    [TPM_PT.HR_TRANSIENT_AVAIL, MAX_SEQUENCES - objectSlotsUsed(t)],
    [TPM_PT.HR_PERSISTENT, ps.persistent.length],
    [TPM_PT.HR_PERSISTENT_AVAIL, PERSISTENT_OBJECTS_MAX - ps.persistent.length],
    [TPM_PT.NV_COUNTERS, counters],
    [TPM_PT.NV_COUNTERS_AVAIL, NV_INDICES_MAX - ps.nv.length],
    [TPM_PT.ALGORITHM_SET, 0],
    [TPM_PT.LOADED_CURVES, 0],
    [TPM_PT.LOCKOUT_COUNTER, ps.failedTries],
    // TPM2_DictionaryAttackParameters (Part 3 §25.3)
    [TPM_PT.MAX_AUTH_FAIL, daParameters(ps).maxTries],
    [TPM_PT.LOCKOUT_INTERVAL, daParameters(ps).recoveryTime],
    [TPM_PT.LOCKOUT_RECOVERY, daParameters(ps).lockoutRecovery],
    [TPM_PT.NV_WRITE_RECOVERY, 0],
    [TPM_PT.AUDIT_COUNTER_0, Number(auditState(t).counter >> 32n) >>> 0], // high 32 bits (Part 2 §6.13)
    [TPM_PT.AUDIT_COUNTER_1, Number(auditState(t).counter & 0xffffffffn) >>> 0],
  ];
}

// TPM2_TestParms checks everything as it unmarshals TPMT_PUBLIC_PARMS (reference code: the action
// does nothing), so every refusal is an unmarshal code about parameter 1: an algorithm, mode,
// scheme or size SoftTpm does not implement is refused as a TPM that lacks it refuses it.

/** A hash algorithm of a scheme (TPMI_ALG_HASH, NULL not allowed): TPM_RC_HASH. */
function testHash(inp: In): void {
  if (!hashImpl(inp.u16())) throw new Rc(P(TPM_RC.HASH, 1));
}

/**
 * TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): AES with 128/192/256 bits (else TPM_RC_VALUE) and a mode
 * SoftTpm implements (else TPM_RC_MODE); another algorithm is TPM_RC_SYMMETRIC, and so is
 * TPM_ALG_NULL where `allowNull` is false (a symmetric cipher object).
 */
function testSymDef(inp: In, allowNull: boolean): void {
  const alg = inp.u16();
  if (alg === TPM_ALG.NULL && allowNull) return;
  if (alg !== TPM_ALG.AES) throw new Rc(P(TPM_RC.SYMMETRIC, 1));
  if (!AES_KEY_SIZES.includes(inp.u16())) throw new Rc(P(TPM_RC.VALUE, 1));
  if (!SYM_MODES.includes(inp.u16())) throw new Rc(P(TPM_RC.MODE, 1));
}

/** A scheme from `withHash` (details: a hash), `bare` (no details) or NULL; another is TPM_RC_VALUE. */
function testScheme(inp: In, withHash: readonly number[], bare: readonly number[]): void {
  const scheme = inp.u16();
  if (scheme === TPM_ALG.NULL || bare.includes(scheme)) return;
  if (!withHash.includes(scheme)) throw new Rc(P(TPM_RC.VALUE, 1));
  testHash(inp);
  if (scheme === TPM_ALG.ECDAA) inp.u16(); // TPMS_SCHEME_ECDAA.count (Part 2 §11.2.1.3): any value unmarshals
}

/**
 * TPM2_TestParms, Part 3 §30.3: TPM_RC_SUCCESS when SoftTpm supports the parameter set (RSA
 * 1024/2048/3072, ECC NIST P-256/P-384 without a KDF, AES-128/192/256, keyed-hash with HMAC or XOR
 * over SHA-1/256/384/512). Codes as swtpm 0.7.1 gives them (measured) where SoftTpm implements
 * the same; a curve, KDF or key size swtpm has and SoftTpm lacks gets TPM_RC_CURVE, TPM_RC_KDF or
 * TPM_RC_VALUE.
 */
function testParms(inp: In): void {
  const type = inp.u16(); // TPMI_ALG_PUBLIC
  switch (type) {
    case TPM_ALG.RSA:
      testSymDef(inp, true);
      testScheme(inp, [TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.OAEP], [TPM_ALG.RSAES]);
      if (!RSA_KEY_SIZES.includes(inp.u16())) throw new Rc(P(TPM_RC.VALUE, 1)); // TPMI_RSA_KEY_BITS
      inp.u32(); // exponent: any value unmarshals
      break;
    case TPM_ALG.ECC:
      testSymDef(inp, true);
      testScheme(inp, [TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.ECDH], []); // the schemes SoftTpm's ECC objects take
      if (!CURVES.has(inp.u16())) throw new Rc(P(TPM_RC.CURVE, 1)); // TPMI_ECC_CURVE
      // the NIST curves need no KDF; SoftTpm's objects refuse one (Part 2 §12.2.3.6)
      if (inp.u16() !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.KDF, 1));
      break;
    case TPM_ALG.SYMCIPHER:
      testSymDef(inp, false);
      break;
    case TPM_ALG.KEYEDHASH: {
      const scheme = inp.u16(); // TPMI_ALG_KEYEDHASH_SCHEME+
      if (scheme === TPM_ALG.HMAC) testHash(inp);
      else if (scheme === TPM_ALG.XOR) {
        testHash(inp);
        // TPMI_ALG_KDF: SoftTpm's KDF is KDFa (SP800-108, Part 1 §11.4.10.2)
        if (inp.u16() !== TPM_ALG.KDF1_SP800_108) throw new Rc(P(TPM_RC.KDF, 1));
      } else if (scheme !== TPM_ALG.NULL) throw new Rc(P(TPM_RC.VALUE, 1));
      break;
    }
    default:
      throw new Rc(P(TPM_RC.TYPE, 1));
  }
  inp.done();
}

/** Part 3 §30 in the dispatch table. */
export const capabilityCommands: CommandEntries = [
  [TPM_CC.GetCapability, { handles: [], auth: 0, run: (t, _h, i, o) => getCapability(t, i, o) }],
  [TPM_CC.TestParms, { handles: [], auth: 0, run: (_t, _h, i) => testParms(i) }],
];
