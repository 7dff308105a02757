import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorResponse, Task, TaskList, WorkflowDetail, WorkflowList } from "../functions/schemas.ts";
import { CODE_BUCKET, objectPaths } from "../shared/model.ts";
import { apiHarness, driveToEnd, SAMPLE, workflowForm, workflowIds, type ApiHarness } from "./support/api.ts";

let h: ApiHarness;
let alice: Record<string, string>;
let bob: Record<string, string>;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name, { settings: { maxRequestBytes: 64 * 1024 } });
  alice = await h.as("alice");
  bob = await h.as("bob");
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

async function submit(headers = alice, source = SAMPLE, fields: Record<string, string | Blob> = {}) {
  return h.app.request("/workflows", { method: "POST", headers, body: workflowForm(source, fields) });
}

async function submitted(headers = alice, source = SAMPLE): Promise<string> {
  const res = await submit(headers, source);
  expect(res.status).toBe(201);
  return WorkflowDetail.parse(await res.json()).id;
}

async function errorOf(res: Response) {
  return ErrorResponse.parse(await res.json()).error;
}

async function text(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  return stream ? new Response(stream).text() : "";
}

describe("POST /workflows", () => {
  it("accepts the multipart form of curl -F and stores the code bundle, each task's range of it, and the requirements", async () => {
    const res = await submit(alice, SAMPLE, { requirements: new Blob(["six==1.16.0\n"]) });
    expect(res.status).toBe(201);
    const body = WorkflowDetail.parse(await res.json());
    expect(res.headers.get("location")).toBe(`/workflows/${body.id}`);
    expect(body).toMatchObject({ name: "sample", status: "queued", taskCount: 2, hasRequirements: true });
    expect(body.tasks.map((t) => [t.name, t.status, t.attempt])).toEqual([
      ["extract", "queued", 1],
      ["shout", "pending", 0],
    ]);
    expect(body.tasks[1]!.params).toEqual([{ name: "raw", upstream: "extract" }]);
    const bundle = Buffer.from(await text(await h.storage.get(CODE_BUCKET, objectPaths.codeBundle(body.id))));
    const ranges = await h.m.db<{ name: string; code: { offset: number; length: number } }[]>`
      select name, options->'code' as code from dwop.tasks where workflow_id = ${body.id} order by position`;
    const code = ranges.map((r) => [
      r.name,
      bundle.subarray(r.code.offset, r.code.offset + r.code.length).toString(),
    ]);
    expect(code).toEqual([
      [
        "extract",
        expect.stringMatching(/^# dwop-source: \{"file":"sample.workflow","line":1,"task":"extract"\}\n/),
      ],
      ["shout", expect.stringMatching(/^# dwop-source: .*"task":"shout"\}\n.*\.upper\(\)/s)],
    ]);
    expect(ranges[1]!.code.offset + ranges[1]!.code.length).toBe(bundle.length);
    expect(await text(await h.storage.get(CODE_BUCKET, objectPaths.requirements(body.id)))).toBe(
      "six==1.16.0\n",
    );
  });

  it("accepts the JSON form with inputs", async () => {
    const source = "fun parse(doc:inputs.doc):\n    print(open('doc').read())\n";
    const res = await h.postJson(
      "/workflows",
      { workflow: source, name: "parse", inputs: { doc: "{}" } },
      alice,
    );
    expect(res.status).toBe(201);
    const body = WorkflowDetail.parse(await res.json());
    expect(body).toMatchObject({ name: "parse", inputs: ["doc"], hasRequirements: false });
    expect(await text(await h.storage.get(CODE_BUCKET, objectPaths.input(body.id, "doc")))).toBe("{}");
  });

  it("takes inputs.NAME file fields of the multipart form", async () => {
    const source = "fun parse(doc:inputs.doc):\n    print(open('doc').read())\n";
    const res = await submit(alice, source, { "inputs.doc": new Blob([new Uint8Array([0, 255, 10])]) });
    expect(res.status).toBe(201);
    const { id } = WorkflowDetail.parse(await res.json());
    const stored = await new Response(
      await h.storage.get(CODE_BUCKET, objectPaths.input(id, "doc")),
    ).arrayBuffer();
    expect([...new Uint8Array(stored)]).toEqual([0, 255, 10]);
  });

  it("answers DSL errors with 400 and every error's line, column and message, storing nothing", async () => {
    const source = "fun a():\n    print(1)\n\nfun b(x:nope):\n    print(2)\n\nfun a():\n    print(3)\n";
    const res = await submit(alice, source);
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe("invalid_workflow");
    expect(error.details).toEqual([
      expect.objectContaining({
        line: 4,
        column: 9,
        message: expect.stringContaining("unknown upstream 'nope'"),
      }),
      expect.objectContaining({ line: 7, column: 5, message: expect.stringContaining("duplicate task 'a'") }),
    ]);
    expect(await workflowIds(h.m)).toEqual([]);
  });

  it("answers a missing input with 422 and submits nothing", async () => {
    const res = await submit(alice, "fun a(x:inputs.payload):\n    print(1)\n");
    expect(res.status).toBe(422);
    expect(await errorOf(res)).toMatchObject({ code: "missing_inputs", details: { inputs: ["payload"] } });
    expect(await workflowIds(h.m)).toEqual([]);
  });

  it("names unknown, repeated and invalid fields with 422", async () => {
    const form = workflowForm(SAMPLE, { requirement: "x", "inputs.bad-name": "x" });
    form.append("workflow", "fun x():\n    pass\n");
    const res = await h.app.request("/workflows", { method: "POST", headers: alice, body: form });
    expect(res.status).toBe(422);
    expect((await errorOf(res)).details).toEqual([
      { path: "requirement", message: "unknown field" },
      { path: "inputs.bad-name", message: expect.stringContaining("input name") },
      { path: "workflow", message: "given more than once" },
    ]);
    const json = await h.postJson(
      "/workflows",
      { workflow: SAMPLE, callback_url: "ftp://x", extra: 1 },
      alice,
    );
    expect(json.status).toBe(422);
    expect(((await errorOf(json)).details as { path: string }[]).map((d) => d.path).sort()).toEqual([
      "",
      "callback_secret",
      "callback_url",
    ]);
  });

  it("refuses other content types with 415 and unreadable JSON with 400", async () => {
    const plain = await h.app.request("/workflows", {
      method: "POST",
      headers: { ...alice, "content-type": "text/plain" },
      body: SAMPLE,
    });
    expect(plain.status).toBe(415);
    expect((await errorOf(plain)).code).toBe("unsupported_media_type");
    const broken = await h.app.request("/workflows", {
      method: "POST",
      headers: { ...alice, "content-type": "application/json" },
      body: "{not json",
    });
    expect(broken.status).toBe(400);
    expect(await workflowIds(h.m)).toEqual([]);
  });

  it("refuses a body over the limit with 413, from Content-Length or while reading a chunked body", async () => {
    const big = "x".repeat(65 * 1024);
    const declared = await h.postJson("/workflows", { workflow: big }, alice);
    expect(declared.status).toBe(413);
    expect((await errorOf(declared)).code).toBe("payload_too_large");

    let sent = 0;
    const chunk = new TextEncoder().encode("y".repeat(16 * 1024));
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += chunk.length;
        if (sent > 1024 * 1024) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const streamed = await h.app.request("/workflows", {
      method: "POST",
      headers: { ...alice, "content-type": "application/json", "transfer-encoding": "chunked" },
      body: endless,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(sent).toBeLessThan(1024 * 1024); // it stopped reading at the limit
    expect(await workflowIds(h.m)).toEqual([]);
  });

  it("returns the first workflow for a repeated Idempotency-Key and 409 for another body", async () => {
    const headers = { ...alice, "idempotency-key": "deploy-42" };
    const first = await submit(headers);
    expect(first.status).toBe(201);
    const { id } = WorkflowDetail.parse(await first.json());
    const again = await submit(headers);
    expect(again.status).toBe(200);
    expect(WorkflowDetail.parse(await again.json()).id).toBe(id);
    const json = await h.postJson("/workflows", { workflow: SAMPLE, name: "sample" }, headers);
    expect(json.status).toBe(200); // the same request in the other form
    const other = await submit(headers, SAMPLE.replace("a,b,c", "d,e,f"));
    expect(other.status).toBe(409);
    expect((await errorOf(other)).code).toBe("idempotency_conflict");
    const bobs = await submit({ ...bob, "idempotency-key": "deploy-42" });
    expect(bobs.status).toBe(201); // keys are per owner
    expect((await workflowIds(h.m)).length).toBe(2);
    const bad = await submit({ ...alice, "idempotency-key": "has space" });
    expect(bad.status).toBe(400);
  });

  it("answers {id} alone to Prefer: return=minimal, after recording the same workflow", async () => {
    const minimal = { ...alice, prefer: "respond-async, return=minimal" };
    const res = await submit(minimal);
    expect(res.status).toBe(201);
    expect(res.headers.get("preference-applied")).toBe("return=minimal");
    const body = (await res.json()) as { id: string };
    expect(Object.keys(body)).toEqual(["id"]);
    expect(res.headers.get("location")).toBe(`/workflows/${body.id}`);
    const read = await h.app.request(`/workflows/${body.id}`, { headers: alice });
    expect(WorkflowDetail.parse(await read.json()).tasks.map((t) => t.name)).toEqual(["extract", "shout"]);
    // A repeated Idempotency-Key answers minimally too; another preference gets the whole workflow.
    const keyed = { ...minimal, "idempotency-key": "minimal-1" };
    const first = (await (await submit(keyed)).json()) as { id: string };
    const again = await submit({ ...keyed, prefer: 'return="minimal"' });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ id: first.id });
    const full = await submit({ ...alice, prefer: "return=representation" });
    expect(full.headers.get("preference-applied")).toBeNull();
    expect(WorkflowDetail.parse(await full.json()).tasks).toHaveLength(2);
  });

  it("answers 500 without details when storage fails, and logs the cause", async () => {
    const broken = await apiHarness("broken_storage", {
      storage: {
        put: () => Promise.reject(new Error("disk on fire at /secret/path")),
        get: () => Promise.resolve(null),
        signUrl: () => Promise.reject(new Error("unused")),
        move: () => Promise.reject(new Error("unused")),
        remove: () => Promise.resolve(),
      },
    });
    try {
      const res = await broken.app.request("/workflows", {
        method: "POST",
        headers: await broken.as("alice"),
        body: workflowForm(SAMPLE),
      });
      expect(res.status).toBe(500);
      const raw = await res.text();
      expect(JSON.parse(raw)).toEqual({
        error: { code: "internal", message: "internal error", details: null },
      });
      expect(raw).not.toContain("secret");
      expect(broken.errors).toHaveLength(1);
      expect(String((broken.errors[0]!.obj as { err: Error }).err)).toContain("disk on fire");
      expect(await workflowIds(broken.m)).toEqual([]);
    } finally {
      await broken.close(true);
    }
  });

  it("answers 503 when the server has no storage", async () => {
    const bare = await apiHarness("no_storage", { storage: null });
    try {
      const res = await bare.app.request("/workflows", {
        method: "POST",
        headers: await bare.as("a"),
        body: workflowForm(SAMPLE),
      });
      expect(res.status).toBe(503);
    } finally {
      await bare.close(true);
    }
  });
});

describe("GET /workflows", () => {
  it("lists the caller's workflows newest first, by status, a page at a time", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await submitted());
    await submitted(bob);
    await h.app.request(`/workflows/${ids[1]}/cancel`, { method: "POST", headers: alice });

    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const res = await h.app.request(`/workflows?limit=2${cursor ? `&cursor=${cursor}` : ""}`, {
        headers: alice,
      });
      expect(res.status).toBe(200);
      const page = WorkflowList.parse(await res.json());
      pages.push(page.workflows.map((w) => w.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages).toEqual([[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]);

    const cancelled = WorkflowList.parse(
      await (await h.app.request("/workflows?status=cancelled", { headers: alice })).json(),
    );
    expect(cancelled.workflows.map((w) => w.id)).toEqual([ids[1]]);
    expect((await h.app.request("/workflows?status=nope", { headers: alice })).status).toBe(400);
    expect((await h.app.request("/workflows?cursor=xyz", { headers: alice })).status).toBe(400);
    expect((await h.app.request("/workflows?limit=1000", { headers: alice })).status).toBe(400);
  });
});

describe("one workflow", () => {
  it("shows every task's state, attempts and runs", async () => {
    const id = await submitted(alice, `@retries(1)\n${SAMPLE}`);
    await driveToEnd(h.m, ["extract"]);
    const res = await h.app.request(`/workflows/${id}`, { headers: alice });
    const body = WorkflowDetail.parse(await res.json());
    expect(body.status).toBe("failed");
    const [extract, shout] = body.tasks;
    expect(extract).toMatchObject({
      status: "failed",
      attempt: 2,
      maxRetries: 1,
      error: "exited with code 1",
    });
    expect(extract!.runs.map((r) => [r.attempt, r.status, r.failureReason, r.exitCode])).toEqual([
      [1, "failed", "exit_code", 1],
      [2, "failed", "exit_code", 1],
    ]);
    expect(shout).toMatchObject({ status: "upstream_failed", runs: [] });

    // One task by name, as a client following it reads it: the same as in the whole workflow.
    const one = await h.app.request(`/workflows/${id}/tasks/extract`, { headers: alice });
    expect(one.status).toBe(200);
    expect(Task.parse(await one.json())).toEqual(extract);
    for (const [path, who] of [
      [`/workflows/${id}/tasks/nope`, alice],
      [`/workflows/${id}/tasks/not-a-name`, alice],
      [`/workflows/${id}/tasks/extract`, bob],
      [`/workflows/${crypto.randomUUID()}/tasks/extract`, alice],
    ] as const) {
      const res = await h.app.request(path, { headers: who });
      expect(res.status, path).toBe(404);
      expect((await errorOf(res)).message, path).toMatch(/^(task|workflow) not found$/);
    }
    const missing = await h.app.request(`/workflows/${id}/tasks/nope`, { headers: alice });
    expect((await errorOf(missing)).details).toEqual({ task: "nope" });
  });

  it("gives its tasks a page at a time, by name, of the states asked for", async () => {
    // A root, 250 tasks that read it, and one that reads two of them: 252 tasks.
    const fan = Array.from(
      { length: 250 },
      (_, i) => `fun t${String(i).padStart(3, "0")}(x:root):\n    print(1)\n`,
    );
    const source = `fun root():\n    print(0)\n\n${fan.join("\n")}\nfun zlast(a:t000, b:t001):\n    print(2)\n`;
    const id = await submitted(alice, source);
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const res = await h.app.request(`/workflows/${id}/tasks?limit=100${query}`, { headers: alice });
      expect(res.status).toBe(200);
      const page = TaskList.parse(await res.json());
      pages.push(page.tasks.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor && pages.length < 10);
    expect(pages.map((p) => p.length)).toEqual([100, 100, 52]);
    const names = pages.flat();
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(252);
    expect(names.slice(0, 2)).toEqual(["root", "t000"]);

    // The root runs and succeeds: its page shows its run; the states filter the pages.
    await driveToEnd(h.m);
    const ended = async (q: string) => {
      const res = await h.app.request(`/workflows/${id}/tasks?${q}`, { headers: alice });
      expect(res.status).toBe(200);
      return TaskList.parse(await res.json());
    };
    const succeeded = await ended("status=succeeded&limit=1000");
    expect(succeeded.tasks).toHaveLength(252);
    expect(succeeded.nextCursor).toBeNull();
    expect(succeeded.tasks[0]!.runs.map((r) => [r.attempt, r.status])).toEqual([[1, "succeeded"]]);
    expect((await ended("status=failed,upstream_failed")).tasks).toEqual([]);
    const last = await ended("cursor=t249&limit=5");
    expect(last.tasks.map((t) => t.name)).toEqual(["zlast"]);
    expect(last.tasks[0]!.params).toEqual([
      { name: "a", upstream: "t000" },
      { name: "b", upstream: "t001" },
    ]);

    const bad = ["status=nope", "status=", "status=succeeded,nope", "limit=0", "limit=1001", "limit=x"];
    for (const q of [...bad, "cursor=a%00b", "cursor=a/b", `cursor=${"t".repeat(64)}`]) {
      const res = await h.app.request(`/workflows/${id}/tasks?${q}`, { headers: alice });
      expect(res.status, q).toBe(400);
      expect((await errorOf(res)).message, q).toContain(q.split("=")[0]!);
    }
    for (const [path, who] of [
      [`/workflows/${id}/tasks`, bob],
      [`/workflows/${crypto.randomUUID()}/tasks`, alice],
      ["/workflows/not-a-uuid/tasks", alice],
    ] as const) {
      expect((await h.app.request(path, { headers: who })).status, path).toBe(404);
    }
  });

  it("is not found for another owner, an unknown id or a malformed one", async () => {
    const id = await submitted();
    for (const path of [`/workflows/${id}`, `/workflows/${crypto.randomUUID()}`, "/workflows/not-a-uuid"]) {
      const res = await h.app.request(path, { headers: path.includes(id) ? bob : alice });
      expect(res.status).toBe(404);
      expect((await errorOf(res)).code).toBe("not_found");
    }
  });

  it("cancels once; another owner can neither cancel nor retry it", async () => {
    const id = await submitted();
    expect((await h.app.request(`/workflows/${id}/cancel`, { method: "POST", headers: bob })).status).toBe(
      404,
    );
    expect((await h.app.request(`/workflows/${id}/retry`, { method: "POST", headers: bob })).status).toBe(
      404,
    );
    expect((await h.m.store.workflowSummary(id))?.status).toBe("queued");

    const res = await h.app.request(`/workflows/${id}/cancel`, { method: "POST", headers: alice });
    expect(res.status).toBe(200);
    const body = WorkflowDetail.parse(await res.json());
    expect(body.status).toBe("cancelled");
    expect(body.tasks.every((t) => t.status === "cancelled")).toBe(true);
    const again = await h.app.request(`/workflows/${id}/cancel`, { method: "POST", headers: alice });
    expect(again.status).toBe(409);
    expect(await errorOf(again)).toMatchObject({ code: "workflow_ended", details: { status: "cancelled" } });

    expect((await h.app.request(`/workflows/${id}/retry`, { method: "POST", headers: bob })).status).toBe(
      404,
    );
    expect((await h.m.store.workflowSummary(id))?.status).toBe("cancelled");
  });

  it("retries a failed workflow from its failure, and refuses a running one", async () => {
    const id = await submitted();
    const early = await h.app.request(`/workflows/${id}/retry`, { method: "POST", headers: alice });
    expect(early.status).toBe(409);
    expect((await errorOf(early)).code).toBe("not_retryable");
    await driveToEnd(h.m, ["shout"]);
    const res = await h.app.request(`/workflows/${id}/retry`, { method: "POST", headers: alice });
    expect(res.status).toBe(200);
    const body = WorkflowDetail.parse(await res.json());
    expect(body.status).toBe("running");
    expect(body.tasks.map((t) => [t.name, t.status, t.attempt])).toEqual([
      ["extract", "succeeded", 1],
      ["shout", "queued", 2],
    ]);
    await driveToEnd(h.m);
    expect((await h.m.store.workflowSummary(id))?.status).toBe("succeeded");
  });
});
