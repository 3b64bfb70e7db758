/**
 * TPM 2.0 response-code decoding (TPM 2.0 Part 2 §6.6): format 0 and format 1, warnings vs errors,
 * the TPM_RC name, the handle/parameter/session index, and the TSS layer byte (bits 23:16, e.g. the
 * resource manager's 0x000B0000 as /dev/tpmrm0 uses it).
 *
 * @packageDocumentation
 */
import { TpmkitError } from "../errors/index.js";
import { TPM_CC, TPM_RC } from "./constants.js";

/** TSS layer numbers found in bits 23:16 of a response code (tpm2-tss tss2_common.h). */
export const RC_LAYER = {
  TPM: 0,
  FEATURE: 6,
  ESAPI: 7,
  SYS: 8,
  MU: 9,
  TCTI: 10,
  RESMGR: 11,
  RESMGR_TPM: 12,
} as const;

const LAYER_NAMES: Record<number, string> = /* @__PURE__ */ Object.fromEntries(/* @__PURE__ */ Object.entries(RC_LAYER).map(([k, v]) => [v, k]));

/** Building blocks of TPM_RC that are not codes of their own. */
const RC_BLOCKS = new Set(["VER1", "FMT1", "WARN", "H", "P", "S", "N_MASK", "MAX_FM0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F"]);

const RC_FMT0_NAMES = new Map<number, string>();
const RC_FMT1_NAMES = new Map<number, string>();
for (const [k, v] of Object.entries(TPM_RC)) {
  if (RC_BLOCKS.has(k)) continue;
  const map = v >= 0x80 && v < 0x100 ? RC_FMT1_NAMES : RC_FMT0_NAMES;
  if (!map.has(v)) map.set(v, `TPM_RC_${k}`);
}

const CC_NAMES = /* @__PURE__ */ new Map<number, string>(/* @__PURE__ */ Object.entries(TPM_CC).map(([k, v]) => [v, `TPM_CC_${k}`]));

/** The name of a command code, e.g. `TPM_CC_GetRandom`, or its hex value. */
export function commandName(cc: number): string {
  return CC_NAMES.get(cc >>> 0) ?? `TPM_CC_0x${(cc >>> 0).toString(16).padStart(8, "0")}`;
}

/** A decoded response code. */
export interface DecodedRc {
  /** The raw 32-bit value. */
  rc: number;
  /** The code with layer and index bits removed: the value to compare with TPM_RC.* constants. */
  base: number;
  /** `TPM_RC_...` name, or a hex string for codes Part 2 does not define. */
  name: string;
  /** "fmt0" (including warnings), "fmt1", "tpm12" (no VER1 bit) or "vendor" (T bit set). */
  format: "fmt0" | "fmt1" | "tpm12" | "vendor";
  /** True for warnings (format 0 with the S bit): the command may succeed if retried. */
  warning: boolean;
  /** TSS layer (bits 23:16); 0 for the TPM itself. */
  layer: number;
  /** Layer name, e.g. "RESMGR". */
  layerName: string;
  /** For format 1: which handle, parameter or session the error refers to (1-based). */
  handle?: number;
  parameter?: number;
  session?: number;
}

/**
 * Decodes a TPM response code. TPM 2.0 Part 2 §6.6.3 (format 0: bit 7 clear, VER1 bit 8, T bit 10,
 * S bit 11) and §6.6.4 (format 1: bit 7 set, P bit 6, N in bits 11:8).
 *
 * @param rc - the response code from a response header
 * @returns its parts
 * @example
 * ```ts
 * import { decodeRc } from "tpmkit";
 * decodeRc(0x98e).name        // "TPM_RC_AUTH_FAIL"
 * decodeRc(0x98e).session     // 1
 * ```
 */
