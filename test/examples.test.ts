// Runs every file in examples/ and checks what it prints, so the examples cannot rot.
// Each example exports `main(log)`; examples/basic.ts runs at import and prints with console.log.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { ROOT, docSnippets, resolvePackage } from "./support/doc-snippets.js";
import { TIMEOUTS_PROBE, TPM_RC, decodeRc } from "../src/index.js";
import { main as tisMain } from "../examples/tis.js";
import { main as crbMain } from "../examples/crb.js";
import { main as backendFailureMain } from "../examples/backend-failure.js";
import { main as faultsMain } from "../examples/faults.js";
import { main as traceMain } from "../examples/trace.js";
import { main as ffaImaMain } from "../examples/ffa-ima.js";
import { main as ftpmBuiltinMain } from "../examples/ftpm-builtin-vs-module.js";
import { main as ftpmPresentMain } from "../examples/ftpm-present-not-usable.js";
import { main as ftpmRpmbMain } from "../examples/ftpm-rpmb-guests.js";
import { main as typedSessionMain } from "../examples/typed-session.js";

const EXAMPLES_DIR = fileURLToPath(new URL("../examples/", import.meta.url));

async function run(main: (log: (line: string) => void) => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  await main((line) => lines.push(line));
  return lines;
}

function line(lines: string[], prefix: string): string {
  const found = lines.find((l) => l.startsWith(prefix));
  if (found === undefined) throw new Error(`no line starting with ${JSON.stringify(prefix)} in:\n${lines.join("\n")}`);
  return found;
}

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

