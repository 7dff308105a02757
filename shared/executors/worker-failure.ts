import type { FailureReason, WorkerFailure } from "../model.ts";

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
    default:
      return "worker_error";
  }
}
