import postgres from "postgres";
import { randomBytes } from "node:crypto";
import { migratedTemplate } from "./template.ts";

/** The machine's PostgreSQL, used as the admin connection that creates and drops test databases. */
export const ADMIN_URL = process.env.DWOP_TEST_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  name: string;
  url: string;
  /** Drops the database; call it only when the test passed, so a failure leaves its evidence. */
  drop(): Promise<void>;
}

/**
 * Creates a database named after the test (plus a random suffix), so tests run in parallel and a failed
 * test's state can be inspected afterwards with `psql <url>`: empty, or with `migrated`, a clone of the
 * migrated template (every migration applied, as DWOP's runner leaves it).
 */
export async function createTestDatabase(
  label: string,
  options: { migrated?: boolean } = {},
): Promise<TestDatabase> {
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 40);
  const name = `dwop_t_${slug}_${randomBytes(3).toString("hex")}`;
  const template = options.migrated ? await migratedTemplate(ADMIN_URL) : null;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(
      template ? `create database "${name}" template "${template}"` : `create database "${name}"`,
    );
  } finally {
    await admin.end();
  }
  const url = ADMIN_URL.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);
  return {
    name,
    url,
    async drop() {
      const a = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
