/**
 * The pages of the docs site and the TypeScript snippets on them that are complete programs, shared
 * by test/examples.test.ts (runs them) and test/docs.test.ts (type-checks them and checks links).
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { SUBPATHS } from "../../tsup.config.js";

export const ROOT = resolve(__dirname, "../..");

/** The guides: every markdown file under docs/ except typedoc's output (docs/api, git-ignored). */
export function guidePages(): string[] {
  return readdirSync(join(ROOT, "docs"), { recursive: true, encoding: "utf8" })
    .map((f) => f.replaceAll("\\", "/"))
    .filter((f) => f.endsWith(".md") && !f.startsWith("api/"))
    .map((f) => `docs/${f}`)
    .sort();
}

/** The pages of the site: the README (typedoc's index page) and the guides. */
export function sitePages(): string[] {
  return ["README.md", ...guidePages()];
}

/** An import statement (not in a comment) of the package or one of its subpaths. */
const IMPORTS_PACKAGE = /^\s*import\b[^;]*?\bfrom\s+"tpmkit(?:\/[\w-]+)?"/m;

export interface DocSnippet {
  /** The page, relative to the repository root. */
  page: string;
  /** 1-based among the page's runnable snippets. */
  index: number;
  /** As written on the page. */
  source: string;
}

/**
 * The ```ts blocks that are complete programs: those that import from "tpmkit" (or a
 * "tpmkit/<subpath>") and those that start with an import. Fragments (no import) are left out.
 */
export function docSnippets(): DocSnippet[] {
  const out: DocSnippet[] = [];
  for (const page of sitePages()) {
    const text = readFileSync(join(ROOT, page), "utf8");
    let index = 0;
    for (const m of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
      const source = m[1]!;
      if (!source.startsWith("import") && !IMPORTS_PACKAGE.test(source)) continue;
      index++;
      out.push({ page, index, source });
    }
  }
  return out;
}

/**
 * The snippet with `"tpmkit"` and `"tpmkit/<subpath>"` replaced by the absolute path of the barrel
 * behind that subpath (the tsup entries behind package.json "exports"), as `.js` (which resolves to
 * the `.ts` source under vitest and TypeScript's NodeNext rules). Throws on an unknown subpath.
 */
export function resolvePackage(code: string): string {
  return code.replace(/(from\s+|import\s*\(\s*)"tpmkit(?:\/([\w-]+))?"/g, (whole, head: string, sub: string | undefined) => {
    const entry = SUBPATHS[sub ?? "index"];
    if (entry === undefined) throw new Error(`${whole}: "tpmkit/${sub}" is not a subpath of the package`);
    return `${head}${JSON.stringify(join(ROOT, entry.replace(/\.ts$/, ".js")))}`;
  });
}
