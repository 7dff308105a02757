/**
 * The simulated job controller, TTL controller and garbage collector for one-pod Jobs: creates the pod,
 * follows it through the store's events, keeps `status` (active, ready, succeeded, failed, conditions)
 * as Kubernetes 1.31+ writes it, retries up to backoffLimit, and enforces activeDeadlineSeconds and
 * ttlSecondsAfterFinished. Deletion honours propagationPolicy, whose API default for Jobs is Orphan.
 */
import { randomUUID } from "node:crypto";
import { defaultJob, podFor, randomSuffix, validateJob } from "./job-spec.ts";
import type { Kubelet } from "./kubelet.ts";
import type { Stats } from "./stats.ts";
import { JOBS, alreadyExists, badRequest, invalid, notFound, success, type StatusBody } from "./status.ts";
import { now, type ObjectStore, type StoreEvent } from "./store.ts";
import type { Condition, Job, Pod } from "./types.ts";

export type PropagationPolicy = "Orphan" | "Background" | "Foreground";

export interface ControllerOptions {
  timeScale: number;
  podRetryDelayMs: number;
}

interface JobState {
  uid: string;
  namespace: string;
  name: string;
  succeeded: number;
  failed: number;
  started: boolean;
  finished: boolean;
  /** Set once the Job is bound to fail; it fails when its last pod has ended. */
  failureTarget?: { reason: string; message: string };
  /** Foreground deletion: the Job goes when its last pod has. */
  deleting: boolean;
  timers: Set<NodeJS.Timeout>;
}

const isTerminal = (pod: Pod) => pod.status.phase === "Succeeded" || pod.status.phase === "Failed";
const isActive = (pod: Pod) => !isTerminal(pod) && !pod.metadata.deletionTimestamp;
const isReady = (pod: Pod) =>
  pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

const jobCondition = (type: string, reason: string, message: string): Condition => ({
  type,
  status: "True",
  lastProbeTime: now(),
  lastTransitionTime: now(),
  reason,
  message,
});

export class JobController {
  private readonly jobs = new Map<string, JobState>();

  constructor(
    private readonly store: ObjectStore,
    private readonly kubelet: Kubelet,
    private readonly stats: Stats,
    private readonly options: ControllerOptions,
  ) {
    store.subscribe((e) => this.onEvent(e));
  }

  /** POST .../jobs: validates, fills defaults, stores; the pod follows on the next tick. */
  create(namespace: string, body: Job, dryRun: boolean): Job {
    const input = structuredClone(body);
    input.metadata ??= {};
    if (input.metadata.namespace && input.metadata.namespace !== namespace) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    if (!input.metadata.name && input.metadata.generateName)
      input.metadata.name = `${input.metadata.generateName}${randomSuffix()}`;
    input.metadata.namespace = namespace;
    const causes = validateJob(input);
    if (causes.length > 0) throw invalid(JOBS, input.metadata.name ?? "", causes);
    const job = defaultJob(input, randomUUID());
    if (dryRun) return { ...job, metadata: { ...job.metadata, creationTimestamp: now() } };
    const stored = this.store.create(job);
    if (!stored) throw alreadyExists(JOBS, job.metadata.name!);
    const state: JobState = {
      uid: stored.metadata.uid!,
      namespace,
      name: stored.metadata.name!,
      succeeded: 0,
      failed: 0,
      started: false,
      finished: false,
      deleting: false,
      timers: new Set(),
    };
    this.jobs.set(state.uid, state);
    this.stats.jobStarted();
    this.later(state, 0, () => this.createPod(state));
    return stored;
  }

