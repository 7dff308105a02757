import type postgres from "postgres";
import type { Db } from "./connect.ts";
import type {
  CodeRange,
  FailureReason,
  RunAssignment,
  TaskMessage,
  TaskOptions,
  TaskParam,
  TaskSpec,
  TaskState,
  WorkflowState,
} from "../model.ts";

/** A claimed outbox row. */
export interface ClaimedEvent {
  id: string;
  message: TaskMessage;
}

/** A claimed completion callback: where to send it, how to sign it, what to send, and which try it is. */
export interface CallbackDelivery {
  id: string;
  workflowId: string;
  url: string;
  secret: string;
  body: unknown;
  attempt: number;
}

export type CallbackResult = "delivered" | "retrying" | "gave_up" | "ignored";

export type StartRunResult =
  { kind: "created"; assignment: RunAssignment } | { kind: "duplicate"; runId: string } | { kind: "stale" };

export interface RunFailure {
  reason: FailureReason;
  message: string;
  exitCode: number | null;
  logTail: string | null;
  nonRetryable: boolean;
}

export interface SubmitInput {
  id: string;
  owner: string;
  name: string;
  source: string;
  hasRequirements: boolean;
  inputs: string[];
  tasks: TaskSpec[];
  /** Each task's range in the code bundle, in the order of `tasks`. */
  code: CodeRange[];
  /** Base delay before the first retry; doubles with each further retry. */
  retryBackoffMs: number;
  /** When it was submitted (tests move time); the database's now when absent. */
  now?: Date;
  /** Attempts each task may lose to the infrastructure (lost, evicted, OOM-killed...) beyond the first; default 3. */
  maxInfraRetries?: number;
  /** The name of the schedule that starts this workflow, marked on it in the same transaction. */
  schedule?: string;
  /** With `schedule`: cancel its other unfinished workflows in the same transaction (overlap cancel_previous). */
  cancelPrevious?: boolean;
  /** The priority of tasks without @priority (default 0). */
  priority?: number;
}

/** A workflow names a pool that does not exist (SQLSTATE DW001 of submit_workflow). */
export class UnknownPoolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnknownPoolError";
  }
}

export interface TaskSummary {
  name: string;
  status: TaskState;
  attempt: number;
  attempts: number;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface WorkflowSummary {
  id: string;
  name: string;
  owner: string;
  status: WorkflowState;
  createdAt: Date;
  finishedAt: Date | null;
  tasks: TaskSummary[];
}

/** A task id as the database makes them (bigint identity). */
const TASK_ID = /^[1-9][0-9]{0,17}$/;
/** The largest attempt number (an int column). */
const MAX_INT = 2 ** 31 - 1;

/** The row start_runs (and start_cluster_run) answers for a run it made or found. */
export interface StartRunRow {
  run_id: string;
  created: boolean;
  workflow_id: string;
  task_name: string;
  params: TaskParam[];
  options: Partial<TaskOptions> & { code: CodeRange };
  timeout_seconds: number | null;
  has_requirements: boolean;
}

/** How long Store.whileRunActive may hold a run's row while its step runs. */
const HOLD_RUN_SECONDS = 60;

/** Typed calls to DWOP's SQL functions: the only way the engine changes state. */
export class Store {
  constructor(readonly db: Db) {}

