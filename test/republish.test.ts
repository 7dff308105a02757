import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Claimer } from "../cron/claimer.ts";
import { ClusterStore } from "../dispatcher/cluster-store.ts";
import { Dispatcher } from "../dispatcher/dispatcher.ts";
import { LocalExecutor } from "../shared/executors/local.ts";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import type { Logger } from "../shared/log.ts";
import type { TaskMessage } from "../shared/model.ts";
import { startEngine, type BusKind, type Engine } from "./support/engine.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";
import { deleteRabbitTopology, withRabbitChannel } from "./support/rabbit.ts";
import { until } from "./support/until.ts";

const AFTER = 60;

describe("republish_stalled_tasks", () => {
  let m: MigratedDatabase;
  let t0: Date;
  const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

  afterEach(async (ctx) => {
    await m.close(ctx.task.result?.state === "pass");
  });

  async function setUp(label: string): Promise<void> {
    m = await migratedDatabase(label);
    const [row] = await m.db<{ now: Date }[]>`select now() as now`;
    t0 = row!.now;
  }

  /** Claims every row due at `seconds` and marks it published then; returns the messages. */
  async function publishAll(seconds: number): Promise<TaskMessage[]> {
    const rows = await m.db<{ id: string; payload: TaskMessage }[]>`
      select id, payload from dwop.claim_outbox_events('c', 1000, 30, ${at(seconds)})`;
    await m.db`select dwop.mark_outbox_published('c', ${rows.map((r) => r.id)}::bigint[], ${at(seconds)})`;
    return rows.map((r) => r.payload);
  }

  async function republish(seconds: number, waiting: number | null, limit = 100): Promise<number> {
    const [row] = await m.db<{ n: number }[]>`
      select dwop.republish_stalled_tasks(${AFTER}, ${waiting}, ${limit}, ${at(seconds)}) as n`;
    return row!.n;
  }

  /** Submits root tasks at t0; returns the workflow's id. */
  async function submitTasks(names: string[], retries = 0, backoffMs = 0): Promise<string> {
    const s = submission(
      names.map((name) => task(name, [], { retries })),
      { retryBackoffMs: backoffMs, now: t0 },
    );
    await m.store.submitWorkflow(s);
    return s.id;
  }

  it("republishes a published task that has not started once it waited past the threshold, doubling the wait each time", async () => {
    await setUp("republish spacing");
    const workflowId = await submitTasks(["a"]);
    expect(await republish(AFTER + 1, 0)).toBe(0); // not published yet: the claimer's business
    await publishAll(0);
    expect(await republish(AFTER - 1, 0)).toBe(0);
    expect(await republish(AFTER + 1, 0)).toBe(1);
    expect(await republish(AFTER + 2, 0)).toBe(0); // its new row is not published yet

    const [again] = await publishAll(AFTER + 2);
    expect(again).toMatchObject({ attempt: 1 });
    expect(await republish(AFTER + 2 + 2 * AFTER - 1, 0)).toBe(0);
    expect(await republish(AFTER + 2 + 2 * AFTER + 1, 0)).toBe(1);

    const events = await m.db<{ status: string; attempt: number; data: unknown }[]>`
      select status, attempt, data from dwop.events
      where workflow_id = ${workflowId} and kind = 'task' order by id`;
    expect(events).toEqual([
      { status: "queued", attempt: 1, data: { republished: true } },
      { status: "queued", attempt: 1, data: { republished: true } },
    ]);
  });

  it("leaves alone a task with a run, a task being started right now, and a retry in its backoff", async () => {
    await setUp("republish not stalled");
    await submitTasks(["started", "locked", "retried"], 1, 300_000);
    const messages = await publishAll(0);
    const byName = async (name: string) => {
      const [row] = await m.db<{ id: string }[]>`select id::text from dwop.tasks where name = ${name}`;
      return messages.find((msg) => msg.taskId === row!.id)!;
    };
    await m.store.startRun(await byName("started"), "d", "local");
    const retried = await m.store.startRun(await byName("retried"), "d", "local");
    if (retried.kind !== "created") throw new Error("expected a run");
    // Attempt 1 fails at +10 s: attempt 2 waits 300 s for its backoff, unpublished.
    await m.db`select dwop.increase_attempt(${retried.assignment.runId}, 'boom', 'exit_code', 1, null, false,
      ${at(10)})`;

    const locker = await m.db.reserve();
    try {
      await locker`begin`;
      await locker`select 1 from dwop.tasks where name = 'locked' for no key update`;
      expect(await republish(AFTER + 1, 0)).toBe(0);
      await locker`commit`;
    } finally {
      locker.release();
    }
    expect(await republish(AFTER + 1, 0)).toBe(1); // "locked", no longer locked

    expect(await republish(250, 0)).toBe(0); // the retry is still in its backoff
    // Published at +311 with "locked"'s second message, which must now wait twice as long.
    expect(await publishAll(311)).toContainEqual({ taskId: retried.assignment.taskId, attempt: 2 });
    expect(await republish(311 + AFTER - 1, 0)).toBe(0);
    expect(await republish(311 + AFTER + 1, 0)).toBe(1);
  });

  it("during a backlog republishes only as many tasks as outnumber the waiting messages, oldest first", async () => {
    await setUp("republish backlog");
    await submitTasks(["a", "b", "c", "d", "e"]);
    await publishAll(0);
    expect(await republish(AFTER + 1, null)).toBe(0); // the bus could not say
    expect(await republish(AFTER + 1, 5)).toBe(0);
    expect(await republish(AFTER + 1, 50)).toBe(0);
    expect(await republish(AFTER + 1, 3)).toBe(2);
    expect(await republish(AFTER + 2, 3)).toBe(0); // those 2 are spoken for; 3 left, 3 waiting
    expect(await republish(AFTER + 2, 0, 2)).toBe(2); // a pass's limit
    const rows = await m.db<{ name: string; n: number }[]>`
      select t.name, count(*)::int as n from dwop.outbox o
      join dwop.tasks t on t.id = (o.payload->>'taskId')::bigint group by t.name order by t.name`;
    expect(rows).toEqual([
      { name: "a", n: 2 },
      { name: "b", n: 2 },
      { name: "c", n: 2 },
      { name: "d", n: 2 },
      { name: "e", n: 1 },
    ]);
  });

  it("runs one pass at a time: a second caller meanwhile republishes nothing", async () => {
    await setUp("republish one pass");
    await submitTasks(["a"]);
    await publishAll(0);
    const other = await m.db.reserve();
    try {
      await other`begin`;
      await other`select pg_advisory_xact_lock(hashtext('dwop.republish_stalled_tasks'))`;
      expect(await republish(AFTER + 1, 0)).toBe(0);
      await other`rollback`;
    } finally {
      other.release();
    }
    expect(await republish(AFTER + 1, 0)).toBe(1);
  });

  it("gives a cluster dispatcher one run for the original and the republished message", async () => {
    await setUp("republish cluster duplicate");
    await submitTasks(["a"]);
    const [original] = await publishAll(0);
    expect(await republish(AFTER + 1, 0)).toBe(1);
    const [republished] = await publishAll(AFTER + 1);
    expect(republished).toEqual(original);
    const cluster = new ClusterStore(m.db);
    const first = await cluster.startClusterRun(republished!, "d1", "kubernetes", 10);
    const late = await cluster.startClusterRun(original!, "d2", "kubernetes", 10);
    expect(first.kind).toBe("created");
    expect(late).toMatchObject({ kind: "duplicate", status: "starting" });
    if (first.kind === "created" && late.kind === "duplicate") {
      expect(late.assignment.runId).toBe(first.assignment.runId);
    }
    const [runs] = await m.db<{ n: number }[]>`select count(*)::int as n from dwop.runs`;
    expect(runs!.n).toBe(1);
  });
});

