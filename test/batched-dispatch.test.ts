// A dispatcher records its deliveries' runs and marks them dispatched in batches (start_runs,
// mark_runs_dispatched of 20261205000300): each item of a batch is answered as the one-item call would.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectDb } from "../shared/db/connect.ts";
import { PoolStore } from "../shared/db/pool-store.ts";
import { Store } from "../shared/db/store.ts";
import type { TaskMessage } from "../shared/model.ts";
import { submission, task } from "./support/factory.ts";
import { drainOutbox } from "./support/outbox.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";
import { until } from "./support/until.ts";

let m: MigratedDatabase;
let store: Store;

beforeEach(async (ctx) => {
  m = await migratedDatabase(ctx.task.name);
  store = m.store;
});
afterEach(async (ctx) => {
  await m.close(ctx.task.result?.state === "pass");
});

/** Claims and marks published every due outbox row; their messages, in claim order. */
const drain = () => drainOutbox(store);

/** Submits one workflow of the given roots; returns its id and the roots' messages, by task name. */
async function roots(names: string[], pool?: string) {
  const s = submission(names.map((n) => task(n, [], pool ? { pool } : {})));
  await store.submitWorkflow(s);
  const messages = await drain();
  const rows = await m.db<{ id: string; name: string }[]>`
    select id, name from dwop.tasks where workflow_id = ${s.id}`;
  const byName = Object.fromEntries(
    rows.map((r) => [r.name, messages.find((x) => x.taskId === r.id)!] as const),
  );
  return { id: s.id, byName };
}

async function runsOf(taskIds: string[]) {
  return m.db<{ taskId: string; attempt: number; status: string; dispatcherId: string }[]>`
    select task_id as "taskId", attempt, status, dispatcher_id as "dispatcherId" from dwop.runs
    where task_id = any(${taskIds}::bigint[]) order by task_id, attempt`;
}

