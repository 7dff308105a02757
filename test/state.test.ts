import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectDb } from "../shared/db/connect.ts";
import { migrate } from "../shared/db/migrate.ts";
import type { Store } from "../shared/db/store.ts";
import type { TaskMessage } from "../shared/model.ts";
import { createTestDatabase } from "./support/db.ts";
import { submission, task } from "./support/factory.ts";
import { drainOutbox } from "./support/outbox.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

let m: MigratedDatabase;
let store: Store;

beforeEach(async (ctx) => {
  m = await migratedDatabase(ctx.task.name);
  store = m.store;
});
afterEach(async (ctx) => {
  await m.close(ctx.task.result?.state === "pass");
});

/** Claims everything due, marks it published and returns the messages. */
const drain = (claimer = "c1") => drainOutbox(store, claimer);

async function taskIdOf(workflowId: string, name: string): Promise<string> {
  const [row] = await m.db<{ id: string }[]>`
    select id from dwop.tasks where workflow_id = ${workflowId} and name = ${name}`;
  return row!.id;
}

/** Starts and completes every queued task whose name is in `names`, returning what became ready. */
async function runAndSucceed(messages: TaskMessage[]): Promise<void> {
  for (const msg of messages) {
    const started = await store.startRun(msg, "d1", "local");
    if (started.kind !== "created") throw new Error(`expected a new run, got ${started.kind}`);
    await store.markRunDispatched(started.assignment.runId, "job", true);
    expect(await store.completeRuns([started.assignment.runId])).toEqual([started.assignment.runId]);
  }
}

describe("submit", () => {
  it("writes the workflow, its tasks and one outbox row per root in one call", async () => {
    const s = submission([task("a"), task("b"), task("c", ["a", "b"])]);
    expect(await store.submitWorkflow(s)).toBe(true);
    expect(await store.submitWorkflow(s)).toBe(false);
    const msgs = await drain();
    expect(msgs.map((x) => x.attempt)).toEqual([1, 1]);
    const summary = await store.workflowSummary(s.id);
    expect(summary?.status).toBe("queued");
    expect(summary?.tasks.map((t) => [t.name, t.status])).toEqual([
      ["a", "queued"],
      ["b", "queued"],
      ["c", "pending"],
    ]);
  });

  it("refuses an unknown upstream, an edge outside the workflow and columns of other lengths, writing nothing", async () => {
    const s = submission([task("a"), task("b", ["nope"])]);
    await expect(store.submitWorkflow(s)).rejects.toThrow(
      "task b reads nope, which is not one of the workflow's tasks",
    );
    const call = (edgeUp: number[], names = ["a", "b"]) => m.db`
      select dwop.submit_workflow(${randomUUID()}, 'test', 'w', 'src', false, '{}'::text[], ${names}::text[],
        ${m.db.json([[], [{ name: "x", upstream: "a" }]])}, '{0,0}'::int[], '{null,null}'::int[],
        '{null,null}'::text[], '{null,null}'::text[], '{null,null}'::text[], '{0,10}'::bigint[], '{10,10}'::int[],
        '{null,null}'::text[], '{0,0}'::int[], '{2}'::int[], ${edgeUp}::int[], 0, 3)`;
    for (const up of [0, 3, 2]) {
      await expect(call([up]), `edge 2 -> ${up}`).rejects.toMatchObject({
        code: "22023",
        message: expect.stringContaining("has an edge that is not between two of its tasks"),
      });
    }
    await expect(call([1], ["a", "b", "c"])).rejects.toMatchObject({
      code: "22023",
      message: expect.stringContaining("the task columns must all hold one value per task (3 names)"),
    });
    await call([1]); // the same call with a good edge is accepted
    const [row] = await m.db<{ n: number }[]>`select count(*)::int as n from dwop.workflows`;
    expect(row!.n).toBe(1);
  });

  it("treats inputs.* parameters as submit-time inputs, not upstream tasks", async () => {
    const s = submission([task("a", ["inputs.payload"])], { inputs: ["payload"] });
    await store.submitWorkflow(s);
    expect(await drain()).toHaveLength(1);
  });
});

