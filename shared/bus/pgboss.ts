import { createHash } from "node:crypto";
import PgBoss from "pg-boss";
import postgres from "postgres";
import { postgresTarget, preparesStatements } from "../db/connect.ts";
import type { Bus, ConsumeOptions, Consumer, Delivery, OutgoingMessage } from "./bus.ts";
import { describeError, stderrLogger, type BusLogger } from "./message.ts";
import { PgBossConsumer } from "./pgboss-consumer.ts";

export interface PgBossBusOptions {
  /** Postgres URL (DATABASE_URL, or the embedded Postgres). */
  connectionString: string;
  /** Task queue name; the dead-letter queue is `<queue>.dead`. */
  queue: string;
  /** Schema pg-boss installs its tables in (default "pgboss"). */
  schema?: string;
  /** A job whose consumer died becomes fetchable again this long after it was fetched (default 60). */
  expireInSeconds?: number;
  /** How often pg-boss's maintenance reclaims expired jobs, across all processes (default 10). */
  maintenanceIntervalSeconds?: number;
  /** Delay before a job whose handler rejected can be fetched again (default 1). */
  retryDelaySeconds?: number;
  /**
   * This process will consume: the consumers' connection and its LISTEN open beside pg-boss's start, not
   * at the first consume() (30-45 ms of a dispatcher's start here).
   */
  consumes?: boolean;
  /** Poll backstop for lost notifications (default 1000). */
  pollIntervalMs?: number;
  logger?: BusLogger;
}

/** Attempts a job gets before pg-boss gives up and dead-letters it: retries are the orchestrator's call. */
const RETRY_LIMIT = 1_000_000;
/** Unconsumed jobs are kept this long (pg-boss's default of 14 days would silently drop them). */
const RETENTION_MINUTES = 365 * 24 * 60;
/** What two processes making the same queue at once get (deadlock, unique violation, duplicate table). */
const RACED_CREATE_CODES = new Set(["40P01", "23505", "42P07"]);

/** The NOTIFY channel a bus on `queue` wakes its consumers with (a valid, bounded identifier). */
export function pgBossChannel(queue: string): string {
  const slug = queue.replace(/[^a-zA-Z0-9_]/g, "_").slice(0, 30);
  const hash = createHash("sha1").update(queue).digest("hex").slice(0, 12);
  return `dwop_bus_${slug}_${hash}`;
}

/**
 * The bus for when there is no broker: a pg-boss 10 queue in Postgres. pg-boss's own `work()` polls
 * (0.5 s at best), so publishers NOTIFY after each insert and consumers LISTEN and fetch when woken,
 * with a poll as backstop. Publishing is one insert per batch, confirmed once it commits.
 */
export class PgBossBus implements Bus {
  private readonly queue: string;
  private readonly deadLetterQueue: string;
  private readonly channel: string;
  private readonly logger: BusLogger;
  private readonly consumers = new Set<PgBossConsumer>();
  /** Consumer-side connections (LISTEN, fetch, complete), opened at start with `consumes`, else by the first consume(). */
  private consumerSql: postgres.Sql | null = null;
  private listening: Promise<postgres.Sql> | null = null;
  private readonly boss: PgBoss;
  private readonly started: Promise<void>;
  private closed = false;

  /** Starts pg-boss at once; `ready()` (or `PgBossBus.connect`) waits for it and the queues. */
  constructor(private readonly options: PgBossBusOptions) {
    this.queue = options.queue;
    this.deadLetterQueue = `${options.queue}.dead`;
    this.channel = pgBossChannel(options.queue);
    const logger = (this.logger = options.logger ?? stderrLogger);
    this.boss = new PgBoss({
      connectionString: options.connectionString,
      schema: options.schema ?? "pgboss",
      application_name: "dwop-bus",
      schedule: false,
      supervise: true,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 10,
    });
    // Once close() began, an error is the stop's own doing (a query cut as pg-boss closes its pool):
    // nothing for the person who pressed Ctrl-C to read.
    this.boss.on("error", (err: Error) => {
      if (!this.closed) logger.warn({ err: describeError(err) }, "pg-boss error");
    });
    const starting = this.boss.start().then(() => this.createQueues());
    this.started = options.consumes ? Promise.all([starting, this.listen()]).then(() => {}) : starting;
    this.started.catch(() => {}); // surfaced by ready() and every call that needs the queue
  }

  /** Starts pg-boss (installing its schema if missing) and creates the queue and its dead-letter queue. */
  static async connect(options: PgBossBusOptions): Promise<PgBossBus> {
    const bus = new PgBossBus(options);
    try {
      await bus.ready();
    } catch (err) {
      await bus.close();
      throw err;
    }
    return bus;
  }

  /** Resolves once pg-boss is installed and the queues exist. */
  ready(): Promise<void> {
    return this.started;
  }

