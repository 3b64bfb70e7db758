// Observability through node:diagnostics_channel:
// - `tpmkit:chip:command`: one message per command, from the Chip (code, locality, rc, retries, duration);
// - `tpmkit:bus:mmio`: one message per register access, from the traceMmio wrapper.
// The example subscribes to both and prints the TIS register accesses of one TPM2_GetRandom(8):
// locality request, commandReady, FIFO writes with the Expect checks, GO, the dataAvail poll,
// the FIFO reads, commandReady and relinquish (PTP §6.5.2; Linux drivers/char/tpm/tpm_tis_core.c).
//
// Run: see examples/README.md.
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { pathToFileURL } from "node:url";
import { SoftTpm, TisDevice, Tpm, commandName, formatRc, tis, traceMmio, type ChipCommandEvent, type MmioAccess } from "../src/index.js";

/** TIS register names by offset inside a locality page (PTP §6.5.2; Linux tpm_tis_core.h). */
const TIS_NAMES: Record<number, string> = {
  0x000: "ACCESS",
  0x008: "INT_ENABLE",
  0x00c: "INT_VECTOR",
  0x010: "INT_STATUS",
  0x014: "INTF_CAPABILITY",
  0x018: "STS",
  0x024: "DATA_FIFO",
  0x030: "INTERFACE_ID",
  0xf00: "DID_VID",
  0xf04: "RID",
};

/** One access as a line: `read32  L0 STS        = 0x00000090`. */
function formatTisAccess(a: MmioAccess): string {
  const locality = a.offset >> 12;
  const reg = (TIS_NAMES[a.offset & 0xfff] ?? `0x${(a.offset & 0xfff).toString(16)}`).padEnd(10);
  const hex = (v: number | undefined) => "0x" + ((v ?? 0) >>> 0).toString(16).padStart(a.op.endsWith("8") ? 2 : 8, "0");
  if (a.op === "readFifo" || a.op === "writeFifo") return `${a.op.padEnd(9)} L${locality} ${reg} ${a.data?.length ?? a.length ?? 0} bytes`;
  return `${a.op.padEnd(9)} L${locality} ${reg} ${a.op.startsWith("read") ? "= " : "<- "}${hex(a.value)}`;
}

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  const device = new TisDevice({ backend: new SoftTpm({ seed: "trace example" }) });
  const traced = traceMmio(device, { record: false, label: "tis0" }); // publish only, keep no log
  const tpm = await Tpm.open(tis({ mmio: traced }));

  const accesses: MmioAccess[] = [];
  const onMmio = (m: unknown) => {
    const msg = m as MmioAccess & { label?: string };
    if (msg.label === "tis0") accesses.push(msg);
  };
  const onCommand = (m: unknown) => {
    const ev = m as ChipCommandEvent;
    if (ev.chip !== tpm.chip) return;
    const rc = ev.rc === undefined ? `error ${String(ev.error)}` : formatRc(ev.rc);
    log(`chip: ${commandName(ev.commandCode)} at locality ${ev.locality} -> ${rc}, ${ev.retries} retries`);
  };
  subscribe("tpmkit:bus:mmio", onMmio);
  subscribe("tpmkit:chip:command", onCommand);
  try {
    await tpm.getRandom(8);
  } finally {
    unsubscribe("tpmkit:bus:mmio", onMmio);
    unsubscribe("tpmkit:chip:command", onCommand);
    await tpm.close();
  }
  log(`mmio: ${accesses.length} register accesses for one GetRandom`);
  for (const a of accesses) log(`  ${formatTisAccess(a)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
