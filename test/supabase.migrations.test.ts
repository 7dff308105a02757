import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { connectDb, type Db } from "../shared/db/connect.ts";
import { migrate, readMigrations } from "../shared/db/migrate.ts";
import { Store } from "../shared/db/store.ts";
import { createTestDatabase } from "./support/db.ts";
import { submission, task } from "./support/factory.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

describe("supabase db push", () => {
  it("applies every migration to an empty database, and DWOP's runner then finds nothing to apply", async () => {
    const tdb = await createTestDatabase("supabase db push");
    expect(await push(tdb.url)).toContain("Finished supabase db push.");

    const db = connectDb(tdb.url, { max: 2 });
    try {
      const recorded = await db<{ version: string }[]>`
        select version from supabase_migrations.schema_migrations order by version`;
      expect(recorded.map((r) => r.version)).toEqual((await readMigrations()).map((m) => m.version));
      expect(await migrate(db)).toEqual([]);
      // The schema is whole: a workflow can be submitted into it.
      await submit(db, "someone");
    } finally {
      await db.end();
    }
    await tdb.drop();
  });

  it("applies nothing to a database DWOP migrated, nor what DWOP applied after a push", async () => {
    const tdb = await createTestDatabase("dwop then push");
    const all = await readMigrations();
    const db = connectDb(tdb.url, { max: 2 });
    try {
      // DWOP first, as a process started before the CLI was run; then the CLI; then DWOP's newer files.
      expect(await migrate(db, all.slice(0, -2))).toEqual(all.slice(0, -2).map((m) => m.version));
      const pushed = await push(tdb.url);
      expect(pushed).not.toContain(`Applying migration ${all.at(-3)!.version}`);
      expect(pushed).toContain(`Applying migration ${all.at(-2)!.version}`);
      expect(pushed).toContain(`Applying migration ${all.at(-1)!.version}`);
      expect(await migrate(db)).toEqual([]);
      expect(await push(tdb.url)).toContain("Remote database is up to date.");
      await submit(db, "someone");
    } finally {
      await db.end();
    }
    await tdb.drop();
  });

  it("moves the versions of DWOP's former ledger to the shared one, so a push after it applies nothing", async () => {
    const tdb = await createTestDatabase("former ledger");
    const all = await readMigrations();
    const db = connectDb(tdb.url, { max: 2 });
    try {
      // A database migrated by DWOP before the ledgers were one: its versions in a table of its own.
      const before = all.filter((m) => m.version < "20261204000400");
      for (const m of before) await db.unsafe(m.sql);
      await db`create table if not exists public.dwop_schema_migrations (
        version text primary key, name text not null, applied_at timestamptz not null default now())`;
      for (const m of before) {
        await db`insert into public.dwop_schema_migrations (version, name) values (${m.version}, ${m.name})`;
      }
      expect(await migrate(db)).toEqual(
        all.filter((m) => m.version >= "20261204000400").map((m) => m.version),
      );
      const [own] = await db<{ present: boolean }[]>`
        select to_regclass('public.dwop_schema_migrations') is not null as present`;
      expect(own!.present).toBe(false);
      expect(await push(tdb.url)).toContain("Remote database is up to date.");
    } finally {
      await db.end();
    }
    await tdb.drop();
  });
});

/** `supabase db push` against the database (the CLI, pinned 2.117.0, connects straight to the URL: no
 * Docker, no Supabase project); its output. */
async function push(url: string): Promise<string> {
  const { stdout, stderr } = await run(
    "node_modules/.bin/supabase",
    ["db", "push", "--db-url", `${url}?sslmode=disable`, "--yes"],
    { cwd: ROOT, timeout: 60_000, env: { ...process.env, SUPABASE_TELEMETRY_DISABLED: "1" } },
  );
  return `${stdout}${stderr}`;
}

