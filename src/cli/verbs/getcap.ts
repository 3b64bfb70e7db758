/**
 * `tpmkit getcap CATEGORY`: TPM2_GetCapability (TPM 2.0 Part 3 §30.2) printed as `tpm2_getcap`
 * (tpm2-tools 5.4, tools/tpm2_getcap.c) prints it: the same categories, queries, keys, nesting and
 * number formats, so scripts written against tpm2_getcap's YAML read tpmkit's. With `--json`, one
 * JSON document of the same structure (numbers as JSON numbers).
 *
 * @packageDocumentation
 */
import { TpmFormatError } from "../../errors/index.js";
import type { Tpm, CallOptions } from "../../client/tpm.js";
import type { CapabilityData } from "../../wire/commands.js";
import { TPM_CAP, TPM_CC, TPM_HR, TPM_PT, TPM_RC } from "../../wire/constants.js";
import { TpmResponseError } from "../../wire/rc.js";
import { UsageError } from "../args.js";
import { hexLower, hexUpper, TPM_ECC_NAMES, toolsAlgName, toolsCommandName, writeJson, yamlQuoted } from "../output.js";
import type { Verb } from "../verb.js";

/** What one getcap category asks the TPM (tools/tpm2_getcap.c `capability_map`). */
export interface GetcapCategory {
  /** The category as typed: "properties-fixed". */
  readonly name: string;
  /** The TPM_CAP asked for (TPM 2.0 Part 2 §6.12). */
  readonly capability: number;
  /** The first property (or handle, algorithm, command) asked for. */
  readonly property: number;
  /** How many entries tpm2_getcap asks for in all (TPM2_MAX_* of tpm2-tss 3.2, include/tss2/tss2_tpm2_types.h). */
  readonly count: number;
}

// tpm2-tss 3.2 sizes: TPM2_MAX_CAP_BUFFER 1024 less the TPM_CAP and count (8 bytes), divided by the
// C size of one entry (TPMS_ALG_PROPERTY and TPMS_TAGGED_PROPERTY are 8 bytes with padding).
const MAX_CAP_ALGS = 127;
const MAX_CAP_CC = 256; // TPM2_MAX_CAP_CC
const MAX_TPM_PROPERTIES = 127;
const MAX_ECC_CURVES = 508;
const MAX_CAP_HANDLES = 254;

/** The categories of `tpm2_getcap -l` (tpm2-tools 5.4), in its order, with its queries. */
export const GETCAP_CATEGORIES: readonly GetcapCategory[] = [
  { name: "algorithms", capability: TPM_CAP.ALGS, property: 0x0001 /* TPM2_ALG_FIRST */, count: MAX_CAP_ALGS },
  { name: "commands", capability: TPM_CAP.COMMANDS, property: TPM_CC.NV_UndefineSpaceSpecial /* TPM2_CC_FIRST */, count: MAX_CAP_CC },
  { name: "pcrs", capability: TPM_CAP.PCRS, property: 0, count: MAX_TPM_PROPERTIES },
  { name: "properties-fixed", capability: TPM_CAP.TPM_PROPERTIES, property: TPM_PT.FIXED, count: MAX_TPM_PROPERTIES },
  { name: "properties-variable", capability: TPM_CAP.TPM_PROPERTIES, property: TPM_PT.VAR, count: MAX_TPM_PROPERTIES },
  { name: "ecc-curves", capability: TPM_CAP.ECC_CURVES, property: 0x0001 /* TPM2_ECC_NIST_P192 */, count: MAX_ECC_CURVES },
  { name: "handles-transient", capability: TPM_CAP.HANDLES, property: TPM_HR.TRANSIENT, count: MAX_CAP_HANDLES },
  { name: "handles-persistent", capability: TPM_CAP.HANDLES, property: TPM_HR.PERSISTENT, count: MAX_CAP_HANDLES },
  { name: "handles-permanent", capability: TPM_CAP.HANDLES, property: TPM_HR.PERMANENT, count: MAX_CAP_HANDLES },
  { name: "handles-pcr", capability: TPM_CAP.HANDLES, property: TPM_HR.PCR, count: MAX_CAP_HANDLES },
  { name: "handles-nv-index", capability: TPM_CAP.HANDLES, property: TPM_HR.NV_INDEX, count: MAX_CAP_HANDLES },
  { name: "handles-loaded-session", capability: TPM_CAP.HANDLES, property: TPM_HR.HMAC_SESSION /* TPM2_LOADED_SESSION_FIRST */, count: MAX_CAP_HANDLES },
  { name: "handles-saved-session", capability: TPM_CAP.HANDLES, property: TPM_HR.POLICY_SESSION /* TPM2_ACTIVE_SESSION_FIRST */, count: MAX_CAP_HANDLES },
];

