#!/usr/bin/env node
// Runs one example on plain Node 20, with one command:
//
//   npm run example -- tis        (or: node examples/run.mjs tis)
//   npm run example               lists the examples
//
// The examples are TypeScript and import the library from source (`../src/index.js`), which Node 20
// cannot run directly (no type stripping before Node 22.6). This script bundles the example with
// esbuild (installed with tsup, a devDependency) into .tmp/examples/<name>.mjs and runs that file
// with the same Node, passing on its exit code. Nothing is installed and nothing outside .tmp/ is
// written.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const names = readdirSync(here)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.slice(0, -3))
  .sort();

const name = process.argv[2]?.replace(/\.ts$/, "");
if (name === undefined || name === "--help" || name === "-h" || !names.includes(name)) {
  // No name (or --help): the list, on stdout, exit 0. An unknown name: a usage error, exit 2.
  const known = name === undefined || name === "--help" || name === "-h";
  const out = known ? process.stdout : process.stderr;
  if (!known) out.write(`examples/run.mjs: no example named ${JSON.stringify(name)}\n`);
  out.write(`usage: npm run example -- <name>\n\nexamples (see examples/README.md):\n${names.map((n) => `  ${n}`).join("\n")}\n`);
  process.exit(known ? 0 : 2);
}

const outfile = join(root, ".tmp", "examples", `${name}.mjs`);
await build({
  entryPoints: [join(here, `${name}.ts`)],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "warning",
});
const run = spawnSync(process.execPath, [outfile, ...process.argv.slice(3)], { stdio: "inherit" });
if (run.error) throw run.error;
process.exit(run.status ?? 1);