describe("row-level security", () => {
  let mdb: MigratedDatabase;
  let passed = false;
  afterEach(async () => {
    await mdb.close(passed);
  });

  it("lets `authenticated` read only its own workflows, tasks, runs and events, and nothing secret", async () => {
    mdb = await migratedDatabase("rls");
    const alice = randomUUID();
    const bob = randomUUID();
    const aliceWf = await submit(mdb.db, alice);
    const bobWf = await submit(mdb.db, bob);
    // A run for each, so runs are there to be filtered too.
    for (const claimed of await mdb.store.claimOutbox("claimer", 10, 30)) {
      await mdb.store.startRun(claimed.message, "dispatcher", "local");
    }
    await mdb.db`select dwop.create_api_key(${alice}, 'laptop')`;
    await mdb.db`select dwop.create_trigger(${alice}, 'on-push', 'fun a():\n    pass\n', null,
      'a-secret-of-sixteen-chars')`;

    const asAlice = <T>(query: (sql: postgres.TransactionSql) => Promise<T>) =>
      as(mdb.db, "authenticated", alice, query);
    expect(await asAlice((sql) => sql`select id from dwop.workflows`)).toEqual([{ id: aliceWf }]);
    for (const table of ["tasks", "runs", "events"]) {
      const rows = await asAlice((sql) => sql`select distinct workflow_id from ${sql("dwop." + table)}`);
      expect(rows, table).toEqual([{ workflow_id: aliceWf }]);
    }
    expect(await as(mdb.db, "authenticated", bob, (sql) => sql`select id from dwop.workflows`)).toEqual([
      { id: bobWf },
    ]);
    // Without a JWT subject nothing is visible.
    expect(await as(mdb.db, "authenticated", null, (sql) => sql`select id from dwop.workflows`)).toEqual([]);

    for (const table of ["triggers", "submissions", "api_keys", "hook_deliveries", "outbox", "dispatchers"]) {
      await expect(
        asAlice((sql) => sql`select * from ${sql("dwop." + table)}`),
        table,
      ).rejects.toMatchObject({
        code: "42501",
      });
    }
    await expect(
      asAlice((sql) => sql`select * from supabase_migrations.schema_migrations`),
    ).rejects.toMatchObject({
      code: "42501",
    });
    // Writing, and calling DWOP's functions, is for DWOP alone.
    await expect(asAlice((sql) => sql`update dwop.workflows set name = 'x'`)).rejects.toMatchObject({
      code: "42501",
    });
    await expect(asAlice((sql) => sql`select dwop.create_api_key(${alice}, 'stolen')`)).rejects.toMatchObject(
      {
        code: "42501",
      },
    );
    await expect(as(mdb.db, "anon", null, (sql) => sql`select * from dwop.workflows`)).rejects.toMatchObject({
      code: "42501",
    });
    passed = true;
  });
});

describe("outbox backstop", () => {
  let mdb: MigratedDatabase;
  let passed = false;
  afterEach(async () => {
    await mdb.close(passed);
  });

  it("wakes claimers only for rows that waited past the threshold with no live lease", async () => {
    mdb = await migratedDatabase("backstop");
    const notes: string[] = [];
    const listener = await mdb.db.listen("dwop_outbox", (payload) => notes.push(payload));
    const [{ now } = { now: new Date() }] = await mdb.db<{ now: Date }[]>`select now() as now`;
    const at = (seconds: number) => new Date(now.getTime() + seconds * 1000);
    const wake = async (seconds: number) => {
      const [row] = await mdb.db<{ n: number }[]>`select dwop.wake_stalled_outbox(10, ${at(seconds)}) as n`;
      return row?.n;
    };

    await submit(mdb.db, "someone");
    await eventually(() => notes.length === 1); // the insert's own NOTIFY
    notes.length = 0;

    expect(await wake(0)).toBe(0); // just due: a live claimer takes it
    expect(await wake(11)).toBe(1);
    await eventually(() => notes.includes("backstop"));

    const [claimed] = await mdb.store.claimOutbox("claimer", 10, 30);
    expect(await wake(20)).toBe(0); // leased until +30 s
    expect(await wake(31)).toBe(1); // the lease ran out: its claimer is presumed dead
    await mdb.store.markPublished("claimer", [claimed!.id]);
    expect(await wake(60)).toBe(0);

    // pg_cron is not loaded in this cluster: the migration applied without a job.
    const [cron] = await mdb.db<
      { n: number }[]
    >`select count(*)::int as n from pg_extension where extname = 'pg_cron'`;
    expect(cron?.n).toBe(0);
    await listener.unlisten();
    passed = true;
  });
});

/** A one-task workflow of `owner`; returns its id. */
async function submit(db: Db, owner: string): Promise<string> {
  const s = submission([task("a")], { owner });
  expect(await new Store(db).submitWorkflow(s)).toBe(true);
  return s.id;
}

/** Runs `query` as PostgREST would for a request of `role` with a JWT whose sub is `sub`. */
async function as<T>(
  db: Db,
  role: "anon" | "authenticated",
  sub: string | null,
  query: (sql: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return (await db.begin(async (sql) => {
    await sql`select set_config('role', ${role}, true)`;
    await sql`select set_config('request.jwt.claims', ${JSON.stringify(sub ? { sub, role } : { role })}, true)`;
    return query(sql);
  })) as T;
}

async function eventually(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
