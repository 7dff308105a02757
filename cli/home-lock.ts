// A lock file that DWOP processes on one home take before they start, join, leave or stop its embedded
// PostgreSQL, so that no process joins a server another is stopping, and two starts never race.
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { processGone } from "../shared/executors/pids.ts";

/** A lock this process holds: release() gives it up (at once, synchronously). */
export interface HeldLock {
  release(): void;
}

/** How often a taker looks again while the lock is held. */
const RETRY_MS = 10;
/** A lock file still without a pid this long after it was made was left by a process killed while making it. */
const UNWRITTEN_STALE_MS = 2_000;

/**
 * Takes the lock at `path`, waiting while another live process holds it, up to `waitMs`; a lock whose
 * holder is gone (killed while holding it) is broken. Null when the wait ended first (`lockHolder` says who).
 */
export async function takeLock(path: string, waitMs: number): Promise<HeldLock | null> {
  for (const until = Date.now() + waitMs; ;) {
    const held = tryLock(path);
    if (held) return held;
    if (Date.now() >= until) return null;
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** takeLock without giving the event loop back: for a process's `exit` handler. */
export function takeLockNow(path: string, waitMs: number): HeldLock | null {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const until = Date.now() + waitMs; ;) {
    const held = tryLock(path);
    if (held) return held;
    if (Date.now() >= until) return null;
    Atomics.wait(pause, 0, 0, RETRY_MS);
  }
}

/** The pid in the lock file: who holds it (undefined: nobody, or a holder still writing it). */
export function lockHolder(path: string): number | undefined {
  const pid = Number.parseInt(readOr(path) ?? "", 10);
  return Number.isSafeInteger(pid) ? pid : undefined;
}

/** One try: the lock (made with O_EXCL, holding this process's pid), or null while a live process holds it. */
function tryLock(path: string): HeldLock | null {
  const token = `${process.pid} ${Math.random().toString(36).slice(2)}\n`;
  if (!createExclusive(path, token)) {
    breakIfStale(path);
    return null;
  }
  return {
    release() {
      // Ours still (a holder judged gone never is: its pid is this live process's).
      if (readOr(path) === token) unlinkQuietly(path);
    },
  };
}

/**
 * Removes the lock file when its holder is gone. The removal is itself done under a second lock
 * (`<path>.break`, held for a moment), so that two processes that both saw the same dead holder cannot
 * remove, the second time, the lock the first then took.
 */
function breakIfStale(path: string): void {
  const seen = readOr(path);
  if (seen === undefined || !isStale(path, seen)) return;
  const breaker = `${path}.break`;
  if (!createExclusive(breaker, `${process.pid}\n`)) {
    if (isStale(breaker, readOr(breaker) ?? "")) unlinkQuietly(breaker); // its taker was killed in that moment
    return;
  }
  try {
    if (readOr(path) === seen) unlinkQuietly(path);
  } finally {
    unlinkQuietly(breaker);
  }
}

/** Makes `path` (0600) holding `content`, unless it exists (false). */
function createExclusive(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Whether the lock file holding `content` was left by a process that is gone. */
function isStale(path: string, content: string): boolean {
  const pid = Number.parseInt(content, 10);
  if (Number.isSafeInteger(pid)) return processGone(pid);
  try {
    return Date.now() - statSync(path).mtimeMs > UNWRITTEN_STALE_MS;
  } catch {
    return false; // gone already
  }
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
