import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Sql } from "postgres";
import { bundleIsFresh } from "../bin/bundle.js";
import type { WalTally } from "./wal-records.ts";

/**
 * Throws unless dist/ was built from the sources as they are: `dwop` would otherwise run the sources
 * through tsx, and a benchmark would measure that instead of what a user runs (a second more to start, a
 * slower API), with nothing on its output to say so.
 */
export function requireFreshBundle(): void {
  if (!bundleIsFresh()) {
    throw new Error("dist/ is older than the sources: run `npm run build` first (see bench/README.md)");
  }
}

/** The sum of a list of numbers. */
export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** The p-th percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * How long making a small file takes in `folder`, as the local storage makes each object it stores: a
 * new file written, then renamed into a folder (`made`, in `folder`); the median of `files`, in ms. The
 * files stay: on a file system without a journal, ext4 passes over every inode freed in the last ~30 s
 * when it picks one for a new file, so a folder near many files just removed makes each new one slowly
 * (0.5-0.7 ms on 2026-12-05's machine, 0.04 elsewhere), and removing these would slow what runs next.
 */
export function fileCreationMs(folder: string, files = 30): number {
  mkdirSync(join(folder, "made"), { recursive: true });
  const times: number[] = [];
  for (let i = 0; i < files; i++) {
    const start = performance.now();
    writeFileSync(join(folder, `bench-${i}.part`), "x", { flag: "wx" });
    renameSync(join(folder, `bench-${i}.part`), join(folder, "made", String(i)));
    times.push(performance.now() - start);
  }
  return percentile(times, 50);
}

/** A chain workflow `t0 -> t1 -> ... -> t(n-1)` of trivial tasks. */
export function chainWorkflow(n: number, body = "print(1)"): string {
  return Array.from({ length: n }, (_, i) =>
    i === 0 ? `fun t0():\n    ${body}\n` : `fun t${i}(x:t${i - 1}):\n    ${body}\n`,
  ).join("\n");
}

/** A fan-out `root -> n tasks -> sink`. */
export function fanWorkflow(n: number): string {
  const middle = Array.from({ length: n }, (_, i) => `fun m${i}(x:root):\n    pass\n`);
  const sink = `fun sink(${Array.from({ length: n }, (_, i) => `p${i}:m${i}`).join(", ")}):\n    pass\n`;
  return ["fun root():\n    pass\n", ...middle, sink].join("\n");
}

/**
 * Completed tasks per second of workflow `id`: its succeeded runs over the span from the first run created
 * to the last one finished (the database's timestamps).
 */
export async function completedPerSecond(db: Sql, id: string): Promise<number> {
  const [span] = await db<{ first: Date; last: Date; done: number }[]>`
    select min(r.created_at) as first, max(r.finished_at) as last, count(*)::int as done
    from dwop.runs r where r.workflow_id = ${id} and r.status = 'succeeded'`;
  return span!.done / ((span!.last.getTime() - span!.first.getTime()) / 1000);
}

/**
 * Brings a fresh engine's database into the state of one in use: a workflow (by default a 1,000-task
 * fan-out) run through it, then ANALYZE, as autovacuum does on a database in use. Its statistics are then
 * taken while the queue is empty, which is what exposed the plans that walked a whole partial index of
 * open rows for each row.
 */
export async function bringIntoUse(
  run: (source: string) => Promise<unknown>,
  db: Sql,
  source = fanWorkflow(1000),
): Promise<void> {
  await run(source);
  await db`analyze`;
}

export function busesFromArgs(): ("rabbit" | "pgboss")[] {
  const arg = process.argv.find((a) => a.startsWith("--bus="));
  return arg ? [arg.slice(6) as "rabbit" | "pgboss"] : ["rabbit", "pgboss"];
}

/**
 * CPU seconds a process has used (user + system), from /proc; with `reaped`, also those of the children
 * it has waited for (and theirs). 0 once it is gone.
 */
export function cpuSeconds(pid: number, reaped = false): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime, stime, cutime, cstime: clock ticks of 1/100 s
    const ticks = fields.slice(11, reaped ? 15 : 13).reduce((sum, t) => sum + Number(t), 0);
    return ticks / 100;
  } catch {
    return 0;
  }
}

