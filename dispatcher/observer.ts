// Node-only: the cluster observer. One replica at a time runs it (see lease.ts).
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { Batcher } from "../shared/batcher.ts";
import type { Store } from "../shared/db/store.ts";
import { messageOf, type KubeApi } from "../shared/executors/kubernetes/api.ts";
import { WORKER_CONTAINER } from "../shared/executors/kubernetes/job-spec.ts";
import { ListWatch, type WatchEventType } from "../shared/executors/kubernetes/list-watch.ts";
import { attemptOf, LABELS, MANAGED_SELECTOR, runIdOf } from "../shared/executors/kubernetes/names.ts";
import { judgeJob, type JobVerdict, type WaitLimits } from "../shared/executors/kubernetes/outcome.ts";
import { silentLogger, type Logger } from "../shared/log.ts";
import { ACTIVE_RUN_STATES } from "../shared/model.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { ClusterStore } from "./cluster-store.ts";
import { placeUploadedOutput } from "./place-output.ts";
import { reconcileOnce, type ReconcileReport, type ReconcileTarget } from "./reconcile.ts";

export interface ObserverOptions {
  limits: WaitLimits;
  /** How often Jobs are listed and compared with the active runs in the database. */
  reconcileSeconds: number;
  /** An active run without a Job is lost only once its last transition is this old. */
  lostGraceSeconds: number;
  /** Lines of the log kept with a failed run. */
  logTailLines?: number;
  watchBackoffMs?: { initial: number; max: number };
  logger?: Logger;
  /** Milliseconds since the epoch: when a waiting pod has waited too long, which runs are quiet. Tests move it. */
  now?: () => number;
}

/** What the observer did, for tests and /metrics. */
export interface ObserverStats {
  succeeded: number;
  failed: number;
  /** Outcomes the database had already recorded (the compare-and-set said no). */
  alreadyRecorded: number;
  lost: number;
  jobsDeleted: number;
  reconciles: number;
}

type Failed = Extract<JobVerdict, { kind: "failed" }>;

/**
 * Watches DWOP's Jobs and their pods and records how each attempt ended: success through complete_runs,
 * once the output the pod's worker uploaded (to its attempt's own object) is moved to its task's path,
 * failure (with the reason from the pod and the last lines of its log, read before the Job goes) through
 * increase_attempt; a running pod through mark_run_running. Each Job's end is handled once in this
 * process (the `handled` set) and once in the database (compare-and-set); the Job is deleted after its
 * result is recorded. A periodic reconcile covers whatever the watches missed (reconcile.ts), and a
 * cancelled workflow's Jobs are deleted on `dwop_cancel`.
 */
export class JobObserver {
  readonly stats: ObserverStats = {
    succeeded: 0,
    failed: 0,
    alreadyRecorded: 0,
    lost: 0,
    jobsDeleted: 0,
    reconciles: 0,
  };
  private readonly cluster: ClusterStore;
  /** Jobs by run id (one Job per run: its name is derived from the run's task and attempt). */
  private readonly jobs = new Map<string, V1Job>();
  /** Pods by run id, then by pod name. */
  private readonly pods = new Map<string, Map<string, V1Pod>>();
  private readonly handled = new Set<string>();
  private readonly recording = new Set<string>();
  /** Runs whose output placeOutput moved into place (forgotten with their Jobs). */
  private readonly placed = new Set<string>();
  private readonly running = new Set<string>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly completions: Batcher<string, boolean>;
  private readonly log: Logger;
  private watches: ListWatch<V1Job | V1Pod>[] = [];
  private timers: ReturnType<typeof setInterval>[] = [];
  private unlisten: (() => Promise<void>) | null = null;
  private reconciling: Promise<ReconcileReport | null> | null = null;
  private active = false;

