/**
 * A loop's alarm clock: `sleep(ms)` resolves after ms or as soon as `wake()` is called, whichever is
 * first. A wake that arrives while the loop is busy is remembered, so the next sleep returns at once.
 */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  wake(): void {
    if (this.resolve) this.fire();
    else this.pending = true;
  }

  sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(() => this.fire(), Math.max(0, ms));
    });
  }

  private fire(): void {
    if (this.timer) clearTimeout(this.timer);
    const r = this.resolve;
    this.resolve = null;
    this.timer = null;
    r?.();
  }
}