/** What `getcap` was asked for: one category, or the list of categories (`--list`). */
export type GetcapPlan = { readonly list: true } | { readonly list: false; readonly category: GetcapCategory };

const NAMES = GETCAP_CATEGORIES.map((c) => c.name);

const HELP = `usage: tpmkit getcap CATEGORY [options]
       tpmkit getcap --list

Prints one TPM2_GetCapability category as tpm2_getcap (tpm2-tools 5.4) does: the same YAML.

categories:
${NAMES.map((n) => `  ${n}`).join("\n")}

options:
  --list              print the categories (as tpm2_getcap -l)
  --json              one JSON document of the same structure (numbers as numbers)

examples:
  tpmkit getcap properties-fixed
  tpmkit getcap handles-persistent --json
`;

/** The `getcap` verb. */
export const getcapVerb: Verb<GetcapPlan> = {
  name: "getcap",
  summary: "TPM capabilities (tpm2_getcap's YAML; --json)",
  help: HELP,
  options: { list: { type: "boolean" } },
  parse(args) {
    const what = args.positionals[0];
    if (args.values.list === true) {
      if (what !== undefined) throw new UsageError("getcap --list takes no category");
      return { list: true };
    }
    if (args.positionals.length > 1) throw new UsageError(`getcap takes one category, got ${args.positionals.length}`);
    const category = GETCAP_CATEGORIES.find((c) => c.name === what);
    if (!category) throw new UsageError(`getcap needs one of ${NAMES.join(", ")}${what === undefined ? "" : ` (got "${what}")`}`);
    return { list: false, category };
  },
  async run(plan, ctx) {
    let doc: Doc;
    if (plan.list) doc = { text: NAMES.map((n) => `- ${n}\n`).join(""), json: NAMES };
    else doc = render(plan.category, await fetchCapability(ctx.tpm, plan.category, ctx.call));
    if (ctx.json) writeJson(ctx.out, doc.json);
    else ctx.out.write(doc.text);
  },
};

/** One category's output: the YAML text and the JSON value. */
interface Doc {
  text: string;
  json: unknown;
}

/** Everything one category lists, as tpm2-tools collects it. */
type Items =
  | { capability: typeof TPM_CAP.ALGS; items: { alg: number; attributes: number }[] }
  | { capability: typeof TPM_CAP.COMMANDS; items: { commandIndex: number; attributes: number }[] }
  | { capability: typeof TPM_CAP.PCRS; items: { hash: number; pcrs: number[] }[] }
  | { capability: typeof TPM_CAP.TPM_PROPERTIES; items: { property: number; value: number }[] }
  | { capability: typeof TPM_CAP.ECC_CURVES; items: number[] }
  | { capability: typeof TPM_CAP.HANDLES; items: number[] };