  /** DELETE .../jobs/{name}: Status for Orphan and Background, the Job (with deletionTimestamp) for Foreground. */
  delete(
    namespace: string,
    name: string,
    policy: PropagationPolicy,
    gracePeriodSeconds?: number,
  ): StatusBody | Job {
    const job = this.store.get<Job>("Job", namespace, name);
    if (!job) throw notFound(JOBS, name);
    const state = this.jobs.get(job.metadata.uid!);
    if (state) this.stop(state);
    const pods = this.podsOf(job);
    if (policy === "Foreground" && pods.length > 0) {
      if (state) state.deleting = true;
      const marked = this.store.update<Job>("Job", namespace, name, (j) => {
        j.metadata.deletionTimestamp = now();
        j.metadata.deletionGracePeriodSeconds = 0;
        j.metadata.finalizers = [...(j.metadata.finalizers ?? []), "foregroundDeletion"];
      })!;
      for (const pod of pods) this.kubelet.deletePod(namespace, pod.metadata.name!, gracePeriodSeconds);
      return marked;
    }
    this.store.remove<Job>("Job", namespace, name);
    this.jobs.delete(job.metadata.uid!);
    for (const pod of pods) {
      if (policy === "Orphan") {
        this.store.update<Pod>("Pod", namespace, pod.metadata.name!, (p) => {
          p.metadata.ownerReferences = p.metadata.ownerReferences?.filter((o) => o.uid !== job.metadata.uid);
        });
      } else {
        // The garbage collector notices the orphans a moment after the Job is gone.
        setImmediate(() => this.kubelet.deletePod(namespace, pod.metadata.name!, gracePeriodSeconds));
      }
    }
    return success(JOBS, name, job.metadata.uid!);
  }

  /** The Job's pods, found as the API would: by its controller-uid label. */
  podsOf(job: Job): Pod[] {
    const uid = job.metadata.uid;
    return this.store.list<Pod>(
      "Pod",
      job.metadata.namespace,
      (p) => p.metadata.labels?.["batch.kubernetes.io/controller-uid"] === uid,
    );
  }

  close(): void {
    for (const state of this.jobs.values()) for (const t of state.timers) clearTimeout(t);
    this.jobs.clear();
  }

  private job(state: JobState): Job | undefined {
    return this.store.get<Job>("Job", state.namespace, state.name);
  }

