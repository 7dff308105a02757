import { readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import type { Db } from "../../shared/db/connect.ts";

/**
 * "Nothing was written": a fingerprint of every table of the dwop schema (row count and a digest of
 * every row, so an UPDATE shows too) and of every file under a storage root (path and size). Two equal
 * fingerprints mean a request changed nothing a client or a worker could see.
 */
export interface StateProbe {
  fingerprint(): Promise<Fingerprint>;
}

export interface Fingerprint {
  /** table -> "count:md5" */
  tables: Record<string, string>;
  /** relative path -> size */
  files: Record<string, number>;
}

/** A probe of the database's dwop tables and of the files under `storageRoot`. */
export async function stateProbe(db: Db, storageRoot: string): Promise<StateProbe> {
  const rows = await db<{ name: string }[]>`
    select table_name as name from information_schema.tables
    where table_schema = 'dwop' and table_type = 'BASE TABLE' order by table_name`;
  const names = rows.map((r) => r.name);
  if (!names.includes("workflows") || !names.includes("outbox")) throw new Error("dwop schema not migrated");
  // Table names come from the catalog and are quoted; one statement reads them all.
  const query = names
    .map(
      (n) =>
        `select '${n}' as name, count(*) || ':' || md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as sum ` +
        `from dwop."${n.replace(/"/g, '""')}" t`,
    )
    .join(" union all ");
  return {
    async fingerprint() {
      const sums = await db.unsafe<{ name: string; sum: string }[]>(query);
      return {
        tables: Object.fromEntries(sums.map((s) => [s.name, s.sum])),
        files: await listFiles(storageRoot),
      };
    },
  };
}

/** The files under `root` alone, for storage without a database. */
export async function filesFingerprint(root: string): Promise<Fingerprint> {
  return { tables: {}, files: await listFiles(root) };
}

async function listFiles(root: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else out[relative(root, path)] = (await stat(path)).size;
    }
  };
  await walk(root);
  return out;
}

/** What differs between two fingerprints, for a failure message; "" when nothing does. */
export function fingerprintDiff(before: Fingerprint, after: Fingerprint): string {
  const lines: string[] = [];
  for (const t of new Set([...Object.keys(before.tables), ...Object.keys(after.tables)])) {
    if (before.tables[t] !== after.tables[t])
      lines.push(`table ${t}: ${before.tables[t]} -> ${after.tables[t]}`);
  }
  for (const f of new Set([...Object.keys(before.files), ...Object.keys(after.files)])) {
    if (before.files[f] !== after.files[f]) lines.push(`file ${f}: ${before.files[f]} -> ${after.files[f]}`);
  }
  return lines.join("\n");
}
