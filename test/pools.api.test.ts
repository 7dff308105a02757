import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PoolList, WorkflowDetail } from "../functions/schemas.ts";
import { API_TOKEN, apiHarness, type ApiHarness } from "./support/api.ts";

/** /pools, PATCH /keys/:id, a submission's priority and the waiting sentence, in process. */

let h: ApiHarness;
const operator = { authorization: `Bearer ${API_TOKEN}` };

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

function send(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  return h.app.request(path, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function pools(headers: Record<string, string>) {
  const res = await send("GET", "/pools", headers);
  expect(res.status).toBe(200);
  return PoolList.parse(await res.json()).pools;
}

describe("/pools", () => {
  it("lets the operator make, resize and delete a pool, and anyone signed in read it", async () => {
    const alice = await h.as("alice");
    const made = await send("PUT", "/pools/gpu", operator, { slots: 2 });
    expect(made.status).toBe(200);
    expect(await made.json()).toMatchObject({ name: "gpu", slots: 2, running: 0, waiting: 0 });
    expect((await send("PUT", "/pools/gpu", operator, { slots: 5 })).status).toBe(200);
    expect(await pools(alice)).toMatchObject([{ name: "gpu", slots: 5 }]);

    expect((await send("DELETE", "/pools/gpu", operator)).status).toBe(204);
    expect(await pools(alice)).toEqual([]);
    const gone = await send("DELETE", "/pools/gpu", operator);
    expect([gone.status, ((await gone.json()) as { error: { code: string } }).error.code]).toEqual([
      404,
      "not_found",
    ]);
  });

  it("refuses other callers' changes (403) and bad input (400/422), changing nothing", async () => {
    const alice = await h.as("alice");
    const cases: [string, string, Record<string, string>, unknown, number][] = [
      ["PUT", "/pools/gpu", alice, { slots: 1 }, 403],
      ["PUT", "/pools/bad%20name", operator, { slots: 1 }, 400],
      ["PUT", "/pools/gpu", operator, { slots: -1 }, 422],
      ["PUT", "/pools/gpu", operator, { slots: 10_001 }, 422],
      ["PUT", "/pools/gpu", operator, { slots: 1.5 }, 422],
      ["PUT", "/pools/gpu", operator, { slots: 1, extra: true }, 422],
      ["DELETE", "/pools/gpu", alice, undefined, 403],
    ];
    for (const [method, path, headers, body, status] of cases) {
      const res = await send(method, path, headers, body);
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(status);
    }
    expect(await pools(operator)).toEqual([]);
  });

  it("refuses a workflow naming an unknown pool (422), and the delete of a pool an open task names (409)", async () => {
    const alice = await h.as("alice");
    const workflow = '@pool("gpu")\nfun train():\n    print(1)\n';
    const refused = await h.postJson("/workflows", { workflow }, alice);
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("unknown_pool");

    await send("PUT", "/pools/gpu", operator, { slots: 1 });
    const accepted = await h.postJson("/workflows", { workflow, priority: 7 }, alice);
    expect(accepted.status).toBe(201);
    const detail = WorkflowDetail.parse(await accepted.json());
    expect(detail.tasks[0]).toMatchObject({ pool: "gpu", priority: 7, waiting: null });
    expect(await pools(alice)).toMatchObject([{ name: "gpu", waiting: 1 }]);

    const inUse = await send("DELETE", "/pools/gpu", operator);
    expect(inUse.status).toBe(409);
    expect(((await inUse.json()) as { error: { code: string } }).error.code).toBe("pool_in_use");
  });

  it("says on the task why it waits: its pool is full", async () => {
    const alice = await h.as("alice");
    await send("PUT", "/pools/one", operator, { slots: 1 });
    const workflow = '@pool("one")\nfun a():\n    print(1)\n\n@pool("one")\nfun b():\n    print(2)\n';
    const id = ((await (await h.postJson("/workflows", { workflow }, alice)).json()) as { id: string }).id;
    const claimed = await h.m.store.claimOutbox("c", 10, 30);
    for (const c of claimed) await h.m.store.startRun(c.message, "d", "local");
    const detail = WorkflowDetail.parse(await (await send("GET", `/workflows/${id}`, alice)).json());
    expect(detail.tasks.map((t) => [t.name, t.status, t.waiting])).toEqual([
      ["a", "dispatched", null],
      ["b", "queued", "waiting for pool one (1/1 slots busy)"],
    ]);
  });
});

describe("PATCH /keys/:id", () => {
  it("lets only the operator set a key's cap on its owner's running tasks", async () => {
    const alice = await h.as("alice");
    const key = (await (await h.postJson("/keys", { name: "ci" }, alice)).json()) as { id: string };
    expect((await send("PATCH", `/keys/${key.id}`, alice, { maxRunning: 5 })).status).toBe(403);
    const set = await send("PATCH", `/keys/${key.id}`, operator, { maxRunning: 5 });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ id: key.id, maxRunning: 5 });
    const keys = (await (await send("GET", "/keys", alice)).json()) as { keys: { maxRunning: number }[] };
    expect(keys.keys.map((k) => k.maxRunning)).toEqual([5]);

    expect((await send("PATCH", `/keys/${key.id}`, operator, { maxRunning: -1 })).status).toBe(422);
    const unknown = "00000000-0000-4000-8000-000000000000";
    expect((await send("PATCH", `/keys/${unknown}`, operator, { maxRunning: 1 })).status).toBe(404);
    expect((await send("PATCH", `/keys/${key.id}`, operator, { maxRunning: null })).status).toBe(200);
  });
});
