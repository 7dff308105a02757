// Orchestration throughput: a 2,000-task fan-out with a no-op executor (no Python), completed tasks per
// second, beside this machine's Postgres commit rate measured in the same run. Each is printed three times:
// on a fresh database by processes that just started ("cold"); on a fresh database again (its tables
// emptied, never analyzed) by the same processes once they have run a 2,000-task workflow ("warm"); and on
// a database in use (a workflow run through it and ANALYZE taken, see bringIntoUse). Cold against warm is
// the processes' start (V8 compiling the hot paths, new connections and backends); warm against in use is
// the database's state. The round in use is run --in-use=N times (3 unless given) through the same
// processes, and its median printed with each: this machine's speed moves by a quarter within minutes.
// By default the claimer and the dispatchers run in this process (test/support/engine.ts); with
// --processes, as deployed: `dwop api` (the workflow submitted over HTTP), `dwop claimer` and each
// dispatcher a process of its own (bench/noop-dispatcher.ts: the real dispatcher with the no-op executor).
// Run: npx tsx bench/throughput.ts [--bus=rabbit|pgboss] [--tasks=2000] [--dispatchers=1,2] [--rounds=1]
//                                  [--in-use=3] [--processes [--cpu-prof=DIR]]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { deployNoop, NOOP_SETTINGS } from "./deployment.ts";
import { walBetween, walReader } from "./wal-records.ts";
import { NoopExecutor } from "./noop-executor.ts";
import { startEngine } from "../test/support/engine.ts";
import {
  bringIntoUse,
  busesFromArgs,
  completedPerSecond,
  cpuSeconds,
  fanWorkflow,
  machineCpu,
  percentile,
  pidsNamed,
  sum,
  writesLine,
  writesSoFar,
} from "./stats.ts";

const n = Number(process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? 2000);
const dispatcherCounts = (process.argv.find((a) => a.startsWith("--dispatchers="))?.slice(14) ?? "2")
  .split(",")
  .map(Number);
const rounds = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 1);
const inUseRounds = Number(process.argv.find((a) => a.startsWith("--in-use="))?.slice(9) ?? 3);
const processes = process.argv.includes("--processes");
/** --cpu-prof=DIR (with --processes): each process writes a V8 CPU profile there when it stops. */
const cpuProf = process.argv.find((a) => a.startsWith("--cpu-prof="))?.slice(11);

/** What the three measurements need of a deployment: a workflow run to its end, its database. */
interface Target {
  run(source: string): Promise<string>;
  db: postgres.Sql;
  url: string;
  stop(): Promise<void>;
  /** CPU seconds so far of each part that uses some (as deployed only). */
  cpu?(): Promise<Map<string, number>>;
}

/** The claimer and dispatchers in this process (test/support/engine.ts). */
async function inProcess(bus: "rabbit" | "pgboss", dispatchers: number): Promise<Target> {
  const engine = await startEngine(`bench_tp_${bus}`, {
    bus,
    concurrency: NOOP_SETTINGS.concurrency,
    dispatchers,
    claimers: 1,
    claimBatch: NOOP_SETTINGS.claimBatch,
    executor: () => new NoopExecutor(),
  });
  return {
    run: async (source) => {
      const id = await engine.submit(source);
      await engine.waitFor(id, 600_000);
      return id;
    },
    db: engine.m.db,
    url: engine.m.url,
    stop: () => engine.stop(true),
  };
}

/** `dwop api`, `dwop claimer` and the dispatchers as processes of their own. */
async function asDeployed(bus: "rabbit" | "pgboss", dispatchers: number, home: string): Promise<Target> {
  const d = await deployNoop({ home, bus, dispatchers, cpuProf });
  return {
    run: async (source) => (await d.runTimed(source, "fan")).id,
    db: d.m.db,
    url: d.m.url,
    stop: () => d.stop(bus),
    cpu: async () => {
      const parts = d.cpuByProcess();
      parts.set("Postgres backends", (await d.cpu()).postgres);
      if (bus === "rabbit") parts.set("RabbitMQ", sum(pidsNamed("beam.smp").map((pid) => cpuSeconds(pid))));
      parts.set("the machine", machineCpu().busy);
      return parts;
    },
  };
}

/** One rate, or the median (nearest rank) of several with each (in the order run). */
function rateText(rates: number[]): string {
  const median = percentile(rates, 50);
  if (rates.length === 1) return median.toFixed(0);
  return `${median.toFixed(0)} (median of ${rates.map((r) => r.toFixed(0)).join(", ")})`;
}

/** CPU ms a task of each part between two readings, and how busy the cores were over `seconds`. */
function cpuLine(
  before: Map<string, number>,
  after: Map<string, number>,
  tasks: number,
  seconds: number,
): string {
  const parts = [...after].map(
    ([name, s]) => `${name} ${(((s - before.get(name)!) * 1000) / tasks).toFixed(3)}`,
  );
  const busy = (after.get("the machine")! - before.get("the machine")!) / (seconds * machineCpu().cores);
  return `  in use, CPU ms a task: ${parts.join(", ")} (its cores ${(busy * 100).toFixed(0)} % busy)`;
}

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

const home = await mkdtemp(join(tmpdir(), "dwop-bench-throughput-"));
try {
  for (let round = 0; round < rounds; round++) {
    for (const bus of busesFromArgs()) {
      for (const dispatchers of dispatcherCounts) {
        const target = processes
          ? await asDeployed(bus, dispatchers, home)
          : await inProcess(bus, dispatchers);
        try {
          const commits = await commitRate(target.url);
          const rates: string[] = [];
          let split = "";
          let writes = "";
          for (const state of ["cold", "warm", "in use"]) {
            if (state === "warm") {
              await target.run(fanWorkflow(n - 2));
              await target.db`truncate dwop.workflows cascade`;
            }
            if (state === "in use") await bringIntoUse(target.run, target.db);
            const times = state === "in use" ? inUseRounds : 1;
            const written = state === "in use" ? await writesSoFar(target.db) : null;
            const reader = written ? await walReader(target.db).catch(() => null) : null;
            const before = await target.cpu?.();
            const t0 = performance.now();
            const each: number[] = [];
            for (let i = 0; i < times; i++) {
              const id = await target.run(fanWorkflow(n - 2));
              each.push(await completedPerSecond(target.db, id));
            }
            const seconds = (performance.now() - t0) / 1000;
            if (before) split = cpuLine(before, await target.cpu!(), n * times, seconds);
            if (written) {
              const after = await writesSoFar(target.db);
              const wal = reader && (await walBetween(target.db, reader, written.lsn, after.lsn));
              writes = `  in use, ${writesLine(written, after, n * times, wal)}`;
            }
            rates.push(`${state} ${rateText(each)}`);
          }
          console.log(
            `${bus.padEnd(7)} ${dispatchers} dispatcher(s)${processes ? " (processes)" : ""}, ${n} tasks: ` +
              `${rates.join(", ")} tasks/s (Postgres here: ${commits.toFixed(0)} single-row commits/s over 8 connections)`,
          );
          if (split) console.log(split);
          console.log(writes);
        } finally {
          await target.stop();
        }
      }
    }
  }
} finally {
  await rm(home, { recursive: true, force: true });
}
process.exit(0);
