import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { runIdOf } from "../shared/executors/kubernetes/names.ts";
import { ACTIVE_RUN_STATES, type RunState } from "../shared/model.ts";

/** What a reconcile reads and does: the observer hands it these, and nothing else of itself. */
export interface ReconcileTarget {
  /** Active runs quiet for longer than the grace period (a Job of theirs should exist by now). */
  quietActiveRuns(): Promise<{ runId: string }[]>;
  /** DWOP's Jobs and their pods, listed afresh (not from the watch caches). */
  listJobs(): Promise<V1Job[]>;
  listPods(): Promise<V1Pod[]>;
  runStatuses(runIds: string[]): Promise<Map<string, RunState>>;
  /** Judges a Job whose run is active (records an end not yet recorded). */
  consider(job: V1Job, pods: V1Pod[]): void;
  deleteJob(name: string): Promise<void>;
  recordLost(runId: string): Promise<"retried" | "failed" | "ignored">;
  /** Drops what is remembered of runs whose Jobs are gone. */
  forgetExcept(runIds: Set<string>): void;
}

/** What one reconcile found and did. */
export interface ReconcileReport {
  jobs: number;
  /** Jobs deleted because their run is no longer active (recorded, cancelled, superseded). */
  deleted: number;
  /** Active runs whose Job is gone, retried as lost. */
  lost: number;
}

/**
 * Compares the cluster's Jobs with the database's active runs, from fresh lists rather than the watch
 * caches, so whatever a watch missed is caught here:
 * - a Job whose run is still active is judged again (an end not yet recorded is recorded);
 * - a Job whose run has ended (recorded, cancelled, or retried as lost) is deleted;
 * - an active run with no Job, quiet for longer than the grace period, is retried as lost (someone
 *   deleted its Job, or its dispatcher died before creating it).
 * The runs are read before the Jobs are listed: a run whose Job was recorded and deleted in between is
 * no longer active, and increase_attempt's compare-and-set ignores it.
 */
export async function reconcileOnce(target: ReconcileTarget): Promise<ReconcileReport> {
  const quiet = await target.quietActiveRuns();
  const [jobs, pods] = await Promise.all([target.listJobs(), target.listPods()]);
  const podsByRun = new Map<string, V1Pod[]>();
  for (const pod of pods) {
    const runId = runIdOf(pod);
    if (runId) podsByRun.set(runId, [...(podsByRun.get(runId) ?? []), pod]);
  }
  const runIds = new Set(jobs.map(runIdOf).filter((id): id is string => id !== null));
  const statuses = await target.runStatuses([...runIds]);

  const report: ReconcileReport = { jobs: jobs.length, deleted: 0, lost: 0 };
  for (const job of jobs) {
    const runId = runIdOf(job);
    const status = runId ? statuses.get(runId) : undefined;
    // A Job of a run this database does not know belongs to someone else: leave it alone.
    if (!runId || !status) continue;
    if (ACTIVE_RUN_STATES.includes(status)) {
      target.consider(job, podsByRun.get(runId) ?? []);
    } else {
      await target.deleteJob(job.metadata!.name!);
      report.deleted++;
    }
  }

  for (const run of quiet) {
    if (runIds.has(run.runId)) continue;
    const result = await target.recordLost(run.runId);
    if (result !== "ignored") report.lost++;
  }
  target.forgetExcept(runIds);
  return report;
}
