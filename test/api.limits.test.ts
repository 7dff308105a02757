import { serve, type ServerType } from "@hono/node-server";
import { readdir } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WorkflowDetail } from "../functions/schemas.ts";
import { CODE_BUCKET } from "../shared/model.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { DEFAULT_SUBMIT_LIMITS, UPLOAD_CONCURRENCY } from "../shared/submit.ts";
import { apiHarness, SAMPLE, workflowForm, workflowIds, type ApiHarness } from "./support/api.ts";

/** `n` independent tasks, each printing its number. */
function manyTasks(n: number): string {
  return Array.from({ length: n }, (_, i) => `fun t${i}():\n    print(${i})\n`).join("");
}

/** A workflow of one task reading `n` inputs, and the form that gives them: n + 1 objects to store. */
function manyInputs(n: number): FormData {
  const names = Array.from({ length: n }, (_, i) => `i${i}`);
  const source = `fun reader(${names.map((x) => `${x}:inputs.${x}`).join(", ")}):\n    pass\n`;
  return workflowForm(source, Object.fromEntries(names.map((x) => [`inputs.${x}`, x])));
}

const READS_DATA = "fun f(d:inputs.data):\n    print(open('d').read())\n";

let h: ApiHarness;
beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name, {
    settings: { submitLimits: { maxTasks: 5, maxWorkflowBytes: 4096, maxInputs: 2 } },
  });
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

async function submitForm(form: FormData, harness = h): Promise<Response> {
  return harness.app.request("/workflows", {
    method: "POST",
    headers: await harness.as("alice"),
    body: form,
  });
}

async function errorOf(res: Response): Promise<{ code: string; message: string; details: unknown }> {
  return ((await res.json()) as { error: { code: string; message: string; details: unknown } }).error;
}

/** Files (not folders) under a storage folder. */
async function storedFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => e.name);
}

async function expectNothingStored(harness = h): Promise<void> {
  expect(await workflowIds(harness.m)).toEqual([]);
  expect(await storedFiles(harness.storageRoot)).toEqual([]);
}

