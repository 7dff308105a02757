import type { Db } from "./connect.ts";
import type { RunSummary, TaskDetail } from "./api-store.ts";

/** Tasks a batch of the read holds, and a piece of the JSON text. */
const BATCH = 1000;

/** T as JSON has it: each Date a string. */
type AsJson<T> = {
  [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K];
};
type RunJson = AsJson<RunSummary>;
type TaskJson = AsJson<Omit<TaskDetail, "runs">> & { runs: RunJson[] };

/** A row of the read: a task, and one of its runs or none; timestamps as Postgres writes them in UTC. */
type TaskWithRun = Omit<TaskJson, "runs"> & {
  id: string;
  runId: string | null;
  runAttempt: number;
  runStatus: RunSummary["status"];
  runFailureReason: RunSummary["failureReason"];
  runExitCode: number | null;
  runStartedAt: string | null;
  runFinishedAt: string | null;
};

/**
 * A workflow's tasks with their runs (the `tasks` of the API's WorkflowDetail) as JSON text in pieces whose
 * concatenation is the array's elements, comma-separated. The tasks and their runs come from one statement
 * (one snapshot) read BATCH rows at a time, and each batch becomes text at once: no object per task is held
 * for the whole workflow and no string of its whole size is made. Read whole into objects, a 100,000-task
 * workflow took its server from 80 MB to ~500 MB of RSS and 2-3 s.
 */
export async function tasksJson(
  db: Db,
  workflowId: string,
  ownerMaxRunning: number | null,
): Promise<string[]> {
  const pieces: string[] = [];
  let piece: string[] = [];
  let task: TaskJson | null = null;
  let taskId = "";
  const flush = () => {
    if (piece.length === 0) return;
    pieces.push(`${pieces.length > 0 ? "," : ""}${piece.join(",")}`);
    piece = [];
  };
  const finishTask = () => {
    if (task) piece.push(JSON.stringify(task));
    task = null;
    if (piece.length >= BATCH) flush();
  };
  const rows = db<TaskWithRun[]>`
    select t.id, t.name, t.status, t.attempt, t.max_retries as "maxRetries", t.error, t.params, t.pool, t.priority,
      case when t.parked is not null then dwop.parked_reason(t.parked, t.owner, t.pool, ${ownerMaxRunning}::int) end
        as waiting,
      (t.queued_at at time zone 'UTC')::text as "queuedAt",
      (t.dispatched_at at time zone 'UTC')::text as "dispatchedAt",
      (t.started_at at time zone 'UTC')::text as "startedAt",
      (t.finished_at at time zone 'UTC')::text as "finishedAt",
      r.id as "runId", r.attempt as "runAttempt", r.status as "runStatus", r.failure_reason as "runFailureReason",
      r.exit_code as "runExitCode", (r.started_at at time zone 'UTC')::text as "runStartedAt",
      (r.finished_at at time zone 'UTC')::text as "runFinishedAt"
    from dwop.tasks t
    left join dwop.runs r on r.task_id = t.id and r.workflow_id = t.workflow_id
    where t.workflow_id = ${workflowId}
    order by t.position, r.attempt`;
  for await (const batch of rows.cursor(BATCH)) {
    for (const row of batch) {
      if (row.id !== taskId) {
        finishTask();
        taskId = row.id;
        task = taskOf(row);
      }
      if (row.runId !== null) task!.runs.push(runOf(row));
    }
  }
  finishTask();
  flush();
  return pieces;
}

/** The task's fields in the order the API has always shown them. */
function taskOf(row: TaskWithRun): TaskJson {
  return {
    name: row.name,
    status: row.status,
    attempt: row.attempt,
    maxRetries: row.maxRetries,
    error: row.error,
    params: row.params,
    pool: row.pool,
    priority: row.priority,
    waiting: row.waiting,
    queuedAt: isoTime(row.queuedAt),
    dispatchedAt: isoTime(row.dispatchedAt),
    startedAt: isoTime(row.startedAt),
    finishedAt: isoTime(row.finishedAt),
    runs: [],
  };
}

function runOf(row: TaskWithRun): RunJson {
  return {
    id: row.runId!,
    attempt: row.runAttempt,
    status: row.runStatus,
    failureReason: row.runFailureReason,
    exitCode: row.runExitCode,
    startedAt: isoTime(row.runStartedAt),
    finishedAt: isoTime(row.runFinishedAt),
  };
}

/**
 * A UTC timestamp as Postgres writes it (`2026-12-06 13:08:34.123456`, its fraction's trailing zeros left
 * out) as JSON writes a Date (`2026-12-06T13:08:34.123Z`: milliseconds, cut): no Date is made for it.
 */
function isoTime(text: string | null): string | null {
  if (text === null) return null;
  const ms = text.length > 20 ? text.slice(20, 23).padEnd(3, "0") : "000";
  return `${text.slice(0, 10)}T${text.slice(11, 19)}.${ms}Z`;
}
