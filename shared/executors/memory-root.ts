// Node-only: where a local executor keeps the folders of runs that hold only small files: in memory.
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, rmdirSync, statfsSync, type Stats } from "node:fs";
import { join, resolve } from "node:path";

/** Where Linux has a tmpfs open to every user (mode 1777: only a file's owner may remove it). */
const SHM = "/dev/shm";
const TMPFS_MAGIC = 0x01021994;

/** The start of the names of this user's memory roots. */
const ownPrefix = () => `dwop-runs-${process.getuid?.() ?? "x"}-`;

/**
 * The in-memory folder of `workRoot`'s runs: a folder of /dev/shm named for this user and the work root, so
 * every process that runs tasks in that work root (a dispatcher restarted, `dwop dev` again) uses the same
 * one. Pure: see memoryRoot for one that exists.
 */
export function memoryRootPath(workRoot: string, shm = SHM): string {
  const hash = createHash("sha256").update(resolve(workRoot)).digest("hex").slice(0, 16);
  return join(shm, `${ownPrefix()}${hash}`);
}

/**
 * memoryRootPath where /dev/shm is a tmpfs (made by ensureMemoryRoot), else null. The empty memory roots of
 * this user's that processes gone without closing left (a crash) are removed first: a process that uses
 * one makes it again when it needs it.
 */
export function memoryRoot(workRoot: string, shm = SHM): string | null {
  try {
    if (statfsSync(shm).type !== TMPFS_MAGIC) return null;
    for (const root of ownMemoryRoots(shm)) rmdirQuietly(root);
    const root = memoryRootPath(workRoot, shm);
    ensureMemoryRoot(root);
    return root;
  } catch {
    return null;
  }
}

/**
 * Every memory root of this user's in `shm` (of any work root: a home deleted after a crash left its own,
 * which no process of that home will sweep again); none where it is not a tmpfs.
 */
export function ownMemoryRoots(shm = SHM): string[] {
  try {
    if (statfsSync(shm).type !== TMPFS_MAGIC) return [];
    const names = readdirSync(shm).filter((n) => n.startsWith(ownPrefix()));
    return names.map((name) => join(shm, name)).filter(ownFolder);
  } catch {
    return [];
  }
}

/**
 * Makes the memory root (0700) unless it is there; whether it is this user's alone. Not (another user made
 * it first): the runs keep their folders on disk, since whoever owns the folder could swap a run's folder
 * in it for a link. Once it is, no other user can remove or replace it (/dev/shm is sticky).
 */
export function ensureMemoryRoot(root: string): boolean {
  // There already at every run but the first: an lstat, not a mkdir failing with an exception.
  const found = lstatSync(root, { throwIfNoEntry: false });
  if (found) return ownedFolder(found);
  try {
    mkdirSync(root, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") return false;
  }
  return ownFolder(root);
}

/** Removes an empty folder; leaves one that is not empty (or gone) as it is. */
export function rmdirQuietly(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // Not empty: in use.
  }
}

/** Whether path is a folder (not a link to one) of this user's that no other user may enter. */
function ownFolder(path: string): boolean {
  try {
    return ownedFolder(lstatSync(path));
  } catch {
    return false;
  }
}

/** Whether what lstat found is a folder (not a link to one) of this user's that no other user may enter. */
function ownedFolder(info: Stats): boolean {
  return info.isDirectory() && info.uid === process.getuid?.() && (info.mode & 0o077) === 0;
}
