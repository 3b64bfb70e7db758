/**
 * The published shape of the package: every subpath of package.json "exports" is a tsup entry with
 * its four files (ESM, CJS, and a declaration file for each), and the root entry tree-shakes, so an
 * application that imports `{ Tpm, swtpm }` does not carry SoftTpm, the device models or the other
 * drivers. The sizes themselves are checked on the built files by bench/size.mjs (`npm run size`);
 * this test catches, without a build, an import that drags a large module into code that does not
 * need it.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { SUBPATHS } from "../tsup.config.js";

const ROOT = resolve(__dirname, "..");

interface ConditionalExport {
  import: { types: string; default: string };
  require: { types: string; default: string };
}

const pkg = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as {
  exports: Record<string, ConditionalExport | string>;
  main: string;
  module: string;
  types: string;
  sideEffects: boolean;
  files: string[];
};

describe("package.json exports and tsup entries", () => {
  const entries = SUBPATHS;
  const subpaths = Object.keys(pkg.exports).filter((k) => k !== "./package.json");

  it("every subpath is one tsup entry, and every entry a subpath", () => {
    const fromExports = subpaths.map((k) => (k === "." ? "index" : k.slice(2))).sort();
    expect(Object.keys(entries).sort()).toEqual(fromExports);
  });

  it.each(subpaths)("%s: import and require conditions, each with its types first", (subpath) => {
    const name = subpath === "." ? "index" : subpath.slice(2);
    const e = pkg.exports[subpath] as ConditionalExport;
    expect(Object.keys(e)).toEqual(["import", "require"]);
    // ESM is built module by module (dist/ mirrors src/); CJS and the declarations per subpath.
    // TypeScript takes the first condition that matches, so "types" comes before "default".
    const esm = entries[name]!.replace(/^src\//, "./dist/").replace(/\.ts$/, ".js");
    expect(e.import).toEqual({ types: `./dist/${name}.d.ts`, default: esm });
    expect(Object.keys(e.import)).toEqual(["types", "default"]);
    expect(e.require).toEqual({ types: `./dist/${name}.d.cts`, default: `./dist/${name}.cjs` });
    expect(Object.keys(e.require)).toEqual(["types", "default"]);
    expect(existsSync(resolve(ROOT, entries[name]!)), `${entries[name]} exists`).toBe(true);
  });

  it("the legacy fields point at the root entry, and the package declares no side effects", () => {
    expect(pkg.main).toBe("./dist/index.cjs");
    expect(pkg.module).toBe("./dist/index.js");
    expect(pkg.types).toBe("./dist/index.d.ts");
    expect(pkg.sideEffects).toBe(false);
    expect(pkg.files).toContain("dist");
  });
});

/**
 * The `src/` (and dependency) files that contribute bytes when an application bundles `source`.
 * The ESM build is one file per source module and package.json says `"sideEffects": false`, so
 * bundling the sources directly drops and keeps the same modules as bundling dist/ does.
 */
async function keptModules(source: string): Promise<string[]> {
  const result = await build({
    stdin: { contents: source, resolveDir: ROOT, sourcefile: "entry.mjs", loader: "js" },
    bundle: true,
    write: false,
    minify: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: ["node:*"],
    metafile: true,
    logLevel: "silent",
  });
  const [output] = Object.values(result.metafile.outputs);
  return Object.entries(output!.inputs)
    .filter(([, v]) => v.bytesInOutput > 0)
    .map(([path]) => path);
}

describe("the root entry tree-shakes", () => {
  const DEVICES = /^src\/devices\//;
  const SOFTTPM = /^src\/softtpm\//;
  const NOBLE = /node_modules\/@noble\//;
  const driver = (name: string): RegExp => new RegExp(`^src/transports/${name}/`);

  it("{ Tpm, swtpm } keeps neither SoftTpm nor a device model nor another driver nor the hashes", async () => {
    const kept = await keptModules(`export { Tpm, swtpm } from "./src/index.js";`);
    expect(kept).toContain("src/client/tpm.ts");
    expect(kept).toContain("src/transports/swtpm/transport.ts");
    const forbidden = [SOFTTPM, DEVICES, NOBLE, driver("tis"), driver("crb"), driver("mssim"), driver("linux-device"), driver("memory"), /^src\/testing\//, /^src\/platform\/boards/];
    expect(kept.filter((m) => forbidden.some((f) => f.test(m)))).toEqual([]);
  });

  it("{ Tpm, memory, SoftTpm } keeps no device model and no socket or MMIO driver", async () => {
    const kept = await keptModules(`export { Tpm, memory, SoftTpm } from "./src/index.js";`);
    expect(kept.some((m) => SOFTTPM.test(m))).toBe(true);
    const forbidden = [DEVICES, driver("tis"), driver("crb"), driver("swtpm"), driver("mssim"), driver("linux-device"), /^src\/testing\//];
    expect(kept.filter((m) => forbidden.some((f) => f.test(m)))).toEqual([]);
  });
});
