#!/usr/bin/env node
// Tarball check: what `npm publish` would upload, measured and inspected, and (with --install)
// installed into a fresh project and used there as a user would.
//
// Run after a build (`npm run pack:check` builds first, then runs this with --install). Packs the
// package with `npm pack --json --ignore-scripts` into a temporary directory and prints one JSON
// line:
//
//   {"case":"tarball","packed":N,"unpacked":N,"files":N,"budget":524288,"headroom":N,"ok":true}
//
// `packed` is the .tgz size in bytes; the budget is 512 KB (512 * 1024 bytes) packed: issue 8 set
// 400 KB, raised when issue 12 put a whole TPM 2.0 (RSA/ECC keys, signatures, attestation, policy)
// and its vendored curve code into the package (docs/decisions.md, "The package: ...");
// `headroom` is what is left of it (docs/decisions.md, "The package: ...", says what it is spent on).
// `ok` is false, with a `problems` list, when the tarball is over budget, holds a file other than
// dist/**, README.md, LICENSE and package.json (no tests, test helpers, source maps or .tmp/), or
// lacks one of the entry files package.json names.
//
// With --install, a second line {"case":"install","ok":...,"checks":{...}} after installing the
// tarball into an empty project (npm install <tgz>; @noble/hashes comes from the registry or
// npm's cache) and checking there: ESM import, CJS require (also under
// `--no-experimental-require-module`, where require() cannot load an ES module), the `tpmkit` bin
// through node_modules/.bin (a symlink), and the types under strict NodeNext TypeScript for both an
// .mts and a .cts file. Exits non-zero when any check fails.
//
//   node bench/pack.mjs              # the tarball line
//   node bench/pack.mjs --install    # and the fresh-project line
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BUDGET = 512 * 1024;
const install = process.argv.includes("--install");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

/** Runs a command with a bounded wait; returns { status, stdout, stderr } (status null on timeout). */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, maxBuffer: 64 * 1024 * 1024, ...opts });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

