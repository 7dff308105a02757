// The root of a large fan-out makes every one of its tasks ready in one success, in time linear in their
// number. Planned on the 10 rows Postgres guesses for an unnest, that success took quadratic time
// (migration 20261205001200): a 20,000-task fan-out's root 53 s here, a 100,000-task one's still being
// recorded after two minutes, its workflow stuck. The statement timeout below is some 30 times what the
// success takes (0.6 s here): a guard against that plan, not a speed target (bench/ has those).
import { afterEach, describe, expect, it } from "vitest";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

const MIDDLES = 20_000;

describe("a 20,000-task fan-out", () => {
  let m: MigratedDatabase;
  afterEach(async (ctx) => {
    await m.close(ctx.task.result?.state === "pass");
  });

  it("has its root's success record every task it made ready, in one statement", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const middles = Array.from({ length: MIDDLES }, (_, i) => task(`m${i}`, ["root"]));
    const s = submission([
      task("root"),
      ...middles,
      task(
        "sink",
        middles.map((t) => t.name),
      ),
    ]);
    await m.store.submitWorkflow(s);
    const [root] = await m.db<{ id: string; attempt: number }[]>`
      select id::text, attempt from dwop.tasks where workflow_id = ${s.id} and name = 'root'`;
    const [started] = await m.store.startRuns([{ taskId: root!.id, attempt: root!.attempt }], "d1", "local");
    if (started?.kind !== "created") throw new Error(`the root did not start: ${started?.kind}`);
    const runId = started.assignment.runId;
    await m.store.markRunsDispatched([{ runId, jobName: "job" }], true);

    const rows = await m.db.begin(async (sql) => {
      await sql`set local statement_timeout = '20s'`;
      return sql<{ completed_id: string | null; task_name: string | null }[]>`
        select completed_id::text, task_name
        from dwop.complete_runs_and_start(${[runId]}::bigint[], 'd1', 'local', null)`;
    });
    expect(rows.filter((r) => r.completed_id !== null).map((r) => r.completed_id)).toEqual([runId]);
    const direct = rows.filter((r) => r.completed_id === null).map((r) => r.task_name);
    expect(direct).toHaveLength(1); // started here, as the dispatcher's slot's next run

    const states = await m.db<{ status: string; n: number }[]>`
      select status, count(*)::int as n from dwop.tasks where workflow_id = ${s.id}
      group by status order by status`;
    expect(states).toEqual([
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
});
