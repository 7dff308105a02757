import { countFires, latestFireAtOrBefore, latestFireBefore, nextFireAfter } from "../shared/cron.ts";
import type {
  ClaimedSchedule,
  FireDecision,
  FireOutcome,
  RecordedFire,
  ScheduleStore,
} from "../shared/db/schedules.ts";
import { UnknownPoolError, type Store } from "../shared/db/store.ts";
import { DslError, DslErrors } from "../shared/dsl/index.ts";
import { silentLogger, type Logger } from "../shared/log.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { MissingInputError, SubmissionRefused, submitWorkflow, type SubmitLimits } from "../shared/submit.ts";

/** How late a fire time may be acted on with catchup `none` (a claimer busy or restarting for a moment). */
export const CATCHUP_GRACE_MS = 60_000;

/** Missed fire times counted one by one in a missed record; more are recorded as "over" this. */
export const MISSED_COUNT_CAP = 1000;

export interface ScheduleFirerOptions {
  claimerId: string;
  leaseSeconds: number;
  batchSize: number;
  retryBackoffMs: number;
  maxInfraRetries?: number;
  limits?: SubmitLimits;
  /** How late a fire may be with catchup `none` (default CATCHUP_GRACE_MS). */
  graceMs?: number;
  logger?: Logger;
}

/** What one pass did with one due schedule. */
export interface Fired {
  schedule: string;
  /** The time fired (or skipped, or failed); for `missed` alone, the first time passed over. */
  fireAt: Date;
  /** `missed`: every due time passed over (catchup), none fired; `moved`: another claimer had it. */
  result: FireOutcome | "moved";
  workflowId: string | null;
  /** Due times this pass passed over and recorded as missed (`count` null: over MISSED_COUNT_CAP). */
  missed: { from: Date; through: Date; count: number | null } | null;
}

/**
 * Fires due schedules, run from the claimer's loop (so a deployment needs no process of its own for
 * them). Per due schedule: decide the fire time (catchup), record it (which reserves its workflow id, once
 * per schedule and time), decide overlap, submit the workflow through the API's submit path with the
 * reserved id, and move the schedule to its next time. Every step is safe to repeat: a claimer that
 * dies anywhere leaves the schedule to be claimed again when its lease runs out, and the recorded fire
 * makes the next claimer finish that same fire (see migration 20261205000100_schedules.sql).
 */
export class ScheduleFirer {
  private readonly log: Logger;

  constructor(
    private readonly schedules: ScheduleStore,
    private readonly store: Store,
    private readonly storage: Storage,
    private readonly options: ScheduleFirerOptions,
  ) {
    this.log = options.logger ?? silentLogger;
  }

