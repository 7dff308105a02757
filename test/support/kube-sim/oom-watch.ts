/**
 * Which containers the kernel OOM-killed, read from its log (/dev/kmsg) as cAdvisor does for the kubelet.
 * Podman with runc on a cgroup v1 host reports such a container as exit 137 with OOMKilled=false, and
 * the kill's counter lives in the container's own memory cgroup, which is gone by the time the exit is
 * seen; the kernel's `oom-kill:` line names that cgroup (`task_memcg=/.../libpod-<id>`) before the kill.
 */
import { closeSync, constants, openSync, readSync } from "node:fs";

const RECORD = Buffer.alloc(8192);

export class OomWatch {
  private fd: number | null = null;
  private unreadable = false;
  /** `task_memcg` paths of every OOM kill logged since start(). */
  private readonly killed: string[] = [];

  /** Opens the kernel log once and skips what it already holds. */
  start(): void {
    if (this.fd !== null || this.unreadable) return;
    try {
      this.fd = openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      this.unreadable = true;
      console.warn(
        `kube-sim: /dev/kmsg is not readable (${(err as Error).message}): an OOM-killed container shows as exit 137, reason Error`,
      );
      return;
    }
    this.drain(false);
  }

  /** Whether a process of the container with this id was OOM-killed (call after it exited). */
  killedIn(containerId: string): boolean {
    if (this.fd === null || !containerId) return false;
    this.drain(true);
    return this.killed.some((memcg) => memcg.endsWith(`/libpod-${containerId}`));
  }

  stop(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private drain(keep: boolean): void {
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd!, RECORD, 0, RECORD.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EPIPE") continue; // records were overwritten before we read them: go on from here
        if (code === "EAGAIN") return;
        throw err;
      }
      if (!keep) continue;
      const text = RECORD.subarray(0, n).toString("utf8");
      const memcg = text.includes("oom-kill:") ? /task_memcg=([^,\s]+)/.exec(text)?.[1] : undefined;
      if (memcg) this.killed.push(memcg);
    }
  }
}
