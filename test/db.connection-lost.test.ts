import postgres from "postgres";
import { afterEach, expect, it } from "vitest";
import { connectDb, type Db } from "../shared/db/connect.ts";
import { isTransient, retryTransient } from "../shared/db/retry.ts";
import { ADMIN_URL, createTestDatabase, type TestDatabase } from "./support/db.ts";
import { fatalErrorResponse } from "./support/pg-wire.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";

/**
 * A connection lost in the middle of a statement (its backend terminated: a failover, an operator, a
 * pooler restarting) fails that statement with a transient error, and the process and its pool go on.
 * postgres.js 3.4.9 instead threw an uncaught TypeError out of a setImmediate (the process ended) or left
 * queries waiting forever; scripts/patch-postgres.mjs repairs it at install.
 */

let database: TestDatabase | undefined;
const open: Db[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.end({ timeout: 1 })));
  await database?.drop();
  database = undefined;
});

async function setUp(label: string) {
  database = await createTestDatabase(label);
  const db = connectDb(database.url, { max: 4, applicationName: `test:${label}` });
  open.push(db);
  await db`select 1`;
  return db;
}

/** Terminates the backend once it runs `pg_sleep` (the statement in flight). */
async function terminateSleeper(name: string): Promise<void> {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    for (let i = 0; i < 200; i++) {
      const [row] = await admin<{ n: number }[]>`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
        where datname = ${name} and query like 'select pg_sleep%' and pid <> pg_backend_pid()`;
      if (row!.n > 0) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error("the statement never started");
  } finally {
    await admin.end();
  }
}

/** Rejects when `p` has not settled within `ms`: a hang fails the test instead of stalling it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

it("fails a transaction whose connection is lost mid-statement with a transient error, and goes on", async () => {
  const db = await setUp("lost_in_tx");
  const tx = db
    .begin((sql) => sql`select pg_sleep(30)`)
    .then(
      () => null,
      (e: unknown) => e,
    );
  await terminateSleeper(database!.name);
  const err = await within(tx, 10_000, "the transaction");
  expect(isTransient(err)).toBe(true);
  // The pool replaces the connection: the next statements and transactions run.
  expect(await within(db`select 1 as x`, 10_000, "the next query")).toEqual([{ x: 1 }]);
  expect(await db.begin((sql) => sql`select 2 as x`)).toEqual([{ x: 2 }]);
  await within(db.end(), 10_000, "closing the pool");
  open.splice(open.indexOf(db), 1);
});

it("fails a statement whose backend is terminated with that error, and the next one on the connection runs", async () => {
  database = await createTestDatabase("lost_statement");
  // One connection: the next query is the one the pool reconnects, where the lost statement's error was
  // kept and given to it (57P01 again, though its backend was new).
  const db = connectDb(database.url, { max: 1, applicationName: "test:lost_statement" });
  open.push(db);
  await db`select 1`;
  const sleeping = db`select pg_sleep(30)`.then(
    () => null,
    (e: unknown) => e,
  );
  await terminateSleeper(database.name);
  expect(await within(sleeping, 10_000, "the statement")).toMatchObject({ code: "57P01" });
  expect(await within(db`select 4 as x`, 10_000, "the next query")).toEqual([{ x: 4 }]);
});

it("fails the next statement on a reserved connection that was lost, and the pool goes on", async () => {
  const db = await setUp("lost_reserved");
  const reserved = await db.reserve();
  // A query is sent when it is awaited or given a handler (postgres.js queries are lazy).
  const sleeping = reserved`select pg_sleep(30)`.then(
    () => null,
    (e: unknown) => e,
  );
  await terminateSleeper(database!.name);
  const first = await within(sleeping, 10_000, "the statement");
  expect(isTransient(first)).toBe(true);
  // Its session is gone: what is sent on it now fails at once rather than never being answered.
  const next = await within(
    reserved`select 1`.then(
      () => null,
      (e: unknown) => e,
    ),
    10_000,
    "the next one",
  );
  expect(isTransient(next)).toBe(true);
  reserved.release();
  const answer = await within(
    retryTransient(() => db`select 3 as x`),
    10_000,
    "the pool's next query",
  );
  expect(answer).toEqual([{ x: 3 }]);
  await within(db.end(), 10_000, "closing the pool");
  open.splice(open.indexOf(db), 1);
});

it("fails the first query of a connection whose array-type query is cut by its backend's end, and goes on", async () => {
  // The first thing postgres.js asks a new connection is its array types; a backend terminated at that
  // moment (a failover, pg_terminate_backend) left that failure an unhandled rejection, which ends the
  // process (porsager/postgres#1223: `dwop api` died so in a chaos soak). This proxy answers that question
  // of the first connection as pg_terminate_backend does, and passes every later connection through.
  database = await createTestDatabase("lost_types");
  const target = new URL(database.url);
  let answered = false;
  const proxy = new TcpProxy(target.hostname, Number(target.port), (chunk, client, upstream) => {
    if (answered || !chunk.includes("pg_catalog.pg_type")) return false;
    answered = true;
    client.end(fatalErrorResponse("57P01", "terminating connection due to administrator command"));
    upstream.destroy();
    return true;
  });
  await proxy.start();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    const url = new URL(database.url);
    url.port = String(proxy.port);
    const db = connectDb(url.toString(), { max: 1, applicationName: "test:lost_types" });
    open.push(db);
    const first = await within(
      db`select 1 as x`.then(
        () => null,
        (e: unknown) => e,
      ),
      10_000,
      "the first query",
    );
    expect(answered).toBe(true);
    expect(isTransient(first)).toBe(true); // the backend's end, or the connection ended for it
    // The next connection asks again: arrays come back as arrays.
    expect(await within(db`select array[1, 2]::int[] as a`, 10_000, "the next query")).toEqual([
      { a: [1, 2] },
    ]);
    await new Promise((r) => setTimeout(r, 100)); // a rejection left unhandled is reported after a tick
    expect(unhandled).toEqual([]);
  } finally {
    process.off("unhandledRejection", onUnhandled);
    await proxy.cut();
  }
});
