import { describe, expect, onTestFinished, test } from "vitest";
import type { Bus, Delivery, OutgoingMessage } from "../../shared/bus/bus.ts";

/** One test's queue (and, for pg-boss, database), with what the contract needs to look behind the port. */
export interface BusFixture {
  /** Opens a bus on this test's queue; every call gives a new one (a new process, as far as the bus knows). */
  open(): Promise<Bus>;
  /** Puts a message on the queue whose body is not a task message, behind the bus's back. */
  publishUnparseable(): Promise<void>;
  deadLetterDepth(): Promise<number>;
  /** Messages not yet acknowledged, waiting or held by a consumer (call after closing every bus). */
  unsettled(): Promise<number>;
  /** Deletes the queues or database; called only when the test passed, so a failure keeps its evidence. */
  cleanup(): Promise<void>;
}

export type MakeBusFixture = (label: string) => Promise<BusFixture>;

/** A fixture whose buses are closed after the test, and whose queues are deleted when it passed. */
export async function useFixture<F extends BusFixture>(
  make: (label: string) => Promise<F>,
  label: string,
): Promise<F> {
  const fixture = await make(label);
  const opened: Bus[] = [];
  onTestFinished(async ({ task }) => {
    await Promise.all(opened.map((bus) => bus.close().catch(() => {})));
    if (task.result?.state === "pass") await fixture.cleanup();
  });
  const open = async (...args: Parameters<F["open"]>) => {
    const bus = await (fixture.open as (...a: typeof args) => Promise<Bus>)(...args);
    opened.push(bus);
    return bus;
  };
  return { ...fixture, open: open as F["open"] };
}

/** Messages for tasks `<prefix>-<from>` .. `<prefix>-<from + count - 1>`, attempt 1, outbox ids `o-<task>`. */
export function taskMessages(prefix: string, count: number, from = 0): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    outboxId: `o-${prefix}-${from + i}`,
    body: { taskId: `${prefix}-${from + i}`, attempt: 1 },
  }));
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A promise with its resolve and reject, for handlers a test settles by hand. */
export function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A bus that hands every call to `bus`: spread it and override what a test watches or changes (a class's
 * methods do not spread).
 */
export function forwarding(bus: Bus): Bus {
  return {
    publish: (messages) => bus.publish(messages),
    consume: (handler, options) => bus.consume(handler, options),
    depth: () => bus.depth(),
    close: () => bus.close(),
  };
}

