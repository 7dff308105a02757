import type { WorkflowState } from "../model.ts";
import type { Db } from "./connect.ts";

/**
 * Schedules in the database (migration 20261205000100_schedules.sql): the API's owner-scoped reads and
 * changes, and the claimers' claim, record and advance of due fire times.
 */

export const OVERLAP_MODES = ["allow", "skip", "cancel_previous"] as const;
export type Overlap = (typeof OVERLAP_MODES)[number];
export const CATCHUP_MODES = ["none", "latest"] as const;
export type Catchup = (typeof CATCHUP_MODES)[number];

/** What a schedule is: when it fires, and the workflow it starts. */
export interface ScheduleSettings {
  cron: string;
  timezone: string;
  source: string;
  requirements: string | null;
  /** inputs.NAME -> its text. */
  inputs: Record<string, string>;
  overlap: Overlap;
  catchup: Catchup;
  paused: boolean;
}

export interface ScheduleRow extends ScheduleSettings {
  id: string;
  name: string;
  owner: string;
  nextFireAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** A workflow a schedule started, for its list of last runs. */
export interface ScheduledRun {
  schedule: string;
  id: string;
  status: WorkflowState;
  createdAt: Date;
  finishedAt: Date | null;
}

/** A schedule a claimer holds, with the fire recorded since its next_fire_at, if any. */
export interface ClaimedSchedule extends Omit<ScheduleRow, "paused" | "createdAt" | "updatedAt"> {
  nextFireAt: Date;
  recorded: { fireAt: Date; workflowId: string; outcome: FireOutcome } | null;
}

export type FireOutcome = "started" | "skipped" | "failed";

const COLUMNS = `id, name, owner, cron, timezone, source, requirements, inputs, overlap, catchup, paused,
  next_fire_at as "nextFireAt", created_at as "createdAt", updated_at as "updatedAt"`;

export class ScheduleStore {
  constructor(readonly db: Db) {}

  /** Registers a schedule; says whether the owner already had one of that name or was at `maxPerOwner`. */
  async create(
    owner: string,
    name: string,
    s: Omit<ScheduleSettings, "paused">,
    nextFireAt: Date,
    maxPerOwner: number,
  ): Promise<"created" | "exists" | "limit"> {
    const [row] = await this.db<{ result: "created" | "exists" | "limit" }[]>`
      select dwop.create_schedule(${owner}, ${name}, ${s.cron}, ${s.timezone}, ${s.source}, ${s.requirements},
        ${this.db.json(s.inputs)}, ${s.overlap}, ${s.catchup}, ${nextFireAt}, ${maxPerOwner}) as result`;
    if (!row) throw new Error("create_schedule returned no row");
    return row.result;
  }

  /** The owner's schedules, by name (one with `name`). */
  async list(owner: string, name?: string): Promise<ScheduleRow[]> {
    const sql = this.db;
    return sql<ScheduleRow[]>`
      select ${sql.unsafe(COLUMNS)} from dwop.schedules
      where owner = ${owner} ${name === undefined ? sql`` : sql`and name = ${name}`} order by name`;
  }

  /** Replaces a schedule's settings; `nextFireAt` is kept unless `reschedule`. False when there is none. */
  async update(
    owner: string,
    name: string,
    s: ScheduleSettings,
    reschedule: { nextFireAt: Date | null } | null,
  ): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`
      select dwop.update_schedule(${owner}, ${name}, ${s.cron}, ${s.timezone}, ${s.source}, ${s.requirements},
        ${this.db.json(s.inputs)}, ${s.overlap}, ${s.catchup}, ${s.paused}, ${reschedule !== null},
        ${reschedule?.nextFireAt ?? null}) as ok`;
    return row?.ok ?? false;
  }

  async delete(owner: string, name: string): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`select dwop.delete_schedule(${owner}, ${name}) as ok`;
    return row?.ok ?? false;
  }

  /** The last `perSchedule` workflows each of the owner's schedules in `names` started, newest first. */
  async lastRuns(owner: string, names: string[], perSchedule: number): Promise<ScheduledRun[]> {
    if (names.length === 0) return [];
    return this.db<ScheduledRun[]>`
      select n.schedule, w.id, w.status, w.created_at as "createdAt", w.finished_at as "finishedAt"
      from unnest(${names}::text[]) as n(schedule)
      cross join lateral (
        select id, status, created_at, finished_at from dwop.workflows
        where owner = ${owner} and schedule = n.schedule
        order by created_at desc, id desc limit ${perSchedule}
      ) w
      order by n.schedule, w.created_at desc, w.id desc`;
  }

  /** Claims up to `batch` due schedules for `claimerId` (see claim_due_schedules). */
  async claimDue(
    claimerId: string,
    batch: number,
    leaseSeconds: number,
    now?: Date,
  ): Promise<ClaimedSchedule[]> {
    const rows = await this.db<
      (Omit<ClaimedSchedule, "recorded"> & {
        recordedFireAt: Date | null;
        recordedWorkflowId: string | null;
        recordedOutcome: FireOutcome | null;
      })[]
    >`
      select id, name, owner, cron, timezone, source, requirements, inputs, overlap, catchup,
             next_fire_at as "nextFireAt", recorded_fire_at as "recordedFireAt",
             recorded_workflow_id as "recordedWorkflowId", recorded_outcome as "recordedOutcome"
      from dwop.claim_due_schedules(${claimerId}, ${batch}, ${leaseSeconds}, ${now ?? null})`;
    return rows.map(({ recordedFireAt, recordedWorkflowId, recordedOutcome, ...s }) => ({
      ...s,
      recorded:
        recordedFireAt && recordedWorkflowId && recordedOutcome
          ? { fireAt: recordedFireAt, workflowId: recordedWorkflowId, outcome: recordedOutcome }
          : null,
    }));
  }

  /** Records a fire (reserving `workflowId`) or finds the one recorded before at that time. */
  async recordFire(
    scheduleId: string,
    fireAt: Date,
    workflowId: string,
    outcome: FireOutcome,
  ): Promise<{ workflowId: string; outcome: FireOutcome; workflowExists: boolean }> {
    const [row] = await this.db<{ workflowId: string; outcome: FireOutcome; workflowExists: boolean }[]>`
      select workflow_id as "workflowId", outcome, workflow_exists as "workflowExists"
      from dwop.record_schedule_fire(${scheduleId}, ${fireAt}, ${workflowId}, ${outcome})`;
    if (!row) throw new Error("record_schedule_fire returned no row");
    return row;
  }

  async failFire(scheduleId: string, fireAt: Date, error: string): Promise<void> {
    await this.db`select dwop.fail_schedule_fire(${scheduleId}, ${fireAt}, ${error})`;
  }

  /** Moves a claimed schedule from `from` to `next` and releases it; false when it moved meanwhile. */
  async advance(scheduleId: string, claimerId: string, from: Date, next: Date | null): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`
      select dwop.advance_schedule(${scheduleId}, ${claimerId}, ${from}, ${next}) as ok`;
    return row?.ok ?? false;
  }

  /** The owner's workflows started by schedule `name` that have not ended. */
  async unfinishedRuns(owner: string, name: string): Promise<string[]> {
    const rows = await this.db<{ id: string }[]>`
      select id from dwop.workflows
      where owner = ${owner} and schedule = ${name} and status in ('queued', 'running')`;
    return rows.map((r) => r.id);
  }

  /** Cancels a workflow (a previous run of a schedule whose overlap is cancel_previous). */
  async cancelRun(workflowId: string): Promise<void> {
    await this.db`select dwop.cancel_workflow(${workflowId})`;
  }
}
