/** An item added to a Batcher, with what settles the promise add() gave for it. */
export interface Waiting<T, R> {
  item: T;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/**
 * Natural batching: items added while a flush is in flight wait for it and go together in the next
 * one. An idle batcher flushes on the event loop's next turn (what the current turn adds joins it: a
 * wave of deliveries that reach the same step together is one flush, not one lone item then the rest);
 * a busy one turns many calls into one.
 */
export class Batcher<T, R> {
  private queue: Waiting<T, R>[] = [];
  private flushing = false;

  constructor(
    private readonly flush: (items: T[]) => Promise<R[]>,
    private readonly maxBatch = 500,
  ) {}

  /** Resolves with this item's result once the batch that carried it has been flushed. */
  add(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.flushing) void this.drain();
    });
  }

  /**
   * Takes back the first item waiting for a flush (not one a flush in flight carries) that `match` holds
   * for: it goes in no flush, and the caller settles the promise add() gave for it.
   */
  withdraw(match: (item: T) => boolean): Waiting<T, R> | null {
    const i = this.queue.findIndex((w) => match(w.item));
    return i < 0 ? null : this.queue.splice(i, 1)[0]!;
  }

  private async drain(): Promise<void> {
    this.flushing = true;
    await new Promise((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const results = await this.flush(batch.map((b) => b.item));
        batch.forEach((b, i) => b.resolve(results[i] as R));
      } catch (err) {
        batch.forEach((b) => b.reject(err));
      }
    }
    this.flushing = false;
  }
}
