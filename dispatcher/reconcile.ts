import type { V1Pod } from "@kubernetes/client-node";
import { MANAGED_SELECTOR, runIdOf } from "../shared/executors/kubernetes/names.ts";
import type { RunState } from "../shared/model.ts";
import type { JobObserver } from "./observer.ts";

/** What one reconcile found and did. */
export interface ReconcileReport {
  jobs: number;
  /** Jobs deleted because their run is no longer active (recorded, cancelled, superseded). */
  deleted: number;
  /** Active runs whose Job is gone, retried as lost. */
  lost: number;
}

const ACTIVE: readonly RunState[] = ["starting", "dispatched", "running"];

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
export async function reconcileOnce(observer: JobObserver): Promise<ReconcileReport> {
  const { api, cluster, options } = observer;
  const quiet = await cluster.quietActiveRuns("kubernetes", options.lostGraceSeconds);
  const [jobs, pods] = await Promise.all([api.listJobs(MANAGED_SELECTOR), api.listPods(MANAGED_SELECTOR)]);
  const podsByRun = new Map<string, V1Pod[]>();
  for (const pod of pods.items) {
    const runId = runIdOf(pod);
    if (runId) podsByRun.set(runId, [...(podsByRun.get(runId) ?? []), pod]);
  }
  const runIds = new Set(jobs.items.map(runIdOf).filter((id): id is string => id !== null));
  const statuses = await cluster.runStatuses([...runIds]);

  const report: ReconcileReport = { jobs: jobs.items.length, deleted: 0, lost: 0 };
  for (const job of jobs.items) {
    const runId = runIdOf(job);
    const status = runId ? statuses.get(runId) : undefined;
    // A Job of a run this database does not know belongs to someone else: leave it alone.
    if (!runId || !status) continue;
    if (ACTIVE.includes(status)) {
      observer.consider(job, podsByRun.get(runId) ?? []);
    } else {
      await observer.deleteJob(job.metadata!.name!);
      report.deleted++;
    }
  }

  for (const run of quiet) {
    if (runIds.has(run.runId)) continue;
    const result = await observer.recordLost(run.runId);
    if (result !== "ignored") report.lost++;
  }
  observer.forgetExcept(runIds);
  return report;
}
