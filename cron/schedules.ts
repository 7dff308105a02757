import { latestFireAtOrBefore, nextFireAfter } from "../shared/cron.ts";
import type { ClaimedSchedule, FireOutcome, ScheduleStore } from "../shared/db/schedules.ts";
import type { Store } from "../shared/db/store.ts";
import { DslError, DslErrors } from "../shared/dsl/index.ts";
import { silentLogger, type Logger } from "../shared/log.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { MissingInputError, SubmissionRefused, submitWorkflow, type SubmitLimits } from "../shared/submit.ts";

/** How late a fire time may be acted on with catchup `none` (a claimer busy or restarting for a moment). */
export const CATCHUP_GRACE_MS = 60_000;

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
  fireAt: Date;
  /** `missed`: later than the grace with catchup `none`, so not fired; `moved`: another claimer had it. */
  result: FireOutcome | "missed" | "moved";
  workflowId: string | null;
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
    let fire = s.recorded;
    if (!fire) {
      let fireAt = s.nextFireAt;
      if (now.getTime() - fireAt.getTime() > (this.options.graceMs ?? CATCHUP_GRACE_MS)) {
        if (s.catchup === "none") {
          const moved = await this.advance(s, nextFireAfter(spec, now));
          return { schedule: s.name, fireAt, result: moved ? "missed" : "moved", workflowId: null };
        }
        fireAt = latestFireAtOrBefore(spec, now) ?? fireAt;
      }
      const running = s.overlap === "skip" ? await this.schedules.unfinishedRuns(s.owner, s.name) : [];
      const outcome = running.length > 0 ? "skipped" : "started";
      const recorded = await this.schedules.recordFire(s.id, fireAt, crypto.randomUUID(), outcome);
      fire = { fireAt, workflowId: recorded.workflowId, outcome: recorded.outcome };
    }
    let outcome = fire.outcome;
    if (outcome === "started") outcome = await this.start(s, fire.fireAt, fire.workflowId);
    const moved = await this.advance(s, nextFireAfter(spec, fire.fireAt));
    this.log.info(
      { schedule: s.name, owner: s.owner, fireAt: fire.fireAt, outcome, workflowId: fire.workflowId },
      "schedule fired",
    );
    return {
      schedule: s.name,
      fireAt: fire.fireAt,
      result: moved ? outcome : "moved",
      workflowId: outcome === "started" ? fire.workflowId : null,
    };
  }

  /**
   * Submits the fire's workflow under its reserved id (a second submit of that id changes nothing),
   * first cancelling the schedule's unfinished runs when its overlap is cancel_previous. A workflow that
   * can never be submitted (its file or inputs no longer pass the limits) marks the fire failed.
   */
  private async start(s: ClaimedSchedule, fireAt: Date, workflowId: string): Promise<FireOutcome> {
    if (s.overlap === "cancel_previous") {
      for (const id of await this.schedules.unfinishedRuns(s.owner, s.name)) {
        if (id !== workflowId) await this.schedules.cancelRun(id);
      }
    }
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
        },
      );
      return "started";
    } catch (err) {
      if (!(
        err instanceof DslErrors ||
        err instanceof DslError ||
        err instanceof SubmissionRefused ||
        err instanceof MissingInputError
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
