// Pools and fair share (issue 14): dispatch throughput of a 2,000-task fan-out with a no-op executor,
// with pools, fair share and an owner cap off and on, and how long owner B's single task waits behind
// owner A's 2,000 ready ones (B's task queued -> its run created), off and on.
// "On": every task in one pool (256 slots, more than the dispatchers hold, so it admits without
// limiting), DWOP_OWNER_MAX_RUNNING 1000 (checked on every start, never reached), DWOP_BUS_BACKLOG 100.
// Run: npx tsx bench/fairness.ts [--bus=rabbit|pgboss] [--tasks=2000] [--rounds=1] [--on=pool,cap,backlog]
// [--only=throughput] [--in-use]; --on picks which parts "on" turns on (default all three); --in-use
// measures the throughput on a database in use (bringIntoUse) instead of a fresh one.
import { NoopExecutor } from "./noop-executor.ts";
import { PoolStore } from "../shared/db/pool-store.ts";
import { startEngine, type BusKind } from "../test/support/engine.ts";
import { bringIntoUse, busesFromArgs, completedPerSecond, fanWorkflow } from "./stats.ts";

const n = Number(process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? 2000);
const rounds = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 1);
const parts = (process.argv.find((a) => a.startsWith("--on="))?.slice(5) ?? "pool,cap,backlog").split(",");
const onlyThroughput = process.argv.includes("--only=throughput");
const inUse = process.argv.includes("--in-use");

function engineFor(label: string, bus: BusKind, on: boolean) {
  return startEngine(label, {
    bus,
    concurrency: 64,
    dispatchers: 2,
    claimers: 1,
    claimBatch: 500,
    executor: () => new NoopExecutor(),
    ...(on && parts.includes("backlog") ? { busBacklog: 100 } : {}),
    ...(on && parts.includes("cap") ? { ownerMaxRunning: 1000 } : {}),
  });
}

/**
 * Completed tasks per second of an n-task fan-out, and how many times a task was parked (queued again by
 * reoffer_parked_tasks: its pool or its owner had no free slot when its message came).
 */
async function throughput(bus: BusKind, on: boolean): Promise<{ rate: number; parked: number }> {
  const engine = await engineFor(`bench_fair_tp_${bus}_${on}`, bus, on);
  try {
    const pooled = on && parts.includes("pool");
    const inPool = (source: string) => (pooled ? source.replace(/^fun /gm, '@pool("bench")\nfun ') : source);
    if (pooled) await new PoolStore(engine.m.db).set("bench", 256);
    const run = async (source: string) => engine.waitFor(await engine.submit(source), 600_000);
    if (inUse) await bringIntoUse(run, engine.m.db, inPool(fanWorkflow(1000)));
    const source = inPool(fanWorkflow(n - 2));
    const id = await engine.submit(source);
    await engine.waitFor(id, 600_000);
    const [offers] = await engine.m.db<{ n: number }[]>`
      select count(*)::int as n from dwop.outbox o where o.topic = 'task.ready'
        and (o.payload ->> 'taskId')::bigint in (select t.id from dwop.tasks t where t.workflow_id = ${id})`;
    const [tasks] = await engine.m.db<{ n: number }[]>`
      select count(*)::int as n from dwop.tasks t where t.workflow_id = ${id}`;
    return { rate: await completedPerSecond(engine.m.db, id), parked: offers!.n - tasks!.n };
  } finally {
    await engine.stop(true);
  }
}

/** Seconds from B's task being queued to its run being created, with A's n roots submitted just before. */
async function waitOfB(bus: BusKind, on: boolean): Promise<{ wait: number; ahead: number }> {
  const engine = await engineFor(`bench_fair_b_${bus}_${on}`, bus, on);
  try {
    const many = Array.from({ length: n }, (_, i) => `fun a${i}():\n    pass\n`).join("\n");
    const a = await engine.submit(many, { owner: "alice" });
    const b = await engine.submit("fun b():\n    pass\n", { owner: "bob" });
    await engine.waitFor(b, 600_000);
    await engine.waitFor(a, 600_000);
    const [row] = await engine.m.db<{ wait: number; ahead: number }[]>`
      select extract(epoch from r.created_at - t.queued_at)::float8 as wait,
             (select count(*)::int from dwop.runs x where x.workflow_id = ${a} and x.created_at < r.created_at) as ahead
      from dwop.runs r join dwop.tasks t on t.id = r.task_id where r.workflow_id = ${b}`;
    return row!;
  } finally {
    await engine.stop(true);
  }
}

for (const bus of busesFromArgs()) {
  for (let round = 0; round < rounds; round++) {
    // Interleaved, so a change of load hits both.
    const { rate: off } = await throughput(bus, false);
    const { rate: on, parked } = await throughput(bus, true);
    const parkedNote = parked > 0 ? ` (${parked} parked and offered again)` : "";
    if (onlyThroughput) {
      console.log(
        `${bus.padEnd(7)} off ${off.toFixed(0)} tasks/s, on (${parts}) ${on.toFixed(0)} tasks/s${parkedNote}`,
      );
      continue;
    }
    const bOff = await waitOfB(bus, false);
    const bOn = await waitOfB(bus, true);
    console.log(
      `${bus.padEnd(7)} ${n}-task fan-out: off ${off.toFixed(0)} tasks/s, on ${on.toFixed(0)} tasks/s${parkedNote} ` +
        `(${((on / off - 1) * 100).toFixed(1)}%); owner B's task behind A's ${n}: ` +
        `off waited ${bOff.wait.toFixed(2)} s (${bOff.ahead} of A's ran first), ` +
        `on ${bOn.wait.toFixed(2)} s (${bOn.ahead} first)`,
    );
  }
}
process.exit(0);
