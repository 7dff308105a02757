import type { Bus } from "../shared/bus/bus.ts";
import { BusBacklog } from "./bus-backlog.ts";
import { CallbackSender, type CallbackSenderOptions } from "../shared/callbacks.ts";
import type { Store } from "../shared/db/store.ts";
import { silentLogger, type Logger } from "../shared/log.ts";
import { Wakeup } from "../shared/wakeup.ts";
import { Republisher } from "./republish.ts";
import { RetentionSweeper } from "./retention.ts";
import type { Config } from "../shared/config.ts";
import { ScheduleStore } from "../shared/db/schedules.ts";
import { parseAllowList } from "../shared/net/addresses.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { submitLimits, type SubmitLimits } from "../shared/submit.ts";
import { Periodic } from "./periodic.ts";
import { ScheduleFirer, type Fired } from "./schedules.ts";

export interface ClaimerOptions {
  id: string;
  batchSize: number;
  leaseSeconds: number;
  /** Longest sleep between claims when no NOTIFY arrives: the backstop for a lost notification. */
  pollMs: number;
  logger?: Logger;
  /** How completion callbacks are sent (tries, backoff, timeout, allow-list, transport); defaults suit production. */
  callbacks?: Partial<Omit<CallbackSenderOptions, "claimerId" | "leaseSeconds" | "logger">>;
  /**
   * Republish a task whose message was published this long ago without its attempt starting (the
   * message vanished from the bus; see republish.ts). Unset or 0: never.
   */
  republishAfterSeconds?: number;
  /** How often to look for such tasks (default: a quarter of republishAfterSeconds, 1 to 15 s). */
  republishEveryMs?: number;
  /** Delete what ended or was published longer ago than this many days (see retention.ts); unset or 0: keep. */
  retentionDays?: number;
  /** Where scheduled workflows' code is stored; without it this claimer fires no schedules. */
  storage?: Storage | null;
  /** How often to look for due schedules (default every second). */
  scheduleEveryMs?: number;
  /** How scheduled workflows are submitted (as the API's settings say for submitted ones). */
  submit?: { retryBackoffMs: number; maxInfraRetries?: number; limits: SubmitLimits };
  /**
   * Task messages left waiting in the bus: this many, or what the dispatchers take in 100 ms when that is
   * more (BusBacklog); the rest wait in the outbox, where claims take owners in turn and higher priorities
   * first (fair share). Unset or 0: no limit.
   */
  busBacklog?: number;
  /** DWOP_OWNER_MAX_RUNNING, for reoffering tasks parked at an owner's cap; unset or 0: no cap. */
  ownerMaxRunning?: number;
}

/**
 * How long a claimer holds a due schedule: long enough to store a workflow's code, so another claimer
 * does not take over a fire in progress (which would be harmless, only wasted work).
 */
const SCHEDULE_LEASE_SECONDS = 60;

/** How soon a claimer held back by a full bus backlog looks again. */
const BACKLOG_POLL_MS = 50;

/** A claimer's settings from the configuration (every process that runs one uses the same). */
export function claimerSettings(config: Config): Omit<ClaimerOptions, "id" | "logger"> {
  return {
    batchSize: config.DWOP_CLAIM_BATCH,
    leaseSeconds: config.DWOP_CLAIM_LEASE_SECONDS,
    pollMs: config.DWOP_CLAIM_POLL_MS,
    republishAfterSeconds: config.DWOP_REPUBLISH_AFTER_SECONDS,
    callbacks: { allow: parseAllowList(config.DWOP_CALLBACK_ALLOW) },
    retentionDays: config.DWOP_RETENTION_DAYS,
    submit: {
      retryBackoffMs: config.DWOP_RETRY_BACKOFF_MS,
      maxInfraRetries: config.DWOP_MAX_INFRA_RETRIES,
      limits: submitLimits(config),
    },
    busBacklog: config.DWOP_BUS_BACKLOG,
    ownerMaxRunning: config.DWOP_OWNER_MAX_RUNNING,
  };
}

/**
 * Moves outbox rows to the bus: claim a batch (a lease), publish with confirms, mark the confirmed rows
 * published. Rows the broker did not confirm stay claimed until their lease runs out and are then
 * claimed again, by this claimer or another. Rows of topic `workflow.callback` are not for the bus: they
 * go to the CallbackSender, which POSTs them and reschedules failed sends. With
 * `republishAfterSeconds`, a Republisher writes new rows for tasks whose message vanished from the bus.
 * With `storage`, a ScheduleFirer starts the workflows of due schedules every second (see
 * schedules.ts), in a loop of its own so that storing a scheduled workflow's code never holds up
 * publishing.
 */
