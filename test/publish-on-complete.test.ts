// A dispatcher that records a success publishes the tasks it made ready itself (complete_runs_and_claim):
// the successors' outbox rows are leased to it in the completion's transaction, published, and marked.
import { afterEach, describe, expect, it } from "vitest";
import { Claimer } from "../cron/claimer.ts";
import type { TaskMessage } from "../shared/model.ts";
import { startEngine, type Engine } from "./support/engine.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";
import { until } from "./support/until.ts";

describe("complete_runs_and_claim", () => {
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

  it("records the runs and leases to the caller exactly the rows of the tasks they made ready", async (ctx) => {
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

    const first = await m.store.completeRunsAndClaim([a!], "d1", 30);
    expect(first.completed).toEqual([a]);
    // d became ready, c still waits for b; x is not this call's.
    const names = async (ids: string[]) =>
      (
        await m.db<{ name: string }[]>`
          select t.name from dwop.outbox o join dwop.tasks t on t.id = (o.payload ->> 'taskId')::bigint
          where o.id = any(${ids}::bigint[]) order by t.name`
      ).map((r) => r.name);
    expect(await names(first.claimed.map((c) => c.id))).toEqual(["d"]);
    const [row] = await m.db<{ claimedBy: string; leased: boolean }[]>`
      select claimed_by as "claimedBy", lease_until > now() + interval '25 seconds' as leased
      from dwop.outbox where id = ${first.claimed[0]!.id}`;
    expect(row).toEqual({ claimedBy: "d1", leased: true });

    // Recorded already: nothing is recorded or claimed again.
    expect(await m.store.completeRunsAndClaim([a!], "d1", 30)).toEqual({ completed: [], claimed: [] });
    const second = await m.store.completeRunsAndClaim([b!], "d1", 30);
    expect(second.completed).toEqual([b]);
    expect(await names(second.claimed.map((c) => c.id))).toEqual(["c"]);

    // A claimer finds only x: the leased rows are the dispatcher's until their lease runs out.
    const due = await m.store.claimOutbox("c2", 10, 30);
    expect(due.map((d) => d.message.attempt)).toEqual([1]);
    expect(await names(due.map((d) => d.id))).toEqual(["x"]);
  });

  it("leaves a row its dispatcher never published to a claimer once the lease has run out", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const s = submission([task("a"), task("b", ["a"])]);
    await m.store.submitWorkflow(s);
    const [root] = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished("c1", [root!.id]);
    const { claimed } = await m.store.completeRunsAndClaim([await started(root!.message)], "d1", 30);
    expect(claimed).toHaveLength(1);
    // The dispatcher died before publishing: its lease is backdated, as time would run it out.
    await m.db`update dwop.outbox set lease_until = now() - interval '1 second' where id = ${claimed[0]!.id}`;
    const reclaimed = await m.store.claimOutbox("c2", 10, 30);
    expect(reclaimed.map((r) => r.id)).toEqual([claimed[0]!.id]);
    expect(await m.store.markPublished("c2", [claimed[0]!.id])).toBe(1);
  });

  it("frees the rows a dead dispatcher claimed, for a claimer to publish at once, and wakes claimers", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    await m.store.submitWorkflow(submission([task("a"), task("b", ["a"])]));
    const [root] = await m.store.claimOutbox("c1", 10, 30);
    await m.store.markPublished("c1", [root!.id]);
    const { claimed } = await m.store.completeRunsAndClaim([await started(root!.message)], "d1", 30);
    expect(await m.store.claimOutbox("c2", 10, 30)).toEqual([]);
    let woken = 0;
    const listener = await m.db.listen("dwop_outbox", () => woken++);
    try {
      expect(await m.store.releaseOutboxClaims("other")).toBe(0);
      expect(await m.store.releaseOutboxClaims("d1")).toBe(1);
      await until(async () => woken > 0, 5000);
    } finally {
      await listener.unlisten();
    }
    expect((await m.store.claimOutbox("c2", 10, 30)).map((r) => r.id)).toEqual([claimed[0]!.id]);
    // Published rows are never freed again.
    await m.store.markPublished("c2", [claimed[0]!.id]);
    expect(await m.store.releaseOutboxClaims("c2")).toBe(0);
  });
});

describe("a dispatcher publishing what its successes made ready", () => {
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
  });
});
