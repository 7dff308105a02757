import type { Context, Hono } from "hono";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import { needStorage, uuidParam } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { notFound, parseWith } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { LogsQuery, Run } from "./schemas.ts";

const TASK_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** One attempt's record, and a task's output and logs streamed from storage. */
export function runRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.get("/workflows/:id/runs/:runId", async (c) => {
    const id = uuidParam(c, "id", "workflow");
    const runId = c.req.param("runId");
    if (!/^\d{1,18}$/.test(runId)) throw notFound("run");
    const run = await deps.api.run(c.get("caller").owner, id, runId);
    if (!run) throw notFound("run");
    return c.json(run);
  });

  app.get("/workflows/:id/tasks/:name/output", async (c) => {
    const { id, name } = await findTask(c, deps);
    return streamObject(c, deps, objectPaths.output(id, name), "output (the task has not succeeded)");
  });

  app.get("/workflows/:id/tasks/:name/logs", async (c) => {
    const { id, name, attempt: latest } = await findTask(c, deps);
    const { attempt = latest } = parseWith(LogsQuery, c.req.query(), 400, "query");
    if (attempt < 1 || attempt > latest) throw notFound(`log of attempt ${attempt}`);
    return streamObject(c, deps, objectPaths.log(id, name, attempt), `log of attempt ${attempt}`);
  });
}

/** The caller's workflow and one of its tasks, with the task's latest attempt; 404 for anything else. */
async function findTask(
  c: Context<ApiEnv>,
  deps: ApiDeps,
): Promise<{ id: string; name: string; attempt: number }> {
  const id = uuidParam(c, "id", "workflow");
  const name = c.req.param("name") ?? "";
  if (!TASK_NAME.test(name)) throw notFound("task");
  const attempt = await deps.api.taskAttempt(c.get("caller").owner, id, name);
  if (attempt === null) throw notFound("task");
  return { id, name, attempt };
}

/** Streams an object of the output bucket as it is read, never holding it whole. */
async function streamObject(c: Context, deps: ApiDeps, key: string, what: string): Promise<Response> {
  const body = await needStorage(deps.storage).get(OUTPUT_BUCKET, key);
  if (!body) throw notFound(what);
  return c.body(body, 200, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
}

const text = (description: string) => ({ 200: { description, contentType: "text/plain" } });

export const runDocs: RouteDoc[] = [
  {
    method: "get",
    path: "/workflows/:id/runs/:runId",
    summary: "One attempt: executor, job name, exit code, failure reason, log tail",
    auth: "bearer",
    responses: { 200: { description: "the run", schema: Run } },
    errors: [404],
  },
  {
    method: "get",
    path: "/workflows/:id/tasks/:name/output",
    summary: "A task's output (what it printed on stdout), streamed",
    auth: "bearer",
    responses: text("the output bytes"),
    errors: [404, 503],
  },
  {
    method: "get",
    path: "/workflows/:id/tasks/:name/logs",
    summary: "A task's full log (stdout and stderr) of one attempt, streamed",
    auth: "bearer",
    query: LogsQuery,
    responses: text("the log bytes"),
    errors: [400, 404, 503],
  },
];
