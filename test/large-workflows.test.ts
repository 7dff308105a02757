// A task's end that reaches thousands of others is recorded in time linear in their number. The root of a
// large fan-out makes every one of its tasks ready in one success: planned on the 10 rows Postgres guesses
// for an unnest, that took quadratic time (migration 20261205001200): a 20,000-task fan-out's root 53 s
// here, a 100,000-task one's still being recorded after two minutes, its workflow stuck. The first task of
// a long chain failing marks every later one upstream_failed: the walk down scanned the whole tasks table
// at each level (migration 20261205001300): an 8,000-task chain 6-10 s on a fresh database. The first is
// checked under a statement timeout some 30 times what it takes here (0.6 s): a guard against that plan,
// not a speed target (bench/ has those); the second by the pages it reads.
import { afterEach, describe, expect, it } from "vitest";
import type { SubmitInput } from "../shared/db/store.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

const MIDDLES = 20_000;
const CHAIN = 8_000;

describe("a large workflow", () => {
  let m: MigratedDatabase;
  afterEach(async (ctx) => {
    await m.close(ctx.task.result?.state === "pass");
  });

  /** Submits the workflow, starts its task `first` and marks it dispatched; returns the run's id. */
  async function startFirst(s: SubmitInput, first: string): Promise<string> {
    await m.store.submitWorkflow(s);
    const [t] = await m.db<{ id: string; attempt: number }[]>`
      select id::text, attempt from dwop.tasks where workflow_id = ${s.id} and name = ${first}`;
    const [started] = await m.store.startRuns([{ taskId: t!.id, attempt: t!.attempt }], "d1", "local");
    if (started?.kind !== "created") throw new Error(`${first} did not start: ${started?.kind}`);
    await m.store.markRunsDispatched([{ runId: started.assignment.runId, jobName: "job" }], true);
    return started.assignment.runId;
  }

  /** Each status of the workflow's tasks, with how many have it. */
  async function states(workflowId: string): Promise<{ status: string; n: number }[]> {
    return m.db<{ status: string; n: number }[]>`
      select status, count(*)::int as n from dwop.tasks where workflow_id = ${workflowId}
      group by status order by status`;
  }

  it("of 20,000 tasks fanned out has its root's success make every one ready, in one statement", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const middles = Array.from({ length: MIDDLES }, (_, i) => task(`m${i}`, ["root"]));
    const fanIn = task(
      "sink",
      middles.map((t) => t.name),
    );
    const s = submission([task("root"), ...middles, fanIn]);
    const runId = await startFirst(s, "root");

    const rows = await m.db.begin(async (sql) => {
      await sql`set local statement_timeout = '20s'`;
      return sql<{ completed_id: string | null; task_name: string | null }[]>`
        select completed_id::text, task_name
        from dwop.complete_runs_and_start(${[runId]}::bigint[], 'd1', 'local', null)`;
    });
    expect(rows.filter((r) => r.completed_id !== null).map((r) => r.completed_id)).toEqual([runId]);
    const direct = rows.filter((r) => r.completed_id === null).map((r) => r.task_name);
    expect(direct).toHaveLength(1); // started here, as the dispatcher's slot's next run

    expect(await states(s.id)).toEqual([
      { status: "dispatched", n: 1 },
      { status: "pending", n: 1 },
      { status: "queued", n: MIDDLES - 1 },
      { status: "succeeded", n: 1 },
    ]);
    const [sink] = await m.db<{ pending: number }[]>`
      select pending_inputs as pending from dwop.tasks where workflow_id = ${s.id} and name = 'sink'`;
    expect(sink!.pending).toBe(MIDDLES);
    // Each ready task has its outbox row; the one started here has its row taken already.
    const [outbox] = await m.db<{ rows: number; open: number }[]>`
      select count(*)::int as rows, count(*) filter (where o.published_at is null)::int as open
      from dwop.outbox o join dwop.tasks t on t.id = (o.payload ->> 'taskId')::bigint
      where o.topic = 'task.ready' and t.workflow_id = ${s.id} and t.name like 'm%'`;
    expect(outbox).toEqual({ rows: MIDDLES, open: MIDDLES - 1 });
  }, 120_000);

  it("of 8,000 tasks in a chain has its first task's failure mark every later one, in one statement", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const tasks = Array.from({ length: CHAIN }, (_, i) => task(`t${i}`, i === 0 ? [] : [`t${i - 1}`]));
    const s = submission(tasks);
    const runId = await startFirst(s, "t0");
    // Its work counted in pages read (EXPLAIN's buffers take in what the function's statements read), not
    // timed: ~29 a task here, 545 a task with a scan of the table at each level (9d7900a).
    const plan = await m.db<{ "QUERY PLAN": string }[]>`
      explain (analyze, buffers, costs off, timing off)
      select dwop.increase_attempt(${runId}, 'exit 1', 'exit_code', 1, '', true)`;
    const pages = /shared hit=(\d+)(?: read=(\d+))?/.exec(plan.map((r) => r["QUERY PLAN"]).join("\n"));
    expect(Number(pages![1]) + Number(pages![2] ?? 0)).toBeLessThan(100 * CHAIN);
    expect(await states(s.id)).toEqual([
      { status: "failed", n: 1 },
      { status: "upstream_failed", n: CHAIN - 1 },
    ]);
    const [w] = await m.db<{ status: string }[]>`select status from dwop.workflows where id = ${s.id}`;
    expect(w!.status).toBe("failed");
  }, 120_000);
});
