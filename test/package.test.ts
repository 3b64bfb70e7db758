/**
 * The published shape of the package: every subpath of package.json "exports" is a tsup entry with
 * its four files (ESM, CJS, and a declaration file for each), and the root entry tree-shakes, so an
 * application that imports `{ Tpm, swtpm }` does not carry SoftTpm, the device models or the other
 * drivers. The sizes themselves are checked on the built files by bench/size.mjs (`npm run size`);
 * this test catches, without a build, an import that drags a large module into code that does not
 * need it. "the built package" builds the JavaScript into .tmp/ and checks what issue 8 asked of it
 * (the CLI imports the library, no source maps, CJS without require(esm)); the tarball itself is
 * checked by bench/pack.mjs (`npm run pack:check`, in CI). Last, the examples run with one command.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { build as tsupBuild, type Options } from "tsup";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import tsupConfigs, { SUBPATHS, compact, esmToCjs, minifyKeepingAnnotations } from "../tsup.config.js";

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
  keywords?: string[];
  author?: string;
  scripts: Record<string, string>;
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

/**
 * The JavaScript the build writes (every tsup config but the declarations, which take half a
 * minute and are checked by `npm run api:check`), built from this tree into a temporary directory
 * inside the repository, so `@noble/hashes` resolves from node_modules as it does for an installed
 * copy of the package.
 */
