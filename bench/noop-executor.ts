import type { Executor, RunOutcome, StartedRun } from "../shared/executors/executor.ts";
import type { RunAssignment } from "../shared/model.ts";

/**
 * Benchmark-only: "runs" every attempt by reporting success on the next tick, so a benchmark measures
 * the orchestration (outbox, bus, SQL transitions) and nothing of Python.
 */
export class NoopExecutor implements Executor {
  readonly kind = "local" as const;
  readonly runsIn = "process" as const;
  private readonly listeners: ((run: RunAssignment, outcome: RunOutcome) => void)[] = [];
  private readonly held = new Set<string>();

  async start(run: RunAssignment): Promise<StartedRun> {
    this.held.add(run.runId);
    setImmediate(() => {
      this.held.delete(run.runId);
      for (const l of this.listeners) l(run, { kind: "succeeded" });
    });
    return { jobName: `noop-${run.runId}` };
  }

  async kill(runId: string): Promise<boolean> {
    return this.held.delete(runId);
  }

  active(): string[] {
    return [...this.held];
  }

  onFinished(listener: (run: RunAssignment, outcome: RunOutcome) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {}
}
