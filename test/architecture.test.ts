/**
 * The layering rules of docs/architecture.md, enforced: reads every import in `src/` and fails on an
 * arrow the rules do not allow (a driver importing a device model, the core importing a transport,
 * the wire format importing the core, ...). Type-only imports count too: a layer that needs another
 * layer's types depends on it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(__dirname, "../src");

/** The layer a file belongs to: `transports/<name>` and `devices/<name>` are one layer each. */
export function layerOf(file: string): string {
  const parts = relative(SRC, file).split(/[\\/]/);
  if (parts.length === 1) return parts[0] === "index.ts" ? "entry" : `root:${parts[0]}`;
  const [top, sub] = parts;
  if ((top === "transports" || top === "devices") && parts.length > 2) return `${top}/${sub}`;
  if (top === "devices") return "devices/shared";
  return top!;
}

/** Which layers each layer may import (besides itself). `*` stands for any `transports/x` or `devices/x`. */
const BELOW: Record<string, readonly string[]> = {
  errors: [],
  wire: ["errors"],
  core: ["errors", "wire"],
  bus: ["errors", "wire", "core"],
  node: ["errors", "wire", "core"],
  client: ["errors", "wire", "core"],
  softtpm: ["errors", "wire", "core", "node"],
  "transports/*": ["errors", "wire", "core", "bus", "node"],
  "devices/shared": ["errors", "wire", "core", "bus"],
  "devices/*": ["errors", "wire", "core", "bus", "devices/shared"],
  server: ["errors", "wire", "core", "node", "client"],
  testing: ["errors", "wire", "core", "bus", "node", "client", "softtpm", "transports/*", "devices/shared", "devices/*", "server"],
  platform: ["errors", "wire", "core", "bus", "node", "client", "softtpm", "transports/*", "devices/shared", "devices/*", "server"],
  cli: ["errors", "wire", "core", "bus", "node", "client", "softtpm", "transports/*", "devices/shared", "devices/*", "server", "platform"],
};

function ruleKey(layer: string): string {
  if (layer.startsWith("transports/")) return "transports/*";
  if (layer.startsWith("devices/") && layer !== "devices/shared") return "devices/*";
  return layer;
}

/** May a file in layer `from` import one in layer `to`? */
export function allowed(from: string, to: string): boolean {
  if (from === to || from === "entry") return true;
  const rules = BELOW[ruleKey(from)];
  if (!rules) return false;
  return rules.includes(to) || (rules.includes(ruleKey(to)) && ruleKey(to) !== ruleKey(from));
}

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["'](\.[^"']+)["']|import\(\s*["'](\.[^"']+)["']\s*\)/g;

/** The relative imports in `text` (the source of `file`), as layer arrows. */
export function edgesOf(file: string, text: string): { from: string; to: string; file: string; spec: string }[] {
  const edges: { from: string; to: string; file: string; spec: string }[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = (m[1] ?? m[2])!;
    const target = resolve(dirname(file), spec);
    edges.push({ from: layerOf(file), to: layerOf(target.endsWith(".js") ? target.replace(/\.js$/, ".ts") : target), file: relative(SRC, file), spec });
  }
  return edges;
}

/** Every relative import of every non-test file under src/, as layer arrows. */
export function importEdges(files = walk(SRC)): { from: string; to: string; file: string; spec: string }[] {
  return files.flatMap((file) => edgesOf(file, readFileSync(file, "utf8")));
}

describe("architecture: the import graph of src/", () => {
  const edges = importEdges();

  it("has every layer of src/ under a rule", () => {
    const layers = new Set(walk(SRC).map(layerOf));
    const unknown = [...layers].filter((l) => l !== "entry" && !BELOW[ruleKey(l)]);
    expect(unknown).toEqual([]);
  });

  it("reads the imports (the graph is not empty)", () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(edges.some((e) => e.from === "core" && e.to === "wire")).toBe(true);
  });

  it("has no arrow the layering rules forbid", () => {
    const bad = edges.filter((e) => !allowed(e.from, e.to)).map((e) => `${e.file} -> ${e.spec} (${e.from} -> ${e.to})`);
    expect(bad).toEqual([]);
  });

  it("would fail on a driver->device, device->driver, core->transport or wire->core import", () => {
    expect(allowed("transports/tis", "devices/tis")).toBe(false);
    expect(allowed("devices/crb", "transports/crb")).toBe(false);
    expect(allowed("core", "transports/memory")).toBe(false);
    expect(allowed("wire", "core")).toBe(false);
    expect(allowed("transports/tis", "transports/crb")).toBe(false);
    expect(allowed("devices/tis", "devices/crb")).toBe(false);
    expect(allowed("transports/crb", "softtpm")).toBe(false);
    expect(allowed("errors", "wire")).toBe(false);
    // and the scanner sees such arrows in source text, type-only and re-exports included
    const text = [
      'import { TisDevice } from "../../devices/tis/device.js";',
      'import type { SoftTpm } from "../../softtpm/softtpm.js";',
      'export { x } from "../memory/index.js";',
      'const m = await import("../../server/swtpm.js");',
      'import { Chip } from "../../core/chip.js";',
    ].join("\n");
    const edges = edgesOf(join(SRC, "transports/tis/example.ts"), text);
    expect(edges.map((e) => e.to)).toEqual(["devices/tis", "softtpm", "transports/memory", "server", "core"]);
    expect(edges.filter((e) => !allowed(e.from, e.to)).map((e) => e.to)).toEqual(["devices/tis", "softtpm", "transports/memory", "server"]);
  });
});