/** Publishes until every message is confirmed, as the claimer does when rows come back after their lease. */
export async function publishAll(bus: Bus, messages: OutgoingMessage[]): Promise<void> {
  let left = messages;
  for (let round = 0; left.length > 0; round++) {
    if (round > 50) throw new Error(`${left.length} messages never confirmed`);
    const confirmed = new Set(await bus.publish(left));
    left = left.filter((m) => !confirmed.has(m.outboxId));
    if (left.length > 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/** The behaviour every Bus adapter must show, run against a real broker or database. */
export function busContract(name: string, make: MakeBusFixture): void {
  describe(`Bus contract: ${name}`, () => {
    test("publish returns the confirmed ids and the consumer receives each body once", async () => {
      const fx = await useFixture(make, "roundtrip");
      const bus = await fx.open();
      const messages = taskMessages("rt", 3);
      expect(await bus.publish(messages)).toEqual(messages.map((m) => m.outboxId));
      expect(await bus.publish([])).toEqual([]);

      const seen: Delivery[] = [];
      const consumer = await bus.consume(async (d) => void seen.push(d), { prefetch: 5 });
      await waitFor("3 deliveries", () => seen.length === 3);
      await consumer.stop();
      expect(seen.map((d) => d.body).sort((a, b) => a.taskId.localeCompare(b.taskId))).toEqual(
        messages.map((m) => m.body),
      );
      expect(seen.every((d) => !d.redelivered)).toBe(true);

      // Acked messages are gone for good, also once the bus is closed and another one looks.
      await bus.close();
      const other = await fx.open();
      expect(await other.depth()).toBe(0);
      await other.close();
      expect(await fx.unsettled()).toBe(0);
    });

    test("a rejected delivery comes back, marked redelivered", async () => {
      const fx = await useFixture(make, "reject");
      const bus = await fx.open();
      await bus.publish(taskMessages("rej", 1));
      const seen: Delivery[] = [];
      const consumer = await bus.consume(
        async (d) => {
          seen.push(d);
          if (seen.length === 1) throw new Error("transient failure");
        },
        { prefetch: 1 },
      );
      await waitFor("the redelivery", () => seen.length === 2);
      await consumer.stop();
      expect(seen.map((d) => [d.body.taskId, d.redelivered])).toEqual([
        ["rej-0", false],
        ["rej-0", true],
      ]);
      await bus.close();
      expect(await fx.unsettled()).toBe(0);
    });

    test("never more handlers at once than the prefetch", async () => {
      const fx = await useFixture(make, "prefetch");
      const bus = await fx.open();
      await bus.publish(taskMessages("pf", 20));
      let running = 0;
      let most = 0;
      let done = 0;
      const consumer = await bus.consume(
        async () => {
          running++;
          most = Math.max(most, running);
          await new Promise((resolve) => setTimeout(resolve, 15));
          running--;
          done++;
        },
        { prefetch: 3 },
      );
      await waitFor("20 handled", () => done === 20);
      await consumer.stop();
      expect(most).toBe(3);
    });

    test("an unparseable message goes to the dead-letter queue without reaching the handler", async () => {
      const fx = await useFixture(make, "unparseable");
      const bus = await fx.open();
      await fx.publishUnparseable();
      await bus.publish(taskMessages("after", 1));
      const seen: Delivery[] = [];
      const consumer = await bus.consume(async (d) => void seen.push(d), { prefetch: 1 });
      await waitFor("the valid message", () => seen.length === 1);
      await waitFor("the dead letter", async () => (await fx.deadLetterDepth()) === 1);
      await consumer.stop();
      expect(seen.map((d) => d.body)).toEqual([{ taskId: "after-0", attempt: 1 }]);
      await bus.close();
      expect(await fx.unsettled()).toBe(0);
    });

    test("stop() waits for running handlers; what they did not acknowledge stays queued", async () => {
      const fx = await useFixture(make, "stop");
      const bus = await fx.open();
      await bus.publish(taskMessages("stop", 4));
      const held: Array<ReturnType<typeof deferred>> = [];
      const consumer = await bus.consume(
        async () => {
          const d = deferred();
          held.push(d);
          await d.promise;
        },
        { prefetch: 2 },
      );
      await waitFor("2 running handlers", () => held.length === 2);

      let stopped = false;
      const stopping = consumer.stop().then(() => (stopped = true));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(stopped).toBe(false);
      held[0]?.resolve();
      held[1]?.reject(new Error("not done"));
      await stopping;
      expect(held).toHaveLength(2); // nothing new started once stop() was called

      await bus.close();
      const other = await fx.open();
      expect(await other.depth()).toBe(3);
    });

    test("messages survive closing the bus and opening a new one", async () => {
      const fx = await useFixture(make, "durable");
      const first = await fx.open();
      await first.publish(taskMessages("dur", 5));
      await first.close();

      const second = await fx.open();
      expect(await second.depth()).toBe(5);
      const seen = new Set<string>();
      const consumer = await second.consume(async (d) => void seen.add(d.body.taskId), { prefetch: 5 });
      await waitFor("5 deliveries", () => seen.size === 5);
      await consumer.stop();
      expect([...seen].sort()).toEqual(taskMessages("dur", 5).map((m) => m.body.taskId));
    });

    test("2,000 messages published in batches all arrive (rates printed)", async () => {
      const fx = await useFixture(make, "bulk");
      const bus = await fx.open();
      const total = 2_000;
      const batch = 250;
      const started = performance.now();
      let confirmed = 0;
      for (let from = 0; from < total; from += batch) {
        confirmed += (await bus.publish(taskMessages("bulk", batch, from))).length;
      }
      const published = performance.now();
      expect(confirmed).toBe(total);

      const seen = new Set<string>();
      const consumer = await bus.consume(async (d) => void seen.add(d.body.taskId), { prefetch: 50 });
      await waitFor(`${total} deliveries`, () => seen.size === total, 60_000);
      const consumed = performance.now();
      await consumer.stop();
      console.log(
        `[${name}] published ${total} in batches of ${batch}: ${Math.round(total / ((published - started) / 1000))} msg/s; ` +
          `consumed (prefetch 50): ${Math.round(total / ((consumed - published) / 1000))} msg/s`,
      );
    });

    test("hop latency from publish to handler (printed)", async () => {
      const fx = await useFixture(make, "latency");
      const bus = await fx.open();
      let arrived: (() => void) | null = null;
      const consumer = await bus.consume(async () => arrived?.(), { prefetch: 1 });
      const hops: number[] = [];
      for (let i = 0; i < 40; i++) {
        const handled = new Promise<void>((resolve) => (arrived = resolve));
        const sent = performance.now();
        await bus.publish(taskMessages("hop", 1, i));
        await handled;
        hops.push(performance.now() - sent);
      }
      await consumer.stop();
      const sorted = hops.slice(5).sort((a, b) => a - b); // the first few warm up connections
      console.log(
        `[${name}] hop publish -> handler: median ${percentile(sorted, 50).toFixed(1)} ms, ` +
          `p95 ${percentile(sorted, 95).toFixed(1)} ms, max ${percentile(sorted, 100).toFixed(1)} ms`,
      );
      expect(hops).toHaveLength(40);
    });
  });
}
