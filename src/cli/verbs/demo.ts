/**
 * `tpmkit demo`: opens the TPM (the embedded SoftTpm unless `-T` says otherwise: it is what
 * `npm start` runs) and shows what it is and what it does.
 *
 * @packageDocumentation
 */
import { toHex } from "../../wire/buffer.js";
import { hashName } from "../../wire/types.js";
import { UsageError } from "../args.js";
import type { Verb } from "../verb.js";

const PCRS = [0, 7, 16, 17] as const;

/** `tpmkit demo`. */
export const demo: Verb<null> = {
  name: "demo",
  summary: "open the TPM and show what it is and what it does (embedded SoftTpm unless -T)",
  help: `usage: tpmkit demo [-T TCTI] [--json]

Shows the TPM (manufacturer, spec level, buffers, PCR banks), reads PCRs 0, 7, 16 and 17, draws
16 random bytes, hashes a message with TPM2_Hash and extends the digest into PCR 16.
Runs on the embedded SoftTpm (-T memory) unless -T names another TPM; the environment
(TPM2TOOLS_TCTI, TCTI) is not read, so the demo never extends a PCR of a TPM you did not name.

  --json   print the same as one JSON object

examples:
  tpmkit demo
  tpmkit demo -T crb
`,
  options: {},
  defaultTcti: "memory",
  describesTarget: true,
  parse(args) {
    if (args.positionals.length) throw new UsageError(`demo takes no arguments, got "${args.positionals.join(" ")}" (try tpmkit demo --help)`);
    return null;
  },
  async run(_plan, { tpm, target, call, json, out }) {
    const info = await tpm.getInfo(call);
    const banks = await tpm.getPcrBanks(call);
    const pcrs = await tpm.pcrRead({ sha256: [...PCRS] }, call);
    const random = await tpm.getRandom(16, call);
    const message = "hello from tpmkit";
    const digest = await tpm.digest(new TextEncoder().encode(message), "sha256", call);
    await tpm.pcrExtend(16, { sha256: digest }, call);
    const after = await tpm.pcrRead({ sha256: [16] }, call);
    const clock = await tpm.readClock(call);
    const bankName = (h: number) => hashName(h) ?? "0x" + h.toString(16);
    if (json) {
      out.write(
        JSON.stringify({
          target: target.description,
          info,
          pcrBanks: Object.fromEntries(banks.filter((b) => b.pcrs.length).map((b) => [bankName(b.hash), b.pcrs])),
          pcrs: { sha256: Object.fromEntries(PCRS.map((i) => [String(i), toHex(pcrs.sha256![i]!)])) },
          random: toHex(random),
          hash: { message, sha256: toHex(digest) },
          extended: { pcr: 16, sha256: toHex(after.sha256![16]!) },
          clock: { clock: String(clock.clock), resetCount: clock.resetCount, restartCount: clock.restartCount, safe: clock.safe },
        }) + "\n",
      );
      return;
    }
    const w = (s: string) => out.write(s + "\n");
    w(`tpmkit demo: ${target.description}`);
    w("");
    w(`  TPM            ${info.manufacturer || "?"} "${info.vendorString}", firmware ${info.firmwareVersion.map((v) => "0x" + v.toString(16)).join(".")}`);
    w(`  spec           TPM ${info.family}, level ${info.level}, revision ${info.revision.toFixed(2)}, ${info.year}`);
    w(`  buffers        command ${info.maxCommandSize ?? "?"} B, response ${info.maxResponseSize ?? "?"} B`);
    w(`  PCR banks      ${banks.filter((b) => b.pcrs.length).map((b) => `${bankName(b.hash)} (${b.pcrs.length})`).join(", ")}`);
    for (const i of PCRS) w(`  sha256 PCR ${String(i).padEnd(3)} ${toHex(pcrs.sha256![i]!)}`);
    w(`  random (16)    ${toHex(random)}`);
    w(`  TPM2_Hash      sha256("${message}") = ${toHex(digest)}`);
    w(`  PCR_Extend 16  with that digest`);
    w(`  sha256 PCR 16  ${toHex(after.sha256![16]!)}`);
    w(`  clock          ${clock.clock} ms since clear, reset count ${clock.resetCount}, ${clock.safe ? "safe" : "not safe"}`);
  },
};
export default demo;
