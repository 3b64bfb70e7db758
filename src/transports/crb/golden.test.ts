import { describe, it, expect } from "vitest";
import { FakeClock } from "../../core/clock.js";
import { CrbDevice } from "../../devices/crb/index.js";
import { crb, mmioStart } from "./index.js";
import { RecordingMmio, type Access } from "../../testing/crb.js";
import { FakeTpmBackend, fakeTpmResponse as answer, getRandomCommand } from "../../testing/fake-backend.js";

const fmt = (a: Access) => `${a.op} 0x${a.offset.toString(16).padStart(3, "0")} ${a.op.endsWith("blk") ? `len ${a.value}` : `0x${a.value.toString(16)}`}`;

/**
 * Golden trace of one TPM2_GetRandom(16) through crb(mmioStart()) and CrbDevice, reviewed against
 * the kernel's algorithm (Linux drivers/char/tpm/tpm_crb.c and tpm-interface.c: tpm_try_get_ops → chip_start → crb_send →
 * core status poll → crb_recv → tpm_put_ops). Each line says where it matches and where it differs.
 */
const GOLDEN_SEND: [string, string][] = [
  // chip_start → request_locality(0): the kernel writes LOC_CTRL = requestAccess and waits for
  // (LOC_STATE & 0x82) == 0x82. Matches. (The kernel refcounts the locality; we do it per command,
  // which is what the core does too: every command is wrapped in request/relinquish.)
  ["w32 0x008 0x1", "LOC_CTRL = requestAccess"],
  ["r32 0x000 0x83", "LOC_STATE: regValid | locAssigned | !established"],
  // chip_start → cmd_ready (has_idle for start method 7): CTRL_REQ = cmdReady, wait for bit0 clear. Matches.
  ["w32 0x040 0x1", "CTRL_REQ = cmdReady"],
  ["r32 0x040 0x0", "CTRL_REQ cleared by the TPM"],
  // crb_send step 1: CTRL_CANCEL = 0. Matches. Step 2 (E2BIG) was checked before any access: a
  // difference (the kernel checks after this write); no register is touched for an oversize command.
  ["w32 0x048 0x0", "CTRL_CANCEL = 0"],
  // crb_send step 4: memcpy_toio of the command into the buffer. Same bytes; one burst instead of
  // the kernel's word-sized MMIO copies (bufferAccess: "dword" gives 32-bit accesses).
  ["wblk 0x080 len 12", "command → buffer"],
  // crb_send step 5, start method 7: CTRL_START = 1. Matches.
  ["w32 0x04c 0x1", "CTRL_START = 1"],
  // The core polls status (CTRL_START bit0 == 0 means complete) every ~1 ms. Differs: we poll back
  // to back first (the model completes within microtasks), then back off from 50 µs to 1 ms.
  ["r32 0x04c 0x1", "CTRL_START still set"],
  ["r32 0x04c 0x0", "CTRL_START cleared: response ready"],
  // crb_recv step 1: CTRL_STS bit0 (tpmSts) → -EIO. Matches.
  ["r32 0x044 0x0", "CTRL_STS: no fatal error"],
  // crb_recv steps 2–4: copy 8 bytes, check 10 ≤ size ≤ rsp_size, copy the rest. Matches.
  ["rblk 0x080 len 8", "response head"],
  ["rblk 0x088 len 20", "response rest (28 − 8)"],
  // tpm_put_ops → go_idle: CTRL_REQ = goIdle, wait for bit1 clear. Matches.
  ["w32 0x040 0x2", "CTRL_REQ = goIdle"],
  ["r32 0x040 0x0", "CTRL_REQ cleared"],
  // relinquish_locality: LOC_CTRL = relinquish, wait for (LOC_STATE & 0x82) == 0x80. Matches.
  ["w32 0x008 0x2", "LOC_CTRL = relinquish"],
  ["r32 0x000 0x81", "LOC_STATE: regValid, not assigned"],
];

/** Open, reviewed against crb_acpi_add / crb_map_io. */
const GOLDEN_OPEN: [string, string][] = [
  // tpmkit addition (the TIS driver's ACCESS.VALID wait): regValid at open, bounded by timeout A.
  ["r32 0x000 0x81", "LOC_STATE.tpmRegValidSts"],
  // tpmkit addition: INTF_ID must say CRB (the kernel never parses it).
  ["r32 0x030 0x25811", "INTF_ID: CRB active, v1, locality 0 only"],
  ["r32 0x034 0x1014", "INTF_ID2: VID 0x1014"],
  // kernel probe step 3: take locality 0. Matches.
  ["w32 0x008 0x1", "LOC_CTRL = requestAccess"],
  ["r32 0x000 0x83", "granted"],
  // step 4: cmdReady (the PTT wake-up before reading registers). Matches.
  ["w32 0x040 0x1", "CTRL_REQ = cmdReady"],
  ["r32 0x040 0x0", ""],
  // step 5: command address high:low and size, then the response address (64-bit) and size. Matches.
  ["r32 0x060 0x0", "CMD_PA_HIGH"],
  ["r32 0x05c 0x80", "CMD_PA_LOW"],
  ["r32 0x058 0xf80", "CMD_SIZE"],
  ["r32 0x068 0x80", "RSP_PA low"],
  ["r32 0x06c 0x0", "RSP_PA high"],
  ["r32 0x064 0xf80", "RSP_SIZE"],
  // step 6: goIdle, release locality 0. Matches.
  ["w32 0x040 0x2", "CTRL_REQ = goIdle"],
  ["r32 0x040 0x0", ""],
  ["w32 0x008 0x2", "LOC_CTRL = relinquish"],
  ["r32 0x000 0x81", ""],
];

describe("golden trace: GetRandom(16) through crb(mmioStart) and CrbDevice", () => {
  it("opens with the kernel's probe sequence", async () => {
    const clock = new FakeClock({ auto: true });
    const mmio = new RecordingMmio(new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) }));
    await crb({ mmio, start: mmioStart() }).open({ clock, locality: 0 });
    expect(mmio.log.map(fmt)).toEqual(GOLDEN_OPEN.map((g) => g[0]));
  });

  it("sends with the kernel's per-command sequence (16 register accesses + 1 extra START poll)", async () => {
    const clock = new FakeClock({ auto: true });
    const mmio = new RecordingMmio(new CrbDevice({ backend: new FakeTpmBackend({ start: false, random: "repeat" }) }));
    const t = crb({ mmio, start: mmioStart() });
    await t.open({ clock, locality: 0 });
    mmio.log = [];
    const rsp = await t.send(getRandomCommand(16), { signal: new AbortController().signal, locality: 0, timeoutMs: 2000, clock });
    expect(rsp).toEqual(answer(getRandomCommand(16)));
    expect(mmio.log.map(fmt)).toEqual(GOLDEN_SEND.map((g) => g[0]));
    expect(clock.now()).toBe(0); // a device that answers in microtasks costs no clock time
  });
});
