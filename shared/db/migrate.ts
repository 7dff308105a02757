import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Db } from "./connect.ts";

/** Where the numbered migrations live: the same files `supabase db push` applies. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../supabase/migrations/", import.meta.url));

// Any constant works; it only has to be the same in every DWOP process.
const MIGRATION_LOCK = 0x6477_6f70;

export interface Migration {
  version: string;
  name: string;
  sql: string;
}

/** Reads `<version>_<name>.sql` files in version order. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_[\w-]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const [, version = "", name = ""] = /^(\d+)_(.+)\.sql$/.exec(file) ?? [];
      return { version, name, sql: await readFile(`${dir}/${file}`, "utf8") };
    }),
  );
}

/**
 * Applies the migrations not yet applied, each in its own transaction, under a session advisory lock so
 * that many processes starting at once apply each migration exactly once. Migrations applied by
 * `supabase db push` (recorded in supabase_migrations.schema_migrations) count as applied.
 * Returns the versions this call applied.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? (await readMigrations());
  const conn = await db.reserve();
  try {
    await conn`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await conn`create table if not exists public.dwop_schema_migrations (
        version text primary key, name text not null, applied_at timestamptz not null default now())`;
      const applied = new Set(await appliedVersions(conn));
      const done: string[] = [];
      for (const m of all) {
        if (applied.has(m.version)) continue;
        // A reserved connection has no begin(); the transaction is spelled out on it.
        await conn`begin`;
        try {
          await conn.unsafe(m.sql);
          await conn`insert into public.dwop_schema_migrations (version, name) values (${m.version}, ${m.name})`;
          await conn`commit`;
        } catch (err) {
          await conn`rollback`;
          throw err;
        }
        done.push(m.version);
      }
      return done;
    } finally {
      await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } finally {
    conn.release();
  }
}

async function appliedVersions(conn: Db): Promise<string[]> {
  const ours = await conn<{ version: string }[]>`select version from public.dwop_schema_migrations`;
  const [supabase] = await conn<{ present: boolean }[]>`
    select to_regclass('supabase_migrations.schema_migrations') is not null as present`;
  const theirs = supabase?.present
    ? await conn<{ version: string }[]>`select version from supabase_migrations.schema_migrations`
    : [];
  return [...ours, ...theirs].map((r) => r.version);
}
