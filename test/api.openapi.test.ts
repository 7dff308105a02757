import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as z from "zod";
import { ROUTE_DOCS } from "../functions/app.ts";
import { SubmitJson, WorkflowListQuery } from "../functions/schemas.ts";
import { apiHarness, type ApiHarness } from "./support/api.ts";

let h: ApiHarness;
let passed = true;

beforeAll(async () => {
  h = await apiHarness("openapi");
});
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});
afterAll(async () => {
  await h.close(passed);
});

interface Operation {
  security: unknown[];
  parameters: { name: string; in: string; required: boolean; schema: object }[];
  requestBody?: { content: Record<string, { schema: object }> };
  responses: Record<string, unknown>;
}

async function document(): Promise<{ openapi: string; paths: Record<string, Record<string, Operation>> }> {
  const res = await h.app.request("/openapi.json");
  expect(res.status).toBe(200);
  return res.json() as never;
}

describe("GET /openapi.json", () => {
  it("describes exactly the routes the app serves", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    const served = h.app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`)
      .sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method} ${path}`))
      .sort();
    expect(documented).toEqual(served);
    expect(ROUTE_DOCS).toHaveLength(served.length);
  });

  it("is generated from the schemas that validate requests", async () => {
    const doc = await document();
    const submit = doc.paths["/workflows"]!.post!;
    const { $schema: _, ...json } = z.toJSONSchema(SubmitJson, { io: "input" });
    expect(submit.requestBody?.content["application/json"]?.schema).toEqual(json);
    expect(Object.keys(submit.requestBody!.content)).toEqual(["multipart/form-data", "application/json"]);
    expect(Object.keys(submit.responses)).toEqual(
      expect.arrayContaining(["200", "201", "400", "401", "409", "413", "415", "422"]),
    );
    const list = doc.paths["/workflows"]!.get!;
    expect(list.parameters.map((p) => [p.name, p.in, p.required])).toEqual(
      Object.keys(WorkflowListQuery.shape).map((name) => [name, "query", false]),
    );
  });

  it("marks which routes need a bearer token", async () => {
    const doc = await document();
    const open = Object.entries(doc.paths)
      .flatMap(([path, ops]) =>
        Object.entries(ops).map(([method, op]) => ({ route: `${method} ${path}`, op })),
      )
      .filter(({ op }) => op.security.length === 0)
      .map(({ route }) => route)
      .sort();
    expect(open).toEqual(["get /healthz", "get /openapi.json", "get /readyz", "post /hooks/{id}"]);
  });
});
