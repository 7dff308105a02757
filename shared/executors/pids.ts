// Node-only: whether a process of this machine is gone.

/**
 * Whether `pid` names another process of this machine (this pid namespace) that no longer runs: its
 * children died with it, so what it left may be cleaned up. Another user's live process counts as
 * running (EPERM); a pid reused since counts as running too, so its leavings are kept, not lost.
 */
export function processGone(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 1 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "EPERM";
  }
}
