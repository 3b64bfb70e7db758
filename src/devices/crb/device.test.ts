import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { CrbDevice, CRB_DEVICE_CHANNEL, type CrbDeviceEvent } from "./index.js";
import { CRB_REG } from "../../bus/crb-registers.js";
import { CRB_QEMU_ADDRESS } from "./qemu.js";
import { FakeTpmBackend, fakeTpmResponse as answer, getRandomCommand } from "../../testing/fake-backend.js";
import { TpmArgumentError } from "../../errors/index.js";
import { TPM_RC } from "../../wire/constants.js";

const R = CRB_REG;
const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

function device(opts: Partial<ConstructorParameters<typeof CrbDevice>[0]> = {}) {
  const backend = (opts.backend as FakeTpmBackend | undefined) ?? new FakeTpmBackend({ start: false, random: "repeat" });
  const dev = new CrbDevice({ ...opts, backend });
  return { dev, backend };
}

/** Takes locality `l` and writes `cmd` into the buffer. */
function load(dev: CrbDevice, cmd: Uint8Array, l = 0) {
  dev.write32(l * 0x1000 + R.LOC_CTRL, 1);
  dev.writeFifo(l * 0x1000 + R.DATA_BUFFER, cmd);
}

describe("CrbDevice reset values (QEMU tpm_crb_reset)", () => {
  it("reads QEMU's reset register values", () => {
    const { dev } = device();
    expect(dev.read32(R.LOC_STATE)).toBe(0x81); // regValid | !established
    expect(dev.read32(R.LOC_STS)).toBe(0);
    expect(dev.read32(R.INTF_ID)).toBe(0x0002_5811);
    expect(dev.read32(R.INTF_ID2)).toBe(0x0000_1014);
    expect(dev.read32(R.CTRL_REQ)).toBe(0);
    expect(dev.read32(R.CTRL_STS)).toBe(0x2); // tpmIdle
    expect(dev.read32(R.CTRL_CANCEL)).toBe(0);
    expect(dev.read32(R.CTRL_START)).toBe(0);
    expect(dev.read32(R.CMD_SIZE)).toBe(0xf80);
    expect(dev.read32(R.RSP_SIZE)).toBe(0xf80);
    expect(dev.read32(R.CMD_PA_LOW)).toBe(0x80);
    expect(dev.read32(R.CMD_PA_HIGH)).toBe(0);
    expect(dev.read32(R.RSP_PA)).toBe(0x80);
    expect(dev.read32(R.RSP_PA + 4)).toBe(0);
  });

  it("reports QEMU's exact buffer addresses when placed at 0xFED40000", () => {
    const { dev } = device({ address: CRB_QEMU_ADDRESS });
    expect(dev.read32(R.CMD_PA_LOW)).toBe(0xfed40080);
    expect(dev.read32(R.RSP_PA)).toBe(0xfed40080);
  });

  it("shows the established flag inverted in LOC_STATE b0", () => {
    const { dev } = device({ established: true });
    expect(dev.read32(R.LOC_STATE) & 1).toBe(0);
  });

  it("sets CapLocality and gives every page its own buffer address with five localities", () => {
    const { dev } = device({ localities: 5 });
    expect(dev.read32(R.INTF_ID)).toBe(0x0002_5911);
    expect(dev.read32(0x2000 + R.CMD_PA_LOW)).toBe(0x2080);
    expect(dev.read32(0x4000 + R.RSP_PA)).toBe(0x4080);
  });

  it("rejects out-of-range options with TpmArgumentError", () => {
    expect(() => device({ bufferSize: 9 })).toThrow(TpmArgumentError);
    expect(() => device({ bufferSize: 0xf81 })).toThrow(TpmArgumentError);
    expect(() => device({ localities: 3 as 5 })).toThrow(TpmArgumentError);
    expect(() => new CrbDevice({} as never)).toThrow(TpmArgumentError);
  });
});

