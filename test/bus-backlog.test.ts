import { describe, expect, it } from "vitest";
import { BusBacklog } from "../cron/bus-backlog.ts";

/** A backlog on a clock the test moves. */
function gauge(floor: number) {
  let now = 0;
  const backlog = new BusBacklog(floor, 100, () => now);
  return { backlog, advance: (ms: number) => (now += ms) };
}

describe("the bus backlog", () => {
  it("holds its floor while nothing is taken from the bus", () => {
    const { backlog, advance } = gauge(100);
    expect(backlog.room(0)).toBe(100);
    backlog.published(100);
    advance(50);
    expect(backlog.room(100)).toBe(0);
    expect(backlog.limit).toBe(100);
  });

  it("grows to what the dispatchers take in its window, and shrinks back when they stop", () => {
    const { backlog, advance } = gauge(100);
    backlog.room(0);
    // Dispatchers taking 5,000 messages a second: each 30 ms pass finds 150 fewer than it left.
    let depth = 0;
    for (let pass = 0; pass < 20; pass++) {
      const room = backlog.room(depth);
      backlog.published(room);
      depth += room;
      advance(30);
      depth = Math.max(0, depth - 150);
    }
    expect(backlog.limit).toBeGreaterThan(400);
    expect(backlog.limit).toBeLessThanOrEqual(500);
    // Then nothing is taken: the backlog falls back to its floor.
    for (let pass = 0; pass < 30; pass++) {
      const room = Math.max(0, backlog.room(depth));
      backlog.published(room);
      depth += room;
      advance(30);
    }
    expect(backlog.limit).toBe(100);
  });

  it("counts what a pass published as waiting until the next depth read says it was taken", () => {
    const { backlog, advance } = gauge(10);
    backlog.room(0);
    backlog.published(10);
    advance(100);
    // All 10 taken in 100 ms: 100 a second, a tenth of which is the window's 10.
    backlog.room(0);
    expect(backlog.limit).toBe(10);
  });
});
