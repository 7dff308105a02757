import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../shared/db/connect.ts";
import { signedHeaders } from "../shared/signature.ts";
import { buildFunctions } from "../supabase/build-functions.ts";
import { freePort, ROOT, startEdgeServer, stopEdgeServers, type EdgeServer } from "./support/edge-server.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";
import { startSupabaseStorageDouble, type SupabaseStorageDouble } from "./support/supabase-storage-double.ts";

const TOKEN = "edge-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const WORKFLOW =
  'fun extract():\n    print("a,b,c")\n\nfun transform(raw:extract):\n    print(open("raw").read().upper())\n';
const DENO = join(ROOT, "node_modules/.bin/deno");

/** What the Supabase platform gives every Edge Function, pointing at this test's database and storage. */
function platformEnv(mdb: MigratedDatabase, storage: SupabaseStorageDouble): Record<string, string> {
  return {
    SUPABASE_DB_URL: mdb.url,
    SUPABASE_URL: storage.url,
    SUPABASE_SERVICE_ROLE_KEY: storage.serviceKey,
    DWOP_API_TOKEN: TOKEN,
    DENO_NO_UPDATE_CHECK: "1",
  };
}

describe("Supabase Edge Functions", () => {
  let mdb: MigratedDatabase;
  let storage: SupabaseStorageDouble;
  let server: EdgeServer | null = null;
  let passed = false;

  beforeAll(async () => {
    await buildFunctions();
  });
  afterEach(async () => {
    await stopEdgeServers();
    server = null;
    await storage?.close();
    await mdb?.close(passed);
    passed = false;
  });

  it("`api` served by Deno from its source answers a submit and a status read against Postgres", async () => {
    mdb = await migratedDatabase("edge deno source");
    storage = await startSupabaseStorageDouble();
    const port = await freePort();
    server = await startEdgeServer({
      command: DENO,
      args: ["run", "--node-modules-dir=manual", "-A", "supabase/functions/api/index.ts"],
      env: { ...platformEnv(mdb, storage), DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}` },
      port,
      readyPath: "/api/readyz",
    });
    await submitAndRead(`${server.url}/api`, storage, mdb.db);

    // Requests reach a function under its name, whatever it was deployed as: the entrypoint does not
    // hard-code it. Past the name, an unknown path is a JSON 404, as in the app.
    const renamed = await fetch(
      `${server.url}/dwop-prod/workflows/${"0".repeat(8)}-0000-4000-8000-${"0".repeat(12)}`,
      {
        headers: AUTH,
      },
    );
    expect(renamed.status).toBe(404);
    expect(await renamed.json()).toMatchObject({ error: { code: "not_found" } });
    expect((await fetch(`${server.url}/dwop-prod/readyz`)).status).toBe(200);
    const stray = await fetch(`${server.url}/api/no-such-route`, { headers: AUTH });
    expect(stray.status).toBe(404);
    expect(await stray.json()).toMatchObject({ error: { message: "no route for GET /no-such-route" } });
    passed = true;
  });

  it("the bundles run alone (no node_modules), and `hooks` serves only signed webhooks", async () => {
    mdb = await migratedDatabase("edge deno bundle");
    storage = await startSupabaseStorageDouble();
    // As deployed: each function folder's build/index.js, away from the project and its node_modules.
    const alone = await mkdtemp(join(tmpdir(), "dwop-bundles-"));
    try {
      for (const name of ["api", "hooks"]) {
        await cp(join(ROOT, "supabase/functions", name, "build/index.js"), join(alone, name, "index.js"));
      }
      const start = async (name: string, readyPath: string, readyStatus: number) => {
        const port = await freePort();
        return startEdgeServer({
          command: DENO,
          args: ["run", "-A", `${name}/index.js`],
          cwd: alone,
          env: { ...platformEnv(mdb, storage), DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}` },
          port,
          readyPath,
          readyStatus,
        });
      };
      server = await start("api", "/api/readyz", 200);
      const api = `${server.url}/api`;
      await submitAndRead(api, storage, mdb.db);

      const secret = "a-webhook-secret-of-some-length";
      const trigger = await fetch(`${api}/triggers`, {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify({
          name: "on-push",
          secret,
          workflow: "fun log(event:inputs.payload):\n    print(1)\n",
        }),
      });
      expect(trigger.status, await trigger.clone().text()).toBe(201);
      const { id: triggerId } = (await trigger.json()) as { id: string };
      await server.stop();

      // `hooks` has no open GET route: it is up when it answers a stray path with its JSON 404.
      server = await start("hooks", "/", 404);
      const body = JSON.stringify({ ref: "main" });
      const hook = (headers: Record<string, string>) =>
        fetch(`${server!.url}/hooks/${triggerId}`, { method: "POST", headers, body });
      const accepted = await hook(await signedHeaders(secret, body, "delivery-1", Date.now(), triggerId));
      expect(accepted.status, await accepted.clone().text()).toBe(202);
      const { workflowId } = (await accepted.json()) as { workflowId: string };
      const [row] = await mdb.db<
        { owner: string }[]
      >`select owner from dwop.workflows where id = ${workflowId}`;
      expect(row?.owner).toBe("local");
      const forged = await signedHeaders("not-the-secret-at-all", body, "delivery-2", Date.now(), triggerId);
      expect((await hook(forged)).status).toBe(401);
      // Nothing of the API is reachable through the webhook function.
      expect((await fetch(`${server.url}/hooks`, { headers: AUTH })).status).toBe(404);
      expect((await fetch(`${server.url}/workflows`, { headers: AUTH })).status).toBe(404);
    } finally {
      await rm(alone, { recursive: true, force: true });
    }
    passed = true;
  });
});

