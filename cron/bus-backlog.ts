/**
 * How many task messages a claimer lets wait in the bus. Rows kept back stay in the outbox, where each
 * claim takes owners in turn and higher priorities first; published, they wait in the bus's first-in
 * first-out order. So the bus should hold no more than the dispatchers are about to take: at least
 * `floor` messages (DWOP_BUS_BACKLOG), and as many as they took from it in the last `windowMs` at the
 * rate they have been taking them. A fixed 100 left the dispatchers waiting for the claimer's next pass
 * once they took 2,500 a second (a pass, claim to publish, took 30 ms on a loaded machine), while a
 * backlog measured in time keeps what an owner's task waits behind it near `windowMs`, whether the tasks
 * take a millisecond or a minute.
 */
export class BusBacklog {
  /** Messages per second the dispatchers have been taking from the bus, averaged over recent passes. */
  private rate = 0;
  /** The bus's depth once the last pass had published, and when that depth was read. */
  private last: { at: number; depth: number } | null = null;

  constructor(
    private readonly floor: number,
    private readonly windowMs = 100,
    private readonly now: () => number = Date.now,
  ) {}

  /** The most messages to let wait in the bus now. */
  get limit(): number {
    return Math.max(this.floor, Math.ceil((this.rate * this.windowMs) / 1000));
  }

  /**
   * Given the bus's depth just read, how many messages this pass may publish (zero or less: none), and
   * records what was taken from the bus since the last pass.
   */
  room(depth: number): number {
    const at = this.now();
    if (this.last && at > this.last.at) {
      const taken = Math.max(0, this.last.depth - depth);
      this.rate = 0.7 * this.rate + (0.3 * taken * 1000) / (at - this.last.at);
    }
    this.last = { at, depth };
    return this.limit - depth;
  }

  /** Records that this pass published n messages after reading the depth. */
  published(n: number): void {
    if (this.last) this.last.depth += n;
  }
}
