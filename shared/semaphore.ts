/** Counts free slots; `acquire` waits for one. Bounds how many runs a dispatcher holds at once. */
export class Semaphore {
  private waiters: ((ok: boolean) => void)[] = [];

  constructor(private free: number) {}

  get available(): number {
    return this.free;
  }

  /** Takes a slot, waiting at most `timeoutMs`; false when none came free in time. */
  async acquire(timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    if (this.free > 0) {
      this.free -= 1;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const waiter = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            this.waiters = this.waiters.filter((w) => w !== waiter);
            resolve(false);
          }, timeoutMs)
        : undefined;
      this.waiters.push(waiter);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next(true);
    else this.free += 1;
  }
}
