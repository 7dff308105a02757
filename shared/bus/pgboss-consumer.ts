import type PgBoss from "pg-boss";
import { Batcher } from "../batcher.ts";
import type { Consumer, Delivery } from "./bus.ts";
import { callHandler, InFlight } from "./in-flight.ts";
import { describeError, toTaskMessage, type BusLogger } from "./message.ts";

export interface PgBossConsumerOptions {
  boss: PgBoss;
  /**
   * Where fetches and completions run: a connection with `synchronous_commit = off`. Losing one of
   * those commits in a database crash only makes the job fetchable again (after its expiry), which
   * at-least-once delivery allows; it saves a WAL flush on every hop.
   */
  relaxedDb: PgBoss.Db;
  queue: string;
  deadLetterQueue: string;
  prefetch: number;
  handler: (delivery: Delivery) => Promise<void>;
  /** Backstop for lost notifications: fetch at least this often while slots are free. */
  pollIntervalMs: number;
  /** pg-boss's delay before a failed job can be fetched again; the consumer looks again after it. */
  retryDelayMs: number;
  logger: BusLogger;
  onStop: (consumer: PgBossConsumer) => void;
}

/**
 * Fetches jobs when woken (a NOTIFY after each publish, a poll as backstop, a handler finishing while
 * more may be waiting), never holding more than `prefetch` at once. A job is completed when its
 * handler resolves and failed (so pg-boss retries it) when it rejects; a job whose consumer died
 * stays active until pg-boss expires it and makes it fetchable again.
 */
export class PgBossConsumer implements Consumer {
  private readonly inFlight = new InFlight();
  /** Completions that finish while one is being written go together in the next statement. */
  private readonly completions: Batcher<string, null>;
  private readonly timers = new Set<NodeJS.Timeout>();
  private poll: NodeJS.Timeout | undefined;
  /** Something may be waiting in the queue. */
  private wanted = false;
  private fetching: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: PgBossConsumerOptions) {
    this.completions = new Batcher(async (ids) => {
      // pg-boss 10's typings say (name, ids, options) but it reads the third argument as output data.
      const complete = options.boss.complete.bind(options.boss) as unknown as (
        name: string,
        ids: string[],
        data: null,
        connection: PgBoss.ConnectionOptions,
      ) => Promise<unknown>;
      await complete(options.queue, ids, null, { db: options.relaxedDb });
      return ids.map(() => null);
    });
  }

  start(): void {
    this.poll = setInterval(() => this.wake(), this.options.pollIntervalMs);
    this.wake();
  }

  /** Called on every hint that jobs may be waiting. */
  wake(): void {
    this.wanted = true;
    this.pump();
  }

  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    this.options.onStop(this);
    clearInterval(this.poll);
    for (const timer of this.timers) clearTimeout(timer);
    // Jobs a fetch already took are handled like the others.
    await this.fetching;
    await this.inFlight.whenIdle();
  }

  private pump(): void {
    if (this.fetching || this.stopping) return;
    this.fetching = this.fetchWhileWanted().finally(() => {
      this.fetching = null;
      // A handler may have finished while this fetch ran and found the loop busy.
      if (this.wanted && this.inFlight.size < this.options.prefetch) this.pump();
    });
  }

  private async fetchWhileWanted(): Promise<void> {
    const { boss, queue, prefetch, logger } = this.options;
    while (this.wanted && !this.stopping) {
      const free = prefetch - this.inFlight.size;
      if (free <= 0) return; // a finishing handler pumps again
      this.wanted = false;
      let jobs: PgBoss.JobWithMetadata<unknown>[];
      try {
        jobs = await boss.fetch<unknown>(queue, {
          batchSize: free,
          includeMetadata: true,
          db: this.options.relaxedDb,
        });
      } catch (err) {
        logger.warn({ queue, err: describeError(err) }, "fetch failed");
        return;
      }
      for (const job of jobs) void this.inFlight.track(() => this.handle(job)).then(() => this.pump());
      // A full batch means more may be waiting.
      if (jobs.length === free) this.wanted = true;
    }
  }

  private async handle(job: PgBoss.JobWithMetadata<unknown>): Promise<void> {
    const { boss, queue, logger } = this.options;
    const body = toTaskMessage(job.data);
    if (body === null) {
      await this.deadLetter(job);
      return;
    }
    try {
      await callHandler(this.options.handler, { body, redelivered: job.retryCount > 0 });
    } catch (err) {
      logger.warn(
        { queue, taskId: body.taskId, err: describeError(err) },
        "handler failed; the job will be retried",
      );
      await boss.fail(queue, job.id, { message: describeError(err) }).catch((failErr: unknown) => {
        logger.warn(
          { queue, jobId: job.id, err: describeError(failErr) },
          "could not fail the job; it will expire",
        );
      });
      this.wakeAfter(this.options.retryDelayMs);
      return;
    }
    await this.completions.add(job.id).catch((err: unknown) => {
      logger.warn(
        { queue, jobId: job.id, err: describeError(err) },
        "could not complete the job; it will expire",
      );
    });
  }

  /** Copies an unparseable job to the dead-letter queue, then completes it so it is never retried. */
  private async deadLetter(job: PgBoss.JobWithMetadata<unknown>): Promise<void> {
    const { boss, queue, deadLetterQueue, logger } = this.options;
    logger.warn({ queue, jobId: job.id }, "unparseable task message; dead-lettering it");
    try {
      await boss.insert([{ name: deadLetterQueue, data: job.data as object }]);
      await boss.complete(queue, job.id, { deadLettered: "unparseable task message" });
    } catch (err) {
      logger.warn(
        { queue, jobId: job.id, err: describeError(err) },
        "could not dead-letter the job; it will expire",
      );
    }
  }

  private wakeAfter(ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.wake();
    }, ms);
    this.timers.add(timer);
  }
}