  /** Inserts the workflow, tasks and root outbox rows in one transaction; false if the id exists. */
  async submitWorkflow(input: SubmitInput): Promise<boolean> {
    const c = taskColumns(input.tasks, input.code, input.priority ?? 0);
    const submit = async (sql: postgres.Sql | postgres.TransactionSql) => {
      const [row] = await sql<{ created: boolean }[]>`
        select dwop.submit_workflow(${input.id}, ${input.owner}, ${input.name}, ${input.source},
          ${input.hasRequirements}, ${input.inputs}::text[], ${c.names}::text[], ${sql.json(c.params)},
          ${c.retries}::int[], ${c.timeouts}::int[], ${c.images}::text[], ${c.cpus}::text[], ${c.memories}::text[],
          ${c.codeOffsets}::bigint[], ${c.codeLengths}::int[], ${c.pools}::text[], ${c.priorities}::int[],
          ${c.edgeDown}::int[], ${c.edgeUp}::int[],
          ${input.retryBackoffMs}, ${input.maxInfraRetries ?? null}, ${input.now ?? null}) as created`;
      const created = row?.created ?? false;
      if (created && input.schedule) {
        await sql`select dwop.mark_workflow_scheduled(${input.id}, ${input.schedule}, ${input.cancelPrevious ?? false})`;
      }
      return created;
    };
    try {
      // A scheduled workflow is made, marked with its schedule and its previous runs cancelled (when
      // asked) in one transaction: a submit that fails cancels nothing.
      return input.schedule ? await this.db.begin((sql) => submit(sql)) : await submit(this.db);
    } catch (err) {
      if ((err as { code?: unknown }).code === "DW001") throw new UnknownPoolError((err as Error).message);
      throw err;
    }
  }

  async claimOutbox(claimerId: string, batchSize: number, leaseSeconds: number): Promise<ClaimedEvent[]> {
    const rows = await this.db<{ id: string; payload: TaskMessage }[]>`
      select id, payload from dwop.claim_outbox_events(${claimerId}, ${batchSize}, ${leaseSeconds})`;
    return rows.map((r) => ({ id: r.id, message: { taskId: r.payload.taskId, attempt: r.payload.attempt } }));
  }

  async markPublished(claimerId: string, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const [row] = await this.db<{ n: number }[]>`
      select dwop.mark_outbox_published(${claimerId}, ${ids}::bigint[]) as n`;
    return row?.n ?? 0;
  }

  /** Claims due completion callbacks (outbox rows of topic `workflow.callback`). */
  async claimCallbacks(
    claimerId: string,
    batchSize: number,
    leaseSeconds: number,
  ): Promise<CallbackDelivery[]> {
    return this.db<CallbackDelivery[]>`
      select id, payload->>'workflowId' as "workflowId", callback_url as url, callback_secret as secret,
             payload->'summary' as body, attempt
      from dwop.claim_outbox_events(${claimerId}, ${batchSize}, ${leaseSeconds}, p_topic => 'workflow.callback')`;
  }

  /** Records one try of a claimed callback; `error` null means it was delivered. */
  async recordCallbackResult(
    claimerId: string,
    id: string,
    error: string | null,
    maxAttempts: number,
    backoffMs: number,
  ): Promise<CallbackResult> {
    const [row] = await this.db<{ result: CallbackResult }[]>`
      select dwop.record_callback_result(${claimerId}, ${id}, ${error}, ${maxAttempts}, ${backoffMs}) as result`;
    return row?.result ?? "ignored";
  }

  /** Queues again parked tasks that now have room (pool slots, owner caps); returns how many. */
  async reofferParkedTasks(ownerMaxRunning: number | null): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`
      select dwop.reoffer_parked_tasks(${ownerMaxRunning}) as n`;
    return row?.n ?? 0;
  }

  /** When the earliest unpublished row becomes claimable, or null when there is none. */
  async nextOutboxDue(): Promise<Date | null> {
    const [row] = await this.db<{ due: Date | null }[]>`select dwop.next_outbox_due() as due`;
    return row?.due ?? null;
  }

  /** Records the run of an attempt; "stale" also when the task was parked (pool full, owner at its cap). */
  async startRun(
    message: TaskMessage,
    dispatcherId: string,
    executor: string,
    ownerMaxRunning: number | null = null,
  ): Promise<StartRunResult> {
    const [result] = await this.startRuns([message], dispatcherId, executor, ownerMaxRunning);
    return result!;
  }

