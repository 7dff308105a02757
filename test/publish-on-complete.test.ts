// A dispatcher that records a success starts the tasks it made ready itself (complete_runs_and_start):
// one per success, in the completion's transaction, their outbox rows consumed; the rest go to claimers.
import { afterEach, describe, expect, it } from "vitest";
import { Claimer } from "../cron/claimer.ts";
import { PoolStore } from "../shared/db/pool-store.ts";
import type { TaskMessage } from "../shared/model.ts";
import { startEngine, type Engine } from "./support/engine.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

describe("complete_runs_and_start", () => {
  let m: MigratedDatabase;
  afterEach(async (ctx) => {
    await m.close(ctx.task.result?.state === "pass");
  });

  /** Starts (as dispatcher d1) and marks dispatched the attempt a message asks for; returns its run id. */
  async function started(msg: TaskMessage): Promise<string> {
    const result = await m.store.startRun(msg, "d1", "local");
    if (result.kind !== "created") throw new Error(`expected a new run, got ${result.kind}`);
    await m.store.markRunDispatched(result.assignment.runId, "job", true);
    return result.assignment.runId;
  }

  /** The names of the tasks of these runs, sorted. */
  async function taskNames(runIds: string[]): Promise<string[]> {
    const rows = await m.db<{ name: string }[]>`
      select t.name from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where r.id = any(${runIds}::bigint[]) order by t.name`;
    return rows.map((r) => r.name);
  }

  it("records the runs and starts, as the caller, one task each success made ready", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    // a -> c, b -> c (fan-in), a -> d; and x, another workflow's root, left queued in the outbox.
    const s = submission([task("a"), task("b"), task("c", ["a", "b"]), task("d", ["a"])]);
    await m.store.submitWorkflow(s);
    const roots = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished(
      "c1",
      roots.map((r) => r.id),
    );
    await m.store.submitWorkflow(submission([task("x")]));
    const [a, b] = await Promise.all(roots.map((r) => started(r.message)));

    const first = await m.store.completeRunsAndStart([a!], "d1", "local");
    expect(first.completed).toEqual([a]);
    // d became ready and started here; c still waits for b; x is not this call's.
    expect(first.started.map((r) => r.taskName)).toEqual(["d"]);
    expect(await taskNames(first.started.map((r) => r.runId))).toEqual(["d"]);
    const [run] = await m.db<{ status: string; dispatcherId: string; taskStatus: string }[]>`
      select r.status, r.dispatcher_id as "dispatcherId", t.status as "taskStatus"
      from dwop.runs r join dwop.tasks t on t.id = r.task_id where r.id = ${first.started[0]!.runId}`;
    expect(run).toEqual({ status: "starting", dispatcherId: "d1", taskStatus: "dispatched" });

    // Recorded already: nothing is recorded or started again.
    expect(await m.store.completeRunsAndStart([a!], "d1", "local")).toEqual({ completed: [], started: [] });
    const second = await m.store.completeRunsAndStart([b!], "d1", "local");
    expect(second.completed).toEqual([b]);
    expect(second.started.map((r) => r.taskName)).toEqual(["c"]);

    // Their outbox rows were consumed by d1: a claimer finds only x.
    const due = await m.store.claimOutbox("c2", 10, 30);
    expect(due.map((d) => d.message.attempt)).toEqual([1]);
    const [x] = await m.db<{ name: string }[]>`
      select t.name from dwop.tasks t where t.id = ${due[0]!.message.taskId}`;
    expect(x!.name).toBe("x");
    const consumed = await m.db<{ claimedBy: string; published: boolean }[]>`
      select o.claimed_by as "claimedBy", o.published_at is not null as published from dwop.outbox o
      join dwop.tasks t on t.id = (o.payload ->> 'taskId')::bigint where t.name in ('c', 'd')`;
    expect(consumed).toEqual([
      { claimedBy: "d1", published: true },
      { claimedBy: "d1", published: true },
    ]);
  });

  it("starts one task per success and leaves the rest of a fan-out to the claimers", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    await m.store.submitWorkflow(
      submission([task("r"), task("k1", ["r"]), task("k2", ["r"]), task("k3", ["r"])]),
    );
    const [root] = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished("c1", [root!.id]);
    const { started: one } = await m.store.completeRunsAndStart(
      [await started(root!.message)],
      "d1",
      "local",
    );
    expect(one).toHaveLength(1);
    const rest = await m.store.claimOutbox("c2", 10, 30);
    expect(rest).toHaveLength(2);
    expect(new Set([...one.map((r) => r.taskId), ...rest.map((r) => r.message.taskId)]).size).toBe(3);
  });

  it("wakes the claimers only when it leaves them rows to publish", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const heard: string[] = [];
    const listener = await m.db.listen("dwop_outbox", (payload) => heard.push(payload));
    /** What the claimers heard until now: a marker notified after a commit arrives after its notifications. */
    const heardSince = async (): Promise<string[]> => {
      const marker = `marker-${heard.length}`;
      await m.db`select pg_notify('dwop_outbox', ${marker})`;
      await expect.poll(() => heard.includes(marker)).toBe(true);
      return heard.splice(0).filter((p) => p !== marker);
    };
    try {
      await m.store.submitWorkflow(
        submission([task("a"), task("b", ["a"]), task("k1", ["b"]), task("k2", ["b"]), task("k3", ["b"])]),
      );
      expect(await heardSince()).toEqual([""]); // a submit's outbox rows, as ever
      const [root] = await m.store.claimOutbox("c1", 10, 30);
      await m.store.markPublished("c1", [root!.id]);
      // a -> b: b is started here, its row consumed; nothing is left for a claimer.
      const chain = await m.store.completeRunsAndStart([await started(root!.message)], "d1", "local");
      expect(chain.started.map((r) => r.taskName)).toEqual(["b"]);
      expect(await heardSince()).toEqual([]);
      // b -> k1, k2, k3: one is started here, two are the claimers'.
      await m.store.markRunDispatched(chain.started[0]!.runId, "job", true);
      const fanOut = await m.store.completeRunsAndStart([chain.started[0]!.runId], "d1", "local");
      expect(fanOut.started).toHaveLength(1);
      expect(await heardSince()).toEqual([""]);
      expect(await m.store.claimOutbox("c2", 10, 30)).toHaveLength(2);
      // The quiet lasts only for the function: another insert in the same transaction notifies.
      await m.db.begin(async (sql) => {
        await sql`select dwop.complete_runs_and_start(array[]::bigint[], 'd1', 'local')`;
        await sql`insert into dwop.outbox (topic, payload) values ('workflow.callback', '{}')`;
      });
      expect(await heardSince()).toEqual([""]);
    } finally {
      await listener.unlisten();
    }
  });

  it("parks a successor whose pool is full, as a delivered one would be, and still records the success", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    await new PoolStore(m.db).set("none", 0);
    const s = submission([task("a"), task("b", ["a"], { pool: "none" })]);
    await m.store.submitWorkflow(s);
    const [root] = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished("c1", [root!.id]);
    const a = await started(root!.message);
    expect(await m.store.completeRunsAndStart([a], "d1", "local")).toEqual({ completed: [a], started: [] });
    const [b] = await m.db<{ status: string; parked: string }[]>`
      select status, parked from dwop.tasks where name = 'b'`;
    expect(b).toEqual({ status: "queued", parked: "pool" });
  });

  it("leaves a run started here by a dispatcher that then died to be retried as lost", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    await m.store.submitWorkflow(submission([task("a"), task("b", ["a"])]));
    const [root] = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished("c1", [root!.id]);
    await m.store.heartbeat("d1", "local");
    const { started: next } = await m.store.completeRunsAndStart(
      [await started(root!.message)],
      "d1",
      "local",
    );
    expect(next).toHaveLength(1);
    // d1 never launches it and stops beating: its runs are lost once it is silent for the limit.
    await m.db`update dwop.dispatchers set heartbeat_at = now() - interval '1 hour' where id = 'd1'`;
    expect(await m.store.reapLostRuns(10, null)).toBe(1);
    const [b] = await m.db<{ status: string; attempt: number }[]>`
      select status, attempt from dwop.tasks where name = 'b'`;
    expect(b).toEqual({ status: "queued", attempt: 2 });
  });
});

