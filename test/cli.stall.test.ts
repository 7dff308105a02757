import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WorkflowList } from "../functions/schemas.ts";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { createTestDatabase } from "./support/db.ts";
import { workflowForm } from "./support/api.ts";
import { RABBIT_URL } from "./support/engine.ts";
import { deleteRabbitTopology } from "./support/rabbit.ts";
import { freePort, spawnDwop, type DwopProcess } from "./support/dev-process.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";

// Stalls through the real stack: a server whose tasks nothing dispatches (only a claimer runs, as with
// DWOP_EXECUTOR=kubernetes and no dispatcher in the cluster), and one whose broker goes away. /readyz
// and `dwop submit --wait` say so and since when, then say when it is over.

let dir: string;
const cleanups: (() => Promise<unknown>)[] = [];
let passed = true;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dwop-cli-stall-"));
});
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});
afterAll(async () => {
  for (const clean of cleanups.reverse()) await clean().catch(() => {});
  if (passed) await rm(dir, { recursive: true, force: true });
}, 120_000);

const WORKFLOW = 'fun hello():\n    print("hello")\n';

async function readyz(
  url: string,
): Promise<{ status: string; stall: { what: string; since: string; message: string } | null }> {
  return (await (await askReadyz(url)).json()) as never;
}

/**
 * GET /readyz, once more if the kept-alive connection it went on was closed under it: the server closes an
 * idle one after its keep-alive timeout (5 s), which races a request sent on it at that moment ("other side
 * closed", or a reset: CI of 2026-12-05 22:54).
 */
async function askReadyz(url: string): Promise<Response> {
  try {
    return await fetch(`${url}/readyz`);
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    if (code !== "UND_ERR_SOCKET" && code !== "ECONNRESET") throw err;
    return fetch(`${url}/readyz`);
  }
}

function clientEnv(server: DevServer): Record<string, string> {
  return { DWOP_URL: server.url, DWOP_TOKEN: server.token, DWOP_HOME: join(dir, "client-home") };
}

describe("a stall of dispatching", () => {
  let server: DevServer;

  beforeAll(async () => {
    server = await startDevServer("cli_stall_dispatch", {
      DWOP_EXECUTOR: "kubernetes",
      DWOP_STALL_AFTER_SECONDS: "1",
      DWOP_LOST_AFTER_SECONDS: "2",
    });
    cleanups.push(() => server.stop(passed));
  }, 90_000);

  it("shows on /readyz and under submit --wait's progress, and ends when a dispatcher comes", async () => {
    const file = join(dir, "hello.workflow");
    await writeFile(file, WORKFLOW);
    const wait = spawnDwop(["submit", file, "--wait"], clientEnv(server));
    cleanups.push(() => wait.stop("SIGKILL"));
    await wait.waitFor(
      /stalled: 1 task published but not picked up: no dispatcher is running \(since \d\d:\d\d:\d\d\)/,
    );
    const ready = await readyz(server.url);
    expect(ready).toMatchObject({ status: "ready", stall: { what: "dispatching" } });
    expect(Date.parse(ready.stall!.since)).toBeLessThanOrEqual(Date.now());

    // A dispatcher on the same database, queue and storage home: the task runs, the stall is over.
    const dispatcher = spawnDwop(["dev", "--port", String(await freePort())], {
      DATABASE_URL: server.database.url,
      DWOP_HOME: server.home,
      DWOP_API_TOKEN: server.token,
      DWOP_LOG_LEVEL: "warn",
    });
    cleanups.push(() => dispatcher.stop());
    expect(await wait.exited, wait.stderr()).toBe(0); // what it said, should it fail
    expect(wait.stderr()).toContain("no longer stalled: tasks are moving again");
    expect(wait.stderr()).toMatch(/workflow \S+ succeeded/);
    await dispatcher.stop();
  }, 120_000);

  it("dwop list pages past 100 with --cursor, and reads them all with --all", async () => {
    // 103 workflows that nothing runs (this server has no dispatcher any more).
    const ids: string[] = [];
    for (let i = 0; i < 103; i += 8) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(8, 103 - i) }, async () => {
          const res = await fetch(`${server.url}/workflows`, {
            method: "POST",
            headers: { authorization: `Bearer ${server.token}` },
            body: workflowForm(WORKFLOW),
          });
          expect(res.status).toBe(201);
          return ((await res.json()) as { id: string }).id;
        }),
      );
      ids.push(...batch);
    }
    const env = clientEnv(server);
    const first = await run(spawnDwop(["list", "--limit", "100"], env));
    const more = /more: dwop list --limit 100 --cursor ([0-9a-f-]{36}) \(or --all\)/.exec(first.stderr);
    expect(more, first.stderr).not.toBeNull();
    expect(first.stdout.trim().split("\n")).toHaveLength(101); // the header and 100 rows

    const rest = await run(spawnDwop(["list", "--limit", "100", "--cursor", more![1]!, "--json"], env));
    const page2 = WorkflowList.parse(JSON.parse(rest.stdout));
    const all = WorkflowList.parse(
      JSON.parse((await run(spawnDwop(["list", "--all", "--json"], env))).stdout),
    );
    expect(all.nextCursor).toBeNull();
    expect(all.workflows.length).toBe(104); // and the one of the stall test
    expect(new Set(all.workflows.map((w) => w.id)).size).toBe(104);
    for (const id of ids) expect(all.workflows.some((w) => w.id === id)).toBe(true);
    expect(page2.workflows.length).toBe(4);
    const firstIds = first.stdout
      .split("\n")
      .slice(1)
      .map((l) => l.split(/\s+/)[0]);
    expect(page2.workflows.some((w) => firstIds.includes(w.id))).toBe(false);

    const bad = await run(spawnDwop(["list", "--cursor", "nope"], env));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--cursor wants the cursor a previous page ended with");
  }, 120_000);
});

