import postgres from "postgres";
import { afterEach, expect, it } from "vitest";
import { connectDb, waitForDatabase, type Db } from "../shared/db/connect.ts";
import { isTransient } from "../shared/db/retry.ts";
import { ADMIN_URL, createTestDatabase, type TestDatabase } from "./support/db.ts";

/** A process that starts while its database refuses connections waits for it instead of dying. */

const open: Db[] = [];
let database: TestDatabase | undefined;
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.end({ timeout: 1 })));
  await database?.drop();
});

function quietLog() {
  const warnings: string[] = [];
  return { warnings, warn: (_obj: object, msg?: string) => void warnings.push(msg ?? "") };
}

/**
 * Runs `fn` with a pool of one on a fresh database that refuses connections; `allow()` lets them in again,
 * as the end does whatever happened.
 */
async function whileRefused(label: string, fn: (db: Db, allow: () => Promise<unknown>) => Promise<void>) {
  database = await createTestDatabase(label);
  const name = database.name;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const allow = () => admin.unsafe(`alter database "${name}" allow_connections true`);
  try {
    await admin.unsafe(`alter database "${name}" allow_connections false`);
    const db = connectDb(database.url, { max: 1 });
    open.push(db);
    await fn(db, allow);
  } finally {
    await allow();
    await admin.end();
  }
}

it("waits while the database refuses connections, and goes on once it answers", async () => {
  await whileRefused("wait_for_db", async (db, allow) => {
    const log = quietLog();
    const waited = waitForDatabase(db, log, 30_000);
    await new Promise((r) => setTimeout(r, 1200));
    expect(log.warnings.length).toBeGreaterThan(0);
    await allow();
    await waited;
    expect(await db`select 1 as one`).toEqual([{ one: 1 }]);
  });
});

it("fails at once for a database that does not exist, and after the timeout for one that never answers", async () => {
  const missing = connectDb(ADMIN_URL.replace(/\/[^/?]*$/, "/dwop_no_such_database"), { max: 1 });
  open.push(missing);
  const t0 = Date.now();
  await expect(waitForDatabase(missing, quietLog(), 30_000)).rejects.toMatchObject({ code: "3D000" });
  expect(Date.now() - t0).toBeLessThan(5_000);
  const closed = connectDb("postgres://postgres@127.0.0.1:1/none", { max: 1 });
  open.push(closed);
  const log = quietLog();
  await expect(waitForDatabase(closed, log, 1_000)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  expect(log.warnings.length).toBeGreaterThan(1);
});

it("takes a database that does not accept connections for now as transient, and not an error of that code", async () => {
  await whileRefused("refusing_db", async (db) => {
    const refused = await db`select 1`.then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ code: "55000", severity: "FATAL" });
    expect(isTransient(refused)).toBe(true);
    // The same code from a statement (an object in the wrong state) is that statement's own failure.
    expect(isTransient({ code: "55000", severity: "ERROR" })).toBe(false);
  });
});