describe("Cloudflare Workers (workerd through wrangler dev)", () => {
  let mdb: MigratedDatabase;
  let storage: SupabaseStorageDouble;
  let server: EdgeServer | null = null;
  let persist: string;
  let passed = false;

  afterAll(async () => {
    await stopEdgeServers();
    await storage?.close();
    await mdb?.close(passed);
    if (persist) await rm(persist, { recursive: true, force: true });
  });

  it("functions/workerd.ts answers a submit and a status read, connecting to Postgres over TCP", async () => {
    mdb = await migratedDatabase("workerd");
    storage = await startSupabaseStorageDouble();
    persist = await mkdtemp(join(tmpdir(), "dwop-wrangler-"));
    const port = await freePort();
    const vars = {
      DATABASE_URL: mdb.url,
      DWOP_API_TOKEN: TOKEN,
      DWOP_EVENTS_POLL_MS: "100",
      SUPABASE_PROJECT_URL: storage.url,
      SUPABASE_SERVICE_KEY: storage.serviceKey,
    };
    server = await startEdgeServer({
      command: join(ROOT, "node_modules/.bin/wrangler"),
      args: [
        "dev",
        "--config",
        "deploy/wrangler.toml",
        "--ip",
        "127.0.0.1",
        "--port",
        String(port),
        "--persist-to",
        persist,
        ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
      ],
      env: { CI: "true", WRANGLER_SEND_METRICS: "false", XDG_CONFIG_HOME: persist },
      port,
      readyPath: "/readyz",
      readyTimeoutMs: 40_000,
      failOn: /\[ERROR\]/,
    });
    // Several requests in a row: workerd forbids one request to use another's socket, so each has its own.
    const id = await submitAndRead(server.url, storage, mdb.db);

    // A streamed response keeps its connection until it ends: the event stream goes on polling after
    // its response was returned, and reports a cancel made through another request.
    const events = await fetch(`${server.url}/workflows/${id}/events`, { headers: AUTH });
    expect(events.status).toBe(200);
    const cancel = await fetch(`${server.url}/workflows/${id}/cancel`, { method: "POST", headers: AUTH });
    expect(cancel.status).toBe(200);
    const stream = await readUntil(events, "event: end", 15_000);
    expect(stream).toContain('"status":"cancelled"');
    passed = true;
  }, 60_000);
});

/** The API answers auth errors, a curl-style multipart submit, a status read and an output read. */
async function submitAndRead(base: string, storage: SupabaseStorageDouble, db: Db): Promise<string> {
  const anonymous = await fetch(`${base}/workflows`);
  expect(anonymous.status).toBe(401);
  expect(await anonymous.json()).toMatchObject({ error: { code: "unauthorized" } });

  const form = new FormData();
  form.append("workflow", new Blob([WORKFLOW]), "etl.workflow");
  const submitted = await fetch(`${base}/workflows`, { method: "POST", headers: AUTH, body: form });
  expect(submitted.status, await submitted.clone().text()).toBe(201);
  const { id } = (await submitted.json()) as { id: string };
  // The first task's body, below the line that tells the worker where it is in the workflow file.
  expect(storage.buckets.get("Task_Code")?.get(`${id}/code.bundle`)?.body.toString()).toMatch(
    /^# dwop-source: \{"file":"etl.workflow","line":1,"task":"extract"\}\nprint\("a,b,c"\)\n# dwop-source: /,
  );

  const [row] = await db<
    { owner: string; status: string }[]
  >`select owner, status from dwop.workflows where id = ${id}`;
  expect(row).toEqual({ owner: "local", status: "queued" });

  const read = await fetch(`${base}/workflows/${id}`, { headers: AUTH });
  expect(read.status).toBe(200);
  const workflow = (await read.json()) as {
    id: string;
    status: string;
    tasks: { name: string; status: string }[];
  };
  expect(workflow).toMatchObject({ id, status: "queued" });
  expect(workflow.tasks.map((t) => [t.name, t.status])).toEqual([
    ["extract", "queued"],
    ["transform", "pending"],
  ]);

  // Callback addresses are checked on every runtime, names resolved or not.
  for (const url of [
    "http://[::ffff:169.254.169.254]/",
    "http://2130706433:5432/",
    "http://localhost:6379/",
  ]) {
    const refused = await fetch(`${base}/workflows`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: JSON.stringify({ workflow: WORKFLOW, callback_url: url, callback_secret: "0123456789abcdef0" }),
    });
    expect({ url, status: refused.status }).toEqual({ url, status: 422 });
    expect(await refused.json()).toMatchObject({ error: { code: "callback_refused" } });
  }

  // An output as the worker leaves it, read back through Supabase Storage.
  storage.buckets.get("Task_Output")?.set(`${id}/extract/output.txt`, {
    body: Buffer.from("a,b,c\n"),
    contentType: "text/plain; charset=utf-8",
  });
  const output = await fetch(`${base}/workflows/${id}/tasks/extract/output`, { headers: AUTH });
  expect(output.status).toBe(200);
  expect(await output.text()).toBe("a,b,c\n");
  const missing = await fetch(`${base}/workflows/${id}/tasks/transform/output`, { headers: AUTH });
  expect(missing.status).toBe(404);
  return id;
}

/** The response's text up to and including `marker`; fails after timeoutMs. */
async function readUntil(res: Response, marker: string, timeoutMs: number): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const timer = setTimeout(() => void reader.cancel(new Error("timed out")), timeoutMs);
  let text = "";
  try {
    while (!text.includes(marker)) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  expect(text, "the stream ended or timed out before its end event").toContain(marker);
  return text;
}
