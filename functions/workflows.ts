import type { Context, Hono } from "hono";
import { TERMINAL_WORKFLOW_STATES } from "../shared/model.ts";
import { checkSubmission, submitWorkflow } from "../shared/submit.ts";
import { needStorage, taskNameParam, uuidParam } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { ApiError, notFound, parseWith } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import {
  SubmitForm,
  SubmitJson,
  Task,
  TaskList,
  TaskListQuery,
  WorkflowDetail,
  WorkflowList,
  WorkflowListQuery,
} from "./schemas.ts";
import { checkCallbackUrl, idempotencyKey, readSubmission, requestHash } from "./submission.ts";

/**
 * `POST /workflows`, `GET /workflows`, `GET /workflows/:id`, its tasks a page at a time or one by name, and
 * cancel and retry of one workflow.
 */
export function workflowRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.post("/workflows", (c) => submit(c, deps));

  app.get("/workflows", async (c) => {
    const q = parseWith(WorkflowListQuery, c.req.query(), 400, "query");
    const rows = await deps.api.listWorkflows(c.get("caller").owner, { ...q, limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    return c.json({ workflows: page, nextCursor: rows.length > q.limit ? (page.at(-1)?.id ?? null) : null });
  });

  app.get("/workflows/:id", (c) => respondWorkflow(c, deps, uuidParam(c, "id", "workflow"), 200));

  app.get("/workflows/:id/tasks", async (c) => {
    const id = uuidParam(c, "id", "workflow");
    const q = parseWith(TaskListQuery, c.req.query(), 400, "query");
    const owner = c.get("caller").owner;
    const query = { statuses: q.status, cursor: q.cursor, limit: q.limit + 1 };
    const rows = await deps.api.tasks(owner, id, query, deps.settings.ownerMaxRunning ?? null);
    if (!rows) throw notFound("workflow");
    const page = rows.slice(0, q.limit);
    return c.json({ tasks: page, nextCursor: rows.length > q.limit ? (page.at(-1)?.name ?? null) : null });
  });

  app.get("/workflows/:id/tasks/:name", async (c) => {
    const id = uuidParam(c, "id", "workflow");
    const query = { name: taskNameParam(c), limit: 1 };
    const rows = await deps.api.tasks(
      c.get("caller").owner,
      id,
      query,
      deps.settings.ownerMaxRunning ?? null,
    );
    if (!rows) throw notFound("workflow");
    if (!rows[0]) throw new ApiError(404, "not_found", "task not found", { task: query.name });
    return c.json(rows[0]);
  });

  app.post("/workflows/:id/cancel", async (c) => {
    const id = uuidParam(c, "id", "workflow");
    const before = await deps.api.cancelWorkflow(c.get("caller").owner, id);
    if (before === null) throw notFound("workflow");
    if (TERMINAL_WORKFLOW_STATES.includes(before)) {
      throw new ApiError(409, "workflow_ended", `the workflow has already ended (${before})`, {
        status: before,
      });
    }
    return respondWorkflow(c, deps, id, 200);
  });

  app.post("/workflows/:id/retry", async (c) => {
    const id = uuidParam(c, "id", "workflow");
    const result = await deps.api.retryWorkflow(c.get("caller").owner, id);
    if (result === null) throw notFound("workflow");
    if (!result.retried) {
      const message = `only a failed or cancelled workflow can be retried; this one is ${result.before}`;
      throw new ApiError(409, "not_retryable", message, { status: result.before });
    }
    return respondWorkflow(c, deps, id, 200);
  });
}

/**
 * Validates the workflow, its limits and its callback URL before anything is stored. With an
 * Idempotency-Key or a callback, the workflow id is reserved first: the same key and body find the first
 * workflow (200), another body is a 409.
 */
async function submit(c: Context<ApiEnv>, deps: ApiDeps): Promise<Response> {
  const owner = c.get("caller").owner;
  const key = idempotencyKey(c);
  const limits = deps.settings.submitLimits;
  const sub = await readSubmission(c, limits);
  const spec = checkSubmission(sub.source, sub.file, Object.keys(sub.inputs), limits, { refuseUnread: true });
  if (sub.callbackUrl !== null) await checkCallbackUrl(sub.callbackUrl, deps);
  let id: string | undefined;
  if (key !== null || sub.callbackUrl !== null) {
    const hash = await requestHash(sub);
    const reserved = await deps.api.reserveSubmission({
      owner,
      idempotencyKey: key,
      requestHash: hash,
      workflowId: crypto.randomUUID(),
      callbackUrl: sub.callbackUrl,
      callbackSecret: sub.callbackSecret,
    });
    if (reserved.requestHash !== hash) {
      throw new ApiError(
        409,
        "idempotency_conflict",
        "this Idempotency-Key was already used with another request body",
      );
    }
    if (reserved.workflowExists) return respondWorkflow(c, deps, reserved.workflowId, 200);
    id = reserved.workflowId;
  }
  const submitted = await submitWorkflow(
    {
      store: deps.store,
      storage: needStorage(deps.storage),
      logger: deps.logger,
      uploadSlots: deps.uploadSlots,
    },
    {
      source: sub.source,
      file: sub.file,
      requirements: sub.requirements,
      inputs: sub.inputs,
      owner,
      id,
      retryBackoffMs: deps.settings.retryBackoffMs,
      maxInfraRetries: deps.settings.maxInfraRetries,
      priority: sub.priority ?? undefined,
      spec,
      limits,
    },
  );
  return respondWorkflow(c, deps, submitted.id, submitted.created ? 201 : 200);
}

/**
 * The submitted workflow with every task; with `Prefer: return=minimal` (RFC 7240) `{"id"}` alone, which
 * spares a big workflow's read back and its JSON (2.75 MB for 10,000 tasks).
 */
async function respondWorkflow(
  c: Context<ApiEnv>,
  deps: ApiDeps,
  id: string,
  status: 200 | 201,
): Promise<Response> {
  const headers: Record<string, string> = status === 201 ? { Location: `/workflows/${id}` } : {};
  if (prefersMinimal(c.req.header("prefer"))) {
    return c.json({ id }, status, { ...headers, "Preference-Applied": "return=minimal" });
  }
  const owner = c.get("caller").owner;
  const pieces = await deps.api.workflowJson(owner, id, deps.settings.ownerMaxRunning ?? null);
  if (!pieces) throw notFound("workflow");
  return jsonInPieces(c, pieces, status, headers);
}

/** Up to this many characters of JSON go out as one string; a longer document is streamed piece by piece. */
const ONE_PIECE = 1 << 20;

/**
 * A JSON document given in pieces: a big one is sent as a stream of its pieces, encoded as the connection
 * takes them, rather than joined into one string and encoded whole (for a 100,000-task workflow ~27 MB,
 * held twice).
 */
function jsonInPieces(
  c: Context<ApiEnv>,
  pieces: string[],
  status: 200 | 201,
  headers: Record<string, string>,
): Response {
  const all = { ...headers, "content-type": "application/json" };
  if (pieces.reduce((n, p) => n + p.length, 0) <= ONE_PIECE) return c.body(pieces.join(""), status, all);
  const encoder = new TextEncoder();
  let next = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (next < pieces.length) controller.enqueue(encoder.encode(pieces[next++]));
      else controller.close();
    },
  });
  return c.body(stream, status, all);
}

