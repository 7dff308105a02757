// Node-only: where a local executor keeps the folders of runs that hold only small files: in memory.
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, statfsSync } from "node:fs";
import { join, resolve } from "node:path";

/** Where Linux has a tmpfs open to every user (mode 1777: only a file's owner may remove it). */
const SHM = "/dev/shm";
const TMPFS_MAGIC = 0x01021994;

/**
 * The in-memory folder of `workRoot`'s runs: a folder of /dev/shm named for this user and the work root, so
 * every process that runs tasks in that work root (a dispatcher restarted, `dwop dev` again) uses the same
 * one. Pure: see memoryRoot for one that exists.
 */
export function memoryRootPath(workRoot: string, shm = SHM): string {
  const hash = createHash("sha256").update(resolve(workRoot)).digest("hex").slice(0, 16);
  return join(shm, `dwop-runs-${process.getuid?.() ?? "x"}-${hash}`);
}

/**
 * memoryRootPath made (0700) where /dev/shm is a tmpfs; null where it is not, or where the folder is not
 * this user's alone (another user made it first: runs then keep their folders on disk, since whoever owns
 * the folder could swap a run's folder in it for a link).
 */
export function memoryRoot(workRoot: string, shm = SHM): string | null {
  try {
    if (statfsSync(shm).type !== TMPFS_MAGIC) return null;
    const root = memoryRootPath(workRoot, shm);
    try {
      mkdirSync(root, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") return null;
    }
    return ownFolder(root) ? root : null;
  } catch {
    return null;
  }
}

/** Whether path is a folder (not a link to one) of this user's that no other user may enter. */
export function ownFolder(path: string): boolean {
  try {
    const info = lstatSync(path);
    return info.isDirectory() && info.uid === process.getuid?.() && (info.mode & 0o077) === 0;
  } catch {
    return false;
  }
}
