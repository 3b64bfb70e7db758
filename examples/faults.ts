// Fault injection on the register bus: faultyMmio wraps a healthy TisDevice and makes chosen
// accesses misbehave, the way real buses do (the glitches the Linux TPM drivers were hardened
// against in 2018, after NCC Group's TPM Genie).
// 1. One failed bus transfer (a `throw` fault on the next FIFO write) fails that command with a
//    typed TpmTransportError (errno EIO); the driver cleans up (commandReady, relinquish), so the
//    next command succeeds.
// 2. One flipped bit in the response's size field is caught by the driver's size check and
//    absorbed with responseRetry (PTP §6.5.2; Linux drivers/char/tpm/tpm_tis_core.c,
//    tpm_tis_recv()): the caller never
//    sees it, the `tpmkit:driver:tis` diagnostics channel does.
//
// Run: see examples/README.md.
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { pathToFileURL } from "node:url";
import { SoftTpm, TisDevice, Tpm, TpmTransportError, faultyMmio, tis, toHex } from "../src/index.js";

/** What the TIS driver publishes on `tpmkit:driver:tis` (the fields this example reads). */
interface TisDriverEvent {
  type: "invalid-status" | "irq-fallback" | "data-retry" | "response-retry";
  attempt?: number;
  reason?: string;
}

const TIS_FIFO = 0x24; // DATA_FIFO of locality 0 (PTP §6.5.2; Linux tpm_tis_core.h, TPM_DATA_FIFO)

/** Runs the example; `log` receives each output line. */
export async function main(log: (line: string) => void = console.log): Promise<void> {
  const device = new TisDevice({ backend: new SoftTpm({ seed: "faults example" }) });
  const bus = faultyMmio(device);
  const tpm = await Tpm.open(tis({ mmio: bus }));
  const events: TisDriverEvent[] = [];
  const onEvent = (m: unknown) => events.push(m as TisDriverEvent);
  subscribe("tpmkit:driver:tis", onEvent);
  try {
    // 1. a failed transfer
    bus.inject({ kind: "throw", ops: ["writeFifo"], offset: TIS_FIFO, times: 1 });
    try {
      await tpm.getRandom(8);
      log("1st getRandom: succeeded (unexpected)");
    } catch (e) {
      if (!(e instanceof TpmTransportError)) throw e;
      log(`1st getRandom: ${e.name} errno ${e.errno}: ${e.shortMessage}`);
    }
    log(`2nd getRandom: ${toHex(await tpm.getRandom(8))}`);

    // 2. one bit flip in the response header's size field (byte 2 of the first FIFO read)
    bus.inject({ kind: "flip", ops: ["readFifo"], offset: TIS_FIFO, byte: 2, bit: 7, times: 1 });
    log(`3rd getRandom: ${toHex(await tpm.getRandom(8))}`);
    for (const ev of events) if (ev.type === "response-retry") log(`driver event: response-retry #${ev.attempt} (${ev.reason})`);
    log(`faulted accesses: ${bus.hits}`);
  } finally {
    unsubscribe("tpmkit:driver:tis", onEvent);
    await tpm.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
