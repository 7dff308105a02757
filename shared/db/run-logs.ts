import type { Db } from "./connect.ts";
import { ACTIVE_RUN_STATES, type RunState } from "../model.ts";

/**
 * Live logs: the chunks a running attempt's worker ships (whole lines, in byte order), kept until the
 * worker has stored the whole log as an object (see migration 20261204000100_live_logs.sql).
 */

export type AppendResult = "appended" | "behind" | "ended" | "full" | "no_run";

/** Where a run's log stands, and its bytes from an offset. */
export interface LiveLog {
  runId: string;
  status: RunState;
  /** Bytes shipped so far (the next chunk's offset). */
  size: number;
  /** The bytes from the asked offset, at most the asked limit. */
  data: Uint8Array;
}

/** One chunk for the event stream. */
export interface LogChunk {
  runId: string;
  taskName: string;
  attempt: number;
  offset: number;
  data: Uint8Array;
}

export class RunLogs {
  constructor(private readonly db: Db) {}

  /** The key that signs log-stream tokens (made by the migration, one per installation). */
  async streamKey(): Promise<Uint8Array> {
    const [row] = await this.db<{ key: Uint8Array | null }[]>`select dwop.instance_key('log_stream') as key`;
    if (!row?.key) throw new Error("the log_stream key is missing: migration 20261204000100 not applied");
    return row.key;
  }

  async append(
    runId: string,
    offset: number,
    data: Uint8Array,
    maxBytes: number,
  ): Promise<{ result: AppendResult; size: number }> {
    const [row] = await this.db<{ result: AppendResult; size: string }[]>`
      select result, size from dwop.append_run_log(${runId}, ${offset}, ${data}, ${maxBytes})`;
    return { result: row!.result, size: Number(row!.size) };
  }

  async seal(runId: string): Promise<void> {
    await this.db`select dwop.seal_run_log(${runId})`;
  }

  /**
   * The owner's run of one attempt of a task, with its live log from `offset` (at most `limit` bytes);
   * null when the attempt has no run yet.
   */
  async read(
    owner: string,
    workflowId: string,
    taskName: string,
    attempt: number,
    offset: number,
    limit: number,
  ): Promise<LiveLog | null> {
    const [row] = await this.db<{ runId: string; status: RunState; size: string; data: Uint8Array | null }[]>`
      select r.id as "runId", r.status,
             (select coalesce(max(c.byte_offset + length(c.data)), 0)
                from dwop.run_log_chunks c where c.run_id = r.id) as size,
             (select substring(string_agg(c.data, ''::bytea order by c.byte_offset)
                               from (${offset} - min(c.byte_offset))::int + 1 for ${limit})
                from dwop.run_log_chunks c
                where c.run_id = r.id and c.byte_offset + length(c.data) > ${offset}
                  and c.byte_offset < ${offset + limit}) as data
      from dwop.runs r
      join dwop.tasks t on t.id = r.task_id
      join dwop.workflows w on w.id = r.workflow_id
      where w.id = ${workflowId} and w.owner = ${owner} and t.name = ${taskName} and r.attempt = ${attempt}`;
    if (!row) return null;
    return {
      runId: String(row.runId),
      status: row.status,
      size: Number(row.size),
      data: row.data ?? new Uint8Array(),
    };
  }

  /** Chunks of a workflow's runs past each run's given offset (runs not in `after` from 0), in order. */
  async chunksAfter(
    workflowId: string,
    after: ReadonlyMap<string, number>,
    limit: number,
  ): Promise<LogChunk[]> {
    const ids = [...after.keys()];
    const offsets = ids.map((id) => after.get(id) ?? 0);
    const rows = await this.db<
      { runId: string; taskName: string; attempt: number; offset: string; data: Uint8Array }[]
    >`
      select c.run_id as "runId", t.name as "taskName", r.attempt, c.byte_offset as "offset", c.data
      from dwop.run_log_chunks c
      join dwop.runs r on r.id = c.run_id
      join dwop.tasks t on t.id = r.task_id
      left join unnest(${ids}::bigint[], ${offsets}::bigint[]) as seen (run_id, size) on seen.run_id = c.run_id
      where c.workflow_id = ${workflowId} and c.byte_offset >= coalesce(seen.size, 0)
      order by c.run_id, c.byte_offset
      limit ${limit}`;
    return rows.map((r) => ({
      runId: String(r.runId),
      taskName: r.taskName,
      attempt: r.attempt,
      offset: Number(r.offset),
      data: r.data,
    }));
  }

  /** Each run of the workflow that has live chunks, with the size shipped so far. */
  async sizes(workflowId: string): Promise<Map<string, number>> {
    const rows = await this.db<{ runId: string; size: string }[]>`
      select run_id as "runId", max(byte_offset + length(data)) as size
      from dwop.run_log_chunks where workflow_id = ${workflowId} group by run_id`;
    return new Map(rows.map((r) => [String(r.runId), Number(r.size)]));
  }
}

/** Which object paths a run writes, while it may still write them. */
export interface RunTarget {
  workflowId: string;
  taskName: string;
  attempt: number;
  active: boolean;
}

export async function runTarget(db: Db, runId: string): Promise<RunTarget | null> {
  const [row] = await db<{ workflowId: string; taskName: string; attempt: number; status: RunState }[]>`
    select r.workflow_id as "workflowId", t.name as "taskName", r.attempt, r.status
    from dwop.runs r join dwop.tasks t on t.id = r.task_id where r.id = ${runId}`;
  if (!row) return null;
  const active = ACTIVE_RUN_STATES.includes(row.status);
  return { workflowId: row.workflowId, taskName: row.taskName, attempt: row.attempt, active };
}