describe("examples", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("every example file is run by this test", () => {
    const files = readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith(".ts")).sort();
    expect(files).toEqual(["backend-failure.ts", "basic.ts", "crb.ts", "faults.ts", "ffa-ima.ts", "ftpm-builtin-vs-module.ts", "ftpm-present-not-usable.ts", "ftpm-rpmb-guests.ts", "tis.ts", "trace.ts", "typed-session.ts"]);
  });

  it("typed-session.ts: a salted HMAC session keeps the secret off the wire, a policy session matches the offline digest, a changed response is a TpmSessionError", async () => {
    const lines = await run(typedSessionMain);
    expect(line(lines, "salted HMAC session")).toMatch(/^salted HMAC session 0x2[0-9a-f]{6}: unsealed "the launch codes", secret on the wire: no$/);
    expect(line(lines, "policy digest")).toMatch(/^policy digest [0-9a-f]{16}…, as computed offline: yes$/);
    expect(line(lines, "policy session unsealed:")).toBe('policy session unsealed: "the launch codes"');
    expect(line(lines, "a changed response byte:")).toBe("a changed response byte: TpmSessionError");
  });

  it("basic.ts extends PCR 16 and is refused PCR 17 at locality 0", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
    await import("../examples/basic.js");
    expect(line(lines, "random:")).toMatch(/^random: [0-9a-f]{32}$/);
    // PCR 16 starts at zeros (as on swtpm 0.7.1, measured): new = SHA-256(zeros || 0xab × 32)
    const expected = sha256(new Uint8Array(32), new Uint8Array(32).fill(0xab));
    expect(line(lines, "sha256 PCR 16:")).toBe(`sha256 PCR 16: ${expected}`);
    expect(line(lines, "PCR 17 at locality 0:")).toBe("PCR 17 at locality 0: TPM_RC_LOCALITY");
  });

  it("tis.ts: PCR 17 is refused at locality 0 and extended at locality 3 through the TIS registers", async () => {
    const lines = await run(tisMain);
    expect(line(lines, "TIS device:")).toBe("TIS device: did 0x0001 vid 0x1014 rid 1, TPM 2.0"); // QEMU's identity
    expect(line(lines, "PCR 17 after Startup:")).toBe(`PCR 17 after Startup: ${"ff".repeat(8)}…`);
    expect(line(lines, "PCR 17 at locality 0:")).toBe(`PCR 17 at locality 0: refused, ${decodeRc(TPM_RC.LOCALITY).name}`);
    // DRTM PCRs start at all ones: new = SHA-256(0xff × 32 || 0x17 × 32)
    const expected = sha256(new Uint8Array(32).fill(0xff), new Uint8Array(32).fill(0x17));
    expect(line(lines, "PCR 17 at locality 3:")).toBe(`PCR 17 at locality 3: extended, now ${expected.slice(0, 16)}…`);
    expect(line(lines, "active locality between commands:")).toBe("active locality between commands: none");
  });

  it("ffa-ima.ts: fix none bypasses IMA (deferral, IMA, then the flush binds the TPM); every fix measures", async () => {
    const lines = await run(ffaImaMain);
    expect(line(lines, "fix none:")).toBe("fix none: TPM-bypass (ima: No TPM chip found, activating TPM-bypass!)");
    // a fresh TPM: PCR 0–9 of the sha256 bank are zero, so the aggregate is SHA-256 of 320 zero bytes
    const zeroAggregate = sha256(new Uint8Array(320)).slice(0, 16);
    expect(line(lines, "fix rootfs:")).toBe(`fix rootfs: boot_aggregate sha256 ${zeroAggregate}…`);
    expect(line(lines, "fix late-sync:")).toBe(`fix late-sync: boot_aggregate_late sha256 ${zeroAggregate}…`);
    expect(line(lines, "fix wait:")).toBe(`fix wait: boot_aggregate sha256 ${zeroAggregate}…`);
    const kinds = lines.filter((l) => l.startsWith("  ") && /^\s+\d/.test(l)).map((l) => l.trim().split(/\s+/).slice(1, 4).join(" "));
    expect(kinds).toEqual([
      "device probe-deferred MSFT0101:00",
      "device bind arm-ffa-1",
      "late ima init_ima",
      "late deferred-flush deferred_probe_initcall",
      "late chip-register tpm0",
      "late bind MSFT0101:00",
    ]);
  });

  it("ftpm-builtin-vs-module.ts: built in before the supplicant gives 0xffff000c / 0xffff0008 / 0xffff3024; as a module after it works", async () => {
    const lines = await run(ftpmBuiltinMain);
    expect(line(lines, "built in, REE-loaded TA:")).toBe("built in, REE-loaded TA: TeeError 0xffff000c OUT_OF_MEMORY, origin TEE");
    expect(line(lines, "built in, REE-loaded TA (2019")).toBe("built in, REE-loaded TA (2019 OP-TEE): TeeError 0xffff0008 ITEM_NOT_FOUND, origin TEE");
    expect(line(lines, "built in, early TA")).toBe("built in, early TA on REE FS: TeeError 0xffff3024 TARGET_DEAD, origin TEE");
    expect(line(lines, "module after the supplicant, REE-loaded")).toMatch(/getRandom\(8\) = [0-9a-f]{16}, readiness ready$/);
    expect(line(lines, "module after the supplicant, early")).toMatch(/getRandom\(8\) = [0-9a-f]{16}, readiness ready$/);
  });

  it("ftpm-present-not-usable.ts: switch root leaves the chip unusable (TpmUnavailableError at once), waitReady ends at the restart, shutdown is bounded", async () => {
    const lines = await run(ftpmPresentMain);
    expect(line(lines, "initrd:")).toMatch(/^initrd: supplicant running, readiness ready, getRandom\(8\) = [0-9a-f]{16}$/);
    expect(line(lines, "switch root:")).toMatch(/^switch root: supplicant stopped, session open true, readiness unusable \(ftpm-tee: tee-supplicant is stopped/);
    expect(line(lines, "getRandom(8) while stopped:")).toBe("getRandom(8) while stopped: TpmUnavailableError (TPM_UNAVAILABLE) after 0 ms");
    expect(line(lines, "waitReady(")).toMatch(/^waitReady\(\{ timeoutMs: 10000 \}\): ready after 1500 ms, supplicant running, getRandom\(8\) = [0-9a-f]{16}$/);
    expect(line(lines, "shutdown")).toBe("shutdown with the supplicant stopped: close took 0 ms, readiness closed");
  });

  it("ftpm-rpmb-guests.ts: HUK-derived RPMB key equals the test build's, unprogrammed and wrong keys kill the TA, NV survives a TEE restart; two guests see only their own fTPM", async () => {
    const lines = await run(ftpmRpmbMain);
    expect(line(lines, "RPMB key from HUK and CID:")).toMatch(/^RPMB key from HUK and CID: [0-9a-f]{16}… \(32 bytes\), test build gives the same: true$/);
    expect(line(lines, "unprogrammed RPMB key:")).toBe("unprogrammed RPMB key: Tpm.open fails, TeeError 0xffff3024 TARGET_DEAD, origin TEE");
    expect(lines[lines.indexOf(line(lines, "unprogrammed RPMB key:")) + 1]).toBe("  inside the TEE: the fTPM TA panicked with BAD_STATE (0xffff0007)");
    expect(line(lines, "boot 2 (TEE restarted):")).toBe('boot 2 (TEE restarted): NV index 0x1500016 reads "kept on RPMB"');
    expect(line(lines, "wrong RPMB key")).toBe("wrong RPMB key (another HUK): Tpm.open fails, TeeError 0xffff3024 TARGET_DEAD, origin TEE");
    expect(lines[lines.indexOf(line(lines, "wrong RPMB key")) + 1]).toBe("  inside the TEE: the fTPM TA panicked with SECURITY (0xffff000f)");
    // two guests of one TEE: VM ids from 2, no cross-talk, destroy makes the guest's TPM fail typed
    expect(line(lines, "guests:")).toBe("guests: VM ids 2 and 3, OP-TEE partitions 2, 3, supplicants running / running");
    expect(line(lines, "PCR 16:")).toMatch(/^PCR 16: guest A [0-9a-f]{16}…, guest B 0{16}…$/);
    expect(line(lines, "PCR 16:")).not.toMatch(/guest A 0{16}/);
    expect(line(lines, "guest B reads NV index")).toBe("guest B reads NV index 0x1500016: TPM_RC_HANDLE");
    expect(line(lines, "after destroyGuest(A):")).toBe("after destroyGuest(A): guest A's getRandom fails with TpmUnavailableError, readiness unusable; partitions left 3");
    expect(line(lines, "guest B still works:")).toMatch(/^guest B still works: getRandom\(8\) = [0-9a-f]{16}$/);
  });

  it("crb.ts: commands run with mmioStart and smcStart, and a failing SMC gives EIO once", async () => {
    const lines = await run(crbMain);
    expect(line(lines, "mmio start: buffer")).toBe("mmio start: buffer 3968 bytes at 0x80, idle support true, localities 0");
    expect(line(lines, "mmio start: getRandom(8)")).toMatch(/^mmio start: getRandom\(8\) = [0-9a-f]{16}$/);
    expect(line(lines, "mmio start: commands")).toBe("mmio start: commands the device ran: 2"); // Startup + GetRandom
    expect(line(lines, "smc start: idle support")).toBe("smc start: idle support false"); // kernel has_idle for method 11
    expect(line(lines, "smc start: getRandom(8)")).toMatch(/^smc start: getRandom\(8\) = [0-9a-f]{16}$/);
    expect(line(lines, "smc start: SMC calls")).toBe("smc start: SMC calls so far: 2");
    expect(line(lines, "smc start: failing firmware")).toBe("smc start: failing firmware -> TpmTransportError errno EIO: crb: SMC start returned 5 (expected 0)");
    expect(line(lines, "smc start: after the firmware recovered")).toMatch(/getRandom\(4\) = [0-9a-f]{8}$/);
    // same seed, same first random bytes whatever the start method
    expect(line(lines, "mmio start: getRandom(8)").slice(-16)).toBe(line(lines, "smc start: getRandom(8)").slice(-16));
  });

  it("backend-failure.ts: registers read 0 and Tpm.open fails with TpmNotFoundError after timeout A of virtual time", async () => {
    const t0 = performance.now();
    const lines = await run(backendFailureMain);
    const realMs = performance.now() - t0;
    expect(line(lines, "device power:")).toBe("device power: failed, TPM version seen by firmware: unspecified");
    expect(line(lines, "ACCESS (0x000)")).toBe("ACCESS (0x000) reads 0x0, DID_VID (0xF00) reads 0x0");
    expect(line(lines, "Tpm.open failed:")).toBe(
      `Tpm.open failed: TpmNotFoundError (TPM_NOT_FOUND): no TPM on the TIS window: ACCESS.tpmRegValidSts not set within ${TIMEOUTS_PROBE.a} ms`,
    );
    expect(line(lines, "virtual time spent probing:")).toBe(`virtual time spent probing: ${TIMEOUTS_PROBE.a} ms`);
    expect(realMs).toBeLessThan(TIMEOUTS_PROBE.a); // the FakeClock jumped; nothing really slept 750 ms
  });

  it("faults.ts: an injected bus error fails one command with EIO and a bit flip is absorbed by responseRetry", async () => {
    const lines = await run(faultsMain);
    expect(line(lines, "1st getRandom:")).toBe("1st getRandom: TpmTransportError errno EIO: injected MMIO fault: writeFifo at 0x24 failed");
    expect(line(lines, "2nd getRandom:")).toMatch(/^2nd getRandom: [0-9a-f]{16}$/);
    expect(line(lines, "3rd getRandom:")).toMatch(/^3rd getRandom: [0-9a-f]{16}$/);
    // bit 7 of byte 2 flipped in the 20-byte response's size field: 20 | 0x80000000
    expect(line(lines, "driver event:")).toBe(`driver event: response-retry #1 (response size field ${(20 | 0x8000_0000) >>> 0} is outside 10..4096)`);
    expect(lines.filter((l) => l.startsWith("driver event:"))).toHaveLength(1);
    expect(line(lines, "faulted accesses:")).toBe("faulted accesses: 2");
  });

  it("trace.ts: the chip and MMIO channels show one GetRandom and its register accesses in protocol order", async () => {
    const lines = await run(traceMain);
    expect(lines[0]).toBe("chip: TPM_CC_GetRandom at locality 0 -> TPM_RC_SUCCESS 0x00000000, 0 retries");
    const count = Number(/^mmio: (\d+) register accesses/.exec(line(lines, "mmio:"))![1]);
    const accesses = lines.filter((l) => l.startsWith("  ")).map((l) => l.trim().replace(/\s+/g, " "));
    expect(accesses).toHaveLength(count);
    // request locality 0, then commandReady seen, then the command written ...
    expect(accesses[0]).toBe("write8 L0 ACCESS <- 0x02");
    expect(accesses[1]).toMatch(/^read8 L0 ACCESS = 0x(a0|a1)$/); // valid | active (| establishment inverse)
    const write = accesses.findIndex((a) => a.startsWith("writeFifo"));
    expect(accesses[write]).toBe("writeFifo L0 DATA_FIFO 12 bytes"); // GetRandom is a 12-byte command
    const go = accesses.indexOf("write8 L0 STS <- 0x20");
    expect(go).toBeGreaterThan(write);
    // ... the 20-byte response (10-byte header, u16 size, 8 bytes) read after GO ...
    const reads = accesses.map((a, i) => ({ a, i })).filter(({ a }) => a.startsWith("readFifo"));
    expect(reads.every(({ i }) => i > go)).toBe(true);
    expect(reads.reduce((n, { a }) => n + Number(/(\d+) bytes$/.exec(a)![1]), 0)).toBe(20);
    // ... and commandReady then relinquish at the end
    expect(accesses.slice(-2)).toEqual(["write8 L0 STS <- 0x40", "write8 L0 ACCESS <- 0x20"]);
  });
});

