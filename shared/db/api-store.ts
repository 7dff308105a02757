import type { Db } from "./connect.ts";
import { tasksJson } from "./workflow-json.ts";
import type { FailureReason, RunState, TaskParam, TaskState, WorkflowState } from "../model.ts";

/**
 * The HTTP API's reads and calls, each scoped to one owner: a workflow, run or trigger of another owner
 * is not found. State changes go through DWOP's SQL functions, as everywhere.
 */

export interface RunSummary {
  id: string;
  attempt: number;
  status: RunState;
  failureReason: FailureReason | null;
  exitCode: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface TaskDetail {
  name: string;
  status: TaskState;
  attempt: number;
  maxRetries: number;
  error: string | null;
  params: TaskParam[];
  pool: string | null;
  priority: number;
  /** Why a queued task has not started (its pool is full, its owner at its cap); null otherwise. */
  waiting: string | null;
  queuedAt: Date | null;
  dispatchedAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  runs: RunSummary[];
}

export interface WorkflowRow {
  id: string;
  name: string;
  /** The schedule that started it, if one did. */
  schedule: string | null;
  status: WorkflowState;
  taskCount: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface WorkflowDetail extends WorkflowRow {
  inputs: string[];
  hasRequirements: boolean;
  tasks: TaskDetail[];
}

export interface RunDetail extends RunSummary {
  workflowId: string;
  taskName: string;
  executor: string | null;
  jobName: string | null;
  dispatcherId: string | null;
  error: string | null;
  logTail: string | null;
  createdAt: Date;
  dispatchedAt: Date | null;
}

export interface WorkflowEvent {
  id: string;
  kind: string;
  task: string | null;
  status: string | null;
  attempt: number | null;
  data: unknown;
  at: Date;
}

export interface TriggerRow {
  /** Random: the trigger's URL is `/hooks/<id>`, and its deliveries are signed for it. */
  id: string;
  /** Unique among its owner's triggers only. */
  name: string;
  owner: string;
  source: string;
  requirements: string | null;
  createdAt: Date;
}

export interface ApiKeyRow {
  id: string;
  name: string;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
  maxRunning: number | null;
}

export interface Reservation {
  workflowId: string;
  requestHash: string;
  workflowExists: boolean;
}

const WORKFLOW_COLUMNS = `id, name, schedule, status, task_count as "taskCount", created_at as "createdAt",
  started_at as "startedAt", finished_at as "finishedAt"`;

type TaskRow = Omit<TaskDetail, "runs"> & { id: string };
type RunRow = RunSummary & { taskId: string };

const RUN_SUMMARY_COLUMNS = `id, task_id as "taskId", attempt, status, failure_reason as "failureReason",
  exit_code as "exitCode", started_at as "startedAt", finished_at as "finishedAt"`;

/**
 * A task's columns as the API shows them. parked_reason (a SQL function with subqueries, never inlined)
 * only for parked tasks: called for each row it took 30-40 ms of reading a 10,000-task workflow.
 */
function taskColumns(sql: Db, ownerMaxRunning: number | null) {
  return sql`id, name, status, attempt, max_retries as "maxRetries", error, params, pool, priority,
    case when parked is not null then dwop.parked_reason(parked, owner, pool, ${ownerMaxRunning}::int) end
      as waiting,
    queued_at as "queuedAt", dispatched_at as "dispatchedAt", started_at as "startedAt",
    finished_at as "finishedAt"`;
}

/** Each task with its runs, the runs grouped once (filtering them for each task is quadratic: minutes for
 * a running 100,000-task workflow). */
function withRuns(tasks: TaskRow[], runs: RunRow[]): TaskDetail[] {
  const runsOf = new Map<string, RunSummary[]>();
  for (const { taskId, ...r } of runs) {
    const list = runsOf.get(taskId);
    if (list) list.push(r);
    else runsOf.set(taskId, [r]);
  }
  return tasks.map(({ id, ...t }) => ({ ...t, runs: runsOf.get(id) ?? [] }));
}

export class ApiStore {
  constructor(readonly db: Db) {}

  /** The owner's workflows, newest first, `limit` of them after the workflow `cursor` (an id). */
  async listWorkflows(
    owner: string,
    q: { status?: WorkflowState; schedule?: string; limit: number; cursor?: string },
  ): Promise<WorkflowRow[]> {
    const sql = this.db;
    return sql<WorkflowRow[]>`
      select ${sql.unsafe(WORKFLOW_COLUMNS)} from dwop.workflows
      where owner = ${owner}
        ${q.status ? sql`and status = ${q.status}` : sql``}
        ${q.schedule ? sql`and schedule = ${q.schedule}` : sql``}
        ${
          q.cursor
            ? sql`and (created_at, id) < (
          select created_at, id from dwop.workflows where id = ${q.cursor} and owner = ${owner})`
            : sql``
        }
      order by created_at desc, id desc
      limit ${q.limit}`;
  }

