import { afterEach, describe, expect, it } from "vitest";
import { createApp } from "../functions/app.ts";
import { DatabaseWatch, readStall } from "../functions/stall.ts";
import { connectDb } from "../shared/db/connect.ts";
import { silentLogger } from "../shared/log.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

// dwop.system_stall over real rows, time moved by passing "now" (the rows carry the database's now()).

let m: MigratedDatabase | null = null;
afterEach(async (ctx) => {
  await m?.close(ctx.task.result?.state === "pass");
  m = null;
});

const SETTINGS = { afterSeconds: 10, aliveSeconds: 30 };
/** One value of one row. */
async function one<T>(db: MigratedDatabase, sql: string): Promise<T> {
  const rows = await db.db.unsafe<{ v: T }[]>(sql);
  return rows[0]!.v;
}
const later = (seconds: number) => new Date(Date.now() + seconds * 1000);

describe("dwop.system_stall", () => {
  it("says publishing once a due task stays unpublished, dated from when it became due, until it is published", async () => {
    m = await migratedDatabase("stall_publishing");
    await m.store.submitWorkflow(submission([task("a"), task("b")]));
    const due = await one<Date>(m, "select min(available_at) as v from dwop.outbox");

    expect(await readStall(m.db, SETTINGS, later(2))).toBeNull(); // a few seconds: not yet a stall
    const stall = await readStall(m.db, SETTINGS, later(15));
    expect(stall).toEqual({
      what: "publishing",
      since: due.toISOString(),
      message: "2 tasks not published to the queue: is the broker down, or no claimer running?",
    });

    // The claimer publishes: the stall is over (a live dispatcher, so nothing is waiting on dispatch).
    const claimed = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished(
      "c1",
      claimed.map((c) => c.id),
    );
    await m.store.heartbeat("d1", "local");
    expect(await readStall(m.db, SETTINGS, later(15))).toBeNull();
  });

  it("is no stall while a backlog drains: each publish moves it on", async () => {
    m = await migratedDatabase("stall_backlog");
    await m.store.submitWorkflow(submission([task("a"), task("b"), task("c")]));
    await m.store.heartbeat("d1", "local");
    // One of three published now; the rest wait their turn.
    const [first] = await m.store.claimOutbox("c1", 1, 30);
    await m.store.markPublished("c1", [first!.id]);
    expect(await readStall(m.db, SETTINGS, later(5))).toBeNull();
    // Nothing published for longer than the threshold: a stall again, from the last publish.
    const at = await one<Date>(m, "select max(published_at) as v from dwop.outbox");
    const stall = await readStall(m.db, SETTINGS, later(20));
    expect(stall).toMatchObject({ what: "publishing", since: at.toISOString() });
  });

  it("is no publishing stall while a claimer holds rows back because DWOP_BUS_BACKLOG tasks wait in the bus", async () => {
    m = await migratedDatabase("stall_bus_backlog");
    await m.store.submitWorkflow(submission([task("a"), task("b"), task("c")]));
    await m.store.heartbeat("d1", "local");
    const claimed = await m.store.claimOutbox("c1", 2, 30);
    await m.store.markPublished(
      "c1",
      claimed.map((c) => c.id),
    );
    // Two published tasks wait for a dispatcher: a backlog of 2 is full, so c is held back, rightly.
    expect(await readStall(m.db, { ...SETTINGS, busBacklog: 2 }, later(20))).toBeNull();
    // With room for 3 in the bus, c should have been published: the claimer stalled.
    expect(await readStall(m.db, { ...SETTINGS, busBacklog: 3 }, later(20))).toMatchObject({
      what: "publishing",
    });
  });

  it("says dispatching when published tasks get no run and no dispatcher is alive, and not while one is", async () => {
    m = await migratedDatabase("stall_dispatching");
    await m.store.submitWorkflow(submission([task("a")]));
    const claimed = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished(
      "c1",
      claimed.map((c) => c.id),
    );
    const at = await one<Date>(m, "select max(published_at) as v from dwop.outbox");

    expect(await readStall(m.db, SETTINGS, later(15))).toEqual({
      what: "dispatching",
      since: at.toISOString(),
      message: "1 task published but not picked up: no dispatcher is running",
    });
    // A live dispatcher with every slot busy is a backlog, not a stall.
    await m.store.heartbeat("d1", "local");
    expect(await readStall(m.db, SETTINGS, later(15))).toBeNull();
    // Its heartbeat goes stale: a stall again, from its last sign of life at the latest.
    const stall = await readStall(m.db, SETTINGS, later(60));
    expect(stall?.what).toBe("dispatching");
  });
});

describe("GET /readyz", () => {
  it("answers stall null while tasks move, the stall while one lasts", async () => {
    m = await migratedDatabase("stall_readyz");
    const app = createApp({ db: m.db, settings: { stall: { afterSeconds: 1, aliveSeconds: 30 } } });
    expect(await (await app.request("/readyz")).json()).toEqual({ status: "ready", stall: null });
    await m.store.submitWorkflow(submission([task("a")]));
    await m.db`update dwop.outbox set available_at = now() - interval '5 seconds'`;
    const res = await app.request("/readyz");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ready", stall: { what: "publishing" } });
  });

  it("answers 503 with a database stall, dated from the first failed check, when the database is unreachable", async () => {
    m = await migratedDatabase("stall_database");
    // A pool on a port nothing listens on: every query fails as a refused connection.
    const dead = connectDb("postgres://postgres@127.0.0.1:1/none", { max: 1, applicationName: "test:dead" });
    let now = Date.parse("2026-12-04T12:03:04Z");
    const watch = new DatabaseWatch(() => now);
    const app = createApp({ db: dead, databaseWatch: watch, logger: silentLogger });
    const first = await app.request("/readyz");
    expect(first.status).toBe(503);
    expect(await first.json()).toMatchObject({
      error: { code: "unavailable" },
      stall: {
        what: "database",
        since: "2026-12-04T12:03:04.000Z",
        message: expect.stringContaining("ECONNREFUSED"),
      },
    });
    now += 5000;
    const second = (await (await app.request("/readyz")).json()) as { stall: { since: string } };
    expect(second.stall.since).toBe("2026-12-04T12:03:04.000Z");
    await dead.end({ timeout: 0 });
  });
});