  /**
   * startRun for many deliveries in one transaction (start_runs): one result per message, in their order.
   * A (task, attempt) given twice is created once; the second copy is answered "duplicate".
   */
  async startRuns(
    messages: TaskMessage[],
    dispatcherId: string,
    executor: string,
    ownerMaxRunning: number | null = null,
  ): Promise<StartRunResult[]> {
    // A message naming no possible task or attempt has nothing to run (one such must not fail the batch).
    const valid = messages.flatMap((m, i) => (TASK_ID.test(m.taskId) && m.attempt <= MAX_INT ? [i] : []));
    const results: StartRunResult[] = messages.map(() => ({ kind: "stale" }));
    if (valid.length === 0) return results;
    const rows = await this.db<(StartRunRow & { item: number })[]>`
      select * from dwop.start_runs(${`{${valid.map((i) => messages[i]!.taskId).join(",")}}`}::bigint[],
        ${intArray(valid.map((i) => messages[i]!.attempt))}::int[], ${dispatcherId}, ${executor},
        p_owner_max_running => ${ownerMaxRunning})`;
    for (const row of rows) {
      const i = valid[row.item - 1]!;
      results[i] = startRunResult(messages[i]!, row);
    }
    return results;
  }

  /** Marks one run dispatched (markRunsDispatched); false when it was no longer starting. */
  async markRunDispatched(runId: string, jobName: string, started: boolean): Promise<boolean> {
    return (await this.markRunsDispatched([{ runId, jobName }], started)).length > 0;
  }

  /**
   * Marks runs the executor accepted dispatched, in one transaction (mark_runs_dispatched); returns the ids
   * of the runs it marked (those still starting).
   */
  async markRunsDispatched(runs: { runId: string; jobName: string }[], started: boolean): Promise<string[]> {
    if (runs.length === 0) return [];
    const rows = await this.db<{ id: string }[]>`
      select id from dwop.mark_runs_dispatched(${runs.map((r) => r.runId)}::bigint[],
        ${runs.map((r) => r.jobName)}::text[], ${started}) as m (id)`;
    return rows.map((r) => r.id);
  }