  constructor(
    private readonly store: Store,
    private readonly api: KubeApi,
    private readonly storage: Storage,
    private readonly options: ObserverOptions,
  ) {
    this.cluster = new ClusterStore(store.db);
    this.log = (options.logger ?? silentLogger).child({ component: "observer" });
    this.completions = new Batcher(async (ids) => {
      const recorded = new Set(await store.completeRuns(ids));
      return ids.map((id) => recorded.has(id));
    });
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  get observing(): boolean {
    return this.active;
  }

  /** Lists and watches Jobs and pods, reconciles once, then on a timer; listens for cancellations. */
  async start(): Promise<void> {
    if (this.active) return;
    this.active = true;
    try {
      const listener = await this.store.db.listen("dwop_cancel", (wf) =>
        this.track(this.deleteCancelled(wf)),
      );
      this.unlisten = () => listener.unlisten();
      this.watches = [this.jobWatch(), this.podWatch()] as ListWatch<V1Job | V1Pod>[];
      await Promise.all(this.watches.map((w) => w.start()));
    } catch (err) {
      await this.stop();
      throw err;
    }
    await this.reconcile();
    if (!this.active) return; // stopped (the lease lost) while starting
    this.timers = [
      setInterval(() => void this.reconcile(), this.options.reconcileSeconds * 1000),
      // Waiting Jobs (image pulls, pending pods) get no events while they wait: judge them again.
      setInterval(() => this.judgeWaiting(), 1000),
    ];
  }

  /** Stops watching; waits for outcomes being recorded. */
  async stop(): Promise<void> {
    if (!this.active) return;
    this.active = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all(this.watches.map((w) => w.stop()));
    this.watches = [];
    await this.unlisten?.().catch(() => {});
    this.unlisten = null;
    await this.reconciling;
    await Promise.allSettled([...this.inflight]);
    this.jobs.clear();
    this.pods.clear();
    this.handled.clear();
    this.running.clear();
  }

  /** Watch counters (lists, watches, expired, failures, events) by resource. */
  watchStats() {
    return this.watches.map((w) => w.stats);
  }

  /** One full reconcile now (also run on a timer); null when the observer is not active. */
  reconcile(): Promise<ReconcileReport | null> {
    if (!this.active) return Promise.resolve(null);
    this.reconciling ??= reconcileOnce(this.reconcileTarget())
      .then((report) => {
        this.stats.reconciles++;
        return report;
      })
      .catch((err: unknown) => {
        this.log.error({ err: messageOf(err) }, "reconcile failed; the next one retries");
        return null;
      })
      .finally(() => (this.reconciling = null));
    return this.reconciling;
  }

  /** The narrow view of this observer a reconcile works through. */
  private reconcileTarget(): ReconcileTarget {
    return {
      // Database time unless a test moves the clock: the dispatcher's host clock may differ from it.
      quietActiveRuns: () =>
        this.cluster.quietActiveRuns(
          "kubernetes",
          this.options.lostGraceSeconds,
          this.options.now ? new Date(this.options.now()) : null,
        ),
      listJobs: async () => (await this.api.listJobs(MANAGED_SELECTOR)).items,
      listPods: async () => (await this.api.listPods(MANAGED_SELECTOR)).items,
      runStatuses: (runIds) => this.cluster.runStatuses(runIds),
      consider: (job, pods) => this.consider(job, pods),
      deleteJob: (name) => this.deleteJob(name),
      recordLost: (runId) => this.recordLost(runId),
      forgetExcept: (runIds) => this.forgetExcept(runIds),
    };
  }

  private jobWatch(): ListWatch<V1Job> {
    return new ListWatch<V1Job>({
      api: this.api,
      resource: "jobs",
      path: this.api.jobsPath,
      labelSelector: MANAGED_SELECTOR,
      list: () => this.api.listJobs(MANAGED_SELECTOR),
      onSync: (items) => {
        this.jobs.clear();
        for (const job of items) {
          const runId = runIdOf(job);
          if (runId) this.jobs.set(runId, job);
        }
        this.judgeWaiting();
      },
      onEvent: (type, job) => this.onJobEvent(type, job),
      backoffMs: this.options.watchBackoffMs,
      logger: this.log,
    });
  }

  private podWatch(): ListWatch<V1Pod> {
    return new ListWatch<V1Pod>({
      api: this.api,
      resource: "pods",
      path: this.api.podsPath,
      labelSelector: MANAGED_SELECTOR,
      list: () => this.api.listPods(MANAGED_SELECTOR),
      onSync: (items) => {
        this.pods.clear();
        for (const pod of items) this.putPod(pod);
        this.judgeWaiting();
      },
      onEvent: (type, pod) => this.onPodEvent(type, pod),
      backoffMs: this.options.watchBackoffMs,
      logger: this.log,
    });
  }

  private onJobEvent(type: WatchEventType, job: V1Job): void {
    const runId = runIdOf(job);
    if (!runId) return;
    if (type !== "DELETED") {
      this.jobs.set(runId, job);
      this.consider(job);
      return;
    }
    this.jobs.delete(runId);
    // Its last state may carry an end not seen yet; a Job gone mid-run is the reconcile's to find.
    if (this.active && !this.handled.has(runId)) {
      const verdict = this.judge(job);
      if (verdict.kind === "succeeded" || (verdict.kind === "failed" && !verdict.stuck))
        this.finish(runId, job, verdict, false);
    }
  }

  private onPodEvent(type: WatchEventType, pod: V1Pod): void {
    const runId = runIdOf(pod);
    if (!runId) return;
    if (type === "DELETED") this.pods.get(runId)?.delete(pod.metadata!.name!);
    else this.putPod(pod);
    const job = this.jobs.get(runId);
    if (job) this.consider(job);
  }

  private putPod(pod: V1Pod): void {
    const runId = runIdOf(pod);
    if (!runId) return;
    let byName = this.pods.get(runId);
    if (!byName) this.pods.set(runId, (byName = new Map()));
    byName.set(pod.metadata!.name!, pod);
  }

  /** One pass over the Jobs seen, judged again by the clock (also run every second while observing). */
  judgeWaiting(): void {
    for (const job of this.jobs.values()) this.consider(job);
  }

  /** The verdict on a Job from the pods this observer has seen (or the ones given). */
  judge(job: V1Job, pods?: V1Pod[]): JobVerdict {
    const runId = runIdOf(job);
    const known = pods ?? [...(runId ? (this.pods.get(runId)?.values() ?? []) : [])];
    return judgeJob(job, known, this.now(), this.options.limits);
  }

  /** Acts on a Job's verdict: marks it running, or records its end (once). */
  private consider(job: V1Job, pods?: V1Pod[]): void {
    const runId = runIdOf(job);
    if (!this.active || !runId || this.handled.has(runId)) return;
    const verdict = this.judge(job, pods);
    if (verdict.kind === "running" && !this.running.has(runId)) {
      this.running.add(runId);
      this.track(this.markRunning(runId, job.metadata!.name!));
    } else if (verdict.kind === "succeeded" || verdict.kind === "failed") {
      this.finish(runId, job, verdict, true);
    }
  }

  private finish(runId: string, job: V1Job, verdict: JobVerdict, deleteAfter: boolean): void {
    this.handled.add(runId);
    this.recording.add(runId);
    const recorded = this.record(runId, job, verdict as Failed | { kind: "succeeded" }, deleteAfter);
    this.track(recorded.finally(() => this.recording.delete(runId)));
  }

  private async markRunning(runId: string, jobName: string): Promise<void> {
    try {
      // A run still 'starting' (its dispatcher has not marked it yet) is marked dispatched and running at once.
      if (!(await this.store.markRunDispatched(runId, jobName, true))) await this.store.markRunRunning(runId);
    } catch (err) {
      this.running.delete(runId);
      this.log.error({ err, runId }, "could not mark a run running");
    }
  }

  private async record(
    runId: string,
    job: V1Job,
    verdict: Failed | { kind: "succeeded" },
    deleteAfter: boolean,
  ) {
    const name = job.metadata!.name!;
    try {
      const final = verdict.kind === "failed" ? await this.confirmFailure(runId, job) : verdict;
      if (final.kind === "succeeded") {
        const placed = await this.placeOutput(runId, job);
        if (placed !== true) await this.retryAsLost(runId, `storing the output: ${placed}`);
        else if (await this.completions.add(runId)) this.stats.succeeded++;
        else this.stats.alreadyRecorded++;
      } else if (final.kind === "failed") {
        await this.recordFailure(runId, name, final);
      } else {
        // The cache was stale (a watch was down): the Job is still waiting or running after all.
        this.handled.delete(runId);
        return;
      }
    } catch (err) {
      // Not recorded: the next event or reconcile tries again.
      this.handled.delete(runId);
      this.log.error({ err, runId, job: name }, "could not record the end of a Job");
      return;
    }
    this.running.delete(runId);
    if (deleteAfter) await this.deleteJob(name);
  }

  /**
   * A failure is judged again on the Job and pods as the API server has them now: the pod watch may lag
   * the Job watch (the reason would be missing), and a watch that was down leaves a stale cache (a pod
   * that started would look stuck). The fresh objects replace the cached ones.
   */
  private async confirmFailure(runId: string, job: V1Job): Promise<JobVerdict> {
    const [fresh, pods] = await Promise.all([
      this.api.readJob(job.metadata!.name!),
      this.api.listPods(`${LABELS.runId}=${runId}`),
    ]);
    // Pods already gone (the Job was deleted): what the cache last saw of them is all there is.
    const known = pods.items.length > 0 ? pods.items : [...(this.pods.get(runId)?.values() ?? [])];
    if (fresh && this.active) this.jobs.set(runId, fresh);
    if (this.active && pods.items.length > 0) {
      this.pods.delete(runId);
      for (const pod of pods.items) this.putPod(pod);
    }
    return this.judge(fresh ?? job, known);
  }

  private async recordFailure(runId: string, jobName: string, final: Failed): Promise<void> {
    const logTail = final.pod
      ? await this.api
          .readLogTail(final.pod, WORKER_CONTAINER, this.options.logTailLines ?? 100)
          .catch(() => null)
      : null;
    const result = await this.store.increaseAttempt(runId, { ...final.failure, logTail });
    if (result === "ignored") this.stats.alreadyRecorded++;
    else this.stats.failed++;
    this.log.info({ runId, job: jobName, reason: final.failure.reason, result }, "run failed");
  }

  /** Deletes a Job (Background: its pods go too); a failure is left for the reconcile. */
  private async deleteJob(name: string): Promise<void> {
    try {
      if (await this.api.deleteJob(name)) this.stats.jobsDeleted++;
    } catch (err) {
      this.log.warn({ err: messageOf(err), job: name }, "could not delete a Job; the reconcile will");
    }
  }

  /**
   * Moves the output a succeeded Job's worker uploaded to its task's path, before the success is recorded,
   * while the run's row is held active (Store.whileRunActive): true, or why it could not (the storage
   * failed it, the object is missing). A run that is no longer active (retried as lost while its pod went
   * on, on a node cut off; cancelled) is left alone (true): the attempt that replaced it keeps the path,
   * and the record refuses this one. Moved once: a record that failed after it is tried again without it.
   * A Job without DWOP's labels has no attempt's object to move.
   */
  private async placeOutput(runId: string, job: V1Job): Promise<true | string> {
    const attempt = attemptOf(job);
    if (!attempt || this.placed.has(runId)) return true;
    const placed = await placeUploadedOutput(this.store, this.storage, runId, attempt);
    if (placed === "placed") this.placed.add(runId);
    return typeof placed === "string" ? true : messageOf(placed.failed);
  }

  /** An active run whose Job is gone: retried as lost (from the infrastructure budget). */
  private async recordLost(runId: string): Promise<"retried" | "failed" | "ignored"> {
    if (this.recording.has(runId)) return "ignored";
    const message = "its Job disappeared before the attempt ended (deleted by someone, or never created)";
    return this.retryAsLost(runId, message);
  }

  private async retryAsLost(runId: string, message: string): Promise<"retried" | "failed" | "ignored"> {
    const result = await this.store.increaseAttempt(runId, {
      reason: "lost",
      message,
      exitCode: null,
      logTail: null,
      nonRetryable: false,
    });
    if (result !== "ignored") this.stats.lost++;
    this.log.warn({ runId, result, why: message }, "run retried as lost");
    return result;
  }

  /** A cancelled workflow: delete its Jobs whose runs are no longer active. */
  private async deleteCancelled(workflowId: string): Promise<void> {
    const jobs = [...this.jobs.values()].filter((j) => j.metadata?.labels?.[LABELS.workflow] === workflowId);
    if (jobs.length === 0) return;
    const statuses = await this.cluster.runStatuses(
      jobs.map(runIdOf).filter((id): id is string => id !== null),
    );
    for (const job of jobs) {
      const status = statuses.get(runIdOf(job) ?? "");
      if (status && !ACTIVE_RUN_STATES.includes(status)) await this.deleteJob(job.metadata!.name!);
    }
  }

  /** Forgets runs whose Jobs are gone (bounded memory); called by the reconcile with the Jobs it listed. */
  private forgetExcept(runIds: Set<string>): void {
    const gone = (id: string) => !runIds.has(id) && !this.jobs.has(id) && !this.recording.has(id);
    for (const id of this.handled) if (gone(id)) this.handled.delete(id);
    for (const id of this.placed) if (gone(id)) this.placed.delete(id);
    for (const id of this.running) if (gone(id)) this.running.delete(id);
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }
}
