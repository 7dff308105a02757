/**
 * The DWOP domain, in one place.
 *
 * Glossary
 * - Workflow: one submission of a `.workflow` file; a DAG of tasks that ends succeeded, failed or cancelled.
 * - Task: one `fun name(...)` block of a workflow. Its body is a Python script; its parameters name the
 *   upstream tasks whose outputs it reads. A task with no parameters is a root.
 * - Parameter: `p:upstream` in a task's signature. The upstream's output is written to a file named `p`
 *   in the task's working folder before the body runs.
 * - Attempt: one try at running a task, numbered from 1. Retries make new attempts; an attempt never runs
 *   twice successfully.
 * - Run: the record of one attempt (executor, job name, timestamps, exit code, failure reason, log tail).
 *   Keyed by (task, attempt), so a duplicate message finds the run already there.
 * - Outbox: rows written in the same transaction as a state change, to be published to the bus by a
 *   claimer. A claim is a lease; a dead claimer's rows are claimed again when the lease runs out.
 * - Claimer: the loop that claims outbox rows, publishes them with confirms and marks them published.
 * - Dispatcher: the process that consumes task messages, records runs, starts them on an executor and
 *   observes them to their end.
 * - Executor: where a run's worker process runs (local child processes, Kubernetes Jobs).
 * - Worker: the Python program that fetches code and inputs by signed URL, runs the body, uploads output.
 * - Infrastructure failure: a run lost to something other than the task's code (dispatcher died, pod
 *   evicted, image not pulled). It retries from its own budget, not the task's retries.
 */

export const TASK_STATES = [
  "pending",
  "queued",
  "dispatched",
  "running",
  "succeeded",
  "failed",
  "upstream_failed",
  "cancelled",
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_TASK_STATES: readonly TaskState[] = [
  "succeeded",
  "failed",
  "upstream_failed",
  "cancelled",
];

export const WORKFLOW_STATES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export type WorkflowState = (typeof WORKFLOW_STATES)[number];

export const TERMINAL_WORKFLOW_STATES: readonly WorkflowState[] = ["succeeded", "failed", "cancelled"];

export const RUN_STATES = [
  "starting",
  "dispatched",
  "running",
  "succeeded",
  "failed",
  "lost",
  "cancelled",
] as const;
export type RunState = (typeof RUN_STATES)[number];

/** A run in these states may still start, run or end: its worker may write, its Job must stay. */
export const ACTIVE_RUN_STATES: readonly RunState[] = ["starting", "dispatched", "running"];

/**
 * Why a run failed. `exit_code`, `timeout`, `worker_error` and `output_rejected` (storage refused the
 * task's output or log: too large, say) count against the task's own retries;
 * the others (`oom_killed` included) are infrastructure failures with their own budget (see
 * `increase_attempt`).
 */
export const FAILURE_REASONS = [
  "exit_code",
  "timeout",
  "oom_killed",
  "lost",
  "evicted",
  "image_pull",
  "unschedulable",
  "worker_error",
  "output_rejected",
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** Per-task options set by decorator lines above `fun`. */
export interface TaskOptions {
  /** Retries after the first failed attempt (so `retries: 2` allows 3 attempts). */
  retries: number;
  /** Wall-clock limit of one attempt, in seconds; null for none. */
  timeoutSeconds: number | null;
  /** Worker image for the Kubernetes executor; null for the configured default. */
  image: string | null;
  /** Kubernetes resource quantities, e.g. "500m" and "256Mi"; null for the cluster's default. */
  cpu: string | null;
  memory: string | null;
  /** The pool whose slot an attempt holds while it starts and runs (`@pool("name")`); null for none. */
  pool: string | null;
  /** Order among the owner's ready tasks, -100 to 100, higher first; null: the submission's, else 0. */
  priority: number | null;
}

export const DEFAULT_TASK_OPTIONS: TaskOptions = {
  retries: 0,
  timeoutSeconds: null,
  image: null,
  cpu: null,
  memory: null,
  pool: null,
  priority: null,
};

/** One `p:upstream` pair of a task's signature. */
export interface TaskParam {
  name: string;
  upstream: string;
}

/** A task as the DSL parser produces it. */
export interface TaskSpec {
  name: string;
  params: TaskParam[];
  /** The body, dedented as Python reads it, blank lines and comments kept, ending in a newline. */
  body: string;
  options: TaskOptions;
  /** 1-based line of the `fun` keyword, for messages about this task. */
  line: number;
}

/** A parsed, validated workflow: tasks in topological order (every upstream before its dependents). */
export interface WorkflowSpec {
  tasks: TaskSpec[];
}

/** The bus message that asks a dispatcher to run one attempt of one task. */
export interface TaskMessage {
  taskId: string;
  attempt: number;
}

/** What a dispatcher needs to run an attempt, returned by `start_runs`. */
export interface RunAssignment {
  runId: string;
  workflowId: string;
  taskId: string;
  taskName: string;
  attempt: number;
  params: TaskParam[];
  options: TaskOptions;
  /** Where the task's code is in its workflow's code bundle. */
  code: CodeRange;
  hasRequirements: boolean;
}

/** A task's bytes in its workflow's code bundle (`objectPaths.codeBundle`): `length` bytes from `offset`. */
export interface CodeRange {
  offset: number;
  length: number;
}

/** The one failure shape a worker writes and the dispatcher records (Python writes the same JSON). */
export interface WorkerFailure {
  type:
    | "task_failed"
    | "download_failed"
    | "requirements_failed"
    | "upload_failed"
    | "worker_error"
    | "sandbox_failed"
    | "memory_limit"
    | "disk_limit"
    | "cpu_limit"
    | "output_rejected";
  message: string;
  exitCode: number | null;
  /** True when running the attempt again cannot help (the failure is in what was submitted). */
  nonRetryable: boolean;
}

/** Storage buckets and the deterministic object paths inside them. */
export const OUTPUT_BUCKET = "Task_Output";
export const CODE_BUCKET = "Task_Code";

export const objectPaths = {
  /** A task's output: the one of its attempt whose success was recorded (what downstream tasks read). */
  output: (workflowId: string, taskName: string) => `${workflowId}/${taskName}/output.txt`,
  /**
   * Where a worker that uploads its output itself puts it: its attempt's own object, which the dispatcher
   * moves to `output` before it records the success. An attempt that ends after it was replaced (its
   * worker cut off, its dispatcher paused) writes only here, where nobody reads.
   */
  attemptOutput: (workflowId: string, taskName: string, attempt: number) =>
    `${workflowId}/${taskName}/attempt-${attempt}.output.txt`,
  log: (workflowId: string, taskName: string, attempt: number) =>
    `${workflowId}/${taskName}/attempt-${attempt}.log`,
  /** Every task's code of one workflow, one after another; each task's range is stored with the task. */
  codeBundle: (workflowId: string) => `${workflowId}/code.bundle`,
  requirements: (workflowId: string) => `${workflowId}/requirements.txt`,
  /** A submit-time input (`inputs.NAME`), stored beside the workflow's code. */
  input: (workflowId: string, name: string) => `${workflowId}/inputs/${name}`,
};
