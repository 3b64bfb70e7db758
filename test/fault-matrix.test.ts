// The fault matrix: for each fault class that applies to what tpmkit has today, the tests that
// prove its expected behaviour. docs/guarantees.md lists the same rows for users; this file
// fails when a cited test is renamed, moved or removed, so the table cannot go stale.
// Rows not yet applicable (they need sessions, attestation, a resource manager or the TEE):
// R5, P4, C3 (issue 12), R6, W2.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

type Row = { id: string; guarantee: string; tests: Array<[file: string, title: string]> };

const ROWS: Row[] = [
  { id: "R1", guarantee: "TIS burstCount 0 / stuck bits: bounded wait, TimeoutError", tests: [
    ["src/transports/tis/tis.test.ts", "backend hangs: TpmTimeoutError, the driver cancels (the backend sees cancel) and relinquishes"],
    ["src/transports/tis/tis.test.ts", "backend dies mid-command: TpmTimeoutError after the command's duration, commandReady written"],
    ["src/transports/tis/faults.property.test.ts", "every open and send settles with a response or a typed error within its bound"],
  ] },
  { id: "R2", guarantee: "bit flips in registers or FIFO bytes: only well-framed responses or typed errors", tests: [
    ["src/transports/crb/faults.test.ts", "never hangs, throws only tpmkit errors, and returns only well-framed responses"],
    ["src/transports/tis/tis.test.ts", "a response size field outside 10..4096 is retried with responseRetry, then fails with EIO"],
  ] },
  { id: "R3", guarantee: "extra or short data: drained, no stale bytes in the next command", tests: [
    ["src/transports/tis/tis.test.ts", "a glitch on dataAvail after the response (extra data) is cured by one responseRetry"],
    ["src/transports/tis/tis.test.ts", "after a failed response read the next command gets its own reply, no stale bytes"],
  ] },
  { id: "R4", guarantee: "CRB start never clears / cmdReady fails: timeout then cancel; locality ≥ 5 refused before I/O", tests: [
    ["src/transports/crb/crb.test.ts", "times out (with CANCEL written) when START never clears, then refuses with EBUSY until it does"],
    ["src/transports/crb/crb.test.ts", "times out cmdReady when the TPM never completes it (timeout C)"],
    ["src/transports/tis/tis.test.ts", "rejects locality 5 and up, short and oversize commands before any bus access"],
  ] },
  { id: "F1", guarantee: "FF-A BUSY/RETRY: capped backoff; other statuses: typed FfaError, no busy loop", tests: [
    ["test/ffa-faults.test.ts", "BUSY for more than the busy timeout: FfaError BUSY (-4) about busyTimeoutMs after the first BUSY"],
    ["test/ffa-faults.test.ts", "on every direct request: a typed FfaError at once, no busy loop"],
    ["test/ffa-faults.test.ts", "an FFA_INTERRUPT storm that never ends: FfaError INTERRUPTED (-5) after maxResumes FFA_RUNs, bounded in time"],
  ] },
  { id: "F2", guarantee: "FF-A partition or buffer unusable: fails at open, not mid-command", tests: [
    ["test/ffa-faults.test.ts", "partition absent: ProbeDeferredError from Tpm.open and from chip.open(); hot-plugged: open works"],
    ["src/transports/crb/start-ffa.test.ts", "refuses a partition that takes no direct requests"],
    ["src/transports/crb/crb.test.ts", "rejects a buffer smaller than a TPM header"],
  ] },
  { id: "S1", guarantee: "socket EOF / cut at any byte: typed error, connection dropped, no hang", tests: [
    ["src/transports/swtpm/transport.test.ts", "fails the command in flight with TpmTransportError when the peer drops at any byte offset, then reconnects"],
    ["src/transports/mssim/mssim.test.ts", "fails with a TpmTransportError, never a hang, when the peer cuts the response at any byte offset"],
    ["src/server/swtpm.test.ts", "survives a client cut at every byte offset of a command and serves the next client"],
    ["src/server/mssim.test.ts", "survives a client cut at every byte offset of a TPM_SEND_COMMAND frame"],
  ] },
  { id: "S2", guarantee: "size prefix out of range: refused before the body is read", tests: [
    ["src/server/abuse.test.ts", "a 0xFFFFFFFF size header with 64 KiB in one burst, then close, does not wedge the server"],
    ["src/server/abuse.test.ts", "a 0xFFFFFFFF size prefix with 64 KiB in one burst closes that connection unread; a good client is served"],
    ["src/transports/mssim/mssim.test.ts", "with TpmFormatError, drops the connection and reconnects for the next command"],
  ] },
  { id: "S3", guarantee: "silent or trickling peer: per-command deadline, then close", tests: [
    ["src/transports/mssim/mssim.test.ts", "times out on a silent peer at the command's deadline (fake clock)"],
    ["src/server/abuse.test.ts", "a slowloris client trickling a frame is dropped after commandReadTimeoutMs; the next client is served"],
    ["src/server/abuse.test.ts", "the partial-frame bound cannot be switched off"],
  ] },
  { id: "S4", guarantee: "control-channel misuse: protocol error, server survives", tests: [
    ["src/server/swtpm.test.ts", "unknown commands get TPM_BAD_ORDINAL and SET_DATAFD TPM_IOERROR, and the channel stays usable"],
    ["src/server/swtpm.test.ts", "needInit refuses TPM commands until CMD_INIT; a failing init hook answers TPM_FAIL"],
    ["src/server/abuse.test.ts", "control-channel misuse (garbage, unknown codes, lying lengths, an incomplete message, an idle control client) never delays the data channel"],
    ["src/server/abuse.test.ts", "platform-port misuse (unknown code, STOP, SESSION_END, garbage) leaves the command port serving"],
  ] },
  { id: "S5", guarantee: "our servers: short, inconsistent, oversize commands refused; bad localities refused per frame", tests: [
    ["src/server/mssim.test.ts", "answers TPM_RC_COMMAND_SIZE when the header size disagrees with the frame, without calling the sink"],
    ["src/server/mssim.test.ts", "answers TPM_RC_COMMAND_SIZE to a command shorter than a TPM header"],
    ["src/server/abuse.test.ts", "a prefixed frame with locality above 4 gets TPM_RC_LOCALITY (as swtpm 0.7.1) without reaching the TPM, and poisons nothing"],
    ["src/server/abuse.test.ts", "swtpm: the server's unsent output stays bounded, and after the client leaves a good client is served"],
    ["src/server/abuse.test.ts", "mssim: the server's unsent output stays bounded, and after the client leaves a good client is served"],
  ] },
  { id: "B1", guarantee: "arbitrary command bytes: a response, backend stays usable", tests: [
    ["src/softtpm/fuzz.test.ts", "structured frames for every command code always get a well-formed response, and the TPM stays usable"],
    ["src/softtpm/fuzz.test.ts", "the saved state decodes after any fuzzed command sequence (state round trip per input)"],
  ] },
  { id: "B2", guarantee: "RC_RETRY / TESTING: capped backoff resubmission; YIELDED not retried unless asked", tests: [
    ["src/core/chip.test.ts", "retries TPM_RC_RETRY with the kernel's doubling back-off and gives up after 1280 ms"],
    ["src/core/chip.test.ts", "retries TPM_RC_TESTING until success, but returns TESTING to SelfTest at once"],
    ["src/core/chip.test.ts", "does not retry YIELDED or CANCELED unless told to"],
  ] },
  { id: "B3", guarantee: "corrupt, truncated, other-version state: refused, never served", tests: [
    ["src/softtpm/state.test.ts", "refuses the blob truncated at every offset"],
    ["src/softtpm/state.test.ts", "refuses the blob with any single byte flipped"],
    ["src/softtpm/state.test.ts", "refuses appended bytes, another version, another magic"],
    ["src/softtpm/state.test.ts", "refuses to start from a corrupt state and stays off, never replacing it with a fresh TPM"],
  ] },
  { id: "P1", guarantee: "header size ≠ bytes, < 10, > max: typed error", tests: [
    ["src/transports/linux-device/linux-device.test.ts", "rejects a response whose header size lies, or that is shorter than a header"],
    ["src/transports/swtpm/transport.test.ts", "any bytes from the peer followed by a close give a well-framed response or a typed error (property)"],
  ] },
  { id: "P2", guarantee: "response fields checked against the request; sizes bounded by the response", tests: [
    ["src/client/responses.test.ts", "pcrRead refuses a sha256 digest of 64 bytes, naming pcrValues"],
    ["src/client/responses.test.ts", "nvReadPublic refuses the public area of another index, naming nvPublic.nvIndex"],
    ["src/client/responses.test.ts", "getCapability refuses another capability than asked, naming capabilityData.capability"],
    ["src/client/responses.test.ts", "hashSequenceStart refuses a sequence handle that is not transient, naming sequenceHandle"],
  ] },
  { id: "P3", guarantee: "RC decoding total over all 2^32 values", tests: [
    ["src/wire/rc.test.ts", "never throws and always yields a name for any 32-bit code"],
  ] },
  { id: "C1", guarantee: "concurrent callers: queued, never interleaved", tests: [
    ["src/core/chip.test.ts", "gives each of 1000 concurrent callers its own reply, in order, one in flight at a time"],
    ["src/server/mssim.test.ts", "runs commands from several clients one at a time"],
  ] },
  { id: "C2", guarantee: "abort mid-command: settles at once, no late response to the next command", tests: [
    ["src/core/chip.test.ts", "rejects promptly when aborted mid-command and runs the next command afterwards"],
    ["src/transports/swtpm/transport.test.ts", "settles an aborted command at once with the abort reason and never hands its late response to the next command"],
    ["test/durability.test.ts", "AbortSignal.timeout(10) ends the loop with TpmAbortError"],
  ] },
  { id: "W1", guarantee: "kill -9 during state writes: old or new state, never torn, nothing acknowledged lost", tests: [
    ["test/durability.test.ts", "random points: every state file loads and no acknowledged write is lost"],
    ["src/softtpm/durability.test.ts", "a failed save answers TPM_RC_NV_UNAVAILABLE (0x923), rolls the change back, and the next write retries"],
    ["src/node/file-storage.test.ts", "load removes the temporary files a crashed save of this state file left behind, and nothing else"],
  ] },
  { id: "T1", guarantee: "supplicant absent or killed mid-command: a typed TEE error within the deadline (the fTPM's storage write fails, it panics: TARGET_DEAD); a reopen works after a restart", tests: [
    ["test/tee-seeds.test.ts", "T1: supplicant killed mid-command: the command ends within its deadline with a typed TEE error; after a restart a reopen works"],
    ["test/tee-seeds.test.ts", "REE-loaded TA, no supplicant: OUT_OF_MEMORY 0xffff000c, origin TEE (the failed APPL shm allocation); works once the supplicant runs"],
  ] },
  { id: "T2", guarantee: "fTPM TA panics: TARGET_DEAD (TeeError, origin TEE), the chip turns unusable; a reopen respawns the TA", tests: [
    ["test/tee-seeds.test.ts", "T2: the TA panics (a storage write answered GENERIC) → TARGET_DEAD, origin TEE through the chip; a reopen respawns it"],
  ] },
  { id: "T3", guarantee: "storage object corrupt: never served as valid (CORRUPT_OBJECT, the fTPM panics)", tests: [
    ["test/tee-seeds.test.ts", "T3: a REE FS object with a flipped byte: the fTPM's create reads it as corrupt and panics → TARGET_DEAD; its content is never served"],
  ] },
  { id: "T4", guarantee: "storage rolled back: RPMB refuses (counter); REE FS accepts it (GP rollback level 0, documented)", tests: [
    ["test/tee-seeds.test.ts", "T4: REE FS rolled back to an older copy is accepted: GP rollback protection level 0 for REE FS, the documented undetectable case (RPMB would be needed)"],
    ["test/tee-seeds.test.ts", "counter replay (an older copy of the partition put back): the next NV write fails inside the TEE, the TA panics → TARGET_DEAD; the old data is never overwritten"],
  ] },
];

const root = join(import.meta.dirname, "..");
const sources = new Map<string, string>();
const source = (file: string) => sources.get(file) ?? sources.set(file, readFileSync(join(root, file), "utf8")).get(file)!;

for (const row of ROWS) {
  describe(`${row.id} ${row.guarantee}`, () => {
    it("is proven by the cited tests, which exist under these titles", () => {
      for (const [file, title] of row.tests) {
        expect(source(file), `${row.id}: ${file} has no test titled "${title}"`).toContain(title);
      }
    });
  });
}

describe("fault matrix: the user-facing table lists every row", () => {
  it("docs/guarantees.md names every row id and every cited test file", () => {
    const doc = source("docs/guarantees.md");
    for (const row of ROWS) {
      expect(doc).toMatch(new RegExp(`\\| ${row.id} \\|`));
      for (const [file] of row.tests) expect(doc).toContain(file);
    }
  });
});