  /**
   * The owner's workflow with its tasks and runs (WorkflowDetail) as JSON text in pieces whose concatenation
   * is the document (see tasksJson), or null when the owner has no such workflow; `ownerMaxRunning` is
   * DWOP_OWNER_MAX_RUNNING.
   */
  async workflowJson(
    owner: string,
    id: string,
    ownerMaxRunning: number | null = null,
  ): Promise<string[] | null> {
    const sql = this.db;
    const [wf] = await sql<Omit<WorkflowDetail, "tasks">[]>`
      select ${sql.unsafe(WORKFLOW_COLUMNS)}, inputs, has_requirements as "hasRequirements"
      from dwop.workflows where id = ${id} and owner = ${owner}`;
    if (!wf) return null;
    const head = JSON.stringify(wf);
    const tasks = await tasksJson(sql, id, taskColumns(sql, ownerMaxRunning));
    return [`${head.slice(0, -1)},"tasks":[`, ...tasks, "]}"];
  }

  /**
   * A page of the owner's workflow's tasks with their runs, by name: `limit` of them after the task named
   * `cursor` (or the one named `name` alone), of the given states only when `statuses` names some; null
   * when the owner has no such workflow. Each page is read through the (workflow, name) index, whatever
   * the workflow's size.
   */
  async tasks(
    owner: string,
    id: string,
    q: { statuses?: TaskState[]; limit: number; cursor?: string; name?: string },
    ownerMaxRunning: number | null = null,
  ): Promise<TaskDetail[] | null> {
    const sql = this.db;
    const [wf] = await sql`select 1 from dwop.workflows where id = ${id} and owner = ${owner}`;
    if (!wf) return null;
    const tasks = await sql<TaskRow[]>`
      select ${taskColumns(sql, ownerMaxRunning)}
      from dwop.tasks
      where workflow_id = ${id}
        ${q.cursor === undefined ? sql`` : sql`and name > ${q.cursor}`}
        ${q.name === undefined ? sql`` : sql`and name = ${q.name}`}
        ${q.statuses?.length ? sql`and status = any(${q.statuses}::text[])` : sql``}
      order by name
      limit ${q.limit}`;
    const runs = tasks.length
      ? await sql<RunRow[]>`
          select ${sql.unsafe(RUN_SUMMARY_COLUMNS)}
          from dwop.runs where task_id = any(${tasks.map((t) => t.id)}::bigint[]) order by attempt`
      : [];
    return withRuns(tasks, runs);
  }

  /** The workflow's state, or null when the owner has no such workflow. */
  async workflowStatus(owner: string, id: string): Promise<WorkflowState | null> {
    const [row] = await this.db<{ status: WorkflowState }[]>`
      select status from dwop.workflows where id = ${id} and owner = ${owner}`;
    return row?.status ?? null;
  }

  /** Cancels the owner's workflow; null when not found, else its state before the call. */
  async cancelWorkflow(owner: string, id: string): Promise<WorkflowState | null> {
    const [row] = await this.db<{ before: WorkflowState }[]>`
      select w.status as before,
             case when w.status in ('queued', 'running') then dwop.cancel_workflow(w.id) end as cancelled
      from dwop.workflows w where w.id = ${id} and w.owner = ${owner}`;
    return row?.before ?? null;
  }

  /** Retries the owner's workflow; null when not found, else its state before and whether it was retried. */
  async retryWorkflow(
    owner: string,
    id: string,
  ): Promise<{ before: WorkflowState; retried: boolean } | null> {
    const [row] = await this.db<{ before: WorkflowState; retried: boolean }[]>`
      select w.status as before, dwop.retry_workflow(w.id) is not null as retried
      from dwop.workflows w where w.id = ${id} and w.owner = ${owner}`;
    return row ?? null;
  }

  /** The attempt a task of the owner's workflow is at (0 before its first), or null when there is none. */
  /** The owner's task's latest attempt and its state; null for another owner's or no such task. */
  async taskAttempt(
    owner: string,
    workflowId: string,
    name: string,
  ): Promise<{ attempt: number; status: TaskState } | null> {
    const [row] = await this.db<{ attempt: number; status: TaskState }[]>`
      select t.attempt, t.status from dwop.tasks t join dwop.workflows w on w.id = t.workflow_id
      where w.id = ${workflowId} and w.owner = ${owner} and t.name = ${name}`;
    return row ?? null;
  }

  async run(owner: string, workflowId: string, runId: string): Promise<RunDetail | null> {
    const [row] = await this.db<RunDetail[]>`
      select r.id, r.workflow_id as "workflowId", t.name as "taskName", r.attempt, r.status, r.executor,
             r.job_name as "jobName", r.dispatcher_id as "dispatcherId", r.exit_code as "exitCode",
             r.failure_reason as "failureReason", r.error, r.log_tail as "logTail", r.created_at as "createdAt",
             r.dispatched_at as "dispatchedAt", r.started_at as "startedAt", r.finished_at as "finishedAt"
      from dwop.runs r
      join dwop.tasks t on t.id = r.task_id
      join dwop.workflows w on w.id = r.workflow_id
      where r.id = ${runId} and r.workflow_id = ${workflowId} and w.owner = ${owner}`;
    return row ?? null;
  }