describe("a diamond runs to success", () => {
  it("counts down the fan-in and ends the workflow", async () => {
    const s = submission([task("a"), task("b", ["a"]), task("c", ["a"]), task("d", ["b", "c"])]);
    await store.submitWorkflow(s);
    await runAndSucceed(await drain());
    const second = await drain();
    expect(second).toHaveLength(2);
    await runAndSucceed(second.slice(0, 1));
    expect(await drain()).toEqual([]);
    await runAndSucceed(second.slice(1));
    const last = await drain();
    expect(last).toEqual([{ taskId: await taskIdOf(s.id, "d"), attempt: 1 }]);
    await runAndSucceed(last);
    const summary = await store.workflowSummary(s.id);
    expect(summary?.status).toBe("succeeded");
    expect(summary?.tasks.every((t) => t.status === "succeeded" && t.attempts === 1)).toBe(true);
  });
});

describe("starting a run", () => {
  it("records one run per (task, attempt): a duplicate delivery finds it already there", async () => {
    await store.submitWorkflow(submission([task("a")]));
    const [msg] = await drain();
    const first = await store.startRun(msg!, "d1", "local");
    const second = await store.startRun(msg!, "d2", "local");
    expect(first.kind).toBe("created");
    expect(second).toEqual({
      kind: "duplicate",
      runId: first.kind === "created" ? first.assignment.runId : "",
    });
    const [row] = await m.db<{ n: number }[]>`select count(*)::int as n from dwop.runs`;
    expect(row!.n).toBe(1);
  });

  it("says stale for an attempt the task has moved past", async () => {
    await store.submitWorkflow(submission([task("a")]));
    const [msg] = await drain();
    expect(await store.startRun({ ...msg!, attempt: 7 }, "d1", "local")).toEqual({ kind: "stale" });
  });

  it("completes a run once: a second completion changes nothing", async () => {
    await store.submitWorkflow(submission([task("a"), task("b", ["a"])]));
    const [msg] = await drain();
    const run = await store.startRun(msg!, "d1", "local");
    if (run.kind !== "created") throw new Error("no run");
    expect(await store.completeRuns([run.assignment.runId])).toHaveLength(1);
    expect(await store.completeRuns([run.assignment.runId])).toEqual([]);
    expect(await drain()).toHaveLength(1);
  });
});

describe("increase_attempt", () => {
  it("records a failure whose log tail holds NUL bytes (a killed pod's log), without them", async () => {
    const s = submission([task("a")]);
    await store.submitWorkflow(s);
    const [msg] = await drain();
    const started = await store.startRun(msg!, "d1", "local");
    if (started.kind !== "created") throw new Error(`expected a new run, got ${started.kind}`);
    const failure = {
      reason: "exit_code" as const,
      message: "exit 137\0",
      exitCode: 137,
      logTail: "line 1\n\0\0\0line 2",
      nonRetryable: false,
    };
    expect(await store.increaseAttempt(started.assignment.runId, failure)).toBe("failed");
    const [run] = await m.db<{ error: string; logTail: string }[]>`
      select error, log_tail as "logTail" from dwop.runs where id = ${started.assignment.runId}`;
    expect(run).toEqual({ error: "exit 137", logTail: "line 1\nline 2" });
  });

  it("retries within the budget, then fails the task and its downstream while a branch finishes", async () => {
    const s = submission([
      task("bad", [], { retries: 1 }),
      task("after", ["bad"]),
      task("last", ["after"]),
      task("ok"),
    ]);
    await store.submitWorkflow(s);
    const roots = await drain();
    const badId = await taskIdOf(s.id, "bad");
    const badMsg = roots.find((r) => r.taskId === badId)!;
    await runAndSucceed(roots.filter((r) => r !== badMsg));

    const failure = {
      reason: "exit_code" as const,
      message: "exit code 3",
      exitCode: 3,
      logTail: "boom",
      nonRetryable: false,
    };
    const r1 = await store.startRun(badMsg, "d1", "local");
    if (r1.kind !== "created") throw new Error("no run");
    expect(await store.increaseAttempt(r1.assignment.runId, failure)).toBe("retried");
    const retry = await drain();
    expect(retry).toEqual([{ taskId: badId, attempt: 2 }]);

    const r2 = await store.startRun(retry[0]!, "d1", "local");
    if (r2.kind !== "created") throw new Error("no run");
    expect(await store.increaseAttempt(r2.assignment.runId, failure)).toBe("failed");
    expect(await store.increaseAttempt(r2.assignment.runId, failure)).toBe("ignored");

    const summary = await store.workflowSummary(s.id);
    expect(summary?.status).toBe("failed");
    expect(Object.fromEntries(summary!.tasks.map((t) => [t.name, t.status]))).toEqual({
      bad: "failed",
      after: "upstream_failed",
      last: "upstream_failed",
      ok: "succeeded",
    });
    const [run] =
      await m.db`select exit_code, log_tail, failure_reason from dwop.runs where id = ${r2.assignment.runId}`;
    expect(run).toEqual({ exit_code: 3, log_tail: "boom", failure_reason: "exit_code" });
  });

  it("delays a retry by the backoff and spends infrastructure failures from their own budget", async () => {
    const s = submission([task("a", [], { retries: 0 })], { retryBackoffMs: 60_000 });
    await store.submitWorkflow(s);
    const [msg] = await drain();
    const run = await store.startRun(msg!, "d1", "local");
    if (run.kind !== "created") throw new Error("no run");
    const lost = {
      reason: "lost" as const,
      message: "gone",
      exitCode: null,
      logTail: null,
      nonRetryable: false,
    };
    expect(await store.increaseAttempt(run.assignment.runId, lost)).toBe("retried");
    expect(await drain()).toEqual([]);
    const [due] = await m.db<{ s: number }[]>`
      select extract(epoch from available_at - now())::int as s from dwop.outbox where published_at is null`;
    expect(due!.s).toBeGreaterThan(50);
  });
});

