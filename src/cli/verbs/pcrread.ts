/**
 * `tpmkit pcrread [SELECTION]`: reads PCRs and prints them as `tpm2_pcrread` (tpm2-tools 5.4) does,
 * a YAML mapping of bank to PCR index to digest (`  sha256:` / `    0 : 0x…`, upper-case hex), or
 * with `--json` one JSON document (`{"sha256": {"0": "…"}}`, lower-case hex).
 *
 * What is read follows tpm2_pcrread (tools/tpm2_pcrread.c, lib/pcr.c): the allocated banks come
 * from TPM_CAP_PCRS; no argument reads every allocated bank and PCR, a bank name alone every PCR of
 * that bank; a list is masked by what is allocated, and a bank the TPM does not have is left out
 * with a warning on stderr (an error when nothing is left).
 *
 * @packageDocumentation
 */
import { TpmArgumentError, TpmFormatError } from "../../errors/index.js";
import { hashName, type HashAlgName, type PcrSelection } from "../../wire/types.js";
import { UsageError } from "../args.js";
import { bytesHex, parsePcrSelection, writeJson, type BankSelection, type PcrSelectionSpec } from "../output.js";
import type { Verb, VerbContext } from "../verb.js";

/** What `pcrread` was asked for. */
export interface PcrReadPlan {
  /** The selection as parsed. */
  readonly selection: PcrSelectionSpec;
}

const HELP = `usage: tpmkit pcrread [SELECTION] [options]

Reads PCRs and prints them as tpm2_pcrread (tpm2-tools 5.4) does: YAML, one mapping per bank.

SELECTION (as tpm2_pcrread takes it):
  (none)              every allocated bank, every PCR
  sha256              every PCR of one bank
  sha256:0,1,2        some PCRs of a bank (indexes 0-23)
  sha1:0+sha256:16    several banks
  sha256:all          PCRs 0-23 of a bank
  Banks: sha1, sha256, sha384, sha512, sm3_256, sha3_256, sha3_384, sha3_512.
  A PCR or bank named twice is printed once.

options:
  --json              one JSON document: {"sha256": {"0": "<lower-case hex>"}}

examples:
  tpmkit pcrread sha256:0,1
  tpmkit pcrread sha1:0+sha256:16 --json
`;

/** The `pcrread` verb. */
export const pcrreadVerb: Verb<PcrReadPlan> = {
  name: "pcrread",
  summary: "read PCRs (tpm2_pcrread's YAML; --json)",
  help: HELP,
  options: {},
  parse(args) {
    if (args.positionals.length > 1) throw new UsageError(`pcrread takes one PCR selection (join banks with "+", e.g. sha1:0+sha256:16), got ${args.positionals.length}`);
    return { selection: parsePcrSelection(args.positionals[0]) };
  },
  async run(plan, ctx) {
    const banks = await selectBanks(plan.selection, ctx);
    const sel: PcrSelection = {};
    for (const b of banks) if (b.pcrs.length > 0) (sel as Record<string, readonly number[]>)[b.alg] = b.pcrs;
    const values = Object.keys(sel).length > 0 ? await ctx.tpm.pcrRead(sel, ctx.call) : {};
    const json: Record<string, Record<string, string>> = {};
    let text = "";
    for (const b of banks) {
      const got = values[b.alg] ?? {};
      const bank: Record<string, string> = {};
      // tpm2-tools lib/pcr.c pcr_print_values: "  %s:\n" per bank, "    %-2d: 0x%02X…\n" per PCR
      text += `  ${b.alg}:\n`;
      for (const p of b.pcrs) {
        const d = got[p];
        if (!d) throw new TpmFormatError(`PCR_Read returned no value for ${b.alg} PCR ${p}`);
        bank[String(p)] = bytesHex(d);
        text += `    ${String(p).padEnd(2)}: 0x${bytesHex(d).toUpperCase()}\n`;
      }
      json[b.alg] = bank;
    }
    if (ctx.json) writeJson(ctx.out, json);
    else ctx.out.write(text);
  },
};

/** The banks and PCRs to read: the selection masked by what the TPM has allocated (TPM_CAP_PCRS). */
async function selectBanks(spec: PcrSelectionSpec, ctx: VerbContext): Promise<BankSelection[]> {
  const allocated = new Map<HashAlgName, number[]>();
  for (const b of await ctx.tpm.getPcrBanks(ctx.call)) {
    const name = hashName(b.hash);
    if (name) allocated.set(name, b.pcrs); // a bank of a hash tpm2-tools cannot name is one it cannot print either
  }
  const have = () => [...allocated.keys()].join(", ") || "none";
  switch (spec.kind) {
    case "default":
      return [...allocated].map(([alg, pcrs]) => ({ alg, pcrs }));
    case "bank": {
      const pcrs = allocated.get(spec.alg);
      if (!pcrs) throw new TpmArgumentError(`the TPM has no ${spec.alg} PCR bank (it has ${have()})`);
      return [{ alg: spec.alg, pcrs }];
    }
    case "list": {
      const out: BankSelection[] = [];
      for (const b of spec.banks) {
        const pcrs = allocated.get(b.alg);
        if (!pcrs) {
          // tpm2-tools lib/pcr.c pcr_check_pcr_selection: "Ignore unsupported bank/algorithm"
          ctx.err.write(`tpmkit: warning: ignoring the ${b.alg} bank: the TPM has no such PCR bank (it has ${have()})\n`);
          continue;
        }
        const on = new Set(pcrs);
        out.push({ alg: b.alg, pcrs: b.pcrs.filter((p) => on.has(p)) });
      }
      if (out.length === 0) throw new TpmArgumentError(`the TPM has none of the PCR banks asked for (it has ${have()})`);
      return out;
    }
  }
}
