import type { Hono } from "hono";
import type { TriggerRow } from "../shared/db/api-store.ts";
import { parseWorkflow, workflowInputs } from "../shared/dsl/index.ts";
import { checkWorkflowSize } from "../shared/submit.ts";
import { readJson } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { ApiError, notFound } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { refuseUnknownPools } from "./pools.ts";
import { Trigger, TRIGGER_NAME, TriggerCreate, TriggerList } from "./schemas.ts";

/** The one input a webhook delivery gives its workflow: the request body. */
export const PAYLOAD_INPUT = "payload";

/** Registering, listing and deleting the caller's webhook triggers. Secrets go in, never out. */
export function triggerRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.post("/triggers", async (c) => {
    const owner = c.get("caller").owner;
    const body = await readJson(c, TriggerCreate);
    checkWorkflowSize(body.workflow, deps.settings.submitLimits); // before the parse, which blocks
    const spec = parseWorkflow(body.workflow, `${body.name}.workflow`);
    const extra = workflowInputs(spec).filter((n) => n !== PAYLOAD_INPUT);
    if (extra.length > 0) {
      const message = `a trigger's workflow can read only inputs.${PAYLOAD_INPUT}, not ${extra.map((n) => `inputs.${n}`).join(", ")}`;
      throw new ApiError(422, "invalid_request", message, { inputs: extra });
    }
    await refuseUnknownPools(deps, spec);
    const requirements = body.requirements ?? null;
    const id = await deps.api.createTrigger({ ...body, owner, source: body.workflow, requirements });
    // Names are the caller's own: this says nothing of other owners' triggers (nor do secrets, which
    // need not be unique, since each delivery's signature names its trigger's id).
    if (id === null)
      throw new ApiError(409, "trigger_exists", `you already have a trigger named ${body.name}`);
    const [row] = await deps.api.listTriggers(owner, body.name);
    if (row?.id !== id) throw notFound("trigger");
    return c.json(view(row), 201, { Location: `/triggers/${body.name}` });
  });

  app.get("/triggers", async (c) => {
    const rows = await deps.api.listTriggers(c.get("caller").owner);
    return c.json({ triggers: rows.map(view) });
  });

  app.get("/triggers/:name", async (c) => {
    const name = c.req.param("name");
    const [row] = TRIGGER_NAME.test(name) ? await deps.api.listTriggers(c.get("caller").owner, name) : [];
    if (!row) throw notFound("trigger");
    return c.json(view(row));
  });

  app.delete("/triggers/:name", async (c) => {
    const name = c.req.param("name");
    if (!TRIGGER_NAME.test(name) || !(await deps.api.deleteTrigger(c.get("caller").owner, name))) {
      throw notFound("trigger");
    }
    return c.body(null, 204);
  });
}

function view(t: TriggerRow) {
  return {
    id: t.id,
    name: t.name,
    url: `/hooks/${t.id}`,
    workflow: t.source,
    requirements: t.requirements,
    createdAt: t.createdAt,
  };
}

const one = { description: "the trigger (its secret is never returned)", schema: Trigger };

export const triggerDocs: RouteDoc[] = [
  {
    method: "post",
    path: "/triggers",
    summary: "Register a webhook trigger: a signed POST to its url (/hooks/{id}) starts its workflow",
    auth: "bearer",
    body: [{ contentType: "application/json", schema: TriggerCreate }],
    responses: { 201: one },
    errors: [400, 409, 413, 415, 422],
  },
  {
    method: "get",
    path: "/triggers",
    summary: "The caller's triggers",
    auth: "bearer",
    responses: { 200: { description: "every trigger of the caller", schema: TriggerList } },
  },
  {
    method: "get",
    path: "/triggers/:name",
    summary: "One trigger",
    auth: "bearer",
    responses: { 200: one },
    errors: [404],
  },
  {
    method: "delete",
    path: "/triggers/:name",
    summary: "Delete a trigger",
    auth: "bearer",
    responses: { 204: { description: "deleted" } },
    errors: [404],
  },
];
