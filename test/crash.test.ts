import { spawn, type ChildProcess } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { Claimer } from "../cron/claimer.ts";
import { MIGRATION_LOCK } from "../shared/db/migrate.ts";
import { ADMIN_URL } from "./support/db.ts";
import { RABBIT_URL, startEngine, type Engine } from "./support/engine.ts";
import { testFolder } from "./support/test-folder.ts";
import { until } from "./support/until.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let engine: Engine | null = null;
const children: ChildProcess[] = [];
afterEach(async (ctx) => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

/** Starts `dispatcher/main.ts` as its own process, as a deployment would. */
function startDispatcherProcess(
  e: Engine,
  id: string | null,
  home: string,
  extraEnv: Record<string, string> = {},
): ChildProcess {
  const { DWOP_DISPATCHER_ID: _inherited, ...inherited } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", "dispatcher/main.ts"], {
    cwd: ROOT,
    env: {
      ...inherited,
      DATABASE_URL: e.m.url,
      RABBITMQ_CONNECTION_URL: RABBIT_URL,
      DWOP_QUEUE: e.queue,
      DWOP_PUBLIC_URL: e.storageUrl,
      DWOP_STORAGE_SECRET: e.storageSecret,
      DWOP_HOME: home,
      ...(id === null ? {} : { DWOP_DISPATCHER_ID: id }),
      DWOP_CONCURRENCY: "2",
      DWOP_LOG_LEVEL: "warn",
      ...extraEnv,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(child);
  return child;
}

async function runCounts(e: Engine, workflowId: string) {
  return e.m.db<{ name: string; runs: number; succeeded: number; lost: number }[]>`
    select t.name, count(r.id)::int as runs,
           count(r.id) filter (where r.status = 'succeeded')::int as succeeded,
           count(r.id) filter (where r.status = 'lost')::int as lost
    from dwop.tasks t left join dwop.runs r on r.task_id = t.id
    where t.workflow_id = ${workflowId} group by t.name order by t.name`;
}

describe("crashes", () => {
  it("finishes a workflow after its dispatcher is killed with SIGKILL and restarted, no task succeeding twice", async () => {
    engine = await startEngine("sigkill_dispatcher", { bus: "rabbit", dispatchers: 0 });
    const home = await testFolder("dwop-disp-");
    const chain = Array.from({ length: 6 }, (_, i) =>
      i === 0
        ? `fun t0():\n    import time; time.sleep(0.4); print(0)\n`
        : `fun t${i}(x:t${i - 1}):\n    import time; time.sleep(0.4); print(int(open("x").read()) + 1)\n`,
    ).join("\n");
    const first = startDispatcherProcess(engine, "fixed-dispatcher", home);
    const id = await engine.submit(chain);
    await until(async () => {
      const [row] = await engine!.m.db<{ n: number }[]>`
        select count(*)::int as n from dwop.tasks where workflow_id = ${id} and status = 'succeeded'`;
      return row!.n >= 2;
    }, 60_000);
    first.kill("SIGKILL");
    await new Promise((r) => first.once("exit", r));
    startDispatcherProcess(engine, "fixed-dispatcher", home);
    const w = await engine.waitFor(id, 90_000);
    expect(w.status).toBe("succeeded");
    expect(await engine.output(id, "t5")).toBe("5\n");
    const counts = await runCounts(engine, id);
    expect(counts.every((c) => c.succeeded === 1)).toBe(true);
    expect(counts.reduce((n, c) => n + c.lost, 0)).toBeLessThanOrEqual(2);
  });

  it("starts when its database drops and refuses its connections after it first answered", async () => {
    engine = await startEngine("refused_start", { bus: "rabbit", dispatchers: 0 });
    const e = engine;
    const home = await testFolder("dwop-disp-");
    // The dispatcher's migrations wait for this lock: it has passed its wait for the database by then.
    const holder = await e.m.db.reserve();
    await holder`select pg_advisory_lock(${MIGRATION_LOCK})`;
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    let exited: number | null = null;
    try {
      const child = startDispatcherProcess(e, "refused-dispatcher", home);
      child.once("exit", (code) => (exited = code ?? -1));
      const app = "dwop-dispatcher:refused-dispatcher";
      await until(async () => {
        const [row] = await e.m.db<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where datname = ${e.m.name} and application_name = ${app} and wait_event_type = 'Lock'`;
        return row!.n > 0;
      }, 60_000);
      await admin.unsafe(`alter database "${e.m.name}" allow_connections false`);
      await admin`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = ${e.m.name} and application_name = ${app}`;
      await holder`select pg_advisory_unlock(${MIGRATION_LOCK})`;
      await new Promise((r) => setTimeout(r, 1500));
      expect(exited).toBeNull();
      await admin.unsafe(`alter database "${e.m.name}" allow_connections true`);
      const id = await e.submit("fun a():\n    print('a')\n");
      expect((await e.waitFor(id, 60_000)).status).toBe("succeeded");
      expect(exited).toBeNull();
    } finally {
      holder.release();
      await admin.unsafe(`alter database "${e.m.name}" allow_connections true`);
      await admin.end();
    }
  }, 120_000);

  it("retries at once the runs of a dead dispatcher of the same machine, under the default ids", async () => {
    engine = await startEngine("dead_neighbour", { bus: "rabbit", dispatchers: 0 });
    const home = await testFolder("dwop-disp-");
    // Heartbeats would take ten minutes to go stale: only seeing the dead process can retry the run.
    const slow = { DWOP_LOST_AFTER_SECONDS: "600" };
    const first = startDispatcherProcess(engine, null, home, slow);
    const id = await engine.submit("fun slow():\n    import time; time.sleep(1.5); print('done')\n");
    await until(async () => (await runCounts(engine!, id))[0]!.runs === 1, 60_000);
    first.kill("SIGKILL");
    await new Promise((r) => first.once("exit", r));
    // Rows every earlier `dwop run` of a home left: pids above pid_max are never alive. Ids name their
    // pid's namespace (older ones do not); another namespace's pid is not this one's to judge (a container
    // run with the machine's hostname).
    const host = hostname();
    const ns = (await stat("/proc/self/ns/pid")).ino;
    const pidMax = Number((await readFile("/proc/sys/kernel/pid_max", "utf8")).trim());
    const gone = [
      ...Array.from({ length: 30 }, (_, i) => `${host}-${pidMax + 1 + i}-gone`),
      `${host}-${pidMax + 31}-n${ns}`,
      `${host}-${pidMax + 32}-n${ns}-ab12`,
    ];
    const kept = [
      `elsewhere-${pidMax + 1}`,
      `${host}-${pidMax + 1}-cluster`,
      `${host}-${pidMax + 33}-n1-ab12`,
    ];
    await engine.m.db`
      insert into dwop.dispatchers (id, executor)
      select id, case when id like '%-cluster' then 'kubernetes' else 'local' end
      from unnest(${[...gone, ...kept]}::text[]) as u (id)`;
    const second = startDispatcherProcess(engine, null, home, slow);
    expect((await engine.waitFor(id, 60_000)).status).toBe("succeeded");
    expect(await runCounts(engine, id)).toEqual([{ name: "slow", runs: 2, succeeded: 1, lost: 1 }]);
    // The dead ones' rows went (the first dispatcher's too); the live one's, another machine's, another
    // pid namespace's and a cluster dispatcher's stay.
    const rows = await engine.m.db<{ id: string }[]>`select id from dwop.dispatchers order by id`;
    expect(rows.map((r) => r.id).sort()).toEqual([...kept, `${host}-${second.pid}-n${ns}`].sort());
  }, 150_000);

  it("publishes a dead claimer's rows once after its lease runs out", async () => {
    engine = await startEngine("dead_claimer", { bus: "rabbit", claimers: 0 });
    const id = await engine.submit("fun a():\n    print('a')\n\nfun b():\n    print('b')\n");
    const stolen = await engine.m.store.claimOutbox("dead-claimer", 100, 1);
    expect(stolen).toHaveLength(2);
    const claimer = new Claimer(engine.m.store, await engine.newBus(), {
      id: "live-claimer",
      batchSize: 100,
      leaseSeconds: 30,
      pollMs: 100,
    });
    await claimer.start();
    try {
      expect((await engine.waitFor(id)).status).toBe("succeeded");
    } finally {
      await claimer.stop();
    }
    const rows = await engine.m.db<{ claimed_by: string; claim_count: number; published: boolean }[]>`
      select claimed_by, claim_count, published_at is not null as published from dwop.outbox order by id`;
    expect(rows).toEqual([
      { claimed_by: "live-claimer", claim_count: 2, published: true },
      { claimed_by: "live-claimer", claim_count: 2, published: true },
    ]);
    expect((await runCounts(engine, id)).map((c) => c.runs)).toEqual([1, 1]);
  });

  it("runs a 500-task workflow with two claimers and two dispatchers, each task succeeding once", async () => {
    engine = await startEngine("two_by_two", { bus: "rabbit", claimers: 2, dispatchers: 2, concurrency: 6 });
    const middle = Array.from({ length: 498 }, (_, i) => `fun m${i}(x:root):\n    print(${i})\n`);
    const sink = `fun sink(${Array.from({ length: 498 }, (_, i) => `p${i}:m${i}`).join(", ")}):\n    print("done")\n`;
    const id = await engine.submit(["fun root():\n    print('go')\n", ...middle, sink].join("\n"));
    const w = await engine.waitFor(id, 280_000);
    expect(w.status).toBe("succeeded");
    const counts = await runCounts(engine, id);
    expect(counts).toHaveLength(500);
    expect(counts.filter((c) => c.runs !== 1 || c.succeeded !== 1)).toEqual([]);
  }, 300_000);

  it("on SIGTERM stops consuming, lets the running task finish within the grace period, and exits 0", async () => {
    engine = await startEngine("sigterm_drain", { bus: "rabbit", dispatchers: 0 });
    const home = await testFolder("dwop-disp-");
    const child = startDispatcherProcess(engine, "draining", home, { DWOP_SHUTDOWN_GRACE_SECONDS: "10" });
    const id = await engine.submit(
      "fun slow():\n    import time; time.sleep(1.5); print('done')\n\nfun next(x:slow):\n    print('next')\n",
    );
    await until(
      async () => (await engine!.m.store.workflowSummary(id))?.tasks[0]?.status === "running",
      60_000,
    );
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const w = await engine.m.store.workflowSummary(id);
    expect(w?.tasks.map((t) => [t.name, t.status])).toEqual([
      ["slow", "succeeded"],
      ["next", "queued"],
    ]);
    startDispatcherProcess(engine, "after-drain", home);
    expect((await engine.waitFor(id)).status).toBe("succeeded");
  });

  it.each([
    ["its dispatcher stores", ""],
    // Past the executor's inline limit (64 KiB) an output goes by the worker's own signed URL, as every
    // output of a Kubernetes pod does: the late worker can store it whatever its dispatcher decides.
    ["its worker uploads", ` ${"x".repeat(100000)}`],
  ])(
    "keeps the output of the attempt that replaced a run declared lost, which ends after it (an output %s)",
    async (_how, tail) => {
      // A dispatcher paused or cut off for DWOP_LOST_AFTER_SECONDS is dead to the others, which retry its
      // runs; its worker goes on. Here the reaper's verdict comes from the test, and no heartbeat of the
      // dispatcher's (an hour apart) stops the worker before it ends: it ends after the retry succeeded.
      engine = await startEngine(`run_declared_lost_${tail.length}`, {
        bus: "rabbit",
        heartbeatSeconds: 3600,
      });
      const id = await engine.submit(
        "fun t():\n    import os, time\n    attempt = os.environ['DWOP_ATTEMPT']\n" +
          `    time.sleep(3 if attempt == '1' else 0)\n    print('attempt', attempt, end='')\n    print(${JSON.stringify(tail)})\n`,
      );
      await until(
        async () => (await engine!.m.store.workflowSummary(id))?.tasks[0]?.status === "running",
        60_000,
      );
      await engine.m.db`select dwop.reap_lost_runs(0)`;
      expect((await engine.waitFor(id)).status).toBe("succeeded");
      const kept = `attempt 2${tail}\n`;
      expect(await engine.output(id, "t")).toBe(kept);
      // Attempt 1's worker ends (3 s) and its dispatcher reads its result: it must not replace attempt 2's.
      await new Promise((r) => setTimeout(r, 4000));
      expect(await engine.output(id, "t")).toBe(kept);
      expect(await runCounts(engine, id)).toEqual([{ name: "t", runs: 2, succeeded: 1, lost: 1 }]);
    },
  );

  it("records a task still running when the grace period ends as lost, and another dispatcher reruns it", async () => {
    engine = await startEngine("sigterm_grace_over", { bus: "rabbit", dispatchers: 0 });
    const home = await testFolder("dwop-disp-");
    const child = startDispatcherProcess(engine, "impatient", home, { DWOP_SHUTDOWN_GRACE_SECONDS: "0" });
    const id = await engine.submit("fun slow():\n    import time; time.sleep(2); print('done')\n");
    await until(
      async () => (await engine!.m.store.workflowSummary(id))?.tasks[0]?.status === "running",
      60_000,
    );
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    startDispatcherProcess(engine, "successor", home);
    expect((await engine.waitFor(id)).status).toBe("succeeded");
    const runs = await engine.m.db<{ attempt: number; status: string; failure_reason: string | null }[]>`
      select attempt, status, failure_reason from dwop.runs order by attempt`;
    expect(runs).toEqual([
      { attempt: 1, status: "lost", failure_reason: "lost" },
      { attempt: 2, status: "succeeded", failure_reason: null },
    ]);
  });
});
