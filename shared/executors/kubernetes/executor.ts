// Node-only: runs each attempt as a Kubernetes Job of the worker image.
import type { RunAssignment } from "../../model.ts";
import {
  StartRefused,
  type Executor,
  type RunOutcome,
  type StartedRun,
  type WorkerEnv,
} from "../executor.ts";
import { messageOf, statusOf, type KubeApi } from "./api.ts";
import { buildJob, type JobSpecOptions } from "./job-spec.ts";
import { LABELS, runIdOf } from "./names.ts";

/**
 * Submits one Job per attempt and leaves the rest to the cluster: the Job outlives this process, and the
 * observer (dispatcher/observer.ts) records how it ended. A create that finds the Job already there (409)
 * counts as done, provided that Job belongs to the same run.
 */
export class KubernetesExecutor implements Executor {
  readonly kind = "kubernetes" as const;
  readonly runsIn = "cluster" as const;

  constructor(
    private readonly api: KubeApi,
    private readonly spec: JobSpecOptions,
  ) {}

  async start(run: RunAssignment, env: WorkerEnv): Promise<StartedRun> {
    const job = buildJob(run, env, this.spec);
    const name = job.metadata!.name!;
    try {
      if ((await this.api.createJob(job)) === "exists") await this.checkOwner(name, run.runId);
    } catch (err) {
      const status = statusOf(err);
      // The API server refused the Job itself (an invalid cpu or memory quantity, say): same answer next time.
      if (status === 400 || status === 422) throw new StartRefused(`the Job was refused: ${messageOf(err)}`);
      throw err;
    }
    return { jobName: name };
  }

  /** A Job of the same name made for another run would be a name collision, never "already created". */
  private async checkOwner(name: string, runId: string): Promise<void> {
    const existing = await this.api.readJob(name);
    // Gone between the 409 and now: it was created, ran and was collected; the observer has its result.
    if (!existing) return;
    const owner = runIdOf(existing);
    if (owner !== runId) throw new Error(`Job ${name} already exists for run ${owner}, not run ${runId}`);
  }

  /** Deletes the run's Job (cancellation). True when there was one. */
  async kill(runId: string): Promise<boolean> {
    const { items } = await this.api.listJobs(`${LABELS.runId}=${runId}`);
    const deleted = await Promise.all(items.map((j) => this.api.deleteJob(j.metadata!.name!)));
    return deleted.some(Boolean);
  }

  /** None: Jobs are the cluster's, not this process's. */
  active(): string[] {
    return [];
  }

  /** Never fires: the observer records each Job's end. */
  onFinished(_listener: (run: RunAssignment, outcome: RunOutcome) => void): void {}

  async close(): Promise<void> {}
}
