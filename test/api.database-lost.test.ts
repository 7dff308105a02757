// A request whose database cannot be reached, refuses it (too many connections), or whose connection is lost
// under its statement, is answered 503 `unavailable` with Retry-After (as /readyz says while it lasts), not a
// bare 500: every client can tell an outage from a bug and come back. Against a real PostgreSQL, behind a
// proxy the test cuts.
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { createApp } from "../functions/app.ts";
import { connectDb, type Db } from "../shared/db/connect.ts";
import type { Logger } from "../shared/log.ts";
import { API_TOKEN } from "./support/api.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";
import { fatalErrorResponse } from "./support/pg-wire.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";

const auth = { authorization: `Bearer ${API_TOKEN}` };

let m: MigratedDatabase | undefined;
let db: Db | undefined;
let proxy: TcpProxy | undefined;
afterEach(async (ctx) => {
  await proxy?.cut();
  await db?.end({ timeout: 1 });
  await m?.close(ctx.task.result?.state === "pass");
  m = db = proxy = undefined;
});

/** The app on a pool of its own to `url`; what it logged as warnings and errors. */
function appOn(url: string, label: string) {
  db = connectDb(url, { max: 2, applicationName: `test:${label}` });
  const logged: { level: string; msg: string | undefined }[] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (_obj, msg) => logged.push({ level: "warn", msg }),
    error: (_obj, msg) => logged.push({ level: "error", msg }),
    child: () => logger,
  };
  return { app: createApp({ db, storage: null, settings: { apiToken: API_TOKEN }, logger }), logged };
}

/** The app on a pool that reaches the test's database through a proxy (see TcpProxy for `intercept`). */
async function appBehindProxy(label: string, intercept?: ConstructorParameters<typeof TcpProxy>[2]) {
  m = await migratedDatabase(label);
  proxy = new TcpProxy("127.0.0.1", Number(new URL(m.url).port || 5432), intercept);
  await proxy.start();
  const url = new URL(m.url);
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  return { ...appOn(url.toString(), label), proxy, m };
}

const unavailable = { error: { code: "unavailable", message: "database unreachable", details: null } };

describe("the API while its database is away", () => {
  it("answers 503 unavailable while the database cannot be reached, and serves again once it is back", async () => {
    const { app, logged, proxy } = await appBehindProxy("api_db_unreachable");
    expect((await app.request("/workflows", { headers: auth })).status).toBe(200);

    await proxy.cut();
    const down = await app.request("/workflows", { headers: auth });
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("1");
    expect(await down.json()).toEqual(unavailable);
    expect(logged).toEqual([{ level: "warn", msg: "database unreachable" }]);

    await proxy.restore();
    expect((await app.request("/workflows", { headers: auth })).status).toBe(200);
  });

  it("answers 503 when the connection is lost under the request's statement", async () => {
    const { app, logged, m } = await appBehindProxy("api_db_lost");
    const admin = postgres(m.url, { max: 2, onnotice: () => {} });
    try {
      // The request's statement waits on a lock; the server then ends its backend (a failover, an operator).
      const answer = await admin.begin(async (tx) => {
        await tx`lock table dwop.workflows in access exclusive mode`;
        const pending = app.request("/workflows", { headers: auth });
        for (let ended = 0; ended === 0; await new Promise((r) => setTimeout(r, 20))) {
          // From another session: pg_stat_activity is read once per transaction.
          const [row] = await admin<{ n: number }[]>`
            select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
            where application_name = 'test:api_db_lost' and wait_event_type = 'Lock'`;
          ended = row!.n;
        }
        return pending;
      });
      expect(answer.status).toBe(503);
      expect(await answer.json()).toMatchObject({ error: { code: "unavailable" } });
      expect(logged).toEqual([{ level: "warn", msg: "database unreachable" }]);
      expect((await app.request("/workflows", { headers: auth })).status).toBe(200);
    } finally {
      await admin.end();
    }
  });

  it("answers 503 when the database refuses connections: too many for the role, or none for now", async () => {
    m = await migratedDatabase("api_db_refused");
    const role = `dwop_t_limited_${m.name.slice(-6)}`;
    const admin = postgres(m.url.replace(/\/[^/?]*(\?|$)/, "/postgres$1"), { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`create role ${role} login connection limit 0`);
      const limited = new URL(m.url);
      limited.username = role;
      const atLimit = appOn(limited.toString(), "api_db_refused");
      const refused = await atLimit.app.request("/workflows", { headers: auth });
      expect([refused.status, await refused.json()]).toEqual([503, unavailable]); // 53300
      expect(atLimit.logged).toEqual([{ level: "warn", msg: "database unreachable" }]);
      await db?.end({ timeout: 1 });

      // Not accepting connections (maintenance): 55000, a FATAL at the connection's start.
      await admin.unsafe(`alter database "${m.name}" allow_connections false`);
      const closed = appOn(m.url, "api_db_refused");
      const answer = await closed.app.request("/workflows", { headers: auth });
      expect([answer.status, await answer.json()]).toEqual([503, unavailable]);
      await admin.unsafe(`alter database "${m.name}" allow_connections true`);
      expect((await closed.app.request("/workflows", { headers: auth })).status).toBe(200);
    } finally {
      await admin.unsafe(`alter database "${m.name}" allow_connections true`);
      await admin.unsafe(`drop role if exists ${role}`);
      await admin.end();
    }
  });

  it("answers 503 when Supabase's pooler refuses for want of connections, 500 when it refuses the user", async () => {
    // Supavisor's refusals, as its source sends them: a FATAL XX000 whose message starts with its own code.
    let refusal: string | null = null;
    const { app, logged } = await appBehindProxy("api_db_pooler", (_chunk, client, upstream) => {
      if (refusal === null) return false;
      client.end(fatalErrorResponse("XX000", refusal)); // as a connection starts, or in place of a query's answer
      upstream.destroy();
      return true;
    });
    const statuses: number[] = [];
    for (const message of [
      "(EMAXCONNSESSION) max clients reached in session mode - max clients are limited to pool_size: 15",
      "(EMAXCONN) max client connections reached, limit: 200",
      "(ECHECKOUTTIMEOUT) Pool checkout timeout. Request was dropped after 10000ms in Transaction mode.",
      "(EDBHANDLEREXITED) connection to database closed. Check logs for more information",
      "MaxClientsInSessionMode: max clients reached - in Session mode max clients are limited to pool_size",
      "(ENOTFOUND) tenant/user postgres.abcdefgh not found",
    ]) {
      refusal = message;
      const answer = await app.request("/workflows", { headers: auth });
      statuses.push(answer.status);
      if (answer.status === 503) expect(await answer.json()).toEqual(unavailable);
      refusal = null;
      expect((await app.request("/workflows", { headers: auth })).status).toBe(200);
    }
    expect(statuses).toEqual([503, 503, 503, 503, 503, 500]);
    expect(logged.map((l) => l.level)).toEqual(["warn", "warn", "warn", "warn", "warn", "error"]);
  });

  it("still answers a statement's own failure as a 500, logged as an error", async () => {
    const { app, logged, m } = await appBehindProxy("api_db_broken");
    await m.db`alter table dwop.workflows rename to workflows_gone`;
    const broken = await app.request("/workflows", { headers: auth });
    expect(broken.status).toBe(500);
    expect(await broken.json()).toMatchObject({ error: { code: "internal" } });
    expect(logged).toEqual([{ level: "error", msg: "request failed" }]);
  });
});
