/**
 * Golden trace: the exact register access sequence for one TPM2_GetRandom(16) through the tis()
 * driver and the TisDevice model, reviewed against the kernel's algorithm (Linux
 * drivers/char/tpm/tpm_tis_core.c and tpm-interface.c).
 * Consecutive identical status reads (a wait loop spinning) are collapsed into one line, so the
 * trace does not depend on how many microtasks the backend takes.
 */
import { describe, it, expect } from "vitest";
import { tis } from "./tis.js";
import { TisDevice } from "../../devices/tis/device.js";
import { FakeTpmBackend } from "../../testing/fake-backend.js";
import { FakeClock } from "../../core/clock.js";
import { traceMmio } from "../../bus/trace.js";
import { formatAccess } from "../../bus/access.js";

const GET_RANDOM_16 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);

function collapse(lines: string[]): string[] {
  return lines.filter((l, i) => !(l.startsWith("r") && !l.startsWith("rfifo") && lines[i - 1] === l));
}

describe("golden register trace", () => {
  it("GetRandom(16) at locality 0, polling, QEMU dynamic burst", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new TisDevice({ backend: new FakeTpmBackend(), clock });
    const traced = traceMmio(device, { channel: false });
    const t = tis({ mmio: traced });
    await t.open({ clock, locality: 0 });
    traced.clear();
    const rsp = await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
    expect(rsp.length).toBe(28);
    expect(collapse(traced.log.map(formatAccess))).toEqual([
      // request_locality. Kernel: r8 ACCESS (check), w8 0x02, r8 ACCESS until (v & 0xA2) == 0xA0.
      // DIFFERS: no check-first read, since the driver relinquishes after every command.
      "w8 0x0000 0x02",
      "r8 0x0000 = 0xa1", // VALID | activeLocality | establishment(no DRTM): granted
      // send: is commandReady set? Kernel: r8 STS, then r32 STS for burstCount before the first burst.
      // DIFFERS: one r32 gives the status byte (0x40 commandReady) and burstCount (0x1000) together.
      "r32 0x0018 = 0x04100040",
      // Kernel: write len-1 = 11 bytes, r8 STS until stsValid, require Expect = 1, w8 the last byte,
      // r8 STS until stsValid, require Expect = 0.
      // DIFFERS: the whole command goes in one burst (burstCount 4096 allows it) and Expect is checked
      // once after it (0x80: stsValid, Expect = 0). Same strictness: Expect must be 1 after any
      // non-final burst and 0 after the final one.
      "wfifo 0x0024 [12]",
      "r32 0x0018 = 0x040ff480",
      // GO. MATCHES the kernel.
      "w8 0x0018 0x20",
      // The core polls status until (sts & 0x90) == 0x90. MATCHES (status read as r32, see above);
      // the first poll sees the backend still running, the next one 28 bytes ready.
      "r32 0x0018 = 0x040ff480",
      "r32 0x0018 = 0x04001c90",
      // recv: header first (10 bytes in one burst), size checked (28 ≤ 4096, ≥ 10), then the body.
      // Kernel: before each chunk r8 STS for dataAvail|stsValid, r32 STS for burstCount.
      // MATCHES in order; DIFFERS by folding the two reads into one r32, and the header chunk reuses
      // the status read that ended the wait.
      "rfifo 0x0024 [10]",
      "r32 0x0018 = 0x04001290",
      "rfifo 0x0024 [18]",
      // Kernel: wait for stsValid, fail with EIO if dataAvail is still set. MATCHES (0x80: no extra data).
      "r32 0x0018 = 0x040fe480",
      // Kernel: recv always ends with tpm_tis_ready (commandReady). MATCHES.
      "w8 0x0018 0x40",
      // Kernel core: tpm_put_ops relinquishes the locality after every command. MATCHES.
      "w8 0x0000 0x20",
    ]);
    expect(device.state.activeLocality).toBeNull();
  });

  it("GetRandom(16) at locality 0 in interrupt mode", async () => {
    const clock = new FakeClock({ auto: true });
    const device = new TisDevice({ backend: new FakeTpmBackend(), clock });
    const traced = traceMmio(device, { channel: false });
    const t = tis({ mmio: traced, interrupts: device });
    await t.open({ clock, locality: 0 });
    expect(t.info?.interrupts).toBe(true);
    traced.clear();
    await t.send(GET_RANDOM_16, { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
    expect(collapse(traced.log.map(formatAccess))).toEqual([
      "w8 0x0000 0x02",
      "r8 0x0000 = 0xa1",
      "r32 0x0018 = 0x04100040",
      "wfifo 0x0024 [12]",
      "r32 0x0018 = 0x040ff480",
      "w8 0x0018 0x20",
      "r32 0x0018 = 0x040ff480", // not ready: sleep until the interrupt
      // the ISR's work (kernel tis_int_handler): read INT_STATUS, write it back to clear. MATCHES.
      // 0x87 = dataAvail | stsValid now, plus causes latched while nobody waited: commandReady (the
      // previous command's final commandReady, COMPLETION → READY) and localityChange (the grant)
      "r32 0x0010 = 0x00000087",
      "w32 0x0010 0x00000087",
      "r32 0x0018 = 0x04001c90",
      "rfifo 0x0024 [10]",
      "r32 0x0018 = 0x04001290",
      "rfifo 0x0024 [18]",
      "r32 0x0018 = 0x040fe480",
      "w8 0x0018 0x40",
      "w8 0x0000 0x20",
    ]);
  });
});
