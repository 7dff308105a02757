// The prebuilt bundle (bin/build-cli.ts, `npm run build`) and bin/dwop.js's choice between it and the
// sources. Each test builds into a copy of the checkout's sources in a temporary folder (node_modules
// linked), so the checkout's own dist/ is never rebuilt under a test running beside this one.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildBundle, type SourcesManifest } from "../bin/build-cli.ts";
import { copySources, ROOT } from "./support/checkout-copy.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

const DESCRIPTION = "Run Python workflows as reliable DAGs, on one laptop or on Kubernetes.";

let checkout: string | null = null;
let database: TestDatabase | null = null;

afterEach(async () => {
  if (checkout) await rm(checkout, { recursive: true, force: true });
  checkout = null;
  await database?.drop();
  database = null;
});

/** A copy of the sources the bundle is built from, with the checkout's node_modules and package.json. */
async function copyCheckout(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "dwop-bundle-"));
  checkout = dir;
  await copySources(dir);
  await symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

function dwop(dir: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [join(dir, "bin/dwop.js"), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: 110_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Changes the bundle's --help text, which none of its sources says: whoever prints it ran the bundle. */
async function markBundle(dir: string): Promise<void> {
  const entry = join(dir, "dist/dwop.mjs");
  const text = await readFile(entry, "utf8");
  expect(text).toContain(DESCRIPTION);
  await writeFile(entry, text.replace(DESCRIPTION, "FROM THE BUNDLE"));
}

describe("the dwop bundle", () => {
  it("runs while its sources are unchanged, and the sources run once one changed or it is gone", async () => {
    const dir = await copyCheckout();
    const manifest: SourcesManifest = await buildBundle({ root: dir });
    expect(manifest.sources.map(([p]) => p)).toEqual(
      expect.arrayContaining(["cli/main.ts", "shared/config.ts"]),
    );
    await markBundle(dir);

    const fresh = await dwop(dir, ["--help"]);
    expect(fresh).toMatchObject({ code: 0, stderr: "" });
    expect(fresh.stdout).toContain("FROM THE BUNDLE");

    // Same size, another mtime: an edit that kept the length, or a checkout of another branch.
    const later = new Date(Date.now() + 5_000);
    await utimes(join(dir, "shared/dsl/errors.ts"), later, later);
    const touched = await dwop(dir, ["--help"]);
    expect(touched.code).toBe(0);
    expect(touched.stdout).toContain(DESCRIPTION);

    await buildBundle({ root: dir });
    await markBundle(dir);
    await writeFile(
      join(dir, "cli/main.ts"),
      (await readFile(join(dir, "cli/main.ts"), "utf8")).replace(DESCRIPTION, "EDITED SOURCE"),
    );
    const edited = await dwop(dir, ["--help"]);
    expect(edited.code).toBe(0);
    expect(edited.stdout).toContain("EDITED SOURCE");

    await rm(join(dir, "dist"), { recursive: true });
    const none = await dwop(dir, ["--help"]);
    expect(none.stdout).toContain("EDITED SOURCE");
  }, 120_000);

  it("runs a workflow: the migrations and the Python worker are found from the bundle's folder", async () => {
    const dir = await copyCheckout();
    await buildBundle({ root: dir });
    await markBundle(dir); // the run below must be the bundle's
    expect((await dwop(dir, ["--help"])).stdout).toContain("FROM THE BUNDLE");
    database = await createTestDatabase("cli_bundle_run");
    const home = join(dir, "home");
    await mkdir(home);
    const r = await dwop(dir, ["run", join(ROOT, "examples/etl.workflow")], {
      DATABASE_URL: database.url,
      DWOP_HOME: home,
    });
    expect(r.stderr).toContain("succeeded");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Loading: LISBON 69.8F");
  }, 120_000);
});
