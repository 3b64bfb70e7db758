import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { transformSync } from "esbuild";
import { defineConfig, type Options } from "tsup";
import ts from "typescript";

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
  "ftpm-tee": "src/transports/ftpm-tee/index.ts",
  // one per device family
  "tis-device": "src/devices/tis/index.ts",
  "crb-device": "src/devices/crb/index.ts",
  optee: "src/devices/optee/index.ts",
};

/**
 * No source maps (docs/decisions.md, "The package: CJS that bundles what it requires, ..."):
 * the build keeps every identifier and line break, so a stack trace into dist/ names its functions and classes
 * as they are named in src/; a map without its sources would send a debugger to src/ files the
 * package does not ship, and with the sources inlined the maps were 3.2 MB of the 4.9 MB unpacked
 * tarball.
 */
const SOURCEMAP = false;

/**
 * Every JavaScript output is compacted (the `compact` plugin below: comments go) and then
 * whitespace-minified by esbuild (minifyKeepingAnnotations). Names and statements stay as esbuild
 * wrote them (no identifier or syntax minification), so a stack trace into dist/ names its functions
 * and classes as src/ does; it points at a column of a long line rather than at a line of its own
 * (the price of the issue-8 budget). The `@__PURE__` annotations an application's bundler needs for
 * tree-shaking stay too: esbuild's `minifyWhitespace` drops them, so they are carried through it
 * (docs/decisions.md, "The package: compacted JavaScript, CJS one file per module"). The TSDoc lives
 * on in the declarations (dist/*.d.cts, untouched), which is where editors read it.
 */
const compactPlugin: NonNullable<Options["plugins"]>[number] = {
  name: "tpmkit-compact",
  renderChunk(code, info) {
    if (!/\.c?js$/.test(info.path)) return undefined;
    return { code: minifyKeepingAnnotations(compact(code)) };
  },
};

