// Node-only: whether a process of this machine is gone.
import { statSync } from "node:fs";

/**
 * This process's pid namespace (its inode number), which its pid belongs to: two processes of one pid in
 * two namespaces (a container and the machine it runs on) are told apart by it. Names that carry a pid
 * for processGone carry this too, so that another namespace's pid is never judged here.
 */
export const PID_NAMESPACE = pidNamespace();

function pidNamespace(): string {
  try {
    return String(statSync("/proc/self/ns/pid").ino);
  } catch {
    return "0"; // no /proc: the pid alone, as before
  }
}

/**
 * Whether `pid` names another process of this machine (this pid namespace) that no longer runs: its
 * children died with it, so what it left may be cleaned up. Another user's live process counts as
 * running (EPERM); a pid reused since counts as running too, so its leavings are kept, not lost.
 * `namespace`, the pid's namespace where the name that carries the pid says it (PID_NAMESPACE's form): a
 * pid of another namespace is never gone here, since this one cannot see it.
 */
export function processGone(pid: number, namespace?: string): boolean {
  if (namespace !== undefined && namespace !== PID_NAMESPACE) return false;
  if (!Number.isSafeInteger(pid) || pid <= 1 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "EPERM";
  }
}
