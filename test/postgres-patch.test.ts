// scripts/postgres-patch.mjs (postgres.js repaired for connections lost mid-statement, npm install's
// postinstall) and the check DWOP's server processes make at start (shared/db/postgres-patch.ts): with the
// patch missing, as `npm install --ignore-scripts` leaves it, they refuse to start and say how to apply it.
import { execFile } from "node:child_process";
import { cp, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BUILDS, EDITS, patchPostgres, postgresRoot, unpatchedFiles } from "../scripts/postgres-patch.mjs";
import { postgresPatchProblem } from "../shared/db/postgres-patch.ts";
import { copySources, ROOT } from "./support/checkout-copy.ts";
import { testFolder } from "./support/test-folder.ts";

/** A copy of the installed postgres.js in `folder` as npm ships it: every edit of the patch undone. */
async function unpatchedCopy(folder: string): Promise<string> {
  const copy = join(folder, "postgres");
  await cp(postgresRoot(), copy, { recursive: true });
  for (const build of BUILDS) {
    for (const [file, edits] of Object.entries(EDITS)) {
      const path = join(copy, build, file);
      let text = await readFile(path, "utf8");
      for (const [from, to] of edits) text = text.replace(to, from);
      await writeFile(path, text);
    }
  }
  return copy;
}

describe("postgres.js's patch", () => {
  it("is applied to the installed package, and the check finds nothing to say", () => {
    expect(unpatchedFiles(postgresRoot())).toEqual([]);
    expect(postgresPatchProblem()).toBeNull();
  });

  it("is found missing from a package as npm ships it, applied once, and then found", async () => {
    const copy = await unpatchedCopy(await testFolder("dwop-postgres-patch-"));
    const files = BUILDS.flatMap((build) => Object.keys(EDITS).map((file) => join(build, file)));
    expect(unpatchedFiles(copy)).toEqual(files);
    const problem = postgresPatchProblem(copy);
    expect(problem).toContain(`postgres.js in ${copy} is not patched (src/connection.js, src/index.js)`);
    expect(problem).toContain(`node ${join(ROOT, "scripts/patch-postgres.mjs")}`);
    expect(patchPostgres(copy)).toBe(files.length);
    expect(unpatchedFiles(copy)).toEqual([]);
    expect(postgresPatchProblem(copy)).toBeNull();
    expect(patchPostgres(copy)).toBe(0); // idempotent
  });

  // The sources of a checkout whose node_modules holds postgres.js unpatched (every other package linked):
  // `dwop run` and `dwop dispatcher` stop before they start anything, naming the fix.
  it("missing, keeps `dwop run` and `dwop dispatcher` from starting", async () => {
    const dir = await testFolder("dwop-unpatched-");
    await copySources(dir);
    await mkdir(join(dir, "node_modules"));
    for (const entry of await readdir(join(ROOT, "node_modules"))) {
      if (entry !== "postgres")
        await symlink(join(ROOT, "node_modules", entry), join(dir, "node_modules", entry));
    }
    await unpatchedCopy(join(dir, "node_modules"));
    const home = join(dir, "home");
    const dwop = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [join(dir, "bin/dwop.js"), ...args],
          { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, DWOP_HOME: home, ...env } },
          (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
        );
      });
    const run = await dwop(["run", "examples/etl.workflow"], {});
    expect(run.stderr).toContain(`dwop: postgres.js in ${join(dir, "node_modules/postgres")} is not patched`);
    expect(run.code).toBe(2);
    // Nothing started: no embedded database was made in the home.
    expect(await readdir(home).catch(() => [])).not.toContain("postgres");
    const dispatcher = await dwop(["dispatcher"], {
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
      DWOP_PUBLIC_URL: "http://127.0.0.1:1",
      DWOP_STORAGE_SECRET: "0123456789abcdef0123456789abcdef",
      DWOP_LOG_FORMAT: "json",
    });
    expect(dispatcher.stderr).toContain("is not patched");
    expect(dispatcher.code).toBe(2);
  }, 120_000);
});