/** Stands in for a `@__PURE__` annotation while esbuild minifies (see minifyKeepingAnnotations). */
const PURE_MARK = "__tpmkit_pure__";
const PURE_COMMENT = /\/\*\s*[#@]__PURE__\s*\*\/\s*/g;

/**
 * esbuild's whitespace minification of a compacted module, identifiers and statements untouched,
 * with every `@__PURE__` annotation kept. esbuild drops those annotations when it minifies, so each
 * one becomes `__tpmkit_pure__+` (an expression prefix esbuild prints back as it is) for the
 * minification and the annotation again afterwards; a count that differs fails the build.
 * docs/decisions.md, "The package: compacted JavaScript, CJS one file per module", says why the
 * package minifies whitespace (the issue-8 budget) and why the annotations matter.
 */
export function minifyKeepingAnnotations(code: string): string {
  const shebang = code.startsWith("#!") ? code.slice(0, code.indexOf("\n") + 1) : "";
  const body = code.slice(shebang.length);
  if (body.includes(PURE_MARK)) throw new Error(`tsup.config.ts: ${PURE_MARK} already in the module`);
  const annotations = body.match(PURE_COMMENT)?.length ?? 0;
  const marked = body.replace(PURE_COMMENT, `${PURE_MARK}+`);
  const minified = transformSync(marked, { loader: "js", minifyWhitespace: true, legalComments: "inline", target: "node20" }).code;
  const out = minified.replace(new RegExp(`${PURE_MARK}\\s*\\+\\s*`, "g"), "/* @__PURE__ */ ");
  const kept = out.match(PURE_COMMENT)?.length ?? 0;
  if (kept !== annotations || out.includes(PURE_MARK)) throw new Error(`tsup.config.ts: ${annotations} @__PURE__ annotations before minifying, ${kept} after`);
  return `${shebang}${out}`;
}

/** Comments the compacted output keeps: bundler annotations and licence notices. */
const KEPT_COMMENT = /^\/\*\s*[#@]__(PURE|NO_SIDE_EFFECTS)__\s*\*\/$|^\/\*!|@license|@preserve/;

/**
 * Drops the comments (but {@link KEPT_COMMENT}), the indentation and the blank lines of an
 * esbuild output module. The TypeScript parser finds the comments (so `//` inside a string, a
 * template or a regular expression is never taken for one) and the literals, whose lines are left
 * as they are; a removed comment that spans lines leaves a line break (it may end a statement), one
 * between two tokens a space.
 */
export function compact(code: string): string {
  const shebang = code.startsWith("#!") ? code.slice(0, code.indexOf("\n") + 1) : "";
  const text = code.slice(shebang.length);
  const drop = new Uint8Array(text.length);
  const replacement = new Map<number, string>();
  const seen = new Set<number>();
  const literals = (source: string): [number, number][] => {
    const sf = ts.createSourceFile("module.js", source, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
    const spans: [number, number][] = [];
    const walk = (node: ts.Node): void => {
      if (ts.isJSDoc(node)) return;
      const children = node.getChildren(sf);
      if (children.length > 0) return children.forEach(walk);
      if (source === text && !seen.has(node.pos)) {
        seen.add(node.pos);
        for (const r of [...(ts.getTrailingCommentRanges(text, node.pos) ?? []), ...(ts.getLeadingCommentRanges(text, node.pos) ?? [])]) {
          const comment = text.slice(r.pos, r.end);
          if (KEPT_COMMENT.test(comment)) continue;
          drop.fill(1, r.pos, r.end);
          if (comment.includes("\n")) replacement.set(r.pos, "\n");
          else if (r.pos > 0 && /\S/.test(text[r.pos - 1]!) && r.end < text.length && /\S/.test(text[r.end]!)) replacement.set(r.pos, " ");
        }
      }
      if (node.kind >= ts.SyntaxKind.FirstLiteralToken && node.kind <= ts.SyntaxKind.LastTemplateToken) spans.push([node.getStart(sf), node.end]);
    };
    walk(sf);
    return spans.sort((x, y) => x[0] - y[0]);
  };
  const inside = (spans: [number, number][], at: number): boolean => spans.some(([start, end]) => start < at && at < end);
  const spans = literals(text);
  for (let at = 0; at < text.length; ) {
    if (!inside(spans, at)) for (let i = at; i < text.length && (text[i] === " " || text[i] === "\t"); i++) drop[i] = 1;
    const nl = text.indexOf("\n", at);
    if (nl < 0) break;
    at = nl + 1;
  }
  let out = "";
  for (let i = 0; i < text.length; i++) out += drop[i] ? (replacement.get(i) ?? "") : text[i];
  const kept = literals(out);
  const lines: string[] = [];
  let offset = 0;
  for (const line of out.split("\n")) {
    if (line.trim() !== "" || inside(kept, offset)) lines.push(line.trimEnd() === line || inside(kept, offset + line.length) ? line : line.trimEnd());
    offset += line.length + 1;
  }
  return `${shebang}${lines.join("\n")}\n`;
}

/**
 * An ES module of the build, as CommonJS whose code is the ES module's own text: each `import`
 * becomes a `const { a, b: c } = require("...")` in the same place, the `export` lists
 * become getters on `exports` defined first (as esbuild's CommonJS output does), `export * from`
 * copies the other module's getters. Every other statement is left byte for byte as it is, so npm's
 * tarball (which puts `dist/cjs/x.js` beside `dist/x.js`) stores the CJS twin almost entirely as
 * references into the ES one. Reading an import once, at require time, is exact because the library
 * has no import cycle (test/package.test.ts checks) and exports no `let`: a required module has run
 * to its end before its importer reads it. Any other module form (a default import, `export`
 * on a declaration) fails the build rather than being converted by guess.
 */
export function esmToCjs(code: string, file: string): string {
  const sf = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const exported: string[] = [];
  const edits: [number, number, string][] = [];
  let n = 0;
  const fail = (what: string): never => {
    throw new Error(`tsup.config.ts: ${file}: ${what} has no CommonJS form in esmToCjs`);
  };
  const prop = (name: string): string => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name));
  for (const st of sf.statements) {
    const span = (text: string): void => void edits.push([st.getStart(sf), st.end, text]);
    if (ts.isImportDeclaration(st)) {
      const spec = (st.moduleSpecifier as ts.StringLiteral).text;
      const req = `require(${JSON.stringify(spec)})`;
      const clause = st.importClause;
      if (!clause) span(`${req};`);
      else if (clause.name || clause.isTypeOnly) fail("a default or type import");
      else if (clause.namedBindings && ts.isNamespaceImport(clause.namedBindings)) span(`const ${clause.namedBindings.name.text}=${req};`);
      else if (clause.namedBindings) {
        const parts = clause.namedBindings.elements.map((e) => (e.propertyName ? `${prop(e.propertyName.text)}:${e.name.text}` : e.name.text));
        span(`const{${parts.join(",")}}=${req};`);
      }
    } else if (ts.isExportDeclaration(st)) {
      if (st.isTypeOnly) fail("a type export");
      const spec = st.moduleSpecifier ? (st.moduleSpecifier as ts.StringLiteral).text : undefined;
      const clause = st.exportClause;
      if (spec === undefined) {
        if (!clause || !ts.isNamedExports(clause)) fail("an export");
        for (const e of (clause as ts.NamedExports).elements) exported.push(`${prop(e.name.text)}:()=>${(e.propertyName ?? e.name).text}`);
        span("");
      } else {
        const local = `__tpmkit_re${n++}`;
        const req = `require(${JSON.stringify(spec)})`;
        if (!clause) span(`__tpmkit_star(${req});`);
        else if (ts.isNamespaceExport(clause)) {
          exported.push(`${prop(clause.name.text)}:()=>${local}`);
          span(`const ${local}=${req};`);
        } else {
          for (const e of clause.elements) exported.push(`${prop(e.name.text)}:()=>${local}.${(e.propertyName ?? e.name).text}`);
          span(`const ${local}=${req};`);
        }
      }
    } else if (ts.canHaveModifiers(st) && ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) fail("an exported declaration");
    else if (ts.isExportAssignment(st)) fail("export default");
  }
  let out = code;
  for (const [start, end, text] of edits.sort((a, b) => b[0] - a[0])) out = out.slice(0, start) + text + out.slice(end);
  const star = out.includes("__tpmkit_star(")
    ? `const __tpmkit_star=m=>{for(const k of Object.keys(m))if(k!=="default"&&!Object.prototype.hasOwnProperty.call(exports,k))Object.defineProperty(exports,k,{get:()=>m[k],enumerable:true})};`
    : "";
  const header = `"use strict";Object.defineProperty(exports,"__esModule",{value:true});${exported.length ? `for(const[k,get]of Object.entries({${exported.join(",")}}))Object.defineProperty(exports,k,{get,enumerable:true});` : ""}${star}`;
  return `${header}${out}`;
}

/** For the CJS build: the ES module esbuild wrote for dist/cjs/, as CommonJS (esmToCjs). */
const cjsFromEsm: NonNullable<Options["plugins"]>[number] = {
  name: "tpmkit-cjs-from-esm",
  renderChunk(code, info) {
    if (!/\.js$/.test(info.path)) return undefined;
    return { code: esmToCjs(code, info.path) };
  },
};

/** The CLI's entry; it gets the `#!` line unless its source already starts with one. */
const CLI_MAIN = "src/cli/main.ts";

/** Where the CJS build goes, under dist/ (see CONFIGS.cjs). */
const CJS_DIR = "cjs";
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
 * Every library module, for the CJS build: `cjs/<path>` (output dist/cjs/<path>.js) for each
 * src/<path>.ts but tests, test helpers and the CLI (the bin is an ES module).
 */
const LIBRARY: Record<string, string> = Object.fromEntries(
  (readdirSync("src", { recursive: true, encoding: "utf8" }) as string[])
    .map((f) => f.split(sep).join("/"))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !/\.test\.ts$|(^|\/)test-helpers\.ts$|^cli\//.test(f))
    .sort()
    .map((f) => [`${CJS_DIR}/${f.slice(0, -3)}`, `src/${f}`]),
);

/** The @noble/hashes modules the library imports; the CJS build's copy of them goes to NOBLE_DIR. */
const NOBLE_MODULES = ["hmac", "legacy", "sha2"] as const;
const NOBLE_DIR = `${CJS_DIR}/vendor/noble-hashes`;
/**
 * The @noble/curves modules the library imports (SoftTpm's ECC) and the names it imports from each;
 * the CJS build's copy of each goes to CURVES_DIR as one bundled file holding only those names
 * (with the hash code they need inside, so it loads no ES module). A name the library starts to
 * import must be added here: the copy has no other.
 */
const CURVES_EXPORTS = { nist: ["p256", "p384"] } as const;
const CURVES_MODULES = Object.keys(CURVES_EXPORTS);
const CURVES_DIR = `${CJS_DIR}/vendor/noble-curves`;

/**
 * The entry of each @noble/curves copy re-exports only the names in CURVES_EXPORTS, so esbuild
 * leaves out the rest of the module (nist.js also carries FROST, OPRF and hash-to-curve: 34 KB
 * gzipped bundled whole, 21 KB with p256 and p384 alone).
 */
const curvesSubset: NonNullable<Options["esbuildPlugins"]>[number] = {
  name: "tpmkit-curves-subset",
  setup(b) {
    b.onResolve({ filter: /@noble[\\/]curves[\\/][\w-]+\.js$/ }, (a) => {
      if (a.kind !== "entry-point") return undefined;
      return { path: a.path.replace(/^.*[\\/]([\w-]+)\.js$/, "$1"), namespace: "tpmkit-curves-subset" };
    });
    b.onLoad({ filter: /.*/, namespace: "tpmkit-curves-subset" }, (a) => {
      const names = (CURVES_EXPORTS as Record<string, readonly string[]>)[a.path];
      if (!names) throw new Error(`tsup.config.ts: no CURVES_EXPORTS entry for @noble/curves/${a.path}.js`);
      return { contents: `export { ${names.join(", ")} } from "@noble/curves/${a.path}.js";`, resolveDir: process.cwd(), loader: "js" };
    });
  },
};

/**
 * For the CJS build: rewrites `require("@noble/hashes/<m>.js")` to the bundled copy (a relative
 * path from the module; relative requires stay as they are, dist/cjs/ mirrors src/ as dist/ does),
 * refuses any other package, then writes dist/cjs/package.json (`"type": "commonjs"`, so Node reads
 * the .js files there as CommonJS) and the one-line `require` entry of each subpath,
 * dist/<name>.cjs, which package.json "exports" names.
 */
const cjsModules: NonNullable<Options["plugins"]>[number] = {
  name: "tpmkit-cjs-modules",
  renderChunk(code, info) {
    const from = dirname(info.path);
    const out = code.replace(/require\("@noble\/hashes\/([\w-]+)\.js"\)/g, (_whole, m: string) => {
      if (!(NOBLE_MODULES as readonly string[]).includes(m)) throw new Error(`tsup.config.ts: ${info.path} requires @noble/hashes/${m}.js; add "${m}" to NOBLE_MODULES`);
      const rel = relative(from, join(this.options.outDir, NOBLE_DIR, `${m}.js`)).split(sep).join("/");
      return `require("${rel.startsWith(".") ? rel : `./${rel}`}")`;
    }).replace(/require\("@noble\/curves\/([\w-]+)\.js"\)/g, (_whole, m: string) => {
      if (!CURVES_MODULES.includes(m)) throw new Error(`tsup.config.ts: ${info.path} requires @noble/curves/${m}.js; add it to CURVES_EXPORTS`);
      const rel = relative(from, join(this.options.outDir, CURVES_DIR, `${m}.js`)).split(sep).join("/");
      return `require("${rel.startsWith(".") ? rel : `./${rel}`}")`;
    });
    if (/require\("(?!node:|\.)/.test(out)) throw new Error(`tsup.config.ts: ${info.path} requires a package the CJS build does not carry`);
    return { code: out };
  },
  buildEnd() {
    const outDir = this.options.outDir;
    mkdirSync(join(outDir, CJS_DIR), { recursive: true });
    writeFileSync(join(outDir, CJS_DIR, "package.json"), `{ "type": "commonjs" }\n`);
    for (const [name, source] of Object.entries(SUBPATHS)) {
      const target = `./${CJS_DIR}/${source.replace(/^src\//, "").replace(/\.ts$/, ".js")}`;
      writeFileSync(join(outDir, `${name}.cjs`), `"use strict";module.exports=require(${JSON.stringify(target)});\n`);
    }
  },
};

/**
 * The build, one config per output family (test/package.test.ts builds the JavaScript configs into
 * a temporary directory to check their shape).
 */
const CONFIGS = {
  /**
   * ESM: one output file per source module (dist/ mirrors src/), not bundled, compacted as above.
   * Together with "sideEffects": false in package.json this lets an application's bundler drop every module
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
    plugins: [compactPlugin, declarationStubs],
  },
  /** The bin, dist/cli/main.js: unbundled and compacted like the rest, with the `#!` line. */
  cli: {
    entry: { "cli/main": CLI_MAIN },
    format: ["esm"],
    bundle: false,
    sourcemap: SOURCEMAP,
    target: "node20",
    plugins: [compactPlugin],
    ...(CLI_SHEBANG ? { banner: CLI_SHEBANG } : {}),
  },
  /**
   * CJS: one output file per source module too, dist/cjs/ mirroring src/ (dist/cjs/client/tpm.js
   * next to dist/client/tpm.js; dist/cjs/package.json says `"type": "commonjs"`), so every subpath
   * shares one copy of each class (`require("tpmkit/swtpm").SwtpmControl` is the class
   * `require("tpmkit").swtpm` checks with instanceof; bench/dual.mjs checks it). esbuild writes
   * each module as ESM and `cjsFromEsm` (esmToCjs) turns only its import and export statements into
   * `require` and `exports`, so the CJS twin's code is the ESM file's text. npm packs files sorted
   * by extension, then file name, so the two copies of a module sit close together in the tarball
   * and gzip stores the second mostly as references to the first (docs/decisions.md, "The package:
   * compacted JavaScript, CJS one file per module"). The last plugin points @noble/hashes at the
   * bundled copy below and writes dist/<subpath>.cjs, the `require` entry package.json names.
   */
  cjs: {
    entry: LIBRARY,
    format: ["esm"],
    outExtension: () => ({ js: ".js" }),
    bundle: false,
    sourcemap: SOURCEMAP,
    target: "node20",
    plugins: [compactPlugin, cjsFromEsm, cjsModules],
  },
  /**
   * @noble/hashes and @noble/curves are ESM only, so the CJS build carries a bundled CommonJS
   * copy of the modules it uses (dist/cjs/vendor/noble-hashes/*.js and
   * dist/cjs/vendor/noble-curves/*.js, licence comment kept): `require("tpmkit")`
   * then loads no ES module at all and works where require(esm) does not (Node with
   * `--no-experimental-require-module`, Jest's module loader). docs/decisions.md says why.
   */
  noble: {
    entry: {
      ...Object.fromEntries(NOBLE_MODULES.map((m) => [`${NOBLE_DIR}/${m}`, `node_modules/@noble/hashes/${m}.js`])),
      ...Object.fromEntries(CURVES_MODULES.map((m) => [`${CURVES_DIR}/${m}`, `node_modules/@noble/curves/${m}.js`])),
    },
    format: ["cjs"],
    outExtension: () => ({ js: ".js" }),
    bundle: true,
    noExternal: [/^@noble\/(hashes|curves)(\/|$)/],
    esbuildPlugins: [curvesSubset],
    sourcemap: SOURCEMAP,
    target: "node20",
    plugins: [compactPlugin],
  },
  /** Declarations, one rolled-up file per subpath, in CJS form: dist/<name>.d.cts (see above). */
  dts: {
    entry: SUBPATHS,
    format: ["cjs"],
    dts: { only: true },
    target: "node20",
  },
} satisfies Record<string, Options>;

export default defineConfig([CONFIGS.esm, CONFIGS.cli, CONFIGS.cjs, CONFIGS.noble, CONFIGS.dts]);