describe("start_runs", () => {
  it("answers each delivery in the order given: new, duplicate, stale", async () => {
    const w = await roots(["a", "b", "c"]);
    const { a, b, c } = w.byName as Record<string, TaskMessage>;
    // b's run already exists (an earlier delivery); c was delivered twice into this one batch.
    const earlier = await store.startRun(b!, "d0", "local");
    expect(earlier.kind).toBe("created");
    const stale = { taskId: a!.taskId, attempt: 2 }; // an attempt the task never reached
    const unknown = { taskId: "999999999", attempt: 1 };
    const nonsense = { taskId: "not-a-task", attempt: 1 };
    const hugeAttempt = { taskId: a!.taskId, attempt: 2 ** 31 }; // beyond an int: would fail the whole batch

    const results = await store.startRuns(
      [c!, a!, b!, stale, c!, unknown, nonsense, hugeAttempt],
      "d1",
      "local",
    );
    expect(results.map((r) => r.kind)).toEqual([
      "created",
      "created",
      "duplicate",
      "stale",
      "duplicate",
      "stale",
      "stale",
      "stale",
    ]);
    const [cRun, aRun, bRun, , cAgain] = results;
    if (cRun?.kind !== "created" || aRun?.kind !== "created") throw new Error("expected new runs");
    expect(aRun.assignment).toMatchObject({ taskId: a!.taskId, taskName: "a", attempt: 1, workflowId: w.id });
    expect(cRun.assignment.taskName).toBe("c");
    expect(bRun).toEqual({
      kind: "duplicate",
      runId: earlier.kind === "created" ? earlier.assignment.runId : "",
    });
    expect(cAgain).toEqual({ kind: "duplicate", runId: cRun.assignment.runId });
    // One run per (task, attempt), each by the dispatcher that made it.
    expect(await runsOf([a!.taskId, b!.taskId, c!.taskId])).toEqual(
      [
        { taskId: a!.taskId, attempt: 1, status: "starting", dispatcherId: "d1" },
        { taskId: b!.taskId, attempt: 1, status: "starting", dispatcherId: "d0" },
        { taskId: c!.taskId, attempt: 1, status: "starting", dispatcherId: "d1" },
      ].sort((x, y) => Number(x.taskId) - Number(y.taskId)),
    );
  });

  it("starts nothing of a cancelled workflow, and the rest of the batch as usual", async () => {
    const kept = await roots(["k1", "k2"]);
    const gone = await roots(["g1", "g2"]);
    expect(await store.cancelWorkflow(gone.id)).toBe(2);
    const batch = [gone.byName.g1!, kept.byName.k1!, gone.byName.g2!, kept.byName.k2!];
    const results = await store.startRuns(batch, "d1", "local");
    expect(results.map((r) => r.kind)).toEqual(["stale", "created", "stale", "created"]);
    expect(await runsOf([gone.byName.g1!.taskId, gone.byName.g2!.taskId])).toEqual([]);
  });

  it("admits by pool slots within one batch: the rest are parked, and nothing is held for them", async () => {
    await new PoolStore(m.db).set("two", 2);
    const w = await roots(["p1", "p2", "p3", "p4", "p5"], "two");
    const results = await store.startRuns(Object.values(w.byName), "d1", "local");
    expect(results.filter((r) => r.kind === "created")).toHaveLength(2);
    expect(results.filter((r) => r.kind === "stale")).toHaveLength(3);
    const [parked] = await m.db<{ n: number }[]>`
      select count(*)::int as n from dwop.tasks where workflow_id = ${w.id} and parked = 'pool'`;
    expect(parked!.n).toBe(3);
    expect((await new PoolStore(m.db).list()).find((p) => p.name === "two")).toMatchObject({
      running: 2,
      waiting: 3,
    });
  });

  it("admits by an owner's cap within one batch, giving a slot a duplicate did not use to the next task", async () => {
    const w = await roots(["c1", "c2", "c3", "c4", "c5"]);
    const batch = [w.byName.c1!, w.byName.c1!, w.byName.c2!, w.byName.c3!, w.byName.c4!, w.byName.c5!];
    const results = await store.startRuns(batch, "d1", "local", 2);
    expect(results.map((r) => r.kind)).toEqual([
      "created",
      "duplicate",
      "created",
      "stale",
      "stale",
      "stale",
    ]);
    const parked = await m.db<{ name: string; parked: string }[]>`
      select name, parked from dwop.tasks where workflow_id = ${w.id} and parked is not null order by name`;
    expect(parked).toEqual(["c3", "c4", "c5"].map((name) => ({ name, parked: "owner" })));
    const held = await m.db<{ slot: number }[]>`
      select r.owner_slot as slot from dwop.runs r where r.status = 'starting' order by r.owner_slot`;
    expect(held).toHaveLength(2);
    expect(new Set(held.map((h) => h.slot)).size).toBe(2);
  });

  it("never starts more than a pool's slots or an owner's cap while another dispatcher's batch holds them", async () => {
    await new PoolStore(m.db).set("three", 3);
    const w = await roots(
      Array.from({ length: 12 }, (_, i) => `t${i}`),
      "three",
    );
    const messages = Object.values(w.byName);
    const [first, second] = [connectDb(m.url, { max: 1 }), connectDb(m.url, { max: 1 })];
    let commit: () => void = () => {};
    let firstBatch: Promise<unknown> = Promise.resolve();
    try {
      // The first dispatcher's batch takes the owner's two slots and has not committed yet.
      const committed = new Promise<void>((resolve) => (commit = resolve));
      let taken!: () => void;
      const holding = new Promise<void>((resolve) => (taken = resolve));
      const batch = first.begin(async (tx) => {
        const rows = await tx`select * from dwop.start_runs(
          ${`{${messages
            .slice(0, 6)
            .map((x) => x.taskId)
            .join(",")}}`}::bigint[], '{1,1,1,1,1,1}'::int[],
          'd1', 'local', p_owner_max_running => 2)`;
        taken();
        await committed;
        return rows;
      });
      firstBatch = batch;
      await Promise.race([holding, batch]);
      // The second one's batch, tasks of its own: the slots it would need are taken, so it parks them
      // at once instead of waiting for the first (or, with the slots free as they look, taking them too).
      const second6 = new Store(second).startRuns(messages.slice(6), "d2", "local", 2);
      const answered = await Promise.race([
        second6,
        new Promise((r) => setTimeout(() => r("waited"), 10_000)),
      ]);
      expect(answered).not.toBe("waited");
      expect((answered as { kind: string }[]).filter((r) => r.kind === "created")).toHaveLength(0);
      commit();
      expect((await batch).filter((r) => r.created)).toHaveLength(2);
    } finally {
      commit();
      await firstBatch.catch(() => {});
      await Promise.all([first.end({ timeout: 5 }), second.end({ timeout: 5 })]);
    }
    expect(await runsOf(messages.map((x) => x.taskId))).toHaveLength(2);
  });

  it("creates one run per attempt when two dispatchers' batches share tasks in opposite orders", async () => {
    const names = Array.from({ length: 40 }, (_, i) => `t${i}`);
    const w = await roots(names);
    const messages = names.map((n) => w.byName[n]!);
    const dbs = [connectDb(m.url, { max: 1 }), connectDb(m.url, { max: 1 })];
    try {
      const [one, two] = await Promise.all([
        new Store(dbs[0]!).startRuns(messages, "d1", "local"),
        new Store(dbs[1]!).startRuns([...messages].reverse(), "d2", "local"),
      ]);
      const created = [...one!, ...two!].filter((r) => r.kind === "created");
      expect(created).toHaveLength(40);
      const duplicates = [...one!, ...two!].filter((r) => r.kind === "duplicate");
      expect(duplicates).toHaveLength(40);
    } finally {
      await Promise.all(dbs.map((d) => d.end()));
    }
    const runs = await runsOf(messages.map((x) => x.taskId));
    expect(runs).toHaveLength(40);
  });

  it("refuses arrays of different lengths with a clear error, changing nothing", async () => {
    const w = await roots(["a"]);
    await expect(
      m.db`select * from dwop.start_runs(${[w.byName.a!.taskId]}::bigint[], '{1,1}'::int[], 'd1', 'local')`,
    ).rejects.toMatchObject({ code: "22023", message: "start_runs: 1 task ids but 2 attempts" });
    expect(await runsOf([w.byName.a!.taskId])).toEqual([]);
  });
});

