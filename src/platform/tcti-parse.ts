/**
 * TCTI strings, as tpm2-tss's TCTI loader and tpm2-tools take them (`-T`, `TPM2TOOLS_TCTI`):
 * `name` or `name:conf`, where `conf` is comma-separated `key=value` pairs
 * (`mssim:host=127.0.0.1,port=2321`) or, for `device`, a bare path (`device:/dev/tpmrm0`).
 * Sources: TCG TSS 2.0 TCTI specification; tpm2-tss include/tss2/tss2_tcti.h, src/tss2-tcti/tctildr.c and the
 * per-TCTI conf parsers (tcti-mssim.c, tcti-swtpm.c, tcti-device.c). Pure (no Node APIs).
 *
 * @packageDocumentation
 */
import { TpmArgumentError } from "../errors/index.js";
import type { Transport } from "../core/transport.js";

/** Parsed configuration: string values, except `port`, which is a number. */
export type TctiConfig = Readonly<Record<string, string | number>>;

/** A parsed TCTI string. */
export interface TctiSpec {
  /** Canonical TCTI name (`"mssim"`, `"swtpm"`, `"device"`, ...), lower-case, aliases resolved. */
  readonly name: string;
  /** The configuration. `device` gets `{ path }` when a path was given. */
  readonly config: TctiConfig;
  /** The original string. */
  readonly text: string;
}

interface Schema {
  /** Allowed keys (others are rejected). */
  keys: readonly string[];
  /** Keys that cannot be combined. */
  exclusive?: readonly (readonly [string, string])[];
  /** The configuration is a bare value stored under this key (device path). */
  bare?: string;
}

/**
 * Key schemas of the TCTIs tpmkit knows. Other names parse with any `key=value` pairs and are
 * left to their registry factory to check.
 */
const SCHEMAS: Readonly<Record<string, Schema>> = {
  device: { keys: ["path"], bare: "path" },
  mssim: { keys: ["host", "port", "path"], exclusive: [["path", "host"], ["path", "port"]] },
  swtpm: { keys: ["host", "port", "path"], exclusive: [["path", "host"], ["path", "port"]] },
  softtpm: { keys: ["state"] },
  memory: { keys: [] },
  tis: { keys: ["state"] },
  crb: { keys: ["state"] },
  "crb-ffa": { keys: ["state", "variant"] },
  ftpm: { keys: ["ta", "storage", "state", "client"] },
};

/** Names that mean the same TCTI (tpm2-tools treats `abrmd` and `tabrmd` as synonyms). */
const ALIASES: Readonly<Record<string, string>> = { abrmd: "tabrmd" };

function fail(text: string, why: string): never {
  throw new TpmArgumentError(`bad TCTI string "${text}": ${why}`);
}

function canonicalName(raw: string, text: string): string {
  let name = raw.trim();
  if (name === "") fail(text, "the TCTI name is empty");
  // The loader also takes the library file: libtss2-tcti-<name>.so[.0]
  const lib = /^(?:.*\/)?libtss2-tcti-([A-Za-z0-9_-]+)\.so(?:\.\d+)*$/.exec(name);
  if (lib) name = lib[1]!;
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(name)) fail(text, `"${name}" is not a TCTI name (letters, digits, "-" and "_")`);
  name = name.toLowerCase();
  return ALIASES[name] ?? name;
}

function parsePort(value: string, text: string): number {
  if (!/^\d{1,5}$/.test(value)) fail(text, `port "${value}" is not a number`);
  const n = Number(value);
  if (n < 1 || n > 65535) fail(text, `port ${n} is outside 1–65535`);
  return n;
}

/**
 * Parses `key=value,key=value`. Whitespace around keys and values is ignored (a common typo,
 * `host=127.0.0.1, port=5555`, once made tpm2-tss connect to a bogus address: tpm2-tss#1115).
 *
 * @param conf - the part after the first `:`
 * @param text - the whole string, for messages
 * @returns the pairs, `port` converted to a number
 * @throws TpmArgumentError for an item without `=`, an empty key, a repeated key or a bad port
 */
export function parseKeyValues(conf: string, text = conf): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (conf.trim() === "") return out;
  for (const item of conf.split(",")) {
    const eq = item.indexOf("=");
    if (eq < 0) fail(text, `"${item.trim()}" is not a key=value pair`);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (key === "") fail(text, `"${item.trim()}" has an empty key`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) fail(text, `"${key}" is not a valid key`);
    if (Object.prototype.hasOwnProperty.call(out, key)) fail(text, `key "${key}" is given twice`);
    if (value === "") fail(text, `key "${key}" has an empty value`);
    out[key] = key === "port" ? parsePort(value, text) : value;
  }
  return out;
}

