import type { UnmarkedStart } from "../shared/db/store.ts";

/**
 * How long after a local run's start its mark (mark_runs_dispatched: running, its start time and job name)
 * waits for the run's end. A run that ends first is marked by the transaction that records its end: a
 * short task pays one transaction, not two (issue 12). Until then the run reads 'starting' and its task
 * 'dispatched', as they did for the mark's round trip before.
 */
export const MARK_AFTER_MS = 100;

interface Pending {
  jobName: string;
  /** performance.now() at the executor's start. */
  startedAt: number;
  timer: ReturnType<typeof setTimeout>;
  /** The mark in flight, once sent. */
  sending: Promise<void> | null;
}

/**
 * The marks of a process executor's runs, each sent MARK_AFTER_MS after its run started unless the run
 * ended before: then `take` hands its start to the recording of the end. A dispatcher that dies in between
 * leaves the run 'starting', as one that died before its mark did: its runs died with it, and they are
 * retried as lost.
 */
export class DeferredMarks {
  private readonly pending = new Map<string, Pending>();

  constructor(
    /** Sends one mark (batched by the caller); false when the run was no longer starting. */
    private readonly send: (mark: { runId: string; jobName: string }) => Promise<boolean>,
    /** A mark that failed: the run stays unmarked until its end is recorded with its start. */
    private readonly failed: (runId: string, err: unknown) => void,
    private readonly delayMs = MARK_AFTER_MS,
  ) {}

  /** The executor started the run as `jobName` just now. */
  add(runId: string, jobName: string): void {
    const timer = setTimeout(() => void this.flush(runId), this.delayMs);
    this.pending.set(runId, { jobName, startedAt: performance.now(), timer, sending: null });
  }

  /**
   * The run ended: its start, for the transaction that records the end to mark, unless its own mark has
   * committed (undefined). A mark still in flight is harmless beside it: the first to commit marks the run,
   * the other finds it no longer starting.
   */
  take(runId: string): UnmarkedStart | undefined {
    const p = this.pending.get(runId);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(runId);
    return { jobName: p.jobName, ranMs: performance.now() - p.startedAt };
  }

  /** Sends the run's mark now, if it has not committed (a failed run's end is recorded after its mark). */
  flush(runId: string): Promise<void> {
    const p = this.pending.get(runId);
    if (!p) return Promise.resolve();
    clearTimeout(p.timer);
    p.sending ??= this.send({ runId, jobName: p.jobName }).then(
      () => void (this.pending.get(runId) === p && this.pending.delete(runId)),
      (err: unknown) => {
        p.sending = null;
        this.failed(runId, err);
      },
    );
    return p.sending;
  }

  /** Forgets the run (killed, or the dispatcher stops): no mark is sent for it. */
  drop(runId: string): void {
    const p = this.pending.get(runId);
    if (p) clearTimeout(p.timer);
    this.pending.delete(runId);
  }

  /** Forgets every run. */
  clear(): void {
    for (const runId of [...this.pending.keys()]) this.drop(runId);
  }
}
