// Node-only: making folders, and DWOP_HOME, without Node 20's recursive mkdir.
import { mkdirSync, statSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rmdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ConfigError } from "./config.ts";

// Node 20's `mkdir(path, { recursive: true })` (sync and async) never returns when a folder cannot be made
// although its parent exists: in /proc, mkdir answers ENOENT, and Node makes the parent and tries again,
// forever. `DWOP_HOME=/proc/x dwop run ...` hung so. These make the missing parents, then try once more.

/**
 * Makes `path` and its missing parents (each with `mode`), as `mkdir -p` does; an existing one is left.
 * Returns the folders it made, outermost first.
 */
export function makeFoldersSync(path: string, mode = 0o777): string[] {
  // Most calls find the folder there (a run's second object, the storage's temporary folder): a stat says
  // so where a mkdir would fail with an exception, which Node builds with its stack (~10-40 us apiece).
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return [];
  try {
    mkdirSync(path, { mode });
    return [path];
  } catch (err) {
    if (!missingParent(err, path)) {
      ignoreExisting(err);
      return [];
    }
    const made = makeFoldersSync(dirname(path), mode);
    try {
      mkdirSync(path, { mode }); // once: a second ENOENT is this folder's own
      return [...made, path];
    } catch (again) {
      ignoreExisting(again);
      return made;
    }
  }
}

/** makeFoldersSync, with fs/promises. */
export async function makeFolders(path: string, mode = 0o777): Promise<void> {
  try {
    await mkdir(path, { mode });
  } catch (err) {
    if (!missingParent(err, path)) return ignoreExisting(err);
    await makeFolders(dirname(path), mode);
    await mkdir(path, { mode }).catch(ignoreExisting); // once: a second ENOENT is this folder's own
  }
}

/**
 * Makes `path` with its missing parents, and makes it 0700 when it was there already: a folder of DWOP's
 * own (the tasks' stored code, inputs, outputs and logs, their runs' folders) that no other user of the
 * machine may enter, whatever the folder above lets them do.
 */
export async function makePrivateFolder(path: string): Promise<void> {
  await makeFolders(path, 0o700);
  await chmod(path, 0o700);
}

/**
 * Makes DWOP_HOME (`home`, absolute) with its missing parents (the home itself 0700: nobody else lists
 * it), and makes sure it is a folder DWOP can make folders in (its database, storage and runs go there);
 * throws a ConfigError saying which home and why not.
 */
export async function prepareHome(home: string, mode = 0o700): Promise<void> {
  try {
    await makeFolders(home, mode);
    if (!(await stat(home)).isDirectory()) throw new Error("not a folder");
    await rmdir(await mkdtemp(join(home, ".dwop-probe-"))); // a folder can be made in it
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigError([`DWOP_HOME: ${home} is not a folder DWOP can keep its files in: ${why}`]);
  }
}

function code(err: unknown): unknown {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function missingParent(err: unknown, path: string): boolean {
  return code(err) === "ENOENT" && dirname(path) !== path;
}

/** An existing folder is no failure (another process made it meanwhile, or it was there). */
function ignoreExisting(err: unknown): void {
  if (code(err) !== "EEXIST") throw err;
}