// The TypeScript snippets of the README and of the guides in docs/ that import from "tpmkit" (or a
// "tpmkit/<subpath>") or start with an import are complete programs: run each one, so the
// documentation cannot rot either. Each package specifier resolves to its barrel in this repository.
describe("docs snippets", () => {
  const snippets = docSnippets();
  const dir = mkdtempSync(join(tmpdir(), "tpmkit-docs-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("there are runnable snippets on every page that documents an API, the README's first one included", () => {
    const pages = new Set(snippets.map((s) => s.page));
    for (const page of ["README.md", "docs/errors.md", "docs/fault-injection.md", "docs/transports/memory.md", "docs/transports/tis.md", "docs/transports/crb.md", "docs/transports/swtpm.md", "docs/transports/mssim.md", "docs/transports/linux-device.md"]) {
      expect(pages.has(page), page).toBe(true);
    }
    const readmeFirst = /```ts\n([\s\S]*?)```/.exec(readFileSync(join(ROOT, "README.md"), "utf8"))![1];
    expect(snippets.find((s) => s.page === "README.md" && s.index === 1)?.source).toBe(readmeFirst);
  });

  it("snippets import the package as a user does, never the repository's source", () => {
    const fromSource = snippets.filter((s) => /from\s+"\.{1,2}\/(src|\.\.)/.test(s.source)).map((s) => `${s.page} #${s.index}`);
    expect(fromSource).toEqual([]);
    // every package specifier names a subpath of package.json "exports" (resolvePackage throws otherwise)
    for (const s of snippets) expect(() => resolvePackage(s.source), `${s.page} #${s.index}`).not.toThrow();
  });

  it.each(snippets.map((s) => [`${s.page} #${s.index}`, s] as const))("%s runs to completion and prints", async (_name, s) => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a, (_k, v) => (typeof v === "bigint" ? v.toString() : v)))).join(" "));
    });
    const file = join(dir, `${s.page.replaceAll("/", "_").replace(/\.md$/, "")}-${s.index}.ts`);
    writeFileSync(file, resolvePackage(s.source));
    await import(pathToFileURL(file).href);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).not.toMatch(/unexpected/i);
    if (s.page === "README.md" && s.index === 1) {
      // random bytes, PCR 16 after one extend, SoftTpm's default manufacturer and the family; then the
      // raw GetRandom(8): a 10-byte header, a u16 size and 8 bytes
      expect(lines).toEqual([expect.stringMatching(/^[0-9a-f]{32} [0-9a-f]{64} TKIT 2\.0$/), "TPM_RC_SUCCESS 0x00000000 20"]);
      const expected = sha256(new Uint8Array(32), new Uint8Array(32).fill(1)); // PCR 16 starts at zeros
      expect(lines[0]!.split(" ")[1]).toBe(expected);
    }
  });
});
