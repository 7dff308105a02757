import postgres from "postgres";
import { afterEach, expect, it } from "vitest";
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

afterEach(async () => {
  process.off("unhandledRejection", onUnhandled);
  await engine?.stop(passed);
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