/** Every file path package.json's "exports", "main", "module", "types" and "bin" name. */
function namedFiles() {
  const out = new Set([pkg.main, pkg.module, pkg.types, ...Object.values(pkg.bin ?? {})]);
  const walk = (v) => {
    if (typeof v === "string") out.add(v);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(pkg.exports);
  return [...out].filter(Boolean).map((p) => p.replace(/^\.\//, ""));
}

if (!existsSync(join(root, "dist", "index.js"))) {
  console.error("bench/pack.mjs: dist/index.js is missing; run `npx tsup` first (or `npm run pack:check`)");
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "tpmkit-pack-"));
let failed = false;
try {
  const packed = run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: root });
  if (packed.status !== 0) throw new Error(`npm pack failed (${packed.status}): ${packed.stderr}`);
  const info = JSON.parse(packed.stdout)[0];
  const paths = info.files.map((f) => f.path);
  const problems = [];
  if (info.size > BUDGET) problems.push(`packed ${info.size} bytes > budget ${BUDGET}`);
  const allowed = /^(dist\/.+|README\.md|LICENSE|package\.json)$/;
  const forbidden = /\.map$|\.test\.|test-helpers|(^|\/)\.tmp\/|(^|\/)(src|test|bench|examples|docs)\//;
  for (const p of paths) if (!allowed.test(p) || forbidden.test(p)) problems.push(`unexpected file ${p}`);
  for (const p of [...namedFiles(), "README.md", "LICENSE"]) if (!paths.includes(p)) problems.push(`missing ${p}`);
  const row = { case: "tarball", packed: info.size, unpacked: info.unpackedSize, files: info.entryCount, budget: BUDGET, headroom: BUDGET - info.size, ok: problems.length === 0 };
  if (problems.length) row.problems = problems;
  console.log(JSON.stringify(row));
  if (problems.length) failed = true;

  if (install) {
    const checks = {};
    const details = {};
    const check = (name, ok, detail) => {
      checks[name] = ok;
      if (!ok) {
        failed = true;
        details[name] = detail;
      }
    };
    const app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "tpmkit-pack-check", version: "1.0.0", private: true }, null, 2));
    const added = run("npm", ["install", "--no-audit", "--no-fund", "--no-package-lock", join(work, info.filename)], { cwd: app, timeout: 300_000 });
    check("npm install <tarball>", added.status === 0, added.stderr.slice(-2000));

    // SHA-256("abc") through SoftTpm's TPM2_Hash must be the FIPS 180-4 value node:crypto gives.
    const expected = createHash("sha256").update("abc").digest("hex");
    const body = `
      const tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
      try {
        const d = await tpm.digest(new TextEncoder().encode("abc"), "sha256");
        console.log(Buffer.from(d).toString("hex"));
      } finally {
        await tpm.close();
      }`;
    writeFileSync(join(app, "esm.mjs"), `import { Tpm, memory, SoftTpm } from "tpmkit";\nimport { SwtpmControl } from "tpmkit/swtpm";\nif (typeof SwtpmControl !== "function") throw new Error("tpmkit/swtpm");\n${body}\n`);
    writeFileSync(join(app, "cjs.cjs"), `const { Tpm, memory, SoftTpm } = require("tpmkit");\nconst { SwtpmControl } = require("tpmkit/swtpm");\nif (typeof SwtpmControl !== "function") throw new Error("tpmkit/swtpm");\n(async () => {${body}\n})().catch((e) => { console.error(e); process.exit(1); });\n`);
    const esm = run(process.execPath, ["esm.mjs"], { cwd: app });
    check("esm import", esm.status === 0 && esm.stdout.trim() === expected, esm.stderr || esm.stdout);
    const cjs = run(process.execPath, ["cjs.cjs"], { cwd: app });
    check("cjs require", cjs.status === 0 && cjs.stdout.trim() === expected, cjs.stderr || cjs.stdout);
    const cjsNoEsm = run(process.execPath, ["--no-experimental-require-module", "cjs.cjs"], { cwd: app });
    check("cjs require without require(esm)", cjsNoEsm.status === 0 && cjsNoEsm.stdout.trim() === expected, cjsNoEsm.stderr || cjsNoEsm.stdout);

    // The bin through npm's symlink in node_modules/.bin, as `npx tpmkit` runs it; -T softtpm, the
    // embedded TPM, so the check does not depend on the machine having one.
    const bin = run("npx", ["--no", "tpmkit", "getrandom", "8", "--hex", "-T", "softtpm"], { cwd: app });
    check("npx tpmkit getrandom 8 --hex", bin.status === 0 && /^[0-9a-f]{16}$/.test(bin.stdout.trim()), `exit ${bin.status}; stdout ${JSON.stringify(bin.stdout)}; stderr ${JSON.stringify(bin.stderr)}`);

    // Types: strict NodeNext, the library's declarations checked too (skipLibCheck off). Each
    // @ts-expect-error fails the check if the types degrade to `any`.
    const typed = `
      const tpm: Tpm = await Tpm.open(memory({ backend: new SoftTpm() }));
      const bytes: Uint8Array = await tpm.getRandom(8);
      // @ts-expect-error a count is a number
      await tpm.getRandom("8");
      const e: unknown = new Error("x");
      if (e instanceof TpmkitError) console.log(e.code, bytes);
      await tpm.close();`;
    writeFileSync(join(app, "types.mts"), `import { Tpm, memory, SoftTpm, TpmkitError } from "tpmkit";\nimport { SwtpmControl } from "tpmkit/swtpm";\nvoid SwtpmControl;\n${typed}\nexport {};\n`);
    writeFileSync(join(app, "types.cts"), `import { Tpm, memory, SoftTpm, TpmkitError } from "tpmkit";\nimport { SwtpmControl } from "tpmkit/swtpm";\nvoid SwtpmControl;\nexport async function main(): Promise<void> {${typed}\n}\n`);
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          lib: ["ES2023"],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
          typeRoots: [join(root, "node_modules", "@types")],
        },
        files: ["types.mts", "types.cts"],
      }),
    );
    const tsc = run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: app });
    check("types (strict, NodeNext, .mts and .cts)", tsc.status === 0, tsc.stdout + tsc.stderr);

    const ok = Object.values(checks).every(Boolean);
    console.log(JSON.stringify({ case: "install", ok, checks, ...(ok ? {} : { details }) }));
  }
} catch (e) {
  console.log(JSON.stringify({ case: "tarball", ok: false, exception: String(e?.stack ?? e) }));
  failed = true;
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
