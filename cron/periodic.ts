/**
 * Runs a pass every `everyMs` (the first after one interval) until stopped; a pass that fails is handed
 * to `failed` and the next one tries again. stop() waits for a pass in progress.
 */
export class Periodic {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private current: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly everyMs: number,
    private readonly pass: () => Promise<unknown>,
    private readonly failed: (err: unknown) => void,
  ) {}

  start(): void {
    const tick = async () => {
      this.current = this.pass().then(() => {}, this.failed);
      await this.current;
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.everyMs);
    };
    this.timer = setTimeout(() => void tick(), this.everyMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.current;
  }
}
