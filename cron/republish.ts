import type { Bus } from "../shared/bus/bus.ts";
import type { Db } from "../shared/db/connect.ts";
import { silentLogger, type Logger } from "../shared/log.ts";
import { Periodic } from "./periodic.ts";

/** Most tasks one pass republishes. */
const DEFAULT_LIMIT = 100;

export interface RepublisherOptions {
  /** A task whose attempt was published this long ago and has not started is republished. */
  afterSeconds: number;
  /** How often to look (default: a quarter of afterSeconds, between 1 and 15 s). */
  everyMs?: number;
  /** Most tasks one pass republishes (default 100). */
  limit?: number;
  logger?: Logger;
}

/**
 * Republishes tasks whose message left the bus without starting them: taken by another consumer,
 * purged, lost with a broker. Each pass reads how many messages the bus holds ready and lets
 * `republish_stalled_tasks` (migration 20261203000200_republish_vanished.sql) decide which tasks count
 * as lost: published at least `afterSeconds` ago (doubling per republish), no run, and no more of them
 * than the stalled tasks outnumber the waiting messages, so a backlog is never doubled.
 */
export class Republisher {
  private readonly log: Logger;
  private readonly periodic: Periodic;

  constructor(
    private readonly db: Db,
    private readonly bus: Pick<Bus, "depth">,
    private readonly options: RepublisherOptions,
  ) {
    this.log = options.logger ?? silentLogger;
    const everyMs = options.everyMs ?? Math.min(15_000, Math.max(1_000, (options.afterSeconds * 1000) / 4));
    this.periodic = new Periodic(
      everyMs,
      () => this.runOnce(),
      (err) => this.log.warn({ err }, "could not look for vanished messages; trying again later"),
    );
  }

  /** One pass; `now` stands in for the database's clock (tests). Returns how many tasks it republished. */
  async runOnce(now?: Date): Promise<number> {
    const waiting = await this.bus.depth();
    const [row] = await this.db<{ n: number }[]>`
      select dwop.republish_stalled_tasks(${this.options.afterSeconds}, ${waiting},
        ${this.options.limit ?? DEFAULT_LIMIT}, ${now ?? null}) as n`;
    const republished = row?.n ?? 0;
    if (republished > 0) {
      this.log.warn({ republished, waiting }, "republished tasks whose message vanished from the bus");
    }
    return republished;
  }

  /** Runs a pass every `everyMs` until stopped; a failed pass is logged and the next one tries again. */
  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }
}
