import type { Db } from "../shared/db/connect.ts";
import { silentLogger, type Logger } from "../shared/log.ts";
import { Periodic } from "./periodic.ts";

/** Rows of each kind one call deletes at most (migration 20261204000500_retention.sql). */
const BATCH = 10_000;
/** Calls of one sweep at most: a backlog is worked off over several sweeps rather than in one burst. */
const MAX_CALLS = 20;

export interface RetentionOptions {
  /** What ended, was published or was last heard of longer ago than this is deleted. */
  keepDays: number;
  /** How often to sweep (default hourly). */
  everyMs?: number;
  logger?: Logger;
}

/** What one sweep deleted, by kind. */
export type Purged = Record<string, number>;

/**
 * Deletes what DWOP keeps only for a while (dwop.purge_expired): published outbox rows, events and live
 * logs of workflows that ended, webhook deliveries, submissions, dead dispatchers' rows, schedules'
 * past fire records (dwop.purge_schedule_fires); and a delivered callback's secret at once. Any claimer may sweep; several at once only share the work.
 */
export class RetentionSweeper {
  private readonly log: Logger;
  private readonly periodic: Periodic;

  constructor(
    private readonly db: Db,
    private readonly options: RetentionOptions,
  ) {
    this.log = options.logger ?? silentLogger;
    this.periodic = new Periodic(
      options.everyMs ?? 3_600_000,
      () => this.runOnce(),
      (err) => this.log.warn({ err }, "could not delete expired rows; trying again later"),
    );
  }

  /** One sweep; `now` stands in for the database's clock (tests). */
  async runOnce(now?: Date): Promise<Purged> {
    const total: Purged = {};
    for (let call = 0; call < MAX_CALLS; call++) {
      const [row] = await this.db<{ purged: Purged }[]>`
        select dwop.purge_expired(${`${this.options.keepDays} days`}::interval, ${BATCH}, ${now ?? null}) as purged`;
      const purged = row?.purged ?? {};
      for (const [kind, n] of Object.entries(purged)) total[kind] = (total[kind] ?? 0) + n;
      if (!Object.values(purged).some((n) => n >= BATCH)) break;
    }
    for (let call = 0; call < MAX_CALLS; call++) {
      const [row] = await this.db<{ n: number }[]>`
        select dwop.purge_schedule_fires(${`${this.options.keepDays} days`}::interval, ${BATCH}, ${now ?? null}) as n`;
      total.scheduleFires = (total.scheduleFires ?? 0) + (row?.n ?? 0);
      if ((row?.n ?? 0) < BATCH) break;
    }
    if (Object.values(total).some((n) => n > 0)) this.log.info({ purged: total }, "deleted expired rows");
    return total;
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }
}