/** The entries of one answer and the property to ask from next (tpm2-tools lib/tpm2_capability.c APPEND_CAPABILITY_INFORMATION). */
function entries(data: CapabilityData): { list: unknown[]; next: (last: unknown) => number } | undefined {
  switch (data.capability) {
    case TPM_CAP.ALGS:
      return { list: data.algorithms, next: (x) => (x as { alg: number }).alg + 1 };
    case TPM_CAP.COMMANDS:
      // the next property is the last TPMA_CC plus one, masked to the command index (tpm2-tools' workaround)
      return { list: data.commands, next: (x) => (((x as { attributes: number }).attributes + 1) >>> 0) & 0xffff };
    case TPM_CAP.PCRS:
      return { list: data.pcrs, next: (x) => (x as { hash: number }).hash + 1 };
    case TPM_CAP.TPM_PROPERTIES:
      return { list: data.properties, next: (x) => ((x as { property: number }).property + 1) >>> 0 };
    case TPM_CAP.ECC_CURVES:
      return { list: data.curves, next: (x) => (x as number) + 1 };
    case TPM_CAP.HANDLES:
      return { list: data.handles, next: (x) => ((x as number) + 1) >>> 0 };
    default:
      return undefined;
  }
}

/**
 * Asks the TPM for one category as tpm2-tools 5.4 does (lib/tpm2_capability.c
 * `tpm2_capability_get_ex`): from the category's first property, again from the property after the
 * last one returned while the TPM says moreData, until `count` entries. A TPM that answers
 * TPM_RC_VALUE (a capability or property it does not implement) lists nothing.
 */
async function fetchCapability(tpm: Tpm, cat: GetcapCategory, call: CallOptions): Promise<Items> {
  const items: unknown[] = [];
  let property = cat.property;
  // bounded: every round adds at least one entry, at most `count` in all
  for (let round = 0; round <= cat.count; round++) {
    let r: { moreData: boolean; data: CapabilityData };
    try {
      r = await tpm.getCapability(cat.capability, property, cat.count - items.length, call);
    } catch (e) {
      if (e instanceof TpmResponseError && e.base === TPM_RC.VALUE) break;
      throw e;
    }
    if (r.data.capability !== cat.capability) throw new TpmFormatError(`GetCapability answered capability ${hexLower(r.data.capability)} to a query for ${hexLower(cat.capability)}`);
    const got = entries(r.data);
    if (!got) throw new TpmFormatError(`GetCapability: capability ${hexLower(cat.capability)} is not one getcap prints`);
    const take = got.list.slice(0, cat.count - items.length);
    items.push(...take);
    if (!r.moreData || items.length >= cat.count || take.length === 0) break;
    property = got.next(take[take.length - 1]);
  }
  return { capability: cat.capability, items } as Items;
}

/** "1" or "0" for a flag, as tpm2-tools' `prop_str`. */
const bit = (v: number, mask: number): number => ((v & mask) !== 0 ? 1 : 0);

/** Renders one category as tools/tpm2_getcap.c `dump_tpm_capability` prints it. */
function render(cat: GetcapCategory, got: Items): Doc {
  switch (got.capability) {
    case TPM_CAP.ALGS:
      return algorithms(got.items);
    case TPM_CAP.COMMANDS:
      return commands(got.items);
    case TPM_CAP.PCRS:
      return pcrs(got.items);
    case TPM_CAP.TPM_PROPERTIES:
      return cat.property === TPM_PT.FIXED ? fixedProperties(got.items) : variableProperties(got.items);
    case TPM_CAP.ECC_CURVES:
      return eccCurves(got.items);
    case TPM_CAP.HANDLES:
      // dump_handles: "- 0x%X" per handle
      return { text: got.items.map((h) => `- ${hexUpper(h)}\n`).join(""), json: got.items.map((h) => h >>> 0) };
  }
}

/** dump_algorithm_properties (TPMA_ALGORITHM bits and masks: TPM 2.0 Part 2 §8.2; tpm2-tss TPMA_ALGORITHM_*). */
function algorithms(list: readonly { alg: number; attributes: number }[]): Doc {
  let text = "";
  const json: Record<string, Record<string, number>> = {};
  for (const { alg, attributes: a } of list) {
    const name = toolsAlgName(alg) ?? `unknown${alg.toString(16)}`;
    const fields: [string, string, number][] = [
      ["value:     ", hexUpper(alg), alg],
      ["asymmetric:", "", bit(a, 0x1)],
      ["symmetric: ", "", bit(a, 0x2)],
      ["hash:      ", "", bit(a, 0x4)],
      ["object:    ", "", bit(a, 0x8)],
      ["reserved:  ", hexUpper((a & 0xf0) >>> 4), (a & 0xf0) >>> 4],
      ["signing:   ", "", bit(a, 0x100)],
      ["encrypting:", "", bit(a, 0x200)],
      ["method:    ", "", bit(a, 0x400)],
    ];
    text += `${name}:\n`;
    const entry: Record<string, number> = {};
    for (const [key, shown, v] of fields) {
      text += `  ${key} ${shown || String(v)}\n`;
      entry[key.replace(/[: ]+$/, "")] = v;
    }
    json[name] = entry;
  }
  return { text, json };
}

