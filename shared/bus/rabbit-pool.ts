import type { ConfirmChannel } from "amqplib";
import { describeError, type BusLogger } from "./message.ts";

/** A confirm channel lent out by the pool, with what the broker returned as unroutable on it. */
export class PooledChannel {
  /** Set once the channel errored or closed; a broken channel is never lent again. */
  broken = false;
  discarded = false;
  /** The AMQP reply code the broker closed the channel with (404 when the exchange is missing). */
  closeCode: number | undefined;
  /** messageIds the broker returned (mandatory flag, no queue bound) during the current publish. */
  readonly returned = new Set<string>();

  constructor(readonly channel: ConfirmChannel) {}
}

interface Waiter {
  resolve(channel: PooledChannel): void;
  reject(err: Error): void;
}

/**
 * Up to `max` confirm channels shared by concurrent publishes. A channel that errors or closes is
 * discarded the moment it does, so the next borrower gets a fresh one: a channel the broker closed
 * (for example after a publish to a missing exchange) would fail every later publish.
 */
export class ConfirmChannelPool {
  private readonly idle: PooledChannel[] = [];
  private readonly waiters: Waiter[] = [];
  /** Channels open or being opened, counted against `max`. */
  private open = 0;
  private closed = false;

  constructor(
    private readonly createChannel: () => Promise<ConfirmChannel>,
    private readonly max: number,
    private readonly logger: BusLogger,
  ) {}

  /** Lends a healthy channel, opening one when none is idle and fewer than `max` are open. */
  async acquire(): Promise<PooledChannel> {
    if (this.closed) throw new Error("channel pool is closed");
    const idle = this.idle.pop();
    if (idle) return idle;
    if (this.open < this.max) {
      this.open++;
      return this.openChannel();
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Takes a channel back; a broken one is closed and forgotten instead. */
  release(pooled: PooledChannel): void {
    if (pooled.broken || this.closed) {
      this.discard(pooled);
      void pooled.channel.close().catch(() => {});
      return;
    }
    pooled.returned.clear();
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(pooled);
    else this.idle.push(pooled);
  }

  /** Closes idle channels and refuses waiters; lent channels are closed when they come back. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("channel pool is closed"));
    const idle = this.idle.splice(0);
    await Promise.all(idle.map((pooled) => pooled.channel.close().catch(() => {})));
  }

  /** Channels currently open (idle or lent). */
  get size(): number {
    return this.open;
  }

  private async openChannel(): Promise<PooledChannel> {
    let channel: ConfirmChannel;
    try {
      channel = await this.createChannel();
    } catch (err) {
      this.open--;
      this.handOverSlot();
      throw err;
    }
    const pooled = new PooledChannel(channel);
    channel.on("error", (err: Error & { code?: unknown }) => {
      if (typeof err.code === "number") pooled.closeCode = err.code;
      this.logger.warn({ err: describeError(err) }, "publish channel error; discarding it");
      this.discard(pooled);
    });
    channel.on("close", () => this.discard(pooled));
    channel.on("return", (message: { properties: { messageId?: unknown } }) => {
      if (typeof message.properties.messageId === "string") pooled.returned.add(message.properties.messageId);
    });
    if (this.closed) {
      this.discard(pooled);
      void channel.close().catch(() => {});
      throw new Error("channel pool is closed");
    }
    return pooled;
  }

  private discard(pooled: PooledChannel): void {
    pooled.broken = true;
    if (pooled.discarded) return;
    pooled.discarded = true;
    this.open--;
    const at = this.idle.indexOf(pooled);
    if (at >= 0) this.idle.splice(at, 1);
    this.handOverSlot();
  }

  /** A slot freed up: let the first waiter open a channel of its own. */
  private handOverSlot(): void {
    if (this.closed || this.open >= this.max) return;
    const waiter = this.waiters.shift();
    if (!waiter) return;
    this.open++;
    this.openChannel().then(waiter.resolve, waiter.reject);
  }
}
