/**
 * `tpmkit getrandom N`: N random bytes from the TPM (TPM2_GetRandom, TPM 2.0 Part 3 §16.1), as
 * tpm2-tools' tpm2_getrandom (raw bytes on stdout, `--hex` for hex).
 *
 * @packageDocumentation
 */
import { toHex } from "../../wire/buffer.js";
import { parseIntInRange, UsageError } from "../args.js";
import type { Verb } from "../verb.js";

/** What `getrandom` will do. */
export interface GetrandomPlan {
  /** How many bytes. */
  readonly count: number;
  /** `--hex`: print lower-case hex and a newline instead of raw bytes. */
  readonly hex: boolean;
}

/** `tpmkit getrandom`. */
export const getrandom: Verb<GetrandomPlan> = {
  name: "getrandom",
  summary: "N random bytes from the TPM (raw to stdout, or hex with --hex)",
  help: `usage: tpmkit getrandom N [--hex] [--json] [-T TCTI] [-l N]

Asks the TPM for N random bytes (0-65535; TPM2_GetRandom, repeated while the TPM returns fewer).

  --hex    print them as lower-case hex and a newline (default: raw bytes, as tpm2_getrandom)
  --json   print {"randomBytes":"<hex>"}

examples:
  tpmkit getrandom 8 --hex
  tpmkit getrandom 32 > seed.bin
`,
  options: { hex: { type: "boolean" } },
  parse(args) {
    if (args.positionals.length !== 1) throw new UsageError(`getrandom needs one count, 0-65535${args.positionals.length ? `, got "${args.positionals.join(" ")}"` : ""} (try tpmkit getrandom --help)`);
    return { count: parseIntInRange(args.positionals[0]!, "count", 0, 65535), hex: args.values.hex === true };
  },
  async run(plan, { tpm, call, json, out }) {
    const bytes = await tpm.getRandom(plan.count, call);
    if (json) out.write(JSON.stringify({ randomBytes: toHex(bytes) }) + "\n");
    else if (plan.hex) out.write(toHex(bytes) + "\n");
    else out.write(bytes);
  },
};
export default getrandom;
