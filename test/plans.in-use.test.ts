// The hot statements' plans on a database in use. ANALYZE taken while the queue is empty (as autovacuum
// leaves a database between bursts) once made them walk a whole partial index of open rows for each row:
// a 2,000-task fan-out's root success compared 2 million pairs (0.45 s), each claim 500,000 (issue 12).
// auto_explain, loaded in the test's own session, hands every nested statement's plan back as a notice.
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { Store, type ClaimedEvent } from "../shared/db/store.ts";
import { drainOutbox } from "./support/outbox.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

/** root -> n tasks -> sink. */
function fan(n: number) {
  const middle = Array.from({ length: n }, (_, i) => task(`k${i}`, ["r"]));
  return submission([
    task("r"),
    ...middle,
    task(
      "s",
      middle.map((t) => t.name),
    ),
  ]);
}

/**
 * Runs everything queued to its end through the store's calls, as dispatchers would; with `startReady`,
 * each success also starts a task it made ready (complete_runs_and_start), as a dispatcher records them.
 */
async function runToEnd(store: Store, startReady = false): Promise<void> {
  for (;;) {
    const messages = await drainOutbox(store);
    if (messages.length === 0) return;
    let runs = (await store.startRuns(messages, "d1", "local")).flatMap((r) =>
      r.kind === "created" ? [r.assignment.runId] : [],
    );
    while (runs.length > 0) {
      await store.markRunsDispatched(
        runs.map((runId) => ({ runId, jobName: "job" })),
        true,
      );
      if (!startReady) await store.completeRuns(runs);
      runs = startReady
        ? (await store.completeRunsAndStart(runs, "d1", "local")).started.map((r) => r.runId)
        : [];
    }
  }
}

/**
 * A connection of its own: the plan of every statement it runs, nested ones included, with the rows each
 * node read, is pushed to `plans`.
 */
async function explained(url: string, plans: string[]): Promise<postgres.Sql> {
  const db = postgres(url, { max: 1, onnotice: (n) => void plans.push(String(n.message)) });
  await db.unsafe(`load 'auto_explain';
    set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on;
    set auto_explain.log_analyze = on; set auto_explain.log_timing = off;
    set auto_explain.log_level = notice`);
  return db;
}

/** The plans of every statement `work` runs, nested ones included, with the rows each node read. */
async function plansOf(url: string, work: (store: Store) => Promise<unknown>): Promise<string[]> {
  const plans: string[] = [];
  const db = await explained(url, plans);
  try {
    await work(new Store(db));
  } finally {
    await db.end();
  }
  return plans;
}

/** Rows the plans' nodes read and threw away (filters and join filters), summed. */
function rowsRemoved(plans: string[]): number {
  let removed = 0;
  for (const plan of plans) {
    for (const m of plan.matchAll(/Rows Removed by (?:Join )?Filter: (\d+)/g)) removed += Number(m[1]);
  }
  return removed;
}

/** Rows the plans' scans of `tasks` returned, summed over their loops. */
function tasksRowsRead(plans: string[]): number {
  let read = 0;
  for (const plan of plans) {
    for (const m of plan.matchAll(/Scan[^\n]* on tasks\b[^\n]*\(actual rows=(\d+) loops=(\d+)\)/g))
      read += Number(m[1]) * Number(m[2]);
  }
  return read;
}

describe("plans on a database in use", () => {
  let m: MigratedDatabase;
  afterEach(async (ctx) => {
    await m.close(ctx.task.result?.state === "pass");
  });

  it("records a fan-out's root success and claims its tasks reading rows by key, not every pair", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    await m.store.submitWorkflow(fan(50));
    await runToEnd(m.store);
    await m.db`analyze`;

    await m.store.submitWorkflow(fan(2000));
    const [root] = await drainOutbox(m.store);
    const started = await m.store.startRun(root!, "d1", "local");
    if (started.kind !== "created") throw new Error(`expected a new run, got ${started.kind}`);
    await m.store.markRunsDispatched([{ runId: started.assignment.runId, jobName: "job" }], true);

    let claimed: ClaimedEvent[] = [];
    const plans = await plansOf(m.url, async (store) => {
      expect(await store.completeRuns([started.assignment.runId])).toEqual([started.assignment.runId]);
      claimed = await store.claimOutbox("c2", 500, 30);
      expect(claimed).toHaveLength(500);
    });
    expect(plans.length).toBeGreaterThan(10); // every nested statement came back
    // 2,000 ready tasks and a claim of 500: a few thousand rows read and dropped is a walk by key;
    // matching every row against every other was millions.
    expect(rowsRemoved(plans)).toBeLessThan(50_000);

    // Their starts read tasks by key, a few rows a start: a lookup of each input's upstream joined to the
    // workflow's tasks (a reverted version's) read every task of the workflow for each, a million rows.
    const starts = await plansOf(m.url, async (store) => {
      const results = await store.startRuns(
        claimed.map((c) => c.message),
        "d1",
        "local",
      );
      expect(results.filter((r) => r.kind === "created")).toHaveLength(500);
    });
    expect(tasksRowsRead(starts)).toBeLessThan(20_000);
  });

  it("keeps reading rows by key on a connection that planned while the tables were nearly empty", async (ctx) => {
    // A connection plans the dispatch functions' statements once (generic plans), and again only when a
    // table's statistics change, which on a new database (or with autovacuum off) is not before its
    // first ANALYZE: a sequential scan planned on a few rows then read every row of runs and tasks in each
    // batch of a 2,000-task fan-out.
    m = await migratedDatabase(ctx.task.name);
    const plans: string[] = [];
    const db = await explained(m.url, plans);
    try {
      const store = new Store(db);
      await m.store.submitWorkflow(fan(3));
      await runToEnd(store, true); // every statement planned on a few rows
      await m.store.submitWorkflow(fan(2000));
      await runToEnd(m.store, true); // 2,000 more runs, tasks and outbox rows, no ANALYZE

      await m.store.submitWorkflow(fan(2000));
      plans.length = 0;
      await runToEnd(store, true);
    } finally {
      await db.end();
    }
    expect(plans.length).toBeGreaterThan(10);
    const scanned = plans.flatMap((p) =>
      [...p.matchAll(/Seq Scan on (runs|tasks|outbox)\b/g)].map((x) => x[1]),
    );
    expect(scanned).toEqual([]);
    expect(rowsRemoved(plans)).toBeLessThan(50_000);
  });

  it("plans a submit without the workflow's values: none of its task ids is written into the plan", async (ctx) => {
    // Planned with a call's values (a connection's first five calls, by default), a submit's insert had
    // the ids it made, one per task, copied into its plan as an array constant: for 10,001 tasks that copy
    // and the estimates made from it cost each new connection's submit tens of milliseconds.
    m = await migratedDatabase(ctx.task.name);
    const workflow = fan(3);
    const plans = await plansOf(m.url, (store) => store.submitWorkflow(workflow));
    const insert = plans.filter((p) => p.includes("Insert on tasks"));
    expect(insert).toHaveLength(1);
    const ids = await m.db<{ id: string }[]>`select id from dwop.tasks where workflow_id = ${workflow.id}`;
    expect(ids).toHaveLength(5);
    const idArray = /'\{(\d+(?:,\d+)*)\}'::bigint\[\]/g;
    const constants = [...insert[0]!.matchAll(idArray)].flatMap((x) => x[1]!.split(","));
    expect(constants.filter((c) => ids.some((r) => r.id === c))).toEqual([]);
  });
});