  /** Up to `limit` events of a workflow with ids above `afterId`, in id order. */
  async eventsAfter(workflowId: string, afterId: string, limit: number): Promise<WorkflowEvent[]> {
    return this.db<WorkflowEvent[]>`
      select id, kind, task_name as task, status, attempt, data, at from dwop.events
      where workflow_id = ${workflowId} and id > ${afterId}
      order by id limit ${limit}`;
  }

  /** Reserves a workflow id for a submission with an idempotency key or a callback (see the migration). */
  async reserveSubmission(s: {
    owner: string;
    idempotencyKey: string | null;
    requestHash: string;
    workflowId: string;
    callbackUrl: string | null;
    callbackSecret: string | null;
  }): Promise<Reservation> {
    const [row] = await this.db<Reservation[]>`
      select workflow_id as "workflowId", request_hash as "requestHash", workflow_exists as "workflowExists"
      from dwop.reserve_submission(${s.owner}, ${s.idempotencyKey}, ${s.requestHash}, ${s.workflowId},
                                   ${s.callbackUrl}, ${s.callbackSecret})`;
    if (!row) throw new Error("reserve_submission returned no row");
    return row;
  }

  async createApiKey(owner: string, name: string): Promise<ApiKeyRow & { key: string }> {
    const [row] = await this.db<(ApiKeyRow & { key: string })[]>`
      select id, ${name}::text as name, key, prefix, created_at as "createdAt", null::timestamptz as "revokedAt",
             null::int as "maxRunning"
      from dwop.create_api_key(${owner}, ${name})`;
    if (!row) throw new Error("create_api_key returned no row");
    return row;
  }

  async listApiKeys(owner: string): Promise<ApiKeyRow[]> {
    return this.db<ApiKeyRow[]>`
      select id, name, prefix, created_at as "createdAt", revoked_at as "revokedAt", max_running as "maxRunning"
      from dwop.api_keys where owner = ${owner} order by created_at desc, id`;
  }

  async revokeApiKey(owner: string, id: string): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`select dwop.revoke_api_key(${owner}, ${id}) as ok`;
    return row?.ok ?? false;
  }

  /** The owner of the live key with this SHA-256 (hex), or null. */
  async apiKeyOwner(keyHash: string): Promise<string | null> {
    const [row] = await this.db<{ owner: string | null }[]>`select dwop.api_key_owner(${keyHash}) as owner`;
    return row?.owner ?? null;
  }

  /** Registers a trigger and returns its id; null when the owner already has one of that name. */
  async createTrigger(t: {
    owner: string;
    name: string;
    source: string;
    requirements: string | null;
    secret: string;
  }): Promise<string | null> {
    const [row] = await this.db<{ id: string | null }[]>`
      select dwop.create_trigger(${t.owner}, ${t.name}, ${t.source}, ${t.requirements}, ${t.secret}) as id`;
    return row?.id ?? null;
  }

  /** The owner's triggers (never their secrets). */
  async listTriggers(owner: string, name?: string): Promise<TriggerRow[]> {
    const sql = this.db;
    return sql<TriggerRow[]>`
      select id, name, owner, source, requirements, created_at as "createdAt" from dwop.triggers
      where owner = ${owner} ${name === undefined ? sql`` : sql`and name = ${name}`} order by name`;
  }

  async deleteTrigger(owner: string, name: string): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`select dwop.delete_trigger(${owner}, ${name}) as ok`;
    return row?.ok ?? false;
  }

  /** A trigger with its secret, for checking a delivery; null when there is none with that id. */
  async triggerForDelivery(id: string): Promise<(TriggerRow & { secret: string }) | null> {
    const [row] = await this.db<(TriggerRow & { secret: string })[]>`
      select id, name, owner, source, requirements, secret, created_at as "createdAt"
      from dwop.triggers where id = ${id}`;
    return row ?? null;
  }

  /** Records a delivery (reserving `workflowId` for it) or finds the earlier record of the same one. */
  async recordHookDelivery(
    triggerId: string,
    deliveryId: string,
    workflowId: string,
  ): Promise<{ workflowId: string; workflowExists: boolean }> {
    const [row] = await this.db<{ workflowId: string; workflowExists: boolean }[]>`
      select workflow_id as "workflowId", workflow_exists as "workflowExists"
      from dwop.record_hook_delivery(${triggerId}, ${deliveryId}, ${workflowId})`;
    if (!row) throw new Error("record_hook_delivery returned no row");
    return row;
  }
}
