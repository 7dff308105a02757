import { join } from "node:path";
import postgres from "postgres";
import { afterEach, expect, it } from "vitest";
import { Dispatcher } from "../dispatcher/dispatcher.ts";
import { connectDb, retryWhileStarting } from "../shared/db/connect.ts";
import { silentLogger } from "../shared/log.ts";
import { Store } from "../shared/db/store.ts";
import { LocalExecutor } from "../shared/executors/local.ts";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import { ADMIN_URL } from "./support/db.ts";
import { startEngine, type Engine } from "./support/engine.ts";
import { recordingLogger } from "./support/recording-logger.ts";
import { until } from "./support/until.ts";

/**
 * Found by the soak: a cancellation NOTIFY arriving while the database dropped the dispatcher's pool
 * connections made the dispatcher look up its cancelled runs from the listener callback, whose rejection
 * nobody handled, and Node stopped the process (killing every run it held). Here the same: the pool's
 * backends terminated and the database refusing new connections, the listener's connection kept, a
 * NOTIFY sent. The dispatcher must carry on, and finish the run once the database is back.
 */

let engine: Engine | undefined;
let passed = false;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  process.off("unhandledRejection", onUnhandled);
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await engine?.stop(passed);
  unhandled.length = 0;
  passed = false;
});

it("keeps running when a cancellation notice comes while the database refuses connections", async () => {
  process.on("unhandledRejection", onUnhandled);
  const log = recordingLogger();
  engine = await startEngine("dispatcher_outage", { bus: "pgboss", concurrency: 2, logger: log.logger });
  const { m } = engine;
  const id = await engine.submit(`fun slow():\n    import time\n    time.sleep(3)\n    print("done")\n`);
  const deadline = Date.now() + 30_000;
  while ((await m.db`select 1 from dwop.runs where status = 'running'`).length === 0) {
    if (Date.now() > deadline) throw new Error("the run did not start");
    await new Promise((r) => setTimeout(r, 50));
  }

  // A connection of our own for the NOTIFY, opened before the database closes its doors.
  const notifier = postgres(m.url, { max: 1, onnotice: () => {} });
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    const [own] = await notifier<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await admin.unsafe(`alter database "${m.name}" allow_connections false`);
    // Every backend but ours and the listeners' (LISTEN is the last thing they ran).
    await admin`
      select pg_terminate_backend(pid) from pg_stat_activity
      where datname = ${m.name} and pid <> ${own!.pid} and query not ilike 'listen%'`;
    await notifier`select pg_notify('dwop_cancel', ${id})`;
    // The dispatcher looks for the cancelled runs, and fails to.
    const looked = "could not look for cancelled runs; the next heartbeat looks again";
    await until(
      async () => log.count(looked) > 0,
      30_000,
      () => JSON.stringify(log.entries.slice(-5)),
    );
  } finally {
    await admin.unsafe(`alter database "${m.name}" allow_connections true`);
    await Promise.all([admin.end(), notifier.end()]);
  }

  expect(unhandled).toEqual([]);
  const done = await engine.waitFor(id, 60_000);
  expect(done.status).toBe("succeeded");
  expect(await engine.output(id, "slow")).toBe("done\n");
  passed = true;
}, 120_000);

it("fails its start, and starts when asked again, when the database refuses the cancel listener's connection", async () => {
  // Found by the soak: a dispatcher restarted while the database refused connections crashed (exit 1)
  // on its listener's refused connection, rejected while its registration was still under way.
  process.on("unhandledRejection", onUnhandled);
  engine = await startEngine("dispatcher_start_refused", { bus: "rabbit", dispatchers: 0 });
  const { m } = engine;
  const executor = new LocalExecutor({
    python: await resolvePython(),
    workerScript: WORKER_SCRIPT,
    workRoot: join(engine.storageRoot, "runs-refused"),
  });
  cleanups.push(() => executor.close());
  // A pool of its own, as a dispatcher process has: no listener connection open yet.
  const db = connectDb(m.url);
  cleanups.push(() => db.end());
  const dispatcher = new Dispatcher(new Store(db), await engine.newBus(), executor, engine.storage, {
    id: "refused",
    concurrency: 2,
    heartbeatSeconds: 1,
    lostAfterSeconds: 10,
    shutdownGraceSeconds: 5,
    signedUrlTtlSeconds: 300,
    // Registered by the process (as `dwop dispatcher` does), slowly: the listener is refused first.
    registration: new Promise((r) => setTimeout(r, 500)),
  });
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  cleanups.push(() => admin.end());
  await admin.unsafe(`alter database "${m.name}" allow_connections false`);
  try {
    await expect(dispatcher.start()).rejects.toThrow(/not currently accepting connections/);
  } finally {
    await admin.unsafe(`alter database "${m.name}" allow_connections true`);
  }
  expect(unhandled).toEqual([]);
  // Asked again as `dwop dispatcher` does: postgres.js keeps the refused LISTEN's result until its own
  // retry of it succeeds, so a start just after the database is back may fail once more.
  await retryWhileStarting("the dispatcher's start", () => dispatcher.start(), silentLogger, 30_000);
  cleanups.push(() => dispatcher.stop());
  const id = await engine.submit('fun t():\n    print("after")\n');
  expect((await engine.waitFor(id, 60_000)).status).toBe("succeeded");
  passed = true;
}, 120_000);