  async publish(messages: OutgoingMessage[]): Promise<string[]> {
    if (messages.length === 0 || this.closed) return [];
    const jobs = messages.map(({ body }) => ({
      name: this.queue,
      data: { taskId: body.taskId, attempt: body.attempt },
    }));
    try {
      await this.started;
      await this.boss.insert(jobs);
    } catch (err) {
      this.logger.warn({ queue: this.queue, err: describeError(err) }, "publish failed");
      return [];
    }
    await this.notify();
    return messages.map((message) => message.outboxId);
  }

  async consume(handler: (delivery: Delivery) => Promise<void>, options: ConsumeOptions): Promise<Consumer> {
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
      throw new RangeError(`prefetch must be a positive integer, got ${options.prefetch}`);
    }
    await this.started;
    if (this.closed) throw new Error("bus is closed");
    const sql = await this.listen();
    const consumer = new PgBossConsumer({
      boss: this.boss,
      relaxedDb: { executeSql: async (text, values) => ({ rows: await sql.unsafe(text, values ?? []) }) },
      queue: this.queue,
      deadLetterQueue: this.deadLetterQueue,
      prefetch: options.prefetch,
      handler,
      pollIntervalMs: this.options.pollIntervalMs ?? 1_000,
      retryDelayMs: (this.options.retryDelaySeconds ?? 1) * 1_000,
      logger: this.logger,
      onStop: (stopped) => this.consumers.delete(stopped),
    });
    this.consumers.add(consumer);
    consumer.start();
    return consumer;
  }

  async depth(): Promise<number> {
    await this.started;
    return this.boss.getQueueSize(this.queue);
  }

  /** Jobs waiting in the dead-letter queue (unparseable bodies, exhausted retries). */
  async deadLetterDepth(): Promise<number> {
    await this.started;
    return this.boss.getQueueSize(this.deadLetterQueue);
  }

  /**
   * Makes jobs held past their expiry fetchable again now, instead of at the next maintenance run
   * (for tests that backdate a job, and for operators).
   */
  async reclaimExpired(): Promise<void> {
    await this.started;
    await this.boss.expire();
    await this.notify();
  }

  /**
   * Stops fetching and closes both connections. Handlers still running cannot settle their jobs any
   * more; those jobs expire and are fetched again. Call `consumer.stop()` first to let them finish.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const consumers = [...this.consumers];
    this.consumers.clear();
    for (const consumer of consumers) void consumer.stop();
    await this.consumerSql?.end({ timeout: 1 }).catch(() => {});
    await this.started.catch(() => {});
    await this.boss.stop({ graceful: false, close: true }).catch(() => {});
  }

  /**
   * pg-boss's createQueue is not safe when two processes make the same queue at once (the claimer and
   * the dispatcher starting together): one of them gets a deadlock, a unique violation or "relation
   * already exists" while the other makes it. The loser tries again and finds the queue made.
   */
  private async createQueues(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.createQueuesOnce();
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (attempt >= 5 || !RACED_CREATE_CODES.has(String(code))) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt + Math.random() * 100));
      }
    }
  }

  private async createQueuesOnce(): Promise<void> {
    const common = { retentionMinutes: RETENTION_MINUTES };
    await this.boss.createQueue(this.deadLetterQueue, { name: this.deadLetterQueue, ...common });
    const settings = {
      name: this.queue,
      ...common,
      retryLimit: RETRY_LIMIT,
      retryDelay: this.options.retryDelaySeconds ?? 1,
      retryBackoff: false,
      expireInSeconds: this.options.expireInSeconds ?? 60,
      deadLetter: this.deadLetterQueue,
    };
    await this.boss.createQueue(this.queue, settings);
    // createQueue leaves an existing queue as it was; apply this process's settings to new jobs.
    await this.boss.updateQueue(this.queue, settings);
  }

  /** Wakes consumers in every process; a lost notification only costs a poll interval. */
  private async notify(): Promise<void> {
    try {
      await this.boss.getDb().executeSql("select pg_notify($1, '')", [this.channel]);
    } catch (err) {
      this.logger.warn({ queue: this.queue, err: describeError(err) }, "notify failed");
    }
  }

  /** The consumer-side connections, opened once, LISTENing on the queue's channel; tried again after a failure. */
  private listen(): Promise<postgres.Sql> {
    this.listening ??= this.openListening().catch((err: unknown) => {
      this.listening = null;
      throw err;
    });
    return this.listening;
  }

  private async openListening(): Promise<postgres.Sql> {
    const target = postgresTarget(this.options.connectionString);
    const sql = postgres(target.url, {
      path: target.path,
      max: 4,
      onnotice: () => {},
      prepare: preparesStatements(this.options.connectionString),
      // pg-boss passes undefined for unset parameters.
      transform: { undefined: null },
      connection: { application_name: "dwop-bus-consumer", synchronous_commit: "off" },
    });
    this.consumerSql = sql;
    const wakeAll = () => {
      for (const consumer of this.consumers) consumer.wake();
    };
    // The second callback runs again after postgres.js re-listens on a new connection: catch up then.
    try {
      await sql.listen(this.channel, wakeAll, wakeAll);
    } catch (err) {
      this.consumerSql = null;
      await sql.end({ timeout: 1 }).catch(() => {});
      throw err;
    }
    return sql;
  }
}