describe("a vanished message, end to end", () => {
  let engine: Engine | null = null;
  let rabbitQueue: string | null = null;
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async (ctx) => {
    const passed = ctx.task.result?.state === "pass";
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await engine?.stop(passed);
    if (passed && rabbitQueue) await deleteRabbitTopology(rabbitQueue);
    engine = null;
    rabbitQueue = null;
  });

  async function start(label: string, bus: BusKind): Promise<Engine> {
    engine = await startEngine(label, { bus, dispatchers: 0, claimers: 0 });
    if (bus === "rabbit") rabbitQueue = engine.queue;
    return engine;
  }

  /** A claimer that republishes after AFTER seconds (looking every `everyMs`). */
  async function startClaimer(e: Engine, everyMs = 60_000): Promise<Claimer> {
    const claimer = new Claimer(e.m.store, await e.newBus(), {
      id: "claimer",
      batchSize: 100,
      leaseSeconds: 30,
      pollMs: 100,
      republishAfterSeconds: AFTER,
      republishEveryMs: everyMs,
    });
    await claimer.start();
    cleanups.push(() => claimer.stop());
    return claimer;
  }

  async function startDispatcher(e: Engine, id: string, logger?: Logger): Promise<Dispatcher> {
    const executor = new LocalExecutor({
      python: await resolvePython(),
      workerScript: WORKER_SCRIPT,
      workRoot: join(e.storageRoot, `runs-${id}`),
    });
    const dispatcher = new Dispatcher(e.m.store, await e.newBus(), executor, e.storage, {
      id,
      concurrency: 2,
      heartbeatSeconds: 1,
      lostAfterSeconds: 10,
      shutdownGraceSeconds: 5,
      signedUrlTtlSeconds: 300,
      logger,
    });
    await dispatcher.start();
    cleanups.push(
      () => dispatcher.stop(),
      () => executor.close(),
    );
    return dispatcher;
  }

  /** Moves every queueing and publishing of this engine `seconds` into the past. */
  async function age(e: Engine, seconds: number): Promise<void> {
    const by = `${seconds} seconds`;
    await e.m.db`update dwop.tasks set queued_at = queued_at - ${by}::interval where queued_at is not null`;
    await e.m.db`update dwop.outbox set published_at = published_at - ${by}::interval
      where published_at is not null`;
  }

  /** A claimer and a bus for e, and a workflow of source whose n messages then wait on the bus. */
  async function queued(e: Engine, source: string, n = 1) {
    const claimer = await startClaimer(e);
    const bus = await e.newBus();
    const id = await e.submit(source);
    await until(async () => (await bus.depth()) === n);
    return { claimer, bus, id };
  }

  async function runs(e: Engine, workflowId: string) {
    return e.m.db<{ name: string; attempt: number; status: string }[]>`
      select t.name, r.attempt, r.status from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where r.workflow_id = ${workflowId} order by t.name, r.attempt`;
  }

  async function outboxRows(e: Engine): Promise<number> {
    const [row] = await e.m.db<{ n: number }[]>`select count(*)::int as n from dwop.outbox`;
    return row!.n;
  }

  it("RabbitMQ: a message a rogue consumer took and acknowledged is republished, and the task runs once", async () => {
    const e = await start("republish rabbit rogue", "rabbit");
    const { claimer, bus, id } = await queued(e, "fun a():\n    print('a')\n");

    const stolen = await withRabbitChannel(async (channel) => {
      const message = await channel.get(e.queue, { noAck: false });
      if (!message) throw new Error("nothing to steal");
      channel.ack(message);
      await channel.close(); // closing only the connection would drop the ack: the message comes back
      return JSON.parse(message.content.toString()) as TaskMessage;
    });
    expect(stolen.attempt).toBe(1);
    expect(await bus.depth()).toBe(0); // and nothing holds it unacknowledged

    expect(await claimer.republishOnce()).toBe(0); // published just now: not yet presumed lost
    await age(e, AFTER + 1);
    expect(await claimer.republishOnce()).toBe(1);
    await until(async () => (await bus.depth()) === 1);
    await startDispatcher(e, "d1");
    expect((await e.waitFor(id)).status).toBe("succeeded");
    expect(await e.output(id, "a")).toBe("a\n");
    expect(await runs(e, id)).toEqual([{ name: "a", attempt: 1, status: "succeeded" }]);
  });

  it("pg-boss: a job a rogue consumer completed is republished by the claimer's own loop, and the task runs once", async () => {
    const e = await start("republish pgboss rogue", "pgboss");
    await startClaimer(e, 100);
    const id = await e.submit("fun a():\n    print('a')\n");

    const rogueBus = await e.newBus();
    const taken: TaskMessage[] = [];
    const rogue = await rogueBus.consume(
      async (delivery) => {
        taken.push(delivery.body);
      },
      { prefetch: 10 },
    );
    await until(async () => taken.length === 1);
    await rogue.stop();
    expect(await rogueBus.depth()).toBe(0);

    await age(e, AFTER + 1);
    await until(async () => (await outboxRows(e)) === 2); // the loop republished it
    await startDispatcher(e, "d1");
    expect((await e.waitFor(id)).status).toBe("succeeded");
    expect(await runs(e, id)).toEqual([{ name: "a", attempt: 1, status: "succeeded" }]);
  });

  it("the original, delivered late after the republish, finds the run recorded and starts nothing", async () => {
    const e = await start("republish late original", "rabbit");
    const { claimer, bus, id } = await queued(e, "fun a():\n    print('a')\n");

    const duplicates: object[] = [];
    const logger: Logger = {
      debug: (details, message) => {
        if (message === "nothing to run") duplicates.push(details);
      },
      info: () => {},
      warn: () => {},
      error: () => {},
      child: () => logger,
    };
    await withRabbitChannel(async (channel) => {
      // Held unacknowledged (a slow or stuck consumer): the broker does not count it as waiting.
      const held = await channel.get(e.queue, { noAck: false });
      if (!held) throw new Error("nothing to hold");
      expect(await bus.depth()).toBe(0);
      await age(e, AFTER + 1);
      expect(await claimer.republishOnce()).toBe(1);
      const dispatcher = await startDispatcher(e, "d1", logger);
      expect((await e.waitFor(id)).status).toBe("succeeded");
      expect(duplicates).toEqual([]);

      channel.nack(held, false, true); // back to the queue: the original arrives now
      await until(async () => duplicates.length === 1);
      expect(duplicates[0]).toMatchObject({ attempt: 1, result: "duplicate" });
      await dispatcher.stop(); // waits for the delivery in hand; an unsettled one would go back
      expect(await bus.depth()).toBe(0);
    });
    expect(await runs(e, id)).toEqual([{ name: "a", attempt: 1, status: "succeeded" }]);
    expect(await outboxRows(e)).toBe(2);
  });

  it("a backlog waiting in the broker is not republished; a message taken from it is, once", async () => {
    const e = await start("republish backlog", "rabbit");
    const source = ["a", "b", "c"].map((name) => `fun ${name}():\n    print('${name}')\n`).join("\n");
    const { claimer, bus, id } = await queued(e, source, 3);
    await age(e, AFTER + 1);
    // Nobody consumes: all three still wait in the queue, however long ago they were published.
    expect(await claimer.republishOnce()).toBe(0);
    expect(await bus.depth()).toBe(3);

    // The head of the queue (a's message) vanishes: one task now outnumbers the waiting messages.
    const stolen = await withRabbitChannel(async (channel) => {
      const message = await channel.get(e.queue, { noAck: false });
      if (!message) throw new Error("nothing to steal");
      channel.ack(message);
      await channel.close(); // closing only the connection would drop the ack: the message comes back
      return JSON.parse(message.content.toString()) as TaskMessage;
    });
    const [a] = await e.m.db<{ id: string }[]>`select id::text from dwop.tasks where name = 'a'`;
    expect(stolen).toEqual({ taskId: a!.id, attempt: 1 });
    expect(await claimer.republishOnce()).toBe(1);
    expect(await claimer.republishOnce()).toBe(0);
    await until(async () => (await bus.depth()) === 3);
    const [republished] = await e.m.db<{ name: string }[]>`
      select t.name from dwop.outbox o join dwop.tasks t on t.id = (o.payload->>'taskId')::bigint
      order by o.id desc limit 1`;
    expect(republished).toEqual({ name: "a" });

    await startDispatcher(e, "d1");
    expect((await e.waitFor(id)).status).toBe("succeeded");
    expect(await runs(e, id)).toEqual([
      { name: "a", attempt: 1, status: "succeeded" },
      { name: "b", attempt: 1, status: "succeeded" },
      { name: "c", attempt: 1, status: "succeeded" },
    ]);
  });

  it("a claimer started under the id of one that died publishes at once the rows that one had claimed", async () => {
    const e = await start("claimer restart releases", "rabbit");
    const bus = await e.newBus();
    await e.submit("fun a():\n    print('a')\n");
    // The dead claimer's claim, an hour's lease, never published: no other claimer may take it.
    const [claimed] = await e.m.db<
      { id: string }[]
    >`select id from dwop.claim_outbox_events('claimer', 10, 3600)`;
    expect(claimed).toBeDefined();
    expect(await e.m.db`select id from dwop.claim_outbox_events('other', 10, 30)`).toHaveLength(0);

    await startClaimer(e);
    // The message reaches the bus before its row is marked published (after the broker's confirm).
    const outboxRow = async () =>
      (
        await e.m.db<{ published: boolean; claims: number }[]>`
          select published_at is not null as published, claim_count as claims from dwop.outbox
          where id = ${claimed!.id}`
      )[0];
    await until(async () => (await outboxRow())?.published === true);
    expect(await outboxRow()).toEqual({ published: true, claims: 2 });
    expect(await bus.depth()).toBe(1);
  });
});
