import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RetentionSweeper } from "../cron/retention.ts";
import { ScheduleFirer, type Fired } from "../cron/schedules.ts";
import { connectDb, type Db } from "../shared/db/connect.ts";
import { Schedule } from "../functions/schemas.ts";
import { ScheduleStore, type FireDecision } from "../shared/db/schedules.ts";
import { PoolStore } from "../shared/db/pool-store.ts";
import { Store } from "../shared/db/store.ts";
import { apiHarness, driveToEnd, type ApiHarness } from "./support/api.ts";
import { startEngine, type Engine } from "./support/engine.ts";
import { until } from "./support/until.ts";

/**
 * Firing schedules (cron/schedules.ts) against a real database and storage, with schedules made through
 * the API: each fire time starts one workflow however many claimers race and whatever dies half-way;
 * overlap and catchup as documented. Time moves by the `now` each pass is given; nothing sleeps.
 */

/** A Thursday, 00:00:30 UTC: `*\/5 * * * *` next fires at 00:05. */
const T0 = Date.parse("2026-01-01T00:00:30Z");
const at = (iso: string) => new Date(`2026-01-01T${iso}Z`);
const DAY = 86_400_000;
const WORKFLOW = 'fun tick():\n    print("tick")\n';

let h: ApiHarness;
let alice: Record<string, string>;
const pools: Db[] = [];

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
  h.clock.now = T0;
  alice = await h.as("alice");
});
afterEach(async (ctx) => {
  await Promise.all(pools.splice(0).map((p) => p.end({ timeout: 5 })));
  await h.close(ctx.task.result?.state === "pass");
});

async function schedule(name: string, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await h.postJson(
    "/schedules",
    { name, cron: "*/5 * * * *", workflow: WORKFLOW, ...extra },
    alice,
  );
  expect(res.status, await res.clone().text()).toBe(201);
}

/** A claimer's firer, on a pool of its own as another process would have. */
function firer(id: string, options: { leaseSeconds?: number } = {}): ScheduleFirer {
  const db = connectDb(h.m.url, { max: 4, applicationName: `test:${id}` });
  pools.push(db);
  return new ScheduleFirer(new ScheduleStore(db), new Store(db), h.storage, {
    claimerId: id,
    leaseSeconds: options.leaseSeconds ?? 60,
    batchSize: 10,
    retryBackoffMs: 0,
  });
}

/** A firer whose limits refuse any workflow file (10 bytes at most). */
function limitedFirer(): ScheduleFirer {
  return new ScheduleFirer(new ScheduleStore(h.m.db), h.m.store, h.storage, {
    claimerId: "limited",
    leaseSeconds: 60,
    batchSize: 10,
    retryBackoffMs: 0,
    limits: { maxTasks: 10, maxWorkflowBytes: 10, maxInputs: 10 },
  });
}

/** The workflows a schedule started, oldest first. */
async function runs(name: string): Promise<{ id: string; status: string; schedule: string }[]> {
  return h.m.db`select id, status, schedule from dwop.workflows where owner = 'alice' and schedule = ${name}
    order by created_at, id`;
}

async function nextFireAt(name: string): Promise<Date | null> {
  const [row] = await h.m.db<
    { at: Date | null }[]
  >`select next_fire_at as at from dwop.schedules where name = ${name}`;
  return row!.at;
}

const started = (fired: Fired[]) => fired.filter((f) => f.result === "started");

/** A claimer's decision to start the fire at `at`, its schedule's next time, passing nothing over. */
const startAt = (at: Date): FireDecision => ({
  from: at,
  fire: { at, outcome: "started", workflowId: crypto.randomUUID(), reason: null },
  missed: null,
});

/** What GET /schedules/:name says of its last fires. */
async function lastFires(name: string): Promise<Record<string, unknown>[]> {
  const res = await h.app.request(`/schedules/${name}`, { headers: alice });
  expect(res.status).toBe(200);
  return Schedule.parse(await res.json()).lastFires;
}

