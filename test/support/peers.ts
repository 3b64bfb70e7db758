/**
 * The real peers some integration tests need (swtpm, tpm2-tools), which test files need which, and
 * whether they are installed. `vitest.config.ts` leaves out the files whose peers are missing, so
 * `npm test` passes on a machine with only Node and says at the end what it left out and how to
 * install the peers; with `TPMKIT_REQUIRE_PEERS=1` (CI sets it) nothing is left out, and a missing
 * peer fails the tests that need it.
 */
import { spawnSync } from "node:child_process";

/** A program the integration tests run as a real peer. */
export type Peer = "swtpm" | "tpm2-tools";

/** How to tell a peer is installed: a command that must exit 0. */
const PROBES: Readonly<Record<Peer, readonly [string, readonly string[]]>> = {
  swtpm: ["swtpm", ["--version"]],
  "tpm2-tools": ["tpm2_getrandom", ["--version"]],
};

/** What to install, on Debian or Ubuntu. */
export const PEER_INSTALL = "apt-get install -y swtpm swtpm-tools tpm2-tools";

/** The environment variable under which a missing peer is a failure, never a skip. */
export const REQUIRE_PEERS_VAR = "TPMKIT_REQUIRE_PEERS";

/** Every integration test file and the peers it needs (the test beside this file checks the list is complete). */
export const PEER_TESTS: Readonly<Record<string, readonly Peer[]>> = {
  "test/integration/cli-output-swtpm.test.ts": ["swtpm", "tpm2-tools"],
  "test/integration/cli-serve.test.ts": ["tpm2-tools"],
  "test/integration/differential.test.ts": ["swtpm"],
  "test/integration/differential-objects.test.ts": ["swtpm"],
  "test/integration/duplication-swtpm.test.ts": ["swtpm"],
  "test/integration/mssim-conformance.test.ts": ["swtpm"],
  "test/integration/mssim.test.ts": ["swtpm", "tpm2-tools"],
  "test/integration/policy-swtpm.test.ts": ["swtpm"],
  "test/integration/policy-trial.test.ts": ["swtpm", "tpm2-tools"],
  "test/integration/rm-tools.test.ts": ["tpm2-tools"],
  "test/integration/swtpm-conformance.test.ts": ["swtpm"],
  "test/integration/swtpm-server.test.ts": ["swtpm", "tpm2-tools"],
  "test/integration/swtpm-transport.test.ts": ["swtpm"],
  "test/integration/tools-softtpm.test.ts": ["tpm2-tools"],
  "test/integration/typed-keys.test.ts": ["swtpm"],
  "test/integration/typed-sessions.test.ts": ["swtpm"],
};

const cache = new Map<Peer, boolean>();

/** Is `peer` installed (its probe command runs and exits 0)? */
export function hasPeer(peer: Peer): boolean {
  let ok = cache.get(peer);
  if (ok === undefined) {
    const [cmd, args] = PROBES[peer];
    const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 });
    ok = !r.error && r.status === 0;
    cache.set(peer, ok);
  }
  return ok;
}

/** Are missing peers failures here (`TPMKIT_REQUIRE_PEERS=1`)? */
export function peersRequired(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  const v = env[REQUIRE_PEERS_VAR];
  return v !== undefined && v !== "" && v !== "0";
}

/** The test files to leave out and why: none when peers are required or all are installed. */
export function peerExclusions(env: Readonly<Record<string, string | undefined>> = process.env, has: (p: Peer) => boolean = hasPeer): { file: string; missing: Peer[] }[] {
  if (peersRequired(env)) return [];
  return Object.entries(PEER_TESTS)
    .map(([file, peers]) => ({ file, missing: peers.filter((p) => !has(p)) }))
    .filter((x) => x.missing.length > 0);
}

/** The message printed at the end of a run that left files out. */
export function exclusionMessage(excluded: readonly { file: string; missing: readonly Peer[] }[]): string {
  if (excluded.length === 0) return "";
  const missing = [...new Set(excluded.flatMap((x) => x.missing))].sort();
  return [
    `SKIPPED ${excluded.length} integration test file(s): ${missing.join(" and ")} not installed.`,
    ...excluded.map((x) => `  ${x.file} (needs ${x.missing.join(", ")})`),
    `Install the peers to run them: ${PEER_INSTALL}`,
    `${REQUIRE_PEERS_VAR}=1 (CI sets it) makes a missing peer a failure instead.`,
  ].join("\n");
}
