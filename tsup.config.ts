import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineConfig, type Options } from "tsup";

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

/**
 * No source maps (docs/decisions.md, "The package: CJS that bundles what it requires, ..."):
 * the ESM build is unminified and one file per module, so a stack trace into dist/ is readable as
 * it is; a map without its sources would send a debugger to src/ files the package does not ship,
 * and with the sources inlined the maps were 3.2 MB of the 4.9 MB unpacked tarball.
 */
const SOURCEMAP = false;

/** The CLI's entry; it gets the `#!` line unless its source already starts with one. */
const CLI_MAIN = "src/cli/main.ts";
const CLI_SHEBANG = readFileSync(CLI_MAIN, "utf8").startsWith("#!") ? undefined : { js: "#!/usr/bin/env node" };

/**
 * The declarations are rolled up once, in CommonJS form (dist/<name>.d.cts, the `require`
 * condition's types). The `import` condition's dist/<name>.d.ts is one line,
 * `export * from "./<name>.cjs"`: an ES-module declaration file (package.json says
 * `"type": "module"`) whose names are the CJS declarations' names. ESM code may import from CJS,
 * so this holds under nodenext, node16 and bundler resolution; each condition's types have the format of its
 * JavaScript, and the tarball carries the ~290 KB of declarations once instead of twice
 * (docs/decisions.md). This plugin writes those stubs next to the ESM build.
 */
const declarationStubs: NonNullable<Options["plugins"]>[number] = {
  name: "tpmkit-declaration-stubs",
  buildEnd() {
    const outDir = this.options.outDir;
    mkdirSync(outDir, { recursive: true });
    for (const name of Object.keys(SUBPATHS)) {
      writeFileSync(join(outDir, `${name}.d.ts`), `export * from "./${name}.cjs";\n`);
    }
  },
};

/**
 * The build, one config per output family (test/package.test.ts builds the JavaScript configs into
 * a temporary directory to check their shape).
 */
const CONFIGS = {
  /**
   * ESM: one output file per source module (dist/ mirrors src/), not bundled. Together with
   * "sideEffects": false in package.json this lets an application's bundler drop every module
   * the application does not reach, whatever top-level statements that module has; in a bundled
   * chunk it could only drop statements it can prove pure. bench/size.mjs measures the result.
   * The CLI's modules are built the same way (dist/cli/*.js import ../index.js and friends), so the
   * bin carries no second copy of the library; only its entry gets the `#!` line (next config).
   */
  esm: {
    entry: ["src/**/*.ts", "!src/**/*.test.ts", "!src/**/test-helpers.ts", `!${CLI_MAIN}`],
    format: ["esm"],
    bundle: false,
    sourcemap: SOURCEMAP,
    clean: true,
    target: "node20",
    plugins: [declarationStubs],
  },
  /** The bin, dist/cli/main.js: unbundled like the rest, with the `#!` line. */
  cli: {
    entry: { "cli/main": CLI_MAIN },
    format: ["esm"],
    bundle: false,
    sourcemap: SOURCEMAP,
    target: "node20",
    ...(CLI_SHEBANG ? { banner: CLI_SHEBANG } : {}),
  },
  /**
   * CJS: one bundled file per subpath, with the shared code in chunks, so every subpath shares
   * one copy of each class (`require("tpmkit/swtpm").SwtpmControl` is the class
   * `require("tpmkit").swtpm` checks with instanceof; bench/dual.mjs checks it).
   * @noble/hashes is ESM only, so the CJS build bundles it (`noExternal`): `require("tpmkit")`
   * then loads no ES module at all and works where require(esm) does not (Node with
   * `--no-experimental-require-module`, Jest's module loader). docs/decisions.md says why.
   */
  cjs: {
    entry: SUBPATHS,
    format: ["cjs"],
    splitting: true,
    sourcemap: SOURCEMAP,
    target: "node20",
    treeshake: true,
    noExternal: [/^@noble\/hashes(\/|$)/],
    // The CJS build is the compatibility copy (the ESM build, one readable file per module, is the
    // primary one): whitespace and syntax minified, identifiers kept, so stack traces still name
    // functions and classes. Keeps the tarball under its budget (bench/pack.mjs).
    minifyWhitespace: true,
    minifySyntax: true,
  },
  /** Declarations, one rolled-up file per subpath, in CJS form: dist/<name>.d.cts (see above). */
  dts: {
    entry: SUBPATHS,
    format: ["cjs"],
    dts: { only: true },
    target: "node20",
  },
} satisfies Record<string, Options>;

export default defineConfig([CONFIGS.esm, CONFIGS.cli, CONFIGS.cjs, CONFIGS.dts]);