describe("firing schedules", () => {
  it("starts one workflow per fire time, marked with its schedule and listed by GET /workflows?schedule=", async () => {
    await schedule("nightly", {
      inputs: { greeting: "hi" },
      workflow: "fun greet(g:inputs.greeting):\n    print(open('g').read())\n",
    });
    const a = firer("a");
    expect(await a.runOnce(at("00:04:59"))).toEqual([]); // not due yet
    const fired = await a.runOnce(at("00:05:00"));
    expect(fired).toMatchObject([{ schedule: "nightly", fireAt: at("00:05:00"), result: "started" }]);
    expect(await a.runOnce(at("00:05:10"))).toEqual([]); // done with 00:05
    expect(await nextFireAt("nightly")).toEqual(at("00:10:00"));

    const [run] = await runs("nightly");
    expect(run?.id).toBe(fired[0]!.workflowId);
    const list = await h.app.request("/workflows?schedule=nightly", { headers: alice });
    const body = (await list.json()) as { workflows: { id: string; schedule: string; name: string }[] };
    expect(body.workflows).toEqual([
      expect.objectContaining({ id: run!.id, schedule: "nightly", name: "nightly" }),
    ]);
    const other = await h.app.request("/workflows?schedule=nightly", { headers: await h.as("bob") });
    expect(((await other.json()) as { workflows: unknown[] }).workflows).toEqual([]);
    const detail = (await (await h.app.request(`/workflows/${run!.id}`, { headers: alice })).json()) as {
      schedule: string;
      inputs: string[];
    };
    expect(detail).toMatchObject({ schedule: "nightly", inputs: ["greeting"] });
  });

  it("fires each time exactly once when claimers race for many schedules and times", async () => {
    const names = ["s1", "s2", "s3", "s4", "s5", "s6"];
    for (const name of names) await schedule(name, { overlap: "allow" });
    // Leases that run out at once: a claimer a second later takes a schedule another still holds, so
    // only the recorded fire (its key and reserved workflow id) keeps the time from firing twice.
    const claimers = ["a", "b", "c"].map((id) => firer(id, { leaseSeconds: 0 }));
    const times = ["00:05:00", "00:10:00", "00:15:00", "00:20:00", "00:25:00"];
    for (const time of times) {
      // Several passes of every claimer at once, a little after the fire time.
      const passes = await Promise.all(
        claimers.flatMap((c) => [c.runOnce(at(time)), c.runOnce(new Date(at(time).getTime() + 1000))]),
      );
      expect(
        started(passes.flat())
          .map((f) => f.schedule)
          .sort(),
      ).toEqual(names);
    }
    for (const name of names) {
      const fires = await h.m.db<{ n: number; workflows: number }[]>`
        select count(*)::int as n, count(distinct workflow_id)::int as workflows from dwop.schedule_fires f
        join dwop.schedules s on s.id = f.schedule_id where s.name = ${name}`;
      expect(fires[0]).toEqual({ n: times.length, workflows: times.length });
      expect(await runs(name)).toHaveLength(times.length);
    }
  });

  it("after downtime, racing claimers record one missed range and fire the latest time once", async () => {
    const names = ["c1", "c2", "c3", "c4"];
    for (const name of names) await schedule(name, { catchup: "latest", overlap: "allow" });
    const claimers = ["a", "b", "c"].map((id) => firer(id, { leaseSeconds: 0 }));
    // Every claimer was down from 00:01 to 00:21:30: 00:05, 00:10, 00:15 and 00:20 are due at once.
    const late = at("00:21:30");
    await Promise.all(claimers.flatMap((c) => [c.runOnce(late), c.runOnce(new Date(late.getTime() + 1000))]));
    for (const name of names) {
      const fires = await lastFires(name);
      expect(fires.map((f) => [f.fireAt, f.outcome, f.missedThrough, f.missedCount])).toEqual([
        [at("00:20:00").toISOString(), "started", null, null],
        [at("00:05:00").toISOString(), "missed", at("00:15:00").toISOString(), 3],
      ]);
      expect((await runs(name)).map((r) => r.id)).toEqual([fires[0]!.workflowId]);
      expect(await nextFireAt(name)).toEqual(at("00:25:00"));
    }
  });

  it("after a claimer dies between recording a fire and submitting it, the next claimer submits that same workflow once", async () => {
    await schedule("hourly");
    // Claimer "dead" claims and records the 00:05 fire, then its process dies.
    const dead = new ScheduleStore(h.m.db);
    const [claimed] = await dead.claimDue("dead", 10, 60, at("00:05:01"));
    const recorded = (await dead.recordFire(claimed!.id, "dead", startAt(claimed!.nextFireAt)))!;
    expect(recorded).toMatchObject({ outcome: "started", workflowExists: false });

    const restarted = firer("restarted");
    expect(await restarted.runOnce(at("00:05:30"))).toEqual([]); // the dead one's lease still holds
    // Its lease runs out long after the grace of catchup `none`: the recorded fire is finished anyway.
    const fired = await restarted.runOnce(at("00:06:02"));
    expect(fired).toMatchObject([
      { fireAt: at("00:05:00"), result: "started", workflowId: recorded.workflowId },
    ]);
    expect((await runs("hourly")).map((r) => r.id)).toEqual([recorded.workflowId]);
    expect(await nextFireAt("hourly")).toEqual(at("00:10:00"));

    // The dead claimer's late advance finds the schedule moved on and changes nothing.
    expect(await dead.advance(claimed!.id, "dead", claimed!.nextFireAt, at("00:10:00"))).toBe(false);
  });

  it("after a claimer dies between submitting and moving on, the next claimer only moves on", async () => {
    await schedule("hourly");
    const first = firer("first");
    const fired = await first.runOnce(at("00:05:00"));
    expect(started(fired)).toHaveLength(1);
    // As if it died before advancing: the schedule is back at 00:05, still claimed by it.
    await h.m.db`update dwop.schedules set next_fire_at = ${at("00:05:00")}, claimed_by = 'first',
      lease_until = ${at("00:06:00")}`;
    const second = firer("second");
    const again = await second.runOnce(at("00:06:01"));
    expect(again).toMatchObject([
      { fireAt: at("00:05:00"), result: "started", workflowId: fired[0]!.workflowId },
    ]);
    expect(await runs("hourly")).toHaveLength(1);
    expect(await nextFireAt("hourly")).toEqual(at("00:10:00"));
  });

  it("overlap skip (default) skips a fire while the last run has not ended, and fires again once it has", async () => {
    await schedule("skipper");
    const a = firer("a");
    expect(started(await a.runOnce(at("00:05:00")))).toHaveLength(1);
    expect(await a.runOnce(at("00:10:00"))).toMatchObject([{ result: "skipped_overlap", workflowId: null }]);
    expect(await runs("skipper")).toHaveLength(1);
    await driveToEnd(h.m);
    expect((await runs("skipper"))[0]!.status).toBe("succeeded");
    expect(started(await a.runOnce(at("00:15:00")))).toHaveLength(1);
    expect(await runs("skipper")).toHaveLength(2);
  });

  it("overlap allow starts a run while the last one is still going", async () => {
    await schedule("allower", { overlap: "allow" });
    const a = firer("a");
    await a.runOnce(at("00:05:00"));
    await a.runOnce(at("00:10:00"));
    expect((await runs("allower")).map((r) => r.status)).toEqual(["queued", "queued"]);
  });

  it("overlap cancel_previous cancels the unfinished run and starts the new one", async () => {
    await schedule("canceller", { overlap: "cancel_previous" });
    const a = firer("a");
    await a.runOnce(at("00:05:00"));
    await a.runOnce(at("00:10:00"));
    expect((await runs("canceller")).map((r) => r.status)).toEqual(["cancelled", "queued"]);
  });

  it("overlap cancel_previous cancels nothing when the new run's submit is refused", async () => {
    await schedule("canceller", { overlap: "cancel_previous" });
    await firer("a").runOnce(at("00:05:00"));
    // The file now exceeds this claimer's limits: the 00:10 fire fails before any transaction.
    const limited = limitedFirer();
    expect(await limited.runOnce(at("00:10:00"))).toMatchObject([{ result: "failed", workflowId: null }]);
    expect((await runs("canceller")).map((r) => r.status)).toEqual(["queued"]);
    expect((await lastFires("canceller")).map((f) => f.outcome)).toEqual(["failed", "started"]);
  });

  it("overlap cancel_previous cancels nothing when the new run's transaction fails", async () => {
    const pools = new PoolStore(h.m.db);
    await pools.set("gpu", 1);
    await schedule("canceller", { overlap: "cancel_previous" });
    const a = firer("a");
    await a.runOnce(at("00:05:00"));
    // Its workflow now names pool gpu, which an operator then deletes: submit_workflow refuses the
    // 00:10 fire inside the transaction that would have cancelled the 00:05 run.
    const patched = await h.app.request("/schedules/canceller", {
      method: "PATCH",
      headers: { ...alice, "content-type": "application/json" },
      body: JSON.stringify({ workflow: `@pool("gpu")\n${WORKFLOW}` }),
    });
    expect(patched.status, await patched.clone().text()).toBe(200);
    expect(await pools.delete("gpu")).toBe("deleted");
    expect(await a.runOnce(at("00:10:00"))).toMatchObject([{ result: "failed", workflowId: null }]);
    expect((await runs("canceller")).map((r) => r.status)).toEqual(["queued"]);
    const [failed] = await lastFires("canceller");
    expect(failed).toMatchObject({ outcome: "failed", reason: expect.stringContaining("pool gpu") });
    expect(await nextFireAt("canceller")).toEqual(at("00:15:00"));
  });

  it("overlap skip records the skipped time and the run that was still going", async () => {
    await schedule("skipper");
    const a = firer("a");
    const [first] = await a.runOnce(at("00:05:00"));
    await a.runOnce(at("00:10:00"));
    expect(await lastFires("skipper")).toEqual([
      expect.objectContaining({
        fireAt: at("00:10:00").toISOString(),
        outcome: "skipped_overlap",
        workflowId: null,
        reason: `overlap skip: workflow ${first!.workflowId} it started had not ended`,
      }),
      expect.objectContaining({ outcome: "started", workflowId: first!.workflowId, reason: null }),
    ]);
  });

  it("catchup none fires a time late by less than a minute, and skips one missed by more", async () => {
    await schedule("none");
    const a = firer("a");
    expect(await a.runOnce(at("00:05:59"))).toMatchObject([{ fireAt: at("00:05:00"), result: "started" }]);
    // Down from 00:06 to 00:21: 00:10, 00:15 and 00:20 were missed.
    expect(await a.runOnce(at("00:21:30"))).toMatchObject([
      {
        fireAt: at("00:10:00"),
        result: "missed",
        missed: { from: at("00:10:00"), through: at("00:20:00"), count: 3 },
      },
    ]);
    expect(await a.runOnce(at("00:21:40"))).toEqual([]);
    expect(await runs("none")).toHaveLength(1);
    expect(await nextFireAt("none")).toEqual(at("00:25:00"));
    // Down again from 00:26 to 00:40:30: 00:30 and 00:35 are missed, 00:40 is late by less than a minute.
    await driveToEnd(h.m);
    expect(await a.runOnce(at("00:25:00"))).toMatchObject([{ result: "started" }]);
    await driveToEnd(h.m);
    expect(await a.runOnce(at("00:40:30"))).toMatchObject([
      {
        fireAt: at("00:40:00"),
        result: "started",
        missed: { from: at("00:30:00"), through: at("00:35:00"), count: 2 },
      },
    ]);
    const fires = await lastFires("none");
    expect(fires.map((f) => [f.fireAt, f.outcome, f.missedThrough, f.missedCount])).toEqual([
      [at("00:40:00").toISOString(), "started", null, null],
      [at("00:30:00").toISOString(), "missed", at("00:35:00").toISOString(), 2],
      [at("00:25:00").toISOString(), "started", null, null],
      [at("00:10:00").toISOString(), "missed", at("00:20:00").toISOString(), 3],
      [at("00:05:00").toISOString(), "started", null, null],
    ]);
    expect(fires[3]!.reason).toBe(
      "not fired within 60 s of its time (no claimer ran); catchup none skips such times",
    );
    expect(await runs("none")).toHaveLength(3);
  });

  it("records a long downtime's missed times in one record, counted up to a cap", async () => {
    await schedule("minutely", { cron: "* * * * *" });
    const a = firer("a");
    // From 00:01 to two days later: 2,880 minutes passed over, and the one of now fires.
    const now = new Date(at("00:01:00").getTime() + 2 * DAY);
    const fired = await a.runOnce(now);
    const through = new Date(now.getTime() - 60_000);
    expect(fired).toMatchObject([
      { result: "started", fireAt: now, missed: { from: at("00:01:00"), through, count: null } },
    ]);
    const [, missed] = await lastFires("minutely");
    expect(missed).toMatchObject({
      outcome: "missed",
      missedThrough: through.toISOString(),
      missedCount: null,
    });
    expect(await runs("minutely")).toHaveLength(1);
  });

  it("a claimer that died after recording a missed range only moves the schedule past it", async () => {
    await schedule("none");
    const dead = new ScheduleStore(h.m.db);
    const [claimed] = await dead.claimDue("dead", 10, 60, at("00:21:30"));
    const decision: FireDecision = {
      from: at("00:05:00"),
      fire: null,
      missed: { through: at("00:20:00"), count: 4, reason: "down" },
    };
    expect(await dead.recordFire(claimed!.id, "dead", decision)).toMatchObject({ outcome: "missed" });
    // A claimer that does not hold the schedule records nothing.
    expect(await dead.recordFire(claimed!.id, "other", startAt(at("00:05:00")))).toBeNull();
    const fired = await firer("b").runOnce(at("00:22:31"));
    expect(fired).toMatchObject([{ fireAt: at("00:05:00"), result: "missed", workflowId: null }]);
    expect(await nextFireAt("none")).toEqual(at("00:25:00"));
    expect((await lastFires("none")).map((f) => f.outcome)).toEqual(["missed"]);
    expect(await runs("none")).toEqual([]);
  });

  it("catchup latest fires the latest missed time once, then goes on from there", async () => {
    await schedule("latest", { catchup: "latest", overlap: "allow" });
    const a = firer("a");
    expect(await a.runOnce(at("00:21:30"))).toMatchObject([
      {
        fireAt: at("00:20:00"),
        result: "started",
        missed: { from: at("00:05:00"), through: at("00:15:00"), count: 3 },
      },
    ]);
    expect(await a.runOnce(at("00:21:40"))).toEqual([]);
    expect(await runs("latest")).toHaveLength(1);
    const [fired, missed] = await lastFires("latest");
    expect(fired).toMatchObject({ outcome: "started", fireAt: at("00:20:00").toISOString() });
    expect(missed).toMatchObject({
      outcome: "missed",
      fireAt: at("00:05:00").toISOString(),
      missedThrough: at("00:15:00").toISOString(),
      missedCount: 3,
      reason: expect.stringContaining("catchup latest fired only the latest missed time"),
    });
    expect(await nextFireAt("latest")).toEqual(at("00:25:00"));
  });

  it("a paused schedule does not fire; resumed, it fires from the next time after the resume", async () => {
    await schedule("pausable");
    const patch = (body: unknown) =>
      h.app.request("/schedules/pausable", {
        method: "PATCH",
        headers: { ...alice, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await patch({ paused: true })).status).toBe(200);
    const a = firer("a");
    expect(await a.runOnce(at("00:05:00"))).toEqual([]);
    expect(await a.runOnce(at("00:20:00"))).toEqual([]);
    h.clock.now = at("00:21:00").getTime();
    const resumed = (await (await patch({ paused: false })).json()) as { nextFireAt: string };
    expect(resumed.nextFireAt).toBe(at("00:25:00").toISOString());
    expect(await a.runOnce(at("00:22:00"))).toEqual([]);
    expect(started(await a.runOnce(at("00:25:00")))).toHaveLength(1);
  });

  it("marks a fire failed, once, when its workflow no longer passes the limits", async () => {
    await schedule("big");
    const limited = limitedFirer();
    expect(await limited.runOnce(at("00:05:00"))).toMatchObject([{ result: "failed", workflowId: null }]);
    const [fire] = await lastFires("big");
    expect(fire).toMatchObject({
      fireAt: at("00:05:00").toISOString(),
      outcome: "failed",
      workflowId: null,
      reason: expect.stringContaining("larger than 10 bytes"),
    });
    expect(await runs("big")).toEqual([]);
    expect(await nextFireAt("big")).toEqual(at("00:10:00"));
  });
});

describe("retention of fire records", () => {
  it("deletes fires older than the setting, never the one a claimer is acting on", async () => {
    await schedule("kept");
    const a = firer("a");
    await a.runOnce(at("00:05:00"));
    // The 00:10 fire recorded by a claimer that died before submitting it: still to be acted on.
    const [claimed] = await new ScheduleStore(h.m.db).claimDue("dead", 10, 60, at("00:10:00"));
    await new ScheduleStore(h.m.db).recordFire(claimed!.id, "dead", startAt(at("00:10:00")));
    const sweeper = new RetentionSweeper(h.m.db, { keepDays: 30 });
    expect((await sweeper.runOnce(new Date(at("00:10:00").getTime() + 29 * DAY))).scheduleFires).toBe(0);
    expect((await sweeper.runOnce(new Date(at("00:10:00").getTime() + 31 * DAY))).scheduleFires).toBe(1);
    const left = await h.m.db<{ fireAt: Date }[]>`select fire_at as "fireAt" from dwop.schedule_fires`;
    expect(left.map((f) => f.fireAt)).toEqual([at("00:10:00")]);
  });
});

describe("schedules in the running engine", () => {
  let engine: Engine;
  afterEach(async (ctx) => {
    await engine?.stop(ctx.task.result?.state === "pass");
  });

  it("two claimers' loops start a due schedule's workflow once, and it runs to the end", async () => {
    engine = await startEngine("schedules engine", { bus: "rabbit", claimers: 2 });
    const schedules = new ScheduleStore(engine.m.db);
    const due = new Date(Date.now() - 1000); // due now, within the grace
    const settings = {
      cron: "0 0 1 1 *", // next after this fire: next New Year
      timezone: "UTC",
      source: WORKFLOW,
      requirements: null,
      inputs: {},
      overlap: "allow" as const,
      catchup: "none" as const,
    };
    expect(await schedules.create("test", "yearly", settings, due, 10)).toBe("created");
    let ids: string[] = [];
    await until(async () => {
      ids = (
        await engine.m.db<{ id: string }[]>`select id from dwop.workflows where schedule = 'yearly'`
      ).map((r) => r.id);
      return ids.length > 0;
    }, 30_000);
    const summary = await engine.waitFor(ids[0]!);
    expect(summary.status).toBe("succeeded");
    expect(await engine.output(ids[0]!, "tick")).toBe("tick\n");
    const fires = await engine.m.db<{ fireAt: Date }[]>`select fire_at as "fireAt" from dwop.schedule_fires`;
    expect(fires.map((f) => f.fireAt)).toEqual([due]);
    const [next] = await engine.m.db<{ at: Date }[]>`select next_fire_at as at from dwop.schedules`;
    expect(next!.at.getTime()).toBeGreaterThan(due.getTime());
  });
});
