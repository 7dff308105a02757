import type { Hono } from "hono";
import * as z from "zod";
import { parseWorkflow, workflowInputs } from "../shared/dsl/index.ts";
import { checkWorkflowSize } from "../shared/submit.ts";
import { readJson } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import type { RouteDoc } from "./openapi.ts";
import { withoutNul } from "./schemas.ts";

/** What `POST /validate` reads: the workflow source and the file name its errors are reported against. */
export const ValidateRequest = z.strictObject({
  workflow: z.string().meta({ description: "the .workflow source" }),
  file: z
    .string()
    .max(200)
    .refine(withoutNul, "must not contain the NUL character (U+0000)")
    .optional()
    .meta({ description: "the file name shown in errors (default: workflow.workflow)" }),
});

const TaskOptions = z.object({
  retries: z.int(),
  timeoutSeconds: z.int().nullable(),
  image: z.string().nullable(),
  cpu: z.string().nullable(),
  memory: z.string().nullable(),
  pool: z.string().nullable(),
  priority: z.int().nullable(),
});

/** The parsed DAG: tasks in dependency order, with their parameters and options, and the inputs read. */
export const ValidatedWorkflow = z.object({
  valid: z.literal(true),
  tasks: z.array(
    z.object({
      name: z.string(),
      line: z.int().meta({ description: "the line of the task's `fun`" }),
      params: z.array(z.object({ name: z.string(), upstream: z.string() })),
      options: TaskOptions,
    }),
  ),
  inputs: z.array(z.string()).meta({ description: "the inputs.NAME the workflow reads" }),
});

/**
 * `POST /validate`: parses a workflow without storing or running anything, so an editor can show DSL
 * errors (400 `invalid_workflow`, each error's line and column, as `POST /workflows` answers) as the
 * user types, and draw the DAG before it is submitted.
 */
export function validateRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.post("/validate", async (c) => {
    const body = await readJson(c, ValidateRequest);
    checkWorkflowSize(body.workflow, deps.settings.submitLimits); // 413 before the synchronous parse
    const spec = parseWorkflow(body.workflow, body.file ?? "workflow.workflow");
    return c.json({
      valid: true as const,
      tasks: spec.tasks.map(({ name, line, params, options }) => ({ name, line, params, options })),
      inputs: workflowInputs(spec),
    });
  });
}

export const validateDocs: RouteDoc[] = [
  {
    method: "post",
    path: "/validate",
    summary: "Parse a workflow and return its DAG, or its DSL errors with line and column; stores nothing",
    auth: "bearer",
    body: [{ contentType: "application/json", schema: ValidateRequest }],
    responses: { 200: { description: "the workflow is valid", schema: ValidatedWorkflow } },
    errors: [400, 413, 415, 422],
  },
];