describe("submission limits", () => {
  it("refuse more tasks than the limit (413, naming the limit), before parsing", async () => {
    const res = await submitForm(workflowForm(manyTasks(6)));
    expect(res.status).toBe(413);
    expect(await errorOf(res)).toEqual({
      code: "too_many_tasks",
      message: "the workflow has more than 5 tasks (the limit per workflow)",
      details: { limit: 5, tasks: 6 },
    });
    // Counted, not parsed: a file too broken to parse is refused for its size all the same.
    const broken = `${manyTasks(6)}\n  stray indentation\n`;
    expect((await errorOf(await submitForm(workflowForm(broken)))).code).toBe("too_many_tasks");
    expect((await submitForm(workflowForm(manyTasks(5)))).status).toBe(201);
  });

  it("refuse a workflow file over the byte limit, in either form", async () => {
    const big = `fun a():\n    print(${"1".repeat(5000)})\n`;
    const form = await submitForm(workflowForm(big));
    expect(form.status).toBe(413);
    expect(await errorOf(form)).toMatchObject({ code: "workflow_too_large", details: { limit: 4096 } });
    const json = await h.postJson("/workflows", { workflow: big }, await h.as("alice"));
    expect(json.status).toBe(413);
    const validate = await h.postJson("/validate", { workflow: manyTasks(6) }, await h.as("alice"));
    expect((await errorOf(validate)).code).toBe("too_many_tasks");
    await expectNothingStored();
  });

  it("refuse inputs that no task reads (422, naming them) and more inputs than the limit (413)", async () => {
    const unread = await submitForm(workflowForm(READS_DATA, { "inputs.data": "x", "inputs.extra": "y" }));
    expect(unread.status).toBe(422);
    expect(await errorOf(unread)).toEqual({
      code: "unread_inputs",
      message: "no task reads inputs.extra",
      details: { inputs: ["extra"] },
    });
    const json = await h.postJson(
      "/workflows",
      { workflow: SAMPLE, inputs: { stray: "x" } },
      await h.as("alice"),
    );
    expect(await errorOf(json)).toMatchObject({ code: "unread_inputs", details: { inputs: ["stray"] } });
    const many = await submitForm(
      workflowForm(READS_DATA, { "inputs.data": "x", "inputs.b": "y", "inputs.c": "z" }),
    );
    expect(many.status).toBe(413);
    expect(await errorOf(many)).toMatchObject({ code: "too_many_inputs", details: { limit: 2, inputs: 3 } });
    await expectNothingStored();
  });

  it("store a submission's objects at most UPLOAD_CONCURRENCY at a time", async () => {
    const { counting, most } = countingPuts(h.storage);
    const wide = await apiHarness("upload_concurrency", { storage: counting });
    try {
      const res = await submitForm(manyInputs(60), wide);
      expect(res.status).toBe(201);
      expect(most()).toBe(UPLOAD_CONCURRENCY);
      expect((await storedFiles(h.storageRoot)).length).toBe(61); // the code bundle and the inputs
    } finally {
      await wide.close(true);
    }
  });

  it("share one bound on uploads in flight across concurrent submissions", async () => {
    const { counting, most } = countingPuts(h.storage);
    const shared = await apiHarness("uploads_in_flight", {
      storage: counting,
      settings: { uploadsInFlight: 20 },
    });
    try {
      const answers = await Promise.all([1, 2, 3].map(() => submitForm(manyInputs(40), shared)));
      expect(answers.map((r) => r.status)).toEqual([201, 201, 201]);
      expect(most()).toBe(20); // more than one submission's 16, never more than the app's 20
    } finally {
      await shared.close(true);
    }
  });

  it("leave no object behind when an upload fails", async () => {
    let puts = 0;
    const failing: Storage = {
      ...bind(h.storage),
      async put(bucket, key, body) {
        if (++puts === 40) throw new Error("disk full");
        await h.storage.put(bucket, key, body);
      },
    };
    const broken = await apiHarness("upload_fails", { storage: failing });
    try {
      const res = await submitForm(manyInputs(60), broken);
      expect(res.status).toBe(500);
      expect(await workflowIds(broken.m)).toEqual([]);
      expect(await storedFiles(h.storageRoot)).toEqual([]);
    } finally {
      await broken.close(true);
    }
  });

  it("leave no object behind when the database refuses the workflow after the uploads", async () => {
    await h.m.db.unsafe(`
      create function dwop.test_refuse() returns trigger language plpgsql as
        $$ begin raise exception 'refused by the test'; end $$;
      create trigger test_refuse before insert on dwop.workflows for each row execute function dwop.test_refuse();`);
    const res = await submitForm(workflowForm(SAMPLE));
    expect(res.status).toBe(500);
    expect(h.errors.map((e) => e.msg)).toEqual(["request failed"]);
    await expectNothingStored();
  });

  it("log (and do not throw over the submission's error) a delete that fails", async () => {
    let puts = 0;
    const stuck: Storage = {
      ...bind(h.storage),
      put: (bucket, key, body) =>
        ++puts === 1 ? h.storage.put(bucket, key, body) : Promise.reject(new Error("disk full")),
      remove: () => Promise.reject(new Error("bucket gone")),
    };
    const broken = await apiHarness("delete_fails", { storage: stuck });
    try {
      const res = await submitForm(manyInputs(1), broken);
      expect(res.status).toBe(500);
      const logged = broken.errors.map((e) => [e.msg, String((e.obj as { err: Error }).err)]);
      expect(logged).toEqual([
        ["could not delete a failed submission's objects", "Error: bucket gone"],
        ["request failed", "Error: disk full"],
      ]);
      expect(await workflowIds(broken.m)).toEqual([]);
    } finally {
      await broken.close(true);
    }
  });
});

