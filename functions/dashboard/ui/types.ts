// What the dashboard reads from the API: the JSON shapes of functions/schemas.ts, dates as ISO strings.
import type { FailureReason, RunState, TaskParam, TaskState, WorkflowState } from "../../../shared/model.ts";

export type { TaskParam, TaskState, WorkflowState };

export const TASK_STATE_ORDER: readonly TaskState[] = [
  "running",
  "dispatched",
  "queued",
  "pending",
  "succeeded",
  "failed",
  "upstream_failed",
  "cancelled",
];

export const WORKFLOW_STATE_LIST: readonly WorkflowState[] = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
];

export interface RunSummary {
  id: string;
  attempt: number;
  status: RunState;
  failureReason: FailureReason | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RunDetail extends RunSummary {
  executor: string | null;
  jobName: string | null;
  error: string | null;
  logTail: string | null;
  createdAt: string;
}

export interface Task {
  name: string;
  status: TaskState;
  attempt: number;
  maxRetries: number;
  error: string | null;
  params: TaskParam[];
  pool: string | null;
  priority: number;
  /** Why a queued task has not started: its pool is full, or its owner at its cap. */
  waiting: string | null;
  queuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  runs: RunSummary[];
}

export interface Workflow {
  id: string;
  name: string;
  schedule: string | null;
  status: WorkflowState;
  taskCount: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface WorkflowDetail extends Workflow {
  inputs: string[];
  hasRequirements: boolean;
  tasks: Task[];
}

/** A schedule as GET /schedules lists it. */
export interface Schedule {
  name: string;
  cron: string;
  timezone: string;
  overlap: string;
  catchup: string;
  paused: boolean;
  nextFireAt: string | null;
  lastRuns: { id: string; status: WorkflowState; createdAt: string; finishedAt: string | null }[];
  lastFires: ScheduleFire[];
}

/** What became of one fire time (or, missed, of the range fireAt..missedThrough). */
export interface ScheduleFire {
  fireAt: string;
  outcome: "started" | "failed" | "skipped_overlap" | "missed";
  workflowId: string | null;
  reason: string | null;
  missedThrough: string | null;
  missedCount: number | null;
}

export interface WorkflowSummary extends Workflow {
  owner: string;
  tasks: Partial<Record<TaskState, number>>;
}

export interface SummaryPage {
  owner: string;
  workflows: WorkflowSummary[];
  nextCursor: string | null;
}

export interface WorkflowEvent {
  id: string;
  kind: string;
  task: string | null;
  status: string | null;
  attempt: number | null;
}

export interface DslErrorInfo {
  line: number;
  column: number;
  message: string;
}

export interface ValidatedWorkflow {
  valid: true;
  tasks: { name: string; line: number; params: TaskParam[] }[];
  inputs: string[];
}