  async markRunRunning(runId: string): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`select dwop.mark_run_running(${runId}) as ok`;
    return row?.ok ?? false;
  }

  /**
   * Records successes; returns the run ids this call recorded. `jobNames[i]`, where given, is the job name
   * of run i, whose dispatch was never marked (it ended before its mark went out): recorded with it.
   */
  async completeRuns(runIds: string[], jobNames: (string | null)[] = []): Promise<string[]> {
    if (runIds.length === 0) return [];
    const rows = await this.db<{ id: string }[]>`
      select dwop.complete_runs(${runIds}::bigint[], p_job_names => ${jobNameArray(runIds, jobNames)}::text[]) as id`;
    return rows.map((r) => r.id);
  }

  /**
   * Records successes as completeRuns does and, in the same transaction, starts as `dispatcherId` one task
   * they made ready per success (complete_runs_and_start): their runs, for the caller to launch.
   */
  async completeRunsAndStart(
    runIds: string[],
    dispatcherId: string,
    executor: string,
    ownerMaxRunning: number | null = null,
    jobNames: (string | null)[] = [],
  ): Promise<{ completed: string[]; started: RunAssignment[] }> {
    if (runIds.length === 0) return { completed: [], started: [] };
    const rows = await this.db<
      (StartRunRow & { completed_id: string | null; task_id: string; attempt: number })[]
    >`
      select * from dwop.complete_runs_and_start(${runIds}::bigint[], ${dispatcherId}, ${executor},
        ${ownerMaxRunning}, p_job_names => ${jobNameArray(runIds, jobNames)}::text[])`;
    const completed: string[] = [];
    const started: RunAssignment[] = [];
    for (const r of rows) {
      if (r.completed_id !== null) completed.push(r.completed_id);
      else started.push(runAssignment({ taskId: r.task_id, attempt: r.attempt }, r));
    }
    return { completed, started };
  }

  /** Frees the unpublished outbox rows claimed under this id (its process died), for a claimer to publish now. */
  async releaseOutboxClaims(claimerId: string): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`select dwop.release_outbox_claims(${claimerId}) as n`;
    return row?.n ?? 0;
  }

  /**
   * Records a failed attempt. NUL bytes of the message and log tail are dropped: Postgres text cannot hold
   * them, and a killed pod's log can end in some (the observer retried such an end forever, chaos seed 1126).
   */
  async increaseAttempt(runId: string, f: RunFailure): Promise<"retried" | "failed" | "ignored"> {
    const message = withoutNul(f.message);
    const logTail = f.logTail === null ? null : withoutNul(f.logTail);
    const [row] = await this.db<{ result: "retried" | "failed" | "ignored" }[]>`
      select dwop.increase_attempt(${runId}, ${message}, ${f.reason}, ${f.exitCode}, ${logTail},
        ${f.nonRetryable}) as result`;
    return row?.result ?? "ignored";
  }

  /** Cancels a workflow; null when it does not exist. */
  async cancelWorkflow(workflowId: string): Promise<number | null> {
    const [row] = await this.db<{ n: number | null }[]>`select dwop.cancel_workflow(${workflowId}) as n`;
    return row?.n ?? null;
  }

  /** Reruns a failed or cancelled workflow from its failures; null when it cannot be retried. */
  async retryWorkflow(workflowId: string): Promise<number | null> {
    const [row] = await this.db<{ n: number | null }[]>`select dwop.retry_workflow(${workflowId}) as n`;
    return row?.n ?? null;
  }

  async heartbeat(dispatcherId: string, executor: string): Promise<void> {
    await this.db`select dwop.heartbeat_dispatcher(${dispatcherId}, ${executor})`;
  }

  /**
   * Deletes the rows of these local dispatchers (gone: see dead-neighbours.ts), whose active runs the next
   * reapLostRuns then retries. Returns how many rows went.
   */
  async forgetDispatchers(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const [row] = await this.db<{ n: number }[]>`select dwop.forget_dispatchers(${ids}::text[]) as n`;
    return row?.n ?? 0;
  }

  async reapLostRuns(staleSeconds: number, ownId: string | null): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`select dwop.reap_lost_runs(${staleSeconds}, ${ownId}) as n`;
    return row?.n ?? 0;
  }

  /** Retries as lost this dispatcher's active local runs that it no longer holds (see the migration). */
  async reapOrphanedRuns(dispatcherId: string, held: string[], graceSeconds: number): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`
      select dwop.reap_orphaned_runs(${dispatcherId}, ${held}::bigint[], ${graceSeconds}) as n`;
    return row?.n ?? 0;
  }

  /**
   * Calls `step` while the run's row is held (FOR NO KEY UPDATE) and the run active: nothing can end or
   * replace the run meanwhile (increase_attempt, the reaper, a cancel wait for the row), nor hold it for a
   * step of its own (two observers during a lease's handover). False, without calling it, for a run that
   * has ended. A step must be short: those who would end the run wait for it, at most
   * HOLD_RUN_SECONDS (then Postgres ends the session, and the row is free again).
   */
  async whileRunActive(runId: string, step: () => Promise<void>): Promise<boolean> {
    return this.db.begin(async (sql) => {
      const [row] = await sql`
        select set_config('idle_in_transaction_session_timeout', ${`${HOLD_RUN_SECONDS}s`}, true)
        from dwop.runs where id = ${runId} and status in ('starting', 'dispatched', 'running')
        for no key update`;
      if (!row) return false;
      await step();
      return true;
    });
  }

  /** Of the given runs, those that are no longer active (cancelled or recorded elsewhere). */
  async inactiveRuns(runIds: string[]): Promise<string[]> {
    if (runIds.length === 0) return [];
    const rows = await this.db<{ id: string }[]>`
      select id from dwop.runs
      where id = any(${runIds}::bigint[]) and status not in ('starting', 'dispatched', 'running')`;
    return rows.map((r) => r.id);
  }

  async workflowSummary(workflowId: string): Promise<WorkflowSummary | null> {
    const [wf] = await this.db<
      {
        id: string;
        name: string;
        owner: string;
        status: WorkflowState;
        created_at: Date;
        finished_at: Date | null;
      }[]
    >`select id, name, owner, status, created_at, finished_at from dwop.workflows where id = ${workflowId}`;
    if (!wf) return null;
    const tasks = await this.db<TaskSummary[]>`
      select t.name, t.status, t.attempt, t.error, t.started_at as "startedAt", t.finished_at as "finishedAt",
             (select count(*)::int from dwop.runs r where r.task_id = t.id) as attempts
      from dwop.tasks t where t.workflow_id = ${workflowId} order by t.position`;
    return {
      id: wf.id,
      name: wf.name,
      owner: wf.owner,
      status: wf.status,
      createdAt: wf.created_at,
      finishedAt: wf.finished_at,
      tasks: tasks.map((t) => ({ ...t })),
    };
  }
}