describe("a dispatcher starting what its successes made ready", () => {
  let engine: Engine;
  afterEach(async (ctx) => {
    await engine.stop(ctx.task.result?.state === "pass");
  });

  it("runs a chain to its end with no claimer after the root's publish", async (ctx) => {
    engine = await startEngine(ctx.task.name, { bus: "rabbit", claimers: 0, sandbox: "off" });
    const id = await engine.submit(
      "fun a():\n    print(1)\n\nfun b(x:a):\n    print(int(open('x').read()) + 1)\n\nfun c(x:b):\n    print(int(open('x').read()) + 1)\n",
    );
    // One pass of a claimer publishes the root; nothing claims after that.
    const claimer = new Claimer(engine.m.store, await engine.newBus(), {
      id: "root-only",
      batchSize: 10,
      leaseSeconds: 30,
      pollMs: 1000,
    });
    expect(await claimer.runOnce()).toBe(1);
    const w = await engine.waitFor(id, 60_000);
    expect(w.status).toBe("succeeded");
    expect(await engine.output(id, "c")).toBe("3\n");
    const rows = await engine.m.db<{ claimedBy: string; published: boolean }[]>`
      select claimed_by as "claimedBy", published_at is not null as published
      from dwop.outbox where topic = 'task.ready' order by id`;
    expect(rows).toEqual([
      { claimedBy: "root-only", published: true },
      { claimedBy: `d0-${engine.queue}`, published: true },
      { claimedBy: `d0-${engine.queue}`, published: true },
    ]);
    // b and c never went through the bus: their runs were created in their upstream's success.
    const hops = await engine.m.db<{ name: string; same: boolean }[]>`
      select t.name, r.created_at = (select u.finished_at from dwop.runs u join dwop.tasks ut on ut.id = u.task_id
                                     where ut.workflow_id = t.workflow_id and ut.name = case t.name when 'b' then 'a' else 'b' end) as same
      from dwop.runs r join dwop.tasks t on t.id = r.task_id where t.name in ('b', 'c') order by t.name`;
    expect(hops).toEqual([
      { name: "b", same: true },
      { name: "c", same: true },
    ]);
  });
});
