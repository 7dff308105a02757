import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Db } from "./connect.ts";
import { connectionLost } from "./retry.ts";

/** Where the numbered migrations live: the same files `supabase db push` applies. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../supabase/migrations/", import.meta.url));

// Any constant works; it only has to be the same in every DWOP process.
export const MIGRATION_LOCK = 0x6477_6f70;

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
 * that many processes starting at once apply each migration exactly once. The ledger is the Supabase
 * CLI's own, supabase_migrations.schema_migrations (made here when the CLI has not made it): a migration
 * `supabase db push` applied counts as applied here, and one applied here is one the CLI will not apply
 * again, in either order. Returns the versions this call applied.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? (await readMigrations());
  const conn = await db.reserve();
  try {
    await conn`select pg_advisory_lock(${MIGRATION_LOCK})`;
    let done: string[];
    try {
      done = await applyPending(conn, all);
    } catch (err) {
      // Nothing more is sent on a connection that was lost: its session, and the lock with it, ended, and
      // a reserved connection is not replaced, so an unlock sent there would only fail in the place of the
      // error that tells what happened.
      if (!connectionLost(err)) await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`;
      throw err;
    }
    await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    return done;
  } finally {
    conn.release();
  }
}

/** Applies, on the locked connection, each migration the ledger does not list, each in its transaction. */
async function applyPending(conn: Db, all: Migration[]): Promise<string[]> {
  await conn`create schema if not exists supabase_migrations`;
  await conn`create table if not exists supabase_migrations.schema_migrations (
    version text not null primary key, statements text[], name text)`;
  await adoptOwnLedger(conn);
  const rows = await conn<{ version: string }[]>`select version from supabase_migrations.schema_migrations`;
  const applied = new Set(rows.map((r) => r.version));
  const done: string[] = [];
  for (const m of all) {
    if (applied.has(m.version)) continue;
    // A reserved connection has no begin(); the transaction is spelled out on it.
    await conn`begin`;
    try {
      await conn.unsafe(m.sql);
      await conn`insert into supabase_migrations.schema_migrations (version, name, statements)
        values (${m.version}, ${m.name}, ${[m.sql]})`;
      await conn`commit`;
    } catch (err) {
      if (!connectionLost(err)) await conn`rollback`;
      throw err;
    }
    done.push(m.version);
  }
  return done;
}

/**
 * DWOP once kept a ledger of its own (public.dwop_schema_migrations), which the CLI did not read: the
 * versions recorded there move to the shared ledger (migration 20261204000400 then drops the table).
 */
async function adoptOwnLedger(conn: Db): Promise<void> {
  const [own] = await conn<{ present: boolean }[]>`
    select to_regclass('public.dwop_schema_migrations') is not null as present`;
  if (!own?.present) return;
  await conn`insert into supabase_migrations.schema_migrations (version, name)
    select version, name from public.dwop_schema_migrations on conflict (version) do nothing`;
}
