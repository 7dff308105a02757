import type { V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";
import { parseWorkerFailure, reasonForWorkerFailure } from "../worker-failure.ts";
import type { FailureReason } from "../../model.ts";
import { WORKER_CONTAINER } from "./job-spec.ts";

/** How long a Job may wait before it is failed for it. */
export interface WaitLimits {
  /** Its image cannot be pulled (ErrImagePull, ImagePullBackOff, ...) for this long since creation. */
  imagePullSeconds: number;
  /** Its pod has not started (unschedulable, or pending for any other reason) this long since creation. */
  pendingSeconds: number;
}

export interface JobFailure {
  reason: FailureReason;
  message: string;
  exitCode: number | null;
  nonRetryable: boolean;
}

/** What the observer should do about a Job, judged from the Job and its pods. */
export type JobVerdict =
  | { kind: "waiting" }
  | { kind: "running" }
  | { kind: "succeeded" }
  /** `pod`: whose log tail to keep, when there is one. `stuck`: the Job would not end by itself. */
  | { kind: "failed"; failure: JobFailure; pod: string | null; stuck: boolean };

const IMAGE_PULL_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
]);

/** The Job's Complete or Failed condition with status "True" (FailureTarget and SuccessCriteriaMet are not final). */
export function finishedCondition(job: V1Job): V1JobCondition | undefined {
  return job.status?.conditions?.find(
    (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
  );
}

/**
 * Judges one Job. Its end comes from its Complete or Failed condition; why it failed comes from its pod
 * (eviction, OOMKilled, the worker's failure JSON in the termination message, the exit code). A Job
 * that never started is failed once it has waited longer than the limits allow.
 */
export function judgeJob(job: V1Job, pods: V1Pod[], nowMs: number, limits: WaitLimits): JobVerdict {
  const pod = latestPod(pods);
  const finished = finishedCondition(job);
  if (finished?.type === "Complete") return { kind: "succeeded" };
  if (finished)
    return { kind: "failed", failure: failureOf(job, finished, pod), pod: podName(pod), stuck: false };
  if (pod && started(pod)) return { kind: "running" };

  const created = job.metadata?.creationTimestamp
    ? new Date(job.metadata.creationTimestamp).getTime()
    : nowMs;
  const waited = Math.max(0, (nowMs - created) / 1000);
  const pull = pod ? waitingReason(pod) : null;
  if (pull && IMAGE_PULL_REASONS.has(pull.reason) && waited >= limits.imagePullSeconds) {
    const message =
      `the image could not be pulled for ${Math.round(waited)}s (${pull.reason}): ${pull.message ?? ""}`.trim();
    return { kind: "failed", failure: infra("image_pull", message), pod: null, stuck: true };
  }
  if (waited >= limits.pendingSeconds) {
    const scheduled = pod?.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
    const why = scheduled?.message ?? pull?.reason ?? (pod ? "the pod stayed Pending" : "no pod was created");
    const message = `not started after ${Math.round(waited)}s (${scheduled?.reason ?? "Pending"}): ${why}`;
    return { kind: "failed", failure: infra("unschedulable", message), pod: null, stuck: true };
  }
  return { kind: "waiting" };
}

function failureOf(job: V1Job, condition: V1JobCondition, pod: V1Pod | undefined): JobFailure {
  if (condition.reason === "DeadlineExceeded") {
    const seconds = job.spec?.activeDeadlineSeconds;
    const message = seconds
      ? `timed out after ${seconds}s (DeadlineExceeded)`
      : "timed out (DeadlineExceeded)";
    return { reason: "timeout", message, exitCode: null, nonRetryable: false };
  }
  if (!pod)
    return infra(
      "lost",
      `the Job failed and its pod is gone: ${condition.message ?? condition.reason ?? ""}`,
    );
  const evicted =
    pod.status?.reason === "Evicted" ||
    pod.status?.conditions?.some((c) => c.type === "DisruptionTarget" && c.status === "True");
  if (evicted)
    return infra("evicted", `evicted: ${pod.status?.message ?? pod.status?.reason ?? "disrupted"}`);

  const terminated = containerStatus(pod)?.state?.terminated;
  if (terminated?.reason === "OOMKilled") {
    return {
      ...infra("oom_killed", "OOMKilled: the container went over its memory limit"),
      exitCode: terminated.exitCode,
    };
  }
  const reported = parseWorkerFailure(terminated?.message);
  if (reported) {
    return {
      reason: reasonForWorkerFailure(reported.type),
      message: reported.message,
      exitCode: reported.exitCode ?? terminated?.exitCode ?? null,
      nonRetryable: reported.nonRetryable,
    };
  }
  // 137 and 143 without a report: the worker was killed (SIGKILL, SIGTERM) from outside, its pod deleted
  // or killed by someone else; the worker reports every failure of its own. An infrastructure loss.
  if (terminated && (terminated.exitCode === 137 || terminated.exitCode === 143)) {
    return {
      ...infra(
        "lost",
        `the worker was killed from outside (exit code ${terminated.exitCode}) before it could report`,
      ),
      exitCode: terminated.exitCode,
    };
  }
  // The container runtime could not start DWOP's worker (its command, its mounts, the runtime itself): the
  // task never ran, so its attempt is an infrastructure loss, not its failure. Found by the chaos soak:
  // podman under load failed to start one worker's container, and the task failed for it.
  if (terminated && START_FAILURES.has(terminated.reason ?? "")) {
    return {
      ...infra(
        "lost",
        `the container runtime could not start the worker (${terminated.reason}): ${terminated.message ?? ""}`.trim(),
      ),
      exitCode: terminated.exitCode,
    };
  }
  if (terminated) {
    const message = `the worker ended with exit code ${terminated.exitCode} (${terminated.reason ?? "Error"}) without reporting a failure`;
    return { reason: "worker_error", message, exitCode: terminated.exitCode, nonRetryable: false };
  }
  const waiting = waitingReason(pod);
  if (waiting && IMAGE_PULL_REASONS.has(waiting.reason))
    return infra("image_pull", `${waiting.reason}: ${waiting.message ?? ""}`.trim());
  return infra(
    "lost",
    `the Job failed (${condition.reason ?? "unknown"}): ${condition.message ?? ""}`.trim(),
  );
}

/** A terminated container's reasons that say its process was never started (containerd, CRI-O, docker). */
const START_FAILURES = new Set(["StartError", "ContainerCannotRun"]);

const infra = (reason: FailureReason, message: string): JobFailure => ({
  reason,
  message,
  exitCode: null,
  nonRetryable: false,
});

const podName = (pod: V1Pod | undefined) => pod?.metadata?.name ?? null;

function containerStatus(pod: V1Pod) {
  const statuses = pod.status?.containerStatuses ?? [];
  return statuses.find((s) => s.name === WORKER_CONTAINER) ?? statuses[0];
}

function started(pod: V1Pod): boolean {
  const state = containerStatus(pod)?.state;
  return Boolean(state?.running || state?.terminated) || pod.status?.phase === "Running";
}

function waitingReason(pod: V1Pod): { reason: string; message?: string } | null {
  const waiting = containerStatus(pod)?.state?.waiting;
  return waiting?.reason ? { reason: waiting.reason, message: waiting.message } : null;
}

/** The newest pod (a Job with backoffLimit 0 has one, but a deleted pod may have been replaced). */
function latestPod(pods: V1Pod[]): V1Pod | undefined {
  const time = (p: V1Pod) =>
    p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).getTime() : 0;
  return [...pods].sort((a, b) => time(a) - time(b)).at(-1);
}
