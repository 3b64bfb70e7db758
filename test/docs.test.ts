/**
 * The documentation matches the package: the guides in docs/ are pages of the typedoc site, every
 * relative link in them and in README.md leads to a page of that site (and to a heading that
 * exists), no TSDoc comment (which ends up in the published .d.ts) points at a repository file the
 * package does not ship, `typedoc` builds the site without a warning, and the snippets that are
 * complete programs type-check as a user's strict TypeScript would (test/examples.test.ts runs them).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { SUBPATHS } from "../tsup.config.js";
import { ROOT, docSnippets, guidePages, resolvePackage, sitePages } from "./support/doc-snippets.js";

const typedocConfig = JSON.parse(readFileSync(join(ROOT, "typedoc.json"), "utf8")) as {
  readme?: string;
  projectDocuments?: string[];
  treatWarningsAsErrors?: boolean;
};

/** A glob of typedoc's `projectDocuments` (only `*` within one path segment is used) as a RegExp. */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/^\.\//, "")
    .split("*")
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]*");
  return new RegExp(`^${body}$`);
}

/** GitHub's anchor for a heading (typedoc's anchors agree for the headings used here). */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchorsOf(page: string): Set<string> {
  const text = readFileSync(join(ROOT, page), "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1]!)));
}

/** Markdown links `[text](target)` outside code blocks, with the line they are on. */
function linksOf(page: string): { target: string; line: number }[] {
  const text = readFileSync(join(ROOT, page), "utf8");
  const out: { target: string; line: number }[] = [];
  const blanked = text.replace(/```[\s\S]*?```/g, (block) => block.replace(/[^\n]/g, " "));
  for (const m of blanked.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    out.push({ target: m[1]!, line: text.slice(0, m.index).split("\n").length });
  }
  return out;
}

describe("the docs site", () => {
  it("typedoc includes every guide in docs/ and the README as its index page", () => {
    expect(typedocConfig.readme).toBe("README.md");
    const globs = (typedocConfig.projectDocuments ?? []).map(globToRegExp);
    const missing = guidePages().filter((p) => !globs.some((g) => g.test(p)));
    expect(missing, "guides not in typedoc.json projectDocuments").toEqual([]);
  });

  it("`npm run docs` fails on a warning", () => {
    expect(typedocConfig.treatWarningsAsErrors).toBe(true);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts["docs"]).toMatch(/^typedoc\b/);
  });

  it("every relative link in README.md and docs/ leads to a page of the site, and every #anchor to a heading on it", () => {
    const pages = new Set(sitePages());
    const bad: string[] = [];
    for (const page of sitePages()) {
      for (const { target, line } of linksOf(page)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [path, anchor] = target.split("#") as [string, string | undefined];
        const file = path === "" ? page : relative(ROOT, resolve(ROOT, dirname(page), path)).replaceAll("\\", "/");
        const where = `${page}:${line} ${target}`;
        if (!existsSync(join(ROOT, file))) bad.push(`${where}: no such file`);
        // an image next to the guides is copied into the site's media/ folder by typedoc
        else if (!pages.has(file) && !(/\.(svg|png)$/.test(file) && file.startsWith("docs/"))) bad.push(`${where}: ${file} is not a page of the site (not shipped, not in typedoc.json)`);
        else if (anchor !== undefined && !anchorsOf(file).has(anchor)) bad.push(`${where}: no heading #${anchor} in ${file}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe("paths in the docs", () => {
  it("every repository path a page names in code (`src/...`, `test/...`, ...) exists", () => {
    const bad: string[] = [];
    // folders .gitignore names (docs/api, dist, ...) are build outputs: named in the docs, absent from a clean checkout
    const generated = readFileSync(join(ROOT, ".gitignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.endsWith("/"))
      .map((l) => l.replace(/\/$/, ""));
    for (const page of sitePages()) {
      const text = readFileSync(join(ROOT, page), "utf8");
      for (const m of text.matchAll(/`(?:\.\.\/)*((?:src|test|bench|examples|docs|etc)\/[^`\s]*)`/g)) {
        const path = m[1]!;
        if (/[<*]/.test(path)) continue; // a pattern: src/transports/<name>/, src/*.ts
        if (generated.some((g) => path === g || path.startsWith(`${g}/`))) continue;
        if (!existsSync(join(ROOT, path))) bad.push(`${page}: ${path}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

/** Every `/** ... *\/` comment of the library's source (the CLI ships no declarations). */
function tsdocComments(): { file: string; line: number; text: string }[] {
  const out: { file: string; line: number; text: string }[] = [];
  const files = readdirSync(join(ROOT, "src"), { recursive: true, encoding: "utf8" })
    .map((f) => f.replaceAll("\\", "/"))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith("test-helpers.ts") && !f.startsWith("cli/"));
  for (const f of files) {
    const source = readFileSync(join(ROOT, "src", f), "utf8");
    for (const m of source.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
      out.push({ file: `src/${f}`, line: source.slice(0, m.index).split("\n").length, text: m[0] });
    }
  }
  return out;
}

/**
 * What in a comment points at a file of this repository: a relative link (markdown or {@link}), a
 * path under one of the repository's top-level folders that exists here, or a file name with a
 * TypeScript/markdown/module extension. Citations of other projects' files (Linux
 * drivers/char/tpm/tpm_tis_core.c, tpm2-tss src/tss2-tcti/tcti-device.c) are neither.
 */
export function repositoryReferences(comment: string): string[] {
  const text = comment.replace(/\bhttps?:\/\/\S+/g, "");
  const found: string[] = [];
  for (const m of text.matchAll(/\]\(([^)]*)\)/g)) found.push(m[0]);
  for (const m of text.matchAll(/\{@link(?:code|plain)?\s+(\.{1,2}\/[^}\s|]*)/g)) found.push(m[1]!);
  for (const m of text.matchAll(/(?<![\w./-])(?:\.{1,2}\/)*((?:src|test|docs|bench|examples|etc|dist|\.ci)\/[\w./-]*[\w])/g)) {
    if (existsSync(join(ROOT, m[1]!)) || /\.(?:ts|md|mjs|cjs|json)$/.test(m[1]!)) found.push(m[0]);
  }
  for (const m of text.matchAll(/(?<![\w./-])[\w-]+(?:\/[\w.-]+)*\.(?:ts|mts|cts|mjs|cjs|md)(?![\w])/g)) {
    if (!found.some((f) => f.endsWith(m[0]))) found.push(m[0]);
  }
  return found;
}

describe("TSDoc (the comments the published .d.ts carries)", () => {
  it("the reference finder sees repository files and relative links, not other projects' files", () => {
    expect(repositoryReferences("/** see `src/bus/poll.ts` and docs/decisions.md */")).toEqual(["src/bus/poll.ts", "docs/decisions.md"]);
    expect(repositoryReferences("/** [errors](../../docs/errors.md), {@link ./foo} */")).toEqual(["](../../docs/errors.md)", "./foo", "../../docs/errors.md"]);
    expect(repositoryReferences("/** the engine (state.ts, `start-ffa.ts`) and src/transports/tis */")).toEqual(["src/transports/tis", "state.ts", "start-ffa.ts"]);
    expect(repositoryReferences("/** Linux drivers/char/tpm/tpm_tis_core.c; tpm2-tss src/tss2-tcti/tcti-device.c; swtpm src/swtpm/mainloop.c */")).toEqual([]);
    expect(repositoryReferences("/** https://github.com/tpm2-software/tpm2-tss/blob/master/src/tss2-tcti/tctildr.c and {@link Tpm} */")).toEqual([]);
  });

  it("no comment in src/ points at a file the package does not ship", () => {
    const bad = tsdocComments().flatMap(({ file, line, text }) => repositoryReferences(text).map((r) => `${file}:${line}: ${r}`));
    expect(bad).toEqual([]);
  });
});

/** Every name the package exports, from the root or a subpath (the tsup entries behind package.json "exports"). */
function exportedNames(): Set<string> {
  const entries = Object.values(SUBPATHS).map((e) => join(ROOT, e));
  const program = ts.createProgram(entries, { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, noEmit: true });
  const checker = program.getTypeChecker();
  const names = new Set<string>();
  for (const e of entries) {
    const module = checker.getSymbolAtLocation(program.getSourceFile(e)!)!;
    for (const x of checker.getExportsOfModule(module)) names.add(x.name);
  }
  return names;
}

describe("names in the docs", () => {
  it("every tpmkit declaration a page names in code is one a user can import", { timeout: 60_000 }, () => {
    // declarations of the library (the CLI is not part of it); TPM command names, globals and
    // members are not declarations of this form, so they are not checked
    const declared = new Set<string>();
    for (const f of readdirSync(join(ROOT, "src"), { recursive: true, encoding: "utf8" })) {
      const path = f.replaceAll("\\", "/");
      if (!path.endsWith(".ts") || path.endsWith(".test.ts") || path.startsWith("cli/")) continue;
      for (const m of readFileSync(join(ROOT, "src", path), "utf8").matchAll(/^export (?:declare )?(?:abstract )?(?:interface|type|class|function|const|enum) (\w+)/gm)) declared.add(m[1]!);
    }
    const exported = exportedNames();
    const missing = new Set<string>();
    for (const page of sitePages()) {
      const text = readFileSync(join(ROOT, page), "utf8");
      for (const code of text.matchAll(/`([^`\n]+)`|```ts\n([\s\S]*?)```/g)) {
        // types, classes and constants (capitalized): lower-case names collide with members and helpers
        for (const w of (code[1] ?? code[2]!).matchAll(/\b[A-Z]\w*\b/g)) {
          if (declared.has(w[0]) && !exported.has(w[0])) missing.add(`${page}: ${w[0]}`);
        }
      }
    }
    expect([...missing]).toEqual([]);
  });
});

describe("the root's declarations", () => {
  it("name no type the root does not export (API report: no ae-forgotten-export)", () => {
    // etc/tpmkit.api.md is api-extractor's report on dist/index.d.ts, kept current by `npm run api:check`
    const report = readFileSync(join(ROOT, "etc/tpmkit.api.md"), "utf8");
    const forgotten = [...report.matchAll(/\(ae-forgotten-export\) The symbol "(\w+)"/g)].map((m) => m[1]);
    expect(forgotten).toEqual([]);
  });
});

describe("typedoc", () => {
  it("builds the site (API and guides) without a warning", { timeout: 180_000 }, () => {
    const bin = join(ROOT, "node_modules/typedoc/bin/typedoc");
    // typedoc.json's settings (treatWarningsAsErrors included), without writing the site
    const run = spawnSync(process.execPath, [bin, "--emit", "none"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    const output = `${run.stdout}${run.stderr}`;
    const warnings = output.split("\n").filter((l) => /\[(warning|error)\]/.test(l));
    expect(warnings).toEqual([]);
    expect(run.status, output).toBe(0);
  });
});

describe("snippets", () => {
  it("every snippet that imports the package type-checks under the project's strict settings", { timeout: 180_000 }, () => {
    const dir = join(ROOT, ".tmp", `doc-snippets-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      const files = docSnippets().map((s) => {
        // .mts: an ES module whatever the nearest package.json says, so top-level await is allowed
        const file = join(dir, `${s.page.replace(/[/.]/g, "_")}-${s.index}.mts`);
        writeFileSync(file, resolvePackage(s.source));
        return { file, name: `${s.page} #${s.index}` };
      });
      expect(files.length).toBeGreaterThan(0);
      const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
      const program = ts.createProgram(files.map((f) => f.file), { ...config.options, noEmit: true });
      const errors = files.flatMap(({ file, name }) =>
        ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => {
          const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
          return `${name}, line ${line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
        }),
      );
      expect(errors).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