describe("the built package", () => {
  let out = "";
  const read = (file: string) => readFileSync(join(out, file), "utf8");
  const files = (dir: string): string[] =>
    readdirSync(join(out, dir), { recursive: true, encoding: "utf8" })
      .map((f) => join(dir, f))
      .filter((f) => statSync(join(out, f)).isFile())
      .sort();

  beforeAll(async () => {
    mkdirSync(resolve(ROOT, ".tmp"), { recursive: true });
    out = join(mkdtempSync(resolve(ROOT, ".tmp", "package-test-")), "dist");
    const configs = (Array.isArray(tsupConfigs) ? tsupConfigs : [tsupConfigs]) as Options[];
    for (const config of configs.filter((c) => !c.dts)) {
      await tsupBuild({ ...config, outDir: out, config: false, silent: true });
    }
  }, 180_000);
  afterAll(() => {
    if (out) rmSync(resolve(out, ".."), { recursive: true, force: true });
  });

  it("the CLI imports the library's modules instead of carrying a second copy", () => {
    const main = read("cli/main.js");
    // The bundled bin was 308 KB with the whole library inside; the entry alone is a few KB.
    expect(statSync(join(out, "cli/main.js")).size).toBeLessThan(64 * 1024);
    expect(main).toMatch(/from ?"\.\.\/(client|errors|wire|platform)\/[\w/-]+\.js"/);
    // No CLI module defines a library class: they are imported from ../ (dist/ mirrors src/).
    const cli = files("cli").filter((f) => f.endsWith(".js"));
    for (const f of cli) expect(read(f), f).not.toMatch(/class (TpmkitError|Tpm|Chip|SoftTpm)\b/);
    // ... and every relative import of the CLI resolves to a file of the build.
    for (const f of cli) {
      for (const [, spec] of read(f).matchAll(/from ?"(\.{1,2}\/[^"]+)"/g)) {
        expect(existsSync(resolve(out, f, "..", spec!)), `${f} imports ${spec}`).toBe(true);
      }
    }
  });

  it("only the bin starts with a #! line, and it has exactly one", () => {
    const main = read("cli/main.js");
    expect(main.startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(main.split("\n").filter((l) => l.startsWith("#!"))).toHaveLength(1);
    const others = files(".").filter((f) => /\.c?js$/.test(f) && f !== join("cli", "main.js"));
    expect(others.filter((f) => read(f).startsWith("#!"))).toEqual([]);
  });

  it("ships no source maps and no comment pointing at one (docs/decisions.md)", () => {
    const all = files(".");
    expect(all.filter((f) => f.endsWith(".map"))).toEqual([]);
    expect(all.filter((f) => /\.c?js$/.test(f) && read(f).includes("sourceMappingURL"))).toEqual([]);
  });

  it("each subpath's ESM types are one line over the CJS declarations (one copy in the tarball)", () => {
    for (const name of Object.keys(SUBPATHS)) {
      expect(read(`${name}.d.ts`), name).toBe(`export * from "./${name}.cjs";\n`);
    }
  });

  it("the CJS build mirrors the ESM one module for module and requires no package (docs/decisions.md)", () => {
    expect(JSON.parse(read("cjs/package.json"))).toEqual({ type: "commonjs" });
    const esm = files(".").filter((f) => f.endsWith(".js") && !/^(cli|cjs)\//.test(f));
    const cjs = files("cjs").filter((f) => f.endsWith(".js") && !f.startsWith(join("cjs", "vendor")));
    expect(cjs.map((f) => f.slice("cjs/".length)).sort()).toEqual(esm.sort());
    for (const f of files("cjs").filter((x) => x.endsWith(".js"))) {
      for (const [, spec] of read(f).matchAll(/require\("([^"]+)"\)/g)) {
        if (spec!.startsWith("node:")) continue;
        expect(spec, `${f} requires ${spec}`).toMatch(/^\.{1,2}\//);
        expect(existsSync(resolve(out, f, "..", spec!)), `${f} requires ${spec}`).toBe(true);
      }
    }
    for (const name of Object.keys(SUBPATHS)) {
      const target = SUBPATHS[name]!.replace(/^src\//, "./cjs/").replace(/\.ts$/, ".js");
      expect(read(`${name}.cjs`), name).toBe(`"use strict";module.exports=require(${JSON.stringify(target)});\n`);
    }
  });

  it("the JavaScript keeps its @__PURE__ annotations and drops its other comments", () => {
    const js = files(".").filter((f) => f.endsWith(".js") && !f.startsWith(join("cjs", "vendor")));
    // src/core/durations.ts marks its tables pure, so an application's bundler may drop them.
    expect(read("core/durations.js")).toMatch(/=\/\* @__PURE__ \*\/ new Map\(/);
    expect(read("cjs/core/durations.js")).toMatch(/=\/\* @__PURE__ \*\/ new Map\(/);
    expect(js.filter((f) => /^\s*(\/\/|\/\*\*)/m.test(read(f)))).toEqual([]);
  });

  it("the library has no import cycle (esmToCjs reads each import once, at require time)", () => {
    const esm = files(".").filter((f) => f.endsWith(".js") && !/^(cli|cjs)\//.test(f));
    const deps = new Map(esm.map((f) => [f, [...read(f).matchAll(/(?:import|export)[^;"]*?from"(\.[^"]+)"/g)].map((m) => join(f, "..", m[1]!))]));
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      state.set(f, "open");
      for (const d of deps.get(f) ?? []) {
        if (state.get(d) === "open") cycles.push([...path.slice(path.indexOf(d)), f, d].join(" -> "));
        else if (!state.has(d)) visit(d, [...path, f]);
      }
      state.set(f, "done");
    };
    for (const f of esm) if (!state.has(f)) visit(f, []);
    expect(deps.get("index.js")?.length).toBeGreaterThan(5);
    expect(cycles).toEqual([]);
  });

  it("no test file or test helper is built", () => {
    expect(files(".").filter((f) => /\.test\.|test-helpers/.test(f))).toEqual([]);
  });

  it("the CJS build loads without require(esm) and SoftTpm hashes correctly through it", () => {
    // `--no-experimental-require-module` is how Node < 20.19 and CJS test runners behave: a
    // require() that reaches an ES module (such as @noble/hashes) throws ERR_REQUIRE_ESM.
    const script = `
      const tpmkit = require(${JSON.stringify(join(out, "index.cjs"))});
      const subpaths = ${JSON.stringify(Object.keys(SUBPATHS).filter((k) => k !== "index"))}
        .map((k) => [k, Object.keys(require(${JSON.stringify(out)} + "/" + k + ".cjs")).length]);
      (async () => {
        const tpm = await tpmkit.Tpm.open(tpmkit.memory({ backend: new tpmkit.SoftTpm() }));
        const hex = (b) => Buffer.from(b).toString("hex");
        const abc = new TextEncoder().encode("abc");
        const result = { subpaths, sha1: hex(await tpm.digest(abc, "sha1")), sha256: hex(await tpm.digest(abc, "sha256")) };
        await tpm.pcrExtend(16, { sha256: new Uint8Array(32).fill(0xab) });
        result.pcr16 = hex((await tpm.pcrRead({ sha256: [16] })).sha256[16]);
        await tpm.close();
        console.log(JSON.stringify(result));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const run = spawnSync(process.execPath, ["--no-experimental-require-module", "-e", script], { encoding: "utf8", timeout: 30_000 });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const result = JSON.parse(run.stdout) as { subpaths: [string, number][]; sha1: string; sha256: string; pcr16: string };
    const sha = (alg: string, ...parts: Uint8Array[]) => parts.reduce((h, p) => h.update(p), createHash(alg)).digest("hex");
    const abc = new TextEncoder().encode("abc");
    expect(result.sha1).toBe(sha("sha1", abc));
    expect(result.sha256).toBe(sha("sha256", abc));
    // TPM2_PCR_Extend (TPM 2.0 Part 3): new = H(old || digest); PCR 16 starts at zeros.
    expect(result.pcr16).toBe(sha("sha256", new Uint8Array(32), new Uint8Array(32).fill(0xab)));
    expect(result.subpaths.filter(([, n]) => n === 0)).toEqual([]);
  });
});

describe("compact (tsup.config.ts): comments, indentation and blank lines go, code stays", () => {
  it("keeps literals that look like comments, annotations, the #! line and line breaks", () => {
    const src = [
      "#!/usr/bin/env node",
      "/** doc */",
      "const t = `a // not a comment",
      "    kept indentation",
      "",
      "  end`; // trailing",
      "function f(x) {",
      "    return /* inline */ x / 2 / 3; // division, not a regex",
      "}",
      'const s = "/* in a string */", r = /a\\/\\/b/g;',
      "const m = /* @__PURE__ */ new Map();",
      "const y = 1 /* a",
      "b */",
      "f(2);",
      "",
    ].join("\n");
    expect(compact(src)).toBe(
      [
        "#!/usr/bin/env node",
        "const t = `a // not a comment",
        "    kept indentation",
        "",
        "  end`;",
        "function f(x) {",
        "return  x / 2 / 3;",
        "}",
        'const s = "/* in a string */", r = /a\\/\\/b/g;',
        "const m = /* @__PURE__ */ new Map();",
        "const y = 1",
        "f(2);",
        "",
      ].join("\n"),
    );
  });
});

describe("minifyKeepingAnnotations (tsup.config.ts): esbuild's whitespace minification, annotations kept", () => {
  it("keeps every @__PURE__ annotation, nested ones too, and the names", () => {
    const src = "#!/usr/bin/env node\nconst NAMES = /* @__PURE__ */ new Map(/* @__PURE__ */ Object.entries(CODES).map(([k, v]) => [v, k]));\nfunction lookup(code) {\n  return NAMES.get(code);\n}\nexport { lookup };\n";
    const out = minifyKeepingAnnotations(src);
    expect(out).toBe('#!/usr/bin/env node\nconst NAMES=/* @__PURE__ */ new Map(/* @__PURE__ */ Object.entries(CODES).map(([k,v])=>[v,k]));function lookup(code){return NAMES.get(code)}export{lookup};\n');
  });

  it("refuses a module that already holds the stand-in", () => {
    expect(() => minifyKeepingAnnotations("const __tpmkit_pure__ = 1;\n")).toThrow(/__tpmkit_pure__/);
  });
});

describe("esmToCjs (tsup.config.ts): import and export statements become require and exports, the rest stays", () => {
  const run = (code: string, modules: Record<string, object>): Record<string, unknown> => {
    const exports: Record<string, unknown> = {};
    new Function("exports", "require", esmToCjs(code, "m.js"))(exports, (spec: string) => {
      if (!(spec in modules)) throw new Error(`unexpected require ${spec}`);
      return modules[spec];
    });
    return exports;
  };

  it("converts the forms esbuild writes and leaves every other statement byte for byte", () => {
    const body = 'const twice=x=>double(x)*2/2;class Tpm{open(){return ns.y+1}}';
    const code = `import{double,other as o}from"./a.js";import*as ns from"./b.js";${body}export{Tpm,twice as quadruple};export{z as zed}from"./c.js";export*from"./d.js";`;
    const cjs = esmToCjs(code, "m.js");
    expect(cjs).toContain(body);
    expect(cjs.startsWith('"use strict";')).toBe(true);
    const m = run(code, { "./a.js": { double: (x: number) => 2 * x, other: 0 }, "./b.js": { y: 41 }, "./c.js": { z: "z" }, "./d.js": { d: 4, Tpm: "shadowed", default: "no" } });
    expect(Object.keys(m).sort()).toEqual(["Tpm", "d", "quadruple", "zed"]);
    expect((m.quadruple as (x: number) => number)(3)).toBe(6);
    expect(new (m.Tpm as new () => { open(): number })().open()).toBe(42);
    expect([m.zed, m.d, m.__esModule]).toEqual(["z", 4, true]);
  });

  it("refuses what it has no exact CommonJS form for", () => {
    expect(() => esmToCjs('import x from "./a.js";x();', "m.js")).toThrow(/m\.js: a default or type import/);
    expect(() => esmToCjs("export const a = 1;", "m.js")).toThrow(/m\.js: an exported declaration/);
    expect(() => esmToCjs("export default 1;", "m.js")).toThrow(/m\.js: export default/);
  });
});

describe("package.json metadata and checks", () => {
  it("has keywords and an author, and publishes dist/, the README and the licence only", () => {
    expect(pkg.keywords?.length).toBeGreaterThan(3);
    expect(pkg.keywords).toContain("tpm2");
    expect(pkg.author).toBeTruthy();
    expect(pkg.files).toEqual(["dist", "README.md", "LICENSE"]);
  });

  it("CI runs the tarball check", () => {
    expect(pkg.scripts["pack:check"]).toMatch(/node bench\/pack\.mjs/);
    expect(readFileSync(resolve(ROOT, ".ci/run"), "utf8")).toMatch(/^step npm run pack:check\b/m);
  });
});

describe("examples run with one command", () => {
  const example = (...args: string[]) => spawnSync(process.execPath, [resolve(ROOT, "examples/run.mjs"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });

  it("npm run example -- tis builds and runs examples/tis.ts on plain Node", () => {
    const run = example("tis");
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout.split("\n")[0]).toBe("TIS device: did 0x0001 vid 0x1014 rid 1, TPM 2.0");
    expect(run.stdout).toContain("PCR 17 at locality 0: refused, TPM_RC_LOCALITY\n");
  });

  it.each(readdirSync(resolve(ROOT, "examples")).filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3)))("npm run example -- %s exits 0 and prints", (name) => {
    const run = example(name);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout.trim().length).toBeGreaterThan(0);
  });

  it("without a name it lists every example; an unknown name is a usage error", () => {
    const list = example();
    expect(list.status).toBe(0);
    const names = readdirSync(resolve(ROOT, "examples")).filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3));
    for (const n of names) expect(list.stdout).toContain(`  ${n}\n`);
    const bad = example("nope");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('no example named "nope"');
  });
});