export class Claimer {
  private readonly wakeup = new Wakeup();
  private stopped = false;
  private loop: Promise<void> | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  private readonly log: Logger;
  private readonly callbacks: CallbackSender;
  private readonly republisher: Republisher | null;
  private readonly retention: RetentionSweeper | null;
  private readonly schedules: ScheduleFirer | null;
  private readonly scheduleLoop: Periodic | null;
  /** What the bus may hold; null: no limit (busBacklog 0). */
  private readonly backlog: BusBacklog | null;
  /** The last pass left due rows in the outbox because the bus held its backlog. */
  private heldBack = false;

  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    private readonly options: ClaimerOptions,
  ) {
    this.log = (options.logger ?? silentLogger).child({ component: "claimer", claimer: options.id });
    this.backlog = options.busBacklog ? new BusBacklog(options.busBacklog) : null;
    this.callbacks = new CallbackSender(store, {
      ...options.callbacks,
      claimerId: options.id,
      leaseSeconds: options.leaseSeconds,
      logger: this.log,
    });
    this.republisher = options.republishAfterSeconds
      ? new Republisher(store.db, bus, {
          afterSeconds: options.republishAfterSeconds,
          everyMs: options.republishEveryMs,
          logger: this.log,
        })
      : null;
    this.retention = options.retentionDays
      ? new RetentionSweeper(store.db, { keepDays: options.retentionDays, logger: this.log })
      : null;
    this.schedules = options.storage
      ? new ScheduleFirer(new ScheduleStore(store.db), store, options.storage, {
          claimerId: options.id,
          leaseSeconds: Math.max(options.leaseSeconds, SCHEDULE_LEASE_SECONDS),
          batchSize: options.batchSize,
          retryBackoffMs: options.submit?.retryBackoffMs ?? 1000,
          maxInfraRetries: options.submit?.maxInfraRetries,
          limits: options.submit?.limits,
          logger: this.log,
        })
      : null;
    // A schedule that cannot fire now (storage down) stays claimed and is tried again after its lease.
    this.scheduleLoop = this.schedules
      ? new Periodic(
          options.scheduleEveryMs ?? 1000,
          () => this.fireSchedulesOnce(),
          (err) => this.log.error({ err }, "firing schedules failed"),
        )
      : null;
  }

  /** Claims and publishes one batch of task rows and starts sending due callbacks; returns how many rows it claimed. */
  async runOnce(): Promise<number> {
    const [published, callbacks] = await Promise.all([this.publishOnce(), this.callbacks.pump()]);
    return published + callbacks;
  }

  /** Fires the schedules due at `now` (default: the clock); returns what each did. */
  async fireSchedulesOnce(now?: Date): Promise<Fired[]> {
    return (await this.schedules?.runOnce(now)) ?? [];
  }

  /** Republishes tasks whose message vanished from the bus (one pass); returns how many. */
  async republishOnce(now?: Date): Promise<number> {
    return (await this.republisher?.runOnce(now)) ?? 0;
  }

  private async publishOnce(): Promise<number> {
    await this.store.reofferParkedTasks(this.options.ownerMaxRunning || null);
    const room = await this.roomInBus();
    this.heldBack = room <= 0;
    if (this.heldBack) return 0;
    const claimed = await this.store.claimOutbox(this.options.id, room, this.options.leaseSeconds);
    if (claimed.length === 0) return 0;
    const confirmed = await this.bus.publish(claimed.map((c) => ({ outboxId: c.id, body: c.message })));
    this.backlog?.published(confirmed.length);
    await this.store.markPublished(this.options.id, confirmed);
    if (confirmed.length < claimed.length) {
      this.log.warn(
        { claimed: claimed.length, confirmed: confirmed.length },
        "broker did not confirm every message",
      );
    }
    return claimed.length;
  }

  /** How many rows this pass may publish: the batch, or less when the bus holds its backlog (BusBacklog). */
  private async roomInBus(): Promise<number> {
    if (!this.backlog) return this.options.batchSize;
    return Math.min(this.options.batchSize, this.backlog.room(await this.bus.depth()));
  }

  /** Listens for outbox inserts and claims until stopped. */
  async start(): Promise<void> {
    // Rows this id claimed in an earlier life and never published go now, not after their lease: a
    // restarted claimer with a stable DWOP_CLAIMER_ID picks up where it died (the NOTIFY wakes it).
    const released = await this.store.releaseOutboxClaims(this.options.id);
    if (released > 0) this.log.info({ released }, "released the rows this claimer had claimed before");
    const listener = await this.store.db.listen(
      "dwop_outbox",
      () => this.wakeup.wake(),
      () => this.wakeup.wake(), // (re)connected: anything inserted meanwhile is due now
    );
    this.unlisten = () => listener.unlisten();
    this.loop = this.run();
    this.republisher?.start();
    this.retention?.start();
    this.scheduleLoop?.start();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const n = await this.runOnce();
        failures = 0;
        if (n === this.options.batchSize) continue;
        if (this.heldBack) await this.wakeup.sleep(BACKLOG_POLL_MS);
        else await this.wakeup.sleep(await this.untilNextDue());
      } catch (err) {
        failures += 1;
        const delay = Math.min(100 * 2 ** failures, 5000);
        this.log.error({ err, delay }, "claim failed; retrying");
        await this.wakeup.sleep(delay);
      }
    }
  }

  private async untilNextDue(): Promise<number> {
    const due = await this.store.nextOutboxDue();
    if (!due) return this.options.pollMs;
    return Math.min(this.options.pollMs, Math.max(0, due.getTime() - Date.now()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeup.wake();
    await this.republisher?.stop();
    await this.retention?.stop();
    await this.scheduleLoop?.stop();
    await this.loop;
    await this.callbacks.drain();
    await this.unlisten?.().catch(() => {});
  }
}