describe("mark_runs_dispatched", () => {
  it("marks the runs still starting, leaves out those that moved on, and marks local tasks running", async () => {
    const w = await roots(["a", "b", "c"]);
    const started = await store.startRuns(
      ["a", "b", "c"].map((n) => w.byName[n]!),
      "d1",
      "local",
    );
    const [a, b, c] = started.map((r) => (r.kind === "created" ? r.assignment.runId : ""));
    // b's run was lost meanwhile (reaped); a is given twice.
    expect(
      await store.increaseAttempt(b!, {
        reason: "lost",
        message: "gone",
        exitCode: null,
        logTail: null,
        nonRetryable: false,
      }),
    ).toBe("retried");
    const marked = await store.markRunsDispatched(
      [
        { runId: a!, jobName: "pid-1" },
        { runId: b!, jobName: "pid-2" },
        { runId: c!, jobName: "pid-3" },
        { runId: a!, jobName: "pid-1" },
      ],
      true,
    );
    expect(marked.sort()).toEqual([a, c].sort());
    const rows = await m.db<{ name: string; run: string; job: string | null; task: string }[]>`
      select t.name, r.status as run, r.job_name as job, t.status as task
      from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where r.workflow_id = ${w.id} and r.attempt = 1 order by t.name`;
    expect(rows).toEqual([
      { name: "a", run: "running", job: "pid-1", task: "running" },
      { name: "b", run: "lost", job: null, task: "queued" },
      { name: "c", run: "running", job: "pid-3", task: "running" },
    ]);
    // A second mark changes nothing.
    expect(await store.markRunsDispatched([{ runId: a!, jobName: "pid-9" }], true)).toEqual([]);
  });

  it("commits a local run's mark without waiting for the disk, a cluster run's as every other", async () => {
    const w = await roots(["a", "b"]);
    const [a, b] = (await store.startRuns([w.byName.a!, w.byName.b!], "d1", "local")).map((r) =>
      r.kind === "created" ? r.assignment.runId : "",
    );
    const commitOf = async (runId: string, started: boolean) => {
      const connection = await m.db.reserve();
      try {
        await connection`begin`;
        await connection`select dwop.mark_runs_dispatched(array[${runId}]::bigint[], array['job'], ${started})`;
        const [mark] = await connection<
          { value: string }[]
        >`select current_setting('synchronous_commit') as value`;
        await connection`commit`;
        // Its transaction's alone: the connection's next one waits for the disk again.
        const [after] = await connection<
          { value: string }[]
        >`select current_setting('synchronous_commit') as value`;
        return [mark!.value, after!.value];
      } finally {
        connection.release();
      }
    };
    expect(await commitOf(a!, true)).toEqual(["off", "on"]);
    expect(await commitOf(b!, false)).toEqual(["on", "on"]);
  });

  it("leaves a cluster run's task dispatched until its pod runs", async () => {
    const w = await roots(["a"]);
    const [r] = await store.startRuns([w.byName.a!], "d1", "kubernetes");
    const runId = r?.kind === "created" ? r.assignment.runId : "";
    expect(await store.markRunsDispatched([{ runId, jobName: "dwop-a-1" }], false)).toEqual([runId]);
    const [row] = await m.db<{ run: string; task: string }[]>`
      select r.status as run, t.status as task from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where r.id = ${runId}`;
    expect(row).toEqual({ run: "dispatched", task: "dispatched" });
  });
});

