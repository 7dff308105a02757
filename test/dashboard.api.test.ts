import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DASHBOARD_JS, DASHBOARD_VERSION } from "../functions/dashboard/assets.generated.ts";
import { WorkflowSummaryList } from "../functions/dashboard/routes.ts";
import { ValidatedWorkflow } from "../functions/validate.ts";
import { API_TOKEN, apiHarness, driveToEnd, SAMPLE, workflowForm, type ApiHarness } from "./support/api.ts";

// The dashboard's side of the app, in process: its page and assets, its list query, and POST /validate.

let h: ApiHarness;
let passed = true;
const token = { authorization: `Bearer ${API_TOKEN}` };

beforeAll(async () => {
  h = await apiHarness("dashboard_api");
});
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});
afterAll(async () => {
  await h.close(passed);
});

describe("the dashboard's page", () => {
  it("is served at /ui/ (from / and /ui too) with no data, a strict CSP, and assets named by their hash", async () => {
    const root = await h.app.request("/");
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("ui/");
    expect((await h.app.request("/ui")).headers.get("location")).toBe("ui/");
    const page = await h.app.request("/ui/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain(`app.js?v=${DASHBOARD_VERSION}`);
    expect(html).not.toMatch(/<script>|style=/);

    const js = await h.app.request(`/ui/app.js?v=${DASHBOARD_VERSION}`);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(js.headers.get("cache-control")).toContain("immutable");
    expect(await js.text()).toBe(DASHBOARD_JS);
    const again = await h.app.request("/ui/app.css", {
      headers: { "if-none-match": `"${DASHBOARD_VERSION}"` },
    });
    expect(again.status).toBe(304);
  });

  it("leaves the JSON API as it was: unknown paths are JSON 404s, and /workflows still needs a token", async () => {
    const missing = await h.app.request("/ui/nothing-here");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
    expect((await h.app.request("/workflows")).status).toBe(401);
    expect((await h.app.request("/ui/api/workflows")).status).toBe(401);
  });
});

describe("GET /ui/api/workflows", () => {
  it("lists the caller's workflows with owner and task counts by state, filtered and searched", async () => {
    const submit = async (name: string, headers: Record<string, string>) => {
      const res = await h.app.request("/workflows", {
        method: "POST",
        headers,
        body: workflowForm(SAMPLE, {}, `${name}.workflow`),
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    const alice = await h.as("alice");
    const good = await submit("nightly_etl", alice);
    await driveToEnd(h.m);
    const bad = await submit("hourly_100%", alice);
    await driveToEnd(h.m, ["extract"]);
    await submit("someone_elses", await h.as("bob"));

    const list = async (query: string) => {
      const res = await h.app.request(`/ui/api/workflows${query}`, { headers: alice });
      expect(res.status).toBe(200);
      return WorkflowSummaryList.parse(await res.json());
    };
    const all = await list("");
    expect(all.owner).toBe("alice");
    expect(all.workflows.map((w) => [w.id, w.owner, w.status, w.tasks])).toEqual([
      [bad, "alice", "failed", { failed: 1, upstream_failed: 1 }],
      [good, "alice", "succeeded", { succeeded: 2 }],
    ]);
    expect((await list("?status=failed")).workflows.map((w) => w.id)).toEqual([bad]);
    expect((await list("?q=NIGHTLY")).workflows.map((w) => w.id)).toEqual([good]);
    expect((await list(`?q=${good.slice(0, 8)}`)).workflows.map((w) => w.id)).toEqual([good]);
    // LIKE's wildcards match only themselves.
    expect((await list("?q=100%25")).workflows.map((w) => w.id)).toEqual([bad]);
    expect((await list("?q=_")).workflows).toHaveLength(2);
    expect((await list("?q=%25")).workflows.map((w) => w.id)).toEqual([bad]);
    const first = await list("?limit=1");
    expect(first.nextCursor).toBe(bad);
    expect((await list(`?limit=1&cursor=${first.nextCursor}`)).workflows.map((w) => w.id)).toEqual([good]);
    expect((await h.app.request("/ui/api/workflows?status=nope", { headers: alice })).status).toBe(400);
  });
});

describe("POST /validate", () => {
  it("returns the DAG and the inputs read, and stores nothing", async () => {
    const res = await h.postJson(
      "/validate",
      { workflow: "fun a(doc:inputs.doc):\n    pass\n\n@retries(2)\nfun b(x:a):\n    pass\n" },
      token,
    );
    expect(res.status).toBe(200);
    const body = ValidatedWorkflow.parse(await res.json());
    expect(body.inputs).toEqual(["doc"]);
    expect(body.tasks.map((t) => [t.name, t.line, t.params, t.options.retries])).toEqual([
      ["a", 1, [{ name: "doc", upstream: "inputs.doc" }], 0],
      ["b", 5, [{ name: "x", upstream: "a" }], 2],
    ]);
  });

  it("answers DSL errors as POST /workflows does: 400 invalid_workflow, each with line and column", async () => {
    const res = await h.postJson(
      "/validate",
      { workflow: "fun extract():\n    pass\n\nfun b(x:extrct):\n    pass\n", file: "etl.workflow" },
      token,
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        code: "invalid_workflow",
        message: "the workflow has 1 error",
        details: [
          {
            file: "etl.workflow",
            line: 4,
            column: 9,
            message: "unknown upstream 'extrct' (did you mean 'extract'?)",
          },
        ],
      },
    });
    expect((await h.postJson("/validate", { workflow: "" }, token)).status).toBe(400);
    expect((await h.postJson("/validate", { source: "x" }, token)).status).toBe(422);
    expect((await h.postJson("/validate", { workflow: "fun a():\n    pass\n" }, {})).status).toBe(401);
  });
});