  /** One pass over due schedules; `now` stands in for the clock (tests). */
  async runOnce(now: Date = new Date()): Promise<Fired[]> {
    const { claimerId, batchSize, leaseSeconds } = this.options;
    const claimed = await this.schedules.claimDue(claimerId, batchSize, leaseSeconds, now);
    const fired: Fired[] = [];
    let failure: { err: unknown } | null = null;
    for (const s of claimed) {
      try {
        fired.push(await this.fire(s, now));
      } catch (err) {
        // Left claimed: it is tried again when its lease runs out; the others still fire.
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
    return fired;
  }

  private async fire(s: ClaimedSchedule, now: Date): Promise<Fired> {
    const spec = { cron: s.cron, timezone: s.timezone };
    let fire: RecordedFire | null = s.recorded;
    let missed: Fired["missed"] = null;
    if (!fire) {
      const decision = await this.decide(s, now);
      fire = await this.schedules.recordFire(s.id, this.options.claimerId, decision);
      const fireAt = decision.fire?.at ?? decision.from;
      if (!fire) return { schedule: s.name, fireAt, result: "moved", workflowId: null, missed: null };
      if (decision.missed) missed = { from: decision.from, ...decision.missed };
    }
    let outcome = fire.outcome;
    if (outcome === "started") outcome = await this.start(s, fire.fireAt, fire.workflowId!);
    // Done with every time up to the fired one, or to the last one a missed record covers.
    const done = fire.outcome === "missed" ? fire.missedThrough! : fire.fireAt;
    const moved = await this.advance(s, nextFireAfter(spec, done));
    this.log.info(
      { schedule: s.name, owner: s.owner, fireAt: fire.fireAt, outcome, workflowId: fire.workflowId, missed },
      "schedule fired",
    );
    return {
      schedule: s.name,
      fireAt: fire.fireAt,
      result: moved ? outcome : "moved",
      workflowId: outcome === "started" ? fire.workflowId : null,
      missed,
    };
  }

  /**
   * Which due time fires and which are passed over. Due are next_fire_at up to the latest time at or
   * before now. The latest fires if it is within the grace, or with catchup `latest` whatever its age;
   * every earlier due time (all of them, when none fires) is recorded as missed, never fired. The time
   * that fires is skipped instead with overlap `skip` while a run the schedule started has not ended.
   */
  private async decide(s: ClaimedSchedule, now: Date): Promise<FireDecision> {
    const spec = { cron: s.cron, timezone: s.timezone };
    const from = s.nextFireAt;
    const graceMs = this.options.graceMs ?? CATCHUP_GRACE_MS;
    let latest = latestFireAtOrBefore(spec, now);
    // A next time the expression does not name (set by hand, or a zone's rules changed) is its own.
    if (!latest || latest.getTime() < from.getTime()) latest = from;
    const late = now.getTime() - latest.getTime() > graceMs;
    const fireAt = s.catchup === "latest" || !late ? latest : null;

    let through: Date | null = null;
    if (fireAt === null) through = latest;
    else if (fireAt.getTime() > from.getTime()) {
      const before = latestFireBefore(spec, fireAt);
      through = before && before.getTime() >= from.getTime() ? before : from;
    }
    const grace = `${Math.round(graceMs / 1000)} s`;
    const missed = through && {
      through,
      count: countFires(spec, from, through, MISSED_COUNT_CAP),
      reason:
        s.catchup === "latest"
          ? `not fired within ${grace} of its time (no claimer ran); catchup latest fired only the latest missed time, ${latest.toISOString()}`
          : `not fired within ${grace} of its time (no claimer ran); catchup none skips such times`,
    };
    if (fireAt === null) return { from, fire: null, missed };

    const running = s.overlap === "skip" ? await this.schedules.unfinishedRuns(s.owner, s.name) : [];
    const fire: FireDecision["fire"] =
      running.length > 0
        ? {
            at: fireAt,
            outcome: "skipped_overlap",
            workflowId: null,
            reason: `overlap skip: ${running.length === 1 ? "workflow" : "workflows"} ${running.join(", ")} it started had not ended`,
          }
        : { at: fireAt, outcome: "started", workflowId: crypto.randomUUID(), reason: null };
    return { from, fire, missed };
  }

  /**
   * Submits the fire's workflow under its reserved id (a second submit of that id changes nothing). With
   * overlap cancel_previous the schedule's unfinished runs are cancelled in the transaction that makes
   * the new one, so a submit that fails cancels nothing. A workflow that can never be submitted (its
   * file or inputs no longer pass the limits, a pool it names is gone) marks the fire failed.
   */
  private async start(s: ClaimedSchedule, fireAt: Date, workflowId: string): Promise<FireOutcome> {
    try {
      await submitWorkflow(
        { store: this.store, storage: this.storage, logger: this.log },
        {
          source: s.source,
          file: `${s.name}.workflow`,
          requirements: s.requirements,
          inputs: s.inputs,
          owner: s.owner,
          id: workflowId,
          retryBackoffMs: this.options.retryBackoffMs,
          maxInfraRetries: this.options.maxInfraRetries,
          limits: this.options.limits,
          schedule: s.name,
          cancelPrevious: s.overlap === "cancel_previous",
        },
      );
      return "started";
    } catch (err) {
      if (!(
        err instanceof DslErrors ||
        err instanceof DslError ||
        err instanceof SubmissionRefused ||
        err instanceof MissingInputError ||
        err instanceof UnknownPoolError
      )) {
        throw err; // the database or storage: the lease runs out and this fire is tried again
      }
      this.log.warn({ err, schedule: s.name, owner: s.owner }, "a scheduled workflow could not be submitted");
      await this.schedules.failFire(s.id, fireAt, err.message);
      return "failed";
    }
  }

  private advance(s: ClaimedSchedule, next: Date | null): Promise<boolean> {
    return this.schedules.advance(s.id, this.options.claimerId, s.nextFireAt, next);
  }
}