describe("a stall of publishing", () => {
  let server: DevServer;
  let broker: TcpProxy;

  beforeAll(async () => {
    const target = new URL(RABBIT_URL);
    broker = new TcpProxy(target.hostname, Number(target.port || 5672));
    await broker.start();
    cleanups.push(() => broker.cut());
    const proxied = new URL(RABBIT_URL);
    proxied.port = String(broker.port);
    const queue = `dwop.test.stall.${randomBytes(4).toString("hex")}`;
    server = await startDevServer("cli_stall_publish", {
      RABBITMQ_CONNECTION_URL: proxied.toString(),
      DWOP_QUEUE: queue,
      DWOP_STALL_AFTER_SECONDS: "1",
    });
    // Run in reverse: the server stops, then its queues go (when every test passed).
    cleanups.push(
      async () => {
        if (passed) await deleteRabbitTopology(queue);
      },
      () => server.stop(passed),
    );
  }, 90_000);

  it("shows while the broker is down, on /readyz and under submit --wait's progress, and ends when it is back", async () => {
    await broker.cut();
    const file = join(dir, "hello2.workflow");
    await writeFile(file, WORKFLOW);
    const wait = spawnDwop(["submit", file, "--wait"], clientEnv(server));
    cleanups.push(() => wait.stop("SIGKILL"));
    await wait.waitFor(
      /stalled: 1 task not published to the queue: is the broker down, or no claimer running\? \(since \d\d:\d\d:\d\d\)/,
    );
    expect(await readyz(server.url)).toMatchObject({ stall: { what: "publishing" } });

    await broker.restore();
    expect(await wait.exited, wait.stderr()).toBe(0); // what it said, should it fail
    expect(wait.stderr()).toContain("no longer stalled: tasks are moving again");
    expect(await readyz(server.url)).toEqual({ status: "ready", stall: null });
  }, 120_000);
});

describe("a stall of the database", () => {
  let server: DevServer;
  let pg: TcpProxy;

  beforeAll(async () => {
    const db = await createTestDatabase("cli_stall_database");
    cleanups.push(() => (passed ? db.drop() : Promise.resolve()));
    const target = new URL(db.url);
    pg = new TcpProxy(target.hostname, Number(target.port || 5432));
    await pg.start();
    cleanups.push(() => pg.cut());
    const proxied = new URL(db.url);
    proxied.port = String(pg.port);
    server = await startDevServer("cli_stall_database_unused", {
      DATABASE_URL: proxied.toString(),
      DWOP_STALL_AFTER_SECONDS: "1",
    });
    cleanups.push(() => server.stop(passed));
  }, 90_000);

  it("shows while the server's database is unreachable, and submit --wait rides it out", async () => {
    const file = join(dir, "slow.workflow");
    await writeFile(file, 'fun slow():\n    import time\n    time.sleep(3)\n    print("done")\n');
    const wait = spawnDwop(["submit", file, "--wait"], clientEnv(server));
    cleanups.push(() => wait.stop("SIGKILL"));
    await wait.waitFor(/slow running/);

    await pg.cut();
    const down = await askReadyz(server.url);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ stall: { what: "database" } });
    await wait.waitFor(
      /stalled: the database cannot be reached|lost http:\/\/\S+ \(its database cannot be reached/,
    );

    await pg.restore();
    expect(await wait.exited, wait.stderr()).toBe(0); // what it said, should it fail
    expect(wait.stderr()).toMatch(/workflow \S+ succeeded/);
    expect(await readyz(server.url)).toEqual({ status: "ready", stall: null });
  }, 120_000);
});

async function run(p: DwopProcess): Promise<{ code: number; stdout: string; stderr: string }> {
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
