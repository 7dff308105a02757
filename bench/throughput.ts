// Orchestration throughput: a 2,000-task fan-out with a no-op executor (no Python), completed tasks per
// second, beside this machine's Postgres commit rate measured in the same run. Each is printed three times:
// on a fresh database by processes that just started ("cold"); on a fresh database again (its tables
// emptied, never analyzed) by the same processes once they have run a 2,000-task workflow ("warm"); and on
// a database in use (a workflow run through it and ANALYZE taken, see bringIntoUse). Cold against warm is
// the processes' start (V8 compiling the hot paths, new connections and backends); warm against in use is
// the database's state.
// Run: npx tsx bench/throughput.ts [--bus=rabbit|pgboss] [--tasks=2000] [--dispatchers=1,2] [--rounds=1]
import postgres from "postgres";
import { NoopExecutor } from "./noop-executor.ts";
import { startEngine } from "../test/support/engine.ts";
import { bringIntoUse, busesFromArgs, completedPerSecond, fanWorkflow } from "./stats.ts";

const n = Number(process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? 2000);
const dispatcherCounts = (process.argv.find((a) => a.startsWith("--dispatchers="))?.slice(14) ?? "2")
  .split(",")
  .map(Number);
const rounds = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 1);

/** Single-row insert transactions per second over 8 connections for 2 s: what fsync allows here. */
async function commitRate(url: string): Promise<number> {
  const sql = postgres(url, { max: 8, onnotice: () => {} });
  await sql`create table if not exists bench_commits (id bigserial primary key, at timestamptz default now())`;
  let commits = 0;
  const end = Date.now() + 2000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (Date.now() < end) {
        await sql`insert into bench_commits default values`;
        commits += 1;
      }
    }),
  );
  await sql`drop table bench_commits`;
  await sql.end();
  return commits / 2;
}

for (let round = 0; round < rounds; round++) {
  for (const bus of busesFromArgs()) {
    for (const dispatchers of dispatcherCounts) {
      const engine = await startEngine(`bench_tp_${bus}`, {
        bus,
        concurrency: 64,
        dispatchers,
        claimers: 1,
        claimBatch: 500,
        executor: () => new NoopExecutor(),
      });
      try {
        const commits = await commitRate(engine.m.url);
        const rates: string[] = [];
        for (const state of ["cold", "warm", "in use"]) {
          if (state === "warm") {
            await engine.waitFor(await engine.submit(fanWorkflow(n - 2)), 600_000);
            await engine.m.db`truncate dwop.workflows cascade`;
          }
          if (state === "in use") await bringIntoUse(engine);
          const id = await engine.submit(fanWorkflow(n - 2));
          await engine.waitFor(id, 600_000);
          rates.push(`${state} ${(await completedPerSecond(engine.m.db, id)).toFixed(0)}`);
        }
        console.log(
          `${bus.padEnd(7)} ${dispatchers} dispatcher(s), ${n} tasks: ${rates.join(", ")} tasks/s ` +
            `(Postgres here: ${commits.toFixed(0)} single-row commits/s over 8 connections)`,
        );
      } finally {
        await engine.stop(true);
      }
    }
  }
}
process.exit(0);
