// `npm run schema:dump [admin-url]`: rewrites supabase/schema.sql, the schema the migrations make, so a
// reviewer reads one file instead of replaying every migration in their head. test/schema.dump.test.ts
// fails when the committed file is stale.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import postgres from "postgres";
import { connectDb } from "../shared/db/connect.ts";
import { migrate } from "../shared/db/migrate.ts";

export const SCHEMA_FILE = fileURLToPath(new URL("./schema.sql", import.meta.url));

const DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";

const HEADER = `-- DWOP's schema as supabase/migrations/ leave it: \`pg_dump --schema-only --no-owner -n dwop\` of a
-- database freshly migrated by DWOP's runner (shared/db/migrate.ts), less pg_dump's \\restrict lines
-- (a random token per run). Made by \`npm run schema:dump\` (supabase/schema-dump.ts); do not edit by
-- hand: change the schema with a migration, then regenerate this file. test/schema.dump.test.ts fails
-- when it differs from a fresh dump.

`;

const run = promisify(execFile);

/**
 * Makes a database of its own on the server of `adminUrl`, applies every migration, and answers its
 * schema as schema.sql holds it. The database is dropped afterwards.
 */
export async function dumpMigratedSchema(adminUrl: string): Promise<string> {
  const name = `dwop_schema_dump_${randomBytes(4).toString("hex")}`;
  const url = adminUrl.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
    try {
      const db = connectDb(url, { max: 1 });
      try {
        await migrate(db);
      } finally {
        await db.end({ timeout: 5 });
      }
      const { stdout } = await run(
        "pg_dump",
        ["--schema-only", "--no-owner", "-n", "dwop", `--dbname=${url}`],
        {
          maxBuffer: 64 * 1024 * 1024,
        },
      );
      return HEADER + normaliseDump(stdout);
    } finally {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
    }
  } finally {
    await admin.end();
  }
}

/**
 * pg_dump 15.14 and later open and close a dump with `\restrict <key>` / `\unrestrict <key>`, a key drawn
 * at random each run: the only part of the output that changes between two dumps of one schema.
 */
export function normaliseDump(dump: string): string {
  return dump.replace(/^\\(un)?restrict .*\n/gm, "");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(SCHEMA_FILE, await dumpMigratedSchema(process.argv[2] ?? DEFAULT_ADMIN_URL));
  console.log(`wrote ${SCHEMA_FILE}`);
}
