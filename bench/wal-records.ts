// The write-ahead log a bench's database wrote between two LSNs, read with pg_waldump: per relation of
// that database and per record kind. pg_stat_wal counts the whole server (other databases, autovacuum):
// for the same code it moved between 39 and 85 records a task. Needs pg_waldump of the server's major
// version and read access to its pg_wal (a server on this machine, run as its owner or root).
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Sql } from "postgres";

const run = promisify(execFile);

/** Where and how to read the server's log, for one database. */
export interface WalReader {
  bin: string;
  dir: string;
  dbOid: number;
}

/** What was written: this database's records by kind ("Heap UPDATE tasks") and by relation. */
export interface WalTally {
  records: number;
  bytes: number;
  byKind: Map<string, { records: number; bytes: number }>;
  byRelation: Map<string, number>;
  /** Records naming no relation (commits and the like, of any database). */
  unattributed: number;
}

/** The reader for db's database; rejects saying what is missing when the log cannot be read here. */
export async function walReader(db: Sql): Promise<WalReader> {
  const [server] = await db<{ major: number; dir: string; oid: number }[]>`
    select current_setting('server_version_num')::int / 10000 as major,
           current_setting('data_directory') as dir,
           (select oid from pg_database where datname = current_database())::int as oid`;
  const { major, dir, oid } = server!;
  let bin: string | null = null;
  for (const candidate of [`/usr/lib/postgresql/${major}/bin/pg_waldump`, "pg_waldump"]) {
    if (
      await run(candidate, ["--version"]).then(
        () => true,
        () => false,
      )
    ) {
      bin = candidate;
      break;
    }
  }
  if (!bin) throw new Error(`pg_waldump of PostgreSQL ${major} not found (Debian: postgresql-${major})`);
  const walDir = join(dir, "pg_wal");
  await readdir(walDir).catch((err: Error) => {
    throw new Error(`cannot read ${walDir} (run as the server's owner or root): ${err.message}`);
  });
  return { bin, dir: walDir, dbOid: oid };
}

/** The current end of the log. */
export async function walPosition(db: Sql): Promise<string> {
  const [row] = await db<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  return row!.lsn;
}

/**
 * The records between two positions: read them before the database is dropped (a drop checkpoints, and
 * the log's segments are then recycled).
 */
export async function walBetween(db: Sql, reader: WalReader, from: string, to: string): Promise<WalTally> {
  const { stdout } = await run(reader.bin, ["-p", reader.dir, "-s", from, "-e", to], { maxBuffer: 1 << 30 });
  const rels = await db<{ node: number; name: string }[]>`
    select relfilenode::int as node, relname as name from pg_class where relfilenode <> 0`;
  const names = new Map(rels.map((r) => [r.node, r.name]));
  const tally: WalTally = { records: 0, bytes: 0, byKind: new Map(), byRelation: new Map(), unattributed: 0 };
  for (const line of stdout.split("\n")) {
    const m = /^rmgr: (\w+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+).*?desc: (\w+)/.exec(line);
    if (!m) continue;
    const ref = /rel \d+\/(\d+)\/(\d+)/.exec(line);
    if (!ref) {
      tally.unattributed += 1;
      continue;
    }
    if (Number(ref[1]) !== reader.dbOid) continue; // another database's
    const relation = names.get(Number(ref[2])) ?? `relfilenode ${ref[2]}`;
    const key = `${m[1]} ${m[3]} ${relation}`;
    const kind = tally.byKind.get(key) ?? { records: 0, bytes: 0 };
    kind.records += 1;
    kind.bytes += Number(m[2]);
    tally.byKind.set(key, kind);
    tally.byRelation.set(relation, (tally.byRelation.get(relation) ?? 0) + 1);
    tally.records += 1;
    tally.bytes += Number(m[2]);
  }
  return tally;
}