/** A Storage's methods bound to it, to spread into a wrapper. */
/** Storage whose puts each take a moment, counting the most in flight at once. */
function countingPuts(storage: Storage): { counting: Storage; most: () => number } {
  let inFlight = 0;
  let most = 0;
  const counting: Storage = {
    ...bind(storage),
    async put(bucket, key, body) {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 2));
      try {
        await storage.put(bucket, key, body);
      } finally {
        inFlight -= 1;
      }
    },
  };
  return { counting, most: () => most };
}

function bind(s: Storage): Storage {
  return {
    put: s.put.bind(s),
    get: s.get.bind(s),
    signUrl: s.signUrl.bind(s),
    move: s.move.bind(s),
    remove: s.remove.bind(s),
  };
}

/** GETs /healthz over a real socket; resolves with how long the answer took, in ms. */
function healthz(port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path: "/healthz", agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(performance.now() - started));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("a huge submission over a real socket", () => {
  it("is refused or stored while /healthz keeps answering", async () => {
    const server = await apiHarness("huge_over_socket", {
      settings: { submitLimits: DEFAULT_SUBMIT_LIMITS, maxRequestBytes: 10 * 1024 * 1024 },
    });
    const { http, port } = await new Promise<{ http: ServerType; port: number }>((resolve) => {
      const http = serve({ fetch: server.app.fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
        resolve({ http, port: info.port }),
      );
    });
    try {
      const post = async (body: FormData | string, json = false) => {
        const headers: Record<string, string> = await server.as("alice");
        if (json) headers["content-type"] = "application/json";
        return fetch(`http://127.0.0.1:${port}/workflows`, { method: "POST", headers, body });
      };
      const hostile = manyTasks(200_001); // the 6.8 MB file of the report
      // The most one workflow may have: every task, and (nearly) every byte, in many short lines.
      const stored = Array.from(
        { length: DEFAULT_SUBMIT_LIMITS.maxTasks },
        (_, i) => `fun t${i}():\n${"    x = 1\n".repeat(9)}`,
      ).join("");
      expect(stored.length).toBeGreaterThan(0.95 * DEFAULT_SUBMIT_LIMITS.maxWorkflowBytes);
      const underSize = manyTasks(20_000); // within the bytes, not the tasks

      const latencies: number[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          latencies.push(await healthz(port));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const answers = await Promise.all([
        post(workflowForm(hostile)),
        post(JSON.stringify({ workflow: hostile.slice(0, 9 * 1024 * 1024) }), true),
        post(workflowForm(underSize)),
        post(workflowForm(stored)),
      ]);
      polling = false;
      await poller;

      const statuses = await Promise.all(answers.map(async (r) => [r.status, (await r.json()) as unknown]));
      expect(statuses.map(([s]) => s)).toEqual([413, 413, 413, 201]);
      expect(statuses.map(([, b]) => (b as { error?: { code: string } }).error?.code)).toEqual([
        "workflow_too_large",
        "workflow_too_large",
        "too_many_tasks",
        undefined,
      ]);
      const created = WorkflowDetail.parse(statuses[3]![1]);
      expect(created.tasks).toHaveLength(DEFAULT_SUBMIT_LIMITS.maxTasks);
      expect(await workflowIds(server.m)).toEqual([created.id]);
      // Every task's code in one object.
      const files = await readdir(`${server.storageRoot}/${CODE_BUCKET}/${created.id}`);
      expect(files).toEqual(["code.bundle"]);

      console.log(`/healthz: ${latencies.length} answers, slowest ${Math.max(...latencies).toFixed(0)} ms`);
      expect(latencies.length).toBeGreaterThan(3);
      // The clients' multipart encoding shares this process's event loop with the server, and the
      // machine is shared: the bound is loose here (the report's server stalled for 107 s), and
      // bench/huge-submit.ts measures the server alone against the 1 s goal.
      expect(Math.max(...latencies)).toBeLessThan(3000);
    } finally {
      http.close();
      await server.close(true);
    }
  }, 120_000);
});
