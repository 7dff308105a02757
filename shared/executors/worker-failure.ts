import type { FailureReason, WorkerFailure } from "../model.ts";

/** The worker's one-line failure JSON (its result file, or a pod's termination message), or null. */
export function parseWorkerFailure(text: string | undefined): WorkerFailure | null {
  if (!text?.trim().startsWith("{")) return null;
  try {
    const parsed = JSON.parse(text) as Partial<WorkerFailure>;
    if (typeof parsed.type !== "string" || typeof parsed.message !== "string") return null;
    return {
      type: parsed.type,
      message: parsed.message,
      exitCode: typeof parsed.exitCode === "number" ? parsed.exitCode : null,
      nonRetryable: parsed.nonRetryable === true,
    };
  } catch {
    return null;
  }
}

/**
 * The failure reason a worker's report stands for. A transfer that failed (storage unreachable, a URL
 * refused) is the infrastructure's fault, not the task's: the next attempt gets fresh URLs, and it spends
 * the infrastructure budget as 'lost', not the task's own retries.
 */
export function reasonForWorkerFailure(type: WorkerFailure["type"]): FailureReason {
  switch (type) {
    case "task_failed":
      return "exit_code";
    case "download_failed":
    case "upload_failed":
      return "lost";
    // The local sandbox's limits, named as Kubernetes names the same ends.
    case "memory_limit":
      return "oom_killed";
    case "disk_limit":
      return "evicted";
    case "cpu_limit":
      return "timeout";
    // Storage refused the output (too large, say): the task's own doing, with storage's reason.
    case "output_rejected":
      return "output_rejected";
    default:
      return "worker_error";
  }
}
