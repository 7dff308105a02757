import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import * as z from "zod";
import { DslErrors } from "../shared/dsl/index.ts";
import type { Logger } from "../shared/log.ts";
import { CallbackRefused } from "../shared/net/callback-target.ts";
import { databaseUnavailable } from "../shared/db/retry.ts";
import { UnknownPoolError } from "../shared/db/store.ts";
import { MissingInputError, SubmissionRefused } from "../shared/submit.ts";

/** The one exception of the HTTP edge: a status, a stable code, a message for people, and details. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);

export const unauthorized = (message: string) =>
  new ApiError(401, "unauthorized", message, null, { "WWW-Authenticate": 'Bearer realm="dwop"' });

export const tooLarge = (limit: number) =>
  new ApiError(413, "payload_too_large", `the request body is larger than ${limit} bytes`, { limit });

/** A zod failure as the details of a 400 or 422: where and what, for each issue. */
export function invalid(status: 400 | 422, message: string, error: z.ZodError): ApiError {
  const details = error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
  // The first issue in the message too, so a client that prints only the message says what was wrong.
  const [first] = details;
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : "";
  const said = first ? `${message}: ${first.path ? `${first.path}: ` : ""}${first.message}${more}` : message;
  return new ApiError(status, status === 400 ? "bad_request" : "invalid_request", said, details);
}

/** Parses with a schema, or throws a 400 or 422 that names every bad field. */
export function parseWith<S extends z.ZodType>(
  schema: S,
  data: unknown,
  status: 400 | 422,
  what: string,
): z.output<S> {
  const result = schema.safeParse(data);
  if (!result.success) throw invalid(status, `invalid ${what}`, result.error);
  return result.data;
}

/**
 * The database could not be reached or would not serve (an outage, a failover, a restart, too many
 * connections, maintenance), or the connection the request's statements ran on was lost under them: a 503
 * that asks the client to come back, as /readyz says while it lasts. A write whose connection was lost may
 * have committed; the Idempotency-Key of a submit makes its retry find it.
 */
export const unavailable = () =>
  new ApiError(503, "unavailable", "database unreachable", null, { "Retry-After": "1" });

/** `{"error": {"code", "message", "details"}}`: the body of every error response. */
export function errorBody(code: string, message: string, details: unknown = null) {
  return { error: { code, message, details } };
}

function toApiError(err: unknown): ApiError | null {
  if (err instanceof ApiError) return err;
  if (err instanceof DslErrors) {
    const n = err.errors.length;
    return new ApiError(
      400,
      "invalid_workflow",
      `the workflow has ${n} error${n === 1 ? "" : "s"}`,
      err.errors,
    );
  }
  if (err instanceof MissingInputError) {
    return new ApiError(422, "missing_inputs", err.message, { inputs: err.names });
  }
  if (err instanceof SubmissionRefused) {
    return new ApiError(err.code === "unread_inputs" ? 422 : 413, err.code, err.message, err.details);
  }
  if (err instanceof UnknownPoolError) {
    return new ApiError(422, "unknown_pool", err.message, { path: "pool" });
  }
  if (err instanceof CallbackRefused) {
    return new ApiError(422, "callback_refused", err.message, { path: "callback_url" });
  }
  if (err instanceof HTTPException && err.status < 500) {
    return new ApiError(err.status as ContentfulStatusCode, "http_error", err.message || "bad request");
  }
  return null;
}

/** Turns every error into the JSON error body; anything unexpected is logged and answered as a bare 500. */
export function errorHandler(logger: Logger): ErrorHandler {
  return (err, c) => {
    const known = toApiError(err);
    if (known) return respond(c, known);
    if (databaseUnavailable(err)) {
      logger.warn({ err, method: c.req.method, path: c.req.path }, "database unreachable");
      return respond(c, unavailable());
    }
    logger.error({ err, method: c.req.method, path: c.req.path }, "request failed");
    return respond(c, new ApiError(500, "internal", "internal error"));
  };
}

export const routeNotFound: NotFoundHandler = (c) =>
  c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);

function respond(c: Context, e: ApiError) {
  return c.json(errorBody(e.code, e.message, e.details), e.status, e.headers);
}
