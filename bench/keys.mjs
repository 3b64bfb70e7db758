// tpmkit key benchmark (GitHub issue 12, point 4): TPM2_CreatePrimary (RSA-2048, ECC P-256),
// TPM2_Sign and TPM2_Quote per second through the typed API (`Tpm`), on SoftTpm (memory
// transport) and on a real swtpm (swtpm transport, UNIX socket), in the same run. Prints one JSON
// object per line.
//
//   npx tsup && BENCH_ROUNDS=3 node --expose-gc bench/keys.mjs
//
// Environment:
//   BENCH_ROUNDS     interleaved rounds; times are medians over rounds (default 5)
//   BENCH_N_RSA      CreatePrimary RSA-2048 per timed run (default 5: SoftTpm derives the primes
//                    from the seed, Part 1 §26.3, and takes 0.2–0.8 s per key)
//   BENCH_N_ECC      CreatePrimary ECC P-256 per timed run (default 50)
//   BENCH_N          Sign and Quote per timed run (default 200)
//   TPMKIT_DIST      the module to import instead of ../dist/index.js (e.g. an esbuild bundle)
//
// Each round runs every (operation, backend) pair once; the backend order alternates from round
// to round. Each timed run is preceded by one untimed call. CreatePrimary is timed alone: the
// FlushContext of each new key runs outside the timed span. Sign signs a SHA-256 digest with an
// unrestricted primary signing key (RSASSA-SHA256, ECDSA-SHA256); Quote signs PCRs 0–7 of the
// SHA-256 bank with a restricted primary signing key (an attestation key) and a 32-byte nonce.
// The untimed call before each Sign or Quote run is checked on the caller's side (node:crypto,
// verifyQuote), so the run measures operations that work.
import { createHash, verify as cryptoVerify } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const dist = process.env.TPMKIT_DIST ? pathToFileURL(process.env.TPMKIT_DIST).href : new URL("../dist/index.js", import.meta.url).href;
const { SoftTpm, Tpm, memory, swtpm, rsaSigningTemplate, eccSigningTemplate, publicKeyToCrypto, verifyQuote } = await import(dist);

const int = (name, dflt) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`${name} must be a positive integer`);
    process.exit(2);
  }
  return v;
};
const ROUNDS = int("BENCH_ROUNDS", 5);
const N_RSA = int("BENCH_N_RSA", 5);
const N_ECC = int("BENCH_N_ECC", 50);
const N = int("BENCH_N", 200);

// ---------------------------------------------------------------------------------------------
// swtpm (started here, stopped by PID, also after an error or Ctrl-C)

const started = []; // { pid, dir }
function stopAll() {
  for (const s of started.splice(0)) {
    try {
      process.kill(s.pid, "SIGTERM");
    } catch {
      // already gone
    }
    rmSync(s.dir, { recursive: true, force: true });
  }
}
process.on("exit", stopAll);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    stopAll();
    process.exit(130);
  });
}