/**
 * Minor page faults a process has taken (pages it touched first, or copied after a fork), from /proc; 0
 * once it is gone. In a paravirtualized guest each costs 25-45 us, so a figure that grows memory counts them.
 */
export function minorFaults(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[7]);
  } catch {
    return 0;
  }
}

/**
 * Seconds of CPU the whole machine has used (every process and the kernel's own threads; /proc/stat's
 * first line but idle and iowait) and its number of cores: busy seconds between two readings over the
 * wall time between them and the cores is how busy it was.
 */
export function machineCpu(): { busy: number; cores: number } {
  const lines = readFileSync("/proc/stat", "utf8").split("\n");
  const [, ...ticks] = lines[0]!.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is counted in user already)
  const busy = ticks.slice(0, 8).reduce((sum, t, i) => (i === 3 || i === 4 ? sum : sum + t), 0);
  return { busy: busy / 100, cores: lines.filter((l) => /^cpu\d/.test(l)).length };
}

/** The pids of the processes whose command name (/proc/PID/comm) is `comm`, as `beam.smp` for RabbitMQ. */
export function pidsNamed(comm: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === comm;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The pids of a process's children, from /proc; none once it is gone. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** What the database has written so far: WAL records and bytes (the whole server's) and the log's end, and
 * updates of dwop's busiest tables, how many of them heap-only ("HOT": the row rewritten in its page, no
 * index touched). */
export interface Writes {
  walRecords: number;
  walBytes: number;
  lsn: string;
  updates: Map<string, { all: number; hot: number }>;
}

/** Writes as the statistics hold them once every backend has reported (an idle one within a second). */
export async function writesSoFar(db: Sql): Promise<Writes> {
  await new Promise((r) => setTimeout(r, 1500));
  const [wal] = await db<{ records: number; bytes: number; lsn: string }[]>`
    select wal_records::float8 as records, wal_bytes::float8 as bytes, pg_current_wal_lsn()::text as lsn
    from pg_stat_wal`;
  const tables = await db<{ name: string; all: number; hot: number }[]>`
    select relname as name, n_tup_upd::float8 as all, n_tup_hot_upd::float8 as hot from pg_stat_user_tables
    where schemaname = 'dwop' and relname in ('tasks', 'runs', 'outbox') order by relname desc`;
  return {
    walRecords: wal!.records,
    walBytes: wal!.bytes,
    lsn: wal!.lsn,
    updates: new Map(tables.map((t) => [t.name, { all: t.all, hot: t.hot }])),
  };
}

/**
 * `57 WAL records (6.1 kB) a task in its database; HOT updates: tasks 38 %, ...` between two readings:
 * the records of `wal` (the database's own, read with pg_waldump) when given, else pg_stat_wal's, the
 * whole server's, and said so.
 */
export function writesLine(before: Writes, after: Writes, tasks: number, wal?: WalTally | null): string {
  const hot = [...after.updates].map(([name, a]) => {
    const b = before.updates.get(name) ?? { all: 0, hot: 0 };
    return `${name} ${(((a.hot - b.hot) / Math.max(1, a.all - b.all)) * 100).toFixed(0)} %`;
  });
  const [records, bytes, whose] = wal
    ? [wal.records, wal.bytes, "in its database (pg_waldump)"]
    : [
        after.walRecords - before.walRecords,
        after.walBytes - before.walBytes,
        "on the whole server (pg_stat_wal)",
      ];
  const kb = bytes / tasks / 1024;
  return `${(records / tasks).toFixed(0)} WAL records (${kb.toFixed(1)} kB) a task ${whose}; HOT updates: ${hot.join(", ")}`;
}
