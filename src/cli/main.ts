/**
 * The `tpmkit` command: `tpmkit demo` (the main job), and verbs in tpm2-tools style
 * (getrandom, pcrread, pcrextend, getcap, serve). `-T/--tcti` picks the TPM.
 *
 * @packageDocumentation
 */
import { TpmkitError } from "../errors/index.js";
import { Tpm } from "../client/tpm.js";
import { fromHex, toHex } from "../wire/buffer.js";
import { TPM_ALG, TPM_CC, TPM_PT } from "../wire/constants.js";
import { HASH_ALGS, hashName, type HashAlgName, type PcrSelection } from "../wire/types.js";
import { parseArgs, UsageError, type ParsedArgs } from "./args.js";
import { openCliTarget, type CliTarget } from "./target.js";

const VERSION = "0.1.0";

const HELP = `tpmkit ${VERSION}: a TPM 2.0 toolkit

usage: tpmkit <verb> [options] [-T TCTI]

verbs:
  demo                          open the TPM and show what it is and what it does
  getrandom N [--hex]           N random bytes (raw to stdout, or hex with --hex)
  pcrread [BANK:PCRS ...]       e.g. sha256:0,1,2  (default: sha1 and sha256 of PCRs 0-23)
  pcrextend PCR:ALG=HEX[,ALG=HEX]   e.g. 16:sha256=00..01
  getcap CAPABILITY             properties-fixed | properties-variable | pcrs | algorithms | commands
  serve --protocol swtpm|mssim [--port P] [--host H | --path SOCK]   expose the TPM on a socket

options:
  -T, --tcti STRING   memory | softtpm[:state=FILE] | swtpm:host=H,port=P | swtpm:path=SOCK |
                      mssim:host=H,port=P | device[:PATH] | tis | crb
                      (default: $TPM2TOOLS_TCTI, $TCTI, then memory)
  -l, --locality N    send commands at locality N (0-4)
  -h, --help          this text
  -V, --version       the version
`;

/** Runs the CLI; returns the exit code. Writes errors as one line to stderr. */
export async function main(argv: readonly string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    err.write(`tpmkit: ${(e as Error).message}\n`);
    return 2;
  }
  if (args.flags.has("version")) {
    out.write(`${VERSION}\n`);
    return 0;
  }
  if (args.flags.has("help") || args.verb === undefined || args.verb === "help") {
    out.write(HELP);
    return args.verb === undefined && !args.flags.has("help") ? 2 : 0;
  }
  let target: CliTarget | undefined;
  try {
    const verb = VERBS[args.verb];
    if (!verb) throw new UsageError(`unknown verb "${args.verb}" (try tpmkit --help)`);
    const localityFlag = args.flags.get("locality");
    let locality: number | undefined;
    if (localityFlag !== undefined) {
      locality = Number(localityFlag);
      if (!Number.isInteger(locality) || locality < 0 || locality > 4) throw new UsageError(`--locality must be 0-4, got ${String(localityFlag)}`);
    }
    const tcti = args.flags.get("tcti");
    if (tcti === true) throw new UsageError("--tcti needs a value");
    target = await openCliTarget(tcti ?? process.env.TPM2TOOLS_TCTI ?? process.env.TCTI ?? "memory", { locality });
    await verb(args, target, out, err);
    await target.finish();
    return 0;
  } catch (e) {
    await target?.abandon().catch(() => {});
    if (e instanceof UsageError) {
      err.write(`tpmkit: ${e.message}\n`);
      return 2;
    }
    if (e instanceof TpmkitError) {
      err.write(`tpmkit: ${e.shortMessage.split("\n")[0]} [${e.code}]\n`);
      return 1;
    }
    err.write(`tpmkit: ${(e as Error)?.message ?? String(e)}\n`);
    return 1;
  }
}

type Verb = (args: ParsedArgs, target: CliTarget, out: NodeJS.WritableStream, err: NodeJS.WritableStream) => Promise<void>;

const BANK_ORDER: HashAlgName[] = ["sha1", "sha256", "sha384", "sha512"];