  private later(state: JobState, ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      state.timers.delete(timer);
      run();
    }, ms);
    state.timers.add(timer);
  }

  /** The controller lets go of a Job: no more pods, deadlines or TTL. */
  private stop(state: JobState): void {
    for (const t of state.timers) clearTimeout(t);
    state.timers.clear();
    if (!state.finished) this.stats.jobEnded();
    state.finished = true;
  }

  private seconds(s: number): number {
    return s * 1000 * this.options.timeScale;
  }

  private createPod(state: JobState): void {
    const job = this.job(state);
    if (!job || state.finished || state.failureTarget) return;
    let pod = this.store.create(podFor(job));
    while (!pod) pod = this.store.create(podFor(job)); // a generated name that was taken: draw again
    this.stats.podsCreated++;
    if (!state.started) {
      state.started = true;
      this.updateStatus(state, (s) => {
        s.startTime = now();
        s.uncountedTerminatedPods = {};
        Object.assign(s, this.counts(state));
      });
      const deadline = job.spec.activeDeadlineSeconds;
      if (deadline !== undefined) {
        this.later(state, this.seconds(deadline), () =>
          this.fail(state, "DeadlineExceeded", "Job was active longer than specified deadline"),
        );
      }
    }
    this.syncCounts(state);
    this.kubelet.admit(pod);
  }

  private onEvent(e: StoreEvent): void {
    if (e.kind !== "Pod") return;
    const owner = e.object.metadata.ownerReferences?.find((o) => o.kind === "Job" && o.controller);
    const uid = owner?.uid ?? e.previous?.metadata.ownerReferences?.find((o) => o.kind === "Job")?.uid;
    const state = uid ? this.jobs.get(uid) : undefined;
    if (!state) return;
    if (state.deleting) {
      if (e.type === "DELETED" && this.podsOfState(state).length === 0) {
        this.store.remove<Job>("Job", state.namespace, state.name);
        this.jobs.delete(state.uid);
      }
      return;
    }
    if (state.finished) return;
    const pod = e.object as Pod;
    const before = e.previous as Pod | undefined;
    const endedNow = e.type !== "DELETED" && isTerminal(pod) && !(before && isTerminal(before));
    // A pod deleted before it ended counts as failed, as with the job-tracking finalizer.
    const vanished = e.type === "DELETED" && !isTerminal(pod);
    if (endedNow || vanished) this.podEnded(state, pod.status.phase === "Succeeded" && !vanished);
    else this.syncCounts(state);
  }

  private podsOfState(state: JobState): Pod[] {
    return this.store.list<Pod>(
      "Pod",
      state.namespace,
      (p) => p.metadata.labels?.["batch.kubernetes.io/controller-uid"] === state.uid,
    );
  }

  private podEnded(state: JobState, succeeded: boolean): void {
    if (succeeded) state.succeeded++;
    else state.failed++;
    const job = this.job(state);
    if (!job) return;
    if (state.failureTarget) {
      if (!this.podsOfState(state).some(isActive)) this.finishFailed(state);
      else this.syncCounts(state);
    } else if (succeeded) {
      this.complete(state);
    } else if (state.failed > (job.spec.backoffLimit ?? 6)) {
      this.fail(state, "BackoffLimitExceeded", "Job has reached the specified backoff limit");
    } else {
      this.syncCounts(state);
      this.later(state, this.options.podRetryDelayMs, () => this.createPod(state));
    }
  }

  /** active/ready/succeeded/failed from the pods and the counts; no write when nothing changed. */
  private syncCounts(state: JobState): void {
    const job = this.job(state);
    if (!job) return;
    const next = this.counts(state);
    const s = job.status;
    if (
      s.active === next.active &&
      s.ready === next.ready &&
      s.succeeded === next.succeeded &&
      s.failed === next.failed
    )
      return;
    this.updateStatus(state, (st) => Object.assign(st, next));
  }

  private counts(state: JobState): Pick<Job["status"], "active" | "ready" | "succeeded" | "failed"> {
    const active = this.podsOfState(state).filter(isActive);
    return {
      active: active.length || undefined,
      ready: active.filter(isReady).length,
      succeeded: state.succeeded || undefined,
      failed: state.failed || undefined,
    };
  }

  private updateStatus(state: JobState, change: (status: Job["status"]) => void): void {
    this.store.update<Job>("Job", state.namespace, state.name, (j) => {
      change(j.status);
      // The API drops zero counts and absent fields from the JSON.
      for (const k of ["active", "succeeded", "failed"] as const) if (!j.status[k]) delete j.status[k];
    });
  }

  private complete(state: JobState): void {
    this.updateStatus(state, (s) => {
      Object.assign(s, { active: 0, ready: 0, succeeded: state.succeeded, failed: state.failed });
      s.conditions = [
        ...(s.conditions ?? []),
        jobCondition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of completions"),
      ];
    });
    this.updateStatus(state, (s) => {
      s.conditions = [
        ...(s.conditions ?? []),
        jobCondition("Complete", "CompletionsReached", "Reached expected number of completions"),
      ];
      s.completionTime = now();
    });
    this.finished(state);
  }

  /** Marks the Job bound to fail (FailureTarget), stops its active pods, and fails it once they have ended. */
  private fail(state: JobState, reason: string, message: string): void {
    if (state.finished || state.failureTarget) return;
    state.failureTarget = { reason, message };
    for (const t of state.timers) clearTimeout(t);
    state.timers.clear();
    this.updateStatus(state, (s) => {
      s.conditions = [...(s.conditions ?? []), jobCondition("FailureTarget", reason, message)];
    });
    const active = this.podsOfState(state).filter(isActive);
    if (active.length === 0) return this.finishFailed(state);
    const kill =
      reason === "DeadlineExceeded"
        ? ({ kind: "deadline" } as const)
        : ({ kind: "delete", graceMs: 0 } as const);
    for (const pod of active) this.kubelet.kill(state.namespace, pod.metadata.name!, kill);
  }

  private finishFailed(state: JobState): void {
    const target = state.failureTarget!;
    this.updateStatus(state, (s) => {
      Object.assign(s, { active: 0, ready: 0, failed: state.failed, succeeded: state.succeeded });
      s.conditions = [...(s.conditions ?? []), jobCondition("Failed", target.reason, target.message)];
    });
    this.finished(state);
  }

  private finished(state: JobState): void {
    this.stop(state);
    const ttl = this.job(state)?.spec.ttlSecondsAfterFinished;
    if (ttl === undefined) return;
    // The TTL controller deletes in the foreground: pods first, then the Job.
    const timer = setTimeout(() => {
      state.timers.delete(timer);
      if (this.job(state)) this.delete(state.namespace, state.name, "Foreground");
    }, this.seconds(ttl));
    state.timers.add(timer);
  }
}
