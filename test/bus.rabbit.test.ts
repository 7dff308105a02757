import { randomBytes } from "node:crypto";
import { connect, createServer, type AddressInfo } from "node:net";
import { describe, expect, test, vi } from "vitest";
import type { Delivery } from "../shared/bus/bus.ts";
import { silentLogger } from "../shared/log.ts";
import { RabbitBus, rabbitTopology, type RabbitBusOptions } from "../shared/bus/rabbit.ts";
import {
  busContract,
  deferred,
  publishAll,
  taskMessages,
  useFixture,
  waitFor,
  type BusFixture,
} from "./support/bus-contract.ts";
import {
  deleteRabbitTopology,
  forceCloseConnections,
  RABBIT_URL,
  uniqueQueueName,
  withRabbitChannel,
} from "./support/rabbit.ts";

type RabbitFixture = BusFixture & { names: ReturnType<typeof rabbitTopology> };

/** A fixture on a fresh queue; `options` go to every bus it opens. */
function rabbitFixture(options: Partial<RabbitBusOptions> = {}): (label: string) => Promise<RabbitFixture> {
  return async (label) => {
    const queue = uniqueQueueName(label);
    const names = rabbitTopology(queue);
    return {
      names,
      open: () => RabbitBus.connect({ url: RABBIT_URL, queue, logger: silentLogger, ...options }),
      publishUnparseable: () =>
        withRabbitChannel(async (channel) => {
          channel.publish(names.exchange, names.routingKey, Buffer.from("not json{"), { persistent: true });
          // A round trip on the same channel: the broker has routed the publish before it answers.
          await channel.checkQueue(queue);
        }),
      deadLetterDepth: () =>
        withRabbitChannel(async (ch) => (await ch.checkQueue(names.deadLetterQueue)).messageCount),
      unsettled: () => withRabbitChannel(async (ch) => (await ch.checkQueue(queue)).messageCount),
      cleanup: () => deleteRabbitTopology(queue),
    };
  };
}

busContract("RabbitMQ, classic queue", rabbitFixture());
busContract("RabbitMQ, quorum queue", rabbitFixture({ quorum: true }));

