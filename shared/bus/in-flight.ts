/** Counts running handlers so a consumer can wait until none is left. */
export class InFlight {
  private running = 0;
  private waiters: Array<() => void> = [];

  get size(): number {
    return this.running;
  }

  /** Runs `work`, counted until it settles; the returned promise resolves after the count dropped, never rejects. */
  track(work: () => Promise<void>): Promise<void> {
    this.running++;
    return work()
      .catch(() => {})
      .finally(() => {
        this.running--;
        if (this.running === 0) for (const wake of this.waiters.splice(0)) wake();
      });
  }

  /** Resolves once nothing is running. */
  whenIdle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Calls the handler so that a synchronous throw becomes a rejection. */
export function callHandler<T>(handler: (value: T) => Promise<void>, value: T): Promise<void> {
  try {
    return Promise.resolve(handler(value));
  } catch (err) {
    return Promise.reject(err);
  }
}