const VERBS: Record<string, Verb> = {
  async demo(_args, target, out) {
    const tpm = target.tpm;
    const info = await tpm.getInfo();
    const banks = await tpm.getPcrBanks();
    const w = (s: string) => out.write(s + "\n");
    w(`tpmkit demo: ${target.description}`);
    w("");
    w(`  TPM            ${info.manufacturer || "?"} "${info.vendorString}", firmware ${info.firmwareVersion.map((v) => "0x" + v.toString(16)).join(".")}`);
    w(`  spec           TPM ${info.family}, level ${info.level}, revision ${info.revision.toFixed(2)}, ${info.year}`);
    w(`  buffers        command ${info.maxCommandSize ?? "?"} B, response ${info.maxResponseSize ?? "?"} B`);
    w(`  PCR banks      ${banks.filter((b) => b.pcrs.length).map((b) => `${hashName(b.hash) ?? "0x" + b.hash.toString(16)} (${b.pcrs.length})`).join(", ")}`);
    const pcrs = await tpm.pcrRead({ sha256: [0, 7, 16, 17] });
    for (const i of [0, 7, 16, 17]) w(`  sha256 PCR ${String(i).padEnd(3)} ${toHex(pcrs.sha256![i]!)}`);
    w(`  random (16)    ${toHex(await tpm.getRandom(16))}`);
    const message = new TextEncoder().encode("hello from tpmkit");
    const digest = await tpm.digest(message, "sha256");
    w(`  TPM2_Hash      sha256("hello from tpmkit") = ${toHex(digest)}`);
    await tpm.pcrExtend(16, { sha256: digest });
    const after = await tpm.pcrRead({ sha256: [16] });
    w(`  PCR_Extend 16  with that digest`);
    w(`  sha256 PCR 16  ${toHex(after.sha256![16]!)}`);
    const clock = await tpm.readClock();
    w(`  clock          ${clock.clock} ms since clear, reset count ${clock.resetCount}, ${clock.safe ? "safe" : "not safe"}`);
  },

  async getrandom(args, target, out) {
    const n = Number(args.positionals[0]);
    if (args.positionals.length !== 1 || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError("getrandom needs one count, 0-65535");
    const bytes = await target.tpm.getRandom(n);
    if (args.flags.has("hex")) out.write(toHex(bytes) + "\n");
    else out.write(bytes);
  },

  async pcrread(args, target, out) {
    const sel = args.positionals.length ? parseSelection(args.positionals) : { sha1: range24(), sha256: range24() };
    const values = await target.tpm.pcrRead(sel);
    for (const bank of Object.keys(sel) as HashAlgName[]) {
      out.write(`  ${bank}:\n`);
      const v = values[bank] ?? {};
      for (const p of sel[bank]!) {
        const d = v[p];
        out.write(`    ${String(p).padStart(2)} : ${d ? "0x" + toHex(d).toUpperCase() : "(not allocated)"}\n`);
      }
    }
  },

  async pcrextend(args, target) {
    if (args.positionals.length === 0) throw new UsageError("pcrextend needs PCR:ALG=HEX[,ALG=HEX]");
    for (const spec of args.positionals) {
      const m = /^(\d+):(.+)$/.exec(spec);
      if (!m) throw new UsageError(`bad extend spec "${spec}" (want PCR:ALG=HEX)`);
      const digests: Partial<Record<HashAlgName, Uint8Array>> = {};
      for (const part of m[2]!.split(",")) {
        const [alg, hex] = part.split("=");
        if (!alg || !hex || !(alg in HASH_ALGS)) throw new UsageError(`bad digest "${part}" (want ALG=HEX with ALG one of ${Object.keys(HASH_ALGS).join(", ")})`);
        let d: Uint8Array;
        try {
          d = fromHex(hex);
        } catch {
          throw new UsageError(`"${hex}" is not hex`);
        }
        if (d.length !== HASH_ALGS[alg as HashAlgName].size) throw new UsageError(`${alg} digest must be ${HASH_ALGS[alg as HashAlgName].size} bytes, got ${d.length}`);
        digests[alg as HashAlgName] = d;
      }
      await target.tpm.pcrExtend(Number(m[1]), digests, { locality: target.locality });
    }
  },

  async getcap(args, target, out) {
    const what = args.positionals[0];
    const tpm = target.tpm;
    switch (what) {
      case "properties-fixed":
      case "properties-variable": {
        const props = await tpm.getProperties(what === "properties-fixed" ? "fixed" : "variable");
        for (const [pt, v] of props) {
          const ascii = asciiOf(v);
          out.write(`${PT_NAMES.get(pt) ?? "TPM2_PT_0x" + pt.toString(16)}: 0x${v.toString(16).toUpperCase()}${ascii ? ` "${ascii}"` : ""}\n`);
        }
        return;
      }
      case "pcrs": {
        for (const b of await tpm.getPcrBanks()) out.write(`  ${hashName(b.hash) ?? "0x" + b.hash.toString(16)}: [ ${b.pcrs.join(", ")} ]\n`);
        return;
      }
      case "algorithms": {
        for (const a of await tpm.getAlgorithms()) out.write(`${ALG_NAMES.get(a.alg) ?? "0x" + a.alg.toString(16)}: value 0x${a.alg.toString(16)} attributes 0x${a.attributes.toString(16)}\n`);
        return;
      }
      case "commands": {
        for (const c of await tpm.getCommands()) out.write(`${CC_NAMES.get(c.commandIndex) ?? "0x" + c.commandIndex.toString(16)}: 0x${(c.attributes >>> 0).toString(16)}\n`);
        return;
      }
      default:
        throw new UsageError(`getcap needs one of properties-fixed, properties-variable, pcrs, algorithms, commands${what ? ` (got "${what}")` : ""}`);
    }
  },

  async serve(args, target, out) {
    const { serveCli } = await import("./serve.js");
    await serveCli(args, target, out);
  },
};

function range24(): number[] {
  return Array.from({ length: 24 }, (_, i) => i);
}

function parseSelection(specs: readonly string[]): PcrSelection {
  const sel: Record<string, number[]> = {};
  for (const spec of specs.flatMap((s) => s.split("+"))) {
    const m = /^([a-z0-9_]+):(.+)$/.exec(spec);
    if (!m || !(m[1]! in HASH_ALGS)) throw new UsageError(`bad PCR selection "${spec}" (want BANK:0,1,2 with BANK one of ${BANK_ORDER.join(", ")})`);
    const pcrs = m[2] === "all" ? range24() : m[2]!.split(",").map((x) => Number(x));
    if (pcrs.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) throw new UsageError(`bad PCR list "${m[2]}" (want numbers 0-23)`);
    sel[m[1]!] = [...(sel[m[1]!] ?? []), ...pcrs];
  }
  return sel as PcrSelection;
}

function asciiOf(v: number): string {
  const bytes = [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  if (bytes.filter((b) => b !== 0).length < 2) return "";
  if (!bytes.every((b) => b === 0 || (b >= 0x20 && b < 0x7f))) return "";
  return String.fromCharCode(...bytes.filter((b) => b));
}

const PT_NAMES = new Map<number, string>(Object.entries(TPM_PT).map(([k, v]) => [v, `TPM2_PT_${k}`]));
const ALG_NAMES = new Map<number, string>(Object.entries(TPM_ALG).map(([k, v]) => [v, k.toLowerCase()]));
const CC_NAMES = new Map<number, string>(Object.entries(TPM_CC).map(([k, v]) => [v & 0xffff, `TPM2_CC_${k}`]));
void Tpm;

const isMain = (() => {
  try {
    const argv1 = process.argv[1] ?? "";
    return /tpmkit$|cli[\\/]main\.(js|ts|mjs)$/.test(argv1) || argv1.endsWith("/bin/tpmkit");
  } catch {
    return false;
  }
})();
if (isMain) {
  // `tpmkit getcap commands | head` closes stdout early: that is not an error.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`tpmkit: ${(e as Error)?.message ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