describe("a run that ends before its start is recorded", () => {
  // The end's transaction began before the mark's and waited for its row lock: its time is the earlier.
  const marked = "2026-12-05T10:00:00.050Z";
  const ended = "2026-12-05T10:00:00.020Z";

  async function startedAndMarked(names: string[]) {
    const w = await roots(names);
    const started = await store.startRuns(
      names.map((n) => w.byName[n]!),
      "d1",
      "local",
    );
    const ids = started.map((r) => (r.kind === "created" ? r.assignment.runId : ""));
    await m.db`select dwop.mark_runs_dispatched(${ids}::bigint[], ${ids.map((i) => `pid-${i}`)}::text[],
                                                true, ${marked}::timestamptz)`;
    return ids;
  }

  async function times(ids: string[]) {
    return m.db<
      { run: string; runStarted: Date; runFinished: Date; taskStarted: Date; taskFinished: Date }[]
    >`
      select r.status as run, r.started_at as "runStarted", r.finished_at as "runFinished",
             t.started_at as "taskStarted", t.finished_at as "taskFinished"
      from dwop.runs r join dwop.tasks t on t.id = r.task_id where r.id = any(${ids}::bigint[])`;
  }

  it("has its success end no earlier than its start", async () => {
    const ids = await startedAndMarked(["a", "b"]);
    await m.db`select dwop.complete_runs(${ids}::bigint[], ${ended}::timestamptz)`;
    const rows = await times(ids);
    expect(rows.map((r) => r.run)).toEqual(["succeeded", "succeeded"]);
    for (const r of rows) {
      expect(r.runStarted.toISOString()).toBe(marked);
      expect(r.runFinished.toISOString()).toBe(marked);
      expect(r.taskFinished.getTime()).toBeGreaterThanOrEqual(r.taskStarted.getTime());
    }
  });

  it("has its failure end no earlier than its start", async () => {
    const [id] = await startedAndMarked(["a"]);
    await m.db`select dwop.increase_attempt(${id!}::bigint, 'exit 3', 'exit_code', 3, null, true,
                                            ${ended}::timestamptz)`;
    const [row] = await times([id!]);
    expect(row).toMatchObject({ run: "failed" });
    expect(row!.runFinished.toISOString()).toBe(marked);
    expect(row!.taskFinished.toISOString()).toBe(marked);
  });
});

