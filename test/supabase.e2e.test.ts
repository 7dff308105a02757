import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { freePort, ROOT, startEdgeServer, stopEdgeServers, type EdgeServer } from "./support/edge-server.ts";
import { startSupabaseStorageDouble, type SupabaseStorageDouble } from "./support/supabase-storage-double.ts";

const run = promisify(execFile);
const TOKEN = "e2e-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
/** transform says it is working, then waits for the test's flag: its live log is read meanwhile. */
const workflow = (flag: string) =>
  'fun extract():\n    print("a,b,c")\n\nfun transform(raw:extract):\n    import os, sys, time\n' +
  '    print("working", file=sys.stderr)\n' +
  `    while not os.path.exists(${JSON.stringify(flag)}):\n        time.sleep(0.05)\n` +
  '    print(open("raw").read().upper())\n';

let database: TestDatabase;
let storage: SupabaseStorageDouble;
let home: string;
let flags: string;
const processes: EdgeServer[] = [];
let passed = false;

afterEach(async () => {
  processes.length = 0;
  await stopEdgeServers();
  await storage?.close();
  if (passed) {
    await database?.drop();
    await rm(home, { recursive: true, force: true });
    await rm(flags, { recursive: true, force: true });
  }
});

// The README's "Deploy on Supabase" with the platform played locally: migrations by `supabase db push`,
// the `api` function on Deno with the environment Supabase gives it, Supabase Storage by the storage-api
// double, and the claimer and dispatcher as the README starts them.
it("runs a workflow submitted to the `api` function, with the claimer and dispatcher beside Supabase", async () => {
  database = await createTestDatabase("supabase e2e");
  storage = await startSupabaseStorageDouble();
  home = await mkdtemp(join(tmpdir(), "dwop-supabase-e2e-"));
  // The flag the task waits for: in a folder the sandbox shows runs (not the dispatcher's home, which holds
  // every run's folder), readable by a run's own uid.
  flags = await mkdtemp(join(tmpdir(), "dwop-supabase-e2e-flags-"));
  await chmod(flags, 0o755);
  await run(
    "node_modules/.bin/supabase",
    ["db", "push", "--db-url", `${database.url}?sslmode=disable`, "--yes"],
    {
      cwd: ROOT,
      timeout: 60_000,
    },
  );

  const apiPort = await freePort();
  const api = await startEdgeServer({
    command: join(ROOT, "node_modules/.bin/deno"),
    args: ["run", "--node-modules-dir=manual", "-A", "supabase/functions/api/index.ts"],
    env: {
      SUPABASE_DB_URL: database.url,
      SUPABASE_URL: storage.url,
      SUPABASE_SERVICE_ROLE_KEY: storage.serviceKey,
      DWOP_API_TOKEN: TOKEN,
      DENO_NO_UPDATE_CHECK: "1",
      DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${apiPort}`,
    },
    port: apiPort,
    readyPath: "/api/readyz",
  });
  processes.push(api);

  // The same settings for both; pg-boss in the same database stands in for RabbitMQ.
  const engineEnv = {
    DATABASE_URL: database.url,
    SUPABASE_PROJECT_URL: storage.url,
    SUPABASE_SERVICE_KEY: storage.serviceKey,
    DWOP_QUEUE: `dwop.e2e.${randomBytes(4).toString("hex")}`,
    DWOP_HOME: home,
    DWOP_LOG_LEVEL: "warn",
    DWOP_CLAIM_POLL_MS: "100",
    // Where workers ship live logs: the `api` function (on Supabase, the default from SUPABASE_PROJECT_URL).
    DWOP_PUBLIC_URL: `${api.url}/api`,
    DWOP_TASK_ALLOW: flags,
  };
  const opsPort = await freePort();
  const tsx = (script: string) => ({ command: process.execPath, args: ["--import", "tsx", script] });
  processes.push(await startEdgeServer({ ...tsx("cron/main.ts"), env: engineEnv, port: 0 }));
  processes.push(
    await startEdgeServer({
      ...tsx("dispatcher/main.ts"),
      env: { ...engineEnv, DWOP_METRICS_HOST: "127.0.0.1", DWOP_METRICS_PORT: String(opsPort) },
      port: opsPort,
      readyPath: "/readyz",
    }),
  );

  const form = new FormData();
  const flag = join(flags, "flag");
  form.append("workflow", new Blob([workflow(flag)]), "etl.workflow");
  const submitted = await fetch(`${api.url}/api/workflows`, { method: "POST", headers: AUTH, body: form });
  expect(submitted.status, await submitted.clone().text()).toBe(201);
  const { id } = (await submitted.json()) as { id: string };

  // The running task's log, live through the function, before the task may end.
  let live = { text: "", complete: "" };
  const liveBy = Date.now() + 40_000;
  while (!live.text.includes("working")) {
    if (Date.now() > liveBy) {
      throw new Error(
        `no live log: ${JSON.stringify(live)}\n${processes.map((p) => p.output()).join("\n---\n")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
    const res = await fetch(`${api.url}/api/workflows/${id}/tasks/transform/logs`, { headers: AUTH });
    live = { text: res.ok ? await res.text() : "", complete: res.headers.get("x-log-complete") ?? "" };
  }
  expect(live).toEqual({ text: "working\n", complete: "false" });
  await writeFile(flag, "");

  let status = "";
  const deadline = Date.now() + 40_000;
  while (!["succeeded", "failed", "cancelled"].includes(status)) {
    if (Date.now() > deadline) {
      throw new Error(`still ${status}\n${processes.map((p) => p.output()).join("\n---\n")}`);
    }
    await new Promise((r) => setTimeout(r, 200));
    const res = await fetch(`${api.url}/api/workflows/${id}`, { headers: AUTH });
    status = ((await res.json()) as { status: string }).status;
  }
  expect(status, processes.map((p) => p.output()).join("\n---\n")).toBe("succeeded");
  const output = await fetch(`${api.url}/api/workflows/${id}/tasks/transform/output`, { headers: AUTH });
  expect(await output.text()).toBe("A,B,C\n\n");
  expect(storage.buckets.get("Task_Output")?.has(`${id}/transform/output.txt`)).toBe(true);
  passed = true;
});
