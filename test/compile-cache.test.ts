// bin/compile-cache.js: Node's compile cache only in a folder of this user's own, never one another user
// could have made first (a planted cache is code this process would run).
import { execFile } from "node:child_process";
import { chmod, chown, mkdir, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { testFolder } from "./support/test-folder.ts";

const MODULE = fileURLToPath(new URL("../bin/compile-cache.js", import.meta.url));
const run = promisify(execFile);

/**
 * Calls enablePrivateCompileCache in a fresh node with `env` (and `uid` as this user's, when given) and an
 * `enable` that records its folder, as Node 22's would take it: what it returned and what it enabled.
 */
async function enableWith(
  env: Record<string, string>,
  uid?: number,
): Promise<{ returned: string | null; enabled: string[] }> {
  const script =
    `const { enablePrivateCompileCache } = await import(${JSON.stringify(MODULE)});\n` +
    `const enabled = [];\n` +
    `const returned = enablePrivateCompileCache(process.env, (dir) => enabled.push(dir), ${uid ?? "process.getuid()"});\n` +
    `console.log(JSON.stringify({ returned, enabled }));\n`;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  return JSON.parse(stdout) as { returned: string | null; enabled: string[] };
}

describe("the CLI's compile cache", () => {
  it("is kept in a 0700 folder of the user's cache", async () => {
    const home = await testFolder("dwop-cc-");
    const dir = join(home, ".cache", "dwop", "node-compile-cache");
    expect(await enableWith({ HOME: home })).toEqual({ returned: dir, enabled: [dir] });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const xdg = join(home, "xdg");
    expect((await enableWith({ HOME: home, XDG_CACHE_HOME: xdg })).enabled).toEqual([
      join(xdg, "dwop", "node-compile-cache"),
    ]);
  });

  it("is not used in a folder another user owns, others may write to, or a link points to", async () => {
    const home = await testFolder("dwop-cc-");
    const dwop = join(home, ".cache", "dwop");
    const dir = join(dwop, "node-compile-cache");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const me = process.getuid!();
    // Made by someone else: judged as a user of another uid would judge it.
    expect(await enableWith({ HOME: home }, me + 1)).toEqual({ returned: null, enabled: [] });
    await chmod(dir, 0o777);
    expect(await enableWith({ HOME: home })).toEqual({ returned: null, enabled: [] });
    await chmod(dir, 0o700);
    await chmod(dwop, 0o775);
    expect(await enableWith({ HOME: home })).toEqual({ returned: null, enabled: [] });
    await chmod(dwop, 0o700);
    expect((await enableWith({ HOME: home })).enabled).toEqual([dir]);

    const other = await testFolder("dwop-cc-");
    const planted = join(other, ".cache", "dwop");
    await mkdir(planted, { recursive: true, mode: 0o700 });
    await symlink(await testFolder("dwop-cc-"), join(planted, "node-compile-cache"));
    expect(await enableWith({ HOME: other })).toEqual({ returned: null, enabled: [] });
  });

  it.runIf(process.getuid?.() === 0)("as root, is not used in a folder another user made", async () => {
    const home = await testFolder("dwop-cc-");
    const dir = join(home, ".cache", "dwop", "node-compile-cache");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chown(dir, 65534, 65534); // nobody
    expect(await enableWith({ HOME: home })).toEqual({ returned: null, enabled: [] });
  });

  it("leaves NODE_COMPILE_CACHE and NODE_DISABLE_COMPILE_CACHE to Node, and goes without on a relative cache path", async () => {
    const home = await testFolder("dwop-cc-");
    expect(await enableWith({ HOME: home, NODE_COMPILE_CACHE: join(home, "c") })).toEqual({
      returned: null,
      enabled: [],
    });
    expect(await enableWith({ HOME: home, NODE_DISABLE_COMPILE_CACHE: "1" })).toEqual({
      returned: null,
      enabled: [],
    });
    expect(await enableWith({ HOME: home, XDG_CACHE_HOME: "relative" })).toEqual({
      returned: null,
      enabled: [],
    });
  });
});