/**
 * Parses a TCTI string.
 *
 * Accepted forms: `"swtpm:host=127.0.0.1,port=2321"`, `"swtpm:path=/run/x.sock"`,
 * `"mssim:host=..,port=.."`, `"device:/dev/tpmrm0"` (or `device:path=...`, or `device` for
 * the default search), `"memory"`, `"softtpm:state=FILE"`, `"tis"`, `"crb"`, and any other
 * `name[:key=value,...]` (checked by its factory). `abrmd` is read as `tabrmd`, and
 * `libtss2-tcti-<name>.so.0` as `<name>`, as tpm2-tss's loader does.
 *
 * @param text - the TCTI string
 * @returns name, configuration and the original text
 * @throws TpmArgumentError naming what is wrong: empty string, bad name, malformed pair, unknown
 *   or repeated key, bad port, `path` combined with `host`/`port`
 *
 * @example
 * ```ts
 * parseTcti("mssim:host=127.0.0.1,port=2321");
 * // { name: "mssim", config: { host: "127.0.0.1", port: 2321 }, text: "mssim:host=127.0.0.1,port=2321" }
 * parseTcti("device:/dev/tpmrm0"); // { name: "device", config: { path: "/dev/tpmrm0" }, ... }
 * ```
 */
export function parseTcti(text: string): TctiSpec {
  if (typeof text !== "string") throw new TpmArgumentError(`a TCTI string must be a string, got ${typeof text}`);
  const trimmed = text.trim();
  if (trimmed === "") fail(text, "it is empty");
  const colon = trimmed.indexOf(":");
  const name = canonicalName(colon < 0 ? trimmed : trimmed.slice(0, colon), text);
  const conf = colon < 0 ? "" : trimmed.slice(colon + 1);
  const schema = SCHEMAS[name];
  let config: Record<string, string | number>;
  if (schema?.bare !== undefined) {
    const c = conf.trim();
    const key = schema.bare;
    if (c === "") config = {};
    else if (c.startsWith(`${key}=`)) config = parseKeyValues(c, text);
    else if (c.includes(",")) fail(text, `${name} takes a single ${key}, not a list`);
    else config = { [key]: c };
  } else {
    config = parseKeyValues(conf, text);
  }
  if (schema) {
    for (const k of Object.keys(config)) {
      if (!schema.keys.includes(k)) {
        fail(text, schema.keys.length ? `${name} does not take "${k}" (it takes ${schema.keys.join(", ")})` : `${name} takes no configuration`);
      }
    }
    for (const [a, b] of schema.exclusive ?? []) {
      if (a in config && b in config) fail(text, `"${a}" and "${b}" cannot be combined`);
    }
  }
  return Object.freeze({ name, config: Object.freeze(config), text });
}

/**
 * Formats a spec back into a TCTI string (`device` with a bare path, others as key=value).
 *
 * @param spec - name and configuration
 * @returns the string
 */
export function formatTcti(spec: { name: string; config?: TctiConfig }): string {
  const entries = Object.entries(spec.config ?? {});
  if (entries.length === 0) return spec.name;
  if (spec.name === "device" && entries.length === 1 && entries[0]![0] === "path") return `device:${entries[0]![1]}`;
  return `${spec.name}:${entries.map(([k, v]) => `${k}=${v}`).join(",")}`;
}

/** Builds a transport from a parsed configuration. May throw TpmArgumentError for bad values. */
export type TctiFactory = (config: TctiConfig, spec: TctiSpec) => Transport;

/** Name → factory. Combine with object spread: `{ ...tctiRegistry, ...defineTcti("mytpm", f) }`. */
export type TctiRegistry = Readonly<Record<string, TctiFactory>>;

/**
 * Declares one registry entry.
 *
 * @param name - the TCTI name (lower-case letters, digits, `-`, `_`)
 * @param factory - builds the transport from the parsed configuration
 * @returns a one-entry registry, to spread into another
 * @throws TpmArgumentError when the name is not a valid TCTI name
 *
 * @example
 * ```ts
 * const registry = { ...tctiRegistry, ...defineTcti("lab", (c) => swtpm({ host: "lab-tpm.local", port: Number(c.port ?? 2321) })) };
 * const transport = await openTransport("lab:port=2321", { registry });
 * ```
 */
export function defineTcti(name: string, factory: TctiFactory): TctiRegistry {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) throw new TpmArgumentError(`"${name}" is not a TCTI name (lower-case letters, digits, "-" and "_")`);
  if (typeof factory !== "function") throw new TpmArgumentError(`the factory of TCTI "${name}" is not a function`);
  return Object.freeze({ [name]: factory });
}

/** A TCTI config value as a string (undefined stays undefined), for factories. */
export const confStr = (v: string | number | undefined): string | undefined => (v === undefined ? undefined : String(v));
/** A TCTI config value as a number (undefined stays undefined), for factories. */
export const confNum = (v: string | number | undefined): number | undefined => (v === undefined ? undefined : Number(v));
