import { silentLogger, type Logger } from "../shared/log.ts";
import type { ClusterStore } from "./cluster-store.ts";

export interface LeaseOptions {
  /** The lease's name: one holder per name across every replica sharing the database. */
  name: string;
  holder: string;
  ttlSeconds: number;
  /** How often the holder renews (and others try to take it); a third of the TTL unless given. */
  renewSeconds?: number;
  /** Called when this replica becomes the holder, and when it stops being one. */
  onAcquired: () => Promise<void>;
  onLost: () => Promise<void>;
  logger?: Logger;
}

/**
 * Leader election over one row of dwop.leases: every replica tries to take or renew the lease on a
 * timer; acquire_lease's compare-and-set lets only one hold it, and another only once it expired. A
 * holder that cannot renew (the database unreachable) steps down before its lease can expire, so two
 * replicas never act as leader at once. stop() releases the lease, so a successor need not wait.
 */
export class LeaderLease {
  private leader = false;
  private lastRenewed = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private ticking: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(
    private readonly store: ClusterStore,
    private readonly options: LeaseOptions,
  ) {
    this.log = (options.logger ?? silentLogger).child({ component: "lease", lease: options.name });
  }

  get isLeader(): boolean {
    return this.leader;
  }

  private get renewMs(): number {
    return (this.options.renewSeconds ?? this.options.ttlSeconds / 3) * 1000;
  }

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.renewMs);
  }

  /** One round: take or renew the lease, and act on a change. Exposed for tests. */
  tick(): Promise<void> {
    this.ticking ??= this.round().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async round(): Promise<void> {
    try {
      const held = await this.store.acquireLease(
        this.options.name,
        this.options.holder,
        this.options.ttlSeconds,
      );
      if (held) {
        this.lastRenewed = Date.now();
        if (!this.leader) await this.takeOver();
      } else if (this.leader) {
        await this.stepDown("another replica holds the lease");
      }
    } catch (err) {
      this.log.error({ err }, "could not renew the lease");
      const margin = this.options.ttlSeconds * 1000 - this.renewMs;
      if (this.leader && Date.now() - this.lastRenewed >= margin)
        await this.stepDown("the lease could not be renewed");
    }
  }

  private async takeOver(): Promise<void> {
    this.leader = true;
    this.log.info({}, "acquired the lease: observing");
    try {
      await this.options.onAcquired();
    } catch (err) {
      // Holding the lease without observing would stall every outcome: give it to another replica.
      this.log.error({ err }, "could not start observing; releasing the lease");
      await this.stepDown("could not start observing");
      await this.store.releaseLease(this.options.name, this.options.holder);
    }
  }

  private async stepDown(why: string): Promise<void> {
    this.leader = false;
    this.log.warn({ why }, "lost the lease: no longer observing");
    await this.options.onLost();
  }

  /** Stops renewing; a holder stops acting as leader and releases the lease. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    if (!this.leader) return;
    await this.stepDown("stopping");
    await this.store.releaseLease(this.options.name, this.options.holder).catch((err: unknown) => {
      this.log.error({ err }, "could not release the lease; it expires by itself");
    });
  }
}
