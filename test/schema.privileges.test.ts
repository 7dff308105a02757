import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

/**
 * What the catalog of a migrated database says about who may use DWOP's schema: read from pg_proc and
 * pg_class (not from a list of names), so a function or table that a later migration adds is held to the
 * same rules.
 */

let m: MigratedDatabase;

beforeEach(async (ctx) => {
  m = await migratedDatabase(ctx.task.name);
});
afterEach(async (ctx) => {
  await m.close(ctx.task.result?.state === "pass");
});

describe("the dwop schema", () => {
  it("has no function that PUBLIC may execute", async () => {
    const open = await m.db<{ fn: string }[]>`
      select p.oid::regprocedure::text as fn
      from pg_proc p
      cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
      where p.pronamespace = 'dwop'::regnamespace and a.grantee = 0 and a.privilege_type = 'EXECUTE'
      order by 1`;
    expect(open.map((r) => r.fn)).toEqual([]);
  });

  it("makes a function a later migration adds without EXECUTE for PUBLIC", async () => {
    await m.db.unsafe("create function dwop.probe_later() returns int language sql as 'select 1'");
    const [row] = await m.db<{ executable: boolean }[]>`
      select has_function_privilege('public', 'dwop.probe_later()', 'execute') as executable`;
    expect(row!.executable).toBe(false);
  });

  it("has row-level security on every table", async () => {
    const tables = await m.db<{ name: string; rls: boolean }[]>`
      select relname as name, relrowsecurity as rls from pg_class
      where relnamespace = 'dwop'::regnamespace and relkind in ('r', 'p') order by 1`;
    expect(tables.length).toBeGreaterThan(10);
    expect(tables.filter((t) => !t.rls).map((t) => t.name)).toEqual([]);
  });
});
