/**
 * A token bucket that paces calls to `perSecond` on average with bursts of up to `burst`, like
 * client-go's QPS and Burst. Each caller reserves the next token and sleeps until it is due, so waiting
 * callers go in order and the limiter holds no queue of its own.
 */
export class RateLimiter {
  private tokens: number;
  private updatedAt: number;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (perSecond <= 0 || burst < 1) throw new Error("a rate limiter needs perSecond > 0 and burst >= 1");
    this.tokens = burst;
    this.updatedAt = now();
  }

  /** Milliseconds the next caller would wait (0 when a token is free). */
  get delayMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.perSecond) * 1000;
  }

  /** Resolves when the caller may make its request. */
  async take(): Promise<void> {
    const wait = this.delayMs;
    this.tokens -= 1;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.perSecond);
    this.updatedAt = now;
  }
}
