// Node-only: the names of a local executor's run folders, and the sweep of those a killed process left.
import { randomBytes } from "node:crypto";
import { readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { PID_NAMESPACE, processGone } from "./pids.ts";

/**
 * A run's folder name: its run id, the pid of the process that runs it (its workers die with that one) and
 * that pid's namespace, and a random part, so that it cannot be guessed (run ids are sequential and shown
 * by the API).
 */
export function runFolderName(runId: string): string {
  return `run-${runId}-p${process.pid}-n${PID_NAMESPACE}-${randomBytes(16).toString("hex")}`;
}

/** A run folder's name: its pid, and its pid namespace (none in the names of 2026-12-05, which are ours). */
const NAME = /^run-.+-p(\d+)(?:-n(\d+))?-[0-9a-f]{32}$/;

/** Whether the process named in a run folder's name is gone; false for another namespace's, or no such name. */
function ownerGone(name: string): boolean {
  const match = NAME.exec(name);
  return match !== null && processGone(Number(match[1]), match[2]);
}

/**
 * Removes the run folders in `root` whose process is gone: one killed mid-run (SIGKILL, the OOM killer)
 * never removes its own, and one in memory (/dev/shm) would take memory until the machine restarts. A
 * folder of a live process is left, as is one of a pid that was reused since (kept, not lost), one of
 * another pid namespace's process (which this one cannot see), and one named otherwise (an older
 * version's, say, or a dispatcher's own work root below `root`). Returns how many it removed; never throws.
 */
export async function sweepRunFolders(root: string): Promise<number> {
  const names = await readdir(root).catch(() => [] as string[]);
  const gone = names.filter(ownerGone);
  const removed = await Promise.all(
    gone.map((name) =>
      rm(join(root, name), { recursive: true, force: true }).then(
        () => 1,
        () => 0,
      ),
    ),
  );
  return removed.reduce((a: number, b) => a + b, 0);
}

/** How many entries a run's folder may hold to be removed at once, on the event loop. */
const REMOVED_AT_ONCE = 16;

/**
 * Removes a run's folder. One as a run leaves it (its worker's log and result, a few files) goes at once:
 * a listing, an unlink each and a rmdir, a few microseconds on the event loop, where `rm -r` took a round
 * trip through the thread pool for each of a dozen calls (a stat of each entry among them), on every task.
 * A folder with more entries, or a folder in it (a body without the sandbox writes in its folder), goes
 * through `rm -r` in the thread pool. Never throws.
 */
export async function removeRunFolder(dir: string): Promise<void> {
  try {
    const names = readdirSync(dir);
    if (names.length <= REMOVED_AT_ONCE) {
      for (const name of names) unlinkSync(join(dir, name));
      rmdirSync(dir);
      return;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
  }
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}