/** dump_command_attrs (TPMA_CC fields: TPM 2.0 Part 2 §8.9; tpm2-tss TPMA_CC_* masks). */
function commands(list: readonly { attributes: number }[]): Doc {
  let text = "";
  const json: Record<string, Record<string, number>> = {};
  for (const { attributes } of list) {
    const a = attributes >>> 0;
    const name = toolsCommandName(a & 0xffff) ?? hexLower(a);
    const fields: [string, string, number][] = [
      ["commandIndex:", hexLower(a & 0xffff), a & 0xffff],
      ["reserved1:   ", hexLower((a & 0x003f0000) >>> 16), (a & 0x003f0000) >>> 16],
      ["nv:          ", "", bit(a, 0x00400000)],
      ["extensive:   ", "", bit(a, 0x00800000)],
      ["flushed:     ", "", bit(a, 0x01000000)],
      ["cHandles:    ", hexLower((a & 0x0e000000) >>> 25), (a & 0x0e000000) >>> 25],
      ["rHandle:     ", "", bit(a, 0x10000000)],
      ["V:           ", "", bit(a, 0x20000000)],
      ["Res:         ", hexLower((a & 0xc0000000) >>> 30), (a & 0xc0000000) >>> 30],
    ];
    text += `${name}:\n  value: ${hexUpper(a)}\n`;
    const entry: Record<string, number> = { value: a };
    for (const [key, shown, v] of fields) {
      text += `  ${key} ${shown || String(v)}\n`;
      entry[key.replace(/[: ]+$/, "")] = v;
    }
    json[name] = entry;
  }
  return { text, json };
}

/** lib/pcr.c pcr_print_pcr_selections: "selected-pcrs:" and "  - sha1: [ 0, 1 ]" per bank. */
function pcrs(list: readonly { hash: number; pcrs: number[] }[]): Doc {
  let text = "selected-pcrs:\n";
  const json: Record<string, number[]>[] = [];
  for (const b of list) {
    const name = toolsAlgName(b.hash) ?? `unknown${b.hash.toString(16)}`;
    text += `  - ${name}: [${b.pcrs.length ? " " + b.pcrs.join(", ") : ""} ]\n`;
    json.push({ [name]: [...b.pcrs] });
  }
  return { text, json: { "selected-pcrs": json } };
}

/** dump_ecc_curves: "TPM2_ECC_NIST_P256: 0x3", unknown curves as "unknown%X: 0x%X". */
function eccCurves(list: readonly number[]): Doc {
  let text = "";
  const json: Record<string, number> = {};
  for (const c of list) {
    const name = TPM_ECC_NAMES.get(c) ?? `unknown${c.toString(16).toUpperCase()}`;
    text += `${name}: ${hexUpper(c)}\n`;
    json[name] = c;
  }
  return { text, json };
}

