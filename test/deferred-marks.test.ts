// A local run's mark (running, its start, its job name) waits MARK_AFTER_MS for the run's end: a run that
// ends first is marked by the transaction that records its end (complete_runs_and_start, or complete_runs
// in a transaction with mark_runs_started), with the start the dispatcher measured; a longer run is marked
// while it runs. Against the real database and, for the dispatcher, real Python runs.
import { afterEach, describe, expect, it } from "vitest";
import { DeferredMarks } from "../dispatcher/deferred-marks.ts";
import { startEngine, type Engine } from "./support/engine.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";
import { until } from "./support/until.ts";

interface RunRow {
  status: string;
  jobName: string | null;
  /** finished_at - started_at, ms */
  ranMs: number;
  startedIsDispatched: boolean;
  taskStatus: string;
  taskRanMs: number;
}

describe("a run marked started by the recording of its end", () => {
  let m: MigratedDatabase;
  afterEach(async (ctx) => {
    await m.close(ctx.task.result?.state === "pass");
  });

  async function runOf(runId: string): Promise<RunRow> {
    const [row] = await m.db<RunRow[]>`
      select r.status, r.job_name as "jobName",
             (extract(epoch from r.finished_at - r.started_at) * 1000)::float8 as "ranMs",
             r.started_at = r.dispatched_at as "startedIsDispatched", t.status as "taskStatus",
             (extract(epoch from t.finished_at - t.started_at) * 1000)::float8 as "taskRanMs"
      from dwop.runs r join dwop.tasks t on t.id = r.task_id where r.id = ${runId}`;
    return row!;
  }

  /** The runs (as dispatcher d1, still 'starting') of a fresh workflow of roots. */
  async function startedRuns(names: string[]): Promise<string[]> {
    await m.store.submitWorkflow(submission(names.map((n) => task(n))));
    const claimed = await m.store.claimOutbox("c1", 10, 30);
    const results = await m.store.startRuns(
      claimed.map((c) => c.message),
      "d1",
      "local",
    );
    return results.map((r) => {
      if (r.kind !== "created") throw new Error(`expected a new run, got ${r.kind}`);
      return r.assignment.runId;
    });
  }

  it("complete_runs_and_start marks an unmarked run with the start it is given, and leaves a marked one", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const [quick, marked] = await startedRuns(["quick", "marked"]);
    await m.store.markRunDispatched(marked!, "pid-7", true);
    await new Promise((r) => setTimeout(r, 30));

    const unmarked = new Map([
      [quick!, { jobName: "pid-42", ranMs: 1500 }],
      [marked!, { jobName: "pid-99", ranMs: 5000 }], // its own mark committed: this one finds it running
    ]);
    const result = await m.store.completeRunsAndStart([quick!, marked!], "d1", "local", null, unmarked);
    expect(result.completed.sort()).toEqual([quick, marked].sort());

    expect(await runOf(quick!)).toEqual({
      status: "succeeded",
      jobName: "pid-42",
      ranMs: 1500,
      startedIsDispatched: true,
      taskStatus: "succeeded",
      taskRanMs: 1500,
    });
    const kept = await runOf(marked!);
    expect(kept.jobName).toBe("pid-7");
    expect(kept.ranMs).toBeGreaterThanOrEqual(30);
    expect(kept.ranMs).toBeLessThan(5000);
  });

  it("complete_runs marks them in the same transaction (a dispatcher that does not start tasks)", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const [run] = await startedRuns(["quick"]);
    const completed = await m.store.completeRuns([run!], new Map([[run!, { jobName: "pid-5", ranMs: 250 }]]));
    expect(completed).toEqual([run]);
    expect(await runOf(run!)).toMatchObject({ status: "succeeded", jobName: "pid-5", ranMs: 250 });
  });

  it("refuses arrays of different lengths, and changes nothing", async (ctx) => {
    m = await migratedDatabase(ctx.task.name);
    const [run] = await startedRuns(["quick"]);
    await expect(
      m.db`select * from dwop.complete_runs_and_start(${[run!]}::bigint[], 'd1', 'local', null, null,
        ${["pid-1", "pid-2"]}::text[], ${[1, 2]}::int[])`,
    ).rejects.toMatchObject({ code: "22023" });
    expect((await runOf(run!)).status).toBe("starting");
  });
});

