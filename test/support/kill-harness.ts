/**
 * What the kill -9 tests share: the child process bundled once (esbuild, so `npm test` on a fresh
 * clone needs no dist/ and no TypeScript loader), a scratch directory, a seeded PRNG for the kill
 * points (a failing run replays with TPMKIT_SOAK_SEED), and the kill count (TPMKIT_SOAK_KILLS
 * raises it for a soak).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

/** A scratch directory with the child `test/support/<childSource>` bundled into it as child.mjs. */
export async function bundleChild(childSource: string, prefix: string): Promise<{ dir: string; child: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const child = join(dir, "child.mjs");
  await build({ entryPoints: [join(ROOT, "test/support", childSource)], bundle: true, platform: "node", format: "esm", target: "node20", outfile: child, logLevel: "silent" });
  return { dir, child, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** How many kills: at least `min`, more with TPMKIT_SOAK_KILLS. */
export function killCount(min: number): number {
  return Math.max(min, Number(process.env.TPMKIT_SOAK_KILLS ?? 0) || 0);
}

/** xorshift32, seeded, so a failing run can be replayed. Returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