/** Whether a Prefer header asks for `return=minimal` among its preferences (`respond-async, return=minimal`). */
function prefersMinimal(prefer: string | undefined): boolean {
  return (prefer ?? "").split(",").some((preference) => {
    const [token = "", value = ""] = (preference.split(";")[0] ?? "").split("=").map((x) => x.trim());
    return token.toLowerCase() === "return" && value.replace(/^"(.*)"$/, "$1").toLowerCase() === "minimal";
  });
}

const workflowResponse = { description: "the workflow and every task", schema: WorkflowDetail };
const idempotencyHeader = {
  name: "Idempotency-Key",
  description: "the same key and body return the first workflow (200); another body is a 409",
};
const preferHeader = {
  name: "Prefer",
  description:
    'return=minimal: the answer is {"id"} alone, with Preference-Applied: return=minimal, instead of the workflow and every task',
};

export const workflowDocs: RouteDoc[] = [
  {
    method: "post",
    path: "/workflows",
    summary: "Submit a workflow",
    auth: "bearer",
    headers: [idempotencyHeader, preferHeader],
    body: [
      { contentType: "multipart/form-data", schema: SubmitForm },
      { contentType: "application/json", schema: SubmitJson },
    ],
    responses: { 201: { description: "submitted", schema: WorkflowDetail }, 200: workflowResponse },
    errors: [400, 409, 413, 415, 422],
  },
  {
    method: "get",
    path: "/workflows",
    summary: "List the caller's workflows, newest first",
    auth: "bearer",
    query: WorkflowListQuery,
    responses: { 200: { description: "one page", schema: WorkflowList } },
    errors: [400],
  },
  {
    method: "get",
    path: "/workflows/:id",
    summary: "A workflow with every task's state, attempts and timestamps",
    auth: "bearer",
    responses: { 200: workflowResponse },
    errors: [404],
  },
  {
    method: "get",
    path: "/workflows/:id/tasks",
    summary: "A workflow's tasks a page at a time, by name, optionally of some states only",
    auth: "bearer",
    query: TaskListQuery,
    responses: { 200: { description: "one page", schema: TaskList } },
    errors: [400, 404],
  },
  {
    method: "get",
    path: "/workflows/:id/tasks/:name",
    summary: "One task of a workflow, with its attempts (what a client following one task reads)",
    auth: "bearer",
    responses: { 200: { description: "the task", schema: Task } },
    errors: [404],
  },
  {
    method: "post",
    path: "/workflows/:id/cancel",
    summary: "Cancel a workflow that has not ended",
    auth: "bearer",
    responses: { 200: workflowResponse },
    errors: [404, 409],
  },
  {
    method: "post",
    path: "/workflows/:id/retry",
    summary: "Rerun a failed or cancelled workflow from its failures",
    auth: "bearer",
    responses: { 200: workflowResponse },
    errors: [404, 409],
  },
];
