import type { Context, Hono } from "hono";
import {
  ACTIVE_RUN_STATES,
  OUTPUT_BUCKET,
  TERMINAL_TASK_STATES,
  objectPaths,
  type TaskState,
} from "../shared/model.ts";
import { needStorage, taskNameParam, uuidParam } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { notFound, parseWith } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { LogsQuery, Run } from "./schemas.ts";

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
    const { id, name, attempt: latest, status } = await findTask(c, deps);
    const { attempt = latest, offset = 0 } = parseWith(LogsQuery, c.req.query(), 400, "query");
    if (attempt < 1 || attempt > latest) throw notFound(`log of attempt ${attempt}`);
    const taskEnded = attempt < latest || TERMINAL_TASK_STATES.includes(status);
    return logResponse(c, deps, { id, name, attempt, offset, taskEnded });
  });
}

const LIVE_READ_LIMIT = 1024 * 1024;

/**
 * One attempt's log from `offset`: the stored object once the worker has stored it (the whole log, so
 * complete), else the live chunks shipped so far (complete once the attempt has ended: whatever ended
 * it, the log up to that moment stays readable). `x-log-size` is the offset to ask for next.
 */
async function logResponse(
  c: Context<ApiEnv>,
  deps: ApiDeps,
  q: { id: string; name: string; attempt: number; offset: number; taskEnded: boolean },
): Promise<Response> {
  const owner = c.get("caller").owner;
  const live = await deps.runLogs.read(owner, q.id, q.name, q.attempt, q.offset, LIVE_READ_LIMIT);
  const ended = live ? !ACTIVE_RUN_STATES.includes(live.status) : q.taskEnded;
  if (live && !ended && live.data.length > 0)
    return logBody(c, live.data, q.offset + live.data.length, false);
  const stored = await needStorage(deps.storage).get(OUTPUT_BUCKET, objectPaths.log(q.id, q.name, q.attempt));
  if (stored) return logBody(c, skipBytes(stored, q.offset), null, true);
  if (ended && (!live || live.size === 0)) throw notFound(`log of attempt ${q.attempt}`);
  return logBody(c, live?.data ?? new Uint8Array(), q.offset + (live?.data.length ?? 0), ended);
}

function logBody(
  c: Context,
  body: Uint8Array | ReadableStream<Uint8Array>,
  nextOffset: number | null,
  complete: boolean,
): Response {
  const headers: Record<string, string> = {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-log-complete": String(complete),
  };
  if (nextOffset !== null) headers["x-log-size"] = String(nextOffset);
  return c.body(body instanceof Uint8Array ? new Uint8Array(body).buffer : body, 200, headers);
}

/** The stream without its first n bytes. */
function skipBytes(stream: ReadableStream<Uint8Array>, n: number): ReadableStream<Uint8Array> {
  if (n === 0) return stream;
  let left = n;
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (left >= chunk.length) {
          left -= chunk.length;
          return;
        }
        controller.enqueue(left > 0 ? chunk.subarray(left) : chunk);
        left = 0;
      },
    }),
  );
}

/** The caller's workflow and one of its tasks, with the task's latest attempt; 404 for anything else. */
async function findTask(
  c: Context<ApiEnv>,
  deps: ApiDeps,
): Promise<{ id: string; name: string; attempt: number; status: TaskState }> {
  const id = uuidParam(c, "id", "workflow");
  const name = taskNameParam(c);
  const task = await deps.api.taskAttempt(c.get("caller").owner, id, name);
  if (task === null) throw notFound("task");
  return { id, name, ...task };
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
    summary:
      "One attempt's log (stdout and stderr merged by line), live while it runs: from ?offset=, with " +
      "X-Log-Size (the offset to ask for next, while the log grows) and X-Log-Complete (true once it will not grow)",
    auth: "bearer",
    query: LogsQuery,
    responses: text("the log bytes"),
    errors: [400, 404, 503],
  },
];
