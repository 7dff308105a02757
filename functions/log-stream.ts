import type { Context, Hono } from "hono";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import { LIVE_LOG_MAX_BYTES, LOG_CHUNK_MAX_BYTES, verifyLogStreamToken } from "../shared/log-stream.ts";
import { runTarget, type RunTarget } from "../shared/db/run-logs.ts";
import { needStorage } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { ApiError, notFound, unauthorized } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";

/**
 * What a running attempt's worker calls, with its run's log-stream token as the bearer (never an owner's
 * credentials): ship a chunk of its live log, say the whole log is stored, and get upload URLs minted
 * now (so a task that runs longer than a signed URL lives can still store its output).
 */
export function logStreamRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.post("/runs/:runId/log", async (c) => {
    const runId = await authorizedRun(c, deps);
    const offset = Number(c.req.header("x-log-offset"));
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new ApiError(400, "bad_request", "X-Log-Offset must be the chunk's byte offset");
    }
    const data = new Uint8Array(await c.req.arrayBuffer());
    if (data.length === 0) throw new ApiError(400, "bad_request", "a log chunk must not be empty");
    const { result, size } = await deps.runLogs.append(runId, offset, data, LIVE_LOG_MAX_BYTES);
    if (result === "no_run") throw notFound("run");
    return c.json({ result, size });
  });

  app.post("/runs/:runId/log/sealed", async (c) => {
    const runId = await authorizedRun(c, deps);
    await deps.runLogs.seal(runId);
    return c.body(null, 204);
  });

  app.post("/runs/:runId/upload-urls", async (c) => {
    const runId = await authorizedRun(c, deps);
    const target = await runTarget(deps.db, runId);
    if (!target) throw notFound("run");
    if (!target.active) throw new ApiError(409, "run_ended", "the run has ended");
    return c.json(await uploadUrls(deps, target));
  });
}

/** The run id of the path, once the request's bearer token is that run's; 401 otherwise. */
async function authorizedRun(c: Context<ApiEnv>, deps: ApiDeps): Promise<string> {
  const runId = c.req.param("runId") ?? "";
  const token = /^Bearer (\S+)$/.exec(c.req.header("authorization") ?? "")?.[1];
  if (!/^\d{1,18}$/.test(runId) || !token) throw unauthorized("a run's log-stream token is required");
  if (!(await verifyLogStreamToken(await deps.logStreamKey(), runId, token))) {
    throw unauthorized("the token is not this run's");
  }
  return runId;
}

async function uploadUrls(deps: ApiDeps, target: RunTarget): Promise<{ output: string; log: string }> {
  const storage = needStorage(deps.storage);
  const ttl = deps.settings.uploadUrlTtlSeconds;
  const { workflowId: wf, taskName, attempt } = target;
  const [output, log] = await Promise.all([
    storage.signUrl(OUTPUT_BUCKET, objectPaths.attemptOutput(wf, taskName, attempt), "PUT", ttl),
    storage.signUrl(OUTPUT_BUCKET, objectPaths.log(wf, taskName, attempt), "PUT", ttl),
  ]);
  return { output, log };
}

/** The request body limit of these routes: one chunk and its framing. */
export const LOG_STREAM_BODY_LIMIT = LOG_CHUNK_MAX_BYTES + 4096;

const tokenAuth = "by the run's own token";

export const logStreamDocs: RouteDoc[] = [
  {
    method: "post",
    path: "/runs/:runId/log",
    summary: `A worker ships a chunk of its live log (whole lines, at most 1 MiB), at byte X-Log-Offset; ${tokenAuth}`,
    auth: "runToken",
    responses: {
      200: {
        description:
          "`{result, size}`: appended, behind (resume from size), ended (the run is over) or full " +
          "(the live log is at its 16 MiB cap; the stored log still holds everything)",
      },
    },
    errors: [400, 404, 413],
  },
  {
    method: "post",
    path: "/runs/:runId/log/sealed",
    summary: `The worker has stored the whole log: its live chunks are dropped; ${tokenAuth}`,
    auth: "runToken",
    responses: { 204: { description: "sealed" } },
  },
  {
    method: "post",
    path: "/runs/:runId/upload-urls",
    summary: `Signed PUT URLs for the run's output (its attempt's own object) and log, minted now; ${tokenAuth}`,
    auth: "runToken",
    responses: { 200: { description: "`{output, log}`" } },
    errors: [404, 409, 503],
  },
];
