import { defineConfig } from "tsup";

/**
 * The subpaths of package.json "exports" and the barrel behind each (test/package.test.ts keeps
 * the two in step).
 */
export const SUBPATHS: Record<string, string> = {
  index: "src/index.ts",
  softtpm: "src/softtpm/index.ts",
  wire: "src/wire/index.ts",
  testing: "src/testing/index.ts",
  // one per transport
  memory: "src/transports/memory/index.ts",
  tis: "src/transports/tis/index.ts",
  crb: "src/transports/crb/index.ts",
  swtpm: "src/transports/swtpm/index.ts",
  mssim: "src/transports/mssim/index.ts",
  "linux-device": "src/transports/linux-device/index.ts",
  // one per device family
  "tis-device": "src/devices/tis/index.ts",
  "crb-device": "src/devices/crb/index.ts",
};

export default defineConfig([
  {
    // ESM: one output file per source module (dist/ mirrors src/), not bundled. Together with
    // "sideEffects": false in package.json this lets an application's bundler drop every module
    // the application does not reach, whatever top-level statements that module has; in a bundled
    // chunk it could only drop statements it can prove pure. bench/size.mjs measures the result.
    entry: ["src/**/*.ts", "!src/**/*.test.ts", "!src/**/test-helpers.ts", "!src/cli/**"],
    format: ["esm"],
    bundle: false,
    sourcemap: true,
    clean: true,
    target: "node20",
  },
  {
    // CJS: one bundled file per subpath, with the shared code in chunks, so every subpath shares
    // one copy of each class (`require("tpmkit/swtpm").SwtpmControl` is the class
    // `require("tpmkit").swtpm` checks with instanceof; bench/dual.mjs checks it).
    entry: SUBPATHS,
    format: ["cjs"],
    splitting: true,
    sourcemap: true,
    target: "node20",
    treeshake: true,
  },
  {
    // Declarations, one rolled-up file per subpath: dist/<name>.d.ts (import) and .d.cts (require).
    entry: SUBPATHS,
    format: ["esm", "cjs"],
    dts: { only: true },
    target: "node20",
  },
  {
    entry: { "cli/main": "src/cli/main.ts" },
    format: ["esm"],
    sourcemap: true,
    target: "node20",
    banner: { js: "#!/usr/bin/env node" },
  },
]);
