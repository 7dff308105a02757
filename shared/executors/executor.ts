import type { FailureReason, RunAssignment } from "../model.ts";

/** Everything a worker needs, as signed URLs: its environment holds nothing else of DWOP's. */
export interface WorkerEnv {
  DWOP_CODE_URL: string;
  /** Absent when the workflow has no requirements. */
  DWOP_REQUIREMENTS_URL?: string;
  /** JSON array of {"param": name, "url": signed GET URL}. */
  DWOP_INPUTS: string;
  DWOP_OUTPUT_URL: string;
  DWOP_LOG_URL: string;
}

/** How an attempt ended, as observed by the executor. */
export type RunOutcome =
  | { kind: "succeeded" }
  | {
      kind: "failed";
      reason: FailureReason;
      message: string;
      exitCode: number | null;
      logTail: string;
      nonRetryable: boolean;
    };

export interface StartedRun {
  /** Executor-specific name: a process id, a Job name. */
  jobName: string;
}

/**
 * Where workers run. `start` must be idempotent for the same (task, attempt): starting twice never runs
 * the attempt twice. `onFinished` is called once per run that this process observes ending.
 */
export interface Executor {
  readonly kind: "local" | "kubernetes";
  start(run: RunAssignment, env: WorkerEnv): Promise<StartedRun>;
  /** Stops a run early (cancellation). True when the run was still held: its outcome is then never reported. */
  kill(runId: string): Promise<boolean>;
  /** Runs this executor is currently responsible for. */
  active(): string[];
  onFinished(listener: (run: RunAssignment, outcome: RunOutcome) => void): void;
  close(): Promise<void>;
}
