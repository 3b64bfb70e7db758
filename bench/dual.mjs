#!/usr/bin/env node
// Dual-package check on the built files: the CJS build loads, also where require() cannot load an
// ES module (`--no-experimental-require-module`, as in Jest's loader: the CJS build bundles the
// ESM-only @noble/hashes), computes with it, and an error thrown by the CJS build is `instanceof`
// the ESM build's classes in the same process (and the other way round). Prints one JSON line;
// exits non-zero on any failure.
//
//   node bench/dual.mjs      (after `npx tsup`; `npm run size` runs it)
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const checks = {};
let failure;

function check(name, ok) {
  checks[name] = ok;
  if (!ok && !failure) failure = name;
}

function thrown(fn) {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

async function rejected(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return undefined;
}

try {
  // Through the package's own "exports" map (a package can import itself by name), so a wrong
  // path or condition there fails here.
  const cjs = require("tpmkit");
  const esm = await import("tpmkit");
  check("exports map", require.resolve("tpmkit") === join(root, "dist", "index.cjs") && import.meta.resolve("tpmkit") === pathToFileURL(join(root, "dist", "index.js")).href);
  check("two copies", cjs.TpmkitError !== esm.TpmkitError && typeof cjs.Tpm === "function" && typeof esm.Tpm === "function");

  // Every subpath loads in both formats and shares the root's classes within its format (the CJS
  // build has chunks too, so `require("tpmkit/swtpm").SwtpmControl` is the class
  // `require("tpmkit").swtpm` checks with instanceof).
  const shared = { softtpm: "SoftTpm", swtpm: "SwtpmControl", tis: "tis", crb: "crb", memory: "memory", mssim: "mssim", "linux-device": "linuxDevice", "tis-device": "TisDevice", "crb-device": "CrbDevice", "ftpm-tee": "ftpmTee", optee: "OpTee", testing: "FakeTpmBackend" };
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const subpaths = Object.keys(pkg.exports).filter((k) => k !== "." && k !== "./package.json").map((k) => k.slice(2));
  const broken = [];
  for (const sub of subpaths) {
    const c = require(`tpmkit/${sub}`);
    const m = await import(`tpmkit/${sub}`);
    if (Object.keys(c).length === 0 || Object.keys(m).length === 0) broken.push(`${sub}: empty`);
    const name = shared[sub];
    if (name && (c[name] === undefined || c[name] !== cjs[name] || m[name] !== esm[name])) broken.push(`${sub}: ${name} is another copy`);
  }
  check("subpaths load and share the root's classes", broken.length === 0);
  if (broken.length) checks.subpathProblems = broken;

  // SoftTpm through the CJS build: PCR 16 (the debug PCR, 0 after Startup and extendable from
  // locality 0) after one SHA-256 extend is SHA-256(32 zero bytes || digest) (TPM 2.0 Part 3,
  // TPM2_PCR_Extend).
  const digest = createHash("sha256").update("tpmkit dual-package check").digest();
  const tpm = await cjs.Tpm.open(cjs.memory({ backend: new cjs.SoftTpm() }));
  try {
    await tpm.pcrExtend(16, { sha256: new Uint8Array(digest) });
    const values = await tpm.pcrRead({ sha256: [16] });
    const expected = createHash("sha256").update(Buffer.alloc(32)).update(digest).digest("hex");
    check("cjs softtpm pcrExtend+pcrRead", Buffer.from(values.sha256?.[16] ?? []).toString("hex") === expected);
    const sha1 = await tpm.digest(new TextEncoder().encode("abc"), "sha1");
    check("cjs softtpm sha1 (noble legacy)", Buffer.from(sha1).toString("hex") === "a9993e364706816aba3e25717850c26c9cd0d89d");

    // An error the CJS build throws from deep inside: a TPM response code, TPM_RC_LOCALITY, since
    // PCR 17 is not extendable from locality 0 (swtpm 0.7.1 / libtpms 0.9 as measured; SoftTpm
    // enforces the same table).
    const rc = await rejected(tpm.pcrExtend(17, { sha256: new Uint8Array(32) }));
    check("cjs TpmResponseError instanceof esm classes", rc instanceof esm.TpmResponseError && rc instanceof esm.TpmkitError && rc instanceof Error && !(rc instanceof esm.TpmTransportError));
  } finally {
    await tpm.close();
  }

  // The CJS build without require(esm): every subpath loads, and SoftTpm's SHA-1 (from the bundled
  // @noble/hashes) gives the FIPS 180-4 value for "abc".
  const noRequireEsm = spawnSync(
    process.execPath,
    [
      "--no-experimental-require-module",
      "-e",
      `const t = require("tpmkit");
       for (const s of ${JSON.stringify(subpaths)}) if (Object.keys(require("tpmkit/" + s)).length === 0) throw new Error(s + " is empty");
       (async () => {
         const tpm = await t.Tpm.open(t.memory({ backend: new t.SoftTpm() }));
         const d = await tpm.digest(new TextEncoder().encode("abc"), "sha1");
         await tpm.close();
         process.stdout.write(Buffer.from(d).toString("hex"));
       })().catch((e) => { console.error(e); process.exit(1); });`,
    ],
    { cwd: root, encoding: "utf8", timeout: 30_000 },
  );
  check("cjs without require(esm)", noRequireEsm.status === 0 && noRequireEsm.stdout === "a9993e364706816aba3e25717850c26c9cd0d89d");
  if (noRequireEsm.status !== 0) checks.noRequireEsmStderr = noRequireEsm.stderr.slice(-1000);

  // A synchronous throw from the CJS build's argument checks.
  const transportError = thrown(() => cjs.memory({}));
  check(
    "cjs TpmTransportError instanceof esm classes",
    transportError instanceof cjs.TpmTransportError && transportError instanceof esm.TpmkitError && transportError instanceof esm.TpmTransportError && !(transportError instanceof esm.TpmArgumentError),
  );
  // And the other way round.
  const esmError = thrown(() => esm.memory({}));
  check("esm error instanceof cjs classes", esmError instanceof cjs.TpmkitError && esmError instanceof cjs.TpmTransportError && !(esmError instanceof cjs.TpmTimeoutError));
  check("plain Error is not a TpmkitError", !(new Error("x") instanceof esm.TpmkitError) && !(new Error("x") instanceof cjs.TpmkitError));
} catch (e) {
  checks.exception = String(e?.stack ?? e);
  failure ??= "exception";
}

console.log(JSON.stringify({ case: "dual-package", ok: failure === undefined, ...(failure ? { failed: failure } : {}), checks }));
process.exit(failure === undefined ? 0 : 1);
