// The database's writes of one task, record by record: a 2,000-task fan-out with a no-op executor run
// through `dwop api`, `dwop claimer` and one dispatcher process (as bench/throughput.ts --processes, on a
// database in use), and the write-ahead log between the round's first and last LSN read with
// pg_waldump, counted per task by resource manager, record type and relation of the bench's database.
// bench/throughput.ts's "WAL records a task" reads pg_stat_wal, the whole server's (other databases,
// autovacuum): it moved between 40 and 85 for the same code. This counts only what the round wrote in
// its own database (plus the commits and the rest no relation names, shown apart).
// Needs pg_waldump of the server's major version and read access to its pg_wal (a server on this
// machine, run as its owner or root).
// Run: npx tsx bench/wal.ts [--tasks=2000] [--top=30]
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { deploy, ROOT } from "./deployment.ts";
import { bringIntoUse, completedPerSecond, fanWorkflow } from "./stats.ts";

const run = promisify(execFile);
const n = Number(process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? 2000);
const top = Number(process.argv.find((a) => a.startsWith("--top="))?.slice(6) ?? 30);

/** pg_waldump for the server's major version: on the PATH, or where Debian installs it. */
async function waldump(major: number): Promise<string> {
  for (const bin of [`/usr/lib/postgresql/${major}/bin/pg_waldump`, "pg_waldump"]) {
    try {
      await run(bin, ["--version"]);
      return bin;
    } catch {
      // not there: the next
    }
  }
  throw new Error(`pg_waldump of PostgreSQL ${major} not found (Debian: postgresql-${major})`);
}

/** Per-task counts and bytes by (rmgr, record type, relation) of one database, from pg_waldump's lines. */
function tally(lines: string, dbOid: number, names: Map<number, string>) {
  const counts = new Map<string, { records: number; bytes: number }>();
  const byRelation = new Map<string, number>();
  for (const line of lines.split("\n")) {
    const m = /^rmgr: (\w+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+).*?desc: (\w+)/.exec(line);
    if (!m) continue;
    const ref = /rel \d+\/(\d+)\/(\d+)/.exec(line);
    const relation = !ref
      ? "(no relation)"
      : Number(ref[1]) === dbOid
        ? (names.get(Number(ref[2])) ?? `relfilenode ${ref[2]}`)
        : "(other databases)";
    const key = `${m[1]} ${m[3]} ${relation}`;
    const c = counts.get(key) ?? { records: 0, bytes: 0 };
    c.records += 1;
    c.bytes += Number(m[2]);
    counts.set(key, c);
    byRelation.set(relation, (byRelation.get(relation) ?? 0) + 1);
  }
  return { counts, byRelation };
}

const home = await mkdtemp(join(tmpdir(), "dwop-bench-wal-"));
const d = await deploy({
  mode: "deployed",
  home,
  bus: "rabbit",
  sandbox: "off",
  dispatchers: 1,
  dispatcher: ["--import", "tsx", join(ROOT, "bench/noop-dispatcher.ts")],
  env: { DWOP_CONCURRENCY: "64", DWOP_CLAIM_BATCH: "500" },
});
try {
  const db = d.m.db;
  const [server] = await db<{ major: number; dir: string; oid: number }[]>`
    select current_setting('server_version_num')::int / 10000 as major,
           current_setting('data_directory') as dir,
           (select oid from pg_database where datname = current_database())::int as oid`;
  const bin = await waldump(server!.major);
  const walDir = join(server!.dir, "pg_wal");
  await readdir(walDir).catch((err: Error) => {
    throw new Error(`cannot read ${walDir} (run as the server's owner or root): ${err.message}`);
  });

  await bringIntoUse(async (source) => (await d.runTimed(source, "fan")).id, db);
  const [from] = await db<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  const id = (await d.runTimed(fanWorkflow(n - 2), "fan")).id;
  const [to] = await db<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  const rate = await completedPerSecond(db, id);
  // Read before the processes stop: dropping the database checkpoints, and the segments get recycled.
  const { stdout } = await run(bin, ["-p", walDir, "-s", from!.lsn, "-e", to!.lsn], {
    maxBuffer: 1 << 30,
  });
  const rels = await db<{ node: number; name: string }[]>`
    select relfilenode::int as node, relname as name from pg_class where relfilenode <> 0`;
  const { counts, byRelation } = tally(stdout, server!.oid, new Map(rels.map((r) => [r.node, r.name])));

  const records = [...counts.values()].reduce((s, c) => s + c.records, 0);
  const bytes = [...counts.values()].reduce((s, c) => s + c.bytes, 0);
  console.log(
    `a ${n}-task fan-out in use (${rate.toFixed(0)} tasks/s): ${(records / n).toFixed(1)} WAL records ` +
      `(${(bytes / n / 1024).toFixed(1)} kB) a task, from ${from!.lsn} to ${to!.lsn}`,
  );
  // Relations written less than once in 20 tasks (sequences, TOAST, statistics) are left out.
  const relations = [...byRelation].filter(([, c]) => c / n >= 0.05).sort((a, b) => b[1] - a[1]);
  console.log(`  by relation: ${relations.map(([r, c]) => `${r} ${(c / n).toFixed(2)}`).join(", ")}`);
  console.log("  a task's records by kind (records, bytes):");
  for (const [key, c] of [...counts].sort((a, b) => b[1].records - a[1].records).slice(0, top)) {
    console.log(
      `  ${(c.records / n).toFixed(2).padStart(6)} ${(c.bytes / n).toFixed(0).padStart(5)} B  ${key}`,
    );
  }
} finally {
  await d.stop("rabbit");
  await rm(home, { recursive: true, force: true });
}
process.exit(0);