describe("CrbDevice registers", () => {
  it("grants the locality on requestAccess and releases it on relinquish", () => {
    const { dev } = device();
    dev.write32(R.LOC_CTRL, 1);
    expect(dev.read32(R.LOC_STATE) & 0x82).toBe(0x82);
    expect(dev.read32(R.LOC_STS)).toBe(1);
    dev.write32(R.LOC_CTRL, 2);
    expect(dev.read32(R.LOC_STATE) & 0x82).toBe(0x80);
    expect(dev.read32(R.LOC_STS)).toBe(0);
  });

  it("queues a second locality's request and grants the highest pending on relinquish", () => {
    const { dev } = device({ localities: 5 });
    dev.write32(0x1000 + R.LOC_CTRL, 1);
    dev.write32(0x3000 + R.LOC_CTRL, 1);
    dev.write32(0x2000 + R.LOC_CTRL, 1);
    expect(dev.state.locality).toBe(1);
    expect(dev.state.pending).toEqual([2, 3]);
    expect((dev.read32(R.LOC_STATE) >> 2) & 7).toBe(1);
    dev.write32(0x1000 + R.LOC_CTRL, 2);
    expect(dev.state.locality).toBe(3);
    expect(dev.read32(0x3000 + R.LOC_STS)).toBe(1);
    expect(dev.read32(0x1000 + R.LOC_STS)).toBe(0);
  });

  it("clears tpmIdle on cmdReady and sets it on goIdle; CTRL_REQ reads 0", () => {
    const { dev } = device();
    dev.write32(R.CTRL_REQ, 1);
    expect(dev.read32(R.CTRL_STS) & 2).toBe(0);
    expect(dev.read32(R.CTRL_REQ)).toBe(0);
    dev.write32(R.CTRL_REQ, 2);
    expect(dev.read32(R.CTRL_STS) & 2).toBe(2);
  });

  it("ignores START without the locality assigned", async () => {
    const { dev, backend } = device();
    dev.writeFifo(R.DATA_BUFFER, getRandomCommand(8));
    dev.write32(R.CTRL_START, 1);
    expect(dev.read32(R.CTRL_START)).toBe(0);
    await flush();
    expect(backend.commands).toHaveLength(0);
  });

  it("ignores START from a page whose locality is not the assigned one", async () => {
    const { dev, backend } = device({ localities: 5 });
    load(dev, getRandomCommand(8), 1);
    dev.write32(0x2000 + R.CTRL_START, 1);
    await flush();
    expect(backend.commands).toHaveLength(0);
  });

  it("runs a started command without cmdReady, keeps START set until the backend answers, then clears it", async () => {
    const { dev, backend } = device();
    load(dev, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    expect(dev.read32(R.CTRL_START)).toBe(1);
    expect(dev.state.started).toBe(true);
    await flush();
    expect(dev.read32(R.CTRL_START)).toBe(0);
    expect(backend.commands).toHaveLength(1);
    expect(backend.commands[0]!.command).toEqual(getRandomCommand(4));
    expect(backend.commands[0]!.locality).toBe(0);
    expect(dev.readFifo(R.DATA_BUFFER, 16)).toEqual(answer(getRandomCommand(4)));
  });

  it("passes the header size's worth of bytes, capped to bufferSize", async () => {
    const { dev, backend } = device({ bufferSize: 64 });
    const cmd = new Uint8Array(100);
    cmd.set([0x80, 0x01, 0, 0, 0x10, 0], 0); // size field 4096
    load(dev, cmd);
    dev.write32(R.CTRL_START, 1);
    await flush();
    expect(backend.commands[0]!.command.length).toBe(64);
  });

  it("ignores a second START while one is running", async () => {
    const { dev, backend } = device();
    backend.options.mode = "hang";
    load(dev, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    dev.write32(R.CTRL_START, 1);
    await flush();
    expect(backend.commands).toHaveLength(1);
  });

  it("cancels the backend on CANCEL while started and answers TPM_RC_CANCELED", async () => {
    const { dev, backend } = device();
    backend.options.mode = "hang";
    load(dev, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    dev.write32(R.CTRL_CANCEL, 1);
    expect(backend.cancels).toBe(1);
    await flush();
    expect(dev.read32(R.CTRL_START)).toBe(0);
    expect(dev.read32(R.CTRL_STS) & 1).toBe(0);
    const rsp = dev.readFifo(R.DATA_BUFFER, 10);
    expect(new DataView(rsp.buffer).getUint32(6)).toBe(TPM_RC.CANCELED);
  });

  it("ignores CANCEL when nothing is started", () => {
    const { dev, backend } = device();
    dev.write32(R.CTRL_CANCEL, 1);
    expect(backend.cancels).toBe(0);
    expect(dev.read32(R.CTRL_CANCEL)).toBe(0);
  });

  it("sets the sticky tpmSts (fatal) when the backend fails, until reset", async () => {
    const { dev, backend } = device();
    backend.options.mode = "reject";
    load(dev, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    await flush();
    expect(dev.read32(R.CTRL_START)).toBe(0);
    expect(dev.read32(R.CTRL_STS) & 1).toBe(1);
    expect(dev.state.fatal).toBe(true);
    expect((dev.state.lastError as Error).message).toBe("backend exploded");
    await dev.reset();
    expect(dev.read32(R.CTRL_STS)).toBe(2);
  });

  it("treats a response larger than the buffer as a backend error", async () => {
    const { dev, backend } = device({ bufferSize: 16 });
    load(dev, getRandomCommand(32));
    dev.write32(R.CTRL_START, 1);
    await flush();
    expect(backend.commands).toHaveLength(1);
    expect(dev.read32(R.CTRL_STS) & 1).toBe(1);
  });

  it("decodes sub-word register reads and byte writes by address, as QEMU", async () => {
    const { dev, backend } = device();
    expect(dev.read8(R.INTF_ID)).toBe(0x11);
    expect(dev.read16(R.INTF_ID + 2)).toBe(0x0002);
    expect(dev.read8(R.CMD_SIZE + 1)).toBe(0x0f);
    dev.write8(R.LOC_CTRL, 1);
    dev.writeFifo(R.DATA_BUFFER, getRandomCommand(2));
    dev.write8(R.CTRL_START, 1);
    await flush();
    expect(backend.commands).toHaveLength(1);
  });

  it("ignores writes to read-only and unstored registers", () => {
    const { dev } = device();
    for (const r of [R.LOC_STATE, R.INTF_ID, R.CTRL_STS, R.CMD_SIZE, R.CMD_PA_LOW, R.INT_ENABLE, R.CTRL_EXT]) {
      const before = dev.read32(r);
      dev.write32(r, 0xdeadbeef);
      expect(dev.read32(r)).toBe(before);
    }
  });

  it("treats the data buffer as memory shared by every locality page", () => {
    const { dev } = device({ localities: 5 });
    dev.write32(R.DATA_BUFFER, 0x04030201);
    expect(dev.read8(R.DATA_BUFFER + 2)).toBe(3);
    expect(dev.read32(0x3000 + R.DATA_BUFFER)).toBe(0x04030201);
    dev.writeFifo(0x1000 + R.DATA_BUFFER + 4, new Uint8Array([9, 8, 7]));
    expect([...dev.readFifo(R.DATA_BUFFER, 7)]).toEqual([1, 2, 3, 4, 9, 8, 7]);
  });

  it("reads all ones outside the decoded pages and drops writes there", () => {
    const { dev } = device();
    expect(dev.read32(0x1000)).toBe(0xffffffff);
    dev.write32(0x1080, 5);
    expect(dev.read8(0x1080)).toBe(0xff);
  });

  it("rejects negative offsets and oversized blocks with TpmArgumentError", () => {
    const { dev } = device();
    expect(() => dev.read32(-4)).toThrow(TpmArgumentError);
    expect(() => dev.readFifo(0x80, 0x10001)).toThrow(TpmArgumentError);
  });
});

describe("CrbDevice backend start-up", () => {
  it("reads 0 and ignores writes while the backend is starting, then shows the reset values", async () => {
    let go!: () => void;
    const backend = new FakeTpmBackend({ random: "repeat", start: () => new Promise<void>((r) => (go = r)) });
    const dev = new CrbDevice({ backend });
    expect(dev.state.phase).toBe("starting");
    expect(dev.read32(R.LOC_STATE)).toBe(0);
    dev.write32(R.LOC_CTRL, 1);
    go();
    await dev.ready;
    expect(dev.state.phase).toBe("running");
    expect(dev.read32(R.LOC_STATE)).toBe(0x81);
  });

  it("stays dead when start() rejects: every register and the buffer read 0, writes are ignored", async () => {
    const backend = new FakeTpmBackend({ random: "repeat", start: () => Promise.reject(new Error("no state file")) });
    const dev = new CrbDevice({ backend });
    await expect(dev.ready).rejects.toThrow("no state file");
    expect(dev.state.phase).toBe("failed");
    for (let o = 0; o < 0x80; o += 4) expect(dev.read32(o)).toBe(0);
    dev.write32(R.LOC_CTRL, 1);
    dev.write32(R.CTRL_START, 1);
    expect(dev.state.locality).toBe(-1);
    expect([...dev.readFifo(R.DATA_BUFFER, 4)]).toEqual([0, 0, 0, 0]);
    expect(backend.commands).toHaveLength(0);
  });

  it("comes back after reset() when the backend starts again", async () => {
    let fail = true;
    const backend = new FakeTpmBackend({ random: "repeat", start: () => (fail ? Promise.reject(new Error("x")) : Promise.resolve()) });
    const dev = new CrbDevice({ backend });
    await dev.ready.catch(() => {});
    fail = false;
    await dev.reset();
    expect(dev.read32(R.LOC_STATE)).toBe(0x81);
  });

  it("abandons a command in flight on reset", async () => {
    const { dev, backend } = device();
    backend.options.mode = "hang";
    load(dev, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    await dev.reset();
    await flush();
    expect(dev.read32(R.CTRL_START)).toBe(0);
    expect(dev.read32(R.CTRL_STS)).toBe(2);
  });
});

describe("CrbDevice fault hooks", () => {
  it("startNeverClears: START stays set, CANCEL is ignored, the backend is not called", async () => {
    const { dev, backend } = device();
    dev.faults.startNeverClears = true;
    load(dev, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    dev.write32(R.CTRL_CANCEL, 1);
    await flush();
    expect(dev.read32(R.CTRL_START)).toBe(1);
    expect(backend.commands).toHaveLength(0);
    expect(backend.cancels).toBe(0);
  });

  it("tpmSts forces the fatal bit", () => {
    const { dev } = device();
    dev.faults.tpmSts = true;
    expect(dev.read32(R.CTRL_STS) & 1).toBe(1);
  });

  it("ctrlReqStuck leaves cmdReady pending and the TPM idle", () => {
    const { dev } = device();
    dev.faults.ctrlReqStuck = true;
    dev.write32(R.CTRL_REQ, 1);
    expect(dev.read32(R.CTRL_REQ)).toBe(1);
    expect(dev.read32(R.CTRL_STS) & 2).toBe(2);
  });

  it("localityDenied never grants the locality", () => {
    const { dev } = device();
    dev.faults.localityDenied = true;
    dev.write32(R.LOC_CTRL, 1);
    expect(dev.read32(R.LOC_STATE) & 2).toBe(0);
  });

  it("lying sizes and addresses replace what the control area reports", () => {
    const { dev } = device();
    dev.faults.cmdSize = 0x10000;
    dev.faults.rspAddress = 0x1_0000_0080n;
    expect(dev.read32(R.CMD_SIZE)).toBe(0x10000);
    expect(dev.read32(R.RSP_PA)).toBe(0x80);
    expect(dev.read32(R.RSP_PA + 4)).toBe(1);
  });
});

describe("CrbDevice tracing and state", () => {
  it("publishes register accesses and command events on tpmkit:device:crb only when subscribed", async () => {
    const { dev } = device();
    const events: CrbDeviceEvent[] = [];
    const fn = (m: unknown) => events.push(m as CrbDeviceEvent);
    dev.read32(R.LOC_STATE); // nobody listening yet
    subscribe(CRB_DEVICE_CHANNEL, fn);
    try {
      load(dev, getRandomCommand(4));
      dev.write32(R.CTRL_START, 1);
      await flush();
    } finally {
      unsubscribe(CRB_DEVICE_CHANNEL, fn);
    }
    const types = events.filter((e) => e.device === dev).map((e) => e.type);
    expect(types).toEqual(["write", "locality", "write", "write", "start", "complete"]);
    const start = events.find((e) => e.type === "start")!;
    expect(start.value).toBe(12);
  });

  it("counts commands in its state snapshot", async () => {
    const { dev } = device();
    load(dev, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    await flush();
    expect(dev.state).toMatchObject({ commands: 1, locality: 0, started: false, startedLocality: 0, fatal: false });
  });
});

describe("CrbDevice under random register traffic (fast-check)", () => {
  const REGS = [0x00, 0x08, 0x0c, 0x30, 0x34, 0x38, 0x40, 0x44, 0x48, 0x4c, 0x50, 0x54, 0x58, 0x5c, 0x60, 0x64, 0x68, 0x6c];
  const op = fc.oneof(
    fc.record({ k: fc.constant("w" as const), page: fc.integer({ min: 0, max: 5 }), reg: fc.constantFrom(...REGS), v: fc.constantFrom(0, 1, 2, 3, 4, 8, 0xffffffff) }),
    fc.record({ k: fc.constant("r" as const), off: fc.integer({ min: 0, max: 0x6000 }), w: fc.constantFrom(1, 2, 4) }),
    fc.record({ k: fc.constant("blk" as const), off: fc.integer({ min: 0, max: 0x5000 }), n: fc.integer({ min: 0, max: 64 }) }),
    fc.record({ k: fc.constant("cmd" as const), n: fc.integer({ min: 0, max: 64 }) }),
    fc.record({ k: fc.constant("tick" as const) }),
    fc.record({ k: fc.constant("mode" as const), m: fc.constantFrom("ok", "reject", "hang") }),
    fc.record({ k: fc.constant("bell" as const), q: fc.constantFrom("command" as const, "locality" as const), l: fc.integer({ min: -1, max: 5 }) }),
  );

  it("never throws and keeps its invariants", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.constantFrom(1 as const, 5 as const), fc.constantFrom("register" as const, "doorbell" as const), async (ops, localities, trigger) => {
        const backend = new FakeTpmBackend({ start: false, random: "repeat" });
        const dev = new CrbDevice({ backend, localities, bufferSize: 256, trigger });
        for (const o of ops) {
          if (o.k === "w") dev.write32(o.page * 0x1000 + o.reg, o.v);
          else if (o.k === "r") (o.w === 1 ? dev.read8(o.off) : o.w === 2 ? dev.read16(o.off) : dev.read32(o.off));
          else if (o.k === "blk") dev.readFifo(o.off, o.n);
          else if (o.k === "cmd") dev.writeFifo(R.DATA_BUFFER, getRandomCommand(o.n));
          else if (o.k === "tick") await flush();
          else if (o.k === "bell") expect(["ok", "denied", "invalid"]).toContain(dev.doorbell(o.q, o.l));
          else backend.options.mode = o.m as "ok";
          // invariants
          const ls = dev.read32(R.LOC_STATE);
          expect(ls & 0x80).toBe(0x80);
          if (trigger === "register") expect(dev.read32(R.CTRL_START) & ~1).toBe(0);
          expect(dev.state.started ? dev.read32(R.CTRL_START) & 1 : 1).toBe(1);
          expect(dev.read32(R.CTRL_STS) & ~3).toBe(0);
          expect(dev.read32(R.INTF_ID) & 0xf).toBe(1);
          expect(dev.read32(R.CMD_SIZE)).toBe(256);
          const s = dev.state;
          expect(s.locality >= -1 && s.locality < localities).toBe(true);
          expect(((ls & 2) !== 0) === (s.locality >= 0)).toBe(true);
          expect(backend.maxInFlight).toBeLessThanOrEqual(1);
          for (const c of backend.commands) expect(c.command.length).toBeLessThanOrEqual(256);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("CrbDevice doorbell mode (CRB behind a DEN0138 START call)", () => {
  it("latches control writes until the doorbell and reads them back", async () => {
    const { dev, backend } = device({ trigger: "doorbell" });
    dev.write32(R.LOC_CTRL, 1);
    expect(dev.read32(R.LOC_CTRL)).toBe(1);
    expect(dev.read32(R.LOC_STATE) & 2).toBe(0);
    expect(dev.doorbell("locality", 0)).toBe("ok");
    expect(dev.read32(R.LOC_STATE) & 0x82).toBe(0x82);
    expect(dev.read32(R.LOC_CTRL)).toBe(0);
    dev.write32(R.CTRL_REQ, 1);
    expect(dev.read32(R.CTRL_REQ)).toBe(1);
    expect(dev.read32(R.CTRL_STS) & 2).toBe(2);
    expect(dev.doorbell("command", 0)).toBe("ok");
    expect(dev.read32(R.CTRL_REQ)).toBe(0);
    expect(dev.read32(R.CTRL_STS) & 2).toBe(0);
    dev.writeFifo(R.DATA_BUFFER, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    await flush();
    expect(backend.commands).toHaveLength(0);
    expect(dev.read32(R.CTRL_START)).toBe(1); // latched, not yet running
    expect(dev.doorbell("command", 0)).toBe("ok");
    await flush();
    expect(backend.commands).toHaveLength(1);
    expect(dev.read32(R.CTRL_START)).toBe(0);
  });

  it("denies a doorbell with nothing latched, START without the locality, and a foreign relinquish", () => {
    const { dev } = device({ trigger: "doorbell", localities: 5 });
    expect(dev.doorbell("command", 0)).toBe("denied");
    dev.write32(R.CTRL_START, 1);
    expect(dev.doorbell("command", 0)).toBe("denied");
    dev.write32(0x1000 + R.LOC_CTRL, 1);
    expect(dev.doorbell("locality", 1)).toBe("ok");
    dev.write32(0x2000 + R.LOC_CTRL, 2);
    expect(dev.doorbell("locality", 2)).toBe("denied");
    expect(dev.state.locality).toBe(1);
  });

  it("rejects a locality outside the pages and a bad qualifier as invalid", () => {
    const { dev } = device({ trigger: "doorbell" });
    expect(dev.doorbell("command", 1)).toBe("invalid");
    expect(dev.doorbell("command", -1)).toBe("invalid");
    expect(dev.doorbell("other" as "command", 0)).toBe("invalid");
  });

  it("applies goIdle over cmdReady and a latched cancel on the command doorbell", async () => {
    const { dev, backend } = device({ trigger: "doorbell" });
    backend.options.mode = "hang";
    dev.write32(R.LOC_CTRL, 1);
    dev.doorbell("locality", 0);
    dev.writeFifo(R.DATA_BUFFER, getRandomCommand(4));
    dev.write32(R.CTRL_START, 1);
    dev.doorbell("command", 0);
    dev.write32(R.CTRL_CANCEL, 1);
    expect(backend.cancels).toBe(0);
    expect(dev.doorbell("command", 0)).toBe("ok");
    expect(backend.cancels).toBe(1);
    await flush();
    expect(dev.read32(R.CTRL_START)).toBe(0);
    dev.write32(R.CTRL_REQ, 3);
    dev.doorbell("command", 0);
    expect(dev.read32(R.CTRL_STS) & 2).toBe(2);
  });

  it("only reports denied in register mode", () => {
    const { dev } = device();
    dev.write32(R.LOC_CTRL, 1);
    expect(dev.doorbell("locality", 0)).toBe("denied");
    expect(dev.state.locality).toBe(0);
  });
});
