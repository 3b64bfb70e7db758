/**
 * `tpmkit pcrextend PCR:ALG=HEX[,ALG=HEX] ...`: TPM2_PCR_Extend (TPM 2.0 Part 3 §22.2), with the
 * argument syntax of tpm2-tools' tpm2_pcrextend (man/tpm2_pcrextend.1.md). Every spec is checked
 * before the first extend.
 *
 * @packageDocumentation
 */
import { fromHex, toHex } from "../../wire/buffer.js";
import { HASH_ALGS, type HashAlgName } from "../../wire/types.js";
import { UsageError } from "../args.js";
import { parsePcrIndex } from "../output.js";
import type { Verb } from "../verb.js";

/** One extend: a PCR and a digest per bank. */
export interface PcrExtendStep {
  readonly pcr: number;
  readonly digests: Readonly<Partial<Record<HashAlgName, Uint8Array>>>;
}

const ALG_NAMES = Object.keys(HASH_ALGS) as HashAlgName[];

/**
 * Parses one `PCR:ALG=HEX[,ALG=HEX]` spec.
 *
 * @throws UsageError for a bad PCR index, an unknown bank, a repeated bank, or a digest that is
 *   not hex or not the bank's size
 */
export function parseExtendSpec(spec: string): PcrExtendStep {
  const m = /^([^:]*):(.*)$/.exec(spec);
  if (!m) throw new UsageError(`bad extend spec "${spec}" (want PCR:ALG=HEX[,ALG=HEX])`);
  let pcr: number;
  try {
    pcr = parsePcrIndex(m[1]!);
  } catch (e) {
    throw e instanceof UsageError ? new UsageError(`${e.message} (in "${spec}")`) : e;
  }
  const digests: Partial<Record<HashAlgName, Uint8Array>> = {};
  for (const part of m[2]!.split(",")) {
    const eq = part.indexOf("=");
    const alg = part.slice(0, eq) as HashAlgName;
    const hex = part.slice(eq + 1);
    if (eq < 0 || !hex || !Object.prototype.hasOwnProperty.call(HASH_ALGS, alg)) throw new UsageError(`bad digest "${part}" in "${spec}" (want ALG=HEX with ALG one of ${ALG_NAMES.join(", ")})`);
    if (digests[alg]) throw new UsageError(`${alg} is given twice in "${spec}"`);
    let d: Uint8Array;
    try {
      d = fromHex(hex);
    } catch {
      throw new UsageError(`"${hex}" is not hex (in "${spec}")`);
    }
    if (d.length !== HASH_ALGS[alg].size) throw new UsageError(`${alg} digest must be ${HASH_ALGS[alg].size} bytes, got ${d.length} (in "${spec}")`);
    digests[alg] = d;
  }
  return { pcr, digests };
}

/** `tpmkit pcrextend`. */
export const pcrextend: Verb<readonly PcrExtendStep[]> = {
  name: "pcrextend",
  summary: "extend PCRs: PCR:ALG=HEX[,ALG=HEX] ...  e.g. 16:sha256=00..01",
  help: `usage: tpmkit pcrextend PCR:ALG=HEX[,ALG=HEX] ... [--json] [-T TCTI] [-l N]

Extends each PCR (0-23) with the given digests (TPM2_PCR_Extend), in order. ALG is a bank
(${ALG_NAMES.join(", ")}); HEX is a digest of that bank's size. Every spec is checked before the
first extend: with one bad spec nothing is extended.
PCRs 17-22 can be extended only from locality 2-4 (-l), as the PC Client profile says.

  --json   print what was extended: {"extended":[{"pcr":16,"digests":{"sha256":"<hex>"}}]}

examples:
  tpmkit pcrextend 16:sha256=0000000000000000000000000000000000000000000000000000000000000001
  tpmkit pcrextend 17:sha1=$(printf %040d 1) -l 3
`,
  options: {},
  parse(args) {
    if (args.positionals.length === 0) throw new UsageError("pcrextend needs PCR:ALG=HEX[,ALG=HEX] (try tpmkit pcrextend --help)");
    return args.positionals.map(parseExtendSpec);
  },
  async run(steps, { tpm, call, json, out }) {
    for (const s of steps) await tpm.pcrExtend(s.pcr, s.digests, call);
    if (json) {
      const extended = steps.map((s) => ({ pcr: s.pcr, digests: Object.fromEntries(Object.entries(s.digests).map(([alg, d]) => [alg, toHex(d)])) }));
      out.write(JSON.stringify({ extended }) + "\n");
    }
  },
};
export default pcrextend;
