import { afterEach, beforeEach, expect, it } from "vitest";
import { TaskList, WorkflowDetail } from "../functions/schemas.ts";
import { fanWorkflow } from "../bench/stats.ts";
import { apiHarness, type ApiHarness } from "./support/api.ts";

// GET /workflows/:id of a workflow too big for one string: its tasks are read a batch of rows at a time
// (shared/db/workflow-json.ts) and the document is streamed in pieces.

let h: ApiHarness;
let alice: Record<string, string>;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name, { settings: { maxRequestBytes: 1 << 20 } });
  alice = await h.as("alice");
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

it("streams a big workflow whole: every task in order with its runs, as its pages show them", async () => {
  const submit = await h.postJson("/workflows", { workflow: fanWorkflow(3998), name: "fan" }, alice);
  expect(submit.status).toBe(201);
  const id = WorkflowDetail.parse(await submit.json()).id;
  // Three attempts each for the tasks whose rows straddle the read's first batch of 1,000 rows (one row a
  // task without runs, one a run): m996's three are rows 1000-1002; and one for m1500.
  await h.m.db`
    insert into dwop.runs (task_id, workflow_id, attempt, status, executor, owner, exit_code, failure_reason,
                           created_at, started_at, finished_at)
    select t.id, t.workflow_id, a, 'failed', 'local', t.owner, a, 'exit_code', now(), now(), now()
    from dwop.tasks t, generate_series(1, 3) a
    where t.workflow_id = ${id} and t.name in ('m995', 'm996', 'm997')
    union all
    select t.id, t.workflow_id, 1, 'running', 'local', t.owner, null, null, now(), now(), null
    from dwop.tasks t where t.workflow_id = ${id} and t.name = 'm1500'`;

  const res = await h.app.request(`/workflows/${id}`, { headers: alice });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/json");
  const text = await res.text();
  expect(text.length).toBeGreaterThan(1 << 20); // more than ONE_PIECE: sent in pieces
  const body = WorkflowDetail.parse(JSON.parse(text));
  expect(body).toMatchObject({ id, name: "fan", taskCount: 4000 });
  expect(body.tasks.map((t) => t.name)).toEqual([
    "root",
    ...Array.from({ length: 3998 }, (_, i) => `m${i}`),
    "sink",
  ]);
  const runs = (name: string) =>
    body.tasks.find((t) => t.name === name)!.runs.map((r) => [r.attempt, r.status, r.exitCode]);
  for (const name of ["m995", "m996", "m997"]) {
    expect(runs(name), name).toEqual([
      [1, "failed", 1],
      [2, "failed", 2],
      [3, "failed", 3],
    ]);
  }
  expect(runs("m1500")).toEqual([[1, "running", null]]);
  expect(body.tasks.filter((t) => t.runs.length > 0)).toHaveLength(4);

  // The same tasks, field for field, as the paged read (objects, serialized whole) gives them.
  const paged: unknown[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await h.app.request(`/workflows/${id}/tasks?limit=1000${query}`, { headers: alice });
    const parsed = TaskList.parse(await page.json());
    paged.push(...parsed.tasks);
    cursor = parsed.nextCursor;
  } while (cursor);
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : 1);
  expect([...body.tasks].sort(byName)).toEqual((paged as { name: string }[]).sort(byName));
});
