// The database's writes of one task, record by record: a 2,000-task fan-out with a no-op executor run
// through `dwop api`, `dwop claimer` and one dispatcher process (as bench/throughput.ts --processes, on a
// database in use), and the write-ahead log between the round's first and last LSN read with
// pg_waldump (wal-records.ts), counted per task by resource manager, record type and relation of the
// bench's own database.
// Run: npx tsx bench/wal.ts [--tasks=2000] [--top=30]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deployNoop } from "./deployment.ts";
import { bringIntoUse, completedPerSecond, fanWorkflow } from "./stats.ts";
import { walBetween, walPosition, walReader } from "./wal-records.ts";

const n = Number(process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? 2000);
const top = Number(process.argv.find((a) => a.startsWith("--top="))?.slice(6) ?? 30);

const home = await mkdtemp(join(tmpdir(), "dwop-bench-wal-"));
const d = await deployNoop({ home, bus: "rabbit", dispatchers: 1 });
try {
  const db = d.m.db;
  const reader = await walReader(db);
  await bringIntoUse(async (source) => (await d.runTimed(source, "fan")).id, db);
  const from = await walPosition(db);
  const id = (await d.runTimed(fanWorkflow(n - 2), "fan")).id;
  const to = await walPosition(db);
  const rate = await completedPerSecond(db, id);
  const wal = await walBetween(db, reader, from, to);

  console.log(
    `a ${n}-task fan-out in use (${rate.toFixed(0)} tasks/s): ${(wal.records / n).toFixed(1)} WAL records ` +
      `(${(wal.bytes / n / 1024).toFixed(1)} kB) a task in its database, from ${from} to ${to}; ` +
      `${(wal.unattributed / n).toFixed(2)} a task name no relation (commits and the like, of any database)`,
  );
  // Relations written less than once in 20 tasks (sequences, TOAST, statistics) are left out.
  const relations = [...wal.byRelation].filter(([, c]) => c / n >= 0.05).sort((a, b) => b[1] - a[1]);
  console.log(`  by relation: ${relations.map(([r, c]) => `${r} ${(c / n).toFixed(2)}`).join(", ")}`);
  console.log("  a task's records by kind (records, bytes):");
  for (const [key, c] of [...wal.byKind].sort((a, b) => b[1].records - a[1].records).slice(0, top)) {
    console.log(
      `  ${(c.records / n).toFixed(2).padStart(6)} ${(c.bytes / n).toFixed(0).padStart(5)} B  ${key}`,
    );
  }
} finally {
  await d.stop("rabbit");
  await rm(home, { recursive: true, force: true });
}
process.exit(0);
