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
  recorded: RecordedFire | null;
}

/**
 * What became of a fire time: `started` (its workflow was made), `failed` (it could not be submitted),
 * `skipped_overlap` (overlap skip, a run had not ended) or `missed` (catchup passed over it).
 */
export const FIRE_OUTCOMES = ["started", "failed", "skipped_overlap", "missed"] as const;
export type FireOutcome = (typeof FIRE_OUTCOMES)[number];

/** A fire as recorded: a missed one covers every fire time from `fireAt` to `missedThrough`. */
export interface RecordedFire {
  fireAt: Date;
  outcome: FireOutcome;
  /** Reserved for `started` (and kept by `failed`); null for skipped and missed. */
  workflowId: string | null;
  missedThrough: Date | null;
}

/** A fire as a schedule's owner sees it (GET /schedules/:name's lastFires). */
export interface ScheduleFire {
  schedule: string;
  fireAt: Date;
  outcome: FireOutcome;
  workflowId: string | null;
  reason: string | null;
  missedThrough: Date | null;
  /** How many times a missed row covers; null when over MISSED_COUNT_CAP. */
  missedCount: number | null;
  recordedAt: Date;
}

/** What a claimer decided for the schedule it holds at `from` (its next_fire_at). */
export interface FireDecision {
  from: Date;
  /** The time that fires (or is skipped for overlap); null when every due time is missed. */
  fire: {
    at: Date;
    outcome: "started" | "skipped_overlap";
    workflowId: string | null;
    reason: string | null;
  } | null;
  /** The due times passed over: `from` to `through`, `count` of them (null: over the cap). */
  missed: { through: Date; count: number | null; reason: string } | null;
}

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
        recordedMissedThrough: Date | null;
      })[]
    >`
      select id, name, owner, cron, timezone, source, requirements, inputs, overlap, catchup,
             next_fire_at as "nextFireAt", recorded_fire_at as "recordedFireAt",
             recorded_workflow_id as "recordedWorkflowId", recorded_outcome as "recordedOutcome",
             recorded_missed_through as "recordedMissedThrough"
      from dwop.claim_due_schedules(${claimerId}, ${batch}, ${leaseSeconds}, ${now ?? null})`;
    return rows.map(
      ({ recordedFireAt, recordedWorkflowId, recordedOutcome, recordedMissedThrough, ...s }) => ({
        ...s,
        recorded:
          recordedFireAt && recordedOutcome
            ? {
                fireAt: recordedFireAt,
                outcome: recordedOutcome,
                workflowId: recordedWorkflowId,
                missedThrough: recordedMissedThrough,
              }
            : null,
      }),
    );
  }

  /**
   * Records what `claimerId` decided for the schedule it holds (see record_schedule_fire): the fire and
   * the missed times before it, or finds what was recorded at that time before. Null when the claimer no
   * longer holds the schedule at `decision.from`.
   */
  async recordFire(
    scheduleId: string,
    claimerId: string,
    decision: FireDecision,
  ): Promise<(RecordedFire & { workflowExists: boolean }) | null> {
    const { from, fire, missed } = decision;
    const [row] = await this.db<(RecordedFire & { workflowExists: boolean })[]>`
      select fire_at as "fireAt", outcome, workflow_id as "workflowId", missed_through as "missedThrough",
             workflow_exists as "workflowExists"
      from dwop.record_schedule_fire(${scheduleId}, ${claimerId}, ${from}, ${fire?.at ?? null},
        ${fire?.outcome ?? null}, ${fire?.workflowId ?? null}, ${fire?.reason ?? null},
        ${missed?.through ?? null}, ${missed?.count ?? null}, ${missed?.reason ?? null})`;
    return row ?? null;
  }

  /** The last `perSchedule` fires of each of the owner's schedules in `names`, newest first. */
  async lastFires(owner: string, names: string[], perSchedule: number): Promise<ScheduleFire[]> {
    if (names.length === 0) return [];
    return this.db<ScheduleFire[]>`
      select s.name as schedule, f.fire_at as "fireAt", f.outcome,
             case when f.outcome = 'started' then f.workflow_id end as "workflowId", f.reason,
             f.missed_through as "missedThrough", f.missed_count as "missedCount", f.recorded_at as "recordedAt"
      from dwop.schedules s
      cross join lateral (
        select * from dwop.schedule_fires f where f.schedule_id = s.id
        order by f.fire_at desc limit ${perSchedule}
      ) f
      where s.owner = ${owner} and s.name = any(${names}::text[])
      order by s.name, f.fire_at desc`;
  }

  async failFire(scheduleId: string, fireAt: Date, reason: string): Promise<void> {
    await this.db`select dwop.fail_schedule_fire(${scheduleId}, ${fireAt}, ${reason})`;
  }

  /** Moves a claimed schedule from `from` to `next` and releases it; false when it moved meanwhile. */
  async advance(scheduleId: string, claimerId: string, from: Date, next: Date | null): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`
      select dwop.advance_schedule(${scheduleId}, ${claimerId}, ${from}, ${next}) as ok`;
    return row?.ok ?? false;
  }

  /** Of `names`, the pools that do not exist. */
  async unknownPools(names: string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const rows = await this.db<{ name: string }[]>`
      select n.name from unnest(${names}::text[]) as n(name)
      where not exists (select 1 from dwop.pools p where p.name = n.name) order by n.name`;
    return rows.map((r) => r.name);
  }

  /** The owner's workflows started by schedule `name` that have not ended. */
  async unfinishedRuns(owner: string, name: string): Promise<string[]> {
    const rows = await this.db<{ id: string }[]>`
      select id from dwop.workflows
      where owner = ${owner} and schedule = ${name} and status in ('queued', 'running')`;
    return rows.map((r) => r.id);
  }
}