export function decodeRc(rc: number): DecodedRc {
  rc = rc >>> 0;
  const layer = (rc >>> 16) & 0xff;
  const layerName = LAYER_NAMES[layer] ?? `LAYER_${layer}`;
  const code = rc & 0xffff;
  if (code & TPM_RC.FMT1) {
    const base = TPM_RC.FMT1 + (code & 0x3f);
    const n = (code >>> 8) & 0xf;
    const out: DecodedRc = { rc, base, name: RC_FMT1_NAMES.get(base) ?? hexName(base), format: "fmt1", warning: false, layer, layerName };
    if (code & TPM_RC.P) {
      if (n) out.parameter = n;
    } else if (n & 0x8) {
      out.session = n & 0x7;
    } else if (n) {
      out.handle = n;
    }
    return out;
  }
  if (!(code & TPM_RC.VER1)) {
    return { rc, base: code, name: code === 0 ? "TPM_RC_SUCCESS" : hexName(code, "TPM12_RC_"), format: code === 0 ? "fmt0" : "tpm12", warning: false, layer, layerName };
  }
  if (code & 0x400) {
    return { rc, base: code, name: hexName(code, "TPM_RC_VENDOR_"), format: "vendor", warning: !!(code & 0x800), layer, layerName };
  }
  const base = code & 0xfff;
  return { rc, base, name: RC_FMT0_NAMES.get(base) ?? hexName(base), format: "fmt0", warning: !!(code & 0x800), layer, layerName };
}

function hexName(v: number, prefix = "TPM_RC_"): string {
  return `${prefix}0x${v.toString(16).padStart(3, "0")}`;
}

/** The readable form of a response code: name, index and layer, e.g. "TPM_RC_AUTH_FAIL (session 1)". */
export function formatRc(rc: number): string {
  const d = decodeRc(rc);
  let s = d.name;
  if (d.handle) s += ` (handle ${d.handle})`;
  if (d.parameter) s += ` (parameter ${d.parameter})`;
  if (d.session) s += ` (session ${d.session})`;
  if (d.layer) s += ` [layer ${d.layerName}]`;
  return `${s} 0x${d.rc.toString(16).padStart(8, "0")}`;
}

/**
 * A TPM answered with a non-success response code. `rc` is the raw code, `rcName` its TPM_RC name
 * (compare `base` with `TPM_RC.*`), and `handle`/`parameter`/`session` say which input it is about.
 *
 * The typed calls of `Tpm` (and `parseResponse`) throw it; `Tpm.transmit` does not: it returns the
 * raw response whatever its code, so decode that code yourself.
 *
 * @example
 * ```ts
 * import { Tpm, SoftTpm, TPM_RC, TpmResponseError, decodeRc, memory, readHeader } from "tpmkit";
 * await using tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
 * // A typed call throws TpmResponseError for a non-success code (PCR 17 needs locality 2–4):
 * try {
 *   await tpm.pcrExtend(17, { sha256: new Uint8Array(32) });
 * } catch (e) {
 *   if (e instanceof TpmResponseError && e.base === TPM_RC.LOCALITY) console.log("refused:", e.rcName);
 *   else throw e;
 * }
 * // transmit returns the response bytes; the code is in the header:
 * const rsp = await tpm.transmit(Uint8Array.of(0x80, 0x01, 0, 0, 0, 10, 0x20, 0, 0, 0)); // no such command
 * const rc = decodeRc(readHeader(rsp).code);
 * if (rc.base === TPM_RC.COMMAND_CODE) console.log("not a command:", rc.name);
 * ```
 */
export class TpmResponseError extends TpmkitError {
  static override readonly errorName: string = "TpmResponseError";
  readonly rc: number;
  readonly base: number;
  readonly rcName: string;
  readonly warning: boolean;
  readonly layer: number;
  readonly handle: number | undefined;
  readonly parameter: number | undefined;
  readonly session: number | undefined;
  /** The command code that got this answer, if known. */
  readonly commandCode: number | undefined;

  constructor(rc: number, commandCode?: number) {
    const d = decodeRc(rc);
    const what = commandCode === undefined ? "TPM command" : commandName(commandCode);
    super("TPM_RESPONSE", `${what} failed: ${formatRc(rc)}`);
    this.rc = d.rc;
    this.base = d.base;
    this.rcName = d.name;
    this.warning = d.warning;
    this.layer = d.layer;
    this.handle = d.handle;
    this.parameter = d.parameter;
    this.session = d.session;
    this.commandCode = commandCode;
  }
}
