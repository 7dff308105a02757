import { createHash, randomBytes } from "node:crypto";
import postgres from "postgres";
import { connectDb } from "../../shared/db/connect.ts";
import { migrate, readMigrations } from "../../shared/db/migrate.ts";

// Any constant works; only test processes take it, around the template's making.
const TEMPLATE_LOCK = 0x6477_7470;

let made: Promise<string> | null = null;

/**
 * The name of a database with every migration of this checkout applied, made once per set of migration
 * files on the machine (its name carries their hash) and marked a template: tests clone it with
 * CREATE DATABASE ... TEMPLATE instead of running every migration again (a copy of files, not 16
 * migrations). Another checkout with other migrations gets a template of its own.
 */
export function migratedTemplate(adminUrl: string): Promise<string> {
  made ??= makeTemplate(adminUrl).catch((err: unknown) => {
    made = null;
    throw err;
  });
  return made;
}

async function makeTemplate(adminUrl: string): Promise<string> {
  const migrations = await readMigrations();
  const hash = createHash("sha256");
  for (const m of migrations) hash.update(`${m.version}\0${m.name}\0${m.sql}\0`);
  const name = `dwop_template_${hash.digest("hex").slice(0, 16)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const conn = await admin.reserve();
    try {
      // Several test files start at once: one makes the template, the others wait for it here.
      await conn`select pg_advisory_lock(${TEMPLATE_LOCK})`;
      try {
        const [exists] = await conn`select 1 from pg_database where datname = ${name} and datistemplate`;
        if (!exists) await build(conn, adminUrl, name);
      } finally {
        await conn`select pg_advisory_unlock(${TEMPLATE_LOCK})`;
      }
    } finally {
      conn.release();
    }
  } finally {
    await admin.end();
  }
  return name;
}

/** Migrates a database of its own, then renames it to the template's name: a half-made one is never used. */
async function build(admin: postgres.ReservedSql, adminUrl: string, name: string): Promise<void> {
  const building = `${name}_building_${randomBytes(3).toString("hex")}`;
  await admin.unsafe(`create database "${building}"`);
  const db = connectDb(adminUrl.replace(/\/[^/?]*(\?|$)/, `/${building}$1`), { max: 1 });
  try {
    await migrate(db);
  } finally {
    await db.end({ timeout: 5 });
  }
  await admin.unsafe(`alter database "${building}" rename to "${name}"`);
  await admin.unsafe(`alter database "${name}" is_template true allow_connections false`);
}
