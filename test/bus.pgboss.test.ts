import postgres from "postgres";
import { describe, expect, test } from "vitest";
import type { Delivery } from "../shared/bus/bus.ts";
import { PgBossBus, type PgBossBusOptions } from "../shared/bus/pgboss.ts";
import { silentLogger } from "../shared/log.ts";
import {
  busContract,
  deferred,
  taskMessages,
  useFixture,
  waitFor,
  type BusFixture,
} from "./support/bus-contract.ts";
import { createTestDatabase } from "./support/db.ts";

type PgBossFixture = Omit<BusFixture, "open"> & {
  open(options?: Partial<PgBossBusOptions>): Promise<PgBossBus>;
  /** Runs SQL against the test's database. */
  sql<T>(use: (sql: postgres.Sql) => Promise<T>): Promise<T>;
};

const QUEUE = "dwop_tasks";

/** A fresh database per test, so pg-boss installs its schema from scratch there. */
async function pgBossFixture(label: string): Promise<PgBossFixture> {
  const db = await createTestDatabase(`bus_${label}`);
  const sql = async <T>(use: (sql: postgres.Sql) => Promise<T>): Promise<T> => {
    const conn = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      return await use(conn);
    } finally {
      await conn.end();
    }
  };
  const count = (query: (sql: postgres.Sql) => Promise<Array<{ n: number }>>) =>
    sql(async (s) => (await query(s))[0]?.n ?? NaN);
  return {
    sql,
    open: (options: Partial<PgBossBusOptions> = {}) =>
      PgBossBus.connect({ connectionString: db.url, queue: QUEUE, logger: silentLogger, ...options }),
    async publishUnparseable() {
      await sql(
        (s) => s`insert into pgboss.job (name, data) values (${QUEUE}, ${s.json("not a task message")})`,
      );
    },
    deadLetterDepth: () =>
      count(
        (s) =>
          s`select count(*)::int as n from pgboss.job where name = ${`${QUEUE}.dead`} and state = 'created'`,
      ),
    unsettled: () =>
      count(
        (s) => s`select count(*)::int as n from pgboss.job where name = ${QUEUE} and state < 'completed'`,
      ),
    cleanup: () => db.drop(),
  };
}

busContract("pg-boss", pgBossFixture);

describe("PgBossBus", () => {
  test("a job whose consumer died mid-handler is delivered again once it expires", async () => {
    const fx = await useFixture(pgBossFixture, "expiry");
    const dying = await fx.open();
    await dying.publish(taskMessages("exp", 1));
    const stuck = deferred();
    let started = 0;
    await dying.consume(
      async () => {
        started++;
        await stuck.promise;
      },
      { prefetch: 1 },
    );
    await waitFor("the first delivery", () => started === 1);
    await dying.close(); // the process is gone; its handler never settles the job

    const survivor = await fx.open();
    const seen: Delivery[] = [];
    await survivor.consume(async (d) => void seen.push(d), { prefetch: 1 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).toHaveLength(0); // still held by the dead consumer

    // Move the fetch an hour back instead of waiting for the expiry, then run pg-boss's expiry once.
    await fx.sql(
      (s) => s`update pgboss.job set started_on = now() - interval '1 hour' where name = ${QUEUE}`,
    );
    await survivor.reclaimExpired();
    await waitFor("the redelivery", () => seen.length === 1);
    expect(seen[0]).toEqual({ body: { taskId: "exp-0", attempt: 1 }, redelivered: true });
    stuck.resolve();
  });

  test("publishers wake consumers of another bus at once (NOTIFY), not at the next poll", async () => {
    const fx = await useFixture(pgBossFixture, "notify");
    const consumerSide = await fx.open({ pollIntervalMs: 60_000 });
    const publisherSide = await fx.open({ pollIntervalMs: 60_000 });
    const seen: string[] = [];
    await consumerSide.consume(async (d) => void seen.push(d.body.taskId), { prefetch: 2 });
    await new Promise((resolve) => setTimeout(resolve, 100)); // the initial fetch found nothing
    await publisherSide.publish(taskMessages("wake", 1));
    await waitFor("the delivery", () => seen.length === 1, 5_000);
  });

  test("publish returns no ids when the insert fails", async () => {
    const fx = await useFixture(pgBossFixture, "insert_fails");
    const bus = await fx.open();
    await fx.sql((s) =>
      s.unsafe(`alter table pgboss.job add constraint no_inserts check (name <> '${QUEUE}')`),
    );
    expect(await bus.publish(taskMessages("fail", 2))).toEqual([]);
    await fx.sql((s) => s`alter table pgboss.job drop constraint no_inserts`);
    expect(await bus.publish(taskMessages("fail", 1, 2))).toEqual(["o-fail-2"]);
  });

  test("processes that make the same queue at once all start (pg-boss's createQueue races)", async () => {
    const db = await createTestDatabase("bus_race");
    const buses = Array.from(
      { length: 6 },
      () => new PgBossBus({ connectionString: db.url, queue: QUEUE, logger: silentLogger }),
    );
    try {
      // What a claimer and a dispatcher starting together do; without the retry one of them failed
      // with a deadlock (40P01) in createQueue.
      await Promise.all(buses.map((bus) => bus.ready()));
      expect(await buses[0]!.publish(taskMessages("race", 1))).toEqual(["o-race-0"]);
    } finally {
      await Promise.all(buses.map((bus) => bus.close()));
    }
    await db.drop();
  });

  test("a bus that will consume is LISTENing once connected; one that only publishes opens no such connection", async () => {
    const fx = await useFixture(pgBossFixture, "consumes");
    const listeners = () =>
      fx.sql(
        (s) => s`select count(*)::int as n from pg_stat_activity
          where datname = current_database() and application_name = 'dwop-bus-consumer'
            and query ilike 'listen%'`,
      );
    const publisher = await fx.open();
    expect(await listeners()).toEqual([{ n: 0 }]);
    const consumer = await fx.open({ consumes: true });
    expect(await listeners()).toEqual([{ n: 1 }]);
    // Its first consume() uses that connection rather than opening another.
    const seen: string[] = [];
    await consumer.consume(async (d) => void seen.push(d.body.taskId), { prefetch: 1 });
    await publisher.publish(taskMessages("woken", 1));
    await waitFor("the delivery", () => seen.length === 1);
    expect(await listeners()).toEqual([{ n: 1 }]);
  });

  test("a bus made with `new` publishes and consumes without waiting for ready()", async () => {
    const db = await createTestDatabase("bus_lazy");
    const bus = new PgBossBus({ connectionString: db.url, queue: QUEUE, logger: silentLogger });
    try {
      expect(await bus.publish(taskMessages("lazy", 2))).toEqual(["o-lazy-0", "o-lazy-1"]);
      const seen: string[] = [];
      const consumer = await bus.consume(async (d) => void seen.push(d.body.taskId), { prefetch: 2 });
      await waitFor("2 deliveries", () => seen.length === 2);
      await consumer.stop();
    } finally {
      await bus.close();
    }
    await db.drop();
  });
});