/** The fixed properties tpm2_getcap 5.4 prints (dump_tpm_properties_fixed); others it skips. */
const FIXED: readonly (keyof typeof TPM_PT)[] = [
  "FAMILY_INDICATOR", "LEVEL", "REVISION", "DAY_OF_YEAR", "YEAR", "MANUFACTURER", "VENDOR_STRING_1", "VENDOR_STRING_2",
  "VENDOR_STRING_3", "VENDOR_STRING_4", "VENDOR_TPM_TYPE", "FIRMWARE_VERSION_1", "FIRMWARE_VERSION_2", "INPUT_BUFFER",
  "HR_TRANSIENT_MIN", "HR_PERSISTENT_MIN", "HR_LOADED_MIN", "ACTIVE_SESSIONS_MAX", "PCR_COUNT", "PCR_SELECT_MIN", "CONTEXT_GAP_MAX",
  "NV_COUNTERS_MAX", "NV_INDEX_MAX", "MEMORY", "CLOCK_UPDATE", "CONTEXT_HASH", "CONTEXT_SYM", "CONTEXT_SYM_SIZE", "ORDERLY_COUNT",
  "MAX_COMMAND_SIZE", "MAX_RESPONSE_SIZE", "MAX_DIGEST", "MAX_OBJECT_CONTEXT", "MAX_SESSION_CONTEXT", "PS_FAMILY_INDICATOR",
  "PS_LEVEL", "PS_REVISION", "PS_DAY_OF_YEAR", "PS_YEAR", "SPLIT_MAX", "TOTAL_COMMANDS", "LIBRARY_COMMANDS", "VENDOR_COMMANDS",
  "NV_BUFFER_MAX", "MODES",
];
const FIXED_NAMES = new Map<number, string>(FIXED.map((k) => [TPM_PT[k], `TPM2_PT_${k}`]));

/** The variable properties tpm2_getcap 5.4 prints as "NAME: 0x%X" (dump_tpm_properties_var). */
const VARIABLE: readonly (keyof typeof TPM_PT)[] = [
  "HR_NV_INDEX", "HR_LOADED", "HR_LOADED_AVAIL", "HR_ACTIVE", "HR_ACTIVE_AVAIL", "HR_TRANSIENT_AVAIL", "HR_PERSISTENT",
  "HR_PERSISTENT_AVAIL", "NV_COUNTERS", "NV_COUNTERS_AVAIL", "ALGORITHM_SET", "LOADED_CURVES", "LOCKOUT_COUNTER", "MAX_AUTH_FAIL",
  "LOCKOUT_INTERVAL", "LOCKOUT_RECOVERY", "NV_WRITE_RECOVERY", "AUDIT_COUNTER_0", "AUDIT_COUNTER_1",
];
const VARIABLE_NAMES = new Map<number, string>(VARIABLE.map((k) => [TPM_PT[k], `TPM2_PT_${k}`]));