describe("RabbitBus", () => {
  test("declares a quorum task queue that dead-letters to <queue>.dead", async () => {
    const fx = await useFixture(rabbitFixture({ quorum: true }), "topology");
    await fx.open();
    const { queue, deadLetterExchange, deadLetterQueue } = fx.names;
    const declare = (type: string) =>
      withRabbitChannel((ch) =>
        ch.assertQueue(queue, {
          durable: true,
          arguments: { "x-queue-type": type, "x-dead-letter-exchange": deadLetterExchange },
        }),
      );
    // The broker accepts a re-declaration only with the arguments the queue was created with.
    await expect(declare("quorum")).resolves.toMatchObject({ queue });
    await expect(declare("classic")).rejects.toThrow(/PRECONDITION_FAILED/);
    await expect(
      withRabbitChannel((ch) =>
        ch.assertQueue(deadLetterQueue, { durable: true, arguments: { "x-queue-type": "quorum" } }),
      ),
    ).resolves.toMatchObject({ queue: deadLetterQueue });
  });

  test("acks the deliveries whose handlers ended together with one frame, never one still being handled", async () => {
    const connectionName = `dwop-test-${randomBytes(4).toString("hex")}`;
    const fx = await useFixture(rabbitFixture({ connectionName }), "acks");
    // The channels a consumer opens are amqplib's Channel, as this one is: its ack is watched.
    const proto = await withRabbitChannel(async (ch) => Object.getPrototypeOf(ch) as { ack: () => void });
    const ack = vi.spyOn(proto, "ack");
    try {
      const bus = await fx.open();
      const gate = deferred();
      const slow = deferred();
      const handled = new Map<string, number>();
      let holding = 0;
      const consumer = await bus.consume(
        async (d: Delivery) => {
          holding++;
          if (d.body.taskId === "acks-20" && !d.redelivered) {
            await slow.promise; // still running when its channel dies below: it must not count
            return;
          }
          await gate.promise;
          handled.set(d.body.taskId, (handled.get(d.body.taskId) ?? 0) + 1);
        },
        { prefetch: 30 },
      );
      await publishAll(bus, taskMessages("acks", 20));
      await waitFor("20 handlers holding deliveries", () => holding === 20);
      gate.resolve(); // all twenty end in one turn of the event loop
      await waitFor("20 handled", () => handled.size === 20);
      await waitFor("their ack sent", () => ack.mock.calls.length > 0);
      expect(ack.mock.calls.map((c) => (c as unknown[])[1] === true)).toEqual([true]);

      // The oldest of the next ten stays in its handler: the nine after it are acked one by one.
      await publishAll(bus, taskMessages("acks", 10, 20));
      await waitFor("29 handled", () => handled.size === 29);
      await waitFor("nine more acks", () => ack.mock.calls.length === 10);
      expect(ack.mock.calls.slice(1).every((c) => (c as unknown[])[1] !== true)).toBe(true);
      // The broker drops the connection with acks-20 unsettled: it alone comes again.
      expect(await forceCloseConnections(connectionName)).toBe(1);
      await waitFor("acks-20 delivered again and handled", () => handled.get("acks-20") === 1, 30_000);
      slow.resolve();
      await consumer.stop();
      expect([...handled.values()].every((n) => n === 1)).toBe(true);
      await bus.close();
      expect(await fx.unsettled()).toBe(0);
    } finally {
      ack.mockRestore();
    }
  });

  test("after the broker closes the connection, consumption resumes and no message is lost", async () => {
    const connectionName = `dwop-test-${randomBytes(4).toString("hex")}`;
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_: object, msg?: string) => void warnings.push(msg ?? "") };
    const fx = await useFixture(rabbitFixture({ connectionName, logger }), "reconnect");
    const bus = await fx.open();
    const total = 600;
    const seen = new Set<string>();
    let deliveries = 0;
    let redelivered = 0;
    let held = 0;
    let cut = false;
    const gate = deferred();
    const consumer = await bus.consume(
      async (d: Delivery) => {
        deliveries++;
        if (d.redelivered) redelivered++;
        if (!cut) {
          held++;
          await gate.promise; // still running when its channel dies
        }
        seen.add(d.body.taskId);
      },
      { prefetch: 10 },
    );

    await publishAll(bus, taskMessages("rc", total / 2));
    await waitFor("10 handlers holding deliveries", () => held === 10);
    expect(await forceCloseConnections(connectionName)).toBe(1);
    // Publish the rest through the reconnect (unconfirmed ids are published again, as the claimer does).
    await publishAll(bus, taskMessages("rc", total / 2, total / 2));
    cut = true;
    gate.resolve(); // the old handlers finish now; their channel is gone, so they must not ack

    await waitFor(`all ${total} tasks`, () => seen.size === total, 30_000);
    await consumer.stop();
    expect(deliveries).toBeGreaterThanOrEqual(total + 10);
    expect(redelivered).toBeGreaterThanOrEqual(10);
    // An ack with a stale delivery tag on the new channel would have made the broker close it.
    expect(warnings.filter((w) => w.includes("channel error"))).toEqual([]);
    await bus.close();
    expect(await fx.unsettled()).toBe(0);
  });

  test("a consumer the broker cancelled (queue deleted) subscribes again", async () => {
    const fx = await useFixture(rabbitFixture(), "cancelled");
    const bus = await fx.open();
    const seen = new Set<string>();
    const consumer = await bus.consume(async (d) => void seen.add(d.body.taskId), { prefetch: 5 });
    await publishAll(bus, taskMessages("cx", 3));
    await waitFor("3 deliveries", () => seen.size === 3);

    await withRabbitChannel((ch) => ch.deleteQueue(fx.names.queue));
    await publishAll(bus, taskMessages("cx", 3, 3));
    await waitFor("the 3 published after the deletion", () => seen.size === 6);
    await consumer.stop();
  });

  test("a bus made with `new` publishes and consumes without waiting for ready()", async () => {
    const queue = uniqueQueueName("lazy");
    const bus = new RabbitBus({ url: RABBIT_URL, queue, logger: silentLogger });
    try {
      expect(await bus.publish(taskMessages("lazy", 2))).toEqual(["o-lazy-0", "o-lazy-1"]);
      const seen: string[] = [];
      const consumer = await bus.consume(async (d) => void seen.push(d.body.taskId), { prefetch: 2 });
      await waitFor("2 deliveries", () => seen.length === 2);
      await consumer.stop();
    } finally {
      await bus.close();
    }
    await deleteRabbitTopology(queue);
  });

  test("a channel the broker closed (exchange deleted) is discarded; the next publish works", async () => {
    const fx = await useFixture(rabbitFixture({ maxChannels: 1 }), "broken_channel");
    const bus = await fx.open();
    expect(await bus.publish(taskMessages("bc", 1))).toEqual(["o-bc-0"]);

    await withRabbitChannel((ch) => ch.deleteExchange(fx.names.exchange));
    // NOT_FOUND closes the only pooled channel: nothing is confirmed.
    expect(await bus.publish(taskMessages("bc", 1, 1))).toEqual([]);
    // A fresh channel (and the exchange declared again) take the next batch.
    expect(await bus.publish(taskMessages("bc", 2, 2))).toEqual(["o-bc-2", "o-bc-3"]);

    const seen: string[] = [];
    const consumer = await bus.consume(async (d) => void seen.push(d.body.taskId), { prefetch: 5 });
    await waitFor("3 deliveries", () => seen.length === 3);
    await consumer.stop();
    expect(seen.sort()).toEqual(["bc-0", "bc-2", "bc-3"]);
  });

  test("a message no queue takes (queue deleted) is not confirmed, and the queue comes back", async () => {
    const fx = await useFixture(rabbitFixture(), "unroutable");
    const bus = await fx.open();
    await withRabbitChannel((ch) => ch.deleteQueue(fx.names.queue));
    expect(await bus.publish(taskMessages("ur", 2))).toEqual([]);
    expect(await bus.publish(taskMessages("ur", 1, 2))).toEqual(["o-ur-2"]);
    expect(await bus.depth()).toBe(1);
  });

  test("depth() answers after its queue was deleted and declared again, and after the connection was lost", async () => {
    // depth() keeps one channel for its questions: one the broker closed must not answer the next.
    const connectionName = `depth-${randomBytes(4).toString("hex")}`;
    const fx = await useFixture(rabbitFixture({ connectionName }), "depth");
    const bus = await fx.open();
    expect(await bus.depth()).toBe(0);
    await withRabbitChannel((ch) => ch.deleteQueue(fx.names.queue));
    await expect(bus.depth()).rejects.toThrow(/NOT_FOUND/);
    expect(await bus.publish(taskMessages("dq", 1))).toEqual([]); // unroutable: the queue is declared again
    expect(await bus.publish(taskMessages("dq", 2, 1))).toEqual(["o-dq-1", "o-dq-2"]);
    expect(await bus.depth()).toBe(2);
    expect(await forceCloseConnections(connectionName)).toBe(1);
    await waitFor(
      "depth() on the new connection",
      () =>
        bus.depth().then(
          (n) => n === 2,
          () => false,
        ),
      30_000,
    );
    await bus.close();
  });

  test("connect() waits for a broker that comes up a few seconds late (a restart), by default", async () => {
    // Found by the soak: a dispatcher restarted while the broker restarted gave up after ~3 s and exited.
    // A port that starts forwarding to the broker only after 5 s.
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const proxy = createServer((client) => {
      const upstream = connect(5672, "127.0.0.1");
      client.pipe(upstream).pipe(client);
      const close = () => (client.destroy(), upstream.destroy());
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
    });
    const opened = setTimeout(() => proxy.listen(port, "127.0.0.1"), 5_000);
    const queue = uniqueQueueName("late-broker");
    try {
      const bus = await RabbitBus.connect({
        url: RABBIT_URL.replace(":5672", `:${port}`),
        queue,
        logger: silentLogger,
      });
      expect(await bus.depth()).toBe(0);
      await bus.close();
    } finally {
      clearTimeout(opened);
      await new Promise((r) => proxy.close(r));
      await deleteRabbitTopology(queue).catch(() => {});
    }
  }, 60_000);

  test("connect() fails when the broker cannot be reached", async () => {
    await expect(
      RabbitBus.connect({
        url: "amqp://guest:guest@127.0.0.1:1",
        queue: uniqueQueueName("unreachable"),
        initialConnectRetries: 1,
        logger: silentLogger,
      }),
    ).rejects.toThrow();
  });
});
