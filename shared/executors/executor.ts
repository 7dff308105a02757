import type { FailureReason, RunAssignment } from "../model.ts";

/** Everything a worker needs, as signed URLs: its environment holds nothing else of DWOP's. */
export interface WorkerEnv {
  /** Signed GET of the workflow's code bundle; absent when DWOP_CODE holds the task's code. */
  DWOP_CODE_URL?: string;
  /** The task's code itself (its range of the bundle), base64: a small one, read by the dispatcher (inlineBytes). */
  DWOP_CODE?: string;
  /** The task's bytes in the bundle, `offset,length`: the worker fetches only these (an HTTP Range). Absent: the whole object is the task's code. */
  DWOP_CODE_RANGE?: string;
  /** Absent when the workflow has no requirements. */
  DWOP_REQUIREMENTS_URL?: string;
  /**
   * JSON array of {"param": name, "url": signed GET URL}, or {"param": name, "data": base64} for a small
   * input the dispatcher read itself (inlineBytes).
   */
  DWOP_INPUTS: string;
  DWOP_OUTPUT_URL: string;
  DWOP_LOG_URL: string;
  /** Where the worker ships its live log and asks for fresh upload URLs (absent: no API to reach). */
  DWOP_LOG_STREAM_URL?: string;
  /** The run's log-stream token (shared/log-stream.ts): good for this run's log and uploads only. */
  DWOP_LOG_STREAM_TOKEN?: string;
  /**
   * After a success whose output and log are both at most this many bytes, the worker leaves them to the
   * executor (RunOutcome's `result`) instead of uploading them: set with inline objects (inlineBytes).
   */
  DWOP_INLINE_RESULT_BYTES?: string;
  /** The attempt this run is (1 for the first), which the task body may read: the only DWOP_* it keeps. */
  DWOP_ATTEMPT: string;
}

/** How an attempt ended, as observed by the executor. */
export type RunOutcome =
  /**
   * `result`: the output and log the worker left to be stored (WorkerEnv.DWOP_INLINE_RESULT_BYTES).
   * `uploaded`: the worker uploaded its output itself, to its attempt's own object (DWOP_OUTPUT_URL),
   * which the dispatcher moves to the task's path. Neither: the executor has no output (a no-op one).
   */
  | { kind: "succeeded"; result?: RunResult; uploaded?: true }
  | {
      kind: "failed";
      reason: FailureReason;
      message: string;
      exitCode: number | null;
      logTail: string;
      nonRetryable: boolean;
    };

/** A run's output (the body's stdout) and log, for the dispatcher to store where the worker would have. */
export interface RunResult {
  output: Uint8Array;
  log: Uint8Array;
}

export interface StartedRun {
  /** Executor-specific name: a process id, a Job name. */
  jobName: string;
}

/** A start that can never succeed (the executor refused what the task asks for): retrying cannot help. */
export class StartRefused extends Error {
  readonly nonRetryable = true;
  constructor(message: string) {
    super(message);
    this.name = "StartRefused";
  }
}

/**
 * Where workers run. `start` must be idempotent for the same (task, attempt): starting twice never runs
 * the attempt twice.
 *
 * `runsIn` says who sees a run end:
 * - "process": runs are children of this process and die with it. The dispatcher holds a slot per run
 *   until `onFinished` reports it, records the outcome, and a dead dispatcher's runs are reaped as lost.
 * - "cluster": runs outlive this process (Kubernetes Jobs). `start` only submits; the dispatcher frees
 *   its slot as soon as it returns, and a cluster observer (one per deployment, not per dispatcher)
 *   records every end. `active()` is then empty and `onFinished` never fires.
 */
export interface Executor {
  readonly kind: "local" | "kubernetes";
  readonly runsIn: "process" | "cluster";
  /**
   * Objects a run reads (its code, its inputs) of at most this many bytes are put in its environment
   * instead of a signed URL, where the storage can read them at once (Storage.readNow): no GET on the
   * run's path; its output and log come back the same way when they are as small (RunOutcome's
   * `result`). Absent or 0: always URLs.
   */
  readonly inlineBytes?: number;
  start(run: RunAssignment, env: WorkerEnv): Promise<StartedRun>;
  /** Stops a run early (cancellation). True when the run was still held: its outcome is then never reported. */
  kill(runId: string): Promise<boolean>;
  /** Runs this process is currently responsible for. */
  active(): string[];
  onFinished(listener: (run: RunAssignment, outcome: RunOutcome) => void): void;
  close(): Promise<void>;
}