function withoutNul(text: string): string {
  return text.includes("\0") ? text.replaceAll("\0", "") : text;
}

/** What start_runs's row for a delivery (or its absence) says about it. */
function startRunResult(message: TaskMessage, row: StartRunRow | undefined): StartRunResult {
  if (!row) return { kind: "stale" };
  if (!row.created) return { kind: "duplicate", runId: row.run_id };
  return { kind: "created", assignment: runAssignment(message, row) };
}

/** What a dispatcher needs to run the attempt a start_runs row describes. */
export function runAssignment(message: TaskMessage, row: StartRunRow): RunAssignment {
  return {
    runId: row.run_id,
    workflowId: row.workflow_id,
    taskId: message.taskId,
    taskName: row.task_name,
    attempt: message.attempt,
    params: row.params,
    options: {
      retries: 0,
      timeoutSeconds: row.timeout_seconds,
      image: row.options.image ?? null,
      cpu: row.options.cpu ?? null,
      memory: row.options.memory ?? null,
      pool: null,
      priority: null,
    },
    code: row.options.code,
    hasRequirements: row.has_requirements,
  };
}

/**
 * The tasks as submit_workflow's columns: one array per column in the tasks' order, params as one JSON
 * array, and each edge as the 1-based positions of the task that reads and the task it reads.
 */
function taskColumns(tasks: TaskSpec[], code: CodeRange[], defaultPriority: number) {
  const position = new Map<string, number>();
  if (code.length !== tasks.length) throw new Error(`${tasks.length} tasks but ${code.length} code ranges`);
  tasks.forEach((t, i) => position.set(t.name, i + 1));
  const edgeDown: number[] = [];
  const edgeUp: number[] = [];
  tasks.forEach((t, i) => {
    for (const p of t.params) {
      const up = position.get(p.upstream);
      if (up !== undefined) {
        edgeDown.push(i + 1);
        edgeUp.push(up);
      } else if (!p.upstream.startsWith("inputs.")) {
        throw new Error(`task ${t.name} reads ${p.upstream}, which is not one of the workflow's tasks`);
      }
    }
  });
  return {
    names: tasks.map((t) => t.name),
    params: tasks.map((t) => t.params) as unknown as postgres.JSONValue,
    retries: intArray(tasks.map((t) => t.options.retries)),
    timeouts: intArray(tasks.map((t) => t.options.timeoutSeconds)),
    images: tasks.map((t) => t.options.image),
    cpus: tasks.map((t) => t.options.cpu),
    memories: tasks.map((t) => t.options.memory),
    codeOffsets: intArray(code.map((r) => r.offset)),
    codeLengths: intArray(code.map((r) => r.length)),
    pools: tasks.map((t) => t.options.pool ?? null),
    priorities: intArray(tasks.map((t) => t.options.priority ?? defaultPriority)),
    edgeDown: intArray(edgeDown),
    edgeUp: intArray(edgeUp),
  };
}

/**
 * An integer array's literal (`{1,2,NULL}`): postgres.js quotes and escapes each element of an array it
 * is given, which for a 100,000-task submit's eight integer columns costs more than the rest of the call.
 */
function intArray(values: (number | null)[]): string {
  for (const v of values) {
    if (v !== null && !Number.isSafeInteger(v)) throw new Error(`not an integer: ${v}`);
  }
  return `{${values.map((v) => (v === null ? "NULL" : v)).join(",")}}`;
}

/** The job names of runs completed without a mark, parallel to their ids; null when there is none. */
function jobNameArray(runIds: string[], jobNames: (string | null)[]): (string | null)[] | null {
  if (!jobNames.some((n) => n !== null)) return null;
  return runIds.map((_, i) => jobNames[i] ?? null);
}
