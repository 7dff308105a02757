import type { PendingQuery, Row } from "postgres";
import type { Db } from "./connect.ts";
import type { RunSummary, TaskDetail } from "./api-store.ts";

/** Rows a batch of the read holds (a task, or one of its runs), and tasks a piece of the JSON text holds. */
const BATCH = 1000;

/** A row of the read: a task (the columns it is given, its id and position), and one of its runs or none. */
type TaskWithRun = Omit<TaskDetail, "runs"> & {
  id: string;
  position: number;
  runId: string | null;
  runAttempt: number;
  runStatus: RunSummary["status"];
  runFailureReason: RunSummary["failureReason"];
  runExitCode: number | null;
  runStartedAt: Date | null;
  runFinishedAt: Date | null;
};

/**
 * A workflow's tasks with their runs (the `tasks` of the API's WorkflowDetail) as JSON text in pieces whose
 * concatenation is the array's elements, comma-separated; `taskColumns` are a task's fields as the API shows
 * them, in its order (its id among them). The tasks and their runs come from one statement (one snapshot)
 * read BATCH rows at a time, and each batch becomes text at once: no object per task is held for the whole
 * workflow and no string of its whole size is made. Read whole into objects, a GET of a 100,000-task
 * workflow just submitted took its server's RSS from 409 to 586 MB; read so, to 506 MB.
 */
export async function tasksJson(
  db: Db,
  workflowId: string,
  taskColumns: PendingQuery<Row[]>,
): Promise<string[]> {
  const pieces: string[] = [];
  let piece: string[] = [];
  let task: TaskDetail | null = null;
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
    select t.*,
      r.id as "runId", r.attempt as "runAttempt", r.status as "runStatus", r.failure_reason as "runFailureReason",
      r.exit_code as "runExitCode", r.started_at as "runStartedAt", r.finished_at as "runFinishedAt"
    from (select ${taskColumns}, position from dwop.tasks where workflow_id = ${workflowId}) t
    left join dwop.runs r on r.task_id = t.id and r.workflow_id = ${workflowId}
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

/** The task's fields in the order the API has always shown them (its columns' order). */
function taskOf(row: TaskWithRun): TaskDetail {
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
    queuedAt: row.queuedAt,
    dispatchedAt: row.dispatchedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    runs: [],
  };
}

function runOf(row: TaskWithRun): RunSummary {
  return {
    id: row.runId!,
    attempt: row.runAttempt,
    status: row.runStatus,
    failureReason: row.runFailureReason,
    exitCode: row.runExitCode,
    startedAt: row.runStartedAt,
    finishedAt: row.runFinishedAt,
  };
}