describe("outbox leases", () => {
  it("gives a dead claimer's rows to another claimer only after the lease, and lets it mark them", async () => {
    await store.submitWorkflow(submission([task("a"), task("b")]));
    const first = await store.claimOutbox("dead", 10, 30);
    expect(first).toHaveLength(2);
    expect(await store.claimOutbox("alive", 10, 30)).toEqual([]);
    const later = new Date(Date.now() + 31_000);
    const again = await m.db<
      { id: string }[]
    >`select id from dwop.claim_outbox_events('alive', 10, 30, ${later})`;
    expect(again.map((r) => r.id).sort()).toEqual(first.map((r) => r.id).sort());
    expect(
      await store.markPublished(
        "dead",
        first.map((r) => r.id),
      ),
    ).toBe(0);
    expect(
      await store.markPublished(
        "alive",
        first.map((r) => r.id),
      ),
    ).toBe(2);
  });
});

describe("cancel and retry from failure", () => {
  it("cancels open tasks and their runs, then reruns only what did not succeed", async () => {
    const s = submission([task("a"), task("b", ["a"]), task("c", ["b"])]);
    await store.submitWorkflow(s);
    await runAndSucceed(await drain());
    const [bMsg] = await drain();
    const bRun = await store.startRun(bMsg!, "d1", "local");
    if (bRun.kind !== "created") throw new Error("no run");
    expect(await store.cancelWorkflow(s.id)).toBe(2);
    expect(await store.completeRuns([bRun.assignment.runId])).toEqual([]);
    expect((await store.workflowSummary(s.id))?.status).toBe("cancelled");

    expect(await store.retryWorkflow(s.id)).toBe(2);
    const rerun = await drain();
    expect(rerun).toEqual([{ taskId: bMsg!.taskId, attempt: 2 }]);
    await runAndSucceed(rerun);
    await runAndSucceed(await drain());
    const summary = await store.workflowSummary(s.id);
    expect(summary?.status).toBe("succeeded");
    expect(summary?.tasks.map((t) => t.attempts)).toEqual([1, 2, 1]);
    expect(await store.retryWorkflow(s.id)).toBeNull();
  });
});

describe("lost runs", () => {
  it("retries runs of a restarted dispatcher, and of one whose heartbeat went stale", async () => {
    await store.submitWorkflow(submission([task("a"), task("b")]));
    const [a, b] = await drain();
    await store.heartbeat("old", "local");
    await store.heartbeat("live", "local");
    await store.startRun(a!, "old", "local");
    await store.startRun(b!, "live", "local");
    expect(await store.reapLostRuns(60, null)).toBe(0);
    expect(await store.reapLostRuns(60, "old")).toBe(1);
    await m.db`update dwop.dispatchers set heartbeat_at = now() - interval '2 minutes' where id = 'live'`;
    expect(await store.reapLostRuns(60, null)).toBe(1);
    const retried = await drain();
    expect(retried.map((r) => r.attempt)).toEqual([2, 2]);
  });
});

