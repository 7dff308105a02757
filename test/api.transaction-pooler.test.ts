// Behind a pooler in transaction mode (PgBouncer before 1.21, a self-hosted Supavisor or PgBouncer of one's
// own), each transaction gets whichever server connection is free, where a statement the pool prepared on
// another does not exist: `prepare=false` in DATABASE_URL makes every pool send its statements unnamed.
// Against Debian's PgBouncer 1.18 in front of the real PostgreSQL.
import { afterEach, describe, expect, it } from "vitest";
import { WorkflowDetail, WorkflowList } from "../functions/schemas.ts";
import { connectDb, preparesStatements, type Db } from "../shared/db/connect.ts";
import { apiHarness, SAMPLE, workflowForm, type ApiHarness } from "./support/api.ts";
import { ADMIN_URL } from "./support/db.ts";
import { startPgBouncer, type PgBouncer } from "./support/pgbouncer.ts";

let bouncer: PgBouncer | undefined;
let h: ApiHarness | undefined;
let pool: Db | undefined;
afterEach(async (ctx) => {
  await pool?.end({ timeout: 1 });
  await h?.close(ctx.task.result?.state === "pass");
  await bouncer?.stop();
  bouncer = h = pool = undefined;
});

describe("DATABASE_URL through a pooler in transaction mode", () => {
  it("serves concurrent submits, reads and cancels with prepare=false in the URL", async (ctx) => {
    const server = new URL(ADMIN_URL);
    bouncer = await startPgBouncer(server.hostname, Number(server.port || 5432), 2);
    const through = (url: string) => {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(bouncer!.port);
      u.searchParams.set("prepare", "false");
      return u.toString();
    };
    h = await apiHarness(ctx.task.name, { db: (url) => (pool = connectDb(through(url), { max: 6 })) });
    const alice = await h.as("alice");
    const request = (path: string, init: RequestInit = {}) =>
      h!.app.request(path, { ...init, headers: alice });

    const submits = await Promise.all(
      Array.from({ length: 12 }, () => request("/workflows", { method: "POST", body: workflowForm(SAMPLE) })),
    );
    expect(submits.map((r) => r.status)).toEqual(Array(12).fill(201));
    const ids = await Promise.all(submits.map(async (r) => WorkflowDetail.parse(await r.json()).id));

    const reads = await Promise.all(
      ids.flatMap((id) => [
        request(`/workflows/${id}`),
        request(`/workflows/${id}/tasks`),
        request(`/workflows/${id}/cancel`, { method: "POST" }),
      ]),
    );
    expect(reads.map((r) => r.status)).toEqual(Array(reads.length).fill(200));
    const list = WorkflowList.parse(await (await request("/workflows?limit=50")).json());
    expect(list.workflows.map((w) => w.id).sort()).toEqual([...ids].sort());
    expect(list.workflows.every((w) => w.status === "cancelled")).toBe(true);
    expect(h.errors, bouncer.log()).toEqual([]);
  });

  it("prepares statements unless the URL or Supabase's pooler says not to", () => {
    expect(preparesStatements("postgresql://u:p@db.example.com:5432/postgres")).toBe(true);
    expect(preparesStatements("postgresql://u:p@db.example.com:6432/postgres?prepare=false")).toBe(false);
    expect(
      preparesStatements("postgresql://u:p@db.example.com:6432/postgres?sslmode=require&prepare=disable"),
    ).toBe(false);
    expect(preparesStatements("postgresql://u:p@aws-0-eu-central-1.pooler.supabase.com:6543/postgres")).toBe(
      false,
    );
  });
});
