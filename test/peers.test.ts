import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PEER_TESTS, exclusionMessage, peerExclusions, peersRequired } from "./support/peers.js";

describe("integration tests and their peers", () => {
  it("lists every integration test file with the peers it needs", () => {
    const files = readdirSync(join(__dirname, "integration"))
      .filter((f) => f.endsWith(".test.ts"))
      .map((f) => `test/integration/${f}`)
      .sort();
    expect(Object.keys(PEER_TESTS).sort()).toEqual(files);
  });

  it("leaves out the files whose peer is missing, unless peers are required", () => {
    const noSwtpm = (p: string) => p !== "swtpm";
    const out = peerExclusions({}, noSwtpm);
    expect(out.map((x) => x.file)).toContain("test/integration/swtpm-transport.test.ts");
    expect(out.map((x) => x.file)).not.toContain("test/integration/tools-softtpm.test.ts");
    expect(out.find((x) => x.file.endsWith("mssim.test.ts"))?.missing).toEqual(["swtpm"]);
    expect(peerExclusions({ TPMKIT_REQUIRE_PEERS: "1" }, noSwtpm)).toEqual([]);
    expect(peerExclusions({}, () => true)).toEqual([]);
    expect(peersRequired({ TPMKIT_REQUIRE_PEERS: "0" })).toBe(false);
    expect(peersRequired({ TPMKIT_REQUIRE_PEERS: "" })).toBe(false);
  });

  it("says what was left out, why, and how to install the peers", () => {
    const msg = exclusionMessage([{ file: "test/integration/x.test.ts", missing: ["swtpm", "tpm2-tools"] }]);
    expect(msg).toMatch(/^SKIPPED 1 integration test file\(s\): swtpm and tpm2-tools not installed\./);
    expect(msg).toContain("test/integration/x.test.ts (needs swtpm, tpm2-tools)");
    expect(msg).toContain("apt-get install -y swtpm swtpm-tools tpm2-tools");
    expect(msg).toContain("TPMKIT_REQUIRE_PEERS=1");
    expect(exclusionMessage([])).toBe("");
  });
});