describe("a success's lock on its workflow", () => {
  /** Runs `work` in a transaction held open until the returned release() is called. */
  async function heldOpen(work: (sql: typeof m.db) => Promise<unknown>) {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const done = m.db.begin(async (sql) => {
      await work(sql as unknown as typeof m.db);
      entered();
      await released;
    });
    await Promise.race([inside, done]);
    return { release, done };
  }

  /** Resolves once a statement of this database waits for a row lock. */
  const someoneWaits = () =>
    until(async () => {
      const [row] = await m.db<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`;
      return row!.n > 0;
    }, 10_000);

  const lockWorkflow = (id: string) =>
    m.db`select id from dwop.workflows where id = ${id} for no key update nowait`;

  async function started(names: string[], messages: TaskMessage[]) {
    const rows = await m.db<{ id: string; name: string }[]>`
      select id, name from dwop.tasks where name = any(${names}::text[])`;
    const results = await store.startRuns(
      names.map((n) => messages.find((x) => x.taskId === rows.find((r) => r.name === n)!.id)!),
      "d1",
      "local",
    );
    return results.map((r) => (r.kind === "created" ? r.assignment.runId : ""));
  }

  it("is not taken while the task it counts down stays open; the last task's success takes it and ends the workflow", async () => {
    const s = submission([task("a"), task("b"), task("c", ["a", "b"])]);
    await store.submitWorkflow(s);
    const [runA, runB] = await started(["a", "b"], await drain());

    // a's success counts c down (still pending): the workflow's row stays free until a commits.
    const a = await heldOpen((sql) => sql`select dwop.complete_runs(${[runA!]}::bigint[])`);
    await expect(lockWorkflow(s.id)).resolves.toHaveLength(1);
    // b's success counts c down too: it waits for a's commit on c's row, then queues c once.
    const b = m.db`select dwop.complete_runs(${[runB!]}::bigint[])`.execute();
    await someoneWaits();
    a.release();
    await a.done;
    await b;
    const [c] = await m.db<{ status: string; pending: number }[]>`
      select status, pending_inputs as pending from dwop.tasks where workflow_id = ${s.id} and name = 'c'`;
    expect(c).toEqual({ status: "queued", pending: 0 });
    const queued = await drain();
    expect(queued).toHaveLength(1);

    // c has nothing downstream: its success takes the workflow's row and ends the workflow.
    const [runC] = await started(["c"], queued);
    const last = await heldOpen((sql) => sql`select dwop.complete_runs(${[runC!]}::bigint[])`);
    await expect(lockWorkflow(s.id)).rejects.toMatchObject({ code: "55P03" });
    last.release();
    await last.done;
    const [w] = await m.db<{ status: string }[]>`select status from dwop.workflows where id = ${s.id}`;
    expect(w!.status).toBe("succeeded");
  });

  it("ends the workflow when its last two tasks succeed at once in two transactions", async () => {
    const s = submission([task("a"), task("b")]);
    await store.submitWorkflow(s);
    const [runA, runB] = await started(["a", "b"], await drain());
    const a = await heldOpen((sql) => sql`select dwop.complete_runs(${[runA!]}::bigint[])`);
    const b = m.db`select dwop.complete_runs(${[runB!]}::bigint[])`.execute();
    await someoneWaits(); // for a's lock on the workflow's row
    a.release();
    await a.done;
    await b;
    const [w] = await m.db<{ status: string }[]>`select status from dwop.workflows where id = ${s.id}`;
    expect(w!.status).toBe("succeeded");
  });
});

describe("a success whose dispatch was never marked", () => {
  // A run that ends while its mark still waits for the batch before it: the dispatcher takes the mark back
  // and hands its job name to the success (migration 20261207000300).
  it.each([
    ["complete_runs", (ids: string[], jobs: (string | null)[]) => store.completeRuns(ids, jobs)],
    [
      "complete_runs_and_start",
      async (ids: string[], jobs: (string | null)[]) =>
        (await store.completeRunsAndStart(ids, "d1", "local", null, jobs)).completed,
    ],
  ])(
    "%s records its job name and its time as the dispatch; a marked run keeps its own",
    async (_, complete) => {
      const w = await roots(["a", "b"]);
      const [a, b] = (await store.startRuns([w.byName.a!, w.byName.b!], "d1", "local")).map((r) =>
        r.kind === "created" ? r.assignment.runId : "",
      );
      const markedAt = "2026-12-07T10:00:00.000Z";
      await m.db`select dwop.mark_runs_dispatched(array[${b!}]::bigint[], array['pid-2'], true, ${markedAt}::timestamptz)`;
      expect((await complete([a!, b!], ["pid-1", "pid-9"])).sort()).toEqual([a, b].sort());
      const rows = await m.db<
        {
          name: string;
          run: string;
          job: string;
          dispatched: Date;
          started: Date;
          finished: Date;
          task: string;
        }[]
      >`
      select t.name, r.status as run, r.job_name as job, r.dispatched_at as dispatched, r.started_at as started,
             r.finished_at as finished, t.status as task
      from dwop.runs r join dwop.tasks t on t.id = r.task_id where r.workflow_id = ${w.id} order by t.name`;
      expect(rows.map(({ name, run, job, task }) => ({ name, run, job, task }))).toEqual([
        { name: "a", run: "succeeded", job: "pid-1", task: "succeeded" },
        { name: "b", run: "succeeded", job: "pid-2", task: "succeeded" },
      ]);
      const [ra, rb] = rows;
      expect(ra!.dispatched.getTime()).toBe(ra!.finished.getTime());
      expect(ra!.started.getTime()).toBe(ra!.finished.getTime());
      expect(rb!.dispatched.toISOString()).toBe(markedAt);
    },
  );

  it("gets a dispatch time without a job name when the success came before its mark", async () => {
    const w = await roots(["a"]);
    const [r] = await store.startRuns([w.byName.a!], "d1", "local");
    const runId = r?.kind === "created" ? r.assignment.runId : "";
    expect(await store.completeRuns([runId])).toEqual([runId]);
    // The mark that arrives after it changes nothing.
    expect(await store.markRunsDispatched([{ runId, jobName: "pid-1" }], true)).toEqual([]);
    const [row] = await m.db<{ job: string | null; dispatched: Date | null; finished: Date }[]>`
      select job_name as job, dispatched_at as dispatched, finished_at as finished from dwop.runs where id = ${runId}`;
    expect(row!.job).toBeNull();
    expect(row!.dispatched?.getTime()).toBe(row!.finished.getTime());
  });
});
