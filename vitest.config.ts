import { defineConfig } from "vitest/config";
import { peerExclusions } from "./test/support/peers.js";

// Integration tests whose real peer (swtpm, tpm2-tools) is not installed are left out, and the
// global setup says so at the end of the run; TPMKIT_REQUIRE_PEERS=1 (set by .ci/run) leaves out none.
const excluded = peerExclusions().map((x) => x.file);

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "dist/**", ...excluded],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 20000,
    hookTimeout: 20000,
  },
});
