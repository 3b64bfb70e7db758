#!/usr/bin/env node
// Regenerates the pictures of docs/platform.md from two linuxFfaBoot() runs on a FakeClock:
//
//   node bench/ffa-ima-svg.mjs          writes docs/ffa-ima-bypass.svg and docs/ffa-ima-fixed.svg
//   node bench/ffa-ima-svg.mjs --check  exits 1 when the committed files differ from a new rendering
//
// docs/ffa-ima-bypass.svg: the kernel's link order, no fix (IMA activates TPM-bypass);
// docs/ffa-ima-fixed.svg: the same link order with fix "late-sync" (IMA after the deferred-probe flush).
// The library is bundled from source with esbuild (as examples/run.mjs does) into .tmp/, so no build
// is needed. src/platform/linux-ffa-boot.test.ts renders the same two pictures and compares them
// with the committed files, so they cannot drift from the code.
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, ".tmp", "ffa-ima-svg", "tpmkit.mjs");
await build({ entryPoints: [join(root, "src", "index.ts")], bundle: true, format: "esm", platform: "node", outfile, logLevel: "warning" });
const { FakeClock, linuxFfaBoot, timelineSvg } = await import(pathToFileURL(outfile).href);

const PICTURES = [
  { file: "ffa-ima-bypass.svg", fix: "none", title: "Linux arm64, TPM over FF-A: kernel link order, no fix → IMA TPM-bypass" },
  { file: "ffa-ima-fixed.svg", fix: "late-sync", title: "Linux arm64, TPM over FF-A: kernel link order, fix late-sync → boot_aggregate_late" },
];

const check = process.argv.includes("--check");
let stale = 0;
for (const p of PICTURES) {
  const { timeline, platform, ima } = await linuxFfaBoot({ fix: p.fix, clock: new FakeClock({ auto: true }) });
  for (const chip of platform.chips) await chip.close();
  const svg = timelineSvg(timeline, { title: p.title, imaBypass: ima.bypass });
  const path = join(root, "docs", p.file);
  if (check) {
    let old = "";
    try {
      old = readFileSync(path, "utf8");
    } catch {}
    if (old !== svg) {
      stale++;
      console.error(`${p.file}: differs from a new rendering`);
    }
  } else {
    writeFileSync(path, svg);
    console.log(`wrote docs/${p.file} (${svg.length} bytes)`);
  }
}
process.exitCode = stale ? 1 : 0;