/** `swtpm socket --tpm2` on a UNIX socket, with the flags that worked against swtpm 0.7.1 (swtpm(8)). */
async function startSwtpm() {
  const dir = mkdtempSync(join(tmpdir(), "tpmkit-bench-keys-"));
  const pidFile = join(dir, "pid");
  const path = join(dir, "s");
  const args = ["socket", "--tpm2", "--tpmstate", `dir=${dir}`, "--server", `type=unixio,path=${path}`, "--ctrl", `type=unixio,path=${join(dir, "s.ctrl")}`, "--flags", "not-need-init,startup-clear", "--pid", `file=${pidFile}`, "--daemon"];
  const r = spawnSync("swtpm", args, { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`swtpm did not start: ${r.error?.message ?? r.stderr}`);
  }
  let pid = 0;
  for (let i = 0; i < 100 && !pid; i++) {
    if (existsSync(pidFile)) pid = Number(readFileSync(pidFile, "utf8").trim()) || 0;
    if (!pid) await sleep(50);
  }
  if (!pid) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error("swtpm wrote no pid file");
  }
  started.push({ pid, dir });
  for (let i = 0; ; i++) {
    try {
      const tpm = await Tpm.open(swtpm({ path }), { startup: false });
      await tpm.getRandom(8);
      return tpm; // swtpm serves one data connection at a time: this one stays open for the run
    } catch (e) {
      if (i >= 100) throw new Error(`swtpm (pid ${pid}) does not answer: ${e.message}`);
      await sleep(50);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Operations

const PCRS = { sha256: [0, 1, 2, 3, 4, 5, 6, 7] };
const MESSAGE = new TextEncoder().encode("tpmkit bench/keys.mjs");
const DIGEST = new Uint8Array(createHash("sha256").update(MESSAGE).digest());
const NONCE = new Uint8Array(32).fill(0x5a);

/** Checks a signature of DIGEST (TPM2_Sign) or a quote (TPM2_Quote) on the caller's side. */
async function check(what, tpm, pub, out) {
  if (what === "quote") {
    verifyQuote({ quoted: out.quoted, signature: out.signature, publicKey: pub, nonce: NONCE, pcrs: await tpm.pcrRead(PCRS) });
    return;
  }
  const { keyObject } = publicKeyToCrypto(pub);
  // TPM2_Sign signed DIGEST = SHA-256(MESSAGE): node:crypto hashes MESSAGE itself.
  const ok = out.sig ? cryptoVerify("sha256", MESSAGE, keyObject, out.sig) : cryptoVerify("sha256", MESSAGE, { key: keyObject, dsaEncoding: "ieee-p1363" }, concat(out.r, out.s, 32));
  if (!ok) throw new Error("the signature does not verify");
}
function concat(r, s, len) {
  const out = new Uint8Array(2 * len);
  out.set(r, len - r.length);
  out.set(s, 2 * len - s.length);
  return out;
}

// A TPM holds only a few transient objects (3 in swtpm 0.7.1 and SoftTpm: TPM_RC_OBJECT_MEMORY
// beyond), so each Sign or Quote run creates its key first (untimed) and flushes it after.
const OPS = {
  "createprimary/rsa2048": { n: N_RSA, create: () => rsaSigningTemplate(2048) },
  "createprimary/ecc-p256": { n: N_ECC, create: () => eccSigningTemplate("p256") },
  "sign/rsa2048": { n: N, key: () => rsaSigningTemplate(2048), what: "sign" },
  "sign/ecc-p256": { n: N, key: () => eccSigningTemplate("p256"), what: "sign" },
  "quote/rsa2048": { n: N, key: () => rsaSigningTemplate(2048, { restricted: true }), what: "quote" },
  "quote/ecc-p256": { n: N, key: () => eccSigningTemplate("p256", { restricted: true }), what: "quote" },
};

/** Ms per operation of one timed run. */
async function timed(op, tpm) {
  const o = OPS[op];
  if (o.create) {
    const template = o.create();
    await tpm.flushContext((await tpm.createPrimary(template)).handle); // untimed
    globalThis.gc?.();
    let ns = 0n;
    for (let i = 0; i < o.n; i++) {
      const t0 = process.hrtime.bigint();
      const r = await tpm.createPrimary(template);
      ns += process.hrtime.bigint() - t0;
      await tpm.flushContext(r.handle);
    }
    return Number(ns) / o.n / 1e6;
  }
  const key = await tpm.createPrimary(o.key());
  try {
    const run = o.what === "sign" ? () => tpm.sign(key.handle, DIGEST) : () => tpm.quote(key.handle, NONCE, PCRS);
    await check(o.what, tpm, key.public, await run()); // untimed, and checked
    globalThis.gc?.();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < o.n; i++) await run();
    return Number(process.hrtime.bigint() - t0) / o.n / 1e6;
  } finally {
    await tpm.flushContext(key.handle);
  }
}

// ---------------------------------------------------------------------------------------------
// Run

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r3 = (x) => Math.round(x * 1000) / 1000;

const backends = {
  softtpm: await Tpm.open(memory({ backend: new SoftTpm() })),
  swtpm: await startSwtpm(),
};

const load = [loadavg()[0]];
const samples = {}; // `${backend}|${op}` -> [ms per op, one per round]
for (let round = 0; round < ROUNDS; round++) {
  for (const op of Object.keys(OPS)) {
    const order = round % 2 === 0 ? ["softtpm", "swtpm"] : ["swtpm", "softtpm"];
    for (const b of order) (samples[`${b}|${op}`] ??= []).push(await timed(op, backends[b]));
  }
  load.push(loadavg()[0]);
}

for (const [k, runs] of Object.entries(samples)) {
  const [backend, op] = k.split("|");
  const ms = median(runs);
  console.log(
    JSON.stringify({
      bench: "keys",
      backend,
      op,
      n: OPS[op].n,
      rounds: ROUNDS,
      ops_per_s: r3(1000 / ms),
      ms_per_op: r3(ms),
      best_ms_per_op: r3(Math.min(...runs)),
      runs_ms: runs.map(r3),
    }),
  );
}

// softtpm ÷ swtpm operations per second: per round, then the median; and best ÷ best.
const ratios = {};
for (const op of Object.keys(OPS)) {
  const a = samples[`softtpm|${op}`];
  const b = samples[`swtpm|${op}`];
  ratios[op] = { median: r3(median(a.map((x, i) => b[i] / x))), best: r3(Math.min(...b) / Math.min(...a)) };
}
console.log(JSON.stringify({ bench: "keys-ratios", softtpm_vs_swtpm_ops_per_s: ratios, loadavg_1m: load.map((x) => Math.round(x * 100) / 100), node: process.version }));

for (const tpm of Object.values(backends)) await tpm.close();
stopAll();