describe("orphaned runs", () => {
  it("retries a live dispatcher's runs it no longer holds, after the grace period, and spares the held ones", async () => {
    await store.submitWorkflow(submission([task("a"), task("b")]));
    const [a, b] = await drain();
    await store.heartbeat("live", "local");
    const ra = await store.startRun(a!, "live", "local");
    await store.startRun(b!, "live", "local");
    if (ra.kind !== "created") throw new Error("no run");
    expect(await store.reapOrphanedRuns("live", [], 60)).toBe(0);
    await m.db`update dwop.runs set created_at = now() - interval '2 minutes'`;
    expect(await store.reapOrphanedRuns("live", [ra.assignment.runId], 60)).toBe(1);
    const retried = await drain();
    expect(retried).toEqual([{ taskId: b!.taskId, attempt: 2 }]);
  });
});

describe("constraints", () => {
  it("refuses a task state outside the allowed set and a second run for one attempt", async () => {
    await store.submitWorkflow(submission([task("a")]));
    await expect(m.db`update dwop.tasks set status = 'exploded'`).rejects.toMatchObject({ code: "23514" });
    const [msg] = await drain();
    const run = await store.startRun(msg!, "d1", "local");
    if (run.kind !== "created") throw new Error("no run");
    await expect(
      m.db`insert into dwop.runs (task_id, workflow_id, attempt, status)
           select task_id, workflow_id, attempt, 'starting' from dwop.runs`,
    ).rejects.toMatchObject({ code: "23505" });
  });

  it("refuses a task or a run whose finished_at disagrees with its state (the open-row indexes rest on it)", async () => {
    await store.submitWorkflow(submission([task("a")]));
    await expect(m.db`update dwop.tasks set finished_at = now()`).rejects.toMatchObject({ code: "23514" });
    await expect(m.db`update dwop.tasks set status = 'succeeded'`).rejects.toMatchObject({ code: "23514" });
    const [msg] = await drain();
    const run = await store.startRun(msg!, "d1", "local");
    if (run.kind !== "created") throw new Error("no run");
    await expect(m.db`update dwop.runs set finished_at = now()`).rejects.toMatchObject({ code: "23514" });
    await expect(m.db`update dwop.runs set status = 'lost', failure_reason = 'lost'`).rejects.toMatchObject({
      code: "23514",
    });
  });
});

describe("in-place state changes", () => {
  it("rewrites a task's row without new index entries when it is dispatched and started, and its run's when it starts", async () => {
    await store.submitWorkflow(submission([task("a")]));
    const [msg] = await drain();
    // Heap-only (HOT) updates of this transaction: none while a state named in an index's predicate.
    const hot = await m.db.begin(async (tx) => {
      const [started] = await tx<{ run_id: string }[]>`
        select run_id from dwop.start_runs(${`{${msg!.taskId}}`}::bigint[], ${`{${msg!.attempt}}`}::int[],
          'd1', 'local')`;
      await tx`select dwop.mark_runs_dispatched(${[started!.run_id]}::bigint[], ${["job"]}::text[], true)`;
      const [counts] = await tx<{ tasks: number; runs: number }[]>`
        select pg_stat_get_xact_tuples_hot_updated('dwop.tasks'::regclass)::int as tasks,
               pg_stat_get_xact_tuples_hot_updated('dwop.runs'::regclass)::int as runs`;
      return counts!;
    });
    expect(hot).toEqual({ tasks: 2, runs: 1 });
  });
});

describe("migrations", () => {
  it("apply exactly once when many processes start at once", async () => {
    const tdb = await createTestDatabase("migrate_race");
    const pools = Array.from({ length: 8 }, () => connectDb(tdb.url, { max: 1 }));
    const applied = await Promise.all(pools.map((db) => migrate(db)));
    expect(applied.flat().sort()).toEqual(applied.find((a) => a.length > 0)!.sort());
    expect(applied.filter((a) => a.length > 0)).toHaveLength(1);
    await Promise.all(pools.map((db) => db.end()));
    await tdb.drop();
  });
});
