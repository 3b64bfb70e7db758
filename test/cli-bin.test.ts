/**
 * Issue 8, point 6 (CLI parts): the built bin works when reached through a symlink (npm's bin link,
 * `node_modules/.bin/tpmkit`, or any link a user makes), and `--version` is read from package.json
 * at run time, not written into the code. Builds dist/ with tsup first when it is older than src/.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const bin = path.join(root, "dist", "cli", "main.js");

/** Newest modification time of the .ts files under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith(".ts")) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

/** The environment of a child run: no TCTI variables, so only -T picks the TPM. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TPM2TOOLS_TCTI;
  delete env.TCTI;
  return env;
}

beforeAll(() => {
  const stale = !fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest(path.join(root, "src"));
  if (stale) execFileSync("npx", ["tsup"], { cwd: root, stdio: "ignore", timeout: 240_000 });
}, 300_000);

describe("the tpmkit bin", () => {
  it("runs through a symlink, whatever the link is called", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-bin-"));
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };
      for (const name of ["tpm", "tpmkit"]) {
        const link = path.join(dir, name);
        fs.symlinkSync(bin, link);
        const v = await run(link, ["--version"], { env: childEnv(), timeout: 30_000 });
        expect(v.stdout).toBe(`${pkg.version}\n`);
        const r = await run(process.execPath, [link, "getrandom", "8", "--hex", "-T", "memory"], { env: childEnv(), timeout: 30_000 });
        expect(r.stdout).toMatch(/^[0-9a-f]{16}\n$/);
        expect(r.stderr).toMatch(/^tpmkit: emulated TPM/);
        const d = await run(link, ["demo"], { env: childEnv(), timeout: 30_000 });
        expect(d.stdout).toMatch(/^tpmkit demo: SoftTpm/);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("reads its version from the package.json of the package it is in, at run time", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpmkit-version-"));
    try {
      // A copy of the package with another version, its bin reached through npm's bin link.
      const pkgDir = path.join(dir, "node_modules", "tpmkit");
      fs.mkdirSync(pkgDir, { recursive: true });
      fs.cpSync(path.join(root, "dist"), path.join(pkgDir, "dist"), { recursive: true });
      const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as Record<string, unknown>;
      fs.writeFileSync(path.join(pkgDir, "package.json"), JSON.stringify({ ...pkg, version: "9.8.7-test.1" }));
      for (const dep of Object.keys((pkg.dependencies as Record<string, string>) ?? {})) {
        const target = path.join(dir, "node_modules", dep);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.symlinkSync(path.join(root, "node_modules", dep), target);
      }
      fs.mkdirSync(path.join(dir, "node_modules", ".bin"));
      const link = path.join(dir, "node_modules", ".bin", "tpmkit");
      fs.symlinkSync(path.join("..", "tpmkit", "dist", "cli", "main.js"), link);
      const v = await run(link, ["--version"], { env: childEnv(), timeout: 30_000 });
      expect(v.stdout).toBe("9.8.7-test.1\n");
      const help = await run(link, ["--help"], { env: childEnv(), timeout: 30_000 });
      expect(help.stdout).toMatch(/^tpmkit 9\.8\.7-test\.1:/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