describe("DeferredMarks", () => {
  function marks(delayMs: number, send: (mark: { runId: string }) => Promise<boolean>) {
    const failures: string[] = [];
    const d = new DeferredMarks(send, (runId) => failures.push(runId), delayMs);
    return { d, failures };
  }

  it("sends no mark for a run that ends before the delay, and hands its start to the end", async () => {
    const sent: string[] = [];
    const { d } = marks(50, async (mark) => (sent.push(mark.runId), true));
    d.add("1", "pid-1");
    const start = d.take("1");
    expect(start?.jobName).toBe("pid-1");
    expect(start!.ranMs).toBeGreaterThanOrEqual(0);
    await new Promise((r) => setTimeout(r, 120));
    expect(sent).toEqual([]);
    expect(d.take("1")).toBeUndefined();
  });

  it("sends the mark after the delay; the run's end then has no start to carry", async () => {
    const sent: string[] = [];
    const { d } = marks(20, async (mark) => (sent.push(mark.runId), true));
    d.add("1", "pid-1");
    await until(async () => sent.length === 1, 5000);
    await new Promise((r) => setImmediate(r));
    expect(d.take("1")).toBeUndefined();
    expect(sent).toEqual(["1"]);
  });

  it("keeps the start of a run whose mark failed, for its end to record", async () => {
    const { d, failures } = marks(10, () => Promise.reject(new Error("database unreachable")));
    d.add("1", "pid-1");
    await until(async () => failures.length === 1, 5000);
    expect(d.take("1")?.jobName).toBe("pid-1");
  });

  it("flush sends at once and once; drop forgets", async () => {
    const sent: string[] = [];
    const { d } = marks(60_000, async (mark) => (sent.push(mark.runId), true));
    d.add("1", "pid-1");
    d.add("2", "pid-2");
    await Promise.all([d.flush("1"), d.flush("1")]);
    expect(sent).toEqual(["1"]);
    d.drop("2");
    await d.flush("2");
    expect(sent).toEqual(["1"]);
    expect(d.take("2")).toBeUndefined();
  });
});

describe("a dispatcher's local runs", () => {
  let engine: Engine | undefined;
  afterEach(async (ctx) => {
    await engine?.stop(ctx.task.result?.state === "pass");
    engine = undefined;
  });

  it("are marked running while they run, and each has its start and job name once ended", async (ctx) => {
    engine = await startEngine(ctx.task.name, { bus: "pgboss" });
    const id = await engine.submit(
      'fun quick():\n    print("q")\n\nfun slow(q:quick):\n    import time\n    time.sleep(1.5)\n',
    );
    const slowRun = () => engine!.m.db<{ status: string; jobName: string | null }[]>`
      select r.status, r.job_name as "jobName" from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where t.workflow_id = ${id} and t.name = 'slow'`;
    // Marked by its timer while it sleeps.
    await until(async () => (await slowRun())[0]?.status === "running", 30_000, "slow's run running");
    expect((await slowRun())[0]!.jobName).toMatch(/^pid-\d+$/);

    expect((await engine.waitFor(id)).status).toBe("succeeded");
    const runs = await engine.m.db<{ name: string; jobName: string | null; ordered: boolean }[]>`
      select t.name, r.job_name as "jobName",
             r.created_at <= r.started_at and r.started_at <= r.finished_at as ordered
      from dwop.runs r join dwop.tasks t on t.id = r.task_id where t.workflow_id = ${id} order by t.name`;
    expect(runs).toEqual([
      { name: "quick", jobName: expect.stringMatching(/^pid-\d+$/), ordered: true },
      { name: "slow", jobName: expect.stringMatching(/^pid-\d+$/), ordered: true },
    ]);
  }, 90_000);
});
