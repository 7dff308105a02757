import type { Db } from "../../shared/db/connect.ts";
import type { TaskState, WorkflowState } from "../../shared/model.ts";

/** A row of the dashboard's workflow list: the workflow, its owner, and how many tasks are in each state. */
export interface WorkflowSummaryRow {
  id: string;
  name: string;
  schedule: string | null;
  owner: string;
  status: WorkflowState;
  taskCount: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  tasks: Partial<Record<TaskState, number>>;
}

export interface SummaryQuery {
  status?: WorkflowState;
  /** Only the workflows this schedule started. */
  schedule?: string;
  /** Part of the name (any case), or the start of the id. */
  search?: string;
  limit: number;
  /** The id of the last row of the previous page. */
  cursor?: string;
}

/** `%`, `_` and `\` match themselves in a LIKE pattern. */
function likeEscape(text: string): string {
  return text.replace(/[\\%_]/g, (ch) => `\\${ch}`);
}

/**
 * The owner's workflows, newest first, with task counts by state: one query, the counts read per
 * workflow through the (workflow_id, name) index, so a page costs the same however old the table is.
 */
export async function listWorkflowSummaries(
  db: Db,
  owner: string,
  q: SummaryQuery,
): Promise<WorkflowSummaryRow[]> {
  const search = q.search?.trim() ?? "";
  const pattern = `%${likeEscape(search)}%`;
  const idPrefix = `${likeEscape(search.toLowerCase())}%`;
  return db<WorkflowSummaryRow[]>`
    select w.id, w.name, w.schedule, w.owner, w.status, w.task_count as "taskCount", w.created_at as "createdAt",
           w.started_at as "startedAt", w.finished_at as "finishedAt",
           coalesce((select jsonb_object_agg(s.status, s.n)
                     from (select t.status, count(*)::int as n from dwop.tasks t
                           where t.workflow_id = w.id group by t.status) s), '{}'::jsonb) as tasks
    from dwop.workflows w
    where w.owner = ${owner}
      ${q.status ? db`and w.status = ${q.status}` : db``}
      ${q.schedule ? db`and w.schedule = ${q.schedule}` : db``}
      ${search ? db`and (w.name ilike ${pattern} or w.id::text like ${idPrefix})` : db``}
      ${
        q.cursor
          ? db`and (w.created_at, w.id) < (
                 select created_at, id from dwop.workflows where id = ${q.cursor} and owner = ${owner})`
          : db``
      }
    order by w.created_at desc, w.id desc
    limit ${q.limit}`;
}