/** The four bytes of a property, big-endian (the TPM's byte order). */
function bytesOf(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

/** C isspace in the "C" locale. */
const isSpace = (b: number): boolean => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/**
 * A packed-character property as tpm2_getcap 5.4 shows it (`get_uint32_as_chars`): leading
 * white space skipped, trailing white space and NULs trimmed, with that function's loop bounds
 * kept as they are (so "  a " keeps its trailing blank, as tpm2_getcap prints it).
 */
function u32Chars(v: number): string {
  const all = bytesOf(v);
  let i = 0;
  while (i < 4 && isSpace(all[i]!)) i++;
  const bytes = all.slice(i);
  let j = 4 - i;
  for (; j > i; j--) {
    const b = bytes[j - 1]!;
    if (b !== 0 && !isSpace(b)) break;
  }
  // memcpy(buf, bytes, j); buf[j] = '\0': printing stops at the first NUL
  const out = bytes.slice(0, j);
  const nul = out.indexOf(0);
  return String.fromCharCode(...(nul < 0 ? out : out.slice(0, nul)));
}

/** TPM2_PT_MANUFACTURER as tpm2_getcap 5.4 shows it ("%.*s" of the four bytes: up to the first NUL). */
function manufacturerChars(v: number): string {
  const b = bytesOf(v);
  const nul = b.indexOf(0);
  return String.fromCharCode(...(nul < 0 ? b : b.slice(0, nul)));
}

/** dump_tpm_properties_fixed. */
function fixedProperties(list: readonly { property: number; value: number }[]): Doc {
  let text = "";
  const json: Record<string, Record<string, number | string>> = {};
  for (const { property, value } of list) {
    const name = FIXED_NAMES.get(property);
    if (!name) continue; // tpm2_getcap's switch has no default: what it does not know (and the variable properties the TPM returns after the fixed ones) it skips
    const v = value >>> 0;
    const entry: Record<string, number | string> = { raw: v };
    let lines: string;
    switch (property) {
      case TPM_PT.LEVEL:
        lines = `  raw: ${v | 0}\n`; // "%d"
        break;
      case TPM_PT.REVISION: {
        // "%.2f" of (float)value / 100
        const rev = Math.fround(Math.fround(v) / 100).toFixed(2);
        lines = `  raw: ${hexUpper(v)}\n  value: ${rev}\n`;
        entry.value = Number(rev);
        break;
      }
      case TPM_PT.FAMILY_INDICATOR:
      case TPM_PT.VENDOR_STRING_1:
      case TPM_PT.VENDOR_STRING_2:
      case TPM_PT.VENDOR_STRING_3:
      case TPM_PT.VENDOR_STRING_4: {
        const s = u32Chars(v);
        lines = `  raw: ${hexUpper(v)}\n  value: ${yamlQuoted(s)}\n`;
        entry.value = s;
        break;
      }
      case TPM_PT.MANUFACTURER: {
        const s = manufacturerChars(v);
        lines = `  raw: ${hexUpper(v)}\n  value: ${yamlQuoted(s)}\n`;
        entry.value = s;
        break;
      }
      case TPM_PT.MODES: {
        // tpm2_tool_output_tpma_modes (TPMA_MODES: TPM 2.0 Part 2 §8.10; tpm2-tss 3.2 knows FIPS_140_2 only)
        lines = `  raw: ${hexUpper(v)}\n`;
        const values: string[] = [];
        if (v & 0x1) values.push("TPMA_MODES_FIPS_140_2");
        if (v & 0xfffffffe) values.push("TPMA_MODES_RESERVED1 (these bits shouldn't be set)");
        for (const s of values) lines += `  value: ${s}\n`;
        if (values.length) entry.value = values.join(", ");
        break;
      }
      default:
        lines = `  raw: ${hexUpper(v)}\n`;
    }
    text += `${name}:\n${lines}`;
    json[name] = entry;
  }
  return { text, json };
}

/** dump_tpm_properties_var (TPMA_PERMANENT: Part 2 §8.6, TPMA_STARTUP_CLEAR: Part 2 §8.7; masks as tpm2-tss 3.2). */
function variableProperties(list: readonly { property: number; value: number }[]): Doc {
  let text = "";
  const json: Record<string, Record<string, number> | number> = {};
  const flags = (name: string, v: number, fields: readonly [string, number][]) => {
    text += `${name}:\n`;
    const entry: Record<string, number> = {};
    for (const [key, mask] of fields) {
      const b = bit(v, mask);
      text += `  ${(key + ":").padEnd(27)}${b}\n`;
      entry[key] = b;
    }
    json[name] = entry;
  };
  for (const { property, value } of list) {
    const v = value >>> 0;
    if (property === TPM_PT.PERMANENT) {
      flags("TPM2_PT_PERMANENT", v, [
        ["ownerAuthSet", 0x1],
        ["endorsementAuthSet", 0x2],
        ["lockoutAuthSet", 0x4],
        ["reserved1", 0xf8],
        ["disableClear", 0x100],
        ["inLockout", 0x200],
        ["tpmGeneratedEPS", 0x400],
        ["reserved2", 0xfffff800],
      ]);
    } else if (property === TPM_PT.STARTUP_CLEAR) {
      flags("TPM2_PT_STARTUP_CLEAR", v, [
        ["phEnable", 0x1],
        ["shEnable", 0x2],
        ["ehEnable", 0x4],
        ["phEnableNV", 0x8],
        ["reserved1", 0x7ffffff0],
        ["orderly", 0x80000000],
      ]);
    } else {
      // an unknown property is printed as "unknown%X: 0x%X" of its value (sic: tpm2_getcap 5.4 prints the value twice)
      const name = VARIABLE_NAMES.get(property) ?? `unknown${v.toString(16).toUpperCase()}`;
      text += `${name}: ${hexUpper(v)}\n`;
      json[name] = v;
    }
  }
  return { text, json };
}
